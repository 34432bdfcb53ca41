/*
 * measure - run a command N times and report each run's wall time and
 * peak RSS, for bench/run.
 *
 *   measure [-n N] [-s START] [-i IN] [-o OUT] [-e ERR] -- PROG [ARG...]
 *
 * Each run gets a fresh stdin from IN (default /dev/null) and writes stdout
 * to OUT and stderr to ERR (default /dev/null for both; OUT is truncated
 * once, then appended to).  "{i}" inside an argument is replaced by the run
 * number, counted from START (default 0), so that each run can use a key of
 * its own.  One line per run on stdout:
 *
 *   WALL_US MAXRSS_KB STATUS USER_US SYS_US
 *
 * WALL_US is measured from just before fork() to the return of wait4(), so
 * it includes process start-up, which is the point for per-process rows.
 * MAXRSS_KB is ru_maxrss from wait4(): the largest resident set of the
 * child or of any descendant it waited for (for "sh -c 'a | b'" the larger
 * of a and b).  STATUS is the exit code, or 128+signal.  USER_US and
 * SYS_US are the CPU time the child and its waited-for descendants used.  measure exits 1
 * when any run did not exit 0, 2 on its own errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fputs("usage: measure [-n N] [-s START] [-i IN] [-o OUT] [-e ERR] -- PROG [ARG...]\n",
	      stderr);
	exit(2);
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Replace every "{i}" in s with num; the caller frees the result. */
static char *subst(const char *s, long num)
{
	char digits[24], *out, *p;
	size_t n = 0, dl;
	const char *q;

	dl = (size_t)snprintf(digits, sizeof(digits), "%ld", num);
	for (q = s; (q = strstr(q, "{i}")); q += 3)
		n++;
	out = malloc(strlen(s) + n * dl + 1);
	if (!out) {
		perror("measure: malloc");
		exit(2);
	}
	for (p = out; *s;) {
		if (strncmp(s, "{i}", 3) == 0) {
			memcpy(p, digits, dl);
			p += dl;
			s += 3;
		} else {
			*p++ = *s++;
		}
	}
	*p = '\0';
	return out;
}

static int open_or_die(const char *path, int flags)
{
	int fd = open(path, flags, 0644);

	if (fd < 0) {
		fprintf(stderr, "measure: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return fd;
}

/* One run: returns the status as described above, fills wall and rss. */
static int run_once(char **argv, const char *in, const char *out,
		    const char *err, long long *wall, long *rss,
		    long long *user, long long *sys)
{
	struct rusage ru;
	long long t0;
	int status, fd;
	pid_t pid;

	t0 = now_us();
	pid = fork();
	if (pid < 0) {
		perror("measure: fork");
		exit(2);
	}
	if (pid == 0) {
		fd = open_or_die(in, O_RDONLY);
		dup2(fd, 0);
		close(fd);
		fd = open_or_die(out, O_WRONLY | O_APPEND | O_CREAT);
		dup2(fd, 1);
		close(fd);
		fd = open_or_die(err, O_WRONLY | O_APPEND | O_CREAT);
		dup2(fd, 2);
		close(fd);
		execvp(argv[0], argv);
		fprintf(stderr, "measure: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("measure: wait4");
			exit(2);
		}
	}
	*wall = now_us() - t0;
	*rss = ru.ru_maxrss;
	*user = (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
	*sys = (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	const char *in = "/dev/null", *out = "/dev/null", *err = "/dev/null";
	long n = 1, start = 0, rss;
	long long wall, user, sys;
	int c, failed = 0, nargs;
	char **args;

	while ((c = getopt(argc, argv, "+n:s:i:o:e:")) != -1) {
		switch (c) {
		case 'n':
			n = strtol(optarg, NULL, 10);
			break;
		case 's':
			start = strtol(optarg, NULL, 10);
			break;
		case 'i':
			in = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'e':
			err = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || n < 1)
		usage();
	nargs = argc - optind;
	args = calloc((size_t)nargs + 1, sizeof(*args));
	if (!args)
		return 2;
	if (strcmp(out, "/dev/null") != 0)
		close(open_or_die(out, O_WRONLY | O_TRUNC | O_CREAT));
	for (long r = 0; r < n; r++) {
		int st;

		for (int a = 0; a < nargs; a++)
			args[a] = subst(argv[optind + a], start + r);
		st = run_once(args, in, out, err, &wall, &rss, &user, &sys);
		for (int a = 0; a < nargs; a++)
			free(args[a]);
		printf("%lld %ld %d %lld %lld\n", wall, rss, st, user, sys);
		if (st)
			failed = 1;
	}
	free(args);
	if (fflush(stdout) || ferror(stdout))
		return 2;
	return failed;
}
