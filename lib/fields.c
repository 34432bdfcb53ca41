/* fields.c - message headers as cq_fields, and what they say about a dead
 * letter (x-death, qctl's x-cq-* headers, an application's own).  Pure
 * functions: no I/O, so they can be unit-tested and fuzzed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"
#include "queue_int.h"

/* Deeper nesting than this decodes as VOID (x-death needs 2). */
#define MAX_DEPTH 16

/* ---- from an AMQP table ------------------------------------------------- */

bool cqi_bytes_dup(amqp_bytes_t b, char **out, size_t *len)
{
	*out = cqi_memdup(b.bytes, b.len);
	if (!*out)
		return false;
	if (len)
		*len = b.len;
	return true;
}

static bool from_value(const amqp_field_value_t *v, struct cq_field *f,
		       int depth);

static bool from_entries(const amqp_table_entry_t *te,
			 const amqp_field_value_t *ae, int n,
			 struct cq_field **items, size_t *count, int depth)
{
	struct cq_field *it;

	*items = NULL;
	*count = 0;
	if (n <= 0)
		return true;
	it = calloc((size_t)n, sizeof(*it));
	if (!it)
		return false;
	*items = it;
	for (int i = 0; i < n; i++) {
		const amqp_field_value_t *v = te ? &te[i].value : &ae[i];

		*count = (size_t)i + 1;
		if (te && !cqi_bytes_dup(te[i].key, &it[i].key, NULL))
			return false;
		if (!from_value(v, &it[i], depth + 1))
			return false;
	}
	return true;
}

static bool from_value(const amqp_field_value_t *v, struct cq_field *f,
		       int depth)
{
	f->kind = CQ_FIELD_INT;
	switch (v->kind) {
	case AMQP_FIELD_KIND_BOOLEAN:
		f->kind = CQ_FIELD_BOOL;
		f->i = v->value.boolean ? 1 : 0;
		break;
	case AMQP_FIELD_KIND_I8:
		f->i = v->value.i8;
		break;
	case AMQP_FIELD_KIND_U8:
		f->i = v->value.u8;
		break;
	case AMQP_FIELD_KIND_I16:
		f->i = v->value.i16;
		break;
	case AMQP_FIELD_KIND_U16:
		f->i = v->value.u16;
		break;
	case AMQP_FIELD_KIND_I32:
		f->i = v->value.i32;
		break;
	case AMQP_FIELD_KIND_U32:
		f->i = v->value.u32;
		break;
	case AMQP_FIELD_KIND_I64:
		f->i = v->value.i64;
		break;
	case AMQP_FIELD_KIND_U64:
		f->i = v->value.u64 > INT64_MAX ? INT64_MAX :
		       (long long)v->value.u64;
		break;
	case AMQP_FIELD_KIND_TIMESTAMP:
		f->kind = CQ_FIELD_TIMESTAMP;
		f->i = v->value.u64 > INT64_MAX ? INT64_MAX :
		       (long long)v->value.u64;
		break;
	case AMQP_FIELD_KIND_F32:
		f->kind = CQ_FIELD_FLOAT;
		f->f = v->value.f32;
		break;
	case AMQP_FIELD_KIND_F64:
		f->kind = CQ_FIELD_FLOAT;
		f->f = v->value.f64;
		break;
	case AMQP_FIELD_KIND_DECIMAL:
		f->kind = CQ_FIELD_FLOAT;
		f->f = v->value.decimal.value /
		       pow(10, v->value.decimal.decimals);
		break;
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES:
		f->kind = v->kind == AMQP_FIELD_KIND_UTF8 ? CQ_FIELD_STRING :
			  CQ_FIELD_BYTES;
		return cqi_bytes_dup(v->value.bytes, &f->str, &f->len);
	case AMQP_FIELD_KIND_TABLE:
		if (depth >= MAX_DEPTH)
			goto void_;
		f->kind = CQ_FIELD_TABLE;
		return from_entries(v->value.table.entries, NULL,
				    v->value.table.num_entries, &f->items,
				    &f->n, depth);
	case AMQP_FIELD_KIND_ARRAY:
		if (depth >= MAX_DEPTH)
			goto void_;
		f->kind = CQ_FIELD_ARRAY;
		return from_entries(NULL, v->value.array.entries,
				    v->value.array.num_entries, &f->items,
				    &f->n, depth);
	default:
void_:
		f->kind = CQ_FIELD_VOID;
		break;
	}
	return true;
}

enum cq_err cqi_fields_from_table(const amqp_table_t *t,
				  struct cq_field **items, size_t *n)
{
	if (from_entries(t->entries, NULL, t->num_entries, items, n, 0))
		return CQ_OK;
	cqi_fields_free(*items, *n);
	*items = NULL;
	*n = 0;
	return CQ_ERR_NOMEM;
}

