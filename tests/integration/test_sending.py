# test_sending.py: sending end to end, the real daemon against the fake
# upstream (tests/fakeup): every classified outcome, throttling, holds for
# credit, credentials and an absent upstream, HTTPS with a test CA, a
# SIGKILL while sending, and priorities.

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Suite, FakeUp, Failure, check, check_eq, check_ok,
        is_id, wait_until, SRCDIR)

suite = Suite("sending", budget=120.0)

NUMBER = "+27821234567"
DIGITS = "27821234567"
USER = "demo"
PASSWORD = "demo"
FINAL = ("sent", "failed", "expired", "cancelled", "delivered",
        "undelivered")
STAMP = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:(\d\d\.\d+))Z"


# ------------------------------------------------------------ helpers

def config(url, **groups):
    """Daemon overrides: the upstream at url, fast retries, then groups."""
    cfg = {
            "upstream": {"url": url, "username": USER,
                "password": PASSWORD, "timeout": 5,
                "connect_timeout": 2},
            "retry": {"base_ms": 50, "cap_ms": 200, "max_attempts": 10},
            "log": {"stats_interval": 0},
        }
    for group, keys in groups.items():
        cfg.setdefault(group, {}).update(keys)
    return cfg


def up_daemon(t, fu, **groups):
    return t.daemon(config=config(fu.url(), **groups))


def fu_get(fu, path):
    """GET /_control/PATH of fakeup (over HTTPS when it has fu.ca)."""
    ca = getattr(fu, "ca", None)
    if ca is None:
        url, ctx = fu.url("/_control/" + path), None
    else:
        url = "https://127.0.0.1:%d/_control/%s" % (fu.port, path)
        ctx = ssl.create_default_context(cafile=ca)
    with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
        return r.read().decode("utf-8")


def fu_messages(fu):
    """fakeup's accepted messages, in acceptance order."""
    return [json.loads(l) for l in fu_get(fu, "messages").splitlines()
            if l.strip()]


def fu_control(fu, path):
    return json.loads(fu_get(fu, path))


def fu_stats(fu):
    return fu_control(fu, "stats")


def fault(fu, kind, **params):
    q = "kind=%s" % kind + "".join("&%s=%s" % kv for kv in params.items())
    check_ok(fu_control(fu, "fault?" + q), "fault %s" % q)


def send_req(text, **extra):
    r = {"op": "send", "to": NUMBER, "text": text}
    r.update(extra)
    return r


def send_many(d, texts, timeout=30, **extra):
    """Pipelines one send per text; returns the ids, in order."""
    with d.client() as c:
        answers = c.pipeline([send_req(x, req=i, **extra)
                for i, x in enumerate(texts)], timeout=timeout)
    ids = []
    for i, a in enumerate(answers):
        check_ok(a, "send %d (%r)" % (i, texts[i]))
        check_eq(a.get("req"), i, "req of answer %d" % i)
        check(is_id(a.get("id")), "send %d answered no id: %r" % (i, a))
        ids.append(a["id"])
    check_eq(len(set(ids)), len(ids), "distinct ids")
    return ids


def send_one(d, text, **extra):
    return send_many(d, [text], **extra)[0]


def statuses(d, ids, timeout=30):
    with d.client() as c:
        answers = c.pipeline([{"op": "status", "id": i} for i in ids],
                timeout=timeout)
    for i, a in zip(ids, answers):
        check_ok(a, "status of %s" % i)
    return answers


def wait_final(d, mid, timeout=5.0):
    """Waits until message mid is in a final state; its status."""
    def final():
        st = check_ok(d.request({"op": "status", "id": mid}),
                "status of %s" % mid)
        return st if st.get("state") in FINAL else None
    try:
        return wait_until(final, timeout, "message %s to end" % mid,
                interval=0.02)
    except Failure as e:
        st = d.request({"op": "status", "id": mid})
        raise Failure("%s; status %r; log: %s" % (e, st,
                d.log_tail(6).replace("\n", " | ")))


def wait_count(d, state, n, timeout, what=None):
    """Waits until the daemon counts n messages in state."""
    last = {}

    def reached():
        last.update(d.counts())
        return last.get(state, 0) >= n
    try:
        wait_until(reached, timeout, what or "%d %s" % (n, state),
                interval=0.1)
    except Failure as e:
        raise Failure("%s; counts %r; log: %s" % (e, last,
                d.log_tail(4).replace("\n", " | ")))


