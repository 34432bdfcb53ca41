/* redis.c - the Redis driver: connect (TCP, unix socket, TLS
 * through redis_tls.c), log in,
 * format commands, send them singly or in windowed pipelines, and read
 * replies in order with hiredis's reply parser.  The only file that talks
 * to a Redis socket or calls hiredis (see redis_int.h). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <hiredis/read.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

/* Send when this many bytes are queued, whatever the command count. */
#define OUT_MAX_BYTES (1U << 20)
/* Read this much at a time. */
#define READ_CHUNK (64U << 10)

struct cqi_redis {
	int fd;
	struct cqi_tls *tls;	/* NULL for plain TCP and unix sockets */
	redisReader *reader;
	struct cq_buf out;	/* formatted commands; out.data[sent..] unsent */
	size_t sent;
	size_t awaited;		/* replies callers will read, queued or sent */
	size_t skip;		/* fire-and-forget replies ahead of them */
	bool heard;		/* the server has sent something */
	char where[300];	/* host:port or socket path, no secrets */
};

_Static_assert(CQI_REPLY_STRING == REDIS_REPLY_STRING &&
	       CQI_REPLY_ARRAY == REDIS_REPLY_ARRAY &&
	       CQI_REPLY_INTEGER == REDIS_REPLY_INTEGER &&
	       CQI_REPLY_NIL == REDIS_REPLY_NIL &&
	       CQI_REPLY_STATUS == REDIS_REPLY_STATUS &&
	       CQI_REPLY_ERROR == REDIS_REPLY_ERROR,
	       "reply types follow hiredis's numbering");

/* ---- replies: hiredis's parser builds struct cqi_reply ------------------ */

void cqi_reply_free(struct cqi_reply *r)
{
	if (!r)
		return;
	if (r->element) {
		for (size_t i = 0; i < r->elements; i++)
			cqi_reply_free(r->element[i]);
		free(r->element);
	}
	free(r->str);
	free(r);
}

static void *new_reply(const redisReadTask *task, int type)
{
	struct cqi_reply *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->type = (enum cqi_reply_type)type;
	if (task->parent) {
		struct cqi_reply *parent = task->parent->obj;

		parent->element[task->idx] = r;
	}
	return r;
}

static void *reply_string(const redisReadTask *task, char *s, size_t len)
{
	char *copy = malloc(len + 1);
	struct cqi_reply *r;

	if (!copy)
		return NULL;
	r = new_reply(task, task->type);
	if (!r) {
		free(copy);
		return NULL;
	}
	memcpy(copy, s, len);
	copy[len] = '\0';
	r->str = copy;
	r->len = len;
	return r;
}

static void *reply_array(const redisReadTask *task, int n)
{
	struct cqi_reply **el = NULL;
	struct cqi_reply *r;

	if (n > 0 && !(el = calloc((size_t)n, sizeof(*el))))
		return NULL;
	r = new_reply(task, CQI_REPLY_ARRAY);
	if (!r) {
		free(el);
		return NULL;
	}
	r->element = el;
	r->elements = n > 0 ? (size_t)n : 0;
	return r;
}

static void *reply_integer(const redisReadTask *task, long long v)
{
	struct cqi_reply *r = new_reply(task, CQI_REPLY_INTEGER);

	if (r)
		r->integer = v;
	return r;
}

static void *reply_nil(const redisReadTask *task)
{
	return new_reply(task, CQI_REPLY_NIL);
}

static void reply_free(void *r)
{
	cqi_reply_free(r);
}

static redisReplyObjectFunctions reply_fns = {
	reply_string, reply_array, reply_integer, reply_nil, reply_free,
};

/* ---- the command encoder ------------------------------------------------ */

