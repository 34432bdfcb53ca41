/*
 * latency - sample a Redis server's latency while something else runs, as
 * redis-cli --latency does, but with microsecond resolution and a finer
 * interval.
 *
 *   latency HOST PORT [INTERVAL_US] [MAX_SECONDS]
 *
 * Sends PING, waits for +PONG, sleeps INTERVAL_US (default 2000), and so on
 * until SIGTERM or SIGINT or MAX_SECONDS (default 900) have passed.  Then
 * prints one line:
 *
 *   max_us=N p99_us=N p50_us=N samples=N
 *
 * A PING answered late means the server's event loop was busy with
 * something else (a KEYS, a big DEL, a slow Lua script): that is the
 * latency other clients see.  Exit 0, or 1 when the server did not answer.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

/* Enough for MAX_SECONDS of samples at the smallest sane interval. */
#define MAX_SAMPLES (1 << 20)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct timeval tv = { 5, 0 };
	long long *lat, t0, deadline;
	long interval = 2000, max_s = 900;
	size_t n = 0;
	redisContext *c;
	redisReply *r;

	if (argc < 3) {
		fputs("usage: latency HOST PORT [INTERVAL_US] [MAX_SECONDS]\n", stderr);
		return 2;
	}
	if (argc > 3)
		interval = strtol(argv[3], NULL, 10);
	if (argc > 4)
		max_s = strtol(argv[4], NULL, 10);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	lat = malloc(MAX_SAMPLES * sizeof(*lat));
	c = redisConnectWithTimeout(argv[1], atoi(argv[2]), tv);
	if (!lat || !c || c->err) {
		fprintf(stderr, "latency: cannot connect: %s\n",
			c ? c->errstr : "out of memory");
		return 1;
	}
	redisSetTimeout(c, tv);
	deadline = now_us() + max_s * 1000000LL;
	while (!stop && n < MAX_SAMPLES && now_us() < deadline) {
		t0 = now_us();
		r = redisCommand(c, "PING");
		if (!r) {
			fprintf(stderr, "latency: %s\n", c->errstr);
			return 1;
		}
		freeReplyObject(r);
		lat[n++] = now_us() - t0;
		usleep((useconds_t)interval);
	}
	redisFree(c);
	if (n == 0) {
		puts("max_us=0 p99_us=0 p50_us=0 samples=0");
		return 0;
	}
	qsort(lat, n, sizeof(*lat), cmp_ll);
	printf("max_us=%lld p99_us=%lld p50_us=%lld samples=%zu\n", lat[n - 1],
	       lat[n * 99 / 100], lat[n / 2], n);
	free(lat);
	return fflush(stdout) ? 1 : 0;
}
