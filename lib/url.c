/* url.c - Redis and AMQP URL parsing, and redaction for messages. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cq.h"
#include "internal.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *cqi_pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/*
 * The pieces of scheme://[user[:pass]@]host[:port][/path][?query], as
 * pointers into the URL (not NUL-terminated).
 */
struct span {
	const char *p;
	size_t n;
};
struct url_parts {
	struct span user, pass, host, port, path, query;
	bool has_userinfo, has_pass, has_port, has_path;
};

static const char *scheme_end(const char *url)
{
	const char *p = strstr(url, "://");

	return p ? p + 3 : NULL;
}

/* The '@' that ends the user info of the authority at auth (up to the
 * first '/', '?' or '#'): the last one, or NULL for none. */
static const char *userinfo_at(const char *auth)
{
	const char *at = NULL, *end = auth + strcspn(auth, "/?#");

	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	return at;
}

/* The user info [auth, at): the user, and after the first ':' the
 * password. */
static void split_userinfo(const char *auth, const char *at,
			   struct url_parts *u)
{
	const char *colon = memchr(auth, ':', (size_t)(at - auth));

	u->has_userinfo = true;
	u->user.p = auth;
	u->user.n = colon ? (size_t)(colon - auth) : (size_t)(at - auth);
	u->has_pass = colon != NULL;
	u->pass.p = colon ? colon + 1 : NULL;
	u->pass.n = colon ? (size_t)(at - colon - 1) : 0;
}

static bool split_url(const char *rest, struct url_parts *u,
		      char *errbuf, size_t errlen)
{
	size_t alen = strcspn(rest, "/?#");
	const char *auth = rest, *at = userinfo_at(rest), *hp,
		   *end = rest + alen;

	memset(u, 0, sizeof(*u));
	hp = auth;
	if (at) {
		split_userinfo(auth, at, u);
		hp = at + 1;
	}
	if (*hp == '[') {
		const char *close = memchr(hp, ']', (size_t)(end - hp));

		if (!close) {
			cqi_errbuf(errbuf, errlen, "unclosed '[' in host");
			return false;
		}
		u->host.p = hp + 1;
		u->host.n = (size_t)(close - hp - 1);
		hp = close + 1;
		if (hp < end && *hp != ':' && *hp != ',') {
			cqi_errbuf(errbuf, errlen, "junk after ']' in host");
			return false;
		}
	} else {
		const char *colon = memchr(hp, ':', (size_t)(end - hp));

		u->host.p = hp;
		u->host.n = colon ? (size_t)(colon - hp) : (size_t)(end - hp);
		hp += u->host.n;
	}
	if (hp < end && *hp == ':') {
		u->has_port = true;
		u->port.p = hp + 1;
		u->port.n = (size_t)(end - hp - 1);
	}
	rest = end;
	if (*rest == '/') {
		u->has_path = true;
		u->path.p = rest + 1;
		u->path.n = strcspn(rest + 1, "?#");
		rest = u->path.p + u->path.n;
	}
	if (*rest == '?') {
		u->query.p = rest + 1;
		u->query.n = strcspn(rest + 1, "#");
	}
	return true;
}

/* A span of digits as an int within [lo, hi]. */
static bool span_int(struct span s, unsigned long long lo,
		     unsigned long long hi, int *out)
{
	char buf[16];
	unsigned long long v;

	if (s.n == 0 || s.n >= sizeof(buf))
		return false;
	memcpy(buf, s.p, s.n);
	buf[s.n] = '\0';
	if (!cq_parse_uint(buf, lo, hi, &v))
		return false;
	*out = (int)v;
	return true;
}

static bool span_port(struct span s, int *port)
{
	return span_int(s, 1, 65535, port);
}

/* A database number; an empty one leaves *db as it is. */
static bool span_db(struct span s, int *db)
{
	return s.n == 0 || span_int(s, 0, 100000, db);
}

/* Decode an optional span into *out (NULL if absent). */
static bool span_decode(struct span s, bool present, char **out)
{
	*out = NULL;
	if (!present)
		return true;
	*out = cqi_pct_decode(s.p, s.n);
	return *out != NULL;
}

