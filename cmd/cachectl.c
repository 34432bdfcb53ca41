/* cachectl - the cache toolkit: option parsing and output over libcq. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_MAX_SIZE (64ULL << 20)
#define MAX_TAGS 32

/* ---- shared option helpers ------------------------------------------- */

static bool parse_jitter(struct cli *cli, const char *arg,
			 struct cq_set_opts *o)
{
	if (cq_parse_jitter(arg, &o->jitter_ms, &o->jitter_pct))
		return true;
	cli_usage_error(cli, "--jitter: bad value '%s' (want a duration or a percentage like 10%%)",
			arg);
	return false;
}

static bool parse_ns(struct cli *cli, const char *arg, const char **ns)
{
	if (cq_ns_name_ok(arg)) {
		*ns = arg;
		return true;
	}
	cli_usage_error(cli, "--ns: bad namespace '%s' (1-100 of A-Z a-z 0-9 . _ / -)",
			arg);
	return false;
}

static bool parse_size(struct cli *cli, const char *arg,
		       unsigned long long *max)
{
	if (cq_parse_size(arg, max) && *max > 0)
		return true;
	cli_usage_error(cli, "--max-size: bad size '%s' (want e.g. 512k, 64M)", arg);
	return false;
}

static bool add_tag(struct cli *cli, const char *arg, const char **tags,
		    size_t *n)
{
	if (!*arg) {
		cli_usage_error(cli, "--tag: empty tag");
		return false;
	}
	if (*n == MAX_TAGS) {
		cli_usage_error(cli, "--tag: at most %d tags", MAX_TAGS);
		return false;
	}
	tags[(*n)++] = arg;
	return true;
}

/* The TTL rule of every writing verb: --ttl, else CQ_DEFAULT_TTL, unless
 * --no-ttl or --keep-ttl (where --ttl, if given, is for a missing key).
 * no_ttl_flag: the verb has --no-ttl (fetch has not), for the hint.
 * Returns 0 or 64 after the message. */
static int settle_ttl(struct cli *cli, struct cq_set_opts *o, bool no_ttl_flag)
{
	if (o->no_ttl && o->ttl_ms)
		return cli_usage_error(cli, "--ttl conflicts with --no-ttl");
	if (o->keep_ttl && o->nx)
		return cli_usage_error(cli, "--keep-ttl and --nx exclude each other (a missing key has no TTL to keep)");
	if (o->no_ttl && o->keep_ttl)
		return cli_usage_error(cli, "--no-ttl and --keep-ttl exclude each other");
	if (!o->ttl_ms && !o->no_ttl && !o->keep_ttl)
		o->ttl_ms = cli->set.default_ttl_ms;
	if (!o->ttl_ms && !o->no_ttl && !o->keep_ttl)
		return cli_usage_error(cli, no_ttl_flag ?
				       "--ttl is required (or --no-ttl, or set CQ_DEFAULT_TTL)" :
				       "--ttl is required (or set CQ_DEFAULT_TTL)");
	return 0;
}

static void seconds(long long ms, char *buf, size_t len)
{
	snprintf(buf, len, "%lld.%02llds", ms / 1000, (ms % 1000) / 10);
}

/* A key for a message: quoted, with unprintable bytes escaped. */
static const char *shown(const char *key, size_t len, char *buf, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)key[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
	}
	if (o + 5 >= cap && cap > 4)
		memcpy(buf + cap - 4, "...", 4), o = cap - 1;
	buf[o] = '\0';
	return buf;
}

/* ---- get -------------------------------------------------------------- */

static const char get_usage[] =
	"usage: cachectl get [OPTIONS] KEY...\n"
	"\n"
	"Print the value of each KEY, one per line (a missing key prints an\n"
	"empty line when several keys are asked for), read in one round trip.\n"
	"Exit 1 if any key misses.\n"
	"\n"
	"  -n, --no-newline   write the value bytes only (one KEY; not --json)\n"
	"  -0, --null         end each value with a NUL byte, not a newline\n"
	"                     (not --json)\n"
	"  --ttl              also show the remaining TTL (with --json, or as\n"
	"                     a second TAB-separated column in ms, -1 = none)\n"
	"  --ns NAME          read the keys of namespace NAME\n"
	"  --track            count the hits and misses of the prefix for\n"
	"                     cqstat --track (CQ_TRACK=1)\n"
	"  --json             {\"key\",\"value\"} per key, with \"ttl_ms\" when --ttl\n"
	"                     (the records warm --jsonl reads); value_base64\n"
	"                     instead of value when it is not UTF-8\n";

enum { OPT_GET_TTL = OPT_VERB, OPT_GET_NS, OPT_GET_TRACK };

static void print_value(struct cli *cli, const struct cq_value *v, int n,
			bool raw, bool want_ttl, char sep)
{
	char ttl[32];

	if (!v->found && n == 1)
		return;
	cli_write(cli, v->data, v->len);
	if (want_ttl && v->found) {
		snprintf(ttl, sizeof(ttl), "\t%lld", v->ttl_ms);
		cli_write(cli, ttl, strlen(ttl));
	}
	if (!raw)
		cli_write(cli, &sep, 1);
}

