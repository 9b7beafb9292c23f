/*
 * Unit tests for dlr.c: tokens, report URLs, query parsing, and the
 * listener driven by raw HTTP clients on 127.0.0.1 in the same event_base.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "dlr.h"
#include "log.h"
#include "util.h"

#define NCASES(a)	(sizeof(a) / sizeof((a)[0]))
#define SECRET		"s3cret"
#define INBOUND		"in-token"
#define TOKEN_1001	"77661762f35827de1514b7d121818ce4"
#define TOKEN_1001_EMPTY "f51d0cb4d2a3f91d00eafd88a4695e41"
#define EMOJI		"\xf0\x9f\x98\x80"
#define LOOP_LIMIT_MS	60000
#define CLIENTS_MAX	16
#define BODY_MAX	256

/* One raw HTTP/1.1 client connection: sends, parses the answers. */
struct client {
	struct bufferevent	*bev;
	void			(*fill)(struct client *, struct evbuffer *);
	const char		*request;	/* for a single request */
	int			 head;		/* answers carry no body */
	int			 todo;		/* requests still to send */
	int			 answered;
	int			 ok;		/* answers with 200 */
	int			 status;	/* the last answer's */
	char			 body[BODY_MAX];
	char			 headers[BODY_MAX * 4];
	int			 done;
	int			 cut;		/* closed before the last answer */
};

/* What the handlers saw. */
static struct {
	int		 reports;
	int64_t		 id;
	int		 code;
	int		 report_answer;
	int		 inbounds;
	int		 inbound_answer;
	char		 text[256];
	size_t		 text_len;
	char		 from[32];
	char		 to[32];
	char		 charset[32];
	char		 mcode[32];
} seen;

static struct event_base	*base;
static struct dlr		*dlr;
static int			 port;
static char			 log_path[64];
static int			 clients_left;
static int			 timed_out;
static int64_t			 burst_next;
static int			 burst_forged;

static int
handler_report(void *arg, int64_t id, int code)
{
	(void)arg;
	seen.reports++;
	seen.id = id;
	seen.code = code;
	return seen.report_answer;
}

static void
copy_field(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src != NULL ? src : "(null)");
}

static int
handler_inbound(void *arg, const struct dlr_inbound *m)
{
	(void)arg;
	seen.inbounds++;
	seen.text_len = m->text_len;
	if (m->text_len < sizeof(seen.text))
		memcpy(seen.text, m->text, m->text_len + 1);
	copy_field(seen.from, sizeof(seen.from), m->from);
	copy_field(seen.to, sizeof(seen.to), m->to);
	copy_field(seen.charset, sizeof(seen.charset), m->charset);
	copy_field(seen.mcode, sizeof(seen.mcode), m->code);
	return seen.inbound_answer;
}

static const struct dlr_handler handler = {
	handler_report, handler_inbound, NULL
};

static void
options_fill(struct dlr_options *o, const char *secret, const char *inbound)
{
	o->listen = "127.0.0.1:0";
	o->secret = secret;
	o->inbound_token = inbound;
}

static void
setup(void)
{
	struct dlr_options o;
	char err[256];
	int fd;

	memset(&seen, 0, sizeof(seen));
	seen.report_answer = 200;
	seen.inbound_answer = 200;

	snprintf(log_path, sizeof(log_path), "/tmp/check_dlr.XXXXXX");
	fd = mkstemp(log_path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(log_open(log_path, LOG_LEVEL_DEBUG, 1, err,
	    sizeof(err)), 0);

	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	options_fill(&o, SECRET, INBOUND);
	dlr = dlr_new(base, &o, &handler, err, sizeof(err));
	ck_assert_msg(dlr != NULL, "dlr_new: %s", err);
	port = dlr_port(dlr);
	ck_assert_int_gt(port, 0);
}

static void
teardown(void)
{
	dlr_free(dlr);
	dlr = NULL;
	event_base_free(base);
	base = NULL;
	log_close();
	unlink(log_path);
}

/* The log file's text, malloc'd. */
static char *
log_text(void)
{
	FILE *f = fopen(log_path, "r");
	char *buf;
	size_t n;

	ck_assert_ptr_nonnull(f);
	buf = malloc(1 << 20);
	ck_assert_ptr_nonnull(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Lines of the log holding every one of the NULL-ended needles. */
static int
log_lines(const char *needle, const char *also)
{
	char *text = log_text(), *line, *save = NULL;
	int n = 0;

	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save))
		if (strstr(line, needle) != NULL &&
		    (also == NULL || strstr(line, also) != NULL))
			n++;
	free(text);
	return n;
}

static void
loop_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	timed_out = 1;
	event_base_loopbreak(base);
}

/* Runs the loop until every client is done, or for LOOP_LIMIT_MS. */
static void
loop_run(void)
{
	struct timeval tv = { LOOP_LIMIT_MS / 1000, 0 };
	struct event *t = evtimer_new(base, loop_timeout, NULL);

	timed_out = 0;
	evtimer_add(t, &tv);
	if (clients_left > 0)
		event_base_dispatch(base);
	event_free(t);
	ck_assert_msg(!timed_out, "the loop ran out of time");
}

static void
client_finish(struct client *c)
{
	if (c->done)
		return;
	c->done = 1;
	if (--clients_left == 0)
		event_base_loopbreak(base);
}

static void
client_send(struct client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	c->todo--;
	if (c->fill != NULL)
		c->fill(c, out);
	else
		evbuffer_add(out, c->request, strlen(c->request));
}