def wait_hold(d, reason, timeout):
    last = {}

    def held():
        last.clear()
        last.update(d.stats())
        h = last.get("hold") or {}
        return h.get("active") is True and h.get("reason") == reason
    try:
        wait_until(held, timeout, "hold reason=%s" % reason, interval=0.05)
    except Failure as e:
        raise Failure("%s; stats hold %r messages %r; log: %s" % (e,
                last.get("hold"), last.get("messages"),
                d.log_tail(4).replace("\n", " | ")))
    return last


def wait_inflight_zero(d, timeout=5.0):
    wait_until(lambda: d.stats().get("inflight") == 0, timeout,
            "no request in flight")


def log(d, offset=None):
    return d.log_text(offset=d.start_offset if offset is None else offset)


def log_lines(d, pattern, offset=0):
    rx = re.compile(pattern)
    return [l for l in d.log_text(offset=offset).splitlines()
            if rx.search(l)]


def stamp_s(line):
    """Seconds within the hour of a log line's time stamp."""
    m = re.match(STAMP, line)
    check(m is not None, "log line without a time stamp: %r" % line)
    mm = int(m.group(1)[14:16])
    return mm * 60 + float(m.group(2))


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def check_fakeup_matches(fu, d, ids, texts):
    """Each message is sent once at fakeup with the id the daemon stored."""
    msgs = fu_messages(fu)
    by_text = {}
    for m in msgs:
        by_text.setdefault(m["text"], []).append(m["id"])
    answers = statuses(d, ids)
    for mid, text, st in zip(ids, texts, answers):
        check_eq(st.get("state"), "sent", "state of %s" % mid)
        got = by_text.get(text, [])
        check_eq(len(got), 1, "fakeup acceptances of %r" % text)
        check_eq(st.get("upstream_id"), got[0], "upstream_id of %s" % mid)


# ------------------------------------------------------------ 1. sent

@suite.case("a message ends sent with fakeup's id, attempt 1, logged")
def _(t):
    fu = t.fakeup("--latency-ms", "5")
    d = up_daemon(t, fu)
    mid = send_one(d, "hello upstream")
    st = wait_final(d, mid)
    check_eq(st.get("state"), "sent", "state")
    check_eq(st.get("attempts"), 1, "attempts")
    msgs = fu_messages(fu)
    check_eq(len(msgs), 1, "messages fakeup accepted")
    check_eq((msgs[0]["to"], msgs[0]["text"]), (DIGITS, "hello upstream"),
            "to and text at fakeup")
    check_eq(st.get("upstream_id"), msgs[0]["id"], "upstream_id")
    d.wait_log(r"msg sent id=%s upstream_id=%s attempt=1 latency_ms=\d+"
            % (mid, re.escape(msgs[0]["id"])), offset=d.start_offset)
    s = fu_stats(fu)
    check_eq((s["message_send"], s["accepted"]), (1, 1),
            "fakeup message_send, accepted")


# ------------------------------------------- 2. each fault's outcome

def retried_then_sent(t, kind, reason, code=0, ambiguous=False,
        accepted=1, min_in_ms=0, groups=None, **params):
    """One fault of kind, then a normal answer: retried once, then sent."""
    fu = t.fakeup()
    d = up_daemon(t, fu, **(groups or {}))
    fault(fu, kind, count=1, **params)
    mid = send_one(d, "fault %s" % kind)
    st = wait_final(d, mid, timeout=8)
    check_eq(st.get("state"), "sent", "state after one %s" % kind)
    check_eq(st.get("attempts"), 2, "attempts after one %s" % kind)
    s = fu_stats(fu)
    check_eq((s["message_send"], s["faults_served"], s["accepted"]),
            (2, 1, accepted), "fakeup message_send, faults_served, "
            "accepted")
    msgs = fu_messages(fu)
    check_eq(st.get("upstream_id"), msgs[-1]["id"], "upstream_id")
    text = log(d)
    m = re.search(r"msg retry id=%s attempt=2 code=(-?\d+) reason=(\S+) "
            r"in_ms=(\d+)( ambiguous=1)?\n" % mid, text)
    check(m is not None, "no 'msg retry id=%s attempt=2 ...' line; "
            "log: %s" % (mid, d.log_tail(5).replace("\n", " | ")))
    check_eq((int(m.group(1)), m.group(2)), (code, reason),
            "code and reason of the retry line")
    check_eq(m.group(4) is not None, ambiguous, "ambiguous=1 in %r" %
            m.group(0).strip())
    in_ms = int(m.group(3))
    check(min_in_ms <= in_ms, "in_ms=%d, expected >= %d" %
            (in_ms, min_in_ms))
    check(re.search(r"msg sent id=%s upstream_id=\S+ attempt=2 "
            r"latency_ms=\d+" % mid, text), "no 'msg sent ... attempt=2' "
            "line for %s" % mid)
    return d, fu, mid, m


