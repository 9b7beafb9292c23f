# test_basic.py: the round trips of the submission protocol, smsgwctl, and
# the daemon's life cycle (start, refuse, stale socket, signals, logs).

import json
import os
import re
import signal
import stat
import sys

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Suite, Daemon, Client, ConnectionClosed, Failure,
        check, check_eq, check_ok, check_error, is_id, run_smsgwd, wait_until,
        write_file, PRIMER_TO, SRCDIR)

suite = Suite("basic")

NUMBER = "+27821234567"
MASKED = "+2782*****67"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"


def send(to=NUMBER, text="hello", **extra):
    req = {"op": "send", "to": to, "text": text}
    req.update(extra)
    return req


def send_ok(d, **kw):
    r = check_ok(d.request(send(**kw)), "send %r" % (kw,))
    check(is_id(r.get("id")), "send answered no id: %r" % (r,))
    return r


# ------------------------------------------------------- raw socket

@suite.case("ping answers ok:true")
def _(t):
    d = t.daemon()
    r = d.request({"op": "ping"})
    check_eq(r, {"ok": True}, "ping answer")


@suite.case("send answers an id, state queued, segments and encoding")
def _(t):
    d = t.daemon()
    r = send_ok(d, text="Your code is 4711", **{"from": "ACME"})
    check_eq(r.get("state"), "queued", "state")
    check_eq(r.get("segments"), 1, "segments")
    check_eq(r.get("encoding"), "gsm7", "encoding")
    r2 = send_ok(d)
    check(r2["id"] != r["id"], "two sends got the same id %s" % r["id"])


@suite.case("status of a queued message shows its fields")
def _(t):
    d = t.daemon()
    sid = send_ok(d, to="0027821234567", ref="st-1",
            **{"from": "ACME"})["id"]
    r = check_ok(d.request({"op": "status", "id": sid}), "status")
    check_eq(r.get("id"), sid, "id")
    check_eq(r.get("state"), "queued", "state")
    check_eq(r.get("ref"), "st-1", "ref")
    check(isinstance(r.get("to"), str) and
            r["to"].lstrip("+") == "27821234567",
            "to is not the normalised number: %r" % (r.get("to"),))
    check_eq(r.get("attempts"), 0, "attempts")
    for k in ("created", "updated"):
        check(isinstance(r.get(k), str) and re.fullmatch(ISO, r[k]),
                "%s is not an ISO 8601 UTC time: %r" % (k, r.get(k)))


@suite.case("req is echoed exactly: strings, numbers, big numbers, errors")
def _(t):
    d = t.daemon()
    with t.client(d) as c:
        cases = [
                (b'{"op":"ping","req":"abc"}', b'"req":"abc"'),
                (b'{"op":"ping","req":42}', b'"req":42'),
                (b'{"op":"ping","req":-7}', b'"req":-7'),
                (b'{"op":"ping","req":0.1}', b'"req":0.1'),
                (b'{"op":"ping","req":1.5e3}', b'"req":1.5e3'),
                (b'{"op":"ping","req":123456789012345678901234567890}',
                    b'"req":123456789012345678901234567890'),
                (b'{"op":"ping","req":18446744073709551617}',
                    b'"req":18446744073709551617'),
                (b'{"op":"nosuchop","req":"e1"}', b'"req":"e1"'),
                (b'{"op":"send","to":"1","text":"x","req":99}',
                    b'"req":99'),
            ]
        for line, want in cases:
            c.send(line + b"\n")
            raw = c.recv_line()
            check(raw is not None, "no answer to %r" % line)
            check(want in raw, "%r: answer %r does not hold %r" %
                    (line, raw, want))
        r = c.request({"op": "ping", "req": "a\"b\\c \u00fc \U0001f600"})
        check_eq(r.get("req"), "a\"b\\c \u00fc \U0001f600",
                "string req with escapes and non-ASCII")
        r = c.request({"op": "ping", "req": 2 ** 70})
        check_eq(r.get("req"), 2 ** 70, "2**70 as req")
        r = c.request({"op": "ping"})
        check("req" not in r, "req in the answer of a request without "
                "one: %r" % (r,))


