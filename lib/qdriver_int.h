/* qdriver_int.h - the queue driver interface: what every qctl verb asks
 * of a queue backend (AMQP, a Redis list, a Redis stream), and what a
 * backend tells it.  The policy lives above it, once: consume's engine
 * (consume.c: handler jobs, held retries, poison codes, dead letters,
 * settling only once the work is done, stop requests, dedupe,
 * --until-empty), enqueue's reader and its report of the lines not
 * confirmed, replay's confirm-then-ack with its filters, bounds,
 * --dry-run, window and stop handling (replay.c), peek, purge, declare
 * and the queue figures of stats and cqstat.
 *
 * The verbs never see the wire.  A driver owns its connection, the
 * message's representation (AMQP headers; for a Redis list the retry count
 * and reason kept beside the list; a stream entry's fields) and the
 * atomicity of each move.  consume_amqp.c is the AMQP driver; the unit
 * tests have an in-memory one (tests/unit/test_engine.c).  The backend
 * table (qdriver.c) maps a --backend name to its constructor.
 *
 * The handle of a taken message is its delivery_tag: increasing in the
 * order the driver took them (AMQP's own tags; a Redis driver numbers what
 * it moved into its processing list or read with XREADGROUP, and maps the
 * number to the entry).  A driver puts the engine's retry count in the
 * CQ_HDR_RETRIES header of what it takes, and a broker's count of returns
 * in CQ_HDR_DELIVERY_COUNT (a stream's delivery count).  What it keeps of
 * a dead letter (reason, exit code, stderr tail, original queue, time,
 * host, replays) it hands over as the CQ_HDR_* headers of cq_queue.h, so
 * that peek, replay's filters and cq_delivery_death read every backend
 * alike.
 *
 * Memory: a struct cq_delivery handed to hooks.deliver belongs to the
 * engine (cqi_delivery_free; props is NULL for a Redis driver, and headers
 * are cq_fields it allocated).  Everything a verb passes in (messages,
 * names, options) is borrowed for the call only.  Strings a driver hands
 * back through a hook are borrowed for the hook's call, except where said.
 *
 * Errors: a driver that loses its connection leaves the error on the
 * context (ctx->err): nothing more can be settled, and what was not is
 * delivered again.  A failure after which the connection still works (a
 * refused message, a dead-letter queue that cannot be declared) goes to
 * hooks.fail: the engine stops taking, and settles what finished.
 * Errors of the verbs' own ops (peek, purge, declare, stats...) are
 * returned and left on the context, in the words of the existing verbs:
 * a missing queue is CQ_ERR_NOTFOUND through cqi_missing_queue() (which
 * names the declare that creates it); a key of the wrong type is
 * CQ_ERR_DATA naming the key and its type; a refused permission
 * CQ_ERR_NOPERM; an option the backend cannot honour (--exchange, --quorum
 * on a list) CQ_ERR_USAGE, "VERB: --OPTION: not supported by the list
 * backend".  Every op must be set (none NULL), but reconnect and where
 * (both NULL: a driver that never reconnects) and browse (NULL: a driver
 * that cannot read without taking); a driver without exhausted yet makes
 * replay-dlq a usage error ("not supported by the list backend yet").
 */
#ifndef CQ_QDRIVER_INT_H
#define CQ_QDRIVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cq.h"

/* What a driver calls back into the verb (set before connect; every one
 * set, see cqi_qhooks_fill). */
