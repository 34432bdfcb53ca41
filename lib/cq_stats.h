/* cq_stats.h - cache and queue figures (cqstat, the stats verbs).
 * Included by cq.h.
 *
 * One module computes every figure; cqstat, `cachectl stats` and
 * `qctl stats` only choose what to sample and how to show it.
 *
 * Files, so that each program links only what it uses:
 *   stats.c        the metric list, JSON / Prometheus / text output, checks
 *   check.c        the --check expression parser (pure)
 *   stats_redis.c  Redis INFO and the per-prefix hit counters
 *   stats_queue.c  queue depth from a passive declare (librabbitmq)
 *   mgmt.c         the RabbitMQ management HTTP API (libcurl)
 *   stats_sample.c cqstat's sampler over all of them
 *
 * Every figure is a struct cq_metric: a name from a fixed table (the same
 * name in text output, JSON, --check; Prometheus adds cq_ and a unit), an
 * optional label (queue, prefix, db or server) and a value, NAN when
 * unknown (no lookups yet, server down, no dead-letter queue).
 */
#ifndef CQ_STATS_H
#define CQ_STATS_H

/* ---- metric definitions ------------------------------------------------ */

enum cq_metric_type { CQ_GAUGE, CQ_COUNTER };

/* What a value looks like in text: a ratio 0-1, a count, bytes, a rate. */
enum cq_metric_fmt { CQ_FMT_RATIO, CQ_FMT_COUNT, CQ_FMT_BYTES, CQ_FMT_RATE };

struct cq_metric_def {
	const char *name;	/* "hit_rate", "ready", ... */
	const char *prom;	/* Prometheus name, NULL = not exported */
	enum cq_metric_type type;
	enum cq_metric_fmt fmt;
	const char *label;	/* label name ("queue", "prefix", ...) or NULL */
	const char *help;
};
/* A figure of the cluster's nodes (cqstat --nodes): label "node", or one
 * of nodes_running, nodes_down, alarms, partitions. */
bool cq_metric_cluster(const struct cq_metric_def *d);

/* The definition of a metric name, or NULL when there is none. */
const struct cq_metric_def *cq_metric_def(const char *name);
/* Every definition, n of them. */
const struct cq_metric_def *cq_metric_defs(size_t *n);

/* ---- a sample: a list of metrics --------------------------------------- */

struct cq_metric {
	const struct cq_metric_def *def;
	char *label;		/* owned; NULL when the metric has none */
	size_t label_len;	/* labels (prefixes) may hold any byte */
	double value;		/* NAN = unknown */
};

/* A server read for the sample, and why it could not be. */
struct cq_source {
	const char *name;	/* "redis", "amqp", "api" (static) */
	bool used;		/* asked for in this sample */
	bool up;
	enum cq_err err;
	char errstr[512];	/* no secrets */
};

enum { CQ_SRC_REDIS, CQ_SRC_AMQP, CQ_SRC_API, CQ_NSRC };

/* A member of a quorum queue: the node that holds a replica. */
struct cq_member {
	char *node;
	bool leader;
	bool online;		/* answering; a member down is out of sync */
};

/* A queue looked at, with what is known beside its numbers. */
struct cq_queue_stat {
	char *name;
	char *dlq;		/* its dead-letter queue, NULL when none known */
	bool found;		/* false: no such queue, or not read (see
				 * cq_queue_known) */
	int src;		/* where its figures come from: CQ_SRC_AMQP
				 * (and the API), or CQ_SRC_REDIS (a list or
				 * stream queue) */
	const char *backend;	/* "amqp", "list" or "stream" (static) */
	char *error;		/* why its figures are unknown though its
				 * server answers (a key of another type),
				 * or NULL */
	/* a quorum queue's (management API): leader NULL when none */
	char *leader;
	struct cq_member *members;
	size_t nmembers;
};

struct cq_metrics {
	long long time_ms;	/* wall clock of the sample */
	double interval_s;	/* seconds since the previous sample; 0 for
				 * since-start figures */
	struct cq_source src[CQ_NSRC];
	struct cq_queue_stat *queues;
	size_t nqueues;
	bool cluster;		/* the cluster's nodes were asked for */
	struct cq_metric *m;
	size_t n, cap;
};

void cq_metrics_init(struct cq_metrics *ms);
void cq_metrics_clear(struct cq_metrics *ms);
/* The value of name (with label, or the first of that name when label is
 * NULL); NAN when absent. */
double cq_metrics_get(const struct cq_metrics *ms, const char *name,
		      const char *label);
/* Mark a source used, and up or down with the context's error. */
void cq_metrics_source(struct cq_metrics *ms, int src, const struct cq_ctx *ctx);
/* Could the sample tell whether q exists?  A passive declare or the
 * management API answered (Redis, for a list or stream queue).  When
 * not, q->found means nothing: the queue is unknown, not missing. */
bool cq_queue_known(const struct cq_metrics *ms, const struct cq_queue_stat *q);

/* ---- output ------------------------------------------------------------ */

