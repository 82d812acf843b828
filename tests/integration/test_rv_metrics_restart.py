"""Counter semantics across restarts, as the manual's "Metrics" says:

- graceful restart (apachectl graceful): every series that is still
  configured keeps counting where it was, including requests that children
  of the old generation finish after the restart;
- a configuration change: new series start at 0, removed ones disappear,
  one configured again resumes its count;
- a configuration that outgrows the shared memory gets a new segment and
  keeps every count;
- hard restart (apachectl restart) and stop/start: every series starts
  from 0.

The tests share one server per MPM; each checks what changed while it
ran, so none depends on the order they run in."""

import os
import socket

import time

import pytest

import rvhttpd
import rvmetrics
from rvhttpd import both, new_token

T = {}
A = "a.test"
RESET_LINE = "counters start from zero"


def _conf(h, backend, names=("prod", "staging"), extra_vhost=False, many=0):
    tokens = [(n, T[n]) for n in names]
    tokens += [("bulk%d" % i, "sha256:%064x" % (i + 1)) for i in range(many)]
    body = (rvmetrics.PID_LOG + "StartServers 2\n" + rvhttpd.METRICS_LOCATION
            + rvhttpd.vhost(h.port, "a.test", rvhttpd.verified(
                "/redox/", tokens, proxy=(backend.port, "/a/"))))
    if extra_vhost:
        body += rvhttpd.vhost(h.port, "c.test", rvhttpd.verified(
            "/redox/", {"cprod": T["cprod"]}, proxy=(backend.port, "/c/")))
    h.write_conf(body)


@pytest.fixture(scope="module", params=["prefork", "event"])
def rs(request, backend):
    for k in ("prod", "staging", "cprod", "wrong"):
        T[k] = new_token()
    h = rvhttpd.Httpd("metrics-restart-" + request.param, mpm=request.param)
    h.backend = backend
    h.reconf = lambda **kw: _conf(h, backend, **kw)
    h.reconf()
    h.start()
    # what the server reports before any test has sent anything, whichever
    # test runs first
    h.at_startup = (_counts(h), len(h.error_lines(RESET_LINE)))
    yield h
    h.stop()


def _counts(h):
    return rvmetrics.counts(h, host=A)


def _send(h, token, n=1, host=A):
    for _ in range(n):
        r = h.request("/redox/x", host=host, headers=both(token))
        assert r.status == (200 if token != T["wrong"] else 401), r


def test_rv_metrics_restart_startup_starts_from_zero(rs):
    counts, resets = rs.at_startup
    assert counts and rvmetrics.nonzero(counts) == {}
    assert resets == 1


def test_rv_metrics_restart_graceful_keeps_counters(rs):
    a = "a.test:%d" % rs.port
    _send(rs, T["prod"], 3)
    _send(rs, T["wrong"], 2)
    before = _counts(rs)
    assert before[("accepted", a, "prod")] >= 3
    resets = len(rs.error_lines(RESET_LINE))
    rvmetrics.restart(rs, "graceful")
    for _ in range(5):                      # old or new children alike
        assert _counts(rs) == before
    _send(rs, T["prod"])
    after = _counts(rs)
    assert after[("accepted", a, "prod")] == before[("accepted", a, "prod")] + 1
    assert len(rs.error_lines(RESET_LINE)) == resets


def test_rv_metrics_restart_graceful_counts_request_in_flight(rs):
    """A request an old child is still reading when the restart happens is
    checked by that child after the restart, and counted where the new
    generation reads."""
    a = "a.test:%d" % rs.port
    before = _counts(rs)[("accepted", a, "prod")]
    s = socket.create_connection(("127.0.0.1", rs.port), timeout=rvhttpd.WAIT)
    try:
        rid = rvhttpd.new_rid()
        s.sendall(("GET /redox/inflight?rid=%s HTTP/1.1\r\nHost: a.test\r\n"
                   "Authorization: Bearer %s\r\nverification-token: %s\r\n"
                   "Connection: close\r\n" % (rid, T["prod"], T["prod"])).encode())
        rvhttpd.wait_accepted(s)            # a child is reading the headers
        rvmetrics.restart(rs, "graceful")
        s.sendall(b"\r\n")
        data = rvhttpd.read_until_close(s)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    # It was served by a child of the old generation, which then exits.
    pid = rvmetrics.wait_for(lambda: rvmetrics.pid_of(rs, rid), what="the pid log line")
    rvmetrics.wait_for(lambda: not os.path.exists("/proc/%d" % pid)
                       or "Z" == open("/proc/%d/stat" % pid).read().split(")")[-1].split()[0],
                       what="the old child %d to exit" % pid)
    assert _counts(rs)[("accepted", a, "prod")] == before + 1


