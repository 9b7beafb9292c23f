/*
 * Unit tests for http.c: a client and an evhttp server on 127.0.0.1 share
 * one event_base, so every transfer really goes through the loop.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "http.h"
#include "util.h"

#define TEST_LIMIT_MS	10000
#define TEST_BIG	(64 * 1024)
#define TEST_MAX_BODY	4096
#define TEST_MAX_RESULTS	128
#define TEST_RETRY_DATE	"Wed, 21 Oct 2015 07:28:00 GMT"
#define TEST_PLAIN_MAX	8

/* An answer of /slow waiting for its timer. */
struct slow {
	TAILQ_ENTRY(slow)	 entry;
	struct evhttp_request	*req;
	struct event		*ev;
};

TAILQ_HEAD(slows, slow);

/* What one callback saw, copied out of the response. */
struct result {
	int		 ok;
	long		 status;
	char		 body[64];
	size_t		 body_len;
	int		 error;
	char		 reason[32];
	int		 maybe_sent;
	int64_t		 retry_after;
	int		 has_raw;
	char		 raw[64];
	int64_t		 latency_ms;
};

static struct event_base	*base;
static struct evhttp		*server;
static struct slows		 slows;
static int			 port;
static int			 connections;
static struct http		*client;
static struct result		 results[TEST_MAX_RESULTS];
static int			 done;
static int			 timed_out;
static int			 plain_fds[TEST_PLAIN_MAX];
static int			 nplain;
static int			 chain_left;
static int			 chain_get_rc;
static size_t			 chain_inflight;

static void
slow_answer(struct slow *s)
{
	struct evbuffer *buf = evbuffer_new();

	evbuffer_add_printf(buf, "slow");
	evhttp_send_reply(s->req, 200, "OK", buf);
	evbuffer_free(buf);
	TAILQ_REMOVE(&slows, s, entry);
	event_free(s->ev);
	free(s);
}

static void
slow_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	slow_answer(arg);
}

static void
server_slow(struct evhttp_request *req, void *arg)
{
	struct evkeyvalq query;
	const char *q, *ms;
	struct timeval tv;
	struct slow *s;
	long n = 0;

	(void)arg;
	TAILQ_INIT(&query);
	q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (q != NULL && evhttp_parse_query_str(q, &query) == 0 &&
	    (ms = evhttp_find_header(&query, "ms")) != NULL)
		n = strtol(ms, NULL, 10);
	evhttp_clear_headers(&query);

	s = calloc(1, sizeof(*s));
	s->req = req;
	s->ev = evtimer_new(base, slow_fire, s);
	TAILQ_INSERT_TAIL(&slows, s, entry);
	tv.tv_sec = n / 1000;
	tv.tv_usec = (n % 1000) * 1000;
	evtimer_add(s->ev, &tv);
}

static void
server_text(struct evhttp_request *req, int code, const char *text)
{
	struct evbuffer *buf = evbuffer_new();

	evbuffer_add(buf, text, strlen(text));
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Other", buf);
	evbuffer_free(buf);
}

static void
server_ok(struct evhttp_request *req, void *arg)
{
	(void)arg;
	server_text(req, 200, "hello");
}

static void
server_big(struct evhttp_request *req, void *arg)
{
	struct evbuffer *buf = evbuffer_new();
	char *big = malloc(TEST_BIG);

	(void)arg;
	memset(big, 'x', TEST_BIG);
	evbuffer_add(buf, big, TEST_BIG);
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
	free(big);
}

/* The same without Content-Length, so that only the size read counts. */
static void
server_big_chunked(struct evhttp_request *req, void *arg)
{
	struct evbuffer *buf = evbuffer_new();
	char piece[1024];
	int i;

	(void)arg;
	memset(piece, 'y', sizeof(piece));
	evhttp_send_reply_start(req, 200, "OK");
	for (i = 0; i < TEST_BIG / (int)sizeof(piece); i++) {
		evbuffer_add(buf, piece, sizeof(piece));
		evhttp_send_reply_chunk(req, buf);
	}
	evhttp_send_reply_end(req);
	evbuffer_free(buf);
}

static void
server_retry(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Retry-After", "7");
	server_text(req, 503, "busy");
}

