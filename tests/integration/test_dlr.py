# test_dlr.py: delivery reports, inbound messages and what operators see,
# end to end against the real daemon and the fake upstream: every report
# transition, forged and malformed reports, a report before the send's
# answer, a burst of 1,000 reports, inbound UTF-8 and UTF-16BE read back
# with inbox and smsgwctl, the metrics page under a strict checker, stats,
# the balance and the queue-age warning.

import hashlib
import hmac
import http.client
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.dirname(_HERE))

from harness import (Suite, Failure, check, check_eq, check_ok, is_id,
        wait_until, spawn, SMSGWCTL, _processes)
import promcheck

suite = Suite("dlr", budget=90.0)

NUMBER = "+27821234567"
USER = "demo"
PASSWORD = "demo"
SECRET = "s3cret"
INBOUND_TOKEN = "in-token"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
PROM_TYPE = "text/plain; version=0.0.4"


# ------------------------------------------------------------ helpers

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def fu_get(fu, path):
    with urllib.request.urlopen(fu.url("/_control/" + path),
            timeout=5) as r:
        return r.read().decode("utf-8")


def fu_stats(fu):
    return json.loads(fu_get(fu, "stats"))


def fu_messages(fu):
    return [json.loads(l) for l in fu_get(fu, "messages").splitlines()
            if l.strip()]


def fu_set(fu, **knobs):
    q = urllib.parse.urlencode(knobs)
    check_ok(json.loads(fu_get(fu, "set?" + q)), "fakeup set %s" % q)


def dlr_daemon(t, fu, dlr=None, **groups):
    """A daemon sending to fakeup, with the report and metrics listeners."""
    port, mport = free_port(), free_port()
    cfg = {
            "upstream": {"url": fu.url(), "username": USER,
                "password": PASSWORD, "timeout": 5,
                "connect_timeout": 2, "balance_interval": 0},
            "retry": {"base_ms": 50, "cap_ms": 200},
            "dlr": {"listen": "127.0.0.1:%d" % port,
                "public_url": "http://127.0.0.1:%d/dlr" % port,
                "token": SECRET, "inbound_token": INBOUND_TOKEN},
            "metrics": {"listen": "127.0.0.1:%d" % mport},
            "log": {"stats_interval": 0},
        }
    cfg["dlr"].update(dlr or {})
    for group, keys in groups.items():
        cfg.setdefault(group, {}).update(keys)
    d = t.daemon(config=cfg)
    d.dlr_port = port
    d.metrics_port = mport
    return d


def token(mid, secret=SECRET):
    """The report token of message mid: HMAC-SHA256, 16 bytes in hex."""
    return hmac.new(secret.encode(), mid.encode(),
            hashlib.sha256).hexdigest()[:32]


def http_get(port, target, conn=None, method="GET"):
    """(status, body) of one request; on conn when given (keep-alive)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, target)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        if own:
            conn.close()


def report(d, mid, code, tok=None, path="/dlr"):
    """Requests the report URL of mid with code; the HTTP status."""
    q = "id=%s&t=%s&status=%s" % (mid, token(mid) if tok is None else tok,
            code)
    return http_get(d.dlr_port, "%s?%s" % (path, q))[0]


def inbound(d, message, tok=INBOUND_TOKEN, to="27820000001",
        frm="%2B27831112222", charset=None, code=None, raw=False):
    """GET /mo with message (str: UTF-8 percent-encoded; raw: as is)."""
    if not raw:
        message = urllib.parse.quote(message, safe="")
    q = "to=%s&from=%s&message=%s" % (to, frm, message)
    if tok is not None:
        q = "t=%s&" % urllib.parse.quote(tok, safe="") + q
    if charset is not None:
        q += "&charset=" + charset
    if code is not None:
        q += "&code=" + code
    return http_get(d.dlr_port, "/mo?" + q)[0]


def send_many(d, texts, timeout=30, **extra):
    with d.client() as c:
        answers = c.pipeline([dict({"op": "send", "to": NUMBER,
                "text": x, "req": i}, **extra)
                for i, x in enumerate(texts)], timeout=timeout)
    ids = []
    for i, a in enumerate(answers):
        check_ok(a, "send %d" % i)
        check(is_id(a.get("id")), "send %d answered no id: %r" % (i, a))
        ids.append(a["id"])
    return ids


def send_one(d, text):
    return send_many(d, [text])[0]


def status(d, mid):
    return check_ok(d.request({"op": "status", "id": mid}),
            "status of %s" % mid)


def statuses(d, ids, timeout=30):
    with d.client() as c:
        answers = c.pipeline([{"op": "status", "id": i} for i in ids],
                timeout=timeout)
    for i, a in zip(ids, answers):
        check_ok(a, "status of %s" % i)
    return answers


def wait_state(d, mid, state, timeout=5.0):
    last = {}

    def reached():
        last.clear()
        last.update(status(d, mid))
        return last.get("state") == state
    try:
        wait_until(reached, timeout, "%s to be %s" % (mid, state))
    except Failure as e:
        raise Failure("%s; status %r; log: %s" % (e, last,
                d.log_tail(6).replace("\n", " | ")))
    return dict(last)


def wait_count(d, state, n, timeout):
    last = {}

    def reached():
        last.clear()
        last.update(d.counts())
        return last.get(state, 0) >= n
    try:
        wait_until(reached, timeout, "%d %s" % (n, state), interval=0.05)
    except Failure as e:
        raise Failure("%s; counts %r; log: %s" % (e, last,
                d.log_tail(4).replace("\n", " | ")))


def sent_message(t, d, text):
    """Sends text and waits until it is sent; its id."""
    mid = send_one(d, text)
    wait_state(d, mid, "sent")
    return mid


def check_report(st, code, name, what):
    check_eq(st.get("report_code"), code, "%s: report_code" % what)
    check_eq(st.get("report"), name, "%s: report" % what)
    check(isinstance(st.get("report_at"), str) and
            re.fullmatch(STAMP, st["report_at"]),
            "%s: report_at is not a time stamp: %r" % (what,
            st.get("report_at")))


def check_no_report(st, what):
    for k in ("report_code", "report", "report_at"):
        check(k not in st, "%s: status has %s: %r" % (what, k, st))


def log(d):
    return d.log_text(offset=d.start_offset)


def log_lines(d, pattern):
    rx = re.compile(pattern)
    return [l for l in log(d).splitlines() if rx.search(l)]


def metrics_page(d):
    """(content type, text) of GET /metrics."""
    url = "http://127.0.0.1:%d/metrics" % d.metrics_port
    with urllib.request.urlopen(url, timeout=5) as r:
        check_eq(r.status, 200, "GET /metrics status")
        return r.headers.get("Content-Type"), r.read().decode("utf-8")


def samples(text):
    """{(name, ((label, value), ...)): value} of a metrics page."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, labels, _, value = promcheck.parse_sample(line)
        out[(name, tuple(sorted(labels)))] = value
    return out


