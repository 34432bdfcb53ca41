/* Unit tests for the queue engine (consume.c) and replay's policy
 * (replay.c) against an in-memory driver: the one place a fake queue is
 * right.  The handlers are real processes (sh -c); only the queue is
 * simulated, so the policy is tested apart from any wire: ack only after
 * success, retries up to --max-retries then a dead letter with its
 * reason, poison codes, --count, --until-empty, and a stop request
 * settling what is in flight; replay acks an original only after its copy
 * is confirmed, gives back what it did not move in order, and looks at no
 * more than was present. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"

#define MAXMSG 64

/* A message as the fake queue keeps it. */
struct fmsg {
	char id[32];
	char body[64];
	long long retries;
	bool redelivered;
};

/* What reached the dead letters. */
struct fdead {
	struct fmsg m;
	char reason[64];
	long long attempts;
	int code;
	char tail[128];
};

struct fake {
	struct cqi_qdriver base;	/* first */
	struct fmsg ready[MAXMSG];	/* the queue, oldest first */
	size_t nready;
	struct fmsg taken[MAXMSG];	/* unsettled, by tag - 1 */
	bool out[MAXMSG];		/* taken[i] not settled yet */
	uint64_t next_tag;
	struct fmsg acked[MAXMSG];
	size_t nacked;
	struct fdead dead[MAXMSG];
	size_t ndead;
	unsigned window, retries;
	bool taking, freed;
	const char *dir;	/* where handlers leave their marks */
	bool ack_before_done;	/* an ack came for a message not yet done */
	size_t most_out;	/* the largest number unsettled at once */
	/* replay: copies published, settled at the next take or flush */
	struct fmsg pub[MAXMSG];
	char pub_to[MAXMSG][32];
	uint64_t pub_src[MAXMSG];	/* the original's tag */
	uint64_t pub_tag[MAXMSG];
	size_t npub, nsettled;
	bool safe[MAXMSG];	/* by tag - 1: its copy was confirmed */
	bool replay;		/* pub_start was called */
	bool ack_before_confirm;
	size_t nheld, nreleased;
	/* a lost connection: the ack of the message with this id is the
	 * last one written, and the broker never read it */
	const char *lose_at;
	uint64_t first_live;	/* tags below it are the lost connection's */
	bool stale_ack;		/* an ack under such a tag */
	unsigned reconnects;
};

static struct fake *F(struct cqi_qdriver *q)
{
	return (struct fake *)q;
}

static void put(struct fake *f, const char *id, const char *body,
		long long retries)
{
	struct fmsg *m = &f->ready[f->nready++];

	snprintf(m->id, sizeof(m->id), "%s", id);
	snprintf(m->body, sizeof(m->body), "%s", body);
	m->retries = retries;
}

static size_t nout(const struct fake *f)
{
	size_t n = 0;

	for (uint64_t i = 0; i < f->next_tag; i++)
		n += f->out[i];
	return n;
}

static struct cq_delivery *delivery(const struct fmsg *m, uint64_t tag)
{
	struct cq_delivery *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->body = strdup(m->body);
	d->len = strlen(m->body);
	d->delivery_tag = tag;
	d->exchange = strdup("");
	d->routing_key = strdup("fake");
	d->message_id = strdup(m->id);
	d->redelivered = m->redelivered;
	d->priority = -1;
	if (m->retries) {
		d->headers = calloc(1, sizeof(*d->headers));
		assert_non_null(d->headers);
		d->headers[0].key = strdup(CQ_HDR_RETRIES);
		d->headers[0].kind = CQ_FIELD_INT;
		d->headers[0].i = m->retries;
		d->nheaders = 1;
	}
	return d;
}

static enum cq_err f_connect(struct cqi_qdriver *q)
{
	(void)q;
	return CQ_OK;
}

static enum cq_err f_inspect(struct cqi_qdriver *q, uint64_t *ready)
{
	*ready = F(q)->nready;
	return CQ_OK;
}

static enum cq_err f_start(struct cqi_qdriver *q, unsigned window)
{
	F(q)->window = window;
	F(q)->taking = true;
	return CQ_OK;
}