/* "<c><n>\r\n" at p; returns the end. */
static char *put_len(char *p, char c, size_t n)
{
	char tmp[24], *t = tmp + sizeof(tmp);

	do {
		*--t = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	*p++ = c;
	memcpy(p, t, (size_t)(tmp + sizeof(tmp) - t));
	p += tmp + sizeof(tmp) - t;
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

/* Append the RESP encoding of one command to b. */
static bool resp_append(struct cq_buf *b, int argc, const char **argv,
			const size_t *lens)
{
	size_t need = 24, n;
	char *p;
	int i;

	for (i = 0; i < argc; i++)
		need += (lens ? lens[i] : strlen(argv[i])) + 25;
	if (!cq_buf_reserve(b, need))
		return false;
	p = put_len(b->data + b->len, '*', (size_t)argc);
	for (i = 0; i < argc; i++) {
		n = lens ? lens[i] : strlen(argv[i]);
		p = put_len(p, '$', n);
		memcpy(p, argv[i], n);
		p += n;
		*p++ = '\r';
		*p++ = '\n';
	}
	b->len = (size_t)(p - b->data);
	b->data[b->len] = '\0';
	return true;
}

/* ---- errors --------------------------------------------------------------- */

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

enum cq_err cqi_redis_reply_err(struct cq_ctx *ctx, const struct cqi_reply *r,
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

/* A plain connection the server dropped before its first reply: a server
 * that died, or a TLS port (which hangs up on plain text). */
static enum cq_err mute_err(struct cq_ctx *ctx, const char *how)
{
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
			 "Redis at %s %s before its first reply (a TLS port? then use rediss://)",
			 ctx->redis->where, how);
}

/* A failed read or write (errno set): a timeout, or a broken link. */
static enum cq_err io_err(struct cq_ctx *ctx)
{
	const char *where = ctx->redis->where;

	if (errno == ECONNRESET && !ctx->redis->heard && !ctx->redis->tls)
		return mute_err(ctx, "reset the connection");
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
				 "Redis at %s timed out (--timeout %lldms)", where,
				 ctx->set.timeout_ms);
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL, "Redis at %s: %s", where,
			 strerror(errno));
}

static enum cq_err eof_err(struct cq_ctx *ctx)
{
	if (!ctx->redis->heard && !ctx->redis->tls)
		return mute_err(ctx, "closed the connection");
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
			 "Redis at %s closed the connection", ctx->redis->where);
}

/* ---- the transport ------------------------------------------------------ */

/* Write everything queued. */
static enum cq_err flush_out(struct cq_ctx *ctx)
{
	struct cqi_redis *r = ctx->redis;

	while (r->sent < r->out.len) {
		const char *p = r->out.data + r->sent;
		size_t n = r->out.len - r->sent;
		long w;

		if (r->tls) {
			w = cqi_tls_write(ctx, r->tls, p, n, r->where);
			if (w < 0)
				return ctx->err;
		} else {
			w = send(r->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return io_err(ctx);
		}
		r->sent += (size_t)w;
	}
	cq_buf_reset(&r->out);
	r->sent = 0;
	/* do not keep a huge buffer after a huge value */
	if (r->out.cap > 4 * OUT_MAX_BYTES)
		cq_buf_free(&r->out);
	return CQ_OK;
}

/* Read what the server has sent (at least one byte) into the parser. */
static enum cq_err fill(struct cq_ctx *ctx)
{
	struct cqi_redis *r = ctx->redis;
	char buf[READ_CHUNK];
	long n;

	if (r->tls) {
		n = cqi_tls_read(ctx, r->tls, buf, sizeof(buf), r->where);
		if (n < 0)
			return ctx->err;
	} else {
		do
			n = recv(r->fd, buf, sizeof(buf), 0);
		while (n < 0 && errno == EINTR);
	}
	if (n < 0)
		return io_err(ctx);
	if (n == 0)
		return eof_err(ctx);
	r->heard = true;
	if (redisReaderFeed(r->reader, buf, (size_t)n) != REDIS_OK)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

/* The next reply off the wire, whoever it belongs to. */
static enum cq_err next_reply(struct cq_ctx *ctx, struct cqi_reply **out)
{
	struct cqi_redis *r = ctx->redis;
	void *rep = NULL;

	for (;;) {
		if (redisReaderGetReply(r->reader, &rep) != REDIS_OK)
			return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
					 "%s does not speak the Redis protocol (%s): is the port right?",
					 r->where, r->reader->errstr);
		if (rep) {
			*out = rep;
			return CQ_OK;
		}
		if (fill(ctx))
			return ctx->err;
	}
}

static void redis_close(struct cq_ctx *ctx)
{
	struct cqi_redis *r = ctx->redis;

	if (!r)
		return;
	cqi_tls_close(r->tls);
	if (r->fd >= 0)
		close(r->fd);
	if (r->reader)
		redisReaderFree(r->reader);
	cq_buf_free(&r->out);
	free(r);
	ctx->redis = NULL;
}

static void set_timeouts(int fd, long long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* connect(2) within ms; returns 0 or an errno. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len,
			  long long ms)
{
	int flags = fcntl(fd, F_GETFL), err = 0;
	socklen_t elen = sizeof(err);
	struct pollfd pfd = { fd, POLLOUT, 0 };

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return errno;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return errno;
		int n;

		do
			n = poll(&pfd, 1, ms > 0x7fffffff ? 0x7fffffff : (int)ms);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return errno;
		if (n == 0)
			return ETIMEDOUT;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return errno;
		if (err)
			return err;
	}
	if (fcntl(fd, F_SETFL, flags) < 0)
		return errno;
	return 0;
}

static enum cq_err open_unix(struct cq_ctx *ctx, const char *path)
{
	struct cqi_redis *r = ctx->redis;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int e;

