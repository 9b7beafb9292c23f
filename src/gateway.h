/*
 * The gateway's core: it executes client requests against the store and
 * the in-memory queue, commits every write of one loop pass in one
 * transaction (group commit), answers only after that commit, and performs
 * every state transition of a message.
 */
#ifndef SMSGW_GATEWAY_H
#define SMSGW_GATEWAY_H

#include <stdint.h>

#include "message.h"

struct event_base;
struct config;
struct control_slot;
struct dlr_inbound;
struct metrics_page;
struct protocol_request;
struct protocol_reply;
struct queue;
struct store;
struct store_message;

struct gateway;

/* What the dispatcher lends the gateway. */
struct gateway_dispatcher {
	/* New messages are ready to be sent. */
	void	(*kick)(void *arg);
	/* A commit ended; COMMITTED is 0 when it failed and was undone. */
	void	(*committed)(void *arg, int committed);
	/* Adds the dispatcher's figures to a stats answer. */
	void	(*stats)(void *arg, struct protocol_reply *);
	void	*arg;
};

struct gateway	*gateway_new(struct event_base *, const struct config *,
		    struct store *, char *err, size_t errlen);
void		 gateway_free(struct gateway *);
void		 gateway_configure(struct gateway *, const struct config *);
void		 gateway_set_dispatcher(struct gateway *,
		    const struct gateway_dispatcher *);

/*
 * Loads every unfinished message into the queue. A message found sending
 * had an unknown outcome: it is queued again, or failed as ambiguous when
 * the configuration says not to resend. -1 on a storage failure.
 */
int		 gateway_load(struct gateway *);

/* The control socket's request handler (a control_request_cb). */
void		 gateway_request(void *arg, struct control_slot *,
		    struct protocol_request *rq);

/* From now on new sends are answered shutting_down. */
void		 gateway_shutdown(struct gateway *);
/* Commits what is pending now, outside the loop. -1 on failure. */
int		 gateway_flush(struct gateway *);

struct store	*gateway_store(struct gateway *);
struct queue	*gateway_queue(struct gateway *);
/* Messages per state, MESSAGE_STATE_MAX entries. */
const int64_t	*gateway_counts(const struct gateway *);

/*
 * Moves M to state TO, writing it to the store's open transaction and
 * logging nothing (the caller logs the event with its details). Refuses a
 * transition the state machine does not have: -1, M unchanged.
 */
int		 gateway_transition(struct gateway *, struct store_message *m,
		    enum message_state to);
/*
 * A delivery report for message ID (a dlr_handler's report): records it,
 * and moves a sent message to delivered or undelivered when CODE is
 * final. A final report for a message still sending is kept until its
 * result comes (gateway_early_report); one for a queued message proves an
 * earlier attempt got through (gateway_reported). Returns an HTTP status.
 */
int		 gateway_report(struct gateway *, int64_t id, int code);
/* Takes the final report that came for ID while it was sending: 0 none. */
int		 gateway_early_report(struct gateway *, int64_t id);
/* Moves sent M to the state a final report CODE means, and logs it. */
int		 gateway_deliver(struct gateway *, struct store_message *m,
		    int code);
/*
 * Queued M has a report (CODE; 0 when not final): an attempt whose
 * outcome was unknown reached the upstream. Moves M to sent, so that it is
 * not sent again, then as gateway_deliver when CODE is final.
 */
int		 gateway_reported(struct gateway *, struct store_message *m,
		    int code);
/* Stores an inbound message durably: 200, or 503 on failure. */
int		 gateway_inbound(struct gateway *, const struct dlr_inbound *);

/* Writes the gateway's metric families (messages, queue) to PAGE. */
void		 gateway_metrics(const struct gateway *, struct metrics_page *);

/*
 * True while the store cannot commit: the dispatcher then starts nothing,
 * so that no state it could not record piles up.
 */
int		 gateway_store_failing(const struct gateway *);

/* Makes the commit of this pass a synced one, as for an acknowledgement. */
void		 gateway_want_sync(struct gateway *);

/* Makes sure a commit runs at the end of this loop pass. */
void		 gateway_want_commit(struct gateway *);

#endif