@suite.case("a repeated ref returns the first id with duplicate:true")
def _(t):
    d = t.daemon()
    first = send_ok(d, ref="order-9931", text="first")
    before = d.counts()["queued"]
    again = check_ok(d.request(send(ref="order-9931", text="second")),
            "second send with the same ref")
    check_eq(again.get("id"), first["id"], "id of the duplicate")
    check_eq(again.get("duplicate"), True, "duplicate flag")
    check_eq(d.counts()["queued"], before, "queued count after the "
            "duplicate")
    check("duplicate" not in first or first["duplicate"] is False,
            "the first send was flagged duplicate: %r" % (first,))
    other = send_ok(d, ref="order-9932")
    check(other["id"] != first["id"], "another ref got the same id")


@suite.case("two pipelined sends with one ref queue one message")
def _(t):
    d = t.daemon()
    with t.client(d) as c:
        a, b = c.pipeline([send(ref="twice", text="one", req=1),
                send(ref="twice", text="two", req=2)])
    check_ok(a, "first send")
    check_ok(b, "second send")
    check_eq(b.get("id"), a.get("id"), "id of the second")
    check_eq(b.get("duplicate"), True, "duplicate flag of the second")
    check_eq(d.counts()["queued"], 1, "queued")


@suite.case("status by ref")
def _(t):
    d = t.daemon()
    sid = send_ok(d, ref="by-ref-1")["id"]
    r = check_ok(d.request({"op": "status", "ref": "by-ref-1"}),
            "status by ref")
    check_eq(r.get("id"), sid, "id")
    check_eq(r.get("state"), "queued", "state")
    check_error(d.request({"op": "status", "ref": "no-such-ref"}),
            "not_found", "status of an unknown ref")


@suite.case("cancel of a queued message; status then shows cancelled")
def _(t):
    d = t.daemon()
    sid = send_ok(d)["id"]
    r = check_ok(d.request({"op": "cancel", "id": sid}), "cancel")
    check_eq(r.get("id"), sid, "id")
    check_eq(r.get("state"), "cancelled", "state")
    r = check_ok(d.request({"op": "status", "id": sid}), "status")
    check_eq(r.get("state"), "cancelled", "state after cancel")
    m = d.counts()
    check_eq((m.get("queued"), m.get("cancelled")), (0, 1 + d.primers),
            "queued and cancelled counts")


@suite.case("a second cancel of a message leaves it and the counts right")
def _(t):
    d = t.daemon()
    sid = send_ok(d)["id"]
    check_ok(d.request({"op": "cancel", "id": sid}), "first cancel")
    r = d.request({"op": "cancel", "id": sid})
    check((r.get("ok") is True and r.get("state") == "cancelled") or
            r.get("error") == "not_cancellable", "second cancel: expected "
            "ok/cancelled or not_cancellable, got %r" % (r,))
    r = check_ok(d.request({"op": "status", "id": sid}), "status")
    check_eq(r.get("state"), "cancelled", "state")
    m = d.counts()
    check_eq((m.get("queued"), m.get("cancelled")), (0, 1 + d.primers),
            "queued and cancelled counts after two cancels")


@suite.case("cancel and status of an unknown id are not_found")
def _(t):
    d = t.daemon()
    send_ok(d)
    for op in ("cancel", "status"):
        for mid in ("00000000deadbeef", "7fffffffffffffff",
                "0000000000000000", "xyz"):
            check_error(d.request({"op": op, "id": mid}),
                    "not_found", "%s of id %s" % (op, mid))


