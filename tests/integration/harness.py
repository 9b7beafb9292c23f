# harness.py: shared helpers of the smsgwd integration tests: temporary
# directories, daemons and the fake upstream, a JSON Lines client, and a
# small runner that prints "ok - NAME" / "not ok - NAME: WHY" per case.
#
# Every wait here is bounded. Whatever a script starts is killed and every
# directory it made is removed when it exits, however it exits.

import atexit
import http.server
import json
import os
import re
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

_HERE = os.path.dirname(os.path.abspath(__file__))
_TOP = os.path.dirname(os.path.dirname(_HERE))

BUILDDIR = os.environ.get("SMSGW_BUILDDIR") or _TOP
SRCDIR = os.environ.get("SMSGW_SRCDIR") or _TOP
SMSGWD = os.path.join(BUILDDIR, "smsgwd")
SMSGWCTL = os.path.join(BUILDDIR, "smsgwctl")
FAKEUP = os.path.join(BUILDDIR, "tests", "fakeup")

START_TIMEOUT = 10.0  # seconds for a daemon to accept connections
STOP_TIMEOUT = 10.0  # seconds for a daemon to exit after SIGTERM
IO_TIMEOUT = 5.0  # default seconds for one answer

# A Unix socket address holds at most 107 bytes.
_SUN_PATH_MAX = 107

# Everything started or made, for the exit handlers.
_processes = []
_tempdirs = []
_servers = []


class Failure(Exception):
    """A case's expectation that did not hold."""


class CaseTimeout(Exception):
    """A case ran longer than it may."""


class Skip(Exception):
    """The whole script cannot run here (exit 77)."""


# ---------------------------------------------------------------- checks

def check(cond, why):
    if not cond:
        raise Failure(why)


def check_eq(actual, expected, what):
    if actual != expected:
        raise Failure("%s: expected %r, got %r" % (what, expected, actual))


def check_ok(resp, what):
    if not isinstance(resp, dict) or resp.get("ok") is not True:
        raise Failure("%s: expected ok:true, got %s" % (what, _short(resp)))
    return resp


def check_error(resp, code, what):
    if not isinstance(resp, dict) or resp.get("ok") is not False:
        raise Failure("%s: expected error %s, got %s" %
                (what, code, _short(resp)))
    if resp.get("error") != code:
        raise Failure("%s: expected error %s, got %s" %
                (what, code, _short(resp)))
    if not isinstance(resp.get("message"), str):
        raise Failure("%s: error response has no message: %s" %
                (what, _short(resp)))
    return resp


def is_id(v):
    return isinstance(v, str) and re.fullmatch(r"[0-9a-f]{16}", v) is not None


def _short(v, n=300):
    s = v if isinstance(v, str) else repr(v)
    return s if len(s) <= n else s[:n] + "..."


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred() until it is true; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Failure("timed out after %.1fs waiting for %s" %
                    (timeout, what))
        time.sleep(interval)


# ----------------------------------------------------- cleanup at exit

def _cleanup_all():
    for p in list(_processes):
        _reap(p)
    for srv in list(_servers):
        srv.close()
    for d in list(_tempdirs):
        shutil.rmtree(d, ignore_errors=True)
        _tempdirs.remove(d)


def _reap(p):
    if p.poll() is None:
        try:
            p.kill()
        except OSError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    if p in _processes:
        _processes.remove(p)


def _on_signal(signo, frame):
    # Turned into an exit so that atexit and finally blocks run.
    raise SystemExit(128 + signo)


atexit.register(_cleanup_all)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


def make_tempdir(prefix="smsgw-it-"):
    """A fresh directory, short enough to hold a socket path."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    _tempdirs.append(d)
    return d


def remove_tempdir(d):
    shutil.rmtree(d, ignore_errors=True)
    if d in _tempdirs:
        _tempdirs.remove(d)


def spawn(argv, stdout=None, stderr=None, env=None, cwd=None):
    """Starts a process that is killed at exit if still running."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
            stderr=stderr, env=env, cwd=cwd, close_fds=True)
    _processes.append(p)
    return p


# --------------------------------------------------------- configuration

