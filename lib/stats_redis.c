/* stats_redis.c - cache figures: INFO, and the per-prefix hit counters
 * of --track.  Talks to Redis through the driver (redis_int.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

/* ---- INFO parsing (pure) ------------------------------------------------ */

static bool parse_ull(const char *s, size_t n, unsigned long long *out)
{
	unsigned long long v = 0;

	if (n == 0 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (!isdigit((unsigned char)s[i]))
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (~0ULL - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* "keys=1,expires=0,avg_ttl=0" of a dbN line. */
static bool parse_db(const char *v, size_t n, struct cq_redis_db *db)
{
	bool have_keys = false, have_exp = false;
	const char *end = v + n;

	while (v < end) {
		const char *comma = memchr(v, ',', (size_t)(end - v));
		const char *eq = memchr(v, '=', (size_t)(end - v));
		size_t len;

		if (!comma)
			comma = end;
		if (!eq || eq > comma)
			return false;
		len = (size_t)(comma - eq - 1);
		if (eq - v == 4 && memcmp(v, "keys", 4) == 0)
			have_keys = parse_ull(eq + 1, len, &db->keys);
		else if (eq - v == 7 && memcmp(v, "expires", 7) == 0)
			have_exp = parse_ull(eq + 1, len, &db->expires);
		v = comma + 1;
	}
	return have_keys && have_exp && db->expires <= db->keys;
}

/* The fields cq reads, and where they go. */
enum {
	F_HITS, F_MISSES, F_COMMANDS, F_USED, F_MAX, F_EVICTED, F_EXPIRED,
	F_UPTIME, F_NFIELDS
};

static unsigned long long *field_ptr(struct cq_redis_info *in, int f)
{
	switch (f) {
	case F_HITS:
		return &in->hits;
	case F_MISSES:
		return &in->misses;
	case F_COMMANDS:
		return &in->commands;
	case F_USED:
		return &in->used_memory;
	case F_MAX:
		return &in->maxmemory;
	case F_EVICTED:
		return &in->evicted;
	case F_EXPIRED:
		return &in->expired;
	default:
		return &in->uptime_s;
	}
}

static const char *const field_names[F_NFIELDS] = {
	"keyspace_hits", "keyspace_misses", "total_commands_processed",
	"used_memory", "maxmemory", "evicted_keys", "expired_keys",
	"uptime_in_seconds",
};

/* One "name:value" line; false with a message for a bad value. */
static bool info_line(const char *k, size_t kn, const char *v, size_t vn,
		      struct cq_redis_info *out, bool *seen, char *err,
		      size_t errlen)
{
	for (int f = 0; f < F_NFIELDS; f++) {
		if (strlen(field_names[f]) != kn || memcmp(k, field_names[f], kn))
			continue;
		if (!parse_ull(v, vn, field_ptr(out, f))) {
			cqi_errbuf(err, errlen, "INFO: bad value for %s", field_names[f]);
			return false;
		}
		seen[f] = true;
		return true;
	}
	if (kn == 6 && memcmp(k, "run_id", 6) == 0) {
		if (vn >= sizeof(out->run_id))
			vn = sizeof(out->run_id) - 1;
		memcpy(out->run_id, v, vn);
		out->run_id[vn] = '\0';
		return true;
	}
	if (kn > 2 && memcmp(k, "db", 2) == 0) {
		struct cq_redis_db db = { 0 };
		unsigned long long num;

		if (!parse_ull(k + 2, kn - 2, &num))
			return true;	/* not a keyspace line */
		if (num > 1000000 || !parse_db(v, vn, &db)) {
			cqi_errbuf(err, errlen, "INFO: bad keyspace line for db%llu", num);
			return false;
		}
		db.db = (int)num;
		if (__builtin_add_overflow(out->keys, db.keys, &out->keys) ||
		    __builtin_add_overflow(out->expires, db.expires, &out->expires)) {
			cqi_errbuf(err, errlen, "INFO: key counts past 2^64");
			return false;
		}
		if (out->ndb < CQ_REDIS_MAX_DBS)
			out->db[out->ndb++] = db;
	}
	return true;
}

bool cqi_redis_info_parse(const char *text, size_t len,
			 struct cq_redis_info *out, char *err, size_t errlen)
{
	const char *p = text, *end = text + len;
	bool seen[F_NFIELDS] = { false };

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *colon;

		if (eol > p && eol[-1] == '\r')
			eol--;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (*p != '#' && colon &&
		    !info_line(p, (size_t)(colon - p), colon + 1,
			       (size_t)(eol - colon - 1), out, seen, err, errlen))
			return false;
		p = nl ? nl + 1 : end;
	}
	for (int f = F_HITS; f <= F_USED; f++) {
		if (!seen[f]) {
			cqi_errbuf(err, errlen, "INFO: no %s field", field_names[f]);
			return false;
		}
	}
	return true;
}

/* ---- sampling -------------------------------------------------------------- */

void cq_cache_sample_clear(struct cq_cache_sample *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ntrack; i++)
		free(s->track[i].prefix);
	free(s->track);
	free(s->masters);
	memset(s, 0, sizeof(*s));
}

/* The entry for a prefix, added when missing; NULL out of memory. */
static struct cq_track *track_entry(struct cq_cache_sample *s, const char *p,
				    size_t n)
{
	struct cq_track *t;

	for (size_t i = 0; i < s->ntrack; i++)
		if (s->track[i].len == n && memcmp(s->track[i].prefix, p, n) == 0)
			return &s->track[i];
	t = realloc(s->track, (s->ntrack + 1) * sizeof(*t));
	if (!t)
		return NULL;
	s->track = t;
	t = &s->track[s->ntrack];
	memset(t, 0, sizeof(*t));
	t->prefix = cqi_memdup(p, n);
	if (!t->prefix)
		return NULL;
	t->len = n;
	s->ntrack++;
	return t;
}

/* HGETALL of the track hash: "hits:P" / "misses:P" fields. */
static enum cq_err take_track(struct cq_ctx *ctx, const struct cqi_reply *r,
			      struct cq_cache_sample *s)
{
	if (r->type == CQI_REPLY_ERROR)
		return cqi_redis_reply_err(ctx, r, "HGETALL " CQ_TRACK_KEY);
	if (r->type != CQI_REPLY_ARRAY)
		return cq_seterr(ctx, CQ_ERR_DATA, "%s: not a hash", CQ_TRACK_KEY);
	s->tracked = true;
	s->track_existed = r->elements > 0;
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const struct cqi_reply *f = r->element[i], *v = r->element[i + 1];
		unsigned long long num;
		struct cq_track *t;
		bool hit;

		if (f->type != CQI_REPLY_STRING || v->type != CQI_REPLY_STRING)
			continue;
		if (f->len >= 5 && memcmp(f->str, "hits:", 5) == 0)
			hit = true;
		else if (f->len >= 7 && memcmp(f->str, "misses:", 7) == 0)
			hit = false;
		else
			continue;
		if (!parse_ull(v->str, v->len, &num))
			continue;	/* someone else's field: skip it */
		t = track_entry(s, f->str + (hit ? 5 : 7), f->len - (hit ? 5 : 7));
		if (!t)
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		if (hit)
			t->hits = num;
		else
			t->misses = num;
	}
	return CQ_OK;
}