@suite.case("200 pipelined mixed requests are answered in order")
def _(t):
    d = t.daemon()
    known = send_ok(d, ref="known")["id"]
    reqs = []
    for i in range(200):
        k = i % 6
        if k == 0:
            r = send(ref="pipe-%d" % i, text="m %d" % i)
        elif k == 1:
            r = {"op": "ping"}
        elif k == 2:
            r = {"op": "status", "id": known}
        elif k == 3:
            r = {"op": "stats"}
        elif k == 4:
            r = {"op": "status", "id": "00000000deadbeef"}
        else:
            r = send(to="123", text="bad number")
        r["req"] = i
        reqs.append(r)
    with t.client(d) as c:
        answers = c.pipeline(reqs, timeout=20)
    ids = set()
    for i, a in enumerate(answers):
        check_eq(a.get("req"), i, "req of answer %d" % i)
        k = i % 6
        if k == 0:
            check_ok(a, "send %d" % i)
            check(is_id(a.get("id")) and a["id"] not in ids,
                    "send %d: bad or repeated id %r" % (i, a.get("id")))
            ids.add(a["id"])
        elif k in (1, 3):
            check_ok(a, "answer %d" % i)
            if k == 3:
                check("messages" in a, "stats %d: %r" % (i, a))
        elif k == 2:
            check_ok(a, "status %d" % i)
            check_eq(a.get("id"), known, "status %d id" % i)
        elif k == 4:
            check_error(a, "not_found", "status %d" % i)
        else:
            check_error(a, "invalid_number", "send %d" % i)
    check_eq(d.counts()["queued"], 1 + len(ids), "queued count")


@suite.case("segments and encoding are reported")
def _(t):
    d = t.daemon()
    emoji = "\U0001f600"
    cases = [
            ("a" * 160, 1, "gsm7"),
            ("a" * 161, 2, "gsm7"),
            ("a" * 306, 2, "gsm7"),
            ("a" * 307, 3, "gsm7"),
            ("\u20ac" * 80, 1, "gsm7"),  # the euro sign takes two septets
            ("\u20ac" * 81, 2, "gsm7"),
            ("{}[]~|^\\" * 10, 1, "gsm7"),
            # 152 + 2 + 152 septets: the escape pair is not split at 153
            ("a" * 152 + "\u20ac" + "a" * 152, 3, "gsm7"),
            (emoji, 1, "ucs2"),
            ("\u00e9t\u00e9 \u4e2d", 1, "ucs2"),
            ("\u4e2d" * 70, 1, "ucs2"),
            ("\u4e2d" * 71, 2, "ucs2"),
            (emoji * 35, 1, "ucs2"),  # 70 UTF-16 units
            (emoji * 36, 2, "ucs2"),
            # 66 + 2 + 66 units: the surrogate pair is not split at 67
            ("a" * 66 + emoji + "a" * 66, 3, "ucs2"),
        ]
    with t.client(d) as c:
        answers = c.pipeline([send(text=s, req=i)
                for i, (s, _, _) in enumerate(cases)])
    for (text, parts, enc), a in zip(cases, answers):
        what = "%d chars %r..." % (len(text), text[:12])
        check_ok(a, what)
        check_eq((a.get("segments"), a.get("encoding")), (parts, enc),
                what + " (segments, encoding)")


@suite.case("stats counts messages per state")
def _(t):
    d = t.daemon()
    s = d.stats()
    m = s.get("messages")
    check(isinstance(m, dict), "no messages object: %r" % (s,))
    for state in ("queued", "sending", "sent", "delivered", "undelivered",
            "cancelled", "expired", "failed"):
        want = d.primers if state == "cancelled" else 0
        check_eq(m.get(state), want, "messages.%s of a new store" % state)
    check(isinstance(s.get("uptime"), int) and s["uptime"] >= 0,
            "no uptime: %r" % (s,))
    # In-flight requests and the concurrency limit (protocol.md, stats).
    for key in ("inflight", "limit"):
        check(isinstance(s.get(key), int), "stats has no integer %r: %r" %
                (key, s))
    ids = [send_ok(d, text="s %d" % i)["id"] for i in range(3)]
    check_ok(d.request({"op": "cancel", "id": ids[0]}), "cancel")
    m = d.counts()
    check_eq((m.get("queued"), m.get("cancelled")), (2, 1 + d.primers),
            "queued and cancelled after 3 sends and a cancel")


