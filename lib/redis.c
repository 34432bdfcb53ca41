/* redis.c - the Redis driver: connect (TCP, unix socket, TLS
 * through redis_tls.c), log in,
 * format commands, send them singly or in windowed pipelines, and read
 * replies in order with hiredis's reply parser.  The only file that talks
 * to a Redis socket or calls hiredis (see redis_int.h).
 *
 * Behind a Sentinel (redis-sentinel://) it is a single Redis whose node is
 * the master sentinel.c finds; commands keep their text as on a cluster,
 * and a master lost in the middle of work is found again (rejoin, and a
 * pipeline's recover) and sent every command not answered yet.  On a
 * cluster the same two send a lost node's unanswered commands to whichever
 * node serves their slots once the map says so (take_over). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
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
/* A single Redis's pipeline reads replies back rather than keep more
 * text than this in flight (to send again after a -LOADING). */
#define KEEP_MAX_BYTES (16U << 20)
/* Read this much at a time. */
#define READ_CHUNK (64U << 10)

/* Most nodes of a cluster (masters and the replicas that take over). */
#define MAX_NODES 256
/* A command redirected more often than this gets the MOVED as its reply. */
#define MAX_REDIRECTS 16
/* TRYAGAIN and CLUSTERDOWN: a single command is tried again this many
 * times (about 1.6 s in all); a pipeline's, for up to FAILOVER_WAIT. */
#define BUSY_TRIES 6
/* How long a pipeline or a single command waits for a node that went down
 * to be replaced (take_over). */
#define FAILOVER_WAIT(ctx) (3 * (ctx)->set.timeout_ms)
/* The pause between two looks at a node that is not back yet: lost
 * (take_over) or loading its dataset (still_loading). */
#define RETRY_PAUSE_MS 200
/* What a node owes that nobody awaits (fire and forget, ASKING). */
#define DROP UINT64_MAX
/* The slot of a command for one master only (its INFO, a SCAN with its
 * cursor): on a cluster, sent again to that node alone if it is lost. */
#define PINNED (-2)

/* One connection to one node. */
struct node {
	int fd;			/* -1: not connected (yet, or any more) */
	struct cqi_tls *tls;	/* NULL for plain TCP and unix sockets */
	redisReader *reader;
	struct cq_buf out;	/* formatted commands; out.data[sent..] unsent */
	size_t sent;
	bool heard;		/* the server has sent something */
	char *host;		/* NULL for a unix socket */
	char *path;		/* the unix socket, or NULL */
	int port;
	char where[300];	/* host:port or socket path, no secrets */
	unsigned conn;		/* connections opened so far */
	long long loading_since; /* its first -LOADING reply in a row, or 0 */
	long long loading_paused; /* when its last pause for one ended */
	/* the replies it owes, in wire order: an awaited command's
	 * sequence number, or DROP */
	uint64_t *owed;
	size_t ohead, ocount, ocap;
};

/* A command whose reply a caller will read (cqi_redis_reply). */
struct await {
	int node;		/* where it was sent */
	int slot;		/* of its key, or -1 */
	unsigned tries;
	unsigned lost;		/* times its node was lost (rejoin) */
	unsigned conn;		/* its node's connection it was sent over */
	long long lost_at;	/* when it was first lost (rejoin), or 0 */
	long long sent_at;	/* when it was last sent */
	char *cmd;		/* its RESP text, for a resend */
	size_t len;
	struct cqi_reply *reply;	/* read ahead of its turn */
};

struct cqi_redis {
	struct node **nodes;
	size_t nnodes;
	int cur;		/* the node of the URL that answered */
	int from;		/* the node the last reply came from, or -1 */
	enum { MODE_UNKNOWN, MODE_SINGLE, MODE_CLUSTER } mode;
	bool map_stale;		/* a MOVED changed a slot: ask again */
	uint16_t *slots;	/* [CQI_SLOTS]: master's node index + 1, or 0 */
	int *masters;		/* node indexes (the single node on one) */
	size_t nmasters;
	/* awaited commands, seqs ahead..atail-1, in a ring of acap (a power
	 * of 2) */
	struct await *aw;
	size_t acap;
	uint64_t ahead, atail;
	/* what a node needs to log in */
	char *user, *pass;
	bool tls;
	/* behind a Sentinel: how to find the master, and its db */
	struct cqi_sentinel *sentinel;
	int db;
	/* commands whose replies were lost, sent again (cqi_redis_rejoins):
	 * how often, and where the last lost ones had gone */
	unsigned long rejoins;
	char rejoined_from[300];
};
#define AW(rd, seq) (&(rd)->aw[(seq) & ((rd)->acap - 1)])

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
	    strncmp(s, "CLUSTERDOWN", 11) == 0 ||
	    strncmp(s, "READONLY", 8) == 0 || strncmp(s, "OOM", 3) == 0)
		return CQ_ERR_TEMPFAIL;
	return CQ_ERR_INTERNAL;
}

enum cq_err cqi_redis_reply_err(struct cq_ctx *ctx, const struct cqi_reply *r,
				const char *what)
{
	const char *s = r->str ? r->str : "";

	if (strncmp(s, "NOAUTH", 6) == 0)	/* say which node asks */
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "Redis at %s needs a password (put it in the URL, CQ_REDIS_PASSWORD or --password-file)",
				 ctx->redis && ctx->redis->from >= 0 ?
				 ctx->redis->nodes[ctx->redis->from]->where :
				 cqi_redis_where(ctx));
	switch (cqi_redis_err_kind(s)) {
	case CQ_ERR_NOPERM:
		return cq_seterr(ctx, CQ_ERR_NOPERM, "%s: permission denied: %s",
				 what, s);
	case CQ_ERR_DATA:
		return cq_seterr(ctx, CQ_ERR_DATA,
				 "%s: the key holds a non-string type", what);
	case CQ_ERR_TEMPFAIL:
		if (cqi_cluster_busy(s))
			return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
					 "%s: not done: the Redis cluster still said '%s' after %d tries",
					 what, s, BUSY_TRIES + 1);
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL, "%s: %s", what, s);
	default:
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "%s: Redis said: %s",
				 what, s);
	}
}

/* A plain connection the server dropped before its first reply: a server
 * that died, or a TLS port (which hangs up on plain text). */
static enum cq_err mute_err(struct cq_ctx *ctx, struct node *n, const char *how)
{
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
			 "Redis at %s %s before its first reply (a TLS port? then use rediss://)",
			 n->where, how);
}

/* A failed read or write (errno set): a timeout, or a broken link. */
static enum cq_err io_err(struct cq_ctx *ctx, struct node *n)
{
	if (errno == ECONNRESET && !n->heard && !n->tls)
		return mute_err(ctx, n, "reset the connection");
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
				 "Redis at %s timed out (--timeout %lldms)", n->where,
				 ctx->set.timeout_ms);
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL, "Redis at %s: %s", n->where,
			 strerror(errno));
}

static enum cq_err eof_err(struct cq_ctx *ctx, struct node *n)
{
	if (!n->heard && !n->tls)
		return mute_err(ctx, n, "closed the connection");
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
			 "Redis at %s closed the connection", n->where);
}

static void sleep_ms(long long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- a node loading its dataset ------------------------------------------ */

static bool is_loading(const struct cqi_reply *r)
{
	return r->type == CQI_REPLY_ERROR && r->str &&
	       strncmp(r->str, "LOADING", 7) == 0;
}

/* Is r, node n's reply, a -LOADING worth trying again?  A Redis just
 * restarted answers so until its RDB or AOF is read: it is waited for as
 * a lost node is (take_over), up to FAILOVER_WAIT from its first such
 * reply in a row, RETRY_PAUSE_MS between tries (the caller's to take).
 * When the time is up, or a stop request (SIGTERM) came, r says so
 * instead, naming n; any other reply ends n's wait. */
static bool still_loading(struct cq_ctx *ctx, struct node *n,
			  struct cqi_reply *r)
{
	long long now = cq_now_ms();
	char msg[400], stop[80] = "", *s;

	if (!is_loading(r)) {
		n->loading_since = 0;
		return false;
	}
	if (!n->loading_since)
		n->loading_since = now;
	if (now - n->loading_since < FAILOVER_WAIT(ctx) && !cq_stop_requested())
		return true;
	if (cq_stop_requested())	/* not the time: a signal ended it */
		snprintf(stop, sizeof(stop), " (the wait for it was stopped by %s)",
			 cq_stop_name());
	snprintf(msg, sizeof(msg),
		 "LOADING: Redis at %s was still loading its dataset into memory after %.1fs%s",
		 n->where, (double)(now - n->loading_since) / 1000, stop);
	if ((s = strdup(msg))) {
		free(r->str);
		r->str = s;
		r->len = strlen(s);
	}
	return false;
}

/* ---- the transport: one connection to one node -------------------------- */

static enum cq_err write_all(struct cq_ctx *ctx, struct node *n,
			     const char *p, size_t len)
{
	while (len > 0) {
		long w;

		if (n->tls) {
			w = cqi_tls_write(ctx, n->tls, p, len, n->where);
			if (w < 0)
				return ctx->err;
		} else {
			w = send(n->fd, p, len, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return io_err(ctx, n);
		}
		p += w;
		len -= (size_t)w;
	}
	return CQ_OK;
}

/* Write everything queued on n. */
static enum cq_err flush_out(struct cq_ctx *ctx, struct node *n)
{
	if (n->sent < n->out.len &&
	    write_all(ctx, n, n->out.data + n->sent, n->out.len - n->sent))
		return ctx->err;
	cq_buf_reset(&n->out);
	n->sent = 0;
	/* do not keep a huge buffer after a huge value */
	if (n->out.cap > 4 * OUT_MAX_BYTES)
		cq_buf_free(&n->out);
	return CQ_OK;
}

/* Read what the server has sent (at least one byte) into the parser. */
static enum cq_err fill(struct cq_ctx *ctx, struct node *n)
{
	char buf[READ_CHUNK];
	long got;

	if (n->tls) {
		got = cqi_tls_read(ctx, n->tls, buf, sizeof(buf), n->where);
		if (got < 0)
			return ctx->err;
	} else {
		do
			got = recv(n->fd, buf, sizeof(buf), 0);
		while (got < 0 && errno == EINTR);
	}
	if (got < 0)
		return io_err(ctx, n);
	if (got == 0)
		return eof_err(ctx, n);
	n->heard = true;
	if (redisReaderFeed(n->reader, buf, (size_t)got) != REDIS_OK)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

/* A reply already read off the wire, if there is one (*out NULL if not). */
static enum cq_err parsed_reply(struct cq_ctx *ctx, struct node *n,
				struct cqi_reply **out)
{
	void *rep = NULL;

	*out = NULL;
	if (redisReaderGetReply(n->reader, &rep) != REDIS_OK)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "%s does not speak the Redis protocol (%s): is the port right?",
				 n->where, n->reader->errstr);
	*out = rep;
	return CQ_OK;
}

/* Will a read of n's socket return within ms?  Bytes OpenSSL already
 * decrypted count; so does an error (for the read to report). */
static bool readable_within(const struct node *n, long long ms)
{
	struct pollfd pfd = { n->fd, POLLIN, 0 };
	int got;

	if (n->tls && cqi_tls_pending(n->tls))
		return true;
	if (ms < 0)
		ms = 0;
	do
		got = poll(&pfd, 1, ms > 0x7fffffff ? 0x7fffffff : (int)ms);
	while (got < 0 && errno == EINTR);
	return got != 0;
}

/* The next reply off n's wire, whoever it belongs to; with a deadline
 * (end >= 0, cq_now_ms's clock) *out is NULL when it has not come by
 * then, without one it is waited for (up to --timeout per read). */
static enum cq_err next_reply(struct cq_ctx *ctx, struct node *n,
			      long long end, struct cqi_reply **out)
{
	for (;;) {
		if (parsed_reply(ctx, n, out))
			return ctx->err;
		if (*out || (end >= 0 && !readable_within(n, end - cq_now_ms())))
			return CQ_OK;
		if (fill(ctx, n))
			return ctx->err;
	}
}

/* Close n's connection (it is opened again when next needed); what it
 * had queued or owed is dropped. */
static void node_hangup(struct node *n)
{
	cqi_tls_close(n->tls);
	n->tls = NULL;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	if (n->reader)
		redisReaderFree(n->reader);
	n->reader = NULL;
	cq_buf_free(&n->out);
	n->sent = 0;
	n->ocount = n->ohead = 0;
	n->heard = false;
}

static void node_free(struct node *n)
{
	if (!n)
		return;
	node_hangup(n);
	free(n->owed);
	free(n->host);
	free(n->path);
	free(n);
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

static enum cq_err open_unix(struct cq_ctx *ctx, struct node *n)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int e;

	if (strlen(n->path) >= sizeof(sa.sun_path))
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "socket path '%s' is too long", n->path);
	memcpy(sa.sun_path, n->path, strlen(n->path) + 1);
	n->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", n->where,
				 strerror(errno));
	e = connect_within(n->fd, (struct sockaddr *)&sa, sizeof(sa),
			   ctx->set.timeout_ms);
	if (e)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", n->where,
				 strerror(e));
	return CQ_OK;
}