static void field_clear(struct cq_field *f)
{
	free(f->key);
	free(f->str);
	cqi_fields_free(f->items, f->n);
}

void cqi_fields_free(struct cq_field *items, size_t n)
{
	if (!items)
		return;
	for (size_t i = 0; i < n; i++)
		field_clear(&items[i]);
	free(items);
}

/* ---- reading fields ----------------------------------------------------- */

const struct cq_field *cqi_field_get(const struct cq_field *items, size_t n,
				    const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].key && strcmp(items[i].key, key) == 0)
			return &items[i];
	return NULL;
}

/* The same, ignoring case (for headers applications name freely). */
static const struct cq_field *get_nocase(const struct cq_field *items,
					 size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (items[i].key && strcasecmp(items[i].key, key) == 0)
			return &items[i];
	return NULL;
}

bool cqi_field_int(const struct cq_field *f, long long *out)
{
	char *end;

	if (!f)
		return false;
	switch (f->kind) {
	case CQ_FIELD_INT:
	case CQ_FIELD_BOOL:
	case CQ_FIELD_TIMESTAMP:
		*out = f->i;
		return true;
	case CQ_FIELD_STRING:
		if (f->len == 0 || f->len > 20 || strlen(f->str) != f->len)
			return false;
		*out = strtoll(f->str, &end, 10);
		return *end == '\0';
	default:
		return false;
	}
}

static json_t *field_json(const struct cq_field *f);

static json_t *fields_json(const struct cq_field *items, size_t n, bool table)
{
	json_t *j = table ? json_object() : json_array();

	for (size_t i = 0; j && i < n; i++) {
		json_t *v = field_json(&items[i]);
		int r;

		if (!v) {
			json_decref(j);
			return NULL;
		}
		r = table ? json_object_set_new(j, items[i].key ? items[i].key : "", v) :
			    json_array_append_new(j, v);
		if (r) {
			/* a key that is not UTF-8: leave it out */
			if (!table) {
				json_decref(j);
				return NULL;
			}
		}
	}
	return j;
}

/* Strings that are not UTF-8 (and byte arrays) become {"base64": "..."}. */
static json_t *field_json(const struct cq_field *f)
{
	json_t *s;
	char *b;

	switch (f->kind) {
	case CQ_FIELD_VOID:
		return json_null();
	case CQ_FIELD_STRING:
	case CQ_FIELD_BYTES:
		if (f->kind == CQ_FIELD_STRING) {
			s = json_stringn(f->str, f->len);
			if (s)
				return s;
		}
		b = cqi_base64(f->str, f->len);
		if (!b)
			return NULL;
		s = json_pack("{s:s}", "base64", b);
		free(b);
		return s;
	case CQ_FIELD_INT:
	case CQ_FIELD_TIMESTAMP:
		return json_integer(f->i);
	case CQ_FIELD_BOOL:
		return json_boolean(f->i);
	case CQ_FIELD_FLOAT:
		return isfinite(f->f) ? json_real(f->f) : json_null();
	case CQ_FIELD_TABLE:
		return fields_json(f->items, f->n, true);
	case CQ_FIELD_ARRAY:
		return fields_json(f->items, f->n, false);
	}
	return json_null();
}

json_t *cqi_fields_json(const struct cq_field *items, size_t n)
{
	return fields_json(items, n, true);
}

char *cqi_field_text(const struct cq_field *f)
{
	char buf[64], *out;
	json_t *j;

	switch (f->kind) {
	case CQ_FIELD_STRING:
	case CQ_FIELD_BYTES:
		return cqi_memdup(f->str, f->len);
	case CQ_FIELD_VOID:
		return strdup("");
	case CQ_FIELD_INT:
	case CQ_FIELD_TIMESTAMP:
		snprintf(buf, sizeof(buf), "%lld", f->i);
		return strdup(buf);
	case CQ_FIELD_BOOL:
		return strdup(f->i ? "true" : "false");
	case CQ_FIELD_FLOAT:
		snprintf(buf, sizeof(buf), "%.17g", f->f);
		return strdup(buf);
	case CQ_FIELD_TABLE:
	case CQ_FIELD_ARRAY:
		break;
	}
	j = field_json(f);
	if (!j)
		return NULL;
	out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER |
			 JSON_ENCODE_ANY);
	json_decref(j);
	return out;
}

/* ---- the dead-letter story ---------------------------------------------- */

