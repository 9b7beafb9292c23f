/*
 * Unit tests for limiter.c: backoff bounds, and the concurrency controller
 * driven by a discrete-event simulator of an upstream with a hidden limit.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "limiter.h"

#define NCASES(a)	(sizeof(a) / sizeof((a)[0]))
#define MS		1000LL		/* the simulator counts microseconds */
#define SEC		(1000 * MS)

enum sim_kind {
	SIM_REACH,		/* a request reaches the upstream */
	SIM_FREE,		/* the upstream finishes a request */
	SIM_DONE,		/* an accepted request is answered */
	SIM_THROTTLED,		/* a refused request is answered */
	SIM_WAKE,		/* the pause is over */
	SIM_ARRIVE		/* a message joins the backlog */
};

struct sim_event {
	int64_t		 at;
	uint64_t	 seq;
	int64_t		 start;
	int		 inflight;
	enum sim_kind	 kind;
};

/*
 * A request takes half the network round trip to reach the upstream, which
 * refuses it at once with a throttle when all its slots are taken, and
 * otherwise holds a slot until half a round trip before the answer is back,
 * the latency after the start. The dispatcher starts requests whenever the
 * limiter allows and a message is waiting; a throttled message goes back to
 * the backlog. So the gateway's in-flight count runs a little ahead of the
 * upstream's, as it does on a real network. The upstream's completions are
 * kept in a binary heap; the network legs all take the same time, so two
 * queues in order hold them, and every event carries a sequence number so
 * that ties break the same way whatever queue they are in.
 */
/* Events that all wait the same time come out in the order they go in. */
struct sim_fifo {
	struct sim_event *ring;
	size_t		 head;
	size_t		 len;
	size_t		 size;
};

struct sim {
	struct limiter	*limiter;
	struct sim_event *heap;		/* completions, wake-ups, arrivals */
	size_t		 len;
	size_t		 size;
	struct sim_fifo	 outbound;	/* requests on their way */
	struct sim_fifo	 inbound;	/* answers on their way */
	uint64_t	 seq;
	uint64_t	 rng;
	int64_t		 now;
	int64_t		 latency;	/* mean */
	int		 jitter;	/* latency uniform in [L/2, 3L/2] */
	int64_t		 rtt;		/* network round trip */
	int		 upstream_limit;
	int		 upstream_active;
	int		 inflight;
	int64_t		 backlog;	/* -1: endless */
	int64_t		 arrive_every;	/* 0: no arrivals */
	int		 arrive_jitter;	/* gaps uniform in [T/2, 3T/2] */
	int64_t		 wake_at;	/* a wake-up queued, or -1 */
	uint64_t	 sent;
	uint64_t	 throttled;
	int		 min_limit;
	int		 max_limit;
	int		 band_lo;	/* the limit wanted after a change */
	int		 band_hi;
	int64_t		 out_of_band_at;
	int		 max_inflight;
};

struct grid_case {
	int		 c;
	int64_t		 latency;
	int		 jitter;
};

struct recovery_case {
	const char	*what;
	int		 c[3];		/* upstream limits, 0 when unused */
	int64_t		 latency;
	int		 jitter;
};

static uint64_t
sim_random(struct sim *s)
{
	uint64_t z;

	/* splitmix64, so that runs repeat exactly. */
	s->rng += 0x9e3779b97f4a7c15ULL;
	z = s->rng;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int
sim_before(const struct sim_event *a, const struct sim_event *b)
{
	if (a->at != b->at)
		return a->at < b->at;
	return a->seq < b->seq;
}

static void
sim_push(struct sim *s, struct sim_event ev)
{
	size_t i, parent;

	if (s->len == s->size) {
		s->size = s->size ? s->size * 2 : 256;
		s->heap = realloc(s->heap, s->size * sizeof(*s->heap));
		ck_assert_ptr_nonnull(s->heap);
	}
	ev.seq = s->seq++;
	for (i = s->len++; i > 0; i = parent) {
		parent = (i - 1) / 2;
		if (!sim_before(&ev, &s->heap[parent]))
			break;
		s->heap[i] = s->heap[parent];
	}
	s->heap[i] = ev;
}

static struct sim_event
sim_pop(struct sim *s)
{
	struct sim_event top = s->heap[0], last = s->heap[--s->len];
	size_t i = 0, child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= s->len)
			break;
		if (child + 1 < s->len &&
		    sim_before(&s->heap[child + 1], &s->heap[child]))
			child++;
		if (!sim_before(&s->heap[child], &last))
			break;
		s->heap[i] = s->heap[child];
		i = child;
	}
	if (s->len > 0)
		s->heap[i] = last;
	return top;
}

