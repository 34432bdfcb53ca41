/* Unit tests for what redis_cluster.c reads without I/O: MOVED and ASK
 * redirections, the errors worth another try, and CLUSTER SLOTS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

static void test_redirect(void **state)
{
	struct cqi_redirect r;

	(void)state;
	assert_true(cqi_cluster_redirect("MOVED 3999 127.0.0.1:6381", &r));
	assert_false(r.ask);
	assert_int_equal(r.slot, 3999);
	assert_string_equal(r.host, "127.0.0.1");
	assert_int_equal(r.port, 6381);
	assert_true(cqi_cluster_redirect("ASK 16383 ::1:7002", &r));
	assert_true(r.ask);
	assert_int_equal(r.slot, 16383);
	assert_string_equal(r.host, "::1");
	assert_int_equal(r.port, 7002);
	/* Redis 7 with no announced host: the node that answered */
	assert_true(cqi_cluster_redirect("MOVED 0 :7000", &r));
	assert_string_equal(r.host, "");
	assert_int_equal(r.port, 7000);

	static const char *bad[] = {
		"MOVED", "MOVED 3999", "MOVED x 127.0.0.1:1", "MOVED 16384 h:1",
		"MOVED 1 h", "MOVED 1 h:0", "MOVED 1 h:65536", "MOVED 1 h:1x",
		"ASK -1 h:1", "ERR MOVED 1 h:1", "CLUSTERDOWN Hash slot not served",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(cqi_cluster_redirect(bad[i], &r));
}

static void test_busy_off(void **state)
{
	(void)state;
	assert_true(cqi_cluster_busy("TRYAGAIN Multiple keys request during rehashing of slot"));
	assert_true(cqi_cluster_busy("CLUSTERDOWN The cluster is down"));
	assert_false(cqi_cluster_busy("MOVED 1 h:1"));
	assert_false(cqi_cluster_busy("ERR wrong number of arguments"));
	assert_true(cqi_cluster_off("ERR This instance has cluster support disabled"));
	assert_true(cqi_cluster_off("ERR unknown command 'CLUSTER', with args beginning with: 'SLOTS'"));
	assert_false(cqi_cluster_off("NOPERM this user has no permissions to run the 'cluster' command"));
}

/* A reply tree, built by hand as hiredis's parser would. */
static struct cqi_reply *rnum(long long v)
{
	struct cqi_reply *r = calloc(1, sizeof(*r));

	r->type = CQI_REPLY_INTEGER;
	r->integer = v;
	return r;
}

static struct cqi_reply *rstr(const char *s)
{
	struct cqi_reply *r = calloc(1, sizeof(*r));

	r->type = CQI_REPLY_STRING;
	r->str = strdup(s);
	r->len = strlen(s);
	return r;
}

static struct cqi_reply *rarr(size_t n, ...)
{
	struct cqi_reply *r = calloc(1, sizeof(*r));
	va_list ap;

	r->type = CQI_REPLY_ARRAY;
	r->elements = n;
	r->element = calloc(n ? n : 1, sizeof(*r->element));
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		r->element[i] = va_arg(ap, struct cqi_reply *);
	va_end(ap);
	return r;
}

static void test_slots_reply(void **state)
{
	struct cqi_slot_range *v;
	struct cqi_reply *r;
	size_t n;

	(void)state;
	r = rarr(5,
		 rarr(4, rnum(0), rnum(5460),
		      rarr(3, rstr("127.0.0.1"), rnum(7000), rstr("id1")),
		      rarr(3, rstr("127.0.0.1"), rnum(7003), rstr("id4"))),
		 rarr(3, rnum(5461), rnum(10922),
		      rarr(2, rstr(""), rnum(7001))),
		 rarr(3, rnum(10923), rnum(16383),
		      rarr(2, rstr("?"), rnum(7002))),
		 /* malformed ranges are left out */
		 rarr(3, rnum(9), rnum(3), rarr(2, rstr("h"), rnum(1))),
		 rarr(3, rnum(0), rnum(16384), rarr(2, rstr("h"), rnum(1))));
	n = cqi_cluster_slots(r, &v);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].lo, 0);
	assert_int_equal(v[0].hi, 5460);
	assert_string_equal(v[0].host, "127.0.0.1");
	assert_int_equal(v[0].port, 7000);
	assert_string_equal(v[1].host, "");
	assert_int_equal(v[1].port, 7001);
	assert_string_equal(v[2].host, "");	/* "?": not known yet */
	assert_int_equal(v[2].lo, 10923);
	free(v);
	cqi_reply_free(r);

	r = rstr("not an array");
	assert_int_equal(cqi_cluster_slots(r, &v), 0);
	free(v);
	cqi_reply_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_redirect),
		cmocka_unit_test(test_busy_off),
		cmocka_unit_test(test_slots_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
