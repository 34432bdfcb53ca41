/* cq_queue.h - the queue verbs of libcq (qctl).  Included by cq.h.
 *
 * Sections: header names qctl writes; header values and the dead-letter
 * summary; consumed messages (struct cq_delivery); messages to publish
 * (struct cq_message); the confirming publisher; topology and the verbs
 * (declare, purge, peek, replay).  The consume section at the end belongs
 * to `qctl consume`.
 */
#ifndef CQ_QUEUE_H
#define CQ_QUEUE_H

/* ---- headers qctl writes on messages ---------------------------------
 * consume writes them when it retries or dead-letters a message; peek and
 * replay-dlq read them.  Integers are sent as signed 64-bit fields, the
 * rest as strings. */
#define CQ_HDR_RETRIES		"x-cq-retries"		/* int: failed attempts */
/* the broker's: how often a quorum queue got the message back */
#define CQ_HDR_DELIVERY_COUNT	"x-delivery-count"
#define CQ_HDR_DEATH_REASON	"x-cq-death-reason"	/* e.g. "exit 3", "poison (exit 65)", "timeout" */
#define CQ_HDR_EXIT_CODE	"x-cq-exit-code"	/* int: the handler's last exit code */
#define CQ_HDR_STDERR		"x-cq-stderr"		/* last lines of the handler's stderr */
#define CQ_HDR_ORIGINAL_QUEUE	"x-cq-original-queue"	/* queue it was consumed from */
#define CQ_HDR_ORIGINAL_EXCHANGE "x-cq-original-exchange"
#define CQ_HDR_ORIGINAL_ROUTING_KEY "x-cq-original-routing-key"
#define CQ_HDR_DIED_AT		"x-cq-died-at"		/* int: epoch seconds */
#define CQ_HDR_HOST		"x-cq-host"		/* host that gave up on it */
#define CQ_HDR_REPLAYED		"x-cq-replayed"		/* int: times replay-dlq moved it */

/* The default dead-letter queue of QUEUE is QUEUE CQ_DLQ_SUFFIX, reached
 * through the exchange QUEUE CQ_DLX_SUFFIX (declare --dlq). */
#define CQ_DLQ_SUFFIX ".dlq"
#define CQ_DLX_SUFFIX ".dlx"

/* ---- header values ---------------------------------------------------- */

enum cq_field_kind {
	CQ_FIELD_VOID,		/* no value */
	CQ_FIELD_STRING,	/* str/len (long string, binary-safe) */
	CQ_FIELD_BYTES,		/* str/len (byte array) */
	CQ_FIELD_INT,		/* i (any integer width) */
	CQ_FIELD_BOOL,		/* i is 0 or 1 */
	CQ_FIELD_FLOAT,		/* f (float, double, decimal) */
	CQ_FIELD_TIMESTAMP,	/* i: epoch seconds */
	CQ_FIELD_TABLE,		/* items[n], each with a key */
	CQ_FIELD_ARRAY,		/* items[n], keys NULL */
};

/* One decoded header (or table entry, or array element).  Strings are
 * NUL-terminated for convenience and may hold NULs. */
struct cq_field {
	char *key;		/* NULL for array elements */
	enum cq_field_kind kind;
	char *str;
	size_t len;
	long long i;
	double f;
	struct cq_field *items;
	size_t n;
};

/* One entry of RabbitMQ's x-death header (newest first). */
struct cq_xdeath {
	char *queue;		/* the queue it died in */
	char *reason;		/* rejected, expired, maxlen, delivery_limit */
	char *exchange;		/* the exchange it had been published to */
	char *routing_key;	/* the first of its routing keys, or NULL */
	long long count;	/* times it died in this queue for this reason */
	long long time;		/* epoch seconds of the last death, 0 unknown */
};

enum cq_death_source {
	CQ_DEATH_NONE,		/* nothing says where it came from */
	CQ_DEATH_XDEATH,	/* RabbitMQ's x-death */
	CQ_DEATH_QCTL,		/* qctl's own x-cq-* headers */
	CQ_DEATH_HEADERS,	/* an application's headers (x-original-queue ...) */
	CQ_DEATH_DLQ_NAME,	/* only the dead-letter queue's name: QUEUE.dlq */
};

/*
 * What the headers say about a dead letter.  Strings are owned (free with
 * cq_death_clear) and NULL when unknown.
 */
