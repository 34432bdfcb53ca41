/* warm.c - bulk cache loading: records from a stream, pipelined SETs with
 * TTL + jitter in a bounded window, or a command run per missing key. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

#define DEFAULT_MAX_SIZE (64ULL << 20)
#define EXEC_BATCH 256

/* ---- the run --------------------------------------------------------------- */

enum { K_SET, K_TAG, K_LOCK };
#define TAG(recno, kind) ((recno) << 2 | (kind))

struct warm {
	struct cq_ctx *ctx;
	const struct cq_warm_opts *o;
	struct cq_warm_stats *st;
	struct cqi_gen gen;
	struct cqi_pipe pipe;
	struct cq_buf key, tagkey;
	struct cqi_throttle thr;
	long long t0, last_progress, last_extend;
	struct cq_buf lockkey;
	struct cqi_lock lock;
	bool lock_lost;
	unsigned long long max;	/* longest value */
};

static void report_fail(struct warm *w, uint64_t recno, const char *key,
			size_t keylen, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void report_fail(struct warm *w, uint64_t recno, const char *key,
			size_t keylen, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	w->st->failed++;
	if (!w->o->on_fail)
		return;
	va_start(ap, fmt);
	cqi_vformat(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->o->on_fail(w->o->arg, recno, key, keylen, msg);
}

/* A write Redis answered with an error; one refused for permission says
 * so and is counted apart, since no retry gets it through. */
static void report_refused(struct warm *w, uint64_t recno, const char *key,
			   size_t keylen, const char *what, const char *reply)
{
	if (cqi_redis_err_kind(reply) == CQ_ERR_NOPERM) {
		w->st->denied++;
		report_fail(w, recno, key, keylen, "%s: permission denied: %s",
			    what, reply);
	} else {
		report_fail(w, recno, key, keylen, "%s: %s", what, reply);
	}
}

/* Recording the key under tag i (SIZE_MAX: one of several) refused: a
 * tag key of another type is the input's fault, as for set --tag (no
 * retry gets it through); the rest as a write refused. */
static void tag_refused(struct warm *w, uint64_t recno, const char *key,
			size_t keylen, size_t i, const char *reply)
{
	const struct cq_set_opts *o = &w->o->set;

	if (cqi_redis_err_kind(reply) != CQ_ERR_DATA) {
		report_refused(w, recno, key, keylen, "recording a tag failed",
			       reply);
		return;
	}
	w->st->wrong_type++;
	if (o->ntags == 1)
		i = 0;
	if (i < o->ntags)
		report_fail(w, recno, key, keylen,
			    "tag '%s': its key holds something other than a set (the key was written, not recorded under the tag)",
			    o->tags[i]);
	else
		report_fail(w, recno, key, keylen,
			    "a --tag's key holds something other than a set (the key was written, not recorded under that tag)");
}

/* The --once lock expired or was taken: said once, and not released. */
static void lock_lost(struct warm *w)
{
	if (!w->lock_lost)
		report_fail(w, 0, NULL, 0, "lost the --once lock (it expired or was taken); another run may start");
	w->lock_lost = true;
	w->lock.held = false;
}

static void on_reply(void *arg, uint64_t tag, struct cqi_reply *r)
{
	struct warm *w = arg;
	uint64_t recno = tag >> 2;

	switch (tag & 3) {
	case K_SET:
		if (r->type == CQI_REPLY_ERROR)
			report_refused(w, recno, NULL, 0, "write refused", r->str);
		else if (r->type == CQI_REPLY_NIL)
			w->st->skipped++;
		else
			w->st->warmed++;
		break;
	case K_TAG:
		if (r->type == CQI_REPLY_ERROR)
			tag_refused(w, recno, NULL, 0, SIZE_MAX, r->str);
		break;
	case K_LOCK:
		if (r->type != CQI_REPLY_INTEGER || r->integer != 1)
			lock_lost(w);
		break;
	}
}

static void progress(struct warm *w, bool force)
{
	long long now = cq_now_ms();

	w->st->elapsed_ms = now - w->t0;
	if (w->o->on_progress && (force || now - w->last_progress >= 100)) {
		w->last_progress = now;
		w->o->on_progress(w->o->arg, w->st);
	}
}

static long long once_ttl(const struct warm *w)
{
	return w->o->once_ttl_ms > 0 ? w->o->once_ttl_ms : 60000;
}

/* Keep the --once lock while the run lasts (pipelined in data mode). */
static enum cq_err extend_lock(struct warm *w, bool pipelined)
{
	char ttl[32];
	const char *argv[6] = { "EVAL", cqi_lock_extend_lua, "1",
				w->lockkey.data, w->lock.token, ttl };
	size_t lens[6] = { 4, strlen(cqi_lock_extend_lua), 1, w->lockkey.len,
			   strlen(w->lock.token), 0 };
	long long now = cq_now_ms();
	bool still;

	if (!w->lock.held || now - w->last_extend < once_ttl(w) / 3)
		return CQ_OK;
	w->last_extend = now;
	snprintf(ttl, sizeof(ttl), "%lld", once_ttl(w));
	lens[5] = strlen(ttl);
	if (pipelined)
		return cqi_pipe_cmd(&w->pipe, TAG(0, K_LOCK), CQI_KEY(3), 6,
				    argv, lens);
	if (cqi_lock_extend(w->ctx, w->lockkey.data, w->lockkey.len,
			    once_ttl(w), &w->lock, &still))
		return w->ctx->err;
	if (!still)
		lock_lost(w);
	return CQ_OK;
}

static enum cq_err queue_tags(struct warm *w, uint64_t recno,
			      const char *const *tags, const size_t *lens_in,
			      size_t n, long long ttl)
{
	return cqi_tag_append(w->ctx, &w->pipe, TAG(recno, K_TAG), w->key.data,
			      w->key.len, tags, lens_in, n, ttl, &w->tagkey);
}

/* The TTL of one key: the record's own, or the run's; jittered. */
static long long rec_ttl(const struct warm *w, const struct cqi_warm_rec *rec)
{
	struct cq_set_opts s = w->o->set;

	if (rec->ttl_ms > 0)
		s.ttl_ms = rec->ttl_ms;
	else if (s.no_ttl)
		return 0;
	return cqi_jittered_ttl(&s);
}

/* A positive number in decimal into buf[32] (no printf per line). */
static size_t fmt_ll(char *buf, long long v)
{
	char tmp[24], *t = tmp + sizeof(tmp);
	size_t n;

	do {
		*--t = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	n = (size_t)(tmp + sizeof(tmp) - t);
	memcpy(buf, t, n);
	buf[n] = '\0';
	return n;
}

static enum cq_err queue_set(struct warm *w, uint64_t recno,
			     const struct cqi_warm_rec *rec)
{
	const struct cq_set_opts *s = &w->o->set;
	const char *argv[6] = { "SET" };
	size_t lens[6] = { 3 };
	int argc = 1;
	char ttls[32];
	long long ttl = rec_ttl(w, rec);

	if (!cqi_data_key(w->ctx, s->ns, &w->gen, rec->key, rec->keylen, &w->key))
		return cq_seterr(w->ctx, CQ_ERR_NOMEM, "out of memory");
	argv[argc] = w->key.data, lens[argc++] = w->key.len;
	argv[argc] = rec->val, lens[argc++] = rec->vallen;
	if (ttl > 0) {
		argv[argc] = "PX", lens[argc++] = 2;
		argv[argc] = ttls, lens[argc++] = fmt_ll(ttls, ttl);
	}
	if (s->nx)
		argv[argc] = "NX", lens[argc++] = 2;
	if (cqi_pipe_cmd(&w->pipe, TAG(recno, K_SET), CQI_KEY(1), argc, argv,
			 lens))
		return w->ctx->err;
	if (rec->ntags && queue_tags(w, recno, rec->tags, rec->taglens,
				     rec->ntags, ttl))
		return w->ctx->err;
	if (s->ntags && queue_tags(w, recno, s->tags, NULL, s->ntags, ttl))
		return w->ctx->err;
	return CQ_OK;
}

static bool parse(const struct warm *w, const char *p, size_t n,
		  struct cqi_warm_rec *rec, char *err, size_t errlen)
{
	if (w->o->exec)
		return cqi_warm_parse_key(p, n, rec, err, errlen);
	switch (w->o->format) {
	case CQ_WARM_NUL:
		return cqi_warm_parse_nul(p, n, rec, err, errlen);
	case CQ_WARM_JSONL:
		return cqi_warm_parse_jsonl(p, n, rec, err, errlen);
	case CQ_WARM_TSV:
		break;
	}
	return cqi_warm_parse_tsv(p, n, rec, err, errlen);
}

static void report_bad(struct warm *w, uint64_t recno, const char *msg)
{
	w->st->bad++;
	if (w->o->on_bad)
		w->o->on_bad(w->o->arg, recno, msg);
}

/* Next good record: bad ones are reported and skipped.  False at the end
 * of the input, or on an error (set on the context). */
static bool next_record(struct warm *w, struct cq_reader *rd,
			struct cqi_warm_rec *rec)
{
	char err[200];
	struct cq_rec_in in;

	while (cqi_reader_next(rd, &in)) {
		w->st->records = in.no;
		w->st->blank = cqi_reader_blank(rd);
		if (in.flaw == CQ_REC_TOO_LONG) {
			report_bad(w, in.no, "record longer than --max-size");
			continue;
		}
		if (in.flaw) {
			report_bad(w, in.no, cqi_rec_flaw_str(in.flaw));
			continue;
		}
		if (!parse(w, in.p, in.len, rec, err, sizeof(err))) {
			if (rec->nomem) {
				cq_seterr(w->ctx, CQ_ERR_NOMEM, "out of memory");
				break;
			}
			report_bad(w, in.no, err);
			continue;
		}
		if (rec->vallen > w->max) {
			report_bad(w, in.no, "value larger than --max-size");
			continue;
		}
		return true;
	}
	w->st->records = cqi_reader_records(rd);
	w->st->blank = cqi_reader_blank(rd);
	if (cqi_reader_stopped(rd))
		w->st->stopped = true;
	return false;
}

/* The reader's wait (cqi_reader_wait): input at hand is read on, the
 * batch kept; slow input (a pipe from a producer, no line yet) first
 * sends what is queued and reads its replies, so that a record read is
 * written now, not with the next batch, 250 records or EOF later. */
static enum cq_err wait_input(void *arg, int fd)
{
	struct warm *w = arg;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 0) > 0)
		return CQ_OK;
	if (cqi_pipe_sync(&w->pipe, 0))
		return w->ctx->err;
	progress(w, false);
	return cqi_wait_readable(w->ctx, fd);
}

static enum cq_err warm_data(struct warm *w, struct cq_reader *rd)
{
	struct cqi_warm_rec rec = { 0 };
	uint64_t every = 1;

	if (w->o->rate > 0)	/* send about 20 times a second */
		every = w->o->rate / 20 > 1 ? (uint64_t)(w->o->rate / 20) : 1;
	cqi_reader_wait(rd, wait_input, w);
	while (next_record(w, rd, &rec)) {
		if (queue_set(w, w->st->records, &rec))
			break;
		if (w->o->rate > 0) {
			if (w->st->records % every == 0 &&
			    cqi_pipe_sync(&w->pipe, 0))
				break;
			cqi_throttle_wait(&w->thr, 1);
		}
		if ((w->st->records & 255) == 0 || w->o->rate > 0) {
			progress(w, false);
			if (extend_lock(w, true))
				break;
		}
	}
	cqi_warm_rec_clear(&rec);
	if (!w->ctx->err)
		cqi_pipe_sync(&w->pipe, 0);
	return w->ctx->err;
}

/* ---- --exec: a command per missing key ------------------------------------ */

struct job {
	struct cqi_child ch;
	char *key;		/* the user's key, NUL-terminated */
	size_t keylen;
	uint64_t recno;
	bool running;
};

/* The missing keys of a batch, with EXISTS pipelined. */
static enum cq_err find_missing(struct warm *w, struct job *jobs, size_t n,
				bool *missing)
{
	const char *argv[2] = { "EXISTS" };
	size_t lens[2] = { 6 };
	size_t i;

	for (i = 0; i < n; i++) {
		if (!cqi_data_key(w->ctx, w->o->set.ns, &w->gen, jobs[i].key,
				  jobs[i].keylen, &w->key))
			return cq_seterr(w->ctx, CQ_ERR_NOMEM, "out of memory");
		argv[1] = w->key.data, lens[1] = w->key.len;
		if (cqi_redis_append(w->ctx, CQI_KEY(1), 2, argv, lens))
			return w->ctx->err;
	}
	for (i = 0; i < n; i++) {
		struct cqi_reply *r;

		if (cqi_redis_reply(w->ctx, &r))
			return w->ctx->err;
		if (r->type == CQI_REPLY_ERROR)
			cqi_redis_reply_err(w->ctx, r, "EXISTS");
		missing[i] = r->type == CQI_REPLY_INTEGER && r->integer == 0;
		cqi_reply_free(r);
	}
	return w->ctx->err;
}

static enum cq_err job_start(struct warm *w, struct job *j)
{
	char *argv[] = { "/bin/sh", "-c", (char *)w->o->exec, "sh", j->key, NULL };

	memset(&j->ch, 0, sizeof(j->ch));
	j->ch.max = w->max;
	if (cqi_child_start(w->ctx, argv, j->key, true, &j->ch))
		return w->ctx->err;
	j->running = true;
	return CQ_OK;
}

/* A job's command ended: cache its output if it succeeded. */
static enum cq_err job_done(struct warm *w, struct job *j)
{
	struct cqi_warm_rec rec = { .key = j->key, .keylen = j->keylen,
				   .ttl_ms = -1 };
	int code = cqi_child_finish(&j->ch);
	const char *argv[7] = { "SET" };
	size_t lens[7] = { 3 };
	int argc = 1;
	char ttls[32];
	long long ttl;
	struct cqi_reply *r;
	enum cq_err e;
	bool written = false;

	j->running = false;
	if (code != 0 || j->ch.too_big) {
		if (code != 0)
			report_fail(w, j->recno, j->key, j->keylen,
				    "command exited %d", code);
		else
			report_fail(w, j->recno, j->key, j->keylen,
				    "output larger than --max-size, not cached");
		cqi_child_clear(&j->ch);
		return CQ_OK;
	}
	ttl = rec_ttl(w, &rec);
	cqi_data_key(w->ctx, w->o->set.ns, &w->gen, j->key, j->keylen, &w->key);
	argv[argc] = w->key.data, lens[argc++] = w->key.len;
	argv[argc] = j->ch.out.data ? j->ch.out.data : "", lens[argc++] = j->ch.out.len;
	if (ttl > 0) {
		snprintf(ttls, sizeof(ttls), "%lld", ttl);
		argv[argc] = "PX", lens[argc++] = 2;
		argv[argc] = ttls, lens[argc++] = strlen(ttls);
	}
	argv[argc] = "NX", lens[argc++] = 2;
	e = cqi_redis_append(w->ctx, CQI_KEY(1), argc, argv, lens);
	cqi_child_clear(&j->ch);	/* the append copied the value */
	if (e || cqi_redis_reply(w->ctx, &r))
		return w->ctx->err;
	if (r->type == CQI_REPLY_ERROR)
		report_refused(w, j->recno, j->key, j->keylen, "write refused",
			       r->str);
	else if (r->type == CQI_REPLY_NIL)
		w->st->skipped++;	/* someone filled it meanwhile */
	else
		written = true;
	cqi_reply_free(r);
	if (!written)
		return CQ_OK;
	w->st->warmed++;
	if (!w->o->set.ntags)
		return CQ_OK;
	if (cqi_tag_append(w->ctx, NULL, 0, w->key.data, w->key.len, w->o->set.tags,
			   NULL, w->o->set.ntags, ttl, &w->tagkey))
		return w->ctx->err;
	for (size_t i = 0; i < w->o->set.ntags; i++) {
		if (cqi_redis_reply(w->ctx, &r))
			return w->ctx->err;
		if (r->type == CQI_REPLY_ERROR)
			tag_refused(w, j->recno, j->key, j->keylen, i, r->str);
		cqi_reply_free(r);
	}
	return CQ_OK;
}

/* A stop request: the running commands' process groups are stopped,
 * nothing more is started, their keys are left unwritten. */
static void stop_jobs(struct warm *w, struct job *jobs, size_t n)
{
	w->st->stopped = true;
	for (size_t i = 0; i < n; i++) {
		if (!jobs[i].running)
			continue;
		cqi_child_stop(&jobs[i].ch);
		cqi_child_clear(&jobs[i].ch);
		jobs[i].running = false;
	}
}

/* Run the missing keys' commands, jobs at a time, until all are done. */
static enum cq_err run_jobs(struct warm *w, struct job *jobs, size_t n,
			    const bool *missing)
{
	unsigned max = w->o->jobs ? w->o->jobs : 1;
	struct pollfd pfd[n ? n : 1];
	size_t map[n ? n : 1];
	size_t next = 0, running = 0;

	for (;;) {
		size_t np = 0;

		while (running < max && next < n && !cq_stop_requested()) {
			struct job *j = &jobs[next++];

			if (!missing[j - jobs])
				continue;
			if (job_start(w, j)) {
				if (w->ctx->err == CQ_ERR_INTERNAL)
					return w->ctx->err;
				/* not found / not executable: every key fails */
				report_fail(w, j->recno, j->key, j->keylen, "%s",
					    w->ctx->errstr);
				return w->ctx->err;
			}
			running++;
		}
		if (cq_stop_requested()) {
			stop_jobs(w, jobs, n);
			return CQ_OK;
		}
		if (!running)
			return CQ_OK;
		for (size_t i = 0; i < n; i++) {
			if (jobs[i].running) {
				pfd[np].fd = jobs[i].ch.fd;
				pfd[np].events = POLLIN;
				map[np++] = i;
			}
		}
		if (poll(pfd, np, (int)(once_ttl(w) / 3)) < 0 && errno != EINTR)
			return cq_seterr(w->ctx, CQ_ERR_INTERNAL, "poll: %s",
					 strerror(errno));
		for (size_t i = 0; i < np; i++) {
			struct job *j = &jobs[map[i]];

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (cqi_child_read(&j->ch))
				continue;
			running--;
			if (job_done(w, j))
				return w->ctx->err;
		}
		if (extend_lock(w, false))
			return w->ctx->err;
		progress(w, false);
	}
}

static void free_jobs(struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (jobs[i].running)
			cqi_child_finish(&jobs[i].ch);
		cqi_child_clear(&jobs[i].ch);
		free(jobs[i].key);
	}
}

