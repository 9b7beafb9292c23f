/*
 * smsgwctl: the command-line client of smsgwd. Each command is one request
 * on the submission socket; "batch" pipes protocol lines through it.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "util.h"

#define CTL_SOCKET_DEFAULT	"/run/smsgwd/smsgwd.sock"
#define CTL_TIMEOUT_DEFAULT	10
#define CTL_TIMEOUT_MAX		86400
#define CTL_TEXT_MAX		(1024 * 1024)
#define CTL_LINE_MAX		(16 * 1024 * 1024)
#define CTL_CHUNK		65536
#define CTL_UNSENT_MAX		(1024 * 1024)

#define CTL_EXIT_FAILED		1	/* the daemon said no, or local I/O */
#define CTL_EXIT_TROUBLE	2	/* no usable answer from the daemon */

struct ctl_buf {
	char	*data;
	size_t	 off;		/* first byte not yet consumed */
	size_t	 len;		/* bytes held, counted from data */
	size_t	 scan;		/* bytes before this hold no '\n' past off */
	size_t	 cap;
};

struct ctl_conn {
	int		 fd;
	struct ctl_buf	 out;		/* request bytes not yet written */
	struct ctl_buf	 in;		/* answer bytes not yet consumed */
	bool		 out_closed;	/* the daemon reads no more */
	bool		 eof;
	int64_t		 progress;	/* when bytes last moved */
};

struct ctl {
	const char	*socket;
	int		 timeout;	/* seconds; 0 waits for ever */
	bool		 json;
};

struct ctl_batch {
	struct ctl_conn	 conn;
	struct ctl_buf	 input;		/* standard input not yet queued */
	size_t		 owed;		/* lines sent, not yet answered */
	size_t		 lineno;
	bool		 input_eof;
	bool		 all_ok;
};

struct ctl_send {
	const char	*from;
	const char	*ref;
	const char	*priority;
	long long	 valid_for;	/* 0: the daemon's default */
};

struct ctl_pair {
	const char	*key;
	yajl_val	 value;
};

typedef int (*ctl_printer)(yajl_val, const char *);

/* A command with a printer but no run function takes no arguments. */
struct ctl_command {
	const char	*name;
	int		(*run)(struct ctl *, int, char **);
	ctl_printer	 print;
};

static const char ctl_usage_text[] =
"usage: smsgwctl [-s SOCKET] [--json] [-t SECONDS] COMMAND ...\n"
"\n"
"commands:\n"
"  send [--from S] [--ref R] [--priority high|normal] [--valid-for SECONDS]\n"
"       TO [TEXT]       queue a message; TEXT from standard input if omitted\n"
"  status ID | status --ref R\n"
"                       show a message\n"
"  cancel ID            cancel a message that is still queued\n"
"  stats                show the daemon's counters\n"
"  ping                 check that the daemon answers\n"
"  inbox [--after CURSOR] [--follow]\n"
"                       print inbound messages (replies), one per line:\n"
"                       cursor, received, from, to, text\n"
"  batch                send protocol lines from standard input and print\n"
"                       each answer line\n"
"\n"
"options:\n"
"  -s, --socket SOCKET  the daemon's socket (default $SMSGW_SOCKET, else\n"
"                       " CTL_SOCKET_DEFAULT ")\n"
"  -t, --timeout SECONDS\n"
"                       how long to wait for an answer, 0 for ever "
"(default 10)\n"
"      --json           print the daemon's answer line as it came\n"
"  -h, --help           print this help\n"
"\n"
"exit status: 0 done, 1 the daemon refused, 2 no usable answer, 64 usage\n";

static char ctl_progname[] = "smsgwctl";

static void
ctl_usage(FILE *f)
{
	fputs(ctl_usage_text, f);
}

static int
ctl_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int
ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("smsgwctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	ctl_usage(stderr);
	return EX_USAGE;
}

/*
 * Answers -h with the help on standard output, any other option getopt
 * returned with the usage on standard error. Returns the exit status.
 */
static int
ctl_help_or_usage(int c)
{
	if (c == 'h') {
		ctl_usage(stdout);
		return 0;
	}
	ctl_usage(stderr);
	return EX_USAGE;
}

