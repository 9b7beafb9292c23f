/*
 * fakeup: a fake Panacea Mobile upstream (HTTP or HTTPS on libevent's
 * evhttp) for the integration tests, the benchmarks and the demo.
 *
 * Usage:
 *   fakeup [--listen 127.0.0.1] [--port N] [--port-file FILE]
 *          [--tls-cert FILE --tls-key FILE] [--users u:p[,u2:p2...]]
 *          [--limit C] [--throttle-code CODE] [--latency-ms L]
 *          [--jitter-ms J] [--balance X] [--accept-log FILE]
 *          [--dlr-delay-ms D] [--dlr-codes 8,1] [--dlr-early 0|1]
 *          [--no-dlr]
 *          [--idle-timeout S]
 *
 * Port 0 (the default) picks a free port; once listening, fakeup writes the
 * port to --port-file (atomically, by rename) and prints
 * "fakeup listening port=N tls=0|1" on stdout. SIGTERM or SIGINT exits 0;
 * a bad command line exits 2, a failure to start 1.
 *
 * The API answers on any path but /_control/..., parameters in the query
 * string; every answer (faults aside) is HTTP 200, Content-Type text/html,
 * a JSON envelope {"status":S,"message":"...","details":...}. Checks, in
 * order:
 *   no action -1; unknown action -2; missing username or password -4
 *   (details names it); wrong credentials -8; a queued fault (message_send
 *   only, see below); the per-user limit: when the user already has
 *   --limit requests in progress (arrived, not yet answered), the request
 *   is answered at once with --throttle-code, "Too many simultaneous
 *   requests", and is not counted as in progress; then the action:
 *     message_send: to and text required (-4), balance <= 0 gives -64,
 *       else the message is accepted (costs 1), status 1 "Sent", details
 *       a unique 36-character id. With report_url and delivery reports on,
 *       each code of --dlr-codes (only those in report_mask when that is
 *       given and > 0) is reported by GET report_url with "%d" replaced by
 *       the code, the first one --dlr-delay-ms after the answer, the next
 *       ones spaced by the same delay (http:// URLs only). --dlr-early 1
 *       counts the first delay from the request's arrival instead, so
 *       that with --latency-ms longer than --dlr-delay-ms the report
 *       comes before the send's answer, as Panacea's can.
 *     message_status (message_id): details {"status":"4","cost":"1",
 *       "parts":"1"} for an id fakeup gave out, else -128.
 *     user_get_balance: details the balance as a string.
 *     messages_get: details [] (no inbound messages).
 *   Every answer except a throttle comes --latency-ms plus a uniform
 *   0..--jitter-ms after the request's arrival. Outcomes are decided
 *   when a request arrives: a message is accepted (logged, counted,
 *   charged) then, even when its answer is delayed, stalled or never
 *   read.
 *
 * The control interface, no authentication, answers JSON:
 *   /_control/set?limit=&latency_ms=&jitter_ms=&balance=&throttle_code=
 *     &dlr_delay_ms=&dlr_codes=&dlr_early=   any subset, all or nothing
 *     -> {"ok":true}
 *   A bad control request gets 400 (404: unknown) {"ok":false,"error":..}.
 *   /_control/fault?kind=K[&count=N][&retry_after=S][&code=C][&stall_ms=M]
 *     [&drip_ms=D][&accept=1]   the next N (default 1) message_send
 *     requests that pass authentication get fault K; faults queue in
 *     order; kind=clear drops the queue. accept=1 also accepts the
 *     message behind the fault.
 *     internal  status -16          code     status C (default -16)
 *     http500, http502, http503, http429   that HTTP status, an HTML
 *                                   body, and Retry-After: S when
 *                                   retry_after given
 *     close     close the connection without an answer
 *     partial   headers and half of a "Sent" body, then close
 *     reset     the same, then an RST instead of a FIN (SO_LINGER 0)
 *     stall     no answer for stall_ms (default 60000), then the normal
 *               answer (the message is accepted)
 *     drip      the normal answer (the message is accepted), its headers
 *               at once, then its body one byte every drip_ms (default
 *               100)
 *     html      200 with an HTML page    empty      200, empty body
 *     truncated 200, {"status":1,"mess   huge       200, a 10 MB "Sent"
 *                                                   envelope
 *     wrongtypes 200, {"status":"abc","message":5,"details":[1]}
 *   /_control/stats     requests (API requests), message_send (those
 *     naming that action), accepted, throttled, inflight, max_inflight
 *     (peak of inflight), balance_queries, faults_served, distinct,
 *     duplicates (accepted messages whose (to, text) pair was accepted
 *     before), dlr_sent, dlr_failed (delivery reports), unrecorded
 *     (requests past the record's size), late_us_mean and late_us_max
 *     (how long after arrival + latency + jitter the timed answers
 *     went out: fakeup's own share of the latency a client sees),
 *     inflight_mean (requests in progress, averaged over the time since
 *     the counts started: how busy a client kept the limit), balance
 *   /_control/messages  one JSON object per line per accepted message,
 *     {"id","to","from" (null when absent),"text","report_url",
 *     "report_mask" (both as received, decoded; null when absent)}, in
 *     acceptance order
 *   /_control/requests  one JSON object per line per message_send request,
 *     {"ms" (monotonic, since fakeup started),"answer","text" (null when
 *     absent)}, in arrival order; answer is the fault's kind, "throttled"
 *     or "answered" (every other answer). The first FAKEUP_MAX_RECORDS
 *     are kept; stats counts the rest as unrecorded.
 *   /_control/reset-stats  zeroes the counters (inflight is a gauge and
 *     stays; the messages, and so what counts as a duplicate, stay too)
 *
 * --accept-log FILE gets one line per accepted message, flushed:
 * id TAB to TAB from TAB text, each field with \ TAB LF escaped as
 * \\ \t \n.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "util.h"

#define FAKEUP_MAX_CODES	16
#define FAKEUP_DLR_CONNS	4
#define FAKEUP_HUGE_SIZE	(10 * 1024 * 1024)
#define FAKEUP_ID_SIZE		48
#define FAKEUP_MAX_MS		86400000LL
#define FAKEUP_MAX_PARAMS	64
#define FAKEUP_MAX_RECORDS	(1024 * 1024)

enum fakeup_fault_kind {
	FAKEUP_FAULT_NONE,
	FAKEUP_FAULT_INTERNAL,
	FAKEUP_FAULT_CODE,
	FAKEUP_FAULT_HTTP500,
	FAKEUP_FAULT_HTTP503,
	FAKEUP_FAULT_HTTP429,
	FAKEUP_FAULT_CLOSE,
	FAKEUP_FAULT_PARTIAL,
	FAKEUP_FAULT_STALL,
	FAKEUP_FAULT_HTML,
	FAKEUP_FAULT_EMPTY,
	FAKEUP_FAULT_TRUNCATED,
	FAKEUP_FAULT_HUGE,
	FAKEUP_FAULT_WRONGTYPES,
	FAKEUP_FAULT_HTTP502,
	FAKEUP_FAULT_DRIP,
	FAKEUP_FAULT_RESET
};

static const char *const fakeup_fault_names[] = {
	"none", "internal", "code", "http500", "http503", "http429", "close",
	"partial", "stall", "html", "empty", "truncated", "huge", "wrongtypes",
	"http502", "drip", "reset"
};

struct fakeup_fault {
	struct fakeup_fault	*next;
	enum fakeup_fault_kind	 kind;
	long long		 count;
	long long		 code;
	long long		 retry_after;	/* -1: no Retry-After */
	long long		 stall_ms;
	long long		 drip_ms;
	long long		 accept;
};

struct fakeup_user {
	char			*name;
	char			*pass;
	long long		 inflight;
};

struct fakeup_message {
	const char		*to;
	const char		*from;	/* NULL: none given */
	const char		*text;
	const char		*report_url;	/* NULL: none given */
	const char		*report_mask;	/* NULL: none given */
	char			 id[FAKEUP_ID_SIZE];
	char			 data[];
};

struct fakeup_slot {
	uint64_t		 hash;
	uint32_t		 idx;	/* message index + 1; 0 is empty */
};

struct fakeup_table {
	struct fakeup_slot	*slots;
	size_t			 cap;
	size_t			 used;
};

struct fakeup_dlr {
	struct fakeup_dlr	*prev;
	struct fakeup_dlr	*next;
	struct event		 timer;
	char			*url;
	int			 codes[FAKEUP_MAX_CODES];
	int			 ncodes;
	int			 sent;
	int			 started;	/* linked in fu.dlrs */
};

struct fakeup_dest {
	char			*host;
	int			 port;
	struct evhttp_connection *conns[FAKEUP_DLR_CONNS];
	unsigned int		 turn;
};

struct fakeup_pending {
	struct fakeup_pending	*prev;
	struct fakeup_pending	*next;
	struct evhttp_request	*req;
	struct fakeup_user	*user;	/* counted in user->inflight */
	struct event		 timer;
	int			 armed;
	int			 counted;	/* counted in fu.inflight */
	enum fakeup_fault_kind	 fault;
	int			 http_code;
	long long		 retry_after;
	long long		 delay_ms;	/* -1: latency and jitter */
	long long		 drip_ms;	/* a drip fault's byte spacing */
	int64_t			 due_us;	/* 0: no timed answer */
	struct evbuffer		*body;
	struct fakeup_dlr	*dlr;	/* started when the answer goes */
};

