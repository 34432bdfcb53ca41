/* json.c - JSON helpers over jansson: output, the object of one JSONL
 * line (the input of warm --jsonl and enqueue --jsonl), and base64. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"

char *cqi_base64(const void *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = p;
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (!out)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = tab[s[i] >> 2];
		*o++ = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
		*o++ = tab[((s[i + 1] & 15) << 2) | (s[i + 2] >> 6)];
		*o++ = tab[s[i + 2] & 63];
	}
	if (i < n) {
		*o++ = tab[s[i] >> 2];
		if (i + 1 < n) {
			*o++ = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
			*o++ = tab[(s[i + 1] & 15) << 2];
		} else {
			*o++ = tab[(s[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

bool cqi_base64_decode(const char *s, size_t n, struct cq_buf *out)
{
	unsigned acc = 0;
	int bits = 0;
	size_t i, pad = 0;
	char *o;

	if (!cq_buf_reserve(out, n / 4 * 3 + 3))
		return false;
	o = out->data + out->len;
	for (i = 0; i < n; i++) {
		int v;

		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad)
			return false;	/* data after padding */
		v = b64_val((unsigned char)s[i]);
		if (v < 0)
			return false;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			*o++ = (char)((acc >> bits) & 0xff);
		}
	}
	/* leftover bits must be zero padding, at most 2 '=' */
	if (pad > 2 || bits >= 6 || (acc & ((1U << bits) - 1)))
		return false;
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
	return true;
}

int cqi_json_set_bytes(json_t *obj, const char *name, const char *p,
		       size_t n)
{
	json_t *s = json_stringn(p, n);
	char alt[64], *b;
	int r;

	if (s)
		return json_object_set_new(obj, name, s);
	snprintf(alt, sizeof(alt), "%s_base64", name);
	b = cqi_base64(p, n);
	if (!b)
		return -1;
	r = json_object_set_new(obj, alt, json_string(b));
	free(b);
	return r;
}

json_t *cq_json_pack(const char *fmt, ...)
{
	va_list ap;
	json_t *obj;

	va_start(ap, fmt);
	obj = json_vpack_ex(NULL, 0, fmt, ap);
	va_end(ap);
	return obj;
}

json_t *cq_json_add(json_t *obj, const char *fmt, ...)
{
	va_list ap;
	json_t *more;

	if (!obj)
		return NULL;
	va_start(ap, fmt);
	more = json_vpack_ex(NULL, 0, fmt, ap);
	va_end(ap);
	if (!more || json_object_update(obj, more)) {
		json_decref(obj);
		obj = NULL;
	}
	json_decref(more);
	return obj;
}

json_t *cq_json_add_bytes(json_t *obj, const char *name, const char *p,
			  size_t n)
{
	if (obj && cqi_json_set_bytes(obj, name, p, n)) {
		json_decref(obj);
		obj = NULL;
	}
	return obj;
}

char *cq_json_line(json_t *obj)
{
	char *line = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER |
				      JSON_REAL_PRECISION(15)) : NULL;

	json_decref(obj);
	return line;
}

char *cq_json_value_line(const char *key, size_t keylen, const char *val,
			 size_t len, const long long *ttl_ms)
{
	json_t *o = json_object();
	char *out = NULL;

	if (!o)
		return NULL;
	if (cqi_json_set_bytes(o, "key", key, keylen))
		goto done;
	if (val ? cqi_json_set_bytes(o, "value", val, len) :
		  json_object_set_new(o, "value", json_null()))
		goto done;
	if (ttl_ms &&
	    json_object_set_new(o, "ttl_ms", !val || *ttl_ms < 0 ?
				json_null() : json_integer(*ttl_ms)))
		goto done;
	out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
done:
	json_decref(o);
	return out;
}

/* JSON's whitespace, which may follow the object. */
static bool json_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The column (1 for the first) of line[at], in characters as jansson
 * counts them: bytes that do not continue a UTF-8 sequence. */
static size_t column_of(const char *line, size_t at)
{
	size_t col = 1;

	for (size_t i = 0; i < at; i++)
		col += ((unsigned char)line[i] & 0xc0) != 0x80;
	return col;
}

json_t *cqi_jsonl_object(const char *line, size_t len, char *err,
			 size_t errlen)
{
	char shown[200];
	json_error_t je;
	json_t *o;
	size_t at;

	if (!line || !len) {
		cqi_errbuf(err, errlen, "empty line");
		return NULL;
	}
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES |
		       JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL, &je);
	if (!o) {
		cqi_errbuf(err, errlen, "bad JSON at column %d: %s", je.column,
			   je.text);
		return NULL;
	}
	/* anything after the object but blanks (a NUL too) is an error */
	for (at = je.position; at < len && json_blank(line[at]); at++)
		;
	if (at < len) {
		cqi_show_bytes(line + at, len - at, 40, shown, sizeof(shown));
		cqi_errbuf(err, errlen, "text after the JSON object at column %zu: '%s'",
			   column_of(line, at), shown);
	} else if (!json_is_object(o)) {
		cqi_show_bytes(line, len, 40, shown, sizeof(shown));
		cqi_errbuf(err, errlen, "not a JSON object: '%s'", shown);
	} else {
		return o;
	}
	json_decref(o);
	return NULL;
}