/* Takes one whole answer off the input: 1, or 0 when more must come. */
static int
client_parse(struct client *c, struct evbuffer *in)
{
	struct evbuffer_ptr end;
	size_t hlen, blen = 0;
	const char *cl;
	char *h;

	end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0)
		return 0;
	hlen = (size_t)end.pos + 4;
	h = (char *)evbuffer_pullup(in, (ev_ssize_t)hlen);
	snprintf(c->headers, sizeof(c->headers), "%.*s", (int)hlen, h);
	ck_assert_int_eq(sscanf(c->headers, "HTTP/1.%*d %d", &c->status),
	    1);
	if ((cl = strcasestr(c->headers, "\r\nContent-Length:")) != NULL &&
	    !c->head)
		blen = strtoul(cl + 17, NULL, 10);
	if (evbuffer_get_length(in) < hlen + blen)
		return 0;

	evbuffer_drain(in, hlen);
	ck_assert_uint_lt(blen, sizeof(c->body));
	evbuffer_remove(in, c->body, blen);
	c->body[blen] = '\0';
	c->answered++;
	if (c->status == 200)
		c->ok++;
	return 1;
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct client *c = arg;

	while (!c->done && client_parse(c, in)) {
		if (c->todo > 0)
			client_send(c);
		else
			client_finish(c);
	}
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (!c->done)
			c->cut = 1;
		client_finish(c);
	}
}

static void
client_start(struct client *c)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(0x7f000001);

	c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	ck_assert_ptr_nonnull(c->bev);
	bufferevent_setcb(c->bev, client_read, NULL, client_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	ck_assert_int_eq(bufferevent_socket_connect(c->bev,
	    (struct sockaddr *)&sin, sizeof(sin)), 0);
	clients_left++;
	client_send(c);
}

/*
 * Sends one request for TARGET and returns the answer's status, or -1
 * without one. BODY (BODY_MAX) gets the answer's body when not NULL.
 */
static int
fetch(const char *method, const char *target, char *body)
{
	struct client c;
	char *req;
	int n;

	memset(&c, 0, sizeof(c));
	n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n", method, target);
	ck_assert_int_gt(n, 0);
	c.request = req;
	c.head = strcmp(method, "HEAD") == 0;
	c.todo = 1;
	client_start(&c);
	loop_run();
	bufferevent_free(c.bev);
	free(req);

	if (body != NULL)
		snprintf(body, BODY_MAX, "%s", c.body);
	return c.answered == 1 ? c.status : -1;
}

/* "/dlr?id=...&t=...&status=CODE" for ID, as the upstream calls it. */
static char *
report_target(int64_t id, int code, const char *secret)
{
	char *url, *pct, *target;
	int n;

	url = dlr_report_url("/dlr", secret, id);
	ck_assert_ptr_nonnull(url);
	pct = strstr(url, "%d");
	ck_assert_ptr_nonnull(pct);
	*pct = '\0';
	n = asprintf(&target, "%s%d%s", url, code, pct + 2);
	ck_assert_int_gt(n, 0);
	free(url);
	return target;
}

/* The inbound target with the query's other fields after t. */
static char *
inbound_target(const char *token, const char *rest)
{
	char *target;

	ck_assert_int_gt(asprintf(&target, "/mo?t=%s&%s", token, rest), 0);
	return target;
}

START_TEST(test_token_round_trip)
{
	char token[DLR_TOKEN_LEN + 1];
	size_t i;

	dlr_token(SECRET, 1001, token);
	ck_assert_uint_eq(strlen(token), DLR_TOKEN_LEN);
	for (i = 0; i < DLR_TOKEN_LEN; i++)
		ck_assert_ptr_nonnull(strchr("0123456789abcdef", token[i]));
	ck_assert_int_eq(dlr_token_check(SECRET, 1001, token), 1);
}
END_TEST

START_TEST(test_token_is_hmac_sha256_of_the_id_text_cut_to_16_bytes)
{
	char token[DLR_TOKEN_LEN + 1];

	/* openssl dgst -sha256 -hmac s3cret of "00000000000003e9". */
	dlr_token(SECRET, 1001, token);
	ck_assert_str_eq(token, TOKEN_1001);
}
END_TEST

START_TEST(test_token_for_another_id_or_secret_is_refused)
{
	char token[DLR_TOKEN_LEN + 1];

	dlr_token(SECRET, 1001, token);
	ck_assert_int_eq(dlr_token_check(SECRET, 1002, token), 0);
	ck_assert_int_eq(dlr_token_check("s3cres", 1001, token), 0);
	ck_assert_int_eq(dlr_token_check("", 1001, token), 0);
	ck_assert_int_eq(dlr_token_check(SECRET, 1001,
	    "77661762f35827de1514b7d121818ce5"), 0);
	ck_assert_int_eq(dlr_token_check(SECRET, 1001,
	    "77661762F35827DE1514B7D121818CE4"), 0);
}
END_TEST

START_TEST(test_token_of_wrong_length_is_refused)
{
	char token[DLR_TOKEN_LEN + 2];

	dlr_token(SECRET, 1001, token);
	token[DLR_TOKEN_LEN - 1] = '\0';
	ck_assert_int_eq(dlr_token_check(SECRET, 1001, token), 0);

	dlr_token(SECRET, 1001, token);
	strcat(token, "0");
	ck_assert_int_eq(dlr_token_check(SECRET, 1001, token), 0);
	ck_assert_int_eq(dlr_token_check(SECRET, 1001, ""), 0);
	ck_assert_int_eq(dlr_token_check(SECRET, 1001, NULL), 0);
}
END_TEST

START_TEST(test_token_with_empty_secret_is_still_computed)
{
	char token[DLR_TOKEN_LEN + 1];

	dlr_token("", 1001, token);
	ck_assert_str_eq(token, TOKEN_1001_EMPTY);
	ck_assert_int_eq(dlr_token_check("", 1001, token), 1);
	ck_assert_int_eq(dlr_token_check(SECRET, 1001, token), 0);
}
END_TEST

