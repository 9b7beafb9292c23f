/* Unit tests for message.c: states, numbers, sender ids and segments. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

#define LEN(s)	(sizeof(s) - 1)

/* Up to three runs of a piece of UTF-8, each repeated count times. */
struct run {
	const char	*piece;
	size_t		 count;
};

struct seg_case {
	const char		*what;
	struct run		 runs[3];
	enum message_encoding	 enc;
	int			 parts;
};

struct num_case {
	const char	*in;
	size_t		 n;
	const char	*out;	/* NULL when the input must be rejected */
};

struct bytes_case {
	const char	*in;
	size_t		 n;
};

static char *
build(const struct run *runs, size_t nruns, size_t *len)
{
	size_t i, j, k, total = 0, pl;
	char *buf, *p;

	for (i = 0; i < nruns; i++) {
		if (runs[i].piece != NULL)
			total += strlen(runs[i].piece) * runs[i].count;
	}
	buf = malloc(total + 1);
	ck_assert_ptr_nonnull(buf);

	p = buf;
	for (i = 0; i < nruns; i++) {
		if (runs[i].piece == NULL)
			continue;
		pl = strlen(runs[i].piece);
		for (k = 0; k < runs[i].count; k++) {
			for (j = 0; j < pl; j++)
				*p++ = runs[i].piece[j];
		}
	}
	*p = '\0';
	*len = total;
	return buf;
}

static void
check_repeat(const char *piece, size_t count, enum message_encoding want_enc,
    int want_parts)
{
	struct run r = { piece, count };
	enum message_encoding enc;
	size_t len;
	char *text;
	int parts;

	text = build(&r, 1, &len);
	ck_assert_msg(message_segments(text, len, &enc, &parts) == 0,
	    "%zu x \"%s\" rejected", count, piece);
	ck_assert_msg(enc == want_enc, "%zu x \"%s\": encoding %s",
	    count, piece, message_encoding_name(enc));
	ck_assert_msg(parts == want_parts, "%zu x \"%s\": %d parts, want %d",
	    count, piece, parts, want_parts);
	free(text);
}

START_TEST(test_state_names_round_trip)
{
	static const char *const names[] = { "queued", "sending", "sent",
	    "delivered", "undelivered", "cancelled", "expired", "failed" };
	int i;

	ck_assert_int_eq(sizeof(names) / sizeof(names[0]), MESSAGE_STATE_MAX);
	for (i = 0; i < MESSAGE_STATE_MAX; i++) {
		ck_assert_str_eq(message_state_name(i), names[i]);
		ck_assert_int_eq(message_state_parse(names[i]), i);
	}
}
END_TEST

START_TEST(test_state_out_of_range_is_unknown)
{
	ck_assert_str_eq(message_state_name(MESSAGE_STATE_MAX), "unknown");
	ck_assert_str_eq(message_state_name((enum message_state)-1),
	    "unknown");
}
END_TEST

START_TEST(test_state_parse_rejects_other_names)
{
	ck_assert_int_eq(message_state_parse(NULL), -1);
	ck_assert_int_eq(message_state_parse(""), -1);
	ck_assert_int_eq(message_state_parse("unknown"), -1);
	ck_assert_int_eq(message_state_parse("Queued"), -1);
	ck_assert_int_eq(message_state_parse("queued "), -1);
	ck_assert_int_eq(message_state_parse("canceled"), -1);
}
END_TEST

START_TEST(test_state_finished_only_queued_and_sending_open)
{
	ck_assert(!message_state_finished(MESSAGE_QUEUED));
	ck_assert(!message_state_finished(MESSAGE_SENDING));
	ck_assert(message_state_finished(MESSAGE_SENT));
	ck_assert(message_state_finished(MESSAGE_DELIVERED));
	ck_assert(message_state_finished(MESSAGE_UNDELIVERED));
	ck_assert(message_state_finished(MESSAGE_CANCELLED));
	ck_assert(message_state_finished(MESSAGE_EXPIRED));
	ck_assert(message_state_finished(MESSAGE_FAILED));
}
END_TEST

