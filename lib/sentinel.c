/* sentinel.c - finding a Redis master through Sentinel: the sentinels of a
 * redis-sentinel:// URL are asked in order for the master's address
 * (SENTINEL get-master-addr-by-name), each over a connection of its own,
 * and the driver (redis.c) is handed each address to try (connect, log
 * in, check ROLE) until one is the master.  The driver calls it to
 * connect, and again when the master is lost in the middle of work.
 * Sentinels with a password of their own are logged in to with the
 * sentinel login (CQ_SENTINEL_USER, CQ_SENTINEL_PASSWORD or its file)
 * when one is given, else (as before there was one) with the master's
 * password when they ask for one. */
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
	char *user, *pass;	/* the sentinel login, or NULL */
	char pass_from[300];	/* where pass comes from, for messages */
};

void cqi_sentinel_free(struct cqi_sentinel *s)
{
	if (!s)
		return;
	cqi_sentinel_url_clear(&s->url);
	free(s->user);
	cqi_password_free(s->pass);
	free(s);
}

/* The sentinel login of ctx's settings, read once (a file too). */
static enum cq_err take_login(struct cq_ctx *ctx, struct cqi_sentinel *s)
{
	const struct cq_settings *set = &ctx->set;

	if (!set->sentinel_password && !set->sentinel_password_file) {
		if (set->sentinel_user)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "CQ_SENTINEL_USER needs a sentinel password (CQ_SENTINEL_PASSWORD or --sentinel-password-file)");
		return CQ_OK;
	}
	if (set->sentinel_user && !(s->user = strdup(set->sentinel_user)))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (set->sentinel_password)
		snprintf(s->pass_from, sizeof(s->pass_from),
			 "CQ_SENTINEL_PASSWORD");
	else
		snprintf(s->pass_from, sizeof(s->pass_from), "'%s'",
			 set->sentinel_password_file);
	return cqi_password_pick(ctx, set->sentinel_password,
				 set->sentinel_password_file,
				 "sentinel password file", NULL, &s->pass);
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
	if (take_login(ctx, s)) {
		cqi_sentinel_free(s);
		return ctx->err;
	}
	*out = s;
	return CQ_OK;
}

const struct cqi_sentinel_url *cqi_sentinel_parts(const struct cqi_sentinel *s)
{
	return &s->url;
}

enum answer { A_ADDR, A_UNKNOWN, A_DOWN, A_REFUSED, A_FATAL };

/* A connection of its own to sentinel i (ctx's settings, url: a
 * redis:// URL of its address, no password); NULL only when out of
 * memory, else connected or failed with its error set. */
static struct cq_ctx *dial(struct cq_ctx *ctx, struct cqi_sentinel *s,
			   size_t i, char *url, size_t urllen)
{
	struct cq_ctx *c = cq_ctx_new(&ctx->set);
	char hp[300];

	if (!c)
		return NULL;
	cqi_host_port(hp, sizeof(hp), s->url.hosts[i], s->url.ports[i]);
	snprintf(url, urllen, "redis://%s/0", hp);
	c->set.redis_url = url;
	c->set.redis_password = NULL;
	c->set.password_file = NULL;
	if (c->set.timeout_ms > ASK_MS)
		c->set.timeout_ms = ASK_MS;
	cq_redis_connect(c);
	return c;
}

/* One command to sentinel c: its reply, an error reply too; NULL with
 * c's error set when there is none. */
static struct cqi_reply *call(struct cq_ctx *c, int argc, const char **argv)
{
	struct cqi_reply *r;

	if (c->err || cqi_redis_append(c, CQI_ANY, argc, argv, NULL) ||
	    cqi_redis_reply(c, &r))
		return NULL;
	return r;
}

/* Log in to sentinel c: CQ_OK; CQ_ERR_NOPERM when it refused, with the
 * reason in why (c has no error then); else c's error (no answer). */
static enum cq_err login(struct cq_ctx *c, const char *user,
			 const char *pass, char *why, size_t whylen)
{
	const char *argv[3] = { "AUTH" };
	struct cqi_reply *r;
	int argc = 1;

	if (user)
		argv[argc++] = user;
	argv[argc++] = pass;
	if (!(r = call(c, argc, argv)))
		return c->err;
	if (r->type != CQI_REPLY_ERROR) {
		cqi_reply_free(r);
		return CQ_OK;
	}
	cqi_errbuf(why, whylen, "%s",
		   strncmp(r->str, "WRONGPASS", 9) == 0 ?
		   "wrong user name or password" :
		   strstr(r->str, "without any password configured") ?
		   "it has no password set" : r->str);
	cqi_reply_free(r);
	return CQ_ERR_NOPERM;
}

/* Sentinel c's answer to SENTINEL get-master-addr-by-name, logged in with
 * the sentinel login if one is given, else with the master's password
 * pass if it asks for one: a reply (an error reply too), or NULL: c's
 * error, or it did not let us in (why said in refusal). */
