/* stats_queue.c - queue figures from passive declares (librabbitmq only;
 * qctl links this file, never libcurl). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
#include "queue_int.h"

/*
 * A passive queue.declare: ready messages (unacked ones are not counted
 * by the broker here) and consumers, with *found false for a missing
 * queue, which is no error here (the channel the broker closed for it is
 * reopened).
 */
static enum cq_err passive(struct cq_ctx *ctx, const char *queue,
			   uint32_t *ready, uint32_t *consumers, bool *found)
{
	amqp_queue_declare_ok_t *ok;
	char text[256], what[300];
	int code;

	*found = false;
	if (ctx->err)
		return ctx->err;
	if (!ctx->amqp)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "not connected to RabbitMQ");
	if (cqi_name_check(ctx, "queue", queue))
		return ctx->err;
	ok = amqp_queue_declare(ctx->amqp->conn, CQI_CHANNEL,
				amqp_cstring_bytes(queue), 1, 0, 0, 0,
				amqp_empty_table);
	snprintf(what, sizeof(what), "queue '%s'", queue);
	code = cqi_amqp_reply(ctx, CQI_CHANNEL, what, text, sizeof(text));
	if (code < 0)
		return ctx->err;
	if (code == 404)
		return CQ_OK;
	if (code || !ok)
		return cq_seterr(ctx, code ? cqi_amqp_code_kind(code) :
				 CQ_ERR_INTERNAL, "%s: %s", what,
				 code ? text : "no reply");
	*found = true;
	*ready = ok->message_count;
	*consumers = ok->consumer_count;
	return CQ_OK;
}

/* Ready messages of the dead-letter queue, NAN when it does not exist;
 * *name gets the queue used (or NULL). */
static enum cq_err dlq_depth(struct cq_ctx *ctx, const char *queue,
			     const char *dlq, double *depth, char **name)
{
	char *guess = NULL;
	uint32_t ready, consumers;
	bool found;
	enum cq_err e;

	*depth = NAN;
	*name = NULL;
	if (!dlq) {
		if (asprintf(&guess, "%s%s", queue, CQ_DLQ_SUFFIX) < 0)
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		dlq = guess;
		if (!cq_name_ok("queue", guess, NULL, 0)) {
			free(guess);	/* QUEUE.dlq would be too long */
			return CQ_OK;
		}
	}
	e = passive(ctx, dlq, &ready, &consumers, &found);
	if (!e && found) {
		*depth = ready;
		*name = strdup(dlq);
		if (!*name)
			e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	free(guess);
	return e;
}

enum cq_err cq_queue_figures(struct cq_ctx *ctx, size_t n,
			     const char *const *queues,
			     const char *const *dlqs, struct cq_metrics *ms)
{
	for (size_t i = 0; i < n; i++) {
		const char *q = queues[i];
		uint32_t ready = 0, consumers = 0;
		double depth = NAN;
		char *dlq = NULL;
		bool found;
		enum cq_err e = passive(ctx, q, &ready, &consumers, &found);
		int ok;

		if (!e && found)
			e = dlq_depth(ctx, q, dlqs ? dlqs[i] : NULL, &depth, &dlq);
		if (e)
			return e;
		ok = cqi_metrics_add_queue(ms, q, dlq, found) >= 0 &&
		     cqi_metrics_add(ms, "ready", q, strlen(q), found ? ready : NAN) &&
		     cqi_metrics_add(ms, "consumers", q, strlen(q),
				    found ? consumers : NAN) &&
		     cqi_metrics_add(ms, "dlq", q, strlen(q), depth);
		free(dlq);
		if (!ok)
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	return CQ_OK;
}
