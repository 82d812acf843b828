"""Seam: httpd's own log lines.  httpd logs a request it refuses with the
URI as the client sent it (AH10244 for a path it cannot normalise, AH00026
for an encoded slash, at the default level or at info), some before any
module's hook has run (a bad header line, a request line too long).  In a
VirtualHost where a verified scope applies, no line of the error or access
log at LogLevel info (the suite's level) may contain a token, whoever
writes it."""

import pytest

import rvhttpd
import rvraw
import rvseams
from rvhttpd import new_token

T = {}


@pytest.fixture(scope="module")
def srv(backend):
    T["tok"] = new_token()
    T["hdr"] = new_token(6000)
    h = rvhttpd.Httpd("seams-errorlog", allowed=[
        r"AH10244: invalid URI path", r"AH00026: found %2f",
        r"AH00126: Invalid URI in request", r"AH10388",
    ])
    h.backend = backend
    h.write_conf("LimitRequestLine 1000\nLimitRequestFieldSize 1000\n" + rvhttpd.vhost(
        h.port, "errlog.test",
        rvhttpd.verified("/redox/", {"tok": T["tok"]}, proxy=(backend.port, "/redox/"))))
    yield from h.serve()


Q = "challenge=x&verification-token={t}"

# (id, request bytes, status): each refused by httpd itself.
CASES = [
    ("dot-dot", "GET /../redox/?" + Q + " HTTP/1.1", 400),
    ("bad-escape", "GET /redox/%zz?" + Q + " HTTP/1.1", 400),
    ("nul-escape", "GET /redox/%00?" + Q + " HTTP/1.1", 404),
    ("encoded-slash", "GET /redox/a%2fb?" + Q + " HTTP/1.1", 404),
    ("absolute-form", "GET http://errlog.test/redox/a%2fb?" + Q + " HTTP/1.1", 404),
    ("bad-header-line", "GET /redox/?" + Q + " HTTP/1.1\r\nThis is no header", 400),
    ("line-too-long", "GET /redox/?" + Q + "&pad=" + "p" * 1200 + " HTTP/1.1", 414),
    ("bad-protocol", "GET /redox/?" + Q + " HTTP/9", 400),
]


@pytest.mark.parametrize("name,line,status", CASES, ids=[c[0] for c in CASES])
def test_rv_seams_errorlog_refused_by_httpd(srv, name, line, status):
    t = T["tok"]
    rid = rvhttpd.new_rid()
    raw = (line.format(t=t).replace(" HTTP/", "&rid=%s HTTP/" % rid, 1).encode()
           + b"\r\nHost: errlog.test\r\nConnection: close\r\n\r\n")
    ex = rvraw.exchange(srv.port, raw)
    assert ex.final and ex.final[0].status == status, ex
    # the access log has the request (its line masked), so the grep below
    # looks at what httpd wrote for it
    lines = srv.access_lines('" %d ' % status)
    assert [l for l in lines if "REDACTED" in l or rid in l or name == "line-too-long"], lines
    rvseams.assert_nowhere(srv, [t], ex.data)


def test_rv_seams_errorlog_lines_seen(srv):
    """httpd did log those requests (so the greps above could fail): its
    own lines are there, masked."""
    text = srv.error_log_text()
    assert "AH10244" in text or "AH00126" in text, text[-3000:]
    assert "verification-token=REDACTED" in text
    rvseams.assert_nowhere(srv, [T["tok"]])


def test_rv_seams_errorlog_header_too_long(srv):
    """A token header over LimitRequestFieldSize: httpd says so with the
    header's name only."""
    t = T["hdr"]
    raw = rvraw.request(target="/redox/{}".format(rvhttpd.new_rid()), host="errlog.test",
                        lines=["verification-token: " + t, "Authorization: Bearer " + t])
    ex = rvraw.exchange(srv.port, raw)
    assert ex.final[0].status == 400, ex
    rvseams.assert_nowhere(srv, [t], ex.data)
