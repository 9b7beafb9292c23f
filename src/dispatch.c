/*
 * The dispatcher. A message taken from the queue is marked sending in the
 * store before its request starts. Each answer is classified by the
 * panacea module and acted on here, in one place per outcome.
 */
#include <sys/queue.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "dispatch.h"
#include "dlr.h"
#include "gateway.h"
#include "http.h"
#include "limiter.h"
#include "log.h"
#include "metrics.h"
#include "panacea.h"
#include "protocol.h"
#include "queue.h"
#include "store.h"
#include "util.h"

/* Answers larger than this are no envelope of the upstream's. */
#define DISPATCH_MAX_BODY		(64 * 1024)
/* Consecutive failures without any answer that put sending on hold. */
#define DISPATCH_HOLD_AFTER		5
/* Unbilled queries allowed per minute by the upstream, all kinds. */
#define DISPATCH_UNBILLED_PER_MIN	10
#define DISPATCH_UNBILLED_WINDOW_MS	61000
/* The first probe of a hold, and the longest wait between two. */
#define DISPATCH_PROBE_FIRST_MS		1000
#define DISPATCH_PROBE_ACCOUNT_MS	10000
#define DISPATCH_PROBE_MAX_MS		60000
#define DISPATCH_REMIND_MS		(5 * 60 * 1000)
/* A request that could not even start is tried again after this. */
#define DISPATCH_RESTART_MS		1000
/* Latency samples kept for the percentiles of the last minute. */
#define DISPATCH_SAMPLES		1024
#define DISPATCH_WINDOW			300	/* seconds of counts kept */
/* Limit changes kept for stats. */
#define DISPATCH_CHANGES		8
/* How often waiting messages are checked for the end of their validity. */
#define DISPATCH_EXPIRE_MS		1000

enum dispatch_counter {
	COUNT_SENT,
	COUNT_THROTTLED,
	COUNT_RETRIED,
	COUNT_FAILED,
	COUNT_EXPIRED,
	COUNT_MAX
};

static const char *dispatch_counter_names[COUNT_MAX] = {
	"sent", "throttled", "retried", "failed", "expired"
};

/* Upper bounds of the latency histogram's buckets, in seconds. */
static const double dispatch_latency_bounds[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30
};

struct dispatch_job {
	TAILQ_ENTRY(dispatch_job)	 entry;	/* committing, or in flight */
	struct dispatch			*d;
	struct store_message		 m;	/* without its text */
	struct queue_item		 item;
	char				*url;
	int				 inflight;	/* at start, itself too */
};

TAILQ_HEAD(dispatch_jobs, dispatch_job);

struct dispatch_second {
	int64_t		 second;
	uint32_t	 counts[COUNT_MAX];
};

struct dispatch_change {
	int64_t		 at;		/* wall-clock ms */
	int		 from;
	int		 to;
};

struct dispatch_sample {
	int64_t		 at;		/* monotonic ms */
	int64_t		 latency;
};

struct dispatch {
	struct event_base	*base;
	const struct config	*cfg;
	struct gateway		*gw;
	struct store		*store;
	struct queue		*queue;
	struct http		*http;
	struct limiter		*limiter;
	struct event		*pump;
	struct event		*wake;
	struct event		*probe;
	struct event		*stats;
	struct event		*expire;
	struct dispatch_jobs	 committing;	/* marked, waiting for commit */
	struct dispatch_jobs	 running;	/* requests in flight */
	size_t			 inflight;
	int			 stopping;

	int			 hold;
	char			 hold_reason[48];
	int			 hold_code;
	int64_t			 hold_since;	/* monotonic ms */
	int64_t			 hold_reminded;
	int64_t			 probe_delay;
	int			 probing;
	int			 failures;	/* in a row, without answer */

	int64_t			 unbilled[DISPATCH_UNBILLED_PER_MIN];
	size_t			 unbilled_next;

	uint64_t		 totals[COUNT_MAX];
	struct dispatch_second	 seconds[DISPATCH_WINDOW];
	struct dispatch_change	 changes[DISPATCH_CHANGES];
	size_t			 nchanges;
	struct event		*balance;
	int			 balance_wanted;
	int			 balance_querying;
	int			 has_balance;
	double			 balance_value;
	int			 balance_low;	/* warned about it */
	struct metrics_histogram latency;
	uint64_t		 latency_counts[13];
	uint64_t		 outcomes[PANACEA_HOLD + 1];
	struct dispatch_sample	 samples[DISPATCH_SAMPLES];
	size_t			 sample_next;
	uint64_t		 requests;
};

static void	dispatch_pump_soon(struct dispatch *);
static void	dispatch_start(struct dispatch *, struct dispatch_job *);
static void	dispatch_balance_query(struct dispatch *);

static void
dispatch_timer_add(struct event *ev, int64_t ms)
{
	struct timeval tv;

	evtimer_add(ev, util_timeval(ms, &tv));
}

