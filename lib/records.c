/* records.c - the record parsers of warm: TSV, -0 pairs, JSONL, keys.
 * Pure functions (no I/O, no context), so a fuzzer can drive them. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"

void cqi_warm_rec_clear(struct cqi_warm_rec *rec)
{
	if (!rec)
		return;
	cq_buf_free(&rec->scratch);
	memset(rec, 0, sizeof(*rec));
}

/* Forget the previous record but keep the scratch buffer for reuse. */
static void rec_reset(struct cqi_warm_rec *rec)
{
	/* field by field: the tag arrays need no clearing with ntags 0, and
	 * this runs once per input line */
	rec->key = rec->val = NULL;
	rec->keylen = rec->vallen = 0;
	rec->ntags = 0;
	rec->ttl_ms = -1;
	rec->nomem = false;
	cq_buf_reset(&rec->scratch);
}


static bool fail(char *err, size_t errlen, const char *msg)
{
	cqi_errbuf(err, errlen, "%s", msg);
	return false;
}

/* Out of memory is no fault of the record: say so apart. */
static bool nomem(struct cqi_warm_rec *rec, char *err, size_t errlen)
{
	rec->nomem = true;
	return fail(err, errlen, "out of memory");
}

bool cqi_warm_parse_tsv(const char *line, size_t len, struct cqi_warm_rec *rec,
		       char *err, size_t errlen)
{
	const char *tab;

	rec_reset(rec);
	tab = line ? memchr(line, '\t', len) : NULL;
	if (!tab)
		return fail(err, errlen, len ? "missing TAB between key and value" :
				"empty line");
	if (tab == line)
		return fail(err, errlen, "empty key");
	if (memchr(line, '\n', (size_t)(tab - line)))
		return fail(err, errlen, "newline inside the key");
	rec->key = line;
	rec->keylen = (size_t)(tab - line);
	rec->val = tab + 1;
	rec->vallen = len - rec->keylen - 1;
	return true;
}

bool cqi_warm_parse_nul(const char *data, size_t len, struct cqi_warm_rec *rec,
		       char *err, size_t errlen)
{
	const char *nul;

	rec_reset(rec);
	nul = data ? memchr(data, '\0', len) : NULL;
	if (!nul)
		return fail(err, errlen, "key without a value (odd number of NUL-separated fields)");
	if (nul == data)
		return fail(err, errlen, "empty key");
	rec->key = data;
	rec->keylen = (size_t)(nul - data);
	rec->val = nul + 1;
	rec->vallen = len - rec->keylen - 1;
	if (memchr(rec->val, '\0', rec->vallen))
		return fail(err, errlen, "more than two fields in a record");
	return true;
}

bool cqi_warm_parse_key(const char *line, size_t len, struct cqi_warm_rec *rec,
		       char *err, size_t errlen)
{
	rec_reset(rec);
	if (!line || !len)
		return fail(err, errlen, "empty key");
	rec->key = line;
	rec->keylen = len;
	return true;
}

/* Where each piece of a JSONL record sits in scratch (it may move while
 * growing, so pointers are set at the end). */
struct spans {
	size_t key, keylen, val, vallen;
	size_t tag[CQ_WARM_MAX_TAGS];
};

static bool json_bytes(json_t *str, json_t *b64, struct cq_buf *sc,
		       size_t *off, size_t *len)
{
	*off = sc->len;
	if (str) {
		if (!cq_buf_append(sc, json_string_value(str),
				   json_string_length(str)))
			return false;	/* the caller tells: str given */
	} else if (!cqi_base64_decode(json_string_value(b64),
				     json_string_length(b64), sc)) {
		return false;
	}
	*len = sc->len - *off;
	return true;
}

static bool take_ttl(json_t *ttl, json_t *ttl_ms, struct cqi_warm_rec *rec,
		     char *err, size_t errlen)
{
	long long ms;

	/* null: no TTL of its own (get --json's form of "no expiry") */
	if (json_is_null(ttl))
		ttl = NULL;
	if (json_is_null(ttl_ms))
		ttl_ms = NULL;
	if (ttl && ttl_ms)
		return fail(err, errlen, "both \"ttl\" and \"ttl_ms\"");
	if (ttl_ms) {
		if (!json_is_integer(ttl_ms) || json_integer_value(ttl_ms) <= 0)
			return fail(err, errlen, "\"ttl_ms\" must be a positive integer");
		rec->ttl_ms = json_integer_value(ttl_ms);
		return true;
	}
	if (!ttl)
		return true;
	if (json_is_string(ttl)) {
		if (!cq_parse_duration(json_string_value(ttl), &ms) || ms <= 0)
			return fail(err, errlen, "\"ttl\" is not a positive duration (e.g. 30s, 5m, 250ms)");
	} else if (json_is_number(ttl)) {
		double v = json_number_value(ttl);

		if (!(v > 0 && v < 9e12))
			return fail(err, errlen, "\"ttl\" must be a positive number of seconds");
		ms = (long long)(v * 1000 + 0.5);
		if (ms <= 0)
			return fail(err, errlen, "\"ttl\" is under a millisecond");
	} else {
		return fail(err, errlen, "\"ttl\" must be seconds or a duration string");
	}
	rec->ttl_ms = ms;
	return true;
}

