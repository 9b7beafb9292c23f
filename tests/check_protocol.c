/* Tests of the socket protocol's parser and response writer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static const struct protocol_limits limits = { 8, 604800 };

/* Parses LINE and returns the error code, or "ok". */
static const char *
parse(const char *line, struct protocol_request *rq)
{
	static struct protocol_error e;

	if (protocol_parse(line, strlen(line), &limits, rq, &e) == 0)
		return "ok";
	return e.code;
}

static const char *
code_of(const char *line)
{
	struct protocol_request rq;
	const char *code = parse(line, &rq);

	protocol_request_clear(&rq);
	return code;
}

START_TEST(send_with_every_field_is_parsed)
{
	struct protocol_request rq;

	ck_assert_str_eq(parse("{\"op\":\"send\",\"to\":\"+27821234567\","
	    "\"text\":\"Your code is 4711\",\"from\":\"ACME\","
	    "\"ref\":\"order-9931\",\"priority\":\"high\","
	    "\"valid_for\":3600,\"req\":7}", &rq), "ok");
	ck_assert_int_eq(rq.op, PROTOCOL_SEND);
	ck_assert_str_eq(rq.to, "+27821234567");
	ck_assert_str_eq(rq.text, "Your code is 4711");
	ck_assert_str_eq(rq.from, "ACME");
	ck_assert_str_eq(rq.ref, "order-9931");
	ck_assert_int_eq(rq.priority, 1);
	ck_assert_int_eq(rq.valid_for, 3600);
	ck_assert_int_eq(rq.segments, 1);
	ck_assert_int_eq(rq.encoding, MESSAGE_GSM7);
	ck_assert_int_eq(rq.req_type, PROTOCOL_REQ_NUMBER);
	ck_assert_str_eq(rq.req, "7");
	protocol_request_clear(&rq);
}
END_TEST

START_TEST(number_prefixes_are_normalised)
{
	struct protocol_request rq;

	ck_assert_str_eq(parse("{\"op\":\"send\",\"to\":\"0027821234567\","
	    "\"text\":\"x\"}", &rq), "ok");
	ck_assert_str_eq(rq.to, "+27821234567");
	protocol_request_clear(&rq);
	ck_assert_str_eq(parse("{\"op\":\"send\",\"to\":\"27821234567\","
	    "\"text\":\"x\"}", &rq), "ok");
	ck_assert_str_eq(rq.to, "+27821234567");
	protocol_request_clear(&rq);
}
END_TEST

START_TEST(malformed_lines_are_bad_requests)
{
	static const char *lines[] = {
		"not json",
		"{\"op\":\"ping\"",
		"[1,2,3]",
		"\"ping\"",
		"42",
		"null",
		"{\"op\":\"ping\"} trailing",
		"{\"op\":\"ping\"}{\"op\":\"ping\"}",
		"{\"op\":\"ping\",}",
		"{\"op\":\"ping\",\"x\":\"\xff\xfe\"}",
		"{\"op\":\"ping\",\"x\":\"\xc0\xaf\"}",
		"{\"op\":\"ping\",\"x\":\"\xed\xa0\x80\"}",
		"{\"op\":\"ping\",\"x\":\"\xf4\x90\x80\x80\"}",
		"{\"op\":\"ping\",\"x\":\"\xe2\x82\"}",
		"{\"op\":\"ping\",\"x\":\"\\ud800\"}",
		"{\"op\":\"ping\",\"x\":\"\\udc00\"}",
		"{\"op\":\"ping\",\"x\":\"\\ud800\\u0041\"}",
	};
	size_t i;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		ck_assert_msg(strcmp(code_of(lines[i]), "bad_request") == 0,
		    "line %zu: %s", i, lines[i]);
}
END_TEST

START_TEST(a_paired_surrogate_escape_is_accepted)
{
	struct protocol_request rq;

	ck_assert_str_eq(parse("{\"op\":\"send\",\"to\":\"+27821234567\","
	    "\"text\":\"\\ud83d\\ude00\"}", &rq), "ok");
	ck_assert_str_eq(rq.text, "\xf0\x9f\x98\x80");
	ck_assert_int_eq(rq.encoding, MESSAGE_UCS2);
	protocol_request_clear(&rq);
	/* An escaped backslash before "u" is no escape at all. */
	ck_assert_str_eq(code_of("{\"op\":\"ping\",\"x\":\"\\\\ud800\"}"),
	    "ok");
}
END_TEST

