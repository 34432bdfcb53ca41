/* Unit tests for the queue side's pure functions: AMQP tables to fields,
 * x-death and qctl's dead-letter headers, JSONL records, base64, the
 * record reader, replay filters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cq.h"
#include "internal.h"
#include "queue_int.h"

/* ---- building AMQP tables ------------------------------------------------ */

static amqp_field_value_t str_v(const char *s)
{
	amqp_field_value_t v;

	v.kind = AMQP_FIELD_KIND_UTF8;
	v.value.bytes = amqp_cstring_bytes(s);
	return v;
}

static amqp_field_value_t long_v(int64_t n)
{
	amqp_field_value_t v;

	v.kind = AMQP_FIELD_KIND_I64;
	v.value.i64 = n;
	return v;
}

static amqp_field_value_t ts_v(uint64_t n)
{
	amqp_field_value_t v;

	v.kind = AMQP_FIELD_KIND_TIMESTAMP;
	v.value.u64 = n;
	return v;
}

static amqp_table_entry_t entry(const char *k, amqp_field_value_t v)
{
	amqp_table_entry_t e;

	e.key = amqp_cstring_bytes(k);
	e.value = v;
	return e;
}

/* One x-death table entry as RabbitMQ writes it. */
struct xd {
	amqp_table_entry_t e[6];
	amqp_field_value_t rk[1];
};

static amqp_field_value_t xdeath_v(struct xd *x, const char *queue,
				   const char *reason, int64_t count,
				   uint64_t time)
{
	amqp_field_value_t v, rks;

	x->rk[0] = str_v(queue);
	rks.kind = AMQP_FIELD_KIND_ARRAY;
	rks.value.array.num_entries = 1;
	rks.value.array.entries = x->rk;
	x->e[0] = entry("count", long_v(count));
	x->e[1] = entry("reason", str_v(reason));
	x->e[2] = entry("queue", str_v(queue));
	x->e[3] = entry("time", ts_v(time));
	x->e[4] = entry("exchange", str_v(""));
	x->e[5] = entry("routing-keys", rks);
	v.kind = AMQP_FIELD_KIND_TABLE;
	v.value.table.num_entries = 6;
	v.value.table.entries = x->e;
	return v;
}

/* Encode then decode a table, as it comes off the wire (the decoded
 * strings point into the static buffer). */
static void wire_roundtrip(amqp_table_t *in, amqp_table_t *out,
			   amqp_pool_t *pool)
{
	static char buf[8192];
	amqp_bytes_t b = { sizeof(buf), buf };
	size_t off = 0;

	assert_int_equal(amqp_encode_table(b, in, &off), 0);
	b.len = off;
	off = 0;
	init_amqp_pool(pool, 4096);
	assert_int_equal(amqp_decode_table(b, pool, out, &off), 0);
}

