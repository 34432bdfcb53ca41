/* stats.c - the metric table, a sample's metric list, its JSON,
 * Prometheus and text forms, and the evaluation of --check expressions.
 *
 * Links jansson only, so that `cachectl stats` stays as light as cachectl.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"

#define G CQ_GAUGE
#define C CQ_COUNTER

static const struct cq_metric_def defs[] = {
	{ "up", "cq_up", G, CQ_FMT_COUNT, "server",
	  "1 when the server could be read for this sample, else 0" },
	/* Redis */
	{ "hit_rate", "cq_hit_ratio", G, CQ_FMT_RATIO, NULL,
	  "Keyspace hits / lookups over the interval (since start on a first sample)" },
	{ "hit_rate_total", "cq_hit_ratio_since_start", G, CQ_FMT_RATIO, NULL,
	  "Keyspace hits / lookups since the server started or CONFIG RESETSTAT" },
	{ "hits", NULL, G, CQ_FMT_COUNT, NULL, "Keyspace hits in the interval" },
	{ "misses", NULL, G, CQ_FMT_COUNT, NULL, "Keyspace misses in the interval" },
	{ "hits_total", "cq_keyspace_hits_total", C, CQ_FMT_COUNT, NULL,
	  "Keyspace hits since the server started" },
	{ "misses_total", "cq_keyspace_misses_total", C, CQ_FMT_COUNT, NULL,
	  "Keyspace misses since the server started" },
	{ "ops", "cq_ops_per_second", G, CQ_FMT_RATE, NULL,
	  "Commands processed per second over the interval" },
	{ "used_memory", "cq_memory_used_bytes", G, CQ_FMT_BYTES, NULL,
	  "Memory used by Redis (used_memory)" },
	{ "maxmemory", "cq_memory_max_bytes", G, CQ_FMT_BYTES, NULL,
	  "Redis maxmemory, 0 for no limit" },
	{ "evicted", "cq_evicted_keys_per_second", G, CQ_FMT_RATE, NULL,
	  "Keys evicted per second over the interval" },
	{ "expired", "cq_expired_keys_per_second", G, CQ_FMT_RATE, NULL,
	  "Keys expired per second over the interval" },
	{ "evicted_keys", NULL, G, CQ_FMT_COUNT, NULL, "Keys evicted in the interval" },
	{ "expired_keys", NULL, G, CQ_FMT_COUNT, NULL, "Keys expired in the interval" },
	{ "evicted_total", "cq_evicted_keys_total", C, CQ_FMT_COUNT, NULL,
	  "Keys evicted since the server started" },
	{ "expired_total", "cq_expired_keys_total", C, CQ_FMT_COUNT, NULL,
	  "Keys expired since the server started" },
	{ "keys", "cq_keys", G, CQ_FMT_COUNT, NULL, "Keys in every database" },
	{ "keys_no_ttl", "cq_keys_without_ttl", G, CQ_FMT_COUNT, NULL,
	  "Keys without a TTL in every database (keys - expires)" },
	{ "db_keys", "cq_db_keys", G, CQ_FMT_COUNT, "db", "Keys in the database" },
	{ "db_keys_no_ttl", "cq_db_keys_without_ttl", G, CQ_FMT_COUNT, "db",
	  "Keys without a TTL in the database" },
	{ "prefix_hit_rate", "cq_prefix_hit_ratio", G, CQ_FMT_RATIO, "prefix",
	  "Tracked hits / lookups of the key prefix over the interval" },
	{ "prefix_hits", NULL, G, CQ_FMT_COUNT, "prefix",
	  "Tracked hits of the key prefix in the interval" },
	{ "prefix_misses", NULL, G, CQ_FMT_COUNT, "prefix",
	  "Tracked misses of the key prefix in the interval" },
	{ "prefix_hits_total", "cq_prefix_hits_total", C, CQ_FMT_COUNT, "prefix",
	  "Tracked hits of the key prefix (cachectl --track)" },
	{ "prefix_misses_total", "cq_prefix_misses_total", C, CQ_FMT_COUNT, "prefix",
	  "Tracked misses of the key prefix (cachectl --track)" },
	/* each master of a Redis Cluster */
	{ "master_hit_rate", "cq_master_hit_ratio", G, CQ_FMT_RATIO, "master",
	  "Keyspace hits / lookups of the cluster master over the interval" },
	{ "master_ops", "cq_master_ops_per_second", G, CQ_FMT_RATE, "master",
	  "Commands the cluster master processed per second over the interval" },
	{ "master_used_memory", "cq_master_memory_used_bytes", G, CQ_FMT_BYTES,
	  "master", "Memory used by the cluster master" },
	{ "master_maxmemory", "cq_master_memory_max_bytes", G, CQ_FMT_BYTES,
	  "master", "maxmemory of the cluster master, 0 for no limit" },
	{ "master_evicted", "cq_master_evicted_keys_per_second", G, CQ_FMT_RATE,
	  "master", "Keys the cluster master evicted per second over the interval" },
	{ "master_expired", "cq_master_expired_keys_per_second", G, CQ_FMT_RATE,
	  "master", "Keys the cluster master expired per second over the interval" },
	{ "master_evicted_total", "cq_master_evicted_keys_total", C, CQ_FMT_COUNT,
	  "master", "Keys the cluster master evicted since it started" },
	{ "master_keys", "cq_master_keys", G, CQ_FMT_COUNT, "master",
	  "Keys on the cluster master" },
	{ "master_keys_no_ttl", "cq_master_keys_without_ttl", G, CQ_FMT_COUNT,
	  "master", "Keys without a TTL on the cluster master" },
	/* queues */
	{ "ready", "cq_queue_ready_messages", G, CQ_FMT_COUNT, "queue",
	  "Messages ready for delivery" },
	{ "unacked", "cq_queue_unacked_messages", G, CQ_FMT_COUNT, "queue",
	  "Messages delivered and not yet acknowledged (management API)" },
	{ "consumers", "cq_queue_consumers", G, CQ_FMT_COUNT, "queue",
	  "Consumers of the queue" },
	{ "dlq", "cq_queue_dead_letter_messages", G, CQ_FMT_COUNT, "queue",
	  "Ready messages in the queue's dead-letter queue" },
	{ "publish_rate", "cq_queue_publish_per_second", G, CQ_FMT_RATE, "queue",
	  "Messages published to the queue per second (management API)" },
	{ "deliver_rate", "cq_queue_deliver_per_second", G, CQ_FMT_RATE, "queue",
	  "Messages delivered per second (management API)" },
	{ "ack_rate", "cq_queue_ack_per_second", G, CQ_FMT_RATE, "queue",
	  "Messages acknowledged per second (management API)" },
	{ "length", "cq_queue_stream_length", G, CQ_FMT_COUNT, "queue",
	  "Entries in the stream (XLEN), delivered or not" },
	{ "pending_idle_s", "cq_queue_oldest_pending_idle_seconds", G, CQ_FMT_COUNT,
	  "queue", "Seconds since the oldest pending entry of the stream's group was delivered" },
	{ "members", "cq_queue_members_online", G, CQ_FMT_COUNT, "queue",
	  "Members of a quorum queue that are online (one down is out of sync; management API)" },
	{ "members_total", "cq_queue_members", G, CQ_FMT_COUNT, "queue",
	  "Members of a quorum queue (management API)" },
	/* the cluster (--nodes) */
	{ "nodes_running", "cq_cluster_nodes_running", G, CQ_FMT_COUNT, NULL,
	  "Nodes of the cluster that run (management API)" },
	{ "nodes_down", "cq_cluster_nodes_down", G, CQ_FMT_COUNT, NULL,
	  "Nodes of the cluster that do not run" },
	{ "alarms", "cq_cluster_alarms", G, CQ_FMT_COUNT, NULL,
	  "Memory and disk alarms in force on the cluster's nodes (publishing blocked)" },
	{ "partitions", "cq_cluster_partitions", G, CQ_FMT_COUNT, NULL,
	  "Network partitions the cluster's nodes report" },
	{ "node_running", "cq_node_running", G, CQ_FMT_COUNT, "node",
	  "1 when the node runs" },
	{ "mem_alarm", "cq_node_memory_alarm", G, CQ_FMT_COUNT, "node",
	  "1 when the node has a memory alarm" },
	{ "disk_alarm", "cq_node_disk_alarm", G, CQ_FMT_COUNT, "node",
	  "1 when the node has a disk space alarm" },
	{ "node_partitions", "cq_node_partitions", G, CQ_FMT_COUNT, "node",
	  "Nodes this node cannot see" },
};

