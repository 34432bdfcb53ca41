/* redis_tls.c - TLS under the Redis driver (rediss://), with OpenSSL.
 *
 * OpenSSL is loaded with dlopen the first time a rediss:// URL is used:
 * linking it costs every process about 0.7 ms of start-up (measured), and
 * `cachectl get` over plain TCP must not pay that.  Only redis.c calls
 * these functions; they do the handshake (SNI, the certificate checked
 * against the name or address typed) and move bytes, and turn OpenSSL's
 * failures into messages that name the fix.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

/* The OpenSSL functions used, resolved from libssl (libcrypto's through
 * libssl's own dependencies). */
#define TLS_FUNCS(X) \
	X(TLS_client_method) X(SSL_CTX_new) X(SSL_CTX_free) \
	X(SSL_CTX_set_default_verify_paths) X(SSL_CTX_load_verify_locations) \
	X(SSL_CTX_use_certificate_chain_file) X(SSL_CTX_use_PrivateKey_file) \
	X(SSL_CTX_check_private_key) X(SSL_new) X(SSL_free) X(SSL_set_fd) \
	X(SSL_ctrl) X(SSL_set_verify) X(SSL_set1_host) X(SSL_get0_param) \
	X(SSL_connect) X(SSL_read) X(SSL_peek) X(SSL_write) X(SSL_get_error) \
	X(SSL_get_verify_result) X(SSL_shutdown) X(SSL_pending) \
	X(X509_VERIFY_PARAM_set1_ip_asc) X(X509_verify_cert_error_string) \
	X(ERR_get_error) X(ERR_peek_error) X(ERR_error_string_n) \
	X(ERR_clear_error) X(OPENSSL_init_ssl)

static struct {
	bool loaded;
#define DECLARE(f) __typeof__(f) *f;
	TLS_FUNCS(DECLARE)
#undef DECLARE
} ossl;

struct cqi_tls {
	SSL_CTX *ctx;
	SSL *ssl;
	bool insecure;
	bool handshaken;
	bool spoke;		/* a reply came back over it */
};

static enum cq_err load_openssl(struct cq_ctx *ctx)
{
	static const char *const names[] = { "libssl.so.3", "libssl.so" };
	void *h = NULL;

	if (ossl.loaded)
		return CQ_OK;
	for (size_t i = 0; !h && i < sizeof(names) / sizeof(names[0]); i++)
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "rediss:// needs OpenSSL 3 (libssl.so.3): %s",
				 dlerror());
#define RESOLVE(f) \
	if (!(*(void **)&ossl.f = dlsym(h, #f))) \
		return cq_seterr(ctx, CQ_ERR_INTERNAL, \
				 "rediss://: OpenSSL lacks %s", #f);
	TLS_FUNCS(RESOLVE)
#undef RESOLVE
	/* before any other call: no OPENSSL_cleanup at exit, which spent
	 * 1.36M instructions (5% of a TLS get, callgrind) freeing what the
	 * process's exit frees anyway */
	if (ossl.OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, NULL) != 1)
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "rediss://: OpenSSL failed to start");
	ossl.loaded = true;
	return CQ_OK;
}

/* OpenSSL's reason for the last failure, or "". */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ossl.ERR_get_error();
	const char *p;

	buf[0] = '\0';
	if (!e)
		return buf;
	ossl.ERR_error_string_n(e, buf, len);
	/* "error:0A000086:SSL routines::certificate verify failed" */
	p = strrchr(buf, ':');
	return p ? p + 1 : buf;
}

static bool is_address(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	       inet_pton(AF_INET6, host, a) == 1;
}

static enum cq_err load_files(struct cq_ctx *ctx, SSL_CTX *sc)
{
	const struct cq_settings *set = &ctx->set;
	char buf[256];
	bool given;

