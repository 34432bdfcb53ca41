/* queue_list_int.h - Redis list queues (queue_list.c), shared by lib/
 * files only: the key layout, the side hash's records, and the driver. */
#ifndef CQ_QUEUE_LIST_INT_H
#define CQ_QUEUE_LIST_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "cq.h"
#include "qdriver_int.h"

/* The keys of list queue Q (see queue_list.c's opening comment); every
 * one is a full key name, the context's prefix included. */
struct cqi_list_keys {
	struct cq_buf queue;	/* Q */
	struct cq_buf registry;	/* {Q}|cq:consumers */
	struct cq_buf meta;	/* {Q}|cq:meta */
	struct cq_buf dlq;	/* Q.dlq, or --dlq */
	struct cq_buf dlq_meta;	/* {DLQ}|cq:meta */
	struct cq_buf proc;	/* a consumer's processing list (consume) */
	struct cq_buf lease;	/* PROC|cq:lease (consume) */
	char *dlq_name;		/* the DLQ's name as the user writes it */
};
/* Fill k for queue (and dlq, NULL: Q.dlq); proc and lease stay empty. */
enum cq_err cqi_list_keys(struct cq_ctx *ctx, const char *queue,
			  const char *dlq, struct cqi_list_keys *k);
void cqi_list_keys_clear(struct cqi_list_keys *k);
/* The lease key of processing list proc (a full key name). */
bool cqi_list_lease_key(struct cq_ctx *ctx, const struct cq_buf *proc,
			struct cq_buf *out);
/* CQ_ERR_DATA naming key unless it is a list (or missing); what starts
 * the message ("consume"). */
enum cq_err cqi_list_check_type(struct cq_ctx *ctx, const struct cq_buf *key,
				const char *what);

/* The side hash's record of a failure: JSON with retries, code, reason
 * (a dead letter's only), stderr (or stderr_base64), time (epoch s), host,
 * origin (the queue it failed in).  Caller frees; NULL out of memory. */
char *cqi_list_record(const struct cqi_failure *f, const char *origin);
/* A record as the x-cq-* headers qctl writes on AMQP messages (retries,
 * exit code, stderr, host; a dead letter's also death reason,
 * original queue, died at), so peek, replay and handlers read both alike.  A record that is not ours
 * gives no headers. */
enum cq_err cqi_list_record_headers(const char *rec, size_t len,
				    struct cq_field **out, size_t *nout);

/* The list driver of the queue engine; NULL out of memory (context
 * error). */
struct cqi_qdriver *cqi_list_qdriver_new(struct cq_ctx *ctx,
					 const struct cqi_qconf *conf);

#endif