static int cmd_get(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-newline", no_argument, NULL, 'n' },
		{ "null", no_argument, NULL, '0' },
		{ "ttl", no_argument, NULL, OPT_GET_TTL },
		{ "ns", required_argument, NULL, OPT_GET_NS },
		{ "track", no_argument, NULL, OPT_GET_TRACK },
		CLI_COMMON_OPTIONS
	};
	struct cq_get_opts go = { 0 };
	bool raw = false;
	char sep = '\n';
	struct cq_value *vals;
	int c, ret, n, misses = 0;

	while ((c = getopt_long(argc, argv, "n0" CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == 'n')
			raw = true;
		else if (c == '0')
			sep = '\0';
		else if (c == OPT_GET_TTL)
			go.want_ttl = true;
		else if (c == OPT_GET_TRACK)
			cli->set.track = true;
		else if (c == OPT_GET_NS) {
			if (!parse_ns(cli, optarg, &go.ns))
				return EX_USAGE;
		} else if ((ret = cli_common_opt(cli, c, optarg)))
			return ret;
	}
	n = argc - optind;
	if (n < 1)
		return cli_usage_error(cli, "missing KEY");
	if (raw && n > 1)
		return cli_usage_error(cli, "--no-newline takes one KEY");
	if (cli->json && (raw || sep == '\0'))
		return cli_usage_error(cli, "--json excludes %s (it prints one record a line)",
				       raw ? "-n/--no-newline" : "-0/--null");
	ret = cli_ready(cli);
	if (ret)
		return ret;
	vals = calloc((size_t)n, sizeof(*vals));
	if (!vals) {
		cli_err(cli, "out of memory");
		return EX_SOFTWARE;
	}
	if (cq_cache_get(cli->ctx, (size_t)n, (const char *const *)argv + optind,
			 &go, vals)) {
		free(vals);
		return cli_fail(cli);
	}
	for (int i = 0; i < n; i++) {
		if (!vals[i].found)
			misses++;
		if (cli->json)
			cli_put_json_text(cli, cq_json_value_line(argv[optind + i],
					  strlen(argv[optind + i]),
					  vals[i].found ? vals[i].data : NULL,
					  vals[i].len,
					  go.want_ttl ? &vals[i].ttl_ms : NULL));
		else
			print_value(cli, &vals[i], n, raw, go.want_ttl, sep);
		cq_value_clear(&vals[i]);
	}
	free(vals);
	if (misses && n == 1 && !cli->quiet && !cli->json)
		cli_err(cli, "miss: '%s'", argv[optind]);
	return misses ? 1 : 0;
}

/* ---- set -------------------------------------------------------------- */

static const char set_usage[] =
	"usage: cachectl set [OPTIONS] KEY [VALUE|-]\n"
	"\n"
	"Store VALUE (or standard input, byte for byte, when VALUE is - or\n"
	"missing) at KEY.  Every entry gets a TTL unless --no-ttl.\n"
	"\n"
	"  --ttl DUR          time to live (required unless CQ_DEFAULT_TTL)\n"
	"  --jitter DUR|PCT   add up to DUR, or PCT% of the TTL, at random\n"
	"  --no-ttl           store without expiry (rarely right for a cache)\n"
	"  --keep-ttl         keep the key's current TTL; a missing key gets\n"
	"                     --ttl DUR if given, else is not written (exit 1)\n"
	"  --nx               only set a missing key (exit 1 if present)\n"
	"  --xx               only set an existing key (exit 1 if missing)\n"
	"  --tag TAG          record the key under TAG (repeatable)\n"
	"  --ns NAME          write in namespace NAME (its current generation)\n"
	"  --max-size SIZE    refuse larger values with exit 65 (default 64M)\n"
	"  --json             print {\"key\",\"written\",\"bytes\",\"ttl_ms\"}\n";

enum {
	OPT_SET_TTL = OPT_VERB, OPT_SET_JITTER, OPT_SET_NO_TTL, OPT_SET_KEEP_TTL,
	OPT_SET_NX, OPT_SET_XX, OPT_SET_MAX_SIZE, OPT_SET_TAG, OPT_SET_NS,
};

/* Read all of stdin, refusing more than max bytes. */
static int read_stdin(struct cli *cli, unsigned long long max,
		      struct cq_buf *buf)
{
	char chunk[65536];
	ssize_t n;

	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_err(cli, "cannot read standard input: %s",
				strerror(errno));
			return EX_IOERR;
		}
		if (buf->len + (size_t)n > max) {
			cli_err(cli, "value larger than --max-size (%llu bytes)",
				max);
			return EX_DATAERR;
		}
		if (!cq_buf_append(buf, chunk, (size_t)n)) {
			cli_err(cli, "out of memory");
			return EX_SOFTWARE;
		}
	}
	return 0;
}

static int set_opt(struct cli *cli, int c, struct cq_set_opts *o,
		   const char **tags, unsigned long long *max)
{
	switch (c) {
	case OPT_SET_TTL:
		return cli_positive_duration(cli, "--ttl", optarg,
					     &o->ttl_ms) ? 0 : EX_USAGE;
	case OPT_SET_JITTER:
		return parse_jitter(cli, optarg, o) ? 0 : EX_USAGE;
	case OPT_SET_NO_TTL:
		o->no_ttl = true;
		return 0;
	case OPT_SET_KEEP_TTL:
		o->keep_ttl = true;
		return 0;
	case OPT_SET_NX:
		o->nx = true;
		return 0;
	case OPT_SET_XX:
		o->xx = true;
		return 0;
	case OPT_SET_MAX_SIZE:
		return parse_size(cli, optarg, max) ? 0 : EX_USAGE;
	case OPT_SET_TAG:
		return add_tag(cli, optarg, tags, &o->ntags) ? 0 : EX_USAGE;
	case OPT_SET_NS:
		return parse_ns(cli, optarg, &o->ns) ? 0 : EX_USAGE;
	}
	return cli_common_opt(cli, c, optarg);
}

/* {"key":K,"written":B,"bytes":N,"ttl_ms":T}: T the TTL written, null
 * for none, absent when the key kept its TTL or was not written. */
