/* replay.c - move dead letters back where they died, safely: each copy is
 * republished (mandatory, confirmed) before the dead-letter copy is acked,
 * so a crash duplicates at worst and never loses.  Pipelined: basic.get
 * requests and publishes are kept in flight in windows. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
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
 * slot of a new publish is filled before cq_publish waits for room, while
 * the window older ones may still settle. */
struct inflight {
	uint64_t dlq_tag;
	char *message_id;
	char *target;
};

struct replay {
	struct cq_ctx *ctx;
	const char *dlq;
	const struct cq_replay_opts *o;
	struct cq_replay_stats *st;
	struct cq_publisher *pub;
	struct inflight *fly;
	uint64_t seq;
	/* deliveries got but not yet handled, FIFO */
	struct cq_delivery **fifo;
	size_t fifo_cap, fifo_head, fifo_len;
	size_t gets_in_flight;
	bool empty;		/* a basic.get-empty came back */
	enum { MODE_GET, MODE_CONSUME, MODE_CANCELLING } mode;
	amqp_bytes_t consumer_tag;
	uint64_t total;		/* messages to look at: those present at start */
	uint64_t received;	/* taken so far (at most total) */
	uint64_t held;		/* left unacked to requeue at the end */
	uint64_t max_held;	/* highest DLQ tag left unacked, to requeue */
	uint64_t min_held;	/* lowest one (UINT64_MAX: none) */
	/* Acks of the DLQ copies go out as one "multiple" ack per batch while
	 * confirms arrive in publish order and nothing below is held: a
	 * multiple ack must never cover a held message. */
	uint64_t next_seq;	/* the publish expected to settle next */
	uint64_t ack_hi;	/* batch: ack every tag up to this, 0 none */
	unsigned ack_n;
	bool in_order;
	struct cqi_throttle th;
	char *first_target;
};

static void event(struct replay *r, enum cq_replay_what what,
		  const char *id, const char *target, const char *reason)
{
	struct cq_replay_event ev = { what, id, target, reason };

	if (r->o->fn)
		r->o->fn(r->o->arg, &ev);
}

static void hold(struct replay *r, uint64_t tag)
{
	r->held++;
	if (tag > r->max_held)
		r->max_held = tag;
	if (tag < r->min_held)
		r->min_held = tag;
}

/* Send the batched multiple ack. */
static enum cq_err flush_acks(struct replay *r)
{
	uint64_t hi = r->ack_hi;

	r->ack_hi = 0;
	r->ack_n = 0;
	return hi ? cqi_ack(r->ctx, hi, true) : CQ_OK;
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
	return cqi_ack(r->ctx, tag, false);
}