def sample(s, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    check(key in s, "metrics: no sample %s%r" % (name, labels))
    return s[key]


def inbox(d, **args):
    req = {"op": "inbox"}
    req.update(args)
    return check_ok(d.request(req), "inbox %r" % args)


# ------------------------------------------------- 1. the report URL

@suite.case("the upstream gets report_url <public_url>?id=&t=&status=%d "
        "and report_mask 19; its report makes the message delivered")
def _(t):
    fu = t.fakeup("--dlr-delay-ms", "20")
    d = dlr_daemon(t, fu)
    mid = send_one(d, "report url")
    st = wait_state(d, mid, "delivered")
    check_report(st, 1, "delivered", "after fakeup's report")
    msgs = fu_messages(fu)
    check_eq(len(msgs), 1, "messages at fakeup")
    url = msgs[0].get("report_url")
    want = "http://127.0.0.1:%d/dlr?id=%s&t=%s&status=%%d" % (
            d.dlr_port, mid, token(mid))
    check_eq(url, want, "report_url as the upstream decoded it")
    check_eq(msgs[0].get("report_mask"), "19", "report_mask")
    wait_until(lambda: fu_stats(fu)["dlr_sent"] == 1, 3,
            "fakeup to count its report answered 2xx")
    check_eq(fu_stats(fu)["dlr_failed"], 0, "fakeup dlr_failed")
    d.wait_log(r"msg delivered id=%s code=1 report=delivered" % mid,
            offset=d.start_offset)


@suite.case("without dlr.public_url no report_url is sent and the "
        "message stays sent")
def _(t):
    fu = t.fakeup("--dlr-delay-ms", "10")
    d = dlr_daemon(t, fu, dlr={"public_url": ""})
    mid = sent_message(t, d, "no report url")
    msgs = fu_messages(fu)
    check_eq([m.get("report_url") for m in msgs], [None],
            "report_url at fakeup")
    time.sleep(0.2)
    st = status(d, mid)
    check_eq(st["state"], "sent", "state")
    check_no_report(st, "no report asked for")


# ---------------------------------------------- 2. every transition

def transition(t, code, state, name):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "code %d" % code)
    check_no_report(status(d, mid), "before any report")
    check_eq(report(d, mid, code), 200, "report %d" % code)
    st = wait_state(d, mid, state, 2)
    check_report(st, code, name, "after report %d" % code)
    d.wait_log(r"msg %s id=%s code=%d report=%s" % (state, mid, code,
            name), offset=d.start_offset)


@suite.case("sent -> delivered (1)")
def _(t):
    transition(t, 1, "delivered", "delivered")


@suite.case("sent -> undelivered (2)")
def _(t):
    transition(t, 2, "undelivered", "undelivered")


@suite.case("sent -> undelivered (16, failed at network)")
def _(t):
    transition(t, 16, "undelivered", "failed-at-network")


@suite.case("intermediate 4 then 8: the latest report, state stays sent; "
        "then 1 delivers")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "intermediate")
    check_eq(report(d, mid, 4), 200, "report 4")
    st = status(d, mid)
    check_eq(st["state"], "sent", "state after 4")
    check_report(st, 4, "queued-at-network", "after 4")
    time.sleep(0.01)
    check_eq(report(d, mid, 8), 200, "report 8")
    st8 = status(d, mid)
    check_eq(st8["state"], "sent", "state after 8")
    check_report(st8, 8, "sent-to-network", "after 8")
    check(st8["report_at"] >= st["report_at"], "report_at went back: "
            "%s then %s" % (st["report_at"], st8["report_at"]))
    check_eq(report(d, mid, 1), 200, "report 1")
    check_report(wait_state(d, mid, "delivered", 2), 1, "delivered",
            "after 1")
    check_eq(d.stats().get("reports"), 3, "stats reports")


@suite.case("a final state stays: repeated 1, late 2, 16, 4, 8 all get 200 "
        "and change nothing")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "final stays")
    check_eq(report(d, mid, 1), 200, "report 1")
    first = wait_state(d, mid, "delivered", 2)
    time.sleep(0.01)
    for code in (1, 1, 2, 16, 4, 8, 32):
        check_eq(report(d, mid, code), 200, "late report %d" % code)
        st = status(d, mid)
        check_eq((st["state"], st.get("report_code"), st.get("report_at"),
                st.get("updated")), (first["state"], 1, first["report_at"],
                first["updated"]), "state, report_code, report_at, "
                "updated after late %d" % code)
    # The undelivered end stays too.
    mid2 = sent_message(t, d, "undelivered stays")
    check_eq(report(d, mid2, 2), 200, "report 2")
    wait_state(d, mid2, "undelivered", 2)
    for code in (1, 16, 8):
        check_eq(report(d, mid2, code), 200, "late report %d" % code)
    st = status(d, mid2)
    check_eq((st["state"], st.get("report_code")), ("undelivered", 2),
            "state and report_code of the undelivered one")
    n = len(log_lines(d, r"msg report-ignored id=(%s|%s) " % (mid, mid2)))
    check_eq(n, 10, "report-ignored log lines")
    c = d.counts()
    check_eq((c.get("delivered"), c.get("undelivered"), c.get("sent")),
            (1, 1, 0), "counts delivered, undelivered, sent")