	if (strlen(path) >= sizeof(sa.sun_path))
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "socket path '%s' is too long", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", r->where,
				 strerror(errno));
	e = connect_within(r->fd, (struct sockaddr *)&sa, sizeof(sa),
			   ctx->set.timeout_ms);
	if (e)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", r->where,
				 strerror(e));
	return CQ_OK;
}

static enum cq_err open_tcp(struct cq_ctx *ctx, const char *host, int port)
{
	struct cqi_redis *r = ctx->redis;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char ports[16];
	int e = ECONNREFUSED, one = 1;

	snprintf(ports, sizeof(ports), "%d", port);
	e = getaddrinfo(host, ports, &hints, &res);
	if (e)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", r->where,
				 gai_strerror(e));
	for (ai = res; ai; ai = ai->ai_next) {
		r->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (r->fd < 0) {
			e = errno;
			continue;
		}
		e = connect_within(r->fd, ai->ai_addr, ai->ai_addrlen,
				   ctx->set.timeout_ms);
		if (!e)
			break;
		close(r->fd);
		r->fd = -1;
	}
	freeaddrinfo(res);
	if (r->fd < 0)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", r->where,
				 strerror(e));
	setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(r->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	return CQ_OK;
}

static enum cq_err redis_open(struct cq_ctx *ctx, const struct cqi_redis_url *u)
{
	struct cqi_redis *r = calloc(1, sizeof(*r));

	if (!r)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	r->fd = -1;
	ctx->redis = r;
	ctx->redis_close = redis_close;
	r->reader = redisReaderCreateWithFunctions(&reply_fns);
	if (!r->reader)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (u->path) {
		snprintf(r->where, sizeof(r->where), "%s", u->path);
		if (open_unix(ctx, u->path))
			return ctx->err;
	} else {
		snprintf(r->where, sizeof(r->where),
			 strchr(u->host, ':') ? "[%s]:%d" : "%s:%d", u->host,
			 u->port);
		if (open_tcp(ctx, u->host, u->port))
			return ctx->err;
	}
	set_timeouts(r->fd, ctx->set.timeout_ms);
	if (u->tls && cqi_tls_open(ctx, r->fd, u->host, r->where, &r->tls))
		return ctx->err;
	return CQ_OK;
}

/* ---- logging in ----------------------------------------------------------- */

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

static enum cq_err redis_auth(struct cq_ctx *ctx, const char *user,
			      const char *pass)
{
	const char *argv[3] = { "AUTH" };
	struct cqi_reply *r;
	int argc = 1;

	if (user)
		argv[argc++] = user;
	argv[argc++] = pass;
	if (cqi_redis_append(ctx, CQI_ANY, argc, argv, NULL) ||
	    cqi_redis_reply(ctx, &r))
		return ctx->err;
	if (r->type == CQI_REPLY_ERROR) {
		cq_seterr(ctx, CQ_ERR_NOPERM,
			  "Redis at %s refused the %s: %s", ctx->redis->where,
			  user ? "user name or password" : "password",
			  strncmp(r->str, "WRONGPASS", 9) == 0 ?
			  "wrong user name or password" : r->str);
		cqi_reply_free(r);
		return ctx->err;
	}
	cqi_reply_free(r);
	return CQ_OK;
}

static enum cq_err redis_select(struct cq_ctx *ctx, int db)
{
	char dbs[16];
	const char *argv[2] = { "SELECT", dbs };
	struct cqi_reply *r;

	snprintf(dbs, sizeof(dbs), "%d", db);
	r = cqi_redis_cmd(ctx, CQI_ANY, 2, argv, NULL);
	/* a database the server does not have is the URL's fault: usage */
	if (!r && ctx->err == CQ_ERR_INTERNAL &&
	    strstr(ctx->errstr, "DB index is out of range"))
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "Redis at %s has no database %d (its 'databases' setting is lower; see the URL's /DB)",
				 ctx->redis->where, db);
	if (!r)
		return ctx->err;
	cqi_reply_free(r);
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

/* ---- commands ------------------------------------------------------------- */

/* One node: every route leads to it.  A route still has to make sense. */
static enum cq_err check_route(struct cq_ctx *ctx, int route, int argc,
			       const char **argv)
{
	if (route < CQI_MASTERS || route >= argc)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "%s: route %d names no argument", argv[0],
				 route);
	return CQ_OK;
}

enum cq_err cqi_redis_append(struct cq_ctx *ctx, int route, int argc,
			     const char **argv, const size_t *lens)
{
	if (ctx->err)
		return ctx->err;
	if (!ctx->redis)	/* the caller connects (cli_ready) */
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "not connected to Redis");
	if (check_route(ctx, route, argc, argv))
		return ctx->err;
	if (!resp_append(&ctx->redis->out, argc, argv, lens))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	ctx->redis->awaited++;
	return CQ_OK;
}