static void set_print_json(struct cli *cli, const char *key, bool written,
			   size_t len, const long long *ttl)
{
	struct json_t *rec = cq_json_add_bytes(cq_json_pack("{}"), "key", key,
					       strlen(key));

	rec = cq_json_add(rec, "{s:b,s:I}", "written", written, "bytes",
			  (long long)len);
	if (written && ttl && *ttl > 0)
		rec = cq_json_add(rec, "{s:I}", "ttl_ms", *ttl);
	else if (written && ttl)
		rec = cq_json_add(rec, "{s:n}", "ttl_ms");
	cli_put_json(cli, rec);
}

static int cmd_set(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ttl", required_argument, NULL, OPT_SET_TTL },
		{ "jitter", required_argument, NULL, OPT_SET_JITTER },
		{ "no-ttl", no_argument, NULL, OPT_SET_NO_TTL },
		{ "keep-ttl", no_argument, NULL, OPT_SET_KEEP_TTL },
		{ "nx", no_argument, NULL, OPT_SET_NX },
		{ "xx", no_argument, NULL, OPT_SET_XX },
		{ "max-size", required_argument, NULL, OPT_SET_MAX_SIZE },
		{ "tag", required_argument, NULL, OPT_SET_TAG },
		{ "ns", required_argument, NULL, OPT_SET_NS },
		CLI_COMMON_OPTIONS
	};
	const char *tags[MAX_TAGS];
	struct cq_set_opts o = { .tags = tags };
	unsigned long long max = DEFAULT_MAX_SIZE;
	struct cq_buf in = { 0 };
	const char *key, *val;
	size_t len;
	long long ttl;
	bool written;
	int c, ret;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1)
		if ((ret = set_opt(cli, c, &o, tags, &max)))
			return ret;
	if (argc - optind < 1)
		return cli_usage_error(cli, "missing KEY");
	if (argc - optind > 2)
		return cli_usage_error(cli, "too many arguments (quote a VALUE with spaces)");
	if (o.nx && o.xx)
		return cli_usage_error(cli, "--nx and --xx exclude each other");
	if ((ret = settle_ttl(cli, &o, true)))
		return ret;
	key = argv[optind];
	if (!*key)
		return cli_usage_error(cli, "empty KEY");
	val = argc - optind == 2 ? argv[optind + 1] : "-";
	if (strcmp(val, "-") == 0) {
		ret = read_stdin(cli, max, &in);
		if (ret)
			goto out;
		val = in.data ? in.data : "";
		len = in.len;
	} else {
		len = strlen(val);
		if (len > max) {
			cli_err(cli, "value larger than --max-size (%llu bytes)", max);
			ret = EX_DATAERR;
			goto out;
		}
	}
	ret = cli_ready(cli);
	if (ret)
		goto out;
	if (cq_cache_set(cli->ctx, key, strlen(key), val, len, &o, &written,
			 &ttl)) {
		ret = cli_fail(cli);
		goto out;
	}
	if (cli->json)
		set_print_json(cli, key, written, len, ttl < 0 ? NULL : &ttl);
	ret = written ? 0 : 1;
	if (!written && !cli->quiet)
		cli_err(cli, "not set: '%s' %s", key, o.nx ? "exists" :
			o.keep_ttl && !o.xx ?
			"is missing (--keep-ttl writes no key without expiry; add --ttl DUR for a missing key)" :
			"is missing");
out:
	cq_buf_free(&in);
	return ret;
}

/* ---- invalidate ------------------------------------------------------- */

static const char invalidate_usage[] =
	"usage: cachectl invalidate [OPTIONS] KEY...\n"
	"       cachectl invalidate [OPTIONS] --pattern GLOB\n"
	"       cachectl invalidate [OPTIONS] --tag TAG\n"
	"       cachectl invalidate [OPTIONS] --ns NAME\n"
	"\n"
	"Delete cache entries with UNLINK (never KEYS, never a blocking DEL).\n"
	"Exit 1 when nothing matched.\n"
	"\n"
	"  --pattern GLOB     every key matching GLOB under the prefix: SCAN in\n"
	"                     batches, each batch's UNLINKs pipelined\n"
	"  --tag TAG          every key recorded under TAG, then the tag set\n"
	"  --ns NAME          alone: bump the namespace's generation (O(1));\n"
	"                     with KEY or --pattern: keys of that namespace\n"
	"  --dry-run          list the keys instead of deleting them\n"
	"  -0, --null         with --dry-run, end each key with a NUL byte\n"
	"  --rate N           delete at most N keys a second\n"
	"  --count N          SCAN/SSCAN COUNT hint (default: adapts, 100-5000)\n"
	"  --json             the summary as one JSON object on stdout\n"
	"\n"
	"SIGTERM or SIGINT (--pattern, --tag): delete the batch scanned, scan no\n"
	"further, report, exit 75.\n";

enum {
	OPT_INV_PATTERN = OPT_VERB, OPT_INV_TAG, OPT_INV_NS, OPT_INV_DRY_RUN,
	OPT_INV_RATE, OPT_INV_COUNT,
};

struct inv_out {
	struct cli *cli;
	char sep;
};

static bool inv_key(void *arg, const char *key, size_t len)
{
	struct inv_out *io = arg;

	return cli_write(io->cli, key, len) && cli_write(io->cli, &io->sep, 1);
}

static void inv_progress(void *arg, const struct cq_inval_stats *st)
{
	struct inv_out *io = arg;
	char t[32];

	seconds(st->elapsed_ms, t, sizeof(t));
	cli_progress(io->cli, "invalidating: %llu key%s scanned, %llu deleted, %s",
		     (unsigned long long)st->scanned, cli_s(st->scanned),
		     (unsigned long long)st->deleted, t);
}

