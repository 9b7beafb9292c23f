# test_faults.py: the upstream's faults against the real daemon, each kind
# the way it fails in production: nothing listening, a name that does not
# resolve, a reset, a stall, a slow drip, HTTP errors with and without
# Retry-After, bodies that are no envelope, a huge body, an untrusted
# certificate. For each: the outcome, the log line and its reason token, a
# daemon that keeps answering (pings within 100 ms throughout), nothing
# lost, and no retry storm: fakeup's record of every request shows at most
# retry.max_attempts per message, spaced as the backoff (or Retry-After)
# says. test_sending.py has the single-fault outcomes; this suite adds
# liveness, counts and spacing.

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Suite, Client, ConnectionClosed, FakeUp, Failure,
        check, check_eq, check_ok, is_id, sanitized, wait_until, SRCDIR)

suite = Suite("faults", budget=90.0)

NUMBER = "+27821234567"
USER = "demo"
PASSWORD = "demo"
BASE_MS = 100
CAP_MS = 400
MAX_ATTEMPTS = 4
TIMEOUT_S = 1
# Consecutive failures without an answer that put sending on hold
# (DISPATCH_HOLD_AFTER in src/dispatch.c).
HOLD_AFTER = 5
# A ping may take this long while a fault goes on; sanitizers slow all.
PING_MAX_S = 0.3 if sanitized() else 0.1
# Loop and connection overhead allowed on top of a computed gap.
GAP_SLACK_MS = 250
FINAL = ("sent", "failed", "expired", "cancelled", "delivered",
        "undelivered")


# ------------------------------------------------------------ helpers

def config(url, **groups):
    cfg = {
            "upstream": {"url": url, "username": USER,
                "password": PASSWORD, "timeout": TIMEOUT_S,
                "connect_timeout": 1},
            "retry": {"base_ms": BASE_MS, "cap_ms": CAP_MS,
                "max_attempts": MAX_ATTEMPTS},
            "log": {"stats_interval": 0},
        }
    for group, keys in groups.items():
        cfg.setdefault(group, {}).update(keys)
    return cfg


def fu_get(fu, path):
    """GET /_control/PATH of fakeup (over HTTPS when it has fu.ca)."""
    ca = getattr(fu, "ca", None)
    if ca is None:
        url, ctx = fu.url("/_control/" + path), None
    else:
        url = "https://127.0.0.1:%d/_control/%s" % (fu.port, path)
        ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(url, timeout=10, context=ctx) as r:
        return r.read().decode("utf-8")


def fu_lines(fu, path):
    return [json.loads(l) for l in fu_get(fu, path).splitlines()
            if l.strip()]


def fu_stats(fu):
    return json.loads(fu_get(fu, "stats"))


def fault(fu, kind, **params):
    q = "kind=%s" % kind + "".join("&%s=%s" % kv for kv in params.items())
    check_ok(json.loads(fu_get(fu, "fault?" + q)), "fault %s" % q)


def requests_for(fu, text):
    """fakeup's record of the message_send requests carrying text."""
    return [r for r in fu_lines(fu, "requests") if r.get("text") == text]


def accepted(fu, text):
    return sum(1 for m in fu_lines(fu, "messages") if m["text"] == text)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def backoff_bound(attempt):
    """The longest full-jitter wait before attempt (2, 3, ...)."""
    return min(CAP_MS, BASE_MS * 2 ** (attempt - 2))


