/*
 * The Panacea Mobile client, pure functions: request URLs, and the lenient
 * parse of every answer into one outcome, by one table of result codes.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <yajl/yajl_parse.h>

#include "panacea.h"

#define PANACEA_RETRY_AFTER_MAX	86400	/* seconds */
#define PANACEA_UNKNOWN_CAP	3
#define PANACEA_DETAILS_MAX	64

struct panacea_buf {
	char	*data;
	size_t	 len;
	size_t	 size;
	int	 failed;
};

enum panacea_key {
	PANACEA_KEY_OTHER,
	PANACEA_KEY_STATUS,
	PANACEA_KEY_DETAILS
};

enum panacea_details {
	PANACEA_DETAILS_NONE,
	PANACEA_DETAILS_STRING,
	PANACEA_DETAILS_NUMBER,
	PANACEA_DETAILS_OTHER
};

/* What the parser keeps of the envelope: the top-level fields only. */
struct panacea_envelope {
	size_t			 depth;
	int			 started;
	int			 is_object;
	enum panacea_key	 key;
	int			 has_status;
	int			 status;
	enum panacea_details	 details;
	char			 text[PANACEA_DETAILS_MAX + 1];
	int			 text_cut;
};

struct panacea_code {
	int			 code;
	enum panacea_outcome	 outcome;
	const char		*reason;
};

static const struct panacea_code panacea_codes[] = {
	{ -1,		PANACEA_HOLD,		"no-action-specified" },
	{ -2,		PANACEA_HOLD,		"no-such-action" },
	{ -4,		PANACEA_FAILED,		"missing-parameter" },
	{ -8,		PANACEA_HOLD,		"authentication-failed" },
	{ -16,		PANACEA_RETRY,		"internal-error" },
	{ -32,		PANACEA_FAILED,		"routing-error" },
	{ -64,		PANACEA_HOLD,		"out-of-credit" },
	{ -128,		PANACEA_FAILED,		"invalid-record" },
	{ -256,		PANACEA_RETRY,		"could-not-save" },
	{ -512,		PANACEA_FAILED,		"duplicate-record" },
	{ -1024,	PANACEA_FAILED,		"invalid-affiliate" },
	{ -2048,	PANACEA_FAILED,		"no-hlr" },
	{ -4096,	PANACEA_THROTTLED,	"too-many-connections" },
	{ -8192,	PANACEA_THROTTLED,	"upstream-timeout" }
};

const char *
panacea_outcome_name(enum panacea_outcome outcome)
{
	switch (outcome) {
	case PANACEA_SENT:
		return "sent";
	case PANACEA_THROTTLED:
		return "throttled";
	case PANACEA_RETRY:
		return "retry";
	case PANACEA_FAILED:
		return "failed";
	case PANACEA_HOLD:
		return "hold";
	}
	return "unknown";
}

static void
panacea_buf_add(struct panacea_buf *b, const char *s, size_t len)
{
	size_t size;
	char *p;

	if (b->failed)
		return;

	if (b->len + len + 1 > b->size) {
		size = b->size ? b->size : 256;
		while (size < b->len + len + 1)
			size *= 2;
		if ((p = realloc(b->data, size)) == NULL) {
			b->failed = 1;
			return;
		}
		b->data = p;
		b->size = size;
	}

	memcpy(b->data + b->len, s, len);
	b->len += len;
	b->data[b->len] = '\0';
}

static void
panacea_buf_str(struct panacea_buf *b, const char *s)
{
	panacea_buf_add(b, s, strlen(s));
}

/* Appends "&NAME=" and VALUE escaped; an empty value stays empty. */
static void
panacea_buf_param(struct panacea_buf *b, const char *name, const char *value,
    size_t len)
{
	char *esc;

	panacea_buf_str(b, "&");
	panacea_buf_str(b, name);
	panacea_buf_str(b, "=");

	/* curl_easy_escape takes a length of 0 to mean "use strlen". */
	if (len == 0 || b->failed)
		return;
	if (len > INT_MAX || (esc = curl_easy_escape(NULL, value,
	    (int)len)) == NULL) {
		b->failed = 1;
		return;
	}
	panacea_buf_str(b, esc);
	curl_free(esc);
}