START_TEST(test_encoding_names)
{
	ck_assert_str_eq(message_encoding_name(MESSAGE_GSM7), "gsm7");
	ck_assert_str_eq(message_encoding_name(MESSAGE_UCS2), "ucs2");
	ck_assert_str_eq(message_encoding_name((enum message_encoding)7),
	    "unknown");
}
END_TEST

static const struct num_case number_cases[] = {
	/* accepted */
	{ "+27821234567", LEN("+27821234567"), "+27821234567" },
	{ "0027821234567", LEN("0027821234567"), "+27821234567" },
	{ "27821234567", LEN("27821234567"), "+27821234567" },
	{ "+12345678", LEN("+12345678"), "+12345678" },
	{ "12345678", LEN("12345678"), "+12345678" },
	{ "0012345678", LEN("0012345678"), "+12345678" },
	{ "+123456789012345", LEN("+123456789012345"), "+123456789012345" },
	{ "00123456789012345", LEN("00123456789012345"),
	    "+123456789012345" },
	/* only the first n bytes count */
	{ "+27821234567999", LEN("+27821234567"), "+27821234567" },
	/* rejected */
	{ "", 0, NULL },
	{ "+", 1, NULL },
	{ "00", 2, NULL },
	{ "+1234567", LEN("+1234567"), NULL },
	{ "1234567", LEN("1234567"), NULL },
	{ "001234567", LEN("001234567"), NULL },
	{ "+1234567890123456", LEN("+1234567890123456"), NULL },
	{ "1234567890123456", LEN("1234567890123456"), NULL },
	{ "001234567890123456", LEN("001234567890123456"), NULL },
	{ "0821234567", LEN("0821234567"), NULL },
	{ "+0821234567", LEN("+0821234567"), NULL },
	{ "+0027821234567", LEN("+0027821234567"), NULL },
	{ "00027821234567", LEN("00027821234567"), NULL },
	{ "++27821234567", LEN("++27821234567"), NULL },
	{ "0+27821234567", LEN("0+27821234567"), NULL },
	{ "+27 82 123 4567", LEN("+27 82 123 4567"), NULL },
	{ "+27-82-123-4567", LEN("+27-82-123-4567"), NULL },
	{ " +27821234567", LEN(" +27821234567"), NULL },
	{ "+27821234567 ", LEN("+27821234567 "), NULL },
	{ "+27821234567\n", LEN("+27821234567\n"), NULL },
	{ "+2782123456x", LEN("+2782123456x"), NULL },
	{ "+27ABCDEFGH", LEN("+27ABCDEFGH"), NULL },
	{ "twentyseven", LEN("twentyseven"), NULL },
	{ "+2782123\0" "4567", LEN("+2782123\0" "4567"), NULL },
	{ "+27821234567\0", LEN("+27821234567\0"), NULL },
	{ "+2782123456\xef\xbc\x97", LEN("+2782123456\xef\xbc\x97"), NULL },
	{ "+27821234567", 5, NULL }
};

START_TEST(test_number_normalise_table)
{
	const struct num_case *c = &number_cases[_i];
	char out[MESSAGE_NUMBER_MAX];
	int rc;

	memset(out, 'X', sizeof(out));
	rc = message_number_normalise(c->in, c->n, out);
	if (c->out == NULL)
		ck_assert_msg(rc == -1, "case %d accepted as %.*s", _i,
		    (int)sizeof(out), out);
	else {
		ck_assert_msg(rc == 0, "case %d (%s) rejected", _i, c->in);
		ck_assert_str_eq(out, c->out);
	}
}
END_TEST

