/* mgmt.c - the RabbitMQ management HTTP API (libcurl + jansson): unacked
 * messages, rates, queues by glob, where dead letters go.  Only cqstat
 * links this file. */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cq.h"
#include "internal.h"

#define MAX_BODY (64u << 20)	/* a reply larger than this is refused */

#define QUEUE_COLUMNS "name,messages_ready,messages_unacknowledged,consumers," \
	"arguments,effective_policy_definition," \
	"message_stats.publish_details.rate," \
	"message_stats.deliver_get_details.rate,message_stats.ack_details.rate," \
	"type,leader,members,online"

struct api {
	struct cq_ctx *ctx;
	CURL *curl;
	const char *url;	/* the base URL, as given */
	size_t base_len;	/* without trailing slashes */
	char safe[300];		/* the base URL without its password */
	char *vhost;		/* escaped */
	struct cq_buf body;
	char errbuf[CURL_ERROR_SIZE];
};

void cqi_api_queues_free(struct cqi_api_queue *q, size_t n)
{
	if (!q)
		return;
	for (size_t i = 0; i < n; i++) {
		free(q[i].name);
		free(q[i].dlq);
		free(q[i].leader);
		for (size_t j = 0; j < q[i].nmembers; j++)
			free(q[i].members[j].node);
		free(q[i].members);
	}
	free(q);
}

void cqi_api_nodes_free(struct cqi_api_node *n, size_t count)
{
	if (!n)
		return;
	for (size_t i = 0; i < count; i++)
		free(n[i].name);
	free(n);
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct cq_buf *b = arg;

	if (b->len + n > MAX_BODY || !cq_buf_append(b, p, n))
		return 0;	/* curl reports a write error */
	(void)size;
	return n;
}

/* The AMQP URL's user and password, used when the API URL has none. */
static void amqp_login(struct api *a)
{
	const char *list = a->ctx->set.amqp_url;
	struct cqi_amqp_url u;
	char *one, err[100];

	if (!list || strstr(a->url, "@"))
		return;
	one = strndup(list, strcspn(list, ","));
	if (!one)
		return;
	if (cqi_amqp_url_parse(one, &u, err, sizeof(err)) == CQ_OK) {
		curl_easy_setopt(a->curl, CURLOPT_USERNAME, u.user);
		curl_easy_setopt(a->curl, CURLOPT_PASSWORD, u.pass);
		cqi_amqp_url_clear(&u);
	}
	free(one);
}

static enum cq_err api_open(struct api *a, struct cq_ctx *ctx, const char *url,
			    const char *vhost)
{
	static bool global;

	memset(a, 0, sizeof(*a));
	a->ctx = ctx;
	a->url = url;
	a->base_len = strlen(url);
	while (a->base_len > 0 && url[a->base_len - 1] == '/')
		a->base_len--;
	cqi_url_redact(url, a->safe, sizeof(a->safe));
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "bad management API URL '%s' (want http[s]://[user:pass@]host:port)",
				 a->safe);
	if (!global && curl_global_init(CURL_GLOBAL_DEFAULT) == 0)
		global = true;
	a->curl = curl_easy_init();
	if (!a->curl)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "cannot start libcurl");
	a->vhost = curl_easy_escape(a->curl, vhost ? vhost : "/", 0);
	if (!a->vhost)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	curl_easy_setopt(a->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(a->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->curl, CURLOPT_TIMEOUT_MS, (long)ctx->set.timeout_ms);
	curl_easy_setopt(a->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)ctx->set.timeout_ms);
	curl_easy_setopt(a->curl, CURLOPT_ERRORBUFFER, a->errbuf);
	curl_easy_setopt(a->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(a->curl, CURLOPT_WRITEDATA, &a->body);
	curl_easy_setopt(a->curl, CURLOPT_USERAGENT, "cqstat/" CQ_VERSION);
	if (ctx->set.cacert)
		curl_easy_setopt(a->curl, CURLOPT_CAINFO, ctx->set.cacert);
	amqp_login(a);
	return CQ_OK;
}

static void api_close(struct api *a)
{
	if (a->vhost)
		curl_free(a->vhost);
	if (a->curl)
		curl_easy_cleanup(a->curl);
	cq_buf_free(&a->body);
}

