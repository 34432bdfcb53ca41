/* sentinel.c - finding a Redis master through Sentinel: the sentinels of a
 * redis-sentinel:// URL are asked in order for the master's address
 * (SENTINEL get-master-addr-by-name), each over a connection of its own,
 * and the driver (redis.c) is handed each address to try (connect, log
 * in, check ROLE) until one is the master.  The driver calls it to
 * connect, and again when the master is lost in the middle of work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

/* A sentinel slower than this (or --timeout, if shorter) is skipped. */
#define ASK_MS 2000
/* How often a master not reachable or not promoted yet is asked for. */
#define RETRY_MS 100

struct cqi_sentinel {
	struct cqi_sentinel_url url;
	char list[300];		/* the sentinels, for messages */
};

void cqi_sentinel_free(struct cqi_sentinel *s)
{
	if (!s)
		return;
	cqi_sentinel_url_clear(&s->url);
	free(s);
}

enum cq_err cqi_sentinel_new(struct cq_ctx *ctx, struct cqi_sentinel **out)
{
	struct cqi_sentinel *s = calloc(1, sizeof(*s));
	char errbuf[200], safe[300];
	enum cq_err e;
	size_t n = 0;

	*out = NULL;
	if (!s)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	e = cqi_sentinel_url_parse(ctx->set.redis_url, &s->url, errbuf,
				   sizeof(errbuf));
	if (e) {
		cqi_url_redact(ctx->set.redis_url, safe, sizeof(safe));
		cqi_sentinel_free(s);
		return cq_seterr(ctx, e, "bad Redis URL '%s': %s", safe, errbuf);
	}
	for (size_t i = 0; i < s->url.n && n + 1 < sizeof(s->list); i++) {
		if (i)
			n += (size_t)snprintf(s->list + n, sizeof(s->list) - n, ", ");
		if (n + 1 < sizeof(s->list))
			cqi_host_port(s->list + n, sizeof(s->list) - n,
				      s->url.hosts[i], s->url.ports[i]);
		n = strlen(s->list);
	}
	*out = s;
	return CQ_OK;
}

const struct cqi_sentinel_url *cqi_sentinel_parts(const struct cqi_sentinel *s)
{
	return &s->url;
}

enum answer { A_ADDR, A_UNKNOWN, A_DOWN, A_FATAL };

/* Sentinel i's answer, over a context of its own (ctx's settings, a
 * redis:// URL of its address, the master's password only if it asks). */
static struct cqi_reply *ask_once(struct cq_ctx *ctx, struct cqi_sentinel *s,
				  size_t i, const char *pass,
				  struct cq_ctx **out)
{
	const char *argv[3] = { "SENTINEL", "get-master-addr-by-name",
				s->url.master };
	struct cq_ctx *c = cq_ctx_new(&ctx->set);
	char url[320], hp[300];

	*out = c;
	if (!c)
		return NULL;
	cqi_host_port(hp, sizeof(hp), s->url.hosts[i], s->url.ports[i]);
	snprintf(url, sizeof(url), "redis://%s/0", hp);
	c->set.redis_url = url;
	c->set.redis_password = pass;
	c->set.password_file = NULL;
	if (c->set.timeout_ms > ASK_MS)
		c->set.timeout_ms = ASK_MS;
	if (cq_redis_connect(c))
		return NULL;
	return cqi_redis_cmd(c, CQI_ANY, 3, argv, NULL);
}

/* Ask sentinel i for the master: A_ADDR with *host (the caller frees it)
 * and *port, A_UNKNOWN (it monitors no such name), A_DOWN (no answer: why
 * in why), or A_FATAL (ctx's error: a refused password, out of memory). */
static enum answer ask(struct cq_ctx *ctx, struct cqi_sentinel *s, size_t i,
		       const char *pass, char **host, int *port, char *why,
		       size_t whylen)
{
	struct cq_ctx *c;
	struct cqi_reply *r = ask_once(ctx, s, i, NULL, &c);
	enum answer a = A_DOWN;

	/* a sentinel with a password of its own: try the master's */
	if (!r && c && c->err == CQ_ERR_NOPERM && pass) {
		cq_ctx_free(c);
		r = ask_once(ctx, s, i, pass, &c);
	}
	if (!c) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return A_FATAL;
	}
	if (r && r->type == CQI_REPLY_NIL) {
		a = A_UNKNOWN;
	} else if (r && r->type == CQI_REPLY_ARRAY && r->elements == 2 &&
		   r->element[0]->type == CQI_REPLY_STRING &&
		   r->element[1]->type == CQI_REPLY_STRING &&
		   (*port = atoi(r->element[1]->str)) > 0 && *port < 65536) {
		a = (*host = strdup(r->element[0]->str)) ? A_ADDR : A_FATAL;
		if (!*host)
			cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	} else if (r) {
		cqi_errbuf(why, whylen, "sentinel %s gave no address for '%s'",
			   cqi_redis_where(c), s->url.master);
	} else if (c->err == CQ_ERR_NOPERM || c->err == CQ_ERR_NOMEM) {
		cq_seterr(ctx, c->err, "sentinel: %s", c->errstr);
		a = A_FATAL;
	} else if (c->err == CQ_ERR_INTERNAL) {	/* a Redis error reply */
		cqi_errbuf(why, whylen, "%s is not a Redis Sentinel (%s)",
			   cqi_redis_where(c), c->errstr);
	} else {
		cqi_errbuf(why, whylen, "%s", c->errstr);
	}
	cqi_reply_free(r);
	cq_ctx_free(c);
	return a;
}

enum cq_err cqi_sentinel_find(struct cq_ctx *ctx, struct cqi_sentinel *s,
			      const char *pass, long long deadline,
			      cqi_sentinel_try_fn try, void *arg)
{
	char why[400] = "";

	for (;;) {
		size_t down = 0, unknown = 0;

		for (size_t i = 0; i < s->url.n; i++) {
			char *host = NULL;
			int port = 0;
			enum answer a = ask(ctx, s, i, pass, &host, &port, why,
					    sizeof(why));
			enum cq_err e;

			if (a == A_FATAL)
				return ctx->err;
			down += a == A_DOWN;
			unknown += a == A_UNKNOWN;
			if (a != A_ADDR)
				continue;
			e = try(arg, host, port, why, sizeof(why));
			free(host);
			if (e != CQ_ERR_TEMPFAIL)	/* done, or no use asking again */
				return e;
		}
		if (unknown && unknown + down == s->url.n)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "no sentinel knows a master named '%s' (asked %s; see the URL's #MASTERNAME)",
					 s->url.master, s->list);
		if (down == s->url.n)
			return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
					 "no sentinel answered (asked %s): %s",
					 s->list, why);
		if (cq_stop_requested())	/* SIGTERM: ask no more */
			return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
					 "%s (the wait for a master was stopped by %s)",
					 why, cq_stop_name());
		if (cq_now_ms() + RETRY_MS >= deadline)
			return cq_seterr(ctx, CQ_ERR_TEMPFAIL, "%s", why);
		cqi_sleep_ms(RETRY_MS);
	}
}
