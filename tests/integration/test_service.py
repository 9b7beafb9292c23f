# test_service.py: smsgwd as a service. The test plays the service
# manager: it listens on a NOTIFY_SOCKET (READY, STATUS, WATCHDOG, RELOADING,
# STOPPING), passes a listening socket (LISTEN_FDS), sends SIGHUP with good
# and bad files and SIGTERM with requests in flight, and, as root, checks
# the drop of privileges.

import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import time

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness
from harness import (Suite, Daemon, Client, Failure, check, check_eq,
        check_ok, is_id, render_config, wait_until, write_file,
        START_TIMEOUT, SMSGWD, _config_value)

suite = Suite("service", budget=150.0)

NUMBER = "+27821234567"
STATUS_RE = r"^queued=\d+ inflight=\d+ hold=\S+$"
# Whatever the environment of `make check` holds must not reach the daemon.
MANAGER_VARS = ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS",
        "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID",
        "CREDENTIALS_DIRECTORY")


class Notify:
    """A NOTIFY_SOCKET: a datagram socket at a path or an abstract name."""

    def __init__(self, directory=None, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "smsgw-it-%d-%s" % (os.getpid(), os.urandom(4).hex())
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(directory, "notify.sock")
            self.sock.bind(self.address)
        self.seen = []  # (monotonic time, {key: value}) per datagram

    def close(self):
        self.sock.close()

    def recv(self, timeout):
        """The next datagram as a dict; None after timeout seconds."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = {}
        for line in data.decode("utf-8", "replace").split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        self.seen.append((time.monotonic(), fields))
        return fields

    def wait_for(self, key, value=None, timeout=5.0, on_each=None):
        """Reads until a datagram sets KEY (to VALUE); returns it."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("no %s%s notification within %.1fs; got %r" %
                        (key, "=" + value if value else "", timeout,
                        [f for _, f in self.seen][-6:]))
            fields = self.recv(left)
            if fields is None:
                continue
            if on_each is not None:
                on_each(fields)
            if key in fields and (value is None or fields[key] == value):
                return fields

    def drain(self, seconds):
        """Everything that arrives within SECONDS."""
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            f = self.recv(deadline - time.monotonic())
            if f is not None:
                got.append(f)
        return got


class ServiceDaemon(Daemon):
    """
    A Daemon with top-level configuration keys, an environment of its
    own, and optionally a socket passed as descriptor 3 with LISTEN_FDS.
    """

    def __init__(self, top=None, env=None, passed=None, **kw):
        self.top = dict(top or {})
        self.env = dict(env or {})
        self.passed = passed  # (listening socket, its path) or None
        super().__init__(**kw)

    @property
    def socket_path(self):
        if self.passed is not None:
            return self.passed[1]
        return self.config["socket"]["path"]

    def write_config(self):
        text = "".join("%s = %s;\n" % (k, _config_value(v))
                for k, v in self.top.items())
        write_file(self.conf_path, text + render_config(self.config))
        return self.conf_path

    def start(self, wait=True, timeout=START_TIMEOUT):
        self.write_config()
        self.returncode = None
        self.start_offset = self.log_size()
        env = dict(os.environ)
        for k in MANAGER_VARS:
            env.pop(k, None)
        env.update(self.env)
        argv = [SMSGWD, "-c", self.conf_path]
        preexec = None
        if self.passed is not None:
            # LISTEN_PID must be the daemon's pid: a shell that execs it
            # knows it as $$. The socket goes to descriptor 3.
            env["LISTEN_FDS"] = "1"
            argv = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"'] + argv
            fd = self.passed[0].fileno()
            preexec = lambda: os.dup2(fd, 3)
        with open(self.out_path, "ab") as out, \
                open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, env=env, cwd=self.dir,
                    close_fds=False, preexec_fn=preexec)
        harness._processes.append(self.proc)
        if wait:
            self.wait_ready(timeout)
            if self.hold:
                self.prime()
        return self


def service_daemon(t, start=True, workdir=None, **kw):
    d = ServiceDaemon(workdir=workdir or t.tempdir(), **kw)
    t.defer(d.cleanup)
    if start:
        d.start()
    return d