static enum cq_err http_err(struct api *a, CURLcode rc)
{
	enum cq_err e = CQ_ERR_TEMPFAIL;

	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		e = CQ_ERR_UNAVAILABLE;
	else if (rc == CURLE_OUT_OF_MEMORY)
		e = CQ_ERR_NOMEM;
	else if (rc == CURLE_PEER_FAILED_VERIFICATION)
		e = CQ_ERR_NOPERM;
	return cq_seterr(a->ctx, e, "management API at %s: %s", a->safe,
			 a->errbuf[0] ? a->errbuf : curl_easy_strerror(rc));
}

/*
 * GET base + path into *out (parsed JSON).  A 404 is CQ_ERR_NOTFOUND
 * without a context error (the caller decides), anything else that is
 * not 200 is an error.
 */
static enum cq_err api_get(struct api *a, const char *path, json_t **out)
{
	struct cq_buf url = { 0 };
	json_error_t jerr;
	long status = 0;
	CURLcode rc;

	*out = NULL;
	cq_buf_reset(&a->body);
	a->errbuf[0] = '\0';
	if (!cq_buf_append(&url, a->url, a->base_len) ||
	    !cq_buf_append(&url, path, strlen(path))) {
		cq_buf_free(&url);
		return cq_seterr(a->ctx, CQ_ERR_NOMEM, "out of memory");
	}
	curl_easy_setopt(a->curl, CURLOPT_URL, url.data);
	rc = curl_easy_perform(a->curl);
	cq_buf_free(&url);
	if (rc != CURLE_OK)
		return http_err(a, rc);
	curl_easy_getinfo(a->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status == 404)
		return CQ_ERR_NOTFOUND;
	if (status == 401 || status == 403)
		return cq_seterr(a->ctx, CQ_ERR_NOPERM,
				 "management API at %s refused the login (HTTP %ld)",
				 a->safe, status);
	if (status != 200)
		return cq_seterr(a->ctx, status >= 500 ? CQ_ERR_TEMPFAIL : CQ_ERR_DATA,
				 "management API at %s: HTTP %ld", a->safe, status);
	*out = json_loadb(a->body.data ? a->body.data : "", a->body.len, 0, &jerr);
	if (!*out)
		return cq_seterr(a->ctx, CQ_ERR_DATA,
				 "management API at %s: bad JSON: %s", a->safe,
				 jerr.text);
	return CQ_OK;
}

/* A number at a dotted path of obj, NAN when absent. */
static double num_at(json_t *obj, const char *path)
{
	char key[64];

	while (obj && json_is_object(obj)) {
		size_t n = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		obj = json_object_get(obj, key);
		if (!path[n])
			return json_is_number(obj) ? json_number_value(obj) : NAN;
		path += n + 1;
	}
	return NAN;
}

static const char *str_in(json_t *q, const char *arg, const char *policy)
{
	json_t *v = json_object_get(json_object_get(q, "arguments"), arg);

	if (!json_is_string(v))
		v = json_object_get(json_object_get(q, "effective_policy_definition"),
				    policy);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The queue bound to exchange dlx that takes routing key rk: the binding
 * with that key, else the only queue bound.  NULL when unknown. */
static char *bound_queue(struct api *a, const char *dlx, const char *rk)
{
	char *ex = curl_easy_escape(a->curl, dlx, 0), *found = NULL;
	const char *only = NULL;
	struct cq_buf path = { 0 };
	json_t *arr = NULL, *b;
	size_t i, nqueues = 0;

	if (ex && cq_buf_append(&path, "/api/exchanges/", 15) &&
	    cq_buf_append(&path, a->vhost, strlen(a->vhost)) &&
	    cq_buf_append(&path, "/", 1) && cq_buf_append(&path, ex, strlen(ex)) &&
	    cq_buf_append(&path, "/bindings/source", 16) &&
	    api_get(a, path.data, &arr) == CQ_OK) {
		json_array_foreach(arr, i, b) {
			const char *dest = json_string_value(json_object_get(b, "destination"));
			const char *type = json_string_value(json_object_get(b, "destination_type"));
			const char *key = json_string_value(json_object_get(b, "routing_key"));

			if (!dest || !type || strcmp(type, "queue") != 0)
				continue;
			nqueues++;
			only = dest;
			if (key && strcmp(key, rk) == 0 && !found)
				found = strdup(dest);
		}
		if (!found && nqueues == 1)
			found = strdup(only);
	}
	if (ex)
		curl_free(ex);
	cq_buf_free(&path);
	json_decref(arr);
	return found;
}

/* Where the dead letters of queue q go, or NULL. */
static char *dead_letter_queue(struct api *a, json_t *q, const char *name)
{
	const char *dlx = str_in(q, "x-dead-letter-exchange", "dead-letter-exchange");
	const char *rk = str_in(q, "x-dead-letter-routing-key",
				"dead-letter-routing-key");
	enum cq_err saved = a->ctx->err;
	char *found;

	if (!dlx)
		return NULL;
	if (!rk)
		rk = name;	/* dead letters keep their routing key */
	if (!*dlx)
		return strdup(rk);	/* the default exchange: the queue itself */
	found = bound_queue(a, dlx, rk);
	/* not knowing the DLQ is not an error of the sample */
	if (!saved)
		cqi_err_drop(a->ctx);
	return found;
}

/* A string in a JSON array of strings. */
static bool in_list(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	}
	return false;
}