#undef G
#undef C

const struct cq_metric_def *cq_metric_defs(size_t *n)
{
	*n = sizeof(defs) / sizeof(defs[0]);
	return defs;
}

bool cq_metric_cluster(const struct cq_metric_def *d)
{
	static const char *const whole[] = { "nodes_running", "nodes_down",
					     "alarms", "partitions" };

	if (d->label)
		return strcmp(d->label, "node") == 0;
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++)
		if (strcmp(d->name, whole[i]) == 0)
			return true;
	return false;
}

const struct cq_metric_def *cq_metric_def(const char *name)
{
	for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++)
		if (strcmp(defs[i].name, name) == 0)
			return &defs[i];
	return NULL;
}

/* ---- the list ---------------------------------------------------------- */

static const char *const src_names[CQ_NSRC] = { "redis", "amqp", "api" };

void cq_metrics_init(struct cq_metrics *ms)
{
	memset(ms, 0, sizeof(*ms));
	for (int i = 0; i < CQ_NSRC; i++)
		ms->src[i].name = src_names[i];
}

void cq_metrics_clear(struct cq_metrics *ms)
{
	if (!ms)
		return;
	for (size_t i = 0; i < ms->n; i++)
		free(ms->m[i].label);
	for (size_t i = 0; i < ms->nqueues; i++) {
		free(ms->queues[i].name);
		free(ms->queues[i].dlq);
		free(ms->queues[i].error);
		free(ms->queues[i].leader);
		for (size_t j = 0; j < ms->queues[i].nmembers; j++)
			free(ms->queues[i].members[j].node);
		free(ms->queues[i].members);
	}
	free(ms->m);
	free(ms->queues);
	cq_metrics_init(ms);
}