/* Arms a timer for every SECONDS, or stops it where SECONDS is 0. */
static void
dispatch_timer_every(struct event *ev, int seconds)
{
	if (seconds > 0)
		dispatch_timer_add(ev, (int64_t)seconds * 1000);
	else
		evtimer_del(ev);
}

static void
dispatch_count(struct dispatch *d, enum dispatch_counter c)
{
	int64_t second = util_mono_ms() / 1000;
	struct dispatch_second *s = &d->seconds[second % DISPATCH_WINDOW];

	if (s->second != second) {
		memset(s, 0, sizeof(*s));
		s->second = second;
	}
	s->counts[c]++;
	d->totals[c]++;
}

/* Counts C over the last SECONDS seconds (at most DISPATCH_WINDOW). */
static uint64_t
dispatch_last(const struct dispatch *d, enum dispatch_counter c,
    int64_t seconds)
{
	int64_t second = util_mono_ms() / 1000;
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < DISPATCH_WINDOW; i++)
		if (d->seconds[i].second > second - seconds)
			n += d->seconds[i].counts[c];
	return n;
}

static uint64_t
dispatch_last_minute(const struct dispatch *d, enum dispatch_counter c)
{
	return dispatch_last(d, c, 60);
}

/* Remembers a change of the concurrency limit, for stats. */
static void
dispatch_limit_changed(struct dispatch *d, int from)
{
	struct dispatch_change *c;
	int to = limiter_limit(d->limiter);

	if (to == from)
		return;
	if (d->nchanges == DISPATCH_CHANGES) {
		memmove(&d->changes[0], &d->changes[1],
		    sizeof(d->changes[0]) * (DISPATCH_CHANGES - 1));
		d->nchanges--;
	}
	c = &d->changes[d->nchanges++];
	c->at = util_now_ms();
	c->from = from;
	c->to = to;
}

