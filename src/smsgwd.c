/*
 * smsgwd: the SMS gateway daemon. Parses its options, loads the
 * configuration, wires the modules together and runs the event loop; tells
 * the service manager how it is doing, reloads on SIGHUP and drains on
 * SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "control.h"
#include "dispatch.h"
#include "dlr.h"
#include "gateway.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "service.h"
#include "store.h"
#include "util.h"

#ifndef SMSGW_SYSCONFDIR
#define SMSGW_SYSCONFDIR	"/etc"
#endif
#define SMSGWD_CONFIG		SMSGW_SYSCONFDIR "/smsgwd/smsgwd.conf"
/* How long a stopping daemon goes on answering its open connections. */
#define SMSGWD_LINGER_MS	200
/* How often shutdown looks whether the requests in flight are done. */
#define SMSGWD_DRAIN_POLL_MS	20
/* The longest gap between two STATUS= notifications, in seconds. */
#define SMSGWD_STATUS_MAX_S	5
/* What the service manager may wait beyond shutdown_timeout, in seconds. */
#define SMSGWD_STOP_SLACK_S	10

struct smsgwd {
	struct event_base	*base;
	struct config		*cfg;
	struct store		*store;
	struct gateway		*gateway;
	struct control		*control;
	struct dispatch		*dispatch;
	struct dlr		*dlr;
	struct metrics		*metrics;
	struct event		*drain;
	int64_t			 drain_deadline;
	int64_t			 linger_until;
	struct event		*sigterm;
	struct event		*sigint;
	struct event		*sighup;
	struct event		*watchdog;
	struct event		*status;
	int			 listen_fd;	/* passed by the manager, or -1 */
	int			 drop;		/* become uid and gid */
	uid_t			 uid;
	gid_t			 gid;
	int			 stopping;
};

/* The keys a reload changed, as comma-separated lists for one log line. */
struct smsgwd_changes {
	char	changed[2048];
	char	restart[1024];
};

static void
smsgwd_usage(FILE *f)
{
	fprintf(f, "usage: smsgwd [-n] [-c file]\n"
	    "  -c file  configuration file (default %s)\n"
	    "  -n       check the configuration and exit\n"
	    "  -h       show this help\n", SMSGWD_CONFIG);
}

static struct protocol_limits
smsgwd_limits(const struct config *cfg)
{
	struct protocol_limits l;

	l.max_parts = cfg->message.max_parts;
	l.max_valid_for = cfg->retry.max_validity;
	return l;
}

static void
smsgwd_timer_add(struct event *ev, int64_t ms)
{
	struct timeval tv;

	event_add(ev, util_timeval(ms, &tv));
}

/* Tells the service manager STATE, followed by the current status. */
static void
smsgwd_notify(struct smsgwd *d, const char *state)
{
	const char *hold = dispatch_hold_reason(d->dispatch);
	const int64_t *counts = gateway_counts(d->gateway);

	if (!service_notify_enabled())
		return;
	if (service_notifyf("%s%sSTATUS=queued=%" PRId64 " inflight=%zu "
	    "hold=%s", state, *state != '\0' ? "\n" : "",
	    counts[MESSAGE_QUEUED], dispatch_inflight(d->dispatch),
	    hold != NULL ? hold : "no") == -1)
		log_warn("service notify-failed error=%s", strerror(errno));
}

static void
smsgwd_statuscb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	smsgwd_notify(arg, "");
}

/* Every stats interval or every few seconds, whichever is shorter. */
static void
smsgwd_status_arm(struct smsgwd *d)
{
	int s = d->cfg->log.stats_interval;

	if (d->status == NULL)
		return;
	if (s <= 0 || s > SMSGWD_STATUS_MAX_S)
		s = SMSGWD_STATUS_MAX_S;
	event_del(d->status);
	smsgwd_timer_add(d->status, (int64_t)s * 1000);
}