/* in's figures added to sum (keys per db by db number); a sum's run_id
 * changes when any master's does. */
static void info_add(struct cq_redis_info *sum, const struct cq_redis_info *in)
{
	size_t n = strlen(sum->run_id), i, j;

	sum->hits += in->hits;
	sum->misses += in->misses;
	sum->commands += in->commands;
	sum->evicted += in->evicted;
	sum->expired += in->expired;
	sum->used_memory += in->used_memory;
	sum->maxmemory += in->maxmemory;
	sum->keys += in->keys;
	sum->expires += in->expires;
	if (in->uptime_s > sum->uptime_s)
		sum->uptime_s = in->uptime_s;
	for (i = 0; i < in->ndb; i++) {
		for (j = 0; j < sum->ndb && sum->db[j].db != in->db[i].db; j++)
			;
		if (j == sum->ndb && sum->ndb == CQ_REDIS_MAX_DBS)
			continue;
		if (j == sum->ndb)
			sum->db[sum->ndb++] = (struct cq_redis_db){ .db = in->db[i].db };
		sum->db[j].keys += in->db[i].keys;
		sum->db[j].expires += in->db[i].expires;
	}
	/* 6 characters of each run_id (a restart shows in the sum's) */
	snprintf(sum->run_id + n, sizeof(sum->run_id) - n, "%.6s", in->run_id);
}

