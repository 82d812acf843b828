"""Redox's endpoint-verification handshake (RedoxChallenge) against one
server with a few VirtualHosts/Locations (started once for this module).

Requests go through a raw socket client so that the exact bytes (chunked
bodies, Expect: 100-continue, hostile JSON) are under the test's control;
every test asserts the exact status and what the recording backend got."""

import json
import socket

import pytest

import rvhttpd
from rvhttpd import CH_INVALID_TOKEN, CH_MISSING, bearer, both, new_rid, new_token, vtok

UUID = rvhttpd.HANDSHAKE_UUID
JSON = ("Content-Type", "application/json")

A = "hs-a.test"
B = "hs-b.test"
NONE = "hs-none.test"
T = {}  # name -> token, filled by the fixture

# The refusal of a bad challenge is logged at error level, like a denial.
ALLOWED = [rvhttpd.BAD_CHALLENGE_LOGGED]

# %U%q next to %r: both must show the GET token masked.
UQ_FORMAT = r'%U%q \"%r\" %>s rvsrc=%{REDOX_SOURCE}e rvver=%{REDOX_VERIFY}e'


@pytest.fixture(scope="module")
def hs(backend):
    for k in ("alpha", "beta", "get", "other"):
        T[k] = new_token()
    h = rvhttpd.Httpd("handshake", allowed=ALLOWED)
    h.backend = backend
    bp = backend.port
    h.write("htdocs-a/index.html", "RV-HS-STATIC\n")
    h.write_conf("""
LoadModule access_compat_module "{moddir}/mod_access_compat.so"
LogFormat "{uqfmt}" rvuq
CustomLog "{root}/logs/access-uq.log" rvuq

<VirtualHost 127.0.0.1:{port}>
    ServerName default.test
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName {a}
    DocumentRoot "{root}/htdocs-a"
    RedoxVerify On
    RedoxVerificationToken hs-alpha {alpha}
    RedoxSourceHeader X-Redox-Source
    ProxyPass /proxy/ http://127.0.0.1:{bp}/hsa/
    RewriteEngine On
    RewriteRule ^/rwq/(.*)$ /gettok/$1?via=rewrite [QSA,PT]
    <Directory "{root}/htdocs-a">
        Require all granted
    </Directory>
    <Location /nochallenge>
        RedoxChallenge Off
        ProxyPass http://127.0.0.1:{bp}/hsa/nochallenge
    </Location>
    <Location /satany>
        Satisfy Any
        Require all granted
        ProxyPass http://127.0.0.1:{bp}/hsa/satany
    </Location>
    <Location /gettok>
        RedoxVerificationToken hs-get {get}
        ProxyPass http://127.0.0.1:{bp}/hsa/gettok
    </Location>
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName {b}
    RedoxVerify On
    RedoxDenyStatus 403
    RedoxVerificationToken hs-beta {beta}
    RedoxSourceHeader X-Redox-Source
    ProxyPass /proxy/ http://127.0.0.1:{bp}/hsb/
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName {none}
    RedoxVerify On
    ProxyPass /proxy/ http://127.0.0.1:{bp}/hsnone/
</VirtualHost>
""".format(moddir=rvhttpd.MODDIR, none=NONE, uqfmt=UQ_FORMAT, root=h.root, port=h.port, bp=bp, a=A, b=B, **T))
    yield from h.serve()


# ---------------------------------------------------------------------------
# raw client
# ---------------------------------------------------------------------------
class Raw(rvhttpd.HeaderAccess):
    def __init__(self, status, headers, body, interim, rid, path, cport, new_records):
        self.status = status
        self.headers = headers      # list of (name, value)
        self.body = body
        self.interim = interim      # status codes of 1xx responses seen
        self.rid = rid
        self.path = path
        self.cport = cport          # client port, shown in error-log lines
        self.backend = new_records  # everything the backend got meanwhile

    def __repr__(self):
        return "<Raw %s %s %r %r>" % (self.status, self.path, self.headers, self.body[:200])


def _split_head(buf):
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
    return status, headers, rest


def _dechunk(data):
    out = b""
    while True:
        size, _, data = data.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            return out
        out += data[:n]
        data = data[n + 2:]


