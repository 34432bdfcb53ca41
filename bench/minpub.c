/*
 * minpub - the broker's ceiling for confirmed persistent publishing: a
 * minimal librabbitmq publisher, for bench/run.
 *
 *   minpub HOST PORT QUEUE [WINDOW [like-cq|like-replay]] < lines
 *
 * One message per stdin line (without its newline), persistent
 * (delivery-mode 2), to the default exchange with routing key QUEUE, under
 * publisher confirms with at most WINDOW (default 10,000) messages
 * unconfirmed.  Confirms are read as basic.ack / basic.nack frames; a
 * "multiple" ack covers every tag up to its own.  Exits 0 once every message
 * is confirmed, 1 on a nack or any error.  Nothing else: no retries, no
 * message ids, no headers; that is what makes it the ceiling.
 *
 * With "like-cq", each message also carries what `qctl enqueue` gives
 * every message by default (the mandatory flag, a timestamp and a fresh
 * 17-character message id), so that the broker's cost of those properties
 * can be told from the client's own.
 *
 * With "like-replay", each message is what `qctl replay-dlq` republishes
 * for a message the broker dead-lettered from QUEUE (rejected): mandatory,
 * persistent, with the headers the broker gave the dead letter (x-death
 * with one entry, x-first-death-exchange, -queue and -reason) and the
 * x-cq-replayed count replay adds.  That is the publishing half of a move
 * at the broker's full cost, so that replay-dlq is compared with a
 * publisher of the same messages, not of lighter ones.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#define CHANNEL 1

static amqp_connection_state_t conn;
static uint64_t next_tag = 1;	/* tag of the next publish */
static uint64_t low = 1;	/* lowest tag not yet confirmed */
static unsigned char *done;	/* done[tag % window]: confirmed out of order */
static uint64_t window = 10000;
static unsigned long nacked;

/* The headers of a dead letter the broker took from queue q (rejected),
 * as replay-dlq republishes it: kinds as the broker encodes them. */
static amqp_field_value_t rk_value[1];
static amqp_table_entry_t death_fields[6];
static amqp_field_value_t death_value[1];
static amqp_table_entry_t replay_headers[5];

static amqp_table_entry_t entry(const char *key, amqp_field_value_t v)
{
	amqp_table_entry_t e = { amqp_cstring_bytes(key), v };

	return e;
}

static amqp_field_value_t text(const char *s)
{
	amqp_field_value_t v = { .kind = AMQP_FIELD_KIND_UTF8 };

	v.value.bytes = amqp_cstring_bytes(s);
	return v;
}

static amqp_field_value_t i64(int64_t n)
{
	amqp_field_value_t v = { .kind = AMQP_FIELD_KIND_I64 };

	v.value.i64 = n;
	return v;
}

static amqp_table_t like_replay(const char *q)
{
	amqp_field_value_t v = { .kind = AMQP_FIELD_KIND_TIMESTAMP };
	amqp_table_t t;

	v.value.u64 = (uint64_t)time(NULL);
	rk_value[0] = text(q);
	death_fields[0] = entry("count", i64(1));
	death_fields[1] = entry("reason", text("rejected"));
	death_fields[2] = entry("queue", text(q));
	death_fields[3] = entry("time", v);
	death_fields[4] = entry("exchange", text(""));
	v.kind = AMQP_FIELD_KIND_ARRAY;
	v.value.array.num_entries = 1;
	v.value.array.entries = rk_value;
	death_fields[5] = entry("routing-keys", v);
	v.kind = AMQP_FIELD_KIND_TABLE;
	v.value.table.num_entries = 6;
	v.value.table.entries = death_fields;
	death_value[0] = v;
	v.kind = AMQP_FIELD_KIND_ARRAY;
	v.value.array.num_entries = 1;
	v.value.array.entries = death_value;
	replay_headers[0] = entry("x-death", v);
	replay_headers[1] = entry("x-first-death-exchange", text(""));
	replay_headers[2] = entry("x-first-death-queue", text(q));
	replay_headers[3] = entry("x-first-death-reason", text("rejected"));
	replay_headers[4] = entry("x-cq-replayed", i64(1));
	t.num_entries = 5;
	t.entries = replay_headers;
	return t;
}