struct cqi_qhooks {
	void *arg;
	/* A message taken (the engine owns it now).  False when it cannot
	 * be kept (out of memory): the driver frees it, unsettled. */
	bool (*deliver)(void *arg, struct cq_delivery *d);
	/* A retry or dead letter given to the driver is settled: ok when
	 * the message is safely in its new place and the original acked;
	 * otherwise the original stays in the queue, and reason says why. */
	void (*settled)(void *arg, bool dead, bool ok, const char *reason);
	/* Stop gracefully with this error (the connection still works).
	 * A verb that sets arg sets fail too; with both NULL, fail sets
	 * the context error. */
	void (*fail)(void *arg, enum cq_err e, const char *msg);
	/* Something the user should know (a missing dead-letter exchange). */
	void (*notice)(void *arg, const char *msg);
	/*
	 * A message given to publish() is settled: called exactly once for
	 * each (whatever publish() returned), inside publish, pub_poll,
	 * wait_input, take or pub_flush, in any order.  ok: the server has
	 * it safely (AMQP: confirmed; Redis: the write's reply came back
	 * and was not an error).  Else reason says why: one of the
	 * CQ_REASON_* strings, or a text of the driver's that stays valid
	 * until the driver is freed; the same cause gives the same
	 * pointer, so a caller groups consecutive failures by comparing
	 * pointers.  The hook may call ack and hold, never publish.
	 */
	void (*published)(void *arg, uint64_t tag, bool ok, const char *reason);
	/* The server stopped taking writes (blocked true, reason its words,
	 * e.g. "low on memory") or takes them again (false, NULL).  AMQP's
	 * connection.blocked; a Redis driver may never call it. */
	void (*blocked)(void *arg, bool blocked, const char *reason);
};

/* What the driver needs to know of the run. */
struct cqi_qconf {
	const char *queue;
	const char *dlq;	/* --dlq, or NULL: the driver's default */
	bool exec;		/* handlers: failures are retried and dead-lettered
				 * (the message's raw form is kept for that) */
	bool browse;		/* replay with a filter, or --dry-run on a
				 * driver without ops->browse: most messages
				 * taken will be held (AMQP takes them with
				 * basic.get from the start) */
	const char *group;	/* stream: the consumer group (--group), NULL =
				 * "qctl"; other backends ignore it */
	/* A backend's own settings go here, NULL/0 meaning its default
	 * (the list's processing list name, a lease, a visibility
	 * timeout...); other backends ignore them. */
	/* stream: this consumer's name (NULL: qctl-HOST-PID), and the
	 * visibility timeout: entries idle this long are claimed from
	 * their (dead) consumer (0: never) */
	const char *consumer;
	long long visibility_ms;
	long long maxlen;	/* stream: XADD MAXLEN (enqueue --maxlen), 0 none */
	/* enqueue: the message its options make (pub_start refuses what
	 * the backend cannot keep), or NULL */
	const struct cq_message *tmpl;
	/* the verb talks to Redis too between calls (consume --dedupe): a
	 * driver on that connection leaves no reply awaited when it
	 * returns */
	bool redis_shared;
	/* the list's: its processing list (NULL: one of the consumer's
	 * own), lease, and a processing list to recover first */
	const char *processing;
	long long lease_ms;	/* 0: the driver's default */
	const char *recover;
};

/* Why a handler's message failed, for the retry or dead letter. */
struct cqi_failure {
	long long attempts;	/* failed attempts, this one included */
	int code;		/* shell-style exit code */
	const char *reason;	/* "exit 3", "poison (exit 65)", "timeout", "signal 9" */
	const char *tail;	/* the last lines of its stderr (tlen bytes) */
	size_t tlen;
	const char *host;	/* where it ran */
};

/*
 * A queue's figures (stats op).  NAN for what the backend cannot tell.
 * The names below are the metric names of qctl stats and cqstat.
 */
#define CQI_QSTAT_EXTRAS 8
struct cqi_qstats {
	bool found;		/* false: no such queue (the rest NAN) */
	double ready;		/* "ready": waiting to be taken */
	double inflight;	/* "unacked": taken, not yet settled (AMQP
				 * unacked, a list's processing lists, a
				 * stream's pending entries); NAN unknown */
	double consumers;	/* "consumers": live ones (a list: live
				 * leases; a stream: the group's consumers) */
	double dlq;		/* "dlq": ready in the dead-letter queue, NAN
				 * when there is none */
	char dlq_name[256];	/* its name, "" when none */
	/* the backend's own figures (a stream's "lag", "pending_idle_s"):
	 * names are static strings, lower case, [a-z_] */
	struct { const char *name; double value; } extra[CQI_QSTAT_EXTRAS];
	size_t nextra;
};

struct cqi_qdriver;