static void
ctl_nomem(void)
{
	fputs("smsgwctl: out of memory\n", stderr);
	exit(CTL_EXIT_FAILED);
}

/* Parses a decimal integer in [min, max], all of s. */
static int
ctl_parse_integer(const char *s, long long min, long long max,
    long long *out)
{
	char *end;
	long long v;

	if (*s < '0' || *s > '9')
		return -1;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;

	*out = v;
	return 0;
}

/* Writes untrusted text with control bytes shown as \xHH. */
static void
ctl_put_text(FILE *f, const char *s)
{
	unsigned char c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			putc(c, f);
	}
}

static size_t
ctl_buf_pending(const struct ctl_buf *b)
{
	return b->len - b->off;
}

/* Makes room for more bytes after len, moving unconsumed bytes down. */
static void
ctl_buf_reserve(struct ctl_buf *b, size_t more)
{
	size_t cap;

	if (b->off > 0 && (b->off == b->len || b->len + more > b->cap)) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->scan -= b->off;
		b->off = 0;
	}
	if (b->len + more <= b->cap)
		return;

	cap = b->cap > 0 ? b->cap : CTL_CHUNK;
	while (cap < b->len + more)
		cap *= 2;
	if ((b->data = realloc(b->data, cap)) == NULL)
		ctl_nomem();
	b->cap = cap;
}