struct cq_death {
	enum cq_death_source source;	/* where queue came from */
	char *queue;		/* the queue to send it back to */
	char *exchange;		/* the exchange it was first published to */
	char *routing_key;
	char *reason;		/* rejected, expired, ..., or qctl's reason */
	long long count;	/* x-death count for that entry, 0 unknown */
	long long time;		/* epoch seconds it died, 0 unknown */
	long long retries;	/* CQ_HDR_RETRIES, -1 none */
	long long exit_code;	/* CQ_HDR_EXIT_CODE, -1 none */
	char *stderr_tail;	/* CQ_HDR_STDERR */
	char *host;		/* CQ_HDR_HOST */
	/* true: retries, exit_code, stderr_tail and host are from an earlier
	 * death, when qctl gave up on it (at qctl_time, 0 unknown); the
	 * message died again since (the newer x-death summed up here) */
	bool earlier;
	long long qctl_time;
	struct cq_xdeath *xdeath;	/* every x-death entry, newest first */
	size_t nxdeath;
};

/*
 * Decode the dead-letter story of a message from its headers.  A pure
 * function (no I/O), fuzzable: any header contents give a result or
 * CQ_ERR_NOMEM, never a crash.  from_queue is the queue the message was
 * read from (a DLQ), or NULL: x-death entries for that queue itself are
 * skipped when choosing where it goes back to, and a DLQ named
 * "Q.dlq" with nothing better gives queue "Q" (CQ_DEATH_DLQ_NAME).
 * Precedence: qctl's headers when they are newer than the newest
 * x-death entry, then x-death, then an application's headers
 * (x-original-queue, original-queue, x-source-queue, source-queue,
 * x-original-routing-key...), then the DLQ's name.
 */
void cq_death_clear(struct cq_death *d);

/* ---- consumed messages -------------------------------------------------- */

struct cqi_props;

/* A message read from a queue (basic.get or basic.deliver).  Everything is
 * owned by the struct; free with cqi_delivery_free. */
struct cq_delivery {
	char *body;		/* NUL-terminated for convenience; may hold NULs */
	size_t len;
	uint64_t delivery_tag;
	bool redelivered;
	char *exchange;		/* "" for the default exchange */
	char *routing_key;
	char *queue;		/* the queue it was read from, or NULL */
	char *message_id;	/* NULL when the message has none */
	char *content_type;	/* NULL when none */
	char *expiration;	/* NULL when none */
	char *correlation_id, *reply_to, *type;	/* NULL when none */
	long long timestamp;	/* epoch seconds, 0 when none */
	int priority;		/* -1 when none */
	bool persistent;
	uint32_t remaining;	/* basic.get: messages left after this one */
	struct cq_field *headers;	/* decoded headers, in wire order */
	size_t nheaders;
	struct cqi_props *props;	/* the raw properties, for republishing */
};

/* A header by name, or NULL.  Borrowed from d. */
const struct cq_field *cq_delivery_header(const struct cq_delivery *d,
					  const char *name);
/* The dead-letter story of d (cqi_death_decode over its headers, with
 * d->queue as from_queue). */
enum cq_err cq_delivery_death(const struct cq_delivery *d,
			      struct cq_death *out);

/* One JSON object (no newline) for a delivery: queue, delivery_tag,
 * redelivered, exchange, routing_key, message_id, timestamp,
 * content_type, priority, expiration, persistent, headers (x-death as
 * an array of objects), body (or body_base64 when not UTF-8).  With
 * death, also "death": the cq_death summary.  Caller frees; NULL out of
 * memory. */
char *cq_delivery_json(const struct cq_delivery *d, bool death);

/* ---- messages to publish ------------------------------------------------ */

/* A header to send.  value NULL and no is_* flag removes the header (when
 * republishing a delivery). */
struct cq_header {
	const char *key;
	const char *value;	/* a string header (binary-safe with vlen) */
	size_t vlen;		/* 0 means strlen(value) */
	bool is_int;		/* send ival as a signed 64-bit integer */
	bool is_bool;		/* send ival != 0 as a boolean */
	bool is_float;		/* send fval as a 64-bit float */
	long long ival;
	double fval;
};

/*
 * A message to publish.  Start from cq_message_init() (persistent, no
 * priority).  All pointers are borrowed for the duration of cqi_publish.
 *
 * Republishing: set from to a consumed delivery and its body, every
 * property and every header are kept; the fields set here replace them
 * (body when body is non-NULL, message_id, content_type, priority >= 0,
 * expiration, transient), and headers[] add, replace or remove
 * (value NULL) individual headers.  With from, a NULL message_id keeps
 * the delivery's id (none stays none).
 */