static void
sim_fifo_push(struct sim *s, struct sim_fifo *f, struct sim_event ev)
{
	struct sim_event *ring;
	size_t i, size;

	if (f->len == f->size) {
		size = f->size ? f->size * 2 : 256;
		ring = malloc(size * sizeof(*ring));
		ck_assert_ptr_nonnull(ring);
		for (i = 0; i < f->len; i++)
			ring[i] = f->ring[(f->head + i) % f->size];
		free(f->ring);
		f->ring = ring;
		f->size = size;
		f->head = 0;
	}
	ev.seq = s->seq++;
	f->ring[(f->head + f->len++) % f->size] = ev;
}

static struct sim_event
sim_fifo_pop(struct sim_fifo *f)
{
	struct sim_event ev = f->ring[f->head];

	f->head = (f->head + 1) % f->size;
	f->len--;
	return ev;
}

static void
sim_init(struct sim *s, int c, int64_t latency, int jitter, int max)
{
	struct sim zero = { 0 };

	*s = zero;
	s->rng = (uint64_t)c * 1000003 + (uint64_t)latency + (uint64_t)jitter;
	s->latency = latency;
	s->jitter = jitter;
	s->rtt = latency / 20;
	if (s->rtt < 50)
		s->rtt = 50;
	if (s->rtt > 2 * MS)
		s->rtt = 2 * MS;
	s->upstream_limit = c;
	s->backlog = -1;
	s->wake_at = -1;
	s->limiter = limiter_new(max, 0);
	ck_assert_ptr_nonnull(s->limiter);
	s->min_limit = s->max_limit = limiter_limit(s->limiter);
	s->band_lo = 1;
	s->band_hi = max;
}

static void
sim_free(struct sim *s)
{
	limiter_free(s->limiter);
	free(s->heap);
	free(s->outbound.ring);
	free(s->inbound.ring);
}

static int64_t
sim_latency(struct sim *s)
{
	if (!s->jitter)
		return s->latency;
	return s->latency / 2 +
	    (int64_t)(sim_random(s) % (uint64_t)(s->latency + 1));
}

static void
sim_start(struct sim *s)
{
	struct sim_event ev = { 0 };

	if (s->backlog > 0)
		s->backlog--;
	ev.start = s->now;
	ev.inflight = ++s->inflight;
	if (s->inflight > s->max_inflight)
		s->max_inflight = s->inflight;
	ev.kind = SIM_REACH;
	ev.at = s->now + s->rtt / 2;
	sim_fifo_push(s, &s->outbound, ev);
}

static void
sim_reach(struct sim *s, const struct sim_event *ev)
{
	struct sim_event next = *ev;
	int64_t latency;

	if (s->upstream_active >= s->upstream_limit) {
		next.kind = SIM_THROTTLED;
		next.at = s->now + s->rtt / 2;
		sim_fifo_push(s, &s->inbound, next);
		return;
	}
	s->upstream_active++;
	latency = sim_latency(s);
	if (latency < s->rtt)
		latency = s->rtt;
	next.kind = SIM_FREE;
	next.at = ev->start + latency - s->rtt / 2;
	sim_push(s, next);
}

static void
sim_dispatch(struct sim *s)
{
	struct sim_event ev = { 0 };
	int64_t paused;

	while (s->backlog != 0 && s->inflight < limiter_limit(s->limiter)) {
		paused = limiter_paused_until(s->limiter);
		if (s->now < paused * MS) {
			if (s->wake_at < 0) {
				ev.kind = SIM_WAKE;
				ev.at = s->wake_at = paused * MS;
				sim_push(s, ev);
			}
			return;
		}
		sim_start(s);
	}
}

static void
sim_observe(struct sim *s)
{
	int limit = limiter_limit(s->limiter);

	if (limit < s->min_limit)
		s->min_limit = limit;
	if (limit > s->max_limit)
		s->max_limit = limit;
	if (limit < s->band_lo || limit > s->band_hi)
		s->out_of_band_at = s->now;
}

static void
sim_handle(struct sim *s, const struct sim_event *ev)
{
	struct sim_event next = { 0 };
	int64_t now_ms = s->now / MS;
	int64_t latency = now_ms - ev->start / MS;

	switch (ev->kind) {
	case SIM_REACH:
		sim_reach(s, ev);
		return;
	case SIM_FREE:
		s->upstream_active--;
		next = *ev;
		next.kind = SIM_DONE;
		next.at = s->now + s->rtt / 2;
		sim_fifo_push(s, &s->inbound, next);
		return;
	case SIM_DONE:
		s->inflight--;
		s->sent++;
		limiter_success(s->limiter, now_ms, ev->inflight, latency);
		break;
	case SIM_THROTTLED:
		s->inflight--;
		s->throttled++;
		if (s->backlog >= 0)
			s->backlog++;
		limiter_throttled(s->limiter, now_ms, ev->inflight, latency);
		break;
	case SIM_WAKE:
		s->wake_at = -1;
		break;
	case SIM_ARRIVE:
		s->backlog++;
		next.kind = SIM_ARRIVE;
		next.at = s->now + s->arrive_every;
		if (s->arrive_jitter)
			next.at += (int64_t)(sim_random(s) %
			    (uint64_t)s->arrive_every) - s->arrive_every / 2;
		sim_push(s, next);
		break;
	}
}