static void
ctl_buf_append(struct ctl_buf *b, const void *data, size_t len)
{
	if (len == 0)
		return;

	ctl_buf_reserve(b, len);
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

static void
ctl_buf_drop(struct ctl_buf *b)
{
	b->off = b->len = b->scan = 0;
}

/*
 * Takes the next complete line, its '\n' replaced by a NUL. The pointer is
 * good until the buffer is next written to.
 */
static char *
ctl_buf_line(struct ctl_buf *b, size_t *len)
{
	char *line, *nl;

	if (b->scan == b->len)
		return NULL;

	nl = memchr(b->data + b->scan, '\n', b->len - b->scan);
	if (nl == NULL) {
		b->scan = b->len;
		return NULL;
	}
	line = b->data + b->off;
	*nl = '\0';
	*len = (size_t)(nl - line);
	b->off = b->scan = (size_t)(nl - b->data) + 1;
	return line;
}

static void
ctl_buf_free(struct ctl_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* Connects; a send timeout bounds the wait when the listen queue is full. */
static int
ctl_connect(const struct ctl *ctl, struct ctl_conn *conn)
{
	struct sockaddr_un sun;
	struct timeval tv = { .tv_sec = ctl->timeout };
	int fd = -1, saved;

	memset(conn, 0, sizeof(*conn));
	conn->fd = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(ctl->socket) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	memcpy(sun.sun_path, ctl->socket, strlen(ctl->socket));

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		goto fail;

	conn->fd = fd;
	conn->progress = util_mono_ms();
	return 0;

fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	fprintf(stderr, "smsgwctl: cannot connect to %s: %s\n", ctl->socket,
	    strerror(saved));
	return -1;
}

static void
ctl_conn_close(struct ctl_conn *conn)
{
	if (conn->fd != -1)
		close(conn->fd);
	conn->fd = -1;
	ctl_buf_free(&conn->out);
	ctl_buf_free(&conn->in);
}

static int
ctl_conn_write(const struct ctl *ctl, struct ctl_conn *conn)
{
	ssize_t n;

	n = send(conn->fd, conn->out.data + conn->out.off,
	    ctl_buf_pending(&conn->out), MSG_NOSIGNAL);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == -1 && (errno == EPIPE || errno == ECONNRESET)) {
		/* It may have answered before closing (an over-long line). */
		conn->out_closed = true;
		ctl_buf_drop(&conn->out);
		return 0;
	}
	if (n == -1) {
		fprintf(stderr, "smsgwctl: cannot write to %s: %s\n",
		    ctl->socket, strerror(errno));
		return -1;
	}

	conn->out.off += (size_t)n;
	conn->progress = util_mono_ms();
	return 0;
}

static int
ctl_conn_read(const struct ctl *ctl, struct ctl_conn *conn)
{
	ssize_t n;

	ctl_buf_reserve(&conn->in, CTL_CHUNK);
	n = read(conn->fd, conn->in.data + conn->in.len,
	    conn->in.cap - conn->in.len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == -1) {
		fprintf(stderr, "smsgwctl: lost the connection to %s: %s\n",
		    ctl->socket, strerror(errno));
		return -1;
	}
	if (n == 0) {
		conn->eof = true;
		return 0;
	}

	conn->in.len += (size_t)n;
	conn->progress = util_mono_ms();
	return 0;
}

/*
 * Waits for the socket, or for extra (when not -1) to be readable, and moves
 * what bytes it can on the socket. While answers are owed, the timeout
 * counts from the last movement. Returns 1 when extra is readable, 0 when
 * not, -1 on failure (reported).
 */
static int
ctl_conn_poll(const struct ctl *ctl, struct ctl_conn *conn, int extra,
    bool owed)
{
	struct pollfd pfd[2];
	int64_t wait = -1;
	short ready;

	pfd[0].fd = conn->eof ? -1 : conn->fd;
	pfd[0].events = POLLIN;
	if (ctl_buf_pending(&conn->out) > 0)
		pfd[0].events |= POLLOUT;
	pfd[0].revents = 0;
	pfd[1].fd = extra;
	pfd[1].events = POLLIN;
	pfd[1].revents = 0;

	if (owed && ctl->timeout > 0) {
		wait = conn->progress + ctl->timeout * 1000 - util_mono_ms();
		if (wait <= 0) {
			fprintf(stderr, "smsgwctl: no answer within %d s\n",
			    ctl->timeout);
			return -1;
		}
	}
	if (poll(pfd, 2, (int)wait) == -1) {
		if (errno == EINTR)
			return 0;
		fprintf(stderr, "smsgwctl: poll: %s\n", strerror(errno));
		return -1;
	}

	ready = pfd[0].revents;
	if ((ready & POLLOUT) && ctl_conn_write(ctl, conn) == -1)
		return -1;
	if ((ready & (POLLIN | POLLHUP | POLLERR)) &&
	    ctl_conn_read(ctl, conn) == -1)
		return -1;
	return (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

/* Sends one request line and returns the first answer line, or NULL. */
static char *
ctl_roundtrip(const struct ctl *ctl, const unsigned char *req, size_t len)
{
	struct ctl_conn conn;
	char *line, *answer = NULL;
	size_t linelen;

	if (ctl_connect(ctl, &conn) == -1)
		return NULL;
	ctl_buf_append(&conn.out, req, len);
	ctl_buf_append(&conn.out, "\n", 1);

	while ((line = ctl_buf_line(&conn.in, &linelen)) == NULL) {
		if (conn.eof) {
			fprintf(stderr, "smsgwctl: %s closed the connection "
			    "without an answer\n", ctl->socket);
			goto out;
		}
		if (ctl_buf_pending(&conn.in) > CTL_LINE_MAX) {
			fprintf(stderr, "smsgwctl: the answer from %s is "
			    "longer than %d bytes\n", ctl->socket,
			    CTL_LINE_MAX);
			goto out;
		}
		if (ctl_conn_poll(ctl, &conn, -1, true) == -1)
			goto out;
	}

	if ((answer = malloc(linelen + 1)) == NULL)
		ctl_nomem();
	memcpy(answer, line, linelen + 1);

out:
	ctl_conn_close(&conn);
	return answer;
}

static yajl_val
ctl_field(yajl_val obj, const char *key)
{
	size_t i;

	for (i = 0; i < obj->u.object.len; i++)
		if (strcmp(obj->u.object.keys[i], key) == 0)
			return obj->u.object.values[i];
	return NULL;
}

static const char *
ctl_field_string(yajl_val obj, const char *key)
{
	return YAJL_GET_STRING(ctl_field(obj, key));
}

static yajl_gen
ctl_request(const char *op)
{
	yajl_gen g;

	if ((g = yajl_gen_alloc(NULL)) == NULL)
		ctl_nomem();
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"op", 2);
	yajl_gen_string(g, (const unsigned char *)op, strlen(op));
	return g;
}

static void
ctl_request_string(yajl_gen g, const char *key, const char *value,
    size_t len)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_string(g, (const unsigned char *)value, len);
}

static void
ctl_request_cstring(yajl_gen g, const char *key, const char *value)
{
	if (value != NULL)
		ctl_request_string(g, key, value, strlen(value));
}

static void
ctl_request_integer(yajl_gen g, const char *key, long long value)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_integer(g, value);
}