static enum cq_err warm_exec(struct warm *w, struct cq_reader *rd)
{
	struct cqi_warm_rec rec = { 0 };
	struct job jobs[EXEC_BATCH];
	bool missing[EXEC_BATCH];
	size_t n = 0;
	bool more;

	memset(jobs, 0, sizeof(jobs));
	do {
		more = next_record(w, rd, &rec);
		if (more) {
			struct job *j = &jobs[n++];

			j->key = cqi_memdup(rec.key, rec.keylen);
			if (!j->key) {
				cq_seterr(w->ctx, CQ_ERR_NOMEM, "out of memory");
				break;
			}
			j->keylen = rec.keylen;
			j->recno = w->st->records;
			j->ch.fd = -1;
		}
		if (w->st->stopped)
			break;	/* the batch read is not run */
		if (n == EXEC_BATCH || (!more && n)) {
			if (find_missing(w, jobs, n, missing))
				break;
			for (size_t i = 0; i < n; i++)
				w->st->skipped += !missing[i];
			if (run_jobs(w, jobs, n, missing) || w->st->stopped)
				break;
			free_jobs(jobs, n);
			memset(jobs, 0, sizeof(jobs));
			n = 0;
		}
	} while (more);
	free_jobs(jobs, n);
	cqi_warm_rec_clear(&rec);
	return w->ctx->err;
}