class Pinger(threading.Thread):
    """Pings the daemon every 20 ms on one connection; keeps the worst."""

    def __init__(self, d):
        super().__init__(daemon=True)
        self.d = d
        self.halt = threading.Event()
        self.worst = 0.0
        self.count = 0
        self.errors = []

    def run(self):
        try:
            c = Client(self.d.socket_path, timeout=5)
        except OSError as e:
            self.errors.append("connect: %s" % e)
            return
        with c:
            while not self.halt.is_set():
                t0 = time.monotonic()
                try:
                    r = c.request({"op": "ping", "req": self.count})
                except (OSError, ConnectionClosed, Failure) as e:
                    self.errors.append(str(e))
                    return
                dt = time.monotonic() - t0
                if r != {"ok": True, "req": self.count}:
                    self.errors.append("ping answered %r" % r)
                self.worst = max(self.worst, dt)
                self.count += 1
                self.halt.wait(0.02)

    def finish(self):
        """Stops; fails when a ping failed or took longer than allowed."""
        self.halt.set()
        self.join(10)
        check(not self.errors, "a ping failed during the fault: %s" %
                self.errors[:3])
        check(self.count >= 3, "only %d pings during the fault" %
                self.count)
        check(self.worst < PING_MAX_S, "a ping took %.0f ms during the "
                "fault (at most %.0f ms allowed)" % (self.worst * 1000,
                PING_MAX_S * 1000))
        return self.worst


def pinger(t, d):
    p = Pinger(d)
    t.defer(p.halt.set)
    p.start()
    return p


def send_one(d, text):
    r = check_ok(d.request({"op": "send", "to": NUMBER, "text": text}),
            "send %r" % text)
    check(is_id(r.get("id")), "send answered no id: %r" % r)
    return r["id"]


def wait_final(d, mid, timeout):
    def final():
        st = check_ok(d.request({"op": "status", "id": mid}), "status")
        return st if st.get("state") in FINAL else None
    try:
        return wait_until(final, timeout, "message %s to end" % mid)
    except Failure as e:
        raise Failure("%s; status %r; log: %s" % (e, d.request({"op":
                "status", "id": mid}), d.log_tail(5).replace("\n", " | ")))


def retry_lines(d, mid):
    rx = re.compile(r"msg retry id=%s attempt=(\d+) code=(-?\d+) "
            r"reason=(\S+) in_ms=(\d+)( ambiguous=1)?$" % mid)
    out = []
    for line in d.log_text().splitlines():
        m = rx.search(line)
        if m:
            out.append({"attempt": int(m.group(1)), "code": int(m.group(2)),
                    "reason": m.group(3), "in_ms": int(m.group(4)),
                    "ambiguous": m.group(5) is not None})
    return out


def check_spacing(reqs, retries, retry_after=None, answer_ms=0):
    """
    The gaps between one message's requests at fakeup: never shorter than
    the wait the daemon logged (nor than Retry-After), never longer than
    the backoff allows plus the time the answer took (answer_ms).
    """
    gaps = [b["ms"] - a["ms"] for a, b in zip(reqs, reqs[1:])]
    for i, gap in enumerate(gaps):
        r = retries[i]
        check(gap >= r["in_ms"] - 15, "attempt %d came %d ms after the "
                "one before, the daemon said it would wait %d ms" %
                (i + 2, gap, r["in_ms"]))
        if retry_after is not None:
            check(r["in_ms"] >= retry_after * 1000, "attempt %d: the "
                    "daemon waits %d ms after Retry-After: %d" % (i + 2,
                    r["in_ms"], retry_after))
            # fakeup's clock counts whole milliseconds.
            check(gap >= retry_after * 1000 - 2, "attempt %d came %d ms "
                    "after a Retry-After: %d answer" % (i + 2, gap,
                    retry_after))
        else:
            bound = backoff_bound(i + 2)
            check(r["in_ms"] <= bound, "attempt %d: wait %d ms, the "
                    "backoff allows %d" % (i + 2, r["in_ms"], bound))
            check(gap <= bound + answer_ms + GAP_SLACK_MS, "attempt %d "
                    "came %d ms after the one before (backoff at most %d "
                    "ms, answer %d ms)" % (i + 2, gap, bound, answer_ms))
    return gaps