bool cqi_metrics_add(struct cq_metrics *ms, const char *name,
		    const char *label, size_t label_len, double value)
{
	const struct cq_metric_def *d = cq_metric_def(name);
	struct cq_metric *m;

	if (!d)
		return false;
	m = cqi_grow(ms->m, &ms->cap, ms->n + 1, sizeof(*m), 32);
	if (!m)
		return false;
	ms->m = m;
	m = &ms->m[ms->n];
	m->def = d;
	m->label = NULL;
	m->label_len = 0;
	m->value = value;
	if (label) {
		m->label = cqi_memdup(label, label_len);
		if (!m->label)
			return false;
		m->label_len = label_len;
	}
	ms->n++;
	return true;
}

double cq_metrics_get(const struct cq_metrics *ms, const char *name,
		      const char *label)
{
	for (size_t i = 0; i < ms->n; i++) {
		const struct cq_metric *m = &ms->m[i];

		if (strcmp(m->def->name, name) != 0)
			continue;
		if (!label || (m->label && strcmp(m->label, label) == 0))
			return m->value;
	}
	return NAN;
}

int cqi_metrics_add_queue(struct cq_metrics *ms, const char *name,
			 const char *dlq, bool found)
{
	struct cq_queue_stat *q;

	q = realloc(ms->queues, (ms->nqueues + 1) * sizeof(*q));
	if (!q)
		return -1;
	ms->queues = q;
	q = &ms->queues[ms->nqueues];
	memset(q, 0, sizeof(*q));
	q->name = strdup(name);
	q->dlq = dlq ? strdup(dlq) : NULL;
	q->found = found;
	q->src = CQ_SRC_AMQP;
	q->backend = "amqp";
	if (!q->name || (dlq && !q->dlq)) {
		free(q->name);
		free(q->dlq);
		return -1;
	}
	return (int)ms->nqueues++;
}

bool cqi_metrics_set_members(struct cq_metrics *ms, const char *name,
			    const char *leader, const struct cq_member *m,
			    size_t n)
{
	struct cq_queue_stat *q = NULL;

	for (size_t i = 0; i < ms->nqueues && !q; i++)
		if (strcmp(ms->queues[i].name, name) == 0)
			q = &ms->queues[i];
	if (!q || q->members)
		return true;
	if (leader && !(q->leader = strdup(leader)))
		return false;
	q->members = calloc(n + 1, sizeof(*q->members));
	if (!q->members)
		return false;
	for (size_t i = 0; i < n; i++) {
		q->members[i] = m[i];
		q->members[i].node = strdup(m[i].node);
		q->nmembers++;
		if (!q->members[i].node)
			return false;
	}
	return true;
}

void cq_metrics_source(struct cq_metrics *ms, int src, const struct cq_ctx *ctx)
{
	struct cq_source *s = &ms->src[src];

	s->used = true;
	s->up = !ctx->err;
	s->err = ctx->err;
	snprintf(s->errstr, sizeof(s->errstr), "%s",
		 ctx->err ? (ctx->errstr[0] ? ctx->errstr : cq_strerror(ctx->err)) : "");
}

bool cq_queue_known(const struct cq_metrics *ms, const struct cq_queue_stat *q)
{
	if (q->src == CQ_SRC_REDIS)
		return ms->src[CQ_SRC_REDIS].up;
	return ms->src[CQ_SRC_AMQP].up || ms->src[CQ_SRC_API].up;
}

/* ---- UTF-8 --------------------------------------------------------------- */

static bool appends(struct cq_buf *b, const char *s)
{
	return cq_buf_append(b, s, strlen(s));
}

