/* qargs_int.h - a queue's arguments: the broker's 406 reply parsed once,
 * and the one probe that finds every argument (qargs.c); the AMQP driver
 * (consume_amqp.c) runs the probe for consume's dead-letter exchange and
 * peek's queue type, declare.c explains a conflict with the parser. */
#ifndef CQ_QARGS_INT_H
#define CQ_QARGS_INT_H

#include "amqp_int.h"
#include "cq.h"

/*
 * The text of a 406 PRECONDITION_FAILED for a queue.declare whose
 * arguments differ: "inequivalent arg 'K' for queue 'Q' in vhost 'V':
 * received R but current is C".  Sets key (NUL-terminated, false when
 * longer than klen - 1) and *cur to C within text (after the last " but
 * current is ", so that names holding those words do not mislead).
 * False too when the broker cut its text (at 255 bytes, with long names)
 * before C.
 */
bool cqi_parse_inequivalent(const char *text, char *key, size_t klen,
			    const char **cur);
/* Only K of that text (which the broker never cuts off): false when it is
 * absent or longer than klen - 1. */
bool cqi_parse_arg_name(const char *text, char *key, size_t klen);
/* C = "the value 'X' of type 'T'": X (malloc'd, caller frees) and T.
 * False for anything else ("none", "'true'"). */
bool cqi_parse_value(const char *cur, char **val, char *type, size_t tlen);
/* R of that text ("none", "'classic'", "the value ..."), within text, for
 * messages; *len 0 when the text has none. */
const char *cqi_parse_received(const char *text, size_t *len);

/*
 * The probe.  AMQP cannot read a queue's arguments, but RabbitMQ names the
 * first one that differs when a declaration does not match.  So declare
 * the queue with x-queue-type "classic", adopt each argument the broker
 * names with its current value, and repeat until the declaration matches
 * (a no-op on the existing queue).  When a long queue name made the
 * broker cut its text before the value, the probe tries the queue types
 * for x-queue-type and the other truth value for durable and auto_delete;
 * any other value it cannot learn, and it stops there, incomplete.
 * Policies are not arguments and are not seen.
 */
#define CQI_QARGS_MAX 16

struct cqi_qarg {
	char key[128];
	uint8_t kind;		/* AMQP_FIELD_KIND_* */
	char *sval;		/* the value as the broker wrote it */
	long long ival;		/* integer and boolean kinds */
};

struct cqi_qargs {
	struct cqi_qarg a[CQI_QARGS_MAX];
	int n;
	bool durable, auto_delete;
	bool complete;		/* the broker took exactly these */
	char cut[128];		/* an argument whose value the broker's text
				 * cut off ("" when none) */
};

/*
 * Declare the queue (never passive: it must exist) with durable,
 * auto_delete and the table t on the caller's channel.  0 when the broker
 * took it; else its reply code with its reply text in text (the channel
 * closed and acknowledged); -1 on a connection failure, with the context
 * error set.
 */
typedef int (*cqi_declare_fn)(void *arg, bool durable, bool auto_delete,
			      amqp_table_t t, char *text, size_t len);

/* Probe through declare.  CQ_OK also when the probe could not finish
 * (q->complete false); an error only when the connection failed. */
enum cq_err cqi_qargs_probe(struct cq_ctx *ctx, cqi_declare_fn declare,
			    void *arg, struct cqi_qargs *q);
/* The argument named key, or NULL. */
const struct cqi_qarg *cqi_qargs_find(const struct cqi_qargs *q,
				      const char *key);
void cqi_qargs_clear(struct cqi_qargs *q);

#endif
