/* Unit tests for the cache's pure functions: cluster slots, derived keys,
 * namespace names, glob escaping, jitter, base64, the warm record
 * parsers (TSV, -0 pairs, JSONL, keys), and the JSONL line rules warm and
 * enqueue share (cqi_jsonl_object). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cq.h"
#include "internal.h"

static void test_slots(void **state)
{
	(void)state;
	/* figures from the Redis Cluster specification and CLUSTER KEYSLOT */
	assert_int_equal(cqi_key_slot("123456789", 9), 0x31C3 & 16383);
	assert_int_equal(cqi_key_slot("foo", 3), 12182);
	assert_int_equal(cqi_key_slot("bar", 3), 5061);
	assert_int_equal(cqi_key_slot("{user1000}.following", 20),
			 cqi_key_slot("user1000", 8));
	/* an empty {} is no tag: the whole key is hashed */
	assert_int_equal(cqi_key_slot("foo{}{bar}", 10),
			 cqi_key_slot("foo{}{bar}", 10) & 16383);
	assert_int_not_equal(cqi_key_slot("foo{}{bar}", 10), cqi_key_slot("bar", 3));
	assert_int_equal(cqi_key_slot("foo{{bar}}zap", 13), cqi_key_slot("{bar", 4));
	assert_int_equal(cqi_key_slot("foo{bar}{zap}", 13), cqi_key_slot("bar", 3));
	assert_int_equal(cqi_key_slot("a\0b{x}", 6), cqi_key_slot("x", 1));
}

static void check_derived(const char *prefix, const char *key, size_t len)
{
	struct cq_buf out = { 0 };

	assert_true(cqi_derived_key(prefix, key, len, "lock", &out));
	assert_int_equal(cqi_key_slot(out.data, out.len), cqi_key_slot(key, len));
	assert_false(out.len == len && memcmp(out.data, key, len) == 0);
	assert_true(out.len > 8);
	assert_memory_equal(out.data + out.len - 8, "|cq:lock", 8);
	cq_buf_free(&out);
}

static void test_derived_keys(void **state)
{
	static const char *const keys[] = {
		"p:user:1", "p:{user}:1", "p:a}b", "p:}", "p:{}x}", "p:{x",
		"p:plain key with spaces", "p:ns:users:123:alice", "{", "}",
		"p:{a}{b}",
	};
	struct cq_buf out = { 0 };
	char bin[64];

	(void)state;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		check_derived("p:", keys[i], strlen(keys[i]));
		check_derived(NULL, keys[i], strlen(keys[i]));
		check_derived("p{:", keys[i], strlen(keys[i]));
	}
	for (int i = 0; i < 200; i++) {
		for (size_t j = 0; j < sizeof(bin); j++)
			bin[j] = (char)cqi_rand_below(256);
		check_derived("p:", bin, 1 + cqi_rand_below(sizeof(bin) - 1));
	}
	/* a plain key keeps the prefix in front, so prefix patterns see it */
	assert_true(cqi_derived_key("p:", "p:k", 3, "meta", &out));
	assert_string_equal(out.data, "p:{p:k}|cq:meta");
	/* a key with a tag gets a suffix */
	assert_true(cqi_derived_key("p:", "p:{u}k", 6, "meta", &out));
	assert_string_equal(out.data, "p:{u}k|cq:meta");
	cq_buf_free(&out);
}

static void test_ns_names(void **state)
{
	char long_name[102];

	(void)state;
	assert_true(cq_ns_name_ok("users"));
	assert_true(cq_ns_name_ok("a.b_c/d-9"));
	assert_false(cq_ns_name_ok(""));
	assert_false(cq_ns_name_ok(NULL));
	assert_false(cq_ns_name_ok("a:b"));
	assert_false(cq_ns_name_ok("a b"));
	assert_false(cq_ns_name_ok("{a}"));
	assert_false(cq_ns_name_ok("a*"));
	memset(long_name, 'a', 101);
	long_name[101] = '\0';
	assert_false(cq_ns_name_ok(long_name));
	long_name[100] = '\0';
	assert_true(cq_ns_name_ok(long_name));
}

static void test_glob_escape(void **state)
{
	struct cq_buf b = { 0 };

	(void)state;
	assert_true(cqi_glob_escape("a*b?c[d]e\\f:", 12, &b));
	assert_string_equal(b.data, "a\\*b\\?c\\[d\\]e\\\\f:");
	cq_buf_reset(&b);
	assert_true(cqi_glob_escape("x\0*", 3, &b));
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "x\0\\*", 4);
	cq_buf_free(&b);
}

