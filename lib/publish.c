/* publish.c - the confirming publisher: a window of outstanding messages,
 * confirms read as basic.ack/basic.nack frames, basic.return for mandatory
 * messages nobody could route. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
#include "queue_int.h"

#define CQI_ID_LEN 17		/* 62^17 > 2^96 */
#define CQI_ID_SIZE (CQI_ID_LEN + 1)

#define REASON_NACK CQ_REASON_NACK
#define REASON_RETURN CQ_REASON_RETURN
#define REASON_LOST CQ_REASON_LOST
#define REASON_CLOSED CQ_REASON_CLOSED
#define REASON_TIMEOUT CQ_REASON_TIMEOUT
#define REASON_BAD CQ_REASON_BAD
#define REASON_BLOCKED CQ_REASON_BLOCKED
#define REASON_STOPPED CQ_REASON_STOPPED

enum slot_state { SLOT_FREE, SLOT_PENDING, SLOT_RETURNED };

struct slot {
	uint64_t user_tag;
	uint64_t id_hash;	/* of the message id, for basic.return */
	enum slot_state state;
};

struct cq_publisher {
	struct cq_ctx *ctx;
	size_t window;
	bool mandatory;
	bool dead;
	bool hurried;		/* a second stop request ended the waiting */
	bool blocked;		/* connection.blocked: a resource alarm */
	long long blocked_at;	/* since when (monotonic ms) */
	char blocked_why[128];
	cq_blocked_fn on_blocked;
	void *blocked_arg;
	struct slot *ring;	/* indexed by delivery tag % window */
	uint64_t first;		/* oldest delivery tag that may be pending */
	uint64_t next;		/* the tag the next publish gets */
	size_t outstanding;
	uint64_t confirmed, failed;
	cq_settle_fn settle;
	void *settle_arg;
	cqi_frame_fn hook;
	void *hook_arg;
	unsigned char idbase[12];	/* random; a counter makes ids unique */
	uint64_t idcount;
	amqp_table_entry_t *entries;	/* scratch for the headers table */
	size_t nentries_cap;
	unsigned since_release;
};

void cq_message_init(struct cq_message *m)
{
	memset(m, 0, sizeof(*m));
	m->priority = -1;
}

static uint64_t hash_id(const void *p, size_t n)
{
	return cqi_hash64(CQI_HASH_INIT, p, n);
}

struct cq_publisher *cqi_publisher_new(struct cq_ctx *ctx, size_t window,
				      bool mandatory)
{
	struct cq_publisher *pub;

	if (ctx->err)
		return NULL;
	if (!ctx->amqp) {
		cq_seterr(ctx, CQ_ERR_INTERNAL, "publish: not connected");
		return NULL;
	}
	if (window < 1 || window > 1000000) {
		cq_seterr(ctx, CQ_ERR_USAGE, "publish: window %zu out of range",
			  window);
		return NULL;
	}
	pub = calloc(1, sizeof(*pub));
	if (pub)
		pub->ring = calloc(window, sizeof(*pub->ring));
	if (!pub || !pub->ring) {
		free(pub);
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return NULL;
	}
	pub->ctx = ctx;
	pub->window = window;
	pub->mandatory = mandatory;
	if (cqi_random_bytes(ctx, pub->idbase, sizeof(pub->idbase)) ||
	    cqi_amqp_confirm_select(ctx)) {
		cqi_publisher_free(pub);
		return NULL;
	}
	pub->first = pub->next = ctx->amqp->next_tag;
	return pub;
}

void cqi_publisher_on_settle(struct cq_publisher *pub, cq_settle_fn fn,
			    void *arg)
{
	pub->settle = fn;
	pub->settle_arg = arg;
}

void cqi_publisher_on_blocked(struct cq_publisher *pub, cq_blocked_fn fn,
			     void *arg)
{
	pub->on_blocked = fn;
	pub->blocked_arg = arg;
}

void cqi_publisher_on_frame(struct cq_publisher *pub, cqi_frame_fn fn,
			    void *arg)
{
	pub->hook = fn;
	pub->hook_arg = arg;
}