def notify(t, directory=None, abstract=False):
    n = Notify(directory or t.tempdir(), abstract=abstract)
    t.defer(n.close)
    return n


def send_ok(d, text="hello", **extra):
    req = {"op": "send", "to": NUMBER, "text": text}
    req.update(extra)
    r = check_ok(d.request(req), "send %r" % text)
    check(is_id(r.get("id")), "send answered no id: %r" % (r,))
    return r["id"]


def proc_status(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return fields


def bad_request(d):
    """A request the daemon refuses, logging it at debug level only."""
    with d.client() as c:
        r = c.request(b"{not json\n")
        check(r.get("ok") is False, "a bad request was accepted: %r" % r)


def reload(d, n=None):
    """SIGHUP; with a notify socket, waits for RELOADING=1 then READY=1."""
    d.signal(signal.SIGHUP)
    if n is not None:
        n.wait_for("RELOADING", "1")
        n.wait_for("READY", "1")


def wait_all_sent(d, ids, timeout=15.0):
    def done():
        with d.client() as c:
            answers = c.pipeline([{"op": "status", "id": i} for i in ids])
        states = [a.get("state") for a in answers]
        return all(s == "sent" for s in states) and states
    wait_until(done, timeout, "every acknowledged message to be sent")


# ------------------------------------------------------------- notify

@suite.case("READY=1 comes once the socket accepts and the store is loaded")
def _(t):
    d = service_daemon(t)
    for i in range(3):
        send_ok(d, "before the restart %d" % i)
    check_eq(d.stop(), 0, "exit status")

    n = notify(t)
    d.env["NOTIFY_SOCKET"] = n.address
    d.start(wait=False)
    first = n.recv(START_TIMEOUT)
    check(first is not None, "no notification at all")
    # The very first datagram says ready: nothing is half-started.
    check_eq(first.get("READY"), "1", "first notification")
    with Client(d.socket_path, timeout=2) as c:
        check_ok(c.request({"op": "ping"}), "ping right after READY=1")
    check(re.match(STATUS_RE, first.get("STATUS", "")),
            "READY=1 came without a STATUS: %r" % first)
    check(first["STATUS"].startswith("queued=3 "),
            "READY=1 before the store was loaded: %r" % first["STATUS"])
    d.wait_ready()
    check_eq(d.stop(), 0, "exit status")


@suite.case("STATUS= lines come every stats interval, with the hold reason")
def _(t):
    n = notify(t)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address},
            config={"log": {"stats_interval": 1}})
    n.wait_for("READY", "1")
    got = [f for f in n.drain(2.6) if "STATUS" in f]
    check(len(got) >= 2, "%d STATUS notifications in 2.6s" % len(got))
    for f in got:
        check(re.match(STATUS_RE, f["STATUS"]), "STATUS=%r" % f["STATUS"])
    # The harness put the daemon on hold (credentials refused).
    check("hold=authentication-failed" in got[-1]["STATUS"],
            "STATUS does not show the hold: %r" % got[-1]["STATUS"])


@suite.case("WATCHDOG=1 keeps coming at half of WATCHDOG_USEC")
def _(t):
    n = notify(t)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address,
            "WATCHDOG_USEC": "400000"})
    n.wait_for("READY", "1")
    got = [f for f in n.drain(2.0) if f.get("WATCHDOG") == "1"]
    # One every 200 ms: about 10 in two seconds.
    check(6 <= len(got) <= 14, "%d WATCHDOG=1 in 2s" % len(got))
    d.ping()


@suite.case("no WATCHDOG=1 when WATCHDOG_PID names another process")
def _(t):
    n = notify(t)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address,
            "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    n.wait_for("READY", "1")
    got = [f for f in n.drain(1.0) if "WATCHDOG" in f]
    check_eq(got, [], "watchdog notifications")
    d.ping()


@suite.case("an abstract NOTIFY_SOCKET name works")
def _(t):
    n = notify(t, abstract=True)
    check(n.address.startswith("@"), "not abstract: %s" % n.address)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address}, start=False)
    d.start(wait=False)
    n.wait_for("READY", "1", timeout=START_TIMEOUT)
    d.wait_ready()
    d.signal(signal.SIGTERM)
    n.wait_for("STOPPING", "1")
    check_eq(d.wait(), 0, "exit status")