static void test_jitter(void **state)
{
	struct cq_set_opts o = { .ttl_ms = 10000, .jitter_ms = 500 };
	bool spread = false;

	(void)state;
	for (int i = 0; i < 1000; i++) {
		long long t = cqi_jittered_ttl(&o);

		assert_true(t >= 10000 && t <= 10500);
		spread |= t != 10000;
	}
	assert_true(spread);
	o.jitter_ms = 0;
	o.jitter_pct = 10;
	for (int i = 0; i < 1000; i++) {
		long long t = cqi_jittered_ttl(&o);

		assert_true(t >= 10000 && t <= 11000);
	}
	o.jitter_pct = 0;
	assert_int_equal(cqi_jittered_ttl(&o), 10000);
}

static void test_base64(void **state)
{
	struct cq_buf b = { 0 };
	unsigned char raw[40] = { 0 };
	static const char *const bad[] = { "a", "ab=c", "abc===", "a!bc", "abcde",
					   "ab=", "====" };

	(void)state;
	for (size_t n = 0; n < sizeof(raw); n++) {
		char *enc;

		for (size_t j = 0; j < n; j++)
			raw[j] = (unsigned char)cqi_rand_below(256);
		enc = cqi_base64(raw, n);
		assert_non_null(enc);
		cq_buf_reset(&b);
		assert_true(cqi_base64_decode(enc, strlen(enc), &b));
		assert_int_equal(b.len, n);
		if (n)
			assert_memory_equal(b.data, raw, n);
		free(enc);
	}
	cq_buf_reset(&b);
	assert_true(cqi_base64_decode("aGk", 3, &b));	/* padding optional */
	assert_int_equal(b.len, 2);
	assert_memory_equal(b.data, "hi", 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cq_buf_reset(&b);
		assert_false(cqi_base64_decode(bad[i], strlen(bad[i]), &b));
	}
	cq_buf_free(&b);
}

static void test_tsv(void **state)
{
	struct cqi_warm_rec r = { 0 };
	char err[200];

	(void)state;
	assert_true(cqi_warm_parse_tsv("k\tv", 3, &r, err, sizeof(err)));
	assert_int_equal(r.keylen, 1);
	assert_memory_equal(r.key, "k", 1);
	assert_int_equal(r.vallen, 1);
	assert_memory_equal(r.val, "v", 1);
	assert_int_equal(r.ttl_ms, -1);
	/* the value may hold TABs, may be empty, and may hold NULs */
	assert_true(cqi_warm_parse_tsv("k\ta\tb", 5, &r, err, sizeof(err)));
	assert_int_equal(r.vallen, 3);
	assert_memory_equal(r.val, "a\tb", 3);
	assert_true(cqi_warm_parse_tsv("k\t", 2, &r, err, sizeof(err)));
	assert_int_equal(r.vallen, 0);
	assert_true(cqi_warm_parse_tsv("k\0x\tv\0w", 7, &r, err, sizeof(err)));
	assert_int_equal(r.keylen, 3);
	assert_int_equal(r.vallen, 3);
	assert_false(cqi_warm_parse_tsv("novalue", 7, &r, err, sizeof(err)));
	assert_string_equal(err, "missing TAB between key and value");
	assert_false(cqi_warm_parse_tsv("\tv", 2, &r, err, sizeof(err)));
	assert_string_equal(err, "empty key");
	assert_false(cqi_warm_parse_tsv("", 0, &r, err, sizeof(err)));
	assert_string_equal(err, "empty line");
	assert_false(cqi_warm_parse_tsv(NULL, 0, &r, err, sizeof(err)));
	assert_false(cqi_warm_parse_tsv("k\nj\tv", 5, &r, err, sizeof(err)));
	assert_string_equal(err, "newline inside the key");
	cqi_warm_rec_clear(&r);
}

static void test_nul(void **state)
{
	struct cqi_warm_rec r = { 0 };
	char err[200];

	(void)state;
	assert_true(cqi_warm_parse_nul("key\0va\nl\tue", 11, &r, err, sizeof(err)));
	assert_int_equal(r.keylen, 3);
	assert_int_equal(r.vallen, 7);
	assert_memory_equal(r.val, "va\nl\tue", 7);
	assert_true(cqi_warm_parse_nul("k\0", 2, &r, err, sizeof(err)));
	assert_int_equal(r.vallen, 0);
	assert_false(cqi_warm_parse_nul("lonely", 6, &r, err, sizeof(err)));
	assert_non_null(strstr(err, "without a value"));
	assert_false(cqi_warm_parse_nul("\0v", 2, &r, err, sizeof(err)));
	assert_string_equal(err, "empty key");
	assert_false(cqi_warm_parse_nul("k\0v\0w", 5, &r, err, sizeof(err)));
	cqi_warm_rec_clear(&r);
}

static bool jl(const char *s, struct cqi_warm_rec *r, char *err)
{
	return cqi_warm_parse_jsonl(s, strlen(s), r, err, 200);
}