static const struct bytes_case sender_valid[] = {
	{ "A", 1 },
	{ "ACME", 4 },
	{ "Acme2024", 8 },
	{ "ABCDEFGHIJK", 11 },
	{ "12345678901", 11 },
	{ "123456789012", 12 },
	{ "1234567890123456", 16 },
	{ "+1", 2 },
	{ "+123", 4 },
	{ "+1234567890123456", 17 },
	{ "ACMECORPXYZ", 4 }	/* only the first n bytes count */
};

static const struct bytes_case sender_invalid[] = {
	{ "", 0 },
	{ "ACME", 0 },
	{ "+", 1 },
	{ "++123", 5 },
	{ "12+3", 4 },
	{ "+ABC", 4 },
	{ "ABCDEFGHIJKL", 12 },
	{ "ABCDEFGHIJ12", 12 },
	{ "12345678901234567", 17 },
	{ "+12345678901234567", 18 },
	{ "ACME CORP", 9 },
	{ "ACME-1", 6 },
	{ "ACME_1", 6 },
	{ "ACME.", 5 },
	{ "ACME\n", 5 },
	{ "AC\0ME", 5 },
	{ "\xc3\x84" "CME", 5 },
	{ " ACME", 5 }
};

START_TEST(test_sender_accepts_valid)
{
	const struct bytes_case *c = &sender_valid[_i];

	ck_assert_msg(message_sender_check(c->in, c->n) == 0,
	    "\"%.*s\" rejected", (int)c->n, c->in);
}
END_TEST

START_TEST(test_sender_rejects_invalid)
{
	const struct bytes_case *c = &sender_invalid[_i];

	ck_assert_msg(message_sender_check(c->in, c->n) == -1,
	    "case %d accepted", _i);
}
END_TEST

#define EURO	"\xe2\x82\xac"
#define A_ACUTE	"\xc3\xa1"
#define E_ACUTE	"\xc3\xa9"
#define EMOJI	"\xf0\x9f\x98\x80"

