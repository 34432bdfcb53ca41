/* peek.c - look at messages without removing them, and find out whether a
 * queue is a quorum queue with a delivery limit (where every peek counts
 * as a delivery). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
#include "queue_int.h"

#define PROBE_ARGS 16

/*
 * AMQP has no way to read a queue's arguments.  But redeclaring a queue
 * with arguments it does not have fails with PRECONDITION_FAILED naming
 * one argument and its current value.  So: declare with x-queue-type
 * "classic", adopt each argument the broker says differs, and repeat
 * until the declaration matches (a no-op on an existing queue).  Each
 * round costs a channel close and reopen.
 */
struct probe_arg {
	char key[128];
	char sval[256];
	long long ival;
	uint8_t kind;
};

struct probe {
	struct probe_arg args[PROBE_ARGS];
	int n;
	bool durable, auto_delete;
};

static struct probe_arg *probe_find(struct probe *p, const char *key)
{
	for (int i = 0; i < p->n; i++)
		if (strcmp(p->args[i].key, key) == 0)
			return &p->args[i];
	if (p->n == PROBE_ARGS)
		return NULL;
	snprintf(p->args[p->n].key, sizeof(p->args[0].key), "%s", key);
	return &p->args[p->n++];
}

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

/* Adopt what "inequivalent arg 'K' ... current is the value 'V' of type
 * 'T'" (or "current is 'V'" for durable/auto_delete) says.  False when the
 * text cannot be understood. */
static bool probe_learn(struct probe *p, const char *text)
{
	const char *k = strstr(text, "inequivalent arg '"), *v, *t, *end;
	char key[128], val[256], type[32];
	struct probe_arg *a;

	if (!k)
		return false;
	k += strlen("inequivalent arg '");
	end = strchr(k, '\'');
	if (!end || end - k >= (long)sizeof(key))
		return false;
	snprintf(key, sizeof(key), "%.*s", (int)(end - k), k);
	if (strcmp(key, "durable") == 0 || strcmp(key, "auto_delete") == 0) {
		v = strstr(end, "current is '");
		if (!v)
			return false;
		v += strlen("current is '");
		*(strcmp(key, "durable") == 0 ? &p->durable : &p->auto_delete) =
			strncmp(v, "true", 4) == 0;
		return true;
	}
	v = strstr(end, "current is the value '");
	if (!v && (v = strstr(end, "current is '"))) {
		/* x-queue-type: "received 'classic' but current is 'quorum'" */
		v += strlen("current is '");
		t = strchr(v, '\'');
		a = probe_find(p, key);
		if (!t || !a || t - v >= (long)sizeof(a->sval))
			return false;
		a->kind = AMQP_FIELD_KIND_UTF8;
		snprintf(a->sval, sizeof(a->sval), "%.*s", (int)(t - v), v);
		return true;
	}
	if (!v) {
		/* "current is none": the argument must go */
		if (!strstr(end, "current is none"))
			return false;
		for (int i = 0; i < p->n; i++)
			if (strcmp(p->args[i].key, key) == 0)
				p->args[i] = p->args[--p->n];
		return true;
	}
	v += strlen("current is the value '");
	t = strstr(v, "' of type '");
	if (!t || t - v >= (long)sizeof(val))
		return false;
	snprintf(val, sizeof(val), "%.*s", (int)(t - v), v);
	t += strlen("' of type '");
	end = strchr(t, '\'');
	if (!end || end - t >= (long)sizeof(type))
		return false;
	snprintf(type, sizeof(type), "%.*s", (int)(end - t), t);
	a = probe_find(p, key);
	if (!a || !(a->kind = kind_of(type)))
		return false;
	snprintf(a->sval, sizeof(a->sval), "%s", val);
	a->ival = a->kind == AMQP_FIELD_KIND_BOOLEAN ? strcmp(val, "true") == 0 :
		  strtoll(val, NULL, 10);
	return true;
}

static void probe_value(const struct probe_arg *a, amqp_field_value_t *v)
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

/* One declaration with what the probe knows.  1 matched, 0 learned
 * something, -1 gave up (or a real error). */
static int probe_round(struct cq_ctx *ctx, const char *queue, struct probe *p)
{
	amqp_table_entry_t e[PROBE_ARGS];
	amqp_table_t t = { p->n, e };
	char text[sizeof(ctx->errstr)];

	for (int i = 0; i < p->n; i++) {
		e[i].key = amqp_cstring_bytes(p->args[i].key);
		probe_value(&p->args[i], &e[i].value);
	}
	amqp_queue_declare(ctx->amqp->conn, CQI_CHANNEL,
			   amqp_cstring_bytes(queue), 0, p->durable, 0,
			   p->auto_delete, t);
	if (cqi_amqp_check(ctx, "probe") == CQ_OK)
		return 1;
	if (ctx->err != CQ_ERR_DATA || !ctx->amqp ||
	    !ctx->amqp->channel_open)
		return -1;
	snprintf(text, sizeof(text), "%s", ctx->errstr);
	cq_clear_error(ctx);
	return probe_learn(p, text) ? 0 : -1;
}

enum cq_err cq_queue_probe(struct cq_ctx *ctx, const char *queue,
			   struct cq_queue_info *out)
{
	struct probe *p;
	int r = 0;

	memset(out, 0, sizeof(*out));
	out->delivery_limit = -1;
	if (ctx->err)
		return ctx->err;
	/* it must exist: the probe must never create it */
	if (cq_queue_inspect(ctx, queue, NULL, NULL))
		return ctx->err;
	p = calloc(1, sizeof(*p));
	if (!p)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	p->durable = true;
	snprintf(p->args[0].key, sizeof(p->args[0].key), "x-queue-type");
	snprintf(p->args[0].sval, sizeof(p->args[0].sval), "classic");
	p->args[0].kind = AMQP_FIELD_KIND_UTF8;
	p->n = 1;
	for (int round = 0; round < PROBE_ARGS + 4 && r == 0; round++)
		r = probe_round(ctx, queue, p);
	if (r == 1) {
		out->known = true;
		for (int i = 0; i < p->n; i++) {
			const struct probe_arg *a = &p->args[i];

			if (strcmp(a->key, "x-queue-type") == 0)
				out->quorum = strcmp(a->sval, "quorum") == 0;
			else if (strcmp(a->key, "x-delivery-limit") == 0)
				out->delivery_limit = a->ival;
		}
	}
	free(p);
	if (ctx->err == CQ_ERR_DATA)
		cq_clear_error(ctx);
	return ctx->err;
}

/* ---- peek --------------------------------------------------------------- */

enum cq_err cq_peek(struct cq_ctx *ctx, const char *queue, size_t count,
		    cq_peek_fn fn, void *arg, size_t *seen)
{
	uint64_t last = 0;
	enum cq_err e = CQ_OK;

	*seen = 0;
	if (cq_queue_inspect(ctx, queue, NULL, NULL))
		return ctx->err;
	/* hold every message unacked, so none comes twice, then requeue all */
	while (*seen < count) {
		struct cq_delivery *d;

		if (cq_get(ctx, queue, &d))
			return ctx->err;	/* closing the channel requeues */
		if (!d)
			break;
		last = d->delivery_tag;
		(*seen)++;
		e = fn(arg, d);
		cq_delivery_free(d);
		if (e)
			break;
	}
	if (last && cq_nack(ctx, last, true, true))
		return ctx->err;
	return e;
}
