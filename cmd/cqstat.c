/* cqstat - cache hit rate and queue depth, once or every N seconds.
 *
 * A view over libcq's sampler (cq_stat_*): a vmstat-like table, JSON,
 * Prometheus text, or a monitoring-plugin status line with --check. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static const char usage[] =
	"usage: cqstat [OPTIONS] [INTERVAL [COUNT]]\n"
	"\n"
	"Show the cache hit rate, ops/s, memory, evictions and key counts of\n"
	"Redis, and the depth of RabbitMQ queues: once, or every INTERVAL\n"
	"(a duration: 1, 500ms, 1m) COUNT times (forever without COUNT).  The\n"
	"first line covers the time since the server started, each later line\n"
	"the last interval.\n"
	"\n"
	"  -Q, --queue QUEUE  show QUEUE: ready messages and consumers (from a\n"
	"                     passive declare, which counts only ready ones) and\n"
	"                     its dead-letter queue's depth; repeatable.  A Redis\n"
	"                     queue is list:NAME or stream:NAME[@GROUP] (also\n"
	"                     unacked; a stream its lag as ready, length and\n"
	"                     pending_idle_s); amqp:NAME is RabbitMQ's NAME\n"
	"  --api URL          RabbitMQ management API, http://user:pass@host:15672\n"
	"                     (CQ_API_URL): adds unacked messages and rates; the\n"
	"                     TLS files below also serve an https URL\n"
	"  --match GLOB       also every queue whose name matches GLOB (with --api)\n"
	"  --nodes            the cluster's nodes (with --api): running, memory\n"
	"                     and disk alarms, partitions; quorum queues also\n"
	"                     show their leader and members (--json) with --api\n"
	"  --masters          a Redis Cluster's masters too, each on its own:\n"
	"                     hit rate, ops/s, memory, evictions, keys (the\n"
	"                     redis columns are the whole cluster's)\n"
	"  --no-cache         leave Redis out\n"
	"  --track            show the per-prefix hit rates counted by\n"
	"                     cachectl --track (CQ_TRACK=1) for --prefix\n"
	"  --prom             Prometheus text format (of the last sample)\n"
	"  --check EXPR       test a figure: METRIC[LABEL]OP NUMBER[:warn|:crit],\n"
	"                     e.g. 'hit_rate<0.8:warn' 'dlq>0:crit'; repeatable;\n"
	"                     prints one status line, exits 0 OK, 1 WARNING,\n"
	"                     2 CRITICAL, 3 UNKNOWN\n"
	"  --metrics          list the metric names and exit\n"
	"\n"
	"--json gives one object per sample; -q (--quiet) leaves out the notices\n"
	"on stderr (a server down, a missing queue).\n";

enum {
	OPT_API = OPT_VERB, OPT_MATCH, OPT_NODES, OPT_NO_CACHE, OPT_TRACK, OPT_PROM,
	OPT_CHECK, OPT_METRICS, OPT_VERSION, OPT_LIST_COMMANDS, OPT_MASTERS,
};

/* ':' first: getopt stays quiet and tells a missing argument apart, so
 * that every message is ours (and on the status line under --check). */
#define SHORT_OPTS ":Q:" CLI_COMMON_SHORT

static const struct option lopts[] = {
	{ "queue", required_argument, NULL, 'Q' },
	{ "api", required_argument, NULL, OPT_API },
	{ "match", required_argument, NULL, OPT_MATCH },
	{ "nodes", no_argument, NULL, OPT_NODES },
	{ "masters", no_argument, NULL, OPT_MASTERS },
	{ "no-cache", no_argument, NULL, OPT_NO_CACHE },
	{ "track", no_argument, NULL, OPT_TRACK },
	{ "prom", no_argument, NULL, OPT_PROM },
	{ "check", required_argument, NULL, OPT_CHECK },
	{ "metrics", no_argument, NULL, OPT_METRICS },
	{ "version", no_argument, NULL, OPT_VERSION },
	/* hidden: the options, for completions and their tests */
	{ "list-commands", no_argument, NULL, OPT_LIST_COMMANDS },
	CLI_COMMON_OPTIONS
};

enum mode { MODE_TABLE, MODE_JSON, MODE_PROM, MODE_CHECK };