static struct cqi_reply *ask_in(struct cq_ctx *c, struct cqi_sentinel *s,
				const char *pass, char *refusal, size_t rlen)
{
	const char *argv[3] = { "SENTINEL", "get-master-addr-by-name",
				s->url.master };
	const char *where = cqi_redis_where(c);
	struct cqi_reply *r;
	char why[200];
	enum cq_err e = s->pass ? login(c, s->user, s->pass, why,
					sizeof(why)) : CQ_OK;

	if (e == CQ_ERR_NOPERM && s->user)
		cqi_errbuf(refusal, rlen, "sentinel %s refused user '%s' (CQ_SENTINEL_USER) with the password of %s: %s",
			   where, s->user, s->pass_from, why);
	else if (e == CQ_ERR_NOPERM)
		cqi_errbuf(refusal, rlen, "sentinel %s refused the password of %s: %s",
			   where, s->pass_from, why);
	if (e)
		return NULL;
	r = call(c, 3, argv);
	if (!r || r->type != CQI_REPLY_ERROR || strncmp(r->str, "NOAUTH", 6) ||
	    s->pass)
		return r;
	cqi_reply_free(r);
	if (!pass) {
		cqi_errbuf(refusal, rlen, "sentinel %s needs a password (give the sentinels' password in CQ_SENTINEL_PASSWORD or --sentinel-password-file)",
			   where);
		return NULL;
	}
	/* the master's password, as before there was a sentinel login */
	e = login(c, NULL, pass, why, sizeof(why));
	if (e == CQ_ERR_NOPERM)
		cqi_errbuf(refusal, rlen, "sentinel %s needs a password and refused the master's (give the sentinels' own in CQ_SENTINEL_PASSWORD or --sentinel-password-file)",
			   where);
	return e ? NULL : call(c, 3, argv);
}

/* Ask sentinel i for the master: A_ADDR with *host (the caller frees it)
 * and *port, A_UNKNOWN (it monitors no such name), A_DOWN (no answer: why
 * in why), A_REFUSED (it did not let us in, or not ask: why in refusal),
 * or A_FATAL (ctx's error: out of memory). */
static enum answer ask(struct cq_ctx *ctx, struct cqi_sentinel *s, size_t i,
		       const char *pass, char **host, int *port, char *why,
		       size_t whylen, char *refusal, size_t rlen)
{
	char url[320];
	struct cq_ctx *c = dial(ctx, s, i, url, sizeof(url));
	struct cqi_reply *r;
	enum answer a = A_DOWN;

	if (!c) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		return A_FATAL;
	}
	refusal[0] = '\0';
	r = ask_in(c, s, pass, refusal, rlen);
	if (!r && refusal[0]) {
		a = A_REFUSED;
	} else if (r && r->type == CQI_REPLY_NIL) {
		a = A_UNKNOWN;
	} else if (r && r->type == CQI_REPLY_ARRAY && r->elements == 2 &&
		   r->element[0]->type == CQI_REPLY_STRING &&
		   r->element[1]->type == CQI_REPLY_STRING &&
		   (*port = atoi(r->element[1]->str)) > 0 && *port < 65536) {
		a = (*host = strdup(r->element[0]->str)) ? A_ADDR : A_FATAL;
		if (!*host)
			cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	} else if (r && r->type == CQI_REPLY_ERROR &&
		   cqi_redis_err_kind(r->str) == CQ_ERR_NOPERM) {
		/* an ACL user without the right to ask */
		cqi_errbuf(refusal, rlen, "sentinel %s: permission denied: %s",
			   cqi_redis_where(c), r->str);
		a = A_REFUSED;
	} else if (r && r->type == CQI_REPLY_ERROR) {
		cqi_redis_reply_err(c, r, "SENTINEL");
		cqi_errbuf(why, whylen, "%s is not a Redis Sentinel (%s)",
			   cqi_redis_where(c), c->errstr);
	} else if (r) {
		cqi_errbuf(why, whylen, "sentinel %s gave no address for '%s'",
			   cqi_redis_where(c), s->url.master);
	} else if (c->err == CQ_ERR_NOMEM) {
		cq_seterr(ctx, c->err, "out of memory");
		a = A_FATAL;
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
	char why[400] = "", refusal[sizeof(ctx->errstr)], later[200];

	for (;;) {
		size_t down = 0, unknown = 0, refused = 0;

		for (size_t i = 0; i < s->url.n; i++) {
			char *host = NULL;
			int port = 0;
			/* the first refusal is the one told */
			enum answer a = ask(ctx, s, i, pass, &host, &port, why,
					    sizeof(why), refused ? later : refusal,
					    refused ? sizeof(later) : sizeof(refusal));
			enum cq_err e;

			if (a == A_FATAL)
				return ctx->err;
			down += a == A_DOWN;
			unknown += a == A_UNKNOWN;
			refused += a == A_REFUSED;
			if (a != A_ADDR)
				continue;
			e = try(arg, host, port, why, sizeof(why));
			free(host);
			if (e != CQ_ERR_TEMPFAIL)	/* done, or no use asking again */
				return e;
		}
		/* a sentinel that does not let us in: no retry will */
		if (refused && refused + unknown + down == s->url.n)
			return cq_seterr(ctx, CQ_ERR_NOPERM, "%s", refusal);
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
