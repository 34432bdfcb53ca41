/* qctl - the queue toolkit: option parsing and output over libcq. */
#include "cli.h"

static const struct cli_verb verbs[] = {
	{ NULL, NULL, 0, NULL, NULL },
};

int main(int argc, char **argv)
{
	static const struct cli_prog prog = {
		"qctl", verbs, cq_redis_connect, cq_amqp_connect,
	};

	return cli_main(&prog, argc, argv);
}
