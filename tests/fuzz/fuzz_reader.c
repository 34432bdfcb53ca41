/*
 * fuzz_reader - the one record reader (reader.c) behind `cachectl warm`
 * and `qctl enqueue`: lines, -0 records, and warm -0's key/value pairs,
 * with the input rules (blank lines, CRLF, too long, a cut last pair),
 * checked against a model.
 *
 * The input is a recipe, so that a few bytes describe megabytes of stream
 * (the reader's buffer is 256 KiB and grows; boundaries matter):
 *   byte 0: bit 0 the delimiter ('\n' or '\0'), bit 1 refuse_cr, bit 2
 *   pairs (nfields 2); bytes 1-2: max record length;
 *   then pairs (n, c): a record of (n * 997 + c) bytes counting up from
 *   c (a pair has a delimiter in its middle, and at least one byte;
 *   three when it is last without a delimiter, so that its value is
 *   not empty: "k\0" at the end is a cut pair),
 *   followed by a delimiter unless it is the last and c is odd.  A last
 *   pair with c & 2 is cut after its key: the key's bytes and one
 *   delimiter.
 * The stream goes through a memfd.  The reader must return every
 * non-blank record in order, numbered from 1 with blanks counted: the
 * first min(len, max) bytes, TOO_LONG exactly when len > max, CR exactly
 * when a kept line ends in '\r' under refuse_cr.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"

struct rec {
	size_t len, mid;	/* mid: where a pair's inner delimiter sits */
	unsigned char c;
	bool pair;
};

/* Byte k of a record that counts up from c (never the delimiter). */
static unsigned char pattern(unsigned char c, size_t k, char delim)
{
	unsigned char b = (unsigned char)(c + k);

	return (char)b == delim ? 'x' : b;
}

static unsigned char byte_of(const struct rec *r, size_t k, char delim)
{
	if (r->pair && k == r->mid)
		return (unsigned char)delim;
	return pattern(r->c, k, delim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec recs[64];
	size_t nrec = 0, max, got_n = 0;
	struct cq_reader_opts o = { 0 };
	char *rbuf = NULL;
	size_t rcap = 0;
	struct cq_ctx *ctx;
	struct cq_reader *r;
	struct cq_rec_in in;
	bool last_open = false;
	int fd;

	if (size < 3)
		return 0;
	o.delim = data[0] & 1 ? '\0' : '\n';
	o.refuse_cr = data[0] & 2;
	o.nfields = data[0] & 4 ? 2 : 1;
	max = ((size_t)data[1] << 8 | data[2]) * 17 + 1;
	o.max = max;
	fd = memfd_create("fuzz_reader", 0);
	if (fd < 0)
		abort();
	for (size_t i = 3; i + 1 < size && nrec < 64; i += 2) {
		size_t n = (size_t)data[i] * 997 + data[i + 1];
		unsigned char c = data[i + 1];
		bool last = i + 3 >= size || nrec == 63;
		struct rec *rc = &recs[nrec];

		bool open;

		rc->c = c;
		rc->pair = o.nfields == 2 && !(last && (c & 2));
		open = last && (c & 1) && (o.nfields == 1 || rc->pair);
		if (rc->pair && n == 0)
			n = 1;
		/* an open pair with an empty value would read as a cut one */
		if (rc->pair && open && n < 3)
			n = 3;
		rc->len = n;
		rc->mid = n / 2;
		if (n > rcap) {
			rbuf = realloc(rbuf, n);
			rcap = n;
		}
		for (size_t k = 0; k < n; k++)
			rbuf[k] = (char)byte_of(rc, k, o.delim);
		if (n && write(fd, rbuf, n) != (ssize_t)n)
			abort();
		nrec++;
		if (open) {
			last_open = true;
			break;
		}
		if (write(fd, &o.delim, 1) != 1)
			abort();
		if (last)
			break;
	}
	/* an open last line with no bytes is no record at all */
	if (last_open && nrec && recs[nrec - 1].len == 0)
		nrec--;
	lseek(fd, 0, SEEK_SET);
	ctx = cq_ctx_new(NULL);
	r = ctx ? cqi_reader_new(ctx, fd, &o) : NULL;
	if (!r)
		abort();
	for (size_t want_i = 0; cqi_reader_next(r, &in); want_i++) {
		const struct rec *want;
		bool too_long;
		size_t len;

		/* blank single-field records are skipped, not returned */
		while (want_i < nrec && !recs[want_i].pair &&
		       recs[want_i].len == 0 &&
		       !(o.nfields == 2 && want_i == nrec - 1))
			want_i++;
		FUZZ_ASSERT(want_i < nrec, "extra record %zu", got_n);
		want = &recs[want_i];
		too_long = want->len > max;
		len = too_long ? max : want->len;
		FUZZ_ASSERT(in.no == want_i + 1, "record %zu: numbered %llu",
			    want_i, (unsigned long long)in.no);
		FUZZ_ASSERT((in.flaw == CQ_REC_TOO_LONG) == too_long,
			    "record %zu: %zu bytes, max %zu, flaw %d", want_i,
			    want->len, max, in.flaw);
		FUZZ_ASSERT(in.len == len, "record %zu: length %zu, want %zu",
			    want_i, in.len, len);
		for (size_t k = 0; k < len; k++)
			FUZZ_ASSERT((unsigned char)in.p[k] == byte_of(want, k, o.delim),
				    "record %zu (%zu bytes, max %zu): byte %zu is 0x%02x, want 0x%02x",
				    want_i, want->len, max, k, (unsigned char)in.p[k],
				    byte_of(want, k, o.delim));
		if (!too_long)
			FUZZ_ASSERT((in.flaw == CQ_REC_CR) ==
				    (o.refuse_cr && o.delim == '\n' &&
				     o.nfields == 1 && len &&
				     in.p[len - 1] == '\r'),
				    "record %zu: CR flaw %d", want_i, in.flaw);
		got_n = want_i + 1;
	}
	FUZZ_ASSERT(ctx->err == CQ_OK, "read error: %s", ctx->errstr);
	/* trailing blank records are counted, not returned */
	while (got_n < nrec && !recs[got_n].pair && recs[got_n].len == 0 &&
	       !(o.nfields == 2 && got_n == nrec - 1))
		got_n++;
	FUZZ_ASSERT(got_n == nrec, "%zu records, want %zu", got_n, nrec);
	FUZZ_ASSERT(cqi_reader_records(r) == nrec, "counted %llu records, want %zu",
		    (unsigned long long)cqi_reader_records(r), nrec);
	cqi_reader_free(r);
	cq_ctx_free(ctx);
	close(fd);
	free(rbuf);
	return 0;
}
