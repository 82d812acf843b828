"""The VirtualHost of the manual's section "With Redox's OAuth 2.0
authentication" (docs/mod_redox_verify.md), as written there but for the
site's own names: address and port, certificate, token file, the
authorization server's key set URL (a loopback server here) and the
backend.  A second VirtualHost is the same with the manual's `jwk` line in
place of `jwks_uri`.  Both are tried over TLS with the four combinations
of a valid or invalid access token and a valid or wrong verification
token, and Redox's handshake."""

import json
import re
import uuid

import pytest

import rvhttpd
import rvoauth
from rvhttpd import new_token, vtok

DOC = rvhttpd.REPO / "docs" / "mod_redox_verify.md"
SECTION = "## With Redox's OAuth 2.0 authentication\n"
SERVER_NAME = "redox.example.org"
HANDSHAKE_UUID = "0b6c9a8e-3f1d-4e2a-8c7b-5d4e3f2a1b0c"
K = {}


def manual_section():
    text = DOC.read_text(encoding="utf-8")
    assert text.count(SECTION) == 1, "the manual has no section %r" % SECTION
    return text.split(SECTION, 1)[1].split("\n## ", 1)[0]


def manual_vhost():
    """The section's VirtualHost code block, unindented."""
    m = re.search(r"^    <VirtualHost \*:443>\n(?:    .*\n|\n)*?    </VirtualHost>\n",
                  manual_section(), re.M)
    assert m, "no <VirtualHost *:443> block in the section"
    return "\n".join(line[4:] for line in m.group(0).splitlines()) + "\n"


def manual_line(start):
    """The section's one code line that starts with start."""
    lines = [l.strip() for l in manual_section().splitlines()
             if l.startswith("    ") and l.strip().startswith(start)]
    assert len(lines) == 1, (start, lines)
    return lines[0]


def substitute(text, changes):
    for old, new in changes:
        assert old in text, "the manual's VirtualHost no longer has %r" % old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def srv(backend):
    K["vt"] = new_token()
    h = rvhttpd.Httpd("oauth-manual", nports=2, env=rvoauth.httpd_env(), allowed=[
        r"\[oauth2:warn\].* _oauth2_jose_jwt_verify_jwk: cjose_jws_verify failed: "])
    h.backend = backend
    K["rsa"] = rvoauth.RsaKey(h.root / "secrets", "as-1")
    K["cert"], key = rvoauth.server_cert(h.root / "tls", SERVER_NAME)
    h.write("secrets/prod.token", K["vt"] + "\n", mode=0o600)
    K["jwks"] = rvoauth.JwksServer(K["rsa"])
    vhost = manual_vhost()
    common = [
        ("/etc/ssl/certs/redox.example.org.pem", str(K["cert"])),
        ("/etc/ssl/private/redox.example.org.key", str(key)),
        ("/etc/apache2/redox/prod.token", str(h.path("secrets/prod.token"))),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:%d/manual/" % backend.port),
    ]
    jwks_vhost = substitute(vhost, common + [
        ("<VirtualHost *:443>", "<VirtualHost 127.0.0.1:%d>" % h.ports[0]),
        ("https://auth.example.org/.well-known/jwks.json", K["jwks"].url)])
    # the manual's jwk line, with this key's modulus, in place of jwks_uri
    jwk_line = manual_line("OAuth2TokenVerify jwk ")
    jwk_line = substitute(jwk_line, [("<modulus>", K["rsa"].n)])
    jwk_vhost = substitute(vhost, common + [
        ("<VirtualHost *:443>", "<VirtualHost 127.0.0.1:%d>" % h.ports[1]),
        (manual_line("OAuth2TokenVerify jwks_uri "), jwk_line)])
    h.write_conf("\n".join([
        'LoadModule socache_shmcb_module "%s"' % (rvhttpd.MODDIR / "mod_socache_shmcb.so"),
        'LoadModule ssl_module "%s"' % (rvhttpd.MODDIR / "mod_ssl.so"),
        'SSLSessionCache "shmcb:%s/run/ssl_scache(512000)"' % h.root,
        rvoauth.AUTHZ_USER, rvoauth.MOD_OAUTH2, "", jwks_vhost, jwk_vhost]))
    yield from h.serve()
    K["jwks"].stop()


PORTS = {"jwks_uri": 0, "jwk": 1}


def send(srv, how, headers=(), **kw):
    return rvoauth.https_request(srv, srv.ports[PORTS[how]], SERVER_NAME, K["cert"],
                                 "/redox/{rid}", headers=list(headers), **kw)


COMBOS = [(j, v) for j in ("jwt-ok", "jwt-bad") for v in ("vt-ok", "vt-wrong")]


@pytest.mark.parametrize("jwt_case,vt_case", COMBOS)
@pytest.mark.parametrize("how", list(PORTS))
def test_rv_oauth_manual_combination(srv, how, jwt_case, vt_case):
    token = K["rsa"].rs256(rvoauth.claims(jti=uuid.uuid4().hex))
    if jwt_case == "jwt-bad":
        token = rvoauth.tamper(token)
    wrong = new_token()
    r = send(srv, how, [("Authorization", "Bearer " + token),
                        vtok(K["vt"] if vt_case == "vt-ok" else wrong)])
    rvoauth.assert_combination(srv, r, jwt_case, vt_case, token, K["vt"], rvoauth.OAUTH2_INVALID,
                               {"OAUTH2_CLAIM_sub": rvoauth.SUBJECT}, (token, K["vt"], wrong),
                               vt_challenge=rvhttpd.CH_INVALID_TOKEN, prefix="/manual/" + r.rid)


def test_rv_oauth_manual_keys_fetched_from_jwks_uri(srv):
    r = send(srv, "jwks_uri", [("Authorization", "Bearer " + K["rsa"].rs256(
        rvoauth.claims(jti=uuid.uuid4().hex))), vtok(K["vt"])])
    assert r.status == 200, r
    assert K["jwks"].fetches >= 1


@pytest.mark.parametrize("how", list(PORTS))
def test_rv_oauth_manual_handshake(srv, how):
    r = send(srv, how, [("Content-Type", "application/json")], method="POST",
             body=json.dumps({"verification-token": K["vt"], "challenge": HANDSHAKE_UUID}))
    assert r.status == 200, r
    assert r.body == HANDSHAKE_UUID.encode()
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=prod rvver=handshake")