static enum cq_err open_tcp(struct cq_ctx *ctx, struct node *n)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char ports[16];
	int e = ECONNREFUSED, one = 1;

	snprintf(ports, sizeof(ports), "%d", n->port);
	e = getaddrinfo(n->host, ports, &hints, &res);
	if (e)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", n->where,
				 gai_strerror(e));
	for (ai = res; ai; ai = ai->ai_next) {
		n->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (n->fd < 0) {
			e = errno;
			continue;
		}
		e = connect_within(n->fd, ai->ai_addr, ai->ai_addrlen,
				   ctx->set.timeout_ms);
		if (!e)
			break;
		close(n->fd);
		n->fd = -1;
	}
	freeaddrinfo(res);
	if (n->fd < 0)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: %s", n->where,
				 strerror(e));
	setsockopt(n->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(n->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	return CQ_OK;
}

/* Run one command on n while it owes no reply; an error reply is
 * returned as a reply. */
static struct cqi_reply *node_call(struct cq_ctx *ctx, struct node *n,
				   int argc, const char **argv)
{
	struct cqi_reply *r;

	if (!resp_append(&n->out, argc, argv, NULL)) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return NULL;
	}
	if (flush_out(ctx, n) || next_reply(ctx, n, -1, &r))
		return NULL;
	return r;
}

static enum cq_err node_auth(struct cq_ctx *ctx, struct node *n)
{
	struct cqi_redis *rd = ctx->redis;
	const char *argv[3] = { "AUTH" };
	struct cqi_reply *r;
	int argc = 1;

	if (rd->user)
		argv[argc++] = rd->user;
	argv[argc++] = rd->pass;
	r = node_call(ctx, n, argc, argv);
	if (!r)
		return ctx->err;
	if (r->type == CQI_REPLY_ERROR) {
		cq_seterr(ctx, CQ_ERR_NOPERM,
			  "Redis at %s refused the %s: %s", n->where,
			  rd->user ? "user name or password" : "password",
			  strncmp(r->str, "WRONGPASS", 9) == 0 ?
			  "wrong user name or password" : r->str);
		cqi_reply_free(r);
		return ctx->err;
	}
	cqi_reply_free(r);
	return CQ_OK;
}

static enum cq_err redis_select(struct cq_ctx *ctx, struct node *n, int db);

/* Connect n (TCP, unix socket or TLS) and log in (behind a Sentinel,
 * with the URL's db selected: a master found again is like the first). */
static enum cq_err node_open(struct cq_ctx *ctx, struct node *n)
{
	struct cqi_redis *rd = ctx->redis;

	n->conn++;	/* what the last connection owed, this one does not */
	n->reader = redisReaderCreateWithFunctions(&reply_fns);
	if (!n->reader)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (n->path ? open_unix(ctx, n) : open_tcp(ctx, n))
		goto fail;
	set_timeouts(n->fd, ctx->set.timeout_ms);
	if (rd->tls && cqi_tls_open(ctx, n->fd, n->host, n->where, &n->tls))
		goto fail;
	if (rd->pass && node_auth(ctx, n))
		goto fail;
	if (rd->sentinel && rd->db && redis_select(ctx, n, rd->db))
		goto fail;
	return CQ_OK;
fail:
	node_hangup(n);
	return ctx->err;
}

/* ---- the nodes ------------------------------------------------------------ */

/* The index of the node host:port (or the socket path), added unconnected
 * if new; -1 with the context error set. */
static int node_index(struct cq_ctx *ctx, const char *host, int port,
		      const char *path)
{
	struct cqi_redis *rd = ctx->redis;
	struct node *n, **v;
	size_t i;

	for (i = 0; i < rd->nnodes; i++) {
		n = rd->nodes[i];
		if (path ? n->path && strcmp(n->path, path) == 0 :
		    n->host && n->port == port && strcmp(n->host, host) == 0)
			return (int)i;
	}
	if (rd->nnodes >= MAX_NODES) {
		cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
			  "the Redis cluster names more than %d nodes",
			  MAX_NODES);
		return -1;
	}
	n = calloc(1, sizeof(*n));
	v = realloc(rd->nodes, (rd->nnodes + 1) * sizeof(*v));
	if (v)
		rd->nodes = v;
	if (!n || !v || !(path ? (n->path = strdup(path)) :
			 (n->host = strdup(host)))) {
		node_free(n);
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return -1;
	}
	n->fd = -1;
	n->port = port;
	if (path)
		snprintf(n->where, sizeof(n->where), "%s", path);
	else
		cqi_host_port(n->where, sizeof(n->where), host, port);
	rd->nodes[rd->nnodes++] = n;
	return (int)i;
}

/* Node i, connected. */
static struct node *node_ready(struct cq_ctx *ctx, int i)
{
	struct node *n = ctx->redis->nodes[i];

	if (n->fd < 0 && node_open(ctx, n))
		return NULL;
	return n;
}

/* Push seq (or DROP) on what n owes, in wire order. */
static bool owe(struct node *n, uint64_t seq)
{
	if (n->ocount == n->ocap) {
		size_t cap = n->ocap ? 2 * n->ocap : 16;
		uint64_t *v = malloc(cap * sizeof(*v));

		if (!v)
			return false;
		for (size_t i = 0; i < n->ocount; i++)
			v[i] = n->owed[(n->ohead + i) % n->ocap];
		free(n->owed);
		n->owed = v;
		n->ohead = 0;
		n->ocap = cap;
	}
	n->owed[(n->ohead + n->ocount++) % n->ocap] = seq;
	return true;
}

static uint64_t owed_pop(struct node *n)
{
	uint64_t seq = n->owed[n->ohead];

	n->ohead = (n->ohead + 1) % n->ocap;
	n->ocount--;
	return seq;
}

/* ---- the slot map ----------------------------------------------------------- */

