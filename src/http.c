/*
 * HTTP client: libcurl's multi socket API on the daemon's libevent loop,
 * a pool of reused easy handles, and failures sorted into short reasons.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define HTTP_BODY_MIN		4096
#define HTTP_RETRY_AFTER_MAX	(INT64_MAX / 1000)
#define HTTP_RETRY_AFTER	"Retry-After:"

struct http_request {
	LIST_ENTRY(http_request) entry;
	CURL		*easy;
	unsigned	 generation;	/* of its CA file */
	http_cb		 cb;
	void		*arg;
	char		*body;
	size_t		 body_len;
	size_t		 body_size;
	size_t		 max_body;
	int		 too_large;
	char		*retry_after;
	int64_t		 start_ms;
};

struct http_socket {
	LIST_ENTRY(http_socket) entry;
	curl_socket_t	 fd;
	struct event	*ev;
};

LIST_HEAD(http_requests, http_request);
LIST_HEAD(http_sockets, http_socket);

struct http {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	struct http_options	 options;
	char			*ca_file;
	unsigned		 generation;
	struct http_requests	 idle;
	struct http_requests	 busy;
	size_t			 inflight;
	struct http_sockets	 sockets;
};

static int	http_curl_ready;

static int
http_global_init(char *err, size_t errlen)
{
	const curl_version_info_data *info;

	if (!http_curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			snprintf(err, errlen, "curl_global_init failed");
			return -1;
		}
		http_curl_ready = 1;
	}

	/* A resolver that blocks would stop the whole daemon on slow DNS. */
	info = curl_version_info(CURLVERSION_NOW);
	if (!(info->features & CURL_VERSION_ASYNCHDNS)) {
		snprintf(err, errlen, "libcurl %s cannot resolve names "
		    "asynchronously", info->version);
		return -1;
	}
	return 0;
}

static void
http_request_destroy(struct http_request *req)
{
	if (req->easy != NULL)
		curl_easy_cleanup(req->easy);
	free(req->body);
	free(req->retry_after);
	free(req);
}

static size_t
http_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_request *req = arg;
	size_t n = size * nmemb, want;
	char *p;

	if (n > req->max_body - req->body_len) {
		req->too_large = 1;
		return 0;
	}

	if (req->body_len + n + 1 > req->body_size) {
		want = req->body_size > 0 ? req->body_size : HTTP_BODY_MIN;
		while (want < req->body_len + n + 1)
			want *= 2;
		if (want > req->max_body + 1)
			want = req->max_body + 1;
		if ((p = realloc(req->body, want)) == NULL)
			return 0;
		req->body = p;
		req->body_size = want;
	}

	memcpy(req->body + req->body_len, data, n);
	req->body_len += n;
	req->body[req->body_len] = '\0';
	return n;
}

static size_t
http_header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct http_request *req = arg;
	size_t n = size * nitems, skip = strlen(HTTP_RETRY_AFTER);
	const char *v, *end;
	char *copy;

	/* A status line starts a new answer (after a 1xx): forget the old. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		free(req->retry_after);
		req->retry_after = NULL;
		return n;
	}
	if (n < skip || strncasecmp(data, HTTP_RETRY_AFTER, skip) != 0)
		return n;

	v = data + skip;
	end = data + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if ((copy = strndup(v, (size_t)(end - v))) == NULL)
		return n;
	free(req->retry_after);
	req->retry_after = copy;
	return n;
}

static struct http_request *
http_request_new(struct http *http)
{
	struct http_request *req;
	CURL *e;

	if ((req = calloc(1, sizeof(*req))) == NULL)
		return NULL;
	if ((req->easy = e = curl_easy_init()) == NULL)
		goto fail;
	req->generation = http->generation;

	if (curl_easy_setopt(e, CURLOPT_PRIVATE, req) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, req) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, req) != CURLE_OK)
		goto fail;
#if LIBCURL_VERSION_NUM >= 0x075500
	if (curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK)
		goto fail;
#else
	if (curl_easy_setopt(e, CURLOPT_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK)
		goto fail;
#endif
	/*
	 * The CA file is set only on new handles, since setting it back to
	 * NULL would not restore libcurl's built-in default: handles made
	 * with another CA file are dropped instead (see the generation).
	 */
	if (http->ca_file != NULL &&
	    curl_easy_setopt(e, CURLOPT_CAINFO, http->ca_file) != CURLE_OK)
		goto fail;
	return req;

fail:
	http_request_destroy(req);
	return NULL;
}

/* An idle handle from the pool, or a new one. */
static struct http_request *
http_request_take(struct http *http)
{
	struct http_request *req;

	if ((req = LIST_FIRST(&http->idle)) == NULL)
		return http_request_new(http);
	LIST_REMOVE(req, entry);
	return req;
}

/* Gives a handle back to the pool, keeping its options but no answer. */
static void
http_request_put(struct http *http, struct http_request *req)
{
	free(req->body);
	free(req->retry_after);
	req->body = NULL;
	req->retry_after = NULL;
	req->body_len = req->body_size = 0;
	req->too_large = 0;
	req->cb = NULL;
	req->arg = NULL;

	if (req->generation != http->generation) {
		http_request_destroy(req);
		return;
	}
	LIST_INSERT_HEAD(&http->idle, req, entry);
}

