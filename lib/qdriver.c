/* qdriver.c - the queue backends: the table that maps a --backend name
 * (CQ_QUEUE_BACKEND) to its driver's constructor, opening a driver for a
 * verb, and what the drivers and verbs share (hook formatters, reconnects,
 * the FIFO ring, Redis key checks; qdriver_int.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"
#include "queue_list_int.h"
#include "redis_int.h"

/*
 * The backends, in the order --help lists them.  A Redis backend's
 * constructor plugs in here when its driver lands; until then choosing it
 * is a usage error.
 */
static const struct backend {
	const char *name;
	bool redis;		/* its queues live in Redis */
	cqi_qdriver_new_fn make;
} backends[] = {
	{ "amqp", false, cqi_amqp_qdriver_new },
	{ "list", true, cqi_list_qdriver_new },	/* lib/queue_list.c */
	{ "stream", true, cqi_stream_qdriver_new },
};

static const struct backend *find(const char *name)
{
	if (!name || !*name)
		name = "amqp";
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (strcmp(backends[i].name, name) == 0)
			return &backends[i];
	return NULL;
}

/* The names this build has, "amqp, list" */
static void available(char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i].make && n < len)
			n += (size_t)snprintf(buf + n, len - n, "%s%s",
					      n ? ", " : "", backends[i].name);
}

bool cq_backend_ok(const char *name, bool *redis, char *err, size_t errlen)
{
	const struct backend *b = find(name);
	char have[64];

	if (redis)
		*redis = false;
	available(have, sizeof(have));
	if (!b) {
		cqi_errbuf(err, errlen, "unknown queue backend '%s' (want amqp, list or stream)",
			   name);
		return false;
	}
	if (!b->make) {
		cqi_errbuf(err, errlen, "queue backend '%s' is not available (this build has: %s)",
			   b->name, have);
		return false;
	}
	if (redis)
		*redis = b->redis;
	return true;
}

/* ---- hooks nobody set ------------------------------------------------------- */

static bool no_deliver(void *arg, struct cq_delivery *d)
{
	(void)arg;
	(void)d;
	return false;	/* the driver frees it, unsettled */
}

static void no_settled(void *arg, bool dead, bool ok, const char *reason)
{
	(void)arg;
	(void)dead;
	(void)ok;
	(void)reason;
}

static void ctx_fail(void *arg, enum cq_err e, const char *msg)
{
	struct cq_ctx *ctx = arg;

	if (!ctx->err)
		cq_seterr(ctx, e, "%s", msg);
}

static void no_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static void no_published(void *arg, uint64_t tag, bool ok, const char *reason)
{
	(void)arg;
	(void)tag;
	(void)ok;
	(void)reason;
}

static void no_blocked(void *arg, bool blocked, const char *reason)
{
	(void)arg;
	(void)blocked;
	(void)reason;
}

void cqi_qhooks_fill(struct cqi_qhooks *h, struct cq_ctx *ctx)
{
	if (!h->arg && !h->fail) {
		h->arg = ctx;
		h->fail = ctx_fail;
	}
	if (!h->deliver)
		h->deliver = no_deliver;
	if (!h->settled)
		h->settled = no_settled;
	if (!h->notice)
		h->notice = no_notice;
	if (!h->published)
		h->published = no_published;
	if (!h->blocked)
		h->blocked = no_blocked;
}

struct cqi_qdriver *cqi_qdriver_new(struct cq_ctx *ctx,
				    const struct cqi_qconf *conf)
{
	struct cqi_qdriver *q;
	char why[200];

	if (ctx->err)
		return NULL;
	if (!cq_backend_ok(ctx->set.queue_backend, NULL, why, sizeof(why))) {
		cq_seterr(ctx, CQ_ERR_USAGE, "%s", why);
		return NULL;
	}
	q = find(ctx->set.queue_backend)->make(ctx, conf);
	if (q)
		cqi_qhooks_fill(&q->hooks, ctx);
	return q;
}