uint64_t cqi_publisher_confirmed(const struct cq_publisher *pub)
{
	return pub->confirmed;
}

uint64_t cqi_publisher_failed(const struct cq_publisher *pub)
{
	return pub->failed;
}

bool cqi_publisher_alive(const struct cq_publisher *pub)
{
	return !pub->dead;
}

size_t cqi_publisher_outstanding(const struct cq_publisher *pub)
{
	return pub->outstanding;
}

void cqi_publisher_free(struct cq_publisher *pub)
{
	if (!pub)
		return;
	free(pub->ring);
	free(pub->entries);
	free(pub);
}

/* ---- settling ----------------------------------------------------------- */

static void notify(struct cq_publisher *pub, uint64_t user_tag, bool ok,
		   const char *reason)
{
	if (ok)
		pub->confirmed++;
	else
		pub->failed++;
	if (pub->settle)
		pub->settle(pub->settle_arg, user_tag, ok, ok ? NULL : reason);
}

static void settle_one(struct cq_publisher *pub, uint64_t tag, bool ok,
		       const char *reason)
{
	struct slot *s = &pub->ring[tag % pub->window];

	if (tag < pub->first || tag >= pub->next || s->state == SLOT_FREE)
		return;		/* already settled, or not ours */
	if (s->state == SLOT_RETURNED) {
		ok = false;
		reason = REASON_RETURN;
	}
	s->state = SLOT_FREE;
	pub->outstanding--;
	notify(pub, s->user_tag, ok, reason);
}

/* Move first past the settled slots. */
static void advance(struct cq_publisher *pub)
{
	while (pub->first < pub->next &&
	       pub->ring[pub->first % pub->window].state == SLOT_FREE)
		pub->first++;
}

static void settle_upto(struct cq_publisher *pub, uint64_t tag, bool multiple,
			bool ok, const char *reason)
{
	if (multiple) {
		for (uint64_t t = pub->first; t <= tag && t < pub->next; t++)
			settle_one(pub, t, ok, reason);
	} else {
		settle_one(pub, tag, ok, reason);
	}
	advance(pub);
}

/* Every outstanding message fails: the channel or connection is gone. */
static void settle_all_failed(struct cq_publisher *pub, const char *reason)
{
	settle_upto(pub, pub->next - 1, true, false, reason);
	pub->first = pub->next;
}

/* The connection or channel broke: nothing outstanding can be confirmed
 * any more.  Keeps ctx's message; returns its error. */
static enum cq_err die(struct cq_publisher *pub, const char *reason)
{
	pub->dead = true;
	settle_all_failed(pub, reason);
	if (!pub->ctx->err)
		cq_seterr(pub->ctx, CQ_ERR_TEMPFAIL, "publish: %s", reason);
	return pub->ctx->err;
}

/* ---- reading confirms --------------------------------------------------- */

/* basic.return: the message header and body follow; fail the outstanding
 * messages with its id (all of them if several share it: reporting a
 * confirmed message as failed can only cause a duplicate, never a loss). */
static enum cq_err on_return(struct cq_publisher *pub)
{
	struct cqi_amqp *a = pub->ctx->amqp;
	amqp_message_t msg;
	amqp_rpc_reply_t r;
	amqp_bytes_t id = amqp_empty_bytes;
	uint64_t h;

	r = amqp_read_message(a->conn, CQI_CHANNEL, &msg, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		cqi_amqp_rpc_err(pub->ctx, r, "publish: read returned message");
		return die(pub, REASON_LOST);
	}
	if (msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		id = msg.properties.message_id;
	h = hash_id(id.bytes, id.len);
	for (uint64_t t = pub->first; t < pub->next; t++) {
		struct slot *s = &pub->ring[t % pub->window];

		if (s->state == SLOT_PENDING && s->id_hash == h)
			s->state = SLOT_RETURNED;
	}
	amqp_destroy_message(&msg);
	return CQ_OK;
}

/* The broker closed the channel or the connection under us. */
static enum cq_err on_close(struct cq_publisher *pub, const amqp_frame_t *f)
{
	amqp_rpc_reply_t r = { 0 };

