/* redis_cluster.c - what Redis Cluster says, read without touching a
 * socket: the slot map of CLUSTER SLOTS, the MOVED and ASK redirections,
 * and which errors are a cluster in trouble worth another try.  redis.c
 * keeps the nodes and sends (see redis_int.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"
#include "redis_int.h"

bool cqi_cluster_redirect(const char *err, struct cqi_redirect *out)
{
	const char *p = err, *colon;
	char *end;
	unsigned long slot, port;
	size_t hl;

	memset(out, 0, sizeof(*out));
	if (strncmp(p, "MOVED ", 6) == 0) {
		p += 6;
	} else if (strncmp(p, "ASK ", 4) == 0) {
		out->ask = true;
		p += 4;
	} else {
		return false;
	}
	slot = strtoul(p, &end, 10);
	if (end == p || *end != ' ' || slot >= CQI_SLOTS)
		return false;
	p = end + 1;
	colon = strrchr(p, ':');	/* an IPv6 address has colons of its own */
	if (!colon)
		return false;
	port = strtoul(colon + 1, &end, 10);
	if (end == colon + 1 || *end || port < 1 || port > 65535)
		return false;
	hl = (size_t)(colon - p);
	if (hl >= sizeof(out->host))
		return false;
	memcpy(out->host, p, hl);	/* may be empty: the node asked */
	out->host[hl] = '\0';
	out->slot = (unsigned)slot;
	out->port = (int)port;
	return true;
}

bool cqi_cluster_busy(const char *err)
{
	return strncmp(err, "TRYAGAIN", 8) == 0 ||
	       strncmp(err, "CLUSTERDOWN", 11) == 0;
}

bool cqi_cluster_off(const char *err)
{
	/* "ERR This instance has cluster support disabled", or a server
	 * (or proxy) with no CLUSTER command at all */
	return strstr(err, "cluster support disabled") ||
	       strstr(err, "unknown command");
}

/* One node of a CLUSTER SLOTS range: [host, port, id, ...]. */
static bool slot_node(const struct cqi_reply *n, struct cqi_slot_range *out)
{
	if (n->type != CQI_REPLY_ARRAY || n->elements < 2 ||
	    n->element[0]->type != CQI_REPLY_STRING ||
	    n->element[1]->type != CQI_REPLY_INTEGER ||
	    n->element[1]->integer < 1 || n->element[1]->integer > 65535 ||
	    n->element[0]->len >= sizeof(out->host))
		return false;
	memcpy(out->host, n->element[0]->str, n->element[0]->len + 1);
	/* "?": the node does not know its own address yet, "" (Redis 7
	 * without a hostname): the node asked; the caller decides */
	if (strcmp(out->host, "?") == 0)
		out->host[0] = '\0';
	out->port = (int)n->element[1]->integer;
	return true;
}

size_t cqi_cluster_slots(const struct cqi_reply *r,
			 struct cqi_slot_range **out)
{
	struct cqi_slot_range *v;
	size_t n = 0;

	*out = NULL;
	if (r->type != CQI_REPLY_ARRAY)
		return 0;
	v = calloc(r->elements ? r->elements : 1, sizeof(*v));
	if (!v)
		return 0;
	for (size_t i = 0; i < r->elements; i++) {
		const struct cqi_reply *e = r->element[i];

		if (e->type != CQI_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != CQI_REPLY_INTEGER ||
		    e->element[1]->type != CQI_REPLY_INTEGER ||
		    e->element[0]->integer < 0 ||
		    e->element[1]->integer >= CQI_SLOTS ||
		    e->element[0]->integer > e->element[1]->integer ||
		    !slot_node(e->element[2], &v[n]))
			continue;
		v[n].lo = (unsigned)e->element[0]->integer;
		v[n].hi = (unsigned)e->element[1]->integer;
		n++;
	}
	*out = v;
	return n;
}