@suite.case("internal error -16: retried, then sent (attempts 2)")
def _(t):
    retried_then_sent(t, "internal", "internal-error", code=-16)


def failed_at_once(t, code, reason):
    fu = t.fakeup()
    d = up_daemon(t, fu)
    fault(fu, "code", count=1, code=code)
    mid = send_one(d, "code %d" % code)
    st = wait_final(d, mid)
    check_eq((st.get("state"), st.get("reason"), st.get("attempts"),
            st.get("last_code")), ("failed", reason, 1, code),
            "state, reason, attempts, last_code")
    d.wait_log(r"msg failed id=%s attempts=1 code=%d reason=%s" %
            (mid, code, reason), offset=d.start_offset)
    time.sleep(0.4)  # twice the retry cap: a retry would have come
    s = fu_stats(fu)
    check_eq((s["message_send"], s["accepted"]), (1, 0),
            "fakeup message_send, accepted (no retry)")
    check(not re.search(r"msg retry id=%s" % mid, log(d)),
            "a permanent failure was retried")


for _code, _reason in ((-32, "routing-error"), (-128, "invalid-record"),
        (-4, "missing-parameter"), (-512, "duplicate-record")):
    suite.case("code %d: failed with reason %s, no retry" %
            (_code, _reason))(
            lambda t, c=_code, r=_reason: failed_at_once(t, c, r))


@suite.case("HTTP 500: retried, then sent")
def _(t):
    retried_then_sent(t, "http500", "http-500")


@suite.case("HTTP 503 with Retry-After: 1: the retry waits >= 1 s")
def _(t):
    d, fu, mid, m = retried_then_sent(t, "http503", "http-503",
            min_in_ms=1000, retry_after=1)
    check(int(m.group(3)) <= 1500, "in_ms=%s for Retry-After: 1" %
            m.group(3))
    retry = log_lines(d, r"msg retry id=%s " % mid, d.start_offset)
    sent = log_lines(d, r"msg sent id=%s " % mid, d.start_offset)
    gap = stamp_s(sent[0]) - stamp_s(retry[0])
    if gap < 0:
        gap += 3600
    check(gap >= 0.95, "the second attempt came %.3fs after the 503 "
            "with Retry-After: 1" % gap)


@suite.case("HTTP 429: retried, then sent")
def _(t):
    retried_then_sent(t, "http429", "http-429")


@suite.case("an HTML page with 200: retried, then sent")
def _(t):
    retried_then_sent(t, "html", "not-json")


@suite.case("an empty body: retried, then sent")
def _(t):
    retried_then_sent(t, "empty", "empty-body")


@suite.case("truncated JSON: retried, then sent")
def _(t):
    retried_then_sent(t, "truncated", "not-json")


@suite.case("an envelope of wrong types: retried, then sent")
def _(t):
    retried_then_sent(t, "wrongtypes", "no-status")


@suite.case("half an answer, then close: retried (ambiguous), then sent")
def _(t):
    retried_then_sent(t, "partial", "connection-lost", ambiguous=True)


@suite.case("connection closed without answer: retried (ambiguous), sent")
def _(t):
    retried_then_sent(t, "close", "connection-lost", ambiguous=True)


@suite.case("a 10 MB body: cut short, retried (ambiguous), then sent")
def _(t):
    retried_then_sent(t, "huge", "body-too-large", ambiguous=True)


@suite.case("a stall past upstream.timeout: timeout, ambiguous=1, resent")
def _(t):
    # fakeup accepts the stalled message: at-least-once sends it twice.
    d, fu, mid, m = retried_then_sent(t, "stall", "timeout",
            ambiguous=True, accepted=2, stall_ms=3000,
            groups={"upstream": {"timeout": 1}})
    check_eq(fu_stats(fu)["duplicates"], 1, "fakeup duplicates")


