/* qdriver_int.h - the queue engine's driver interface: what consume's
 * policy (consume.c: handler jobs, held retries, poison codes, dead
 * letters, settling only once the work is done, stop requests, dedupe,
 * --until-empty) asks of a queue backend, and what a backend tells it.
 *
 * The engine never sees the wire.  A driver owns its connection, the
 * message's representation (AMQP headers; for a Redis list the retry count
 * and reason kept beside the list; a stream entry's fields) and the
 * atomicity of each move.  consume_amqp.c is the AMQP driver; the unit
 * tests have an in-memory one (tests/unit/test_engine.c).
 *
 * The handle of a taken message is its delivery_tag: increasing in the
 * order the driver took them (AMQP's own tags; a Redis driver numbers what
 * it moved into its processing list or read with XREADGROUP, and maps the
 * number to the entry).  A driver puts the engine's retry count in the
 * CQ_HDR_RETRIES header of what it takes, and a broker's count of returns
 * in CQ_HDR_DELIVERY_COUNT (a stream's delivery count).
 *
 * Errors: a driver that loses its connection leaves the error on the
 * context (ctx->err): nothing more can be settled, and what was not is
 * delivered again.  A failure after which the connection still works (a
 * refused message, a dead-letter queue that cannot be declared) goes to
 * hooks.fail: the engine stops taking, and settles what finished.
 */
#ifndef CQ_QDRIVER_INT_H
#define CQ_QDRIVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cq.h"

/* What a driver calls back into the engine (set before connect). */
struct cqi_qhooks {
	void *arg;
	/* A message taken (the engine owns it now).  False when it cannot
	 * be kept (out of memory): the driver frees it, unsettled. */
	bool (*deliver)(void *arg, struct cq_delivery *d);
	/* A retry or dead letter given to the driver is settled: ok when
	 * the message is safely in its new place and the original acked;
	 * otherwise the original stays in the queue, and reason says why. */
	void (*settled)(void *arg, bool dead, bool ok, const char *reason);
	/* Stop gracefully with this error (the connection still works). */
	void (*fail)(void *arg, enum cq_err e, const char *msg);
	/* Something the user should know (a missing dead-letter exchange). */
	void (*notice)(void *arg, const char *msg);
};

/* What the driver needs to know of the run. */
struct cqi_qconf {
	const char *queue;
	const char *dlq;	/* --dlq, or NULL: the driver's default */
	bool exec;		/* handlers: failures are retried and dead-lettered
				 * (the message's raw form is kept for that) */
};

/* Why a handler's message failed, for the retry or dead letter. */
struct cqi_failure {
	long long attempts;	/* failed attempts, this one included */
	int code;		/* shell-style exit code */
	const char *reason;	/* "exit 3", "poison (exit 65)", "timeout", "signal 9" */
	const char *tail;	/* the last lines of its stderr (tlen bytes) */
	size_t tlen;
	const char *host;	/* where it ran */
};

struct cqi_qdriver;

struct cqi_qdriver_ops {
	/* Be connected: the program connects (cli_ready); a driver whose
	 * connection is missing says so (CQ_ERR_INTERNAL). */
	enum cq_err (*connect)(struct cqi_qdriver *q);
	/* Does the queue exist, and how many messages are ready?  A missing
	 * queue is CQ_ERR_NOTFOUND; every error is on the context. */
	enum cq_err (*inspect)(struct cqi_qdriver *q, uint64_t *ready);
	/* Start taking: at most window messages unsettled at once.  With
	 * conf.exec, first prepare retries and dead letters. */
	enum cq_err (*start)(struct cqi_qdriver *q, unsigned window);
	/*
	 * Serve the connection (heartbeats, confirms: hooks.settled) and
	 * hand new messages to hooks.deliver, waiting up to wait_ms for the
	 * first thing to happen; stop handing once max were handed (what
	 * else has arrived waits, and buffered() says so).
	 */
	enum cq_err (*take)(struct cqi_qdriver *q, size_t max, long long wait_ms);
	/* Something already read and not yet served: take() will not wait. */
	bool (*buffered)(const struct cqi_qdriver *q);
	/* A descriptor to poll for input while handlers run, or -1. */
	int (*fd)(const struct cqi_qdriver *q);
	/* Retries and dead letters given to it and not yet settled. */
	size_t (*unsettled)(const struct cqi_qdriver *q);
	/* The ready count during the run (--until-empty).  CQ_OK; an error
	 * kind with why written (the connection still works); or an error
	 * on the context (the connection is gone). */
	enum cq_err (*depth)(struct cqi_qdriver *q, uint64_t *ready,
			     char *why, size_t len);
	/* Take nothing new (hand what already arrived). */
	void (*stop)(struct cqi_qdriver *q);
	/* Take again after stop (--until-empty found retries back). */
	enum cq_err (*resume)(struct cqi_qdriver *q);
	/* The work on tag is done: remove it for good (with upto, every
	 * message taken up to it too). */
	void (*ack)(struct cqi_qdriver *q, uint64_t tag, bool upto);
	/* Put d back at the end of its queue with f->attempts as its retry
	 * count and f's reason beside it; the original is removed only once
	 * the copy is safe (hooks.settled, now or later). */
	void (*retry)(struct cqi_qdriver *q, const struct cq_delivery *d,
		      const struct cqi_failure *f);
	/* Move d to the dead letters with f's reason (hooks.settled, now or
	 * later); where gets "to 'Q'" or "through exchange 'X'".  False when
	 * it was not even begun (d stays, unsettled; hooks.fail told why). */
	bool (*dead_letter)(struct cqi_qdriver *q, const struct cq_delivery *d,
			    const struct cqi_failure *f, char *where,
			    size_t len);
	/* Wait for everything given to retry and dead_letter to settle. */
	enum cq_err (*flush)(struct cqi_qdriver *q);
	void (*free)(struct cqi_qdriver *q);
};

/* The part every driver starts with. */
struct cqi_qdriver {
	const struct cqi_qdriver_ops *ops;
	struct cq_ctx *ctx;
	struct cqi_qconf conf;
	struct cqi_qhooks hooks;
};

/* The AMQP driver (consume_amqp.c); NULL out of memory (context error). */
struct cqi_qdriver *cqi_amqp_qdriver_new(struct cq_ctx *ctx,
					 const struct cqi_qconf *conf);

/*
 * cq_consume over a driver (which the engine frees).  The options are
 * checked as cq_consume checks them; o->queue must be conf.queue.
 */
enum cq_err cqi_consume_on(struct cq_ctx *ctx, struct cqi_qdriver *q,
			   const struct cq_consume_opts *o,
			   struct cq_consume_stats *st);

#endif