/* Takes the earliest event of the three queues if it is before END. */
static int
sim_next(struct sim *s, int64_t end, struct sim_event *ev)
{
	const struct sim_event *best = NULL;
	struct sim_fifo *from = NULL;

	if (s->len > 0)
		best = &s->heap[0];
	if (s->outbound.len > 0 && (best == NULL ||
	    sim_before(&s->outbound.ring[s->outbound.head], best))) {
		best = &s->outbound.ring[s->outbound.head];
		from = &s->outbound;
	}
	if (s->inbound.len > 0 && (best == NULL ||
	    sim_before(&s->inbound.ring[s->inbound.head], best))) {
		best = &s->inbound.ring[s->inbound.head];
		from = &s->inbound;
	}
	if (best == NULL || best->at >= end)
		return 0;

	*ev = from != NULL ? sim_fifo_pop(from) : sim_pop(s);
	return 1;
}

static void
sim_run_until(struct sim *s, int64_t end)
{
	struct sim_event ev;

	sim_dispatch(s);
	while (sim_next(s, end, &ev)) {
		s->now = ev.at;
		sim_handle(s, &ev);
		sim_dispatch(s);
		sim_observe(s);
	}
	s->now = end;
}

static void
sim_arrivals(struct sim *s, int64_t every, int jitter)
{
	struct sim_event ev = { 0 };

	s->backlog = 0;
	s->arrive_every = every;
	s->arrive_jitter = jitter;
	ev.kind = SIM_ARRIVE;
	ev.at = s->now + every;
	sim_push(s, ev);
}

/* Achieved throughput over a window, as a share of C/L. */
static double
sim_ratio(const struct sim *s, uint64_t sent, int64_t window)
{
	return (double)sent * (double)s->latency /
	    ((double)s->upstream_limit * (double)window);
}

static double
sim_share(uint64_t throttled, uint64_t sent)
{
	return throttled + sent ? (double)throttled / (throttled + sent) : 0;
}

/*
 * At least 20 s, and at least 2000 requests: the long-latency runs are
 * counted in requests.
 */
static int64_t
sim_run_length(int c, int64_t latency)
{
	int64_t t = 2000 * latency / c;

	return t > 20 * SEC ? t : 20 * SEC;
}

START_TEST(test_backoff_never_exceeds_bound)
{
	int64_t base = 250, cap = 600000, bound, d;
	int attempt, i;

	for (attempt = 1; attempt <= 64; attempt++) {
		bound = attempt > 20 ? cap : base << (attempt - 1);
		if (bound > cap)
			bound = cap;
		for (i = 0; i < 200; i++) {
			d = limiter_backoff(attempt, base, cap);
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, bound);
		}
	}
}
END_TEST

START_TEST(test_backoff_first_attempt_bounded_by_base)
{
	int64_t d, top = 0;
	int i;

	for (i = 0; i < 5000; i++) {
		d = limiter_backoff(1, 100, 60000);
		ck_assert_int_ge(d, 0);
		ck_assert_int_le(d, 100);
		if (d > top)
			top = d;
	}
	/* Drawn up to the bound, not stuck at a fixed value. */
	ck_assert_int_ge(top, 90);
}
END_TEST

START_TEST(test_backoff_mean_is_half_the_bound)
{
	static const int attempts[] = { 1, 3, 8, 30, 64 };
	int64_t base = 1000, cap = 1000000, bound, sum;
	double mean;
	size_t a;
	int i, n = 20000;

	for (a = 0; a < NCASES(attempts); a++) {
		bound = attempts[a] > 20 ? cap : base << (attempts[a] - 1);
		if (bound > cap)
			bound = cap;
		sum = 0;
		for (i = 0; i < n; i++)
			sum += limiter_backoff(attempts[a], base, cap);
		mean = (double)sum / n;
		ck_assert_msg(mean > 0.47 * bound && mean < 0.53 * bound,
		    "attempt %d: mean %.1f, bound %lld", attempts[a], mean,
		    (long long)bound);
	}
}
END_TEST

