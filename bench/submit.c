/*
 * submit: a load generator for smsgwd. Each connection (one thread) keeps a
 * window of "send" requests in flight and times each answer; one summary
 * line at the end.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_SOCKET_DEFAULT	"/run/smsgwd/smsgwd.sock"
#define BENCH_CHUNK		65536
#define BENCH_STALL_MS		30000	/* no answer for this long: give up */
#define BENCH_CODES		16	/* distinct error codes counted */
#define BENCH_CODE_LEN		32

struct bench_code {
	char	 name[BENCH_CODE_LEN];
	size_t	 count;
};

struct bench {
	const char		*socket;
	int			 connections;
	size_t			 messages;	/* per connection */
	size_t			 window;
	double			 rate;		/* total per s; 0: no limit */
	long			 pid;
	char			*prefix;	/* each request up to "req": */
	size_t			 prefix_len;
	pthread_barrier_t	 start;
};

struct bench_buf {
	char	*data;
	size_t	 off;
	size_t	 len;
	size_t	 cap;
};

struct bench_conn {
	struct bench		*bench;
	pthread_t		 thread;
	int			 index;
	int			 fd;
	struct bench_buf	 out;
	struct bench_buf	 in;
	uint64_t		 queued_bytes;	/* stream offset of out's end */
	uint64_t		 written_bytes;
	uint64_t		*end;		/* offset after request i */
	int64_t			*time;		/* write time, then latency */
	size_t			 queued;	/* requests put in out */
	size_t			 stamped;	/* requests fully written */
	size_t			 answered;
	size_t			 accepted;
	size_t			 errors;
	struct bench_code	 codes[BENCH_CODES + 1]; /* last: other */
	int64_t			 started;
	int64_t			 finished;
	int64_t			 progress;	/* last byte moved, ns */
	char			 failure[256];
};

/* What an answer line says, as far as the summary cares. */
struct bench_answer {
	bool	 ok;
	bool	 has_req;
	size_t	 req;
	char	 error[BENCH_CODE_LEN];
};

static const char bench_usage_text[] =
"usage: submit [-s SOCKET] [-c CONNECTIONS] [-n MESSAGES] [-w WINDOW]\n"
"              [-r RATE] [-p PID] [--to NUMBER] [--text TEXT]\n"
"  -s SOCKET       the daemon's socket (default $SMSGW_SOCKET, else\n"
"                  " BENCH_SOCKET_DEFAULT ")\n"
"  -c CONNECTIONS  connections, one thread each (default 4)\n"
"  -n MESSAGES     messages per connection (default 25000)\n"
"  -w WINDOW       requests in flight per connection (default 256)\n"
"  -r RATE         messages per second offered in total, 0 = flat out\n"
"  -p PID          the daemon's pid, to report its peak RSS (VmHWM)\n"
"  --to NUMBER     the recipient (default +27821234567)\n"
"  --text TEXT     the message text (default \"bench\")\n";

static int64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
bench_nomem(void)
{
	fputs("submit: out of memory\n", stderr);
	exit(2);
}

static void
bench_fail(struct bench_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
bench_fail(struct bench_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->failure, sizeof(c->failure), fmt, ap);
	va_end(ap);
}

static void
bench_buf_reserve(struct bench_buf *b, size_t more)
{
	size_t cap;

	if (b->off > 0 && (b->off == b->len || b->len + more > b->cap)) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + more <= b->cap)
		return;

	cap = b->cap > 0 ? b->cap : BENCH_CHUNK;
	while (cap < b->len + more)
		cap *= 2;
	if ((b->data = realloc(b->data, cap)) == NULL)
		bench_nomem();
	b->cap = cap;
}

/* Appends s as the inside of a JSON string. */
static void
bench_json_escape(struct bench_buf *b, const char *s)
{
	unsigned char ch;

	for (; *s != '\0'; s++) {
		bench_buf_reserve(b, 8);
		ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			b->len += (size_t)sprintf(b->data + b->len, "\\%c", ch);
		else if (ch < 0x20)
			b->len += (size_t)sprintf(b->data + b->len, "\\u%04x",
			    ch);
		else
			b->data[b->len++] = (char)ch;
	}
}