static enum cq_err f_take(struct cqi_qdriver *q, size_t max, long long wait_ms)
{
	struct fake *f = F(q);
	size_t n = 0;

	while (f->taking && f->nready && n < max) {
		uint64_t tag = ++f->next_tag;

		assert_true(tag <= MAXMSG);
		f->taken[tag - 1] = f->ready[0];
		f->out[tag - 1] = true;
		memmove(f->ready, f->ready + 1, --f->nready * sizeof(*f->ready));
		if (!q->hooks.deliver(q->hooks.arg,
				      delivery(&f->taken[tag - 1], tag)))
			fail_msg("deliver refused a message");
		n++;
	}
	if (nout(f) > f->most_out)
		f->most_out = nout(f);
	if (!n && wait_ms > 0)
		usleep(2000);
	return CQ_OK;
}

static bool f_buffered(const struct cqi_qdriver *q)
{
	(void)q;
	return false;
}

static int f_fd(const struct cqi_qdriver *q)
{
	(void)q;
	return -1;
}

static size_t f_unsettled(const struct cqi_qdriver *q)
{
	(void)q;
	return 0;
}

static enum cq_err f_depth(struct cqi_qdriver *q, uint64_t *ready, char *why,
			   size_t len)
{
	(void)why;
	(void)len;
	*ready = F(q)->nready;
	return CQ_OK;
}

static void f_stop(struct cqi_qdriver *q)
{
	F(q)->taking = false;
}

static enum cq_err f_resume(struct cqi_qdriver *q)
{
	F(q)->taking = true;
	return CQ_OK;
}

/* Settle one taken message (it must be unsettled). */
static struct fmsg *settle(struct fake *f, uint64_t tag)
{
	assert_true(tag >= 1 && tag <= f->next_tag);
	assert_true(f->out[tag - 1]);
	f->out[tag - 1] = false;
	return &f->taken[tag - 1];
}

static void f_ack(struct cqi_qdriver *q, uint64_t tag, bool upto)
{
	struct fake *f = F(q);

	if (q->ctx->err)
		return;	/* the connection is gone */
	if (tag < f->first_live)
		f->stale_ack = true;
	if (f->lose_at && strcmp(f->taken[tag - 1].id, f->lose_at) == 0) {
		/* written, and the node dies before it reads it */
		f->lose_at = NULL;
		cq_seterr(q->ctx, CQ_ERR_TEMPFAIL, "connection lost");
		return;
	}
	for (uint64_t t = upto ? 1 : tag; t <= tag; t++) {
		char mark[512];
		struct fmsg *m;

		if (upto && !f->out[t - 1])
			continue;
		if (f->replay && !f->safe[t - 1])
			f->ack_before_confirm = true;
		m = settle(f, t);
		if (f->dir) {
			snprintf(mark, sizeof(mark), "%s/%s", f->dir, m->id);
			if (access(mark, F_OK) < 0)
				f->ack_before_done = true;
		}
		f->acked[f->nacked++] = *m;
	}
}

static void f_retry(struct cqi_qdriver *q, const struct cq_delivery *d,
		    const struct cqi_failure *fl)
{
	struct fake *f = F(q);
	struct fmsg *m = settle(f, d->delivery_tag);

	f->retries++;
	put(f, m->id, m->body, fl->attempts);
	q->hooks.settled(q->hooks.arg, false, true, NULL);
}

static bool f_dead_letter(struct cqi_qdriver *q, const struct cq_delivery *d,
			  const struct cqi_failure *fl, char *where, size_t len)
{
	struct fake *f = F(q);
	struct fdead *x = &f->dead[f->ndead++];

	x->m = *settle(f, d->delivery_tag);
	snprintf(x->reason, sizeof(x->reason), "%s", fl->reason);
	snprintf(x->tail, sizeof(x->tail), "%.*s", (int)fl->tlen, fl->tail);
	x->attempts = fl->attempts;
	x->code = fl->code;
	snprintf(where, len, "to 'fake.dlq'");
	q->hooks.settled(q->hooks.arg, true, true, NULL);
	return true;
}

static enum cq_err f_flush(struct cqi_qdriver *q)
{
	(void)q;
	return CQ_OK;
}

/* The connection closes: what was not settled is back in the queue (the
 * test keeps the fake to look at it). */
