/* replay.c - move dead letters back where they died, safely: each copy is
 * republished (mandatory, confirmed) before the dead-letter copy is acked,
 * so a crash duplicates at worst and never loses.  The policy (filters,
 * the bound of what was present at start, --dry-run, the window, stop
 * requests, batched acks) lives here, once; the queue is the driver of
 * the context's backend (qdriver_int.h), which takes from the DLQ and
 * publishes the copies, both pipelined in windows. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"
#include "queue_int.h"

/* ---- filters ------------------------------------------------------------ */

enum filter_kind { FILTER_HEADER, FILTER_BODY, FILTER_REASON };

struct cq_filter {
	struct cq_filter *next;
	enum filter_kind kind;
	char *key, *value;	/* header; value also the reason */
	regex_t re;		/* body */
};

void cq_filter_free(struct cq_filter *list)
{
	while (list) {
		struct cq_filter *next = list->next;

		if (list->kind == FILTER_BODY)
			regfree(&list->re);
		free(list->key);
		free(list->value);
		free(list);
		list = next;
	}
}

enum cq_err cq_filter_add(struct cq_filter **list, const char *spec,
			  char *err, size_t errlen)
{
	struct cq_filter *f = calloc(1, sizeof(*f));
	const char *eq;
	int r;

	if (!f)
		goto nomem;
	if (strncmp(spec, "body:", 5) == 0) {
		f->kind = FILTER_BODY;
		r = regcomp(&f->re, spec + 5, REG_EXTENDED | REG_NOSUB);
		if (r) {
			char why[200];

			regerror(r, &f->re, why, sizeof(why));
			cqi_errbuf(err, errlen, "bad regular expression '%s': %s",
				   spec + 5, why);
			free(f);
			return CQ_ERR_USAGE;
		}
	} else if (strncmp(spec, "reason:", 7) == 0) {
		f->kind = FILTER_REASON;
		if (!spec[7]) {
			cqi_errbuf(err, errlen, "reason: wants a reason, e.g. reason:rejected");
			free(f);
			return CQ_ERR_USAGE;
		}
		if (!(f->value = strdup(spec + 7)))
			goto nomem;
	} else {
		const char *s = strncmp(spec, "header:", 7) == 0 ? spec + 7 : spec;

		f->kind = FILTER_HEADER;
		eq = strchr(s, '=');
		if (!eq || eq == s) {
			cqi_errbuf(err, errlen,
				   "bad filter '%s' (want KEY=VALUE, header:KEY=VALUE, body:REGEX or reason:REASON)",
				   spec);
			free(f);
			return CQ_ERR_USAGE;
		}
		f->key = strndup(s, (size_t)(eq - s));
		f->value = strdup(eq + 1);
		if (!f->key || !f->value) {
			cq_filter_free(f);
			f = NULL;
			goto nomem;
		}
	}
	f->next = *list;
	*list = f;
	return CQ_OK;
nomem:
	free(f);
	cqi_errbuf(err, errlen, "out of memory");
	return CQ_ERR_NOMEM;
}

static bool filter_one(const struct cq_filter *f, const struct cq_delivery *d,
		       const struct cq_death *death)
{
	regmatch_t m[1];
	char *text;
	bool ok;

	switch (f->kind) {
	case FILTER_BODY:
		m[0].rm_so = 0;
		m[0].rm_eo = (regoff_t)d->len;
		return regexec(&f->re, d->body, 1, m, REG_STARTEND) == 0;
	case FILTER_REASON:
		if (death->reason && strcasestr(death->reason, f->value))
			return true;
		/* any x-death entry counts too */
		for (size_t i = 0; i < death->nxdeath; i++)
			if (death->xdeath[i].reason &&
			    strcasecmp(death->xdeath[i].reason, f->value) == 0)
				return true;
		return false;
	case FILTER_HEADER:
		text = cqi_delivery_header_text(d, f->key);
		ok = text && strcmp(text, f->value) == 0;
		free(text);
		return ok;
	}
	return false;
}

