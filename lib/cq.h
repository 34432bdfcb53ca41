/*
 * cq.h - the public API of libcq.
 *
 * Every behaviour of cachectl, qctl and cqstat lives behind this header.
 * Programs include only this file; backend types (hiredis, librabbitmq,
 * jansson) never appear here.  docs/ARCHITECTURE.md says which file of
 * lib/ owns what.
 *
 * Conventions
 * - Functions that act return an enum cq_err (CQ_OK on success) and leave
 *   a message in ctx->errstr on failure.  Errors are sticky: once ctx->err
 *   is set, calls that need a connection return it at once until
 *   cq_clear_error().
 * - The caller owns what a function returns through an out-pointer unless
 *   the prototype says the pointer is borrowed.  Every *_free accepts NULL.
 * - lib/ never prints, never exits, and reads the environment only in
 *   cq_settings_from_env().
 */
#ifndef CQ_H
#define CQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CQ_VERSION "0.1.0"

/* Append-only: never renumber. */
enum cq_err {
	CQ_OK = 0,
	CQ_ERR_NOTFOUND,	/* cache miss, empty queue, nothing matched */
	CQ_ERR_USAGE,		/* bad flag, URL or duration */
	CQ_ERR_DATA,		/* malformed input line, record or value */
	CQ_ERR_UNAVAILABLE,	/* server unreachable */
	CQ_ERR_TEMPFAIL,	/* timeout, lost connection, unconfirmed */
	CQ_ERR_NOPERM,		/* authentication or permission refused */
	CQ_ERR_INTERNAL,	/* a bug or an impossible state */
	CQ_ERR_IO,		/* local I/O: reading input, writing output */
	CQ_ERR_NOMEM,		/* out of memory */
	CQ_ERR_NOCMD,		/* a command to run was not found (127) */
	CQ_ERR_NOEXEC,		/* a command was found but cannot run (126) */
};

/* The exit code each error gives (README's table: sysexits codes; a
 * command that cannot be run gives the shell's 127 and 126). */
int cq_exit_code(enum cq_err err);
/* A short static description of an error code. */
const char *cq_strerror(enum cq_err err);

/*
 * Settings shared by every program.  Strings are borrowed: they must stay
 * valid as long as the context that uses them (argv and environ do).
 */
struct cq_settings {
	const char *redis_url;		/* redis://, rediss://, unix:// */
	const char *redis_password;	/* overrides the URL's password */
	const char *password_file;	/* first line is the Redis password */
	/* redis-sentinel:// only: the sentinels' own login, when they have
	 * one that is not the master's (without one they are asked with no
	 * password, then the master's) */
	const char *sentinel_user;	/* ACL user (CQ_SENTINEL_USER) */
	const char *sentinel_password;	/* CQ_SENTINEL_PASSWORD */
	const char *sentinel_password_file;	/* first line is theirs */
	const char *amqp_url;		/* amqp[s]://, comma-separated list */
	const char *cacert, *cert, *key;	/* rediss:// and amqps:// files */
	bool insecure;			/* TLS without checking the server */
	const char *prefix;		/* prepended to every key */
	long long timeout_ms;		/* connect and command timeout */
	int heartbeat_s;		/* AMQP heartbeat, 0 = off */
	long long default_ttl_ms;	/* CQ_DEFAULT_TTL, 0 = none */
	bool track;			/* CQ_TRACK: per-prefix hit counters */
	const char *api_url;		/* CQ_API_URL: RabbitMQ management API */
	bool pass_env;			/* commands cq runs inherit CQ_AMQP_URL,
					 * CQ_REDIS_URL, CQ_REDIS_PASSWORD,
					 * CQ_PASSWORD_FILE and the CQ_SENTINEL_
					 * ones (--pass-env) */
	const char *queue_backend;	/* qctl's queues: "amqp" (NULL), "list",
					 * "stream" (CQ_QUEUE_BACKEND, --backend;
					 * checked by cq_backend_ok) */
	const char *queue_group;	/* stream backend: the consumer group
					 * (--group), NULL: "qctl" */
};

#define CQ_DEFAULT_REDIS_URL "redis://127.0.0.1:6379/0"
#define CQ_DEFAULT_AMQP_URL "amqp://guest:guest@127.0.0.1:5672/%2f"
#define CQ_DEFAULT_TIMEOUT_MS 5000

/* Fill defaults, then the environment (CQ_REDIS_URL, REDIS_URL, ...).
 * The only place libcq reads the environment.  Returns CQ_ERR_USAGE with
 * a message in errbuf for a malformed CQ_TIMEOUT. */
enum cq_err cq_settings_from_env(struct cq_settings *s, char *errbuf,
				 size_t errlen);

struct cqi_redis;
struct cqi_amqp;

struct cq_ctx {
	enum cq_err err;
	char errstr[512];
	struct cq_settings set;
	struct cqi_redis *redis;	/* NULL until cq_redis_connect */
	struct cqi_amqp *amqp;		/* NULL until cq_amqp_connect */
	/* Set by the connect functions, so that freeing a context links no
	 * backend a program does not use. */
	void (*redis_close)(struct cq_ctx *ctx);
	void (*amqp_close)(struct cq_ctx *ctx);
};

