/*
 * Messages: state names, and the checks and counts for a message's fields
 * (recipient number, sender id, encoding and segments of the text).
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "message.h"

#define MESSAGE_GSM7_SINGLE	160
#define MESSAGE_GSM7_PART	153
#define MESSAGE_UCS2_SINGLE	70
#define MESSAGE_UCS2_PART	67

/* Greedy filling of parts, one counter per encoding. */
struct message_count {
	size_t	 total;
	size_t	 parts;
	size_t	 fill;
};

static const char *const message_state_names[MESSAGE_STATE_MAX] = {
	[MESSAGE_QUEUED] = "queued",
	[MESSAGE_SENDING] = "sending",
	[MESSAGE_SENT] = "sent",
	[MESSAGE_DELIVERED] = "delivered",
	[MESSAGE_UNDELIVERED] = "undelivered",
	[MESSAGE_CANCELLED] = "cancelled",
	[MESSAGE_EXPIRED] = "expired",
	[MESSAGE_FAILED] = "failed"
};

/*
 * Septets per character of U+0000..U+00FF in GSM 03.38: 1 for the basic
 * table, 2 for the extension table, 0 for characters it lacks. ESC is left
 * out on purpose: a client cannot send the escape itself.
 */
static const unsigned char message_gsm_latin1[256] = {
	['\n'] = 1, ['\f'] = 2, ['\r'] = 1,
	[' '] = 1, ['!'] = 1, ['"'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,
	['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1,
	[','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
	['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	[':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1, ['?'] = 1,
	['@'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['['] = 2, ['\\'] = 2, [']'] = 2, ['^'] = 2, ['_'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
	['{'] = 2, ['|'] = 2, ['}'] = 2, ['~'] = 2,
	[0xa1] = 1,	/* ¡ */
	[0xa3] = 1,	/* £ */
	[0xa4] = 1,	/* ¤ */
	[0xa5] = 1,	/* ¥ */
	[0xa7] = 1,	/* § */
	[0xbf] = 1,	/* ¿ */
	[0xc4] = 1,	/* Ä */
	[0xc5] = 1,	/* Å */
	[0xc6] = 1,	/* Æ */
	[0xc7] = 1,	/* Ç */
	[0xc9] = 1,	/* É */
	[0xd1] = 1,	/* Ñ */
	[0xd6] = 1,	/* Ö */
	[0xd8] = 1,	/* Ø */
	[0xdc] = 1,	/* Ü */
	[0xdf] = 1,	/* ß */
	[0xe0] = 1,	/* à */
	[0xe4] = 1,	/* ä */
	[0xe5] = 1,	/* å */
	[0xe6] = 1,	/* æ */
	[0xe8] = 1,	/* è */
	[0xe9] = 1,	/* é */
	[0xec] = 1,	/* ì */
	[0xf1] = 1,	/* ñ */
	[0xf2] = 1,	/* ò */
	[0xf6] = 1,	/* ö */
	[0xf8] = 1,	/* ø */
	[0xf9] = 1,	/* ù */
	[0xfc] = 1	/* ü */
};

const char *
message_state_name(enum message_state state)
{
	if ((unsigned int)state >= MESSAGE_STATE_MAX)
		return "unknown";
	return message_state_names[state];
}

int
message_state_parse(const char *name)
{
	int i;

	if (name == NULL)
		return -1;

	for (i = 0; i < MESSAGE_STATE_MAX; i++) {
		if (strcmp(name, message_state_names[i]) == 0)
			return i;
	}
	return -1;
}

int
message_state_finished(enum message_state state)
{
	/*
	 * The sending queue is done with a message once the upstream took
	 * it; only delivery reports move it on from sent.
	 */
	switch (state) {
	case MESSAGE_SENT:
	case MESSAGE_DELIVERED:
	case MESSAGE_UNDELIVERED:
	case MESSAGE_CANCELLED:
	case MESSAGE_EXPIRED:
	case MESSAGE_FAILED:
		return 1;
	default:
		return 0;
	}
}

const char *
message_encoding_name(enum message_encoding enc)
{
	switch (enc) {
	case MESSAGE_GSM7:
		return "gsm7";
	case MESSAGE_UCS2:
		return "ucs2";
	default:
		return "unknown";
	}
}

static int
message_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
message_is_alnum(char c)
{
	return message_is_digit(c) || (c >= 'A' && c <= 'Z') ||
	    (c >= 'a' && c <= 'z');
}

/* True when all n bytes of s are ASCII digits. */
static int
message_all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!message_is_digit(s[i]))
			return 0;
	}
	return 1;
}

int
message_number_normalise(const char *in, size_t n, char *out)
{
	if (in == NULL)
		return -1;

	if (n >= 1 && in[0] == '+') {
		in++;
		n--;
	} else if (n >= 2 && in[0] == '0' && in[1] == '0') {
		in += 2;
		n -= 2;
	}

	if (n < 8 || n > 15 || in[0] == '0' || !message_all_digits(in, n))
		return -1;

	out[0] = '+';
	memcpy(out + 1, in, n);
	out[n + 1] = '\0';
	return 0;
}

int
message_sender_check(const char *in, size_t n)
{
	size_t i;

	if (in == NULL || n == 0)
		return -1;

	if (n <= 11) {
		for (i = 0; i < n && message_is_alnum(in[i]); i++)
			;
		if (i == n)
			return 0;
	}

	if (in[0] == '+') {
		in++;
		n--;
	}
	if (n < 1 || n > 16 || !message_all_digits(in, n))
		return -1;
	return 0;
}

/*
 * Decodes one code point from s (len > 0 bytes) into *cp. Returns the bytes
 * it used, or 0 for anything that is not the shortest form of a scalar
 * value.
 */
static size_t
message_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need, i;
	uint32_t v;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}

	/*
	 * Narrowing the range of the second byte is what rules out overlong
	 * forms, surrogates and values above U+10FFFF.
	 */
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		need = 2;
		v = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		need = 3;
		v = s[0] & 0x0f;
		if (s[0] == 0xe0)
			lo = 0xa0;
		else if (s[0] == 0xed)
			hi = 0x9f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		need = 4;
		v = s[0] & 0x07;
		if (s[0] == 0xf0)
			lo = 0x90;
		else if (s[0] == 0xf4)
			hi = 0x8f;
	} else
		return 0;

	if (len < need || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (s[i] & 0x3f);
	}
	*cp = v;
	return need;
}

