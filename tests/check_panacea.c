/* Unit tests of the Panacea client: URLs, redaction, classification. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <curl/curl.h>

#include "panacea.h"

#define BASE	"https://api.example.test/json"

static const struct panacea_account acct = { BASE, "alice", "s3cret" };

/* The raw (still escaped) value of parameter NAME in URL, malloc'd. */
static char *
raw_param(const char *url, const char *name)
{
	const char *p, *end;
	size_t n = strlen(name), len;
	char *v;

	if ((p = strchr(url, '?')) == NULL)
		return NULL;
	for (p++; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchr(p, '&');
		if (end == NULL)
			end = p + strlen(p);
		if ((size_t)(end - p) > n && strncmp(p, name, n) == 0 &&
		    p[n] == '=') {
			len = end - p - n - 1;
			v = malloc(len + 1);
			memcpy(v, p + n + 1, len);
			v[len] = '\0';
			return v;
		}
	}
	return NULL;
}

/* The decoded value of parameter NAME in URL, malloc'd, and its length. */
static char *
param(const char *url, const char *name, int *len)
{
	char *raw, *dec, *v;
	int n;

	if ((raw = raw_param(url, name)) == NULL)
		return NULL;
	dec = curl_easy_unescape(NULL, raw, 0, &n);
	free(raw);
	ck_assert_ptr_nonnull(dec);
	v = malloc(n + 1);
	memcpy(v, dec, n + 1);
	curl_free(dec);
	if (len != NULL)
		*len = n;
	return v;
}

static void
assert_raw_param(const char *url, const char *name, const char *want)
{
	char *v = raw_param(url, name);

	ck_assert_msg(v != NULL, "%s missing from %s", name, url);
	ck_assert_str_eq(v, want);
	free(v);
}

static void
assert_no_param(const char *url, const char *name)
{
	char *v = raw_param(url, name);

	ck_assert_msg(v == NULL, "%s unexpectedly in %s", name, url);
}

static char *
send_text(const char *text)
{
	char *url;

	url = panacea_send_url(&acct, "+27821340000", text, strlen(text),
	    "Shop", NULL, 0);
	ck_assert_ptr_nonnull(url);
	return url;
}

START_TEST(send_url_has_action_credentials_and_encoding)
{
	char *url = send_text("hi");

	ck_assert_str_eq(url, BASE "?action=message_send&username=alice"
	    "&password=s3cret&to=27821340000&text=hi&from=Shop"
	    "&auto_detect_encoding=1");
	free(url);
}
END_TEST

START_TEST(send_url_escapes_reserved_characters_in_text)
{
	const char *text = "a b&c+d%e=f#g?h/i";
	char *url = send_text(text), *v;

	assert_raw_param(url, "text",
	    "a%20b%26c%2Bd%25e%3Df%23g%3Fh%2Fi");
	v = param(url, "text", NULL);
	ck_assert_str_eq(v, text);
	free(v);
	free(url);
}
END_TEST

START_TEST(send_url_escapes_utf8_text_bytewise)
{
	char *url = send_text("caf\xc3\xa9 \xf0\x9f\x98\x80");

	assert_raw_param(url, "text", "caf%C3%A9%20%F0%9F%98%80");
	free(url);
}
END_TEST

START_TEST(send_url_long_text_round_trips)
{
	static const char pattern[] = "Ab 9&=+%#\xc3\xa9\xe2\x82\xac.";
	char text[4000], *url, *v;
	size_t i;
	int n;

	for (i = 0; i + 1 < sizeof(text); i++)
		text[i] = pattern[i % (sizeof(pattern) - 1)];
	text[sizeof(text) - 1] = '\0';

	url = send_text(text);
	v = param(url, "text", &n);
	ck_assert_int_eq(n, (int)strlen(text));
	ck_assert_str_eq(v, text);
	ck_assert_ptr_null(strchr(strchr(url, '?'), ' '));
	free(v);
	free(url);
}
END_TEST

