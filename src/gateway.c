/*
 * The gateway's core: client requests against the store and the queue,
 * group commit, and the one function through which every message changes
 * state. Writes of one loop pass share a transaction; the commit runs from
 * an event of the lowest priority, so it comes after every other event of
 * the pass, and only then are the writers answered.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "control.h"
#include "dlr.h"
#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "queue.h"
#include "store.h"
#include "util.h"

/* The commit event's priority: the lowest of the base's three. */
#define GATEWAY_COMMIT_PRIORITY	2
/* How long a failed commit waits before it is tried again. */
#define GATEWAY_RECOMMIT_MS	500
/* Delivery reports kept for messages whose send result is still out. */
#define GATEWAY_EARLY_MAX	4096
/* Finished messages pruned per pass, so that one pass stays short. */
#define GATEWAY_PRUNE_BATCH	500
#define GATEWAY_PRUNE_IDLE_S	60

enum gateway_waiting {
	WAITING_SEND,		/* a new message */
	WAITING_DUPLICATE,	/* a send whose ref was known */
	WAITING_CANCEL
};

/* A request whose answer waits for the commit. */
struct gateway_wait {
	TAILQ_ENTRY(gateway_wait)	 entry;
	enum gateway_waiting		 kind;
	struct control_slot		*slot;
	struct protocol_request		*rq;
	int64_t				 id;
	enum message_state		 state;
	int				 changed;	/* wrote something */
	struct queue_item		 item;
};

TAILQ_HEAD(gateway_waits, gateway_wait);

/* A final report that came while its message was still sending. */
struct gateway_early {
	int64_t		 id;
	int		 code;
};

struct gateway {
	struct event_base	*base;
	const struct config	*cfg;
	struct store		*store;
	struct queue		*queue;
	struct event		*commit;
	struct event		*prune;
	struct protocol_reply	*reply;
	struct gateway_waits	 waits;
	struct gateway_dispatcher dispatcher;
	int64_t			 counts[MESSAGE_STATE_MAX];
	int64_t			 started;
	int			 commit_pending;
	int			 batch_lost;	/* the store undid this pass */
	int			 must_sync;	/* this pass acknowledges writes */
	int			 shutting_down;
	uint64_t		 commits;
	uint64_t		 commit_failures;
	struct gateway_early	 early[GATEWAY_EARLY_MAX];
	size_t			 nearly;
	size_t			 early_next;	/* the slot reused when full */
	uint64_t		 reports;
	uint64_t		 inbound;
	uint64_t		 entered[MESSAGE_STATE_MAX];
	struct store_message	*dirty;		/* changes not yet committed */
	size_t			 ndirty;
	size_t			 dirty_size;
	int			 store_failing;	/* the last commit failed */
	struct event		*recommit;
};

static const unsigned gateway_moves[MESSAGE_STATE_MAX] = {
	/* Queued to sent: a report proved an attempt got through. */
	[MESSAGE_QUEUED] = 1u << MESSAGE_SENDING | 1u << MESSAGE_CANCELLED |
	    1u << MESSAGE_EXPIRED | 1u << MESSAGE_FAILED | 1u << MESSAGE_SENT,
	[MESSAGE_SENDING] = 1u << MESSAGE_QUEUED | 1u << MESSAGE_SENT |
	    1u << MESSAGE_FAILED | 1u << MESSAGE_EXPIRED,
	[MESSAGE_SENT] = 1u << MESSAGE_DELIVERED | 1u << MESSAGE_UNDELIVERED,
};

static void
gateway_reply(struct gateway *gw, struct control_slot *slot)
{
	const char *line;
	size_t len;

	line = protocol_reply_line(gw->reply, &len);
	control_reply(slot, line, len);
}

static void
gateway_error(struct gateway *gw, struct control_slot *slot,
    const struct protocol_request *rq, const char *code, const char *message)
{
	const char *line;
	size_t len;

	line = protocol_reply_error(gw->reply, rq, code, message, &len);
	control_reply(slot, line, len);
}

static void
gateway_request_free(struct protocol_request *rq)
{
	protocol_request_clear(rq);
	free(rq);
}

/* Answers RQ with an error and is done with it. */
static void
gateway_refuse(struct gateway *gw, struct control_slot *slot,
    struct protocol_request *rq, const char *code, const char *message)
{
	gateway_error(gw, slot, rq, code, message);
	gateway_request_free(rq);
}

/*
 * Reads the message a status or cancel names into M: 0, or -1 when there
 * is none or the store failed, RQ answered and freed.
 */
static int
gateway_lookup(struct gateway *gw, struct control_slot *slot,
    struct protocol_request *rq, struct store_message *m)
{
	int found;

