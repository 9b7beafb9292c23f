/*
 * libFuzzer target for the message rules: any bytes as a text to count in
 * segments, as a recipient to normalise and as a sender id to check, each
 * against an oracle written here from GSM 03.38 and the protocol's rules.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

#include "fuzz.h"

/* GSM 03.38's basic table outside ASCII (ESC left out: clients cannot). */
static const uint32_t fuzz_gsm_basic[] = {
	0x00a1, 0x00a3, 0x00a4, 0x00a5, 0x00a7, 0x00bf, 0x00c4, 0x00c5,
	0x00c6, 0x00c7, 0x00c9, 0x00d1, 0x00d6, 0x00d8, 0x00dc, 0x00df,
	0x00e0, 0x00e4, 0x00e5, 0x00e6, 0x00e8, 0x00e9, 0x00ec, 0x00f1,
	0x00f2, 0x00f6, 0x00f8, 0x00f9, 0x00fc,
	0x0393, 0x0394, 0x0398, 0x039b, 0x039e, 0x03a0, 0x03a3, 0x03a6,
	0x03a8, 0x03a9
};

/* Its extension table: each takes an escape septet too. */
static const uint32_t fuzz_gsm_ext[] = {
	0x000c, 0x005b, 0x005c, 0x005d, 0x005e, 0x007b, 0x007c, 0x007d,
	0x007e, 0x20ac
};

static int
fuzz_in(const uint32_t *set, size_t n, uint32_t cp)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (set[i] == cp)
			return 1;
	return 0;
}

/* Septets CP takes in GSM-7: 1, 2 for the extension table, 0 for none. */
static unsigned int
fuzz_gsm_septets(uint32_t cp)
{
	if (fuzz_in(fuzz_gsm_ext, sizeof(fuzz_gsm_ext) /
	    sizeof(fuzz_gsm_ext[0]), cp))
		return 2;
	if (cp == '\n' || cp == '\r' || (cp >= 0x20 && cp <= 0x5f &&
	    cp != 0x5b && cp != 0x5c && cp != 0x5d && cp != 0x5e) ||
	    (cp >= 'a' && cp <= 'z'))
		return 1;
	return fuzz_in(fuzz_gsm_basic, sizeof(fuzz_gsm_basic) /
	    sizeof(fuzz_gsm_basic[0]), cp) ? 1 : 0;
}

/* Greedy filling of parts that never splits a character. */
struct fuzz_fill {
	size_t	total;
	size_t	parts;
	size_t	room;
};

static void
fuzz_fill_add(struct fuzz_fill *f, unsigned int units, size_t part)
{
	f->total += units;
	if (f->parts == 0 || f->room < units) {
		f->parts++;
		f->room = part;
	}
	f->room -= units;
}

static size_t
fuzz_fill_parts(const struct fuzz_fill *f, size_t single, size_t part)
{
	if (f->total == 0)
		return 0;
	if (f->total <= single)
		return 1;

	/* Whatever the packing, each part loses at most one unit. */
	FUZZ_CHECK(f->parts >= (f->total + part - 1) / part);
	FUZZ_CHECK(f->parts <= (f->total + part - 2) / (part - 1));
	return f->parts;
}

static void
fuzz_check_segments(const uint8_t *data, size_t size)
{
	struct fuzz_fill gsm = { 0, 0, 0 }, ucs = { 0, 0, 0 };
	enum message_encoding enc = MESSAGE_GSM7;
	size_t want, off, used;
	int parts = -1, rc, is_gsm = 1;
	unsigned int septets;
	uint32_t cp;

	rc = message_segments((const char *)data, size, &enc, &parts);
	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK((rc == 0) == fuzz_utf8_valid((const char *)data, size));
	if (rc == -1)
		return;

	FUZZ_CHECK(enc == MESSAGE_GSM7 || enc == MESSAGE_UCS2);
	FUZZ_CHECK(parts >= 0);
	FUZZ_CHECK((parts == 0) == (size == 0));

	for (off = 0; off < size; off += used) {
		used = fuzz_utf8_next(data + off, size - off, &cp);
		FUZZ_CHECK(used > 0);
		septets = fuzz_gsm_septets(cp);
		if (septets == 0)
			is_gsm = 0;
		else
			fuzz_fill_add(&gsm, septets, 153);
		fuzz_fill_add(&ucs, cp >= 0x10000 ? 2 : 1, 67);
	}

	FUZZ_CHECK(enc == (is_gsm ? MESSAGE_GSM7 : MESSAGE_UCS2));
	if (is_gsm)
		want = fuzz_fill_parts(&gsm, 160, 153);
	else
		want = fuzz_fill_parts(&ucs, 70, 67);
	FUZZ_CHECK((size_t)parts == want);
}

static int
fuzz_digits(const uint8_t *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* After an optional "+" or "00": 8 to 15 digits, the first not 0. */
static void
fuzz_check_number(const uint8_t *data, size_t size)
{
	const uint8_t *d = data;
	char *out;
	size_t n = size;
	int rc, want;

	if (n >= 1 && d[0] == '+') {
		d++;
		n--;
	} else if (n >= 2 && d[0] == '0' && d[1] == '0') {
		d += 2;
		n -= 2;
	}
	want = n >= 8 && n <= 15 && d[0] != '0' && fuzz_digits(d, n);

	/* Exactly the documented size, so that ASan sees any overrun. */
	out = malloc(MESSAGE_NUMBER_MAX);
	FUZZ_CHECK(out != NULL);
	rc = message_number_normalise((const char *)data, size, out);
	FUZZ_CHECK(rc == (want ? 0 : -1));
	if (rc == 0) {
		FUZZ_CHECK(out[0] == '+');
		FUZZ_CHECK(memcmp(out + 1, d, n) == 0 && out[n + 1] == '\0');
	}
	free(out);
}

/* 1 to 11 of A-Z a-z 0-9, or 1 to 16 digits after an optional "+". */
static void
fuzz_check_sender(const uint8_t *data, size_t size)
{
	size_t i, n = size;
	const uint8_t *d = data;
	int alnum = size >= 1 && size <= 11, want, rc;

	for (i = 0; i < size && alnum; i++)
		if (!((d[i] >= 'A' && d[i] <= 'Z') ||
		    (d[i] >= 'a' && d[i] <= 'z') ||
		    (d[i] >= '0' && d[i] <= '9')))
			alnum = 0;
	if (n >= 1 && d[0] == '+') {
		d++;
		n--;
	}
	want = alnum || (n >= 1 && n <= 16 && fuzz_digits(d, n));

	rc = message_sender_check((const char *)data, size);
	FUZZ_CHECK(rc == (want ? 0 : -1));

	/* A valid sender, NUL included, fits the buffers made for one. */
	if (rc == 0)
		FUZZ_CHECK(size + 1 <= MESSAGE_SENDER_MAX);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_check_segments(data, size);
	fuzz_check_number(data, size);
	fuzz_check_sender(data, size);
	return 0;
}