struct cq_message {
	const void *body;
	size_t len;
	const char *exchange;		/* NULL or "" = the default exchange */
	const char *routing_key;	/* the queue, with the default exchange */
	const char *message_id;		/* NULL = a fresh unique id ... */
	bool no_message_id;		/* ... or, with this, none */
	const char *content_type;	/* NULL = none */
	int priority;			/* 0-255, -1 = none */
	const char *expiration;		/* per-message TTL in ms as text, NULL = none */
	bool transient;			/* false = persistent (the default) */
	const struct cq_header *headers;
	size_t nheaders;
	const struct cq_delivery *from;	/* republish this delivery */
};

void cq_message_init(struct cq_message *m);

/* ---- why a message was not confirmed ------------------------------------ */

/* Why a message was not confirmed (the reason a settle callback gets). */
#define CQ_REASON_NACK		"nacked by broker"
#define CQ_REASON_RETURN	"unroutable (no queue bound)"
#define CQ_REASON_LOST		"connection lost"
#define CQ_REASON_CLOSED	"channel closed by broker"
#define CQ_REASON_TIMEOUT	"no confirm within the timeout"
#define CQ_REASON_BAD		"bad message"
#define CQ_REASON_BLOCKED	"publishing blocked by a resource alarm past the timeout"
#define CQ_REASON_STOPPED	"stopped before its confirm came"

/* ---- queue backends ------------------------------------------------------
 * Every queue verb works on the context's backend (settings'
 * queue_backend): RabbitMQ over AMQP, a Redis list, or a Redis stream. */

/*
 * Whether name (NULL = "amqp") is a queue backend of this build: amqp,
 * list or stream.  *redis (may be NULL) gets whether its queues live in
 * Redis, so that a program connects Redis instead of RabbitMQ.  False
 * with the reason in err for an unknown name, or one not available.
 */
bool cq_backend_ok(const char *name, bool *redis, char *err, size_t errlen);

/* ---- reconnecting (consume, replay-dlq, enqueue) ------------------------ */

/*
 * A long verb given a list of AMQP URLs (a cluster) whose connection is
 * lost connects to another node of the list and goes on (amqp_int.h:
 * cqi_amqp_reconnect bounds the try by --timeout).  Each time it says so.
 */
struct cq_reconnect {
	const char *from;	/* host:port of the node lost */
	const char *to;		/* ... and of the node now connected */
	const char *why;	/* why the connection was lost */
	long long ms;		/* from the loss to the new subscription */
	unsigned long long unsettled;	/* consume, replay: messages taken
					 * and not settled (they come back,
					 * redelivered); enqueue: messages
					 * not confirmed (reported failed) */
	unsigned n;		/* reconnects so far in this run, this one too */
};
typedef void (*cq_reconnect_fn)(void *arg, const struct cq_reconnect *r);

/* ---- enqueue (enqueue.c) ------------------------------------------------- */

enum cq_enqueue_input {
	CQ_ENQ_LINES,		/* one body per line (a CRLF line is flawed) */
	CQ_ENQ_NUL,		/* NUL-separated bodies (-0) */
	CQ_ENQ_JSONL,		/* cqi_record_parse records (--jsonl) */
};

struct cq_enqueue_stats {
	bool ran;		/* messages were published: the run has a
				 * report, also when an error ended it */
	uint64_t sent;		/* handed to the publisher */
	uint64_t confirmed, failed;	/* settled ok, or not */
	uint64_t bad;		/* malformed records and messages refused
				 * before sending: skipped (on_bad) */
	uint64_t blank;		/* blank lines skipped */
	/* the first record (or argument) number not handed to the
	 * publisher because the run ended (a stop request, a lost
	 * connection), 0 when every one was */
	uint64_t unsent_from;
	unsigned reconnects;	/* connections lost and made again */
};