bool cqi_filter_match(const struct cq_filter *list, const struct cq_delivery *d,
		     const struct cq_death *death)
{
	for (; list; list = list->next)
		if (!filter_one(list, d, death))
			return false;
	return true;
}

/* ---- the replay --------------------------------------------------------- */

void cq_replay_opts_init(struct cq_replay_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->window = 1000;
}

/* A publish awaiting its confirm, by publish sequence % (window + 1): the
 * slot of a new publish is filled before publish() waits for room, while
 * the window older ones may still settle. */
struct inflight {
	uint64_t dlq_tag;
	uint64_t key;		/* cqi_done_key of the original */
	char *message_id;
	char *target;
};

struct replay {
	struct cq_ctx *ctx;
	const char *dlq;
	const struct cq_replay_opts *o;
	struct cq_replay_stats *st;
	struct cqi_qdriver *q;	/* the DLQ: taken from, published through */
	struct inflight *fly;
	uint64_t seq;
	/* deliveries taken but not yet handled (of struct cq_delivery *),
	 * room for a window made at the start */
	struct cqi_ring fifo;
	uint64_t total;		/* messages to look at: those present at start */
	uint64_t received;	/* taken so far (at most total) */
	bool quit;		/* o->fn asked to end the run */
	bool browsing;		/* --dry-run through ops->browse: nothing taken */
	bool taking;		/* not yet told to stop() */
	uint64_t held;		/* left unsettled, given back at the end */
	uint64_t min_held;	/* lowest one (UINT64_MAX: none) */
	/* Acks of the DLQ copies go out as one "upto" ack per batch while
	 * confirms arrive in publish order and nothing below is held: an
	 * upto ack must never cover a held message. */
	uint64_t next_seq;	/* the publish expected to settle next */
	uint64_t ack_hi;	/* batch: ack every tag up to this, 0 none */
	unsigned ack_n;
	bool in_order;
	uint64_t settled;	/* publishes settled: progress */
	struct cqi_throttle th;
	char *first_target;
	struct cqi_err_held fail;	/* the driver cannot go on (hooks.fail) */
	/* moved lately (only when the driver can reconnect): an original
	 * whose ack the lost node may not have read comes back, and is
	 * acked, not moved twice (done.c) */
	struct cqi_done done;
};

static void event(struct replay *r, enum cq_replay_what what,
		  const char *id, const char *target, const char *reason)
{
	struct cq_replay_event ev = { what, id, target, reason };

	if (r->o->fn && !r->o->fn(r->o->arg, &ev))
		r->quit = true;
}

/* Leave a message in the DLQ: unsettled until release at the end. */
static void hold(struct replay *r, uint64_t tag)
{
	r->held++;
	if (tag < r->min_held)
		r->min_held = tag;
	if (!r->browsing)
		r->q->ops->hold(r->q, tag);
}

/* Send the batched ack. */
static enum cq_err flush_acks(struct replay *r)
{
	uint64_t hi = r->ack_hi;

	r->ack_hi = 0;
	r->ack_n = 0;
	if (hi)
		r->q->ops->ack(r->q, hi, true);
	return r->ctx->err;
}

/* Ack the DLQ copy of a confirmed republish: batched when safe. */
static enum cq_err ack_copy(struct replay *r, uint64_t seq, uint64_t tag)
{
	bool next = seq == r->next_seq;

	if (next)
		r->next_seq++;
	else
		r->in_order = false;
	if (r->in_order && tag < r->min_held) {
		r->ack_hi = tag;
		return ++r->ack_n >= 128 ? flush_acks(r) : CQ_OK;
	}
	if (flush_acks(r))
		return r->ctx->err;
	r->q->ops->ack(r->q, tag, false);
	return r->ctx->err;
}

/* Free what a publish in flight kept. */
static void forget_flight(struct inflight *f)
{
	free(f->message_id);
	free(f->target);
	f->message_id = f->target = NULL;
}

/* The connection is lost, and a reconnect may follow: nothing more can
 * be settled here, and the original comes back to the DLQ. */
static bool lost(const struct replay *r)
{
	return r->ctx->err && r->q->can_reconnect && !r->st->stopped &&
	       !r->st->quit;
}