START_TEST(send_url_uses_explicit_text_length)
{
	char *url, *v;
	int n;

	url = panacea_send_url(&acct, "27821340000", "hello world", 5, NULL,
	    NULL, 0);
	assert_raw_param(url, "text", "hello");
	free(url);

	url = panacea_send_url(&acct, "27821340000", "a\0b", 3, NULL, NULL,
	    0);
	assert_raw_param(url, "text", "a%00b");
	v = param(url, "text", &n);
	ck_assert_int_eq(n, 3);
	free(v);
	free(url);
}
END_TEST

START_TEST(send_url_zero_length_text_is_empty_not_strlen)
{
	char *url;

	url = panacea_send_url(&acct, "27821340000", "not me", 0, NULL, NULL,
	    0);
	assert_raw_param(url, "text", "");
	free(url);
}
END_TEST

START_TEST(send_url_number_has_no_plus)
{
	char *url;

	url = panacea_send_url(&acct, "+27821340000", "x", 1, NULL, NULL, 0);
	assert_raw_param(url, "to", "27821340000");
	free(url);

	url = panacea_send_url(&acct, "27821340000", "x", 1, NULL, NULL, 0);
	assert_raw_param(url, "to", "27821340000");
	free(url);
}
END_TEST

START_TEST(send_url_omits_null_or_empty_sender)
{
	char *url;

	url = panacea_send_url(&acct, "27821340000", "x", 1, NULL, NULL, 0);
	assert_no_param(url, "from");
	free(url);

	url = panacea_send_url(&acct, "27821340000", "x", 1, "", NULL, 0);
	assert_no_param(url, "from");
	ck_assert_ptr_null(strstr(url, "from"));
	free(url);
}
END_TEST

START_TEST(send_url_escapes_sender)
{
	char *url;

	url = panacea_send_url(&acct, "27821340000", "x", 1, "A&B Co",
	    NULL, 0);
	assert_raw_param(url, "from", "A%26B%20Co");
	free(url);
}
END_TEST

START_TEST(send_url_escapes_report_url_percent_d)
{
	const char *dlr = "https://gw.example.test/dlr?id=00000001&t=ab+c"
	    "&s=%d";
	char *url, *v;

	url = panacea_send_url(&acct, "27821340000", "x", 1, NULL, dlr, 19);
	assert_raw_param(url, "report_mask", "19");
	assert_raw_param(url, "report_url", "https%3A%2F%2Fgw.example.test"
	    "%2Fdlr%3Fid%3D00000001%26t%3Dab%2Bc%26s%3D%25d");
	v = param(url, "report_url", NULL);
	ck_assert_str_eq(v, dlr);
	free(v);
	free(url);
}
END_TEST

START_TEST(send_url_without_report_url_has_no_report_params)
{
	char *url;

	url = panacea_send_url(&acct, "27821340000", "x", 1, NULL, NULL, 19);
	assert_no_param(url, "report_mask");
	assert_no_param(url, "report_url");
	free(url);
}
END_TEST

START_TEST(send_url_appends_to_base_with_query)
{
	struct panacea_account a = { BASE "?v=2", "u", "p" };
	struct panacea_account b = { BASE "?", "u", "p" };
	char *url;

	url = panacea_send_url(&a, "1", "x", 1, NULL, NULL, 0);
	ck_assert_msg(strncmp(url, BASE "?v=2&action=message_send&",
	    strlen(BASE "?v=2&action=message_send&")) == 0, "%s", url);
	free(url);

	url = panacea_send_url(&b, "1", "x", 1, NULL, NULL, 0);
	ck_assert_msg(strncmp(url, BASE "?action=message_send&",
	    strlen(BASE "?action=message_send&")) == 0, "%s", url);
	free(url);
}
END_TEST

START_TEST(send_url_escapes_credentials)
{
	struct panacea_account a = { BASE, "bob smith", "p&ss=w#rd%+" };
	char *url;

	url = panacea_send_url(&a, "1", "x", 1, NULL, NULL, 0);
	assert_raw_param(url, "username", "bob%20smith");
	assert_raw_param(url, "password", "p%26ss%3Dw%23rd%25%2B");
	free(url);
}
END_TEST

START_TEST(balance_url_has_action_and_credentials)
{
	char *url = panacea_balance_url(&acct);

	ck_assert_str_eq(url, BASE "?action=user_get_balance"
	    "&username=alice&password=s3cret");
	free(url);
}
END_TEST