static int
ctl_print_error(yajl_val answer)
{
	const char *error, *message;

	if ((error = ctl_field_string(answer, "error")) == NULL)
		error = "unknown_error";
	message = ctl_field_string(answer, "message");

	fputs("smsgwctl: ", stderr);
	ctl_put_text(stderr, error);
	if (message != NULL && *message != '\0') {
		fputs(": ", stderr);
		ctl_put_text(stderr, message);
	}
	fputc('\n', stderr);
	return CTL_EXIT_FAILED;
}

static int
ctl_invalid_answer(const char *what)
{
	fprintf(stderr, "smsgwctl: invalid answer from the daemon: %s\n",
	    what);
	return CTL_EXIT_TROUBLE;
}

/*
 * Sends the request built in g (and frees g), then prints the answer: the
 * raw line with --json, the daemon's error, or what print makes of it.
 * Returns the exit status.
 */
static int
ctl_run(const struct ctl *ctl, yajl_gen g, ctl_printer print,
    const char *arg)
{
	const unsigned char *req;
	char *line;
	yajl_val answer = NULL, ok;
	size_t len;
	int status;

	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &req, &len);
	line = ctl_roundtrip(ctl, req, len);
	yajl_gen_free(g);
	if (line == NULL)
		return CTL_EXIT_TROUBLE;

	answer = yajl_tree_parse(line, NULL, 0);
	ok = YAJL_IS_OBJECT(answer) ? ctl_field(answer, "ok") : NULL;
	if (ctl->json)
		puts(line);
	if (!YAJL_IS_TRUE(ok) && !YAJL_IS_FALSE(ok))
		status = ctl_invalid_answer("no \"ok\" in a JSON object");
	else if (ctl->json)
		status = YAJL_IS_TRUE(ok) ? 0 : CTL_EXIT_FAILED;
	else if (YAJL_IS_FALSE(ok))
		status = ctl_print_error(answer);
	else
		status = print(answer, arg);

	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "smsgwctl: standard output: %s\n",
		    strerror(errno));
		status = CTL_EXIT_FAILED;
	}
	yajl_tree_free(answer);
	free(line);
	return status;
}

static void
ctl_print_scalar(yajl_val v)
{
	if (YAJL_IS_STRING(v))
		ctl_put_text(stdout, YAJL_GET_STRING(v));
	else if (YAJL_IS_NUMBER(v))
		fputs(YAJL_GET_NUMBER(v), stdout);
	else if (YAJL_IS_TRUE(v))
		fputs("true", stdout);
	else if (YAJL_IS_FALSE(v))
		fputs("false", stdout);
	else if (YAJL_IS_OBJECT(v))
		fputs("{}", stdout);
	else if (YAJL_IS_ARRAY(v))
		fputs("[]", stdout);
	else
		fputs("-", stdout);
}

static char *
ctl_join(const char *prefix, const char *name)
{
	char *s;

	if (prefix == NULL)
		s = strdup(name);
	else if (asprintf(&s, "%s.%s", prefix, name) == -1)
		s = NULL;
	if (s == NULL)
		ctl_nomem();
	return s;
}

/* Prints "key: value", or one line per leaf of an object or array. */
static void
ctl_print_flat(const char *key, yajl_val v)
{
	char index[32], *sub;
	size_t i;

	if (YAJL_IS_OBJECT(v) && v->u.object.len > 0) {
		for (i = 0; i < v->u.object.len; i++) {
			sub = ctl_join(key, v->u.object.keys[i]);
			ctl_print_flat(sub, v->u.object.values[i]);
			free(sub);
		}
		return;
	}
	if (YAJL_IS_ARRAY(v) && v->u.array.len > 0) {
		for (i = 0; i < v->u.array.len; i++) {
			snprintf(index, sizeof(index), "%zu", i);
			sub = ctl_join(key, index);
			ctl_print_flat(sub, v->u.array.values[i]);
			free(sub);
		}
		return;
	}

	ctl_put_text(stdout, key);
	fputs(": ", stdout);
	ctl_print_scalar(v);
	putchar('\n');
}