struct cq_enqueue_opts {
	/* every message starts from it (headers, priority, expiration...);
	 * its routing_key is the queue, its exchange (AMQP) may be set */
	const struct cq_message *tmpl;
	enum cq_enqueue_input input;
	/* messages from these arguments (numbered from 1) instead of fd */
	char *const *args;
	size_t nargs;
	size_t window;		/* unsettled at once, 1 - 1,000,000 */
	unsigned long long max_size;	/* longest record (fd input) */
	long long maxlen;	/* stream backend: XADD MAXLEN, trim the stream
				 * to this many entries (0: no trimming) */
	/* Reports (each may be NULL), all inside cq_enqueue: a message
	 * settled (ok, or why not: reason as hooks.published says, the same
	 * pointer for the same cause); a record or message skipped; the
	 * server blocking and unblocking publishing; progress every 1024
	 * records. */
	void (*on_settled)(void *arg, uint64_t no, bool ok, const char *reason);
	void (*on_bad)(void *arg, uint64_t no, const char *msg);
	void (*on_blocked)(void *arg, bool blocked, const char *reason);
	void (*on_progress)(void *arg, const struct cq_enqueue_stats *st);
	/* Reconnected to another node of the URL list: the lines not
	 * confirmed at the loss were reported failed (on_settled), and the
	 * input goes on through the new node. */
	cq_reconnect_fn on_reconnect;
	/* something the user should know (a MAXLEN that trimmed entries a
	 * consumer group had not read) */
	void (*on_notice)(void *arg, const char *msg);
	void *arg;
};

/*
 * Publish each record of fd (or each of o->args) to o->tmpl's queue
 * through the context's backend: the target must exist, each message is
 * confirmed, at most o->window unsettled.  A stop request (cq_stop_catch)
 * ends the reading; what was sent is then settled (a second one gives up
 * waiting: CQ_REASON_STOPPED).  Constant memory.  Returns CQ_OK when
 * every message handed over was settled (failures are in *st and were
 * reported); an error with st->ran false when nothing could start (a
 * missing queue) or the input failed (a read error, out of memory): only
 * the error is worth saying; with st->ran true when the connection was
 * lost (what was not confirmed is in *st, to report beside the error).
 */
enum cq_err cq_enqueue(struct cq_ctx *ctx, int fd,
		       const struct cq_enqueue_opts *o,
		       struct cq_enqueue_stats *st);

/* ---- topology ----------------------------------------------------------- */

struct cq_queue_opts {
	bool quorum;
	long long max_length;	/* -1 = no limit */
	long long message_ttl_ms;	/* -1 = none */
	int max_priority;	/* -1 = none; 1-255 */
	long long delivery_limit;	/* -1 = none (quorum queues only) */
	const char *dlq;	/* NULL = no dead-letter queue, "" = QUEUE.dlq */
	/* Quorum queues with a DLQ: true (the default) dead-letters
	 * at-least-once (x-dead-letter-strategy=at-least-once with
	 * x-overflow=reject-publish, without which the broker silently keeps
	 * at-most-once); false leaves the broker's at-most-once. */
	bool at_least_once;
};
void cq_queue_opts_init(struct cq_queue_opts *o);

struct cq_declared {
	char *dlq;		/* the dead-letter queue declared, or NULL */
	char *dlx;		/* its exchange, or NULL */
	uint32_t messages;	/* ready messages in the queue */
	uint32_t consumers;
};
void cq_declared_clear(struct cq_declared *d);

/*
 * Whether name can name a queue or exchange (kind: "queue", "exchange",
 * "dead-letter queue") as the broker checks it: 1 to 255 bytes, valid
 * UTF-8.  False with the reason in err, e.g. "queue name not valid UTF-8:
 * 'a\xFF'".  Every function below that sends a name checks it first, so
 * a name the broker would refuse is CQ_ERR_USAGE before the wire.
 */
bool cq_name_ok(const char *kind, const char *name, char *err, size_t errlen);

/* Declare a durable queue (and its DLX + DLQ).  Idempotent; an existing
 * queue with other arguments is CQ_ERR_DATA naming the argument. */
enum cq_err cq_declare(struct cq_ctx *ctx, const char *queue,
		       const struct cq_queue_opts *o, struct cq_declared *out);
/* Purge the ready messages of queue; *count gets how many went. */
enum cq_err cq_purge(struct cq_ctx *ctx, const char *queue, uint32_t *count);

/* What a queue's arguments say (cq_queue_probe). */
struct cq_queue_info {
	bool known;		/* false: the probe could not tell */
	bool quorum;
	long long delivery_limit;	/* x-delivery-limit argument, -1 none */
};
/*
 * Find a queue's type and delivery limit by redeclaring it with the
 * arguments the broker reports until the declaration matches (AMQP cannot
 * read arguments).  Never creates the queue.  Policies are not seen.
 */
enum cq_err cq_queue_probe(struct cq_ctx *ctx, const char *queue,
			   struct cq_queue_info *out);

