/* err.c - error codes, their exit codes, and the context's error buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"

int cq_exit_code(enum cq_err err)
{
	switch (err) {
	case CQ_OK:
		return 0;
	case CQ_ERR_NOTFOUND:
		return 1;
	case CQ_ERR_USAGE:
		return 64;
	case CQ_ERR_DATA:
		return 65;
	case CQ_ERR_UNAVAILABLE:
		return 69;
	case CQ_ERR_TEMPFAIL:
		return 75;
	case CQ_ERR_NOPERM:
		return 77;
	case CQ_ERR_IO:
		return 74;
	case CQ_ERR_NOCMD:
		return 127;	/* as a shell says */
	case CQ_ERR_NOEXEC:
		return 126;
	case CQ_ERR_INTERNAL:
	case CQ_ERR_NOMEM:
		break;
	}
	return 70;
}

const char *cq_strerror(enum cq_err err)
{
	switch (err) {
	case CQ_OK:
		return "success";
	case CQ_ERR_NOTFOUND:
		return "not found";
	case CQ_ERR_USAGE:
		return "usage error";
	case CQ_ERR_DATA:
		return "bad input data";
	case CQ_ERR_UNAVAILABLE:
		return "server unreachable";
	case CQ_ERR_TEMPFAIL:
		return "temporary failure";
	case CQ_ERR_NOPERM:
		return "permission denied";
	case CQ_ERR_INTERNAL:
		return "internal error";
	case CQ_ERR_IO:
		return "input/output error";
	case CQ_ERR_NOMEM:
		return "out of memory";
	case CQ_ERR_NOCMD:
		return "command not found";
	case CQ_ERR_NOEXEC:
		return "command cannot be run";
	}
	return "unknown error";
}

void cqi_vformat(char *buf, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, len, fmt, ap);

	if (n < 0)
		snprintf(buf, len, "(unformattable message)");
	else if ((size_t)n >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

enum cq_err cq_seterr(struct cq_ctx *ctx, enum cq_err err, const char *fmt,
		      ...)
{
	va_list ap;

	ctx->err = err;
	va_start(ap, fmt);
	cqi_vformat(ctx->errstr, sizeof(ctx->errstr), fmt, ap);
	va_end(ap);
	return err;
}

void cqi_errbuf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!buf || !len)
		return;
	va_start(ap, fmt);
	cqi_vformat(buf, len, fmt, ap);
	va_end(ap);
}

void cq_clear_error(struct cq_ctx *ctx)
{
	ctx->err = CQ_OK;
	ctx->errstr[0] = '\0';
}

void cqi_err_hold(struct cq_ctx *ctx, struct cqi_err_held *h)
{
	if (ctx->err && !h->err) {
		h->err = ctx->err;
		memcpy(h->msg, ctx->errstr, sizeof(h->msg));
	}
	cq_clear_error(ctx);
}

void cqi_err_holdf(struct cqi_err_held *h, enum cq_err err, const char *fmt,
		   ...)
{
	va_list ap;

	if (h->err)
		return;
	h->err = err;
	va_start(ap, fmt);
	cqi_vformat(h->msg, sizeof(h->msg), fmt, ap);
	va_end(ap);
}

enum cq_err cqi_err_restore(struct cq_ctx *ctx, struct cqi_err_held *h)
{
	if (h->err && !ctx->err) {
		ctx->err = h->err;
		memcpy(ctx->errstr, h->msg, sizeof(ctx->errstr));
	}
	h->err = CQ_OK;
	h->msg[0] = '\0';
	return ctx->err;
}

const char *cqi_err_warning(struct cq_ctx *ctx, struct cqi_err_held *h)
{
	h->err = CQ_OK;
	h->msg[0] = '\0';
	cqi_err_hold(ctx, h);
	return h->msg;
}

void cqi_err_drop(struct cq_ctx *ctx)
{
	cq_clear_error(ctx);
}

struct cq_ctx *cq_ctx_new(const struct cq_settings *set)
{
	struct cq_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	if (set)
		ctx->set = *set;
	if (ctx->set.timeout_ms <= 0)
		ctx->set.timeout_ms = CQ_DEFAULT_TIMEOUT_MS;
	return ctx;
}

void cq_ctx_free(struct cq_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->redis_close)
		ctx->redis_close(ctx);
	if (ctx->amqp_close)
		ctx->amqp_close(ctx);
	free(ctx);
}