def one_fault(t, kind, count, reason, state, attempts, ambiguous=False,
        retry_after=None, answer_ms=0, copies=None, groups=None,
        on_start=None, **params):
    """
    count faults of kind, then normal answers, for one message: it ends in
    state after exactly `attempts` requests, each retry logged with the
    reason token, spaced as the backoff says, the daemon answering pings
    all along. Returns (daemon, fakeup, id, requests).
    """
    fu = t.fakeup()
    d = t.daemon(config=config(fu.url(), **(groups or {})))
    if on_start is not None:
        on_start(d)
    if retry_after is not None:
        params["retry_after"] = retry_after
    fault(fu, kind, count=count, **params)
    p = pinger(t, d)
    text = "fault %s %d %s" % (kind, count, retry_after)
    mid = send_one(d, text)
    st = wait_final(d, mid, timeout=attempts * (CAP_MS / 1000.0 +
            answer_ms / 1000.0 + (retry_after or 0)) + 5)
    time.sleep(CAP_MS / 1000.0 + 0.1)  # a further attempt would be due
    p.finish()
    d.ping()

    check_eq((st.get("state"), st.get("attempts")), (state, attempts),
            "state and attempts after %d %s" % (count, kind))
    reqs = requests_for(fu, text)
    check_eq(len(reqs), attempts, "requests at fakeup for the message")
    check(len(reqs) <= MAX_ATTEMPTS, "%d requests, max_attempts %d" %
            (len(reqs), MAX_ATTEMPTS))
    check_eq([r["answer"] for r in reqs], [kind] * min(count, attempts) +
            ["answered"] * (attempts - min(count, attempts)),
            "what fakeup answered")

    retries = retry_lines(d, mid)
    check_eq(len(retries), attempts - 1, "'msg retry' lines")
    for i, r in enumerate(retries):
        # None of these faults carries the upstream's envelope: code 0.
        check_eq((r["attempt"], r["code"], r["reason"], r["ambiguous"]),
                (i + 2, 0, reason, ambiguous), "attempt, code, reason, "
                "ambiguous of retry line %d" % (i + 1))
    check_spacing(reqs, retries, retry_after, answer_ms)

    text_log = d.log_text()
    if state == "sent":
        check(re.search(r"msg sent id=%s upstream_id=\S+ attempt=%d "
                r"latency_ms=\d+" % (mid, attempts), text_log),
                "no 'msg sent id=%s ... attempt=%d' line" % (mid, attempts))
    else:
        check(re.search(r"msg failed id=%s attempts=%d code=-?\d+ reason=%s"
                % (mid, attempts, re.escape(reason)), text_log),
                "no 'msg failed id=%s attempts=%d ... reason=%s' line" %
                (mid, attempts, reason))
    if copies is not None:
        check_eq(accepted(fu, text), copies, "copies fakeup accepted")
    return d, fu, mid, reqs


# ------------------------------------------- HTTP errors, Retry-After

for _kind in ("http500", "http502", "http503", "http429"):
    suite.case("%s twice, no Retry-After: sent at attempt 3, waits within "
            "the backoff" % _kind)(lambda t, k=_kind: one_fault(t, k, 2,
            "http-" + k[4:], "sent", 3, copies=1))
    suite.case("%s twice, Retry-After: 1: no two attempts within 1 s" %
            _kind)(lambda t, k=_kind: one_fault(t, k, 2, "http-" + k[4:],
            "sent", 3, retry_after=1, copies=1))


# ---------------------------------------- bodies that are no envelope

@suite.case("an HTML page every time: failed after exactly max_attempts")
def _(t):
    one_fault(t, "html", 10, "not-json", "failed", MAX_ATTEMPTS, copies=0)


@suite.case("an empty body every time: failed after exactly max_attempts")
def _(t):
    one_fault(t, "empty", 10, "empty-body", "failed", MAX_ATTEMPTS,
            copies=0)


@suite.case("a truncated body every time: failed after max_attempts")
def _(t):
    one_fault(t, "truncated", 10, "not-json", "failed", MAX_ATTEMPTS,
            copies=0)


@suite.case("wrong JSON types every time: failed after max_attempts")
def _(t):
    one_fault(t, "wrongtypes", 10, "no-status", "failed", MAX_ATTEMPTS,
            copies=0)


@suite.case("a 10 MB body twice: cut short, memory flat, sent at attempt 3")
def _(t):
    rss = []
    d, fu, mid, reqs = one_fault(t, "huge", 2, "body-too-large", "sent", 3,
            ambiguous=True, copies=1, on_start=lambda d: rss.append(
            d.rss_kb()))
    rss0, rss1 = rss[0], d.rss_kb()
    grown = rss1 - rss0
    print("# 10 MB bodies: RSS %d -> %d kB" % (rss0, rss1), flush=True)
    if not sanitized():
        check(grown < 8 * 1024, "RSS grew by %d kB after two 10 MB "
                "answers" % grown)