static void f_free(struct cqi_qdriver *q)
{
	struct fake *f = F(q);

	for (uint64_t t = 1; t <= f->next_tag; t++)
		if (f->out[t - 1]) {
			f->out[t - 1] = false;
			put(f, f->taken[t - 1].id, f->taken[t - 1].body,
			    f->taken[t - 1].retries);
		}
	f->freed = true;
}

/* Another node: whatever was not acked is back at the head of the queue,
 * redelivered; the tags taken so far mean nothing now. */
static enum cq_err f_reconnect(struct cqi_qdriver *q, char *from, size_t len)
{
	struct fake *f = F(q);
	struct fmsg back[MAXMSG];
	size_t n = 0;

	for (uint64_t t = 1; t <= f->next_tag; t++)
		if (f->out[t - 1]) {
			back[n] = *settle(f, t);
			back[n++].redelivered = true;
		}
	memmove(f->ready + n, f->ready, f->nready * sizeof(*f->ready));
	memcpy(f->ready, back, n * sizeof(*back));
	f->nready += n;
	f->first_live = f->next_tag + 1;
	f->reconnects++;
	snprintf(from, len, "node1");
	cq_clear_error(q->ctx);
	return CQ_OK;
}

static const char *f_where(const struct cqi_qdriver *q)
{
	(void)q;
	return "node2";
}

/* ---- replay's ops: copies are confirmed late (at the next take or
 * flush); a body "refuse" is nacked ---------------------------------------- */

static void f_hold(struct cqi_qdriver *q, uint64_t tag)
{
	assert_true(F(q)->out[tag - 1]);
	F(q)->nheld++;
}

/* Give back what is not acked, in its order, at the head of the queue. */
static enum cq_err f_release(struct cqi_qdriver *q)
{
	struct fake *f = F(q);
	struct fmsg back[MAXMSG];
	size_t n = 0;

	for (uint64_t t = 1; t <= f->next_tag; t++)
		if (f->out[t - 1]) {
			back[n++] = *settle(f, t);
			f->nreleased++;
		}
	memmove(f->ready + n, f->ready, f->nready * sizeof(*f->ready));
	memcpy(f->ready, back, n * sizeof(*back));
	f->nready += n;
	return CQ_OK;
}

static bool f_exhausted(const struct cqi_qdriver *q)
{
	const struct fake *f = (const struct fake *)q;

	return !f->taking || f->nready == 0;
}

static enum cq_err f_pub_start(struct cqi_qdriver *q, size_t window,
			       const char *exchange, bool mandatory)
{
	(void)window;
	(void)exchange;
	assert_true(mandatory);
	F(q)->replay = true;
	return CQ_OK;
}

static enum cq_err f_publish(struct cqi_qdriver *q, const struct cq_message *m,
			     uint64_t tag)
{
	struct fake *f = F(q);
	size_t i = f->npub++;

	assert_non_null(m->from);
	snprintf(f->pub[i].id, sizeof(f->pub[i].id), "%s", m->from->message_id);
	snprintf(f->pub[i].body, sizeof(f->pub[i].body), "%s", m->from->body);
	snprintf(f->pub_to[i], sizeof(f->pub_to[i]), "%s", m->routing_key);
	f->pub_src[i] = m->from->delivery_tag;
	f->pub_tag[i] = tag;
	return CQ_OK;
}

/* The copies sent so far are confirmed (or nacked). */
static enum cq_err f_pub_flush(struct cqi_qdriver *q)
{
	struct fake *f = F(q);

	while (f->nsettled < f->npub) {
		size_t i = f->nsettled++;
		bool ok = strcmp(f->pub[i].body, "refuse") != 0;

		f->safe[f->pub_src[i] - 1] = ok;
		q->hooks.published(q->hooks.arg, f->pub_tag[i], ok,
				   ok ? NULL : CQ_REASON_NACK);
	}
	return CQ_OK;
}

static enum cq_err f_replay_take(struct cqi_qdriver *q, size_t max,
				 long long wait_ms)
{
	f_pub_flush(q);
	return f_take(q, max, wait_ms);
}