START_TEST(test_report_url_appends_query_with_literal_percent_d)
{
	char *url = dlr_report_url("https://gw.example/dlr", SECRET, 1001);

	ck_assert_ptr_nonnull(url);
	ck_assert_str_eq(url, "https://gw.example/dlr?id=00000000000003e9&t="
	    TOKEN_1001 "&status=%d");
	free(url);
}
END_TEST

START_TEST(test_report_url_joins_an_existing_query)
{
	char *url;

	url = dlr_report_url("https://gw.example/dlr?a=1", SECRET, 1001);
	ck_assert_str_eq(url, "https://gw.example/dlr?a=1&id=00000000000003e9"
	    "&t=" TOKEN_1001 "&status=%d");
	free(url);

	url = dlr_report_url("https://gw.example/dlr?", SECRET, 1001);
	ck_assert_str_eq(url, "https://gw.example/dlr?id=00000000000003e9"
	    "&t=" TOKEN_1001 "&status=%d");
	free(url);

	url = dlr_report_url("https://gw.example/dlr?a=1&", SECRET, 1001);
	ck_assert_str_eq(url, "https://gw.example/dlr?a=1&id=00000000000003e9"
	    "&t=" TOKEN_1001 "&status=%d");
	free(url);
}
END_TEST

START_TEST(test_report_url_goes_before_a_fragment)
{
	char *url = dlr_report_url("https://gw.example/dlr#x", SECRET, 1001);

	ck_assert_str_eq(url, "https://gw.example/dlr?id=00000000000003e9&t="
	    TOKEN_1001 "&status=%d#x");
	free(url);
}
END_TEST

START_TEST(test_report_url_parses_back_once_status_is_filled_in)
{
	char token[DLR_TOKEN_LEN + 1];
	char *target = report_target(INT64_MAX, 16, SECRET);
	int64_t id = 0;
	int code = 0;

	ck_assert_int_eq(dlr_parse_report(strchr(target, '?') + 1, &id, token,
	    sizeof(token), &code), 0);
	ck_assert(id == INT64_MAX);
	ck_assert_int_eq(code, 16);
	ck_assert_int_eq(dlr_token_check(SECRET, id, token), 1);
	free(target);
}
END_TEST

static const struct {
	const char	*query;
	int		 rc;
	int64_t		 id;
	int		 code;
	const char	*token;
} report_cases[] = {
	{ "id=00000000000003e9&t=abc&status=4", 0, 1001, 4, "abc" },
	{ "status=1&t=abc&id=3e9", 0, 1001, 1, "abc" },
	{ "id=3E9&t=abc&status=1", 0, 1001, 1, "abc" },
	{ "id=7fffffffffffffff&t=abc&status=1", 0, INT64_MAX, 1, "abc" },
	{ "id=8000000000000000&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=ffffffffffffffff&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=-7", 0, 1001, -7, "abc" },
	{ "id=3e9&t=abc&status=1024", 0, 1001, 1024, "abc" },
	{ "id=3e9&t=abc&status=2147483647", 0, 1001, INT32_MAX, "abc" },
	{ "id=3e9&t=abc&status=-2147483648", 0, 1001, INT32_MIN, "abc" },
	{ "id=3e9&t=&status=1", 0, 1001, 1, "" },
	{ "i%64=3e9&t=%61bc&status=%31", 0, 1001, 1, "abc" },
	{ "&&id=3e9&&t=abc&status=2&", 0, 1001, 2, "abc" },
	{ "id=3e9&t=abc&status=2&other=1&other=2&flag", 0, 1001, 2, "abc" },
	{ "id=3e9&t=" TOKEN_1001 "&status=1", 0, 1001, 1, TOKEN_1001 },
	{ "", -1, 0, 0, NULL },
	{ "t=abc&status=1", -1, 0, 0, NULL },
	{ "id=3e9&status=1", -1, 0, 0, NULL },
	{ "id=3e9&t=abc", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=abc", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=4x", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=%204", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=+4", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=-", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=2147483648", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=-2147483649", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=1&status=2", -1, 0, 0, NULL },
	{ "id=3e9&id=3e9&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=3e9&i%64=3ea&t=abc&status=1", -1, 0, 0, NULL },
	{ "id&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=0&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=0000000000000000&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=000000000000003e9&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=3eg&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=-3e9&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=3e9%00&t=abc&status=1", -1, 0, 0, NULL },
	{ "id=3e9&t=a%00bc&status=1", -1, 0, 0, NULL },
	{ "id=3e9&t=%zz&status=1", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=1&x=%zz", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=1%4", -1, 0, 0, NULL },
	{ "id=3e9&t=abc&status=1%", -1, 0, 0, NULL },
	{ "id=3e9&t=" TOKEN_1001 "0&status=1", -1, 0, 0, NULL },
};

START_TEST(test_parse_report_table)
{
	char token[DLR_TOKEN_LEN + 1];
	int64_t id = 0;
	int code = 0, rc;

	rc = dlr_parse_report(report_cases[_i].query, &id, token,
	    sizeof(token), &code);
	ck_assert_msg(rc == report_cases[_i].rc, "\"%s\": rc %d",
	    report_cases[_i].query, rc);
	if (rc != 0)
		return;
	ck_assert_msg(id == report_cases[_i].id, "\"%s\": id %" PRId64,
	    report_cases[_i].query, id);
	ck_assert_int_eq(code, report_cases[_i].code);
	ck_assert_str_eq(token, report_cases[_i].token);
}
END_TEST

START_TEST(test_parse_report_refuses_null_query_and_tiny_token_buffer)
{
	char token[4];
	int64_t id;
	int code;

	ck_assert_int_eq(dlr_parse_report(NULL, &id, token, sizeof(token),
	    &code), -1);
	ck_assert_int_eq(dlr_parse_report("id=1&t=abcd&status=1", &id, token,
	    sizeof(token), &code), -1);
	ck_assert_int_eq(dlr_parse_report("id=1&t=abc&status=1", &id, token,
	    sizeof(token), &code), 0);
}
END_TEST