	if (set->cacert) {
		if (cqi_check_file(ctx, "CA file", set->cacert))
			return ctx->err;
		if (ossl.SSL_CTX_load_verify_locations(sc, set->cacert,
						       NULL) != 1)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "cannot use CA file '%s': %s",
					 set->cacert, ossl_reason(buf, sizeof(buf)));
	} else if (ossl.SSL_CTX_set_default_verify_paths(sc) != 1) {
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "cannot load the system CAs: %s",
				 ossl_reason(buf, sizeof(buf)));
	}
	if (cqi_tls_client_files(ctx, &given))
		return ctx->err;
	if (!given)
		return CQ_OK;
	if (ossl.SSL_CTX_use_certificate_chain_file(sc, set->cert) != 1 ||
	    ossl.SSL_CTX_use_PrivateKey_file(sc, set->key,
					     SSL_FILETYPE_PEM) != 1 ||
	    ossl.SSL_CTX_check_private_key(sc) != 1)
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "cannot use client certificate '%s' / key '%s': %s",
				 set->cert, set->key,
				 ossl_reason(buf, sizeof(buf)));
	return CQ_OK;
}

/* The handshake failed because the server's certificate did not pass. */
static enum cq_err verify_err(struct cq_ctx *ctx, long v, const char *host,
			      const char *where)
{
	const char *why = ossl.X509_verify_cert_error_string(v);

	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "Redis at %s: the server certificate is not valid now (%s): renew it on the server, or check this machine's clock",
				 where, why);
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "Redis at %s: the server certificate does not name '%s': connect by a name it lists",
				 where, host);
	default:
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "Redis at %s: the server certificate is not trusted (%s): give the CA that signed it with --cacert",
				 where, why);
	}
}

/* The server ended the session over our client certificate. */
static enum cq_err client_cert_err(struct cq_ctx *ctx, const char *where)
{
	if (ctx->set.cert)
		return cq_seterr(ctx, CQ_ERR_NOPERM,
				 "Redis at %s refused the client certificate: is --cert signed by a CA the server trusts?",
				 where);
	return cq_seterr(ctx, CQ_ERR_NOPERM,
			 "Redis at %s ended the TLS session before answering: it requires a client certificate: give --cert and --key (or CQ_CERT and CQ_KEY_FILE)",
			 where);
}

/* After a failed SSL_* call: what went wrong, as the context error. */
static enum cq_err tls_err(struct cq_ctx *ctx, struct cqi_tls *t, int ret,
			   const char *where)
{
	int e = ossl.SSL_get_error(t->ssl, ret), saved = errno;
	unsigned long pe = ossl.ERR_peek_error();
	int reason = ERR_GET_REASON(pe);
	const char *why;
	char buf[256];

	bool closed = e == SSL_ERROR_ZERO_RETURN ||
		      (e == SSL_ERROR_SYSCALL && !pe &&
		       (ret == 0 || saved == ECONNRESET)) ||
		      reason == SSL_R_UNEXPECTED_EOF_WHILE_READING;

	/* TLS 1.3: the server judges our certificate after the handshake;
	 * its alert may be lost when it closes on our unread request */
	if (closed && t->handshaken && !t->spoke) {
		ossl.ERR_clear_error();
		return client_cert_err(ctx, where);
	}
	if (closed) {
		ossl.ERR_clear_error();
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
				 "Redis at %s closed the connection", where);
	}
	if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ ||
	    e == SSL_ERROR_WANT_WRITE) {
		ossl.ERR_clear_error();
		if (saved == EAGAIN || saved == EWOULDBLOCK || saved == 0 ||
		    e != SSL_ERROR_SYSCALL)
			return cq_seterr(ctx, CQ_ERR_TEMPFAIL,
					 t->handshaken ?
					 "Redis at %s timed out (--timeout %lldms)" :
					 "Redis at %s did not answer the TLS handshake (--timeout %lldms): is it a plain port? use redis:// for it",
					 where, ctx->set.timeout_ms);
		return cq_seterr(ctx, CQ_ERR_TEMPFAIL, "Redis at %s: %s",
				 where, strerror(saved));
	}
	if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED ||
	    reason == SSL_R_TLSV1_ALERT_UNKNOWN_CA ||
	    reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ||
	    reason == SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN ||
	    reason == SSL_R_TLSV1_ALERT_DECRYPT_ERROR) {
		ossl.ERR_clear_error();
		return client_cert_err(ctx, where);
	}
	why = ossl_reason(buf, sizeof(buf));
	ossl.ERR_clear_error();
	if (reason == SSL_R_WRONG_VERSION_NUMBER ||
	    reason == SSL_R_PACKET_LENGTH_TOO_LONG)
		return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
				 "cannot connect to Redis at %s: no TLS there (%s): is it a plain port? use redis:// for it",
				 where, why);
	return cq_seterr(ctx, CQ_ERR_UNAVAILABLE,
			 "cannot connect to Redis at %s: TLS failed: %s",
			 where, why[0] ? why : "unknown error");
}