static void
http_drop_idle(struct http *http)
{
	struct http_request *req;

	while ((req = LIST_FIRST(&http->idle)) != NULL) {
		LIST_REMOVE(req, entry);
		http_request_destroy(req);
	}
}

static int64_t
http_retry_after_parse(const char *v)
{
	int64_t secs = 0;

	if (v == NULL || *v == '\0')
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		if (secs < HTTP_RETRY_AFTER_MAX)
			secs = secs * 10 + (*v - '0');
	}
	if (secs > HTTP_RETRY_AFTER_MAX)
		secs = HTTP_RETRY_AFTER_MAX;
	return secs * 1000;
}

static const char *
http_reason(CURLcode rc, int too_large)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return "connect-failed";
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return "resolve-failed";
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return "tls-error";
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return "connection-lost";
	case CURLE_FILESIZE_EXCEEDED:
		return "body-too-large";
	case CURLE_WRITE_ERROR:
		if (too_large)
			return "body-too-large";
		return "transport-error";
	default:
		return "transport-error";
	}
}

/* Whether a failed request may have reached the peer. */
static int
http_maybe_sent(CURL *easy, CURLcode rc, const char *reason)
{
	curl_off_t pretransfer = 0;
	long request_size = 0;

	/* These fail before a single byte of the request is written. */
	if (strcmp(reason, "connect-failed") == 0 ||
	    strcmp(reason, "resolve-failed") == 0 ||
	    strcmp(reason, "tls-error") == 0)
		return 0;

	if (curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size) ==
	    CURLE_OK && request_size > 0)
		return 1;
	if (rc == CURLE_OPERATION_TIMEDOUT &&
	    curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T,
	    &pretransfer) == CURLE_OK && pretransfer > 0)
		return 1;
	return 0;
}

static void
http_response_fill(struct http_request *req, CURLcode rc,
    struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	if (curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE,
	    &resp->status) != CURLE_OK)
		resp->status = 0;
	resp->latency_ms = util_mono_ms() - req->start_ms;
	resp->retry_after_raw = req->retry_after;
	resp->retry_after = http_retry_after_parse(req->retry_after);
	resp->error = (int)rc;
	resp->body = "";

	if (rc == CURLE_OK) {
		resp->ok = 1;
		resp->maybe_sent = 1;
		if (req->body != NULL) {
			resp->body = req->body;
			resp->body_len = req->body_len;
		}
		return;
	}
	resp->reason = http_reason(rc, req->too_large);
	resp->maybe_sent = http_maybe_sent(req->easy, rc, resp->reason);
}

/*
 * Ends one transfer: the handle goes back to the pool before the callback
 * runs, so that the callback may start the next request; the answer's
 * buffers are kept apart until the callback has returned.
 */
static void
http_finish(struct http *http, CURL *easy, CURLcode rc)
{
	struct http_response resp;
	struct http_request *req;
	char *priv = NULL, *body, *retry_after;
	http_cb cb;
	void *arg;

	if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
	    priv == NULL)
		return;
	req = (struct http_request *)(void *)priv;

	http_response_fill(req, rc, &resp);
	curl_multi_remove_handle(http->multi, easy);
	LIST_REMOVE(req, entry);
	http->inflight--;

	cb = req->cb;
	arg = req->arg;
	body = req->body;
	retry_after = req->retry_after;
	req->body = NULL;
	req->retry_after = NULL;
	http_request_put(http, req);

	if (cb != NULL)
		cb(arg, &resp);
	free(body);
	free(retry_after);
}

/* The only place where finished transfers are read and removed. */
static void
http_check_done(struct http *http)
{
	CURLMsg *msg;
	CURL *easy;
	CURLcode rc;
	int left;

	while ((msg = curl_multi_info_read(http->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		easy = msg->easy_handle;
		rc = msg->data.result;
		http_finish(http, easy, rc);
	}
}

static void
http_socket_fire(evutil_socket_t fd, short what, void *arg)
{
	struct http *http = arg;
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(http->multi, fd, flags, &running);
	http_check_done(http);
}

static void
http_timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct http *http = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0,
	    &running);
	http_check_done(http);
}

static void
http_socket_free(struct http_socket *s)
{
	LIST_REMOVE(s, entry);
	event_free(s->ev);
	free(s);
}

/*
 * libcurl says what it waits for on a socket. Failures return 0 all the
 * same: -1 would make the whole multi handle unusable, whereas a socket
 * left unwatched only costs its transfer, which then times out.
 */
static int
http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg,
    void *sockp)
{
	struct http *http = arg;
	struct http_socket *s = sockp;
	short events = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			http_socket_free(s);
			log_debug("http socket-remove fd=%d", (int)fd);
		}
		return 0;
	}

	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;

	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return 0;
		s->fd = fd;
		s->ev = event_new(http->base, fd, events, http_socket_fire,
		    http);
		if (s->ev == NULL) {
			free(s);
			return 0;
		}
		LIST_INSERT_HEAD(&http->sockets, s, entry);
		if (curl_multi_assign(http->multi, fd, s) != CURLM_OK) {
			http_socket_free(s);
			return 0;
		}
		log_debug("http socket-add fd=%d", (int)fd);
	} else {
		event_del(s->ev);
		event_assign(s->ev, http->base, fd, events, http_socket_fire,
		    http);
	}

	if (events & (EV_READ | EV_WRITE))
		event_add(s->ev, NULL);
	return 0;
}