/* Parses QUERY as an inbound message; the text is left in *M. */
static int
inbound(const char *query, struct dlr_inbound *m, char *storage)
{
	return dlr_parse_inbound(query, m, storage, DLR_INBOUND_STORAGE);
}

START_TEST(test_inbound_utf8_is_parsed)
{
	char storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;

	ck_assert_int_eq(inbound("to=27820001111&from=%2B27821234567"
	    "&message=Hello+w%C3%B6rld%21&charset=UTF-8&code=KW", &m,
	    storage), 0);
	ck_assert_str_eq(m.text, "Hello w\xc3\xb6rld!");
	ck_assert_uint_eq(m.text_len, strlen("Hello w\xc3\xb6rld!"));
	ck_assert_str_eq(m.to, "27820001111");
	ck_assert_str_eq(m.from, "+27821234567");
	ck_assert_str_eq(m.charset, "UTF-8");
	ck_assert_str_eq(m.code, "KW");
	dlr_inbound_clear(&m);
	ck_assert_ptr_null(m.text);
}
END_TEST

START_TEST(test_inbound_without_charset_or_code_is_utf8)
{
	char storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;

	ck_assert_int_eq(inbound("to=1&from=2&message=caf%C3%A9", &m,
	    storage), 0);
	ck_assert_str_eq(m.text, "caf\xc3\xa9");
	ck_assert_str_eq(m.charset, "");
	ck_assert_str_eq(m.code, "");
	dlr_inbound_clear(&m);

	ck_assert_int_eq(inbound("to=1&from=2&message=caf%C3%A9&charset=utf8",
	    &m, storage), 0);
	ck_assert_str_eq(m.text, "caf\xc3\xa9");
	dlr_inbound_clear(&m);

	ck_assert_int_eq(inbound("to=1&from=2&message=", &m, storage), 0);
	ck_assert_str_eq(m.text, "");
	ck_assert_uint_eq(m.text_len, 0);
	dlr_inbound_clear(&m);
}
END_TEST

static const char *bad_utf8[] = {
	"%C0%AF",		/* overlong '/' */
	"%E0%80%AF",		/* overlong, three bytes */
	"%F0%80%80%AF",		/* overlong, four bytes */
	"%ED%A0%80",		/* a surrogate */
	"%F4%90%80%80",		/* above U+10FFFF */
	"%E2%82",		/* cut short */
	"%80",			/* a lone continuation */
	"%FF",
	"a%00b",		/* a NUL */
};

START_TEST(test_inbound_invalid_utf8_is_refused)
{
	char storage[DLR_INBOUND_STORAGE], query[128];
	struct dlr_inbound m;

	snprintf(query, sizeof(query), "to=1&from=2&charset=UTF-8&message=%s",
	    bad_utf8[_i]);
	ck_assert_msg(inbound(query, &m, storage) == -1, "%s", bad_utf8[_i]);
	ck_assert_ptr_null(m.text);
}
END_TEST

START_TEST(test_inbound_utf16be_raw_with_emoji_is_converted)
{
	char storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;

	ck_assert_int_eq(inbound("to=1&from=2&charset=UTF-16BE"
	    "&message=%00H%00i%00%20%D8%3D%DE%00", &m, storage), 0);
	ck_assert_str_eq(m.text, "Hi " EMOJI);
	ck_assert_uint_eq(m.text_len, 7);
	ck_assert_str_eq(m.charset, "UTF-16BE");
	dlr_inbound_clear(&m);
}
END_TEST

START_TEST(test_inbound_utf16be_hex_with_emoji_is_converted)
{
	char storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;

	ck_assert_int_eq(inbound("to=1&from=2&charset=UTF-16BE"
	    "&message=004800690020D83DDE00", &m, storage), 0);
	ck_assert_str_eq(m.text, "Hi " EMOJI);
	dlr_inbound_clear(&m);

	ck_assert_int_eq(inbound("to=1&from=2&charset=ucs-2"
	    "&message=00e9d83dde00", &m, storage), 0);
	ck_assert_str_eq(m.text, "\xc3\xa9" EMOJI);
	dlr_inbound_clear(&m);

	ck_assert_int_eq(inbound("to=1&from=2&charset=UTF-16"
	    "&message=FEFF20AC", &m, storage), 0);
	ck_assert_str_eq(m.text, "\xe2\x82\xac");
	dlr_inbound_clear(&m);
}
END_TEST

static const char *bad_utf16[] = {
	"D83D0041",		/* a high surrogate, then no low one */
	"0041D83D",		/* a high surrogate at the end */
	"DE000041",		/* a lone low surrogate */
	"%00A%00",		/* an odd number of bytes */
	"0000",			/* a NUL */
};

START_TEST(test_inbound_utf16_lone_surrogate_or_odd_length_is_refused)
{
	char storage[DLR_INBOUND_STORAGE], query[128];
	struct dlr_inbound m;

	snprintf(query, sizeof(query), "to=1&from=2&charset=UTF-16BE"
	    "&message=%s", bad_utf16[_i]);
	ck_assert_msg(inbound(query, &m, storage) == -1, "%s",
	    bad_utf16[_i]);
	ck_assert_ptr_null(m.text);
}
END_TEST

START_TEST(test_inbound_latin1_is_converted)
{
	char storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;

	ck_assert_int_eq(inbound("to=1&from=2&charset=ISO-8859-1"
	    "&message=caf%E9+%FF", &m, storage), 0);
	ck_assert_str_eq(m.text, "caf\xc3\xa9 \xc3\xbf");
	dlr_inbound_clear(&m);

	ck_assert_int_eq(inbound("to=1&from=2&charset=latin1&message=%A3",
	    &m, storage), 0);
	ck_assert_str_eq(m.text, "\xc2\xa3");
	dlr_inbound_clear(&m);
}
END_TEST