@suite.case("a stall with resend_ambiguous = false: failed, ambiguous",
        timeout=20)
def _(t):
    fu = t.fakeup()
    d = up_daemon(t, fu, upstream={"timeout": 1,
            "resend_ambiguous": False})
    fault(fu, "stall", count=1, stall_ms=3000)
    mid = send_one(d, "stall once")
    st = wait_final(d, mid, timeout=6)
    check_eq((st.get("state"), st.get("reason"), st.get("attempts")),
            ("failed", "ambiguous", 1), "state, reason, attempts")
    time.sleep(0.4)
    s = fu_stats(fu)
    check_eq((s["message_send"], s["accepted"]), (1, 1),
            "fakeup message_send, accepted")
    d.wait_log(r"msg failed id=%s attempts=1 code=0 reason=ambiguous" % mid,
            offset=d.start_offset)


@suite.case("retries exhausted: max_attempts 3, 5 faults: failed after 3")
def _(t):
    fu = t.fakeup()
    d = up_daemon(t, fu, retry={"max_attempts": 3})
    fault(fu, "internal", count=5)
    mid = send_one(d, "always failing")
    st = wait_final(d, mid)
    check_eq((st.get("state"), st.get("reason"), st.get("attempts"),
            st.get("last_code")), ("failed", "internal-error", 3, -16),
            "state, reason, attempts, last_code")
    time.sleep(0.4)
    s = fu_stats(fu)
    check_eq((s["message_send"], s["accepted"]), (3, 0),
            "fakeup message_send, accepted")
    check_eq(len(log_lines(d, r"msg retry id=%s " % mid, d.start_offset)),
            2, "retry lines")
    d.wait_log(r"msg failed id=%s attempts=3 code=-16 reason=internal-error"
            % mid, offset=d.start_offset)


@suite.case("an unknown negative code -77: at most 3 attempts, then failed")
def _(t):
    fu = t.fakeup()
    d = up_daemon(t, fu, retry={"max_attempts": 10})
    fault(fu, "code", count=10, code=-77)
    mid = send_one(d, "unknown code")
    st = wait_final(d, mid)
    check_eq((st.get("state"), st.get("attempts"), st.get("last_code")),
            ("failed", 3, -77), "state, attempts, last_code")
    time.sleep(0.4)
    s = fu_stats(fu)
    check_eq((s["message_send"], s["accepted"]), (3, 0),
            "fakeup message_send, accepted")
    d.wait_log(r"msg failed id=%s attempts=3 code=-77 reason=\S+" % mid,
            offset=d.start_offset)


@suite.case("valid_for 1 with every attempt failing: expired")
def _(t):
    fu = t.fakeup()
    d = up_daemon(t, fu, retry={"max_attempts": 1000})
    fault(fu, "internal", count=100000)
    t0 = time.monotonic()
    mid = send_one(d, "short-lived", valid_for=1)
    st = wait_final(d, mid, timeout=5)
    check_eq(st.get("state"), "expired", "state")
    dt = time.monotonic() - t0
    check(dt < 3.0, "expired only after %.1fs" % dt)
    check(st.get("attempts", 0) >= 2, "only %r attempts in its second" %
            st.get("attempts"))
    check_eq(fu_stats(fu)["accepted"], 0, "fakeup accepted")
    d.wait_log(r"msg expired id=%s " % mid, offset=d.start_offset)


# ------------------------------------------------------- 3. throttling

def throttled_drain(t, code):
    n = 2000
    fu = t.fakeup("--limit", "8", "--latency-ms", "20", "--throttle-code",
            str(code))
    d = up_daemon(t, fu, upstream={"max_concurrency": 64})
    texts = ["throttle %d" % i for i in range(n)]
    t0 = time.monotonic()
    ids = send_many(d, texts)
    wait_count(d, "sent", n, 25)
    dt = time.monotonic() - t0
    s = fu_stats(fu)
    ds = d.stats()
    m = ds["messages"]
    check_eq((m.get("sent"), m.get("queued"), m.get("failed")), (n, 0, 0),
            "daemon sent, queued, failed")
    check_eq((s["accepted"], s["distinct"], s["duplicates"]), (n, n, 0),
            "fakeup accepted, distinct, duplicates")
    check(s["max_inflight"] <= 8, "fakeup saw %d requests in progress, "
            "its limit is 8" % s["max_inflight"])
    check(s["throttled"] < 0.05 * s["requests"], "throttled %d of %d "
            "requests (>= 5%%)" % (s["throttled"], s["requests"]))
    check_eq(ds.get("throttled"), s["throttled"],
            "daemon stats throttled vs fakeup's count")
    check(re.search(r"upstream throttled code=%d " % code, log(d)) or
            s["throttled"] == 0, "no 'upstream throttled code=%d' line" %
            code)
    msgs = fu_messages(fu)
    check_eq(sorted(x["text"] for x in msgs), sorted(texts),
            "texts accepted at fakeup")
    print("# code %d: %d messages in %.1fs, %d requests, %d throttled, "
            "max_inflight %d, limit %s" % (code, n, dt, s["requests"],
            s["throttled"], s["max_inflight"], ds.get("limit")),
            flush=True)