START_TEST(test_backoff_huge_values_do_not_overflow)
{
	int64_t d;
	int attempt;

	for (attempt = 1; attempt <= 64; attempt++) {
		d = limiter_backoff(attempt, INT64_MAX / 3, INT64_MAX);
		ck_assert_int_ge(d, 0);
		d = limiter_backoff(attempt, INT64_MAX, INT64_MAX - 1);
		ck_assert_int_ge(d, 0);
		ck_assert_int_le(d, INT64_MAX - 1);
	}
	d = limiter_backoff(1000000, 3, 7);
	ck_assert_int_ge(d, 0);
	ck_assert_int_le(d, 7);
}
END_TEST

START_TEST(test_backoff_attempt_below_one_counts_as_first)
{
	int i;

	for (i = 0; i < 1000; i++) {
		ck_assert_int_le(limiter_backoff(0, 100, 60000), 100);
		ck_assert_int_le(limiter_backoff(-5, 100, 60000), 100);
	}
}
END_TEST

START_TEST(test_backoff_zero_base_or_cap_gives_zero)
{
	ck_assert_int_eq(limiter_backoff(5, 0, 1000), 0);
	ck_assert_int_eq(limiter_backoff(5, 1000, 0), 0);
	ck_assert_int_eq(limiter_backoff(5, -3, 1000), 0);
}
END_TEST

START_TEST(test_limit_starts_at_four_or_max)
{
	struct limiter *l;

	l = limiter_new(200, 0);
	ck_assert_int_eq(limiter_limit(l), 4);
	ck_assert_int_eq(limiter_paused_until(l), 0);
	ck_assert_uint_eq(limiter_throttles(l), 0);
	limiter_free(l);

	l = limiter_new(2, 0);
	ck_assert_int_eq(limiter_limit(l), 2);
	limiter_free(l);

	l = limiter_new(0, 0);
	ck_assert_int_eq(limiter_limit(l), 1);
	limiter_free(l);
}
END_TEST

START_TEST(test_limit_stays_within_one_and_max)
{
	struct limiter *l;
	uint64_t rng = 42;
	int64_t now = 1000;
	int i, max = 50, k, limit;

	l = limiter_new(max, now);
	for (i = 0; i < 200000; i++) {
		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		now += (int64_t)(rng >> 60);
		k = 1 + (int)((rng >> 33) % 300);
		if ((rng >> 20) % 1000 == 0) {
			max = 1 + (int)((rng >> 40) % 100);
			limiter_set_max(l, max);
		} else if ((rng >> 24) % 4 == 0)
			limiter_throttled(l, now, k, (int64_t)(rng >> 58));
		else
			limiter_success(l, now, k, (int64_t)((rng >> 50) %
			    2000));
		limit = limiter_limit(l);
		ck_assert_int_ge(limit, 1);
		ck_assert_int_le(limit, max);
	}
	limiter_free(l);
}
END_TEST

START_TEST(test_set_max_clamps_limit)
{
	struct limiter *l;
	int i;

	l = limiter_new(100, 0);
	for (i = 0; i < 100; i++)
		limiter_success(l, 10 + i, limiter_limit(l), 10);
	ck_assert_int_gt(limiter_limit(l), 20);
	limiter_set_max(l, 10);
	ck_assert_int_eq(limiter_limit(l), 10);
	limiter_set_max(l, 0);
	ck_assert_int_eq(limiter_limit(l), 1);
	limiter_free(l);
}
END_TEST

START_TEST(test_throttle_sets_limit_below_its_inflight)
{
	struct limiter *l;
	int i;

	l = limiter_new(200, 0);
	for (i = 0; i < 60; i++)
		limiter_success(l, 10 + i, limiter_limit(l), 10);
	ck_assert_int_gt(limiter_limit(l), 30);
	limiter_throttled(l, 100, 25, 1);
	ck_assert_int_eq(limiter_limit(l), 24);
	ck_assert_uint_eq(limiter_throttles(l), 1);
	limiter_free(l);
}
END_TEST

START_TEST(test_throttle_burst_takes_smallest_inflight_without_halving)
{
	struct limiter *l;
	int i;

	l = limiter_new(200, 0);
	for (i = 0; i < 60; i++)
		limiter_success(l, 10 + i, limiter_limit(l), 10);

	/* One overshoot: requests started at 40..33 in flight, at t = 99. */
	for (i = 40; i >= 33; i--)
		limiter_throttled(l, 100, i, 1);
	ck_assert_int_eq(limiter_limit(l), 32);
	ck_assert_uint_eq(limiter_throttles(l), 8);
	limiter_free(l);
}
END_TEST

START_TEST(test_second_throttle_within_lowered_limit_halves_it)
{
	struct limiter *l;
	int i;

	l = limiter_new(200, 0);
	for (i = 0; i < 60; i++)
		limiter_success(l, 10 + i, limiter_limit(l), 10);
	limiter_throttled(l, 100, 41, 1);
	ck_assert_int_eq(limiter_limit(l), 40);

	/* Started after that decrease, within it, and still refused. */
	limiter_throttled(l, 120, 40, 1);
	ck_assert_int_eq(limiter_limit(l), 39);
	limiter_throttled(l, 140, 39, 1);
	ck_assert_int_eq(limiter_limit(l), 19);

	/* A success in between makes the next one a first again. */
	limiter_success(l, 200, 19, 10);
	limiter_throttled(l, 220, 19, 1);
	ck_assert_int_eq(limiter_limit(l), 18);
	limiter_free(l);
}
END_TEST

