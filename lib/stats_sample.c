/* stats_sample.c - cqstat's sampler: Redis, the queues and the management
 * API, each on its own connection, so one being down does not hide the
 * others.  Links everything (only cqstat uses it). */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"

struct cq_stat {
	struct cq_settings set;
	struct cq_stat_opts o;
	struct cq_ctx *ctx[CQ_NSRC];	/* one per server, NULL until used */
	struct cq_cache_sample prev;
	bool have_prev;
	long long prev_ms;		/* monotonic time of the last sample */
	char **names;			/* AMQP -Q queues, then --match ones */
	size_t nnames;
	struct cq_queue_ref *rq;	/* -Q queues in Redis (list:, stream:) */
	size_t nrq;
	bool matched;			/* the --match set is fixed */
	char *vhost;
};

static void free_names(struct cq_stat *st)
{
	for (size_t i = 0; i < st->nnames; i++)
		free(st->names[i]);
	free(st->names);
	st->names = NULL;
	st->nnames = 0;
}

static bool add_name(struct cq_stat *st, const char *name)
{
	char **v;

	for (size_t i = 0; i < st->nnames; i++)
		if (strcmp(st->names[i], name) == 0)
			return true;
	v = realloc(st->names, (st->nnames + 1) * sizeof(*v));
	if (!v)
		return false;
	st->names = v;
	v[st->nnames] = strdup(name);
	return v[st->nnames++] != NULL;
}

/* ---- queue names: list:NAME, stream:NAME[@GROUP], amqp:NAME, NAME ------ */

void cq_queue_ref_clear(struct cq_queue_ref *ref)
{
	free(ref->name);
	free(ref->group);
	free(ref->label);
	memset(ref, 0, sizeof(*ref));
}

bool cq_queue_ref_parse(const char *spec, struct cq_queue_ref *ref,
			char *err, size_t errlen)
{
	static const char *const kinds[] = { "amqp", "list", "stream" };
	const char *name = spec, *at;
	char why[300];

	memset(ref, 0, sizeof(*ref));
	ref->backend = "amqp";
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i]);

		if (strncmp(spec, kinds[i], n) == 0 && spec[n] == ':') {
			ref->backend = kinds[i];
			name = spec + n + 1;
			break;
		}
	}
	if (!cq_backend_ok(ref->backend, NULL, why, sizeof(why))) {
		cqi_errbuf(err, errlen, "'%s': %s", spec, why);
		return false;
	}
	at = strcmp(ref->backend, "stream") == 0 ? strrchr(name, '@') : NULL;
	if (strcmp(ref->backend, "amqp") == 0) {
		if (!cq_name_ok("queue", name, err, errlen))
			return false;
	} else if (!*name || at == name) {
		cqi_errbuf(err, errlen, "'%s': empty %s name", spec, ref->backend);
		return false;
	} else if (at && !at[1]) {
		cqi_errbuf(err, errlen, "'%s': empty group name after '@'", spec);
		return false;
	}
	ref->name = at ? strndup(name, (size_t)(at - name)) : strdup(name);
	ref->group = at ? strdup(at + 1) : NULL;
	ref->label = strdup(strcmp(ref->backend, "amqp") == 0 ? name : spec);
	if (!ref->name || (at && !ref->group) || !ref->label) {
		cq_queue_ref_clear(ref);
		cqi_errbuf(err, errlen, "out of memory");
		return false;
	}
	return true;
}

/* Keep a -Q queue: an AMQP one among the names, a Redis one apart. */
static bool add_spec(struct cq_stat *st, const char *spec)
{
	struct cq_queue_ref ref, *v;
	bool ok;

	if (!cq_queue_ref_parse(spec, &ref, NULL, 0))
		return true;	/* the program checked it: cannot happen */
	if (strcmp(ref.backend, "amqp") == 0) {
		ok = add_name(st, ref.name);
		cq_queue_ref_clear(&ref);
		return ok;
	}
	for (size_t i = 0; i < st->nrq; i++)
		if (strcmp(st->rq[i].label, ref.label) == 0) {
			cq_queue_ref_clear(&ref);
			return true;
		}
	v = realloc(st->rq, (st->nrq + 1) * sizeof(*v));
	if (!v) {
		cq_queue_ref_clear(&ref);
		return false;
	}
	st->rq = v;
	v[st->nrq++] = ref;
	return true;
}

/* The vhost of the first AMQP URL ("/" when it cannot be parsed: the
 * AMQP connection reports the bad URL itself). */