static void
assert_redacted(const char *url, const char *want)
{
	char *r = panacea_redact_url(url);

	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(r, want);
	free(r);
}

START_TEST(redact_replaces_password_anywhere_in_query)
{
	assert_redacted(BASE "?password=s3cret&action=x",
	    BASE "?password=***&action=x");
	assert_redacted(BASE "?action=x&password=s3cret&to=1",
	    BASE "?action=x&password=***&to=1");
	assert_redacted(BASE "?action=x&password=s3cret",
	    BASE "?action=x&password=***");
	assert_redacted(BASE "?a=1&password=one&password=two",
	    BASE "?a=1&password=***&password=***");
}
END_TEST

START_TEST(redact_hides_escaped_special_characters)
{
	struct panacea_account a = { BASE, "u", "Xq&ss=w#Xq%+ \xc3\xa9" };
	char *url, *r;

	url = panacea_send_url(&a, "27821340000", "x", 1, NULL, NULL, 0);
	r = panacea_redact_url(url);
	ck_assert_ptr_null(strstr(r, "Xq"));
	ck_assert_ptr_null(strstr(r, "%C3"));
	assert_raw_param(r, "password", "***");
	assert_raw_param(r, "to", "27821340000");
	free(r);
	free(url);

	/* An unescaped '#' must not leave the tail of the secret behind. */
	assert_redacted(BASE "?password=ab#cd&x=1", BASE "?password=***&x=1");
}
END_TEST

START_TEST(redact_leaves_other_parameters_alone)
{
	assert_redacted(BASE "?mypassword=a&password2=b&passwor=c",
	    BASE "?mypassword=a&password2=b&passwor=c");
	assert_redacted(BASE "?password&x=1", BASE "?password&x=1");
	assert_redacted(BASE, BASE);
	assert_redacted("", "");
	assert_redacted(BASE "?password=", BASE "?password=***");
}
END_TEST

START_TEST(redact_of_balance_url_hides_password)
{
	char *url = panacea_balance_url(&acct), *r;

	r = panacea_redact_url(url);
	ck_assert_ptr_null(strstr(r, "s3cret"));
	ck_assert_str_eq(r, BASE "?action=user_get_balance&username=alice"
	    "&password=***");
	free(r);
	free(url);
}
END_TEST

struct code_case {
	int			 code;
	enum panacea_outcome	 outcome;
	const char		*reason;
	int			 attempt_cap;
};

static const struct code_case code_cases[] = {
	{ 1,		PANACEA_SENT,		"sent",			0 },
	{ 0,		PANACEA_SENT,		"sent",			0 },
	{ 2,		PANACEA_SENT,		"sent",			0 },
	{ 77,		PANACEA_SENT,		"sent",			0 },
	{ -1,		PANACEA_HOLD,		"no-action-specified",	0 },
	{ -2,		PANACEA_HOLD,		"no-such-action",	0 },
	{ -4,		PANACEA_FAILED,		"missing-parameter",	0 },
	{ -8,		PANACEA_HOLD,		"authentication-failed", 0 },
	{ -16,		PANACEA_RETRY,		"internal-error",	0 },
	{ -32,		PANACEA_FAILED,		"routing-error",	0 },
	{ -64,		PANACEA_HOLD,		"out-of-credit",	0 },
	{ -128,		PANACEA_FAILED,		"invalid-record",	0 },
	{ -256,		PANACEA_RETRY,		"could-not-save",	0 },
	{ -512,		PANACEA_FAILED,		"duplicate-record",	0 },
	{ -1024,	PANACEA_FAILED,		"invalid-affiliate",	0 },
	{ -2048,	PANACEA_FAILED,		"no-hlr",		0 },
	{ -4096,	PANACEA_THROTTLED,	"too-many-connections",	0 },
	{ -8192,	PANACEA_THROTTLED,	"upstream-timeout",	0 },
	{ -3,		PANACEA_RETRY,		"unknown-code",		3 },
	{ -5,		PANACEA_RETRY,		"unknown-code",		3 },
	{ -16384,	PANACEA_RETRY,		"unknown-code",		3 },
	{ -2147483647,	PANACEA_RETRY,		"unknown-code",		3 }
};