START_TEST(test_probe_waits_for_gap_and_gap_doubles_after_failure)
{
	struct limiter *l;
	int i;

	l = limiter_new(200, 0);
	for (i = 0; i < 60; i++)
		limiter_success(l, 10 + i, limiter_limit(l), 10);
	limiter_throttled(l, 100, 41, 1);
	ck_assert_int_eq(limiter_limit(l), 40);

	/* 32 successes at the limit, then one probe above it. */
	for (i = 0; i < 31; i++)
		limiter_success(l, 200 + i, 40, 10);
	ck_assert_int_eq(limiter_limit(l), 40);
	limiter_success(l, 231, 40, 10);
	ck_assert_int_eq(limiter_limit(l), 41);

	/* The probe fails: back to 40, and the next one waits for 64. */
	limiter_throttled(l, 300, 41, 1);
	ck_assert_int_eq(limiter_limit(l), 40);
	for (i = 0; i < 63; i++)
		limiter_success(l, 400 + i, 40, 10);
	ck_assert_int_eq(limiter_limit(l), 40);
	limiter_success(l, 463, 40, 10);
	ck_assert_int_eq(limiter_limit(l), 41);

	/* A whole limit of successes above 40 confirms it; the step doubles. */
	for (i = 0; i < 40; i++)
		limiter_success(l, 600 + i, 41, 10);
	ck_assert_int_eq(limiter_limit(l), 41);
	limiter_success(l, 640, 41, 10);
	ck_assert_int_eq(limiter_limit(l), 43);
	ck_assert_uint_eq(limiter_throttles(l), 2);
	limiter_free(l);
}
END_TEST

START_TEST(test_successes_started_before_a_decrease_do_not_raise_it)
{
	struct limiter *l;
	int i;

	l = limiter_new(200, 0);
	for (i = 0; i < 60; i++)
		limiter_success(l, 10 + i, limiter_limit(l), 10);
	limiter_throttled(l, 100, 41, 1);
	limiter_throttled(l, 120, 40, 1);
	limiter_throttled(l, 140, 39, 1);
	ck_assert_int_eq(limiter_limit(l), 19);

	/* Old requests draining with 60 in flight say nothing new. */
	for (i = 0; i < 100; i++)
		limiter_success(l, 141 + i, 60, 100);
	ck_assert_int_eq(limiter_limit(l), 19);

	/* New ones at the limit grow it back to the ceiling, and no further. */
	for (i = 0; i < 40; i++)
		limiter_success(l, 300 + i, limiter_limit(l), 10);
	ck_assert_int_eq(limiter_limit(l), 38);
	limiter_free(l);
}
END_TEST

START_TEST(test_throttle_pause_is_short_and_grows_when_throttles_persist)
{
	struct limiter *l;
	int64_t first, later;
	int i;

	l = limiter_new(200, 0);
	for (i = 0; i < 60; i++)
		limiter_success(l, 1000 + i, limiter_limit(l), 1000);
	limiter_throttled(l, 2000, 41, 1);
	first = limiter_paused_until(l);

	/* 1/32 of a second of latency, jittered: 15..32 ms. */
	ck_assert_int_ge(first, 2000 + 15);
	ck_assert_int_le(first, 2000 + 32);

	limiter_throttled(l, 2100, 40, 1);
	limiter_throttled(l, 2200, 20, 1);
	later = limiter_paused_until(l);
	ck_assert_int_ge(later, 2200 + 60);
	ck_assert_int_le(later, 2200 + 126);
	limiter_free(l);
}
END_TEST

START_TEST(test_successes_below_half_the_limit_do_not_raise_it)
{
	struct limiter *l;
	int i;

	l = limiter_new(200, 0);
	for (i = 0; i < 10000; i++)
		limiter_success(l, 10 + i, 1 + i % 2, 5);
	ck_assert_int_eq(limiter_limit(l), 4);
	limiter_free(l);
}
END_TEST