@suite.case("an unsent message is expired once its valid_for has passed")
def _(t):
    d = t.daemon()
    short = send_ok(d, valid_for=1, ref="short")["id"]
    long_ = send_ok(d, valid_for=3600, ref="long")["id"]

    def expired():
        r = check_ok(d.request({"op": "status", "id": short}), "status")
        return r.get("state") == "expired"
    try:
        wait_until(expired, 4, "state expired")
    except Failure:
        r = d.request({"op": "status", "id": short})
        raise Failure("a message with valid_for 1 is still %r 4s after "
                "its validity ended (valid_until %s)" % (r.get("state"),
                r.get("valid_until")))
    r = check_ok(d.request({"op": "status", "id": long_}), "status")
    check_eq(r.get("state"), "queued", "state of the valid message")
    m = d.counts()
    check_eq((m.get("queued"), m.get("expired")), (1, 1),
            "queued and expired counts")


@suite.case("unknown fields are ignored")
def _(t):
    d = t.daemon()
    check_ok(d.request({"op": "ping", "future": {"x": [1, 2]}}), "ping")
    r = send_ok(d, shiny=True, later=None)
    check_eq(r.get("state"), "queued", "state")


# ---------------------------------------------------------- smsgwctl

@suite.case("smsgwctl send prints the id; status, cancel, stats, ping")
def _(t):
    d = t.daemon()
    p = d.ctl("send", NUMBER, "hello from ctl")
    check_eq(p.returncode, 0, "send exit status (stderr %r)" % p.err)
    sid = p.out.strip()
    check(is_id(sid), "send printed %r, not an id" % p.out)
    r = check_ok(d.request({"op": "status", "id": sid}), "status")
    check_eq(r.get("state"), "queued", "state of the ctl message")

    p = d.ctl("status", sid)
    check_eq(p.returncode, 0, "status exit status (stderr %r)" % p.err)
    lines = p.out.splitlines()
    check("id: %s" % sid in lines and "state: queued" in lines,
            "status output lacks id/state lines: %r" % p.out)

    p = d.ctl("ping")
    check_eq((p.returncode, p.out.strip()), (0, "ok"), "ping")

    p = d.ctl("stats")
    check_eq(p.returncode, 0, "stats exit status (stderr %r)" % p.err)
    check("messages.queued: 1" in p.out.splitlines(),
            "stats output lacks 'messages.queued: 1': %r" % p.out)

    p = d.ctl("cancel", sid)
    check_eq(p.returncode, 0, "cancel exit status (stderr %r)" % p.err)
    check(sid in p.out, "cancel output %r lacks the id" % p.out)
    p = d.ctl("status", sid)
    check("state: cancelled" in p.out.splitlines(),
            "status after cancel: %r" % p.out)


@suite.case("smsgwctl send options, text from stdin, status --ref")
def _(t):
    d = t.daemon()
    p = d.ctl("send", "--ref", "ctl-ref-1", "--from", "ACME",
            "--priority", "high", "--valid-for", "600", NUMBER,
            input="text from standard input\n")
    check_eq(p.returncode, 0, "send exit status (stderr %r)" % p.err)
    sid = p.out.strip()
    check(is_id(sid), "send printed %r" % p.out)
    r = check_ok(d.request({"op": "status", "id": sid}), "status")
    check_eq((r.get("ref"), r.get("from"), r.get("priority")),
            ("ctl-ref-1", "ACME", "high"), "ref, from, priority")

    p = d.ctl("status", "--ref", "ctl-ref-1")
    check_eq(p.returncode, 0, "status --ref exit (stderr %r)" % p.err)
    check("id: %s" % sid in p.out.splitlines(), "status --ref: %r" %
            p.out)

    p = d.ctl("send", "--ref", "ctl-ref-1", NUMBER, "again")
    check_eq((p.returncode, p.out.strip()), (0, sid),
            "duplicate send: exit status and id")
    check("duplicate" in p.err, "no duplicate notice on stderr: %r" %
            p.err)