/* Never fails for lack of a server; returns NULL only out of memory.
 * The settings are copied (their strings stay borrowed). */
struct cq_ctx *cq_ctx_new(const struct cq_settings *set);
void cq_ctx_free(struct cq_ctx *ctx);
/* Set the error (printf-style, truncated to fit) and return it.  For
 * library users too: a callback (cq_peek_fn, a consume or replay hook)
 * stops the run by setting the context's error and returning it. */
enum cq_err cq_seterr(struct cq_ctx *ctx, enum cq_err err, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));
void cq_clear_error(struct cq_ctx *ctx);

/* ---- parsers (parse.c, url.c) ---------------------------------------- */

/* "250ms", "30s", "5m", "2h", "1d" or bare seconds ("1.5" allowed).
 * Returns false for anything else, negative values, or overflow. */
bool cq_parse_duration(const char *s, long long *ms);
/* "512", "64k", "64K", "16M", "1G" (powers of 1024), optional "B"/"iB". */
bool cq_parse_size(const char *s, unsigned long long *bytes);
/* Strict unsigned decimal in [min, max]. */
bool cq_parse_uint(const char *s, unsigned long long min,
		   unsigned long long max, unsigned long long *out);
/* A duration or a percentage: "10%" sets *pct (0-100), else *ms. */
bool cq_parse_jitter(const char *s, long long *ms, double *pct);

/* ---- connections (redis.c, amqp.c) ----------------------------------- */

enum cq_err cq_redis_connect(struct cq_ctx *ctx);
enum cq_err cq_amqp_connect(struct cq_ctx *ctx);

/* ---- small shared helpers (util.c) ------------------------------------ */

/* Milliseconds on the monotonic clock. */
long long cq_now_ms(void);
/* Milliseconds since the epoch. */
long long cq_wall_ms(void);

/* A growable byte buffer; the caller owns data. */
struct cq_buf {
	char *data;
	size_t len, cap;
};
/* Make room for n more bytes (and a NUL) without changing len. */
bool cq_buf_reserve(struct cq_buf *b, size_t n);
bool cq_buf_append(struct cq_buf *b, const void *p, size_t n);
void cq_buf_reset(struct cq_buf *b);
void cq_buf_free(struct cq_buf *b);

/* ---- stopping on a signal (stop.c) ------------------------------------ */

/*
 * Catch SIGINT and SIGTERM from now on (a program calls it once, before a
 * long verb).  Long calls (cq_warm, cq_fetch, cq_consume, cq_replay, and
 * the enqueue loop of a program) then stop taking work on the first
 * signal, settle what is in flight, release their locks, stop the process
 * groups they started and return with their stats saying they stopped; a
 * second signal hurries the settling.
 */
enum cq_err cq_stop_catch(struct cq_ctx *ctx);
/* 0: no signal; 1: stop taking work; 2: hurry (a second signal came). */
int cq_stop_requested(void);
/* The name of the first signal caught: "SIGINT", "SIGTERM". */
const char *cq_stop_name(void);

/* ---- JSON output (json.c) --------------------------------------------- */

/* One JSON line {"key":K,"value":V[,"ttl_ms":T]} without the newline
 * (ttl_ms when ttl_ms is non-NULL; T null for no expiry or a NULL val:
 * the form warm --jsonl reads back); a key or value that is not valid
 * UTF-8 is written as "key_base64" / "value_base64" instead; a NULL val
 * is null.  Caller frees. */
char *cq_json_value_line(const char *key, size_t keylen, const char *val,
			 size_t len, const long long *ttl_ms);

/*
 * JSON records, for the programs (jansson underneath; a program holds a
 * struct json_t only through these).  A record is built in steps of
 * obj = cq_json_add*(obj, ...): each returns obj, or NULL after freeing
 * it when out of memory, and passes a NULL obj on, so that the record is
 * checked once, by cq_json_line.
 */
struct json_t;
/* A new object from a jansson json_pack() object format ("{s:I,s:s}",
 * integers as long long, reals as double). */
struct json_t *cq_json_pack(const char *fmt, ...);
/* Add the members of such a format to obj, after those it has. */
struct json_t *cq_json_add(struct json_t *obj, const char *fmt, ...);
/* Add name: the n bytes at p as a string, or, when they are not valid
 * UTF-8, name_base64: their base64 (keys, names and bodies round-trip). */
struct json_t *cq_json_add_bytes(struct json_t *obj, const char *name,
				 const char *p, size_t n);
/* obj as one compact line (members in the order added, no newline), and
 * obj freed.  Caller frees the line; NULL for a NULL obj or out of
 * memory. */
char *cq_json_line(struct json_t *obj);

#include "cq_cache.h"
#include "cq_queue.h"
#include "cq_stats.h"

#endif
