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

#endif
