/*
 * Running as a service: the systemd notify protocol and passed sockets
 * (written out, so libsystemd is not needed), the watchdog interval, and
 * dropping root privileges to a configured user.
 */
#ifndef SMSGW_SERVICE_H
#define SMSGW_SERVICE_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

/* The first descriptor a service manager passes (SD_LISTEN_FDS_START). */
#define SERVICE_LISTEN_FDS_START	3

/* True when $NOTIFY_SOCKET names a socket to notify. */
int		 service_notify_enabled(void);

/*
 * Sends STATE ("READY=1", lines separated by newlines) to $NOTIFY_SOCKET,
 * a path or, with a leading '@', an abstract name. 0 when sent or when
 * there is no socket to notify, -1 on failure (errno set).
 */
int		 service_notify(const char *state);
int		 service_notifyf(const char *fmt, ...)
		    __attribute__((format(printf, 1, 2)));

/*
 * Takes the socket the service manager passed (LISTEN_PID is this process,
 * LISTEN_FDS is 1): checks that it is a listening Unix stream socket, marks
 * it close-on-exec and removes the variables. Sets *fd to it, or to -1
 * when nothing was passed. -1 with a reason in err when what was passed
 * cannot be used.
 */
int		 service_listen_fd(int *fd, char *err, size_t errlen);

/*
 * The watchdog timeout from WATCHDOG_USEC, in microseconds, when it is
 * meant for this process (WATCHDOG_PID unset or ours); 0 when there is no
 * watchdog. Pings should come at half of it.
 */
uint64_t	 service_watchdog_usec(void);

/* Looks NAME up: its uid and primary gid. -1 with a reason in err. */
int		 service_user(const char *name, uid_t *uid, gid_t *gid,
		    char *err, size_t errlen);

/*
 * Gives PATH (not following a symbolic link) to UID and GID (-1 keeps
 * one). A missing file is no failure. -1 with a reason in err.
 */
int		 service_chown(const char *path, uid_t uid, gid_t gid,
		    char *err, size_t errlen);

/*
 * Becomes NAME (UID, GID) for good: its groups (setgroups), then
 * setresgid and setresuid, each checked, and checks that root cannot be
 * regained. -1 with a reason in err; the process must then not go on.
 */
int		 service_drop(const char *name, uid_t uid, gid_t gid,
		    char *err, size_t errlen);

#endif
