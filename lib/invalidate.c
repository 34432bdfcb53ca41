/* invalidate.c - UNLINK by key, by pattern (SCAN), by tag (SSCAN), and
 * namespace generation bumps.  Never KEYS, never a multi-key command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

#define DEFAULT_COUNT 1000
#define MIN_COUNT 100
#define MAX_COUNT 5000

struct inval {
	struct cq_ctx *ctx;
	const struct cq_inval_opts *o;
	struct cq_inval_stats *st;
	struct cqi_throttle thr;
	long long t0, last_progress;
	size_t pending;		/* UNLINK replies not read yet */
	size_t strip;		/* bytes of prefix (and namespace) to hide */
	uint64_t every;		/* with --rate: send after this many keys */
	bool out_failed;
};

static void inval_start(struct inval *iv, struct cq_ctx *ctx,
			const struct cq_inval_opts *o,
			struct cq_inval_stats *st)
{
	memset(st, 0, sizeof(*st));
	memset(iv, 0, sizeof(*iv));
	iv->ctx = ctx;
	iv->o = o;
	iv->st = st;
	iv->t0 = iv->last_progress = cq_now_ms();
	cqi_throttle_init(&iv->thr, o->rate);
	iv->every = o->rate / 20 > 1 ? (uint64_t)(o->rate / 20) : 1;
}

static void progress(struct inval *iv)
{
	long long now = cq_now_ms();

	iv->st->elapsed_ms = now - iv->t0;
	if (iv->o->on_progress && now - iv->last_progress >= 100) {
		iv->last_progress = now;
		iv->o->on_progress(iv->o->arg, iv->st);
	}
}

/* Read the UNLINK replies queued so far. */
static enum cq_err drain(struct inval *iv)
{
	enum cq_err e = CQ_OK;

	for (; iv->pending; iv->pending--) {
		struct cqi_reply *r;

		if (cqi_redis_reply(iv->ctx, &r))
			return iv->ctx->err;
		if (r->type == CQI_REPLY_INTEGER)
			iv->st->deleted += (uint64_t)r->integer;
		else if (r->type == CQI_REPLY_ERROR && !e)
			e = cqi_redis_reply_err(iv->ctx, r, "UNLINK");
		cqi_reply_free(r);
	}
	return e;
}

static enum cq_err queue_unlink(struct inval *iv, const char *key, size_t len)
{
	const char *argv[2] = { "UNLINK", key };
	size_t lens[2] = { 6, len };

	if (cqi_redis_append(iv->ctx, CQI_KEY(1), 2, argv, lens))
		return iv->ctx->err;
	iv->pending++;
	return CQ_OK;
}

