/*
 * The delivery-report listener: an evhttp server for the upstream's
 * delivery reports and inbound messages, and the tokens that sign them.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "dlr.h"
#include "log.h"
#include "util.h"

#define DLR_HEADERS_MAX		(8 * 1024)	/* libevent answers 400 beyond */
#define DLR_BODY_MAX		1024
#define DLR_TIMEOUT_S		10
#define DLR_LOG_BURST		10	/* refusal lines per window */
#define DLR_LOG_WINDOW_MS	1000
#define DLR_NUMBER_MAX		20
#define DLR_KEY_MAX		16
#define DLR_CHARSET_MAX		40
#define DLR_INBOUND_TOKEN_MAX	256
#define DLR_INBOUND_PATH	"/mo"

enum dlr_reason {
	DLR_REASON_BAD_TOKEN,
	DLR_REASON_UNKNOWN_ID,
	DLR_REASON_MALFORMED,
	DLR_REASON_TOO_LONG,
	DLR_REASON_BAD_METHOD,
	DLR_REASON_NOT_STORED,
	DLR_REASON_COUNT
};

static const struct {
	const char	*name;
	int		 status;
	enum log_level	 level;
} dlr_reasons[DLR_REASON_COUNT] = {
	[DLR_REASON_BAD_TOKEN] = { "bad-token", 403, LOG_LEVEL_WARN },
	[DLR_REASON_UNKNOWN_ID] = { "unknown-id", 404, LOG_LEVEL_INFO },
	[DLR_REASON_MALFORMED] = { "malformed", 400, LOG_LEVEL_INFO },
	[DLR_REASON_TOO_LONG] = { "too-long", 400, LOG_LEVEL_INFO },
	[DLR_REASON_BAD_METHOD] = { "bad-method", 405, LOG_LEVEL_INFO },
	[DLR_REASON_NOT_STORED] = { "not-stored", 503, LOG_LEVEL_WARN },
};

enum dlr_charset {
	DLR_CHARSET_UTF8,
	DLR_CHARSET_UTF16,	/* big-endian unless a BOM says otherwise */
	DLR_CHARSET_LATIN1,
	DLR_CHARSET_OTHER
};

struct dlr {
	struct event_base		*base;
	struct evhttp			*http;
	struct evhttp_bound_socket	*sock;
	struct dlr_handler		 handler;
	char				*secret;
	char				*inbound_token;
	int				 port;

	/* The refusal lines' rate limit: a fixed window and a tally. */
	struct event			*flush;
	int64_t				 window_ms;
	int				 lines;
	uint64_t			 suppressed[DLR_REASON_COUNT];
};

/* One query parameter looked for: where its raw value is, if anywhere. */
struct dlr_param {
	const char	*name;
	const char	*raw;
	size_t		 len;
};

static const struct {
	int		 code;
	const char	*name;
	int		 final;
} dlr_codes[] = {
	{ DLR_DELIVERED, "delivered", 1 },
	{ DLR_UNDELIVERED, "undelivered", 1 },
	{ DLR_QUEUED, "queued-at-network", 0 },
	{ DLR_SENT, "sent-to-network", 0 },
	{ DLR_FAILED, "failed-at-network", 1 },
};

const char *
dlr_code_name(int code)
{
	size_t i;

	for (i = 0; i < sizeof(dlr_codes) / sizeof(dlr_codes[0]); i++)
		if (dlr_codes[i].code == code)
			return dlr_codes[i].name;
	return "unknown";
}

int
dlr_code_final(int code)
{
	size_t i;

	for (i = 0; i < sizeof(dlr_codes) / sizeof(dlr_codes[0]); i++)
		if (dlr_codes[i].code == code)
			return dlr_codes[i].final;
	return 0;
}

/*
 * An empty secret still gives a token, HMAC under the empty key, which
 * anybody can compute: the caller must not hand out report URLs without a
 * secret. On an OpenSSL failure OUT is left empty, which no check accepts.
 */