	r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
	r.reply = f->payload.method;
	cqi_amqp_rpc_err(pub->ctx, r, "publish");
	return die(pub, f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ?
			REASON_CLOSED : REASON_LOST);
}

enum cq_err cqi_publisher_frame(struct cq_publisher *pub,
				const amqp_frame_t *f, bool *handled)
{
	*handled = true;
	if (f->frame_type != AMQP_FRAME_METHOD) {
		*handled = false;
		return CQ_OK;
	}
	switch (f->payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *m = f->payload.method.decoded;

		settle_upto(pub, m->delivery_tag, m->multiple, true, NULL);
		return CQ_OK;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *m = f->payload.method.decoded;

		settle_upto(pub, m->delivery_tag, m->multiple, false,
			    REASON_NACK);
		return CQ_OK;
	}
	case AMQP_BASIC_RETURN_METHOD:
		return on_return(pub);
	case AMQP_CHANNEL_CLOSE_METHOD:
		if (f->channel != CQI_CHANNEL)
			break;
		return on_close(pub, f);
	case AMQP_CONNECTION_CLOSE_METHOD:
		return on_close(pub, f);
	case AMQP_CONNECTION_BLOCKED_METHOD: {
		amqp_connection_blocked_t *m = f->payload.method.decoded;

		/* a memory or disk alarm: send nothing more, and wait */
		snprintf(pub->blocked_why, sizeof(pub->blocked_why), "%.*s",
			 (int)m->reason.len, (char *)m->reason.bytes);
		if (!pub->blocked) {
			pub->blocked = true;
			pub->blocked_at = cq_now_ms();
			if (pub->on_blocked)
				pub->on_blocked(pub->blocked_arg, true,
						pub->blocked_why);
		}
		return CQ_OK;
	}
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		if (pub->blocked) {
			pub->blocked = false;
			if (pub->on_blocked)
				pub->on_blocked(pub->blocked_arg, false, NULL);
		}
		return CQ_OK;
	}
	*handled = false;
	return CQ_OK;
}

static enum cq_err on_frame(struct cq_publisher *pub, const amqp_frame_t *f)
{
	bool handled;
	enum cq_err e = cqi_publisher_frame(pub, f, &handled);

	if (e || handled)
		return e;
	if (pub->hook)
		return pub->hook(pub->hook_arg, f);
	cq_seterr(pub->ctx, CQ_ERR_INTERNAL,
		  "publish: unexpected frame type %d method 0x%08x",
		  f->frame_type, f->frame_type == AMQP_FRAME_METHOD ?
		  f->payload.method.id : 0);
	return die(pub, REASON_LOST);
}

/*
 * Read frames: at least one when wait_ms > 0 (giving up with
 * AMQP_STATUS_TIMEOUT after wait_ms), then whatever is already buffered.
 * Returns CQ_OK, CQ_ERR_TEMPFAIL with *timed_out, or an error.
 */
static enum cq_err read_frames(struct cq_publisher *pub, long long wait_ms,
			       bool *timed_out)
{
	amqp_connection_state_t conn = pub->ctx->amqp->conn;
	bool first = true;

	*timed_out = false;
	for (;;) {
		amqp_frame_t f;
		int st;

		/* past the first, only what is buffered: one cheap look at
		 * the socket came first */
		if (!first && !amqp_frames_enqueued(conn) &&
		    !amqp_data_in_buffer(conn))
			break;
		st = cqi_amqp_wait_frame(conn, &f, first ? wait_ms : 0);
		if (st == AMQP_STATUS_TIMEOUT) {
			*timed_out = first && wait_ms > 0;
			break;
		}
		first = false;
		if (st != AMQP_STATUS_OK) {
			cqi_amqp_status_err(pub->ctx, st, "publish: read confirms");
			return die(pub, REASON_LOST);
		}
		if (on_frame(pub, &f))
			return pub->ctx->err;
		wait_ms = 0;
	}
	if (++pub->since_release >= 64 || pub->outstanding == 0) {
		amqp_maybe_release_buffers(conn);
		pub->since_release = 0;
	}
	return *timed_out ? CQ_ERR_TEMPFAIL : CQ_OK;
}

