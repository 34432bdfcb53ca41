/* queue_int.h - queue internals shared by lib/ files (publish.c, queue.c,
 * peek.c, replay.c, consume), never by programs. */
#ifndef CQ_QUEUE_INT_H
#define CQ_QUEUE_INT_H

#include "amqp_int.h"
#include "cq.h"

/* cq_name_ok as the context's error: CQ_ERR_USAGE when name is refused. */
enum cq_err cqi_name_check(struct cq_ctx *ctx, const char *kind,
			   const char *name);
/* The error for a queue that does not exist (CQ_ERR_NOTFOUND), with the
 * command that creates it, the name quoted for the shell when needed. */
enum cq_err cqi_missing_queue(struct cq_ctx *ctx, const char *queue);
/* s as one shell word in buf: as is when plain, else single-quoted. */
void cqi_shell_word(const char *s, char *buf, size_t cap);

/* The raw properties of a consumed message, kept for republishing:
 * msg.properties lives in msg.pool; msg.body is empty (copied out). */
struct cqi_props {
	amqp_message_t msg;
};

/* A NUL-terminated copy of b into *out (to free), its length into *len
 * unless len is NULL; false out of memory. */
bool cqi_bytes_dup(amqp_bytes_t b, char **out, size_t *len);

/*
 * Decode an AMQP field table into cq_fields (a pure function: no I/O, any
 * table gives fields or CQ_ERR_NOMEM).  *items is NULL when n is 0.
 */
enum cq_err cqi_fields_from_table(const amqp_table_t *t,
				  struct cq_field **items, size_t *n);

/* The fields as a JSON object (jansson's json_t); NULL out of memory. */
struct json_t *cqi_fields_json(const struct cq_field *items, size_t n);

/*
 * Build a delivery from a method (basic.get-ok or basic.deliver) and the
 * message read after it with amqp_read_message.  Takes the message over
 * (destroys it, also on failure).  queue may be NULL.
 */
enum cq_err cqi_delivery_new(struct cq_ctx *ctx, const char *queue,
			     uint64_t tag, bool redelivered,
			     amqp_bytes_t exchange, amqp_bytes_t routing_key,
			     uint32_t remaining, amqp_message_t *msg,
			     struct cq_delivery **out);

/*
 * A frame the publisher read while waiting for confirms that is not a
 * confirm (e.g. a basic.deliver or basic.get-ok on a consuming channel).
 * The hook must read the rest of that message (amqp_read_message) before
 * returning.  Without a hook such a frame is CQ_ERR_INTERNAL.
 */
typedef enum cq_err (*cqi_frame_fn)(void *arg, const amqp_frame_t *f);
void cqi_publisher_on_frame(struct cq_publisher *pub, cqi_frame_fn fn,
			    void *arg);
/*
 * Hand the publisher a frame someone else read on the connection (after
 * amqp_consume_message returned AMQP_STATUS_UNEXPECTED_STATE, say).
 * *handled is false when the frame is not one of the publisher's
 * (basic.ack, basic.nack, basic.return, channel/connection close).
 */
enum cq_err cqi_publisher_frame(struct cq_publisher *pub,
				const amqp_frame_t *f, bool *handled);

/* Passive declare: ready messages and consumers of an existing queue;
 * CQ_ERR_NOTFOUND when it does not exist. */
enum cq_err cqi_queue_inspect(struct cq_ctx *ctx, const char *queue,
			      uint32_t *messages, uint32_t *consumers);
/* Passive declare of an exchange: CQ_ERR_NOTFOUND when missing. */
enum cq_err cqi_exchange_inspect(struct cq_ctx *ctx, const char *exchange);

/* ---- the confirming publisher (publish.c) ------------------------------- */

struct cq_publisher;

/*
 * Called exactly once for every message given to cqi_publish (whatever
 * cqi_publish returns): ok when the broker confirmed it, else reason is one
 * of the CQ_REASON_* strings (static).
 * Runs inside cqi_publish, cqi_publisher_poll or cqi_publisher_flush; it may
 * ack or nack deliveries (cqi_ack) but must not publish.
 */
typedef void (*cq_settle_fn)(void *arg, uint64_t user_tag, bool ok,
			     const char *reason);

/*
 * A publisher on the context's channel, with publisher confirms, at most
 * window messages unconfirmed at a time (1 - 1,000,000), and mandatory
 * publishing (an unroutable message fails instead of vanishing).  NULL on
 * error (message in ctx).
 */
struct cq_publisher *cqi_publisher_new(struct cq_ctx *ctx, size_t window,
				      bool mandatory);
void cqi_publisher_on_settle(struct cq_publisher *pub, cq_settle_fn fn,
			    void *arg);
/*
 * Told when the broker blocks publishing on the connection (a memory or
 * disk alarm: blocked true, reason its text, e.g. "low on memory") and
 * when it lets it go on (blocked false, reason NULL).  While blocked the
 * publisher sends nothing and waits, at most the context's timeout from
 * the block on; then every outstanding message fails with
 * CQ_REASON_BLOCKED and the publisher is dead (CQ_ERR_TEMPFAIL).
 */
typedef void (*cq_blocked_fn)(void *arg, bool blocked, const char *reason);
void cqi_publisher_on_blocked(struct cq_publisher *pub, cq_blocked_fn fn,
			     void *arg);
/*
 * Send one message; blocks reading confirms while the window is full (as
 * long as cqi_publisher_flush would wait).  Returns CQ_OK when sent;
 * CQ_ERR_DATA for a message that cannot be sent (bad priority...: settled
 * with CQ_REASON_BAD; the publisher stays usable, the caller clears the
 * context error); CQ_ERR_TEMPFAIL (or another
 * error) when the connection is lost: every outstanding message is settled
 * failed and the publisher is dead.
 */
enum cq_err cqi_publish(struct cq_publisher *pub, const struct cq_message *msg,
		       uint64_t user_tag);
/* Wait for every outstanding confirm.  After 60s (or the context timeout if
 * longer) without any confirm, while the broker does not say it is
 * blocked, the rest are settled failed and CQ_ERR_TEMPFAIL returned; the
 * same at once on a second stop request (cq_stop_requested() == 2), with
 * CQ_REASON_STOPPED. */
enum cq_err cqi_publisher_flush(struct cq_publisher *pub);
uint64_t cqi_publisher_confirmed(const struct cq_publisher *pub);
uint64_t cqi_publisher_failed(const struct cq_publisher *pub);
/* False once the channel or connection is gone (every later cqi_publish
 * fails at once). */
bool cqi_publisher_alive(const struct cq_publisher *pub);
/* Frees without settling what is still outstanding: flush first. */
void cqi_publisher_free(struct cq_publisher *pub);

#endif
