/* consume.c - the queue engine under qctl consume: read a queue, print
 * each message or run a handler for it, and settle it only once it is
 * done.
 *
 * The policy lives here: handler jobs (handler.c), failed messages held
 * out their --retry-delay, retries up to --max-retries, poison codes,
 * dead letters with their reason, stop requests (in-flight work is
 * settled), --dedupe, --count, --idle-timeout and --until-empty.  The
 * queue itself is a driver (qdriver_int.h; AMQP: consume_amqp.c): the
 * engine takes messages from it, and asks it to ack, retry or dead-letter
 * them.  While handlers run, one poll() watches the driver's socket and
 * every handler's pipes, so the connection stays serviced.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consume_int.h"
#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"
#include "queue_int.h"
#include "redis_int.h"

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
	struct cqi_qdriver *q;	/* the queue */
	bool stopping;
	bool drain;		/* while stopping, still handle what arrived */
	bool drained;		/* --until-empty stopped it: look again at the end */
	/* deliveries received, not yet handled: of struct cq_delivery * */
	struct cqi_ring fifo;
	/* printing: written since the last ack */
	uint64_t batch_tag;
	unsigned batch_n, ack_every;
	unsigned window;	/* prefetch: at most this many unsettled */
	char *batch_id;		/* --dedupe: the id of the one message */
	/* handlers */
	struct cqi_job *jobs;
	unsigned njobs, running;
	struct held *held;
	size_t nheld, held_cap;
	struct pollfd *pfds;	/* the driver's socket + 2 per handler */
	char host[256];
	unsigned long long taken;	/* messages handed to print or a handler */
	/* messages done lately (only when the driver can reconnect), for
	 * copies whose ack the lost node may not have read (done.c) */
	struct cqi_done done;
	size_t batch_keys;	/* printing: added to it since the last ack */
	long long start_ms, idle_since_ms, last_check_ms, last_progress_ms;
	/* an error that stops the run gracefully (the connection still
	 * works: finished handlers are still settled) */
	struct cqi_err_held stop_err;
};

void cq_consume_opts_init(struct cq_consume_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->jobs = 1;
	o->max_retries = 3;
	o->dedupe_ttl_ms = 24LL * 3600 * 1000;
	o->visibility_ms = 5LL * 60 * 1000;
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

/* How a notice names d: its id quoted, or (an app's list message has
 * none) the start of its body.  buf holds it until the next call. */
static const char *msg_name(const struct cq_delivery *d, char *buf,
			    size_t cap)
{
	char shown[160];

	if (d->message_id) {
		cqi_show_bytes(d->message_id, strlen(d->message_id), 100,
			       shown, sizeof(shown));
		snprintf(buf, cap, "'%s'", shown);
	} else {
		cqi_show_bytes(d->body, d->len, 40, shown, sizeof(shown));
		snprintf(buf, cap, "with no id ('%s')", shown);
	}
	return buf;
}

/* ---- the queue of received deliveries ------------------------------------ */

static bool push(struct consumer *c, struct cq_delivery *d)
{
	struct cq_delivery **slot = cqi_ring_push(&c->fifo, 64);

	if (!slot)
		return false;
	*slot = d;
	return true;
}

static struct cq_delivery *pop(struct consumer *c)
{
	struct cq_delivery **oldest = cqi_ring_at(&c->fifo, 0);
	struct cq_delivery *d = *oldest;

	cqi_ring_shift(&c->fifo);
	return d;
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
 * False on an error (then c->stop_err.err is set). */
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
		cqi_err_holdf(&c->stop_err, CQ_ERR_NOMEM, "out of memory");
		return false;
	}
	argv[1] = k.data;
	lens[1] = k.len;
	r = cqi_redis_cmd(c->ctx, CQI_KEY(1), 2, argv, lens);
	cq_buf_free(&k);
	if (!r) {
		cqi_err_hold(c->ctx, &c->stop_err);
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
		cqi_err_holdf(&c->stop_err, CQ_ERR_NOMEM, "out of memory");
		return;
	}
	snprintf(ttl, sizeof(ttl), "%lld", c->o->dedupe_ttl_ms);
	argv[1] = k.data;
	lens[1] = k.len;
	lens[4] = strlen(ttl);
	r = cqi_redis_cmd(c->ctx, CQI_KEY(1), 6, argv, lens);
	cq_buf_free(&k);
	if (!r)
		cqi_err_hold(c->ctx, &c->stop_err);
	cqi_reply_free(r);
}

