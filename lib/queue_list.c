/* queue_list.c - Redis list queues as apps write them: the queue engine's
 * driver (qdriver_int.h) for qctl consume --backend list.
 *
 * Producers LPUSH raw bodies; the oldest is at the right end.  A consumer
 * moves each message atomically (LMOVE RIGHT LEFT, in a script that first
 * checks its lease) into a processing list of its own before the handler
 * sees it, and removes it from there with LREM once the work is done.
 * Every key below is on the slot of the queue's key (cqi_derived_key), so
 * each script touches one cluster slot:
 *
 *   Q                          the queue (a list; --prefix applies)
 *   {Q}|cq:processing:ID       a consumer's processing list (or one named
 *                              with --processing-list, e.g. an app's)
 *   PROC|cq:lease              its lease: the owner's "HOST PID RANDOM",
 *                              with a TTL refreshed while the owner lives
 *   {Q}|cq:consumers           a set of the processing lists of ID form
 *   {Q}|cq:meta                the side hash: sha1(body) -> JSON of its
 *                              retry count and last failure (exit code,
 *                              stderr lines, time, host, origin)
 *   Q.dlq, {Q.dlq}|cq:meta     the dead letters, and their reasons
 *
 * A processing list whose lease has expired belongs to a consumer that is
 * gone: its messages go back to the consuming end of the queue, oldest
 * next.  One whose lease lives is never touched, but by its owner after
 * a failover (resync): what a lost reply moved there unheard goes back.
 * Retries and dead letters are one script each (the LREM, the push and
 * the side hash together), so a kill between two steps loses nothing.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cq.h"
#include "internal.h"
#include "qdriver_int.h"
#include "queue_int.h"
#include "queue_list_int.h"
#include "redis_int.h"

#define LEASE_MS_DEFAULT 30000
#define TAKE_BYTES (4U << 20)	/* a take stops after this many body bytes */
#define RECOVER_BATCH 1000

/* ---- scripts ------------------------------------------------------------- */

/* KEYS queue proc lease meta; ARGV n token ttl_ms max_bytes.  Moves up to
 * n messages while the lease is ours; returns body, meta, body, meta... */
static const char take_lua[] =
	"if redis.call('GET', KEYS[3]) ~= ARGV[2] then\n"
	"  return redis.error_reply('CQLEASE the lease is lost')\n"
	"end\n"
	"redis.call('PEXPIRE', KEYS[3], ARGV[3])\n"
	"local has = redis.call('EXISTS', KEYS[4]) == 1\n"
	"local out, bytes, max = {}, 0, tonumber(ARGV[4])\n"
	"for i = 1, tonumber(ARGV[1]) do\n"
	"  if bytes >= max then break end\n"
	"  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')\n"
	"  if not v then break end\n"
	"  bytes = bytes + #v\n"
	"  out[#out + 1] = v\n"
	"  out[#out + 1] = has and redis.call('HGET', KEYS[4],\n"
	"                                     redis.sha1hex(v)) or false\n"
	"end\n"
	"return out\n";

/* KEYS lease; ARGV token ttl_ms: 1 while the lease is ours. */
static const char refresh_lua[] =
	"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
	"return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n";

/* KEYS meta; ARGV body: its side-hash record, or nil. */
static const char meta_lua[] =
	"return redis.call('HGET', KEYS[1], redis.sha1hex(ARGV[1]))\n";

/* KEYS proc meta; ARGV body dir: acked (with a side-hash record to
 * drop), looked for from the end dir says (LREM's count: -1 or 1). */
static const char ack_meta_lua[] =
	"local n = redis.call('LREM', KEYS[1], ARGV[2], ARGV[1])\n"
	"if n > 0 then redis.call('HDEL', KEYS[2], redis.sha1hex(ARGV[1])) end\n"
	"return n\n";

/* A script's writes are not undone when a later command fails: a move
 * checks the types it writes before its LREM, or a key of another type
 * would leave the message nowhere. */
#define LUA_TYPE_IS(k, t) \
	"local t = redis.call('TYPE', " k ")['ok']\n" \
	"if t ~= '" t "' and t ~= 'none' then\n" \
	"  return redis.error_reply('WRONGTYPE " k " is a ' .. t)\n" \
	"end\n"

/* KEYS proc dest meta [oldmeta]; ARGV body record: out of the processing
 * list, to the back of dest with its record (a retry: dest is the queue;
 * a dead letter: the DLQ, and the queue's record goes). */
static const char move_lua[] =
	LUA_TYPE_IS("KEYS[2]", "list")
	LUA_TYPE_IS("KEYS[3]", "hash")
	"if KEYS[4] then\n"
	LUA_TYPE_IS("KEYS[4]", "hash")
	"end\n"
	"if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return 0 end\n"
	"redis.call('LPUSH', KEYS[2], ARGV[1])\n"
	"local h = redis.sha1hex(ARGV[1])\n"
	"redis.call('HSET', KEYS[3], h, ARGV[2])\n"
	"if KEYS[4] then redis.call('HDEL', KEYS[4], h) end\n"
	"return 1\n";

/* KEYS proc queue; ARGV bodies, the newest taken first: back to the
 * consuming end (unsettled at a clean exit; after a failover, what this
 * consumer never received), so the oldest is next; returns how many were
 * there.  The newest taken is at the processing list's head: moved from
 * there in O(1), an LREM (a scan) only for one found elsewhere. */
static const char unget_lua[] =
	LUA_TYPE_IS("KEYS[2]", "list")
	"local n = 0\n"
	"for i = 1, #ARGV do\n"
	"  if redis.call('LINDEX', KEYS[1], 0) == ARGV[i] then\n"
	"    redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')\n"
	"    n = n + 1\n"
	"  elseif redis.call('LREM', KEYS[1], -1, ARGV[i]) > 0 then\n"
	"    redis.call('RPUSH', KEYS[2], ARGV[i])\n"
	"    n = n + 1\n"
	"  end\n"
	"end\n"
	"return n\n";

/* KEYS proc lease queue registry; ARGV max [token]: -1 while a lease
 * lives (unless it is token's: an owner known gone), else up to max
 * messages moved back, the newest-taken first so the oldest is next. */
static const char recover_lua[] =
	"local owner = redis.call('GET', KEYS[2])\n"
	"if owner and owner ~= ARGV[2] then return -1 end\n"
	"if owner then redis.call('DEL', KEYS[2]) end\n"
	"local n = 0\n"
	"for i = 1, tonumber(ARGV[1]) do\n"
	"  if not redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT') then\n"
	"    break\n"
	"  end\n"
	"  n = n + 1\n"
	"end\n"
	"if redis.call('EXISTS', KEYS[1]) == 0 then\n"
	"  redis.call('SREM', KEYS[4], KEYS[1])\n"
	"end\n"
	"return n\n";

/* KEYS proc lease registry; ARGV token: the lease given up. */
static const char release_lua[] =
	"if redis.call('GET', KEYS[2]) == ARGV[1] then\n"
	"  redis.call('DEL', KEYS[2])\n"
	"end\n"
	"if redis.call('EXISTS', KEYS[1]) == 0 then\n"
	"  redis.call('SREM', KEYS[3], KEYS[1])\n"
	"end\n"
	"return 1\n";

/* ---- the driver ----------------------------------------------------------- */

/* A message taken and not settled: what LREM needs to find it. */
struct taken {
	uint64_t tag;
	char *body;
	size_t len;
	bool meta;		/* it has a side-hash record */
	bool held;		/* replay keeps it (hold): no ack upto covers it */
	bool acked;		/* acked: its LREM is due */
	bool lrem_sent;		/* ... and sent, its reply not read yet */
};

/* A message given to publish, its reply not yet read. */
struct pending {
	uint64_t tag;
	bool done;
};

struct list_q {
	struct cqi_qdriver base;	/* first */
	struct cqi_list_keys k;
	char token[512];	/* "HOST PID RANDOM": the lease's value */
	char host[256];
	char where[128];	/* "BOOT:PIDNS": which PID space our pid is in */
	long long lease_ms, refreshed_ms, recovered_ms;
	bool leased;		/* we hold the lease */
	bool registered;	/* in the registry */
	bool taking;
	bool empty;		/* the last take found the queue empty */
	bool blocked;		/* a BLMOVE awaits its reply */
	/* commands whose replies were lost were sent again (a failover):
	 * the processing list is looked at before the next take (resync),
	 * their node named */
	bool resync;
	char lost_from[300];
	struct cq_delivery *stash;	/* arrived, not yet handed */
	struct taken *t;	/* unsettled, in tag order */
	size_t nt, tcap;
	uint64_t next_tag;
	size_t handed, room;
	/* publishing (enqueue, replay's copies): pipelined writes */
	struct cqi_pipe pipe;
	bool pub_on, pub_dead, in_reply;
	struct cqi_ring pend;	/* of struct pending, in the order given */
	size_t nacked;		/* unsettled marked acked, LREM due */
	size_t nheld;		/* unsettled held by replay */
};

static struct list_q *L(struct cqi_qdriver *q)
{
	return (struct list_q *)q;
}

static const struct list_q *CL(const struct cqi_qdriver *q)
{
	return (const struct list_q *)q;
}

/* EVAL script over keys (n of them) and args.  An error reply is
 * returned (the connection works); NULL when the connection is gone. */
static struct cqi_reply *eval_as(struct cq_ctx *ctx, const char *script,
				 const struct cq_buf *const *keys, int nkeys,
				 const char *const *args, const size_t *alens,
				 int nargs, bool send_only)
{
	const char *argv[16];
	size_t lens[16];
	struct cqi_reply *r = NULL;
	char nk[8];
	int argc = 0;

	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[argc] = "EVAL";
	lens[argc++] = 4;
	argv[argc] = script;
	lens[argc++] = strlen(script);
	argv[argc] = nk;
	lens[argc++] = strlen(nk);
	for (int i = 0; i < nkeys; i++) {
		argv[argc] = keys[i]->data;
		lens[argc++] = keys[i]->len;
	}
	for (int i = 0; i < nargs; i++) {
		argv[argc] = args[i];
		lens[argc++] = alens ? alens[i] : strlen(args[i]);
	}
	if (cqi_redis_append(ctx, CQI_KEY(3), argc, argv, lens) ||
	    (!send_only && cqi_redis_reply(ctx, &r)))
		return NULL;
	return r;
}

static struct cqi_reply *eval(struct cq_ctx *ctx, const char *script,
			      const struct cq_buf *const *keys, int nkeys,
			      const char *const *args, const size_t *alens,
			      int nargs)
{
	return eval_as(ctx, script, keys, nkeys, args, alens, nargs, false);
}

