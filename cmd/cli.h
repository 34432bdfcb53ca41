/* cli.h - what the three programs share: the verb table, common options,
 * error reporting and checked output.  Programs include cq.h and this. */
#ifndef CQ_CLI_H
#define CQ_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <sysexits.h>	/* EX_USAGE and the rest: the codes of cq_exit_code() */

#include "cq.h"

/* The verb table's flags: what cli_ready connects, the one place the
 * programs connect (lib connects nothing on its own). */
enum {
	NEED_REDIS = 1 << 0,
	NEED_AMQP = 1 << 1,
	/* connect to Redis, but a failure is the verb's to handle, its error
	 * left on the context (fetch runs CMD uncached) */
	TRY_REDIS = 1 << 2,
	/* NEED_REDIS when an option asks for it: the verb sets
	 * cli->need_redis before cli_ready (consume --dedupe) */
	MAY_REDIS = 1 << 3,
	/* a long verb: cli_ready catches SIGINT/SIGTERM (cq_stop_catch)
	 * after connecting, and the verb stops cleanly on them */
	CATCH_STOP = 1 << 4,
	/* connect what the queue backend needs (settings' queue_backend,
	 * --backend): RabbitMQ for amqp, Redis for list and stream; a
	 * backend not available is a usage error */
	NEED_QUEUE = 1 << 5,
};

struct cli;

struct cli_verb {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	unsigned flags;
	const char *summary;
	const char *usage;	/* full help text of the verb */
};

/*
 * A program: its verbs, and the connect functions its verbs may need.  A
 * program names only the backends it links, so cachectl never pulls in
 * librabbitmq (and its OpenSSL) just to start.
 */
struct cli_prog {
	const char *name;
	const struct cli_verb *verbs;
	enum cq_err (*connect_redis)(struct cq_ctx *ctx);
	enum cq_err (*connect_amqp)(struct cq_ctx *ctx);
	/* cq_backend_ok, for a program with NEED_QUEUE verbs (qctl): what
	 * the queue backend connects */
	bool (*backend_ok)(const char *name, bool *redis, char *err,
			   size_t errlen);
	/* A program without verbs (cqstat) has its one "verb" here, named
	 * NULL, run with all the arguments; verbs is then NULL. */
	const struct cli_verb *main;
	/* Run first, on the whole command line, by a program whose way of
	 * reporting errors depends on its arguments (cqstat --check sets
	 * cli->plugin); NULL for most. */
	void (*prescan)(struct cli *cli, int argc, char **argv);
	/* Lines of help for the program's own options every verb takes
	 * (qctl's --backend), printed after the common ones; or NULL. */
	const char *common_help;
};

struct cli {
	const char *prog;
	const struct cli_prog *program;
	const struct cli_verb *verb;
	struct cq_settings set;
	struct cq_ctx *ctx;
	bool json;
	bool quiet;
	bool need_redis;	/* a MAY_REDIS verb's option needs Redis */
	bool backend_opt;	/* queue_backend came from --backend */
	bool out_failed;	/* a write to stdout failed */
	int out_errno;		/* why the first failed write failed, or 0 */
	/* A monitoring plugin's run (cqstat --check): the exit code is a state
	 * 0-3, and an error (any other code a verb returns) is also the
	 * status line "CQ UNKNOWN - <its message>" on stdout and exits
	 * UNKNOWN (3), as does a failed write. */
	bool plugin;
	char errmsg[512];	/* the last error said, for that status line */
	bool progress_shown;	/* a progress line is on the terminal */
	long long progress_ms;	/* when it was last drawn */
};

/* Long options every verb accepts; append to a verb's option table. */
enum {
	OPT_REDIS = 256, OPT_AMQP, OPT_PREFIX, OPT_TIMEOUT, OPT_PASSWORD_FILE,
	OPT_CACERT, OPT_CERT, OPT_KEY, OPT_JSON, OPT_HELP, OPT_INSECURE,
	OPT_SENTINEL_PASSWORD_FILE,
	OPT_VERB = 300,		/* first code free for a verb's own options */
};
#define CLI_COMMON_OPTIONS \
	{ "redis", required_argument, NULL, OPT_REDIS }, \
	{ "amqp", required_argument, NULL, OPT_AMQP }, \
	{ "prefix", required_argument, NULL, OPT_PREFIX }, \
	{ "timeout", required_argument, NULL, OPT_TIMEOUT }, \
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE }, \
	{ "sentinel-password-file", required_argument, NULL, \
	  OPT_SENTINEL_PASSWORD_FILE }, \
	{ "cacert", required_argument, NULL, OPT_CACERT }, \
	{ "cert", required_argument, NULL, OPT_CERT }, \
	{ "key", required_argument, NULL, OPT_KEY }, \
	{ "insecure", no_argument, NULL, OPT_INSECURE }, \
	{ "json", no_argument, NULL, OPT_JSON }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "help", no_argument, NULL, 'h' }, \
	{ NULL, 0, NULL, 0 }