static enum cq_err f_pub_poll(struct cqi_qdriver *q)
{
	(void)q;
	return CQ_OK;
}

static bool f_pub_alive(const struct cqi_qdriver *q)
{
	(void)q;
	return true;
}

static size_t f_pub_unsettled(const struct cqi_qdriver *q)
{
	const struct fake *f = (const struct fake *)q;

	return f->npub - f->nsettled;
}

static const struct cqi_qdriver_ops fake_ops = {
	.connect = f_connect,
	.inspect = f_inspect,
	.start = f_start,
	.take = f_take,
	.buffered = f_buffered,
	.fd = f_fd,
	.unsettled = f_unsettled,
	.depth = f_depth,
	.stop = f_stop,
	.resume = f_resume,
	.ack = f_ack,
	.retry = f_retry,
	.dead_letter = f_dead_letter,
	.reconnect = f_reconnect,
	.where = f_where,
	.flush = f_flush,
	.free = f_free,
};

/* The same queue as a dead-letter queue that replay moves from. */
static const struct cqi_qdriver_ops fake_dlq_ops = {
	.connect = f_connect,
	.inspect = f_inspect,
	.start = f_start,
	.take = f_replay_take,
	.buffered = f_buffered,
	.fd = f_fd,
	.unsettled = f_pub_unsettled,
	.depth = f_depth,
	.stop = f_stop,
	.resume = f_resume,
	.ack = f_ack,
	.hold = f_hold,
	.release = f_release,
	.exhausted = f_exhausted,
	.pub_start = f_pub_start,
	.publish = f_publish,
	.pub_poll = f_pub_poll,
	.pub_flush = f_pub_flush,
	.pub_alive = f_pub_alive,
	.free = f_free,
};

/* Read up to count of the queue, oldest first, taking nothing (a
 * list's LRANGE). */
static enum cq_err f_browse(struct cqi_qdriver *q, size_t count,
			    cq_peek_fn fn, void *arg, size_t *seen)
{
	struct fake *f = F(q);
	enum cq_err e = CQ_OK;

	for (*seen = 0; *seen < count && *seen < f->nready && !e; (*seen)++) {
		struct cq_delivery *d = delivery(&f->ready[*seen], *seen + 1);

		e = fn(arg, d);
		cqi_delivery_free(d);
	}
	return e;
}

/* ---- the fixture ------------------------------------------------------- */

struct fixture {
	struct cq_ctx *ctx;
	struct fake f;
	struct cq_consume_opts o;
	struct cq_consume_stats st;
	char dir[64];
	char cmd[512];
	char printed[MAXMSG][32];
	size_t nprinted;
	unsigned stop_after;	/* progress calls before the stop request */
};

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	snprintf(x->dir, sizeof(x->dir), "/tmp/cq-engine-test.XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	x->ctx = cq_ctx_new(NULL);
	assert_non_null(x->ctx);
	x->f.base.ops = &fake_ops;
	x->f.base.ctx = x->ctx;
	x->f.base.conf.queue = "fake";
	x->f.dir = x->dir;
	cq_consume_opts_init(&x->o);
	x->o.queue = "fake";
	x->o.arg = x;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", x->dir);
	assert_int_equal(system(cmd), 0);
	cq_ctx_free(x->ctx);
	free(x);
	return 0;
}

/* A handler: `sh -c` with $DIR set to the fixture's directory. */
static void handler(struct fixture *x, const char *script)
{
	snprintf(x->cmd, sizeof(x->cmd), "DIR='%s'; %s", x->dir, script);
	x->o.exec = x->cmd;
	x->f.base.conf.exec = true;
}

static enum cq_err run(struct fixture *x)
{
	return cqi_consume_on(x->ctx, &x->f.base, &x->o, &x->st);
}

static int lines_in(struct fixture *x, const char *name)
{
	char path[256], buf[256];
	FILE *fp;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", x->dir, name);
	fp = fopen(path, "r");
	if (!fp)
		return 0;
	while (fgets(buf, sizeof(buf), fp))
		n++;
	fclose(fp);
	return n;
}

static bool print_one(void *arg, const struct cq_delivery *d)
{
	struct fixture *x = arg;

	snprintf(x->printed[x->nprinted++], sizeof(x->printed[0]), "%s",
		 d->message_id);
	return true;
}