struct cqi_qdriver_ops {
	/* Be connected: the program connects (cli_ready); a driver whose
	 * connection is missing says so (CQ_ERR_INTERNAL). */
	enum cq_err (*connect)(struct cqi_qdriver *q);
	/* Does the queue exist, and how many messages are ready?  A missing
	 * queue is CQ_ERR_NOTFOUND; every error is on the context. */
	enum cq_err (*inspect)(struct cqi_qdriver *q, uint64_t *ready);
	/* Start taking: at most window messages unsettled at once.  With
	 * conf.exec, first prepare retries and dead letters. */
	enum cq_err (*start)(struct cqi_qdriver *q, unsigned window);
	/*
	 * Serve the connection (heartbeats, confirms: hooks.settled) and
	 * hand new messages to hooks.deliver, waiting up to wait_ms for the
	 * first thing to happen; stop handing once max were handed (what
	 * else has arrived waits, and buffered() says so).
	 */
	enum cq_err (*take)(struct cqi_qdriver *q, size_t max, long long wait_ms);
	/* Something already read and not yet served: take() will not wait. */
	bool (*buffered)(const struct cqi_qdriver *q);
	/* A descriptor to poll for input while handlers run, or -1. */
	int (*fd)(const struct cqi_qdriver *q);
	/* Retries, dead letters and publishes given to it and not yet
	 * settled. */
	size_t (*unsettled)(const struct cqi_qdriver *q);
	/* The ready count during the run (--until-empty).  CQ_OK; an error
	 * kind with why written (the connection still works); or an error
	 * on the context (the connection is gone). */
	enum cq_err (*depth)(struct cqi_qdriver *q, uint64_t *ready,
			     char *why, size_t len);
	/* Take nothing new (hand what already arrived). */
	void (*stop)(struct cqi_qdriver *q);
	/* Take again after stop (--until-empty found retries back). */
	enum cq_err (*resume)(struct cqi_qdriver *q);
	/* The work on tag is done: remove it for good (with upto, every
	 * message taken up to it too). */
	void (*ack)(struct cqi_qdriver *q, uint64_t tag, bool upto);
	/* Put d back at the end of its queue with f->attempts as its retry
	 * count and f's reason beside it; the original is removed only once
	 * the copy is safe (hooks.settled, now or later). */
	void (*retry)(struct cqi_qdriver *q, const struct cq_delivery *d,
		      const struct cqi_failure *f);
	/* Move d to the dead letters with f's reason (hooks.settled, now or
	 * later); where gets "to 'Q'" or "through exchange 'X'".  False when
	 * it was not even begun (d stays, unsettled; hooks.fail told why). */
	bool (*dead_letter)(struct cqi_qdriver *q, const struct cq_delivery *d,
			    const struct cqi_failure *f, char *where,
			    size_t len);
	/*
	 * The connection is gone (the context's error says why): connect
	 * again, to another node, and take again as start() did.  Whatever
	 * was taken before is forgotten (it comes back, redelivered), and so
	 * are the retries and dead letters not yet settled (never settled:
	 * their originals come back too).  from gets where the lost
	 * connection went.  Returns the context's error, unchanged, when the
	 * driver cannot reconnect (one URL); NULL for a driver that never
	 * can.
	 */
	enum cq_err (*reconnect)(struct cqi_qdriver *q, char *from,
				 size_t len);
	/* Where the connection goes now (for messages). */
	const char *(*where)(const struct cqi_qdriver *q);
	/* Wait for everything given to retry and dead_letter to settle. */
	enum cq_err (*flush)(struct cqi_qdriver *q);

