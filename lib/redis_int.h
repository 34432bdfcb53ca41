/* redis_int.h - the Redis driver, shared by lib/ files only.
 *
 * redis.c is the only code that touches a Redis socket or calls hiredis
 * (its reply parser only): it connects over TCP, a unix socket or TLS
 * (redis_tls.c), formats commands, sends single commands and windowed
 * pipelines, and reads replies in order.  Every command names how it is
 * routed (CQI_KEY(i), CQI_ANY, CQI_MASTERS), so that a cluster router can
 * sit under this interface without the verbs knowing.
 */
#ifndef CQ_REDIS_INT_H
#define CQ_REDIS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cq.h"

/* ---- routing ------------------------------------------------------------ */

/* A route is an int: CQI_KEY(i) sends the command to the node that owns
 * the key in argv[i]; CQI_ANY to any node (SELECT, PING, a script with no
 * key); CQI_MASTERS to every master (INFO); CQI_MASTER(m) to master m
 * only (SCAN with that master's cursor).  On a single node every route is
 * that node, and it is master 0, the only one.
 *
 * Going over the masters:
 *
 *	size_t n = cqi_redis_masters(ctx);	(0: the context error is set)
 *	cqi_redis_append(ctx, CQI_MASTERS, 1, (const char *[]){ "INFO" }, NULL);
 *	for (size_t m = 0; m < n; m++) {
 *		cqi_redis_reply(ctx, &r);	(master m's reply)
 *		... cqi_redis_master_where(ctx, m) names it ...
 *	}
 *
 * A CQI_MASTERS command has one reply per master, read in master order;
 * cqi_redis_masters() finds out whether Redis is a cluster (CLUSTER
 * SLOTS) if that is not known yet, so call it while no reply is awaited.
 * The list stays as it is until no reply is awaited again. */
#define CQI_KEY(i) (i)
#define CQI_ANY 0
#define CQI_MASTERS (-1)
#define CQI_MASTER(m) (-2 - (int)(m))

/* How many masters (1 on a single Redis); 0 with the context error set. */
size_t cqi_redis_masters(struct cq_ctx *ctx);
/* host:port of master m, for messages and per-node views.  Borrowed:
 * valid until the next command. */
const char *cqi_redis_master_where(const struct cq_ctx *ctx, size_t m);
/* Whether the context talks to a Redis Cluster (known after the first
 * redirection, or cqi_redis_masters()). */
bool cqi_redis_is_cluster(const struct cq_ctx *ctx);

/* ---- replies ------------------------------------------------------------ */

enum cqi_reply_type {
	CQI_REPLY_STRING = 1,
	CQI_REPLY_ARRAY,
	CQI_REPLY_INTEGER,
	CQI_REPLY_NIL,
	CQI_REPLY_STATUS,
	CQI_REPLY_ERROR,
};

/* One reply; the caller of cqi_redis_cmd/cqi_redis_reply owns it and
 * frees it with cqi_reply_free (which frees the elements too). */
struct cqi_reply {
	enum cqi_reply_type type;
	long long integer;		/* CQI_REPLY_INTEGER */
	size_t len;			/* of str */
	char *str;			/* STRING, STATUS, ERROR; NUL-terminated */
	size_t elements;		/* CQI_REPLY_ARRAY */
	struct cqi_reply **element;
};
void cqi_reply_free(struct cqi_reply *r);

/* ---- commands ----------------------------------------------------------- */

/* Run one command and return its reply.  On a transport failure, or when
 * the reply is a Redis error, sets the context error and returns NULL.
 * lens may be NULL for NUL-terminated arguments. */
struct cqi_reply *cqi_redis_cmd(struct cq_ctx *ctx, int route, int argc,
				const char **argv, const size_t *lens);
/* Pipelining: queue a command, then read replies in order.  An error reply
 * is returned as a reply (so the caller can count it), not as a context
 * error; a transport failure sets the context error.  Queued commands go
 * out before any reply is waited for. */
enum cq_err cqi_redis_append(struct cq_ctx *ctx, int route, int argc,
			     const char **argv, const size_t *lens);
enum cq_err cqi_redis_reply(struct cq_ctx *ctx, struct cqi_reply **reply);
/* Fire and forget: send a command now (if connected) and drop its reply,
 * error or not, when the next reply is read.  Only while no reply is
 * awaited.  Never sets the context error: a failure is returned. */
enum cq_err cqi_redis_send_noreply(struct cq_ctx *ctx, int route, int argc,
				   const char **argv, const size_t *lens);
/* Translate a Redis error reply into the context error; what names the
 * action ("SET 'k'").  Returns the error set. */
enum cq_err cqi_redis_reply_err(struct cq_ctx *ctx, const struct cqi_reply *r,
				const char *what);
/* The cq_err a Redis error reply's text stands for: CQ_ERR_NOPERM for a
 * refused login or an ACL refusal (NOPERM), CQ_ERR_DATA for WRONGTYPE,
 * CQ_ERR_TEMPFAIL for a server that may take it later, else
 * CQ_ERR_INTERNAL. */
enum cq_err cqi_redis_err_kind(const char *s);

