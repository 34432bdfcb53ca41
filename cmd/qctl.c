/* qctl - the queue toolkit: option parsing and output over libcq. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_WINDOW 10000
/* RabbitMQ's default max_message_size (3.8 and later) */
#define DEFAULT_MAX_SIZE (128ULL << 20)

/* Options every qctl verb takes besides the common ones. */
enum { OPT_BACKEND = OPT_VERB - 1, OPT_GROUP = OPT_VERB - 2 };
#define QCTL_OPTIONS \
	{ "backend", required_argument, NULL, OPT_BACKEND }, \
	{ "group", required_argument, NULL, OPT_GROUP }, \
	CLI_COMMON_OPTIONS

static const char qctl_common_help[] =
	"  --backend KIND     where the queues are: amqp (RabbitMQ, the default),\n"
	"                     list (Redis lists) or stream (Redis Streams)\n"
	"                     (CQ_QUEUE_BACKEND)\n"
	"  --group NAME       stream: the consumer group (default qctl)\n";

/* cli_common_opt, and --backend (checked by cli_ready). */
static int qctl_opt(struct cli *cli, int c, const char *arg)
{
	if (c == OPT_GROUP) {
		cli->set.queue_group = arg;
		return 0;
	}
	if (c != OPT_BACKEND)
		return cli_common_opt(cli, c, arg);
	cli->set.queue_backend = arg;
	cli->backend_opt = true;
	return 0;
}

static double seconds_since(long long start)
{
	return (double)(cq_now_ms() - start) / 1000.0;
}

/* A reconnect to another node of the URL list: on stderr, and with
 * --json as an event object on stdout. */
static void report_reconnect(struct cli *cli, const struct cq_reconnect *r,
			     const char *what)
{
	cli_progress_clear(cli);
	cli_err(cli, "connection to RabbitMQ at %s lost (%s): reconnected to %s in %.2fs (reconnect %u); %s",
		r->from, r->why, r->to, (double)r->ms / 1000.0, r->n, what);
	if (cli->json)
		cli_put_json(cli, cq_json_pack("{s:s,s:s,s:s,s:s,s:f,s:I,s:I}",
					       "event", "reconnected",
					       "from", r->from, "to", r->to,
					       "reason", r->why,
					       "seconds", (double)r->ms / 1000.0,
					       "unsettled", (long long)r->unsettled,
					       "reconnect", (long long)r->n));
}

/* The one QUEUE operand a verb takes (what: "QUEUE", or "DLQ" for
 * replay-dlq), checked as a queue name; NULL after a usage error. */
static const char *one_queue(struct cli *cli, int argc, char **argv,
			     const char *what)
{
	if (argc - optind != 1) {
		cli_usage_error(cli, argc - optind < 1 ? "missing %s" :
				"one %s at a time", what);
		return NULL;
	}
	if (!cli_name(cli, "queue", argv[optind]))
		return NULL;
	return argv[optind];
}

/* "key=value" for -H. */
static bool parse_header(struct cli *cli, char *arg, struct cq_header *h)
{
	char *eq = strchr(arg, '=');

	if (!eq || eq == arg) {
		cli_usage_error(cli, "-H: want key=value, got '%s'", arg);
		return false;
	}
	*eq = '\0';
	if (strlen(arg) > 255) {
		cli_usage_error(cli, "-H: header name longer than 255 bytes");
		return false;
	}
	memset(h, 0, sizeof(*h));
	h->key = arg;
	h->value = eq + 1;
	h->vlen = strlen(eq + 1);
	if (h->vlen == 0)
		h->value = "";
	return true;
}

/* ---- enqueue ---------------------------------------------------------- */

static const char enqueue_usage[] =
	"usage: qctl enqueue [OPTIONS] QUEUE [MSG...]\n"
	"\n"
	"Publish each MSG, or each line of standard input, to QUEUE: persistent,\n"
	"mandatory and publisher-confirmed.  Exit 0 only when every message is\n"
	"confirmed; otherwise exit 75 and name each input line not confirmed.\n"
	"Blank lines are skipped; malformed lines (a CRLF line too) are\n"
	"reported and skipped, exit 65 (the worst wins: 77, then 75, then 65).\n"
	"While a memory or disk alarm on the broker blocks publishing, qctl\n"
	"says so (stderr, and --json), waits for it to clear at most --timeout,\n"
	"then gives up on what is outstanding (75).\n"
	"\n"
	"  -0, --null         standard input is NUL-separated, not lines\n"
	"  --jsonl            standard input holds JSON records: body (or\n"
	"                     body_base64), headers, message_id, priority,\n"
	"                     content_type, expiration, routing_key, persistent\n"
	"  --exchange EX      publish to exchange EX (routing key: QUEUE)\n"
	"  --routing-key RK   the routing key (with --exchange)\n"
	"  -H, --header K=V   add a header (repeatable)\n"
	"  --priority N       message priority 0-255\n"
	"  --message-id ID    message id (default: a fresh unique id each)\n"
	"  --no-message-id    no message id (consumers cannot deduplicate)\n"
	"  --content-type T   content type, e.g. application/json\n"
	"  --expiration DUR   per-message TTL\n"
	"  --transient        not persistent\n"
	"  --window N         messages awaiting confirms at once (default 10000)\n"
	"  --max-size SIZE    refuse larger messages (default 128M)\n"
	"  --heartbeat DUR    AMQP heartbeat interval (default 30s, 0 = off):\n"
	"                     kept up while standard input is slow\n"
	"  --maxlen N         stream backend: trim the stream to N entries as\n"
	"                     each is added (XADD MAXLEN); a warning says how\n"
	"                     many a consumer group had not read yet\n"
	"  --json             list unconfirmed lines (and events: blocked,\n"
	"                     reconnected) as JSON on stdout\n"
	"\n"
	"With a list of AMQP URLs (a cluster), a lost connection is made again to\n"
	"the next node, for at most --timeout: the lines not confirmed are named,\n"
	"the rest of the input goes on (exit 75).\n"
	"\n"
	"SIGTERM or SIGINT: stop reading, wait for the confirms of what was sent\n"
	"(a second signal: stop waiting, those lines count as not confirmed),\n"
	"name the lines not sent, exit 75.\n";

enum {
	OPT_ENQ_JSONL = OPT_VERB, OPT_ENQ_EXCHANGE, OPT_ENQ_ROUTING_KEY,
	OPT_ENQ_PRIORITY, OPT_ENQ_MESSAGE_ID, OPT_ENQ_CONTENT_TYPE,
	OPT_ENQ_EXPIRATION, OPT_ENQ_TRANSIENT, OPT_ENQ_WINDOW,
	OPT_ENQ_MAX_SIZE, OPT_ENQ_HEARTBEAT, OPT_ENQ_NO_MESSAGE_ID,
	OPT_ENQ_MAXLEN,
};

/* --heartbeat DUR: whole seconds, as AMQP has them.  False after a usage
 * error. */
static bool heartbeat_opt(struct cli *cli, const char *arg)
{
	long long ms;

	if (!cli_duration(cli, "--heartbeat", arg, &ms))
		return false;
	if (ms > 65535000) {
		cli_usage_error(cli, "--heartbeat: at most 65535s");
		return false;
	}
	cli->set.heartbeat_s = (int)((ms + 999) / 1000);
	return true;
}

/* Unconfirmed inputs are reported as ranges of consecutive numbers with
 * the same reason, so a lost connection is one line, not thousands. */
struct enqueue {
	struct cli *cli;
	const char *unit;	/* "line" or "argument" */
	uint64_t first, last;
	const char *reason;
	char expiration[24];
	long long blocked_at;	/* publishing blocked since (ms), 0 not */
};

static void report_range(struct enqueue *e)
{
	if (!e->reason)
		return;
	if (e->first == e->last)
		cli_err(e->cli, "%s %llu: not confirmed: %s", e->unit,
			(unsigned long long)e->first, e->reason);
	else
		cli_err(e->cli, "%ss %llu-%llu: not confirmed: %s", e->unit,
			(unsigned long long)e->first,
			(unsigned long long)e->last, e->reason);
	e->reason = NULL;
}

static void on_settle(void *arg, uint64_t tag, bool ok, const char *reason)
{
	struct enqueue *e = arg;

	if (ok)
		return;
	if (e->cli->json)
		cli_put_json(e->cli, cq_json_pack("{s:I,s:s}", e->unit,
					       (long long)tag, "error", reason));
	if (e->reason && e->reason == reason && tag == e->last + 1) {
		e->last = tag;
		return;
	}
	report_range(e);
	e->first = e->last = tag;
	e->reason = reason;
}