struct opts {
	struct cq_stat_opts so;
	const char **queues;
	struct cq_check *checks;
	size_t nchecks;
	enum mode mode;
	bool masters;		/* --masters: a group per Redis Cluster master */
	long long interval_ms;
	unsigned long long count;	/* 0 = forever */
	bool have_interval;
};

/*
 * Is --check among the options, however abbreviated and wherever given?
 * Then this run is a monitoring plugin: every failure, even one found
 * before --check, is also its status line "CQ UNKNOWN - why" on stdout
 * and exits 3 (UNKNOWN): a plugin that prints nothing shows as "no
 * output" in Nagios.
 */
static void wants_check(struct cli *cli, int argc, char **argv)
{
	int c;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, SHORT_OPTS, lopts, NULL)) != -1)
		if (c == OPT_CHECK || (c == ':' && optopt == OPT_CHECK))
			cli->plugin = true;
	optind = 0;	/* glibc: start again */
}

/* What getopt refused, said the way cq says it. */
static int bad_option(struct cli *cli, int c, char **argv)
{
	const char *arg = argv[optind - 1];
	int n = (int)strcspn(arg, "="), similar = 0;

	if (c == ':')
		return cli_usage_error(cli, "%.*s needs an argument", n, arg);
	if (strncmp(arg, "--", 2) != 0)
		return cli_usage_error(cli, "unknown option '-%c'", optopt);
	if (optopt)
		return cli_usage_error(cli, "%.*s takes no argument", n, arg);
	for (const struct option *l = lopts; l->name; l++)
		similar += strncmp(l->name, arg + 2, (size_t)n - 2) == 0;
	return cli_usage_error(cli, "%s option '%.*s'",
			       similar > 1 ? "ambiguous" : "unknown", n, arg);
}

static int print_done(struct cli *cli, const char *text)
{
	cli_write(cli, text, strlen(text));
	return CLI_DONE;
}

static int list_metrics(struct cli *cli)
{
	size_t n;
	const struct cq_metric_def *d = cq_metric_defs(&n);

	for (size_t i = 0; i < n; i++)
		cli_printf(cli, "%-20s %-8s %s\n", d[i].name,
			   d[i].label ? d[i].label : "", d[i].help);
	return CLI_DONE;
}

/* --list-commands: cqstat has no verbs, so its long options (not this
 * one), for completions and the test that keeps them in step. */
static int list_options(struct cli *cli)
{
	for (const struct option *l = lopts; l->name; l++)
		if (l->val != OPT_LIST_COMMANDS)
			cli_printf(cli, "--%s\n", l->name);
	return CLI_DONE;
}

static int add_check(struct cli *cli, struct opts *o, const char *expr)
{
	struct cq_check *c = realloc(o->checks, (o->nchecks + 1) * sizeof(*c));
	char err[200];

	if (!c)
		return cli_fatal(cli, EX_SOFTWARE, "out of memory");
	o->checks = c;
	if (!cq_check_parse(expr, &c[o->nchecks], err, sizeof(err))) {
		/* the plugin convention: a bad expression is UNKNOWN */
		printf("CQ UNKNOWN - bad --check '%s': %s\n", expr, err);
		cli_err(cli, "--check '%s': %s", expr, err);
		return CQ_STATE_UNKNOWN;
	}
	/* a figure of the cluster: its nodes are asked for, as with --nodes */
	if (cq_metric_cluster(cq_metric_def(c[o->nchecks].metric)))
		o->so.nodes = true;
	o->nchecks++;
	return 0;
}

static int add_queue(struct cli *cli, struct opts *o, const char *q)
{
	struct cq_queue_ref ref;
	const char **v;
	char err[400];

	if (!cq_queue_ref_parse(q, &ref, err, sizeof(err)))
		return cli_usage_error(cli, "--queue: %s", err);
	cq_queue_ref_clear(&ref);
	v = realloc(o->queues, (o->so.nqueues + 1) * sizeof(*v));
	if (!v)
		return cli_fatal(cli, EX_SOFTWARE, "out of memory");
	v[o->so.nqueues++] = q;
	o->queues = v;
	o->so.queues = v;
	return 0;
}

/* --json, --prom and --check exclude each other (--check twice is fine). */
static int set_mode(struct cli *cli, struct opts *o, enum mode m)
{
	static const char *const names[] = { "", "--json", "--prom", "--check" };

	if (o->mode != MODE_TABLE && o->mode != m)
		return cli_usage_error(cli, "%s and %s exclude each other",
				       names[o->mode], names[m]);
	o->mode = m;
	return 0;
}