/* A copy of a string field's text (NUL-free strings only), or NULL. */
static bool take_str(const struct cq_field *f, char **out)
{
	if (!f || f->kind != CQ_FIELD_STRING || strlen(f->str) != f->len)
		return true;
	free(*out);
	*out = strdup(f->str);
	return *out != NULL;
}

void cq_death_clear(struct cq_death *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nxdeath; i++) {
		free(d->xdeath[i].queue);
		free(d->xdeath[i].reason);
		free(d->xdeath[i].exchange);
		free(d->xdeath[i].routing_key);
	}
	free(d->xdeath);
	free(d->queue);
	free(d->exchange);
	free(d->routing_key);
	free(d->reason);
	free(d->stderr_tail);
	free(d->host);
	memset(d, 0, sizeof(*d));
	d->retries = d->exit_code = -1;
}

static bool xdeath_entry(const struct cq_field *t, struct cq_xdeath *x)
{
	const struct cq_field *rk;

	if (!take_str(cqi_field_get(t->items, t->n, "queue"), &x->queue) ||
	    !take_str(cqi_field_get(t->items, t->n, "reason"), &x->reason) ||
	    !take_str(cqi_field_get(t->items, t->n, "exchange"), &x->exchange))
		return false;
	rk = cqi_field_get(t->items, t->n, "routing-keys");
	if (rk && rk->kind == CQ_FIELD_ARRAY && rk->n > 0 &&
	    !take_str(&rk->items[0], &x->routing_key))
		return false;
	if (!cqi_field_int(cqi_field_get(t->items, t->n, "count"), &x->count))
		x->count = 0;
	if (!cqi_field_int(cqi_field_get(t->items, t->n, "time"), &x->time))
		x->time = 0;
	return true;
}

static bool decode_xdeath(const struct cq_field *h, size_t n,
			  struct cq_death *d)
{
	const struct cq_field *xd = cqi_field_get(h, n, "x-death");

	if (!xd || xd->kind != CQ_FIELD_ARRAY || xd->n == 0)
		return true;
	d->xdeath = calloc(xd->n, sizeof(*d->xdeath));
	if (!d->xdeath)
		return false;
	for (size_t i = 0; i < xd->n; i++) {
		if (xd->items[i].kind != CQ_FIELD_TABLE)
			continue;
		if (!xdeath_entry(&xd->items[i], &d->xdeath[d->nxdeath++]))
			return false;
	}
	return true;
}

static bool set_dup(char **dst, const char *src)
{
	free(*dst);
	*dst = NULL;
	if (!src)
		return true;
	*dst = strdup(src);
	return *dst != NULL;
}

/* The newest x-death entry naming a queue other than the one read from. */
static const struct cq_xdeath *best_xdeath(const struct cq_death *d,
					   const char *from_queue)
{
	for (size_t i = 0; i < d->nxdeath; i++) {
		const struct cq_xdeath *x = &d->xdeath[i];

		if (x->queue && x->queue[0] &&
		    (!from_queue || strcmp(x->queue, from_queue)))
			return x;
	}
	return NULL;
}

/* qctl's own headers; *died_at -1 when absent. */
static bool decode_qctl(const struct cq_field *h, size_t n, struct cq_death *d,
			char **queue, char **exchange, char **rk, char **reason,
			long long *died_at)
{
	if (!cqi_field_int(cqi_field_get(h, n, CQ_HDR_RETRIES), &d->retries))
		d->retries = -1;
	if (!cqi_field_int(cqi_field_get(h, n, CQ_HDR_EXIT_CODE), &d->exit_code))
		d->exit_code = -1;
	if (!cqi_field_int(cqi_field_get(h, n, CQ_HDR_DIED_AT), died_at))
		*died_at = -1;
	return take_str(cqi_field_get(h, n, CQ_HDR_STDERR), &d->stderr_tail) &&
	       take_str(cqi_field_get(h, n, CQ_HDR_HOST), &d->host) &&
	       take_str(cqi_field_get(h, n, CQ_HDR_ORIGINAL_QUEUE), queue) &&
	       take_str(cqi_field_get(h, n, CQ_HDR_ORIGINAL_EXCHANGE), exchange) &&
	       take_str(cqi_field_get(h, n, CQ_HDR_ORIGINAL_ROUTING_KEY), rk) &&
	       take_str(cqi_field_get(h, n, CQ_HDR_DEATH_REASON), reason);
}

/* The first header of names[] that is present, as a string. */
static bool app_header(const struct cq_field *h, size_t n,
		       const char *const *names, char **out)
{
	for (; *names; names++) {
		const struct cq_field *f = get_nocase(h, n, *names);

		if (f && f->kind == CQ_FIELD_STRING)
			return take_str(f, out);
	}
	return true;
}

