"""Seam: mod_status's scoreboard copies every request line (up to 64
characters, ExtendedStatus is on when mod_status is loaded) when httpd
starts processing the request, before any access check, and shows it on
/server-status while the request is in flight and after it.  In a
VirtualHost where a verified scope applies, a query token must not be
there, whether the request lands in the scope or not (outside it, the
Location's path without its trailing slash); in other VirtualHosts the
query is left alone.  Each request is held by the backend while the page
is read: a finished request's line stays in its worker's slot only until
the worker takes the next one."""

import threading

import pytest

import rvhttpd
import rvseams
from rvhttpd import both, new_token

T = {}
CHALLENGE = "0d6f3f8e-6a0b-4f56-8a2e-3f4c1b2a9d77"


@pytest.fixture(scope="module")
def hold():
    b = rvseams.HoldBackend().start()
    yield b
    b.release()
    b.stop()


@pytest.fixture(scope="module")
def srv(hold):
    # short enough that the whole request line, token included, fits in
    # the scoreboard's 64 characters
    T["tok"] = new_token(16)
    h = rvhttpd.Httpd("seams-status")
    h.backend = hold
    h.write_conf(rvseams.load_modules(("status_module", "mod_status.so")) + """
ExtendedStatus On
<VirtualHost 127.0.0.1:{port}>
    ServerName status.test
    ProxyPassMatch "^/redox$" http://127.0.0.1:{bp}/noslash
    ProxyPass /redox/ http://127.0.0.1:{bp}/redox/
    ProxyPass /o/ http://127.0.0.1:{bp}/o/
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken tok {tok}
    </Location>
    <Location /server-status>
        SetHandler server-status
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName other.test
    ProxyPass /o/ http://127.0.0.1:{bp}/o/
    <Location /server-status>
        SetHandler server-status
    </Location>
</VirtualHost>
""".format(port=h.port, bp=hold.port, **T))
    yield from h.serve()


def status_page(srv, host="status.test", auto=False):
    status, _, body = rvhttpd.http_request(
        srv.port, "/server-status" + ("?auto" if auto else ""), host=host)
    assert status == 200
    return body.decode("utf-8", "replace")


def in_flight(srv, hold, target, host="status.test", headers=()):
    """Sends target and, while the backend holds it, returns the status
    page (HTML and ?auto); then lets it finish.  Returns (pages, response)."""
    hold.released.clear()
    hold.arrived.clear()
    result = {}

    def send():
        status, hdrs, body = rvhttpd.http_request(srv.port, target, host=host,
                                                  headers=list(headers))
        result["r"] = (status, body)
    th = threading.Thread(target=send)
    th.start()
    try:
        assert hold.arrived.wait(15), "the request did not reach the backend"
        pages = [status_page(srv, host), status_page(srv, host, auto=True)]
    finally:
        hold.release()
        th.join(20)
    return pages, result["r"]


@pytest.mark.parametrize("target", [
    "/o/hold?verification-token={t}&challenge=" + CHALLENGE,     # outside the scope
    "/redox?verification-token={t}&hold=1",                     # without the slash
], ids=["outside", "no-slash"])
def test_rv_seams_status_outside_the_scope(srv, hold, target):
    t = T["tok"]
    target = target.format(t=t)
    assert len("GET " + target.split("&")[0]) < 64
    pages, (status, body) = in_flight(srv, hold, target)
    assert status == 200
    # the request is there, with its token masked: the check could fail
    assert "verification-token=REDACTED" in pages[0], pages[0][-3000:]
    rvseams.assert_nowhere(srv, [t], pages, status_page(srv), body)


def test_rv_seams_status_in_scope(srv, hold):
    """A verified request with the token in its query, shown while the
    backend still holds it."""
    t = T["tok"]
    pages, (status, body) = in_flight(srv, hold, "/redox/hold?verification-token=%s" % t,
                                      headers=both(t))
    assert status == 200
    assert "/redox/hold?verification-token=REDACTED" in pages[0], pages[0][-3000:]
    rec = [r for r in hold.records if r.path.startswith("/redox/hold")][-1]
    assert "verification-token=REDACTED" in rec.path
    rvseams.assert_nowhere(srv, [t], pages, status_page(srv), body)


def test_rv_seams_status_other_vhost_left_alone(srv, hold):
    """No verified scope applies in other.test: its applications' query
    parameters are theirs, even one named verification-token."""
    pages, (status, _) = in_flight(srv, hold, "/o/hold?verification-token=app-value",
                                   host="other.test")
    assert status == 200
    assert "/o/hold?verification-token=app-value" in pages[0], pages[0][-3000:]
    rec = [r for r in hold.records if "app-value" in r.path]
    assert rec and rec[-1].path == "/o/hold?verification-token=app-value"