static void
smsgwd_watchdogcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (service_notify("WATCHDOG=1") == -1)
		log_warn("service watchdog-failed error=%s", strerror(errno));
}

/* Lets the requests in flight finish, within the configured bound. */
static void
smsgwd_draincb(evutil_socket_t fd, short what, void *arg)
{
	struct smsgwd *d = arg;
	struct timeval tv = { 0, SMSGWD_DRAIN_POLL_MS * 1000 };
	size_t inflight = dispatch_inflight(d->dispatch);

	(void)fd;
	(void)what;
	/*
	 * Clients that were writing when the signal came are answered
	 * shutting_down for a moment, rather than finding the socket shut.
	 */
	if ((inflight == 0 && util_mono_ms() >= d->linger_until) ||
	    util_mono_ms() >= d->drain_deadline) {
		if (inflight > 0)
			log_warn("smsgwd drain-timeout inflight=%zu "
			    "action=left-sending-ambiguous", inflight);
		event_base_loopexit(d->base, NULL);
		return;
	}
	evtimer_add(d->drain, &tv);
}

static void
smsgwd_stop(struct smsgwd *d, int signo)
{
	char state[96];

	if (d->stopping) {
		log_notice("smsgwd stop-now signal=%d inflight=%zu", signo,
		    dispatch_inflight(d->dispatch));
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_notice("smsgwd stopping signal=%d inflight=%zu "
	    "shutdown_timeout=%d", signo, dispatch_inflight(d->dispatch),
	    d->cfg->shutdown_timeout);
	control_stop(d->control);
	gateway_shutdown(d->gateway);
	dispatch_stop(d->dispatch);
	snprintf(state, sizeof(state), "STOPPING=1\nEXTEND_TIMEOUT_USEC=%llu",
	    (unsigned long long)(d->cfg->shutdown_timeout +
	    SMSGWD_STOP_SLACK_S) * 1000000ULL);
	smsgwd_notify(d, state);

	d->drain_deadline = util_mono_ms() +
	    (int64_t)d->cfg->shutdown_timeout * 1000;
	d->linger_until = util_mono_ms() + SMSGWD_LINGER_MS;
	smsgwd_draincb(-1, 0, d);
}

static void
smsgwd_append(char *list, size_t len, const char *key)
{
	size_t n = strlen(list);

	snprintf(list + n, len - n, "%s%s", n > 0 ? "," : "", key);
}

static void
smsgwd_changed(void *arg, const char *key, int reloadable)
{
	struct smsgwd_changes *ch = arg;

	smsgwd_append(ch->changed, sizeof(ch->changed), key);
	if (!reloadable)
		smsgwd_append(ch->restart, sizeof(ch->restart), key);
}

/* One line per problem of a configuration that did not load. */
static void
smsgwd_dlr_options(const struct config *cfg, struct dlr_options *o)
{
	o->listen = cfg->dlr.listen;
	o->secret = cfg->dlr.token;
	o->inbound_token = cfg->dlr.inbound_token;
}

static void
smsgwd_reload_problems(const char *file, const char *problems)
{
	char efile[PATH_MAX], what[1024];
	const char *p, *nl, *q;
	size_t flen = strlen(file), n;
	unsigned long line;

	log_escape(file, flen, efile, sizeof(efile));
	if (problems == NULL) {
		log_err("config reload-failed file=%s problem=out-of-memory",
		    efile);
		return;
	}
	for (p = problems; *p != '\0'; p = nl != NULL ? nl + 1 : p + n) {
		nl = strchr(p, '\n');
		n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n == 0)
			continue;

		/* "FILE:LINE: what" becomes line=LINE problem=what. */
		line = 0;
		q = p;
		if (n > flen && strncmp(p, file, flen) == 0 && p[flen] == ':') {
			q = p + flen + 1;
			while (q < p + n && *q >= '0' && *q <= '9')
				line = line * 10 + (unsigned long)(*q++ - '0');
			if (q < p + n && *q == ':')
				q++;
			while (q < p + n && *q == ' ')
				q++;
		}
		log_escape(q, (size_t)(p + n - q), what, sizeof(what));
		if (line > 0)
			log_err("config reload-failed file=%s line=%lu "
			    "problem=%s", efile, line, what);
		else
			log_err("config reload-failed file=%s problem=%s", efile,
			    what);
	}
}