/* db from a "db=N" query parameter of a unix:// URL. */
static bool query_db(struct span q, int *db)
{
	const char *p = q.p, *end = q.p ? q.p + q.n : NULL;	/* NULL + 0 is UB */

	while (p && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;

		if (stop - p > 3 && memcmp(p, "db=", 3) == 0) {
			struct span v = { p + 3, (size_t)(stop - p - 3) };

			if (!span_db(v, db))
				return false;
		}
		p = amp ? amp + 1 : NULL;
	}
	return true;
}

/* The host (decoded) and port of a network URL.  Returns false with a
 * message in errbuf; *host may be set even then, for the caller to free. */
static bool host_port(const struct url_parts *u, char **host, int *port,
		      char *errbuf, size_t errlen)
{
	if (u->host.n == 0) {
		cqi_errbuf(errbuf, errlen, "missing host");
		return false;
	}
	if (u->has_port && !span_port(u->port, port)) {
		cqi_errbuf(errbuf, errlen, "bad port (want 1-65535)");
		return false;
	}
	*host = cqi_pct_decode(u->host.p, u->host.n);
	if (!*host) {
		cqi_errbuf(errbuf, errlen, "bad percent-escape");
		return false;
	}
	return true;
}

/* The hosts of a Redis URL's authority (after any user info): one
 * host[:port], or a comma-separated list of them. */
static bool host_list(const char *rest, struct cqi_redis_url *out,
		      char *errbuf, size_t errlen)
{
	size_t alen = strcspn(rest, "/?#"), n;
	const char *p = rest, *end = rest + alen, *at = userinfo_at(rest);
	char member[300];

	if (at)
		p = at + 1;
	do {
		struct url_parts mu;
		struct cqi_redis_node *nd;

		n = strcspn(p, ",/?#");
		if (n >= sizeof(member)) {
			cqi_errbuf(errbuf, errlen, "host name too long");
			return false;
		}
		memcpy(member, p, n);
		member[n] = '\0';
		nd = realloc(out->nodes, (out->nnodes + 1) * sizeof(*nd));
		if (!nd) {
			cqi_errbuf(errbuf, errlen, "out of memory");
			return false;
		}
		out->nodes = nd;
		nd += out->nnodes++;
		nd->host = NULL;
		nd->port = 6379;
		if (!split_url(member, &mu, errbuf, errlen) ||
		    !host_port(&mu, &nd->host, &nd->port, errbuf, errlen))
			return false;
		p += n + (p[n] == ',');
	} while (p < end && p[-1] == ',');
	if (p[-1] == ',') {
		cqi_errbuf(errbuf, errlen, "empty host after ','");
		return false;
	}
	out->host = strdup(out->nodes[0].host);
	out->port = out->nodes[0].port;
	if (!out->host) {
		cqi_errbuf(errbuf, errlen, "out of memory");
		return false;
	}
	return true;
}

enum cq_err cqi_redis_url_parse(const char *url, struct cqi_redis_url *out,
			       char *errbuf, size_t errlen)
{
	struct url_parts u;
	const char *rest = url ? scheme_end(url) : NULL;
	bool is_unix;

	memset(out, 0, sizeof(*out));
	out->port = 6379;
	if (!rest) {
		cqi_errbuf(errbuf, errlen, "not a URL (want redis://host:port/db or unix:///path)");
		return CQ_ERR_USAGE;
	}
	is_unix = strncasecmp(url, "unix://", 7) == 0;
	out->tls = strncasecmp(url, "rediss://", 9) == 0;
	if (!is_unix && !out->tls && strncasecmp(url, "redis://", 8) != 0) {
		cqi_errbuf(errbuf, errlen, "unsupported scheme (want redis://, rediss://, unix:// or redis-sentinel://)");
		return CQ_ERR_USAGE;
	}
	if (!split_url(rest, &u, errbuf, errlen))
		return CQ_ERR_USAGE;
	if (!span_decode(u.user, u.has_userinfo && u.user.n > 0, &out->user) ||
	    !span_decode(u.pass, u.has_pass, &out->pass))
		goto bad_escape;
	if (is_unix) {
		if (u.host.n || u.has_port || !u.has_path || u.path.n == 0) {
			cqi_errbuf(errbuf, errlen, "a unix URL needs an absolute path: unix:///path/to/redis.sock");
			goto fail;
		}
		/* keep the leading slash: the path is absolute */
		out->path = cqi_pct_decode(u.path.p - 1, u.path.n + 1);
		if (!out->path)
			goto bad_escape;
		if (!query_db(u.query, &out->db)) {
			cqi_errbuf(errbuf, errlen, "bad db number in ?db=");
			goto fail;
		}
		return CQ_OK;
	}
	if (!host_list(rest, out, errbuf, errlen))
		goto fail;
	if (u.has_path && !span_db(u.path, &out->db)) {
		cqi_errbuf(errbuf, errlen, "bad database number after '/'");
		goto fail;
	}
	return CQ_OK;
bad_escape:
	cqi_errbuf(errbuf, errlen, "bad percent-escape");
fail:
	cqi_redis_url_clear(out);
	return CQ_ERR_USAGE;
}