/* Called for each peeked message (borrowed: valid during the call); an
 * error return stops the peek. */
typedef enum cq_err (*cq_peek_fn)(void *arg, const struct cq_delivery *d);
/*
 * Show up to count messages of queue without removing them: each is got
 * without ack and held, so none is seen twice, then all are requeued
 * (which marks them redelivered).  *seen gets how many.
 */
enum cq_err cq_peek(struct cq_ctx *ctx, const char *queue, size_t count,
		    cq_peek_fn fn, void *arg, size_t *seen);

/* ---- replay-dlq (replay.c) ---------------------------------------------- */

/* Which dead letters to move: every filter of the list must match. */
struct cq_filter;
/* Add "KEY=VALUE" or "header:KEY=VALUE" (a header's text equals VALUE),
 * "body:REGEX" (POSIX extended, anywhere in the body) or "reason:TEXT"
 * (the death reason contains TEXT, or an x-death entry's reason is TEXT).
 * CQ_ERR_USAGE with the reason in err. */
enum cq_err cq_filter_add(struct cq_filter **list, const char *spec,
			  char *err, size_t errlen);
void cq_filter_free(struct cq_filter *list);

enum cq_replay_what {
	CQ_REPLAY_MOVED,	/* republished, confirmed, DLQ copy acked */
	CQ_REPLAY_FAILED,	/* not confirmed: stays in the DLQ */
	CQ_REPLAY_SKIPPED,	/* filtered out or no target: stays */
	CQ_REPLAY_WOULD_MOVE,	/* --dry-run */
};

/* One message's fate; strings borrowed for the call, any may be NULL. */
struct cq_replay_event {
	enum cq_replay_what what;
	const char *message_id;
	const char *target;
	const char *reason;
};
/* False ends the run early (the caller's output cannot be written): it
 * takes nothing more, settles what is in flight and sets st->quit. */
typedef bool (*cq_replay_fn)(void *arg, const struct cq_replay_event *ev);
/* {"action":"moved|failed|skipped|would-move","message_id":..,"to":..,
 * "reason":..}; caller frees; NULL out of memory. */
char *cq_replay_event_json(const struct cq_replay_event *ev);

struct cq_replay_opts {
	const char *to;		/* target queue for all, else each one's own */
	uint64_t count;		/* at most this many (0 = all present at start) */
	const struct cq_filter *filter;
	bool dry_run;
	double rate;		/* messages/s, 0 = unlimited */
	bool reset_retries;	/* drop CQ_HDR_RETRIES */
	size_t window;		/* gets and publishes in flight (default 1000) */
	cq_replay_fn fn;
	/* Reconnected to another node of the URL list: what was taken and
	 * not moved is in the DLQ again, and is looked at again (its events
	 * come again; copies whose ack may have been lost are acked, not
	 * moved twice). */
	cq_reconnect_fn on_reconnect;
	void *arg;
};
void cq_replay_opts_init(struct cq_replay_opts *o);

struct cq_replay_stats {
	bool started;		/* the DLQ was found: there is a run to sum up */
	uint64_t present;	/* ready in the DLQ at start */
	uint64_t seen, replayed, skipped, failed, would_move;
	bool several_targets;
	bool stopped;		/* a stop request (cq_stop_requested) ended it
				 * before every message present was seen */
	char target[256];	/* the one target, when there was one */
	unsigned reconnects;	/* connections lost and made again */
	bool quit;		/* o->fn ended the run (its output is gone)
				 * before every message present was seen */
};

/*
 * Move the messages of dlq back to their queues (from x-death, qctl's
 * headers, an application's headers, the DLQ's name, or o->to), through
 * the default exchange, mandatory and confirmed, each dead-letter copy
 * acked only after its republish is confirmed.  Looks at no more messages
 * than were ready at start, so it cannot loop; what is not moved is
 * requeued to dlq.  Body, properties and headers are kept; CQ_HDR_REPLAYED
 * counts the replays.
 */
enum cq_err cq_replay(struct cq_ctx *ctx, const char *dlq,
		      const struct cq_replay_opts *o,
		      struct cq_replay_stats *st);

/* ---- consume (owned by `qctl consume`) ----------------------------------- */