@suite.case("smsgwctl --json prints the answer line")
def _(t):
    d = t.daemon()
    p = d.ctl("--json", "ping")
    check_eq(p.returncode, 0, "exit status")
    check_eq(json.loads(p.out), {"ok": True}, "ping --json")
    p = d.ctl("--json", "send", NUMBER, "json please")
    check_eq(p.returncode, 0, "send --json exit (stderr %r)" % p.err)
    r = json.loads(p.out)
    check(r.get("ok") is True and is_id(r.get("id")) and
            r.get("segments") == 1, "send --json: %r" % p.out)
    p = d.ctl("--json", "cancel", "00000000deadbeef")
    check_eq(p.returncode, 1, "cancel of an unknown id with --json")
    check_error(json.loads(p.out), "not_found", "cancel --json output")


@suite.case("smsgwctl batch answers every line in order")
def _(t):
    d = t.daemon()
    lines = [json.dumps({"op": "ping", "req": i}) for i in range(50)]
    p = d.ctl("batch", input="\n".join(lines) + "\n")
    check_eq(p.returncode, 0, "all-ok batch exit (stderr %r)" % p.err)
    out = [json.loads(l) for l in p.out.splitlines()]
    check_eq([a.get("req") for a in out], list(range(50)), "reqs")

    lines = [json.dumps(send(req=1)), "", "not json",
            json.dumps({"op": "ping", "req": 3})]
    p = d.ctl("batch", input="\n".join(lines) + "\n")
    check_eq(p.returncode, 1, "batch with a refused line: exit status")
    out = [json.loads(l) for l in p.out.splitlines()]
    check_eq(len(out), 3, "answers for 3 non-blank lines")
    check_ok(out[0], "send line")
    check_error(out[1], "bad_request", "not-JSON line")
    check_eq(out[2], {"ok": True, "req": 3}, "ping line")


@suite.case("smsgwctl uses SMSGW_SOCKET when -s is not given")
def _(t):
    d = t.daemon()
    p = d.ctl("ping", socket=None, env={"SMSGW_SOCKET": d.socket_path})
    check_eq((p.returncode, p.out.strip()), (0, "ok"),
            "ping through SMSGW_SOCKET (stderr %r)" % p.err)
    p = d.ctl("ping", env={"SMSGW_SOCKET": "/nonexistent/x.sock"})
    check_eq(p.returncode, 0, "-s wins over SMSGW_SOCKET")


@suite.case("smsgwctl exit status: 1 refused, 2 no daemon, 64 usage")
def _(t):
    d = t.daemon()
    p = d.ctl("send", "123", "bad number")
    check_eq(p.returncode, 1, "refused send (stderr %r)" % p.err)
    check("invalid_number" in p.err, "stderr lacks the error code: %r" %
            p.err)
    check_eq(p.out, "", "stdout of a refused send")
    p = d.ctl("cancel", "00000000deadbeef")
    check_eq(p.returncode, 1, "cancel of an unknown id")
    check("not_found" in p.err, "stderr: %r" % p.err)
    p = d.ctl("status", "00000000deadbeef")
    check_eq(p.returncode, 1, "status of an unknown id")

    gone = os.path.join(t.tempdir(), "none.sock")
    p = d.ctl("ping", socket=gone)
    check_eq(p.returncode, 2, "ping without a daemon (stderr %r)" % p.err)
    check(p.err.strip() != "", "no message without a daemon")

    for args in (["frobnicate"], [], ["send"], ["status"],
            ["cancel", "a", "b"], ["send", "--priority", "urgent", NUMBER,
            "x"], ["-t", "abc", "ping"]):
        p = d.ctl(*args)
        check_eq(p.returncode, 64, "usage error for %r" % (args,))


