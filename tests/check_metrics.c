/*
 * Unit tests for metrics.c: the text-format writer line by line, and the
 * listener through an evhttp client on 127.0.0.1 in the same event_base.
 */
#include <sys/wait.h>

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "metrics.h"

#define TEST_LIMIT_SEC	5
#define TEST_BODY_MAX	8192

/* What one request got back. */
struct reply {
	int	 done;
	int	 code;		/* 0 when the request failed */
	char	 type[128];
	char	 allow[64];
	char	 body[TEST_BODY_MAX];
	size_t	 len;
};

static struct event_base *base;
static struct metrics_page *page;
static int fill_calls;

static void
setup(void)
{
	base = event_base_new();
	page = metrics_page_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_ptr_nonnull(page);
	fill_calls = 0;
}

static void
teardown(void)
{
	metrics_page_free(page);
	event_base_free(base);
}

static void
expect_text(const char *expected)
{
	ck_assert_msg(metrics_page_error(page) == NULL, "page error: %s",
	    metrics_page_error(page));
	ck_assert_str_eq(metrics_page_text(page, NULL), expected);
}

static void
expect_error(const char *part)
{
	const char *error = metrics_page_error(page);

	ck_assert_msg(error != NULL, "no error, wanted one with \"%s\"", part);
	ck_assert_msg(strstr(error, part) != NULL, "error \"%s\" lacks \"%s\"",
	    error, part);
}

static const char *
value(double v)
{
	static char buf[METRICS_VALUE_MAX];

	return metrics_format_value(v, buf, sizeof(buf));
}

START_TEST(family_writes_help_then_type)
{
	metrics_family(page, "smsgw_inflight", "gauge", "Requests in flight.");
	expect_text("# HELP smsgw_inflight Requests in flight.\n"
	    "# TYPE smsgw_inflight gauge\n");
}
END_TEST

START_TEST(help_escapes_backslash_and_newline_only)
{
	metrics_family(page, "a", "gauge", "C:\\dir \"quoted\"\nsecond line");
	expect_text("# HELP a C:\\\\dir \"quoted\"\\nsecond line\n"
	    "# TYPE a gauge\n");
}
END_TEST

START_TEST(samples_with_and_without_labels)
{
	static const struct metrics_label labels[] = {
		{ "state", "sent" }, { "priority", "1" }, { NULL, NULL }
	};
	static const struct metrics_label none[] = { { NULL, NULL } };

	metrics_family(page, "smsgw_messages_total", "counter", "Messages.");
	metrics_sample(page, "smsgw_messages_total", labels, 12);
	metrics_family(page, "smsgw_inflight", "gauge", "In flight.");
	metrics_sample(page, "smsgw_inflight", NULL, 3);
	metrics_family(page, "smsgw_up", "gauge", "Up.");
	metrics_sample(page, "smsgw_up", none, 1);
	expect_text("# HELP smsgw_messages_total Messages.\n"
	    "# TYPE smsgw_messages_total counter\n"
	    "smsgw_messages_total{state=\"sent\",priority=\"1\"} 12\n"
	    "# HELP smsgw_inflight In flight.\n"
	    "# TYPE smsgw_inflight gauge\n"
	    "smsgw_inflight 3\n"
	    "# HELP smsgw_up Up.\n"
	    "# TYPE smsgw_up gauge\n"
	    "smsgw_up 1\n");
}
END_TEST

START_TEST(single_writes_a_family_and_its_one_sample)
{
	metrics_single(page, "smsgw_inflight", "gauge", "In flight.", 3);
	metrics_single(page, "smsgw_inbound_total", "counter", "Inbound.",
	    0.5);
	expect_text("# HELP smsgw_inflight In flight.\n"
	    "# TYPE smsgw_inflight gauge\n"
	    "smsgw_inflight 3\n"
	    "# HELP smsgw_inbound_total Inbound.\n"
	    "# TYPE smsgw_inbound_total counter\n"
	    "smsgw_inbound_total 0.5\n");
}
END_TEST

