/*
 * The concurrency controller: the number of requests the dispatcher may
 * have in flight. It finds the upstream's unpublished limit on simultaneous
 * requests from its throttle answers, settles just under it, and probes
 * upward only now and then. Pure: time is passed in.
 */
#ifndef SMSGW_LIMITER_H
#define SMSGW_LIMITER_H

#include <stdint.h>

struct limiter;

struct limiter	*limiter_new(int max, int64_t now);
void		 limiter_free(struct limiter *);
void		 limiter_set_max(struct limiter *, int max);

/* How many requests may be in flight now. */
int		 limiter_limit(const struct limiter *);
/* No new request may start before this time (ms); 0 when not paused. */
int64_t		 limiter_paused_until(const struct limiter *);

/*
 * Reports the end of a request that was started while INFLIGHT requests
 * (itself included) were in flight, and took LATENCY ms.
 */
void		 limiter_success(struct limiter *, int64_t now, int inflight,
		    int64_t latency);
void		 limiter_throttled(struct limiter *, int64_t now, int inflight,
		    int64_t latency);

/* Throttle answers seen, for stats. */
uint64_t	 limiter_throttles(const struct limiter *);

/*
 * Full-jitter exponential backoff: a delay drawn uniformly from
 * [0, min(cap, base * 2^(attempt-1))] ms, for attempt >= 1.
 */
int64_t		 limiter_backoff(int attempt, int64_t base, int64_t cap);

#endif