/* Before -q meant --quiet, "cqstat -q jobs" named a queue: say so when
 * such a word is taken for INTERVAL or COUNT. */
static const char *old_q_hint(const struct cli *cli)
{
	return cli->quiet ? "; -q is --quiet now, as in cachectl and qctl: a queue is -Q QUEUE or --queue QUEUE" : "";
}

/* INTERVAL and COUNT. */
static int positional(struct cli *cli, struct opts *o, int argc, char **argv)
{
	if (argc > 2)
		return cli_usage_error(cli, "too many arguments ('%s')%s", argv[2],
				       old_q_hint(cli));
	if (argc >= 1) {
		if (!cq_parse_duration(argv[0], &o->interval_ms) || o->interval_ms <= 0)
			return cli_usage_error(cli, "bad INTERVAL '%s' (want e.g. 1, 500ms, 1m)%s",
					       argv[0], old_q_hint(cli));
		o->have_interval = true;
	}
	if (argc == 2) {
		if (!cq_parse_uint(argv[1], 1, 1000000000ULL, &o->count))
			return cli_usage_error(cli, "bad COUNT '%s' (want 1-1000000000)%s",
					       argv[1], old_q_hint(cli));
		if (o->mode == MODE_CHECK || o->mode == MODE_PROM)
			return cli_usage_error(cli, "%s measures over one INTERVAL: no COUNT",
					       o->mode == MODE_CHECK ? "--check" : "--prom");
	}
	/* --check and --prom print one result: over INTERVAL when given */
	if (o->mode == MODE_CHECK || o->mode == MODE_PROM)
		o->count = o->have_interval ? 2 : 1;
	else if (!o->have_interval)
		o->count = 1;
	return 0;
}

static int parse_opt(struct cli *cli, struct opts *o, int c, char **argv)
{
	switch (c) {
	case 'Q':
		return add_queue(cli, o, optarg);
	case OPT_API:
		o->so.api_url = optarg;
		return 0;
	case OPT_MATCH:
		o->so.match = optarg;
		return 0;
	case OPT_NODES:
		o->so.nodes = true;
		return 0;
	case OPT_MASTERS:
		o->masters = true;
		return 0;
	case OPT_NO_CACHE:
		o->so.cache = false;
		return 0;
	case OPT_TRACK:
		cli->set.track = true;
		return 0;
	case OPT_PROM:
		return set_mode(cli, o, MODE_PROM);
	case OPT_JSON:
		return set_mode(cli, o, MODE_JSON);
	case OPT_CHECK:
		if (set_mode(cli, o, MODE_CHECK))
			return EX_USAGE;
		return add_check(cli, o, optarg);
	case OPT_METRICS:
		return list_metrics(cli);
	case OPT_LIST_COMMANDS:
		return list_options(cli);
	case OPT_VERSION:
		return print_done(cli, "cqstat " CQ_VERSION "\n");
	case '?':
	case ':':
		return bad_option(cli, c, argv);
	}
	return cli_common_opt(cli, c, optarg);
}

static int parse(struct cli *cli, struct opts *o, int argc, char **argv)
{
	int c, ret;

	o->so.cache = true;
	o->so.api_url = cli->set.api_url;
	opterr = 0;
	while ((c = getopt_long(argc, argv, SHORT_OPTS, lopts, NULL)) != -1)
		if ((ret = parse_opt(cli, o, c, argv)))
			return ret;
	if (o->so.match && !o->so.api_url)
		return cli_usage_error(cli, "--match needs --api URL (or CQ_API_URL)");
	if (o->so.nodes && !o->so.api_url)
		return cli_usage_error(cli, "--nodes needs --api URL (or CQ_API_URL)");
	if (!o->so.cache && !o->so.nqueues && !o->so.match && !o->so.nodes)
		return cli_usage_error(cli, "--no-cache leaves nothing to show: add -Q QUEUE or --match GLOB");
	return positional(cli, o, argc - optind, argv + optind);
}

/* ---- the table ------------------------------------------------------------ */

struct col {
	const char *head;
	const char *metric;
	int width;
};