/* hooks.published: the copy is safe (ack the original) or not (hold it). */
static void on_published(void *arg, uint64_t seq, bool ok, const char *reason)
{
	struct replay *r = arg;
	struct inflight *f = &r->fly[seq % (r->o->window + 1)];

	r->settled++;
	if (!ok && lost(r)) {
		forget_flight(f);	/* looked at again after the reconnect */
		return;
	}
	if (ok && ack_copy(r, seq, f->dlq_tag) == CQ_OK) {
		r->st->replayed++;
		/* the ack may be batched, or unread by a node about to die */
		cqi_done_add(&r->done, f->key, true);
		event(r, CQ_REPLAY_MOVED, f->message_id, f->target, NULL);
	} else if (ok && lost(r)) {
		/* moved, but the original comes back: acked then */
		cqi_done_add(&r->done, f->key, false);
	} else {
		if (seq == r->next_seq)
			r->next_seq++;
		else
			r->in_order = false;
		flush_acks(r);
		r->st->failed++;
		hold(r, f->dlq_tag);
		event(r, CQ_REPLAY_FAILED, f->message_id, f->target,
		      ok ? "ack of the dead-letter copy failed" : reason);
	}
	forget_flight(f);
}

static void on_fail(void *arg, enum cq_err e, const char *msg)
{
	struct replay *r = arg;

	if (!r->fail.err)
		cqi_err_holdf(&r->fail, e, "%s", msg);
}

/* hooks.deliver: queue it for handling, or hold it once total were
 * taken. */
static bool on_deliver(void *arg, struct cq_delivery *d)
{
	struct replay *r = arg;
	struct cq_delivery **slot;
	bool counted;

	if (r->st->reconnects && d->redelivered && r->done.slot &&
	    cqi_done_take(&r->done, cqi_done_key(d), &counted)) {
		/* moved before the reconnect; its ack was lost */
		r->q->ops->ack(r->q, d->delivery_tag, false);
		if (!counted && !r->ctx->err) {
			r->st->replayed++;
			r->st->seen++;
		}
		cqi_delivery_free(d);
		return true;
	}
	if (r->received >= r->total) {
		hold(r, d->delivery_tag);	/* came after we had enough */
		cqi_delivery_free(d);
		return true;
	}
	slot = cqi_ring_push(&r->fifo, r->o->window);
	if (!slot) {	/* more than take() asked for: left in the DLQ */
		on_fail(r, CQ_ERR_NOMEM, "out of memory");
		hold(r, d->delivery_tag);
		cqi_delivery_free(d);
		return true;
	}
	r->received++;
	*slot = d;
	return true;
}

static bool note_target(struct replay *r, const char *target)
{
	if (!r->first_target) {
		r->first_target = strdup(target);
		return r->first_target != NULL;
	}
	if (strcmp(r->first_target, target) != 0)
		r->st->several_targets = true;
	return true;
}

/* Republish one dead letter toward target. */
static enum cq_err move(struct replay *r, const struct cq_delivery *d,
			const char *target)
{
	struct cq_header h[3];
	struct cq_message m;
	struct inflight *f;
	long long replays = 0;
	size_t nh = 0;
	uint64_t seq = r->seq++;

	cqi_field_int(cq_delivery_header(d, CQ_HDR_REPLAYED), &replays);
	memset(h, 0, sizeof(h));
	h[nh].key = CQ_HDR_REPLAYED;
	h[nh].is_int = true;
	h[nh++].ival = replays + 1;
	if (r->o->reset_retries)
		h[nh++].key = CQ_HDR_RETRIES;	/* removed */
	/* the broker's count of the dead copy's returns is not the new
	 * message's: it would pass for its own (a quorum queue adds its own) */
	h[nh++].key = CQ_HDR_DELIVERY_COUNT;	/* removed */
	cq_message_init(&m);
	m.from = d;
	m.routing_key = target;
	m.headers = h;
	m.nheaders = nh;
	f = &r->fly[seq % (r->o->window + 1)];
	f->dlq_tag = d->delivery_tag;
	f->key = r->done.slot ? cqi_done_key(d) : 0;
	f->message_id = d->message_id ? strdup(d->message_id) : NULL;
	f->target = strdup(target);
	if (!f->target || !note_target(r, target))
		return cq_seterr(r->ctx, CQ_ERR_NOMEM, "out of memory");
	cqi_throttle_wait(&r->th, 1);
	return r->q->ops->publish(r->q, &m, seq);
}

