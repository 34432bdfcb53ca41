/* enqueue.c - input for qctl enqueue: delimited records read in constant
 * memory, and JSONL message records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"

#define READ_CHUNK 65536

struct cq_reader {
	int fd;
	char delim;
	size_t max;
	char *buf;
	size_t cap, start, end;
	bool eof;
	bool skip;	/* drop the rest of a too-long record on the next call */
	struct cq_publisher *pub;	/* served while input is awaited */
};

struct cq_reader *cq_reader_new(int fd, char delim, size_t max)
{
	struct cq_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = fd;
	r->delim = delim;
	r->max = max;
	r->cap = 4 * READ_CHUNK;
	r->buf = malloc(r->cap);
	if (!r->buf) {
		free(r);
		return NULL;
	}
	return r;
}

void cq_reader_free(struct cq_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	free(r);
}

void cq_reader_serve(struct cq_reader *r, struct cq_publisher *pub)
{
	r->pub = pub;
}

/* Read more bytes after end, making room first.  0, or -1 with errno. */
static int fill(struct cq_reader *r)
{
	ssize_t n;

	if (r->start > 0 && (r->end == r->cap || r->start > r->cap / 2)) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end < READ_CHUNK) {
		size_t cap = r->cap * 2;
		char *b = realloc(r->buf, cap);

		if (!b) {
			errno = ENOMEM;
			return -1;
		}
		r->buf = b;
		r->cap = cap;
	}
	if (r->pub && cq_publisher_wait_input(r->pub, r->fd)) {
		errno = ECONNABORTED;
		return -1;
	}
	do
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		r->eof = true;
	r->end += (size_t)n;
	return 0;
}

/* Drop bytes up to and including the next delimiter (a record too long
 * to keep).  0 or -1. */
static int skip_record(struct cq_reader *r)
{
	for (;;) {
		char *d = memchr(r->buf + r->start, r->delim, r->end - r->start);

		if (d) {
			r->start = (size_t)(d - r->buf) + 1;
			return 0;
		}
		r->start = r->end = 0;
		if (r->eof)
			return 0;
		if (fill(r) < 0)
			return -1;
	}
}

int cq_reader_next(struct cq_reader *r, const char **p, size_t *len,
		   bool *too_long)
{
	size_t scanned = 0;

	*too_long = false;
	if (r->skip) {
		r->skip = false;
		if (skip_record(r) < 0)
			return -1;
	}
	for (;;) {
		size_t avail = r->end - r->start;
		char *d = memchr(r->buf + r->start + scanned, r->delim,
				 avail - scanned);

		if (d) {
			*p = r->buf + r->start;
			*len = (size_t)(d - *p);
			r->start += *len + 1;
			if (*len > r->max) {
				*too_long = true;
				*len = r->max;
			}
			return 1;
		}
		scanned = avail;
		if (avail > r->max) {
			/* keep max bytes to show; drop the rest */
			*p = r->buf + r->start;
			*len = r->max;
			*too_long = true;
			r->start = r->end;
			/* not now: reading on would overwrite what *p shows */
			r->skip = true;
			return 1;
		}
		if (r->eof) {
			if (avail == 0)
				return 0;
			/* a last record without a delimiter */
			*p = r->buf + r->start;
			*len = avail;
			r->start = r->end;
			return 1;
		}
		if (fill(r) < 0)
			return -1;
	}
}

/* ---- JSONL records ------------------------------------------------------ */

struct cq_record {
	json_t *root;
	char *body;		/* decoded body_base64 */
	struct cq_header *headers;
	char expiration[24];
};