static void test_xdeath_decode(void **state)
{
	struct xd x1, x2;
	amqp_field_value_t deaths[2], arr;
	amqp_table_entry_t top[3];
	amqp_table_t t = { 3, top }, wire;
	amqp_pool_t pool;
	struct cq_field *f;
	struct cq_death d;
	size_t n;

	(void)state;
	/* newest first: died in the DLQ (expired) after dying in jobs */
	deaths[0] = xdeath_v(&x1, "jobs.dlq", "expired", 1, 2000);
	deaths[1] = xdeath_v(&x2, "jobs", "rejected", 3, 1000);
	arr.kind = AMQP_FIELD_KIND_ARRAY;
	arr.value.array.num_entries = 2;
	arr.value.array.entries = deaths;
	top[0] = entry("app", str_v("billing"));
	top[1] = entry("x-death", arr);
	top[2] = entry("x-first-death-queue", str_v("jobs"));
	wire_roundtrip(&t, &wire, &pool);

	assert_int_equal(cqi_fields_from_table(&wire, &f, &n), CQ_OK);
	assert_int_equal(n, 3);
	assert_string_equal(f[0].key, "app");
	assert_int_equal(f[1].kind, CQ_FIELD_ARRAY);
	assert_int_equal(f[1].n, 2);
	assert_int_equal(f[1].items[0].kind, CQ_FIELD_TABLE);

	assert_int_equal(cqi_death_decode(f, n, "jobs.dlq", &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_XDEATH);
	assert_string_equal(d.queue, "jobs");	/* not the DLQ itself */
	assert_string_equal(d.reason, "rejected");
	assert_int_equal(d.count, 3);
	assert_int_equal(d.time, 1000);
	assert_string_equal(d.exchange, "");
	assert_string_equal(d.routing_key, "jobs");
	assert_int_equal(d.nxdeath, 2);
	assert_string_equal(d.xdeath[0].reason, "expired");
	assert_int_equal(d.retries, -1);
	cq_death_clear(&d);

	/* read from elsewhere: the newest entry wins */
	assert_int_equal(cqi_death_decode(f, n, NULL, &d), CQ_OK);
	assert_string_equal(d.queue, "jobs.dlq");
	assert_string_equal(d.reason, "expired");
	cq_death_clear(&d);

	{
		char *text = cqi_field_text(&f[1]);

		assert_non_null(text);
		assert_non_null(strstr(text, "\"reason\":\"rejected\""));
		free(text);
	}
	cqi_fields_free(f, n);
	empty_amqp_pool(&pool);
}

/* A field helper for hand-built header lists. */
static struct cq_field sfield(const char *k, const char *v)
{
	struct cq_field f = { 0 };

	f.key = (char *)k;
	f.kind = CQ_FIELD_STRING;
	f.str = (char *)v;
	f.len = strlen(v);
	return f;
}

static struct cq_field ifield(const char *k, long long i)
{
	struct cq_field f = { 0 };

	f.key = (char *)k;
	f.kind = CQ_FIELD_INT;
	f.i = i;
	return f;
}

static void test_qctl_headers(void **state)
{
	struct cq_field h[] = {
		ifield(CQ_HDR_RETRIES, 5),
		sfield(CQ_HDR_DEATH_REASON, "exit 3"),
		ifield(CQ_HDR_EXIT_CODE, 3),
		sfield(CQ_HDR_STDERR, "boom\n"),
		sfield(CQ_HDR_ORIGINAL_QUEUE, "orders"),
		ifield(CQ_HDR_DIED_AT, 1700000000),
		sfield(CQ_HDR_HOST, "worker-1"),
	};
	struct cq_death d;

	(void)state;
	assert_int_equal(cqi_death_decode(h, 7, "orders.dlq", &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_QCTL);
	assert_string_equal(d.queue, "orders");
	assert_string_equal(d.reason, "exit 3");
	assert_int_equal(d.retries, 5);
	assert_int_equal(d.count, 5);
	assert_int_equal(d.exit_code, 3);
	assert_int_equal(d.time, 1700000000);
	assert_string_equal(d.stderr_tail, "boom\n");
	assert_string_equal(d.host, "worker-1");
	cq_death_clear(&d);

	/* retries sent as a string still count */
	h[0] = sfield(CQ_HDR_RETRIES, "2");
	assert_int_equal(cqi_death_decode(h, 7, NULL, &d), CQ_OK);
	assert_int_equal(d.retries, 2);
	cq_death_clear(&d);
}

static void test_app_headers_and_dlq_name(void **state)
{
	struct cq_field spring[] = {
		sfield("x-exception-message", "NullPointerException"),
		sfield("x-original-exchange", ""),
		sfield("x-original-routingKey", "invoices"),
	};
	struct cq_field mine[] = { sfield("Original-Queue", "mail") };
	struct cq_field odd[] = {
		ifield("x-original-queue", 7),	/* not a string: ignored */
		sfield("x-death", "not an array"),
	};
	struct cq_death d;

	(void)state;
	assert_int_equal(cqi_death_decode(spring, 3, "invoices.dlq", &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_HEADERS);
	assert_string_equal(d.queue, "invoices");
	assert_string_equal(d.reason, "NullPointerException");
	cq_death_clear(&d);

	assert_int_equal(cqi_death_decode(mine, 1, NULL, &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_HEADERS);
	assert_string_equal(d.queue, "mail");
	cq_death_clear(&d);

	assert_int_equal(cqi_death_decode(odd, 2, "reports.dlq", &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_DLQ_NAME);
	assert_string_equal(d.queue, "reports");
	cq_death_clear(&d);

	assert_int_equal(cqi_death_decode(NULL, 0, "plain", &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_NONE);
	assert_null(d.queue);
	cq_death_clear(&d);
	assert_int_equal(cqi_death_decode(NULL, 0, ".dlq", &d), CQ_OK);
	assert_null(d.queue);
	cq_death_clear(&d);
}

/* qctl's headers and x-death together: the newer story wins. */
static void test_precedence(void **state)
{
	struct cq_field xitems[] = {
		sfield("queue", "jobs"), sfield("reason", "rejected"),
		ifield("count", 1), ifield("time", 2000),
	};
	struct cq_field xtable = { 0 }, xarr = { 0 };
	struct cq_field h[3];
	struct cq_death d;

	(void)state;
	xtable.kind = CQ_FIELD_TABLE;
	xtable.items = xitems;
	xtable.n = 4;
	xarr.key = "x-death";
	xarr.kind = CQ_FIELD_ARRAY;
	xarr.items = &xtable;
	xarr.n = 1;
	h[0] = xarr;
	h[1] = sfield(CQ_HDR_ORIGINAL_QUEUE, "jobs-v2");
	h[2] = ifield(CQ_HDR_DIED_AT, 3000);
	assert_int_equal(cqi_death_decode(h, 3, "jobs.dlq", &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_QCTL);
	assert_string_equal(d.queue, "jobs-v2");
	cq_death_clear(&d);

	h[2] = ifield(CQ_HDR_DIED_AT, 1000);	/* older than x-death */
	assert_int_equal(cqi_death_decode(h, 3, "jobs.dlq", &d), CQ_OK);
	assert_int_equal(d.source, CQ_DEATH_XDEATH);
	assert_string_equal(d.queue, "jobs");
	cq_death_clear(&d);
}

/* Deep nesting and every field kind decode without trouble. */
static void test_fields_kinds(void **state)
{
	amqp_table_entry_t inner[1], e[8];
	amqp_field_value_t v;
	amqp_table_t t = { 0, e };
	struct cq_field *f;
	size_t n;
	char *s;

	(void)state;
	v.kind = AMQP_FIELD_KIND_BOOLEAN;
	v.value.boolean = 1;
	e[t.num_entries++] = entry("b", v);
	v.kind = AMQP_FIELD_KIND_U64;
	v.value.u64 = UINT64_MAX;
	e[t.num_entries++] = entry("u", v);
	v.kind = AMQP_FIELD_KIND_F64;
	v.value.f64 = 1.5;
	e[t.num_entries++] = entry("f", v);
	v.kind = AMQP_FIELD_KIND_DECIMAL;
	v.value.decimal.decimals = 2;
	v.value.decimal.value = 314;
	e[t.num_entries++] = entry("d", v);
	v.kind = AMQP_FIELD_KIND_BYTES;
	v.value.bytes.bytes = "a\0b";
	v.value.bytes.len = 3;
	e[t.num_entries++] = entry("x", v);
	v.kind = AMQP_FIELD_KIND_VOID;
	e[t.num_entries++] = entry("v", v);
	inner[0] = entry("deep", str_v("yes"));
	v.kind = AMQP_FIELD_KIND_TABLE;
	v.value.table.num_entries = 1;
	v.value.table.entries = inner;
	e[t.num_entries++] = entry("t", v);
	v.kind = AMQP_FIELD_KIND_I8;
	v.value.i8 = -3;
	e[t.num_entries++] = entry("i", v);

	assert_int_equal(cqi_fields_from_table(&t, &f, &n), CQ_OK);
	assert_int_equal(n, 8);
	assert_int_equal(f[0].kind, CQ_FIELD_BOOL);
	assert_int_equal(f[1].i, INT64_MAX);
	assert_true(f[2].f == 1.5);
	assert_true(f[3].f > 3.13 && f[3].f < 3.15);
	assert_int_equal(f[4].kind, CQ_FIELD_BYTES);
	assert_int_equal(f[4].len, 3);
	assert_memory_equal(f[4].str, "a\0b", 3);
	assert_int_equal(f[5].kind, CQ_FIELD_VOID);
	assert_string_equal(cqi_field_get(f[6].items, f[6].n, "deep")->str, "yes");
	assert_int_equal(f[7].i, -3);
	s = cqi_field_text(&f[0]);
	assert_string_equal(s, "true");
	free(s);
	s = cqi_field_text(&f[6]);
	assert_string_equal(s, "{\"deep\":\"yes\"}");
	free(s);
	cqi_fields_free(f, n);

	t.num_entries = 0;
	assert_int_equal(cqi_fields_from_table(&t, &f, &n), CQ_OK);
	assert_null(f);
	assert_int_equal(n, 0);
}

static void test_records(void **state)
{
	struct cq_header h[1] = { { .key = "src", .value = "cli" } };
	struct cq_message m;
	struct cq_record *rec;
	char err[200];
	static const char *bad[] = {
		"not json", "[1,2]", "{}", "{\"body\":5}",
		"{\"body\":\"x\",\"priority\":300}",
		"{\"body\":\"x\",\"priority\":\"high\"}",
		"{\"body\":\"x\",\"headers\":[1]}",
		"{\"body\":\"x\",\"headers\":{\"k\":[1]}}",
		"{\"body\":\"x\",\"bogus\":1}",
		"{\"body_base64\":\"@@@\"}",
		"{\"body\":\"x\",\"expiration\":\"soon\"}",
		"{\"body\":\"x\",\"body\":\"y\"}",
	};

	(void)state;
	cq_message_init(&m);
	m.headers = h;
	m.nheaders = 1;
	assert_int_equal(cqi_record_parse(
		"{\"body\":\"a\\u0000b\",\"headers\":{\"k\":\"v\",\"n\":3},"
		"\"message_id\":\"m1\",\"priority\":4,\"content_type\":\"text/plain\","
		"\"expiration\":\"30s\"}", strlen(
		"{\"body\":\"a\\u0000b\",\"headers\":{\"k\":\"v\",\"n\":3},"
		"\"message_id\":\"m1\",\"priority\":4,\"content_type\":\"text/plain\","
		"\"expiration\":\"30s\"}"), &m, &rec, err, sizeof(err)), CQ_OK);
	assert_int_equal(m.len, 3);
	assert_memory_equal(m.body, "a\0b", 3);
	assert_string_equal(m.message_id, "m1");
	assert_int_equal(m.priority, 4);
	assert_string_equal(m.content_type, "text/plain");
	assert_string_equal(m.expiration, "30000");
	assert_int_equal(m.nheaders, 3);
	assert_string_equal(m.headers[0].key, "src");
	assert_string_equal(m.headers[1].key, "k");
	assert_true(m.headers[2].is_int);
	assert_int_equal(m.headers[2].ival, 3);
	cqi_record_free(rec);

	cq_message_init(&m);
	assert_int_equal(cqi_record_parse("{\"body_base64\":\"AAEC/w==\"}", 26,
					 &m, &rec, err, sizeof(err)), CQ_OK);
	assert_int_equal(m.len, 4);
	assert_memory_equal(m.body, "\0\1\2\377", 4);
	cqi_record_free(rec);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cq_message_init(&m);
		err[0] = '\0';
		assert_int_equal(cqi_record_parse(bad[i], strlen(bad[i]), &m,
						 &rec, err, sizeof(err)),
				 CQ_ERR_DATA);
		assert_null(rec);
		assert_true(err[0] != '\0');
	}
}

static void test_base64(void **state)
{
	struct cq_buf b = { 0 };

	(void)state;
	assert_true(cqi_base64_decode("aGVsbG8=", 8, &b));
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "hello", 5);
	cq_buf_reset(&b);
	assert_true(cqi_base64_decode("aGVsbG8", 7, &b));	/* padding optional */
	assert_int_equal(b.len, 5);
	cq_buf_reset(&b);
	assert_true(cqi_base64_decode("", 0, &b));
	assert_int_equal(b.len, 0);
	cq_buf_reset(&b);
	assert_false(cqi_base64_decode("a", 1, &b));
	cq_buf_reset(&b);
	assert_false(cqi_base64_decode("ab!d", 4, &b));
	cq_buf_free(&b);
}

static void test_reader(void **state)
{
	int fds[2];
	struct cq_ctx *ctx = cq_ctx_new(NULL);
	struct cq_reader_opts o = { .delim = '\n', .max = 100 };
	struct cq_reader *r;
	struct cq_rec_in in;
	char big[300];

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], "one\n\ntwo\n", 9), 9);
	assert_int_equal(write(fds[1], big, sizeof(big)), (ssize_t)sizeof(big));
	assert_int_equal(write(fds[1], "\nlast", 5), 5);
	close(fds[1]);
	r = cqi_reader_new(ctx, fds[0], &o);
	assert_non_null(r);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.len, 3);
	assert_memory_equal(in.p, "one", 3);
	/* the blank line is skipped and counted; numbers stay line numbers */
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(cqi_reader_blank(r), 1);
	assert_int_equal(in.no, 3);
	assert_memory_equal(in.p, "two", 3);
	assert_int_equal(in.flaw, CQ_REC_OK);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_TOO_LONG);
	assert_int_equal(in.len, 100);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_OK);
	assert_int_equal(in.len, 4);
	assert_memory_equal(in.p, "last", 4);
	assert_false(cqi_reader_next(r, &in));
	assert_int_equal(ctx->err, CQ_OK);
	assert_int_equal(cqi_reader_records(r), 5);
	cqi_reader_free(r);
	close(fds[0]);
	cq_ctx_free(ctx);
}