/*
 * libcurl asks for one timeout at a time. Zero means as soon as possible:
 * it still goes through the loop, as libcurl must not be re-entered here.
 */
static int
http_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct http *http = arg;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(http->timer);
		return 0;
	}

	/*
	 * "At once" runs in this very pass of the loop, before the lower
	 * priority store commit: a new request leaves before the fsync, not
	 * after it. The callback itself still calls no libcurl function.
	 */
	if (timeout_ms == 0) {
		evtimer_del(http->timer);
		event_active(http->timer, EV_TIMEOUT, 0);
		return 0;
	}
	evtimer_add(http->timer, util_timeval(timeout_ms, &tv));
	return 0;
}

static void
http_apply_options(struct http *http, const struct http_options *o)
{
	const char *ca = o->ca_file;
	char *copy = NULL;
	long conns = o->max_connections > 0 ? o->max_connections : 0;

	if (ca != NULL && *ca == '\0')
		ca = NULL;
	if ((ca == NULL) != (http->ca_file == NULL) ||
	    (ca != NULL && strcmp(ca, http->ca_file) != 0)) {
		/* Out of memory keeps the old CA file rather than none. */
		if (ca == NULL || (copy = strdup(ca)) != NULL) {
			free(http->ca_file);
			http->ca_file = copy;
			http->generation++;
			http_drop_idle(http);
		}
	}

	http->options = *o;
	http->options.ca_file = http->ca_file;
	/* Keeps room for the NUL and the doubling in http_write_cb. */
	if (http->options.max_body > SIZE_MAX / 4)
		http->options.max_body = SIZE_MAX / 4;

	curl_multi_setopt(http->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
	curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, conns);
}

struct http *
http_new(struct event_base *base, const struct http_options *options,
    char *err, size_t errlen)
{
	struct http_request *req;
	struct http *http;

	if (http_global_init(err, errlen) == -1)
		return NULL;

	if ((http = calloc(1, sizeof(*http))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	http->base = base;
	LIST_INIT(&http->idle);
	LIST_INIT(&http->busy);
	LIST_INIT(&http->sockets);

	if ((http->multi = curl_multi_init()) == NULL) {
		snprintf(err, errlen, "curl_multi_init failed");
		goto fail;
	}
	if ((http->timer = evtimer_new(base, http_timer_fire, http)) == NULL) {
		snprintf(err, errlen, "evtimer_new failed");
		goto fail;
	}
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION,
	    http_socket_cb);
	curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
	http_apply_options(http, options);

	/* A first handle now, so that a libcurl without HTTPS fails here. */
	if ((req = http_request_new(http)) == NULL) {
		snprintf(err, errlen, "cannot set up a libcurl handle "
		    "for http and https");
		goto fail;
	}
	LIST_INSERT_HEAD(&http->idle, req, entry);
	return http;

fail:
	http_free(http);
	return NULL;
}

void
http_set_options(struct http *http, const struct http_options *options)
{
	http_apply_options(http, options);
}

int
http_get(struct http *http, const char *url, http_cb cb, void *arg)
{
	struct http_request *req;
	CURL *e;
	curl_off_t max_file;

	if ((req = http_request_take(http)) == NULL)
		return -1;
	e = req->easy;

	/* Not curl_easy_reset, which would drop the options set once. */
	max_file = (curl_off_t)http->options.max_body;
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    http->options.timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    http->options.connect_timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
	    max_file > 0 ? max_file : (curl_off_t)0) != CURLE_OK)
		goto fail;
	req->cb = cb;
	req->arg = arg;
	req->max_body = http->options.max_body;
	req->start_ms = util_mono_ms();

	if (curl_multi_add_handle(http->multi, e) != CURLM_OK)
		goto fail;
	LIST_INSERT_HEAD(&http->busy, req, entry);
	http->inflight++;
	return 0;

fail:
	http_request_put(http, req);
	return -1;
}

size_t
http_inflight(const struct http *http)
{
	return http->inflight;
}

/* Teardown in order: easy handles, the multi handle, then the events. */
void
http_free(struct http *http)
{
	struct http_request *req;
	struct http_socket *s;

	if (http == NULL)
		return;

	while ((req = LIST_FIRST(&http->busy)) != NULL) {
		LIST_REMOVE(req, entry);
		curl_multi_remove_handle(http->multi, req->easy);
		http_request_destroy(req);
	}
	http->inflight = 0;
	http_drop_idle(http);

	if (http->multi != NULL)
		curl_multi_cleanup(http->multi);
	while ((s = LIST_FIRST(&http->sockets)) != NULL)
		http_socket_free(s);
	if (http->timer != NULL)
		event_free(http->timer);
	free(http->ca_file);
	free(http);
}