/* Load the map from a CLUSTER SLOTS reply given by node `from`. */
static enum cq_err load_map(struct cq_ctx *ctx, const struct cqi_reply *r,
			    int from)
{
	struct cqi_redis *rd = ctx->redis;
	struct cqi_slot_range *v;
	size_t n = cqi_cluster_slots(r, &v), m;
	int *masters = calloc(n ? n : 1, sizeof(*masters));

	if (!v || !masters) {
		free(v);
		free(masters);
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	memset(rd->slots, 0, CQI_SLOTS * sizeof(*rd->slots));
	rd->nmasters = 0;
	for (size_t i = 0; i < n; i++) {
		const char *host = v[i].host[0] ? v[i].host :
				   rd->nodes[from]->host;
		int ni = host ? node_index(ctx, host, v[i].port, NULL) : -1;

		if (ni < 0)
			break;
		for (unsigned s = v[i].lo; s <= v[i].hi; s++)
			rd->slots[s] = (uint16_t)(ni + 1);
		for (m = 0; m < rd->nmasters && masters[m] != ni; m++)
			;
		if (m == rd->nmasters)
			masters[rd->nmasters++] = ni;
	}
	free(v);
	free(rd->masters);
	rd->masters = masters;
	rd->map_stale = false;
	return ctx->err;
}

/* Ask node i for the map (it owes nothing).  A Redis that is not a cluster
 * says so, and is then the only master. */
static enum cq_err ask_map(struct cq_ctx *ctx, int i)
{
	struct cqi_redis *rd = ctx->redis;
	const char *argv[2] = { "CLUSTER", "SLOTS" };
	struct node *n;
	struct cqi_reply *r;
	enum cq_err e;

	for (;;) {	/* a node loading its dataset is waited for */
		n = node_ready(ctx, i);
		r = n ? node_call(ctx, n, 2, argv) : NULL;
		if (!r || !still_loading(ctx, n, r))
			break;
		cqi_reply_free(r);
		sleep_ms(RETRY_PAUSE_MS);
	}
	if (!r)
		return ctx->err;
	if (is_loading(r)) {
		e = cq_seterr(ctx, CQ_ERR_TEMPFAIL, "%s", r->str);
		cqi_reply_free(r);
		return e;
	}
	if (r->type == CQI_REPLY_ERROR) {
		if (cqi_cluster_off(r->str))
			rd->mode = MODE_SINGLE;
		rd->masters[0] = i;
		rd->nmasters = 1;
		cqi_reply_free(r);
		return CQ_OK;
	}
	rd->mode = MODE_CLUSTER;
	e = load_map(ctx, r, i);
	cqi_reply_free(r);
	return e;
}

static bool idle(const struct cqi_redis *rd)
{
	if (rd->ahead != rd->atail)
		return false;
	for (size_t i = 0; i < rd->nnodes; i++)
		if (rd->nodes[i]->ocount)
			return false;
	return true;
}

/* Find out what Redis is, or refresh a map a MOVED made stale, when no
 * reply is owed. */
static enum cq_err settle_map(struct cq_ctx *ctx)
{
	struct cqi_redis *rd = ctx->redis;

	if (rd->mode == MODE_SINGLE || !idle(rd))
		return CQ_OK;
	if (rd->mode == MODE_CLUSTER && !rd->map_stale)
		return CQ_OK;
	return ask_map(ctx, rd->cur);
}

size_t cqi_redis_masters(struct cq_ctx *ctx)
{
	if (ctx->err)
		return 0;
	if (!ctx->redis) {
		cq_seterr(ctx, CQ_ERR_INTERNAL, "not connected to Redis");
		return 0;
	}
	if (settle_map(ctx))
		return 0;
	if (!ctx->redis->nmasters) {
		cq_seterr(ctx, CQ_ERR_TEMPFAIL,
			  "Redis at %s is a cluster node that serves no hash slot (CLUSTER SLOTS is empty: is the cluster set up?)",
			  cqi_redis_where(ctx));
		return 0;
	}
	return ctx->redis->nmasters;
}

const char *cqi_redis_master_where(const struct cq_ctx *ctx, size_t m)
{
	const struct cqi_redis *rd = ctx->redis;

	if (!rd || m >= rd->nmasters)
		return "";
	return rd->nodes[rd->masters[m]]->where;
}

bool cqi_redis_is_cluster(const struct cq_ctx *ctx)
{
	return ctx->redis && ctx->redis->mode == MODE_CLUSTER;
}

/* The node a command goes to; -1 with the context error set. */
static int route_node(struct cq_ctx *ctx, int route, int argc,
		      const char **argv, const size_t *lens, int *slot)
{
	struct cqi_redis *rd = ctx->redis;

	*slot = -1;
	if (route < CQI_MASTERS) {	/* CQI_MASTER(m) */
		size_t m = (size_t)(CQI_MASTER(0) - route);

		*slot = PINNED;
		if (m < rd->nmasters)
			return rd->masters[m];
	}
	if (route < CQI_MASTERS || route >= argc) {
		cq_seterr(ctx, CQ_ERR_INTERNAL,
			  "%s: route %d names no argument or master", argv[0],
			  route);
		return -1;
	}
	if (route > CQI_ANY && rd->mode != MODE_SINGLE) {
		*slot = (int)cqi_key_slot(argv[route], lens ? lens[route] :
					  strlen(argv[route]));
		if (rd->slots[*slot])
			return rd->slots[*slot] - 1;
	}
	return rd->cur;
}

/* ---- connecting ------------------------------------------------------------- */

enum cq_err cqi_password_pick(struct cq_ctx *ctx, const char *direct,
			      const char *file, const char *what,
			      const char *fallback, char **pass)
{
	char line[1024];
	FILE *f;

	*pass = NULL;
	if (direct) {
		*pass = strdup(direct);
		goto done;
	}
	if (!file) {
		if (fallback)
			*pass = strdup(fallback);
		goto done;
	}
	f = fopen(file, "r");
	if (!f)
		return cq_seterr(ctx, CQ_ERR_USAGE, "cannot read %s '%s': %s",
				 what, file, strerror(errno));
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	*pass = strdup(line);
	memset(line, 0, sizeof(line));
done:
	if ((direct || file || fallback) && !*pass)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

void cqi_password_free(char *pass)
{
	if (!pass)
		return;
	memset(pass, 0, strlen(pass));
	free(pass);
}

static enum cq_err redis_select(struct cq_ctx *ctx, struct node *n, int db)
{
	char dbs[16];
	const char *argv[2] = { "SELECT", dbs };
	struct cqi_reply *r;

	snprintf(dbs, sizeof(dbs), "%d", db);
	r = node_call(ctx, n, 2, argv);
	if (!r)
		return ctx->err;
	if (r->type != CQI_REPLY_ERROR) {
		cqi_reply_free(r);
		return CQ_OK;
	}
	/* a database the server does not have is the URL's fault: usage */
	if (strstr(r->str, "DB index is out of range"))
		cq_seterr(ctx, CQ_ERR_USAGE,
			  "Redis at %s has no database %d (its 'databases' setting is lower; see the URL's /DB)",
			  n->where, db);
	else if (strstr(r->str, "cluster mode"))
		cq_seterr(ctx, CQ_ERR_USAGE,
			  "Redis at %s is a cluster node, and a cluster has database 0 only (end the URL with /0)",
			  n->where);
	else
		cqi_redis_reply_err(ctx, r, "SELECT");
	cqi_reply_free(r);
	return ctx->err;
}

static void redis_close(struct cq_ctx *ctx)
{
	struct cqi_redis *rd = ctx->redis;

	if (!rd)
		return;
	for (size_t i = 0; i < rd->nnodes; i++)
		node_free(rd->nodes[i]);
	free(rd->nodes);
	for (uint64_t s = rd->ahead; s < rd->atail; s++) {
		free(AW(rd, s)->cmd);
		cqi_reply_free(AW(rd, s)->reply);
	}
	free(rd->aw);
	free(rd->slots);
	free(rd->masters);
	cqi_password_free(rd->pass);
	free(rd->user);
	cqi_sentinel_free(rd->sentinel);
	free(rd);
	ctx->redis = NULL;
}

/* Connect to the first node of the URL that answers (the others are
 * fallbacks, or a cluster's other seeds); db is selected on it. */
static enum cq_err connect_first(struct cq_ctx *ctx,
				 const struct cqi_redis_url *u)
{
	struct cqi_redis *rd = ctx->redis;
	size_t n = u->path ? 1 : u->nnodes, i, len = 0;
	char tried[400] = "", first[sizeof(ctx->errstr)] = "";

	for (i = 0; i < n; i++) {
		int ni = u->path ? node_index(ctx, NULL, 0, u->path) :
			 node_index(ctx, u->nodes[i].host, u->nodes[i].port, NULL);

		if (ni < 0)
			return ctx->err;
		if (node_ready(ctx, ni) &&
		    (!u->db || !redis_select(ctx, rd->nodes[ni], u->db))) {
			rd->cur = ni;
			/* the other seeds, known for a map if this one is lost */
			while (++i < n)
				if (node_index(ctx, u->nodes[i].host,
					       u->nodes[i].port, NULL) < 0)
					return ctx->err;
			return CQ_OK;
		}
		node_hangup(rd->nodes[ni]);
		/* a refused password or a bad db is the same on every node */
		if (n == 1 || (ctx->err != CQ_ERR_UNAVAILABLE &&
			       ctx->err != CQ_ERR_TEMPFAIL))
			return ctx->err;
		if (!first[0])
			snprintf(first, sizeof(first), "%s", ctx->errstr);
		if (len < sizeof(tried))
			len += (size_t)snprintf(tried + len, sizeof(tried) - len,
						"%s%s", i ? ", " : "",
						rd->nodes[ni]->where);
		cqi_err_drop(ctx);	/* the next node is tried */
	}
	return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
			 "cannot connect to any node of the Redis URL (%s): %s",
			 tried, first);
}

/* ctx's driver state, not connected yet: the user and password to log
 * in with (the password picked from the environment, a file or url_pass). */
static enum cq_err redis_new(struct cq_ctx *ctx, const char *user,
			     const char *url_pass)
{
	struct cqi_redis *rd = calloc(1, sizeof(*rd));

	if (!rd)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	ctx->redis = rd;
	ctx->redis_close = redis_close;
	rd->from = -1;
	rd->slots = calloc(CQI_SLOTS, sizeof(*rd->slots));
	rd->masters = calloc(1, sizeof(*rd->masters));
	rd->nmasters = 1;
	rd->user = user ? strdup(user) : NULL;
	if (!rd->slots || !rd->masters || (user && !rd->user))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return cqi_password_pick(ctx, ctx->set.redis_password,
				 ctx->set.password_file, "password file",
				 url_pass, &rd->pass);
}

/* ---- behind a Sentinel -------------------------------------------------------- */

/* The node a sentinel named: connected, logged in, and master by ROLE?
 * (a cqi_sentinel_try_fn) */
static enum cq_err try_master(void *arg, const char *host, int port,
			      char *why, size_t whylen)
{
	struct cq_ctx *ctx = arg;
	struct cqi_redis *rd = ctx->redis;
	const char *argv[1] = { "ROLE" };
	int ni = node_index(ctx, host, port, NULL);
	struct node *n = ni >= 0 ? node_ready(ctx, ni) : NULL;
	struct cqi_reply *r = n ? node_call(ctx, n, 1, argv) : NULL;
	bool master = r && r->type == CQI_REPLY_ARRAY && r->elements &&
		      r->element[0]->type == CQI_REPLY_STRING &&
		      strcmp(r->element[0]->str, "master") == 0;

	if (master) {
		cqi_reply_free(r);
		rd->cur = rd->masters[0] = ni;
		return CQ_OK;
	}
	/* a master that wants a password (or a user allowed ROLE) */
	if (r && r->type == CQI_REPLY_ERROR &&
	    cqi_redis_err_kind(r->str) == CQ_ERR_NOPERM) {
		rd->from = ni;	/* the reply's node, for the message */
		cqi_redis_reply_err(ctx, r, "ROLE");
	}
	if (ni < 0 || ctx->err == CQ_ERR_NOPERM || ctx->err == CQ_ERR_USAGE ||
	    ctx->err == CQ_ERR_NOMEM) {
		cqi_reply_free(r);
		return ctx->err;
	}
	if (r)
		cqi_errbuf(why, whylen, "the sentinels name %s as master '%s', but it is a %s (a failover under way?)",
			   rd->nodes[ni]->where,
			   cqi_sentinel_parts(rd->sentinel)->master,
			   r->type == CQI_REPLY_ARRAY && r->elements &&
			   r->element[0]->type == CQI_REPLY_STRING ?
			   r->element[0]->str : "node of another role");
	else
		cqi_errbuf(why, whylen, "master '%s': %s",
			   cqi_sentinel_parts(rd->sentinel)->master, ctx->errstr);
	cqi_reply_free(r);
	node_hangup(rd->nodes[ni]);
	cqi_err_drop(ctx);
	return CQ_ERR_TEMPFAIL;
}

/* The master the sentinels name, connected as the current node. */
static enum cq_err find_master(struct cq_ctx *ctx, long long deadline)
{
	struct cqi_redis *rd = ctx->redis;

	return cqi_sentinel_find(ctx, rd->sentinel, rd->pass, deadline,
				 try_master, ctx);
}

static enum cq_err sentinel_connect(struct cq_ctx *ctx)
{
	struct cqi_sentinel *s;
	const struct cqi_sentinel_url *u;

	if (cqi_sentinel_new(ctx, &s))
		return ctx->err;
	u = cqi_sentinel_parts(s);
	if (redis_new(ctx, u->user, u->pass)) {
		cqi_sentinel_free(s);
		redis_close(ctx);
		return ctx->err;
	}
	ctx->redis->sentinel = s;
	ctx->redis->db = u->db;
	ctx->redis->mode = MODE_SINGLE;
	if (find_master(ctx, cq_now_ms() + ctx->set.timeout_ms))
		redis_close(ctx);
	return ctx->err;
}

enum cq_err cq_redis_connect(struct cq_ctx *ctx)
{
	struct cqi_redis_url u;
	struct cqi_redis *rd;
	char errbuf[200], safe[300];
	enum cq_err e;

	if (ctx->err)
		return ctx->err;
	if (ctx->redis)
		return CQ_OK;
	if (cqi_is_sentinel_url(ctx->set.redis_url))
		return sentinel_connect(ctx);
	e = cqi_redis_url_parse(ctx->set.redis_url, &u, errbuf, sizeof(errbuf));
	if (e) {
		cqi_url_redact(ctx->set.redis_url, safe, sizeof(safe));
		return cq_seterr(ctx, e, "bad Redis URL '%s': %s", safe, errbuf);
	}
	e = redis_new(ctx, u.user, u.pass);
	rd = ctx->redis;
	if (rd)
		rd->tls = u.tls;
	if (!e)
		e = connect_first(ctx, &u);
	if (!e)
		rd->masters[0] = rd->cur;
	/* a unix socket is no cluster node's address */
	if (!e && u.path)
		rd->mode = MODE_SINGLE;
	cqi_redis_url_clear(&u);
	if (e)
		redis_close(ctx);
	return e;
}

const char *cqi_redis_where(const struct cq_ctx *ctx)
{
	const struct cqi_redis *rd = ctx->redis;

	return rd && rd->nnodes ? rd->nodes[rd->cur]->where : "";
}

/* ---- commands: the awaited replies, in the order they were asked for ---- */

/* Make room for one more awaited command. */
static bool aw_grow(struct cqi_redis *rd)
{
	size_t cap;
	struct await *v;

	if (rd->atail - rd->ahead < rd->acap)
		return true;
	cap = rd->acap ? 2 * rd->acap : 64;
	v = calloc(cap, sizeof(*v));
	if (!v)
		return false;
	for (uint64_t s = rd->ahead; s < rd->atail; s++)
		v[s & (cap - 1)] = *AW(rd, s);
	free(rd->aw);
	rd->aw = v;
	rd->acap = cap;
	return true;
}

/* Queue the RESP text of a command on node ni, awaited as seq (or DROP). */
static enum cq_err queue_on(struct cq_ctx *ctx, int ni, uint64_t seq,
			    const char *cmd, size_t len)
{
	struct node *n = node_ready(ctx, ni);

	if (!n)
		return ctx->err;
	if (!cq_buf_append(&n->out, cmd, len) || !owe(n, seq))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

static enum cq_err rejoin(struct cq_ctx *ctx);

/* Queue one command on node ni, awaited in order.  On a cluster or behind
 * a Sentinel a node that cannot be reached is rejoined (its command kept
 * to be sent where the slot map or the sentinels say). */
static enum cq_err push_cmd(struct cq_ctx *ctx, int ni, int slot, int argc,
			    const char **argv, const size_t *lens)
{
	struct cqi_redis *rd = ctx->redis;
	struct node *n = node_ready(ctx, ni);
	bool keep = rd->mode != MODE_SINGLE || rd->sentinel;
	struct await *a;
	size_t at;

	if (!n && !keep)
		return ctx->err;
	n = rd->nodes[ni];
	at = n->out.len;
	if (!aw_grow(rd) || !resp_append(&n->out, argc, argv, lens) ||
	    !owe(n, rd->atail))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	a = AW(rd, rd->atail);
	memset(a, 0, sizeof(*a));
	a->node = ni;
	a->slot = slot;
	a->conn = n->conn;
	a->sent_at = cq_now_ms();
	/* a copy to send again after a redirection, or to a node that was
	 * loading its dataset */
	a->len = n->out.len - at;
	a->cmd = malloc(a->len);
	if (!a->cmd)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	memcpy(a->cmd, n->out.data + at, a->len);
	rd->atail++;
	if (n->fd >= 0)
		return CQ_OK;
	node_hangup(n);
	return rejoin(ctx);
}

enum cq_err cqi_redis_append(struct cq_ctx *ctx, int route, int argc,
			     const char **argv, const size_t *lens)
{
	struct cqi_redis *rd = ctx->redis;
	int ni, slot;

	if (ctx->err)
		return ctx->err;
	if (!rd)	/* the caller connects (cli_ready) */
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "not connected to Redis");
	if ((route <= CQI_MASTERS || rd->map_stale) && settle_map(ctx))
		return ctx->err;
	if (route == CQI_MASTERS && argc > 0) {
		for (size_t m = 0; m < rd->nmasters; m++)
			if (push_cmd(ctx, rd->masters[m], PINNED, argc, argv,
				     lens))
				return ctx->err;
		return CQ_OK;
	}
	ni = route_node(ctx, route, argc, argv, lens, &slot);
	if (ni < 0)
		return ctx->err;
	return push_cmd(ctx, ni, slot, argc, argv, lens);
}

/* Send awaited command a (seq) again, to node ni; after an ASK, ASKING
 * first. */
static enum cq_err resend(struct cq_ctx *ctx, struct await *a, uint64_t seq,
			  int ni, bool ask)
{
	static const char asking[] = "*1\r\n$6\r\nASKING\r\n";

	a->node = ni;	/* a failure below leaves it lost there (rejoin) */
	a->tries++;
	a->sent_at = cq_now_ms();
	if ((ask && queue_on(ctx, ni, DROP, asking, sizeof(asking) - 1)) ||
	    queue_on(ctx, ni, seq, a->cmd, a->len) ||
	    flush_out(ctx, ctx->redis->nodes[ni]))
		node_hangup(ctx->redis->nodes[ni]);
	a->conn = ctx->redis->nodes[ni]->conn;
	return ctx->err;
}

/* A pause before another try of a cluster in trouble: 25 ms, doubling. */
static void busy_pause(unsigned tries)
{
	long long ms = 25LL << (tries < 6 ? tries : 6);

	sleep_ms(ms);
}

/* An error reply to command a that the router deals with: a MOVED or ASK
 * (sent again where it says), a TRYAGAIN or CLUSTERDOWN (sent again a
 * little later, a few times).  True if a was sent again (or the context
 * error set). */
static bool redirected(struct cq_ctx *ctx, struct await *a, uint64_t seq,
		       struct cqi_reply *r)
{
	struct cqi_redis *rd = ctx->redis;
	struct cqi_redirect to;
	int ni;

	if (still_loading(ctx, rd->nodes[a->node], r)) {
		struct node *n = rd->nodes[a->node];
		unsigned tries = a->tries;

		/* one pause for every command sent before it */
		if (a->sent_at >= n->loading_paused) {
			sleep_ms(RETRY_PAUSE_MS);
			n->loading_paused = cq_now_ms();
		}
		ni = a->slot >= 0 && rd->slots[a->slot] ?
		     rd->slots[a->slot] - 1 : a->node;
		resend(ctx, a, seq, ni, false);
		a->tries = tries;	/* not a redirection nor a busy reply */
		return true;
	}
	if (r->type != CQI_REPLY_ERROR)
		return false;
	if (cqi_cluster_redirect(r->str, &to)) {
		if (a->tries >= MAX_REDIRECTS)
			return false;
		rd->mode = MODE_CLUSTER;
		ni = node_index(ctx, to.host[0] ? to.host :
				rd->nodes[a->node]->host, to.port, NULL);
		if (ni < 0)
			return true;
		if (!to.ask) {
			rd->slots[to.slot] = (uint16_t)(ni + 1);
			rd->map_stale = true;
		}
		resend(ctx, a, seq, ni, to.ask);
		return true;
	}
	if (!cqi_cluster_busy(r->str) || a->tries >= BUSY_TRIES)
		return false;
	rd->mode = MODE_CLUSTER;	/* only a cluster says so */
	busy_pause(a->tries);
	ni = a->slot >= 0 && rd->slots[a->slot] ? rd->slots[a->slot] - 1 :
	     a->node;
	resend(ctx, a, seq, ni, false);
	return true;
}

/* Give r, node n's next reply, to the command it belongs to. */
static enum cq_err give_reply(struct cq_ctx *ctx, struct node *n,
			      struct cqi_reply *r)
{
	struct cqi_redis *rd = ctx->redis;
	struct await *a;
	uint64_t seq;

	seq = owed_pop(n);
	if (seq == DROP) {
		cqi_reply_free(r);
		return CQ_OK;
	}
	a = AW(rd, seq);
	if (redirected(ctx, a, seq, r)) {
		cqi_reply_free(r);
		return ctx->err;
	}
	a->reply = r;
	return CQ_OK;
}

/* Read node ni's next reply and give it to the command it belongs to;
 * with a deadline (end >= 0) *came is false when it has not come by
 * then. */
static enum cq_err take_reply(struct cq_ctx *ctx, int ni, long long end,
			      bool *came)
{
	struct node *n = ctx->redis->nodes[ni];
	struct cqi_reply *r;

	*came = false;
	if (!n->ocount)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "a Redis reply was awaited from %s, which owes none",
				 n->where);
	if (next_reply(ctx, n, end, &r)) {
		node_hangup(n);	/* its awaited commands are lost (rejoin) */
		return ctx->err;
	}
	if (!r)
		return CQ_OK;
	*came = true;
	return give_reply(ctx, n, r);
}