START_TEST(single_checks_its_family_like_metrics_family)
{
	metrics_single(page, "smsgw_inbound", "counter", "Inbound.", 1);
	expect_error("_total");
}
END_TEST

START_TEST(label_values_escape_backslash_quote_newline)
{
	static const struct metrics_label labels[] = {
		{ "reason", "say \"hi\"\\\nbye" }, { NULL, NULL }
	};

	metrics_family(page, "a", "gauge", "A.");
	metrics_sample(page, "a", labels, 0);
	expect_text("# HELP a A.\n# TYPE a gauge\n"
	    "a{reason=\"say \\\"hi\\\"\\\\\\nbye\"} 0\n");
}
END_TEST

START_TEST(integral_values_print_as_integers)
{
	ck_assert_str_eq(value(0), "0");
	ck_assert_str_eq(value(-0.0), "0");
	ck_assert_str_eq(value(42), "42");
	ck_assert_str_eq(value(-7), "-7");
	ck_assert_str_eq(value(1e15), "1000000000000000");
	ck_assert_str_eq(value(9007199254740993.0), "9007199254740992");
	ck_assert_str_eq(value(4e18), "4000000000000000000");
}
END_TEST

START_TEST(fractions_print_short_and_read_back_exactly)
{
	static const double samples[] = {
		0.5, 0.1, 1.0 / 3, 2.5e-7, 123456.789, -0.001, 5e-324,
		0.1 + 0.2,
	};
	size_t i;

	ck_assert_str_eq(value(0.5), "0.5");
	ck_assert_str_eq(value(0.1), "0.1");
	ck_assert_str_eq(value(0.005), "0.005");
	ck_assert_str_eq(value(-2.25), "-2.25");
	ck_assert_str_eq(value(2.5e-7), "2.5e-07");
	ck_assert_str_eq(value(0.1 + 0.2), "0.30000000000000004");
	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
		ck_assert_msg(strtod(value(samples[i]), NULL) == samples[i],
		    "%s does not read back", value(samples[i]));
}
END_TEST

START_TEST(huge_values_use_exponents)
{
	ck_assert_str_eq(value(1e300), "1e+300");
	ck_assert_str_eq(value(-1.5e19), "-1.5e+19");
	/* 2^64 needs all 17 digits to read back as itself. */
	ck_assert_str_eq(value(18446744073709551616.0),
	    "1.8446744073709552e+19");
}
END_TEST

START_TEST(infinities_and_nan_as_prometheus_spells_them)
{
	metrics_family(page, "a", "gauge", "A.");
	metrics_sample(page, "a", (struct metrics_label[]){ { "x", "1" },
	    { NULL, NULL } }, INFINITY);
	metrics_sample(page, "a", (struct metrics_label[]){ { "x", "2" },
	    { NULL, NULL } }, -INFINITY);
	metrics_sample(page, "a", (struct metrics_label[]){ { "x", "3" },
	    { NULL, NULL } }, NAN);
	expect_text("# HELP a A.\n# TYPE a gauge\n"
	    "a{x=\"1\"} +Inf\na{x=\"2\"} -Inf\na{x=\"3\"} NaN\n");
}
END_TEST

static const double test_bounds[] = { 0.005, 0.01, 0.1, 1, 10 };

