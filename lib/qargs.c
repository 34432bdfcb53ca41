/* qargs.c - a queue's arguments: the broker's 406 "inequivalent arg"
 * reply parsed once, and the probe that finds every argument by
 * redeclaring the queue (see qargs_int.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "qargs_int.h"

static const char arg_pre[] = "inequivalent arg '", but[] = " but current is ";

bool cqi_parse_arg_name(const char *text, char *key, size_t klen)
{
	const char *p = strstr(text, arg_pre), *q;

	if (!p)
		return false;
	p += sizeof(arg_pre) - 1;
	q = strchr(p, '\'');
	if (!q || (size_t)(q - p) >= klen)
		return false;
	memcpy(key, p, (size_t)(q - p));
	key[q - p] = '\0';
	return true;
}

static const char *last_of(const char *text, const char *s)
{
	const char *q, *last = NULL;

	for (q = text; (q = strstr(q, s)); q++)
		last = q;
	return last;
}

bool cqi_parse_inequivalent(const char *text, char *key, size_t klen,
			    const char **cur)
{
	const char *last;

	if (!cqi_parse_arg_name(text, key, klen))
		return false;
	last = last_of(text, but);
	if (!last)
		return false;
	*cur = last + sizeof(but) - 1;
	return true;
}

const char *cqi_parse_received(const char *text, size_t *len)
{
	static const char rec[] = "': received ";
	const char *end = last_of(text, but), *p = NULL, *q;

	*len = 0;
	if (!end)
		return NULL;
	for (q = text; (q = strstr(q, rec)) && q < end; q++)
		p = q;
	if (!p)
		return NULL;
	p += 3;		/* "received ..." */
	*len = (size_t)(end - p);
	return p;
}

bool cqi_parse_value(const char *cur, char **val, char *type, size_t tlen)
{
	static const char pre[] = "the value '", mid[] = "' of type '";
	const char *p, *last, *end;

	if (strncmp(cur, pre, sizeof(pre) - 1) != 0)
		return false;
	cur += sizeof(pre) - 1;
	last = last_of(cur, mid);
	if (!last)
		return false;
	p = last + sizeof(mid) - 1;
	end = strchr(p, '\'');
	if (!end || (size_t)(end - p) >= tlen)
		return false;
	memcpy(type, p, (size_t)(end - p));
	type[end - p] = '\0';
	*val = strndup(cur, (size_t)(last - cur));
	return *val != NULL;
}

/* ---- the probe ---------------------------------------------------------- */

static uint8_t kind_of(const char *type)
{
	static const struct {
		const char *name;
		uint8_t kind;
	} types[] = {
		{ "longstr", AMQP_FIELD_KIND_UTF8 },
		{ "long", AMQP_FIELD_KIND_I64 },
		{ "signedint", AMQP_FIELD_KIND_I32 },
		{ "short", AMQP_FIELD_KIND_I16 },
		{ "byte", AMQP_FIELD_KIND_I8 },
		{ "unsignedint", AMQP_FIELD_KIND_U32 },
		{ "unsignedshort", AMQP_FIELD_KIND_U16 },
		{ "unsignedbyte", AMQP_FIELD_KIND_U8 },
		{ "bool", AMQP_FIELD_KIND_BOOLEAN },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(type, types[i].name) == 0)
			return types[i].kind;
	return 0;
}

const struct cqi_qarg *cqi_qargs_find(const struct cqi_qargs *q,
				      const char *key)
{
	for (int i = 0; i < q->n; i++)
		if (strcmp(q->a[i].key, key) == 0)
			return &q->a[i];
	return NULL;
}

void cqi_qargs_clear(struct cqi_qargs *q)
{
	for (int i = 0; i < q->n; i++)
		free(q->a[i].sval);
	memset(q, 0, sizeof(*q));
}

/* The argument named key, added when new; NULL when full. */
static struct cqi_qarg *arg_slot(struct cqi_qargs *q, const char *key)
{
	struct cqi_qarg *a = (struct cqi_qarg *)cqi_qargs_find(q, key);

	if (a || q->n == CQI_QARGS_MAX)
		return a;
	a = &q->a[q->n++];
	snprintf(a->key, sizeof(a->key), "%s", key);
	return a;
}

static void arg_drop(struct cqi_qargs *q, const char *key)
{
	struct cqi_qarg *a = (struct cqi_qarg *)cqi_qargs_find(q, key);

	if (!a)
		return;
	free(a->sval);
	*a = q->a[--q->n];
}

/* Set a's value (val taken over). */
static bool arg_set(struct cqi_qarg *a, uint8_t kind, char *val)
{
	char *end;

	free(a->sval);
	a->sval = val;
	a->kind = kind;
	a->ival = 0;
	if (kind == AMQP_FIELD_KIND_UTF8)
		return true;
	if (kind == AMQP_FIELD_KIND_BOOLEAN) {
		a->ival = strcmp(val, "true") == 0;
		return true;
	}
	errno = 0;
	a->ival = strtoll(val, &end, 10);
	return !errno && end != val && !*end;
}

