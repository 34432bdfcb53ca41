/* consume_amqp.c - the AMQP driver of the queue verbs (qdriver_int.h):
 * the wire under qctl consume, and the ops of the other verbs (publish,
 * peek, the queue-argument probe, purge, stats; declare's wire is in
 * declare.c, cqi_amqp_declare).
 *
 * One connection, one channel (CQI_CHANNEL) for consuming, acking and the
 * confirmed republishing of retries and dead letters; a side channel for
 * the declares that may fail (and so close their channel).  Frames are
 * read here with amqp_simple_wait_frame_noblock, which also sends the
 * heartbeats; while handlers run, the engine's one poll() watches this
 * socket beside every handler's pipes, so the connection stays serviced.
 * A retry or dead letter is a confirmed publish, and the original is
 * acked only once the broker confirmed its copy (or rejected into the
 * queue's dead-letter exchange, which moves it and records x-death).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
#include "qargs_int.h"
#include "qdriver_int.h"
#include "queue_int.h"

#define SIDE_CHANNEL 2

struct amqp_q {
	struct cqi_qdriver base;	/* first */
	amqp_connection_state_t conn;
	amqp_bytes_t tag;	/* consumer tag (malloc'd) */
	bool consuming;		/* basic.consume active, not cancelled */
	bool side_open;
	unsigned window;	/* prefetch */
	size_t room, handed;	/* take(): how many it may hand, and did */
	struct cq_publisher *pub;
	char *dlx;		/* the queue's dead-letter exchange, or NULL */
	char *dlq;		/* where we publish dead letters ourselves */
	bool dlq_ready;
	/* replay: publishing (pub_start) beside taking */
	bool replay;
	bool browse;		/* taking with basic.get (no consumer) */
	bool stopped;		/* stop(): take nothing new */
	bool empty;		/* a basic.get-empty came back */
	size_t gets;		/* basic.get requests in flight */
	uint64_t held;		/* messages held (hold()) */
	uint64_t max_held;	/* the highest tag held, 0 none */
	/* what pub_start and start were given, for a reconnect */
	size_t pub_window;	/* 0: pub_start was not called */
	char *pub_exchange;
	bool pub_mandatory;
	bool started;
};

static struct amqp_q *Q(struct cqi_qdriver *q)
{
	return (struct amqp_q *)q;
}

static const struct amqp_q *CQ(const struct cqi_qdriver *q)
{
	return (const struct amqp_q *)q;
}

/* ---- reading frames -------------------------------------------------------- */

/* Read the message a basic.deliver or basic.get-ok announced, and hand
 * it over.  The method's fields live in frame memory: copied first. */