static bool flush_ok(void *arg)
{
	(void)arg;
	return true;
}

static void stop_later(void *arg, const struct cq_consume_stats *st)
{
	struct fixture *x = arg;

	(void)st;
	if (x->stop_after && --x->stop_after == 0)
		raise(SIGTERM);
}

/* ---- the tests -------------------------------------------------------- */

/* Every message is acked, and only once its handler has finished. */
static void test_ack_after_success(void **state)
{
	struct fixture *x = *state;

	put(&x->f, "m1", "a", 0);
	put(&x->f, "m2", "b", 0);
	put(&x->f, "m3", "c", 0);
	handler(x, "sleep 0.05; cat > \"$DIR/$CQ_MESSAGE_ID\"");
	x->o.jobs = 2;
	x->o.until_empty = true;
	assert_int_equal(run(x), CQ_OK);
	assert_true(x->f.freed);
	assert_int_equal(x->f.nacked, 3);
	assert_false(x->f.ack_before_done);
	assert_int_equal(x->f.nready, 0);
	assert_int_equal(x->st.received, 3);
	assert_int_equal(x->st.acked, 3);
	assert_int_equal(x->st.handled, 3);
	assert_int_equal(x->st.retried + x->st.dead_lettered, 0);
	/* the window is --jobs: never more than two taken at once */
	assert_int_equal(x->f.window, 2);
	assert_true(x->f.most_out <= 2);
}

/* A handler that keeps failing: retried --max-retries times (the count
 * carried on the message), then dead-lettered with its reason. */
static void test_retries_then_dead_letter(void **state)
{
	struct fixture *x = *state;

	put(&x->f, "m1", "a", 0);
	handler(x, "echo \"try $CQ_RETRIES\" >> \"$DIR/runs\"; echo oops >&2; exit 3");
	x->o.max_retries = 2;
	x->o.until_empty = true;
	assert_int_equal(run(x), CQ_OK);
	assert_int_equal(lines_in(x, "runs"), 3);
	assert_int_equal(x->f.retries, 2);
	assert_int_equal(x->st.retried, 2);
	assert_int_equal(x->st.dead_lettered, 1);
	assert_int_equal(x->st.acked, 0);
	assert_int_equal(x->f.nacked, 0);
	assert_int_equal(x->f.ndead, 1);
	assert_string_equal(x->f.dead[0].m.id, "m1");
	assert_string_equal(x->f.dead[0].reason, "exit 3");
	assert_int_equal(x->f.dead[0].attempts, 3);
	assert_int_equal(x->f.dead[0].code, 3);
	assert_string_equal(x->f.dead[0].tail, "oops");
	assert_int_equal(x->f.nready, 0);
}

/* A message that already carries retries gets only what is left. */
static void test_retries_carried(void **state)
{
	struct fixture *x = *state;

	put(&x->f, "m1", "a", 2);
	handler(x, "echo x >> \"$DIR/runs\"; exit 1");
	x->o.max_retries = 3;
	x->o.until_empty = true;
	assert_int_equal(run(x), CQ_OK);
	assert_int_equal(lines_in(x, "runs"), 2);
	assert_int_equal(x->f.ndead, 1);
	assert_int_equal(x->f.dead[0].attempts, 4);
}

/* A poison code is dead-lettered at once; another code is retried. */
static void test_poison(void **state)
{
	struct fixture *x = *state;
	static const int poison[] = { 65, 78 };

	put(&x->f, "p", "poison", 0);
	put(&x->f, "r", "retry", 0);
	handler(x, "if [ \"$(cat)\" = poison ]; then exit 65; fi; "
		   "[ \"$CQ_RETRIES\" = 1 ] && exit 0; exit 64");
	x->o.poison_codes = poison;
	x->o.npoison = 2;
	x->o.max_retries = 3;
	x->o.until_empty = true;
	assert_int_equal(run(x), CQ_OK);
	assert_int_equal(x->f.ndead, 1);
	assert_string_equal(x->f.dead[0].m.id, "p");
	assert_string_equal(x->f.dead[0].reason, "poison (exit 65)");
	assert_int_equal(x->f.dead[0].attempts, 1);
	assert_int_equal(x->f.dead[0].code, 65);
	/* 64 is not poison: retried once, then it succeeded */
	assert_int_equal(x->st.retried, 1);
	assert_int_equal(x->f.nacked, 1);
	assert_string_equal(x->f.acked[0].id, "r");
	assert_int_equal(x->f.acked[0].retries, 1);
}

