# test_hostile.py: clients that mean harm, over the socket and on the
# delivery-report listener. A thousand connections at once, a client that
# trickles a byte a second, one that pipelines 100,000 sends and never
# reads, random binary garbage, nesting 100,000 deep, numbers beyond 64
# bits, duplicate keys, every field of every operation of the wrong type;
# on the listener, huge query strings, bad percent-encoding and a flood of
# forged tokens. The daemon must answer each as documented, stay up, keep
# serving everybody else and hold no resource without bound.
# test_badinput.py has the basic bad-input matrix; this suite goes further.

import http.client
import json
import os
import random
import re
import resource
import select
import selectors
import socket
import sys
import threading
import time

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Suite, Client, Daemon, Failure, check, check_eq,
        check_ok, check_error, parse_line, run_smsgwd, sanitized,
        read_answers, wait_until, write_unread)

suite = Suite("hostile", budget=90.0)

NUMBER = "+27821234567"
SEED = int(os.environ.get("SMSGW_SEED") or random.randrange(1 << 30))
# A sanitizer's quarantine keeps freed memory: memory bounds get room.
MEM_SLACK = 32 if sanitized() else 1
# A ping may take this long under hostile load; sanitizers slow all.
PING_MAX_S = 0.3 if sanitized() else 0.1

# The 1,000 connections of one case, and the daemon's, need descriptors.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _hard == resource.RLIM_INFINITY or _hard > _soft:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))
    except (ValueError, OSError):
        pass


# ------------------------------------------------------------ helpers

def fd_count(d):
    return len(os.listdir("/proc/%d/fd" % d.pid))


def send(**fields):
    req = {"op": "send", "to": NUMBER, "text": "hello"}
    req.update(fields)
    return req


def line(obj):
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj) + b"\n"
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def expect_errors(d, cases, what, timeout=30):
    """
    Pipelines every (request, error) on one connection, then a ping;
    each must get its error (a tuple: any of them), the ping ok.
    """
    with d.client(timeout=timeout) as c:
        answers = c.pipeline([line(r) for r, _ in cases] +
                [line({"op": "ping", "req": "after"})], timeout=timeout)
    for (req, code), a in zip(cases, answers):
        label = "%s %s" % (what, repr(req)[:150])
        codes = code if isinstance(code, tuple) else (code,)
        check(a.get("ok") is False and a.get("error") in codes,
                "%s: expected %s, got %r" % (label, "/".join(codes), a))
    check_eq(answers[-1], {"ok": True, "req": "after"},
            "the ping after the %s cases" % what)
    d.ping()
    return answers


