# test_badinput.py: the bad-input matrix of the submission protocol. Each
# bad request gets its documented error, and the daemon stays up and keeps
# serving the same connection where the line boundary is known; plus the
# limits: line length, queue size, connections, pipelining, backpressure.

import json
import os
import socket
import sys
import time

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Suite, Client, ConnectionClosed, Failure, check,
        check_eq, check_ok, check_error, is_id, sanitized, wait_until,
        read_answers, write_unread)

suite = Suite("badinput")

NUMBER = "+27821234567"


def send(**fields):
    req = {"op": "send", "to": NUMBER, "text": "hello"}
    req.update(fields)
    return req


def raw(obj):
    """A request line from a dict, or bytes as they are (plus newline)."""
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj) + b"\n"
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def expect_each(d, cases, what):
    """
    Sends each (line, error) on one connection, each followed by a ping
    there; checks the error (None: ok) and that the connection and the
    daemon stay usable.
    """
    answers = []
    with Client(d.socket_path) as c:
        for line, code in cases:
            c.send(raw(line))
            try:
                r = c.recv()
            except ConnectionClosed:
                raise Failure("%s %r: the connection was closed" %
                        (what, line))
            answers.append(r)
            label = "%s %r" % (what, line if len(repr(line)) < 120
                    else repr(line)[:120] + "...")
            if code is None:
                check_ok(r, label)
            elif isinstance(code, tuple):
                check(r.get("ok") is False and
                        r.get("error") in code, "%s: expected one of "
                        "%s, got %r" % (label, code, r))
            else:
                check_error(r, code, label)
            try:
                check_ok(c.request({"op": "ping"}),
                        "ping after " + label)
            except ConnectionClosed:
                raise Failure("connection closed after %s" % label)
    d.ping()
    return answers


@suite.case("lines that are not JSON get bad_request")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (b"hello", "bad_request"),
            (b"{", "bad_request"),
            (b"}", "bad_request"),
            (b'{"op":"ping"', "bad_request"),
            (b'{"op":"ping"}}', "bad_request"),
            (b'{"op":"ping"} {"op":"ping"}', "bad_request"),
            (b'{"op":"ping"}x', "bad_request"),
            (b"{op:ping}", "bad_request"),
            (b"{'op':'ping'}", "bad_request"),
            (b'{"op":"ping",}', "bad_request"),
            (b'{"op":"ping" "req":1}', "bad_request"),
            (b'{"op":"send","to":"+27821234567","text":"a\tb"}',
                "bad_request"),  # a raw control character in a string
            (b'{"op":"ping","req":01}', "bad_request"),
            (b'{"op":"ping","req":NaN}', "bad_request"),
            (b"", "bad_request"),
            (b"   ", "bad_request"),
        ], "not JSON")


@suite.case("JSON that is not an object gets bad_request")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (b"[]", "bad_request"),
            (b"[1,2]", "bad_request"),
            (b'[{"op":"ping"}]', "bad_request"),
            (b'"ping"', "bad_request"),
            (b"42", "bad_request"),
            (b"-1.5e3", "bad_request"),
            (b"null", "bad_request"),
            (b"true", "bad_request"),
            (b"false", "bad_request"),
        ], "not an object")


@suite.case("an unknown, missing or misspelt op gets bad_request")
def _(t):
    d = t.daemon()
    expect_each(d, [
            ({"op": "frobnicate"}, "bad_request"),
            ({}, "bad_request"),
            ({"req": 1}, "bad_request"),
            ({"to": NUMBER, "text": "no op"}, "bad_request"),
            ({"op": ""}, "bad_request"),
            ({"op": "PING"}, "bad_request"),
            ({"op": "ping "}, "bad_request"),
            ({"Op": "ping"}, "bad_request"),
            ({"op": "send2"}, "bad_request"),
        ], "op")
    r = d.request({"op": "frobnicate", "req": "q1"})
    check_eq(r.get("req"), "q1", "req echoed on an unknown op")