/* Short options every verb accepts; prepend to a verb's optstring. */
#define CLI_COMMON_SHORT "qh"

/* Print the common options' help; the AMQP ones only for a program that
 * talks to a broker; for a verb (or cqstat), also the program's options
 * that only a verb takes (qctl's --backend). */
void cli_common_help(const struct cli_prog *prog, bool verb, FILE *f);

/* Hold closed standard descriptors with /dev/null, so that no socket
 * gets fd 1 and output fails cleanly (cli_main does it first thing). */
void cli_hold_std_fds(void);
/* Run the program: global options, then the verb named by argv. */
int cli_main(const struct cli_prog *prog, int argc, char **argv);

/* What a verb returns when it has printed what was asked (--help) and
 * the program exits 0 without doing more. */
#define CLI_DONE (-1)
/* Handle a common option (or getopt's '?' and ':') inside a verb's getopt
 * loop.  Returns 0 to go on; CLI_DONE after -h printed the verb's usage;
 * else the exit code of a usage error it printed.  Never exits. */
int cli_common_opt(struct cli *cli, int c, const char *arg)
	__attribute__((warn_unused_result));
/* Report a usage error for the current verb and return 64. */
int cli_usage_error(struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Report an error that ends the run and return code. */
int cli_fatal(struct cli *cli, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Create the context and connect as the verb's flags say (RabbitMQ
 * first).  Returns 0 or the exit code after printing the error. */
int cli_ready(struct cli *cli);
/* Print "prog: verb: <ctx error>" and return its exit code. */
int cli_fail(struct cli *cli);
/* True when name can name a queue or exchange (lib's cq_name_ok); else
 * a usage error is printed.  Verbs check their names before connecting. */
bool cli_name(struct cli *cli, const char *kind, const char *name);
/* "s" unless n is 1: "%llu key%s" for summaries people read (--json
 * keeps its fixed names). */
const char *cli_s(unsigned long long n);
/* The worse of two exit codes, for a run with several outcomes: 77
 * (refused), then 70, 74, 69, then 75 (worth retrying), then 65 (bad
 * input), then 1 and 0.  Warm and enqueue rank theirs with it. */
int cli_worse(int a, int b);
/* Print "prog: verb: <message>" on stderr. */
void cli_err(struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Write to stdout; false (and cli->out_failed) on a write error. */
bool cli_write(struct cli *cli, const void *p, size_t n);
/* Format to stdout, whatever the length; false on a write error (or out
 * of memory, said on stderr). */
bool cli_printf(struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Parse helpers that print a usage error naming the option. */
bool cli_duration(struct cli *cli, const char *opt, const char *arg,
		  long long *ms);
/* A duration above zero ("OPT must be positive" otherwise). */
bool cli_positive_duration(struct cli *cli, const char *opt, const char *arg,
			   long long *ms);
bool cli_uint(struct cli *cli, const char *opt, const char *arg,
	      unsigned long long min, unsigned long long max,
	      unsigned long long *out);
/* True when stderr is a terminal and progress lines are wanted. */
bool cli_progress_wanted(const struct cli *cli);
/* The one progress line of a long verb, "prog: verb: <text>" redrawn in
 * place on stderr at most every 250ms; nothing unless wanted. */
void cli_progress(struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Erase the progress line (before other stderr output: cli_err and the
 * end of the run do it themselves). */
void cli_progress_clear(struct cli *cli);

/* Write a JSON record (built with cq_json_pack/cq_json_add*) as one line
 * on stdout, freeing it; NULL is out of memory.  False when out of memory
 * (said on stderr) or stdout failed. */
struct json_t;
bool cli_put_json(struct cli *cli, struct json_t *obj);
/* The same for a line a cq_*_json() function made (freed here). */
bool cli_put_json_text(struct cli *cli, char *line);
/* The figures of a stats verb: one JSON object with --json, else 'name
 * value' lines.  0, or 70 after saying "out of memory". */
int cli_put_metrics(struct cli *cli, const struct cq_metrics *ms);

#endif
