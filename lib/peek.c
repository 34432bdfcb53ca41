/* peek.c - look at messages without removing them, and find out (through
 * the queue-argument probe, qargs.c) whether a queue is a quorum queue
 * with a delivery limit (where every peek counts as a delivery). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
#include "qargs_int.h"
#include "queue_int.h"

/* A probe declaration on the main channel. */
struct on_main {
	struct cq_ctx *ctx;
	const char *queue;
};

static int main_declare(void *arg, bool durable, bool auto_delete,
			amqp_table_t t, char *text, size_t len)
{
	struct on_main *m = arg;

	amqp_queue_declare(m->ctx->amqp->conn, CQI_CHANNEL,
			   amqp_cstring_bytes(m->queue), 0, durable, 0,
			   auto_delete, t);
	return cqi_amqp_reply(m->ctx, CQI_CHANNEL, "probe", text, len);
}

enum cq_err cq_queue_probe(struct cq_ctx *ctx, const char *queue,
			   struct cq_queue_info *out)
{
	struct on_main m = { ctx, queue };
	struct cqi_qargs *q;
	const struct cqi_qarg *a;

	memset(out, 0, sizeof(*out));
	out->delivery_limit = -1;
	if (ctx->err)
		return ctx->err;
	/* it must exist: the probe must never create it */
	if (cq_queue_inspect(ctx, queue, NULL, NULL))
		return ctx->err;
	q = calloc(1, sizeof(*q));
	if (!q)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (cqi_qargs_probe(ctx, main_declare, &m, q) == CQ_OK && q->complete) {
		out->known = true;
		a = cqi_qargs_find(q, "x-queue-type");
		out->quorum = a && strcmp(a->sval, "quorum") == 0;
		a = cqi_qargs_find(q, "x-delivery-limit");
		if (a)
			out->delivery_limit = a->ival;
	}
	cqi_qargs_clear(q);
	free(q);
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

		if (cqi_get(ctx, queue, &d))
			return ctx->err;	/* closing the channel requeues */
		if (!d)
			break;
		last = d->delivery_tag;
		(*seen)++;
		e = fn(arg, d);
		cqi_delivery_free(d);
		if (e)
			break;
	}
	if (last && cqi_nack(ctx, last, true, true))
		return ctx->err;
	return e;
}