def test_rv_metrics_restart_configuration_change(rs, backend):
    a = "a.test:%d" % rs.port
    c = "c.test:%d" % rs.port
    _send(rs, T["staging"], 2)
    before = _counts(rs)
    staging = before[("accepted", a, "staging")]
    assert staging >= 2

    # remove staging, add a token and a VirtualHost
    T["new"] = new_token()
    rs.reconf(names=("prod", "new"), extra_vhost=True)
    rvmetrics.restart(rs, "graceful")
    got = rvmetrics.wait_for(lambda: (lambda x: x if ("accepted", c, "cprod") in x else None)(
        _counts(rs)), what="the new configuration's series")
    assert ("accepted", a, "staging") not in got
    assert ("answered", a, "staging") not in got
    assert got[("accepted", a, "new")] == 0
    assert got[("accepted", c, "cprod")] == 0
    assert got[("denied", c, "missing")] == 0
    for k, v in before.items():
        if k[2] != "staging":
            assert got[k] == v, k
    _send(rs, T["cprod"], host="c.test")
    _send(rs, T["new"])
    got = _counts(rs)
    assert got[("accepted", c, "cprod")] == 1 and got[("accepted", a, "new")] == 1

    # staging configured again: it resumes its count; c.test goes away
    rs.reconf()
    rvmetrics.restart(rs, "graceful")
    got = rvmetrics.wait_for(lambda: (lambda x: x if ("accepted", a, "staging") in x else None)(
        _counts(rs)), what="staging again")
    assert got[("accepted", a, "staging")] == staging
    assert not [k for k in got if k[1] == c]


def test_rv_metrics_restart_configuration_outgrows_segment(rs):
    a = "a.test:%d" % rs.port
    before = _counts(rs)
    rs.reconf(many=400)
    rvmetrics.restart(rs, "graceful")
    got = rvmetrics.wait_for(lambda: (lambda x: x if ("accepted", a, "bulk399") in x else None)(
        _counts(rs)), what="the bulk tokens")
    # and one last-accepted gauge per accepted counter (no token expires)
    series = len(got) + sum(1 for k in got if k[0] == "accepted")
    assert rs.error_lines("redox_verify: %d series" % series)[-1].endswith(
        "in 2 shared memory segment(s)")
    for k, v in before.items():
        assert got[k] == v, k
    _send(rs, T["prod"])
    assert _counts(rs)[("accepted", a, "prod")] == before[("accepted", a, "prod")] + 1
    rs.reconf()
    rvmetrics.restart(rs, "graceful")


def test_rv_metrics_restart_hard_restart_resets(rs):
    _send(rs, T["prod"])
    assert rvmetrics.nonzero(_counts(rs))
    resets = len(rs.error_lines(RESET_LINE))
    rvmetrics.restart(rs, "restart")
    assert rvmetrics.nonzero(_counts(rs)) == {}
    lines = rvmetrics.wait_for(lambda: (lambda x: x if len(x) > resets else None)(
        rs.error_lines(RESET_LINE)), what="the reset line")
    assert lines[-1].endswith("in 1 shared memory segment(s)")
    _send(rs, T["prod"])
    assert rvmetrics.nonzero(_counts(rs)) == {("accepted", "a.test:%d" % rs.port, "prod"): 1}


def test_rv_metrics_restart_last_accepted(rs):
    """last_accepted is kept like the counters: a graceful restart keeps it
    (whichever generation's child answers the scrape), a hard restart
    starts it from 0 ("never since the last hard start")."""
    a = "a.test:%d" % rs.port
    last = lambda: rvmetrics.gauges(rs, host=A)[("last_accepted", a, "prod")]  # noqa: E731
    _send(rs, T["prod"])
    stamp = last()
    assert stamp >= int(time.time()) - 60
    assert rvmetrics.gauges(rs, host=A)[("last_accepted", a, "staging")] >= 0
    rvmetrics.restart(rs, "graceful")
    for _ in range(5):
        assert last() == stamp
    _send(rs, T["prod"])
    assert last() >= stamp
    rvmetrics.restart(rs, "restart")
    assert last() == 0
    assert rvmetrics.gauges(rs, host=A)[("last_accepted", a, "staging")] == 0
    _send(rs, T["prod"])
    assert last() >= stamp