void
dlr_token(const char *secret, int64_t id, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	char text[UTIL_ID_LEN + 1];
	unsigned int mdlen = 0;
	size_t i, keylen;

	out[0] = '\0';
	keylen = strlen(secret);
	if (keylen > INT_MAX)
		return;
	util_id_format(id, text);
	if (HMAC(EVP_sha256(), secret, (int)keylen, (unsigned char *)text,
	    UTIL_ID_LEN, md, &mdlen) == NULL ||
	    mdlen < DLR_TOKEN_LEN / 2)
		return;

	for (i = 0; i < DLR_TOKEN_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[DLR_TOKEN_LEN] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
}

int
dlr_token_check(const char *secret, int64_t id, const char *token)
{
	char want[DLR_TOKEN_LEN + 1];
	int ok;

	if (token == NULL || strnlen(token, DLR_TOKEN_LEN + 1) !=
	    DLR_TOKEN_LEN)
		return 0;

	dlr_token(secret, id, want);
	if (want[0] == '\0')
		return 0;
	ok = CRYPTO_memcmp(want, token, DLR_TOKEN_LEN) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

/*
 * The parameters go before a fragment, which no client sends. The
 * upstream replaces every "%d" of the URL, so PUBLIC_URL must contain none
 * of its own.
 */
char *
dlr_report_url(const char *public_url, const char *secret, int64_t id)
{
	char token[DLR_TOKEN_LEN + 1];
	const char *frag, *sep;
	size_t n;
	char *url;
	int rc;

	dlr_token(secret, id, token);
	if (token[0] == '\0')
		return NULL;

	frag = strchr(public_url, '#');
	if (frag == NULL)
		frag = public_url + strlen(public_url);
	n = (size_t)(frag - public_url);
	if (n > INT_MAX)
		return NULL;

	sep = "?";
	if (memchr(public_url, '?', n) != NULL)
		sep = public_url[n - 1] == '?' || public_url[n - 1] == '&' ?
		    "" : "&";
	rc = asprintf(&url, "%.*s%sid=%016" PRIx64 "&t=%s&status=%%d%s",
	    (int)n, public_url, sep, (uint64_t)id, token, frag);
	return rc < 0 ? NULL : url;
}

static int
dlr_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decodes S (N bytes) into OUT with a NUL after it. Returns the
 * decoded length, or -1 for a '%' without two hex digits after it or when
 * OUT (OUTLEN bytes with the NUL) is too small. OUT may be NULL to check
 * the encoding only.
 */
static ssize_t
dlr_decode(const char *s, size_t n, char *out, size_t outlen, int plus)
{
	size_t i, o;
	int hi, lo;
	char c;

	for (i = 0, o = 0; i < n; i++, o++) {
		c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			hi = dlr_hexval((unsigned char)s[i + 1]);
			lo = dlr_hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus)
			c = ' ';
		if (out != NULL) {
			if (o + 1 >= outlen)
				return -1;
			out[o] = c;
		}
	}
	if (out != NULL) {
		if (outlen == 0)
			return -1;
		out[o] = '\0';
	}
	return (ssize_t)o;
}

/*
 * Walks QUERY's "key=value" pairs, finding the N PARAMS by their decoded
 * names. Returns -1 when any pair is badly encoded, a wanted key repeats
 * or comes without '='; parameters nobody wants are ignored.
 */
static int
dlr_query_scan(const char *query, struct dlr_param *params, size_t n)
{
	const char *p, *end, *eq;
	char key[DLR_KEY_MAX];
	size_t i, keylen;
	ssize_t klen;

	for (i = 0; i < n; i++)
		params[i].raw = NULL;

	for (p = query; *p != '\0'; p = *end == '\0' ? end : end + 1) {
		end = strchrnul(p, '&');
		if (end == p)
			continue;
		if (dlr_decode(p, (size_t)(end - p), NULL, 0, 1) == -1)
			return -1;

		eq = memchr(p, '=', (size_t)(end - p));
		keylen = (size_t)((eq != NULL ? eq : end) - p);
		klen = dlr_decode(p, keylen, key, sizeof(key), 1);
		if (klen == -1)
			continue;	/* longer than any wanted key */

		for (i = 0; i < n; i++) {
			if ((size_t)klen != strlen(params[i].name) ||
			    memcmp(key, params[i].name, (size_t)klen) != 0)
				continue;
			if (eq == NULL || params[i].raw != NULL)
				return -1;
			params[i].raw = eq + 1;
			params[i].len = (size_t)(end - eq - 1);
		}
	}
	return 0;
}

/* Decodes a wanted parameter into a C string: -1 for a NUL inside. */
static ssize_t
dlr_param_string(const struct dlr_param *p, char *out, size_t outlen,
    int plus)
{
	ssize_t n;

	n = dlr_decode(p->raw, p->len, out, outlen, plus);
	if (n == -1 || strlen(out) != (size_t)n)
		return -1;
	return n;
}

/* A decimal int with an optional '-'; no spaces, no '+'. */
static int
dlr_parse_int(const char *s, int *out)
{
	const char *p = s[0] == '-' ? s + 1 : s;
	char *end;
	long v;

	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < INT_MIN || v > INT_MAX)
		return -1;
	*out = (int)v;
	return 0;
}