static enum cq_err handle(struct replay *r, const struct cq_delivery *d)
{
	const struct cq_replay_opts *o = r->o;
	struct cq_death death;
	const char *target;
	enum cq_err e = CQ_OK;

	r->st->seen++;
	if (cq_delivery_death(d, &death))
		return cq_seterr(r->ctx, CQ_ERR_NOMEM, "out of memory");
	target = o->to ? o->to : death.queue;
	if (!cqi_filter_match(o->filter, d, &death)) {
		r->st->skipped++;
		hold(r, d->delivery_tag);
		event(r, CQ_REPLAY_SKIPPED, d->message_id, target,
		      "does not match the filter");
	} else if (!target) {
		r->st->skipped++;
		hold(r, d->delivery_tag);
		event(r, CQ_REPLAY_SKIPPED, d->message_id, NULL,
		      "no original queue known (use --to QUEUE)");
	} else if (strcmp(target, r->dlq) == 0) {
		r->st->skipped++;
		hold(r, d->delivery_tag);
		event(r, CQ_REPLAY_SKIPPED, d->message_id, target,
		      "its original queue is the dead-letter queue itself");
	} else if (o->dry_run) {
		r->st->would_move++;
		hold(r, d->delivery_tag);
		if (!note_target(r, target))
			e = cq_seterr(r->ctx, CQ_ERR_NOMEM, "out of memory");
		event(r, CQ_REPLAY_WOULD_MOVE, d->message_id, target, NULL);
	} else {
		e = move(r, d, target);
	}
	cq_death_clear(&death);
	return e;
}

/* The oldest delivery taken and not yet handled (fifo.len > 0), now the
 * caller's. */
static struct cq_delivery *shift(struct replay *r)
{
	struct cq_delivery *d = *(struct cq_delivery **)cqi_ring_at(&r->fifo, 0);

	cqi_ring_shift(&r->fifo);
	return d;
}

/* Forget every delivery taken and not yet handled. */
static void drop_taken(struct replay *r)
{
	while (r->fifo.len)
		cqi_delivery_free(shift(r));
}

/* Handle the next message taken, if any.  *did: one was handled. */
static enum cq_err handle_next(struct replay *r, bool *did)
{
	struct cq_delivery *d;
	enum cq_err e;

	*did = r->fifo.len > 0;
	if (!*did)
		return CQ_OK;
	d = shift(r);
	e = handle(r, d);
	cqi_delivery_free(d);
	if (e == CQ_ERR_DATA && r->q->ops->pub_alive(r->q)) {
		/* settled failed (held in the DLQ): go on */
		cqi_err_drop(r->ctx);
		return CQ_OK;
	}
	if (e)
		return e;
	return r->q->ops->pub_poll(r->q);
}

/* Take nothing more (all taken, or cut short: a stop request, or the
 * caller's output gone; then what was taken but not yet republished is
 * held too); what is in flight settles. */
static void stop_taking(struct replay *r, bool cut_short)
{
	if (cut_short) {
		r->total = r->received;
		while (r->fifo.len) {
			struct cq_delivery *d = shift(r);

			hold(r, d->delivery_tag);
			cqi_delivery_free(d);
		}
	}
	if (r->taking)
		r->q->ops->stop(r->q);
	r->taking = false;
}

/*
 * The connection is lost: with a list of nodes, connect to another and
 * look again at what is left.  Everything not moved is in the DLQ again
 * (what was taken, held, or moved but not acked), so the run starts over
 * from what was moved: the counts of what is looked at again restart.
 * False when the run must end.
 */