size_t cq_utf8_seq(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t len;
	uint32_t cp;

	if (n == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2 || s[0] > 0xf4)	/* continuation, overlong, too big */
		return 0;
	len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (n < len)
		return 0;
	cp = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Append the UTF-8 sequence at the start of s (n bytes left), or, when
 * none starts there, its first byte as the text \xFF with backslash (one,
 * or an escaped one for Prometheus) in front.  The bytes used, 0 out of
 * memory. */
static size_t utf8_append(struct cq_buf *b, const char *s, size_t n,
			  const char *backslash)
{
	size_t len = cq_utf8_seq(s, n);
	char hex[16];

	if (len)
		return cq_buf_append(b, s, len) ? len : 0;
	snprintf(hex, sizeof(hex), "%sx%02X", backslash, (unsigned char)*s);
	return appends(b, hex) ? 1 : 0;
}

/* ---- JSON -------------------------------------------------------------- */

static json_t *json_num(double v, enum cq_metric_fmt fmt)
{
	if (isnan(v))
		return json_null();
	if (fmt != CQ_FMT_RATIO && fmt != CQ_FMT_RATE && v == floor(v) &&
	    fabs(v) < 9.0e15)
		return json_integer((json_int_t)v);
	/* ratios and rates: enough digits, no binary noise */
	return json_real(round(v * 10000.0) / 10000.0);
}

/* The object in arr whose label is m's, made when missing. */
static json_t *labelled(json_t *arr, const char *name, const struct cq_metric *m)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o) {
		json_t *l = json_object_get(o, "_s");
		const char *s = json_string_value(l);

		if (s && json_string_length(l) == m->label_len &&
		    memcmp(s, m->label, m->label_len) == 0)
			return o;
	}
	o = json_object();
	if (!o || json_array_append_new(arr, o))
		return NULL;
	/* _s keeps the raw label for matching; removed before output */
	json_object_set_new(o, "_s", json_stringn_nocheck(m->label, m->label_len));
	if (strcmp(name, "db") == 0) {
		json_object_set_new(o, "db", json_integer(atoi(m->label)));
	} else if (cqi_json_set_bytes(o, name, m->label, m->label_len)) {
		return NULL;
	}
	return o;
}

static void strip_private(json_t *arr)
{
	size_t i;
	json_t *o;

	json_array_foreach(arr, i, o) {
		json_object_del(o, "_s");
	}
}

/* A message as a JSON string: it may quote a queue name that is not
 * UTF-8, whose stray bytes are then shown as \xFF. */
static json_t *message_json(const char *msg)
{
	json_t *j = json_string(msg);
	struct cq_buf b = { 0 };
	size_t n = strlen(msg), used = 1;

	if (j)
		return j;
	for (size_t i = 0; i < n && used; i += used)
		used = utf8_append(&b, msg + i, n - i, "\\");
	j = used ? json_stringn(b.data ? b.data : "", b.len) : NULL;
	cq_buf_free(&b);
	return j;
}

static json_t *source_json(const struct cq_source *s)
{
	json_t *o = json_object();

	json_object_set_new(o, "up", json_boolean(s->up));
	if (!s->up)
		json_object_set_new(o, "error", message_json(s->errstr));
	return o;
}

/* Fill the queue objects with their names, DLQ and found flags (null:
 * its server could not be asked). */
static void queues_json(const struct cq_metrics *ms, json_t *queues)
{
	for (size_t i = 0; i < ms->nqueues; i++) {
		const struct cq_queue_stat *q = &ms->queues[i];
		struct cq_metric m = { .label = q->name,
				       .label_len = strlen(q->name) };
		json_t *o = labelled(queues, "queue", &m);

		if (!o)
			continue;
		json_object_set_new(o, "found", cq_queue_known(ms, q) ?
				    json_boolean(q->found) : json_null());
		json_object_set_new(o, "backend", json_string(q->backend));
		json_object_set_new(o, "dlq_queue",
				    q->dlq ? json_string(q->dlq) : json_null());
		if (q->members) {
			json_t *a = json_array();

			json_object_set_new(o, "leader", q->leader ?
					    json_string(q->leader) : json_null());
			for (size_t j = 0; a && j < q->nmembers; j++)
				json_array_append_new(a, json_pack("{s:s,s:b,s:b}",
					"node", q->members[j].node,
					"leader", q->members[j].leader,
					"online", q->members[j].online));
			json_object_set_new(o, "member_nodes", a);
		}
	}
}