/* ---- entry ------------------------------------------------------------------ */

static enum cq_err take_once_lock(struct warm *w)
{
	const char *name = w->o->once;
	bool won;

	if (!cqi_own_key(w->ctx, "once", name, strlen(name), &w->lockkey))
		return cq_seterr(w->ctx, CQ_ERR_NOMEM, "out of memory");
	if (cqi_lock_try(w->ctx, w->lockkey.data, w->lockkey.len, once_ttl(w),
			 &w->lock, &won))
		return w->ctx->err;
	w->st->locked_out = !won;
	w->last_extend = cq_now_ms();
	return CQ_OK;
}

/* A run that had to stop: the records read that got no reply are failed
 * too, so that the summary counts what the error says. */
static void count_unconfirmed(struct cq_warm_stats *st)
{
	uint64_t done = st->warmed + st->skipped + st->bad + st->failed +
			st->blank;

	st->unconfirmed = st->records > done ? st->records - done : 0;
	st->failed += st->unconfirmed;
}

enum cq_err cq_warm(struct cq_ctx *ctx, int fd, const struct cq_warm_opts *o,
		    struct cq_warm_stats *st)
{
	struct warm w = { .ctx = ctx, .o = o, .st = st };
	struct cq_reader_opts ro = { .refuse_cr = true };
	struct cq_reader *rd;
	enum cq_err e;