/* A timeout is a failure like any other, with its own reason. */
static void test_timeout_reason(void **state)
{
	struct fixture *x = *state;

	put(&x->f, "slow", "a", 0);
	handler(x, "exec sleep 5");
	x->o.handler_timeout_ms = 100;
	x->o.max_retries = 0;
	x->o.until_empty = true;
	assert_int_equal(run(x), CQ_OK);
	assert_int_equal(x->f.ndead, 1);
	assert_string_equal(x->f.dead[0].reason, "timeout");
}

/* --count: that many are printed and acked; the rest stay in the queue,
 * and no more than the count were taken. */
static void test_count(void **state)
{
	struct fixture *x = *state;

	for (int i = 0; i < 5; i++) {
		char id[8];

		snprintf(id, sizeof(id), "m%d", i);
		put(&x->f, id, "x", 0);
	}
	x->f.dir = NULL;
	x->o.print = print_one;
	x->o.flush = flush_ok;
	x->o.count = 2;
	assert_int_equal(run(x), CQ_OK);
	assert_int_equal(x->nprinted, 2);
	assert_string_equal(x->printed[0], "m0");
	assert_string_equal(x->printed[1], "m1");
	assert_int_equal(x->f.nacked, 2);
	assert_int_equal(x->st.acked, 2);
	assert_int_equal(x->f.next_tag, 2);
	assert_int_equal(x->f.nready, 3);
	assert_string_equal(x->f.ready[0].id, "m2");
}

/* --until-empty on an empty queue: nothing to do is "empty" (69). */
static void test_until_empty_empty(void **state)
{
	struct fixture *x = *state;

	x->o.print = print_one;
	x->o.flush = flush_ok;
	x->o.until_empty = true;
	assert_int_equal(run(x), CQ_ERR_NOTFOUND);
	assert_non_null(strstr(x->ctx->errstr, "queue 'fake' is empty"));
	assert_int_equal(x->st.received, 0);
}

/* A stop request (SIGTERM, caught by stop.c): nothing new is taken, and
 * the handlers in flight finish and are settled (acked after success).
 * The request stays for the rest of the process: this test runs last. */
static void test_stop_settles_in_flight(void **state)
{
	struct fixture *x = *state;

	for (int i = 0; i < 4; i++) {
		char id[8];

		snprintf(id, sizeof(id), "m%d", i);
		put(&x->f, id, "x", 0);
	}
	handler(x, "sleep 0.4; cat > \"$DIR/$CQ_MESSAGE_ID\"");
	x->o.jobs = 2;
	assert_int_equal(cq_stop_catch(x->ctx), CQ_OK);
	x->o.progress = stop_later;
	x->stop_after = 2;	/* the first comes before any handler starts */
	assert_int_equal(run(x), CQ_OK);
	assert_true(x->st.stopped);
	assert_int_equal(x->st.acked, 2);
	assert_int_equal(x->f.nacked, 2);
	assert_false(x->f.ack_before_done);
	assert_int_equal(x->f.next_tag, 2);
	assert_int_equal(x->f.nready, 2);
}

/* ---- replay ------------------------------------------------------------- */

static enum cq_err run_replay(struct fixture *x, struct cq_replay_opts *o,
			      struct cq_replay_stats *st)
{
	x->f.base.ops = &fake_dlq_ops;
	x->f.dir = NULL;
	return cqi_replay_on(x->ctx, &x->f.base, o, st);
}

