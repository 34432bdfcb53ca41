/* run.c - running the commands of fetch and warm --exec, and what every
 * child cq starts shares (handler.c's too): how it is set up before exec,
 * how its end is read, how its process group is stopped. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

struct cqi_end cqi_child_end(int status, bool timed_out)
{
	struct cqi_end e = { CQI_END_EXIT, 70, 0 };

	if (WIFEXITED(status))
		e.code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		e = (struct cqi_end){ CQI_END_SIGNAL, 128 + WTERMSIG(status),
				      WTERMSIG(status) };
	if (timed_out)
		e.kind = CQI_END_TIMEOUT;
	return e;
}

void cqi_end_text(const struct cqi_end *e, char *buf, size_t len)
{
	if (e->kind == CQI_END_TIMEOUT)
		snprintf(buf, len, "timeout");
	else if (e->kind == CQI_END_SIGNAL)
		snprintf(buf, len, "signal %d", e->sig);
	else
		snprintf(buf, len, "exit %d", e->code);
}

int cqi_exit_status(int status)
{
	return cqi_child_end(status, false).code;
}

/* cq's own secrets: a child gets them only with --pass-env. */
static const char *const secrets[] = {
	"CQ_AMQP_URL", "CQ_REDIS_URL", "CQ_REDIS_PASSWORD", "CQ_PASSWORD_FILE",
	"CQ_SENTINEL_USER", "CQ_SENTINEL_PASSWORD", "CQ_SENTINEL_PASSWORD_FILE",
};

bool cqi_child_own_group(bool null_stdin)
{
	return null_stdin || !isatty(STDIN_FILENO);
}

void cqi_child_setup(bool pass_env)
{
	sigset_t none;

	/* cli_main ignores SIGPIPE, cq_stop_catch catches INT and TERM: a
	 * command gets the usual defaults */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (!pass_env)
		for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
			unsetenv(secrets[i]);
}

void cqi_group_signal(pid_t pgid, int sig)
{
	if (pgid <= 0)
		return;
	kill(-pgid, sig);
	kill(pgid, sig);
}

bool cqi_group_gone(pid_t pgid)
{
	return kill(-pgid, 0) < 0 && errno == ESRCH;
}

/* In the child: set up and exec; on failure send errno up err_fd. */
static void child_exec(char *const *argv, const char *key, bool null_stdin,
		       bool pass_env, int out_fd, int err_fd)
{
	int e;

	if (cqi_child_own_group(null_stdin))
		setpgid(0, 0);
	cqi_child_setup(pass_env);
	if (dup2(out_fd, STDOUT_FILENO) < 0)
		goto fail;
	if (null_stdin) {
		int fd = open("/dev/null", O_RDONLY);

		if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
			goto fail;
	}
	if (key && setenv("CQ_KEY", key, 1) < 0)
		goto fail;
	execvp(argv[0], argv);
fail:
	e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

enum cq_err cqi_child_start(struct cq_ctx *ctx, char *const *argv,
			    const char *key, bool null_stdin,
			    struct cqi_child *ch)
{
	int out[2], err[2], e = 0;
	ssize_t got;

	ch->pid = -1;
	ch->fd = -1;
	if (pipe2(out, O_CLOEXEC) < 0)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "pipe: %s", strerror(errno));
	if (pipe2(err, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "pipe: %s", strerror(errno));
	}
	ch->pid = fork();
	if (ch->pid == 0)
		child_exec(argv, key, null_stdin, ctx->set.pass_env, out[1],
			   err[1]);
	if (ch->pid > 0 && cqi_child_own_group(null_stdin))
		setpgid(ch->pid, ch->pid);	/* also here: no race with a kill */
	close(out[1]);
	close(err[1]);
	if (ch->pid < 0) {
		close(out[0]);
		close(err[0]);
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "fork: %s", strerror(errno));
	}
	do
		got = read(err[0], &e, sizeof(e));
	while (got < 0 && errno == EINTR);
	close(err[0]);
	ch->fd = out[0];
	if (got == sizeof(e)) {
		cqi_child_finish(ch);
		return cq_seterr(ctx, e == ENOENT ? CQ_ERR_NOCMD :
				 e == EACCES ? CQ_ERR_NOEXEC : CQ_ERR_INTERNAL,
				 "cannot run '%s': %s", argv[0], strerror(e));
	}
	return CQ_OK;
}

/* Hand data to the sink, once the output is known to be too big. */
static void to_sink(struct cqi_child *ch, const void *p, size_t n)
{
	if (ch->sink && !ch->sink_failed && n && !ch->sink(ch->sink_arg, p, n))
		ch->sink_failed = true;
}

bool cqi_child_read(struct cqi_child *ch)
{
	char chunk[65536];
	ssize_t n;

	if (ch->fd < 0)
		return false;
	do
		n = read(ch->fd, chunk, sizeof(chunk));
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		close(ch->fd);
		ch->fd = -1;
		return false;
	}
	if (ch->too_big) {
		to_sink(ch, chunk, (size_t)n);
	} else if (ch->out.len + (size_t)n > ch->max ||
		   !cq_buf_append(&ch->out, chunk, (size_t)n)) {
		ch->too_big = true;
		to_sink(ch, ch->out.data, ch->out.len);
		to_sink(ch, chunk, (size_t)n);
		cq_buf_free(&ch->out);
	}
	return true;
}

int cqi_child_finish(struct cqi_child *ch)
{
	int status = 0;

	while (cqi_child_read(ch))
		;
	if (ch->pid > 0) {
		while (waitpid(ch->pid, &status, 0) < 0 && errno == EINTR)
			;
		ch->pid = -1;
	}
	return cqi_exit_status(status);
}

/*
 * Stop a running command: its output is dropped, its process group gets
 * SIGTERM, then SIGKILL after the grace time (at once on a second stop
 * request); returns once the command is reaped and its group gone or
 * killed.
 */
int cqi_child_stop(struct cqi_child *ch)
{
	long long kill_at = cq_now_ms() + CQI_KILL_GRACE_MS;
	bool killed = false, reaped = false;
	int status = 0;

	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	if (ch->pid <= 0)
		return cqi_exit_status(status);
	cqi_group_signal(ch->pid, SIGTERM);
	cqi_group_signal(ch->pid, SIGCONT);	/* a stopped one sees it too */
	for (;;) {
		if (!reaped) {
			pid_t r = waitpid(ch->pid, &status, WNOHANG);

			reaped = r == ch->pid || (r < 0 && errno == ECHILD);
		}
		if (reaped && (killed || cqi_group_gone(ch->pid)))
			break;
		if (!killed && (cq_now_ms() >= kill_at ||
				cq_stop_requested() > 1)) {
			cqi_group_signal(ch->pid, SIGKILL);
			killed = true;
			continue;
		}
		poll(NULL, 0, 20);
	}
	ch->pid = -1;
	return cqi_exit_status(status);
}

void cqi_child_clear(struct cqi_child *ch)
{
	if (!ch)
		return;
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	cq_buf_free(&ch->out);
}