@suite.case("wrong types for every field get bad_request")
def _(t):
    d = t.daemon()
    bad = "bad_request"
    others = [None, True, [], {}, [1], {"a": 1}]
    cases = []
    for v in [1] + others:
        cases.append(({"op": v}, bad))
    for v in [27821234567] + others:
        cases.append((send(to=v), bad))
    for v in [1, True, False, [], ["hello"], {}, {"a": "b"}]:
        cases.append((send(text=v), bad))
    cases.append((send(text=None), (bad, "empty_text")))
    for v in [1234] + others:
        cases.append((send(**{"from": v}), bad))
    for v in [1] + others:
        cases.append((send(ref=v), bad))
    for v in [1, "urgent", "HIGH", "", "low"] + others:
        cases.append((send(priority=v), bad))
    for v in ["3600", 1.5, 0.5, 0, -1, -3600] + others:
        cases.append((send(valid_for=v), bad))
    for v in [None, True, False, [], {}, [1], {"a": 1}]:
        cases.append(({"op": "ping", "req": v}, bad))
    for op in ("status", "cancel"):
        for v in [1, 0x7f] + others:
            cases.append(({"op": op, "id": v}, bad))
        for v in [1] + others:
            cases.append(({"op": op, "ref": v}, bad))
        cases.append(({"op": op}, bad))
    expect_each(d, cases, "wrong type")
    check_eq(d.counts()["queued"], 0, "queued after refused sends")


@suite.case("ref must be 1 to 128 bytes")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (send(ref=""), "bad_request"),
            (send(ref="r" * 129), "bad_request"),
            (send(ref="r" * 128), None),
            (send(ref="\u00e9" * 65), "bad_request"),  # 130 bytes
            (send(ref="\u00e9" * 64), None),  # 128 bytes
            ({"op": "status", "ref": ""}, "bad_request"),
        ], "ref")


@suite.case("raw NUL bytes inside a line get bad_request")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (b'{"op":"send","to":"+27821234567","text":"a\x00b"}',
                "bad_request"),
            (b'{"op":"pi\x00ng"}', "bad_request"),
            (b'\x00{"op":"ping"}', "bad_request"),
            (b'{"op":"ping"}\x00', "bad_request"),
            (b'{"op":"ping",\x00"req":1}', "bad_request"),
            (b"\x00", "bad_request"),
        ], "NUL")
    check_eq(d.counts()["queued"], 0, "queued after NUL lines")


@suite.case("invalid UTF-8 gets bad_request")
def _(t):
    d = t.daemon()
    pre = b'{"op":"send","to":"+27821234567","text":"'
    expect_each(d, [
            (pre + b'\xff"}', "bad_request"),
            (pre + b'abc\x80"}', "bad_request"),
            (pre + b'\xc0\xaf"}', "bad_request"),  # overlong '/'
            (pre + b'\xe0\x80\xaf"}', "bad_request"),  # overlong
            (pre + b'\xed\xa0\x80"}', "bad_request"),  # a surrogate
            (pre + b'\xe2\x82"}', "bad_request"),  # truncated
            (pre + b'\xf4\x90\x80\x80"}', "bad_request"),  # > U+10FFFF
            (pre + b'\xf8\x88\x80\x80\x80"}', "bad_request"),
            (b'{"\xfe":1,"op":"ping"}', "bad_request"),  # in a key
            (b'{"op":"ping","x":"\xc3"}', "bad_request"),  # unknown field
            (pre + "\u20ac \u00e9 \U0001f600".encode() + b'"}', None),
        ], "invalid UTF-8")
    check_eq(d.counts()["queued"], 1, "queued: only the valid one")