struct cqi_qdriver *cqi_qdriver_open(struct cq_ctx *ctx,
				     const struct cqi_qconf *conf,
				     const struct cqi_qhooks *hooks)
{
	struct cqi_qdriver *q = cqi_qdriver_new(ctx, conf);

	if (!q)
		return NULL;
	if (hooks) {
		q->hooks = *hooks;
		cqi_qhooks_fill(&q->hooks, ctx);
	}
	if (q->ops->connect(q)) {
		q->ops->free(q);
		return NULL;
	}
	return q;
}

void cqi_qd_fail(struct cqi_qdriver *q, enum cq_err e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	cqi_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->hooks.fail(q->hooks.arg, e, msg);
}

void cqi_qd_fail_ctx(struct cqi_qdriver *q)
{
	struct cqi_err_held h = { 0 };

	cqi_err_hold(q->ctx, &h);
	q->hooks.fail(q->hooks.arg, h.err, h.msg);
}

void cqi_qd_notice(struct cqi_qdriver *q, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	cqi_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	q->hooks.notice(q->hooks.arg, msg);
}

enum cq_err cqi_redis_dlq_slot_check(struct cq_ctx *ctx,
				     const struct cq_buf *queue_key,
				     const char *queue,
				     const struct cq_buf *dlq_key,
				     const char *dlq, const char *kind)
{
	if (cqi_key_slot(dlq_key->data, dlq_key->len) ==
	    cqi_key_slot(queue_key->data, queue_key->len))
		return CQ_OK;
	if (!cqi_redis_masters(ctx))
		return ctx->err;
	if (!cqi_redis_is_cluster(ctx))
		return CQ_OK;
	return cq_seterr(ctx, CQ_ERR_USAGE,
			 "dead-letter %s '%s' is not on the hash slot of queue '%s' in this Redis Cluster: give it the queue's hash tag (--dlq '{%s}%s')",
			 kind, dlq, queue, queue_key->data, CQ_DLQ_SUFFIX);
}

enum cq_err cqi_qd_unsupported(struct cqi_qdriver *q, const char *backend,
			       const char *opt)
{
	return cq_seterr(q->ctx, CQ_ERR_USAGE,
			 "%s: not supported by the %s backend", opt, backend);
}

enum cq_err cqi_qd_keepable(struct cqi_qdriver *q, const char *backend,
			    const struct cq_message *m, bool headers,
			    bool tmpl)
{
	size_t nh = 0;
	const char *opt;

	for (size_t i = 0; !headers && i < m->nheaders; i++)
		nh += m->headers[i].value || m->headers[i].is_int ||
		      m->headers[i].is_bool || m->headers[i].is_float;
	opt = m->message_id ? "--message-id" :
	      m->priority >= 0 ? "--priority" :
	      m->content_type ? "--content-type" :
	      m->expiration ? "--expiration" : nh ? "-H" : NULL;
	if (!opt)
		return CQ_OK;
	if (tmpl)
		return cqi_qd_unsupported(q, backend, opt);
	return cq_seterr(q->ctx, CQ_ERR_DATA,
			 "%s: not kept by the %s backend (%s)",
			 m->message_id ? "message_id" :
			 m->priority >= 0 ? "priority" :
			 m->content_type ? "content_type" :
			 m->expiration ? "expiration" : "headers", backend,
			 headers ? "an entry holds the body and headers only" :
				   "a list holds the body only");
}

bool cqi_qd_reconnect(struct cqi_qdriver *q, struct cqi_reconnected *rc,
		      unsigned *count)
{
	long long t0 = cq_now_ms();

	snprintf(rc->why, sizeof(rc->why), "%s", q->ctx->errstr);
	if (q->ops->reconnect(q, rc->from, sizeof(rc->from)))
		return false;
	rc->r = (struct cq_reconnect){ .from = rc->from, .to = q->ops->where(q),
				       .why = rc->why,
				       .ms = cq_now_ms() - t0, .n = ++*count };
	return true;
}

bool cqi_qd_rejoined(struct cqi_qdriver *q, char *from, size_t len)
{
	const char *where = "";
	unsigned long n = q->ctx->redis ? cqi_redis_rejoins(q->ctx, &where) : 0;
	bool more = n != q->rejoins;

	q->rejoins = n;
	if (from && len)
		snprintf(from, len, "%s", where);
	return more;
}