	/* ---- replay-dlq: taking from the dead-letter queue --------------
	 * replay.c opens a driver with conf.queue the DLQ (exec false) and
	 * uses connect, inspect (the messages present at start bound the
	 * run), pub_start then start, take, stop, ack and the publishing
	 * ops below, then release.  It takes a message, publishes its
	 * copy to the target, and acks the original only once
	 * hooks.published said ok: a crash duplicates at worst, never
	 * loses.  take() must hand messages in the queue's order (oldest
	 * first) and never hand the same message twice in one run; when a
	 * take brought nothing and unsettled() > 0, replay waits in
	 * pub_flush.  Unit tests: the in-memory driver of test_engine.c. */
	/*
	 * The message tag stays with the caller, unsettled, until
	 * release (filtered out, --dry-run, its copy failed, taken after
	 * the count was reached): it no longer counts against start()'s
	 * window, so take() goes on handing new ones (AMQP: basic.get
	 * once the held fill half the prefetch; a list leaves it in the
	 * processing list; a stream leaves it pending).  An ack with
	 * upto is never given over a held tag.
	 */
	void (*hold)(struct cqi_qdriver *q, uint64_t tag);
	/*
	 * Nothing more will be handed: take() was stopped or found the
	 * queue empty (AMQP basic.get-empty; a list's LMOVE nil; a
	 * stream's XREADGROUP with nothing new), and nothing it asked the
	 * server for is still on its way.  replay.c ends taking on it.
	 * In replay, take(max, wait_ms) asks for at most max messages,
	 * counting those asked for and not yet come; when wait_ms passes
	 * with nothing at all, a driver whose requests go unanswered
	 * while no publish awaits its settling sets CQ_ERR_TEMPFAIL.
	 */
	bool (*exhausted)(const struct cqi_qdriver *q);
	/*
	 * Give back every message taken and not acked (the held ones and
	 * any taken after stop): ready again in conf.queue, where they
	 * were, so that the next run (or peek) sees them.  AMQP: one nack
	 * with requeue; a list moves them back from the processing list
	 * to the end they were taken from; a stream makes them claimable
	 * again.  Atomic per message: a crash between two leaves each one
	 * either given back or still in the processing place (recovered
	 * like a dead consumer's).  Errors as take's.
	 */
	enum cq_err (*release)(struct cqi_qdriver *q);

	/* ---- publishing: enqueue, and replay's copies ------------------
	 * A confirmed publisher: at most window messages given and not yet
	 * settled (hooks.published).  Usable beside take() on the same
	 * driver (replay). */
	/*
	 * Get ready to publish with conf.queue as the target (exchange
	 * NULL or ""), or AMQP's exchange.  The target must exist: a
	 * missing queue is CQ_ERR_NOTFOUND (cqi_missing_queue), a missing
	 * exchange CQ_ERR_NOTFOUND naming it; a backend where an empty
	 * queue has no key (a Redis list) accepts any name.  A Redis
	 * backend given an exchange returns CQ_ERR_USAGE.  window is 1 to
	 * 1,000,000.  With mandatory, AMQP fails an unroutable message
	 * (CQ_REASON_RETURN); Redis ignores it.
	 */
	enum cq_err (*pub_start)(struct cqi_qdriver *q, size_t window,
				 const char *exchange, bool mandatory);
	/*
	 * Send m under the caller's tag (enqueue: the input line or
	 * argument number, increasing; replay: its own sequence): its
	 * body, and what the backend carries of the rest (AMQP every
	 * property and header; a stream its fields; a list only the body,
	 * as apps LPUSH it, keeping any qctl header beside the list).
	 * m->routing_key is the queue (conf.queue unless the caller says
	 * otherwise: replay sends each copy to its own target).  With
	 * m->from, republish that delivery (cq_message's rules), taken
	 * from this driver.  Blocks settling earlier messages while the
	 * window is full (as long as pub_flush would wait).
	 * CQ_OK: sent (settled now or later).  CQ_ERR_DATA: this message
	 * cannot be sent (too large, a bad priority): already settled
	 * failed with CQ_REASON_BAD, the error on the context for the
	 * caller to report and drop (cqi_err_drop), the publisher still
	 * usable.  Any other error: the connection is gone, every
	 * outstanding message settled failed (CQ_REASON_LOST...),
	 * pub_alive false from then on.
	 */
	enum cq_err (*publish)(struct cqi_qdriver *q, const struct cq_message *m,
			       uint64_t tag);
	/* Settle what has come back, without waiting. */
	enum cq_err (*pub_poll)(struct cqi_qdriver *q);
	/* Wait until fd can be read, serving the connection (settling,
	 * heartbeats) meanwhile: enqueue's reader waits on its input
	 * through it (cqi_reader_serve). */
	enum cq_err (*wait_input)(struct cqi_qdriver *q, int fd);
	/*
	 * Wait for every outstanding message to settle.  After 60s (or the
	 * context timeout if longer) without any settling, while the
	 * server does not say it is blocked, the rest are settled failed
	 * (CQ_REASON_TIMEOUT) and CQ_ERR_TEMPFAIL returned; the same at
	 * once on a second stop request (cq_stop_requested() == 2), with
	 * CQ_REASON_STOPPED.
	 */
	enum cq_err (*pub_flush)(struct cqi_qdriver *q);
	/* False once the connection is gone (every later publish fails at
	 * once). */
	bool (*pub_alive)(const struct cqi_qdriver *q);

