"""mod_redox_verify beside Debian's mod_auth_openidc 2.4.12
(libapache2-mod-auth-openidc) in its OAuth 2.0 resource server mode,
`AuthType oauth20` (issue 15).  Debian's build verifies JWT access tokens
offline with keys from the configuration: `OIDCOAuthVerifySharedKeys`
(HS256) and `OIDCOAuthVerifyCertFiles` (RS256, an X.509 certificate file);
`OIDCOAuthVerifyJwksUri` fetches a key set and takes only an https URL.
All are server-wide directives (server config or VirtualHost, not
Location), so each kind of key has its VirtualHost here.

mod_auth_openidc logs, at every start, that this mode is deprecated in
favour of mod_oauth2, and an error pair for every token it refuses; those
lines are expected (rvoauth.OPENIDC_ALLOWED)."""

import json
import uuid

import pytest

import rvhttpd
import rvoauth
from rvhttpd import new_token, vtok

K = {}
HANDSHAKE_UUID = "8d1f4c2a-7e3b-4a5c-9f60-1b2c3d4e5f60"
VHOSTS = ("hs256", "rs256")


@pytest.fixture(scope="module")
def srv(backend):
    K["vt"] = new_token()
    K["shared"] = rvoauth.new_shared_key()
    h = rvhttpd.Httpd("openidc", allowed=rvoauth.OPENIDC_ALLOWED,
                      env=rvoauth.httpd_env())
    h.backend = backend
    K["rsa"] = rvoauth.RsaKey(h.root / "secrets", "as-1")
    cert = h.write("keys/as-1.crt", K["rsa"].cert.read_text())
    keys = {"hs256": "OIDCOAuthVerifySharedKeys plain##%s" % K["shared"],
            "rs256": "OIDCOAuthVerifyCertFiles %s" % cert}
    conf = [rvoauth.AUTHZ_USER, rvoauth.MOD_OPENIDC]
    for name in VHOSTS:
        conf.append("""
<VirtualHost 127.0.0.1:{port}>
    ServerName {name}.test
    {keys}
    <Location /redox/>
        RedoxVerify On
        RedoxTokenHeaders verification-token
        RedoxVerificationToken prod {vt}

        AuthType oauth20
        Require valid-user

        ProxyPass http://127.0.0.1:{bp}/openidc/{name}/
    </Location>
</VirtualHost>
""".format(port=h.port, name=name, keys=keys[name], vt=K["vt"], bp=backend.port))
    h.write_conf("\n".join(conf))
    yield from h.serve()


def jwt(vhost, valid=True, **extra):
    c = rvoauth.claims(jti=uuid.uuid4().hex, **extra)
    if vhost == "hs256":
        t = rvoauth.hs256(K["shared"], c)
    else:
        # a certificate file's key has no kid: the token names none
        t = K["rsa"].rs256(c, kid=False)
    return t if valid else rvoauth.tamper(t)


def send(srv, vhost, access_token=None, vt=None, **kw):
    headers = []
    if access_token is not None:
        headers.append(("Authorization", "Bearer " + access_token))
    if vt is not None:
        headers.append(vtok(vt))
    return srv.request("/redox/{rid}", host=vhost + ".test", headers=headers, **kw)


COMBOS = [(j, v) for j in ("jwt-ok", "jwt-bad") for v in ("vt-ok", "vt-wrong")]


@pytest.mark.parametrize("jwt_case,vt_case", COMBOS)
@pytest.mark.parametrize("vhost", VHOSTS)
def test_rv_oauth_openidc_combination(srv, vhost, jwt_case, vt_case):
    token = jwt(vhost, valid=jwt_case == "jwt-ok")
    wrong = new_token()
    r = send(srv, vhost, token, K["vt"] if vt_case == "vt-ok" else wrong)
    # what mod_auth_openidc passes on: the token and its claims
    rvoauth.assert_combination(srv, r, jwt_case, vt_case, token, K["vt"], rvoauth.OPENIDC_INVALID,
                               {"OIDC_CLAIM_sub": rvoauth.SUBJECT, "OIDC_access_token": token},
                               (token, K["vt"], wrong, K["shared"]))


@pytest.mark.parametrize("vhost", VHOSTS)
def test_rv_oauth_openidc_no_access_token(srv, vhost):
    r = send(srv, vhost, None, K["vt"])
    assert r.status == 401, r
    assert r.header_values("WWW-Authenticate") == [rvoauth.OPENIDC_NO_TOKEN]
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=prod rvver=ok")


@pytest.mark.parametrize("vhost", VHOSTS)
def test_rv_oauth_openidc_expired_token(srv, vhost):
    r = send(srv, vhost, jwt(vhost, exp=1), K["vt"])
    assert r.status == 401, r
    assert r.header_values("WWW-Authenticate") == [rvoauth.OPENIDC_INVALID]
    assert r.backend_requests == []


@pytest.mark.parametrize("vhost", VHOSTS)
def test_rv_oauth_openidc_no_vtoken(srv, vhost):
    r = send(srv, vhost, jwt(vhost))
    assert r.status == 401, r
    assert r.header_values("WWW-Authenticate") == [rvhttpd.CH_MISSING]
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=- rvver=missing")


@pytest.mark.parametrize("vhost", VHOSTS)
def test_rv_oauth_openidc_handshake_answered(srv, vhost):
    r = srv.request("/redox/{rid}", host=vhost + ".test", method="POST",
                    headers=[("Content-Type", "application/json")],
                    body=json.dumps({"verification-token": K["vt"],
                                     "challenge": HANDSHAKE_UUID}))
    assert r.status == 200, r
    assert r.body == HANDSHAKE_UUID.encode()
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=prod rvver=handshake")
