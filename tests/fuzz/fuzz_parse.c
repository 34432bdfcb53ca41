/*
 * fuzz_parse - durations, sizes, strict numbers and jitter.
 *
 * Invariants: what parses is non-negative and in range, and a duration
 * written back in milliseconds ("<ms>ms") parses to the same value.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), back[48];
	unsigned long long u, bytes;
	long long ms, ms2;
	double pct;

	if (cq_parse_duration(s, &ms)) {
		FUZZ_ASSERT(ms >= 0, "'%s' gave %lld", s, ms);
		snprintf(back, sizeof(back), "%lldms", ms);
		FUZZ_ASSERT(cq_parse_duration(back, &ms2) && ms2 == ms,
			    "'%s' -> %s does not round-trip", s, back);
	}
	if (cq_parse_size(s, &bytes))
		FUZZ_ASSERT(bytes <= 18446744073709551615ULL, "'%s'", s);
	if (cq_parse_uint(s, 1, 65535, &u))
		FUZZ_ASSERT(u >= 1 && u <= 65535, "'%s' gave %llu", s, u);
	if (cq_parse_jitter(s, &ms, &pct)) {
		FUZZ_ASSERT(ms >= 0 && pct >= 0 && pct <= 100,
			    "'%s' gave %lld ms, %g%%", s, ms, pct);
		FUZZ_ASSERT(ms == 0 || pct == 0, "'%s' gave both", s);
	}
	free(s);
	return 0;
}