/* A resource alarm on the broker blocks publishing: say so, and when it
 * goes on (--timeout bounds the wait). */
static void on_blocked(void *arg, bool blocked, const char *reason)
{
	struct enqueue *e = arg;
	long long now = cq_now_ms();

	if (blocked) {
		e->blocked_at = now;
		cli_err(e->cli, "publishing blocked by RabbitMQ: %s (waiting up to %llds for it to clear)",
			reason, (e->cli->set.timeout_ms + 999) / 1000);
		if (e->cli->json)
			cli_put_json(e->cli, cq_json_pack("{s:s,s:s}", "event",
						       "blocked", "reason", reason));
		return;
	}
	cli_err(e->cli, "publishing resumed after %.1fs",
		(double)(now - e->blocked_at) / 1000.0);
	if (e->cli->json)
		cli_put_json(e->cli, cq_json_pack("{s:s,s:f}", "event", "unblocked",
					       "blocked_s",
					       (double)(now - e->blocked_at) / 1000.0));
	e->blocked_at = 0;
}

/* A record or message skipped: "line 3: <why>". */
static void on_bad(void *arg, uint64_t no, const char *msg)
{
	struct enqueue *e = arg;

	cli_err(e->cli, "%s %llu: %s", e->unit, (unsigned long long)no, msg);
}

/* The lines not confirmed at the loss were named just before. */
static void on_reconnect(void *arg, const struct cq_reconnect *r)
{
	struct enqueue *e = arg;
	char what[128];

	report_range(e);
	snprintf(what, sizeof(what), "%llu %s%s not confirmed (named above): the rest goes on",
		 r->unsettled, e->unit, cli_s(r->unsettled));
	report_reconnect(e->cli, r, what);
}

static void on_enqueue_notice(void *arg, const char *msg)
{
	struct enqueue *e = arg;

	cli_err(e->cli, "warning: %s", msg);
}

static void on_progress(void *arg, const struct cq_enqueue_stats *st)
{
	struct enqueue *e = arg;

	cli_progress(e->cli, "%llu sent, %llu confirmed",
		     (unsigned long long)st->sent,
		     (unsigned long long)st->confirmed);
}

static int enqueue_finish(struct enqueue *e, const struct cq_enqueue_stats *st,
			  bool died, long long start)
{
	struct cli *cli = e->cli;
	uint64_t ok = st->confirmed, failed = st->failed;
	uint64_t unsent_from = st->unsent_from;
	int ret = 0;

	report_range(e);
	if (cq_stop_requested())
		cli_err(cli, "stopped by %s", cq_stop_name());
	if (unsent_from) {
		char from[32];

		cli_err(cli, "%ss from %llu on: not sent", e->unit,
			(unsigned long long)unsent_from);
		snprintf(from, sizeof(from), "from_%s", e->unit);
		if (cli->json)
			cli_put_json(cli, cq_json_pack("{s:I,s:s}", from,
						    (long long)unsent_from,
						    "error", "not sent"));
	}
	if (died)
		ret = cli_fail(cli);
	if (!cli->quiet) {
		fprintf(stderr, "enqueued %llu message%s in %.2fs (%llu failed",
			(unsigned long long)ok, cli_s(ok), seconds_since(start),
			(unsigned long long)failed);
		if (st->bad)
			fprintf(stderr, ", %llu malformed",
				(unsigned long long)st->bad);
		if (st->blank)
			fprintf(stderr, ", %llu blank",
				(unsigned long long)st->blank);
		if (st->reconnects)
			fprintf(stderr, ", %u reconnect%s", st->reconnects,
				cli_s(st->reconnects));
		fputs(")\n", stderr);
	}
	ret = cli_worse(ret, failed || unsent_from ? EX_TEMPFAIL : 0);
	return cli_worse(ret, st->bad ? EX_DATAERR : 0);
}

static int cmd_enqueue(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "null", no_argument, NULL, '0' },
		{ "jsonl", no_argument, NULL, OPT_ENQ_JSONL },
		{ "exchange", required_argument, NULL, OPT_ENQ_EXCHANGE },
		{ "routing-key", required_argument, NULL, OPT_ENQ_ROUTING_KEY },
		{ "header", required_argument, NULL, 'H' },
		{ "priority", required_argument, NULL, OPT_ENQ_PRIORITY },
		{ "message-id", required_argument, NULL, OPT_ENQ_MESSAGE_ID },
		{ "no-message-id", no_argument, NULL, OPT_ENQ_NO_MESSAGE_ID },
		{ "content-type", required_argument, NULL, OPT_ENQ_CONTENT_TYPE },
		{ "expiration", required_argument, NULL, OPT_ENQ_EXPIRATION },
		{ "transient", no_argument, NULL, OPT_ENQ_TRANSIENT },
		{ "window", required_argument, NULL, OPT_ENQ_WINDOW },
		{ "max-size", required_argument, NULL, OPT_ENQ_MAX_SIZE },
		{ "heartbeat", required_argument, NULL, OPT_ENQ_HEARTBEAT },
		{ "maxlen", required_argument, NULL, OPT_ENQ_MAXLEN },
		QCTL_OPTIONS
	};
	struct enqueue e = { .cli = cli, .unit = "line" };
	struct cq_enqueue_opts eo = { 0 };
	struct cq_enqueue_stats st;
	struct cq_message tmpl;
	struct cq_header *hdrs;
	unsigned long long window = DEFAULT_WINDOW, max = DEFAULT_MAX_SIZE, v;
	unsigned long long maxlen = 0;
	const char *queue;
	char delim = '\n';
	bool jsonl = false;
	long long start, ms;
	enum cq_err err;
	int c, ret;

	cq_message_init(&tmpl);
	hdrs = calloc((size_t)argc + 1, sizeof(*hdrs));
	if (!hdrs) {
		cli_err(cli, "out of memory");
		return EX_SOFTWARE;	/* 70, not a usage error */
	}
	while ((c = getopt_long(argc, argv, "0H:" CLI_COMMON_SHORT, opts, NULL)) != -1) {
		switch (c) {
		case '0':
			delim = '\0';
			break;
		case OPT_ENQ_JSONL:
			jsonl = true;
			break;
		case OPT_ENQ_EXCHANGE:
			tmpl.exchange = optarg;
			break;
		case OPT_ENQ_ROUTING_KEY:
			tmpl.routing_key = optarg;
			break;
		case 'H':
			if (!parse_header(cli, optarg, &hdrs[tmpl.nheaders]))
				goto usage;
			tmpl.nheaders++;
			break;
		case OPT_ENQ_PRIORITY:
			if (!cli_uint(cli, "--priority", optarg, 0, 255, &v))
				goto usage;
			tmpl.priority = (int)v;
			break;
		case OPT_ENQ_MESSAGE_ID:
			tmpl.message_id = optarg;
			break;
		case OPT_ENQ_NO_MESSAGE_ID:
			tmpl.no_message_id = true;
			break;
		case OPT_ENQ_CONTENT_TYPE:
			tmpl.content_type = optarg;
			break;
		case OPT_ENQ_EXPIRATION:
			if (!cli_duration(cli, "--expiration", optarg, &ms))
				goto usage;
			snprintf(e.expiration, sizeof(e.expiration), "%lld", ms);
			tmpl.expiration = e.expiration;
			break;
		case OPT_ENQ_TRANSIENT:
			tmpl.transient = true;
			break;
		case OPT_ENQ_WINDOW:
			if (!cli_uint(cli, "--window", optarg, 1, 1000000, &window))
				goto usage;
			break;
		case OPT_ENQ_MAX_SIZE:
			if (!cq_parse_size(optarg, &max) || max == 0) {
				cli_usage_error(cli, "--max-size: bad size '%s' (want e.g. 512k, 64M)", optarg);
				goto usage;
			}
			break;
		case OPT_ENQ_HEARTBEAT:
			if (!heartbeat_opt(cli, optarg))
				goto usage;
			break;
		case OPT_ENQ_MAXLEN:
			if (!cli_uint(cli, "--maxlen", optarg, 1, LLONG_MAX, &maxlen))
				goto usage;
			break;
		default:
			if ((ret = qctl_opt(cli, c, optarg)))
				goto out;
		}
	}
	tmpl.headers = hdrs;
	if (argc - optind < 1) {
		cli_usage_error(cli, "missing QUEUE");
		goto usage;
	}
	queue = argv[optind++];
	if (!cli_name(cli, "queue", queue) ||
	    (tmpl.exchange && *tmpl.exchange &&
	     !cli_name(cli, "exchange", tmpl.exchange)))
		goto usage;
	if (tmpl.routing_key && !tmpl.exchange) {
		cli_usage_error(cli, "--routing-key goes with --exchange (without it QUEUE is the routing key)");
		goto usage;
	}
	if (tmpl.message_id && tmpl.no_message_id) {
		cli_usage_error(cli, "--message-id and --no-message-id exclude each other");
		goto usage;
	}
	if (!tmpl.routing_key)
		tmpl.routing_key = queue;
	if (optind < argc && (jsonl || delim == '\0')) {
		cli_usage_error(cli, "MSG arguments exclude --jsonl and -0 (those read standard input)");
		goto usage;
	}
	if (maxlen && (!cli->set.queue_backend ||
		       strcmp(cli->set.queue_backend, "stream") != 0)) {
		cli_usage_error(cli, "--maxlen is for the stream backend (--backend stream)");
		goto usage;
	}
	ret = cli_ready(cli);
	if (ret)
		goto out;
	eo.tmpl = &tmpl;
	eo.input = jsonl ? CQ_ENQ_JSONL : delim == '\0' ? CQ_ENQ_NUL : CQ_ENQ_LINES;
	eo.args = argv + optind;
	eo.nargs = (size_t)(argc - optind);
	eo.window = window;
	eo.max_size = max;
	eo.on_settled = on_settle;
	eo.on_bad = on_bad;
	eo.on_blocked = on_blocked;
	eo.on_progress = on_progress;
	eo.on_reconnect = on_reconnect;
	eo.on_notice = on_enqueue_notice;
	eo.maxlen = (long long)maxlen;
	eo.arg = &e;
	if (eo.nargs)
		e.unit = "argument";
	start = cq_now_ms();
	err = cq_enqueue(cli->ctx, STDIN_FILENO, &eo, &st);
	cli_progress_clear(cli);
	if (err && !st.ran) {
		ret = cli_fail(cli);
	} else {
		ret = enqueue_finish(&e, &st, err != CQ_OK, start);
	}
