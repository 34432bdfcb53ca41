/* internal.h - symbols shared between lib/ files, never by programs. */
#ifndef CQ_INTERNAL_H
#define CQ_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "cq.h"

void cqi_vformat(char *buf, size_t len, const char *fmt, va_list ap);
void cqi_errbuf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Join the context's prefix and key into buf (reset first).  Returns false
 * out of memory. */
bool cqi_prefixed(const struct cq_ctx *ctx, const char *key, size_t keylen,
		  struct cq_buf *buf);

/* Set name on obj (a jansson json_t) to the n bytes at p as a string, or,
 * when they are not valid UTF-8, name_base64 to their base64.  0, or -1
 * out of memory. */
struct json_t;
int cqi_json_set_bytes(struct json_t *obj, const char *name, const char *p,
		       size_t n);

/* Percent-decode s[0..n) into a new NUL-terminated string; NULL on a bad
 * escape or out of memory. */
char *cqi_pct_decode(const char *s, size_t n);

/* The length of the first member of a comma-separated URL list at p; a
 * comma inside a member's user info (a password) does not end it. */
size_t cqi_url_member_len(const char *p);

/*
 * --track (stats_redis.c): after a read of the cache that found `hits`
 * keys and missed `misses`, count them for the context's prefix in
 * CQ_TRACK_KEY.  The update (one HINCRBY per non-zero count) is written at
 * once and its reply not waited for: the transport skips it before it
 * reads the next reply, so it costs no round trip.  Never fails the read:
 * a failure to count is silent.  Does nothing unless ctx->set.track.
 */
void cqi_stats_track(struct cq_ctx *ctx, size_t hits, size_t misses);

/* Call wait(arg, fd) before each read of r (cq_reader_serve, which lives
 * with the publisher so that cachectl links no AMQP); NULL stops. */
struct cq_reader;
void cqi_reader_wait(struct cq_reader *r,
		     enum cq_err (*wait)(void *arg, int fd), void *arg);

#endif