static int
dispatch_compare(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The P-th percentile of the upstream's latency over the last minute. */
static int64_t
dispatch_percentile(const struct dispatch *d, int p)
{
	int64_t v[DISPATCH_SAMPLES], since = util_mono_ms() - 60000;
	size_t i, n = 0;

	for (i = 0; i < DISPATCH_SAMPLES; i++)
		if (d->samples[i].at > since)
			v[n++] = d->samples[i].latency;
	if (n == 0)
		return 0;
	qsort(v, n, sizeof(v[0]), dispatch_compare);
	return v[(n - 1) * (size_t)p / 100];
}

static void
dispatch_sample(struct dispatch *d, int64_t latency)
{
	struct dispatch_sample *s = &d->samples[d->sample_next];

	s->at = util_mono_ms();
	s->latency = latency;
	d->sample_next = (d->sample_next + 1) % DISPATCH_SAMPLES;
	metrics_histogram_observe(&d->latency, (double)latency / 1000.0);
}

/*
 * The upstream allows only a few unbilled queries a minute, for all of
 * them together: 0 when one may be made now, else how long to wait.
 */
static int64_t
dispatch_unbilled_wait(const struct dispatch *d, int64_t now)
{
	int64_t oldest = d->unbilled[d->unbilled_next];

	if (oldest == 0 || now - oldest >= DISPATCH_UNBILLED_WINDOW_MS)
		return 0;
	return DISPATCH_UNBILLED_WINDOW_MS - (now - oldest);
}

static void
dispatch_unbilled_take(struct dispatch *d, int64_t now)
{
	d->unbilled[d->unbilled_next] = now;
	d->unbilled_next = (d->unbilled_next + 1) % DISPATCH_UNBILLED_PER_MIN;
}

static void
dispatch_account(const struct dispatch *d, struct panacea_account *a)
{
	a->url = d->cfg->upstream.url;
	a->username = d->cfg->upstream.username;
	a->password = d->cfg->upstream.password;
}

static void
dispatch_job_free(struct dispatch_job *job)
{
	free(job->url);
	free(job);
}

static void
dispatch_hold_enter(struct dispatch *d, const char *reason, int has_code,
    int code)
{
	const int64_t *counts = gateway_counts(d->gw);

	if (d->hold)
		return;
	d->hold = 1;
	snprintf(d->hold_reason, sizeof(d->hold_reason), "%s", reason);
	d->hold_code = has_code ? code : 0;
	d->hold_since = d->hold_reminded = util_mono_ms();
	d->probe_delay = has_code ? DISPATCH_PROBE_ACCOUNT_MS :
	    DISPATCH_PROBE_FIRST_MS;
	if (has_code)
		log_crit("upstream hold reason=%s code=%d queued=%" PRId64,
		    reason, code, counts[MESSAGE_QUEUED]);
	else
		log_crit("upstream hold reason=%s failures=%d queued=%" PRId64,
		    reason, d->failures, counts[MESSAGE_QUEUED]);
	if (!d->probing)
		dispatch_timer_add(d->probe, d->probe_delay);
}

static void
dispatch_hold_leave(struct dispatch *d, const char *why)
{
	if (!d->hold)
		return;
	log_notice("upstream resumed reason=%s after=%s held_s=%" PRId64,
	    why, d->hold_reason, (util_mono_ms() - d->hold_since) / 1000);
	d->hold = 0;
	d->failures = 0;
	d->hold_reason[0] = '\0';
	evtimer_del(d->probe);
	dispatch_pump_soon(d);
}

static void
dispatch_probe_again(struct dispatch *d)
{
	int64_t delay = d->probe_delay;
	int64_t now = util_mono_ms();
	const int64_t *counts = gateway_counts(d->gw);

	d->probe_delay = d->probe_delay * 2 > DISPATCH_PROBE_MAX_MS ?
	    DISPATCH_PROBE_MAX_MS : d->probe_delay * 2;
	if (now - d->hold_reminded >= DISPATCH_REMIND_MS) {
		d->hold_reminded = now;
		log_crit("upstream still-on-hold reason=%s code=%d "
		    "queued=%" PRId64 " held_s=%" PRId64, d->hold_reason,
		    d->hold_code, counts[MESSAGE_QUEUED],
		    (now - d->hold_since) / 1000);
	}
	dispatch_timer_add(d->probe, delay);
}

/* Classifies the answer to a balance query, or its absence. */
static void
dispatch_classify_balance(const struct http_response *resp,
    struct panacea_result *r)
{
	if (!resp->ok)
		panacea_classify_transport(resp->reason, r);
	else
		panacea_classify_balance(resp->status, resp->body,
		    resp->body_len, r);
}

static void
dispatch_probe_done(void *arg, const struct http_response *resp)
{
	struct dispatch *d = arg;
	struct panacea_result r;

	d->probing = 0;
	dispatch_classify_balance(resp, &r);
	if (!d->hold)
		return;

	if (r.outcome == PANACEA_SENT && (!r.has_balance || r.balance > 0 ||
	    strcmp(d->hold_reason, "out-of-credit") != 0)) {
		log_info("upstream probe result=ok balance=%.2f",
		    r.has_balance ? r.balance : 0.0);
		dispatch_hold_leave(d, "probe-succeeded");
		return;
	}
	log_warn("upstream probe result=%s reason=%s code=%d in_ms=%" PRId64,
	    panacea_outcome_name(r.outcome), r.reason,
	    r.has_code ? r.code : 0, d->probe_delay);
	dispatch_probe_again(d);
}

static void
dispatch_probecb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch *d = arg;
	struct panacea_account a;
	int64_t now = util_mono_ms(), wait;
	char *url;

	(void)fd;
	(void)what;
	if (!d->hold || d->probing || d->stopping)
		return;
	if ((wait = dispatch_unbilled_wait(d, now)) > 0) {
		dispatch_timer_add(d->probe, wait);
		return;
	}

	dispatch_account(d, &a);
	if ((url = panacea_balance_url(&a)) == NULL ||
	    http_get(d->http, url, dispatch_probe_done, d) == -1) {
		free(url);
		dispatch_probe_again(d);
		return;
	}
	free(url);
	dispatch_unbilled_take(d, now);
	d->probing = 1;
	log_debug("upstream probe action=user_get_balance");
}

/* Upstream ids are untrusted text: keep what is safe in lines and JSON. */
static void
dispatch_copy_id(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < len; i++)
		dst[i] = src[i] > 0x20 && src[i] < 0x7f ? src[i] : '_';
	dst[i] = '\0';
}

static void
dispatch_requeue(struct dispatch *d, struct dispatch_job *job)
{
	if (gateway_transition(d->gw, &job->m, MESSAGE_QUEUED) == 0)
		queue_push(d->queue, &job->item);
}

static void
dispatch_fail(struct dispatch *d, struct dispatch_job *job,
    enum message_state to, const char *reason)
{
	char id[PROTOCOL_ID_LEN + 1];

	protocol_id_format(job->m.id, id);
	snprintf(job->m.reason, sizeof(job->m.reason), "%s", reason);
	if (gateway_transition(d->gw, &job->m, to) == -1)
		return;
	if (to == MESSAGE_EXPIRED) {
		dispatch_count(d, COUNT_EXPIRED);
		log_warn("msg expired id=%s attempts=%d reason=%s", id,
		    job->m.attempts, reason);
	} else {
		dispatch_count(d, COUNT_FAILED);
		log_warn("msg failed id=%s attempts=%d code=%d reason=%s", id,
		    job->m.attempts, job->m.has_last_code ? job->m.last_code : 0,
		    reason);
	}
}