@suite.case("limit 8, max_concurrency 64: 2000 messages, each sent once",
        timeout=30)
def _(t):
    throttled_drain(t, -4096)


@suite.case("the same with throttle code -8192", timeout=30)
def _(t):
    throttled_drain(t, -8192)


# --------------------------------------------------- 4. out of credit

@suite.case("the upstream's limit rises from 8 to 16, then falls to 4: "
        "followed each way, each message sent once", timeout=30)
def _(t):
    n = 5000
    fu = t.fakeup("--limit", "8", "--latency-ms", "10")
    d = up_daemon(t, fu, upstream={"max_concurrency": 64})
    texts = ["limit change %d" % i for i in range(n)]
    send_many(d, texts)
    limits = []

    def limit_is(ok):
        def probe():
            limits.append(d.stats().get("limit"))
            return ok(limits[-1])
        return probe
    wait_until(limit_is(lambda v: v in (7, 8, 9)), 5, "the limit at 8",
            interval=0.05)
    check_ok(fu_control(fu, "set?limit=16"), "raise the limit")
    t0 = time.monotonic()
    wait_until(limit_is(lambda v: v >= 15), 5, "the limit near 16 after "
            "the upstream's rose (seen %r)" % limits[-20:], interval=0.05)
    up_s = time.monotonic() - t0
    check_ok(fu_control(fu, "set?limit=4"), "lower the limit")
    t0 = time.monotonic()
    wait_until(limit_is(lambda v: v <= 4), 3, "the limit at 4 after the "
            "upstream's fell (seen %r)" % limits[-20:], interval=0.02)
    down_s = time.monotonic() - t0
    check(d.counts().get("queued", 0) > 0, "the queue ran dry before the "
            "limit fell: too fast to tell")
    check_ok(fu_control(fu, "set?limit=64"), "raise the limit again")
    wait_count(d, "sent", n, 20)
    s = fu_stats(fu)
    check_eq((s["accepted"], s["distinct"], s["duplicates"]), (n, n, 0),
            "fakeup accepted, distinct, duplicates")
    check(s["throttled"] < 0.02 * s["requests"], "throttled %d of %d "
            "requests (>= 2%%)" % (s["throttled"], s["requests"]))
    print("# limit 8 -> 16 followed in %.2fs, 16 -> 4 in %.2fs; %d "
            "requests, %d throttled" % (up_s, down_s, s["requests"],
            s["throttled"]), flush=True)


@suite.case("credit runs out: hold, no sends, top-up resumes, none lost",
        timeout=40)
def _(t):
    n = 1000
    fu = t.fakeup("--balance", "300")
    d = up_daemon(t, fu)
    texts = ["credit %d" % i for i in range(n)]
    ids = send_many(d, texts)
    ds = wait_hold(d, "out-of-credit", 10)
    d.wait_log(r"upstream hold reason=out-of-credit code=-64",
            offset=d.start_offset)
    wait_inflight_zero(d)
    m = d.counts()
    check_eq((m.get("sent"), m.get("queued"), m.get("failed")),
            (300, n - 300, 0), "sent, queued, failed on hold")

    # Nothing but balance probes while on hold.
    a = fu_stats(fu)
    time.sleep(3)
    b = fu_stats(fu)
    check_eq(b["message_send"], a["message_send"],
            "message_send requests while on hold")
    check_eq(b["requests"] - b["balance_queries"],
            a["requests"] - a["balance_queries"],
            "requests other than probes while on hold")
    check(d.stats()["hold"].get("active") is True, "hold ended without "
            "credit")

    check_ok(fu_control(fu, "set?balance=100000"), "top-up")
    try:
        wait_count(d, "sent", n, 25, "every message sent after the top-up")
    finally:
        probes = fu_stats(fu)["balance_queries"]
    check(probes <= 10, "%d balance probes within a minute" % probes)
    d.wait_log(r"upstream resumed reason=\S+ after=out-of-credit",
            offset=d.start_offset)
    s = fu_stats(fu)
    check_eq((s["accepted"], s["distinct"], s["duplicates"]), (n, n, 0),
            "fakeup accepted, distinct, duplicates")
    check_fakeup_matches(fu, d, ids, texts)


