/* amqp.c - AMQP connections: URL list, TLS, login, channel, errors. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "amqp_int.h"
#include "cq.h"
#include "internal.h"

/*
 * The longest wait for the broker's close-ok.  A healthy broker answers
 * in milliseconds; one that blocks publishing (a resource alarm) stops
 * reading the socket and never answers, and one that died answers
 * nothing: after this the socket is simply closed, which the broker
 * treats as a close (unacked deliveries go back to their queues).
 */
#define CLOSE_WAIT_MS 1000

/* Reconnecting: the pause after a pass over the URL list that found no
 * node, doubling up to the maximum (the whole try is bounded by
 * --timeout). */
#define RECONNECT_PAUSE_MS 100
#define RECONNECT_PAUSE_MAX_MS 1000

static void amqp_close(struct cq_ctx *ctx)
{
	struct cqi_amqp *a = ctx->amqp;
	long long ms = ctx->set.timeout_ms < CLOSE_WAIT_MS ?
		       ctx->set.timeout_ms : CLOSE_WAIT_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!a)
		return;
	if (a->conn) {
		amqp_set_rpc_timeout(a->conn, &tv);
		/* connection.close closes the channel too: one round trip */
		if (!a->lost && cq_stop_requested() < 2)
			amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
		amqp_destroy_connection(a->conn);
	}
	free(a);
	ctx->amqp = NULL;
}

static enum cq_err status_class(int status)
{
	switch (status) {
	case AMQP_STATUS_NO_MEMORY:
		return CQ_ERR_NOMEM;
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
		return CQ_ERR_NOPERM;
	case AMQP_STATUS_TIMEOUT:
	case AMQP_STATUS_HEARTBEAT_TIMEOUT:
	case AMQP_STATUS_CONNECTION_CLOSED:
	case AMQP_STATUS_SOCKET_CLOSED:
	case AMQP_STATUS_SOCKET_ERROR:
		return CQ_ERR_TEMPFAIL;
	default:
		return CQ_ERR_TEMPFAIL;
	}
}

/* Nothing more can be said on the connection. */
static bool gone(int status)
{
	switch (status) {
	case AMQP_STATUS_HEARTBEAT_TIMEOUT:
	case AMQP_STATUS_CONNECTION_CLOSED:
	case AMQP_STATUS_SOCKET_CLOSED:
	case AMQP_STATUS_SOCKET_ERROR:
	case AMQP_STATUS_SSL_ERROR:
		return true;
	default:
		return false;
	}
}

enum cq_err cqi_amqp_status_err(struct cq_ctx *ctx, int status,
				const char *what)
{
	const char *where = ctx->amqp ? ctx->amqp->where : "?";

	if (ctx->amqp && gone(status))
		ctx->amqp->lost = true;
	return cq_seterr(ctx, status_class(status), "%s: RabbitMQ at %s: %s",
			 what, where, amqp_error_string2(status));
}

int cqi_amqp_wait_frame(amqp_connection_state_t conn, amqp_frame_t *f,
			long long wait_ms)
{
	struct timeval tv = { 0, 0 };

	if (wait_ms > 0) {
		tv.tv_sec = wait_ms / 1000;
		tv.tv_usec = (wait_ms % 1000) * 1000;
	}
	return amqp_simple_wait_frame_noblock(conn, f, &tv);
}

/* The text of a connection.close / channel.close reply. */
static void close_text(amqp_bytes_t t, char *buf, size_t len)
{
	size_t n = t.len < len - 1 ? t.len : len - 1;

	memcpy(buf, t.bytes, n);
	buf[n] = '\0';
}

/* Keep the broker's close as facts on the connection; its text. */
static const char *keep_reply(struct cqi_amqp *a, int code, amqp_bytes_t t)
{
	a->reply_code = code;
	close_text(t, a->reply_text, sizeof(a->reply_text));
	return a->reply_text;
}