static void
bench_build_prefix(struct bench *bench, const char *to, const char *text)
{
	static const char head[] = "{\"op\":\"send\",\"to\":\"";
	struct bench_buf b = { 0 };

	bench_buf_reserve(&b, sizeof(head));
	memcpy(b.data, head, sizeof(head) - 1);
	b.len = sizeof(head) - 1;
	bench_json_escape(&b, to);
	bench_buf_reserve(&b, 16);
	b.len += (size_t)sprintf(b.data + b.len, "\",\"text\":\"");
	bench_json_escape(&b, text);
	bench_buf_reserve(&b, 16);
	b.len += (size_t)sprintf(b.data + b.len, "\",\"req\":");
	bench->prefix = b.data;
	bench->prefix_len = b.len;
}

static const char *
bench_skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/* Skips a JSON string starting at its opening quote; NULL if unended. */
static const char *
bench_skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* Skips any JSON value, nested ones by counting brackets; NULL if cut. */
static const char *
bench_skip_value(const char *p, const char *end)
{
	int depth = 0;

	if (p < end && *p == '"')
		return bench_skip_string(p, end);

	if (p < end && (*p == '{' || *p == '[')) {
		while (p != NULL && p < end) {
			if (*p == '"') {
				p = bench_skip_string(p, end);
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if ((*p == '}' || *p == ']') && --depth == 0)
				return p + 1;
			p++;
		}
		return NULL;
	}

	while (p < end && *p != ',' && *p != '}' && *p != ' ' && *p != '\t')
		p++;
	return p;
}

/* Reads one member's value into a when it is one of ok, req or error. */
static const char *
bench_scan_value(const char *key, size_t keylen, const char *p,
    const char *end, struct bench_answer *a)
{
	const char *q;
	char *num_end;
	size_t len;

	if (keylen == 2 && memcmp(key, "ok", 2) == 0) {
		a->ok = end - p >= 4 && memcmp(p, "true", 4) == 0;
	} else if (keylen == 3 && memcmp(key, "req", 3) == 0 &&
	    p < end && *p >= '0' && *p <= '9') {
		a->req = (size_t)strtoull(p, &num_end, 10);
		a->has_req = true;
	} else if (keylen == 5 && memcmp(key, "error", 5) == 0 &&
	    p < end && *p == '"') {
		if ((q = bench_skip_string(p, end)) == NULL)
			return NULL;
		len = (size_t)(q - p) - 2;
		if (len >= sizeof(a->error))
			len = sizeof(a->error) - 1;
		memcpy(a->error, p + 1, len);
		a->error[len] = '\0';
	}
	return bench_skip_value(p, end);
}

/* Scans the top-level members of an answer line; -1 if it is garbled. */
static int
bench_scan(const char *p, const char *end, struct bench_answer *a)
{
	const char *key;
	size_t keylen;

	memset(a, 0, sizeof(*a));
	p = bench_skip_ws(p, end);
	if (p == end || *p++ != '{')
		return -1;

	for (;;) {
		p = bench_skip_ws(p, end);
		if (p < end && *p == '}')
			return 0;
		if (p == end || *p != '"')
			return -1;
		key = p + 1;
		if ((p = bench_skip_string(p, end)) == NULL)
			return -1;
		keylen = (size_t)(p - key) - 1;
		p = bench_skip_ws(p, end);
		if (p == end || *p++ != ':')
			return -1;
		p = bench_skip_ws(p, end);
		p = bench_scan_value(key, keylen, p, end, a);
		if (p == NULL)
			return -1;
		p = bench_skip_ws(p, end);
		if (p < end && *p == ',')
			p++;
		else if (p < end && *p == '}')
			return 0;
		else
			return -1;
	}
}

static void
bench_count_error(struct bench_conn *c, const char *code)
{
	int i;

	c->errors++;
	for (i = 0; i < BENCH_CODES; i++) {
		if (c->codes[i].name[0] == '\0')
			snprintf(c->codes[i].name, sizeof(c->codes[i].name),
			    "%s", code);
		if (strcmp(c->codes[i].name, code) == 0) {
			c->codes[i].count++;
			return;
		}
	}
	c->codes[BENCH_CODES].count++;
}

static int
bench_answer(struct bench_conn *c, const char *line, const char *end,
    int64_t now)
{
	struct bench_answer a;

	if (bench_scan(line, end, &a) == -1) {
		bench_fail(c, "a garbled answer: %.*s", (int)(end - line),
		    line);
		return -1;
	}
	if (!a.has_req || a.req != c->answered || a.req >= c->stamped) {
		bench_fail(c, "an answer out of order: %.*s",
		    (int)(end - line), line);
		return -1;
	}

	c->time[a.req] = now - c->time[a.req];
	c->answered++;
	c->progress = now;
	if (a.ok)
		c->accepted++;
	else
		bench_count_error(c, a.error[0] != '\0' ? a.error : "unknown");
	return 0;
}

static int
bench_read(struct bench_conn *c)
{
	char *line, *nl, *end;
	int64_t now;
	ssize_t n;

	bench_buf_reserve(&c->in, BENCH_CHUNK);
	n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		bench_fail(c, "the connection was lost: %s",
		    n == 0 ? "closed by the daemon" : strerror(errno));
		return -1;
	}
	now = bench_now_ns();
	c->in.len += (size_t)n;

	line = c->in.data + c->in.off;
	end = c->in.data + c->in.len;
	while ((nl = memchr(line, '\n', (size_t)(end - line))) != NULL) {
		if (bench_answer(c, line, nl, now) == -1)
			return -1;
		line = nl + 1;
	}
	c->in.off = (size_t)(line - c->in.data);
	return 0;
}

