/* stop.c - how a long verb learns that it should stop: the one place that
 * catches SIGINT and SIGTERM.
 *
 * Every long verb (warm, fetch, enqueue, consume, replay-dlq) polls
 * cq_stop_requested() between units of work.  The first signal asks it to
 * take no new work, settle what is in flight, release its locks, stop the
 * process groups it started and report; a second asks it to hurry (stop
 * waiting for confirms, kill children at once) but still to release and
 * report.  The handler is installed with SA_RESTART, so a write to a slow
 * pipe is not cut short; poll() and nanosleep() are never restarted, so a
 * verb waits in poll() (not in a bare read()) and looks at the request
 * when it returns EINTR. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "cq.h"
#include "internal.h"

static volatile sig_atomic_t requests;
static volatile sig_atomic_t first_signal;

static void on_signal(int sig)
{
	if (!first_signal)
		first_signal = sig;
	if (requests < 100)
		requests++;
}

enum cq_err cq_stop_catch(struct cq_ctx *ctx)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 ||
	    sigaction(SIGTERM, &sa, NULL) < 0)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "sigaction: %s",
				 strerror(errno));
	return CQ_OK;
}

int cq_stop_requested(void)
{
	return requests > 1 ? 2 : requests;
}

void cqi_sleep_ms(long long ms)
{
	/* in slices, so that a signal landing just before nanosleep() is
	 * seen */
	while (ms > 0 && !cq_stop_requested()) {
		long long t = ms < 100 ? ms : 100;
		struct timespec ts = { 0, t * 1000000 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR &&
		       !cq_stop_requested())
			;
		ms -= t;
	}
}

const char *cq_stop_name(void)
{
	switch (first_signal) {
	case SIGINT:
		return "SIGINT";
	case SIGTERM:
		return "SIGTERM";
	default:
		return "a signal";
	}
}
