/*
 * The socket protocol, pure: one JSON line in, a checked request out; and
 * the writer of response lines.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "message.h"
#include "protocol.h"
#include "util.h"

_Static_assert(PROTOCOL_ID_LEN == UTIL_ID_LEN,
    "the protocol's ids are the text form of util_id_format");

/* Deeper nesting than this is refused; no request needs more than 2. */
#define PROTOCOL_MAX_DEPTH	32

enum protocol_field {
	FIELD_OP,
	FIELD_REQ,
	FIELD_TO,
	FIELD_TEXT,
	FIELD_FROM,
	FIELD_REF,
	FIELD_PRIORITY,
	FIELD_VALID_FOR,
	FIELD_ID,
	FIELD_AFTER,
	FIELD_LIMIT,
	FIELD_MAX,
	FIELD_UNKNOWN = FIELD_MAX
};

static const char *protocol_field_names[FIELD_MAX] = {
	"op", "req", "to", "text", "from", "ref", "priority", "valid_for", "id",
	"after", "limit"
};

enum protocol_type {
	TYPE_ABSENT,
	TYPE_STRING,
	TYPE_NUMBER,
	TYPE_OTHER	/* null, boolean, object or array */
};

struct protocol_value {
	enum protocol_type	 type;
	char			*s;		/* strings and numbers */
	size_t			 n;
};

struct protocol_parser {
	int			 depth;
	int			 field;		/* of the value to come */
	struct protocol_value	 values[FIELD_MAX];
	const char		*error;		/* found while parsing */
	char			 message[120];
};

struct protocol_reply {
	yajl_gen	 gen;
	char		*buf;
	size_t		 len;
	size_t		 size;
};

static void	protocol_error_set(struct protocol_error *, const char *code,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
protocol_error_set(struct protocol_error *e, const char *code,
    const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

/* A value at depth 1 is a field of the request; deeper ones are skipped. */
static int
protocol_value(struct protocol_parser *p, enum protocol_type type,
    const char *s, size_t n)
{
	struct protocol_value *v;

	if (p->depth == 0) {
		p->error = "bad_request";
		snprintf(p->message, sizeof(p->message),
		    "request is not a JSON object");
		return 0;
	}
	if (p->depth > 1 || p->field == FIELD_UNKNOWN)
		return 1;

	v = &p->values[p->field];
	v->type = type;
	if (s != NULL) {
		if ((v->s = malloc(n + 1)) == NULL)
			return 0;
		memcpy(v->s, s, n);
		v->s[n] = '\0';
		v->n = n;
	}
	return 1;
}

static int
protocol_cb_null(void *ctx)
{
	return protocol_value(ctx, TYPE_OTHER, NULL, 0);
}

static int
protocol_cb_boolean(void *ctx, int b)
{
	(void)b;
	return protocol_value(ctx, TYPE_OTHER, NULL, 0);
}

static int
protocol_cb_number(void *ctx, const char *s, size_t n)
{
	return protocol_value(ctx, TYPE_NUMBER, s, n);
}

static int
protocol_cb_string(void *ctx, const unsigned char *s, size_t n)
{
	return protocol_value(ctx, TYPE_STRING, (const char *)s, n);
}

static int
protocol_cb_open(struct protocol_parser *p)
{
	if (p->depth > 0 && !protocol_value(p, TYPE_OTHER, NULL, 0))
		return 0;
	if (++p->depth > PROTOCOL_MAX_DEPTH) {
		p->error = "bad_request";
		snprintf(p->message, sizeof(p->message),
		    "JSON nested deeper than %d levels", PROTOCOL_MAX_DEPTH);
		return 0;
	}
	return 1;
}

static int
protocol_cb_start_map(void *ctx)
{
	return protocol_cb_open(ctx);
}

static int
protocol_cb_start_array(void *ctx)
{
	struct protocol_parser *p = ctx;

	if (p->depth == 0) {
		p->error = "bad_request";
		snprintf(p->message, sizeof(p->message),
		    "request is not a JSON object");
		return 0;
	}
	return protocol_cb_open(p);
}

static int
protocol_cb_end(void *ctx)
{
	struct protocol_parser *p = ctx;

	p->depth--;
	return 1;
}

static int
protocol_cb_map_key(void *ctx, const unsigned char *key, size_t n)
{
	struct protocol_parser *p = ctx;
	int i;

	if (p->depth != 1)
		return 1;

	p->field = FIELD_UNKNOWN;
	for (i = 0; i < FIELD_MAX; i++) {
		if (strlen(protocol_field_names[i]) == n &&
		    memcmp(protocol_field_names[i], key, n) == 0) {
			p->field = i;
			break;
		}
	}
	if (p->field != FIELD_UNKNOWN &&
	    p->values[p->field].type != TYPE_ABSENT) {
		p->error = "bad_request";
		snprintf(p->message, sizeof(p->message),
		    "duplicate field '%s'", protocol_field_names[p->field]);
		return 0;
	}
	return 1;
}

static const yajl_callbacks protocol_callbacks = {
	protocol_cb_null,
	protocol_cb_boolean,
	NULL,
	NULL,
	protocol_cb_number,
	protocol_cb_string,
	protocol_cb_start_map,
	protocol_cb_map_key,
	protocol_cb_end,
	protocol_cb_start_array,
	protocol_cb_end
};

static int
protocol_hex4(const char *s, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return -1;
		v = v << 4 | (unsigned)(isdigit((unsigned char)s[i]) ?
		    s[i] - '0' : (tolower((unsigned char)s[i]) - 'a' + 10));
	}
	*out = v;
	return 0;
}

/*
 * yajl quietly turns a lone surrogate escape into '?' or into bytes that
 * are not UTF-8, so the raw line is checked for them first. A backslash
 * outside a string is a JSON error that the parser reports anyway.
 */
static int
protocol_surrogates_paired(const char *s, size_t n)
{
	unsigned u, low;
	size_t i;

	for (i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] != 'u') {
			i++;
			continue;
		}
		if (i + 6 > n || protocol_hex4(s + i + 2, &u) == -1)
			return 1;
		i += 5;
		if (u >= 0xdc00 && u <= 0xdfff)
			return 0;
		if (u < 0xd800 || u > 0xdbff)
			continue;
		if (i + 7 > n || s[i + 1] != '\\' || s[i + 2] != 'u' ||
		    protocol_hex4(s + i + 3, &low) == -1 ||
		    low < 0xdc00 || low > 0xdfff)
			return 0;
		i += 6;
	}
	return 1;
}

