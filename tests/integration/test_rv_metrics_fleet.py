"""A real fleet: two Apache servers with the same token configuration (as
behind a load balancer) and one real Prometheus server (Debian's
`prometheus`) scraping both every second with the shipped alert rules
loaded, all on loopback, Prometheus's data in the test's temporary folder.

A known mix of requests is split across the two servers; Prometheus's HTTP
API must give the sums across the servers exactly, the last-accepted time
must move to the latest accepted request's time, and a burst of refusals of
senders holding a token (wrong-token, expired) must raise the refused-sender
alert in ALERTS: once per VirtualHost and reason, not per server.  The test
copy of the rules differs from the shipped file only in its names and a
for: of 0s; the shipped rules are loaded too and must show the alert
pending.  Every wait is a poll with a deadline."""

import calendar
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

import rvhttpd
import rvmetrics
from rvhttpd import bearer, both, new_token, vtok
from rvmetrics import handshake_get, handshake_post

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RULES = rvhttpd.REPO / "conf" / "prometheus" / "redox_verify.rules.yml"
VHOST = "redox.example.org:443"
HOST = "redox.example.org"
T = {}
DEADLINE = 90  # seconds for anything Prometheus has to see

ALLOWED = rvmetrics.ALLOWED + [
    r"\[redox_verify:warn\].*RedoxVerificationToken old \(.*\) expired at"]


def _site_conf(**kw):
    return rvmetrics.TIME_LOG + """
<Location /redox-metrics>
    SetHandler redox-verify-metrics
    Require ip 127.0.0.1
</Location>
<VirtualHost 127.0.0.1:*>
    ServerName {vhost}
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken prod {prod}
        RedoxVerificationToken prod-2 {prod2}
        RedoxVerificationToken old {old} expires=2020-01-01
        ProxyPass http://127.0.0.1:{bp}/fleet/
    </Location>
</VirtualHost>
""".format(**kw)


def fast_copy_of_rules(text):
    """The shipped rules under other names, with for: 0s."""
    out = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("- alert: RedoxVerify"):
            line = line.replace("- alert: RedoxVerify", "- alert: FleetTestRedoxVerify")
        elif s.startswith("- name: redox_verify"):
            line = line.replace("- name: redox_verify", "- name: fleet_test_redox_verify")
        elif s.startswith("for: "):
            line = line[:line.index("for: ")] + "for: 0s"
        out.append(line)
    return "\n".join(out) + "\n"


class Prometheus:
    def __init__(self, workdir, logdir, targets):
        self.port = rvhttpd.free_port()
        self.dir = workdir
        self.log = logdir / "prometheus.log"
        logdir.mkdir(parents=True, exist_ok=True)
        rules = workdir / "fleet-test.rules.yml"
        rules.write_text(fast_copy_of_rules(RULES.read_text()))
        conf = workdir / "prometheus.yml"
        conf.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(RULES), str(rules)],
            "scrape_configs": [{
                "job_name": "redox",
                "metrics_path": "/redox-metrics",
                "static_configs": [{"targets": ["127.0.0.1:%d" % p for p in targets]}],
            }],
        }, indent=2))
        check = subprocess.run(["promtool", "check", "config", str(conf)],
                               capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        self.args = [PROMETHEUS, "--config.file=%s" % conf,
                     "--storage.tsdb.path=%s" % (workdir / "data"),
                     "--storage.tsdb.retention.time=1h",
                     "--web.listen-address=127.0.0.1:%d" % self.port]
        self.proc = None

    def start(self):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.wait(lambda: self._get("/-/ready", raw=True), "Prometheus to be ready")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.logf.close()

    def _get(self, path, raw=False):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path),
                                        timeout=5) as r:
                body = r.read()
        except OSError:
            return None
        return body if raw else json.loads(body)

    def query(self, q):
        """The instant vector of q: [(labels, value)]."""
        assert self.proc.poll() is None, "prometheus exited:\n" + self.log.read_text()
        res = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": q}))
        assert res and res["status"] == "success", (q, res)
        return [(r["metric"], float(r["value"][1])) for r in res["data"]["result"]]

    def by(self, q, label):
        return {m.get(label): v for m, v in self.query(q)}

    def rules_evaluated_after(self, t, groups=("redox_verify", "fleet_test_redox_verify")):
        """Have these rule groups been evaluated since the Unix time t?"""
        res = self._get("/api/v1/rules")
        if not res:
            return False
        last = {g["name"]: _rfc3339(g["lastEvaluation"]) for g in res["data"]["groups"]}
        return all(last.get(g, 0) > t for g in groups)

    def wait(self, fn, what, timeout=DEADLINE):
        deadline = time.time() + timeout
        while True:
            v = fn()
            if v:
                return v
            assert self.proc.poll() is None, "prometheus exited:\n" + self.log.read_text()
            assert time.time() < deadline, "timed out waiting for %s\n%s" % (
                what, self.log.read_text()[-3000:])
            time.sleep(0.2)


