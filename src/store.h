/*
 * The durable queue: every message in one SQLite table (WAL, synchronous
 * FULL). Writes join one transaction that the caller commits once per pass
 * of the event loop (group commit); nothing is acknowledged before that.
 */
#ifndef SMSGW_STORE_H
#define SMSGW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"

#define STORE_UPSTREAM_ID_MAX	65
#define STORE_REASON_MAX	64

struct store;

/* One message as stored. text is malloc'd by store_get; see store_clear. */
struct store_message {
	int64_t			 id;
	enum message_state	 state;
	int			 priority;	/* 1 high, 0 normal */
	char			 to[MESSAGE_NUMBER_MAX];	/* "+<digits>" */
	char			 sender[MESSAGE_SENDER_MAX];	/* "" default */
	char			 ref[MESSAGE_REF_MAX + 1];	/* "" none */
	char			*text;
	size_t			 text_len;
	int			 segments;
	enum message_encoding	 encoding;
	int64_t			 created;	/* ms since the epoch */
	int64_t			 updated;	/* ms since the epoch */
	int64_t			 valid_until;	/* ms since the epoch */
	int			 attempts;
	int64_t			 next_attempt;	/* ms since the epoch, 0 now */
	char			 upstream_id[STORE_UPSTREAM_ID_MAX];
	int			 has_last_code;
	int			 last_code;
	char			 reason[STORE_REASON_MAX];	/* "" none */
	int			 has_report;	/* a delivery report came */
	int			 report_code;	/* the latest one's code */
	int64_t			 report_at;	/* ms since the epoch */
};

/* An inbound message (a reply), as stored. */
struct store_inbound {
	int64_t			 id;		/* the inbox cursor */
	int64_t			 received;	/* ms since the epoch */
	const char		*from;
	const char		*to;
	const char		*charset;	/* as the upstream gave it */
	const char		*code;
	const void		*text;		/* UTF-8 */
	size_t			 text_len;
};

/* The few fields of an unfinished message that the in-memory queue needs. */
struct store_pending {
	int64_t			 id;
	enum message_state	 state;		/* queued or sending */
	int			 priority;
	int			 attempts;
	int64_t			 next_attempt;
	int64_t			 valid_until;
};

/*
 * Opens (creating or migrating) the database at PATH. Returns NULL with a
 * reason in err on failure.
 */
struct store	*store_open(const char *path, char *err, size_t errlen);
void		 store_close(struct store *);
/* The text of the last SQLite error, for log lines. */
const char	*store_error(struct store *);
/* The schema version the file is at (PRAGMA user_version). */
int		 store_schema_version(struct store *);

/*
 * Starts the write transaction if none is open; every write below calls it.
 * store_commit commits (and syncs) it; store_rollback discards it. Both are
 * no-ops without an open transaction. -1 on failure.
 */
int		 store_begin(struct store *);
int		 store_commit(struct store *);
/*
 * Commits with the sync only when SYNC is set; without it the commit
 * survives the process's death but not a power cut. For transactions that
 * acknowledge nothing.
 */
int		 store_commit_sync(struct store *, int sync);
void		 store_rollback(struct store *);
int		 store_in_transaction(struct store *);

/*
 * Inserts M (to, sender, ref, text, segments, encoding, priority, created,
 * valid_until; state queued, attempts 0) and sets M->id. -1 on failure.
 */
int		 store_insert(struct store *, struct store_message *m);

/* Looks a message up by id or by ref: 1 found (M filled, text included),
 * 0 not found, -1 failure. Free M's text with store_clear. */
int		 store_get(struct store *, int64_t id, struct store_message *m);
int		 store_get_ref(struct store *, const char *ref,
		    struct store_message *m);
/* The id of the message with REF: 1 found, 0 not, -1 failure. */
int		 store_find_ref(struct store *, const char *ref, int64_t *id);
void		 store_clear(struct store_message *m);

/*
 * Writes M's state, attempts, next_attempt, upstream_id, last_code,
 * reason and updated. -1 on failure.
 */
int		 store_update(struct store *, const struct store_message *m);

/*
 * Records a delivery report with CODE at AT (ms since the epoch) on
 * message ID, whatever its state. -1 on failure.
 */
int		 store_report(struct store *, int64_t id, int code, int64_t at);

/*
 * Calls CB for every queued or sending message, high priority first, then
 * oldest first, without reading the message bodies. Stops and returns -1
 * when CB does or on failure; 0 otherwise.
 */
int		 store_load(struct store *,
		    int (*cb)(void *arg, const struct store_pending *p),
		    void *arg);

/* When the oldest unfinished message was created: 1, 0 none, -1. */
int		 store_oldest(struct store *, int64_t *created);

/* Fills counts (MESSAGE_STATE_MAX entries) with the messages per state. */
int		 store_count(struct store *, int64_t *counts);

/*
 * Deletes at most LIMIT finished messages last updated before BEFORE (ms
 * since the epoch). Returns how many it deleted, or -1.
 */
int		 store_prune(struct store *, int64_t before, int limit);

/* Adds an inbound message (its id is ignored): its new id, or -1. */
int64_t		 store_inbox_insert(struct store *,
		    const struct store_inbound *in);
/*
 * Calls CB for at most LIMIT inbound messages with an id above AFTER,
 * oldest first; the fields are valid during the call only. Returns how
 * many it passed, or -1.
 */
int		 store_inbox_list(struct store *, int64_t after, int limit,
		    int (*cb)(void *arg, const struct store_inbound *in),
		    void *arg);
/* Deletes at most LIMIT inbound messages received before BEFORE. */
int		 store_inbox_prune(struct store *, int64_t before, int limit);

#endif