static void die(const char *what, const char *why)
{
	fprintf(stderr, "minpub: %s: %s\n", what, why);
	exit(1);
}

static void check_rpc(const char *what)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);

	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die(what, r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ?
			  amqp_error_string2(r.library_error) : "server error");
}

static void confirm(uint64_t tag, int multiple)
{
	if (tag < low || tag >= next_tag)
		return;
	if (multiple) {
		while (low <= tag)
			done[low++ % window] = 0;
	} else {
		done[tag % window] = 1;
	}
	while (low < next_tag && done[low % window])
		done[low++ % window] = 0;
}

/* Read confirm frames: block until one arrives when block is set, else
 * only take what is already there. */
static void read_confirms(int block)
{
	struct timeval zero = { 0, 0 };
	amqp_frame_t f;
	int st;

	for (;;) {
		st = block ? amqp_simple_wait_frame(conn, &f)
			   : amqp_simple_wait_frame_noblock(conn, &f, &zero);
		if (st == AMQP_STATUS_TIMEOUT)
			return;
		if (st != AMQP_STATUS_OK)
			die("waiting for confirms", amqp_error_string2(st));
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;

			confirm(a->delivery_tag, a->multiple);
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			amqp_basic_nack_t *a = f.payload.method.decoded;

			nacked += a->multiple ? a->delivery_tag - low + 1 : 1;
			confirm(a->delivery_tag, a->multiple);
		} else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
			   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
			die("publishing", "the broker closed the channel");
		}
		amqp_maybe_release_buffers(conn);
		if (block)
			return;
	}
}

int main(int argc, char **argv)
{
	amqp_basic_properties_t props = {
		._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
		.delivery_mode = 2,
	};
	amqp_bytes_t queue, body;
	amqp_socket_t *sock;
	amqp_rpc_reply_t r;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long count = 0;
	unsigned idbase = 0;
	char id[40];
	int like_cq, mandatory;

	if (argc < 4) {
		fputs("usage: minpub HOST PORT QUEUE [WINDOW [like-cq|like-replay]] < lines\n",
		      stderr);
		return 2;
	}
	if (argc > 4)
		window = strtoull(argv[4], NULL, 10);
	like_cq = argc > 5 && strcmp(argv[5], "like-cq") == 0;
	mandatory = like_cq;
	if (argc > 5 && strcmp(argv[5], "like-replay") == 0) {
		props._flags |= AMQP_BASIC_HEADERS_FLAG;
		props.headers = like_replay(argv[3]);
		mandatory = 1;
	}
	if (like_cq) {
		props._flags |= AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
		props.timestamp = (uint64_t)time(NULL);
		srandom((unsigned)getpid());
		idbase = (unsigned)random();
	}
	done = calloc(window, 1);
	conn = amqp_new_connection();
	sock = amqp_tcp_socket_new(conn);
	if (!done || !sock)
		die("start", "out of memory");
	if (amqp_socket_open(sock, argv[1], atoi(argv[2])) != AMQP_STATUS_OK)
		die("connect", "cannot open socket");
	r = amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
		       "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die("login", "refused");
	amqp_channel_open(conn, CHANNEL);
	check_rpc("channel.open");
	amqp_confirm_select(conn, CHANNEL);
	check_rpc("confirm.select");
	queue = amqp_cstring_bytes(argv[3]);

	while ((len = getline(&line, &cap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			len--;
		body.bytes = line;
		body.len = (size_t)len;
		while (next_tag - low >= window)
			read_confirms(1);
		if (like_cq) {
			snprintf(id, sizeof(id), "%08x%09lu", idbase, count);
			props.message_id = amqp_cstring_bytes(id);
		}
		if (amqp_basic_publish(conn, CHANNEL, amqp_empty_bytes, queue,
				       mandatory, 0, &props, body) != AMQP_STATUS_OK)
			die("publish", "failed");
		next_tag++;
		if (++count % 256 == 0)
			read_confirms(0);
	}
	while (low < next_tag)
		read_confirms(1);
	free(line);
	amqp_channel_close(conn, CHANNEL, AMQP_REPLY_SUCCESS);
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
	free(done);
	if (nacked) {
		fprintf(stderr, "minpub: %lu of %lu messages nacked\n", nacked, count);
		return 1;
	}
	return 0;
}
