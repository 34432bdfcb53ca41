/* lock.c - Redis locks with a random owner token (fetch, warm --once).
 *
 * A lock is SET key token NX PX ttl.  Only its owner may release or
 * extend it: both are compare-and-act scripts on the one lock key, so a
 * slow owner whose lock expired cannot delete the lock someone else now
 * holds, and the scripts run on any cluster node.
 */
#include <stdio.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

const char cqi_lock_release_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  return redis.call('DEL', KEYS[1])\n"
	"end\n"
	"return 0\n";

const char cqi_lock_extend_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
	"end\n"
	"return 0\n";

static enum cq_err new_token(struct cq_ctx *ctx, struct cqi_lock *lk)
{
	unsigned char raw[16];

	if (cqi_random_bytes(ctx, raw, sizeof(raw)))
		return ctx->err;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(lk->token + 2 * i, 3, "%02x", raw[i]);
	return CQ_OK;
}

enum cq_err cqi_lock_try(struct cq_ctx *ctx, const char *key, size_t keylen,
			 long long ttl_ms, struct cqi_lock *lk, bool *won)
{
	char ttl[32];
	const char *argv[6] = { "SET", key, lk->token, "NX", "PX", ttl };
	size_t lens[6] = { 3, keylen, 0, 2, 2, 0 };
	struct cqi_reply *r;

	*won = false;
	if (!lk->token[0] && new_token(ctx, lk))
		return ctx->err;
	snprintf(ttl, sizeof(ttl), "%lld", ttl_ms > 0 ? ttl_ms : 1);
	lens[2] = strlen(lk->token);
	lens[5] = strlen(ttl);
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 6, argv, lens);
	if (!r)
		return ctx->err;
	*won = r->type == CQI_REPLY_STATUS;
	lk->held = *won;
	cqi_reply_free(r);
	return CQ_OK;
}

static struct cqi_reply *eval(struct cq_ctx *ctx, const char *script,
			const char *key, size_t keylen, const char *a1,
			const char *a2)
{
	const char *argv[6] = { "EVAL", script, "1", key, a1, a2 };
	size_t lens[6] = { 4, strlen(script), 1, keylen, strlen(a1),
			   a2 ? strlen(a2) : 0 };

	return cqi_redis_cmd(ctx, CQI_KEY(3), a2 ? 6 : 5, argv, lens);
}

enum cq_err cqi_lock_release(struct cq_ctx *ctx, const char *key,
			     size_t keylen, struct cqi_lock *lk)
{
	struct cqi_reply *r;

	if (!lk->held)
		return CQ_OK;
	lk->held = false;
	r = eval(ctx, cqi_lock_release_lua, key, keylen, lk->token, NULL);
	if (!r)
		return ctx->err;
	cqi_reply_free(r);
	return CQ_OK;
}

enum cq_err cqi_lock_extend(struct cq_ctx *ctx, const char *key,
			    size_t keylen, long long ttl_ms,
			    struct cqi_lock *lk, bool *still)
{
	char ttl[32];
	struct cqi_reply *r;

	*still = false;
	snprintf(ttl, sizeof(ttl), "%lld", ttl_ms > 0 ? ttl_ms : 1);
	r = eval(ctx, cqi_lock_extend_lua, key, keylen, lk->token, ttl);
	if (!r)
		return ctx->err;
	*still = r->type == CQI_REPLY_INTEGER && r->integer == 1;
	lk->held = *still;
	cqi_reply_free(r);
	return CQ_OK;
}