/* ---- messages done, whose ack a lost node may not have read ---------------- */

static long long retries_of(const struct cq_delivery *d)
{
	const struct cq_field *f = cq_delivery_header(d, CQ_HDR_RETRIES);
	long long n;

	return f && cqi_field_int(f, &n) && n > 0 ? n : 0;
}

static void done_add(struct consumer *c, const struct cq_delivery *d,
		     bool counted)
{
	uint64_t k = c->done.slot ? cqi_done_key(d) : 0;

	if (!k)
		return;
	cqi_done_add(&c->done, k, counted);
	if (!c->o->exec)
		c->batch_keys++;	/* printing: counted with its batch */
}

/* After a reconnect: is d a redelivered copy of a message done before?
 * Then it is acked here (and counted, if it was not). */
static bool done_before(struct consumer *c, const struct cq_delivery *d)
{
	bool counted;

	if (!c->done.slot || !c->st->reconnects || !d->redelivered ||
	    !cqi_done_take(&c->done, cqi_done_key(d), &counted))
		return false;
	c->q->ops->ack(c->q, d->delivery_tag, false);
	if (c->ctx->err)
		return true;	/* it comes back once more */
	if (!counted) {
		c->st->acked++;
		c->st->handled++;
		c->taken++;
	}
	c->st->reacked++;
	return true;
}

/* ---- settling ---------------------------------------------------------------- */

static void ack(struct consumer *c, uint64_t tag, bool multiple)
{
	c->q->ops->ack(c->q, tag, multiple);
}

/* A retry or dead letter is settled (hooks.settled): the original is
 * acked, or (not safely elsewhere) left in the queue, and we stop. */
static void on_settled(void *arg, bool dead, bool ok, const char *reason)
{
	struct consumer *c = arg;

	if (ok) {
		if (dead)
			c->st->dead_lettered++;
		else
			c->st->retried++;
		return;
	}
	cqi_err_holdf(&c->stop_err, CQ_ERR_TEMPFAIL,
		      "cannot %s a message: %s (it stays in '%s')",
		      dead ? "dead-letter" : "retry", reason, c->o->queue);
}

static void on_fail(void *arg, enum cq_err e, const char *msg)
{
	struct consumer *c = arg;

	cqi_err_holdf(&c->stop_err, e, "%s", msg);
}

static void on_notice(void *arg, const char *msg)
{
	notice(arg, "%s", msg);
}

/* A message taken from the queue. */
static bool on_deliver(void *arg, struct cq_delivery *d)
{
	struct consumer *c = arg;

	if (!push(c, d))
		return false;
	c->st->received++;
	c->idle_since_ms = 0;
	return true;
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

/* Put d back in its queue with retries as its count; it is acked once
 * the copy is safe. */
static void retry(struct consumer *c, struct cq_delivery *d,
		  long long retries, int code, const char *tail, size_t tlen)
{
	struct cqi_failure f = { .attempts = retries, .code = code,
				 .tail = tail, .tlen = tlen, .host = c->host };

	c->q->ops->retry(c->q, d, &f);
}

/* Dead-letter d; the original is acked once it is safely there. */
static void dead_letter(struct consumer *c, struct cq_delivery *d,
			long long attempts, const char *reason, int code,
			const char *tail, size_t tlen)
{
	struct cqi_failure f = { .attempts = attempts, .code = code,
				 .reason = reason, .tail = tail, .tlen = tlen,
				 .host = c->host };
	char where[320], name[200];

	if (!c->q->ops->dead_letter(c->q, d, &f, where, sizeof(where)))
		return;		/* stays unacked: it comes back */
	notice(c, "message %s dead-lettered %s: %s",
	       msg_name(d, name, sizeof(name)), where, reason);
}

/* ---- printing ---------------------------------------------------------------- */

/* Flush what was printed, then ack it all with one multiple ack. */
static void flush_batch(struct consumer *c)
{
	if (!c->batch_n)
		return;
	if (!c->o->flush(c->o->arg)) {
		/* not acked: RabbitMQ delivers them again */
		cqi_err_holdf(&c->stop_err, CQ_ERR_IO, "cannot write output");
		c->batch_n = 0;
		return;
	}
	dedupe_mark(c, c->batch_id);
	free(c->batch_id);
	c->batch_id = NULL;
	ack(c, c->batch_tag, c->batch_n > 1);
	if (!c->ctx->err) {
		c->st->acked += c->batch_n;
		c->st->handled += c->batch_n;
		c->batch_n = 0;
		cqi_done_count_last(&c->done, c->batch_keys);
		c->batch_keys = 0;
	}	/* else the connection is gone: they come back */
}

static bool count_reached(const struct consumer *c)
{
	return c->o->count && c->taken >= c->o->count;
}

static bool may_take(const struct consumer *c)
{
	return c->fifo.len && !c->stop_err.err && !c->ctx->err &&
	       !count_reached(c) && (!c->stopping || c->drain);
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
		if (!c->ctx->err) {
			c->st->skipped++;
			c->st->handled++;
		}
		*skipped = true;
	}
	return true;
}