START_TEST(histogram_buckets_are_cumulative_up_to_inf)
{
	uint64_t counts[6] = { 0 };
	struct metrics_histogram h = { test_bounds, 5, counts, 0, 0 };

	metrics_histogram_observe(&h, 0.001);
	metrics_histogram_observe(&h, 0.005);	/* le: on the bound counts */
	metrics_histogram_observe(&h, 0.05);
	metrics_histogram_observe(&h, 0.5);
	metrics_histogram_observe(&h, 100);
	ck_assert_uint_eq(counts[0], 2);
	ck_assert_uint_eq(counts[1], 0);
	ck_assert_uint_eq(counts[5], 1);
	ck_assert_uint_eq(h.count, 5);

	metrics_family(page, "lat_seconds", "histogram", "Latency.");
	metrics_histogram_write(page, "lat_seconds", NULL, &h);
	expect_text("# HELP lat_seconds Latency.\n"
	    "# TYPE lat_seconds histogram\n"
	    "lat_seconds_bucket{le=\"0.005\"} 2\n"
	    "lat_seconds_bucket{le=\"0.01\"} 2\n"
	    "lat_seconds_bucket{le=\"0.1\"} 3\n"
	    "lat_seconds_bucket{le=\"1\"} 4\n"
	    "lat_seconds_bucket{le=\"10\"} 4\n"
	    "lat_seconds_bucket{le=\"+Inf\"} 5\n"
	    "lat_seconds_sum 100.556\n"
	    "lat_seconds_count 5\n");
}
END_TEST

START_TEST(histogram_labels_come_before_le)
{
	static const struct metrics_label labels[] = {
		{ "op", "message_send" }, { NULL, NULL }
	};
	uint64_t counts[2] = { 0 };
	struct metrics_histogram h = { test_bounds, 1, counts, 0, 0 };

	metrics_histogram_observe(&h, 2);
	metrics_family(page, "h", "histogram", "H.");
	metrics_histogram_write(page, "h", labels, &h);
	expect_text("# HELP h H.\n# TYPE h histogram\n"
	    "h_bucket{op=\"message_send\",le=\"0.005\"} 0\n"
	    "h_bucket{op=\"message_send\",le=\"+Inf\"} 1\n"
	    "h_sum{op=\"message_send\"} 2\n"
	    "h_count{op=\"message_send\"} 1\n");
}
END_TEST

START_TEST(histogram_ignores_nan)
{
	uint64_t counts[6] = { 0 };
	struct metrics_histogram h = { test_bounds, 5, counts, 0, 0 };

	metrics_histogram_observe(&h, 0.2);
	metrics_histogram_observe(&h, NAN);
	ck_assert_uint_eq(h.count, 1);
	ck_assert_uint_eq(counts[5], 0);
	ck_assert(h.sum == 0.2);
}
END_TEST

START_TEST(bad_names_and_types_are_errors)
{
	static const struct metrics_label bad[] = {
		{ "1x", "v" }, { NULL, NULL }
	};
	static const struct metrics_label reserved[] = {
		{ "__name__", "v" }, { NULL, NULL }
	};

	metrics_family(page, "smsgw-up", "gauge", "Up.");
	expect_error("bad metric name \"smsgw-up\"");
	metrics_page_reset(page);
	metrics_family(page, "a", "gauges", "A.");
	expect_error("bad type \"gauges\"");
	metrics_page_reset(page);
	metrics_family(page, "a", "gauge", "A.");
	metrics_sample(page, "a", bad, 1);
	expect_error("bad label name \"1x\"");
	metrics_page_reset(page);
	metrics_family(page, "a", "gauge", "A.");
	metrics_sample(page, "a", reserved, 1);
	expect_error("bad label name \"__name__\"");
}
END_TEST

START_TEST(counter_name_must_end_in_total)
{
	metrics_family(page, "smsgw_messages", "counter", "Messages.");
	expect_error("ends in _total");
}
END_TEST

START_TEST(family_twice_is_an_error)
{
	metrics_family(page, "a", "gauge", "A.");
	metrics_family(page, "b", "gauge", "B.");
	metrics_family(page, "a", "gauge", "A.");
	expect_error("a: family written twice");
}
END_TEST

START_TEST(sample_outside_its_family_is_an_error)
{
	metrics_family(page, "a", "gauge", "A.");
	metrics_family(page, "b", "gauge", "B.");
	metrics_sample(page, "a", NULL, 1);
	expect_error("a: sample outside its family");
}
END_TEST