static const struct col cache_cols[] = {
	{ "hitrate", "hit_rate", 7 }, { "ops/s", "ops", 7 },
	{ "used", "used_memory", 6 }, { "max", "maxmemory", 6 },
	{ "evict/s", "evicted", 7 }, { "exp/s", "expired", 7 },
	{ "keys", "keys", 7 }, { "nottl", "keys_no_ttl", 7 },
};
static const struct col track_col = { "pfxhit", "prefix_hit_rate", 6 };
/* the only column when --match found no queue (yet): 0, or down */
static const struct col match_col = { "match", NULL, 7 };
static const struct col queue_cols[] = {
	{ "ready", "ready", 7 }, { "unack", "unacked", 6 },
	{ "cons", "consumers", 5 }, { "in/s", "publish_rate", 6 },
	{ "out/s", "deliver_rate", 6 }, { "dlq", "dlq", 6 },
};

/* --nodes: the cluster as a whole (each node in --json, --prom) */
static const struct col cluster_cols[] = {
	{ "nodes", "nodes_running", 5 }, { "down", "nodes_down", 4 },
	{ "alarms", "alarms", 6 }, { "parts", "partitions", 5 },
};

/* --masters: each master of a Redis Cluster */
static const struct col master_cols[] = {
	{ "hitrate", "master_hit_rate", 7 }, { "ops/s", "master_ops", 7 },
	{ "used", "master_used_memory", 6 }, { "evict/s", "master_evicted", 7 },
	{ "keys", "master_keys", 7 }, { "nottl", "master_keys_no_ttl", 7 },
};
#define NMASTER (sizeof(master_cols) / sizeof(master_cols[0]))
#define MAX_SHOWN 64

/* With --masters, the masters the sample has figures of (host:port, in
 * their order; borrowed from ms), at most MAX_SHOWN. */
static size_t masters_of(const struct opts *o, const struct cq_metrics *ms,
			 const char **out)
{
	size_t n = 0;

	for (size_t i = 0; o->masters && o->so.cache && i < ms->n; i++)
		if (strcmp(ms->m[i].def->name, "master_keys") == 0 &&
		    n < MAX_SHOWN)
			out[n++] = ms->m[i].label;
	return n;
}

#define NCACHE (sizeof(cache_cols) / sizeof(cache_cols[0]))
#define NCLUSTER (sizeof(cluster_cols) / sizeof(cluster_cols[0]))
#define NQUEUE (sizeof(queue_cols) / sizeof(queue_cols[0]))

static void put(struct cq_buf *b, const char *s, int width)
{
	char cell[64];
	int n = snprintf(cell, sizeof(cell), " %*s", width, s);

	cq_buf_append(b, cell, n > 0 ? (size_t)n : 0);
}

/*
 * title as the table shows it, in at most max characters (written to out,
 * which holds 1024 + 4 bytes): a control character or a byte that is not
 * UTF-8 as '?', and a longer title cut in the middle, keeping its end, so
 * that a queue and its .dlq still differ.  Returns the characters shown.
 */
static int fit_title(const char *title, int max, char *out)
{
	enum { MAXCH = 256 };
	char clean[MAXCH * 4];
	size_t off[MAXCH + 1], len = 0, n = strlen(title);
	int nch = 0, head, tail;

	for (size_t i = 0, l; i < n && nch < MAXCH; i += l ? l : 1) {
		const unsigned char *u = (const unsigned char *)title + i;

		l = cq_utf8_seq(u, n - i);
		off[nch++] = len;
		if (l && !(l == 1 && iscntrl(*u)) &&
		    !(l == 2 && u[0] == 0xc2 && u[1] < 0xa0)) {	/* C1 controls */
			memcpy(clean + len, u, l);
			len += l;
		} else {
			clean[len++] = '?';
		}
	}
	off[nch] = len;
	if (nch <= max || max < 4) {
		if (nch > max)	/* too narrow for "...": cut */
			nch = max;
		memcpy(out, clean, off[nch]);
		out[off[nch]] = '\0';
		return nch;
	}
	head = (max - 3) / 2;
	tail = max - 3 - head;
	memcpy(out, clean, off[head]);
	memcpy(out + off[head], "...", 3);
	memcpy(out + off[head] + 3, clean + off[nch - tail], len - off[nch - tail]);
	out[off[head] + 3 + len - off[nch - tail]] = '\0';
	return max;
}

static void dashes(struct cq_buf *b, int n)
{
	for (int i = 0; i < n; i++)
		cq_buf_append(b, "-", 1);
}

/* " --- title ---" over width columns, its separating space included,
 * with at least one dash each side. */
