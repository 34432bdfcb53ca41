/* stats_queue.c - queue figures through the driver of the context's
 * backend (its stats op; AMQP: passive declares), never libcurl (qctl
 * links this file). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"

/* The figures of one queue through the driver of the context's backend. */
static enum cq_err queue_stats(struct cq_ctx *ctx, const char *queue,
			       const char *dlq, struct cqi_qstats *st)
{
	struct cqi_qconf conf = { .queue = queue, .dlq = dlq };
	struct cqi_qdriver *q;

	memset(st, 0, sizeof(*st));
	st->ready = st->inflight = st->consumers = st->dlq = NAN;
	if (ctx->err || !(q = cqi_qdriver_open(ctx, &conf, NULL)))
		return ctx->err;
	q->ops->stats(q, st);
	q->ops->free(q);
	return ctx->err;
}

enum cq_err cqi_queue_figures(struct cq_ctx *ctx, const char *queue,
			      const char *label, const char *dlq,
			      struct cq_metrics *ms)
{
	size_t len = strlen(label);
	struct cqi_qstats st;
	const char *b = ctx->set.queue_backend;
	bool redis = false, ok;
	int at;

	if (queue_stats(ctx, queue, dlq, &st))
		return ctx->err;
	cq_backend_ok(b, &redis, NULL, 0);
	at = cqi_metrics_add_queue(ms, label, st.dlq_name[0] ? st.dlq_name :
				   NULL, st.found);
	ok = at >= 0 &&
	     cqi_metrics_add(ms, "ready", label, len, st.ready) &&
	     cqi_metrics_add(ms, "consumers", label, len, st.consumers) &&
	     cqi_metrics_add(ms, "dlq", label, len, st.dlq) &&
	     (isnan(st.inflight) ||
	      cqi_metrics_add(ms, "unacked", label, len, st.inflight));
	for (size_t k = 0; ok && k < st.nextra; k++)
		if (isnan(st.inflight) || strcmp(st.extra[k].name, "unacked"))
			ok = cqi_metrics_add(ms, st.extra[k].name, label, len,
					     st.extra[k].value);
	if (!ok)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (redis) {
		ms->queues[at].src = CQ_SRC_REDIS;
		ms->queues[at].backend = strcmp(b, "list") == 0 ? "list" : "stream";
	}
	return CQ_OK;
}

enum cq_err cq_queue_figures(struct cq_ctx *ctx, size_t n,
			     const char *const *queues,
			     const char *const *dlqs, struct cq_metrics *ms)
{
	for (size_t i = 0; i < n; i++)
		if (cqi_queue_figures(ctx, queues[i], queues[i],
				      dlqs ? dlqs[i] : NULL, ms))
			return ctx->err;
	return CQ_OK;
}
