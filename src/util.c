/* Small helpers shared by every module: clocks, randomness, time text. */
#include <sys/random.h>

#include <errno.h>
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
util_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
