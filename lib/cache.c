/* cache.c - key names (slots, derived keys, namespaces, tags), get, set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

void cq_value_clear(struct cq_value *v)
{
	if (!v)
		return;
	free(v->data);
	memset(v, 0, sizeof(*v));
}

/* ---- cluster slots and derived keys ------------------------------------ */

/* CRC16-CCITT (XMODEM), as Redis Cluster hashes keys: a byte at a time
 * through a table built on first use. */
static unsigned crc16(const unsigned char *p, size_t n)
{
	static uint16_t table[256];
	static bool built;
	unsigned crc = 0;

	if (!built) {
		for (unsigned b = 0; b < 256; b++) {
			unsigned c = b << 8;

			for (int i = 0; i < 8; i++)
				c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
			table[b] = (uint16_t)c;
		}
		built = true;
	}
	while (n--)
		crc = (crc << 8 ^ table[(crc >> 8 ^ *p++) & 0xff]) & 0xffff;
	return crc;
}

/* The {tag} Redis Cluster hashes instead of the key, or NULL. */
static const char *hash_tag(const char *k, size_t n, size_t *tlen)
{
	const char *open = memchr(k, '{', n), *close;

	if (!open)
		return NULL;
	close = memchr(open + 1, '}', n - (size_t)(open + 1 - k));
	if (!close || close == open + 1)
		return NULL;
	*tlen = (size_t)(close - open - 1);
	return open + 1;
}

unsigned cqi_key_slot(const void *key, size_t len)
{
	size_t tlen;
	const char *tag = hash_tag(key, len, &tlen);

	if (tag)
		return crc16((const unsigned char *)tag, tlen) & 16383;
	return crc16(key, len) & 16383;
}

/* A short string of [0-9a-z] that hashes to slot (every slot has one of
 * at most 4 characters). */
static void slot_string(unsigned slot, char out[8])
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";

	for (unsigned long i = 0;; i++) {
		unsigned long v = i;
		size_t n = 0;

		do {
			out[n++] = digits[v % 36];
			v /= 36;
		} while (v && n < 7);
		out[n] = '\0';
		if ((crc16((unsigned char *)out, n) & 16383) == slot)
			return;
	}
}

bool cqi_derived_key(const char *prefix, const void *key, size_t len,
		    const char *what, struct cq_buf *out)
{
	const char *pre = prefix ? prefix : "";
	size_t tlen;
	bool ok;

	cq_buf_reset(out);
	if (hash_tag(key, len, &tlen)) {
		ok = cq_buf_append(out, key, len);
	} else if (!memchr(key, '}', len) && !strchr(pre, '{') && len) {
		ok = cq_buf_append(out, pre, strlen(pre)) &&
		     cq_buf_append(out, "{", 1) &&
		     cq_buf_append(out, key, len) &&
		     cq_buf_append(out, "}", 1);
	} else {
		/* P "{" T "}" REST: the prefix stays in front (ACL key
		 * patterns, SCAN by prefix) unless it holds a '{' itself */
		size_t pl = strlen(pre);
		bool front = !strchr(pre, '{') && len >= pl &&
			     memcmp(key, pre, pl) == 0;
		char t[8];

		if (!front)
			pl = 0;
		slot_string(cqi_key_slot(key, len), t);
		ok = cq_buf_append(out, pre, pl) &&
		     cq_buf_append(out, "{", 1) &&
		     cq_buf_append(out, t, strlen(t)) &&
		     cq_buf_append(out, "}", 1) &&
		     cq_buf_append(out, (const char *)key + pl, len - pl);
	}
	return ok && cq_buf_append(out, "|cq:", 4) &&
	       cq_buf_append(out, what, strlen(what));
}

/* ---- namespaces ---------------------------------------------------------- */

