/* parse.c - strict parsers for numbers, durations, sizes and jitter. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"

bool cq_parse_uint(const char *s, unsigned long long min,
		   unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* A non-negative decimal number, digits required before any '.'. */
static bool parse_number(const char *s, double *out, const char **rest)
{
	char *end;
	double v;

	if (!isdigit((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || !isfinite(v) || v < 0)
		return false;
	/* strtod accepts hex and exponents; we take plain decimals only */
	for (const char *p = s; p < end; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			return false;
	*out = v;
	*rest = end;
	return true;
}

bool cq_parse_duration(const char *s, long long *ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	const char *rest;
	double v;

	if (!s || !parse_number(s, &v, &rest))
		return false;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(rest, units[i].unit) == 0) {
			double r = v * units[i].ms;

			if (r > 9.0e15)
				return false;
			*ms = llround(r);
			return true;
		}
	}
	return false;
}

bool cq_parse_size(const char *s, unsigned long long *bytes)
{
	static const char units[] = "BKMGT";
	const char *rest, *u;
	double v, mult = 1;

	if (!s || !parse_number(s, &v, &rest))
		return false;
	if (*rest) {
		u = strchr(units, toupper((unsigned char)*rest));
		if (!u)
			return false;
		for (const char *p = units; p < u; p++)
			mult *= 1024;
		rest++;
		if (u != units && (strcmp(rest, "iB") == 0 ||
				   strcmp(rest, "B") == 0))
			rest += strlen(rest);
		if (*rest)
			return false;
	}
	v *= mult;
	if (v > 1.8e19)
		return false;
	/* not llround: its long long overflows above 2^63 */
	*bytes = (unsigned long long)(v + 0.5);
	return true;
}

bool cq_parse_jitter(const char *s, long long *ms, double *pct)
{
	size_t n = s ? strlen(s) : 0;

	*ms = 0;
	*pct = 0;
	if (n > 1 && s[n - 1] == '%') {
		char num[32];
		const char *rest;
		double v;

		if (n >= sizeof(num))
			return false;
		memcpy(num, s, n - 1);
		num[n - 1] = '\0';
		if (!parse_number(num, &v, &rest) || *rest || v > 100)
			return false;
		*pct = v;
		return true;
	}
	return cq_parse_duration(s, ms);
}