static int inv_summary(struct cli *cli, const struct cq_inval_stats *st,
		       const char *ns, bool dry_run)
{
	char t[32];
	unsigned long long n = dry_run ? st->matched : st->deleted;

	seconds(st->elapsed_ms, t, sizeof(t));
	if (cli->json) {
		struct json_t *rec = cq_json_pack("{s:I,s:I,s:f}",
					dry_run ? "matched" : "invalidated",
					(long long)n, "scanned",
					(long long)st->scanned, "seconds",
					(double)st->elapsed_ms / 1000.0);

		if (ns)
			rec = cq_json_add(rec, "{s:s?}", "generation",
					  st->generation[0] ? st->generation :
					  NULL);
		if (st->stopped)
			rec = cq_json_add(rec, "{s:b}", "stopped", 1);
		cli_put_json(cli, rec);
	} else if (!cli->quiet && ns) {
		fprintf(stderr, "%s: invalidate: namespace '%s' %s generation %s\n",
			cli->prog, ns, dry_run ? "is at" : "moved to",
			st->generation[0] ? st->generation : "(none yet)");
	} else if (!cli->quiet) {
		fprintf(stderr, "%s %llu key%s in %s\n",
			dry_run ? "would invalidate" : "invalidated", n,
			cli_s(n), t);
	}
	if (st->stopped)
		return EX_TEMPFAIL;
	return ns || n ? 0 : 1;
}

static int cmd_invalidate(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pattern", required_argument, NULL, OPT_INV_PATTERN },
		{ "tag", required_argument, NULL, OPT_INV_TAG },
		{ "ns", required_argument, NULL, OPT_INV_NS },
		{ "dry-run", no_argument, NULL, OPT_INV_DRY_RUN },
		{ "null", no_argument, NULL, '0' },
		{ "rate", required_argument, NULL, OPT_INV_RATE },
		{ "count", required_argument, NULL, OPT_INV_COUNT },
		CLI_COMMON_OPTIONS
	};
	struct inv_out io = { .cli = cli, .sep = '\n' };
	struct cq_inval_opts o = { .on_key = inv_key, .arg = &io };
	struct cq_inval_stats st;
	const char *pattern = NULL, *tag = NULL;
	unsigned long long v;
	int c, ret, n;
	enum cq_err e;

	while ((c = getopt_long(argc, argv, "0" CLI_COMMON_SHORT, opts, NULL)) != -1) {
		switch (c) {
		case OPT_INV_PATTERN:
			pattern = optarg;
			break;
		case OPT_INV_TAG:
			tag = optarg;
			break;
		case OPT_INV_NS:
			if (!parse_ns(cli, optarg, &o.ns))
				return EX_USAGE;
			break;
		case OPT_INV_DRY_RUN:
			o.dry_run = true;
			break;
		case '0':
			io.sep = '\0';
			break;
		case OPT_INV_RATE:
			if (!cli_uint(cli, "--rate", optarg, 1, 100000000, &v))
				return EX_USAGE;
			o.rate = (double)v;
			break;
		case OPT_INV_COUNT:
			if (!cli_uint(cli, "--count", optarg, 1, 1000000, &v))
				return EX_USAGE;
			o.count = (size_t)v;
			break;
		default:
			if ((ret = cli_common_opt(cli, c, optarg)))
				return ret;
		}
	}
	n = argc - optind;
	if ((pattern != NULL) + (tag != NULL) + (n > 0) > 1)
		return cli_usage_error(cli, "give KEYs, --pattern or --tag, not several");
	if (!pattern && !tag && !n && !o.ns)
		return cli_usage_error(cli, "missing KEY (or --pattern, --tag, --ns)");
	if (tag && o.ns)
		return cli_usage_error(cli, "--tag and --ns exclude each other (tags hold full key names)");
	if (pattern && !*pattern)
		return cli_usage_error(cli, "--pattern: empty pattern");
	if (tag && !*tag)
		return cli_usage_error(cli, "--tag: empty tag");
	if ((ret = cli_ready(cli)))
		return ret;
	if (cli_progress_wanted(cli) && (pattern || tag))
		o.on_progress = inv_progress;
	if (pattern)
		e = cq_invalidate_pattern(cli->ctx, pattern, &o, &st);
	else if (tag)
		e = cq_invalidate_tag(cli->ctx, tag, &o, &st);
	else if (n)
		e = cq_invalidate_keys(cli->ctx, (size_t)n,
				       (const char *const *)argv + optind, &o, &st);
	else
		e = cq_invalidate_ns(cli->ctx, o.ns, &o, &st);
	cli_progress_clear(cli);
	if (e && !(e == CQ_ERR_IO && cli->out_failed))
		return cli_fail(cli);
	if (e)
		return EX_IOERR;
	if (st.stopped)
		cli_err(cli, "stopped by %s: the keys not scanned yet are left",
			cq_stop_name());
	return inv_summary(cli, &st, !pattern && !tag && !n ? o.ns : NULL,
			   o.dry_run);
}

/* ---- warm ------------------------------------------------------------- */