static bool
ctl_is_envelope(const char *key)
{
	return strcmp(key, "ok") == 0 || strcmp(key, "req") == 0;
}

static int
ctl_print_send(yajl_val answer, const char *arg)
{
	const char *id;

	(void)arg;
	if ((id = ctl_field_string(answer, "id")) == NULL)
		return ctl_invalid_answer("no message id");

	ctl_put_text(stdout, id);
	putchar('\n');
	if (YAJL_IS_TRUE(ctl_field(answer, "duplicate")))
		fputs("smsgwctl: duplicate of an earlier message with that "
		    "ref\n", stderr);
	return 0;
}

static int
ctl_pair_compare(const void *a, const void *b)
{
	const struct ctl_pair *pa = a, *pb = b;

	return strcmp(pa->key, pb->key);
}

/* Prints the known fields in their usual order, then the rest sorted. */
static int
ctl_print_status(yajl_val answer, const char *arg)
{
	static const char *known[] = {
		"id", "ref", "to", "state", "attempts", "upstream_id",
		"last_code", "created", "updated", NULL
	};
	struct ctl_pair *rest;
	const char *key;
	yajl_val v;
	size_t i, j, n = 0;

	(void)arg;
	for (i = 0; known[i] != NULL; i++)
		if ((v = ctl_field(answer, known[i])) != NULL)
			ctl_print_flat(known[i], v);

	rest = calloc(answer->u.object.len + 1, sizeof(*rest));
	if (rest == NULL)
		ctl_nomem();
	for (i = 0; i < answer->u.object.len; i++) {
		key = answer->u.object.keys[i];
		for (j = 0; known[j] != NULL; j++)
			if (strcmp(key, known[j]) == 0)
				break;
		if (known[j] == NULL && !ctl_is_envelope(key)) {
			rest[n].key = key;
			rest[n++].value = answer->u.object.values[i];
		}
	}
	qsort(rest, n, sizeof(*rest), ctl_pair_compare);
	for (i = 0; i < n; i++)
		ctl_print_flat(rest[i].key, rest[i].value);
	free(rest);
	return 0;
}

static int
ctl_print_cancel(yajl_val answer, const char *arg)
{
	const char *id;

	if ((id = ctl_field_string(answer, "id")) == NULL)
		id = arg;
	ctl_put_text(stdout, id);
	fputs(" cancelled\n", stdout);
	return 0;
}

static int
ctl_print_stats(yajl_val answer, const char *arg)
{
	size_t i;

	(void)arg;
	for (i = 0; i < answer->u.object.len; i++)
		if (!ctl_is_envelope(answer->u.object.keys[i]))
			ctl_print_flat(answer->u.object.keys[i],
			    answer->u.object.values[i]);
	return 0;
}

static int
ctl_print_ping(yajl_val answer, const char *arg)
{
	(void)answer;
	(void)arg;
	puts("ok");
	return 0;
}

/*
 * Parses the options of a command that has none but --help. Returns -1
 * to go on with the arguments from optind, else the exit status.
 */
static int
ctl_plain_options(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	if ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1)
		return ctl_help_or_usage(c);
	return -1;
}

/* Reads the text of a message from standard input, up to CTL_TEXT_MAX. */
static int
ctl_read_text(struct ctl_buf *text)
{
	ssize_t n;

	for (;;) {
		ctl_buf_reserve(text, CTL_CHUNK);
		n = read(STDIN_FILENO, text->data + text->len,
		    text->cap - text->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "smsgwctl: cannot read the text from "
			    "standard input: %s\n", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		text->len += (size_t)n;
		if (text->len > CTL_TEXT_MAX + 1)
			break;
	}

	if (text->len > 0 && text->data[text->len - 1] == '\n')
		text->len--;
	if (text->len > CTL_TEXT_MAX) {
		fprintf(stderr, "smsgwctl: the text on standard input is "
		    "longer than %d bytes\n", CTL_TEXT_MAX);
		return -1;
	}
	return 0;
}

/*
 * Parses the options of send into args; returns -1 to go on with the
 * arguments from optind, else the exit status.
 */
static int
ctl_send_options(int argc, char **argv, struct ctl_send *args)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "ref", required_argument, NULL, 'r' },
		{ "priority", required_argument, NULL, 'p' },
		{ "valid-for", required_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			args->from = optarg;
			break;
		case 'r':
			args->ref = optarg;
			break;
		case 'p':
			if (strcmp(optarg, "high") != 0 &&
			    strcmp(optarg, "normal") != 0)
				return ctl_usage_error("send: --priority is "
				    "high or normal, not '%s'", optarg);
			args->priority = optarg;
			break;
		case 'v':
			if (ctl_parse_integer(optarg, 1, LLONG_MAX,
			    &args->valid_for) == -1)
				return ctl_usage_error("send: --valid-for "
				    "takes a positive number of seconds, "
				    "not '%s'", optarg);
			break;
		default:
			return ctl_help_or_usage(c);
		}
	}
	return -1;
}

