/* fetch.c - cache-aside around a command, with stampede protection:
 * one caller computes under a lock while the others wait for its value;
 * stale-while-revalidate; XFetch probabilistic early refresh.
 *
 * KEY holds the plain value.  With --stale or --beta, a hash beside it
 * (derived key "meta", same cluster slot) holds "expiry" (epoch ms at which
 * the value goes stale) and "delta" (ms the command took). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

#define DEFAULT_LOCK_TTL 30000
#define DEFAULT_MAX_SIZE (64ULL << 20)

struct fetch {
	struct cq_ctx *ctx;
	const struct cq_fetch_opts *o;
	struct cq_fetch_result *res;
	const char *key;	/* the user's key */
	struct cq_buf data, lock, meta;	/* full key names */
	struct cqi_lock lk;
	bool want_meta;
	/* what the last lookup found */
	struct cq_value val;
	long long expiry, delta;	/* -1 when unknown */
	bool printed, ran;	/* past these, no fail-open */
	bool gave_up;		/* the wait ran out: not Redis's fault */
	bool stopped;		/* a stop request ended the command */
};

static void warn(struct fetch *f, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void warn(struct fetch *f, const char *fmt, ...)
{
	size_t used = strlen(f->res->warning);
	va_list ap;

	if (used && used + 2 < sizeof(f->res->warning)) {
		strcpy(f->res->warning + used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	cqi_vformat(f->res->warning + used, sizeof(f->res->warning) - used, fmt, ap);
	va_end(ap);
}

static bool emit(struct fetch *f, const void *p, size_t n)
{
	f->printed = true;
	if (f->res->output_failed || !f->o->sink || !n)
		return !f->res->output_failed;
	if (!f->o->sink(f->o->arg, p, n))
		f->res->output_failed = true;
	return !f->res->output_failed;
}

/* A connection-level failure, where fail-open applies. */
static bool redis_down(const struct cq_ctx *ctx)
{
	return ctx->err == CQ_ERR_UNAVAILABLE || ctx->err == CQ_ERR_TEMPFAIL;
}

static long long reply_ll(const struct cqi_reply *r)
{
	char *end;
	long long v;

	if (!r || r->type != CQI_REPLY_STRING || !r->len)
		return -1;
	v = strtoll(r->str, &end, 10);
	return *end ? -1 : v;
}

/* GET the value (and its metadata) in one round trip. */
static enum cq_err lookup(struct fetch *f)
{
	const char *argv[4] = { "GET", f->data.data };
	size_t lens[4] = { 3, f->data.len };
	struct cqi_reply *r;
	enum cq_err e;

	cq_value_clear(&f->val);
	f->expiry = f->delta = -1;
	if (cqi_redis_append(f->ctx, CQI_KEY(1), 2, argv, lens))
		return f->ctx->err;
	if (f->want_meta) {
		argv[0] = "HMGET", lens[0] = 5;
		argv[1] = f->meta.data, lens[1] = f->meta.len;
		argv[2] = "expiry", lens[2] = 6;
		argv[3] = "delta", lens[3] = 5;
		if (cqi_redis_append(f->ctx, CQI_KEY(1), 4, argv, lens))
			return f->ctx->err;
	}
	if (cqi_redis_reply(f->ctx, &r))
		return f->ctx->err;
	e = cqi_take_value(f->ctx, f->key, r, &f->val);
	cqi_reply_free(r);
	if (!f->want_meta)
		return e;
	if (cqi_redis_reply(f->ctx, &r))
		return f->ctx->err;
	if (r->type == CQI_REPLY_ARRAY && r->elements == 2) {
		f->expiry = reply_ll(r->element[0]);
		f->delta = reply_ll(r->element[1]);
	}
	cqi_reply_free(r);
	return e;
}

/* Write the value, then its metadata, pipelined; failures only warn. */
static void store(struct fetch *f, const char *val, size_t len,
		  long long delta)
{
	char ttls[32], mttl[32], exps[32], deltas[32];
	const char *argv[6] = { "SET", f->data.data, val, "PX", ttls };
	size_t lens[6] = { 3, f->data.len, len, 2, 0 };
	long long ttl = cqi_jittered_ttl(&f->o->set);
	struct cqi_err_held h;
	size_t n = 1;

	snprintf(ttls, sizeof(ttls), "%lld", ttl + f->o->stale_ms);
	lens[4] = strlen(ttls);
	if (cqi_redis_append(f->ctx, CQI_KEY(1), 5, argv, lens))
		goto fail;
	if (f->want_meta) {
		snprintf(exps, sizeof(exps), "%lld", cq_wall_ms() + ttl);
		snprintf(deltas, sizeof(deltas), "%lld", delta);
		snprintf(mttl, sizeof(mttl), "%s", ttls);
		argv[0] = "HSET", lens[0] = 4;
		argv[1] = f->meta.data, lens[1] = f->meta.len;
		argv[2] = "expiry", lens[2] = 6;
		argv[3] = exps, lens[3] = strlen(exps);
		argv[4] = "delta", lens[4] = 5;
		argv[5] = deltas, lens[5] = strlen(deltas);
		if (cqi_redis_append(f->ctx, CQI_KEY(1), 6, argv, lens))
			goto fail;
		argv[0] = "PEXPIRE", lens[0] = 7;
		argv[2] = mttl, lens[2] = strlen(mttl);
		if (cqi_redis_append(f->ctx, CQI_KEY(1), 3, argv, lens))
			goto fail;
		n = 3;
	}
	for (size_t i = 0; i < n; i++) {
		struct cqi_reply *r;

		if (cqi_redis_reply(f->ctx, &r))
			goto fail;
		if (r->type == CQI_REPLY_ERROR && !f->ctx->err)
			cqi_redis_reply_err(f->ctx, r, "caching the output");
		cqi_reply_free(r);
	}
	if (!f->ctx->err)
		return;
fail:
	warn(f, "the output was not cached: %s", cqi_err_warning(f->ctx, &h));
}

static bool sink_child(void *arg, const void *p, size_t n)
{
	return emit(arg, p, n);
}

static long long lock_ttl(const struct fetch *f);

static enum cq_err stopped(struct fetch *f, const char *what)
{
	f->stopped = true;
	return cq_seterr(f->ctx, CQ_ERR_TEMPFAIL, "stopped by %s: %s",
			 cq_stop_name(), what);
}

/*
 * Read the command's output while it runs, renewing our lock every third
 * of its TTL: a command slower than --lock-ttl keeps the lock, and a
 * caller that dies lets it go within one TTL.  Returns the exit code.
 */
static int wait_child(struct fetch *f, struct cqi_child *ch)
{
	long long every = lock_ttl(f) / 3, next = cq_now_ms() + every;

	while (ch->fd >= 0) {
		struct pollfd p = { .fd = ch->fd, .events = POLLIN };
		long long left = next - cq_now_ms();
		int r = poll(&p, 1, f->lk.held ? (int)(left > 0 ? left : 0) : -1);
		struct cqi_err_held h;
		bool still;

		if (r < 0 && errno == EINTR && cq_stop_requested()) {
			f->stopped = true;
			return cqi_child_stop(ch);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r != 0) {
			cqi_child_read(ch);
			continue;
		}
		next = cq_now_ms() + every;
		if (cqi_lock_extend(f->ctx, f->lock.data, f->lock.len, lock_ttl(f),
				    &f->lk, &still) || !still) {
			const char *why = cqi_err_warning(f->ctx, &h);

			warn(f, "lost the lock while the command ran%s%s",
			     h.err ? ": " : "", why);
			f->lk.held = false;
		}
	}
	return cqi_child_finish(ch);
}

/*
 * Run the command; cache its stdout when it exits 0 (and store is set),
 * and print it.  Output over max_size streams straight through uncached.
 */
static enum cq_err compute(struct fetch *f, bool do_store, bool print)
{
	struct cqi_child ch = { .sink = print ? sink_child : NULL,
				.sink_arg = f };
	long long t0 = cq_now_ms();
	int code;

	ch.max = f->o->max_size ? f->o->max_size : DEFAULT_MAX_SIZE;
	f->ran = true;
	if (cqi_child_start(f->ctx, f->o->argv, f->key, false, &ch))
		return f->ctx->err;
	code = wait_child(f, &ch);
	if (f->stopped) {
		/* nothing cached, the lock released for the next caller */
		if (f->lk.held)
			cqi_lock_release(f->ctx, f->lock.data, f->lock.len,
					 &f->lk);
		cqi_child_clear(&ch);
		return stopped(f, "the command was stopped, nothing cached");
	}
	f->res->exit_code = code;
	f->res->too_big = ch.too_big;
	if (ch.too_big)
		warn(f, "the output is larger than --max-size, not cached");
	if (do_store && code == 0 && !ch.too_big)
		store(f, ch.out.data ? ch.out.data : "", ch.out.len,
		      cq_now_ms() - t0);
	if (f->lk.held && cqi_lock_release(f->ctx, f->lock.data, f->lock.len,
					   &f->lk)) {
		struct cqi_err_held h;

		warn(f, "could not release the lock: %s",
		     cqi_err_warning(f->ctx, &h));
	}
	if (print && !ch.too_big)
		emit(f, ch.out.data, ch.out.len);
	cqi_child_clear(&ch);
	return CQ_OK;
}

static long long lock_ttl(const struct fetch *f)
{
	return f->o->lock_ttl_ms > 0 ? f->o->lock_ttl_ms : DEFAULT_LOCK_TTL;
}

/*
 * A miss: take the lock and compute, or wait for whoever holds it.  The
 * cache is read again after the lock is won, in case the holder before
 * us finished between our GET and our SET NX.
 */
static enum cq_err miss(struct fetch *f)
{
	long long wait = f->o->wait_ms > 0 ? f->o->wait_ms : lock_ttl(f);
	long long deadline = cq_now_ms() + wait, pause = 10;
	bool won;

	for (;;) {
		if (cqi_lock_try(f->ctx, f->lock.data, f->lock.len, lock_ttl(f),
				 &f->lk, &won))
			return f->ctx->err;
		if (won) {
			if (lookup(f))
				return f->ctx->err;
			if (!f->val.found) {
				f->res->how = CQ_FETCH_COMPUTED;
				return compute(f, true, true);
			}
			cqi_lock_release(f->ctx, f->lock.data, f->lock.len, &f->lk);
			f->res->how = CQ_FETCH_WAITED;
			emit(f, f->val.data, f->val.len);
			return f->ctx->err;
		}
		if (cq_now_ms() >= deadline) {
			f->gave_up = true;
			return cq_seterr(f->ctx, CQ_ERR_TEMPFAIL,
					 "waited %lldms for another caller to compute '%s' (--wait, --lock-ttl)",
					 wait, f->key);
		}
		cqi_sleep_ms(pause);
		if (cq_stop_requested())
			return stopped(f, "no longer waiting for another caller");
		pause = pause * 3 / 2 > 200 ? 200 : pause * 3 / 2;
		if (lookup(f))
			return f->ctx->err;
		if (f->val.found) {
			f->res->how = CQ_FETCH_WAITED;
			emit(f, f->val.data, f->val.len);
			return CQ_OK;
		}
	}
}

/*
 * Refresh in a detached process: double fork and setsid, so it outlives
 * us, is no child of our parent, and holds none of its pipes open (the
 * caller's $(...) must not wait for it).  It opens its own connection.
 */
static void refresh_in_background(struct fetch *f)
{
	pid_t pid = fork();
	int fd, status;
	bool won;

	if (pid < 0) {
		warn(f, "cannot start the background refresh: %s", strerror(errno));
		return;
	}
	if (pid > 0) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return;
	}
	setsid();
	if (fork() != 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	/* the parent's socket is not ours to use: drop it, open our own */
	if (f->ctx->redis_close)
		f->ctx->redis_close(f->ctx);
	cqi_err_drop(f->ctx);
	if (cq_redis_connect(f->ctx) == CQ_OK &&
	    cqi_lock_try(f->ctx, f->lock.data, f->lock.len, lock_ttl(f), &f->lk,
			 &won) == CQ_OK && won)
		compute(f, true, false);
	_exit(0);
}

/* XFetch (Vattani et al., VLDB 2015): recompute early with a probability
 * that rises as expiry nears, scaled by how long a recompute takes. */
static bool xfetch_early(const struct fetch *f, long long now)
{
	double u;

	if (f->o->beta <= 0 || f->expiry < 0 || f->delta < 0)
		return false;
	u = (double)(cqi_rand_below(1ULL << 53) + 1) / (double)(1ULL << 53);
	return (double)now - (double)f->delta * f->o->beta * log(u) >=
	       (double)f->expiry;
}

static enum cq_err hit(struct fetch *f)
{
	long long now = cq_wall_ms();
	bool stale = f->expiry >= 0 && now >= f->expiry;
	bool early = !stale && xfetch_early(f, now);
	bool won;

	if (!stale && !early) {
		f->res->how = CQ_FETCH_HIT;
		emit(f, f->val.data, f->val.len);
		return CQ_OK;
	}
	if (stale && f->o->stale_ms <= 0) {
		/* past expiry without --stale (meta from an older run): a miss */
		cq_value_clear(&f->val);
		return miss(f);
	}
	if (f->o->stale_ms > 0) {
		f->res->how = stale ? CQ_FETCH_STALE : CQ_FETCH_HIT;
		emit(f, f->val.data, f->val.len);
		refresh_in_background(f);
		return CQ_OK;
	}
	/* early refresh in the foreground, by whoever gets the lock */
	if (cqi_lock_try(f->ctx, f->lock.data, f->lock.len, lock_ttl(f), &f->lk,
			 &won))
		return f->ctx->err;
	if (!won) {
		f->res->how = CQ_FETCH_HIT;
		emit(f, f->val.data, f->val.len);
		return CQ_OK;
	}
	f->res->how = CQ_FETCH_COMPUTED;
	return compute(f, true, true);
}

/* Redis is unusable: run the command without the cache (fail-open). */
static enum cq_err uncached(struct fetch *f)
{
	struct cqi_err_held h;

	if (f->o->fail_closed)
		return f->ctx->err;
	warn(f, "%s; running the command without the cache",
	     cqi_err_warning(f->ctx, &h));
	f->lk.held = false;
	f->res->how = CQ_FETCH_UNCACHED;
	return compute(f, false, true);
}

static enum cq_err names(struct fetch *f)
{
	struct cqi_gen gen = { .found = true };

	if (f->o->ns && cqi_ns_gen(f->ctx, f->o->ns, true, &gen))
		return f->ctx->err;
	if (!cqi_data_key(f->ctx, f->o->ns, &gen, f->key, strlen(f->key),
			  &f->data) ||
	    !cqi_derived_key(f->ctx->set.prefix, f->data.data, f->data.len,
			    "lock", &f->lock) ||
	    !cqi_derived_key(f->ctx->set.prefix, f->data.data, f->data.len,
			    "meta", &f->meta))
		return cq_seterr(f->ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

enum cq_err cq_fetch(struct cq_ctx *ctx, const char *key,
		     const struct cq_fetch_opts *o, struct cq_fetch_result *res)
{
	struct fetch f = { .ctx = ctx, .o = o, .res = res, .key = key };
	enum cq_err e;

	memset(res, 0, sizeof(*res));
	f.want_meta = o->stale_ms > 0 || o->beta > 0;
	if (!o->argv || !o->argv[0])
		return cq_seterr(ctx, CQ_ERR_USAGE, "no command to run");
	/* the caller connected, or tried: its error says why not */
	e = ctx->redis ? CQ_OK : ctx->err ? ctx->err :
	    cq_seterr(ctx, CQ_ERR_UNAVAILABLE, "not connected to Redis");
	if (!e)
		e = names(&f);
	if (!e)
		e = lookup(&f);
	if (!e) {
		cqi_stats_track(ctx, f.val.found, !f.val.found);
		e = f.val.found ? hit(&f) : miss(&f);
	}
	/* fail-open only while nothing has been printed */
	if (e && redis_down(ctx) && !f.printed && !f.ran && !f.gave_up &&
	    !f.stopped)
		e = uncached(&f);
	if (f.lk.held) {
		struct cqi_err_held keep = { 0 };

		/* the run's own error stands; a failed release is dropped */
		cqi_err_hold(ctx, &keep);
		cqi_lock_release(ctx, f.lock.data, f.lock.len, &f.lk);
		cqi_err_drop(ctx);
		cqi_err_restore(ctx, &keep);
	}
	cq_value_clear(&f.val);
	cq_buf_free(&f.data);
	cq_buf_free(&f.lock);
	cq_buf_free(&f.meta);
	return ctx->err;
}