int
dlr_parse_report(const char *query, int64_t *id, char *token,
    size_t tokenlen, int *code)
{
	struct dlr_param p[] = { { "id", NULL, 0 }, { "t", NULL, 0 },
	    { "status", NULL, 0 } };
	char idtext[UTIL_ID_LEN + 2], status[16];
	size_t i;

	if (tokenlen == 0)
		return -1;
	token[0] = '\0';
	if (query == NULL || dlr_query_scan(query, p, 3) == -1)
		return -1;
	for (i = 0; i < 3; i++)
		if (p[i].raw == NULL)
			return -1;

	if (dlr_param_string(&p[0], idtext, sizeof(idtext), 1) == -1 ||
	    util_id_parse(idtext, strlen(idtext), id) == -1)
		return -1;
	if (tokenlen > DLR_TOKEN_LEN + 1)
		tokenlen = DLR_TOKEN_LEN + 1;
	if (dlr_param_string(&p[1], token, tokenlen, 1) == -1) {
		token[0] = '\0';
		return -1;
	}
	if (dlr_param_string(&p[2], status, sizeof(status), 1) == -1 ||
	    dlr_parse_int(status, code) == -1)
		return -1;
	return 0;
}

/* Digits with an optional leading '+', at most DLR_NUMBER_MAX in all. */
static int
dlr_number_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > DLR_NUMBER_MAX)
		return 0;
	for (i = s[0] == '+'; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n > (size_t)(s[0] == '+');
}

/* A charset's name as IANA spells them: no spaces, nothing to escape. */
static int
dlr_charset_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n > DLR_CHARSET_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') &&
		    !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') &&
		    strchr("-_.:+()", s[i]) == NULL)
			return 0;
	return 1;
}