static void on_settle(void *arg, uint64_t seq, bool ok, const char *reason)
{
	struct replay *r = arg;
	struct inflight *f = &r->fly[seq % (r->o->window + 1)];

	if (ok && ack_copy(r, seq, f->dlq_tag) == CQ_OK) {
		r->st->replayed++;
		event(r, CQ_REPLAY_MOVED, f->message_id, f->target, NULL);
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
	free(f->message_id);
	free(f->target);
	f->message_id = f->target = NULL;
}

/* Keep a message read from the DLQ: queue it for handling, or hold it
 * (unacked, requeued at the end) once total have been taken. */
static enum cq_err take(struct replay *r, uint64_t tag, bool redelivered,
			amqp_bytes_t exchange, amqp_bytes_t routing_key,
			uint32_t remaining)
{
	struct cqi_amqp *a = r->ctx->amqp;
	amqp_bytes_t ex = amqp_bytes_malloc_dup(exchange);
	amqp_bytes_t rk = amqp_bytes_malloc_dup(routing_key);
	struct cq_delivery *d;
	amqp_message_t msg;
	amqp_rpc_reply_t rr;
	enum cq_err e;

	/* the method's fields live in frame memory: copied above */
	rr = amqp_read_message(a->conn, CQI_CHANNEL, &msg, 0);
	if (rr.reply_type != AMQP_RESPONSE_NORMAL) {
		e = cqi_amqp_rpc_err(r->ctx, rr, "replay: read message");
		goto out;
	}
	if (r->received >= r->total) {
		amqp_destroy_message(&msg);
		hold(r, tag);	/* delivered after we had enough */
		e = CQ_OK;
		goto out;
	}
	e = cqi_delivery_new(r->ctx, r->dlq, tag, redelivered, ex, rk,
			     remaining, &msg, &d);
	if (e)
		goto out;
	r->received++;
	r->fifo[(r->fifo_head + r->fifo_len++) % r->fifo_cap] = d;
out:
	amqp_bytes_free(ex);
	amqp_bytes_free(rk);
	return e;
}

/* A frame that is not a confirm: a delivery, a basic.get answer, or the
 * answer to basic.qos/consume/cancel. */
static enum cq_err on_frame(void *arg, const amqp_frame_t *f)
{
	struct replay *r = arg;

	if (f->frame_type != AMQP_FRAME_METHOD || f->channel != CQI_CHANNEL)
		return cq_seterr(r->ctx, CQ_ERR_INTERNAL,
				 "replay: unexpected frame type %d", f->frame_type);
	switch (f->payload.method.id) {
	case AMQP_BASIC_DELIVER_METHOD: {
		amqp_basic_deliver_t *m = f->payload.method.decoded;

		return take(r, m->delivery_tag, m->redelivered, m->exchange,
			    m->routing_key, 0);
	}
	case AMQP_BASIC_GET_OK_METHOD: {
		amqp_basic_get_ok_t *m = f->payload.method.decoded;

		r->gets_in_flight--;
		return take(r, m->delivery_tag, m->redelivered, m->exchange,
			    m->routing_key, m->message_count);
	}
	case AMQP_BASIC_GET_EMPTY_METHOD:
		r->gets_in_flight--;
		r->empty = true;
		return CQ_OK;
	case AMQP_BASIC_CANCEL_OK_METHOD:
		r->mode = MODE_GET;	/* no more deliveries will come */
		return CQ_OK;
	case AMQP_BASIC_CANCEL_METHOD:	/* the broker cancelled us */
		r->mode = MODE_GET;
		return CQ_OK;
	}
	return cq_seterr(r->ctx, CQ_ERR_INTERNAL,
			 "replay: unexpected method 0x%08x", f->payload.method.id);
}

/* Read at least one frame (waiting up to the timeout) and dispatch it.
 * *idle: the timeout passed with nothing to read. */
static enum cq_err pump(struct replay *r, bool *idle)
{
	struct cqi_amqp *a = r->ctx->amqp;
	long long ms = r->ctx->set.timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	amqp_frame_t f;
	bool handled;
	int st;

	*idle = false;
	st = amqp_simple_wait_frame_noblock(a->conn, &f, &tv);
	if (st == AMQP_STATUS_TIMEOUT) {
		*idle = true;
		return CQ_OK;
	}
	if (st != AMQP_STATUS_OK)
		return cqi_amqp_status_err(r->ctx, st, "replay");
	if (cqi_publisher_frame(r->pub, &f, &handled))
		return r->ctx->err;
	if (!handled && on_frame(r, &f))
		return r->ctx->err;
	amqp_maybe_release_buffers(a->conn);
	return CQ_OK;
}

static enum cq_err send_get(struct replay *r)
{
	amqp_basic_get_t req = { 0, amqp_cstring_bytes(r->dlq), 0 };
	int st = amqp_send_method(r->ctx->amqp->conn, CQI_CHANNEL,
				  AMQP_BASIC_GET_METHOD, &req);

	if (st != AMQP_STATUS_OK)
		return cqi_amqp_status_err(r->ctx, st, "replay: basic.get");
	r->gets_in_flight++;
	return CQ_OK;
}

/*
 * Push delivery costs the broker about half what basic.get does, so a
 * replay consumes, with a prefetch of the window.  But the messages it
 * holds (not moved) keep their prefetch slots: when they fill half of it,
 * or once enough messages came, the consumer is cancelled and the rest
 * (if any) is fetched with basic.get, which has no such limit.
 */
static enum cq_err start_consuming(struct replay *r)
{
	struct cqi_amqp *a = r->ctx->amqp;
	amqp_basic_consume_ok_t *ok;
	uint16_t prefetch = r->fifo_cap > 65535 ? 65535 : (uint16_t)r->fifo_cap;

	amqp_basic_qos(a->conn, CQI_CHANNEL, 0, prefetch, 0);
	if (cqi_amqp_check(r->ctx, "replay: basic.qos"))
		return r->ctx->err;
	ok = amqp_basic_consume(a->conn, CQI_CHANNEL, amqp_cstring_bytes(r->dlq),
				amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	if (cqi_amqp_check(r->ctx, "replay: consume"))
		return r->ctx->err;
	r->consumer_tag = amqp_bytes_malloc_dup(ok->consumer_tag);
	if (!r->consumer_tag.bytes)
		return cq_seterr(r->ctx, CQ_ERR_NOMEM, "out of memory");
	r->mode = MODE_CONSUME;
	return CQ_OK;
}

static enum cq_err stop_consuming(struct replay *r)
{
	amqp_basic_cancel_t req = { r->consumer_tag, 0 };
	int st;

	if (r->mode != MODE_CONSUME)
		return CQ_OK;
	st = amqp_send_method(r->ctx->amqp->conn, CQI_CHANNEL,
			      AMQP_BASIC_CANCEL_METHOD, &req);
	if (st != AMQP_STATUS_OK)
		return cqi_amqp_status_err(r->ctx, st, "replay: cancel");
	r->mode = MODE_CANCELLING;	/* until cancel-ok */
	return CQ_OK;
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
	f->message_id = d->message_id ? strdup(d->message_id) : NULL;
	f->target = strdup(target);
	if (!f->target || !note_target(r, target))
		return cq_seterr(r->ctx, CQ_ERR_NOMEM, "out of memory");
	cqi_throttle_wait(&r->th, 1);
	return cq_publish(r->pub, &m, seq);
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

/* Handle the next message taken, if any.  *did: one was handled. */
static enum cq_err handle_next(struct replay *r, bool *did)
{
	struct cq_delivery *d;
	enum cq_err e;

	*did = r->fifo_len > 0;
	if (!*did)
		return CQ_OK;
	d = r->fifo[r->fifo_head];
	r->fifo_head = (r->fifo_head + 1) % r->fifo_cap;
	r->fifo_len--;
	e = handle(r, d);
	cqi_delivery_free(d);
	if (e == CQ_ERR_DATA && cq_publisher_alive(r->pub)) {
		/* settled failed (held in the DLQ): go on */
		cqi_err_drop(r->ctx);
		return CQ_OK;
	}
	if (e)
		return e;
	return cqi_publisher_poll(r->pub);
}

/* A stop request: take nothing more; what was taken but not yet
 * republished is held (requeued at the end), what is in flight settles. */
static enum cq_err stop_taking(struct replay *r)
{
	r->st->stopped = true;
	r->total = r->received;
	while (r->fifo_len) {
		struct cq_delivery *d = r->fifo[r->fifo_head];

		hold(r, d->delivery_tag);
		cqi_delivery_free(d);
		r->fifo_head = (r->fifo_head + 1) % r->fifo_cap;
		r->fifo_len--;
	}
	return stop_consuming(r);
}

static enum cq_err replay_loop(struct replay *r)
{
	bool did, idle;

	for (;;) {
		if (!r->st->stopped && cq_stop_requested() && stop_taking(r))
			return r->ctx->err;
		if (r->mode == MODE_CONSUME &&
		    (r->received >= r->total || r->held >= r->fifo_cap / 2) &&
		    stop_consuming(r))
			return r->ctx->err;
		while (r->mode == MODE_GET && !r->empty &&
		       r->received + r->gets_in_flight < r->total &&
		       r->gets_in_flight + r->fifo_len < r->fifo_cap) {
			if (send_get(r))
				return r->ctx->err;
		}
		if (handle_next(r, &did))
			return r->ctx->err;
		if (did)
			continue;
		if (r->mode == MODE_GET && r->gets_in_flight == 0)
			break;
		if (flush_acks(r) || pump(r, &idle))
			return r->ctx->err;
		if (!idle)
			continue;
		/* nothing for a while: the queue was emptied by someone else,
		 * or the broker is stuck */
		if (r->mode == MODE_CONSUME && !cqi_publisher_outstanding(r->pub)) {
			if (stop_consuming(r))
				return r->ctx->err;
			continue;
		}
		if (!cqi_publisher_outstanding(r->pub))
			return cq_seterr(r->ctx, CQ_ERR_TEMPFAIL,
					 "replay: no answer from RabbitMQ at %s within %lldms",
					 r->ctx->amqp->where, r->ctx->set.timeout_ms);
		/* confirms are late: wait for them as patiently as a flush */
		if (cq_publisher_flush(r->pub))
			return r->ctx->err;
	}
	if (cq_publisher_flush(r->pub))
		return r->ctx->err;
	return flush_acks(r);
}

enum cq_err cq_replay(struct cq_ctx *ctx, const char *dlq,
		      const struct cq_replay_opts *o, struct cq_replay_stats *st)
{
	struct replay r = { .ctx = ctx, .dlq = dlq, .o = o, .st = st,
			    .min_held = UINT64_MAX, .in_order = true };
	uint32_t present;
	uint64_t total;
	enum cq_err e;

	memset(st, 0, sizeof(*st));
	if (ctx->err)
		return ctx->err;
	if (o->window < 1 || o->window > 100000)
		return cq_seterr(ctx, CQ_ERR_USAGE, "replay: window out of range");
	if (o->to && cqi_name_check(ctx, "queue", o->to))
		return ctx->err;
	if (cq_queue_inspect(ctx, dlq, &present, NULL))
		return ctx->err;
	st->started = true;
	st->present = present;
	total = o->count && o->count < present ? o->count : present;
	if (total == 0)
		return CQ_OK;
	r.fifo_cap = o->window;
	r.fifo = calloc(r.fifo_cap, sizeof(*r.fifo));
	r.fly = calloc(o->window + 1, sizeof(*r.fly));
	if (!r.fifo || !r.fly) {
		e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	r.pub = cq_publisher_new(ctx, o->window, true);
	if (!r.pub) {
		e = ctx->err;
		goto out;
	}
	cq_publisher_on_settle(r.pub, on_settle, &r);
	cqi_publisher_on_frame(r.pub, on_frame, &r);
	cqi_throttle_init(&r.th, o->rate);
	r.total = total;
	/* filters and --dry-run hold many messages: basic.get for those */
	e = o->filter || o->dry_run ? CQ_OK : start_consuming(&r);
	if (!e)
		e = replay_loop(&r);
	/* whatever was not moved goes back to the dead-letter queue */
	if (!e && r.max_held && cqi_nack(ctx, r.max_held, true, true))
		e = ctx->err;
out:
	while (r.fifo_len) {
		cqi_delivery_free(r.fifo[r.fifo_head]);
		r.fifo_head = (r.fifo_head + 1) % r.fifo_cap;
		r.fifo_len--;
	}
	if (r.fly)
		for (size_t i = 0; i <= o->window; i++) {
			free(r.fly[i].message_id);
			free(r.fly[i].target);
		}
	if (r.first_target && !st->several_targets)
		snprintf(st->target, sizeof(st->target), "%s", r.first_target);
	free(r.first_target);
	amqp_bytes_free(r.consumer_tag);
	free(r.fly);
	free(r.fifo);
	cq_publisher_free(r.pub);
	return e;
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
