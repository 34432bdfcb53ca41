/* Unit tests for the parsers: durations, sizes, numbers, jitter, URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cq.h"
#include "internal.h"

static void test_durations(void **state)
{
	static const struct {
		const char *in;
		long long ms;
	} good[] = {
		{ "250ms", 250 }, { "30s", 30000 }, { "5m", 300000 },
		{ "2h", 7200000 }, { "1d", 86400000 }, { "10", 10000 },
		{ "1.5", 1500 }, { "0", 0 }, { "0.5s", 500 }, { "1.5m", 90000 },
	};
	static const char *bad[] = {
		"", "s", "5x", "-1", "+5", " 5", "5 ", "1e3", "0x10", "5sec",
		"5ms5", ".5", "nan", "inf", "99999999999999999999d", "5M",
	};
	long long ms;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_true(cq_parse_duration(good[i].in, &ms));
		assert_int_equal(ms, good[i].ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(cq_parse_duration(bad[i], &ms));
	assert_false(cq_parse_duration(NULL, &ms));
}

static void test_sizes(void **state)
{
	unsigned long long b;

	(void)state;
	assert_true(cq_parse_size("512", &b));
	assert_int_equal(b, 512);
	assert_true(cq_parse_size("64k", &b));
	assert_int_equal(b, 65536);
	assert_true(cq_parse_size("64M", &b));
	assert_int_equal(b, 64ULL << 20);
	assert_true(cq_parse_size("1GiB", &b));
	assert_int_equal(b, 1ULL << 30);
	assert_true(cq_parse_size("2KB", &b));
	assert_int_equal(b, 2048);
	assert_true(cq_parse_size("1.5k", &b));
	assert_int_equal(b, 1536);
	assert_false(cq_parse_size("", &b));
	assert_false(cq_parse_size("k", &b));
	assert_false(cq_parse_size("-1", &b));
	assert_false(cq_parse_size("5X", &b));
	assert_false(cq_parse_size("5kk", &b));
	assert_false(cq_parse_size("99999999T", &b));
}

static void test_uint_and_jitter(void **state)
{
	unsigned long long v;
	long long ms;
	double pct;

	(void)state;
	assert_true(cq_parse_uint("42", 1, 100, &v));
	assert_int_equal(v, 42);
	assert_false(cq_parse_uint("0", 1, 100, &v));
	assert_false(cq_parse_uint("101", 1, 100, &v));
	assert_false(cq_parse_uint("-1", 0, 100, &v));
	assert_false(cq_parse_uint("4x", 0, 100, &v));
	assert_false(cq_parse_uint("99999999999999999999999", 0, UINT64_MAX, &v));
	assert_true(cq_parse_jitter("10%", &ms, &pct));
	assert_true(pct == 10.0 && ms == 0);
	assert_true(cq_parse_jitter("30s", &ms, &pct));
	assert_true(pct == 0 && ms == 30000);
	assert_false(cq_parse_jitter("101%", &ms, &pct));
	assert_false(cq_parse_jitter("%", &ms, &pct));
	assert_false(cq_parse_jitter("x%", &ms, &pct));
}

static void test_redis_urls(void **state)
{
	struct cqi_redis_url u;
	char err[200];

	(void)state;
	assert_int_equal(cqi_redis_url_parse("redis://127.0.0.1:6380/2", &u, err, sizeof(err)), CQ_OK);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 2);
	assert_null(u.user);
	assert_null(u.pass);
	assert_false(u.tls);
	cqi_redis_url_clear(&u);

	assert_int_equal(cqi_redis_url_parse("rediss://u:p@cache.example:6380/1", &u, err, sizeof(err)), CQ_OK);
	assert_true(u.tls);
	assert_string_equal(u.host, "cache.example");
	assert_int_equal(u.port, 6380);
	assert_int_equal(u.db, 1);
	assert_string_equal(u.pass, "p");
	cqi_redis_url_clear(&u);

	assert_int_equal(cqi_redis_url_parse("redis://app:p%40ss%3Aw@cache.local", &u, err, sizeof(err)), CQ_OK);
	assert_string_equal(u.user, "app");
	assert_string_equal(u.pass, "p@ss:w");
	assert_string_equal(u.host, "cache.local");
	assert_int_equal(u.port, 6379);
	assert_int_equal(u.db, 0);
	cqi_redis_url_clear(&u);

	assert_int_equal(cqi_redis_url_parse("redis://:secret@[::1]:7000/3", &u, err, sizeof(err)), CQ_OK);
	assert_null(u.user);
	assert_string_equal(u.pass, "secret");
	assert_string_equal(u.host, "::1");
	assert_int_equal(u.port, 7000);
	assert_int_equal(u.db, 3);
	cqi_redis_url_clear(&u);

	/* a list of nodes: seeds of a cluster, fallbacks of a single Redis */
	assert_int_equal(cqi_redis_url_parse("redis://u:p,w@h1:7000,[::1],h3:7002/0", &u, err, sizeof(err)), CQ_OK);
	assert_string_equal(u.pass, "p,w");
	assert_string_equal(u.host, "h1");
	assert_int_equal(u.port, 7000);
	assert_int_equal(u.nnodes, 3);
	assert_string_equal(u.nodes[1].host, "::1");
	assert_int_equal(u.nodes[1].port, 6379);
	assert_string_equal(u.nodes[2].host, "h3");
	assert_int_equal(u.nodes[2].port, 7002);
	cqi_redis_url_clear(&u);

	assert_int_equal(cqi_redis_url_parse("unix:///run/redis/redis.sock?db=4", &u, err, sizeof(err)), CQ_OK);
	assert_string_equal(u.path, "/run/redis/redis.sock");
	assert_null(u.host);
	assert_int_equal(u.db, 4);
	cqi_redis_url_clear(&u);

	static const char *bad[] = {
		"", "127.0.0.1:6379", "http://x", "redis://", "redis://h:0",
		"redis://h:65536", "redis://h:x", "redis://h/x", "redis://[::1",
		"redis://h1:7000,/0", "redis://h1:7000,,h2/0", "redis://h1,h2:x/0",
		"redis://[::1]x", "unix://", "unix:///", "unix://host/sock",
		"redis://h/1?", "redis://a%zz@h", "redis://h:6379/-1",
		"rediss://", "redisss://h", "unixs:///x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		enum cq_err e = cqi_redis_url_parse(bad[i], &u, err, sizeof(err));

		if (strcmp(bad[i], "redis://h/1?") == 0) {
			/* an empty query is harmless */
			assert_int_equal(e, CQ_OK);
			cqi_redis_url_clear(&u);
			continue;
		}
		assert_int_equal(e, CQ_ERR_USAGE);
		assert_true(err[0] != '\0');
	}
}

