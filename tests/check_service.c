/*
 * Tests for service.c: notifications to path and abstract sockets, passed
 * sockets, the watchdog variables, user lookup, chown and the drop from root.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "service.h"

static char	check_dir[64];

static void
check_unset_all(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void
check_setup(void)
{
	snprintf(check_dir, sizeof(check_dir), "/tmp/check_service.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(check_dir));
	check_unset_all();
}

static void
check_teardown(void)
{
	char cmd[128];

	check_unset_all();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", check_dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void
check_setenv_int(const char *name, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	ck_assert_int_eq(setenv(name, buf, 1), 0);
}

/* A datagram socket bound to ADDR (LEN bytes), to read notifications. */
static int
check_dgram(const struct sockaddr_un *addr, socklen_t len)
{
	struct timeval tv = { 2, 0 };
	int fd;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (const struct sockaddr *)addr, len), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	return fd;
}

/* Reads one datagram into buf as a string; its length, or -1. */
static ssize_t
check_recv(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, 0);

	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* A bound Unix stream socket at NAME in the test's directory. */
static int
check_unix_stream(const char *name, int listening)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", check_dir,
	    name);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	if (listening)
		ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

struct check_taken {
	int	 rc;
	int	 fd;
	int	 cloexec;
	char	 err[256];
};

/*
 * Puts FD (or nothing, when -1) at descriptor 3, calls service_listen_fd,
 * and puts back what was at 3 before, which the test runner may use.
 */
static struct check_taken
check_take(int fd)
{
	struct check_taken t;
	int saved, flags;

	memset(&t, 0, sizeof(t));
	saved = fcntl(SERVICE_LISTEN_FDS_START, F_DUPFD_CLOEXEC, 10);
	if (fd != -1)
		dup2(fd, SERVICE_LISTEN_FDS_START);
	else
		close(SERVICE_LISTEN_FDS_START);

	t.rc = service_listen_fd(&t.fd, t.err, sizeof(t.err));
	flags = fcntl(SERVICE_LISTEN_FDS_START, F_GETFD);
	t.cloexec = flags != -1 && (flags & FD_CLOEXEC) != 0;

	if (saved != -1) {
		dup2(saved, SERVICE_LISTEN_FDS_START);
		close(saved);
	} else
		close(SERVICE_LISTEN_FDS_START);
	return t;
}

static void
check_listen_env(long pid, const char *fds)
{
	check_setenv_int("LISTEN_PID", pid);
	ck_assert_int_eq(setenv("LISTEN_FDS", fds, 1), 0);
	ck_assert_int_eq(setenv("LISTEN_FDNAMES", "smsgwd.socket", 1), 0);
}

START_TEST(notify_without_a_socket_does_nothing)
{
	ck_assert_int_eq(service_notify_enabled(), 0);
	ck_assert_int_eq(service_notify("READY=1"), 0);
	ck_assert_int_eq(service_notifyf("STATUS=%d", 1), 0);

	setenv("NOTIFY_SOCKET", "", 1);
	ck_assert_int_eq(service_notify_enabled(), 0);
	ck_assert_int_eq(service_notify("READY=1"), 0);
}
END_TEST

START_TEST(notify_reaches_a_socket_path)
{
	struct sockaddr_un sun;
	char buf[256];
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", check_dir);
	fd = check_dgram(&sun, sizeof(sun));
	setenv("NOTIFY_SOCKET", sun.sun_path, 1);

	ck_assert_int_eq(service_notify_enabled(), 1);
	ck_assert_int_eq(service_notify("READY=1\nSTATUS=queued=0"), 0);
	ck_assert_int_eq(check_recv(fd, buf, sizeof(buf)),
	    (ssize_t)strlen("READY=1\nSTATUS=queued=0"));
	ck_assert_str_eq(buf, "READY=1\nSTATUS=queued=0");

	ck_assert_int_eq(service_notifyf("WATCHDOG=%d", 1), 0);
	ck_assert_int_gt(check_recv(fd, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "WATCHDOG=1");
	close(fd);
}
END_TEST

START_TEST(notify_reaches_an_abstract_socket)
{
	struct sockaddr_un sun;
	char name[64], buf[256];
	socklen_t len;
	int fd;

	/* The name is unique to this test process: abstract names are global. */
	snprintf(name, sizeof(name), "smsgw-check-service-%ld",
	    (long)getpid());
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path + 1, name, strlen(name));
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	    strlen(name));
	fd = check_dgram(&sun, len);

	snprintf(buf, sizeof(buf), "@%s", name);
	setenv("NOTIFY_SOCKET", buf, 1);
	ck_assert_int_eq(service_notify("STOPPING=1"), 0);
	ck_assert_int_gt(check_recv(fd, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "STOPPING=1");
	close(fd);
}
END_TEST