	if (rq->has_id)
		found = rq->id > 0 ? store_get(gw->store, rq->id, m) : 0;
	else
		found = store_get_ref(gw->store, rq->ref, m);
	if (found == 1)
		return 0;

	if (found == 0)
		gateway_refuse(gw, slot, rq, "not_found", "no such message");
	else
		gateway_refuse(gw, slot, rq, "storage_error",
		    "the store could not be read");
	return -1;
}

void
gateway_want_commit(struct gateway *gw)
{
	if (gw->commit_pending)
		return;
	gw->commit_pending = 1;
	event_active(gw->commit, EV_TIMEOUT, 0);
}

/*
 * Remembers a state change until it is committed. A failed commit undoes
 * every write of its pass, while the daemon goes on from the new states:
 * they are written again (gateway_rewrite) until a commit takes them.
 */
static void
gateway_dirty(struct gateway *gw, const struct store_message *m)
{
	struct store_message *items;
	size_t size;

	if (gw->ndirty == gw->dirty_size) {
		size = gw->dirty_size ? gw->dirty_size * 2 : 256;
		if ((items = realloc(gw->dirty, size * sizeof(*items))) ==
		    NULL) {
			log_err("gateway dirty-dropped id=%016" PRIx64
			    " reason=no-memory", (uint64_t)m->id);
			return;
		}
		gw->dirty = items;
		gw->dirty_size = size;
	}
	gw->dirty[gw->ndirty] = *m;
	gw->dirty[gw->ndirty].text = NULL;
	gw->dirty[gw->ndirty].text_len = 0;
	gw->ndirty++;
}

/* Writes the uncommitted changes again, in order, after a rollback. */
static void
gateway_rewrite(struct gateway *gw)
{
	size_t i;

	for (i = 0; i < gw->ndirty; i++)
		if (store_update(gw->store, &gw->dirty[i]) == -1)
			break;
}

/* The changes so far are durable. */
static void
gateway_durable(struct gateway *gw)
{
	gw->ndirty = 0;
	if (gw->store_failing)
		log_notice("store commit-recovered failures=%" PRIu64,
		    gw->commit_failures);
	gw->store_failing = 0;
}

void
gateway_want_sync(struct gateway *gw)
{
	gw->must_sync = 1;
	gateway_want_commit(gw);
}

int
gateway_store_failing(const struct gateway *gw)
{
	return gw->store_failing;
}

static void
gateway_recommitcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gateway_want_commit(arg);
}

int
gateway_transition(struct gateway *gw, struct store_message *m,
    enum message_state to)
{
	enum message_state from = m->state;

	if (from >= MESSAGE_STATE_MAX || !(gateway_moves[from] & 1u << to)) {
		log_err("gateway bad-transition id=%016" PRIx64 " from=%s to=%s",
		    (uint64_t)m->id, message_state_name(from),
		    message_state_name(to));
		return -1;
	}
	m->state = to;
	m->updated = util_now_ms();
	if (store_update(gw->store, m) == -1) {
		log_err("store update-failed id=%016" PRIx64 " error=%s",
		    (uint64_t)m->id, store_error(gw->store));
		m->state = from;
		return -1;
	}
	gw->counts[from]--;
	gw->counts[to]++;
	gw->entered[to]++;
	gateway_dirty(gw, m);
	gateway_want_commit(gw);
	return 0;
}

static void
gateway_wait(struct gateway *gw, enum gateway_waiting kind,
    struct control_slot *slot, struct protocol_request *rq, int64_t id,
    enum message_state state, int changed)
{
	struct gateway_wait *w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		gateway_refuse(gw, slot, rq, "storage_error", "out of memory");
		return;
	}
	w->kind = kind;
	w->slot = slot;
	w->rq = rq;
	w->id = id;
	w->state = state;
	w->changed = changed;
	TAILQ_INSERT_TAIL(&gw->waits, w, entry);
	gateway_want_commit(gw);
}

static void
gateway_send(struct gateway *gw, struct control_slot *slot,
    struct protocol_request *rq)
{
	const struct config *cfg = gw->cfg;
	struct store_message m;
	struct gateway_wait *w;
	int64_t now, valid_for;
	int found;

	if (gw->shutting_down) {
		gateway_refuse(gw, slot, rq, "shutting_down",
		    "the daemon is stopping; try again later");
		return;
	}