# ---------------------------------------------- 5. wrong credentials

def auth_hold(t, n=20):
    fu = t.fakeup()
    d = t.daemon(config=config(fu.url(), upstream={"password": "wrong"}))
    texts = ["auth %d" % i for i in range(n)]
    ids = send_many(d, texts)
    wait_hold(d, "authentication-failed", 5)
    d.wait_log(r"upstream hold reason=authentication-failed code=-8",
            offset=d.start_offset)
    wait_inflight_zero(d)
    m = d.counts()
    check_eq((m.get("queued"), m.get("sent"), m.get("failed")), (n, 0, 0),
            "queued, sent, failed on hold")
    s = fu_stats(fu)
    check_eq(s["accepted"], 0, "fakeup accepted")
    for st in statuses(d, ids):
        check_eq((st.get("state"), st.get("attempts")), ("queued", 0),
                "state and attempts of %s on hold" % st.get("id"))
    return fu, d, ids, texts


@suite.case("wrong password: hold authentication-failed; restart sends all",
        timeout=20)
def _(t):
    fu, d, ids, texts = auth_hold(t)
    check_eq(d.stop(), 0, "exit status after SIGTERM")
    d.config["upstream"]["password"] = PASSWORD
    d.start()
    wait_count(d, "sent", len(ids), 10)
    s = fu_stats(fu)
    check_eq((s["accepted"], s["duplicates"]), (len(ids), 0),
            "fakeup accepted, duplicates")
    check_fakeup_matches(fu, d, ids, texts)


@suite.case("wrong password: SIGHUP with the right one ends the hold",
        timeout=20)
def _(t):
    fu, d, ids, texts = auth_hold(t)
    d.config["upstream"]["password"] = PASSWORD
    d.write_config()
    off = d.log_size()
    d.signal(signal.SIGHUP)
    d.wait_log(r"config reloaded", offset=off)
    try:
        d.wait_log(r"upstream resumed reason=configuration-reloaded",
                timeout=3, offset=off)
    except Failure as e:
        raise Failure("%s (hold %r; the log after SIGHUP: %s)" % (e,
                d.stats().get("hold"),
                d.log_text(offset=off).strip().replace("\n", " | ")))
    wait_count(d, "sent", len(ids), 5)
    check_fakeup_matches(fu, d, ids, texts)


# -------------------------------------------- 6. upstream down, then up

@suite.case("upstream down, then back: hold unreachable, then all sent",
        timeout=45)
def _(t):
    n = 200
    port = free_port()
    url = "http://127.0.0.1:%d/json" % port
    d = t.daemon(config=config(url))
    texts = ["down %d" % i for i in range(n)]
    ids = send_many(d, texts)
    time.sleep(3)
    wait_hold(d, "upstream-unreachable", 2)
    d.wait_log(r"upstream hold reason=upstream-unreachable failures=\d+",
            offset=d.start_offset)
    m = d.counts()
    check_eq((m.get("queued"), m.get("failed"), m.get("sent")), (n, 0, 0),
            "queued, failed, sent while the upstream is down")
    most = max(st.get("attempts", 0) for st in statuses(d, ids))
    check(most <= 3, "a message made %d attempts before the hold" % most)

    fu = FakeUp("--port", str(port), workdir=t.tempdir())
    t.defer(fu.cleanup)
    fu.start()
    check_eq(fu.port, port, "fakeup's port")
    wait_count(d, "sent", n, 30, "every message sent after the upstream "
            "came back")
    d.wait_log(r"upstream resumed reason=\S+ after=upstream-unreachable",
            offset=d.start_offset)
    s = fu_stats(fu)
    check_eq((s["accepted"], s["duplicates"]), (n, 0),
            "fakeup accepted, duplicates")
    check_fakeup_matches(fu, d, ids, texts)


