/* Unit tests for consume's pure parts: the handler's stderr tail that goes
 * into x-cq-stderr, the broker's "inequivalent arg" text that tells
 * whether a queue has a dead-letter exchange, and the queue-argument
 * probe over a scripted broker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "consume_int.h"
#include "qargs_int.h"
#include "cq.h"
#include "internal.h"

static void set_tail(struct cqi_job *j, const char *s, size_t n)
{
	memset(j, 0, sizeof(*j));
	memcpy(j->tail, s, n);
	j->tail_len = n;
}

static void assert_tail(struct cqi_job *j, const char *want)
{
	size_t len;
	const char *p = cqi_job_tail(j, &len);

	assert_int_equal(len, strlen(want));
	assert_memory_equal(p, want, len);
}

static void test_tail_lines(void **state)
{
	static const char six[] = "one\ntwo\nthree\nfour\nfive\nsix\n";
	struct cqi_job j;

	(void)state;
	set_tail(&j, six, strlen(six));
	assert_tail(&j, "three\nfour\nfive\nsix");
	set_tail(&j, "only line", 9);
	assert_tail(&j, "only line");
	set_tail(&j, "a\r\n\n\n", 5);
	assert_tail(&j, "a");
	set_tail(&j, "", 0);
	assert_tail(&j, "");
	set_tail(&j, "\n\n", 2);
	assert_tail(&j, "");
}

static void test_tail_bytes(void **state)
{
	char big[CQI_TAIL_KEEP];
	struct cqi_job j;
	size_t len;
	const char *p;

	(void)state;
	/* one long line: the last 512 bytes */
	memset(big, 'x', sizeof(big));
	big[0] = 'A';
	set_tail(&j, big, sizeof(big));
	p = cqi_job_tail(&j, &len);
	assert_int_equal(len, CQI_TAIL_BYTES);
	assert_int_equal(p[0], 'x');
	/* never starts inside a UTF-8 sequence: "é" is c3 a9 */
	memset(big, 'y', sizeof(big));
	/* pairs from an odd offset: the 512-byte cut lands on an a9 */
	for (size_t i = sizeof(big) - CQI_TAIL_BYTES - 1; i + 2 < sizeof(big);
	     i += 2) {
		big[i] = (char)0xc3;
		big[i + 1] = (char)0xa9;
	}
	set_tail(&j, big, sizeof(big));
	p = cqi_job_tail(&j, &len);
	assert_int_equal(len, CQI_TAIL_BYTES - 1);
	assert_int_equal((unsigned char)p[0], 0xc3);
}

static void test_inequivalent(void **state)
{
	static const char ttl[] =
		"PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue "
		"'jobs' in vhost '/': received none but current is the value "
		"'60000' of type 'signedint'";
	static const char dlx[] =
		"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for "
		"queue 'a but current is b' in vhost '/': received none but current "
		"is the value 'it' of type 'x' of type 'longstr'";
	static const char durable[] =
		"PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in "
		"vhost '/': received 'true' but current is 'false'";
	char key[64], type[32], *val;
	const char *cur;

	(void)state;
	assert_true(cqi_parse_inequivalent(ttl, key, sizeof(key), &cur));
	assert_string_equal(key, "x-message-ttl");
	assert_true(cqi_parse_value(cur, &val, type, sizeof(type)));
	assert_string_equal(val, "60000");
	assert_string_equal(type, "signedint");
	free(val);
	/* the last " but current is " and the last "' of type '" win, so
	 * queue names and values may hold those words */
	assert_true(cqi_parse_inequivalent(dlx, key, sizeof(key), &cur));
	assert_string_equal(key, "x-dead-letter-exchange");
	assert_true(cqi_parse_value(cur, &val, type, sizeof(type)));
	assert_string_equal(val, "it' of type 'x");
	assert_string_equal(type, "longstr");
	free(val);
	assert_true(cqi_parse_inequivalent(durable, key, sizeof(key), &cur));
	assert_string_equal(key, "durable");
	assert_string_equal(cur, "'false'");
	assert_false(cqi_parse_value(cur, &val, type, sizeof(type)));
	/* not the text we know */
	assert_false(cqi_parse_inequivalent("NOT_FOUND - no queue 'q'", key,
					    sizeof(key), &cur));
	assert_false(cqi_parse_inequivalent("inequivalent arg 'unterminated",
					    key, sizeof(key), &cur));
	assert_false(cqi_parse_inequivalent("inequivalent arg 'k' but nothing",
					    key, 2, &cur));
	assert_false(cqi_parse_value("none", &val, type, sizeof(type)));
	assert_false(cqi_parse_value("the value 'x' of type 'unterminated",
				     &val, type, sizeof(type)));
}

/* A broker for the probe: replies[i] answers round i (NULL: accepted). */
struct script {
	const char *const *replies;
	int round;
	bool durable_seen[8];
	int nargs_seen[8];
};

static int scripted(void *arg, bool durable, bool auto_delete,
		    amqp_table_t t, char *text, size_t len)
{
	struct script *sc = arg;
	const char *r = sc->replies[sc->round];

	(void)auto_delete;
	sc->durable_seen[sc->round] = durable;
	sc->nargs_seen[sc->round] = t.num_entries;
	sc->round++;
	if (!r)
		return 0;
	snprintf(text, len, "%s", r);
	return 406;
}

static void test_qargs_probe(void **state)
{
	static const char *const full[] = {
		"PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' "
		"in vhost '/': received 'true' but current is 'false'",
		"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue "
		"'q' in vhost '/': received 'classic' but current is 'quorum'",
		"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for "
		"queue 'q' in vhost '/': received none but current is the value "
		"'5' of type 'long'",
		NULL,
	};
	/* a long name: the broker cuts its text at 255 bytes */
	static const char *const cut[] = {
		"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue "
		"'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...",
		"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for "
		"queue 'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...",
	};
	struct cq_ctx *ctx = cq_ctx_new(NULL);
	struct script sc = { .replies = full };
	struct cqi_qargs q;
	const struct cqi_qarg *a;

	(void)state;
	assert_int_equal(cqi_qargs_probe(ctx, scripted, &sc, &q), CQ_OK);
	assert_true(q.complete);
	assert_int_equal(sc.round, 4);
	assert_false(q.durable);
	assert_false(sc.durable_seen[1]);	/* the flag flipped */
	a = cqi_qargs_find(&q, "x-queue-type");
	assert_non_null(a);
	assert_string_equal(a->sval, "quorum");
	a = cqi_qargs_find(&q, "x-delivery-limit");
	assert_non_null(a);
	assert_int_equal(a->ival, 5);
	assert_int_equal(sc.nargs_seen[3], 2);
	cqi_qargs_clear(&q);

	/* the types are tried in turn; the limit's value is out of reach */
	sc = (struct script){ .replies = cut };
	assert_int_equal(cqi_qargs_probe(ctx, scripted, &sc, &q), CQ_OK);
	assert_false(q.complete);
	assert_string_equal(q.cut, "x-delivery-limit");
	a = cqi_qargs_find(&q, "x-queue-type");
	assert_non_null(a);
	assert_string_equal(a->sval, "quorum");
	assert_int_equal(ctx->err, CQ_OK);
	cqi_qargs_clear(&q);
	cq_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tail_lines),
		cmocka_unit_test(test_tail_bytes),
		cmocka_unit_test(test_inequivalent),
		cmocka_unit_test(test_qargs_probe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