/* Records from a string through a pipe (small inputs only). */
static struct cq_reader *reader_of(struct cq_ctx *ctx, const char *s, size_t n,
				   const struct cq_reader_opts *o, int *fd)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], s, n), (ssize_t)n);
	close(fds[1]);
	*fd = fds[0];
	return cqi_reader_new(ctx, fds[0], o);
}

/* issue 13's input rules: CRLF lines are flawed where the CR would be
 * data; a -0 pair cut after its key comes back as a lone key */
static void test_reader_rules(void **state)
{
	static const char crlf[] = "a\tb\r\n\r\nc\td\n";
	static const char pairs[] = "k1\0v1\0k2\0";
	struct cq_ctx *ctx = cq_ctx_new(NULL);
	struct cq_reader_opts o = { .delim = '\n', .refuse_cr = true };
	struct cq_reader *r;
	struct cq_rec_in in;
	int fd;

	(void)state;
	r = reader_of(ctx, crlf, sizeof(crlf) - 1, &o, &fd);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_CR);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_CR);
	assert_int_equal(in.no, 2);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_OK);
	assert_false(cqi_reader_next(r, &in));
	cqi_reader_free(r);
	close(fd);

	o.refuse_cr = false;	/* JSONL: the CR is blank space */
	r = reader_of(ctx, crlf, sizeof(crlf) - 1, &o, &fd);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.flaw, CQ_REC_OK);
	assert_int_equal(in.len, 4);
	cqi_reader_free(r);
	close(fd);

	o = (struct cq_reader_opts){ .delim = '\0', .nfields = 2 };
	r = reader_of(ctx, pairs, sizeof(pairs) - 1, &o, &fd);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.len, 5);
	assert_memory_equal(in.p, "k1\0v1", 5);
	assert_true(cqi_reader_next(r, &in));
	assert_int_equal(in.len, 2);
	assert_memory_equal(in.p, "k2", 2);
	assert_int_equal(in.no, 2);
	assert_false(cqi_reader_next(r, &in));
	assert_int_equal(ctx->err, CQ_OK);
	cqi_reader_free(r);
	close(fd);
	cq_ctx_free(ctx);
}