static void group(struct cq_buf *b, const char *title, int width)
{
	char t[1024 + 4];
	int tl = fit_title(title, width - 5, t), d = width - 3 - tl;

	cq_buf_append(b, " ", 1);
	dashes(b, d / 2);
	cq_buf_append(b, " ", 1);
	cq_buf_append(b, t, strlen(t));
	cq_buf_append(b, " ", 1);
	dashes(b, d - d / 2);
}

static int cols_width(const struct col *c, size_t n)
{
	int w = 0;

	for (size_t i = 0; i < n; i++)
		w += c[i].width + 1;
	return w;
}

/* No column at all: no cache, and --match has found no queue. */
static bool no_columns(const struct opts *o, const struct cq_metrics *ms)
{
	return !o->so.cache && !ms->nqueues && !o->so.nodes;
}

static void header(const struct opts *o, const struct cli *cli,
		   const struct cq_metrics *ms, struct cq_buf *b)
{
	bool track = cli->set.track;
	int cw = cols_width(cache_cols, NCACHE) + (track ? track_col.width + 1 : 0);
	const char *master[MAX_SHOWN];
	size_t nm = masters_of(o, ms, master);

	if (o->so.cache)
		group(b, "redis", cw);
	for (size_t m = 0; m < nm; m++)
		group(b, master[m], cols_width(master_cols, NMASTER));
	for (size_t i = 0; i < ms->nqueues; i++)
		group(b, ms->queues[i].name, cols_width(queue_cols, NQUEUE));
	if (o->so.nodes)
		group(b, "cluster", cols_width(cluster_cols, NCLUSTER));
	if (no_columns(o, ms))
		group(b, "api", match_col.width + 1);
	cq_buf_append(b, "\n", 1);
	for (size_t i = 0; o->so.cache && i < NCACHE; i++)
		put(b, cache_cols[i].head, cache_cols[i].width);
	if (o->so.cache && track)
		put(b, track_col.head, track_col.width);
	for (size_t m = 0; m < nm; m++)
		for (size_t i = 0; i < NMASTER; i++)
			put(b, master_cols[i].head, master_cols[i].width);
	for (size_t q = 0; q < ms->nqueues; q++)
		for (size_t i = 0; i < NQUEUE; i++)
			put(b, queue_cols[i].head, queue_cols[i].width);
	for (size_t i = 0; o->so.nodes && i < NCLUSTER; i++)
		put(b, cluster_cols[i].head, cluster_cols[i].width);
	if (no_columns(o, ms))
		put(b, match_col.head, match_col.width);
	cq_buf_append(b, "\n", 1);
}

static void cells(struct cq_buf *b, const struct cq_metrics *ms,
		  const struct col *c, size_t n, const char *label, bool down,
		  const char *first)
{
	for (size_t i = 0; i < n; i++) {
		const struct cq_metric_def *d = cq_metric_def(c[i].metric);
		char v[32];

		if (first && i == 0)
			snprintf(v, sizeof(v), "%s", first);
		else if (down)
			snprintf(v, sizeof(v), "-");
		else
			cq_metric_human(cq_metrics_get(ms, c[i].metric, label), d->fmt,
					v, sizeof(v));
		put(b, v, c[i].width);
	}
}

static void row(const struct opts *o, const struct cli *cli,
		const struct cq_metrics *ms, struct cq_buf *b)
{
	const struct cq_source *r = &ms->src[CQ_SRC_REDIS];
	bool qdown = ms->src[CQ_SRC_AMQP].used && !ms->src[CQ_SRC_AMQP].up &&
		     !(ms->src[CQ_SRC_API].used && ms->src[CQ_SRC_API].up);

	if (o->so.cache) {
		cells(b, ms, cache_cols, NCACHE, NULL, !r->up, r->up ? NULL : "down");
		if (cli->set.track)
			cells(b, ms, &track_col, 1,
			      cli->set.prefix ? cli->set.prefix : "", !r->up, NULL);
	}
	{
		const char *master[MAX_SHOWN];
		size_t nm = masters_of(o, ms, master);

		for (size_t m = 0; m < nm; m++)
			cells(b, ms, master_cols, NMASTER, master[m], false, NULL);
	}
	for (size_t i = 0; i < ms->nqueues; i++) {
		const struct cq_queue_stat *q = &ms->queues[i];
		/* a list or stream queue is down with its Redis */
		bool down = q->src == CQ_SRC_REDIS ? !r->up : qdown;

		cells(b, ms, queue_cols, NQUEUE, q->name, down || !q->found,
		      down ? "down" : q->found ? NULL : "none");
	}
	if (o->so.nodes) {
		bool down = !ms->src[CQ_SRC_API].up;

		cells(b, ms, cluster_cols, NCLUSTER, NULL, down, down ? "down" : NULL);
	}
	if (no_columns(o, ms))
		put(b, ms->src[CQ_SRC_API].up ? "0" : "down", match_col.width);
	cq_buf_append(b, "\n", 1);
}

