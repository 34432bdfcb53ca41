/* amqp_int.h - the AMQP connection, shared by lib/ files only. */
#ifndef CQ_AMQP_INT_H
#define CQ_AMQP_INT_H

#include <sys/time.h>
#include <amqp.h>

#include "cq.h"

#define CQI_CHANNEL 1

struct cqi_amqp {
	amqp_connection_state_t conn;
	char where[300];	/* host:port/vhost, no secrets */
	bool channel_open;
	bool lost;		/* the socket failed, or the broker closed it */
	bool blocked_out;	/* blocked publishing past --timeout */
	int member;		/* which URL of the list (0: the first) */
	bool confirming;	/* confirm.select done on CQI_CHANNEL */
	uint64_t next_tag;	/* delivery tag of the next publish */
	/* The facts of the last channel or connection close the broker sent
	 * (the context's errstr is for people): its reply code and its text
	 * (at most 255 bytes: the broker cuts longer ones). */
	int reply_code;
	char reply_text[256];
};

/* Translate a failed RPC reply into the context error.  what names the
 * action ("declare queue 'jobs'").  A channel or connection closed by the
 * broker is acknowledged, and the channel reopened when only it closed. */
enum cq_err cqi_amqp_rpc_err(struct cq_ctx *ctx, amqp_rpc_reply_t r,
			     const char *what);
/* Translate a librabbitmq status code (< 0) into the context error. */
enum cq_err cqi_amqp_status_err(struct cq_ctx *ctx, int status,
				const char *what);
/* Read one frame into f, waiting at most wait_ms for it (0 or less: only
 * one already buffered or on the socket): amqp_simple_wait_frame_noblock's
 * status (AMQP_STATUS_TIMEOUT when none came). */
int cqi_amqp_wait_frame(amqp_connection_state_t conn, amqp_frame_t *f,
			long long wait_ms);
/* Check the last RPC of the connection (after amqp_queue_declare & co). */
enum cq_err cqi_amqp_check(struct cq_ctx *ctx, const char *what);
/* The reply of the last RPC on channel ch, for calls that may fail as a
 * matter of course (probes, a queue that may be missing): 0 when it went
 * well; else the broker's reply code, with its text in text, the close
 * acknowledged and CQI_CHANNEL reopened; -1 on a connection failure, with
 * the context error set (what names the action, as for cqi_amqp_check). */
int cqi_amqp_reply(struct cq_ctx *ctx, amqp_channel_t ch, const char *what,
		   char *text, size_t len);
/* The error kind of a broker reply code (403 NOPERM, 404 NOTFOUND, 406
 * DATA, 320/405/506 TEMPFAIL, else INTERNAL). */
enum cq_err cqi_amqp_code_kind(int code);
/* Put CQI_CHANNEL into confirm mode once. */
enum cq_err cqi_amqp_confirm_select(struct cq_ctx *ctx);
/*
 * The connection is lost (the context's error says why): connect to
 * another node of the URL list, trying them in list order from the one
 * after the lost node (the lost one last), pass after pass with a short
 * pause, for at most --timeout.  Only with a list of two or more URLs
 * (cqi_amqp_may_reconnect).  lost gets where the lost connection went.
 * Nothing on the new connection is declared: the caller sets up its
 * channel again.  On failure the error names the loss and the last
 * refusal.
 */
bool cqi_amqp_may_reconnect(const struct cq_ctx *ctx);
/* The context's error means the connection (or its channel) is gone or
 * stuck: a socket error, a close by the broker, a timeout. */
bool cqi_amqp_lost(const struct cq_ctx *ctx);
enum cq_err cqi_amqp_reconnect(struct cq_ctx *ctx, char *lost, size_t len);
/* Reopen CQI_CHANNEL after the broker closed it. */
enum cq_err cqi_amqp_reopen_channel(struct cq_ctx *ctx);

#endif
