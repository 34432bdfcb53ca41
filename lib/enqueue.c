/* enqueue.c - qctl enqueue's JSONL message records (the stream itself is
 * read by reader.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"

/* ---- JSONL records ------------------------------------------------------ */

struct cq_record {
	json_t *root;
	struct cq_buf body;	/* decoded body_base64 */
	struct cq_header *headers;
	char expiration[24];
};

void cq_record_free(struct cq_record *rec)
{
	if (!rec)
		return;
	json_decref(rec->root);
	cq_buf_free(&rec->body);
	free(rec->headers);
	free(rec);
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
		} else if (json_is_real(v)) {
			hd->is_float = true;
			hd->fval = json_real_value(v);
		} else if (json_is_boolean(v)) {
			hd->is_bool = true;
			hd->ival = json_is_true(v);
		} else {
			cqi_errbuf(err, errlen,
				   "header '%s': want a string, number or boolean",
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
		cq_buf_reset(&rec->body);	/* body_base64 and body-base64 */
		if (!cqi_base64_decode(s, len, &rec->body)) {
			cqi_errbuf(err, errlen, "body_base64: not base64");
			return false;
		}
		msg->body = rec->body.data ? rec->body.data : "";
		msg->len = rec->body.len;
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