def _read_head(s, buf):
    return rvhttpd.recv_until(s, buf, stop=lambda d: b"\r\n\r\n" in d)[0]


def send(srv, method, path, host=A, headers=(), body=None, chunks=None, expect=False):
    """One request on its own connection; '{rid}' in path is replaced by a
    fresh request id, else the id is appended to the query. body: bytes/str sent with
    Content-Length; chunks: list of pieces sent chunked; expect: send
    Expect: 100-continue and hold the body back until 100 arrives."""
    rid = new_rid()
    if "{rid}" in path:
        path = path.replace("{rid}", rid)
    else:
        path += ("&" if "?" in path else "?") + "rid=" + rid
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: " + host]
    lines += ["%s: %s" % kv for kv in headers]
    payload = b""
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        for c in chunks:
            c = c.encode() if isinstance(c, str) else c
            payload += b"%x\r\n%s\r\n" % (len(c), c)
        payload += b"0\r\n\r\n"
    elif body is not None:
        lines.append("Content-Length: %d" % len(body))
        payload = body
    if expect:
        lines.append("Expect: 100-continue")
    lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    before = len(srv.backend.records)
    interim = []
    with socket.create_connection(("127.0.0.1", srv.port), timeout=rvhttpd.WAIT) as s:
        cport = s.getsockname()[1]
        s.sendall(head)
        buf = b""
        if expect:
            buf = _read_head(s, buf)
            if buf.startswith(b"HTTP/1.1 100"):
                interim.append(100)
                buf = buf.partition(b"\r\n\r\n")[2]
                s.sendall(payload)
            # else: a final answer without 100: the body is never sent
        else:
            s.sendall(payload)
        buf = rvhttpd.read_until_close(s, buf, closes=(ConnectionResetError,))
    status, hdrs, rest = _split_head(buf)
    while 100 <= status < 200:
        interim.append(status)
        status, hdrs, rest = _split_head(rest)
    cl = [v for k, v in hdrs if k.lower() == "content-length"]
    te = [v for k, v in hdrs if k.lower() == "transfer-encoding"]
    if method == "HEAD":
        data = rest
    elif cl:
        data = rest[:int(cl[0])]
    elif te and te[0].lower() == "chunked":
        data = _dechunk(rest)
    else:
        data = rest
    with srv.backend.lock:
        new = list(srv.backend.records[before:])
    return Raw(status, hdrs, rvhttpd.record_response(data), interim, rid, path, cport, new)


def hs_body(token, challenge=UUID):
    return json.dumps({"verification-token": token, "challenge": challenge})


def post(srv, body, path="/proxy/{rid}", host=A, headers=(JSON,), **kw):
    return send(srv, "POST", path, host=host, headers=list(headers), body=body, **kw)


def get(srv, token, challenge=UUID, path="/proxy/{rid}", host=A, **kw):
    q = "challenge=" + challenge
    if token is not None:
        q += "&verification-token=" + token
    return send(srv, "GET", path + "?" + q, host=host, **kw)


# ---------------------------------------------------------------------------
# assertions
# ---------------------------------------------------------------------------
def access_fields(srv, rid):
    return srv.access_fields(rid)


def client_lines(srv, r, needle):
    """Error-log lines of r's connection that contain needle: all of them
    (send() read to the server's close, and the lines are read after a
    marker request's, see rvhttpd.Httpd.marker), so that a count or an
    absence is exact."""
    tag = "[client 127.0.0.1:%d]" % r.cport
    return [l for l in srv.settled_error_lines(tag) if needle in l]


def assert_answered(srv, r, challenge=UUID, name="hs-alpha"):
    """200, text/plain, exactly the bare challenge, nothing proxied."""
    assert r.status == 200, (r, srv.error_log_tail())
    assert r.body == challenge.encode(), r
    assert r.header_values("Content-Type") == ["text/plain"], r.headers
    assert r.header_values("Content-Length") == [str(len(challenge))], r.headers
    assert r.backend == [], r.backend
    assert access_fields(srv, r.rid) == (name, "handshake")
    lines = client_lines(srv, r, 'redox_verify: handshake answered for "%s"' % name)
    assert len(lines) == 1 and ":info]" in lines[0], lines


