/*
 * fuzz_reader - the constant-memory record reader of `qctl enqueue`
 * (lines, or -0 NUL-separated records), checked against a model.
 *
 * The input is a recipe, so that a few bytes describe megabytes of stream
 * (the reader's buffer is 256 KiB and grows; boundaries matter):
 *   byte 0: delimiter ('\n' or '\0'); bytes 1-2: max record length;
 *   then pairs (n, c): a record of (n * 997 + c) bytes counting up from
 *   c, followed by a delimiter unless it is the last and c is odd.
 * The stream goes through a memfd.  The reader must return every record
 * in order: the first min(len, max) bytes, too_long exactly when len > max.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

struct rec {
	size_t len;
	unsigned char c;
};

/* Byte k of a record that counts up from c (never the delimiter). */
static unsigned char pattern(unsigned char c, size_t k, char delim)
{
	unsigned char b = (unsigned char)(c + k);

	return (char)b == delim ? 'x' : b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec recs[64];
	size_t nrec = 0, max, got_n = 0;
	char delim;
	char *rbuf = NULL;
	size_t rcap = 0;
	struct cq_reader *r;
	const char *p;
	size_t len;
	bool too_long, last_open = false;
	int fd, st;

	if (size < 3)
		return 0;
	delim = data[0] & 1 ? '\0' : '\n';
	max = ((size_t)data[1] << 8 | data[2]) * 17 + 1;
	fd = memfd_create("fuzz_reader", 0);
	if (fd < 0)
		abort();
	for (size_t i = 3; i + 1 < size && nrec < 64; i += 2) {
		size_t n = (size_t)data[i] * 997 + data[i + 1];
		unsigned char c = data[i + 1];
		bool last = i + 3 >= size || nrec == 63;

		if (n > rcap) {
			rbuf = realloc(rbuf, n);
			rcap = n;
		}
		for (size_t k = 0; k < n; k++)
			rbuf[k] = (char)pattern(c, k, delim);
		if (n && write(fd, rbuf, n) != (ssize_t)n)
			abort();
		recs[nrec].len = n;
		recs[nrec].c = c;
		nrec++;
		if (last && (c & 1)) {
			last_open = true;
			break;
		}
		if (write(fd, &delim, 1) != 1)
			abort();
	}
	lseek(fd, 0, SEEK_SET);
	r = cq_reader_new(fd, delim, max);
	if (!r)
		abort();
	while ((st = cq_reader_next(r, &p, &len, &too_long)) == 1) {
		const struct rec *want;

		/* an empty unterminated last record is no record at all */
		FUZZ_ASSERT(got_n < nrec, "extra record %zu", got_n);
		want = &recs[got_n];
		FUZZ_ASSERT(too_long == (want->len > max),
			    "record %zu: %zu bytes, max %zu, too_long %d", got_n,
			    want->len, max, too_long);
		FUZZ_ASSERT(len == (want->len > max ? max : want->len),
			    "record %zu: length %zu, want %zu", got_n, len,
			    want->len);
		for (size_t k = 0; k < len; k++)
			FUZZ_ASSERT((unsigned char)p[k] == pattern(want->c, k, delim),
				    "record %zu (%zu bytes, max %zu): byte %zu is 0x%02x, want 0x%02x",
				    got_n, want->len, max, k, (unsigned char)p[k],
				    pattern(want->c, k, delim));
		got_n++;
	}
	FUZZ_ASSERT(st == 0, "read error");
	if (last_open && nrec && recs[nrec - 1].len == 0)
		nrec--;
	FUZZ_ASSERT(got_n == nrec, "%zu records, want %zu", got_n, nrec);
	cq_reader_free(r);
	close(fd);
	free(rbuf);
	return 0;
}