char *cq_metrics_json(const struct cq_metrics *ms)
{
	json_t *root = json_object(), *redis, *dbs, *pre, *queues, *cluster, *nodes;
	json_t *masters;
	char *out = NULL;

	if (!root)
		return NULL;
	json_object_set_new(root, "time", json_real((double)ms->time_ms / 1000.0));
	json_object_set_new(root, "interval", json_real(ms->interval_s));
	redis = ms->src[CQ_SRC_REDIS].used ? source_json(&ms->src[CQ_SRC_REDIS]) : NULL;
	dbs = json_array();
	pre = json_array();
	queues = json_array();
	cluster = json_object();
	nodes = json_array();
	masters = json_array();
	if (ms->nqueues || ms->src[CQ_SRC_AMQP].used)
		queues_json(ms, queues);
	for (size_t i = 0; i < ms->n; i++) {
		const struct cq_metric *m = &ms->m[i];
		const struct cq_metric_def *d = m->def;
		json_t *v = json_num(m->value, d->fmt), *o = NULL;

		if (cq_metric_cluster(d) && !d->label)
			o = cluster;
		else if (cq_metric_cluster(d))
			o = labelled(nodes, "node", m);
		else if (!d->label)
			o = redis;
		else if (strcmp(d->label, "db") == 0)
			o = labelled(dbs, "db", m);
		else if (strcmp(d->label, "prefix") == 0)
			o = labelled(pre, "prefix", m);
		else if (strcmp(d->label, "master") == 0)
			o = labelled(masters, "master", m);
		else if (strcmp(d->label, "queue") == 0)
			o = labelled(queues, "queue", m);
		if (!o) {
			json_decref(v);
			continue;
		}
		/* db_keys -> keys inside "dbs", prefix_hits -> hits ... */
		if (strncmp(d->name, "db_", 3) == 0)
			json_object_set_new(o, d->name + 3, v);
		else if (strncmp(d->name, "prefix_", 7) == 0)
			json_object_set_new(o, d->name + 7, v);
		else if (strncmp(d->name, "node_", 5) == 0)
			json_object_set_new(o, d->name + 5, v);
		else if (strncmp(d->name, "master_", 7) == 0)
			json_object_set_new(o, d->name + 7, v);
		else
			json_object_set_new(o, d->name, v);
	}
	strip_private(dbs);
	strip_private(pre);
	strip_private(queues);
	strip_private(nodes);
	strip_private(masters);
	if (redis) {
		json_object_set_new(redis, "dbs", dbs);
		json_object_set_new(redis, "prefixes", pre);
		/* a Redis Cluster: each master beside the sums */
		if (json_array_size(masters))
			json_object_set_new(redis, "masters", json_incref(masters));
		json_object_set_new(root, "redis", redis);
	} else {
		json_decref(dbs);
		json_decref(pre);
	}
	json_decref(masters);
	if (ms->src[CQ_SRC_AMQP].used)
		json_object_set_new(root, "amqp", source_json(&ms->src[CQ_SRC_AMQP]));
	if (ms->src[CQ_SRC_API].used)
		json_object_set_new(root, "api", source_json(&ms->src[CQ_SRC_API]));
	if (ms->src[CQ_SRC_AMQP].used || ms->src[CQ_SRC_API].used || ms->nqueues)
		json_object_set_new(root, "queues", queues);
	else
		json_decref(queues);
	if (ms->cluster) {
		json_object_set_new(cluster, "nodes", nodes);
		json_object_set_new(root, "cluster", cluster);
	} else {
		json_decref(cluster);
		json_decref(nodes);
	}
	out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER |
				 JSON_REAL_PRECISION(15));
	json_decref(root);
	return out;
}

/* ---- Prometheus ---------------------------------------------------------- */

/*
 * A label value escaped as the text format wants (\\, \", \n), and valid
 * UTF-8 whatever the label holds (a prefix may hold any byte): a byte
 * that is not part of a valid sequence is written as the text \xFF, its
 * backslash escaped, since node_exporter refuses a file that is not UTF-8.
 */
static bool prom_label(struct cq_buf *b, const char *s, size_t n)
{
	size_t used;

	for (size_t i = 0; i < n; i += used) {
		const char *esc = s[i] == '\\' ? "\\\\" : s[i] == '"' ? "\\\"" :
				  s[i] == '\n' ? "\\n" : NULL;

		if (esc)
			used = appends(b, esc) ? 1 : 0;
		else
			used = utf8_append(b, s + i, n - i, "\\\\");
		if (!used)
			return false;
	}
	return true;
}

static bool prom_value(struct cq_buf *b, double v)
{
	char num[64];

	if (v == floor(v) && fabs(v) < 9.0e15)
		snprintf(num, sizeof(num), " %.0f\n", v);
	else
		snprintf(num, sizeof(num), " %.6g\n", v);
	return appends(b, num);
}