	/* ---- the other verbs, each on conf.queue ------------------------ */
	/*
	 * peek: call fn for up to count messages (borrowed for the call;
	 * an error it returns stops the peek and is returned) without
	 * taking them for good: none is seen twice, and afterwards each
	 * is where it was (AMQP requeues, marking them redelivered; a list
	 * reads with LRANGE, a stream with XRANGE).  Oldest first.  Each
	 * carries its retry count and dead-letter story as headers (see
	 * above).  *seen gets how many were shown.
	 */
	enum cq_err (*peek)(struct cqi_qdriver *q, size_t count, cq_peek_fn fn,
			    void *arg, size_t *seen);
	/*
	 * browse: replay --dry-run's read of the DLQ (replay.c, after
	 * connect and inspect; count is what was present at start, or
	 * --count): peek's contract with nothing taken at all, so nothing
	 * moves and nothing is hidden from other consumers meanwhile, in
	 * pages as large as the driver likes (a list: LRANGE from the
	 * oldest end, 1000 at a time).  An error fn returns ends it and is
	 * returned, the context left as fn left it.  NULL: the driver can
	 * only look by taking, and replay takes and holds (conf.browse),
	 * then release gives back: AMQP (basic.get, then requeue); a
	 * stream's replay takes with XRANGE anyway, every entry left where
	 * it is.
	 */
	enum cq_err (*browse)(struct cqi_qdriver *q, size_t count,
			      cq_peek_fn fn, void *arg, size_t *seen);
	/* What the queue's settings say (its type, a delivery limit):
	 * known false when the backend has none. */
	enum cq_err (*info)(struct cqi_qdriver *q, struct cq_queue_info *out);
	/* purge: remove every ready message (not those taken by a consumer
	 * and not yet settled; for a list nor its processing lists, for a
	 * stream nor its pending entries) and what it kept beside them;
	 * *count gets how many went. */
	enum cq_err (*purge)(struct cqi_qdriver *q, uint64_t *count);
	/*
	 * declare: create the queue (and its dead-letter queue) as o says,
	 * or find it already so: idempotent.  An existing queue with other
	 * settings is CQ_ERR_DATA naming the setting.  Options the backend
	 * has no such thing for are CQ_ERR_USAGE (see above).  out's
	 * strings are the caller's to free (cq_declared_clear).
	 */
	enum cq_err (*declare)(struct cqi_qdriver *q,
			       const struct cq_queue_opts *o,
			       struct cq_declared *out);
	/* stats: the figures of conf.queue (and its dead-letter queue:
	 * conf.dlq, else the backend's default), see struct cqi_qstats.  A
	 * missing queue is no error here: found false. */
	enum cq_err (*stats)(struct cqi_qdriver *q, struct cqi_qstats *out);

	void (*free)(struct cqi_qdriver *q);
};

/* The part every driver starts with. */
struct cqi_qdriver {
	const struct cqi_qdriver_ops *ops;
	struct cq_ctx *ctx;
	struct cqi_qconf conf;
	struct cqi_qhooks hooks;
	bool can_reconnect;	/* set by connect: reconnect may succeed */
	unsigned long rejoins;	/* cqi_qd_rejoined's last look */
};