static int
ctl_cmd_send(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_send args = { 0 };
	struct ctl_buf text = { 0 };
	yajl_gen g;
	int status;

	if ((status = ctl_send_options(argc, argv, &args)) != -1)
		return status;
	if (argc - optind < 1 || argc - optind > 2)
		return ctl_usage_error("send takes TO and an optional TEXT");

	if (argc - optind == 2)
		ctl_buf_append(&text, argv[optind + 1],
		    strlen(argv[optind + 1]));
	else if (ctl_read_text(&text) == -1) {
		ctl_buf_free(&text);
		return CTL_EXIT_FAILED;
	}

	g = ctl_request("send");
	ctl_request_cstring(g, "to", argv[optind]);
	ctl_request_string(g, "text", text.len > 0 ? text.data : "",
	    text.len);
	ctl_request_cstring(g, "from", args.from);
	ctl_request_cstring(g, "ref", args.ref);
	ctl_request_cstring(g, "priority", args.priority);
	if (args.valid_for > 0)
		ctl_request_integer(g, "valid_for", args.valid_for);
	ctl_buf_free(&text);

	return ctl_run(ctl, g, ctl_print_send, NULL);
}

static int
ctl_cmd_status(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ref", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *ref = NULL;
	yajl_gen g;
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			ref = optarg;
			break;
		default:
			return ctl_help_or_usage(c);
		}
	}
	if (argc - optind != (ref == NULL ? 1 : 0))
		return ctl_usage_error("status takes an ID or --ref R");

	g = ctl_request("status");
	if (ref != NULL)
		ctl_request_cstring(g, "ref", ref);
	else
		ctl_request_cstring(g, "id", argv[optind]);
	return ctl_run(ctl, g, ctl_print_status, NULL);
}

static int
ctl_cmd_cancel(struct ctl *ctl, int argc, char **argv)
{
	yajl_gen g;
	int status;

	if ((status = ctl_plain_options(argc, argv)) != -1)
		return status;
	if (argc - optind != 1)
		return ctl_usage_error("cancel takes an ID");

	g = ctl_request("cancel");
	ctl_request_cstring(g, "id", argv[optind]);
	return ctl_run(ctl, g, ctl_print_cancel, argv[optind]);
}

/* A command without arguments: the request is its op alone. */
static int
ctl_cmd_plain(struct ctl *ctl, const struct ctl_command *cmd, int argc,
    char **argv)
{
	int status;

	if ((status = ctl_plain_options(argc, argv)) != -1)
		return status;
	if (argc != optind)
		return ctl_usage_error("%s takes no arguments", cmd->name);

	return ctl_run(ctl, ctl_request(cmd->name), cmd->print, NULL);
}

/* The cursor of the last inbound message printed. */
static long long ctl_inbox_next;
/* How many inbound messages the last answer held. */
static size_t ctl_inbox_count;

static int
ctl_print_inbox(yajl_val answer, const char *arg)
{
	yajl_val list, m, next;
	const char *keys[] = { "received", "from", "to", "text" };
	const char *v;
	size_t i, k;

	(void)arg;
	list = ctl_field(answer, "messages");
	next = ctl_field(answer, "next");
	if (!YAJL_IS_ARRAY(list))
		return ctl_invalid_answer("no \"messages\" array");
	ctl_inbox_count = list->u.array.len;
	if (YAJL_IS_INTEGER(next))
		ctl_inbox_next = YAJL_GET_INTEGER(next);
	for (i = 0; i < list->u.array.len; i++) {
		m = list->u.array.values[i];
		if (YAJL_IS_INTEGER(ctl_field(m, "id")))
			printf("%lld", YAJL_GET_INTEGER(ctl_field(m, "id")));
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			v = ctl_field_string(m, keys[k]);
			putchar('\t');
			ctl_put_text(stdout, v != NULL ? v : "");
		}
		putchar('\n');
	}
	return 0;
}