enum cq_err cqi_publisher_poll(struct cq_publisher *pub)
{
	bool timed_out;

	if (pub->dead)
		return pub->ctx->err ? pub->ctx->err : CQ_ERR_TEMPFAIL;
	if (pub->outstanding == 0)
		return CQ_OK;
	return read_frames(pub, 0, &timed_out);
}

/* The longest poll() while waiting for input: heartbeats go out on time. */
#define INPUT_SLICE_MS 1000

enum cq_err cqi_publisher_wait_input(struct cq_publisher *pub, int fd)
{
	amqp_connection_state_t conn = pub->ctx->amqp->conn;
	int slice = INPUT_SLICE_MS, heartbeat = amqp_get_heartbeat(conn);

	if (heartbeat > 0 && heartbeat * 500 < slice)
		slice = heartbeat * 500;
	for (;;) {
		struct pollfd fds[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = amqp_get_sockfd(conn), .events = POLLIN },
		};
		bool timed_out;
		int n = 0;

		if (pub->dead)
			return pub->ctx->err ? pub->ctx->err : CQ_ERR_TEMPFAIL;
		if (cq_stop_requested())
			return CQ_ERR_TEMPFAIL;	/* the caller stops reading */
		/* frames already read into librabbitmq's buffer: no poll sees them */
		if (!amqp_data_in_buffer(conn) && !amqp_frames_enqueued(conn))
			n = poll(fds, 2, slice);
		if (n < 0 && errno != EINTR)
			return cq_seterr(pub->ctx, CQ_ERR_INTERNAL, "poll: %s",
					 strerror(errno));
		if (n > 0 && fds[0].revents)
			return CQ_OK;	/* input, end of input or an error to read */
		/* confirms, a close, or nothing: a zero-wait read also sends a
		 * heartbeat when one is due */
		if (read_frames(pub, 0, &timed_out))
			return pub->ctx->err;
	}
}

static enum cq_err serve_input(void *arg, int fd)
{
	return cqi_publisher_wait_input(arg, fd);
}

void cqi_reader_serve(struct cq_reader *r, struct cq_publisher *pub)
{
	cqi_reader_wait(r, pub ? serve_input : NULL, pub);
}
/* The longest wait for confirms between looks at a stop request. */
#define STOP_SLICE_MS 200

/*
 * How long to wait for a confirm without any progress.  A busy broker
 * (paging a long queue to disk, flow control) may take many seconds to
 * confirm, and giving up early only causes duplicates, so at least
 * CONFIRM_PATIENCE_MS; a dead one is noticed sooner through the socket or
 * missed heartbeats.  While the broker says it is blocked (a resource
 * alarm), wait as long as it takes.
 */
#define CONFIRM_PATIENCE_MS 60000

/*
 * Block until at most limit delivery tags are between the oldest unsettled
 * one and the next: not merely limit outstanding, since confirms may come
 * out of order (a return is confirmed at once, a routed message after it
 * is written) and the ring is indexed by tag.
 */
/* Blocked past the timeout: give up on everything outstanding. */
static enum cq_err blocked_too_long(struct cq_publisher *pub)
{
	long long t = pub->ctx->set.timeout_ms;

	settle_all_failed(pub, REASON_BLOCKED);
	pub->dead = true;
	/* an alarm blocks every node of a cluster: no reconnect */
	pub->ctx->amqp->blocked_out = true;
	return cq_seterr(pub->ctx, CQ_ERR_TEMPFAIL,
			 "publish: RabbitMQ at %s blocked publishing (%s) for more than %lld.%03llds (--timeout)",
			 pub->ctx->amqp->where,
			 pub->blocked_why[0] ? pub->blocked_why : "a resource alarm",
			 t / 1000, t % 1000);
}

/* Hurried by a second stop request: what is outstanding may or may not
 * be in the queue; reported unconfirmed, it can only be sent twice,
 * never lost. */