/* A backend: constructors return NULL out of memory (context error). */
typedef struct cqi_qdriver *(*cqi_qdriver_new_fn)(struct cq_ctx *ctx,
						  const struct cqi_qconf *conf);

/* The Redis Streams driver (queue_stream.c). */
struct cqi_qdriver *cqi_stream_qdriver_new(struct cq_ctx *ctx,
					   const struct cqi_qconf *conf);

/* The AMQP driver (consume_amqp.c), and its declare (declare.c: a
 * durable queue, and with o->dlq its DLX and DLQ). */
struct cqi_qdriver *cqi_amqp_qdriver_new(struct cq_ctx *ctx,
					 const struct cqi_qconf *conf);
enum cq_err cqi_amqp_declare(struct cq_ctx *ctx, const char *queue,
			     const struct cq_queue_opts *o,
			     struct cq_declared *out);

/* The driver of the context's backend for conf, not yet connected (the
 * caller sets its hooks, then calls ops->connect): NULL with the context
 * error set (CQ_ERR_USAGE for a backend not available). */
struct cqi_qdriver *cqi_qdriver_new(struct cq_ctx *ctx,
				    const struct cqi_qconf *conf);
/*
 * The driver of the context's backend (ctx->set.queue_backend: "amqp",
 * "list" or "stream"; NULL is amqp) for conf, with hooks (NULL: none),
 * then connected (ops->connect): NULL with the context error set
 * (CQ_ERR_USAGE for a backend not available).  The caller frees it
 * (ops->free).
 */
struct cqi_qdriver *cqi_qdriver_open(struct cq_ctx *ctx,
				     const struct cqi_qconf *conf,
				     const struct cqi_qhooks *hooks);
/* Set each NULL hook of h to one that does nothing (fail: sets the
 * context error), so that a driver may call every hook.  Whoever sets
 * q->hooks calls it (cqi_qdriver_open does). */
void cqi_qhooks_fill(struct cqi_qhooks *h, struct cq_ctx *ctx);

/* A driver's state of size bytes (struct cqi_qdriver its first member),
 * zeroed, with base's ops, ctx and conf set; NULL with the context error
 * set when out of memory. */
void *cqi_qdriver_alloc(struct cq_ctx *ctx, size_t size,
			const struct cqi_qdriver_ops *ops,
			const struct cqi_qconf *conf);

/*
 * A queue, first in first out, of items of one size (set before the
 * first push; the rest zeroed is an empty ring) in a ring that doubles
 * when full: the publishers' replies awaited, a stream's entries taken,
 * the engine's deliveries.  Take one back that was just pushed with
 * len--.
 */
struct cqi_ring {
	unsigned char *v;
	size_t size;		/* of an item */
	size_t head, len, cap;
};

/* The item i places after the oldest (i < len). */
void *cqi_ring_at(const struct cqi_ring *r, size_t i);
/* Room for an item after the newest, counted in len (its bytes as they
 * were); the ring grows to first_cap items, or twice its room, when
 * full.  NULL when out of memory (the ring unchanged). */
void *cqi_ring_push(struct cqi_ring *r, size_t first_cap);
/* Forget the oldest item (len > 0). */
void cqi_ring_shift(struct cqi_ring *r);
/* Free the room (not what items point to); the ring is empty again. */
void cqi_ring_clear(struct cqi_ring *r);

/* A driver's hooks.fail and hooks.notice, with the message formatted
 * (cqi_vformat; a notice up to 767 bytes, a failure up to 511). */
