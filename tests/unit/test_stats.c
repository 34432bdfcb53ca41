/* Unit tests for the stats module: INFO parsing, interval figures, the
 * JSON / Prometheus / text forms. */
#include <math.h>
#include <regex.h>
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

static const char info_text[] =
	"# Server\r\n"
	"redis_version:7.0.15\r\n"
	"run_id:7c428616764d0c8b6d920720144366d06799c054\r\n"
	"uptime_in_seconds:100\r\n"
	"\r\n"
	"# Memory\r\n"
	"used_memory:1048576\r\n"
	"used_memory_human:1.00M\r\n"
	"maxmemory:2097152\r\n"
	"\r\n"
	"# Stats\r\n"
	"total_commands_processed:5000\r\n"
	"expired_keys:30\r\n"
	"evicted_keys:20\r\n"
	"keyspace_hits:300\r\n"
	"keyspace_misses:100\r\n"
	"\r\n"
	"# Keyspace\r\n"
	"db0:keys=10,expires=4,avg_ttl=1000\r\n"
	"db3:keys=5,expires=5,avg_ttl=0\r\n";

static struct cq_redis_info parse_ok(const char *text)
{
	struct cq_redis_info in;
	char err[200] = "";

	if (!cqi_redis_info_parse(text, strlen(text), &in, err, sizeof(err)))
		fail_msg("refused: %s", err);
	return in;
}

static void test_info_parse(void **state)
{
	struct cq_redis_info in = parse_ok(info_text);

	(void)state;
	assert_string_equal(in.run_id, "7c428616764d0c8b6d920720144366d06799c054");
	assert_int_equal(in.uptime_s, 100);
	assert_int_equal(in.hits, 300);
	assert_int_equal(in.misses, 100);
	assert_int_equal(in.commands, 5000);
	assert_int_equal(in.used_memory, 1048576);
	assert_int_equal(in.maxmemory, 2097152);
	assert_int_equal(in.evicted, 20);
	assert_int_equal(in.expired, 30);
	assert_int_equal(in.keys, 15);
	assert_int_equal(in.expires, 9);
	assert_int_equal(in.ndb, 2);
	assert_int_equal(in.db[1].db, 3);
	assert_int_equal(in.db[1].keys, 5);
	/* LF line ends, no trailing newline, unknown fields: all fine */
	in = parse_ok("keyspace_hits:1\nkeyspace_misses:2\nfoo:bar\n"
		      "total_commands_processed:3\nused_memory:4");
	assert_int_equal(in.misses, 2);
	assert_int_equal(in.used_memory, 4);
	assert_int_equal(in.ndb, 0);
}

static void test_info_bad(void **state)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "", "no keyspace_hits" },
		{ "keyspace_hits:1\r\nkeyspace_misses:2\r\nused_memory:4\r\n",
		  "no total_commands_processed" },
		{ "keyspace_hits:x\r\n", "bad value for keyspace_hits" },
		{ "keyspace_hits:-1\r\n", "bad value for keyspace_hits" },
		{ "keyspace_hits:\r\n", "bad value for keyspace_hits" },
		{ "keyspace_hits:99999999999999999999999\r\n", "bad value" },
		{ "keyspace_hits:18446744073709551616\r\n", "bad value" },
		{ "keyspace_hits:1 \r\n", "bad value" },
		{ "db0:keys=x,expires=1\r\n", "bad keyspace line for db0" },
		{ "db0:keys=1\r\n", "bad keyspace line" },
		{ "db0:keys=1,expires=2\r\n", "bad keyspace line" },
		{ "db0:garbage\r\n", "bad keyspace line" },
	};
	struct cq_redis_info in;
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (cqi_redis_info_parse(bad[i].text, strlen(bad[i].text), &in, err,
					sizeof(err)))
			fail_msg("accepted '%s'", bad[i].text);
		if (!strstr(err, bad[i].msg))
			fail_msg("'%s': '%s' lacks '%s'", bad[i].text, err, bad[i].msg);
	}
	/* the largest counter still parses; a NUL inside is just a byte */
	in = parse_ok("keyspace_hits:18446744073709551615\nkeyspace_misses:0\n"
		      "total_commands_processed:0\nused_memory:0\n");
	assert_true(in.hits == 18446744073709551615ULL);
	assert_false(cqi_redis_info_parse("keyspace_hits:1\0" "2", 16, &in, err,
					 sizeof(err)));
}

static struct cq_cache_sample sample_of(const char *text, long long at_ms)
{
	struct cq_cache_sample s = { 0 };

	s.info = parse_ok(text);
	s.at_ms = at_ms;
	return s;
}