START_TEST(op_errors_are_bad_requests)
{
	ck_assert_str_eq(code_of("{}"), "bad_request");
	ck_assert_str_eq(code_of("{\"op\":5}"), "bad_request");
	ck_assert_str_eq(code_of("{\"op\":\"launch\"}"), "bad_request");
	ck_assert_str_eq(code_of("{\"op\":\"ping\",\"op\":\"ping\"}"),
	    "bad_request");
	ck_assert_str_eq(code_of("{\"op\":\"ping\"}"), "ok");
	ck_assert_str_eq(code_of("{\"op\":\"stats\"}"), "ok");
}
END_TEST

START_TEST(wrong_field_types_are_bad_requests)
{
	static const char *lines[] = {
		"{\"op\":\"send\",\"to\":27821234567,\"text\":\"x\"}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":5}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":[\"x\"]}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"from\":7}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"ref\":7}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"ref\":\"\"}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"priority\":\"urgent\"}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"priority\":1}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"valid_for\":\"60\"}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"valid_for\":1.5}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"valid_for\":0}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"valid_for\":-5}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"valid_for\":1e3}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"valid_for\":604801}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"x\","
		    "\"valid_for\":99999999999999999999999}",
		"{\"op\":\"send\",\"to\":\"+27821234567\",\"text\":\"a\\u0000b\"}",
		"{\"op\":\"send\",\"text\":\"x\"}",
		"{\"op\":\"ping\",\"req\":{\"a\":1}}",
		"{\"op\":\"ping\",\"req\":true}",
		"{\"op\":\"status\"}",
		"{\"op\":\"status\",\"id\":12}",
		"{\"op\":\"cancel\"}",
	};
	size_t i;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		ck_assert_msg(strcmp(code_of(lines[i]), "bad_request") == 0,
		    "line %zu: %s gave %s", i, lines[i], code_of(lines[i]));
}
END_TEST

START_TEST(bad_numbers_are_invalid_number)
{
	static const char *numbers[] = {
		"1234567", "+1234567890123456", "+0821234567", "+27 82 123",
		"+27-821234567", "abc", "", "+", "0027a21234567",
	};
	char line[128];
	size_t i;

	for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
		snprintf(line, sizeof(line), "{\"op\":\"send\",\"to\":\"%s\","
		    "\"text\":\"x\"}", numbers[i]);
		ck_assert_msg(strcmp(code_of(line), "invalid_number") == 0,
		    "%s", numbers[i]);
	}
}
END_TEST

START_TEST(bad_senders_are_invalid_sender)
{
	static const char *senders[] = {
		"", "ACME CORP", "TWELVECHARSX", "+12345678901234567", "A-B",
		"\xc3\x84pfel",
	};
	char line[160];
	size_t i;

	for (i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		snprintf(line, sizeof(line), "{\"op\":\"send\","
		    "\"to\":\"+27821234567\",\"text\":\"x\",\"from\":\"%s\"}",
		    senders[i]);
		ck_assert_msg(strcmp(code_of(line), "invalid_sender") == 0,
		    "%s", senders[i]);
	}
	ck_assert_str_eq(code_of("{\"op\":\"send\",\"to\":\"+27821234567\","
	    "\"text\":\"x\",\"from\":\"+1234567890123456\"}"), "ok");
}
END_TEST

/* The longest sender once overflowed its field into the next one. */
START_TEST(the_longest_sender_fits_its_field)
{
	struct protocol_request rq;

	ck_assert_str_eq(parse("{\"op\":\"send\",\"to\":\"+27821234567\","
	    "\"text\":\"x\",\"from\":\"+1234567890123456\","
	    "\"priority\":\"high\"}", &rq), "ok");
	ck_assert_str_eq(rq.from, "+1234567890123456");
	ck_assert_int_eq(rq.priority, 1);
	protocol_request_clear(&rq);
}
END_TEST

START_TEST(missing_or_empty_text_is_empty_text)
{
	ck_assert_str_eq(code_of("{\"op\":\"send\",\"to\":\"+27821234567\"}"),
	    "empty_text");
	ck_assert_str_eq(code_of("{\"op\":\"send\",\"to\":\"+27821234567\","
	    "\"text\":\"\"}"), "empty_text");
}
END_TEST

START_TEST(nine_parts_are_text_too_long)
{
	char line[2048];
	int n;

	/* 8 parts hold 8 * 153 = 1224 septets; one more needs a ninth. */
	n = snprintf(line, sizeof(line), "{\"op\":\"send\","
	    "\"to\":\"+27821234567\",\"text\":\"");
	memset(line + n, 'a', 1224);
	strcpy(line + n + 1224, "\"}");
	ck_assert_str_eq(code_of(line), "ok");
	memset(line + n, 'a', 1225);
	strcpy(line + n + 1225, "\"}");
	ck_assert_str_eq(code_of(line), "text_too_long");
}
END_TEST