# --------------------------------------------------------- life cycle

@suite.case("a second daemon on the same socket refuses to start")
def _(t):
    d1 = t.daemon()
    sid = send_ok(d1)["id"]
    d2 = t.daemon(config={"socket": {"path": d1.socket_path}},
            start=False, name="second")
    d2.start(wait=False)
    rc = d2.wait(10)
    check(rc not in (0, None) and rc > 0,
            "second daemon exit status %r (want > 0)" % rc)
    check(os.path.exists(d1.socket_path),
            "the second daemon removed the first one's socket")
    d1.ping()
    r = check_ok(d1.request({"op": "status", "id": sid}),
            "status on the first daemon")
    check_eq(r.get("state"), "queued", "state")


@suite.case("a stale socket left by kill -9 is removed and the daemon starts")
def _(t):
    d = t.daemon()
    sid = send_ok(d)["id"]
    d.kill()
    check(os.path.exists(d.socket_path), "kill -9 left no socket file; "
            "this case needs one")
    st = os.lstat(d.socket_path)
    check(stat.S_ISSOCK(st.st_mode), "the stale file is not a socket")
    d.start()
    d.ping()
    r = check_ok(d.request({"op": "status", "id": sid}), "status")
    check_eq(r.get("state"), "queued", "state after restart")


@suite.case("the socket has mode 0660 by default and the configured one")
def _(t):
    d = t.daemon()
    mode = stat.S_IMODE(os.stat(d.socket_path).st_mode)
    check_eq(oct(mode), oct(0o660), "default mode")
    d.stop()
    d2 = t.daemon(config={"socket": {"mode": "0600"}})
    mode = stat.S_IMODE(os.stat(d2.socket_path).st_mode)
    check_eq(oct(mode), oct(0o600), "configured mode 0600")


@suite.case("smsgwd -n on a bad file prints FILE:LINE problems, exits 1")
def _(t):
    dd = t.tempdir()
    bad = write_file(os.path.join(dd, "bad.conf"),
            "socket = {\n"
            "\tpath = \"%s/x.sock\";\n"
            "\tmax_line = 10;\n"
            "};\n"
            "bogus = { a = 1; };\n"
            "log = {\n"
            "\tlevel = \"loud\";\n"
            "};\n" % dd)
    p = run_smsgwd("-n", "-c", bad)
    check_eq(p.returncode, 1, "exit status (out %r err %r)" %
            (p.out, p.err))
    text = p.out + p.err
    for line in (3, 5, 7):
        check("%s:%d:" % (bad, line) in text,
                "no '%s:%d:' in %r" % (bad, line, text))
    check("configuration OK" not in text, "a bad file was called OK")
    check(not os.path.exists(os.path.join(dd, "x.sock")),
            "-n created the socket")

    syntax = write_file(os.path.join(dd, "syntax.conf"),
            "socket = {\n\tpath = ;\n};\n")
    p = run_smsgwd("-n", "-c", syntax)
    check_eq(p.returncode, 1, "syntax error exit status")
    check("%s:2" % syntax in p.out + p.err, "syntax error output %r" %
            (p.out + p.err))

    p = run_smsgwd("-n", "-c", os.path.join(dd, "missing.conf"))
    check_eq(p.returncode, 1, "missing file exit status")
    check("missing.conf" in p.out + p.err, "missing file output %r" %
            (p.out + p.err))


