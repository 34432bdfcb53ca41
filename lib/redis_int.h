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
 * key); CQI_MASTERS to every master (INFO, SCAN).  On a single node every
 * route is that node. */
#define CQI_KEY(i) (i)
#define CQI_ANY 0
#define CQI_MASTERS (-1)

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

/* ---- pipelines with a bounded window ------------------------------------ */

/*
 * Commands are formatted straight into the driver's output buffer (no
 * allocation per command), sent in batches, and their replies are read
 * while at most `window` commands are in flight.  Each command carries a
 * tag (a line number, a kind...) given back with its reply.
 */
typedef void (*cqi_reply_fn)(void *arg, uint64_t tag, struct cqi_reply *r);

struct cqi_pipe {
	struct cq_ctx *ctx;
	size_t nout;		/* commands queued, not yet sent */
	size_t inflight;	/* sent, reply not yet read */
	size_t window;		/* most commands in flight */
	size_t batch;		/* send when this many are queued */
	uint64_t *tags;		/* ring: tags of queued + in-flight commands */
	size_t ring, head, count;
	cqi_reply_fn fn;
	void *arg;
};

enum cq_err cqi_pipe_init(struct cqi_pipe *p, struct cq_ctx *ctx,
			  size_t window, cqi_reply_fn fn, void *arg);
/* Queue one command; sends and reads replies as the window requires. */
enum cq_err cqi_pipe_cmd(struct cqi_pipe *p, uint64_t tag, int route,
			 int argc, const char **argv, const size_t *lens);
/* Send what is queued and read replies until at most keep are in flight. */
enum cq_err cqi_pipe_sync(struct cqi_pipe *p, size_t keep);
void cqi_pipe_free(struct cqi_pipe *p);

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
void cqi_tls_close(struct cqi_tls *t);

#endif
