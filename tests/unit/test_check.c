/* Unit tests for --check: the expression parser and the evaluation. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cq.h"
#include "internal.h"

static void test_parse_good(void **state)
{
	static const struct {
		const char *in;
		const char *metric, *label;
		enum cq_check_op op;
		double thr;
		enum cq_check_state level;
	} good[] = {
		{ "hit_rate<0.8:warn", "hit_rate", NULL, CQ_OP_LT, 0.8, CQ_STATE_WARN },
		{ "dlq>0:crit", "dlq", NULL, CQ_OP_GT, 0, CQ_STATE_CRIT },
		{ "dlq>0", "dlq", NULL, CQ_OP_GT, 0, CQ_STATE_CRIT },
		{ "ready>10000:warn", "ready", NULL, CQ_OP_GT, 10000, CQ_STATE_WARN },
		{ "ready[jobs]>=5:critical", "ready", "jobs", CQ_OP_GE, 5, CQ_STATE_CRIT },
		{ "ready[a b.c]<=5", "ready", "a b.c", CQ_OP_LE, 5, CQ_STATE_CRIT },
		{ " consumers == 0 : WARNING ", "consumers", NULL, CQ_OP_EQ, 0, CQ_STATE_WARN },
		{ "consumers=0", "consumers", NULL, CQ_OP_EQ, 0, CQ_STATE_CRIT },
		{ "consumers!=2", "consumers", NULL, CQ_OP_NE, 2, CQ_STATE_CRIT },
		{ "hit_rate<80%:warn", "hit_rate", NULL, CQ_OP_LT, 0.8, CQ_STATE_WARN },
		{ "ops>-1", "ops", NULL, CQ_OP_GT, -1, CQ_STATE_CRIT },
		{ "used_memory>.5", "used_memory", NULL, CQ_OP_GT, 0.5, CQ_STATE_CRIT },
		{ "prefix_hit_rate[app:v2:]<0.5:warn", "prefix_hit_rate", "app:v2:",
		  CQ_OP_LT, 0.5, CQ_STATE_WARN },
	};
	struct cq_check c;
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		if (!cq_check_parse(good[i].in, &c, err, sizeof(err)))
			fail_msg("'%s' refused: %s", good[i].in, err);
		assert_string_equal(c.metric, good[i].metric);
		assert_int_equal(c.has_label, good[i].label != NULL);
		if (good[i].label)
			assert_string_equal(c.label, good[i].label);
		assert_int_equal(c.op, good[i].op);
		assert_true(fabs(c.threshold - good[i].thr) < 1e-12);
		assert_int_equal(c.level, good[i].level);
	}
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *in;
		const char *msg;	/* part of the message */
	} bad[] = {
		{ "", "missing metric" },
		{ "<5", "missing metric" },
		{ "nosuch>1", "unknown metric 'nosuch'" },
		{ "hit_rate", "missing comparison" },
		{ "hit_rate<", "missing number" },
		{ "hit_rate<x", "missing number" },
		{ "hit_rate<0.8:", "bad level" },
		{ "hit_rate<0.8:urgent", "bad level 'urgent'" },
		{ "hit_rate<0.8:warn:crit", "unexpected" },
		{ "hit_rate<0.8 x", "unexpected" },
		{ "hit_rate<1e3", "bad number '1e3'" },
		{ "hit_rate<0x10", "bad number '0x10'" },
		{ "hit_rate<inf", "missing number" },
		{ "hit_rate<1..2", "bad number" },
		{ "hit_rate<<1", "missing number" },
		{ "ready[jobs>1", "missing ']'" },
		{ "ready[]>1", "empty label" },
		{ "hit_rate[x]>1", "has no label" },
		{ "HIT_RATE<1", "missing metric" },
		{ "hit_rate<1%%", "unexpected" },
		{ "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij<1",
		  "too long" },
	};
	struct cq_check c;
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (cq_check_parse(bad[i].in, &c, err, sizeof(err)))
			fail_msg("'%s' accepted", bad[i].in);
		if (!strstr(err, bad[i].msg))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, err,
				 bad[i].msg);
	}
	assert_false(cq_check_parse(NULL, &c, err, sizeof(err)));
	/* out of range for a double */
	{
		char big[600] = "hit_rate<";

		memset(big + 9, '9', 500);
		big[509] = '\0';
		assert_false(cq_check_parse(big, &c, err, sizeof(err)));
		assert_non_null(strstr(err, "bad number"));
	}
	/* a tiny error buffer is never overrun */
	assert_false(cq_check_parse("nosuch>1", &c, err, 4));
	assert_true(strlen(err) < 4);
}

