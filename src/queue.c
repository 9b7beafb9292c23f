/*
 * The in-memory queue: two binary heaps of small items. The ready heap
 * orders high priority first, then by id (the order messages came in); the
 * deferred heap orders by due time.
 */
#include <stdlib.h>
#include <string.h>

#include "queue.h"

struct queue_heap {
	struct queue_item	*items;
	size_t			 len;
	size_t			 size;
	size_t			 high;	/* items of priority 1 */
	int			(*before)(const struct queue_item *,
				    const struct queue_item *);
};

struct queue {
	struct queue_heap	 ready;
	struct queue_heap	 deferred;
};

static int
queue_ready_before(const struct queue_item *a, const struct queue_item *b)
{
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return a->id < b->id;
}

static int
queue_due_before(const struct queue_item *a, const struct queue_item *b)
{
	if (a->due != b->due)
		return a->due < b->due;
	return a->id < b->id;
}

static int
queue_heap_push(struct queue_heap *h, const struct queue_item *item)
{
	struct queue_item *items, tmp;
	size_t i, parent, size;

	if (h->len == h->size) {
		size = h->size ? h->size * 2 : 1024;
		if ((items = realloc(h->items, size * sizeof(*items))) == NULL)
			return -1;
		h->items = items;
		h->size = size;
	}

	i = h->len++;
	h->items[i] = *item;
	while (i > 0) {
		parent = (i - 1) / 2;
		if (!h->before(&h->items[i], &h->items[parent]))
			break;
		tmp = h->items[i];
		h->items[i] = h->items[parent];
		h->items[parent] = tmp;
		i = parent;
	}
	if (item->priority > 0)
		h->high++;
	return 0;
}

static void
queue_heap_down(struct queue_heap *h, size_t i)
{
	struct queue_item tmp;
	size_t child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= h->len)
			break;
		if (child + 1 < h->len &&
		    h->before(&h->items[child + 1], &h->items[child]))
			child++;
		if (!h->before(&h->items[child], &h->items[i]))
			break;
		tmp = h->items[i];
		h->items[i] = h->items[child];
		h->items[child] = tmp;
		i = child;
	}
}

static void
queue_heap_pop(struct queue_heap *h, struct queue_item *out)
{
	*out = h->items[0];
	if (out->priority > 0)
		h->high--;
	h->items[0] = h->items[--h->len];
	queue_heap_down(h, 0);
}

/* Removes the items whose validity ended, then restores the heap order. */
static size_t
queue_heap_expire(struct queue_heap *h, int64_t now,
    void (*cb)(void *, const struct queue_item *), void *arg)
{
	size_t i, kept = 0, n;

	for (i = 0; i < h->len; i++) {
		if (h->items[i].valid_until > now) {
			h->items[kept++] = h->items[i];
			continue;
		}
		if (h->items[i].priority > 0)
			h->high--;
		cb(arg, &h->items[i]);
	}
	n = h->len - kept;
	h->len = kept;
	if (n > 0)
		for (i = h->len / 2; i-- > 0;)
			queue_heap_down(h, i);
	return n;
}

struct queue *
queue_new(void)
{
	struct queue *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->ready.before = queue_ready_before;
	q->deferred.before = queue_due_before;
	return q;
}

void
queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	free(q->ready.items);
	free(q->deferred.items);
	free(q);
}

int
queue_push(struct queue *q, const struct queue_item *item)
{
	return queue_heap_push(&q->ready, item);
}

int
queue_pop(struct queue *q, struct queue_item *out)
{
	if (q->ready.len == 0)
		return 0;
	queue_heap_pop(&q->ready, out);
	return 1;
}

int
queue_defer(struct queue *q, const struct queue_item *item)
{
	return queue_heap_push(&q->deferred, item);
}

size_t
queue_promote(struct queue *q, int64_t now)
{
	struct queue_item item;
	size_t n = 0;

	while (q->deferred.len > 0 && q->deferred.items[0].due <= now) {
		queue_heap_pop(&q->deferred, &item);

		/*
		 * The ready heap only grows here, and the item just left the
		 * deferred one, so a failure cannot lose it: put it back.
		 */
		if (queue_heap_push(&q->ready, &item) == -1) {
			queue_heap_push(&q->deferred, &item);
			break;
		}
		n++;
	}
	return n;
}

size_t
queue_expire(struct queue *q, int64_t now,
    void (*cb)(void *arg, const struct queue_item *), void *arg)
{
	return queue_heap_expire(&q->ready, now, cb, arg) +
	    queue_heap_expire(&q->deferred, now, cb, arg);
}

int64_t
queue_next_due(const struct queue *q)
{
	if (q->deferred.len == 0)
		return -1;
	return q->deferred.items[0].due;
}

size_t
queue_ready(const struct queue *q)
{
	return q->ready.len;
}

size_t
queue_ready_priority(const struct queue *q, int priority)
{
	return priority > 0 ? q->ready.high : q->ready.len - q->ready.high;
}

size_t
queue_deferred(const struct queue *q)
{
	return q->deferred.len;
}