/* A request's query parameters, decoded; the first of a name counts. */
struct fakeup_query {
	size_t			 n;
	struct fakeup_kv {
		char		*key;
		char		*value;
	}			 kv[FAKEUP_MAX_PARAMS];
};

/* What the command line sets and /_control/set changes. */
struct fakeup_knobs {
	long long		 limit;
	long long		 latency_ms;
	long long		 jitter_ms;
	long long		 balance;
	long long		 throttle_code;
	long long		 dlr_delay_ms;
	long long		 dlr_early;	/* 1: from the arrival */
	int			 codes[FAKEUP_MAX_CODES];
	int			 ncodes;
};

/* One message_send request as it arrived, for /_control/requests. */
struct fakeup_record {
	int64_t			 ms;
	const char		*answer;	/* static */
	char			*text;		/* NULL: none given */
};

struct fakeup_stats {
	uint64_t		 requests;
	uint64_t		 message_send;
	uint64_t		 accepted;
	uint64_t		 throttled;
	uint64_t		 max_inflight;
	uint64_t		 balance_queries;
	uint64_t		 faults_served;
	uint64_t		 distinct;
	uint64_t		 duplicates;
	uint64_t		 dlr_sent;
	uint64_t		 dlr_failed;
	uint64_t		 unrecorded;
	uint64_t		 late_n;	/* timed answers, and how late */
	uint64_t		 late_sum_us;
	uint64_t		 late_max_us;
	int64_t			 since_us;	/* when these counts started */
	int64_t			 busy_at_us;	/* the last change of inflight */
	uint64_t		 busy_sum_us;	/* inflight integrated over time */
};

struct fakeup {
	struct event_base	*base;
	struct evhttp		*http;
	SSL_CTX			*ssl;
	struct event		*sigterm;
	struct event		*sigint;
	const char		*listen;
	long long		 port;
	const char		*port_file;
	const char		*tls_cert;
	const char		*tls_key;
	const char		*accept_path;
	int			 accept_fd;
	struct evbuffer		*accept_buf;
	long long		 idle_timeout;
	int			 dlr_on;
	struct fakeup_knobs	 k;
	struct fakeup_user	*users;
	size_t			 nusers;
	struct fakeup_fault	*faults;
	struct fakeup_fault	*faults_tail;
	struct fakeup_pending	*pending;
	struct fakeup_dlr	*dlrs;
	struct fakeup_dest	*dests;
	size_t			 ndests;
	struct fakeup_message	**messages;
	size_t			 nmessages;
	size_t			 capmessages;
	struct fakeup_table	 byid;
	struct fakeup_table	 bypair;
	struct fakeup_record	*records;
	size_t			 nrecords;
	size_t			 caprecords;
	int64_t			 start_ms;
	struct fakeup_stats	 st;
	uint64_t		 inflight;
	uint32_t		 id_prefix[4];
	uint64_t		 id_counter;
};

static struct fakeup fu;

static const char fakeup_usage[] =
"usage: fakeup [options]\n"
"A fake Panacea Mobile upstream (HTTP, or HTTPS with --tls-*).\n"
"\n"
"  --listen ADDR         address to listen on (default 127.0.0.1)\n"
"  --port N              port, 0 picks a free one (default 0)\n"
"  --port-file FILE      write the port there once listening\n"
"  --tls-cert FILE       serve HTTPS with this certificate chain (PEM)\n"
"  --tls-key FILE        and this private key (PEM)\n"
"  --users LIST          user:pass[,user2:pass2...] (default demo:demo)\n"
"  --limit C             requests in progress per user, 0 = unlimited\n"
"                        (default 0); past it: --throttle-code at once\n"
"  --throttle-code CODE  -4096 or -8192 (default -4096)\n"
"  --latency-ms L        answer after L ms (default 0)\n"
"  --jitter-ms J         plus a uniform 0..J ms (default 0)\n"
"  --balance X           credit, 1 per accepted message (default 1e9)\n"
"  --accept-log FILE     append id\\tto\\tfrom\\ttext per accepted message\n"
"  --dlr-delay-ms D      delivery report delay and spacing (default 50)\n"
"  --dlr-codes LIST      delivery codes reported, in order (default 1)\n"
"  --dlr-early 0|1       1: the first report's delay counts from the\n"
"                        request's arrival, not its answer (default 0)\n"
"  --no-dlr              send no delivery reports\n"
"  --idle-timeout S      drop connections idle S seconds (default 300)\n"
"  --help                this text\n"
"\n"
"API (any path): action=message_send|message_status|user_get_balance|\n"
"messages_get with username, password and the action's parameters.\n"
"\n"
"Control (no authentication), GET:\n"
"  /_control/set?limit=&latency_ms=&jitter_ms=&balance=&throttle_code=\n"
"      &dlr_delay_ms=&dlr_codes=&dlr_early=   (any subset)\n"
"  /_control/fault?kind=K&count=N[&retry_after=S][&code=C][&stall_ms=M]\n"
"      [&drip_ms=D][&accept=1]   K: internal code http500 http502\n"
"      http503 http429 close partial reset stall drip html empty\n"
"      truncated huge wrongtypes; clear empties the queue. Applies to\n"
"      the next N authenticated message_send.\n"
"  /_control/stats  /_control/messages  /_control/requests\n"
"  /_control/reset-stats\n"
"\n"
"The comment at the top of tests/fakeup.c tells the details.\n";

static void	fakeup_dlr_free(struct fakeup_dlr *);

/* Parses a whole decimal integer within [min, max]. */
static int
fakeup_parse_ll(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses "8,1" into k->codes; an empty list is allowed. */
static int
fakeup_parse_codes(const char *s, struct fakeup_knobs *k)
{
	char buf[256], *tok, *save;
	long long v;
	int n = 0;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);

	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (n == FAKEUP_MAX_CODES ||
		    fakeup_parse_ll(tok, INT_MIN, INT_MAX, &v) != 0)
			return -1;
		k->codes[n++] = (int)v;
	}
	k->ncodes = n;
	return 0;
}

/* Sets one knob by its control name; -1 for a bad value, -2 unknown. */
static int
fakeup_knob_set(struct fakeup_knobs *k, const char *key, const char *value)
{
	if (strcmp(key, "limit") == 0)
		return fakeup_parse_ll(value, 0, INT_MAX, &k->limit);
	if (strcmp(key, "latency_ms") == 0)
		return fakeup_parse_ll(value, 0, FAKEUP_MAX_MS, &k->latency_ms);
	if (strcmp(key, "jitter_ms") == 0)
		return fakeup_parse_ll(value, 0, FAKEUP_MAX_MS, &k->jitter_ms);
	if (strcmp(key, "balance") == 0)
		return fakeup_parse_ll(value, LLONG_MIN, LLONG_MAX,
		    &k->balance);
	if (strcmp(key, "throttle_code") == 0)
		return fakeup_parse_ll(value, INT_MIN, INT_MAX,
		    &k->throttle_code);
	if (strcmp(key, "dlr_delay_ms") == 0)
		return fakeup_parse_ll(value, 0, FAKEUP_MAX_MS,
		    &k->dlr_delay_ms);
	if (strcmp(key, "dlr_codes") == 0)
		return fakeup_parse_codes(value, k);
	if (strcmp(key, "dlr_early") == 0)
		return fakeup_parse_ll(value, 0, 1, &k->dlr_early);
	return -2;
}

/* Decodes len bytes of a query component; "+" is a space. */
static char *
fakeup_decode(const char *s, size_t len)
{
	char *raw, *out;

	if ((raw = strndup(s, len)) == NULL)
		return NULL;
	out = evhttp_uridecode(raw, 1, NULL);
	free(raw);
	return out;
}

/*
 * Splits a query string into decoded pairs. It is lenient, as common web
 * servers are: a name without "=" gets an empty value, empty pairs are
 * skipped, and nothing is rejected.
 */
static void
fakeup_query_parse(struct fakeup_query *q, const char *query)
{
	const char *p, *end, *eq;
	struct fakeup_kv *kv;
	size_t skip;

	q->n = 0;
	for (p = query; p != NULL && *p != '\0' && q->n < FAKEUP_MAX_PARAMS;
	    p = end + (*end != '\0')) {
		end = p + strcspn(p, "&");
		if (end == p)
			continue;
		if ((eq = memchr(p, '=', (size_t)(end - p))) == NULL)
			eq = end;
		skip = eq < end;

		kv = &q->kv[q->n];
		kv->key = fakeup_decode(p, (size_t)(eq - p));
		kv->value = fakeup_decode(eq + skip, (size_t)(end - eq) - skip);
		if (kv->key == NULL || kv->value == NULL) {
			free(kv->key);
			free(kv->value);
			break;
		}
		q->n++;
	}
}

static void
fakeup_query_free(struct fakeup_query *q)
{
	size_t i;

	for (i = 0; i < q->n; i++) {
		free(q->kv[i].key);
		free(q->kv[i].value);
	}
	q->n = 0;
}

/* A query parameter, or NULL when it is missing or empty. */
static const char *
fakeup_param(struct fakeup_query *q, const char *name)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->kv[i].key, name) == 0)
			return *q->kv[i].value != '\0' ? q->kv[i].value : NULL;
	return NULL;
}

