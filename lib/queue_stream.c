/* queue_stream.c - the Redis Streams driver of the queue engine
 * (qdriver_int.h): a stream read through a consumer group.
 *
 * Entries are read with XREADGROUP in batches (BLOCK, sent without
 * waiting, so the engine's one poll() watches the Redis socket beside the
 * handlers' pipes) and acked with XACK once done; XACKs are pipelined
 * behind the read.  Every entry taken is pending in the group under this
 * consumer's name until then, so a kill loses nothing: a consumer whose
 * entries sat idle longer than the visibility timeout is presumed dead,
 * and XAUTOCLAIM takes them over.  A live consumer renews the entries it
 * holds (XCLAIM JUSTID, only while still theirs) every third of its own
 * timeout, so it is never robbed however long its handlers run: each
 * consumer records its timeout in the hash {Q}|cq:vis:GROUP, and entries
 * are taken over only once idle longer than the longest recorded there,
 * whatever the claimer's own (claim_idle).  On a clean stop, what was
 * taken and not done is released (its idle time set to that) for the next
 * consumer to claim at once, and the record goes.  After a failover a
 * consumer reads its own pending entries again (resync_if_due): an
 * XREADGROUP whose reply was lost left them there unheard.
 *
 * The entry's delivery count (XPENDING) is the broker's count
 * (CQ_HDR_DELIVERY_COUNT); each delivery after the first counts as a
 * failed attempt (CQ_HDR_RETRIES).  A retry is a claim of the entry again
 * (its count goes up); a dead letter adds the entry's fields and the
 * reason to the dead-letter stream and acks and deletes the original in
 * one script, only while the entry is still this consumer's.
 *
 * The body is the field named "body"; else the only field; else every
 * field as one JSON object.  The other fields are the message's headers.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"
#include "queue_int.h"
#include "redis_int.h"

#define BODY_FIELD "body"
#define DEFAULT_GROUP "qctl"
#define ID_MAX 48		/* "ms-seq": two 64-bit numbers */
#define BLOCK_MS 200		/* longest XREADGROUP BLOCK */
#define CLAIM_EVERY_MS 1000	/* look for dead consumers' entries this often */
#define HDR_ORIGINAL_ID "x-cq-original-id"	/* the entry's id in its stream */
/* a dead letter's: the field that was the body, when not "body" ("": the
 * body was every field) */
#define HDR_BODY_FIELD "x-cq-body-field"

/* The reply kinds read back in order (commands sent without waiting). */
enum pending_kind { P_READ, P_ACK };

/* An entry taken and not yet settled; its tag is first_tag + its index. */
struct taken {
	char id[ID_MAX];
	char *body_field;	/* the field that was the body, or NULL */
	bool done;
};

/* Entries read and not yet handed to the engine. */
struct batch {
	struct cqi_reply *owner;	/* the reply holding them */
	struct cqi_reply *entries;	/* its array of [id, [field, value...]] */
	long long *counts;		/* delivery count of each, or NULL: 1 */
	size_t next;
	bool history;			/* our own pending entries: those we
					 * hold already are passed over */
};

/* Where a group stood (enqueue --maxlen: did trimming take unread
 * entries from it?). */
struct lost {
	char *group;
	char last[ID_MAX];	/* last delivered id */
	long long read;		/* entries-read, -1 unknown */
	uint64_t unread;	/* entries after last still there */
};

struct stream_q {
	struct cqi_qdriver base;	/* first */
	struct cq_buf key, dlq_key;	/* with the context's prefix */
	struct cq_buf vis_key;		/* {Q}|cq:vis:GROUP: consumer -> its
					 * visibility timeout (ms) */
	char *dlq;			/* the dead-letter stream, as named */
	const char *group;
	char consumer[300];
	long long vis_ms;
	bool no_group;			/* inspect found the stream without it */
	/* replay (publishing began before start): the stream is read in
	 * order with XRANGE, without a group, and an ack deletes (XDEL) */
	bool range, range_end;
	char range_from[ID_MAX + 1];
	/* ... its deletes wait for a moment outside the publisher's
	 * callbacks, then go through the publisher's pipeline */
	char (*dels)[ID_MAX];
	size_t ndel, del_cap;
	bool started;			/* start() was called: leave the group
					 * cleanly at the end */
	bool taking;			/* between start and stop */
	/* publishing (enqueue, replay's copies) */
	struct cqi_pipe pipe;
	bool pub_ready;
	long long maxlen;		/* XADD MAXLEN, 0 none */
	/* with maxlen: where each group stood at pub_start (or the last
	 * flush), and the entries added since */
	struct lost *lost;
	size_t nlost;
	uint64_t added;
	bool history;			/* our own pending entries first */
	char hist_from[ID_MAX];		/* ... after this id */
	/* read again after a failover (cqi_qd_rejoined): the node lost,
	 * and how many entries we never received were found */
	bool resync;
	char lost_from[300];
	unsigned long long resynced;
	struct batch b;
	/* taken, unsettled: a ring ordered by tag */
	struct cqi_ring ring;		/* of struct taken */
	uint64_t first_tag, next_tag;
	/* replies awaited, in order */
	struct cqi_ring kinds;		/* of unsigned char (pending_kind) */
	bool reading;			/* a P_READ is among them */
	/* failed entries to claim again (their ids) */
	char (*retry)[ID_MAX];
	size_t nretry, retry_cap;
	long long next_claim_ms, next_renew_ms;
	char cursor[ID_MAX];		/* XAUTOCLAIM's */
	long long claim_idle;		/* the group's longest timeout, read
					 * at each round of XAUTOCLAIM */
};

/* Defined with the verbs that use them most (stats, purge, enqueue). */
static enum cq_err entries_after(struct stream_q *s, const char *id,
				 bool del, uint64_t *n);
static long long int_cmd(struct stream_q *s, int argc, const char **argv);
static void lost_free(struct lost *l, size_t n);
static enum cq_err flush_dels(struct stream_q *s);
static enum cq_err any_after(struct stream_q *s, const char *id, bool *any);
static enum cq_err pub_sync(struct stream_q *s);

static struct stream_q *S(struct cqi_qdriver *q)
{
	return (struct stream_q *)q;
}

static const struct stream_q *CS(const struct cqi_qdriver *q)
{
	return (const struct stream_q *)q;
}

static const char *sname(const struct stream_q *s)
{
	return s->base.conf.queue;
}

/* A Redis error reply to an entry's command, told to the engine (the
 * connection still works). */
static void reply_fail(struct stream_q *s, const struct cqi_reply *r,
		       const char *what)
{
	const char *t = r->str ? r->str : "";

	if (strncmp(t, "NOGROUP", 7) == 0)
		cqi_qd_fail(&s->base, CQ_ERR_NOTFOUND,
		      "%s: stream '%s' or its consumer group '%s' was deleted",
		      what, sname(s), s->group);
	else if (strncmp(t, "WRONGTYPE", 9) == 0)
		cqi_qd_fail(&s->base, CQ_ERR_DATA, "%s: key '%s' is not a stream", what,
		      sname(s));
	else
		cqi_qd_fail(&s->base, cqi_redis_err_kind(t), "%s on stream '%s': Redis said: %s",
		      what, sname(s), t);
}

/* ---- replies awaited ------------------------------------------------------ */

static bool kind_push(struct stream_q *s, enum pending_kind k)
{
	unsigned char *p = cqi_ring_push(&s->kinds, 16);

	if (!p)
		return false;
	*p = (unsigned char)k;
	return true;
}

static void batch_clear(struct batch *b)
{
	cqi_reply_free(b->owner);
	free(b->counts);
	memset(b, 0, sizeof(*b));
}

static bool batch_left(const struct batch *b)
{
	return b->entries && b->next < b->entries->elements;
}

/* The entries of an XREADGROUP reply ([[key, entries]]), or NULL. */
static struct cqi_reply *read_entries(struct cqi_reply *r)
{
	if (r->type != CQI_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != CQI_REPLY_ARRAY ||
	    r->element[0]->elements < 2 ||
	    r->element[0]->element[1]->type != CQI_REPLY_ARRAY)
		return NULL;
	return r->element[0]->element[1];
}

/* A reply read back: a batch of entries, or an ack's count. */
static void on_reply(struct stream_q *s, enum pending_kind k,
		     struct cqi_reply *r)
{
	if (r->type == CQI_REPLY_ERROR) {
		reply_fail(s, r, k == P_READ ? "XREADGROUP" : "XACK");
		cqi_reply_free(r);
		return;
	}
	if (k == P_READ && read_entries(r) && !batch_left(&s->b)) {
		batch_clear(&s->b);
		s->b.owner = r;
		s->b.entries = read_entries(r);
		return;
	}
	cqi_reply_free(r);	/* nil: the BLOCK ran out */
}

/* Read the replies awaited: those already here (wait_ms 0), those that
 * come within wait_ms, or with all every one (the read's BLOCK is short). */
static enum cq_err read_replies(struct stream_q *s, long long wait_ms,
				bool all)
{
	struct cq_ctx *ctx = s->base.ctx;

	while (s->kinds.len) {
		enum pending_kind k = *(unsigned char *)cqi_ring_at(&s->kinds, 0);
		struct cqi_reply *r;

		if (all ? cqi_redis_reply(ctx, &r) :
			  cqi_redis_reply_within(ctx, wait_ms, &r))
			return ctx->err;
		if (!r)
			return CQ_OK;
		cqi_ring_shift(&s->kinds);
		if (k == P_READ)
			s->reading = false;
		on_reply(s, k, r);
		wait_ms = 0;
	}
	return CQ_OK;
}

/* Before a command whose reply is waited for: read what is awaited. */
static enum cq_err settle_replies(struct stream_q *s)
{
	return read_replies(s, 0, true);
}

static enum cq_err send_async(struct stream_q *s, enum pending_kind k,
			      int argc, const char **argv, const size_t *lens)
{
	struct cq_ctx *ctx = s->base.ctx;

	if (!kind_push(s, k))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (cqi_redis_append(ctx, CQI_KEY(1), argc, argv, lens)) {
		s->kinds.len--;
		return ctx->err;
	}
	if (k == P_READ)
		s->reading = true;
	return CQ_OK;
}

/* ---- entries into deliveries ------------------------------------------------ */

static bool is_str(const struct cqi_reply *r)
{
	return r && (r->type == CQI_REPLY_STRING || r->type == CQI_REPLY_STATUS);
}

static bool field_is(const struct cqi_reply *f, const char *name)
{
	return f->len == strlen(name) && memcmp(f->str, name, f->len) == 0;
}