static const struct seg_case seg_cases[] = {
	{ "empty text is zero gsm7 parts", { { "", 0 } }, MESSAGE_GSM7, 0 },
	{ "one gsm char is one part", { { "a", 1 } }, MESSAGE_GSM7, 1 },
	{ "160 gsm chars fit one part", { { "a", 160 } }, MESSAGE_GSM7, 1 },
	{ "161 gsm chars need two", { { "a", 161 } }, MESSAGE_GSM7, 2 },
	{ "306 gsm chars fit two", { { "a", 306 } }, MESSAGE_GSM7, 2 },
	{ "307 gsm chars need three", { { "a", 307 } }, MESSAGE_GSM7, 3 },
	{ "1224 gsm chars fit eight", { { "a", 1224 } }, MESSAGE_GSM7, 8 },
	{ "1225 gsm chars need nine", { { "a", 1225 } }, MESSAGE_GSM7, 9 },
	{ "80 extension chars are 160 septets",
	    { { EURO, 80 } }, MESSAGE_GSM7, 1 },
	{ "81 extension chars are 162 septets",
	    { { "{", 81 } }, MESSAGE_GSM7, 2 },
	{ "159 chars and one extension char are 161 septets",
	    { { "a", 159 }, { "^", 1 } }, MESSAGE_GSM7, 2 },
	{ "extension char at 153 boundary moves to next part",
	    { { "a", 152 }, { EURO, 1 }, { "a", 152 } }, MESSAGE_GSM7, 3 },
	{ "extension char ending a part exactly stays",
	    { { "a", 151 }, { EURO, 1 }, { "a", 153 } }, MESSAGE_GSM7, 2 },
	{ "form feed counts two septets",
	    { { "a", 159 }, { "\f", 1 } }, MESSAGE_GSM7, 2 },
	{ "e acute stays gsm7", { { E_ACUTE, 160 } }, MESSAGE_GSM7, 1 },
	{ "a acute makes ucs2", { { "a", 10 }, { A_ACUTE, 1 } },
	    MESSAGE_UCS2, 1 },
	{ "one emoji turns gsm text into ucs2",
	    { { "a", 100 }, { EMOJI, 1 } }, MESSAGE_UCS2, 2 },
	{ "backtick is not gsm", { { "`", 1 } }, MESSAGE_UCS2, 1 },
	{ "esc is not a gsm char", { { "\x1b", 1 } }, MESSAGE_UCS2, 1 },
	{ "lowercase greek is not gsm", { { "\xcf\x89", 1 } },
	    MESSAGE_UCS2, 1 },
	{ "70 ucs2 units fit one part", { { A_ACUTE, 70 } }, MESSAGE_UCS2, 1 },
	{ "71 ucs2 units need two", { { A_ACUTE, 71 } }, MESSAGE_UCS2, 2 },
	{ "134 ucs2 units fit two", { { A_ACUTE, 134 } }, MESSAGE_UCS2, 2 },
	{ "135 ucs2 units need three", { { A_ACUTE, 135 } }, MESSAGE_UCS2, 3 },
	{ "gsm chars count one unit in ucs2",
	    { { "a", 69 }, { A_ACUTE, 1 } }, MESSAGE_UCS2, 1 },
	{ "extension chars count one unit in ucs2",
	    { { EURO, 69 }, { A_ACUTE, 1 } }, MESSAGE_UCS2, 1 },
	{ "35 emoji are 70 units", { { EMOJI, 35 } }, MESSAGE_UCS2, 1 },
	{ "36 emoji are 72 units", { { EMOJI, 36 } }, MESSAGE_UCS2, 2 },
	{ "emoji at 67 boundary moves whole to next part",
	    { { A_ACUTE, 66 }, { EMOJI, 1 }, { A_ACUTE, 66 } },
	    MESSAGE_UCS2, 3 },
	{ "emoji ending a part exactly stays",
	    { { A_ACUTE, 65 }, { EMOJI, 1 }, { A_ACUTE, 67 } },
	    MESSAGE_UCS2, 2 },
	{ "largest scalar value is two units",
	    { { "\xf4\x8f\xbf\xbf", 35 }, { "a", 1 } }, MESSAGE_UCS2, 2 },
	{ "last bmp char before surrogates is valid",
	    { { "\xed\x9f\xbf", 70 } }, MESSAGE_UCS2, 1 },
	{ "first char after surrogates is valid",
	    { { "\xee\x80\x80", 71 } }, MESSAGE_UCS2, 2 },
	{ "smallest two byte form is valid", { { "\xc2\x80", 1 } },
	    MESSAGE_UCS2, 1 },
	{ "smallest three byte form is valid", { { "\xe0\xa0\x80", 1 } },
	    MESSAGE_UCS2, 1 },
	{ "smallest four byte form is valid", { { "\xf0\x90\x80\x80", 1 } },
	    MESSAGE_UCS2, 1 }
};

START_TEST(test_segments_table)
{
	const struct seg_case *c = &seg_cases[_i];
	enum message_encoding enc;
	size_t len;
	char *text;
	int parts;

	text = build(c->runs, 3, &len);
	ck_assert_msg(message_segments(text, len, &enc, &parts) == 0,
	    "%s: rejected", c->what);
	ck_assert_msg(enc == c->enc, "%s: encoding %s", c->what,
	    message_encoding_name(enc));
	ck_assert_msg(parts == c->parts, "%s: %d parts, want %d", c->what,
	    parts, c->parts);
	free(text);
}
END_TEST