out:
	free(hdrs);
	return ret;
usage:
	free(hdrs);
	return EX_USAGE;
}

/* ---- peek ------------------------------------------------------------- */

static const char peek_usage[] =
	"usage: qctl peek [OPTIONS] QUEUE\n"
	"\n"
	"Show up to N messages of QUEUE without removing them: id, age, size,\n"
	"a body preview, and for dead letters why, how often and where they\n"
	"died.  The messages are held unacknowledged while shown, then put back:\n"
	"RabbitMQ marks them redelivered and may change their order.  Exit 1\n"
	"when the queue is empty.\n"
	"\n"
	"  -n, --count N      show at most N messages (default 10)\n"
	"  --preview BYTES    body preview length (default 80, 0 = none)\n"
	"  --json             one JSON object per message, with the whole body\n";

enum { OPT_PEEK_PREVIEW = OPT_VERB };

struct peek {
	struct cli *cli;
	size_t preview;
	long long now_s;
	size_t n;
	bool quorum_seen;
};

/* "42s", "5m3s", "2h10m", "3d4h" */
static void fmt_age(long long s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(buf, len, "%llds", s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
}

/* Printable ASCII as is, the rest escaped; at most max input bytes. */
static bool put_preview(struct cli *cli, const char *p, size_t len, size_t max)
{
	char buf[8];
	bool ok = true;

	for (size_t i = 0; ok && i < len && i < max; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n')
			ok = cli_write(cli, "\\n", 2);
		else if (c == '\t')
			ok = cli_write(cli, "\\t", 2);
		else if (c == '\\')
			ok = cli_write(cli, "\\\\", 2);
		else if (c < 0x20 || c >= 0x7f) {
			snprintf(buf, sizeof(buf), "\\x%02x", c);
			ok = cli_write(cli, buf, 4);
		} else
			ok = cli_write(cli, &p[i], 1);
	}
	if (ok && len > max)
		ok = cli_write(cli, "...", 3);
	return ok;
}

static bool put_str(struct cli *cli, const char *s)
{
	return cli_write(cli, s, strlen(s));
}

/* "   earlier: attempt 2 failed with exit code 3 (host h, 5m ago)": what
 * qctl's headers say of an attempt before the newer death shown above
 * (the broker dead-lettered the message since, e.g. after the last
 * retry), so that it is not taken for the cause of that death. */
static void peek_earlier(struct peek *pk, const struct cq_death *d)
{
	char buf[700], age[32];
	int n;

	if (d->retries > 0)
		n = snprintf(buf, sizeof(buf), "   earlier: attempt %lld failed",
			     d->retries);
	else
		n = snprintf(buf, sizeof(buf), "   earlier: an attempt failed");
	if (d->exit_code >= 0)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n,
			      " with exit code %lld", d->exit_code);
	if (d->qctl_time > 0)
		fmt_age(pk->now_s - d->qctl_time, age, sizeof(age));
	if (d->host && d->qctl_time > 0)
		snprintf(buf + n, sizeof(buf) - (size_t)n, " (host %s, %s ago)",
			 d->host, age);
	else if (d->host)
		snprintf(buf + n, sizeof(buf) - (size_t)n, " (host %s)", d->host);
	else if (d->qctl_time > 0)
		snprintf(buf + n, sizeof(buf) - (size_t)n, " (%s ago)", age);
	put_str(pk->cli, buf);
	put_str(pk->cli, "\n");
}

static bool peek_death(struct peek *pk, const struct cq_death *d)
{
	struct cli *cli = pk->cli;
	char buf[700], age[32];

	if (d->source == CQ_DEATH_NONE || d->source == CQ_DEATH_DLQ_NAME)
		return true;
	snprintf(buf, sizeof(buf), "   died: %s", d->reason ? d->reason : "(no reason given)");
	if (!put_str(cli, buf))
		return false;
	if (d->count > 0) {
		snprintf(buf, sizeof(buf), " (count %lld)", d->count);
		put_str(cli, buf);
	}
	if (d->queue) {
		snprintf(buf, sizeof(buf), ", queue '%s'", d->queue);
		put_str(cli, buf);
	}
	if (d->exchange) {
		snprintf(buf, sizeof(buf), ", exchange '%s'%s", d->exchange,
			 d->exchange[0] ? "" : " (default)");
		put_str(cli, buf);
	}
	if (d->routing_key) {
		snprintf(buf, sizeof(buf), ", routing key '%s'", d->routing_key);
		put_str(cli, buf);
	}
	if (d->time > 0) {
		fmt_age(pk->now_s - d->time, age, sizeof(age));
		snprintf(buf, sizeof(buf), ", %s ago", age);
		put_str(cli, buf);
	}
	snprintf(buf, sizeof(buf), " [%s]\n", d->source == CQ_DEATH_XDEATH ? "x-death" :
		 d->source == CQ_DEATH_QCTL ? "qctl" : "headers");
	if (!put_str(cli, buf))
		return false;
	/* qctl's figures; after a newer death, said to be an earlier one's */
	if (d->earlier)
		peek_earlier(pk, d);
	else if (d->retries >= 0 || d->exit_code >= 0 || d->host) {
		int n = snprintf(buf, sizeof(buf), "   retries %lld",
				 d->retries < 0 ? 0 : d->retries);

		if (d->exit_code >= 0)
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, ", exit code %lld", d->exit_code);
		if (d->host)
			snprintf(buf + n, sizeof(buf) - (size_t)n, ", host %s", d->host);
		put_str(cli, buf);
		put_str(cli, "\n");
	}
	if (d->stderr_tail) {
		put_str(cli, d->earlier ? "     stderr: " : "   stderr: ");
		put_preview(cli, d->stderr_tail, strlen(d->stderr_tail), 200);
		put_str(cli, "\n");
	}
	return !cli->out_failed;
}

