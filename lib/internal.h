/* internal.h - symbols shared between lib/ files (cqi_*), never by programs;
 * unit tests and fuzzers may include it. */
#ifndef CQ_INTERNAL_H
#define CQ_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "cq.h"

struct cq_publisher;	/* queue_int.h */
struct cq_reader;	/* below */

void cqi_vformat(char *buf, size_t len, const char *fmt, va_list ap);
void cqi_errbuf(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An error set aside, so that work can go on (a channel still settles, a
 * lock is still released) before it is given back.  Start it zeroed.  The
 * only ways lib/ clears the context's error: hold it, turn it into a
 * warning, or drop one that is handled. */
struct cqi_err_held {
	enum cq_err err;
	char msg[sizeof(((struct cq_ctx *)0)->errstr)];
};
/* Move the context's error (if any) into h, the context usable again; the
 * first error held wins. */
void cqi_err_hold(struct cq_ctx *ctx, struct cqi_err_held *h);
/* Hold an error that was never on the context (the first one wins). */
void cqi_err_holdf(struct cqi_err_held *h, enum cq_err err, const char *fmt,
		   ...) __attribute__((format(printf, 3, 4)));
/* Put the held error back unless the context has one of its own; h is
 * empty after.  Returns the context's error. */
enum cq_err cqi_err_restore(struct cq_ctx *ctx, struct cqi_err_held *h);
/* Fail-open: the context's error becomes h's (reset first) and the context
 * is cleared.  Returns its text for a warning ("" without an error). */
const char *cqi_err_warning(struct cq_ctx *ctx, struct cqi_err_held *h);
/* Drop an error that is handled (the next URL is tried, a message was
 * settled as failed). */
void cqi_err_drop(struct cq_ctx *ctx);

/* The array v of *cap items, each size bytes, with room for need items:
 * v itself when it has it, else grown (realloc) to first items (first >
 * 0) or twice its room, doubled until need fit, and *cap set.  NULL out
 * of memory (v as it was, still the caller's). */
void *cqi_grow(void *v, size_t *cap, size_t need, size_t size, size_t first);

/* The n bytes at p (NULL when n is 0) as a NUL-terminated copy, to
 * free; NULL out of memory. */
char *cqi_memdup(const void *p, size_t n);

/* "host:port" into buf, "[host]:port" for an IPv6 address (url.c). */
void cqi_host_port(char *buf, size_t len, const char *host, int port);

/* Sleep ms milliseconds, or until a stop request (cq_stop_requested):
 * stop.c. */
void cqi_sleep_ms(long long ms);

/* This host's name into buf of len bytes (cut to fit), "unknown" when
 * it has none. */
void cqi_hostname(char *buf, size_t len);

/* The file a flag names (what: "CA file", "client key") can be read:
 * else CQ_ERR_USAGE, "cannot use CA file 'PATH': why". */
enum cq_err cqi_check_file(struct cq_ctx *ctx, const char *what,
			   const char *path);
/* --cert and --key: *given false for neither; both, each readable
 * (cqi_check_file); else CQ_ERR_USAGE, "--cert and --key go together". */
enum cq_err cqi_tls_client_files(struct cq_ctx *ctx, bool *given);

/* Join the context's prefix and key into buf (reset first).  Returns false
 * out of memory. */
bool cqi_prefixed(const struct cq_ctx *ctx, const char *key, size_t keylen,
		  struct cq_buf *buf);

/* Set name on obj (a jansson json_t) to the n bytes at p as a string, or,
 * when they are not valid UTF-8, name_base64 to their base64.  0, or -1
 * out of memory. */
struct json_t;
int cqi_json_set_bytes(struct json_t *obj, const char *name, const char *p,
		       size_t n);

/* The JSON object that line[0..len) holds, as one line of JSONL input:
 * duplicate keys refused, NUL bytes allowed in strings, JSON's blanks
 * allowed after the object, nothing else.  A new reference (the caller
 * decrefs), or NULL with what is wrong in err: lower case, no line number
 * ("bad JSON at column 9: ...", "text after the JSON object at column
 * 14: 'x'", "not a JSON object: '[1]'", "empty line"). */
struct json_t *cqi_jsonl_object(const char *line, size_t len, char *err,
				size_t errlen);

/* The n bytes at p for a one-line message: control bytes and stray bytes
 * as \xFF, cut after max bytes ("..."); buf always terminated. */
void cqi_show_bytes(const char *p, size_t n, size_t max, char *buf,
		    size_t cap);

/* Percent-decode s[0..n) into a new NUL-terminated string; NULL on a bad
 * escape or out of memory. */
char *cqi_pct_decode(const char *s, size_t n);

/* The length of the first member of a comma-separated URL list at p; a
 * comma inside a member's user info (a password) does not end it. */
size_t cqi_url_member_len(const char *p);

/*
 * --track (stats_redis.c): after a read of the cache that found `hits`
 * keys and missed `misses`, count them for the context's prefix in
 * CQ_TRACK_KEY.  The update (one HINCRBY per non-zero count) is written at
 * once and its reply not waited for: the transport skips it before it
 * reads the next reply, so it costs no round trip.  Never fails the read:
 * a failure to count is silent.  Does nothing unless ctx->set.track.
 */
void cqi_stats_track(struct cq_ctx *ctx, size_t hits, size_t misses);

/* Call wait(arg, fd) before each read of r (cqi_reader_serve, which lives
 * with the publisher so that cachectl links no AMQP); NULL stops. */
struct cq_reader;
void cqi_reader_wait(struct cq_reader *r,
		     enum cq_err (*wait)(void *arg, int fd), void *arg);
/* Wait until fd can be read (CQ_OK), or a stop request (CQ_ERR_TEMPFAIL
 * and no context error: the reader stops); a reader's wait without one,
 * and the end of every wait once there is nothing to serve (a queue
 * driver's wait_input, warm's).  CQ_ERR_IO when poll() fails. */
enum cq_err cqi_wait_readable(struct cq_ctx *ctx, int fd);

/*
 * Helpers of the files below that no program calls (programs get cq.h
 * only; a unit test or fuzzer may include this header).
 */

/* ---- URL parsing (url.c) --------------------------------------------------- */

struct cqi_redis_url {
	char *host;		/* NULL for unix sockets; IPv6 without [] */
	int port;
	/* every host:port of the URL in order, host/port above first: the
	 * seeds of a cluster, or fallback nodes of a single Redis
	 * (redis://h1:7000,h2:7001/0); none for unix sockets */
	struct cqi_redis_node {
		char *host;
		int port;
	} *nodes;
	size_t nnodes;
	char *path;		/* unix socket path, or NULL */
	int db;
	char *user;		/* ACL user, or NULL */
	char *pass;		/* or NULL */
	bool tls;		/* rediss:// */
};
enum cq_err cqi_redis_url_parse(const char *url, struct cqi_redis_url *out,
			       char *errbuf, size_t errlen);
void cqi_redis_url_clear(struct cqi_redis_url *u);

/* redis-sentinel://[user[:pass]@]host[:port][,host[:port]...][/db]#MASTER:
 * the sentinels to ask (port 26379 by default) for the master named
 * MASTER; user, pass and db are the master's, as in redis://. */
struct cqi_sentinel_url {
	char **hosts;		/* decoded; IPv6 without [] */
	int *ports;
	size_t n;
	char *master;		/* decoded fragment */
	int db;
	char *user, *pass;	/* or NULL */
};
/* True when url is a redis-sentinel:// URL (the scheme only). */
bool cqi_is_sentinel_url(const char *url);
enum cq_err cqi_sentinel_url_parse(const char *url,
				   struct cqi_sentinel_url *out,
				   char *errbuf, size_t errlen);
void cqi_sentinel_url_clear(struct cqi_sentinel_url *u);

struct cqi_amqp_url {
	char *host;
	int port;
	char *user;
	char *pass;
	char *vhost;		/* decoded; "/" by default */
	bool tls;
	int heartbeat_s;	/* ?heartbeat=N, or -1: the settings' */
	int connect_timeout_ms;	/* ?connection_timeout=MS, or -1 */
};
enum cq_err cqi_amqp_url_parse(const char *url, struct cqi_amqp_url *out,
			      char *errbuf, size_t errlen);
void cqi_amqp_url_clear(struct cqi_amqp_url *u);

/* Copy url into buf with any password replaced by "***".  Works on
 * malformed input too, since it is used in error messages. */
void cqi_url_redact(const char *url, char *buf, size_t len);

/* ---- connections (redis.c, amqp.c) ----------------------------------------- */

/* The host:port (or socket) connected to, with no password, for messages.
 * Borrowed; valid until the context is freed. */
const char *cqi_redis_where(const struct cq_ctx *ctx);
const char *cqi_amqp_where(const struct cq_ctx *ctx);

/* ---- small shared helpers (util.c) ----------------------------------------- */

/* FNV-1a over n bytes at p, from h (start with CQI_HASH_INIT): a fast
 * 64-bit fingerprint, not for secrets. */
#define CQI_HASH_INIT 0xcbf29ce484222325ULL
uint64_t cqi_hash64(uint64_t h, const void *p, size_t n);
/* ---- messages done lately (done.c), for redelivered copies ---------------- */

struct cqi_done {
	struct { uint64_t key; bool counted; } *slot;	/* key 0: free */
	size_t cap, next;
};
/* A ring of cap fingerprints; false out of memory. */
bool cqi_done_init(struct cqi_done *r, size_t cap);
void cqi_done_clear(struct cqi_done *r);
/* The fingerprint of a message: its id, its retry count (a retry is
 * another message with the same id) and its body; 0 without an id. */
uint64_t cqi_done_key(const struct cq_delivery *d);
/* Remember key (0: nothing); counted: the verb counted it done already. */
void cqi_done_add(struct cqi_done *r, uint64_t key, bool counted);
/* The last n added were counted after all (a batch acked). */
void cqi_done_count_last(struct cqi_done *r, size_t n);
/* Was key done (once per add)?  *counted says whether it was counted. */
bool cqi_done_take(struct cqi_done *r, uint64_t key, bool *counted);

/* Fill buf with n bytes from the OS random source. */
enum cq_err cqi_random_bytes(struct cq_ctx *ctx, void *buf, size_t n);
/* A uniform random integer in [0, n) from a fast per-process generator
 * seeded from the OS (not for secrets). */
uint64_t cqi_rand_below(uint64_t n);
/*
 * A rate limiter: cqi_throttle_wait() sleeps as needed so that calls are
 * spread at most `per_s` a second.  per_s == 0 means unlimited.
 */
struct cqi_throttle {
	double per_s;
	long long start_ms;
	unsigned long long done;
};
void cqi_throttle_init(struct cqi_throttle *t, double per_s);
void cqi_throttle_wait(struct cqi_throttle *t, unsigned long long n);

/* ---- base64 (json.c) ------------------------------------------------------- */

/* Standard base64 of n bytes, NUL-terminated; caller frees.  NULL out of
 * memory. */
char *cqi_base64(const void *p, size_t n);
/* Decode standard or URL-safe base64 (padding optional) into out
 * (appended).  False for bad input (or out of memory). */
bool cqi_base64_decode(const char *s, size_t n, struct cq_buf *out);

/* ---- key names (cache.c) --------------------------------------------------- */

/* The Redis Cluster hash slot of a key (CRC16/XMODEM mod 16384 of the key,
 * or of its first non-empty {hash tag}). */
unsigned cqi_key_slot(const void *key, size_t len);

/*
 * The name of something cq keeps beside key (what: "lock", "meta"), built
 * so that it hashes to the same cluster slot as key:
 *   key has a {tag}:            key "|cq:" what
 *   else, no '}' in key and no '{' in prefix:
 *                               prefix "{" key "}|cq:" what
 *   else:                       "{" T "}" key "|cq:" what, T a short
 *                               string found to hash to key's slot
 * key is the full key name (prefix included); prefix may be NULL.
 * Returns false out of memory.
 */
bool cqi_derived_key(const char *prefix, const void *key, size_t len,
		    const char *what, struct cq_buf *out);
/* The TTL to write: ttl_ms plus a uniform random extra in
 * [0, jitter_ms] or [0, ttl_ms * jitter_pct / 100]. */
long long cqi_jittered_ttl(const struct cq_set_opts *o);
/* Escape the glob characters (* ? [ ] \) of s[0..n) into out (appended). */
bool cqi_glob_escape(const char *s, size_t n, struct cq_buf *out);

/* ---- warm records (records.c) ---------------------------------------------- */

#define CQ_WARM_MAX_TAGS 32

/*
 * One record to warm.  key, val and tags point into the parsed line, or
 * into scratch (JSONL), and stay valid until the next parse or clear.
 */
struct cqi_warm_rec {
	const char *key;
	size_t keylen;
	const char *val;
	size_t vallen;
	long long ttl_ms;	/* -1: the run's --ttl */
	size_t ntags;
	const char *tags[CQ_WARM_MAX_TAGS];
	size_t taglens[CQ_WARM_MAX_TAGS];
	struct cq_buf scratch;
	bool nomem;		/* the parse failed for lack of memory, not
				 * for the record: the run must stop (70) */
};
void cqi_warm_rec_clear(struct cqi_warm_rec *rec);

/*
 * The record parsers: pure functions (no I/O), total on any input (a
 * fuzzer may call them with anything).  Return true and fill rec, or
 * false with a message in err (lower case, no line number).
 *   tsv:   key TAB value (the value may hold TABs; no newline expected)
 *   nul:   key NUL value (one -0 record: two NUL-terminated fields joined)
 *   jsonl: {"key":S, "value":ANY, "ttl":SECONDS|"DUR", "tags":[S...]}
 *          key_base64/value_base64 instead of key/value; a non-string
 *          value is stored as its compact JSON text; "ttl_ms" also taken.
 */
bool cqi_warm_parse_tsv(const char *line, size_t len, struct cqi_warm_rec *rec,
		       char *err, size_t errlen);
bool cqi_warm_parse_nul(const char *rec_data, size_t len,
		       struct cqi_warm_rec *rec, char *err, size_t errlen);
bool cqi_warm_parse_jsonl(const char *line, size_t len,
			 struct cqi_warm_rec *rec, char *err, size_t errlen);
/* A keys file line for --exec: the key itself, non-empty. */
bool cqi_warm_parse_key(const char *line, size_t len, struct cqi_warm_rec *rec,
		       char *err, size_t errlen);

/* ---- fields (fields.c) ----------------------------------------------------- */

/* A field of a table by name (first match), or NULL.  Borrowed. */
const struct cq_field *cqi_field_get(const struct cq_field *items, size_t n,
				    const char *key);
/* The value as text: strings as they are, numbers in decimal, booleans
 * "true"/"false", tables and arrays as compact JSON.  Caller frees; NULL
 * out of memory. */
char *cqi_field_text(const struct cq_field *f);
/* An integer value (INT, BOOL, TIMESTAMP, or a STRING holding a decimal
 * integer), else false. */
bool cqi_field_int(const struct cq_field *f, long long *out);
/* Free the fields of an array of n and the array itself. */
void cqi_fields_free(struct cq_field *items, size_t n);
enum cq_err cqi_death_decode(const struct cq_field *headers, size_t n,
			    const char *from_queue, struct cq_death *out);

/* ---- deliveries (queue.c) -------------------------------------------------- */

/* A header as text (see cqi_field_text), or NULL when absent or out of
 * memory.  Caller frees. */
char *cqi_delivery_header_text(const struct cq_delivery *d, const char *name);
void cqi_delivery_free(struct cq_delivery *d);
/*
 * basic.get one message from queue without acking it.  *out is NULL when
 * the queue is empty (CQ_OK).  A missing queue is CQ_ERR_NOTFOUND.
 */
enum cq_err cqi_get(struct cq_ctx *ctx, const char *queue,
		   struct cq_delivery **out);
/* Settle a delivery by tag.  multiple covers every unsettled tag up to it. */
enum cq_err cqi_ack(struct cq_ctx *ctx, uint64_t tag, bool multiple);
enum cq_err cqi_nack(struct cq_ctx *ctx, uint64_t tag, bool multiple,
		    bool requeue);
enum cq_err cqi_reject(struct cq_ctx *ctx, uint64_t tag, bool requeue);

/* ---- the publisher (publish.c) --------------------------------------------- */

/* Settle whatever confirms have already arrived, without blocking. */
enum cq_err cqi_publisher_poll(struct cq_publisher *pub);
/* Block until fd has input (or its end, or an error), reading confirms and
 * sending heartbeats meanwhile, so a slow producer neither leaves confirms
 * unread nor lets the broker drop an idle connection.  CQ_OK, or the error
 * that ended the publisher. */
enum cq_err cqi_publisher_wait_input(struct cq_publisher *pub, int fd);
size_t cqi_publisher_outstanding(const struct cq_publisher *pub);

/* ---- replay filters (replay.c) --------------------------------------------- */

bool cqi_filter_match(const struct cq_filter *list, const struct cq_delivery *d,
		     const struct cq_death *death);

/* ---- metrics (stats.c) ----------------------------------------------------- */

/* Append a metric (name must be in the table; label may be NULL).
 * Returns false out of memory or for an unknown name. */
bool cqi_metrics_add(struct cq_metrics *ms, const char *name,
		    const char *label, size_t label_len, double value);
/* Record a queue (copied); returns its index or -1 out of memory. */
/* The figures of one queue of the context's backend, labelled label (its
 * name, or cqstat's "list:NAME"): cq_queue_figures for one. */
enum cq_err cqi_queue_figures(struct cq_ctx *ctx, const char *queue,
			      const char *label, const char *dlq,
			      struct cq_metrics *ms);
int cqi_metrics_add_queue(struct cq_metrics *ms, const char *name,
			 const char *dlq, bool found);
/* Give queue name (recorded) its quorum leader and members (copied).
 * Returns false out of memory. */
bool cqi_metrics_set_members(struct cq_metrics *ms, const char *name,
			     const char *leader, const struct cq_member *m,
			     size_t n);

/* ---- metrics (stats_redis.c) ----------------------------------------------- */

/*
 * Parse the text of INFO (any sections; "key:value" lines, CRLF or LF).
 * Unknown fields are ignored.  A pure function: false with a message in
 * err when keyspace_hits, keyspace_misses, total_commands_processed or
 * used_memory is missing, or when a field cq uses has a malformed value.
 */
bool cqi_redis_info_parse(const char *text, size_t len,
			 struct cq_redis_info *out, char *err, size_t errlen);

/* ---- the RabbitMQ management API (mgmt.c) ---------------------------------- */

/* ---- the RabbitMQ management API (mgmt.c) ------------------------------ */

/* One queue as the management API reports it. */
struct cqi_api_queue {
	char *name;
	double ready, unacked, consumers;	/* NAN when not reported */
	double publish_rate, deliver_rate, ack_rate;	/* per second */
	char *dlq;		/* where its dead letters go, NULL unknown */
	bool found;		/* the API knows the queue */
	bool quorum;		/* a quorum queue: the members below */
	char *leader;
	struct cq_member *members;
	size_t nmembers;
};
void cqi_api_queues_free(struct cqi_api_queue *q, size_t n);

/* One node of the cluster as the management API reports it. */
struct cqi_api_node {
	char *name;
	bool running;
	bool mem_alarm, disk_alarm;	/* resource alarms in force */
	size_t partitions;	/* nodes it cannot see (a network partition) */
};
void cqi_api_nodes_free(struct cqi_api_node *n, size_t count);
/* The cluster's nodes (GET /api/nodes); *out freed with
 * cqi_api_nodes_free. */
enum cq_err cqi_api_nodes(struct cq_ctx *ctx, const char *url,
			  struct cqi_api_node **out, size_t *nout);

/* Log in to the management API at url (GET /api/whoami): CQ_OK when it
 * answers and accepts the login, else the error, with the message on ctx
 * (no password in it). */
enum cq_err cqi_api_ping(struct cq_ctx *ctx, const char *url);

/*
 * Read queues of vhost from the management API at url
 * (http[s]://[user:pass@]host:port[/path]): the named ones (names, n
 * of them: a missing one comes back with name set and every figure NAN),
 * or, with glob non-NULL, every queue whose name matches it (fnmatch).
 * The dead-letter queue is resolved from x-dead-letter-exchange /
 * -routing-key (arguments or policy) and the exchange's bindings.  The
 * URL's password never appears in a message.  *out is an array the
 * caller frees with cqi_api_queues_free.
 */
enum cq_err cqi_api_queues(struct cq_ctx *ctx, const char *url,
			  const char *vhost, const char *const *names,
			  size_t n, const char *glob,
			  struct cqi_api_queue **out, size_t *nout);

/* ---- child processes: what every command cq starts shares (run.c) ---- */

#include <sys/types.h>

/* SIGTERM to a child's process group, then SIGKILL this much later. */
#define CQI_KILL_GRACE_MS 5000

/* How a child ended: the one reading of a wait status. */
enum cqi_end_kind {
	CQI_END_EXIT,		/* it exited with code */
	CQI_END_SIGNAL,		/* a signal (sig) ended it */
	CQI_END_TIMEOUT,	/* we ended it for running too long */
};
struct cqi_end {
	enum cqi_end_kind kind;
	int code;	/* shell style: the exit code, or 128 + the signal */
	int sig;	/* CQI_END_SIGNAL: the signal */
};
/* Decode status (from waitpid); timed_out when we ended the child for
 * its time, whatever the status says. */
struct cqi_end cqi_child_end(int status, bool timed_out);
/* "exit 3", "signal 9", "timeout". */
void cqi_end_text(const struct cqi_end *e, char *buf, size_t len);

/* In a child before exec, after it took its own process group (so that
 * stopping it reaches what it starts, and a Ctrl-C reaches only cq, which
 * stops it): default signal dispositions and mask, and cq's own secrets
 * (CQ_AMQP_URL, CQ_REDIS_URL, CQ_REDIS_PASSWORD, CQ_PASSWORD_FILE, the
 * CQ_SENTINEL_ login) out of the environment unless pass_env. */
void cqi_child_setup(bool pass_env);
/* True when a command with this stdin gets its own process group: always
 * unless it reads a terminal, which only the terminal's foreground group
 * may do (such a command stays in ours, so a Ctrl-C reaches it too). */
bool cqi_child_own_group(bool null_stdin);
/* Send sig to the process group pgid (and pgid itself, should it have
 * left the group). */
void cqi_group_signal(pid_t pgid, int sig);
/* No process is left in group pgid. */
bool cqi_group_gone(pid_t pgid);

/* ---- record input (reader.c) ------------------------------------------ */

/*
 * The one reader of record streams: warm's and enqueue's input.  Records
 * end with a delimiter ('\n', or '\0' for -0); with nfields 2 (warm -0's
 * key and value) a record ends at every second one.  Constant memory: a
 * 256 KiB buffer grows to hold the longest record kept and shrinks back.
 *
 * The input rules, the same for every verb:
 * - an empty record (a blank line) is skipped and counted (cqi_reader_blank);
 *   record numbers count it, so they stay line numbers;
 * - with refuse_cr (line formats whose CR would become data), a line that
 *   ends in CR (a CRLF file) is flawed, CQ_REC_CR;
 * - a record longer than max is flawed, CQ_REC_TOO_LONG: its first max
 *   bytes are shown and the rest is skipped;
 * - the last record needs no delimiter, but a last pair cut after its key
 *   ("k\0" at the end, a truncated stream) comes without the delimiter,
 *   as a lone key, for the parser to refuse.
 */
struct cq_reader_opts {
	char delim;		/* '\n' or '\0' */
	int nfields;		/* delimiters per record: 1 (0 means 1) or 2 */
	size_t max;		/* longest record kept, 0 = no limit */
	bool refuse_cr;		/* '\n' records ending in CR are flawed */
};

enum cq_rec_flaw { CQ_REC_OK, CQ_REC_TOO_LONG, CQ_REC_CR };

struct cq_rec_in {
	const char *p;		/* borrowed until the next call; no delimiter */
	size_t len;
	uint64_t no;		/* 1-based, blank records counted */
	enum cq_rec_flaw flaw;
};

struct cq_reader;
struct cq_publisher;
/* NULL out of memory (with the error on ctx).  fd stays the caller's. */
struct cq_reader *cqi_reader_new(struct cq_ctx *ctx, int fd,
				const struct cq_reader_opts *o);
/* True with the next non-blank record in *rec; false at the end of input,
 * on a stop request (cq_stop_requested: cqi_reader_stopped says so, no
 * error), or on an error (then set on ctx: CQ_ERR_IO for a failed read,
 * or the error of a served publisher that died). */
bool cqi_reader_next(struct cq_reader *r, struct cq_rec_in *rec);
/* A stop request ended the input: the records after cqi_reader_records()
 * were not read. */
bool cqi_reader_stopped(const struct cq_reader *r);
/* Records read so far, blank ones included; blank ones skipped so far. */
uint64_t cqi_reader_records(const struct cq_reader *r);
uint64_t cqi_reader_blank(const struct cq_reader *r);
/* Wait for input through pub (cqi_publisher_wait_input) before each read: a
 * read that would block then serves the connection instead.  NULL stops. */
void cqi_reader_serve(struct cq_reader *r, struct cq_publisher *pub);
void cqi_reader_free(struct cq_reader *r);
/* What a flaw means, for messages (static; "" for CQ_REC_OK). */
const char *cqi_rec_flaw_str(enum cq_rec_flaw f);

/* ---- enqueue records (enqueue.c) ---------------------------------------- */

/*
 * One JSONL record: {"body": S | "body_base64": S, "headers": {K: S|int|
 * bool}, "message_id", "content_type", "routing_key": S, "priority": 0-255,
 * "expiration": ms or duration, "persistent": bool} (hyphenated names
 * also accepted).  msg comes in with the defaults (-H headers are kept,
 * record headers are added) and leaves pointing into *rec, valid until
 * cqi_record_free.  CQ_ERR_DATA with the reason in err for a bad record.
 */
struct cq_record;
enum cq_err cqi_record_parse(const char *line, size_t len,
			    struct cq_message *msg, struct cq_record **rec,
			    char *err, size_t errlen);
void cqi_record_free(struct cq_record *rec);

#endif
