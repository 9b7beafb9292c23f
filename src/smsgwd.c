/*
 * smsgwd: the SMS gateway daemon. Parses its options, loads the
 * configuration, wires the modules together and runs the event loop.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "control.h"
#include "dispatch.h"
#include "gateway.h"
#include "log.h"
#include "protocol.h"
#include "store.h"
#include "util.h"

#ifndef SMSGW_SYSCONFDIR
#define SMSGW_SYSCONFDIR	"/etc"
#endif
#define SMSGWD_CONFIG		SMSGW_SYSCONFDIR "/smsgwd/smsgwd.conf"
/* How often shutdown looks whether the requests in flight are done. */
#define SMSGWD_DRAIN_POLL_MS	20

struct smsgwd {
	struct event_base	*base;
	struct config		*cfg;
	struct store		*store;
	struct gateway		*gateway;
	struct control		*control;
	struct dispatch		*dispatch;
	struct event		*drain;
	int64_t			 drain_deadline;
	struct event		*sigterm;
	struct event		*sigint;
	struct event		*sighup;
	int			 stopping;
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

/* Lets the requests in flight finish, within the configured bound. */
static void
smsgwd_draincb(evutil_socket_t fd, short what, void *arg)
{
	struct smsgwd *d = arg;
	struct timeval tv = { 0, SMSGWD_DRAIN_POLL_MS * 1000 };
	size_t inflight = dispatch_inflight(d->dispatch);

	(void)fd;
	(void)what;
	if (inflight == 0 || util_mono_ms() >= d->drain_deadline) {
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
	if (d->stopping) {
		log_notice("smsgwd stop-now signal=%d", signo);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_notice("smsgwd stopping signal=%d inflight=%zu", signo,
	    dispatch_inflight(d->dispatch));
	control_stop(d->control);
	gateway_shutdown(d->gateway);
	dispatch_stop(d->dispatch);
	d->drain_deadline = util_mono_ms() +
	    (int64_t)d->cfg->upstream.shutdown_timeout * 1000;
	smsgwd_draincb(-1, 0, d);
}

static void
smsgwd_signalcb(evutil_socket_t signo, short what, void *arg)
{
	struct smsgwd *d = arg;
	enum log_level level;
	struct config *cfg;
	char *problems = NULL;

	(void)what;
	if (signo != SIGHUP) {
		smsgwd_stop(d, (int)signo);
		return;
	}

	if (log_reopen() == -1)
		log_err("log reopen-failed error=%s", strerror(errno));
	if ((cfg = config_load(d->cfg->file, &problems)) == NULL) {
		log_err("config reload-failed file=%s problems=%s",
		    d->cfg->file, "see below");
		log_err("%s", problems);
		free(problems);
		return;
	}
	level = (enum log_level)log_level_parse(cfg->log.level);
	log_set_level(level);
	log_notice("config reloaded file=%s level=%s", cfg->file,
	    log_level_name(level));
	config_free(cfg);
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
	if ((d->control = control_new(d->base, d->cfg, &limits, -1,
	    gateway_request, d->gateway, err, sizeof(err))) == NULL) {
		log_crit("control start-failed error=%s", err);
		return -1;
	}

	if ((d->dispatch = dispatch_new(d->base, d->cfg, d->gateway, err,
	    sizeof(err))) == NULL) {
		log_crit("dispatch start-failed error=%s", err);
		return -1;
	}
	if ((d->drain = evtimer_new(d->base, smsgwd_draincb, d)) == NULL) {
		log_crit("smsgwd start-failed reason=no-memory");
		return -1;
	}

	d->sigterm = evsignal_new(d->base, SIGTERM, smsgwd_signalcb, d);
	d->sigint = evsignal_new(d->base, SIGINT, smsgwd_signalcb, d);
	d->sighup = evsignal_new(d->base, SIGHUP, smsgwd_signalcb, d);
	if (d->sigterm == NULL || d->sigint == NULL || d->sighup == NULL ||
	    event_add(d->sigterm, NULL) == -1 ||
	    event_add(d->sigint, NULL) == -1 ||
	    event_add(d->sighup, NULL) == -1) {
		log_crit("smsgwd start-failed reason=signals");
		return -1;
	}
	return 0;
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

	if (smsgwd_start(&d) == -1) {
		smsgwd_finish(&d);
		config_free(d.cfg);
		log_close();
		return 1;
	}
	log_notice("smsgwd started socket=%s store=%s pid=%d",
	    d.cfg->socket.path, d.cfg->storage.path, (int)getpid());

	rc = event_base_dispatch(d.base) == -1 ? 1 : 0;
	if (smsgwd_finish(&d) == -1)
		rc = 1;
	log_notice("smsgwd stopped status=%d", rc);
	config_free(d.cfg);
	log_close();
	return rc;
}
