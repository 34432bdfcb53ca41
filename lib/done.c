/* done.c - messages done lately, by fingerprint, so that a verb that
 * reconnected knows a redelivered copy of one.
 *
 * An ack written just before a connection died may never have been read
 * by the broker, which then delivers the message again; a handler that
 * finished after the loss could not ack at all.  The verb records each
 * message it settles (consume) or moves (replay-dlq), and after a
 * reconnect a redelivered copy found here is acked, not handled or moved
 * again.  The broker holds at most the prefetch window unacked, so it can
 * have missed at most that many acks: a ring of a few windows is enough.
 */
#include <stdlib.h>
#include <string.h>

#include "cq.h"
#include "internal.h"

bool cqi_done_init(struct cqi_done *r, size_t cap)
{
	memset(r, 0, sizeof(*r));
	r->slot = calloc(cap, sizeof(*r->slot));
	if (!r->slot)
		return false;
	r->cap = cap;
	return true;
}

void cqi_done_clear(struct cqi_done *r)
{
	free(r->slot);
	memset(r, 0, sizeof(*r));
}

uint64_t cqi_done_key(const struct cq_delivery *d)
{
	const struct cq_field *f = cq_delivery_header(d, CQ_HDR_RETRIES);
	long long retries = 0;
	uint64_t h;

	if (!d->message_id)
		return 0;
	if (f && !cqi_field_int(f, &retries))
		retries = 0;
	h = cqi_hash64(CQI_HASH_INIT, d->message_id, strlen(d->message_id) + 1);
	h = cqi_hash64(h, &retries, sizeof(retries));
	h = cqi_hash64(h, d->body, d->len);
	return h ? h : 1;
}

void cqi_done_add(struct cqi_done *r, uint64_t key, bool counted)
{
	if (!r->slot || !key)
		return;
	r->slot[r->next].key = key;
	r->slot[r->next].counted = counted;
	r->next = (r->next + 1) % r->cap;
}

void cqi_done_count_last(struct cqi_done *r, size_t n)
{
	for (size_t i = 1; r->slot && i <= n && i <= r->cap; i++)
		r->slot[(r->next + r->cap - i) % r->cap].counted = true;
}

bool cqi_done_take(struct cqi_done *r, uint64_t key, bool *counted)
{
	if (!r->slot || !key)
		return false;
	for (size_t i = 0; i < r->cap; i++) {
		if (r->slot[i].key != key)
			continue;
		*counted = r->slot[i].counted;
		r->slot[i].key = 0;	/* one copy per ack lost */
		return true;
	}
	return false;
}