static void test_replay_confirm_then_ack(void **state)
{
	struct fixture *x = *state;
	struct cq_replay_opts o;
	struct cq_replay_stats st;

	put(&x->f, "a", "1", 0);
	put(&x->f, "b", "refuse", 0);
	put(&x->f, "c", "3", 0);
	cq_replay_opts_init(&o);
	o.to = "work";
	o.window = 2;
	assert_int_equal(run_replay(x, &o, &st), CQ_OK);
	assert_int_equal(st.present, 3);
	assert_int_equal(st.replayed, 2);
	assert_int_equal(st.failed, 1);
	assert_string_equal(st.target, "work");
	/* every copy went to the target; the originals acked only after */
	assert_int_equal(x->f.npub, 3);
	assert_string_equal(x->f.pub_to[0], "work");
	assert_false(x->f.ack_before_confirm);
	assert_int_equal(x->f.nacked, 2);
	/* the refused one is back in the DLQ, nothing else */
	assert_int_equal(x->f.nready, 1);
	assert_string_equal(x->f.ready[0].id, "b");
	assert_int_equal(x->f.nreleased, 1);
}

static void test_replay_bounds_and_filters(void **state)
{
	struct fixture *x = *state;
	struct cq_replay_opts o;
	struct cq_replay_stats st;
	struct cq_filter *fl = NULL;
	char err[200];

	for (int i = 0; i < 6; i++) {
		char id[8], body[16];

		snprintf(id, sizeof(id), "m%d", i);
		snprintf(body, sizeof(body), i % 2 ? "skip %d" : "keep %d", i);
		put(&x->f, id, body, 0);
	}
	assert_int_equal(cq_filter_add(&fl, "body:^keep", err, sizeof(err)), CQ_OK);
	cq_replay_opts_init(&o);
	o.to = "work";
	o.count = 4;		/* m0-m3 looked at, m4 and m5 not */
	o.filter = fl;
	assert_int_equal(run_replay(x, &o, &st), CQ_OK);
	assert_int_equal(st.seen, 4);
	assert_int_equal(st.replayed, 2);
	assert_int_equal(st.skipped, 2);
	assert_int_equal(x->f.npub, 2);
	assert_string_equal(x->f.pub[0].id, "m0");
	assert_string_equal(x->f.pub[1].id, "m2");
	/* what stays keeps its order */
	assert_int_equal(x->f.nready, 4);
	assert_string_equal(x->f.ready[0].id, "m1");
	assert_string_equal(x->f.ready[1].id, "m3");
	assert_string_equal(x->f.ready[2].id, "m4");
	assert_string_equal(x->f.ready[3].id, "m5");
	cq_filter_free(fl);
}

static void test_replay_dry_run(void **state)
{
	struct fixture *x = *state;
	struct cq_replay_opts o;
	struct cq_replay_stats st;

	put(&x->f, "a", "1", 0);
	put(&x->f, "b", "2", 0);
	cq_replay_opts_init(&o);
	o.to = "work";
	o.dry_run = true;
	assert_int_equal(run_replay(x, &o, &st), CQ_OK);
	assert_int_equal(st.would_move, 2);
	assert_int_equal(x->f.npub, 0);
	assert_int_equal(x->f.nacked, 0);
	assert_int_equal(x->f.nready, 2);
	assert_string_equal(x->f.ready[0].id, "a");
	assert_string_equal(x->f.ready[1].id, "b");
}

/* o->fn: the reader goes away after the first event. */
static bool gone_after_one(void *arg, const struct cq_replay_event *ev)
{
	(void)ev;
	return ++*(int *)arg < 1;
}

/*
 * A dry run on a driver with browse reads without taking: nothing is
 * started, taken, held or given back, the bound and the filter apply as
 * on the taking path, and a reader that goes away ends it quietly.
 */
