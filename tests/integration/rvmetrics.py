"""Helpers of the metrics tests (test_rv_metrics_*.py): scraping the
Prometheus endpoint, checking and reading what it exposes, restarting a
server.

What the endpoint writes is checked by Prometheus's own tools and parsed
by Debian's python3-prometheus-client (check_exposition, families):
`promtool check metrics` (Debian's prometheus) parses it as Prometheus's
scraper does and lints it (HELP on every metric, _total on counters, ...),
and the library parses it for the tests.  Neither rejects a few things
the format forbids, so those are checked here explicitly: a family's lines
split into two groups, the same series twice (Prometheus drops such a
scrape's duplicates), a counter that is negative or NaN, a label name
beginning with "__" (reserved for Prometheus's own use), and text that is
not UTF-8 or holds a carriage return or NUL (promtool passes either in a
HELP text)."""

import json
import math
import re
import subprocess

from prometheus_client.parser import text_string_to_metric_families

import rvhttpd

PREFIX = "redox_verify_"
METRICS = {
    "accepted": ("redox_verify_requests_accepted_total", "name"),
    "denied": ("redox_verify_requests_denied_total", "reason"),
    "answered": ("redox_verify_handshakes_answered_total", "name"),
    "refused": ("redox_verify_handshakes_refused_total", "reason"),
}
# The gauges (timestamps, by VirtualHost and token NAME), after the counters.
GAUGES = {
    "expiry": "redox_verify_token_expiry_timestamp_seconds",
    "last_accepted": "redox_verify_token_last_accepted_timestamp_seconds",
}
DENIED_REASONS = {"missing", "malformed", "wrong-token", "mismatch", "no-tokens", "expired"}
REFUSED_REASONS = {"missing", "wrong-token", "no-tokens", "bad-challenge", "expired"}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UUID = rvhttpd.HANDSHAKE_UUID

# Lines the module logs at error level for handshakes, besides denials.
ALLOWED = [rvhttpd.BAD_CHALLENGE_LOGGED]


def scrape(h, host="localhost", path="/metrics"):
    r = h.request(path, host=host)
    assert r.status == 200, (r, r.text)
    assert r.header("Content-Type") == CONTENT_TYPE, r.headers
    return r.body


_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_HELP_TYPE = re.compile(r"#[ \t]+(?:HELP|TYPE)[ \t]+(\S+)")


def exposed_name(fam):
    """A family's name as the exposition writes it: the library names a
    counter's family without _total (the OpenMetrics way)."""
    return fam.name + "_total" if fam.type == "counter" else fam.name


def promtool_check(text):
    """promtool check metrics on text: its findings, [] when it passes."""
    proc = subprocess.run(["promtool", "check", "metrics"], input=text.encode("utf-8"),
                          capture_output=True, timeout=rvhttpd.WAIT)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()
    if proc.returncode == 0:
        return []
    return ["promtool: " + l for l in out.splitlines()] or ["promtool: rc=%d" % proc.returncode]