START_TEST(notify_refuses_an_address_that_is_no_unix_socket)
{
	setenv("NOTIFY_SOCKET", "relative/notify", 1);
	errno = 0;
	ck_assert_int_eq(service_notify("READY=1"), -1);
	ck_assert_int_eq(errno, EAFNOSUPPORT);
}
END_TEST

START_TEST(notify_to_a_missing_socket_fails)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/nobody-listens", check_dir);
	setenv("NOTIFY_SOCKET", path, 1);
	ck_assert_int_eq(service_notify("READY=1"), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(listen_fd_is_none_without_the_variables)
{
	struct check_taken t = check_take(-1);

	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.fd, -1);
}
END_TEST

START_TEST(listen_fd_for_another_process_is_left_alone)
{
	struct check_taken t;
	int fd = check_unix_stream("s", 1);

	check_listen_env((long)getpid() + 1, "1");
	t = check_take(fd);
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.fd, -1);
	ck_assert_ptr_nonnull(getenv("LISTEN_PID"));
	ck_assert_ptr_nonnull(getenv("LISTEN_FDS"));
	close(fd);
}
END_TEST

START_TEST(listen_fd_takes_a_listening_unix_socket)
{
	struct check_taken t;
	int fd = check_unix_stream("s", 1);

	check_listen_env((long)getpid(), "1");
	t = check_take(fd);
	ck_assert_msg(t.rc == 0, "refused: %s", t.err);
	ck_assert_int_eq(t.fd, SERVICE_LISTEN_FDS_START);
	ck_assert_int_eq(t.cloexec, 1);
	ck_assert_ptr_null(getenv("LISTEN_PID"));
	ck_assert_ptr_null(getenv("LISTEN_FDS"));
	ck_assert_ptr_null(getenv("LISTEN_FDNAMES"));
	close(fd);
}
END_TEST

START_TEST(listen_fd_zero_sockets_is_none)
{
	struct check_taken t;

	check_listen_env((long)getpid(), "0");
	t = check_take(-1);
	ck_assert_int_eq(t.rc, 0);
	ck_assert_int_eq(t.fd, -1);
	ck_assert_ptr_null(getenv("LISTEN_FDS"));
}
END_TEST

START_TEST(listen_fd_refuses_two_sockets)
{
	struct check_taken t;
	int fd = check_unix_stream("s", 1);

	check_listen_env((long)getpid(), "2");
	t = check_take(fd);
	ck_assert_int_eq(t.rc, -1);
	ck_assert_int_eq(t.fd, -1);
	ck_assert_str_eq(t.err, "2 sockets passed, one expected");
	ck_assert_ptr_null(getenv("LISTEN_FDS"));
	close(fd);
}
END_TEST

START_TEST(listen_fd_refuses_a_socket_that_does_not_listen)
{
	struct check_taken t;
	int fd = check_unix_stream("s", 0);

	check_listen_env((long)getpid(), "1");
	t = check_take(fd);
	ck_assert_int_eq(t.rc, -1);
	ck_assert_str_eq(t.err, "passed descriptor 3 is not listening");
	close(fd);
}
END_TEST

START_TEST(listen_fd_refuses_a_tcp_socket)
{
	struct sockaddr_in sin;
	struct check_taken t;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);

	check_listen_env((long)getpid(), "1");
	t = check_take(fd);
	ck_assert_int_eq(t.rc, -1);
	ck_assert_str_eq(t.err, "passed descriptor 3 is not a Unix socket");
	close(fd);
}
END_TEST

START_TEST(listen_fd_refuses_a_file_and_a_closed_descriptor)
{
	struct check_taken t;
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/file", check_dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	check_listen_env((long)getpid(), "1");
	t = check_take(fd);
	ck_assert_int_eq(t.rc, -1);
	ck_assert_str_eq(t.err, "passed descriptor 3 is not a socket");
	close(fd);

	check_listen_env((long)getpid(), "1");
	t = check_take(-1);
	ck_assert_int_eq(t.rc, -1);
	ck_assert_str_eq(t.err, "passed descriptor 3 is not open");
}
END_TEST

START_TEST(listen_fd_refuses_a_count_that_is_no_number)
{
	struct check_taken t;

	check_listen_env((long)getpid(), "one");
	t = check_take(-1);
	ck_assert_int_eq(t.rc, -1);
	ck_assert_str_eq(t.err, "LISTEN_FDS is not a number");
}
END_TEST

START_TEST(watchdog_follows_the_variables)
{
	ck_assert_uint_eq(service_watchdog_usec(), 0);

	setenv("WATCHDOG_USEC", "400000", 1);
	ck_assert_uint_eq(service_watchdog_usec(), 400000);

	check_setenv_int("WATCHDOG_PID", (long)getpid());
	ck_assert_uint_eq(service_watchdog_usec(), 400000);

	check_setenv_int("WATCHDOG_PID", (long)getpid() + 1);
	ck_assert_uint_eq(service_watchdog_usec(), 0);

	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "4e5", 1);
	ck_assert_uint_eq(service_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "-1", 1);
	ck_assert_uint_eq(service_watchdog_usec(), 0);
}
END_TEST