def _rfc3339(s):
    """Unix time of Prometheus's lastEvaluation (nanoseconds cut)."""
    if s.startswith("0001-"):
        return 0.0
    date, frac = s.rstrip("Z").split(".") if "." in s else (s.rstrip("Z"), "0")
    frac = frac.split("+")[0].split("-")[0]
    base = calendar.timegm(time.strptime(date[:19], "%Y-%m-%dT%H:%M:%S"))
    return base + float("0." + frac)


@pytest.fixture(scope="module")
def fleet(backend, tmp_path_factory):
    for k in ("prod", "prod2", "old", "wrong"):
        T[k] = new_token()
    servers = []
    for i in (1, 2):
        h = rvhttpd.Httpd("fleet-%d" % i, allowed=ALLOWED, mpm="prefork" if i == 1 else "event")
        h.backend = backend
        h.write_conf(_site_conf(vhost=VHOST, bp=backend.port, **T))
        servers.append(h.start())
    prom = Prometheus(tmp_path_factory.mktemp("prometheus"),
                      rvhttpd.GEN_DIR / "fleet-prometheus" / "logs",
                      [h.port for h in servers]).start()
    try:
        yield servers, prom
    finally:
        prom.stop()
        for h in servers:
            h.stop()


def _last_accepted(servers):
    """{NAME: latest accepted second} over both servers' time logs."""
    out = {}
    for h in servers:
        for (vhost, name), t in rvmetrics.last_accepted_from_log(h, 443).items():
            assert vhost == VHOST
            out[name] = max(out.get(name, 0), t)
    return out


def _send(h, n, fn, status):
    for _ in range(n):
        r = fn(h)
        assert r.status == status, r


