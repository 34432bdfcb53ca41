/* handler.c - the handler processes of `qctl consume --exec`: start one per
 * message with the body on its stdin and its metadata in the environment,
 * capture its stderr, time it out, reap it.  Nothing here blocks:
 * consume.c polls the descriptors along with the AMQP socket. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "consume_int.h"
#include "cq.h"
#include "internal.h"

extern char **environ;

/* ---- in the child ------------------------------------------------------- */

/* CQ_HEADER_ + the header name in upper case, other bytes as '_'. */
static char *header_var(const char *key)
{
	static const char pre[] = "CQ_HEADER_";
	size_t n = strlen(key);
	char *v = malloc(sizeof(pre) + n);

	if (!v)
		return NULL;
	memcpy(v, pre, sizeof(pre) - 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)key[i];

		v[sizeof(pre) - 1 + i] = isalnum(c) && c < 128 ?
					 (char)toupper(c) : '_';
	}
	v[sizeof(pre) - 1 + n] = '\0';
	return v;
}

/* Drop CQ_HEADER_* inherited from our own environment (a qctl run by a
 * handler), so a handler sees only its message's headers. */
static void drop_inherited_headers(void)
{
	for (;;) {
		char **e, name[256];
		size_t n;

		for (e = environ; *e; e++)
			if (strncmp(*e, "CQ_HEADER_", 10) == 0)
				break;
		if (!*e)
			return;
		n = strcspn(*e, "=");
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, *e, n);
		name[n] = '\0';
		if (unsetenv(name) < 0)
			return;
	}
}

static void child_env(const char *queue, const struct cq_delivery *d,
		      long long retries)
{
	char num[32];

	drop_inherited_headers();
	setenv("CQ_QUEUE", queue, 1);
	if (d->message_id)
		setenv("CQ_MESSAGE_ID", d->message_id, 1);
	else
		unsetenv("CQ_MESSAGE_ID");
	setenv("CQ_REDELIVERED", d->redelivered ? "1" : "0", 1);
	snprintf(num, sizeof(num), "%lld", retries);
	setenv("CQ_RETRIES", num, 1);
	/* what the broker counted: a quorum queue's returns of this message
	 * (a consumer that died or nacked it), which its delivery limit
	 * bounds; qctl's own retries are new copies and do not count */
	snprintf(num, sizeof(num), "%lld", cqi_delivery_count(d));
	setenv("CQ_DELIVERY_COUNT", num, 1);
	for (size_t i = 0; i < d->nheaders; i++) {
		const struct cq_field *h = &d->headers[i];
		char *name, *val;

		/* the environment cannot hold a NUL byte */
		if ((h->kind == CQ_FIELD_STRING || h->kind == CQ_FIELD_BYTES) &&
		    memchr(h->str, '\0', h->len))
			continue;
		name = header_var(h->key ? h->key : "");
		val = cqi_field_text(h);
		if (name && val)
			setenv(name, val, 1);
		free(name);
		free(val);
	}
}

/* Set up and exec; on failure send errno up ex_fd (qctl reports it). */
static void child(const char *cmd, const char *queue,
		  const struct cq_delivery *d, long long retries, bool pass_env,
		  int in_fd, int err_fd, int ex_fd)
{
	int e;

	/* its own process group: a timeout kills what it started too, and
	 * a Ctrl-C at the terminal reaches qctl, which lets it finish */
	setpgid(0, 0);
	cqi_child_setup(pass_env);
	if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0)
		goto fail;
	child_env(queue, d, retries);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