/* One key found by a scan: list it, or queue its UNLINK. */
static enum cq_err found_key(struct inval *iv, const char *key, size_t len)
{
	iv->st->matched++;
	if (iv->o->dry_run) {
		size_t s = len >= iv->strip ? iv->strip : 0;

		if (iv->o->on_key && !iv->out_failed &&
		    !iv->o->on_key(iv->o->arg, key + s, len - s))
			iv->out_failed = true;
		return iv->out_failed ? cq_seterr(iv->ctx, CQ_ERR_IO,
						  "cannot write the key list") :
			CQ_OK;
	}
	if (queue_unlink(iv, key, len))
		return iv->ctx->err;
	if (iv->o->rate > 0) {
		if (iv->st->matched % iv->every == 0 && drain(iv))
			return iv->ctx->err;
		cqi_throttle_wait(&iv->thr, 1);
		progress(iv);
	}
	return CQ_OK;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Without --count, size the batches so that one round trip (the previous
 * batch's UNLINKs, then a SCAN) keeps the server busy for about 1-2 ms:
 * big enough to need few round trips, small enough that other clients
 * never wait long behind us.  A fast server gets up to MAX_COUNT, a slow
 * or busy one as little as MIN_COUNT.
 */
static size_t adapt_count(size_t n, long long rtt_us)
{
	if (rtt_us > 2500 && n > MIN_COUNT)
		n = n * 2 / 3 > MIN_COUNT ? n * 2 / 3 : MIN_COUNT;
	else if (rtt_us < 1000 && n < MAX_COUNT)
		n = n * 3 / 2 < MAX_COUNT ? n * 3 / 2 : MAX_COUNT;
	return n;
}

/* One SCAN or SSCAN reply: the next cursor into cursor (of 32 bytes), and
 * each key found listed or queued for UNLINK. */
static enum cq_err scan_reply(struct inval *iv, struct cqi_reply *r,
			      const char *cmd, const char *key, char *cursor)
{
	struct cqi_reply *keys;
	enum cq_err e = CQ_OK;

	if (r->type == CQI_REPLY_ERROR && strstr(r->str, "WRONGTYPE"))
		return cq_seterr(iv->ctx, CQ_ERR_DATA,
				 "'%s' holds something other than a set", key);
	if (r->type == CQI_REPLY_ERROR)
		return cqi_redis_reply_err(iv->ctx, r, cmd);
	if (r->type != CQI_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != CQI_REPLY_STRING ||
	    r->element[0]->len >= 32 ||
	    r->element[1]->type != CQI_REPLY_ARRAY)
		return cq_seterr(iv->ctx, CQ_ERR_INTERNAL, "%s: unexpected reply",
				 cmd);
	memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
	keys = r->element[1];
	iv->st->scanned += keys->elements;
	for (size_t i = 0; i < keys->elements && !e; i++)
		if (keys->element[i]->type == CQI_REPLY_STRING)
			e = found_key(iv, keys->element[i]->str,
				      keys->element[i]->len);
	return e;
}

/*
 * The scan loop shared by pattern and tag mode: argv is SCAN/SSCAN with
 * the cursor at argv[cursor_at] and the COUNT value last.  SCAN walks
 * every master, each with a cursor of its own, all in step: a round sends
 * one SCAN to each master not done, behind the previous round's UNLINKs
 * (each routed to the node that owns its key), so a round costs one round
 * trip however many masters there are.  SSCAN walks the one set.
 */
static enum cq_err scan_loop(struct inval *iv, int argc, const char **argv,
			     size_t *lens, int cursor_at)
{
	bool masters = cursor_at == 1;
	size_t nm = masters ? cqi_redis_masters(iv->ctx) : 1, left = nm;
	char (*cursor)[32] = calloc(nm ? nm : 1, sizeof(*cursor));
	struct cqi_reply **rs = calloc(nm ? nm : 1, sizeof(*rs));
	char count[24];
	size_t n = iv->o->count ? iv->o->count : DEFAULT_COUNT;
	enum cq_err e = CQ_OK;

	if (!cursor || !rs) {
		free(cursor);
		free(rs);
		return cq_seterr(iv->ctx, CQ_ERR_NOMEM, "out of memory");
	}
	if (!nm) {
		free(cursor);
		free(rs);
		return iv->ctx->err;
	}
	for (size_t m = 0; m < nm; m++)
		strcpy(cursor[m], "0");
	while (left && !e) {
		long long t0 = now_us();

		snprintf(count, sizeof(count), "%zu", n);
		argv[argc - 1] = count, lens[argc - 1] = strlen(count);
		for (size_t m = 0; m < nm && !e; m++) {
			if (!cursor[m][0])
				continue;	/* this master is done */
			argv[cursor_at] = cursor[m];
			lens[cursor_at] = strlen(cursor[m]);
			e = cqi_redis_append(iv->ctx, masters ? CQI_MASTER(m) :
					     CQI_KEY(1), argc, argv, lens);
		}
		if (e || drain(iv))
			break;
		/* every master's reply first: the UNLINKs queued for the
		 * keys found (and read back with --rate) come after them */
		for (size_t m = 0; m < nm && !e; m++)
			if (cursor[m][0] && cqi_redis_reply(iv->ctx, &rs[m]))
				e = iv->ctx->err;
		for (size_t m = 0; m < nm; m++) {
			if (!rs[m])
				continue;
			if (!e)
				e = scan_reply(iv, rs[m], argv[0], argv[1],
					       cursor[m]);
			cqi_reply_free(rs[m]);
			rs[m] = NULL;
			if (!e && strcmp(cursor[m], "0") == 0) {
				cursor[m][0] = '\0';
				left--;
			}
		}
		if (e)
			break;
		if (!iv->o->count)
			n = adapt_count(n, (now_us() - t0) / (long long)nm);
		progress(iv);
		if (left && cq_stop_requested()) {
			/* the batch scanned is deleted, the rest left */
			iv->st->stopped = true;
			break;
		}
	}
	free(cursor);
	free(rs);
	if (e)
		return e;
	return drain(iv);
}

static void inval_end(struct inval *iv)
{
	iv->st->elapsed_ms = cq_now_ms() - iv->t0;
}

bool cqi_glob_escape(const char *s, size_t n, struct cq_buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (strchr("*?[]\\", s[i]) && s[i] &&
		    !cq_buf_append(out, "\\", 1))
			return false;
		if (!cq_buf_append(out, s + i, 1))
			return false;
	}
	return true;
}

/* The generation of o->ns, or none: *none says nothing can match. */
static enum cq_err ns_of(struct cq_ctx *ctx, const struct cq_inval_opts *o,
			 struct cqi_gen *gen, bool *none)
{
	memset(gen, 0, sizeof(*gen));
	gen->found = true;
	*none = false;
	if (!o->ns)
		return CQ_OK;
	if (cqi_ns_gen(ctx, o->ns, false, gen))
		return ctx->err;
	*none = !gen->found;
	return CQ_OK;
}

enum cq_err cq_invalidate_pattern(struct cq_ctx *ctx, const char *glob,
				  const struct cq_inval_opts *o,
				  struct cq_inval_stats *st)
{
	struct inval iv;
	struct cq_buf pre = { 0 }, match = { 0 };
	struct cqi_gen gen;
	const char *argv[6] = { "SCAN", NULL, "MATCH", NULL, "COUNT", NULL };
	size_t lens[6] = { 4, 0, 5, 0, 5, 0 };
	bool none;
	enum cq_err e;

