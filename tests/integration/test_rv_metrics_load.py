"""The counters are exact under concurrent load served by several child
processes, with prefork and with event: after a known mix of requests from
several client threads, every series equals the number of requests sent
with that outcome, and every other series is zero; each token's
last-accepted time is the latest request time of the requests and
handshakes accepted with it, whichever child served them."""

import random
import socket
import threading

import pytest

import rvhttpd
import rvmetrics
from rvhttpd import bearer, both, new_token, vtok
from rvmetrics import handshake_get, handshake_post

# Several children, and twice as many workers in all as there are client
# threads: the clients never take the last idle worker, which httpd
# reports at error level (AH00161, AH00484) however briefly it happens.
MPM_LIMITS = {
    "prefork": ("StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\n"
                "ServerLimit 16\nMaxRequestWorkers 16\n"),
    "event": ("StartServers 2\nServerLimit 2\nThreadLimit 8\nThreadsPerChild 8\n"
              "MinSpareThreads 1\nMaxSpareThreads 16\nMaxRequestWorkers 16\n"),
}
# Connections one child can hold at once (a prefork child serves one; an
# event child accepts only while it has an idle worker): one more than
# that, all accepted at the same time, are in at least two children.
PER_CHILD = {"prefork": 1, "event": 8}
CLIENTS = 8

T = {}


def _server(mpm, backend):
    for k in ("prod", "staging", "b", "wrong", "old"):
        T[k] = new_token()
    # the load is meant to keep every worker busy: httpd may say so (AH00484,
    # or the event MPM's earlier AH10159)
    h = rvhttpd.Httpd("metrics-load-" + mpm, mpm=mpm, allowed=rvmetrics.ALLOWED
                      + rvhttpd.CAPACITY_NOTICES + [
                          r"\[redox_verify:warn\].*RedoxVerificationToken old \(.*\) expired at"])
    h.backend = backend
    h.write_conf(
        MPM_LIMITS[mpm] + rvmetrics.PID_LOG + rvmetrics.TIME_LOG + rvhttpd.METRICS_LOCATION
        + rvhttpd.vhost(h.port, "a.test", rvhttpd.verified(
            "/redox/", [("prod", T["prod"]), ("staging", T["staging"]),
                        ("old", T["old"] + " expires=2020-01-01")], proxy=(backend.port, "/a/")))
        + rvhttpd.vhost(h.port, "b.test", rvhttpd.verified(
            "/redox/", {"prod": T["b"]}, proxy=(backend.port, "/b/"))))
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


def _held_in_two_children(h, n):
    """n accepted requests (prod on a.test) whose connections are all held
    open at once, their headers unfinished, until the server has accepted
    every one; then finished.  Returns their rids."""
    rids = [rvhttpd.new_rid() for _ in range(n)]
    socks = []
    try:
        for rid in rids:
            s = socket.create_connection(("127.0.0.1", h.port), timeout=rvhttpd.WAIT)
            socks.append(s)
            s.sendall(("GET /redox/held?rid=%s HTTP/1.1\r\nHost: a.test\r\n"
                       "Authorization: Bearer %s\r\nverification-token: %s\r\n"
                       "Connection: close\r\n" % (rid, T["prod"], T["prod"])).encode())
        for s in socks:
            rvhttpd.wait_accepted(s)
        for s in socks:
            s.sendall(b"\r\n")
        for s in socks:
            data = rvhttpd.read_until_close(s)
            assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    finally:
        for s in socks:
            s.close()
    return rids


@pytest.mark.parametrize("mpm", ["prefork", "event"])
def test_rv_metrics_exact_under_load(mpm, backend):
    h = _server(mpm, backend)
    try:
        a = "a.test:%d" % h.port
        b = "b.test:%d" % h.port
        before = rvmetrics.counts(h, host="a.test")
        assert rvmetrics.nonzero(before) == {}

        plan = _plan(a, b)
        held = _held_in_two_children(h, PER_CHILD[mpm] + 1)
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

        want = {("accepted", a, "prod"): len(held)}
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

        # The requests were spread over at least two child processes: the
        # held ones were, by construction.
        held_pids = {rvmetrics.wait_for(lambda: rvmetrics.pid_of(h, rid),
                                        what="the pid log line of " + rid) for rid in held}
        assert len(held_pids) >= 2, held_pids
        assert held_pids <= rvmetrics.pids_served(h)
    finally:
        h.stop()