fail:
	e = errno;
	if (write(ex_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/* ---- in qctl -------------------------------------------------------------- */

static int open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
#else
	(void)pid;
	return -1;
#endif
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * The body as a file at offset 0, written in full before the handler
 * starts: a handler never reads a truncated body, even when qctl dies while
 * it runs, and a large body cannot block qctl on a full pipe.
 */
static int body_file(const struct cq_delivery *d)
{
	int fd = memfd_create("cq-body", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < d->len) {
		ssize_t w = write(fd, (const char *)d->body + off, d->len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

enum cq_err cqi_job_start(struct cq_ctx *ctx, struct cqi_job *j,
			  const char *cmd, const char *queue,
			  struct cq_delivery *d, long long retries,
			  long long timeout_ms)
{
	int in = -1, err[2] = { -1, -1 }, ex[2] = { -1, -1 }, e = 0;
	ssize_t got;
	pid_t pid;

	memset(j, 0, sizeof(*j));
	j->pidfd = j->err_fd = -1;
	j->d = d;
	j->retries = retries;
	in = body_file(d);
	if (in < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
		cq_seterr(ctx, CQ_ERR_TEMPFAIL, "cannot start a handler: %s: %s",
			  in < 0 ? "body file" : "pipe", strerror(errno));
		goto fail;
	}
	pid = fork();
	if (pid == 0)
		child(cmd, queue, d, retries, ctx->set.pass_env, in, err[1],
		      ex[1]);
	if (pid < 0) {
		cq_seterr(ctx, CQ_ERR_TEMPFAIL, "cannot start a handler: fork: %s",
			  strerror(errno));
		goto fail;
	}
	setpgid(pid, pid);	/* also here: no race with a kill below */
	close(in);
	close(err[1]);
	close_fd(&ex[1]);
	do	/* EOF once exec closed it: the shell runs */
		got = read(ex[0], &e, sizeof(e));
	while (got < 0 && errno == EINTR);
	close_fd(&ex[0]);
	if (got == sizeof(e)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		close_fd(&err[0]);
		return cq_seterr(ctx, CQ_ERR_INTERNAL,
				 "cannot run /bin/sh: %s", strerror(e));
	}
	j->pid = pid;
	j->err_fd = err[0];
	fcntl(j->err_fd, F_SETFL, O_NONBLOCK);
	j->pidfd = open_pidfd(pid);
	j->started_ms = cq_now_ms();
	if (timeout_ms > 0)
		j->deadline_ms = j->started_ms + timeout_ms;
	return CQ_OK;
fail:
	close_fd(&in);
	close_fd(&err[0]);
	close_fd(&err[1]);
	close_fd(&ex[0]);
	close_fd(&ex[1]);
	return ctx->err;
}

int cqi_job_pollfds(const struct cqi_job *j, struct pollfd *fds)
{
	int n = 0;

	if (!j->pid)
		return 0;
	if (j->err_fd >= 0)
		fds[n++] = (struct pollfd){ .fd = j->err_fd, .events = POLLIN };
	if (j->pidfd >= 0 && !j->reaped)
		fds[n++] = (struct pollfd){ .fd = j->pidfd, .events = POLLIN };
	return n;
}

static void keep_tail(struct cqi_job *j, const char *p, size_t n)
{
	if (n >= CQI_TAIL_KEEP) {
		memcpy(j->tail, p + n - CQI_TAIL_KEEP, CQI_TAIL_KEEP);
		j->tail_len = CQI_TAIL_KEEP;
		return;
	}
	if (j->tail_len + n > CQI_TAIL_KEEP) {
		size_t drop = j->tail_len + n - CQI_TAIL_KEEP;

		memmove(j->tail, j->tail + drop, j->tail_len - drop);
		j->tail_len -= drop;
	}
	memcpy(j->tail + j->tail_len, p, n);
	j->tail_len += n;
}

/* Pass stderr on by whole lines, so parallel handlers do not mix
 * within a line. */
static void pass_on(struct cqi_job *j, const char *p, size_t n,
		    cqi_sink_fn sink, void *arg)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1 : n;

		if (j->line_len + take > CQI_LINE_MAX) {
			if (sink && j->line_len)
				sink(arg, j->line, j->line_len);
			j->line_len = 0;
			if (take > CQI_LINE_MAX) {
				if (sink)
					sink(arg, p, take);
				p += take;
				n -= take;
				continue;
			}
		}
		memcpy(j->line + j->line_len, p, take);
		j->line_len += take;
		p += take;
		n -= take;
		if (nl) {
			if (sink)
				sink(arg, j->line, j->line_len);
			j->line_len = 0;
		}
	}
}

/* Read what stderr has; at EOF (or once reaped and nothing is left, in
 * case a background process of the handler holds it open) close it. */
static void drain(struct cqi_job *j, cqi_sink_fn sink, void *arg)
{
	char buf[4096];

	while (j->err_fd >= 0) {
		ssize_t r = read(j->err_fd, buf, sizeof(buf));

		if (r > 0) {
			keep_tail(j, buf, (size_t)r);
			pass_on(j, buf, (size_t)r, sink, arg);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN && !j->reaped)
			return;
		close_fd(&j->err_fd);
	}
	if (j->line_len && sink)
		sink(arg, j->line, j->line_len);
	j->line_len = 0;
}

static void reap(struct cqi_job *j)
{
	pid_t r;

	if (j->reaped)
		return;
	do
		r = waitpid(j->pid, &j->status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == j->pid || (r < 0 && errno == ECHILD)) {
		if (r < 0)
			j->status = 0x7f00;	/* lost: report exit 127 */
		j->reaped = true;
		close_fd(&j->pidfd);
	}
}

void cqi_job_terminate(struct cqi_job *j, long long now_ms)
{
	if (j->kill_ms || (j->reaped && cqi_group_gone(j->pid)))
		return;
	cqi_group_signal(j->pid, SIGTERM);
	j->kill_ms = now_ms + CQI_KILL_GRACE_MS;
}

void cqi_job_pump(struct cqi_job *j, long long now_ms, cqi_sink_fn sink,
		  void *arg)
{
	if (!j->pid)
		return;
	reap(j);
	drain(j, sink, arg);
	if (!j->reaped && j->deadline_ms && now_ms >= j->deadline_ms &&
	    !j->timed_out) {
		j->timed_out = true;
		cqi_job_terminate(j, now_ms);
	}
	/* the whole group, whatever the leader did: a shell that died of
	 * the SIGTERM leaves children that ignore it */
	if (j->kill_ms && !j->killed && now_ms >= j->kill_ms) {
		cqi_group_signal(j->pid, SIGKILL);
		j->killed = true;
	}
}

long long cqi_job_next_ms(const struct cqi_job *j, long long now_ms)
{
	long long at = -1;

	if (!j->pid || cqi_job_done(j))
		return -1;
	if (j->deadline_ms && !j->timed_out && !j->reaped)
		at = j->deadline_ms;
	if (j->kill_ms && !j->killed && (at < 0 || j->kill_ms < at))
		at = j->kill_ms;
	if (at < 0)
		return -1;
	return at > now_ms ? at - now_ms : 0;
}

bool cqi_job_done(const struct cqi_job *j)
{
	/* once signalled, done when its group is gone or was killed: a
	 * retry must never run beside what is left of this attempt */
	return j->pid && j->reaped && j->err_fd < 0 &&
	       (!j->kill_ms || j->killed || cqi_group_gone(j->pid));
}

struct cqi_end cqi_job_end(const struct cqi_job *j)
{
	return cqi_child_end(j->status, j->timed_out);
}

const char *cqi_job_tail(const struct cqi_job *j, size_t *len)
{
	const char *s = j->tail;
	size_t n = j->tail_len, start, lines = 0;

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	start = n > CQI_TAIL_BYTES ? n - CQI_TAIL_BYTES : 0;
	for (size_t i = n; i > start; i--) {
		if (s[i - 1] == '\n' && ++lines == CQI_TAIL_LINES) {
			start = i;
			break;
		}
	}
	/* do not start inside a UTF-8 sequence */
	while (start < n && ((unsigned char)s[start] & 0xc0) == 0x80)
		start++;
	*len = n - start;
	return s + start;
}

void cqi_job_clear(struct cqi_job *j)
{
	close_fd(&j->err_fd);
	close_fd(&j->pidfd);
	j->pid = 0;
	j->d = NULL;
}