/* The 127 characters of the GSM 03.38 basic table that a client may send. */
static const char *const gsm_basic[] = {
	"@", "\xc2\xa3", "$", "\xc2\xa5", "\xc3\xa8", "\xc3\xa9", "\xc3\xb9",
	"\xc3\xac", "\xc3\xb2", "\xc3\x87", "\n", "\xc3\x98", "\xc3\xb8",
	"\r", "\xc3\x85", "\xc3\xa5",
	"\xce\x94", "_", "\xce\xa6", "\xce\x93", "\xce\x9b", "\xce\xa9",
	"\xce\xa0", "\xce\xa8", "\xce\xa3", "\xce\x98", "\xce\x9e",
	"\xc3\x86", "\xc3\xa6", "\xc3\x9f", "\xc3\x89",
	" ", "!", "\"", "#", "\xc2\xa4", "%", "&", "'", "(", ")", "*", "+",
	",", "-", ".", "/",
	"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", ":", ";", "<", "=",
	">", "?",
	"\xc2\xa1", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L",
	"M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z",
	"\xc3\x84", "\xc3\x96", "\xc3\x91", "\xc3\x9c", "\xc2\xa7",
	"\xc2\xbf", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l",
	"m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z",
	"\xc3\xa4", "\xc3\xb6", "\xc3\xb1", "\xc3\xbc", "\xc3\xa0"
};

static const char *const gsm_extension[] = {
	"^", "{", "}", "\\", "[", "~", "]", "|", EURO, "\f"
};

/* Near misses: characters that look like GSM ones but are not in it. */
static const char *const not_gsm[] = {
	"`", "\x1b", "\t", "\x7f", "\xc2\xa0", "\xc2\xa2", "\xc3\xa1",
	"\xc3\x80", "\xc3\xa7", "\xc3\xad", "\xce\xb1", "\xce\x91",
	"\xce\x94\xcc\x81", "\xe2\x80\x99", "\xe2\x82\xa4", "\xef\xbc\xa1",
	EMOJI
};

START_TEST(test_gsm_basic_char_costs_one_septet)
{
	ck_assert_int_eq(sizeof(gsm_basic) / sizeof(gsm_basic[0]), 127);
	check_repeat(gsm_basic[_i], 160, MESSAGE_GSM7, 1);
	check_repeat(gsm_basic[_i], 161, MESSAGE_GSM7, 2);
}
END_TEST

START_TEST(test_gsm_extension_char_costs_two_septets)
{
	check_repeat(gsm_extension[_i], 80, MESSAGE_GSM7, 1);
	check_repeat(gsm_extension[_i], 81, MESSAGE_GSM7, 2);
	/* 76 pairs fill 152 of a part's 153 septets: 77 do not fit. */
	check_repeat(gsm_extension[_i], 152, MESSAGE_GSM7, 2);
	check_repeat(gsm_extension[_i], 153, MESSAGE_GSM7, 3);
}
END_TEST

START_TEST(test_non_gsm_char_makes_ucs2)
{
	check_repeat(not_gsm[_i], 1, MESSAGE_UCS2, 1);
}
END_TEST

START_TEST(test_segments_counts_nul_byte_within_n)
{
	enum message_encoding enc;
	int parts;

	/* U+0000 is valid UTF-8 but not GSM: '@' is U+0040. */
	ck_assert_int_eq(message_segments("ab\0c", 4, &enc, &parts), 0);
	ck_assert_int_eq(enc, MESSAGE_UCS2);
	ck_assert_int_eq(parts, 1);
}
END_TEST

START_TEST(test_segments_reads_only_n_bytes)
{
	enum message_encoding enc;
	int parts;

	ck_assert_int_eq(message_segments("ab" A_ACUTE, 2, &enc, &parts), 0);
	ck_assert_int_eq(enc, MESSAGE_GSM7);
	ck_assert_int_eq(parts, 1);
	ck_assert_int_eq(message_segments(EURO, 2, &enc, &parts), -1);
}
END_TEST

