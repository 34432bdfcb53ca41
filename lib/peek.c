/* peek.c - look at messages without removing them, and what a queue's
 * settings say (cq_queue_probe: a quorum queue with a delivery limit,
 * where every peek counts as a delivery), over the queue driver of the
 * context's backend (qdriver_int.h). */
#include <string.h>

#include "cq.h"
#include "qdriver_int.h"

/* A driver for queue, or NULL (context error). */
static struct cqi_qdriver *open_queue(struct cq_ctx *ctx, const char *queue)
{
	struct cqi_qconf conf = { .queue = queue };

	return cqi_qdriver_open(ctx, &conf, NULL);
}

enum cq_err cq_queue_probe(struct cq_ctx *ctx, const char *queue,
			   struct cq_queue_info *out)
{
	struct cqi_qdriver *q;

	memset(out, 0, sizeof(*out));
	out->delivery_limit = -1;
	if (ctx->err || !(q = open_queue(ctx, queue)))
		return ctx->err;
	q->ops->info(q, out);
	q->ops->free(q);
	return ctx->err;
}

enum cq_err cq_peek(struct cq_ctx *ctx, const char *queue, size_t count,
		    cq_peek_fn fn, void *arg, size_t *seen)
{
	struct cqi_qdriver *q;
	enum cq_err e;

	*seen = 0;
	if (ctx->err || !(q = open_queue(ctx, queue)))
		return ctx->err;
	e = q->ops->peek(q, count, fn, arg, seen);
	q->ops->free(q);
	return e;
}
