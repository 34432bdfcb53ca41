/* cache_int.h - what the cache files of lib/ (cache.c, warm.c,
 * invalidate.c, fetch.c, lock.c, run.c) share.  Never used by programs. */
#ifndef CQ_CACHE_INT_H
#define CQ_CACHE_INT_H

#include <sys/types.h>

#include "cq.h"
#include "redis_int.h"

/* ---- key names (cache.c) ----------------------------------------------- */

/* The generation of a namespace, as Redis stores it (decimal). */
struct cqi_gen {
	char s[24];
	bool found;		/* false: the namespace has no generation yet */
};

/*
 * Read (create false) or read-or-create (create true) the generation of
 * namespace ns.  A missing generation key is created with a fresh random
 * value, so that losing the key (eviction, FLUSHDB of one node) can only
 * make old keys unreachable, never bring back an older generation.
 */
enum cq_err cqi_ns_gen(struct cq_ctx *ctx, const char *ns, bool create,
		       struct cqi_gen *gen);
/* A fresh random generation, 2^20 to 2^20 + 2^40, decimal into fresh
 * (24 bytes hold it), for a namespace whose key is missing: restarting
 * at 1 could bring back an older generation's keys. */
void cqi_ns_gen_fresh(char *fresh, size_t len);
/* Namespace ns's generation key holds something else: CQ_ERR_DATA. */
enum cq_err cqi_ns_gen_bad(struct cq_ctx *ctx, const char *ns);
/* prefix + [ "ns:" NS ":" GEN ":" ] + key into out (reset first). */
bool cqi_data_key(const struct cq_ctx *ctx, const char *ns,
		  const struct cqi_gen *gen, const char *key, size_t keylen,
		  struct cq_buf *out);
/* prefix + "cq:" + kind + ":" + name: keys cachectl owns (generation
 * counters, tag sets, --once locks). */
bool cqi_own_key(const struct cq_ctx *ctx, const char *kind, const char *name,
		 size_t len, struct cq_buf *out);
/* The reply r of GET key into v (copied; a nil leaves v not found); an
 * error reply, or one of another type, is the context's error. */
enum cq_err cqi_take_value(struct cq_ctx *ctx, const char *key,
			   const struct cqi_reply *r, struct cq_value *v);
/* Record key (a full key name) in each tag's set, one EVAL a tag: on
 * pipe, tagged pipe_tag, or with pipe NULL behind whatever ctx has queued
 * (the caller reads their replies); ttl_ms 0 = the key has no TTL. */
enum cq_err cqi_tag_append(struct cq_ctx *ctx, struct cqi_pipe *pipe,
			   uint64_t pipe_tag, const char *key, size_t keylen,
			   const char *const *tags, const size_t *taglens,
			   size_t ntags, long long ttl_ms, struct cq_buf *scratch);

/* ---- locks with an owner token (lock.c) -------------------------------- */

struct cqi_lock {
	char token[33];		/* 16 random bytes, hex */
	bool held;
};
/* SET key token NX PX ttl.  *won says whether we hold it now. */
enum cq_err cqi_lock_try(struct cq_ctx *ctx, const char *key, size_t keylen,
			 long long ttl_ms, struct cqi_lock *lk, bool *won);
/* Compare-and-delete: releases the lock only if we still own it. */
enum cq_err cqi_lock_release(struct cq_ctx *ctx, const char *key,
			     size_t keylen, struct cqi_lock *lk);
/* Compare-and-extend: *still says whether we still own it. */
enum cq_err cqi_lock_extend(struct cq_ctx *ctx, const char *key,
			    size_t keylen, long long ttl_ms,
			    struct cqi_lock *lk, bool *still);
/* The release script as EVAL arguments, for pipelined use. */
extern const char cqi_lock_release_lua[];
extern const char cqi_lock_extend_lua[];

/* ---- child processes (run.c) -------------------------------------------- */

struct cqi_child {
	pid_t pid;
	int fd;			/* read end of the child's stdout, -1 at EOF */
	struct cq_buf out;	/* what it printed, up to max bytes */
	size_t max;
	bool too_big;		/* it printed more than max */
	/* With too_big: out (then everything read after) goes to sink
	 * instead of memory; NULL drops it. */
	bool (*sink)(void *arg, const void *p, size_t n);
	void *sink_arg;
	bool sink_failed;
};

/*
 * Start argv[0] (PATH search) set up by cqi_child_setup (its own process
 * group, default signals, no cq secrets without --pass-env), with stdout
 * to a pipe, CQ_KEY=key in its environment, stdin from /dev/null when
 * null_stdin.  A command that cannot be run is reported through the
 * context (CQ_ERR_NOCMD: not found, CQ_ERR_NOEXEC: not executable).
 */
enum cq_err cqi_child_start(struct cq_ctx *ctx, char *const *argv,
			    const char *key, bool null_stdin,
			    struct cqi_child *ch);
/* Read what is available (blocking read once).  Returns false at EOF. */
bool cqi_child_read(struct cqi_child *ch);
/* Read to EOF and reap.  Returns the exit code in shell style
 * (128 + signal for a signal). */
int cqi_child_finish(struct cqi_child *ch);
/* Stop it (a stop request came): SIGTERM to its process group, SIGKILL
 * after CQI_KILL_GRACE_MS or on a second request; reaps it.  Returns the
 * exit code as cqi_child_finish does. */
int cqi_child_stop(struct cqi_child *ch);
void cqi_child_clear(struct cqi_child *ch);
/* The shell-style exit code of a waitpid status. */
int cqi_exit_status(int status);

#endif