/* Logs why a reload failed; the old configuration stays. */
static void
smsgwd_reload_refused(struct smsgwd *d, const char *problem)
{
	char efile[PATH_MAX];

	log_err("config reload-failed file=%s problem=%s",
	    log_escape(d->cfg->file, strlen(d->cfg->file), efile,
	    sizeof(efile)), problem);
	if (log_reopen() == -1)
		log_err("log reopen-failed error=%s", strerror(errno));
}

/*
 * Reads the file again. A file with problems changes nothing; a good one
 * is handed to every module, and the old one freed only after that, as
 * the modules keep a pointer to the configuration.
 */
static void
smsgwd_reload(struct smsgwd *d)
{
	struct smsgwd_changes ch;
	struct protocol_limits limits;
	struct config *cfg, *old = d->cfg;
	char *problems = NULL, err[256], why[sizeof(err) * 4], efile[PATH_MAX];
	char state[64];
	struct dlr_options o;

	/* Newer systemd wants the time with it (Type=notify-reload). */
	snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%lld",
	    (long long)util_mono_ms() * 1000);
	smsgwd_notify(d, state);
	if ((cfg = config_load(old->file, &problems)) == NULL) {
		smsgwd_reload_problems(old->file, problems);
		free(problems);
		if (log_reopen() == -1)
			log_err("log reopen-failed error=%s", strerror(errno));
		smsgwd_notify(d, "READY=1");
		return;
	}

	memset(&ch, 0, sizeof(ch));
	config_diff(old, cfg, smsgwd_changed, &ch);
	if (config_keep_fixed(cfg, old) == -1) {
		config_free(cfg);
		smsgwd_reload_refused(d, "out-of-memory");
		smsgwd_notify(d, "READY=1");
		return;
	}
	/* Opening the target again is also what rotation needs. */
	if (log_open(cfg->log.target, (enum log_level)log_level_parse(
	    cfg->log.level), cfg->log.mask_numbers, err, sizeof(err)) == -1) {
		config_free(cfg);
		smsgwd_reload_refused(d, log_escape(err, strlen(err), why,
		    sizeof(why)));
		smsgwd_notify(d, "READY=1");
		return;
	}

	limits = smsgwd_limits(cfg);
	gateway_configure(d->gateway, cfg);
	dispatch_configure(d->dispatch, cfg);
	control_configure(d->control, cfg, &limits);
	if (d->dlr != NULL) {
		smsgwd_dlr_options(cfg, &o);
		dlr_set_options(d->dlr, &o);
	} else if (cfg->dlr.public_url[0] != '\0' ||
	    cfg->dlr.inbound_token[0] != '\0')
		log_warn("config reload-incomplete reason=dlr-needs-restart");
	d->cfg = cfg;
	config_free(old);
	smsgwd_status_arm(d);

	log_notice("config reloaded file=%s changed=%s restart_needed=%s",
	    log_escape(cfg->file, strlen(cfg->file), efile, sizeof(efile)),
	    ch.changed[0] != '\0' ? ch.changed : "-",
	    ch.restart[0] != '\0' ? ch.restart : "-");
	smsgwd_notify(d, "READY=1");
}

static void
smsgwd_signalcb(evutil_socket_t signo, short what, void *arg)
{
	struct smsgwd *d = arg;

	(void)what;
	if (signo != SIGHUP) {
		smsgwd_stop(d, (int)signo);
		return;
	}
	if (d->stopping) {
		log_info("config reload-skipped reason=stopping");
		return;
	}
	smsgwd_reload(d);
}