static bool reconnect(struct replay *r)
{
	struct cqi_reconnected rc;
	uint64_t back = r->received - r->st->replayed;

	if (!r->q->ops->reconnect || !lost(r) || r->fail.err ||
	    cq_stop_requested())
		return false;
	if (!cqi_qd_reconnect(r->q, &rc, &r->st->reconnects))
		return false;
	drop_taken(r);
	for (size_t i = 0; i <= r->o->window; i++)
		forget_flight(&r->fly[i]);
	r->held = 0;
	r->min_held = UINT64_MAX;
	r->next_seq = r->seq;
	r->in_order = true;
	r->ack_hi = r->ack_n = 0;
	r->received = r->st->seen = r->st->replayed;
	r->st->skipped = r->st->failed = r->st->would_move = 0;
	r->taking = true;
	rc.r.unsettled = back;
	if (r->o->on_reconnect)
		r->o->on_reconnect(r->o->arg, &rc.r);
	return true;
}

static enum cq_err replay_loop(struct replay *r)
{
	const struct cqi_qdriver_ops *ops = r->q->ops;
	bool did;

	for (;;) {
		uint64_t before;
		size_t want;

		if (r->ctx->err && reconnect(r))
			continue;
		if (!r->st->stopped && cq_stop_requested()) {
			r->st->stopped = true;
			stop_taking(r, true);
		}
		if (!r->st->quit && r->quit) {
			r->st->quit = true;
			stop_taking(r, true);
		}
		if (r->taking && r->received >= r->total)
			stop_taking(r, false);
		if (r->ctx->err || r->fail.err)
			break;
		/* an error ends the run, unless the loop top reconnects */
		if (handle_next(r, &did) || did)
			continue;
		if (ops->exhausted(r->q))
			break;
		if (flush_acks(r))
			continue;
		want = r->o->window - r->fifo.len;
		if (r->total - r->received < want)
			want = (size_t)(r->total - r->received);
		before = r->received + r->settled + r->held;
		if (ops->take(r->q, want, r->ctx->set.timeout_ms))
			continue;
		/* nothing for a while, and confirms are late: wait for them
		 * as patiently as a flush */
		if (before == r->received + r->settled + r->held &&
		    ops->unsettled(r->q))
			ops->pub_flush(r->q);
	}
	if (r->ctx->err)
		return r->ctx->err;
	/* (a loss while the last confirms come is not reconnected: what
	 * was not moved stays in the DLQ) */
	if (ops->pub_flush(r->q))
		return r->ctx->err;
	return flush_acks(r);
}

/* browse's fn: a dry run looks at one message; CQ_ERR_INTERNAL, with no
 * error on the context, ends the browse on a stop request or o->fn's. */
static enum cq_err browsed(void *arg, const struct cq_delivery *d)
{
	struct replay *r = arg;
	enum cq_err e;

	if (cq_stop_requested()) {
		r->st->stopped = true;
		return CQ_ERR_INTERNAL;
	}
	e = handle(r, d);
	if (e)
		return e;
	if (r->quit) {
		r->st->quit = true;
		return CQ_ERR_INTERNAL;
	}
	return CQ_OK;
}

/* A dry run on a driver that reads without taking: the messages present
 * at start (r->total of them), oldest first, each where it was. */
static enum cq_err dry_run_browse(struct replay *r)
{
	size_t seen;
	enum cq_err e;

	r->browsing = true;
	e = r->q->ops->browse(r->q, (size_t)r->total, browsed, r, &seen);
	if (e && !r->ctx->err && (r->st->stopped || r->st->quit))
		return CQ_OK;
	return e ? (r->ctx->err ? r->ctx->err : e) : CQ_OK;
}

enum cq_err cqi_replay_on(struct cq_ctx *ctx, struct cqi_qdriver *q,
			  const struct cq_replay_opts *o,
			  struct cq_replay_stats *st)
{
	struct replay r = { .ctx = ctx, .dlq = q->conf.queue, .o = o, .st = st,
			    .q = q, .min_held = UINT64_MAX, .in_order = true,
			    .fifo.size = sizeof(struct cq_delivery *) };
	uint64_t present = 0;
	enum cq_err e;