static void test_jsonl_good(void **state)
{
	struct cqi_warm_rec r = { 0 };
	char err[200];

	(void)state;
	assert_true(jl("{\"key\":\"k\",\"value\":\"v\"}", &r, err));
	assert_int_equal(r.keylen, 1);
	assert_memory_equal(r.key, "k", 1);
	assert_memory_equal(r.val, "v", 1);
	assert_int_equal(r.ttl_ms, -1);
	assert_int_equal(r.ntags, 0);
	assert_true(jl("{\"key\":\"k\",\"value\":{\"a\":[1,2]},\"ttl\":30,\"tags\":[\"x\",\"yy\"]}  ",
		       &r, err));
	assert_int_equal(r.vallen, strlen("{\"a\":[1,2]}"));
	assert_memory_equal(r.val, "{\"a\":[1,2]}", r.vallen);
	assert_int_equal(r.ttl_ms, 30000);
	assert_int_equal(r.ntags, 2);
	assert_memory_equal(r.tags[1], "yy", 2);
	assert_int_equal(r.taglens[1], 2);
	assert_true(jl("{\"key\":\"k\",\"value\":12.5,\"ttl\":\"250ms\"}", &r, err));
	assert_memory_equal(r.val, "12.5", 4);
	assert_int_equal(r.ttl_ms, 250);
	assert_true(jl("{\"key\":\"k\",\"value\":null,\"ttl_ms\":1500}", &r, err));
	assert_memory_equal(r.val, "null", 4);
	assert_int_equal(r.ttl_ms, 1500);
	assert_true(jl("{\"key\":\"k\",\"value\":true}", &r, err));
	assert_memory_equal(r.val, "true", 4);
	/* binary-safe: \u0000 in strings, and base64 fields */
	assert_true(jl("{\"key\":\"a\\u0000b\",\"value\":\"x\\u0000y\\n\"}", &r, err));
	assert_int_equal(r.keylen, 3);
	assert_memory_equal(r.key, "a\0b", 3);
	assert_int_equal(r.vallen, 4);
	assert_true(jl("{\"key_base64\":\"/w==\",\"value_base64\":\"AAEC\"}", &r, err));
	assert_int_equal(r.keylen, 1);
	assert_int_equal((unsigned char)r.key[0], 0xff);
	assert_int_equal(r.vallen, 3);
	assert_memory_equal(r.val, "\0\1\2", 3);
	/* what `cachectl get --json` prints reads back */
	assert_true(jl("{\"key\":\"k\",\"value_base64\":\"gA==\"}", &r, err));
	assert_int_equal((unsigned char)r.val[0], 0x80);
	cqi_warm_rec_clear(&r);
}

static void test_jsonl_bad(void **state)
{
	static const struct {
		const char *in, *msg;
	} bad[] = {
		{ "", "empty line" },
		{ "{", "bad JSON" },
		{ "[1]", "not a JSON object" },
		{ "\"s\"", "bad JSON" },
		{ "{\"value\":\"v\"}", "missing \"key\"" },
		{ "{\"key\":\"\",\"value\":\"v\"}", "empty key" },
		{ "{\"key\":5,\"value\":\"v\"}", "\"key\" must be a string" },
		{ "{\"key\":\"k\"}", "missing \"value\"" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"ttl\":-1}", "positive number" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"ttl\":0}", "positive number" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"ttl\":\"5x\"}", "positive duration" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"ttl\":[1]}", "seconds or a duration" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"ttl_ms\":1.5}", "positive integer" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"ttl\":1,\"ttl_ms\":1}", "both" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"tags\":\"t\"}", "array of strings" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"tags\":[1]}", "non-empty strings" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"tags\":[\"\"]}", "non-empty strings" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"tll\":1}", "unknown field \"tll\"" },
		{ "{\"key\":\"k\",\"value\":\"v\"} x", "text after" },
		{ "{\"key\":\"k\",\"key\":\"j\",\"value\":\"v\"}", "bad JSON" },
		{ "{\"key\":\"k\",\"value\":\"v\",\"value_base64\":\"dg==\"}", "both" },
		{ "{\"key_base64\":\"!!\",\"value\":\"v\"}", "not valid base64" },
		{ "{\"key\":\"k\",\"value_base64\":\"a\"}", "not valid base64" },
		{ "{\"key\":\"k\",\"value_base64\":5}", "must be a string" },
	};
	struct cqi_warm_rec r = { 0 };
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(jl(bad[i].in, &r, err));
		if (!strstr(err, bad[i].msg))
			fail_msg("'%s': got '%s', want '%s'", bad[i].in, err,
				 bad[i].msg);
	}
	{
		/* a NUL after the object is text too, not an end */
		static const char nul[] = "{\"key\":\"k\",\"value\":\"v\"}\0x";

		assert_false(cqi_warm_parse_jsonl(nul, sizeof(nul) - 1, &r, err,
						 sizeof(err)));
		assert_non_null(strstr(err, "text after"));
	}
	{
		char many[1024] = "{\"key\":\"k\",\"value\":\"v\",\"tags\":[";

		for (int i = 0; i < 33; i++)
			strcat(many, i ? ",\"t\"" : "\"t\"");
		strcat(many, "]}");
		assert_false(jl(many, &r, err));
		assert_non_null(strstr(err, "more than 32"));
	}
	cqi_warm_rec_clear(&r);
}

