/*
 * Regression tests for bugs found by the fuzzers in tests/fuzz/ (issue 7):
 * each case is an input a fuzz target once failed on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cq.h"
#include "internal.h"

/* fuzz_url: a Redis password holding a comma leaked its first part,
 * because redaction split the URL as if it were an AMQP list. */
static void test_redact_comma_in_password(void **state)
{
	char buf[256], err[200];
	struct cqi_redis_url u;

	(void)state;
	assert_int_equal(cqi_redis_url_parse("redis://u:se,cret@h:1/0", &u, err,
					    sizeof(err)), CQ_OK);
	assert_string_equal(u.pass, "se,cret");
	cqi_redis_url_clear(&u);
	cqi_url_redact("redis://u:se,cret@h:1/0", buf, sizeof(buf));
	assert_string_equal(buf, "redis://u:***@h:1/0");
	cqi_url_redact("redis://u:a,b,c@h:99999/0", buf, sizeof(buf));
	assert_string_equal(buf, "redis://u:***@h:99999/0");
	/* a real list still redacts each member */
	cqi_url_redact("amqp://u:p@a,amqp://v:q@b/x", buf, sizeof(buf));
	assert_string_equal(buf, "amqp://u:***@a,amqp://v:***@b/x");
	cqi_url_redact("amqp://a:1,amqp://u:p,q@b/%2f", buf, sizeof(buf));
	assert_string_equal(buf, "amqp://a:1,amqp://u:***@b/%2f");
}

/* sizes between 2^63 and the 1.8e19 limit came back as 2^63 */
static void test_size_above_2_63(void **state)
{
	unsigned long long b;

	(void)state;
	assert_true(cq_parse_size("9000000T", &b));
	assert_true(b == 9000000ULL * 1099511627776ULL);
	assert_true(cq_parse_size("9223372036854775807", &b));
	assert_true(b >= 9223372036854774784ULL);
	assert_false(cq_parse_size("16777216T", &b));
}

/* fuzz_reader: a record longer than max that filled the read buffer came
 * back showing bytes from later in the stream, not its first max bytes */
static void test_reader_too_long_keeps_its_start(void **state)
{
	static char big[300000];
	struct cq_ctx *ctx = cq_ctx_new(NULL);
	struct cq_reader_opts o = { .delim = '\n', .max = 10 };
	struct cq_reader *r;
	struct cq_rec_in in;
	int fd = memfd_create("t", 0);

	(void)state;
	assert_true(fd >= 0);
	memset(big, 'x', sizeof(big));
	memcpy(big, "0123456789", 10);
	assert_int_equal(write(fd, big, sizeof(big)), sizeof(big));
	assert_int_equal(write(fd, "\nnext\n", 6), 6);
	lseek(fd, 0, SEEK_SET);
	r = cqi_reader_new(ctx, fd, &o);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_TOO_LONG);
	assert_int_equal(in.len, 10);
	assert_memory_equal(in.p, "0123456789", 10);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_OK);
	assert_int_equal(in.len, 4);
	assert_memory_equal(in.p, "next", 4);
	assert_false(cqi_reader_next(r, &in));
	assert_int_equal(ctx->err, CQ_OK);
	cqi_reader_free(r);
	cq_ctx_free(ctx);
	close(fd);
}

/* fuzz_record: "body_base64" and "body-base64" in one record leaked the
 * first decoded body (caught by ASan under SANITIZE=1) */
static void test_record_two_base64_bodies(void **state)
{
	static const char line[] = "{\"body_base64\":\"eA==\",\"body-base64\":\"eQ==\"}";
	struct cq_message m;
	struct cq_record *rec;
	char err[200];

	(void)state;
	cq_message_init(&m);
	assert_int_equal(cqi_record_parse(line, strlen(line), &m, &rec, err,
					 sizeof(err)), CQ_OK);
	assert_int_equal(m.len, 1);
	cqi_record_free(rec);
}

/* cachectl fetch chose 126 by comparing the error text with "cannot
 * run": a command that cannot be run is a kind of error of its own */
static void test_exit_codes_by_kind(void **state)
{
	(void)state;
	assert_int_equal(cq_exit_code(CQ_ERR_NOCMD), 127);
	assert_int_equal(cq_exit_code(CQ_ERR_NOEXEC), 126);
	assert_int_equal(cq_exit_code(CQ_ERR_NOPERM), 77);
	assert_int_equal(cq_exit_code(CQ_ERR_NOMEM), 70);
	assert_string_equal(cq_strerror(CQ_ERR_NOCMD), "command not found");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact_comma_in_password),
		cmocka_unit_test(test_size_above_2_63),
		cmocka_unit_test(test_reader_too_long_keeps_its_start),
		cmocka_unit_test(test_record_two_base64_bodies),
		cmocka_unit_test(test_exit_codes_by_kind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
