/*
 * Small helpers shared by every module: clocks, randomness, time text,
 * message ids as text, and UTF-8 checks.
 */
#include <sys/random.h>
#include <sys/time.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util.h"

int64_t
util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
util_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
util_mono_ms(void)
{
	return util_mono_us() / 1000;
}

uint64_t
util_random(void)
{
	uint64_t v;
	ssize_t n;

	do
		n = getrandom(&v, sizeof(v), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(v))
		v = (uint64_t)random() << 32 ^ (uint64_t)random();
	return v;
}

uint64_t
util_random_below(uint64_t bound)
{
	uint64_t limit, v;

	if (bound == 0)
		return 0;

	/* Reject the top sliver so that every value is equally likely. */
	limit = UINT64_MAX - UINT64_MAX % bound;
	do
		v = util_random();
	while (v >= limit);
	return v % bound;
}

void
util_iso8601(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct timeval *
util_timeval(int64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)(ms % 1000 * 1000);
	return tv;
}

void
util_id_format(int64_t id, char *buf)
{
	snprintf(buf, UTIL_ID_LEN + 1, "%016" PRIx64, (uint64_t)id);
}

int
util_id_parse(const char *s, size_t n, int64_t *id)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > UTIL_ID_LEN)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return -1;
		v = v << 4 | (uint64_t)(isdigit((unsigned char)s[i]) ?
		    s[i] - '0' : tolower((unsigned char)s[i]) - 'a' + 10);
	}
	if (v == 0 || v > INT64_MAX)
		return -1;
	*id = (int64_t)v;
	return 0;
}

/*
 * Narrowing the range of the second byte is what rules out overlong forms,
 * surrogates and values above U+10FFFF; ASCII passes at a glance.
 */
int
util_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, need;
	unsigned c, lo, hi;

	while (i < n) {
		c = s[i++];
		if (c < 0x80)
			continue;
		lo = 0x80;
		hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else
			return 0;
		if (i + need > n || s[i] < lo || s[i] > hi)
			return 0;
		for (i++, need--; need > 0; i++, need--)
			if (s[i] < 0x80 || s[i] > 0xbf)
				return 0;
	}
	return 1;
}