static enum dlr_charset
dlr_charset_parse(const char *name)
{
	static const struct {
		const char		*name;
		enum dlr_charset	 charset;
	} names[] = {
		{ "", DLR_CHARSET_UTF8 },
		{ "utf8", DLR_CHARSET_UTF8 },
		{ "utf16be", DLR_CHARSET_UTF16 },
		{ "utf16", DLR_CHARSET_UTF16 },
		{ "ucs2", DLR_CHARSET_UTF16 },
		{ "ucs2be", DLR_CHARSET_UTF16 },
		{ "iso88591", DLR_CHARSET_LATIN1 },
		{ "latin1", DLR_CHARSET_LATIN1 },
	};
	char norm[16];
	size_t i, o;
	char c;

	/* Spellings vary: "UTF-8", "utf8", "ISO_8859-1", "ucs-2". */
	for (i = 0, o = 0; name[i] != '\0'; i++) {
		c = name[i];
		if (c == '-' || c == '_')
			continue;
		if (o + 1 >= sizeof(norm))
			return DLR_CHARSET_OTHER;
		norm[o++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	norm[o] = '\0';

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(norm, names[i].name) == 0)
			return names[i].charset;
	return DLR_CHARSET_OTHER;
}

static size_t
dlr_utf8_put(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* True when S is hex digits in groups of four: UTF-16 written as hex. */
static int
dlr_is_hex_units(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n % 4 != 0)
		return 0;
	for (i = 0; i < n; i++)
		if (dlr_hexval((unsigned char)s[i]) < 0)
			return 0;
	return 1;
}

/* UTF-16 (big-endian, or as a BOM says) to UTF-8 in M->text. */
static int
dlr_from_utf16(const unsigned char *s, size_t n, struct dlr_inbound *m)
{
	uint32_t u, lo;
	size_t i = 0, o = 0;
	int little = 0;
	char *out;

	if (n % 2 != 0)
		return -1;
	if (n >= 2 && s[0] == 0xfe && s[1] == 0xff)
		i = 2;
	else if (n >= 2 && s[0] == 0xff && s[1] == 0xfe) {
		little = 1;
		i = 2;
	}
	if ((out = malloc(n / 2 * 3 + 1)) == NULL)
		return -1;

	for (; i < n; i += 2) {
		u = little ? (uint32_t)s[i + 1] << 8 | s[i] :
		    (uint32_t)s[i] << 8 | s[i + 1];
		if (u >= 0xd800 && u <= 0xdbff) {
			if (i + 3 >= n)
				goto fail;
			lo = little ? (uint32_t)s[i + 3] << 8 | s[i + 2] :
			    (uint32_t)s[i + 2] << 8 | s[i + 3];
			if (lo < 0xdc00 || lo > 0xdfff)
				goto fail;
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		} else if ((u >= 0xdc00 && u <= 0xdfff) || u == 0)
			goto fail;
		o += dlr_utf8_put(u, out + o);
	}
	out[o] = '\0';
	m->text = out;
	m->text_len = o;
	return 0;

fail:
	free(out);
	return -1;
}

static int
dlr_from_latin1(const unsigned char *s, size_t n, struct dlr_inbound *m)
{
	size_t i, o = 0;
	char *out;

	if ((out = malloc(2 * n + 1)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] == 0) {
			free(out);
			return -1;
		}
		o += dlr_utf8_put(s[i], out + o);
	}
	out[o] = '\0';
	m->text = out;
	m->text_len = o;
	return 0;
}

static int
dlr_keep_utf8(const unsigned char *s, size_t n, struct dlr_inbound *m)
{
	char *out;

	/* U+0000 is refused too, for the text travels as a C string. */
	if (memchr(s, '\0', n) != NULL || !util_utf8_valid(s, n) ||
	    (out = malloc(n + 1)) == NULL)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	m->text = out;
	m->text_len = n;
	return 0;
}

/* Decodes the message's raw value into UTF-8 text as CHARSET says. */
static int
dlr_inbound_text(const struct dlr_param *p, enum dlr_charset charset,
    struct dlr_inbound *m)
{
	unsigned char *raw;
	ssize_t n;
	size_t i;
	int rc;

	if ((raw = malloc(p->len + 1)) == NULL)
		return -1;
	n = dlr_decode(p->raw, p->len, (char *)raw, p->len + 1, 1);
	if (n == -1) {
		free(raw);
		return -1;
	}