/* The same, sent only: its reply is read later (cqi_redis_reply). */
static enum cq_err eval_send(struct cq_ctx *ctx, const char *script,
			     const struct cq_buf *const *keys, int nkeys,
			     const char *const *args, const size_t *alens,
			     int nargs)
{
	eval_as(ctx, script, keys, nkeys, args, alens, nargs, true);
	return ctx->err;
}

/* ---- the side hash's records ----------------------------------------------- */

char *cqi_list_record(const struct cqi_failure *f, const char *origin)
{
	json_t *o = json_pack("{s:I,s:i,s:I,s:s,s:s}", "retries",
			      (json_int_t)f->attempts, "code", f->code,
			      "time", (json_int_t)(cq_wall_ms() / 1000),
			      "host", f->host ? f->host : "",
			      "origin", origin);
	char *s = NULL;

	if (o && (!f->tlen ||
		  cqi_json_set_bytes(o, "stderr", f->tail, f->tlen) == 0) &&
	    (!f->reason ||
	     json_object_set_new(o, "reason", json_string(f->reason)) == 0))
		s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static bool add_int(struct cq_field *h, size_t *n, const char *key,
		    json_t *v)
{
	if (!json_is_integer(v))
		return true;
	h[*n] = (struct cq_field){ .key = strdup(key), .kind = CQ_FIELD_INT,
				   .i = json_integer_value(v) };
	return h[(*n)++].key != NULL;
}

static bool add_str(struct cq_field *h, size_t *n, const char *key,
		    const char *p, size_t len)
{
	struct cq_field *f = &h[*n];

	*f = (struct cq_field){ .key = strdup(key), .kind = CQ_FIELD_STRING,
				.str = cqi_memdup(p, len), .len = len };
	(*n)++;
	return f->key && f->str;
}

static bool add_json_str(struct cq_field *h, size_t *n, const char *key,
			 json_t *v)
{
	if (!json_is_string(v) || !json_string_length(v))
		return true;
	return add_str(h, n, key, json_string_value(v), json_string_length(v));
}

/* stderr, or its base64 when it was not UTF-8. */
static bool add_stderr(struct cq_field *h, size_t *n, json_t *o)
{
	json_t *b = json_object_get(o, "stderr_base64");
	struct cq_buf raw = { 0 };
	bool ok;

	if (!json_is_string(b))
		return add_json_str(h, n, CQ_HDR_STDERR,
				    json_object_get(o, "stderr"));
	if (!cqi_base64_decode(json_string_value(b), json_string_length(b),
			       &raw)) {
		cq_buf_free(&raw);
		return true;	/* not ours to fail on */
	}
	ok = add_str(h, n, CQ_HDR_STDERR, raw.data ? raw.data : "", raw.len);
	cq_buf_free(&raw);
	return ok;
}

enum cq_err cqi_list_record_headers(const char *rec, size_t len,
				    struct cq_field **out, size_t *nout)
{
	json_t *o = json_loadb(rec, len, JSON_ALLOW_NUL, NULL);
	struct cq_field *h;
	size_t n = 0;
	bool ok, dead;

	*out = NULL;
	*nout = 0;
	if (!json_is_object(o)) {
		json_decref(o);
		return CQ_OK;	/* someone else's: no headers */
	}
	/* a dead letter's record has a reason; a retry's has none, and is
	 * no death (when and where it failed are in the record only) */
	dead = json_is_string(json_object_get(o, "reason"));
	h = calloc(8, sizeof(*h));
	ok = h && add_int(h, &n, CQ_HDR_RETRIES, json_object_get(o, "retries")) &&
	     add_int(h, &n, CQ_HDR_EXIT_CODE, json_object_get(o, "code")) &&
	     add_stderr(h, &n, o) &&
	     add_json_str(h, &n, CQ_HDR_HOST, json_object_get(o, "host")) &&
	     (!dead ||
	      (add_json_str(h, &n, CQ_HDR_DEATH_REASON,
			    json_object_get(o, "reason")) &&
	       add_json_str(h, &n, CQ_HDR_ORIGINAL_QUEUE,
			    json_object_get(o, "origin")) &&
	       add_int(h, &n, CQ_HDR_DIED_AT, json_object_get(o, "time"))));
	json_decref(o);
	if (!ok) {
		cqi_fields_free(h, n);
		return CQ_ERR_NOMEM;
	}
	*out = h;
	*nout = n;
	return CQ_OK;
}

/* ---- keys ---------------------------------------------------------------------- */

void cqi_list_keys_clear(struct cqi_list_keys *k)
{
	cq_buf_free(&k->queue);
	cq_buf_free(&k->proc);
	cq_buf_free(&k->lease);
	cq_buf_free(&k->registry);
	cq_buf_free(&k->meta);
	cq_buf_free(&k->dlq);
	cq_buf_free(&k->dlq_meta);
	free(k->dlq_name);
	k->dlq_name = NULL;
}

/* key's own derived name "what" (a prefixed key). */
static bool derived(struct cq_ctx *ctx, const struct cq_buf *key,
		    const char *what, struct cq_buf *out)
{
	return cqi_derived_key(ctx->set.prefix, key->data, key->len, what, out);
}

bool cqi_list_lease_key(struct cq_ctx *ctx, const struct cq_buf *proc,
			struct cq_buf *out)
{
	return derived(ctx, proc, "lease", out);
}

enum cq_err cqi_list_keys(struct cq_ctx *ctx, const char *queue,
			  const char *dlq, struct cqi_list_keys *k)
{
	const char *name = dlq;

	memset(k, 0, sizeof(*k));
	if (!name && asprintf(&k->dlq_name, "%s%s", queue, CQ_DLQ_SUFFIX) < 0)
		k->dlq_name = NULL;
	else if (name)
		k->dlq_name = strdup(name);
	if (!k->dlq_name ||
	    !cqi_prefixed(ctx, queue, strlen(queue), &k->queue) ||
	    !derived(ctx, &k->queue, "consumers", &k->registry) ||
	    !derived(ctx, &k->queue, "meta", &k->meta) ||
	    !cqi_prefixed(ctx, k->dlq_name, strlen(k->dlq_name), &k->dlq) ||
	    !derived(ctx, &k->dlq, "meta", &k->dlq_meta)) {
		cqi_list_keys_clear(k);
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	return CQ_OK;
}

/* A key that a verb needs to be of Redis type want, or missing; role
 * names it in the message. */
struct key_want {
	const struct cq_buf *key;
	const char *role;
	const char *want;
};

/* CQ_ERR_DATA naming w's key (its role) unless type t is the one wanted
 * or "none". */
static enum cq_err wrong_type(struct cq_ctx *ctx, const struct key_want *w,
			      const char *t)
{
	if (!*t || !strcmp(t, w->want) || !strcmp(t, "none"))
		return CQ_OK;
	return cq_seterr(ctx, CQ_ERR_DATA, "%s '%s' is a Redis %s, not a %s",
			 w->role, w->key->data, t, w->want);
}

/* The types of w[0..n) (at most MAX_WANTS) in one round trip, to free
 * with free_types. */
#define MAX_WANTS 8
static enum cq_err ask_types(struct cq_ctx *ctx, const struct key_want *w,
			     size_t n, char **types)
{
	const struct cq_buf *keys[MAX_WANTS];

	if (n > MAX_WANTS)
		return cq_seterr(ctx, CQ_ERR_INTERNAL, "too many keys to check");
	for (size_t i = 0; i < n; i++)
		keys[i] = w[i].key;
	return cqi_redis_key_types(ctx, keys, n, types);
}

static void free_types(char **types, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(types[i]);
}

/* The first of w[0..n) whose key is of another type, as CQ_ERR_DATA;
 * their types asked in one round trip (a TYPE each, pipelined). */
static enum cq_err check_types(struct cq_ctx *ctx, const struct key_want *w,
			       size_t n)
{
	char *types[MAX_WANTS];

	if (ask_types(ctx, w, n, types))
		return ctx->err;
	for (size_t i = 0; i < n && !ctx->err; i++)
		wrong_type(ctx, &w[i], types[i]);
	free_types(types, n);
	return ctx->err;
}

static enum cq_err check_type(struct cq_ctx *ctx, const struct cq_buf *key,
			      const char *role, const char *want)
{
	const struct key_want w = { key, role, want };

	return check_types(ctx, &w, 1);
}

enum cq_err cqi_list_check_type(struct cq_ctx *ctx, const struct cq_buf *key,
				const char *role)
{
	return check_type(ctx, key, role, "list");
}

/* The queue, and the keys beside it that a verb's scripts read or write,
 * are looked at before they run: of another type, a script would stop
 * half-way (purge's RPOP done, its HDEL refused: a message gone).  The
 * record hash (peek, purge); with registry, the consumer registry too
 * (consume, replay).  One round trip. */
static enum cq_err check_queue_types(struct list_q *l, bool registry)
{
	const struct key_want w[] = {
		{ &l->k.queue, "queue", "list" },
		{ &l->k.meta, "record hash", "hash" },
		{ &l->k.registry, "consumer registry", "set" },
	};

	return check_types(l->base.ctx, w, registry ? 3 : 2);
}

/* The context's WRONGTYPE error, with the key of ours that is of another
 * type named. */
static enum cq_err name_wrong_type(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	static const struct { size_t off; const char *role, *type; } ours[] = {
		{ offsetof(struct cqi_list_keys, queue), "queue", "list" },
		{ offsetof(struct cqi_list_keys, proc), "processing list", "list" },
		{ offsetof(struct cqi_list_keys, dlq), "dead-letter list", "list" },
		{ offsetof(struct cqi_list_keys, meta), "record hash", "hash" },
		{ offsetof(struct cqi_list_keys, dlq_meta),
		  "dead-letter list's record hash", "hash" },
		{ offsetof(struct cqi_list_keys, registry), "consumer registry",
		  "set" },
		{ offsetof(struct cqi_list_keys, lease), "lease", "string" },
	};
	struct key_want w[sizeof(ours) / sizeof(ours[0])];
	struct cqi_err_held h = { 0 };
	size_t n = 0;

	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
		const struct cq_buf *key = (const struct cq_buf *)
			((const char *)&l->k + ours[i].off);

		if (key->len)
			w[n++] = (struct key_want){ key, ours[i].role,
						    ours[i].type };
	}
	cqi_err_hold(ctx, &h);
	if (check_types(ctx, w, n))
		return ctx->err;
	cqi_err_restore(ctx, &h);
	return ctx->err;
}

static enum cq_err lease_lost(struct list_q *l)
{
	l->leased = false;
	return cq_seterr(l->base.ctx, CQ_ERR_TEMPFAIL,
			 "the lease on processing list '%s' expired (stopped longer than --lease?): its messages went back to '%s', to be delivered again",
			 l->k.proc.data, l->base.conf.queue);
}

/* An error reply r (freed) as the context's error. */
static enum cq_err reply_err(struct list_q *l, struct cqi_reply *r,
			     const char *what)
{
	struct cq_ctx *ctx = l->base.ctx;

	if (strncmp(r->str, "CQLEASE", 7) == 0)
		lease_lost(l);
	else if (cqi_redis_reply_err(ctx, r, what) == CQ_ERR_DATA) {
		name_wrong_type(l);
	}
	cqi_reply_free(r);
	return ctx->err;
}

/* An error reply r (freed) while consuming: the connection still works,
 * so the engine stops gracefully and settles what finished. */
static void reply_fail(struct list_q *l, struct cqi_reply *r,
		       const char *what)
{
	reply_err(l, r, what);
	cqi_qd_fail_ctx(&l->base);
}

/* ---- taking ------------------------------------------------------------------- */

static bool keep_taken(struct list_q *l, uint64_t tag, const char *body,
		       size_t len, bool meta)
{
	struct taken *t;

	t = cqi_grow(l->t, &l->tcap, l->nt + 1, sizeof(*t), 64);
	if (!t)
		return false;
	l->t = t;
	t = &l->t[l->nt];
	t->body = cqi_memdup(body, len);
	if (!t->body)
		return false;
	t->len = len;
	t->tag = tag;
	t->meta = meta;
	t->held = false;
	t->acked = false;
	t->lrem_sent = false;
	l->nt++;
	return true;
}

/* The index of tag among the unsettled, or nt. */
static size_t find_taken(const struct list_q *l, uint64_t tag)
{
	size_t lo = 0, hi = l->nt;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->t[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->nt && l->t[lo].tag == tag ? lo : l->nt;
}

static void drop_taken(struct list_q *l, size_t from, size_t n)
{
	if (!n)
		return;
	for (size_t i = from; i < from + n; i++) {
		if (l->t[i].acked)
			l->nacked--;
		if (l->t[i].held)
			l->nheld--;
		free(l->t[i].body);
	}
	memmove(l->t + from, l->t + from + n,
		(l->nt - from - n) * sizeof(*l->t));
	l->nt -= n;
}

/* A delivery of queue for a list item (its body taken over from body)
 * and its side-hash record (a string, or nil); NULL out of memory. */
static struct cq_delivery *list_delivery(const char *queue,
					 struct cqi_reply *body,
					 const struct cqi_reply *meta,
					 uint64_t tag)
{
	struct cq_delivery *d = calloc(1, sizeof(*d));
	bool has = meta && meta->type == CQI_REPLY_STRING;
	const struct cq_field *f;
	long long retries = 0;

	if (!d)
		return NULL;
	d->body = body->str;
	d->len = body->len;
	body->str = NULL;
	d->delivery_tag = tag;
	d->priority = -1;
	d->persistent = true;
	d->exchange = strdup("");
	d->routing_key = strdup(queue);
	d->queue = strdup(queue);
	if (!d->body || !d->exchange || !d->routing_key || !d->queue ||
	    (has && cqi_list_record_headers(meta->str, meta->len,
					    &d->headers, &d->nheaders))) {
		cqi_delivery_free(d);
		return NULL;
	}
	/* taken before: a retry's record (a dead letter's has a reason) */
	f = cq_delivery_header(d, CQ_HDR_RETRIES);
	d->redelivered = f && cqi_field_int(f, &retries) && retries > 0 &&
			 !cq_delivery_header(d, CQ_HDR_DEATH_REASON);
	return d;
}

/* A message now in our processing list (body taken over from r). */
static enum cq_err arrived(struct list_q *l, struct cqi_reply *body,
			   const struct cqi_reply *meta)
{
	struct cq_ctx *ctx = l->base.ctx;
	uint64_t tag = ++l->next_tag;
	bool has = meta && meta->type == CQI_REPLY_STRING;
	struct cq_delivery *d;

	if (!keep_taken(l, tag, body->str ? body->str : "", body->len, has))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	d = list_delivery(l->base.conf.queue, body, meta, tag);
	if (!d)
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (l->handed >= l->room) {
		l->stash = d;	/* the engine has no room: buffered() */
		return CQ_OK;
	}
	l->handed++;
	if (!l->base.hooks.deliver(l->base.hooks.arg, d)) {
		cqi_delivery_free(d);
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	return CQ_OK;
}

/* Send the take script for up to n messages. */
static enum cq_err take_send(struct list_q *l, size_t n)
{
	const struct cq_buf *keys[] = { &l->k.queue, &l->k.proc, &l->k.lease,
					&l->k.meta };
	char ns[24], ttl[24], maxb[24];
	const char *args[] = { ns, l->token, ttl, maxb };

	snprintf(ns, sizeof(ns), "%zu", n);
	snprintf(ttl, sizeof(ttl), "%lld", l->lease_ms);
	snprintf(maxb, sizeof(maxb), "%u", TAKE_BYTES);
	return eval_send(l->base.ctx, take_lua, keys, 4, args, NULL, 4);
}

/* The take script's reply: the messages moved, handed over. */
static enum cq_err take_read(struct list_q *l, size_t n)
{
	struct cqi_reply *r;
	enum cq_err e = CQ_OK;
	size_t bytes = 0;

	if (cqi_redis_reply(l->base.ctx, &r))
		return l->base.ctx->err;
	if (r->type == CQI_REPLY_ERROR) {
		reply_fail(l, r, "take");
		return CQ_OK;
	}
	l->refreshed_ms = cq_now_ms();
	for (size_t i = 0; i < r->elements; i += 2)
		bytes += r->element[i]->len;
	/* fewer than n: the list ran out, unless TAKE_BYTES stopped it */
	l->empty = r->elements / 2 < n && bytes < TAKE_BYTES;
	for (size_t i = 0; i + 1 < r->elements && !e; i += 2)
		e = arrived(l, r->element[i], r->element[i + 1]);
	cqi_reply_free(r);
	return e;
}

static enum cq_err acks_and_take(struct list_q *l, size_t n);

/* Move up to n messages into the processing list and hand them over;
 * the acks given since the last take go in the same round trip. */
static enum cq_err take_now(struct list_q *l, size_t n)
{
	return acks_and_take(l, n);
}

/* The reply of the BLMOVE: a message moved into our processing list, or
 * nil (its time ran out). */
static enum cq_err unblocked(struct list_q *l, struct cqi_reply *r)
{
	const struct cq_buf *keys[] = { &l->k.meta };
	struct cqi_reply *meta = NULL;
	const char *args[1];
	size_t lens[1];
	enum cq_err e;

	l->blocked = false;
	if (r->type == CQI_REPLY_ERROR) {
		reply_fail(l, r, "take");
		return CQ_OK;
	}
	if (r->type != CQI_REPLY_STRING) {
		cqi_reply_free(r);
		return CQ_OK;
	}
	args[0] = r->str;
	lens[0] = r->len;
	meta = eval(l->base.ctx, meta_lua, keys, 1, args, lens, 1);
	/* in our list now: without its record (an error), it is still ours */
	l->empty = false;
	e = meta ? arrived(l, r, meta) : l->base.ctx->err;
	cqi_reply_free(meta);
	cqi_reply_free(r);
	return e;
}

/* Wait up to wait_ms for the BLMOVE's reply. */
static enum cq_err wait_blocked(struct list_q *l, long long wait_ms)
{
	struct cqi_reply *r;

	if (!l->blocked)
		return CQ_OK;
	if (cqi_redis_reply_within(l->base.ctx, wait_ms, &r))
		return l->base.ctx->err;
	return r ? unblocked(l, r) : CQ_OK;
}

static enum cq_err quiesce(struct list_q *l);
static enum cq_err pub_sync(struct list_q *l, size_t keep);
static enum cq_err flush_acks(struct list_q *l);

/* Before any other command: the BLMOVE's reply first (it comes within
 * its timeout). */
static enum cq_err unblock(struct list_q *l)
{
	struct cqi_reply *r;

	if (!l->blocked)
		return CQ_OK;
	if (cqi_redis_reply(l->base.ctx, &r))
		return l->base.ctx->err;
	return unblocked(l, r);
}

/* Block on the queue for up to wait_ms (BLMOVE), without blocking us. */
static enum cq_err block(struct list_q *l, long long wait_ms)
{
	char secs[32];
	const char *argv[6] = { "BLMOVE", l->k.queue.data, l->k.proc.data,
				"RIGHT", "LEFT", secs };
	size_t lens[6] = { 6, l->k.queue.len, l->k.proc.len, 5, 4, 0 };

	snprintf(secs, sizeof(secs), "%lld.%03lld", wait_ms / 1000,
		 wait_ms % 1000);
	lens[5] = strlen(secs);
	if (cqi_redis_append(l->base.ctx, CQI_KEY(1), 6, argv, lens))
		return l->base.ctx->err;
	l->blocked = true;
	return wait_blocked(l, wait_ms);
}

static enum cq_err refresh(struct list_q *l)
{
	const struct cq_buf *keys[] = { &l->k.lease };
	char ttl[24];
	const char *args[] = { l->token, ttl };
	struct cqi_reply *r;
	bool mine;

	snprintf(ttl, sizeof(ttl), "%lld", l->lease_ms);
	r = eval(l->base.ctx, refresh_lua, keys, 1, args, NULL, 2);
	if (!r)
		return l->base.ctx->err;
	if (r->type == CQI_REPLY_ERROR) {
		reply_fail(l, r, "take");
		return CQ_OK;
	}
	mine = r->type == CQI_REPLY_INTEGER && r->integer == 1;
	cqi_reply_free(r);
	if (!mine) {
		lease_lost(l);
		cqi_qd_fail_ctx(&l->base);
		return CQ_OK;
	}
	l->refreshed_ms = cq_now_ms();
	return CQ_OK;
}

static bool refresh_due(const struct list_q *l, long long now)
{
	return l->leased && now - l->refreshed_ms >= l->lease_ms / 3;
}

static enum cq_err recover_dead(struct list_q *l);
static bool resync_due(struct list_q *l);
static enum cq_err resync(struct list_q *l);

static enum cq_err take(struct cqi_qdriver *q, size_t max, long long wait_ms)
{
	struct list_q *l = L(q);
	long long now = cq_now_ms();

	l->handed = 0;
	l->room = max;
	/* the engine polls fd() while handlers run: a server that hung up
	 * meanwhile is found before their acks are counted */
	if (cqi_redis_check_idle(q->ctx))
		return q->ctx->err;
	if (l->pub_on) {
		/* replay: the writes' replies first (nothing else may be read
		 * before them: the acks they bring go with the take), and an
		 * empty list ends the taking: no BLMOVE */
		if (resync_due(l) && resync(l))
			return q->ctx->err;
		if (l->taking && max)
			return take_now(l, max);
		if (pub_sync(l, 0) || flush_acks(l))
			return q->ctx->err;
		return refresh_due(l, now) ? refresh(l) : CQ_OK;
	}
	if (wait_blocked(l, l->stash ? 0 : wait_ms))
		return q->ctx->err;
	if (l->stash && max) {
		struct cq_delivery *d = l->stash;

		l->stash = NULL;
		l->handed++;
		if (!q->hooks.deliver(q->hooks.arg, d)) {
			cqi_delivery_free(d);
			return cq_seterr(q->ctx, CQ_ERR_NOMEM, "out of memory");
		}
	}
	if (resync_due(l) && resync(l))
		return q->ctx->err;
	if (l->blocked || l->stash)
		return CQ_OK;
	if (l->taking && l->handed < max &&
	    (!l->empty || refresh_due(l, now) || wait_ms <= 0)) {
		if (take_now(l, max - l->handed))
			return q->ctx->err;
	} else if (refresh_due(l, now) && refresh(l)) {
		return q->ctx->err;
	}
	/* acks not sent with a take: now, before any wait */
	if (l->nacked && flush_acks(l))
		return q->ctx->err;
	if (!l->taking || l->handed || !l->empty || max == 0 || wait_ms <= 0)
		return CQ_OK;
	if (now - l->recovered_ms >= l->lease_ms && recover_dead(l))
		return q->ctx->err;
	if (block(l, wait_ms))
		return q->ctx->err;
	/* the verb reads its own replies between calls (--dedupe): leave
	 * none awaited (the BLMOVE times out right after wait_ms) */
	return q->conf.redis_shared ? unblock(l) : CQ_OK;
}

static bool buffered(const struct cqi_qdriver *q)
{
	return CL(q)->stash != NULL;
}

static int fd(const struct cqi_qdriver *q)
{
	return cqi_redis_fd(q->ctx);
}

/* Retries and dead letters settle at once; what is out is writes
 * (replay's copies) whose replies are not read yet. */
static size_t unsettled(const struct cqi_qdriver *q)
{
	return CL(q)->pend.len;
}

/* Replay ends taking: stopped, or the list was found empty. */
static bool exhausted(const struct cqi_qdriver *q)
{
	const struct list_q *l = CL(q);

	return !l->blocked && !l->stash && (!l->taking || l->empty);
}

static enum cq_err llen(struct cq_ctx *ctx, const struct cq_buf *key,
			uint64_t *n)
{
	const char *argv[2] = { "LLEN", key->data };
	size_t lens[2] = { 4, key->len };
	struct cqi_reply *r = cqi_redis_cmd(ctx, CQI_KEY(1), 2, argv, lens);

	if (!r)
		return ctx->err;
	*n = r->integer > 0 ? (uint64_t)r->integer : 0;
	cqi_reply_free(r);
	return CQ_OK;
}

static enum cq_err recover_asked(struct list_q *l, const char *name);

/* Recovery comes first: what it moves back is ready too. */
static enum cq_err inspect(struct cqi_qdriver *q, uint64_t *ready)
{
	struct list_q *l = L(q);

	if (check_queue_types(l, true) ||
	    (q->conf.recover && recover_asked(l, q->conf.recover)) ||
	    recover_dead(l))
		return q->ctx->err;
	return llen(q->ctx, &l->k.queue, ready);
}

static enum cq_err depth(struct cqi_qdriver *q, uint64_t *ready, char *why,
			 size_t len)
{
	struct list_q *l = L(q);
	struct cqi_err_held h = { 0 };

	if (quiesce(l) || llen(q->ctx, &l->k.queue, ready) == CQ_OK)
		return q->ctx->err;
	if (q->ctx->err != CQ_ERR_DATA)
		return q->ctx->err;
	/* the connection still works: say why, and stop */
	name_wrong_type(l);
	cqi_err_hold(q->ctx, &h);
	snprintf(why, len, "%s", h.msg);
	return h.err;
}

static void stop(struct cqi_qdriver *q)
{
	L(q)->taking = false;
	quiesce(L(q));
}

static enum cq_err resume(struct cqi_qdriver *q)
{
	L(q)->taking = true;
	L(q)->empty = false;
	return CQ_OK;
}

/* ---- settling ------------------------------------------------------------------ */

/* Send the LREM (with its record's HDEL when it has one) of each acked
 * message not sent yet, pipelined, counting them in *sent; false when the
 * connection is gone.  The oldest taken are at the processing list's
 * tail, where a consumer's acks find them; replay's held ones pile up
 * there, so while any is held an ack looks from the head (the newest),
 * not through all of them. */
static bool remove_send(struct list_q *l, size_t *sent)
{
	struct cq_ctx *ctx = l->base.ctx;
	const char *dir = l->nheld ? "1" : "-1";

	for (size_t j = 0; j < l->nt; j++) {
		struct taken *t = &l->t[j];
		const char *argv[7] = { "EVAL", ack_meta_lua, "2",
					l->k.proc.data, l->k.meta.data,
					t->body, dir };
		size_t lens[7] = { 4, strlen(ack_meta_lua), 1, l->k.proc.len,
				   l->k.meta.len, t->len, strlen(dir) };
		const char *lrem[4] = { "LREM", l->k.proc.data, dir, t->body };
		size_t llens[4] = { 4, l->k.proc.len, strlen(dir), t->len };

		if (!t->acked || t->lrem_sent)
			continue;
		t->lrem_sent = true;
		(*sent)++;
		if (t->meta ?
		    cqi_redis_append(ctx, CQI_KEY(3), 7, argv, lens) :
		    cqi_redis_append(ctx, CQI_KEY(1), 4, lrem, llens))
			return false;
	}
	return true;
}

/* Read the replies of n LREMs sent. */
static bool remove_read(struct list_q *l, size_t n)
{
	struct cq_ctx *ctx = l->base.ctx;
	size_t gone = 0;

	for (size_t j = 0; j < n; j++) {
		struct cqi_reply *r;

		if (cqi_redis_reply(ctx, &r))
			return false;
		if (r->type == CQI_REPLY_ERROR)
			cqi_qd_fail(&l->base, cqi_redis_err_kind(r->str),
			      "cannot ack in processing list '%s': %s",
			      l->k.proc.data, r->str);
		else if (r->type == CQI_REPLY_INTEGER && r->integer == 0)
			gone++;
		cqi_reply_free(r);
	}
	if (gone)
		cqi_qd_notice(&l->base, "%zu acked message%s no longer in processing list '%s' (recovered after the lease lapsed?): delivered again",
			gone, gone == 1 ? " was" : "s were", l->k.proc.data);
	return true;
}


/* Acks are sent with the next round trip (a take, or any other command,
 * after quiesce): one LREM each, pipelined.  upto covers the run of
 * unheld ones that ends at tag (replay never gives it over a held one). */
static void ack(struct cqi_qdriver *q, uint64_t tag, bool upto)
{
	struct list_q *l = L(q);
	size_t i = find_taken(l, tag);

	if (i == l->nt)
		return;
	for (size_t j = upto ? 0 : i; j <= i; j++)
		if (!l->t[j].held && !l->t[j].acked) {
			l->t[j].acked = true;
			l->nacked++;
		}
}

/* Move the message tagged d's to dest with record rec (script move_lua);
 * settled (now) as dead or not. */
static void move(struct list_q *l, const struct cq_delivery *d,
		 const struct cq_buf *dest, const struct cq_buf *dmeta,
		 const struct cq_buf *oldmeta, const char *rec, bool dead)
{
	struct cq_ctx *ctx = l->base.ctx;
	const struct cq_buf *keys[] = { &l->k.proc, dest, dmeta, oldmeta };
	const char *args[2];
	size_t lens[2], i;
	struct cqi_reply *r;
	bool moved;

	if (quiesce(l))
		return;
	i = find_taken(l, d->delivery_tag);
	if (i == l->nt)
		return;
	args[0] = l->t[i].body;
	lens[0] = l->t[i].len;
	args[1] = rec;
	lens[1] = strlen(rec);
	r = eval(ctx, move_lua, keys, oldmeta ? 4 : 3, args, lens, 2);
	if (!r)
		return;	/* the connection is gone: it comes back */
	if (r->type == CQI_REPLY_ERROR) {
		struct cqi_err_held h = { 0 };

		reply_err(l, r, dead ? "dead-letter" : "retry");
		cqi_err_hold(ctx, &h);
		l->base.hooks.settled(l->base.hooks.arg, dead, false, h.msg);
		return;
	}
	moved = r->type == CQI_REPLY_INTEGER && r->integer == 1;
	cqi_reply_free(r);
	drop_taken(l, i, 1);
	l->base.hooks.settled(l->base.hooks.arg, dead, moved,
			      moved ? NULL :
			      "it is no longer in the processing list (recovered after the lease lapsed?)");
}

static void retry(struct cqi_qdriver *q, const struct cq_delivery *d,
		  const struct cqi_failure *f)
{
	struct list_q *l = L(q);
	char *rec = cqi_list_record(f, q->conf.queue);

	if (!rec) {
		l->base.hooks.settled(l->base.hooks.arg, false, false,
				      "out of memory");
		return;
	}
	move(l, d, &l->k.queue, &l->k.meta, NULL, rec, false);
	free(rec);
}

static bool dead_letter(struct cqi_qdriver *q, const struct cq_delivery *d,
			const struct cqi_failure *f, char *where, size_t len)
{
	struct list_q *l = L(q);
	char *rec = cqi_list_record(f, q->conf.queue);

	if (!rec) {
		cqi_qd_fail(&l->base, CQ_ERR_NOMEM, "out of memory");
		return false;
	}
	snprintf(where, len, "to list '%s'", l->k.dlq_name);
	move(l, d, &l->k.dlq, &l->k.dlq_meta, &l->k.meta, rec, true);
	free(rec);
	return true;
}

static enum cq_err flush(struct cqi_qdriver *q)
{
	return quiesce(L(q));
}

/* ---- publishing: enqueue, and replay's copies --------------------------------- */

static struct pending *pend_at(struct list_q *l, size_t i)
{
	return cqi_ring_at(&l->pend, i);
}

static void pend_done(struct list_q *l, uint64_t tag)
{
	for (size_t i = 0; i < l->pend.len; i++) {
		struct pending *p = pend_at(l, i);

		if (p->tag == tag && !p->done) {
			p->done = true;
			break;
		}
	}
	while (l->pend.len && pend_at(l, 0)->done)
		cqi_ring_shift(&l->pend);
}

static bool pend_add(struct list_q *l, uint64_t tag)
{
	struct pending *p = cqi_ring_push(&l->pend, 1024);

	if (!p)
		return false;
	*p = (struct pending){ .tag = tag };
	return true;
}

/* The connection is gone: whatever was not answered is settled failed. */
static void pend_lost(struct list_q *l)
{
	l->pub_dead = true;
	while (l->pend.len) {
		struct pending p = *pend_at(l, 0);

		cqi_ring_shift(&l->pend);
		if (!p.done)
			l->base.hooks.published(l->base.hooks.arg, p.tag, false,
						CQ_REASON_LOST);
	}
}

static void on_write(void *arg, uint64_t tag, struct cqi_reply *r)
{
	struct list_q *l = arg;
	bool ok = r->type != CQI_REPLY_ERROR;

	pend_done(l, tag);
	l->in_reply = true;
	l->base.hooks.published(l->base.hooks.arg, tag, ok,
				ok ? NULL : cqi_redis_refusal(r,
					"refused by Redis: the key is not a list"));
	l->in_reply = false;
}

/* Read the replies of what was written until at most keep are out. */
static enum cq_err pub_sync(struct list_q *l, size_t keep)
{
	if (!l->pub_on || l->pub_dead)
		return l->base.ctx->err;
	if (cqi_pipe_sync(&l->pipe, keep)) {
		pend_lost(l);
		return l->base.ctx->err;
	}
	return CQ_OK;
}

/* Forget the unsettled marked acked (their LREMs went out). */
static void drop_acked(struct list_q *l)
{
	size_t k = 0;

	for (size_t i = 0; i < l->nt; i++) {
		if (l->t[i].lrem_sent) {
			free(l->t[i].body);
			l->nacked--;
			continue;
		}
		l->t[k++] = l->t[i];
	}
	l->nt = k;
}

/* The LREMs of what was acked since the last round trip, then (n > 0)
 * the take script, in one round trip.  With writes, on one node: the
 * take goes right behind them, and the acks their replies bring wait for
 * the next take. */
static enum cq_err acks_and_take(struct list_q *l, size_t n)
{
	struct cq_ctx *ctx = l->base.ctx;
	size_t acks = 0;	/* LREMs sent: the writes' replies read
				 * first may have given more acks */
	bool behind = l->pub_on && n && !cqi_redis_is_cluster(ctx);

	if (behind && pub_sync(l, l->pipe.inflight + l->pipe.nout))
		return ctx->err;	/* queued writes out, no reply read */
	else if (!behind && pub_sync(l, 0))
		return ctx->err;
	if ((l->nacked && !remove_send(l, &acks)) ||
	    (n && take_send(l, n)))
		return ctx->err;
	/* the writes' replies come first (they were sent first) */
	if (behind && pub_sync(l, 0))
		return ctx->err;
	if (acks) {
		if (!remove_read(l, acks))
			return ctx->err;
		drop_acked(l);
	}
	return n ? take_read(l, n) : CQ_OK;
}

/* LREM what was acked since the last round trip. */
static enum cq_err flush_acks(struct list_q *l)
{
	return acks_and_take(l, 0);
}

/* Nothing in flight: the BLMOVE answered, every write's reply read, the
 * acks given meanwhile done.  Before any command whose reply is read at
 * once. */
static enum cq_err quiesce(struct list_q *l)
{
	if (l->in_reply)
		return cq_seterr(l->base.ctx, CQ_ERR_INTERNAL,
				 "a list command inside a write's reply");
	if (unblock(l) || pub_sync(l, 0) || flush_acks(l))
		return l->base.ctx->err;
	return CQ_OK;
}

static enum cq_err pub_start(struct cqi_qdriver *q, size_t window,
			     const char *exchange, bool mandatory)
{
	struct list_q *l = L(q);

	(void)mandatory;
	if (exchange && *exchange)
		return cqi_qd_unsupported(q, "list", "--exchange");
	if (q->conf.tmpl &&
	    cqi_qd_keepable(q, "list", q->conf.tmpl, false, true))
		return q->ctx->err;
	if (l->pub_on)
		return cq_seterr(q->ctx, CQ_ERR_INTERNAL,
				 "publisher already started");
	if (cqi_list_check_type(q->ctx, &l->k.queue, "queue") ||
	    cqi_pipe_init(&l->pipe, q->ctx, window, on_write, l))
		return q->ctx->err;
	l->pub_on = true;
	return CQ_OK;
}

/* LPUSH the body: all a list carries.  A replayed copy goes back bare:
 * the dead letter's record goes with the original (ack), and the retry
 * count starts again (a list keeps no replay count). */
static enum cq_err publish(struct cqi_qdriver *q, const struct cq_message *m,
			   uint64_t tag)
{
	struct list_q *l = L(q);
	struct cq_ctx *ctx = q->ctx;
	const char *target = m->routing_key && *m->routing_key ?
			     m->routing_key : q->conf.queue;
	const char *body = m->body ? m->body : m->from ? m->from->body : "";
	size_t len = m->body ? m->len : m->from ? m->from->len : 0;
	struct cq_buf key = { 0 };
	enum cq_err e;

	if (!l->pub_on || l->pub_dead || ctx->err) {
		q->hooks.published(q->hooks.arg, tag, false, CQ_REASON_LOST);
		return ctx->err ? ctx->err : CQ_ERR_TEMPFAIL;
	}
	/* an id, a priority, headers... of a record: a list has no place
	 * for them (a replayed copy goes back bare, on purpose) */
	if (!m->from && cqi_qd_keepable(q, "list", m, false, false)) {
		q->hooks.published(q->hooks.arg, tag, false, CQ_REASON_BAD);
		return ctx->err;
	}
	if (!cqi_prefixed(ctx, target, strlen(target), &key) ||
	    !pend_add(l, tag)) {
		cq_buf_free(&key);
		q->hooks.published(q->hooks.arg, tag, false, CQ_REASON_LOST);
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	}
	e = cqi_pipe_cmd(&l->pipe, tag, CQI_KEY(1), 3,
			 (const char *[]){ "LPUSH", key.data, body },
			 (const size_t[]){ 5, key.len, len });
	cq_buf_free(&key);
	if (e)
		pend_lost(l);
	return e;
}

/* Nothing to do: writes go out in the pipeline's batches, and their
 * replies are read as its window fills, at a flush, before a take, or
 * while the input is slow (sending each write on its own here would cost
 * a system call per message). */
static enum cq_err pub_poll(struct cqi_qdriver *q)
{
	return q->ctx->err;
}

/* The input is slow: settle everything written, then wait for it. */
static enum cq_err wait_input(struct cqi_qdriver *q, int fd)
{
	if (pub_sync(L(q), 0))
		return q->ctx->err;
	return cqi_wait_readable(q->ctx, fd);
}

static enum cq_err pub_flush(struct cqi_qdriver *q)
{
	return pub_sync(L(q), 0);
}

static bool pub_alive(const struct cqi_qdriver *q)
{
	/* a message refused before the wire (CQ_ERR_DATA, publish) leaves
	 * the publisher as it was */
	return CL(q)->pub_on && !CL(q)->pub_dead &&
	       (!q->ctx->err || q->ctx->err == CQ_ERR_DATA);
}

static enum cq_err give_back(struct list_q *l);

/* ---- replay: held messages -------------------------------------------------------- */

static void hold(struct cqi_qdriver *q, uint64_t tag)
{
	struct list_q *l = L(q);
	size_t i = find_taken(l, tag);

	if (i < l->nt && !l->t[i].held) {
		l->t[i].held = true;	/* it stays in the processing list */
		l->nheld++;
	}
}

static enum cq_err release_op(struct cqi_qdriver *q)
{
	return give_back(L(q));
}

/* ---- peek, info, purge, declare, stats ------------------------------------------ */

/* KEYS queue meta; ARGV from n max [last]: up to n messages from the
 * from-th oldest (0-based), oldest first, each with its record, stopping
 * once they hold max bytes; first, from again.  last is the newest item
 * read so far, which should be the from-th oldest: when a consumer took
 * from the consuming end meanwhile (or a give-back pushed there), from is
 * its place now (of its copies, the one nearest the old place; 0 when it
 * is gone, taken with every older one), so that the reader skips nothing. */
static const char peek_lua[] =
	"local from, n = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"if ARGV[4] and from > 0 and\n"
	"   redis.call('LINDEX', KEYS[1], -from) ~= ARGV[4] then\n"
	"  local len, best = redis.call('LLEN', KEYS[1]), nil\n"
	"  for _, i in ipairs(redis.call('LPOS', KEYS[1], ARGV[4], 'COUNT', 0)) do\n"
	"    local at = len - i\n"
	"    if not best or math.abs(at - from) < math.abs(best - from) then\n"
	"      best = at\n"
	"    end\n"
	"  end\n"
	"  from = best or 0\n"
	"end\n"
	"local items = redis.call('LRANGE', KEYS[1], -from - n, -from - 1)\n"
	"local has = redis.call('EXISTS', KEYS[2]) == 1\n"
	"local out, bytes, max = { from }, 0, tonumber(ARGV[3])\n"
	"for i = #items, 1, -1 do\n"
	"  if bytes >= max then break end\n"
	"  bytes = bytes + #items[i]\n"
	"  out[#out + 1] = items[i]\n"
	"  out[#out + 1] = has and redis.call('HGET', KEYS[2],\n"
	"                                     redis.sha1hex(items[i])) or false\n"
	"end\n"
	"return out\n";

#define PEEK_PAGE 100
#define BROWSE_PAGE 1000

/* Call fn for up to count messages, oldest first, read page at a time
 * with LRANGE from the consuming end: nothing moves (peek, browse). */
static enum cq_err read_oldest(struct cqi_qdriver *q, size_t count,
			       size_t page, cq_peek_fn fn, void *arg,
			       size_t *seen)
{
	struct list_q *l = L(q);
	struct cq_ctx *ctx = q->ctx;
	const struct cq_buf *keys[] = { &l->k.queue, &l->k.meta };
	struct cq_buf last = { 0 };	/* the newest read so far */
	long long from = 0;		/* its place from the consuming end */
	enum cq_err e = CQ_OK;

	*seen = 0;
	if (check_queue_types(l, false))
		return ctx->err;
	while (*seen < count && !e) {
		size_t n = count - *seen < page ? count - *seen : page;
		char froms[24], ns[24], maxb[24];
		const char *args[] = { froms, ns, maxb, last.data };
		size_t lens[] = { 0, 0, 0, last.len };
		struct cqi_reply *r, *const *item;
		size_t got, bytes = 0;

		snprintf(froms, sizeof(froms), "%lld", from);
		snprintf(ns, sizeof(ns), "%zu", n);
		snprintf(maxb, sizeof(maxb), "%u", TAKE_BYTES);
		for (int i = 0; i < 3; i++)
			lens[i] = strlen(args[i]);
		r = eval(ctx, peek_lua, keys, 2, args, lens, *seen ? 4 : 3);
		if (!r)
			break;
		if (r->type == CQI_REPLY_ERROR) {
			reply_err(l, r, "peek");
			break;
		}
		got = r->elements ? (r->elements - 1) / 2 : 0;
		from = r->elements ? r->element[0]->integer + (long long)got : 0;
		item = r->element + 1;
		for (size_t i = 0; i < got && !e; i++) {
			struct cq_delivery *d;

			bytes += item[2 * i]->len;
			cq_buf_reset(&last);
			if (!cq_buf_append(&last, item[2 * i]->str ?
					   item[2 * i]->str : "",
					   item[2 * i]->len) ||
			    !(d = list_delivery(q->conf.queue, item[2 * i],
						item[2 * i + 1], *seen + 1))) {
				e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
				break;
			}
			(*seen)++;
			e = fn(arg, d);
			cqi_delivery_free(d);
		}
		cqi_reply_free(r);
		/* fewer than n: the list ran out, unless max bytes stopped it */
		if (got < n && bytes < TAKE_BYTES)
			break;
	}
	cq_buf_free(&last);
	return e ? e : ctx->err;
}

static enum cq_err peek(struct cqi_qdriver *q, size_t count, cq_peek_fn fn,
			void *arg, size_t *seen)
{
	return read_oldest(q, count, PEEK_PAGE, fn, arg, seen);
}

static enum cq_err browse(struct cqi_qdriver *q, size_t count, cq_peek_fn fn,
			  void *arg, size_t *seen)
{
	return read_oldest(q, count, BROWSE_PAGE, fn, arg, seen);
}

/* A list has no settings: nothing to ask (peek, which follows, checks
 * the key's type with the record hash's, in one round trip). */
static enum cq_err info(struct cqi_qdriver *q, struct cq_queue_info *out)
{
	(void)q;
	out->known = false;
	return CQ_OK;
}

/* KEYS queue meta; ARGV n: up to n messages removed from the consuming
 * end, each with its record. */
static const char purge_lua[] =
	"local n = 0\n"
	"for i = 1, tonumber(ARGV[1]) do\n"
	"  local v = redis.call('RPOP', KEYS[1])\n"
	"  if not v then break end\n"
	"  redis.call('HDEL', KEYS[2], redis.sha1hex(v))\n"
	"  n = n + 1\n"
	"end\n"
	"return n\n";

/* KEYS queue meta: without records, the whole list goes at once and its
 * length is the count (one step: a message pushed meanwhile is either
 * counted or left); -1 when there are records (purge_lua's turn). */
static const char unlink_lua[] =
	"if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end\n"
	"local n = redis.call('LLEN', KEYS[1])\n"
	"redis.call('UNLINK', KEYS[1])\n"
	"return n\n";

/* Remove the ready messages (what was there at the start: a producer
 * pushing meanwhile is not chased) and their records; the processing
 * lists and their records stay.  The count is what the scripts removed. */
static enum cq_err purge(struct cqi_qdriver *q, uint64_t *count)
{
	struct list_q *l = L(q);
	struct cq_ctx *ctx = q->ctx;
	const struct cq_buf *keys[] = { &l->k.queue, &l->k.meta };
	struct cqi_reply *r;
	uint64_t ready = 0;

	*count = 0;
	if (check_queue_types(l, false))
		return ctx->err;
	if (!(r = eval(ctx, unlink_lua, keys, 2, NULL, NULL, 0)))
		return ctx->err;
	if (r->type == CQI_REPLY_ERROR)
		return reply_err(l, r, "purge");
	if (r->integer >= 0) {
		*count = (uint64_t)r->integer;
		cqi_reply_free(r);
		return CQ_OK;
	}
	cqi_reply_free(r);
	if (llen(ctx, &l->k.queue, &ready))
		return ctx->err;
	while (*count < ready) {
		char ns[24];
		const char *args[] = { ns };
		uint64_t n = ready - *count < RECOVER_BATCH ?
			     ready - *count : RECOVER_BATCH;

		snprintf(ns, sizeof(ns), "%llu", (unsigned long long)n);
		r = eval(ctx, purge_lua, keys, 2, args, NULL, 1);
		if (!r)
			return ctx->err;
		if (r->type == CQI_REPLY_ERROR)
			return reply_err(l, r, "purge");
		*count += (uint64_t)r->integer;
		n = (uint64_t)r->integer < n;	/* emptied meanwhile */
		cqi_reply_free(r);
		if (n)
			break;
	}
	return CQ_OK;
}

/* The live consumers (a lease held) and what they hold. */
static enum cq_err consumers(struct list_q *l, double *live, double *inflight)
{
	struct cq_ctx *ctx = l->base.ctx;
	const char *argv[2] = { "SMEMBERS", l->k.registry.data };
	size_t lens[2] = { 8, l->k.registry.len };
	struct cqi_reply *r = cqi_redis_cmd(ctx, CQI_KEY(1), 2, argv, lens);

	*live = *inflight = 0;
	if (!r)
		return ctx->err == CQ_ERR_DATA ? name_wrong_type(l) : ctx->err;
	for (size_t i = 0; i < r->elements; i++) {
		struct cq_buf proc = { 0 }, lease = { 0 };
		const char *ex[2] = { "EXISTS" };
		size_t exl[2] = { 6 };
		struct cqi_reply *x;
		uint64_t n = 0;

		if (!cq_buf_append(&proc, r->element[i]->str,
				   r->element[i]->len) ||
		    !cqi_list_lease_key(ctx, &proc, &lease)) {
			cq_buf_free(&proc);
			cqi_reply_free(r);
			return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		}
		ex[1] = lease.data;
		exl[1] = lease.len;
		x = llen(ctx, &proc, &n) ? NULL :
		    cqi_redis_cmd(ctx, CQI_KEY(1), 2, ex, exl);
		cq_buf_free(&proc);
		cq_buf_free(&lease);
		if (!x) {
			cqi_reply_free(r);
			return ctx->err;
		}
		*live += x->integer > 0;
		*inflight += (double)n;
		cqi_reply_free(x);
	}
	cqi_reply_free(r);
	return CQ_OK;
}

/* Nothing to create: a list exists once something is pushed.  declare
 * checks that the keys are lists (or absent) and refuses what a list has
 * no such thing for. */
static enum cq_err declare(struct cqi_qdriver *q, const struct cq_queue_opts *o,
			   struct cq_declared *out)
{
	struct list_q *l = L(q);
	struct cq_ctx *ctx = q->ctx;
	const char *opt = o->quorum ? "--quorum" :
			  o->max_length >= 0 ? "--max-length" :
			  o->message_ttl_ms >= 0 ? "--message-ttl" :
			  o->max_priority >= 0 ? "--max-priority" :
			  o->delivery_limit >= 0 ? "--delivery-limit" : NULL;
	struct cqi_list_keys dk;
	double live = 0, inflight = 0;
	uint64_t ready = 0;

	if (opt)
		return cqi_qd_unsupported(q, "list", opt);
	if (cqi_list_check_type(ctx, &l->k.queue, "queue") ||
	    llen(ctx, &l->k.queue, &ready) ||
	    consumers(l, &live, &inflight))
		return ctx->err;
	out->messages = ready > UINT32_MAX ? UINT32_MAX : (uint32_t)ready;
	out->consumers = (uint32_t)live;
	if (!o->dlq)
		return CQ_OK;
	if (cqi_list_keys(ctx, q->conf.queue, *o->dlq ? o->dlq : NULL, &dk))
		return ctx->err;
	if (cqi_list_check_type(ctx, &dk.dlq, "dead-letter list") == CQ_OK &&
	    !(out->dlq = strdup(dk.dlq_name)))
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	cqi_list_keys_clear(&dk);
	return ctx->err;
}

/* A list always "exists" (an empty one has no key); the DLQ's depth is
 * always known, 0 without a key. */
static enum cq_err stats(struct cqi_qdriver *q, struct cqi_qstats *out)
{
	struct list_q *l = L(q);
	struct cq_ctx *ctx = q->ctx;
	const struct key_want w[] = {
		{ &l->k.queue, "queue", "list" },
		{ &l->k.dlq, "dead-letter list", "list" },
	};
	uint64_t ready = 0, dead = 0;

	if (check_types(ctx, w, 2) ||
	    llen(ctx, &l->k.queue, &ready) || llen(ctx, &l->k.dlq, &dead) ||
	    consumers(l, &out->consumers, &out->inflight))
		return ctx->err;
	out->found = true;
	out->ready = (double)ready;
	out->dlq = (double)dead;
	snprintf(out->dlq_name, sizeof(out->dlq_name), "%s", l->k.dlq_name);
	return CQ_OK;
}

/* ---- leases and recovery ----------------------------------------------------- */

/* Move what proc holds back to the queue unless a live consumer holds
 * it; token: an owner known gone (its lease is taken away).  *alive when
 * its lease lives; *moved counts what went back. */
static enum cq_err recover_list(struct list_q *l, const struct cq_buf *proc,
				const char *token, bool *alive,
				unsigned long long *moved)
{
	struct cq_ctx *ctx = l->base.ctx;
	struct cq_buf lease = { 0 };
	const struct cq_buf *keys[] = { proc, &lease, &l->k.queue,
					&l->k.registry };
	char max[24];
	const char *args[] = { max, token ? token : "" };
	long long n;

	*alive = false;
	*moved = 0;
	if (!cqi_list_lease_key(ctx, proc, &lease))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	snprintf(max, sizeof(max), "%d", RECOVER_BATCH);
	do {
		struct cqi_reply *r = eval(ctx, recover_lua, keys, 4, args,
					   NULL, 2);

		if (!r || r->type == CQI_REPLY_ERROR) {
			cq_buf_free(&lease);
			return r ? reply_err(l, r, "recover") :
				   ctx->err;
		}
		n = r->integer;
		cqi_reply_free(r);
		if (n < 0)
			*alive = true;
		else
			*moved += (unsigned long long)n;
	} while (n == RECOVER_BATCH);
	cq_buf_free(&lease);
	return CQ_OK;
}

/*
 * The lease's owner: "HOST PID RANDOM BOOT:PIDNS".  Known gone when it ran
 * on this host, in this boot and in our PID namespace (so that its pid
 * means the same here: containers sharing a host name do not), and no
 * process has its pid.  A pid taken again since looks alive: its lease
 * then has to expire.
 */
static bool owner_gone(const struct list_q *l, const char *owner)
{
	char host[256], rnd[64], where[128];
	long pid;

	if (!*l->where ||
	    sscanf(owner, "%255s %ld %63s %127s", host, &pid, rnd, where) != 4 ||
	    pid <= 0 || strcmp(host, l->host) || strcmp(where, l->where))
		return false;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static enum cq_err lease_owner(struct cq_ctx *ctx, const struct cq_buf *lease,
			       char *owner, size_t len, long long *ttl_ms)
{
	const char *argv[2] = { "GET", lease->data };
	size_t lens[2] = { 3, lease->len };
	const char *pttl[2] = { "PTTL", lease->data };
	size_t plens[2] = { 4, lease->len };
	struct cqi_reply *r = cqi_redis_cmd(ctx, CQI_KEY(1), 2, argv, lens);

	*owner = '\0';
	if (!r)
		return ctx->err;
	if (r->type == CQI_REPLY_STRING)
		snprintf(owner, len, "%s", r->str);
	cqi_reply_free(r);
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 2, pttl, plens);
	if (!r)
		return ctx->err;
	*ttl_ms = r->integer;
	cqi_reply_free(r);
	return CQ_OK;
}


/* Recover registered processing list proc if its lease expired, or its
 * owner is known gone (*gone). */
static enum cq_err recover_gone(struct list_q *l, const struct cq_buf *proc,
				unsigned long long *moved, bool *gone)
{
	struct cq_ctx *ctx = l->base.ctx;
	struct cq_buf lease = { 0 };
	char owner[512];
	long long ttl;
	bool alive;

	*gone = false;
	if (!cqi_list_lease_key(ctx, proc, &lease))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (lease_owner(ctx, &lease, owner, sizeof(owner), &ttl) == CQ_OK)
		*gone = *owner && owner_gone(l, owner);
	cq_buf_free(&lease);
	if (ctx->err)
		return ctx->err;
	return recover_list(l, proc, *gone ? owner : NULL, &alive, moved);
}

/* The processing lists of consumers whose lease expired, back to the
 * queue. */
static enum cq_err recover_dead(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	const char *argv[2] = { "SMEMBERS", l->k.registry.data };
	size_t lens[2] = { 8, l->k.registry.len };
	struct cqi_reply *r;
	enum cq_err e = CQ_OK;

	l->recovered_ms = cq_now_ms();
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 2, argv, lens);
	if (!r)
		return ctx->err == CQ_ERR_DATA ? name_wrong_type(l) : ctx->err;
	for (size_t i = 0; i < r->elements && !e; i++) {
		struct cq_buf proc = { 0 };
		unsigned long long moved = 0;
		bool gone = false;

		if (r->element[i]->type != CQI_REPLY_STRING)
			continue;
		if (!cq_buf_append(&proc, r->element[i]->str,
				   r->element[i]->len)) {
			e = cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
			break;
		}
		if (proc.len != l->k.proc.len ||
		    memcmp(proc.data, l->k.proc.data, proc.len))
			e = recover_gone(l, &proc, &moved, &gone);
		if (!e && moved)
			cqi_qd_notice(&l->base, "recovered %llu message%s of a consumer %s (processing list '%s') into '%s'",
				moved, moved == 1 ? "" : "s",
				gone ? "that is gone (its process ended)" :
				"whose lease expired", proc.data,
				l->base.conf.queue);
		cq_buf_free(&proc);
	}
	cqi_reply_free(r);
	return e;
}

static enum cq_err held_err(struct list_q *l, const struct cq_buf *proc,
			    const char *owner, long long ttl_ms,
			    const char *what)
{
	char host[256] = "?";
	long pid = 0;

	sscanf(owner, "%255s %ld", host, &pid);
	return cq_seterr(l->base.ctx, CQ_ERR_TEMPFAIL,
			 "%sprocessing list '%s' belongs to a live consumer (%s pid %ld; its lease ends in %.1fs unless renewed)",
			 what, proc->data, host, pid,
			 ttl_ms > 0 ? (double)ttl_ms / 1000.0 : 0.0);
}

static bool same_key(const struct cq_buf *a, const struct cq_buf *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* --recover LIST: asked for, so an owner known gone counts as gone. */
static enum cq_err recover_asked(struct list_q *l, const char *name)
{
	struct cq_ctx *ctx = l->base.ctx;
	struct cq_buf proc = { 0 }, lease = { 0 };
	char owner[512];
	long long ttl = 0;
	unsigned long long moved = 0;
	bool alive = false;

	if (!cqi_prefixed(ctx, name, strlen(name), &proc) ||
	    !cqi_list_lease_key(ctx, &proc, &lease)) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (same_key(&proc, &l->k.queue)) {	/* it would never empty */
		cq_seterr(ctx, CQ_ERR_USAGE,
			  "--recover: '%s' is the queue itself", name);
		goto out;
	}
	if (cqi_list_check_type(ctx, &proc, "--recover: processing list") ||
	    lease_owner(ctx, &lease, owner, sizeof(owner), &ttl))
		goto out;
	if (recover_list(l, &proc, *owner && owner_gone(l, owner) ? owner :
			 NULL, &alive, &moved))
		goto out;
	if (alive) {
		held_err(l, &proc, owner, ttl, "--recover: ");
		goto out;
	}
	cqi_qd_notice(&l->base, "recovered %llu message%s of processing list '%s' into '%s'",
		moved, moved == 1 ? "" : "s", name, l->base.conf.queue);
out:
	cq_buf_free(&proc);
	cq_buf_free(&lease);
	return ctx->err;
}

/* The processing list's lease, ours now (SET NX): refused while a live
 * consumer holds it. */
static enum cq_err take_lease(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	char ttl[24], owner[512];
	const char *argv[6] = { "SET", l->k.lease.data, l->token, "PX", ttl,
				"NX" };
	size_t lens[6] = { 3, l->k.lease.len, strlen(l->token), 2, 0, 2 };
	struct cqi_reply *r;
	long long left = 0;
	bool got;

	snprintf(ttl, sizeof(ttl), "%lld", l->lease_ms);
	lens[4] = strlen(ttl);
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 6, argv, lens);
	if (!r)
		return ctx->err;
	got = r->type == CQI_REPLY_STATUS;
	cqi_reply_free(r);
	if (!got) {
		if (lease_owner(ctx, &l->k.lease, owner, sizeof(owner), &left))
			return ctx->err;
		return held_err(l, &l->k.proc, owner, left, "");
	}
	l->leased = true;
	l->refreshed_ms = cq_now_ms();
	return CQ_OK;
}

static enum cq_err enroll(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	const char *argv[3] = { "SADD", l->k.registry.data, l->k.proc.data };
	size_t lens[3] = { 4, l->k.registry.len, l->k.proc.len };
	struct cqi_reply *r = cqi_redis_cmd(ctx, CQI_KEY(1), 3, argv, lens);

	if (!r)
		return ctx->err;
	cqi_reply_free(r);
	l->registered = true;
	return CQ_OK;
}

/* Our own processing list, named after this process. */
static enum cq_err name_proc(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	const char *named = l->base.conf.processing;
	unsigned char rnd[6];
	char what[400];

	if (cqi_random_bytes(ctx, rnd, sizeof(rnd)))
		return ctx->err;
	snprintf(l->token, sizeof(l->token),
		 "%s %ld %02x%02x%02x%02x%02x%02x %s", l->host, (long)getpid(),
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
		 *l->where ? l->where : "-");
	snprintf(what, sizeof(what), "processing:%s:%ld:%02x%02x%02x%02x%02x%02x",
		 l->host, (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3],
		 rnd[4], rnd[5]);
	if (named ? !cqi_prefixed(ctx, named, strlen(named), &l->k.proc) :
		    !derived(ctx, &l->k.queue, what, &l->k.proc))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	if (same_key(&l->k.proc, &l->k.queue))	/* each take a rotation */
		return cq_seterr(ctx, CQ_ERR_USAGE,
				 "--processing-list: '%s' is the queue itself",
				 named);
	if (!cqi_list_lease_key(ctx, &l->k.proc, &l->k.lease))
		return cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
	return CQ_OK;
}

static enum cq_err dlq_slot_check(struct list_q *l)
{
	return cqi_redis_dlq_slot_check(l->base.ctx, &l->k.queue,
					l->base.conf.queue, &l->k.dlq,
					l->k.dlq_name, "list");
}

/* The processing list is a list; with --exec the dead-letter list and
 * its record hash are what they should be, on the queue's slot.  Their
 * types in one round trip; the errors in the order they were checked
 * one by one. */
static enum cq_err check_start_keys(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	const struct key_want w[] = {
		{ &l->k.proc, "processing list", "list" },
		{ &l->k.dlq, "dead-letter list", "list" },
		{ &l->k.dlq_meta, "dead-letter list's record hash", "hash" },
	};
	size_t n = l->base.conf.exec ? 3 : 1;
	char *types[3];

	if (ask_types(ctx, w, n, types))
		return ctx->err;
	if (!wrong_type(ctx, &w[0], types[0]) && n > 1 &&
	    !wrong_type(ctx, &w[1], types[1]) && !dlq_slot_check(l))
		wrong_type(ctx, &w[2], types[2]);
	free_types(types, n);
	return ctx->err;
}

static enum cq_err start(struct cqi_qdriver *q, unsigned window)
{
	struct list_q *l = L(q);
	(void)window;
	if (check_start_keys(l))
		return q->ctx->err;
	if (take_lease(l))
		return q->ctx->err;
	if (!q->conf.processing && enroll(l))
		return q->ctx->err;
	l->taking = true;
	cqi_qd_rejoined(q, NULL, 0);	/* lost replies from here on */
	return CQ_OK;
}

/* At a clean exit: what was taken and not settled goes back to the
 * consuming end (newest first, so the oldest is next), in batches of
 * UNGET_BATCH (and TAKE_BYTES), and the lease is given up. */
#define UNGET_BATCH 256

/* One unget_lua of the n bodies (n <= UNGET_BATCH) at argv[5..] and
 * lens[5..]: *moved counts those the processing list held. */
static enum cq_err unget(struct list_q *l, const char **argv, size_t *lens,
			 size_t n, unsigned long long *moved)
{
	struct cq_ctx *ctx = l->base.ctx;
	struct cqi_reply *r;

	argv[0] = "EVAL";
	argv[1] = unget_lua;
	argv[2] = "2";
	argv[3] = l->k.proc.data;
	argv[4] = l->k.queue.data;
	lens[0] = 4;
	lens[1] = strlen(unget_lua);
	lens[2] = 1;
	lens[3] = l->k.proc.len;
	lens[4] = l->k.queue.len;
	if (cqi_redis_append(ctx, CQI_KEY(3), (int)(5 + n), argv, lens) ||
	    cqi_redis_reply(ctx, &r))
		return ctx->err;
	if (r->type == CQI_REPLY_ERROR)
		return reply_err(l, r, "give back");
	if (r->type == CQI_REPLY_INTEGER && r->integer > 0)
		*moved += (unsigned long long)r->integer;
	cqi_reply_free(r);
	return CQ_OK;
}

static enum cq_err give_back(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	const char *argv[5 + UNGET_BATCH];
	size_t lens[5 + UNGET_BATCH];
	unsigned long long moved = 0;

	if (quiesce(l))
		return ctx->err;
	while (l->nt) {
		size_t n = 0, bytes = 0;

		while (n < UNGET_BATCH && n < l->nt && bytes < TAKE_BYTES) {
			const struct taken *t = &l->t[l->nt - 1 - n];

			argv[5 + n] = t->body;
			lens[5 + n] = t->len;
			bytes += t->len;
			n++;
		}
		if (unget(l, argv, lens, n, &moved))
			return ctx->err;
		drop_taken(l, l->nt - n, n);
	}
	return CQ_OK;
}

/* ---- after a failover ---------------------------------------------- */

/* A body to match: in the processing list (i its index there) or held. */
struct body_ref {
	const char *p;
	size_t len, i;
};

static int body_cmp(const struct body_ref *a, const struct body_ref *b)
{
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return a->len ? memcmp(a->p, b->p, a->len) : 0;
}

static int body_order(const void *a, const void *b)
{
	const struct body_ref *x = a, *y = b;
	int c = body_cmp(x, y);

	return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

/* Mark in keep[] the processing list's items (the n of in, sorted) that
 * a held message (the nh of held, sorted) accounts for, one each. */
static void match_held(const struct body_ref *in, size_t n,
		       const struct body_ref *held, size_t nh, bool *keep)
{
	size_t a = 0, b = 0;

	while (a < n && b < nh) {
		int c = body_cmp(&in[a], &held[b]);

		if (c == 0)
			keep[in[a].i] = true;
		a += c <= 0;
		b += c >= 0;
	}
}

/* Send back to the queue each item of the processing list (LRANGE reply
 * r, the newest first) that keep[] does not mark; *moved counts them. */
static enum cq_err unget_unheld(struct list_q *l, const struct cqi_reply *r,
				const bool *keep, unsigned long long *moved)
{
	const char *argv[5 + UNGET_BATCH];
	size_t lens[5 + UNGET_BATCH];
	size_t n = 0, bytes = 0;

	for (size_t i = 0; i <= r->elements; i++) {
		if ((i == r->elements || n == UNGET_BATCH ||
		     bytes >= TAKE_BYTES) && n) {
			if (unget(l, argv, lens, n, moved))
				return l->base.ctx->err;
			n = bytes = 0;
		}
		if (i == r->elements || keep[i])
			continue;
		argv[5 + n] = r->element[i]->str ? r->element[i]->str : "";
		lens[5 + n] = r->element[i]->len;
		bytes += lens[5 + n++];
	}
	return CQ_OK;
}

static bool resync_due(struct list_q *l)
{
	if (cqi_qd_rejoined(&l->base, l->lost_from, sizeof(l->lost_from)))
		l->resync = true;
	return l->resync && l->leased && !l->blocked;
}

/*
 * Commands whose replies were lost were sent again (cqi_qd_rejoined): a
 * BLMOVE or take script the old master ran before it died may have moved
 * messages into our processing list that the new master has (the write
 * replicated) and we never received; they would wait there until we end.
 * Every message there that we do not hold goes back to the queue's
 * consuming end, as recovery gives back a dead consumer's (oldest next),
 * to be delivered again.  One we hold that is not there (the move never
 * replicated) is still in the queue: it comes again too (at least once).
 */
static enum cq_err resync(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	const char *argv[4] = { "LRANGE", l->k.proc.data, "0", "-1" };
	size_t lens[4] = { 6, l->k.proc.len, 1, 2 };
	struct body_ref *in = NULL, *held;
	struct cqi_reply *r;
	unsigned long long moved = 0;
	bool *keep = NULL;

	l->resync = false;
	if (quiesce(l))
		return ctx->err;
	r = cqi_redis_cmd(ctx, CQI_KEY(1), 4, argv, lens);
	if (!r)
		return ctx->err == CQ_ERR_DATA ? name_wrong_type(l) : ctx->err;
	in = calloc(r->elements + l->nt + 1, sizeof(*in));
	keep = calloc(r->elements + 1, sizeof(*keep));
	if (!in || !keep) {
		cq_seterr(ctx, CQ_ERR_NOMEM, "out of memory");
		goto out;
	}
	held = in + r->elements;
	for (size_t i = 0; i < r->elements; i++)
		in[i] = (struct body_ref){ r->element[i]->str,
					   r->element[i]->len, i };
	for (size_t j = 0; j < l->nt; j++)
		held[j] = (struct body_ref){ l->t[j].body, l->t[j].len, j };
	qsort(in, r->elements, sizeof(*in), body_order);
	qsort(held, l->nt, sizeof(*held), body_order);
	match_held(in, r->elements, held, l->nt, keep);
	if (unget_unheld(l, r, keep, &moved) == CQ_OK && moved) {
		l->empty = false;
		cqi_qd_notice(&l->base, "%llu message%s in processing list '%s' that this consumer never received (the connection to Redis at %s was lost before the reply came) went back to '%s', to be delivered again",
			moved, moved == 1 ? "" : "s", l->k.proc.data,
			l->lost_from, l->base.conf.queue);
	}
out:
	free(in);
	free(keep);
	cqi_reply_free(r);
	return ctx->err;
}

static void release(struct list_q *l)
{
	struct cq_ctx *ctx = l->base.ctx;
	const struct cq_buf *keys[] = { &l->k.proc, &l->k.lease,
					&l->k.registry };
	struct cqi_reply *r;

	if (ctx->err || !l->leased || give_back(l))
		return;	/* left for recovery once the lease expires */
	r = eval(ctx, release_lua, keys, 3, (const char *[]){ l->token },
		 NULL, 1);
	cqi_reply_free(r);	/* an error: the lease expires by itself */
	l->leased = false;
}

/* "BOOT:PIDNS" (the boot's id, our PID namespace's inode), or "" when
 * /proc cannot tell. */
static void pid_space(char *buf, size_t len)
{
	char boot[64] = "";
	struct stat st;
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	buf[0] = '\0';
	if (!f)
		return;
	if (!fgets(boot, sizeof(boot), f))
		boot[0] = '\0';
	fclose(f);
	boot[strcspn(boot, " \n")] = '\0';
	if (*boot && stat("/proc/self/ns/pid", &st) == 0)
		snprintf(buf, len, "%s:%llu", boot,
			 (unsigned long long)st.st_ino);
}

static enum cq_err drv_connect(struct cqi_qdriver *q)
{
	if (!q->ctx->redis)
		return cq_seterr(q->ctx, CQ_ERR_INTERNAL,
				 "not connected to Redis");
	return name_proc(L(q));
}

static void drv_free(struct cqi_qdriver *q)
{
	struct list_q *l = L(q);
	struct cqi_err_held h = { 0 };

	/* a key of the wrong type leaves the connection working: give back
	 * what we hold all the same */
	if (q->ctx->err == CQ_ERR_DATA) {
		cqi_err_hold(q->ctx, &h);
		release(l);
		if (q->ctx->err)
			cqi_err_drop(q->ctx);
		cqi_err_restore(q->ctx, &h);
	} else {
		release(l);
	}
	cqi_delivery_free(l->stash);
	drop_taken(l, 0, l->nt);
	free(l->t);
	if (l->pub_on)
		cqi_pipe_free(&l->pipe);
	cqi_ring_clear(&l->pend);

	cqi_list_keys_clear(&l->k);
	free(l);
}

static const struct cqi_qdriver_ops list_ops = {
	.connect = drv_connect,
	.inspect = inspect,
	.start = start,
	.take = take,
	.buffered = buffered,
	.fd = fd,
	.unsettled = unsettled,
	.depth = depth,
	.stop = stop,
	.resume = resume,
	.ack = ack,
	.retry = retry,
	.dead_letter = dead_letter,
	.flush = flush,
	.hold = hold,
	.exhausted = exhausted,
	.release = release_op,
	.pub_start = pub_start,
	.publish = publish,
	.pub_poll = pub_poll,
	.wait_input = wait_input,
	.pub_flush = pub_flush,
	.pub_alive = pub_alive,
	.peek = peek,
	.browse = browse,
	.info = info,
	.purge = purge,
	.declare = declare,
	.stats = stats,
	.free = drv_free,
};

struct cqi_qdriver *cqi_list_qdriver_new(struct cq_ctx *ctx,
					 const struct cqi_qconf *conf)
{
	struct list_q *l = cqi_qdriver_alloc(ctx, sizeof(*l), &list_ops, conf);

	if (!l)
		return NULL;
	l->pend.size = sizeof(struct pending);
	l->lease_ms = conf->lease_ms > 0 ? conf->lease_ms : LEASE_MS_DEFAULT;
	cqi_hostname(l->host, sizeof(l->host));
	l->host[strcspn(l->host, " ")] = '\0';
	pid_space(l->where, sizeof(l->where));
	if (cqi_list_keys(ctx, conf->queue, conf->dlq, &l->k)) {
		free(l);
		return NULL;
	}
	return &l->base;
}