/* The oldest awaited command's reply, which has come: hand it over. */
static struct cqi_reply *pop_awaited(struct cqi_redis *rd)
{
	struct await *a = AW(rd, rd->ahead);
	struct cqi_reply *r = a->reply;

	rd->from = a->node;
	free(a->cmd);
	memset(a, 0, sizeof(*a));
	rd->ahead++;
	return r;
}

/* Send what every node has queued; a node that fails is hung up, its
 * awaited commands lost (rejoin). */
static enum cq_err flush_all(struct cq_ctx *ctx)
{
	struct cqi_redis *rd = ctx->redis;

	for (size_t i = 0; i < rd->nnodes; i++)
		if (rd->nodes[i]->out.len && flush_out(ctx, rd->nodes[i])) {
			node_hangup(rd->nodes[i]);
			return ctx->err;
		}
	return CQ_OK;
}

/* The oldest awaited command's reply, waited for until end (cq_now_ms's
 * clock), or for good if end < 0: *reply NULL when it has not come by
 * then (it stays awaited).  A node lost meanwhile is rejoined, the
 * command sent again where its reply will come from, however long that
 * takes (a blocking read, BLMOVE or XREADGROUP BLOCK, too: it is safe
 * to send again, see rejoin); its reply is then waited for until end
 * only, what is left of it. */
static enum cq_err reply_by(struct cq_ctx *ctx, long long end,
			    struct cqi_reply **reply)
{
	struct cqi_redis *rd = ctx->redis;
	struct await *a;
	bool came;

	*reply = NULL;
	if (ctx->err)
		return ctx->err;
	if (!rd || rd->ahead == rd->atail)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "a Redis reply was read that no command awaits");
	if (flush_all(ctx) && rejoin(ctx))
		return ctx->err;
	a = AW(rd, rd->ahead);
	while (!a->reply) {
		if (take_reply(ctx, a->node, end, &came)) {
			if (rejoin(ctx))
				return ctx->err;
			continue;	/* sent again: a look for its reply */
		}
		if (!came)
			return CQ_OK;	/* not yet: it stays awaited */
	}
	*reply = pop_awaited(rd);
	return CQ_OK;
}

