/* cli.c - the verb table runner and the helpers every program shares. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_progress_clear(struct cli *cli)
{
	if (cli->progress_shown)
		fputs("\r\033[K", stderr);
	cli->progress_shown = false;
}

static void vreport(struct cli *cli, const char *fmt, va_list ap)
{
	cli_progress_clear(cli);
	vsnprintf(cli->errmsg, sizeof(cli->errmsg), fmt, ap);
	fprintf(stderr, "%s: ", cli->prog);
	if (cli->verb && cli->verb->name)
		fprintf(stderr, "%s: ", cli->verb->name);
	fprintf(stderr, "%s\n", cli->errmsg);
}

void cli_err(struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli, fmt, ap);
	va_end(ap);
}

int cli_usage_error(struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli, fmt, ap);
	va_end(ap);
	if (cli->verb && cli->verb->name)
		fprintf(stderr, "Try '%s %s --help'.\n", cli->prog,
			cli->verb->name);
	else
		fprintf(stderr, "Try '%s --help'.\n", cli->prog);
	return EX_USAGE;
}

int cli_fatal(struct cli *cli, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(cli, fmt, ap);
	va_end(ap);
	return code;
}

bool cli_duration(struct cli *cli, const char *opt, const char *arg,
		  long long *ms)
{
	if (cq_parse_duration(arg, ms))
		return true;
	cli_usage_error(cli, "%s: bad duration '%s' (want e.g. 250ms, 30s, 5m, 2h, 1d)",
			opt, arg);
	return false;
}

bool cli_positive_duration(struct cli *cli, const char *opt, const char *arg,
			   long long *ms)
{
	if (!cli_duration(cli, opt, arg, ms))
		return false;
	if (*ms > 0)
		return true;
	cli_usage_error(cli, "%s must be positive", opt);
	return false;
}

bool cli_uint(struct cli *cli, const char *opt, const char *arg,
	      unsigned long long min, unsigned long long max,
	      unsigned long long *out)
{
	if (cq_parse_uint(arg, min, max, out))
		return true;
	cli_usage_error(cli, "%s: bad number '%s' (want %llu-%llu)", opt, arg,
			min, max);
	return false;
}

void cli_common_help(const struct cli_prog *prog, bool verb, FILE *f)
{
	bool amqp = prog->connect_amqp != NULL;

	fputs("Common options:\n"
	      "  --redis URL        Redis URL (CQ_REDIS_URL, REDIS_URL)\n", f);
	if (amqp)
		fputs("  --amqp URL[,URL]   AMQP URL list (CQ_AMQP_URL, AMQP_URL)\n", f);
	fputs("  --prefix P         key prefix (CQ_PREFIX)\n"
	      "  --timeout DUR      connect and command timeout (CQ_TIMEOUT, 5s)\n"
	      "  --password-file F  read the Redis password from F\n"
	      "  --sentinel-password-file F\n"
	      "                     read the sentinels' own password from F\n"
	      "                     (CQ_SENTINEL_PASSWORD; CQ_SENTINEL_USER)\n", f);
	fputs(amqp ? "  --cacert F, --cert F, --key F   TLS files for rediss:// and amqps://\n"
		   : "  --cacert F, --cert F, --key F   TLS files for rediss://\n", f);
	fputs("  --insecure         TLS without checking the server certificate (warns)\n", f);
	fputs("  --json             one JSON object per line\n"
	      "  -q, --quiet        no progress, summary or notice lines\n"
	      "  -h, --help         this help\n", f);
	if (verb && prog->common_help)
		fputs(prog->common_help, f);
}

static void print_verb_usage(const struct cli *cli, FILE *f)
{
	fputs(cli->verb->usage, f);
	fputc('\n', f);
	cli_common_help(cli->program, true, f);
	if (cli->verb == cli->program->main)
		fputs("  --version          print the version\n", f);
}

int cli_common_opt(struct cli *cli, int c, const char *arg)
{
	struct cq_settings *s = &cli->set;

	switch (c) {
	case OPT_REDIS:
		s->redis_url = arg;
		break;
	case OPT_AMQP:
		s->amqp_url = arg;
		break;
	case OPT_PREFIX:
		s->prefix = arg;
		break;
	case OPT_TIMEOUT:
		if (!cli_positive_duration(cli, "--timeout", arg,
					   &s->timeout_ms))
			return EX_USAGE;
		break;
	case OPT_PASSWORD_FILE:
		s->password_file = arg;
		break;
	case OPT_SENTINEL_PASSWORD_FILE:
		s->sentinel_password_file = arg;
		break;
	case OPT_CACERT:
		s->cacert = arg;
		break;
	case OPT_CERT:
		s->cert = arg;
		break;
	case OPT_KEY:
		s->key = arg;
		break;
	case OPT_INSECURE:
		if (!s->insecure)
			cli_err(cli, "warning: --insecure: TLS server certificates are not checked");
		s->insecure = true;
		break;
	case OPT_JSON:
		cli->json = true;
		break;
	case 'q':
		cli->quiet = true;
		break;
	case 'h':
		if (cli->verb)
			print_verb_usage(cli, stdout);
		return CLI_DONE;
	case ':':
		return cli_usage_error(cli, "missing option argument");
	default:	/* '?' */
		return cli_usage_error(cli, "bad option (see above)");
	}
	return 0;
}

