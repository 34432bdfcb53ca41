/* cq_cache.h - the cache verbs of libcq (cachectl).  Included by cq.h.
 *
 * Sections: key names (cluster slots, derived keys, namespaces); get and
 * set; invalidate; warm (with its record parsers, pure functions a fuzzer
 * can call); fetch (cache-aside around a command).
 *
 * Key layout (all under the context's prefix P):
 *   P KEY                        a plain entry
 *   P "ns:" NS ":" GEN ":" KEY   an entry of namespace NS, generation GEN
 *   P "cq:ns:" NS                the generation counter of NS (no TTL)
 *   P "cq:tag:" TAG              the set of full key names tagged TAG
 *   P "cq:once:" NAME            the lock of `warm --once NAME`
 *   derived(K, "lock"|"meta")    fetch's lock and metadata, same slot as K
 */
#ifndef CQ_CACHE_H
#define CQ_CACHE_H

/* ---- key names ---------------------------------------------------------- */

/* A namespace name: 1-100 of [A-Za-z0-9._/-]. */
bool cq_ns_name_ok(const char *ns);

/* ---- get / set ---------------------------------------------------------- */

/* A value read from the cache; data is owned by the struct. */
struct cq_value {
	char *data;		/* NUL-terminated for convenience; may hold NULs */
	size_t len;
	bool found;
	long long ttl_ms;	/* with want_ttl: remaining TTL, -1 = none */
};
void cq_value_clear(struct cq_value *v);

struct cq_get_opts {
	const char *ns;		/* namespace, or NULL */
	bool want_ttl;		/* fill ttl_ms */
};

/* Read n keys (prefixed) in one round trip of pipelined GETs (two with a
 * namespace: its generation first).  Misses are not errors: out[i] says
 * found or not.  A key holding a non-string type is CQ_ERR_DATA. */
enum cq_err cq_cache_get(struct cq_ctx *ctx, size_t n, const char *const *keys,
			 const struct cq_get_opts *o, struct cq_value *out);

struct cq_set_opts {
	long long ttl_ms;	/* > 0 unless no_ttl or keep_ttl; with keep_ttl
				 * the TTL of a key that was missing (0: a
				 * missing key is not written) */
	long long jitter_ms;	/* adds up to this much at random */
	double jitter_pct;	/* or up to this percentage of ttl_ms */
	bool no_ttl, keep_ttl, nx, xx;
	const char *ns;		/* namespace, or NULL */
	const char *const *tags;	/* record the key under these tags */
	size_t ntags;
};

/* Write one value.  *written is false when --nx/--xx prevented it, or
 * keep_ttl found no key and had no ttl_ms to give it: keep_ttl never
 * creates a key without expiry (SET XX KEEPTTL, then for a missing key SET
 * NX PX ttl_ms; each step atomic, a key appearing in between is retried).
 * *ttl_used gets the TTL written (ms, 0 for none, -1 when the key kept its
 * own); may be NULL.  Tags are
 * recorded only when the value was written; each tag set keeps a TTL at
 * least as long as its longest-lived key. */
enum cq_err cq_cache_set(struct cq_ctx *ctx, const char *key, size_t keylen,
			 const void *val, size_t len,
			 const struct cq_set_opts *o, bool *written,
			 long long *ttl_used);

/* ---- invalidate ---------------------------------------------------------- */

struct cq_inval_stats {
	uint64_t scanned;	/* keys SCAN/SSCAN returned (with repeats) */
	uint64_t matched;	/* keys listed (dry run) or UNLINKed */
	uint64_t deleted;	/* UNLINKs that removed a key */
	long long elapsed_ms;
	char generation[24];	/* namespace mode: the new generation */
	bool stopped;		/* pattern and tag modes: a stop request
				 * (cq_stop_requested) ended the scan early */
};

struct cq_inval_opts {
	const char *ns;		/* keys and pattern modes: in this namespace */
	bool dry_run;		/* list, do not delete */
	double rate;		/* at most this many keys/s, 0 = no limit */
	size_t count;		/* SCAN COUNT hint, 0 = adapt (100-5000) */
	/* Dry run: called with each key (without the prefix, and without the
	 * namespace part); return false to stop (output failed). */
	bool (*on_key)(void *arg, const char *key, size_t len);
	/* Called about every 100 ms during long runs; may be NULL. */
	void (*on_progress)(void *arg, const struct cq_inval_stats *st);
	void *arg;
};

/* UNLINK n keys (and their fetch metadata), pipelined. */
enum cq_err cq_invalidate_keys(struct cq_ctx *ctx, size_t n,
			       const char *const *keys,
			       const struct cq_inval_opts *o,
			       struct cq_inval_stats *st);
/* SCAN MATCH prefix+glob (the prefix's glob characters escaped) in
 * batches of COUNT, each batch's UNLINKs pipelined with the next SCAN. */
enum cq_err cq_invalidate_pattern(struct cq_ctx *ctx, const char *glob,
				  const struct cq_inval_opts *o,
				  struct cq_inval_stats *st);
/* UNLINK every key recorded under tag (SSCAN in batches), then the set. */
enum cq_err cq_invalidate_tag(struct cq_ctx *ctx, const char *tag,
			      const struct cq_inval_opts *o,
			      struct cq_inval_stats *st);
/* Bump the namespace's generation: O(1), every key of it unreachable.
 * Dry run: report the current generation only. */
