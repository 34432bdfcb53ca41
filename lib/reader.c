/* reader.c - the one reader of record streams (the input of warm and
 * enqueue): delimited records in constant memory, and the input rules
 * every verb shares (blank lines, CRLF, records too long, a truncated
 * last record). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cq.h"
#include "internal.h"

#define READ_CHUNK 65536
#define INITIAL_CAP (4 * READ_CHUNK)

struct cq_reader {
	struct cq_ctx *ctx;
	int fd;
	char delim;
	int nfields;		/* delimiters per record */
	bool refuse_cr;
	size_t max;
	char *buf;
	size_t cap, start, end;
	bool eof;
	bool skip;		/* drop the rest of a too-long record next call */
	bool cut;		/* the last record lost its final delimiter */
	bool stopped;		/* a stop request ended the input */
	int skip_found;		/* of its delimiters, already seen */
	uint64_t no, blank;
	/* called before each read (cqi_reader_serve): serves a connection
	 * while input is awaited */
	enum cq_err (*wait)(void *arg, int fd);
	void *wait_arg;
};

struct cq_reader *cqi_reader_new(struct cq_ctx *ctx, int fd,
				const struct cq_reader_opts *o)
{
	struct cq_reader *r = calloc(1, sizeof(*r));

	if (r)
		r->buf = malloc(INITIAL_CAP);
	if (!r || !r->buf) {
		free(r);
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return NULL;
	}
	r->ctx = ctx;
	r->fd = fd;
	r->delim = o->delim;
	r->nfields = o->nfields > 1 ? o->nfields : 1;
	r->refuse_cr = o->refuse_cr && o->delim == '\n' && r->nfields == 1;
	r->max = o->max ? o->max : SIZE_MAX - 2 * READ_CHUNK;
	r->cap = INITIAL_CAP;
	return r;
}

void cqi_reader_free(struct cq_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

void cqi_reader_wait(struct cq_reader *r,
		     enum cq_err (*wait)(void *arg, int fd), void *arg)
{
	r->wait = wait;
	r->wait_arg = arg;
}

uint64_t cqi_reader_blank(const struct cq_reader *r)
{
	return r->blank;
}

bool cqi_reader_stopped(const struct cq_reader *r)
{
	return r->stopped;
}

uint64_t cqi_reader_records(const struct cq_reader *r)
{
	return r->no;
}

static void to_front(struct cq_reader *r)
{
	memmove(r->buf, r->buf + r->start, r->end - r->start);
	r->end -= r->start;
	r->start = 0;
}

/* After a long record, give the memory back. */
static void shrink(struct cq_reader *r)
{
	char *b;

	if (r->cap <= INITIAL_CAP || r->end - r->start > INITIAL_CAP / 2)
		return;
	to_front(r);
	b = realloc(r->buf, INITIAL_CAP);
	if (b) {
		r->buf = b;
		r->cap = INITIAL_CAP;
	}
}

enum cq_err cqi_wait_readable(struct cq_ctx *ctx, int fd)
{
	struct pollfd pfd = { fd, POLLIN, 0 };

	/* in slices, so that a signal landing just before poll() is seen */
	for (;;) {
		int n;

		if (cq_stop_requested())
			return CQ_ERR_TEMPFAIL;	/* the reader stops */
		n = poll(&pfd, 1, 200);
		if (n > 0)
			return CQ_OK;
		if (n < 0 && errno != EINTR)
			return cq_seterr(ctx, CQ_ERR_IO, "poll: %s",
					 strerror(errno));
	}
}

/* Read more bytes after end, making room first (the buffer never grows
 * past max + READ_CHUNK: a longer record is cut before). */
static bool fill(struct cq_reader *r)
{
	enum cq_err e;
	ssize_t n;

	if (r->cap - r->end < READ_CHUNK && r->start > 0)
		to_front(r);
	if (r->cap - r->end < READ_CHUNK) {
		size_t cap = r->cap * 2, most = r->max + READ_CHUNK;
		char *b;

		if (cap > most)
			cap = most > r->cap ? most : r->cap;
		if (cap > r->cap) {
			b = realloc(r->buf, cap);
			if (!b) {
				cq_seterr(r->ctx, CQ_ERR_NOMEM, "out of memory");
				return false;
			}
			r->buf = b;
			r->cap = cap;
		}
	}
	/* wait in poll(), which a stop request ends (SA_RESTART restarts
	 * a read()) */
	e = r->wait ? r->wait(r->wait_arg, r->fd) :
		      cqi_wait_readable(r->ctx, r->fd);
	if (e && !r->ctx->err && cq_stop_requested()) {
		r->stopped = true;
		return false;
	}
	if (e) {
		if (!r->ctx->err)
			cq_seterr(r->ctx, e, "the connection ended while input was awaited");
		return false;
	}
	do
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		cq_seterr(r->ctx, CQ_ERR_IO, "cannot read the input: %s",
			  strerror(errno));
		return false;
	}
	if (n == 0)
		r->eof = true;
	r->end += (size_t)n;
	return true;
}