static const char *
fakeup_status_label(long long status)
{
	switch (status) {
	case 1:
		return "Sent";
	case 2:
		return "API request key created";
	case 0:
		return "OK";
	case -1:
		return "No action was specified";
	case -2:
		return "No matching action";
	case -4:
		return "A required parameter is missing";
	case -8:
		return "Bad username or password";
	case -16:
		return "Internal error";
	case -32:
		return "Routing error";
	case -64:
		return "Out of credit";
	case -128:
		return "Invalid record";
	case -256:
		return "Could not save";
	case -512:
		return "Duplicate record";
	case -1024:
		return "Not part of an affiliate program";
	case -2048:
		return "HLR not enabled";
	case -4096:
	case -8192:
		return "Too many simultaneous requests";
	default:
		return "Error";
	}
}

static const char *
fakeup_reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

/* Length of a well-formed UTF-8 sequence at p, 0 if there is none. */
static int
fakeup_utf8_len(const unsigned char *p)
{
	int n, i;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;

	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (n == 3 && p[0] == 0xe0 && p[1] < 0xa0)
		return 0;
	if (n == 3 && p[0] == 0xed && p[1] >= 0xa0)
		return 0;
	if (n == 4 && p[0] == 0xf0 && p[1] < 0x90)
		return 0;
	if (n == 4 && p[0] == 0xf4 && p[1] >= 0x90)
		return 0;
	return n;
}

/*
 * Appends s as a JSON string. Bytes that are not UTF-8 become U+FFFD so
 * that what the control interface prints always parses.
 */
static void
fakeup_json_string(struct evbuffer *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run;
	int n;

	evbuffer_add(b, "\"", 1);
	while (*p != '\0') {
		run = p;
		while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
			p++;
		if (p > run)
			evbuffer_add(b, run, (size_t)(p - run));
		if (*p == '\0')
			break;

		if (*p == '"' || *p == '\\') {
			evbuffer_add_printf(b, "\\%c", *p);
			p++;
		} else if (*p < 0x20) {
			evbuffer_add_printf(b, "\\u%04x", *p);
			p++;
		} else if ((n = fakeup_utf8_len(p)) > 0) {
			evbuffer_add(b, p, (size_t)n);
			p += n;
		} else {
			evbuffer_add(b, "\\ufffd", 6);
			p++;
		}
	}
	evbuffer_add(b, "\"", 1);
}

/* Writes the answer envelope; details is a string or NULL for none. */
static void
fakeup_envelope(struct evbuffer *b, long long status, const char *details)
{
	evbuffer_add_printf(b, "{\"status\":%lld,\"message\":", status);
	fakeup_json_string(b, fakeup_status_label(status));
	if (details != NULL) {
		evbuffer_add(b, ",\"details\":", 11);
		fakeup_json_string(b, details);
	}
	evbuffer_add(b, "}", 1);
}

static uint64_t
fakeup_hash(const char *a, const char *b)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *a != '\0'; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211ULL;
	if (b == NULL)
		return h;

	/* A separator no UTF-8 text contains keeps ("ab","c") != ("a","bc"). */
	h = (h ^ 0xff) * 1099511628211ULL;
	for (; *b != '\0'; b++)
		h = (h ^ (unsigned char)*b) * 1099511628211ULL;
	return h;
}

static void
fakeup_table_insert(struct fakeup_table *t, uint64_t hash, uint32_t idx)
{
	size_t i, mask = t->cap - 1;

	for (i = hash & mask; t->slots[i].idx != 0; i = (i + 1) & mask)
		;
	t->slots[i].hash = hash;
	t->slots[i].idx = idx;
	t->used++;
}

static int
fakeup_table_grow(struct fakeup_table *t)
{
	struct fakeup_slot *old = t->slots;
	size_t i, oldcap = t->cap;

	t->cap = oldcap == 0 ? 1024 : oldcap * 2;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (t->slots == NULL) {
		t->slots = old;
		t->cap = oldcap;
		return -1;
	}

	t->used = 0;
	for (i = 0; i < oldcap; i++)
		if (old[i].idx != 0)
			fakeup_table_insert(t, old[i].hash, old[i].idx);
	free(old);
	return 0;
}

static int
fakeup_table_put(struct fakeup_table *t, uint64_t hash, uint32_t idx)
{
	if ((t->used + 1) * 2 > t->cap && fakeup_table_grow(t) != 0)
		return -1;
	fakeup_table_insert(t, hash, idx);
	return 0;
}

static int
fakeup_match_id(const struct fakeup_message *m, const char *a, const char *b)
{
	(void)b;
	return strcmp(m->id, a) == 0;
}

static int
fakeup_match_pair(const struct fakeup_message *m, const char *a,
    const char *b)
{
	return strcmp(m->to, a) == 0 && strcmp(m->text, b) == 0;
}

static struct fakeup_message *
fakeup_table_find(const struct fakeup_table *t, uint64_t hash,
    int (*match)(const struct fakeup_message *, const char *, const char *),
    const char *a, const char *b)
{
	struct fakeup_message *m;
	size_t i, mask;

	if (t->cap == 0)
		return NULL;

	mask = t->cap - 1;
	for (i = hash & mask; t->slots[i].idx != 0; i = (i + 1) & mask) {
		if (t->slots[i].hash != hash)
			continue;
		m = fu.messages[t->slots[i].idx - 1];
		if (match(m, a, b))
			return m;
	}
	return NULL;
}

static void
fakeup_make_id(char *buf)
{
	uint64_t n = ++fu.id_counter;

	snprintf(buf, FAKEUP_ID_SIZE, "%08" PRIx32 "-%04" PRIx32 "-%04" PRIx32
	    "-%04" PRIx32 "-%012" PRIx64, fu.id_prefix[0],
	    fu.id_prefix[1] & 0xffff, fu.id_prefix[2] & 0xffff,
	    fu.id_prefix[3] & 0xffff, (uint64_t)(n & 0xffffffffffffULL));
}

/* Appends one accept-log field with backslash, TAB and LF escaped. */
static void
fakeup_log_field(struct evbuffer *b, const char *s)
{
	const char *run;

	while (*s != '\0') {
		run = s;
		s += strcspn(s, "\\\t\n");
		evbuffer_add(b, run, (size_t)(s - run));
		if (*s == '\\')
			evbuffer_add(b, "\\\\", 2);
		else if (*s == '\t')
			evbuffer_add(b, "\\t", 2);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			break;
		s++;
	}
}

/* One write(2) per line keeps the log whole for readers, and fast. */
static void
fakeup_log_accept(const struct fakeup_message *m)
{
	struct evbuffer *b = fu.accept_buf;

	if (fu.accept_fd < 0)
		return;

	fakeup_log_field(b, m->id);
	evbuffer_add(b, "\t", 1);
	fakeup_log_field(b, m->to);
	evbuffer_add(b, "\t", 1);
	fakeup_log_field(b, m->from != NULL ? m->from : "");
	evbuffer_add(b, "\t", 1);
	fakeup_log_field(b, m->text);
	evbuffer_add(b, "\n", 1);
	while (evbuffer_get_length(b) > 0)
		if (evbuffer_write(b, fu.accept_fd) < 0 && errno != EINTR) {
			fprintf(stderr, "fakeup: accept-log write failed: %s\n",
			    strerror(errno));
			evbuffer_drain(b, evbuffer_get_length(b));
		}
}