struct cq_consume_stats {
	unsigned long long received;	/* deliveries read from the queue */
	unsigned long long handled;	/* printed, or settled after a handler */
	unsigned long long acked;	/* done: acked after success */
	unsigned long long retried;	/* republished with retries + 1 */
	unsigned long long dead_lettered;
	unsigned long long skipped;	/* --dedupe: id already processed */
	unsigned running;		/* handlers running now */
	long long elapsed_ms;
	bool stopped;			/* a signal ended the run (cq_stop_requested) */
	bool empty;			/* --until-empty or --idle-timeout ended a
					 * run that received nothing (CQ_ERR_NOTFOUND) */
	unsigned reconnects;		/* connections lost and made again */
	unsigned long long reacked;	/* after a reconnect: copies of messages
					 * done before (their ack may have been
					 * lost) acked, not handled again */
};

/*
 * What cq_consume does.  Start from cq_consume_opts_init().  Exactly one
 * of print (with flush) and exec is set.
 */
struct cq_consume_opts {
	const char *queue;
	unsigned prefetch;		/* basic.qos; 0 = 2000 printing, --jobs with exec */
	unsigned long long count;	/* stop after this many messages, 0 = no limit */
	long long idle_timeout_ms;	/* stop when nothing arrives for this long, 0 = never */
	bool until_empty;		/* stop once the queue is drained */

	/* Printing: print() writes one message (false: output failed);
	 * flush() pushes written output out (false: failed).  A message is
	 * acked only after a flush() that succeeded, and never after a
	 * failed print or flush. */
	bool (*print)(void *arg, const struct cq_delivery *d);
	bool (*flush)(void *arg);

	/* Or a handler per message: `sh -c exec` with the body on stdin. */
	const char *exec;
	unsigned jobs;			/* handlers at a time, >= 1 */
	unsigned max_retries;		/* failed attempts retried before dead-lettering */
	long long retry_delay_ms;	/* hold a failed message this long first */
	const int *poison_codes;	/* exit codes dead-lettered at once */
	size_t npoison;
	long long handler_timeout_ms;	/* SIGTERM (then SIGKILL) after, 0 = none */
	const char *dlq;		/* dead letters go here; NULL = the queue's
					 * DLX if it has one, else QUEUE.dlq */

	/* Redis list queues: the processing list (NULL: one of its own,
	 * {QUEUE}|cq:processing:HOST:PID:RANDOM), its lease (0: 30s), and a
	 * processing list to recover into the queue first, unless a live
	 * consumer holds it */
	const char *processing;
	long long lease_ms;
	const char *recover;

	bool dedupe;			/* skip ids already processed (Redis) */
	long long dedupe_ttl_ms;	/* remember a processed id this long */

	/* Redis Streams (the stream backend; its group is the settings'
	 * queue_group) */
	const char *consumer;		/* NULL: qctl-HOST-PID */
	long long visibility_ms;	/* claim a dead consumer's entries idle
					 * this long (default 5m; positive,
					 * else CQ_ERR_USAGE) */

	/* Reports (each may be NULL); all run inside cq_consume. */
	void (*handler_stderr)(void *arg, const char *p, size_t n);
	void (*notice)(void *arg, const char *msg);	/* retries, dead letters */
	void (*progress)(void *arg, const struct cq_consume_stats *st);
	void *arg;
	/* Reconnected to another node of the URL list (NULL: say nothing).
	 * Messages unsettled at the loss come back redelivered; none of
	 * them is counted done, and a handler still running for one is not
	 * acked (with dedupe, its id is marked when it succeeds). */
	cq_reconnect_fn reconnected;
	/* A stop request (cq_stop_requested): no new messages; in-flight
	 * handlers finish and are settled; on a second one they are asked
	 * to stop (SIGTERM, SIGKILL after the grace time). */
};

void cq_consume_opts_init(struct cq_consume_opts *o);

/*
 * Consume from a queue until a stop condition (count, idle timeout,
 * drained, a stop request) or an error.  ctx is connected to RabbitMQ, and with
 * dedupe to Redis too (cq_amqp_connect, cq_redis_connect): the caller
 * decides what to connect, cq_consume only checks.  Nothing is acked before it is done: an
 * error or a crash leaves the rest unacked, and RabbitMQ delivers them
 * again.  Returns CQ_OK; CQ_ERR_NOTFOUND when the queue does not exist,
 * or when --until-empty / --idle-timeout ended a run that received
 * nothing; CQ_ERR_IO when print or flush failed; connection errors.
 * *st is filled in every case.
 */
enum cq_err cq_consume(struct cq_ctx *ctx, const struct cq_consume_opts *o,
		       struct cq_consume_stats *st);

#endif