	memset(&m, 0, sizeof(m));
	if (rq->ref[0] != '\0') {
		found = store_get_ref(gw->store, rq->ref, &m);
		if (found == 1) {
			store_clear(&m);
			gateway_wait(gw, WAITING_DUPLICATE, slot, rq, m.id,
			    m.state, 0);
			return;
		}
		if (found == -1)
			goto fail;
	}
	if (gw->counts[MESSAGE_QUEUED] + gw->counts[MESSAGE_SENDING] >=
	    cfg->storage.max_queued) {
		gateway_refuse(gw, slot, rq, "queue_full",
		    "the queue is full; try again later");
		return;
	}

	now = util_now_ms();
	valid_for = rq->valid_for > 0 ? rq->valid_for : cfg->retry.validity;
	memcpy(m.to, rq->to, sizeof(m.to));
	memcpy(m.sender, rq->from, sizeof(m.sender));
	memcpy(m.ref, rq->ref, sizeof(m.ref));
	m.text = rq->text;
	m.text_len = rq->text_len;
	m.segments = rq->segments;
	m.encoding = rq->encoding;
	m.priority = rq->priority;
	m.created = m.updated = now;
	m.valid_until = now + valid_for * 1000;
	m.state = MESSAGE_QUEUED;
	if (store_insert(gw->store, &m) == -1)
		goto fail;

	gw->counts[MESSAGE_QUEUED]++;
	gateway_wait(gw, WAITING_SEND, slot, rq, m.id, MESSAGE_QUEUED, 1);
	if ((w = TAILQ_LAST(&gw->waits, gateway_waits)) != NULL &&
	    w->rq == rq) {
		w->item.id = m.id;
		w->item.priority = (int8_t)m.priority;
		w->item.valid_until = m.valid_until;
	}
	return;

fail:
	log_err("store insert-failed error=%s", store_error(gw->store));
	gateway_refuse(gw, slot, rq, "storage_error",
	    "the message could not be stored; it was not accepted");

	/* The transaction may be gone: the whole pass fails with it. */
	if (!store_in_transaction(gw->store)) {
		gw->batch_lost = 1;
		gateway_want_commit(gw);
	}
}

static void
gateway_status(struct gateway *gw, struct control_slot *slot,
    struct protocol_request *rq)
{
	struct store_message m;
	char id[PROTOCOL_ID_LEN + 1], when[32];

	if (gateway_lookup(gw, slot, rq, &m) == -1)
		return;

	protocol_reply_begin(gw->reply, rq, 1);
	protocol_id_format(m.id, id);
	protocol_reply_string(gw->reply, "id", id);
	if (m.ref[0] != '\0')
		protocol_reply_string(gw->reply, "ref", m.ref);
	protocol_reply_string(gw->reply, "to", m.to);
	if (m.sender[0] != '\0')
		protocol_reply_string(gw->reply, "from", m.sender);
	protocol_reply_string(gw->reply, "state", message_state_name(m.state));
	protocol_reply_string(gw->reply, "priority",
	    m.priority ? "high" : "normal");
	protocol_reply_int(gw->reply, "segments", m.segments);
	protocol_reply_string(gw->reply, "encoding",
	    message_encoding_name(m.encoding));
	protocol_reply_int(gw->reply, "attempts", m.attempts);
	if (m.upstream_id[0] != '\0')
		protocol_reply_string(gw->reply, "upstream_id", m.upstream_id);
	if (m.has_last_code)
		protocol_reply_int(gw->reply, "last_code", m.last_code);
	if (m.reason[0] != '\0')
		protocol_reply_string(gw->reply, "reason", m.reason);
	util_iso8601(m.created, when, sizeof(when));
	protocol_reply_string(gw->reply, "created", when);
	util_iso8601(m.updated, when, sizeof(when));
	protocol_reply_string(gw->reply, "updated", when);
	util_iso8601(m.valid_until, when, sizeof(when));
	protocol_reply_string(gw->reply, "valid_until", when);
	if (m.has_report) {
		protocol_reply_int(gw->reply, "report_code", m.report_code);
		protocol_reply_string(gw->reply, "report",
		    dlr_code_name(m.report_code));
		util_iso8601(m.report_at, when, sizeof(when));
		protocol_reply_string(gw->reply, "report_at", when);
	}
	gateway_reply(gw, slot);
	store_clear(&m);
	gateway_request_free(rq);
}

static void
gateway_cancel(struct gateway *gw, struct control_slot *slot,
    struct protocol_request *rq)
{
	struct store_message m;

	if (gateway_lookup(gw, slot, rq, &m) == -1)
		return;
	store_clear(&m);

	/* Answered after the commit: the first cancel may be in it. */
	if (m.state == MESSAGE_CANCELLED) {
		gateway_wait(gw, WAITING_CANCEL, slot, rq, m.id, m.state, 0);
		return;
	}
	if (m.state != MESSAGE_QUEUED) {
		gateway_refuse(gw, slot, rq, "not_cancellable",
		    m.state == MESSAGE_SENDING || m.state == MESSAGE_SENT ?
		    "the message was already handed to the upstream" :
		    "the message is already finished");
		return;
	}

