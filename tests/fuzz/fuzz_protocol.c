/*
 * libFuzzer target for protocol_parse: any bytes as one request line. Checks
 * the request against the protocol's field rules, the error codes against
 * the documented ones, and that the reply echoes req as one JSON line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "message.h"
#include "protocol.h"

#include "fuzz.h"

/* The configuration's defaults, and the widest values it allows. */
static const struct protocol_limits fuzz_limits = { 8, 604800 };
static const struct protocol_limits fuzz_wide = { 255, 31536000 };

/*
 * The documented codes that a parse can decide; queue_full, not_found and
 * the others depend on the daemon's state, which the parser never sees.
 */
static const char *const fuzz_parse_codes[] = {
	"bad_request", "invalid_number", "invalid_sender", "text_too_long",
	"empty_text"
};

static int
fuzz_code_known(const char *code)
{
	size_t i;

	if (code == NULL)
		return 0;
	for (i = 0; i < sizeof(fuzz_parse_codes) / sizeof(fuzz_parse_codes[0]);
	    i++)
		if (strcmp(code, fuzz_parse_codes[i]) == 0)
			return 1;
	return 0;
}

/* A normalised recipient: "+", then 8 to 15 digits, the first not 0. */
static void
fuzz_check_to(const char *to)
{
	size_t i, n;

	FUZZ_CHECK(fuzz_terminated(to, MESSAGE_NUMBER_MAX));
	n = strlen(to);
	FUZZ_CHECK(n >= 9 && n <= 16);
	FUZZ_CHECK(to[0] == '+');
	FUZZ_CHECK(to[1] != '0');
	for (i = 1; i < n; i++)
		FUZZ_CHECK(to[i] >= '0' && to[i] <= '9');
}

static void
fuzz_check_req(const struct protocol_request *rq)
{
	switch (rq->req_type) {
	case PROTOCOL_REQ_NONE:
		FUZZ_CHECK(rq->req == NULL);
		break;
	case PROTOCOL_REQ_STRING:
	case PROTOCOL_REQ_NUMBER:
		FUZZ_CHECK(rq->req != NULL);
		FUZZ_CHECK(rq->req[rq->req_len] == '\0');
		if (rq->req_type == PROTOCOL_REQ_NUMBER)
			FUZZ_CHECK(rq->req_len > 0);
		break;
	default:
		FUZZ_CHECK(!"req_type out of its enum");
	}
}

static void
fuzz_check_send(const struct protocol_request *rq,
    const struct protocol_limits *l)
{
	enum message_encoding enc;
	int parts;

	fuzz_check_to(rq->to);

	FUZZ_CHECK(rq->text != NULL && rq->text_len > 0);
	FUZZ_CHECK(rq->text[rq->text_len] == '\0');
	FUZZ_CHECK(memchr(rq->text, '\0', rq->text_len) == NULL);
	FUZZ_CHECK(fuzz_utf8_valid(rq->text, rq->text_len));
	FUZZ_CHECK(rq->segments >= 1 && rq->segments <= l->max_parts);
	FUZZ_CHECK(rq->encoding == MESSAGE_GSM7 ||
	    rq->encoding == MESSAGE_UCS2);
	FUZZ_CHECK(message_segments(rq->text, rq->text_len, &enc, &parts) ==
	    0);
	FUZZ_CHECK(enc == rq->encoding && parts == rq->segments);

	/* The sender must fit its buffer, NUL included. */
	FUZZ_CHECK(fuzz_terminated(rq->from, sizeof(rq->from)));
	if (rq->from[0] != '\0')
		FUZZ_CHECK(message_sender_check(rq->from, strlen(rq->from)) ==
		    0);

	FUZZ_CHECK(rq->priority == 0 || rq->priority == 1);
	FUZZ_CHECK(rq->valid_for >= 0 && rq->valid_for <= l->max_valid_for);
	FUZZ_CHECK(!rq->has_id);
}

static void
fuzz_check_ok(const struct protocol_request *rq,
    const struct protocol_limits *l)
{
	fuzz_check_req(rq);
	FUZZ_CHECK(fuzz_terminated(rq->ref, sizeof(rq->ref)));

	switch (rq->op) {
	case PROTOCOL_SEND:
		fuzz_check_send(rq, l);
		break;
	case PROTOCOL_STATUS:
	case PROTOCOL_CANCEL:
		FUZZ_CHECK(rq->text == NULL);
		FUZZ_CHECK(rq->has_id == 0 || rq->has_id == 1);
		FUZZ_CHECK(rq->has_id || rq->ref[0] != '\0');
		FUZZ_CHECK(rq->id >= 0);
		break;
	case PROTOCOL_STATS:
	case PROTOCOL_PING:
		FUZZ_CHECK(rq->text == NULL);
		break;
	case PROTOCOL_INBOX:
		FUZZ_CHECK(rq->text == NULL);
		FUZZ_CHECK(rq->after >= 0);
		FUZZ_CHECK(rq->limit >= 1 && rq->limit <= PROTOCOL_INBOX_MAX);
		break;
	default:
		FUZZ_CHECK(!"op out of its enum");
	}
}