void *cqi_qdriver_alloc(struct cq_ctx *ctx, size_t size,
			const struct cqi_qdriver_ops *ops,
			const struct cqi_qconf *conf)
{
	struct cqi_qdriver *q = calloc(1, size);

	if (!q) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return NULL;
	}
	q->ops = ops;
	q->ctx = ctx;
	q->conf = *conf;
	return q;
}

void *cqi_ring_at(const struct cqi_ring *r, size_t i)
{
	return r->v + (r->head + i) % r->cap * r->size;
}

void *cqi_ring_push(struct cqi_ring *r, size_t first_cap)
{
	if (r->len == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : first_cap;
		unsigned char *v = malloc(cap * r->size);

		if (!v)
			return NULL;
		for (size_t i = 0; i < r->len; i++)
			memcpy(v + i * r->size, cqi_ring_at(r, i), r->size);
		free(r->v);
		r->v = v;
		r->cap = cap;
		r->head = 0;
	}
	r->len++;
	return cqi_ring_at(r, r->len - 1);
}

void cqi_ring_shift(struct cqi_ring *r)
{
	r->head = (r->head + 1) % r->cap;
	r->len--;
}

void cqi_ring_clear(struct cqi_ring *r)
{
	free(r->v);
	r->v = NULL;
	r->head = r->len = r->cap = 0;
}

const char *cqi_redis_refusal(const struct cqi_reply *r,
			      const char *wrongtype)
{
	static const struct { const char *prefix, *reason; } known[] = {
		{ "OOM", "refused by Redis: out of memory (maxmemory)" },
		{ "WRONGTYPE", NULL },	/* wrongtype */
		{ "READONLY", "refused by Redis: a read-only replica" },
		{ "NOPERM", "refused by Redis: no permission" },
		{ "NOAUTH", "refused by Redis: no permission" },
		{ "MASTERDOWN", "refused by Redis: no master" },
		{ "CLUSTERDOWN", "refused by Redis Cluster: the cluster is down" },
		{ "not written: ", "Redis went down" },	/* redis.c's */
	};
	const char *err = r->str ? r->str : "";

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strncmp(err, known[i].prefix, strlen(known[i].prefix)) == 0)
			return known[i].reason ? known[i].reason : wrongtype;
	return "refused by Redis";
}

enum cq_err cqi_redis_key_types(struct cq_ctx *ctx,
				const struct cq_buf *const *keys, size_t n,
				char **types)
{
	struct cqi_reply *r, *refused = NULL;
	size_t queued = 0;
	bool nomem = false;

	memset(types, 0, n * sizeof(*types));
	for (; queued < n; queued++) {
		const char *argv[2] = { "TYPE", keys[queued]->data };
		size_t lens[2] = { 4, keys[queued]->len };

		if (cqi_redis_append(ctx, CQI_KEY(1), 2, argv, lens))
			break;
	}
	/* every queued reply is read, even after an error one (a context
	 * error would stop the reading), to keep the order */
	for (size_t i = 0; i < queued && !cqi_redis_reply(ctx, &r); i++) {
		if (r->type == CQI_REPLY_ERROR && !refused) {
			refused = r;
			continue;
		}
		if (r->type != CQI_REPLY_ERROR &&
		    !(types[i] = strdup(r->str ? r->str : "")))
			nomem = true;
		cqi_reply_free(r);
	}
	if (refused && !ctx->err)
		cqi_redis_reply_err(ctx, refused, "TYPE");
	cqi_reply_free(refused);
	if (nomem && !ctx->err)
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (ctx->err)
		for (size_t i = 0; i < n; i++) {
			free(types[i]);
			types[i] = NULL;
		}
	return ctx->err;
}

char *cqi_redis_key_type(struct cq_ctx *ctx, const struct cq_buf *key)
{
	char *t;

	return cqi_redis_key_types(ctx, &key, 1, &t) ? NULL : t;
}