/* Headers applications use when they republish a failed message by hand
 * (Spring's RepublishMessageRecoverer among them). */
static bool decode_app(const struct cq_field *h, size_t n, struct cq_death *d)
{
	static const char *const queues[] = {
		"x-original-queue", "original-queue", "original_queue",
		"x-source-queue", "source-queue", "source_queue",
		"x-queue", "x-orig-queue", NULL,
	};
	static const char *const exchanges[] = {
		"x-original-exchange", "original-exchange", "original_exchange",
		NULL,
	};
	static const char *const keys[] = {
		"x-original-routing-key", "x-original-routingKey",
		"original-routing-key", "original_routing_key", NULL,
	};
	static const char *const reasons[] = {
		"x-exception-message", "x-death-reason", "x-reason",
		"x-error", "reason", "error", NULL,
	};

	if (!app_header(h, n, queues, &d->queue) ||
	    !app_header(h, n, exchanges, &d->exchange) ||
	    !app_header(h, n, keys, &d->routing_key) ||
	    !app_header(h, n, reasons, &d->reason))
		return false;
	/* published to the default exchange: the routing key is the queue */
	if (!d->queue && d->routing_key && d->exchange && !d->exchange[0] &&
	    !set_dup(&d->queue, d->routing_key))
		return false;
	return true;
}

/* "jobs.dlq" -> "jobs" (also -dlq and _dlq). */
static bool from_dlq_name(const char *from_queue, char **out)
{
	static const char *const suffixes[] = { ".dlq", "-dlq", "_dlq", NULL };
	size_t len = from_queue ? strlen(from_queue) : 0;

	for (const char *const *s = suffixes; *s && len; s++) {
		size_t sl = strlen(*s);

		if (len > sl && strcasecmp(from_queue + len - sl, *s) == 0) {
			*out = strndup(from_queue, len - sl);
			return *out != NULL;
		}
	}
	return true;
}

static enum cq_err death_decode(const struct cq_field *h, size_t n,
				const char *from_queue, struct cq_death *d)
{
	char *q = NULL, *ex = NULL, *rk = NULL, *reason = NULL;
	const struct cq_xdeath *x;
	long long died_at;
	bool ok;

	if (!decode_xdeath(h, n, d) ||
	    !decode_qctl(h, n, d, &q, &ex, &rk, &reason, &died_at))
		goto nomem;
	x = best_xdeath(d, from_queue);
	if (q && *q && (!x || (died_at >= 0 && died_at >= x->time))) {
		d->source = CQ_DEATH_QCTL;
		d->queue = q;
		d->exchange = ex;
		d->routing_key = rk;
		d->reason = reason;
		d->count = d->retries >= 0 ? d->retries : 0;
		d->time = died_at > 0 ? died_at : 0;
		return CQ_OK;
	}
	free(q);
	free(ex);
	free(rk);
	if (x) {
		d->source = CQ_DEATH_XDEATH;
		/* what qctl wrote belongs to a death before this one */
		d->earlier = d->retries >= 0 || d->exit_code >= 0 ||
			     d->stderr_tail || d->host;
		d->qctl_time = d->earlier && died_at > 0 ? died_at : 0;
		d->reason = reason;	/* unless x-death gives one */
		d->count = x->count;
		d->time = x->time;
		ok = set_dup(&d->queue, x->queue) &&
		     set_dup(&d->exchange, x->exchange) &&
		     set_dup(&d->routing_key, x->routing_key) &&
		     (!x->reason || set_dup(&d->reason, x->reason));
		return ok ? CQ_OK : CQ_ERR_NOMEM;
	}
	if (!decode_app(h, n, d))
		goto nomem;
	if (reason && !d->reason) {
		d->reason = reason;
		reason = NULL;
	}
	free(reason);
	reason = NULL;
	if (d->queue && !*d->queue) {
		free(d->queue);
		d->queue = NULL;
	}
	if (d->queue) {
		d->source = CQ_DEATH_HEADERS;
		return CQ_OK;
	}
	if (!from_dlq_name(from_queue, &d->queue))
		return CQ_ERR_NOMEM;
	if (d->queue)
		d->source = CQ_DEATH_DLQ_NAME;
	return CQ_OK;
nomem:
	free(q);
	free(ex);
	free(rk);
	free(reason);
	return CQ_ERR_NOMEM;
}

enum cq_err cqi_death_decode(const struct cq_field *headers, size_t n,
			    const char *from_queue, struct cq_death *out)
{
	enum cq_err e;

	memset(out, 0, sizeof(*out));
	out->retries = out->exit_code = -1;
	e = death_decode(headers, n, from_queue, out);
	if (e)
		cq_death_clear(out);
	return e;
}
