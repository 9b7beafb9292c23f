/*
 * Small helpers shared by every module: clocks, randomness, time text,
 * message ids as text, and UTF-8 checks.
 */
#ifndef SMSGW_UTIL_H
#define SMSGW_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct timeval;

/* Wall-clock time in milliseconds since the epoch. */
int64_t util_now_ms(void);

/* Monotonic time in milliseconds, for durations and timers. */
int64_t util_mono_ms(void);
/* The same in microseconds. */
int64_t util_mono_us(void);

/* A uniformly random 64-bit value from getrandom(2). */
uint64_t util_random(void);

/* A uniformly random value in [0, bound); 0 when bound is 0. */
uint64_t util_random_below(uint64_t bound);

/* Formats ms since the epoch as "2026-12-03T10:00:00Z" into buf (>= 32). */
void util_iso8601(int64_t ms, char *buf, size_t len);

/* Fills tv with a duration of ms milliseconds and returns it. */
struct timeval *util_timeval(int64_t ms, struct timeval *tv);

/* A message id as text: 16 hex digits, as clients and reports see it. */
#define UTIL_ID_LEN	16
void util_id_format(int64_t id, char *buf);	/* >= UTIL_ID_LEN + 1 bytes */
/* Parses 1 to 16 hex digits, not all zero; -1 when s is not an id. */
int util_id_parse(const char *s, size_t n, int64_t *id);

/*
 * True when s (n bytes) is strict UTF-8: no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
int util_utf8_valid(const unsigned char *s, size_t n);

#endif