def assert_denied(srv, r, reason, status=401, challenge=CH_MISSING, handshake=False,
                  not_handshake=None):
    """Denied with the scope's status, nothing proxied, one denial line
    with the reason; not_handshake: the debug reason expected before it."""
    rvhttpd.assert_refused(r, status, r.backend, [challenge] if status == 401 else [],
                           srv.error_log_tail())
    uri = r.path.split("?")[0]
    # one denial line (at error; the fixup may add a debug note)
    denied = [l for l in client_lines(srv, r, "redox_verify: denied ") if ":error]" in l]
    assert len(denied) == 1, (denied, srv.error_log_tail())
    what = "handshake " if handshake else ""
    assert ("redox_verify: denied %s%s: uri \"%s\"" % (what, reason, uri)) in denied[0], denied
    assert ":error]" in denied[0], denied
    assert access_fields(srv, r.rid) == ("-", reason)
    notes = client_lines(srv, r, "redox_verify: not a handshake")
    if not_handshake is None:
        assert notes == [], notes
    else:
        assert len(notes) == 1, notes
        assert ":debug]" in notes[0], notes
        assert notes[0].endswith("redox_verify: not a handshake: " + not_handshake), notes


def assert_bad_challenge(srv, r, challenge, name="hs-alpha"):
    """Accepted token, refused challenge: 400, never reflected."""
    assert r.status == 400, (r, srv.error_log_tail())
    assert r.backend == [], r.backend
    raw = challenge.encode("utf-8")
    if raw:
        assert raw not in r.body, r
        assert all(raw not in (k + v).encode("latin-1") for k, v in r.headers), r.headers
    if len(challenge) >= 4:
        # nor any recognisable part of it
        assert raw[:4] not in r.body and raw[-4:] not in r.body, r
    assert access_fields(srv, r.rid) == (name, "bad-challenge")
    lines = client_lines(srv, r, "redox_verify: handshake refused bad-challenge: ")
    assert len(lines) == 1 and ":error]" in lines[0], lines
    assert 'token "%s" accepted' % name in lines[0], lines
    if challenge:
        assert challenge not in srv.error_log_text()


# ---------------------------------------------------------------------------
# answered
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8",
                                   "application/vnd.redox+json"],
                         ids=["json", "json-charset", "plus-json"])
def test_rv_hs_post_plain(hs, ctype):
    r = post(hs, hs_body(T["alpha"]), headers=[("Content-Type", ctype),
                                              ("application-name", "RedoxEngine")])
    assert_answered(hs, r)


def test_rv_hs_post_chunked(hs):
    b = hs_body(T["alpha"])
    r = post(hs, None, chunks=[b[:7], b[7:30], b[30:31], b[31:]],
             headers=[JSON, ("application-name", "RedoxEngine")])
    assert_answered(hs, r)


def test_rv_hs_get(hs):
    r = get(hs, T["alpha"])
    assert_answered(hs, r)


def test_rv_hs_answer_not_from_content_handler(hs):
    """A static file's URL answers the handshake itself, not the file."""
    r = get(hs, T["alpha"], path="/index.html")
    assert_answered(hs, r)
    r = post(hs, hs_body(T["alpha"]), path="/index.html")
    assert_answered(hs, r)
    assert b"RV-HS-STATIC" not in r.body


def test_rv_hs_proxied_location_backend_gets_nothing(hs):
    """/proxy/ is ProxyPass'ed: the answer comes from the module and the
    recording backend receives nothing at all (send() counts every record,
    not only those with the rid)."""
    r1 = post(hs, hs_body(T["alpha"]))
    r2 = get(hs, T["alpha"])
    for r in (r1, r2):
        assert_answered(hs, r)
        assert r.backend == []
        assert hs.backend.find(r.rid) == []


def test_rv_hs_challenge_128_accepted(hs):
    c = ("Ab0.-_~" * 19)[:128]
    assert len(c) == 128
    assert_answered(hs, post(hs, hs_body(T["alpha"], c)), c)
    assert_answered(hs, get(hs, T["alpha"], c), c)