START_TEST(user_lookup_finds_root_and_refuses_the_unknown)
{
	uid_t uid = 42;
	gid_t gid = 42;
	char err[128];

	ck_assert_int_eq(service_user("root", &uid, &gid, err, sizeof(err)),
	    0);
	ck_assert_uint_eq(uid, 0);
	ck_assert_uint_eq(gid, 0);

	ck_assert_int_eq(service_user("no-such-user-smsgw", &uid, &gid, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown user no-such-user-smsgw");
}
END_TEST

START_TEST(chown_of_a_missing_file_is_no_failure)
{
	char path[128], err[256];

	snprintf(path, sizeof(path), "%s/none", check_dir);
	ck_assert_int_eq(service_chown(path, getuid(), getgid(), err,
	    sizeof(err)), 0);
}
END_TEST

START_TEST(chown_does_not_follow_a_symbolic_link)
{
	struct passwd *pw = getpwnam("nobody");
	char file[128], link[128], err[256];
	struct stat st;
	int fd;

	if (geteuid() != 0 || pw == NULL)
		return;	/* Only root can give a file away. */

	snprintf(file, sizeof(file), "%s/target", check_dir);
	snprintf(link, sizeof(link), "%s/link", check_dir);
	fd = open(file, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(symlink(file, link), 0);

	ck_assert_int_eq(service_chown(link, pw->pw_uid, pw->pw_gid, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_int_eq(lstat(link, &st), 0);
	ck_assert_uint_eq(st.st_uid, pw->pw_uid);

	ck_assert_int_eq(service_chown(file, pw->pw_uid, (gid_t)-1, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_uint_eq(st.st_uid, pw->pw_uid);
	ck_assert_uint_eq(st.st_gid, 0);
}
END_TEST

/*
 * Runs service_drop in a child, which reports what it became: never in
 * this process, which the tests must keep as it is.
 */
static int
check_drop_child(const char *name, uid_t uid, gid_t gid)
{
	char err[256];
	gid_t groups[64];
	int status, n, i;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (service_drop(name, uid, gid, err, sizeof(err)) == -1)
			_exit(10);
		if (getuid() != uid || geteuid() != uid || getgid() != gid ||
		    getegid() != gid)
			_exit(11);
		if (setuid(0) != -1 || errno != EPERM)
			_exit(12);
		if ((n = getgroups(64, groups)) < 0)
			_exit(13);
		for (i = 0; i < n; i++)
			if (groups[i] == 0)
				_exit(14);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(drop_becomes_the_user_for_good)
{
	struct passwd *pw = getpwnam("nobody");

	if (pw == NULL)
		return;
	if (geteuid() != 0) {
		/* Without root, setgroups is refused: the drop says so. */
		ck_assert_int_eq(check_drop_child("nobody", pw->pw_uid,
		    pw->pw_gid), 10);
		return;
	}
	ck_assert_int_eq(check_drop_child("nobody", pw->pw_uid, pw->pw_gid),
	    0);
}
END_TEST

static Suite *
check_service_suite(void)
{
	Suite *s = suite_create("service");
	TCase *tc = tcase_create("service");

	tcase_add_checked_fixture(tc, check_setup, check_teardown);
	tcase_add_test(tc, notify_without_a_socket_does_nothing);
	tcase_add_test(tc, notify_reaches_a_socket_path);
	tcase_add_test(tc, notify_reaches_an_abstract_socket);
	tcase_add_test(tc, notify_refuses_an_address_that_is_no_unix_socket);
	tcase_add_test(tc, notify_to_a_missing_socket_fails);
	tcase_add_test(tc, listen_fd_is_none_without_the_variables);
	tcase_add_test(tc, listen_fd_for_another_process_is_left_alone);
	tcase_add_test(tc, listen_fd_takes_a_listening_unix_socket);
	tcase_add_test(tc, listen_fd_zero_sockets_is_none);
	tcase_add_test(tc, listen_fd_refuses_two_sockets);
	tcase_add_test(tc, listen_fd_refuses_a_socket_that_does_not_listen);
	tcase_add_test(tc, listen_fd_refuses_a_tcp_socket);
	tcase_add_test(tc, listen_fd_refuses_a_file_and_a_closed_descriptor);
	tcase_add_test(tc, listen_fd_refuses_a_count_that_is_no_number);
	tcase_add_test(tc, watchdog_follows_the_variables);
	tcase_add_test(tc, user_lookup_finds_root_and_refuses_the_unknown);
	tcase_add_test(tc, chown_of_a_missing_file_is_no_failure);
	tcase_add_test(tc, chown_does_not_follow_a_symbolic_link);
	tcase_add_test(tc, drop_becomes_the_user_for_good);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(check_service_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
