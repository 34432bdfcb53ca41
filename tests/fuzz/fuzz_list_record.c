/*
 * fuzz_list_record - the side hash of a Redis list queue: a record is
 * whatever bytes sit in {Q}|cq:meta (an application may write there too),
 * decoded into the x-cq-* headers that peek, replay and handlers read; and
 * qctl's own records, written from a failure whose text comes from the
 * input, read back.
 *
 * Input: RECORD-BYTES, or with a first byte 'W': CODE REASON '\n' STDERR
 * (the failure to write).  Invariants: no crash, leak or UB; every header
 * is one of qctl's x-cq-* names with text; a record qctl wrote gives back
 * its retry count, exit code and stderr, and a reason only when it had
 * one; the dead-letter story decodes.
 */
#include "fuzz.h"
#include "queue_list_int.h"

static const char *const names[] = {
	CQ_HDR_RETRIES, CQ_HDR_EXIT_CODE, CQ_HDR_STDERR, CQ_HDR_HOST,
	CQ_HDR_DEATH_REASON, CQ_HDR_ORIGINAL_QUEUE, CQ_HDR_DIED_AT,
};

static void check_fields(const struct cq_field *h, size_t n)
{
	struct cq_death d;

	for (size_t i = 0; i < n; i++) {
		bool known = false;
		char *text = cqi_field_text(&h[i]);

		FUZZ_ASSERT(text != NULL, "no text for header %zu", i);
		free(text);
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
			known |= strcmp(h[i].key, names[k]) == 0;
		FUZZ_ASSERT(known, "header '%s' is not qctl's", h[i].key);
	}
	if (cqi_death_decode(h, n, "q.dlq", &d) == CQ_OK)
		cq_death_clear(&d);
}

static long long int_of(const struct cq_field *h, size_t n, const char *key)
{
	const struct cq_field *f = cqi_field_get(h, n, key);
	long long v = -1;

	if (f)
		cqi_field_int(f, &v);
	return v;
}

/* Write a record from the input's failure, read it back. */
static void round_trip(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t rlen = nl ? (size_t)(nl - data) : size;
	char *reason = malloc(rlen + 1);
	struct cqi_failure f = { .attempts = size % 7, .code = size % 256,
				 .host = "fuzz-host" };
	struct cq_field *h = NULL;
	const struct cq_field *tail;
	size_t n = 0;
	char *rec;

	if (!reason)
		abort();
	memcpy(reason, data, rlen);
	reason[rlen] = '\0';
	/* a reason is qctl's text (exit N, poison, timeout): UTF-8, no NUL */
	f.reason = rlen && strlen(reason) == rlen && size % 2 ? reason : NULL;
	if (nl) {
		f.tail = (const char *)nl + 1;
		f.tlen = size - rlen - 1;
	}
	rec = cqi_list_record(&f, "q");
	if (rec && cqi_list_record_headers(rec, strlen(rec), &h, &n) == CQ_OK) {
		check_fields(h, n);
		FUZZ_ASSERT(int_of(h, n, CQ_HDR_RETRIES) == f.attempts,
			    "retries lost: %s", rec);
		FUZZ_ASSERT(int_of(h, n, CQ_HDR_EXIT_CODE) == f.code,
			    "exit code lost: %s", rec);
		FUZZ_ASSERT(!cqi_field_get(h, n, CQ_HDR_DEATH_REASON) == !f.reason,
			    "reason wrong: %s", rec);
		tail = cqi_field_get(h, n, CQ_HDR_STDERR);
		FUZZ_ASSERT(f.tlen ? tail && tail->len == f.tlen &&
			    memcmp(tail->str, f.tail, f.tlen) == 0 : !tail,
			    "stderr lost: %s", rec);
		cqi_fields_free(h, n);
	}
	free(rec);
	free(reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cq_field *h = NULL;
	size_t n = 0;

	if (size && data[0] == 'W') {
		round_trip(data + 1, size - 1);
		return 0;
	}
	if (cqi_list_record_headers((const char *)data, size, &h, &n) == CQ_OK) {
		check_fields(h, n);
		cqi_fields_free(h, n);
	}
	return 0;
}