# ------------------------------------------------------------ 7. HTTPS

def test_ca(t):
    if shutil.which("openssl") is None:
        raise Failure("openssl is not installed: no test CA")
    ca = t.tempdir()
    script = os.path.join(SRCDIR, "tests", "make-test-ca.sh")
    p = subprocess.run(["sh", script, ca], capture_output=True, timeout=30)
    check_eq(p.returncode, 0, "make-test-ca.sh exit status (stderr %r)" %
            p.stderr[-300:])
    return ca


@suite.case("HTTPS: sent with ca_file; without it tls-error, hold, kept",
        timeout=25)
def _(t):
    ca = test_ca(t)
    fu = t.fakeup("--tls-cert", os.path.join(ca, "server.pem"),
            "--tls-key", os.path.join(ca, "server.key"))
    fu.ca = os.path.join(ca, "ca.pem")
    url = "https://127.0.0.1:%d/json" % fu.port

    d = t.daemon(config=config(url, upstream={
            "ca_file": os.path.join(ca, "ca.pem")}))
    mid = send_one(d, "over tls")
    st = wait_final(d, mid)
    check_eq((st.get("state"), st.get("attempts")), ("sent", 1),
            "state, attempts with the test CA")
    check_eq(st.get("upstream_id"), fu_messages(fu)[0]["id"], "upstream_id")
    d.stop()

    n = 20
    d2 = t.daemon(config=config(url))
    texts = ["tls %d" % i for i in range(n)]
    ids = send_many(d2, texts)
    wait_hold(d2, "upstream-unreachable", 5)
    check(re.search(r"msg retry id=\S+ attempt=\d+ code=0 reason=tls-error",
            log(d2)), "no retry with reason=tls-error")
    wait_inflight_zero(d2)
    m = d2.counts()
    check_eq((m.get("queued"), m.get("failed"), m.get("sent")), (n, 0, 0),
            "queued, failed, sent without the CA")
    check_eq(fu_stats(fu)["accepted"], 1, "fakeup accepted")

    # The same store with the CA: everything goes.
    d2.stop()
    d2.config["upstream"]["ca_file"] = os.path.join(ca, "ca.pem")
    d2.start()
    wait_count(d2, "sent", n, 10)
    s = fu_stats(fu)
    check_eq((s["accepted"], s["duplicates"]), (n + 1, 0),
            "fakeup accepted, duplicates")
    check_fakeup_matches(fu, d2, ids, texts)


# ------------------------------------------- 8. SIGKILL while sending

@suite.case("SIGKILL while sending, restart: no acknowledged message lost",
        timeout=45)
def _(t):
    n = 3000
    bound = 16
    fu = t.fakeup("--limit", str(bound), "--latency-ms", "50")
    d = up_daemon(t, fu, upstream={"max_concurrency": 64})
    texts = ["kill %d" % i for i in range(n)]
    ids = send_many(d, texts)
    wait_until(lambda: fu_stats(fu)["accepted"] >= 500, 20,
            "500 messages accepted by fakeup", interval=0.02)
    os.kill(d.pid, signal.SIGKILL)
    d.wait(5)
    at_kill = fu_stats(fu)
    check(at_kill["accepted"] < n, "everything was sent before the kill")

    d.start()
    wait_until(lambda: fu_stats(fu)["distinct"] >= n, 30,
            "every message accepted by fakeup", interval=0.1)
    wait_count(d, "sent", n, 10)
    s = fu_stats(fu)
    got = {x["text"] for x in fu_messages(fu)}
    lost = [x for x in texts if x not in got]
    check(not lost, "%d acknowledged messages never reached fakeup, "
            "e.g. %r" % (len(lost), lost[:3]))
    restart = log(d)
    ambiguous = len(re.findall(r"msg ambiguous id=", restart))
    print("# killed at %d accepted; %d duplicates, %d ambiguous at the "
            "restart" % (at_kill["accepted"], s["duplicates"], ambiguous),
            flush=True)
    check(s["duplicates"] <= bound + 8, "%d duplicates after one kill, "
            "in-flight bound %d" % (s["duplicates"], bound))
    check(ambiguous >= 1, "no 'msg ambiguous' line at the restart")
    # A message fakeup took twice was in flight when the daemon died. Most
    # are logged ambiguous at the restart; one whose request started in
    # the loop pass whose commit the kill cut off was still queued in the
    # store, and is resent without that line (docs/architecture.md), so
    # the in-flight bound above is the check, not the ambiguous count.
    check(ambiguous <= 64 + 8, "%d 'msg ambiguous' lines, more than "
            "max_concurrency" % ambiguous)
    m = d.counts()
    check_eq((m.get("sent"), m.get("queued"), m.get("sending"),
            m.get("failed")), (n, 0, 0, 0), "sent, queued, sending, failed")