/* Stores an accepted message; NULL when memory ran out. */
static struct fakeup_message *
fakeup_accept(const char *to, const char *from, const char *text,
    const char *report_url, const char *report_mask)
{
	struct fakeup_message *m, **grown;
	size_t lto = strlen(to) + 1, lfrom, ltext = strlen(text) + 1, cap;
	size_t lurl, lmask;
	char *p;

	lfrom = from != NULL ? strlen(from) + 1 : 0;
	lurl = report_url != NULL ? strlen(report_url) + 1 : 0;
	lmask = report_mask != NULL ? strlen(report_mask) + 1 : 0;
	if (fu.nmessages == fu.capmessages) {
		cap = fu.capmessages == 0 ? 1024 : fu.capmessages * 2;
		grown = realloc(fu.messages, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		fu.messages = grown;
		fu.capmessages = cap;
	}
	m = malloc(sizeof(*m) + lto + lfrom + ltext + lurl + lmask);
	if (m == NULL)
		return NULL;

	p = m->data;
	m->to = memcpy(p, to, lto);
	p += lto;
	m->from = from != NULL ? memcpy(p, from, lfrom) : NULL;
	p += lfrom;
	m->text = memcpy(p, text, ltext);
	p += ltext;
	m->report_url = report_url != NULL ? memcpy(p, report_url, lurl) :
	    NULL;
	p += lurl;
	m->report_mask = report_mask != NULL ? memcpy(p, report_mask, lmask) :
	    NULL;
	fakeup_make_id(m->id);

	if (fakeup_table_put(&fu.byid, fakeup_hash(m->id, NULL),
	    (uint32_t)fu.nmessages + 1) != 0) {
		free(m);
		return NULL;
	}
	if (fakeup_table_find(&fu.bypair, fakeup_hash(to, text),
	    fakeup_match_pair, to, text) != NULL) {
		fu.st.duplicates++;
	} else {
		/* Without room to remember it, a later copy goes uncounted. */
		fakeup_table_put(&fu.bypair, fakeup_hash(to, text),
		    (uint32_t)fu.nmessages + 1);
		fu.st.distinct++;
	}

	fu.messages[fu.nmessages++] = m;
	fu.st.accepted++;
	fu.k.balance--;
	fakeup_log_accept(m);
	return m;
}

/* The delivery report due for an accepted message, or NULL for none. */
static struct fakeup_dlr *
fakeup_dlr_new(struct fakeup_query *q)
{
	struct fakeup_dlr *d;
	const char *url;
	long long mask = 0;
	int i, code;

	url = fakeup_param(q, "report_url");
	if (url == NULL || !fu.dlr_on)
		return NULL;
	if (fakeup_parse_ll(fakeup_param(q, "report_mask"), 0, LLONG_MAX,
	    &mask) != 0)
		mask = 0;

	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	for (i = 0; i < fu.k.ncodes; i++) {
		code = fu.k.codes[i];
		if (mask == 0 || (code > 0 && (mask & code) != 0))
			d->codes[d->ncodes++] = code;
	}
	d->url = strdup(url);
	if (d->ncodes == 0 || d->url == NULL) {
		free(d->url);
		free(d);
		return NULL;
	}
	return d;
}

static void
fakeup_dlr_done(struct evhttp_request *req, void *arg)
{
	int code;

	(void)arg;
	code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	if (code >= 200 && code < 300)
		fu.st.dlr_sent++;
	else
		fu.st.dlr_failed++;
}

/* A keep-alive connection to host:port, taken in turn from a small pool. */
static struct evhttp_connection *
fakeup_dest_conn(const char *host, int port)
{
	struct fakeup_dest *d = NULL, *grown;
	struct evhttp_connection *c;
	size_t i;

	for (i = 0; i < fu.ndests && d == NULL; i++)
		if (fu.dests[i].port == port &&
		    strcmp(fu.dests[i].host, host) == 0)
			d = &fu.dests[i];
	if (d == NULL) {
		grown = realloc(fu.dests, (fu.ndests + 1) * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		fu.dests = grown;
		d = &fu.dests[fu.ndests];
		memset(d, 0, sizeof(*d));
		if ((d->host = strdup(host)) == NULL)
			return NULL;
		d->port = port;
		fu.ndests++;
	}

	i = d->turn++ % FAKEUP_DLR_CONNS;
	if (d->conns[i] == NULL) {
		c = evhttp_connection_base_new(fu.base, NULL, host,
		    (unsigned short)port);
		if (c == NULL)
			return NULL;
		evhttp_connection_set_timeout(c, 10);
		evhttp_connection_set_retries(c, 0);
		d->conns[i] = c;
	}
	return d->conns[i];
}

/* Requests url with every "%d" replaced by code; 0 once it is on its way. */
static int
fakeup_dlr_request(const char *url, int code)
{
	struct evbuffer *b = NULL;
	struct evhttp_uri *uri = NULL;
	struct evhttp_request *req;
	struct evhttp_connection *conn;
	const char *p, *hit, *scheme, *host, *path, *query;
	char hostport[300], *full = NULL, *target = NULL;
	int port, rc = -1;

	if ((b = evbuffer_new()) == NULL)
		goto out;
	for (p = url; (hit = strstr(p, "%d")) != NULL; p = hit + 2) {
		evbuffer_add(b, p, (size_t)(hit - p));
		evbuffer_add_printf(b, "%d", code);
	}
	evbuffer_add(b, p, strlen(p) + 1);
	full = strdup((const char *)evbuffer_pullup(b, -1));
	if (full == NULL)
		goto out;

	uri = evhttp_uri_parse_with_flags(full, EVHTTP_URI_NONCONFORMANT);
	if (uri == NULL)
		goto out;
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || strcasecmp(scheme, "http") != 0 ||
	    host == NULL || *host == '\0')
		goto out;
	port = evhttp_uri_get_port(uri);
	if (port <= 0)
		port = 80;
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);

	evbuffer_drain(b, evbuffer_get_length(b));
	evbuffer_add_printf(b, "%s%s%s", path != NULL && *path != '\0' ?
	    path : "/", query != NULL ? "?" : "", query != NULL ? query : "");
	evbuffer_add(b, "", 1);
	target = strdup((const char *)evbuffer_pullup(b, -1));
	snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
	if (target == NULL || (conn = fakeup_dest_conn(host, port)) == NULL)
		goto out;

	if ((req = evhttp_request_new(fakeup_dlr_done, NULL)) == NULL)
		goto out;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
	    hostport);
	if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, target) == 0)
		rc = 0;

out:
	if (uri != NULL)
		evhttp_uri_free(uri);
	if (b != NULL)
		evbuffer_free(b);
	free(full);
	free(target);
	return rc;
}

static void
fakeup_arm_us(struct event *ev, int64_t us)
{
	struct timeval tv;

	if (us < 0)
		us = 0;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(ev, &tv);
}

static void
fakeup_arm(struct event *ev, long long ms)
{
	fakeup_arm_us(ev, (int64_t)ms * 1000);
}

/*
 * Counts a request in (1) or out (-1) of progress, and integrates the
 * count over time: divided by the time, the mean number in progress,
 * which says how busy a client kept the limit.
 */
static void
fakeup_inflight_add(int delta)
{
	int64_t now = util_mono_us();

	fu.st.busy_sum_us += fu.inflight * (uint64_t)(now - fu.st.busy_at_us);
	fu.st.busy_at_us = now;
	fu.inflight = (uint64_t)((int64_t)fu.inflight + delta);
}

static void
fakeup_dlr_fire(evutil_socket_t fd, short what, void *arg)
{
	struct fakeup_dlr *d = arg;

	(void)fd;
	(void)what;
	if (fakeup_dlr_request(d->url, d->codes[d->sent++]) != 0) {
		fu.st.dlr_failed++;
		fprintf(stderr, "fakeup: dlr-failed code=%d\n",
		    d->codes[d->sent - 1]);
	}
	if (d->sent < d->ncodes)
		fakeup_arm(&d->timer, fu.k.dlr_delay_ms);
	else
		fakeup_dlr_free(d);
}

static void
fakeup_dlr_start(struct fakeup_dlr *d)
{
	d->started = 1;
	d->prev = NULL;
	d->next = fu.dlrs;
	if (fu.dlrs != NULL)
		fu.dlrs->prev = d;
	fu.dlrs = d;
	evtimer_assign(&d->timer, fu.base, fakeup_dlr_fire, d);
	fakeup_arm(&d->timer, fu.k.dlr_delay_ms);
}

static void
fakeup_dlr_free(struct fakeup_dlr *d)
{
	if (d->started) {
		if (d->prev != NULL)
			d->prev->next = d->next;
		else
			fu.dlrs = d->next;
		if (d->next != NULL)
			d->next->prev = d->prev;
		evtimer_del(&d->timer);
	}
	free(d->url);
	free(d);
}

static struct fakeup_pending *
fakeup_pending_new(struct evhttp_request *req)
{
	struct fakeup_pending *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if ((p->body = evbuffer_new()) == NULL) {
		free(p);
		return NULL;
	}

	p->req = req;
	p->http_code = 200;
	p->retry_after = -1;
	p->delay_ms = -1;
	p->next = fu.pending;
	if (fu.pending != NULL)
		fu.pending->prev = p;
	fu.pending = p;
	return p;
}

static void
fakeup_pending_free(struct fakeup_pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		fu.pending = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;

	if (p->counted)
		fakeup_inflight_add(-1);
	if (p->user != NULL)
		p->user->inflight--;
	if (p->armed)
		evtimer_del(&p->timer);
	if (p->dlr != NULL)
		fakeup_dlr_free(p->dlr);
	evbuffer_free(p->body);
	free(p);
}

/* Replaces the answer with a status envelope. */
static void
fakeup_pending_status(struct fakeup_pending *p, long long status,
    const char *details)
{
	evbuffer_drain(p->body, evbuffer_get_length(p->body));
	fakeup_envelope(p->body, status, details);
}

static void
fakeup_pending_html(struct fakeup_pending *p, int code)
{
	evbuffer_add_printf(p->body, "<html><head><title>%d %s</title></head>"
	    "<body><h1>%d %s</h1><p>The service is temporarily unavailable."
	    "</p></body></html>\n", code, fakeup_reason(code), code,
	    fakeup_reason(code));
}

static void
fakeup_pending_huge(struct fakeup_pending *p)
{
	static char filler[65536];
	static const char head[] = "{\"status\":1,\"message\":\"Sent\","
	    "\"details\":\"";
	size_t left = FAKEUP_HUGE_SIZE - (sizeof(head) - 1) - 2, n;

	if (filler[0] == '\0')
		memset(filler, 'x', sizeof(filler));
	evbuffer_add(p->body, head, sizeof(head) - 1);
	while (left > 0) {
		n = left < sizeof(filler) ? left : sizeof(filler);
		evbuffer_add_reference(p->body, filler, n, NULL, NULL);
		left -= n;
	}
	evbuffer_add(p->body, "\"}", 2);
}