def test_rv_hs_expect_100_continue(hs):
    r = post(hs, hs_body(T["alpha"]), expect=True)
    assert r.interim == [100], r
    assert_answered(hs, r)


def test_rv_hs_expect_100_continue_over_4k_not_read(hs):
    """A Content-Length over 4 KiB is refused without asking for the body."""
    body = hs_body(T["alpha"]) + " " * 5000
    r = post(hs, body, expect=True)
    assert r.interim == [], r
    assert_denied(hs, r, "missing", not_handshake="Content-Length over 4 KiB or invalid")


def test_rv_hs_second_vhost_own_token(hs):
    r = post(hs, hs_body(T["beta"]), host=B)
    assert_answered(hs, r, name="hs-beta")
    r = get(hs, T["beta"], host=B)
    assert_answered(hs, r, name="hs-beta")
    # the first vhost's token is refused there with that vhost's status ...
    r = post(hs, hs_body(T["alpha"]), host=B)
    assert_denied(hs, r, "wrong-token", status=403, handshake=True)
    assert UUID.encode() not in r.body
    r = get(hs, T["alpha"], host=B)
    assert_denied(hs, r, "wrong-token", status=403, handshake=True)
    # ... and the second vhost's token is refused at the first
    r = post(hs, hs_body(T["beta"]), host=A)
    assert_denied(hs, r, "wrong-token", challenge=CH_INVALID_TOKEN, handshake=True)


def test_rv_hs_inner_location_token_set(hs):
    """/gettok lists its own token: only that one answers there."""
    assert_answered(hs, get(hs, T["get"], path="/gettok/{rid}"), name="hs-get")
    r = get(hs, T["alpha"], path="/gettok/{rid}")
    assert_denied(hs, r, "wrong-token", challenge=CH_INVALID_TOKEN, handshake=True)


# ---------------------------------------------------------------------------
# token refused
# ---------------------------------------------------------------------------
def test_rv_hs_no_tokens_fails_closed(hs):
    r = post(hs, hs_body(T["alpha"]), host=NONE)
    assert_denied(hs, r, "no-tokens", handshake=True)
    assert UUID.encode() not in r.body
    r = get(hs, T["alpha"], host=NONE)
    assert_denied(hs, r, "no-tokens", handshake=True)


def test_rv_hs_wrong_token(hs):
    r = post(hs, hs_body(T["other"]))
    assert_denied(hs, r, "wrong-token", challenge=CH_INVALID_TOKEN, handshake=True)
    assert UUID.encode() not in r.body
    r = get(hs, T["other"])
    assert_denied(hs, r, "wrong-token", challenge=CH_INVALID_TOKEN, handshake=True)
    assert UUID.encode() not in r.body


def test_rv_hs_missing_token(hs):
    # GET without the parameter, GET and POST with an empty one: a handshake
    # whose token is missing
    for r in (get(hs, None), get(hs, ""), post(hs, hs_body(""))):
        assert_denied(hs, r, "missing", handshake=True)
        assert UUID.encode() not in r.body
    # POST without the member: not a handshake at all
    r = post(hs, json.dumps({"challenge": UUID}))
    assert_denied(hs, r, "missing",
                  not_handshake="JSON body has no verification-token string")


def test_rv_hs_missing_challenge(hs):
    r = post(hs, json.dumps({"verification-token": T["alpha"]}))
    assert_denied(hs, r, "missing", not_handshake="JSON body has no challenge string")
    r = send(hs, "GET", "/proxy/{rid}?verification-token=" + T["alpha"])
    assert_denied(hs, r, "missing", not_handshake="no challenge parameter")


# ---------------------------------------------------------------------------
# accepted token, refused challenge
# ---------------------------------------------------------------------------
BAD_CHALLENGES = {
    "empty": "",
    "quotes": 'a"b\'c',
    "script": "<script>alert(1)</script>",
    "crlf": "abc\r\nX-Injected: yes",
    "space": "2e73f864 a0e9",
    "non-ascii": "caf\u00e9",
    "len129": ("Ab0.-_~" * 19)[:128] + "x",
}


@pytest.mark.parametrize("case", sorted(BAD_CHALLENGES))
def test_rv_hs_bad_challenge_post(hs, case):
    c = BAD_CHALLENGES[case]
    r = post(hs, hs_body(T["alpha"], c))
    assert_bad_challenge(hs, r, c)
    assert not r.header_values("X-Injected")