enum cq_err cq_invalidate_ns(struct cq_ctx *ctx, const char *ns,
			     const struct cq_inval_opts *o,
			     struct cq_inval_stats *st);

/* ---- warm ------------------------------------------------------------------ */

enum cq_warm_format { CQ_WARM_TSV, CQ_WARM_NUL, CQ_WARM_JSONL };

struct cq_warm_stats {
	uint64_t records;	/* records read (lines, -0 pairs), blank included */
	uint64_t warmed;	/* keys written */
	uint64_t skipped;	/* present keys left alone (--nx, --exec) */
	uint64_t bad;		/* malformed records, skipped */
	uint64_t failed;	/* writes refused, commands failed, and the
				 * unconfirmed ones below */
	uint64_t unconfirmed;	/* of failed: records read whose write had
				 * no reply when the run had to stop */
	long long elapsed_ms;
	bool locked_out;	/* --once: another run holds the lock */
	bool stopped;		/* a stop request (cq_stop_requested) ended
				 * the run early: the rest of the input
				 * was not read */
	uint64_t denied;	/* of failed: refused for permission (an ACL's
				 * NOPERM), which no retry gets through */
	uint64_t blank;		/* blank lines, skipped */
	uint64_t wrong_type;	/* of failed: refused because a key holds
				 * another type (a --tag's key not a set),
				 * which no retry gets through either */
};

struct cq_warm_opts {
	enum cq_warm_format format;
	struct cq_set_opts set;	/* ttl, jitter, nx, ns, tags for every key */
	double rate;		/* writes/s, 0 = no limit */
	size_t window;		/* commands in flight, 0 = 1000 */
	unsigned long long max_size;	/* longest record, 0 = 64 MiB */
	const char *once;	/* lock name, or NULL */
	long long once_ttl_ms;	/* lock TTL (refreshed while running) */
	const char *exec;	/* keys mode: sh -c EXEC with the key as $1 */
	unsigned jobs;		/* commands at a time, 0 = 1 */
	/* Reports (the program prints them): a bad record, a failed write or
	 * command (key may be NULL), progress about every 100 ms. */
	void (*on_bad)(void *arg, uint64_t recno, const char *msg);
	void (*on_fail)(void *arg, uint64_t recno, const char *key,
			size_t keylen, const char *msg);
	void (*on_progress)(void *arg, const struct cq_warm_stats *st);
	void *arg;
};

/*
 * Warm from fd (records in o->format; with o->exec, keys one per record).
 * Constant memory: a read buffer, the pipeline window and the longest
 * record.  Returns CQ_OK when the input was read to the end (bad records
 * and failed writes are counted in st); an error when the run had to stop
 * (connection lost, read error).
 */
enum cq_err cq_warm(struct cq_ctx *ctx, int fd, const struct cq_warm_opts *o,
		    struct cq_warm_stats *st);

/* ---- fetch ---------------------------------------------------------------- */

enum cq_fetch_how {
	CQ_FETCH_HIT,		/* served from the cache */
	CQ_FETCH_STALE,		/* served stale, refresh started */
	CQ_FETCH_COMPUTED,	/* ran CMD (and cached its output if it exited 0) */
	CQ_FETCH_WAITED,	/* another caller computed it while we waited */
	CQ_FETCH_UNCACHED,	/* Redis unusable: ran CMD without the cache */
};

struct cq_fetch_opts {
	const char *ns;
	struct cq_set_opts set;	/* ttl, jitter */
	long long lock_ttl_ms;	/* 0 = 30 s */
	long long wait_ms;	/* how long to wait for another caller, 0 = lock TTL */
	long long stale_ms;	/* keep and serve a value this long past its TTL */
	double beta;		/* XFetch early refresh, 0 = off */
	bool fail_closed;	/* Redis unreachable: fail instead of running CMD */
	unsigned long long max_size;	/* largest output cached, 0 = 64 MiB */
	char *const *argv;	/* the command, NULL-terminated */
	/* Where the value goes (the program writes it to stdout); returns
	 * false when the write failed. */
	bool (*sink)(void *arg, const void *p, size_t n);
	void *arg;
};

struct cq_fetch_result {
	enum cq_fetch_how how;
	int exit_code;		/* CMD's shell-style exit code when it ran, else 0 */
	bool too_big;		/* output larger than max_size: not cached */
	bool output_failed;	/* the sink failed */
	char warning[600];	/* something the user should hear, or "" */
};

/*
 * The cache-aside pattern around a command: print the cached value, or
 * compute it under a lock (one caller at a time; the others wait for the
 * value), cache it if CMD exits 0, and print it.  The caller has tried
 * cq_redis_connect: when that failed (its error still on ctx), CMD runs
 * uncached with a warning, or with fail_closed the error is returned.  Returns CQ_OK when a
 * value or CMD's output went to the sink (see res->exit_code); errors:
 * CQ_ERR_UNAVAILABLE with fail_closed, CQ_ERR_TEMPFAIL when the wait ran
 * out, CQ_ERR_DATA for a non-string key, CQ_ERR_NOTFOUND / CQ_ERR_NOPERM
 * when CMD cannot be run.
 */
enum cq_err cq_fetch(struct cq_ctx *ctx, const char *key,
		     const struct cq_fetch_opts *o, struct cq_fetch_result *res);

#endif