static const struct grid_case grid[] = {
	{ 1, 1 * MS, 0 }, { 1, 5 * MS, 0 }, { 1, 50 * MS, 0 },
	{ 4, 1 * MS, 0 }, { 4, 5 * MS, 0 }, { 4, 50 * MS, 0 },
	{ 16, 1 * MS, 0 }, { 16, 5 * MS, 0 }, { 16, 50 * MS, 0 },
	{ 64, 1 * MS, 0 }, { 64, 5 * MS, 0 }, { 64, 50 * MS, 0 },
	{ 200, 1 * MS, 0 }, { 200, 5 * MS, 0 }, { 200, 50 * MS, 0 },
	{ 1, 1 * MS, 1 }, { 1, 5 * MS, 1 }, { 1, 50 * MS, 1 },
	{ 4, 1 * MS, 1 }, { 4, 5 * MS, 1 }, { 4, 50 * MS, 1 },
	{ 16, 1 * MS, 1 }, { 16, 5 * MS, 1 }, { 16, 50 * MS, 1 },
	{ 64, 1 * MS, 1 }, { 64, 5 * MS, 1 }, { 64, 50 * MS, 1 },
	{ 200, 1 * MS, 1 }, { 200, 5 * MS, 1 }, { 200, 50 * MS, 1 },
};

static const struct grid_case grid_2s[] = {
	{ 1, 2000 * MS, 0 }, { 4, 2000 * MS, 0 }, { 16, 2000 * MS, 0 },
	{ 64, 2000 * MS, 0 }, { 200, 2000 * MS, 0 },
	{ 1, 2000 * MS, 1 }, { 4, 2000 * MS, 1 }, { 16, 2000 * MS, 1 },
	{ 64, 2000 * MS, 1 }, { 200, 2000 * MS, 1 },
};

static void
grid_run(const struct grid_case *g, int64_t warmup)
{
	struct sim s;
	int64_t len = sim_run_length(g->c, g->latency);
	uint64_t sent0, thr0;
	double ratio, share, ratio_all, share_all;

	sim_init(&s, g->c, g->latency, g->jitter, 200);
	sim_run_until(&s, warmup);
	sent0 = s.sent;
	thr0 = s.throttled;
	sim_run_until(&s, warmup + len);

	ratio = sim_ratio(&s, s.sent - sent0, len);
	share = sim_share(s.throttled - thr0, s.sent - sent0);
	ratio_all = sim_ratio(&s, s.sent, warmup + len);
	share_all = sim_share(s.throttled, s.sent);
	printf("limiter sim C=%3d L=%4lldms jitter=%d run=%5llds "
	    "warmup=%3llds ratio=%.3f throttled=%.3f%% "
	    "(from start: ratio=%.3f throttled=%.3f%%) limit=%d\n",
	    g->c, (long long)(g->latency / MS), g->jitter,
	    (long long)(len / SEC), (long long)(warmup / SEC), ratio,
	    100 * share, ratio_all, 100 * share_all, limiter_limit(s.limiter));
	fflush(stdout);

	ck_assert_int_ge(s.min_limit, 1);
	ck_assert_int_le(s.max_limit, 200);
	ck_assert_msg(ratio >= 0.95, "C=%d L=%lldms jitter=%d: ratio %.3f",
	    g->c, (long long)(g->latency / MS), g->jitter, ratio);
	ck_assert_msg(share <= 0.01, "C=%d L=%lldms jitter=%d: throttled "
	    "%.3f%%", g->c, (long long)(g->latency / MS), g->jitter,
	    100 * share);
	sim_free(&s);
}

START_TEST(test_sim_reaches_95pct_with_under_1pct_throttled_from_start)
{
	grid_run(&grid[_i], 0);
}
END_TEST

/*
 * With 2 s answers, 2000 requests are only 10 round trips at C = 200, and
 * slow start from 4 needs about 6 of them: the discovery alone would cost
 * 25% of the throughput (and at C = 64 one doubling's overshoot is 3% of
 * the requests). So these runs measure 2000 requests after 20 s (10 round
 * trips) of warm-up; the table shows the figures from the start as well.
 */
START_TEST(test_sim_2s_latency_meets_targets_after_20s_warmup)
{
	grid_run(&grid_2s[_i], 20 * SEC);
}
END_TEST

static const struct recovery_case recoveries[] = {
	{ "16->4", { 16, 4, 0 }, 5 * MS, 0 },
	{ "4->32", { 4, 32, 0 }, 5 * MS, 0 },
	{ "64->8->64", { 64, 8, 64 }, 5 * MS, 0 },
	{ "16->4 jittered", { 16, 4, 0 }, 5 * MS, 1 },
	{ "4->32 jittered", { 4, 32, 0 }, 5 * MS, 1 },
	{ "64->8->64 jittered", { 64, 8, 64 }, 5 * MS, 1 },
};

/*
 * Each phase runs 30 s. After a change the limit must be back at the new
 * upstream limit (up to a sixteenth or one above it: probes, and answers
 * in transit that let a little more through) and stay there within 10 s, and
 * the throughput from then to the end of the phase must be 95% of C/L.
 * The design bound is tighter: a drop takes a few round trips; a raise is
 * noticed by a probe within 1024 requests at the old limit, then reached
 * by doubling probe steps, a round trip each: 1024 L / C + 50 L is
 * asserted as well (1.53 s for 4 -> 32 at 5 ms).
 */