static bool prom_line(struct cq_buf *b, const char *name, const char *lname,
		      const char *l, size_t ln, double v)
{
	bool ok = appends(b, name);

	if (ok && lname)
		ok = appends(b, "{") && appends(b, lname) && appends(b, "=\"") &&
		     prom_label(b, l, ln) && appends(b, "\"}");
	return ok && prom_value(b, v);
}

bool cq_metrics_prom(const struct cq_metrics *ms, struct cq_buf *out)
{
	bool ok = true;

	for (size_t d = 0; d < sizeof(defs) / sizeof(defs[0]) && ok; d++) {
		const struct cq_metric_def *def = &defs[d];
		bool head = false;

		if (!def->prom)
			continue;
		if (def == &defs[0]) {
			/* cq_up: one line per server asked for */
			for (int s = 0; s < CQ_NSRC && ok; s++) {
				const struct cq_source *src = &ms->src[s];

				if (!src->used)
					continue;
				if (!head)
					ok = appends(out, "# HELP cq_up ") &&
					     appends(out, def->help) &&
					     appends(out, "\n# TYPE cq_up gauge\n");
				head = true;
				ok = ok && prom_line(out, "cq_up", "server", src->name,
						     strlen(src->name), src->up);
			}
			continue;
		}
		for (size_t i = 0; i < ms->n && ok; i++) {
			const struct cq_metric *m = &ms->m[i];

			if (m->def != def || isnan(m->value))
				continue;
			if (!head)
				ok = appends(out, "# HELP ") && appends(out, def->prom) &&
				     appends(out, " ") && appends(out, def->help) &&
				     appends(out, "\n# TYPE ") && appends(out, def->prom) &&
				     appends(out, def->type == CQ_COUNTER ?
						  " counter\n" : " gauge\n");
			head = true;
			ok = ok && prom_line(out, def->prom, m->label ? def->label : NULL,
					     m->label, m->label_len, m->value);
		}
	}
	return ok;
}

/* ---- text ---------------------------------------------------------------- */

static bool text_value(struct cq_buf *b, double v, enum cq_metric_fmt fmt)
{
	char num[64];

	if (isnan(v))
		snprintf(num, sizeof(num), "-");
	else if (fmt == CQ_FMT_RATIO)
		snprintf(num, sizeof(num), "%.4f", v);
	else if (fmt == CQ_FMT_RATE)
		snprintf(num, sizeof(num), "%.2f", v);
	else
		snprintf(num, sizeof(num), "%.0f", v);
	return appends(b, num);
}

/* Bytes shown as they are, except that a newline or tab in a label
 * would break the line format: those print as \n and \t. */
static bool text_label(struct cq_buf *b, const char *s, size_t n)
{
	bool ok = true;

	for (size_t i = 0; i < n && ok; i++) {
		if (s[i] == '\n')
			ok = appends(b, "\\n");
		else if (s[i] == '\t')
			ok = appends(b, "\\t");
		else if (s[i] == '\\')
			ok = appends(b, "\\\\");
		else
			ok = cq_buf_append(b, &s[i], 1);
	}
	return ok;
}

bool cq_metrics_text(const struct cq_metrics *ms, struct cq_buf *out)
{
	bool ok = true;

	for (int s = 0; s < CQ_NSRC && ok; s++) {
		const struct cq_source *src = &ms->src[s];

		if (!src->used || src->up)
			continue;
		ok = appends(out, src->name) && appends(out, "\tdown: ") &&
		     appends(out, src->errstr) && appends(out, "\n");
	}
	for (size_t i = 0; i < ms->n && ok; i++) {
		const struct cq_metric *m = &ms->m[i];

		ok = appends(out, m->def->name);
		if (ok && m->label)
			ok = appends(out, "[") &&
			     text_label(out, m->label, m->label_len) &&
			     appends(out, "]");
		ok = ok && appends(out, "\t") && text_value(out, m->value, m->def->fmt) &&
		     appends(out, "\n");
	}
	return ok;
}

void cq_metric_human(double v, enum cq_metric_fmt fmt, char *buf, size_t len)
{
	static const char units[] = "kMGTP";
	double base = fmt == CQ_FMT_BYTES ? 1024.0 : 1000.0;
	int u = -1;

	if (isnan(v)) {
		snprintf(buf, len, "-");
		return;
	}
	if (fmt == CQ_FMT_RATIO) {
		snprintf(buf, len, "%.2f", v);
		return;
	}
	while (fabs(v) >= 10000.0 && u < 4) {
		v /= base;
		u++;
	}
	if (u < 0 && fmt == CQ_FMT_RATE && v != floor(v) && v < 100)
		snprintf(buf, len, "%.1f", v);
	else if (u < 0)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, v < 100 ? "%.1f%c" : "%.0f%c", v,
			 fmt == CQ_FMT_BYTES ? "KMGTP"[u] : units[u]);
}