enum cq_err cqi_amqp_code_kind(int code)
{
	switch (code) {
	case 403:	/* ACCESS_REFUSED */
	case 530:	/* NOT_ALLOWED: e.g. no such vhost */
		return CQ_ERR_NOPERM;
	case 404:	/* NOT_FOUND */
		return CQ_ERR_NOTFOUND;
	case 406:	/* PRECONDITION_FAILED: inequivalent arg */
		return CQ_ERR_DATA;
	case 320:	/* CONNECTION_FORCED */
	case 405:	/* RESOURCE_LOCKED */
	case 506:	/* RESOURCE_ERROR */
		return CQ_ERR_TEMPFAIL;
	default:
		return CQ_ERR_INTERNAL;
	}
}

enum cq_err cqi_amqp_reopen_channel(struct cq_ctx *ctx)
{
	struct cqi_amqp *a = ctx->amqp;

	a->channel_open = false;
	a->confirming = false;
	a->next_tag = 1;
	amqp_channel_open(a->conn, CQI_CHANNEL);
	if (amqp_get_rpc_reply(a->conn).reply_type != AMQP_RESPONSE_NORMAL)
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
				 "RabbitMQ at %s: cannot reopen the channel",
				 a->where);
	a->channel_open = true;
	return CQ_OK;
}

enum cq_err cqi_amqp_rpc_err(struct cq_ctx *ctx, amqp_rpc_reply_t r,
			     const char *what)
{
	struct cqi_amqp *a = ctx->amqp;
	const char *text;
	enum cq_err e;

	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return CQ_OK;
	case AMQP_RESPONSE_NONE:
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "%s: no reply", what);
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		return cqi_amqp_status_err(ctx, r.library_error, what);
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		break;
	}
	if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *m = r.reply.decoded;
		amqp_channel_close_ok_t ok = { 0 };

		text = keep_reply(a, m->reply_code, m->reply_text);
		e = cqi_amqp_code_kind(m->reply_code);
		amqp_send_method(a->conn, CQI_CHANNEL,
				 AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		a->channel_open = false;
		cq_seterr(ctx, e, "%s: %s", what, text);
		/* keep the connection usable for the next call */
		if (cqi_amqp_reopen_channel(ctx) != CQ_OK)
			cq_seterr(ctx, e, "%s: %s", what, text);
		return e;
	}
	if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *m = r.reply.decoded;
		amqp_connection_close_ok_t ok = { 0 };

		text = keep_reply(a, m->reply_code, m->reply_text);
		amqp_send_method(a->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
				 &ok);
		a->channel_open = false;
		a->lost = true;
		return cq_seterr(ctx, cqi_amqp_code_kind(m->reply_code), "%s: %s",
				 what, text);
	}
	return cq_seterr(ctx, CQ_ERR_INTERNAL, "%s: unexpected method 0x%08x",
			 what, r.reply.id);
}

enum cq_err cqi_amqp_check(struct cq_ctx *ctx, const char *what)
{
	return cqi_amqp_rpc_err(ctx, amqp_get_rpc_reply(ctx->amqp->conn),
				what);
}

int cqi_amqp_reply(struct cq_ctx *ctx, amqp_channel_t ch, const char *what,
		   char *text, size_t len)
{
	struct cqi_amqp *a = ctx->amqp;
	amqp_rpc_reply_t r = amqp_get_rpc_reply(a->conn);
	amqp_channel_close_t *m;
	amqp_channel_close_ok_t ok = { 0 };

	text[0] = '\0';
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
	    r.reply.id != AMQP_CHANNEL_CLOSE_METHOD) {
		cqi_amqp_rpc_err(ctx, r, what);
		return -1;
	}
	m = r.reply.decoded;
	close_text(m->reply_text, text, len);
	keep_reply(a, m->reply_code, m->reply_text);
	amqp_send_method(a->conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
	if (ch == CQI_CHANNEL) {
		a->channel_open = false;
		if (cqi_amqp_reopen_channel(ctx))
			return -1;
	}
	return m->reply_code ? m->reply_code : 541;
}

/*
 * librabbitmq 0.11 matches the host only against the certificate's DNS
 * names, so an address in the URL (amqps://10.0.0.5/) would always fail.
 * For an address, OpenSSL checks it against the IP names instead, during
 * the handshake's own verification, and librabbitmq's check is off.
 */
