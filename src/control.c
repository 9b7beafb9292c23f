/*
 * The control socket: a Unix stream socket speaking JSON Lines. Every
 * request gets a slot in its connection's list; answers leave in slot
 * order, whenever each is ready. A connection is freed only once it has
 * no slot left, so a late answer never finds it gone.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "control.h"
#include "log.h"
#include "protocol.h"

/* Above this much unsent output a connection is not read from. */
#define CONTROL_OUTPUT_HIGH	(1024 * 1024)
#define CONTROL_OUTPUT_LOW	(256 * 1024)
/* How long accepting pauses when the process runs out of descriptors. */
#define CONTROL_ACCEPT_PAUSE_MS	200

struct control_slot {
	TAILQ_ENTRY(control_slot)	 entry;
	struct control_conn		*conn;
	int				 done;
	char				*line;
	size_t				 len;
};

TAILQ_HEAD(control_slots, control_slot);

struct control_conn {
	TAILQ_ENTRY(control_conn)	 entry;
	struct control			*control;
	struct bufferevent		*bev;	/* NULL once the peer is gone */
	uint64_t			 serial;
	struct control_slots		 slots;
	size_t				 pending;	/* slots not yet answered */
	int				 paused;	/* reading stopped */
	int				 closing;	/* close once flushed */
};

TAILQ_HEAD(control_conns, control_conn);

struct control {
	struct event_base	*base;
	struct evconnlistener	*listener;
	struct event		*resume;	/* re-enables accepting */
	char			*path;		/* unlinked at exit, if ours */
	dev_t			 dev;
	ino_t			 ino;
	struct control_conns	 conns;
	size_t			 nconns;
	uint64_t		 serial;
	size_t			 max_line;
	size_t			 max_connections;
	size_t			 max_pending;
	struct protocol_limits	 limits;
	struct protocol_reply	*reply;
	control_request_cb	 cb;
	void			*arg;
};

static void	control_conn_read(struct control_conn *);
static void	control_conn_check(struct control_conn *);

static void
control_conn_free(struct control_conn *c)
{
	struct control *ctl = c->control;
	struct control_slot *s;

	while ((s = TAILQ_FIRST(&c->slots)) != NULL) {
		TAILQ_REMOVE(&c->slots, s, entry);
		free(s->line);
		free(s);
	}
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	TAILQ_REMOVE(&ctl->conns, c, entry);
	ctl->nconns--;
	free(c);
}

/*
 * The peer is gone or the connection must end: close the socket now, but
 * keep the connection while the handler still holds some of its slots.
 */
static void
control_conn_drop(struct control_conn *c, const char *why)
{
	struct control_slot *s, *next;

	log_info("control disconnect conn=%llu reason=%s pending=%zu",
	    (unsigned long long)c->serial, why, c->pending);

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}

	/* Answered slots only wait for the socket; there is none now. */
	for (s = TAILQ_FIRST(&c->slots); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->done) {
			TAILQ_REMOVE(&c->slots, s, entry);
			free(s->line);
			free(s);
		}
	}
	if (TAILQ_EMPTY(&c->slots))
		control_conn_free(c);
}

static void
control_conn_flush(struct control_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	struct control_slot *s;

	while ((s = TAILQ_FIRST(&c->slots)) != NULL && s->done) {
		TAILQ_REMOVE(&c->slots, s, entry);
		evbuffer_add(out, s->line, s->len);
		free(s->line);
		free(s);
	}
}

static struct control_slot *
control_slot_new(struct control_conn *c)
{
	struct control_slot *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->conn = c;
	TAILQ_INSERT_TAIL(&c->slots, s, entry);
	c->pending++;
	return s;
}