/* A sample: Redis up with hit_rate h, queue "jobs" with ready r, dlq d. */
static void sample(struct cq_metrics *ms, double h, double r, double d,
		   bool redis_up)
{
	cq_metrics_init(ms);
	ms->src[CQ_SRC_REDIS].used = true;
	ms->src[CQ_SRC_REDIS].up = redis_up;
	if (!redis_up)
		strcpy(ms->src[CQ_SRC_REDIS].errstr, "cannot connect to Redis at 127.0.0.1:1");
	ms->src[CQ_SRC_AMQP].used = true;
	ms->src[CQ_SRC_AMQP].up = true;
	assert_true(cqi_metrics_add(ms, "hit_rate", NULL, 0, redis_up ? h : NAN));
	assert_true(cqi_metrics_add_queue(ms, "jobs", "jobs.dlq", true) == 0);
	assert_true(cqi_metrics_add(ms, "ready", "jobs", 4, r));
	assert_true(cqi_metrics_add(ms, "dlq", "jobs", 4, d));
}

static enum cq_check_state eval(const char *const *exprs, size_t n,
				const struct cq_metrics *ms, char *line,
				size_t len)
{
	struct cq_check c[8];
	struct cq_buf b = { 0 };
	enum cq_check_state st;
	char err[200];

	for (size_t i = 0; i < n; i++)
		assert_true(cq_check_parse(exprs[i], &c[i], err, sizeof(err)));
	assert_true(cq_checks_eval(c, n, ms, &st, &b));
	snprintf(line, len, "%s", b.data);
	cq_buf_free(&b);
	return st;
}

static void test_eval_levels(void **state)
{
	static const char *const ex[] = { "hit_rate<0.8:warn", "dlq>0:crit" };
	struct cq_metrics ms;
	char line[512];

	(void)state;
	sample(&ms, 0.93, 5, 0, true);
	assert_int_equal(eval(ex, 2, &ms, line, sizeof(line)), CQ_STATE_OK);
	assert_string_equal(line, "CQ OK - hit_rate=0.93 dlq=0");
	cq_metrics_clear(&ms);

	sample(&ms, 0.75, 5, 0, true);
	assert_int_equal(eval(ex, 2, &ms, line, sizeof(line)), CQ_STATE_WARN);
	assert_string_equal(line, "CQ WARNING - hit_rate=0.75 (<0.8) dlq=0");
	cq_metrics_clear(&ms);

	sample(&ms, 0.75, 5, 2, true);
	assert_int_equal(eval(ex, 2, &ms, line, sizeof(line)), CQ_STATE_CRIT);
	assert_string_equal(line, "CQ CRITICAL - hit_rate=0.75 (<0.8) dlq=2 (>0)");
	cq_metrics_clear(&ms);

	/* Redis down: its figure is unknown, and the line says why */
	sample(&ms, 0, 5, 0, false);
	assert_int_equal(eval(ex, 2, &ms, line, sizeof(line)), CQ_STATE_UNKNOWN);
	assert_string_equal(line, "CQ UNKNOWN - hit_rate unknown: cannot connect to Redis at 127.0.0.1:1 dlq=0");
	cq_metrics_clear(&ms);

	/* CRITICAL outranks UNKNOWN */
	sample(&ms, 0, 5, 3, false);
	assert_int_equal(eval(ex, 2, &ms, line, sizeof(line)), CQ_STATE_CRIT);
	cq_metrics_clear(&ms);
}