START_TEST(test_inbound_other_charset_is_kept_only_when_utf8)
{
	char storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;

	ck_assert_int_eq(inbound("to=1&from=2&charset=x-klingon"
	    "&message=caf%C3%A9", &m, storage), 0);
	ck_assert_str_eq(m.text, "caf\xc3\xa9");
	ck_assert_str_eq(m.charset, "x-klingon");
	dlr_inbound_clear(&m);

	ck_assert_int_eq(inbound("to=1&from=2&charset=x-klingon"
	    "&message=caf%E9", &m, storage), -1);
}
END_TEST

static const struct {
	const char	*query;
	int		 rc;
	const char	*from;
} number_cases[] = {
	{ "to=1&from=+27821234567&message=x", 0, "+27821234567" },
	{ "to=1&from=%2B27821234567&message=x", 0, "+27821234567" },
	{ "to=1&from=12345678901234567890&message=x", 0,
	    "12345678901234567890" },
	{ "to=1&from=123456789012345678901&message=x", -1, NULL },
	{ "to=1&from=+&message=x", -1, NULL },
	{ "to=1&from=&message=x", -1, NULL },
	{ "to=1&from=abc&message=x", -1, NULL },
	{ "to=1&from=27+82&message=x", -1, NULL },
	{ "to=1&from=%2027&message=x", -1, NULL },
	{ "to=x1&from=27&message=x", -1, NULL },
	{ "to=1&message=x", -1, NULL },
	{ "from=1&message=x", -1, NULL },
	{ "to=1&from=2", -1, NULL },
	{ "to=1&to=1&from=2&message=x", -1, NULL },
	{ "to=1&from=2&message=x&message=y", -1, NULL },
	{ "to=1&from=2&message=%zz", -1, NULL },
	{ "to=1&from=2&message=x&code=%00", -1, NULL },
	{ "to=1&from=2&message=x&charset=utf-8%0Afake", -1, NULL },
	{ "to=1&from=2&message=x&charset=utf+8", -1, NULL },
	{ "to=1&from=2&message=x&charset="
	    "x-123456789012345678901234567890123456789", -1, NULL },
	{ "to=1&from=2&message=x&charset="
	    "x-12345678901234567890123456789012345678", 0, "2" },
};

START_TEST(test_inbound_numbers_and_fields_are_checked)
{
	char storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;
	int rc;

	rc = inbound(number_cases[_i].query, &m, storage);
	ck_assert_msg(rc == number_cases[_i].rc, "\"%s\": rc %d",
	    number_cases[_i].query, rc);
	if (rc == 0)
		ck_assert_str_eq(m.from, number_cases[_i].from);
	dlr_inbound_clear(&m);
}
END_TEST

START_TEST(test_inbound_too_small_storage_is_refused)
{
	char storage[8];
	struct dlr_inbound m;

	ck_assert_int_eq(dlr_parse_inbound("to=1234&from=5678&message=x", &m,
	    storage, sizeof(storage)), -1);
	ck_assert_ptr_null(m.text);
	ck_assert_int_eq(dlr_parse_inbound("to=1&from=2&message=x", &m,
	    storage, sizeof(storage)), 0);
	dlr_inbound_clear(&m);
}
END_TEST

START_TEST(test_code_names_and_finality)
{
	ck_assert_str_eq(dlr_code_name(DLR_DELIVERED), "delivered");
	ck_assert_str_eq(dlr_code_name(DLR_UNDELIVERED), "undelivered");
	ck_assert_str_eq(dlr_code_name(DLR_QUEUED), "queued-at-network");
	ck_assert_str_eq(dlr_code_name(DLR_SENT), "sent-to-network");
	ck_assert_str_eq(dlr_code_name(DLR_FAILED), "failed-at-network");
	ck_assert_str_eq(dlr_code_name(3), "unknown");
	ck_assert_str_eq(dlr_code_name(-1), "unknown");
	ck_assert(dlr_code_final(DLR_DELIVERED));
	ck_assert(dlr_code_final(DLR_UNDELIVERED));
	ck_assert(dlr_code_final(DLR_FAILED));
	ck_assert(!dlr_code_final(DLR_QUEUED));
	ck_assert(!dlr_code_final(DLR_SENT));
	ck_assert(!dlr_code_final(32));
}
END_TEST

START_TEST(test_new_refuses_bad_listen_addresses)
{
	static const char *bad[] = { "nope", "127.0.0.1", ":8025",
	    "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:8x", "::1:8025",
	    "[::1]8025", "[::1", "[]:8025", "127.0.0.1:-1" };
	struct event_base *b = event_base_new();
	struct dlr_options o;
	char err[256];
	size_t i;

	options_fill(&o, SECRET, INBOUND);
	for (i = 0; i < NCASES(bad); i++) {
		o.listen = bad[i];
		err[0] = '\0';
		ck_assert_msg(dlr_new(b, &o, &handler, err, sizeof(err)) ==
		    NULL, "%s", bad[i]);
		ck_assert_msg(strstr(err, "host:port") != NULL, "%s", err);
	}
	event_base_free(b);
}
END_TEST

START_TEST(test_new_refuses_a_port_in_use)
{
	struct dlr_options o;
	char err[256], listen[32];

	options_fill(&o, SECRET, INBOUND);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	o.listen = listen;
	ck_assert_ptr_null(dlr_new(base, &o, &handler, err, sizeof(err)));
	ck_assert_msg(strstr(err, "cannot listen on") != NULL, "%s", err);
}
END_TEST