static void
dispatch_retry(struct dispatch *d, struct dispatch_job *job,
    const struct panacea_result *r, int64_t retry_after, int ambiguous)
{
	const struct config *cfg = d->cfg;
	char id[PROTOCOL_ID_LEN + 1];
	int64_t delay, now = util_now_ms();
	int cap = cfg->retry.max_attempts;

	if (r->attempt_cap > 0 && r->attempt_cap < cap)
		cap = r->attempt_cap;
	if (job->m.attempts >= cap) {
		dispatch_fail(d, job, MESSAGE_FAILED, r->reason);
		return;
	}

	delay = limiter_backoff(job->m.attempts, cfg->retry.base_ms,
	    cfg->retry.cap_ms);
	if (retry_after > delay)
		delay = retry_after;
	if (now + delay >= job->m.valid_until) {
		dispatch_fail(d, job, MESSAGE_EXPIRED, r->reason);
		return;
	}

	job->m.next_attempt = now + delay;
	snprintf(job->m.reason, sizeof(job->m.reason), "%s", r->reason);
	if (gateway_transition(d->gw, &job->m, MESSAGE_QUEUED) == -1)
		return;
	job->item.due = job->m.next_attempt;
	job->item.attempts = job->m.attempts;
	queue_defer(d->queue, &job->item);
	dispatch_count(d, COUNT_RETRIED);

	protocol_id_format(job->m.id, id);
	log_warn("msg retry id=%s attempt=%d code=%d reason=%s in_ms=%" PRId64
	    "%s", id, job->m.attempts + 1, r->has_code ? r->code : 0,
	    r->reason, delay, ambiguous ? " ambiguous=1" : "");
}

static void
dispatch_sent(struct dispatch *d, struct dispatch_job *job,
    const struct panacea_result *r, int64_t latency)
{
	char id[PROTOCOL_ID_LEN + 1];
	int code;

	dispatch_copy_id(job->m.upstream_id, sizeof(job->m.upstream_id),
	    r->upstream_id);
	job->m.reason[0] = '\0';
	if (gateway_transition(d->gw, &job->m, MESSAGE_SENT) == -1)
		return;
	dispatch_count(d, COUNT_SENT);
	protocol_id_format(job->m.id, id);
	log_info("msg sent id=%s upstream_id=%s attempt=%d latency_ms=%" PRId64,
	    id, job->m.upstream_id[0] ? job->m.upstream_id : "-",
	    job->m.attempts, latency);

	/* The upstream can report delivery before it answers the send. */
	if ((code = gateway_early_report(d->gw, job->m.id)) != 0)
		gateway_deliver(d->gw, &job->m, code);
}

static void
dispatch_throttled(struct dispatch *d, struct dispatch_job *job,
    const struct panacea_result *r, int64_t latency)
{
	char id[PROTOCOL_ID_LEN + 1];
	int before = limiter_limit(d->limiter);

	limiter_throttled(d->limiter, util_mono_ms(), job->inflight, latency);
	dispatch_limit_changed(d, before);
	dispatch_count(d, COUNT_THROTTLED);
	if (limiter_limit(d->limiter) != before)
		log_info("upstream throttled code=%d limit=%d->%d inflight=%zu",
		    r->code, before, limiter_limit(d->limiter), d->inflight);
	protocol_id_format(job->m.id, id);
	log_debug("msg throttled id=%s code=%d", id, r->code);

	/* Not an attempt: back to its place at the head of the queue. */
	dispatch_requeue(d, job);
}

static void
dispatch_done(void *arg, const struct http_response *resp)
{
	struct dispatch_job *job = arg;
	struct dispatch *d = job->d;
	struct panacea_result r;
	int64_t retry_after = -1;
	int ambiguous = 0, limit, code;

	TAILQ_REMOVE(&d->running, job, entry);
	d->inflight--;
	if (resp->ok)
		panacea_classify_send(resp->status, resp->body, resp->body_len,
		    &r);
	else {
		panacea_classify_transport(resp->reason, &r);
		ambiguous = resp->maybe_sent;
	}
	if (resp->retry_after_raw != NULL)
		retry_after = panacea_retry_after(resp->retry_after_raw,
		    util_now_ms());
	job->m.has_last_code = r.has_code;
	job->m.last_code = r.code;
	d->outcomes[r.outcome]++;

	/* Only answers without an envelope say the upstream is away. */
	d->failures = r.outcome == PANACEA_RETRY && !r.has_code ?
	    d->failures + 1 : 0;

	switch (r.outcome) {
	case PANACEA_SENT:
		job->m.attempts++;
		limit = limiter_limit(d->limiter);
		limiter_success(d->limiter, util_mono_ms(), job->inflight,
		    resp->latency_ms);
		dispatch_limit_changed(d, limit);
		dispatch_sample(d, resp->latency_ms);
		dispatch_sent(d, job, &r, resp->latency_ms);
		break;
	case PANACEA_THROTTLED:
		dispatch_throttled(d, job, &r, resp->latency_ms);
		break;
	case PANACEA_RETRY:
		job->m.attempts++;
		if (ambiguous && !d->cfg->upstream.resend_ambiguous)
			dispatch_fail(d, job, MESSAGE_FAILED, "ambiguous");
		else
			dispatch_retry(d, job, &r, retry_after, ambiguous);
		if (d->failures >= DISPATCH_HOLD_AFTER)
			dispatch_hold_enter(d, "upstream-unreachable", 0, 0);
		break;
	case PANACEA_FAILED:
		job->m.attempts++;
		dispatch_fail(d, job, MESSAGE_FAILED, r.reason);
		break;
	case PANACEA_HOLD:
		dispatch_requeue(d, job);
		dispatch_hold_enter(d, r.reason, r.has_code, r.code);
		break;
	}

	/* A report came while this attempt was out: an earlier one got in. */
	if (job->m.state == MESSAGE_QUEUED &&
	    (code = gateway_early_report(d->gw, job->m.id)) != 0)
		(void)gateway_reported(d->gw, &job->m, code);
	dispatch_job_free(job);
	dispatch_pump_soon(d);
}

