"""The endpoint-verification handshake under hostile input: JSON bodies that
are deeply nested, hold huge numbers, NUL escapes, invalid UTF-8, duplicate
keys or trailing data; challenges built to be reflected; query strings with
NULs and duplicates; and a handshake URL that httpd refuses before the module
runs (its token must still stay out of the access log)."""

import json

import pytest

import rvhttpd
import rvraw
from rvhostile import CHALLENGE_HEADER, Hostile

R = rvraw.request
UUID = rvhttpd.HANDSHAKE_UUID
JSON = "application/json"


@pytest.fixture(scope="module")
def srv(backend):
    yield from Hostile.serving("hostile-handshake", backend, allowed=[rvhttpd.BAD_CHALLENGE_LOGGED])


def obj(token, challenge=UUID, **extra):
    d = {"verification-token": token, "challenge": challenge}
    d.update(extra)
    return json.dumps(d).encode()


def raw(fmt, token, challenge=UUID):
    """fmt with {t} and {c} replaced by the raw (unescaped) strings."""
    return fmt.replace("{t}", token).replace("{c}", challenge).encode()


def changed(t, i):
    c = "A" if t[i] != "A" else "B"
    return t[:i] + c + t[i + 1:]


def pad_to(body, n):
    """body (a JSON object) with whitespace before its closing brace, n bytes."""
    assert body.endswith(b"}") and len(body) <= n
    return body[:-1] + b" " * (n - len(body)) + b"}"


LONG_CHALLENGE = ("c" * 128)
NESTED_1900 = "[" * 1900 + "]" * 1900

