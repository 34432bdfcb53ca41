/* consume_int.h - the handler processes of `qctl consume --exec`, shared by
 * consume.c and handler.c only. */
#ifndef CQ_CONSUME_INT_H
#define CQ_CONSUME_INT_H

#include <poll.h>
#include <sys/types.h>

#include "cq.h"
#include "internal.h"

#define CQI_TAIL_KEEP 1024	/* bytes of stderr kept while it runs */
#define CQI_TAIL_BYTES 512	/* at most this much goes into a header */
#define CQI_TAIL_LINES 4	/* ... and at most this many lines */
#define CQI_LINE_MAX 4096	/* stderr is passed through by lines up to this */

/* Pass handler stderr on (to the program, which prints it). */
typedef void (*cqi_sink_fn)(void *arg, const char *p, size_t n);

/*
 * One handler: `sh -c CMD` in its own process group, the message body on
 * its stdin, its stderr captured (and passed through), its exit status.
 * A slot is free when pid == 0.
 */
struct cqi_job {
	pid_t pid;
	int pidfd;		/* readable when it exits; -1 without pidfd_open */
	int err_fd;		/* its stderr, until EOF */
	struct cq_delivery *d;	/* the message (owned by the job) */
	long long retries;	/* failed attempts before this one */
	long long started_ms;
	long long deadline_ms;	/* --handler-timeout, 0 = none */
	long long kill_ms;	/* SIGKILL after this once SIGTERM went, 0 = not yet */
	bool timed_out;
	bool killed;		/* SIGKILL went to its group */
	bool reaped;
	bool stale;		/* its message was taken on a lost connection */
	int status;		/* wait status, once reaped */
	char tail[CQI_TAIL_KEEP];	/* the last bytes of its stderr */
	size_t tail_len;
	char line[CQI_LINE_MAX];	/* a partial stderr line */
	size_t line_len;
};

/*
 * Start cmd for d (the job holds it in j->d; on failure the caller still
 * owns it).  The
 * environment gets CQ_MESSAGE_ID, CQ_QUEUE, CQ_REDELIVERED, CQ_RETRIES,
 * CQ_DELIVERY_COUNT and CQ_HEADER_<NAME> for each header.
 */
enum cq_err cqi_job_start(struct cq_ctx *ctx, struct cqi_job *j,
			  const char *cmd, const char *queue,
			  struct cq_delivery *d, long long retries,
			  long long timeout_ms);
/* The broker's count of d's returns (a quorum queue's x-delivery-count
 * header), 0 without one. */
long long cqi_delivery_count(const struct cq_delivery *d);
/* Add the job's descriptors to fds (room for 2); returns how many. */
int cqi_job_pollfds(const struct cqi_job *j, struct pollfd *fds);
/* Feed stdin, drain stderr (lines go to sink), reap it if it exited, and
 * enforce the timeout.  Never blocks. */
void cqi_job_pump(struct cqi_job *j, long long now_ms, cqi_sink_fn sink,
		  void *arg);
/* Reaped, its stderr drained and closed, and, once it was asked to stop,
 * nothing left of its process group (or SIGKILL sent to it). */
bool cqi_job_done(const struct cqi_job *j);
/* How it ended (cqi_child_end of its status and timeout). */
struct cqi_end cqi_job_end(const struct cqi_job *j);
/* The last lines of its stderr (borrowed from j), without the final
 * newline; *len may be 0. */
const char *cqi_job_tail(const struct cqi_job *j, size_t *len);
/* Close what is open and forget the job (the delivery is not freed:
 * take it first, or free it). */
void cqi_job_clear(struct cqi_job *j);
/* Milliseconds until the job next needs attention for its timeout, or -1. */
long long cqi_job_next_ms(const struct cqi_job *j, long long now_ms);
/* Ask a job to stop now: SIGTERM to its process group, then SIGKILL to
 * the group CQI_KILL_GRACE_MS later, even when the leader is gone. */
void cqi_job_terminate(struct cqi_job *j, long long now_ms);

#endif
