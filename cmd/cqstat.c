/* cqstat - cache hit rate and queue depth, once or every N seconds. */
#include "cli.h"

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 0;
}
