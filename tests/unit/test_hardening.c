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

#include "cq.h"

/* fuzz_url: a Redis password holding a comma leaked its first part,
 * because redaction split the URL as if it were an AMQP list. */
static void test_redact_comma_in_password(void **state)
{
	char buf[256], err[200];
	struct cq_redis_url u;

	(void)state;
	assert_int_equal(cq_redis_url_parse("redis://u:se,cret@h:1/0", &u, err,
					    sizeof(err)), CQ_OK);
	assert_string_equal(u.pass, "se,cret");
	cq_redis_url_clear(&u);
	cq_url_redact("redis://u:se,cret@h:1/0", buf, sizeof(buf));
	assert_string_equal(buf, "redis://u:***@h:1/0");
	cq_url_redact("redis://u:a,b,c@h:99999/0", buf, sizeof(buf));
	assert_string_equal(buf, "redis://u:***@h:99999/0");
	/* a real list still redacts each member */
	cq_url_redact("amqp://u:p@a,amqp://v:q@b/x", buf, sizeof(buf));
	assert_string_equal(buf, "amqp://u:***@a,amqp://v:***@b/x");
	cq_url_redact("amqp://a:1,amqp://u:p,q@b/%2f", buf, sizeof(buf));
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redact_comma_in_password),
		cmocka_unit_test(test_size_above_2_63),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
