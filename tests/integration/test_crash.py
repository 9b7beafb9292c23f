# test_crash.py: crash and restart under load. Clients keep sending while
# the daemon is killed (SIGKILL) at random moments and restarted on the
# same store; then what the clients were told is compared with what the
# fake upstream received: no acknowledged message is missing, and every
# duplicate was in flight at a kill. And a store on a filesystem that fills
# up: storage_error, nothing acknowledged lost, recovery when space returns.
#
# bench/soak runs crash_run() below at a larger scale.

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

# No bytecode next to the sources (the source tree may be read-only).
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Suite, Client, ConnectionClosed, Failure, check,
        check_eq, check_ok, is_id, wait_until)

suite = Suite("crash", budget=90.0)

NUMBER = "+27821234567"
USER = "demo"
PASSWORD = "demo"
# Messages that may have reached the upstream at a kill without their
# outcome being stored, beyond the upstream's limit: answers read but not
# yet committed in the loop pass the kill cut short.
SLACK_PER_KILL = 4


# ------------------------------------------------------------ helpers

def config(url, **groups):
    cfg = {
            "upstream": {"url": url, "username": USER,
                "password": PASSWORD, "timeout": 5,
                "connect_timeout": 2},
            "retry": {"base_ms": 50, "cap_ms": 200, "max_attempts": 10},
            "log": {"stats_interval": 0, "level": "info"},
        }
    for group, keys in groups.items():
        cfg.setdefault(group, {}).update(keys)
    return cfg


def fu_get(fu, path, timeout=10):
    with urllib.request.urlopen(fu.url("/_control/" + path),
            timeout=timeout) as r:
        return r.read().decode("utf-8")


def fu_stats(fu):
    return json.loads(fu_get(fu, "stats"))


def fu_records(fu):
    """fakeup's record of every message_send request, in arrival order."""
    return [json.loads(l) for l in fu_get(fu, "requests",
            timeout=30).splitlines() if l.strip()]


def fu_texts(fu):
    """How many times fakeup accepted each text."""
    counts = {}
    for line in fu_get(fu, "messages", timeout=30).splitlines():
        if line.strip():
            text = json.loads(line)["text"]
            counts[text] = counts.get(text, 0) + 1
    return counts


def wait_up(d, timeout=10.0):
    """
    Waits until a restarted daemon answers a ping. (Daemon.wait_ready also
    waits for every connection to close, which never happens while the
    load runs.)
    """
    deadline = time.monotonic() + timeout
    while True:
        check(d.alive(), "%s exited with %s while starting; log: %s" %
                (d.name, d.proc.returncode, d.log_tail(5)))
        try:
            with Client(d.socket_path, timeout=2) as c:
                if c.request({"op": "ping"}).get("ok") is True:
                    return
        except (OSError, ConnectionClosed, Failure):
            pass
        check(time.monotonic() < deadline, "%s did not answer a ping "
                "within %.0fs of its start" % (d.name, timeout))
        time.sleep(0.02)


def statuses(d, key, values, timeout=60):
    """Status by id or ref of each value, on one connection."""
    with d.client() as c:
        answers = c.pipeline([{"op": "status", key: v} for v in values],
                timeout=timeout)
    return dict(zip(values, answers))


