/*
 * qtool - set-up and checks on the sandbox broker for bench/run, written
 * against librabbitmq so that the benchmarks depend on no verb they measure.
 *
 *   qtool HOST PORT depth QUEUE         print the ready-message count
 *   qtool HOST PORT reset QUEUE [DLQ]   delete and redeclare QUEUE durable;
 *                                       with DLQ, also DLQ, and make DLQ the
 *                                       dead-letter target of QUEUE
 *   qtool HOST PORT deadletter QUEUE N  consume N messages from QUEUE and
 *                                       reject them (requeue=false), so the
 *                                       broker dead-letters them itself,
 *                                       with its own x-death headers
 *   qtool HOST PORT drain QUEUE [S]     take every message of QUEUE (acked),
 *                                       printing each body and a newline,
 *                                       until none came for S seconds
 *                                       (default 2); the fault tests count
 *                                       with it
 *
 * Exit 0 on success, 1 on any error (depth of a missing queue included).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#define CHANNEL 1

static amqp_connection_state_t conn;

static void die(const char *what, const char *why)
{
	fprintf(stderr, "qtool: %s: %s\n", what, why);
	exit(1);
}

static void check_rpc(const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);

	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return;
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
		amqp_channel_close_t *m = r.reply.decoded;

		fprintf(stderr, "qtool: %s: %.*s\n", what,
			(int)m->reply_text.len, (char *)m->reply_text.bytes);
		exit(1);
	}
	die(what, r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ?
		  amqp_error_string2(r.library_error) : "server error");
}

static void connect_to(const char *host, int port)
{
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;

	conn = amqp_new_connection();
	sock = amqp_tcp_socket_new(conn);
	if (!sock)
		die("connect", "out of memory");
	if (amqp_socket_open(sock, host, port) != AMQP_STATUS_OK)
		die("connect", "cannot open socket");
	r = amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
		       "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die("login", "refused");
	amqp_channel_open(conn, CHANNEL);
	check_rpc("channel.open");
}

static uint32_t depth(const char *q)
{
	amqp_queue_declare_ok_t *ok;

	ok = amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(q), 1, 0, 0, 0,
				amqp_empty_table);
	check_rpc("queue.declare passive");
	return ok->message_count;
}

static void declare(const char *q, const char *dlq)
{
	amqp_table_entry_t e[2];
	amqp_table_t args = amqp_empty_table;

	if (dlq) {
		e[0].key = amqp_cstring_bytes("x-dead-letter-exchange");
		e[0].value.kind = AMQP_FIELD_KIND_UTF8;
		e[0].value.value.bytes = amqp_cstring_bytes("");
		e[1].key = amqp_cstring_bytes("x-dead-letter-routing-key");
		e[1].value.kind = AMQP_FIELD_KIND_UTF8;
		e[1].value.value.bytes = amqp_cstring_bytes(dlq);
		args.num_entries = 2;
		args.entries = e;
	}
	amqp_queue_declare(conn, CHANNEL, amqp_cstring_bytes(q), 0, 1, 0, 0, args);
	check_rpc("queue.declare");
}

static void reset(const char *q, const char *dlq)
{
	amqp_queue_delete(conn, CHANNEL, amqp_cstring_bytes(q), 0, 0);
	check_rpc("queue.delete");
	if (dlq) {
		amqp_queue_delete(conn, CHANNEL, amqp_cstring_bytes(dlq), 0, 0);
		check_rpc("queue.delete");
		declare(dlq, NULL);
	}
	declare(q, dlq);
}

static void deadletter(const char *q, unsigned long n)
{
	struct timeval tv = { 30, 0 };
	amqp_envelope_t env;
	amqp_rpc_reply_t r;
	unsigned long got = 0;
	uint64_t last = 0;

	amqp_basic_qos(conn, CHANNEL, 0, 2000, 0);
	check_rpc("basic.qos");
	amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(q), amqp_empty_bytes,
			   0, 0, 0, amqp_empty_table);
	check_rpc("basic.consume");
	while (got < n) {
		amqp_maybe_release_buffers(conn);
		r = amqp_consume_message(conn, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			die("consume", "no message within 30s");
		last = env.delivery_tag;
		amqp_destroy_envelope(&env);
		if (++got % 500 == 0 &&
		    amqp_basic_nack(conn, CHANNEL, last, 1, 0) != AMQP_STATUS_OK)
			die("basic.nack", "failed");
	}
	if (got % 500 && amqp_basic_nack(conn, CHANNEL, last, 1, 0) != AMQP_STATUS_OK)
		die("basic.nack", "failed");
}

static void drain(const char *q, long idle_s)
{
	struct timeval tv = { idle_s, 0 };
	amqp_envelope_t env;
	amqp_rpc_reply_t r;
	unsigned long got = 0;
	uint64_t last = 0;

	amqp_basic_qos(conn, CHANNEL, 0, 2000, 0);
	check_rpc("basic.qos");
	amqp_basic_consume(conn, CHANNEL, amqp_cstring_bytes(q), amqp_empty_bytes,
			   0, 0, 0, amqp_empty_table);
	check_rpc("basic.consume");
	for (;;) {
		amqp_maybe_release_buffers(conn);
		r = amqp_consume_message(conn, &env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT)
			break;
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			die("drain", "consume failed");
		last = env.delivery_tag;
		fwrite(env.message.body.bytes, 1, env.message.body.len, stdout);
		putchar('\n');
		amqp_destroy_envelope(&env);
		if (++got % 500 == 0) {
			/* written before acked: flush first */
			if (fflush(stdout) ||
			    amqp_basic_ack(conn, CHANNEL, last, 1) != AMQP_STATUS_OK)
				die("basic.ack", "failed");
		}
	}
	if (fflush(stdout))
		die("drain", "cannot write");
	if (got % 500 && amqp_basic_ack(conn, CHANNEL, last, 1) != AMQP_STATUS_OK)
		die("basic.ack", "failed");
}

int main(int argc, char **argv)
{
	const char *verb;

	if (argc < 5) {
		fputs("usage: qtool HOST PORT depth|reset|deadletter|drain QUEUE [ARG]\n",
		      stderr);
		return 2;
	}
	connect_to(argv[1], atoi(argv[2]));
	verb = argv[3];
	if (strcmp(verb, "depth") == 0)
		printf("%u\n", depth(argv[4]));
	else if (strcmp(verb, "reset") == 0)
		reset(argv[4], argc > 5 ? argv[5] : NULL);
	else if (strcmp(verb, "deadletter") == 0 && argc > 5)
		deadletter(argv[4], strtoul(argv[5], NULL, 10));
	else if (strcmp(verb, "drain") == 0)
		drain(argv[4], argc > 5 ? strtol(argv[5], NULL, 10) : 2);
	else
		die(verb, "unknown command");
	amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS);
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
	return fflush(stdout) ? 1 : 0;
}
