/*
 * The concurrency controller: finds the upstream's unpublished limit on
 * simultaneous requests from its throttle answers and keeps just under it.
 *
 * Start at 4 (or max) and grow by one per success (slow start: doubling
 * per round trip) until the first throttle. A throttle for a request
 * started with k in flight proves the upstream's limit is below k: the
 * limit drops to k - 1 and that becomes the ceiling, which the limit does
 * not pass again except by probing. A burst of throttles from the same
 * overshoot all say the same thing, so they only take the smallest k. A
 * throttle for a request started after the last decrease, with no more in
 * flight than it allowed, says the decrease was not enough (the upstream
 * lowered its limit, or old requests are still draining); the second such
 * throttle before any success halves the limit (the first may be answers
 * crossing on the network). Every throttle pauses new requests for a
 * jittered 1/32 of the smoothed latency, doubled for each of those, capped
 * at a second. The pause time stays set until the next report after it.
 *
 * Growth only counts successes started after the last decrease with more
 * than half the limit in flight, so an idle dispatcher never drives the
 * limit above twice what it uses. Below the ceiling (after halving) the
 * limit grows back by slow start. At the ceiling, after `gap` successes
 * started with the limit in flight and at least two round trips after the
 * last change, it probes `step` above. A whole limit's worth of successes
 * above the ceiling, started after the last throttle, confirms the probe:
 * the ceiling rises to the probed limit, the step doubles (to at most half
 * the ceiling), the gap halves, and the next probe starts at once, so a
 * raised upstream limit is reached in a few round trips. A failed probe
 * costs a throttle or two; the step falls back to one, and after a failure
 * with no confirmed probe since the last one the gap doubles, from 32 up
 * to 1024 requests, so that probes stay far below 1% of the requests.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "limiter.h"
#include "util.h"

#define LIMITER_START		4
#define LIMITER_UNKNOWN		INT_MAX
#define LIMITER_GAP_MIN		32
#define LIMITER_GAP_MAX		1024
#define LIMITER_PAUSE_SHIFT	5
#define LIMITER_PAUSE_CAP_US	1000000
#define LIMITER_SRTT_SHIFT	3

struct limiter {
	int		 max;
	int		 limit;
	int		 ceiling;	/* what the upstream allows */
	int		 cut_limit;	/* what the last decrease set */
	int		 probing;	/* the limit is above the ceiling */
	int		 step;		/* how far above it to probe */
	int		 raised;	/* a probe confirmed since a failure */
	int		 streak;	/* throttles within a decrease */
	uint32_t	 at_limit;	/* successes at the limit */
	uint32_t	 gap;		/* such successes before a probe */
	uint32_t	 above;		/* successes above the ceiling */
	int64_t		 cut_at;	/* time of the last decrease */
	int64_t		 changed_at;	/* time of the last change */
	int64_t		 throttled_at;	/* time of the last throttle */
	int64_t		 paused_until;
	int64_t		 srtt_us;	/* smoothed success latency */
	uint64_t	 throttles;
};

struct limiter *
limiter_new(int max, int64_t now)
{
	struct limiter *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;

	l->max = max < 1 ? 1 : max;
	l->limit = l->max < LIMITER_START ? l->max : LIMITER_START;
	l->ceiling = LIMITER_UNKNOWN;
	l->gap = LIMITER_GAP_MIN;
	l->step = 1;

	/* Requests started in this very millisecond count as evidence. */
	l->cut_at = now - 1;
	l->changed_at = now - 1;
	l->throttled_at = now - 1;
	return l;
}

void
limiter_free(struct limiter *l)
{
	free(l);
}

void
limiter_set_max(struct limiter *l, int max)
{
	l->max = max < 1 ? 1 : max;
	if (l->limit > l->max) {
		l->limit = l->max;
		l->probing = 0;
	}
	if (l->cut_limit > l->max)
		l->cut_limit = l->max;
}

int
limiter_limit(const struct limiter *l)
{
	return l->limit;
}

int64_t
limiter_paused_until(const struct limiter *l)
{
	return l->paused_until;
}

uint64_t
limiter_throttles(const struct limiter *l)
{
	return l->throttles;
}

/* The highest limit allowed without a probe. */
static int
limiter_cap(const struct limiter *l)
{
	return l->ceiling < l->max ? l->ceiling : l->max;
}

static void
limiter_change(struct limiter *l, int64_t now, int limit)
{
	if (limit == l->limit)
		return;

	if (limit < l->limit) {
		l->cut_at = now;
		l->cut_limit = limit;
	}
	l->limit = limit;
	l->changed_at = now;
	l->at_limit = 0;
}

static void
limiter_expire_pause(struct limiter *l, int64_t now)
{
	if (l->paused_until != 0 && now >= l->paused_until)
		l->paused_until = 0;
}