void cqi_qd_fail(struct cqi_qdriver *q, enum cq_err e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cqi_qd_notice(struct cqi_qdriver *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Move the context's error to hooks.fail (cqi_err_hold): the connection
 * still works, so the verb stops gracefully and settles what it can. */
void cqi_qd_fail_ctx(struct cqi_qdriver *q);

/* What a Redis backend cannot keep of a message enqueue gives it (an id
 * of its own, a priority, a content type, an expiration; headers too
 * unless headers is true): with tmpl, the options' (CQ_ERR_USAGE, "OPT:
 * not supported by the BACKEND backend"); else one record's
 * (CQ_ERR_DATA, for the caller to settle as a bad message).  CQ_OK when
 * there is none. */
enum cq_err cqi_qd_keepable(struct cqi_qdriver *q, const char *backend,
			    const struct cq_message *m, bool headers,
			    bool tmpl);
/* An option the backend (named: "list") has no such thing for:
 * CQ_ERR_USAGE, "OPT: not supported by the list backend" (the verb
 * prefixes its name). */
enum cq_err cqi_qd_unsupported(struct cqi_qdriver *q, const char *backend,
			       const char *opt);

/* A reconnect as a verb reports it, with the text its pointers borrow. */
struct cqi_reconnected {
	struct cq_reconnect r;
	char from[300];
	char why[sizeof(((struct cq_ctx *)0)->errstr)];
};

/*
 * The connection is lost (the context's error says why; q->ops->reconnect
 * is there): connect again through the driver, rc->r telling from, to,
 * why, how long it took and n (*count, counted one more); the caller adds
 * unsettled.  False when it could not (the context's error says why).
 */
bool cqi_qd_reconnect(struct cqi_qdriver *q, struct cqi_reconnected *rc,
		      unsigned *count);

/*
 * A Redis driver's look, before it takes (one place for the list and the
 * stream): were commands whose replies were lost sent again since the
 * last look (a failover, a master restarted: cqi_redis_rejoins)?  Then
 * what a lost command did may have reached the new master unheard: a
 * BLMOVE's or take script's move into the consumer's processing list, an
 * XREADGROUP's entries now pending under its name.  The driver then looks
 * there for what it holds and never received (a list gives it back to
 * the queue, a stream reads its own pending entries again), once nothing
 * it sent awaits a reply.  from gets where the lost commands had gone.
 * A driver looks once in start(), to begin from there.
 */
bool cqi_qd_rejoined(struct cqi_qdriver *q, char *from, size_t len);

/*
 * Why Redis refused a queue's write, from its error reply r, for
 * hooks.published: "refused by Redis: out of memory (maxmemory)", "Redis
 * went down"..., wrongtype for WRONGTYPE.  Static text (wrongtype too),
 * so that it outlives the driver and the same cause is the same pointer.
 */
struct cqi_reply;
const char *cqi_redis_refusal(const struct cqi_reply *r,
			      const char *wrongtype);

/* The type of Redis key key ("none", "list", "stream"...), to free; NULL
 * with the context error set. */
char *cqi_redis_key_type(struct cq_ctx *ctx, const struct cq_buf *key);
/* The types of keys[0..n) into types[0..n) (each to free), asked in one
 * pipeline: one round trip when they are on one node (a queue's keys,
 * which share its hash tag).  On an error all are NULL and the context
 * error is set (an error reply's too, after every reply is read). */
enum cq_err cqi_redis_key_types(struct cq_ctx *ctx,
				const struct cq_buf *const *keys, size_t n,
				char **types);

/*
 * A dead letter moves in one script, so on a Redis Cluster the dead-letter
 * key (dlq_key, named dlq as the user gave it; kind "list", "stream")
 * must be on the queue's hash slot: CQ_ERR_USAGE naming the --dlq that
 * works when it is not.  CQ_OK off a cluster.
 */
enum cq_err cqi_redis_dlq_slot_check(struct cq_ctx *ctx,
				     const struct cq_buf *queue_key,
				     const char *queue,
				     const struct cq_buf *dlq_key,
				     const char *dlq, const char *kind);

/*
 * cq_consume over a driver (which the engine frees).  The options are
 * checked as cq_consume checks them; o->queue must be conf.queue.
 */
enum cq_err cqi_consume_on(struct cq_ctx *ctx, struct cqi_qdriver *q,
			   const struct cq_consume_opts *o,
			   struct cq_consume_stats *st);

/*
 * cq_replay over a driver (which it connects, and frees) opened with
 * conf.queue the DLQ and conf.browse for a filter or --dry-run; o is
 * checked by cq_replay.
 */
enum cq_err cqi_replay_on(struct cq_ctx *ctx, struct cqi_qdriver *q,
			  const struct cq_replay_opts *o,
			  struct cq_replay_stats *st);

#endif