static void verify_ip_host(amqp_socket_t *s, const char *host)
{
	unsigned char addr[sizeof(struct in6_addr)];
	SSL_CTX *tls = amqp_ssl_socket_get_context(s);

	if (inet_pton(AF_INET, host, addr) != 1 &&
	    inet_pton(AF_INET6, host, addr) != 1)
		return;
	/* on failure librabbitmq's own check stays on, and refuses */
	if (tls && X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(tls),
						 host) == 1)
		amqp_ssl_socket_set_verify_hostname(s, 0);
}

static enum cq_err tls_setup(struct cq_ctx *ctx, amqp_socket_t *s,
			     const char *host)
{
	const struct cq_settings *set = &ctx->set;
	bool given;
	int st;

	if (set->cacert) {
		if (cqi_check_file(ctx, "CA file", set->cacert))
			return ctx->err;
		st = amqp_ssl_socket_set_cacert(s, set->cacert);
		if (st)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "cannot use CA file '%s': %s",
					 set->cacert, amqp_error_string2(st));
	}
	if (cqi_tls_client_files(ctx, &given))
		return ctx->err;
	if (given) {
		st = amqp_ssl_socket_set_key(s, set->cert, set->key);
		if (st)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "cannot use client certificate '%s' / key '%s': %s",
					 set->cert, set->key,
					 amqp_error_string2(st));
	}
	if (set->insecure) {
		amqp_ssl_socket_set_verify_peer(s, 0);
		amqp_ssl_socket_set_verify_hostname(s, 0);
		return CQ_OK;
	}
	amqp_ssl_socket_set_verify_peer(s, 1);
	amqp_ssl_socket_set_verify_hostname(s, 1);
	verify_ip_host(s, host);
	return CQ_OK;
}

/* Merged into librabbitmq's own client properties: without
 * consumer_cancel_notify, RabbitMQ drops a consumer whose queue is deleted
 * without telling it, and `qctl consume` would wait forever; without
 * connection.blocked, a memory or disk alarm stalls publishing without a
 * word (the publisher reports connection.blocked and bounds the wait). */
static amqp_table_entry_t capability_entries[] = {
	{ .key = { 22, "consumer_cancel_notify" },
	  .value = { .kind = AMQP_FIELD_KIND_BOOLEAN, .value = { .boolean = 1 } } },
	{ .key = { 18, "connection.blocked" },
	  .value = { .kind = AMQP_FIELD_KIND_BOOLEAN, .value = { .boolean = 1 } } },
};
static amqp_table_entry_t client_entries[] = {
	{ .key = { 12, "capabilities" },
	  .value = { .kind = AMQP_FIELD_KIND_TABLE,
		     .value = { .table = { 2, capability_entries } } } },
};
static const amqp_table_t client_props = { 1, client_entries };