void cq_record_free(struct cq_record *rec)
{
	if (!rec)
		return;
	json_decref(rec->root);
	free(rec->body);
	free(rec->headers);
	free(rec);
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

char *cq_unbase64(const char *s, size_t n, size_t *outlen)
{
	char *out = malloc(n / 4 * 3 + 4), *o = out;
	unsigned acc = 0;
	int bits = 0;
	size_t i;

	if (!out)
		return NULL;
	while (n > 0 && s[n - 1] == '=')
		n--;
	for (i = 0; i < n; i++) {
		int v = b64_val((unsigned char)s[i]);

		if (v < 0) {
			free(out);
			errno = EINVAL;
			return NULL;
		}
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (bits >= 6) {	/* a lone trailing character */
		free(out);
		errno = EINVAL;
		return NULL;
	}
	*o = '\0';
	*outlen = (size_t)(o - out);
	return out;
}

static bool is_key(const char *k, const char *a, const char *b)
{
	return strcmp(k, a) == 0 || (b && strcmp(k, b) == 0);
}

/* A string member, with its length. */
static bool str_of(json_t *v, const char **s, size_t *len)
{
	if (!json_is_string(v))
		return false;
	*s = json_string_value(v);
	if (len)
		*len = json_string_length(v);
	return true;
}

static bool take_headers(struct cq_record *rec, json_t *h,
			 struct cq_message *msg, char *err, size_t errlen)
{
	size_t n = json_object_size(h), i = msg->nheaders;
	const char *k;
	json_t *v;

	rec->headers = calloc(msg->nheaders + n + 1, sizeof(*rec->headers));
	if (!rec->headers) {
		cqi_errbuf(err, errlen, "out of memory");
		return false;
	}
	if (msg->nheaders)
		memcpy(rec->headers, msg->headers,
		       msg->nheaders * sizeof(*msg->headers));
	json_object_foreach(h, k, v) {
		struct cq_header *hd = &rec->headers[i++];

		hd->key = k;
		if (json_is_string(v)) {
			hd->value = json_string_value(v);
			hd->vlen = json_string_length(v);
			if (hd->vlen == 0)
				hd->value = "";
		} else if (json_is_integer(v)) {
			hd->is_int = true;
			hd->ival = json_integer_value(v);
		} else if (json_is_true(v) || json_is_false(v)) {
			hd->value = json_is_true(v) ? "true" : "false";
		} else {
			cqi_errbuf(err, errlen,
				   "header '%s': want a string, integer or boolean",
				   k);
			return false;
		}
		if (strlen(k) > 255) {
			cqi_errbuf(err, errlen, "header name longer than 255 bytes");
			return false;
		}
	}
	msg->headers = rec->headers;
	msg->nheaders = i;
	return true;
}

/* One member of a record. */
static bool take_member(struct cq_record *rec, const char *k, json_t *v,
			struct cq_message *msg, bool *have_body, char *err,
			size_t errlen)
{
	const char *s;
	size_t len;

	if (is_key(k, "body", NULL)) {
		if (!str_of(v, &s, &len))
			goto want_string;
		msg->body = s;
		msg->len = len;
		*have_body = true;
	} else if (is_key(k, "body_base64", "body-base64")) {
		if (!str_of(v, &s, &len))
			goto want_string;
		free(rec->body);	/* body_base64 and body-base64 */
		rec->body = cq_unbase64(s, len, &msg->len);
		if (!rec->body) {
			cqi_errbuf(err, errlen, "body_base64: %s",
				   errno == EINVAL ? "not base64" : "out of memory");
			return false;
		}
		msg->body = rec->body;
		*have_body = true;
	} else if (is_key(k, "message_id", "message-id")) {
		if (!str_of(v, &msg->message_id, NULL))
			goto want_string;
	} else if (is_key(k, "content_type", "content-type")) {
		if (!str_of(v, &msg->content_type, NULL))
			goto want_string;
	} else if (is_key(k, "routing_key", "routing-key")) {
		if (!str_of(v, &msg->routing_key, NULL))
			goto want_string;
	} else if (is_key(k, "priority", NULL)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 255) {
			cqi_errbuf(err, errlen, "priority: want an integer 0-255");
			return false;
		}
		msg->priority = (int)json_integer_value(v);
	} else if (is_key(k, "expiration", NULL)) {
		long long ms;

		if (json_is_integer(v) && json_integer_value(v) >= 0) {
			snprintf(rec->expiration, sizeof(rec->expiration),
				 "%lld", (long long)json_integer_value(v));
		} else if (json_is_string(v) &&
			   cq_parse_duration(json_string_value(v), &ms)) {
			snprintf(rec->expiration, sizeof(rec->expiration),
				 "%lld", ms);
		} else {
			cqi_errbuf(err, errlen,
				   "expiration: want milliseconds or a duration like 30s");
			return false;
		}
		msg->expiration = rec->expiration;
	} else if (is_key(k, "persistent", NULL)) {
		if (!json_is_boolean(v)) {
			cqi_errbuf(err, errlen, "persistent: want true or false");
			return false;
		}
		msg->transient = json_is_false(v);
	} else if (is_key(k, "headers", NULL)) {
		if (!json_is_object(v)) {
			cqi_errbuf(err, errlen, "headers: want an object");
			return false;
		}
		return take_headers(rec, v, msg, err, errlen);
	} else {
		cqi_errbuf(err, errlen, "unknown field '%s'", k);
		return false;
	}
	return true;
want_string:
	cqi_errbuf(err, errlen, "%s: want a string", k);
	return false;
}

enum cq_err cq_record_parse(const char *line, size_t len,
			    struct cq_message *msg, struct cq_record **out,
			    char *err, size_t errlen)
{
	struct cq_record *rec = calloc(1, sizeof(*rec));
	json_error_t je;
	bool have_body = false;
	const char *k;
	json_t *v;

	*out = NULL;
	if (!rec) {
		cqi_errbuf(err, errlen, "out of memory");
		return CQ_ERR_NOMEM;
	}
	rec->root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
			       &je);
	if (!rec->root) {
		cqi_errbuf(err, errlen, "bad JSON at column %d: %s", je.column,
			   je.text);
		goto bad;
	}
	if (!json_is_object(rec->root)) {
		cqi_errbuf(err, errlen, "want a JSON object");
		goto bad;
	}
	json_object_foreach(rec->root, k, v) {
		if (!take_member(rec, k, v, msg, &have_body, err, errlen))
			goto bad;
	}
	if (!have_body) {
		cqi_errbuf(err, errlen, "no \"body\" or \"body_base64\"");
		goto bad;
	}
	*out = rec;
	return CQ_OK;
bad:
	cq_record_free(rec);
	return CQ_ERR_DATA;
}