static const char warm_usage[] =
	"usage: cachectl warm [OPTIONS] [FILE|-]\n"
	"       cachectl warm [OPTIONS] --keys FILE --exec CMD [--jobs N]\n"
	"\n"
	"Load key<TAB>value lines (or -0 pairs, or --jsonl records) into the\n"
	"cache, pipelined, each key with the TTL plus jitter.  Blank lines are\n"
	"skipped; bad lines (a CRLF line too) are reported and skipped.\n"
	"Exit 65 if a line was bad, 75 if a write or a command failed, 77 if\n"
	"Redis refused a write for permission (the worst wins: 77, then 75,\n"
	"then 65); the summary goes to stderr.\n"
	"\n"
	"  --ttl DUR          time to live (required unless CQ_DEFAULT_TTL)\n"
	"  --jitter DUR|PCT   add up to DUR, or PCT% of the TTL, at random\n"
	"  --no-ttl           store without expiry\n"
	"  --nx               fill only missing keys\n"
	"  -0, --null         NUL-separated key and value fields (binary data)\n"
	"  --jsonl            {\"key\",\"value\",\"ttl\",\"tags\"} records\n"
	"  --tag TAG          record every key under TAG (repeatable)\n"
	"  --ns NAME          write in namespace NAME\n"
	"  --rate N           at most N writes a second\n"
	"  --window N         commands in flight (default 1000)\n"
	"  --max-size SIZE    longest value (default 64M); longer lines are bad\n"
	"  --once NAME        skip the run if another one holding NAME is going\n"
	"  --once-ttl DUR     lifetime of that lock, renewed while running (60s)\n"
	"  --keys FILE        keys, one per line (-0: NUL-separated), for --exec\n"
	"  --exec CMD         run sh -c CMD for each missing key ($1 and CQ_KEY\n"
	"                     hold the key) and cache its stdout if it exits 0\n"
	"  --jobs N           commands at a time with --exec (default 1)\n"
	"  --pass-env         let --exec commands inherit CQ_REDIS_URL,\n"
	"                     CQ_AMQP_URL, CQ_REDIS_PASSWORD, CQ_PASSWORD_FILE\n"
	"                     and the CQ_SENTINEL_ login\n"
	"  --json             the summary as one JSON object on stdout\n"
	"\n"
	"SIGTERM or SIGINT: stop reading, settle the writes in flight, stop the\n"
	"commands' process groups, release --once, report, exit 75.\n";

enum {
	OPT_WARM_TTL = OPT_VERB, OPT_WARM_JITTER, OPT_WARM_NO_TTL, OPT_WARM_NX,
	OPT_WARM_JSONL, OPT_WARM_TAG, OPT_WARM_NS, OPT_WARM_RATE,
	OPT_WARM_WINDOW, OPT_WARM_MAX_SIZE, OPT_WARM_ONCE, OPT_WARM_ONCE_TTL,
	OPT_WARM_KEYS, OPT_WARM_EXEC, OPT_WARM_JOBS, OPT_WARM_PASS_ENV,
};

struct warm_out {
	struct cli *cli;
	const char *unit;	/* "line" or "record" */
};

static void warm_bad(void *arg, uint64_t recno, const char *msg)
{
	struct warm_out *wo = arg;

	cli_err(wo->cli, "%s %llu: %s", wo->unit, (unsigned long long)recno, msg);
}

static void warm_fail(void *arg, uint64_t recno, const char *key,
		      size_t keylen, const char *msg)
{
	struct warm_out *wo = arg;
	char k[200];

	if (key)
		cli_err(wo->cli, "%s %llu: key '%s': %s", wo->unit,
			(unsigned long long)recno, shown(key, keylen, k, sizeof(k)),
			msg);
	else if (recno)
		cli_err(wo->cli, "%s %llu: %s", wo->unit,
			(unsigned long long)recno, msg);
	else
		cli_err(wo->cli, "%s", msg);
}

static void warm_progress(void *arg, const struct cq_warm_stats *st)
{
	struct warm_out *wo = arg;
	char t[32];

	seconds(st->elapsed_ms, t, sizeof(t));
	cli_progress(wo->cli, "warming: %llu %s%s read, %llu key%s warmed, %s",
		     (unsigned long long)st->records, wo->unit,
		     cli_s(st->records), (unsigned long long)st->warmed,
		     cli_s(st->warmed), t);
}

static int warm_opt(struct cli *cli, int c, struct cq_warm_opts *o,
		    const char **tags, const char **keys)
{
	unsigned long long v;

	switch (c) {
	case OPT_WARM_TTL:
		return cli_positive_duration(cli, "--ttl", optarg,
					     &o->set.ttl_ms) ? 0 : EX_USAGE;
	case OPT_WARM_JITTER:
		return parse_jitter(cli, optarg, &o->set) ? 0 : EX_USAGE;
	case OPT_WARM_NO_TTL:
		o->set.no_ttl = true;
		return 0;
	case OPT_WARM_NX:
		o->set.nx = true;
		return 0;
	case '0':
		o->format = CQ_WARM_NUL;
		return 0;
	case OPT_WARM_JSONL:
		o->format = CQ_WARM_JSONL;
		return 0;
	case OPT_WARM_TAG:
		return add_tag(cli, optarg, tags, &o->set.ntags) ? 0 : EX_USAGE;
	case OPT_WARM_NS:
		return parse_ns(cli, optarg, &o->set.ns) ? 0 : EX_USAGE;
	case OPT_WARM_RATE:
		if (!cli_uint(cli, "--rate", optarg, 1, 100000000, &v))
			return EX_USAGE;
		o->rate = (double)v;
		return 0;
	case OPT_WARM_WINDOW:
		if (!cli_uint(cli, "--window", optarg, 1, 1000000, &v))
			return EX_USAGE;
		o->window = (size_t)v;
		return 0;
	case OPT_WARM_MAX_SIZE:
		return parse_size(cli, optarg, &o->max_size) ? 0 : EX_USAGE;
	case OPT_WARM_ONCE:
		if (!*optarg)
			return cli_usage_error(cli, "--once: empty name");
		o->once = optarg;
		return 0;
	case OPT_WARM_ONCE_TTL:
		return cli_positive_duration(cli, "--once-ttl", optarg,
					     &o->once_ttl_ms) ? 0 : EX_USAGE;
	case OPT_WARM_KEYS:
		*keys = optarg;
		return 0;
	case OPT_WARM_EXEC:
		if (!*optarg)
			return cli_usage_error(cli, "--exec: empty command");
		o->exec = optarg;
		return 0;
	case OPT_WARM_JOBS:
		if (!cli_uint(cli, "--jobs", optarg, 1, 1024, &v))
			return EX_USAGE;
		o->jobs = (unsigned)v;
		return 0;
	case OPT_WARM_PASS_ENV:
		cli->set.pass_env = true;
		return 0;
	}
	return cli_common_opt(cli, c, optarg);
}

