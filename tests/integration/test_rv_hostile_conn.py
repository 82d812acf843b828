"""Hostile input at the connection and message level, over raw sockets:
Expect: 100-continue, pipelining, request smuggling through a denied
request's body, chunked bodies, HTTP/1.0 and 0.9, odd request targets and
methods."""

import socket

import pytest

import rvhttpd
import rvraw
from rvhostile import Hostile

R = rvraw.request


@pytest.fixture(scope="module")
def srv(backend):
    yield from Hostile.serving("hostile-conn", backend)


def one(ex):
    assert len(ex.final) == 1 and not ex.interim, ex
    return ex.final[0]


def chunked(*pieces, trailers=()):
    out = b""
    for p in pieces:
        out += b"%x\r\n%s\r\n" % (len(p), p)
    out += b"0\r\n"
    for t in trailers:
        out += t.encode() + b"\r\n"
    return out + b"\r\n"


def smuggled(srv, rid):
    """A complete, valid request, to hide inside a denied request's body."""
    return R(target=srv.target(rid), lines=srv.good_lines(), close=False)


# ---------------------------------------------------------------------------
# Expect: 100-continue
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["no-token", "wrong-token", "handshake-json"])
def test_rv_hostile_expect_100_continue_denied_body_not_read(srv, case):
    """A denied request announcing 100 MB gets its 401 though the client
    never sends the body: no 100 Continue before it (httpd sends one as
    soon as anything starts reading the body, so nothing did), and the
    answer says Connection: close and the server closes, so it will not
    read the body to keep the connection either.  Nothing here depends on
    how fast the answer comes."""
    rid = rvhttpd.new_rid()
    lines = {"no-token": ["Content-Type: application/octet-stream"],
             "wrong-token": ["Content-Type: application/octet-stream",
                             "Authorization: Bearer " + srv.T["other"],
                             "verification-token: " + srv.T["other"]],
             # a handshake body is read only up to 4 KiB: this one is not read
             "handshake-json": ["Content-Type: application/json"]}[case]
    head = R(b"POST", srv.target(rid), close=False,
             lines=lines + ["Content-Length: 104857600", "Expect: 100-continue"])
    data, _, closed = rvraw.first_bytes(srv.http, head)
    assert data.startswith(b"HTTP/1.1 401 "), data[:200]
    assert b" 100 " not in data.split(b"\r\n", 1)[0] and b"100 Continue" not in data, data[:200]
    assert closed, "the server kept the connection open, waiting for the body"
    (resp,) = rvraw.parse_responses(data)
    assert (resp.header("Connection") or "").lower() == "close", resp.headers
    srv.assert_denied(rid, resp, 401, "wrong-token" if case == "wrong-token" else "missing")
    srv.assert_still_serving()


def test_rv_hostile_expect_100_continue_accepted_gets_continue(srv):
    """Control: with the token the client is told to go on, and the body
    arrives whole at the backend."""
    rid = rvhttpd.new_rid()
    body = b"x" * 70000
    head = R(b"POST", srv.target(rid), lines=srv.good_lines() + [
        "Content-Type: application/octet-stream", "Content-Length: %d" % len(body),
        "Expect: 100-continue"])
    sock = socket.create_connection(("127.0.0.1", srv.http), timeout=rvhttpd.WAIT)
    try:
        sock.sendall(head)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first[:200]
        sock.sendall(body)
        data = rvhttpd.read_until_close(sock, first)
    finally:
        sock.close()
    resps = rvraw.parse_responses(data)
    assert [r.status for r in resps] == [100, 200], resps
    rec = srv.assert_passed(rid, resps[1])
    assert rec.body == body


# ---------------------------------------------------------------------------
# pipelining and smuggling through a denied request's body
# ---------------------------------------------------------------------------
def test_rv_hostile_pipelined_valid_after_denied(srv):
    bad, good = rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(target=srv.target(bad), close=False)
                        + R(target=srv.target(good), lines=srv.good_lines()))
    assert [r.status for r in ex.responses] == [401, 200], ex
    srv.assert_denied(bad, ex.responses[0], 401, "missing")
    srv.assert_passed(good, ex.responses[1])


def test_rv_hostile_pipelined_valid_denied_valid(srv):
    a, b, c = rvhttpd.new_rid(), rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http,
                        R(target=srv.target(a), lines=srv.good_lines(), close=False)
                        + R(target=srv.target(b), close=False, lines=[
                            "Authorization: Bearer " + srv.T["alpha"],
                            "verification-token: " + srv.T["beta"]])
                        + R(target=srv.target(c), lines=srv.good_lines("beta")))
    assert [r.status for r in ex.responses] == [200, 401, 200], ex
    srv.assert_passed(a, ex.responses[0])
    srv.assert_denied(b, ex.responses[1], 401, "mismatch")
    srv.assert_passed(c, ex.responses[2], "beta")