/* A quorum queue's leader and members (online: in the "online" list). */
static enum cq_err fill_members(struct api *a, json_t *obj,
				struct cqi_api_queue *q)
{
	const char *type = json_string_value(json_object_get(obj, "type"));
	const char *leader = json_string_value(json_object_get(obj, "leader"));
	json_t *members = json_object_get(obj, "members");
	json_t *online = json_object_get(obj, "online");
	json_t *v;
	size_t i;

	if (!type || strcmp(type, "quorum") != 0)
		return CQ_OK;
	q->quorum = true;
	if (leader && !(q->leader = strdup(leader)))
		goto nomem;
	q->members = calloc(json_array_size(members) + 1, sizeof(*q->members));
	if (!q->members)
		goto nomem;
	json_array_foreach(members, i, v) {
		struct cq_member *m = &q->members[q->nmembers];

		if (!json_is_string(v))
			continue;
		if (!(m->node = strdup(json_string_value(v))))
			goto nomem;
		m->leader = leader && strcmp(leader, m->node) == 0;
		m->online = in_list(online, m->node);
		q->nmembers++;
	}
	return CQ_OK;
nomem:
	return cq_seterr(a->ctx, CQ_ERR_NOMEM, "out of memory");
}

static enum cq_err fill(struct api *a, json_t *obj, const char *name,
			struct cqi_api_queue *q)
{
	q->name = strdup(name);
	if (!q->name)
		return cq_seterr(a->ctx, CQ_ERR_NOMEM, "out of memory");
	q->ready = num_at(obj, "messages_ready");
	q->unacked = num_at(obj, "messages_unacknowledged");
	q->consumers = num_at(obj, "consumers");
	q->publish_rate = num_at(obj, "message_stats.publish_details.rate");
	q->deliver_rate = num_at(obj, "message_stats.deliver_get_details.rate");
	q->ack_rate = num_at(obj, "message_stats.ack_details.rate");
	/* a queue that saw no traffic has no message_stats: rate 0 */
	if (obj && !json_object_get(obj, "message_stats")) {
		q->publish_rate = q->deliver_rate = q->ack_rate = 0;
	} else if (obj) {
		if (isnan(q->publish_rate))
			q->publish_rate = 0;
		if (isnan(q->deliver_rate))
			q->deliver_rate = 0;
		if (isnan(q->ack_rate))
			q->ack_rate = 0;
	}
	if (obj) {
		q->found = true;
		q->dlq = dead_letter_queue(a, obj, name);
		return fill_members(a, obj, q);
	}
	return CQ_OK;
}

static void nan_queue(struct cqi_api_queue *q)
{
	q->ready = q->unacked = q->consumers = NAN;
	q->publish_rate = q->deliver_rate = q->ack_rate = NAN;
}

static enum cq_err named(struct api *a, const char *const *names, size_t n,
			 struct cqi_api_queue *out)
{
	enum cq_err e = CQ_OK;

	for (size_t i = 0; i < n && !e; i++) {
		char *esc = curl_easy_escape(a->curl, names[i], 0), *path = NULL;
		json_t *obj = NULL;

		nan_queue(&out[i]);
		if (!esc || asprintf(&path, "/api/queues/%s/%s?columns=%s",
				     a->vhost, esc, QUEUE_COLUMNS) < 0)
			e = cq_seterr(a->ctx, CQ_ERR_NOMEM, "out of memory");
		else
			e = api_get(a, path, &obj);
		if (e == CQ_ERR_NOTFOUND)
			e = CQ_OK;	/* every figure stays unknown */
		if (!e)
			e = fill(a, obj, names[i], &out[i]);
		json_decref(obj);
		free(path);
		if (esc)
			curl_free(esc);
	}
	return e;
}

static enum cq_err matching(struct api *a, const char *glob,
			    struct cqi_api_queue **out, size_t *nout)
{
	char *path = NULL;
	json_t *arr = NULL, *q;
	enum cq_err e;
	size_t i;