static void test_replay_dry_run_browse(void **state)
{
	struct fixture *x = *state;
	struct cqi_qdriver_ops ops = fake_dlq_ops;	/* with browse */
	struct cq_replay_opts o;
	struct cq_replay_stats st;
	struct cq_filter *fl = NULL;
	char err[200];
	int events = 0;

	put(&x->f, "a", "1", 0);
	put(&x->f, "b", "2", 0);
	put(&x->f, "c", "3", 0);
	assert_int_equal(cq_filter_add(&fl, "body:^[13]$", err, sizeof(err)), CQ_OK);
	cq_replay_opts_init(&o);
	o.to = "work";
	o.dry_run = true;
	o.count = 2;
	o.filter = fl;
	ops.browse = f_browse;
	x->f.base.ops = &ops;
	x->f.dir = NULL;
	assert_int_equal(cqi_replay_on(x->ctx, &x->f.base, &o, &st), CQ_OK);
	assert_int_equal(st.present, 3);
	assert_int_equal(st.seen, 2);
	assert_int_equal(st.would_move, 1);
	assert_int_equal(st.skipped, 1);
	assert_string_equal(st.target, "work");
	assert_false(x->f.taking);
	assert_int_equal(x->f.next_tag, 0);
	assert_int_equal(x->f.nheld, 0);
	assert_int_equal(x->f.nreleased, 0);
	assert_int_equal(x->f.npub, 0);
	assert_int_equal(x->f.nready, 3);
	assert_string_equal(x->f.ready[0].id, "a");
	assert_string_equal(x->f.ready[2].id, "c");
	/* the reader goes away: the run ends there, no error */
	cq_replay_opts_init(&o);
	o.to = "work";
	o.dry_run = true;
	o.fn = gone_after_one;
	o.arg = &events;
	assert_int_equal(cqi_replay_on(x->ctx, &x->f.base, &o, &st), CQ_OK);
	assert_true(st.quit);
	assert_false(st.stopped);
	assert_int_equal(st.seen, 1);
	assert_int_equal(x->ctx->err, CQ_OK);
	assert_int_equal(x->f.nready, 3);
	cq_filter_free(fl);
}

static void on_reconnected(void *arg, const struct cq_reconnect *r)
{
	(void)arg;
	assert_string_equal(r->from, "node1");
	assert_string_equal(r->to, "node2");
	assert_int_equal(r->n, 1);
}

/*
 * The connection is lost with an ack written but never read, handlers
 * running, and messages waiting: after the reconnect nothing is acked
 * under a tag of the lost connection, every message is acked exactly
 * once, the summary counts each once, and a message run twice was
 * flagged redelivered the second time.
 */
static void test_reconnect_counts_once(void **state)
{
	struct fixture *x = *state;
	char path[256], line[128];
	int runs[8] = { 0 }, flagged[8] = { 0 };
	FILE *fp;

	for (int i = 1; i <= 6; i++) {
		char id[8];

		snprintf(id, sizeof(id), "m%d", i);
		put(&x->f, id, id, 0);
	}
	x->f.base.can_reconnect = true;
	x->f.lose_at = "m3";
	handler(x, "cat > \"$DIR/$CQ_MESSAGE_ID\"; sleep 0.05; echo \"$CQ_MESSAGE_ID $CQ_REDELIVERED\" >> \"$DIR/runs\"");
	x->f.base.conf.exec = true;
	x->o.jobs = 2;
	x->o.until_empty = true;
	x->o.reconnected = on_reconnected;
	assert_int_equal(run(x), CQ_OK);
	assert_int_equal(x->f.reconnects, 1);
	assert_int_equal(x->st.reconnects, 1);
	assert_false(x->f.stale_ack);
	assert_int_equal(x->f.nready, 0);
	assert_int_equal(x->f.nacked, 6);
	for (size_t i = 0; i < x->f.nacked; i++)
		for (size_t j = i + 1; j < x->f.nacked; j++)
			assert_string_not_equal(x->f.acked[i].id, x->f.acked[j].id);
	assert_int_equal(x->st.acked, 6);
	assert_int_equal(x->st.handled, 6);
	/* m3's copy came back: its ack was lost, it is not run again */
	assert_true(x->st.reacked >= 1);
	snprintf(path, sizeof(path), "%s/runs", x->dir);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		int i = line[1] - '0';

		runs[i]++;
		flagged[i] += line[3] == '1';
	}
	fclose(fp);
	assert_int_equal(runs[3], 1);
	for (int i = 1; i <= 6; i++) {
		assert_true(runs[i] >= 1);
		assert_true(runs[i] - 1 <= flagged[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ack_after_success, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retries_then_dead_letter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retries_carried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_poison, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect_counts_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_until_empty_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_confirm_then_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_bounds_and_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_dry_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_dry_run_browse, setup, teardown),
		/* last: a stop request stays for the rest of the process */
		cmocka_unit_test_setup_teardown(test_stop_settles_in_flight, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