void
control_reply(struct control_slot *s, const char *line, size_t len)
{
	struct control_conn *c = s->conn;

	c->pending--;
	if (c->bev == NULL) {
		TAILQ_REMOVE(&c->slots, s, entry);
		free(s);
		if (TAILQ_EMPTY(&c->slots))
			control_conn_free(c);
		return;
	}

	/* The first slot goes straight out; later ones wait their turn. */
	if (s == TAILQ_FIRST(&c->slots)) {
		TAILQ_REMOVE(&c->slots, s, entry);
		free(s);
		evbuffer_add(bufferevent_get_output(c->bev), line, len);
		control_conn_flush(c);
	} else {
		if ((s->line = malloc(len)) != NULL) {
			memcpy(s->line, line, len);
			s->len = len;
		}
		s->done = 1;
	}
	control_conn_check(c);
}

static void
control_reply_error(struct control_conn *c, const struct protocol_request *rq,
    const char *code, const char *message)
{
	struct control_slot *s;
	const char *line;
	size_t len;

	if ((s = control_slot_new(c)) == NULL) {
		control_conn_drop(c, "out-of-memory");
		return;
	}
	line = protocol_reply_error(c->control->reply, rq, code, message, &len);
	control_reply(s, line, len);
}

static int
control_conn_busy(struct control_conn *c)
{
	return c->pending >= c->control->max_pending ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) >=
	    CONTROL_OUTPUT_HIGH;
}

/*
 * Decides whether the connection is read from, and ends it once a
 * closing connection has nothing left to write.
 */
static void
control_conn_check(struct control_conn *c)
{
	if (c->bev == NULL)
		return;

	if (c->closing) {
		if (TAILQ_EMPTY(&c->slots) &&
		    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			control_conn_drop(c, "closed");
		return;
	}

	if (!c->paused && control_conn_busy(c)) {
		c->paused = 1;
		bufferevent_disable(c->bev, EV_READ);
		log_debug("control backpressure conn=%llu pending=%zu",
		    (unsigned long long)c->serial, c->pending);
	} else if (c->paused && c->pending < c->control->max_pending / 2 + 1 &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) <
	    CONTROL_OUTPUT_LOW) {
		c->paused = 0;
		bufferevent_enable(c->bev, EV_READ);

		/* Lines read before the pause are still waiting. */
		control_conn_read(c);
	}
}

static void
control_conn_line(struct control_conn *c, const char *line, size_t len)
{
	struct control *ctl = c->control;
	struct protocol_request *rq;
	struct protocol_error e;
	struct control_slot *s;

	if (len > 0 && line[len - 1] == '\r')
		len--;

	if ((rq = malloc(sizeof(*rq))) == NULL) {
		control_conn_drop(c, "out-of-memory");
		return;
	}
	if (len == 0) {
		memset(rq, 0, sizeof(*rq));
		control_reply_error(c, NULL, "bad_request", "empty line");
		free(rq);
		return;
	}
	if (protocol_parse(line, len, &ctl->limits, rq, &e) == -1) {
		log_debug("control bad-request conn=%llu error=%s",
		    (unsigned long long)c->serial, e.code);
		control_reply_error(c, rq, e.code, e.message);
		protocol_request_clear(rq);
		free(rq);
		return;
	}
	if ((s = control_slot_new(c)) == NULL) {
		protocol_request_clear(rq);
		free(rq);
		control_conn_drop(c, "out-of-memory");
		return;
	}
	ctl->cb(ctl->arg, s, rq);
}

/* Reads whole lines while the connection may be read from. */
static void
control_conn_read(struct control_conn *c)
{
	struct control *ctl = c->control;
	struct evbuffer *in;
	struct evbuffer_ptr p;
	char msg[80];
	size_t len;
	char *line;

	while (c->bev != NULL && !c->paused && !c->closing) {
		in = bufferevent_get_input(c->bev);
		p = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (p.pos == -1) {
			if (evbuffer_get_length(in) <= ctl->max_line)
				return;
			len = evbuffer_get_length(in);
		} else
			len = (size_t)p.pos;

		if (len > ctl->max_line) {
			snprintf(msg, sizeof(msg), "line longer than %zu bytes",
			    ctl->max_line);
			log_warn("control line-too-long conn=%llu max_line=%zu",
			    (unsigned long long)c->serial, ctl->max_line);
			control_reply_error(c, NULL, "bad_request", msg);
			if (c->bev == NULL)
				return;
			c->closing = 1;
			bufferevent_disable(c->bev, EV_READ);
			control_conn_check(c);
			return;
		}

		line = (char *)evbuffer_pullup(in, (ev_ssize_t)len + 1);
		control_conn_line(c, line, len);
		if (c->bev != NULL)
			evbuffer_drain(bufferevent_get_input(c->bev), len + 1);
		if (c->bev != NULL)
			control_conn_check(c);
	}
}

