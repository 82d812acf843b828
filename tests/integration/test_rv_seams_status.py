"""Seam: mod_status's scoreboard copies every request line (up to 64
characters, ExtendedStatus is on when mod_status is loaded) when httpd
starts processing the request, before any access check, and shows it on
/server-status while the request is in flight and after it.  In a
VirtualHost where a verified scope applies, a query token must not be
there, whether the request lands in the scope or not (a 404, the
Location's path without its trailing slash); in other VirtualHosts the
query is left alone."""

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
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken tok {tok}
        ProxyPass http://127.0.0.1:{bp}/redox/
    </Location>
    <Location /server-status>
        SetHandler server-status
        RedoxVerify Off
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName other.test
    <Location /server-status>
        SetHandler server-status
    </Location>
</VirtualHost>
""".format(port=h.port, bp=hold.port, **T))
    h.start()
    yield h
    h.stop()


def status_page(srv, host="status.test", auto=False):
    r = srv.request("/server-status" + ("?auto" if auto else ""), host=host)
    assert r.status == 200
    return r.text


@pytest.mark.parametrize("path,want", [
    ("/n", 404),                # outside the scope
    ("/redox", 404),            # the Location's path without the slash
    ("/redox/", 200),           # in the scope: a handshake, answered
], ids=["404", "no-slash", "in-scope"])
def test_rv_seams_status_after_the_request(srv, path, want):
    t = T["tok"]
    target = "%s?verification-token=%s&challenge=%s" % (path, t, CHALLENGE)
    assert len("GET " + target) > 64 > len("GET %s?verification-token=%s" % (path, t))
    r = srv.request(target, host="status.test")
    assert r.status == want, r.text
    for auto in (False, True):
        page = status_page(srv, auto=auto)
        if not auto:
            # the request is there, with its token masked: the check could fail
            assert "GET %s?verification-token=REDACTED&amp;chall" % path in page, page[-3000:]
        rvseams.assert_nowhere(srv, [t], page)


def test_rv_seams_status_in_flight(srv, hold):
    """A verified request with the token in its query, shown while the
    backend still holds it."""
    t = T["tok"]
    hold.arrived.clear()
    result = {}

    def send():
        result["r"] = srv.request("/redox/hold?verification-token=%s" % t,
                                  host="status.test", headers=both(t))
    th = threading.Thread(target=send)
    th.start()
    try:
        assert hold.arrived.wait(15), "the request did not reach the backend"
        page = status_page(srv)
        assert "/redox/hold?verification-token=REDACTED" in page, page[:3000]
        rvseams.assert_nowhere(srv, [t], page)
    finally:
        hold.release()
        th.join(20)
    r = result["r"]
    assert r.status == 200
    rec = r.backend_requests[0]
    assert "verification-token=REDACTED" in rec.path
    rvseams.assert_nowhere(srv, [t], r.text)


def test_rv_seams_status_other_vhost_left_alone(srv):
    """No verified scope applies in other.test: its applications' query
    parameters are theirs, even one named verification-token."""
    r = srv.request("/x?verification-token=an-app-value", host="other.test")
    assert r.status == 404
    page = status_page(srv, host="other.test")
    assert "verification-token=an-app-value" in page, page[:3000]
    assert "/x?verification-token=an-app-value" in "".join(
        srv.access_lines(r.rid))
