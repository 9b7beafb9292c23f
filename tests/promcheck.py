#!/usr/bin/env python3
"""A strict checker of the Prometheus text exposition format, version 0.0.4.

    python3 promcheck.py [FILE] < page   prints each problem; exit 0 or 1
    python3 promcheck.py --self-test     proves the checker on bad pages
    import promcheck; promcheck.check(text) -> list of problems

Beyond the grammar it insists on what a sound exporter does: every family
has one # HELP and one # TYPE before its samples and keeps its samples
together, no series appears twice, counters end in _total, and histograms
have rising le bounds, cumulative counts, a +Inf bucket equal to _count,
a _sum and a _count.
"""

import math
import re
import sys

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[+-]Inf|NaN")
TIMESTAMP = re.compile(r"-?[0-9]+")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
BLANK = " \t"


class Problem(Exception):
    """A line that cannot be parsed; its text says why."""


class Family:
    def __init__(self, name, line):
        self.name = name
        self.line = line            # where its block began
        self.type = None
        self.type_line = None
        self.help_line = None
        self.first_sample = None    # line of its first sample


class Series:
    """One histogram or summary series: its labels without le/quantile."""

    def __init__(self, line):
        self.line = line
        self.last_le = None         # (value, text) of the previous bucket
        self.last_count = None
        self.inf = None             # the +Inf bucket's count
        self.sum = None
        self.count = None


def parse_float(text):
    if not FLOAT.fullmatch(text):
        return None
    return float(text.replace("Inf", "inf").replace("NaN", "nan"))


def show_labels(labels):
    if not labels:
        return ""
    parts = []
    for key, value in labels:
        value = (value.replace("\\", "\\\\").replace("\n", "\\n")
                 .replace('"', '\\"'))
        parts.append('%s="%s"' % (key, value))
    return "{" + ",".join(parts) + "}"


def unescape_help(text):
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        if i + 1 == len(text):
            raise Problem("# HELP ends in a lone backslash")
        nxt = text[i + 1]
        if nxt not in "\\n":
            raise Problem("invalid escape '\\%s' in # HELP (only \\\\ and "
                          "\\n)" % nxt)
        out.append("\n" if nxt == "n" else "\\")
        i += 2
    return "".join(out)


def skip_blanks(line, i):
    while i < len(line) and line[i] in BLANK:
        i += 1
    return i