static int
smsgwd_check(const char *file)
{
	struct config *cfg;
	char *problems = NULL;

	if ((cfg = config_load(file, &problems)) == NULL) {
		fputs(problems, stderr);
		free(problems);
		return 1;
	}
	config_free(cfg);
	printf("configuration OK\n");
	return 0;
}

/* Started as root with a user configured: find it before making files. */
static int
smsgwd_user(struct smsgwd *d)
{
	char err[256];

	if (geteuid() != 0 || d->cfg->user[0] == '\0')
		return 0;
	if (service_user(d->cfg->user, &d->uid, &d->gid, err,
	    sizeof(err)) == -1) {
		log_crit("smsgwd start-failed reason=user error=%s", err);
		return -1;
	}
	d->drop = 1;
	return 0;
}

/* Gives the files the daemon made as root to the user it becomes. */
static int
smsgwd_give_files(struct smsgwd *d)
{
	const struct config *cfg = d->cfg;
	char path[PATH_MAX + 8], err[PATH_MAX + 64];
	static const char *const suffixes[] = { "", "-wal", "-shm" };
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", cfg->storage.path,
		    suffixes[i]);
		if (service_chown(path, d->uid, d->gid, err, sizeof(err)) == -1)
			goto fail;
	}
	if (d->listen_fd == -1 && service_chown(cfg->socket.path, d->uid,
	    cfg->socket.group[0] != '\0' ? (gid_t)-1 : d->gid, err,
	    sizeof(err)) == -1)
		goto fail;
	if (cfg->log.target[0] == '/' && service_chown(cfg->log.target,
	    d->uid, d->gid, err, sizeof(err)) == -1)
		goto fail;
	return 0;

fail:
	log_crit("smsgwd start-failed reason=chown error=%s", err);
	return -1;
}

/* Leaves root, once the socket and the store are open. */
static int
smsgwd_drop(struct smsgwd *d)
{
	char err[256];

	if (geteuid() != 0)
		return 0;
	if (!d->drop) {
		log_warn("smsgwd running-as-root reason=no-user-configured");
		return 0;
	}
	if (smsgwd_give_files(d) == -1)
		return -1;
	if (service_drop(d->cfg->user, d->uid, d->gid, err,
	    sizeof(err)) == -1) {
		log_crit("smsgwd start-failed reason=privileges error=%s", err);
		return -1;
	}
	log_notice("smsgwd privileges-dropped user=%s uid=%u gid=%u",
	    d->cfg->user, (unsigned)d->uid, (unsigned)d->gid);
	return 0;
}

/* The watchdog pings and the status notifications, when asked for. */
static int
smsgwd_timers(struct smsgwd *d)
{
	uint64_t usec = service_watchdog_usec();

	if (usec > 0) {
		d->watchdog = event_new(d->base, -1, EV_PERSIST,
		    smsgwd_watchdogcb, d);
		if (d->watchdog == NULL)
			return -1;
		smsgwd_timer_add(d->watchdog, usec / 2000 > 0 ?
		    (int64_t)(usec / 2000) : 1);
		log_info("service watchdog interval_ms=%" PRIu64, usec / 2000);
	}
	if (service_notify_enabled()) {
		d->status = event_new(d->base, -1, EV_PERSIST,
		    smsgwd_statuscb, d);
		if (d->status == NULL)
			return -1;
		smsgwd_status_arm(d);
	}
	return 0;
}

static int
smsgwd_signals(struct smsgwd *d)
{
	d->sigterm = evsignal_new(d->base, SIGTERM, smsgwd_signalcb, d);
	d->sigint = evsignal_new(d->base, SIGINT, smsgwd_signalcb, d);
	d->sighup = evsignal_new(d->base, SIGHUP, smsgwd_signalcb, d);
	if (d->sigterm == NULL || d->sigint == NULL || d->sighup == NULL ||
	    event_add(d->sigterm, NULL) == -1 ||
	    event_add(d->sigint, NULL) == -1 ||
	    event_add(d->sighup, NULL) == -1)
		return -1;
	return 0;
}

