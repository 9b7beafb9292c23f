/*
 * Helpers shared by the fuzz targets: a check that aborts so that libFuzzer
 * reports the input, and independent oracles for UTF-8 and reason tokens.
 */
#ifndef SMSGW_FUZZ_H
#define SMSGW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int	LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken invariant: say which, then abort so the input is kept. */
#define FUZZ_CHECK(cond)						\
	do {								\
		if (!(cond))						\
			fuzz_fail(#cond, __FILE__, __LINE__);		\
	} while (0)

static inline void
fuzz_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

/*
 * Decodes one UTF-8 character (shortest form, a scalar value) from S, N > 0
 * bytes. Returns the bytes it takes, or 0 when it is not one. Written from
 * the Unicode tables, independently of the code under test.
 */
static inline size_t
fuzz_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t need, i;
	uint32_t v, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		need = 2;
		v = s[0] & 0x1f;
		min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		need = 3;
		v = s[0] & 0x0f;
		min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		need = 4;
		v = s[0] & 0x07;
		min = 0x10000;
	} else
		return 0;

	if (n < need)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return need;
}

static inline int
fuzz_utf8_valid(const char *text, size_t n)
{
	const unsigned char *s = (const unsigned char *)text;
	uint32_t cp;
	size_t used;

	while (n > 0) {
		if ((used = fuzz_utf8_next(s, n, &cp)) == 0)
			return 0;
		s += used;
		n -= used;
	}
	return 1;
}

/* True for a reason token: lower-case words of a-z 0-9 joined by '-'. */
static inline int
fuzz_kebab(const char *s, size_t size)
{
	size_t i;
	int word = 0;

	for (i = 0; i < size && s[i] != '\0'; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))
			word = 1;
		else if (s[i] == '-' && word)
			word = 0;
		else
			return 0;
	}
	return i < size && word;
}

/* True when BUF (SIZE bytes) holds a NUL, so that it is a C string. */
static inline int
fuzz_terminated(const char *buf, size_t size)
{
	size_t i;

	for (i = 0; i < size; i++)
		if (buf[i] == '\0')
			return 1;
	return 0;
}

#endif