# id: (body(t), Content-Type, status, reason)
#   200: answered with the challenge; 400: accepted token, challenge refused;
#   401 "missing": not a handshake, so a request without token headers;
#   401 "handshake ...": a handshake with a refused token
CASES = {
    # -- answered ------------------------------------------------------------------
    "valid": (lambda t: obj(t), JSON, 200, None),
    "members-reordered-with-extras": (lambda t: raw(
        '{"challenge":"{c}","x":[1,{"y":null}],"verification-token":"{t}"}', t),
        JSON, 200, None),
    "token-written-as-unicode-escapes": (lambda t: raw(
        '{"verification-token":"%s","challenge":"{c}"}' % "".join("\\u%04x" % ord(ch)
                                                                   for ch in t), t),
        JSON, 200, None),
    "key-written-with-escape": (lambda t: raw(
        '{"verification\\u002dtoken":"{t}","challenge":"{c}"}', t), JSON, 200, None),
    "nesting-1900-deep-in-extra-member": (lambda t: raw(
        '{"verification-token":"{t}","challenge":"{c}","n":%s}' % NESTED_1900, t),
        JSON, 200, None),
    "tiny-real-member": (lambda t: raw('{"verification-token":"{t}","challenge":"{c}",'
                                       '"n":1e-99999}', t), JSON, 200, None),
    "body-exactly-4096-bytes": (lambda t: pad_to(obj(t), 4096), JSON, 200, None),
    "content-type-with-charset": (lambda t: obj(t), "application/json; charset=utf-8", 200,
                                  None),
    "content-type-uppercase": (lambda t: obj(t), "APPLICATION/JSON", 200, None),
    "content-type-structured-suffix": (lambda t: obj(t), "application/vnd.redox+json", 200,
                                       None),
    "challenge-128-characters": (lambda t: obj(t, LONG_CHALLENGE), JSON, 200, None),
    # -- token accepted, challenge refused and never reflected ----------------------
    "challenge-crlf-header-injection": (lambda t: obj(t, "x\r\nSet-Cookie: rvinject=1"), JSON,
                                        400, "bad-challenge"),
    "challenge-html": (lambda t: obj(t, "<script>rvinject()</script>"), JSON, 400,
                       "bad-challenge"),
    "challenge-129-characters": (lambda t: obj(t, LONG_CHALLENGE + "c"), JSON, 400,
                                 "bad-challenge"),
    "challenge-empty": (lambda t: obj(t, ""), JSON, 400, "bad-challenge"),
    "challenge-non-ascii": (lambda t: obj(t, "rvinject\u00e9"), JSON, 400, "bad-challenge"),
    "challenge-percent-encoded-crlf": (lambda t: obj(t, "rvinject%0d%0a"), JSON, 400,
                                       "bad-challenge"),
    # -- not a handshake: denied as a request without token headers ----------------
    "nesting-beyond-parser-limit": (lambda t: b"[" * 4000, JSON, 401, "missing"),
    "handshake-wrapped-in-arrays": (lambda t: b"[" * 100 + obj(t) + b"]" * 100, JSON, 401,
                                    "missing"),
    "huge-integer-member": (lambda t: raw('{"verification-token":"{t}","challenge":"{c}",'
                                          '"n":1%s}' % ("0" * 1000), t), JSON, 401, "missing"),
    "huge-real-member": (lambda t: raw('{"verification-token":"{t}","challenge":"{c}",'
                                       '"n":1e99999}', t), JSON, 401, "missing"),
    "huge-negative-integer-member": (lambda t: raw(
        '{"verification-token":"{t}","challenge":"{c}","n":-9%s}' % ("9" * 3000), t),
        JSON, 401, "missing"),
    "token-is-a-number": (lambda t: raw('{"verification-token":1e400,"challenge":"{c}"}', t),
                          JSON, 401, "missing"),
    "token-is-null": (lambda t: raw('{"verification-token":null,"challenge":"{c}"}', t), JSON,
                      401, "missing"),
    "token-is-an-array": (lambda t: raw('{"verification-token":["{t}"],"challenge":"{c}"}', t),
                          JSON, 401, "missing"),
    "nul-escape-after-token": (lambda t: raw('{"verification-token":"{t}\\u0000x",'
                                             '"challenge":"{c}"}', t), JSON, 401, "missing"),
    "nul-escape-before-token": (lambda t: raw('{"verification-token":"\\u0000{t}",'
                                              '"challenge":"{c}"}', t), JSON, 401, "missing"),
    "nul-escape-in-challenge": (lambda t: raw('{"verification-token":"{t}",'
                                              '"challenge":"{c}\\u0000"}', t), JSON, 401,
                                "missing"),
    "raw-nul-byte-in-token": (lambda t: raw('{"verification-token":"{t}\x00",'
                                            '"challenge":"{c}"}', t), JSON, 401, "missing"),
    "raw-control-byte-in-challenge": (lambda t: raw('{"verification-token":"{t}",'
                                                    '"challenge":"{c}\x01"}', t), JSON, 401,
                                      "missing"),
    "invalid-utf8-in-challenge": (lambda t: raw('{"verification-token":"{t}","challenge":"',
                                                t) + b"\xff\xfe" + UUID.encode() + b'"}',
                                  JSON, 401, "missing"),
    "invalid-utf8-in-token": (lambda t: b'{"verification-token":"' + t.encode() + b"\xc3"
                              + b'","challenge":"' + UUID.encode() + b'"}', JSON, 401,
                              "missing"),
    "overlong-utf8-slash": (lambda t: b'{"verification-token":"' + t.encode() + b"\xc0\xaf"
                            + b'","challenge":"' + UUID.encode() + b'"}', JSON, 401,
                            "missing"),
    "lone-surrogate-escape": (lambda t: raw('{"verification-token":"{t}",'
                                            '"challenge":"\\ud800{c}"}', t), JSON, 401,
                              "missing"),
    "utf8-bom-before-object": (lambda t: b"\xef\xbb\xbf" + obj(t), JSON, 401, "missing"),
    "duplicate-token-key": (lambda t: raw('{"verification-token":"wrong","challenge":"{c}",'
                                          '"verification-token":"{t}"}', t), JSON, 401,
                            "missing"),
    "duplicate-challenge-key": (lambda t: raw('{"verification-token":"{t}","challenge":"{c}",'
                                              '"challenge":"{c}"}', t), JSON, 401, "missing"),
    "trailing-data": (lambda t: obj(t) + b"x", JSON, 401, "missing"),
    "two-objects": (lambda t: obj(t) + obj(t), JSON, 401, "missing"),
    "comment-inside": (lambda t: raw('{"verification-token":"{t}",/* c */"challenge":"{c}"}',
                                     t), JSON, 401, "missing"),
    "single-quotes": (lambda t: raw("{'verification-token':'{t}','challenge':'{c}'}", t),
                      JSON, 401, "missing"),
    "key-case-differs": (lambda t: raw('{"Verification-Token":"{t}","challenge":"{c}"}', t),
                         JSON, 401, "missing"),
    "top-level-string": (lambda t: json.dumps(t).encode(), JSON, 401, "missing"),
    "empty-body": (lambda t: b"", JSON, 401, "missing"),
    "body-4097-bytes": (lambda t: pad_to(obj(t), 4097), JSON, 401, "missing"),
    "content-type-text-plain": (lambda t: obj(t), "text/plain", 401, "missing"),
    "content-type-jsonx": (lambda t: obj(t), "application/jsonx", 401, "missing"),
    "content-type-absent": (lambda t: obj(t), None, 401, "missing"),
    # -- a handshake with a token that is refused ------------------------------------
    "token-first-char-changed": (lambda t: obj(changed(t, 0)), JSON, 401,
                                 "handshake wrong-token"),
    "token-last-char-changed": (lambda t: obj(changed(t, len(t) - 1)), JSON, 401,
                                "handshake wrong-token"),
    "token-prefix": (lambda t: obj(t[:-1]), JSON, 401, "handshake wrong-token"),
    "token-extension": (lambda t: obj(t + "A"), JSON, 401, "handshake wrong-token"),
    "token-with-spaces-around": (lambda t: obj(" %s " % t), JSON, 401,
                                 "handshake wrong-token"),
    "token-empty": (lambda t: obj(""), JSON, 401, "handshake missing"),
}