# ------------------------------------------ resets, stalls and drips

@suite.case("reset (RST) mid-answer twice: connection-lost, ambiguous, "
        "sent")
def _(t):
    one_fault(t, "reset", 2, "connection-lost", "sent", 3, ambiguous=True,
            copies=1)


@suite.case("a stall past upstream.timeout twice: timeout, resent, sent",
        timeout=20)
def _(t):
    # A stalled message is accepted: at-least-once sends it three times.
    d, fu, mid, reqs = one_fault(t, "stall", 2, "timeout", "sent", 3,
            ambiguous=True, answer_ms=TIMEOUT_S * 1000, copies=3,
            stall_ms=TIMEOUT_S * 1000 + 1000)
    for a, b in zip(reqs, reqs[1:]):
        check(b["ms"] - a["ms"] >= TIMEOUT_S * 1000 - 15, "an attempt "
                "came %d ms after a stalled one, upstream.timeout is %d s"
                % (b["ms"] - a["ms"], TIMEOUT_S))


@suite.case("a drip within upstream.timeout: one request, sent, slow")
def _(t):
    # 78 bytes of body, one every 5 ms: about 0.4 s of a 1 s timeout.
    d, fu, mid, reqs = one_fault(t, "drip", 1, "-", "sent", 1, copies=1,
            drip_ms=5)
    m = re.search(r"msg sent id=%s \S+ attempt=1 latency_ms=(\d+)" % mid,
            d.log_text())
    check(int(m.group(1)) >= 300, "latency_ms=%s for a dripped answer" %
            m.group(1))


@suite.case("a drip beyond upstream.timeout: timeout, ambiguous, resent",
        timeout=20)
def _(t):
    # 78 bytes at 50 ms each take 3.9 s: the 1 s deadline is a total one.
    d, fu, mid, reqs = one_fault(t, "drip", 1, "timeout", "sent", 2,
            ambiguous=True, answer_ms=TIMEOUT_S * 1000, copies=2,
            drip_ms=50)
    check(reqs[1]["ms"] - reqs[0]["ms"] >= TIMEOUT_S * 1000 - 15,
            "the second attempt came %d ms after the dripping one" %
            (reqs[1]["ms"] - reqs[0]["ms"]))


# ------------------------------------ no upstream: refused, DNS, TLS

def unreachable(t, d, n, reason, window=2.0):
    """
    Sends n messages to a daemon whose upstream cannot be reached: each
    retried with reason, the daemon holding after HOLD_AFTER failures,
    pings answered all along, messages kept queued, and the attempts
    bounded. Returns the ids and texts.
    """
    p = pinger(t, d)
    texts = ["%s %d" % (reason, i) for i in range(n)]
    with d.client() as c:
        answers = c.pipeline([{"op": "send", "to": NUMBER, "text": x}
                for x in texts])
    ids = [check_ok(a, "send")["id"] for a in answers]

    def held():
        h = d.stats().get("hold") or {}
        return h.get("active") is True
    wait_until(held, 10, "the daemon to hold sending", interval=0.05)
    hold = d.stats()["hold"]
    check_eq(hold.get("reason"), "upstream-unreachable", "hold reason")
    d.wait_log(r"upstream hold reason=upstream-unreachable failures=%d" %
            HOLD_AFTER)
    time.sleep(window)  # while on hold, only probes may go out
    p.finish()

    text = d.log_text()
    retries = re.findall(r"msg retry id=(\S+) attempt=\d+ code=0 "
            r"reason=(\S+) in_ms=\d+(.*)$", text, re.M)
    check(retries, "no 'msg retry' line")
    check_eq(sorted({r[1] for r in retries}), [reason],
            "reason tokens of the retry lines")
    check(all(r[2] == "" for r in retries), "an unreachable upstream's "
            "retry marked ambiguous: %r" % retries[:3])
    check(len(retries) <= HOLD_AFTER + n, "%d retries before and while on "
            "hold (at most %d)" % (len(retries), HOLD_AFTER + n))
    probes = len(re.findall(r"upstream probe action=", text))
    check(probes <= 1 + int(window), "%d probes in %.0f s of hold" %
            (probes, window))
    with d.client() as c:
        sts = c.pipeline([{"op": "status", "id": i} for i in ids])
    for st in sts:
        check_eq(st.get("state"), "queued", "state on hold")
        check(st.get("attempts", 0) <= 3, "%d attempts before the hold" %
                st.get("attempts", 0))
    print("# %s: %d retries, %d probes, worst ping %.1f ms" % (reason,
            len(retries), probes, p.worst * 1000), flush=True)
    return ids, texts