	/* The queue's item for it is skipped when it comes up. */
	if (gateway_transition(gw, &m, MESSAGE_CANCELLED) == -1) {
		gateway_refuse(gw, slot, rq, "storage_error",
		    "the cancellation could not be stored");
		return;
	}
	gateway_wait(gw, WAITING_CANCEL, slot, rq, m.id, MESSAGE_CANCELLED, 1);
}

static void
gateway_stats(struct gateway *gw, struct control_slot *slot,
    struct protocol_request *rq)
{
	struct protocol_reply *r = gw->reply;
	int i;

	protocol_reply_begin(r, rq, 1);

	/* Per state both at the top, for quick use, and grouped. */
	for (i = 0; i < MESSAGE_STATE_MAX; i++)
		protocol_reply_int(r, message_state_name(i), gw->counts[i]);
	protocol_reply_open(r, "messages");
	for (i = 0; i < MESSAGE_STATE_MAX; i++)
		protocol_reply_int(r, message_state_name(i), gw->counts[i]);
	protocol_reply_close(r);
	protocol_reply_open(r, "queue");
	protocol_reply_int(r, "high", (int64_t)queue_ready_priority(gw->queue,
	    1));
	protocol_reply_int(r, "normal", (int64_t)queue_ready_priority(gw->queue,
	    0));
	protocol_reply_int(r, "deferred", (int64_t)queue_deferred(gw->queue));
	protocol_reply_close(r);
	if (gw->dispatcher.stats != NULL)
		gw->dispatcher.stats(gw->dispatcher.arg, r);
	protocol_reply_int(r, "reports", (int64_t)gw->reports);
	protocol_reply_int(r, "inbound", (int64_t)gw->inbound);
	protocol_reply_int(r, "commits", (int64_t)gw->commits);
	protocol_reply_int(r, "commit_failures", (int64_t)gw->commit_failures);
	protocol_reply_int(r, "uptime",
	    (util_mono_ms() - gw->started) / 1000);
	gateway_reply(gw, slot);
	gateway_request_free(rq);
}

struct gateway_cursor {
	struct protocol_reply	*reply;
	int64_t			 last;
};

static int
gateway_inbox_one(void *arg, const struct store_inbound *in)
{
	struct gateway_cursor *c = arg;
	struct protocol_reply *r = c->reply;
	char when[32];

	c->last = in->id;
	protocol_reply_open(r, NULL);
	protocol_reply_int(r, "id", in->id);
	protocol_reply_string(r, "from", in->from);
	protocol_reply_string(r, "to", in->to);
	protocol_reply_bytes(r, "text", in->text, in->text_len);
	protocol_reply_string(r, "charset", in->charset);
	if (in->code[0] != '\0')
		protocol_reply_string(r, "code", in->code);
	util_iso8601(in->received, when, sizeof(when));
	protocol_reply_string(r, "received", when);
	protocol_reply_close(r);
	return 0;
}

static void
gateway_inbox(struct gateway *gw, struct control_slot *slot,
    struct protocol_request *rq)
{
	struct protocol_reply *r = gw->reply;
	struct gateway_cursor c = { r, rq->after };
	int n;

	protocol_reply_begin(r, rq, 1);
	protocol_reply_open_array(r, "messages");
	n = store_inbox_list(gw->store, rq->after, rq->limit,
	    gateway_inbox_one, &c);
	protocol_reply_close_array(r);
	protocol_reply_int(r, "next", c.last);
	if (n == -1) {
		gateway_refuse(gw, slot, rq, "storage_error",
		    "the inbox could not be read");
		return;
	}
	gateway_reply(gw, slot);
	gateway_request_free(rq);
}

void
gateway_request(void *arg, struct control_slot *slot,
    struct protocol_request *rq)
{
	struct gateway *gw = arg;

	switch (rq->op) {
	case PROTOCOL_SEND:
		gateway_send(gw, slot, rq);
		return;
	case PROTOCOL_STATUS:
		gateway_status(gw, slot, rq);
		return;
	case PROTOCOL_CANCEL:
		gateway_cancel(gw, slot, rq);
		return;
	case PROTOCOL_STATS:
		gateway_stats(gw, slot, rq);
		return;
	case PROTOCOL_INBOX:
		gateway_inbox(gw, slot, rq);
		return;
	case PROTOCOL_PING:
		protocol_reply_begin(gw->reply, rq, 1);
		gateway_reply(gw, slot);
		gateway_request_free(rq);
		return;
	}
}