static void test_filters(void **state)
{
	struct cq_filter *fl = NULL;
	struct cq_field h[] = { sfield("tenant", "acme") };
	struct cq_delivery d = { 0 };
	struct cq_death death = { 0 };
	char err[300];

	(void)state;
	d.body = "order 42 failed\0tail";
	d.len = 20;
	d.headers = h;
	d.nheaders = 1;
	death.reason = "rejected";
	assert_int_equal(cq_filter_add(&fl, "tenant=acme", err, sizeof(err)), CQ_OK);
	assert_true(cqi_filter_match(fl, &d, &death));
	assert_int_equal(cq_filter_add(&fl, "body:order [0-9]+", err, sizeof(err)), CQ_OK);
	assert_int_equal(cq_filter_add(&fl, "reason:reject", err, sizeof(err)), CQ_OK);
	assert_true(cqi_filter_match(fl, &d, &death));
	assert_int_equal(cq_filter_add(&fl, "body:tail$", err, sizeof(err)), CQ_OK);
	assert_true(cqi_filter_match(fl, &d, &death));	/* past the NUL */
	death.reason = "expired";
	assert_false(cqi_filter_match(fl, &d, &death));
	cq_filter_free(fl);
	fl = NULL;
	assert_int_equal(cq_filter_add(&fl, "header:tenant=other", err, sizeof(err)), CQ_OK);
	assert_false(cqi_filter_match(fl, &d, &death));
	cq_filter_free(fl);
	fl = NULL;
	assert_int_equal(cq_filter_add(&fl, "noequals", err, sizeof(err)), CQ_ERR_USAGE);
	assert_int_equal(cq_filter_add(&fl, "body:(", err, sizeof(err)), CQ_ERR_USAGE);
	assert_int_equal(cq_filter_add(&fl, "reason:", err, sizeof(err)), CQ_ERR_USAGE);
	assert_null(fl);
}