def all_sent_once(d, fu, ids, texts, timeout=10):
    def done():
        return d.counts().get("sent", 0) >= len(ids)
    wait_until(done, timeout, "every message sent", interval=0.1)
    got = [m["text"] for m in fu_lines(fu, "messages")]
    for x in texts:
        check_eq(got.count(x), 1, "copies of %r at fakeup" % x)


@suite.case("connection refused: connect-failed, hold, pings fast, then "
        "all sent", timeout=25)
def _(t):
    port = free_port()
    d = t.daemon(config=config("http://127.0.0.1:%d/json" % port))
    ids, texts = unreachable(t, d, 3, "connect-failed")
    fu = FakeUp("--port", str(port), workdir=t.tempdir())
    t.defer(fu.cleanup)
    fu.start()
    all_sent_once(d, fu, ids, texts, timeout=15)
    d.wait_log(r"upstream resumed reason=probe-succeeded "
            r"after=upstream-unreachable")


@suite.case("DNS failure: resolve-failed, the loop never blocks, SIGHUP "
        "resumes", timeout=25)
def _(t):
    d = t.daemon(config=config("http://smsgw-no-such-host.invalid/json"))
    ids, texts = unreachable(t, d, 3, "resolve-failed")
    fu = t.fakeup()
    d.config["upstream"]["url"] = fu.url()
    d.write_config()
    off = d.log_size()
    d.signal(signal.SIGHUP)
    d.wait_log(r"upstream resumed reason=configuration-reloaded", offset=off)
    all_sent_once(d, fu, ids, texts)


def test_ca(t):
    if shutil.which("openssl") is None:
        raise Failure("openssl is not installed: no test CA")
    ca = t.tempdir()
    script = os.path.join(SRCDIR, "tests", "make-test-ca.sh")
    p = subprocess.run(["sh", script, ca], capture_output=True, timeout=30)
    check_eq(p.returncode, 0, "make-test-ca.sh exit status (stderr %r)" %
            p.stderr[-300:])
    return ca


@suite.case("a certificate from a CA the daemon does not trust: tls-error, "
        "hold, nothing sent", timeout=30)
def _(t):
    trusted, other = test_ca(t), test_ca(t)
    fu = t.fakeup("--tls-cert", os.path.join(other, "server.pem"),
            "--tls-key", os.path.join(other, "server.key"))
    url = "https://127.0.0.1:%d/json" % fu.port
    d = t.daemon(config=config(url, upstream={
            "ca_file": os.path.join(trusted, "ca.pem")}))
    ids, texts = unreachable(t, d, 3, "tls-error")

    # No request got through the handshake.
    fu.ca = os.path.join(other, "ca.pem")
    check_eq(fu_stats(fu)["requests"], 0, "requests at fakeup")

    # The right CA by SIGHUP: the hold ends by itself (probe), all go.
    d.config["upstream"]["ca_file"] = os.path.join(other, "ca.pem")
    d.write_config()
    off = d.log_size()
    d.signal(signal.SIGHUP)
    d.wait_log(r"config reloaded", offset=off)
    m = d.wait_log(r"upstream resumed reason=(\S+)", timeout=15, offset=off)
    print("# tls-error hold ended by %s" % m.group(1), flush=True)
    all_sent_once(d, fu, ids, texts)
    d.ping()


if __name__ == "__main__":
    suite.main()