/* Reads the message, checks it is still to be sent, marks it sending. */
static struct dispatch_job *
dispatch_take(struct dispatch *d, const struct queue_item *item)
{
	struct dispatch_job *job;
	struct panacea_account a;
	const char *sender;
	char *report;
	int found;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		return NULL;
	job->d = d;
	job->item = *item;
	found = store_get(d->store, item->id, &job->m);
	if (found != 1 || job->m.state != MESSAGE_QUEUED) {
		/* Cancelled while it waited, or a storage failure. */
		if (found == -1)
			log_err("store read-failed id=%016" PRIx64 " error=%s",
			    (uint64_t)item->id, store_error(d->store));
		store_clear(&job->m);
		free(job);
		return NULL;
	}
	if (util_now_ms() >= job->m.valid_until) {
		store_clear(&job->m);
		dispatch_fail(d, job, MESSAGE_EXPIRED, "validity-ended");
		free(job);
		return NULL;
	}

	dispatch_account(d, &a);
	sender = job->m.sender[0] ? job->m.sender : d->cfg->upstream.sender;
	report = NULL;
	if (d->cfg->dlr.public_url[0] != '\0' &&
	    (report = dlr_report_url(d->cfg->dlr.public_url, d->cfg->dlr.token,
	    job->m.id)) == NULL) {
		store_clear(&job->m);
		free(job);
		return NULL;
	}
	job->url = panacea_send_url(&a, job->m.to, job->m.text,
	    job->m.text_len, sender, report, d->cfg->dlr.mask);
	free(report);
	store_clear(&job->m);
	job->m.next_attempt = 0;
	if (job->url == NULL ||
	    gateway_transition(d->gw, &job->m, MESSAGE_SENDING) == -1) {
		queue_defer(d->queue, &(struct queue_item){ .id = item->id,
		    .due = util_now_ms() + DISPATCH_RESTART_MS,
		    .priority = item->priority,
		    .valid_until = item->valid_until,
		    .attempts = item->attempts });
		dispatch_job_free(job);
		return NULL;
	}
	return job;
}

static void
dispatch_arm(struct dispatch *d, int64_t delay)
{
	if (delay < 0)
		return;
	dispatch_timer_add(d->wake, delay);
}

static void
dispatch_pump(struct dispatch *d)
{
	struct queue_item item;
	struct dispatch_job *job;
	int64_t now = util_now_ms(), mono = util_mono_ms(), due, paused;
	size_t busy;

	if (d->stopping || d->hold || gateway_store_failing(d->gw))
		return;
	queue_promote(d->queue, now);

	paused = limiter_paused_until(d->limiter);
	if (paused > mono) {
		dispatch_arm(d, paused - mono);
		return;
	}

	busy = d->inflight + (size_t)d->balance_querying;
	TAILQ_FOREACH(job, &d->committing, entry)
		busy++;
	if (d->balance_wanted && busy < (size_t)limiter_limit(d->limiter)) {
		dispatch_balance_query(d);
		busy += (size_t)d->balance_querying;
	}
	while (busy < (size_t)limiter_limit(d->limiter) &&
	    queue_pop(d->queue, &item)) {
		if ((job = dispatch_take(d, &item)) == NULL)
			continue;
		busy++;

		/*
		 * Where an ambiguous message must fail rather than go twice,
		 * its request waits until the sending mark is durable. Else
		 * the mark commits at the end of this pass, and a crash
		 * before that resends the message, as it would anyway.
		 */
		if (d->cfg->upstream.resend_ambiguous)
			dispatch_start(d, job);
		else {
			TAILQ_INSERT_TAIL(&d->committing, job, entry);
			gateway_want_sync(d->gw);
		}
	}

	if ((due = queue_next_due(d->queue)) != -1)
		dispatch_arm(d, due > now ? due - now : 0);
}

static void
dispatch_pumpcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dispatch_pump(arg);
}