static bool print_nothing(void *arg, const struct cq_delivery *d)
{
	(void)arg;
	(void)d;
	return true;
}

static bool flush_nothing(void *arg)
{
	(void)arg;
	return true;
}

/* lib connects nothing on its own: a verb's table flags decide, and
 * cli_ready connects.  Unconnected, cq_consume and the passive declares
 * say so without trying the server (port 1: a try would be UNAVAILABLE). */
static void test_no_connect_of_its_own(void **state)
{
	struct cq_settings set = {
		.redis_url = "redis://127.0.0.1:1/0",
		.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f",
		.timeout_ms = 1000,
	};
	const char *q = "q";
	struct cq_consume_opts o;
	struct cq_consume_stats st;
	struct cq_metrics ms;
	struct cq_ctx *ctx;

	(void)state;
	ctx = cq_ctx_new(&set);
	assert_non_null(ctx);
	cq_consume_opts_init(&o);
	o.queue = q;
	o.print = print_nothing;
	o.flush = flush_nothing;
	assert_int_equal(cq_consume(ctx, &o, &st), CQ_ERR_INTERNAL);
	assert_string_equal(ctx->errstr, "not connected to RabbitMQ");
	assert_null(ctx->amqp);
	cq_clear_error(ctx);
	cq_metrics_init(&ms);
	assert_int_equal(cq_queue_figures(ctx, 1, &q, NULL, &ms), CQ_ERR_INTERNAL);
	assert_string_equal(ctx->errstr, "not connected to RabbitMQ");
	assert_null(ctx->amqp);
	cq_metrics_clear(&ms);
	cq_ctx_free(ctx);
}