@suite.case("\\u0000 in a string field gets bad_request")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (b'{"op":"send","to":"+27821234567","text":"a\\u0000b"}',
                "bad_request"),
            (b'{"op":"send","to":"+27821234567","text":"\\u0000"}',
                "bad_request"),
            (b'{"op":"send","to":"+2782\\u00001234567","text":"x"}',
                ("bad_request", "invalid_number")),
            (b'{"op":"send","to":"+27821234567","text":"x",'
                b'"from":"AC\\u0000ME"}', ("bad_request", "invalid_sender")),
            (b'{"op":"send","to":"+27821234567","text":"x",'
                b'"ref":"r\\u0000"}', "bad_request"),
            (b'{"op":"pi\\u0000ng"}', "bad_request"),
            (b'{"op":"status","ref":"a\\u0000b"}', "bad_request"),
        ], "NUL escape")
    check_eq(d.counts()["queued"], 0, "queued after NUL escapes")


@suite.case("a lone surrogate escape gets bad_request; a pair is fine")
def _(t):
    d = t.daemon()
    pre = b'{"op":"send","to":"+27821234567","text":"'
    answers = expect_each(d, [
            (pre + b'\\ud800"}', "bad_request"),
            (pre + b'\\udc00"}', "bad_request"),
            (pre + b'\\udfff x"}', "bad_request"),
            (pre + b'a\\ud83d"}', "bad_request"),
            (pre + b'\\ud83dx"}', "bad_request"),
            (pre + b'\\ud83d\\u0041"}', "bad_request"),
            (pre + b'\\ud83d\\ud83d"}', "bad_request"),
            (pre + b'\\ude00\\ud83d"}', "bad_request"),
            (pre + b'x","ref":"\\udbff"}', "bad_request"),
            (pre + b'\\\\ud800"}', None),  # an escaped backslash: text
            (pre + b'\\ud83d\\ude00"}', None),
            (pre + b'\\uD83D\\uDE00"}', None),
        ], "surrogate")
    check_eq([(a.get("encoding"), a.get("segments")) for a in answers[-3:]],
            [("gsm7", 1), ("ucs2", 1), ("ucs2", 1)],
            "encoding and segments of the accepted texts")


@suite.case("duplicate keys get bad_request")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (b'{"op":"ping","op":"ping"}', "bad_request"),
            (b'{"op":"send","op":"ping"}', "bad_request"),
            (b'{"op":"send","to":"+27821234567","to":"+27829999999",'
                b'"text":"x"}', "bad_request"),
            (b'{"op":"send","to":"+27821234567","text":"x","text":"y"}',
                "bad_request"),
            (b'{"op":"send","to":"+27821234567","text":"x","ref":"a",'
                b'"ref":"b"}', "bad_request"),
            (b'{"op":"ping","req":1,"req":2}', "bad_request"),
        ], "duplicate key")
    check_eq(d.counts()["queued"], 0, "queued after duplicate keys")


@suite.case("deeply nested JSON gets bad_request; shallow unknown is fine")
def _(t):
    d = t.daemon()
    deep = b'{"op":"ping","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    deep_obj = b'{"op":"ping","x":' + b'{"a":' * 3000 + b"1" + \
            b"}" * 3000 + b"}"
    expect_each(d, [
            (deep, "bad_request"),
            (deep_obj, "bad_request"),
            (b"[" * 20000, "bad_request"),
            (b'{"op":"ping","x":{"a":[1,{"b":[2,3]}]}}', None),
        ], "nesting")


@suite.case("valid_for: beyond 64 bits, beyond the maximum, the maximum")
def _(t):
    d = t.daemon(config={"retry": {"validity": 3600, "max_validity": 7200}})
    pre = b'{"op":"send","to":"+27821234567","text":"x","valid_for":'
    expect_each(d, [
            (pre + b"18446744073709551617}", "bad_request"),
            (pre + b"18446744073709551616}", "bad_request"),
            (pre + b"9223372036854775808}", "bad_request"),
            (pre + b"9223372036854775807}", "bad_request"),
            (pre + b"99999999999999999999999999999999}", "bad_request"),
            (pre + b"1e400}", "bad_request"),
            (pre + b"-18446744073709551617}", "bad_request"),
            (pre + b"7201}", "bad_request"),
            (pre + b"7200}", None),
            (pre + b"1}", None),
        ], "valid_for")


@suite.case("empty text gets empty_text")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (send(text=""), "empty_text"),
            ({"op": "send", "to": NUMBER}, "empty_text"),
        ], "empty text")