/* message_send past the checks: accept the message or say why not. */
static void
fakeup_send(struct fakeup_pending *p, struct fakeup_query *q)
{
	struct fakeup_message *m;
	const char *to, *text;

	to = fakeup_param(q, "to");
	text = fakeup_param(q, "text");
	if (to == NULL || text == NULL) {
		fakeup_pending_status(p, -4, to == NULL ? "to" : "text");
		return;
	}
	if (fu.k.balance <= 0) {
		fakeup_pending_status(p, -64, NULL);
		return;
	}

	if ((m = fakeup_accept(to, fakeup_param(q, "from"), text,
	    fakeup_param(q, "report_url"), fakeup_param(q, "report_mask"))) ==
	    NULL) {
		fakeup_pending_status(p, -256, NULL);
		return;
	}
	fakeup_pending_status(p, 1, m->id);
	p->dlr = fakeup_dlr_new(q);
}

static void
fakeup_message_status(struct fakeup_pending *p, struct fakeup_query *q)
{
	const char *id;

	if ((id = fakeup_param(q, "message_id")) == NULL) {
		fakeup_pending_status(p, -4, "message_id");
		return;
	}
	if (fakeup_table_find(&fu.byid, fakeup_hash(id, NULL),
	    fakeup_match_id, id, NULL) == NULL) {
		fakeup_pending_status(p, -128, NULL);
		return;
	}
	evbuffer_add_printf(p->body, "{\"status\":0,\"message\":\"OK\","
	    "\"details\":{\"status\":\"4\",\"cost\":\"1\",\"parts\":\"1\"}}");
}

/* Takes the next queued fault and shapes the answer after it. */
static void
fakeup_fault_take(struct fakeup_pending *p, struct fakeup_query *q)
{
	struct fakeup_fault *f = fu.faults;
	char id[FAKEUP_ID_SIZE];

	fu.st.faults_served++;
	p->fault = f->kind;
	if (f->accept || f->kind == FAKEUP_FAULT_STALL ||
	    f->kind == FAKEUP_FAULT_DRIP)
		fakeup_send(p, q);
	if (f->kind != FAKEUP_FAULT_STALL && f->kind != FAKEUP_FAULT_PARTIAL &&
	    f->kind != FAKEUP_FAULT_RESET && f->kind != FAKEUP_FAULT_DRIP)
		evbuffer_drain(p->body, evbuffer_get_length(p->body));

	switch (f->kind) {
	case FAKEUP_FAULT_INTERNAL:
		fakeup_pending_status(p, -16, NULL);
		break;
	case FAKEUP_FAULT_CODE:
		fakeup_pending_status(p, f->code, NULL);
		break;
	case FAKEUP_FAULT_HTTP500:
	case FAKEUP_FAULT_HTTP502:
	case FAKEUP_FAULT_HTTP503:
	case FAKEUP_FAULT_HTTP429:
		p->http_code = f->kind == FAKEUP_FAULT_HTTP500 ? 500 :
		    f->kind == FAKEUP_FAULT_HTTP502 ? 502 :
		    f->kind == FAKEUP_FAULT_HTTP503 ? 503 : 429;
		p->retry_after = f->retry_after;
		fakeup_pending_html(p, p->http_code);
		break;
	case FAKEUP_FAULT_PARTIAL:
	case FAKEUP_FAULT_RESET:
		if (evbuffer_get_length(p->body) == 0) {
			fakeup_make_id(id);
			fakeup_pending_status(p, 1, id);
		}
		break;
	case FAKEUP_FAULT_STALL:
		p->delay_ms = f->stall_ms;
		break;
	case FAKEUP_FAULT_DRIP:
		p->drip_ms = f->drip_ms;
		break;
	case FAKEUP_FAULT_HTML:
		fakeup_pending_html(p, 200);
		break;
	case FAKEUP_FAULT_TRUNCATED:
		evbuffer_add_printf(p->body, "{\"status\":1,\"mess");
		break;
	case FAKEUP_FAULT_HUGE:
		fakeup_pending_huge(p);
		break;
	case FAKEUP_FAULT_WRONGTYPES:
		evbuffer_add_printf(p->body,
		    "{\"status\":\"abc\",\"message\":5,\"details\":[1]}");
		break;
	case FAKEUP_FAULT_NONE:
	case FAKEUP_FAULT_CLOSE:
	case FAKEUP_FAULT_EMPTY:
		break;
	}

	if (--f->count <= 0) {
		fu.faults = f->next;
		if (fu.faults == NULL)
			fu.faults_tail = NULL;
		free(f);
	}
}

static struct fakeup_user *
fakeup_user_find(const char *name, const char *pass)
{
	size_t i;

	for (i = 0; i < fu.nusers; i++)
		if (strcmp(fu.users[i].name, name) == 0)
			return strcmp(fu.users[i].pass, pass) == 0 ?
			    &fu.users[i] : NULL;
	return NULL;
}

static int
fakeup_action_known(const char *action)
{
	return strcmp(action, "message_send") == 0 ||
	    strcmp(action, "message_status") == 0 ||
	    strcmp(action, "user_get_balance") == 0 ||
	    strcmp(action, "messages_get") == 0;
}

/* Decides the answer to an API request; 1 when it must go out at once. */
static int
fakeup_api_decide(struct fakeup_pending *p, struct fakeup_query *q)
{
	struct fakeup_user *user;
	const char *action, *name, *pass;
	char balance[32];

	if ((action = fakeup_param(q, "action")) == NULL) {
		fakeup_pending_status(p, -1, NULL);
		return 0;
	}
	if (!fakeup_action_known(action)) {
		fakeup_pending_status(p, -2, NULL);
		return 0;
	}
	if (strcmp(action, "message_send") == 0)
		fu.st.message_send++;

	name = fakeup_param(q, "username");
	pass = fakeup_param(q, "password");
	if (name == NULL || pass == NULL) {
		fakeup_pending_status(p, -4, name == NULL ? "username" :
		    "password");
		return 0;
	}
	if ((user = fakeup_user_find(name, pass)) == NULL) {
		fakeup_pending_status(p, -8, NULL);
		return 0;
	}

	if (strcmp(action, "message_send") == 0 && fu.faults != NULL) {
		p->user = user;
		user->inflight++;
		fakeup_fault_take(p, q);
		return 0;
	}
	if (fu.k.limit > 0 && user->inflight >= fu.k.limit) {
		fu.st.throttled++;
		fakeup_pending_status(p, fu.k.throttle_code, NULL);
		return 1;
	}

	p->user = user;
	user->inflight++;
	if (strcmp(action, "message_send") == 0) {
		fakeup_send(p, q);
	} else if (strcmp(action, "message_status") == 0) {
		fakeup_message_status(p, q);
	} else if (strcmp(action, "user_get_balance") == 0) {
		fu.st.balance_queries++;
		snprintf(balance, sizeof(balance), "%lld", fu.k.balance);
		fakeup_pending_status(p, 0, balance);
	} else {
		evbuffer_add_printf(p->body, "{\"status\":0,\"message\":\"OK\","
		    "\"details\":[]}");
	}
	return 0;
}

/*
 * Resets conn's TCP connection now. evhttp shuts the socket down (a FIN)
 * before it closes it, so the socket is closed here, with SO_LINGER 0,
 * by putting an unconnected one in its place: evhttp then shuts down and
 * closes that one.
 */
static void
fakeup_reset(struct evhttp_connection *conn)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
	struct linger lg = { 1, 0 };
	evutil_socket_t fd;
	int dummy;

	if (bev == NULL || (fd = bufferevent_getfd(bev)) < 0)
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0 ||
	    (dummy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		fprintf(stderr, "fakeup: reset failed: %s\n", strerror(errno));
		return;
	}
	if (dup2(dummy, fd) < 0)
		fprintf(stderr, "fakeup: reset failed: %s\n", strerror(errno));
	close(dummy);
}

/* The half body of a partial or reset fault is out: cut the connection. */
static void
fakeup_partial_sent(struct evhttp_connection *conn, void *arg)
{
	struct fakeup_pending *p = arg;

	evhttp_connection_set_closecb(conn, NULL, NULL);
	if (p->fault == FAKEUP_FAULT_RESET)
		fakeup_reset(conn);
	p->req = NULL;
	evhttp_connection_free(conn);
	fakeup_pending_free(p);
}

/* The client left before the half body (or the dripped one) went out. */
static void
fakeup_partial_closed(struct evhttp_connection *conn, void *arg)
{
	struct fakeup_pending *p = arg;

	(void)conn;

	/* evhttp detaches a request it will not free; then it is ours. */
	if (evhttp_request_get_connection(p->req) == NULL)
		evhttp_request_free(p->req);
	p->req = NULL;
	fakeup_pending_free(p);
}

static void
fakeup_answer_partial(struct fakeup_pending *p)
{
	struct evhttp_connection *conn;
	struct evbuffer *half;
	char len[32];
	size_t full;

	if ((conn = evhttp_request_get_connection(p->req)) == NULL) {
		evhttp_request_free(p->req);
		p->req = NULL;
		fakeup_pending_free(p);
		return;
	}

	full = evbuffer_get_length(p->body);
	snprintf(len, sizeof(len), "%zu", full);
	evhttp_add_header(evhttp_request_get_output_headers(p->req),
	    "Content-Length", len);
	evhttp_send_reply_start(p->req, 200, "OK");
	evhttp_connection_set_closecb(conn, fakeup_partial_closed, p);
	if ((half = evbuffer_new()) == NULL) {
		fakeup_partial_sent(conn, p);
		return;
	}
	evbuffer_remove_buffer(p->body, half, full / 2);
	evhttp_send_reply_chunk_with_cb(p->req, half, fakeup_partial_sent, p);
	evbuffer_free(half);
}