def check(srv, rid, resp, status, reason, challenge=UUID):
    """The handshake's answer: the bare challenge, or a denial that reflects
    nothing the client sent."""
    assert resp.status == status, (resp, srv.h.error_log_tail(5))
    assert srv.backend_saw(rid) == [], srv.backend_saw(rid)
    src, ver, logged = srv.access_fields(rid)
    assert logged == status
    if status == 200:
        assert resp.body == challenge.encode(), resp
        assert resp.header("Content-Type") == "text/plain", resp.headers
        assert (src, ver) == ("alpha", "handshake")
        return
    assert b"rvinject" not in resp.body and challenge.encode() not in resp.body, resp
    assert not [k for k, v in resp.headers if "rvinject" in k.lower() + v.lower()], resp.headers
    if status == 400:
        lines = srv.denial_lines(rid)
        assert lines and "handshake refused bad-challenge" in lines[-1], lines
        assert (src, ver) == ("alpha", "bad-challenge")
    else:
        srv.assert_denied(rid, resp, status, reason)
        assert resp.header_values("WWW-Authenticate") == [CHALLENGE_HEADER[reason.split()[-1]]]
        assert (src, ver) == ("-", reason.split()[-1])


# A handshake with the expired token gone: refused as expired before its
# challenge is looked at (never reflected, bad or not); variants of it are
# wrong tokens.  id: (body(gone), status, reason)
EXPIRED = {
    "expired-token": (lambda g: obj(g), 401, "handshake expired"),
    "expired-token-bad-challenge": (lambda g: obj(g, "<script>rvinject()</script>"), 401,
                                    "handshake expired"),
    "expired-token-unicode-escaped": (lambda g: raw(
        '{"verification-token":"%s","challenge":"{c}"}' % "".join("\\u%04x" % ord(ch)
                                                                   for ch in g), g),
        401, "handshake expired"),
    "expired-token-last-char-changed": (lambda g: obj(changed(g, len(g) - 1)), 401,
                                        "handshake wrong-token"),
    "expired-token-extension": (lambda g: obj(g + "A"), 401, "handshake wrong-token"),
}


@pytest.mark.parametrize("case", list(EXPIRED))
def test_rv_hostile_handshake_expired_post(srv, case):
    build, status, reason = EXPIRED[case]
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(b"POST", srv.target(rid), lines=["Content-Type: " + JSON],
                                    body=build(srv.T["gone"])))
    assert len(ex.final) == 1, ex
    check(srv, rid, ex.final[0], status, reason)
    srv.assert_still_serving()


def test_rv_hostile_handshake_expired_get(srv):
    rid = rvhttpd.new_rid()
    ex = rvraw.exchange(srv.http, R(b"GET", srv.target(rid, "?challenge=%s&verification-token=%s"
                                                          % (UUID, srv.T["gone"]))))
    assert len(ex.final) == 1, ex
    check(srv, rid, ex.final[0], 401, "handshake expired")
    assert srv.T["gone"] not in "\n".join(srv.h.access_lines(rid))
    srv.assert_still_serving()


@pytest.mark.parametrize("case", list(CASES))
def test_rv_hostile_handshake_post(srv, case):
    build, ctype, status, reason = CASES[case]
    rid = rvhttpd.new_rid()
    lines = ["Content-Type: " + ctype] if ctype else []
    ex = rvraw.exchange(srv.http, R(b"POST", srv.target(rid), lines=lines,
                                    body=build(srv.T["alpha"])))
    assert len(ex.final) == 1, ex
    challenge = LONG_CHALLENGE if case == "challenge-128-characters" else UUID
    check(srv, rid, ex.final[0], status, reason, challenge)
    srv.assert_still_serving()


