/*
 * libFuzzer target for config_load: any bytes as a configuration file.
 * Checks that a load either gives a configuration within the documented
 * bounds or problems as "FILE:LINE: text" lines, never both, never neither.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#include "fuzz.h"

/*
 * The one file of this process, rewritten for every input. It is unlinked
 * at once and loaded through /proc, so that a crash leaves nothing behind.
 */
static int	fuzz_fd = -1;
static char	fuzz_path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char name[] = "/tmp/smsgw-fuzz-config.XXXXXX";
	int fd;

	(void)argc;
	(void)argv;

	/*
	 * A password_file or an @include naming the standard input must not
	 * wait on a terminal; nor may a credential of the environment count.
	 */
	if ((fd = open("/dev/null", O_RDONLY)) != -1) {
		dup2(fd, STDIN_FILENO);
		if (fd != STDIN_FILENO)
			close(fd);
	}
	unsetenv("CREDENTIALS_DIRECTORY");

	if ((fuzz_fd = mkstemp(name)) == -1) {
		perror("fuzz_config: mkstemp");
		abort();
	}
	unlink(name);
	snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
	return 0;
}

static void
fuzz_write(const uint8_t *data, size_t size)
{
	size_t off = 0;
	ssize_t n;

	FUZZ_CHECK(ftruncate(fuzz_fd, 0) == 0);
	while (off < size) {
		n = pwrite(fuzz_fd, data + off, size - off, (off_t)off);
		FUZZ_CHECK(n > 0);
		off += (size_t)n;
	}
}

/* Every problem is one line "FILE:LINE: text" or "FILE: text". */
static void
fuzz_check_problems(const char *problems)
{
	const char *line, *end;
	size_t len;

	len = strlen(problems);
	FUZZ_CHECK(len > 0 && problems[len - 1] == '\n');
	for (line = problems; *line != '\0'; line = end + 1) {
		end = strchr(line, '\n');
		FUZZ_CHECK(end != NULL && end > line);
		FUZZ_CHECK(memmem(line, (size_t)(end - line), ": ", 2) != NULL);
	}
}

static void
fuzz_check_string(const char *s, size_t min, size_t max)
{
	size_t n;

	FUZZ_CHECK(s != NULL);
	n = strlen(s);
	FUZZ_CHECK(n >= min && n <= max);
}

static void
fuzz_check_int(int v, int min, int max)
{
	FUZZ_CHECK(v >= min && v <= max);
}

/* The sender rule of the protocol, which the configuration shares. */
static void
fuzz_check_sender(const char *s)
{
	size_t i, n = strlen(s), start = s[0] == '+';
	int alnum = n <= 11, digits = n - start >= 1 && n - start <= 16;

	if (n == 0)
		return;
	for (i = 0; i < n; i++) {
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9')))
			alnum = 0;
		if (i >= start && (s[i] < '0' || s[i] > '9'))
			digits = 0;
	}
	FUZZ_CHECK(alnum || digits);
}

/* The bounds etc/smsgwd.conf documents for every key. */
static void
fuzz_check_config(const struct config *c)
{
	FUZZ_CHECK(c->file != NULL && strcmp(c->file, fuzz_path) == 0);
	fuzz_check_string(c->user, 0, 255);
	FUZZ_CHECK(c->user[0] != '-');
	fuzz_check_int(c->shutdown_timeout, 0, 600);

	fuzz_check_string(c->socket.path, 1, 107);
	fuzz_check_int(c->socket.mode, 0, 0777);
	fuzz_check_string(c->socket.group, 0, 255);
	fuzz_check_int(c->socket.max_line, 256, 16777216);
	fuzz_check_int(c->socket.max_connections, 1, 1000000);
	fuzz_check_int(c->socket.max_pending, 1, 1000000);

	fuzz_check_string(c->storage.path, 1, 4095);
	fuzz_check_int(c->storage.retention, 60, 315360000);
	fuzz_check_int(c->storage.max_queued, 1, 100000000);

	fuzz_check_string(c->upstream.url, 1, 2048);
	FUZZ_CHECK(strncmp(c->upstream.url, "http://", 7) == 0 ||
	    strncmp(c->upstream.url, "https://", 8) == 0);
	FUZZ_CHECK(c->upstream.username != NULL);
	FUZZ_CHECK(c->upstream.password != NULL);
	FUZZ_CHECK(c->upstream.password_file != NULL);
	fuzz_check_string(c->upstream.sender, 0, 17);
	fuzz_check_sender(c->upstream.sender);
	FUZZ_CHECK(c->upstream.ca_file != NULL);
	fuzz_check_int(c->upstream.max_concurrency, 1, 1000);
	fuzz_check_int(c->upstream.timeout, 1, 600);
	fuzz_check_int(c->upstream.connect_timeout, 1, 600);
	fuzz_check_int(c->upstream.resend_ambiguous, 0, 1);

	fuzz_check_int(c->retry.max_attempts, 1, 1000);
	fuzz_check_int(c->retry.base_ms, 1, 3600000);
	fuzz_check_int(c->retry.cap_ms, 1, 86400000);
	FUZZ_CHECK(c->retry.base_ms <= c->retry.cap_ms);
	fuzz_check_int(c->retry.validity, 1, 31536000);
	fuzz_check_int(c->retry.max_validity, 1, 31536000);
	FUZZ_CHECK(c->retry.validity <= c->retry.max_validity);

	fuzz_check_int(c->message.max_parts, 1, 255);

	FUZZ_CHECK(c->log.level != NULL && log_level_parse(c->log.level) != -1);
	fuzz_check_string(c->log.target, 1, 4095);
	FUZZ_CHECK(strcmp(c->log.target, "stderr") == 0 ||
	    strcmp(c->log.target, "syslog") == 0 || c->log.target[0] == '/');
	fuzz_check_int(c->log.stats_interval, 0, 86400);
	fuzz_check_int(c->log.mask_numbers, 0, 1);
}

static void
fuzz_diff_none(void *arg, const char *key, int reloadable)
{
	(void)arg;
	(void)reloadable;
	fprintf(stderr, "config_diff reports %s against itself\n", key);
	FUZZ_CHECK(!"a configuration differs from itself");
}

static void
fuzz_diff_key(void *arg, const char *key, int reloadable)
{
	(void)arg;
	FUZZ_CHECK(key != NULL);
	FUZZ_CHECK(config_key_reloadable(key) == reloadable);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg, *defaults;
	char *problems = (char *)"unset";

	fuzz_write(data, size);
	cfg = config_load(fuzz_path, &problems);
	FUZZ_CHECK((cfg == NULL) != (problems == NULL));

	if (cfg == NULL) {
		fuzz_check_problems(problems);
		free(problems);
		return 0;
	}

	fuzz_check_config(cfg);
	config_diff(cfg, cfg, fuzz_diff_none, NULL);
	defaults = config_defaults();
	FUZZ_CHECK(defaults != NULL);
	config_diff(defaults, cfg, fuzz_diff_key, NULL);
	config_free(defaults);
	config_free(cfg);
	return 0;
}
