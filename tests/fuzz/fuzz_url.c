/*
 * fuzz_url - Redis and AMQP URL parsing, and password redaction.
 *
 * Beyond "no crash", redaction must never copy a byte of a password:
 * the input's password span (as the parsers see it: the first ':' of the
 * user info up to the last '@' of the authority; with no '@', a non-port
 * after the last ':', a password typed without "@host") is changed letter for
 * letter and digit for digit, keeping every byte the redactor looks at
 * (, @ : / ? # and the rest), and both versions must redact to the same
 * text.  Checked for the whole input (a Redis URL, where a comma may be
 * part of a password) and for each member of it as an AMQP URL list, the
 * way qctl splits and reports it.  Redaction must also fit any buffer.
 */
#include "fuzz.h"
#include "internal.h"

/* With no '@': "user:secret" typed without "@host", where the text after
 * the first ':' outside [brackets], up to the authority's end or the first
 * comma, is not a 1-5 digit port. */
static bool typo_span(const char *url, size_t a, size_t end, size_t *ps,
		      size_t *pe)
{
	size_t colon = 0, digits = 0, stop;
	bool have_colon = false, bracket = false;

	for (stop = a; stop < end && url[stop] != ','; stop++)
		;
	for (size_t i = a; i < stop && !have_colon; i++) {
		if (url[i] == '[')
			bracket = true;
		else if (url[i] == ']')
			bracket = false;
		else if (url[i] == ':' && !bracket) {
			colon = i;
			have_colon = true;
		}
	}
	if (!have_colon || colon + 1 == stop)
		return false;
	for (size_t i = colon + 1; i < stop; i++)
		digits += url[i] >= '0' && url[i] <= '9';
	if (digits == stop - colon - 1 && digits <= 5)
		return false;
	*ps = colon + 1;
	*pe = stop;
	return true;
}

/* The password span of url[0..n) in [*ps, *pe), if it has one: the user
 * info's, or what follows a colon that cannot start a port. */
static bool secret_span(const char *url, size_t n, size_t *ps, size_t *pe)
{
	const char *s = memmem(url, n, "://", 3);
	size_t a, end, at = 0, colon = 0;
	bool have_at = false, have_colon = false;

	if (!s)
		return false;
	a = (size_t)(s - url) + 3;
	for (end = a; end < n && !strchr("/?#", url[end]); end++)
		if (url[end] == '@') {
			at = end;
			have_at = true;
		}
	if (!have_at)
		return typo_span(url, a, end, ps, pe);
	for (size_t i = a; i < at && !have_colon; i++)
		if (url[i] == ':') {
			colon = i;
			have_colon = true;
		}
	if (!have_colon || at <= colon + 1)
		return false;
	*ps = colon + 1;
	*pe = at;
	return true;
}

static char other(char c)
{
	if (c >= 'a' && c <= 'z')
		return c == 'z' ? 'a' : c + 1;
	if (c >= 'A' && c <= 'Z')
		return c == 'Z' ? 'A' : c + 1;
	if (c >= '0' && c <= '9')
		return c == '9' ? '0' : c + 1;
	if ((unsigned char)c >= 0x80)
		return (char)((unsigned char)c ^ 1);
	return c;
}

/* Redacting url[0..n) and its twin with another password must agree. */
static void check_hidden(const char *url, size_t n)
{
	static char a[16384], b[16384];
	size_t ps, pe;
	char *one, *twin;

	if (!secret_span(url, n, &ps, &pe))
		return;
	one = strndup(url, n);
	twin = strndup(url, n);
	if (!one || !twin)
		abort();
	for (size_t i = ps; i < pe; i++)
		twin[i] = other(twin[i]);
	cqi_url_redact(one, a, sizeof(a));
	cqi_url_redact(twin, b, sizeof(b));
	FUZZ_ASSERT(strcmp(a, b) == 0, "'%s' redacted to '%s' shows part of its password (twin '%s')",
		    one, a, b);
	free(one);
	free(twin);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = fuzz_cstr(data, size), errbuf[200], small[40];
	struct cqi_redis_url r;
	struct cqi_amqp_url a;
	size_t len = strlen(url);

	if (cqi_redis_url_parse(url, &r, errbuf, sizeof(errbuf)) == CQ_OK) {
		FUZZ_ASSERT((r.host != NULL) != (r.path != NULL),
			    "host or path, not both: '%s'", url);
		FUZZ_ASSERT(r.port >= 1 && r.port <= 65535, "port of '%s'", url);
		cqi_redis_url_clear(&r);
	} else {
		FUZZ_ASSERT(errbuf[0], "no message for '%s'", url);
	}
	if (cqi_amqp_url_parse(url, &a, errbuf, sizeof(errbuf)) == CQ_OK) {
		FUZZ_ASSERT(a.host && a.user && a.pass && a.vhost,
			    "fields of '%s'", url);
		FUZZ_ASSERT(a.port >= 1 && a.port <= 65535, "port of '%s'", url);
		cqi_amqp_url_clear(&a);
	} else {
		FUZZ_ASSERT(errbuf[0], "no message for '%s'", url);
	}
	check_hidden(url, len);
	for (size_t off = 0; off < len;) {
		size_t n = cqi_url_member_len(url + off);

		FUZZ_ASSERT(off + n <= len, "member past the end");
		check_hidden(url + off, n);
		off += n + 1;
	}
	/* every buffer size, including the tiny ones */
	cqi_url_redact(url, small, size % sizeof(small) + 1);
	FUZZ_ASSERT(strlen(small) <= size % sizeof(small), "redact overflow");
	free(url);
	return 0;
}