/* The next byte of a drip fault's body; the end of the answer after it. */
static void
fakeup_drip_fire(evutil_socket_t fd, short what, void *arg)
{
	struct fakeup_pending *p = arg;
	struct evhttp_connection *conn;
	struct evbuffer *one;

	(void)fd;
	(void)what;
	p->armed = 0;

	if ((one = evbuffer_new()) != NULL) {
		evbuffer_remove_buffer(p->body, one, 1);
		evhttp_send_reply_chunk(p->req, one);
		evbuffer_free(one);
	}
	if (evbuffer_get_length(p->body) > 0) {
		p->armed = 1;
		fakeup_arm(&p->timer, p->drip_ms);
		return;
	}

	if ((conn = evhttp_request_get_connection(p->req)) != NULL)
		evhttp_connection_set_closecb(conn, NULL, NULL);
	evhttp_send_reply_end(p->req);
	p->req = NULL;
	fakeup_pending_free(p);
}

/*
 * The headers go at once with the whole body's Content-Length, so that
 * the client sees an answer that is merely slow, never a malformed one.
 */
static void
fakeup_answer_drip(struct fakeup_pending *p)
{
	struct evhttp_connection *conn;
	char len[32];

	if ((conn = evhttp_request_get_connection(p->req)) == NULL) {
		evhttp_request_free(p->req);
		p->req = NULL;
		fakeup_pending_free(p);
		return;
	}

	snprintf(len, sizeof(len), "%zu", evbuffer_get_length(p->body));
	evhttp_add_header(evhttp_request_get_output_headers(p->req),
	    "Content-Length", len);
	evhttp_send_reply_start(p->req, 200, "OK");
	evhttp_connection_set_closecb(conn, fakeup_partial_closed, p);
	evtimer_assign(&p->timer, fu.base, fakeup_drip_fire, p);
	p->armed = 1;
	fakeup_arm(&p->timer, p->drip_ms);
}

/* How late a timed answer went out: the fake's own share of latency. */
static void
fakeup_note_late(int64_t us)
{
	uint64_t late = us > 0 ? (uint64_t)us : 0;

	fu.st.late_n++;
	fu.st.late_sum_us += late;
	if (late > fu.st.late_max_us)
		fu.st.late_max_us = late;
}

static void
fakeup_pending_answer(struct fakeup_pending *p)
{
	struct evhttp_connection *conn;
	char secs[32];
	int64_t now;

	if (p->dlr != NULL) {
		fakeup_dlr_start(p->dlr);
		p->dlr = NULL;
	}

	switch (p->fault) {
	case FAKEUP_FAULT_PARTIAL:
	case FAKEUP_FAULT_RESET:
		fakeup_answer_partial(p);
		return;
	case FAKEUP_FAULT_DRIP:
		fakeup_answer_drip(p);
		return;
	case FAKEUP_FAULT_CLOSE:
		if ((conn = evhttp_request_get_connection(p->req)) != NULL)
			evhttp_connection_free(conn);
		else
			evhttp_request_free(p->req);
		break;
	default:
		if (p->retry_after >= 0) {
			snprintf(secs, sizeof(secs), "%lld", p->retry_after);
			evhttp_add_header(evhttp_request_get_output_headers(
			    p->req), "Retry-After", secs);
		}
		now = util_mono_us();
		if (p->due_us > 0)
			fakeup_note_late(now - p->due_us);
		evhttp_send_reply(p->req, p->http_code,
		    fakeup_reason(p->http_code), p->body);
		break;
	}
	p->req = NULL;
	fakeup_pending_free(p);
}

static void
fakeup_pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct fakeup_pending *p = arg;

	(void)fd;
	(void)what;
	p->armed = 0;
	fakeup_pending_answer(p);
}

/* Notes a message_send request and its answer for /_control/requests. */
static void
fakeup_record(struct fakeup_query *q, const char *answer)
{
	struct fakeup_record *r, *grown;
	const char *action = fakeup_param(q, "action"), *text;
	size_t cap;

	if (action == NULL || strcmp(action, "message_send") != 0)
		return;
	if (fu.nrecords == FAKEUP_MAX_RECORDS) {
		fu.st.unrecorded++;
		return;
	}
	if (fu.nrecords == fu.caprecords) {
		cap = fu.caprecords == 0 ? 1024 : fu.caprecords * 2;
		grown = realloc(fu.records, cap * sizeof(*grown));
		if (grown == NULL) {
			fu.st.unrecorded++;
			return;
		}
		fu.records = grown;
		fu.caprecords = cap;
	}

	r = &fu.records[fu.nrecords];
	r->ms = util_mono_ms() - fu.start_ms;
	r->answer = answer;
	r->text = NULL;
	if ((text = fakeup_param(q, "text")) != NULL &&
	    (r->text = strdup(text)) == NULL) {
		fu.st.unrecorded++;
		return;
	}
	fu.nrecords++;
}

static void
fakeup_api(struct evhttp_request *req, const char *query)
{
	struct fakeup_pending *p;
	struct fakeup_query q;
	long long delay;
	int64_t arrived_us = util_mono_us();
	int now;

	fu.st.requests++;
	if ((p = fakeup_pending_new(req)) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}

	fakeup_query_parse(&q, query);
	now = fakeup_api_decide(p, &q);
	fakeup_record(&q, p->fault != FAKEUP_FAULT_NONE ?
	    fakeup_fault_names[p->fault] : now ? "throttled" : "answered");
	fakeup_query_free(&q);
	if (p->dlr != NULL && fu.k.dlr_early) {
		fakeup_dlr_start(p->dlr);
		p->dlr = NULL;
	}
	if (now) {
		fakeup_pending_answer(p);
		return;
	}

	p->counted = 1;
	fakeup_inflight_add(1);
	if (fu.inflight > fu.st.max_inflight)
		fu.st.max_inflight = fu.inflight;
	delay = p->delay_ms;
	if (delay < 0)
		delay = fu.k.latency_ms + (long long)util_random_below(
		    (uint64_t)fu.k.jitter_ms + 1);

	/* Faults go through the loop so that no connection is freed here. */
	if (delay == 0 && p->fault == FAKEUP_FAULT_NONE) {
		fakeup_pending_answer(p);
		return;
	}
	/*
	 * The latency counts from the arrival, to the microsecond, not from
	 * the end of the bookkeeping above.
	 */
	evtimer_assign(&p->timer, fu.base, fakeup_pending_fire, p);
	p->armed = 1;
	if (p->fault == FAKEUP_FAULT_NONE) {
		p->due_us = arrived_us + delay * 1000;
		fakeup_arm_us(&p->timer, p->due_us - util_mono_us());
		return;
	}
	fakeup_arm(&p->timer, delay);
}

static const char *
fakeup_control_set(struct fakeup_query *q)
{
	static char err[128];
	struct fakeup_knobs k = fu.k;
	struct fakeup_kv *kv;
	size_t i;
	int rc;

	for (i = 0; i < q->n; i++) {
		kv = &q->kv[i];
		rc = fakeup_knob_set(&k, kv->key, kv->value);
		if (rc != 0) {
			snprintf(err, sizeof(err), "%s %.64s", rc == -2 ?
			    "unknown-key" : "bad-value", kv->key);
			return err;
		}
	}
	fu.k = k;
	return NULL;
}

static void
fakeup_faults_clear(void)
{
	struct fakeup_fault *f;

	while ((f = fu.faults) != NULL) {
		fu.faults = f->next;
		free(f);
	}
	fu.faults_tail = NULL;
}

static const char *
fakeup_control_fault(struct fakeup_query *q)
{
	static char err[128];
	struct fakeup_fault f, *nf;
	struct fakeup_kv *kv;
	const char *kind;
	long long *dst, min, max;
	size_t i;

	memset(&f, 0, sizeof(f));
	f.count = 1;
	f.code = -16;
	f.retry_after = -1;
	f.stall_ms = 60000;
	f.drip_ms = 100;
	if ((kind = fakeup_param(q, "kind")) == NULL)
		return "missing kind";
	if (strcmp(kind, "clear") == 0) {
		fakeup_faults_clear();
		return NULL;
	}
	for (i = 1; i < sizeof(fakeup_fault_names) / sizeof(char *); i++)
		if (strcmp(kind, fakeup_fault_names[i]) == 0)
			f.kind = (enum fakeup_fault_kind)i;
	if (f.kind == FAKEUP_FAULT_NONE)
		return "unknown kind";

	for (i = 0; i < q->n; i++) {
		kv = &q->kv[i];
		min = 0;
		max = FAKEUP_MAX_MS;
		if (strcmp(kv->key, "kind") == 0)
			continue;
		else if (strcmp(kv->key, "count") == 0)
			dst = &f.count;
		else if (strcmp(kv->key, "retry_after") == 0)
			dst = &f.retry_after;
		else if (strcmp(kv->key, "stall_ms") == 0)
			dst = &f.stall_ms;
		else if (strcmp(kv->key, "drip_ms") == 0)
			dst = &f.drip_ms;
		else if (strcmp(kv->key, "accept") == 0) {
			dst = &f.accept;
			max = 1;
		} else if (strcmp(kv->key, "code") == 0) {
			dst = &f.code;
			min = INT_MIN;
			max = INT_MAX;
		} else {
			snprintf(err, sizeof(err), "unknown-key %.64s",
			    kv->key);
			return err;
		}
		if (fakeup_parse_ll(kv->value, min, max, dst) != 0) {
			snprintf(err, sizeof(err), "bad-value %.64s", kv->key);
			return err;
		}
	}
	if (f.count == 0)
		return NULL;

	if ((nf = malloc(sizeof(*nf))) == NULL)
		return "out of memory";
	*nf = f;
	if (fu.faults_tail != NULL)
		fu.faults_tail->next = nf;
	else
		fu.faults = nf;
	fu.faults_tail = nf;
	return NULL;
}