int cli_fail(struct cli *cli)
{
	struct cq_ctx *ctx = cli->ctx;

	if (!ctx)
		return cli_fatal(cli, EX_SOFTWARE, "out of memory");
	return cli_fatal(cli, cq_exit_code(ctx->err), "%s",
			 ctx->errstr[0] ? ctx->errstr : cq_strerror(ctx->err));
}

bool cli_name(struct cli *cli, const char *kind, const char *name)
{
	char err[400];

	if (cq_name_ok(kind, name, err, sizeof(err)))
		return true;
	cli_usage_error(cli, "%s", err);
	return false;
}

const char *cli_s(unsigned long long n)
{
	return n == 1 ? "" : "s";
}

/* How much an exit code tells the caller to do something else than
 * retry: bad input (fix it) < worth retrying < server down < I/O error <
 * internal error < refused for permission (no retry gets through).
 * Usage errors and codes not listed rank above all. */
static int code_rank(int code)
{
	static const int order[] = {
		0, 1, EX_DATAERR, EX_TEMPFAIL, EX_UNAVAILABLE, EX_IOERR,
		EX_SOFTWARE, EX_NOPERM,
	};

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (order[i] == code)
			return (int)i;
	return (int)(sizeof(order) / sizeof(order[0]));
}

int cli_worse(int a, int b)
{
	return code_rank(b) > code_rank(a) ? b : a;
}

int cli_ready(struct cli *cli)
{
	unsigned f = cli->verb->flags;

	if (!cli->ctx)
		cli->ctx = cq_ctx_new(&cli->set);
	if (!cli->ctx)
		return cli_fail(cli);
	if ((f & MAY_REDIS) && cli->need_redis)
		f |= NEED_REDIS;
	if (f & NEED_QUEUE) {
		char why[200];
		bool redis;

		if (!cli->program->backend_ok(cli->set.queue_backend, &redis,
					      why, sizeof(why)))
			return cli_usage_error(cli, "%s: %s", cli->backend_opt ?
					       "--backend" : "CQ_QUEUE_BACKEND",
					       why);
		f |= redis ? NEED_REDIS : NEED_AMQP;
	}
	if ((f & NEED_AMQP) && cli->program->connect_amqp(cli->ctx))
		return cli_fail(cli);
	if ((f & NEED_REDIS) && cli->program->connect_redis(cli->ctx))
		return cli_fail(cli);
	if (f & TRY_REDIS)
		cli->program->connect_redis(cli->ctx);
	if ((cli->verb->flags & CATCH_STOP) && cq_stop_catch(cli->ctx))
		return cli_fail(cli);
	return 0;
}

bool cli_write(struct cli *cli, const void *p, size_t n)
{
	if (cli->out_failed)
		return false;
	if (n && fwrite(p, 1, n, stdout) != n) {
		cli->out_failed = true;
		cli->out_errno = errno;	/* later calls may change errno */
	}
	return !cli->out_failed;
}

bool cli_printf(struct cli *cli, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;
	bool ok;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0) {
		cli_err(cli, "out of memory");
		return false;
	}
	ok = cli_write(cli, s, (size_t)n);
	free(s);
	return ok;
}

bool cli_progress_wanted(const struct cli *cli)
{
	return !cli->quiet && isatty(STDERR_FILENO);
}

bool cli_put_json_text(struct cli *cli, char *line)
{
	bool ok;

	if (!line) {
		cli_err(cli, "out of memory");
		return false;
	}
	ok = cli_write(cli, line, strlen(line)) && cli_write(cli, "\n", 1);
	free(line);
	return ok;
}

bool cli_put_json(struct cli *cli, struct json_t *obj)
{
	return cli_put_json_text(cli, cq_json_line(obj));
}