static void
gateway_answer(struct gateway *gw, struct gateway_wait *w)
{
	struct protocol_request *rq = w->rq;
	char id[PROTOCOL_ID_LEN + 1], to[LOG_NUMBER_MAX], ref[80];

	protocol_id_format(w->id, id);
	protocol_reply_begin(gw->reply, rq, 1);
	protocol_reply_string(gw->reply, "id", id);
	switch (w->kind) {
	case WAITING_SEND:
		protocol_reply_string(gw->reply, "state", "queued");
		protocol_reply_int(gw->reply, "segments", rq->segments);
		protocol_reply_string(gw->reply, "encoding",
		    message_encoding_name(rq->encoding));
		log_info("msg accepted id=%s to=%s segments=%d encoding=%s "
		    "priority=%s ref=%s", id,
		    log_number(rq->to, to, sizeof(to)), rq->segments,
		    message_encoding_name(rq->encoding),
		    rq->priority ? "high" : "normal",
		    rq->ref[0] ? log_escape(rq->ref, strlen(rq->ref), ref,
		    sizeof(ref)) : "-");
		break;
	case WAITING_DUPLICATE:
		protocol_reply_string(gw->reply, "state",
		    message_state_name(w->state));
		protocol_reply_bool(gw->reply, "duplicate", 1);
		log_info("msg duplicate id=%s ref=%s", id,
		    log_escape(rq->ref, strlen(rq->ref), ref, sizeof(ref)));
		break;
	case WAITING_CANCEL:
		protocol_reply_string(gw->reply, "state", "cancelled");
		log_info("msg cancelled id=%s", id);
		break;
	}
	gateway_reply(gw, w->slot);
}

/* Undoes a waiting request's effect on the counts after a failed commit. */
/* A cancel answered storage_error must not be written again. */
static void
gateway_undirty(struct gateway *gw, int64_t id, enum message_state state)
{
	size_t i, kept = 0;

	for (i = 0; i < gw->ndirty; i++)
		if (gw->dirty[i].id != id || gw->dirty[i].state != state)
			gw->dirty[kept++] = gw->dirty[i];
	gw->ndirty = kept;
}

static void
gateway_undo(struct gateway *gw, struct gateway_wait *w)
{
	if (w->changed && w->kind == WAITING_SEND)
		gw->counts[MESSAGE_QUEUED]--;
	if (w->changed && w->kind == WAITING_CANCEL) {
		gw->counts[MESSAGE_CANCELLED]--;
		gw->counts[MESSAGE_QUEUED]++;
		gateway_undirty(gw, w->id, MESSAGE_CANCELLED);
	}
	gateway_error(gw, w->slot, w->rq, "storage_error",
	    "the message could not be stored; it was not accepted");
}

static void
gateway_commitcb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	struct gateway_wait *w;
	struct timeval tv;
	int ok, kicked = 0;

	(void)fd;
	(void)what;
	gw->commit_pending = 0;

	/*
	 * What is acknowledged must survive a power cut: such a pass is
	 * synced. State changes alone need only survive the process, which
	 * the log written without a sync does; the next synced commit takes
	 * them to the disk too. A sync per pass would otherwise block the
	 * loop for much of the time at a few hundred answers a second.
	 */
	ok = !gw->batch_lost;
	if (store_in_transaction(gw->store)) {
		if (ok)
			ok = store_commit_sync(gw->store, gw->must_sync ||
			    !TAILQ_EMPTY(&gw->waits)) == 0;
		else
			store_rollback(gw->store);
	}
	gw->batch_lost = 0;
	gw->must_sync = 0;
	if (ok) {
		gw->commits++;
		gateway_durable(gw);
	} else {
		gw->commit_failures++;
		log_err("store commit-failed error=%s waiting=%s changes=%zu "
		    "sending=paused", store_error(gw->store),
		    TAILQ_EMPTY(&gw->waits) ? "no" : "yes", gw->ndirty);
		gw->store_failing = 1;
	}

	while ((w = TAILQ_FIRST(&gw->waits)) != NULL) {
		TAILQ_REMOVE(&gw->waits, w, entry);
		if (!ok)
			gateway_undo(gw, w);
		else {
			if (w->kind == WAITING_SEND) {
				gw->entered[MESSAGE_QUEUED]++;
				if (queue_push(gw->queue, &w->item) == -1)
					log_crit("queue push-failed "
					    "id=%016" PRIx64 " reason=no-memory",
					    (uint64_t)w->id);
				kicked = 1;
			}
			gateway_answer(gw, w);
		}
		gateway_request_free(w->rq);
		free(w);
	}

	/* Answers first: a cancel refused above is no change to write. */
	if (!ok && gw->ndirty > 0) {
		gateway_rewrite(gw);
		evtimer_add(gw->recommit, util_timeval(GATEWAY_RECOMMIT_MS,
		    &tv));
	}
	if (gw->dispatcher.committed != NULL)
		gw->dispatcher.committed(gw->dispatcher.arg, ok);
	if ((kicked || ok) && gw->dispatcher.kick != NULL)
		gw->dispatcher.kick(gw->dispatcher.arg);
}

