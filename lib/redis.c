/* redis.c - the Redis transport: connect, authenticate, send, receive. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

static struct timeval tv_of(long long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	return tv;
}

static void redis_close(struct cq_ctx *ctx)
{
	if (!ctx->redis)
		return;
	if (ctx->redis->c)
		redisFree(ctx->redis->c);
	free(ctx->redis);
	ctx->redis = NULL;
}

/* The password to use, newly allocated or NULL: CQ_REDIS_PASSWORD, then
 * --password-file, then the URL's. */
static enum cq_err pick_password(struct cq_ctx *ctx, const char *url_pass,
				 char **pass)
{
	const char *file = ctx->set.password_file;
	char line[1024];
	FILE *f;

	*pass = NULL;
	if (ctx->set.redis_password) {
		*pass = strdup(ctx->set.redis_password);
		goto done;
	}
	if (!file) {
		if (url_pass)
			*pass = strdup(url_pass);
		goto done;
	}
	f = fopen(file, "r");
	if (!f)
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "cannot read password file '%s': %s", file,
				 strerror(errno));
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	*pass = strdup(line);
done:
	if ((ctx->set.redis_password || file || url_pass) && !*pass)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

static bool is_auth_error(const char *s)
{
	return strncmp(s, "WRONGPASS", 9) == 0 || strncmp(s, "NOAUTH", 6) == 0 ||
	       strstr(s, "invalid password") || strstr(s, "invalid username") ||
	       strstr(s, "without any password configured");
}

enum cq_err cqi_redis_err_kind(const char *s)
{
	if (is_auth_error(s) || strncmp(s, "NOPERM", 6) == 0)
		return CQ_ERR_NOPERM;
	if (strncmp(s, "WRONGTYPE", 9) == 0)
		return CQ_ERR_DATA;
	if (strncmp(s, "LOADING", 7) == 0 || strncmp(s, "BUSY", 4) == 0 ||
	    strncmp(s, "TRYAGAIN", 8) == 0 || strncmp(s, "MASTERDOWN", 10) == 0 ||
	    strncmp(s, "READONLY", 8) == 0 || strncmp(s, "OOM", 3) == 0)
		return CQ_ERR_TEMPFAIL;
	return CQ_ERR_INTERNAL;
}

enum cq_err cqi_redis_reply_err(struct cq_ctx *ctx, const redisReply *r,
				const char *what)
{
	const char *s = r->str ? r->str : "";

	if (strncmp(s, "NOAUTH", 6) == 0)
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "Redis at %s needs a password (put it in the URL, CQ_REDIS_PASSWORD or --password-file)",
				 ctx->redis->where);
	switch (cqi_redis_err_kind(s)) {
	case CQ_ERR_NOPERM:
		return cq_seterr(ctx, CQ_ERR_NOPERM, "%s: permission denied: %s",
				 what, s);
	case CQ_ERR_DATA:
		return cq_seterr(ctx, CQ_ERR_DATA,
				 "%s: the key holds a non-string type", what);
	case CQ_ERR_TEMPFAIL:
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL, "%s: %s", what, s);
	default:
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "%s: Redis said: %s",
				 what, s);
	}
}

enum cq_err cqi_redis_io_err(struct cq_ctx *ctx)
{
	redisContext *c = ctx->redis ? ctx->redis->c : NULL;
	const char *where = ctx->redis ? ctx->redis->where : "?";

	if (!c)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE, "not connected to Redis");
	if (c->err == REDIS_ERR_EOF)
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
				 "Redis at %s closed the connection", where);
	if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK ||
				       strstr(c->errstr, "temporarily")))
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
				 "Redis at %s timed out (--timeout %lldms)", where,
				 ctx->set.timeout_ms);
	if (c->err == REDIS_ERR_OOM)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL, "Redis at %s: %s", where,
			 c->errstr);
}

static enum cq_err redis_auth(struct cq_ctx *ctx, const char *user,
			      const char *pass)
{
	const char *argv[3] = { "AUTH" };
	int argc = 1;
	redisReply *r;

	if (user)
		argv[argc++] = user;
	argv[argc++] = pass;
	r = redisCommandArgv(ctx->redis->c, argc, argv, NULL);
	if (!r)
		return cqi_redis_io_err(ctx);
	if (r->type == REDIS_REPLY_ERROR) {
		cq_seterr(ctx, CQ_ERR_NOPERM,
			  "Redis at %s refused the %s: %s", ctx->redis->where,
			  user ? "user name or password" : "password",
			  strncmp(r->str, "WRONGPASS", 9) == 0 ?
			  "wrong user name or password" : r->str);
		freeReplyObject(r);
		return ctx->err;
	}
	freeReplyObject(r);
	return CQ_OK;
}

static enum cq_err redis_select(struct cq_ctx *ctx, int db)
{
	char dbs[16];
	const char *argv[2] = { "SELECT", dbs };
	redisReply *r;