/* Starts URL with the base, the action and the credentials. */
static void
panacea_buf_start(struct panacea_buf *b, const struct panacea_account *acct,
    const char *action)
{
	const char *user = acct->username ? acct->username : "";
	const char *pass = acct->password ? acct->password : "";
	size_t n = strlen(acct->url);

	panacea_buf_str(b, acct->url);
	if (strchr(acct->url, '?') == NULL)
		panacea_buf_str(b, "?");
	else if (n > 0 && acct->url[n - 1] != '?' && acct->url[n - 1] != '&')
		panacea_buf_str(b, "&");

	panacea_buf_str(b, "action=");
	panacea_buf_str(b, action);
	panacea_buf_param(b, "username", user, strlen(user));
	panacea_buf_param(b, "password", pass, strlen(pass));
}

static char *
panacea_buf_finish(struct panacea_buf *b)
{
	if (b->failed) {
		free(b->data);
		return NULL;
	}
	return b->data;
}

char *
panacea_send_url(const struct panacea_account *acct, const char *to,
    const char *text, size_t text_len, const char *sender,
    const char *report_url, int report_mask)
{
	struct panacea_buf b = { NULL, 0, 0, 0 };
	char mask[16];

	if (acct == NULL || acct->url == NULL || to == NULL)
		return NULL;
	if (text == NULL)
		text_len = 0;

	if (*to == '+')
		to++;

	panacea_buf_start(&b, acct, "message_send");
	panacea_buf_param(&b, "to", to, strlen(to));
	panacea_buf_param(&b, "text", text, text_len);
	if (sender != NULL && *sender != '\0')
		panacea_buf_param(&b, "from", sender, strlen(sender));
	panacea_buf_str(&b, "&auto_detect_encoding=1");
	if (report_url != NULL) {
		snprintf(mask, sizeof(mask), "%d", report_mask);
		panacea_buf_param(&b, "report_mask", mask, strlen(mask));
		panacea_buf_param(&b, "report_url", report_url,
		    strlen(report_url));
	}
	return panacea_buf_finish(&b);
}

char *
panacea_balance_url(const struct panacea_account *acct)
{
	struct panacea_buf b = { NULL, 0, 0, 0 };

	if (acct == NULL || acct->url == NULL)
		return NULL;

	panacea_buf_start(&b, acct, "user_get_balance");
	return panacea_buf_finish(&b);
}

char *
panacea_redact_url(const char *url)
{
	static const char name[] = "password=";
	struct panacea_buf b = { NULL, 0, 0, 0 };
	const char *p, *end;
	size_t len;

	if (url == NULL)
		return NULL;

	if ((p = strchr(url, '?')) == NULL)
		p = url + strlen(url);
	else
		p++;
	panacea_buf_add(&b, url, p - url);

	/*
	 * Only '&' ends a value: a '#' inside an unescaped password must not
	 * leave the rest of it readable.
	 */
	while (*p != '\0') {
		end = strchr(p, '&');
		len = end ? (size_t)(end - p) : strlen(p);
		if (len >= sizeof(name) - 1 &&
		    memcmp(p, name, sizeof(name) - 1) == 0) {
			panacea_buf_str(&b, name);
			panacea_buf_str(&b, "***");
		} else
			panacea_buf_add(&b, p, len);
		p += len;
		if (*p == '&') {
			panacea_buf_str(&b, "&");
			p++;
		}
	}
	return panacea_buf_finish(&b);
}