static void
dispatch_pump_soon(struct dispatch *d)
{
	event_active(d->pump, EV_TIMEOUT, 0);
}

static void
dispatch_kick(void *arg)
{
	dispatch_pump_soon(arg);
}

static void
dispatch_start(struct dispatch *d, struct dispatch_job *job)
{
	job->inflight = (int)d->inflight + 1;
	if (http_get(d->http, job->url, dispatch_done, job) == -1) {
		log_err("upstream request-failed id=%016" PRIx64
		    " reason=cannot-start", (uint64_t)job->m.id);
		dispatch_requeue(d, job);
		dispatch_job_free(job);
		return;
	}
	TAILQ_INSERT_TAIL(&d->running, job, entry);
	d->inflight++;
	d->requests++;
}

/* The marks are durable (or undone): start the requests (or requeue). */
static void
dispatch_committed(void *arg, int committed)
{
	struct dispatch *d = arg;
	struct dispatch_job *job;

	while ((job = TAILQ_FIRST(&d->committing)) != NULL) {
		TAILQ_REMOVE(&d->committing, job, entry);
		if (committed)
			dispatch_start(d, job);
		else {
			dispatch_requeue(d, job);
			dispatch_job_free(job);
		}
	}
}

/* The counts of the last SECONDS, as the object NAME of a stats reply. */
static void
dispatch_reply_counts(const struct dispatch *d, struct protocol_reply *r,
    const char *name, int64_t seconds)
{
	int i;

	protocol_reply_open(r, name);
	for (i = 0; i < COUNT_MAX; i++)
		protocol_reply_int(r, dispatch_counter_names[i],
		    (int64_t)dispatch_last(d, i, seconds));
	protocol_reply_close(r);
}

static void
dispatch_stats_reply(void *arg, struct protocol_reply *r)
{
	struct dispatch *d = arg;
	char when[32];
	size_t n;

	protocol_reply_int(r, "inflight", (int64_t)d->inflight);
	protocol_reply_int(r, "limit", limiter_limit(d->limiter));
	protocol_reply_int(r, "max_concurrency",
	    d->cfg->upstream.max_concurrency);
	protocol_reply_int(r, "throttled", (int64_t)limiter_throttles(
	    d->limiter));
	protocol_reply_int(r, "requests", (int64_t)d->requests);
	dispatch_reply_counts(d, r, "last_minute", 60);
	dispatch_reply_counts(d, r, "last_5_minutes", DISPATCH_WINDOW);
	protocol_reply_open_array(r, "limit_changes");
	for (n = 0; n < d->nchanges; n++) {
		protocol_reply_open(r, NULL);
		util_iso8601(d->changes[n].at, when, sizeof(when));
		protocol_reply_string(r, "at", when);
		protocol_reply_int(r, "from", d->changes[n].from);
		protocol_reply_int(r, "to", d->changes[n].to);
		protocol_reply_close(r);
	}
	protocol_reply_close_array(r);
	if (d->has_balance)
		protocol_reply_double(r, "balance", d->balance_value);
	else
		protocol_reply_null(r, "balance");
	protocol_reply_open(r, "latency_ms");
	protocol_reply_int(r, "p50", dispatch_percentile(d, 50));
	protocol_reply_int(r, "p99", dispatch_percentile(d, 99));
	protocol_reply_close(r);
	protocol_reply_open(r, "hold");
	protocol_reply_bool(r, "active", d->hold);
	if (d->hold) {
		protocol_reply_string(r, "reason", d->hold_reason);
		protocol_reply_int(r, "code", d->hold_code);
		protocol_reply_int(r, "seconds",
		    (util_mono_ms() - d->hold_since) / 1000);
	}
	protocol_reply_close(r);
}

static void
dispatch_expire_one(void *arg, const struct queue_item *item)
{
	struct dispatch *d = arg;
	struct dispatch_job job;

	memset(&job, 0, sizeof(job));
	if (store_get(d->store, item->id, &job.m) != 1)
		return;
	store_clear(&job.m);
	if (job.m.state == MESSAGE_QUEUED)
		dispatch_fail(d, &job, MESSAGE_EXPIRED, "validity-ended");
}

/* Messages wait on hold or for a retry too; their validity runs on. */
static void
dispatch_expirecb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch *d = arg;

	(void)fd;
	(void)what;
	queue_expire(d->queue, util_now_ms(), dispatch_expire_one, d);
	dispatch_timer_add(d->expire, DISPATCH_EXPIRE_MS);
}

/* A queue that does not move is worth a warning, whatever the cause. */
static void
dispatch_check_age(struct dispatch *d)
{
	const int64_t *counts = gateway_counts(d->gw);
	int64_t created, age;

	if (d->cfg->log.queue_age_warn <= 0 ||
	    store_oldest(d->store, &created) != 1)
		return;
	age = (util_now_ms() - created) / 1000;
	if (age > d->cfg->log.queue_age_warn)
		log_warn("queue old-messages oldest_s=%" PRId64 " queued=%" PRId64
		    " hold=%s", age, counts[MESSAGE_QUEUED],
		    d->hold ? d->hold_reason : "no");
}