bool cq_ns_name_ok(const char *ns)
{
	size_t n = ns ? strlen(ns) : 0;

	if (n < 1 || n > 100)
		return false;
	return strspn(ns, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789._/-") == n;
}

bool cqi_own_key(const struct cq_ctx *ctx, const char *kind, const char *name,
		 size_t len, struct cq_buf *out)
{
	const char *pre = ctx->set.prefix ? ctx->set.prefix : "";

	cq_buf_reset(out);
	return cq_buf_append(out, pre, strlen(pre)) &&
	       cq_buf_append(out, "cq:", 3) &&
	       cq_buf_append(out, kind, strlen(kind)) &&
	       cq_buf_append(out, ":", 1) && cq_buf_append(out, name, len);
}

bool cqi_data_key(const struct cq_ctx *ctx, const char *ns,
		  const struct cqi_gen *gen, const char *key, size_t keylen,
		  struct cq_buf *out)
{
	const char *pre = ctx->set.prefix ? ctx->set.prefix : "";

	cq_buf_reset(out);
	if (!cq_buf_append(out, pre, strlen(pre)))
		return false;
	if (ns && !(cq_buf_append(out, "ns:", 3) &&
		    cq_buf_append(out, ns, strlen(ns)) &&
		    cq_buf_append(out, ":", 1) &&
		    cq_buf_append(out, gen->s, strlen(gen->s)) &&
		    cq_buf_append(out, ":", 1)))
		return false;
	return cq_buf_append(out, key, keylen);
}

void cqi_ns_gen_fresh(char *fresh, size_t len)
{
	snprintf(fresh, len, "%llu",
		 (unsigned long long)(cqi_rand_below(1ULL << 40) + (1ULL << 20)));
}

enum cq_err cqi_ns_gen_bad(struct cq_ctx *ctx, const char *ns)
{
	return cq_seterr(ctx, CQ_ERR_DATA,
			 "namespace '%s': its generation key holds something that is not a generation",
			 ns);
}

/* Take a generation reply: nil, or a decimal number. */
static enum cq_err take_gen(struct cq_ctx *ctx, const char *ns, struct cqi_reply *r,
			    struct cqi_gen *gen)
{
	if (r->type == CQI_REPLY_NIL)
		return CQ_OK;
	if (r->type != CQI_REPLY_STRING || r->len < 1 ||
	    r->len >= sizeof(gen->s) || strspn(r->str, "0123456789") != r->len)
		return cqi_ns_gen_bad(ctx, ns);
	memcpy(gen->s, r->str, r->len);
	gen->s[r->len] = '\0';
	gen->found = true;
	return CQ_OK;
}

enum cq_err cqi_ns_gen(struct cq_ctx *ctx, const char *ns, bool create,
		       struct cqi_gen *gen)
{
	struct cq_buf k = { 0 };
	const char *argv[6] = { "GET" };
	size_t lens[6] = { 3 };
	char fresh[24];
	struct cqi_reply *r;
	enum cq_err e = CQ_OK;

	memset(gen, 0, sizeof(*gen));
	if (!cqi_own_key(ctx, "ns", ns, strlen(ns), &k))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	argv[1] = k.data, lens[1] = k.len;
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 2, argv, lens);
	if (!r)
		goto out;
	e = take_gen(ctx, ns, r, gen);
	cqi_reply_free(r);
	if (e || gen->found || !create)
		goto out;
	/* A fresh random start: never a generation used before the key was
	 * lost.  SET NX GET: whoever comes first wins, the others read it. */
	cqi_ns_gen_fresh(fresh, sizeof(fresh));
	argv[0] = "SET", lens[0] = 3;
	argv[2] = fresh, lens[2] = strlen(fresh);
	argv[3] = "NX", lens[3] = 2;
	argv[4] = "GET", lens[4] = 3;
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 5, argv, lens);
	if (!r)
		goto out;
	e = take_gen(ctx, ns, r, gen);
	cqi_reply_free(r);
	if (!e && !gen->found) {
		snprintf(gen->s, sizeof(gen->s), "%s", fresh);
		gen->found = true;
	}
out:
	cq_buf_free(&k);
	return ctx->err ? ctx->err : e;
}

/* ---- get ------------------------------------------------------------------ */

static enum cq_err append_cmd(struct cq_ctx *ctx, const char *cmd,
			      const struct cq_buf *kb)
{
	const char *argv[2] = { cmd, kb->data };
	size_t lens[2] = { strlen(cmd), kb->len };

	return cqi_redis_append(ctx, CQI_KEY(1), 2, argv, lens);
}

enum cq_err cqi_take_value(struct cq_ctx *ctx, const char *key,
			   const struct cqi_reply *r, struct cq_value *v)
{
	if (r->type == CQI_REPLY_NIL)
		return CQ_OK;
	if (r->type == CQI_REPLY_ERROR) {
		char what[300];

		snprintf(what, sizeof(what), "get '%s'", key);
		return cqi_redis_reply_err(ctx, r, what);
	}
	if (r->type != CQI_REPLY_STRING)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "get '%s': unexpected reply type %d", key,
				 r->type);
	v->data = cqi_memdup(r->str, r->len);
	if (!v->data)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	v->len = r->len;
	v->found = true;
	return CQ_OK;
}

