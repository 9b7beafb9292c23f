/*
 * The metrics endpoint: a writer of the Prometheus text format (0.0.4) and
 * an evhttp listener that serves the page it writes at GET /metrics.
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"
#include "metrics.h"

#define METRICS_PATH		"/metrics"
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MAX_HEADERS	8192
#define METRICS_MAX_BODY	4096
#define METRICS_TIMEOUT		10	/* seconds a scrape may take */
#define METRICS_PAGE_MIN	4096

enum metrics_type {
	METRICS_NONE,
	METRICS_COUNTER,
	METRICS_GAUGE,
	METRICS_HISTOGRAM,
};

struct metrics_page {
	char			*buf;
	size_t			 len;
	size_t			 cap;
	char			 error[160];
	int			 failed;
	enum metrics_type	 type;		/* of the current family */
	char			**names;	/* seen so far; current last */
	size_t			 nnames;
	size_t			 capnames;
};

struct metrics {
	struct evhttp		*http;
	struct metrics_page	*page;
	void			(*fill)(void *, struct metrics_page *);
	void			*arg;
	int			 port;
};

static void	metrics_fail(struct metrics_page *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
metrics_fail(struct metrics_page *page, const char *fmt, ...)
{
	va_list ap;

	if (page->failed)
		return;
	page->failed = 1;
	va_start(ap, fmt);
	vsnprintf(page->error, sizeof(page->error), fmt, ap);
	va_end(ap);
}

static int
metrics_reserve(struct metrics_page *page, size_t more)
{
	size_t cap;
	char *buf;

	if (page->len + more < page->cap)
		return 0;

	cap = page->cap > 0 ? page->cap : METRICS_PAGE_MIN;
	while (cap <= page->len + more)
		cap *= 2;
	if ((buf = realloc(page->buf, cap)) == NULL) {
		metrics_fail(page, "out of memory");
		return -1;
	}
	page->buf = buf;
	page->cap = cap;
	return 0;
}

static void
metrics_put(struct metrics_page *page, const char *s, size_t n)
{
	if (page->failed || metrics_reserve(page, n) == -1)
		return;
	memcpy(page->buf + page->len, s, n);
	page->len += n;
	page->buf[page->len] = '\0';
}

static void
metrics_puts(struct metrics_page *page, const char *s)
{
	metrics_put(page, s, strlen(s));
}

/* Writes S with backslash and newline escaped, and '"' too when QUOTE. */
static void
metrics_put_escaped(struct metrics_page *page, const char *s, int quote)
{
	const char *run;

	for (run = s; *s != '\0'; s++) {
		if (*s != '\\' && *s != '\n' && (*s != '"' || !quote))
			continue;
		metrics_put(page, run, (size_t)(s - run));
		if (*s == '\\')
			metrics_puts(page, "\\\\");
		else if (*s == '\n')
			metrics_puts(page, "\\n");
		else
			metrics_puts(page, "\\\"");
		run = s + 1;
	}
	metrics_put(page, run, (size_t)(s - run));
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metrics; no ':' and no "__" for labels. */
static int
metrics_name_valid(const char *name, int label)
{
	const char *p;

	if (name == NULL || *name == '\0')
		return 0;
	if (label && name[0] == '_' && name[1] == '_')
		return 0;

	for (p = name; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    *p == '_' || (*p == ':' && !label))
			continue;
		if (*p >= '0' && *p <= '9' && p != name)
			continue;
		return 0;
	}
	return 1;
}

static int
metrics_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

struct metrics_page *
metrics_page_new(void)
{
	return calloc(1, sizeof(struct metrics_page));
}

void
metrics_page_reset(struct metrics_page *page)
{
	size_t i;

	for (i = 0; i < page->nnames; i++)
		free(page->names[i]);
	page->nnames = 0;
	page->len = 0;
	if (page->buf != NULL)
		page->buf[0] = '\0';
	page->failed = 0;
	page->error[0] = '\0';
	page->type = METRICS_NONE;
}

void
metrics_page_free(struct metrics_page *page)
{
	if (page == NULL)
		return;
	metrics_page_reset(page);
	free(page->names);
	free(page->buf);
	free(page);
}

const char *
metrics_page_text(const struct metrics_page *page, size_t *len)
{
	if (len != NULL)
		*len = page->len;
	return page->buf != NULL ? page->buf : "";
}

const char *
metrics_page_error(const struct metrics_page *page)
{
	return page->failed ? page->error : NULL;
}

const char *
metrics_format_value(double value, char *buf, size_t len)
{
	int prec;

	if (isnan(value))
		snprintf(buf, len, "NaN");
	else if (isinf(value))
		snprintf(buf, len, value > 0 ? "+Inf" : "-Inf");
	else if (value == trunc(value) && value > -9.2e18 && value < 9.2e18)
		snprintf(buf, len, "%" PRId64, (int64_t)value);
	else {
		/* The shortest of these that reads back exactly. */
		for (prec = 15; prec < 17; prec++) {
			snprintf(buf, len, "%.*g", prec, value);
			if (strtod(buf, NULL) == value)
				return buf;
		}
		snprintf(buf, len, "%.17g", value);
	}
	return buf;
}

static int
metrics_family_seen(const struct metrics_page *page, const char *name)
{
	size_t i;

	for (i = 0; i < page->nnames; i++)
		if (strcmp(page->names[i], name) == 0)
			return 1;
	return 0;
}

static int
metrics_family_add(struct metrics_page *page, const char *name)
{
	size_t cap;
	char **names, *copy;

	if (page->nnames == page->capnames) {
		cap = page->capnames > 0 ? page->capnames * 2 : 16;
		names = reallocarray(page->names, cap, sizeof(*names));
		if (names == NULL)
			goto fail;
		page->names = names;
		page->capnames = cap;
	}
	if ((copy = strdup(name)) == NULL)
		goto fail;
	page->names[page->nnames++] = copy;
	return 0;

fail:
	metrics_fail(page, "out of memory");
	return -1;
}

static enum metrics_type
metrics_type_parse(const char *type)
{
	if (type == NULL)
		return METRICS_NONE;
	if (strcmp(type, "counter") == 0)
		return METRICS_COUNTER;
	if (strcmp(type, "gauge") == 0)
		return METRICS_GAUGE;
	if (strcmp(type, "histogram") == 0)
		return METRICS_HISTOGRAM;
	return METRICS_NONE;
}

void
metrics_family(struct metrics_page *page, const char *name,
    const char *type, const char *help)
{
	enum metrics_type t = metrics_type_parse(type);

	if (page->failed)
		return;
	if (!metrics_name_valid(name, 0)) {
		metrics_fail(page, "bad metric name \"%s\"",
		    name != NULL ? name : "");
		return;
	}
	if (t == METRICS_NONE) {
		metrics_fail(page, "%s: bad type \"%s\"", name,
		    type != NULL ? type : "");
		return;
	}
	if (t == METRICS_COUNTER && !metrics_has_suffix(name, "_total")) {
		metrics_fail(page, "%s: a counter's name ends in _total", name);
		return;
	}
	if (metrics_family_seen(page, name)) {
		metrics_fail(page, "%s: family written twice", name);
		return;
	}
	if (metrics_family_add(page, name) == -1)
		return;
	page->type = t;

	metrics_puts(page, "# HELP ");
	metrics_puts(page, name);
	metrics_puts(page, " ");
	metrics_put_escaped(page, help != NULL ? help : "", 0);
	metrics_puts(page, "\n# TYPE ");
	metrics_puts(page, name);
	metrics_puts(page, " ");
	metrics_puts(page, type);
	metrics_puts(page, "\n");
}

/* Checks that NAME may have a series of TYPE written now. */
static int
metrics_current(struct metrics_page *page, const char *name,
    enum metrics_type type)
{
	const char *current;

	if (page->failed)
		return 0;
	current = page->nnames > 0 ? page->names[page->nnames - 1] : NULL;
	if (current == NULL || name == NULL || strcmp(current, name) != 0) {
		metrics_fail(page, "%s: sample outside its family",
		    name != NULL ? name : "");
		return 0;
	}
	if ((type == METRICS_HISTOGRAM) != (page->type == METRICS_HISTOGRAM)) {
		metrics_fail(page, "%s: %s", name, type == METRICS_HISTOGRAM ?
		    "not a histogram" : "a histogram takes whole series");
		return 0;
	}
	return 1;
}

static int
metrics_labels_valid(struct metrics_page *page, const char *name,
    const struct metrics_label *labels, int histogram)
{
	size_t i, j;

	for (i = 0; labels != NULL && labels[i].key != NULL; i++) {
		if (!metrics_name_valid(labels[i].key, 1)) {
			metrics_fail(page, "%s: bad label name \"%s\"", name,
			    labels[i].key);
			return 0;
		}
		if (histogram && strcmp(labels[i].key, "le") == 0) {
			metrics_fail(page, "%s: le is the histogram's", name);
			return 0;
		}
		if (labels[i].value == NULL) {
			metrics_fail(page, "%s: label %s has no value", name,
			    labels[i].key);
			return 0;
		}
		for (j = 0; j < i; j++)
			if (strcmp(labels[i].key, labels[j].key) == 0) {
				metrics_fail(page, "%s: label %s twice", name,
				    labels[i].key);
				return 0;
			}
	}
	return 1;
}

static void
metrics_label_put(struct metrics_page *page, int first, const char *key,
    const char *value)
{
	metrics_puts(page, first ? "{" : ",");
	metrics_puts(page, key);
	metrics_puts(page, "=\"");
	metrics_put_escaped(page, value, 1);
	metrics_puts(page, "\"");
}

/* One line: NAME SUFFIX {LABELS, le="LE"} VALUE, labels checked. */
static void
metrics_line(struct metrics_page *page, const char *name, const char *suffix,
    const struct metrics_label *labels, const char *le, double value)
{
	char buf[METRICS_VALUE_MAX];
	size_t i;

	metrics_puts(page, name);
	metrics_puts(page, suffix);
	for (i = 0; labels != NULL && labels[i].key != NULL; i++)
		metrics_label_put(page, i == 0, labels[i].key, labels[i].value);
	if (le != NULL)
		metrics_label_put(page, i == 0, "le", le);
	if (i > 0 || le != NULL)
		metrics_puts(page, "}");
	metrics_puts(page, " ");
	metrics_puts(page, metrics_format_value(value, buf, sizeof(buf)));
	metrics_puts(page, "\n");
}

void
metrics_sample(struct metrics_page *page, const char *name,
    const struct metrics_label *labels, double value)
{
	if (!metrics_current(page, name, METRICS_NONE) ||
	    !metrics_labels_valid(page, name, labels, 0))
		return;
	metrics_line(page, name, "", labels, NULL, value);
}

void
metrics_single(struct metrics_page *page, const char *name,
    const char *type, const char *help, double value)
{
	metrics_family(page, name, type, help);
	metrics_sample(page, name, NULL, value);
}

void
metrics_histogram_observe(struct metrics_histogram *h, double value)
{
	size_t i;

	if (isnan(value))
		return;

	/* A bucket counts the values less than or equal to its bound. */
	for (i = 0; i < h->nbounds && value > h->bounds[i]; i++)
		;
	h->counts[i]++;
	h->sum += value;
	h->count++;
}

static int
metrics_histogram_valid(struct metrics_page *page, const char *name,
    const struct metrics_histogram *h)
{
	uint64_t total = 0;
	size_t i;

	for (i = 0; i < h->nbounds; i++)
		if (!isfinite(h->bounds[i]) ||
		    (i > 0 && h->bounds[i] <= h->bounds[i - 1])) {
			metrics_fail(page, "%s: bounds not finite and rising",
			    name);
			return 0;
		}
	for (i = 0; i <= h->nbounds; i++)
		total += h->counts[i];
	if (total != h->count) {
		metrics_fail(page, "%s: buckets hold %" PRIu64 ", count %"
		    PRIu64, name, total, h->count);
		return 0;
	}
	return 1;
}

void
metrics_histogram_write(struct metrics_page *page, const char *name,
    const struct metrics_label *labels, const struct metrics_histogram *h)
{
	char le[METRICS_VALUE_MAX];
	uint64_t cumulative = 0;
	size_t i;

	if (!metrics_current(page, name, METRICS_HISTOGRAM) ||
	    !metrics_labels_valid(page, name, labels, 1) ||
	    !metrics_histogram_valid(page, name, h))
		return;

	for (i = 0; i < h->nbounds; i++) {
		cumulative += h->counts[i];
		metrics_format_value(h->bounds[i], le, sizeof(le));
		metrics_line(page, name, "_bucket", labels, le,
		    (double)cumulative);
	}
	metrics_line(page, name, "_bucket", labels, "+Inf", (double)h->count);
	metrics_line(page, name, "_sum", labels, NULL, h->sum);
	metrics_line(page, name, "_count", labels, NULL, (double)h->count);
}

/* Parses ADDR into SS; -1 with a reason in err when it is malformed. */
static int
metrics_listen_parse(const char *addr, struct sockaddr_storage *ss,
    socklen_t *sslen, char *err, size_t errlen)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	char host[INET6_ADDRSTRLEN];
	int bracketed = addr[0] == '[';
	const char *start = addr + bracketed, *end, *port;
	char *ep;
	long p;

	memset(ss, 0, sizeof(*ss));
	if (bracketed) {
		end = strchr(start, ']');
		port = end != NULL && end[1] == ':' ? end + 2 : NULL;
	} else {
		end = strrchr(start, ':');
		port = end != NULL ? end + 1 : NULL;
	}
	if (port == NULL) {
		snprintf(err, errlen, "%s: not address:port", addr);
		return -1;
	}
	errno = 0;
	p = strtol(port, &ep, 10);
	if (*port < '0' || *port > '9' || *ep != '\0' || errno != 0 ||
	    p > 65535) {
		snprintf(err, errlen, "%s: bad port", addr);
		return -1;
	}

	if ((size_t)(end - start) >= sizeof(host))
		goto bad;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	if (!bracketed && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*sslen = sizeof(*sin);
		return 0;
	}
	if (bracketed && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*sslen = sizeof(*sin6);
		return 0;
	}

bad:
	snprintf(err, errlen, "%s: not a numeric address (IPv4, or IPv6 in "
	    "brackets)", addr);
	return -1;
}