enum cq_err cqi_redis_reply(struct cq_ctx *ctx, struct cqi_reply **reply)
{
	return reply_by(ctx, -1, reply);
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
	struct cqi_redis *rd = ctx->redis;
	struct cq_ctx quiet = *ctx;	/* failures here are not the caller's */
	struct node *n;
	int ni, slot;

	if (ctx->err || !rd)
		return CQ_ERR_UNAVAILABLE;
	if (rd->ahead != rd->atail || route <= CQI_MASTERS || route >= argc)
		return CQ_ERR_INTERNAL;
	ni = route_node(&quiet, route, argc, argv, lens, &slot);
	if (ni < 0 || (n = rd->nodes[ni])->fd < 0)
		return CQ_ERR_UNAVAILABLE;	/* not worth a connection */
	if (!resp_append(&n->out, argc, argv, lens) || !owe(n, DROP))
		return CQ_ERR_NOMEM;
	return flush_out(&quiet, n);
}

/* ---- waiting for a reply without blocking ------------------------------- */

int cqi_redis_fd(const struct cq_ctx *ctx)
{
	const struct cqi_redis *rd = ctx->redis;
	int ni;

	if (!rd || !rd->nnodes)
		return -1;
	ni = rd->ahead != rd->atail ? AW(rd, rd->ahead)->node : rd->cur;
	return ni >= 0 && (size_t)ni < rd->nnodes ? rd->nodes[ni]->fd : -1;
}

/* Has n's server hung up (EOF, or a reset), as far as a look that reads
 * nothing can tell?  Over TLS a record that is no reply (a session
 * ticket) is taken in on the way, with the socket not blocking. */