/* A message failed and retried, not dead (yet): its count and why. */
static void peek_retried(struct peek *pk, const struct cq_delivery *d)
{
	struct cli *cli = pk->cli;
	const struct cq_field *n = cq_delivery_header(d, CQ_HDR_RETRIES);
	const struct cq_field *code = cq_delivery_header(d, CQ_HDR_EXIT_CODE);
	const struct cq_field *host = cq_delivery_header(d, CQ_HDR_HOST);
	const struct cq_field *tail = cq_delivery_header(d, CQ_HDR_STDERR);
	char buf[700];
	int len;

	if (!n || n->kind != CQ_FIELD_INT || n->i <= 0)
		return;
	len = snprintf(buf, sizeof(buf), "   retried: %lld failed attempt%s",
		       n->i, n->i == 1 ? "" : "s");
	if (code && code->kind == CQ_FIELD_INT)
		len += snprintf(buf + len, sizeof(buf) - (size_t)len,
				", exit code %lld", code->i);
	if (host && host->kind == CQ_FIELD_STRING)
		snprintf(buf + len, sizeof(buf) - (size_t)len, ", host %.255s",
			 host->str);
	put_str(cli, buf);
	put_str(cli, "\n");
	if (tail && tail->kind == CQ_FIELD_STRING && tail->len) {
		put_str(cli, "   stderr: ");
		put_preview(cli, tail->str, tail->len, 200);
		put_str(cli, "\n");
	}
}

static enum cq_err peek_one(void *arg, const struct cq_delivery *d)
{
	struct peek *pk = arg;
	struct cli *cli = pk->cli;
	struct cq_death death;
	char buf[600], age[32] = "?";

	pk->n++;
	if (cq_delivery_header(d, CQ_HDR_DELIVERY_COUNT))
		pk->quorum_seen = true;
	if (cli->json)
		return cli_put_json_text(cli, cq_delivery_json(d, true)) ? CQ_OK : CQ_ERR_IO;
	if (cq_delivery_death(d, &death))
		return CQ_ERR_NOMEM;
	if (d->timestamp > 0)
		fmt_age(pk->now_s - d->timestamp, age, sizeof(age));
	else if (death.time > 0)
		fmt_age(pk->now_s - death.time, age, sizeof(age));
	snprintf(buf, sizeof(buf), "#%zu id=%s age=%s size=%zu%s\n", pk->n,
		 d->message_id ? d->message_id : "-", age, d->len,
		 d->redelivered ? " redelivered" : "");
	put_str(cli, buf);
	peek_death(pk, &death);
	if (death.source == CQ_DEATH_NONE || death.source == CQ_DEATH_DLQ_NAME)
		peek_retried(pk, d);
	cq_death_clear(&death);
	if (pk->preview) {
		put_str(cli, "   body: ");
		put_preview(cli, d->body, d->len, pk->preview);
		put_str(cli, "\n");
	}
	return cli->out_failed ? CQ_ERR_IO : CQ_OK;
}

static int cmd_peek(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "preview", required_argument, NULL, OPT_PEEK_PREVIEW },
		QCTL_OPTIONS
	};
	struct peek pk = { .cli = cli, .preview = 80 };
	struct cq_queue_info qi;
	unsigned long long count = 10, v;
	const char *queue;
	size_t seen;
	int c, ret;

	while ((c = getopt_long(argc, argv, "n:" CLI_COMMON_SHORT, opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (!cli_uint(cli, "--count", optarg, 1, 1000000, &count))
				return EX_USAGE;
			break;
		case OPT_PEEK_PREVIEW:
			if (!cli_uint(cli, "--preview", optarg, 0, 1 << 20, &v))
				return EX_USAGE;
			pk.preview = (size_t)v;
			break;
		default:
			if ((ret = qctl_opt(cli, c, optarg)))
				return ret;
		}
	}
	queue = one_queue(cli, argc, argv, "QUEUE");
	if (!queue)
		return EX_USAGE;
	ret = cli_ready(cli);
	if (ret)
		return ret;
	if (cq_queue_probe(cli->ctx, queue, &qi))
		return cli_fail(cli);
	if (qi.quorum && qi.delivery_limit >= 0)
		cli_err(cli, "warning: '%s' is a quorum queue with a delivery limit of %lld: "
			"each peek counts as a delivery, and a message peeked too often is "
			"dead-lettered or dropped", queue, qi.delivery_limit);
	pk.now_s = cq_wall_ms() / 1000;
	if (cq_peek(cli->ctx, queue, (size_t)count, peek_one, &pk, &seen)) {
		if (cli->out_failed)
			return EX_IOERR;
		return cli_fail(cli);
	}
	if (seen == 0) {
		if (!cli->quiet)
			cli_err(cli, "queue '%s' is empty", queue);
		return 1;
	}
	/* a Redis backend reads without taking: nothing went anywhere */
	if (!cli->quiet && (!cli->set.queue_backend ||
			    strcmp(cli->set.queue_backend, "amqp") == 0))
		cli_err(cli, "note: the %zu message%s shown went back to '%s' and %s now marked redelivered%s",
			seen, cli_s(seen), queue, seen == 1 ? "is" : "are",
			pk.quorum_seen && !(qi.quorum && qi.delivery_limit >= 0) ?
			" (quorum queue: their delivery count went up by one)" : "");
	return 0;
}

/* ---- replay-dlq ------------------------------------------------------- */

static const char replay_usage[] =
	"usage: qctl replay-dlq [OPTIONS] DLQ\n"
	"\n"
	"Move the messages of the dead-letter queue DLQ back to the queue each\n"
	"died in (from x-death, qctl's x-cq-* headers, an application's\n"
	"x-original-queue-style headers, or DLQ's name QUEUE.dlq), or to --to.\n"
	"Each is republished (mandatory, confirmed) before its dead-letter copy\n"
	"is acknowledged: a crash can duplicate, never lose.  Only the messages\n"
	"present at start are looked at; what is not moved stays in DLQ.\n"
	"\n"
	"  --to QUEUE         send every message to QUEUE\n"
	"  -n, --count N      look at no more than N messages (with --filter,\n"
	"                     the ones that do not match count too)\n"
	"  --filter SPEC      only messages matching SPEC (repeatable, all must\n"
	"                     match): KEY=VALUE or header:KEY=VALUE, body:REGEX,\n"
	"                     reason:TEXT (rejected, expired, maxlen, ...)\n"
	"  --dry-run          list what would move where; move nothing\n"
	"  --rate N           at most N messages a second\n"
	"  --reset-retries    drop qctl's retry count (x-cq-retries)\n"
	"  --window N         messages in flight (default 1000)\n"
	"  --json             one JSON object per message (and per reconnect)\n"
	"                     on stdout\n"
	"\n"
	"With a list of AMQP URLs (a cluster), a lost connection is made again to\n"
	"the next node, for at most --timeout: what was not moved is looked at\n"
	"again, and none is counted twice.\n"
	"\n"
	"SIGTERM or SIGINT: take no more, settle the window in flight (a second\n"
	"signal: stop waiting; those stay in DLQ too), report, exit 75.\n";

enum {
	OPT_REPLAY_TO = OPT_VERB, OPT_REPLAY_FILTER, OPT_REPLAY_DRY_RUN,
	OPT_REPLAY_RATE, OPT_REPLAY_RESET, OPT_REPLAY_WINDOW,
};

struct replay_out {
	struct cli *cli;
	const char *dlq;
	uint64_t done;
	uint64_t lost;		/* in flight when the connection went */
};

/* False once standard output cannot be written: the run ends. */
static bool on_replay(void *arg, const struct cq_replay_event *ev)
{
	struct replay_out *ro = arg;
	struct cli *cli = ro->cli;
	const char *id = ev->message_id ? ev->message_id : "(no id)";

	ro->done++;
	if (cli->json) {
		cli_put_json_text(cli, cq_replay_event_json(ev));
	} else if (ev->what == CQ_REPLAY_WOULD_MOVE) {
		cli_printf(cli, "would move %s to '%s'\n", id, ev->target);
	} else if (ev->what == CQ_REPLAY_FAILED &&
		   (strcmp(ev->reason, CQ_REASON_LOST) == 0 ||
		    strcmp(ev->reason, CQ_REASON_CLOSED) == 0 ||
		    strcmp(ev->reason, CQ_REASON_TIMEOUT) == 0 ||
		    strcmp(ev->reason, CQ_REASON_STOPPED) == 0)) {
		ro->lost++;	/* one line for all of them, at the end */
	} else if (ev->what == CQ_REPLAY_FAILED) {
		cli_err(cli, "message %s: not moved to '%s' (stays in '%s'): %s",
			id, ev->target, ro->dlq, ev->reason);
	} else if (ev->what == CQ_REPLAY_SKIPPED && !ev->target) {
		cli_err(cli, "message %s: skipped: %s", id, ev->reason);
	}
	cli_progress(cli, "%llu done", (unsigned long long)ro->done);
	return !cli->out_failed;
}