static int
smsgwd_dlr_report(void *arg, int64_t id, int code)
{
	return gateway_report(arg, id, code);
}

static int
smsgwd_dlr_inbound(void *arg, const struct dlr_inbound *in)
{
	return gateway_inbound(arg, in);
}

static void
smsgwd_metrics_fill(void *arg, struct metrics_page *page)
{
	struct smsgwd *d = arg;

	gateway_metrics(d->gateway, page);
	dispatch_metrics(d->dispatch, page);
}

/*
 * The listeners for the upstream's calls and for scrapes, when the
 * configuration asks for them.
 */
static int
smsgwd_listeners(struct smsgwd *d)
{
	const struct config *cfg = d->cfg;
	struct dlr_handler h = { smsgwd_dlr_report, smsgwd_dlr_inbound,
	    d->gateway };
	struct dlr_options o;
	char err[256];

	if (cfg->dlr.public_url[0] != '\0' || cfg->dlr.inbound_token[0] != '\0') {
		smsgwd_dlr_options(cfg, &o);
		if ((d->dlr = dlr_new(d->base, &o, &h, err, sizeof(err))) ==
		    NULL) {
			log_crit("dlr start-failed listen=%s error=%s",
			    cfg->dlr.listen, err);
			return -1;
		}
		log_info("dlr listening listen=%s port=%d reports=%s inbound=%s",
		    cfg->dlr.listen, dlr_port(d->dlr),
		    cfg->dlr.public_url[0] ? "yes" : "no",
		    cfg->dlr.inbound_token[0] ? "yes" : "no");
	}
	if (cfg->metrics.listen[0] != '\0') {
		if ((d->metrics = metrics_new(d->base, cfg->metrics.listen,
		    cfg->metrics.allow_remote, smsgwd_metrics_fill, d, err,
		    sizeof(err))) == NULL) {
			log_crit("metrics start-failed listen=%s error=%s",
			    cfg->metrics.listen, err);
			return -1;
		}
		log_info("metrics listening listen=%s port=%d",
		    cfg->metrics.listen, metrics_port(d->metrics));
	}
	return 0;
}

static int
smsgwd_start(struct smsgwd *d)
{
	struct protocol_limits limits = smsgwd_limits(d->cfg);
	struct event_config *ec;
	char err[256];

	/*
	 * The coarse clock libevent uses by default is a few milliseconds
	 * off: too much for throttle pauses shorter than the upstream's
	 * latency.
	 */
	if ((ec = event_config_new()) == NULL)
		return -1;
	event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
	d->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (d->base == NULL || event_base_priority_init(d->base, 3) == -1) {
		log_crit("smsgwd start-failed reason=event-base");
		return -1;
	}
	if (service_listen_fd(&d->listen_fd, err, sizeof(err)) == -1) {
		log_crit("smsgwd start-failed reason=passed-socket error=%s",
		    err);
		return -1;
	}
	if (smsgwd_user(d) == -1)
		return -1;

	if ((d->store = store_open(d->cfg->storage.path, err,
	    sizeof(err))) == NULL) {
		log_crit("store open-failed path=%s error=%s",
		    d->cfg->storage.path, err);
		return -1;
	}
	if ((d->gateway = gateway_new(d->base, d->cfg, d->store, err,
	    sizeof(err))) == NULL) {
		log_crit("gateway start-failed error=%s", err);
		return -1;
	}
	if (gateway_load(d->gateway) == -1) {
		log_crit("store load-failed error=%s", store_error(d->store));
		return -1;
	}
	d->control = control_new(d->base, d->cfg, &limits, d->listen_fd,
	    gateway_request, d->gateway, err, sizeof(err));
	/* From here on control owns the passed socket, even on failure. */
	if (d->control == NULL) {
		d->listen_fd = -1;
		log_crit("control start-failed error=%s", err);
		return -1;
	}

	if ((d->dispatch = dispatch_new(d->base, d->cfg, d->gateway, err,
	    sizeof(err))) == NULL) {
		log_crit("dispatch start-failed error=%s", err);
		return -1;
	}
	if (smsgwd_listeners(d) == -1)
		return -1;
	if ((d->drain = evtimer_new(d->base, smsgwd_draincb, d)) == NULL ||
	    smsgwd_timers(d) == -1) {
		log_crit("smsgwd start-failed reason=no-memory");
		return -1;
	}
	if (smsgwd_signals(d) == -1) {
		log_crit("smsgwd start-failed reason=signals");
		return -1;
	}
	return smsgwd_drop(d);
}

