/* pipe.c - pipelined commands with a bounded window, for bulk verbs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

/* Send when this many bytes are queued, whatever the command count. */
#define PIPE_MAX_BYTES (1U << 20)

/* "<c><n>\r\n" at p; returns the end. */
static char *put_len(char *p, char c, size_t n)
{
	char tmp[24], *t = tmp + sizeof(tmp);

	do {
		*--t = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	*p++ = c;
	memcpy(p, t, (size_t)(tmp + sizeof(tmp) - t));
	p += tmp + sizeof(tmp) - t;
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

bool cqi_resp_append(struct cq_buf *b, int argc, const char **argv,
		     const size_t *lens)
{
	size_t need = 24, n;
	char *p;
	int i;

	for (i = 0; i < argc; i++)
		need += (lens ? lens[i] : strlen(argv[i])) + 25;
	if (!cq_buf_reserve(b, need))
		return false;
	p = put_len(b->data + b->len, '*', (size_t)argc);
	for (i = 0; i < argc; i++) {
		n = lens ? lens[i] : strlen(argv[i]);
		p = put_len(p, '$', n);
		memcpy(p, argv[i], n);
		p += n;
		*p++ = '\r';
		*p++ = '\n';
	}
	b->len = (size_t)(p - b->data);
	b->data[b->len] = '\0';
	return true;
}

enum cq_err cqi_pipe_init(struct cqi_pipe *p, struct cq_ctx *ctx,
			  size_t window, cqi_reply_fn fn, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->ctx = ctx;
	p->window = window ? window : 1000;
	p->batch = p->window / 4 ? p->window / 4 : 1;
	p->ring = p->window + p->batch + 1;
	p->fn = fn;
	p->arg = arg;
	p->tags = calloc(p->ring, sizeof(*p->tags));
	if (!p->tags)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (ctx->err)
		return ctx->err;
	if (!ctx->redis && cq_redis_connect(ctx))
		return ctx->err;
	return CQ_OK;
}

void cqi_pipe_free(struct cqi_pipe *p)
{
	if (!p)
		return;
	free(p->tags);
	cq_buf_free(&p->out);
	p->tags = NULL;
}

/* Hand the queued commands to hiredis and write them all out. */
static enum cq_err send_queued(struct cqi_pipe *p)
{
	redisContext *c = p->ctx->redis->c;
	int done = 0;

	if (!p->nout)
		return CQ_OK;
	if (redisAppendFormattedCommand(c, p->out.data, p->out.len) != REDIS_OK)
		return cqi_redis_io_err(p->ctx);
	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return cqi_redis_io_err(p->ctx);
	p->inflight += p->nout;
	p->nout = 0;
	cq_buf_reset(&p->out);
	/* do not keep a huge buffer after a huge value */
	if (p->out.cap > 4 * PIPE_MAX_BYTES) {
		cq_buf_free(&p->out);
	}
	return CQ_OK;
}

static enum cq_err read_one(struct cqi_pipe *p)
{
	redisReply *r;
	uint64_t tag;

	if (cqi_redis_reply(p->ctx, &r))
		return p->ctx->err;
	tag = p->tags[p->head];
	p->head = (p->head + 1) % p->ring;
	p->count--;
	p->inflight--;
	if (p->fn)
		p->fn(p->arg, tag, r);
	freeReplyObject(r);
	return CQ_OK;
}

enum cq_err cqi_pipe_sync(struct cqi_pipe *p, size_t keep)
{
	if (p->ctx->err)
		return p->ctx->err;
	if (send_queued(p))
		return p->ctx->err;
	while (p->inflight > keep)
		if (read_one(p))
			return p->ctx->err;
	return CQ_OK;
}

enum cq_err cqi_pipe_cmd(struct cqi_pipe *p, uint64_t tag, int argc,
			 const char **argv, const size_t *lens)
{
	if (p->ctx->err)
		return p->ctx->err;
	if (!cqi_resp_append(&p->out, argc, argv, lens))
		return cq_seterr(p->ctx, CQ_ERR_NOMEM, "out of memory");
	p->tags[(p->head + p->count) % p->ring] = tag;
	p->count++;
	p->nout++;
	if (p->nout < p->batch && p->out.len < PIPE_MAX_BYTES)
		return CQ_OK;
	if (send_queued(p))
		return p->ctx->err;
	/* keep the server busy: read back only down to window - batch */
	if (p->inflight > p->window)
		return cqi_pipe_sync(p, p->window - p->batch);
	return CQ_OK;
}