/* ", N reconnects" for the summary, or "". */
static const char *reconnects(const struct cq_replay_stats *st, char *buf,
			      size_t len)
{
	buf[0] = '\0';
	if (st->reconnects)
		snprintf(buf, len, ", %u reconnect%s", st->reconnects,
			 cli_s(st->reconnects));
	return buf;
}

static void on_replay_reconnect(void *arg, const struct cq_reconnect *r)
{
	struct replay_out *ro = arg;
	char what[160];

	snprintf(what, sizeof(what), "%llu message%s taken and not moved %s back in '%s', looked at again",
		 r->unsettled, cli_s(r->unsettled),
		 r->unsettled == 1 ? "is" : "are", ro->dlq);
	report_reconnect(ro->cli, r, what);
}

static int cmd_replay(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, OPT_REPLAY_TO },
		{ "count", required_argument, NULL, 'n' },
		{ "filter", required_argument, NULL, OPT_REPLAY_FILTER },
		{ "dry-run", no_argument, NULL, OPT_REPLAY_DRY_RUN },
		{ "rate", required_argument, NULL, OPT_REPLAY_RATE },
		{ "reset-retries", no_argument, NULL, OPT_REPLAY_RESET },
		{ "window", required_argument, NULL, OPT_REPLAY_WINDOW },
		QCTL_OPTIONS
	};
	struct replay_out ro = { .cli = cli };
	struct cq_replay_opts o;
	struct cq_replay_stats st;
	struct cq_filter *filter = NULL;
	unsigned long long v;
	char err[300], where[300];
	long long start;
	enum cq_err e;
	int c, ret;

	cq_replay_opts_init(&o);
	while ((c = getopt_long(argc, argv, "n:" CLI_COMMON_SHORT, opts, NULL)) != -1) {
		switch (c) {
		case OPT_REPLAY_TO:
			o.to = optarg;
			break;
		case 'n':
			if (!cli_uint(cli, "--count", optarg, 1, UINT32_MAX, &v))
				goto usage;
			o.count = v;
			break;
		case OPT_REPLAY_FILTER:
			if ((e = cq_filter_add(&filter, optarg, err, sizeof(err)))) {
				if (e == CQ_ERR_NOMEM) {
					cli_err(cli, "out of memory");
					cq_filter_free(filter);
					return EX_SOFTWARE;
				}
				cli_usage_error(cli, "--filter: %s", err);
				goto usage;
			}
			break;
		case OPT_REPLAY_DRY_RUN:
			o.dry_run = true;
			break;
		case OPT_REPLAY_RATE:
			if (!cli_uint(cli, "--rate", optarg, 1, 10000000, &v))
				goto usage;
			o.rate = (double)v;
			break;
		case OPT_REPLAY_RESET:
			o.reset_retries = true;
			break;
		case OPT_REPLAY_WINDOW:
			if (!cli_uint(cli, "--window", optarg, 1, 100000, &v))
				goto usage;
			o.window = (size_t)v;
			break;
		default:
			if ((ret = qctl_opt(cli, c, optarg)))
				goto out;
		}
	}
	ro.dlq = one_queue(cli, argc, argv, "DLQ");
	if (!ro.dlq || (o.to && !cli_name(cli, "queue", o.to)))
		goto usage;
	if (o.to && strcmp(o.to, ro.dlq) == 0) {
		cli_usage_error(cli, "--to names the dead-letter queue itself");
		goto usage;
	}
	o.filter = filter;
	o.fn = on_replay;
	o.on_reconnect = on_replay_reconnect;
	o.arg = &ro;
	ret = cli_ready(cli);
	if (ret)
		goto out;
	start = cq_now_ms();
	e = cq_replay(cli->ctx, ro.dlq, &o, &st);
	cli_progress_clear(cli);
	if (ro.lost)
		cli_err(cli, "%llu message%s in flight %s not confirmed and stay in '%s'",
			(unsigned long long)ro.lost, cli_s(ro.lost),
			ro.lost == 1 ? "was" : "were", ro.dlq);
	if (st.stopped)
		cli_err(cli, "stopped by %s: %llu of the %llu messages present not looked at (they stay in '%s')",
			cq_stop_name(),
			(unsigned long long)(st.present > st.seen ? st.present - st.seen : 0),
			(unsigned long long)st.present, ro.dlq);
	if (e)
		ret = cli_fail(cli);
	if (e && !st.started)
		goto out;	/* nothing began: the error says it all */
	if (st.quit)
		goto out;	/* the output is gone: its error says it all */
	if (o.to || (!st.several_targets && st.target[0]))
		snprintf(where, sizeof(where), "'%s'", o.to ? o.to : st.target);
	else
		snprintf(where, sizeof(where), "their original queues");
	if (!cli->quiet && st.present == 0 && !e)
		cli_err(cli, "'%s' is empty", ro.dlq);
	else if (!cli->quiet && o.dry_run)
		fprintf(stderr, "would replay %llu to %s (%llu skipped), nothing moved\n",
			(unsigned long long)st.would_move, where,
			(unsigned long long)st.skipped);
	else if (!cli->quiet)
		fprintf(stderr, "replayed %llu to %s (%llu skipped, %llu failed%s) in %.2fs\n",
			(unsigned long long)st.replayed, where,
			(unsigned long long)st.skipped,
			(unsigned long long)st.failed,
			reconnects(&st, err, sizeof(err)), seconds_since(start));
	if (!ret && st.present == 0)
		ret = 1;
	if (!ret && (st.failed || st.stopped))
		ret = EX_TEMPFAIL;
out:
	cq_filter_free(filter);
	return ret;
usage:
	cq_filter_free(filter);
	return EX_USAGE;
}

/* ---- declare ---------------------------------------------------------- */

static const char declare_usage[] =
	"usage: qctl declare [OPTIONS] QUEUE\n"
	"\n"
	"Declare QUEUE durable (idempotent: nothing changes if it exists with\n"
	"the same arguments; different arguments are an error, exit 65).\n"
	"\n"
	"  --dlq[=NAME]       also a dead-letter exchange QUEUE.dlx and queue\n"
	"                     (default QUEUE.dlq) that rejected and expired\n"
	"                     messages go to, with RabbitMQ's x-death header\n"
	"  --quorum           a quorum queue (replicated; delivery limits)\n"
	"  --max-length N     keep at most N ready messages\n"
	"  --message-ttl DUR  messages expire after DUR\n"
	"  --max-priority N   priorities 1-N (classic queues, 1-255)\n"
	"  --delivery-limit N dead-letter after N redeliveries (quorum only)\n"
	"  --dead-letter-strategy at-least-once|at-most-once\n"
	"                     how a quorum queue dead-letters (default with\n"
	"                     --quorum --dlq: at-least-once, which also sets\n"
	"                     x-overflow=reject-publish: a full queue refuses\n"
	"                     publishes rather than dropping)\n"
	"  --json             print the result as JSON\n";

enum {
	OPT_DECL_DLQ = OPT_VERB, OPT_DECL_QUORUM, OPT_DECL_MAX_LENGTH,
	OPT_DECL_TTL, OPT_DECL_MAX_PRIORITY, OPT_DECL_DELIVERY_LIMIT,
	OPT_DECL_DL_STRATEGY,
};

static int declare_print(struct cli *cli, const char *queue,
			 const struct cq_declared *d)
{
	struct json_t *rec;

	if (cli->json) {
		rec = cq_json_add_bytes(cq_json_pack("{}"), "queue", queue,
					strlen(queue));
		rec = cq_json_add(rec, "{s:I,s:I}", "messages",
				  (long long)d->messages, "consumers",
				  (long long)d->consumers);
		if (d->dlq) {
			rec = cq_json_add_bytes(rec, "dlq", d->dlq, strlen(d->dlq));
			if (d->dlx)	/* a Redis backend has none */
				rec = cq_json_add_bytes(rec, "dlx", d->dlx,
							strlen(d->dlx));
		}
		cli_put_json(cli, rec);
		return 0;
	}
	if (cli->quiet)
		return 0;
	fprintf(stderr, "declared '%s' (%u message%s, %u consumer%s)", queue,
		d->messages, cli_s(d->messages), d->consumers,
		cli_s(d->consumers));
	if (d->dlq && d->dlx)
		fprintf(stderr, ", dead letters to '%s' via exchange '%s'",
			d->dlq, d->dlx);
	else if (d->dlq)
		fprintf(stderr, ", dead letters to '%s'", d->dlq);
	fputc('\n', stderr);
	return 0;
}

