"""Helpers of the metrics tests (test_rv_metrics_*.py): scraping the
Prometheus endpoint, reading its counters, restarting a server."""

import json
import re
import subprocess
import time

import rvhttpd
import rvprom

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
UUID = "2e73f864-a0e9-4764-a7d5-91fe5836db22"

# Lines the module logs at error level for handshakes, besides denials.
ALLOWED = [r"\[redox_verify:error\].*redox_verify: handshake refused bad-challenge"]


def scrape(h, host="localhost", path="/metrics"):
    r = h.request(path, host=host)
    assert r.status == 200, (r, r.text)
    assert r.header("Content-Type") == CONTENT_TYPE, r.headers
    return r.body


def counts(h, host="localhost", path="/metrics"):
    """{(kind, vhost, NAME or reason): value} of every exported series."""
    fams = rvprom.parse(scrape(h, host, path))
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
    return len(re.findall(r"resuming normal operations", h.error_log_text()))


def restart(h, how="graceful", timeout=20):
    """apache2 -k graceful|restart, then waits for the new generation."""
    before = generations(h)
    proc = subprocess.run([rvhttpd.APACHE, "-f", str(h.conf), "-k", how],
                          env=h._env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline = time.time() + timeout
    while generations(h) == before:
        assert time.time() < deadline, "no new generation:\n" + h.error_log_tail()
        time.sleep(0.05)


def wait_for(fn, timeout=10, what="condition"):
    """Polls fn() until it returns a true value (old children may still
    answer a scrape for a moment after a restart)."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.1)


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