@suite.case("text over the maximum parts gets text_too_long")
def _(t):
    d = t.daemon()
    expect_each(d, [
            (send(text="a" * 1224), None),  # 8 x 153 septets
            (send(text="a" * 1225), "text_too_long"),
            (send(text="\u20ac" * 608), None),  # 8 x 76 escape pairs
            (send(text="\u20ac" * 609), "text_too_long"),
            (send(text="\u4e2d" * 536), None),  # 8 x 67 units
            (send(text="\u4e2d" * 537), "text_too_long"),
            (send(text="\U0001f600" * 264), None),  # 8 x 33 pairs
            (send(text="\U0001f600" * 265), "text_too_long"),
        ], "length")
    d2 = t.daemon(config={"message": {"max_parts": 2}})
    expect_each(d2, [
            (send(text="a" * 306), None),
            (send(text="a" * 307), "text_too_long"),
            (send(text="\u4e2d" * 134), None),
            (send(text="\u4e2d" * 135), "text_too_long"),
        ], "max_parts 2")


@suite.case("numbers that are not international get invalid_number")
def _(t):
    d = t.daemon()
    bad = "invalid_number"
    expect_each(d, [
            (send(to=""), bad),
            (send(to="+"), bad),
            (send(to="00"), bad),
            (send(to="1234567"), bad),  # 7 digits
            (send(to="+1234567"), bad),
            (send(to="1234567890123456"), bad),  # 16 digits
            (send(to="+0821234567"), bad),  # leading 0
            (send(to="000821234567"), bad),
            (send(to="0821234567"), bad),
            (send(to="+27 82 123 4567"), bad),
            (send(to=" +27821234567"), bad),
            (send(to="+27821234567 "), bad),
            (send(to="+27-82-123-4567"), bad),
            (send(to="++27821234567"), bad),
            (send(to="+2782123456a"), bad),
            (send(to="+\u0662\u0667\u0668\u0662\u0661\u0662\u0663\u0664"
                "\u0665"), bad),  # Arabic digits
            (send(to="12345678"), None),
            (send(to="123456789012345"), None),
            (send(to="+123456789012345"), None),
            (send(to="00123456789012345"), None),
            (send(to="27821234567"), None),
        ], "to")


@suite.case("senders that are not allowed get invalid_sender")
def _(t):
    d = t.daemon()
    bad = "invalid_sender"
    cases = []
    for v in ["", "ACME-CORP", "ACME CO", "ABCDEFGHIJKL", "+",
            "12345678901234567", "+12345678901234567", "\u00c4CME", "AC_ME",
            "ACME!", "+ACME"]:
        cases.append((send(**{"from": v}), bad))
    for v in ["A", "ACME", "ABCDEFGHIJK", "abc123", "1",
            "1234567890123456", "+1234567890123456"]:
        cases.append((send(**{"from": v}), None))
    expect_each(d, cases, "from")


@suite.case("queue_full once storage.max_queued messages are queued")
def _(t):
    d = t.daemon(config={"storage": {"max_queued": 5}})
    ids = []
    with t.client(d) as c:
        for i in range(5):
            r = check_ok(c.request(send(text="q %d" % i)), "send %d" % i)
            ids.append(r["id"])
        for i in range(3):
            check_error(c.request(send(text="over")), "queue_full",
                    "send beyond max_queued")
        check_ok(c.request({"op": "ping"}), "ping")
        check_ok(c.request({"op": "cancel", "id": ids[0]}), "cancel")
        check_ok(c.request(send(text="room again")),
                "send after a cancel made room")
        check_error(c.request(send(text="over")), "queue_full",
                "send beyond max_queued again")
    check_eq(d.counts()["queued"], 5, "queued")