START_TEST(test_listener_accepts_a_good_report_with_200)
{
	char *target = report_target(1001, DLR_DELIVERED, SECRET);
	char body[BODY_MAX];

	ck_assert_int_eq(fetch("GET", target, body), 200);
	ck_assert_str_eq(body, "OK\n");
	ck_assert_int_eq(seen.reports, 1);
	ck_assert(seen.id == 1001);
	ck_assert_int_eq(seen.code, DLR_DELIVERED);
	free(target);
}
END_TEST

START_TEST(test_listener_passes_unknown_codes_to_the_handler)
{
	char *target = report_target(7, 12345, SECRET);

	ck_assert_int_eq(fetch("GET", target, NULL), 200);
	ck_assert_int_eq(seen.code, 12345);
	free(target);
}
END_TEST

START_TEST(test_listener_refuses_a_forged_token_with_403)
{
	char *target = report_target(1001, DLR_DELIVERED, "guess");
	char body[BODY_MAX], token[DLR_TOKEN_LEN + 1];

	ck_assert_int_eq(fetch("GET", target, body), 403);
	ck_assert_str_eq(body, "Forbidden\n");
	ck_assert_int_eq(seen.reports, 0);
	ck_assert_int_eq(log_lines("warn: dlr refused reason=bad-token "
	    "id=00000000000003e9 peer=127.0.0.1", NULL), 1);

	/* The forged token itself never reaches the log. */
	dlr_token("guess", 1001, token);
	ck_assert_int_eq(log_lines(token, NULL), 0);
	free(target);
}
END_TEST

START_TEST(test_listener_answers_404_when_the_handler_does_not_know_the_id)
{
	char *target = report_target(99, DLR_DELIVERED, SECRET);

	seen.report_answer = 404;
	ck_assert_int_eq(fetch("GET", target, NULL), 404);
	ck_assert_int_eq(seen.reports, 1);
	ck_assert_int_eq(log_lines("info: dlr refused reason=unknown-id "
	    "id=0000000000000063 peer=127.0.0.1", NULL), 1);
	free(target);
}
END_TEST

START_TEST(test_listener_answers_503_when_the_handler_cannot_store)
{
	char *target = report_target(99, DLR_DELIVERED, SECRET);

	seen.report_answer = 503;
	ck_assert_int_eq(fetch("GET", target, NULL), 503);
	ck_assert_int_eq(log_lines("warn: dlr refused reason=not-stored", NULL),
	    1);
	free(target);
}
END_TEST

START_TEST(test_listener_answers_400_for_malformed_without_echoing_it)
{
	char body[BODY_MAX];

	ck_assert_int_eq(fetch("GET", "/dlr?id=3e9&t=abc&status=abc"
	    "&x=ECHOMARK", body), 400);
	ck_assert_ptr_null(strstr(body, "ECHOMARK"));
	ck_assert_int_eq(fetch("GET", "/dlr?id=3e9&t=%zz&status=1", NULL),
	    400);
	ck_assert_int_eq(fetch("GET", "/dlr", NULL), 400);
	ck_assert_int_eq(fetch("GET", "/", NULL), 400);
	ck_assert_int_eq(seen.reports, 0);
	ck_assert_int_eq(log_lines("info: dlr refused reason=malformed "
	    "peer=127.0.0.1", NULL), 4);
	ck_assert_int_eq(log_lines("ECHOMARK", NULL), 0);
}
END_TEST

START_TEST(test_listener_answers_405_for_post)
{
	char *target = report_target(1001, DLR_DELIVERED, SECRET);
	struct client c;

	ck_assert_int_eq(fetch("POST", target, NULL), 405);
	ck_assert_int_eq(fetch("PUT", target, NULL), 405);
	ck_assert_int_eq(seen.reports, 0);

	/* The answer says what is allowed. */
	memset(&c, 0, sizeof(c));
	c.request = "DELETE /dlr HTTP/1.1\r\nHost: x\r\n"
	    "Connection: close\r\n\r\n";
	c.todo = 1;
	client_start(&c);
	loop_run();
	bufferevent_free(c.bev);
	ck_assert_int_eq(c.status, 405);
	ck_assert_ptr_nonnull(strstr(c.headers, "\r\nAllow: GET, HEAD\r\n"));
	free(target);
}
END_TEST

START_TEST(test_listener_checks_head_but_applies_nothing)
{
	char *target = report_target(1001, DLR_QUEUED, SECRET);
	char *forged = report_target(1001, DLR_QUEUED, "another secret");

	ck_assert_int_eq(fetch("HEAD", target, NULL), 200);
	ck_assert_int_eq(fetch("HEAD", forged, NULL), 403);
	ck_assert_int_eq(seen.reports, 0);
	ck_assert_int_eq(fetch("GET", target, NULL), 200);
	ck_assert_int_eq(seen.reports, 1);
	ck_assert_int_eq(seen.code, DLR_QUEUED);
	free(forged);
	free(target);
}
END_TEST

START_TEST(test_listener_answers_400_for_a_10kb_query)
{
	char *base_target = report_target(1001, DLR_DELIVERED, SECRET);
	size_t n = strlen(base_target);
	char *target = malloc(n + 10 * 1024 + 1);

	memcpy(target, base_target, n);
	memcpy(target + n, "&pad=", 5);
	memset(target + n + 5, 'a', 10 * 1024 - 5);
	target[n + 10 * 1024] = '\0';
	ck_assert_int_eq(fetch("GET", target, NULL), 400);
	ck_assert_int_eq(seen.reports, 0);

	/* Below libevent's limit on a line, the listener says why. */
	target[5 * 1024] = '\0';
	ck_assert_int_eq(fetch("GET", target, NULL), 400);
	ck_assert_int_eq(seen.reports, 0);
	ck_assert_int_eq(log_lines("dlr refused reason=too-long", NULL), 1);

	/* Up to the limit it is still taken. */
	target[DLR_URI_MAX] = '\0';
	ck_assert_int_eq(fetch("GET", target, NULL), 200);
	ck_assert_int_eq(seen.reports, 1);
	free(target);
	free(base_target);
}
END_TEST