static const struct bytes_case bad_utf8[] = {
	{ "\xc0\xaf", 2 },			/* overlong '/' */
	{ "\xc1\xbf", 2 },			/* overlong U+007F */
	{ "\xe0\x80\xaf", 3 },			/* overlong, three bytes */
	{ "\xe0\x9f\xbf", 3 },			/* overlong U+07FF */
	{ "\xf0\x80\x80\xaf", 4 },		/* overlong, four bytes */
	{ "\xf0\x8f\xbf\xbf", 4 },		/* overlong U+FFFF */
	{ "\xed\xa0\x80", 3 },			/* CESU high surrogate */
	{ "\xed\xbf\xbf", 3 },			/* low surrogate */
	{ "\xed\xa0\xbd\xed\xb8\x80", 6 },	/* CESU pair */
	{ "\xf4\x90\x80\x80", 4 },		/* U+110000 */
	{ "\xf5\x80\x80\x80", 4 },
	{ "\xf8\x88\x80\x80\x80", 5 },
	{ "\xfe", 1 },
	{ "\xff", 1 },
	{ "\xe2\x82", 2 },			/* truncated euro */
	{ "\xc3", 1 },
	{ "\xf0\x9f\x98", 3 },			/* truncated emoji */
	{ "\xe2\x82" "a", 3 },			/* continuation missing */
	{ "\xe2" "a\xac", 3 },
	{ "\xc3\xc3\xa9", 3 },
	{ "\x80", 1 },				/* stray continuation */
	{ "a\xbf", 2 },
	{ "\xc3\xa9\xa9", 3 },
	{ "Hello " A_ACUTE " \xc0\xaf", 11 },	/* bad after ucs2 found */
	{ "Hello " EMOJI "\xed\xa0\x80", 13 }
};

START_TEST(test_segments_rejects_invalid_utf8)
{
	const struct bytes_case *c = &bad_utf8[_i];
	enum message_encoding enc;
	int parts;

	ck_assert_msg(message_segments(c->in, c->n, &enc, &parts) == -1,
	    "case %d accepted", _i);
}
END_TEST

START_TEST(test_segments_long_text_returns_large_count)
{
	struct run r = { "a", 65536 };
	enum message_encoding enc;
	size_t len;
	char *text;
	int parts;

	text = build(&r, 1, &len);
	ck_assert_int_eq(message_segments(text, len, &enc, &parts), 0);
	ck_assert_int_eq(enc, MESSAGE_GSM7);
	ck_assert_int_eq(parts, (65536 + 152) / 153);
	free(text);
}
END_TEST

#define NCASES(a)	((int)(sizeof(a) / sizeof((a)[0])))

static Suite *
message_suite(void)
{
	Suite *s = suite_create("message");
	TCase *tc;

	tc = tcase_create("state");
	tcase_add_test(tc, test_state_names_round_trip);
	tcase_add_test(tc, test_state_out_of_range_is_unknown);
	tcase_add_test(tc, test_state_parse_rejects_other_names);
	tcase_add_test(tc, test_state_finished_only_queued_and_sending_open);
	tcase_add_test(tc, test_encoding_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("number");
	tcase_add_loop_test(tc, test_number_normalise_table, 0,
	    NCASES(number_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("sender");
	tcase_add_loop_test(tc, test_sender_accepts_valid, 0,
	    NCASES(sender_valid));
	tcase_add_loop_test(tc, test_sender_rejects_invalid, 0,
	    NCASES(sender_invalid));
	suite_add_tcase(s, tc);

	tc = tcase_create("segments");
	tcase_add_loop_test(tc, test_segments_table, 0, NCASES(seg_cases));
	tcase_add_loop_test(tc, test_gsm_basic_char_costs_one_septet, 0,
	    NCASES(gsm_basic));
	tcase_add_loop_test(tc, test_gsm_extension_char_costs_two_septets, 0,
	    NCASES(gsm_extension));
	tcase_add_loop_test(tc, test_non_gsm_char_makes_ucs2, 0,
	    NCASES(not_gsm));
	tcase_add_test(tc, test_segments_counts_nul_byte_within_n);
	tcase_add_test(tc, test_segments_reads_only_n_bytes);
	tcase_add_loop_test(tc, test_segments_rejects_invalid_utf8, 0,
	    NCASES(bad_utf8));
	tcase_add_test(tc, test_segments_long_text_returns_large_count);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(message_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
