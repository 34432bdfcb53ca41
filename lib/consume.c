/* consume.c - qctl consume: read a queue, print each message or run a
 * handler for it, and settle it only once it is done.
 *
 * One connection, one channel (CQI_CHANNEL) for consuming, acking and the
 * confirmed republishing of retries and dead letters; a side channel for
 * the declares that may fail (and so close their channel).  Frames are
 * read here with amqp_simple_wait_frame_noblock, which also sends the
 * heartbeats; while handlers run, one poll() watches the AMQP socket and
 * every handler's pipes, so the connection stays serviced.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "amqp_int.h"
#include "consume_int.h"
#include "qargs_int.h"
#include "cq.h"
#include "internal.h"
#include "queue_int.h"
#include "redis_int.h"

#define SIDE_CHANNEL 2
#define SLICE_MS 200		/* longest sleep: a stop request is seen this fast */
#define NO_PIDFD_SLICE_MS 20	/* without pidfd_open, how often to look for exits */
#define EMPTY_CHECK_MS 100	/* --until-empty: at most one look per this */
#define PROGRESS_MS 250
#define PRINT_PREFETCH 2000
#define MAX_PREFETCH 65535
/* Deliveries read ahead of the printer: the rest of a prefetch window
 * waits in the socket, so memory does not grow with --prefetch. */
#define READ_AHEAD 256

/* A failed message waiting out --retry-delay (still unacked). */
struct held {
	struct cq_delivery *d;
	long long due_ms;
	long long retries;	/* failed attempts, this one included */
	int code;
	char *tail;		/* its stderr tail, NUL-terminated */
};

struct consumer {
	struct cq_ctx *ctx;
	const struct cq_consume_opts *o;
	struct cq_consume_stats *st;
	amqp_connection_state_t conn;
	amqp_bytes_t tag;	/* consumer tag (malloc'd) */
	bool consuming;		/* basic.consume active, not cancelled */
	bool stopping;
	bool drain;		/* while stopping, still handle what arrived */
	bool drained;		/* --until-empty stopped it: look again at the end */
	bool side_open;
	/* deliveries received, not yet handled: a ring */
	struct cq_delivery **fifo;
	size_t head, len, cap;
	/* printing: written since the last ack */
	uint64_t batch_tag;
	unsigned batch_n, ack_every;
	char *batch_id;		/* --dedupe: the id of the one message */
	/* handlers */
	struct cqi_job *jobs;
	unsigned njobs, running;
	struct held *held;
	size_t nheld, held_cap;
	struct pollfd *pfds;	/* the socket + 3 per handler */
	struct cq_publisher *pub;
	char *dlx;		/* the queue's dead-letter exchange, or NULL */
	char *dlq;		/* where we publish dead letters ourselves */
	bool dlq_ready;
	char host[256];
	unsigned long long taken;	/* messages handed to print or a handler */
	long long start_ms, idle_since_ms, last_check_ms, last_progress_ms;
	/* an error that stops the run gracefully (the connection still
	 * works: finished handlers are still settled) */
	enum cq_err fatal;
	char fatal_msg[512];
};

void cq_consume_opts_init(struct cq_consume_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->jobs = 1;
	o->max_retries = 3;
	o->dedupe_ttl_ms = 24LL * 3600 * 1000;
}

static void notice(struct consumer *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void notice(struct consumer *c, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!c->o->notice)
		return;
	va_start(ap, fmt);
	cqi_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->o->notice(c->o->arg, msg);
}

/* Stop gracefully with this error (the first one wins). */
static void fail(struct consumer *c, enum cq_err e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct consumer *c, enum cq_err e, const char *fmt, ...)
{
	va_list ap;

	if (c->fatal)
		return;
	c->fatal = e;
	va_start(ap, fmt);
	cqi_vformat(c->fatal_msg, sizeof(c->fatal_msg), fmt, ap);
	va_end(ap);
}

/* Move a context error into c->fatal, so the channel can still settle. */
static void fail_from_ctx(struct consumer *c)
{
	fail(c, c->ctx->err, "%s", c->ctx->errstr);
	cq_clear_error(c->ctx);
}

static const char *msg_id(const struct cq_delivery *d)
{
	return d->message_id ? d->message_id : "(no id)";
}

/* ---- the queue of received deliveries ------------------------------------ */

static bool push(struct consumer *c, struct cq_delivery *d)
{
	if (c->len == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		struct cq_delivery **f = malloc(cap * sizeof(*f));

		if (!f)
			return false;
		for (size_t i = 0; i < c->len; i++)
			f[i] = c->fifo[(c->head + i) % c->cap];
		free(c->fifo);
		c->fifo = f;
		c->cap = cap;
		c->head = 0;
	}
	c->fifo[(c->head + c->len) % c->cap] = d;
	c->len++;
	return true;
}

static struct cq_delivery *pop(struct consumer *c)
{
	struct cq_delivery *d = c->fifo[c->head];

	c->head = (c->head + 1) % c->cap;
	c->len--;
	return d;
}

/* ---- reading frames -------------------------------------------------------- */

static enum cq_err on_deliver(struct consumer *c, const amqp_frame_t *f)
{
	amqp_basic_deliver_t *m = f->payload.method.decoded;
	uint64_t tag = m->delivery_tag;
	bool redelivered = m->redelivered;
	amqp_bytes_t ex = amqp_bytes_malloc_dup(m->exchange);
	amqp_bytes_t rk = amqp_bytes_malloc_dup(m->routing_key);
	struct cq_delivery *d = NULL;
	amqp_message_t msg;
	amqp_rpc_reply_t r;
	enum cq_err e;