/* ---- waiting for a reply without blocking ------------------------------ */

/* For a blocking command (XREADGROUP BLOCK, BLMOVE) whose wait must not
 * block the caller longer than it can afford: append it, then read its
 * reply with cqi_redis_reply_within, polling this socket meanwhile (the
 * socket of the node the oldest awaited reply comes from).  -1 when not
 * connected. */
int cqi_redis_fd(const struct cq_ctx *ctx);
/* Nothing awaited: has the server closed the connection meanwhile (a
 * restart, a client timeout)?  Looks without waiting, at the socket
 * cqi_redis_fd gives.  On a single Redis a close is the context error
 * (75, "closed the connection"), found before anything is counted as
 * sent over it; on a cluster or behind a Sentinel the node is hung up
 * quietly, to be opened again or replaced when next needed.  For a
 * driver that polls cqi_redis_fd while nothing is awaited (a queue
 * consumer while its handlers run): a closed socket stays readable. */
enum cq_err cqi_redis_check_idle(struct cq_ctx *ctx);
/* Send what is queued, then wait at most wait_ms (0: not at all) for the
 * next awaited reply.  *reply is NULL when it has not come yet: the
 * command stays awaited, for a later call (or cqi_redis_reply, which
 * blocks).  Errors as cqi_redis_reply, and a node lost meanwhile too:
 * on a cluster or behind a Sentinel it is rejoined, the command (a
 * blocking read as well) sent again to the node that took over, which
 * may take up to 3x --timeout beyond wait_ms; its reply is then awaited
 * as before. */
enum cq_err cqi_redis_reply_within(struct cq_ctx *ctx, long long wait_ms,
				   struct cqi_reply **reply);

/*
 * How many times commands whose replies were lost (their node gone in the
 * middle of work: a failover, a master restarted) were sent again, to the
 * node that took over or to the same one back; *from (unless NULL) gets
 * where the last lost ones had gone (borrowed until the next command).
 * What such a command did on the lost connection may have reached the
 * new master without its reply reaching us: a queue consumer asks
 * (cqi_qd_rejoined) to look for what its blocking read took unheard.
 * 0 on a single Redis, where a lost connection is the context error.
 */
unsigned long cqi_redis_rejoins(const struct cq_ctx *ctx, const char **from);

/* ---- pipelines with a bounded window ------------------------------------ */

/*
 * Commands are formatted straight into the driver's output buffer (no
 * allocation per command), sent in batches, and their replies are read
 * while at most `window` commands are in flight.  Each command carries a
 * tag (a line number, a kind...) given back with its reply.  Its text is
 * kept until its reply came, so that one refused with -LOADING is sent
 * again.
 */
typedef void (*cqi_reply_fn)(void *arg, uint64_t tag, struct cqi_reply *r);

/* A single Redis's command, queued or in flight. */
struct cqi_pcmd {
	uint64_t tag;
	uint32_t len;		/* of its text in the pipeline's log */
	uint64_t key;		/* its key's hash (odd), 0: no key */
};

/* A command refused with -LOADING, held (with its reply) until every
 * reply sent before it is read, then sent again or failed. */
struct cqi_pheld {
	struct cqi_pcmd c;
	struct cqi_reply *r;
};

struct cqi_pipe {
	struct cq_ctx *ctx;
	size_t nout;		/* commands queued, not yet sent */
	size_t inflight;	/* sent, reply not yet read */
	size_t window;		/* most commands in flight */
	size_t batch;		/* send when this many are queued */
	struct cqi_pcmd *cmds;	/* ring: the in-flight commands, then the
				 * queued ones */
	size_t ring, head, count;
	struct cq_buf log;	/* their text, in the same order, from loghead */
	size_t loghead;
	/* refused with -LOADING, their texts at the log's end (held), and
	 * the keys of the commands answered after the first of them (after;
	 * after_any: one with no key) */
	struct cqi_pheld *held;
	size_t nheld;
	uint64_t *after;
	size_t nafter, aftercap;
	bool after_any;
	cqi_reply_fn fn;
	void *arg;
	struct cqi_cpipe *cl;	/* on a cluster: a pipeline per node */
};

enum cq_err cqi_pipe_init(struct cqi_pipe *p, struct cq_ctx *ctx,
			  size_t window, cqi_reply_fn fn, void *arg);
/* Queue one command; sends and reads replies as the window requires. */
enum cq_err cqi_pipe_cmd(struct cqi_pipe *p, uint64_t tag, int route,
			 int argc, const char **argv, const size_t *lens);
/* Send what is queued and read replies until at most keep are in flight. */
enum cq_err cqi_pipe_sync(struct cqi_pipe *p, size_t keep);
/* Commands queued or in flight whose reply has not come (on a cluster or
 * behind a Sentinel, an ASKING sent ahead of one counts until answered). */
size_t cqi_pipe_pending(const struct cqi_pipe *p);
/* The pipeline cannot go on (cqi_pipe_sync failed): forget every command
 * whose reply has not come, handing each one's tag to lost(arg, tag),
 * oldest first (node by node on a cluster), so that none is left
 * unsettled. */