static int warm_summary(struct cli *cli, const struct cq_warm_stats *st)
{
	char t[32];

	seconds(st->elapsed_ms, t, sizeof(t));
	if (cli->json) {
		struct json_t *o;

		o = cq_json_pack("{s:I,s:I,s:I,s:I,s:I}",
				 "warmed", (long long)st->warmed,
				 "skipped", (long long)st->skipped,
				 "bad", (long long)st->bad,
				 "failed", (long long)st->failed,
				 "denied", (long long)st->denied);
		/* blank lines only when there were some: the record stays
		 * what it was for input without them */
		if (st->blank)
			o = cq_json_add(o, "{s:I}", "blank", (long long)st->blank);
		if (st->wrong_type)
			o = cq_json_add(o, "{s:I}", "wrong_type",
					(long long)st->wrong_type);
		o = cq_json_add(o, "{s:I,s:f}", "records", (long long)st->records,
				"seconds", (double)st->elapsed_ms / 1000.0);
		/* said only when they hold: a run --once skipped, a run a
		 * signal ended */
		if (st->locked_out)
			o = cq_json_add(o, "{s:b}", "locked_out", 1);
		if (st->stopped)
			o = cq_json_add(o, "{s:b}", "stopped", 1);
		cli_put_json(cli, o);
	} else if (!cli->quiet) {
		fprintf(stderr, "warmed %llu key%s in %s (%llu skipped, %llu failed",
			(unsigned long long)st->warmed, cli_s(st->warmed), t,
			(unsigned long long)(st->skipped + st->bad),
			(unsigned long long)st->failed);
		if (st->blank)
			fprintf(stderr, ", %llu blank",
				(unsigned long long)st->blank);
		fputs(")\n", stderr);
	}
	/* a run stopped early is worth retrying, as a failed write is; a
	 * key of another type is bad data, as a bad line is */
	return cli_worse(cli_worse(st->denied ? EX_NOPERM : 0,
				   st->failed > st->denied + st->wrong_type ||
				   st->stopped ? EX_TEMPFAIL : 0),
			 st->bad || st->wrong_type ? EX_DATAERR : 0);
}

/* After a run that had to stop: how many records read were not written
 * (their replies never came), and where the unread input starts, so
 * that a re-run can pick up from there. */
static void warm_not_written(struct cli *cli, const struct cq_warm_stats *st,
			     const char *unit)
{
	cli_err(cli, "%llu key%s not confirmed written; %ss from %llu on not read",
		(unsigned long long)st->unconfirmed, cli_s(st->unconfirmed), unit,
		(unsigned long long)st->records + 1);
}

static int open_input(struct cli *cli, const char *path, int *fd)
{
	*fd = STDIN_FILENO;
	if (!path || strcmp(path, "-") == 0)
		return 0;
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	cli_err(cli, "cannot open '%s': %s", path, strerror(errno));
	return EX_IOERR;
}

static int cmd_warm(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ttl", required_argument, NULL, OPT_WARM_TTL },
		{ "jitter", required_argument, NULL, OPT_WARM_JITTER },
		{ "no-ttl", no_argument, NULL, OPT_WARM_NO_TTL },
		{ "nx", no_argument, NULL, OPT_WARM_NX },
		{ "null", no_argument, NULL, '0' },
		{ "jsonl", no_argument, NULL, OPT_WARM_JSONL },
		{ "tag", required_argument, NULL, OPT_WARM_TAG },
		{ "ns", required_argument, NULL, OPT_WARM_NS },
		{ "rate", required_argument, NULL, OPT_WARM_RATE },
		{ "window", required_argument, NULL, OPT_WARM_WINDOW },
		{ "max-size", required_argument, NULL, OPT_WARM_MAX_SIZE },
		{ "once", required_argument, NULL, OPT_WARM_ONCE },
		{ "once-ttl", required_argument, NULL, OPT_WARM_ONCE_TTL },
		{ "keys", required_argument, NULL, OPT_WARM_KEYS },
		{ "exec", required_argument, NULL, OPT_WARM_EXEC },
		{ "jobs", required_argument, NULL, OPT_WARM_JOBS },
		{ "pass-env", no_argument, NULL, OPT_WARM_PASS_ENV },
		CLI_COMMON_OPTIONS
	};
	const char *tags[MAX_TAGS], *keys = NULL, *input;
	struct warm_out wo = { .cli = cli, .unit = "line" };
	struct cq_warm_opts o = {
		.set.tags = tags, .on_bad = warm_bad, .on_fail = warm_fail,
		.arg = &wo,
	};
	struct cq_warm_stats st;
	int c, ret, fd;
	enum cq_err e;

	while ((c = getopt_long(argc, argv, "0" CLI_COMMON_SHORT, opts, NULL)) != -1)
		if ((ret = warm_opt(cli, c, &o, tags, &keys)))
			return ret;
	if (argc - optind > 1)
		return cli_usage_error(cli, "too many arguments (one FILE)");
	if (!o.exec != !keys)
		return cli_usage_error(cli, "--keys and --exec go together");
	if (keys && argc - optind)
		return cli_usage_error(cli, "--keys FILE replaces the input FILE");
	if (o.exec && o.format == CQ_WARM_JSONL)
		return cli_usage_error(cli, "--jsonl does not apply to --keys");
	if (o.jobs && !o.exec)
		return cli_usage_error(cli, "--jobs applies to --exec only");
	if ((ret = settle_ttl(cli, &o.set, true)))
		return ret;
	if (o.format == CQ_WARM_NUL)
		wo.unit = "record";
	input = keys ? keys : argc - optind ? argv[optind] : "-";
	if ((ret = open_input(cli, input, &fd)))
		return ret;
	if ((ret = cli_ready(cli)))
		goto out;
	if (cli_progress_wanted(cli))
		o.on_progress = warm_progress;
	e = cq_warm(cli->ctx, fd, &o, &st);
	cli_progress_clear(cli);
	if (st.locked_out) {
		if (!cli->quiet)
			cli_err(cli, "another run holds --once '%s'; not warming",
				o.once);
		if (cli->json)
			warm_summary(cli, &st);
		ret = 0;
		goto out;
	}
	if (!e && st.stopped) {
		cli_err(cli, "stopped by %s", cq_stop_name());
		warm_not_written(cli, &st, wo.unit);
	}
	if (e) {
		ret = cli_fail(cli);
		warm_not_written(cli, &st, wo.unit);
		ret = cli_worse(ret, warm_summary(cli, &st));
		goto out;
	}
	ret = warm_summary(cli, &st);
