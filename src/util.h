/* Small helpers shared by every module: clocks, randomness, time text. */
#ifndef SMSGW_UTIL_H
#define SMSGW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time in milliseconds since the epoch. */
int64_t util_now_ms(void);

/* Monotonic time in milliseconds, for durations and timers. */
int64_t util_mono_ms(void);

/* A uniformly random 64-bit value from getrandom(2). */
uint64_t util_random(void);

/* A uniformly random value in [0, bound); 0 when bound is 0. */
uint64_t util_random_below(uint64_t bound);

/* Formats ms since the epoch as "2026-12-03T10:00:00Z" into buf (>= 32). */
void util_iso8601(int64_t ms, char *buf, size_t len);

#endif
