/* declare.c - topology: durable queues, dead-letter exchange and queue
 * (the AMQP driver's declare, cqi_amqp_declare), passive inspection;
 * cq_declare and cq_purge over the driver of the context's backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
#include "qargs_int.h"
#include "qdriver_int.h"
#include "queue_int.h"

/* ---- names ---------------------------------------------------------------- */

enum cq_err cqi_name_check(struct cq_ctx *ctx, const char *kind,
			   const char *name)
{
	char err[400];

	if (cq_name_ok(kind, name, err, sizeof(err)))
		return CQ_OK;
	return cq_seterr(ctx, CQ_ERR_USAGE, "%s", err);
}

/* s as one shell word: bare when it holds only characters no shell
 * treats specially, else in single quotes (' written as '\''). */
void cqi_shell_word(const char *s, char *buf, size_t cap)
{
	size_t o = 0;

	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789._-+:,@%/=") == strlen(s)) {
		snprintf(buf, cap, "%s", s);
		return;
	}
	buf[o++] = '\'';
	for (; *s && o + 6 < cap; s++) {
		if (*s == '\'') {
			memcpy(buf + o, "'\\''", 4);
			o += 4;
		} else {
			buf[o++] = *s;
		}
	}
	buf[o++] = '\'';
	buf[o] = '\0';
}

enum cq_err cqi_missing_queue(struct cq_ctx *ctx, const char *queue)
{
	const char *b = ctx->set.queue_backend;
	char word[1100];

	cqi_shell_word(queue, word, sizeof(word));
	if (b && *b && strcmp(b, "amqp") != 0)
		return cq_seterr(ctx, CQ_ERR_NOTFOUND,
				 "queue '%s' does not exist (create it with: qctl declare --backend %s %s)",
				 queue, b, word);
	return cq_seterr(ctx, CQ_ERR_NOTFOUND,
			 "queue '%s' does not exist (create it with: qctl declare %s)",
			 queue, word);
}

void cq_queue_opts_init(struct cq_queue_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_length = -1;
	o->message_ttl_ms = -1;
	o->max_priority = -1;
	o->delivery_limit = -1;
	o->at_least_once = true;
}

void cq_declared_clear(struct cq_declared *d)
{
	if (!d)
		return;
	free(d->dlq);
	free(d->dlx);
	memset(d, 0, sizeof(*d));
}

/* The broker's 406 for a declare whose arguments differ (its reply, not
 * our message, is read: qargs.c) becomes a sentence naming the argument. */
static enum cq_err explain_conflict(struct cq_ctx *ctx, const char *queue)
{
	const char *text = ctx->amqp->reply_text, *cur, *rec;
	char arg[128];
	size_t rlen;

	if (ctx->amqp->reply_code != 406)
		return ctx->err;
	if (!cqi_parse_arg_name(text, arg, sizeof(arg)))
		return ctx->err;	/* another precondition: as it came */
	/* a long name makes the broker cut its text before the values */
	if (!cqi_parse_inequivalent(text, arg, sizeof(arg), &cur))
		return cq_seterr(ctx, CQ_ERR_DATA,
				 "queue '%s' already exists with a different '%s'; "
				 "delete it or declare it with the same arguments",
				 queue, arg);
	rec = cqi_parse_received(text, &rlen);
	return cq_seterr(ctx, CQ_ERR_DATA,
			 "queue '%s' already exists with a different '%s' (%.*s%scurrent is %s); "
			 "delete it or declare it with the same arguments",
			 queue, arg, (int)rlen, rec ? rec : "",
			 rec ? " but " : "", cur);
}

static void add_int(amqp_table_entry_t *e, int *n, const char *key,
		    long long v)
{
	e[*n].key = amqp_cstring_bytes(key);
	e[*n].value.kind = AMQP_FIELD_KIND_I64;
	e[*n].value.value.i64 = v;
	(*n)++;
}

static void add_str(amqp_table_entry_t *e, int *n, const char *key,
		    const char *v)
{
	e[*n].key = amqp_cstring_bytes(key);
	e[*n].value.kind = AMQP_FIELD_KIND_UTF8;
	e[*n].value.value.bytes = amqp_cstring_bytes(v);
	(*n)++;
}

static enum cq_err queue_declare(struct cq_ctx *ctx, const char *queue,
				 amqp_table_entry_t *e, int n,
				 struct cq_declared *out)
{
	amqp_table_t args = { n, n ? e : NULL };
	amqp_queue_declare_ok_t *ok;
	char what[300];

	snprintf(what, sizeof(what), "declare queue '%s'", queue);
	ok = amqp_queue_declare(ctx->amqp->conn, CQI_CHANNEL,
				amqp_cstring_bytes(queue), 0, 1, 0, 0, args);
	if (cqi_amqp_check(ctx, what)) {
		if (ctx->err == CQ_ERR_DATA)
			return explain_conflict(ctx, queue);
		return ctx->err;
	}
	if (out) {
		out->messages = ok->message_count;
		out->consumers = ok->consumer_count;
	}
	return CQ_OK;
}

