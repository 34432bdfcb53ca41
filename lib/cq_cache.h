/* cq_cache.h - the cache verbs of libcq (cachectl).  Included by cq.h. */
#ifndef CQ_CACHE_H
#define CQ_CACHE_H

/* A value read from the cache; data is owned by the struct. */
struct cq_value {
	char *data;		/* NUL-terminated for convenience; may hold NULs */
	size_t len;
	bool found;
	long long ttl_ms;	/* with want_ttl: remaining TTL, -1 = none */
};
void cq_value_clear(struct cq_value *v);

/* Read n keys (prefixed) in one round trip.  Misses are not errors: out[i]
 * says found or not.  A key holding a non-string type is CQ_ERR_DATA. */
enum cq_err cq_cache_get(struct cq_ctx *ctx, size_t n, const char *const *keys,
			 bool want_ttl, struct cq_value *out);

struct cq_set_opts {
	long long ttl_ms;	/* > 0 unless no_ttl or keep_ttl */
	long long jitter_ms;	/* adds up to this much at random */
	double jitter_pct;	/* or up to this percentage of ttl_ms */
	bool no_ttl, keep_ttl, nx, xx;
};

/* The TTL to write: ttl_ms plus a uniform random extra in
 * [0, jitter_ms] or [0, ttl_ms * jitter_pct / 100]. */
long long cq_jittered_ttl(const struct cq_set_opts *o);

/* Write one value.  *written is false when --nx/--xx prevented it.
 * *ttl_used gets the TTL written (ms, 0 for none); may be NULL. */
enum cq_err cq_cache_set(struct cq_ctx *ctx, const char *key, const void *val,
			 size_t len, const struct cq_set_opts *o,
			 bool *written, long long *ttl_used);

#endif