def nonblocking_connect(path, timeout=10):
    """A connection, waiting while the listen backlog is full."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            if time.monotonic() >= deadline:
                s.close()
                raise Failure("the listen backlog stayed full for %.0fs" %
                        timeout)
            time.sleep(0.005)


def exchange(socks, payloads, timeout):
    """
    Writes payloads[i] on socks[i] (all at once) and reads each socket
    until it has a line or ends. Returns, per socket, (lines, closed).
    """
    sel = selectors.DefaultSelector()
    state = []
    for i, s in enumerate(socks):
        st = {"out": memoryview(payloads[i]), "buf": bytearray(),
                "closed": False}
        state.append(st)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
    deadline = time.monotonic() + timeout
    waiting = len(socks)
    try:
        while waiting > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("%d of %d connections got no answer within "
                        "%.0fs" % (waiting, len(socks), timeout))
            for key, ev in sel.select(min(left, 0.5)):
                i, s, st = key.data, key.fileobj, state[key.data]
                if ev & selectors.EVENT_WRITE and st["out"]:
                    try:
                        n = s.send(st["out"])
                        st["out"] = st["out"][n:]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        st["out"] = st["out"][len(st["out"]):]
                    if not st["out"]:
                        sel.modify(s, selectors.EVENT_READ, i)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = s.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if chunk:
                        st["buf"] += chunk
                    else:
                        st["closed"] = True
                    if st["closed"] or b"\n" in st["buf"]:
                        sel.unregister(s)
                        waiting -= 1
    finally:
        sel.close()
    return [([l for l in bytes(st["buf"]).split(b"\n") if l],
            st["closed"]) for st in state]


# ------------------------------------------------- 1000 connections

@suite.case("1000 connections, max_connections 500: 500 served, 500 "
        "refused, no fd leak", timeout=45)
def _(t):
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY and soft < 1100:
        print("# skip: RLIMIT_NOFILE is %d here, 1000 connections need "
                "more" % soft, flush=True)
        return
    d = t.daemon(config={"socket": {"max_connections": 500}})
    d.wait_idle()
    fd0 = fd_count(d)
    socks = []
    t.defer(lambda: [s.close() for s in socks])
    for i in range(1000):
        socks.append(nonblocking_connect(d.socket_path))

    pings = [line({"op": "ping", "req": i}) for i in range(1000)]
    result = exchange(socks, pings, timeout=20)
    served, refused, other = [], [], []
    for i, (lines, closed) in enumerate(result):
        first = parse_line(lines[0]) if lines else None
        if first == {"ok": True, "req": i} and not closed:
            served.append(i)
        elif isinstance(first, dict) and \
                first.get("error") == "too_many_connections":
            refused.append(i)
        else:
            other.append((i, lines[:2], closed))
    check(not other, "%d connections got neither an answer nor a refusal, "
            "e.g. %r" % (len(other), other[:3]))
    check_eq((len(served), len(refused)), (500, 500), "served, refused")
    check_eq(served, list(range(500)), "the connections served (the "
            "first 500)")

    # Each refused one got exactly one line, then the end.
    for i in refused:
        lines, closed = result[i]
        if not closed:
            lines += [l for l in _rest(socks[i]).split(b"\n") if l]
        check_eq(len(lines), 1, "lines on refused connection %d" % i)
        check_error(parse_line(lines[0]), "too_many_connections",
                "refusal of connection %d" % i)

    # The first ones keep being answered.
    for rnd in range(3):
        again = exchange([socks[i] for i in served],
                [line({"op": "ping", "req": "%d-%d" % (rnd, i)})
                for i in served], timeout=20)
        for i, (lines, closed) in zip(served, again):
            check(lines and parse_line(lines[0]) == {"ok": True,
                    "req": "%d-%d" % (rnd, i)} and not closed,
                    "round %d: connection %d got %r (closed %s)" % (rnd, i,
                    lines[:1], closed))
    fd_full = fd_count(d)
    check(d.log_text().count("control refused reason=too-many-connections")
            >= 500, "fewer than 500 'control refused "
            "reason=too-many-connections' lines")

    for s in socks:
        s.close()
    socks.clear()
    wait_until(lambda: fd_count(d) <= fd0 + 1, 10, "the daemon's fds to "
            "fall back to %d (now %d)" % (fd0, fd_count(d)), interval=0.1)
    print("# fds: %d at rest, %d with 500 connections, %d after they closed"
            % (fd0, fd_full, fd_count(d)), flush=True)
    d.ping()
    with d.client() as c:
        check_ok(c.request({"op": "stats"}), "stats on a new connection")


def _rest(s, timeout=5.0):
    """Whatever comes on s until its end; fails if the end does not come."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        check(left > 0, "a refused connection was not closed")
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            chunk = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk


# ------------------------------------------------- a byte a second

def slow_writer(path, data, per_s, out, seconds):
    """Writes data one byte per 1/per_s second for at most seconds."""
    try:
        with Client(path, timeout=10) as c:
            out["connected"] = True
            end = time.monotonic() + seconds
            for b in data:
                if time.monotonic() >= end:
                    break
                c.sock.sendall(bytes([b]))
                out["written"] = out.get("written", 0) + 1
                time.sleep(1.0 / per_s)
            out["sock"] = c.sock
            c.sock = None  # the test goes on with it
    except Exception as e:
        out["error"] = "%s: %s" % (type(e).__name__, e)


@suite.case("a client sending a byte a second holds one connection and "
        "max_line bytes; others are served", timeout=30)