@suite.case("out of order from the upstream: 8 after 1 keeps delivered")
def _(t):
    fu = t.fakeup("--dlr-codes", "1,8", "--dlr-delay-ms", "30")
    d = dlr_daemon(t, fu, dlr={"mask": 31})
    mid = send_one(d, "out of order")
    wait_until(lambda: fu_stats(fu)["dlr_sent"] == 2, 5,
            "fakeup's two reports answered")
    st = wait_state(d, mid, "delivered", 2)
    check_report(st, 1, "delivered", "after 1, 8")
    check_eq(fu_messages(fu)[0].get("report_mask"), "31", "report_mask")
    d.wait_log(r"msg report-ignored id=%s code=8 report=sent-to-network "
            r"state=delivered" % mid, offset=d.start_offset)


@suite.case("fakeup's 4, 8 then 1 (mask 31): intermediate, then delivered")
def _(t):
    fu = t.fakeup("--dlr-codes", "4,8,1", "--dlr-delay-ms", "150")
    d = dlr_daemon(t, fu, dlr={"mask": 31})
    mid = send_one(d, "four eight one")
    seen = set()

    def progress():
        st = status(d, mid)
        if st.get("state") == "sent" and st.get("report_code") in (4, 8):
            seen.add(st["report_code"])
        return st.get("state") == "delivered"
    wait_until(progress, 5, "delivered after 4, 8, 1", interval=0.01)
    check_eq(seen, {4, 8}, "intermediate reports seen while sent")
    check_report(status(d, mid), 1, "delivered", "the end")
    check_eq(fu_stats(fu)["dlr_failed"], 0, "fakeup dlr_failed")


# ------------------------------------- 3. before the send's answer

@suite.case("a report before the send's answer is kept: delivered once "
        "the answer is stored")
def _(t):
    fu = t.fakeup("--latency-ms", "600", "--dlr-early", "1",
            "--dlr-delay-ms", "50")
    d = dlr_daemon(t, fu)
    mid = send_one(d, "early bird")
    early = {}

    def reported_while_sending():
        st = status(d, mid)
        check(st.get("state") != "delivered" or early, "delivered "
                "before the report was seen while sending: %r" % st)
        if st.get("state") == "sending" and st.get("report_code") == 1:
            early.update(st)
        return early
    wait_until(reported_while_sending, 3, "the report while sending",
            interval=0.01)
    check_eq(fu_stats(fu)["accepted"], 1, "fakeup accepted")
    st = wait_state(d, mid, "delivered", 5)
    check_report(st, 1, "delivered", "after the answer")
    check_eq(st.get("attempts"), 1, "attempts")
    text = log(d)
    order = [text.find(p) for p in ("msg report id=%s code=1" % mid,
            "msg sent id=%s" % mid, "msg delivered id=%s code=1" % mid)]
    check(-1 not in order and order == sorted(order), "log order of "
            "report, sent, delivered: %r" % order)


@suite.case("4 then 1, both before the send's answer: delivered")
def _(t):
    fu = t.fakeup("--latency-ms", "500", "--dlr-early", "1",
            "--dlr-delay-ms", "50", "--dlr-codes", "4,1")
    d = dlr_daemon(t, fu, dlr={"mask": 31})
    mid = send_one(d, "four then one early")
    wait_until(lambda: fu_stats(fu)["dlr_sent"] == 2, 3,
            "both reports answered")
    check_eq(status(d, mid)["state"], "sending", "state before the answer")
    st = wait_state(d, mid, "delivered", 5)
    check_report(st, 1, "delivered", "the end")


@suite.case("1 then 2, both before the send's answer: the first final "
        "report wins")
def _(t):
    fu = t.fakeup("--latency-ms", "500", "--dlr-early", "1",
            "--dlr-delay-ms", "50", "--dlr-codes", "1,2")
    d = dlr_daemon(t, fu)
    mid = send_one(d, "one then two early")
    wait_until(lambda: fu_stats(fu)["dlr_sent"] == 2, 3,
            "both reports answered")
    st = wait_state(d, mid, "delivered", 5)
    check_eq((st.get("state"), st.get("report_code"), st.get("report")),
            ("delivered", 1, "delivered"),
            "state, report_code, report (status %r)" % st)


# ------------------------------------------ 4. refused reports

@suite.case("a forged token: 403, logged, state unchanged")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "forged")
    other = sent_message(t, d, "other")
    good = token(mid)
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    forged = [flipped, token(other), token(mid, "wrong-secret"), good[:31],
            "", good.upper() if good.upper() != good else "x"]
    for tok in forged:
        for code in (1, 2, 4):
            check_eq(report(d, mid, code, tok=tok), 403,
                    "report %d with token %r" % (code, tok))
    st = status(d, mid)
    check_eq(st["state"], "sent", "state")
    check_no_report(st, "after forged reports")
    check_eq(d.stats().get("reports"), 0, "stats reports")
    d.wait_log(r" warn: dlr refused reason=bad-token id=%s "
            r"peer=127\.0\.0\.1" % mid, offset=d.start_offset)
    # 18 refusals: 10 lines a second, the rest counted in one line.
    d.wait_log(r" warn: dlr refused-suppressed count=\d+ bad-token=\d+",
            timeout=3, offset=d.start_offset)
    check(len(log_lines(d, r"dlr refused reason=bad-token")) <= 10,
            "more than 10 refusal lines within a second")
    check_eq(report(d, mid, 1), 200, "the real token still works")
    wait_state(d, mid, "delivered", 2)


