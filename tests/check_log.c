/* Tests for log.c: masking, escaping, levels, targets and line formats. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "log.h"

static char	check_dir[64];
static char	check_path[128];

static int
check_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
check_setup(void)
{
	snprintf(check_dir, sizeof(check_dir), "/tmp/check_log.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(check_dir));
	snprintf(check_path, sizeof(check_path), "%s/smsgwd.log", check_dir);
	unsetenv("JOURNAL_STREAM");
}

static void
check_teardown(void)
{
	log_close();
	unsetenv("JOURNAL_STREAM");
	nftw(check_dir, check_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Reads the whole of PATH into a malloc'd, NUL-terminated string. */
static char *
check_slurp(const char *path)
{
	char *text;
	long n;
	FILE *f;

	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	text = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void
check_open(const char *target, enum log_level level, int mask)
{
	char err[256] = "";

	ck_assert_msg(log_open(target, level, mask, err, sizeof(err)) == 0,
	    "log_open %s: %s", target, err);
}

START_TEST(level_names_parse_both_ways)
{
	static const char *const names[] = {
		"debug", "info", "notice", "warn", "err", "crit",
	};
	static const int levels[] = {
		LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_NOTICE,
		LOG_LEVEL_WARN, LOG_LEVEL_ERR, LOG_LEVEL_CRIT,
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		ck_assert_int_eq(log_level_parse(names[i]), levels[i]);
		ck_assert_str_eq(log_level_name(levels[i]), names[i]);
	}
	ck_assert_int_eq(log_level_parse("warning"), -1);
	ck_assert_int_eq(log_level_parse(""), -1);
	ck_assert_int_eq(log_level_parse("INFO"), -1);
}
END_TEST

START_TEST(numbers_are_masked)
{
	static const struct {
		const char	*in;
		const char	*out;
	} cases[] = {
		{ "+27821234567", "+2782*****67" },
		{ "27821234567", "2782*****67" },
		{ "+123456789012345", "+1234*********45" },
		{ "1234567", "1234*67" },
		{ "+1234567", "+1234*67" },
		{ "123456", "******" },
		{ "+123456", "+******" },
		{ "12", "**" },
		{ "", "" },
		{ "+2782abc4567", "+2782*****67" },
	};
	char buf[LOG_NUMBER_MAX];
	size_t i;

	check_open("stderr", LOG_LEVEL_INFO, 1);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(log_number(cases[i].in, buf, sizeof(buf)),
		    cases[i].out);
}
END_TEST

START_TEST(numbers_are_masked_before_log_open)
{
	char buf[LOG_NUMBER_MAX];

	ck_assert_str_eq(log_number("+27821234567", buf, sizeof(buf)),
	    "+2782*****67");
}
END_TEST

START_TEST(numbers_are_kept_when_masking_is_off)
{
	char buf[LOG_NUMBER_MAX];

	check_open("stderr", LOG_LEVEL_INFO, 0);
	ck_assert_str_eq(log_number("+27821234567", buf, sizeof(buf)),
	    "+27821234567");
	ck_assert_str_eq(log_number("123", buf, sizeof(buf)), "123");
	/* Still escaped: a "number" is not trusted to be one. */
	ck_assert_str_eq(log_number("1 2", buf, sizeof(buf)), "1\\x202");
}
END_TEST

START_TEST(masked_number_is_cut_to_fit)
{
	char buf[8];

	memset(buf, 'Z', sizeof(buf));
	check_open("stderr", LOG_LEVEL_INFO, 1);
	ck_assert_str_eq(log_number("+27821234567", buf, 8), "+278...");
	ck_assert_str_eq(log_number("+27821234567", buf, 1), "");
}
END_TEST

START_TEST(text_is_escaped)
{
	static const struct {
		const char	*in;
		size_t		 n;
		const char	*out;
	} cases[] = {
		{ "abc", 3, "abc" },
		{ "!~", 2, "!~" },
		{ "a b", 3, "a\\x20b" },
		{ "line\n", 5, "line\\x0a" },
		{ "\r\t\x1b", 3, "\\x0d\\x09\\x1b" },
		{ "\x7f", 1, "\\x7f" },
		{ "a\0b", 3, "a\\x00b" },
		{ "caf\xc3\xa9", 5, "caf\\xc3\\xa9" },
		{ "\"q\"", 3, "\\x22q\\x22" },
		{ "back\\slash", 10, "back\\x5cslash" },
		{ "k=v", 3, "k\\x3dv" },
		{ "", 0, "" },
	};
	char buf[64];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_str_eq(log_escape(cases[i].in, cases[i].n, buf,
		    sizeof(buf)), cases[i].out);
}
END_TEST

START_TEST(escaped_text_is_cut_with_dots)
{
	char buf[16];

	memset(buf, 'Z', sizeof(buf));
	/* Exactly fits: 7 bytes and the NUL. */
	ck_assert_str_eq(log_escape("abcdefg", 7, buf, 8), "abcdefg");
	ck_assert_str_eq(log_escape("abcdefgh", 8, buf, 8), "abcd...");
	ck_assert_int_eq(buf[8], 'Z');
	/* An escape is never split. */
	ck_assert_str_eq(log_escape("ab\ncd", 5, buf, 8), "ab...");
	ck_assert_str_eq(log_escape("a\nbcdefghijk", 12, buf, 10),
	    "a\\x0ab...");
	ck_assert_str_eq(log_escape("abcdef", 6, buf, 4), "...");
	ck_assert_str_eq(log_escape("abcdef", 6, buf, 2), ".");
	ck_assert_str_eq(log_escape("abcdef", 6, buf, 1), "");
	ck_assert_int_eq(buf[10], 'Z');
	/* Nothing at all is written into an empty buffer. */
	buf[0] = 'Z';
	log_escape("abc", 3, buf, 0);
	ck_assert_int_eq(buf[0], 'Z');
}
END_TEST

START_TEST(file_target_filters_by_level)
{
	char *text;

	check_open(check_path, LOG_LEVEL_WARN, 1);
	ck_assert_int_eq(log_enabled(LOG_LEVEL_WARN), 1);
	ck_assert_int_eq(log_enabled(LOG_LEVEL_INFO), 0);
	log_info("test quiet n=%d", 1);
	log_debug("test quiet n=%d", 2);
	log_warn("test loud n=%d", 3);
	log_err("test loud n=%d", 4);
	log_crit("test loud n=%d", 5);

	text = check_slurp(check_path);
	ck_assert_ptr_null(strstr(text, "quiet"));
	ck_assert_ptr_nonnull(strstr(text, "warn: test loud n=3\n"));
	ck_assert_ptr_nonnull(strstr(text, "err: test loud n=4\n"));
	ck_assert_ptr_nonnull(strstr(text, "crit: test loud n=5\n"));
	free(text);

	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("test now n=%d", 6);
	text = check_slurp(check_path);
	ck_assert_ptr_nonnull(strstr(text, "debug: test now n=6\n"));
	free(text);
}
END_TEST

START_TEST(file_line_has_timestamp_and_level)
{
	regex_t re;
	char *text;

	check_open(check_path, LOG_LEVEL_INFO, 1);
	log_info("msg accepted id=%016x", 1001);
	text = check_slurp(check_path);

	ck_assert_int_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T"
	    "[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	    "info: msg accepted id=00000000000003e9\n$",
	    REG_EXTENDED | REG_NOSUB), 0);
	ck_assert_msg(regexec(&re, text, 0, NULL, 0) == 0, "line: %s", text);
	regfree(&re);
	free(text);
}
END_TEST