def test_rv_metrics_fleet_sums_last_accepted_and_alert(fleet):
    (one, two), prom = fleet
    sel = '{job="redox",vhost="%s"}' % VHOST

    # Both servers scraped, every series at 0, last_accepted never.
    prom.wait(lambda: len(prom.by('up{job="redox"} == 1', "instance")) == 2, "both targets up")
    prom.wait(lambda: prom.query('count(redox_verify_token_last_accepted_timestamp_seconds%s)'
                                 % sel) == [({}, 6.0)], "the series of both servers")
    assert prom.by('max by (name) (redox_verify_token_last_accepted_timestamp_seconds%s)'
                   % sel, "name") == {"prod": 0, "prod-2": 0, "old": 0}
    expiry = prom.by('redox_verify_token_expiry_timestamp_seconds%s' % sel, "instance")
    assert sorted(expiry.values()) == [1577836800, 1577836800]

    # The mix, split across the two (no refusal of a token holder yet).
    A = lambda tok: (lambda h: h.request("/redox/x", host=HOST, headers=both(tok)))  # noqa
    _send(one, 5, A(T["prod"]), 200)
    _send(one, 2, A(T["prod2"]), 200)
    _send(one, 2, lambda h: h.request("/redox/x", host=HOST), 401)
    _send(one, 1, lambda h: handshake_post(h, T["prod"], host=HOST, path="/redox/hs"), 200)
    _send(two, 3, A(T["prod"]), 200)
    _send(two, 4, A(T["prod2"]), 200)
    _send(two, 1, lambda h: h.request("/redox/x", host=HOST,
                                      headers=[bearer(T["prod"]), ("Authorization", "Bearer")]),
          401)
    _send(two, 2, lambda h: handshake_get(h, T["prod2"], host=HOST, path="/redox/hs"), 200)
    _send(two, 1, lambda h: handshake_get(h, None, host=HOST, path="/redox/hs"), 401)

    want_accepted = {"prod": 8, "prod-2": 6, "old": 0}
    # Each server is scraped on its own schedule: wait until a scrape of
    # both has seen everything sent to it (the last request to each is a
    # refusal), then every sum must be exact.
    want = {
        'sum by (name) (redox_verify_requests_accepted_total%s)': (
            "name", want_accepted),
        'sum by (reason) (redox_verify_requests_denied_total%s) > 0': (
            "reason", {"missing": 2, "malformed": 1}),
        'sum by (name) (redox_verify_handshakes_answered_total%s) > 0': (
            "name", {"prod": 1, "prod-2": 2}),
        'sum by (reason) (redox_verify_handshakes_refused_total%s) > 0': (
            "reason", {"missing": 1}),
    }
    per_server = {"127.0.0.1:%d" % one.port: 10.0, "127.0.0.1:%d" % two.port: 11.0}
    everything = ('sum by (instance) ({__name__=~"redox_verify_(requests_accepted|'
                  'requests_denied|handshakes_answered|handshakes_refused)_total",'
                  'job="redox",vhost="%s"})' % VHOST)
    prom.wait(lambda: prom.by(everything, "instance") == per_server,
              "a scrape of each server after all its requests")
    seen_at = time.time()
    for q, (label, values) in want.items():
        assert prom.by(q % sel, label) == values, q
    assert prom.by('sum by (instance) (redox_verify_requests_accepted_total%s)' % sel,
                   "instance") == {"127.0.0.1:%d" % one.port: 7.0,
                                   "127.0.0.1:%d" % two.port: 7.0}

    # last_accepted moved, to the latest accepted request's second.
    want_last = _last_accepted((one, two))
    assert set(want_last) == {"prod", "prod-2"}
    last = 'max by (name) (redox_verify_token_last_accepted_timestamp_seconds%s)' % sel
    got_last = prom.wait(lambda: (lambda g: g if g["prod"] and g["prod-2"] else None)(
        prom.by(last, "name")), "last_accepted to move")
    assert got_last == {**want_last, "old": 0}

    # The refused handshake alerts (shipped rule, no for:), once, not per
    # server; the refused-sender alert does not, in an evaluation that saw
    # the counts above.
    hs = prom.wait(lambda: prom.query('ALERTS{alertname="RedoxVerifyHandshakeRefused",'
                                      'alertstate="firing"}'), "the handshake alert")
    assert len(hs) == 1 and "instance" not in hs[0][0], hs
    assert hs[0][0]["vhost"] == VHOST and hs[0][0]["reason"] == "missing"
    prom.wait(lambda: prom.rules_evaluated_after(seen_at), "a rule evaluation after the mix")
    assert prom.query('ALERTS{alertname=~".*RedoxVerifySenderRefused"}') == []

    # The burst: wrong and expired tokens on both servers.
    _send(one, 3, A(T["wrong"]), 401)
    _send(one, 2, A(T["old"]), 401)
    _send(two, 2, A(T["wrong"]), 401)
    _send(two, 1, lambda h: h.request("/redox/x", host=HOST, headers=[vtok(T["old"]),
                                                                      bearer(T["old"])]), 401)
    firing = prom.wait(
        lambda: (lambda a: a if len(a) == 2 else None)(prom.query(
            'ALERTS{alertname="FleetTestRedoxVerifySenderRefused",alertstate="firing"}')),
        "the refused-sender alert")
    assert sorted(m["reason"] for m, _ in firing) == ["expired", "wrong-token"]
    for m, _ in firing:
        assert "instance" not in m and m["vhost"] == VHOST and m["severity"] == "critical", m
    # the shipped rule (for: 2m) sees the same, pending
    pending = prom.wait(lambda: prom.query('ALERTS{alertname="RedoxVerifySenderRefused",'
                                           'alertstate="pending"}'), "the shipped rule pending")
    assert {m["reason"] for m, _ in pending} <= {"expired", "wrong-token"}
    # the sums, once a scrape of each server has seen its whole burst
    per_server = {"127.0.0.1:%d" % one.port: 15.0, "127.0.0.1:%d" % two.port: 14.0}
    prom.wait(lambda: prom.by(everything, "instance") == per_server,
              "a scrape of each server after its burst")
    assert prom.by('sum by (reason) (redox_verify_requests_denied_total%s) > 0' % sel,
                   "reason") == {"missing": 2, "malformed": 1, "wrong-token": 5, "expired": 3}
    # refusals do not move last_accepted
    assert prom.by(last, "name") == {**want_last, "old": 0}
    print("fleet: accepted %s, denied %s, last_accepted %s, alerts %s" % (
        want_accepted, prom.by('sum by (reason) (redox_verify_requests_denied_total%s)' % sel,
                               "reason"), want_last, sorted(m["reason"] for m, _ in firing)))