# --------------------------------------------- 9. order and priority

@suite.case("priority high overtakes queued normal ones; FIFO within each",
        timeout=20)
def _(t):
    fu = t.fakeup("--limit", "1", "--latency-ms", "20")
    d = up_daemon(t, fu, upstream={"max_concurrency": 1})
    normal = ["normal %02d" % i for i in range(40)]
    high = ["high %d" % i for i in range(5)]
    send_many(d, normal)
    wait_until(lambda: fu_stats(fu)["accepted"] >= 3, 5,
            "3 messages accepted", interval=0.005)
    send_many(d, high, priority="high")
    after = fu_stats(fu)["accepted"]
    check(after < 30, "%d normal messages were sent before the high "
            "ones were queued: too slow to tell" % after)
    wait_count(d, "sent", len(normal) + len(high), 10)
    order = [x["text"] for x in fu_messages(fu)]
    check_eq(len(order), len(normal) + len(high), "messages at fakeup")
    pos = [order.index(h) for h in high]
    check_eq(pos, list(range(pos[0], pos[0] + len(high))),
            "positions of the high messages (contiguous, in order)")
    check(pos[0] <= after + 1, "the first high message went out at "
            "position %d, %d normal ones were out when it was queued" %
            (pos[0], after))
    check_eq([x for x in order if x.startswith("normal")], normal,
            "order of the normal messages")
    s = fu_stats(fu)
    check_eq((s["throttled"], s["duplicates"]), (0, 0),
            "fakeup throttled, duplicates")


@suite.case("fakeup holds answers their latency from arrival, reports both")
def _(t):
    # bench/dispatch reads these counts to tell fakeup's share of the
    # latency from the client's; they must be right to mean anything.
    fu = t.fakeup("--limit", "4", "--latency-ms", "100")
    t_reset = time.monotonic()
    fu_control(fu, "reset-stats")
    idle = fu_stats(fu)
    check_eq(idle["late_us_mean"], 0, "late_us_mean with no answer yet")
    check_eq(idle["inflight_mean"], 0, "inflight_mean with none in "
            "progress")
    url = fu.url("/json?action=message_send&username=%s&password=%s"
            "&to=%s&text=timed" % (USER, PASSWORD, DIGITS))
    conns = []
    t0 = time.monotonic()
    for _ in range(4):
        c = socket.create_connection(("127.0.0.1", fu.port), timeout=5)
        t.defer(c.close)
        c.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" %
                url[url.index("/json"):]).encode())
        conns.append(c)
    held = []
    for c in conns:
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = c.recv(4096)
            check(chunk, "fakeup closed the connection without an answer")
            got += chunk
        held.append(time.monotonic() - t0)
        check(got.startswith(b"HTTP/1.1 200"), "answer %r" % got[:40])
    check(min(held) >= 0.1, "an answer came after %.3f s, before its "
            "100 ms latency" % min(held))
    s = fu_stats(fu)
    check_eq(s["accepted"], 4, "accepted")
    check(0 <= s["late_us_mean"] <= s["late_us_max"] < 100000,
            "late_us_mean %d, late_us_max %d" % (s["late_us_mean"],
            s["late_us_max"]))
    # Four requests in progress for at least 100 ms each, within a window
    # no longer than this one.
    window = time.monotonic() - t_reset
    check(0.4 / window <= s["inflight_mean"] <= 4.0, "inflight_mean %.3f "
            "over at most %.3f s with 4 requests held 100 ms" % (
            s["inflight_mean"], window))
    time.sleep(0.3)
    later = fu_stats(fu)["inflight_mean"]
    check(later < s["inflight_mean"], "inflight_mean did not fall while "
            "nothing was in progress: %.3f, then %.3f" % (
            s["inflight_mean"], later))


if __name__ == "__main__":
    suite.main()
