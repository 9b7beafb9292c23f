/*
 * The in-memory queue of unfinished messages: a ready heap (high priority
 * first, then oldest first) and a deferred heap of messages waiting for a
 * retry. It holds ids and a few fields, never message bodies.
 */
#ifndef SMSGW_QUEUE_H
#define SMSGW_QUEUE_H

#include <stddef.h>
#include <stdint.h>

struct queue_item {
	int64_t		 id;		/* also the age order: ids only grow */
	int64_t		 due;		/* deferred until, ms since the epoch */
	int64_t		 valid_until;	/* ms since the epoch */
	int32_t		 attempts;
	int8_t		 priority;	/* 1 high, 0 normal */
};

struct queue;

struct queue	*queue_new(void);
void		 queue_free(struct queue *);

/* Adds an item to the ready heap. -1 when out of memory. */
int		 queue_push(struct queue *, const struct queue_item *);
/* Takes the first ready item: 1 taken, 0 none ready. */
int		 queue_pop(struct queue *, struct queue_item *);
/* Adds an item to the deferred heap until item->due. -1 out of memory. */
int		 queue_defer(struct queue *, const struct queue_item *);
/* Moves every deferred item due at NOW or before to the ready heap. */
size_t		 queue_promote(struct queue *, int64_t now);
/*
 * Takes every item whose validity ended at NOW or before out of both
 * heaps, calling CB for each. Returns how many it took.
 */
size_t		 queue_expire(struct queue *, int64_t now,
		    void (*cb)(void *arg, const struct queue_item *), void *arg);
/* When the next deferred item falls due, or -1 when there is none. */
int64_t		 queue_next_due(const struct queue *);

size_t		 queue_ready(const struct queue *);
size_t		 queue_ready_priority(const struct queue *, int priority);
size_t		 queue_deferred(const struct queue *);

#endif