/* One JSON object for the sample (no newline): {"time":..,"interval":..,
 * "redis":{"up":..,..,"dbs":[..],"prefixes":[..]},"amqp":{"up":..},
 * "queues":[{"queue":..,"found":..,"ready":..,..}]}; an unknown value is
 * null (found too, for a queue whose server could not be asked).
 * Caller frees; NULL out of memory. */
char *cq_metrics_json(const struct cq_metrics *ms);
/* Prometheus text exposition: # HELP and # TYPE once per metric, then
 * one line per known value; appended to out.  Label values are always
 * valid UTF-8: \\, \" and \n escaped as the format says, a byte that is
 * not part of valid UTF-8 written as the text \xFF (its backslash
 * escaped).  Returns false out of memory. */
bool cq_metrics_prom(const struct cq_metrics *ms, struct cq_buf *out);
/* "name value" lines (name[label] for labelled metrics), unknown values
 * as "-", appended to out.  Returns false out of memory. */
bool cq_metrics_text(const struct cq_metrics *ms, struct cq_buf *out);
/* A value formatted for people in at most 8 characters: "0.93", "12.3k",
 * "1.5M", "512K" for bytes, "-" when unknown. */
void cq_metric_human(double v, enum cq_metric_fmt fmt, char *buf, size_t len);
/* The length (1-4) of the valid UTF-8 sequence at the start of p (n bytes
 * long), 0 when it does not start with one (a stray continuation byte,
 * an overlong form, a surrogate, past U+10FFFF, cut short). */
size_t cq_utf8_seq(const void *p, size_t n);

/* ---- checks (--check EXPR) --------------------------------------------- */

enum cq_check_op { CQ_OP_LT, CQ_OP_LE, CQ_OP_GT, CQ_OP_GE, CQ_OP_EQ, CQ_OP_NE };
/* Monitoring-plugin states; their values are the exit codes. */
enum cq_check_state { CQ_STATE_OK, CQ_STATE_WARN, CQ_STATE_CRIT,
		      CQ_STATE_UNKNOWN };

struct cq_check {
	char metric[64];
	char label[256];	/* the [LABEL] selector, "" for every label */
	bool has_label;
	enum cq_check_op op;
	double threshold;
	enum cq_check_state level;	/* CQ_STATE_WARN or CQ_STATE_CRIT */
};

/*
 * Parse "METRIC[LABEL]OP NUMBER[%][:LEVEL]", e.g. "hit_rate<0.8:warn",
 * "dlq>0:crit", "ready[jobs]>=10000".  OP is < <= > >= == !=  (= means
 * ==); LEVEL is warn, warning, crit or critical (default crit); a '%'
 * divides the number by 100.  Spaces around the parts are allowed.  The
 * metric must be one of the table.  A pure function: false and a message
 * in err for anything else.
 */
bool cq_check_parse(const char *expr, struct cq_check *out, char *err,
		    size_t errlen);

/*
 * Evaluate checks against a sample.  The state is the worst of them; a
 * check whose metric is unknown (server down, no such queue, no lookups)
 * makes it UNKNOWN.  "up" has one value per server the sample used
 * (up[redis], up[amqp], up[api]): 1 when it could be read, else 0.  A
 * figure is named with its [label] when the check names one or the
 * metric has several.  line gets the status line, without newline:
 *   "CQ OK - hit_rate=0.93 dlq=0"
 *   "CQ CRITICAL - dlq=2 (>0) hit_rate=0.93"
 *   "CQ UNKNOWN - hit_rate unknown: Redis at 127.0.0.1:1: ..."
 * Values that broke a threshold come first.  Returns false out of memory.
 */
bool cq_checks_eval(const struct cq_check *checks, size_t n,
		    const struct cq_metrics *ms, enum cq_check_state *state,
		    struct cq_buf *line);

/* ---- Redis (stats_redis.c) --------------------------------------------- */

/* The hash that --track counts into: fields "hits:" PREFIX and
 * "misses:" PREFIX (any bytes), outside any prefix.  Its own slot. */
#define CQ_TRACK_KEY "cq:track"

#define CQ_REDIS_MAX_DBS 64

struct cq_redis_db {
	int db;
	unsigned long long keys, expires;
};

/* The figures of one INFO reply that cq uses. */
struct cq_redis_info {
	char run_id[48];		/* changes when the server restarts */
	unsigned long long uptime_s;
	unsigned long long hits, misses;	/* keyspace_hits / _misses */
	unsigned long long commands;	/* total_commands_processed */
	unsigned long long evicted, expired;	/* evicted_keys / expired_keys */
	unsigned long long used_memory, maxmemory;
	unsigned long long keys, expires;	/* over every db */
	size_t ndb;			/* dbs listed (the first CQ_REDIS_MAX_DBS) */
	struct cq_redis_db db[CQ_REDIS_MAX_DBS];
};

/* Per-prefix counters from CQ_TRACK_KEY. */
struct cq_track {
	char *prefix;		/* owned; may hold any byte */
	size_t len;
	unsigned long long hits, misses;
};

