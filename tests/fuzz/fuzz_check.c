/*
 * fuzz_check - cqstat's --check expressions (cq_check_parse), evaluated
 * against a sample whose labels (queue names, key prefixes: any bytes)
 * and values also come from the input, and the sample's JSON, Prometheus
 * and text forms.
 *
 * Input: EXPR '\n' LABEL '\n' VALUE-BYTES.  Invariants: no crash, leak or
 * UB; a parsed check names a metric of the table and a level; the state
 * is one of the four; the status line starts "CQ <STATE> - "; the JSON is
 * valid; every Prometheus line is a comment or a cq_ sample, whatever
 * bytes a label holds.
 */
#include <math.h>

#include <jansson.h>

#include "fuzz.h"

static const char *const state_names[] = { "OK", "WARNING", "CRITICAL",
					   "UNKNOWN" };

static double value_of(const uint8_t *v, size_t n, size_t i)
{
	if (n == 0)
		return 0;
	switch (v[i % n] % 8) {
	case 0:
		return NAN;
	case 1:
		return 0;
	case 2:
		return -1;
	case 3:
		return 1e300;
	default:
		return (double)v[i % n] / 7.0;
	}
}

static void check_prom(const struct cq_buf *b)
{
	const char *p = b->data, *end = p ? p + b->len : NULL;

	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		FUZZ_ASSERT(nl, "Prometheus text does not end in a newline");
		FUZZ_ASSERT((nl - p >= 2 && memcmp(p, "# ", 2) == 0) ||
			    (nl - p >= 3 && memcmp(p, "cq_", 3) == 0),
			    "bad Prometheus line '%.*s'", (int)(nl - p), p);
		p = nl + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl1 = memchr(data, '\n', size), *nl2 = NULL;
	const uint8_t *label = (const uint8_t *)"", *vals = NULL;
	size_t labellen = 0, nvals = 0, ndefs;
	const struct cq_metric_def *defs = cq_metric_defs(&ndefs);
	struct cq_check chk[2];
	struct cq_metrics ms;
	struct cq_buf line = { 0 }, prom = { 0 }, text = { 0 };
	enum cq_check_state st;
	char *expr, err[200], *json;
	size_t nchk = 0;

	expr = fuzz_cstr(data, nl1 ? (size_t)(nl1 - data) : size);
	if (nl1) {
		label = nl1 + 1;
		nl2 = memchr(label, '\n', size - (size_t)(label - data));
		labellen = nl2 ? (size_t)(nl2 - label) : size - (size_t)(label - data);
		if (nl2) {
			vals = nl2 + 1;
			nvals = size - (size_t)(vals - data);
		}
	}
	err[0] = '\0';
	if (cq_check_parse(expr, &chk[0], err, sizeof(err))) {
		FUZZ_ASSERT(cq_metric_def(chk[0].metric) != NULL, "metric");
		FUZZ_ASSERT(chk[0].level == CQ_STATE_WARN ||
			    chk[0].level == CQ_STATE_CRIT, "level");
		FUZZ_ASSERT(!isnan(chk[0].threshold), "threshold NaN");
		nchk = 1;
	} else {
		FUZZ_ASSERT(err[0], "no message for '%s'", expr);
	}
	if (cq_check_parse("hit_rate<0.5:warn", &chk[nchk], err, sizeof(err)))
		nchk++;
	cq_metrics_init(&ms);
	for (size_t i = 0; i < ndefs; i++)
		if (!cqi_metrics_add(&ms, defs[i].name,
				    defs[i].label ? (const char *)label : NULL,
				    labellen, value_of(vals, nvals, i)))
			abort();
	if (labellen && !memchr(label, '\0', labellen)) {
		char *q = fuzz_cstr(label, labellen);

		cqi_metrics_add_queue(&ms, q, NULL, nvals & 1);
		free(q);
	}
	if (!cq_checks_eval(chk, nchk, &ms, &st, &line))
		abort();
	FUZZ_ASSERT(st <= CQ_STATE_UNKNOWN, "state %d", st);
	FUZZ_ASSERT(line.len > 3 + strlen(state_names[st]) &&
		    memcmp(line.data, "CQ ", 3) == 0 &&
		    memcmp(line.data + 3, state_names[st],
			   strlen(state_names[st])) == 0,
		    "status line '%.*s' for state %d", (int)line.len, line.data, st);
	json = cq_metrics_json(&ms);
	if (json) {
		json_t *j = json_loads(json, 0, NULL);

		FUZZ_ASSERT(j != NULL, "invalid JSON: %s", json);
		json_decref(j);
		free(json);
	}
	if (cq_metrics_prom(&ms, &prom))
		check_prom(&prom);
	cq_metrics_text(&ms, &text);
	cq_metrics_clear(&ms);
	cq_buf_free(&line);
	cq_buf_free(&prom);
	cq_buf_free(&text);
	free(expr);
	return 0;
}