static void
fuzz_check_error(const struct protocol_request *rq,
    const struct protocol_error *e)
{
	fuzz_check_req(rq);
	FUZZ_CHECK(fuzz_code_known(e->code));
	FUZZ_CHECK(fuzz_terminated(e->message, sizeof(e->message)));
	FUZZ_CHECK(e->message[0] != '\0');
}

/* Finds KEY in the top-level object ROOT, or NULL. */
static yajl_val
fuzz_member(yajl_val root, const char *key)
{
	size_t i;

	for (i = 0; i < root->u.object.len; i++)
		if (strcmp(root->u.object.keys[i], key) == 0)
			return root->u.object.values[i];
	return NULL;
}

/* The reply is one JSON object on one line, with ok and req as asked. */
static void
fuzz_check_reply(const struct protocol_request *rq, int ok, const char *line,
    size_t len)
{
	char *copy, err[128];
	yajl_val root, v;

	FUZZ_CHECK(len >= 2 && line[len - 1] == '\n');
	FUZZ_CHECK(memchr(line, '\n', len - 1) == NULL);

	copy = malloc(len + 1);
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, line, len);
	copy[len] = '\0';
	root = yajl_tree_parse(copy, err, sizeof(err));
	free(copy);
	FUZZ_CHECK(root != NULL && YAJL_IS_OBJECT(root));

	v = fuzz_member(root, "ok");
	FUZZ_CHECK(v != NULL && (ok ? YAJL_IS_TRUE(v) : YAJL_IS_FALSE(v)));

	v = fuzz_member(root, "req");
	switch (rq->req_type) {
	case PROTOCOL_REQ_NONE:
		FUZZ_CHECK(v == NULL);
		break;
	case PROTOCOL_REQ_STRING:
		FUZZ_CHECK(v != NULL && YAJL_IS_STRING(v));
		if (memchr(rq->req, '\0', rq->req_len) == NULL)
			FUZZ_CHECK(strcmp(v->u.string, rq->req) == 0);
		break;
	case PROTOCOL_REQ_NUMBER:
		FUZZ_CHECK(v != NULL && YAJL_IS_NUMBER(v));
		FUZZ_CHECK(strcmp(v->u.number.r, rq->req) == 0);
		break;
	}
	yajl_tree_free(root);
}

static void
fuzz_reply(const struct protocol_request *rq, int rc,
    const struct protocol_error *e)
{
	struct protocol_reply *r;
	const char *line;
	size_t len;

	r = protocol_reply_new();
	FUZZ_CHECK(r != NULL);
	if (rc == 0) {
		protocol_reply_begin(r, rq, 1);
		if (rq->op == PROTOCOL_SEND) {
			protocol_reply_string(r, "to", rq->to);
			protocol_reply_int(r, "segments", rq->segments);
			protocol_reply_string(r, "encoding",
			    message_encoding_name(rq->encoding));
		}
		if (rq->ref[0] != '\0')
			protocol_reply_string(r, "ref", rq->ref);
		line = protocol_reply_line(r, &len);
	} else
		line = protocol_reply_error(r, rq, e->code, e->message, &len);
	fuzz_check_reply(rq, rc == 0, line, len);
	protocol_reply_free(r);
}

/* Wider limits can only turn a refusal for length or validity into a yes. */
static void
fuzz_check_wider(int rc, const struct protocol_request *rq,
    const struct protocol_error *e, int wrc,
    const struct protocol_request *wrq, const struct protocol_error *we)
{
	if (rc == 0) {
		FUZZ_CHECK(wrc == 0);
		FUZZ_CHECK(wrq->op == rq->op);
		FUZZ_CHECK(strcmp(wrq->to, rq->to) == 0);
		FUZZ_CHECK(wrq->segments == rq->segments);
		FUZZ_CHECK(wrq->encoding == rq->encoding);
		FUZZ_CHECK(wrq->text_len == rq->text_len);
		FUZZ_CHECK(wrq->valid_for == rq->valid_for);
		return;
	}
	if (strcmp(e->code, "invalid_number") == 0 ||
	    strcmp(e->code, "invalid_sender") == 0 ||
	    strcmp(e->code, "empty_text") == 0) {
		FUZZ_CHECK(wrc == -1);
		FUZZ_CHECK(strcmp(we->code, e->code) == 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct protocol_request rq, wrq;
	struct protocol_error e, we;
	const char *line = (const char *)data;
	int rc, wrc;

	rc = protocol_parse(line, size, &fuzz_limits, &rq, &e);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == 0)
		fuzz_check_ok(&rq, &fuzz_limits);
	else
		fuzz_check_error(&rq, &e);
	fuzz_reply(&rq, rc, &e);

	wrc = protocol_parse(line, size, &fuzz_wide, &wrq, &we);
	FUZZ_CHECK(wrc == 0 || wrc == -1);
	if (wrc == 0)
		fuzz_check_ok(&wrq, &fuzz_wide);
	else
		fuzz_check_error(&wrq, &we);
	fuzz_check_wider(rc, &rq, &e, wrc, &wrq, &we);

	protocol_request_clear(&rq);
	protocol_request_clear(&wrq);
	return 0;
}