enum cq_err cqi_redis_reply(struct cq_ctx *ctx, struct cqi_reply **reply)
{
	struct cqi_redis *r = ctx->redis;

	*reply = NULL;
	if (ctx->err)
		return ctx->err;
	if (!r || !r->awaited)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "a Redis reply was read that no command awaits");
	if (flush_out(ctx))
		return ctx->err;
	/* the replies of commands sent without waiting come first (their
	 * error replies too: they belong to no caller) */
	while (r->skip > 0) {
		struct cqi_reply *drop;

		if (next_reply(ctx, &drop))
			return ctx->err;
		cqi_reply_free(drop);
		r->skip--;
	}
	if (next_reply(ctx, reply))
		return ctx->err;
	r->awaited--;
	return CQ_OK;
}

struct cqi_reply *cqi_redis_cmd(struct cq_ctx *ctx, int route, int argc,
				const char **argv, const size_t *lens)
{
	struct cqi_reply *r;

	if (cqi_redis_append(ctx, route, argc, argv, lens) ||
	    cqi_redis_reply(ctx, &r))
		return NULL;
	if (r->type == CQI_REPLY_ERROR) {
		char what[80];

		snprintf(what, sizeof(what), "%s", argv[0]);
		cqi_redis_reply_err(ctx, r, what);
		cqi_reply_free(r);
		return NULL;
	}
	return r;
}

enum cq_err cqi_redis_send_noreply(struct cq_ctx *ctx, int route, int argc,
				   const char **argv, const size_t *lens)
{
	struct cqi_redis *r = ctx->redis;
	struct cq_ctx quiet = *ctx;	/* failures here are not the caller's */

	if (ctx->err || !r)
		return CQ_ERR_UNAVAILABLE;
	if (r->awaited || route < CQI_MASTERS || route >= argc)
		return CQ_ERR_INTERNAL;
	if (!resp_append(&r->out, argc, argv, lens))
		return CQ_ERR_NOMEM;
	r->skip++;
	return flush_out(&quiet);
}

/* ---- pipelines with a bounded window -------------------------------------- */

enum cq_err cqi_pipe_init(struct cqi_pipe *p, struct cq_ctx *ctx,
			  size_t window, cqi_reply_fn fn, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->ctx = ctx;
	p->window = window ? window : 1000;
	p->batch = p->window / 4 ? p->window / 4 : 1;
	p->ring = p->window + p->batch + 1;
	p->fn = fn;
	p->arg = arg;
	p->tags = calloc(p->ring, sizeof(*p->tags));
	if (!p->tags)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (ctx->err)
		return ctx->err;
	if (!ctx->redis)	/* the caller connects (cli_ready) */
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "not connected to Redis");
	return CQ_OK;
}

void cqi_pipe_free(struct cqi_pipe *p)
{
	if (!p)
		return;
	free(p->tags);
	p->tags = NULL;
}

static enum cq_err send_queued(struct cqi_pipe *p)
{
	if (!p->nout)
		return CQ_OK;
	if (flush_out(p->ctx))
		return p->ctx->err;
	p->inflight += p->nout;
	p->nout = 0;
	return CQ_OK;
}

static enum cq_err read_one(struct cqi_pipe *p)
{
	struct cqi_reply *r;
	uint64_t tag;

	if (cqi_redis_reply(p->ctx, &r))
		return p->ctx->err;
	tag = p->tags[p->head];
	p->head = (p->head + 1) % p->ring;
	p->count--;
	p->inflight--;
	if (p->fn)
		p->fn(p->arg, tag, r);
	cqi_reply_free(r);
	return CQ_OK;
}

enum cq_err cqi_pipe_sync(struct cqi_pipe *p, size_t keep)
{
	if (p->ctx->err)
		return p->ctx->err;
	if (send_queued(p))
		return p->ctx->err;
	while (p->inflight > keep)
		if (read_one(p))
			return p->ctx->err;
	return CQ_OK;
}

enum cq_err cqi_pipe_cmd(struct cqi_pipe *p, uint64_t tag, int route,
			 int argc, const char **argv, const size_t *lens)
{
	if (cqi_redis_append(p->ctx, route, argc, argv, lens))
		return p->ctx->err;
	p->tags[(p->head + p->count) % p->ring] = tag;
	p->count++;
	p->nout++;
	if (p->nout < p->batch && p->ctx->redis->out.len < OUT_MAX_BYTES)
		return CQ_OK;
	if (send_queued(p))
		return p->ctx->err;
	/* keep the server busy: read back only down to window - batch */
	if (p->inflight > p->window)
		return cqi_pipe_sync(p, p->window - p->batch);
	return CQ_OK;
}