/* Master m's INFO reply into info. */
static enum cq_err take_info(struct cq_ctx *ctx, size_t m,
			     struct cq_redis_info *info)
{
	struct cqi_reply *r;
	char err[200];
	enum cq_err e = CQ_OK;

	if (cqi_redis_reply(ctx, &r))
		return ctx->err;
	if (r->type == CQI_REPLY_ERROR)
		e = cqi_redis_reply_err(ctx, r, "INFO");
	else if (r->type != CQI_REPLY_STRING)
		e = cq_seterr(ctx, CQ_ERR_DATA, "INFO: unexpected reply");
	else if (!cqi_redis_info_parse(r->str, r->len, info, err, sizeof(err)))
		e = cq_seterr(ctx, CQ_ERR_DATA, "Redis at %s: %s",
			      cqi_redis_master_where(ctx, m), err);
	cqi_reply_free(r);
	return e;
}

enum cq_err cq_cache_sample(struct cq_ctx *ctx, struct cq_cache_sample *out)
{
	const char *info[] = { "INFO" };
	const char *hget[] = { "HGETALL", CQ_TRACK_KEY };
	bool track = ctx->set.track;
	struct cqi_reply *r = NULL;
	size_t nm;
	enum cq_err e;

	memset(out, 0, sizeof(*out));
	nm = cqi_redis_masters(ctx);
	if (!nm)
		return ctx->err;
	if (nm > 1 && !(out->masters = calloc(nm, sizeof(*out->masters))))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	/* INFO first: the HGETALL lookup shows in the next sample */
	e = cqi_redis_append(ctx, CQI_MASTERS, 1, info, NULL);
	if (!e && track)
		e = cqi_redis_append(ctx, CQI_KEY(1), 2, hget, NULL);
	out->at_ms = cq_now_ms();
	for (size_t m = 0; m < nm && !e; m++) {
		struct cq_redis_master *rm = out->masters ? &out->masters[m] : NULL;

		e = take_info(ctx, m, rm ? &rm->info : &out->info);
		if (e || !rm)
			continue;
		snprintf(rm->where, sizeof(rm->where), "%s",
			 cqi_redis_master_where(ctx, m));
		info_add(&out->info, &rm->info);
		out->nmasters++;
	}
	if (track && !e && !cqi_redis_reply(ctx, &r)) {
		if (!e)
			e = take_track(ctx, r, out);
		cqi_reply_free(r);
	}
	if (ctx->err)
		e = ctx->err;
	if (e)
		cq_cache_sample_clear(out);
	return e;
}

/* ---- figures (pure) ----------------------------------------------------------- */

static double ratio(double num, double den)
{
	return den > 0 ? num / den : NAN;
}

/* b - a for counters; a counter that went back was reset: count from 0. */
static double delta(unsigned long long a, unsigned long long b)
{
	return b >= a ? (double)(b - a) : (double)b;
}

static bool add(struct cq_metrics *ms, const char *name, double v)
{
	return cqi_metrics_add(ms, name, NULL, 0, v);
}

static const struct cq_track *find_track(const struct cq_cache_sample *s,
					 const struct cq_track *t)
{
	for (size_t i = 0; s && i < s->ntrack; i++)
		if (s->track[i].len == t->len &&
		    memcmp(s->track[i].prefix, t->prefix, t->len) == 0)
			return &s->track[i];
	return NULL;
}

static bool track_figures(const struct cq_cache_sample *prev,
			  const struct cq_cache_sample *cur,
			  struct cq_metrics *ms)
{
	bool ok = true;