static int cmd_declare(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dlq", optional_argument, NULL, OPT_DECL_DLQ },
		{ "quorum", no_argument, NULL, OPT_DECL_QUORUM },
		{ "max-length", required_argument, NULL, OPT_DECL_MAX_LENGTH },
		{ "message-ttl", required_argument, NULL, OPT_DECL_TTL },
		{ "max-priority", required_argument, NULL, OPT_DECL_MAX_PRIORITY },
		{ "delivery-limit", required_argument, NULL, OPT_DECL_DELIVERY_LIMIT },
		{ "dead-letter-strategy", required_argument, NULL, OPT_DECL_DL_STRATEGY },
		QCTL_OPTIONS
	};
	struct cq_queue_opts o;
	const char *strategy = NULL;
	struct cq_declared d = { 0 };
	unsigned long long v;
	const char *queue;
	int c, ret;

	cq_queue_opts_init(&o);
	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		switch (c) {
		case OPT_DECL_DLQ:
			o.dlq = optarg ? optarg : "";
			break;
		case OPT_DECL_QUORUM:
			o.quorum = true;
			break;
		case OPT_DECL_MAX_LENGTH:
			if (!cli_uint(cli, "--max-length", optarg, 0, INT64_MAX, &v))
				return EX_USAGE;
			o.max_length = (long long)v;
			break;
		case OPT_DECL_TTL:
			if (!cli_duration(cli, "--message-ttl", optarg, &o.message_ttl_ms))
				return EX_USAGE;
			if (o.message_ttl_ms > 0xffffffffLL)
				return cli_usage_error(cli, "--message-ttl: at most 49d");
			break;
		case OPT_DECL_MAX_PRIORITY:
			if (!cli_uint(cli, "--max-priority", optarg, 1, 255, &v))
				return EX_USAGE;
			o.max_priority = (int)v;
			break;
		case OPT_DECL_DELIVERY_LIMIT:
			if (!cli_uint(cli, "--delivery-limit", optarg, 0, INT32_MAX, &v))
				return EX_USAGE;
			o.delivery_limit = (long long)v;
			break;
		case OPT_DECL_DL_STRATEGY:
			if (strcmp(optarg, "at-least-once") != 0 &&
			    strcmp(optarg, "at-most-once") != 0)
				return cli_usage_error(cli, "--dead-letter-strategy: '%s' is not at-least-once or at-most-once",
						       optarg);
			strategy = optarg;
			o.at_least_once = strcmp(optarg, "at-least-once") == 0;
			break;
		default:
			if ((ret = qctl_opt(cli, c, optarg)))
				return ret;
		}
	}
	queue = one_queue(cli, argc, argv, "QUEUE");
	if (!queue ||
	    (o.dlq && *o.dlq && !cli_name(cli, "dead-letter queue", o.dlq)))
		return EX_USAGE;
	if (o.delivery_limit >= 0 && !o.quorum)
		return cli_usage_error(cli, "--delivery-limit needs --quorum (classic queues ignore it)");
	if (strategy && !(o.quorum && o.dlq))
		return cli_usage_error(cli, "--dead-letter-strategy needs --quorum and --dlq");
	if (o.max_priority >= 0 && o.quorum)
		return cli_usage_error(cli, "--max-priority is for classic queues (quorum queues ignore it)");
	ret = cli_ready(cli);
	if (ret)
		return ret;
	if (cq_declare(cli->ctx, queue, &o, &d))
		ret = cli_fail(cli);
	else
		ret = declare_print(cli, queue, &d);
	cq_declared_clear(&d);
	return ret;
}

/* ---- purge ------------------------------------------------------------ */

static const char purge_usage[] =
	"usage: qctl purge [OPTIONS] QUEUE --yes\n"
	"\n"
	"Remove every ready message from QUEUE (messages delivered and not yet\n"
	"acknowledged stay) and print how many went.\n"
	"\n"
	"  --yes              really do it (refused without)\n"
	"  --json             print {\"queue\":...,\"purged\":N}\n";

enum { OPT_PURGE_YES = OPT_VERB };

static int cmd_purge(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "yes", no_argument, NULL, OPT_PURGE_YES },
		QCTL_OPTIONS
	};
	const char *queue;
	bool yes = false;
	uint32_t n;
	int c, ret;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == OPT_PURGE_YES)
			yes = true;
		else if ((ret = qctl_opt(cli, c, optarg)))
			return ret;
	}
	queue = one_queue(cli, argc, argv, "QUEUE");
	if (!queue)
		return EX_USAGE;
	if (!yes)
		return cli_usage_error(cli, "refusing to purge '%s' without --yes",
				       queue);
	ret = cli_ready(cli);
	if (ret)
		return ret;
	if (cq_purge(cli->ctx, queue, &n))
		return cli_fail(cli);
	if (cli->json) {
		struct json_t *rec = cq_json_add_bytes(cq_json_pack("{}"), "queue",
						       queue, strlen(queue));

		cli_put_json(cli, cq_json_add(rec, "{s:I}", "purged",
					      (long long)n));
	} else {
		cli_printf(cli, "purged %u message%s from '%s'\n", n,
			   cli_s(n), queue);
	}
	return 0;
}

/* ---- consume ---------------------------------------------------------- */

static const char consume_usage[] =
	"usage: qctl consume [OPTIONS] QUEUE\n"
	"\n"
	"Print each message of QUEUE (its body, then a newline), or run CMD for\n"
	"each one with --exec.  A message is acked only once it is written and\n"
	"flushed, or once its handler exited 0; anything else comes back.\n"
	"\n"
	"  -0, --null             end each body with a NUL byte, not a newline\n"
	"  --jsonl                one JSON object per message: headers, properties,\n"
	"                         redelivered, delivery_tag, body (or body_base64)\n"
	"  -e, --exec CMD         run 'sh -c CMD' per message, the body on stdin;\n"
	"                         CQ_MESSAGE_ID, CQ_QUEUE, CQ_REDELIVERED, CQ_RETRIES,\n"
	"                         CQ_DELIVERY_COUNT (the broker's x-delivery-count)\n"
	"                         and CQ_HEADER_<NAME> in its environment\n"
	"  -j, --jobs N           run up to N handlers at a time (default 1)\n"
	"  --max-retries N        retry a failed message N times (default 3), then\n"
	"                         dead-letter it\n"
	"  --retry-delay DUR      wait DUR before each retry\n"
	"  --poison-codes LIST    exit codes dead-lettered at once (default 65;\n"
	"                         comma-separated, or 'none')\n"
	"  --handler-timeout DUR  kill a handler running longer (a failure)\n"
	"  --dlq NAME             dead-letter to queue NAME (default: the queue's\n"
	"                         dead-letter exchange, else QUEUE.dlq)\n"
	"  --dedupe               skip message ids already processed (Redis)\n"
	"  --dedupe-ttl DUR       remember a processed id this long (default 1d)\n"
	"  --prefetch N           unacked messages at a time (default 2000 when\n"
	"                         printing, --jobs with --exec)\n"
	"  -n, --count N          stop after N messages\n"
	"  --idle-timeout DUR     stop once nothing arrived for DUR\n"
	"  --until-empty          stop once the queue is drained\n"
	"  --heartbeat DUR        AMQP heartbeat interval (default 30s, 0 = off)\n"
	"\n"
	"Redis lists (--backend list):\n"
	"  --processing-list KEY  take messages into list KEY (default: one of this\n"
	"                         consumer's own, {QUEUE}|cq:processing:HOST:PID:ID)\n"
	"  --lease DUR            the consumer's lease on it (default 30s); a list\n"
	"                         whose lease expired goes back to QUEUE\n"
	"  --recover KEY          first move processing list KEY back to QUEUE,\n"
	"                         unless a live consumer holds it\n"
	"\n"
	"  --pass-env             let handlers inherit CQ_AMQP_URL, CQ_REDIS_URL,\n"
	"                         CQ_REDIS_PASSWORD, CQ_PASSWORD_FILE and the\n"
	"                         CQ_SENTINEL_ login\n"
	"  --json                 as --jsonl; with --exec, events (reconnects) as\n"
	"                         JSON on stdout\n"
	"\n"
	"With a list of AMQP URLs (a cluster), a lost connection is made again to\n"
	"the next node, for at most --timeout: unacked messages come back\n"
	"redelivered, and none is counted done twice.\n"
	"\n"
	"Streams (--backend stream): entries are read through the consumer group\n"
	"(--group, default qctl); the body is the field 'body', else the only\n"
	"field, else all fields as one JSON object; the other fields are headers.\n"
	"  --consumer NAME        this consumer's name in the group (default\n"
	"                         qctl-HOST-PID; the same name again first takes\n"
	"                         back what it left pending)\n"
	"  --visibility-timeout DUR  claim the entries another consumer left\n"
	"                         pending this long: it died (default 5m; more\n"
	"                         than 0: a long one, 30d, for never)\n"
	"\n"
	"With --until-empty or --idle-timeout, exit 1 when no message came.\n"
	"SIGTERM or SIGINT: take no new message, let handlers finish, settle\n"
	"them, exit 0 (75 with --count, --until-empty or --idle-timeout: the\n"
	"run ended early); a second signal stops the handlers (SIGTERM to each\n"
	"process group, SIGKILL 5s later).\n";