def check_exposition(body):
    """(problems, families): promtool check metrics and the library parser on
    body, then the checks neither makes (see the module's docstring).
    families: {exposed name: prometheus_client Metric}, in order."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as e:
        return ["not UTF-8: %s" % e], {}
    problems = promtool_check(text)
    try:
        fams = {exposed_name(f): f for f in text_string_to_metric_families(text)}
    except ValueError as e:
        return problems + ["prometheus_client: %s" % e], {}
    if "\r" in text or "\0" in text:
        problems.append("carriage return or NUL in the exposition")
    family_of = {s.name: n for n, f in fams.items() for s in f.samples}
    seen, done, current = set(), set(), None
    for lineno, line in enumerate(text.split("\n"), 1):
        m = _HELP_TYPE.match(line) if line.startswith("#") else _SAMPLE_NAME.match(line)
        if not m:
            continue                    # blank line or other comment
        name = m.group(m.lastindex or 0)
        name = family_of.get(name, name)
        if name != current:
            if name in done:
                problems.append("line %d: the lines of %s are not one group" % (lineno, name))
            if current is not None:
                done.add(current)
            current = name
    for name, fam in fams.items():
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in seen:
                problems.append("duplicate series %s%r" % (s.name, s.labels))
            seen.add(key)
            reserved = [l for l in s.labels if l.startswith("__")]
            if reserved:
                problems.append("reserved label name %s in %s" % (reserved[0], s.name))
            if fam.type == "counter" and (math.isnan(s.value) or s.value < 0):
                problems.append("counter %s%r is %r" % (s.name, s.labels, s.value))
    return problems, fams


def families(body):
    """body checked (check_exposition: no problem allowed) and parsed."""
    problems, fams = check_exposition(body)
    assert not problems, "the exposition is not valid:\n" + "\n".join(problems)
    return fams


def counts(h, host="localhost", path="/metrics"):
    """{(kind, vhost, NAME or reason): value} of every exported series."""
    fams = families(scrape(h, host, path))
    out = {}
    for kind, (metric, label) in METRICS.items():
        for s in fams[metric].samples:
            assert set(s.labels) == {"vhost", label}, s
            out[(kind, s.labels["vhost"], s.labels[label])] = int(s.value)
    return out


def gauges(h, host="localhost", path="/metrics"):
    """{(kind, vhost, NAME): value} of the timestamp gauges (GAUGES), read
    with python3-prometheus-client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    names = {metric: kind for kind, metric in GAUGES.items()}
    out = {}
    for fam in text_string_to_metric_families(scrape(h, host, path).decode()):
        if fam.name in names:
            assert fam.type == "gauge", fam
            for s in fam.samples:
                assert set(s.labels) == {"vhost", "name"}, s
                out[(names[fam.name], s.labels["vhost"], s.labels["name"])] = int(s.value)
    return out


# Each checked request's time as the module sees it (r->request_time, in
# microseconds), VirtualHost, outcome and accepted NAME.
TIME_LOG = ('LogFormat "%{usec}t %v %{REDOX_VERIFY}e %{REDOX_SOURCE}e %q" rvtime\n'
            'CustomLog "logs/time.log" rvtime\n')


def last_accepted_from_log(h, port):
    """{(vhost label, NAME): the latest second in which a request or a
    handshake with NAME was accepted}, from the TIME_LOG log."""
    out = {}
    try:
        text = h.path("logs/time.log").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        usec, vhost, outcome, name = line.split(" ")[:4]
        if outcome in ("ok", "handshake"):
            key = ("%s:%d" % (vhost, port), name)
            out[key] = max(out.get(key, 0), int(usec) // 1000000)
    return out


def nonzero(c):
    return {k: v for k, v in c.items() if v}


def handshake_post(h, token, challenge=UUID, host="localhost", path="/redox/hs"):
    body = json.dumps({"verification-token": token, "challenge": challenge})
    return h.request(path, host=host, method="POST", body=body,
                     headers=[("Content-Type", "application/json")])


def handshake_get(h, token=None, challenge=UUID, host="localhost", path="/redox/hs"):
    q = "?challenge=" + challenge
    if token is not None:
        q += "&verification-token=" + token
    return h.request(path + q, host=host)


def generations(h):
    return h.generations()


def restart(h, how="graceful", timeout=rvhttpd.WAIT):
    """apache2 -k graceful|restart, then waits for the new generation."""
    h.restart(how, timeout)


# Polls until a true value (old children may still answer a scrape for a
# moment after a restart).
wait_for = rvhttpd.wait_for


def _pid_lines(h, log="logs/pid.log"):
    """(pid, REDOX_VERIFY, query) of each request in the PID_LOG log."""
    try:
        text = h.path(log).read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        pid, outcome, query = (line.split(" ", 2) + ["", ""])[:3]
        out.append((int(pid), outcome, query))
    return out


def pids_served(h):
    """Pids of the children that served checked requests."""
    return {pid for pid, outcome, _ in _pid_lines(h) if outcome not in ("", "-")}


def pid_of(h, rid):
    """The pid that served the request with this rid, or None."""
    for pid, _, query in _pid_lines(h):
        if rid in query:
            return pid
    return None


PID_LOG = ('LogFormat "%P %{REDOX_VERIFY}e %q" rvpid\n'
           'CustomLog "logs/pid.log" rvpid\n')