@suite.case("an over-long line gets bad_request, then the connection closes")
def _(t):
    d = t.daemon(config={"socket": {"max_line": 1024}})
    with Client(d.socket_path) as c:
        long_line = b'{"op":"ping","pad":"' + b"x" * 2000 + b'"}\n'
        c.send(b'{"op":"ping","req":1}\n' + long_line +
                b'{"op":"ping","req":3}\n')
        check_eq(c.recv(), {"ok": True, "req": 1}, "the ping before")
        check_error(c.recv(), "bad_request", "the over-long line")
        rest = c.wait_closed(5)
        check_eq(rest, [], "lines after the over-long one")
    with Client(d.socket_path) as c:
        # No newline at all: the daemon must not wait for one.
        c.send(b'{"op":"ping","pad":"' + b"y" * 5000)
        check_error(c.recv(), "bad_request", "an unterminated long line")
        check_eq(c.wait_closed(5), [], "lines after it")
    with Client(d.socket_path) as c:
        base = b'{"op":"ping","pad":""}'
        exact = base[:-2] + b"z" * (1024 - len(base)) + b'"}'
        check_eq(len(exact), 1024, "length of the boundary line")
        check_ok(c.request(exact + b"\n"), "a line of exactly max_line")
        check_ok(c.request({"op": "ping"}), "the connection after it")
        over = base[:-2] + b"z" * (1025 - len(base)) + b'"}'
        c.send(over + b"\n")
        check_error(c.recv(), "bad_request", "a line of max_line + 1")
        check_eq(c.wait_closed(5), [], "lines after it")
    d.ping()


@suite.case("200 pipelined good and bad requests are answered in order")
def _(t):
    d = t.daemon()
    lines = []
    expect = []
    for i in range(200):
        k = i % 8
        if k == 0:
            lines.append(raw({"op": "ping", "req": i}))
            expect.append((True, None, i))
        elif k == 1:
            lines.append(b"not json at all\n")
            expect.append((False, "bad_request", None))
        elif k == 2:
            lines.append(raw(send(req=i, text="p %d" % i)))
            expect.append((True, None, i))
        elif k == 3:
            lines.append(raw(send(req=i, to="12")))
            expect.append((False, "invalid_number", i))
        elif k == 4:
            lines.append(raw({"op": "nope", "req": i}))
            expect.append((False, "bad_request", i))
        elif k == 5:
            lines.append(b'{"op":"send","req":%d,"to":"+27821234567",'
                    b'"text":"\xff"}\n' % i)
            expect.append((False, "bad_request", None))
        elif k == 6:
            lines.append(raw(send(req=i, text="")))
            expect.append((False, "empty_text", i))
        else:
            lines.append(raw({"op": "status", "id": "00000000deadbeef",
                    "req": i}))
            expect.append((False, "not_found", i))
    with t.client(d) as c:
        answers = c.pipeline(lines, timeout=20)
    for i, (a, (ok, code, req)) in enumerate(zip(answers, expect)):
        check_eq(a.get("ok"), ok, "ok of answer %d (%r)" % (i, a))
        if code is not None:
            check_eq(a.get("error"), code, "error of answer %d" % i)
        if req is not None:
            check_eq(a.get("req"), req, "req of answer %d" % i)
    d.ping()


@suite.case("clients that leave before their answers do not hurt the daemon")
def _(t):
    d = t.daemon()
    refs = []
    for rnd in range(5):
        c = Client(d.socket_path)
        batch = []
        for i in range(100):
            ref = "gone-%d-%d" % (rnd, i)
            refs.append(ref)
            batch.append(send(ref=ref, text="bye %d" % i))
        c.send_many(batch)
        c.close()
    d.ping()
    d.wait_idle(10)
    queued = d.counts()["queued"]
    with t.client(d) as c:
        answers = c.pipeline([{"op": "status", "ref": r} for r in refs])
    found = 0
    for ref, a in zip(refs, answers):
        if a.get("ok"):
            check_eq(a.get("state"), "queued", "state of %s" % ref)
            found += 1
        else:
            check_error(a, "not_found", "status of %s" % ref)
    check_eq(found, queued, "messages found by ref vs queued count")
    check(d.alive(), "the daemon died")
    d.ping()