static void test_sentinel_urls(void **state)
{
	struct cqi_sentinel_url u;
	char err[200];

	(void)state;
	assert_int_equal(cqi_sentinel_url_parse("redis-sentinel://u:p,w@s1,s2:26380,[::1]:7/3#my%20master",
						&u, err, sizeof(err)), CQ_OK);
	assert_int_equal(u.n, 3);
	assert_string_equal(u.hosts[0], "s1");
	assert_int_equal(u.ports[0], 26379);
	assert_string_equal(u.hosts[1], "s2");
	assert_int_equal(u.ports[1], 26380);
	assert_string_equal(u.hosts[2], "::1");
	assert_int_equal(u.ports[2], 7);
	assert_string_equal(u.user, "u");
	assert_string_equal(u.pass, "p,w");
	assert_int_equal(u.db, 3);
	assert_string_equal(u.master, "my master");
	cqi_sentinel_url_clear(&u);

	assert_int_equal(cqi_sentinel_url_parse("REDIS-SENTINEL://h#m", &u, err,
						sizeof(err)), CQ_OK);
	assert_int_equal(u.n, 1);
	assert_null(u.user);
	assert_null(u.pass);
	assert_int_equal(u.db, 0);
	cqi_sentinel_url_clear(&u);
	assert_true(cqi_is_sentinel_url("redis-sentinel://h#m"));
	assert_false(cqi_is_sentinel_url("redis://h"));

	static const char *bad[] = {
		"redis-sentinel://h", "redis-sentinel://h#", "redis-sentinel://#m",
		"redis-sentinel://h,#m", "redis-sentinel://,h#m",
		"redis-sentinel://h:0#m", "redis-sentinel://h/x#m",
		"redis-sentinel://h?x=1#m", "redis-sentinel://h#%zz",
		"redis-sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q#m",
		"redis://h#m",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cqi_sentinel_url_parse(bad[i], &u, err,
							sizeof(err)), CQ_ERR_USAGE);
		assert_true(err[0] != '\0');
	}
}