static void
fakeup_control_stats(struct evbuffer *b)
{
	const struct fakeup_stats *s = &fu.st;
	int64_t now = util_mono_us();
	double busy = (double)s->busy_sum_us +
	    (double)fu.inflight * (double)(now - s->busy_at_us);

	evbuffer_add_printf(b, "{\"requests\":%" PRIu64 ",\"message_send\":%"
	    PRIu64 ",\"accepted\":%" PRIu64 ",\"throttled\":%" PRIu64
	    ",\"inflight\":%" PRIu64 ",\"max_inflight\":%" PRIu64
	    ",\"balance_queries\":%" PRIu64 ",\"faults_served\":%" PRIu64
	    ",\"distinct\":%" PRIu64 ",\"duplicates\":%" PRIu64
	    ",\"dlr_sent\":%" PRIu64 ",\"dlr_failed\":%" PRIu64
	    ",\"unrecorded\":%" PRIu64 ",\"late_us_mean\":%" PRIu64
	    ",\"late_us_max\":%" PRIu64 ",\"inflight_mean\":%.3f"
	    ",\"balance\":%lld}\n", s->requests,
	    s->message_send, s->accepted, s->throttled, fu.inflight,
	    s->max_inflight, s->balance_queries, s->faults_served, s->distinct,
	    s->duplicates, s->dlr_sent, s->dlr_failed, s->unrecorded,
	    s->late_n > 0 ? s->late_sum_us / s->late_n : 0, s->late_max_us,
	    now > s->since_us ? busy / (double)(now - s->since_us) : 0.0,
	    fu.k.balance);
}

/* Starts the counts afresh; what is in progress stays counted. */
static void
fakeup_stats_reset(void)
{
	memset(&fu.st, 0, sizeof(fu.st));
	fu.st.max_inflight = fu.inflight;
	fu.st.since_us = fu.st.busy_at_us = util_mono_us();
}

static void
fakeup_control_messages(struct evbuffer *b)
{
	const struct fakeup_message *m;
	size_t i;

	for (i = 0; i < fu.nmessages; i++) {
		m = fu.messages[i];
		evbuffer_add_printf(b, "{\"id\":\"%s\",\"to\":", m->id);
		fakeup_json_string(b, m->to);
		evbuffer_add(b, ",\"from\":", 8);
		if (m->from != NULL)
			fakeup_json_string(b, m->from);
		else
			evbuffer_add(b, "null", 4);
		evbuffer_add(b, ",\"text\":", 8);
		fakeup_json_string(b, m->text);
		evbuffer_add(b, ",\"report_url\":", 14);
		if (m->report_url != NULL)
			fakeup_json_string(b, m->report_url);
		else
			evbuffer_add(b, "null", 4);
		evbuffer_add(b, ",\"report_mask\":", 15);
		if (m->report_mask != NULL)
			fakeup_json_string(b, m->report_mask);
		else
			evbuffer_add(b, "null", 4);
		evbuffer_add(b, "}\n", 2);
	}
}

static void
fakeup_control_requests(struct evbuffer *b)
{
	const struct fakeup_record *r;
	size_t i;

	for (i = 0; i < fu.nrecords; i++) {
		r = &fu.records[i];
		evbuffer_add_printf(b, "{\"ms\":%" PRId64 ",\"answer\":\"%s\","
		    "\"text\":", r->ms, r->answer);
		if (r->text != NULL)
			fakeup_json_string(b, r->text);
		else
			evbuffer_add(b, "null", 4);
		evbuffer_add(b, "}\n", 2);
	}
}

static void
fakeup_control(struct evhttp_request *req, const char *name,
    const char *query)
{
	struct fakeup_query q;
	struct evbuffer *b;
	const char *err = NULL;
	int code = 200;

	if ((b = evbuffer_new()) == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	fakeup_query_parse(&q, query);
	if (strcmp(name, "set") == 0)
		err = fakeup_control_set(&q);
	else if (strcmp(name, "fault") == 0)
		err = fakeup_control_fault(&q);
	else if (strcmp(name, "stats") == 0)
		fakeup_control_stats(b);
	else if (strcmp(name, "messages") == 0)
		fakeup_control_messages(b);
	else if (strcmp(name, "requests") == 0)
		fakeup_control_requests(b);
	else if (strcmp(name, "reset-stats") == 0)
		fakeup_stats_reset();
	else {
		err = "no such control";
		code = 404;
	}

	if (err != NULL) {
		if (code == 200)
			code = 400;
		evbuffer_add_printf(b, "{\"ok\":false,\"error\":");
		fakeup_json_string(b, err);
		evbuffer_add_printf(b, "}\n");
	} else if (evbuffer_get_length(b) == 0 &&
	    strcmp(name, "messages") != 0 && strcmp(name, "requests") != 0) {
		evbuffer_add_printf(b, "{\"ok\":true}\n");
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	evhttp_send_reply(req, code, fakeup_reason(code), b);
	fakeup_query_free(&q);
	evbuffer_free(b);
}

static void
fakeup_handle(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri;
	const char *path;

	(void)arg;

	/* evhttp calls back without a URI when a request failed to parse. */
	if ((uri = evhttp_request_get_evhttp_uri(req)) == NULL) {
		evhttp_send_error(req, 400, NULL);
		return;
	}
	path = evhttp_uri_get_path(uri);
	if (path != NULL && strncmp(path, "/_control/", 10) == 0)
		fakeup_control(req, path + 10, evhttp_uri_get_query(uri));
	else
		fakeup_api(req, evhttp_uri_get_query(uri));
}

static struct bufferevent *
fakeup_tls_bev(struct event_base *base, void *arg)
{
	struct bufferevent *bev;
	SSL *ssl;

	(void)arg;
	if ((ssl = SSL_new(fu.ssl)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static int
fakeup_tls_setup(void)
{
	if ((fu.ssl = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(fu.ssl, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(fu.ssl, fu.tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(fu.ssl, fu.tls_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(fu.ssl) != 1)
		goto fail;
	evhttp_set_bevcb(fu.http, fakeup_tls_bev, NULL);
	return 0;

fail:
	fprintf(stderr, "fakeup: tls setup failed: %s\n",
	    ERR_error_string(ERR_get_error(), NULL));
	return -1;
}

static int
fakeup_write_port_file(int port)
{
	char tmp[4096];
	FILE *f;

	if (fu.port_file == NULL)
		return 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", fu.port_file);
	if ((f = fopen(tmp, "w")) == NULL)
		return -1;
	fprintf(f, "%d\n", port);
	if (fclose(f) != 0 || rename(tmp, fu.port_file) != 0)
		return -1;
	return 0;
}

static void
fakeup_on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(fu.base);
}

/* Binds the listener; returns the port or -1. */
static int
fakeup_listen(void)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct evconnlistener *lev;
	socklen_t len;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, fu.listen, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)fu.port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, fu.listen, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)fu.port);
		len = sizeof(*sin6);
	} else {
		fprintf(stderr, "fakeup: bad listen address %s\n", fu.listen);
		return -1;
	}

	lev = evconnlistener_new_bind(fu.base, NULL, NULL,
	    LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
	    4096, (struct sockaddr *)&ss, (int)len);
	if (lev == NULL) {
		fprintf(stderr, "fakeup: cannot listen on %s port %lld: %s\n",
		    fu.listen, fu.port, strerror(errno));
		return -1;
	}
	if (evhttp_bind_listener(fu.http, lev) == NULL) {
		evconnlistener_free(lev);
		return -1;
	}

	len = sizeof(ss);
	if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss,
	    &len) != 0)
		return -1;
	return ntohs(ss.ss_family == AF_INET ? sin->sin_port :
	    sin6->sin6_port);
}

static int
fakeup_setup(void)
{
	struct event_config *ec;
	int port;

	fu.start_ms = util_mono_ms();
	fu.id_prefix[0] = (uint32_t)util_random();
	fu.id_prefix[1] = (uint32_t)util_random();
	fu.id_prefix[2] = 0x4000 | ((uint32_t)util_random() & 0x0fff);
	fu.id_prefix[3] = 0x8000 | ((uint32_t)util_random() & 0x3fff);

	if (fu.accept_path != NULL && ((fu.accept_buf = evbuffer_new()) ==
	    NULL || (fu.accept_fd = open(fu.accept_path, O_WRONLY | O_CREAT |
	    O_APPEND | O_CLOEXEC, 0644)) < 0)) {
		fprintf(stderr, "fakeup: cannot open %s: %s\n",
		    fu.accept_path, strerror(errno));
		return -1;
	}
	/* Latencies of a few ms need more than libevent's coarse clock. */
	if ((ec = event_config_new()) == NULL)
		return -1;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	fu.base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (fu.base == NULL || (fu.http = evhttp_new(fu.base)) == NULL)
		return -1;
	fakeup_stats_reset();
	if (fu.tls_cert != NULL && fakeup_tls_setup() != 0)
		return -1;

	evhttp_set_gencb(fu.http, fakeup_handle, NULL);
	evhttp_set_default_content_type(fu.http, "text/html; charset=UTF-8");
	evhttp_set_allowed_methods(fu.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD);
	evhttp_set_max_headers_size(fu.http, 64 * 1024);
	evhttp_set_max_body_size(fu.http, 1024 * 1024);
	evhttp_set_timeout(fu.http, (int)fu.idle_timeout);
	if ((port = fakeup_listen()) < 0)
		return -1;

	fu.sigterm = evsignal_new(fu.base, SIGTERM, fakeup_on_signal, NULL);
	fu.sigint = evsignal_new(fu.base, SIGINT, fakeup_on_signal, NULL);
	if (fu.sigterm == NULL || fu.sigint == NULL ||
	    evsignal_add(fu.sigterm, NULL) != 0 ||
	    evsignal_add(fu.sigint, NULL) != 0)
		return -1;

	if (fakeup_write_port_file(port) != 0) {
		fprintf(stderr, "fakeup: cannot write %s: %s\n", fu.port_file,
		    strerror(errno));
		return -1;
	}
	printf("fakeup listening port=%d tls=%d\n", port, fu.ssl != NULL);
	fflush(stdout);
	return 0;
}

/* Frees everything, requests held for a delayed answer first. */
static void
fakeup_teardown(void)
{
	struct evhttp_connection *conn;
	struct fakeup_pending *p;
	size_t i, j;

	while ((p = fu.pending) != NULL) {
		conn = evhttp_request_get_connection(p->req);
		if (conn == NULL)
			evhttp_request_free(p->req);
		else if (p->fault == FAKEUP_FAULT_PARTIAL ||
		    p->fault == FAKEUP_FAULT_RESET ||
		    p->fault == FAKEUP_FAULT_DRIP)
			evhttp_connection_set_closecb(conn, NULL, NULL);
		fakeup_pending_free(p);
	}
	while (fu.dlrs != NULL)
		fakeup_dlr_free(fu.dlrs);
	for (i = 0; i < fu.ndests; i++) {
		for (j = 0; j < FAKEUP_DLR_CONNS; j++)
			if (fu.dests[i].conns[j] != NULL)
				evhttp_connection_free(fu.dests[i].conns[j]);
		free(fu.dests[i].host);
	}
	free(fu.dests);
	fakeup_faults_clear();

	if (fu.http != NULL)
		evhttp_free(fu.http);
	if (fu.ssl != NULL)
		SSL_CTX_free(fu.ssl);
	if (fu.sigterm != NULL)
		event_free(fu.sigterm);
	if (fu.sigint != NULL)
		event_free(fu.sigint);
	if (fu.base != NULL)
		event_base_free(fu.base);

	for (i = 0; i < fu.nmessages; i++)
		free(fu.messages[i]);
	free(fu.messages);
	for (i = 0; i < fu.nrecords; i++)
		free(fu.records[i].text);
	free(fu.records);
	free(fu.byid.slots);
	free(fu.bypair.slots);
	for (i = 0; i < fu.nusers; i++) {
		free(fu.users[i].name);
		free(fu.users[i].pass);
	}
	free(fu.users);
	if (fu.accept_fd >= 0)
		close(fu.accept_fd);
	if (fu.accept_buf != NULL)
		evbuffer_free(fu.accept_buf);
}

/* Parses "user:pass[,user2:pass2...]". */
static int
fakeup_parse_users(const char *s)
{
	char *copy, *tok, *save, *colon;
	struct fakeup_user *u;
	size_t n = 1;
	const char *c;

	for (c = s; *c != '\0'; c++)
		n += *c == ',';
	if ((copy = strdup(s)) == NULL ||
	    (u = calloc(n, sizeof(*u))) == NULL) {
		free(copy);
		return -1;
	}
	for (n = 0; n < fu.nusers; n++) {
		free(fu.users[n].name);
		free(fu.users[n].pass);
	}
	free(fu.users);
	fu.users = u;
	fu.nusers = 0;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((colon = strchr(tok, ':')) == NULL || colon == tok)
			goto fail;
		*colon = '\0';
		u = &fu.users[fu.nusers];
		u->name = strdup(tok);
		u->pass = strdup(colon + 1);
		fu.nusers++;
		if (u->name == NULL || u->pass == NULL)
			goto fail;
	}
	free(copy);
	return fu.nusers > 0 ? 0 : -1;

fail:
	free(copy);
	return -1;
}