/* ---- checks -------------------------------------------------------------- */

static const char *const state_names[] = { "OK", "WARNING", "CRITICAL", "UNKNOWN" };
static const char *const op_names[] = { "<", "<=", ">", ">=", "==", "!=" };

static bool breaks(const struct cq_check *c, double v)
{
	switch (c->op) {
	case CQ_OP_LT:
		return v < c->threshold;
	case CQ_OP_LE:
		return v <= c->threshold;
	case CQ_OP_GT:
		return v > c->threshold;
	case CQ_OP_GE:
		return v >= c->threshold;
	case CQ_OP_EQ:
		return v == c->threshold;
	case CQ_OP_NE:
		return v != c->threshold;
	}
	return false;
}

static int worse(int a, int b)
{
	/* UNKNOWN outranks WARNING but not CRITICAL, as plugins do */
	static const int rank[] = { 0, 1, 3, 2 };

	return rank[b] > rank[a] ? b : a;
}

/* The number for a status line: up to 4 decimals, no trailing zeros. */
static void short_num(double v, char *buf, size_t len)
{
	char *p;

	snprintf(buf, len, "%.4f", v);
	p = strchr(buf, '.');
	if (!p)
		return;
	for (p = buf + strlen(buf) - 1; *p == '0'; p--)
		*p = '\0';
	if (*p == '.')
		*p = '\0';
}

/* Does this metric entry count for the check? */
static bool selects(const struct cq_check *c, const struct cq_metric *m)
{
	if (strcmp(m->def->name, c->metric) != 0)
		return false;
	if (!c->has_label)
		return true;
	return m->label && m->label_len == strlen(c->label) &&
	       memcmp(m->label, c->label, m->label_len) == 0;
}

/* How many entries the metric has ([label] is shown when several, or
 * when the check names one). */
static size_t instances(const struct cq_metrics *ms, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < ms->n; i++)
		n += strcmp(ms->m[i].def->name, name) == 0;
	return n;
}

/* The queue a queue figure is labelled with, or NULL. */
static const struct cq_queue_stat *queue_of(const struct cq_metrics *ms,
					    const struct cq_metric_def *d,
					    const char *label, size_t len)
{
	for (size_t i = 0; label && d->label && strcmp(d->label, "queue") == 0 &&
			   i < ms->nqueues; i++)
		if (strlen(ms->queues[i].name) == len &&
		    memcmp(ms->queues[i].name, label, len) == 0)
			return &ms->queues[i];
	return NULL;
}

/* The server a figure comes from: a queue's own (a list or stream queue
 * lives in Redis), Redis for the cache's. */
static int source_of(const struct cq_metrics *ms, const struct cq_metric_def *d,
		     const char *label, size_t len)
{
	const struct cq_queue_stat *q = queue_of(ms, d, label, len);

	if (!d->label || strcmp(d->label, "db") == 0 ||
	    strcmp(d->label, "prefix") == 0)
		return CQ_SRC_REDIS;
	return q ? q->src : CQ_SRC_AMQP;
}

/* Why a metric (of the queue or db labelled so, if any) is unknown: the
 * down server it comes from, if any. */
static const char *why_unknown(const struct cq_metrics *ms,
			       const struct cq_metric_def *d,
			       const char *label, size_t len)
{
	const struct cq_queue_stat *q = queue_of(ms, d, label, len);
	int s = source_of(ms, d, label, len);

	if (q && q->error)
		return q->error;

	if (d == &defs[0])
		return NULL;	/* up: known for every server used */
	if (ms->src[s].used && !ms->src[s].up)
		return ms->src[s].errstr;
	if (s == CQ_SRC_AMQP && ms->src[CQ_SRC_API].used && !ms->src[CQ_SRC_API].up)
		return ms->src[CQ_SRC_API].errstr;
	return NULL;
}

/* One figure of the status line. */
struct item {
	char key[400];		/* name or name[label]: one entry per key */
	char text[900];		/* what the line shows */
	int state;
};

struct items {
	struct item *v;
	size_t n;
};

/* Add an item; an item for a key already there keeps the worse one. */
static bool put_item(struct items *it, const struct item *x)
{
	struct item *v;

	for (size_t i = 0; i < it->n; i++) {
		if (strcmp(it->v[i].key, x->key) != 0)
			continue;
		if (worse(it->v[i].state, x->state) != it->v[i].state)
			it->v[i] = *x;
		return true;
	}
	v = realloc(it->v, (it->n + 1) * sizeof(*v));
	if (!v)
		return false;
	it->v = v;
	it->v[it->n++] = *x;
	return true;
}