def test_rv_hostile_keepalive_denied_then_valid(srv):
    """Not pipelined: the second request is sent after the 401 arrived."""
    bad, good = rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(target=srv.target(bad), close=False),
                        R(target=srv.target(good), lines=srv.good_lines()), one_by_one=True)
    assert [r.status for r in ex.responses] == [401, 200], ex
    srv.assert_denied(bad, ex.responses[0], 401, "missing")
    srv.assert_passed(good, ex.responses[1])


def assert_closed_after_denial(srv, ex, bad, good, status=401, reason="missing"):
    """A denied request with a body closes the connection (the module spares
    httpd reading the unwanted body): the pipelined request is not served."""
    assert [r.status for r in ex.responses] == [status], ex
    assert ex.closed, ex
    assert (ex.responses[0].header("Connection") or "").lower() == "close"
    srv.assert_denied(bad, ex.responses[0], status, reason)
    assert srv.backend_saw(good) == []
    srv.assert_still_serving()


def test_rv_hostile_denied_body_is_not_a_request_content_length(srv):
    """The body of a denied POST holds a complete valid request: it is never
    read as the next request."""
    bad, hidden, good = rvhttpd.new_rid(), rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http,
                        R(b"POST", srv.target(bad), body=smuggled(srv, hidden), close=False)
                        + R(target=srv.target(good), lines=srv.good_lines()))
    assert_closed_after_denial(srv, ex, bad, good)
    assert srv.backend_saw(hidden) == []


def test_rv_hostile_denied_body_is_not_a_request_chunked(srv):
    bad, hidden, good = rvhttpd.new_rid(), rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http,
                        R(b"POST", srv.target(bad), lines=["Transfer-Encoding: chunked"],
                          body=chunked(smuggled(srv, hidden)), content_length=False,
                          close=False)
                        + R(target=srv.target(good), lines=srv.good_lines()))
    assert_closed_after_denial(srv, ex, bad, good)
    assert srv.backend_saw(hidden) == []


def test_rv_hostile_denied_large_body_then_pipelined(srv):
    bad, good = rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http,
                        R(b"POST", srv.target(bad), body=b"y" * 65536, close=False)
                        + R(target=srv.target(good), lines=srv.good_lines()))
    assert_closed_after_denial(srv, ex, bad, good)


def test_rv_hostile_denied_without_body_keeps_connection(srv):
    """No body: the connection stays open and the pipelined request is
    served."""
    bad, good = rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http,
                        R(b"GET", srv.target(bad), close=False)
                        + R(target=srv.target(good), lines=srv.good_lines()))
    assert [r.status for r in ex.responses] == [401, 200], ex
    srv.assert_denied(bad, ex.responses[0], 401, "missing")
    srv.assert_passed(good, ex.responses[1])


# ---------------------------------------------------------------------------
# chunked bodies and Transfer-Encoding
# ---------------------------------------------------------------------------
def test_rv_hostile_chunked_accepted(srv):
    rid = rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(b"POST", srv.target(rid), content_length=False,
                                          lines=srv.good_lines()
                                          + ["Transfer-Encoding: chunked"],
                                          body=chunked(b"abc", b"defg", b"h" * 5000))))
    rec = srv.assert_passed(rid, resp)
    assert rec.body == b"abcdefg" + b"h" * 5000


def test_rv_hostile_chunked_denied(srv):
    rid = rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(b"POST", srv.target(rid), content_length=False,
                                          lines=["Transfer-Encoding: chunked"],
                                          body=chunked(b"abc", b"defg"))))
    srv.assert_denied(rid, resp, 401, "missing")
    srv.assert_still_serving()


def test_rv_hostile_chunked_token_only_in_trailer(srv):
    """Trailer fields arrive after the access check: they never count."""
    rid = rvhttpd.new_rid()
    t = srv.T["alpha"]
    resp = one(rvraw.exchange(srv.http, R(
        b"POST", srv.target(rid), content_length=False,
        lines=["Transfer-Encoding: chunked", "Trailer: Authorization, verification-token"],
        body=chunked(b"abc", trailers=["Authorization: Bearer " + t,
                                       "verification-token: " + t]))))
    srv.assert_denied(rid, resp, 401, "missing")
    srv.assert_still_serving()


def test_rv_hostile_chunked_malformed_denied(srv):
    """The module denies before the body is read and closes the connection,
    so httpd never reads the malformed body: the answer is the 401."""
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(b"POST", srv.target(rid), content_length=False,
                                    lines=["Transfer-Encoding: chunked"],
                                    body=b"zz\r\nabc\r\n0\r\n\r\n"))
    resp = one(ex)
    srv.assert_denied(rid, resp, 401, "missing")
    assert srv.access_fields(rid) == ("-", "missing", 401)
    assert ex.closed
    srv.assert_still_serving()


