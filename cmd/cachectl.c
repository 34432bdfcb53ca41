/* cachectl - the cache toolkit: option parsing and output over libcq. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define DEFAULT_MAX_SIZE (64ULL << 20)

/* ---- get -------------------------------------------------------------- */

static const char get_usage[] =
	"usage: cachectl get [OPTIONS] KEY...\n"
	"\n"
	"Print the value of each KEY, one per line (a missing key prints an\n"
	"empty line when several keys are asked for).  Exit 1 if any key misses.\n"
	"\n"
	"  -n, --no-newline   write the value bytes only (one KEY)\n"
	"  -0, --null         end each value with a NUL byte, not a newline\n"
	"  --ttl              also show the remaining TTL (with --json, or as\n"
	"                     a second TAB-separated column in ms, -1 = none)\n";

enum { OPT_GET_TTL = OPT_VERB };

static bool print_json_value(struct cli *cli, const char *key,
			     const struct cq_value *v, bool ttl);

static int cmd_get(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-newline", no_argument, NULL, 'n' },
		{ "null", no_argument, NULL, '0' },
		{ "ttl", no_argument, NULL, OPT_GET_TTL },
		CLI_COMMON_OPTIONS
	};
	bool raw = false, want_ttl = false;
	char sep = '\n';
	struct cq_value *vals;
	int c, ret, n, misses = 0;

	while ((c = getopt_long(argc, argv, "n0" CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == 'n')
			raw = true;
		else if (c == '0')
			sep = '\0';
		else if (c == OPT_GET_TTL)
			want_ttl = true;
		else
			cli_common_opt(cli, c, optarg);
	}
	n = argc - optind;
	if (n < 1)
		return cli_usage_error(cli, "missing KEY");
	if (raw && n > 1)
		return cli_usage_error(cli, "--no-newline takes one KEY");
	ret = cli_ready(cli);
	if (ret)
		return ret;
	vals = calloc((size_t)n, sizeof(*vals));
	if (!vals)
		return cli_usage_error(cli, "out of memory");
	struct cq_get_opts go = { .want_ttl = want_ttl };

	if (cq_cache_get(cli->ctx, (size_t)n, (const char *const *)argv + optind,
			 &go, vals)) {
		free(vals);
		return cli_fail(cli);
	}
	for (int i = 0; i < n; i++) {
		struct cq_value *v = &vals[i];
		char ttl[32];

		if (!v->found)
			misses++;
		if (cli->json) {
			print_json_value(cli, argv[optind + i], v, want_ttl);
		} else if (v->found || n > 1) {
			cli_write(cli, v->data, v->len);
			if (want_ttl && v->found) {
				snprintf(ttl, sizeof(ttl), "\t%lld", v->ttl_ms);
				cli_write(cli, ttl, strlen(ttl));
			}
			if (!raw)
				cli_write(cli, &sep, 1);
		}
		cq_value_clear(v);
	}
	free(vals);
	if (misses && n == 1 && !cli->quiet && !cli->json)
		cli_err(cli, "miss: '%s'", argv[optind]);
	return misses ? 1 : 0;
}

/* {"key":...,"value":...,"ttl":...}; a value that is not valid UTF-8 is
 * given as "value_base64" instead. */