enum cq_err cq_cache_get(struct cq_ctx *ctx, size_t n, const char *const *keys,
			 const struct cq_get_opts *o, struct cq_value *out)
{
	static const struct cq_get_opts none = { 0 };
	struct cq_buf kb = { 0 };
	struct cqi_gen gen = { .found = true };
	enum cq_err e = CQ_OK;
	size_t i, queued = 0;

	if (!o)
		o = &none;
	memset(out, 0, n * sizeof(*out));
	if (o->ns && cqi_ns_gen(ctx, o->ns, false, &gen))
		return ctx->err;
	if (!gen.found) {	/* a namespace never written: all misses */
		cqi_stats_track(ctx, 0, n);
		return CQ_OK;
	}
	for (i = 0; i < n && !e; i++, queued++) {
		if (!cqi_data_key(ctx, o->ns, &gen, keys[i], strlen(keys[i]), &kb))
			e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		if (!e)
			e = append_cmd(ctx, "GET", &kb);
		if (!e && o->want_ttl)
			e = append_cmd(ctx, "PTTL", &kb);
	}
	cq_buf_free(&kb);
	/* read every queued reply, even after a failure, to keep order */
	for (i = 0; i < queued && !ctx->err; i++) {
		struct cqi_reply *r;

		if (cqi_redis_reply(ctx, &r))
			break;
		if (!e)
			e = cqi_take_value(ctx, keys[i], r, &out[i]);
		cqi_reply_free(r);
		if (!o->want_ttl)
			continue;
		if (cqi_redis_reply(ctx, &r))
			break;
		out[i].ttl_ms = r->type == CQI_REPLY_INTEGER && r->integer >= 0 ?
				r->integer : -1;
		cqi_reply_free(r);
	}
	if (ctx->err) {
		for (i = 0; i < n; i++)
			cq_value_clear(&out[i]);
		return ctx->err;
	}
	for (i = 0, queued = 0; i < n; i++)
		queued += out[i].found;
	cqi_stats_track(ctx, queued, n - queued);	/* --track: no round trip */
	return CQ_OK;
}

/* ---- set ------------------------------------------------------------------ */

long long cqi_jittered_ttl(const struct cq_set_opts *o)
{
	long long spread = o->jitter_ms;

	if (o->jitter_pct > 0)
		spread = (long long)((double)o->ttl_ms * o->jitter_pct / 100.0);
	if (spread <= 0)
		return o->ttl_ms;
	return o->ttl_ms + (long long)cqi_rand_below((uint64_t)spread + 1);
}

/*
 * Record a key in a tag set and keep the set alive at least as long as
 * the key: a new set takes the key's TTL, an existing one only grows its
 * TTL, and a key without TTL makes the set persistent.  One key per
 * script (the tag set), so it runs on any cluster node:
 * EVAL tag_lua 1 TAGSET KEY TTL_MS.
 */
static const char tag_lua[] =
	"local existed = redis.call('EXISTS', KEYS[1])\n"
	"redis.call('SADD', KEYS[1], ARGV[1])\n"
	"local ttl = tonumber(ARGV[2])\n"
	"if ttl == 0 then redis.call('PERSIST', KEYS[1]) return 1 end\n"
	"local cur = redis.call('PTTL', KEYS[1])\n"
	"if existed == 0 or (cur >= 0 and cur < ttl) then\n"
	"  redis.call('PEXPIRE', KEYS[1], ttl)\n"
	"end\n"
	"return 1\n";

enum cq_err cqi_tag_append(struct cq_ctx *ctx, struct cqi_pipe *pipe,
			   uint64_t pipe_tag, const char *key, size_t keylen,
			   const char *const *tags, const size_t *taglens,
			   size_t ntags, long long ttl_ms, struct cq_buf *scratch)
{
	char ttl[32];
	const char *argv[6] = { "EVAL", tag_lua, "1" };
	size_t lens[6] = { 4, strlen(tag_lua), 1 };

	snprintf(ttl, sizeof(ttl), "%lld", ttl_ms > 0 ? ttl_ms : 0);
	for (size_t i = 0; i < ntags; i++) {
		size_t tl = taglens ? taglens[i] : strlen(tags[i]);

		if (!cqi_own_key(ctx, "tag", tags[i], tl, scratch))
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		argv[3] = scratch->data, lens[3] = scratch->len;
		argv[4] = key, lens[4] = keylen;
		argv[5] = ttl, lens[5] = strlen(ttl);
		if (pipe ? cqi_pipe_cmd(pipe, pipe_tag, CQI_KEY(3), 6, argv, lens) :
			   cqi_redis_append(ctx, CQI_KEY(3), 6, argv, lens))
			return ctx->err;
	}
	return CQ_OK;
}

/* Read the replies of one EVAL per tag; the first error is the error. */
static enum cq_err read_tag_replies(struct cq_ctx *ctx,
				    const struct cq_set_opts *o)
{
	enum cq_err e = CQ_OK;

	for (size_t i = 0; i < o->ntags; i++) {
		struct cqi_reply *r;
		char what[200];

		if (cqi_redis_reply(ctx, &r))
			return ctx->err;
		if (!e && r->type == CQI_REPLY_ERROR && strstr(r->str, "WRONGTYPE"))
			e = cq_seterr(ctx, CQ_ERR_DATA,
				      "tag '%s': its key holds something other than a set",
				      o->tags[i]);
		else if (!e && r->type == CQI_REPLY_ERROR) {
			snprintf(what, sizeof(what), "tag '%s'", o->tags[i]);
			e = cqi_redis_reply_err(ctx, r, what);
		}
		cqi_reply_free(r);
	}
	return e;
}

