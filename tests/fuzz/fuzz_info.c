/*
 * fuzz_info - the Redis INFO parser and the cache figures cqstat derives.
 *
 * The input is two INFO replies, split at the first byte 0xff: an earlier
 * sample and a later one.  Beyond "no crash": a reply that parses yields
 * figures that are NaN (not known) or finite and not negative, hit rates
 * at most 1, and keys without a TTL never more than the keys; a reply that
 * does not parse says why.
 */
#include <math.h>

#include "fuzz.h"
#include "internal.h"
#include "cq_stats.h"

static bool parse(const uint8_t *data, size_t size, struct cq_cache_sample *s,
		  long long at_ms)
{
	char err[200] = "";
	bool ok;

	memset(s, 0, sizeof(*s));
	s->at_ms = at_ms;
	ok = cqi_redis_info_parse((const char *)data, size, &s->info, err, sizeof(err));
	FUZZ_ASSERT(ok || err[0], "no message for a reply that does not parse");
	return ok;
}

static void check_figures(const struct cq_cache_sample *prev,
			  const struct cq_cache_sample *cur)
{
	struct cq_metrics ms;

	cq_metrics_init(&ms);
	if (cq_cache_figures(prev, cur, &ms)) {
		for (size_t i = 0; i < ms.n; i++) {
			double v = ms.m[i].value;

			FUZZ_ASSERT(isnan(v) || (isfinite(v) && v >= 0),
				    "%s is %g", ms.m[i].def->name, v);
		}
		FUZZ_ASSERT(!(cq_metrics_get(&ms, "hit_rate", NULL) > 1), "hit_rate > 1");
		FUZZ_ASSERT(!(cq_metrics_get(&ms, "hit_rate_total", NULL) > 1),
			    "hit_rate_total > 1");
		FUZZ_ASSERT(!(cq_metrics_get(&ms, "keys_no_ttl", NULL) >
			      cq_metrics_get(&ms, "keys", NULL)),
			    "more keys without a TTL than keys");
	}
	cq_metrics_clear(&ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *cut = memchr(data, 0xff, size);
	size_t first = cut ? (size_t)(cut - data) : size;
	struct cq_cache_sample a, b;
	bool ok_a = parse(data, first, &a, 1000);

	if (ok_a)
		check_figures(NULL, &a);
	if (cut && parse(cut + 1, size - first - 1, &b, 3500)) {
		check_figures(NULL, &b);
		if (ok_a)
			check_figures(&a, &b);
	}
	return 0;
}