/* Reads a whole decimal integer, surrounding spaces allowed, into OUT. */
static int
panacea_parse_int(const char *s, size_t len, int *out)
{
	char buf[32], *end;
	long v;

	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';

	errno = 0;
	v = strtol(buf, &end, 10);
	if (*end != '\0' || errno != 0 || v < INT_MIN || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

/* Reads a whole finite decimal number, surrounding spaces allowed. */
static int
panacea_parse_double(const char *s, double *out)
{
	const char *p;
	char *end;
	double v;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -1;

	/* strtod also takes hexadecimal, "inf" and "nan": refuse them. */
	for (p = s; *p != '\0' && !isspace((unsigned char)*p); p++)
		if (strchr("0123456789+-.eE", *p) == NULL)
			return -1;

	errno = 0;
	v = strtod(s, &end);
	while (isspace((unsigned char)*end))
		end++;
	if (end == s || *end != '\0' || errno != 0 || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

/*
 * Keeps at most PANACEA_DETAILS_MAX bytes of a details value, cut on a
 * UTF-8 character boundary and at the first NUL.
 */
static void
panacea_env_text(struct panacea_envelope *env, const char *s, size_t len)
{
	const char *nul;

	if ((nul = memchr(s, '\0', len)) != NULL)
		len = nul - s;
	env->text_cut = len > PANACEA_DETAILS_MAX;
	if (env->text_cut) {
		len = PANACEA_DETAILS_MAX;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(env->text, s, len);
	env->text[len] = '\0';
}

/*
 * Called for every value: records the top-level status and details, and
 * returns whether the value is a top-level member worth looking at.
 */
static int
panacea_env_value(struct panacea_envelope *env)
{
	if (!env->started) {
		env->started = 1;
		return 0;
	}
	if (env->depth != 1 || !env->is_object)
		return 0;

	if (env->key == PANACEA_KEY_STATUS)
		env->has_status = 0;
	else if (env->key == PANACEA_KEY_DETAILS) {
		env->details = PANACEA_DETAILS_OTHER;
		env->text[0] = '\0';
		env->text_cut = 0;
	}
	return 1;
}

static int
panacea_cb_scalar(void *ctx)
{
	panacea_env_value(ctx);
	return 1;
}

static int
panacea_cb_bool(void *ctx, int v)
{
	(void)v;
	return panacea_cb_scalar(ctx);
}

static int
panacea_cb_number(void *ctx, const char *s, size_t len)
{
	struct panacea_envelope *env = ctx;

	if (!panacea_env_value(env))
		return 1;

	if (env->key == PANACEA_KEY_STATUS) {
		/* Only an integer literal: 1.5 or 1e0 is no usable status. */
		if (memchr(s, '.', len) == NULL &&
		    memchr(s, 'e', len) == NULL && memchr(s, 'E', len) == NULL)
			env->has_status = panacea_parse_int(s, len,
			    &env->status) == 0;
	} else if (env->key == PANACEA_KEY_DETAILS) {
		env->details = PANACEA_DETAILS_NUMBER;
		panacea_env_text(env, s, len);
	}
	return 1;
}

static int
panacea_cb_string(void *ctx, const unsigned char *s, size_t len)
{
	struct panacea_envelope *env = ctx;

	if (!panacea_env_value(env))
		return 1;

	if (env->key == PANACEA_KEY_STATUS)
		env->has_status = panacea_parse_int((const char *)s, len,
		    &env->status) == 0;
	else if (env->key == PANACEA_KEY_DETAILS) {
		env->details = PANACEA_DETAILS_STRING;
		panacea_env_text(env, (const char *)s, len);
	}
	return 1;
}

static int
panacea_cb_key(void *ctx, const unsigned char *s, size_t len)
{
	struct panacea_envelope *env = ctx;

	if (env->depth != 1)
		return 1;
	if (len == 6 && memcmp(s, "status", 6) == 0)
		env->key = PANACEA_KEY_STATUS;
	else if (len == 7 && memcmp(s, "details", 7) == 0)
		env->key = PANACEA_KEY_DETAILS;
	else
		env->key = PANACEA_KEY_OTHER;
	return 1;
}

static int
panacea_cb_start_map(void *ctx)
{
	struct panacea_envelope *env = ctx;

	if (!env->started)
		env->is_object = 1;
	panacea_env_value(env);
	env->depth++;
	return 1;
}

static int
panacea_cb_start_array(void *ctx)
{
	struct panacea_envelope *env = ctx;

	panacea_env_value(env);
	env->depth++;
	return 1;
}

static int
panacea_cb_end(void *ctx)
{
	struct panacea_envelope *env = ctx;

	env->depth--;
	return 1;
}

static const yajl_callbacks panacea_callbacks = {
	panacea_cb_scalar,	/* null */
	panacea_cb_bool,
	NULL,			/* integer: number is used instead */
	NULL,			/* double */
	panacea_cb_number,
	panacea_cb_string,
	panacea_cb_start_map,
	panacea_cb_key,
	panacea_cb_end,
	panacea_cb_start_array,
	panacea_cb_end
};

static void
panacea_set(struct panacea_result *r, enum panacea_outcome outcome,
    const char *reason)
{
	r->outcome = outcome;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
}

/* Classifies a negative status by the table. */
static void
panacea_classify_error(int code, struct panacea_result *r)
{
	size_t i;

	for (i = 0; i < sizeof(panacea_codes) / sizeof(panacea_codes[0]); i++)
		if (panacea_codes[i].code == code) {
			panacea_set(r, panacea_codes[i].outcome,
			    panacea_codes[i].reason);
			return;
		}
	panacea_set(r, PANACEA_RETRY, "unknown-code");
	r->attempt_cap = PANACEA_UNKNOWN_CAP;
}

/*
 * Reads the envelope into ENV. yajl's parser keeps its nesting on the
 * heap, not the C stack, and nothing here builds a tree, so any depth is
 * safe. Returns 0 for a status of 0 or more, or -1 with R classified: a
 * broken answer, or a negative status by the table.
 */
static int
panacea_envelope(long http_status, const char *body, size_t len,
    struct panacea_envelope *env, struct panacea_result *r)
{
	yajl_handle h;
	yajl_status st;
	size_t i;

	memset(r, 0, sizeof(*r));
	memset(env, 0, sizeof(*env));

	if (http_status != 200) {
		r->outcome = PANACEA_RETRY;
		snprintf(r->reason, sizeof(r->reason), "http-%ld",
		    http_status);
		return -1;
	}

	for (i = 0; body != NULL && i < len; i++)
		if (!isspace((unsigned char)body[i]))
			break;
	if (body == NULL || i == len) {
		panacea_set(r, PANACEA_RETRY, "empty-body");
		return -1;
	}

	if ((h = yajl_alloc(&panacea_callbacks, NULL, env)) == NULL) {
		panacea_set(r, PANACEA_RETRY, "out-of-memory");
		return -1;
	}
	st = yajl_parse(h, (const unsigned char *)body, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);

	if (st != yajl_status_ok) {
		panacea_set(r, PANACEA_RETRY, "not-json");
		return -1;
	}
	if (!env->is_object) {
		panacea_set(r, PANACEA_RETRY, "not-an-object");
		return -1;
	}
	if (!env->has_status) {
		panacea_set(r, PANACEA_RETRY, "no-status");
		return -1;
	}
	r->has_code = 1;
	r->code = env->status;
	if (env->status < 0) {
		panacea_classify_error(env->status, r);
		return -1;
	}
	return 0;
}

void
panacea_classify_send(long http_status, const char *body, size_t len,
    struct panacea_result *r)
{
	struct panacea_envelope env;

	if (panacea_envelope(http_status, body, len, &env, r) == -1)
		return;

	/*
	 * The message was accepted whatever details holds: without a usable
	 * id it is still sent, never retried, or it would go out twice.
	 */
	panacea_set(r, PANACEA_SENT, "sent");
	if (env.details == PANACEA_DETAILS_STRING ||
	    env.details == PANACEA_DETAILS_NUMBER)
		snprintf(r->upstream_id, sizeof(r->upstream_id), "%s",
		    env.text);
}

void
panacea_classify_transport(const char *reason, struct panacea_result *r)
{
	memset(r, 0, sizeof(*r));
	panacea_set(r, PANACEA_RETRY, reason && *reason ? reason :
	    "transport-error");
}

void
panacea_classify_balance(long http_status, const char *body, size_t len,
    struct panacea_result *r)
{
	struct panacea_envelope env;

	if (panacea_envelope(http_status, body, len, &env, r) == -1)
		return;

	if ((env.details != PANACEA_DETAILS_STRING &&
	    env.details != PANACEA_DETAILS_NUMBER) || env.text_cut ||
	    panacea_parse_double(env.text, &r->balance) == -1) {
		r->balance = 0;
		panacea_set(r, PANACEA_RETRY, "bad-balance");
		return;
	}
	r->has_balance = 1;
	panacea_set(r, PANACEA_SENT, "sent");
}

/* Reads an HTTP date in any of the three forms HTTP allows. */
static int
panacea_http_date(const char *value, time_t *out)
{
	static const char *formats[] = {
		"%a, %d %b %Y %H:%M:%S GMT",	/* IMF-fixdate */
		"%A, %d-%b-%y %H:%M:%S GMT",	/* RFC 850 */
		"%a %b %e %H:%M:%S %Y"		/* asctime */
	};
	struct tm tm;
	const char *end;
	size_t i;

	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(value, formats[i], &tm)) == NULL)
			continue;
		while (isspace((unsigned char)*end))
			end++;
		if (*end != '\0')
			continue;
		*out = timegm(&tm);
		return 0;
	}
	return -1;
}

int64_t
panacea_retry_after(const char *value, int64_t now)
{
	const int64_t cap = (int64_t)PANACEA_RETRY_AFTER_MAX * 1000;
	const char *p;
	int64_t secs, ms;
	time_t t;

	if (value == NULL)
		return -1;
	while (isspace((unsigned char)*value))
		value++;

	if (isdigit((unsigned char)*value)) {
		secs = 0;
		for (p = value; isdigit((unsigned char)*p); p++)
			if (secs <= PANACEA_RETRY_AFTER_MAX)
				secs = secs * 10 + (*p - '0');
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '\0')
			return -1;
		return secs > PANACEA_RETRY_AFTER_MAX ? cap : secs * 1000;
	}

	if (panacea_http_date(value, &t) == -1)
		return -1;
	ms = (int64_t)t * 1000 - now;
	if (ms < 0)
		return 0;
	return ms > cap ? cap : ms;
}