enum {
	OPT_CONS_JSONL = OPT_VERB, OPT_CONS_MAX_RETRIES, OPT_CONS_RETRY_DELAY,
	OPT_CONS_POISON, OPT_CONS_HANDLER_TIMEOUT, OPT_CONS_DLQ,
	OPT_CONS_DEDUPE, OPT_CONS_DEDUPE_TTL, OPT_CONS_PREFETCH,
	OPT_CONS_IDLE, OPT_CONS_UNTIL_EMPTY, OPT_CONS_HEARTBEAT,
	OPT_CONS_PASS_ENV, OPT_CONS_CONSUMER, OPT_CONS_VISIBILITY, OPT_CONS_PROCESSING,
	OPT_CONS_LEASE, OPT_CONS_RECOVER,
};

#define MAX_POISON 64

struct consume_cli {
	struct cli *cli;
	char sep;
	bool jsonl;
	int out_errno;		/* why stdout failed */
	int poison[MAX_POISON];
};

static bool consume_print(void *arg, const struct cq_delivery *d)
{
	struct consume_cli *cc = arg;
	bool ok;

	if (cc->jsonl)
		ok = cli_put_json_text(cc->cli, cq_delivery_json(d, false));
	else
		ok = cli_write(cc->cli, d->body, d->len) &&
		     cli_write(cc->cli, &cc->sep, 1);
	if (!ok && !cc->out_errno)
		cc->out_errno = errno ? errno : EIO;
	return ok;
}

static bool consume_flush(void *arg)
{
	struct consume_cli *cc = arg;

	if (fflush(stdout) == 0 && !ferror(stdout))
		return true;
	if (!cc->out_errno)
		cc->out_errno = errno ? errno : EIO;
	cc->cli->out_failed = true;
	return false;
}

static void consume_handler_stderr(void *arg, const char *p, size_t n)
{
	struct consume_cli *cc = arg;

	cli_progress_clear(cc->cli);
	fwrite(p, 1, n, stderr);
}

static void consume_notice(void *arg, const char *msg)
{
	struct consume_cli *cc = arg;

	cli_err(cc->cli, "%s", msg);
}

static void consume_reconnected(void *arg, const struct cq_reconnect *r)
{
	struct consume_cli *cc = arg;
	char what[128];

	snprintf(what, sizeof(what), "%llu unsettled message%s come%s back redelivered",
		 r->unsettled, cli_s(r->unsettled), r->unsettled == 1 ? "s" : "");
	report_reconnect(cc->cli, r, what);
}

static void consume_progress(void *arg, const struct cq_consume_stats *st)
{
	struct consume_cli *cc = arg;

	cli_progress(cc->cli,
		     "%llu consumed (%llu acked, %llu retried, %llu dead-lettered), %u running",
		      st->handled, st->acked, st->retried, st->dead_lettered,
		      st->running);
}

/* "65,70" or "none". */
static bool parse_poison(struct cli *cli, const char *arg,
			 struct consume_cli *cc, struct cq_consume_opts *o)
{
	const char *p = arg;

	o->npoison = 0;
	if (strcmp(arg, "none") == 0)
		return true;
	while (*p) {
		size_t n = strcspn(p, ",");
		char num[16];
		unsigned long long v;

		if (n == 0 || n >= sizeof(num) || o->npoison == MAX_POISON)
			goto bad;
		memcpy(num, p, n);
		num[n] = '\0';
		if (!cq_parse_uint(num, 0, 255, &v))
			goto bad;
		cc->poison[o->npoison++] = (int)v;
		p += n;
		if (*p == ',' && *++p == '\0')
			goto bad;
	}
	return true;
bad:
	cli_usage_error(cli, "--poison-codes: bad list '%s' (want e.g. 65,70 or none)",
			arg);
	return false;
}

static void consume_summary(struct cli *cli, const struct cq_consume_opts *o,
			    const struct cq_consume_stats *st)
{
	char skipped[64] = "", reconnects[128] = "";

	if (cli->quiet)
		return;
	if (o->dedupe)
		snprintf(skipped, sizeof(skipped), ", %llu skipped", st->skipped);
	if (st->reacked)
		snprintf(reconnects, sizeof(reconnects),
			 ", %u reconnect%s, %llu redelivered copies of messages done acked",
			 st->reconnects, cli_s(st->reconnects), st->reacked);
	else if (st->reconnects)
		snprintf(reconnects, sizeof(reconnects), ", %u reconnect%s",
			 st->reconnects, cli_s(st->reconnects));
	fprintf(stderr, "%s: consume: consumed %llu message%s in %.2fs (%llu acked, %llu retried, %llu dead-lettered%s%s)\n",
		cli->prog, st->handled, cli_s(st->handled),
		(double)st->elapsed_ms / 1000.0, st->acked, st->retried,
		st->dead_lettered, skipped, reconnects);
}

static int consume_opt(struct cli *cli, int c, struct consume_cli *cc,
		       struct cq_consume_opts *o)
{
	unsigned long long n;

	switch (c) {
	case '0':
		cc->sep = '\0';
		break;
	case OPT_CONS_JSONL:
		cc->jsonl = true;
		break;
	case 'e':
		o->exec = optarg;
		break;
	case 'j':
		if (!cli_uint(cli, "--jobs", optarg, 1, 1024, &n))
			return EX_USAGE;
		o->jobs = (unsigned)n;
		break;
	case OPT_CONS_MAX_RETRIES:
		if (!cli_uint(cli, "--max-retries", optarg, 0, 1000000, &n))
			return EX_USAGE;
		o->max_retries = (unsigned)n;
		break;
	case OPT_CONS_RETRY_DELAY:
		if (!cli_duration(cli, "--retry-delay", optarg, &o->retry_delay_ms))
			return EX_USAGE;
		break;
	case OPT_CONS_POISON:
		if (!parse_poison(cli, optarg, cc, o))
			return EX_USAGE;
		break;
	case OPT_CONS_HANDLER_TIMEOUT:
		if (!cli_duration(cli, "--handler-timeout", optarg,
				  &o->handler_timeout_ms))
			return EX_USAGE;
		break;
	case OPT_CONS_DLQ:
		o->dlq = optarg;
		break;
	case OPT_CONS_DEDUPE:
		o->dedupe = true;
		break;
	case OPT_CONS_DEDUPE_TTL:
		if (!cli_positive_duration(cli, "--dedupe-ttl", optarg,
					   &o->dedupe_ttl_ms))
			return EX_USAGE;
		break;
	case OPT_CONS_PREFETCH:
		if (!cli_uint(cli, "--prefetch", optarg, 1, 65535, &n))
			return EX_USAGE;
		o->prefetch = (unsigned)n;
		break;
	case 'n':
		if (!cli_uint(cli, "--count", optarg, 1, UINT64_MAX, &n))
			return EX_USAGE;
		o->count = n;
		break;
	case OPT_CONS_IDLE:
		if (!cli_positive_duration(cli, "--idle-timeout", optarg,
					   &o->idle_timeout_ms))
			return EX_USAGE;
		break;
	case OPT_CONS_UNTIL_EMPTY:
		o->until_empty = true;
		break;
	case OPT_CONS_HEARTBEAT:
		if (!heartbeat_opt(cli, optarg))
			return EX_USAGE;
		break;
	case OPT_CONS_PASS_ENV:
		cli->set.pass_env = true;
		break;
	case OPT_CONS_CONSUMER:
		o->consumer = optarg;
		break;
	case OPT_CONS_VISIBILITY:
		if (!cli_positive_duration(cli, "--visibility-timeout", optarg,
					   &o->visibility_ms))
			return EX_USAGE;
		break;
	case OPT_CONS_PROCESSING:
		o->processing = optarg;
		break;
	case OPT_CONS_LEASE:
		if (!cli_duration(cli, "--lease", optarg, &o->lease_ms))
			return EX_USAGE;
		if (o->lease_ms < 1000)
			return cli_usage_error(cli, "--lease must be at least 1s");
		break;
	case OPT_CONS_RECOVER:
		o->recover = optarg;
		break;
	default:
		return qctl_opt(cli, c, optarg);
	}
	return 0;
}

