/*
 * The delivery-report listener: an HTTP server (evhttp) that the upstream
 * calls with delivery reports and inbound messages. Also the pure pieces
 * the tests and fuzzers reach directly: tokens, report URLs, query parsing.
 */
#ifndef SMSGW_DLR_H
#define SMSGW_DLR_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dlr;

/* Delivery codes the upstream puts in place of %d (not message_status). */
#define DLR_DELIVERED		1
#define DLR_UNDELIVERED		2
#define DLR_QUEUED		4	/* queued at network, not final */
#define DLR_SENT		8	/* sent to network, not final */
#define DLR_FAILED		16	/* failed at network, final */

#define DLR_TOKEN_LEN		32	/* hex digits of a report token */
#define DLR_URI_MAX		4096	/* longer request URIs are refused */
#define DLR_INBOUND_STORAGE	DLR_URI_MAX /* enough for any inbound */

struct dlr_inbound {
	const char	*from;		/* as given, digits */
	const char	*to;
	char		*text;		/* UTF-8, malloc'd, NUL-terminated */
	size_t		 text_len;
	const char	*charset;	/* as given, or "" */
	const char	*code;		/* the upstream's keyword/code, or "" */
};

struct dlr_handler {
	/*
	 * A report with CODE for message ID (its token already checked).
	 * Returns the HTTP status to answer: 200 taken, 404 unknown id,
	 * 503 when it could not be stored.
	 */
	int	(*report)(void *arg, int64_t id, int code);
	/* An inbound message: 200 stored, 503 not stored. */
	int	(*inbound)(void *arg, const struct dlr_inbound *);
	void	*arg;
};

struct dlr_options {
	const char	*listen;	/* "127.0.0.1:8025" or "[::1]:8025" */
	const char	*secret;	/* dlr.token: signs report tokens */
	const char	*inbound_token;	/* dlr.inbound_token: "" refuses all */
};

/* Returns NULL with a reason in err (bad address, port in use, ...). */
struct dlr	*dlr_new(struct event_base *, const struct dlr_options *,
		    const struct dlr_handler *, char *err, size_t errlen);
/* New secrets; the listen address needs a restart. */
void		 dlr_set_options(struct dlr *, const struct dlr_options *);
void		 dlr_free(struct dlr *);
/* The port the listener is bound to (useful when listen asked for 0). */
int		 dlr_port(const struct dlr *);

/*
 * The token of message ID under SECRET: DLR_TOKEN_LEN hex digits + NUL.
 * An empty SECRET still gives one, which anybody can compute.
 */
void		 dlr_token(const char *secret, int64_t id, char *out);
/* 1 when TOKEN is ID's token under SECRET (constant time), 0 otherwise. */
int		 dlr_token_check(const char *secret, int64_t id,
		    const char *token);
/*
 * The report_url for message ID: PUBLIC_URL with id, t and status=%d
 * appended as query parameters. malloc'd; NULL when out of memory.
 */
char		*dlr_report_url(const char *public_url, const char *secret,
		    int64_t id);

/*
 * Parses a report's query string ("id=...&t=...&status=4"): 0 with the
 * fields set, -1 when it is malformed (missing field, bad id, status not
 * an integer). TOKEN gets at most DLR_TOKEN_LEN characters + NUL.
 */
int		 dlr_parse_report(const char *query, int64_t *id, char *token,
		    size_t tokenlen, int *code);
/*
 * Parses an inbound message's query string (to, from, message, charset,
 * code; message in UTF-8 or UTF-16BE given as hex or raw, as the charset
 * says). 0 and M filled (free with dlr_inbound_clear), -1 when malformed.
 * The string fields point into STORAGE, which must outlive M;
 * DLR_INBOUND_STORAGE bytes hold any query the listener takes.
 */
int		 dlr_parse_inbound(const char *query, struct dlr_inbound *m,
		    char *storage, size_t storagelen);
void		 dlr_inbound_clear(struct dlr_inbound *m);

/* "delivered", "undelivered", "queued-at-network", ...; "unknown". */
const char	*dlr_code_name(int code);
/* True for the codes after which the message's state cannot change. */
int		 dlr_code_final(int code);

#endif