	if (asprintf(&path, "/api/queues/%s?columns=%s", a->vhost, QUEUE_COLUMNS) < 0)
		return cq_seterr(a->ctx, CQ_ERR_NOMEM, "out of memory");
	e = api_get(a, path, &arr);
	free(path);
	if (e == CQ_ERR_NOTFOUND)
		return cq_seterr(a->ctx, CQ_ERR_NOTFOUND,
				 "management API at %s: no such vhost", a->safe);
	if (!e && !json_is_array(arr))
		e = cq_seterr(a->ctx, CQ_ERR_DATA,
			      "management API at %s: not a list of queues", a->safe);
	if (!e)
		*out = calloc(json_array_size(arr) + 1, sizeof(**out));
	if (!e && !*out)
		e = cq_seterr(a->ctx, CQ_ERR_NOMEM, "out of memory");
	json_array_foreach(arr, i, q) {
		const char *name = json_string_value(json_object_get(q, "name"));

		if (e)
			break;
		if (!name || fnmatch(glob, name, 0) != 0)
			continue;
		nan_queue(&(*out)[*nout]);
		e = fill(a, q, name, &(*out)[*nout]);
		(*nout)++;
	}
	json_decref(arr);
	return e;
}

enum cq_err cqi_api_queues(struct cq_ctx *ctx, const char *url,
			  const char *vhost, const char *const *names,
			  size_t n, const char *glob,
			  struct cqi_api_queue **out, size_t *nout)
{
	struct api a;
	enum cq_err e;

	*out = NULL;
	*nout = 0;
	if (ctx->err)
		return ctx->err;
	e = api_open(&a, ctx, url, vhost);
	if (!e && glob) {
		e = matching(&a, glob, out, nout);
	} else if (!e) {
		*out = calloc(n + 1, sizeof(**out));
		if (!*out)
			e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		else
			*nout = n;
		if (!e)
			e = named(&a, names, n, *out);
	}
	api_close(&a);
	if (e) {
		cqi_api_queues_free(*out, *nout);
		*out = NULL;
		*nout = 0;
	}
	return e;
}

enum cq_err cqi_api_nodes(struct cq_ctx *ctx, const char *url,
			 struct cqi_api_node **out, size_t *nout)
{
	struct api a;
	json_t *arr = NULL, *o;
	enum cq_err e;
	size_t i;

	*out = NULL;
	*nout = 0;
	if (ctx->err)
		return ctx->err;
	e = api_open(&a, ctx, url, NULL);
	if (!e)
		e = api_get(&a, "/api/nodes?columns=name,running,mem_alarm,disk_free_alarm,partitions",
			    &arr);
	if (e == CQ_ERR_NOTFOUND)
		e = cq_seterr(ctx, CQ_ERR_DATA,
			      "management API at %s: no /api/nodes (HTTP 404)", a.safe);
	if (!e && !json_is_array(arr))
		e = cq_seterr(ctx, CQ_ERR_DATA,
			      "management API at %s: not a list of nodes", a.safe);
	if (!e && !(*out = calloc(json_array_size(arr) + 1, sizeof(**out))))
		e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	json_array_foreach(arr, i, o) {
		struct cqi_api_node *n = &(*out)[*nout];
		const char *name = json_string_value(json_object_get(o, "name"));

		if (e)
			break;
		if (!name)
			continue;
		if (!(n->name = strdup(name))) {
			e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
			break;
		}
		n->running = json_is_true(json_object_get(o, "running"));
		n->mem_alarm = json_is_true(json_object_get(o, "mem_alarm"));
		n->disk_alarm = json_is_true(json_object_get(o, "disk_free_alarm"));
		n->partitions = json_array_size(json_object_get(o, "partitions"));
		(*nout)++;
	}
	json_decref(arr);
	api_close(&a);
	if (e) {
		cqi_api_nodes_free(*out, *nout);
		*out = NULL;
		*nout = 0;
	}
	return e;
}

enum cq_err cqi_api_ping(struct cq_ctx *ctx, const char *url)
{
	struct api a;
	json_t *who = NULL;
	enum cq_err e;

	if (ctx->err)
		return ctx->err;
	e = api_open(&a, ctx, url, NULL);
	if (!e)
		e = api_get(&a, "/api/whoami", &who);
	if (e == CQ_ERR_NOTFOUND)
		e = cq_seterr(ctx, CQ_ERR_DATA,
			      "management API at %s: no /api/whoami (HTTP 404)", a.safe);
	json_decref(who);
	api_close(&a);
	return e;
}