static void field_of(const struct cqi_qarg *a, amqp_field_value_t *v)
{
	v->kind = a->kind;
	switch (a->kind) {
	case AMQP_FIELD_KIND_UTF8:
		v->value.bytes = amqp_cstring_bytes(a->sval);
		break;
	case AMQP_FIELD_KIND_I64:
		v->value.i64 = a->ival;
		break;
	case AMQP_FIELD_KIND_I32:
		v->value.i32 = (int32_t)a->ival;
		break;
	case AMQP_FIELD_KIND_I16:
		v->value.i16 = (int16_t)a->ival;
		break;
	case AMQP_FIELD_KIND_I8:
		v->value.i8 = (int8_t)a->ival;
		break;
	case AMQP_FIELD_KIND_U32:
		v->value.u32 = (uint32_t)a->ival;
		break;
	case AMQP_FIELD_KIND_U16:
		v->value.u16 = (uint16_t)a->ival;
		break;
	case AMQP_FIELD_KIND_U8:
		v->value.u8 = (uint8_t)a->ival;
		break;
	default:
		v->value.boolean = a->ival != 0;
		break;
	}
}

static bool set_string(struct cqi_qargs *q, const char *key, const char *s,
		       size_t n)
{
	struct cqi_qarg *a = arg_slot(q, key);
	char *v = strndup(s, n);

	if (!a || !v) {
		free(v);
		return false;
	}
	return arg_set(a, AMQP_FIELD_KIND_UTF8, v);
}

/* A value the broker's text lost (a long queue name): the queue types
 * can be tried in turn; any other value is out of reach. */
static bool next_type(struct cqi_qargs *q, unsigned *tried)
{
	static const char *const types[] = { "classic", "quorum", "stream" };

	for (unsigned i = 0; i < 3; i++) {
		if (*tried & (1u << i))
			continue;
		*tried |= 1u << i;
		return set_string(q, "x-queue-type", types[i], strlen(types[i]));
	}
	return false;
}

/* Adopt what one 406 text says.  False when the probe cannot go on. */
static bool learn(struct cqi_qargs *q, const char *text, unsigned *tried)
{
	char key[128], type[32], *val;
	const char *cur, *end;
	struct cqi_qarg *a;

	if (!cqi_parse_inequivalent(text, key, sizeof(key), &cur)) {
		if (!cqi_parse_arg_name(text, key, sizeof(key)))
			return false;
		cur = NULL;	/* the broker cut its text before the value */
	}
	/* what we sent differs, so the flag is the other way */
	if (strcmp(key, "durable") == 0 || strcmp(key, "auto_delete") == 0) {
		bool *flag = key[0] == 'd' ? &q->durable : &q->auto_delete;

		*flag = !*flag;
		return true;
	}
	if (!cur) {
		if (strcmp(key, "x-queue-type") == 0 && next_type(q, tried))
			return true;
		snprintf(q->cut, sizeof(q->cut), "%s", key);
		return false;
	}
	if (strcmp(cur, "none") == 0) {
		arg_drop(q, key);
		return true;
	}
	if (cur[0] == '\'') {
		/* x-queue-type: "received 'classic' but current is 'quorum'" */
		end = strrchr(cur + 1, '\'');
		return end && set_string(q, key, cur + 1, (size_t)(end - cur - 1));
	}
	if (!cqi_parse_value(cur, &val, type, sizeof(type)))
		return false;
	a = arg_slot(q, key);
	if (!a || !kind_of(type)) {
		free(val);
		return false;
	}
	return arg_set(a, kind_of(type), val);
}

enum cq_err cqi_qargs_probe(struct cq_ctx *ctx, cqi_declare_fn declare,
			    void *arg, struct cqi_qargs *q)
{
	amqp_table_entry_t e[CQI_QARGS_MAX];
	unsigned tried = 1;	/* classic, first */
	char text[512];

	memset(q, 0, sizeof(*q));
	q->durable = true;
	if (!set_string(q, "x-queue-type", "classic", 7))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	for (int round = 0; round < CQI_QARGS_MAX + 8; round++) {
		amqp_table_t t = { q->n, e };
		int code;

		for (int i = 0; i < q->n; i++) {
			e[i].key = amqp_cstring_bytes(q->a[i].key);
			field_of(&q->a[i], &e[i].value);
		}
		code = declare(arg, q->durable, q->auto_delete, t, text,
			       sizeof(text));
		if (code < 0)
			return ctx->err;
		if (code == 0) {
			q->complete = true;
			return CQ_OK;
		}
		if (code != 406 || !learn(q, text, &tried))
			return CQ_OK;
	}
	return CQ_OK;
}