/* Open one URL: socket, login, channel.  Leaves ctx->amqp set on success. */
static enum cq_err open_one(struct cq_ctx *ctx, const struct cqi_amqp_url *u)
{
	long long ms = u->connect_timeout_ms >= 0 ? u->connect_timeout_ms : ctx->set.timeout_ms;
	struct timeval rpc = { ctx->set.timeout_ms / 1000,
			       (ctx->set.timeout_ms % 1000) * 1000 };
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };	/* connecting */
	int heartbeat = u->heartbeat_s >= 0 ? u->heartbeat_s : ctx->set.heartbeat_s;
	struct cqi_amqp *a = calloc(1, sizeof(*a));
	amqp_socket_t *s;
	amqp_rpc_reply_t r;
	int st;

	if (!a)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	ctx->amqp = a;
	ctx->amqp_close = amqp_close;
	a->next_tag = 1;
	cqi_host_port(a->where, sizeof(a->where), u->host, u->port);
	if (strcmp(u->vhost, "/") != 0)
		snprintf(a->where + strlen(a->where),
			 sizeof(a->where) - strlen(a->where), " vhost %s",
			 u->vhost);
	a->conn = amqp_new_connection();
	if (!a->conn)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	s = u->tls ? amqp_ssl_socket_new(a->conn) : amqp_tcp_socket_new(a->conn);
	if (!s)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "cannot create a socket");
	if (u->tls && tls_setup(ctx, s, u->host))
		return ctx->err;
	amqp_set_handshake_timeout(a->conn, &tv);
	amqp_set_rpc_timeout(a->conn, &rpc);
	st = amqp_socket_open_noblock(s, u->host, u->port, &tv);
	if (st) {
		enum cq_err e = status_class(st);
		char hint[400] = "";

		if (e == CQ_ERR_TEMPFAIL)
			e = CQ_ERR_UNAVAILABLE;
		if (st == AMQP_STATUS_SSL_ERROR ||
		    st == AMQP_STATUS_SSL_CONNECTION_FAILED)
			e = CQ_ERR_UNAVAILABLE;
		/* a wrong CA and a host the certificate does not name (an
		 * address, checked by OpenSSL) both fail the peer check */
		if (st == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED)
			snprintf(hint, sizeof(hint),
				 " (the server certificate does not name '%.200s')",
				 u->host);
		else if (e == CQ_ERR_NOPERM)
			snprintf(hint, sizeof(hint),
				 " (is --cacert the CA that signed the server certificate, and does the certificate name '%.200s'?)",
				 u->host);
		return cq_seterr(ctx, e, "cannot connect to RabbitMQ at %s: %s%s",
				 a->where, amqp_error_string2(st), hint);
	}
	r = amqp_login_with_properties(a->conn, u->vhost, 0, 131072,
				       heartbeat, &client_props,
				       AMQP_SASL_METHOD_PLAIN, u->user, u->pass);
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    (r.library_error == AMQP_STATUS_CONNECTION_CLOSED ||
	     r.library_error == AMQP_STATUS_SOCKET_CLOSED))
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "RabbitMQ at %s refused the login for user '%s'",
				 a->where, u->user);
	/* TLS 1.3: a client certificate the server refuses ends the session
	 * at the first read, which is the login */
	if (u->tls && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
	    r.library_error == AMQP_STATUS_SSL_ERROR)
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "RabbitMQ at %s ended the TLS session at login: %s",
				 a->where, ctx->set.cert ?
				 "it refused the client certificate (is --cert signed by a CA the server trusts?)" :
				 "does it require a client certificate (--cert, --key)?");
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		char what[400];

		snprintf(what, sizeof(what), "login to RabbitMQ at %s as '%s'",
			 a->where, u->user);
		return cqi_amqp_rpc_err(ctx, r, what);
	}
	amqp_channel_open(a->conn, CQI_CHANNEL);
	if (cqi_amqp_check(ctx, "open channel"))
		return ctx->err;
	a->channel_open = true;
	return CQ_OK;
}

/* Member i of the URL list: *p and *n; false past the end. */
static bool member_at(const char *list, int i, const char **p, size_t *n)
{
	for (; list && *list; i--) {
		size_t len = cqi_url_member_len(list);

		if (i == 0) {
			*p = list;
			*n = len;
			return true;
		}
		list += len;
		if (*list == ',')
			list++;
	}
	return false;
}

static int member_count(const char *list)
{
	const char *p;
	size_t n;
	int i = 0;

	while (member_at(list, i, &p, &n))
		i++;
	return i;
}

/* Open member i of the list; ctx->amqp is set on success only. */
static enum cq_err open_member(struct cq_ctx *ctx, int i)
{
	const char *p;
	size_t n;
	char *one, errbuf[200], safe[300];
	struct cqi_amqp_url u;
	enum cq_err e;

	if (!member_at(ctx->set.amqp_url, i, &p, &n))
		return cq_seterr(ctx, CQ_ERR_USAGE, "no AMQP URL given");
	if (!(one = strndup(p, n)))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	cqi_url_redact(one, safe, sizeof(safe));
	e = cqi_amqp_url_parse(one, &u, errbuf, sizeof(errbuf));
	free(one);
	if (e)
		return cq_seterr(ctx, e, "bad AMQP URL '%s': %s", safe, errbuf);
	e = open_one(ctx, &u);
	cqi_amqp_url_clear(&u);
	if (e) {
		amqp_close(ctx);
		return e;
	}
	ctx->amqp->member = i;
	return CQ_OK;
}

