/*
 * fuzz_warm - the record parsers of `cachectl warm`: TSV lines, -0 pairs,
 * keys (--exec) and JSONL records, and the base64 decoder.
 *
 * The first byte picks the parser; the rest is the record, in a buffer of
 * exactly its size (ASan catches a read past it).  Invariants: a parsed
 * record has a non-empty key, and key, value and tags lie inside the
 * record or the scratch buffer; TSV/-0 split at the first separator; a
 * record written back as `cachectl get --json` writes it
 * (cq_json_value_line) parses again to the same key and value bytes.
 */
#include "fuzz.h"

static bool inside(const char *p, size_t n, const char *base, size_t len)
{
	return p && p >= base && p + n <= base + len;
}

static bool in_rec(const char *p, size_t n, const struct cqi_warm_rec *rec,
		   const char *line, size_t len)
{
	return inside(p, n, line, len) ||
	       inside(p, n, rec->scratch.data, rec->scratch.len);
}

/* The record as a JSON line parses back to the same bytes. */
static void check_json_round_trip(const struct cqi_warm_rec *rec)
{
	struct cqi_warm_rec again = { 0 };
	char err[200];
	char *line = cq_json_value_line(rec->key, rec->keylen, rec->val,
					rec->vallen, NULL);

	if (!line)
		abort();
	FUZZ_ASSERT(cqi_warm_parse_jsonl(line, strlen(line), &again, err,
					sizeof(err)), "'%s': %s", line, err);
	FUZZ_ASSERT(again.keylen == rec->keylen &&
		    memcmp(again.key, rec->key, rec->keylen) == 0,
		    "key changed: %s", line);
	FUZZ_ASSERT(again.vallen == rec->vallen &&
		    memcmp(again.val, rec->val, rec->vallen) == 0,
		    "value changed: %s", line);
	cqi_warm_rec_clear(&again);
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cqi_warm_rec rec = { 0 };
	struct cq_buf b64 = { 0 };
	char err[200], *line;
	size_t len;
	bool ok = false;
	int mode;

	if (size < 1)
		return 0;
	mode = data[0] % 5;
	len = size - 1;
	line = malloc(len ? len : 1);
	if (!line)
		abort();
	memcpy(line, data + 1, len);
	err[0] = '\0';
	switch (mode) {
	case 0:
		ok = cqi_warm_parse_tsv(line, len, &rec, err, sizeof(err));
		if (ok) {
			FUZZ_ASSERT(!memchr(rec.key, '\t', rec.keylen), "TAB in key");
			FUZZ_ASSERT(rec.keylen + 1 + rec.vallen == len, "lengths");
		}
		break;
	case 1:
		ok = cqi_warm_parse_nul(line, len, &rec, err, sizeof(err));
		if (ok) {
			FUZZ_ASSERT(!memchr(rec.key, '\0', rec.keylen), "NUL in key");
			FUZZ_ASSERT(!memchr(rec.val, '\0', rec.vallen), "NUL in value");
		}
		break;
	case 2:
		ok = cqi_warm_parse_key(line, len, &rec, err, sizeof(err));
		break;
	case 3:
		ok = cqi_warm_parse_jsonl(line, len, &rec, err, sizeof(err));
		/* parse a second record into the same struct (scratch reuse) */
		if (ok && len > 1)
			cqi_warm_parse_jsonl(line, len - 1, &rec, err, sizeof(err));
		ok = cqi_warm_parse_jsonl(line, len, &rec, err, sizeof(err));
		if (ok) {
			FUZZ_ASSERT(rec.ttl_ms == -1 || rec.ttl_ms > 0, "ttl %lld",
				    rec.ttl_ms);
			for (size_t i = 0; i < rec.ntags; i++)
				FUZZ_ASSERT(rec.taglens[i] > 0 &&
					    in_rec(rec.tags[i], rec.taglens[i], &rec,
						   line, len), "tag %zu", i);
		}
		break;
	case 4:
		if (cqi_base64_decode(line, len, &b64))
			FUZZ_ASSERT(b64.len <= len * 3 / 4 + 3, "base64 length");
		cq_buf_free(&b64);
		free(line);
		return 0;
	}
	if (ok) {
		FUZZ_ASSERT(rec.keylen > 0 && in_rec(rec.key, rec.keylen, &rec,
						     line, len), "key span");
		if (mode != 2) {
			FUZZ_ASSERT(rec.vallen == 0 ||
				    in_rec(rec.val, rec.vallen, &rec, line, len),
				    "value span");
			FUZZ_ASSERT(rec.val != NULL, "NULL value");
			check_json_round_trip(&rec);
		}
	} else {
		FUZZ_ASSERT(err[0], "failed without a message (mode %d)", mode);
	}
	cqi_warm_rec_clear(&rec);
	free(line);
	return 0;
}