class Sender(threading.Thread):
    """
    One client: a connection sending batches of `send` requests at a
    steady rate, each with a unique text (and that text as its ref), and
    connecting again whenever the daemon goes away. Every text ends in
    one of: acked (ok with an id), refused (an error answer: not
    accepted), unknown (sent, then the connection died before its
    answer).
    """

    def __init__(self, path, tag, rate, batch=4, text_pad=""):
        super().__init__(daemon=True)
        self.path = path
        self.tag = tag
        self.interval = batch / float(rate)
        self.batch = batch
        self.pad = text_pad
        self.halt = threading.Event()
        self.acked = {}
        self.refused = {}
        self.unknown = []
        self.timeouts = 0
        self.connects = 0
        self.seq = 0
        self.error = None

    def run(self):
        try:
            self._loop()
        except Exception as e:  # reported by the test, not lost
            self.error = "%s: %s" % (type(e).__name__, e)

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.path)
        except OSError:
            s.close()
            return None
        self.connects += 1
        return s

    def _answers(self, sock, buf, n):
        """Up to n answer lines; fewer when the connection ends."""
        lines = []
        while len(lines) < n:
            i = buf.find(b"\n")
            if i >= 0:
                lines.append(bytes(buf[:i]))
                del buf[:i + 1]
                continue
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                self.timeouts += 1
                break
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        return lines

    def _loop(self):
        sock = None
        buf = bytearray()
        next_at = time.monotonic()
        while not self.halt.is_set():
            if sock is None:
                sock = self._connect()
                buf = bytearray()
                if sock is None:
                    self.halt.wait(0.02)
                    continue

            texts = []
            for _ in range(self.batch):
                texts.append("%s %d%s" % (self.tag, self.seq, self.pad))
                self.seq += 1
            data = b"".join(json.dumps({"op": "send", "to": NUMBER,
                    "text": x, "ref": x[:128]},
                    separators=(",", ":")).encode() + b"\n"
                    for x in texts)
            try:
                sock.sendall(data)
                lines = self._answers(sock, buf, len(texts))
            except OSError:
                lines = []

            for text, line in zip(texts, lines):
                a = json.loads(line.decode("utf-8"))
                if a.get("ok") is True and is_id(a.get("id")):
                    self.acked[text] = a["id"]
                else:
                    self.refused[text] = a.get("error")
            if len(lines) < len(texts):
                self.unknown.extend(texts[len(lines):])
                sock.close()
                sock = None
                continue

            now = time.monotonic()
            next_at = max(next_at + self.interval, now - 1.0)
            if next_at > now:
                self.halt.wait(next_at - now)
        if sock is not None:
            sock.close()


def stop_senders(senders, timeout=15.0):
    for s in senders:
        s.halt.set()
    deadline = time.monotonic() + timeout
    for s in senders:
        s.join(max(0.1, deadline - time.monotonic()))
    stuck = [s.tag for s in senders if s.is_alive()]
    if stuck:
        raise Failure("clients did not stop: %s" % stuck)
    errors = [(s.tag, s.error) for s in senders if s.error]
    if errors:
        raise Failure("a client failed: %r" % errors)


def id_lines(text, starts, mid, n=12):
    """The log lines naming message mid, each with its run (0: first)."""
    out = []
    pos = 0
    for line in text.splitlines(True):
        if mid in line:
            run = sum(1 for s in starts[1:] if s <= pos)
            out.append("[run %d] %s" % (run, line.strip()))
        pos += len(line.encode("utf-8"))
    return " | ".join(out[-n:])


def wait_drained(d, timeout):
    last = {}

    def drained():
        last.clear()
        last.update(d.counts())
        return last.get("queued", 0) == 0 and last.get("sending", 0) == 0
    try:
        wait_until(drained, timeout, "the queue to drain", interval=0.1)
    except Failure as e:
        raise Failure("%s; counts %r; log: %s" % (e, last,
                d.log_tail(4).replace("\n", " | ")))
    return last


# ------------------------------------------------------ crash and restart