static void
server_retry_date(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "RETRY-AFTER", TEST_RETRY_DATE);
	server_text(req, 503, "busy");
}

static void
server_redirect(struct evhttp_request *req, void *arg)
{
	(void)arg;
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Location", "/ok");
	server_text(req, 302, "moved");
}

static void
server_close_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evhttp_connection_free(arg);
}

/* Drops the connection unanswered, outside evhttp's own read callback. */
static void
server_close(struct evhttp_request *req, void *arg)
{
	struct timeval zero = { 0, 0 };

	(void)arg;
	event_base_once(base, -1, EV_TIMEOUT, server_close_fire,
	    evhttp_request_get_connection(req), &zero);
}

static struct bufferevent *
server_bev(struct event_base *b, void *arg)
{
	(void)arg;
	connections++;
	return bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
}

/*
 * Answers every connection at once with a line of plain text, and keeps it
 * open, so that a TLS client reads it where the server's hello should be.
 */
static void
plain_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int len, void *arg)
{
	static const char line[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
	ssize_t n;

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	n = write(fd, line, sizeof(line) - 1);
	(void)n;
	if (nplain < TEST_PLAIN_MAX)
		plain_fds[nplain++] = fd;
	else
		close(fd);
}

static void
server_start(void)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	TAILQ_INIT(&slows);
	connections = 0;
	server = evhttp_new(base);
	ck_assert_ptr_nonnull(server);
	evhttp_set_bevcb(server, server_bev, NULL);
	evhttp_set_cb(server, "/ok", server_ok, NULL);
	evhttp_set_cb(server, "/slow", server_slow, NULL);
	evhttp_set_cb(server, "/big", server_big, NULL);
	evhttp_set_cb(server, "/big-chunked", server_big_chunked, NULL);
	evhttp_set_cb(server, "/retry", server_retry, NULL);
	evhttp_set_cb(server, "/retry-date", server_retry_date, NULL);
	evhttp_set_cb(server, "/redirect", server_redirect, NULL);
	evhttp_set_cb(server, "/close", server_close, NULL);

	bound = evhttp_bind_socket_with_handle(server, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bound);
	ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
}

static void
server_stop(void)
{
	/* Answering frees requests whose client has gone away. */
	while (!TAILQ_EMPTY(&slows))
		slow_answer(TAILQ_FIRST(&slows));
	evhttp_free(server);
	server = NULL;
}

static struct http_options
test_options(void)
{
	struct http_options o;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = 5000;
	o.connect_timeout_ms = 2000;
	o.ca_file = NULL;
	o.max_connections = 8;
	o.max_body = TEST_MAX_BODY;
	return o;
}

static void
setup(void)
{
	struct http_options o = test_options();
	char err[256];

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	server_start();
	client = http_new(base, &o, err, sizeof(err));
	ck_assert_msg(client != NULL, "http_new: %s", err);
	memset(results, 0, sizeof(results));
	done = 0;
	timed_out = 0;
}

static void
teardown(void)
{
	http_free(client);
	client = NULL;
	server_stop();
	event_base_free(base);
	base = NULL;
}

static void
test_url(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "http://127.0.0.1:%d%s", port, path);
}

static void
record(void *arg, const struct http_response *r)
{
	struct result *res;

	(void)arg;
	if (done >= TEST_MAX_RESULTS)
		return;
	res = &results[done++];
	res->ok = r->ok;
	res->status = r->status;
	res->body_len = r->body_len;
	snprintf(res->body, sizeof(res->body), "%s", r->body);
	res->error = r->error;
	snprintf(res->reason, sizeof(res->reason), "%s",
	    r->reason != NULL ? r->reason : "(none)");
	res->maybe_sent = r->maybe_sent;
	res->retry_after = r->retry_after;
	res->has_raw = r->retry_after_raw != NULL;
	if (res->has_raw)
		snprintf(res->raw, sizeof(res->raw), "%s", r->retry_after_raw);
	res->latency_ms = r->latency_ms;
}

static void
guard_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	timed_out = 1;
	event_base_loopbreak(base);
}