static int
ctl_cmd_inbox(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "after", required_argument, NULL, 'a' },
		{ "follow", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	long long after = 0;
	bool follow = false;
	yajl_gen g;
	int c, status;

	while ((c = getopt_long(argc, argv, "+a:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (ctl_parse_integer(optarg, 0, LLONG_MAX, &after) == -1)
				return ctl_usage_error("bad cursor: %s", optarg);
			break;
		case 'f':
			follow = true;
			break;
		default:
			return ctl_help_or_usage(c);
		}
	}
	if (argc != optind)
		return ctl_usage_error("inbox takes no arguments");

	/* Following polls: new messages show within a second. */
	ctl_inbox_next = after;
	do {
		g = ctl_request("inbox");
		ctl_request_integer(g, "after", ctl_inbox_next);
		ctl_inbox_count = 0;
		status = ctl_run(ctl, g, ctl_print_inbox, NULL);
		if (status != 0)
			return status;
		if (follow && ctl_inbox_count == 0)
			sleep(1);
	} while (follow);
	return 0;
}

static bool
ctl_is_blank(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
			return false;
	return true;
}

/* Queues one line of standard input for the daemon, unless it is blank. */
static void
ctl_batch_queue(struct ctl_batch *b, const char *line, size_t len)
{
	b->lineno++;
	if (ctl_is_blank(line, len))
		return;

	/* The wait for this answer starts now, not at the last answer. */
	if (b->owed == 0)
		b->conn.progress = util_mono_ms();
	ctl_buf_append(&b->conn.out, line, len);
	ctl_buf_append(&b->conn.out, "\n", 1);
	b->owed++;
}

static int
ctl_batch_input(struct ctl_batch *b)
{
	struct ctl_buf *in = &b->input;
	char *line;
	size_t len;
	ssize_t n;

	ctl_buf_reserve(in, CTL_CHUNK);
	n = read(STDIN_FILENO, in->data + in->len, in->cap - in->len);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n == -1) {
		fprintf(stderr, "smsgwctl: standard input: %s\n",
		    strerror(errno));
		return -1;
	}

	in->len += (size_t)n;
	while ((line = ctl_buf_line(in, &len)) != NULL)
		ctl_batch_queue(b, line, len);
	if (n == 0) {
		b->input_eof = true;
		if (ctl_buf_pending(in) > 0)
			ctl_batch_queue(b, in->data + in->off,
			    ctl_buf_pending(in));
		ctl_buf_drop(in);
	} else if (ctl_buf_pending(in) > CTL_LINE_MAX) {
		fprintf(stderr, "smsgwctl: line %zu of standard input is "
		    "longer than %d bytes\n", b->lineno + 1, CTL_LINE_MAX);
		return -1;
	}
	return 0;
}

static bool
ctl_answer_ok(const char *line)
{
	static const char *path[] = { "ok", NULL };
	yajl_val answer;
	bool ok;

	answer = yajl_tree_parse(line, NULL, 0);
	ok = yajl_tree_get(answer, path, yajl_t_true) != NULL;
	yajl_tree_free(answer);
	return ok;
}

/* Prints every complete answer line, in order. */
static int
ctl_batch_answers(const struct ctl *ctl, struct ctl_batch *b)
{
	char *line;
	size_t len;

	while ((line = ctl_buf_line(&b->conn.in, &len)) != NULL) {
		if (b->owed == 0) {
			fprintf(stderr, "smsgwctl: %s answered more lines "
			    "than it was sent\n", ctl->socket);
			return -1;
		}
		b->owed--;
		if (!ctl_answer_ok(line))
			b->all_ok = false;
		fwrite(line, 1, len, stdout);
		putchar('\n');
	}

	if (fflush(stdout) == EOF) {
		fprintf(stderr, "smsgwctl: standard output: %s\n",
		    strerror(errno));
		return -1;
	}
	if (ctl_buf_pending(&b->conn.in) > CTL_LINE_MAX) {
		fprintf(stderr, "smsgwctl: an answer from %s is longer than "
		    "%d bytes\n", ctl->socket, CTL_LINE_MAX);
		return -1;
	}
	return 0;
}