/* A field qctl writes (x-cq-...): metadata, never part of the body. */
static bool qctl_field(const struct cqi_reply *f)
{
	return f->len >= 5 && memcmp(f->str, "x-cq-", 5) == 0;
}

/* Which field is the body: the one a dead letter's HDR_BODY_FIELD names
 * ("": all of them), else "body", else the only one; -1: all of them. */
static long body_index(const struct cqi_reply *fv)
{
	const struct cqi_reply *named = NULL;

	for (size_t i = 0; i + 1 < fv->elements; i += 2)
		if (field_is(fv->element[i], HDR_BODY_FIELD) &&
		    is_str(fv->element[i + 1]))
			named = fv->element[i + 1];
	long only = -1;
	size_t apps = 0;

	for (size_t i = 0; i + 1 < fv->elements; i += 2)
		if (field_is(fv->element[i], named ? named->str : BODY_FIELD) &&
		    !field_is(fv->element[i], HDR_BODY_FIELD))
			return (long)i;
	if (named)
		return -1;
	/* qctl's own fields (a dead letter's reason, a replay's count)
	 * are never the body */
	for (size_t i = 0; i + 1 < fv->elements; i += 2)
		if (!qctl_field(fv->element[i])) {
			apps++;
			only = (long)i;
		}
	return apps == 1 ? only : -1;
}

/* The fields as one JSON object (binary values as NAME_base64). */
static char *fields_json_text(const struct cqi_reply *fv, size_t *len)
{
	json_t *o = json_object();
	char *out = NULL;

	if (!o)
		return NULL;
	for (size_t i = 0; i + 1 < fv->elements; i += 2)
		if (!qctl_field(fv->element[i]) &&
		    cqi_json_set_bytes(o, fv->element[i]->str,
				       fv->element[i + 1]->str,
				       fv->element[i + 1]->len))
			goto done;
	out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (out)
		*len = strlen(out);
done:
	json_decref(o);
	return out;
}

/* The headers the driver sets (an entry's own fields of these names are
 * replaced). */
static bool driver_header(const struct cqi_reply *f)
{
	return field_is(f, CQ_HDR_DELIVERY_COUNT) || field_is(f, CQ_HDR_RETRIES);
}

static bool add_int(struct cq_delivery *d, const char *key, long long v)
{
	struct cq_field *f = &d->headers[d->nheaders];

	f->key = strdup(key);
	if (!f->key)
		return false;
	f->kind = CQ_FIELD_INT;
	f->i = v;
	d->nheaders++;
	return true;
}

/* Every field but the body as a string header, then the counts. */
static bool fill_headers(struct cq_delivery *d, struct cqi_reply *fv,
			 long body, long long count)
{
	d->headers = calloc(fv->elements / 2 + 2, sizeof(*d->headers));
	if (!d->headers)
		return false;
	for (size_t i = 0; i + 1 < fv->elements; i += 2) {
		struct cq_field *f = &d->headers[d->nheaders];
		struct cqi_reply *v = fv->element[i + 1];

		if ((long)i == body ||
		    (count >= 0 && driver_header(fv->element[i])))
			continue;
		f->key = strdup(fv->element[i]->str);
		if (!f->key)
			return false;
		f->kind = CQ_FIELD_STRING;
		f->str = v->str;	/* taken from the reply */
		f->len = v->len;
		v->str = NULL;
		d->nheaders++;
	}
	if (count < 0)		/* peeked: no delivery to count */
		return true;
	if (!add_int(d, CQ_HDR_DELIVERY_COUNT, count))
		return false;
	return count <= 1 || add_int(d, CQ_HDR_RETRIES, count - 1);
}

/* A delivery for one entry (its fields taken from the reply); NULL out of
 * memory.  *body_field gets the body's field name (NULL: all of them). */
static struct cq_delivery *entry_delivery(struct stream_q *s,
					  struct cqi_reply *id,
					  struct cqi_reply *fv,
					  long long count, char **body_field)
{
	struct cq_delivery *d = calloc(1, sizeof(*d));
	long body = body_index(fv);

	*body_field = NULL;
	if (!d)
		return NULL;
	d->priority = -1;
	d->persistent = true;
	d->redelivered = count > 1;
	d->timestamp = strtoll(id->str, NULL, 10) / 1000;
	if (!(d->message_id = strdup(id->str)) ||
	    !(d->queue = strdup(sname(s))) ||
	    !(d->routing_key = strdup(sname(s))) ||
	    !(d->exchange = strdup("")))
		goto fail;
	if (body >= 0) {
		struct cqi_reply *v = fv->element[body + 1];

		if (!(*body_field = strdup(fv->element[body]->str)))
			goto fail;
		d->body = v->str;	/* taken: a 50 MB body is not copied */
		d->len = v->len;
		v->str = NULL;
		if (!d->body && !(d->body = strdup("")))
			goto fail;
	} else if (!(d->body = fields_json_text(fv, &d->len))) {
		goto fail;
	}
	if (!fill_headers(d, fv, body, count))
		goto fail;
	return d;
fail:
	free(*body_field);
	*body_field = NULL;
	cqi_delivery_free(d);
	return NULL;
}

/* ---- entries taken ---------------------------------------------------------- */

static struct taken *ring_at(struct stream_q *s, size_t i)
{
	return cqi_ring_at(&s->ring, i);
}

static bool ring_push(struct stream_q *s, const char *id, char *body_field)
{
	bool first = !s->ring.len;
	struct taken *t = cqi_ring_push(&s->ring, 64);

	if (!t)
		return false;
	if (first)
		s->first_tag = s->next_tag + 1;
	snprintf(t->id, sizeof(t->id), "%s", id);
	t->body_field = body_field;
	t->done = false;
	s->next_tag++;
	return true;
}

/* The entry behind tag, or NULL when it is settled. */
static struct taken *ring_find(struct stream_q *s, uint64_t tag)
{
	struct taken *t;

	if (tag < s->first_tag || tag - s->first_tag >= s->ring.len)
		return NULL;
	t = ring_at(s, (size_t)(tag - s->first_tag));
	return t->done ? NULL : t;
}

static void ring_settle(struct stream_q *s, struct taken *t)
{
	t->done = true;
	free(t->body_field);
	t->body_field = NULL;
	while (s->ring.len && ring_at(s, 0)->done) {
		cqi_ring_shift(&s->ring);
		s->first_tag++;
	}
}

/* XACK the entries ids (sent without waiting); in replay, keep them to
 * delete (flush_dels). */
static void send_ack(struct stream_q *s, const char **ids, size_t n)
{
	const char **argv;

	if (s->range) {
		char (*dels)[ID_MAX] = cqi_grow(s->dels, &s->del_cap,
						s->ndel + n, sizeof(*dels), 64);

		if (!dels) {
			cqi_qd_fail(&s->base, CQ_ERR_NOMEM, "out of memory");
			return;
		}
		s->dels = dels;
		for (size_t i = 0; i < n; i++)
			snprintf(s->dels[s->ndel++], ID_MAX, "%s", ids[i]);
		return;
	}
	argv = malloc((n + 3) * sizeof(*argv));

	if (!argv) {
		cqi_qd_fail(&s->base, CQ_ERR_NOMEM, "out of memory");
		return;
	}
	argv[0] = "XACK";
	argv[1] = s->key.data;
	argv[2] = s->group;
	memcpy(argv + 3, ids, n * sizeof(*ids));
	send_async(s, P_ACK, (int)(n + 3), argv, NULL);
	free(argv);
}

/* Do we hold entry id: taken and not settled, or to be claimed again
 * (a retry)? */
static bool holds(struct stream_q *s, const char *id)
{
	for (size_t i = 0; i < s->ring.len; i++)
		if (!ring_at(s, i)->done && strcmp(ring_at(s, i)->id, id) == 0)
			return true;
	for (size_t i = 0; i < s->nretry; i++)
		if (strcmp(s->retry[i], id) == 0)
			return true;
	return false;
}

/* Hand the batch's entries to the engine, at most max. */
static size_t hand(struct stream_q *s, size_t max)
{
	struct batch *b = &s->b;
	size_t handed = 0;

	while (handed < max && batch_left(b) && !s->base.ctx->err) {
		size_t i = b->next++;
		struct cqi_reply *e = b->entries->element[i];
		struct cqi_reply *id, *fv;
		struct cq_delivery *d;
		char *body_field;

		if (e->type != CQI_REPLY_ARRAY || e->elements < 2 ||
		    !is_str(e->element[0]))
			continue;
		id = e->element[0];
		fv = e->element[1];
		if (b->history && holds(s, id->str))
			continue;
		if (b->history && s->resync)
			s->resynced++;
		if (fv->type != CQI_REPLY_ARRAY) {
			/* deleted while pending: nothing left to do */
			const char *ids[1] = { id->str };

			send_ack(s, ids, 1);
			continue;
		}
		d = entry_delivery(s, id, fv,
				   b->counts ? b->counts[i] : 1, &body_field);
		if (!d || !ring_push(s, id->str, body_field)) {
			free(d ? body_field : NULL);
			cqi_delivery_free(d);
			cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
			break;
		}
		d->delivery_tag = s->next_tag;
		if (!s->base.hooks.deliver(s->base.hooks.arg, d)) {
			cqi_delivery_free(d);
			cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
			break;
		}
		handed++;
	}
	if (!batch_left(b))
		batch_clear(b);
	return handed;
}

/* ---- claiming: our own history, retries, dead consumers' entries ------------ */

/* The delivery counts of the batch's entries (XPENDING over their range,
 * this consumer's). */
static enum cq_err batch_counts(struct stream_q *s)
{
	struct batch *b = &s->b;
	struct cqi_reply *e = b->entries, *r;
	const char *lo = NULL, *hi = NULL;
	char n[24];
	const char *argv[7] = { "XPENDING", s->key.data, s->group, NULL, NULL,
				n, s->consumer };

	for (size_t i = 0; i < e->elements; i++) {
		struct cqi_reply *x = e->element[i];
		const char *id;

		if (x->type != CQI_REPLY_ARRAY || !x->elements ||
		    !is_str(x->element[0]))
			continue;
		id = x->element[0]->str;
		/* ids compare as numbers: shorter is smaller */
		if (!lo || strlen(id) < strlen(lo) ||
		    (strlen(id) == strlen(lo) && strcmp(id, lo) < 0))
			lo = id;
		if (!hi || strlen(id) > strlen(hi) ||
		    (strlen(id) == strlen(hi) && strcmp(id, hi) > 0))
			hi = id;
	}
	if (!lo)
		return CQ_OK;
	b->counts = calloc(e->elements, sizeof(*b->counts));
	if (!b->counts)
		return cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
	argv[3] = lo;
	argv[4] = hi;
	snprintf(n, sizeof(n), "%zu", e->elements);
	r = cqi_redis_cmd(s->base.ctx, CQI_KEY(1), 7, argv, NULL);
	if (!r)
		return s->base.ctx->err;
	for (size_t i = 0; i < e->elements; i++) {
		struct cqi_reply *x = e->element[i];

		b->counts[i] = 1;
		for (size_t j = 0; j < r->elements && x->elements; j++) {
			struct cqi_reply *p = r->element[j];

			if (p->type == CQI_REPLY_ARRAY && p->elements >= 4 &&
			    is_str(p->element[0]) &&
			    strcmp(p->element[0]->str, x->element[0]->str) == 0)
				b->counts[i] = p->element[3]->integer;
		}
	}
	cqi_reply_free(r);
	return CQ_OK;
}