static char *vhost_of(const char *list)
{
	struct cqi_amqp_url u;
	char *one = strndup(list ? list : "", strcspn(list ? list : "", ","));
	char *v = NULL, err[100];

	if (one && cqi_amqp_url_parse(one, &u, err, sizeof(err)) == CQ_OK) {
		v = strdup(u.vhost);
		cqi_amqp_url_clear(&u);
	}
	free(one);
	return v ? v : strdup("/");
}

struct cq_stat *cq_stat_new(const struct cq_settings *set,
			    const struct cq_stat_opts *o)
{
	struct cq_stat *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->set = *set;
	st->o = *o;
	st->vhost = vhost_of(set->amqp_url);
	for (size_t i = 0; st->vhost && i < o->nqueues; i++)
		if (!add_spec(st, o->queues[i]))
			goto fail;
	if (!st->vhost)
		goto fail;
	return st;
fail:
	cq_stat_free(st);
	return NULL;
}

void cq_stat_free(struct cq_stat *st)
{
	if (!st)
		return;
	for (int i = 0; i < CQ_NSRC; i++)
		cq_ctx_free(st->ctx[i]);
	cq_cache_sample_clear(&st->prev);
	free_names(st);
	for (size_t i = 0; i < st->nrq; i++)
		cq_queue_ref_clear(&st->rq[i]);
	free(st->rq);
	free(st->vhost);
	free(st);
}

/* The context for a server, made when missing. */
static struct cq_ctx *ctx_for(struct cq_stat *st, int src)
{
	if (!st->ctx[src])
		st->ctx[src] = cq_ctx_new(&st->set);
	return st->ctx[src];
}

/* Record the source's state; a failed connection is dropped so that the
 * next sample connects again. */
static void settle(struct cq_stat *st, struct cq_metrics *ms, int src)
{
	struct cq_ctx *ctx = st->ctx[src];

	cq_metrics_source(ms, src, ctx);
	if (ctx->err) {
		cq_ctx_free(ctx);
		st->ctx[src] = NULL;
	}
}

static enum cq_err cache_part(struct cq_stat *st, struct cq_metrics *ms)
{
	struct cq_ctx *ctx = ctx_for(st, CQ_SRC_REDIS);
	struct cq_cache_sample cur;

	if (!ctx)
		return CQ_ERR_NOMEM;
	if (!ctx->redis)
		cq_redis_connect(ctx);	/* a failure is the sample's "down" */
	if (cq_cache_sample(ctx, &cur) == CQ_OK) {
		if (!cq_cache_figures(st->have_prev ? &st->prev : NULL, &cur, ms)) {
			cq_cache_sample_clear(&cur);
			return CQ_ERR_NOMEM;
		}
		cq_cache_sample_clear(&st->prev);
		st->prev = cur;
		st->have_prev = true;
	}
	settle(st, ms, CQ_SRC_REDIS);
	return CQ_OK;
}

/* Fix the --match set from the API, once. */
static enum cq_err match_part(struct cq_stat *st, struct cq_ctx *api)
{
	struct cqi_api_queue *q;
	size_t n;

	if (cqi_api_queues(api, st->o.api_url, st->vhost, NULL, 0, st->o.match,
			  &q, &n))
		return api->err == CQ_ERR_NOMEM ? CQ_ERR_NOMEM : CQ_OK;
	for (size_t i = 0; i < n; i++) {
		if (!add_name(st, q[i].name)) {
			cqi_api_queues_free(q, n);
			return CQ_ERR_NOMEM;
		}
	}
	cqi_api_queues_free(q, n);
	st->matched = true;
	return CQ_OK;
}

/* The cluster's nodes: running, alarms, partitions, each and in all. */
static enum cq_err nodes_part(struct cq_stat *st, struct cq_ctx *api,
			      struct cq_metrics *ms)
{
	struct cqi_api_node *nodes;
	size_t n, running = 0, alarms = 0, parts = 0;
	bool ok = true;

	ms->cluster = true;
	if (cqi_api_nodes(api, st->o.api_url, &nodes, &n))
		return api->err == CQ_ERR_NOMEM ? CQ_ERR_NOMEM : CQ_OK;
	for (size_t i = 0; i < n && ok; i++) {
		const struct cqi_api_node *d = &nodes[i];
		size_t len = strlen(d->name);

		running += d->running;
		alarms += d->mem_alarm + d->disk_alarm;
		parts += d->partitions;
		ok = cqi_metrics_add(ms, "node_running", d->name, len, d->running) &&
		     cqi_metrics_add(ms, "mem_alarm", d->name, len, d->mem_alarm) &&
		     cqi_metrics_add(ms, "disk_alarm", d->name, len, d->disk_alarm) &&
		     cqi_metrics_add(ms, "node_partitions", d->name, len,
				    (double)d->partitions);
	}
	ok = ok && cqi_metrics_add(ms, "nodes_running", NULL, 0, (double)running) &&
	     cqi_metrics_add(ms, "nodes_down", NULL, 0, (double)(n - running)) &&
	     cqi_metrics_add(ms, "alarms", NULL, 0, (double)alarms) &&
	     cqi_metrics_add(ms, "partitions", NULL, 0, (double)parts);
	cqi_api_nodes_free(nodes, n);
	return ok ? CQ_OK : CQ_ERR_NOMEM;
}

