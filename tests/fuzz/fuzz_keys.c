/*
 * fuzz_keys - the key names cq derives (cqi_derived_key) and the SCAN glob
 * escaper (cqi_glob_escape).
 *
 * Input: byte 0 splits the rest into a prefix and a key (both may hold any
 * byte, braces included).  Invariants (Redis Cluster comes next):
 * a derived key hashes to the same slot as the full key it belongs to,
 * ends in "|cq:" WHAT, differs from the key, and starts with the prefix
 * (unless the prefix holds a '{'); an escaped glob is at
 * most twice as long and holds every byte of the input in order.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const whats[] = { "lock", "meta" };
	struct cq_buf full = { 0 }, der = { 0 }, esc = { 0 };
	size_t split, j = 0;
	char *prefix;

	if (size < 1)
		return 0;
	split = size > 1 ? data[0] % size : 0;
	prefix = fuzz_cstr(data + 1, split);
	if (!cq_buf_append(&full, prefix, strlen(prefix)) ||
	    !cq_buf_append(&full, data + 1 + split, size - 1 - split))
		abort();
	for (size_t w = 0; w < 2; w++) {
		size_t wl = strlen(whats[w]);

		cq_buf_reset(&der);
		if (!cqi_derived_key(split ? prefix : NULL, full.data, full.len,
				    whats[w], &der))
			abort();
		FUZZ_ASSERT(cqi_key_slot(der.data, der.len) ==
			    cqi_key_slot(full.data, full.len),
			    "slot of derived key %u != %u (key %zu bytes)",
			    cqi_key_slot(der.data, der.len),
			    cqi_key_slot(full.data, full.len), full.len);
		FUZZ_ASSERT(der.len > wl + 4 &&
			    memcmp(der.data + der.len - wl - 4, "|cq:", 4) == 0 &&
			    memcmp(der.data + der.len - wl, whats[w], wl) == 0,
			    "derived key does not end in |cq:%s", whats[w]);
		/* under the caller's prefix (ACL patterns like ~app:*) */
		if (split && !strchr(prefix, '{'))
			FUZZ_ASSERT(der.len >= strlen(prefix) &&
				    memcmp(der.data, prefix, strlen(prefix)) == 0,
				    "derived key leaves the prefix");
		FUZZ_ASSERT(der.len != full.len ||
			    memcmp(der.data, full.data, full.len) != 0,
			    "derived key equals the key");
	}
	if (!cqi_glob_escape(full.data, full.len, &esc))
		abort();
	FUZZ_ASSERT(esc.len <= 2 * full.len, "escape too long");
	for (size_t i = 0; i < esc.len && j < full.len; i++)
		if (esc.data[i] == full.data[j])
			j++;
	FUZZ_ASSERT(j == full.len, "escape lost a byte");
	cq_buf_free(&full);
	cq_buf_free(&der);
	cq_buf_free(&esc);
	free(prefix);
	return 0;
}