/* The next delivery to handle (to free), counted as taken: those done
 * before, or seen already under --dedupe, are passed over.  NULL when
 * none may be taken now. */
static struct cq_delivery *next_work(struct consumer *c)
{
	while (may_take(c)) {
		struct cq_delivery *d = pop(c);
		bool skipped;

		if (done_before(c, d)) {
			cqi_delivery_free(d);
			continue;
		}
		c->taken++;
		if (!skip_if_seen(c, d, &skipped) || skipped) {
			cqi_delivery_free(d);
			continue;
		}
		return d;
	}
	return NULL;
}

static void print_work(struct consumer *c)
{
	struct cq_delivery *d;

	while ((d = next_work(c))) {
		if (!c->o->print(c->o->arg, d)) {
			cqi_err_holdf(&c->stop_err, CQ_ERR_IO,
				      "cannot write output");
			cqi_delivery_free(d);
			return;
		}
		c->batch_tag = d->delivery_tag;
		c->batch_n++;
		done_add(c, d, false);
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
	struct held *h = cqi_grow(c->held, &c->held_cap, c->nheld + 1,
				  sizeof(*h), 8);

	if (!h)
		return false;
	c->held = h;
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
	char reason[64], name[200];
	const char *tail;
	size_t tlen;

	job_reason(&end, reason, sizeof(reason), poison);
	tail = cqi_job_tail(j, &tlen);
	if (poison || j->retries >= (long long)c->o->max_retries) {
		dead_letter(c, d, attempts, reason, code, tail, tlen);
		return;
	}
	notice(c, "message %s failed (%s): retry %lld of %u%s%s",
	       msg_name(d, name, sizeof(name)),
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

/* A handler whose message was taken on a lost connection (its tag means
 * nothing on a new one) or whose connection is gone: the message comes
 * back redelivered.  Not settled and not counted; a success is
 * remembered for --dedupe. */
static void finish_stale(struct consumer *c, struct cqi_job *j)
{
	struct cqi_end end = cqi_job_end(j);
	bool ok = end.kind == CQI_END_EXIT && end.code == 0;
	char name[200];

	if (ok) {
		dedupe_mark(c, j->d->message_id);
		done_add(c, j->d, false);
	}
	notice(c, "message %s %s: the connection is gone (it comes back, redelivered)",
	       msg_name(j->d, name, sizeof(name)),
	       ok ? "handled but not acked" : "failed, not settled");
}

static void finish_job(struct consumer *c, struct cqi_job *j)
{
	struct cqi_end end = cqi_job_end(j);

	if (j->stale || c->ctx->err) {
		/* cannot settle: RabbitMQ delivers it again */
		finish_stale(c, j);
	} else if (end.kind == CQI_END_EXIT && end.code == 0) {
		dedupe_mark(c, j->d->message_id);
		ack(c, j->d->delivery_tag, false);
		done_add(c, j->d, !c->ctx->err);
		if (!c->ctx->err) {
			c->st->acked++;
			c->st->handled++;
		}
	} else {
		failed(c, j);
		c->st->handled++;
	}
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
			cqi_err_hold(c->ctx, &c->stop_err);
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
	struct cq_delivery *d;

	for (unsigned i = 0; i < c->njobs; i++)
		if (cqi_job_done(&c->jobs[i]))
			finish_job(c, &c->jobs[i]);
	release_held(c, now);
	while (c->running < c->njobs && (d = next_work(c)))
		start_job(c, d);
}

/* ---- the loop ------------------------------------------------------------------ */

static bool busy(const struct consumer *c)
{
	return c->fifo.len || c->running || c->nheld || c->batch_n ||
	       c->q->ops->unsettled(c->q) || c->q->ops->buffered(c->q);
}

/* Cancel the subscription: nothing new arrives; with drain, what has
 * arrived is still handled. */
static void stop(struct consumer *c, bool drain)
{
	if (c->stopping)
		return;
	c->stopping = true;
	c->drain = drain;
	if (!c->ctx->err)
		c->q->ops->stop(c->q);
}

static bool finished(const struct consumer *c)
{
	if (c->running)
		return false;
	if (c->ctx->err)
		return true;
	if (c->nheld || c->batch_n)
		return false;
	if (c->q->ops->unsettled(c->q))
		return false;
	if (c->drain && !c->stop_err.err &&
	    (c->fifo.len || c->q->ops->buffered(c->q)))
		return false;
	return true;
}

/* Count, idle timeout, drained queue: time to stop? */
static void check_done(struct consumer *c, long long now)
{
	uint64_t ready = 0;
	char why[600];
	enum cq_err e;

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
	e = c->q->ops->depth(c->q, &ready, why, sizeof(why));
	if (e && c->ctx->err)
		return;
	if (e) {
		cqi_err_holdf(&c->stop_err, e, "%s", why);
		return;
	}
	if (ready == 0) {
		c->drained = true;
		stop(c, true);
	}
}


/*
 * --until-empty cancelled the subscription and handled what had arrived;
 * failures handled meanwhile may have put retries back in the queue.
 * True when there are (the subscription is then resumed).
 */
static bool resume_after_drain(struct consumer *c)
{
	uint64_t ready = 0;
	char why[600];

	if (!c->drained || c->stop_err.err || c->ctx->err || count_reached(c) ||
	    cq_stop_requested())
		return false;
	if (c->q->ops->depth(c->q, &ready, why, sizeof(why)) || ready == 0)
		return false;
	if (c->q->ops->resume(c->q))
		return false;
	c->stopping = c->drain = c->drained = false;
	c->idle_since_ms = 0;
	return true;
}

/*
 * Serve the queue, waiting up to wait_ms, and take what it has up to the
 * room there is: a printer reads at most READ_AHEAD ahead (the rest of a
 * prefetch window waits in the socket, so memory does not grow with
 * --prefetch); handlers hold at most the window unsettled.
 */
static void take(struct consumer *c, long long wait_ms)
{
	size_t held = c->fifo.len + c->running + c->nheld + c->batch_n +
		      c->q->ops->unsettled(c->q);
	size_t room = held < c->window ? c->window - held : 0;

	if (!c->o->exec && c->fifo.len + room > READ_AHEAD)
		room = c->fifo.len < READ_AHEAD ? READ_AHEAD - c->fifo.len : 0;
	c->q->ops->take(c->q, room, wait_ms);
}

/* How long the loop may sleep. */
static long long sleep_ms(const struct consumer *c, long long now)
{
	long long t = SLICE_MS;

	if (c->q->ops->buffered(c->q))
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
			take(c, t);
		return;
	}
	fds[n++] = (struct pollfd){ .fd = c->q->ops->fd(c->q),
				    .events = POLLIN };
	for (unsigned i = 0; i < c->njobs; i++) {
		if (c->jobs[i].pid && c->jobs[i].pidfd < 0 && !c->jobs[i].reaped)
			pidfds = false;
		n += cqi_job_pollfds(&c->jobs[i], fds + n);
	}
	if (!pidfds && t > NO_PIDFD_SLICE_MS)
		t = NO_PIDFD_SLICE_MS;
	if (poll(fds, (nfds_t)n, (int)t) < 0 && errno != EINTR) {
		cqi_err_holdf(&c->stop_err, CQ_ERR_INTERNAL, "poll: %s",
			      strerror(errno));
		return;
	}
	/* a zero-wait read also sends a heartbeat when one is due */
	if (!c->ctx->err)
		take(c, 0);
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

/*
 * Everything taken on the lost connection comes back redelivered: forget
 * it.  Handlers still running go on, but are never settled (stale).
 * Returns how many messages were received and not settled (those still
 * in the prefetch window, never read, come back too).
 */
static unsigned long long forget(struct consumer *c, size_t unsettled)
{
	/* taken: the batch printed, the failures held or being moved, the
	 * handlers running; handled: the failures */
	unsigned long long taken = c->batch_n + c->nheld + unsettled;
	unsigned long long handled = c->nheld + unsettled;
	unsigned long long read_ahead = c->fifo.len;

	for (unsigned i = 0; i < c->njobs; i++) {
		if (c->jobs[i].pid && !c->jobs[i].stale) {
			c->jobs[i].stale = true;
			taken++;
		}
	}
	while (c->fifo.len)
		cqi_delivery_free(pop(c));
	c->batch_n = 0;
	c->batch_keys = 0;
	free(c->batch_id);
	c->batch_id = NULL;
	for (size_t i = 0; i < c->nheld; i++) {
		cqi_delivery_free(c->held[i].d);
		free(c->held[i].tail);
	}
	c->nheld = 0;
	c->st->handled -= handled < c->st->handled ? handled : c->st->handled;
	/* --count counts messages settled */
	c->taken -= taken < c->taken ? taken : c->taken;
	return taken + read_ahead;
}

/* The connection is lost: with a list of nodes, connect to another and
 * go on.  False when the run must end (the context's error says why). */
static bool reconnect(struct consumer *c)
{
	struct cqi_reconnected rc;
	size_t unsettled = c->q->ops->unsettled(c->q);

	if (!c->q->ops->reconnect || c->stopping || c->stop_err.err ||
	    cq_stop_requested())
		return false;
	if (!cqi_qd_reconnect(c->q, &rc, &c->st->reconnects))
		return false;
	rc.r.unsettled = forget(c, unsettled);
	c->idle_since_ms = 0;
	if (c->o->reconnected)
		c->o->reconnected(c->o->arg, &rc.r);
	return true;
}

static void run(struct consumer *c)
{
	for (;;) {
		long long now = cq_now_ms();

		if (c->ctx->err && !c->stopping)
			reconnect(c);
		if (!c->stopping && cq_stop_requested()) {
			c->st->stopped = true;
			stop(c, false);
		}
		if (!c->stopping && (c->stop_err.err || c->ctx->err))
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
	if (!c->ctx->err && c->q->ops->flush(c->q))
		cqi_err_hold(c->ctx, &c->stop_err);
	progress(c, cq_now_ms(), true);
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
	if (o->dlq && strcmp(o->dlq, o->queue) == 0)	/* dead for ever */
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "--dlq: '%s' is the queue itself", o->dlq);
	if (!o->exec == !o->print || (o->print && !o->flush))
		return cq_seterr(ctx, CQ_ERR_USAGE, "print or exec, not both");
	if (o->exec && (o->jobs < 1 || o->jobs > 1024))
		return cq_seterr(ctx, CQ_ERR_USAGE, "jobs must be 1-1024");
	if (o->dedupe && o->dedupe_ttl_ms <= 0)
		return cq_seterr(ctx, CQ_ERR_USAGE, "dedupe TTL must be positive");
	/* 0 would let others claim what this consumer holds (it renews
	 * nothing) while it took nothing over: never taken over is a long
	 * timeout, which every claimer of the group then waits for */
	if (o->visibility_ms <= 0)
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "visibility timeout must be positive");
	return CQ_OK;
}

/* Connect, check the queue, prepare dead-lettering, subscribe.  Sets
 * *empty when --until-empty finds nothing to do. */
static enum cq_err setup(struct consumer *c, bool *empty)
{
	struct cq_ctx *ctx = c->ctx;
	uint64_t ready = 0;

	c->q->hooks = (struct cqi_qhooks){ .arg = c, .deliver = on_deliver,
					   .settled = on_settled,
					   .fail = on_fail,
					   .notice = on_notice };
	cqi_qhooks_fill(&c->q->hooks, ctx);
	if (c->q->ops->connect(c->q))
		return ctx->err;
	if (c->o->dedupe && !ctx->redis)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "consume: dedupe needs a connection to Redis");
	if (c->q->ops->inspect(c->q, &ready))
		return ctx->err;
	*empty = c->o->until_empty && ready == 0;
	if (*empty)
		return CQ_OK;
	if (c->o->exec) {
		c->jobs = calloc(c->o->jobs, sizeof(*c->jobs));
		c->pfds = calloc(1 + 2 * (size_t)c->o->jobs, sizeof(*c->pfds));
		if (!c->jobs || !c->pfds)
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		c->njobs = c->o->jobs;
		cqi_hostname(c->host, sizeof(c->host));
	}
	if (c->q->ops->reconnect && c->q->can_reconnect) {
		/* the acks the broker may have missed (the window), and
		 * handlers that finished on a lost connection */
		if (!cqi_done_init(&c->done, 2 * (size_t)c->window + c->njobs))
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	return c->q->ops->start(c->q, c->window);
}

static void cleanup(struct consumer *c)
{
	while (c->fifo.len)
		cqi_delivery_free(pop(c));
	cqi_ring_clear(&c->fifo);
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
	c->q->ops->free(c->q);
	free(c->batch_id);
	cqi_done_clear(&c->done);
}

enum cq_err cqi_consume_on(struct cq_ctx *ctx, struct cqi_qdriver *q,
			   const struct cq_consume_opts *o,
			   struct cq_consume_stats *st)
{
	struct consumer c = { .ctx = ctx, .o = o, .st = st, .q = q,
			      .fifo = { .size = sizeof(struct cq_delivery *) } };
	bool empty = false;
	enum cq_err e;

	memset(st, 0, sizeof(*st));
	c.start_ms = cq_now_ms();
	if (ctx->err || check_opts(ctx, o)) {
		q->ops->free(q);
		return ctx->err;
	}
	c.window = pick_prefetch(o);
	c.ack_every = o->dedupe ? 1 : c.window / 4;
	if (c.ack_every < 1)
		c.ack_every = 1;
	if (setup(&c, &empty) == CQ_OK && !empty) {
		run(&c);
	} else if (ctx->err == CQ_ERR_TEMPFAIL && cq_stop_requested()) {
		/* a wait before the first take (a Redis loading its
		 * dataset, a master to find) cut short by a signal: stopped
		 * as a consumer stops, having taken nothing */
		cqi_err_drop(ctx);
		st->stopped = true;
	}
	st->elapsed_ms = cq_now_ms() - c.start_ms;
	cleanup(&c);
	cqi_err_restore(ctx, &c.stop_err);
	if (ctx->err)
		return ctx->err;
	e = CQ_OK;
	if ((o->until_empty || o->idle_timeout_ms) && !st->received &&
	    !st->stopped) {
		st->empty = true;
		e = cq_seterr(ctx, CQ_ERR_NOTFOUND, "queue '%s' is empty",
			      o->queue);
	}
	return e;
}

enum cq_err cq_consume(struct cq_ctx *ctx, const struct cq_consume_opts *o,
		       struct cq_consume_stats *st)
{
	struct cqi_qconf conf = { .queue = o->queue, .dlq = o->dlq,
				  .exec = o->exec != NULL,
				  .consumer = o->consumer,
				  .visibility_ms = o->visibility_ms,
				  .redis_shared = o->dedupe,
				  .processing = o->processing,
				  .lease_ms = o->lease_ms,
				  .recover = o->recover };
	struct cqi_qdriver *q;

	if (ctx->err) {
		memset(st, 0, sizeof(*st));
		return ctx->err;
	}
	q = cqi_qdriver_new(ctx, &conf);
	if (!q) {
		memset(st, 0, sizeof(*st));
		return ctx->err;
	}
	return cqi_consume_on(ctx, q, o, st);
}