static void item_key(struct item *x, const char *name, const struct cq_metric *m,
		     bool label)
{
	struct cq_buf b = { 0 };

	snprintf(x->key, sizeof(x->key), "%s", name);
	if (label && m && m->label && appends(&b, "[") &&
	    text_label(&b, m->label, m->label_len) && appends(&b, "]"))
		strncat(x->key, b.data, sizeof(x->key) - strlen(x->key) - 1);
	cq_buf_free(&b);
}

/* The items of one check. */
static bool eval_one(const struct cq_check *c, const struct cq_metrics *ms,
		     struct items *it)
{
	const struct cq_metric_def *d = cq_metric_def(c->metric);
	const char *why = NULL;
	bool named = c->has_label || instances(ms, c->metric) > 1, any = false;
	char num[48], thr[48];
	struct item x;

	for (size_t i = 0; i < ms->n; i++) {
		const struct cq_metric *m = &ms->m[i];

		if (!selects(c, m))
			continue;
		any = true;
		item_key(&x, c->metric, m, named);
		short_num(m->value, num, sizeof(num));
		short_num(c->threshold, thr, sizeof(thr));
		if (isnan(m->value)) {
			why = d ? why_unknown(ms, d, m->label, m->label_len) : NULL;
			x.state = CQ_STATE_UNKNOWN;
			snprintf(x.text, sizeof(x.text), "%s unknown%s%s", x.key,
				 why ? ": " : "", why ? why : "");
		} else if (breaks(c, m->value)) {
			x.state = c->level;
			snprintf(x.text, sizeof(x.text), "%s=%s (%s%s)", x.key,
				 num, op_names[c->op], thr);
		} else {
			x.state = CQ_STATE_OK;
			snprintf(x.text, sizeof(x.text), "%s=%s", x.key, num);
		}
		if (!put_item(it, &x))
			return false;
	}
	if (any)
		return true;
	x.state = CQ_STATE_UNKNOWN;
	why = d ? why_unknown(ms, d, c->has_label ? c->label : NULL,
			      c->has_label ? strlen(c->label) : 0) : NULL;
	snprintf(x.key, sizeof(x.key), "%s%s%s%s", c->metric,
		 c->has_label ? "[" : "", c->label, c->has_label ? "]" : "");
	snprintf(x.text, sizeof(x.text), "%s unknown%s%s", x.key,
		 why ? ": " : (c->has_label ? ": no such " : ""),
		 why ? why : (c->has_label && d && d->label ? d->label : ""));
	return put_item(it, &x);
}

/*
 * The sample as the checks see it: its metrics, then "up" of each server
 * used (kept in ms->src, not in the list).  Only view->m is allocated;
 * the labels are borrowed.
 */
static bool with_up(const struct cq_metrics *ms, struct cq_metrics *view)
{
	*view = *ms;
	view->m = malloc((ms->n + CQ_NSRC) * sizeof(*view->m));
	if (!view->m)
		return false;
	if (ms->n)
		memcpy(view->m, ms->m, ms->n * sizeof(*view->m));
	for (int s = 0; s < CQ_NSRC; s++) {
		struct cq_metric *m = &view->m[view->n];

		if (!ms->src[s].used)
			continue;
		m->def = &defs[0];
		m->label = (char *)ms->src[s].name;
		m->label_len = strlen(m->label);
		m->value = ms->src[s].up;
		view->n++;
	}
	view->cap = view->n;
	return true;
}

bool cq_checks_eval(const struct cq_check *checks, size_t n,
		    const struct cq_metrics *ms, enum cq_check_state *state,
		    struct cq_buf *line)
{
	struct items it = { 0 };
	struct cq_metrics view;
	int st = CQ_STATE_OK;
	bool ok = with_up(ms, &view);

	for (size_t i = 0; i < n && ok; i++)
		ok = eval_one(&checks[i], &view, &it);
	free(view.m);
	for (size_t i = 0; i < it.n; i++)
		st = worse(st, it.v[i].state);
	*state = (enum cq_check_state)st;
	ok = ok && appends(line, "CQ ") && appends(line, state_names[st]) &&
	     appends(line, " -");
	/* what broke a threshold (or is unknown) first, then the rest */
	for (int pass = 0; pass < 2 && ok; pass++)
		for (size_t i = 0; i < it.n && ok; i++)
			if ((it.v[i].state != CQ_STATE_OK) == (pass == 0))
				ok = appends(line, " ") && appends(line, it.v[i].text);
	free(it.v);
	return ok;
}