/* Runs the loop until COUNT callbacks were seen or LIMIT_MS passed. */
static void
wait_for(int count, long limit_ms)
{
	struct timeval tv = { limit_ms / 1000, (limit_ms % 1000) * 1000 };
	struct event *guard = evtimer_new(base, guard_fire, NULL);

	timed_out = 0;
	evtimer_add(guard, &tv);
	while (done < count && !timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
}

/* Runs the loop for MS whatever happens. */
static void
run_for(long ms)
{
	wait_for(TEST_MAX_RESULTS + 1, ms);
}

static void
get_one(const char *path)
{
	char url[128];

	test_url(url, sizeof(url), path);
	ck_assert_int_eq(http_get(client, url, record, NULL), 0);
	wait_for(1, TEST_LIMIT_MS);
	ck_assert_int_eq(done, 1);
}

START_TEST(test_get_returns_status_and_body)
{
	char url[128];

	test_url(url, sizeof(url), "/ok");
	ck_assert_int_eq(http_get(client, url, record, NULL), 0);
	ck_assert_int_eq(done, 0);
	ck_assert_uint_eq(http_inflight(client), 1);
	wait_for(1, TEST_LIMIT_MS);

	ck_assert_int_eq(done, 1);
	ck_assert_uint_eq(http_inflight(client), 0);
	ck_assert_int_eq(results[0].ok, 1);
	ck_assert_int_eq(results[0].status, 200);
	ck_assert_str_eq(results[0].body, "hello");
	ck_assert_uint_eq(results[0].body_len, 5);
	ck_assert_int_eq(results[0].error, 0);
	ck_assert_str_eq(results[0].reason, "(none)");
	ck_assert_int_eq(results[0].maybe_sent, 1);
	ck_assert_int_eq(results[0].retry_after, -1);
	ck_assert_int_eq(results[0].has_raw, 0);
	ck_assert_int_ge(results[0].latency_ms, 0);
	ck_assert_int_lt(results[0].latency_ms, TEST_LIMIT_MS);
}
END_TEST

START_TEST(test_concurrent_gets_run_at_once)
{
	struct http_options o = test_options();
	char url[128];
	int64_t start, elapsed;
	int i;

	o.max_connections = 100;
	http_set_options(client, &o);
	test_url(url, sizeof(url), "/slow?ms=50");

	start = util_mono_ms();
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(http_get(client, url, record, NULL), 0);
	ck_assert_uint_eq(http_inflight(client), 100);
	wait_for(100, TEST_LIMIT_MS);
	elapsed = util_mono_ms() - start;

	ck_assert_int_eq(done, 100);
	for (i = 0; i < 100; i++) {
		ck_assert_int_eq(results[i].ok, 1);
		ck_assert_int_eq(results[i].status, 200);
		ck_assert_str_eq(results[i].body, "slow");
	}
	/* One after the other they would take 5 s. */
	ck_assert_int_lt(elapsed, 2500);
	ck_assert_int_gt(connections, 1);
	ck_assert_int_le(connections, 100);
}
END_TEST

START_TEST(test_connections_capped_by_max_connections)
{
	struct http_options o = test_options();
	char url[128];
	int64_t start, elapsed;
	int i;

	o.max_connections = 4;
	http_set_options(client, &o);
	test_url(url, sizeof(url), "/slow?ms=50");

	start = util_mono_ms();
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(http_get(client, url, record, NULL), 0);
	wait_for(20, TEST_LIMIT_MS);
	elapsed = util_mono_ms() - start;

	ck_assert_int_eq(done, 20);
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(results[i].ok, 1);
	ck_assert_int_le(connections, 4);
	/* Twenty over four connections are five rounds of 50 ms. */
	ck_assert_int_ge(elapsed, 5 * 50);
}
END_TEST

START_TEST(test_sequential_gets_reuse_one_connection)
{
	char url[128];
	int i;

	test_url(url, sizeof(url), "/ok");
	for (i = 0; i < 20; i++) {
		ck_assert_int_eq(http_get(client, url, record, NULL), 0);
		wait_for(i + 1, TEST_LIMIT_MS);
		ck_assert_int_eq(done, i + 1);
		ck_assert_int_eq(results[i].status, 200);
	}
	ck_assert_int_eq(connections, 1);
}
END_TEST

START_TEST(test_timeout_after_sending_is_maybe_sent)
{
	struct http_options o = test_options();

	o.timeout_ms = 200;
	http_set_options(client, &o);
	get_one("/slow?ms=2000");

	ck_assert_int_eq(results[0].ok, 0);
	ck_assert_str_eq(results[0].reason, "timeout");
	ck_assert_int_eq(results[0].error, CURLE_OPERATION_TIMEDOUT);
	ck_assert_int_eq(results[0].maybe_sent, 1);
	ck_assert_int_eq(results[0].status, 0);
	ck_assert_int_ge(results[0].latency_ms, 150);
	ck_assert_int_lt(results[0].latency_ms, 1500);
}
END_TEST

START_TEST(test_refused_port_is_connect_failed)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char url[128];
	int fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok",
	    ntohs(sin.sin_port));
	ck_assert_int_eq(http_get(client, url, record, NULL), 0);
	ck_assert_int_eq(done, 0);
	wait_for(1, TEST_LIMIT_MS);

	ck_assert_int_eq(done, 1);
	ck_assert_int_eq(results[0].ok, 0);
	ck_assert_str_eq(results[0].reason, "connect-failed");
	ck_assert_int_eq(results[0].error, CURLE_COULDNT_CONNECT);
	ck_assert_int_eq(results[0].maybe_sent, 0);
	ck_assert_int_eq(results[0].status, 0);
}
END_TEST