/* A refused login or a bad certificate is not worth failing over. */
static bool final(enum cq_err e)
{
	return e == CQ_ERR_NOPERM || e == CQ_ERR_USAGE || e == CQ_ERR_NOMEM;
}

enum cq_err cq_amqp_connect(struct cq_ctx *ctx)
{
	int n = member_count(ctx->set.amqp_url);
	enum cq_err e = CQ_ERR_USAGE;

	if (ctx->err)
		return ctx->err;
	if (ctx->amqp)
		return CQ_OK;
	if (n == 0)
		return cq_seterr(ctx, e, "no AMQP URL given");
	/* try each URL of a comma-separated list in order */
	for (int i = 0; i < n; i++) {
		cqi_err_drop(ctx);	/* the last URL's: fail over */
		e = open_member(ctx, i);
		if (!e || final(e))
			break;
	}
	return e;
}

bool cqi_amqp_may_reconnect(const struct cq_ctx *ctx)
{
	return member_count(ctx->set.amqp_url) > 1;
}

bool cqi_amqp_lost(const struct cq_ctx *ctx)
{
	const struct cqi_amqp *a = ctx->amqp;

	if (!ctx->err || (a && a->blocked_out))
		return false;
	/* 541: a node down under a quorum queue closes the channel */
	return !a || a->lost || ctx->err == CQ_ERR_TEMPFAIL ||
	       a->reply_code == 541;
}

enum cq_err cqi_amqp_reconnect(struct cq_ctx *ctx, char *lost, size_t len)
{
	int n = member_count(ctx->set.amqp_url);
	int from = ctx->amqp ? ctx->amqp->member : 0;
	long long deadline = cq_now_ms() + ctx->set.timeout_ms;
	long long wait = RECONNECT_PAUSE_MS;
	struct cqi_err_held why = { 0 };
	enum cq_err e = CQ_ERR_UNAVAILABLE;
	char last[sizeof(ctx->errstr)];

	snprintf(lost, len, "%s", cqi_amqp_where(ctx));
	cqi_err_hold(ctx, &why);
	if (ctx->amqp)
		ctx->amqp->lost = true;	/* no close handshake with it */
	amqp_close(ctx);
	/* every pass tries the other nodes in list order, the lost one last */
	for (;;) {
		for (int k = 1; k <= n; k++) {
			cqi_err_drop(ctx);
			e = open_member(ctx, (from + k) % n);
			if (!e || final(e))
				return e;
		}
		if (cq_stop_requested() || cq_now_ms() >= deadline)
			break;
		cqi_sleep_ms(wait < deadline - cq_now_ms() ?
			 wait : deadline - cq_now_ms());
		wait = wait * 2 > RECONNECT_PAUSE_MAX_MS ?
		       RECONNECT_PAUSE_MAX_MS : wait * 2;
	}
	/* the loss, and why no node would take us */
	snprintf(last, sizeof(last), "%s", ctx->errstr);
	return cq_seterr(ctx, why.err ? why.err : e,
			 "%s; no other node answered within %lld.%03llds (--timeout): %s",
			 why.err ? why.msg : "connection lost",
			 ctx->set.timeout_ms / 1000, ctx->set.timeout_ms % 1000,
			 last);
}

const char *cqi_amqp_where(const struct cq_ctx *ctx)
{
	return ctx->amqp ? ctx->amqp->where : "";
}

enum cq_err cqi_amqp_confirm_select(struct cq_ctx *ctx)
{
	struct cqi_amqp *a = ctx->amqp;

	if (a->confirming)
		return CQ_OK;
	amqp_confirm_select(a->conn, CQI_CHANNEL);
	if (cqi_amqp_check(ctx, "enable publisher confirms"))
		return ctx->err;
	a->confirming = true;
	a->next_tag = 1;
	return CQ_OK;
}