out:
	if (fd != STDIN_FILENO)
		close(fd);
	return ret;
}

/* ---- fetch ------------------------------------------------------------ */

static const char fetch_usage[] =
	"usage: cachectl fetch [OPTIONS] KEY -- CMD [ARG...]\n"
	"\n"
	"Print the cached value of KEY; on a miss run CMD, cache its stdout if\n"
	"it exits 0, and print it.  One caller runs CMD while the others wait\n"
	"for its value.  A failed CMD's output is never cached; its exit code\n"
	"is passed through.  If Redis is unreachable CMD runs uncached with a\n"
	"warning (exit 69 instead with --fail-closed).\n"
	"\n"
	"  --ttl DUR          time to live (required unless CQ_DEFAULT_TTL)\n"
	"  --jitter DUR|PCT   add up to DUR, or PCT% of the TTL, at random\n"
	"  --ns NAME          in namespace NAME\n"
	"  --lock-ttl DUR     lifetime of the compute lock (default 30s),\n"
	"                     renewed while CMD runs\n"
	"  --wait DUR         how long to wait for another caller's value\n"
	"                     (default: the lock TTL), then exit 75\n"
	"  --stale DUR        keep values DUR past their TTL; serve such a stale\n"
	"                     value at once and refresh it in the background\n"
	"  --beta F           XFetch: refresh early, with a probability rising\n"
	"                     toward expiry (1.0 is the usual value)\n"
	"  --fail-closed      exit 69 when Redis is unreachable\n"
	"  --max-size SIZE    largest output cached (default 64M)\n"
	"  --track            count the hit or miss of the prefix for\n"
	"                     cqstat --track (CQ_TRACK=1)\n"
	"  --pass-env         let CMD inherit CQ_REDIS_URL, CQ_AMQP_URL,\n"
	"                     CQ_REDIS_PASSWORD, CQ_PASSWORD_FILE and the\n"
	"                     CQ_SENTINEL_ login\n"
	"\n"
	"SIGTERM or SIGINT: stop CMD's process group, cache nothing, release\n"
	"the lock, exit 75.\n";

enum {
	OPT_FETCH_TTL = OPT_VERB, OPT_FETCH_JITTER, OPT_FETCH_NS,
	OPT_FETCH_LOCK_TTL, OPT_FETCH_WAIT, OPT_FETCH_STALE, OPT_FETCH_BETA,
	OPT_FETCH_FAIL_CLOSED, OPT_FETCH_MAX_SIZE, OPT_FETCH_TRACK,
	OPT_FETCH_PASS_ENV,
};

static bool fetch_sink(void *arg, const void *p, size_t n)
{
	return cli_write(arg, p, n);
}

static bool parse_beta(struct cli *cli, const char *arg, double *beta)
{
	char *end;

	errno = 0;
	*beta = strtod(arg, &end);
	if (!errno && end != arg && !*end && *beta > 0 && *beta <= 100)
		return true;
	cli_usage_error(cli, "--beta: bad factor '%s' (want a number in (0, 100], e.g. 1.0)",
			arg);
	return false;
}

static int fetch_opt(struct cli *cli, int c, struct cq_fetch_opts *o)
{
	switch (c) {
	case OPT_FETCH_TTL:
		return cli_positive_duration(cli, "--ttl", optarg,
					     &o->set.ttl_ms) ? 0 : EX_USAGE;
	case OPT_FETCH_JITTER:
		return parse_jitter(cli, optarg, &o->set) ? 0 : EX_USAGE;
	case OPT_FETCH_NS:
		return parse_ns(cli, optarg, &o->ns) ? 0 : EX_USAGE;
	case OPT_FETCH_LOCK_TTL:
		return cli_positive_duration(cli, "--lock-ttl", optarg,
					     &o->lock_ttl_ms) ? 0 : EX_USAGE;
	case OPT_FETCH_WAIT:
		return cli_positive_duration(cli, "--wait", optarg,
					     &o->wait_ms) ? 0 : EX_USAGE;
	case OPT_FETCH_STALE:
		return cli_positive_duration(cli, "--stale", optarg,
					     &o->stale_ms) ? 0 : EX_USAGE;
	case OPT_FETCH_BETA:
		return parse_beta(cli, optarg, &o->beta) ? 0 : EX_USAGE;
	case OPT_FETCH_FAIL_CLOSED:
		o->fail_closed = true;
		return 0;
	case OPT_FETCH_MAX_SIZE:
		return parse_size(cli, optarg, &o->max_size) ? 0 : EX_USAGE;
	case OPT_FETCH_TRACK:
		cli->set.track = true;
		return 0;
	case OPT_FETCH_PASS_ENV:
		cli->set.pass_env = true;
		return 0;
	}
	return cli_common_opt(cli, c, optarg);
}