def _(t):
    max_line = 1024
    d = t.daemon(config={"socket": {"max_line": max_line}})
    d.wait_idle()
    fd0 = fd_count(d)
    rss0 = d.rss_kb()
    req = b'{"op":"ping","req":"slow"}\n'
    out = {}
    th = threading.Thread(target=slow_writer, args=(d.socket_path, req, 1.0,
            out, 5.0), daemon=True)
    th.start()

    # A second one sits on a line of exactly max_line bytes, no newline.
    fat = Client(d.socket_path, timeout=5)
    t.defer(fat.close)
    fat.send(b'{"op":"ping","pad":"' + b"x" * (max_line - 22) + b'"}')

    # Meanwhile everybody else is served at once.
    worst = worst_new = 0.0
    fds = []
    end = time.monotonic() + 5.0
    with d.client() as c:
        n = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            check_eq(c.request({"op": "ping", "req": n}), {"ok": True,
                    "req": n}, "a ping while the slow client writes")
            t1 = time.monotonic()
            with d.client() as c2:
                check_ok(c2.request({"op": "stats"}), "stats on a new "
                        "connection")
            worst = max(worst, t1 - t0)
            worst_new = max(worst_new, time.monotonic() - t1)
            fds.append(fd_count(d))
            n += 1
            time.sleep(0.05)
    th.join(5)
    check(not out.get("error"), "the slow client: %s" % out.get("error"))
    check(4 <= out.get("written", 0) < len(req), "the slow client wrote %r "
            "bytes" % out.get("written"))
    check(worst < PING_MAX_S, "a ping took %.0f ms while the slow client "
            "wrote" % (worst * 1000))
    check(worst_new < 2 * PING_MAX_S, "a new connection's stats took %.0f "
            "ms while the slow client wrote" % (worst_new * 1000))
    # Slow, fat, c and c2: never more than these four.
    check(max(fds) <= fd0 + 4, "the daemon held %d fds, %d at rest" %
            (max(fds), fd0))
    grown = d.rss_kb() - rss0
    check(grown < 2048 * MEM_SLACK, "RSS grew by %d kB" % grown)

    # The trickled line is whole: the rest of it gets its answer.
    slow = out["sock"]
    t.defer(slow.close)
    slow.sendall(req[out["written"]:])
    slow.settimeout(5)
    got = b""
    while not got.endswith(b"\n"):
        chunk = slow.recv(4096)
        check(chunk, "the slow client's connection closed")
        got += chunk
    check_eq(json.loads(got), {"ok": True, "req": "slow"},
            "the answer to the trickled request")

    # The fat one may not add a byte: one more and it is cut off.
    check_eq(fat.sock.recv(1, socket.MSG_DONTWAIT) if _readable(fat.sock)
            else None, None, "an answer to a line of max_line bytes")
    fat.send(b"y")
    check_error(fat.recv(), "bad_request", "a line past max_line")
    check_eq(fat.wait_closed(5), [], "lines after the cut")
    d.ping()


def _readable(s):
    r, _, _ = select.select([s], [], [], 0)
    return bool(r)


# --------------------------------------- 100,000 sends never read

@suite.case("100,000 pipelined sends never read: memory bounded, all "
        "answered in order", timeout=60)