START_TEST(test_body_over_max_body_is_too_large)
{
	get_one("/big");

	ck_assert_int_eq(results[0].ok, 0);
	ck_assert_str_eq(results[0].reason, "body-too-large");
	ck_assert_int_eq(results[0].maybe_sent, 1);
	ck_assert_int_eq(results[0].status, 200);
	ck_assert_uint_eq(results[0].body_len, 0);
}
END_TEST

START_TEST(test_chunked_body_over_max_body_is_too_large)
{
	get_one("/big-chunked");

	ck_assert_int_eq(results[0].ok, 0);
	ck_assert_str_eq(results[0].reason, "body-too-large");
	ck_assert_int_eq(results[0].error, CURLE_WRITE_ERROR);
	ck_assert_int_eq(results[0].maybe_sent, 1);
}
END_TEST

START_TEST(test_body_within_max_body_is_whole)
{
	struct http_options o = test_options();

	o.max_body = TEST_BIG;
	http_set_options(client, &o);
	get_one("/big-chunked");

	ck_assert_int_eq(results[0].ok, 1);
	ck_assert_uint_eq(results[0].body_len, TEST_BIG);
}
END_TEST

START_TEST(test_retry_after_seconds_in_ms)
{
	get_one("/retry");

	ck_assert_int_eq(results[0].ok, 1);
	ck_assert_int_eq(results[0].status, 503);
	ck_assert_int_eq(results[0].retry_after, 7000);
	ck_assert_int_eq(results[0].has_raw, 1);
	ck_assert_str_eq(results[0].raw, "7");
}
END_TEST

START_TEST(test_retry_after_date_kept_raw)
{
	get_one("/retry-date");

	ck_assert_int_eq(results[0].status, 503);
	ck_assert_int_eq(results[0].retry_after, -1);
	ck_assert_int_eq(results[0].has_raw, 1);
	ck_assert_str_eq(results[0].raw, TEST_RETRY_DATE);
}
END_TEST

START_TEST(test_closed_connection_is_connection_lost)
{
	get_one("/close");

	ck_assert_int_eq(results[0].ok, 0);
	ck_assert_str_eq(results[0].reason, "connection-lost");
	ck_assert_int_eq(results[0].error, CURLE_GOT_NOTHING);
	ck_assert_int_eq(results[0].maybe_sent, 1);
}
END_TEST

START_TEST(test_redirect_not_followed)
{
	get_one("/redirect");

	ck_assert_int_eq(results[0].ok, 1);
	ck_assert_int_eq(results[0].status, 302);
	ck_assert_str_eq(results[0].body, "moved");
}
END_TEST