/* One master of a Redis Cluster, as a sample saw it. */
struct cq_redis_master {
	char where[128];		/* host:port */
	struct cq_redis_info info;
};

struct cq_cache_sample {
	long long at_ms;	/* monotonic */
	struct cq_redis_info info;	/* on a cluster, every master's summed */
	struct cq_redis_master *masters;	/* a cluster's, each (or NULL) */
	size_t nmasters;
	struct cq_track *track;
	size_t ntrack;
	bool tracked;		/* the track hash was read (its lookup) */
	bool track_existed;	/* ... and existed: a hit, else a miss */
};
void cq_cache_sample_clear(struct cq_cache_sample *s);

/* Read INFO (and, with ctx->set.track, the track hash) in one round trip.
 * On a Redis Cluster, every master's INFO (never a replica's): info is
 * their sum (counters, memory, keys, evictions; the uptime the oldest
 * master's) and masters holds each.  On error the sample is cleared and
 * the context error set. */
enum cq_err cq_cache_sample(struct cq_ctx *ctx, struct cq_cache_sample *out);

/*
 * Add the cache metrics to ms (on a cluster, of the whole cluster, then
 * each master's master_* figures labelled with its host:port): over the
 * interval from prev to cur, or
 * since the server started when prev is NULL (or the server restarted or
 * its counters were reset in between).  The lookups of the track hash by
 * the previous sample are taken out of the interval's hits and misses.
 * Sets ms->interval_s to the seconds between the two samples, 0 for
 * since-start figures.  A pure function.  Returns false out of memory.
 */
bool cq_cache_figures(const struct cq_cache_sample *prev,
		      const struct cq_cache_sample *cur,
		      struct cq_metrics *ms);

/* ---- queues (stats_queue.c) -------------------------------------------- */

/*
 * Add the queue metrics of each queue to ms from passive declares: ready
 * (a passive declare counts only ready messages, not unacked ones) and
 * consumers; dlq, the ready messages of its dead-letter queue: dlqs[i]
 * when non-NULL, else QUEUE CQ_DLQ_SUFFIX when that queue exists.  A
 * queue that does not exist is recorded with found false and unknown
 * figures; it is not an error.  Returns the error that stopped it (the
 * server down...), CQ_OK otherwise.
 */
enum cq_err cq_queue_figures(struct cq_ctx *ctx, size_t n,
			     const char *const *queues,
			     const char *const *dlqs, struct cq_metrics *ms);

/*
 * A queue as cqstat names it: "list:NAME", "stream:NAME[@GROUP]" (the last
 * '@' starts the group), "amqp:NAME" (an AMQP queue whose own name begins
 * with one of those words), or a bare AMQP NAME.  Strings are owned (free
 * with cq_queue_ref_clear).  False with the reason in err for a name the
 * backend refuses, or a backend not available.
 */
struct cq_queue_ref {
	const char *backend;	/* "amqp", "list" or "stream" (static) */
	char *error;		/* why its figures are unknown though its
				 * server answers (a key of another type),
				 * or NULL */
	char *name;		/* the queue */
	char *group;		/* stream: its consumer group, NULL the default */
	char *label;		/* what its figures are labelled: the bare name
				 * of an AMQP queue, else the whole spec */
};
bool cq_queue_ref_parse(const char *spec, struct cq_queue_ref *ref,
			char *err, size_t errlen);
void cq_queue_ref_clear(struct cq_queue_ref *ref);

/* ---- cqstat's sampler (stats_sample.c) --------------------------------- */

struct cq_stat_opts {
	bool cache;		/* sample Redis */
	const char *const *queues;	/* -Q QUEUE..., n of them (cq_queue_ref) */
	size_t nqueues;
	const char *api_url;	/* management API, or NULL */
	const char *match;	/* glob over queue names (needs api_url) */
	/* Read AMQP (connect) and the API (log in) even when no queue is
	 * looked at, so that their up state is known (--check 'up[amqp]<1').
	 * Otherwise a server with nothing to read is not used, not up. */
	bool amqp, api;
	/* The cluster's nodes from the API: running, alarms, partitions. */
	bool nodes;
};

struct cq_stat;

/* A sampler with its own connections (one per server, so that one server
 * being down does not stop the other).  NULL out of memory.  Settings and
 * options are copied; their strings stay borrowed. */
struct cq_stat *cq_stat_new(const struct cq_settings *set,
			    const struct cq_stat_opts *o);
void cq_stat_free(struct cq_stat *st);
/*
 * Take a sample into ms (cleared first): since start the first time, over
 * the time since the previous sample after that.  A server that cannot be
 * read is marked down in ms->src (and retried next time); this is not an
 * error; a server the sample had nothing to ask is not used (AMQP with
 * no queue, unless o->amqp).  The queues matched by --match are fixed by
 * the first sample that could list them.  Returns CQ_ERR_NOMEM or CQ_OK.
 */
enum cq_err cq_stat_sample(struct cq_stat *st, struct cq_metrics *ms);

#endif