int
gateway_flush(struct gateway *gw)
{
	if (!gw->commit_pending && !store_in_transaction(gw->store))
		return 0;
	event_del(gw->commit);
	gateway_commitcb(-1, 0, gw);
	return gw->commit_failures > 0 && store_in_transaction(gw->store) ?
	    -1 : 0;
}

static void
gateway_prunecb(evutil_socket_t fd, short what, void *arg)
{
	struct gateway *gw = arg;
	struct timeval tv = { GATEWAY_PRUNE_IDLE_S, 0 };
	int64_t before;
	int n, in;

	(void)fd;
	(void)what;
	before = util_now_ms() - (int64_t)gw->cfg->storage.retention * 1000;
	n = store_prune(gw->store, before, GATEWAY_PRUNE_BATCH);
	in = n == -1 ? -1 : store_inbox_prune(gw->store, before,
	    GATEWAY_PRUNE_BATCH);
	if (n == -1 || in == -1)
		log_err("store prune-failed error=%s", store_error(gw->store));
	else if (n > 0 || in > 0) {
		log_info("store pruned messages=%d inbound=%d", n, in);
		gateway_want_commit(gw);
		/* More may be left: come back soon, in another small pass. */
		if (n == GATEWAY_PRUNE_BATCH || in == GATEWAY_PRUNE_BATCH) {
			tv.tv_sec = 0;
			tv.tv_usec = 100 * 1000;
		}
	}
	evtimer_add(gw->prune, &tv);
}

struct gateway *
gateway_new(struct event_base *base, const struct config *cfg,
    struct store *st, char *err, size_t errlen)
{
	struct gateway *gw;
	struct timeval tv = { 1, 0 };

	if ((gw = calloc(1, sizeof(*gw))) == NULL)
		goto nomem;
	gw->base = base;
	gw->cfg = cfg;
	gw->store = st;
	gw->started = util_mono_ms();
	TAILQ_INIT(&gw->waits);
	if ((gw->queue = queue_new()) == NULL ||
	    (gw->reply = protocol_reply_new()) == NULL ||
	    (gw->commit = event_new(base, -1, 0, gateway_commitcb, gw)) ==
	    NULL || (gw->prune = evtimer_new(base, gateway_prunecb, gw)) ==
	    NULL || (gw->recommit = evtimer_new(base, gateway_recommitcb,
	    gw)) == NULL)
		goto nomem;
	event_priority_set(gw->commit, GATEWAY_COMMIT_PRIORITY);
	evtimer_add(gw->prune, &tv);

	if (store_count(st, gw->counts) == -1) {
		snprintf(err, errlen, "cannot count messages: %s",
		    store_error(st));
		gateway_free(gw);
		return NULL;
	}
	return gw;

nomem:
	snprintf(err, errlen, "out of memory");
	gateway_free(gw);
	return NULL;
}

void
gateway_free(struct gateway *gw)
{
	struct gateway_wait *w;

	if (gw == NULL)
		return;
	while ((w = TAILQ_FIRST(&gw->waits)) != NULL) {
		TAILQ_REMOVE(&gw->waits, w, entry);
		gateway_request_free(w->rq);
		free(w);
	}
	if (gw->commit != NULL)
		event_free(gw->commit);
	if (gw->prune != NULL)
		event_free(gw->prune);
	if (gw->recommit != NULL)
		event_free(gw->recommit);
	free(gw->dirty);
	protocol_reply_free(gw->reply);
	queue_free(gw->queue);
	free(gw);
}

void
gateway_configure(struct gateway *gw, const struct config *cfg)
{
	gw->cfg = cfg;
}

void
gateway_set_dispatcher(struct gateway *gw, const struct gateway_dispatcher *d)
{
	gw->dispatcher = *d;
}