void cli_progress(struct cli *cli, const char *fmt, ...)
{
	long long now = cq_now_ms();
	va_list ap;

	if (!cli_progress_wanted(cli) ||
	    (cli->progress_shown && now - cli->progress_ms < 250))
		return;
	cli->progress_ms = now;
	cli->progress_shown = true;
	fprintf(stderr, "\r%s: %s: ", cli->prog, cli->verb->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\033[K", stderr);
}

int cli_put_metrics(struct cli *cli, const struct cq_metrics *ms)
{
	struct cq_buf out = { 0 };
	char *json = NULL;
	bool ok;

	if (cli->json)
		ok = (json = cq_metrics_json(ms)) &&
		     cq_buf_append(&out, json, strlen(json)) &&
		     cq_buf_append(&out, "\n", 1);
	else
		ok = cq_metrics_text(ms, &out);
	if (ok)
		cli_write(cli, out.data, out.len);
	free(json);
	cq_buf_free(&out);
	return ok ? 0 : cli_fatal(cli, EX_SOFTWARE, "out of memory");
}

/* Flush stdout and turn a failed write into exit 74 (silent for a closed
 * pipe: the reader has gone and needs no message). */
static int finish(struct cli *cli, int code)
{
	cli_progress_clear(cli);
	if (code == CLI_DONE)
		code = 0;
	/* a plugin's states are 0-3; any other code is an error, already
	 * said on stderr, which is also its status line */
	if (cli->plugin && (code < 0 || code > CQ_STATE_UNKNOWN)) {
		printf("CQ UNKNOWN - %s\n", cli->errmsg[0] ? cli->errmsg : "internal error");
		code = CQ_STATE_UNKNOWN;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (!cli->out_failed && !cli->out_errno)
			cli->out_errno = errno;
		cli->out_failed = true;
	}
	if (cli->out_failed) {
		int err = cli->out_errno ? cli->out_errno : errno;

		if (err != EPIPE)
			cli_err(cli, "cannot write output: %s", strerror(err));
		if (cli->plugin)
			code = CQ_STATE_UNKNOWN;	/* whatever the checks said */
		else if (code == 0 || code == 1)
			code = EX_IOERR;
	}
	cq_ctx_free(cli->ctx);
	cli->ctx = NULL;
	return code;
}

static void print_usage(const struct cli_prog *p, FILE *f)
{
	fprintf(f, "usage: %s [OPTIONS] VERB [ARGS]\n\nVerbs:\n", p->name);
	for (const struct cli_verb *v = p->verbs; v->name; v++)
		fprintf(f, "  %-12s %s\n", v->name, v->summary);
	fprintf(f, "\nRun '%s VERB --help' for a verb's options.\n\n", p->name);
	cli_common_help(p, false, f);
	fputs("  --version          print the version\n", f);
	/* qctl's --backend: a verb's option, not the program's */
	if (p->common_help)
		fprintf(f, "\nEvery verb also takes, after the verb:\n%s",
			p->common_help);
}

/*
 * A closed standard descriptor would be handed to the next socket opened,
 * and our output written into the Redis or AMQP connection.  Hold each
 * closed one with /dev/null.  Stdin and stdout are opened the wrong way
 * round, so that using them fails with EBADF: output ("cannot write
 * output", exit 74), and input too, since a closed stdin is not an empty
 * one (`cachectl set k <&-` must not store an empty value; exit 74).
 */
void cli_hold_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int nfd;

		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		nfd = open("/dev/null", fd == 0 ? O_WRONLY :
				 fd == 1 ? O_RDONLY : O_RDWR);
		if (nfd >= 0 && nfd != fd) {
			dup2(nfd, fd);
			close(nfd);
		}
	}
}

int cli_main(const struct cli_prog *program, int argc, char **argv)
{
	const char *prog = program->name;
	const struct cli_verb *verbs = program->verbs;
	static const struct option opts[] = {
		{ "version", no_argument, NULL, 'V' },
		{ "list-commands", no_argument, NULL, 'L' },
		CLI_COMMON_OPTIONS
	};
	struct cli cli = { .prog = prog, .program = program };
	char errbuf[200];
	int c, ret;

	/* Output errors are checked where they happen, and Redis sockets
	 * must not kill us: a closed pipe becomes EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	cli_hold_std_fds();
	if (program->prescan)
		program->prescan(&cli, argc, argv);
	if (cq_settings_from_env(&cli.set, errbuf, sizeof(errbuf)))
		return finish(&cli, cli_usage_error(&cli, "%s", errbuf));
	if (program->main) {
		cli.verb = program->main;
		optind = 0;	/* reset getopt (glibc: 0 reinitialises) */
		return finish(&cli, cli.verb->fn(&cli, argc, argv));
	}
	opterr = 1;
	while ((c = getopt_long(argc, argv, "+" CLI_COMMON_SHORT, opts, NULL)) != -1) {
		if (c == 'V') {
			printf("%s %s\n", prog, CQ_VERSION);
			return finish(&cli, 0);
		}
		if (c == 'L') {
			for (const struct cli_verb *v = verbs; v->name; v++)
				printf("%s\n", v->name);
			return finish(&cli, 0);
		}
		if (c == 'h') {
			print_usage(program, stdout);
			return finish(&cli, 0);
		}
		if ((ret = cli_common_opt(&cli, c, optarg)))
			return finish(&cli, ret);
	}
	if (optind >= argc) {
		print_usage(program, stderr);
		return EX_USAGE;
	}
	for (const struct cli_verb *v = verbs; v->name; v++) {
		if (strcmp(v->name, argv[optind]) == 0) {
			cli.verb = v;
			break;
		}
	}
	if (!cli.verb)
		return cli_usage_error(&cli, "unknown verb '%s'", argv[optind]);
	argc -= optind;
	argv += optind;
	optind = 0;	/* reset getopt (glibc: 0 reinitialises) */
	return finish(&cli, cli.verb->fn(&cli, argc, argv));
}