static void test_eval_labels_and_twins(void **state)
{
	static const char *const twins[] = { "ready>10:warn", "ready>100:crit" };
	static const char *const sel[] = { "ready[jobs]>10", "ready[other]>1" };
	struct cq_metrics ms;
	char line[512];

	(void)state;
	/* one figure checked twice shows once, at its worst */
	sample(&ms, 0.9, 50, 0, true);
	assert_int_equal(eval(twins, 2, &ms, line, sizeof(line)), CQ_STATE_WARN);
	assert_string_equal(line, "CQ WARNING - ready=50 (>10)");
	cq_metrics_clear(&ms);
	sample(&ms, 0.9, 500, 0, true);
	assert_int_equal(eval(twins, 2, &ms, line, sizeof(line)), CQ_STATE_CRIT);
	assert_string_equal(line, "CQ CRITICAL - ready=500 (>100)");
	cq_metrics_clear(&ms);

	/* a label that matches nothing is UNKNOWN */
	sample(&ms, 0.9, 5, 0, true);
	assert_int_equal(eval(sel, 2, &ms, line, sizeof(line)), CQ_STATE_UNKNOWN);
	assert_string_equal(line, "CQ UNKNOWN - ready[other] unknown: no such queue ready[jobs]=5");
	cq_metrics_clear(&ms);

	/* several queues: each is named, the worst decides */
	sample(&ms, 0.9, 5, 0, true);
	assert_true(cqi_metrics_add_queue(&ms, "b", NULL, true) == 1);
	assert_true(cqi_metrics_add(&ms, "ready", "b", 1, 20));
	assert_int_equal(eval(twins, 1, &ms, line, sizeof(line)), CQ_STATE_WARN);
	assert_string_equal(line, "CQ WARNING - ready[b]=20 (>10) ready[jobs]=5");
	cq_metrics_clear(&ms);
}

/* up has a value per server the sample used, from ms->src */
static void test_eval_up(void **state)
{
	static const char *const any[] = { "up<1" };
	static const char *const amqp[] = { "up[amqp]<1:crit" };
	static const char *const redis[] = { "up[redis]<1" };
	static const char *const api[] = { "up[api]<1" };
	struct cq_metrics ms;
	char line[512];

	(void)state;
	sample(&ms, 0.9, 5, 0, true);
	assert_int_equal(eval(any, 1, &ms, line, sizeof(line)), CQ_STATE_OK);
	assert_string_equal(line, "CQ OK - up[redis]=1 up[amqp]=1");
	assert_int_equal(eval(redis, 1, &ms, line, sizeof(line)), CQ_STATE_OK);
	assert_string_equal(line, "CQ OK - up[redis]=1");
	/* a server the sample did not use has no up */
	assert_int_equal(eval(api, 1, &ms, line, sizeof(line)), CQ_STATE_UNKNOWN);
	assert_string_equal(line, "CQ UNKNOWN - up[api] unknown: no such server");
	ms.src[CQ_SRC_AMQP].up = false;
	assert_int_equal(eval(amqp, 1, &ms, line, sizeof(line)), CQ_STATE_CRIT);
	assert_string_equal(line, "CQ CRITICAL - up[amqp]=0 (<1)");
	assert_int_equal(eval(any, 1, &ms, line, sizeof(line)), CQ_STATE_CRIT);
	assert_string_equal(line, "CQ CRITICAL - up[amqp]=0 (<1) up[redis]=1");
	cq_metrics_clear(&ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_eval_levels),
		cmocka_unit_test(test_eval_labels_and_twins),
		cmocka_unit_test(test_eval_up),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
