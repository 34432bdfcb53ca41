/*
 * fuzz_headers - AMQP header tables as qctl sees them: the wire table
 * (decoded by librabbitmq, as from any publisher), cq_fields, the
 * dead-letter story (x-death, x-cq-*, application headers), header text
 * and the JSON peek and consume --json print.
 *
 * Input: the first byte picks the queue the message was read from; the
 * rest is the table body (its 4-byte length is added here).
 * Invariants: no crash, leak or UB; every field has text; the JSON is
 * valid; a chosen queue is a non-empty NUL-free string; counts >= 0.
 */
#include <sys/time.h>

#include <amqp.h>
#include <jansson.h>

#include "fuzz.h"
#include "queue_int.h"

static const char *const from_queues[] = {
	NULL, "jobs.dlq", "jobs", "", "a-dlq", ".dlq", "x_DLQ",
};

static void walk(const struct cq_field *f, size_t n, int depth)
{
	for (size_t i = 0; i < n; i++) {
		char *text = cqi_field_text(&f[i]);
		long long v;

		FUZZ_ASSERT(text != NULL, "no text for field %zu", i);
		free(text);
		cqi_field_int(&f[i], &v);
		if (f[i].key)
			cqi_field_get(f, n, f[i].key);
		FUZZ_ASSERT(depth < 40, "nesting");
		if (f[i].kind == CQ_FIELD_TABLE || f[i].kind == CQ_FIELD_ARRAY)
			walk(f[i].items, f[i].n, depth + 1);
	}
}

static void check_death(const struct cq_field *f, size_t n, const char *from)
{
	struct cq_death d;

	if (cqi_death_decode(f, n, from, &d))
		return;		/* out of memory only */
	if (d.queue)
		FUZZ_ASSERT(d.queue[0], "empty queue chosen");
	FUZZ_ASSERT((d.source == CQ_DEATH_NONE) == (d.queue == NULL),
		    "source %d with queue %s", d.source,
		    d.queue ? d.queue : "(null)");
	/* (an x-death entry may name the queue "": it is listed, never
	 * chosen, which the check on d.queue above covers) */
	cq_death_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	amqp_pool_t pool;
	amqp_table_t table;
	amqp_bytes_t enc;
	struct cq_field *fields = NULL;
	size_t n = 0, off = 0;
	uint8_t *buf;
	const char *from;
	json_t *j;

	if (size < 1)
		return 0;
	from = from_queues[data[0] % (sizeof(from_queues) / sizeof(from_queues[0]))];
	data++;
	size--;
	buf = malloc(size + 4);
	if (!buf)
		abort();
	buf[0] = (uint8_t)(size >> 24);
	buf[1] = (uint8_t)(size >> 16);
	buf[2] = (uint8_t)(size >> 8);
	buf[3] = (uint8_t)size;
	memcpy(buf + 4, data, size);
	enc.bytes = buf;
	enc.len = size + 4;
	init_amqp_pool(&pool, 4096);
	if (amqp_decode_table(enc, &pool, &table, &off) == AMQP_STATUS_OK &&
	    cqi_fields_from_table(&table, &fields, &n) == CQ_OK) {
		walk(fields, n, 0);
		check_death(fields, n, from);
		j = cqi_fields_json(fields, n);
		if (j) {
			char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
			json_t *back;

			FUZZ_ASSERT(s != NULL, "cannot dump the JSON");
			back = json_loads(s, JSON_ALLOW_NUL, NULL);
			FUZZ_ASSERT(back != NULL, "invalid JSON: %s", s);
			json_decref(back);
			free(s);
			json_decref(j);
		}
		cqi_fields_free(fields, n);
	}
	empty_amqp_pool(&pool);
	free(buf);
	return 0;
}