@suite.case("STOPPING=1 on SIGTERM, with more time asked for the drain")
def _(t):
    n = notify(t)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address},
            top={"shutdown_timeout": 7})
    n.wait_for("READY", "1")
    d.signal(signal.SIGTERM)
    f = n.wait_for("STOPPING", "1")
    check_eq(f.get("EXTEND_TIMEOUT_USEC"), str((7 + 10) * 1000000),
            "EXTEND_TIMEOUT_USEC")
    check_eq(d.wait(), 0, "exit status")


# ------------------------------------------------------ socket activation

@suite.case("a socket passed with LISTEN_FDS is used, none is made")
def _(t):
    work = t.tempdir()
    path = os.path.join(work, "passed.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    t.defer(lsock.close)
    lsock.bind(path)
    lsock.listen(16)
    inode = os.stat(path).st_ino
    own = os.path.join(work, "own.sock")

    n = notify(t, work)
    d = service_daemon(t, workdir=work, passed=(lsock, path),
            env={"NOTIFY_SOCKET": n.address},
            config={"socket": {"path": own}})
    n.wait_for("READY", "1")
    d.ping()
    sid = send_ok(d, "through the passed socket")
    check_ok(d.request({"op": "status", "id": sid}), "status")
    check(not os.path.exists(own), "the daemon made its own socket")
    d.wait_log(r"smsgwd started .*activated=yes", offset=d.start_offset)
    check_eq(d.stop(), 0, "exit status")
    # The socket is the manager's: the daemon leaves it in place.
    check(os.path.exists(path), "the daemon removed the passed socket")
    check_eq(os.stat(path).st_ino, inode, "inode of the passed socket")


@suite.case("a passed socket that does not listen stops the start")
def _(t):
    work = t.tempdir()
    path = os.path.join(work, "idle.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    t.defer(s.close)
    s.bind(path)
    d = service_daemon(t, workdir=work, passed=(s, path), start=False)
    d.start(wait=False)
    check_eq(d.wait(), 1, "exit status")
    d.wait_log(r"smsgwd start-failed reason=passed-socket "
            r"error=passed descriptor 3 is not listening")


# ---------------------------------------------------------------- SIGHUP

@suite.case("SIGHUP applies a new log level: debug lines come and go")
def _(t):
    n = notify(t)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address},
            config={"log": {"level": "info"}})
    n.wait_for("READY", "1")
    off = d.log_size()
    bad_request(d)

    d.config["log"]["level"] = "debug"
    d.write_config()
    reload(d, n)
    d.wait_log(r"config reloaded file=\S+ changed=log\.level "
            r"restart_needed=-", offset=off)
    bad_request(d)
    d.wait_log(r"control bad-request", offset=off)
    check_eq(d.log_text(offset=off).count("control bad-request"), 1,
            "debug lines: only the one after the reload")

    off = d.log_size()
    d.config["log"]["level"] = "info"
    d.write_config()
    reload(d, n)
    d.wait_log(r"config reloaded .*changed=log\.level", offset=off)
    bad_request(d)
    d.ping()
    check("control bad-request" not in d.log_text(offset=off),
            "a debug line after going back to info")


@suite.case("SIGHUP with an invalid file keeps the old configuration")
def _(t):
    n = notify(t)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address},
            config={"log": {"level": "info"}})
    n.wait_for("READY", "1")
    off = d.log_size()
    good = open(d.conf_path).read()
    write_file(d.conf_path, "shutdown_timeout = 9999;\n" + good.replace(
            'level = "info"', 'level = "debug"') + "bogus = 1;\n")
    reload(d, n)
    d.wait_log(r"(?s)(config reload-failed.*){2}", offset=off)
    failed = [l for l in d.log_text(offset=off).splitlines()
            if "config reload-failed" in l]
    check_eq(len(failed), 2, "reload-failed lines: %r" % failed)
    check(re.search(r"file=%s line=1 problem=shutdown_timeout:\\x20"
            r"9999\\x20is\\x20above" % re.escape(d.conf_path), failed[0]),
            "first problem: %r" % failed[0])
    check(re.search(r"line=\d+ problem=unknown\\x20key\\x20'bogus'",
            failed[1]), "second problem: %r" % failed[1])
    check("config reloaded" not in d.log_text(offset=off),
            "an invalid file was applied")
    # Still running, still at level info.
    d.ping()
    bad_request(d)
    send_ok(d, "after a failed reload")
    check("control bad-request" not in d.log_text(offset=off),
            "the level of the invalid file was applied")

    write_file(d.conf_path, good.replace('level = "info"',
            'level = "debug"'))
    off = d.log_size()
    reload(d, n)
    d.wait_log(r"config reloaded .*changed=log\.level", offset=off)