START_TEST(classify_send_maps_every_code_by_the_table)
{
	const struct code_case *c = &code_cases[_i];
	struct panacea_result r;
	char body[128];

	snprintf(body, sizeof(body),
	    "{\"status\":%d,\"message\":\"x\",\"details\":\"id-1\"}", c->code);
	panacea_classify_send(200, body, strlen(body), &r);
	ck_assert_msg(r.outcome == c->outcome, "code %d: %s", c->code,
	    panacea_outcome_name(r.outcome));
	ck_assert_str_eq(r.reason, c->reason);
	ck_assert_int_eq(r.has_code, 1);
	ck_assert_int_eq(r.code, c->code);
	ck_assert_int_eq(r.attempt_cap, c->attempt_cap);
	ck_assert_int_eq(r.has_balance, 0);
	ck_assert_str_eq(r.upstream_id, c->outcome == PANACEA_SENT ?
	    "id-1" : "");
}
END_TEST

struct body_case {
	long		 http;
	const char	*body;
	const char	*reason;
};

static const struct body_case broken_cases[] = {
	{ 200,	"",					"empty-body" },
	{ 200,	" \r\n\t ",				"empty-body" },
	{ 200,	"<html><body>Bad Gateway</body></html>", "not-json" },
	{ 200,	"{\"status\":1,\"details\":\"ab",	"not-json" },
	{ 200,	"{\"status\":1",			"not-json" },
	{ 200,	"{\"status\":1}garbage",		"not-json" },
	{ 200,	"{\"status\":1}{\"status\":1}",		"not-json" },
	{ 200,	"{\"status\":1,\"details\":\"\xff\"}",	"not-json" },
	{ 200,	"{status:1}",				"not-json" },
	{ 200,	"[{\"status\":1}]",			"not-an-object" },
	{ 200,	"\"sent\"",				"not-an-object" },
	{ 200,	"1",					"not-an-object" },
	{ 200,	"null",					"not-an-object" },
	{ 200,	"{}",					"no-status" },
	{ 200,	"{\"message\":\"Sent\",\"details\":\"x\"}", "no-status" },
	{ 200,	"{\"status\":\"abc\"}",			"no-status" },
	{ 200,	"{\"status\":\"\"}",			"no-status" },
	{ 200,	"{\"status\":\"1x\"}",			"no-status" },
	{ 200,	"{\"status\":1.5}",			"no-status" },
	{ 200,	"{\"status\":1e0}",			"no-status" },
	{ 200,	"{\"status\":true}",			"no-status" },
	{ 200,	"{\"status\":null}",			"no-status" },
	{ 200,	"{\"status\":{\"code\":1}}",		"no-status" },
	{ 200,	"{\"status\":[1]}",			"no-status" },
	{ 200,	"{\"status\":4294967297}",		"no-status" },
	{ 200,	"{\"details\":{\"status\":1}}",		"no-status" },
	{ 200,	"{\"status\":1,\"status\":\"x\"}",	"no-status" },
	{ 500,	"{\"status\":1,\"details\":\"id\"}",	"http-500" },
	{ 503,	"{\"status\":1,\"details\":\"id\"}",	"http-503" },
	{ 404,	"<html>Not Found</html>",		"http-404" },
	{ 201,	"{\"status\":1,\"details\":\"id\"}",	"http-201" },
	{ 0,	"",					"http-0" }
};

START_TEST(classify_send_retries_every_broken_answer)
{
	const struct body_case *c = &broken_cases[_i];
	struct panacea_result r;

	panacea_classify_send(c->http, c->body, strlen(c->body), &r);
	ck_assert_msg(r.outcome == PANACEA_RETRY, "%s: %s", c->body,
	    panacea_outcome_name(r.outcome));
	ck_assert_msg(strcmp(r.reason, c->reason) == 0, "%s: %s", c->body,
	    r.reason);
	ck_assert_int_eq(r.has_code, 0);
	ck_assert_int_eq(r.attempt_cap, 0);
	ck_assert_str_eq(r.upstream_id, "");
}
END_TEST

