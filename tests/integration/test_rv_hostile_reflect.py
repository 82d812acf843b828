"""Error responses must not reflect request header values: denied requests
carry a distinctive marker in every header they send (the token headers
included), and neither the body nor a response header of the answer may
contain one."""

import json
import secrets

import pytest

import rvhttpd
import rvraw
from rvhostile import Hostile

R = rvraw.request


@pytest.fixture(scope="module")
def srv(backend):
    yield from Hostile.serving("hostile-reflect", backend, allowed=[rvhttpd.BAD_CHALLENGE_LOGGED])


def markers(n):
    tag = secrets.token_hex(4)
    return ["RvMark%d%sZ" % (i, tag) for i in range(n)]


def marked_lines(m, auth=None, vt=None):
    """Header lines whose values (and one name) are the markers."""
    return [
        "Authorization: " + (auth if auth is not None else "Bearer " + m[0]),
        "verification-token: " + (vt if vt is not None else m[1]),
        "User-Agent: Mozilla/5.0 " + m[2],
        "Referer: https://example.org/" + m[3],
        "Cookie: session=" + m[4],
        "Accept: text/html, " + m[5],
        "X-Forwarded-For: " + m[6],
        "X-Request-Note: <b>" + m[7] + "</b>",
        "X-" + m[8] + ": " + m[9],
    ]


def assert_not_reflected(resp, m):
    text = resp.body + "".join("%s: %s\n" % kv for kv in resp.headers).encode()
    found = [x for x in m if x.encode() in text or x.lower().encode() in text.lower()]
    assert not found, (found, resp)


# id: (Host, header lines(markers, T), status)
CASES = {
    "missing-401": ("h.test", lambda m, T: marked_lines(m)[2:], 401),
    "wrong-token-401": ("h.test", lambda m, T: marked_lines(m, vt=m[0]), 401),
    "mismatch-401": ("h.test", lambda m, T: marked_lines(m), 401),
    "malformed-401": ("h.test", lambda m, T: marked_lines(m, auth="Bearer " + m[0] + " "
                                                           + m[10]), 401),
    "valid-bearer-marked-vt-401": ("h.test", lambda m, T: marked_lines(
        m, auth="Bearer " + T["alpha"]), 401),
    "deny-status-403": ("d403.test", lambda m, T: marked_lines(m), 403),
    "deny-status-404": ("d404.test", lambda m, T: marked_lines(m), 404),
    "httpd-400-long-header": ("h.test", lambda m, T: marked_lines(m)
                              + ["X-Long-" + m[11] + ": " + m[12] * 700], 400),
    "httpd-400-bad-header-line": ("h.test", lambda m, T: marked_lines(m)
                                  + [m[11] + " no colon " + m[12]], 400),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rv_hostile_reflect_denied_headers(srv, case):
    host, build, status = CASES[case]
    m = markers(13)
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(target=srv.target(rid), host=host,
                                    lines=build(m, srv.T)))
    (resp,) = ex.final
    assert resp.status == status, resp
    assert srv.backend_saw(rid) == []
    assert_not_reflected(resp, m)
    srv.assert_still_serving()


def test_rv_hostile_reflect_handshake_bad_challenge(srv):
    """An accepted handshake token with a refused challenge: 400 that
    reflects neither the challenge nor any header."""
    m = markers(13)
    rid = rvhttpd.new_rid()
    body = json.dumps({"verification-token": srv.T["alpha"],
                       "challenge": "<i>" + m[10] + "</i>"}).encode()
    ex = rvraw.exchange(srv.http, R(b"POST", srv.target(rid), body=body, lines=[
        "Content-Type: application/json"] + marked_lines(m)[2:]))
    (resp,) = ex.final
    assert resp.status == 400, resp
    assert_not_reflected(resp, m)
    srv.assert_still_serving()


def test_rv_hostile_reflect_handshake_wrong_token(srv):
    m = markers(13)
    rid = rvhttpd.new_rid()
    body = json.dumps({"verification-token": m[10], "challenge": m[11]}).encode()
    ex = rvraw.exchange(srv.http, R(b"POST", srv.target(rid), body=body, lines=[
        "Content-Type: application/json"] + marked_lines(m)[2:]))
    (resp,) = ex.final
    assert resp.status == 401, resp
    assert_not_reflected(resp, m)
    srv.assert_still_serving()