@pytest.mark.parametrize("case,query", [
    ("empty", ""),
    ("script", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
    ("crlf", "abc%0D%0AX-Injected:%20yes"),
    ("quote", "a%22b"),
    ("len129", "a" * 129),
])
def test_rv_hs_bad_challenge_get(hs, case, query):
    r = get(hs, T["alpha"], query)
    if query:
        assert query.encode() not in r.body, r
    assert_bad_challenge(hs, r, {"empty": "", "script": "<script>alert(1)</script>",
                                 "crlf": "abc\r\nX-Injected: yes", "quote": 'a"b',
                                 "len129": "a" * 129}[case])
    assert not r.header_values("X-Injected")


def test_rv_hs_bad_challenge_needs_accepted_token(hs):
    """With a wrong token the challenge is not even looked at."""
    r = post(hs, hs_body(T["other"], "<script>"))
    assert_denied(hs, r, "wrong-token", challenge=CH_INVALID_TOKEN, handshake=True)
    assert b"<script>" not in r.body


# ---------------------------------------------------------------------------
# not a handshake: denied like any request without token headers
# ---------------------------------------------------------------------------
NOT_JSON = "body is not well-formed JSON"
NOT_HANDSHAKE = {
    "bad-json": (lambda t: '{"verification-token": "%s", "challenge": ' % t, NOT_JSON),
    "not-json": (lambda t: "verification-token=%s&challenge=%s" % (t, UUID), NOT_JSON),
    "empty-body": (lambda t: "", NOT_JSON),
    "array": (lambda t: json.dumps([{"verification-token": t, "challenge": UUID}]),
              "JSON body is not an object"),
    "string": (lambda t: json.dumps(t), NOT_JSON),  # jansson: object or array only
    "dup-token": (lambda t: '{"verification-token":"%s","verification-token":"%s",'
                            '"challenge":"%s"}' % (t, t, UUID), NOT_JSON),
    "dup-challenge": (lambda t: '{"verification-token":"%s","challenge":"%s",'
                                '"challenge":"%s"}' % (t, UUID, UUID), NOT_JSON),
    "trailing-garbage": (lambda t: hs_body(t) + "x", NOT_JSON),
    "trailing-object": (lambda t: hs_body(t) + "{}", NOT_JSON),
    "token-number": (lambda t: '{"verification-token": 1, "challenge": "%s"}' % UUID,
                     "JSON body has no verification-token string"),
    "challenge-null": (lambda t: '{"verification-token": "%s", "challenge": null}' % t,
                       "JSON body has no challenge string"),
    "nul-escape": (lambda t: '{"verification-token": "%s", "challenge": "a\\u0000b"}' % t,
                   NOT_JSON),
}


@pytest.mark.parametrize("case", sorted(NOT_HANDSHAKE))
def test_rv_hs_not_a_handshake_body(hs, case):
    fn, why = NOT_HANDSHAKE[case]
    r = post(hs, fn(T["alpha"]))
    assert_denied(hs, r, "missing", not_handshake=why)
    assert UUID.encode() not in r.body


@pytest.mark.parametrize("how", ["content-length", "chunked"])
def test_rv_hs_body_size_limit(hs, how):
    """Exactly 4 KiB (padded with JSON whitespace) is a handshake; one byte
    more is not, and is denied without being parsed."""
    b = hs_body(T["alpha"])
    exact = b + " " * (4096 - len(b))
    over = exact + " "
    if how == "chunked":
        r = post(hs, None, chunks=[exact[:1000], exact[1000:]])
    else:
        r = post(hs, exact)
    assert_answered(hs, r)
    if how == "chunked":
        r = post(hs, None, chunks=[over[:1000], over[1000:]])
        why = "body over 4 KiB"
    else:
        r = post(hs, over)
        why = "Content-Length over 4 KiB or invalid"
    assert_denied(hs, r, "missing", not_handshake=why)
    assert UUID.encode() not in r.body


def test_rv_hs_body_far_over_4k_chunked(hs):
    b = hs_body(T["alpha"])
    r = post(hs, None, chunks=[b[:-1] + " " * 3000, " " * 3000, "}"])
    assert_denied(hs, r, "missing", not_handshake="body over 4 KiB")


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx"])
def test_rv_hs_non_json_content_type_denied(hs, ctype):
    """A handshake body under another type is not read: no debug reason."""
    hdrs = [("Content-Type", ctype)] if ctype else []
    r = post(hs, hs_body(T["alpha"]), headers=hdrs)
    assert_denied(hs, r, "missing")
    assert UUID.encode() not in r.body


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_rv_hs_other_methods_not_handshakes(hs, method):
    r = send(hs, method, "/proxy/{rid}", headers=[JSON], body=hs_body(T["alpha"]))
    assert_denied(hs, r, "missing")
    assert UUID.encode() not in r.body


def test_rv_hs_head_not_handshake(hs):
    """HEAD shares GET's method number in httpd but is not a handshake:
    denied like any request without token headers, never answered."""
    q = "?challenge=%s&verification-token=%s" % (UUID, T["alpha"])
    r = send(hs, "HEAD", "/proxy/{rid}" + q)
    assert_denied(hs, r, "missing")
    assert r.body == b""
    assert r.header_values("Content-Length") != [str(len(UUID))], r.headers
    assert client_lines(hs, r, "redox_verify: handshake") == []


def test_rv_hs_challenge_off_denied(hs):
    r = post(hs, hs_body(T["alpha"]), path="/nochallenge/{rid}")
    assert_denied(hs, r, "missing")
    assert UUID.encode() not in r.body
    r = get(hs, T["alpha"], path="/nochallenge/{rid}")
    assert_denied(hs, r, "missing")
    assert UUID.encode() not in r.body
    # token headers still work there
    r = send(hs, "GET", "/nochallenge/{rid}", headers=both(T["alpha"]))
    assert r.status == 200, r
    assert len(r.backend) == 1 and r.backend[0].path.startswith("/hsa/nochallenge/")


# ---------------------------------------------------------------------------
# Satisfy Any: authz may override the access checker, the fixup safety net
# then runs; the handshake's answer or refusal must stand, decided once
# ---------------------------------------------------------------------------
SATANY = "/satany/{rid}"


def test_rv_hs_satisfy_any_answered(hs):
    for r in (post(hs, hs_body(T["alpha"]), path=SATANY), get(hs, T["alpha"], path=SATANY)):
        assert_answered(hs, r)
        assert client_lines(hs, r, "redox_verify: denied") == []


def test_rv_hs_satisfy_any_refusals_stand(hs):
    for r in (post(hs, hs_body(T["other"]), path=SATANY), get(hs, T["other"], path=SATANY)):
        assert_denied(hs, r, "wrong-token", challenge=CH_INVALID_TOKEN, handshake=True)
    for r in (post(hs, hs_body(T["alpha"], "<x>"), path=SATANY),
              get(hs, T["alpha"], "%3Cx%3E", path=SATANY)):
        assert_bad_challenge(hs, r, "<x>")
        assert [l for l in client_lines(hs, r, "redox_verify: denied") if ":error]" in l] == []
    # not a handshake: still denied by the safety net
    r = post(hs, "[]", path=SATANY)
    assert r.status == 401 and r.backend == [], r
    r = send(hs, "GET", SATANY)
    assert r.status == 401 and r.backend == [], r
    # and a data request passes
    r = send(hs, "GET", SATANY, headers=both(T["alpha"]))
    assert r.status == 200 and len(r.backend) == 1, r


# ---------------------------------------------------------------------------
# with token headers it is a data request
# ---------------------------------------------------------------------------
def test_rv_hs_token_headers_plus_handshake_body_is_data(hs):
    body = hs_body(T["alpha"])
    r = post(hs, body, headers=both(T["alpha"]) + [JSON])
    assert r.status == 200, r
    assert r.body.startswith(b"backend-ok POST /hsa/" + r.rid.encode()), r
    assert len(r.backend) == 1, r.backend
    rec = r.backend[0]
    assert rec.method == "POST" and rec.body == body.encode()
    assert rec.values("X-Redox-Source") == ["hs-alpha"]
    assert not rec.has("verification-token") and not rec.has("Authorization")
    assert access_fields(hs, r.rid) == ("hs-alpha", "ok")
    assert client_lines(hs, r, "redox_verify: handshake") == []
    assert client_lines(hs, r, "redox_verify: not a handshake") == []


@pytest.mark.parametrize("case", ["vt-only", "bearer-only", "wrong-both"])
def test_rv_hs_token_headers_plus_handshake_body_checked_as_data(hs, case):
    """Any token header makes it a data request: checked as such, never
    answered, even though the body holds an accepted token."""
    hdrs = {"vt-only": [vtok(T["alpha"])], "bearer-only": [bearer(T["alpha"])],
            "wrong-both": both(T["other"])}[case]
    r = post(hs, hs_body(T["alpha"]), headers=hdrs + [JSON])
    if case == "wrong-both":
        assert_denied(hs, r, "wrong-token", challenge=CH_INVALID_TOKEN)
    else:
        assert_denied(hs, r, "missing")
    assert UUID.encode() not in r.body


def test_rv_hs_get_with_token_headers_is_data_and_query_redacted(hs):
    """A data GET that also carries the handshake query is proxied, with the
    token in the query masked before the backend sees it."""
    q = "?challenge=%s&verification-token=%s" % (UUID, T["alpha"])
    r = send(hs, "GET", "/proxy/{rid}" + q, headers=both(T["alpha"]))
    assert r.status == 200, r
    assert len(r.backend) == 1, r.backend
    assert r.backend[0].path == "/hsa/%s?challenge=%s&verification-token=REDACTED" % (
        r.rid, UUID), r.backend[0].path
    assert access_fields(hs, r.rid) == ("hs-alpha", "ok")


# ---------------------------------------------------------------------------
# keep-alive: what the module read, or left unread, does not leak into the
# next request on the connection
# ---------------------------------------------------------------------------
def _responses(buf):
    out = []
    while buf:
        status, hdrs, rest = _split_head(buf)
        n = int(dict((k.lower(), v) for k, v in hdrs).get("content-length", "0"))
        out.append((status, rvhttpd.record_response(rest[:n])))
        buf = rest[n:]
    return out


def pipeline(srv, data):
    before = len(srv.backend.records)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=rvhttpd.WAIT) as s:
        s.sendall(data)
        buf = rvhttpd.read_until_close(s)
    with srv.backend.lock:
        new = list(srv.backend.records[before:])
    return _responses(buf), new