@suite.case("an unknown id with a valid-looking token: 404")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "known")
    for unknown in ("00000000deadbeef", "7fffffffffffffff"):
        check_eq(report(d, unknown, 1), 404, "report for %s" % unknown)
    d.wait_log(r" info: dlr refused reason=unknown-id id=00000000deadbeef",
            offset=d.start_offset)
    check_eq(status(d, mid)["state"], "sent", "the known one's state")


@suite.case("malformed report queries: 400, state unchanged, daemon fine")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "malformed")
    tok = token(mid)
    bad = [
            "/dlr",
            "/dlr?",
            "/dlr?id=%s&t=%s" % (mid, tok),
            "/dlr?id=%s&status=1" % mid,
            "/dlr?t=%s&status=1" % tok,
            "/dlr?id=%s&t=%s&status=" % (mid, tok),
            "/dlr?id=%s&t=%s&status=abc" % (mid, tok),
            "/dlr?id=%s&t=%s&status=1.5" % (mid, tok),
            "/dlr?id=%s&t=%s&status=%%d" % (mid, tok),
            "/dlr?id=%s&t=%s&status=99999999999999999999" % (mid, tok),
            "/dlr?id=xyz&t=%s&status=1" % tok,
            "/dlr?id=&t=%s&status=1" % tok,
            "/dlr?id=0&t=%s&status=1" % token("0000000000000000"),
            "/dlr?id=%s0&t=%s&status=1" % (mid, tok),
            "/dlr?id=%s&id=%s&t=%s&status=1" % (mid, mid, tok),
            "/dlr?id=%s&t=%s&status=1&status=2" % (mid, tok),
            "/dlr?id=%s&t=%s&status=%%zz" % (mid, tok),
            "/dlr?id=%s&t=%s&status=1%%" % (mid, tok),
            "/dlr?id=%s&t=%s&status" % (mid, tok),
        ]
    for target in bad:
        got = http_get(d.dlr_port, target)[0]
        check_eq(got, 400, "GET %s" % target)
    too_long = "/dlr?id=%s&t=%s&status=1&pad=%s" % (mid, tok, "a" * 5000)
    check_eq(http_get(d.dlr_port, too_long)[0], 400, "a 5 kB URI")
    conn = http.client.HTTPConnection("127.0.0.1", d.dlr_port, timeout=5)
    try:
        conn.request("POST", "/dlr?id=%s&t=%s&status=1" % (mid, tok))
        r = conn.getresponse()
        r.read()
        check_eq((r.status, r.getheader("Allow")), (405, "GET, HEAD"),
                "POST: status and Allow")
    finally:
        conn.close()
    st = status(d, mid)
    check_eq(st["state"], "sent", "state")
    check_no_report(st, "after malformed reports")
    d.wait_log(r" info: dlr refused reason=malformed", offset=d.start_offset)
    d.ping()
    check_eq(report(d, mid, 1), 200, "a good report afterwards")
    wait_state(d, mid, "delivered", 2)


@suite.case("a report for a message queued after an ambiguous timeout: "
        "sent, delivered, not sent again", timeout=30)
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu, upstream={"timeout": 1})
    check_ok(json.loads(fu_get(fu, "fault?kind=stall&stall_ms=3000")),
            "stall fault")
    mid = send_one(d, "ambiguous then reported")
    wait_until(lambda: fu_stats(fu)["accepted"] == 1, 5,
            "the stalled message accepted at fakeup", interval=0.01)
    # Its retry must not get through: out of credit, the daemon holds it.
    fu_set(fu, balance=0)
    d.wait_log(r"msg retry id=%s .*ambiguous=1" % mid, timeout=5,
            offset=d.start_offset)
    d.wait_log(r"upstream hold reason=out-of-credit", timeout=5,
            offset=d.start_offset)
    wait_state(d, mid, "queued", 5)
    check_eq(report(d, mid, 1), 200, "the report of the first attempt")
    wait_state(d, mid, "delivered", 2)
    d.wait_log(r"notice: msg sent id=%s upstream_id=- attempt=\d+ "
            r"reason=reported" % mid, offset=d.start_offset)
    fu_set(fu, balance=1000)
    d.wait_log(r"upstream resumed ", timeout=20, offset=d.start_offset)
    d.ping()
    time.sleep(0.3)
    s = fu_stats(fu)
    check_eq((s["accepted"], s["duplicates"]), (1, 0),
            "fakeup accepted, duplicates")
    st = status(d, mid)
    check_eq(st["state"], "delivered", "state at the end")
    check_report(st, 1, "delivered", "status")
    m = d.stats()["messages"]
    check_eq((m.get("queued", 0), m.get("sending", 0), m.get("delivered")),
            (0, 0, 1), "queued, sending, delivered")


@suite.case("a report while a resend is out, and that resend fails: sent, "
        "delivered, not sent again", timeout=20)
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu, upstream={"timeout": 1})
    for q in ("kind=stall&stall_ms=3000", "kind=http503"):
        check_ok(json.loads(fu_get(fu, "fault?" + q)), "fault " + q)
    mid = send_one(d, "reported during a resend")
    wait_until(lambda: fu_stats(fu)["accepted"] == 1, 5,
            "the stalled message accepted at fakeup", interval=0.01)
    # The resend's 503 comes after 800 ms: the report arrives before it.
    fu_set(fu, latency_ms=800)
    wait_until(lambda: fu_stats(fu)["message_send"] == 2, 5,
            "the resend at fakeup", interval=0.01)
    check_eq(status(d, mid)["state"], "sending", "state during the resend")
    check_eq(report(d, mid, 1), 200, "the report of the first attempt")
    wait_state(d, mid, "delivered", 5)
    d.wait_log(r"notice: msg sent id=%s upstream_id=- attempt=\d+ "
            r"reason=reported" % mid, offset=d.start_offset)
    time.sleep(0.5)
    s = fu_stats(fu)
    check_eq((s["message_send"], s["accepted"]), (2, 1),
            "fakeup message_send, accepted")
    check_eq(d.stats()["messages"].get("queued", 0), 0, "queued")


