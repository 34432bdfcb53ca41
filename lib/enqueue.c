/* enqueue.c - qctl enqueue: its JSONL message records, and the loop that
 * publishes each record of the input (or each argument) through the
 * queue driver's confirmed publisher (the stream itself is read by
 * reader.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"

/* ---- JSONL records ------------------------------------------------------ */

struct cq_record {
	json_t *root;
	struct cq_buf body;	/* decoded body_base64 */
	struct cq_header *headers;
	char expiration[24];
};

void cqi_record_free(struct cq_record *rec)
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

enum cq_err cqi_record_parse(const char *line, size_t len,
			    struct cq_message *msg, struct cq_record **out,
			    char *err, size_t errlen)
{
	struct cq_record *rec = calloc(1, sizeof(*rec));
	bool have_body = false;
	const char *k;
	json_t *v;

	*out = NULL;
	if (!rec) {
		cqi_errbuf(err, errlen, "out of memory");
		return CQ_ERR_NOMEM;
	}
	rec->root = cqi_jsonl_object(line, len, err, errlen);
	if (!rec->root)
		goto bad;
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
	cqi_record_free(rec);
	return CQ_ERR_DATA;
}

/* ---- the publishing loop ------------------------------------------------ */

struct enqueue {
	struct cq_ctx *ctx;
	const struct cq_enqueue_opts *o;
	struct cq_enqueue_stats *st;
	struct cqi_qdriver *q;
	uint64_t failed_before;	/* st->failed at the last reconnect */
};

static void on_published(void *arg, uint64_t no, bool ok, const char *reason)
{
	struct enqueue *e = arg;

	if (ok)
		e->st->confirmed++;
	else
		e->st->failed++;
	if (e->o->on_settled)
		e->o->on_settled(e->o->arg, no, ok, reason);
}

static void on_blocked(void *arg, bool blocked, const char *reason)
{
	struct enqueue *e = arg;

	if (e->o->on_blocked)
		e->o->on_blocked(e->o->arg, blocked, reason);
}

static void on_notice(void *arg, const char *msg)
{
	struct enqueue *e = arg;

	if (e->o->on_notice)
		e->o->on_notice(e->o->arg, msg);
}

/* The driver cannot go on though the connection works: the run's error. */
static void on_fail(void *arg, enum cq_err err, const char *msg)
{
	struct enqueue *e = arg;

	if (!e->ctx->err)
		cq_seterr(e->ctx, err, "%s", msg);
}

static void bad(struct enqueue *e, uint64_t no, const char *msg)
{
	e->st->bad++;
	if (e->o->on_bad)
		e->o->on_bad(e->o->arg, no, msg);
}

/*
 * The connection is lost: with a list of nodes, connect to another and go
 * on reading.  What was not confirmed was settled failed when the
 * publisher died (reported: re-sending those lines is the caller's);
 * nothing is sent twice by us.  False when the run must end.
 */
static bool reconnect(struct enqueue *e)
{
	struct cqi_reconnected rc;

	if (!e->q->ops->reconnect || !e->q->can_reconnect ||
	    cq_stop_requested())
		return false;
	if (!cqi_qd_reconnect(e->q, &rc, &e->st->reconnects))
		return false;
	rc.r.unsettled = e->st->failed - e->failed_before;
	e->failed_before = e->st->failed;
	if (e->o->on_reconnect)
		e->o->on_reconnect(e->o->arg, &rc.r);
	return true;
}

/* Publish one message; false when the publisher is dead. */
static bool publish_one(struct enqueue *e, const struct cq_message *m,
			uint64_t no)
{
	enum cq_err err = e->q->ops->publish(e->q, m, no);

	if (err == CQ_ERR_DATA && e->q->ops->pub_alive(e->q)) {
		bad(e, no, e->ctx->errstr);
		cqi_err_drop(e->ctx);
		return true;
	}
	if (err == CQ_OK)
		e->st->sent++;
	/* it was settled failed with the rest: go on through another node */
	return err == CQ_OK || reconnect(e);
}

static enum cq_err publish_args(struct enqueue *e)
{
	const struct cq_enqueue_opts *o = e->o;

	for (size_t i = 0; i < o->nargs; i++) {
		struct cq_message m = *o->tmpl;

		m.body = o->args[i];
		m.len = strlen(o->args[i]);
		if (cq_stop_requested()) {
			e->st->unsent_from = i + 1;
			break;
		}
		if (!publish_one(e, &m, i + 1)) {
			if (i + 1 < o->nargs)
				e->st->unsent_from = i + 2;
			break;
		}
	}
	return CQ_OK;
}

/* Wait for input, serving the connection (and making it again when it
 * is lost meanwhile). */
static enum cq_err serve_input(void *arg, int fd)
{
	struct enqueue *e = arg;

