/* Tests for config.c: defaults, every key, and every problem at its line. */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <libconfig.h>

#include "config.h"

static char	check_dir[64];
static char	check_file[128];

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
	snprintf(check_dir, sizeof(check_dir), "/tmp/check_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(check_dir));
	snprintf(check_file, sizeof(check_file), "%s/smsgwd.conf", check_dir);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void
check_teardown(void)
{
	unsetenv("CREDENTIALS_DIRECTORY");
	nftw(check_dir, check_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes TEXT to NAME in the test's directory; returns the path. */
static const char *
check_write(const char *name, const char *text)
{
	static char path[192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", check_dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

/* Loads TEXT, which must be valid, as the configuration file. */
static struct config *
check_load_ok(const char *text)
{
	struct config *cfg;
	char *problems;

	check_write("smsgwd.conf", text);
	cfg = config_load(check_file, &problems);
	ck_assert_msg(cfg != NULL, "unexpected problems: %s", problems);
	ck_assert_ptr_null(problems);
	return cfg;
}

/*
 * Loads TEXT and checks that it fails with exactly the problems given, each
 * as ":LINE: text" (the file's path goes in front), in that order.
 */
static void
check_problems(const char *text, ...)
{
	char expected[4096], *problems;
	const char *line;
	size_t n = 0;
	va_list ap;

	check_write("smsgwd.conf", text);
	va_start(ap, text);
	while ((line = va_arg(ap, const char *)) != NULL)
		n += (size_t)snprintf(expected + n, sizeof(expected) - n,
		    "%s%s\n", check_file, line);
	va_end(ap);

	ck_assert_ptr_null(config_load(check_file, &problems));
	ck_assert_ptr_nonnull(problems);
	ck_assert_str_eq(problems, expected);
	free(problems);
}

static void
check_same(const struct config *a, const struct config *b)
{
	ck_assert_str_eq(a->user, b->user);
	ck_assert_int_eq(a->shutdown_timeout, b->shutdown_timeout);
	ck_assert_str_eq(a->socket.path, b->socket.path);
	ck_assert_int_eq(a->socket.mode, b->socket.mode);
	ck_assert_str_eq(a->socket.group, b->socket.group);
	ck_assert_int_eq(a->socket.max_line, b->socket.max_line);
	ck_assert_int_eq(a->socket.max_connections, b->socket.max_connections);
	ck_assert_int_eq(a->socket.max_pending, b->socket.max_pending);
	ck_assert_str_eq(a->storage.path, b->storage.path);
	ck_assert_int_eq(a->storage.retention, b->storage.retention);
	ck_assert_int_eq(a->storage.max_queued, b->storage.max_queued);
	ck_assert_str_eq(a->upstream.url, b->upstream.url);
	ck_assert_str_eq(a->upstream.username, b->upstream.username);
	ck_assert_str_eq(a->upstream.password, b->upstream.password);
	ck_assert_str_eq(a->upstream.password_file, b->upstream.password_file);
	ck_assert_str_eq(a->upstream.sender, b->upstream.sender);
	ck_assert_str_eq(a->upstream.ca_file, b->upstream.ca_file);
	ck_assert_int_eq(a->upstream.max_concurrency,
	    b->upstream.max_concurrency);
	ck_assert_int_eq(a->upstream.timeout, b->upstream.timeout);
	ck_assert_int_eq(a->upstream.connect_timeout,
	    b->upstream.connect_timeout);
	ck_assert_int_eq(a->upstream.resend_ambiguous,
	    b->upstream.resend_ambiguous);
	ck_assert_int_eq(a->retry.max_attempts, b->retry.max_attempts);
	ck_assert_int_eq(a->retry.base_ms, b->retry.base_ms);
	ck_assert_int_eq(a->retry.cap_ms, b->retry.cap_ms);
	ck_assert_int_eq(a->retry.validity, b->retry.validity);
	ck_assert_int_eq(a->retry.max_validity, b->retry.max_validity);
	ck_assert_int_eq(a->message.max_parts, b->message.max_parts);
	ck_assert_str_eq(a->log.level, b->log.level);
	ck_assert_str_eq(a->log.target, b->log.target);
	ck_assert_int_eq(a->log.stats_interval, b->log.stats_interval);
	ck_assert_int_eq(a->log.mask_numbers, b->log.mask_numbers);
}

/* Every key, as written in the override test below. */
static const char *const check_keys[] = {
	"user", "shutdown_timeout",
	"socket.path", "socket.mode", "socket.group", "socket.max_line",
	"socket.max_connections", "socket.max_pending",
	"storage.path", "storage.retention", "storage.max_queued",
	"upstream.url", "upstream.username", "upstream.password",
	"upstream.password_file", "upstream.sender", "upstream.ca_file",
	"upstream.max_concurrency", "upstream.timeout",
	"upstream.connect_timeout", "upstream.resend_ambiguous",
	"retry.max_attempts", "retry.base_ms", "retry.cap_ms",
	"retry.validity", "retry.max_validity",
	"message.max_parts",
	"log.level", "log.target", "log.stats_interval", "log.mask_numbers",
};

START_TEST(defaults_are_the_documented_values)
{
	struct config *cfg = config_defaults();

	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->file, "");
	ck_assert_str_eq(cfg->user, "");
	ck_assert_int_eq(cfg->shutdown_timeout, 10);
	ck_assert_str_eq(cfg->socket.path, "/run/smsgwd/smsgwd.sock");
	ck_assert_int_eq(cfg->socket.mode, 0660);
	ck_assert_str_eq(cfg->socket.group, "");
	ck_assert_int_eq(cfg->socket.max_line, 65536);
	ck_assert_int_eq(cfg->socket.max_connections, 1024);
	ck_assert_int_eq(cfg->socket.max_pending, 1024);
	ck_assert_str_eq(cfg->storage.path, "/var/lib/smsgwd/queue.db");
	ck_assert_int_eq(cfg->storage.retention, 604800);
	ck_assert_int_eq(cfg->storage.max_queued, 1000000);
	ck_assert_str_eq(cfg->upstream.url,
	    "https://api.panaceamobile.com/json");
	ck_assert_str_eq(cfg->upstream.username, "");
	ck_assert_str_eq(cfg->upstream.password, "");
	ck_assert_str_eq(cfg->upstream.password_file, "");
	ck_assert_str_eq(cfg->upstream.sender, "");
	ck_assert_str_eq(cfg->upstream.ca_file, "");
	ck_assert_int_eq(cfg->upstream.max_concurrency, 32);
	ck_assert_int_eq(cfg->upstream.timeout, 30);
	ck_assert_int_eq(cfg->upstream.connect_timeout, 10);
	ck_assert_int_eq(cfg->upstream.resend_ambiguous, 1);
	ck_assert_int_eq(cfg->retry.max_attempts, 10);
	ck_assert_int_eq(cfg->retry.base_ms, 1000);
	ck_assert_int_eq(cfg->retry.cap_ms, 600000);
	ck_assert_int_eq(cfg->retry.validity, 86400);
	ck_assert_int_eq(cfg->retry.max_validity, 604800);
	ck_assert_int_eq(cfg->message.max_parts, 8);
	ck_assert_str_eq(cfg->log.level, "info");
	ck_assert_str_eq(cfg->log.target, "stderr");
	ck_assert_int_eq(cfg->log.stats_interval, 60);
	ck_assert_int_eq(cfg->log.mask_numbers, 1);
	config_free(cfg);
}
END_TEST

START_TEST(empty_file_gives_the_defaults)
{
	struct config *cfg = check_load_ok("");
	struct config *def = config_defaults();

	check_same(cfg, def);
	ck_assert_str_eq(cfg->file, check_file);
	config_free(def);
	config_free(cfg);
}
END_TEST

START_TEST(empty_groups_give_the_defaults)
{
	struct config *cfg = check_load_ok("socket = {};\nstorage = {};\n"
	    "upstream = {};\nretry = {};\nmessage = {};\nlog = {};\n");
	struct config *def = config_defaults();

	check_same(cfg, def);
	config_free(def);
	config_free(cfg);
}
END_TEST

START_TEST(every_key_can_be_overridden)
{
	struct config *cfg;

	cfg = check_load_ok(
	    "user = \"smsgw\";\n"
	    "shutdown_timeout = 30;\n"
	    "socket = {\n"
	    "  path = \"/tmp/s.sock\"; mode = \"0600\"; group = \"smsgw\";\n"
	    "  max_line = 1024; max_connections = 7; max_pending = 9;\n"
	    "};\n"
	    "storage = {\n"
	    "  path = \"/tmp/q.db\"; retention = 3600; max_queued = 55;\n"
	    "};\n"
	    "upstream = {\n"
	    "  url = \"http://127.0.0.1:8080/json\"; username = \"alice\";\n"
	    "  password = \"s3cret\"; password_file = \"\";\n"
	    "  sender = \"Acme\"; ca_file = \"/etc/ca.pem\";\n"
	    "  max_concurrency = 4; timeout = 5; connect_timeout = 2;\n"
	    "  resend_ambiguous = false;\n"
	    "};\n"
	    "retry = {\n"
	    "  max_attempts = 3; base_ms = 250; cap_ms = 4000;\n"
	    "  validity = 600; max_validity = 1200;\n"
	    "};\n"
	    "message = { max_parts = 3; };\n"
	    "log = {\n"
	    "  level = \"debug\"; target = \"/tmp/smsgwd.log\";\n"
	    "  stats_interval = 0; mask_numbers = false;\n"
	    "};\n");

	ck_assert_str_eq(cfg->user, "smsgw");
	ck_assert_int_eq(cfg->shutdown_timeout, 30);
	ck_assert_str_eq(cfg->socket.path, "/tmp/s.sock");
	ck_assert_int_eq(cfg->socket.mode, 0600);
	ck_assert_str_eq(cfg->socket.group, "smsgw");
	ck_assert_int_eq(cfg->socket.max_line, 1024);
	ck_assert_int_eq(cfg->socket.max_connections, 7);
	ck_assert_int_eq(cfg->socket.max_pending, 9);
	ck_assert_str_eq(cfg->storage.path, "/tmp/q.db");
	ck_assert_int_eq(cfg->storage.retention, 3600);
	ck_assert_int_eq(cfg->storage.max_queued, 55);
	ck_assert_str_eq(cfg->upstream.url, "http://127.0.0.1:8080/json");
	ck_assert_str_eq(cfg->upstream.username, "alice");
	ck_assert_str_eq(cfg->upstream.password, "s3cret");
	ck_assert_str_eq(cfg->upstream.password_file, "");
	ck_assert_str_eq(cfg->upstream.sender, "Acme");
	ck_assert_str_eq(cfg->upstream.ca_file, "/etc/ca.pem");
	ck_assert_int_eq(cfg->upstream.max_concurrency, 4);
	ck_assert_int_eq(cfg->upstream.timeout, 5);
	ck_assert_int_eq(cfg->upstream.connect_timeout, 2);
	ck_assert_int_eq(cfg->upstream.resend_ambiguous, 0);
	ck_assert_int_eq(cfg->retry.max_attempts, 3);
	ck_assert_int_eq(cfg->retry.base_ms, 250);
	ck_assert_int_eq(cfg->retry.cap_ms, 4000);
	ck_assert_int_eq(cfg->retry.validity, 600);
	ck_assert_int_eq(cfg->retry.max_validity, 1200);
	ck_assert_int_eq(cfg->message.max_parts, 3);
	ck_assert_str_eq(cfg->log.level, "debug");
	ck_assert_str_eq(cfg->log.target, "/tmp/smsgwd.log");
	ck_assert_int_eq(cfg->log.stats_interval, 0);
	ck_assert_int_eq(cfg->log.mask_numbers, 0);
	config_free(cfg);
}
END_TEST

START_TEST(shipped_file_loads_and_holds_the_defaults)
{
	struct config *cfg, *def;
	const char *dir;
	char path[4096], *problems;

	dir = getenv("SMSGW_SRCDIR");
	snprintf(path, sizeof(path), "%s/etc/smsgwd.conf",
	    dir != NULL ? dir : ".");
	cfg = config_load(path, &problems);
	ck_assert_msg(cfg != NULL, "%s", problems);

	def = config_defaults();
	check_same(cfg, def);
	config_free(def);
	config_free(cfg);
}
END_TEST

START_TEST(shipped_file_sets_every_key)
{
	const char *dir;
	char path[4096];
	config_t lc;
	size_t i;

	dir = getenv("SMSGW_SRCDIR");
	snprintf(path, sizeof(path), "%s/etc/smsgwd.conf",
	    dir != NULL ? dir : ".");
	config_init(&lc);
	ck_assert_int_eq(config_read_file(&lc, path), CONFIG_TRUE);
	for (i = 0; i < sizeof(check_keys) / sizeof(check_keys[0]); i++)
		ck_assert_msg(config_lookup(&lc, check_keys[i]) != NULL,
		    "%s is not in the shipped file", check_keys[i]);
	config_destroy(&lc);
}
END_TEST

START_TEST(missing_file_is_reported_without_a_line)
{
	char expected[256], *problems;

	snprintf(expected, sizeof(expected),
	    "%s/none.conf: cannot read: No such file or directory\n",
	    check_dir);
	snprintf(check_file, sizeof(check_file), "%s/none.conf", check_dir);
	ck_assert_ptr_null(config_load(check_file, &problems));
	ck_assert_str_eq(problems, expected);
	free(problems);
}
END_TEST

START_TEST(syntax_error_reports_its_line)
{
	char prefix[256], *problems;

	check_write("smsgwd.conf",
	    "socket = {\n"
	    "  path = \"/tmp/s\";\n"
	    "  max_line = = 300;\n"
	    "};\n");
	ck_assert_ptr_null(config_load(check_file, &problems));
	snprintf(prefix, sizeof(prefix), "%s:3: ", check_file);
	ck_assert_msg(strncmp(problems, prefix, strlen(prefix)) == 0,
	    "got %s", problems);
	/* One line, with libconfig's text after the prefix. */
	ck_assert_ptr_eq(strchr(problems, '\n'),
	    problems + strlen(problems) - 1);
	ck_assert_uint_gt(strlen(problems), strlen(prefix) + 1);
	free(problems);
}
END_TEST

START_TEST(unknown_key_reports_its_line)
{
	check_problems(
	    "socket = {\n"
	    "  path = \"/tmp/s\";\n"
	    "  pth = \"/tmp/t\";\n"
	    "};\n",
	    ":3: unknown key 'socket.pth'", NULL);
}
END_TEST

START_TEST(unknown_group_reports_its_line_once)
{
	check_problems(
	    "log = { level = \"info\"; };\n"
	    "\n"
	    "sms = {\n"
	    "  listen = \"127.0.0.1:8080\";\n"
	    "  token = \"x\";\n"
	    "};\n",
	    ":3: unknown key 'sms'", NULL);
}
END_TEST

START_TEST(top_level_key_is_unknown)
{
	check_problems(
	    "\n"
	    "path = \"/tmp/s\";\n",
	    ":2: unknown key 'path'", NULL);
}
END_TEST

START_TEST(known_group_as_a_value_is_wrong)
{
	check_problems("retry = 5;\n", ":1: retry: expected a group", NULL);
}
END_TEST

START_TEST(wrong_types_report_their_lines)
{
	check_problems(
	    "socket = {\n"
	    "  max_line = \"4096\";\n"
	    "  path = 5;\n"
	    "  max_pending = 1.5;\n"
	    "};\n"
	    "log = {\n"
	    "  mask_numbers = 1;\n"
	    "  stats_interval = true;\n"
	    "  level = [\"info\"];\n"
	    "};\n"
	    "upstream = {\n"
	    "  resend_ambiguous = \"true\";\n"
	    "  timeout = { };\n"
	    "};\n",
	    ":2: socket.max_line: expected an integer",
	    ":3: socket.path: expected a string",
	    ":4: socket.max_pending: expected an integer",
	    ":7: log.mask_numbers: expected true or false",
	    ":8: log.stats_interval: expected an integer",
	    ":9: log.level: expected a string",
	    ":12: upstream.resend_ambiguous: expected true or false",
	    ":13: upstream.timeout: expected an integer", NULL);
}
END_TEST

START_TEST(below_minimum_reports_its_line)
{
	check_problems(
	    "socket = {\n"
	    "\n"
	    "  max_line = 10;\n"
	    "};\n"
	    "log = { stats_interval = -1; };\n",
	    ":3: socket.max_line: 10 is below the minimum 256",
	    ":5: log.stats_interval: -1 is below the minimum 0", NULL);
}
END_TEST

START_TEST(above_maximum_reports_its_line)
{
	check_problems(
	    "message = {\n"
	    "  max_parts = 256;\n"
	    "};\n"
	    "storage = { retention = 315360001; };\n",
	    ":2: message.max_parts: 256 is above the maximum 255",
	    ":4: storage.retention: 315360001 is above the maximum 315360000",
	    NULL);
}
END_TEST

START_TEST(bounds_themselves_are_accepted)
{
	struct config *cfg = check_load_ok(
	    "socket = { max_line = 256; max_connections = 1000000; };\n"
	    "message = { max_parts = 255; };\n"
	    "log = { stats_interval = 0; };\n");

	ck_assert_int_eq(cfg->socket.max_line, 256);
	ck_assert_int_eq(cfg->socket.max_connections, 1000000);
	ck_assert_int_eq(cfg->message.max_parts, 255);
	ck_assert_int_eq(cfg->log.stats_interval, 0);
	config_free(cfg);
}
END_TEST

START_TEST(int64_values_are_accepted_in_range)
{
	struct config *cfg = check_load_ok(
	    "socket = { max_line = 4096L; };\n");

	ck_assert_int_eq(cfg->socket.max_line, 4096);
	config_free(cfg);

	check_problems(
	    "socket = {\n"
	    "  max_line = 100000000000L;\n"
	    "};\n",
	    ":2: socket.max_line: 100000000000 is above the maximum 16777216",
	    NULL);
}
END_TEST

START_TEST(bad_mode_strings_report_their_lines)
{
	struct config *cfg;

	check_problems(
	    "socket = {\n"
	    "  mode = \"0999\";\n"
	    "};\n",
	    ":2: socket.mode: \"0999\" is not an octal mode from 0 to 0777 "
	    "such as \"0660\"", NULL);
	check_problems(
	    "socket = { mode = \"01000\"; };\n",
	    ":1: socket.mode: \"01000\" is not an octal mode from 0 to 0777 "
	    "such as \"0660\"", NULL);
	check_problems(
	    "socket = { mode = \"rw\"; };\n",
	    ":1: socket.mode: \"rw\" is not an octal mode from 0 to 0777 "
	    "such as \"0660\"", NULL);
	check_problems(
	    "socket = { mode = \"\"; };\n",
	    ":1: socket.mode: \"\" is not an octal mode from 0 to 0777 "
	    "such as \"0660\"", NULL);
	check_problems(
	    "\n"
	    "socket = { mode = 660; };\n",
	    ":2: socket.mode: expected a string of octal digits such as "
	    "\"0660\"", NULL);

	cfg = check_load_ok("socket = { mode = \"777\"; };\n");
	ck_assert_int_eq(cfg->socket.mode, 0777);
	config_free(cfg);
}
END_TEST

START_TEST(bad_log_level_reports_its_line)
{
	check_problems(
	    "log = {\n"
	    "  level = \"verbose\";\n"
	    "};\n",
	    ":2: log.level: \"verbose\" is not one of debug, info, notice, "
	    "warn, err, crit", NULL);
}
END_TEST

START_TEST(bad_log_target_reports_its_line)
{
	struct config *cfg;

	check_problems(
	    "log = {\n"
	    "  level = \"warn\";\n"
	    "  target = \"smsgwd.log\";\n"
	    "};\n",
	    ":3: log.target: \"smsgwd.log\" is not stderr, syslog or an "
	    "absolute path", NULL);

	cfg = check_load_ok("log = { target = \"syslog\"; };\n");
	ck_assert_str_eq(cfg->log.target, "syslog");
	config_free(cfg);
}
END_TEST

START_TEST(control_characters_are_not_echoed)
{
	check_problems(
	    "log = { level = \"in\\nfo\"; };\n",
	    ":1: log.level: \"in?fo\" is not one of debug, info, notice, "
	    "warn, err, crit", NULL);
}
END_TEST

START_TEST(invalid_sender_reports_its_line)
{
	static const char *const good[] = {
		"Acme", "A1b2C3d4E5f", "+27821234567", "1234567890123456",
		"+1234567890123456", "",
	};
	struct config *cfg;
	char text[128];
	size_t i;

	check_problems(
	    "upstream = {\n"
	    "  username = \"u\";\n"
	    "  sender = \"AcmeWidgets1\";\n"
	    "};\n",
	    ":3: upstream.sender: \"AcmeWidgets1\" is not a sender: 1 to 11 "
	    "letters and digits, or 1 to 16 digits with an optional leading +",
	    NULL);
	check_problems(
	    "upstream = { sender = \"Acme Ltd\"; };\n",
	    ":1: upstream.sender: \"Acme Ltd\" is not a sender: 1 to 11 "
	    "letters and digits, or 1 to 16 digits with an optional leading +",
	    NULL);
	check_problems(
	    "upstream = { sender = \"+\"; };\n",
	    ":1: upstream.sender: \"+\" is not a sender: 1 to 11 "
	    "letters and digits, or 1 to 16 digits with an optional leading +",
	    NULL);
	check_problems(
	    "upstream = { sender = \"12345678901234567\"; };\n",
	    ":1: upstream.sender: \"12345678901234567\" is not a sender: 1 to "
	    "11 letters and digits, or 1 to 16 digits with an optional leading "
	    "+", NULL);

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text),
		    "upstream = { sender = \"%s\"; };\n", good[i]);
		cfg = check_load_ok(text);
		ck_assert_str_eq(cfg->upstream.sender, good[i]);
		config_free(cfg);
	}
}
END_TEST

START_TEST(url_must_be_http_or_https)
{
	check_problems(
	    "upstream = {\n"
	    "  url = \"ftp://example.com/\";\n"
	    "};\n",
	    ":2: upstream.url: \"ftp://example.com/\" does not start with "
	    "http:// or https://", NULL);
	check_problems(
	    "upstream = { url = \"https://\"; };\n",
	    ":1: upstream.url: \"https://\" does not start with "
	    "http:// or https://", NULL);
}
END_TEST

START_TEST(socket_path_length_is_checked)
{
	char text[256];
	struct config *cfg;

	check_problems(
	    "socket = {\n"
	    "  path = \"\";\n"
	    "};\n",
	    ":2: socket.path: must not be empty", NULL);

	snprintf(text, sizeof(text), "socket = { path = \"/%0107d\"; };\n", 0);
	check_problems(text,
	    ":1: socket.path: 108 bytes is longer than the maximum 107", NULL);

	snprintf(text, sizeof(text), "socket = { path = \"/%0106d\"; };\n", 0);
	cfg = check_load_ok(text);
	ck_assert_uint_eq(strlen(cfg->socket.path), 107);
	config_free(cfg);
}
END_TEST

START_TEST(storage_path_must_not_be_empty)
{
	check_problems("storage = { path = \"\"; };\n",
	    ":1: storage.path: must not be empty", NULL);
}
END_TEST

START_TEST(password_and_password_file_conflict)
{
	check_problems(
	    "upstream = {\n"
	    "  password = \"a\";\n"
	    "  password_file = \"/etc/passwd\";\n"
	    "};\n",
	    ":3: upstream.password_file: cannot be used together with "
	    "upstream.password", NULL);
}
END_TEST

START_TEST(unreadable_password_file_reports_its_line)
{
	char text[256], line[256];

	snprintf(text, sizeof(text),
	    "upstream = {\n"
	    "  username = \"u\";\n"
	    "  password_file = \"%s/missing\";\n"
	    "};\n", check_dir);
	snprintf(line, sizeof(line), ":3: upstream.password_file: cannot "
	    "read %s/missing: No such file or directory", check_dir);
	check_problems(text, line, NULL);
}
END_TEST

START_TEST(password_file_loses_one_trailing_newline)
{
	struct config *cfg;
	char text[256], path[192];

	snprintf(path, sizeof(path), "%s", check_write("pw", "hunter2\n\n"));
	snprintf(text, sizeof(text),
	    "upstream = { password_file = \"%s\"; };\n", path);
	cfg = check_load_ok(text);
	ck_assert_str_eq(cfg->upstream.password, "hunter2\n");
	ck_assert_str_eq(cfg->upstream.password_file, path);
	config_free(cfg);

	check_write("pw", "hunter2");
	cfg = check_load_ok(text);
	ck_assert_str_eq(cfg->upstream.password, "hunter2");
	config_free(cfg);
}
END_TEST

START_TEST(cap_below_base_reports_the_cap_line)
{
	check_problems(
	    "retry = {\n"
	    "  base_ms = 5000;\n"
	    "  cap_ms = 4000;\n"
	    "};\n",
	    ":3: retry.cap_ms: 4000 is below retry.base_ms 5000", NULL);
	/* Without cap_ms in the file, base_ms is what is wrong. */
	check_problems(
	    "retry = {\n"
	    "  base_ms = 700000;\n"
	    "};\n",
	    ":2: retry.base_ms: 700000 is above retry.cap_ms 600000", NULL);
}
END_TEST

START_TEST(max_validity_below_validity_reports_its_line)
{
	check_problems(
	    "retry = {\n"
	    "  max_validity = 60;\n"
	    "  validity = 120;\n"
	    "};\n",
	    ":2: retry.max_validity: 60 is below retry.validity 120", NULL);
}
END_TEST

START_TEST(all_problems_are_reported_in_file_order)
{
	check_problems(
	    "retry = {\n"
	    "  cap_ms = 10;\n"
	    "  base_ms = 20;\n"
	    "  max_attempts = 0;\n"
	    "};\n"
	    "socket = {\n"
	    "  pth = \"/x\";\n"
	    "  max_line = 1;\n"
	    "};\n"
	    "bogus = 1;\n"
	    "log = { level = \"loud\"; target = \"x\"; };\n",
	    ":2: retry.cap_ms: 10 is below retry.base_ms 20",
	    ":4: retry.max_attempts: 0 is below the minimum 1",
	    ":7: unknown key 'socket.pth'",
	    ":8: socket.max_line: 1 is below the minimum 256",
	    ":10: unknown key 'bogus'",
	    ":11: log.level: \"loud\" is not one of debug, info, notice, warn, "
	    "err, crit",
	    ":11: log.target: \"x\" is not stderr, syslog or an absolute path",
	    NULL);
}
END_TEST

START_TEST(credentials_directory_supplies_the_password)
{
	struct config *cfg;

	check_write("upstream-password", "from-systemd\n");
	setenv("CREDENTIALS_DIRECTORY", check_dir, 1);

	cfg = check_load_ok("upstream = { username = \"u\"; };\n");
	ck_assert_str_eq(cfg->upstream.password, "from-systemd");
	config_free(cfg);

	/* A password in the file wins over the credential. */
	cfg = check_load_ok("upstream = { password = \"inline\"; };\n");
	ck_assert_str_eq(cfg->upstream.password, "inline");
	config_free(cfg);
}
END_TEST

START_TEST(credentials_directory_without_the_file_is_ignored)
{
	struct config *cfg;

	setenv("CREDENTIALS_DIRECTORY", check_dir, 1);
	cfg = check_load_ok("");
	ck_assert_str_eq(cfg->upstream.password, "");
	config_free(cfg);
}
END_TEST

START_TEST(password_file_wins_over_credentials_directory)
{
	struct config *cfg;
	char text[256];
	const char *path;

	check_write("upstream-password", "from-systemd\n");
	setenv("CREDENTIALS_DIRECTORY", check_dir, 1);
	path = check_write("pw", "from-file\n");
	snprintf(text, sizeof(text),
	    "upstream = { password_file = \"%s\"; };\n", path);
	cfg = check_load_ok(text);
	ck_assert_str_eq(cfg->upstream.password, "from-file");
	config_free(cfg);
}
END_TEST

START_TEST(top_level_keys_are_checked)
{
	struct config *cfg;

	cfg = check_load_ok("shutdown_timeout = 0;\nuser = \"_smsgw-1.x\";\n");
	ck_assert_int_eq(cfg->shutdown_timeout, 0);
	ck_assert_str_eq(cfg->user, "_smsgw-1.x");
	config_free(cfg);

	check_problems(
	    "shutdown_timeout = 601;\n"
	    "user = \"smsgw daemon\";\n",
	    ":1: shutdown_timeout: 601 is above the maximum 600",
	    ":2: user: \"smsgw daemon\" is not a user name: letters, digits, "
	    "_, - and . only", NULL);
	check_problems(
	    "\n"
	    "user = \"-x\";\n",
	    ":2: user: \"-x\" is not a user name: it starts with -", NULL);
	check_problems(
	    "user = { name = \"smsgw\"; };\n"
	    "shutdown_timeout = \"10\";\n",
	    ":1: user: expected a string",
	    ":2: shutdown_timeout: expected an integer", NULL);
}
END_TEST

START_TEST(shutdown_timeout_is_no_longer_an_upstream_key)
{
	check_problems(
	    "upstream = {\n"
	    "  shutdown_timeout = 5;\n"
	    "};\n"
	    "socket = { user = \"x\"; };\n",
	    ":2: unknown key 'upstream.shutdown_timeout'",
	    ":4: unknown key 'socket.user'", NULL);
}
END_TEST

struct check_diff {
	char	 keys[1024];
	char	 flags[64];
	int	 calls;
};

static void
check_diff_cb(void *arg, const char *key, int reloadable)
{
	struct check_diff *d = arg;
	size_t n = strlen(d->keys);

	snprintf(d->keys + n, sizeof(d->keys) - n, "%s%s", n ? "," : "", key);
	n = strlen(d->flags);
	snprintf(d->flags + n, sizeof(d->flags) - n, "%d", reloadable);
	d->calls++;
}

START_TEST(diff_of_equal_configurations_is_empty)
{
	struct config *a = config_defaults(), *b;
	struct check_diff d;

	b = check_load_ok("log = { level = \"info\"; };\n");
	memset(&d, 0, sizeof(d));
	config_diff(a, b, check_diff_cb, &d);
	ck_assert_int_eq(d.calls, 0);
	config_free(a);
	config_free(b);
}
END_TEST

START_TEST(diff_names_each_changed_key_with_its_reload_flag)
{
	struct config *a, *b;
	struct check_diff d;

	a = check_load_ok(
	    "upstream = { password = \"old-secret\"; timeout = 5; };\n");
	b = check_load_ok(
	    "user = \"smsgw\";\n"
	    "socket = { path = \"/tmp/other.sock\"; mode = \"0600\"; };\n"
	    "upstream = { password = \"new-secret\"; timeout = 5;\n"
	    "  resend_ambiguous = false; };\n"
	    "log = { level = \"debug\"; };\n");
	memset(&d, 0, sizeof(d));
	config_diff(a, b, check_diff_cb, &d);
	ck_assert_str_eq(d.keys, "user,socket.path,socket.mode,"
	    "upstream.password,upstream.resend_ambiguous,log.level");
	ck_assert_str_eq(d.flags, "000111");
	/* Only names reach the callback, never a value. */
	ck_assert_ptr_null(strstr(d.keys, "secret"));
	config_free(a);
	config_free(b);
}
END_TEST

START_TEST(keep_fixed_takes_the_running_values_of_restart_keys)
{
	struct config *a, *b;
	struct check_diff d;

	a = check_load_ok(
	    "socket = { path = \"/tmp/a.sock\"; group = \"\"; };\n"
	    "storage = { path = \"/tmp/a.db\"; };\n");
	b = check_load_ok(
	    "user = \"smsgw\";\n"
	    "socket = { path = \"/tmp/b.sock\"; group = \"smsgw\";\n"
	    "  max_line = 1024; };\n"
	    "storage = { path = \"/tmp/b.db\"; retention = 60; };\n"
	    "log = { level = \"debug\"; };\n");
	ck_assert_int_eq(config_keep_fixed(b, a), 0);

	ck_assert_str_eq(b->user, "");
	ck_assert_str_eq(b->socket.path, "/tmp/a.sock");
	ck_assert_str_eq(b->socket.group, "");
	ck_assert_str_eq(b->storage.path, "/tmp/a.db");
	ck_assert_int_eq(b->socket.max_line, 1024);
	ck_assert_int_eq(b->storage.retention, 60);
	ck_assert_str_eq(b->log.level, "debug");

	memset(&d, 0, sizeof(d));
	config_diff(a, b, check_diff_cb, &d);
	ck_assert_str_eq(d.keys, "socket.max_line,storage.retention,"
	    "log.level");
	config_free(a);
	config_free(b);
}
END_TEST

START_TEST(only_socket_storage_path_and_user_need_a_restart)
{
	static const char *const restart[] = {
		"user", "socket.path", "socket.mode", "socket.group",
		"storage.path",
	};
	size_t i, j;
	int want;

	for (i = 0; i < sizeof(check_keys) / sizeof(check_keys[0]); i++) {
		want = 1;
		for (j = 0; j < sizeof(restart) / sizeof(restart[0]); j++)
			if (strcmp(check_keys[i], restart[j]) == 0)
				want = 0;
		ck_assert_msg(config_key_reloadable(check_keys[i]) == want,
		    "%s: reloadable is %d", check_keys[i],
		    config_key_reloadable(check_keys[i]));
	}
	ck_assert_int_eq(config_key_reloadable("socket"), -1);
	ck_assert_int_eq(config_key_reloadable("upstream.shutdown_timeout"),
	    -1);
}
END_TEST

static Suite *
check_config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_checked_fixture(tc, check_setup, check_teardown);
	tcase_add_test(tc, defaults_are_the_documented_values);
	tcase_add_test(tc, empty_file_gives_the_defaults);
	tcase_add_test(tc, empty_groups_give_the_defaults);
	tcase_add_test(tc, every_key_can_be_overridden);
	tcase_add_test(tc, shipped_file_loads_and_holds_the_defaults);
	tcase_add_test(tc, shipped_file_sets_every_key);
	tcase_add_test(tc, missing_file_is_reported_without_a_line);
	tcase_add_test(tc, syntax_error_reports_its_line);
	tcase_add_test(tc, unknown_key_reports_its_line);
	tcase_add_test(tc, unknown_group_reports_its_line_once);
	tcase_add_test(tc, top_level_key_is_unknown);
	tcase_add_test(tc, known_group_as_a_value_is_wrong);
	tcase_add_test(tc, wrong_types_report_their_lines);
	tcase_add_test(tc, below_minimum_reports_its_line);
	tcase_add_test(tc, above_maximum_reports_its_line);
	tcase_add_test(tc, bounds_themselves_are_accepted);
	tcase_add_test(tc, int64_values_are_accepted_in_range);
	tcase_add_test(tc, bad_mode_strings_report_their_lines);
	tcase_add_test(tc, bad_log_level_reports_its_line);
	tcase_add_test(tc, bad_log_target_reports_its_line);
	tcase_add_test(tc, control_characters_are_not_echoed);
	tcase_add_test(tc, invalid_sender_reports_its_line);
	tcase_add_test(tc, url_must_be_http_or_https);
	tcase_add_test(tc, socket_path_length_is_checked);
	tcase_add_test(tc, storage_path_must_not_be_empty);
	tcase_add_test(tc, password_and_password_file_conflict);
	tcase_add_test(tc, unreadable_password_file_reports_its_line);
	tcase_add_test(tc, password_file_loses_one_trailing_newline);
	tcase_add_test(tc, cap_below_base_reports_the_cap_line);
	tcase_add_test(tc, max_validity_below_validity_reports_its_line);
	tcase_add_test(tc, all_problems_are_reported_in_file_order);
	tcase_add_test(tc, credentials_directory_supplies_the_password);
	tcase_add_test(tc, credentials_directory_without_the_file_is_ignored);
	tcase_add_test(tc, password_file_wins_over_credentials_directory);
	tcase_add_test(tc, top_level_keys_are_checked);
	tcase_add_test(tc, shutdown_timeout_is_no_longer_an_upstream_key);
	tcase_add_test(tc, diff_of_equal_configurations_is_empty);
	tcase_add_test(tc, diff_names_each_changed_key_with_its_reload_flag);
	tcase_add_test(tc, keep_fixed_takes_the_running_values_of_restart_keys);
	tcase_add_test(tc, only_socket_storage_path_and_user_need_a_restart);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(check_config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