@suite.case("100,000 pipelined pings unread: memory bounded, answers in order",
        timeout=30)
def _(t):
    d = t.daemon()
    n = 100000
    pad = b"p" * 64
    data = b"".join(b'{"op":"ping","req":"%06d-%s"}\n' % (i, pad)
            for i in range(n))
    rss0 = d.rss_kb()
    deadline = time.monotonic() + 30
    # Write without reading until the daemon stops taking more.
    s, sent = write_unread(t, d.socket_path, data, 0.5, 15)
    time.sleep(0.2)
    rss1 = d.rss_kb()
    check(d.alive(), "the daemon died while not being read")
    check(sent < len(data), "the daemon read all %d bytes of requests "
            "from a client that read no answer (no backpressure)" % len(data))
    grown = rss1 - rss0
    print("# unread pings: %d of %d bytes taken, RSS %d -> %d kB" %
            (sent, len(data), rss0, rss1), flush=True)
    # The answers alone would take over 9 MB if they piled up; a
    # sanitizer's quarantine keeps freed memory, so it gets more room.
    bound = (256 if sanitized() else 8) * 1024
    check(grown < bound, "RSS grew by %d kB (from %d kB) while the "
            "client did not read" % (grown, rss0))

    # Now read, and write the rest, until every answer is in.
    left = deadline - time.monotonic()
    for got, line in enumerate(read_answers(s, data, sent, n, left)):
        want = b'{"ok":true,"req":"%06d-%s"}' % (got, pad)
        if line != want:
            raise Failure("answer %d is %r, expected %r" %
                    (got, line[:80], want[:80]))
    rss2 = d.rss_kb()
    check(rss2 - rss0 < bound, "RSS grew by %d kB in all" % (rss2 - rss0))
    d.ping()


@suite.case("max_connections: the 6th gets too_many_connections, 5 work")
def _(t):
    d = t.daemon(config={"socket": {"max_connections": 5}})
    clients = [t.client(d) for _ in range(5)]
    for i, c in enumerate(clients):
        check_ok(c.request({"op": "ping", "req": i}), "client %d" % i)
    extra = t.client(d)
    line = extra.recv_line(5)
    check(line is not None, "the 6th connection got no line")
    r = json.loads(line)
    check_error(r, "too_many_connections", "the 6th connection")
    check_eq(extra.wait_closed(5), [], "lines after the refusal")
    for i, c in enumerate(clients):
        check_ok(c.request({"op": "ping", "req": i}),
                "client %d after the refusal" % i)
    clients[0].close()

    def served():
        try:
            with Client(d.socket_path, timeout=2) as c:
                return c.request({"op": "ping"}).get("ok") is True
        except (OSError, ConnectionClosed, Failure):
            return False
    wait_until(served, 5, "a new connection once one of 5 closed",
            interval=0.05)


@suite.case("a half-closed client still gets all its answers")
def _(t):
    d = t.daemon()
    reqs = []
    for i in range(60):
        if i % 3 == 0:
            reqs.append(send(req=i, text="half %d" % i))
        elif i % 3 == 1:
            reqs.append({"op": "ping", "req": i})
        else:
            reqs.append({"op": "stats", "req": i})
    with Client(d.socket_path) as c:
        c.send_many(reqs)
        c.shutdown_write()
        lines = c.wait_closed(10)
    check_eq(len(lines), len(reqs), "answers before the close")
    for i, line in enumerate(lines):
        a = json.loads(line)
        check_ok(a, "answer %d" % i)
        check_eq(a.get("req"), i, "req of answer %d" % i)
        if i % 3 == 0:
            check(is_id(a.get("id")), "answer %d has no id" % i)
    check_eq(d.counts()["queued"], 20, "queued")


if __name__ == "__main__":
    suite.main()