/* ttl: the key's TTL as written, -1 when it kept its own (asked here). */
static enum cq_err set_tags(struct cq_ctx *ctx, const struct cq_buf *kb,
			    const struct cq_set_opts *o, long long ttl)
{
	struct cq_buf scratch = { 0 };
	enum cq_err e;

	if (ttl < 0) {
		const char *argv[2] = { "PTTL", kb->data };
		size_t lens[2] = { 4, kb->len };
		struct cqi_reply *r = cqi_redis_cmd(ctx, CQI_KEY(1), 2, argv,
						    lens);

		if (!r)
			return ctx->err;
		ttl = r->type == CQI_REPLY_INTEGER && r->integer > 0 ?
		      r->integer : 0;
		cqi_reply_free(r);
	}
	e = cqi_tag_append(ctx, NULL, 0, kb->data, kb->len, o->tags, NULL, o->ntags,
			   ttl, &scratch);
	cq_buf_free(&scratch);
	if (e)
		return e;
	return read_tag_replies(ctx, o);
}

/* One SET of kb: with PX ttl when ttl > 0, KEEPTTL when ttl < 0, and
 * cond ("NX", "XX" or NULL). */
static enum cq_err set_once(struct cq_ctx *ctx, const struct cq_buf *kb,
			    const void *val, size_t len, long long ttl,
			    const char *cond, bool *written)
{
	const char *argv[6] = { "SET", kb->data, val };
	size_t lens[6] = { 3, kb->len, len };
	int argc = 3;
	char t[32];
	struct cqi_reply *r;

	if (ttl < 0) {
		argv[argc] = "KEEPTTL", lens[argc++] = 7;
	} else if (ttl > 0) {
		snprintf(t, sizeof(t), "%lld", ttl);
		argv[argc] = "PX", lens[argc++] = 2;
		argv[argc] = t, lens[argc++] = strlen(t);
	}
	if (cond)
		argv[argc] = cond, lens[argc++] = strlen(cond);
	r = cqi_redis_cmd(ctx, CQI_KEY(1), argc, argv, lens);
	if (!r)
		return ctx->err;
	*written = r->type != CQI_REPLY_NIL;
	cqi_reply_free(r);
	return CQ_OK;
}

/* keep_ttl: SET XX KEEPTTL never creates a key, so none is left without
 * expiry; a missing key gets ttl_ms (jittered) with SET NX PX, or is not
 * written without one.  Each SET is atomic; a key created between the
 * two (NX fails) or deleted (XX fails again) sends us round again. */
static enum cq_err set_keep_ttl(struct cq_ctx *ctx, const struct cq_buf *kb,
				const void *val, size_t len,
				const struct cq_set_opts *o, bool *written,
				long long *t)
{
	for (int round = 0; round < 5; round++) {
		*t = -1;
		if (set_once(ctx, kb, val, len, -1, "XX", written))
			return ctx->err;
		if (*written || !o->ttl_ms || o->xx)
			return CQ_OK;
		*t = cqi_jittered_ttl(o);
		if (set_once(ctx, kb, val, len, *t, "NX", written))
			return ctx->err;
		if (*written)
			return CQ_OK;
	}
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
			 "--keep-ttl: the key kept appearing and vanishing; not written");
}

enum cq_err cq_cache_set(struct cq_ctx *ctx, const char *key, size_t keylen,
			 const void *val, size_t len,
			 const struct cq_set_opts *o, bool *written,
			 long long *ttl_used)
{
	struct cq_buf kb = { 0 };
	struct cqi_gen gen = { .found = true };
	long long t = 0;
	enum cq_err e;

	*written = false;
	if (o->ns && cqi_ns_gen(ctx, o->ns, true, &gen))
		return ctx->err;
	if (!cqi_data_key(ctx, o->ns, &gen, key, keylen, &kb))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (o->keep_ttl) {
		e = set_keep_ttl(ctx, &kb, val, len, o, written, &t);
	} else {
		t = o->no_ttl ? 0 : cqi_jittered_ttl(o);
		e = set_once(ctx, &kb, val, len, t,
			     o->nx ? "NX" : o->xx ? "XX" : NULL, written);
	}
	if (ttl_used)
		*ttl_used = t;
	if (!e && *written && o->ntags)
		e = set_tags(ctx, &kb, o, t);
	cq_buf_free(&kb);
	return e;
}