START_TEST(test_sim_recovers_within_10s_after_upstream_limit_change)
{
	const struct recovery_case *rc = &recoveries[_i];
	int64_t phase = 30 * SEC, bound = 10 * SEC, t0, settle, tight;
	uint64_t sent0, thr0, thr_phase;
	double ratio;
	struct sim s;
	int p;

	sim_init(&s, rc->c[0], rc->latency, rc->jitter, 200);
	sim_run_until(&s, phase);
	for (p = 1; p < 3 && rc->c[p] != 0; p++) {
		t0 = s.now;
		thr0 = s.throttled;
		s.upstream_limit = rc->c[p];
		s.band_lo = rc->c[p];
		s.band_hi = rc->c[p] + (rc->c[p] < 16 ? 1 : rc->c[p] / 16);
		s.out_of_band_at = t0;
		sim_run_until(&s, t0 + bound);
		sent0 = s.sent;
		sim_run_until(&s, t0 + phase);
		settle = s.out_of_band_at - t0;
		tight = 1024 * rc->latency / rc->c[p - 1] + 50 * rc->latency;
		ratio = sim_ratio(&s, s.sent - sent0, phase - bound);
		thr_phase = s.throttled - thr0;
		printf("limiter recovery %s: C=%d->%d settled in %.3fs "
		    "(design bound %.3fs), ratio after 10s=%.3f, "
		    "throttled in phase=%llu\n", rc->what, rc->c[p - 1],
		    rc->c[p], (double)settle / SEC, (double)tight / SEC, ratio,
		    (unsigned long long)thr_phase);
		fflush(stdout);
		ck_assert_msg(settle < bound && settle <= tight,
		    "%s: settled after %.3fs", rc->what, (double)settle / SEC);
		ck_assert_msg(ratio >= 0.95, "%s: ratio %.3f", rc->what,
		    ratio);
	}
	sim_free(&s);
}
END_TEST

/*
 * A network round trip of a tenth of the latency: the gateway's in-flight
 * count runs ahead of the upstream's by several requests, which blurs what
 * each answer says. The targets must still hold.
 */
START_TEST(test_sim_slow_network_still_meets_targets)
{
	static const int cs[] = { 4, 16, 64 };
	double ratio, share;
	struct sim s;

	sim_init(&s, cs[_i], 500 * MS, 1, 200);
	s.rtt = 50 * MS;
	sim_run_until(&s, 400 * SEC);
	ratio = sim_ratio(&s, s.sent, 400 * SEC);
	share = sim_share(s.throttled, s.sent);
	printf("limiter slow network C=%d L=500ms rtt=50ms: ratio=%.3f "
	    "throttled=%.3f%%\n", cs[_i], ratio, 100 * share);
	fflush(stdout);
	ck_assert_msg(ratio >= 0.95, "ratio %.3f", ratio);
	ck_assert_msg(share <= 0.01, "throttled %.3f%%", 100 * share);
	sim_free(&s);
}
END_TEST

START_TEST(test_sim_upstream_above_max_reaches_max_without_throttles)
{
	struct sim s;

	sim_init(&s, 500, 5 * MS, 0, 32);
	sim_run_until(&s, 20 * SEC);
	ck_assert_int_eq(limiter_limit(s.limiter), 32);
	ck_assert_int_le(s.max_limit, 32);
	ck_assert_int_le(s.max_inflight, 32);
	ck_assert_uint_eq(s.throttled, 0);
	ck_assert_uint_eq(limiter_throttles(s.limiter), 0);
	sim_free(&s);
}
END_TEST

START_TEST(test_sim_finite_backlog_drains_at_95pct_of_capacity)
{
	struct sim s;
	int64_t n = 50000, ideal;

	sim_init(&s, 16, 5 * MS, 1, 200);
	s.backlog = n;
	ideal = n * 5 * MS / 16;
	sim_run_until(&s, ideal * 100 / 95);
	printf("limiter finite backlog: %lld messages, sent %llu in %.3fs "
	    "(ideal %.3fs), throttled %llu\n", (long long)n,
	    (unsigned long long)s.sent, (double)(ideal * 100 / 95) / SEC,
	    (double)ideal / SEC, (unsigned long long)s.throttled);
	ck_assert_int_eq(s.backlog, 0);
	ck_assert_uint_eq(s.sent, (uint64_t)n);
	ck_assert_int_le(s.throttled, n / 100);
	sim_free(&s);
}
END_TEST