	for (;;) {
		enum cq_err err = e->q->ops->wait_input(e->q, fd);

		if (!err || !e->ctx->err || !reconnect(e))
			return err;
	}
}

/* The message of a record, or false (reported, or out of memory: the
 * context error). */
static bool record_message(struct enqueue *e, const struct cq_rec_in *in,
			   struct cq_message *m, struct cq_record **rec)
{
	char why[300];
	enum cq_err pe;

	*m = *e->o->tmpl;
	*rec = NULL;
	if (in->flaw == CQ_REC_TOO_LONG) {
		snprintf(why, sizeof(why), "longer than --max-size (%llu bytes)",
			 e->o->max_size);
		bad(e, in->no, why);
		return false;
	}
	if (in->flaw) {
		bad(e, in->no, cqi_rec_flaw_str(in->flaw));
		return false;
	}
	if (e->o->input != CQ_ENQ_JSONL) {
		m->body = in->p;
		m->len = in->len;
		return true;
	}
	pe = cqi_record_parse(in->p, in->len, m, rec, why, sizeof(why));
	if (pe == CQ_ERR_NOMEM)
		cq_seterr(e->ctx, CQ_ERR_NOMEM, "out of memory");
	else if (pe)
		bad(e, in->no, why);
	return pe == CQ_OK;
}

/* Publish each record of fd.  An error return: the input failed (only
 * the error is worth saying). */
static enum cq_err publish_input(struct enqueue *e, int fd)
{
	struct cq_ctx *ctx = e->ctx;
	const struct cq_enqueue_opts *o = e->o;
	struct cq_reader_opts ro = {
		.delim = o->input == CQ_ENQ_NUL ? '\0' : '\n',
		.max = o->max_size, .refuse_cr = o->input == CQ_ENQ_LINES,
	};
	struct cq_reader *r = cqi_reader_new(ctx, fd, &ro);
	struct cq_rec_in in;
	bool alive = true, more = false;

	if (!r)
		return ctx->err;
	cqi_reader_wait(r, serve_input, e);
	while (alive && (more = cqi_reader_next(r, &in))) {
		struct cq_message m;
		struct cq_record *rec;

		if (!record_message(e, &in, &m, &rec)) {
			if (ctx->err)
				break;	/* out of memory */
			continue;
		}
		alive = publish_one(e, &m, in.no);
		cqi_record_free(rec);
		if ((in.no & 1023) == 0 && o->on_progress)
			o->on_progress(o->arg, e->st);
	}
	e->st->blank = cqi_reader_blank(r);
	if (alive && !more && (cqi_reader_stopped(r) ||
			       (ctx->err && !e->q->ops->pub_alive(e->q)))) {
		/* stopped, or the connection died while input was awaited:
		 * what was sent is settled by the flush */
		e->st->unsent_from = cqi_reader_records(r) + 1;
	} else if (alive && ctx->err) {
		cqi_reader_free(r);
		return ctx->err;	/* the input failed */
	} else if (!alive) {
		/* say so when input was left unsent (reading on without the
		 * dead publisher) */
		uint64_t done = cqi_reader_records(r);

		cqi_reader_wait(r, NULL, NULL);
		/* (a stop request ends the reading: what was not read is
		 * unsent) */
		if (cq_stop_requested() || cqi_reader_next(r, &in))
			e->st->unsent_from = done + 1;
	}
	cqi_reader_free(r);
	return CQ_OK;
}

enum cq_err cq_enqueue(struct cq_ctx *ctx, int fd,
		       const struct cq_enqueue_opts *o,
		       struct cq_enqueue_stats *st)
{
	struct enqueue e = { .ctx = ctx, .o = o, .st = st };
	struct cqi_qconf conf = { .queue = o->tmpl->routing_key,
				  .maxlen = o->maxlen, .tmpl = o->tmpl };
	struct cqi_qhooks hooks = { .arg = &e, .fail = on_fail,
				    .published = on_published,
				    .blocked = on_blocked,
				    .notice = on_notice };
	enum cq_err err;

	memset(st, 0, sizeof(*st));
	if (ctx->err)
		return ctx->err;
	e.q = cqi_qdriver_open(ctx, &conf, &hooks);
	if (!e.q)
		return ctx->err;
	if (e.q->ops->pub_start(e.q, o->window, o->tmpl->exchange, true))
		goto out;
	st->ran = true;
	err = o->nargs ? publish_args(&e) : publish_input(&e, fd);
	if (err) {
		st->ran = false;
		goto out;
	}
	/* what was sent is settled, whatever ended the input (on a lost
	 * connection the flush settles the rest failed at once) */
	e.q->ops->pub_flush(e.q);
out:
	e.q->ops->free(e.q);
	return ctx->err;
}