static int cmd_fetch(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ttl", required_argument, NULL, OPT_FETCH_TTL },
		{ "jitter", required_argument, NULL, OPT_FETCH_JITTER },
		{ "ns", required_argument, NULL, OPT_FETCH_NS },
		{ "lock-ttl", required_argument, NULL, OPT_FETCH_LOCK_TTL },
		{ "wait", required_argument, NULL, OPT_FETCH_WAIT },
		{ "stale", required_argument, NULL, OPT_FETCH_STALE },
		{ "beta", required_argument, NULL, OPT_FETCH_BETA },
		{ "fail-closed", no_argument, NULL, OPT_FETCH_FAIL_CLOSED },
		{ "max-size", required_argument, NULL, OPT_FETCH_MAX_SIZE },
		{ "track", no_argument, NULL, OPT_FETCH_TRACK },
		{ "pass-env", no_argument, NULL, OPT_FETCH_PASS_ENV },
		CLI_COMMON_OPTIONS
	};
	struct cq_fetch_opts o = { .sink = fetch_sink, .arg = cli };
	struct cq_fetch_result res;
	int c, ret, dd, nopt;
	const char *key;

	/* options and KEY before "--", the command after it */
	for (dd = 1; dd < argc && strcmp(argv[dd], "--") != 0; dd++)
		;
	nopt = dd;
	while ((c = getopt_long(nopt, argv, CLI_COMMON_SHORT, opts, NULL)) != -1)
		if ((ret = fetch_opt(cli, c, &o)))
			return ret;
	if (nopt - optind < 1)
		return cli_usage_error(cli, "missing KEY");
	if (dd >= argc - 1)
		return cli_usage_error(cli, "missing -- CMD [ARG...] after KEY");
	if (nopt - optind > 1)
		return cli_usage_error(cli, "one KEY, then -- CMD [ARG...]");
	key = argv[optind];
	if (!*key)
		return cli_usage_error(cli, "empty KEY");
	if ((ret = settle_ttl(cli, &o.set, false)))
		return ret;
	o.argv = argv + dd + 1;
	if ((ret = cli_ready(cli)))
		return ret;
	if (cq_fetch(cli->ctx, key, &o, &res)) {
		if (res.warning[0])
			cli_err(cli, "warning: %s", res.warning);
		return cli_fail(cli);	/* 127 and 126 for a command not run */
	}
	if (res.warning[0])
		cli_err(cli, "warning: %s", res.warning);
	return res.exit_code;
}

/* ---- the verb table --------------------------------------------------- */

/* ---- stats ------------------------------------------------------------ */

static const char stats_usage[] =
	"usage: cachectl stats [OPTIONS]\n"
	"\n"
	"Print the cache figures of Redis since it started, one 'name value'\n"
	"per line (see cqstat(1) for the names, and cqstat for figures over\n"
	"an interval): hit rate, ops/s, memory, evictions, keys without TTL,\n"
	"and with --track the per-prefix hit rates that get --track and\n"
	"fetch --track count.\n"
	"\n"
	"  --track            also read the per-prefix counters (CQ_TRACK=1)\n"
	"  --json             one JSON object\n";

static int cmd_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "track", no_argument, NULL, OPT_VERB },
		CLI_COMMON_OPTIONS
	};
	struct cq_cache_sample s;
	struct cq_metrics ms;
	int c, ret;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == OPT_VERB)
			cli->set.track = true;
		else if ((ret = cli_common_opt(cli, c, optarg)))
			return ret;
	}
	if (optind < argc)
		return cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	ret = cli_ready(cli);
	if (ret || cq_cache_sample(cli->ctx, &s))
		return ret ? ret : cli_fail(cli);
	cq_metrics_init(&ms);
	ms.time_ms = cq_wall_ms();
	cq_metrics_source(&ms, CQ_SRC_REDIS, cli->ctx);
	ret = cq_cache_figures(NULL, &s, &ms) ? cli_put_metrics(cli, &ms) :
	      cli_fatal(cli, EX_SOFTWARE, "out of memory");
	cq_metrics_clear(&ms);
	cq_cache_sample_clear(&s);
	return ret;
}

static const struct cli_verb verbs[] = {
	{ "get", cmd_get, NEED_REDIS, "print cached values", get_usage },
	{ "set", cmd_set, NEED_REDIS, "store a value with a TTL", set_usage },
	{ "invalidate", cmd_invalidate, NEED_REDIS | CATCH_STOP,
	  "delete keys by name, pattern, tag or namespace", invalidate_usage },
	{ "warm", cmd_warm, NEED_REDIS | CATCH_STOP, "bulk-load values or compute missing ones",
	  warm_usage },
	/* an unreachable Redis runs CMD uncached */
	{ "fetch", cmd_fetch, TRY_REDIS | CATCH_STOP, "cache-aside around a command", fetch_usage },
	{ "stats", cmd_stats, NEED_REDIS, "cache hit rate, memory, keys", stats_usage },
	{ NULL, NULL, 0, NULL, NULL },
};

int main(int argc, char **argv)
{
	static const struct cli_prog prog = {
		.name = "cachectl", .verbs = verbs,
		.connect_redis = cq_redis_connect, .connect_amqp = NULL,
	};

	return cli_main(&prog, argc, argv);
}