enum fakeup_opt {
	FAKEUP_OPT_LISTEN = 256,
	FAKEUP_OPT_PORT,
	FAKEUP_OPT_PORT_FILE,
	FAKEUP_OPT_TLS_CERT,
	FAKEUP_OPT_TLS_KEY,
	FAKEUP_OPT_USERS,
	FAKEUP_OPT_ACCEPT_LOG,
	FAKEUP_OPT_NO_DLR,
	FAKEUP_OPT_IDLE,
	FAKEUP_OPT_HELP,
	FAKEUP_OPT_KNOB	/* named like its /_control/set key */
};

static const struct option fakeup_opts[] = {
	{ "listen", required_argument, NULL, FAKEUP_OPT_LISTEN },
	{ "port", required_argument, NULL, FAKEUP_OPT_PORT },
	{ "port-file", required_argument, NULL, FAKEUP_OPT_PORT_FILE },
	{ "tls-cert", required_argument, NULL, FAKEUP_OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, FAKEUP_OPT_TLS_KEY },
	{ "users", required_argument, NULL, FAKEUP_OPT_USERS },
	{ "accept-log", required_argument, NULL, FAKEUP_OPT_ACCEPT_LOG },
	{ "no-dlr", no_argument, NULL, FAKEUP_OPT_NO_DLR },
	{ "idle-timeout", required_argument, NULL, FAKEUP_OPT_IDLE },
	{ "help", no_argument, NULL, FAKEUP_OPT_HELP },
	{ "limit", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ "throttle-code", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ "latency-ms", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ "jitter-ms", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ "balance", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ "dlr-delay-ms", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ "dlr-codes", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ "dlr-early", required_argument, NULL, FAKEUP_OPT_KNOB },
	{ NULL, 0, NULL, 0 }
};

/* Parses the command line; 1 means --help was asked for. */
static int
fakeup_options(int argc, char **argv)
{
	char key[32], *c;
	int ch, idx;

	fu.listen = "127.0.0.1";
	fu.accept_fd = -1;
	fu.idle_timeout = 300;
	fu.dlr_on = 1;
	fu.k.throttle_code = -4096;
	fu.k.balance = 1000000000;
	fu.k.dlr_delay_ms = 50;
	fu.k.codes[0] = 1;
	fu.k.ncodes = 1;
	if (fakeup_parse_users("demo:demo") != 0)
		return -1;

	while ((ch = getopt_long(argc, argv, "", fakeup_opts, &idx)) != -1) {
		switch (ch) {
		case FAKEUP_OPT_LISTEN:
			fu.listen = optarg;
			break;
		case FAKEUP_OPT_PORT:
			if (fakeup_parse_ll(optarg, 0, 65535, &fu.port) != 0)
				goto bad;
			break;
		case FAKEUP_OPT_PORT_FILE:
			fu.port_file = optarg;
			break;
		case FAKEUP_OPT_TLS_CERT:
			fu.tls_cert = optarg;
			break;
		case FAKEUP_OPT_TLS_KEY:
			fu.tls_key = optarg;
			break;
		case FAKEUP_OPT_USERS:
			if (fakeup_parse_users(optarg) != 0)
				goto bad;
			break;
		case FAKEUP_OPT_ACCEPT_LOG:
			fu.accept_path = optarg;
			break;
		case FAKEUP_OPT_NO_DLR:
			fu.dlr_on = 0;
			break;
		case FAKEUP_OPT_IDLE:
			if (fakeup_parse_ll(optarg, 1, 86400,
			    &fu.idle_timeout) != 0)
				goto bad;
			break;
		case FAKEUP_OPT_HELP:
			fputs(fakeup_usage, stdout);
			return 1;
		case FAKEUP_OPT_KNOB:
			snprintf(key, sizeof(key), "%s", fakeup_opts[idx].name);
			for (c = key; *c != '\0'; c++)
				if (*c == '-')
					*c = '_';
			if (fakeup_knob_set(&fu.k, key, optarg) != 0)
				goto bad;
			break;
		default:
			fputs(fakeup_usage, stderr);
			return -1;
		}
	}
	if (optind != argc || (fu.tls_cert == NULL) != (fu.tls_key == NULL)) {
		fprintf(stderr, "fakeup: stray arguments, or only one of "
		    "--tls-cert and --tls-key\n");
		return -1;
	}
	return 0;

bad:
	fprintf(stderr, "fakeup: bad value for --%s: %s\n",
	    fakeup_opts[idx].name, optarg);
	return -1;
}

/* Many simultaneous connections need more descriptors than the default. */
static void
fakeup_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	int rc;

	rc = fakeup_options(argc, argv);
	if (rc != 0) {
		fakeup_teardown();
		return rc > 0 ? 0 : 2;
	}

	fakeup_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (fakeup_setup() != 0) {
		fakeup_teardown();
		return 1;
	}

	event_base_dispatch(fu.base);
	fakeup_teardown();
	return 0;
}