START_TEST(file_is_appended_to)
{
	int fd;
	char *text;

	fd = open(check_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "old\n", 4), 4);
	close(fd);

	check_open(check_path, LOG_LEVEL_INFO, 1);
	log_info("new");
	text = check_slurp(check_path);
	ck_assert_int_eq(strncmp(text, "old\n", 4), 0);
	ck_assert_ptr_nonnull(strstr(text, "info: new\n"));
	free(text);
}
END_TEST

START_TEST(long_line_is_cut_at_8k)
{
	static char big[10000];
	char *text;
	size_t n;

	memset(big, 'a', sizeof(big) - 1);
	check_open(check_path, LOG_LEVEL_INFO, 1);
	log_info("%s", big);
	log_info("after");

	text = check_slurp(check_path);
	n = strcspn(text, "\n") + 1;
	ck_assert_uint_eq(n, 8192);
	ck_assert_int_eq(strncmp(text + n - 5, "a...\n", 5), 0);
	ck_assert_ptr_nonnull(strstr(text + n, "info: after\n"));
	free(text);
}
END_TEST

START_TEST(reopen_follows_a_renamed_file)
{
	char old[192], *text;

	check_open(check_path, LOG_LEVEL_INFO, 1);
	log_info("before rotation");
	snprintf(old, sizeof(old), "%s.1", check_path);
	ck_assert_int_eq(rename(check_path, old), 0);
	log_info("still old");
	ck_assert_int_eq(log_reopen(), 0);
	log_info("after rotation");

	text = check_slurp(old);
	ck_assert_ptr_nonnull(strstr(text, "before rotation"));
	ck_assert_ptr_nonnull(strstr(text, "still old"));
	ck_assert_ptr_null(strstr(text, "after rotation"));
	free(text);

	text = check_slurp(check_path);
	ck_assert_ptr_null(strstr(text, "before rotation"));
	ck_assert_ptr_null(strstr(text, "still old"));
	ck_assert_ptr_nonnull(strstr(text, "info: after rotation\n"));
	free(text);
}
END_TEST