def _(t):
    n = 100000
    d = t.daemon(config={"storage": {"max_queued": 1000000}})
    data = b"".join(b'{"op":"send","to":"+27821234567","text":"p",'
            b'"req":%d}\n' % i for i in range(n))
    rss0 = d.rss_kb()
    # Write without reading until the daemon has taken nothing for 1 s.
    s, sent = write_unread(t, d.socket_path, data, 1.0, 20)
    time.sleep(0.3)
    rss1 = d.rss_kb()
    check(d.alive(), "the daemon died while not being read")
    check(sent < len(data), "the daemon read all %d bytes of sends from a "
            "client that read no answer (no backpressure)" % len(data))
    grown = rss1 - rss0
    print("# unread sends: %d of %d bytes taken, RSS %d -> %d kB" %
            (sent, len(data), rss0, rss1), flush=True)
    check(grown < 16 * 1024 * MEM_SLACK, "RSS grew by %d kB while the "
            "client did not read" % grown)
    d.ping()

    # Now read, and write the rest, until every answer is in.
    ids = set()
    for got, raw in enumerate(read_answers(s, data, sent, n, 40)):
        a = json.loads(raw)
        if a.get("ok") is not True or a.get("req") != got:
            raise Failure("answer %d is %r" % (got, raw[:120]))
        ids.add(a.get("id"))
    check_eq(len(ids), n, "distinct ids")
    rss2 = d.rss_kb()
    check(rss2 - rss0 < 64 * 1024 * MEM_SLACK, "RSS grew by %d kB in all" %
            (rss2 - rss0))
    check_eq(d.counts()["queued"], n, "queued")


# ----------------------------------------------------- binary garbage

@suite.case("random binary garbage: every line bad_request, long ones cut, "
        "daemon up")
def _(t):
    rnd = random.Random(SEED)
    print("# seed %d" % SEED, flush=True)
    max_line = 4096
    d = t.daemon(config={"socket": {"max_line": max_line}})

    # Lines of random bytes (no newline): each one bad_request.
    lines = []
    for _ in range(2000):
        n = rnd.randint(1, 300)
        lines.append(bytes(rnd.getrandbits(8) for _ in range(n))
                .replace(b"\n", b"\x00"))
    with d.client(timeout=20) as c:
        answers = c.pipeline([x + b"\n" for x in lines], timeout=20)
    for x, a in zip(lines, answers):
        check_error(a, "bad_request", "garbage line %r" % x[:40])

    # A random stream, newlines included: one bad_request per line.
    stream = bytes(rnd.getrandbits(8) for _ in range(1 << 20)) + b"\n"
    count = stream.count(b"\n")
    check(max(len(x) for x in stream.split(b"\n")) <= max_line,
            "the random stream has a line past max_line (seed %d)" % SEED)
    with d.client(timeout=30) as c:
        raw = c.pipeline_raw(stream, count, timeout=30)
    for i, l in enumerate(raw):
        check_error(parse_line(l), "bad_request", "stream line %d" % i)

    # Garbage past max_line without a newline: bad_request, then closed.
    with d.client() as c:
        c.send(bytes(rnd.getrandbits(8) for _ in range(3 * max_line))
                .replace(b"\n", b" "))
        check_error(c.recv(), "bad_request", "an over-long garbage line")
        check_eq(c.wait_closed(5), [], "lines after it")
    d.ping()
    check_eq(d.counts()["queued"], 0, "queued after garbage")


# --------------------------------------------------- deep nesting