START_TEST(test_sim_two_in_flight_keep_the_initial_limit)
{
	struct sim s;

	/* One message every 26 ms at 50 ms latency: 2 in flight. */
	sim_init(&s, 64, 50 * MS, 0, 200);
	sim_arrivals(&s, 26 * MS, 0);
	sim_run_until(&s, 600 * SEC);
	ck_assert_uint_gt(s.sent, 23000);
	ck_assert_int_eq(s.max_inflight, 2);
	ck_assert_int_eq(s.max_limit, 4);
	ck_assert_int_eq(limiter_limit(s.limiter), 4);
	sim_free(&s);
}
END_TEST

START_TEST(test_sim_trickle_limit_stays_below_twice_its_use)
{
	struct sim s;

	/* Arrivals 12.5..37.5 ms apart: now and then 4 or 5 in flight. */
	sim_init(&s, 64, 50 * MS, 1, 200);
	sim_arrivals(&s, 25 * MS, 1);
	sim_run_until(&s, 600 * SEC);
	ck_assert_int_ge(s.max_inflight, 4);
	ck_assert_int_le(s.max_limit, 2 * s.max_inflight);
	ck_assert_int_lt(s.max_limit, 16);
	ck_assert_uint_eq(s.throttled, 0);
	sim_free(&s);
}
END_TEST

START_TEST(test_sim_empty_backlog_after_busy_does_not_creep)
{
	struct sim s;
	int at_switch;

	sim_init(&s, 16, 5 * MS, 1, 200);
	sim_run_until(&s, 20 * SEC);
	at_switch = limiter_limit(s.limiter);
	ck_assert_int_ge(at_switch, 16);
	ck_assert_int_le(at_switch, 17);

	/* The backlog runs dry: about 4 in flight from now on. */
	sim_arrivals(&s, 5 * MS / 4, 1);
	s.max_limit = at_switch;
	sim_run_until(&s, 320 * SEC);
	ck_assert_int_eq(s.max_limit, at_switch);
	ck_assert_int_le(limiter_limit(s.limiter), at_switch);
	sim_free(&s);
}
END_TEST

static Suite *
limiter_suite(void)
{
	Suite *s = suite_create("limiter");
	TCase *tc;

	tc = tcase_create("backoff");
	tcase_add_test(tc, test_backoff_never_exceeds_bound);
	tcase_add_test(tc, test_backoff_first_attempt_bounded_by_base);
	tcase_add_test(tc, test_backoff_mean_is_half_the_bound);
	tcase_add_test(tc, test_backoff_huge_values_do_not_overflow);
	tcase_add_test(tc, test_backoff_attempt_below_one_counts_as_first);
	tcase_add_test(tc, test_backoff_zero_base_or_cap_gives_zero);
	suite_add_tcase(s, tc);

	tc = tcase_create("controller");
	tcase_add_test(tc, test_limit_starts_at_four_or_max);
	tcase_add_test(tc, test_limit_stays_within_one_and_max);
	tcase_add_test(tc, test_set_max_clamps_limit);
	tcase_add_test(tc, test_throttle_sets_limit_below_its_inflight);
	tcase_add_test(tc,
	    test_throttle_burst_takes_smallest_inflight_without_halving);
	tcase_add_test(tc, test_second_throttle_within_lowered_limit_halves_it);
	tcase_add_test(tc,
	    test_throttle_pause_is_short_and_grows_when_throttles_persist);
	tcase_add_test(tc,
	    test_probe_waits_for_gap_and_gap_doubles_after_failure);
	tcase_add_test(tc,
	    test_successes_started_before_a_decrease_do_not_raise_it);
	tcase_add_test(tc, test_successes_below_half_the_limit_do_not_raise_it);
	suite_add_tcase(s, tc);

	tc = tcase_create("simulator");
	tcase_set_timeout(tc, 600);
	tcase_add_loop_test(tc,
	    test_sim_reaches_95pct_with_under_1pct_throttled_from_start, 0,
	    NCASES(grid));
	tcase_add_loop_test(tc,
	    test_sim_2s_latency_meets_targets_after_20s_warmup, 0,
	    NCASES(grid_2s));
	tcase_add_loop_test(tc,
	    test_sim_recovers_within_10s_after_upstream_limit_change, 0,
	    NCASES(recoveries));
	tcase_add_loop_test(tc, test_sim_slow_network_still_meets_targets, 0,
	    3);
	tcase_add_test(tc,
	    test_sim_upstream_above_max_reaches_max_without_throttles);
	tcase_add_test(tc, test_sim_finite_backlog_drains_at_95pct_of_capacity);
	tcase_add_test(tc, test_sim_two_in_flight_keep_the_initial_limit);
	tcase_add_test(tc, test_sim_trickle_limit_stays_below_twice_its_use);
	tcase_add_test(tc, test_sim_empty_backlog_after_busy_does_not_creep);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(limiter_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