/* ---- the run ---------------------------------------------------------------- */

/* Write and flush at once: each line is read as it comes (watch, pipes). */
static bool emit(struct cli *cli, const struct cq_buf *b)
{
	if (!cli_write(cli, b->data, b->len))
		return false;
	if (fflush(stdout) != 0) {
		cli->out_failed = true;
		cli->out_errno = errno;
	}
	return !cli->out_failed;
}

/* Say on stderr when a server goes down, once until it is back. */
static void report_down(struct cli *cli, const struct cq_metrics *ms,
			bool *was_down, bool *queue_said)
{
	bool known = ms->nqueues > 0;

	for (int s = 0; s < CQ_NSRC; s++) {
		const struct cq_source *src = &ms->src[s];

		if (src->used && !src->up && !was_down[s])
			cli_err(cli, "%s down: %s", src->name, src->errstr);
		if (src->used)
			was_down[s] = !src->up;
	}
	for (size_t i = 0; i < ms->nqueues && !*queue_said; i++) {
		if (ms->queues[i].error)
			cli_err(cli, "%s: %s", ms->queues[i].name,
				ms->queues[i].error);
		else if (!ms->queues[i].found && cq_queue_known(ms, &ms->queues[i]))
			cli_err(cli, "no queue '%s'", ms->queues[i].name);
		known &= cq_queue_known(ms, &ms->queues[i]);
	}
	if (known)
		*queue_said = true;
}

/* Sleep until due_ms, or a stop request (SIGINT, SIGTERM): in slices,
 * so that a signal landing just before nanosleep() is seen. */
static void sleep_until(long long due_ms)
{
	long long left;

	while (!cq_stop_requested() && (left = due_ms - cq_now_ms()) > 0) {
		struct timespec ts;

		if (left > 100)
			left = 100;
		ts.tv_sec = 0;
		ts.tv_nsec = left * 1000000;
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR &&
		       !cq_stop_requested())
			;
	}
}

/* Which servers the checks need: a queue metric needs AMQP, up[amqp] and
 * up[api] their server (even with no queue), the rest Redis. */
static void checks_need(struct opts *o)
{
	bool cache = false;

	for (size_t i = 0; i < o->nchecks; i++) {
		const struct cq_check *c = &o->checks[i];
		const struct cq_metric_def *d = cq_metric_def(c->metric);

		if (strcmp(c->metric, "up") == 0 && c->has_label) {
			cache |= strcmp(c->label, "redis") == 0;
			o->so.amqp |= strcmp(c->label, "amqp") == 0;
			o->so.api |= strcmp(c->label, "api") == 0;
		} else if (d && cq_metric_cluster(d)) {
			continue;	/* add_check set o->so.nodes */
		} else if (d && (!d->label || strcmp(d->label, "queue") != 0)) {
			cache = true;
		}
	}
	if (!cache && (o->so.nqueues || o->so.match || o->so.amqp || o->so.api ||
		       o->so.nodes))
		o->so.cache = false;
}

struct tally {
	bool any_up;		/* some server was read at some point */
	enum cq_err first_err;
	bool missing;		/* a -q queue does not exist */
};

static void count(struct tally *t, const struct cq_metrics *ms)
{
	t->missing = false;
	for (int s = 0; s < CQ_NSRC; s++) {
		if (!ms->src[s].used)
			continue;
		if (ms->src[s].up)
			t->any_up = true;
		else if (!t->first_err)
			t->first_err = ms->src[s].err;
	}
	for (size_t i = 0; i < ms->nqueues; i++)
		if (ms->queues[i].error ||
		    (!ms->queues[i].found && cq_queue_known(ms, &ms->queues[i])))
			t->missing = true;
}