START_TEST(duplicate_label_key_is_an_error)
{
	static const struct metrics_label labels[] = {
		{ "x", "1" }, { "x", "2" }, { NULL, NULL }
	};

	metrics_family(page, "a", "gauge", "A.");
	metrics_sample(page, "a", labels, 1);
	expect_error("label x twice");
}
END_TEST

START_TEST(histogram_misuse_is_an_error)
{
	static const struct metrics_label le[] = {
		{ "le", "1" }, { NULL, NULL }
	};
	static const double falling[] = { 1, 0.5 };
	uint64_t counts[3] = { 0 };
	struct metrics_histogram h = { test_bounds, 2, counts, 0, 0 };

	metrics_family(page, "h", "histogram", "H.");
	metrics_sample(page, "h", NULL, 1);
	expect_error("a histogram takes whole series");
	metrics_page_reset(page);
	metrics_family(page, "g", "gauge", "G.");
	metrics_histogram_write(page, "g", NULL, &h);
	expect_error("g: not a histogram");
	metrics_page_reset(page);
	metrics_family(page, "h", "histogram", "H.");
	metrics_histogram_write(page, "h", le, &h);
	expect_error("le is the histogram's");
	metrics_page_reset(page);
	metrics_family(page, "h", "histogram", "H.");
	h.count = 1;
	metrics_histogram_write(page, "h", NULL, &h);
	expect_error("buckets hold 0, count 1");
	metrics_page_reset(page);
	metrics_family(page, "h", "histogram", "H.");
	h.count = 0;
	h.bounds = falling;
	metrics_histogram_write(page, "h", NULL, &h);
	expect_error("bounds not finite and rising");
}
END_TEST

START_TEST(calls_after_an_error_write_nothing)
{
	size_t len, after;

	metrics_family(page, "a", "gauge", "A.");
	metrics_page_text(page, &len);
	metrics_sample(page, "b", NULL, 1);
	metrics_family(page, "c", "gauge", "C.");
	metrics_sample(page, "c", NULL, 1);
	metrics_page_text(page, &after);
	ck_assert_uint_eq(after, len);
	expect_error("b: sample outside its family");
}
END_TEST

START_TEST(reset_empties_the_page_and_its_families)
{
	metrics_family(page, "a", "gauge", "A.");
	metrics_sample(page, "b", NULL, 1);
	metrics_page_reset(page);
	ck_assert_ptr_null(metrics_page_error(page));
	ck_assert_str_eq(metrics_page_text(page, NULL), "");
	metrics_family(page, "a", "gauge", "A.");
	metrics_sample(page, "a", NULL, 2);
	expect_text("# HELP a A.\n# TYPE a gauge\na 2\n");
}
END_TEST

START_TEST(a_large_page_grows_its_buffer)
{
	char key[32], expected[64];
	const char *text;
	size_t len;
	int i;

	metrics_family(page, "a", "gauge", "A.");
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "%d", i);
		metrics_sample(page, "a", (struct metrics_label[]){
		    { "n", key }, { NULL, NULL } }, i);
	}
	ck_assert_ptr_null(metrics_page_error(page));
	text = metrics_page_text(page, &len);
	ck_assert_uint_gt(len, 5000 * 10);
	ck_assert_uint_eq(strlen(text), len);
	ck_assert_ptr_nonnull(strstr(text, "\na{n=\"0\"} 0\n"));
	snprintf(expected, sizeof(expected), "\na{n=\"4999\"} 4999\n");
	ck_assert_str_eq(text + len - strlen(expected), expected);
}
END_TEST