	if ((m->exchange.len && !ex.bytes) || (m->routing_key.len && !rk.bytes)) {
		e = cq_seterr(c->ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	r = amqp_read_message(c->conn, f->channel, &msg, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		e = cqi_amqp_rpc_err(c->ctx, r, "read a message");
		goto out;
	}
	e = cqi_delivery_new(c->ctx, c->o->queue, tag, redelivered, ex, rk, 0,
			     &msg, &d);
	if (e)
		goto out;
	if (!c->o->exec && d->props) {
		/* printing never republishes: drop the raw properties */
		amqp_destroy_message(&d->props->msg);
		free(d->props);
		d->props = NULL;
	}
	if (!push(c, d)) {
		cqi_delivery_free(d);
		e = cq_seterr(c->ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	c->st->received++;
	c->idle_since_ms = 0;
out:
	amqp_bytes_free(ex);
	amqp_bytes_free(rk);
	return e;
}

/* A frame that is not the publisher's. */
static enum cq_err on_other_frame(void *arg, const amqp_frame_t *f)
{
	struct consumer *c = arg;
	amqp_rpc_reply_t r = { 0 };
	char what[400];

	if (f->frame_type != AMQP_FRAME_METHOD)
		return cq_seterr(c->ctx, CQ_ERR_INTERNAL,
				 "unexpected frame type %d",
				 f->frame_type);
	switch (f->payload.method.id) {
	case AMQP_BASIC_DELIVER_METHOD:
		return on_deliver(c, f);
	case AMQP_BASIC_CANCEL_OK_METHOD:
		c->consuming = false;
		return CQ_OK;
	case AMQP_BASIC_CANCEL_METHOD:
		/* the broker ended our subscription: the queue went away */
		c->consuming = false;
		fail(c, CQ_ERR_NOTFOUND,
		     "RabbitMQ cancelled the consumer: queue '%s' was deleted",
		     c->o->queue);
		return CQ_OK;
	case AMQP_CHANNEL_CLOSE_METHOD:
		if (f->channel == SIDE_CHANNEL) {
			amqp_channel_close_ok_t ok = { 0 };

			amqp_send_method(c->conn, SIDE_CHANNEL,
					 AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
			c->side_open = false;
			return CQ_OK;
		}
		/* fall through */
	case AMQP_CONNECTION_CLOSE_METHOD:
		c->consuming = false;
		r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
		r.reply = f->payload.method;
		snprintf(what, sizeof(what), "RabbitMQ at %s", c->ctx->amqp->where);
		return cqi_amqp_rpc_err(c->ctx, r, what);
	}
	return CQ_OK;	/* e.g. a late qos-ok: nothing to do */
}

static enum cq_err on_frame(struct consumer *c, const amqp_frame_t *f)
{
	bool closing = f->frame_type == AMQP_FRAME_METHOD &&
		       (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
			f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD);

	/* the end of the connection or channel is ours to report */
	if (c->pub && !closing) {
		bool handled;
		enum cq_err e = cqi_publisher_frame(c->pub, f, &handled);

		if (e || handled)
			return e;
	}
	return on_other_frame(c, f);
}

/* Read frames: wait up to wait_ms for the first, then take whatever is
 * already buffered. */
static enum cq_err pump_amqp(struct consumer *c, long long wait_ms)
{
	bool first = true;

	for (int n = 0; n < 4096; n++) {
		struct timeval tv = { 0, 0 };
		amqp_frame_t f;
		int st;

		if (first && wait_ms > 0) {
			tv.tv_sec = wait_ms / 1000;
			tv.tv_usec = (wait_ms % 1000) * 1000;
		} else if (!first && ((!amqp_frames_enqueued(c->conn) &&
					!amqp_data_in_buffer(c->conn)) ||
				       (!c->o->exec && c->len >= READ_AHEAD))) {
			break;
		}
		first = false;
		st = amqp_simple_wait_frame_noblock(c->conn, &f, &tv);
		if (st == AMQP_STATUS_TIMEOUT)
			break;
		if (st != AMQP_STATUS_OK) {
			c->consuming = false;
			return cqi_amqp_status_err(c->ctx, st, "connection lost");
		}
		if (on_frame(c, &f))
			return c->ctx->err;
	}
	if (!amqp_frames_enqueued(c->conn) && !amqp_data_in_buffer(c->conn))
		amqp_maybe_release_buffers(c->conn);
	return CQ_OK;
}

/* ---- the side channel: declares that may fail ------------------------------ */

static enum cq_err side_open(struct consumer *c)
{
	if (c->side_open)
		return CQ_OK;
	amqp_channel_open(c->conn, SIDE_CHANNEL);
	if (cqi_amqp_check(c->ctx, "open a channel"))
		return c->ctx->err;
	c->side_open = true;
	return CQ_OK;
}

/*
 * The reply of the last RPC on the side channel: 0 when it went well, else
 * the broker's reply code with its text in text (the channel is then
 * closed).  A connection-level failure sets the context error and returns
 * -1.
 */
static int side_reply(struct consumer *c, char *text, size_t len)
{
	int code = cqi_amqp_reply(c->ctx, SIDE_CHANNEL, "side channel", text,
				  len);

	if (code > 0)
		c->side_open = false;
	return code;
}

/* Declare (or with passive, look up) queue on the side channel. */
static int side_declare(struct consumer *c, const char *queue, bool passive,
			bool durable, bool auto_delete, amqp_table_t args,
			uint32_t *ready, char *text, size_t len)
{
	amqp_queue_declare_ok_t *ok;
	int code;

	if (side_open(c))
		return -1;
	ok = amqp_queue_declare(c->conn, SIDE_CHANNEL,
				amqp_cstring_bytes(queue), passive, durable, 0,
				auto_delete, args);
	code = side_reply(c, text, len);
	if (code == 0 && ready)
		*ready = ok->message_count;
	return code;
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
	struct consumer *c = arg;

	return side_declare(c, c->o->queue, false, durable, auto_delete, t,
			    NULL, text, len);
}

static enum cq_err find_dlx(struct consumer *c)
{
	struct cqi_qargs *q = calloc(1, sizeof(*q));
	const struct cqi_qarg *a;

	if (!q)
		return cq_seterr(c->ctx, CQ_ERR_NOMEM, "out of memory");
	if (cqi_qargs_probe(c->ctx, probe_declare, c, q) == CQ_OK &&
	    q->complete) {
		a = cqi_qargs_find(q, "x-dead-letter-exchange");
		if (a && !(c->dlx = strdup(a->sval)))
			cq_seterr(c->ctx, CQ_ERR_NOMEM, "out of memory");
	}
	cqi_qargs_clear(q);
	free(q);
	return c->ctx->err;
}

/* Does the exchange exist?  (A DLX that does not drops dead letters.) */
static enum cq_err exchange_exists(struct consumer *c, const char *name,
				   bool *exists)
{
	char text[512];
	int code;

	if (side_open(c))
		return c->ctx->err;
	amqp_exchange_declare(c->conn, SIDE_CHANNEL, amqp_cstring_bytes(name),
			      amqp_cstring_bytes("direct"), 1, 0, 0, 0,
			      amqp_empty_table);
	code = side_reply(c, text, sizeof(text));
	*exists = code == 0;
	return code < 0 ? c->ctx->err : CQ_OK;
}

static enum cq_err setup_dead_letters(struct consumer *c)
{
	bool ex;

	if (c->o->dlq) {
		c->dlq = strdup(c->o->dlq);
		return c->dlq ? CQ_OK :
		       cq_seterr(c->ctx, CQ_ERR_NOMEM, "out of memory");
	}
	if (find_dlx(c))
		return c->ctx->err;
	if (c->dlx && *c->dlx) {
		if (exchange_exists(c, c->dlx, &ex))
			return c->ctx->err;
		if (!ex) {
			notice(c, "queue '%s' names dead-letter exchange '%s', which does not exist: dead letters go to '%s%s' instead",
			       c->o->queue, c->dlx, c->o->queue, CQ_DLQ_SUFFIX);
			free(c->dlx);
			c->dlx = NULL;
		}
	}
	if (c->dlx)
		return CQ_OK;
	if (asprintf(&c->dlq, "%s%s", c->o->queue, CQ_DLQ_SUFFIX) < 0) {
		c->dlq = NULL;
		return cq_seterr(c->ctx, CQ_ERR_NOMEM, "out of memory");
	}
	return CQ_OK;
}

/* Declare the dead-letter queue we publish to, if it is missing. */
static bool ensure_dlq(struct consumer *c)
{
	char text[512];
	int code;

	if (c->dlq_ready)
		return true;
	code = side_declare(c, c->dlq, true, true, false, amqp_empty_table,
			    NULL, text, sizeof(text));
	if (code == 404)
		code = side_declare(c, c->dlq, false, true, false,
				    amqp_empty_table, NULL, text, sizeof(text));
	if (code < 0) {
		fail_from_ctx(c);
		return false;
	}
	if (code) {
		fail(c, code == 403 ? CQ_ERR_NOPERM : CQ_ERR_TEMPFAIL,
		     "cannot declare dead-letter queue '%s': %s", c->dlq, text);
		return false;
	}
	c->dlq_ready = true;
	return true;
}

/* ---- Redis: ids already processed ------------------------------------------ */

static bool dedupe_key(struct consumer *c, const char *id, struct cq_buf *k)
{
	struct cq_buf raw = { 0 };
	bool ok = cq_buf_append(&raw, "qctl:done:", 10) &&
		  cq_buf_append(&raw, c->o->queue, strlen(c->o->queue)) &&
		  cq_buf_append(&raw, ":", 1) &&
		  cq_buf_append(&raw, id, strlen(id)) &&
		  cqi_prefixed(c->ctx, raw.data, raw.len, k);

	cq_buf_free(&raw);
	return ok;
}

/* Has this message's id been processed?  A message without an id has not.
 * False on an error (then c->fatal is set). */
static bool dedupe_seen(struct consumer *c, const struct cq_delivery *d,
			bool *seen)
{
	struct cq_buf k = { 0 };
	const char *argv[2] = { "EXISTS" };
	size_t lens[2] = { 6 };
	struct cqi_reply *r;

	*seen = false;
	if (!d->message_id)
		return true;
	if (!dedupe_key(c, d->message_id, &k)) {
		fail(c, CQ_ERR_NOMEM, "out of memory");
		return false;
	}
	argv[1] = k.data;
	lens[1] = k.len;
	r = cqi_redis_cmd(c->ctx, CQI_KEY(1), 2, argv, lens);
	cq_buf_free(&k);
	if (!r) {
		fail_from_ctx(c);
		return false;
	}
	*seen = r->type == CQI_REPLY_INTEGER && r->integer > 0;
	cqi_reply_free(r);
	return true;
}

/* Remember that id was processed.  A failure stops the run after this
 * message is settled (it was processed: it is acked all the same). */
static void dedupe_mark(struct consumer *c, const char *id)
{
	struct cq_buf k = { 0 };
	char ttl[32];
	const char *argv[6] = { "SET", NULL, "1", "PX", ttl, "NX" };
	size_t lens[6] = { 3, 0, 1, 2, 0, 2 };
	struct cqi_reply *r;

	if (!id || !c->o->dedupe)
		return;
	if (!dedupe_key(c, id, &k)) {
		fail(c, CQ_ERR_NOMEM, "out of memory");
		return;
	}
	snprintf(ttl, sizeof(ttl), "%lld", c->o->dedupe_ttl_ms);
	argv[1] = k.data;
	lens[1] = k.len;
	lens[4] = strlen(ttl);
	r = cqi_redis_cmd(c->ctx, CQI_KEY(1), 6, argv, lens);
	cq_buf_free(&k);
	if (!r)
		fail_from_ctx(c);
	cqi_reply_free(r);
}

/* ---- settling ---------------------------------------------------------------- */

static void ack(struct consumer *c, uint64_t tag, bool multiple)
{
	if (cqi_ack(c->ctx, tag, multiple))
		return;	/* the connection is gone: it comes back */
}

/* A retry or dead letter was confirmed (or not): settle the original.
 * user_tag is the original's delivery tag * 2, + 1 for a dead letter. */
static void on_settle(void *arg, uint64_t user_tag, bool ok,
		      const char *reason)
{
	struct consumer *c = arg;
	uint64_t tag = user_tag >> 1;
	bool dead = user_tag & 1;

	if (ok) {
		ack(c, tag, false);
		if (dead)
			c->st->dead_lettered++;
		else
			c->st->retried++;
		return;
	}
	/* not safely elsewhere: leave it in the queue, and stop */
	if (!c->ctx->err)
		cqi_nack(c->ctx, tag, false, true);
	fail(c, CQ_ERR_TEMPFAIL, "cannot %s a message: %s (it stays in '%s')",
	     dead ? "dead-letter" : "retry", reason, c->o->queue);
}

/* ", broker delivery count N" for a message a quorum queue got back
 * before (static buffer: one notice at a time). */
static const char *delivery_count_note(const struct cq_delivery *d)
{
	static char note[64];
	long long n = cqi_delivery_count(d);

	if (n <= 0)
		return "";
	snprintf(note, sizeof(note), " (broker delivery count %lld)", n);
	return note;
}

long long cqi_delivery_count(const struct cq_delivery *d)
{
	const struct cq_field *f = cq_delivery_header(d, CQ_HDR_DELIVERY_COUNT);
	long long n;

	return f && cqi_field_int(f, &n) && n > 0 ? n : 0;
}

static long long retries_of(const struct cq_delivery *d)
{
	const struct cq_field *f = cq_delivery_header(d, CQ_HDR_RETRIES);
	long long n;

	return f && cqi_field_int(f, &n) && n > 0 ? n : 0;
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
static void publish(struct consumer *c, const struct cq_message *m,
		    uint64_t user_tag)
{
	if (cq_publish(c->pub, m, user_tag) == CQ_ERR_DATA)
		fail_from_ctx(c);
}

/* Republish d to its queue with retries + 1; ack it once confirmed. */
static void retry(struct consumer *c, struct cq_delivery *d,
		  long long retries, int code, const char *tail, size_t tlen)
{
	struct cq_header h[6];
	struct cq_message m;
	size_t n = 0;

	h[n++] = hdr_int(CQ_HDR_RETRIES, retries);
	/* a new message: the broker's count of the old one's returns must
	 * not pass for its own */
	h[n++] = (struct cq_header){ .key = CQ_HDR_DELIVERY_COUNT };
	h[n++] = hdr_int(CQ_HDR_EXIT_CODE, code);
	h[n++] = tlen ? hdr_str(CQ_HDR_STDERR, tail, tlen) :
			(struct cq_header){ .key = CQ_HDR_STDERR };
	if (!cq_delivery_header(d, CQ_HDR_ORIGINAL_EXCHANGE))
		h[n++] = hdr_str(CQ_HDR_ORIGINAL_EXCHANGE, d->exchange, 0);
	if (!cq_delivery_header(d, CQ_HDR_ORIGINAL_ROUTING_KEY))
		h[n++] = hdr_str(CQ_HDR_ORIGINAL_ROUTING_KEY, d->routing_key, 0);
	cq_message_init(&m);
	m.from = d;
	m.exchange = "";
	m.routing_key = c->o->queue;
	m.headers = h;
	m.nheaders = n;
	publish(c, &m, d->delivery_tag << 1);
}

/* Dead-letter d: through the queue's DLX, or a confirmed publish to the
 * dead-letter queue before the original is acked. */
static void dead_letter(struct consumer *c, struct cq_delivery *d,
			long long attempts, const char *reason, int code,
			const char *tail, size_t tlen)
{
	struct cq_header h[9];
	struct cq_message m;
	size_t n = 0;

	if (c->dlx) {
		/* the broker moves it and records x-death */
		if (cqi_reject(c->ctx, d->delivery_tag, false) == CQ_OK)
			c->st->dead_lettered++;
		notice(c, "message '%s' dead-lettered through exchange '%s': %s",
		       msg_id(d), *c->dlx ? c->dlx : "(default)", reason);
		return;
	}
	if (!ensure_dlq(c))
		return;		/* stays unacked: it comes back */
	h[n++] = hdr_int(CQ_HDR_RETRIES, attempts);
	h[n++] = hdr_str(CQ_HDR_DEATH_REASON, reason, 0);
	h[n++] = hdr_int(CQ_HDR_EXIT_CODE, code);
	h[n++] = tlen ? hdr_str(CQ_HDR_STDERR, tail, tlen) :
			(struct cq_header){ .key = CQ_HDR_STDERR };
	h[n++] = hdr_str(CQ_HDR_ORIGINAL_QUEUE, c->o->queue, 0);
	h[n++] = hdr_str(CQ_HDR_ORIGINAL_EXCHANGE,
			 header_or(d, CQ_HDR_ORIGINAL_EXCHANGE, d->exchange), 0);
	h[n++] = hdr_str(CQ_HDR_ORIGINAL_ROUTING_KEY,
			 header_or(d, CQ_HDR_ORIGINAL_ROUTING_KEY,
				   d->routing_key), 0);
	h[n++] = hdr_int(CQ_HDR_DIED_AT, cq_wall_ms() / 1000);
	h[n++] = hdr_str(CQ_HDR_HOST, c->host, 0);
	cq_message_init(&m);
	m.from = d;
	m.exchange = "";
	m.routing_key = c->dlq;
	m.headers = h;
	m.nheaders = n;
	notice(c, "message '%s' dead-lettered to '%s': %s", msg_id(d), c->dlq,
	       reason);
	publish(c, &m, d->delivery_tag << 1 | 1);
}

/* ---- printing ---------------------------------------------------------------- */

/* Flush what was printed, then ack it all with one multiple ack. */
static void flush_batch(struct consumer *c)
{
	if (!c->batch_n)
		return;
	if (!c->o->flush(c->o->arg)) {
		/* not acked: RabbitMQ delivers them again */
		fail(c, CQ_ERR_IO, "cannot write output");
		c->batch_n = 0;
		return;
	}
	dedupe_mark(c, c->batch_id);
	free(c->batch_id);
	c->batch_id = NULL;
	ack(c, c->batch_tag, c->batch_n > 1);
	c->st->acked += c->batch_n;
	c->st->handled += c->batch_n;
	c->batch_n = 0;
}

static bool count_reached(const struct consumer *c)
{
	return c->o->count && c->taken >= c->o->count;
}

static bool may_take(const struct consumer *c)
{
	return c->len && !c->fatal && !c->ctx->err && !count_reached(c) &&
	       (!c->stopping || c->drain);
}

/* A duplicate (--dedupe): ack it without handling.  False on an error. */
static bool skip_if_seen(struct consumer *c, struct cq_delivery *d,
			 bool *skipped)
{
	bool seen;

	*skipped = false;
	if (!c->o->dedupe)
		return true;
	if (!dedupe_seen(c, d, &seen))
		return false;
	if (seen) {
		ack(c, d->delivery_tag, false);
		c->st->skipped++;
		c->st->handled++;
		*skipped = true;
	}
	return true;
}

static void print_work(struct consumer *c)
{
	while (may_take(c)) {
		struct cq_delivery *d = pop(c);
		bool skipped;

		c->taken++;
		if (!skip_if_seen(c, d, &skipped) || skipped) {
			cqi_delivery_free(d);
			continue;
		}
		if (!c->o->print(c->o->arg, d)) {
			fail(c, CQ_ERR_IO, "cannot write output");
			cqi_delivery_free(d);
			return;
		}
		c->batch_tag = d->delivery_tag;
		c->batch_n++;
		if (c->o->dedupe && d->message_id)
			c->batch_id = strdup(d->message_id);
		cqi_delivery_free(d);
		if (c->batch_n >= c->ack_every)
			flush_batch(c);
	}
	/* nothing more at hand: push the output out and ack it */
	flush_batch(c);
}

/* ---- handlers ---------------------------------------------------------------- */

static void job_reason(const struct cqi_end *e, char *buf, size_t len,
		       bool poison)
{
	if (poison)
		snprintf(buf, len, "poison (exit %d)", e->code);
	else
		cqi_end_text(e, buf, len);
}

static bool is_poison(const struct consumer *c, const struct cqi_end *e)
{
	if (e->kind != CQI_END_EXIT)
		return false;
	for (size_t i = 0; i < c->o->npoison; i++)
		if (c->o->poison_codes[i] == e->code)
			return true;
	return false;
}

/* Keep d unacked until --retry-delay has passed. */
static bool hold(struct consumer *c, struct cq_delivery *d, long long retries,
		 int code, const char *tail, size_t tlen)
{
	struct held *h;

	if (c->nheld == c->held_cap) {
		size_t cap = c->held_cap ? c->held_cap * 2 : 8;
		struct held *n = realloc(c->held, cap * sizeof(*n));

		if (!n)
			return false;
		c->held = n;
		c->held_cap = cap;
	}
	h = &c->held[c->nheld];
	h->tail = strndup(tail, tlen);
	if (!h->tail)
		return false;
	h->d = d;
	h->due_ms = cq_now_ms() + c->o->retry_delay_ms;
	h->retries = retries;
	h->code = code;
	c->nheld++;
	return true;
}

/* Republish held messages that are due (all of them when stopping). */
static void release_held(struct consumer *c, long long now)
{
	for (size_t i = 0; i < c->nheld;) {
		struct held *h = &c->held[i];

		if (!c->stopping && h->due_ms > now) {
			i++;
			continue;
		}
		if (!c->ctx->err)
			retry(c, h->d, h->retries, h->code, h->tail,
			      strlen(h->tail));
		cqi_delivery_free(h->d);
		free(h->tail);
		c->held[i] = c->held[--c->nheld];
	}
}

static void failed(struct consumer *c, struct cqi_job *j)
{
	struct cq_delivery *d = j->d;
	struct cqi_end end = cqi_job_end(j);
	bool poison = is_poison(c, &end);
	long long attempts = j->retries + 1;
	int code = end.code;
	char reason[64];
	const char *tail;
	size_t tlen;

	job_reason(&end, reason, sizeof(reason), poison);
	tail = cqi_job_tail(j, &tlen);
	if (poison || j->retries >= (long long)c->o->max_retries) {
		dead_letter(c, d, attempts, reason, code, tail, tlen);
		return;
	}
	notice(c, "message '%s' failed (%s): retry %lld of %u%s%s", msg_id(d),
	       reason, attempts, c->o->max_retries,
	       c->o->retry_delay_ms && !c->stopping ? " after the delay" : "",
	       delivery_count_note(d));
	if (c->o->retry_delay_ms && !c->stopping &&
	    hold(c, d, attempts, code, tail, tlen)) {
		j->d = NULL;	/* held now */
		return;
	}
	retry(c, d, attempts, code, tail, tlen);
}

static void finish_job(struct consumer *c, struct cqi_job *j)
{
	struct cqi_end end = cqi_job_end(j);

	if (c->ctx->err) {
		/* cannot settle: RabbitMQ delivers it again */
		notice(c, "message '%s' handled but not acked: the connection is gone",
		       msg_id(j->d));
	} else if (end.kind == CQI_END_EXIT && end.code == 0) {
		dedupe_mark(c, j->d->message_id);
		ack(c, j->d->delivery_tag, false);
		c->st->acked++;
	} else {
		failed(c, j);
	}
	c->st->handled++;
	cqi_delivery_free(j->d);
	cqi_job_clear(j);
	c->running--;
}

static void start_job(struct consumer *c, struct cq_delivery *d)
{
	struct cqi_job *j = NULL;

	for (unsigned i = 0; i < c->njobs && !j; i++)
		if (!c->jobs[i].pid)
			j = &c->jobs[i];
	if (!j || cqi_job_start(c->ctx, j, c->o->exec, c->o->queue, d,
				retries_of(d), c->o->handler_timeout_ms)) {
		if (j)
			fail_from_ctx(c);
		cqi_delivery_free(d);	/* unacked: it comes back */
		if (j)
			cqi_job_clear(j);
		return;
	}
	c->running++;
}

static void sink(void *arg, const char *p, size_t n)
{
	struct consumer *c = arg;

	if (c->o->handler_stderr)
		c->o->handler_stderr(c->o->arg, p, n);
}

static void exec_work(struct consumer *c, long long now)
{
	for (unsigned i = 0; i < c->njobs; i++)
		if (cqi_job_done(&c->jobs[i]))
			finish_job(c, &c->jobs[i]);
	release_held(c, now);
	while (c->running < c->njobs && may_take(c)) {
		struct cq_delivery *d = pop(c);
		bool skipped;

		c->taken++;
		if (!skip_if_seen(c, d, &skipped) || skipped) {
			cqi_delivery_free(d);
			continue;
		}
		start_job(c, d);
	}
}

/* ---- the loop ------------------------------------------------------------------ */

static bool busy(const struct consumer *c)
{
	return c->len || c->running || c->nheld || c->batch_n ||
	       (c->pub && cqi_publisher_outstanding(c->pub)) ||
	       amqp_frames_enqueued(c->conn) || amqp_data_in_buffer(c->conn);
}

/* Cancel the subscription: nothing new arrives; with drain, what has
 * arrived is still handled. */
static void stop(struct consumer *c, bool drain)
{
	if (c->stopping)
		return;
	c->stopping = true;
	c->drain = drain;
	if (c->consuming && !c->ctx->err) {
		amqp_basic_cancel(c->conn, CQI_CHANNEL, c->tag);
		if (cqi_amqp_check(c->ctx, "cancel the consumer") == CQ_OK)
			c->consuming = false;
	}
}

static bool finished(const struct consumer *c)
{
	if (c->running)
		return false;
	if (c->ctx->err)
		return true;
	if (c->nheld || c->batch_n)
		return false;
	if (c->pub && cqi_publisher_outstanding(c->pub))
		return false;
	if (c->drain && !c->fatal &&
	    (c->len || amqp_frames_enqueued(c->conn)))
		return false;
	return true;
}

/* Count, idle timeout, drained queue: time to stop? */
static void check_done(struct consumer *c, long long now)
{
	uint32_t ready;
	char text[512];
	int code;

	if (count_reached(c)) {
		stop(c, false);
		return;
	}
	if (busy(c)) {
		c->idle_since_ms = 0;
		return;
	}
	if (!c->idle_since_ms)
		c->idle_since_ms = now;
	if (c->o->idle_timeout_ms &&
	    now - c->idle_since_ms >= c->o->idle_timeout_ms) {
		stop(c, true);
		return;
	}
	if (!c->o->until_empty || now - c->last_check_ms < EMPTY_CHECK_MS)
		return;
	c->last_check_ms = now;
	code = side_declare(c, c->o->queue, true, false, false,
			    amqp_empty_table, &ready, text, sizeof(text));
	if (code < 0)
		return;
	if (code) {
		fail(c, code == 404 ? CQ_ERR_NOTFOUND : CQ_ERR_TEMPFAIL,
		     "queue '%s': %s", c->o->queue, text);
		return;
	}
	if (ready == 0) {
		c->drained = true;
		stop(c, true);
	}
}

static enum cq_err subscribe(struct consumer *c);

/*
 * --until-empty cancelled the subscription and handled what had arrived;
 * failures handled meanwhile may have put retries back in the queue.
 * True when there are (the subscription is then resumed).
 */
static bool resume_after_drain(struct consumer *c)
{
	uint32_t ready;
	char text[512];
	int code;

	if (!c->drained || c->fatal || c->ctx->err || count_reached(c) ||
	    cq_stop_requested())
		return false;
	code = side_declare(c, c->o->queue, true, false, false,
			    amqp_empty_table, &ready, text, sizeof(text));
	if (code != 0 || ready == 0)
		return false;
	if (subscribe(c))
		return false;
	c->stopping = c->drain = c->drained = false;
	c->idle_since_ms = 0;
	return true;
}

/* How long the loop may sleep. */
static long long sleep_ms(const struct consumer *c, long long now)
{
	long long t = SLICE_MS;

	if (amqp_frames_enqueued(c->conn) || amqp_data_in_buffer(c->conn))
		return 0;
	if (c->running < c->njobs && may_take(c))
		return 0;
	for (unsigned i = 0; i < c->njobs; i++) {
		long long n = cqi_job_next_ms(&c->jobs[i], now);

		if (n >= 0 && n < t)
			t = n;
	}
	for (size_t i = 0; i < c->nheld; i++) {
		long long n = c->held[i].due_ms - now;

		if (n < t)
			t = n < 0 ? 0 : n;
	}
	if (c->o->idle_timeout_ms && c->idle_since_ms) {
		long long n = c->idle_since_ms + c->o->idle_timeout_ms - now;

		if (n < t)
			t = n < 0 ? 0 : n;
	}
	if (c->o->until_empty && !busy(c) && t > EMPTY_CHECK_MS)
		t = EMPTY_CHECK_MS;
	return t;
}

/* Sleep until the socket or a handler needs us, then serve both. */
static void wait_step(struct consumer *c, long long now)
{
	struct pollfd *fds = c->pfds;
	long long t = sleep_ms(c, now);
	bool pidfds = true;
	int n = 0;

	if (!c->running) {
		if (!c->ctx->err)
			pump_amqp(c, t);
		return;
	}
	fds[n++] = (struct pollfd){ .fd = amqp_get_sockfd(c->conn),
				    .events = POLLIN };
	for (unsigned i = 0; i < c->njobs; i++) {
		if (c->jobs[i].pid && c->jobs[i].pidfd < 0 && !c->jobs[i].reaped)
			pidfds = false;
		n += cqi_job_pollfds(&c->jobs[i], fds + n);
	}
	if (!pidfds && t > NO_PIDFD_SLICE_MS)
		t = NO_PIDFD_SLICE_MS;
	if (poll(fds, (nfds_t)n, (int)t) < 0 && errno != EINTR) {
		fail(c, CQ_ERR_INTERNAL, "poll: %s", strerror(errno));
		return;
	}
	/* a zero-wait read also sends a heartbeat when one is due */
	if (!c->ctx->err)
		pump_amqp(c, 0);
	now = cq_now_ms();
	for (unsigned i = 0; i < c->njobs; i++)
		cqi_job_pump(&c->jobs[i], now, sink, c);
}

static void progress(struct consumer *c, long long now, bool force)
{
	if (!c->o->progress || (!force && now - c->last_progress_ms < PROGRESS_MS))
		return;
	c->last_progress_ms = now;
	c->st->running = c->running;
	c->st->elapsed_ms = now - c->start_ms;
	c->o->progress(c->o->arg, c->st);
}

static void run(struct consumer *c)
{
	for (;;) {
		long long now = cq_now_ms();

		if (!c->stopping && cq_stop_requested()) {
			c->st->stopped = true;
			stop(c, false);
		}
		if (!c->stopping && (c->fatal || c->ctx->err))
			stop(c, false);
		if (c->o->exec)
			exec_work(c, now);
		else
			print_work(c);
		if (c->stopping && finished(c) && !resume_after_drain(c))
			break;
		if (!c->stopping)
			check_done(c, now);
		if (c->stopping && finished(c) && !resume_after_drain(c))
			break;
		wait_step(c, now);
		/* signals: on the second one, handlers are asked to stop */
		if (cq_stop_requested() > 1)
			for (unsigned i = 0; i < c->njobs; i++)
				if (c->jobs[i].pid)
					cqi_job_terminate(&c->jobs[i],
							  cq_now_ms());
		progress(c, cq_now_ms(), false);
	}
	if (c->pub && !c->ctx->err && cq_publisher_flush(c->pub))
		fail_from_ctx(c);
	progress(c, cq_now_ms(), true);
}

/* ---- set-up ---------------------------------------------------------------------- */

static enum cq_err subscribe(struct consumer *c)
{
	amqp_basic_consume_ok_t *ok;
	char what[300];

	amqp_bytes_free(c->tag);
	c->tag = amqp_empty_bytes;
	snprintf(what, sizeof(what), "consume from queue '%s'", c->o->queue);
	ok = amqp_basic_consume(c->conn, CQI_CHANNEL,
				amqp_cstring_bytes(c->o->queue),
				amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	if (cqi_amqp_check(c->ctx, what))
		return c->ctx->err;
	c->tag = amqp_bytes_malloc_dup(ok->consumer_tag);
	if (!c->tag.bytes)
		return cq_seterr(c->ctx, CQ_ERR_NOMEM, "out of memory");
	c->consuming = true;
	return CQ_OK;
}

static enum cq_err start_consuming(struct consumer *c, unsigned prefetch)
{
	char what[300];

	snprintf(what, sizeof(what), "set prefetch %u", prefetch);
	amqp_basic_qos(c->conn, CQI_CHANNEL, 0, (uint16_t)prefetch, 0);
	if (cqi_amqp_check(c->ctx, what))
		return c->ctx->err;
	return subscribe(c);
}

static unsigned pick_prefetch(const struct cq_consume_opts *o)
{
	unsigned long long p = o->prefetch;

	if (!p)
		p = o->exec ? o->jobs : PRINT_PREFETCH;
	if (o->count && p > o->count)
		p = o->count;	/* do not hold what we will not take */
	if (p > MAX_PREFETCH)
		p = MAX_PREFETCH;
	return p ? (unsigned)p : 1;
}

static enum cq_err check_opts(struct cq_ctx *ctx, const struct cq_consume_opts *o)
{
	if (cqi_name_check(ctx, "queue", o->queue ? o->queue : "") ||
	    (o->dlq && cqi_name_check(ctx, "dead-letter queue", o->dlq)))
		return ctx->err;
	if (!o->exec == !o->print || (o->print && !o->flush))
		return cq_seterr(ctx, CQ_ERR_USAGE, "print or exec, not both");
	if (o->exec && (o->jobs < 1 || o->jobs > 1024))
		return cq_seterr(ctx, CQ_ERR_USAGE, "jobs must be 1-1024");
	if (o->dedupe && o->dedupe_ttl_ms <= 0)
		return cq_seterr(ctx, CQ_ERR_USAGE, "dedupe TTL must be positive");
	return CQ_OK;
}

/* Connect, check the queue, prepare dead-lettering, subscribe.  Sets
 * *empty when --until-empty finds nothing to do. */
static enum cq_err setup(struct consumer *c, bool *empty)
{
	struct cq_ctx *ctx = c->ctx;
	uint32_t ready = 0;
	char text[512];
	int code;

	if (!ctx->amqp)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "consume: not connected to RabbitMQ");
	if (c->o->dedupe && !ctx->redis)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "consume: dedupe needs a connection to Redis");
	c->conn = ctx->amqp->conn;
	code = side_declare(c, c->o->queue, true, false, false,
			    amqp_empty_table, &ready, text, sizeof(text));
	if (code < 0)
		return ctx->err;
	if (code == 404)
		return cqi_missing_queue(ctx, c->o->queue);
	if (code)
		return cq_seterr(ctx, code == 403 ? CQ_ERR_NOPERM : CQ_ERR_TEMPFAIL,
				 "queue '%s': %s", c->o->queue, text);
	*empty = c->o->until_empty && ready == 0;
	if (*empty)
		return CQ_OK;
	if (c->o->exec) {
		c->jobs = calloc(c->o->jobs, sizeof(*c->jobs));
		c->pfds = calloc(1 + 2 * (size_t)c->o->jobs, sizeof(*c->pfds));
		if (!c->jobs || !c->pfds)
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		c->njobs = c->o->jobs;
		if (gethostname(c->host, sizeof(c->host) - 1) < 0)
			snprintf(c->host, sizeof(c->host), "unknown");
		if (setup_dead_letters(c))
			return ctx->err;
		c->pub = cq_publisher_new(ctx, 1000, true);
		if (!c->pub)
			return ctx->err;
		cq_publisher_on_settle(c->pub, on_settle, c);
		cqi_publisher_on_frame(c->pub, on_other_frame, c);
	}
	return start_consuming(c, pick_prefetch(c->o));
}

static void cleanup(struct consumer *c)
{
	while (c->len)
		cqi_delivery_free(pop(c));
	free(c->fifo);
	for (unsigned i = 0; i < c->njobs; i++) {
		cqi_delivery_free(c->jobs[i].d);
		cqi_job_clear(&c->jobs[i]);
	}
	free(c->jobs);
	free(c->pfds);
	for (size_t i = 0; i < c->nheld; i++) {
		cqi_delivery_free(c->held[i].d);
		free(c->held[i].tail);
	}
	free(c->held);
	cq_publisher_free(c->pub);
	amqp_bytes_free(c->tag);
	free(c->batch_id);
	free(c->dlx);
	free(c->dlq);
}

enum cq_err cq_consume(struct cq_ctx *ctx, const struct cq_consume_opts *o,
		       struct cq_consume_stats *st)
{
	struct consumer c = { .ctx = ctx, .o = o, .st = st };
	bool empty = false;
	enum cq_err e;

	memset(st, 0, sizeof(*st));
	c.start_ms = cq_now_ms();
	if (ctx->err)
		return ctx->err;
	if (check_opts(ctx, o))
		return ctx->err;
	c.ack_every = o->dedupe ? 1 : pick_prefetch(o) / 4;
	if (c.ack_every < 1)
		c.ack_every = 1;
	if (setup(&c, &empty) == CQ_OK && !empty)
		run(&c);
	st->elapsed_ms = cq_now_ms() - c.start_ms;
	cleanup(&c);
	if (!ctx->err && c.fatal)
		cq_seterr(ctx, c.fatal, "%s", c.fatal_msg);
	if (ctx->err)
		return ctx->err;
	e = CQ_OK;
	if ((o->until_empty || o->idle_timeout_ms) && !st->received &&
	    !st->stopped)
		e = cq_seterr(ctx, CQ_ERR_NOTFOUND, "queue '%s' is empty",
			      o->queue);
	return e;
}