@suite.case("SIGHUP names the keys that need a restart, and keeps them")
def _(t):
    d = service_daemon(t)
    off = d.log_size()
    old = d.socket_path
    d.config["socket"]["path"] = os.path.join(d.dir, "moved.sock")
    d.config["upstream"]["password"] = "another-secret"
    d.config["upstream"]["max_concurrency"] = 4
    d.write_config()
    reload(d)
    d.wait_log(r"config reloaded file=\S+ changed=socket\.path,"
            r"upstream\.password,upstream\.max_concurrency "
            r"restart_needed=socket\.path", offset=off)
    check("another-secret" not in d.log_text(), "the password is logged")
    with Client(old) as c:
        check_ok(c.request({"op": "ping"}), "ping on the old path")
    check(not os.path.exists(d.config["socket"]["path"]),
            "a socket at the new path before a restart")
    # Still to be restarted: the next reload says so again.
    off = d.log_size()
    reload(d)
    d.wait_log(r"config reloaded .*changed=socket\.path "
            r"restart_needed=socket\.path", offset=off)
    d.config["socket"]["path"] = old


# --------------------------------------------------------------- SIGTERM

def flood(t, latency_ms, count, **top):
    """A daemon sending COUNT messages to a slow fakeup; waits until some
    are in flight. Returns (daemon, fakeup, notify, ids)."""
    up = t.fakeup("--latency-ms", str(latency_ms))
    n = notify(t)
    d = service_daemon(t, env={"NOTIFY_SOCKET": n.address}, top=top,
            config={"upstream": {"url": up.url(), "username": "demo",
            "password": "demo"}, "log": {"level": "info"}})
    n.wait_for("READY", "1")
    ids = [send_ok(d, "flood message %d" % i) for i in range(count)]
    wait_until(lambda: up.control("stats").get("inflight", 0) >= 2, 5,
            "requests in flight at the upstream")
    return d, up, n, ids


def restart_fast(d, up, ids):
    """Restarts on the same store with a fast upstream: all get sent."""
    up.control("set?latency_ms=0")
    d.env = {}
    d.start()
    wait_all_sent(d, ids)
    texts = [m.get("text") for m in up_messages(up)]
    for i in range(len(ids)):
        check("flood message %d" % i in texts,
                "message %d never reached the upstream" % i)


def up_messages(up):
    import json
    import urllib.request
    with urllib.request.urlopen(up.url("/_control/messages"),
            timeout=5) as r:
        body = r.read().decode("utf-8")
    return [json.loads(l) for l in body.splitlines() if l.strip()]


@suite.case("SIGTERM lets requests in flight finish, loses nothing, exits 0",
        timeout=30)
def _(t):
    d, up, n, ids = flood(t, 2000, 12)
    c = t.client(d)
    check_ok(c.request({"op": "ping"}), "ping before SIGTERM")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    n.wait_for("STOPPING", "1")
    # While the drain runs, an open connection gets shutting_down for a
    # send, and nobody new gets in.
    r = c.request({"op": "send", "to": NUMBER, "text": "late"})
    check_eq(r.get("error"), "shutting_down", "a send during the drain")
    try:
        Client(d.socket_path, timeout=2).close()
        raise Failure("a new connection was accepted during the drain")
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    check_eq(d.wait(10), 0, "exit status")
    took = time.monotonic() - t0
    check(took >= 1.0, "exited after %.1fs, before the answers came" % took)
    log = d.log_text(offset=d.start_offset)
    check("drain-timeout" not in log, "the drain timed out")
    m = re.search(r"smsgwd stopping signal=15 inflight=(\d+)", log)
    check(m is not None and int(m.group(1)) >= 2, "stopping line: %r" %
            (m and m.group(0)))
    check_eq(log.count("msg sent id="), int(m.group(1)),
            "messages recorded sent during the drain")
    restart_fast(d, up, ids)
    check_eq(up.control("stats").get("duplicates"), 0,
            "messages the upstream got twice")


