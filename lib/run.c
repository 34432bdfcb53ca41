/* run.c - running the commands of fetch and warm --exec. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cq.h"
#include "internal.h"
#include "cache_int.h"

int cqi_exit_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 70;
}

/* In the child: set up and exec; on failure send errno up err_fd. */
static void child_exec(char *const *argv, const char *key, bool null_stdin,
		       int out_fd, int err_fd)
{
	int e;

	/* cli_main ignores SIGPIPE; a command must get the usual default */
	signal(SIGPIPE, SIG_DFL);
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
		child_exec(argv, key, null_stdin, out[1], err[1]);
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

void cqi_child_clear(struct cqi_child *ch)
{
	if (!ch)
		return;
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
	cq_buf_free(&ch->out);
}