	memset(st, 0, sizeof(*st));
	w.t0 = w.last_progress = cq_now_ms();
	w.gen.found = true;
	w.max = o->max_size ? o->max_size : DEFAULT_MAX_SIZE;
	ro.max = w.max + 65536;	/* a JSONL record's room around its value */
	ro.delim = o->format == CQ_WARM_NUL ? '\0' : '\n';
	ro.nfields = o->format == CQ_WARM_NUL && !o->exec ? 2 : 1;
	/* a JSONL line's CR is blank space after the object, not data */
	ro.refuse_cr = o->format != CQ_WARM_JSONL || o->exec;
	cqi_throttle_init(&w.thr, o->rate);
	rd = cqi_reader_new(ctx, fd, &ro);
	if (!rd)
		return ctx->err;
	if (o->once && take_once_lock(&w))
		goto out;
	if (st->locked_out)
		goto out;
	if (o->set.ns && cqi_ns_gen(ctx, o->set.ns, true, &w.gen))
		goto out;
	if (o->exec)
		warm_exec(&w, rd);
	else if (cqi_pipe_init(&w.pipe, ctx, o->window, on_reply, &w) == CQ_OK)
		warm_data(&w, rd);
	progress(&w, true);
out:
	e = ctx->err;
	if (e)
		count_unconfirmed(st);
	if (w.lock.held && !ctx->err)
		cqi_lock_release(ctx, w.lockkey.data, w.lockkey.len, &w.lock);
	st->elapsed_ms = cq_now_ms() - w.t0;
	cqi_pipe_free(&w.pipe);
	cq_buf_free(&w.key);
	cq_buf_free(&w.tagkey);
	cq_buf_free(&w.lockkey);
	cqi_reader_free(rd);
	return e;
}