	switch (charset) {
	case DLR_CHARSET_UTF16:
		if (dlr_is_hex_units((char *)raw, (size_t)n)) {
			for (i = 0; i < (size_t)n / 2; i++)
				raw[i] = (unsigned char)
				    (dlr_hexval(raw[2 * i]) << 4 |
				    dlr_hexval(raw[2 * i + 1]));
			n /= 2;
		}
		rc = dlr_from_utf16(raw, (size_t)n, m);
		break;
	case DLR_CHARSET_LATIN1:
		rc = dlr_from_latin1(raw, (size_t)n, m);
		break;
	case DLR_CHARSET_UTF8:
	case DLR_CHARSET_OTHER:
	default:
		rc = dlr_keep_utf8(raw, (size_t)n, m);
		break;
	}
	free(raw);
	return rc;
}

/* Decodes an optional string parameter into STORAGE; "" when absent. */
static const char *
dlr_store(const struct dlr_param *p, char **storage, size_t *left,
    int plus)
{
	ssize_t n;
	char *s;

	if (*left == 0)
		return NULL;
	s = *storage;
	s[0] = '\0';
	n = 0;
	if (p->raw != NULL && (n = dlr_param_string(p, s, *left, plus)) == -1)
		return NULL;
	*storage += n + 1;
	*left -= (size_t)n + 1;
	return s;
}

/*
 * Numbers are decoded without turning '+' into a space: a raw '+' in
 * "from=+2782..." is far likelier an unencoded plus than a space.
 */
int
dlr_parse_inbound(const char *query, struct dlr_inbound *m, char *storage,
    size_t storagelen)
{
	struct dlr_param p[] = { { "to", NULL, 0 }, { "from", NULL, 0 },
	    { "message", NULL, 0 }, { "charset", NULL, 0 },
	    { "code", NULL, 0 } };

	memset(m, 0, sizeof(*m));
	if (query == NULL || dlr_query_scan(query, p, 5) == -1 ||
	    p[0].raw == NULL || p[1].raw == NULL || p[2].raw == NULL)
		return -1;

	if ((m->to = dlr_store(&p[0], &storage, &storagelen, 0)) == NULL ||
	    (m->from = dlr_store(&p[1], &storage, &storagelen, 0)) == NULL ||
	    (m->charset = dlr_store(&p[3], &storage, &storagelen, 1)) ==
	    NULL ||
	    (m->code = dlr_store(&p[4], &storage, &storagelen, 1)) == NULL)
		goto fail;
	if (!dlr_number_valid(m->to) || !dlr_number_valid(m->from) ||
	    !dlr_charset_valid(m->charset))
		goto fail;
	if (dlr_inbound_text(&p[2], dlr_charset_parse(m->charset), m) == -1)
		goto fail;
	return 0;

fail:
	dlr_inbound_clear(m);
	return -1;
}

void
dlr_inbound_clear(struct dlr_inbound *m)
{
	free(m->text);
	memset(m, 0, sizeof(*m));
}

static void
dlr_limit_flush(struct dlr *d)
{
	char detail[256];
	uint64_t total = 0;
	size_t o = 0;
	int i;

	for (i = 0; i < DLR_REASON_COUNT; i++) {
		total += d->suppressed[i];
		if (d->suppressed[i] != 0 && o < sizeof(detail))
			o += (size_t)snprintf(detail + o, sizeof(detail) - o,
			    " %s=%" PRIu64, dlr_reasons[i].name,
			    d->suppressed[i]);
		d->suppressed[i] = 0;
	}
	if (total == 0)
		return;
	detail[o < sizeof(detail) ? o : sizeof(detail) - 1] = '\0';
	log_warn("dlr refused-suppressed count=%" PRIu64 "%s", total,
	    detail);
}

static void
dlr_flush_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dlr_limit_flush(arg);
}