@pytest.mark.parametrize("size", [None, 4096, 5000], ids=["small", "4096", "over-4k"])
def test_rv_hostile_handshake_chunked(srv, size):
    """A chunked body in 7-byte chunks (split mid-token): read whole up to
    4 KiB; a larger one is not a handshake (and not read past 4 KiB)."""
    rid = rvhttpd.new_rid()
    body = obj(srv.T["alpha"])
    body = pad_to(body, size) if size else body
    pieces = [body[i:i + 7] for i in range(0, len(body), 7)]
    data = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    ex = rvraw.exchange(srv.http, R(b"POST", srv.target(rid), content_length=False, lines=[
        "Content-Type: application/json", "Transfer-Encoding: chunked"], body=data))
    assert len(ex.final) == 1, ex
    if len(body) <= 4096:
        check(srv, rid, ex.final[0], 200, None)
    else:
        check(srv, rid, ex.final[0], 401, "missing")
    srv.assert_still_serving()


# ---------------------------------------------------------------------------
# GET handshake: the token is in the query
# ---------------------------------------------------------------------------
def enc(s):
    return "".join("%%%02X" % ord(c) for c in s)


GET_CASES = {
    "valid": (lambda t: "challenge=%s&verification-token=%s" % (UUID, t), 200, None),
    "token-fully-percent-encoded": (lambda t: "verification-token=%s&challenge=%s"
                                    % (enc(t), UUID), 200, None),
    "percent-nul-after-token": (lambda t: "challenge=%s&verification-token=%s%%00"
                                % (UUID, t), 401, "missing"),
    "token-twice": (lambda t: "challenge=%s&verification-token=%s&verification-token=%s"
                    % (UUID, t, t), 401, "missing"),
    "bad-percent-escape": (lambda t: "challenge=%s&verification-token=%s%%G1" % (UUID, t), 401,
                           "missing"),
    "token-empty": (lambda t: "challenge=%s&verification-token=" % UUID, 401,
                    "handshake missing"),
    "token-changed": (lambda t: "challenge=%s&verification-token=%s" % (UUID, changed(t, 3)),
                      401, "handshake wrong-token"),
    "challenge-crlf": (lambda t: "challenge=rvinject%%0D%%0ASet-Cookie:%%20x&"
                       "verification-token=%s" % t, 400, "bad-challenge"),
}


@pytest.mark.parametrize("case", list(GET_CASES))
def test_rv_hostile_handshake_get(srv, case):
    build, status, reason = GET_CASES[case]
    rid = rvhttpd.new_rid()
    t = srv.T["alpha"]
    query = build(t)
    ex = rvraw.exchange(srv.http, R(target=srv.target(rid, "?" + query)))
    assert len(ex.final) == 1, ex
    check(srv, rid, ex.final[0], status, reason)
    line = srv.h.access_lines(rid)[0]
    leaked = t in line or enc(t) in line    # not in an assert: pytest would print it
    assert not leaked, "token in the access log"
    assert "verification-token=REDACTED" in line, line
    srv.assert_still_serving()


@pytest.mark.parametrize("case", ["header-too-long", "header-without-colon",
                                  "request-line-too-long"])
def test_rv_hostile_handshake_get_refused_by_httpd_token_not_logged(srv, case):
    """httpd refuses the request before the module runs (400 or 414); the
    access log still records the request line, which must not carry the
    token."""
    rid = rvhttpd.new_rid()
    t = srv.T["alpha"]
    target = srv.target(rid, "?challenge=%s&verification-token=%s" % (UUID, t))
    lines = {"header-too-long": ["X-Padding: " + "p" * 9000],
             "header-without-colon": ["X-Broken header line"],
             "request-line-too-long": []}[case]
    if case == "request-line-too-long":
        target += "&pad=" + "p" * 9000
    ex = rvraw.exchange(srv.http, R(target=target, lines=lines))
    (resp,) = ex.final
    status = 414 if case == "request-line-too-long" else 400
    assert resp.status == status, resp
    assert srv.backend_saw(rid) == []
    assert t.encode() not in resp.body
    lines = srv.h.access_lines(rid)
    assert len(lines) == 1
    leaked = t in lines[0]                  # not in an assert: pytest would print it
    assert not leaked, lines[0].replace(t, "<TOKEN>")[:300]
    assert "verification-token=REDACTED" in lines[0], lines[0][:300]
    srv.assert_still_serving()