static void
protocol_parser_clear(struct protocol_parser *p)
{
	int i;

	for (i = 0; i < FIELD_MAX; i++)
		free(p->values[i].s);
}

static int
protocol_read(const char *line, size_t len, struct protocol_parser *p,
    struct protocol_error *e)
{
	yajl_handle h;
	yajl_status st;
	unsigned char *detail;

	/* yajl lets overlong forms and encoded surrogates through. */
	if (!util_utf8_valid((const unsigned char *)line, len)) {
		protocol_error_set(e, "bad_request", "line is not valid UTF-8");
		return -1;
	}
	if (!protocol_surrogates_paired(line, len)) {
		protocol_error_set(e, "bad_request",
		    "a string holds a lone UTF-16 surrogate escape");
		return -1;
	}
	if ((h = yajl_alloc(&protocol_callbacks, NULL, p)) == NULL) {
		protocol_error_set(e, "bad_request", "out of memory");
		return -1;
	}
	st = yajl_parse(h, (const unsigned char *)line, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	if (st == yajl_status_ok) {
		yajl_free(h);
		return 0;
	}

	if (p->error != NULL)
		protocol_error_set(e, p->error, "%s", p->message);
	else {
		detail = yajl_get_error(h, 0, NULL, 0);
		protocol_error_set(e, "bad_request", "invalid JSON: %s",
		    (char *)detail);
		yajl_free_error(h, detail);
	}
	yajl_free(h);
	return -1;
}

static int
protocol_string(const struct protocol_value *v, const char *name,
    struct protocol_error *e)
{
	if (v->type != TYPE_STRING) {
		protocol_error_set(e, "bad_request", "%s must be a string",
		    name);
		return -1;
	}
	if (memchr(v->s, '\0', v->n) != NULL) {
		protocol_error_set(e, "bad_request", "%s holds a NUL character",
		    name);
		return -1;
	}
	return 0;
}

static int
protocol_send_to(struct protocol_parser *p, struct protocol_request *rq,
    struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_TO];

	if (v->type == TYPE_ABSENT) {
		protocol_error_set(e, "bad_request", "send needs 'to'");
		return -1;
	}
	if (protocol_string(v, "to", e) == -1)
		return -1;
	if (message_number_normalise(v->s, v->n, rq->to) == -1) {
		protocol_error_set(e, "invalid_number",
		    "'to' must be an international number: an optional + or "
		    "00, then 8 to 15 digits, the first not 0");
		return -1;
	}
	return 0;
}