	for (size_t i = 0; i < cur->ntrack && ok; i++) {
		const struct cq_track *t = &cur->track[i], *p = find_track(prev, t);
		double h = p ? delta(p->hits, t->hits) : (double)t->hits;
		double m = p ? delta(p->misses, t->misses) : (double)t->misses;

		ok = cqi_metrics_add(ms, "prefix_hit_rate", t->prefix, t->len,
				    ratio(h, h + m)) &&
		     cqi_metrics_add(ms, "prefix_hits", t->prefix, t->len, h) &&
		     cqi_metrics_add(ms, "prefix_misses", t->prefix, t->len, m) &&
		     cqi_metrics_add(ms, "prefix_hits_total", t->prefix, t->len,
				    (double)t->hits) &&
		     cqi_metrics_add(ms, "prefix_misses_total", t->prefix, t->len,
				    (double)t->misses);
	}
	return ok;
}

static bool db_figures(const struct cq_redis_info *in, struct cq_metrics *ms)
{
	bool ok = true;

	for (size_t i = 0; i < in->ndb && ok; i++) {
		char num[16];
		int n = snprintf(num, sizeof(num), "%d", in->db[i].db);

		ok = cqi_metrics_add(ms, "db_keys", num, (size_t)n,
				    (double)in->db[i].keys) &&
		     cqi_metrics_add(ms, "db_keys_no_ttl", num, (size_t)n,
				    (double)(in->db[i].keys - in->db[i].expires));
	}
	return ok;
}

/* Master m of a cluster: its figures, labelled with its host:port, over
 * the interval when prev saw it (and it did not restart), else since it
 * started. */
static bool master_figures(const struct cq_cache_sample *prev,
			   const struct cq_cache_sample *cur,
			   const struct cq_redis_master *m,
			   struct cq_metrics *ms)
{
	const struct cq_redis_info *a = NULL, *b = &m->info;
	struct cq_redis_info zero = { 0 };
	const char *w = m->where;
	size_t wl = strlen(w);
	double secs, hits, misses;

	for (size_t i = 0; prev && i < prev->nmasters && !a; i++)
		if (strcmp(prev->masters[i].where, w) == 0)
			a = &prev->masters[i].info;
	if (a && (strcmp(a->run_id, b->run_id) != 0 || b->hits < a->hits ||
		  b->misses < a->misses))
		a = NULL;
	secs = a ? (double)(cur->at_ms - prev->at_ms) / 1000.0 :
	       (double)b->uptime_s;
	if (!a)
		a = &zero;
	hits = delta(a->hits, b->hits);
	misses = delta(a->misses, b->misses);
	return cqi_metrics_add(ms, "master_hit_rate", w, wl,
			       ratio(hits, hits + misses)) &&
	       cqi_metrics_add(ms, "master_ops", w, wl,
			       ratio(delta(a->commands, b->commands), secs)) &&
	       cqi_metrics_add(ms, "master_used_memory", w, wl,
			       (double)b->used_memory) &&
	       cqi_metrics_add(ms, "master_maxmemory", w, wl,
			       (double)b->maxmemory) &&
	       cqi_metrics_add(ms, "master_evicted", w, wl,
			       ratio(delta(a->evicted, b->evicted), secs)) &&
	       cqi_metrics_add(ms, "master_expired", w, wl,
			       ratio(delta(a->expired, b->expired), secs)) &&
	       cqi_metrics_add(ms, "master_evicted_total", w, wl,
			       (double)b->evicted) &&
	       cqi_metrics_add(ms, "master_keys", w, wl, (double)b->keys) &&
	       cqi_metrics_add(ms, "master_keys_no_ttl", w, wl,
			       (double)(b->keys - b->expires));
}

static bool masters_figures(const struct cq_cache_sample *prev,
			    const struct cq_cache_sample *cur,
			    struct cq_metrics *ms)
{
	bool ok = true;

	for (size_t i = 0; i < cur->nmasters && ok; i++)
		ok = master_figures(prev, cur, &cur->masters[i], ms);
	return ok;
}