static void
control_conn_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	control_conn_read(arg);
}

static void
control_conn_writecb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	control_conn_check(arg);
}

static void
control_conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;

	if (what & BEV_EVENT_ERROR) {
		control_conn_drop(c, "error");
		return;
	}
	if (!(what & BEV_EVENT_EOF))
		return;

	/*
	 * The peer stopped writing but may still read: answer what it sent,
	 * a last line without its newline included, then close.
	 */
	c->paused = 0;
	control_conn_read(c);
	if (c->bev == NULL)
		return;
	len = evbuffer_get_length(in);
	if (len > 0 && !c->closing && len <= c->control->max_line) {
		evbuffer_add(in, "\n", 1);
		control_conn_read(c);
		if (c->bev == NULL)
			return;
	}
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	control_conn_check(c);
}

static void
control_refuse(evutil_socket_t fd, const struct control *ctl)
{
	char line[160];
	int n;

	n = snprintf(line, sizeof(line), "{\"ok\":false,"
	    "\"error\":\"too_many_connections\",\"message\":"
	    "\"the daemon serves at most %zu connections\"}\n",
	    ctl->max_connections);

	/* A fresh socket's buffer takes one short line; never wait for it. */
	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("control refuse-write error=%s", strerror(errno));
	evutil_closesocket(fd);
}

static void
control_acceptcb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct control_conn *c;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);

	(void)l;
	(void)sa;
	(void)salen;

	if (ctl->nconns >= ctl->max_connections) {
		log_warn("control refused reason=too-many-connections "
		    "connections=%zu", ctl->nconns);
		control_refuse(fd, ctl);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->bev = bufferevent_socket_new(ctl->base, fd,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->bev == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->control = ctl;
	c->serial = ++ctl->serial;
	TAILQ_INIT(&c->slots);
	TAILQ_INSERT_TAIL(&ctl->conns, c, entry);
	ctl->nconns++;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == 0)
		log_info("control connect conn=%llu uid=%u pid=%d",
		    (unsigned long long)c->serial, (unsigned)cred.uid,
		    (int)cred.pid);
	else
		log_info("control connect conn=%llu",
		    (unsigned long long)c->serial);

	bufferevent_setcb(c->bev, control_conn_readcb, control_conn_writecb,
	    control_conn_eventcb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, ctl->max_line + 1);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONTROL_OUTPUT_LOW, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
control_resumecb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;

	(void)fd;
	(void)what;
	if (ctl->listener != NULL)
		evconnlistener_enable(ctl->listener);
}

static void
control_errorcb(struct evconnlistener *l, void *arg)
{
	struct control *ctl = arg;
	struct timeval tv = { 0, CONTROL_ACCEPT_PAUSE_MS * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	/*
	 * Out of descriptors the listening socket stays readable: pause
	 * instead of spinning, and try again shortly.
	 */
	log_warn("control accept-failed error=%s connections=%zu "
	    "pause_ms=%d", strerror(err), ctl->nconns,
	    CONTROL_ACCEPT_PAUSE_MS);
	evconnlistener_disable(l);
	event_add(ctl->resume, &tv);
}

/* Removes a socket file that no daemon answers on; refuses a live one. */
static int
control_claim_path(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "another daemon answers on %s", path);
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale socket %s: %s",
		    path, strerror(errno));
		return -1;
	}
	log_notice("control stale-socket-removed path=%s", path);
	return 0;
}

