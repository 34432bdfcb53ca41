/* util.c - clocks, randomness, buffers, throttling, the queue names the
 * broker takes, and the files the TLS flags name. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cq.h"
#include "internal.h"

long long cq_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long cq_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum cq_err cqi_random_bytes(struct cq_ctx *ctx, void *buf, size_t n)
{
	char *p = buf;

	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return cq_seterr(ctx, CQ_ERR_INTERNAL,
					 "cannot read the OS random source: %s",
					 strerror(errno));
		}
		p += got;
		n -= (size_t)got;
	}
	return CQ_OK;
}

/* xorshift64*, seeded once from getrandom(). */
static uint64_t rng_state;

uint64_t cqi_rand_below(uint64_t n)
{
	uint64_t x, limit;

	if (n == 0)
		return 0;
	if (rng_state == 0) {
		if (getrandom(&rng_state, sizeof(rng_state), 0) !=
		    sizeof(rng_state))
			rng_state = (uint64_t)cq_wall_ms() ^ (uint64_t)getpid();
		rng_state |= 1;
	}
	limit = UINT64_MAX - UINT64_MAX % n;
	do {
		rng_state ^= rng_state >> 12;
		rng_state ^= rng_state << 25;
		rng_state ^= rng_state >> 27;
		x = rng_state * 0x2545F4914F6CDD1DULL;
	} while (x >= limit);
	return x % n;
}

bool cq_buf_reserve(struct cq_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 64;
	char *d;

	if (b->len + n + 1 <= b->cap)
		return true;
	while (cap < b->len + n + 1)
		cap *= 2;
	d = realloc(b->data, cap);
	if (!d)
		return false;
	b->data = d;
	b->cap = cap;
	return true;
}

bool cq_buf_append(struct cq_buf *b, const void *p, size_t n)
{
	if (!cq_buf_reserve(b, n))
		return false;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

void cq_buf_reset(struct cq_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void cq_buf_free(struct cq_buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void *cqi_grow(void *v, size_t *cap, size_t need, size_t size, size_t first)
{
	size_t n = *cap ? *cap : first;
	void *bigger;

	if (need <= *cap)
		return v;
	while (n < need)
		n *= 2;
	bigger = realloc(v, n * size);
	if (bigger)
		*cap = n;
	return bigger;
}

char *cqi_memdup(const void *p, size_t n)
{
	char *s = malloc(n + 1);

	if (!s)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

void cqi_hostname(char *buf, size_t len)
{
	buf[len - 1] = '\0';
	if (gethostname(buf, len - 1) < 0 || !*buf)
		snprintf(buf, len, "unknown");
}

enum cq_err cqi_check_file(struct cq_ctx *ctx, const char *what,
			   const char *path)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return cq_seterr(ctx, CQ_ERR_USAGE, "cannot use %s '%s': %s",
				 what, path, strerror(errno));
	fclose(f);
	return CQ_OK;
}

enum cq_err cqi_tls_client_files(struct cq_ctx *ctx, bool *given)
{
	const struct cq_settings *set = &ctx->set;

	*given = set->cert || set->key;
	if (!*given)
		return CQ_OK;
	if (!set->cert || !set->key)
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "--cert and --key go together");
	if (cqi_check_file(ctx, "client certificate", set->cert) ||
	    cqi_check_file(ctx, "client key", set->key))
		return ctx->err;
	return CQ_OK;
}

bool cqi_prefixed(const struct cq_ctx *ctx, const char *key, size_t keylen,
		  struct cq_buf *buf)
{
	const char *pre = ctx->set.prefix ? ctx->set.prefix : "";

	cq_buf_reset(buf);
	return cq_buf_append(buf, pre, strlen(pre)) &&
	       cq_buf_append(buf, key, keylen);
}

void cqi_throttle_init(struct cqi_throttle *t, double per_s)
{
	t->per_s = per_s;
	t->start_ms = cq_now_ms();
	t->done = 0;
}

void cqi_throttle_wait(struct cqi_throttle *t, unsigned long long n)
{
	long long due, now;

	t->done += n;
	if (t->per_s <= 0)
		return;
	due = t->start_ms + (long long)((double)t->done * 1000.0 / t->per_s);
	now = cq_now_ms();
	if (due > now) {
		struct timespec ts = { (due - now) / 1000,
				       ((due - now) % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* ---- queue names ---------------------------------------------------------- */

void cqi_show_bytes(const char *p, size_t n, size_t max, char *buf,
		    size_t cap)
{
	size_t o = 0, l;

	for (size_t i = 0; i < n && i < max && o + 8 < cap; i += l) {
		l = cq_utf8_seq(p + i, n - i);
		if (l && (l > 1 || (p[i] >= 0x20 && p[i] != 0x7f))) {
			memcpy(buf + o, p + i, l);
			o += l;
		} else {
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02X",
					      (unsigned char)p[i]);
			l = 1;
		}
	}
	if (n > max && o + 4 < cap)
		memcpy(buf + o, "...", 3), o += 3;
	buf[o] = '\0';
}

bool cq_name_ok(const char *kind, const char *name, char *err, size_t errlen)
{
	size_t n = strlen(name), l;
	char shown[300];

	if (n == 0) {
		cqi_errbuf(err, errlen, "empty %s name", kind);
		return false;
	}
	cqi_show_bytes(name, strlen(name), 60, shown, sizeof(shown));
	if (n > 255) {
		cqi_errbuf(err, errlen, "%s name longer than 255 bytes: '%s'",
			   kind, shown);
		return false;
	}
	for (size_t i = 0; i < n; i += l)
		if (!(l = cq_utf8_seq(name + i, n - i))) {
			cqi_errbuf(err, errlen, "%s name not valid UTF-8: '%s'",
				   kind, shown);
			return false;
		}
	return true;
}

uint64_t cqi_hash64(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