def _data_get(rid, close=True):
    t = T["alpha"]
    return ("GET /proxy/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
            "verification-token: %s\r\n%s\r\n"
            % (rid, A, t, t, "Connection: close\r\n" if close else "")).encode()


def test_rv_hs_keepalive_after_answer(hs):
    b = hs_body(T["alpha"]).encode()
    rid1, rid2 = new_rid(), new_rid()
    first = (b"POST /proxy/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
             b"Content-Length: %d\r\n\r\n%s" % (rid1.encode(), A.encode(), len(b), b))
    resps, recs = pipeline(hs, first + _data_get(rid2))
    assert resps == [(200, UUID.encode()), (200, b"backend-ok GET /hsa/%s\n" % rid2.encode())]
    assert [r.path for r in recs] == ["/hsa/" + rid2]
    assert access_fields(hs, rid1) == ("hs-alpha", "handshake")
    assert access_fields(hs, rid2) == ("hs-alpha", "ok")


def test_rv_hs_close_after_oversized_chunked_body(hs):
    """The module stops reading a chunked body after 4 KiB + 1 byte and,
    denying it, closes the connection: the rest (here holding a well-formed,
    verified request) and the pipelined request are never served."""
    rid1, hidden, rid3 = new_rid(), new_rid(), new_rid()
    pad = (hs_body(T["alpha"])[:-1] + " " * 4200 + "}").encode()
    smuggled = _data_get(hidden, close=False)
    first = (b"POST /proxy/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n" % (rid1.encode(), A.encode())
             + b"%x\r\n%s\r\n" % (len(pad), pad)
             + b"%x\r\n%s\r\n" % (len(smuggled), smuggled) + b"0\r\n\r\n")
    resps, recs = pipeline(hs, first + _data_get(rid3))
    assert [st for st, _ in resps] == [401], resps
    assert recs == []
    assert hs.settled_access_lines(hidden) == []
    assert hs.settled_access_lines(rid3) == []
    assert access_fields(hs, rid1) == ("-", "missing")