/* Puts request i in the output buffer. */
static void
bench_queue(struct bench_conn *c)
{
	const struct bench *bench = c->bench;
	size_t before;

	bench_buf_reserve(&c->out, bench->prefix_len + 32);
	before = c->out.len;
	memcpy(c->out.data + c->out.len, bench->prefix, bench->prefix_len);
	c->out.len += bench->prefix_len;
	c->out.len += (size_t)sprintf(c->out.data + c->out.len, "%zu}\n",
	    c->queued);
	c->queued_bytes += c->out.len - before;
	c->end[c->queued++] = c->queued_bytes;
}

static int
bench_write(struct bench_conn *c)
{
	int64_t now;
	ssize_t n;

	n = send(c->fd, c->out.data + c->out.off, c->out.len - c->out.off,
	    MSG_NOSIGNAL);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == -1) {
		bench_fail(c, "cannot write: %s", strerror(errno));
		return -1;
	}

	now = bench_now_ns();
	c->progress = now;
	c->out.off += (size_t)n;
	c->written_bytes += (uint64_t)n;
	while (c->stamped < c->queued &&
	    c->end[c->stamped] <= c->written_bytes)
		c->time[c->stamped++] = now;
	return 0;
}

/* When request i is due under -r, spread evenly over all connections. */
static int64_t
bench_due(const struct bench_conn *c, size_t i)
{
	double interval;

	if (c->bench->rate <= 0)
		return 0;
	interval = 1e9 * c->bench->connections / c->bench->rate;
	return c->started + (int64_t)(interval * ((double)i +
	    (double)c->index / c->bench->connections));
}

/* How long poll may sleep: until the next request is due, or a stall. */
static int
bench_wait_ms(const struct bench_conn *c, int64_t now)
{
	int64_t wait;

	wait = c->progress + (int64_t)BENCH_STALL_MS * 1000000 - now;
	if (c->queued < c->bench->messages &&
	    c->queued - c->answered < c->bench->window &&
	    bench_due(c, c->queued) - now < wait)
		wait = bench_due(c, c->queued) - now;
	if (wait <= 0)
		return 0;
	return (int)((wait + 999999) / 1000000);
}

static int
bench_step(struct bench_conn *c)
{
	const struct bench *bench = c->bench;
	struct pollfd pfd;
	int64_t now;

	now = bench_now_ns();
	while (c->queued < bench->messages &&
	    c->queued - c->answered < bench->window &&
	    bench_due(c, c->queued) <= now)
		bench_queue(c);
	if (c->out.off < c->out.len && bench_write(c) == -1)
		return -1;
	if (c->answered < c->stamped &&
	    now - c->progress > (int64_t)BENCH_STALL_MS * 1000000) {
		bench_fail(c, "no answer within %d s", BENCH_STALL_MS / 1000);
		return -1;
	}

	pfd.fd = c->fd;
	pfd.events = POLLIN;
	if (c->out.off < c->out.len)
		pfd.events |= POLLOUT;
	if (poll(&pfd, 1, bench_wait_ms(c, now)) == -1 && errno != EINTR) {
		bench_fail(c, "poll: %s", strerror(errno));
		return -1;
	}
	if ((pfd.revents & POLLOUT) && bench_write(c) == -1)
		return -1;
	if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && bench_read(c) == -1)
		return -1;
	return 0;
}