def _config_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        out = []
        for ch in v:
            if ch in "\\\"":
                out.append("\\" + ch)
            elif ch == "\n":
                out.append("\\n")
            elif ch == "\t":
                out.append("\\t")
            elif ord(ch) < 0x20:
                out.append("\\x%02x" % ord(ch))
            else:
                out.append(ch)
        return "\"" + "".join(out) + "\""
    raise TypeError("no libconfig form for %r" % (v,))


def render_config(cfg):
    """A libconfig text from {"group": {"key": value}}."""
    lines = ["# written by the smsgwd integration tests"]
    for group in cfg:
        lines.append("%s = {" % group)
        for key, value in cfg[group].items():
            lines.append("\t%s = %s;" % (key, _config_value(value)))
        lines.append("};")
    return "\n".join(lines) + "\n"


def merge_config(base, overrides):
    """A copy of base with overrides applied; a value None drops a key."""
    out = {g: dict(keys) for g, keys in base.items()}
    for group, keys in (overrides or {}).items():
        dst = out.setdefault(group, {})
        for key, value in keys.items():
            if value is None:
                dst.pop(key, None)
            else:
                dst[key] = value
    return out


def write_file(path, text, mode=0o644):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


# ------------------------------------------------------- hold upstream

class HoldUpstream:
    """
    An upstream that refuses every request as "authentication failed"
    (-8), an answer on which the daemon puts all sending on hold. Once
    on hold, messages stay queued, which is what tests of the socket and
    of the store need. It runs in this process: no build needed.
    """

    BODY = b'{"status":-8,"message":"Authentication failed",' \
            b'"details":null}'

    def __init__(self):
        owner = self
        self.requests = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with owner.lock:
                    owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length",
                        str(len(owner.BODY)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(owner.BODY)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        _servers.append(self)

    def url(self):
        return "http://127.0.0.1:%d/json" % self.server.server_address[1]

    def close(self):
        if self in _servers:
            _servers.remove(self)
            self.server.shutdown()
            self.server.server_close()


_hold_upstream = None


def hold_upstream():
    """The script's one HoldUpstream, started on first use."""
    global _hold_upstream
    if _hold_upstream is None:
        _hold_upstream = HoldUpstream()
    return _hold_upstream


# ---------------------------------------------------------------- client

class ConnectionClosed(Exception):
    """The daemon closed the connection (or reset it)."""


class Client:
    """One connection to the daemon's socket, speaking JSON Lines."""

    def __init__(self, path, timeout=IO_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.last_raw = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def fileno(self):
        return self.sock.fileno()

    @staticmethod
    def encode(req):
        """A request line: dicts and lists as JSON, bytes as they are."""
        if isinstance(req, (bytes, bytearray)):
            return bytes(req)
        if isinstance(req, str):
            return req.encode("utf-8") + b"\n"
        return json.dumps(req, separators=(",", ":"),
                ensure_ascii=False).encode("utf-8") + b"\n"

    def send(self, req, timeout=None):
        """Sends a request (a dict, a str line or raw bytes)."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        self.sock.sendall(self.encode(req))

    def send_many(self, reqs, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        self.sock.sendall(b"".join(self.encode(r) for r in reqs))

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, deadline):
        """Reads more bytes; False at EOF. Raises Failure on timeout."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("no answer within the timeout (have %d "
                    "bytes: %s)" % (len(self.buf),
                    _short(bytes(self.buf), 120)))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Failure("no answer within the timeout (have %d "
                    "bytes: %s)" % (len(self.buf),
                    _short(bytes(self.buf), 120)))
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def recv_line(self, timeout=None):
        """One answer line without its newline; None at EOF."""
        deadline = time.monotonic() + (self.timeout if timeout is None
                else timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                self.last_raw = line
                return line
            if self.eof or not self._fill(deadline):
                return None

    def recv(self, timeout=None):
        """One answer, parsed; raises ConnectionClosed at EOF."""
        line = self.recv_line(timeout)
        if line is None:
            raise ConnectionClosed("the daemon closed the connection"
                    + (" leaving %r" % bytes(self.buf) if self.buf else ""))
        return parse_line(line)

    def recv_many(self, n, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None
                else timeout)
        return [self.recv(max(0.001, deadline - time.monotonic()))
                for _ in range(n)]

    def request(self, req, timeout=None):
        self.send(req, timeout)
        return self.recv(timeout)

    def wait_closed(self, timeout=None):
        """Waits for EOF; returns the lines that came before it."""
        deadline = time.monotonic() + (self.timeout if timeout is None
                else timeout)
        lines = []
        while True:
            line = self.recv_line(max(0.001,
                    deadline - time.monotonic()))
            if line is None:
                return lines
            lines.append(line)

    def pipeline(self, reqs, timeout=30.0, raw=False):
        """
        Sends every request while reading answers, so that neither
        side blocks the other; returns one answer per request, in
        the order they came.
        """
        data = memoryview(b"".join(self.encode(r) for r in reqs))
        lines = self.pipeline_raw(data, len(reqs), timeout)
        return lines if raw else [parse_line(l) for l in lines]

    def pipeline_raw(self, data, count, timeout=30.0):
        deadline = time.monotonic() + timeout
        data = memoryview(data)
        lines = []
        sel = selectors.DefaultSelector()
        self.sock.setblocking(False)
        try:
            sel.register(self.sock, selectors.EVENT_READ |
                    (selectors.EVENT_WRITE if data else 0))
            while len(lines) < count:
                while len(lines) < count:
                    i = self.buf.find(b"\n")
                    if i < 0:
                        break
                    lines.append(bytes(self.buf[:i]))
                    del self.buf[:i + 1]
                if len(lines) >= count:
                    break
                if self.eof:
                    raise ConnectionClosed("connection closed "
                            "after %d of %d answers" %
                            (len(lines), count))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("pipeline: %d of %d answers "
                            "within %.0fs" % (len(lines), count,
                            timeout))
                for key, ev in sel.select(min(left, 0.5)):
                    if ev & selectors.EVENT_READ:
                        self._read_nonblocking()
                    if ev & selectors.EVENT_WRITE and data:
                        data = self._write_nonblocking(data)
                        if not data:
                            sel.modify(self.sock,
                                    selectors.EVENT_READ)
        finally:
            sel.close()
            if self.sock is not None:
                self.sock.setblocking(True)
                self.sock.settimeout(self.timeout)
        return lines

    def _read_nonblocking(self):
        try:
            chunk = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            chunk = b""
        if chunk:
            self.buf += chunk
        else:
            self.eof = True

    def _write_nonblocking(self, data):
        try:
            n = self.sock.send(data[:262144])
        except (BlockingIOError, InterruptedError):
            return data
        except (BrokenPipeError, ConnectionResetError):
            self.eof = True
            return data[len(data):]
        return data[n:]


def write_unread(t, path, data, idle, total):
    """Writes DATA to a new connection to PATH and reads nothing, until the
    daemon has taken nothing for IDLE s (backpressure) or TOTAL s passed.
    Returns the socket (closed with T) and how many bytes it took."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    t.defer(s.close)
    s.settimeout(5)
    s.connect(path)
    s.setblocking(False)
    view = memoryview(data)
    sent = 0
    deadline = time.monotonic() + total
    while sent < len(data) and time.monotonic() < deadline:
        _, w, _ = select.select([], [s], [], idle)
        if not w:
            break
        try:
            sent += s.send(view[sent:sent + 65536])
        except BlockingIOError:
            pass
    return s, sent


def read_answers(s, data, sent, n, timeout):
    """Goes on after write_unread: writes the rest of DATA on S as the
    daemon takes it, and yields the first N answer lines, in order, within
    TIMEOUT s."""
    view = memoryview(data)
    buf = bytearray()
    got = 0
    end = time.monotonic() + timeout
    while got < n:
        left = end - time.monotonic()
        check(left > 0, "only %d of %d answers in time" % (got, n))
        want_w = [s] if sent < len(data) else []
        r, w, _ = select.select([s], want_w, [], min(left, 1.0))
        if w:
            try:
                sent += s.send(view[sent:sent + 262144])
            except BlockingIOError:
                pass
        if r:
            chunk = s.recv(1 << 20)
            check(chunk, "connection closed after %d answers" % got)
            buf += chunk
            last = buf.rfind(b"\n")
            if last < 0:
                continue
            for line in bytes(buf[:last]).split(b"\n"):
                yield line
                got += 1
            del buf[:last + 1]


def multi_pipeline(path, streams, timeout=30.0, stop_after=None,
        on_stop=None):
    """
    Sends streams[i] (a list of requests) on connection i, all at once,
    while reading every connection. Returns, per connection, the answer
    lines read. When stop_after answers are in, on_stop() is called at
    once (before anything else is read) and the lines read so far are
    returned.
    """
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    conns = []
    try:
        for reqs in streams:
            c = Client(path)
            c.sock.setblocking(False)
            out = memoryview(b"".join(Client.encode(r) for r in reqs))
            conns.append({"c": c, "out": out, "want": len(reqs),
                    "lines": []})
            sel.register(c.sock, selectors.EVENT_READ |
                    selectors.EVENT_WRITE, conns[-1])
        total = 0
        while True:
            if stop_after is not None and total >= stop_after:
                if on_stop is not None:
                    on_stop()
                break
            if all(len(x["lines"]) >= x["want"] for x in conns):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("multi_pipeline: %d answers within "
                        "%.0fs" % (total, timeout))
            for key, ev in sel.select(min(left, 0.5)):
                x = key.data
                c = x["c"]
                if ev & selectors.EVENT_WRITE and x["out"]:
                    x["out"] = c._write_nonblocking(x["out"])
                    if not x["out"]:
                        sel.modify(c.sock, selectors.EVENT_READ, x)
                if ev & selectors.EVENT_READ:
                    c._read_nonblocking()
                    while True:
                        i = c.buf.find(b"\n")
                        if i < 0:
                            break
                        x["lines"].append(bytes(c.buf[:i]))
                        del c.buf[:i + 1]
                        total += 1
                    if c.eof and len(x["lines"]) < x["want"]:
                        raise ConnectionClosed("connection closed "
                                "after %d of %d answers" %
                                (len(x["lines"]), x["want"]))
        return [x["lines"] for x in conns]
    finally:
        sel.close()
        for x in conns:
            x["c"].close()


def parse_line(line):
    try:
        return json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Failure("answer is not a JSON line (%s): %r" %
                (e, _short(bytes(line), 200)))


# ---------------------------------------------------------------- daemon

PRIMER_TO = "+19990000000"


class Daemon:
    """
    One smsgwd in a directory of its own (or a given one, to restart
    on the same store). Config overrides are {"group": {"key": value}}.

    Unless the config names an upstream.url (or hold=False), the daemon
    talks to the HoldUpstream and, once started, is primed: one message
    is sent, which puts the daemon on hold, and then cancelled. From then
    on every message a test sends stays queued. Each start on a store
    adds one cancelled primer to it (counted in self.primers).
    """

    def __init__(self, workdir=None, config=None, name="smsgwd",
            hold=None):
        self.dir = workdir or make_tempdir()
        self.name = name
        if hold is None:
            hold = "url" not in (config or {}).get("upstream", {})
        self.hold = hold
        self.primers = 0
        self.conf_path = os.path.join(self.dir, name + ".conf")
        self.out_path = os.path.join(self.dir, name + ".stdout")
        self.err_path = os.path.join(self.dir, name + ".stderr")
        self.overrides = config or {}
        self.config = merge_config(self.default_config(), self.overrides)
        self.proc = None
        self.returncode = None
        self.start_offset = 0
        check(len(self.socket_path.encode()) <= _SUN_PATH_MAX,
                "socket path too long: %s" % self.socket_path)

    def default_config(self):
        return {
                "socket": {
                    "path": os.path.join(self.dir, "smsgwd.sock"),
                },
                "storage": {
                    "path": os.path.join(self.dir, "queue.db"),
                },
                "upstream": {
                    "url": hold_upstream().url(),
                    "username": "smsgw-test",
                    "password": "not-the-password",
                },
                "log": {
                    "target": os.path.join(self.dir, "smsgwd.log"),
                    "level": "debug",
                },
            }

    @property
    def socket_path(self):
        return self.config["socket"]["path"]

    @property
    def store_path(self):
        return self.config["storage"]["path"]

    @property
    def log_path(self):
        return self.config["log"]["target"]

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def write_config(self):
        write_file(self.conf_path, render_config(self.config))
        return self.conf_path

    def start(self, wait=True, timeout=START_TIMEOUT):
        if not os.access(SMSGWD, os.X_OK):
            raise Failure("%s is not built" % SMSGWD)
        self.write_config()
        self.returncode = None
        self.start_offset = self.log_size()
        with open(self.out_path, "ab") as out, \
                open(self.err_path, "ab") as err:
            self.proc = spawn([SMSGWD, "-c", self.conf_path],
                    stdout=out, stderr=err, cwd=self.dir)
        if wait:
            self.wait_ready(timeout)
            if self.hold:
                self.prime()
        return self

    def prime(self, timeout=5.0):
        """Puts the daemon on hold with a message it then cancels."""
        ref = "harness-primer-%d" % self.primers
        with self.client() as c:
            r = c.request({"op": "send", "to": PRIMER_TO,
                    "text": "primer", "ref": ref})
            check_ok(r, "primer send")
            pid = r["id"]

            def held():
                s = check_ok(c.request({"op": "stats"}), "stats")
                if "hold" not in s:
                    return True  # a daemon that never sends
                return s["hold"].get("active") is True and \
                        s.get("inflight", 0) == 0
            wait_until(held, timeout, "the daemon to hold sending")

            def queued():
                st = c.request({"op": "status", "id": pid})
                return check_ok(st, "primer status").get(
                        "state") == "queued"
            wait_until(queued, timeout, "the primer to be queued")
            check_ok(c.request({"op": "cancel", "id": pid}),
                    "primer cancel")
        self.primers += 1
        self.wait_idle()

    def wait_ready(self, timeout=START_TIMEOUT):
        """Waits until a ping is answered, and the probe is gone."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise Failure("%s exited with %s while starting; "
                        "stderr: %s; log: %s" % (self.name,
                        self.proc.returncode,
                        _short(self.stderr_text()),
                        _short(self.log_tail())))
            try:
                with Client(self.socket_path, timeout=2) as c:
                    check_ok(c.request({"op": "ping"}),
                            "ping of a starting daemon")
                break
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            if time.monotonic() >= deadline:
                raise Failure("%s did not accept connections "
                        "within %.0fs" % (self.name, timeout))
            time.sleep(0.02)
        self.wait_idle(max(0.5, deadline - time.monotonic()))

    def wait_idle(self, timeout=2.0):
        """
        Waits until the log shows every connection closed, so that a
        test counting connections starts from none. Needs a log file
        at level info or debug; else it returns at once.
        """
        if not self.log_path.startswith("/") or \
                self.config["log"].get("level") not in ("debug", "info"):
            return
        def idle():
            t = self.log_text(offset=self.start_offset)
            return t.count("control connect conn=") <= \
                    t.count("control disconnect conn=")
        wait_until(idle, timeout, "the daemon's connections to close")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signo):
        check(self.alive(), "%s is not running" % self.name)
        os.kill(self.proc.pid, signo)

    def wait(self, timeout=STOP_TIMEOUT):
        """Waits for the exit and returns its status (-N: signal N)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure("%s did not exit within %.0fs" %
                    (self.name, timeout))
        finally:
            if self.proc.poll() is not None and \
                    self.proc in _processes:
                _processes.remove(self.proc)
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.wait(timeout)
        except Failure:
            self.kill()
            raise

    def kill(self):
        """SIGKILL and wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        return self.wait(5)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()

    def restart(self, clean=True, wait=True):
        """Stops (SIGTERM, or SIGKILL when not clean) and starts again."""
        rc = self.stop() if clean else self.kill()
        self.start(wait=wait)
        return rc

    def client(self, timeout=IO_TIMEOUT):
        return Client(self.socket_path, timeout)

    def request(self, req, timeout=IO_TIMEOUT):
        """One request on a connection of its own."""
        with self.client(timeout) as c:
            return c.request(req, timeout)

    def ping(self, timeout=IO_TIMEOUT):
        check(self.alive(), "%s is not running (exit %s); log: %s" %
                (self.name, self.proc.returncode if self.proc else None,
                _short(self.log_tail())))
        try:
            check_ok(self.request({"op": "ping"}, timeout), "ping")
        except (OSError, ConnectionClosed) as e:
            raise Failure("ping failed: %s; alive=%s" %
                    (e, self.alive()))

    def stats(self):
        return check_ok(self.request({"op": "stats"}), "stats")

    def counts(self):
        m = self.stats().get("messages")
        check(isinstance(m, dict), "stats has no messages object")
        return m

    def ctl(self, *args, **kw):
        kw.setdefault("socket", self.socket_path)
        return run_ctl(*args, **kw)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failure("no VmRSS for pid %d" % self.proc.pid)

    # Logs and outputs.

    def log_text(self, path=None, offset=0):
        """The log (or another file) from byte offset on."""
        try:
            with open(path or self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_tail(self, n=10):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, pattern, timeout=5.0, offset=0, path=None):
        """Waits for pattern (a regex) in the log after offset bytes."""
        rx = re.compile(pattern)
        def found():
            return rx.search(self.log_text(path, offset))
        return wait_until(found, timeout, "log line /%s/" % pattern)

    def stderr_text(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""


_sanitized = None


def sanitized():
    """True when smsgwd is built with a sanitizer (memory is not lean)."""
    global _sanitized
    if _sanitized is None:
        try:
            with open(SMSGWD, "rb") as f:
                blob = f.read()
            _sanitized = b"AddressSanitizer" in blob or \
                    b"__asan_init" in blob or b"__ubsan_handle" in blob
        except OSError:
            _sanitized = False
    return _sanitized


def run_ctl(*args, socket=None, input=None, env=None, timeout=15):
    """Runs smsgwctl [-s SOCKET] ARGS; returns the CompletedProcess."""
    if not os.access(SMSGWCTL, os.X_OK):
        raise Failure("%s is not built" % SMSGWCTL)
    argv = [SMSGWCTL]
    if socket is not None:
        argv += ["-s", socket]
    argv += list(args)
    full_env = dict(os.environ)
    full_env.pop("SMSGW_SOCKET", None)
    full_env.update(env or {})
    if isinstance(input, str):
        input = input.encode("utf-8")
    try:
        p = subprocess.run(argv, input=input if input is not None
                else b"", capture_output=True, env=full_env,
                timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not finish within %ds" %
                (" ".join(argv), timeout))
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def run_smsgwd(*args, timeout=10):
    """Runs smsgwd ARGS to its end (for -n, -h); the CompletedProcess."""
    try:
        p = subprocess.run([SMSGWD] + list(args), capture_output=True,
                stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failure("smsgwd %s did not finish within %ds" %
                (" ".join(args), timeout))
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


# ---------------------------------------------------------- fake upstream

class FakeUp:
    """tests/fakeup on 127.0.0.1, on a port it picks itself."""

    def __init__(self, *args, workdir=None):
        self.dir = workdir or make_tempdir("smsgw-fu-")
        self.args = list(args)
        self.port_file = os.path.join(self.dir, "fakeup.port")
        self.out_path = os.path.join(self.dir, "fakeup.stdout")
        self.err_path = os.path.join(self.dir, "fakeup.stderr")
        self.proc = None
        self.port = None

    def start(self, timeout=START_TIMEOUT):
        if not os.access(FAKEUP, os.X_OK):
            raise Failure("%s is not built" % FAKEUP)
        try:
            os.unlink(self.port_file)
        except FileNotFoundError:
            pass
        with open(self.out_path, "ab") as out, \
                open(self.err_path, "ab") as err:
            self.proc = spawn([FAKEUP, "--listen", "127.0.0.1",
                    "--port", "0", "--port-file", self.port_file] +
                    self.args, stdout=out, stderr=err, cwd=self.dir)
        def ready():
            if self.proc.poll() is not None:
                raise Failure("fakeup exited with %s" %
                        self.proc.returncode)
            try:
                with open(self.port_file) as f:
                    return int(f.read().strip() or 0)
            except (FileNotFoundError, ValueError):
                return 0
        self.port = wait_until(ready, timeout, "fakeup's port file")
        return self

    def url(self, path="/json"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def control(self, path, timeout=IO_TIMEOUT):
        """GET /_control/PATH; returns the parsed JSON answer."""
        with urllib.request.urlopen(self.url("/_control/" + path),
                timeout=timeout) as r:
            return json.loads(r.read().decode("utf-8"))

    def stop(self, timeout=STOP_TIMEOUT):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _reap(self.proc)
            raise Failure("fakeup did not exit within %.0fs" %
                    timeout)
        finally:
            if self.proc in _processes and \
                    self.proc.poll() is not None:
                _processes.remove(self.proc)

    def cleanup(self):
        if self.proc is not None:
            _reap(self.proc)


# ---------------------------------------------------------------- runner

class Context:
    """What a case gets: daemons, directories and clients it may make,
    all cleaned up when it ends."""

    def __init__(self):
        self._cleanups = []

    def defer(self, fn, *args):
        self._cleanups.append((fn, args))

    def tempdir(self):
        d = make_tempdir()
        self.defer(remove_tempdir, d)
        return d

    def daemon(self, config=None, start=True, workdir=None,
            name="smsgwd"):
        if workdir is None:
            workdir = self.tempdir()
        d = Daemon(workdir=workdir, config=config, name=name)
        self.defer(d.cleanup)
        if start:
            d.start()
        return d

    def fakeup(self, *args, start=True):
        f = FakeUp(*args, workdir=self.tempdir())
        self.defer(f.cleanup)
        if start:
            f.start()
        return f

    def client(self, daemon_or_path, timeout=IO_TIMEOUT):
        path = getattr(daemon_or_path, "socket_path", daemon_or_path)
        c = Client(path, timeout)
        self.defer(c.close)
        return c

    def cleanup(self):
        while self._cleanups:
            fn, args = self._cleanups.pop()
            try:
                fn(*args)
            except Exception as e:  # cleanup must go on
                print("# cleanup: %s: %s" % (fn, e), flush=True)


def _alarm(signo, frame):
    raise CaseTimeout()


class Suite:
    """Cases run in order; each gets a Context and a time limit."""

    def __init__(self, name, budget=50.0):
        self.name = name
        self.budget = budget
        self.cases = []

    def case(self, name, timeout=15.0):
        def register(fn):
            self.cases.append((name, fn, timeout))
            return fn
        return register

    def run(self, only=None):
        started = time.monotonic()
        passed = failed = 0
        signal.signal(signal.SIGALRM, _alarm)
        if not os.access(SMSGWD, os.X_OK):
            print("# skip: %s is not built" % SMSGWD, flush=True)
            return 77

        for name, fn, timeout in self.cases:
            if only and not any(o in name for o in only):
                continue
            left = self.budget - (time.monotonic() - started)
            if left < 1:
                print("not ok - %s: not run, the script's %.0fs "
                        "budget is spent" % (name, self.budget),
                        flush=True)
                failed += 1
                continue
            limit = min(timeout, left)
            ctx = Context()
            t0 = time.monotonic()
            why = None
            try:
                signal.setitimer(signal.ITIMER_REAL, limit)
                try:
                    fn(ctx)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            except Failure as e:
                why = str(e)
            except CaseTimeout:
                why = "timed out after %.0fs" % limit
            except ConnectionClosed as e:
                why = "connection closed: %s" % e
            except Exception as e:
                tb = traceback.extract_tb(e.__traceback__)
                where = "%s:%d" % (os.path.basename(tb[-1].filename),
                        tb[-1].lineno) if tb else "?"
                why = "%s: %s (at %s)" % (type(e).__name__, e, where)
            finally:
                ctx.cleanup()
            dt = time.monotonic() - t0
            if why is None:
                passed += 1
                print("ok - %s" % name, flush=True)
            else:
                failed += 1
                why = why.replace("\n", "\\n")
                print("not ok - %s: %s" % (name, why), flush=True)
            if dt > 5:
                print("# %s took %.1fs" % (name, dt), flush=True)

        print("%d passed, %d failed" % (passed, failed), flush=True)
        return 0 if failed == 0 else 1

    def main(self):
        only = sys.argv[1:]
        try:
            rc = self.run(only)
        except Skip as e:
            print("# skip: %s" % e, flush=True)
            rc = 77
        finally:
            _cleanup_all()
        sys.exit(rc)