/* Take over a reply's entries as the batch, with their counts. */
static enum cq_err batch_from(struct stream_q *s, struct cqi_reply *owner,
			      struct cqi_reply *entries)
{
	batch_clear(&s->b);
	s->b.owner = owner;
	s->b.entries = entries;
	if (!entries || !entries->elements) {
		batch_clear(&s->b);
		return CQ_OK;
	}
	return batch_counts(s);
}

/* A command whose error is the engine's to hear (the connection works):
 * NULL with hooks.fail told, or with the context error on a lost link. */
static struct cqi_reply *entry_cmd(struct stream_q *s, const char *what,
				   int route, int argc, const char **argv)
{
	struct cq_ctx *ctx = s->base.ctx;
	struct cqi_reply *r;

	if (cqi_redis_append(ctx, route, argc, argv, NULL) ||
	    cqi_redis_reply(ctx, &r))
		return NULL;
	if (r->type == CQI_REPLY_ERROR) {
		reply_fail(s, r, what);
		cqi_reply_free(r);
		return NULL;
	}
	return r;
}

static void history_done(struct stream_q *s);

/*
 * After a failover, reading our pending entries again (XREADGROUP from an
 * id) counted a delivery of each: of those a handler holds, delivered no
 * second time, and of those a lost reply took, which we hear of now for
 * the first time.  Each count goes back down by one (XCLAIM RETRYCOUNT
 * JUSTID sets it and counts nothing), in the batch too, so that a
 * failover costs no message one of its retries.
 */
static enum cq_err uncount_history(struct stream_q *s)
{
	struct cq_ctx *ctx = s->base.ctx;
	struct batch *b = &s->b;
	size_t sent = 0;

	for (size_t i = 0; b->counts && i < b->entries->elements; i++) {
		struct cqi_reply *x = b->entries->element[i];
		char c[24];
		const char *argv[9] = { "XCLAIM", s->key.data, s->group,
					s->consumer, "0", NULL, "RETRYCOUNT",
					c, "JUSTID" };

		if (x->type != CQI_REPLY_ARRAY || !x->elements ||
		    !is_str(x->element[0]) || b->counts[i] < 2)
			continue;
		snprintf(c, sizeof(c), "%lld", --b->counts[i]);
		argv[5] = x->element[0]->str;
		if (cqi_redis_append(ctx, CQI_KEY(1), 9, argv, NULL))
			return ctx->err;
		sent++;
	}
	while (sent--) {
		struct cqi_reply *r;

		if (cqi_redis_reply(ctx, &r))
			return ctx->err;
		cqi_reply_free(r);	/* refused: that count stays one up */
	}
	return CQ_OK;
}

/* This consumer's own pending entries, left by an earlier run under the
 * same name (XREADGROUP from id 0): they come first.  (After a failover
 * too: resync_if_due.) */
static enum cq_err read_history(struct stream_q *s, size_t max)
{
	char n[24];
	const char *argv[9] = { "XREADGROUP", "GROUP", s->group, s->consumer,
				"COUNT", n, "STREAMS", s->key.data,
				s->hist_from };
	struct cqi_reply *r, *e;

	snprintf(n, sizeof(n), "%zu", max);
	r = entry_cmd(s, "XREADGROUP", CQI_KEY(7), 9, argv);
	if (!r) {
		s->history = s->resync = false;
		return s->base.ctx->err;
	}
	e = read_entries(r);
	if (!e || !e->elements)
		history_done(s);
	else if (e->element[e->elements - 1]->elements &&
		 is_str(e->element[e->elements - 1]->element[0]))
		snprintf(s->hist_from, sizeof(s->hist_from), "%s",
			 e->element[e->elements - 1]->element[0]->str);
	if (batch_from(s, r, e) || (s->resync && uncount_history(s)))
		return s->base.ctx->err;
	s->b.history = true;
	return CQ_OK;
}

/* Our pending entries all read again: after a failover, say what was
 * found that we never received. */
static void history_done(struct stream_q *s)
{
	s->history = false;
	if (s->resync && s->resynced)
		cqi_qd_notice(&s->base, "%llu entr%s pending in group '%s' of stream '%s' under this consumer's name ('%s') that it never received (the connection to Redis at %s was lost before the reply came): taken back",
			s->resynced, s->resynced == 1 ? "y" : "ies", s->group,
			sname(s), s->consumer, s->lost_from);
	s->resync = false;
	s->resynced = 0;
}

/* Commands whose replies were lost were sent again (cqi_qd_rejoined): an
 * XREADGROUP the old master ran before it died may have left entries
 * pending under our name on the new one that we never received; they
 * would wait there for the visibility timeout.  Read our pending entries
 * again from the start (read_history), passing over those we hold. */
static void resync_if_due(struct stream_q *s)
{
	if (!cqi_qd_rejoined(&s->base, s->lost_from, sizeof(s->lost_from)) ||
	    !s->started)
		return;
	s->resync = s->history = true;
	s->resynced = 0;
	snprintf(s->hist_from, sizeof(s->hist_from), "0");
}

/* Claim the failed entries again (their delivery count goes up). */
static enum cq_err claim_retries(struct stream_q *s)
{
	size_t n = s->nretry;
	const char **argv = malloc((n + 5) * sizeof(*argv));
	struct cqi_reply *r;

	if (!argv)
		return cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
	argv[0] = "XCLAIM";
	argv[1] = s->key.data;
	argv[2] = s->group;
	argv[3] = s->consumer;
	argv[4] = "0";
	for (size_t i = 0; i < n; i++)
		argv[5 + i] = s->retry[i];
	r = entry_cmd(s, "XCLAIM", CQI_KEY(1), (int)(n + 5), argv);
	free(argv);
	s->nretry = 0;
	if (!r)
		return s->base.ctx->err;
	return batch_from(s, r, r->type == CQI_REPLY_ARRAY ? r : NULL);
}

/*
 * Consumers that hold nothing and have not read for the visibility
 * timeout leave the group (XGROUP DELCONSUMER), so that its consumer
 * count is of the living: those a kill -9 left, once their entries were
 * claimed.  One that reads again is simply added back by Redis.
 */
static const char forget_script[] =
	"local n, live = 0, { [ARGV[2]] = true }\n"
	"for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do\n"
	"  local h = {}\n"
	"  for i = 1, #c, 2 do h[c[i]] = c[i + 1] end\n"
	"  if h['name'] ~= ARGV[2] and h['pending'] == 0 and\n"
	"     h['idle'] >= tonumber(ARGV[3]) then\n"
	"    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], h['name'])\n"
	"    n = n + 1\n"
	"  else\n"
	"    live[h['name']] = true\n"
	"  end\n"
	"end\n"
	"for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do\n"
	"  if not live[f] then redis.call('HDEL', KEYS[2], f) end\n"
	"end\n"
	"return n\n";

/* (one script: a consumer that reads meanwhile is not removed with what
 * it just took; the records of those gone go with them) */
static void forget_dead(struct stream_q *s)
{
	char idle[24];
	const char *argv[8] = { "EVAL", forget_script, "2", s->key.data,
				s->vis_key.data, s->group, s->consumer, idle };

	snprintf(idle, sizeof(idle), "%lld", s->claim_idle);
	cqi_reply_free(entry_cmd(s, "forget dead consumers", CQI_KEY(3), 8,
				 argv));
}

/* How long an entry must have been idle to be taken over: the longest
 * visibility timeout the group's consumers recorded, and at least ours.
 * (Read apart from the claim: an entry taken meanwhile is not idle.) */
static long long group_idle(struct stream_q *s)
{
	const char *argv[2] = { "HVALS", s->vis_key.data };
	struct cqi_reply *r = cqi_redis_cmd(s->base.ctx, CQI_KEY(1), 2, argv,
					    NULL);
	long long m = s->vis_ms;

	for (size_t i = 0; r && r->type == CQI_REPLY_ARRAY && i < r->elements;
	     i++) {
		const struct cqi_reply *e = r->element[i];
		long long v = is_str(e) ? strtoll(e->str, NULL, 10) : 0;

		if (v > m)
			m = v;
	}
	cqi_reply_free(r);
	return m;
}

/* Entries idle longer than the group's longest visibility timeout: their
 * consumer died. */
static enum cq_err autoclaim(struct stream_q *s, size_t max)
{
	char idle[24], n[24];
	const char *argv[8] = { "XAUTOCLAIM", s->key.data, s->group,
				s->consumer, idle, s->cursor, "COUNT", n };
	struct cqi_reply *r;

	if (strcmp(s->cursor, "0-0") == 0) {	/* a new round */
		s->claim_idle = group_idle(s);
		if (s->base.ctx->err)
			return s->base.ctx->err;
	}
	snprintf(idle, sizeof(idle), "%lld", s->claim_idle);
	snprintf(n, sizeof(n), "%zu", max);
	r = entry_cmd(s, "XAUTOCLAIM", CQI_KEY(1), 8, argv);
	if (!r)
		return s->base.ctx->err;
	if (r->type != CQI_REPLY_ARRAY || r->elements < 2 ||
	    !is_str(r->element[0])) {
		cqi_reply_free(r);
		return CQ_OK;
	}
	snprintf(s->cursor, sizeof(s->cursor), "%s", r->element[0]->str);
	/* the whole group looked at: rest until the next round */
	if (strcmp(s->cursor, "0-0") == 0) {
		s->next_claim_ms = cq_now_ms() + CLAIM_EVERY_MS;
		forget_dead(s);
	}
	return batch_from(s, r, r->element[1]);
}

/*
 * Renew (idle_ms "0") or release (idle_ms the group's longest timeout:
 * claimable at once) the entries this consumer holds (on release, with
 * those it was to claim again after a failure), each only while it is
 * still ours.  A renewal records our timeout again (ARGV[4]; "" not),
 * should a claimer have taken us for gone.
 */