# ---------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------
def test_rv_hs_env_in_access_log(hs):
    ok = post(hs, hs_body(T["alpha"]))
    bad = post(hs, hs_body(T["alpha"], "<b>"))
    wrong = post(hs, hs_body(T["other"]))
    assert (ok.status, bad.status, wrong.status) == (200, 400, 401)
    assert access_fields(hs, ok.rid) == ("hs-alpha", "handshake")
    assert access_fields(hs, bad.rid) == ("hs-alpha", "bad-challenge")
    assert access_fields(hs, wrong.rid) == ("-", "wrong-token")


def test_rv_hs_not_a_handshake_reason_at_debug(hs):
    r = post(hs, '{"verification-token": "%s", "challenge": "%s", "challenge": "x"}'
             % (T["alpha"], UUID))
    assert_denied(hs, r, "missing", not_handshake=NOT_JSON)
    # the reason names nothing from the body
    line = client_lines(hs, r, "not a handshake")[0]
    assert UUID not in line and '"x"' not in line


def _uq_lines(srv, rid, timeout=rvhttpd.WAIT):
    """Lines of the %U%q access log that contain rid."""
    return srv.access_lines(rid, timeout, log="logs/access-uq.log")


def _all_logs():
    return [p for p in rvhttpd.GEN_DIR.rglob("*")
            if p.is_file() and "logs" in p.relative_to(rvhttpd.GEN_DIR).parts]