/* Drop input up to the end of the record that was too long. */
static bool skip_rest(struct cq_reader *r)
{
	for (;;) {
		char *p = r->buf + r->start, *e = r->buf + r->end;

		while (p < e && (p = memchr(p, r->delim, (size_t)(e - p)))) {
			p++;
			if (++r->skip_found == r->nfields) {
				r->start = (size_t)(p - r->buf);
				return true;
			}
		}
		r->start = r->end = 0;
		if (r->eof)
			return true;
		if (!fill(r))
			return false;
	}
}

/* The next record, blank or not, into rec (flaw not yet judged). */
static bool next_raw(struct cq_reader *r, struct cq_rec_in *rec)
{
	size_t scanned = 0;
	int found = 0;

	for (;;) {
		char *s = r->buf + r->start, *e = r->buf + r->end;
		char *p = s + scanned;
		size_t avail = r->end - r->start;

		while (p < e && (p = memchr(p, r->delim, (size_t)(e - p)))) {
			if (++found == r->nfields) {
				rec->p = s;
				rec->len = (size_t)(p - s);
				r->start += rec->len + 1;
				if (rec->len > r->max) {
					rec->len = r->max;
					rec->flaw = CQ_REC_TOO_LONG;
				}
				return true;
			}
			p++;
		}
		scanned = avail;
		/* a last pair cut after its key ends in a delimiter that
		 * is no part of it */
		if (found && avail && e[-1] == r->delim)
			avail--;
		if (avail > r->max) {
			/* keep max bytes to show; drop the rest next call,
			 * since reading on would overwrite what rec shows */
			rec->p = s;
			rec->len = r->max;
			rec->flaw = CQ_REC_TOO_LONG;
			r->start = r->end;
			r->skip = true;
			r->skip_found = found;
			return true;
		}
		if (r->eof) {
			if (r->start == r->end)
				return false;
			/* a last record without its delimiter; its last field
			 * may end with one (a pair cut after the key) */
			rec->p = s;
			rec->len = avail;
			r->cut = avail < r->end - r->start;
			r->start = r->end;
			return true;
		}
		if (!fill(r))
			return false;
	}
}

bool cqi_reader_next(struct cq_reader *r, struct cq_rec_in *rec)
{
	for (;;) {
		memset(rec, 0, sizeof(*rec));
		if (r->stopped || cq_stop_requested()) {
			r->stopped = true;
			return false;
		}
		if (r->skip) {
			r->skip = false;
			if (!skip_rest(r))
				return false;
		}
		shrink(r);
		if (!next_raw(r, rec))
			return false;
		rec->no = ++r->no;
		if (rec->len == 0 && !rec->flaw && !r->cut) {
			r->blank++;
			continue;
		}
		if (r->refuse_cr && !rec->flaw && rec->p[rec->len - 1] == '\r')
			rec->flaw = CQ_REC_CR;
		return true;
	}
}

const char *cqi_rec_flaw_str(enum cq_rec_flaw f)
{
	switch (f) {
	case CQ_REC_OK:
		break;
	case CQ_REC_TOO_LONG:
		return "longer than --max-size";
	case CQ_REC_CR:
		return "line ends in CR (a CRLF file?): convert it with dos2unix or tr -d '\\r' first";
	}
	return "";
}