/* True when a refusal line may be written now; else it is tallied. */
static int
dlr_limit_allow(struct dlr *d, enum dlr_reason reason)
{
	int64_t now = util_mono_ms(), wait;
	struct timeval tv;

	if (now - d->window_ms >= DLR_LOG_WINDOW_MS) {
		dlr_limit_flush(d);
		d->window_ms = now;
		d->lines = 0;
	}
	if (d->lines < DLR_LOG_BURST) {
		d->lines++;
		return 1;
	}

	d->suppressed[reason]++;
	if (!evtimer_pending(d->flush, NULL)) {
		wait = d->window_ms + DLR_LOG_WINDOW_MS - now;
		if (wait < 1)
			wait = 1;
		evtimer_add(d->flush, util_timeval(wait, &tv));
	}
	return 0;
}

static void
dlr_reply(struct evhttp_request *req, int status)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	const char *reason, *text;
	struct evbuffer *body;

	switch (status) {
	case 200:
		reason = text = "OK";
		break;
	case 400:
		reason = text = "Bad Request";
		break;
	case 403:
		reason = text = "Forbidden";
		break;
	case 404:
		reason = text = "Not Found";
		break;
	case 405:
		reason = text = "Method Not Allowed";
		evhttp_add_header(headers, "Allow", "GET, HEAD");
		break;
	default:
		status = 503;
		reason = text = "Service Unavailable";
		break;
	}

	evhttp_add_header(headers, "Content-Type", "text/plain");
	if ((body = evbuffer_new()) != NULL)
		evbuffer_add_printf(body, "%s\n", text);
	evhttp_send_reply(req, status, reason, body);
	if (body != NULL)
		evbuffer_free(body);
}

/* Answers a refused request and logs it, within the rate limit. */
static void
dlr_refuse(struct dlr *d, struct evhttp_request *req,
    enum dlr_reason reason, int inbound, const int64_t *id)
{
	struct evhttp_connection *evcon;
	enum log_level level = dlr_reasons[reason].level;
	char peer[64], idtext[32];
	const char *who = "-";
	char *addr = NULL;
	ev_uint16_t port = 0;

	dlr_reply(req, dlr_reasons[reason].status);
	if (!log_enabled(level) || !dlr_limit_allow(d, reason))
		return;

	if ((evcon = evhttp_request_get_connection(req)) != NULL)
		evhttp_connection_get_peer(evcon, &addr, &port);
	if (addr != NULL)
		who = addr;
	log_escape(who, strlen(who), peer, sizeof(peer));

	idtext[0] = '\0';
	if (id != NULL)
		snprintf(idtext, sizeof(idtext), " id=%016" PRIx64,
		    (uint64_t)*id);
	log_msg(level, "dlr refused reason=%s%s%s peer=%s",
	    dlr_reasons[reason].name, idtext, inbound ? " kind=inbound" : "",
	    peer);
}

static void
dlr_handle_report(struct dlr *d, struct evhttp_request *req,
    const char *query, int apply)
{
	char token[DLR_TOKEN_LEN + 1];
	int64_t id;
	int code, status;

	if (dlr_parse_report(query, &id, token, sizeof(token), &code) == -1) {
		dlr_refuse(d, req, DLR_REASON_MALFORMED, 0, NULL);
		return;
	}
	if (!dlr_token_check(d->secret, id, token)) {
		dlr_refuse(d, req, DLR_REASON_BAD_TOKEN, 0, &id);
		return;
	}
	if (!apply) {
		dlr_reply(req, 200);
		return;
	}

	status = d->handler.report != NULL ?
	    d->handler.report(d->handler.arg, id, code) : 404;
	if (status == 200)
		dlr_reply(req, 200);
	else if (status == 404)
		dlr_refuse(d, req, DLR_REASON_UNKNOWN_ID, 0, &id);
	else
		dlr_refuse(d, req, DLR_REASON_NOT_STORED, 0, &id);
}

/*
 * Compares digests so that the time taken says nothing about the token,
 * not even its length. An empty configured token matches nothing.
 */
