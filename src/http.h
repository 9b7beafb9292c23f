/*
 * HTTP client: libcurl's multi socket API driven by the daemon's libevent
 * loop. Many GET requests in flight at once over reused keep-alive
 * connections; each ends in exactly one call of its callback.
 */
#ifndef SMSGW_HTTP_H
#define SMSGW_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct http;

struct http_options {
	long		 timeout_ms;		/* whole request */
	long		 connect_timeout_ms;
	const char	*ca_file;		/* NULL or "" for the system's */
	long		 max_connections;	/* per host, kept alive */
	size_t		 max_body;		/* larger answers fail */
};

struct http_response {
	int		 ok;		/* 1 when an HTTP answer was read whole */
	long		 status;	/* HTTP status, 0 without an answer */
	const char	*body;		/* NUL-terminated, valid in the callback */
	size_t		 body_len;
	int		 error;		/* CURLcode, 0 when ok */
	const char	*reason;	/* kebab-case cause when !ok */
	int		 maybe_sent;	/* the request may have reached the peer */
	int64_t		 retry_after;	/* Retry-After seconds in ms, or -1 */
	const char	*retry_after_raw; /* as sent, or NULL */
	int64_t		 latency_ms;	/* from start to the end of the answer */
};

/*
 * Called from the loop once the request's handle is back in the pool: it
 * may call http_get, but must not call http_free. REASON is NULL when ok.
 */
typedef void	(*http_cb)(void *arg, const struct http_response *);

/*
 * Returns NULL with a reason in err on failure, also when libcurl cannot
 * resolve names without blocking. Calls curl_global_init the first time.
 */
struct http	*http_new(struct event_base *, const struct http_options *,
		    char *err, size_t errlen);
/* Applies new options to requests started from now on. */
void		 http_set_options(struct http *, const struct http_options *);
/*
 * Starts a GET of URL (copied). CB is called once, later, from the event
 * loop, never from inside http_get. Returns -1 when it could not start.
 */
int		 http_get(struct http *, const char *url, http_cb cb, void *arg);
size_t		 http_inflight(const struct http *);
/* Aborts every request in flight without calling their callbacks. */
void		 http_free(struct http *);

#endif
