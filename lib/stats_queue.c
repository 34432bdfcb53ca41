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

enum cq_err cq_queue_figures(struct cq_ctx *ctx, size_t n,
			     const char *const *queues,
			     const char *const *dlqs, struct cq_metrics *ms)
{
	for (size_t i = 0; i < n; i++) {
		const char *q = queues[i];
		size_t len = strlen(q);
		struct cqi_qstats st;
		bool ok;

		if (queue_stats(ctx, q, dlqs ? dlqs[i] : NULL, &st))
			return ctx->err;
		ok = cqi_metrics_add_queue(ms, q, st.dlq_name[0] ? st.dlq_name :
					   NULL, st.found) >= 0 &&
		     cqi_metrics_add(ms, "ready", q, len, st.ready) &&
		     cqi_metrics_add(ms, "consumers", q, len, st.consumers) &&
		     cqi_metrics_add(ms, "dlq", q, len, st.dlq);
		for (size_t k = 0; ok && k < st.nextra; k++)
			ok = cqi_metrics_add(ms, st.extra[k].name, q, len,
					     st.extra[k].value);
		if (!ok)
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	return CQ_OK;
}