@suite.case("a second SIGTERM exits at once; nothing acknowledged is lost",
        timeout=30)
def _(t):
    d, up, n, ids = flood(t, 4000, 8)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    n.wait_for("STOPPING", "1")
    d.signal(signal.SIGTERM)
    check_eq(d.wait(5), 0, "exit status")
    check(time.monotonic() - t0 < 2.0, "the second SIGTERM did not cut "
            "the drain short")
    d.wait_log(r"smsgwd stop-now", offset=d.start_offset)
    restart_fast(d, up, ids)
    d.wait_log(r"msg ambiguous id=\S+ .*action=resend", offset=d.start_offset)


@suite.case("shutdown_timeout cuts the drain short; the cut-off resend",
        timeout=30)
def _(t):
    d, up, n, ids = flood(t, 5000, 6, shutdown_timeout=1)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    check_eq(d.wait(5), 0, "exit status")
    took = time.monotonic() - t0
    check(0.8 <= took < 3.0, "exited after %.1fs, shutdown_timeout is 1"
            % took)
    d.wait_log(r"smsgwd drain-timeout inflight=\d+", offset=d.start_offset)
    restart_fast(d, up, ids)


# ------------------------------------------------------------ privileges

def nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


@suite.case("as root with user set: runs as that user, still serves")
def _(t):
    pw = nobody()
    if os.geteuid() != 0 or pw is None:
        print("# skip: needs root and a user nobody", flush=True)
        return
    work = t.tempdir()
    os.chown(work, pw.pw_uid, pw.pw_gid)
    os.chmod(work, 0o750)
    d = service_daemon(t, workdir=work, top={"user": "nobody"})
    st = proc_status(d.pid)
    check_eq(st["Uid"], [str(pw.pw_uid)] * 4, "Uid (real, effective, "
            "saved, filesystem)")
    check_eq(st["Gid"], [str(pw.pw_gid)] * 4, "Gid")
    check("0" not in st.get("Groups", []), "still in group 0: %r" %
            st.get("Groups"))
    d.ping()
    sid = send_ok(d, "sent by an unprivileged daemon")
    check_ok(d.request({"op": "status", "id": sid}), "status")
    for f in (d.store_path, d.store_path + "-wal", d.socket_path,
            d.log_path):
        check_eq(os.stat(f).st_uid, pw.pw_uid, "owner of %s" % f)
    d.wait_log(r"smsgwd privileges-dropped user=nobody uid=%d gid=%d" %
            (pw.pw_uid, pw.pw_gid))
    check("running-as-root" not in d.log_text(), "warned about root")
    # The log file can still be reopened, and the store written, after
    # a reload.
    reload(d)
    d.wait_log(r"config reloaded")
    send_ok(d, "after the reload")
    check_eq(d.stop(), 0, "exit status")
    check(not os.path.exists(d.socket_path), "the socket was left behind")
    # And it starts again on what it left, as root once more.
    d.start()
    check_eq(proc_status(d.pid)["Uid"][0], str(pw.pw_uid), "Uid again")


@suite.case("as root without user: a warning that it stays root")
def _(t):
    d = service_daemon(t)
    text = d.log_text()
    if os.geteuid() == 0:
        check_eq(text.count("smsgwd running-as-root"), 1,
                "running-as-root warnings")
    else:
        check("running-as-root" not in text, "warned, but not root")


@suite.case("an unknown user stops the start before any file is made")
def _(t):
    if os.geteuid() != 0:
        print("# skip: needs root", flush=True)
        return
    d = service_daemon(t, top={"user": "no-such-user-smsgw"}, start=False)
    d.start(wait=False)
    check_eq(d.wait(), 1, "exit status")
    d.wait_log(r"smsgwd start-failed reason=user error=unknown user "
            r"no-such-user-smsgw")
    check(not os.path.exists(d.store_path), "the store was made")


if __name__ == "__main__":
    suite.main()
