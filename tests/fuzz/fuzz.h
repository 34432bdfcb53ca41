/* fuzz.h - helpers shared by the libFuzzer targets in tests/fuzz/. */
#ifndef CQ_FUZZ_H
#define CQ_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"

/* The input as a NUL-terminated string (cut at the first NUL, as a C
 * caller passing argv or getenv() would see it).  Caller frees. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* An invariant broke: say which, and crash so libFuzzer saves the input. */
#define FUZZ_ASSERT(cond, ...) do { \
	if (!(cond)) { \
		fprintf(stderr, "invariant failed: %s: ", #cond); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
		abort(); \
	} \
} while (0)

#endif
