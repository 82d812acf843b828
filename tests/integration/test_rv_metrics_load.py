"""The counters are exact under concurrent load served by several child
processes, with prefork and with event: after a known mix of requests from
several client threads, every series equals the number of requests sent
with that outcome, and every other series is zero; each token's
last-accepted time is the latest request time of the requests and
handshakes accepted with it, whichever child served them."""

import random
import threading

import pytest

import rvhttpd
import rvmetrics
from rvhttpd import bearer, both, new_token, vtok
from rvmetrics import UUID, handshake_get, handshake_post

# Several children, each able to serve only a few connections at a time.
MPM_LIMITS = {
    "prefork": "StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\n",
    "event": ("StartServers 2\nServerLimit 2\nThreadLimit 4\nThreadsPerChild 4\n"
              "MinSpareThreads 1\nMaxSpareThreads 8\nMaxRequestWorkers 8\n"),
}
CLIENTS = 8

T = {}


def _server(mpm, backend):
    for k in ("prod", "staging", "b", "wrong", "old"):
        T[k] = new_token()
    # the load is meant to keep every worker busy: httpd may say so (AH00484)
    h = rvhttpd.Httpd("metrics-load-" + mpm, mpm=mpm, allowed=rvmetrics.ALLOWED + [
        r"AH00484: server reached MaxRequestWorkers",
        r"\[redox_verify:warn\].*RedoxVerificationToken old \(.*\) expired at"])
    h.backend = backend
    h.write_conf(MPM_LIMITS[mpm] + rvmetrics.PID_LOG + rvmetrics.TIME_LOG + """
<Location /metrics>
    SetHandler redox-verify-metrics
    Require ip 127.0.0.1
</Location>
<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken prod {prod}
        RedoxVerificationToken staging {staging}
        RedoxVerificationToken old {old} expires=2020-01-01
        ProxyPass http://127.0.0.1:{bp}/a/
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName b.test
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken prod {b}
        ProxyPass http://127.0.0.1:{bp}/b/
    </Location>
</VirtualHost>
""".format(port=h.port, bp=backend.port, **T))
    return h.start()


def _plan(a, b):
    """(how many, expected status, counter key, request function)."""
    A, B = "a.test", "b.test"
    return [
        (60, 200, ("accepted", a, "prod"),
         lambda h: h.request("/redox/x", host=A, headers=both(T["prod"]))),
        (40, 200, ("accepted", a, "staging"),
         lambda h: h.request("/redox/x", host=A, headers=both(T["staging"]))),
        (30, 200, ("accepted", b, "prod"),
         lambda h: h.request("/redox/x", host=B, headers=both(T["b"]))),
        (25, 401, ("denied", a, "wrong-token"),
         lambda h: h.request("/redox/x", host=A, headers=both(T["wrong"]))),
        (15, 401, ("denied", b, "wrong-token"),      # a's token is not b's
         lambda h: h.request("/redox/x", host=B, headers=both(T["prod"]))),
        (20, 401, ("denied", a, "missing"),
         lambda h: h.request("/redox/x", host=A)),
        (10, 401, ("denied", a, "malformed"),
         lambda h: h.request("/redox/x", host=A,
                             headers=[("Authorization", "Bearer"), vtok(T["prod"])])),
        (10, 401, ("denied", a, "mismatch"),
         lambda h: h.request("/redox/x", host=A,
                             headers=[bearer(T["prod"]), vtok(T["staging"])])),
        (12, 200, ("answered", a, "prod"),
         lambda h: handshake_post(h, T["prod"], host=A)),
        (8, 200, ("answered", a, "staging"),
         lambda h: handshake_get(h, T["staging"], host=A)),
        (6, 401, ("refused", a, "wrong-token"),
         lambda h: handshake_post(h, T["wrong"], host=A)),
        (5, 401, ("refused", a, "missing"),
         lambda h: handshake_get(h, None, host=A)),
        (7, 401, ("denied", a, "expired"),
         lambda h: h.request("/redox/x", host=A, headers=both(T["old"]))),
        (3, 401, ("refused", a, "expired"),
         lambda h: handshake_post(h, T["old"], host=A)),
        (4, 400, ("refused", a, "bad-challenge"),
         lambda h: handshake_post(h, T["prod"], challenge="not a challenge!", host=A)),
        # not checked at all: RedoxVerify is Off outside /redox/
        (10, 404, None, lambda h: h.request("/elsewhere", host=A)),
    ]


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_rv_metrics_exact_under_load(mpm, backend):
    h = _server(mpm, backend)
    try:
        a = "a.test:%d" % h.port
        b = "b.test:%d" % h.port
        before = rvmetrics.counts(h, host="a.test")
        assert rvmetrics.nonzero(before) == {}

        plan = _plan(a, b)
        jobs = [(status, key, fn) for n, status, key, fn in plan for _ in range(n)]
        random.Random(4242).shuffle(jobs)
        errors = []
        lock = threading.Lock()

        def client():
            while True:
                with lock:
                    if not jobs:
                        return
                    status, key, fn = jobs.pop()
                try:
                    r = fn(h)
                    if r.status != status:
                        errors.append((key, r.status, r.text[:200]))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append((key, repr(e)))

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:5]

        want = {}
        for n, _, key, _ in plan:
            if key is not None:
                want[key] = want.get(key, 0) + n
        got = rvmetrics.counts(h, host="a.test")
        assert rvmetrics.nonzero(got) == want
        # Every counter the configuration implies is there, and no other.
        names = {("accepted", a, "prod"), ("accepted", a, "staging"), ("accepted", a, "old"),
                 ("accepted", b, "prod")}
        for kind in ("accepted", "answered"):
            assert {k for k in got if k[0] == kind} == {(kind,) + k[1:] for k in names}
        # The main server (localhost), where no verified scope applies,
        # has no series.
        for kind, reasons in (("denied", rvmetrics.DENIED_REASONS),
                              ("refused", rvmetrics.REFUSED_REASONS)):
            assert {k for k in got if k[0] == kind} == {
                (kind, v, r) for v in (a, b) for r in reasons}

        # Last accepted: exactly the latest request time (in seconds) of
        # the requests and handshakes accepted with each token; 0 for old.
        seen = rvmetrics.last_accepted_from_log(h, h.port)
        assert set(seen) == {(k[1], k[2]) for k in names if k[2] != "old"}, seen
        g = rvmetrics.gauges(h, host="a.test")
        assert {k[1:]: v for k, v in g.items() if k[0] == "last_accepted"} == {
            **seen, (a, "old"): 0}
        assert {k[1:]: v for k, v in g.items() if k[0] == "expiry"} == {(a, "old"): 1577836800}

        # The requests were spread over at least two child processes.
        pids = rvmetrics.wait_for(
            lambda: len(rvmetrics.pids_served(h)) >= 2 and rvmetrics.pids_served(h),
            timeout=5, what="checked requests from two children")
        assert len(pids) >= 2, pids
    finally:
        h.stop()