START_TEST(unknown_fields_are_ignored_even_when_nested)
{
	ck_assert_str_eq(code_of("{\"op\":\"ping\",\"x\":{\"op\":\"send\","
	    "\"to\":[1,{\"text\":null}]},\"y\":true}"), "ok");
}
END_TEST

START_TEST(deep_nesting_is_refused)
{
	char line[300];
	int i, n;

	n = snprintf(line, sizeof(line), "{\"op\":\"ping\",\"x\":");
	for (i = 0; i < 100; i++)
		line[n++] = '[';
	line[n] = '\0';
	ck_assert_str_eq(code_of(line), "bad_request");
}
END_TEST

START_TEST(req_is_kept_even_when_the_request_is_bad)
{
	struct protocol_request rq;

	ck_assert_str_eq(parse("{\"req\":\"abc\",\"op\":\"fly\"}", &rq),
	    "bad_request");
	ck_assert_int_eq(rq.req_type, PROTOCOL_REQ_STRING);
	ck_assert_str_eq(rq.req, "abc");
	protocol_request_clear(&rq);
}
END_TEST

START_TEST(status_takes_an_id_or_a_ref)
{
	struct protocol_request rq;

	ck_assert_str_eq(parse("{\"op\":\"status\",\"id\":\"00000000000003e9\"}",
	    &rq), "ok");
	ck_assert_int_eq(rq.has_id, 1);
	ck_assert_int_eq(rq.id, 1001);
	protocol_request_clear(&rq);
	ck_assert_str_eq(parse("{\"op\":\"status\",\"ref\":\"r1\"}", &rq), "ok");
	ck_assert_int_eq(rq.has_id, 0);
	ck_assert_str_eq(rq.ref, "r1");
	protocol_request_clear(&rq);
	/* An id we never issued parses, and names nothing. */
	ck_assert_str_eq(parse("{\"op\":\"cancel\",\"id\":\"zz\"}", &rq), "ok");
	ck_assert_int_eq(rq.id, 0);
	protocol_request_clear(&rq);
}
END_TEST

START_TEST(ids_round_trip_as_16_hex_digits)
{
	char buf[PROTOCOL_ID_LEN + 1];
	int64_t id;

	protocol_id_format(1001, buf);
	ck_assert_str_eq(buf, "00000000000003e9");
	ck_assert_int_eq(protocol_id_parse(buf, strlen(buf), &id), 0);
	ck_assert_int_eq(id, 1001);
	ck_assert_int_eq(protocol_id_parse("0", 1, &id), -1);
	ck_assert_int_eq(protocol_id_parse("00000000000003e9f", 17, &id), -1);
	ck_assert_int_eq(protocol_id_parse("8000000000000000", 16, &id), -1);
}
END_TEST

START_TEST(replies_echo_req_exactly)
{
	struct protocol_reply *r = protocol_reply_new();
	struct protocol_request rq;
	const char *line;
	size_t len;

	ck_assert_str_eq(parse("{\"op\":\"ping\",\"req\":"
	    "123456789012345678901234567890}", &rq), "ok");
	protocol_reply_begin(r, &rq, 1);
	line = protocol_reply_line(r, &len);
	ck_assert_int_eq(len, strlen("{\"ok\":true,\"req\":"
	    "123456789012345678901234567890}\n"));
	ck_assert(memcmp(line, "{\"ok\":true,\"req\":"
	    "123456789012345678901234567890}\n", len) == 0);
	protocol_request_clear(&rq);

	ck_assert_str_eq(parse("{\"op\":\"ping\",\"req\":\"a\\\"b\\u00e9\"}",
	    &rq), "ok");
	line = protocol_reply_error(r, &rq, "not_found", "no such message",
	    &len);
	ck_assert(memcmp(line, "{\"ok\":false,\"req\":\"a\\\"b\xc3\xa9\","
	    "\"error\":\"not_found\",\"message\":\"no such message\"}\n",
	    len) == 0);
	protocol_request_clear(&rq);
	protocol_reply_free(r);
}
END_TEST