@suite.case("HEAD of a report or inbound URL: checked, 200, nothing applied")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "head")
    q = "/dlr?id=%s&t=%s&status=1" % (mid, token(mid))
    check_eq(http_get(d.dlr_port, q, method="HEAD")[0], 200, "HEAD report")
    check_eq(http_get(d.dlr_port, "/dlr?id=%s&t=%s&status=1" % (mid,
            token("0" * 16)), method="HEAD")[0], 403, "HEAD, forged token")
    mo = "/mo?t=%s&to=27820000001&from=%%2B27831112222&message=hi" % (
            urllib.parse.quote(INBOUND_TOKEN, safe=""))
    check_eq(http_get(d.dlr_port, mo, method="HEAD")[0], 200, "HEAD inbound")
    d.ping()
    st = status(d, mid)
    check_eq(st["state"], "sent", "state after HEAD")
    check_no_report(st, "after HEAD")
    check_eq(inbox(d).get("messages"), [], "inbox after HEAD")
    check_eq(http_get(d.dlr_port, q)[0], 200, "GET report")
    wait_state(d, mid, "delivered", 2)


@suite.case("unknown codes (32, 0, -1, 3): 200, recorded and logged, state "
        "unchanged")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    mid = sent_message(t, d, "unknown codes")
    for code in (32, 0, -1, 3):
        check_eq(report(d, mid, code), 200, "report %d" % code)
        st = status(d, mid)
        check_eq(st["state"], "sent", "state after %d" % code)
        check_report(st, code, "unknown", "after %d" % code)
        d.wait_log(r"msg report id=%s code=%s report=unknown state=sent"
                % (mid, re.escape(str(code))), offset=d.start_offset)
    check_eq(report(d, mid, 1), 200, "report 1 after them")
    check_report(wait_state(d, mid, "delivered", 2), 1, "delivered",
            "after 1")


# ----------------------------------------------------- 5. a burst

@suite.case("1,000 reports in a burst over 4 keep-alive connections: all "
        "200, every message delivered", timeout=40)