static void test_figures_since_start(void **state)
{
	struct cq_cache_sample s = sample_of(info_text, 0);
	struct cq_metrics ms;

	(void)state;
	cq_metrics_init(&ms);
	assert_true(cq_cache_figures(NULL, &s, &ms));
	assert_true(fabs(cq_metrics_get(&ms, "hit_rate", NULL) - 0.75) < 1e-9);
	assert_true(fabs(cq_metrics_get(&ms, "hit_rate_total", NULL) - 0.75) < 1e-9);
	assert_true(cq_metrics_get(&ms, "ops", NULL) == 50);	/* 5000/100s */
	assert_true(fabs(cq_metrics_get(&ms, "evicted", NULL) - 0.2) < 1e-9);
	assert_true(fabs(cq_metrics_get(&ms, "expired", NULL) - 0.3) < 1e-9);
	assert_true(cq_metrics_get(&ms, "keys", NULL) == 15);
	assert_true(cq_metrics_get(&ms, "keys_no_ttl", NULL) == 6);
	assert_true(cq_metrics_get(&ms, "db_keys_no_ttl", "0") == 6);
	assert_true(cq_metrics_get(&ms, "db_keys_no_ttl", "3") == 0);
	assert_true(cq_metrics_get(&ms, "maxmemory", NULL) == 2097152);
	assert_true(isnan(cq_metrics_get(&ms, "nosuch", NULL)));
	cq_metrics_clear(&ms);
}

static void test_figures_interval(void **state)
{
	struct cq_cache_sample a = sample_of(info_text, 1000);
	struct cq_cache_sample b = sample_of(
		"run_id:7c428616764d0c8b6d920720144366d06799c054\n"
		"uptime_in_seconds:102\nkeyspace_hits:303\nkeyspace_misses:101\n"
		"total_commands_processed:5200\nused_memory:1\n"
		"evicted_keys:28\nexpired_keys:30\n", 3000);
	struct cq_cache_sample c = b;
	struct cq_metrics ms;

	(void)state;
	cq_metrics_init(&ms);
	/* 3 hits and 1 miss in 2 s */
	assert_true(cq_cache_figures(&a, &b, &ms));
	assert_true(ms.interval_s == 2);
	assert_true(fabs(cq_metrics_get(&ms, "hit_rate", NULL) - 0.75) < 1e-9);
	assert_true(cq_metrics_get(&ms, "hits", NULL) == 3);
	assert_true(cq_metrics_get(&ms, "misses", NULL) == 1);
	assert_true(cq_metrics_get(&ms, "ops", NULL) == 100);
	assert_true(cq_metrics_get(&ms, "evicted", NULL) == 4);
	assert_true(cq_metrics_get(&ms, "evicted_keys", NULL) == 8);
	assert_true(cq_metrics_get(&ms, "expired", NULL) == 0);
	assert_true(fabs(cq_metrics_get(&ms, "hit_rate_total", NULL) - 303.0 / 404) < 1e-9);
	cq_metrics_clear(&ms);

	/* no lookups in the interval: the rate is unknown, not 0 or 1 */
	cq_metrics_init(&ms);
	assert_true(cq_cache_figures(&b, &c, &ms));
	assert_true(isnan(cq_metrics_get(&ms, "hit_rate", NULL)));
	cq_metrics_clear(&ms);

	/* a restart in between (new run_id): figures since the new start */
	strcpy(c.info.run_id, "other");
	c.info.uptime_s = 4;
	c.info.hits = 1;
	c.info.misses = 3;
	c.info.commands = 8;
	cq_metrics_init(&ms);
	assert_true(cq_cache_figures(&b, &c, &ms));
	assert_true(ms.interval_s == 0);	/* since the restart */
	assert_true(fabs(cq_metrics_get(&ms, "hit_rate", NULL) - 0.25) < 1e-9);
	assert_true(cq_metrics_get(&ms, "ops", NULL) == 2);
	cq_metrics_clear(&ms);
}

static void test_figures_track(void **state)
{
	struct cq_cache_sample a = sample_of(info_text, 0);
	struct cq_cache_sample b = sample_of(info_text, 1000);
	struct cq_track ta[] = { { "app:", 4, 10, 10 } };
	struct cq_track tb[] = { { "app:", 4, 13, 11 }, { "new\n", 4, 1, 0 } };
	struct cq_metrics ms;

	(void)state;
	a.track = ta;
	a.ntrack = 1;
	a.tracked = true;
	a.track_existed = true;
	b.track = tb;
	b.ntrack = 2;
	/* our own HGETALL of the hash (a hit) is taken out */
	b.info.hits += 4;
	b.info.misses += 1;
	cq_metrics_init(&ms);
	assert_true(cq_cache_figures(&a, &b, &ms));
	assert_true(cq_metrics_get(&ms, "hits", NULL) == 3);
	assert_true(cq_metrics_get(&ms, "misses", NULL) == 1);
	assert_true(fabs(cq_metrics_get(&ms, "prefix_hit_rate", "app:") - 0.75) < 1e-9);
	assert_true(cq_metrics_get(&ms, "prefix_hits_total", "app:") == 13);
	assert_true(cq_metrics_get(&ms, "prefix_hit_rate", "new\n") == 1);
	cq_metrics_clear(&ms);
}