static const char lease_script[] =
	"if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[4]) end\n"
	"local n = 0\n"
	"for i = 5, #ARGV do\n"
	"  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
	"  if #p > 0 and p[1][2] == ARGV[2] then\n"
	"    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i],\n"
	"               'IDLE', ARGV[3], 'JUSTID')\n"
	"    n = n + 1\n"
	"  end\n"
	"end\n"
	"return n\n";

static void lease(struct stream_q *s, bool renew)
{
	size_t n = 0;
	const char **argv = malloc((s->ring.len + s->nretry + 9) *
				   sizeof(*argv));
	char idle[24], vis[24];
	struct cqi_reply *r;

	if (!argv)
		return;
	snprintf(vis, sizeof(vis), "%lld", renew ? s->vis_ms : 0);
	argv[0] = "EVAL";
	argv[1] = lease_script;
	argv[2] = "2";
	argv[3] = s->key.data;
	argv[4] = s->vis_key.data;
	argv[5] = s->group;
	argv[6] = s->consumer;
	argv[7] = idle;
	argv[8] = renew ? vis : "";
	for (size_t i = 0; i < s->ring.len; i++)
		if (!ring_at(s, i)->done)
			argv[9 + n++] = ring_at(s, i)->id;
	/* on release, the failed ones not claimed again yet (a stop came
	 * first) too: the next consumer retries them at once */
	for (size_t i = 0; !renew && i < s->nretry; i++)
		argv[9 + n++] = s->retry[i];
	/* (nothing held: nothing to ask) */
	if (n)
		snprintf(idle, sizeof(idle), "%lld", renew ? 0 : group_idle(s));
	if (n && !s->base.ctx->err) {
		r = entry_cmd(s, "renew the entries held", CQI_KEY(3),
			      (int)(n + 9), argv);
		cqi_reply_free(r);
	}
	free(argv);
}

/* ---- the driver ops -------------------------------------------------------------- */

/* Ask for new entries (">"), without waiting for them; on a shared
 * connection, blocking at most wait_ms. */
static void send_read(struct stream_q *s, size_t max, long long wait_ms)
{
	char n[24], block[24];
	long long b = s->base.ctx->set.timeout_ms / 2;
	const char *argv[11] = { "XREADGROUP", "GROUP", s->group, s->consumer,
				 "COUNT", n, "BLOCK", block, "STREAMS",
				 s->key.data, ">" };
	int argc = 11;

	if (b > BLOCK_MS || b <= 0)
		b = BLOCK_MS;
	if (s->base.conf.redis_shared && wait_ms < b)
		b = wait_ms;
	if (b <= 0) {	/* no BLOCK: what is there now */
		memmove(argv + 6, argv + 8, 3 * sizeof(*argv));
		argc = 9;
	}
	snprintf(n, sizeof(n), "%zu", max);
	snprintf(block, sizeof(block), "%lld", b);
	if (!kind_push(s, P_READ)) {
		cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
		return;
	}
	if (cqi_redis_append(s->base.ctx, CQI_KEY(argc - 2), argc, argv,
			     NULL)) {
		s->kinds.len--;
		return;
	}
	s->reading = true;
}

/* The waiting kinds of taking (history, retries, claims), when due. */
static void claim_work(struct stream_q *s, size_t room)
{
	if (batch_left(&s->b) || !room)
		return;
	if (s->history || s->nretry ||
	    (s->vis_ms > 0 && cq_now_ms() >= s->next_claim_ms)) {
		if (settle_replies(s) || batch_left(&s->b))
			return;
	}
	if (s->history)
		read_history(s, room);
	else if (s->nretry)
		claim_retries(s);
	else if (s->vis_ms > 0 && cq_now_ms() >= s->next_claim_ms)
		autoclaim(s, room);
}

static void renew_if_due(struct stream_q *s)
{
	long long now = cq_now_ms(), every = s->vis_ms / 3;

	if (s->vis_ms <= 0 || now < s->next_renew_ms)
		return;
	s->next_renew_ms = now + (every > 0 ? every : 1);
	if (!s->ring.len || settle_replies(s))
		return;
	lease(s, true);
}

/* Replay: the next max entries after the last one handed (XRANGE). */
static enum cq_err range_take(struct stream_q *s, size_t max)
{
	char n[24];
	const char *argv[6] = { "XRANGE", s->key.data, s->range_from, "+",
				"COUNT", n };
	struct cqi_reply *r, *last;

	hand(s, max);
	if (!s->taking || s->range_end || batch_left(&s->b) || !max)
		return s->base.ctx->err;
	/* the copies published so far settle first (their replies come
	 * before XRANGE's), and the dead letters they free are deleted */
	if (pub_sync(s))
		return s->base.ctx->err;
	snprintf(n, sizeof(n), "%zu", max);
	r = entry_cmd(s, "XRANGE", CQI_KEY(1), 6, argv);
	if (!r)
		return s->base.ctx->err;
	if (r->type != CQI_REPLY_ARRAY || r->elements < max)
		s->range_end = true;
	if (r->type != CQI_REPLY_ARRAY || !r->elements) {
		cqi_reply_free(r);
		return CQ_OK;
	}
	last = r->element[r->elements - 1];
	if (last->elements && is_str(last->element[0]))
		snprintf(s->range_from, sizeof(s->range_from), "(%s",
			 last->element[0]->str);
	batch_clear(&s->b);
	s->b.owner = r;
	s->b.entries = r;
	/* entries as they are: their own counts and reasons are kept */
	s->b.counts = malloc(r->elements * sizeof(*s->b.counts));
	if (!s->b.counts)
		return cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
	for (size_t i = 0; i < r->elements; i++)
		s->b.counts[i] = -1;
	hand(s, max);
	return s->base.ctx->err;
}

/* Replay's depth: what is left after the last entry handed. */
static enum cq_err range_left(struct stream_q *s, uint64_t *ready)
{
	return entries_after(s, s->range_from[0] == '(' ? s->range_from + 1 :
			     "0-0", false, ready);
}

static enum cq_err take(struct cqi_qdriver *q, size_t max, long long wait_ms)
{
	struct stream_q *s = S(q);
	long long deadline = cq_now_ms() + (wait_ms > 0 ? wait_ms : 0);
	size_t handed = 0;

	if (s->range)
		return range_take(s, max);
	if (read_replies(s, 0, false) || cqi_redis_check_idle(q->ctx))
		return q->ctx->err;
	renew_if_due(s);
	for (;;) {
		if (q->ctx->err)
			return q->ctx->err;
		resync_if_due(s);
		handed += hand(s, max - handed);
		if (handed >= max || !s->taking)
			break;
		claim_work(s, max - handed);
		if (batch_left(&s->b))
			continue;
		if (!s->reading && !q->ctx->err)
			send_read(s, max - handed, deadline - cq_now_ms());
		if (read_replies(s, deadline - cq_now_ms(), false))
			return q->ctx->err;
		if (!batch_left(&s->b) && cq_now_ms() >= deadline)
			break;
	}
	/* send what is queued (acks) even when no reply is waited for */
	if (!q->ctx->err && s->kinds.len)
		read_replies(s, 0, q->conf.redis_shared);
	return q->ctx->err;
}

static bool buffered(const struct cqi_qdriver *q)
{
	return batch_left(&CS(q)->b);
}

static int fd(const struct cqi_qdriver *q)
{
	/* not reading, the socket is polled for a server that hangs up
	 * (take looks: cqi_redis_check_idle) */
	return cqi_redis_fd(q->ctx);
}

static size_t unsettled(const struct cqi_qdriver *q)
{
	/* retries and dead letters settle at once; copies being published
	 * (replay) when their replies come */
	return CS(q)->pub_ready ? cqi_pipe_pending(&CS(q)->pipe) : 0;
}

static void ack(struct cqi_qdriver *q, uint64_t tag, bool upto)
{
	struct stream_q *s = S(q);
	const char **ids;
	size_t n = 0, last;

	if (q->ctx->err || tag < s->first_tag || !s->ring.len)
		return;
	last = tag - s->first_tag < s->ring.len ? (size_t)(tag - s->first_tag) :
					     s->ring.len - 1;
	ids = malloc((last + 1) * sizeof(*ids));
	if (!ids) {
		cqi_qd_fail(&s->base, CQ_ERR_NOMEM, "out of memory");
		return;
	}
	for (size_t i = upto ? 0 : last; i <= last; i++)
		if (!ring_at(s, i)->done)
			ids[n++] = ring_at(s, i)->id;
	if (n)
		send_ack(s, ids, n);
	free(ids);
	if (q->conf.redis_shared)
		settle_replies(s);
	/* mark them settled (the ids were sent; the ring may shrink now) */
	if (upto) {
		while (s->ring.len && s->first_tag <= tag)
			ring_settle(s, ring_at(s, 0));
	} else {
		struct taken *t = ring_find(s, tag);

		if (t)
			ring_settle(s, t);
	}
}

static void retry(struct cqi_qdriver *q, const struct cq_delivery *d,
		  const struct cqi_failure *f)
{
	struct stream_q *s = S(q);
	struct taken *t = ring_find(s, d->delivery_tag);
	char (*ids)[ID_MAX];

	(void)f;	/* the delivery count keeps the attempts */
	if (!t) {
		q->hooks.settled(q->hooks.arg, false, true, NULL);
		return;
	}
	ids = cqi_grow(s->retry, &s->retry_cap, s->nretry + 1, sizeof(*ids),
		       16);
	if (!ids) {
		/* it stays pending: claimed after the timeout */
		q->hooks.settled(q->hooks.arg, false, false, "out of memory");
		return;
	}
	s->retry = ids;
	memcpy(s->retry[s->nretry++], t->id, ID_MAX);
	ring_settle(s, t);
	q->hooks.settled(q->hooks.arg, false, true, NULL);
}

/*
 * Dead-letter: add the fields and the reason to the dead-letter stream,
 * ack and delete the original: one script, so a kill leaves either both
 * steps done or neither; and only while the entry is still ours (else
 * another consumer holds it now, and it is not ours to move).
 */
static const char dead_script[] =
	"local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
	"if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end\n"
	"local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))\n"
	"redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])\n"
	"redis.call('XDEL', KEYS[1], ARGV[3])\n"
	"return id\n";

/* The reason fields qctl writes (an entry's older ones are replaced). */
static const char *const reason_fields[] = {
	CQ_HDR_RETRIES, CQ_HDR_DEATH_REASON, CQ_HDR_EXIT_CODE, CQ_HDR_STDERR,
	CQ_HDR_ORIGINAL_QUEUE, HDR_ORIGINAL_ID, CQ_HDR_DIED_AT, CQ_HDR_HOST,
	CQ_HDR_DELIVERY_COUNT, HDR_BODY_FIELD,
};