/* The dead-letter exchange (direct, durable), queue and binding. */
static enum cq_err declare_dlq(struct cq_ctx *ctx, const char *dlx,
			       const char *dlq, bool quorum)
{
	amqp_connection_state_t conn = ctx->amqp->conn;
	amqp_table_entry_t e[1];
	char what[600];
	int n = 0;

	snprintf(what, sizeof(what), "declare exchange '%s'", dlx);
	amqp_exchange_declare(conn, CQI_CHANNEL, amqp_cstring_bytes(dlx),
			      amqp_cstring_bytes("direct"), 0, 1, 0, 0,
			      amqp_empty_table);
	if (cqi_amqp_check(ctx, what))
		return ctx->err;
	if (quorum)
		add_str(e, &n, "x-queue-type", "quorum");
	if (queue_declare(ctx, dlq, e, n, NULL))
		return ctx->err;
	snprintf(what, sizeof(what), "bind queue '%s' to exchange '%s'", dlq,
		 dlx);
	amqp_queue_bind(conn, CQI_CHANNEL, amqp_cstring_bytes(dlq),
			amqp_cstring_bytes(dlx), amqp_cstring_bytes(dlq),
			amqp_empty_table);
	return cqi_amqp_check(ctx, what);
}

enum cq_err cqi_amqp_declare(struct cq_ctx *ctx, const char *queue,
			     const struct cq_queue_opts *o,
			     struct cq_declared *out)
{
	amqp_table_entry_t e[10];
	int n = 0;

	memset(out, 0, sizeof(*out));
	if (ctx->err)
		return ctx->err;
	if (cqi_name_check(ctx, "queue", queue) ||
	    (o->dlq && *o->dlq && cqi_name_check(ctx, "dead-letter queue", o->dlq)))
		return ctx->err;
	if (o->dlq) {
		if (*o->dlq)
			out->dlq = strdup(o->dlq);
		else if (asprintf(&out->dlq, "%s%s", queue, CQ_DLQ_SUFFIX) < 0)
			out->dlq = NULL;
		if (asprintf(&out->dlx, "%s%s", queue, CQ_DLX_SUFFIX) < 0)
			out->dlx = NULL;
		if (!out->dlq || !out->dlx)
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		if (strlen(out->dlq) > 255 || strlen(out->dlx) > 255)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "queue name '%s' too long for a dead-letter queue",
					 queue);
		if (strcmp(out->dlq, queue) == 0)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "a queue cannot be its own dead-letter queue");
		if (declare_dlq(ctx, out->dlx, out->dlq, o->quorum))
			return ctx->err;
		add_str(e, &n, "x-dead-letter-exchange", out->dlx);
		add_str(e, &n, "x-dead-letter-routing-key", out->dlq);
		if (o->quorum && o->at_least_once) {
			add_str(e, &n, "x-dead-letter-strategy", "at-least-once");
			add_str(e, &n, "x-overflow", "reject-publish");
		}
	}
	if (o->quorum)
		add_str(e, &n, "x-queue-type", "quorum");
	if (o->max_length >= 0)
		add_int(e, &n, "x-max-length", o->max_length);
	if (o->message_ttl_ms >= 0)
		add_int(e, &n, "x-message-ttl", o->message_ttl_ms);
	if (o->max_priority >= 0)
		add_int(e, &n, "x-max-priority", o->max_priority);
	if (o->delivery_limit >= 0)
		add_int(e, &n, "x-delivery-limit", o->delivery_limit);
	return queue_declare(ctx, queue, e, n, out);
}

enum cq_err cqi_queue_inspect(struct cq_ctx *ctx, const char *queue,
			     uint32_t *messages, uint32_t *consumers)
{
	amqp_queue_declare_ok_t *ok;
	char what[300];

	if (ctx->err || cqi_name_check(ctx, "queue", queue))
		return ctx->err;
	snprintf(what, sizeof(what), "queue '%s'", queue);
	ok = amqp_queue_declare(ctx->amqp->conn, CQI_CHANNEL,
				amqp_cstring_bytes(queue), 1, 0, 0, 0,
				amqp_empty_table);
	if (cqi_amqp_check(ctx, what)) {
		if (ctx->err == CQ_ERR_NOTFOUND)
			cqi_missing_queue(ctx, queue);
		return ctx->err;
	}
	if (messages)
		*messages = ok->message_count;
	if (consumers)
		*consumers = ok->consumer_count;
	return CQ_OK;
}

/* ---- over the driver of the context's backend ---------------------------- */

enum cq_err cq_declare(struct cq_ctx *ctx, const char *queue,
		       const struct cq_queue_opts *o, struct cq_declared *out)
{
	struct cqi_qconf conf = { .queue = queue };
	struct cqi_qdriver *q;

	memset(out, 0, sizeof(*out));
	if (ctx->err || !(q = cqi_qdriver_open(ctx, &conf, NULL)))
		return ctx->err;
	q->ops->declare(q, o, out);
	q->ops->free(q);
	return ctx->err;
}

enum cq_err cq_purge(struct cq_ctx *ctx, const char *queue, uint32_t *count)
{
	struct cqi_qconf conf = { .queue = queue };
	struct cqi_qdriver *q;
	uint64_t n = 0;

	*count = 0;
	if (ctx->err || !(q = cqi_qdriver_open(ctx, &conf, NULL)))
		return ctx->err;
	if (q->ops->purge(q, &n) == CQ_OK)
		*count = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
	q->ops->free(q);
	return ctx->err;
}

enum cq_err cqi_exchange_inspect(struct cq_ctx *ctx, const char *exchange)
{
	char what[300];

	if (ctx->err || cqi_name_check(ctx, "exchange", exchange))
		return ctx->err;
	snprintf(what, sizeof(what), "exchange '%s'", exchange);
	amqp_exchange_declare(ctx->amqp->conn, CQI_CHANNEL,
			      amqp_cstring_bytes(exchange),
			      amqp_cstring_bytes("direct"), 1, 0, 0, 0,
			      amqp_empty_table);
	if (cqi_amqp_check(ctx, what) == CQ_ERR_NOTFOUND)
		cq_seterr(ctx, CQ_ERR_NOTFOUND, "exchange '%s' does not exist",
			  exchange);
	return ctx->err;
}
