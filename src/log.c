/*
 * Logging: one line per event to stderr (with journald priority prefixes
 * under systemd), syslog or a file, and helpers for untrusted log text.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX	8192

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_FILE
};

static struct {
	enum log_target	 target;
	int		 fd;
	char		*path;
	enum log_level	 level;
	int		 mask_numbers;
	int		 journal;
	int		 journal_checked;
} log_state = {
	.target = LOG_TARGET_STDERR,
	.fd = STDERR_FILENO,
	.level = LOG_LEVEL_INFO,
	.mask_numbers = 1,
};

static const struct {
	const char	*name;
	enum log_level	 level;
} log_levels[] = {
	{ "debug", LOG_LEVEL_DEBUG },
	{ "info", LOG_LEVEL_INFO },
	{ "notice", LOG_LEVEL_NOTICE },
	{ "warn", LOG_LEVEL_WARN },
	{ "err", LOG_LEVEL_ERR },
	{ "crit", LOG_LEVEL_CRIT },
};

int
log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (strcmp(name, log_levels[i].name) == 0)
			return log_levels[i].level;
	return -1;
}

const char *
log_level_name(enum log_level level)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (log_levels[i].level == level)
			return log_levels[i].name;
	return "unknown";
}

/* True when JOURNAL_STREAM names the file that fd 2 is, as "dev:ino". */
static int
log_journal_stream(void)
{
	const char *env;
	uintmax_t dev, ino;
	struct stat st;
	char *end;

	env = getenv("JOURNAL_STREAM");
	if (env == NULL || *env == '\0')
		return 0;

	errno = 0;
	dev = strtoumax(env, &end, 10);
	if (errno != 0 || end == env || *end != ':')
		return 0;
	env = end + 1;
	ino = strtoumax(env, &end, 10);
	if (errno != 0 || end == env || *end != '\0')
		return 0;

	if (fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

static int
log_open_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

/* Leaves the current target, falling back to stderr. */
static void
log_leave(void)
{
	if (log_state.target == LOG_TARGET_FILE && log_state.fd != -1)
		close(log_state.fd);
	else if (log_state.target == LOG_TARGET_SYSLOG)
		closelog();
	free(log_state.path);

	log_state.path = NULL;
	log_state.target = LOG_TARGET_STDERR;
	log_state.fd = STDERR_FILENO;
	log_state.journal = 0;
	log_state.journal_checked = 0;
}

int
log_open(const char *target, enum log_level level, int mask_numbers,
    char *err, size_t errlen)
{
	char *path;
	int fd;

	if (strcmp(target, "stderr") == 0) {
		log_leave();
		log_state.journal = log_journal_stream();
		log_state.journal_checked = 1;
	} else if (strcmp(target, "syslog") == 0) {
		log_leave();
		openlog("smsgwd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_state.target = LOG_TARGET_SYSLOG;
	} else if (target[0] == '/') {
		/* Open the new file before leaving the old target. */
		if ((path = strdup(target)) == NULL) {
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		if ((fd = log_open_file(path)) == -1) {
			snprintf(err, errlen, "cannot open %s: %s", path,
			    strerror(errno));
			free(path);
			return -1;
		}
		log_leave();
		log_state.target = LOG_TARGET_FILE;
		log_state.fd = fd;
		log_state.path = path;
	} else {
		snprintf(err, errlen,
		    "target must be stderr, syslog or an absolute path");
		return -1;
	}

	log_state.level = level;
	log_state.mask_numbers = mask_numbers;
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (log_state.target != LOG_TARGET_FILE)
		return 0;

	/* On failure keep writing to the old file rather than nowhere. */
	if ((fd = log_open_file(log_state.path)) == -1)
		return -1;
	close(log_state.fd);
	log_state.fd = fd;
	return 0;
}

void
log_close(void)
{
	log_leave();
	log_state.level = LOG_LEVEL_INFO;
	log_state.mask_numbers = 1;
}

void
log_set_level(enum log_level level)
{
	log_state.level = level;
}

int
log_enabled(enum log_level level)
{
	return level <= log_state.level;
}

/* Writes "2026-12-03T10:00:00.123Z " into buf, returning its length. */
static size_t
log_timestamp(char *buf, size_t len)
{
	int64_t ms = util_now_ms();
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	size_t n;
	int m;

	gmtime_r(&t, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	m = snprintf(buf + n, len - n, ".%03dZ ", (int)(ms % 1000));
	return n + (size_t)m;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t n, room;
	va_list ap;
	int saved, m;
	ssize_t w;

	if (!log_enabled(level))
		return;

	/* Callers log a failure and then still look at errno. */
	saved = errno;

	/* Lines logged before log_open go to stderr, maybe to journald. */
	if (log_state.target == LOG_TARGET_STDERR &&
	    !log_state.journal_checked) {
		log_state.journal = log_journal_stream();
		log_state.journal_checked = 1;
	}

	n = 0;
	if (log_state.target == LOG_TARGET_STDERR && log_state.journal)
		n = (size_t)snprintf(line, sizeof(line), "<%d>", (int)level);
	else if (log_state.target != LOG_TARGET_SYSLOG) {
		n = log_timestamp(line, sizeof(line));
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s: ",
		    log_level_name(level));
	}

	/* Keep room for the newline. */
	room = sizeof(line) - n - 1;
	va_start(ap, fmt);
	m = vsnprintf(line + n, room, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)m >= room) {
		memcpy(line + sizeof(line) - 4, "...", 3);
		n = sizeof(line) - 1;
	} else
		n += (size_t)m;

	if (log_state.target == LOG_TARGET_SYSLOG) {
		line[n] = '\0';
		syslog((int)level, "%s", line);
	} else {
		line[n++] = '\n';
		do
			w = write(log_state.fd, line, n);
		while (w == -1 && errno == EINTR);
	}

	errno = saved;
}

/* Copies s (n bytes) into buf, cut with "..." when it does not fit. */
static void
log_copy_cut(const char *s, size_t n, char *buf, size_t len)
{
	if (n < len) {
		memcpy(buf, s, n);
		buf[n] = '\0';
		return;
	}

	n = len > 4 ? len - 4 : 0;
	memcpy(buf, s, n);
	snprintf(buf + n, len - n, "...");
}

const char *
log_number(const char *number, char *buf, size_t len)
{
	char tmp[LOG_NUMBER_MAX];
	size_t i, n, skip, digits;

	if (len == 0)
		return buf;
	if (number == NULL)
		number = "-";
	n = strlen(number);
	if (!log_state.mask_numbers) {
		log_escape(number, n, buf, len);
		return buf;
	}

	skip = number[0] == '+';
	digits = n - skip;
	if (n >= sizeof(tmp)) {
		/* Nothing that long is a number; say only how long it was. */
		snprintf(buf, len, "*(%zu)", n);
		return buf;
	}

	for (i = 0; i < n; i++) {
		tmp[i] = '*';
		if (i < skip)
			tmp[i] = '+';
		else if (digits > 6 && (i < skip + 4 || i >= n - 2) &&
		    number[i] >= '0' && number[i] <= '9')
			tmp[i] = number[i];
	}
	log_copy_cut(tmp, n, buf, len);
	return buf;
}

/* True for a byte that appears as itself in escaped text. */
static int
log_plain(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

const char *
log_escape(const char *s, size_t n, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t i, need, o, piece;

	if (len == 0)
		return buf;

	need = 0;
	for (i = 0; i < n; i++)
		need += log_plain(p[i]) ? 1 : 4;

	o = 0;
	for (i = 0; i < n; i++) {
		piece = log_plain(p[i]) ? 1 : 4;
		/* When cutting, keep room for "..." and the NUL. */
		if (need >= len && o + piece + 4 > len)
			break;
		if (piece == 1)
			buf[o++] = (char)p[i];
		else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[p[i] >> 4];
			buf[o++] = hex[p[i] & 0xf];
		}
	}

	if (i < n)
		snprintf(buf + o, len - o, "...");
	else
		buf[o] = '\0';
	return buf;
}