/* The management API's figures of the queues into *aq.  When the sample
 * asks it nothing else, it is logged in to, so that up is what it said
 * this time. */
static enum cq_err api_part(struct cq_stat *st, struct cq_metrics *ms,
			    struct cqi_api_queue **aq, size_t *naq)
{
	struct cq_ctx *api = ctx_for(st, CQ_SRC_API);
	bool asked = false;

	if (!api)
		return CQ_ERR_NOMEM;
	if (st->o.match && !st->matched) {
		if (match_part(st, api))
			return CQ_ERR_NOMEM;
		asked = true;
	}
	if (st->o.nodes) {
		if (nodes_part(st, api, ms))
			return CQ_ERR_NOMEM;
		asked = true;
	}
	if (st->nnames)
		cqi_api_queues(api, st->o.api_url, st->vhost,
			      (const char *const *)st->names, st->nnames,
			      NULL, aq, naq);
	else if (!asked)
		cqi_api_ping(api, st->o.api_url);
	if (api->err == CQ_ERR_NOMEM)
		return CQ_ERR_NOMEM;
	settle(st, ms, CQ_SRC_API);
	return CQ_OK;
}

static struct cqi_api_queue *api_of(struct cqi_api_queue *q, size_t n,
				   const char *name)
{
	for (size_t i = 0; q && i < n; i++)
		if (q[i].name && strcmp(q[i].name, name) == 0)
			return &q[i];
	return NULL;
}

/* The figures only the API gives (unknown without it). */
static bool api_figures(struct cq_metrics *ms, const char *name,
			const struct cqi_api_queue *a, bool amqp_up)
{
	size_t n = strlen(name);
	bool ok = cqi_metrics_add(ms, "unacked", name, n, a ? a->unacked : NAN) &&
		  cqi_metrics_add(ms, "publish_rate", name, n, a ? a->publish_rate : NAN) &&
		  cqi_metrics_add(ms, "deliver_rate", name, n, a ? a->deliver_rate : NAN) &&
		  cqi_metrics_add(ms, "ack_rate", name, n, a ? a->ack_rate : NAN);

	if (ok && !amqp_up) {
		/* AMQP down: what the API knows of ready and consumers */
		ok = cqi_metrics_add_queue(ms, name, a ? a->dlq : NULL,
					  a && a->found) >= 0 &&
		     cqi_metrics_add(ms, "ready", name, n, a ? a->ready : NAN) &&
		     cqi_metrics_add(ms, "consumers", name, n, a ? a->consumers : NAN) &&
		     cqi_metrics_add(ms, "dlq", name, n, NAN);
	}
	if (ok && a && a->quorum) {
		size_t online = 0;

		for (size_t i = 0; i < a->nmembers; i++)
			online += a->members[i].online;
		ok = cqi_metrics_add(ms, "members", name, n, (double)online) &&
		     cqi_metrics_add(ms, "members_total", name, n,
				    (double)a->nmembers) &&
		     cqi_metrics_set_members(ms, name, a->leader, a->members,
					    a->nmembers);
	}
	return ok;
}

/* Passive declares of the queues; their figures are dropped when AMQP
 * fails part-way.  With no queue it only connects (o.amqp), anew each
 * time, so that up is what the broker said this time. */
static enum cq_err amqp_part(struct cq_stat *st, struct cq_metrics *ms,
			     const char *const *dlqs, bool *up)
{
	struct cq_ctx *amqp = ctx_for(st, CQ_SRC_AMQP);
	size_t keep_m = ms->n, keep_q = ms->nqueues;

	if (!amqp)
		return CQ_ERR_NOMEM;
	if (!amqp->amqp)
		cq_amqp_connect(amqp);
	cq_queue_figures(amqp, st->nnames, (const char *const *)st->names,
			 dlqs, ms);
	if (amqp->err) {
		while (ms->n > keep_m)
			free(ms->m[--ms->n].label);
		while (ms->nqueues > keep_q) {
			ms->nqueues--;
			free(ms->queues[ms->nqueues].name);
			free(ms->queues[ms->nqueues].dlq);
		}
	}
	if (amqp->err == CQ_ERR_NOMEM)
		return CQ_ERR_NOMEM;
	*up = !amqp->err;
	settle(st, ms, CQ_SRC_AMQP);
	if (!st->nnames) {
		cq_ctx_free(st->ctx[CQ_SRC_AMQP]);
		st->ctx[CQ_SRC_AMQP] = NULL;
	}
	return CQ_OK;
}