/* One JSONL line's faults: the same words from warm's parser and from
 * enqueue's, whatever fields each wants. */
static void test_jsonl_shared(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *msg;
	} bad[] = {
#define L(s) s, sizeof(s) - 1
		{ L(""), "empty line" },
		{ L("{\"a\":"), "bad JSON at column 5: unexpected token near end of file" },
		{ L("{\"a\":1,\"a\":2}"), "bad JSON at column 10: duplicate object key near '\"a\"'" },
		{ L("[1, 2]"), "not a JSON object: '[1, 2]'" },
		{ L("{\"a\":1} x"), "text after the JSON object at column 9: 'x'" },
		{ L("{\"a\":1}{}"), "text after the JSON object at column 8: '{}'" },
		/* a NUL after the object is text too, not an end */
		{ L("{\"a\":1}\0x"), "text after the JSON object at column 8: '\\x00x'" },
		/* columns count characters, as jansson's do */
		{ L("{\"\xc3\xa9\":1} x"), "text after the JSON object at column 9: 'x'" },
#undef L
	};
	struct cqi_warm_rec r = { 0 };
	struct cq_record *rec;
	struct cq_message m;
	char err[200], err2[200];
	json_t *o;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(cqi_jsonl_object(bad[i].in, bad[i].len, err,
					     sizeof(err)));
		if (strcmp(err, bad[i].msg))
			fail_msg("case %zu: got '%s', want '%s'", i, err, bad[i].msg);
		assert_false(cqi_warm_parse_jsonl(bad[i].in, bad[i].len, &r,
						  err2, sizeof(err2)));
		assert_string_equal(err2, bad[i].msg);
		cq_message_init(&m);
		assert_int_equal(cqi_record_parse(bad[i].in, bad[i].len, &m,
						 &rec, err2, sizeof(err2)),
				 CQ_ERR_DATA);
		assert_string_equal(err2, bad[i].msg);
	}
	/* JSON's blanks may follow; a NUL inside a string is kept */
	o = cqi_jsonl_object("{\"a\":\"x\\u0000y\"} \t\r\n",
			     strlen("{\"a\":\"x\\u0000y\"} \t\r\n"), err,
			     sizeof(err));
	assert_non_null(o);
	assert_int_equal(json_string_length(json_object_get(o, "a")), 3);
	json_decref(o);
	cqi_warm_rec_clear(&r);
}

static void test_keys(void **state)
{
	struct cqi_warm_rec r = { 0 };
	char err[200];

	(void)state;
	assert_true(cqi_warm_parse_key("a b\tc", 5, &r, err, sizeof(err)));
	assert_int_equal(r.keylen, 5);
	assert_false(cqi_warm_parse_key("", 0, &r, err, sizeof(err)));
	assert_string_equal(err, "empty key");
	cqi_warm_rec_clear(&r);
}

/* Any input gives true or false, never a crash (a taste of the fuzzer). */
static void test_parsers_total(void **state)
{
	struct cqi_warm_rec r = { 0 };
	static const char alphabet[] = "{}\":,[]\t\0abk\\u0123456789eyvlt _";
	char buf[64], err[200];

	(void)state;
	for (int i = 0; i < 20000; i++) {
		size_t n = cqi_rand_below(sizeof(buf));

		for (size_t j = 0; j < n; j++)
			buf[j] = alphabet[cqi_rand_below(sizeof(alphabet) - 1)];
		cqi_warm_parse_tsv(buf, n, &r, err, sizeof(err));
		cqi_warm_parse_nul(buf, n, &r, err, sizeof(err));
		cqi_warm_parse_jsonl(buf, n, &r, err, sizeof(err));
	}
	cqi_warm_rec_clear(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots),
		cmocka_unit_test(test_derived_keys),
		cmocka_unit_test(test_ns_names),
		cmocka_unit_test(test_glob_escape),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_tsv),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_jsonl_good),
		cmocka_unit_test(test_jsonl_bad),
		cmocka_unit_test(test_jsonl_shared),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_parsers_total),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