/* A visibility timeout of 0 is refused before anything is tried: its
 * consumer would renew nothing, so others could take what it holds. */
static void test_visibility_zero(void **state)
{
	struct cq_settings set = {
		.redis_url = "redis://127.0.0.1:1/0",
		.amqp_url = "amqp://guest:guest@127.0.0.1:1/%2f",
		.timeout_ms = 1000,
	};
	struct cq_consume_opts o;
	struct cq_consume_stats st;
	struct cq_ctx *ctx;

	(void)state;
	ctx = cq_ctx_new(&set);
	assert_non_null(ctx);
	cq_consume_opts_init(&o);
	o.queue = "q";
	o.print = print_nothing;
	o.flush = flush_nothing;
	o.visibility_ms = 0;
	assert_int_equal(cq_consume(ctx, &o, &st), CQ_ERR_USAGE);
	assert_string_equal(ctx->errstr, "visibility timeout must be positive");
	cq_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xdeath_decode),
		cmocka_unit_test(test_qctl_headers),
		cmocka_unit_test(test_app_headers_and_dlq_name),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_fields_kinds),
		cmocka_unit_test(test_records),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_reader),
		cmocka_unit_test(test_reader_rules),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_no_connect_of_its_own),
		cmocka_unit_test(test_visibility_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