static int
protocol_send_text(struct protocol_parser *p, const struct protocol_limits *l,
    struct protocol_request *rq, struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_TEXT];

	if (v->type == TYPE_ABSENT || (v->type == TYPE_STRING && v->n == 0)) {
		protocol_error_set(e, "empty_text", "send needs a text");
		return -1;
	}
	if (protocol_string(v, "text", e) == -1)
		return -1;
	if (message_segments(v->s, v->n, &rq->encoding, &rq->segments) == -1) {
		protocol_error_set(e, "bad_request", "text is not valid UTF-8");
		return -1;
	}
	if (rq->segments > l->max_parts) {
		protocol_error_set(e, "text_too_long",
		    "text needs %d parts, at most %d are allowed",
		    rq->segments, l->max_parts);
		return -1;
	}

	/* The request takes the text over; the parser frees what is left. */
	rq->text = v->s;
	rq->text_len = v->n;
	v->s = NULL;
	return 0;
}

static int
protocol_send_from(struct protocol_parser *p, struct protocol_request *rq,
    struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_FROM];

	if (v->type == TYPE_ABSENT)
		return 0;
	if (protocol_string(v, "from", e) == -1)
		return -1;
	if (message_sender_check(v->s, v->n) == -1) {
		protocol_error_set(e, "invalid_sender",
		    "'from' must be 1 to 11 letters and digits, or 1 to 16 "
		    "digits");
		return -1;
	}
	memcpy(rq->from, v->s, v->n + 1);
	return 0;
}

static int
protocol_ref(struct protocol_parser *p, struct protocol_request *rq,
    struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_REF];

	if (v->type == TYPE_ABSENT)
		return 0;
	if (protocol_string(v, "ref", e) == -1)
		return -1;
	if (v->n == 0 || v->n > MESSAGE_REF_MAX) {
		protocol_error_set(e, "bad_request",
		    "ref must be 1 to %d bytes long", MESSAGE_REF_MAX);
		return -1;
	}
	memcpy(rq->ref, v->s, v->n + 1);
	return 0;
}

/* A JSON integer from MIN to MAX, digits only: -1 for anything else. */
static int
protocol_integer(const struct protocol_value *v, int64_t min, int64_t max,
    int64_t *out)
{
	size_t i;

	if (v->type != TYPE_NUMBER || v->n > 19 ||
	    (v->s[0] == '0' && v->n > 1))
		return -1;
	for (i = 0; i < v->n; i++)
		if (!isdigit((unsigned char)v->s[i]))
			return -1;
	errno = 0;
	*out = strtoll(v->s, NULL, 10);
	if (errno == ERANGE)
		return -1;
	return *out >= min && *out <= max ? 0 : -1;
}

static int
protocol_send_options(struct protocol_parser *p,
    const struct protocol_limits *l, struct protocol_request *rq,
    struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_PRIORITY];

	if (v->type != TYPE_ABSENT) {
		if (v->type != TYPE_STRING ||
		    (strcmp(v->s, "high") != 0 && strcmp(v->s, "normal") != 0)) {
			protocol_error_set(e, "bad_request",
			    "priority must be \"high\" or \"normal\"");
			return -1;
		}
		rq->priority = strcmp(v->s, "high") == 0;
	}

	v = &p->values[FIELD_VALID_FOR];
	if (v->type == TYPE_ABSENT ||
	    protocol_integer(v, 1, l->max_valid_for, &rq->valid_for) == 0)
		return 0;
	protocol_error_set(e, "bad_request",
	    "valid_for must be a whole number of seconds from 1 to %" PRId64,
	    l->max_valid_for);
	return -1;
}

static int
protocol_inbox(struct protocol_parser *p, struct protocol_request *rq,
    struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_AFTER];
	int64_t limit = PROTOCOL_INBOX_LIMIT;

	if (v->type != TYPE_ABSENT &&
	    protocol_integer(v, 0, INT64_MAX, &rq->after) == -1) {
		protocol_error_set(e, "bad_request",
		    "after must be a whole number, 0 or more");
		return -1;
	}
	v = &p->values[FIELD_LIMIT];
	if (v->type != TYPE_ABSENT &&
	    protocol_integer(v, 1, PROTOCOL_INBOX_MAX, &limit) == -1) {
		protocol_error_set(e, "bad_request",
		    "limit must be a whole number from 1 to %d",
		    PROTOCOL_INBOX_MAX);
		return -1;
	}
	rq->limit = (int)limit;
	return 0;
}