START_TEST(loopback_addresses_are_recognised)
{
	ck_assert_int_eq(metrics_listen_is_loopback("127.0.0.1:9101"), 1);
	ck_assert_int_eq(metrics_listen_is_loopback("127.1.2.3:0"), 1);
	ck_assert_int_eq(metrics_listen_is_loopback("[::1]:9101"), 1);
	ck_assert_int_eq(metrics_listen_is_loopback("[::ffff:127.0.0.1]:1"), 1);
	ck_assert_int_eq(metrics_listen_is_loopback("0.0.0.0:9101"), 0);
	ck_assert_int_eq(metrics_listen_is_loopback("[::]:9101"), 0);
	ck_assert_int_eq(metrics_listen_is_loopback("192.0.2.1:80"), 0);
	ck_assert_int_eq(metrics_listen_is_loopback("[::ffff:10.0.0.1]:1"), 0);
}
END_TEST

START_TEST(malformed_addresses_are_rejected)
{
	static const char *bad[] = {
		"", "localhost:9101", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
		"127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1: 80",
		"127.0.0.1:80x", "::1:9101", "[::1]9101", "[::1", "[::1]:",
		"[127.0.0.1]:80", "256.0.0.1:80",
	};
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(metrics_listen_is_loopback(bad[i]) == -1,
		    "\"%s\" accepted", bad[i]);
		err[0] = '\0';
		ck_assert_ptr_null(metrics_new(base, bad[i], 1, NULL, NULL,
		    err, sizeof(err)));
		ck_assert_msg(err[0] != '\0', "no reason for \"%s\"", bad[i]);
	}
}
END_TEST

START_TEST(remote_address_refused_without_allow_remote)
{
	char err[256];

	ck_assert_ptr_null(metrics_new(base, "0.0.0.0:0", 0, NULL, NULL, err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "not a loopback address"));
	ck_assert_ptr_null(metrics_new(base, "192.0.2.1:0", 0, NULL, NULL, err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "not a loopback address"));

	/* Allowed, it gets as far as bind(2), which has no such address. */
	ck_assert_ptr_null(metrics_new(base, "192.0.2.1:0", 1, NULL, NULL, err,
	    sizeof(err)));
	ck_assert_ptr_null(strstr(err, "loopback"));
	ck_assert_ptr_nonnull(strstr(err, "192.0.2.1:0: "));
}
END_TEST

/* A page like the daemon's, with a value of every kind. */
static void
fill_full(void *arg, struct metrics_page *p)
{
	static const char *states[] = { "queued", "sent", "failed" };
	static const double bounds[] = { 0.005, 0.05, 0.5, 5 };
	uint64_t counts[5] = { 0 };
	struct metrics_histogram h = { bounds, 4, counts, 0, 0 };
	size_t i;

	(void)arg;
	fill_calls++;
	metrics_family(p, "smsgw_messages_total", "counter",
	    "Messages that reached each state.");
	for (i = 0; i < 3; i++)
		metrics_sample(p, "smsgw_messages_total",
		    (struct metrics_label[]){ { "state", states[i] },
		    { NULL, NULL } }, (double)(i * 10));
	metrics_family(p, "smsgw_upstream_requests_total", "counter",
	    "Upstream requests by outcome.");
	metrics_sample(p, "smsgw_upstream_requests_total",
	    (struct metrics_label[]){ { "outcome", "odd \"one\"\\\n" },
	    { NULL, NULL } }, 1);
	metrics_family(p, "smsgw_queue_depth", "gauge", "Queued messages.");
	metrics_sample(p, "smsgw_queue_depth", (struct metrics_label[]){
	    { "priority", "0" }, { NULL, NULL } }, 4);
	metrics_sample(p, "smsgw_queue_depth", (struct metrics_label[]){
	    { "priority", "1" }, { NULL, NULL } }, 0);
	metrics_family(p, "smsgw_balance", "gauge",
	    "Account balance\\credit, \"as reported\".\nMay be NaN.");
	metrics_sample(p, "smsgw_balance", NULL, NAN);
	metrics_family(p, "smsgw_concurrency_limit", "gauge", "The limit.");
	metrics_sample(p, "smsgw_concurrency_limit", NULL, INFINITY);
	metrics_family(p, "smsgw_upstream_latency_seconds", "histogram",
	    "Upstream latency.");
	metrics_histogram_observe(&h, 0.003);
	metrics_histogram_observe(&h, 0.25);
	metrics_histogram_observe(&h, 0.3);
	metrics_histogram_observe(&h, 9);
	metrics_histogram_write(p, "smsgw_upstream_latency_seconds", NULL, &h);
	metrics_histogram_write(p, "smsgw_upstream_latency_seconds",
	    (struct metrics_label[]){ { "op", "none" }, { NULL, NULL } },
	    &(struct metrics_histogram){ bounds, 4,
	    (uint64_t[5]){ 0 }, 0, 0 });
}