START_TEST(test_listener_takes_a_utf16_inbound_with_200)
{
	char *target = inbound_target(INBOUND, "to=27820001111"
	    "&from=%2B27821234567&message=004800690020D83DDE00"
	    "&charset=UTF-16BE&code=KW");

	ck_assert_int_eq(fetch("GET", target, NULL), 200);
	ck_assert_int_eq(seen.inbounds, 1);
	ck_assert_int_eq(seen.reports, 0);
	ck_assert_str_eq(seen.text, "Hi " EMOJI);
	ck_assert_uint_eq(seen.text_len, 7);
	ck_assert_str_eq(seen.from, "+27821234567");
	ck_assert_str_eq(seen.to, "27820001111");
	ck_assert_str_eq(seen.charset, "UTF-16BE");
	ck_assert_str_eq(seen.mcode, "KW");
	free(target);

	/* A prefix before the path, as a proxy may add, changes nothing. */
	ck_assert_int_eq(fetch("GET", "/smsgw/mo?t=" INBOUND "&to=1&from=2"
	    "&message=hi", NULL), 200);
	ck_assert_str_eq(seen.text, "hi");
}
END_TEST

START_TEST(test_listener_refuses_an_inbound_with_a_bad_token_with_403)
{
	const char *rest = "to=1&from=2&message=hi";
	char *target = inbound_target("in-tokem", rest);

	ck_assert_int_eq(fetch("GET", target, NULL), 403);
	free(target);
	target = inbound_target("", rest);
	ck_assert_int_eq(fetch("GET", target, NULL), 403);
	free(target);
	ck_assert_int_eq(fetch("GET", "/mo?to=1&from=2&message=hi", NULL),
	    403);
	ck_assert_int_eq(seen.inbounds, 0);
	ck_assert_int_eq(log_lines("warn: dlr refused reason=bad-token "
	    "kind=inbound peer=127.0.0.1", NULL), 3);
	ck_assert_int_eq(log_lines("in-tokem", NULL), 0);
}
END_TEST

START_TEST(test_listener_refuses_all_inbound_without_a_configured_token)
{
	struct dlr_options o;
	char *target;

	options_fill(&o, SECRET, "");
	dlr_set_options(dlr, &o);
	target = inbound_target("", "to=1&from=2&message=hi");
	ck_assert_int_eq(fetch("GET", target, NULL), 403);
	free(target);
	target = inbound_target(INBOUND, "to=1&from=2&message=hi");
	ck_assert_int_eq(fetch("GET", target, NULL), 403);
	free(target);
	ck_assert_int_eq(seen.inbounds, 0);
}
END_TEST

START_TEST(test_listener_answers_400_for_a_malformed_inbound)
{
	char *target = inbound_target(INBOUND, "to=1&from=2&message=%C0%AF");

	ck_assert_int_eq(fetch("GET", target, NULL), 400);
	free(target);
	ck_assert_int_eq(fetch("GET", "/mo", NULL), 400);
	ck_assert_int_eq(seen.inbounds, 0);
}
END_TEST

START_TEST(test_listener_answers_503_when_an_inbound_is_not_stored)
{
	char *target = inbound_target(INBOUND, "to=1&from=2&message=hi");

	seen.inbound_answer = 503;
	ck_assert_int_eq(fetch("GET", target, NULL), 503);
	ck_assert_int_eq(seen.inbounds, 1);
	free(target);
}
END_TEST

START_TEST(test_set_options_replaces_the_secret)
{
	char *old = report_target(1001, DLR_DELIVERED, SECRET);
	char *fresh = report_target(1001, DLR_DELIVERED, "rotated");
	struct dlr_options o;

	options_fill(&o, "rotated", INBOUND);
	dlr_set_options(dlr, &o);
	ck_assert_int_eq(fetch("GET", old, NULL), 403);
	ck_assert_int_eq(fetch("GET", fresh, NULL), 200);
	ck_assert_int_eq(seen.reports, 1);
	free(old);
	free(fresh);
}
END_TEST

static void
burst_fill(struct client *c, struct evbuffer *out)
{
	int64_t id = ++burst_next;
	char *target;

	(void)c;
	target = report_target(id, DLR_DELIVERED,
	    burst_forged ? "forged" : SECRET);
	evbuffer_add_printf(out, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
	    target);
	free(target);
}

/* N requests spread over NCLIENTS keep-alive connections at once. */
static void
burst(struct client *clients, int nclients, int n)
{
	int i;

	burst_next = 0;
	memset(clients, 0, sizeof(*clients) * (size_t)nclients);
	for (i = 0; i < nclients; i++) {
		clients[i].fill = burst_fill;
		clients[i].todo = n / nclients;
	}
	for (i = 0; i < nclients; i++)
		client_start(&clients[i]);
	loop_run();
	for (i = 0; i < nclients; i++)
		bufferevent_free(clients[i].bev);
}

START_TEST(test_listener_answers_1000_reports_over_keepalive)
{
	struct client clients[10];
	int i, ok = 0;

	burst(clients, 10, 1000);
	for (i = 0; i < 10; i++) {
		ck_assert_msg(!clients[i].cut, "connection %d was closed", i);
		ck_assert_int_eq(clients[i].answered, 100);
		ok += clients[i].ok;
	}
	ck_assert_int_eq(ok, 1000);
	ck_assert_int_eq(seen.reports, 1000);
}
END_TEST

/* The sum of the count= values of the refused-suppressed lines. */
static long
log_suppressed(void)
{
	char *text = log_text(), *p;
	long sum = 0;

	for (p = text; (p = strstr(p, "dlr refused-suppressed count=")) !=
	    NULL; p++)
		sum += strtol(p + strlen("dlr refused-suppressed count="),
		    NULL, 10);
	free(text);
	return sum;
}