static bool print_json_value(struct cli *cli, const char *key,
			     const struct cq_value *v, bool ttl)
{
	char *line = cq_json_value_line(key, strlen(key), v->found ? v->data : NULL,
					v->len, ttl ? &v->ttl_ms : NULL);
	bool ok;

	if (!line)
		return false;
	ok = cli_write(cli, line, strlen(line)) && cli_write(cli, "\n", 1);
	free(line);
	return ok;
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
	"  --keep-ttl         keep the key's current TTL\n"
	"  --nx               only set a missing key (exit 1 if present)\n"
	"  --xx               only set an existing key (exit 1 if missing)\n"
	"  --max-size SIZE    refuse larger values (default 64M)\n";

enum {
	OPT_SET_TTL = OPT_VERB, OPT_SET_JITTER, OPT_SET_NO_TTL, OPT_SET_KEEP_TTL,
	OPT_SET_NX, OPT_SET_XX, OPT_SET_MAX_SIZE,
};

/* Read all of stdin, refusing more than max bytes. */
static int read_stdin(struct cli *cli, unsigned long long max,
		      struct cq_buf *buf)
{
	char chunk[65536];
	ssize_t n;

	while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			cli_err(cli, "cannot read standard input: %s",
				strerror(errno));
			return 74;
		}
		if (buf->len + (size_t)n > max) {
			cli_err(cli, "value larger than --max-size (%llu bytes)",
				max);
			return 65;
		}
		if (!cq_buf_append(buf, chunk, (size_t)n)) {
			cli_err(cli, "out of memory");
			return 70;
		}
	}
	return 0;
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
		CLI_COMMON_OPTIONS
	};
	struct cq_set_opts o = { 0 };
	unsigned long long max = DEFAULT_MAX_SIZE;
	struct cq_buf in = { 0 };
	const char *key, *val;
	size_t len;
	bool written;
	int c, ret;

	while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, opts, NULL)) != -1) {
		switch (c) {
		case OPT_SET_TTL:
			if (!cli_duration(cli, "--ttl", optarg, &o.ttl_ms))
				return 64;
			if (o.ttl_ms <= 0)
				return cli_usage_error(cli, "--ttl must be positive");
			break;
		case OPT_SET_JITTER:
			if (!cq_parse_jitter(optarg, &o.jitter_ms, &o.jitter_pct))
				return cli_usage_error(cli, "--jitter: bad value '%s' (want a duration or a percentage like 10%%)", optarg);
			break;
		case OPT_SET_NO_TTL:
			o.no_ttl = true;
			break;
		case OPT_SET_KEEP_TTL:
			o.keep_ttl = true;
			break;
		case OPT_SET_NX:
			o.nx = true;
			break;
		case OPT_SET_XX:
			o.xx = true;
			break;
		case OPT_SET_MAX_SIZE:
			if (!cq_parse_size(optarg, &max))
				return cli_usage_error(cli, "--max-size: bad size '%s' (want e.g. 512k, 64M)", optarg);
			break;
		default:
			cli_common_opt(cli, c, optarg);
		}
	}
	if (argc - optind < 1)
		return cli_usage_error(cli, "missing KEY");
	if (argc - optind > 2)
		return cli_usage_error(cli, "too many arguments (quote a VALUE with spaces)");
	if (o.nx && o.xx)
		return cli_usage_error(cli, "--nx and --xx exclude each other");
	if ((o.no_ttl || o.keep_ttl) && o.ttl_ms)
		return cli_usage_error(cli, "--ttl conflicts with --no-ttl and --keep-ttl");
	if (!o.ttl_ms && !o.no_ttl && !o.keep_ttl)
		o.ttl_ms = cli->set.default_ttl_ms;
	if (!o.ttl_ms && !o.no_ttl && !o.keep_ttl)
		return cli_usage_error(cli, "--ttl is required (or --no-ttl, or set CQ_DEFAULT_TTL)");
	key = argv[optind];
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
			ret = 65;
			goto out;
		}
	}
	ret = cli_ready(cli);
	if (ret)
		goto out;
	if (cq_cache_set(cli->ctx, key, strlen(key), val, len, &o, &written, NULL)) {
		ret = cli_fail(cli);
		goto out;
	}
	ret = written ? 0 : 1;
	if (!written && !cli->quiet)
		cli_err(cli, "not set: '%s' %s", key, o.nx ? "exists" : "is missing");
out:
	cq_buf_free(&in);
	return ret;
}

static const struct cli_verb verbs[] = {
	{ "get", cmd_get, NEED_REDIS, "print cached values", get_usage },
	{ "set", cmd_set, NEED_REDIS, "store a value with a TTL", set_usage },
	{ NULL, NULL, 0, NULL, NULL },
};

int main(int argc, char **argv)
{
	static const struct cli_prog prog = {
		"cachectl", verbs, cq_redis_connect, NULL,
	};

	return cli_main(&prog, argc, argv);
}