@suite.case("smsgwd -n on a good file prints 'configuration OK', exits 0")
def _(t):
    d = Daemon(workdir=t.tempdir())
    conf = d.write_config()
    p = run_smsgwd("-n", "-c", conf)
    check_eq((p.returncode, p.out.strip()), (0, "configuration OK"),
            "-n on the test config (err %r)" % p.err)
    check(not os.path.exists(d.socket_path), "-n created the socket")
    shipped = os.path.join(SRCDIR, "etc", "smsgwd.conf")
    if os.path.exists(shipped):
        p = run_smsgwd("-n", "-c", shipped)
        check_eq((p.returncode, p.out.strip()), (0, "configuration OK"),
                "-n on etc/smsgwd.conf (err %r)" % p.err)


@suite.case("SIGTERM exits 0 and stops accepting; queued messages stay")
def _(t):
    d = t.daemon()
    sid = send_ok(d)["id"]
    rc = d.stop()
    check_eq(rc, 0, "exit status after SIGTERM")
    try:
        Client(d.socket_path, timeout=1).close()
        raise Failure("a connection was accepted after the daemon exited")
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    d.start()
    r = check_ok(d.request({"op": "status", "id": sid}), "status")
    check_eq(r.get("state"), "queued", "state after a clean restart")


@suite.case("a send after SIGTERM gets shutting_down or a closed connection")
def _(t):
    d = t.daemon()
    c = t.client(d)
    check_ok(c.request({"op": "ping"}), "ping before SIGTERM")
    offset = d.log_size()
    d.signal(signal.SIGTERM)
    d.wait_log(r"smsgwd (stopping|stopped)", offset=offset)
    outcome = None
    try:
        c.send(send(ref="after-term", req="late"))
        r = c.recv(5)
        check_error(r, "shutting_down", "send after SIGTERM")
        check_eq(r.get("req"), "late", "req of the refusal")
        outcome = "shutting_down"
    except (ConnectionClosed, BrokenPipeError, ConnectionResetError):
        outcome = "closed"
    print("# a send after SIGTERM: %s" % outcome, flush=True)
    rc = d.wait()
    check_eq(rc, 0, "exit status after SIGTERM")
    d.start()
    r = d.request({"op": "status", "ref": "after-term"})
    if outcome == "shutting_down":
        check_error(r, "not_found", "a refused message was stored")


@suite.case("the log has 'msg accepted id=...' with the number masked")
def _(t):
    d = t.daemon()
    numbers = [("+27821234567", "+2782*****67"),
            ("0027821234568", "+2782*****68"),
            ("27821234569", "+2782*****69")]
    for i, (number, masked) in enumerate(numbers):
        sid = send_ok(d, to=number, ref="log-%d" % i)["id"]
        d.wait_log(r"msg accepted id=%s .*to=%s" % (sid,
                re.escape(masked)))
    check_ok(d.request({"op": "status", "ref": "log-0"}), "status")
    d.request(send(to="+27821234560", text=""))  # a refused one
    d.request(send(to="+2782123456x"))
    d.stop()
    text = d.log_text() + d.stderr_text()
    # The primer went to the upstream: its number must be masked too.
    for number in ("27821234567", "27821234568", "27821234569",
            "27821234560", "2782123456x", PRIMER_TO.lstrip("+")):
        check(number not in text, "the full number %s is in the log:"
                " %r" % (number, [l for l in text.splitlines()
                if number in l][:3]))
    password = d.config["upstream"]["password"]
    check(password not in text, "the upstream password is in the log")


@suite.case("SIGHUP reopens the log file")
def _(t):
    d = t.daemon()
    first = send_ok(d)["id"]
    d.wait_log("msg accepted id=%s" % first)
    rotated = d.log_path + ".1"
    os.rename(d.log_path, rotated)
    d.signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(d.log_path), 5,
            "a new log file at %s" % d.log_path)
    second = send_ok(d)["id"]
    d.wait_log("msg accepted id=%s" % second)
    old = d.log_text(rotated)
    check("msg accepted id=%s" % first in old,
            "the rotated file lost its lines")
    check("id=%s" % second not in old,
            "a line written after SIGHUP went to the rotated file")
    d.ping()


if __name__ == "__main__":
    suite.main()