START_TEST(test_file_scheme_refused)
{
	ck_assert_int_eq(http_get(client, "file:///etc/passwd", record, NULL),
	    0);
	wait_for(1, TEST_LIMIT_MS);

	ck_assert_int_eq(done, 1);
	ck_assert_int_eq(results[0].ok, 0);
	ck_assert_int_eq(results[0].error, CURLE_UNSUPPORTED_PROTOCOL);
	ck_assert_str_eq(results[0].reason, "transport-error");
	ck_assert_int_eq(results[0].maybe_sent, 0);
}
END_TEST

START_TEST(test_https_to_plain_server_is_tls_error)
{
	struct evconnlistener *l;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char url[128];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = evconnlistener_new_bind(base, plain_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE, -1, (struct sockaddr *)&sin, sizeof(sin));
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(getsockname(evconnlistener_get_fd(l),
	    (struct sockaddr *)&sin, &len), 0);
	nplain = 0;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/ok",
	    ntohs(sin.sin_port));
	ck_assert_int_eq(http_get(client, url, record, NULL), 0);
	wait_for(1, TEST_LIMIT_MS);
	evconnlistener_free(l);
	while (nplain > 0)
		close(plain_fds[--nplain]);

	ck_assert_int_eq(done, 1);
	ck_assert_int_eq(results[0].ok, 0);
	ck_assert_str_eq(results[0].reason, "tls-error");
	ck_assert_int_eq(results[0].error, CURLE_SSL_CONNECT_ERROR);
	ck_assert_int_eq(results[0].maybe_sent, 0);
}
END_TEST

static void
chain(void *arg, const struct http_response *r)
{
	record(arg, r);
	chain_inflight = http_inflight(client);
	if (chain_left-- > 0)
		chain_get_rc |= http_get(client, arg, chain, arg);
}

START_TEST(test_callback_may_start_request)
{
	char url[128];

	test_url(url, sizeof(url), "/ok");
	chain_left = 2;
	chain_get_rc = 0;
	chain_inflight = 99;
	ck_assert_int_eq(http_get(client, url, chain, url), 0);
	wait_for(3, TEST_LIMIT_MS);

	ck_assert_int_eq(done, 3);
	ck_assert_int_eq(chain_get_rc, 0);
	ck_assert_uint_eq(chain_inflight, 0);
	ck_assert_int_eq(results[2].status, 200);
	ck_assert_str_eq(results[2].body, "hello");
	ck_assert_uint_eq(http_inflight(client), 0);
}
END_TEST

START_TEST(test_free_in_flight_calls_no_callback)
{
	char url[128];
	int i;

	test_url(url, sizeof(url), "/slow?ms=1000");
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(http_get(client, url, record, NULL), 0);
	run_for(200);
	ck_assert_int_eq(TAILQ_EMPTY(&slows), 0);
	ck_assert_uint_eq(http_inflight(client), 10);

	http_free(client);
	client = NULL;
	run_for(200);
	ck_assert_int_eq(done, 0);
}
END_TEST

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("client");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_get_returns_status_and_body);
	tcase_add_test(tc, test_concurrent_gets_run_at_once);
	tcase_add_test(tc, test_connections_capped_by_max_connections);
	tcase_add_test(tc, test_sequential_gets_reuse_one_connection);
	tcase_add_test(tc, test_timeout_after_sending_is_maybe_sent);
	tcase_add_test(tc, test_refused_port_is_connect_failed);
	tcase_add_test(tc, test_body_over_max_body_is_too_large);
	tcase_add_test(tc, test_chunked_body_over_max_body_is_too_large);
	tcase_add_test(tc, test_body_within_max_body_is_whole);
	tcase_add_test(tc, test_retry_after_seconds_in_ms);
	tcase_add_test(tc, test_retry_after_date_kept_raw);
	tcase_add_test(tc, test_closed_connection_is_connection_lost);
	tcase_add_test(tc, test_redirect_not_followed);
	tcase_add_test(tc, test_file_scheme_refused);
	tcase_add_test(tc, test_https_to_plain_server_is_tls_error);
	tcase_add_test(tc, test_callback_may_start_request);
	tcase_add_test(tc, test_free_in_flight_calls_no_callback);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	/* The daemon ignores SIGPIPE; a peer that closes must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(http_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