void cqi_host_port(char *buf, size_t len, const char *host, int port)
{
	snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

void cqi_redis_url_clear(struct cqi_redis_url *u)
{
	if (!u)
		return;
	free(u->host);
	for (size_t i = 0; i < u->nnodes; i++)
		free(u->nodes[i].host);
	free(u->nodes);
	free(u->path);
	free(u->user);
	free(u->pass);
	memset(u, 0, sizeof(*u));
}

/* ---- redis-sentinel:// ------------------------------------------------------ */

#define SENTINEL_SCHEME "redis-sentinel://"
#define SENTINEL_PORT 26379
#define SENTINEL_MAX 16

bool cqi_is_sentinel_url(const char *url)
{
	return url && strncasecmp(url, SENTINEL_SCHEME,
				  strlen(SENTINEL_SCHEME)) == 0;
}

/* One "host[:port]" of the list, [p, end), into slot i of out. */
static bool sentinel_host(const char *p, const char *end,
			  struct cqi_sentinel_url *out, char *errbuf,
			  size_t errlen)
{
	char one[300];
	struct url_parts u;
	size_t n = (size_t)(end - p);

	if (n == 0 || n >= sizeof(one)) {
		cqi_errbuf(errbuf, errlen, n ? "sentinel address too long" :
			   "empty sentinel address in the list");
		return false;
	}
	memcpy(one, p, n);
	one[n] = '\0';
	if (!split_url(one, &u, errbuf, errlen))
		return false;
	if (u.has_userinfo || u.has_path) {
		cqi_errbuf(errbuf, errlen, "bad sentinel address '%s'", one);
		return false;
	}
	out->ports[out->n] = SENTINEL_PORT;
	if (!host_port(&u, &out->hosts[out->n], &out->ports[out->n], errbuf,
		       errlen)) {
		free(out->hosts[out->n]);
		out->hosts[out->n] = NULL;
		return false;
	}
	out->n++;
	return true;
}

enum cq_err cqi_sentinel_url_parse(const char *url,
				   struct cqi_sentinel_url *out,
				   char *errbuf, size_t errlen)
{
	const char *rest, *end, *at, *p, *hash;
	struct url_parts u;

	memset(out, 0, sizeof(*out));
	if (!cqi_is_sentinel_url(url)) {
		cqi_errbuf(errbuf, errlen, "not a redis-sentinel:// URL");
		return CQ_ERR_USAGE;
	}
	rest = url + strlen(SENTINEL_SCHEME);
	end = rest + strcspn(rest, "/?#");
	at = userinfo_at(rest);
	out->hosts = calloc(SENTINEL_MAX, sizeof(*out->hosts));
	out->ports = calloc(SENTINEL_MAX, sizeof(*out->ports));
	if (!out->hosts || !out->ports)
		goto nomem;
	if (at) {	/* the master's user and password, as in redis:// */
		split_userinfo(rest, at, &u);
		if (!span_decode(u.user, u.user.n > 0, &out->user) ||
		    !span_decode(u.pass, u.has_pass, &out->pass))
			goto bad_escape;
	}
	for (p = at ? at + 1 : rest; p <= end; ) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;

		if (out->n == SENTINEL_MAX) {
			cqi_errbuf(errbuf, errlen, "more than %d sentinels",
				   SENTINEL_MAX);
			goto fail;
		}
		if (!sentinel_host(p, stop, out, errbuf, errlen))
			goto fail;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!split_url(end, &u, errbuf, errlen))	/* the /db only */
		goto fail;
	if (u.has_path && !span_db(u.path, &out->db)) {
		cqi_errbuf(errbuf, errlen, "bad database number after '/'");
		goto fail;
	}
	if (u.query.n) {
		cqi_errbuf(errbuf, errlen, "a redis-sentinel:// URL takes no ?options");
		goto fail;
	}
	hash = strchr(end, '#');
	if (!hash || !hash[1]) {
		cqi_errbuf(errbuf, errlen, "missing #MASTERNAME (the name the sentinels monitor) at the end");
		goto fail;
	}
	out->master = cqi_pct_decode(hash + 1, strlen(hash + 1));
	if (!out->master)
		goto bad_escape;
	return CQ_OK;
nomem:
	cqi_errbuf(errbuf, errlen, "out of memory");
	cqi_sentinel_url_clear(out);
	return CQ_ERR_NOMEM;
bad_escape:
	cqi_errbuf(errbuf, errlen, "bad percent-escape");
fail:
	cqi_sentinel_url_clear(out);
	return CQ_ERR_USAGE;
}