static int
gateway_load_one(void *arg, const struct store_pending *p)
{
	struct gateway *gw = arg;
	struct store_message m;
	struct queue_item item;
	char id[PROTOCOL_ID_LEN + 1];

	/* Its request may or may not have reached the upstream. */
	if (p->state == MESSAGE_SENDING) {
		protocol_id_format(p->id, id);
		if (store_get(gw->store, p->id, &m) != 1)
			return -1;
		store_clear(&m);
		if (!gw->cfg->upstream.resend_ambiguous) {
			snprintf(m.reason, sizeof(m.reason), "ambiguous");
			if (gateway_transition(gw, &m, MESSAGE_FAILED) == -1)
				return -1;
			log_warn("msg failed id=%s attempts=%d reason=ambiguous",
			    id, m.attempts);
			return 0;
		}
		if (gateway_transition(gw, &m, MESSAGE_QUEUED) == -1)
			return -1;
		log_warn("msg ambiguous id=%s attempts=%d action=resend", id,
		    m.attempts);
	}

	memset(&item, 0, sizeof(item));
	item.id = p->id;
	item.priority = (int8_t)p->priority;
	item.attempts = p->attempts;
	item.valid_until = p->valid_until;
	item.due = p->next_attempt;
	if (p->next_attempt > util_now_ms())
		return queue_defer(gw->queue, &item);
	return queue_push(gw->queue, &item);
}

int
gateway_load(struct gateway *gw)
{
	int64_t started = util_mono_ms();

	if (store_load(gw->store, gateway_load_one, gw) == -1)
		return -1;
	if (store_in_transaction(gw->store) && store_commit(gw->store) == -1)
		return -1;
	gw->commit_pending = 0;
	event_del(gw->commit);
	log_info("store loaded queued=%" PRId64 " deferred=%zu ms=%" PRId64,
	    gw->counts[MESSAGE_QUEUED], queue_deferred(gw->queue),
	    util_mono_ms() - started);
	return 0;
}

static void
gateway_early_add(struct gateway *gw, int64_t id, int code)
{
	size_t i;

	for (i = 0; i < gw->nearly; i++)
		if (gw->early[i].id == id)
			return;

	/* Full: the oldest slot goes, so memory stays bounded. */
	if (gw->nearly < GATEWAY_EARLY_MAX)
		i = gw->nearly++;
	else {
		i = gw->early_next;
		gw->early_next = (gw->early_next + 1) % GATEWAY_EARLY_MAX;
	}
	gw->early[i].id = id;
	gw->early[i].code = code;
}

int
gateway_early_report(struct gateway *gw, int64_t id)
{
	size_t i;
	int code;

	for (i = 0; i < gw->nearly; i++) {
		if (gw->early[i].id != id)
			continue;
		code = gw->early[i].code;
		gw->early[i] = gw->early[--gw->nearly];
		return code;
	}
	return 0;
}

/*
 * A report URL goes out with an attempt only, so a report for a queued
 * message proves that an attempt whose outcome was unknown (a timeout, a
 * lost connection, a crash) reached the upstream. The message is sent and
 * is not sent again; its place in the queue is dropped when it comes up,
 * as a cancelled message's is.
 */
int
gateway_reported(struct gateway *gw, struct store_message *m, int code)
{
	char id[PROTOCOL_ID_LEN + 1];

	m->next_attempt = 0;
	m->reason[0] = '\0';
	if (gateway_transition(gw, m, MESSAGE_SENT) == -1)
		return -1;
	protocol_id_format(m->id, id);
	log_notice("msg sent id=%s upstream_id=- attempt=%d reason=reported",
	    id, m->attempts);
	return code != 0 ? gateway_deliver(gw, m, code) : 0;
}

int
gateway_deliver(struct gateway *gw, struct store_message *m, int code)
{
	enum message_state to;
	char id[PROTOCOL_ID_LEN + 1];

	to = code == DLR_DELIVERED ? MESSAGE_DELIVERED : MESSAGE_UNDELIVERED;
	if (gateway_transition(gw, m, to) == -1)
		return -1;
	protocol_id_format(m->id, id);
	log_info("msg %s id=%s code=%d report=%s", message_state_name(to), id,
	    code, dlr_code_name(code));
	return 0;
}

