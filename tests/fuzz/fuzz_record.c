/*
 * fuzz_record - `qctl enqueue --jsonl` records (cqi_record_parse) and the
 * base64 decoder behind body_base64 (cqi_base64_decode, which warm's
 * key_base64 and value_base64 use too).
 *
 * Invariants: a parsed record has a body inside the record or its
 * decoded copy; the -H headers given before parsing are kept, in front;
 * priority stays in 0-255 (or -1); a record that fails has a message.
 * A line that is not one JSON object (cqi_jsonl_object) is refused by
 * enqueue's parser and by warm's in the same words.
 */
#include <jansson.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct cq_header preset[2] = {
		{ .key = "x-from-flag", .value = "1" },
		{ .key = "x-count", .is_int = true, .ival = 7 },
	};
	struct cq_message msg;
	struct cq_record *rec = NULL;
	char err[300], *line = malloc(size ? size : 1);
	struct cq_buf raw = { 0 };
	enum cq_err parsed;

	if (!line)
		abort();
	memcpy(line, data, size);
	cq_message_init(&msg);
	msg.headers = preset;
	msg.nheaders = 2;
	err[0] = '\0';
	parsed = cqi_record_parse(line, size, &msg, &rec, err, sizeof(err));
	if (parsed == CQ_OK) {
		FUZZ_ASSERT(rec != NULL, "no record");
		FUZZ_ASSERT(msg.body != NULL || msg.len == 0, "body");
		FUZZ_ASSERT(msg.nheaders >= 2 && strcmp(msg.headers[0].key,
							"x-from-flag") == 0 &&
			    msg.headers[1].is_int, "-H headers lost");
		for (size_t i = 0; i < msg.nheaders; i++)
			FUZZ_ASSERT(msg.headers[i].key != NULL, "header %zu", i);
		FUZZ_ASSERT(msg.priority >= -1 && msg.priority <= 255, "priority");
		cqi_record_free(rec);
	} else {
		FUZZ_ASSERT(rec == NULL && err[0], "failed without a message");
	}
	/* the JSONL line rules, shared with warm --jsonl */
	{
		char shared[300], warm[300];
		struct cqi_warm_rec wr = { 0 };
		json_t *o = cqi_jsonl_object(line, size, shared, sizeof(shared));

		if (o) {
			FUZZ_ASSERT(json_is_object(o), "not an object");
			json_decref(o);
		} else {
			FUZZ_ASSERT(parsed != CQ_OK && strcmp(err, shared) == 0,
				    "enqueue said '%s', the shared rules '%s'",
				    err, shared);
			FUZZ_ASSERT(!cqi_warm_parse_jsonl(line, size, &wr, warm,
							  sizeof(warm)) &&
				    strcmp(warm, shared) == 0,
				    "warm said '%s', the shared rules '%s'",
				    warm, shared);
		}
		cqi_warm_rec_clear(&wr);
	}
	/* the decoder on its own, on the raw bytes */
	if (cqi_base64_decode(line, size, &raw)) {
		FUZZ_ASSERT(raw.len <= size, "decoded longer than input");
		FUZZ_ASSERT(raw.data[raw.len] == '\0', "not terminated");
	}
	cq_buf_free(&raw);
	free(line);
	return 0;
}