START_TEST(new_log_file_has_mode_0640)
{
	struct stat st;
	mode_t old;

	old = umask(0);
	check_open(check_path, LOG_LEVEL_INFO, 1);
	umask(old);
	ck_assert_int_eq(stat(check_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0640);
}
END_TEST

START_TEST(reopen_is_a_no_op_for_stderr)
{
	check_open("stderr", LOG_LEVEL_INFO, 1);
	ck_assert_int_eq(log_reopen(), 0);
}
END_TEST

START_TEST(bad_targets_are_refused_with_a_reason)
{
	char err[256] = "";
	char path[192];

	ck_assert_int_eq(log_open("smsgwd.log", LOG_LEVEL_INFO, 1, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err,
	    "target must be stderr, syslog or an absolute path");

	snprintf(path, sizeof(path), "%s/none/x.log", check_dir);
	ck_assert_int_eq(log_open(path, LOG_LEVEL_INFO, 1, err, sizeof(err)),
	    -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot open "));
	ck_assert_ptr_nonnull(strstr(err, "No such file or directory"));
}
END_TEST

START_TEST(failed_open_keeps_the_old_target)
{
	char err[256], path[192], *text;

	check_open(check_path, LOG_LEVEL_INFO, 1);
	snprintf(path, sizeof(path), "%s/none/x.log", check_dir);
	ck_assert_int_eq(log_open(path, LOG_LEVEL_DEBUG, 0, err, sizeof(err)),
	    -1);
	log_info("kept");
	ck_assert_int_eq(log_enabled(LOG_LEVEL_DEBUG), 0);
	text = check_slurp(check_path);
	ck_assert_ptr_nonnull(strstr(text, "info: kept\n"));
	free(text);
}
END_TEST

START_TEST(log_msg_keeps_errno)
{
	check_open(check_path, LOG_LEVEL_INFO, 1);
	errno = EPIPE;
	log_info("x");
	ck_assert_int_eq(errno, EPIPE);
}
END_TEST

/*
 * Points fd 2 at a file in the test's directory, with JOURNAL_STREAM naming
 * it when JOURNAL is set (or another file when not); returns the old fd 2.
 */
static int
check_stderr_to_file(const char *path, int journal)
{
	struct stat st;
	char env[64];
	int fd, saved;

	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);

	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t)st.st_dev,
	    (uintmax_t)st.st_ino + (journal ? 0 : 1));
	setenv("JOURNAL_STREAM", env, 1);
	return saved;
}

static void
check_stderr_restore(int saved)
{
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
}

START_TEST(journal_stream_gets_priority_prefixes)
{
	char *text;
	int saved;

	saved = check_stderr_to_file(check_path, 1);
	check_open("stderr", LOG_LEVEL_INFO, 1);
	log_warn("upstream retry code=%d", -16);
	log_crit("upstream hold");
	log_close();
	check_stderr_restore(saved);

	text = check_slurp(check_path);
	ck_assert_str_eq(text,
	    "<4>upstream retry code=-16\n<2>upstream hold\n");
	free(text);
}
END_TEST

START_TEST(journal_stream_is_detected_before_log_open)
{
	char *text;
	int saved;

	saved = check_stderr_to_file(check_path, 1);
	log_err("config problem");
	log_close();
	check_stderr_restore(saved);

	text = check_slurp(check_path);
	ck_assert_str_eq(text, "<3>config problem\n");
	free(text);
}
END_TEST

START_TEST(other_journal_stream_means_plain_lines)
{
	char *text;
	int saved;

	saved = check_stderr_to_file(check_path, 0);
	check_open("stderr", LOG_LEVEL_INFO, 1);
	log_warn("plain");
	log_close();
	check_stderr_restore(saved);

	text = check_slurp(check_path);
	ck_assert_int_ne(text[0], '<');
	ck_assert_ptr_nonnull(strstr(text, "Z warn: plain\n"));
	free(text);
}
END_TEST

START_TEST(syslog_target_opens)
{
	check_open("syslog", LOG_LEVEL_INFO, 1);
	ck_assert_int_eq(log_enabled(LOG_LEVEL_INFO), 1);
	ck_assert_int_eq(log_reopen(), 0);
}
END_TEST

static Suite *
check_log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_checked_fixture(tc, check_setup, check_teardown);
	tcase_add_test(tc, level_names_parse_both_ways);
	tcase_add_test(tc, numbers_are_masked);
	tcase_add_test(tc, numbers_are_masked_before_log_open);
	tcase_add_test(tc, numbers_are_kept_when_masking_is_off);
	tcase_add_test(tc, masked_number_is_cut_to_fit);
	tcase_add_test(tc, text_is_escaped);
	tcase_add_test(tc, escaped_text_is_cut_with_dots);
	tcase_add_test(tc, file_target_filters_by_level);
	tcase_add_test(tc, file_line_has_timestamp_and_level);
	tcase_add_test(tc, file_is_appended_to);
	tcase_add_test(tc, long_line_is_cut_at_8k);
	tcase_add_test(tc, reopen_follows_a_renamed_file);
	tcase_add_test(tc, new_log_file_has_mode_0640);
	tcase_add_test(tc, reopen_is_a_no_op_for_stderr);
	tcase_add_test(tc, bad_targets_are_refused_with_a_reason);
	tcase_add_test(tc, failed_open_keeps_the_old_target);
	tcase_add_test(tc, log_msg_keeps_errno);
	tcase_add_test(tc, journal_stream_gets_priority_prefixes);
	tcase_add_test(tc, journal_stream_is_detected_before_log_open);
	tcase_add_test(tc, other_journal_stream_means_plain_lines);
	tcase_add_test(tc, syslog_target_opens);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(check_log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