static void
fill_broken(void *arg, struct metrics_page *p)
{
	(void)arg;
	fill_calls++;
	metrics_family(p, "a", "gauge", "A.");
	metrics_sample(p, "b", NULL, 1);
}

static void
replycb(struct evhttp_request *req, void *arg)
{
	struct reply *r = arg;
	struct evkeyvalq *headers;
	struct evbuffer *body;
	const char *v;

	r->done = 1;
	event_base_loopbreak(base);
	if (req == NULL || evhttp_request_get_response_code(req) == 0)
		return;
	r->code = evhttp_request_get_response_code(req);
	headers = evhttp_request_get_input_headers(req);
	if ((v = evhttp_find_header(headers, "Content-Type")) != NULL)
		snprintf(r->type, sizeof(r->type), "%s", v);
	if ((v = evhttp_find_header(headers, "Allow")) != NULL)
		snprintf(r->allow, sizeof(r->allow), "%s", v);
	body = evhttp_request_get_input_buffer(req);
	r->len = evbuffer_remove(body, r->body, sizeof(r->body) - 1);
	r->body[r->len] = '\0';
}

static void
limitcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

/* Sends one request to M and runs the loop until its answer, or 5 s. */
static void
fetch(struct metrics *m, enum evhttp_cmd_type cmd, const char *uri,
    struct reply *r)
{
	struct timeval limit = { TEST_LIMIT_SEC, 0 };
	struct evhttp_connection *conn;
	struct evhttp_request *req;
	struct event *timer;

	memset(r, 0, sizeof(*r));
	conn = evhttp_connection_base_new(base, NULL, "127.0.0.1",
	    (ev_uint16_t)metrics_port(m));
	ck_assert_ptr_nonnull(conn);
	req = evhttp_request_new(replycb, r);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
	    "127.0.0.1");
	ck_assert_int_eq(evhttp_make_request(conn, req, cmd, uri), 0);
	timer = evtimer_new(base, limitcb, NULL);
	evtimer_add(timer, &limit);
	while (!r->done && event_base_dispatch(base) == 0 &&
	    evtimer_pending(timer, NULL))
		;
	event_free(timer);
	evhttp_connection_free(conn);
	ck_assert_msg(r->done, "no answer within %d s", TEST_LIMIT_SEC);
}