def crash_run(t, kills=3, clients=3, rate=150, limit=8, latency_ms=10,
        between=(0.8, 1.8), tail=1.0, seed=None, out=print, drain_s=30,
        max_concurrency=None):
    """
    Runs `clients` senders (each `rate` messages a second) against a
    daemon that fakeup (--limit LIMIT --latency-ms LATENCY_MS) serves,
    kills the daemon `kills` times at random moments (a wait drawn from
    `between` seconds after each start), restarts it on the same store
    each time, lets it drain and compares. Returns a summary dict; raises
    Failure on a lost message or a duplicate beyond its bound.
    """
    if seed is None:
        seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    run = "%08x" % rnd.getrandbits(32)
    out("# seed %d (run %s): %d kills, %d clients at %d msg/s, upstream "
            "limit %d, latency %d ms" % (seed, run, kills, clients, rate,
            limit, latency_ms))

    fu = t.fakeup("--limit", str(limit), "--latency-ms", str(latency_ms))
    groups = {}
    if max_concurrency is not None:
        groups["upstream"] = {"max_concurrency": max_concurrency}
    d = t.daemon(config=config(fu.url(), **groups))
    starts = [d.start_offset]
    senders = [Sender(d.socket_path, "crash %s c%d" % (run, i), rate)
            for i in range(clients)]
    t.defer(lambda: [s.halt.set() for s in senders])
    for s in senders:
        s.start()

    kill_log = []
    for k in range(kills):
        time.sleep(rnd.uniform(*between))
        before = fu_stats(fu)
        os.kill(d.pid, signal.SIGKILL)
        d.wait(5)
        after = fu_stats(fu)
        kill_log.append({"accepted": after["accepted"],
                "inflight": max(before["inflight"], after["inflight"]),
                "acked": sum(len(s.acked) for s in senders),
                "before": before["message_send"],
                "after": after["message_send"]})
        time.sleep(rnd.uniform(0.0, 0.2))
        d.start(wait=False)
        starts.append(d.start_offset)
        wait_up(d)
    time.sleep(tail)
    stop_senders(senders)
    wait_drained(d, drain_s)
    d.ping()

    acked, refused, unknown = {}, {}, set()
    for s in senders:
        acked.update(s.acked)
        refused.update(s.refused)
        unknown.update(s.unknown)
    check(len(acked) > 0, "no message was acknowledged")
    check(not refused, "%d sends were refused, e.g. %r" % (len(refused),
            list(refused.items())[:3]))
    got = fu_texts(fu)

    lost = sorted(x for x in acked if got.get(x, 0) == 0)
    check(not lost, "%d acknowledged messages never reached the upstream, "
            "e.g. %r (ids %r)" % (len(lost), lost[:3],
            [acked[x] for x in lost[:3]]))
    strays = sorted(x for x in got if x not in acked and x not in unknown)
    check(not strays, "the upstream got %d texts no client sent, e.g. %r"
            % (len(strays), strays[:3]))

    # A duplicate must have been in flight at a kill: its first copy
    # reached fakeup before the kill (by fakeup's count of message_send
    # requests, taken around each kill), the next one after the kill
    # began. Each kill may cost at most the upstream's limit (+ slack).
    # The restarts' "msg ambiguous" lines are counted for the record:
    # a request may start before its sending mark is committed, and one
    # cut off there is sent again without that line.
    text = d.log_text()
    ambiguous = []
    for k in range(kills):
        seg = text[starts[k + 1]:starts[k + 2] if k + 2 < len(starts)
                else len(text)]
        ambiguous.append(len(re.findall(r"msg ambiguous id=", seg)))
    records = fu_records(fu)
    check_eq(fu_stats(fu)["unrecorded"], 0, "requests fakeup did not record")
    copies = {}
    for i, r in enumerate(records):
        if r["answer"] == "answered" and got.get(r["text"], 0) > 1:
            copies.setdefault(r["text"], []).append(i)
    dups = {x: n - 1 for x, n in got.items() if n > 1}
    per_kill = [0] * kills
    for x, where in copies.items():
        for a, b in zip(where, where[1:]):
            k = next((k for k in range(kills) if a < kill_log[k]["after"]),
                    None)
            if k is None or b < kill_log[k]["before"]:
                mid = acked.get(x) or check_ok(statuses(d, "ref",
                        [x[:128]])[x[:128]], "status of %r" % x)["id"]
                raise Failure("%r (id %s) reached the upstream twice "
                        "(requests %d and %d) with no kill between; kills "
                        "at requests %s; its log: %s" % (x, mid, a, b,
                        [(i["before"], i["after"]) for i in kill_log],
                        id_lines(text, starts, mid)))
            per_kill[k] += 1

    bound = limit + SLACK_PER_KILL
    for k, info in enumerate(kill_log):
        out("# kill %d: after %d acks, upstream accepted %d, in progress "
                "%d; restart found %d in flight; duplicated %d, bound %d" %
                (k + 1, info["acked"], info["accepted"], info["inflight"],
                ambiguous[k], per_kill[k], bound))
    total_dups = sum(dups.values())
    out("# %d kills survived: acknowledged %d, unanswered at a kill %d, "
            "lost %d, duplicated %d, bound %d" % (kills, len(acked),
            len(unknown), len(lost), total_dups, bound * kills))
    for k in range(kills):
        check(per_kill[k] <= bound, "kill %d: %d duplicates, more than "
                "the upstream limit %d + %d" % (k + 1, per_kill[k], limit,
                SLACK_PER_KILL))

    answers = statuses(d, "id", sorted(acked.values()))
    states = {}
    for mid, a in answers.items():
        check_ok(a, "status of acknowledged %s" % mid)
        states[a.get("state")] = states.get(a.get("state"), 0) + 1
    check_eq(states, {"sent": len(acked)}, "states of the acknowledged "
            "messages")
    return {"kills": kills, "acked": len(acked), "unknown": len(unknown),
            "lost": len(lost), "duplicated": total_dups,
            "bound": bound * kills, "per_kill": per_kill, "seed": seed}