static void
dispatch_statscb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch *d = arg;
	const int64_t *counts = gateway_counts(d->gw);

	(void)fd;
	(void)what;
	log_info("stats queued=%" PRId64 " inflight=%zu limit=%d "
	    "sent_1m=%" PRIu64 " throttled_1m=%" PRIu64 " retried_1m=%" PRIu64
	    " failed_1m=%" PRIu64 " hold=%s", counts[MESSAGE_QUEUED],
	    d->inflight, limiter_limit(d->limiter),
	    dispatch_last_minute(d, COUNT_SENT),
	    dispatch_last_minute(d, COUNT_THROTTLED),
	    dispatch_last_minute(d, COUNT_RETRIED),
	    dispatch_last_minute(d, COUNT_FAILED),
	    d->hold ? d->hold_reason : "no");
	dispatch_check_age(d);
	dispatch_timer_every(d->stats, d->cfg->log.stats_interval);
}

static void
dispatch_balance_done(void *arg, const struct http_response *resp)
{
	struct dispatch *d = arg;
	struct panacea_result r;
	int low;

	d->balance_querying = 0;
	dispatch_pump_soon(d);
	dispatch_classify_balance(resp, &r);
	if (r.outcome != PANACEA_SENT || !r.has_balance) {
		log_warn("upstream balance-failed reason=%s code=%d", r.reason,
		    r.has_code ? r.code : 0);
		return;
	}
	d->has_balance = 1;
	d->balance_value = r.balance;
	low = d->cfg->upstream.low_balance > 0 &&
	    r.balance < d->cfg->upstream.low_balance;
	if (low)
		log_warn("upstream low-balance balance=%.2f low_balance=%d",
		    r.balance, d->cfg->upstream.low_balance);
	else if (d->balance_low)
		log_notice("upstream balance-restored balance=%.2f",
		    r.balance);
	else
		log_info("upstream balance balance=%.2f", r.balance);
	d->balance_low = low;
}

/*
 * Asks for the account balance. The query takes one of the upstream's
 * slots like a send, so it waits for a free one (see dispatch_pump).
 */
static void
dispatch_balance_query(struct dispatch *d)
{
	struct panacea_account a;
	int64_t now = util_mono_ms();
	char *url;

	d->balance_wanted = 0;
	if (dispatch_unbilled_wait(d, now) > 0)
		return;
	dispatch_account(d, &a);
	if ((url = panacea_balance_url(&a)) == NULL)
		return;
	if (http_get(d->http, url, dispatch_balance_done, d) == 0) {
		dispatch_unbilled_take(d, now);
		d->balance_querying = 1;
	}
	free(url);
}

static void
dispatch_balancecb(evutil_socket_t fd, short what, void *arg)
{
	struct dispatch *d = arg;

	(void)fd;
	(void)what;
	dispatch_timer_every(d->balance, d->cfg->upstream.balance_interval);

	/* A hold probes the balance already; leave the budget to it. */
	if (d->hold || d->stopping || d->balance_querying)
		return;
	d->balance_wanted = 1;
	dispatch_pump_soon(d);
}

void
dispatch_metrics(const struct dispatch *d, struct metrics_page *page)
{
	static const char *outcomes[] = {
		"sent", "throttled", "retry", "failed", "hold"
	};
	struct metrics_label label[2] = { { "outcome", NULL },
	    { NULL, NULL } };
	size_t i;

	metrics_family(page, "smsgw_upstream_requests_total", "counter",
	    "Answers from the upstream (or their absence), by outcome.");
	for (i = 0; i <= PANACEA_HOLD; i++) {
		label[0].value = outcomes[i];
		metrics_sample(page, "smsgw_upstream_requests_total", label,
		    (double)d->outcomes[i]);
	}
	metrics_single(page, "smsgw_inflight", "gauge",
	    "Requests to the upstream in flight.", (double)d->inflight);
	metrics_single(page, "smsgw_concurrency_limit", "gauge",
	    "How many requests may be in flight at once now.",
	    limiter_limit(d->limiter));
	metrics_single(page, "smsgw_throttled_total", "counter",
	    "Throttle answers (-4096, -8192) from the upstream.",
	    (double)limiter_throttles(d->limiter));
	metrics_single(page, "smsgw_hold", "gauge",
	    "1 while sending is on hold, else 0.", d->hold);
	if (d->has_balance)
		metrics_single(page, "smsgw_balance", "gauge",
		    "The account balance the upstream last reported.",
		    d->balance_value);
	metrics_family(page, "smsgw_upstream_latency_seconds", "histogram",
	    "Time from the start of a send to the upstream's answer.");
	metrics_histogram_write(page, "smsgw_upstream_latency_seconds", NULL,
	    &d->latency);
}

