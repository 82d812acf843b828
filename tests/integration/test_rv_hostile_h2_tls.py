"""The same checks over HTTP/2 (h2c through mod_http2, prior knowledge and
Upgrade) and TLS (mod_ssl, a self-signed certificate made for the test),
with curl as the client: accept, deny and the handshake."""

import json
import subprocess

import pytest

import rvhttpd
from rvhostile import Hostile

UUID = "6f1c1f0e-4d1b-4c7e-9d51-5b3a0c2e8a11"


@pytest.fixture(scope="module")
def srv(backend):
    yield from Hostile.serving("hostile-h2tls", backend)


class CurlResponse:
    def __init__(self, status, version, headers, body):
        self.status = status
        self.version = version
        self.headers = headers
        self.body = body

    def header_values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        vals = self.header_values(name)
        return vals[0] if vals else None

    def __repr__(self):
        return "<CurlResponse HTTP/%s %s %r>" % (self.version, self.status, self.headers)


def curl(srv, how, path, headers=(), data=None):
    """One request with curl; how: h2c (prior knowledge), h2c-upgrade,
    tls-h1, tls-h2."""
    port = srv.tls if how.startswith("tls") else srv.h2c
    scheme = "https" if how.startswith("tls") else "http"
    host = "localhost" if how.startswith("tls") else "127.0.0.1"
    args = ["curl", "-sS", "--max-time", str(rvhttpd.WAIT), "-D", "-", "-o", "/dev/stderr",
            "-w", "\n%{http_code} %{http_version}"]
    args += {"h2c": ["--http2-prior-knowledge"], "h2c-upgrade": ["--http2"],
             "tls-h1": ["--http1.1", "--cacert", str(srv.ca)],
             "tls-h2": ["--http2", "--cacert", str(srv.ca)]}[how]
    for k, v in headers:
        args += ["-H", "%s: %s" % (k, v)]
    if data is not None:
        args += ["--data-binary", data]
    args.append("%s://%s:%d%s" % (scheme, host, port, path))
    proc = subprocess.run(args, capture_output=True, timeout=rvhttpd.WAIT + 30)
    assert proc.returncode == 0, proc.stderr[-500:]
    out = proc.stdout.decode("latin-1")
    head, _, tail = out.rpartition("\n")
    status, version = tail.split()
    # the last header block is the final response (after a 101 on Upgrade)
    blocks = [b for b in head.replace("\r\n", "\n").split("\n\n") if b.strip()]
    headers = []
    for line in blocks[-1].split("\n")[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return CurlResponse(int(status), version, headers, rvhttpd.record_response(proc.stderr))


def tok_headers(srv, a="alpha", v="alpha"):
    return [("Authorization", "Bearer " + srv.T[a]), ("verification-token", srv.T[v])]


HOWS = ["h2c", "h2c-upgrade", "tls-h1", "tls-h2"]
# A verified request asking for an h2c upgrade is served as the HTTP/1.1
# request it is; a denied one is never upgraded.
VERSION = {"h2c": "2", "h2c-upgrade": "1.1", "tls-h1": "1.1", "tls-h2": "2"}


def still_serving(srv, how):
    rid = rvhttpd.new_rid()
    r = curl(srv, how, srv.target(rid), tok_headers(srv))
    srv.assert_passed(rid, r)


@pytest.mark.parametrize("how", HOWS)
def test_rv_hostile_h2_tls_accept(srv, how):
    rid = rvhttpd.new_rid()
    r = curl(srv, how, srv.target(rid), tok_headers(srv, "beta", "beta"))
    assert r.version == VERSION[how], r
    srv.assert_passed(rid, r, "beta")
    assert srv.access_fields(rid) == ("beta", "ok", 200)


DENY = {
    "no-token": (lambda s: [], "missing"),
    "wrong-token": (lambda s: tok_headers(s, "other", "other"), "wrong-token"),
    "two-accepted-tokens": (lambda s: tok_headers(s, "alpha", "beta"), "mismatch"),
    "verification-token-twice": (lambda s: tok_headers(s) + [("verification-token",
                                                               s.T["alpha"])], "malformed"),
    "bearer-without-token": (lambda s: [("Authorization", "Bearer"),
                                        ("verification-token", s.T["alpha"])], "malformed"),
}


@pytest.mark.parametrize("case", list(DENY))
@pytest.mark.parametrize("how", HOWS)
def test_rv_hostile_h2_tls_deny(srv, how, case):
    build, reason = DENY[case]
    rid = rvhttpd.new_rid()
    r = curl(srv, how, srv.target(rid), build(srv))
    assert r.version == VERSION[how], r
    srv.assert_denied(rid, r, 401, reason)
    assert srv.access_fields(rid) == ("-", reason, 401)
    still_serving(srv, how)


@pytest.mark.parametrize("how", ["h2c", "tls-h2"])
def test_rv_hostile_h2_tls_handshake_post(srv, how):
    rid = rvhttpd.new_rid()
    body = json.dumps({"verification-token": srv.T["alpha"], "challenge": UUID})
    r = curl(srv, how, srv.target(rid), [("Content-Type", "application/json")], data=body)
    assert (r.status, r.version, r.body) == (200, "2", UUID.encode()), r
    assert srv.backend_saw(rid) == []
    assert srv.access_fields(rid) == ("alpha", "handshake", 200)


@pytest.mark.parametrize("how", ["h2c", "tls-h2"])
def test_rv_hostile_h2_tls_handshake_get_redacted(srv, how):
    rid = rvhttpd.new_rid()
    t = srv.T["alpha"]
    r = curl(srv, how, srv.target(rid, "?challenge=%s&verification-token=%s" % (UUID, t)))
    assert (r.status, r.version, r.body) == (200, "2", UUID.encode()), r
    line = srv.h.access_lines(rid)[0]
    leaked = t in line
    assert not leaked and "verification-token=REDACTED" in line, line.replace(t, "<TOKEN>")


@pytest.mark.parametrize("how", ["h2c", "tls-h2"])
def test_rv_hostile_h2_tls_handshake_hostile_json_denied(srv, how):
    """A NUL escape after the right token: not a handshake."""
    rid = rvhttpd.new_rid()
    body = '{"verification-token":"%s\\u0000","challenge":"%s"}' % (srv.T["alpha"], UUID)
    r = curl(srv, how, srv.target(rid), [("Content-Type", "application/json")], data=body)
    srv.assert_denied(rid, r, 401, "missing")
    assert UUID.encode() not in r.body
    still_serving(srv, how)


@pytest.mark.parametrize("how", ["h2c", "tls-h2"])
def test_rv_hostile_h2_tls_handshake_wrong_token(srv, how):
    rid = rvhttpd.new_rid()
    body = json.dumps({"verification-token": srv.T["other"], "challenge": UUID})
    r = curl(srv, how, srv.target(rid), [("Content-Type", "application/json")], data=body)
    srv.assert_denied(rid, r, 401, "handshake wrong-token")
    assert UUID.encode() not in r.body
    still_serving(srv, how)
