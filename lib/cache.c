/* cache.c - get and set. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

void cq_value_clear(struct cq_value *v)
{
	if (!v)
		return;
	free(v->data);
	memset(v, 0, sizeof(*v));
}

/* Queue a command with one prefixed key argument after argv0. */
static enum cq_err append_key_cmd(struct cq_ctx *ctx, const char *cmd,
				  const char *key, struct cq_buf *kb)
{
	const char *argv[2] = { cmd, NULL };
	size_t lens[2] = { strlen(cmd), 0 };

	if (!cqi_prefixed(ctx, key, strlen(key), kb))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	argv[1] = kb->data;
	lens[1] = kb->len;
	return cqi_redis_append(ctx, 2, argv, lens);
}

static enum cq_err take_value(struct cq_ctx *ctx, const char *key,
			      redisReply *r, struct cq_value *v)
{
	if (r->type == REDIS_REPLY_NIL)
		return CQ_OK;
	if (r->type == REDIS_REPLY_ERROR) {
		char what[300];

		snprintf(what, sizeof(what), "get '%s'", key);
		return cqi_redis_reply_err(ctx, r, what);
	}
	if (r->type != REDIS_REPLY_STRING)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "get '%s': unexpected reply type %d", key, r->type);
	v->data = malloc(r->len + 1);
	if (!v->data)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	memcpy(v->data, r->str, r->len);
	v->data[r->len] = '\0';
	v->len = r->len;
	v->found = true;
	return CQ_OK;
}

enum cq_err cq_cache_get(struct cq_ctx *ctx, size_t n, const char *const *keys,
			 bool want_ttl, struct cq_value *out)
{
	struct cq_buf kb = { 0 };
	enum cq_err e = CQ_OK;
	size_t i;

	memset(out, 0, n * sizeof(*out));
	for (i = 0; i < n && !e; i++) {
		e = append_key_cmd(ctx, "GET", keys[i], &kb);
		if (!e && want_ttl)
			e = append_key_cmd(ctx, "PTTL", keys[i], &kb);
	}
	cq_buf_free(&kb);
	/* read every queued reply, even after a failure, to keep order */
	for (i = 0; i < n && !ctx->err; i++) {
		redisReply *r;

		if (cqi_redis_reply(ctx, &r))
			break;
		if (!e)
			e = take_value(ctx, keys[i], r, &out[i]);
		freeReplyObject(r);
		if (!want_ttl)
			continue;
		if (cqi_redis_reply(ctx, &r))
			break;
		out[i].ttl_ms = r->type == REDIS_REPLY_INTEGER && r->integer >= 0 ?
				r->integer : -1;
		freeReplyObject(r);
	}
	if (ctx->err) {
		for (i = 0; i < n; i++)
			cq_value_clear(&out[i]);
		return ctx->err;
	}
	return CQ_OK;
}

long long cq_jittered_ttl(const struct cq_set_opts *o)
{
	long long spread = o->jitter_ms;

	if (o->jitter_pct > 0)
		spread = (long long)((double)o->ttl_ms * o->jitter_pct / 100.0);
	if (spread <= 0)
		return o->ttl_ms;
	return o->ttl_ms + (long long)cq_rand_below((uint64_t)spread + 1);
}

enum cq_err cq_cache_set(struct cq_ctx *ctx, const char *key, const void *val,
			 size_t len, const struct cq_set_opts *o,
			 bool *written, long long *ttl_used)
{
	const char *argv[6];
	size_t lens[6];
	int argc = 0;
	char ttl[32];
	struct cq_buf kb = { 0 };
	long long t = 0;
	redisReply *r;

	*written = false;
	if (!cqi_prefixed(ctx, key, strlen(key), &kb))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	argv[argc] = "SET", lens[argc++] = 3;
	argv[argc] = kb.data, lens[argc++] = kb.len;
	argv[argc] = val, lens[argc++] = len;
	if (o->keep_ttl) {
		argv[argc] = "KEEPTTL", lens[argc++] = 7;
	} else if (!o->no_ttl) {
		t = cq_jittered_ttl(o);
		snprintf(ttl, sizeof(ttl), "%lld", t);
		argv[argc] = "PX", lens[argc++] = 2;
		argv[argc] = ttl, lens[argc++] = strlen(ttl);
	}
	if (o->nx || o->xx)
		argv[argc] = o->nx ? "NX" : "XX", lens[argc++] = 2;
	r = cqi_redis_cmd(ctx, argc, argv, lens);
	cq_buf_free(&kb);
	if (!r)
		return ctx->err;
	*written = r->type != REDIS_REPLY_NIL;
	freeReplyObject(r);
	if (ttl_used)
		*ttl_used = t;
	return CQ_OK;
}