	snprintf(dbs, sizeof(dbs), "%d", db);
	r = cqi_redis_cmd(ctx, 2, argv, NULL);
	/* a database the server does not have is the URL's fault: usage */
	if (!r && ctx->err == CQ_ERR_INTERNAL &&
	    strstr(ctx->errstr, "DB index is out of range"))
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "Redis at %s has no database %d (its 'databases' setting is lower; see the URL's /DB)",
				 ctx->redis->where, db);
	if (!r)
		return ctx->err;
	freeReplyObject(r);
	return CQ_OK;
}

static enum cq_err redis_open(struct cq_ctx *ctx, const struct cqi_redis_url *u)
{
	struct timeval tv = tv_of(ctx->set.timeout_ms);
	struct cqi_redis *r = calloc(1, sizeof(*r));

	if (!r)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	ctx->redis = r;
	ctx->redis_close = redis_close;
	if (u->path) {
		snprintf(r->where, sizeof(r->where), "%s", u->path);
		r->c = redisConnectUnixWithTimeout(u->path, tv);
	} else {
		snprintf(r->where, sizeof(r->where),
			 strchr(u->host, ':') ? "[%s]:%d" : "%s:%d", u->host,
			 u->port);
		r->c = redisConnectWithTimeout(u->host, u->port, tv);
	}
	if (!r->c)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (r->c->err)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", r->where,
				 r->c->errstr);
	if (redisSetTimeout(r->c, tv) != REDIS_OK)
		return cqi_redis_io_err(ctx);
	return CQ_OK;
}

enum cq_err cq_redis_connect(struct cq_ctx *ctx)
{
	struct cqi_redis_url u;
	char errbuf[200], safe[300];
	char *pass = NULL;
	enum cq_err e;

	if (ctx->err)
		return ctx->err;
	if (ctx->redis)
		return CQ_OK;
	e = cqi_redis_url_parse(ctx->set.redis_url, &u, errbuf, sizeof(errbuf));
	if (e) {
		cqi_url_redact(ctx->set.redis_url, safe, sizeof(safe));
		return cq_seterr(ctx, e, "bad Redis URL '%s': %s", safe, errbuf);
	}
	e = pick_password(ctx, u.pass, &pass);
	if (!e)
		e = redis_open(ctx, &u);
	if (!e && pass)
		e = redis_auth(ctx, u.user, pass);
	if (!e && u.db)
		e = redis_select(ctx, u.db);
	if (pass) {
		memset(pass, 0, strlen(pass));
		free(pass);
	}
	cqi_redis_url_clear(&u);
	if (e)
		redis_close(ctx);
	return e;
}

const char *cqi_redis_where(const struct cq_ctx *ctx)
{
	return ctx->redis ? ctx->redis->where : "";
}

/* Read and drop the replies of commands sent without waiting (their
 * error replies too: they belong to no caller). */
static enum cq_err skip_unread(struct cq_ctx *ctx)
{
	while (ctx->redis->unread > 0) {
		void *r = NULL;

		if (redisGetReply(ctx->redis->c, &r) != REDIS_OK)
			return cqi_redis_io_err(ctx);
		freeReplyObject(r);
		ctx->redis->unread--;
	}
	return CQ_OK;
}

/* The command is queued behind any reply still unread and goes out before
 * that reply is waited for (cqi_redis_reply writes the whole output
 * buffer first), so a reply skipped here costs no round trip. */
redisReply *cqi_redis_cmd(struct cq_ctx *ctx, int argc, const char **argv,
			  const size_t *lens)
{
	redisReply *r;

	if (cqi_redis_append(ctx, argc, argv, lens) || cqi_redis_reply(ctx, &r))
		return NULL;
	if (r->type == REDIS_REPLY_ERROR) {
		char what[80];

		snprintf(what, sizeof(what), "%s", argv[0]);
		cqi_redis_reply_err(ctx, r, what);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

enum cq_err cqi_redis_append(struct cq_ctx *ctx, int argc, const char **argv,
			     const size_t *lens)
{
	if (ctx->err)
		return ctx->err;
	if (!ctx->redis && cq_redis_connect(ctx))
		return ctx->err;
	if (redisAppendCommandArgv(ctx->redis->c, argc, argv, lens) != REDIS_OK)
		return cqi_redis_io_err(ctx);
	return CQ_OK;
}

enum cq_err cqi_redis_reply(struct cq_ctx *ctx, redisReply **reply)
{
	void *r = NULL;

	*reply = NULL;
	if (ctx->err)
		return ctx->err;
	if (skip_unread(ctx))
		return ctx->err;
	if (redisGetReply(ctx->redis->c, &r) != REDIS_OK)
		return cqi_redis_io_err(ctx);
	*reply = r;
	return CQ_OK;
}
