/* queue.c - consumed messages: basic.get, acks, headers, JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"
#include "queue_int.h"

void cqi_delivery_free(struct cq_delivery *d)
{
	if (!d)
		return;
	free(d->body);
	free(d->exchange);
	free(d->routing_key);
	free(d->queue);
	free(d->message_id);
	free(d->content_type);
	free(d->expiration);
	free(d->correlation_id);
	free(d->reply_to);
	free(d->type);
	cqi_fields_free(d->headers, d->nheaders);
	if (d->props)
		amqp_destroy_message(&d->props->msg);
	free(d->props);
	free(d);
}

/* The property if its flag is set (else *out stays NULL). */
static bool copy_prop(const amqp_basic_properties_t *p, amqp_flags_t flag,
		      amqp_bytes_t b, char **out)
{
	return !(p->_flags & flag) || cqi_bytes_dup(b, out, NULL);
}

static bool fill_props(struct cq_delivery *d, const amqp_basic_properties_t *p)
{
	d->priority = (p->_flags & AMQP_BASIC_PRIORITY_FLAG) ? p->priority : -1;
	d->timestamp = (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) ?
		       (long long)p->timestamp : 0;
	d->persistent = (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG) &&
			p->delivery_mode == AMQP_DELIVERY_PERSISTENT;
	if (!copy_prop(p, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id,
		       &d->message_id) ||
	    !copy_prop(p, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type,
		       &d->content_type) ||
	    !copy_prop(p, AMQP_BASIC_EXPIRATION_FLAG, p->expiration,
		       &d->expiration) ||
	    !copy_prop(p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id,
		       &d->correlation_id) ||
	    !copy_prop(p, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to, &d->reply_to) ||
	    !copy_prop(p, AMQP_BASIC_TYPE_FLAG, p->type, &d->type))
		return false;
	if ((p->_flags & AMQP_BASIC_HEADERS_FLAG) &&
	    cqi_fields_from_table(&p->headers, &d->headers, &d->nheaders))
		return false;
	return true;
}

enum cq_err cqi_delivery_new(struct cq_ctx *ctx, const char *queue,
			     uint64_t tag, bool redelivered,
			     amqp_bytes_t exchange, amqp_bytes_t routing_key,
			     uint32_t remaining, amqp_message_t *msg,
			     struct cq_delivery **out)
{
	struct cq_delivery *d = calloc(1, sizeof(*d));

	*out = NULL;
	if (!d)
		goto nomem;
	d->props = calloc(1, sizeof(*d->props));
	if (!d->props)
		goto nomem;
	d->delivery_tag = tag;
	d->redelivered = redelivered;
	d->remaining = remaining;
	if (!cqi_bytes_dup(msg->body, &d->body, NULL) ||
	    !cqi_bytes_dup(exchange, &d->exchange, NULL) ||
	    !cqi_bytes_dup(routing_key, &d->routing_key, NULL) ||
	    (queue && !(d->queue = strdup(queue))))
		goto nomem;
	d->len = msg->body.len;
	/* keep the properties (in the message's pool), drop the body */
	amqp_bytes_free(msg->body);
	msg->body = amqp_empty_bytes;
	d->props->msg = *msg;
	msg = NULL;
	if (!fill_props(d, &d->props->msg.properties))
		goto nomem;
	*out = d;
	return CQ_OK;
nomem:
	if (msg)
		amqp_destroy_message(msg);
	cqi_delivery_free(d);
	return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
}

const struct cq_field *cq_delivery_header(const struct cq_delivery *d,
					  const char *name)
{
	return cqi_field_get(d->headers, d->nheaders, name);
}

char *cqi_delivery_header_text(const struct cq_delivery *d, const char *name)
{
	const struct cq_field *f = cq_delivery_header(d, name);

	return f ? cqi_field_text(f) : NULL;
}

enum cq_err cq_delivery_death(const struct cq_delivery *d,
			      struct cq_death *out)
{
	return cqi_death_decode(d->headers, d->nheaders, d->queue, out);
}

/* ---- basic.get and acks ------------------------------------------------- */

enum cq_err cqi_get(struct cq_ctx *ctx, const char *queue,
		   struct cq_delivery **out)
{
	struct cqi_amqp *a;
	amqp_rpc_reply_t r;
	amqp_basic_get_ok_t *ok;
	amqp_message_t msg;
	char what[300];

	*out = NULL;
	if (ctx->err || cqi_name_check(ctx, "queue", queue))
		return ctx->err;
	a = ctx->amqp;
	snprintf(what, sizeof(what), "get from queue '%s'", queue);
	r = amqp_basic_get(a->conn, CQI_CHANNEL, amqp_cstring_bytes(queue), 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return cqi_amqp_rpc_err(ctx, r, what);
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
		return CQ_OK;
	if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "%s: unexpected method 0x%08x", what,
				 r.reply.id);
	ok = r.reply.decoded;
	/* the method lives in the connection's pool: copy what we need
	 * before reading the rest of the message */
	{
		uint64_t tag = ok->delivery_tag;
		bool redelivered = ok->redelivered;
		uint32_t remaining = ok->message_count;
		amqp_bytes_t ex = amqp_bytes_malloc_dup(ok->exchange);
		amqp_bytes_t rk = amqp_bytes_malloc_dup(ok->routing_key);
		enum cq_err e;

		r = amqp_read_message(a->conn, CQI_CHANNEL, &msg, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			amqp_bytes_free(ex);
			amqp_bytes_free(rk);
			return cqi_amqp_rpc_err(ctx, r, what);
		}
		e = cqi_delivery_new(ctx, queue, tag, redelivered, ex, rk,
				     remaining, &msg, out);
		amqp_bytes_free(ex);
		amqp_bytes_free(rk);
		amqp_maybe_release_buffers(a->conn);
		return e;
	}
}