@suite.case("3 SIGKILLs under load: nothing acknowledged lost, duplicates "
        "bounded", timeout=60)
def _(t):
    seed = os.environ.get("SMSGW_SEED")
    crash_run(t, kills=3, clients=3, rate=150,
            seed=int(seed) if seed else None)


# ------------------------------------------------------ a full filesystem

def mount_tmpfs(t, size):
    """A tmpfs of SIZE on a new directory, or None with why it cannot be."""
    if os.geteuid() != 0:
        return None, "not running as root"
    d = os.path.join(t.tempdir(), "store")
    os.mkdir(d)
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                "size=%s,mode=0700" % size, "smsgw-test", d],
                capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, "mount failed: %s" % e
    if p.returncode != 0:
        return None, "mount -t tmpfs failed: %s" % \
                p.stderr.decode("utf-8", "replace").strip()

    def umount():
        if subprocess.run(["umount", d], capture_output=True,
                timeout=10).returncode != 0:
            subprocess.run(["umount", "-l", d], capture_output=True,
                    timeout=10)
    t.defer(umount)
    return d, None


def send_batch(c, texts):
    """Pipelines one send per text; the answers, in order."""
    return c.pipeline([{"op": "send", "to": NUMBER, "text": x}
            for x in texts], timeout=20)


@suite.case("store on a full filesystem: storage_error, nothing acked "
        "lost, recovery", timeout=50)