static int
smsgwd_finish(struct smsgwd *d)
{
	int rc = 0;

	if (d->gateway != NULL && gateway_flush(d->gateway) == -1)
		rc = -1;
	if (d->sigterm != NULL)
		event_free(d->sigterm);
	if (d->sigint != NULL)
		event_free(d->sigint);
	if (d->sighup != NULL)
		event_free(d->sighup);
	if (d->drain != NULL)
		event_free(d->drain);
	if (d->watchdog != NULL)
		event_free(d->watchdog);
	if (d->status != NULL)
		event_free(d->status);
	metrics_free(d->metrics);
	dlr_free(d->dlr);
	dispatch_free(d->dispatch);
	if (d->gateway != NULL && gateway_flush(d->gateway) == -1)
		rc = -1;
	control_free(d->control);
	gateway_free(d->gateway);
	store_close(d->store);
	if (d->base != NULL)
		event_base_free(d->base);
	return rc;
}

int
main(int argc, char *argv[])
{
	struct smsgwd d;
	const char *file = SMSGWD_CONFIG;
	char *problems = NULL, err[256];
	int ch, check = 0, rc;

	while ((ch = getopt(argc, argv, "c:nh")) != -1) {
		switch (ch) {
		case 'c':
			file = optarg;
			break;
		case 'n':
			check = 1;
			break;
		case 'h':
			smsgwd_usage(stdout);
			return 0;
		default:
			smsgwd_usage(stderr);
			return 64;
		}
	}
	if (optind != argc) {
		smsgwd_usage(stderr);
		return 64;
	}
	if (check)
		return smsgwd_check(file);

	memset(&d, 0, sizeof(d));
	d.listen_fd = -1;
	if ((d.cfg = config_load(file, &problems)) == NULL) {
		fputs(problems, stderr);
		free(problems);
		return 1;
	}
	if (log_open(d.cfg->log.target, log_level_parse(d.cfg->log.level),
	    d.cfg->log.mask_numbers, err, sizeof(err)) == -1) {
		fprintf(stderr, "smsgwd: log: %s\n", err);
		config_free(d.cfg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* A reload asked for while starting must not end the daemon. */
	signal(SIGHUP, SIG_IGN);

	if (smsgwd_start(&d) == -1) {
		smsgwd_finish(&d);
		if (d.listen_fd != -1 && d.control == NULL)
			close(d.listen_fd);
		config_free(d.cfg);
		log_close();
		return 1;
	}
	log_notice("smsgwd started socket=%s store=%s pid=%d activated=%s "
	    "uid=%u", d.cfg->socket.path, d.cfg->storage.path, (int)getpid(),
	    d.listen_fd != -1 ? "yes" : "no", (unsigned)getuid());
	smsgwd_notify(&d, "READY=1");

	rc = event_base_dispatch(d.base) == -1 ? 1 : 0;
	if (smsgwd_finish(&d) == -1)
		rc = 1;
	log_notice("smsgwd stopped status=%d", rc);
	config_free(d.cfg);
	log_close();
	return rc;
}