static bool take_tags(json_t *tags, struct cqi_warm_rec *rec, struct spans *sp,
		      char *err, size_t errlen)
{
	size_t i;
	json_t *t;

	if (!tags)
		return true;
	if (!json_is_array(tags))
		return fail(err, errlen, "\"tags\" must be an array of strings");
	if (json_array_size(tags) > CQ_WARM_MAX_TAGS)
		return fail(err, errlen, "more than 32 tags");
	json_array_foreach(tags, i, t) {
		if (!json_is_string(t) || json_string_length(t) == 0)
			return fail(err, errlen, "\"tags\" must be an array of non-empty strings");
		sp->tag[i] = rec->scratch.len;
		rec->taglens[i] = json_string_length(t);
		if (!cq_buf_append(&rec->scratch, json_string_value(t),
				   rec->taglens[i]))
			return nomem(rec, err, errlen);
	}
	rec->ntags = json_array_size(tags);
	return true;
}

static bool known_field(const char *k)
{
	static const char *const names[] = {
		"key", "key_base64", "value", "value_base64", "ttl", "ttl_ms",
		"tags",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(k, names[i]) == 0)
			return true;
	return false;
}

static bool take_value(json_t *v, json_t *vb, struct cqi_warm_rec *rec,
		       struct spans *sp, char *err, size_t errlen)
{
	char *text;
	bool ok;

	if (v && vb)
		return fail(err, errlen, "both \"value\" and \"value_base64\"");
	if (!v && !vb)
		return fail(err, errlen, "missing \"value\"");
	if (vb && !json_is_string(vb))
		return fail(err, errlen, "\"value_base64\" must be a string");
	if (vb || json_is_string(v)) {
		if (!json_bytes(vb ? NULL : v, vb, &rec->scratch, &sp->val,
				&sp->vallen))
			return vb ? fail(err, errlen, "\"value_base64\" is not valid base64") :
			       nomem(rec, err, errlen);
		return true;
	}
	/* any other JSON value is stored as its compact text */
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	if (!text)
		return nomem(rec, err, errlen);
	sp->val = rec->scratch.len;
	sp->vallen = strlen(text);
	ok = cq_buf_append(&rec->scratch, text, sp->vallen);
	free(text);
	return ok ? true : nomem(rec, err, errlen);
}

static bool take_record(json_t *o, struct cqi_warm_rec *rec, char *err,
			size_t errlen)
{
	json_t *k = json_object_get(o, "key"), *kb = json_object_get(o, "key_base64");
	struct spans sp = { 0 };
	const char *name;
	json_t *v;

	json_object_foreach(o, name, v) {
		if (!known_field(name)) {
			cqi_errbuf(err, errlen, "unknown field \"%.60s\"", name);
			return false;
		}
	}
	if (k && kb)
		return fail(err, errlen, "both \"key\" and \"key_base64\"");
	if ((!k || !json_is_string(k)) && (!kb || !json_is_string(kb)))
		return fail(err, errlen, k || kb ? "\"key\" must be a string" :
				"missing \"key\"");
	if (!json_bytes(k, kb, &rec->scratch, &sp.key, &sp.keylen))
		return kb ? fail(err, errlen, "\"key_base64\" is not valid base64") :
		       nomem(rec, err, errlen);
	if (sp.keylen == 0)
		return fail(err, errlen, "empty key");
	if (!take_value(json_object_get(o, "value"),
			json_object_get(o, "value_base64"), rec, &sp, err, errlen))
		return false;
	if (!take_ttl(json_object_get(o, "ttl"), json_object_get(o, "ttl_ms"),
		      rec, err, errlen))
		return false;
	if (!take_tags(json_object_get(o, "tags"), rec, &sp, err, errlen))
		return false;
	rec->key = rec->scratch.data + sp.key;
	rec->keylen = sp.keylen;
	rec->val = rec->scratch.data + sp.val;
	rec->vallen = sp.vallen;
	for (size_t i = 0; i < rec->ntags; i++)
		rec->tags[i] = rec->scratch.data + sp.tag[i];
	return true;
}

bool cqi_warm_parse_jsonl(const char *line, size_t len, struct cqi_warm_rec *rec,
			 char *err, size_t errlen)
{
	json_t *o;
	bool ok;

	rec_reset(rec);
	if (!(o = cqi_jsonl_object(line, len, err, errlen)))
		return false;
	ok = take_record(o, rec, err, errlen);
	json_decref(o);
	return ok;
}