static enum cq_err sent(struct cq_ctx *ctx, int st, const char *what)
{
	return st == AMQP_STATUS_OK ? CQ_OK : cqi_amqp_status_err(ctx, st, what);
}

enum cq_err cqi_ack(struct cq_ctx *ctx, uint64_t tag, bool multiple)
{
	if (ctx->err)
		return ctx->err;
	return sent(ctx, amqp_basic_ack(ctx->amqp->conn, CQI_CHANNEL, tag,
					multiple), "ack");
}

enum cq_err cqi_nack(struct cq_ctx *ctx, uint64_t tag, bool multiple,
		    bool requeue)
{
	if (ctx->err)
		return ctx->err;
	return sent(ctx, amqp_basic_nack(ctx->amqp->conn, CQI_CHANNEL, tag,
					 multiple, requeue), "nack");
}

enum cq_err cqi_reject(struct cq_ctx *ctx, uint64_t tag, bool requeue)
{
	if (ctx->err)
		return ctx->err;
	return sent(ctx, amqp_basic_reject(ctx->amqp->conn, CQI_CHANNEL, tag,
					   requeue), "reject");
}

/* ---- JSON --------------------------------------------------------------- */

static int set_str(json_t *o, const char *k, const char *v)
{
	json_t *s;

	if (!v)
		return 0;
	s = json_string(v);
	if (!s)		/* not UTF-8 */
		return 0;
	return json_object_set_new(o, k, s);
}

static const char *source_name(enum cq_death_source s)
{
	switch (s) {
	case CQ_DEATH_NONE:
		break;
	case CQ_DEATH_XDEATH:
		return "x-death";
	case CQ_DEATH_QCTL:
		return "qctl";
	case CQ_DEATH_HEADERS:
		return "headers";
	case CQ_DEATH_DLQ_NAME:
		return "dlq-name";
	}
	return NULL;
}

/* The cq_death summary as an object, or NULL when there is none. */
static json_t *death_json(const struct cq_death *d)
{
	json_t *o, *q;

	if (d->source == CQ_DEATH_NONE && !d->nxdeath)
		return NULL;
	o = json_object();
	if (!o)
		return NULL;
	set_str(o, "source", source_name(d->source));
	set_str(o, "queue", d->queue);
	set_str(o, "exchange", d->exchange);
	set_str(o, "routing_key", d->routing_key);
	set_str(o, "reason", d->reason);
	json_object_set_new(o, "count", json_integer(d->count));
	if (d->time)
		json_object_set_new(o, "time", json_integer(d->time));
	/* qctl's figures: of this death, or of an earlier one ("earlier") */
	q = d->earlier ? json_object() : o;
	if (!q || (d->earlier && json_object_set_new(o, "earlier", q)))
		return o;
	if (d->earlier && d->qctl_time)
		json_object_set_new(q, "time", json_integer(d->qctl_time));
	if (d->retries >= 0)
		json_object_set_new(q, "retries", json_integer(d->retries));
	if (d->exit_code >= 0)
		json_object_set_new(q, "exit_code", json_integer(d->exit_code));
	set_str(q, "stderr", d->stderr_tail);
	set_str(q, "host", d->host);
	return o;
}

char *cq_delivery_json(const struct cq_delivery *d, bool death)
{
	json_t *o = json_object(), *h;
	char *out = NULL;

	if (!o)
		return NULL;
	set_str(o, "queue", d->queue);
	json_object_set_new(o, "delivery_tag", json_integer((json_int_t)d->delivery_tag));
	json_object_set_new(o, "redelivered", json_boolean(d->redelivered));
	set_str(o, "exchange", d->exchange);
	set_str(o, "routing_key", d->routing_key);
	set_str(o, "message_id", d->message_id);
	if (d->timestamp)
		json_object_set_new(o, "timestamp", json_integer(d->timestamp));
	set_str(o, "content_type", d->content_type);
	if (d->priority >= 0)
		json_object_set_new(o, "priority", json_integer(d->priority));
	set_str(o, "expiration", d->expiration);
	set_str(o, "correlation_id", d->correlation_id);
	set_str(o, "reply_to", d->reply_to);
	set_str(o, "type", d->type);
	json_object_set_new(o, "persistent", json_boolean(d->persistent));
	json_object_set_new(o, "size", json_integer((json_int_t)d->len));
	h = cqi_fields_json(d->headers, d->nheaders);
	if (!h)
		goto done;
	json_object_set_new(o, "headers", h);
	if (death) {
		struct cq_death dd;
		json_t *dj;

		if (cq_delivery_death(d, &dd))
			goto done;
		dj = death_json(&dd);
		cq_death_clear(&dd);
		if (dj)
			json_object_set_new(o, "death", dj);
	}
	if (cqi_json_set_bytes(o, "body", d->body, d->len))
		goto done;
	out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
	json_decref(o);
	return out;
}
