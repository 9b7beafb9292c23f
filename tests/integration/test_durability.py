# test_durability.py: an acknowledged message is durable. The daemon is
# killed with SIGKILL right after (or while) acknowledging, or stopped with
# SIGTERM, and restarted on the same store: every acknowledged message is
# there, in the state it had.

import os
import signal
import sys

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Suite, check, check_eq, check_ok,
        check_error, is_id, multi_pipeline, parse_line)

suite = Suite("durability")

NUMBER = "+27821234567"


def sends(n, nconns, tag):
    """n send requests spread over nconns streams; req i, ref TAG-i."""
    streams = [[] for _ in range(nconns)]
    for i in range(n):
        streams[i % nconns].append({"op": "send", "to": NUMBER,
                "text": "%s message %d" % (tag, i), "ref": "%s-%d" % (tag, i),
                "req": i})
    return streams


def acked_ids(lines_per_conn, what):
    """{req: id} of every ok answer; fails on any other answer."""
    ids = {}
    for lines in lines_per_conn:
        for line in lines:
            a = parse_line(line)
            check_ok(a, "%s: answer %r" % (what, a))
            check(is_id(a.get("id")), "%s: no id in %r" % (what, a))
            check(a.get("req") not in ids, "%s: req %r answered twice" %
                    (what, a.get("req")))
            ids[a["req"]] = a["id"]
    return ids


def kill_now(d):
    os.kill(d.pid, signal.SIGKILL)


def check_all_queued(d, ids, tag, sample=None):
    """Status of each id (or of a sample) on one connection: queued, ref."""
    reqs = sorted(ids)
    if sample is not None and len(reqs) > sample:
        step = len(reqs) / float(sample)
        picked = {reqs[int(k * step)] for k in range(sample)}
        picked |= {reqs[0], reqs[-1]}
        reqs = sorted(picked)
    with d.client() as c:
        answers = c.pipeline([{"op": "status", "id": ids[r], "req": r}
                for r in reqs], timeout=20)
    for r, a in zip(reqs, answers):
        check_ok(a, "status of %s (req %d) after the restart" %
                (ids[r], r))
        check_eq((a.get("id"), a.get("state"), a.get("ref")),
                (ids[r], "queued", "%s-%d" % (tag, r)),
                "id, state, ref of req %d" % r)


def check_loaded(d, queued):
    m = d.wait_log(r"store loaded queued=(\d+)", offset=d.start_offset)
    check_eq(int(m.group(1)), queued, "queued count in the restart's "
            "'store loaded' line")


@suite.case("2000 acknowledged messages survive SIGKILL right after the "
        "last ack", timeout=40)
def _(t):
    n = 2000
    d = t.daemon()
    lines = multi_pipeline(d.socket_path, sends(n, 4, "dur"), timeout=25,
            stop_after=n, on_stop=lambda: kill_now(d))
    rc = d.wait(5)
    check_eq(rc, -signal.SIGKILL, "exit status of the killed daemon")
    ids = acked_ids(lines, "flood")
    check_eq(len(ids), n, "acknowledged messages")
    check_eq(len(set(ids.values())), n, "distinct ids")

    d.start()
    check_loaded(d, n)
    m = d.counts()
    check_eq(m.get("queued"), n, "queued after the restart")
    check_eq(m.get("sending", 0), 0, "sending after the restart")
    check_all_queued(d, ids, "dur")


@suite.case("SIGKILL during a flood: every acknowledged message survives",
        timeout=40)
def _(t):
    n = 4000
    d = t.daemon()
    lines = multi_pipeline(d.socket_path, sends(n, 4, "mid"), timeout=25,
            stop_after=n // 4, on_stop=lambda: kill_now(d))
    d.wait(5)
    ids = acked_ids(lines, "flood")
    check(len(ids) >= n // 4, "only %d acks before the kill" % len(ids))

    d.start()
    queued = d.counts().get("queued")
    check(len(ids) <= queued <= n, "queued after the restart is %r, "
            "acknowledged were %d of %d" % (queued, len(ids), n))
    check_loaded(d, queued)
    check_all_queued(d, ids, "mid", sample=400)

    # Nothing is stored twice: each ref names one message.
    with d.client() as c:
        answers = c.pipeline([{"op": "status", "ref": "mid-%d" % i}
                for i in range(n)], timeout=20)
    found = sum(1 for a in answers if a.get("ok"))
    check_eq(found, queued, "messages found by ref vs queued count")
    for i, a in enumerate(answers):
        if i in ids:
            check_eq(a.get("id"), ids[i], "id found by ref mid-%d" % i)
        elif not a.get("ok"):
            check_error(a, "not_found", "status of ref mid-%d" % i)


@suite.case("a clean SIGTERM keeps queued and cancelled messages",
        timeout=30)
def _(t):
    n = 600
    d = t.daemon()
    lines = multi_pipeline(d.socket_path, sends(n, 3, "term"), timeout=20)
    ids = acked_ids(lines, "sends")
    check_eq(len(ids), n, "acknowledged messages")
    cancelled = sorted(ids)[::10]
    with d.client() as c:
        for a in c.pipeline([{"op": "cancel", "id": ids[r]}
                for r in cancelled]):
            check_eq((a.get("ok"), a.get("state")), (True, "cancelled"),
                    "cancel answer %r" % (a,))
    primers = d.primers
    rc = d.stop()
    check_eq(rc, 0, "exit status after SIGTERM")

    d.start()
    check_loaded(d, n - len(cancelled))
    m = d.counts()
    check_eq((m.get("queued"), m.get("cancelled")),
            (n - len(cancelled), len(cancelled) + d.primers),
            "queued and cancelled after the restart")
    check(d.primers == primers + 1, "one primer per start")
    queued = {r: i for r, i in ids.items() if r not in set(cancelled)}
    check_all_queued(d, queued, "term")
    with d.client() as c:
        for r, a in zip(cancelled, c.pipeline([{"op": "status",
                "id": ids[r]} for r in cancelled])):
            check_eq(a.get("state"), "cancelled", "state of req %d" % r)


@suite.case("messages survive a second restart, and a kill after a restart")
def _(t):
    d = t.daemon()
    with d.client() as c:
        first = [check_ok(c.request({"op": "send", "to": NUMBER,
                "text": "a %d" % i, "ref": "again-%d" % i}), "send")["id"]
                for i in range(20)]
    d.kill()
    d.start()
    with d.client() as c:
        second = [check_ok(c.request({"op": "send", "to": NUMBER,
                "text": "b %d" % i}), "send")["id"] for i in range(20)]
    check(not set(first) & set(second), "an id was given out twice "
            "across a restart")
    d.kill()
    d.start()
    check_loaded(d, 40)
    check_eq(d.counts().get("queued"), 40, "queued after two kills")
    with d.client() as c:
        for sid in first + second:
            r = check_ok(c.request({"op": "status", "id": sid}),
                    "status of %s" % sid)
            check_eq(r.get("state"), "queued", "state of %s" % sid)


@suite.case("a ref is still known after a restart")
def _(t):
    d = t.daemon()
    r = check_ok(d.request({"op": "send", "to": NUMBER, "text": "once",
            "ref": "restart-ref"}), "send")
    d.kill()
    d.start()
    again = check_ok(d.request({"op": "send", "to": NUMBER,
            "text": "twice", "ref": "restart-ref"}), "send after restart")
    check_eq((again.get("id"), again.get("duplicate")), (r["id"], True),
            "id and duplicate flag of the repeated ref")
    check_eq(d.counts().get("queued"), 1, "queued")


if __name__ == "__main__":
    suite.main()