static int cmd_consume(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "null", no_argument, NULL, '0' },
		{ "jsonl", no_argument, NULL, OPT_CONS_JSONL },
		{ "exec", required_argument, NULL, 'e' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "max-retries", required_argument, NULL, OPT_CONS_MAX_RETRIES },
		{ "retry-delay", required_argument, NULL, OPT_CONS_RETRY_DELAY },
		{ "poison-codes", required_argument, NULL, OPT_CONS_POISON },
		{ "handler-timeout", required_argument, NULL, OPT_CONS_HANDLER_TIMEOUT },
		{ "dlq", required_argument, NULL, OPT_CONS_DLQ },
		{ "dedupe", no_argument, NULL, OPT_CONS_DEDUPE },
		{ "dedupe-ttl", required_argument, NULL, OPT_CONS_DEDUPE_TTL },
		{ "prefetch", required_argument, NULL, OPT_CONS_PREFETCH },
		{ "count", required_argument, NULL, 'n' },
		{ "idle-timeout", required_argument, NULL, OPT_CONS_IDLE },
		{ "until-empty", no_argument, NULL, OPT_CONS_UNTIL_EMPTY },
		{ "heartbeat", required_argument, NULL, OPT_CONS_HEARTBEAT },
		{ "pass-env", no_argument, NULL, OPT_CONS_PASS_ENV },
		{ "consumer", required_argument, NULL, OPT_CONS_CONSUMER },
		{ "visibility-timeout", required_argument, NULL, OPT_CONS_VISIBILITY },
		{ "processing-list", required_argument, NULL, OPT_CONS_PROCESSING },
		{ "lease", required_argument, NULL, OPT_CONS_LEASE },
		{ "recover", required_argument, NULL, OPT_CONS_RECOVER },
		QCTL_OPTIONS
	};
	struct consume_cli cc = { .cli = cli, .sep = '\n' };
	struct cq_consume_opts o;
	struct cq_consume_stats st;
	enum cq_err e;
	int c, ret;

	cq_consume_opts_init(&o);
	cc.poison[0] = EX_DATAERR;
	o.poison_codes = cc.poison;
	o.npoison = 1;
	while ((c = getopt_long(argc, argv, "0e:j:n:" CLI_COMMON_SHORT, opts,
				NULL)) != -1) {
		ret = consume_opt(cli, c, &cc, &o);
		if (ret)
			return ret;
	}
	if (argc - optind != 1)
		return cli_usage_error(cli, argc - optind ? "one QUEUE only" :
					    "missing QUEUE");
	if (o.exec && (cc.jsonl || cc.sep == '\0'))
		return cli_usage_error(cli, "--exec does not print messages: drop -0/--jsonl");
	/* with --exec, --json is for the events (reconnects) */
	cc.jsonl = cc.jsonl || (cli->json && !o.exec);
	if (!o.exec && (o.jobs > 1 || o.handler_timeout_ms || o.retry_delay_ms))
		return cli_usage_error(cli, "--jobs, --handler-timeout and --retry-delay need --exec");
	o.queue = argv[optind];
	cli->need_redis = o.dedupe;
	if (!cli_name(cli, "queue", o.queue) ||
	    (o.dlq && !cli_name(cli, "dead-letter queue", o.dlq)))
		return EX_USAGE;
	if (!o.exec) {
		o.print = consume_print;
		o.flush = consume_flush;
	}
	o.handler_stderr = consume_handler_stderr;
	o.notice = consume_notice;
	o.reconnected = consume_reconnected;
	o.arg = &cc;

	if (cli_progress_wanted(cli))
		o.progress = consume_progress;
	ret = cli_ready(cli);
	if (ret)
		return ret;
	e = cq_consume(cli->ctx, &o, &st);
	cli_progress_clear(cli);
	if (e == CQ_ERR_IO && cc.out_errno) {
		/* the reader went away (or the disk is full): cli's finish
		 * reports it (quietly for a closed pipe) and exits 74 */
		cli->out_failed = true;
		errno = cc.out_errno;
		return EX_IOERR;
	}
	if (e == CQ_ERR_NOTFOUND && st.empty) {
		if (!cli->quiet)
			cli_err(cli, "queue '%s' is empty", o.queue);
		return 1;
	}
	/* a bounded run (cron's) that a signal cut short did less than
	 * asked: worth running again */
	if (!e && st.stopped && (o.count || o.until_empty || o.idle_timeout_ms)) {
		cli_err(cli, "stopped by %s before %s", cq_stop_name(),
			o.count ? "--count was reached" :
			o.until_empty ? "the queue was drained" :
			"--idle-timeout");
		consume_summary(cli, &o, &st);
		return EX_TEMPFAIL;
	}
	if (!e || st.received)
		consume_summary(cli, &o, &st);
	return e ? cli_fail(cli) : 0;
}

/* ---- stats ------------------------------------------------------------ */

static const char stats_usage[] =
	"usage: qctl stats [OPTIONS] QUEUE...\n"
	"\n"
	"Print the figures of each QUEUE, one 'name[QUEUE] value' per line:\n"
	"ready messages and consumers (from a passive declare, which counts\n"
	"only ready messages: unacked ones need cqstat --api), and dlq, the\n"
	"ready messages of QUEUE.dlq when it exists.  Exit 1 if a QUEUE does\n"
	"not exist.\n"
	"\n"
	"  --json             one JSON object\n";

static int cmd_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = { QCTL_OPTIONS };
	struct cq_metrics ms;
	char why[128];
	bool redis;
	int c, ret;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1)
		if ((ret = qctl_opt(cli, c, optarg)))
			return ret;
	if (optind >= argc)
		return cli_usage_error(cli, "missing QUEUE");
	for (int i = optind; i < argc; i++)
		if (!cli_name(cli, "queue", argv[i]))
			return EX_USAGE;
	ret = cli_ready(cli);
	if (ret)
		return ret;
	cq_metrics_init(&ms);
	ms.time_ms = cq_wall_ms();
	if (cq_queue_figures(cli->ctx, (size_t)(argc - optind),
			     (const char *const *)argv + optind, NULL, &ms)) {
		cq_metrics_clear(&ms);
		return cli_fail(cli);
	}
	/* the backend read: RabbitMQ, or Redis for a list or stream */
	cq_backend_ok(cli->set.queue_backend, &redis, why, sizeof(why));
	cq_metrics_source(&ms, redis ? CQ_SRC_REDIS : CQ_SRC_AMQP, cli->ctx);
	ret = cli_put_metrics(cli, &ms);
	for (size_t i = 0; i < ms.nqueues && ret != EX_SOFTWARE; i++) {
		if (ms.queues[i].found)
			continue;
		cli_err(cli, "no queue '%s'", ms.queues[i].name);
		ret = 1;
	}
	cq_metrics_clear(&ms);
	return ret;
}

static const struct cli_verb verbs[] = {
	{ "enqueue", cmd_enqueue, NEED_QUEUE | CATCH_STOP,
	  "publish messages, confirmed", enqueue_usage },
	{ "consume", cmd_consume, NEED_QUEUE | MAY_REDIS | CATCH_STOP,
	  "print messages, or run a command per message", consume_usage },
	{ "peek", cmd_peek, NEED_QUEUE,
	  "show messages without removing them", peek_usage },
	{ "replay-dlq", cmd_replay, NEED_QUEUE | CATCH_STOP,
	  "move dead letters back to their queues", replay_usage },
	{ "declare", cmd_declare, NEED_QUEUE,
	  "declare a durable queue (and its dead-letter queue)", declare_usage },
	{ "purge", cmd_purge, NEED_QUEUE,
	  "remove every ready message of a queue", purge_usage },
	{ "stats", cmd_stats, NEED_QUEUE,
	  "ready messages, consumers and dead letters of queues", stats_usage },
	{ NULL, NULL, 0, NULL, NULL },
};

int main(int argc, char **argv)
{
	static const struct cli_prog prog = {
		.name = "qctl", .verbs = verbs,
		.connect_redis = cq_redis_connect, .connect_amqp = cq_amqp_connect,
		.backend_ok = cq_backend_ok,
		.common_help = qctl_common_help,
	};

	return cli_main(&prog, argc, argv);
}