void cqi_sentinel_url_clear(struct cqi_sentinel_url *u)
{
	if (!u)
		return;
	for (size_t i = 0; u->hosts && i < u->n; i++)
		free(u->hosts[i]);
	free(u->hosts);
	free(u->ports);
	free(u->master);
	free(u->user);
	free(u->pass);
	memset(u, 0, sizeof(*u));
}

/* The query of an AMQP URL: heartbeat (seconds) and connection_timeout
 * (milliseconds), as in RabbitMQ's URI query parameters; anything else is
 * an error, not silently ignored. */
static bool amqp_options(struct span q, struct cqi_amqp_url *out,
			 char *errbuf, size_t errlen)
{
	const char *p = q.p, *end = q.p ? q.p + q.n : NULL;

	while (p && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		struct span key = { p, eq ? (size_t)(eq - p) : (size_t)(stop - p) };
		struct span val = { eq ? eq + 1 : stop, eq ? (size_t)(stop - eq - 1) : 0 };

		if (key.n == 9 && memcmp(key.p, "heartbeat", 9) == 0) {
			if (!span_int(val, 0, 65535, &out->heartbeat_s)) {
				cqi_errbuf(errbuf, errlen, "bad ?heartbeat= (want seconds, 0-65535)");
				return false;
			}
		} else if (key.n == 18 && memcmp(key.p, "connection_timeout", 18) == 0) {
			if (!span_int(val, 1, 86400000, &out->connect_timeout_ms)) {
				cqi_errbuf(errbuf, errlen, "bad ?connection_timeout= (want milliseconds)");
				return false;
			}
		} else if (key.n > 0) {
			cqi_errbuf(errbuf, errlen, "unsupported URL option '%.*s' (cq takes heartbeat and connection_timeout; TLS files come from --cacert, --cert and --key)",
				   (int)(key.n > 40 ? 40 : key.n), key.p);
			return false;
		}
		p = amp ? amp + 1 : NULL;
	}
	return true;
}

enum cq_err cqi_amqp_url_parse(const char *url, struct cqi_amqp_url *out,
			      char *errbuf, size_t errlen)
{
	struct url_parts u;
	const char *rest = url ? scheme_end(url) : NULL;

	memset(out, 0, sizeof(*out));
	if (!rest || (strncasecmp(url, "amqp://", 7) != 0 &&
		      strncasecmp(url, "amqps://", 8) != 0)) {
		cqi_errbuf(errbuf, errlen, "not an AMQP URL (want amqp://user:pass@host:port/vhost or amqps://...)");
		return CQ_ERR_USAGE;
	}
	out->tls = tolower((unsigned char)url[4]) == 's';
	out->heartbeat_s = -1;
	out->connect_timeout_ms = -1;
	out->port = out->tls ? 5671 : 5672;
	if (!split_url(rest, &u, errbuf, errlen))
		return CQ_ERR_USAGE;
	if (!host_port(&u, &out->host, &out->port, errbuf, errlen))
		goto fail;
	if (!span_decode(u.user, u.has_userinfo, &out->user) ||
	    !span_decode(u.pass, u.has_pass, &out->pass))
		goto bad_escape;
	if (!out->user)
		out->user = strdup("guest");
	if (!out->pass)
		out->pass = strdup(u.has_userinfo ? "" : "guest");
	if (u.has_path && memchr(u.path.p, '/', u.path.n)) {
		cqi_errbuf(errbuf, errlen, "a '/' in the vhost must be written %%2f");
		goto fail;
	}
	if (!amqp_options(u.query, out, errbuf, errlen))
		goto fail;
	if (u.has_path && u.path.n > 0)
		out->vhost = cqi_pct_decode(u.path.p, u.path.n);
	else
		out->vhost = strdup("/");
	if (!out->vhost || !out->user || !out->pass)
		goto bad_escape;
	return CQ_OK;
bad_escape:
	cqi_errbuf(errbuf, errlen, "bad percent-escape");
fail:
	cqi_amqp_url_clear(out);
	return CQ_ERR_USAGE;
}