static enum cq_err queue_part(struct cq_stat *st, struct cq_metrics *ms)
{
	struct cqi_api_queue *aq = NULL;
	const char **dlqs = NULL;
	size_t naq = 0;
	enum cq_err e = CQ_OK;
	bool amqp_up = false;

	if (st->o.api_url && (st->nnames || st->o.match || st->o.api ||
			      st->o.nodes))
		e = api_part(st, ms, &aq, &naq);
	/* AMQP only for queues (--match may find none), or as asked */
	if (e || (!st->nnames && !st->o.amqp))
		goto out;
	dlqs = calloc(st->nnames + 1, sizeof(*dlqs));
	if (!dlqs) {
		e = CQ_ERR_NOMEM;
		goto out;
	}
	for (size_t i = 0; i < st->nnames; i++) {
		struct cqi_api_queue *a = api_of(aq, naq, st->names[i]);

		dlqs[i] = a ? a->dlq : NULL;
	}
	e = amqp_part(st, ms, dlqs, &amqp_up);
	for (size_t i = 0; i < st->nnames && !e; i++)
		if (!api_figures(ms, st->names[i], api_of(aq, naq, st->names[i]),
				 amqp_up))
			e = CQ_ERR_NOMEM;
out:
	free(dlqs);
	cqi_api_queues_free(aq, naq);
	return e;
}

/* A queue whose figures could not be read though Redis answers (a key
 * of another type): the error is the queue's, not Redis's. */
static bool queue_error(enum cq_err e)
{
	return e == CQ_ERR_DATA || e == CQ_ERR_NOTFOUND || e == CQ_ERR_USAGE;
}

/* The list and stream queues, through Redis's connection: a queue whose
 * figures cannot be read is shown unknown, its error its own (a key of
 * another type) or Redis's (down). */
static enum cq_err redis_queue_part(struct cq_stat *st, struct cq_metrics *ms)
{
	struct cq_ctx *ctx = ctx_for(st, CQ_SRC_REDIS);

	if (!ctx)
		return CQ_ERR_NOMEM;
	if (!ctx->redis && !ctx->err)
		cq_redis_connect(ctx);
	for (size_t i = 0; i < st->nrq; i++) {
		const struct cq_queue_ref *r = &st->rq[i];
		size_t len = strlen(r->label), keep_m = ms->n;
		char *why = NULL;
		int at;

		ctx->set.queue_backend = r->backend;
		ctx->set.queue_group = r->group;
		if (!ctx->err && cqi_queue_figures(ctx, r->name, r->label, NULL,
						   ms) == CQ_OK)
			continue;
		if (ctx->err == CQ_ERR_NOMEM)
			return CQ_ERR_NOMEM;
		while (ms->n > keep_m)	/* a part written before the error */
			free(ms->m[--ms->n].label);
		if (queue_error(ctx->err)) {
			why = strdup(ctx->errstr);
			cqi_err_drop(ctx);
			if (!why)
				return CQ_ERR_NOMEM;
		}
		at = cqi_metrics_add_queue(ms, r->label, NULL, false);
		if (at < 0 ||
		    !cqi_metrics_add(ms, "ready", r->label, len, NAN) ||
		    !cqi_metrics_add(ms, "consumers", r->label, len, NAN) ||
		    !cqi_metrics_add(ms, "dlq", r->label, len, NAN)) {
			free(why);
			return CQ_ERR_NOMEM;
		}
		ms->queues[at].src = CQ_SRC_REDIS;
		ms->queues[at].backend = r->backend;
		ms->queues[at].error = why;
	}
	ctx->set.queue_backend = st->set.queue_backend;
	ctx->set.queue_group = st->set.queue_group;
	settle(st, ms, CQ_SRC_REDIS);
	return CQ_OK;
}

enum cq_err cq_stat_sample(struct cq_stat *st, struct cq_metrics *ms)
{
	long long now = cq_now_ms();
	enum cq_err e = CQ_OK;

	cq_metrics_clear(ms);
	ms->time_ms = cq_wall_ms();
	ms->interval_s = st->prev_ms ? (double)(now - st->prev_ms) / 1000.0 : 0;
	st->prev_ms = now;
	if (st->o.cache)
		e = cache_part(st, ms);
	if (!e && (st->nnames || st->o.match || st->o.amqp || st->o.api ||
		   st->o.nodes))
		e = queue_part(st, ms);
	if (!e && st->nrq)
		e = redis_queue_part(st, ms);
	return e;
}