static int
dlr_inbound_token_ok(const struct dlr *d, const char *given)
{
	unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];

	if (d->inbound_token[0] == '\0')
		return 0;
	SHA256((const unsigned char *)d->inbound_token,
	    strlen(d->inbound_token), want);
	SHA256((const unsigned char *)given, strlen(given), got);
	return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

static void
dlr_handle_inbound(struct dlr *d, struct evhttp_request *req,
    const char *query, int apply)
{
	struct dlr_param t = { "t", NULL, 0 };
	char token[DLR_INBOUND_TOKEN_MAX], storage[DLR_INBOUND_STORAGE];
	struct dlr_inbound m;
	int status;

	if (query == NULL || dlr_query_scan(query, &t, 1) == -1) {
		dlr_refuse(d, req, DLR_REASON_MALFORMED, 1, NULL);
		return;
	}
	if (t.raw == NULL ||
	    dlr_param_string(&t, token, sizeof(token), 1) == -1 ||
	    !dlr_inbound_token_ok(d, token)) {
		dlr_refuse(d, req, DLR_REASON_BAD_TOKEN, 1, NULL);
		return;
	}
	if (dlr_parse_inbound(query, &m, storage, sizeof(storage)) == -1) {
		dlr_refuse(d, req, DLR_REASON_MALFORMED, 1, NULL);
		return;
	}
	if (!apply) {
		dlr_inbound_clear(&m);
		dlr_reply(req, 200);
		return;
	}

	status = d->handler.inbound != NULL ?
	    d->handler.inbound(d->handler.arg, &m) : 503;
	dlr_inbound_clear(&m);
	if (status == 200)
		dlr_reply(req, 200);
	else
		dlr_refuse(d, req, DLR_REASON_NOT_STORED, 1, NULL);
}

/* True for a path whose last segment is "mo": inbound, not a report. */
static int
dlr_path_inbound(const char *path)
{
	size_t n = path != NULL ? strlen(path) : 0;
	size_t k = strlen(DLR_INBOUND_PATH);

	return n >= k && strcmp(path + n - k, DLR_INBOUND_PATH) == 0;
}

/*
 * Every path but the inbound one takes reports: only the configured
 * public_url knows the path the upstream calls, and a proxy in front may
 * change it. HEAD is checked as GET is and gets the same answer, but
 * applies nothing: it is meant to be safe, and link checkers and proxies
 * send it. The upstream sends GET only.
 */
static void
dlr_request(struct evhttp_request *req, void *arg)
{
	struct dlr *d = arg;
	const struct evhttp_uri *uri;
	const char *raw, *path, *query;
	enum evhttp_cmd_type method;

	method = evhttp_request_get_command(req);
	if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		dlr_refuse(d, req, DLR_REASON_BAD_METHOD, 0, NULL);
		return;
	}
	raw = evhttp_request_get_uri(req);
	if (raw == NULL || strlen(raw) > DLR_URI_MAX) {
		dlr_refuse(d, req, DLR_REASON_TOO_LONG, 0, NULL);
		return;
	}
	if ((uri = evhttp_request_get_evhttp_uri(req)) == NULL) {
		dlr_refuse(d, req, DLR_REASON_MALFORMED, 0, NULL);
		return;
	}

	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	if (dlr_path_inbound(path))
		dlr_handle_inbound(d, req, query, method == EVHTTP_REQ_GET);
	else
		dlr_handle_report(d, req, query, method == EVHTTP_REQ_GET);
}

static void
dlr_free_secrets(struct dlr *d)
{
	if (d->secret != NULL) {
		OPENSSL_cleanse(d->secret, strlen(d->secret));
		free(d->secret);
	}
	if (d->inbound_token != NULL) {
		OPENSSL_cleanse(d->inbound_token, strlen(d->inbound_token));
		free(d->inbound_token);
	}
	d->secret = d->inbound_token = NULL;
}