START_TEST(get_metrics_serves_the_filled_page)
{
	struct metrics *m;
	struct reply r;
	char err[256];

	m = metrics_new(base, "127.0.0.1:0", 0, fill_full, NULL, err,
	    sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_int_gt(metrics_port(m), 0);
	fetch(m, EVHTTP_REQ_GET, "/metrics", &r);
	ck_assert_int_eq(r.code, 200);
	ck_assert_str_eq(r.type, "text/plain; version=0.0.4; charset=utf-8");

	fill_full(NULL, page);
	ck_assert_ptr_null(metrics_page_error(page));
	ck_assert_str_eq(r.body, metrics_page_text(page, NULL));
	ck_assert_int_eq(fill_calls, 2);

	/* A second scrape gets a fresh page, not one appended to. */
	fetch(m, EVHTTP_REQ_GET, "/metrics?x=1", &r);
	ck_assert_int_eq(r.code, 200);
	ck_assert_str_eq(r.body, metrics_page_text(page, NULL));
	metrics_free(m);
}
END_TEST

START_TEST(head_metrics_answers_without_a_body)
{
	struct metrics *m;
	struct reply r;
	char err[256];

	m = metrics_new(base, "127.0.0.1:0", 0, fill_full, NULL, err,
	    sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	fetch(m, EVHTTP_REQ_HEAD, "/metrics", &r);
	ck_assert_int_eq(r.code, 200);
	ck_assert_str_eq(r.type, "text/plain; version=0.0.4; charset=utf-8");
	ck_assert_uint_eq(r.len, 0);
	metrics_free(m);
}
END_TEST

START_TEST(other_paths_are_404)
{
	static const char *paths[] = { "/", "/metrics/", "/metricsx",
	    "/stats" };
	struct metrics *m;
	struct reply r;
	char err[256];
	size_t i;

	m = metrics_new(base, "127.0.0.1:0", 0, fill_full, NULL, err,
	    sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		fetch(m, EVHTTP_REQ_GET, paths[i], &r);
		ck_assert_msg(r.code == 404, "%s: %d", paths[i], r.code);
	}
	fetch(m, EVHTTP_REQ_POST, "/other", &r);
	ck_assert_int_eq(r.code, 404);
	ck_assert_int_eq(fill_calls, 0);
	metrics_free(m);
}
END_TEST

START_TEST(other_methods_are_405_with_allow)
{
	static const enum evhttp_cmd_type cmds[] = { EVHTTP_REQ_POST,
	    EVHTTP_REQ_PUT, EVHTTP_REQ_DELETE, EVHTTP_REQ_OPTIONS,
	    EVHTTP_REQ_PATCH };
	struct metrics *m;
	struct reply r;
	char err[256];
	size_t i;

	m = metrics_new(base, "127.0.0.1:0", 0, fill_full, NULL, err,
	    sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		fetch(m, cmds[i], "/metrics", &r);
		ck_assert_msg(r.code == 405, "method %d: %d", cmds[i], r.code);
		ck_assert_str_eq(r.allow, "GET, HEAD");
	}
	ck_assert_int_eq(fill_calls, 0);
	metrics_free(m);
}
END_TEST

START_TEST(a_broken_page_is_500)
{
	struct metrics *m;
	struct reply r;
	char err[256];

	m = metrics_new(base, "127.0.0.1:0", 0, fill_broken, NULL, err,
	    sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	fetch(m, EVHTTP_REQ_GET, "/metrics", &r);
	ck_assert_int_eq(r.code, 500);
	ck_assert_ptr_null(strstr(r.body, "# TYPE"));
	metrics_free(m);
}
END_TEST

START_TEST(port_in_use_is_reported)
{
	struct metrics *m;
	char addr[64], err[256];

	m = metrics_new(base, "127.0.0.1:0", 0, fill_full, NULL, err,
	    sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", metrics_port(m));
	ck_assert_ptr_null(metrics_new(base, addr, 0, fill_full, NULL, err,
	    sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "in use"));
	metrics_free(m);
}
END_TEST

static int
have_python3(void)
{
	if (system("command -v python3 >/dev/null 2>&1") == 0)
		return 1;
	printf("check_metrics: python3 not on PATH; promcheck not run\n");
	return 0;
}

/* Runs tests/promcheck.py with ARGS; its exit status. */
static int
promcheck(const char *args)
{
	const char *dir = getenv("SMSGW_SRCDIR");
	char cmd[8192];
	int status;

	snprintf(cmd, sizeof(cmd), "python3 '%s/tests/promcheck.py' %s",
	    dir != NULL ? dir : ".", args);
	status = system(cmd);
	ck_assert_msg(WIFEXITED(status), "%s: did not exit", cmd);
	return WEXITSTATUS(status);
}

/* Writes TEXT to a new temporary file whose name goes into PATH. */
static void
temp_page(const char *text, char *path, size_t len)
{
	const char *dir = getenv("TMPDIR");
	FILE *f;
	int fd;

	snprintf(path, len, "%s/check_metrics.XXXXXX",
	    dir != NULL ? dir : "/tmp");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

START_TEST(served_page_passes_promcheck)
{
	struct metrics *m;
	struct reply r;
	char err[256], path[4096], args[4200];

	if (!have_python3())
		return;
	m = metrics_new(base, "127.0.0.1:0", 0, fill_full, NULL, err,
	    sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	fetch(m, EVHTTP_REQ_GET, "/metrics", &r);
	ck_assert_int_eq(r.code, 200);
	metrics_free(m);

	temp_page(r.body, path, sizeof(path));
	snprintf(args, sizeof(args), "< '%s'", path);
	ck_assert_int_eq(promcheck(args), 0);
	unlink(path);

	/* The same checker turns down a page that breaks a rule. */
	temp_page("# HELP a A.\n# TYPE a gauge\na 1\na 2\n", path,
	    sizeof(path));
	snprintf(args, sizeof(args), "< '%s' 2>/dev/null", path);
	ck_assert_int_eq(promcheck(args), 1);
	unlink(path);
}
END_TEST

START_TEST(promcheck_passes_its_self_test)
{
	if (!have_python3())
		return;
	ck_assert_int_eq(promcheck("--self-test >/dev/null"), 0);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *w = tcase_create("writer");
	TCase *l = tcase_create("listener");

	tcase_add_checked_fixture(w, setup, teardown);
	tcase_add_test(w, family_writes_help_then_type);
	tcase_add_test(w, help_escapes_backslash_and_newline_only);
	tcase_add_test(w, samples_with_and_without_labels);
	tcase_add_test(w, single_writes_a_family_and_its_one_sample);
	tcase_add_test(w, single_checks_its_family_like_metrics_family);
	tcase_add_test(w, label_values_escape_backslash_quote_newline);
	tcase_add_test(w, integral_values_print_as_integers);
	tcase_add_test(w, fractions_print_short_and_read_back_exactly);
	tcase_add_test(w, huge_values_use_exponents);
	tcase_add_test(w, infinities_and_nan_as_prometheus_spells_them);
	tcase_add_test(w, histogram_buckets_are_cumulative_up_to_inf);
	tcase_add_test(w, histogram_labels_come_before_le);
	tcase_add_test(w, histogram_ignores_nan);
	tcase_add_test(w, bad_names_and_types_are_errors);
	tcase_add_test(w, counter_name_must_end_in_total);
	tcase_add_test(w, family_twice_is_an_error);
	tcase_add_test(w, sample_outside_its_family_is_an_error);
	tcase_add_test(w, duplicate_label_key_is_an_error);
	tcase_add_test(w, histogram_misuse_is_an_error);
	tcase_add_test(w, calls_after_an_error_write_nothing);
	tcase_add_test(w, reset_empties_the_page_and_its_families);
	tcase_add_test(w, a_large_page_grows_its_buffer);
	suite_add_tcase(s, w);

	tcase_add_checked_fixture(l, setup, teardown);
	tcase_set_timeout(l, 60);
	tcase_add_test(l, loopback_addresses_are_recognised);
	tcase_add_test(l, malformed_addresses_are_rejected);
	tcase_add_test(l, remote_address_refused_without_allow_remote);
	tcase_add_test(l, get_metrics_serves_the_filled_page);
	tcase_add_test(l, head_metrics_answers_without_a_body);
	tcase_add_test(l, other_paths_are_404);
	tcase_add_test(l, other_methods_are_405_with_allow);
	tcase_add_test(l, a_broken_page_is_500);
	tcase_add_test(l, port_in_use_is_reported);
	tcase_add_test(l, served_page_passes_promcheck);
	tcase_add_test(l, promcheck_passes_its_self_test);
	suite_add_tcase(s, l);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(metrics_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