static enum cq_err on_message(struct amqp_q *a, const amqp_frame_t *f,
			      uint64_t tag, bool redelivered,
			      amqp_bytes_t exchange, amqp_bytes_t routing_key,
			      uint32_t remaining)
{
	struct cq_ctx *ctx = a->base.ctx;
	amqp_bytes_t ex = amqp_bytes_malloc_dup(exchange);
	amqp_bytes_t rk = amqp_bytes_malloc_dup(routing_key);
	struct cq_delivery *d = NULL;
	amqp_message_t msg;
	amqp_rpc_reply_t r;
	enum cq_err e;

	if ((exchange.len && !ex.bytes) || (routing_key.len && !rk.bytes)) {
		e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = amqp_read_message(a->conn, f->channel, &msg, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		e = cqi_amqp_rpc_err(ctx, r, "read a message");
		goto out;
	}
	e = cqi_delivery_new(ctx, a->base.conf.queue, tag, redelivered, ex, rk,
			     remaining, &msg, &d);
	if (e)
		goto out;
	if (!a->base.conf.exec && !a->replay && d->props) {
		/* printing never republishes: drop the raw properties */
		amqp_destroy_message(&d->props->msg);
		free(d->props);
		d->props = NULL;
	}
	a->handed++;
	if (!a->base.hooks.deliver(a->base.hooks.arg, d)) {
		cqi_delivery_free(d);
		e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
out:
	amqp_bytes_free(ex);
	amqp_bytes_free(rk);
	return e;
}

static enum cq_err on_deliver(struct amqp_q *a, const amqp_frame_t *f)
{
	amqp_basic_deliver_t *m = f->payload.method.decoded;

	return on_message(a, f, m->delivery_tag, m->redelivered, m->exchange,
			  m->routing_key, 0);
}

static enum cq_err on_get_ok(struct amqp_q *a, const amqp_frame_t *f)
{
	amqp_basic_get_ok_t *m = f->payload.method.decoded;

	a->gets--;
	return on_message(a, f, m->delivery_tag, m->redelivered, m->exchange,
			  m->routing_key, m->message_count);
}

/* A frame that is not the publisher's. */
static enum cq_err on_other_frame(void *arg, const amqp_frame_t *f)
{
	struct amqp_q *a = arg;
	struct cq_ctx *ctx = a->base.ctx;
	amqp_rpc_reply_t r = { 0 };
	char what[400];

	if (f->frame_type != AMQP_FRAME_METHOD)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "unexpected frame type %d",
				 f->frame_type);
	switch (f->payload.method.id) {
	case AMQP_BASIC_DELIVER_METHOD:
		return on_deliver(a, f);
	case AMQP_BASIC_GET_OK_METHOD:
		return on_get_ok(a, f);
	case AMQP_BASIC_GET_EMPTY_METHOD:
		a->gets--;
		a->empty = true;
		return CQ_OK;
	case AMQP_BASIC_CANCEL_OK_METHOD:
		a->consuming = false;
		return CQ_OK;
	case AMQP_BASIC_CANCEL_METHOD:
		/* the broker ended our subscription: the queue went away */
		a->consuming = false;
		cqi_qd_fail(&a->base, CQ_ERR_NOTFOUND,
		      "RabbitMQ cancelled the consumer: queue '%s' was deleted",
		      a->base.conf.queue);
		return CQ_OK;
	case AMQP_CHANNEL_CLOSE_METHOD:
		if (f->channel == SIDE_CHANNEL) {
			amqp_channel_close_ok_t ok = { 0 };

			amqp_send_method(a->conn, SIDE_CHANNEL,
					 AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
			a->side_open = false;
			return CQ_OK;
		}
		/* fall through */
	case AMQP_CONNECTION_CLOSE_METHOD:
		a->consuming = false;
		r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
		r.reply = f->payload.method;
		snprintf(what, sizeof(what), "RabbitMQ at %s", ctx->amqp->where);
		return cqi_amqp_rpc_err(ctx, r, what);
	}
	return CQ_OK;	/* e.g. a late qos-ok: nothing to do */
}

static enum cq_err on_frame(struct amqp_q *a, const amqp_frame_t *f)
{
	bool closing = f->frame_type == AMQP_FRAME_METHOD &&
		       (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
			f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD);

	/* the end of the connection or channel is ours to report */
	if (a->pub && !closing) {
		bool handled;
		enum cq_err e = cqi_publisher_frame(a->pub, f, &handled);

		if (e || handled)
			return e;
	}
	return on_other_frame(a, f);
}

static bool buffered(const struct cqi_qdriver *q)
{
	if (!CQ(q)->conn)
		return false;	/* a reconnect failed */
	return amqp_frames_enqueued(CQ(q)->conn) ||
	       amqp_data_in_buffer(CQ(q)->conn);
}

static enum cq_err send_get(struct amqp_q *a)
{
	amqp_basic_get_t req = { 0, amqp_cstring_bytes(a->base.conf.queue), 0 };
	int st = amqp_send_method(a->conn, CQI_CHANNEL, AMQP_BASIC_GET_METHOD,
				  &req);

	if (st != AMQP_STATUS_OK)
		return cqi_amqp_status_err(a->base.ctx, st, "basic.get");
	a->gets++;
	return CQ_OK;
}

/* Cancel the subscription: nothing new is pushed (what was is read). */
static enum cq_err unsubscribe(struct amqp_q *a)
{
	if (!a->consuming)
		return CQ_OK;
	amqp_basic_cancel(a->conn, CQI_CHANNEL, a->tag);
	if (cqi_amqp_check(a->base.ctx, "cancel the consumer"))
		return a->base.ctx->err;
	a->consuming = false;
	return CQ_OK;
}

/*
 * Replay takes by push, which costs the broker about half what basic.get
 * does.  But held messages keep their prefetch slots: once they fill half
 * of it the consumer is cancelled and the rest is fetched with basic.get
 * (no such limit), up to max requests in flight.
 */
static enum cq_err replay_requests(struct amqp_q *a, size_t max)
{
	if (a->consuming && a->held >= a->window / 2) {
		if (unsubscribe(a))
			return a->base.ctx->err;
		a->browse = true;
	}
	while (a->browse && !a->stopped && !a->empty && a->gets < max)
		if (send_get(a))
			return a->base.ctx->err;
	return CQ_OK;
}

/* Replay, nothing came within the wait: a consumer on a queue emptied by
 * someone else goes over to basic.get (which says so); gets unanswered
 * while no confirm is awaited mean the broker is stuck. */
static enum cq_err replay_idle(struct amqp_q *a, long long wait_ms)
{
	if (a->pub && cqi_publisher_outstanding(a->pub))
		return CQ_OK;	/* confirms are late: the caller flushes */
	if (a->consuming) {
		if (unsubscribe(a))
			return a->base.ctx->err;
		a->browse = true;
		return CQ_OK;
	}
	if (a->gets)
		return cq_seterr(a->base.ctx, CQ_ERR_TEMPFAIL,
				 "replay: no answer from RabbitMQ at %s within %lldms",
				 a->base.ctx->amqp->where, wait_ms);
	return CQ_OK;
}

/* Read frames: wait up to wait_ms for the first, then take whatever is
 * already buffered, until max deliveries were handed. */
static enum cq_err take(struct cqi_qdriver *q, size_t max, long long wait_ms)
{
	struct amqp_q *a = Q(q);
	bool first = true, got = false;

	a->handed = 0;
	if (!a->conn)
		return q->ctx->err;	/* a reconnect failed */
	if (a->replay && replay_requests(a, max))
		return q->ctx->err;
	for (int n = 0; n < 4096; n++) {
		amqp_frame_t f;
		int st;

		if (!first && (!buffered(q) || a->handed >= max))
			break;
		st = cqi_amqp_wait_frame(a->conn, &f, first ? wait_ms : 0);
		first = false;
		if (st == AMQP_STATUS_TIMEOUT)
			break;
		if (st != AMQP_STATUS_OK) {
			a->consuming = false;
			return cqi_amqp_status_err(q->ctx, st, "connection lost");
		}
		got = true;
		if (on_frame(a, &f))
			return q->ctx->err;
	}
	if (!buffered(q))
		amqp_maybe_release_buffers(a->conn);
	if (a->replay && !got && wait_ms > 0)
		return replay_idle(a, wait_ms);
	return CQ_OK;
}

static bool exhausted(const struct cqi_qdriver *q)
{
	const struct amqp_q *a = CQ(q);

	return !a->consuming && a->gets == 0 && (a->stopped || a->empty) &&
	       !buffered(q);
}

static int fd(const struct cqi_qdriver *q)
{
	return CQ(q)->conn ? amqp_get_sockfd(CQ(q)->conn) : -1;
}

static size_t unsettled(const struct cqi_qdriver *q)
{
	return CQ(q)->pub ? cqi_publisher_outstanding(CQ(q)->pub) : 0;
}

/* ---- the side channel: declares that may fail ------------------------------ */

static enum cq_err side_open(struct amqp_q *a)
{
	if (a->side_open)
		return CQ_OK;
	amqp_channel_open(a->conn, SIDE_CHANNEL);
	if (cqi_amqp_check(a->base.ctx, "open a channel"))
		return a->base.ctx->err;
	a->side_open = true;
	return CQ_OK;
}

/*
 * The reply of the last RPC on the side channel: 0 when it went well, else
 * the broker's reply code with its text in text (the channel is then
 * closed).  A connection-level failure sets the context error and returns
 * -1.
 */
static int side_reply(struct amqp_q *a, char *text, size_t len)
{
	int code = cqi_amqp_reply(a->base.ctx, SIDE_CHANNEL, "side channel",
				  text, len);

	if (code > 0)
		a->side_open = false;
	return code;
}

/* Declare (or with passive, look up) queue on the side channel. */
static int side_declare(struct amqp_q *a, const char *queue, bool passive,
			bool durable, bool auto_delete, amqp_table_t args,
			uint32_t *ready, char *text, size_t len)
{
	amqp_queue_declare_ok_t *ok;
	int code;

	if (side_open(a))
		return -1;
	ok = amqp_queue_declare(a->conn, SIDE_CHANNEL,
				amqp_cstring_bytes(queue), passive, durable, 0,
				auto_delete, args);
	code = side_reply(a, text, len);
	if (code == 0 && ready)
		*ready = ok->message_count;
	return code;
}

static enum cq_err inspect(struct cqi_qdriver *q, uint64_t *ready)
{
	struct amqp_q *a = Q(q);
	const char *queue = q->conf.queue;
	uint32_t n = 0;
	char text[512];
	int code;

	code = side_declare(a, queue, true, false, false, amqp_empty_table,
			    &n, text, sizeof(text));
	if (code < 0)
		return q->ctx->err;
	if (code == 404)
		return cqi_missing_queue(q->ctx, queue);
	if (code)
		return cq_seterr(q->ctx,
				 code == 403 ? CQ_ERR_NOPERM : CQ_ERR_TEMPFAIL,
				 "queue '%s': %s", queue, text);
	*ready = n;
	return CQ_OK;
}

static enum cq_err depth(struct cqi_qdriver *q, uint64_t *ready, char *why,
			 size_t len)
{
	uint32_t n = 0;
	char text[512];
	int code;

	code = side_declare(Q(q), q->conf.queue, true, false, false,
			    amqp_empty_table, &n, text, sizeof(text));
	if (code < 0)
		return q->ctx->err;
	if (code) {
		snprintf(why, len, "queue '%s': %s", q->conf.queue, text);
		return code == 404 ? CQ_ERR_NOTFOUND : CQ_ERR_TEMPFAIL;
	}
	*ready = n;
	return CQ_OK;
}

/* ---- does the queue have a dead-letter exchange? --------------------------- */

/*
 * The queue's arguments come from the probe (qargs.c), on the side
 * channel.  Unless it finds them all, the DLX stays unknown and dead
 * letters are published to QUEUE.dlq, which is always safe.  (A DLX set
 * by a policy is not an argument and is not seen.)
 */
static int probe_declare(void *arg, bool durable, bool auto_delete,
			 amqp_table_t t, char *text, size_t len)
{
	struct amqp_q *a = arg;

	return side_declare(a, a->base.conf.queue, false, durable, auto_delete,
			    t, NULL, text, len);
}

/* Every argument of the queue (the probe, on the side channel): NULL
 * with the context error set out of memory or on a connection failure;
 * else the caller frees it (cqi_qargs_clear, free), complete or not. */
static struct cqi_qargs *queue_args(struct amqp_q *a)
{
	struct cq_ctx *ctx = a->base.ctx;
	struct cqi_qargs *qa = calloc(1, sizeof(*qa));

	if (!qa) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (cqi_qargs_probe(ctx, probe_declare, a, qa) == CQ_OK)
		return qa;
	cqi_qargs_clear(qa);
	free(qa);
	return NULL;
}

static enum cq_err find_dlx(struct amqp_q *a)
{
	struct cq_ctx *ctx = a->base.ctx;
	struct cqi_qargs *qa = queue_args(a);
	const struct cqi_qarg *arg;

	if (!qa)
		return ctx->err;
	if (qa->complete) {
		arg = cqi_qargs_find(qa, "x-dead-letter-exchange");
		if (arg && !(a->dlx = strdup(arg->sval)))
			cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	cqi_qargs_clear(qa);
	free(qa);
	return ctx->err;
}

/* Does the exchange exist?  (A DLX that does not drops dead letters.) */
static enum cq_err exchange_exists(struct amqp_q *a, const char *name,
				   bool *exists)
{
	char text[512];
	int code;

	if (side_open(a))
		return a->base.ctx->err;
	amqp_exchange_declare(a->conn, SIDE_CHANNEL, amqp_cstring_bytes(name),
			      amqp_cstring_bytes("direct"), 1, 0, 0, 0,
			      amqp_empty_table);
	code = side_reply(a, text, sizeof(text));
	*exists = code == 0;
	return code < 0 ? a->base.ctx->err : CQ_OK;
}

static enum cq_err setup_dead_letters(struct amqp_q *a)
{
	struct cq_ctx *ctx = a->base.ctx;
	const char *queue = a->base.conf.queue;
	bool ex;

	if (a->base.conf.dlq) {
		a->dlq = strdup(a->base.conf.dlq);
		return a->dlq ? CQ_OK :
		       cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	if (find_dlx(a))
		return ctx->err;
	if (a->dlx && *a->dlx) {
		if (exchange_exists(a, a->dlx, &ex))
			return ctx->err;
		if (!ex) {
			cqi_qd_notice(&a->base, "queue '%s' names dead-letter exchange '%s', which does not exist: dead letters go to '%s%s' instead",
				queue, a->dlx, queue, CQ_DLQ_SUFFIX);
			free(a->dlx);
			a->dlx = NULL;
		}
	}
	if (a->dlx)
		return CQ_OK;
	if (asprintf(&a->dlq, "%s%s", queue, CQ_DLQ_SUFFIX) < 0) {
		a->dlq = NULL;
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	return CQ_OK;
}

/* Declare the dead-letter queue we publish to, if it is missing. */
static bool ensure_dlq(struct amqp_q *a)
{
	char text[512];
	int code;

	if (a->dlq_ready)
		return true;
	code = side_declare(a, a->dlq, true, true, false, amqp_empty_table,
			    NULL, text, sizeof(text));
	if (code == 404)
		code = side_declare(a, a->dlq, false, true, false,
				    amqp_empty_table, NULL, text, sizeof(text));
	if (code < 0) {
		cqi_qd_fail_ctx(&a->base);
		return false;
	}
	if (code) {
		cqi_qd_fail(&a->base, code == 403 ? CQ_ERR_NOPERM : CQ_ERR_TEMPFAIL,
		      "cannot declare dead-letter queue '%s': %s", a->dlq, text);
		return false;
	}
	a->dlq_ready = true;
	return true;
}

/* ---- settling ---------------------------------------------------------------- */

static void ack(struct cqi_qdriver *q, uint64_t tag, bool upto)
{
	if (cqi_ack(q->ctx, tag, upto))
		return;	/* the connection is gone: it comes back */
}

/* A retry or dead letter was confirmed (or not): settle the original.
 * user_tag is the original's delivery tag * 2, + 1 for a dead letter. */
static void on_settle(void *arg, uint64_t user_tag, bool ok,
		      const char *reason)
{
	struct amqp_q *a = arg;
	uint64_t tag = user_tag >> 1;
	bool dead = user_tag & 1;

	if (!ok && a->base.ctx->err)
		return;	/* the connection is gone: the original comes back */
	if (ok) {
		ack(&a->base, tag, false);
	} else {
		/* not safely elsewhere: leave it in the queue */
		cqi_nack(a->base.ctx, tag, false, true);
	}
	a->base.hooks.settled(a->base.hooks.arg, dead, ok, reason);
}

/* A string header of d, or dflt. */
static const char *header_or(const struct cq_delivery *d, const char *name,
			     const char *dflt)
{
	const struct cq_field *f = cq_delivery_header(d, name);

	return f && f->kind == CQ_FIELD_STRING ? f->str : dflt;
}

static struct cq_header hdr_int(const char *key, long long v)
{
	return (struct cq_header){ .key = key, .is_int = true, .ival = v };
}

static struct cq_header hdr_str(const char *key, const char *v, size_t n)
{
	/* vlen 0 means strlen: an empty value is sent as "" either way */
	return (struct cq_header){ .key = key, .value = v, .vlen = n };
}

/* Settled through on_settle.  A message the publisher refuses
 * (CQ_ERR_DATA) leaves the connection usable: stop gracefully.  Other
 * errors mean the connection is gone (the context error stays). */
static void publish(struct amqp_q *a, const struct cq_message *m,
		    uint64_t user_tag)
{
	if (cqi_publish(a->pub, m, user_tag) == CQ_ERR_DATA)
		cqi_qd_fail_ctx(&a->base);
}

/* Republish d to its queue with the new retry count; ack it once
 * confirmed. */
static void retry(struct cqi_qdriver *q, const struct cq_delivery *d,
		  const struct cqi_failure *f)
{
	struct cq_header h[6];
	struct cq_message m;
	size_t n = 0;

	h[n++] = hdr_int(CQ_HDR_RETRIES, f->attempts);
	/* a new message: the broker's count of the old one's returns must
	 * not pass for its own */
	h[n++] = (struct cq_header){ .key = CQ_HDR_DELIVERY_COUNT };
	h[n++] = hdr_int(CQ_HDR_EXIT_CODE, f->code);
	h[n++] = f->tlen ? hdr_str(CQ_HDR_STDERR, f->tail, f->tlen) :
			   (struct cq_header){ .key = CQ_HDR_STDERR };
	if (!cq_delivery_header(d, CQ_HDR_ORIGINAL_EXCHANGE))
		h[n++] = hdr_str(CQ_HDR_ORIGINAL_EXCHANGE, d->exchange, 0);
	if (!cq_delivery_header(d, CQ_HDR_ORIGINAL_ROUTING_KEY))
		h[n++] = hdr_str(CQ_HDR_ORIGINAL_ROUTING_KEY, d->routing_key, 0);
	cq_message_init(&m);
	m.from = d;
	m.exchange = "";
	m.routing_key = q->conf.queue;
	m.headers = h;
	m.nheaders = n;
	publish(Q(q), &m, d->delivery_tag << 1);
}

/* Dead-letter d: through the queue's DLX, or a confirmed publish to the
 * dead-letter queue before the original is acked. */
static bool dead_letter(struct cqi_qdriver *q, const struct cq_delivery *d,
			const struct cqi_failure *f, char *where, size_t len)
{
	struct amqp_q *a = Q(q);
	struct cq_header h[9];
	struct cq_message m;
	size_t n = 0;

	if (a->dlx) {
		/* the broker moves it and records x-death */
		snprintf(where, len, "through exchange '%s'",
			 *a->dlx ? a->dlx : "(default)");
		if (cqi_reject(q->ctx, d->delivery_tag, false) == CQ_OK)
			q->hooks.settled(q->hooks.arg, true, true, NULL);
		return true;
	}
	if (!ensure_dlq(a))
		return false;	/* stays unacked: it comes back */
	h[n++] = hdr_int(CQ_HDR_RETRIES, f->attempts);
	h[n++] = hdr_str(CQ_HDR_DEATH_REASON, f->reason, 0);
	h[n++] = hdr_int(CQ_HDR_EXIT_CODE, f->code);
	h[n++] = f->tlen ? hdr_str(CQ_HDR_STDERR, f->tail, f->tlen) :
			   (struct cq_header){ .key = CQ_HDR_STDERR };
	h[n++] = hdr_str(CQ_HDR_ORIGINAL_QUEUE, q->conf.queue, 0);
	h[n++] = hdr_str(CQ_HDR_ORIGINAL_EXCHANGE,
			 header_or(d, CQ_HDR_ORIGINAL_EXCHANGE, d->exchange), 0);
	h[n++] = hdr_str(CQ_HDR_ORIGINAL_ROUTING_KEY,
			 header_or(d, CQ_HDR_ORIGINAL_ROUTING_KEY,
				   d->routing_key), 0);
	h[n++] = hdr_int(CQ_HDR_DIED_AT, cq_wall_ms() / 1000);
	h[n++] = hdr_str(CQ_HDR_HOST, f->host, 0);
	cq_message_init(&m);
	m.from = d;
	m.exchange = "";
	m.routing_key = a->dlq;
	m.headers = h;
	m.nheaders = n;
	snprintf(where, len, "to '%s'", a->dlq);
	publish(a, &m, d->delivery_tag << 1 | 1);
	return true;
}

static enum cq_err flush(struct cqi_qdriver *q)
{
	return Q(q)->pub ? cqi_publisher_flush(Q(q)->pub) : CQ_OK;
}

/* ---- subscribing ---------------------------------------------------------------- */

static enum cq_err subscribe(struct cqi_qdriver *q)
{
	struct amqp_q *a = Q(q);
	amqp_basic_consume_ok_t *ok;
	char what[300];

	amqp_bytes_free(a->tag);
	a->tag = amqp_empty_bytes;
	snprintf(what, sizeof(what), "consume from queue '%s'", q->conf.queue);
	ok = amqp_basic_consume(a->conn, CQI_CHANNEL,
				amqp_cstring_bytes(q->conf.queue),
				amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	if (cqi_amqp_check(q->ctx, what))
		return q->ctx->err;
	a->tag = amqp_bytes_malloc_dup(ok->consumer_tag);
	if (!a->tag.bytes)
		return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
	a->consuming = true;
	return CQ_OK;
}

/* The channel as start() leaves it: confirms for retries and dead
 * letters, the prefetch window, the subscription. */
static enum cq_err begin(struct cqi_qdriver *q)
{
	struct amqp_q *a = Q(q);
	char what[300];

	a->stopped = false;
	if (a->pub && !q->conf.exec) {
		/* replay: publishing began first (pub_start) */
		a->replay = true;
		a->browse = q->conf.browse;
		if (a->browse)
			return CQ_OK;
	}
	if (q->conf.exec) {
		a->pub = cqi_publisher_new(q->ctx, 1000, true);
		if (!a->pub)
			return q->ctx->err;
		cqi_publisher_on_settle(a->pub, on_settle, a);
		cqi_publisher_on_frame(a->pub, on_other_frame, a);
	}
	snprintf(what, sizeof(what), "set prefetch %u", a->window);
	amqp_basic_qos(a->conn, CQI_CHANNEL, 0, (uint16_t)a->window, 0);
	if (cqi_amqp_check(q->ctx, what))
		return q->ctx->err;
	return subscribe(q);
}

static enum cq_err start(struct cqi_qdriver *q, unsigned window)
{
	if (q->conf.exec && setup_dead_letters(Q(q)))
		return q->ctx->err;
	Q(q)->window = window;
	Q(q)->started = true;
	return begin(q);
}

/* How many times a new node may refuse the subscription (a quorum queue
 * electing its leader) before the reconnect gives up. */
#define RESUBSCRIBE_TRIES 3

static enum cq_err pub_open(struct amqp_q *a);

/* Forget the lost connection: what the publisher had outstanding was
 * settled failed when it died (or is never settled: consume's retries),
 * what was taken comes back, nothing is held any more. */
static void forget_connection(struct amqp_q *a)
{
	cqi_publisher_free(a->pub);
	a->pub = NULL;
	a->conn = NULL;
	a->consuming = a->side_open = a->dlq_ready = false;
	a->replay = a->empty = false;
	a->gets = 0;
	a->held = a->max_held = 0;
}

/* Set the new connection up as the verb had it: its publisher
 * (pub_start), then what start() does. */
static enum cq_err set_up_again(struct amqp_q *a)
{
	a->conn = a->base.ctx->amqp->conn;
	if (a->pub_window && pub_open(a))
		return a->base.ctx->err;
	return a->started ? begin(&a->base) : CQ_OK;
}

static enum cq_err reconnect(struct cqi_qdriver *q, char *from, size_t len)
{
	struct amqp_q *a = Q(q);
	struct cq_ctx *ctx = q->ctx;
	char first[300] = "";

	if (!cqi_amqp_may_reconnect(ctx) || !cqi_amqp_lost(ctx))
		return ctx->err;
	for (int i = 0; i < RESUBSCRIBE_TRIES; i++) {
		forget_connection(a);
		if (cqi_amqp_reconnect(ctx, from, len))
			return ctx->err;
		if (i == 0)
			snprintf(first, sizeof(first), "%s", from);
		if (set_up_again(a) == CQ_OK)
			break;
		if (i + 1 == RESUBSCRIBE_TRIES || ctx->err == CQ_ERR_NOPERM ||
		    ctx->err == CQ_ERR_NOTFOUND || ctx->err == CQ_ERR_NOMEM)
			return ctx->err;
	}
	snprintf(from, len, "%s", first);
	return CQ_OK;
}

static const char *where(const struct cqi_qdriver *q)
{
	return cqi_amqp_where(q->ctx);
}

/* Cancel the subscription (or send no more basic.get): nothing new
 * arrives. */
static void stop(struct cqi_qdriver *q)
{
	Q(q)->stopped = true;
	unsubscribe(Q(q));
}

static enum cq_err resume(struct cqi_qdriver *q)
{
	Q(q)->stopped = false;
	return subscribe(q);
}

/* ---- replay: held messages --------------------------------------------------- */

static void hold(struct cqi_qdriver *q, uint64_t tag)
{
	Q(q)->held++;
	if (tag > Q(q)->max_held)
		Q(q)->max_held = tag;
}

/* One nack with requeue gives back every message not acked, up to the
 * highest held (the channel's unacked ones). */
static enum cq_err release(struct cqi_qdriver *q)
{
	uint64_t hi = Q(q)->max_held;

	Q(q)->max_held = 0;
	Q(q)->held = 0;
	return hi ? cqi_nack(q->ctx, hi, true, true) : q->ctx->err;
}

/* ---- publishing (enqueue, replay) ------------------------------------------- */

static void on_published(void *arg, uint64_t tag, bool ok, const char *reason)
{
	struct amqp_q *a = arg;

	a->base.hooks.published(a->base.hooks.arg, tag, ok, reason);
}

static void on_blocked(void *arg, bool blocked, const char *reason)
{
	struct amqp_q *a = arg;

	a->base.hooks.blocked(a->base.hooks.arg, blocked, reason);
}

/* The target must exist: a passive declare of the queue (default
 * exchange) or of the exchange. */
static enum cq_err pub_open(struct amqp_q *a)
{
	struct cq_ctx *ctx = a->base.ctx;
	const char *exchange = a->pub_exchange;

	if (!exchange || !*exchange) {
		if (cqi_queue_inspect(ctx, a->base.conf.queue, NULL, NULL))
			return ctx->err;
	} else if (cqi_exchange_inspect(ctx, exchange)) {
		return ctx->err;
	}
	a->pub = cqi_publisher_new(ctx, a->pub_window, a->pub_mandatory);
	if (!a->pub)
		return ctx->err;
	cqi_publisher_on_settle(a->pub, on_published, a);
	cqi_publisher_on_blocked(a->pub, on_blocked, a);
	/* replay takes on the same channel: its frames come between */
	cqi_publisher_on_frame(a->pub, on_other_frame, a);
	return CQ_OK;
}

static enum cq_err pub_start(struct cqi_qdriver *q, size_t window,
			     const char *exchange, bool mandatory)
{
	struct amqp_q *a = Q(q);

	if (a->pub)
		return cq_seterr(q->ctx, CQ_ERR_INTERNAL, "publisher already started");
	if (exchange && !(a->pub_exchange = strdup(exchange)))
		return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
	a->pub_window = window;
	a->pub_mandatory = mandatory;
	return pub_open(a);
}

/* No publisher: a reconnect failed (its error is on the context). */
static enum cq_err no_pub(struct cqi_qdriver *q)
{
	return q->ctx->err ? q->ctx->err :
	       cq_seterr(q->ctx, CQ_ERR_INTERNAL, "publish: not started");
}

static enum cq_err pub_send(struct cqi_qdriver *q, const struct cq_message *m,
			    uint64_t tag)
{
	if (!Q(q)->pub) {
		q->hooks.published(q->hooks.arg, tag, false, CQ_REASON_LOST);
		return no_pub(q);
	}
	return cqi_publish(Q(q)->pub, m, tag);
}

static enum cq_err pub_poll(struct cqi_qdriver *q)
{
	return Q(q)->pub ? cqi_publisher_poll(Q(q)->pub) : no_pub(q);
}

static enum cq_err wait_input(struct cqi_qdriver *q, int fd)
{
	return Q(q)->pub ? cqi_publisher_wait_input(Q(q)->pub, fd) : no_pub(q);
}

static enum cq_err pub_flush(struct cqi_qdriver *q)
{
	return Q(q)->pub ? cqi_publisher_flush(Q(q)->pub) : CQ_OK;
}

static bool pub_alive(const struct cqi_qdriver *q)
{
	return CQ(q)->pub && cqi_publisher_alive(CQ(q)->pub);
}

/* ---- peek, the queue's arguments, purge, declare, stats ---------------------- */

static enum cq_err peek(struct cqi_qdriver *q, size_t count, cq_peek_fn fn,
			void *arg, size_t *seen)
{
	struct cq_ctx *ctx = q->ctx;
	const char *queue = q->conf.queue;
	uint64_t last = 0;
	enum cq_err e = CQ_OK;

	*seen = 0;
	if (cqi_queue_inspect(ctx, queue, NULL, NULL))
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

static enum cq_err info(struct cqi_qdriver *q, struct cq_queue_info *out)
{
	struct cq_ctx *ctx = q->ctx;
	struct cqi_qargs *qa;
	const struct cqi_qarg *a;

	/* it must exist: the probe must never create it */
	if (cqi_queue_inspect(ctx, q->conf.queue, NULL, NULL))
		return ctx->err;
	qa = queue_args(Q(q));
	if (!qa)
		return ctx->err;
	if (qa->complete) {
		out->known = true;
		a = cqi_qargs_find(qa, "x-queue-type");
		out->quorum = a && strcmp(a->sval, "quorum") == 0;
		a = cqi_qargs_find(qa, "x-delivery-limit");
		if (a)
			out->delivery_limit = a->ival;
	}
	cqi_qargs_clear(qa);
	free(qa);
	return ctx->err;
}

static enum cq_err purge(struct cqi_qdriver *q, uint64_t *count)
{
	struct cq_ctx *ctx = q->ctx;
	const char *queue = q->conf.queue;
	amqp_queue_purge_ok_t *ok;
	char what[300];

	if (cqi_name_check(ctx, "queue", queue))
		return ctx->err;
	snprintf(what, sizeof(what), "purge queue '%s'", queue);
	ok = amqp_queue_purge(ctx->amqp->conn, CQI_CHANNEL,
			      amqp_cstring_bytes(queue));
	if (cqi_amqp_check(ctx, what)) {
		if (ctx->err == CQ_ERR_NOTFOUND)
			cq_seterr(ctx, CQ_ERR_NOTFOUND,
				  "queue '%s' does not exist", queue);
		return ctx->err;
	}
	*count = ok->message_count;
	return CQ_OK;
}

static enum cq_err declare(struct cqi_qdriver *q, const struct cq_queue_opts *o,
			   struct cq_declared *out)
{
	return cqi_amqp_declare(q->ctx, q->conf.queue, o, out);
}

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

/* Ready messages of the dead-letter queue (conf.dlq, else QUEUE.dlq when
 * it exists). */
static enum cq_err dlq_depth(struct cqi_qdriver *q, struct cqi_qstats *out)
{
	struct cq_ctx *ctx = q->ctx;
	const char *dlq = q->conf.dlq;
	char guess[512];
	uint32_t ready, consumers;
	bool found;

	if (!dlq) {
		snprintf(guess, sizeof(guess), "%s%s", q->conf.queue,
			 CQ_DLQ_SUFFIX);
		dlq = guess;
		if (!cq_name_ok("queue", guess, NULL, 0))
			return CQ_OK;	/* QUEUE.dlq would be too long */
	}
	if (passive(ctx, dlq, &ready, &consumers, &found))
		return ctx->err;
	if (found) {
		size_t n = strlen(dlq);	/* a name the broker took: < 256 */

		out->dlq = ready;
		if (n < sizeof(out->dlq_name))
			memcpy(out->dlq_name, dlq, n + 1);
	}
	return CQ_OK;
}

static enum cq_err stats(struct cqi_qdriver *q, struct cqi_qstats *out)
{
	uint32_t ready = 0, consumers = 0;
	bool found;

	if (passive(q->ctx, q->conf.queue, &ready, &consumers, &found))
		return q->ctx->err;
	out->found = found;
	if (!found)
		return CQ_OK;
	out->ready = ready;
	out->consumers = consumers;
	return dlq_depth(q, out);
}

static enum cq_err drv_connect(struct cqi_qdriver *q)
{
	if (!q->ctx->amqp)
		return cq_seterr(q->ctx, CQ_ERR_INTERNAL, "not connected to RabbitMQ");
	Q(q)->conn = q->ctx->amqp->conn;
	q->can_reconnect = cqi_amqp_may_reconnect(q->ctx);
	return CQ_OK;
}

static void drv_free(struct cqi_qdriver *q)
{
	struct amqp_q *a = Q(q);

	cqi_publisher_free(a->pub);
	amqp_bytes_free(a->tag);
	free(a->pub_exchange);
	free(a->dlx);
	free(a->dlq);
	free(a);
}

static const struct cqi_qdriver_ops amqp_ops = {
	.connect = drv_connect,
	.inspect = inspect,
	.start = start,
	.take = take,
	.buffered = buffered,
	.fd = fd,
	.unsettled = unsettled,
	.depth = depth,
	.stop = stop,
	.resume = resume,
	.ack = ack,
	.retry = retry,
	.dead_letter = dead_letter,
	.reconnect = reconnect,
	.where = where,
	.flush = flush,
	.hold = hold,
	.exhausted = exhausted,
	.release = release,
	.pub_start = pub_start,
	.publish = pub_send,
	.pub_poll = pub_poll,
	.wait_input = wait_input,
	.pub_flush = pub_flush,
	.pub_alive = pub_alive,
	.peek = peek,
	.info = info,
	.purge = purge,
	.declare = declare,
	.stats = stats,
	.free = drv_free,
};

struct cqi_qdriver *cqi_amqp_qdriver_new(struct cq_ctx *ctx,
					 const struct cqi_qconf *conf)
{
	struct amqp_q *a = cqi_qdriver_alloc(ctx, sizeof(*a), &amqp_ops, conf);

	if (!a)
		return NULL;
	a->tag = amqp_empty_bytes;
	return &a->base;
}
