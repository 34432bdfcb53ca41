/* check.c - the --check expression parser: a pure function.
 *
 *   EXPR   = METRIC [ "[" LABEL "]" ] OP NUMBER [ "%" ] [ ":" LEVEL ]
 *   OP     = "<" | "<=" | ">" | ">=" | "==" | "=" | "!="
 *   LEVEL  = "warn" | "warning" | "crit" | "critical"
 *
 * Spaces are allowed around METRIC, OP, NUMBER and LEVEL.  LABEL is taken
 * as it is (up to "]"), so it may hold spaces.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"

static const char *skip_space(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* METRIC: [a-z0-9_]+ and a name in the table. */
static const char *parse_metric(const char *p, struct cq_check *out,
				char *err, size_t errlen)
{
	size_t n = 0;

	while (islower((unsigned char)p[n]) || isdigit((unsigned char)p[n]) ||
	       p[n] == '_')
		n++;
	if (n == 0) {
		cqi_errbuf(err, errlen, "missing metric name");
		return NULL;
	}
	if (n >= sizeof(out->metric)) {
		cqi_errbuf(err, errlen, "metric name too long");
		return NULL;
	}
	memcpy(out->metric, p, n);
	out->metric[n] = '\0';
	if (!cq_metric_def(out->metric)) {
		cqi_errbuf(err, errlen, "unknown metric '%s'", out->metric);
		return NULL;
	}
	return p + n;
}

static const char *parse_label(const char *p, struct cq_check *out,
			       char *err, size_t errlen)
{
	const char *end = strchr(p + 1, ']');
	size_t n;

	if (!end) {
		cqi_errbuf(err, errlen, "missing ']' after the label");
		return NULL;
	}
	n = (size_t)(end - (p + 1));
	if (n == 0 || n >= sizeof(out->label)) {
		cqi_errbuf(err, errlen, n ? "label too long" : "empty label");
		return NULL;
	}
	if (!cq_metric_def(out->metric)->label) {
		cqi_errbuf(err, errlen, "metric '%s' has no label", out->metric);
		return NULL;
	}
	memcpy(out->label, p + 1, n);
	out->label[n] = '\0';
	out->has_label = true;
	return end + 1;
}

static const char *parse_op(const char *p, enum cq_check_op *op, char *err,
			    size_t errlen)
{
	static const struct {
		const char *s;
		enum cq_check_op op;
	} ops[] = {	/* two-character operators first */
		{ "<=", CQ_OP_LE }, { ">=", CQ_OP_GE }, { "==", CQ_OP_EQ },
		{ "!=", CQ_OP_NE }, { "<", CQ_OP_LT }, { ">", CQ_OP_GT },
		{ "=", CQ_OP_EQ },
	};

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		size_t n = strlen(ops[i].s);

		if (strncmp(p, ops[i].s, n) == 0) {
			*op = ops[i].op;
			return p + n;
		}
	}
	cqi_errbuf(err, errlen, "missing comparison (one of < <= > >= == !=)");
	return NULL;
}

/* A plain decimal number, optionally negative; no hex, exponents, inf. */
static const char *parse_number(const char *p, double *v, char *err,
				size_t errlen)
{
	const char *q = p;
	char *end;
	bool digits = false;

	if (*q == '-' || *q == '+')
		q++;
	while (isdigit((unsigned char)*q) || *q == '.') {
		digits |= *q != '.';
		q++;
	}
	if (!digits) {
		cqi_errbuf(err, errlen, "missing number after the comparison");
		return NULL;
	}
	errno = 0;
	*v = strtod(p, &end);
	if (end != q || errno || !isfinite(*v)) {
		size_t n = strcspn(p, ": \t");

		cqi_errbuf(err, errlen, "bad number '%.*s'", (int)(n > 40 ? 40 : n), p);
		return NULL;
	}
	if (*q == '%') {
		*v /= 100.0;
		q++;
	}
	return q;
}

static const char *parse_level(const char *p, enum cq_check_state *level,
			       char *err, size_t errlen)
{
	static const struct {
		const char *s;
		enum cq_check_state st;
	} levels[] = {
		{ "warning", CQ_STATE_WARN }, { "warn", CQ_STATE_WARN },
		{ "critical", CQ_STATE_CRIT }, { "crit", CQ_STATE_CRIT },
	};
	size_t n = 0;

	while (isalpha((unsigned char)p[n]))
		n++;
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strlen(levels[i].s) == n && strncasecmp(p, levels[i].s, n) == 0) {
			*level = levels[i].st;
			return p + n;
		}
	}
	cqi_errbuf(err, errlen, "bad level '%.*s' (want warn or crit)",
		   (int)(n ? n : strlen(p) > 20 ? 20 : strlen(p)), p);
	return NULL;
}

bool cq_check_parse(const char *expr, struct cq_check *out, char *err,
		    size_t errlen)
{
	const char *p;

	memset(out, 0, sizeof(*out));
	out->level = CQ_STATE_CRIT;
	if (!expr) {
		cqi_errbuf(err, errlen, "empty expression");
		return false;
	}
	p = parse_metric(skip_space(expr), out, err, errlen);
	if (p && *p == '[')
		p = parse_label(p, out, err, errlen);
	if (p)
		p = parse_op(skip_space(p), &out->op, err, errlen);
	if (p)
		p = parse_number(skip_space(p), &out->threshold, err, errlen);
	if (!p)
		return false;
	p = skip_space(p);
	if (*p == ':') {
		p = parse_level(skip_space(p + 1), &out->level, err, errlen);
		if (!p)
			return false;
		p = skip_space(p);
	}
	if (*p) {
		cqi_errbuf(err, errlen, "unexpected '%.20s' at the end", p);
		return false;
	}
	return true;
}
