/*
 * Running as a service: systemd's notify and socket-passing protocols,
 * which are a datagram and a few environment variables, and the drop from
 * root to the configured user.
 */
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service.h"

/* Supplementary groups beyond this are not looked for. */
#define SERVICE_GROUPS_MAX	65536

/* Parses all of S as a decimal number above 0; 0 when it is not one. */
static unsigned long long
service_number(const char *s)
{
	unsigned long long v;
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	return v;
}

/* True when the variable NAME holds this process's pid. */
static int
service_is_our_pid(const char *name)
{
	return service_number(getenv(name)) == (unsigned long long)getpid();
}

/*
 * Fills SUN from $NOTIFY_SOCKET: 1 when there is one, 0 when there is
 * none, -1 when it is not a Unix socket address.
 */
static int
service_notify_address(struct sockaddr_un *sun, socklen_t *len)
{
	const char *name = getenv("NOTIFY_SOCKET");
	size_t n;

	if (name == NULL || *name == '\0')
		return 0;
	if (name[0] != '/' && name[0] != '@') {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if ((n = strlen(name)) >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, name, n);

	/* An abstract name has no terminating NUL in its length. */
	if (name[0] == '@')
		sun->sun_path[0] = '\0';
	else
		n++;
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	return 1;
}

int
service_notify_enabled(void)
{
	const char *name = getenv("NOTIFY_SOCKET");

	return name != NULL && *name != '\0';
}

int
service_notify(const char *state)
{
	struct sockaddr_un sun;
	struct iovec iov;
	struct msghdr mh;
	socklen_t len;
	ssize_t n;
	int fd, r, e;

	if ((r = service_notify_address(&sun, &len)) <= 0)
		return r;
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;

	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)(uintptr_t)state;
	iov.iov_len = strlen(state);
	mh.msg_name = &sun;
	mh.msg_namelen = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);

	e = errno;
	close(fd);
	errno = e;
	if (n == -1)
		return -1;
	if ((size_t)n != iov.iov_len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

int
service_notifyf(const char *fmt, ...)
{
	va_list ap;
	char *state;
	int r, e;

	if (!service_notify_enabled())
		return 0;

	va_start(ap, fmt);
	r = vasprintf(&state, fmt, ap);
	va_end(ap);
	if (r == -1)
		return -1;
	r = service_notify(state);
	e = errno;
	free(state);
	errno = e;
	return r;
}

/* Why FD is no listening Unix stream socket, or NULL when it is one. */
static const char *
service_check_listener(int fd)
{
	int type = 0, domain = 0, listening = 0;
	socklen_t len;

	if (fcntl(fd, F_GETFD) == -1)
		return "is not open";
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
		return "is not a socket";
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == -1 ||
	    domain != AF_UNIX)
		return "is not a Unix socket";
	if (type != SOCK_STREAM)
		return "is not a stream socket";
	len = sizeof(listening);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) ==
	    -1 || !listening)
		return "is not listening";
	return NULL;
}

static void
service_listen_unset(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

int
service_listen_fd(int *fd, char *err, size_t errlen)
{
	const char *fds = getenv("LISTEN_FDS"), *why;
	unsigned long long n;
	int flags;

	*fd = -1;
	if (fds == NULL || !service_is_our_pid("LISTEN_PID"))
		return 0;

	n = service_number(fds);
	service_listen_unset();
	if (n == 0 && strcmp(fds, "0") != 0) {
		snprintf(err, errlen, "LISTEN_FDS is not a number");
		return -1;
	}
	if (n == 0)
		return 0;
	if (n != 1) {
		snprintf(err, errlen, "%llu sockets passed, one expected", n);
		return -1;
	}

	if ((why = service_check_listener(SERVICE_LISTEN_FDS_START)) != NULL) {
		snprintf(err, errlen, "passed descriptor %d %s",
		    SERVICE_LISTEN_FDS_START, why);
		return -1;
	}
	flags = fcntl(SERVICE_LISTEN_FDS_START, F_GETFD);
	if (flags == -1 || fcntl(SERVICE_LISTEN_FDS_START, F_SETFD,
	    flags | FD_CLOEXEC) == -1) {
		snprintf(err, errlen, "passed descriptor %d: %s",
		    SERVICE_LISTEN_FDS_START, strerror(errno));
		return -1;
	}
	*fd = SERVICE_LISTEN_FDS_START;
	return 0;
}

uint64_t
service_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");

	if (pid != NULL && *pid != '\0' && !service_is_our_pid("WATCHDOG_PID"))
		return 0;
	return (uint64_t)service_number(getenv("WATCHDOG_USEC"));
}

int
service_user(const char *name, uid_t *uid, gid_t *gid, char *err,
    size_t errlen)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL) {
		if (errno != 0 && errno != ENOENT && errno != ESRCH)
			snprintf(err, errlen, "cannot look up user %s: %s",
			    name, strerror(errno));
		else
			snprintf(err, errlen, "unknown user %s", name);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

int
service_chown(const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	if (fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW) == -1 &&
	    errno != ENOENT) {
		snprintf(err, errlen, "chown %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Sets the supplementary groups to those of NAME (GID included). */
static int
service_set_groups(const char *name, gid_t gid, char *err, size_t errlen)
{
	gid_t *groups = NULL, *more;
	int n = 32, have;

	for (;;) {
		if ((more = reallocarray(groups, (size_t)n,
		    sizeof(*groups))) == NULL) {
			free(groups);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		groups = more;
		have = n;
		if (getgrouplist(name, gid, groups, &n) != -1)
			break;
		/* N now says how many there are; ask again with room. */
		if (n <= have)
			n = have * 2;
		if (n > SERVICE_GROUPS_MAX) {
			free(groups);
			snprintf(err, errlen, "user %s is in too many groups",
			    name);
			return -1;
		}
	}

	if (setgroups((size_t)n, groups) == -1) {
		snprintf(err, errlen, "setgroups: %s", strerror(errno));
		free(groups);
		return -1;
	}
	free(groups);
	return 0;
}

int
service_drop(const char *name, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (service_set_groups(name, gid, err, errlen) == -1)
		return -1;
	if (setresgid(gid, gid, gid) == -1) {
		snprintf(err, errlen, "setresgid %u: %s", (unsigned)gid,
		    strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) == -1) {
		snprintf(err, errlen, "setresuid %u: %s", (unsigned)uid,
		    strerror(errno));
		return -1;
	}

	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    ru != uid || eu != uid || su != uid || rg != gid || eg != gid ||
	    sg != gid) {
		snprintf(err, errlen, "the ids did not change as asked");
		return -1;
	}
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		snprintf(err, errlen, "root could be regained");
		return -1;
	}
	if (gid != 0 && uid != 0 && (setgid(0) != -1 || setegid(0) != -1)) {
		snprintf(err, errlen, "group root could be regained");
		return -1;
	}
	return 0;
}