static int
dlr_copy_secrets(struct dlr *d, const struct dlr_options *options)
{
	char *secret, *inbound;

	secret = strdup(options->secret != NULL ? options->secret : "");
	inbound = strdup(options->inbound_token != NULL ?
	    options->inbound_token : "");
	if (secret == NULL || inbound == NULL) {
		free(secret);
		free(inbound);
		return -1;
	}
	dlr_free_secrets(d);
	d->secret = secret;
	d->inbound_token = inbound;
	return 0;
}

/* Splits "host:port" or "[v6]:port" into HOST (HOSTLEN) and PORT. */
static int
dlr_parse_listen(const char *listen, char *host, size_t hostlen,
    uint16_t *port)
{
	const char *h, *colon;
	size_t n;
	char *end;
	long v;

	if (listen[0] == '[') {
		h = listen + 1;
		if ((colon = strchr(h, ']')) == NULL || colon[1] != ':')
			return -1;
		n = (size_t)(colon - h);
		colon++;
	} else {
		h = listen;
		if ((colon = strchr(h, ':')) == NULL ||
		    strchr(colon + 1, ':') != NULL)
			return -1;
		n = (size_t)(colon - h);
	}
	if (n == 0 || n >= hostlen)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';

	if (colon[1] < '0' || colon[1] > '9')
		return -1;
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
dlr_bound_port(struct evhttp_bound_socket *sock)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd;

	fd = evhttp_bound_socket_get_fd(sock);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

static int
dlr_listen(struct dlr *d, const char *listen, char *err, size_t errlen)
{
	char host[256];
	uint16_t port;

	if (listen == NULL ||
	    dlr_parse_listen(listen, host, sizeof(host), &port) == -1) {
		snprintf(err, errlen,
		    "listen address must be host:port or [v6]:port");
		return -1;
	}

	d->http = evhttp_new(d->base);
	if (d->http == NULL) {
		snprintf(err, errlen, "cannot create the HTTP server");
		return -1;
	}
	evhttp_set_max_headers_size(d->http, DLR_HEADERS_MAX);
	evhttp_set_max_body_size(d->http, DLR_BODY_MAX);
	evhttp_set_timeout(d->http, DLR_TIMEOUT_S);
	/* Let every method through so that ours answer 405, not 501. */
	evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_gencb(d->http, dlr_request, d);

	errno = 0;
	d->sock = evhttp_bind_socket_with_handle(d->http, host, port);
	if (d->sock == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen,
		    errno != 0 ? strerror(errno) : "bind failed");
		return -1;
	}
	d->port = dlr_bound_port(d->sock);
	return 0;
}

struct dlr *
dlr_new(struct event_base *base, const struct dlr_options *options,
    const struct dlr_handler *handler, char *err, size_t errlen)
{
	struct dlr *d;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	d->base = base;
	d->handler = *handler;
	d->window_ms = util_mono_ms() - DLR_LOG_WINDOW_MS;

	if (dlr_copy_secrets(d, options) == -1 ||
	    (d->flush = evtimer_new(base, dlr_flush_fire, d)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (dlr_listen(d, options->listen, err, errlen) == -1)
		goto fail;
	return d;

fail:
	dlr_free(d);
	return NULL;
}

void
dlr_set_options(struct dlr *d, const struct dlr_options *options)
{
	if (dlr_copy_secrets(d, options) == -1)
		log_err("dlr options-unchanged reason=out-of-memory");
}

int
dlr_port(const struct dlr *d)
{
	return d->port;
}

/* Not to be called from inside a handler: the request is still live. */
void
dlr_free(struct dlr *d)
{
	if (d == NULL)
		return;

	if (d->http != NULL)
		evhttp_free(d->http);
	if (d->flush != NULL) {
		evtimer_del(d->flush);
		event_free(d->flush);
	}
	dlr_limit_flush(d);
	dlr_free_secrets(d);
	free(d);
}