def parse_label_value(line, i, key):
    """The value of label KEY starting after its opening quote at I."""
    out = []
    while i < len(line):
        c = line[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 == len(line):
                break
            nxt = line[i + 1]
            if nxt not in '\\"n':
                raise Problem("label %s: invalid escape '\\%s' in the value "
                              "(only \\\\, \\\" and \\n)" % (key, nxt))
            out.append("\n" if nxt == "n" else nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    raise Problem("label %s: the value has no closing quote" % key)


def parse_labels(line, i):
    """Labels from just after '{' at I: (list of (key, value), index)."""
    labels, seen = [], set()
    while True:
        i = skip_blanks(line, i)
        if i < len(line) and line[i] == "}":
            return labels, i + 1
        start = i
        while i < len(line) and line[i] not in '=}{,"' + BLANK:
            i += 1
        key = line[start:i]
        if not LABEL_NAME.fullmatch(key):
            raise Problem("bad label name %r" % key)
        if key.startswith("__"):
            raise Problem("label name %r is reserved (starts with __)" % key)
        if key in seen:
            raise Problem("label %s appears twice" % key)
        seen.add(key)
        i = skip_blanks(line, i)
        if i >= len(line) or line[i] != "=":
            raise Problem("label %s: no '=' after the name" % key)
        i = skip_blanks(line, i + 1)
        if i >= len(line) or line[i] != '"':
            raise Problem("label %s: the value is not quoted" % key)
        value, i = parse_label_value(line, i + 1, key)
        labels.append((key, value))
        i = skip_blanks(line, i)
        if i < len(line) and line[i] == ",":
            i += 1
        elif i < len(line) and line[i] == "}":
            continue
        else:
            raise Problem("label %s: text after the closing quote (an "
                          "unescaped '\"' in the value?)" % key)


def parse_sample(line):
    """(name, labels, value text, value) of a sample line."""
    i = skip_blanks(line, 0)
    start = i
    while i < len(line) and line[i] not in "{" + BLANK:
        i += 1
    name = line[start:i]
    if not METRIC_NAME.fullmatch(name):
        raise Problem("bad metric name %r" % name)
    labels = []
    j = skip_blanks(line, i)
    if j < len(line) and line[j] == "{":
        labels, i = parse_labels(line, j + 1)
    rest = line[i:]
    if rest[:1] not in ("", " ", "\t"):
        raise Problem("%s: no blank before the value" % name)
    fields = rest.split()
    if not fields:
        raise Problem("%s: no value" % name)
    if len(fields) > 2:
        raise Problem("%s: text after the value and timestamp: %r"
                      % (name, " ".join(fields[2:])))
    value = parse_float(fields[0])
    if value is None:
        raise Problem("%s: value %r is not a number" % (name, fields[0]))
    if len(fields) == 2 and not TIMESTAMP.fullmatch(fields[1]):
        raise Problem("%s: timestamp %r is not an integer"
                      % (name, fields[1]))
    return name, labels, fields[0], value


class Checker:
    def __init__(self):
        self.problems = []
        self.families = {}
        self.current = None
        self.series = {}            # (name, labels) -> line
        self.groups = {}            # (family, labels) -> Series
        self.lineno = 0

    def problem(self, text, line=None):
        line = self.lineno if line is None else line
        self.problems.append("line %d: %s" % (line, text))

    # Comments, # HELP and # TYPE.

    def family_for(self, name, what):
        if self.current is not None and self.current.name == name:
            return self.current
        fam = self.families.get(name)
        if fam is not None:
            self.problem("%s for %s again: its family began on line %d "
                         "and is not the current one" % (what, name, fam.line))
        else:
            fam = Family(name, self.lineno)
            self.families[name] = fam
        self.current = fam
        return fam

    def comment(self, line):
        m = re.match(r"#[ \t]*(\S*)(.*)$", line.lstrip(BLANK))
        keyword, rest = m.group(1), m.group(2)
        if keyword not in ("HELP", "TYPE"):
            return
        m = re.match(r"[ \t]+(\S+)(?:[ \t]+(.*))?$", rest)
        if m is None:
            raise Problem("# %s without a metric name" % keyword)
        name, text = m.group(1), m.group(2) or ""
        if not METRIC_NAME.fullmatch(name):
            raise Problem("bad metric name %r in # %s" % (name, keyword))
        if keyword == "HELP":
            unescape_help(text)
            self.help(name)
        else:
            self.type(name, text.strip(BLANK))

    def help(self, name):
        fam = self.family_for(name, "# HELP")
        if fam.help_line is not None:
            self.problem("duplicate # HELP for %s (first on line %d)"
                         % (name, fam.help_line))
            return
        fam.help_line = self.lineno
        if fam.first_sample is not None:
            self.problem("# HELP for %s after its first sample on line %d"
                         % (name, fam.first_sample))

    def type(self, name, text):
        fam = self.family_for(name, "# TYPE")
        if fam.type_line is not None:
            self.problem("duplicate # TYPE for %s (first on line %d)"
                         % (name, fam.type_line))
            return
        fam.type_line = self.lineno
        if text not in TYPES:
            self.problem("# TYPE %s: unknown type %r (one of %s)"
                         % (name, text, ", ".join(TYPES)))
            return
        fam.type = text
        if fam.first_sample is not None:
            self.problem("# TYPE for %s after its first sample on line %d"
                         % (name, fam.first_sample))
        if text == "counter" and not name.endswith("_total"):
            self.problem("counter %s does not end in _total" % name)

    # Samples.

    @staticmethod
    def belongs(fam, name):
        """The part of FAM that sample NAME is, or None."""
        base = fam.name
        if fam.type == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                if name == base + suffix:
                    return suffix
            return None
        if fam.type == "summary":
            for suffix in ("_sum", "_count"):
                if name == base + suffix:
                    return suffix
            return "" if name == base else None
        if name == base:
            return ""
        if (fam.type == "counter" and base.endswith("_total")
                and name == base[:-len("_total")] + "_created"):
            return "_created"
        return None

    def owner(self, name):
        """The family that sample NAME is of, or None after a problem."""
        cur = self.current
        if cur is not None and cur.type is not None:
            part = self.belongs(cur, name)
            if part is not None:
                return cur, part
        for fam in self.families.values():
            if fam is cur or fam.type is None:
                continue
            if self.belongs(fam, name) is not None:
                self.problem("%s outside its family's block: %s began on "
                             "line %d, and %s has begun since"
                             % (name, fam.name, fam.line, cur.name))
                return None
        if cur is not None and cur.type is None and \
                cur.first_sample is None and name.startswith(cur.name):
            cur.first_sample = self.lineno
        self.problem("sample %s without a preceding # TYPE for its family"
                     % name)
        return None

    def sample(self, line):
        name, labels, text, value = parse_sample(line)
        key = (name, tuple(sorted(labels)))
        shown = name + show_labels(labels)
        if key in self.series:
            self.problem("duplicate series %s (first on line %d)"
                         % (shown, self.series[key]))
            return
        self.series[key] = self.lineno

        found = self.owner(name)
        if found is None:
            return
        fam, part = found
        if fam.first_sample is None:
            fam.first_sample = self.lineno
        if fam.type == "counter" and part == "" and value < 0:
            self.problem("%s: a counter is never negative (%s)"
                         % (shown, text))
        elif fam.type == "histogram":
            self.histogram(fam, part, labels, shown, text, value)
        elif fam.type == "summary":
            self.summary(fam, part, labels, shown, text, value)

    def group(self, fam, labels, drop):
        rest = tuple(sorted((k, v) for k, v in labels if k != drop))
        key = (fam.name, rest)
        if key not in self.groups:
            self.groups[key] = Series(self.lineno)
        return self.groups[key]

    def whole_count(self, shown, text, value):
        if math.isnan(value) or value < 0 or value != math.floor(value):
            self.problem("%s: a count is a whole number >= 0, not %s"
                         % (shown, text))
            return False
        return True

    def histogram(self, fam, part, labels, shown, text, value):
        les = [v for k, v in labels if k == "le"]
        if part != "_bucket":
            if les:
                self.problem("%s: only _bucket lines have an le label"
                             % shown)
                return
            series = self.group(fam, labels, "le")
            if part == "_sum":
                series.sum = value
            elif self.whole_count(shown, text, value):
                series.count = value
            return
        if not les:
            self.problem("%s: a bucket without an le label" % shown)
            return
        if les[0].lstrip("+").lower() in ("inf", "infinity") and \
                les[0] != "+Inf":
            self.problem("%s: the last bucket is spelled le=\"+Inf\"" % shown)
            return
        le = parse_float(les[0])
        if le is None or math.isnan(le) or le == -math.inf:
            self.problem("%s: le %r is not a bound" % (shown, les[0]))
            return
        if not self.whole_count(shown, text, value):
            return
        series = self.group(fam, labels, "le")
        if series.last_le is not None and le <= series.last_le[0]:
            self.problem("%s: le %s after le %s; le must increase"
                         % (shown, les[0], series.last_le[1]))
        if series.last_count is not None and value < series.last_count:
            self.problem("%s: count %s below the previous bucket's %s; "
                         "buckets are cumulative"
                         % (shown, text, fmt(series.last_count)))
        series.last_le = (le, les[0])
        series.last_count = value
        if math.isinf(le):
            series.inf = value

    def summary(self, fam, part, labels, shown, text, value):
        qs = [v for k, v in labels if k == "quantile"]
        if part != "":
            if qs:
                self.problem("%s: only the quantile lines have a quantile "
                             "label" % shown)
                return
            series = self.group(fam, labels, "quantile")
            if part == "_sum":
                series.sum = value
            elif self.whole_count(shown, text, value):
                series.count = value
            return
        q = parse_float(qs[0]) if qs else None
        if q is None or not 0 <= q <= 1:
            self.problem("%s: a summary line needs a quantile in [0, 1]"
                         % shown)
            return
        self.group(fam, labels, "quantile")

    # The whole page.

    def finish(self):
        for fam in self.families.values():
            if fam.type_line is None:
                self.problem("%s has a # HELP but no # TYPE" % fam.name,
                             fam.help_line)
            if fam.help_line is None:
                self.problem("%s has no # HELP" % fam.name, fam.type_line)
        for (name, labels), series in self.groups.items():
            fam = self.families[name]
            shown = name + show_labels(labels)
            if series.sum is None:
                self.problem("%s has no %s_sum" % (shown, name), series.line)
            if series.count is None:
                self.problem("%s has no %s_count" % (shown, name),
                             series.line)
            if fam.type != "histogram":
                continue
            if series.inf is None:
                self.problem("%s has no le=\"+Inf\" bucket" % shown,
                             series.line)
            elif series.count is not None and series.inf != series.count:
                self.problem("%s: the +Inf bucket holds %s but %s_count is "
                             "%s" % (shown, fmt(series.inf), name,
                                     fmt(series.count)), series.line)

    def run(self, text):
        if text and not text.endswith("\n"):
            self.problems.append("the page does not end with a newline")
        for self.lineno, line in enumerate(text.split("\n"), 1):
            if "\r" in line:
                self.problem("a carriage return; lines end in \\n alone")
                line = line.replace("\r", "")
            try:
                if line.strip(BLANK) == "":
                    continue
                if line.lstrip(BLANK).startswith("#"):
                    self.comment(line)
                else:
                    self.sample(line)
            except Problem as e:
                self.problem(str(e))
        self.finish()
        return self.problems


def fmt(value):
    return "%d" % value if value == math.floor(value) else repr(value)


def check(text):
    """Every problem with the page TEXT (str or UTF-8 bytes); [] when fine."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            return ["not UTF-8: byte %d" % e.start]
    return Checker().run(text)


GOOD = """\
# A comment that is neither HELP nor TYPE.
# HELP smsgw_messages_total Messages by state, with \\\\ and \\n escaped.
# TYPE smsgw_messages_total counter
smsgw_messages_total{state="queued"} 3
smsgw_messages_total{state="sent"} 1.5e3
smsgw_messages_total{state="odd \\"one\\"\\n\\\\"} 0 1700000000000
# TYPE smsgw_queue_depth gauge
# HELP smsgw_queue_depth Queued messages.
smsgw_queue_depth{priority="0"} 0
smsgw_queue_depth{priority="1"} -2.5
smsgw_queue_depth{priority="2"} +Inf
smsgw_queue_depth{priority="3"} NaN
# HELP smsgw_up Is it up.
# TYPE smsgw_up gauge
smsgw_up 1

# HELP smsgw_upstream_latency_seconds Latency.
# TYPE smsgw_upstream_latency_seconds histogram
smsgw_upstream_latency_seconds_bucket{le="0.005"} 0
smsgw_upstream_latency_seconds_bucket{le="0.1"} 2
smsgw_upstream_latency_seconds_bucket{le="1"} 2
smsgw_upstream_latency_seconds_bucket{le="+Inf"} 3
smsgw_upstream_latency_seconds_sum 4.25
smsgw_upstream_latency_seconds_count 3
smsgw_upstream_latency_seconds_bucket{op="x",le="+Inf"} 0
smsgw_upstream_latency_seconds_sum{op="x"} 0
smsgw_upstream_latency_seconds_count{op="x"} 0
# HELP rpc_seconds A summary.
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds_sum 1
rpc_seconds_count 5
"""

HIST = "# HELP h Latency.\n# TYPE h histogram\n"

BAD = [
    ("no TYPE", "# HELP a_total Help.\na_total 1\n",
     "a_total has a # HELP but no # TYPE"),
    ("no TYPE", "# HELP a_total Help.\na_total 1\n",
     "sample a_total without a preceding # TYPE"),
    ("nothing declared", "a 1\n", "sample a without a preceding # TYPE"),
    ("no HELP", "# TYPE a gauge\na 1\n", "a has no # HELP"),
    ("duplicate HELP", "# HELP a A.\n# HELP a A.\n# TYPE a gauge\na 1\n",
     "line 2: duplicate # HELP for a (first on line 1)"),
    ("duplicate TYPE", "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",
     "line 3: duplicate # TYPE for a"),
    ("family twice", "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n"
     "# TYPE b gauge\nb 1\n# HELP a A.\n",
     "line 7: # HELP for a again"),
    ("TYPE after samples", "# HELP a A.\na 1\n# TYPE a gauge\n",
     "# TYPE for a after its first sample on line 2"),
    ("interleaved", "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n"
     "# TYPE b gauge\nb 1\na{x=\"1\"} 2\n",
     "line 7: a outside its family's block"),
    ("bad metric name in TYPE", "# TYPE 1a gauge\n", "bad metric name '1a'"),
    ("bad metric name in sample", "# HELP a A.\n# TYPE a gauge\na-b 1\n",
     "bad metric name 'a-b'"),
    ("bad label name", "# HELP a A.\n# TYPE a gauge\na{1x=\"v\"} 1\n",
     "bad label name '1x'"),
    ("reserved label name", "# HELP a A.\n# TYPE a gauge\na{__x=\"v\"} 1\n",
     "reserved"),
    ("label twice", "# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",
     "label x appears twice"),
    ("unescaped quote", "# HELP a A.\n# TYPE a gauge\na{x=\"a\"b\"} 1\n",
     "unescaped '\"'"),
    ("bad escape", "# HELP a A.\n# TYPE a gauge\na{x=\"a\\qb\"} 1\n",
     "invalid escape '\\q'"),
    ("lone backslash", "# HELP a A.\n# TYPE a gauge\na{x=\"a\\\"} 1\n",
     "no closing quote"),
    ("unquoted value", "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",
     "not quoted"),
    ("bad HELP escape", "# HELP a A \\t.\n# TYPE a gauge\na 1\n",
     "invalid escape '\\t' in # HELP"),
    ("duplicate series", "# HELP a A.\n# TYPE a gauge\na{x=\"1\",y=\"2\"} 1\n"
     "a{y=\"2\",x=\"1\"} 1\n",
     "line 4: duplicate series a{y=\"2\",x=\"1\"} (first on line 3)"),
    ("duplicate bare series", "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
     "duplicate series a"),
    ("non-numeric value", "# HELP a A.\n# TYPE a gauge\na abc\n",
     "value 'abc' is not a number"),
    ("decimal comma", "# HELP a A.\n# TYPE a gauge\na 1,5\n",
     "value '1,5' is not a number"),
    ("spelled-out infinity", "# HELP a A.\n# TYPE a gauge\na infinity\n",
     "not a number"),
    ("no value", "# HELP a A.\n# TYPE a gauge\na{x=\"1\"}\n", "no value"),
    ("bad timestamp", "# HELP a A.\n# TYPE a gauge\na 1 1.5\n",
     "timestamp '1.5'"),
    ("unknown type", "# HELP a A.\n# TYPE a gauges\n", "unknown type"),
    ("counter name", "# HELP a A.\n# TYPE a counter\na 1\n",
     "counter a does not end in _total"),
    ("negative counter", "# HELP a_total A.\n# TYPE a_total counter\n"
     "a_total -1\n", "never negative"),
    ("le decreasing", HIST + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"0.5\"} 1\n"
     "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
     "le 0.5 after le 1"),
    ("counts decreasing", HIST + "h_bucket{le=\"1\"} 2\n"
     "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n",
     "below the previous bucket's 2"),
    ("no +Inf", HIST + "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
     "no le=\"+Inf\" bucket"),
    ("+Inf spelled Inf", HIST + "h_bucket{le=\"Inf\"} 1\nh_sum 1\n"
     "h_count 1\n", "spelled le=\"+Inf\""),
    ("+Inf is not count", HIST + "h_bucket{le=\"+Inf\"} 2\nh_sum 1\n"
     "h_count 3\n", "the +Inf bucket holds 2 but h_count is 3"),
    ("no _sum", HIST + "h_bucket{le=\"+Inf\"} 1\nh_count 1\n",
     "has no h_sum"),
    ("no _count", HIST + "h_bucket{le=\"+Inf\"} 1\nh_sum 1\n",
     "has no h_count"),
    ("bucket without le", HIST + "h_bucket 1\nh_sum 1\nh_count 1\n",
     "a bucket without an le label"),
    ("fractional bucket", HIST + "h_bucket{le=\"+Inf\"} 0.5\nh_sum 1\n"
     "h_count 1\n", "whole number"),
    ("bare histogram sample", HIST + "h 1\n",
     "sample h without a preceding # TYPE"),
    ("per-label series", HIST + "h_bucket{x=\"a\",le=\"+Inf\"} 1\n"
     "h_sum{x=\"a\"} 1\nh_count{x=\"a\"} 1\nh_bucket{x=\"b\",le=\"+Inf\"} 1\n"
     "h_sum{x=\"b\"} 1\n", "h{x=\"b\"} has no h_count"),
    ("no trailing newline", "# HELP a A.\n# TYPE a gauge\na 1",
     "does not end with a newline"),
    ("carriage return", "# HELP a A.\r\n# TYPE a gauge\na 1\n",
     "carriage return"),
]


def self_test():
    failures = 0
    found = check(GOOD)
    if found:
        failures += 1
        print("FAIL the good page: %s" % "; ".join(found))
    else:
        print("ok the good page passes")
    if check(b"\xff\n") != ["not UTF-8: byte 0"]:
        failures += 1
        print("FAIL a page that is not UTF-8 passes")
    for what, page, expected in BAD:
        found = check(page)
        if not any(expected in p for p in found):
            failures += 1
            print("FAIL %s: wanted %r, got %r" % (what, expected, found))
        else:
            print("ok %s" % what)
    print("%d failed of %d" % (failures, len(BAD) + 2))
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) > 2:
        print("usage: promcheck.py [FILE | --self-test] (page on stdin)",
              file=sys.stderr)
        return 2
    if len(argv) == 2:
        with open(argv[1], "rb") as f:
            data = f.read()
    else:
        data = sys.stdin.buffer.read()
    problems = check(data)
    for p in problems:
        print("promcheck: %s" % p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