static void test_amqp_urls(void **state)
{
	struct cqi_amqp_url u;
	struct cqi_redis_url r;
	char err[200];

	(void)state;
	assert_int_equal(cqi_amqp_url_parse("amqp://guest:guest@127.0.0.1:5673/%2f", &u, err, sizeof(err)), CQ_OK);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 5673);
	assert_string_equal(u.vhost, "/");
	assert_string_equal(u.user, "guest");
	assert_false(u.tls);
	cqi_amqp_url_clear(&u);

	assert_int_equal(cqi_amqp_url_parse("amqps://bob:s%2Fcret@mq.example/prod%2Fjobs", &u, err, sizeof(err)), CQ_OK);
	assert_true(u.tls);
	assert_int_equal(u.port, 5671);
	assert_string_equal(u.pass, "s/cret");
	assert_string_equal(u.vhost, "prod/jobs");
	cqi_amqp_url_clear(&u);

	assert_int_equal(cqi_amqp_url_parse("amqp://[::1]", &u, err, sizeof(err)), CQ_OK);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.user, "guest");
	assert_string_equal(u.pass, "guest");
	assert_string_equal(u.vhost, "/");
	cqi_amqp_url_clear(&u);

	assert_int_equal(cqi_amqp_url_parse("redis://x", &u, err, sizeof(err)), CQ_ERR_USAGE);
	assert_int_equal(cqi_amqp_url_parse("amqp://", &u, err, sizeof(err)), CQ_ERR_USAGE);
	assert_int_equal(cqi_amqp_url_parse("amqp://h:99999", &u, err, sizeof(err)), CQ_ERR_USAGE);
	assert_int_equal(cqi_amqp_url_parse("amqp://h/%", &u, err, sizeof(err)), CQ_ERR_USAGE);

	/* schemes are case-insensitive (RFC 3986) */
	assert_int_equal(cqi_redis_url_parse("Redis://h:7000/2", &r, err, sizeof(err)), CQ_OK);
	assert_int_equal(r.port, 7000);
	assert_int_equal(r.db, 2);
	cqi_redis_url_clear(&r);

	/* RabbitMQ's URI options: heartbeat and connection_timeout */
	assert_int_equal(cqi_amqp_url_parse("amqp://h", &u, err, sizeof(err)), CQ_OK);
	assert_int_equal(u.heartbeat_s, -1);
	assert_int_equal(u.connect_timeout_ms, -1);
	cqi_amqp_url_clear(&u);
	assert_int_equal(cqi_amqp_url_parse("AMQPS://h/v?heartbeat=5&connection_timeout=250", &u, err, sizeof(err)), CQ_OK);
	assert_true(u.tls);
	assert_string_equal(u.vhost, "v");
	assert_int_equal(u.heartbeat_s, 5);
	assert_int_equal(u.connect_timeout_ms, 250);
	cqi_amqp_url_clear(&u);
	assert_int_equal(cqi_amqp_url_parse("amqp://h?heartbeat=0", &u, err, sizeof(err)), CQ_OK);
	assert_int_equal(u.heartbeat_s, 0);
	assert_string_equal(u.vhost, "/");
	cqi_amqp_url_clear(&u);
	assert_int_equal(cqi_amqp_url_parse("amqp://h?heartbeat=x", &u, err, sizeof(err)), CQ_ERR_USAGE);
	assert_string_equal(err, "bad ?heartbeat= (want seconds, 0-65535)");
	assert_int_equal(cqi_amqp_url_parse("amqp://h?connection_timeout=0", &u, err, sizeof(err)), CQ_ERR_USAGE);
	assert_int_equal(cqi_amqp_url_parse("amqp://h?cacertfile=/ca.pem", &u, err, sizeof(err)), CQ_ERR_USAGE);
	assert_string_equal(err, "unsupported URL option 'cacertfile' (cq takes heartbeat and connection_timeout; TLS files come from --cacert, --cert and --key)");
	/* a vhost is one path segment: its '/' is written %2f */
	assert_int_equal(cqi_amqp_url_parse("amqp://h/a/b", &u, err, sizeof(err)), CQ_ERR_USAGE);
	assert_string_equal(err, "a '/' in the vhost must be written %2f");
}

static void test_redact(void **state)
{
	char buf[256];

	(void)state;
	cqi_url_redact("redis://app:hunter2@h:1/0", buf, sizeof(buf));
	assert_string_equal(buf, "redis://app:***@h:1/0");
	cqi_url_redact("amqp://u:p@a,amqp://v:q@b/x", buf, sizeof(buf));
	assert_string_equal(buf, "amqp://u:***@a,amqp://v:***@b/x");
	cqi_url_redact("redis://h:1", buf, sizeof(buf));
	assert_string_equal(buf, "redis://h:1");
	cqi_url_redact("garbage:pass@", buf, sizeof(buf));
	assert_string_equal(buf, "***@");	/* not a URL: hide the userinfo */
	cqi_url_redact("redis://:a@b@h", buf, sizeof(buf));
	assert_null(strstr(buf, "a@b"));
	cqi_url_redact("redis://u:secretsecret@h", buf, 12);
	assert_null(strstr(buf, "secret"));
}

static void test_base64(void **state)
{
	char *s;

	(void)state;
	s = cqi_base64("", 0);
	assert_string_equal(s, "");
	free(s);
	s = cqi_base64("f", 1);
	assert_string_equal(s, "Zg==");
	free(s);
	s = cqi_base64("fo", 2);
	assert_string_equal(s, "Zm8=");
	free(s);
	s = cqi_base64("foobar", 6);
	assert_string_equal(s, "Zm9vYmFy");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_uint_and_jitter),
		cmocka_unit_test(test_redis_urls),
		cmocka_unit_test(test_sentinel_urls),
		cmocka_unit_test(test_amqp_urls),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