static int
protocol_id(struct protocol_parser *p, struct protocol_request *rq,
    struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_ID];

	if (v->type == TYPE_ABSENT)
		return 0;
	if (protocol_string(v, "id", e) == -1)
		return -1;
	rq->has_id = 1;
	if (protocol_id_parse(v->s, v->n, &rq->id) == -1) {
		/* A well-typed id that we never issued names no message. */
		rq->id = 0;
	}
	return 0;
}

static int
protocol_op(struct protocol_parser *p, struct protocol_request *rq,
    struct protocol_error *e)
{
	static const struct {
		const char	*name;
		enum protocol_op op;
	} ops[] = {
		{ "send", PROTOCOL_SEND },
		{ "status", PROTOCOL_STATUS },
		{ "cancel", PROTOCOL_CANCEL },
		{ "stats", PROTOCOL_STATS },
		{ "ping", PROTOCOL_PING },
		{ "inbox", PROTOCOL_INBOX },
	};
	struct protocol_value *v = &p->values[FIELD_OP];
	size_t i;

	if (v->type == TYPE_ABSENT) {
		protocol_error_set(e, "bad_request", "request has no 'op'");
		return -1;
	}
	if (protocol_string(v, "op", e) == -1)
		return -1;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(v->s, ops[i].name) == 0) {
			rq->op = ops[i].op;
			return 0;
		}
	}
	protocol_error_set(e, "bad_request", "unknown op '%.32s'", v->s);
	return -1;
}

static int
protocol_req(struct protocol_parser *p, struct protocol_request *rq,
    struct protocol_error *e)
{
	struct protocol_value *v = &p->values[FIELD_REQ];

	switch (v->type) {
	case TYPE_ABSENT:
		return 0;
	case TYPE_STRING:
		rq->req_type = PROTOCOL_REQ_STRING;
		break;
	case TYPE_NUMBER:
		rq->req_type = PROTOCOL_REQ_NUMBER;
		break;
	default:
		protocol_error_set(e, "bad_request",
		    "req must be a string or a number");
		return -1;
	}
	rq->req = v->s;
	rq->req_len = v->n;
	v->s = NULL;
	return 0;
}

static int
protocol_check(struct protocol_parser *p, const struct protocol_limits *l,
    struct protocol_request *rq, struct protocol_error *e)
{
	if (protocol_req(p, rq, e) == -1 || protocol_op(p, rq, e) == -1)
		return -1;

	switch (rq->op) {
	case PROTOCOL_SEND:
		if (protocol_send_to(p, rq, e) == -1 ||
		    protocol_send_text(p, l, rq, e) == -1 ||
		    protocol_send_from(p, rq, e) == -1 ||
		    protocol_ref(p, rq, e) == -1 ||
		    protocol_send_options(p, l, rq, e) == -1)
			return -1;
		return 0;
	case PROTOCOL_STATUS:
	case PROTOCOL_CANCEL:
		if (protocol_id(p, rq, e) == -1 || protocol_ref(p, rq, e) == -1)
			return -1;
		if (!rq->has_id && rq->ref[0] == '\0') {
			protocol_error_set(e, "bad_request",
			    "%s needs 'id' or 'ref'",
			    rq->op == PROTOCOL_STATUS ? "status" : "cancel");
			return -1;
		}
		return 0;
	case PROTOCOL_INBOX:
		return protocol_inbox(p, rq, e);
	case PROTOCOL_STATS:
	case PROTOCOL_PING:
		return 0;
	}
	return 0;
}

int
protocol_parse(const char *line, size_t len, const struct protocol_limits *l,
    struct protocol_request *rq, struct protocol_error *e)
{
	struct protocol_parser p;
	int rc;

	memset(rq, 0, sizeof(*rq));
	memset(&p, 0, sizeof(p));
	e->code = NULL;
	e->message[0] = '\0';

	rc = protocol_read(line, len, &p, e);
	if (rc == 0)
		rc = protocol_check(&p, l, rq, e);
	else
		protocol_req(&p, rq, e);
	protocol_parser_clear(&p);
	return rc;
}

void
protocol_request_clear(struct protocol_request *rq)
{
	free(rq->req);
	free(rq->text);
	rq->req = NULL;
	rq->text = NULL;
}

void
protocol_id_format(int64_t id, char *buf)
{
	util_id_format(id, buf);
}