static void
limiter_pause(struct limiter *l, int64_t now, int64_t latency)
{
	int64_t us, ms;
	int i;

	if (l->srtt_us > 0)
		us = l->srtt_us >> LIMITER_PAUSE_SHIFT;
	else
		us = latency * 1000;
	for (i = 0; i < l->streak && us < LIMITER_PAUSE_CAP_US; i++)
		us *= 2;
	if (us > LIMITER_PAUSE_CAP_US)
		us = LIMITER_PAUSE_CAP_US;

	/*
	 * Jitter spreads the restart of several gateways sharing an account;
	 * the random rounding keeps sub-millisecond pauses right on average.
	 */
	us = us / 2 + (int64_t)util_random_below((uint64_t)us / 2 + 1);
	ms = (us + (int64_t)util_random_below(1000)) / 1000;
	if (ms > 0 && now + ms > l->paused_until)
		l->paused_until = now + ms;
}

static void
limiter_sample(struct limiter *l, int64_t latency)
{
	int64_t us = latency * 1000;

	if (l->srtt_us == 0)
		l->srtt_us = us > 0 ? us : 1;
	else
		l->srtt_us += (us - l->srtt_us) >> LIMITER_SRTT_SHIFT;
	if (l->srtt_us < 1)
		l->srtt_us = 1;
}

/* Raises the limit one step above the ceiling, without passing max. */
static void
limiter_probe(struct limiter *l, int64_t now)
{
	int next;

	next = l->ceiling < l->max - l->step ? l->ceiling + l->step : l->max;
	if (next <= l->ceiling)
		return;
	limiter_change(l, now, next);
	l->probing = 1;
	l->above = 0;
}

/* At the ceiling: count successes at the limit and probe now and then. */
static void
limiter_consider_probe(struct limiter *l, int64_t now, int inflight,
    int64_t start)
{
	if (l->probing || l->limit >= l->max || l->limit < l->ceiling)
		return;

	if (inflight >= l->limit && start > l->cut_at)
		l->at_limit++;
	if (l->at_limit < l->gap ||
	    (now - l->changed_at) * 1000 < 2 * l->srtt_us)
		return;
	limiter_probe(l, now);
}

/* A whole round ran above the ceiling: the upstream allows more. */
static void
limiter_confirm(struct limiter *l, int64_t now)
{
	l->probing = 0;
	l->ceiling = l->limit;
	l->raised = 1;
	l->gap /= 2;
	if (l->gap < LIMITER_GAP_MIN)
		l->gap = LIMITER_GAP_MIN;
	if (l->step <= l->ceiling / 4)
		l->step *= 2;
	limiter_probe(l, now);
}

void
limiter_success(struct limiter *l, int64_t now, int inflight,
    int64_t latency)
{
	int64_t start;

	if (latency < 0)
		latency = 0;
	start = now - latency;
	limiter_expire_pause(l, now);
	limiter_sample(l, latency);

	if (start > l->throttled_at)
		l->streak = 0;

	/*
	 * Only a request started after the last throttle says something true
	 * about the upstream with more than the ceiling in flight: one started
	 * earlier may have counted refused requests still on their way back.
	 */
	if (l->probing && inflight > l->ceiling && start > l->throttled_at &&
	    ++l->above >= (uint32_t)l->limit) {
		limiter_confirm(l, now);
		return;
	}

	if (l->limit < limiter_cap(l)) {
		if (start > l->cut_at && 2 * (int64_t)inflight > l->limit)
			limiter_change(l, now, l->limit + 1);
		return;
	}
	limiter_consider_probe(l, now, inflight, start);
}

void
limiter_throttled(struct limiter *l, int64_t now, int inflight,
    int64_t latency)
{
	int64_t start;
	int bound, target;

	if (latency < 0)
		latency = 0;
	start = now - latency;
	limiter_expire_pause(l, now);
	l->throttles++;

	/* A failed probe: wait longer, unless probes were just succeeding. */
	if (l->probing && inflight > l->ceiling) {
		if (!l->raised && l->gap < LIMITER_GAP_MAX)
			l->gap *= 2;
		l->raised = 0;
	}
	l->probing = 0;
	l->step = 1;

	bound = inflight > 1 ? inflight - 1 : 1;
	if (bound < l->ceiling)
		l->ceiling = bound;
	target = l->limit < l->ceiling ? l->limit : l->ceiling;

	/*
	 * Started within the decreased limit: the decrease was not enough.
	 * Once may be the noise of answers crossing on the network; twice
	 * without a success in between is not.
	 */
	if (start > l->cut_at && inflight <= l->cut_limit &&
	    ++l->streak > 1 && target > l->limit / 2)
		target = l->limit / 2;
	if (target < 1)
		target = 1;
	limiter_change(l, now, target);

	l->throttled_at = now;
	limiter_pause(l, now, latency);
}

int64_t
limiter_backoff(int attempt, int64_t base, int64_t cap)
{
	int64_t bound;
	int shift;

	if (base <= 0 || cap <= 0)
		return 0;

	/* base * 2^(attempt-1), stopping at the cap before it can overflow. */
	bound = base < cap ? base : cap;
	for (shift = 1; shift < attempt && bound < cap; shift++)
		bound = bound > cap / 2 ? cap : bound * 2;
	return (int64_t)util_random_below((uint64_t)bound + 1);
}