static int run(struct cli *cli, struct opts *o)
{
	struct cq_metrics ms;
	struct cq_stat *st;
	struct cq_buf out = { 0 };
	struct tally t = { 0 };
	bool was_down[CQ_NSRC] = { false }, queue_said = false, ok = true;
	bool stopped = false;
	long long start = cq_now_ms();
	size_t shown = 0;	/* queues under the last header */
	size_t shown_masters = 0;	/* --masters: masters under it */
	unsigned long long i;
	int ret = 0;

	o->so.api_url = o->so.api_url && *o->so.api_url ? o->so.api_url : NULL;
	if (o->mode == MODE_CHECK)
		checks_need(o);
	cq_metrics_init(&ms);
	/* with an interval, a signal ends the run between two samples */
	if (o->count != 1 && cq_stop_catch(cli->ctx))
		return cli_fail(cli);
	st = cq_stat_new(&cli->set, &o->so);
	if (!st)
		return cli_fatal(cli, EX_SOFTWARE, "out of memory");
	for (i = 0; ok && (o->count == 0 || i < o->count); i++) {
		bool last = o->count && i + 1 == o->count;

		if (i > 0)
			sleep_until(start + (long long)i * o->interval_ms);
		if ((stopped = cq_stop_requested()))
			break;
		if (cq_stat_sample(st, &ms)) {
			ret = cli_fatal(cli, EX_SOFTWARE, "out of memory");
			break;
		}
		count(&t, &ms);
		cq_buf_reset(&out);
		if (o->mode != MODE_CHECK && o->mode != MODE_PROM && !cli->quiet)
			report_down(cli, &ms, was_down, &queue_said);
		if (o->mode == MODE_JSON) {
			char *j = cq_metrics_json(&ms);

			ok = j && cq_buf_append(&out, j, strlen(j)) &&
			     cq_buf_append(&out, "\n", 1);
			free(j);
		} else if (o->mode == MODE_TABLE) {
			/* again when --match has found its queues */
			const char *master[MAX_SHOWN];
			size_t nm = masters_of(o, &ms, master);

			if (i == 0 || ms.nqueues != shown || nm != shown_masters)
				header(o, cli, &ms, &out);
			shown = ms.nqueues;
			shown_masters = nm;
			row(o, cli, &ms, &out);
		} else if (last && o->mode == MODE_PROM) {
			ok = cq_metrics_prom(&ms, &out);
		} else if (last) {
			enum cq_check_state state;

			ok = cq_checks_eval(o->checks, o->nchecks, &ms, &state, &out) &&
			     cq_buf_append(&out, "\n", 1);
			ret = (int)state;
		}
		ok = ok && emit(cli, &out);
	}
	/* --prom stopped before its last sample: the figures of the last one
	 * taken, so that what it writes is still a whole exposition */
	if (stopped && i > 0 && o->mode == MODE_PROM) {
		cq_buf_reset(&out);
		ok = cq_metrics_prom(&ms, &out) && emit(cli, &out);
	}
	cq_metrics_clear(&ms);
	cq_stat_free(st);
	cq_buf_free(&out);
	if (!ok && !cli->out_failed)	/* not the output: memory */
		ret = cli_fatal(cli, EX_SOFTWARE, "out of memory");
	else if (stopped && o->count)	/* before the last sample */
		ret = cli_fatal(cli, EX_TEMPFAIL,
				"stopped by %s after %llu of %llu samples",
				cq_stop_name(), i, o->count);
	if (o->mode == MODE_CHECK)
		return ret;	/* a state, or an error: cli ends either */
	if (ret)
		return ret;
	if (!t.any_up)
		return cq_exit_code(t.first_err ? t.first_err : CQ_ERR_UNAVAILABLE);
	return t.missing ? 1 : 0;
}

static int cmd_cqstat(struct cli *cli, int argc, char **argv)
{
	struct opts o = { 0 };
	int ret = parse(cli, &o, argc, argv);

	if (!ret)
		ret = run(cli, &o);
	free(o.queues);
	free(o.checks);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct cli_verb cqstat = {
		.fn = cmd_cqstat, .usage = usage,
		.summary = "cache hit rate and queue depth",
	};
	static const struct cli_prog prog = {
		.name = "cqstat", .main = &cqstat, .prescan = wants_check,
		.connect_redis = cq_redis_connect, .connect_amqp = cq_amqp_connect,
	};

	return cli_main(&prog, argc, argv);
}