static int
control_bind(struct control *ctl, const struct config *cfg, char *err,
    size_t errlen)
{
	struct sockaddr_un sun;
	struct group *gr;
	struct stat st;
	mode_t mask;
	int fd, rc;

	if (strlen(cfg->socket.path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s",
		    cfg->socket.path);
		return -1;
	}
	if (control_claim_path(cfg->socket.path, err, errlen) == -1)
		return -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, cfg->socket.path, sizeof(sun.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}

	/* Nobody may connect before the mode and group are right. */
	mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(mask);
	if (rc == -1) {
		snprintf(err, errlen, "bind %s: %s", cfg->socket.path,
		    strerror(errno));
		goto fail;
	}
	ctl->path = strdup(cfg->socket.path);
	if (stat(cfg->socket.path, &st) == 0) {
		ctl->dev = st.st_dev;
		ctl->ino = st.st_ino;
	}

	if (cfg->socket.group[0] != '\0') {
		if ((gr = getgrnam(cfg->socket.group)) == NULL) {
			snprintf(err, errlen, "unknown group %s",
			    cfg->socket.group);
			goto fail;
		}
		if (chown(cfg->socket.path, (uid_t)-1, gr->gr_gid) == -1) {
			snprintf(err, errlen, "chown %s: %s", cfg->socket.path,
			    strerror(errno));
			goto fail;
		}
	}
	if (chmod(cfg->socket.path, (mode_t)cfg->socket.mode) == -1) {
		snprintf(err, errlen, "chmod %s: %s", cfg->socket.path,
		    strerror(errno));
		goto fail;
	}
	if (listen(fd, SOMAXCONN) == -1) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		goto fail;
	}
	return fd;

fail:
	close(fd);
	if (ctl->path != NULL) {
		unlink(ctl->path);
		free(ctl->path);
		ctl->path = NULL;
	}
	return -1;
}

struct control *
control_new(struct event_base *base, const struct config *cfg,
    const struct protocol_limits *limits, int listen_fd,
    control_request_cb cb, void *arg, char *err, size_t errlen)
{
	struct control *ctl;
	int fd = listen_fd;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->base = base;
	ctl->cb = cb;
	ctl->arg = arg;
	TAILQ_INIT(&ctl->conns);
	control_configure(ctl, cfg, limits);

	if ((ctl->reply = protocol_reply_new()) == NULL ||
	    (ctl->resume = evtimer_new(base, control_resumecb, ctl)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (fd == -1 && (fd = control_bind(ctl, cfg, err, errlen)) == -1)
		goto fail;
	evutil_make_socket_nonblocking(fd);
	ctl->listener = evconnlistener_new(base, control_acceptcb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (ctl->listener == NULL) {
		snprintf(err, errlen, "cannot listen on the control socket");
		close(fd);
		goto fail;
	}
	evconnlistener_set_error_cb(ctl->listener, control_errorcb);
	return ctl;

fail:
	control_free(ctl);
	return NULL;
}

void
control_configure(struct control *ctl, const struct config *cfg,
    const struct protocol_limits *limits)
{
	ctl->max_line = (size_t)cfg->socket.max_line;
	ctl->max_connections = (size_t)cfg->socket.max_connections;
	ctl->max_pending = (size_t)cfg->socket.max_pending;
	ctl->limits = *limits;
}

void
control_stop(struct control *ctl)
{
	struct stat st;

	if (ctl->listener == NULL)
		return;
	evconnlistener_free(ctl->listener);
	ctl->listener = NULL;

	/* Remove the socket file only if it is still the one we made. */
	if (ctl->path != NULL && stat(ctl->path, &st) == 0 &&
	    st.st_dev == ctl->dev && st.st_ino == ctl->ino)
		unlink(ctl->path);
}

void
control_free(struct control *ctl)
{
	struct control_conn *c;

	if (ctl == NULL)
		return;
	control_stop(ctl);
	while ((c = TAILQ_FIRST(&ctl->conns)) != NULL)
		control_conn_free(c);
	if (ctl->resume != NULL)
		event_free(ctl->resume);
	protocol_reply_free(ctl->reply);
	free(ctl->path);
	free(ctl);
}