	inval_start(&iv, ctx, o, st);
	if (ns_of(ctx, o, &gen, &none) || none)
		goto out;
	if (!cqi_data_key(ctx, o->ns, &gen, "", 0, &pre) ||
	    !cqi_glob_escape(pre.data, pre.len, &match) ||
	    !cq_buf_append(&match, glob, strlen(glob))) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	iv.strip = pre.len;
	argv[3] = match.data, lens[3] = match.len;
	scan_loop(&iv, 6, argv, lens, 1);
out:
	e = ctx->err;
	inval_end(&iv);
	cq_buf_free(&pre);
	cq_buf_free(&match);
	return e;
}

enum cq_err cq_invalidate_tag(struct cq_ctx *ctx, const char *tag,
			      const struct cq_inval_opts *o,
			      struct cq_inval_stats *st)
{
	struct inval iv;
	struct cq_buf tk = { 0 };
	const char *argv[5] = { "SSCAN", NULL, NULL, "COUNT", NULL };
	size_t lens[5] = { 5, 0, 0, 5, 0 };
	const char *pre = ctx->set.prefix ? ctx->set.prefix : "";
	enum cq_err e;

	inval_start(&iv, ctx, o, st);
	if (!cqi_own_key(ctx, "tag", tag, strlen(tag), &tk)) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	iv.strip = strlen(pre);
	argv[1] = tk.data, lens[1] = tk.len;
	if (scan_loop(&iv, 5, argv, lens, 2) || o->dry_run || st->stopped)
		goto out;
	/* the set itself last: a run cut short can be run again */
	{
		uint64_t keep = st->deleted;

		if (queue_unlink(&iv, tk.data, tk.len) == CQ_OK)
			drain(&iv);
		st->deleted = keep;
	}
out:
	e = ctx->err;
	inval_end(&iv);
	cq_buf_free(&tk);
	return e;
}

/* The full name of user key i (what: NULL for the data key, else the
 * derived key beside it). */
static bool key_name(struct cq_ctx *ctx, const struct cq_inval_opts *o,
		     const struct cqi_gen *gen, const char *key,
		     const char *what, struct cq_buf *k, struct cq_buf *d)
{
	if (!cqi_data_key(ctx, o->ns, gen, key, strlen(key), k))
		return false;
	return !what || cqi_derived_key(ctx->set.prefix, k->data, k->len, what, d);
}

enum cq_err cq_invalidate_keys(struct cq_ctx *ctx, size_t n,
			       const char *const *keys,
			       const struct cq_inval_opts *o,
			       struct cq_inval_stats *st)
{
	struct inval iv;
	struct cq_buf k = { 0 }, meta = { 0 };
	struct cqi_gen gen;
	uint64_t keep;
	bool none;
	size_t i;
	enum cq_err e;

