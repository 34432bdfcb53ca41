/*
 * fuzz_url - Redis and AMQP URL parsing, and password redaction.
 *
 * Beyond "no crash": a URL that parses with a password must never show
 * that password once redacted (the redacted text, parsed again, has the
 * password "***" or none), and redaction must fit any buffer size.
 */
#include "fuzz.h"

static void check_redacted(const char *url, bool is_redis)
{
	char big[8192], again_err[200];
	struct cq_redis_url r;
	struct cq_amqp_url a;

	cq_url_redact(url, big, sizeof(big));
	if (strlen(url) + 64 > sizeof(big))
		return;		/* truncated: not parseable as a whole */
	if (is_redis) {
		if (cq_redis_url_parse(big, &r, again_err, sizeof(again_err)))
			return;
		FUZZ_ASSERT(!r.pass || strcmp(r.pass, "***") == 0,
			    "redis URL '%s' redacted to '%s'", url, big);
		cq_redis_url_clear(&r);
	} else {
		if (cq_amqp_url_parse(big, &a, again_err, sizeof(again_err)))
			return;
		FUZZ_ASSERT(strcmp(a.pass, "***") == 0 ||
			    strcmp(a.pass, "guest") == 0 || a.pass[0] == '\0',
			    "AMQP URL '%s' redacted to '%s'", url, big);
		cq_amqp_url_clear(&a);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = fuzz_cstr(data, size), errbuf[200], small[40];
	struct cq_redis_url r;
	struct cq_amqp_url a;

	if (cq_redis_url_parse(url, &r, errbuf, sizeof(errbuf)) == CQ_OK) {
		FUZZ_ASSERT((r.host != NULL) != (r.path != NULL),
			    "host or path, not both: '%s'", url);
		FUZZ_ASSERT(r.port >= 1 && r.port <= 65535, "port of '%s'", url);
		if (r.pass && r.pass[0])
			check_redacted(url, true);
		cq_redis_url_clear(&r);
	} else {
		FUZZ_ASSERT(errbuf[0], "no message for '%s'", url);
	}
	if (cq_amqp_url_parse(url, &a, errbuf, sizeof(errbuf)) == CQ_OK) {
		FUZZ_ASSERT(a.host && a.user && a.pass && a.vhost,
			    "fields of '%s'", url);
		FUZZ_ASSERT(a.port >= 1 && a.port <= 65535, "port of '%s'", url);
		if (a.pass[0] && strcmp(a.pass, "guest") != 0 &&
		    strcmp(a.pass, "***") != 0)
			check_redacted(url, false);
		cq_amqp_url_clear(&a);
	} else {
		FUZZ_ASSERT(errbuf[0], "no message for '%s'", url);
	}
	/* every buffer size, including the tiny ones */
	cq_url_redact(url, small, size % sizeof(small) + 1);
	FUZZ_ASSERT(strlen(small) <= size % sizeof(small), "redact overflow");
	free(url);
	return 0;
}