int
gateway_report(struct gateway *gw, int64_t id, int code)
{
	struct store_message m;
	char name[PROTOCOL_ID_LEN + 1];
	int found, final = dlr_code_final(code);

	if ((found = store_get(gw->store, id, &m)) != 1)
		return found == 0 ? 404 : 503;
	store_clear(&m);
	protocol_id_format(id, name);
	gw->reports++;

	/*
	 * The first final report stays, in the state and in the record; a
	 * late, repeated or contrary one changes nothing.
	 */
	if (m.state == MESSAGE_DELIVERED || m.state == MESSAGE_UNDELIVERED ||
	    (m.has_report && dlr_code_final(m.report_code))) {
		log_info("msg report-ignored id=%s code=%d report=%s state=%s",
		    name, code, dlr_code_name(code),
		    message_state_name(m.state));
		return 200;
	}
	if (store_report(gw->store, id, code, util_now_ms()) == -1) {
		log_err("store report-failed id=%s error=%s", name,
		    store_error(gw->store));
		return 503;
	}
	gateway_want_commit(gw);

	if (m.state == MESSAGE_QUEUED)
		return gateway_reported(gw, &m, final ? code : 0) == 0 ?
		    200 : 503;
	if (final && m.state == MESSAGE_SENT)
		return gateway_deliver(gw, &m, code) == 0 ? 200 : 503;
	if (final && m.state == MESSAGE_SENDING)
		gateway_early_add(gw, id, code);
	log_info("msg report id=%s code=%d report=%s state=%s", name, code,
	    dlr_code_name(code), message_state_name(m.state));
	return 200;
}

int
gateway_inbound(struct gateway *gw, const struct dlr_inbound *in)
{
	struct store_inbound row;
	char from[LOG_NUMBER_MAX], to[LOG_NUMBER_MAX];
	int64_t id;

	memset(&row, 0, sizeof(row));
	row.received = util_now_ms();
	row.from = in->from;
	row.to = in->to;
	row.charset = in->charset;
	row.code = in->code;
	row.text = in->text;
	row.text_len = in->text_len;

	/*
	 * The upstream is answered 200 only once the message is durable:
	 * it will not send it again. The commit takes this pass's other
	 * writes along, which is harmless: they are only durable sooner.
	 */
	if ((id = store_inbox_insert(gw->store, &row)) == -1 ||
	    store_commit(gw->store) == -1) {
		gw->store_failing = 1;
		log_err("store inbound-failed error=%s",
		    store_error(gw->store));
		if (!store_in_transaction(gw->store))
			gw->batch_lost = 1;
		gateway_want_commit(gw);
		return 503;
	}
	gateway_durable(gw);
	gw->inbound++;
	log_info("inbound received id=%" PRId64 " from=%s to=%s bytes=%zu "
	    "charset=%s", id, log_number(in->from, from, sizeof(from)),
	    log_number(in->to, to, sizeof(to)), in->text_len,
	    in->charset[0] ? in->charset : "-");
	return 200;
}

void
gateway_shutdown(struct gateway *gw)
{
	gw->shutting_down = 1;
}

void
gateway_metrics(const struct gateway *gw, struct metrics_page *page)
{
	struct metrics_label label[2] = { { "state", NULL }, { NULL, NULL } };
	static const char *priorities[] = { "normal", "high" };
	int i;

	metrics_family(page, "smsgw_messages_total", "counter",
	    "Messages that entered each state since the daemon started.");
	for (i = 0; i < MESSAGE_STATE_MAX; i++) {
		label[0].value = message_state_name(i);
		metrics_sample(page, "smsgw_messages_total", label,
		    (double)gw->entered[i]);
	}
	metrics_family(page, "smsgw_messages", "gauge",
	    "Messages in the store, by state.");
	for (i = 0; i < MESSAGE_STATE_MAX; i++) {
		label[0].value = message_state_name(i);
		metrics_sample(page, "smsgw_messages", label,
		    (double)gw->counts[i]);
	}
	label[0].key = "priority";
	metrics_family(page, "smsgw_queue_depth", "gauge",
	    "Messages ready to be sent, by priority.");
	for (i = 0; i < 2; i++) {
		label[0].value = priorities[i];
		metrics_sample(page, "smsgw_queue_depth", label,
		    (double)queue_ready_priority(gw->queue, i));
	}
	metrics_single(page, "smsgw_queue_deferred", "gauge",
	    "Messages waiting for a retry.", (double)queue_deferred(gw->queue));
	metrics_single(page, "smsgw_delivery_reports_total", "counter",
	    "Delivery reports taken by the listener.", (double)gw->reports);
	metrics_single(page, "smsgw_inbound_total", "counter",
	    "Inbound messages stored.", (double)gw->inbound);
	metrics_single(page, "smsgw_store_commit_failures_total", "counter",
	    "Commits of the store that failed.", (double)gw->commit_failures);
	metrics_single(page, "smsgw_uptime_seconds", "gauge",
	    "Seconds since the daemon started.",
	    (double)(util_mono_ms() - gw->started) / 1000.0);
}

struct store *
gateway_store(struct gateway *gw)
{
	return gw->store;
}

struct queue *
gateway_queue(struct gateway *gw)
{
	return gw->queue;
}

const int64_t *
gateway_counts(const struct gateway *gw)
{
	return gw->counts;
}