static enum cq_err hurried(struct cq_publisher *pub)
{
	size_t n = pub->outstanding;

	settle_all_failed(pub, REASON_STOPPED);
	pub->dead = pub->hurried = true;
	return cq_seterr(pub->ctx, CQ_ERR_TEMPFAIL,
			 "publish: stopped by %s before %zu confirm%s came",
			 cq_stop_name(), n, n == 1 ? "" : "s");
}

/* While the broker blocks publishing, read frames (confirms may still
 * come, and connection.unblocked), at most the timeout from the block,
 * looking at stop requests between slices. */
static enum cq_err wait_unblocked(struct cq_publisher *pub)
{
	while (pub->blocked) {
		long long left = pub->blocked_at + pub->ctx->set.timeout_ms - cq_now_ms();
		bool timed_out;
		enum cq_err e;

		if (cq_stop_requested() > 1)
			return hurried(pub);
		if (left <= 0)
			return blocked_too_long(pub);
		e = read_frames(pub, left < STOP_SLICE_MS ? left : STOP_SLICE_MS,
				&timed_out);
		if (e && !timed_out)
			return e;
	}
	return CQ_OK;
}

static enum cq_err wait_until(struct cq_publisher *pub, size_t limit)
{
	long long timeout = pub->ctx->set.timeout_ms;
	long long deadline;

	if (timeout < CONFIRM_PATIENCE_MS)
		timeout = CONFIRM_PATIENCE_MS;
	deadline = cq_now_ms() + timeout;
	while (pub->next - pub->first > limit) {
		size_t before = pub->outstanding;
		long long left = deadline - cq_now_ms();
		bool timed_out = false;
		enum cq_err e;

		if (cq_stop_requested() > 1)
			return hurried(pub);
		if (left <= 0)
			left = 1;
		if (pub->blocked) {
			/* blocked: wait no longer than the timeout allows */
			long long b = pub->blocked_at + pub->ctx->set.timeout_ms -
				      cq_now_ms();

			left = b < left ? (b > 0 ? b : 1) : left;
		}
		if (left > STOP_SLICE_MS)
			left = STOP_SLICE_MS;
		e = read_frames(pub, left, &timed_out);
		if (e && !timed_out)
			return e;
		if (pub->blocked &&
		    cq_now_ms() - pub->blocked_at >= pub->ctx->set.timeout_ms)
			return blocked_too_long(pub);
		if (pub->outstanding < before || pub->blocked)
			deadline = cq_now_ms() + timeout;	/* progress */
		else if (cq_now_ms() >= deadline) {
			settle_all_failed(pub, REASON_TIMEOUT);
			pub->dead = true;
			return cq_seterr(pub->ctx, CQ_ERR_TEMPFAIL,
					 "publish: no confirm from RabbitMQ at %s within %llds",
					 pub->ctx->amqp->where, timeout / 1000);
		}
	}
	return CQ_OK;
}

enum cq_err cqi_publisher_flush(struct cq_publisher *pub)
{
	if (pub->dead)
		return pub->ctx->err ? pub->ctx->err : CQ_ERR_TEMPFAIL;
	return wait_until(pub, 0);
}

/* ---- building a message ------------------------------------------------- */

/*
 * A fresh id: a random 96-bit base plus a counter, as 17 base-62 digits.
 * Within a run ids never repeat; two runs collide only if their random
 * bases fall within a run's count of each other (about 1e-11 for a million
 * runs of a million messages).  Short and alphanumeric on purpose: the
 * broker's cost per message grows with the id's length (in bench/, a
 * 36-character UUID cost about 12% more broker CPU than no id at all, a
 * 22-character one 5%), and an id without '-' or '_' can be pasted as an
 * argument, a file name or a Redis key as it is.
 */