START_TEST(test_refusal_lines_are_rate_limited_in_a_flood)
{
	struct client clients[10];
	int64_t start, elapsed;
	int i, lines, refused;

	burst_forged = 1;
	start = util_mono_ms();
	burst(clients, 10, 1000);
	elapsed = util_mono_ms() - start;
	burst_forged = 0;
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(clients[i].answered - clients[i].ok, 100);
	ck_assert_int_eq(seen.reports, 0);

	/* Freeing the listener reports what is still held back. */
	dlr_free(dlr);
	dlr = NULL;

	refused = log_lines("dlr refused reason=bad-token", NULL);
	lines = log_lines("dlr refused", NULL);
	ck_assert_int_ge(refused, 10);
	/* Ten lines and a tally per second: about 20 when it is quick. */
	ck_assert_msg(lines <= 11 * (int)(elapsed / 1000 + 2),
	    "%d lines in %" PRId64 " ms", lines, elapsed);
	ck_assert_int_eq(refused + log_suppressed(), 1000);
	ck_assert_int_eq(log_lines("dlr refused-suppressed", "bad-token="),
	    lines - refused);
}
END_TEST

START_TEST(test_suppressed_count_is_logged_after_the_flood_stops)
{
	struct client clients[2];
	struct timeval tv = { 1, 500000 };

	burst_forged = 1;
	burst(clients, 2, 40);
	burst_forged = 0;
	ck_assert_int_ge(log_lines("dlr refused reason=bad-token", NULL), 10);

	/* With no more refusals the timer still writes the tally. */
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	ck_assert_int_eq(log_lines("dlr refused reason=bad-token", NULL) +
	    log_suppressed(), 40);
}
END_TEST

static Suite *
dlr_suite(void)
{
	Suite *s = suite_create("dlr");
	TCase *tc;

	tc = tcase_create("tokens");
	tcase_add_test(tc, test_token_round_trip);
	tcase_add_test(tc,
	    test_token_is_hmac_sha256_of_the_id_text_cut_to_16_bytes);
	tcase_add_test(tc, test_token_for_another_id_or_secret_is_refused);
	tcase_add_test(tc, test_token_of_wrong_length_is_refused);
	tcase_add_test(tc, test_token_with_empty_secret_is_still_computed);
	tcase_add_test(tc, test_report_url_appends_query_with_literal_percent_d);
	tcase_add_test(tc, test_report_url_joins_an_existing_query);
	tcase_add_test(tc, test_report_url_goes_before_a_fragment);
	tcase_add_test(tc,
	    test_report_url_parses_back_once_status_is_filled_in);
	suite_add_tcase(s, tc);

	tc = tcase_create("parsing");
	tcase_add_loop_test(tc, test_parse_report_table, 0,
	    NCASES(report_cases));
	tcase_add_test(tc,
	    test_parse_report_refuses_null_query_and_tiny_token_buffer);
	tcase_add_test(tc, test_inbound_utf8_is_parsed);
	tcase_add_test(tc, test_inbound_without_charset_or_code_is_utf8);
	tcase_add_loop_test(tc, test_inbound_invalid_utf8_is_refused, 0,
	    NCASES(bad_utf8));
	tcase_add_test(tc, test_inbound_utf16be_raw_with_emoji_is_converted);
	tcase_add_test(tc, test_inbound_utf16be_hex_with_emoji_is_converted);
	tcase_add_loop_test(tc,
	    test_inbound_utf16_lone_surrogate_or_odd_length_is_refused, 0,
	    NCASES(bad_utf16));
	tcase_add_test(tc, test_inbound_latin1_is_converted);
	tcase_add_test(tc, test_inbound_other_charset_is_kept_only_when_utf8);
	tcase_add_loop_test(tc, test_inbound_numbers_and_fields_are_checked,
	    0, NCASES(number_cases));
	tcase_add_test(tc, test_inbound_too_small_storage_is_refused);
	tcase_add_test(tc, test_code_names_and_finality);
	tcase_add_test(tc, test_new_refuses_bad_listen_addresses);
	suite_add_tcase(s, tc);

	tc = tcase_create("listener");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_new_refuses_a_port_in_use);
	tcase_add_test(tc, test_listener_accepts_a_good_report_with_200);
	tcase_add_test(tc, test_listener_passes_unknown_codes_to_the_handler);
	tcase_add_test(tc, test_listener_refuses_a_forged_token_with_403);
	tcase_add_test(tc,
	    test_listener_answers_404_when_the_handler_does_not_know_the_id);
	tcase_add_test(tc,
	    test_listener_answers_503_when_the_handler_cannot_store);
	tcase_add_test(tc,
	    test_listener_answers_400_for_malformed_without_echoing_it);
	tcase_add_test(tc, test_listener_answers_405_for_post);
	tcase_add_test(tc, test_listener_checks_head_but_applies_nothing);
	tcase_add_test(tc, test_listener_answers_400_for_a_10kb_query);
	tcase_add_test(tc, test_listener_takes_a_utf16_inbound_with_200);
	tcase_add_test(tc,
	    test_listener_refuses_an_inbound_with_a_bad_token_with_403);
	tcase_add_test(tc,
	    test_listener_refuses_all_inbound_without_a_configured_token);
	tcase_add_test(tc, test_listener_answers_400_for_a_malformed_inbound);
	tcase_add_test(tc,
	    test_listener_answers_503_when_an_inbound_is_not_stored);
	tcase_add_test(tc, test_set_options_replaces_the_secret);
	tcase_add_test(tc, test_listener_answers_1000_reports_over_keepalive);
	tcase_add_test(tc, test_refusal_lines_are_rate_limited_in_a_flood);
	tcase_add_test(tc,
	    test_suppressed_count_is_logged_after_the_flood_stops);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(dlr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