def _(t):
    n, nconn = 1000, 4
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    ids = send_many(d, ["burst %04d" % i for i in range(n)])
    wait_count(d, "sent", n, 20)
    results = [None] * nconn

    class Counted(http.client.HTTPConnection):
        connects = 0

        def connect(self):
            self.connects += 1
            super().connect()

    def worker(k):
        conn = Counted("127.0.0.1", d.dlr_port, timeout=10)
        codes = []
        try:
            for mid in ids[k::nconn]:
                codes.append(http_get(d.dlr_port, "/dlr?id=%s&t=%s&"
                        "status=1" % (mid, token(mid)), conn=conn)[0])
        except Exception as e:  # reported by the main thread
            codes.append(repr(e))
        finally:
            conn.close()
        results[k] = (codes, conn.connects)
    threads = [threading.Thread(target=worker, args=(k,), daemon=True)
            for k in range(nconn)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(20)
    dt = time.monotonic() - t0
    check(all(r is not None for r in results), "a sender did not finish "
            "within 20 s")
    codes = [c for r in results for c in r[0]]
    check_eq(len(codes), n, "answers")
    bad = [c for c in codes if c != 200]
    check(not bad, "%d of %d reports not answered 200: %r" % (len(bad), n,
            bad[:5]))
    reused = [r[1] for r in results]
    check_eq(reused, [1] * nconn, "connections used by each sender "
            "(keep-alive)")
    wait_count(d, "delivered", n, 10)
    answers = statuses(d, ids)
    wrong = [a for a in answers if a.get("state") != "delivered" or
            a.get("report_code") != 1]
    check(not wrong, "%d messages not delivered with code 1, first %r" %
            (len(wrong), wrong[:1]))
    s = d.stats()
    check_eq((s.get("reports"), s["messages"].get("sent")), (n, 0),
            "stats reports, sent")
    print("# %d reports in %.2fs" % (n, dt), flush=True)


# ---------------------------------------------------- 6. inbound

UTF8_TEXT = "Hi \U0001F44B caf\u00e9 \u00fcber & = + ? #"
UTF16_TEXT = "\u041f\u0440\u0438\u0432\u0435\u0442 \U0001F600 ok"
HEX_TEXT = "\u00c7a va? \u20ac5 \U0001F680"


def three_inbound(d):
    check_eq(inbound(d, UTF8_TEXT, charset="UTF-8", code="KEYWORD"), 200,
            "inbound UTF-8")
    raw = urllib.parse.quote_from_bytes(UTF16_TEXT.encode("utf-16-be"),
            safe="")
    check_eq(inbound(d, raw, charset="UTF-16BE", raw=True), 200,
            "inbound UTF-16BE raw")
    hexed = HEX_TEXT.encode("utf-16-be").hex().upper()
    check_eq(inbound(d, hexed, charset="UTF-16BE", raw=True,
            frm="27839990000"), 200, "inbound UTF-16BE hex")


@suite.case("inbound UTF-8 (emoji) and UTF-16BE (raw and hex) read back "
        "with inbox; cursor semantics")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    check_eq(inbox(d).get("messages"), [], "an empty inbox")
    three_inbound(d)
    r = inbox(d)
    msgs = r.get("messages")
    check(isinstance(msgs, list) and len(msgs) == 3, "inbox: %r" % r)
    check_eq([m.get("text") for m in msgs], [UTF8_TEXT, UTF16_TEXT,
            HEX_TEXT], "texts")
    check_eq([m.get("from") for m in msgs], ["+27831112222",
            "+27831112222", "27839990000"], "from")
    check_eq([m.get("to") for m in msgs], ["27820000001"] * 3, "to")
    check_eq([m.get("charset") for m in msgs], ["UTF-8", "UTF-16BE",
            "UTF-16BE"], "charsets")
    check_eq(msgs[0].get("code"), "KEYWORD", "code")
    check("code" not in msgs[1], "code of one without: %r" % msgs[1])
    for m in msgs:
        check(re.fullmatch(STAMP, m.get("received", "")), "received: %r"
                % m)
    cur = [m.get("id") for m in msgs]
    check(all(isinstance(c, int) for c in cur) and cur == sorted(cur) and
            len(set(cur)) == 3, "cursors %r" % cur)
    check_eq(r.get("next"), cur[2], "next")
    r = inbox(d, after=cur[0])
    check_eq([m["id"] for m in r["messages"]], cur[1:], "after the first")
    check_eq(r.get("next"), cur[2], "next after the first")
    r = inbox(d, after=cur[0], limit=1)
    check_eq([m["id"] for m in r["messages"]], cur[1:2], "limit 1")
    check_eq(r.get("next"), cur[1], "next with limit 1")
    r = inbox(d, after=cur[2])
    check_eq((r["messages"], r.get("next")), ([], cur[2]),
            "after the last: none, next unchanged")
    bad = d.request({"op": "inbox", "after": -1})
    check_eq(bad.get("error"), "bad_request", "after -1")
    bad = d.request({"op": "inbox", "limit": 0})
    check_eq(bad.get("error"), "bad_request", "limit 0")
    check_eq(d.stats().get("inbound"), 3, "stats inbound")
    check_eq(len(log_lines(d, r"inbound received id=\d+ ")), 3,
            "inbound log lines")


@suite.case("smsgwctl inbox prints them; --after; --follow prints a later "
        "one", timeout=20)
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    three_inbound(d)
    cur = [m["id"] for m in inbox(d)["messages"]]
    p = d.ctl("inbox")
    check_eq(p.returncode, 0, "exit status (stderr %r)" % p.err)
    lines = p.out.splitlines()
    check_eq(len(lines), 3, "lines of smsgwctl inbox: %r" % p.out)
    fields = [l.split("\t") for l in lines]
    check_eq([f[0] for f in fields], [str(c) for c in cur], "cursors")
    check_eq([f[4] for f in fields], [UTF8_TEXT, UTF16_TEXT, HEX_TEXT],
            "texts")
    check_eq([f[2] for f in fields], ["+27831112222", "+27831112222",
            "27839990000"], "from")
    check(all(re.fullmatch(STAMP, f[1]) for f in fields), "received: %r"
            % fields)
    p = d.ctl("inbox", "--after", str(cur[1]))
    check_eq([l.split("\t")[0] for l in p.out.splitlines()], [str(cur[2])],
            "--after the second")
    p = d.ctl("inbox", "--after", str(cur[2]))
    check_eq((p.returncode, p.out), (0, ""), "--after the last")
    p = d.ctl("--json", "inbox")
    j = json.loads(p.out)
    check_eq([m["text"] for m in j["messages"]], [UTF8_TEXT, UTF16_TEXT,
            HEX_TEXT], "--json texts")

    f = spawn([SMSGWCTL, "-s", d.socket_path, "inbox", "--follow",
            "--after", str(cur[2])], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        check(f.poll() is None, "inbox --follow exited: %s" % f.poll())
        check_eq(inbound(d, "later \u2603"), 200, "a later inbound")
        sel = selectors.DefaultSelector()
        sel.register(f.stdout, selectors.EVENT_READ)
        got = b""
        deadline = time.monotonic() + 5
        while b"\n" not in got and time.monotonic() < deadline:
            if sel.select(max(0.01, deadline - time.monotonic())):
                chunk = os.read(f.stdout.fileno(), 4096)
                if not chunk:
                    break
                got += chunk
        sel.close()
        line = got.decode("utf-8", "replace").split("\n")[0].split("\t")
        check(len(line) == 5 and line[4] == "later \u2603" and
                int(line[0]) > cur[2], "--follow printed %r" % got)
        check(f.poll() is None, "--follow stopped after one message")
    finally:
        if f.poll() is None:
            f.kill()
        f.wait(5)
        f.stdout.close()
        f.stderr.close()
        if f in _processes:
            _processes.remove(f)


@suite.case("inbound with a bad or no token: 403, nothing stored; "
        "malformed: 400")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    for tok in ("in-tokeN", "in-token2", "", "in-toke", None):
        check_eq(inbound(d, "forged", tok=tok), 403, "token %r" % tok)
    check_eq(inbox(d)["messages"], [], "inbox after forged ones")
    d.wait_log(r" warn: dlr refused reason=bad-token kind=inbound",
            offset=d.start_offset)
    bad = [
            "/mo?t=in-token&to=27820000001&from=2783",
            "/mo?t=in-token&to=27820000001&message=x",
            "/mo?t=in-token&from=2783&message=x",
            "/mo?t=in-token&to=abc&from=2783&message=x",
            "/mo?t=in-token&to=2782&from=2783&message=%ff%fe",
            "/mo?t=in-token&to=2782&from=2783&message=%d8%00"
            "&charset=UTF-16BE",
            "/mo?t=in-token&to=2782&from=2783&message=%zz",
            "/mo?t=in-token&to=2782&from=2783&message=" + "a" * 5000,
        ]
    for target in bad:
        check_eq(http_get(d.dlr_port, target)[0], 400, "GET %s" % target)
    check_eq(inbox(d)["messages"], [], "inbox after malformed ones")
    check_eq(d.stats().get("inbound"), 0, "stats inbound")
    check_eq(inbound(d, "good one"), 200, "a good one afterwards")
    check_eq([m["text"] for m in inbox(d)["messages"]], ["good one"],
            "inbox")


@suite.case("an inbound message answered 200 survives a SIGKILL")
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu)
    check_eq(inbound(d, "durable \u2713"), 200, "inbound")
    d.kill()
    d.start()
    check_eq([m["text"] for m in inbox(d)["messages"]], ["durable \u2713"],
            "inbox after the restart")


# ------------------------------------------- 7. metrics and stats

@suite.case("GET /metrics: Prometheus text that passes the strict check, "
        "with values matching what happened", timeout=25)
def _(t):
    n, ndeliv, nundeliv = 40, 25, 8
    fu = t.fakeup("--no-dlr", "--limit", "3", "--latency-ms", "30")
    d = dlr_daemon(t, fu, upstream={"max_concurrency": 16})
    ids = send_many(d, ["metric %02d" % i for i in range(n)])
    wait_count(d, "sent", n, 15)
    for mid in ids[:ndeliv]:
        check_eq(report(d, mid, 1), 200, "report 1")
    for mid in ids[ndeliv:ndeliv + nundeliv]:
        check_eq(report(d, mid, 2), 200, "report 2")
    check_eq(report(d, ids[-1], 8), 200, "an intermediate report")
    wait_count(d, "delivered", ndeliv, 5)
    wait_count(d, "undelivered", nundeliv, 5)
    ctype, text = metrics_page(d)
    check(ctype is not None and ctype.replace(" ", "").startswith(
            PROM_TYPE.replace(" ", "")), "Content-Type %r" % ctype)
    problems = promcheck.check(text)
    check(problems == [], "promcheck: %r" % problems[:5])
    s = samples(text)
    fs = fu_stats(fu)
    check(fs["throttled"] > 0, "fakeup throttled none: nothing to compare")
    # A throttled message goes back to queued, then to sending again.
    tries = n + fs["throttled"]
    for state, want in (("queued", tries), ("sending", tries),
            ("sent", n), ("delivered", ndeliv), ("undelivered", nundeliv),
            ("failed", 0), ("expired", 0), ("cancelled", 0)):
        check_eq(sample(s, "smsgw_messages_total", state=state), want,
                "smsgw_messages_total{state=%s}" % state)
    check_eq(sample(s, "smsgw_upstream_requests_total", outcome="sent"), n,
            "upstream_requests_total{outcome=sent}")
    check_eq(sample(s, "smsgw_upstream_requests_total",
            outcome="throttled"), fs["throttled"],
            "upstream_requests_total{outcome=throttled} (fakeup's count)")
    for outcome in ("retry", "failed", "hold"):
        check_eq(sample(s, "smsgw_upstream_requests_total",
                outcome=outcome), 0, "outcome=%s" % outcome)
    st = d.stats()
    for prio in ("high", "normal"):
        check_eq(sample(s, "smsgw_queue_depth", priority=prio), 0,
                "queue_depth{priority=%s}" % prio)
    check_eq(sample(s, "smsgw_inflight"), 0, "inflight")
    check_eq(sample(s, "smsgw_concurrency_limit"), st["limit"],
            "concurrency_limit (stats limit)")
    check_eq(sample(s, "smsgw_delivery_reports_total"),
            ndeliv + nundeliv + 1, "delivery_reports_total")
    check_eq(sample(s, "smsgw_messages", state="sent"),
            n - ndeliv - nundeliv, "smsgw_messages{state=sent} gauge")
    count = sample(s, "smsgw_upstream_latency_seconds_count")
    total = sample(s, "smsgw_upstream_latency_seconds_sum")
    check_eq(count, n, "latency histogram _count (successful sends)")
    check(0.030 * n <= total <= 5.0 * n, "latency _sum %r for %d sends "
            "of >= 30 ms" % (total, n))
    buckets = sorted((float(dict(k[1])["le"].replace("Inf", "inf")), v)
            for k, v in s.items()
            if k[0] == "smsgw_upstream_latency_seconds_bucket")
    check(len(buckets) >= 5, "latency buckets: %r" % buckets)
    check_eq(buckets[-1], (float("inf"), n), "+Inf bucket")
    for le, v in buckets:
        if le < 0.030:
            check_eq(v, 0, "bucket le=%g (fakeup answers after 30 ms)" % le)
    check(any(le >= 0.030 and v == n for le, v in buckets if le < 5),
            "no finite bucket holds all %d: %r" % (n, buckets))
    # The listener answers nothing else.
    code, _ = http_get(d.metrics_port, "/other")
    check_eq(code, 404, "GET /other")
    code, _ = http_get(d.metrics_port, "/metrics", method="POST")
    check_eq(code, 405, "POST /metrics")


@suite.case("stats: counts, last_minute, last_5_minutes, limit_changes, "
        "latency p50/p99, hold, balance; smsgwctl stats and --json",
        timeout=25)
def _(t):
    n = 30
    fu = t.fakeup("--no-dlr", "--limit", "3", "--latency-ms", "25",
            "--balance", "500")
    d = dlr_daemon(t, fu, upstream={"max_concurrency": 16,
            "balance_interval": 1, "low_balance": 1000})
    ids = send_many(d, ["stats %02d" % i for i in range(n)])
    wait_count(d, "sent", n, 15)
    for mid in ids[:10]:
        check_eq(report(d, mid, 1), 200, "report 1")
    for mid in ids[10:13]:
        check_eq(report(d, mid, 16), 200, "report 16")
    wait_count(d, "undelivered", 3, 5)
    d.wait_log(r" warn: upstream low-balance balance=\d+\.\d\d "
            r"low_balance=1000", timeout=5, offset=d.start_offset)
    fs = fu_stats(fu)
    check(fs["balance_queries"] >= 1, "fakeup balance queries: %r" % fs)

    def with_balance():
        s = d.stats()
        return s if isinstance(s.get("balance"), (int, float)) else None
    s = wait_until(with_balance, 3, "a balance in stats")
    check(500 - n <= s["balance"] <= 500, "balance %r (fakeup 500 less "
            "one per accepted message)" % s["balance"])
    m = s["messages"]
    check_eq((m.get("queued"), m.get("sending"), m.get("sent"),
            m.get("delivered"), m.get("undelivered"), m.get("failed")),
            (0, 0, n - 13, 10, 3, 0), "messages per state")
    check_eq(s["last_minute"].get("sent"), n, "last_minute.sent")
    check_eq(s["last_5_minutes"].get("sent"), n, "last_5_minutes.sent")
    check_eq(s["last_minute"].get("throttled"), fs["throttled"],
            "last_minute.throttled (fakeup's count)")
    check_eq(s.get("throttled"), fs["throttled"], "throttled")
    for k in ("retried", "failed", "expired"):
        check_eq(s["last_minute"].get(k), 0, "last_minute.%s" % k)
    check(fs["throttled"] > 0, "fakeup throttled none")
    ch = s.get("limit_changes")
    check(isinstance(ch, list) and len(ch) >= 1, "limit_changes %r" % ch)
    for c in ch:
        check(re.fullmatch(STAMP, c.get("at", "")) and
                isinstance(c.get("from"), int) and
                isinstance(c.get("to"), int) and c["from"] != c["to"],
                "limit change %r" % c)
    check_eq(ch[-1]["to"], s["limit"], "the last change ends at the limit")
    lat = s.get("latency_ms") or {}
    check(isinstance(lat.get("p50"), int) and 25 <= lat["p50"] <=
            lat.get("p99", -1) < 5000, "latency_ms %r (fakeup 25 ms)" % lat)
    check_eq(s.get("hold"), {"active": False}, "hold")
    check_eq((s.get("inflight"), s.get("reports")), (0, 13),
            "inflight, reports")
    check_eq(s["queue"], {"high": 0, "normal": 0, "deferred": 0}, "queue")
    check(isinstance(s.get("uptime"), int) and s["uptime"] >= 0, "uptime")
    _, text = metrics_page(d)
    check_eq(sample(samples(text), "smsgw_balance"), s["balance"],
            "smsgw_balance")
    at = d.log_size()
    fu_set(fu, balance=5000)
    d.wait_log(r" notice: upstream balance-restored balance=5000\.00",
            timeout=4, offset=at)

    p = d.ctl("--json", "stats")
    check_eq(p.returncode, 0, "smsgwctl --json stats exit")
    check_eq(len(p.out.splitlines()), 1, "--json prints one line")
    j = json.loads(p.out)
    check_eq(set(j), set(s), "--json keys")
    check_eq(j["messages"], s["messages"], "--json messages")
    p = d.ctl("stats")
    check_eq(p.returncode, 0, "smsgwctl stats exit")
    kv = {}
    for line in p.out.splitlines():
        mm = re.fullmatch(r"([a-z0-9_]+(?:\.[a-z0-9_]+)*): (.*)", line)
        check(mm is not None, "not a key: value line: %r" % line)
        kv[mm.group(1)] = mm.group(2)
    for k, want in (("messages.sent", str(n - 13)),
            ("messages.delivered", "10"), ("messages.undelivered", "3"),
            ("last_minute.sent", str(n)), ("reports", "13"),
            ("inflight", "0"), ("limit", str(j["limit"]))):
        check_eq(kv.get(k), want, "smsgwctl stats %s" % k)
    for k in ("latency_ms.p50", "latency_ms.p99", "last_5_minutes.sent",
            "limit_changes.0.from", "balance", "uptime"):
        check(kv.get(k, "") != "", "smsgwctl stats %s missing or empty: %r"
                % (k, kv.get(k)))
    check_eq(kv.get("hold.active"), "false", "smsgwctl stats hold.active")


@suite.case("queue old-messages warning on hold (wrong password, "
        "queue_age_warn 1, stats_interval 1)", timeout=15)
def _(t):
    fu = t.fakeup("--no-dlr")
    d = dlr_daemon(t, fu, upstream={"password": "wrong"},
            log={"stats_interval": 1, "queue_age_warn": 1})
    off = dlr_daemon(t, fu, upstream={"password": "wrong"},
            log={"stats_interval": 1, "queue_age_warn": 0})
    send_one(off, "waits without a warning")
    mid = send_one(d, "waits on hold")

    def held():
        h = d.stats().get("hold") or {}
        return h if h.get("active") else None
    h = wait_until(held, 5, "a hold")
    check(isinstance(h.get("reason"), str) and h["reason"], "hold %r" % h)
    line = d.wait_log(r" warn: queue old-messages oldest_s=(\d+) queued=1 "
            r"hold=(\S+)", timeout=6, offset=d.start_offset)
    check(int(line.group(1)) > 1, "oldest_s %s not above 1" %
            line.group(1))
    check_eq(line.group(2), h["reason"], "hold= of the warning")
    check_eq(status(d, mid)["state"], "queued", "state")
    s = d.stats()
    check_eq(s["queue"].get("normal"), 1, "stats queue.normal")
    check(s["hold"].get("seconds", -1) >= 0 and "code" in s["hold"],
            "stats hold %r" % s["hold"])
    check(log_lines(d, r" info: stats queued=1 .*hold=%s" %
            re.escape(h["reason"])), "no periodic stats line with the hold")
    check(len(log_lines(off, r" info: stats queued=1 ")) >= 2,
            "queue_age_warn 0: fewer than 2 stats lines")
    check_eq(log_lines(off, r"queue old-messages"), [],
            "queue_age_warn 0: warnings")


if __name__ == "__main__":
    suite.main()