static bool reason_field(const char *k)
{
	for (size_t i = 0; i < sizeof(reason_fields) / sizeof(*reason_fields); i++)
		if (strcmp(k, reason_fields[i]) == 0)
			return true;
	return false;
}

static bool dead_letter(struct cqi_qdriver *q, const struct cq_delivery *d,
			const struct cqi_failure *f, char *where, size_t len)
{
	struct stream_q *s = S(q);
	struct taken *t = ring_find(s, d->delivery_tag);
	size_t cap = 2 * d->nheaders + 34, n = 0;
	const char **argv = malloc(cap * sizeof(*argv));
	size_t *lens = malloc(cap * sizeof(*lens));
	char attempts[24], code[24], died[24];
	struct cqi_reply *r = NULL;
	bool begun = false;

#define ARG(p, l) (argv[n] = (p), lens[n++] = (l))
#define ARGS(p) ARG((p), strlen(p))
	snprintf(where, len, "to stream '%s'", s->dlq);
	if (!argv || !lens || !t) {
		if (!t)	/* settled already: nothing to move */
			begun = true;
		else
			cqi_qd_fail(&s->base, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (settle_replies(s))
		goto out;
	ARGS("EVAL");
	ARGS(dead_script);
	ARGS("2");
	ARG(s->key.data, s->key.len);
	ARG(s->dlq_key.data, s->dlq_key.len);
	ARGS(s->group);
	ARGS(s->consumer);
	ARGS(t->id);
	if (t->body_field) {
		ARGS(t->body_field);
		ARG(d->body, d->len);
	}
	for (size_t i = 0; i < d->nheaders; i++) {
		const struct cq_field *h = &d->headers[i];

		if (h->kind != CQ_FIELD_STRING || reason_field(h->key))
			continue;
		ARGS(h->key);
		ARG(h->str ? h->str : "", h->len);
	}
	snprintf(attempts, sizeof(attempts), "%lld", f->attempts);
	snprintf(code, sizeof(code), "%d", f->code);
	snprintf(died, sizeof(died), "%lld", cq_wall_ms() / 1000);
	ARGS(CQ_HDR_DEATH_REASON);
	ARGS(f->reason ? f->reason : "");
	ARGS(CQ_HDR_EXIT_CODE);
	ARGS(code);
	ARGS(CQ_HDR_STDERR);
	ARG(f->tail ? f->tail : "", f->tail ? f->tlen : 0);
	ARGS(CQ_HDR_RETRIES);
	ARGS(attempts);
	ARGS(CQ_HDR_ORIGINAL_QUEUE);
	ARGS(sname(s));
	ARGS(HDR_ORIGINAL_ID);
	ARGS(t->id);
	ARGS(CQ_HDR_DIED_AT);
	ARGS(died);
	ARGS(CQ_HDR_HOST);
	ARGS(f->host ? f->host : "");
	if (!t->body_field || strcmp(t->body_field, BODY_FIELD) != 0) {
		/* read back (peek, replay), the body is that field again */
		ARGS(HDR_BODY_FIELD);
		ARGS(t->body_field ? t->body_field : "");
	}
#undef ARG
#undef ARGS
	begun = true;
	if (cqi_redis_append(q->ctx, CQI_KEY(3), (int)n, argv, lens) ||
	    cqi_redis_reply(q->ctx, &r))
		goto out;	/* the link is gone: it stays pending */
	if (r->type == CQI_REPLY_ERROR) {
		q->hooks.settled(q->hooks.arg, true, false, r->str);
	} else if (r->type == CQI_REPLY_INTEGER) {
		/* claimed by another consumer meanwhile: theirs now */
		q->hooks.settled(q->hooks.arg, true, false,
				 "another consumer claimed it");
	} else {
		ring_settle(s, t);
		q->hooks.settled(q->hooks.arg, true, true, NULL);
	}
out:
	cqi_reply_free(r);
	free(argv);
	free(lens);
	return begun;
}

static enum cq_err flush(struct cqi_qdriver *q)
{
	if (q->ctx->err)
		return q->ctx->err;
	return settle_replies(S(q));
}

/* ---- the stream and its group, as Redis sees them ------------------------------ */

/* What XINFO GROUPS says of the group (found false: no such group). */
struct group_info {
	bool found;
	char last_id[ID_MAX];
	double lag;		/* NAN when Redis cannot tell */
	long long pending, consumers;
};

/* The stream exists (*exists) and is one: a key of another type is
 * CQ_ERR_DATA naming it. */
static enum cq_err stream_exists(struct stream_q *s, const struct cq_buf *key,
				 const char *name, bool *exists)
{
	char *t = cqi_redis_key_type(s->base.ctx, key);

	*exists = false;
	if (!t)
		return s->base.ctx->err;
	*exists = strcmp(t, "stream") == 0;
	if (strcmp(t, "none") != 0 && !*exists)
		cq_seterr(s->base.ctx, CQ_ERR_DATA,
			  "key '%s' holds a %s, not a stream", name, t);
	free(t);
	return s->base.ctx->err;
}

static enum cq_err group_info(struct stream_q *s, struct group_info *gi)
{
	const char *argv[3] = { "XINFO", "GROUPS", s->key.data };
	struct cqi_reply *r = cqi_redis_cmd(s->base.ctx, CQI_KEY(2), 3, argv,
					    NULL);

	memset(gi, 0, sizeof(*gi));
	gi->lag = NAN;
	if (!r)
		return s->base.ctx->err;
	for (size_t i = 0; i < r->elements && !gi->found; i++) {
		struct cqi_reply *g = r->element[i];
		bool mine = false;

		for (size_t j = 0; j + 1 < g->elements && !mine; j += 2)
			mine = field_is(g->element[j], "name") &&
			       is_str(g->element[j + 1]) &&
			       strcmp(g->element[j + 1]->str, s->group) == 0;
		for (size_t j = 0; mine && j + 1 < g->elements; j += 2) {
			struct cqi_reply *k = g->element[j], *v = g->element[j + 1];

			if (field_is(k, "last-delivered-id") && is_str(v))
				snprintf(gi->last_id, sizeof(gi->last_id), "%s",
					 v->str);
			else if (field_is(k, "lag") && v->type == CQI_REPLY_INTEGER)
				gi->lag = (double)v->integer;
			else if (field_is(k, "pending") &&
				 v->type == CQI_REPLY_INTEGER)
				gi->pending = v->integer;
			else if (field_is(k, "consumers") &&
				 v->type == CQI_REPLY_INTEGER)
				gi->consumers = v->integer;
		}
		gi->found = mine;
	}
	cqi_reply_free(r);
	return CQ_OK;
}

/* "qctl declare --backend stream [--group G] NAME": what creates the
 * stream and its group. */
static void declare_hint(const struct stream_q *s, char *buf, size_t len)
{
	char name[1100], group[1100];

	cqi_shell_word(sname(s), name, sizeof(name));
	cqi_shell_word(s->group, group, sizeof(group));
	if (strcmp(s->group, DEFAULT_GROUP) == 0)
		snprintf(buf, len, "qctl declare --backend stream %s", name);
	else
		snprintf(buf, len, "qctl declare --backend stream --group %s %s",
			 group, name);
}

static enum cq_err no_group_err(struct stream_q *s)
{
	char hint[2400];

	declare_hint(s, hint, sizeof(hint));
	return cq_seterr(s->base.ctx, CQ_ERR_NOTFOUND,
			 "stream '%s' has no consumer group '%s' (create it with: %s)",
			 sname(s), s->group, hint);
}

/* The key holds a stream with the group (CQ_ERR_NOTFOUND when either is
 * missing, CQ_ERR_DATA for a key of another type); *lag gets the group's
 * entries not yet delivered.  With any, a stream without the group is
 * fine: *lag gets its length. */
static enum cq_err check_group(struct stream_q *s, uint64_t *lag,
			       bool any_group)
{
	struct cq_ctx *ctx = s->base.ctx;
	struct group_info gi;
	char hint[2400];
	bool exists, any;

	if (stream_exists(s, &s->key, sname(s), &exists))
		return ctx->err;
	declare_hint(s, hint, sizeof(hint));
	if (!exists)
		return cq_seterr(ctx, CQ_ERR_NOTFOUND,
				 "stream '%s' does not exist (create it with: %s)",
				 sname(s), hint);
	if (group_info(s, &gi))
		return ctx->err;
	if (!gi.found && any_group) {
		/* replay reads a dead-letter stream without a group; consume
		 * is refused at start */
		const char *argv[2] = { "XLEN", s->key.data };
		long long n = int_cmd(s, 2, argv);

		s->no_group = true;
		*lag = n > 0 ? (uint64_t)n : 0;
		return ctx->err;
	}
	if (!gi.found)
		return no_group_err(s);
	if (isnan(gi.lag) && entries_after(s, gi.last_id, false, lag))
		return ctx->err;
	if (!isnan(gi.lag))
		*lag = (uint64_t)gi.lag;
	if (*lag && any_after(s, gi.last_id, &any))
		return ctx->err;
	if (*lag && !any)
		*lag = 0;	/* what is left after it was purged */
	return CQ_OK;
}

/* Entries waiting to be taken: the group's lag, entries of dead
 * consumers ready to claim, and retries. */
static enum cq_err ready_count(struct stream_q *s, uint64_t *ready, bool any)
{
	struct cq_ctx *ctx = s->base.ctx;
	char idle[24];
	const char *argv[8] = { "XPENDING", s->key.data, s->group, "IDLE",
				idle, "-", "+", "1" };
	struct cqi_reply *r;

	if (settle_replies(s) || check_group(s, ready, any))
		return ctx->err;
	if (s->no_group)
		return CQ_OK;
	*ready += s->nretry + (batch_left(&s->b) ? 1 : 0);
	if (s->vis_ms <= 0)
		return CQ_OK;
	snprintf(idle, sizeof(idle), "%lld", group_idle(s));
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 8, argv, NULL);
	if (!r)
		return ctx->err;
	*ready += r->elements;
	cqi_reply_free(r);
	return CQ_OK;
}

static enum cq_err inspect(struct cqi_qdriver *q, uint64_t *ready)
{
	return ready_count(S(q), ready, true);
}

static enum cq_err depth(struct cqi_qdriver *q, uint64_t *ready, char *why,
			 size_t len)
{
	struct cqi_err_held h = { 0 };
	enum cq_err e = S(q)->range ? range_left(S(q), ready) :
			ready_count(S(q), ready, false);

	/* a missing stream or group, a wrong type: the link still works */
	if (e == CQ_ERR_NOTFOUND || e == CQ_ERR_DATA) {
		cqi_err_hold(q->ctx, &h);
		snprintf(why, len, "%s", h.msg);
	}
	return e;
}

/* Join the group and record our visibility timeout in one step (a
 * claimer's forget_dead drops the records of consumers not in it). */
static const char join_script[] =
	"redis.call('XGROUP', 'CREATECONSUMER', KEYS[1], ARGV[1], ARGV[2])\n"
	"redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
	"return 1\n";

static enum cq_err record_vis(struct stream_q *s)
{
	char vis[24];
	const char *argv[8] = { "EVAL", join_script, "2", s->key.data,
				s->vis_key.data, s->group, s->consumer, vis };
	struct cqi_reply *r;

	snprintf(vis, sizeof(vis), "%lld", s->vis_ms);
	r = cqi_redis_cmd(s->base.ctx, CQI_KEY(3), 8, argv, NULL);
	cqi_reply_free(r);
	return s->base.ctx->err;
}

static enum cq_err start(struct cqi_qdriver *q, unsigned window)
{
	struct stream_q *s = S(q);

	(void)window;	/* take() is told the room each time */
	if (s->pub_ready) {
		/* replay: every entry of the (dead-letter) stream in order */
		s->range = s->taking = true;
		snprintf(s->range_from, sizeof(s->range_from), "-");
		return CQ_OK;
	}
	if (s->no_group)
		return no_group_err(s);
	if (q->conf.exec &&
	    cqi_redis_dlq_slot_check(q->ctx, &s->key, sname(s), &s->dlq_key,
				     s->dlq, "stream"))
		return q->ctx->err;
	if (s->vis_ms > 0 && record_vis(s))
		return q->ctx->err;
	s->started = s->taking = true;
	s->history = true;
	snprintf(s->hist_from, sizeof(s->hist_from), "0");
	cqi_qd_rejoined(q, NULL, 0);	/* lost replies from here on */
	return CQ_OK;
}

static void stop(struct cqi_qdriver *q)
{
	S(q)->taking = false;
}

static enum cq_err resume(struct cqi_qdriver *q)
{
	S(q)->taking = true;
	return CQ_OK;
}

static enum cq_err drv_connect(struct cqi_qdriver *q)
{
	struct stream_q *s = S(q);
	const char *name = q->conf.queue;
	char host[256], *vis;
	bool ok;

	if (!q->ctx->redis)
		return cq_seterr(q->ctx, CQ_ERR_INTERNAL,
				 "consume: not connected to Redis");
	if (q->conf.dlq)
		s->dlq = strdup(q->conf.dlq);
	else if (asprintf(&s->dlq, "%s%s", name, CQ_DLQ_SUFFIX) < 0)
		s->dlq = NULL;
	if (!s->dlq || !cqi_prefixed(q->ctx, name, strlen(name), &s->key) ||
	    !cqi_prefixed(q->ctx, s->dlq, strlen(s->dlq), &s->dlq_key))
		return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
	s->group = q->conf.group ? q->conf.group :
		   q->ctx->set.queue_group ? q->ctx->set.queue_group :
		   DEFAULT_GROUP;
	if (q->conf.consumer) {
		snprintf(s->consumer, sizeof(s->consumer), "%s",
			 q->conf.consumer);
	} else {
		cqi_hostname(host, sizeof(host));
		snprintf(s->consumer, sizeof(s->consumer), "qctl-%s-%ld", host,
			 (long)getpid());
	}
	s->vis_ms = q->conf.visibility_ms;
	snprintf(s->cursor, sizeof(s->cursor), "0-0");
	if (asprintf(&vis, "vis:%s", s->group) < 0)
		return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
	ok = cqi_derived_key(q->ctx->set.prefix, s->key.data, s->key.len, vis,
			     &s->vis_key);
	free(vis);
	if (!ok)
		return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

/* A clean end: what was taken and not done is released for the next
 * consumer to claim at once, and our timeout's record goes; a consumer
 * that holds nothing leaves the group (its name would only clutter XINFO
 * CONSUMERS). */
static void leave(struct stream_q *s)
{
	struct cq_ctx *ctx = s->base.ctx;
	const char *pargv[7] = { "XPENDING", s->key.data, s->group, "-", "+",
				 "1", s->consumer };
	const char *dargv[5] = { "XGROUP", "DELCONSUMER", s->key.data,
				 s->group, s->consumer };
	const char *hargv[3] = { "HDEL", s->vis_key.data, s->consumer };
	struct cqi_reply *r;

	if (ctx->err || !s->started || settle_replies(s))
		return;
	while (batch_left(&s->b)) {
		struct cqi_reply *e = s->b.entries->element[s->b.next++];

		if (e->type == CQI_REPLY_ARRAY && e->elements &&
		    is_str(e->element[0]) && !ring_push(s, e->element[0]->str, NULL))
			break;
	}
	lease(s, false);
	cqi_reply_free(cqi_redis_cmd(ctx, CQI_KEY(1), 3, hargv, NULL));
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 7, pargv, NULL);
	if (r && r->type == CQI_REPLY_ARRAY && r->elements == 0) {
		cqi_reply_free(r);
		r = cqi_redis_cmd(ctx, CQI_KEY(2), 5, dargv, NULL);
	}
	cqi_reply_free(r);
}

static void drv_free(struct cqi_qdriver *q)
{
	struct stream_q *s = S(q);
	struct cqi_err_held h = { 0 };

	/* leaving is best effort: its failure is not the run's */
	cqi_err_hold(q->ctx, &h);
	if (!h.err)
		leave(s);
	cqi_err_drop(q->ctx);
	cqi_err_restore(q->ctx, &h);
	for (size_t i = 0; i < s->ring.len; i++)
		free(ring_at(s, i)->body_field);
	batch_clear(&s->b);
	cqi_ring_clear(&s->ring);
	cqi_ring_clear(&s->kinds);
	free(s->retry);
	free(s->dlq);
	cqi_pipe_free(&s->pipe);
	lost_free(s->lost, s->nlost);
	free(s->dels);
	cq_buf_free(&s->key);
	cq_buf_free(&s->dlq_key);
	cq_buf_free(&s->vis_key);
	free(s);
}

/* ---- stats, peek, purge, declare ------------------------------------------------ */

/* An integer reply of a command on the stream (-1 on an error). */
static long long int_cmd(struct stream_q *s, int argc, const char **argv)
{
	struct cqi_reply *r = cqi_redis_cmd(s->base.ctx, CQI_KEY(1), argc,
					    argv, NULL);
	long long n = r && r->type == CQI_REPLY_INTEGER ? r->integer : -1;

	cqi_reply_free(r);
	return n;
}

/*
 * The entries after id (the group's last delivered: the ready ones),
 * counted, or with del deleted, 1,000 at a time, each batch atomic (an
 * entry delivered meanwhile is not deleted: the last delivered id is
 * read again in every batch when a group is named).
 */
static const char after_script[] =
	"local function later(a, b)\n"
	"  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"
	"  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"
	"  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"
	"  return am > bm or (am == bm and as > bs)\n"
	"end\n"
	"local from = ARGV[2]\n"
	"if ARGV[1] ~= '' then\n"
	"  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
	"    local h = {}\n"
	"    for i = 1, #g, 2 do h[g[i]] = g[i + 1] end\n"
	"    if h['name'] == ARGV[1] and later(h['last-delivered-id'], from) then\n"
	"      from = h['last-delivered-id']\n"
	"    end\n"
	"  end\n"
	"end\n"
	"local e = redis.call('XRANGE', KEYS[1], '(' .. from, '+', 'COUNT', ARGV[4])\n"
	"if #e == 0 then return {0, from} end\n"
	"if ARGV[3] == '1' then\n"
	"  for i = 1, #e do redis.call('XDEL', KEYS[1], e[i][1]) end\n"
	"end\n"
	"return {#e, e[#e][1]}\n";

static enum cq_err entries_after(struct stream_q *s, const char *id,
				 bool del, uint64_t *n)
{
	char from[ID_MAX];
	const char *argv[8] = { "EVAL", after_script, "1", s->key.data,
				del ? s->group : "", from, del ? "1" : "0",
				"1000" };
	struct cqi_reply *r;

	*n = 0;
	snprintf(from, sizeof(from), "%s", id);
	for (;;) {
		r = cqi_redis_cmd(s->base.ctx, CQI_KEY(3), 8, argv, NULL);
		if (!r)
			return s->base.ctx->err;
		if (r->type != CQI_REPLY_ARRAY || r->elements < 2 ||
		    r->element[0]->integer == 0) {
			cqi_reply_free(r);
			return CQ_OK;
		}
		*n += (uint64_t)r->element[0]->integer;
		snprintf(from, sizeof(from), "%s", r->element[1]->str);
		cqi_reply_free(r);
	}
}

/* Is there any entry after id?  (Redis's lag counts the entries deleted
 * after a group's last delivered one, a purge's, as still there.) */
static enum cq_err any_after(struct stream_q *s, const char *id, bool *any)
{
	const char *argv[8] = { "EVAL", after_script, "1", s->key.data, "",
				id, "0", "1" };
	struct cqi_reply *r = cqi_redis_cmd(s->base.ctx, CQI_KEY(3), 8, argv,
					    NULL);

	*any = r && r->type == CQI_REPLY_ARRAY && r->elements >= 2 &&
	       r->element[0]->integer > 0;
	cqi_reply_free(r);
	return s->base.ctx->err;
}

static void add_extra(struct cqi_qstats *out, const char *name, double v)
{
	if (out->nextra < CQI_QSTAT_EXTRAS) {
		out->extra[out->nextra].name = name;
		out->extra[out->nextra++].value = v;
	}
}

/* The oldest pending entry's idle time in seconds, NAN with none. */
static double oldest_idle_s(struct stream_q *s)
{
	const char *argv[6] = { "XPENDING", s->key.data, s->group, "-", "+",
				"1" };
	struct cqi_reply *r = cqi_redis_cmd(s->base.ctx, CQI_KEY(1), 6, argv,
					    NULL);
	double v = NAN;

	if (r && r->elements && r->element[0]->elements >= 3 &&
	    r->element[0]->element[2]->type == CQI_REPLY_INTEGER)
		v = (double)r->element[0]->element[2]->integer / 1000.0;
	cqi_reply_free(r);
	return v;
}

static enum cq_err stats(struct cqi_qdriver *q, struct cqi_qstats *out)
{
	struct stream_q *s = S(q);
	const char *largv[2] = { "XLEN", s->key.data };
	const char *dargv[2] = { "XLEN", s->dlq_key.data };
	struct group_info gi;
	long long len;
	uint64_t n;
	bool exists;

	snprintf(out->dlq_name, sizeof(out->dlq_name), "%s", s->dlq);
	if (stream_exists(s, &s->key, sname(s), &exists) || !exists)
		return q->ctx->err;
	out->found = true;
	len = int_cmd(s, 2, largv);
	if (len < 0 || group_info(s, &gi))
		return q->ctx->err;
	/* a group named (--group, stream:NAME@GROUP) that is not there is a
	 * typo or a consumer never set up: no figures stand for it (the
	 * default group's absence reads as the whole stream ready) */
	if (!gi.found && strcmp(s->group, DEFAULT_GROUP) != 0)
		return no_group_err(s);
	if (gi.found && isnan(gi.lag)) {
		/* Redis cannot tell after some deletions: count them */
		if (entries_after(s, gi.last_id, false, &n))
			return q->ctx->err;
		gi.lag = (double)n;
	}
	if (gi.found && gi.lag > 0) {
		bool any;

		if (any_after(s, gi.last_id, &any))
			return q->ctx->err;
		if (!any)
			gi.lag = 0;	/* what is left after it was purged */
		else if (gi.lag > (double)len)
			gi.lag = (double)len;
	}
	out->ready = gi.found ? gi.lag : (double)len;
	out->inflight = (double)gi.pending;
	out->consumers = (double)gi.consumers;
	if (stream_exists(s, &s->dlq_key, s->dlq, &exists))
		return q->ctx->err;
	out->dlq = exists ? (double)int_cmd(s, 2, dargv) : NAN;
	add_extra(out, "unacked", (double)gi.pending);
	add_extra(out, "length", (double)len);
	add_extra(out, "pending_idle_s", gi.pending ? oldest_idle_s(s) : NAN);
	return q->ctx->err;
}

/* The stream must exist and be one (cqi_missing_queue when it does not). */
static enum cq_err need_stream(struct stream_q *s)
{
	bool exists;

	if (stream_exists(s, &s->key, sname(s), &exists))
		return s->base.ctx->err;
	return exists ? CQ_OK : cqi_missing_queue(s->base.ctx, sname(s));
}

static enum cq_err peek(struct cqi_qdriver *q, size_t count, cq_peek_fn fn,
			void *arg, size_t *seen)
{
	struct stream_q *s = S(q);
	struct group_info gi;
	char from[ID_MAX + 1], n[24];
	const char *argv[6] = { "XRANGE", s->key.data, from, "+", "COUNT", n };
	struct cqi_reply *r;
	enum cq_err e = CQ_OK;

	*seen = 0;
	if (need_stream(s) || group_info(s, &gi))
		return q->ctx->err;
	/* the ready entries: after the group's last delivered, else all */
	if (gi.found)
		snprintf(from, sizeof(from), "(%s", gi.last_id);
	else
		snprintf(from, sizeof(from), "-");
	snprintf(n, sizeof(n), "%zu", count);
	r = cqi_redis_cmd(q->ctx, CQI_KEY(1), 6, argv, NULL);
	if (!r)
		return q->ctx->err;
	for (size_t i = 0; i < r->elements && !e; i++) {
		struct cqi_reply *x = r->element[i];
		struct cq_delivery *d;
		char *body_field;

		if (x->elements < 2 || !is_str(x->element[0]) ||
		    x->element[1]->type != CQI_REPLY_ARRAY)
			continue;
		d = entry_delivery(s, x->element[0], x->element[1], -1,
				   &body_field);
		if (!d) {
			e = cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
			break;
		}
		free(body_field);
		d->delivery_tag = *seen + 1;
		e = fn(arg, d);
		cqi_delivery_free(d);
		if (!e)
			(*seen)++;
	}
	cqi_reply_free(r);
	return e;
}

static enum cq_err info(struct cqi_qdriver *q, struct cq_queue_info *out)
{
	(void)q;
	out->known = false;	/* a stream has no settings to probe */
	return CQ_OK;
}

/* Purge: the entries the group has not been given yet go (other groups
 * lose them too); pending entries stay until they are settled. */
static enum cq_err purge(struct cqi_qdriver *q, uint64_t *count)
{
	struct stream_q *s = S(q);
	struct group_info gi;

	*count = 0;
	if (need_stream(s) || group_info(s, &gi))
		return q->ctx->err;
	if (!gi.found)
		return cq_seterr(q->ctx, CQ_ERR_NOTFOUND,
				 "stream '%s' has no consumer group '%s': nothing is ready for it",
				 sname(s), s->group);
	return entries_after(s, gi.last_id, true, count);
}

static enum cq_err unsupported(struct cqi_qdriver *q, const char *opt)
{
	return cqi_qd_unsupported(q, "stream", opt);
}

/* XGROUP CREATE ... MKSTREAM from the first entry: the group exists
 * already (BUSYGROUP) is fine. */
static enum cq_err create_group(struct stream_q *s, const struct cq_buf *key,
				const char *name)
{
	const char *argv[6] = { "XGROUP", "CREATE", key->data, s->group, "0",
				"MKSTREAM" };
	struct cqi_reply *r;
	bool exists;

	if (stream_exists(s, key, name, &exists))
		return s->base.ctx->err;
	if (cqi_redis_append(s->base.ctx, CQI_KEY(2), 6, argv, NULL) ||
	    cqi_redis_reply(s->base.ctx, &r))
		return s->base.ctx->err;
	if (r->type == CQI_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
		cqi_redis_reply_err(s->base.ctx, r, "XGROUP CREATE");
	cqi_reply_free(r);
	return s->base.ctx->err;
}

static enum cq_err declare(struct cqi_qdriver *q, const struct cq_queue_opts *o,
			   struct cq_declared *out)
{
	struct stream_q *s = S(q);
	struct group_info gi;

	if (o->quorum)
		return unsupported(q, "--quorum");
	if (o->max_length >= 0)
		return unsupported(q, "--max-length (use enqueue --maxlen)");
	if (o->message_ttl_ms >= 0)
		return unsupported(q, "--message-ttl");
	if (o->max_priority >= 0)
		return unsupported(q, "--max-priority");
	if (o->delivery_limit >= 0)
		return unsupported(q, "--delivery-limit (use consume --max-retries)");
	if (o->dlq && *o->dlq) {	/* "": the default, NAME.dlq */
		free(s->dlq);
		s->dlq = strdup(o->dlq);
		if (!s->dlq ||
		    !cqi_prefixed(q->ctx, s->dlq, strlen(s->dlq), &s->dlq_key))
			return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
	}
	if (create_group(s, &s->key, sname(s)) ||
	    (o->dlq && create_group(s, &s->dlq_key, s->dlq)) ||
	    group_info(s, &gi))
		return q->ctx->err;
	out->messages = isnan(gi.lag) || gi.lag > UINT32_MAX ? 0 :
			(uint32_t)gi.lag;
	out->consumers = (uint32_t)gi.consumers;
	if (o->dlq && !(out->dlq = strdup(s->dlq)))
		return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

/* ---- replay: held entries, and giving back ------------------------------------- */

static void hold(struct cqi_qdriver *q, uint64_t tag)
{
	struct stream_q *s = S(q);
	struct taken *t = ring_find(s, tag);

	/* replay: read without taking, it is simply left where it is; a
	 * group's entry stays pending, ours, until release or ack */
	if (s->range && t)
		ring_settle(s, t);
}

static bool exhausted(const struct cqi_qdriver *q)
{
	const struct stream_q *s = CS(q);

		if (s->range)
		return (s->range_end || !s->taking) && !batch_left(&s->b);
	return !s->taking && !s->reading && !batch_left(&s->b);
}

static enum cq_err release(struct cqi_qdriver *q)
{
	struct stream_q *s = S(q);

	if (settle_replies(s))
		return q->ctx->err;
	if (s->range && pub_sync(s))
		return q->ctx->err;
	if (s->range) {		/* nothing was taken from the stream */
		while (s->ring.len)
			ring_settle(s, ring_at(s, 0));
		batch_clear(&s->b);
		return CQ_OK;
	}
	lease(s, false);
	while (s->ring.len)
		ring_settle(s, ring_at(s, 0));
	return q->ctx->err;
}

/* ---- publishing: XADD, pipelined ------------------------------------------------ */

static const char *const pub_lost = "connection lost";
static const char *const pub_missing = "the stream does not exist";
static const char *const pub_wrongtype =
	"refused by Redis: the key is not a stream";

/* The pipeline tag of replay's deletes (never a publish's). */
#define DEL_TAG UINT64_MAX

static void on_added(void *arg, uint64_t tag, struct cqi_reply *r)
{
	struct stream_q *s = arg;

	if (tag == DEL_TAG) {
		if (r->type == CQI_REPLY_ERROR)
			reply_fail(s, r, "XDEL");
		return;
	}
	/* nil: NOMKSTREAM found no stream */
	if (r->type == CQI_REPLY_ERROR || r->type == CQI_REPLY_NIL) {
		s->base.hooks.published(s->base.hooks.arg, tag, false,
					r->type == CQI_REPLY_NIL ? pub_missing :
					cqi_redis_refusal(r, pub_wrongtype));
		return;
	}
	s->added++;
	s->base.hooks.published(s->base.hooks.arg, tag, true, NULL);
}

/* Replay: delete the dead letters whose copies are safe (XDEL through
 * the pipeline, never from inside its callbacks). */
static enum cq_err flush_dels(struct stream_q *s)
{
	while (s->ndel && !s->base.ctx->err) {
		size_t n = s->ndel > 1000 ? 1000 : s->ndel;
		const char **argv = malloc((n + 2) * sizeof(*argv));

		if (!argv)
			return cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
		argv[0] = "XDEL";
		argv[1] = s->key.data;
		for (size_t i = 0; i < n; i++)
			argv[2 + i] = s->dels[s->ndel - n + i];
		s->ndel -= n;
		cqi_pipe_cmd(&s->pipe, DEL_TAG, CQI_KEY(1), (int)(n + 2), argv,
			     NULL);
		free(argv);
	}
	/* out at once, not with the pipeline's next batch: a dead letter
	 * whose copy is safe lingers only as long as a round trip */
	if (!s->base.ctx->err && s->pipe.nout)
		cqi_pipe_sync(&s->pipe, s->pipe.inflight + s->pipe.nout);
	return s->base.ctx->err;
}

/* The connection went: every XADD not answered failed. */
static void pub_lost_one(void *arg, uint64_t tag)
{
	struct stream_q *s = arg;

	if (tag != DEL_TAG)
		s->base.hooks.published(s->base.hooks.arg, tag, false, pub_lost);
}

static void pub_lost_all(struct stream_q *s)
{
	cqi_pipe_abandon(&s->pipe, pub_lost_one, s);
}

/*
 * Where each group of the stream stands (for enqueue --maxlen): its last
 * delivered entry, its entries-read (-1 unknown) and how many entries
 * after that one are still there (its unread).  *n gets how many.
 */
static enum cq_err group_marks(struct stream_q *s, struct lost **out,
			       size_t *n)
{
	const char *argv[3] = { "XINFO", "GROUPS", s->key.data };
	struct cqi_reply *r = cqi_redis_cmd(s->base.ctx, CQI_KEY(2), 3, argv,
					    NULL);

	*out = NULL;
	*n = 0;
	if (!r)
		return s->base.ctx->err;
	*out = calloc(r->elements ? r->elements : 1, sizeof(**out));
	if (!*out) {
		cqi_reply_free(r);
		return cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < r->elements && !s->base.ctx->err; i++) {
		struct cqi_reply *g = r->element[i];
		struct lost *m = &(*out)[*n];
		const char *name = NULL;

		m->read = -1;
		for (size_t j = 0; j + 1 < g->elements; j += 2) {
			struct cqi_reply *k = g->element[j], *v = g->element[j + 1];

			if (field_is(k, "name") && is_str(v))
				name = v->str;
			else if (field_is(k, "last-delivered-id") && is_str(v))
				snprintf(m->last, sizeof(m->last), "%s", v->str);
			else if (field_is(k, "entries-read") &&
				 v->type == CQI_REPLY_INTEGER)
				m->read = v->integer;
		}
		if (!name || !m->last[0] ||
		    entries_after(s, m->last, false, &m->unread))
			continue;
		if (!(m->group = strdup(name))) {
			cq_seterr(s->base.ctx, CQ_ERR_NOMEM, "out of memory");
			break;
		}
		(*n)++;
	}
	cqi_reply_free(r);
	return s->base.ctx->err;
}

static void lost_free(struct lost *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++)
		free(l[i].group);
	free(l);
}

/*
 * After entries were added with MAXLEN: say which groups lost unread
 * entries to the trimming.  What a group had unread, plus what was added,
 * less what it read meanwhile, should still be there; what is not was
 * trimmed before it was read.  A group whose reading cannot be told
 * (entries-read unknown while it read) is not judged.
 */
static void warn_trimmed(struct stream_q *s)
{
	struct lost *now;
	size_t n;

	if (group_marks(s, &now, &n)) {
		lost_free(now, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct lost *was = NULL;
		long long read, gone;

		for (size_t k = 0; k < s->nlost && !was; k++)
			if (strcmp(s->lost[k].group, now[i].group) == 0)
				was = &s->lost[k];
		if (!was)
			continue;	/* a group created meanwhile */
		if (strcmp(was->last, now[i].last) == 0)
			read = 0;
		else if (was->read >= 0 && now[i].read >= 0)
			read = now[i].read - was->read;
		else
			continue;
		gone = (long long)(was->unread + s->added) - read -
		       (long long)now[i].unread;
		if (gone > 0)
			cqi_qd_notice(&s->base, "MAXLEN %lld trimmed %lld entr%s of stream '%s' that group '%s' had not read",
				s->maxlen, gone, gone == 1 ? "y" : "ies",
				sname(s), now[i].group);
	}
	/* said once: the next flush says only what is new */
	lost_free(s->lost, s->nlost);
	s->lost = now;
	s->nlost = n;
	s->added = 0;
}

static enum cq_err pub_start(struct cqi_qdriver *q, size_t window,
			     const char *exchange, bool mandatory)
{
	struct stream_q *s = S(q);

	(void)mandatory;
	if (exchange && *exchange)
		return unsupported(q, "--exchange");
	if (q->conf.tmpl &&
	    cqi_qd_keepable(q, "stream", q->conf.tmpl, true, true))
		return q->ctx->err;
	if (need_stream(s) || cqi_pipe_init(&s->pipe, q->ctx, window, on_added, s))
		return q->ctx->err;
	s->pub_ready = true;
	s->maxlen = q->conf.maxlen;
	if (s->maxlen > 0 && group_marks(s, &s->lost, &s->nlost))
		return q->ctx->err;
	return CQ_OK;
}

/* The text of a header value for a stream field (NULL: skip it). */
static const char *field_text(const struct cq_header *h, char *num, size_t len,
			      size_t *n)
{
	if (h->is_int || h->is_bool) {
		snprintf(num, len, "%lld", h->is_bool ? (long long)!!h->ival :
			 h->ival);
	} else if (h->is_float) {
		snprintf(num, len, "%.17g", h->fval);
	} else {
		*n = h->vlen ? h->vlen : h->value ? strlen(h->value) : 0;
		return h->value;
	}
	*n = strlen(num);
	return num;
}

static enum cq_err publish(struct cqi_qdriver *q, const struct cq_message *m,
			   uint64_t tag)
{
	struct stream_q *s = S(q);
	size_t cap = 2 * (m->nheaders + (m->from ? m->from->nheaders : 0)) + 12;
	const char **argv = malloc(cap * sizeof(*argv));
	size_t *lens = malloc(cap * sizeof(*lens));
	char (*nums)[32] = calloc(m->nheaders + 1, sizeof(*nums));
	struct cq_buf key = { 0 };
	const char *target = m->routing_key && *m->routing_key ?
			     m->routing_key : sname(s);
	const struct cq_field *named = m->from ?
		cq_delivery_header(m->from, HDR_BODY_FIELD) : NULL;
	/* the field the body goes back to (a dead letter says which) */
	const char *bf = named && named->kind == CQ_FIELD_STRING ? named->str :
			 BODY_FIELD;
	char maxlen[24];
	size_t n = 0;
	enum cq_err e;

	/* a header of the body's name would be a second such field, which
	 * other readers take for the body */
	for (size_t k = 0; *bf && k < m->nheaders; k++) {
		if (strcmp(m->headers[k].key, bf) != 0)
			continue;
		e = cq_seterr(q->ctx, CQ_ERR_DATA,
			      "header '%s' is the name of the stream's body field",
			      bf);
		q->hooks.published(q->hooks.arg, tag, false, CQ_REASON_BAD);
		goto out;
	}
	/* an id, a priority... of a record: an entry has no place for them */
	if (!m->from && cqi_qd_keepable(q, "stream", m, true, false)) {
		e = q->ctx->err;
		q->hooks.published(q->hooks.arg, tag, false, CQ_REASON_BAD);
		goto out;
	}
	if (!argv || !lens || !nums ||
	    !cqi_prefixed(q->ctx, target, strlen(target), &key)) {
		e = cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
#define ARG(p, l) (argv[n] = (p), lens[n++] = (l))
#define ARGS(p) ARG((p), strlen(p))
	ARGS("XADD");
	ARG(key.data, key.len);
	ARGS("NOMKSTREAM");	/* a stream that is gone stays gone */
	if (s->maxlen > 0) {
		snprintf(maxlen, sizeof(maxlen), "%lld", s->maxlen);
		ARGS("MAXLEN");
		ARGS(maxlen);
	}
	ARGS("*");
	if (*bf) {	/* "": a dead letter whose body was all its fields */
		ARGS(bf);
		if (m->body)
			ARG(m->body, m->len);
		else if (m->from)
			ARG(m->from->body, m->from->len);
		else
			ARGS("");
	}
	for (size_t i = 0; m->from && i < m->from->nheaders; i++) {
		const struct cq_field *f = &m->from->headers[i];
		bool replaced = false;

		for (size_t k = 0; k < m->nheaders && !replaced; k++)
			replaced = strcmp(m->headers[k].key, f->key) == 0;
		if (replaced || f->kind != CQ_FIELD_STRING ||
		    strcmp(f->key, bf) == 0 ||
		    strcmp(f->key, HDR_BODY_FIELD) == 0)
			continue;
		ARGS(f->key);
		ARG(f->str ? f->str : "", f->len);
	}
	for (size_t k = 0; k < m->nheaders; k++) {
		const struct cq_header *h = &m->headers[k];
		const char *v;
		size_t vl = 0;

		if (!h->value && !h->is_int && !h->is_bool && !h->is_float)
			continue;	/* a removal */
		v = field_text(h, nums[k], sizeof(nums[k]), &vl);
		ARGS(h->key);
		ARG(v ? v : "", vl);
	}
#undef ARG
#undef ARGS
	e = cqi_pipe_cmd(&s->pipe, tag, CQI_KEY(1), (int)n, argv, lens);
	if (e)
		pub_lost_all(s);
out:
	cq_buf_free(&key);
	free(argv);
	free(lens);
	free(nums);
	return e;
}

static enum cq_err pub_poll(struct cqi_qdriver *q)
{
	struct stream_q *s = S(q);

	if (s->pub_ready && (flush_dels(s) ||
			     cqi_pipe_sync(&s->pipe, s->pipe.inflight +
					   s->pipe.nout)))
		pub_lost_all(s);
	return q->ctx->err;
}

/* Send what is queued and settle it all (and the deletes that settling
 * asks for). */
static enum cq_err pub_sync(struct stream_q *s)
{
	do {
		if (s->pub_ready && (flush_dels(s) || cqi_pipe_sync(&s->pipe, 0)))
			pub_lost_all(s);
	} while (s->ndel && !s->base.ctx->err);
	return s->base.ctx->err;
}

static enum cq_err pub_flush(struct cqi_qdriver *q)
{
	struct stream_q *s = S(q);

	if (!pub_sync(s) && s->pub_ready && s->maxlen > 0)
		warn_trimmed(s);
	return q->ctx->err;
}

static enum cq_err wait_input(struct cqi_qdriver *q, int in)
{
	/* nothing to serve on Redis while waiting: send and settle first */
	if (pub_sync(S(q)))
		return q->ctx->err;
	return cqi_wait_readable(q->ctx, in);
}

static bool pub_alive(const struct cqi_qdriver *q)
{
	/* a message refused before the wire (CQ_ERR_DATA, publish) leaves
	 * the publisher as it was: the connection's errors are others */
	return !q->ctx->err || q->ctx->err == CQ_ERR_DATA;
}

static const struct cqi_qdriver_ops stream_ops = {
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
	.flush = flush,
	.hold = hold,
	.exhausted = exhausted,
	.release = release,
	.pub_start = pub_start,
	.publish = publish,
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

struct cqi_qdriver *cqi_stream_qdriver_new(struct cq_ctx *ctx,
					   const struct cqi_qconf *conf)
{
	struct stream_q *s = cqi_qdriver_alloc(ctx, sizeof(*s), &stream_ops,
					       conf);

	if (!s)
		return NULL;
	s->ring.size = sizeof(struct taken);
	s->kinds.size = 1;
	return &s->base;
}