static bool hung_up(struct node *n)
{
	char c;
	long got;
	int flags;

	if (!n->tls) {
		do
			got = recv(n->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
		while (got < 0 && errno == EINTR);
		return got == 0 ||
		       (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
	}
	flags = fcntl(n->fd, F_GETFL);
	if (flags < 0 || fcntl(n->fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return false;
	got = cqi_tls_peek(n->tls);
	fcntl(n->fd, F_SETFL, flags);
	return got < 0;
}

enum cq_err cqi_redis_check_idle(struct cq_ctx *ctx)
{
	struct cqi_redis *rd = ctx->redis;
	struct pollfd pfd;
	struct node *n;

	if (ctx->err || !rd || rd->ahead != rd->atail || rd->cur < 0 ||
	    (size_t)rd->cur >= rd->nnodes)
		return ctx->err;
	n = rd->nodes[rd->cur];
	if (n->fd < 0 || n->ocount)
		return CQ_OK;
	pfd = (struct pollfd){ n->fd, POLLIN, 0 };
	if (poll(&pfd, 1, 0) <= 0 || !hung_up(n))
		return CQ_OK;
	/* closed here too, so that nobody polls it any more */
	node_hangup(n);
	if (rd->mode == MODE_SINGLE && !rd->sentinel)
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
				 "Redis at %s closed the connection", n->where);
	return CQ_OK;	/* opened again, or replaced, when next needed */
}

enum cq_err cqi_redis_reply_within(struct cq_ctx *ctx, long long wait_ms,
				   struct cqi_reply **reply)
{
	return reply_by(ctx, cq_now_ms() + (wait_ms > 0 ? wait_ms : 0), reply);
}

/* ---- pipelines with a bounded window -------------------------------------- */

/*
 * On a single Redis a pipeline writes into the node's output buffer and
 * reads its replies in order (p->cmds), keeping each command's text (p->log)
 * until its reply came: one refused with -LOADING (the server reloading
 * its dataset, DEBUG RELOAD) is sent again after a pause, as long as
 * still_loading says.  On a cluster each master
 * has its own pipeline (struct pnode, one window each), all driven from
 * here: a command's text stays in its node's log until its reply came,
 * so that a MOVED or ASK sends it again to the node named, and a master
 * lost in the middle has its unanswered commands sent again once another
 * node serves their slots.
 */
/* A master may fall behind the others (3 servers and warm share 2 cores
 * here): it gets up to BACKLOG windows in flight before the pipeline
 * waits for it, so that one master's slow turn does not leave the others
 * idle.  Measured on 1M keys into 3 masters: 1.42x one node, against
 * 1.12x when every master was waited for at one window. */
#define BACKLOG 4
struct pitem {
	uint64_t tag;
	uint32_t len;		/* of its RESP text in the log */
	int32_t slot;		/* -1: no key */
	uint16_t tries;
	bool drop;		/* ASKING: its reply is nobody's */
};

struct pnode {
	struct cq_buf log;	/* the unanswered commands' text, from head */
	size_t head, sent;	/* offsets: the first unanswered, written */
	struct pitem *it;	/* ring of the unanswered, oldest first */
	size_t ihead, icount, icap;
	size_t inflight;	/* the first inflight items were written */
	bool down;		/* its connection broke: waiting for a node */
	bool gone;		/* no node took its slots: its commands fail */
	long long lost_at;	/* lost, and not heard from since (0: it answers) */
	/* in trouble (TRYAGAIN, CLUSTERDOWN, LOADING): nothing is sent to it
	 * before pause_until; the other nodes go on */
	long long pause_until;
	unsigned busy;		/* its busy replies in a row */
	long long busy_since;	/* the first of them */
};

struct cqi_cpipe {
	struct pnode *pn;	/* one per node of the context */
	size_t npn;
	bool any_down;
};


enum cq_err cqi_pipe_init(struct cqi_pipe *p, struct cq_ctx *ctx,
			  size_t window, cqi_reply_fn fn, void *arg)
{
	struct cqi_redis *rd = ctx->redis;
	bool came;

	memset(p, 0, sizeof(*p));
	p->ctx = ctx;
	p->window = window ? window : 1000;
	p->batch = p->window / 4 ? p->window / 4 : 1;
	p->ring = p->window + p->batch + 1;
	p->fn = fn;
	p->arg = arg;
	p->cmds = calloc(p->ring, sizeof(*p->cmds));
	p->held = calloc(p->ring, sizeof(*p->held));
	if (!p->cmds || !p->held)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (ctx->err)
		return ctx->err;
	if (!rd)	/* the caller connects (cli_ready) */
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "not connected to Redis");
	if (rd->ahead != rd->atail)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "a pipeline was started while replies are awaited");
	/* replies nobody waits for (fire and forget) go first */
	for (size_t i = 0; i < rd->nnodes; i++)
		while (rd->nodes[i]->ocount)
			if (take_reply(ctx, (int)i, -1, &came))
				return ctx->err;
	if (settle_map(ctx))
		return ctx->err;
	/* behind a Sentinel too: a command is kept until its reply came */
	if ((rd->mode == MODE_CLUSTER || rd->sentinel) &&
	    !(p->cl = calloc(1, sizeof(*p->cl))))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

void cqi_pipe_free(struct cqi_pipe *p)
{
	if (!p)
		return;
	free(p->cmds);
	p->cmds = NULL;
	cq_buf_free(&p->log);
	p->loghead = 0;
	for (size_t i = 0; i < p->nheld; i++)
		cqi_reply_free(p->held[i].r);
	free(p->held);
	p->held = NULL;
	p->nheld = 0;
	free(p->after);
	p->after = NULL;
	if (p->cl) {
		for (size_t i = 0; i < p->cl->npn; i++) {
			cq_buf_free(&p->cl->pn[i].log);
			free(p->cl->pn[i].it);
		}
		free(p->cl->pn);
		free(p->cl);
		p->cl = NULL;
	}
}

/* ---- a single Redis ---- */

static struct node *pipe_node(struct cqi_pipe *p)
{
	return p->ctx->redis->nodes[p->ctx->redis->cur];
}

static struct cqi_pcmd *pcmd(struct cqi_pipe *p, size_t i)
{
	return &p->cmds[(p->head + i) % p->ring];
}

static enum cq_err send_queued(struct cqi_pipe *p)
{
	if (!p->nout)
		return CQ_OK;
	if (flush_out(p->ctx, pipe_node(p)))
		return p->ctx->err;
	p->inflight += p->nout;
	p->nout = 0;
	return CQ_OK;
}

/* Queue command c, its text t (c.len bytes, already at the end of the
 * log), for sending. */
static enum cq_err queue_text(struct cqi_pipe *p, struct cqi_pcmd c,
			      const char *t)
{
	if (!cq_buf_append(&pipe_node(p)->out, t, c.len))
		return cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	*pcmd(p, p->count) = c;
	p->count++;
	p->nout++;
	return CQ_OK;
}

/* Forget the oldest command's text; the log is compacted now and then. */
static void log_pop(struct cqi_pipe *p, size_t len)
{
	p->loghead += len;
	if (p->loghead == p->log.len) {
		cq_buf_reset(&p->log);
		p->loghead = 0;
	} else if (p->loghead > (256U << 10) && p->loghead * 2 > p->log.len) {
		memmove(p->log.data, p->log.data + p->loghead,
			p->log.len - p->loghead);
		p->log.len -= p->loghead;
		p->loghead = 0;
	}
}

/* Note the key of a command answered while commands refused before it
 * are held: sent again, they would land after it. */
static void answered_after(struct cqi_pipe *p, uint64_t key)
{
	if (!key) {
		p->after_any = true;
		return;
	}
	if (p->nafter == p->aftercap) {
		size_t cap = p->aftercap ? p->aftercap * 2 : 64;
		uint64_t *a = realloc(p->after, cap * sizeof(*a));

		if (!a) {	/* unknown: as if it had no key */
			p->after_any = true;
			return;
		}
		p->after = a;
		p->aftercap = cap;
	}
	p->after[p->nafter++] = key;
}

static int key_order(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Was a command on held command c's key answered after it? */
static bool overtaken(const struct cqi_pipe *p, const struct cqi_pcmd *c)
{
	if (p->after_any || (!c->key && p->nafter))
		return true;
	return p->nafter &&
	       bsearch(&c->key, p->after, p->nafter, sizeof(*p->after),
		       key_order);
}

/*
 * Every reply in flight is read: the held commands (refused with
 * -LOADING) go out again, in their order, after one pause, unless a
 * later command on the same key was answered meanwhile (the reload ended
 * under the batch): sent again, one would land after it, and a later
 * line's value give way to an earlier one's.  Such a command's refusal
 * is its caller's, as when the wait runs out.  Their texts are at the
 * log's end: the kept ones stay there, in order.
 */
static enum cq_err resolve_held(struct cqi_pipe *p)
{
	size_t from = p->log.len, to, n = p->nheld;
	bool paused = false;

	for (size_t i = 0; i < n; i++)
		from -= p->held[i].c.len;
	to = from;
	if (p->nafter)
		qsort(p->after, p->nafter, sizeof(*p->after), key_order);
	p->nheld = 0;
	for (size_t i = 0; i < n; i++) {
		struct cqi_pheld *h = &p->held[i];
		size_t len = h->c.len;

		if (overtaken(p, &h->c) || p->ctx->err) {
			if (p->fn)
				p->fn(p->arg, h->c.tag, h->r);
		} else {
			if (!paused) {
				sleep_ms(RETRY_PAUSE_MS);
				paused = true;
			}
			memmove(p->log.data + to, p->log.data + from, len);
			if (!queue_text(p, h->c, p->log.data + to))
				to += len;
			else if (p->fn)	/* out of memory */
				p->fn(p->arg, h->c.tag, h->r);
		}
		from += len;
		cqi_reply_free(h->r);
		h->r = NULL;
	}
	p->log.len = to;
	p->nafter = 0;
	p->after_any = false;
	return p->ctx->err;
}

static enum cq_err read_reply(struct cqi_pipe *p)
{
	struct node *n = pipe_node(p);
	struct cqi_pcmd c = *pcmd(p, 0);
	struct cqi_reply *r;
	bool hold;

	if (next_reply(p->ctx, n, -1, &r))
		return p->ctx->err;
	p->head = (p->head + 1) % p->ring;
	p->count--;
	p->inflight--;
	/* held only while no single command waits behind it (a list's take
	 * right behind its writes): that one is answered first, and its
	 * caller reads the replies in wire order */
	hold = !n->ocount && still_loading(p->ctx, n, r);
	if (hold) {
		/* its text, moved to the end of the log (room made first:
		 * it is copied from the log itself); out of memory, the
		 * reply is its caller's */
		hold = cq_buf_reserve(&p->log, c.len) &&
		       cq_buf_append(&p->log, p->log.data + p->loghead, c.len);
	} else if (p->nheld && !is_loading(r)) {
		answered_after(p, c.key);
	}
	log_pop(p, c.len);
	if (hold) {
		p->held[p->nheld++] = (struct cqi_pheld){ c, r };
		return CQ_OK;
	}
	if (p->fn)
		p->fn(p->arg, c.tag, r);
	cqi_reply_free(r);
	return p->ctx->err;
}

/* Read one reply; once one is held (-LOADING), every reply in flight,
 * and then the held ones are sent again or failed. */
static enum cq_err read_one(struct cqi_pipe *p)
{
	do {
		if (read_reply(p))
			return p->ctx->err;
	} while (p->nheld && p->inflight);
	return p->nheld ? resolve_held(p) : CQ_OK;
}

static enum cq_err single_sync(struct cqi_pipe *p, size_t keep)
{
	do {
		if (send_queued(p))
			return p->ctx->err;
		while (p->inflight > keep)
			if (read_one(p))
				return p->ctx->err;
		/* commands sent again (-LOADING) go out and are read back
		 * too */
	} while (p->nout && p->inflight + p->nout > keep);
	return CQ_OK;
}

static enum cq_err single_cmd(struct cqi_pipe *p, uint64_t tag, int route,
			      int argc, const char **argv, const size_t *lens)
{
	struct node *n = pipe_node(p);
	size_t at = p->log.len;
	struct cqi_pcmd c = { 0 };

	if (route < CQI_MASTERS || route >= argc || route == CQI_MASTERS)
		return cq_seterr(p->ctx, CQ_ERR_INTERNAL,
				 "%s: route %d is not for a pipeline", argv[0],
				 route);
	if (!resp_append(&p->log, argc, argv, lens))
		return cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	c.tag = tag;
	c.len = (uint32_t)(p->log.len - at);
	if (route > 0)		/* odd: 0 is "no key" */
		c.key = cqi_hash64(CQI_HASH_INIT, argv[route],
				   lens ? lens[route] : strlen(argv[route])) | 1;
	if (queue_text(p, c, p->log.data + at))
		return p->ctx->err;
	if (p->nout < p->batch && n->out.len < OUT_MAX_BYTES)
		return CQ_OK;
	if (send_queued(p))
		return p->ctx->err;
	/* keep the server busy: read back only down to window - batch; and
	 * keep no more than KEEP_MAX_BYTES of text in flight (large values) */
	if (p->inflight > p->window)
		return single_sync(p, p->window - p->batch);
	while (p->inflight && p->log.len - p->loghead > KEEP_MAX_BYTES)
		if (read_one(p))
			return p->ctx->err;
	return CQ_OK;
}

/* ---- a cluster: a pipeline per node ---- */

static struct pnode *pn_at(struct cqi_pipe *p, int ni)
{
	struct cqi_cpipe *c = p->cl;
	size_t want = p->ctx->redis->nnodes;

	if ((size_t)ni >= c->npn) {
		struct pnode *v = realloc(c->pn, want * sizeof(*v));

		if (!v)
			return NULL;
		memset(v + c->npn, 0, (want - c->npn) * sizeof(*v));
		c->pn = v;
		c->npn = want;
	}
	return &c->pn[ni];
}

static struct pitem *pn_item(struct pnode *pn, size_t i)
{
	return &pn->it[(pn->ihead + i) % pn->icap];
}

/* Add an item whose text is already at the end of pn's log. */
static bool pn_push(struct pnode *pn, const struct pitem *item)
{
	if (pn->icount == pn->icap) {
		size_t cap = pn->icap ? 2 * pn->icap : 256;
		struct pitem *v = malloc(cap * sizeof(*v));

		if (!v)
			return false;
		for (size_t i = 0; i < pn->icount; i++)
			v[i] = *pn_item(pn, i);
		free(pn->it);
		pn->it = v;
		pn->ihead = 0;
		pn->icap = cap;
	}
	pn->it[(pn->ihead + pn->icount++) % pn->icap] = *item;
	return true;
}

/* Queue item (its text at t) on node ni. */
static enum cq_err pn_queue(struct cqi_pipe *p, int ni, const struct pitem *item,
			    const char *t)
{
	struct pnode *pn = pn_at(p, ni);

	if (!pn || !cq_buf_append(&pn->log, t, item->len) || !pn_push(pn, item))
		return cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

/* Forget pn's oldest item; the log is compacted now and then. */
static void pn_pop(struct pnode *pn)
{
	struct pitem *it = pn_item(pn, 0);

	pn->head += it->len;
	if (pn->sent < pn->head)	/* moved elsewhere unsent (reroute) */
		pn->sent = pn->head;
	pn->ihead = (pn->ihead + 1) % pn->icap;
	pn->icount--;
	if (pn->inflight)
		pn->inflight--;
	if (pn->head == pn->log.len) {
		cq_buf_reset(&pn->log);
		pn->head = pn->sent = 0;
	} else if (pn->head > (256U << 10) && pn->head * 2 > pn->log.len) {
		memmove(pn->log.data, pn->log.data + pn->head,
			pn->log.len - pn->head);
		pn->log.len -= pn->head;
		pn->sent -= pn->head;
		pn->head = 0;
	}
}

/* A command that cannot be written: its reply is an error saying so. */
static void pn_fail(struct cqi_pipe *p, uint64_t tag, const char *where)
{
	char msg[400];
	struct cqi_reply r = { .type = CQI_REPLY_ERROR, .str = msg };

	snprintf(msg, sizeof(msg),
		 "not written: Redis at %s went down and no node took over its slots within %llds",
		 where, (long long)FAILOVER_WAIT(p->ctx) / 1000);
	r.len = strlen(msg);
	if (p->fn)
		p->fn(p->arg, tag, &r);
}

/* Node ni's connection broke: its unanswered commands wait in its log
 * until some node serves their slots (recover). */
static void node_down(struct cqi_pipe *p, int ni)
{
	struct pnode *pn = &p->cl->pn[ni];

	cqi_err_drop(p->ctx);
	node_hangup(p->ctx->redis->nodes[ni]);
	if (!pn->lost_at)
		pn->lost_at = cq_now_ms();
	pn->down = true;
	pn->sent = pn->head;
	pn->inflight = 0;
	p->cl->any_down = true;
}

/* Write node ni's queued commands. */
static enum cq_err pn_send(struct cqi_pipe *p, int ni)
{
	struct pnode *pn = &p->cl->pn[ni];
	struct node *n;

	if (pn->down || pn->sent == pn->log.len ||
	    cq_now_ms() < pn->pause_until)	/* poll_nodes wakes for it */
		return CQ_OK;
	n = node_ready(p->ctx, ni);
	if (!n || write_all(p->ctx, n, pn->log.data + pn->sent,
			    pn->log.len - pn->sent)) {
		/* a password, a certificate refused: no use waiting */
		if (p->ctx->err != CQ_ERR_TEMPFAIL &&
		    p->ctx->err != CQ_ERR_UNAVAILABLE)
			return p->ctx->err;
		node_down(p, ni);
		return CQ_OK;
	}
	pn->sent = pn->log.len;
	pn->inflight = pn->icount;
	return CQ_OK;
}

static enum cq_err send_all(struct cqi_pipe *p)
{
	for (size_t i = 0; i < p->cl->npn; i++)
		if (pn_send(p, (int)i))
			return p->ctx->err;
	return CQ_OK;
}

/* A TRYAGAIN or CLUSTERDOWN from pn's node: worth another try while it
 * has been in trouble for less than FAILOVER_WAIT (a failover takes a few
 * node timeouts); after that every command it refuses fails. */
static bool still_busy(struct cqi_pipe *p, struct pnode *pn)
{
	long long now = cq_now_ms();

	if (!pn->busy)
		pn->busy_since = now;
	return now - pn->busy_since < FAILOVER_WAIT(p->ctx);
}

/* Send nothing more to pn's node for ms. */
static void pn_pause(struct pnode *pn, long long ms)
{
	long long until = cq_now_ms() + ms;

	if (pn->pause_until < until)
		pn->pause_until = until;
}

/* A reply for node ni's oldest item. */
static enum cq_err dispatch(struct cqi_pipe *p, int ni, struct cqi_reply *r)
{
	struct cqi_redis *rd = p->ctx->redis;
	struct pnode *pn = &p->cl->pn[ni];
	struct pitem item = *pn_item(pn, 0);
	const char *t = pn->log.data + pn->head;
	struct cqi_redirect to;
	int dest = -1;
	long long pause = 0;
	char *copy;
	enum cq_err e;

	if (item.drop) {
		pn_pop(pn);
		return CQ_OK;
	}
	item.tries++;
	if (r->type == CQI_REPLY_ERROR && item.tries <= MAX_REDIRECTS &&
	    cqi_cluster_redirect(r->str, &to)) {
		dest = node_index(p->ctx, to.host[0] ? to.host :
				  rd->nodes[ni]->host, to.port, NULL);
		if (dest < 0)
			return p->ctx->err;
		if (!to.ask) {
			rd->slots[to.slot] = (uint16_t)(dest + 1);
		} else {
			static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
			struct pitem a = { .len = sizeof(asking) - 1,
					   .slot = -1, .drop = true };

			if (pn_queue(p, dest, &a, asking))
				return p->ctx->err;
		}
	} else if (still_loading(p->ctx, rd->nodes[ni], r)) {
		pause = RETRY_PAUSE_MS;
		dest = item.slot >= 0 && rd->slots[item.slot] ?
		       rd->slots[item.slot] - 1 : ni;
		item.tries--;	/* not a redirection */
	} else if (r->type == CQI_REPLY_ERROR && cqi_cluster_busy(r->str) &&
		   still_busy(p, pn)) {
		unsigned b = pn->busy < 5 ? pn->busy++ : 5;

		pause = (25LL << b) * 2;
		dest = item.slot >= 0 && rd->slots[item.slot] ?
		       rd->slots[item.slot] - 1 : ni;
	}
	if (dest >= 0) {
		pn = &p->cl->pn[ni];	/* pn_queue may have moved it */
		/* sent again (by send_all), not counted: its reply will be */
		copy = malloc(item.len);
		if (!copy)
			return cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
		memcpy(copy, t, item.len);
		pn_pop(pn);
		e = pn_queue(p, dest, &item, copy);
		free(copy);
		if (!e && pause)	/* that node only */
			pn_pause(&p->cl->pn[dest], pause);
		return e;
	}
	if (r->type != CQI_REPLY_ERROR)
		pn->busy = 0;
	pn_pop(pn);
	if (p->fn)
		p->fn(p->arg, item.tag, r);
	return CQ_OK;
}

/* Read what node ni has sent and hand out the replies. */
static enum cq_err pn_read(struct cqi_pipe *p, int ni)
{
	struct node *n = p->ctx->redis->nodes[ni];
	struct cqi_reply *r = NULL;

	if (fill(p->ctx, n)) {
		node_down(p, ni);
		return CQ_OK;
	}
	for (;;) {
		if (parsed_reply(p->ctx, n, &r))
			return p->ctx->err;
		if (!r)
			return CQ_OK;
		p->cl->pn[ni].lost_at = 0;	/* it answers */
		if (!p->cl->pn[ni].icount) {
			cqi_reply_free(r);
			return cq_seterr(p->ctx, CQ_ERR_INTERNAL,
					 "Redis at %s sent a reply no command awaits",
					 n->where);
		}
		dispatch(p, ni, r);
		cqi_reply_free(r);
		if (p->ctx->err)
			return p->ctx->err;
	}
}

/* How long until a paused node has something to send, or -1. */
static long long next_wake(const struct cqi_pipe *p)
{
	long long now = cq_now_ms(), t = -1;

	for (size_t i = 0; i < p->cl->npn; i++) {
		const struct pnode *pn = &p->cl->pn[i];
		long long w = pn->pause_until - now;

		if (!pn->down && pn->sent < pn->log.len && w > 0 &&
		    (t < 0 || w < t))
			t = w;
	}
	return t;
}

/* Wait for replies from every node with some in flight, up to the
 * timeout; a node silent that long is taken for down.  A paused node's
 * turn to send cuts the wait short (and then nobody is taken for down).
 * With now, take only what has come already. */
static enum cq_err poll_nodes(struct cqi_pipe *p, bool now)
{
	struct cqi_cpipe *c = p->cl;
	struct pollfd pfd[MAX_NODES];
	int map[MAX_NODES], np = 0, got;
	long long wait = now ? 0 : p->ctx->set.timeout_ms;
	long long wake = now ? -1 : next_wake(p);
	bool cut = wake >= 0 && wake < wait;

	for (size_t i = 0; i < c->npn; i++) {
		struct node *n = p->ctx->redis->nodes[i];

		if (!c->pn[i].inflight || n->fd < 0)
			continue;
		/* TLS may hold bytes already read from the socket */
		if (n->tls && cqi_tls_pending(n->tls))
			return pn_read(p, (int)i);
		pfd[np].fd = n->fd;
		pfd[np].events = POLLIN;
		map[np++] = (int)i;
	}
	if (cut)
		wait = wake;
	if (!np) {
		sleep_ms(cut ? wait : 0);
		return CQ_OK;
	}
	do
		got = poll(pfd, (nfds_t)np, (int)wait);
	while (got < 0 && errno == EINTR);
	if (!got && (now || cut))
		return CQ_OK;
	if (got < 0)
		return cq_seterr(p->ctx, CQ_ERR_INTERNAL, "poll: %s",
				 strerror(errno));
	for (int i = 0; i < np; i++) {
		if (!got)
			node_down(p, map[i]);
		else if (pfd[i].revents && pn_read(p, map[i]))
			return p->ctx->err;
	}
	return CQ_OK;
}

/* ---- a lost node's unanswered commands, for single commands and pipelines ---- */

/* How take_over moves the commands a lost node had not answered: lost(arg,
 * i) says node i is lost (not asked for the map); move(arg) moves what it
 * can to new_home's node and says whether none is left (false on an error
 * too, the context's). */
struct mover {
	bool (*lost)(void *arg, int ni);
	bool (*move)(void *arg);
	void *arg;
};

/* The map, asked over a connection of its own (the nodes' connections may
 * be busy with a pipeline): from each node not lost in turn. */
static enum cq_err fresh_map(struct cq_ctx *ctx, const struct mover *m)
{
	struct cqi_redis *rd = ctx->redis;
	const char *argv[2] = { "CLUSTER", "SLOTS" };

	for (size_t i = 0; i < rd->nnodes; i++) {
		struct node *src = rd->nodes[i], *n;
		struct cqi_reply *r = NULL;

		if (m->lost(m->arg, (int)i) || !src->host ||
		    !(n = calloc(1, sizeof(*n))))
			continue;
		n->fd = -1;
		n->host = strdup(src->host);
		n->port = src->port;
		memcpy(n->where, src->where, sizeof(n->where));
		if (n->host && !node_open(ctx, n))
			r = node_call(ctx, n, 2, argv);
		node_free(n);
		cqi_err_drop(ctx);
		if (r && r->type == CQI_REPLY_ARRAY) {
			enum cq_err e = load_map(ctx, r, (int)i);

			rd->mode = MODE_CLUSTER;
			cqi_reply_free(r);
			return e;
		}
		cqi_reply_free(r);
	}
	return CQ_OK;
}

/* Where an unanswered command of lost node d goes now: the node that
 * serves its slot (the current node for one without a key, or behind a
 * Sentinel), or d again if it serves it still and answers (a node
 * restarted; a command for d alone goes nowhere else); -1 if nobody does
 * yet. */
static int new_home(struct cq_ctx *ctx, int slot, int d)
{
	struct cqi_redis *rd = ctx->redis;
	int to = slot >= 0 && rd->slots[slot] ? rd->slots[slot] - 1 : rd->cur;

	if (slot == PINNED && !rd->sentinel)
		to = d;

	if (to != d)
		return to;
	if (!node_ready(ctx, d)) {
		cqi_err_drop(ctx);
		return -1;
	}
	return d;
}

/* Nodes were lost: until deadline, re-read the slot map (behind a
 * Sentinel, find the master again) and move their unanswered commands to
 * where new_home says.  CQ_OK when none is left; CQ_ERR_TEMPFAIL with the
 * context error clear when the time is up (what is left is the caller's);
 * else the context error (behind a Sentinel, "lost the master"). */
static enum cq_err take_over(struct cq_ctx *ctx, long long deadline,
			     const struct mover *m)
{
	struct cqi_redis *rd = ctx->redis;
	char lost[300], why[sizeof(ctx->errstr)];

	memcpy(lost, rd->nodes[rd->cur]->where, sizeof(lost));
	for (;;) {
		if (rd->sentinel && find_master(ctx, deadline)) {
			memcpy(why, ctx->errstr, sizeof(why));
			return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
					 "lost the master at %s; %s", lost, why);
		}
		if (!rd->sentinel && fresh_map(ctx, m))
			return ctx->err;
		if (m->move(m->arg))
			return CQ_OK;
		if (ctx->err)
			return ctx->err;
		if (cq_now_ms() >= deadline || cq_stop_requested())
			return CQ_ERR_TEMPFAIL;
		sleep_ms(RETRY_PAUSE_MS);
	}
}

/* ---- single commands: a lost node's awaited ones ---- */

/* Has awaited command a lost its reply: its node hung up, or connected
 * again since it was sent (the new connection owes it nothing)? */
static bool aw_gone(const struct cqi_redis *rd, const struct await *a)
{
	const struct node *n = rd->nodes[a->node];

	return !a->reply && (n->fd < 0 || n->conn != a->conn);
}

/* Is node ni lost: awaited commands sent to it will not be answered? */
static bool aw_lost(void *arg, int ni)
{
	struct cqi_redis *rd = ((struct cq_ctx *)arg)->redis;

	for (uint64_t seq = rd->ahead; seq < rd->atail; seq++)
		if (AW(rd, seq)->node == ni && aw_gone(rd, AW(rd, seq)))
			return true;
	return false;
}

static bool aw_move(void *arg)
{
	struct cq_ctx *ctx = arg;
	struct cqi_redis *rd = ctx->redis;
	bool left = false;

	for (uint64_t seq = rd->ahead; seq < rd->atail; seq++) {
		struct await *a = AW(rd, seq);
		int to;

		if (!aw_gone(rd, a))
			continue;
		to = new_home(ctx, a->slot, a->node);
		/* its node takes connections but has not answered since it
		 * was first lost (a node stopped, SIGSTOP): no more tries */
		if (to == a->node && a->lost_at &&
		    (cq_now_ms() - a->lost_at >= FAILOVER_WAIT(ctx) ||
		     cq_stop_requested()))
			to = -1;
		if (to < 0 || queue_on(ctx, to, seq, a->cmd, a->len)) {
			if (ctx->err == CQ_ERR_NOMEM)
				return false;
			cqi_err_drop(ctx);	/* asked again */
			left = true;
			continue;
		}
		a->node = to;
		a->conn = rd->nodes[to]->conn;
		a->lost++;
	}
	if (flush_all(ctx)) {	/* lost again: moved in the next round */
		if (ctx->err == CQ_ERR_NOMEM)
			return false;
		cqi_err_drop(ctx);
		left = true;
	}
	return !left;
}

/* The name of awaited command a ("*N\r\n$L\r\nNAME\r\n..."), for a message. */
static void cmd_name(const struct await *a, char *name, size_t size)
{
	const char *end = a->cmd + a->len, *t = memchr(a->cmd, '\n', a->len);
	const char *u = t ? memchr(t + 1, '\n', (size_t)(end - t - 1)) : NULL;
	int len = u ? atoi(t + 2) : 0;

	snprintf(name, size, "%.*s",
		 u && len > 0 && len <= end - u - 1 ? len : 0, u ? u + 1 : "");
}

/* Commands lost at where were sent again (cqi_redis_rejoins). */
static void rejoined(struct cqi_redis *rd, const char *where)
{
	rd->rejoins++;
	snprintf(rd->rejoined_from, sizeof(rd->rejoined_from), "%s", where);
}

unsigned long cqi_redis_rejoins(const struct cq_ctx *ctx, const char **from)
{
	const struct cqi_redis *rd = ctx->redis;

	if (from)
		*from = rd ? rd->rejoined_from : "";
	return rd ? rd->rejoins : 0;
}

/* The connection to a node failed in the middle of work (ctx's error, the
 * node hung up): on a cluster or behind a Sentinel, its awaited commands
 * not answered yet are sent again where take_over says, within
 * FAILOVER_WAIT, so that each is answered once; else exit 75 naming the
 * first.  On a single Redis, or for another error, the error stays.
 * A blocking read lost so (a queue consumer's BLMOVE, XREADGROUP BLOCK)
 * is sent again too: if the dead master had moved nothing, nothing
 * changes; if it had moved an item and died before replying, the new
 * master either never had that write (the item is still in the queue,
 * read by the resent command) or has it (the item sits in the
 * consumer's processing list, or pending under its name in the group,
 * where the consumer looks once told: cqi_redis_rejoins). */
static enum cq_err rejoin(struct cq_ctx *ctx)
{
	struct cqi_redis *rd = ctx->redis;
	struct mover m = { aw_lost, aw_move, ctx };
	char cause[sizeof(ctx->errstr)], name[32] = "", where[300] = "";
	long long since = cq_now_ms();
	uint64_t seq;
	enum cq_err e;

	if ((rd->mode == MODE_SINGLE && !rd->sentinel) ||
	    (ctx->err != CQ_ERR_TEMPFAIL && ctx->err != CQ_ERR_UNAVAILABLE))
		return ctx->err;
	for (seq = rd->ahead; seq < rd->atail; seq++) {
		struct await *a = AW(rd, seq);

		if (!aw_gone(rd, a))
			continue;
		if (a->lost >= MAX_REDIRECTS)	/* lost again and again */
			return ctx->err;
		/* waited for from its first loss, however often it is lost */
		if (!a->lost_at)
			a->lost_at = since;
		if (a->lost_at < since)
			since = a->lost_at;
		if (!where[0]) {
			cmd_name(a, name, sizeof(name));
			memcpy(where, rd->nodes[a->node]->where, sizeof(where));
		}
	}
	if (!where[0])	/* no awaited command was lost */
		return ctx->err;
	memcpy(cause, ctx->errstr, sizeof(cause));
	e = ctx->err;
	cqi_err_drop(ctx);
	/* the seed lost before any MOVED: a cluster if another node says so */
	if (rd->mode == MODE_UNKNOWN && !fresh_map(ctx, &m) &&
	    rd->mode != MODE_CLUSTER)
		return cq_seterr(ctx, e, "%s", cause);
	if (rd->sentinel)	/* a master that failed over: all of it */
		for (size_t i = 0; i < rd->nnodes; i++)
			node_hangup(rd->nodes[i]);
	e = take_over(ctx, since + FAILOVER_WAIT(ctx), &m);
	if (!e && !ctx->err)
		rejoined(rd, where);
	if (!e || ctx->err)
		return ctx->err;
	return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
			 "%s: not done: Redis at %s went down and no node took over its slots within %llds (%s)",
			 name, where, (long long)FAILOVER_WAIT(ctx) / 1000,
			 cause);
}

/* ---- pipelines: a lost node's unanswered items ---- */

static bool pipe_lost(void *arg, int ni)
{
	struct cqi_pipe *p = arg;
	struct pnode *pn = pn_at(p, ni);

	if (!pn)
		cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	return !pn || pn->down || pn->gone;
}

/* Move down node d's unanswered commands to where new_home says; true when
 * none is left on d. */
static bool reroute(struct cqi_pipe *p, int d)
{
	struct pnode *pn = &p->cl->pn[d];

	while (pn->icount) {
		struct pitem item = *pn_item(pn, 0);
		int to = new_home(p->ctx, item.slot, d);

		if (to < 0)
			return false;
		if (to == d) {
			/* it takes connections but has not answered since it
			 * was lost (a node stopped, SIGSTOP): no more tries */
			if (cq_now_ms() - pn->lost_at >= FAILOVER_WAIT(p->ctx) ||
			    cq_stop_requested())
				return false;
			pn->down = false;	/* all sent again */
			return true;
		}
		if (!item.drop && pn_queue(p, to, &item, pn->log.data + pn->head))
			return false;
		pn = &p->cl->pn[d];	/* pn_queue may have moved it */
		pn_pop(pn);
	}
	pn->down = false;
	pn->lost_at = 0;	/* nothing waits for it: a later loss is new */
	return true;
}

static bool pipe_move(void *arg)
{
	struct cqi_pipe *p = arg;
	bool left = false;

	for (size_t i = 0; i < p->cl->npn; i++)
		if (p->cl->pn[i].down && !reroute(p, (int)i))
			left = true;
	return !left && !p->ctx->err;
}

/* Nodes went down: wait (up to FAILOVER_WAIT) until other nodes serve
 * their slots, or they come back, and send their commands there; else
 * their commands fail, and so does every later one for those slots. */
static enum cq_err recover(struct cqi_pipe *p)
{
	struct cqi_cpipe *c = p->cl;
	struct mover m = { pipe_lost, pipe_move, p };
	long long since = cq_now_ms();
	char lost[300] = "";
	enum cq_err e;

	/* from the first loss not answered since: a node that keeps being
	 * lost is waited for once */
	for (size_t i = 0; i < c->npn; i++)
		if (c->pn[i].down && c->pn[i].lost_at &&
		    c->pn[i].lost_at < since)
			since = c->pn[i].lost_at;
	for (size_t i = 0; i < c->npn && !lost[0]; i++)
		if (c->pn[i].down)
			memcpy(lost, p->ctx->redis->nodes[i]->where,
			       sizeof(lost));
	c->any_down = false;
	e = take_over(p->ctx, since + FAILOVER_WAIT(p->ctx), &m);
	if (!p->ctx->err && lost[0])	/* sent again, all or some */
		rejoined(p->ctx->redis, lost);
	if (!e || p->ctx->err)
		return p->ctx->err;
	for (size_t i = 0; i < c->npn; i++) {
		struct pnode *pn = &c->pn[i];

		if (!pn->down)
			continue;
		pn->down = false;
		pn->gone = true;
		while (pn->icount) {
			if (!pn_item(pn, 0)->drop)
				pn_fail(p, pn_item(pn, 0)->tag,
					p->ctx->redis->nodes[i]->where);
			pn_pop(pn);
		}
	}
	return CQ_OK;
}

/* Send what is queued, and read until node ni (every node if ni < 0) has
 * at most keep commands in flight. */
static enum cq_err cluster_sync(struct cqi_pipe *p, int ni, size_t keep)
{
	struct cqi_cpipe *c = p->cl;

	for (;;) {
		bool more = false;

		if (c->any_down && recover(p))
			return p->ctx->err;
		if (send_all(p))
			return p->ctx->err;
		if (c->any_down)
			continue;
		for (size_t i = 0; i < c->npn; i++)
			if ((ni < 0 || (size_t)ni == i) &&
			    (c->pn[i].inflight > keep ||
			     c->pn[i].icount > c->pn[i].inflight))
				more = true;
		if (!more)
			return CQ_OK;
		if (poll_nodes(p, false))
			return p->ctx->err;
	}
}

static enum cq_err cluster_cmd(struct cqi_pipe *p, uint64_t tag, int route,
			       int argc, const char **argv, const size_t *lens)
{
	struct cqi_redis *rd = p->ctx->redis;
	struct pitem item = { .tag = tag, .slot = -1 };
	struct pnode *pn;
	size_t at;
	int ni;

	if (route == CQI_MASTERS)
		return cq_seterr(p->ctx, CQ_ERR_INTERNAL,
				 "%s: route %d is not for a pipeline", argv[0],
				 route);
	ni = route_node(p->ctx, route, argc, argv, lens, &item.slot);
	if (ni < 0 || !(pn = pn_at(p, ni)))
		return p->ctx->err ? p->ctx->err :
		       cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	if (pn->gone) {
		pn_fail(p, tag, rd->nodes[ni]->where);
		return CQ_OK;
	}
	at = pn->log.len;
	if (!resp_append(&pn->log, argc, argv, lens))
		return cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	item.len = (uint32_t)(pn->log.len - at);
	if (!pn_push(pn, &item))
		return cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	if (pn->icount - pn->inflight < p->batch &&
	    pn->log.len - pn->sent < OUT_MAX_BYTES)
		return CQ_OK;
	if (pn_send(p, ni))
		return p->ctx->err;
	if (p->cl->any_down)
		return cluster_sync(p, ni, p->window - p->batch);
	/* (all of them in flight, unless the node is paused) */
	if (pn->icount <= p->window)
		return CQ_OK;
	/* over its window: take what has come from any node, and wait for
	 * this one only once it is BACKLOG windows behind */
	if (poll_nodes(p, true) || send_all(p))
		return p->ctx->err;
	pn = &p->cl->pn[ni];	/* a MOVED to a new node may have moved it */
	if (pn->icount > BACKLOG * p->window)
		return cluster_sync(p, ni, (BACKLOG - 1) * p->window);
	return CQ_OK;
}

enum cq_err cqi_pipe_sync(struct cqi_pipe *p, size_t keep)
{
	if (p->ctx->err)
		return p->ctx->err;
	if (p->cl)
		return cluster_sync(p, -1, keep);
	return single_sync(p, keep);
}

size_t cqi_pipe_pending(const struct cqi_pipe *p)
{
	size_t n = 0;

	if (!p->cl)
		return p->count + p->nheld;
	for (size_t i = 0; i < p->cl->npn; i++)
		n += p->cl->pn[i].icount;
	return n;
}

void cqi_pipe_abandon(struct cqi_pipe *p,
		      void (*lost)(void *arg, uint64_t tag), void *arg)
{
	if (!p->cl) {
		/* held ones first: sent before the rest */
		for (size_t i = 0; i < p->nheld; i++) {
			cqi_reply_free(p->held[i].r);
			p->held[i].r = NULL;
			lost(arg, p->held[i].c.tag);
		}
		p->nheld = p->nafter = 0;
		p->after_any = false;
		while (p->count) {
			uint64_t tag = pcmd(p, 0)->tag;

			p->head = (p->head + 1) % p->ring;
			p->count--;
			lost(arg, tag);
		}
		p->inflight = p->nout = 0;
		cq_buf_reset(&p->log);
		p->loghead = 0;
		return;
	}
	for (size_t i = 0; i < p->cl->npn; i++) {
		struct pnode *pn = &p->cl->pn[i];

		while (pn->icount) {
			struct pitem item = *pn_item(pn, 0);

			pn_pop(pn);
			if (!item.drop)
				lost(arg, item.tag);
		}
		pn->sent = pn->head = 0;
		cq_buf_reset(&pn->log);
	}
}

enum cq_err cqi_pipe_cmd(struct cqi_pipe *p, uint64_t tag, int route,
			 int argc, const char **argv, const size_t *lens)
{
	if (p->ctx->err)
		return p->ctx->err;
	if (p->cl)
		return cluster_cmd(p, tag, route, argc, argv, lens);
	return single_cmd(p, tag, route, argc, argv, lens);
}