/* Every line of a Prometheus exposition, checked strictly. */
static void check_prom(const char *text)
{
	regex_t help, type, sample;
	const char *p = text;
	char line[1024];

	assert_int_equal(regcomp(&help, "^# HELP cq_[a-z_]+ [^\n]+$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&type, "^# TYPE cq_[a-z_]+ (gauge|counter)$", REG_EXTENDED), 0);
	assert_int_equal(regcomp(&sample,
				 "^cq_[a-z_]+(\\{[a-z_]+=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\"\\})? "
				 "-?[0-9]+(\\.[0-9]+)?(e[-+][0-9]+)?$", REG_EXTENDED), 0);
	while (*p) {
		size_t n = strcspn(p, "\n");

		assert_true(n < sizeof(line));
		memcpy(line, p, n);
		line[n] = '\0';
		if (regexec(&help, line, 0, NULL, 0) && regexec(&type, line, 0, NULL, 0) &&
		    regexec(&sample, line, 0, NULL, 0))
			fail_msg("bad exposition line '%s'", line);
		p += n;
		assert_int_equal(*p, '\n');
		p++;
	}
	regfree(&help);
	regfree(&type);
	regfree(&sample);
}

static void test_outputs(void **state)
{
	struct cq_cache_sample s = sample_of(info_text, 0);
	struct cq_track t[] = { { "we\"ird\\\n:", 9, 1, 3 } };
	struct cq_metrics ms;
	struct cq_buf b = { 0 };
	char *json;

	(void)state;
	s.track = t;
	s.ntrack = 1;
	cq_metrics_init(&ms);
	ms.src[CQ_SRC_REDIS].used = ms.src[CQ_SRC_REDIS].up = true;
	ms.src[CQ_SRC_AMQP].used = true;
	strcpy(ms.src[CQ_SRC_AMQP].errstr, "cannot connect to RabbitMQ");
	assert_true(cq_cache_figures(NULL, &s, &ms));
	assert_true(cqi_metrics_add_queue(&ms, "jobs", NULL, false) == 0);
	assert_true(cqi_metrics_add(&ms, "ready", "jobs", 4, NAN));
	/* a list queue missing from a Redis that answered */
	assert_true(cqi_metrics_add_queue(&ms, "list:jobs", NULL, false) == 1);
	ms.queues[1].src = CQ_SRC_REDIS;
	ms.queues[1].backend = "list";

	assert_true(cq_metrics_prom(&ms, &b));
	check_prom(b.data);
	assert_non_null(strstr(b.data, "cq_up{server=\"redis\"} 1\n"));
	assert_non_null(strstr(b.data, "cq_up{server=\"amqp\"} 0\n"));
	assert_non_null(strstr(b.data, "cq_hit_ratio 0.75\n"));
	assert_non_null(strstr(b.data, "cq_db_keys{db=\"3\"} 5\n"));
	assert_non_null(strstr(b.data, "cq_prefix_misses_total{prefix=\"we\\\"ird\\\\\\n:\"} 3\n"));
	assert_non_null(strstr(b.data, "# TYPE cq_keyspace_hits_total counter\n"));
	/* an unknown value is left out, not written as NaN */
	assert_null(strstr(b.data, "cq_queue_ready_messages"));
	assert_null(strstr(b.data, "NaN"));
	cq_buf_free(&b);

	json = cq_metrics_json(&ms);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"hit_rate\":0.75,"));
	assert_non_null(strstr(json, "\"dbs\":[{\"db\":0,\"keys\":10,\"keys_no_ttl\":6},{\"db\":3,"));
	assert_non_null(strstr(json, "\"prefixes\":[{\"prefix\":\"we\\\"ird\\\\\\n:\",\"hit_rate\":0.25,"));
	assert_non_null(strstr(json, "\"amqp\":{\"up\":false,\"error\":\"cannot connect to RabbitMQ\"}"));
	/* RabbitMQ down: whether the queue exists is unknown, not false */
	assert_non_null(strstr(json, "{\"queue\":\"jobs\",\"found\":null,\"backend\":\"amqp\",\"dlq_queue\":null,\"ready\":null}"));
	assert_non_null(strstr(json, "{\"queue\":\"list:jobs\",\"found\":false,\"backend\":\"list\",\"dlq_queue\":null}"));
	free(json);

	assert_true(cq_metrics_text(&ms, &b));
	assert_non_null(strstr(b.data, "amqp\tdown: cannot connect to RabbitMQ\n"));
	assert_non_null(strstr(b.data, "\nhit_rate\t0.7500\n"));
	assert_non_null(strstr(b.data, "\nprefix_hits[we\"ird\\\\\\n:]\t1\n"));
	assert_non_null(strstr(b.data, "\nready[jobs]\t-\n"));
	cq_buf_free(&b);
	cq_metrics_clear(&ms);
	/* an unknown metric name is refused */
	assert_false(cqi_metrics_add(&ms, "nosuch", NULL, 0, 1));
}