static void fresh_id(struct cq_publisher *pub, char out[CQI_ID_SIZE])
{
	static const char digits[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	const unsigned char *b = pub->idbase;
	uint32_t w[3];
	uint64_t low = 0;

	for (int i = 4; i < 12; i++)
		low = low << 8 | b[i];
	low += ++pub->idcount;
	w[0] = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	       (uint32_t)b[2] << 8 | b[3];
	w[1] = (uint32_t)(low >> 32);
	w[2] = (uint32_t)low;
	for (int i = CQI_ID_LEN - 1; i >= 0; i--) {
		uint64_t rem = 0;

		for (int j = 0; j < 3; j++) {
			uint64_t cur = rem << 32 | w[j];

			w[j] = (uint32_t)(cur / 62);
			rem = cur % 62;
		}
		out[i] = digits[rem];
	}
	out[CQI_ID_LEN] = '\0';
}

static bool want_entries(struct cq_publisher *pub, size_t n)
{
	amqp_table_entry_t *e;

	if (n <= pub->nentries_cap)
		return true;
	e = realloc(pub->entries, n * sizeof(*e));
	if (!e)
		return false;
	pub->entries = e;
	pub->nentries_cap = n;
	return true;
}

static bool header_named(const struct cq_message *m, amqp_bytes_t key)
{
	for (size_t i = 0; i < m->nheaders; i++) {
		const char *k = m->headers[i].key;

		if (strlen(k) == key.len && memcmp(k, key.bytes, key.len) == 0)
			return true;
	}
	return false;
}

/* The headers table: the delivery's (when republishing) minus those
 * replaced or removed, then the message's own. */
static bool build_headers(struct cq_publisher *pub, const struct cq_message *m,
			  amqp_table_t *out)
{
	const amqp_table_t *old = NULL;
	size_t n = 0, cap = m->nheaders;

	if (m->from && m->from->props &&
	    (m->from->props->msg.properties._flags & AMQP_BASIC_HEADERS_FLAG)) {
		old = &m->from->props->msg.properties.headers;
		cap += (size_t)old->num_entries;
	}
	if (cap && !want_entries(pub, cap))
		return false;
	for (int i = 0; old && i < old->num_entries; i++)
		if (!header_named(m, old->entries[i].key))
			pub->entries[n++] = old->entries[i];
	for (size_t i = 0; i < m->nheaders; i++) {
		const struct cq_header *h = &m->headers[i];
		amqp_table_entry_t *e = &pub->entries[n];

		if (!h->is_int && !h->is_bool && !h->is_float && !h->value)
			continue;	/* removal */
		e->key = amqp_cstring_bytes(h->key);
		if (h->is_int) {
			e->value.kind = AMQP_FIELD_KIND_I64;
			e->value.value.i64 = h->ival;
		} else if (h->is_bool) {
			e->value.kind = AMQP_FIELD_KIND_BOOLEAN;
			e->value.value.boolean = h->ival != 0;
		} else if (h->is_float) {
			e->value.kind = AMQP_FIELD_KIND_F64;
			e->value.value.f64 = h->fval;
		} else {
			e->value.kind = AMQP_FIELD_KIND_UTF8;
			e->value.value.bytes.bytes = (void *)h->value;
			e->value.value.bytes.len = h->vlen ? h->vlen :
						   strlen(h->value);
		}
		n++;
	}
	out->num_entries = (int)n;
	out->entries = n ? pub->entries : NULL;
	return true;
}

static bool valid_expiration(const char *s)
{
	if (!*s || strlen(s) > 10)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Fill p from m (and m->from).  *id gets the message id bytes. */
static enum cq_err build_props(struct cq_publisher *pub,
			       const struct cq_message *m, char idbuf[CQI_ID_SIZE],
			       amqp_basic_properties_t *p)
{
	if (m->priority > 255 || m->priority < -1)
		return cq_seterr(pub->ctx, CQ_ERR_DATA,
				 "publish: priority %d out of range 0-255",
				 m->priority);
	if (m->expiration && !valid_expiration(m->expiration))
		return cq_seterr(pub->ctx, CQ_ERR_DATA,
				 "publish: bad expiration '%s' (want milliseconds)",
				 m->expiration);
	if (m->from && m->from->props)
		*p = m->from->props->msg.properties;
	else
		memset(p, 0, sizeof(*p));
	p->_flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
	if (!m->from || m->transient)
		p->delivery_mode = m->transient ? AMQP_DELIVERY_NONPERSISTENT :
				   AMQP_DELIVERY_PERSISTENT;
	if (m->content_type) {
		p->_flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
		p->content_type = amqp_cstring_bytes(m->content_type);
	}
	if (m->priority >= 0) {
		p->_flags |= AMQP_BASIC_PRIORITY_FLAG;
		p->priority = (uint8_t)m->priority;
	}
	if (m->expiration) {
		p->_flags |= AMQP_BASIC_EXPIRATION_FLAG;
		p->expiration = amqp_cstring_bytes(m->expiration);
	}
	if (!m->from) {
		p->_flags |= AMQP_BASIC_TIMESTAMP_FLAG;
		p->timestamp = (uint64_t)time(NULL);
	}
	if (m->message_id) {
		p->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
		p->message_id = amqp_cstring_bytes(m->message_id);
	} else if (!m->from && !m->no_message_id) {
		fresh_id(pub, idbuf);
		p->_flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
		p->message_id = amqp_cstring_bytes(idbuf);
	}
	if (!build_headers(pub, m, &p->headers))
		return cq_seterr(pub->ctx, CQ_ERR_NOMEM, "out of memory");
	if (p->headers.num_entries)
		p->_flags |= AMQP_BASIC_HEADERS_FLAG;
	else
		p->_flags &= ~AMQP_BASIC_HEADERS_FLAG;
	return CQ_OK;
}

/* ---- publishing --------------------------------------------------------- */

enum cq_err cqi_publish(struct cq_publisher *pub, const struct cq_message *m,
		       uint64_t user_tag)
{
	struct cq_ctx *ctx = pub->ctx;
	struct cqi_amqp *a = ctx->amqp;
	amqp_basic_properties_t p;
	amqp_bytes_t body, id = amqp_empty_bytes;
	char idbuf[CQI_ID_SIZE];
	const char *rk;
	struct slot *s;
	int st;

	if (pub->dead || !a || !a->channel_open || !a->confirming) {
		/* the channel was closed (and reopened) under us */
		if (!pub->dead && a && pub->outstanding)
			die(pub, REASON_CLOSED);
		pub->dead = true;
		notify(pub, user_tag, false, REASON_LOST);
		return ctx->err ? ctx->err :
		       cq_seterr(ctx, CQ_ERR_TEMPFAIL, "publish: %s", REASON_LOST);
	}
	if (wait_unblocked(pub) || wait_until(pub, pub->window - 1)) {
		notify(pub, user_tag, false, pub->hurried ? REASON_STOPPED :
		       pub->blocked ? REASON_BLOCKED : REASON_LOST);
		return ctx->err;
	}
	if (build_props(pub, m, idbuf, &p)) {
		notify(pub, user_tag, false, REASON_BAD);
		return ctx->err;
	}
	if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		id = p.message_id;
	if (m->body || !m->from) {
		body.bytes = (void *)m->body;
		body.len = m->len;
	} else {
		body.bytes = m->from->body;
		body.len = m->from->len;
	}
	rk = m->routing_key ? m->routing_key : "";
	st = amqp_basic_publish(a->conn, CQI_CHANNEL,
				amqp_cstring_bytes(m->exchange ? m->exchange : ""),
				amqp_cstring_bytes(rk), pub->mandatory, 0, &p,
				body);
	if (st != AMQP_STATUS_OK) {
		cqi_amqp_status_err(ctx, st, "publish");
		notify(pub, user_tag, false, REASON_LOST);
		return die(pub, REASON_LOST);
	}
	s = &pub->ring[pub->next % pub->window];
	s->user_tag = user_tag;
	s->id_hash = hash_id(id.bytes, id.len);
	s->state = SLOT_PENDING;
	pub->next++;
	a->next_tag = pub->next;
	pub->outstanding++;
	/* settle what has arrived, so the window rarely fills */
	if (amqp_data_in_buffer(a->conn) || (pub->next & 63) == 0) {
		bool timed_out;

		return read_frames(pub, 0, &timed_out);
	}
	return CQ_OK;
}