void cqi_pipe_abandon(struct cqi_pipe *p,
		      void (*lost)(void *arg, uint64_t tag), void *arg);
void cqi_pipe_free(struct cqi_pipe *p);

/* ---- passwords ----------------------------------------------------------- */

/* The password to log in with, newly allocated (free it with
 * cqi_password_free), or NULL when none is given: direct (an environment
 * variable's), else the first line of file (what names the file in a
 * message: "password file"), else fallback (the URL's).  A file that
 * cannot be read is a usage error on ctx. */
enum cq_err cqi_password_pick(struct cq_ctx *ctx, const char *direct,
			      const char *file, const char *what,
			      const char *fallback, char **pass);
/* Wipe and free a password; NULL is fine. */
void cqi_password_free(char *pass);

/* ---- Sentinel (sentinel.c) ------------------------------------------------ */

struct cqi_sentinel;
struct cqi_sentinel_url;
/* The sentinels and master name of ctx's redis-sentinel:// URL, and the
 * sentinel login of ctx's settings (its file read now); a bad URL, an
 * unreadable file or a user without a password is ctx's error (64). */
enum cq_err cqi_sentinel_new(struct cq_ctx *ctx, struct cqi_sentinel **out);
void cqi_sentinel_free(struct cqi_sentinel *s);
/* Its URL's parts (the master's user, password and db).  Borrowed. */
const struct cqi_sentinel_url *cqi_sentinel_parts(const struct cqi_sentinel *s);
/* Try the node a sentinel named: CQ_OK when it is the master and connected;
 * CQ_ERR_TEMPFAIL, with why filled and no context error, when it is not
 * (yet); another error, set on the context, when asking again is no use. */
typedef enum cq_err (*cqi_sentinel_try_fn)(void *arg, const char *host,
					   int port, char *why, size_t whylen);
/* Ask the sentinels in order for the master (each over its own
 * connection, logged in with the sentinel login of ctx's settings if
 * given, else with the master's password pass if one asks for it) and
 * try each address until one is the master; asked again every 100 ms
 * until deadline (cq_now_ms's clock) or a stop request.  Errors are
 * ctx's: every sentinel down 69; no sentinel that answered knows the name
 * 64; no master in time (or a stop) 75; no sentinel gave an address and
 * one refused the login (or asked for one none gave) 77, naming it. */
enum cq_err cqi_sentinel_find(struct cq_ctx *ctx, struct cqi_sentinel *s,
			      const char *pass, long long deadline,
			      cqi_sentinel_try_fn try, void *arg);

/* ---- Redis Cluster (redis_cluster.c: parsing only, no I/O) -------------- */

#define CQI_SLOTS 16384

/* A MOVED or ASK error reply, parsed.  An empty host is the node that
 * answered. */
struct cqi_redirect {
	bool ask;
	unsigned slot;
	char host[256];
	int port;
};
bool cqi_cluster_redirect(const char *err, struct cqi_redirect *out);
/* TRYAGAIN (a slot migrating, keys split) or CLUSTERDOWN (no node serves
 * the slot, or a failover under way): worth another try a little later. */
bool cqi_cluster_busy(const char *err);
/* The answer to CLUSTER SLOTS of a Redis that is not a cluster. */
bool cqi_cluster_off(const char *err);

/* One range of CLUSTER SLOTS: slots lo..hi are served by the master
 * host:port (host empty: the node asked). */
struct cqi_slot_range {
	unsigned lo, hi;
	char host[256];
	int port;
};
/* The ranges of a CLUSTER SLOTS reply (malformed ones left out); *out is
 * the caller's to free, even when 0 is returned. */
size_t cqi_cluster_slots(const struct cqi_reply *r,
			 struct cqi_slot_range **out);

/* ---- TLS (redis_tls.c: OpenSSL, loaded only when rediss:// is used) ---- */

struct cqi_tls;
/* Handshake on a connected socket: SNI, and the certificate checked
 * against host (a DNS name or an address) unless --insecure; a NULL host
 * (a unix socket) is "localhost".  *out is set even on failure, for
 * cqi_tls_close.  Sets the context error: 77 for a certificate refused
 * either way, naming the fix. */
enum cq_err cqi_tls_open(struct cq_ctx *ctx, int fd, const char *host,
			 const char *where, struct cqi_tls **out);
/* Like recv/send: > 0 bytes moved, else -1 with the context error set
 * (0 from the server is "closed the connection"). */
long cqi_tls_read(struct cq_ctx *ctx, struct cqi_tls *t, void *buf, size_t n,
		  const char *where);
long cqi_tls_write(struct cq_ctx *ctx, struct cqi_tls *t, const void *buf,
		   size_t n, const char *where);
/* Whether bytes already read from the socket wait in t (poll(2) does not
 * see them). */
bool cqi_tls_pending(const struct cqi_tls *t);
/* On a socket that does not block: 1 when application bytes wait, 0
 * when none do (a record that is none, such as a session ticket, is
 * taken in), -1 when the server closed the connection or it failed. */
int cqi_tls_peek(struct cqi_tls *t);
void cqi_tls_close(struct cqi_tls *t);

#endif