static void test_utf8_seq(void **state)
{
	static const struct {
		const char *s;
		size_t n, len;
	} cases[] = {
		{ "a", 1, 1 }, { "\xc3\xa9", 2, 2 }, { "\xe2\x82\xac", 3, 3 },
		{ "\xf0\x9f\x98\x80", 4, 4 }, { "\xff", 1, 0 }, { "\x80", 1, 0 },
		{ "\xe2\x82", 2, 0 },		/* cut short */
		{ "\xc0\xaf", 2, 0 },		/* overlong '/' */
		{ "\xe0\x80\xaf", 3, 0 },	/* overlong '/' */
		{ "\xed\xa0\x80", 3, 0 },	/* a surrogate */
		{ "\xf4\x90\x80\x80", 4, 0 },	/* past U+10FFFF */
		{ "\xc3(", 2, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (cq_utf8_seq(cases[i].s, cases[i].n) != cases[i].len)
			fail_msg("case %zu: %zu, want %zu", i,
				 cq_utf8_seq(cases[i].s, cases[i].n), cases[i].len);
}

/* A label with any byte comes out as valid UTF-8: escapes, valid
 * sequences kept, stray bytes as the text \xFF (its backslash escaped). */
static void test_prom_utf8(void **state)
{
	static const char weird[] = "q\"b\\n\nx\xff\xc3\xa9\xe2\x82|\xed\xa0\x80";
	struct cq_metrics ms;
	struct cq_buf b = { 0 };
	char *json;

	(void)state;
	cq_metrics_init(&ms);
	ms.src[CQ_SRC_AMQP].used = true;
	strcpy(ms.src[CQ_SRC_AMQP].errstr, "queue 'a\xff" "b': FRAME_ERROR");
	assert_true(cqi_metrics_add(&ms, "prefix_hits_total", weird, sizeof(weird) - 1, 2));
	assert_true(cq_metrics_prom(&ms, &b));
	check_prom(b.data);
	assert_non_null(strstr(b.data, "cq_prefix_hits_total{prefix=\"q\\\"b\\\\n\\nx"
				 "\\\\xFF\xc3\xa9\\\\xE2\\\\x82|\\\\xED\\\\xA0\\\\x80\"} 2\n"));
	for (size_t i = 0; i < b.len; i += cq_utf8_seq(b.data + i, b.len - i))
		if (!cq_utf8_seq(b.data + i, b.len - i))
			fail_msg("not UTF-8 at %zu: %s", i, b.data);
	cq_buf_free(&b);
	/* a message quoting such a name is still given, as text */
	json = cq_metrics_json(&ms);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"amqp\":{\"up\":false,\"error\":\"queue 'a\\\\xFFb': FRAME_ERROR\"}"));
	free(json);
	cq_metrics_clear(&ms);
}

static void test_human(void **state)
{
	static const struct {
		double v;
		enum cq_metric_fmt fmt;
		const char *out;
	} cases[] = {
		{ 0.934, CQ_FMT_RATIO, "0.93" }, { NAN, CQ_FMT_RATIO, "-" },
		{ 9999, CQ_FMT_COUNT, "9999" }, { 12345, CQ_FMT_COUNT, "12.3k" },
		{ 1048576, CQ_FMT_BYTES, "1024K" }, { 2.5 * 1048576, CQ_FMT_BYTES, "2560K" }, { 25 * 1048576.0, CQ_FMT_BYTES, "25.0M" },
		{ 0.5, CQ_FMT_RATE, "0.5" }, { 150, CQ_FMT_RATE, "150" },
		{ 1e18, CQ_FMT_COUNT, "1000P" },
	};
	char buf[16];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cq_metric_human(cases[i].v, cases[i].fmt, buf, sizeof(buf));
		if (strcmp(buf, cases[i].out))
			fail_msg("%g: '%s', want '%s'", cases[i].v, buf, cases[i].out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_info_parse),
		cmocka_unit_test(test_info_bad),
		cmocka_unit_test(test_figures_since_start),
		cmocka_unit_test(test_figures_interval),
		cmocka_unit_test(test_figures_track),
		cmocka_unit_test(test_outputs),
		cmocka_unit_test(test_utf8_seq),
		cmocka_unit_test(test_prom_utf8),
		cmocka_unit_test(test_human),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