def test_rv_hostile_chunked_and_content_length(srv):
    """Both framings: httpd drops Content-Length and closes afterwards."""
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(b"POST", srv.target(rid), content_length=False, close=False,
                                    lines=["Content-Length: 5", "Transfer-Encoding: chunked"],
                                    body=chunked(b"abcde")))
    resp = one(ex)
    srv.assert_denied(rid, resp, 401, "missing")
    assert resp.header("Connection") == "close" and ex.closed, (resp, ex)
    srv.assert_still_serving()


@pytest.mark.parametrize("te,status,reason", [("gzip", 400, None), ("identity", 400, None),
                                              ("chunked, chunked", 401, "missing")])
def test_rv_hostile_transfer_encoding_without_token(srv, te, status, reason):
    """httpd refuses a Transfer-Encoding not ending in chunked itself; a
    doubled chunked gets past it and is denied by the module."""
    rid = rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(b"POST", srv.target(rid), content_length=False,
                                          lines=["Transfer-Encoding: " + te],
                                          body=chunked(b"abc"))))
    srv.assert_denied(rid, resp, status, reason)
    assert srv.access_fields(rid) == ("-", reason or "-", status)
    srv.assert_still_serving()


@pytest.mark.parametrize("cl", ["-1", "3, 4", "0x10", "1e3"])
def test_rv_hostile_content_length_refused_by_httpd(srv, cl):
    rid = rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(b"POST", srv.target(rid), content_length=False,
                                          lines=srv.good_lines() + ["Content-Length: " + cl],
                                          body=b"abcd")))
    srv.assert_denied(rid, resp, 400)
    assert srv.access_fields(rid) == ("-", "-", 400)
    srv.assert_still_serving()


# ---------------------------------------------------------------------------
# protocol versions, targets, methods
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("host", [True, False], ids=["with-host", "no-host"])
def test_rv_hostile_http10_accepted(srv, host):
    """HTTP/1.0, with or without Host (then the port's default vhost, which
    is protected too)."""
    rid = rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(target=srv.target(rid), version=b"HTTP/1.0",
                                          host=b"h.test" if host else None, close=False,
                                          lines=srv.good_lines())))
    srv.assert_passed(rid, resp)


@pytest.mark.parametrize("host", [True, False], ids=["with-host", "no-host"])
def test_rv_hostile_http10_denied(srv, host):
    rid = rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(target=srv.target(rid), version=b"HTTP/1.0",
                                          host=b"h.test" if host else None, close=False,
                                          lines=["verification-token: " + srv.T["alpha"]])))
    assert resp.version == b"HTTP/1.1"
    srv.assert_denied(rid, resp, 401, "missing")
    srv.assert_still_serving()


def test_rv_hostile_http09_denied(srv):
    """HTTP/0.9 has no headers, so no token: the 401 page comes back bare."""
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, ("GET %s\r\n" % srv.target(rid)).encode())
    (resp,) = ex.responses
    assert resp.status is None and b"<title>401 Unauthorized</title>" in resp.body, resp
    assert srv.backend_saw(rid) == []
    assert srv.access_fields(rid) == ("-", "missing", 401)
    srv.assert_still_serving()


def test_rv_hostile_absolute_form_target(srv):
    ok, bad = rvhttpd.new_rid(), rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(target="http://h.test" + srv.target(ok),
                                          lines=srv.good_lines())))
    srv.assert_passed(ok, resp)
    resp = one(rvraw.exchange(srv.http, R(target="http://h.test" + srv.target(bad))))
    srv.assert_denied(bad, resp, 401, "missing")


def test_rv_hostile_unknown_host_lands_on_protected_default(srv):
    rid = rvhttpd.new_rid()
    resp = one(rvraw.exchange(srv.http, R(target=srv.target(rid), host=b"unknown.example")))
    srv.assert_denied(rid, resp, 401, "missing")
    srv.assert_still_serving()


@pytest.mark.parametrize("method", ["HEAD", "PUT", "DELETE", "PATCH", "BREW"])
def test_rv_hostile_methods_denied(srv, method):
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(method=method, target=srv.target(rid),
                                    lines=["verification-token: " + srv.T["alpha"]]),
                        head_only=method == "HEAD")
    srv.assert_denied(rid, one(ex), 401, "missing")
    srv.assert_still_serving()


def test_rv_hostile_head_accepted(srv):
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(b"HEAD", srv.target(rid), lines=srv.good_lines()),
                        head_only=True)
    srv.assert_passed(rid, one(ex))


def test_rv_hostile_options_asterisk_answered_by_httpd(srv):
    """`OPTIONS *` names no resource: httpd answers it itself, before any
    access check, and nothing is proxied: the backend's next record is
    the valid request sent after it."""
    before = len(srv.backend.records)
    resp = one(rvraw.exchange(srv.http, R(b"OPTIONS", b"*")))
    assert resp.status == 200 and resp.body == b"", resp
    rec = srv.assert_still_serving()
    with srv.backend.lock:
        new = srv.backend.records[before:]
    assert new == [rec], new