/*
 * Streams lines from standard input to the daemon while reading its
 * answers, so that neither side can fill up and block the other. Input is
 * read only while little is left unsent, which bounds the memory used.
 */
static int
ctl_batch_loop(const struct ctl *ctl, struct ctl_batch *b)
{
	int in, ready;

	while (!b->input_eof || b->owed > 0) {
		if (b->conn.eof) {
			fprintf(stderr, "smsgwctl: %s closed the connection "
			    "with %zu requests unanswered\n", ctl->socket,
			    b->owed);
			return -1;
		}

		in = -1;
		if (!b->input_eof && !b->conn.out_closed &&
		    ctl_buf_pending(&b->conn.out) < CTL_UNSENT_MAX)
			in = STDIN_FILENO;
		ready = ctl_conn_poll(ctl, &b->conn, in, b->owed > 0);
		if (ready == -1 || ctl_batch_answers(ctl, b) == -1)
			return -1;
		if (ready == 1 && ctl_batch_input(b) == -1)
			return -1;
	}
	return 0;
}

static int
ctl_cmd_batch(struct ctl *ctl, int argc, char **argv)
{
	struct ctl_batch b;
	int status;

	if ((status = ctl_plain_options(argc, argv)) != -1)
		return status;
	if (argc != optind)
		return ctl_usage_error("batch takes no arguments");

	memset(&b, 0, sizeof(b));
	b.all_ok = true;
	if (ctl_connect(ctl, &b.conn) == -1)
		return CTL_EXIT_TROUBLE;

	if (ctl_batch_loop(ctl, &b) == -1)
		status = CTL_EXIT_TROUBLE;
	else
		status = b.all_ok ? 0 : CTL_EXIT_FAILED;
	ctl_conn_close(&b.conn);
	ctl_buf_free(&b.input);
	return status;
}

static const struct ctl_command ctl_commands[] = {
	{ "send", ctl_cmd_send, NULL },
	{ "status", ctl_cmd_status, NULL },
	{ "cancel", ctl_cmd_cancel, NULL },
	{ "stats", NULL, ctl_print_stats },
	{ "ping", NULL, ctl_print_ping },
	{ "inbox", ctl_cmd_inbox, NULL },
	{ "batch", ctl_cmd_batch, NULL },
	{ NULL, NULL, NULL }
};

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const struct ctl_command *cmd;
	struct ctl ctl;
	long long timeout;
	int c;

	ctl.socket = getenv("SMSGW_SOCKET");
	if (ctl.socket == NULL || *ctl.socket == '\0')
		ctl.socket = CTL_SOCKET_DEFAULT;
	ctl.timeout = CTL_TIMEOUT_DEFAULT;
	ctl.json = false;

	while ((c = getopt_long(argc, argv, "+s:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctl.socket = optarg;
			break;
		case 't':
			if (ctl_parse_integer(optarg, 0, CTL_TIMEOUT_MAX,
			    &timeout) == -1)
				return ctl_usage_error("-t takes 0 to %d "
				    "seconds, not '%s'", CTL_TIMEOUT_MAX,
				    optarg);
			ctl.timeout = (int)timeout;
			break;
		case 'j':
			ctl.json = true;
			break;
		default:
			return ctl_help_or_usage(c);
		}
	}
	if (optind >= argc)
		return ctl_usage_error("no command given");

	for (cmd = ctl_commands; cmd->name != NULL; cmd++)
		if (strcmp(cmd->name, argv[optind]) == 0)
			break;
	if (cmd->name == NULL)
		return ctl_usage_error("unknown command '%s'", argv[optind]);

	/* Each command parses its own options; getopt restarts at 0. */
	argc -= optind;
	argv += optind;
	argv[0] = ctl_progname;
	optind = 0;
	if (cmd->run == NULL)
		return ctl_cmd_plain(&ctl, cmd, argc, argv);
	return cmd->run(&ctl, argc, argv);
}