static int
metrics_loopback(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	const uint8_t *a;

	if (ss->ss_family == AF_INET)
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;

	a = sin6->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
		return 1;
	return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && a[12] == 127;
}

int
metrics_listen_is_loopback(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	char err[128];

	if (addr == NULL ||
	    metrics_listen_parse(addr, &ss, &sslen, err, sizeof(err)) == -1)
		return -1;
	return metrics_loopback(&ss);
}

/* A listening socket on ADDR; -1 with a reason in err. */
static int
metrics_bind(struct metrics *m, const char *addr, int allow_remote,
    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int fd, on = 1;

	if (metrics_listen_parse(addr, &ss, &sslen, err, errlen) == -1)
		return -1;
	if (!allow_remote && !metrics_loopback(&ss)) {
		snprintf(err, errlen, "%s is not a loopback address and remote "
		    "access to the metrics is not allowed", addr);
		return -1;
	}

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&ss, sslen) == -1 ||
	    listen(fd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}

	sslen = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
		m->port = ntohs(ss.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static void
metrics_reply(struct evhttp_request *req, int code, const char *reason,
    const char *type, const char *body, size_t len)
{
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct evbuffer *buf;

	evhttp_add_header(headers, "Content-Type", type);
	if ((buf = evbuffer_new()) == NULL ||
	    evbuffer_add(buf, body, len) == -1) {
		evbuffer_free(buf);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evhttp_send_reply(req, code, reason, buf);
	evbuffer_free(buf);
}

static void
metrics_request(struct evhttp_request *req, void *arg)
{
	static const char notfound[] = "not found; try " METRICS_PATH "\n";
	static const char notallowed[] = "method not allowed\n";
	static const char failed[] = "the metrics could not be written\n";
	struct metrics *m = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *text, *error;
	size_t len;

	if (path == NULL || strcmp(path, METRICS_PATH) != 0) {
		metrics_reply(req, 404, "Not Found", "text/plain", notfound,
		    sizeof(notfound) - 1);
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Allow", "GET, HEAD");
		metrics_reply(req, 405, "Method Not Allowed", "text/plain",
		    notallowed, sizeof(notallowed) - 1);
		return;
	}

	metrics_page_reset(m->page);
	m->fill(m->arg, m->page);
	if ((error = metrics_page_error(m->page)) != NULL) {
		log_err("metrics page-failed reason=\"%s\"", error);
		metrics_reply(req, 500, "Internal Server Error", "text/plain",
		    failed, sizeof(failed) - 1);
		return;
	}
	text = metrics_page_text(m->page, &len);
	metrics_reply(req, 200, "OK", METRICS_CONTENT_TYPE, text, len);
}

struct metrics *
metrics_new(struct event_base *base, const char *listen, int allow_remote,
    void (*fill)(void *arg, struct metrics_page *), void *arg,
    char *err, size_t errlen)
{
	struct metrics *m;
	int fd;

	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->page = metrics_page_new()) == NULL ||
	    (m->http = evhttp_new(base)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	m->fill = fill;
	m->arg = arg;

	if ((fd = metrics_bind(m, listen, allow_remote, err, errlen)) == -1)
		goto fail;
	if (evhttp_accept_socket_with_handle(m->http, fd) == NULL) {
		snprintf(err, errlen, "%s: cannot accept connections", listen);
		close(fd);
		goto fail;
	}

	/* Every method reaches the callback, so that the others get 405. */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, METRICS_MAX_BODY);
	evhttp_set_timeout(m->http, METRICS_TIMEOUT);
	evhttp_set_gencb(m->http, metrics_request, m);
	return m;

fail:
	metrics_free(m);
	return NULL;
}

int
metrics_port(const struct metrics *m)
{
	return m->port;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	metrics_page_free(m->page);
	free(m);
}
