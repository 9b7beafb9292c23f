/*
 * The dispatcher: takes messages from the queue as the concurrency limit
 * allows, sends each to the upstream, and acts on the classified answer:
 * sent, throttled, retry, failed or hold.
 */
#ifndef SMSGW_DISPATCH_H
#define SMSGW_DISPATCH_H

#include <stddef.h>

struct event_base;
struct config;
struct gateway;
struct metrics_page;

struct dispatch;

/* Returns NULL with a reason in err on failure. */
struct dispatch	*dispatch_new(struct event_base *, const struct config *,
		    struct gateway *, char *err, size_t errlen);
/*
 * Applies a new configuration: credentials, URL, sender, timeouts,
 * max_concurrency and retry settings. A hold ends, so that a fixed
 * configuration is tried at once.
 */
void		 dispatch_configure(struct dispatch *, const struct config *);
/* Starts no new request from now on; those in flight go on. */
void		 dispatch_stop(struct dispatch *);
size_t		 dispatch_inflight(const struct dispatch *);
/* Writes the dispatcher's metric families to PAGE. */
void		 dispatch_metrics(const struct dispatch *,
		    struct metrics_page *page);
/* Why sending is on hold ("out-of-credit"), or NULL when it is not. */
const char	*dispatch_hold_reason(const struct dispatch *);
/* Aborts what is still in flight: those messages stay sending, and are
 * found ambiguous at the next start. */
void		 dispatch_free(struct dispatch *);

#endif
