/*
 * The socket protocol, pure: one JSON line in, a checked request out; and
 * the writer of response lines. Field rules and error codes are those of
 * the protocol documentation, which is a contract.
 */
#ifndef SMSGW_PROTOCOL_H
#define SMSGW_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"

enum protocol_op {
	PROTOCOL_SEND,
	PROTOCOL_STATUS,
	PROTOCOL_CANCEL,
	PROTOCOL_STATS,
	PROTOCOL_PING,
	PROTOCOL_INBOX
};

#define PROTOCOL_INBOX_LIMIT	100	/* inbound messages per answer */
#define PROTOCOL_INBOX_MAX	1000

enum protocol_req_type {
	PROTOCOL_REQ_NONE,
	PROTOCOL_REQ_STRING,
	PROTOCOL_REQ_NUMBER	/* kept as its JSON text, echoed exactly */
};

struct protocol_request {
	enum protocol_op	 op;
	enum protocol_req_type	 req_type;
	char			*req;		/* malloc'd */
	size_t			 req_len;

	/* send */
	char			 to[MESSAGE_NUMBER_MAX];	/* normalised */
	char			*text;		/* malloc'd, NUL-terminated */
	size_t			 text_len;
	char			 from[MESSAGE_SENDER_MAX];	/* "" default */
	int			 priority;	/* 1 high, 0 normal */
	int64_t			 valid_for;	/* seconds, 0 default */
	enum message_encoding	 encoding;
	int			 segments;

	/* send, status */
	char			 ref[MESSAGE_REF_MAX + 1];	/* "" none */

	/* status, cancel */
	int			 has_id;
	int64_t			 id;

	/* inbox */
	int64_t			 after;		/* cursor, 0 from the start */
	int			 limit;
};

struct protocol_limits {
	int		 max_parts;
	int64_t		 max_valid_for;
};

struct protocol_error {
	const char	*code;		/* "bad_request", "invalid_number", ... */
	char		 message[160];
};

/*
 * Parses one line (without its newline) into RQ. Returns 0, or -1 with E
 * filled; RQ's req is set in both cases where the line carried one. Free
 * RQ with protocol_request_clear either way.
 */
int		 protocol_parse(const char *line, size_t len,
		    const struct protocol_limits *, struct protocol_request *rq,
		    struct protocol_error *e);
void		 protocol_request_clear(struct protocol_request *rq);

/* A message id in the protocol's text form: 16 hex digits. */
#define PROTOCOL_ID_LEN	16
void		 protocol_id_format(int64_t id, char *buf);	/* >= 17 bytes */
/* Parses an id; -1 when it is not one. */
int		 protocol_id_parse(const char *s, size_t n, int64_t *id);

/*
 * The response writer: begin, add fields, end; protocol_reply_line returns
 * the line, newline included, valid until the next begin.
 */
struct protocol_reply;

struct protocol_reply	*protocol_reply_new(void);
void		 protocol_reply_free(struct protocol_reply *);
void		 protocol_reply_begin(struct protocol_reply *,
		    const struct protocol_request *rq, int ok);
void		 protocol_reply_string(struct protocol_reply *, const char *key,
		    const char *value);
void		 protocol_reply_bytes(struct protocol_reply *, const char *key,
		    const char *value, size_t len);
void		 protocol_reply_int(struct protocol_reply *, const char *key,
		    int64_t value);
void		 protocol_reply_double(struct protocol_reply *,
		    const char *key, double value);
void		 protocol_reply_bool(struct protocol_reply *, const char *key,
		    int value);
void		 protocol_reply_null(struct protocol_reply *, const char *key);
/*
 * Opens a nested object under KEY (NULL inside an array); close it with
 * protocol_reply_close. Arrays likewise.
 */
void		 protocol_reply_open(struct protocol_reply *, const char *key);
void		 protocol_reply_close(struct protocol_reply *);
void		 protocol_reply_open_array(struct protocol_reply *,
		    const char *key);
void		 protocol_reply_close_array(struct protocol_reply *);
const char	*protocol_reply_line(struct protocol_reply *, size_t *len);

/* A whole error response in one call. */
const char	*protocol_reply_error(struct protocol_reply *,
		    const struct protocol_request *rq, const char *code,
		    const char *message, size_t *len);

#endif