	inval_start(&iv, ctx, o, st);
	if (ns_of(ctx, o, &gen, &none) || none)
		goto out;
	for (i = 0; i < n; i++) {
		if (!key_name(ctx, o, &gen, keys[i], NULL, &k, NULL)) {
			cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (o->dry_run) {
			const char *argv[2] = { "EXISTS", k.data };
			size_t lens[2] = { 6, k.len };
			struct cqi_reply *r = cqi_redis_cmd(ctx, CQI_KEY(1), 2,
							    argv, lens);

			if (!r)
				goto out;
			if (r->type == CQI_REPLY_INTEGER && r->integer)
				found_key(&iv, keys[i], strlen(keys[i]));
			cqi_reply_free(r);
			continue;
		}
		st->matched++;
		if (queue_unlink(&iv, k.data, k.len) ||
		    (iv.pending >= 1000 && drain(&iv)))
			goto out;
	}
	if (drain(&iv) || o->dry_run)
		goto out;
	/* then fetch's metadata beside each key, not counted */
	keep = st->deleted;
	for (i = 0; i < n; i++) {
		if (!key_name(ctx, o, &gen, keys[i], "meta", &k, &meta)) {
			cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
			goto out;
		}
		if (queue_unlink(&iv, meta.data, meta.len) ||
		    (iv.pending >= 1000 && drain(&iv)))
			goto out;
	}
	drain(&iv);
	st->deleted = keep;
out:
	e = ctx->err;
	inval_end(&iv);
	cq_buf_free(&k);
	cq_buf_free(&meta);
	return e;
}

/* Bump: INCR an existing generation; a missing one restarts at a fresh
 * random value, never at 1 (which an older generation may have used). */
static const char bump_lua[] =
	"if redis.call('EXISTS', KEYS[1]) == 1 then\n"
	"  return redis.call('INCR', KEYS[1])\n"
	"end\n"
	"redis.call('SET', KEYS[1], ARGV[1])\n"
	"return tonumber(ARGV[1])\n";

enum cq_err cq_invalidate_ns(struct cq_ctx *ctx, const char *ns,
			     const struct cq_inval_opts *o,
			     struct cq_inval_stats *st)
{
	struct inval iv;
	struct cq_buf k = { 0 };
	char fresh[24];
	const char *argv[5] = { "EVAL", bump_lua, "1", NULL, fresh };
	size_t lens[5] = { 4, sizeof(bump_lua) - 1, 1, 0, 0 };
	struct cqi_reply *r;
	enum cq_err e;

	inval_start(&iv, ctx, o, st);
	if (o->dry_run) {
		struct cqi_gen gen;

		if (cqi_ns_gen(ctx, ns, false, &gen) == CQ_OK)
			snprintf(st->generation, sizeof(st->generation), "%s",
				 gen.found ? gen.s : "");
		goto out;
	}
	if (!cqi_own_key(ctx, "ns", ns, strlen(ns), &k)) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	cqi_ns_gen_fresh(fresh, sizeof(fresh));
	argv[3] = k.data, lens[3] = k.len;
	lens[4] = strlen(fresh);
	if (cqi_redis_append(ctx, CQI_KEY(3), 5, argv, lens) ||
	    cqi_redis_reply(ctx, &r))
		goto out;
	if (r->type == CQI_REPLY_INTEGER)
		snprintf(st->generation, sizeof(st->generation), "%lld",
			 r->integer);
	else if (r->type == CQI_REPLY_ERROR && strstr(r->str, "not an integer"))
		cqi_ns_gen_bad(ctx, ns);
	else if (r->type == CQI_REPLY_ERROR)
		cqi_redis_reply_err(ctx, r, "bumping the generation");
	cqi_reply_free(r);
out:
	e = ctx->err;
	inval_end(&iv);
	cq_buf_free(&k);
	return e;
}