enum cq_err cqi_tls_open(struct cq_ctx *ctx, int fd, const char *host,
			 const char *where, struct cqi_tls **out)
{
	struct cqi_tls *t;
	int ret;

	*out = NULL;
	if (load_openssl(ctx))
		return ctx->err;
	t = calloc(1, sizeof(*t));
	if (!t)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	*out = t;
	t->insecure = ctx->set.insecure;
	ossl.ERR_clear_error();
	t->ctx = ossl.SSL_CTX_new(ossl.TLS_client_method());
	if (!t->ctx)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	/* before SSL_new, which copies the client certificate */
	if (load_files(ctx, t->ctx))
		return ctx->err;
	t->ssl = ossl.SSL_new(t->ctx);
	if (!t->ssl)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (!host)
		host = "localhost";	/* TLS over a unix socket */
	if (!is_address(host) &&
	    ossl.SSL_ctrl(t->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME,
			  TLSEXT_NAMETYPE_host_name, (void *)host) != 1)
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "'%s' cannot be sent as a TLS server name", host);
	if (!t->insecure) {
		ossl.SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
		if (is_address(host) ?
		    ossl.X509_VERIFY_PARAM_set1_ip_asc(ossl.SSL_get0_param(t->ssl),
						       host) != 1 :
		    ossl.SSL_set1_host(t->ssl, host) != 1)
			return cq_seterr(ctx, CQ_ERR_USAGE,
					 "'%s' cannot be checked against a certificate",
					 host);
	}
	if (ossl.SSL_set_fd(t->ssl, fd) != 1)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "SSL_set_fd failed");
	errno = 0;
	ret = ossl.SSL_connect(t->ssl);
	if (ret == 1) {
		t->handshaken = true;
		return CQ_OK;
	}
	if (ossl.SSL_get_verify_result(t->ssl) != X509_V_OK) {
		ossl.ERR_clear_error();
		return verify_err(ctx, ossl.SSL_get_verify_result(t->ssl), host,
				  where);
	}
	return tls_err(ctx, t, ret, where);
}

long cqi_tls_read(struct cq_ctx *ctx, struct cqi_tls *t, void *buf, size_t n,
		  const char *where)
{
	int ret;

	errno = 0;
	ret = ossl.SSL_read(t->ssl, buf, n > 0x7fffffff ? 0x7fffffff : (int)n);
	if (ret > 0) {
		t->spoke = true;
		return ret;
	}
	tls_err(ctx, t, ret, where);
	return -1;
}

long cqi_tls_write(struct cq_ctx *ctx, struct cqi_tls *t, const void *buf,
		   size_t n, const char *where)
{
	int ret;

	errno = 0;
	ret = ossl.SSL_write(t->ssl, buf, n > 0x7fffffff ? 0x7fffffff : (int)n);
	if (ret > 0)
		return ret;
	tls_err(ctx, t, ret, where);
	return -1;
}

bool cqi_tls_pending(const struct cqi_tls *t)
{
	return ossl.SSL_pending(t->ssl) > 0;
}

int cqi_tls_peek(struct cqi_tls *t)
{
	char c;
	int ret = ossl.SSL_peek(t->ssl, &c, 1), e;

	if (ret > 0)
		return 1;
	e = ossl.SSL_get_error(t->ssl, ret);
	ossl.ERR_clear_error();
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

void cqi_tls_close(struct cqi_tls *t)
{
	if (!t)
		return;
	if (t->ssl) {
		if (t->spoke)
			ossl.SSL_shutdown(t->ssl);
		ossl.SSL_free(t->ssl);
	}
	if (t->ctx)
		ossl.SSL_CTX_free(t->ctx);
	ossl.ERR_clear_error();
	free(t);
}