void cqi_amqp_url_clear(struct cqi_amqp_url *u)
{
	if (!u)
		return;
	free(u->host);
	free(u->user);
	free(u->pass);
	free(u->vhost);
	memset(u, 0, sizeof(*u));
}

/* In an authority [s, end) with no '@': the first ':' outside [brackets]
 * when what follows it is not a port (1 to 5 digits), else NULL.  That is
 * "user:secret" typed without its "@host", so all after it is hidden. */
static const char *typo_colon(const char *s, const char *end)
{
	const char *colon = NULL;
	bool bracket = false, port = true;

	for (const char *p = s; p < end && !colon; p++) {
		if (*p == '[')
			bracket = true;
		else if (*p == ']')
			bracket = false;
		else if (*p == ':' && !bracket)
			colon = p;
	}
	if (!colon || colon + 1 == end)
		return NULL;
	for (const char *p = colon + 1; p < end; p++)
		port = port && *p >= '0' && *p <= '9';
	return port && end - colon - 1 <= 5 ? NULL : colon;
}

/* Redact one URL of length n into the output. */
static void redact_one(const char *url, size_t n, struct cq_buf *out)
{
	const char *rest = strstr(url, "://");
	const char *at = NULL, *colon = NULL, *end;

	if (!rest || (size_t)(rest - url) > n) {
		/* not a URL: hide everything before an '@', just in case */
		for (const char *p = url; (size_t)(p - url) < n; p++)
			if (*p == '@')
				at = p;
		if (at)
			cq_buf_append(out, "***", 3);
		cq_buf_append(out, at ? at : url, n - (size_t)((at ? at : url) - url));
		return;
	}
	rest += 3;
	end = rest;
	while ((size_t)(end - url) < n && *end != '/' && *end != '?' &&
	       *end != '#')
		end++;
	for (const char *p = rest; p < end; p++)
		if (*p == '@')
			at = p;
	if (at)
		colon = memchr(rest, ':', (size_t)(at - rest));
	else if ((colon = typo_colon(rest, end)))
		at = end;	/* "user:secret" typed without "@host" */
	else
		colon = NULL;
	if (!colon) {
		cq_buf_append(out, url, n);
		return;
	}
	cq_buf_append(out, url, (size_t)(colon + 1 - url));
	cq_buf_append(out, "***", 3);
	cq_buf_append(out, at, n - (size_t)(at - url));
}

/* The length of the list member at p: up to the next comma, unless a
 * comma sits in the member's user info (an '@' follows it before the end
 * of the authority), or follows a colon that cannot start a port, where it
 * is part of a password, not a separator. */
size_t cqi_url_member_len(const char *p)
{
	size_t n = strcspn(p, ",");
	const char *s = strstr(p, "://"), *end, *at = NULL;

	if (!s || (size_t)(s - p) > n)
		return n;
	s += 3;
	end = s + strcspn(s, "/?#");
	for (const char *q = s; q < end; q++)
		if (*q == '@')
			at = q;
	if (at && at > p + n)
		n = (size_t)(at - p) + strcspn(at, ",");
	else if (!at && end > p + n && typo_colon(s, p + n))
		n = (size_t)(end - p) + strcspn(end, ",");	/* "u:se,cret" */
	return n;
}

void cqi_url_redact(const char *url, char *buf, size_t len)
{
	struct cq_buf out = { 0 };
	const char *p = url ? url : "";

	if (len == 0)
		return;
	for (;;) {
		size_t n = cqi_url_member_len(p);

		redact_one(p, n, &out);
		if (!p[n])
			break;
		cq_buf_append(&out, ",", 1);
		p += n + 1;
	}
	if (!out.data) {
		buf[0] = '\0';
		return;
	}
	if (out.len >= len) {
		out.len = len - 1;
		if (len > 4)
			memcpy(out.data + len - 4, "...", 3);
	}
	memcpy(buf, out.data, out.len);
	buf[out.len] = '\0';
	cq_buf_free(&out);
}