def _(t):
    mnt, why = mount_tmpfs(t, "2m")
    if mnt is None:
        print("# skip: a full store needs a tmpfs of its own: %s" % why,
                flush=True)
        return
    fu = t.fakeup("--latency-ms", "5")
    d = t.daemon(config=config(fu.url(), storage={
            "path": os.path.join(mnt, "queue.db")}))
    pad = " " + "x" * 1000

    # Fill until the store refuses, and a little past it.
    acked = {}
    errors = {}
    n = 0
    first_error = None
    deadline = time.monotonic() + 20
    with d.client(timeout=20) as c:
        while time.monotonic() < deadline and n < 20000:
            texts = ["full %d%s" % (n + i, pad) for i in range(20)]
            n += len(texts)
            for x, a in zip(texts, send_batch(c, texts)):
                if a.get("ok") is True:
                    check(is_id(a.get("id")), "ok without an id: %r" % a)
                    acked[x] = a["id"]
                else:
                    check_eq(a.get("error"), "storage_error",
                            "the error of a send into a full store")
                    errors[x] = a
                    if first_error is None:
                        first_error = n
            if first_error is not None and n >= first_error + 100:
                break
    check(first_error is not None, "%d sends of %d bytes into a 2 MB store "
            "were all accepted" % (n, len(pad)))
    print("# full after %d acknowledged messages; %d storage_error answers "
            "of %d sends" % (len(acked), len(errors), n), flush=True)
    d.ping()
    check(re.search(r"store (insert|commit)-failed error=\S", d.log_text()),
            "no 'store insert-failed' or 'commit-failed' line in the log")

    # Nothing acknowledged is gone while the store is full.
    for x, a in zip(acked, statuses(d, "id", list(acked.values())).values()):
        check_ok(a, "status of an acknowledged message while the store is "
                "full")

    # Room again: sends succeed, and everything acknowledged goes out.
    p = subprocess.run(["mount", "-o", "remount,size=64m", mnt],
            capture_output=True, timeout=10)
    check_eq(p.returncode, 0, "remount with more room (%r)" % p.stderr)

    def accepted_again():
        x = "again probe %f%s" % (time.monotonic(), pad)
        a = d.request({"op": "send", "to": NUMBER, "text": x})
        if a.get("ok") is True:
            acked[x] = a["id"]
            return True
        check_eq(a.get("error"), "storage_error", "send after the remount")
        return False
    wait_until(accepted_again, 10, "a send accepted after the remount",
            interval=0.1)
    with d.client(timeout=20) as c:
        texts = ["again %d%s" % (i, pad) for i in range(50)]
        for x, a in zip(texts, send_batch(c, texts)):
            check_ok(a, "send after the remount")
            acked[x] = a["id"]

    def all_sent():
        got = fu_texts(fu)
        return all(got.get(x, 0) > 0 for x in acked)
    try:
        wait_until(all_sent, 30, "every acknowledged message at the "
                "upstream", interval=0.25)
    except Failure as e:
        got = fu_texts(fu)
        lost = [x[:20] for x in acked if got.get(x, 0) == 0]
        raise Failure("%s: %d of %d missing, e.g. %r; counts %r" % (e,
                len(lost), len(acked), lost[:3], d.counts()))
    wait_drained(d, 10)
    sent_errors = [x[:20] for x in errors if x in fu_texts(fu)]
    check(not sent_errors, "%d sends answered storage_error were sent "
            "anyway, e.g. %r" % (len(sent_errors), sent_errors[:3]))
    dups = sum(n - 1 for n in fu_texts(fu).values() if n > 1)
    print("# recovered: %d acknowledged, all at the upstream, %d of them "
            "twice" % (len(acked), dups), flush=True)
    # The store must say what happened, too: a state change lost with a
    # failed commit is a message sent again after the next restart.
    problems = []
    try:
        check_states(d, acked, "sent", "once the store had room again")
    except Failure as e:
        problems.append(str(e))

    # And all of it is durable: a SIGKILL now loses nothing.
    os.kill(d.pid, signal.SIGKILL)
    d.wait(5)
    d.start()
    wait_drained(d, 10)
    check_states(d, acked, "sent", "after a SIGKILL and a restart")
    got = fu_texts(fu)
    check(all(got.get(x, 0) > 0 for x in acked), "an acknowledged message "
            "is missing at the upstream after the restart")
    again = sum(n - 1 for n in got.values() if n > 1) - dups
    print("# after a SIGKILL and a restart: all sent; %d sent again" % again,
            flush=True)
    check(not problems, "; ".join(problems) + "; %d of them were sent "
            "again after the restart" % again)


def check_states(d, acked, state, when):
    """Every acknowledged message is in state; else which are not."""
    answers = statuses(d, "id", list(acked.values()))
    other = {}
    for mid, a in answers.items():
        check_ok(a, "status of %s %s" % (mid, when))
        if a.get("state") != state:
            other.setdefault(a.get("state"), []).append(mid)
    check(not other, "%s, of %d acknowledged messages %s are not %s in "
            "the store (daemon counts %r)" % (when, len(acked),
            ", ".join("%d %s (e.g. %s)" % (len(v), k, v[0])
            for k, v in other.items()), state, d.counts()))


if __name__ == "__main__":
    suite.main()