int
protocol_id_parse(const char *s, size_t n, int64_t *id)
{
	return util_id_parse(s, n, id);
}

static void
protocol_reply_print(void *ctx, const char *s, size_t n)
{
	struct protocol_reply *r = ctx;
	char *buf;
	size_t size;

	if (r->len + n + 2 > r->size) {
		size = r->size ? r->size : 256;
		while (size < r->len + n + 2)
			size *= 2;
		if ((buf = realloc(r->buf, size)) == NULL)
			return;
		r->buf = buf;
		r->size = size;
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

struct protocol_reply *
protocol_reply_new(void)
{
	struct protocol_reply *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	if ((r->gen = yajl_gen_alloc(NULL)) == NULL) {
		free(r);
		return NULL;
	}
	yajl_gen_config(r->gen, yajl_gen_print_callback, protocol_reply_print,
	    r);
	yajl_gen_config(r->gen, yajl_gen_validate_utf8, 1);
	return r;
}

void
protocol_reply_free(struct protocol_reply *r)
{
	if (r == NULL)
		return;
	yajl_gen_free(r->gen);
	free(r->buf);
	free(r);
}

static void
protocol_reply_key(struct protocol_reply *r, const char *key)
{
	yajl_gen_string(r->gen, (const unsigned char *)key, strlen(key));
}

void
protocol_reply_begin(struct protocol_reply *r, const struct protocol_request *rq,
    int ok)
{
	yajl_gen_reset(r->gen, NULL);
	yajl_gen_clear(r->gen);
	r->len = 0;

	yajl_gen_map_open(r->gen);
	protocol_reply_bool(r, "ok", ok);
	if (rq == NULL || rq->req_type == PROTOCOL_REQ_NONE)
		return;
	protocol_reply_key(r, "req");
	if (rq->req_type == PROTOCOL_REQ_NUMBER)
		yajl_gen_number(r->gen, rq->req, rq->req_len);
	else
		yajl_gen_string(r->gen, (const unsigned char *)rq->req,
		    rq->req_len);
}

void
protocol_reply_string(struct protocol_reply *r, const char *key,
    const char *value)
{
	protocol_reply_bytes(r, key, value, strlen(value));
}

void
protocol_reply_bytes(struct protocol_reply *r, const char *key,
    const char *value, size_t len)
{
	protocol_reply_key(r, key);

	/* Bytes that are not UTF-8 would leave a key without its value. */
	if (yajl_gen_string(r->gen, (const unsigned char *)value, len) !=
	    yajl_gen_status_ok)
		yajl_gen_null(r->gen);
}

void
protocol_reply_int(struct protocol_reply *r, const char *key, int64_t value)
{
	protocol_reply_key(r, key);
	yajl_gen_integer(r->gen, value);
}

void
protocol_reply_double(struct protocol_reply *r, const char *key, double value)
{
	protocol_reply_key(r, key);
	yajl_gen_double(r->gen, value);
}

void
protocol_reply_bool(struct protocol_reply *r, const char *key, int value)
{
	protocol_reply_key(r, key);
	yajl_gen_bool(r->gen, value);
}

void
protocol_reply_null(struct protocol_reply *r, const char *key)
{
	protocol_reply_key(r, key);
	yajl_gen_null(r->gen);
}

void
protocol_reply_open(struct protocol_reply *r, const char *key)
{
	if (key != NULL)
		protocol_reply_key(r, key);
	yajl_gen_map_open(r->gen);
}

void
protocol_reply_open_array(struct protocol_reply *r, const char *key)
{
	protocol_reply_key(r, key);
	yajl_gen_array_open(r->gen);
}

void
protocol_reply_close_array(struct protocol_reply *r)
{
	yajl_gen_array_close(r->gen);
}

void
protocol_reply_close(struct protocol_reply *r)
{
	yajl_gen_map_close(r->gen);
}

const char *
protocol_reply_line(struct protocol_reply *r, size_t *len)
{
	yajl_gen_map_close(r->gen);
	if (r->buf == NULL) {
		*len = 0;
		return "";
	}
	r->buf[r->len++] = '\n';
	*len = r->len;
	return r->buf;
}

const char *
protocol_reply_error(struct protocol_reply *r,
    const struct protocol_request *rq, const char *code, const char *message,
    size_t *len)
{
	protocol_reply_begin(r, rq, 0);
	protocol_reply_string(r, "error", code);
	protocol_reply_string(r, "message", message);
	return protocol_reply_line(r, len);
}