@pytest.mark.parametrize("case", ["answered", "wrong-location", "bad-challenge",
                                  "challenge-off", "not-a-handshake"])
def test_rv_hs_get_token_not_in_logs(hs, case):
    """The GET form's token is masked in %r and %U%q and appears in no log.
    hs-get is used in GET query strings only, nowhere else."""
    path, challenge, status = {
        "answered": ("/gettok/{rid}", UUID, 200),
        "wrong-location": ("/proxy/{rid}", UUID, 401),
        "bad-challenge": ("/gettok/{rid}", "%3Cx%3E", 400),
        "challenge-off": ("/nochallenge/{rid}", UUID, 401),
        "not-a-handshake": ("/gettok/{rid}", UUID + "&challenge=again", 401),
    }[case]
    r = get(hs, T["get"], challenge, path=path)
    assert r.status == status, (r, hs.error_log_tail())
    assert r.backend == []
    uri = r.path.split("?")[0]
    masked = "%s?challenge=%s&verification-token=REDACTED" % (uri, challenge)
    req = hs.access_lines(r.rid)
    assert len(req) == 1 and ('"GET %s HTTP/1.1"' % masked) in req[0], req
    uq = _uq_lines(hs, r.rid)
    assert len(uq) == 1 and uq[0].startswith(masked + ' "GET %s HTTP/1.1" ' % masked), uq
    hits = [str(p) for p in _all_logs() if T["get"] in p.read_text(errors="replace")]
    assert hits == [], hits


def test_rv_hs_get_token_masked_when_rewrite_changed_query(hs):
    """A RewriteRule that adds to the query (QSA) before the access check:
    r->args no longer matches the request line's query, which must be
    masked all the same."""
    r = get(hs, T["get"], path="/rwq/{rid}")
    assert_answered(hs, r, name="hs-get")
    line = 'GET /rwq/%s?challenge=%s&verification-token=REDACTED HTTP/1.1' % (r.rid, UUID)
    req = hs.access_lines(r.rid)
    assert len(req) == 1 and ('"%s"' % line) in req[0], req
    uq = _uq_lines(hs, r.rid)
    assert len(uq) == 1 and uq[0].startswith(
        '/gettok/%s?via=rewrite&challenge=%s&verification-token=REDACTED "%s" '
        % (r.rid, UUID, line)), uq
    hits = [str(p) for p in _all_logs() if T["get"] in p.read_text(errors="replace")]
    assert hits == [], hits