bool cq_cache_figures(const struct cq_cache_sample *prev,
		      const struct cq_cache_sample *cur,
		      struct cq_metrics *ms)
{
	const struct cq_redis_info *a = prev ? &prev->info : NULL, *b = &cur->info;
	double secs, hits, misses;
	bool restarted = a && (strcmp(a->run_id, b->run_id) != 0 ||
			       b->hits < a->hits || b->misses < a->misses);
	struct cq_redis_info zero = { 0 };

	if (!a || restarted) {
		/* since start: the counters over the uptime */
		a = &zero;
		prev = NULL;
		secs = (double)b->uptime_s;
	} else {
		secs = (double)(cur->at_ms - prev->at_ms) / 1000.0;
	}
	hits = delta(a->hits, b->hits);
	misses = delta(a->misses, b->misses);
	/* our own HGETALL of the track hash is not the application's */
	if (prev && prev->tracked) {
		if (prev->track_existed && hits >= 1)
			hits -= 1;
		else if (!prev->track_existed && misses >= 1)
			misses -= 1;
	}
	/* the sample's interval is the one its rates were computed over */
	ms->interval_s = prev ? secs : 0;
	return add(ms, "hit_rate", ratio(hits, hits + misses)) &&
	       add(ms, "hit_rate_total", ratio((double)b->hits,
					       (double)b->hits + (double)b->misses)) &&
	       add(ms, "hits", hits) && add(ms, "misses", misses) &&
	       add(ms, "hits_total", (double)b->hits) &&
	       add(ms, "misses_total", (double)b->misses) &&
	       add(ms, "ops", ratio(delta(a->commands, b->commands), secs)) &&
	       add(ms, "used_memory", (double)b->used_memory) &&
	       add(ms, "maxmemory", (double)b->maxmemory) &&
	       add(ms, "evicted", ratio(delta(a->evicted, b->evicted), secs)) &&
	       add(ms, "expired", ratio(delta(a->expired, b->expired), secs)) &&
	       add(ms, "evicted_keys", delta(a->evicted, b->evicted)) &&
	       add(ms, "expired_keys", delta(a->expired, b->expired)) &&
	       add(ms, "evicted_total", (double)b->evicted) &&
	       add(ms, "expired_total", (double)b->expired) &&
	       add(ms, "keys", (double)b->keys) &&
	       add(ms, "keys_no_ttl", (double)(b->keys - b->expires)) &&
	       db_figures(b, ms) && track_figures(prev, cur, ms) &&
	       masters_figures(prev, cur, ms);
}

/* ---- --track ------------------------------------------------------------------- */

/* Send HINCRBY CQ_TRACK_KEY kind:PREFIX n without waiting for its reply
 * (the next read skips it). */
static bool track_send(struct cq_ctx *ctx, const char *kind, size_t n)
{
	const char *pre = ctx->set.prefix ? ctx->set.prefix : "";
	struct cq_buf field = { 0 };
	char num[32];
	const char *argv[4] = { "HINCRBY", CQ_TRACK_KEY, NULL, num };
	size_t lens[4] = { 7, strlen(CQ_TRACK_KEY), 0, 0 };
	enum cq_err e;

	if (!cq_buf_append(&field, kind, strlen(kind)) ||
	    !cq_buf_append(&field, pre, strlen(pre))) {
		cq_buf_free(&field);
		return false;
	}
	lens[3] = (size_t)snprintf(num, sizeof(num), "%zu", n);
	argv[2] = field.data;
	lens[2] = field.len;
	e = cqi_redis_send_noreply(ctx, CQI_KEY(1), 4, argv, lens);
	cq_buf_free(&field);
	return e == CQ_OK;
}

void cqi_stats_track(struct cq_ctx *ctx, size_t hits, size_t misses)
{
	if (!ctx->set.track || ctx->err || !ctx->redis ||
	    (hits == 0 && misses == 0))
		return;
	if (hits && !track_send(ctx, "hits:", hits))
		return;
	if (misses)
		track_send(ctx, "misses:", misses);
}