static int
bench_connect(struct bench_conn *c)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", c->bench->socket);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd == -1 ||
	    connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    fcntl(c->fd, F_SETFL, O_NONBLOCK) == -1) {
		bench_fail(c, "cannot connect to %s: %s", c->bench->socket,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void *
bench_run(void *arg)
{
	struct bench_conn *c = arg;
	struct bench *bench = c->bench;
	int connected;

	connected = bench_connect(c);

	/* Every connection is set up before any starts to send. */
	pthread_barrier_wait(&bench->start);
	c->started = c->progress = bench_now_ns();
	if (connected == 0)
		while (c->answered < bench->messages && bench_step(c) == 0)
			continue;

	c->finished = bench_now_ns();
	if (c->fd != -1)
		close(c->fd);
	return NULL;
}

static int
bench_compare(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static double
bench_percentile_ms(const int64_t *sorted, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(p * (double)n);
	if ((double)rank < p * (double)n)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1e6;
}

static long
bench_peak_rss_kb(long pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* Adds a connection's error counts to the totals, by code. */
static void
bench_merge_codes(struct bench_code *total, const struct bench_conn *c)
{
	int i, j;

	for (i = 0; i < BENCH_CODES && c->codes[i].name[0] != '\0'; i++) {
		for (j = 0; j < BENCH_CODES; j++) {
			if (total[j].name[0] == '\0')
				memcpy(total[j].name, c->codes[i].name,
				    sizeof(total[j].name));
			if (strcmp(total[j].name, c->codes[i].name) == 0)
				break;
		}
		total[j < BENCH_CODES ? j : BENCH_CODES].count +=
		    c->codes[i].count;
	}
	total[BENCH_CODES].count += c->codes[BENCH_CODES].count;
}

static int
bench_report(const struct bench *bench, struct bench_conn *conns)
{
	struct bench_code codes[BENCH_CODES + 1];
	size_t accepted = 0, errors = 0, answered = 0, n = 0, i, j;
	int64_t *lat, first, last = 0;
	double elapsed;
	long rss;
	int k;

	memset(codes, 0, sizeof(codes));
	snprintf(codes[BENCH_CODES].name, BENCH_CODE_LEN, "other");
	first = conns[0].started;
	for (k = 0; k < bench->connections; k++) {
		answered += conns[k].answered;
		if (conns[k].failure[0] != '\0')
			fprintf(stderr, "submit: connection %d: %s\n", k,
			    conns[k].failure);
	}
	if ((lat = calloc(answered + 1, sizeof(*lat))) == NULL)
		bench_nomem();
	for (k = 0; k < bench->connections; k++) {
		accepted += conns[k].accepted;
		errors += conns[k].errors;
		for (j = 0; j < conns[k].answered; j++)
			lat[n++] = conns[k].time[j];
		if (conns[k].started < first)
			first = conns[k].started;
		if (conns[k].finished > last)
			last = conns[k].finished;
		bench_merge_codes(codes, &conns[k]);
	}
	qsort(lat, n, sizeof(*lat), bench_compare);
	elapsed = (double)(last - first) / 1e9;

	printf("connections=%d messages=%zu accepted=%zu errors=%zu "
	    "elapsed_s=%.2f accepted_per_s=%.0f p50_ms=%.2f p99_ms=%.2f "
	    "max_ms=%.2f", bench->connections,
	    bench->messages * (size_t)bench->connections, accepted, errors,
	    elapsed, elapsed > 0 ? (double)accepted / elapsed : 0,
	    bench_percentile_ms(lat, n, 0.50),
	    bench_percentile_ms(lat, n, 0.99),
	    n > 0 ? (double)lat[n - 1] / 1e6 : 0);
	if (bench->pid > 0 && (rss = bench_peak_rss_kb(bench->pid)) >= 0)
		printf(" daemon_peak_rss_kb=%ld", rss);
	else if (bench->pid > 0)
		printf(" daemon_peak_rss_kb=unknown");
	for (i = 0; i <= BENCH_CODES; i++)
		if (codes[i].count > 0)
			printf(" error_%s=%zu", codes[i].name, codes[i].count);
	if (answered < bench->messages * (size_t)bench->connections)
		printf(" unanswered=%zu", bench->messages *
		    (size_t)bench->connections - answered);
	putchar('\n');
	free(lat);

	return errors == 0 && answered == bench->messages *
	    (size_t)bench->connections ? 0 : 1;
}

/* Parses a number in [min, max]; a whole one unless fraction is set. */
static int
bench_number(int opt, const char *s, double min, double max,
    bool fraction, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || *out < min ||
	    *out > max || (!fraction && (double)(long long)*out != *out)) {
		fprintf(stderr, "submit: -%c takes a %s from %g to %g, "
		    "not '%s'\n", opt, fraction ? "number" : "whole number",
		    min, max, s);
		return -1;
	}
	return 0;
}

/* Parses the options into bench; returns -1 on a usage error. */
static int
bench_options(struct bench *bench, int argc, char **argv, const char **to,
    const char **text)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 'T' },
		{ "text", required_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	double v = 0;
	int c, r = 0;

	while ((c = getopt_long(argc, argv, "s:c:n:w:r:p:h", opts,
	    NULL)) != -1) {
		switch (c) {
		case 's':
			bench->socket = optarg;
			break;
		case 'c':
			r = bench_number(c, optarg, 1, 4096, false, &v);
			bench->connections = (int)v;
			break;
		case 'n':
			r = bench_number(c, optarg, 1, 1e9, false, &v);
			bench->messages = (size_t)v;
			break;
		case 'w':
			r = bench_number(c, optarg, 1, 1e9, false, &v);
			bench->window = (size_t)v;
			break;
		case 'r':
			r = bench_number(c, optarg, 0, 1e9, true, &bench->rate);
			break;
		case 'p':
			r = bench_number(c, optarg, 1, INT_MAX, false, &v);
			bench->pid = (long)v;
			break;
		case 'T':
			*to = optarg;
			break;
		case 'X':
			*text = optarg;
			break;
		case 'h':
			fputs(bench_usage_text, stdout);
			exit(0);
		default:
			r = -1;
		}
		if (r == -1)
			return -1;
	}
	return optind == argc ? 0 : -1;
}

int
main(int argc, char **argv)
{
	struct bench bench = {
		.connections = 4, .messages = 25000, .window = 256
	};
	const char *to = "+27821234567", *text = "bench";
	struct bench_conn *conns;
	int k, status;

	bench.socket = getenv("SMSGW_SOCKET");
	if (bench.socket == NULL || *bench.socket == '\0')
		bench.socket = BENCH_SOCKET_DEFAULT;
	if (bench_options(&bench, argc, argv, &to, &text) == -1) {
		fputs(bench_usage_text, stderr);
		return 64;
	}
	bench_build_prefix(&bench, to, text);

	if ((conns = calloc((size_t)bench.connections, sizeof(*conns))) ==
	    NULL)
		bench_nomem();
	pthread_barrier_init(&bench.start, NULL,
	    (unsigned)bench.connections);
	for (k = 0; k < bench.connections; k++) {
		conns[k].bench = &bench;
		conns[k].index = k;
		conns[k].fd = -1;
		conns[k].end = calloc(bench.messages, sizeof(uint64_t));
		conns[k].time = calloc(bench.messages, sizeof(int64_t));
		if (conns[k].end == NULL || conns[k].time == NULL)
			bench_nomem();
		if (pthread_create(&conns[k].thread, NULL, bench_run,
		    &conns[k]) != 0) {
			fprintf(stderr, "submit: cannot start a thread\n");
			return 2;
		}
	}
	for (k = 0; k < bench.connections; k++)
		pthread_join(conns[k].thread, NULL);

	status = bench_report(&bench, conns);
	for (k = 0; k < bench.connections; k++) {
		free(conns[k].end);
		free(conns[k].time);
		free(conns[k].out.data);
		free(conns[k].in.data);
	}
	free(conns);
	free(bench.prefix);
	pthread_barrier_destroy(&bench.start);
	return status;
}