START_TEST(reply_fields_and_nesting_are_written)
{
	struct protocol_reply *r = protocol_reply_new();
	const char *line;
	size_t len;
	char expect[] = "{\"ok\":true,\"id\":\"x\",\"n\":-3,\"b\":false,"
	    "\"o\":{\"q\":1},\"z\":null,\"bad\":null}\n";

	protocol_reply_begin(r, NULL, 1);
	protocol_reply_string(r, "id", "x");
	protocol_reply_int(r, "n", -3);
	protocol_reply_bool(r, "b", 0);
	protocol_reply_open(r, "o");
	protocol_reply_int(r, "q", 1);
	protocol_reply_close(r);
	protocol_reply_null(r, "z");
	protocol_reply_bytes(r, "bad", "\xff", 1);
	line = protocol_reply_line(r, &len);
	ck_assert_int_eq(len, strlen(expect));
	ck_assert(memcmp(line, expect, len) == 0);
	protocol_reply_free(r);
}
END_TEST

START_TEST(inbox_takes_a_cursor_and_a_limit)
{
	struct protocol_request rq;

	ck_assert_str_eq(parse("{\"op\":\"inbox\"}", &rq), "ok");
	ck_assert_int_eq(rq.op, PROTOCOL_INBOX);
	ck_assert_int_eq(rq.after, 0);
	ck_assert_int_eq(rq.limit, PROTOCOL_INBOX_LIMIT);
	protocol_request_clear(&rq);
	ck_assert_str_eq(parse("{\"op\":\"inbox\",\"after\":42,"
	    "\"limit\":7}", &rq), "ok");
	ck_assert_int_eq(rq.after, 42);
	ck_assert_int_eq(rq.limit, 7);
	protocol_request_clear(&rq);
	ck_assert_str_eq(code_of("{\"op\":\"inbox\",\"after\":-1}"),
	    "bad_request");
	ck_assert_str_eq(parse("{\"op\":\"inbox\","
	    "\"after\":9223372036854775807}", &rq), "ok");
	ck_assert_int_eq(rq.after, INT64_MAX);
	protocol_request_clear(&rq);
	ck_assert_str_eq(code_of("{\"op\":\"inbox\","
	    "\"after\":9223372036854775808}"), "bad_request");
	ck_assert_str_eq(code_of("{\"op\":\"inbox\",\"after\":\"3\"}"),
	    "bad_request");
	ck_assert_str_eq(code_of("{\"op\":\"inbox\",\"limit\":0}"),
	    "bad_request");
	ck_assert_str_eq(code_of("{\"op\":\"inbox\",\"limit\":1001}"),
	    "bad_request");
}
END_TEST

START_TEST(arrays_of_objects_are_written)
{
	struct protocol_reply *r = protocol_reply_new();
	const char *line;
	size_t len;
	char expect[] = "{\"ok\":true,\"a\":[{\"x\":1},{\"x\":2}]}\n";

	protocol_reply_begin(r, NULL, 1);
	protocol_reply_open_array(r, "a");
	protocol_reply_open(r, NULL);
	protocol_reply_int(r, "x", 1);
	protocol_reply_close(r);
	protocol_reply_open(r, NULL);
	protocol_reply_int(r, "x", 2);
	protocol_reply_close(r);
	protocol_reply_close_array(r);
	line = protocol_reply_line(r, &len);
	ck_assert_int_eq(len, strlen(expect));
	ck_assert(memcmp(line, expect, len) == 0);
	protocol_reply_free(r);
}
END_TEST

static Suite *
protocol_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, send_with_every_field_is_parsed);
	tcase_add_test(tc, number_prefixes_are_normalised);
	tcase_add_test(tc, malformed_lines_are_bad_requests);
	tcase_add_test(tc, a_paired_surrogate_escape_is_accepted);
	tcase_add_test(tc, op_errors_are_bad_requests);
	tcase_add_test(tc, wrong_field_types_are_bad_requests);
	tcase_add_test(tc, bad_numbers_are_invalid_number);
	tcase_add_test(tc, bad_senders_are_invalid_sender);
	tcase_add_test(tc, the_longest_sender_fits_its_field);
	tcase_add_test(tc, missing_or_empty_text_is_empty_text);
	tcase_add_test(tc, nine_parts_are_text_too_long);
	tcase_add_test(tc, unknown_fields_are_ignored_even_when_nested);
	tcase_add_test(tc, deep_nesting_is_refused);
	tcase_add_test(tc, req_is_kept_even_when_the_request_is_bad);
	tcase_add_test(tc, status_takes_an_id_or_a_ref);
	tcase_add_test(tc, ids_round_trip_as_16_hex_digits);
	tcase_add_test(tc, replies_echo_req_exactly);
	tcase_add_test(tc, reply_fields_and_nesting_are_written);
	tcase_add_test(tc, inbox_takes_a_cursor_and_a_limit);
	tcase_add_test(tc, arrays_of_objects_are_written);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(protocol_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
