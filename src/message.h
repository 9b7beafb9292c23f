/*
 * Messages: states, and the pure rules for a message's fields: recipient
 * numbers, sender ids, and the encoding and segment count of a text.
 */
#ifndef SMSGW_MESSAGE_H
#define SMSGW_MESSAGE_H

#include <stddef.h>

enum message_state {
	MESSAGE_QUEUED,
	MESSAGE_SENDING,
	MESSAGE_SENT,
	MESSAGE_DELIVERED,
	MESSAGE_UNDELIVERED,
	MESSAGE_CANCELLED,
	MESSAGE_EXPIRED,
	MESSAGE_FAILED,
	MESSAGE_STATE_MAX
};

enum message_encoding {
	MESSAGE_GSM7,
	MESSAGE_UCS2
};

#define MESSAGE_NUMBER_MAX	17	/* "+" 15 digits NUL */
#define MESSAGE_SENDER_MAX	18	/* "+" 16 digits, or 11 chars, NUL */
#define MESSAGE_REF_MAX		128

/* "queued", "sending", ...; "unknown" out of range. */
const char	*message_state_name(enum message_state);
/* The state named NAME, or -1. */
int		 message_state_parse(const char *name);
/* True for every state but queued and sending: the sender is done. */
int		 message_state_finished(enum message_state);

const char	*message_encoding_name(enum message_encoding);	/* gsm7, ucs2 */

/*
 * Checks a recipient: an optional "+" or "00", then 8 to 15 digits, the
 * first not 0, nothing else. On success writes "+<digits>" to out
 * (MESSAGE_NUMBER_MAX bytes) and returns 0; returns -1 otherwise.
 */
int		 message_number_normalise(const char *in, size_t n, char *out);

/*
 * Checks a sender id: 1 to 11 of A-Z a-z 0-9, or 1 to 16 digits with an
 * optional leading "+". Returns 0 when valid, -1 otherwise.
 */
int		 message_sender_check(const char *in, size_t n);

/*
 * Counts the parts TEXT (UTF-8, n bytes) needs. GSM 03.38 text is counted
 * in septets (the extension characters take two, never split across
 * parts); any other character makes the whole text UCS-2, counted in UTF-16
 * units (a character outside the BMP takes two, never split). One part
 * holds 160 septets or 70 units, each part of a longer text 153 or 67.
 * Returns 0 and sets *enc and *parts; returns -1 when the text is not valid
 * UTF-8 (overlong forms, surrogates and values above U+10FFFF included).
 */
int		 message_segments(const char *text, size_t n,
		    enum message_encoding *enc, int *parts);

#endif