	memset(st, 0, sizeof(*st));
	q->hooks = (struct cqi_qhooks){ .arg = &r, .deliver = on_deliver,
					.fail = on_fail,
					.published = on_published };
	cqi_qhooks_fill(&q->hooks, ctx);
	if (!q->ops->exhausted) {	/* a driver that has no replay yet */
		e = cq_seterr(ctx, CQ_ERR_USAGE, "replay: not supported by the %s backend yet",
			      ctx->set.queue_backend);
		goto out;
	}
	if (q->ops->connect(q) || q->ops->inspect(q, &present)) {
		e = ctx->err;
		goto out;
	}
	st->started = true;
	st->present = present;
	r.total = o->count && o->count < present ? o->count : present;
	if (r.total == 0) {
		e = CQ_OK;
		goto out;
	}
	if (o->dry_run && q->ops->browse) {
		e = dry_run_browse(&r);
		goto out;
	}
	/* room for a window taken (take() asks for no more), made now */
	if (cqi_ring_push(&r.fifo, o->window))
		r.fifo.len--;
	r.fly = calloc(o->window + 1, sizeof(*r.fly));
	if (!r.fifo.v || !r.fly) {
		e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	cqi_throttle_init(&r.th, o->rate);
	/* the acks a lost node may have missed: a prefetch window, and a
	 * batch not yet sent */
	if (r.q->ops->reconnect && r.q->can_reconnect &&
	    !cqi_done_init(&r.done, 2 * o->window + 256)) {
		e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	/* publishing first: the driver then keeps what it takes whole */
	if (q->ops->pub_start(q, o->window, NULL, true) ||
	    q->ops->start(q, (unsigned)o->window)) {
		e = ctx->err;
		goto out;
	}
	r.taking = true;
	e = replay_loop(&r);
	if (!e)
		e = cqi_err_restore(ctx, &r.fail);
	/* whatever was not moved goes back to the dead-letter queue */
	if (!e && q->ops->release(q))
		e = ctx->err;
out:
	drop_taken(&r);
	if (r.fly)
		for (size_t i = 0; i <= o->window; i++) {
			free(r.fly[i].message_id);
			free(r.fly[i].target);
		}
	if (r.first_target && !st->several_targets)
		snprintf(st->target, sizeof(st->target), "%s", r.first_target);
	free(r.first_target);
	cqi_done_clear(&r.done);
	free(r.fly);
	cqi_ring_clear(&r.fifo);
	q->ops->free(q);
	return e;
}

enum cq_err cq_replay(struct cq_ctx *ctx, const char *dlq,
		      const struct cq_replay_opts *o, struct cq_replay_stats *st)
{
	struct cqi_qconf conf = { .queue = dlq,
				  .browse = o->filter || o->dry_run };
	struct cqi_qdriver *q;

	memset(st, 0, sizeof(*st));
	if (ctx->err)
		return ctx->err;
	if (o->window < 1 || o->window > 100000)
		return cq_seterr(ctx, CQ_ERR_USAGE, "replay: window out of range");
	if (o->to && cqi_name_check(ctx, "queue", o->to))
		return ctx->err;
	q = cqi_qdriver_new(ctx, &conf);
	if (!q)
		return ctx->err;
	return cqi_replay_on(ctx, q, o, st);
}

char *cq_replay_event_json(const struct cq_replay_event *ev)
{
	static const char *const names[] = {
		[CQ_REPLAY_MOVED] = "moved",
		[CQ_REPLAY_FAILED] = "failed",
		[CQ_REPLAY_SKIPPED] = "skipped",
		[CQ_REPLAY_WOULD_MOVE] = "would-move",
	};
	json_t *o = json_object();
	char *out;

	if (!o)
		return NULL;
	json_object_set_new(o, "action", json_string(names[ev->what]));
	json_object_set_new(o, "message_id", ev->message_id ?
			    json_string(ev->message_id) : json_null());
	json_object_set_new(o, "to", ev->target ? json_string(ev->target) :
			    json_null());
	if (ev->reason)
		json_object_set_new(o, "reason", json_string(ev->reason));
	out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return out;
}
