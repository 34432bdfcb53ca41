/* redis_int.h - the Redis transport, shared by lib/ files only.
 *
 * Every Redis command of libcq goes through these few functions, so the
 * transport (plain TCP, unix socket, later TLS over redisConnectFd) stays
 * a change local to redis.c.
 */
#ifndef CQ_REDIS_INT_H
#define CQ_REDIS_INT_H

#include <hiredis/hiredis.h>

#include "cq.h"

struct cqi_redis {
	redisContext *c;
	char where[300];	/* host:port or socket path, no secrets */
	unsigned unread;	/* replies to skip before the next read: sent
				 * without waiting (cqi_stats_track) */
};

/* Run one command and return its reply, which the caller frees with
 * freeReplyObject.  On a transport failure, or when the reply is a Redis
 * error, sets the context error and returns NULL.  lens may be NULL for
 * NUL-terminated arguments. */
redisReply *cqi_redis_cmd(struct cq_ctx *ctx, int argc, const char **argv,
			  const size_t *lens);
/* Pipelining: queue a command, then read replies in order.  An error reply
 * is returned as a reply (so the caller can count it), not as a context
 * error; a transport failure sets the context error. */
enum cq_err cqi_redis_append(struct cq_ctx *ctx, int argc, const char **argv,
			     const size_t *lens);
enum cq_err cqi_redis_reply(struct cq_ctx *ctx, redisReply **reply);
/* Translate a Redis error reply into the context error; what names the
 * action ("SET 'k'").  Returns the error set. */
enum cq_err cqi_redis_reply_err(struct cq_ctx *ctx, const redisReply *r,
				const char *what);
/* The cq_err a Redis error reply's text stands for: CQ_ERR_NOPERM for a
 * refused login or an ACL refusal (NOPERM), CQ_ERR_DATA for WRONGTYPE,
 * CQ_ERR_TEMPFAIL for a server that may take it later, else
 * CQ_ERR_INTERNAL. */
enum cq_err cqi_redis_err_kind(const char *s);
/* Translate the hiredis context's error into the context error. */
enum cq_err cqi_redis_io_err(struct cq_ctx *ctx);

#endif