static void
classify(const char *body, struct panacea_result *r)
{
	panacea_classify_send(200, body, strlen(body), r);
}

START_TEST(classify_send_accepts_status_as_numeric_string)
{
	struct panacea_result r;

	classify("{\"status\":\"1\",\"details\":\"id-7\"}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_int_eq(r.code, 1);
	ck_assert_str_eq(r.upstream_id, "id-7");

	classify("{\"status\":\" 1 \"}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);

	classify("{\"status\":\"-4096\"}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_THROTTLED);
	ck_assert_int_eq(r.has_code, 1);
	ck_assert_int_eq(r.code, -4096);
}
END_TEST

START_TEST(classify_send_takes_id_from_string_or_number_details)
{
	struct panacea_result r;

	classify("{\"status\":1,\"message\":\"Sent\",\"details\":"
	    "\"8beda1a8-5c12-489f-0107-123000000003\"}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_str_eq(r.reason, "sent");
	ck_assert_str_eq(r.upstream_id,
	    "8beda1a8-5c12-489f-0107-123000000003");

	classify("{\"details\":123456789012,\"status\":1}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_str_eq(r.upstream_id, "123456789012");
}
END_TEST

START_TEST(classify_send_is_sent_without_usable_details)
{
	static const char *bodies[] = {
		"{\"status\":1}",
		"{\"status\":1,\"details\":{\"id\":\"x\"}}",
		"{\"status\":1,\"details\":[\"x\"]}",
		"{\"status\":1,\"details\":null}",
		"{\"status\":1,\"details\":true}",
		"{\"status\":1,\"details\":\"\"}"
	};
	struct panacea_result r;
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		classify(bodies[i], &r);
		ck_assert_msg(r.outcome == PANACEA_SENT, "%s", bodies[i]);
		ck_assert_str_eq(r.upstream_id, "");
		ck_assert_int_eq(r.code, 1);
	}
}
END_TEST

START_TEST(classify_send_later_details_replace_earlier)
{
	struct panacea_result r;

	classify("{\"details\":\"old\",\"status\":1,\"details\":{}}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_str_eq(r.upstream_id, "");
}
END_TEST

START_TEST(classify_send_ignores_nested_members)
{
	struct panacea_result r;

	classify("{\"message\":{\"status\":-8,\"details\":\"no\"},"
	    "\"status\":1,\"x\":[{\"details\":\"no\"}],\"details\":\"yes\"}",
	    &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_int_eq(r.code, 1);
	ck_assert_str_eq(r.upstream_id, "yes");
}
END_TEST

START_TEST(classify_send_cuts_long_id_to_64_bytes)
{
	char body[256], id[101];
	struct panacea_result r;

	memset(id, 'a', 100);
	id[100] = '\0';
	snprintf(body, sizeof(body), "{\"status\":1,\"details\":\"%s\"}", id);
	classify(body, &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_uint_eq(strlen(r.upstream_id), 64);
	ck_assert_int_eq(strncmp(r.upstream_id, id, 64), 0);

	/* 63 ASCII bytes and a two-byte character: cut before it. */
	memset(id, 'b', 63);
	strcpy(id + 63, "\xc3\xa9zz");
	snprintf(body, sizeof(body), "{\"status\":1,\"details\":\"%s\"}", id);
	classify(body, &r);
	ck_assert_uint_eq(strlen(r.upstream_id), 63);
}
END_TEST

START_TEST(classify_send_reads_only_len_bytes)
{
	static const char good[] = "{\"status\":1,\"details\":\"abc\"}";
	struct panacea_result r;
	char *body;

	/* Not NUL-terminated: the sanitizers catch any read past the end. */
	body = malloc(sizeof(good) - 1);
	memcpy(body, good, sizeof(good) - 1);
	panacea_classify_send(200, body, sizeof(good) - 1, &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_str_eq(r.upstream_id, "abc");
	free(body);

	panacea_classify_send(200, "{\"status\":1}\0junk", 17, &r);
	ck_assert_int_eq(r.outcome, PANACEA_RETRY);
	ck_assert_str_eq(r.reason, "not-json");

	panacea_classify_send(200, "{\"status\":1}   ", 12, &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);

	panacea_classify_send(200, NULL, 0, &r);
	ck_assert_str_eq(r.reason, "empty-body");
}
END_TEST

START_TEST(classify_send_survives_64k_of_open_brackets)
{
	size_t n = 64 * 1024;
	struct panacea_result r;
	char *body = malloc(n);

	memset(body, '[', n);
	panacea_classify_send(200, body, n, &r);
	ck_assert_int_eq(r.outcome, PANACEA_RETRY);
	ck_assert_str_eq(r.reason, "not-json");

	memset(body, '{', n);
	panacea_classify_send(200, body, n, &r);
	ck_assert_int_eq(r.outcome, PANACEA_RETRY);
	ck_assert_str_eq(r.reason, "not-json");
	free(body);
}
END_TEST

START_TEST(classify_send_survives_deep_but_complete_nesting)
{
	static const char head[] = "{\"status\":1,\"details\":\"id\",\"x\":";
	size_t depth = 30000, n = sizeof(head) - 1 + 2 * depth + 1;
	struct panacea_result r;
	char *body = malloc(n), *p;

	p = body;
	memcpy(p, head, sizeof(head) - 1);
	p += sizeof(head) - 1;
	memset(p, '[', depth);
	memset(p + depth, ']', depth);
	p[2 * depth] = '}';

	panacea_classify_send(200, body, n, &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_str_eq(r.upstream_id, "id");
	free(body);
}
END_TEST

START_TEST(classify_transport_is_retry_without_code)
{
	char longer[200];
	struct panacea_result r;

	memset(&r, 0x5a, sizeof(r));
	panacea_classify_transport("connect-failed", &r);
	ck_assert_int_eq(r.outcome, PANACEA_RETRY);
	ck_assert_str_eq(r.reason, "connect-failed");
	ck_assert_int_eq(r.has_code, 0);
	ck_assert_int_eq(r.attempt_cap, 0);
	ck_assert_str_eq(r.upstream_id, "");

	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	panacea_classify_transport(longer, &r);
	ck_assert_uint_eq(strlen(r.reason), sizeof(r.reason) - 1);

	panacea_classify_transport(NULL, &r);
	ck_assert_int_eq(r.outcome, PANACEA_RETRY);
	ck_assert_str_eq(r.reason, "transport-error");
}
END_TEST

static void
balance(const char *body, struct panacea_result *r)
{
	panacea_classify_balance(200, body, strlen(body), r);
}

START_TEST(classify_balance_reads_number_or_numeric_string)
{
	struct panacea_result r;

	balance("{\"status\":0,\"message\":\"OK\",\"details\":125.5}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_str_eq(r.reason, "sent");
	ck_assert_int_eq(r.has_code, 1);
	ck_assert_int_eq(r.code, 0);
	ck_assert_int_eq(r.has_balance, 1);
	ck_assert_double_eq(r.balance, 125.5);
	ck_assert_str_eq(r.upstream_id, "");

	balance("{\"status\":\"0\",\"details\":\" 42.25 \"}", &r);
	ck_assert_int_eq(r.has_balance, 1);
	ck_assert_double_eq(r.balance, 42.25);

	balance("{\"status\":0,\"details\":\"-3\"}", &r);
	ck_assert_int_eq(r.has_balance, 1);
	ck_assert_double_eq(r.balance, -3.0);

	balance("{\"status\":0,\"details\":0}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_SENT);
	ck_assert_int_eq(r.has_balance, 1);
	ck_assert_double_eq(r.balance, 0.0);
}
END_TEST

START_TEST(classify_balance_rejects_non_numeric_balance)
{
	static const char *bodies[] = {
		"{\"status\":0}",
		"{\"status\":0,\"details\":\"abc\"}",
		"{\"status\":0,\"details\":\"\"}",
		"{\"status\":0,\"details\":\"12abc\"}",
		"{\"status\":0,\"details\":\"nan\"}",
		"{\"status\":0,\"details\":\"inf\"}",
		"{\"status\":0,\"details\":\"0x10\"}",
		"{\"status\":0,\"details\":\"1e999\"}",
		"{\"status\":0,\"details\":{\"balance\":1}}",
		"{\"status\":0,\"details\":[1]}",
		"{\"status\":0,\"details\":null}"
	};
	struct panacea_result r;
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		balance(bodies[i], &r);
		ck_assert_msg(r.outcome == PANACEA_RETRY, "%s", bodies[i]);
		ck_assert_str_eq(r.reason, "bad-balance");
		ck_assert_int_eq(r.has_balance, 0);
		ck_assert_int_eq(r.has_code, 1);
	}
}
END_TEST

START_TEST(classify_balance_errors_as_classify_send)
{
	struct panacea_result r;

	balance("{\"status\":-8,\"details\":\"12\"}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_HOLD);
	ck_assert_str_eq(r.reason, "authentication-failed");
	ck_assert_int_eq(r.has_balance, 0);

	balance("{\"status\":-4096}", &r);
	ck_assert_int_eq(r.outcome, PANACEA_THROTTLED);

	balance("{\"status\":-99}", &r);
	ck_assert_str_eq(r.reason, "unknown-code");
	ck_assert_int_eq(r.attempt_cap, 3);

	balance("<html></html>", &r);
	ck_assert_str_eq(r.reason, "not-json");

	panacea_classify_balance(503, "{\"status\":0,\"details\":1}",
	    strlen("{\"status\":0,\"details\":1}"), &r);
	ck_assert_int_eq(r.outcome, PANACEA_RETRY);
	ck_assert_str_eq(r.reason, "http-503");
	ck_assert_int_eq(r.has_balance, 0);
}
END_TEST

/* 2015-10-21T07:28:00Z, in ms since the epoch. */
#define DATE_MS	INT64_C(1445412480000)

START_TEST(retry_after_reads_delay_seconds)
{
	ck_assert_int_eq(panacea_retry_after("120", 0), 120000);
	ck_assert_int_eq(panacea_retry_after(" 7 ", DATE_MS), 7000);
	ck_assert_int_eq(panacea_retry_after("0", 0), 0);
	ck_assert_int_eq(panacea_retry_after("86400", 0), 86400000);
}
END_TEST

START_TEST(retry_after_caps_absurd_delays_at_a_day)
{
	ck_assert_int_eq(panacea_retry_after("86401", 0), 86400000);
	ck_assert_int_eq(panacea_retry_after("99999999999999999999999", 0),
	    86400000);
	ck_assert_int_eq(panacea_retry_after("Fri, 01 Jan 2100 00:00:00 GMT",
	    DATE_MS), 86400000);
}
END_TEST

START_TEST(retry_after_reads_http_dates)
{
	ck_assert_int_eq(panacea_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
	    DATE_MS - 60000), 60000);
	ck_assert_int_eq(panacea_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
	    DATE_MS - 1500), 1500);
	ck_assert_int_eq(panacea_retry_after("Wednesday, 21-Oct-15 07:28:00 "
	    "GMT", DATE_MS - 5000), 5000);
	ck_assert_int_eq(panacea_retry_after("Wed Oct 21 07:28:00 2015",
	    DATE_MS - 5000), 5000);
	ck_assert_int_eq(panacea_retry_after("Wed Oct  1 07:28:00 2015",
	    DATE_MS - 20 * INT64_C(86400000) - 5000), 5000);
}
END_TEST

START_TEST(retry_after_date_in_the_past_is_zero)
{
	ck_assert_int_eq(panacea_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
	    DATE_MS + 60000), 0);
}
END_TEST

START_TEST(retry_after_rejects_garbage)
{
	static const char *values[] = {
		"", "   ", "abc", "12abc", "1.5", "-5", "+5", "0x10",
		"Wed, 21 Oct 2015 07:28:00",
		"Wed, 21 Oct 2015 07:28:00 GMT trailing",
		"Wed, 32 Oct 2015 07:28:00 GMT",
		"Wed, 21 Foo 2015 07:28:00 GMT"
	};
	size_t i;

	ck_assert_int_eq(panacea_retry_after(NULL, 0), -1);
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		ck_assert_msg(panacea_retry_after(values[i], DATE_MS) == -1,
		    "\"%s\" accepted", values[i]);
}
END_TEST

START_TEST(outcome_names_are_stable)
{
	ck_assert_str_eq(panacea_outcome_name(PANACEA_SENT), "sent");
	ck_assert_str_eq(panacea_outcome_name(PANACEA_THROTTLED), "throttled");
	ck_assert_str_eq(panacea_outcome_name(PANACEA_RETRY), "retry");
	ck_assert_str_eq(panacea_outcome_name(PANACEA_FAILED), "failed");
	ck_assert_str_eq(panacea_outcome_name(PANACEA_HOLD), "hold");
	ck_assert_str_eq(panacea_outcome_name((enum panacea_outcome)99),
	    "unknown");
}
END_TEST

static Suite *
panacea_suite(void)
{
	Suite *s = suite_create("panacea");
	TCase *url = tcase_create("url");
	TCase *redact = tcase_create("redact");
	TCase *send = tcase_create("classify");
	TCase *other = tcase_create("other");

	tcase_add_test(url, send_url_has_action_credentials_and_encoding);
	tcase_add_test(url, send_url_escapes_reserved_characters_in_text);
	tcase_add_test(url, send_url_escapes_utf8_text_bytewise);
	tcase_add_test(url, send_url_long_text_round_trips);
	tcase_add_test(url, send_url_uses_explicit_text_length);
	tcase_add_test(url, send_url_zero_length_text_is_empty_not_strlen);
	tcase_add_test(url, send_url_number_has_no_plus);
	tcase_add_test(url, send_url_omits_null_or_empty_sender);
	tcase_add_test(url, send_url_escapes_sender);
	tcase_add_test(url, send_url_escapes_report_url_percent_d);
	tcase_add_test(url, send_url_without_report_url_has_no_report_params);
	tcase_add_test(url, send_url_appends_to_base_with_query);
	tcase_add_test(url, send_url_escapes_credentials);
	tcase_add_test(url, balance_url_has_action_and_credentials);
	suite_add_tcase(s, url);

	tcase_add_test(redact, redact_replaces_password_anywhere_in_query);
	tcase_add_test(redact, redact_hides_escaped_special_characters);
	tcase_add_test(redact, redact_leaves_other_parameters_alone);
	tcase_add_test(redact, redact_of_balance_url_hides_password);
	suite_add_tcase(s, redact);

	tcase_add_loop_test(send, classify_send_maps_every_code_by_the_table,
	    0, sizeof(code_cases) / sizeof(code_cases[0]));
	tcase_add_loop_test(send, classify_send_retries_every_broken_answer,
	    0, sizeof(broken_cases) / sizeof(broken_cases[0]));
	tcase_add_test(send, classify_send_accepts_status_as_numeric_string);
	tcase_add_test(send,
	    classify_send_takes_id_from_string_or_number_details);
	tcase_add_test(send, classify_send_is_sent_without_usable_details);
	tcase_add_test(send, classify_send_later_details_replace_earlier);
	tcase_add_test(send, classify_send_ignores_nested_members);
	tcase_add_test(send, classify_send_cuts_long_id_to_64_bytes);
	tcase_add_test(send, classify_send_reads_only_len_bytes);
	tcase_add_test(send, classify_send_survives_64k_of_open_brackets);
	tcase_add_test(send, classify_send_survives_deep_but_complete_nesting);
	tcase_add_test(send, classify_transport_is_retry_without_code);
	tcase_add_test(send, classify_balance_reads_number_or_numeric_string);
	tcase_add_test(send, classify_balance_rejects_non_numeric_balance);
	tcase_add_test(send, classify_balance_errors_as_classify_send);
	suite_add_tcase(s, send);

	tcase_add_test(other, retry_after_reads_delay_seconds);
	tcase_add_test(other, retry_after_caps_absurd_delays_at_a_day);
	tcase_add_test(other, retry_after_reads_http_dates);
	tcase_add_test(other, retry_after_date_in_the_past_is_zero);
	tcase_add_test(other, retry_after_rejects_garbage);
	tcase_add_test(other, outcome_names_are_stable);
	suite_add_tcase(s, other);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(panacea_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