@suite.case("nesting 100,000 deep within max_line: bad_request at once")
def _(t):
    d = t.daemon(config={"socket": {"max_line": 1 << 20}})
    rss0 = d.rss_kb()
    k = 100000
    cases = [
            b'{"op":"ping","x":' + b"[" * k + b"]" * k + b"}",
            b'{"op":"ping","x":' + b"[" * k,
            b"[" * k,
            b'{"op":"ping","x":' + b'{"a":' * k + b"1" + b"}" * k + b"}",
            b'{"op":"send","to":"+27821234567","text":"x","x":' +
                b"[{" * (k // 2) + b'"a":1' + b"}]" * (k // 2) + b"}",
        ]
    with d.client(timeout=10) as c:
        for x in cases:
            t0 = time.monotonic()
            check_error(c.request(x + b"\n", timeout=10), "bad_request",
                    "%d bytes of nesting %r..." % (len(x), x[:24]))
            dt = time.monotonic() - t0
            check(dt < 1.0, "%.1f s for %d bytes of nesting" % (dt, len(x)))
            check_ok(c.request({"op": "ping"}), "ping after the nesting")
    grown = d.rss_kb() - rss0
    check(grown < 16 * 1024 * MEM_SLACK, "RSS grew by %d kB" % grown)
    check_eq(d.counts()["queued"], 0, "queued")


# ------------------------------------------- numbers beyond 64 bits

BIG = [b"18446744073709551616", b"18446744073709551617",
        b"9223372036854775808", b"-9223372036854775809",
        b"-18446744073709551617", b"99999999999999999999999999999999",
        b"1e400", b"-1e400", b"1.5e-400", b"123456789" * 40]


@suite.case("numbers beyond 64 bits: bad_request in every numeric field, "
        "req echoed exactly")
def _(t):
    d = t.daemon()
    cases = []
    pre_send = b'{"op":"send","to":"+27821234567","text":"x",'
    for num in BIG:
        cases.append((pre_send + b'"valid_for":' + num + b"}", "bad_request"))
        cases.append((b'{"op":"inbox","after":' + num + b"}", "bad_request"))
        cases.append((b'{"op":"inbox","limit":' + num + b"}", "bad_request"))
        for field in (b"to", b"text", b"from", b"ref", b"priority"):
            body = {b"to": b'"+27821234567"', b"text": b'"x"'}
            body[field] = num
            cases.append((b'{"op":"send",' + b",".join(b'"%s":%s' % kv
                    for kv in body.items()) + b"}", "bad_request"))
        for op in (b"status", b"cancel"):
            cases.append((b'{"op":"%s","id":%s}' % (op, num), "bad_request"))
            cases.append((b'{"op":"%s","ref":%s}' % (op, num),
                    "bad_request"))
        cases.append((b'{"op":' + num + b"}", "bad_request"))
    expect_errors(d, cases, "a big number")

    # req is echoed as it was written, in answers and in errors alike.
    with d.client() as c:
        for num in BIG + [b"-0", b"0.1", b"1E+2", b"3.141592653589793238462"
                b"64338327950288419716939937510"]:
            for req in (b'{"op":"ping","req":%s}' % num,
                    b'{"op":"nope","req":%s}' % num,
                    b'{"op":"status","id":"00000000deadbeef","req":%s}' %
                    num):
                c.send(req + b"\n")
                raw = c.recv_line()
                check(raw is not None, "no answer to %r" % req[:60])
                m = re.search(rb'"req":(-?[0-9.eE+-]+)[,}]', raw)
                check(m is not None and m.group(1) == num, "req %r came "
                        "back as %r" % (num[:40], raw[:160]))
    d.ping()
    check_eq(d.counts()["queued"], 0, "queued")


# ------------------------------------------------------ duplicate keys

@suite.case("duplicate keys in every field, spelt with escapes too: "
        "bad_request")
def _(t):
    d = t.daemon()
    s = b'{"op":"send","to":"+27821234567","text":"x",'
    cases = [
            (s + b'"from":"ACME","from":"ACME"}', "bad_request"),
            (s + b'"priority":"high","priority":"normal"}', "bad_request"),
            (s + b'"valid_for":60,"valid_for":60}', "bad_request"),
            (b'{"op":"status","id":"0000000000000001",'
                b'"id":"0000000000000002"}', "bad_request"),
            (b'{"op":"cancel","ref":"a","ref":"a"}', "bad_request"),
            (b'{"op":"status","ref":"a","ref":"b"}', "bad_request"),
            (b'{"op":"inbox","after":0,"after":1}', "bad_request"),
            (b'{"op":"inbox","limit":1,"limit":2}', "bad_request"),
            (b'{"op":"ping","o\\u0070":"ping"}', "bad_request"),
            (b'{"op":"ping","\\u006fp":"stats"}', "bad_request"),
            (s + b'"t\\u0065xt":"y"}', "bad_request"),
            (s + b'"\\u0074o":"+27829999999"}', "bad_request"),
            (b'{"op":"ping","req":1,"r\\u0065q":2}', "bad_request"),
        ]
    expect_errors(d, cases, "a duplicate key")
    check_eq(d.counts()["queued"], 0, "queued after duplicate keys")


# ------------------------------------------- the wrong-type matrix

STRINGISH = [1, -1, 1.5, 0, True, False, None, [], ["x"], {}, {"a": "b"},
        [[[]]]]
INTEGER = ["10", "", "1", 1.5, -1, True, False, None, [], [1], {},
        {"a": 1}]


@suite.case("every field of send, status, cancel and inbox of the wrong "
        "type: bad_request")
def _(t):
    d = t.daemon()
    cases = []
    base = {
            "send": {"op": "send", "to": NUMBER, "text": "x"},
            "status": {"op": "status", "id": "0000000000000001"},
            "cancel": {"op": "cancel", "id": "0000000000000001"},
            "inbox": {"op": "inbox"},
        }
    fields = {
            "send": {"to": STRINGISH, "text": STRINGISH,
                "from": STRINGISH, "ref": STRINGISH,
                "priority": STRINGISH + ["low", "HIGH"],
                "valid_for": INTEGER + [0]},
            "status": {"id": STRINGISH, "ref": STRINGISH},
            "cancel": {"id": STRINGISH, "ref": STRINGISH},
            "inbox": {"after": INTEGER, "limit": INTEGER + [0, 1001]},
        }
    for op, fs in fields.items():
        for field, values in fs.items():
            for v in values:
                req = dict(base[op])
                req[field] = v
                code = "bad_request"
                if field == "text" and v is None:
                    code = ("bad_request", "empty_text")
                cases.append((req, code))
        for v in [None, True, False, [], {}, [1], {"a": 1}]:
            req = dict(base[op])
            req["req"] = v
            cases.append((req, "bad_request"))
    for v in STRINGISH:
        cases.append(({"op": v}, "bad_request"))
    answers = expect_errors(d, cases, "a wrong type")
    print("# %d wrong-type requests, all refused" % len(answers[:-1]),
            flush=True)
    check_eq(d.counts()["queued"], 0, "queued after wrong types")


# ------------------------------------ the delivery-report listener

def dlr_config_supported(t):
    """Whether smsgwd takes a dlr group (and so can run the listener)."""
    d = Daemon(workdir=t.tempdir(), config={"dlr": {
            "listen": "127.0.0.1:1", "public_url": "http://127.0.0.1:1/dlr",
            "token": "hostile-secret"}})
    p = run_smsgwd("-n", "-c", d.write_config())
    return p.returncode == 0, (p.err or p.out).strip()


def dlr_daemon(t):
    ok, why = dlr_config_supported(t)
    if not ok:
        print("# skip: the daemon cannot be configured with a delivery-"
                "report listener (smsgwd -n: %s)" % why[:160], flush=True)
        return None, None
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = t.daemon(config={"dlr": {"listen": "127.0.0.1:%d" % port,
            "public_url": "http://127.0.0.1:%d/dlr" % port,
            "token": "hostile-secret", "inbound_token": "inbound-secret"}})
    return d, port


def dlr_get(conn, path):
    """One GET on a keep-alive connection: (status, seconds)."""
    t0 = time.monotonic()
    conn.request("GET", path)
    r = conn.getresponse()
    r.read()
    return r.status, time.monotonic() - t0


def dlr_bad_queries(t, port, mid):
    """Huge and badly encoded queries: each refused at once."""
    cases = [
            ("/dlr?id=%s&t=%s&status=1&pad=%s" % (mid, "0" * 32,
                "x" * 6000), (400, 414)),
            ("/dlr?id=%s&t=%s&status=1" % (mid, "a" * 5000), (400, 414)),
            ("/dlr?id=%zz&t=00&status=1", (400,)),
            ("/dlr?id=%s&t=%%G0%%0&status=1" % mid, (400, 403)),
            ("/dlr?id=%s&t=%s&status=%%" % (mid, "0" * 32), (400,)),
            ("/dlr?id=%s%%00&t=%s&status=1" % (mid, "0" * 32), (400,)),
            ("/dlr?id=%%%%%%&t=%%&status=%%4", (400,)),
            ("/mo?t=inbound-secret&from=%ZZ&to=27&message=%", (400,)),
            ("/mo?t=inbound-secret&from=27821234567&to=27&message=" +
                "%41" * 3000, (400, 414)),
        ]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    t.defer(conn.close)
    for path, want in cases:
        try:
            status, dt = dlr_get(conn, path)
        except (http.client.HTTPException, OSError) as e:
            raise Failure("GET %s...: %s" % (path[:60], e))
        check(status in want, "GET %s... (%d bytes): %d, expected %s" %
                (path[:60], len(path), status, want))
        check(dt < 1.0, "GET %s... took %.1f s" % (path[:60], dt))
        if conn.sock is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            t.defer(conn.close)

    # 100 KB of query: refused or cut, fast, never hanging the listener.
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    t.defer(raw.close)
    t0 = time.monotonic()
    try:
        raw.sendall(b"GET /dlr?x=" + b"y" * 100000 + b" HTTP/1.1\r\n"
                b"Host: x\r\n\r\n")
        head = raw.recv(64)
    except OSError:
        head = b""
    dt = time.monotonic() - t0
    check(head == b"" or re.match(rb"HTTP/1\.[01] 4\d\d", head),
            "100 KB of query answered %r" % head[:40])
    check(dt < 2.0, "100 KB of query took %.1f s" % dt)


def dlr_flood(t, port, mid, n=2000):
    """n reports and inbound messages with forged tokens: the answers."""
    rnd = random.Random(SEED)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    t.defer(lambda: conn.close())
    statuses = {}
    t0 = time.monotonic()
    for i in range(n):
        token = "%032x" % rnd.getrandbits(128)
        if i % 4:
            path = "/dlr?id=%s&t=%s&status=1" % (mid, token)
        else:
            path = "/mo?t=%s&from=27821234567&to=27820000000&message=x" % \
                    token
        try:
            status, _ = dlr_get(conn, path)
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            status, _ = dlr_get(conn, path)
        statuses[status] = statuses.get(status, 0) + 1
    return statuses, time.monotonic() - t0


def dlr_flood_lines(seconds):
    """The refusal lines a flood may cost: ~10 a second, plus summaries."""
    return max(50, int(12 * (seconds + 1.5)))


@suite.case("dlr listener: huge query strings and bad percent-encoding "
        "get 400 at once")
def _(t):
    d, port = dlr_daemon(t)
    if d is None:
        return
    mid = check_ok(d.request(send(text="dlr target")), "send")["id"]
    dlr_bad_queries(t, port, mid)
    st = check_ok(d.request({"op": "status", "id": mid}), "status")
    check_eq(st.get("state"), "queued", "state after the bad reports")
    d.ping()


@suite.case("dlr listener: 2000 forged tokens all 403, state unchanged, "
        "the log rate-limited", timeout=30)
def _(t):
    d, port = dlr_daemon(t)
    if d is None:
        return
    mid = check_ok(d.request(send(text="dlr flood target")), "send")["id"]
    before = check_ok(d.request({"op": "status", "id": mid}), "status")
    lines0 = len(d.log_text().splitlines())
    statuses, dt = dlr_flood(t, port, mid)
    check_eq(statuses, {403: 2000}, "answers to forged tokens")
    time.sleep(1.2)  # the rate limit's summary line comes within its window
    after = check_ok(d.request({"op": "status", "id": mid}), "status")
    keys = ("state", "updated", "attempts")
    check_eq({k: after.get(k) for k in keys}, {k: before.get(k)
            for k in keys}, "the message after 2000 forged reports")
    text = d.log_text()
    grown = len(text.splitlines()) - lines0
    print("# 2000 forged tokens in %.1f s: %d log lines" % (dt, grown),
            flush=True)
    check(grown <= dlr_flood_lines(dt), "the log grew by %d lines "
            "for 2000 forged tokens in %.1f s" % (grown, dt))
    check(re.search(r"dlr refused reason=bad-token", text),
            "no 'dlr refused reason=bad-token' line")
    check(re.search(r"dlr refused-suppressed count=\d+", text),
            "no 'dlr refused-suppressed' summary line")
    d.ping()


if __name__ == "__main__":
    suite.main()