/* Septets cp takes in GSM 03.38: 1, 2 in the extension table, 0 if none. */
static unsigned int
message_gsm_cost(uint32_t cp)
{
	if (cp < 0x100)
		return message_gsm_latin1[cp];

	switch (cp) {
	case 0x0393:	/* Γ */
	case 0x0394:	/* Δ */
	case 0x0398:	/* Θ */
	case 0x039b:	/* Λ */
	case 0x039e:	/* Ξ */
	case 0x03a0:	/* Π */
	case 0x03a3:	/* Σ */
	case 0x03a6:	/* Φ */
	case 0x03a8:	/* Ψ */
	case 0x03a9:	/* Ω */
		return 1;
	case 0x20ac:	/* € */
		return 2;
	default:
		return 0;
	}
}

/* Adds a character of cost units, starting a part when it does not fit. */
static void
message_count_add(struct message_count *c, unsigned int cost, size_t part)
{
	c->total += cost;
	if (c->fill + cost > part) {
		c->parts++;
		c->fill = cost;
	} else
		c->fill += cost;
}

static int
message_count_parts(const struct message_count *c, size_t single)
{
	if (c->total == 0)
		return 0;
	if (c->total <= single)
		return 1;
	return c->parts > INT_MAX ? INT_MAX : (int)c->parts;
}

int
message_segments(const char *text, size_t n, enum message_encoding *enc,
    int *parts)
{
	const unsigned char *s = (const unsigned char *)text;
	struct message_count gsm = { 0, 1, 0 }, ucs = { 0, 1, 0 };
	int is_gsm = 1;
	unsigned int cost;
	size_t used;
	uint32_t cp;

	while (n > 0) {
		used = message_utf8_decode(s, n, &cp);
		if (used == 0)
			return -1;
		s += used;
		n -= used;

		if (is_gsm) {
			cost = message_gsm_cost(cp);
			if (cost == 0)
				is_gsm = 0;
			else
				message_count_add(&gsm, cost,
				    MESSAGE_GSM7_PART);
		}
		message_count_add(&ucs, cp >= 0x10000 ? 2 : 1,
		    MESSAGE_UCS2_PART);
	}

	if (is_gsm) {
		*enc = MESSAGE_GSM7;
		*parts = message_count_parts(&gsm, MESSAGE_GSM7_SINGLE);
	} else {
		*enc = MESSAGE_UCS2;
		*parts = message_count_parts(&ucs, MESSAGE_UCS2_SINGLE);
	}
	return 0;
}