static void
dispatch_http_options(const struct config *cfg, struct http_options *o)
{
	o->timeout_ms = (long)cfg->upstream.timeout * 1000;
	o->connect_timeout_ms = (long)cfg->upstream.connect_timeout * 1000;
	o->ca_file = cfg->upstream.ca_file;
	o->max_connections = cfg->upstream.max_concurrency + 1;
	o->max_body = DISPATCH_MAX_BODY;
}

struct dispatch *
dispatch_new(struct event_base *base, const struct config *cfg,
    struct gateway *gw, char *err, size_t errlen)
{
	struct gateway_dispatcher hooks;
	struct http_options o;
	struct dispatch *d;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->base = base;
	d->cfg = cfg;
	d->gw = gw;
	d->store = gateway_store(gw);
	d->queue = gateway_queue(gw);
	TAILQ_INIT(&d->committing);
	TAILQ_INIT(&d->running);
	d->latency.bounds = dispatch_latency_bounds;
	d->latency.nbounds = sizeof(dispatch_latency_bounds) /
	    sizeof(dispatch_latency_bounds[0]);
	d->latency.counts = d->latency_counts;

	dispatch_http_options(cfg, &o);
	if ((d->http = http_new(base, &o, err, errlen)) == NULL)
		goto fail;
	if ((d->limiter = limiter_new(cfg->upstream.max_concurrency,
	    util_mono_ms())) == NULL ||
	    (d->pump = event_new(base, -1, 0, dispatch_pumpcb, d)) == NULL ||
	    (d->wake = evtimer_new(base, dispatch_pumpcb, d)) == NULL ||
	    (d->probe = evtimer_new(base, dispatch_probecb, d)) == NULL ||
	    (d->stats = evtimer_new(base, dispatch_statscb, d)) == NULL ||
	    (d->expire = evtimer_new(base, dispatch_expirecb, d)) == NULL ||
	    (d->balance = evtimer_new(base, dispatch_balancecb, d)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	dispatch_timer_every(d->stats, cfg->log.stats_interval);
	dispatch_timer_add(d->expire, DISPATCH_EXPIRE_MS);
	/* A first balance soon after start, then every interval. */
	if (cfg->upstream.balance_interval > 0)
		dispatch_timer_add(d->balance, 1000);

	hooks.kick = dispatch_kick;
	hooks.committed = dispatch_committed;
	hooks.stats = dispatch_stats_reply;
	hooks.arg = d;
	gateway_set_dispatcher(gw, &hooks);
	dispatch_pump_soon(d);
	return d;

fail:
	dispatch_free(d);
	return NULL;
}

void
dispatch_configure(struct dispatch *d, const struct config *cfg)
{
	struct http_options o;

	d->cfg = cfg;
	dispatch_http_options(cfg, &o);
	http_set_options(d->http, &o);
	limiter_set_max(d->limiter, cfg->upstream.max_concurrency);
	dispatch_timer_every(d->stats, cfg->log.stats_interval);
	dispatch_timer_every(d->balance, cfg->upstream.balance_interval);
	/*
	 * Whatever was fixed (credentials, URL, CA file), try it now: if the
	 * cause remains, the first answer holds again, at one request.
	 */
	dispatch_hold_leave(d, "configuration-reloaded");
	dispatch_pump_soon(d);
}

void
dispatch_stop(struct dispatch *d)
{
	struct dispatch_job *job;

	d->stopping = 1;

	/* Marked but not started: back to queued, nothing was sent. */
	while ((job = TAILQ_FIRST(&d->committing)) != NULL) {
		TAILQ_REMOVE(&d->committing, job, entry);
		dispatch_requeue(d, job);
		dispatch_job_free(job);
	}
}

size_t
dispatch_inflight(const struct dispatch *d)
{
	return d->inflight;
}

const char *
dispatch_hold_reason(const struct dispatch *d)
{
	return d->hold ? d->hold_reason : NULL;
}

void
dispatch_free(struct dispatch *d)
{
	struct dispatch_job *job;

	if (d == NULL)
		return;
	while ((job = TAILQ_FIRST(&d->committing)) != NULL) {
		TAILQ_REMOVE(&d->committing, job, entry);
		dispatch_job_free(job);
	}

	/* Aborted requests call nobody back: their jobs go here. */
	http_free(d->http);
	while ((job = TAILQ_FIRST(&d->running)) != NULL) {
		TAILQ_REMOVE(&d->running, job, entry);
		dispatch_job_free(job);
	}
	limiter_free(d->limiter);
	if (d->pump != NULL)
		event_free(d->pump);
	if (d->wake != NULL)
		event_free(d->wake);
	if (d->probe != NULL)
		event_free(d->probe);
	if (d->stats != NULL)
		event_free(d->stats);
	if (d->expire != NULL)
		event_free(d->expire);
	if (d->balance != NULL)
		event_free(d->balance);
	free(d);
}
