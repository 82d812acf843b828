"""mod_redox_verify beside Debian's mod_oauth2 (libapache2-mod-oauth2) in one
Location, as a site does when Redox authenticates with OAuth 2.0 / JWT
credentials (issue 15): this module checks `verification-token`
(RedoxTokenHeaders verification-token), mod_oauth2 the access token in
`Authorization: Bearer`, and only a request that passes both reaches the
backend, with the access token and its claims but never the verification
token.

The access tokens are JWTs minted here (rvoauth): HS256 with a shared key
(`OAuth2TokenVerify plain`) and RS256 with an RSA key given as a JWK
(`OAuth2TokenVerify jwk`).  mod_oauth2's `pem` and `pubkey` types take a
multi-line PEM text as one argument, which httpd's configuration syntax
cannot hold, so they are not offered to an admin here.

The same is tried with `Satisfy Any`, `<RequireAny>` and `<RequireAll>`
around the OAuth module's `Require` line: the verification token stays
mandatory whatever they say (whether the access token is still needed is
httpd's business and differs between them), and Redox's handshake is
answered there, Satisfy Any included."""

import json
import uuid

import pytest

import rvhttpd
import rvoauth
from rvhttpd import new_token, vtok

K = {}                 # keys, tokens, the server
HANDSHAKE_UUID = rvhttpd.HANDSHAKE_UUID

# The Locations: the OAuth2TokenVerify type, the access control around the
# OAuth module's `Require` line, and whether that still needs a valid access
# token from 127.0.0.1 (the test client).
SCOPES = {
    # the plain forms, one per OAuth2TokenVerify type
    "hs256": ("plain", "Require valid-user", True),
    "rs256": ("jwk", "Require valid-user", True),
    # the address check fails for 127.0.0.1: the token decides
    "satisfy-any": ("plain", "Order Deny,Allow\n    Deny from all\n"
                    "    Allow from 192.0.2.1\n    Satisfy Any\n"
                    "    Require valid-user", True),
    # mod_access_compat without Deny lets every address in, and Satisfy
    # Any then skips authentication: the access token is not needed
    "satisfy-any-open": ("plain", "Satisfy Any\n    Require valid-user", False),
    "require-any": ("plain", "<RequireAny>\n        Require valid-user\n"
                    "        Require ip 192.0.2.0/24\n    </RequireAny>", True),
    # the address alone satisfies <RequireAny>: no access token needed
    "require-any-ip": ("plain", "<RequireAny>\n        Require valid-user\n"
                       "        Require ip 127.0.0.1\n    </RequireAny>", False),
    "require-all": ("jwk", "<RequireAll>\n        Require valid-user\n"
                    "        Require ip 127.0.0.1\n"
                    "        Require oauth2_claim aud:%s\n    </RequireAll>"
                    % rvoauth.AUDIENCE, True),
}


# What the other modules log, at their own levels, for the refusals below:
# mod_oauth2 for a bad signature or an expired token (never the token),
# mod_access_compat for Deny from all, mod_authz_core for a failed claim.
ALLOWED = [
    r"\[oauth2:warn\].* _oauth2_jose_jwt_verify_jwk: cjose_jws_verify failed: ",
    r"\[oauth2:error\].* _oauth2_jose_jwt_validate_exp: \"exp\" validation failure",
    r"\[access_compat:error\].* AH01797: client denied by server configuration: "
    r"proxy:http://127\.0\.0\.1:\d+/oauth2/satisfy-any/",
    r"\[authz_core:error\].* AH01631: user %s: authorization failure "
    r"for \"/require-all/" % rvoauth.SUBJECT,
]


def scope_conf(name, bp):
    kind, access, _ = SCOPES[name]
    verify = {"plain": "plain %s" % K["shared"],
              "jwk": "jwk %s" % K["rsa"].jwk_arg()}[kind]
    return """
<Location /{name}/>
    RedoxVerify On
    RedoxTokenHeaders verification-token
    RedoxVerificationToken prod {vt}

    AuthType oauth2
    OAuth2TokenVerify {verify} verify.exp=required
    {access}

    ProxyPass http://127.0.0.1:{bp}/oauth2/{name}/
</Location>
""".format(name=name, vt=K["vt"], verify=verify, access=access, bp=bp)


@pytest.fixture(scope="module")
def srv(backend):
    K["vt"] = new_token()
    K["shared"] = rvoauth.new_shared_key()
    h = rvhttpd.Httpd("oauth2", allowed=ALLOWED, env=rvoauth.httpd_env())
    h.backend = backend
    K["rsa"] = rvoauth.RsaKey(h.root / "secrets", "as-1")
    h.write_conf("\n".join([rvoauth.AUTHZ_USER, rvoauth.ACCESS_COMPAT, rvoauth.MOD_OAUTH2])
                 + "".join(scope_conf(n, backend.port) for n in SCOPES))
    yield from h.serve()


def jwt(scope, valid=True, **extra):
    """A fresh access token for the scope's OAuth2TokenVerify; not valid:
    the same token with a broken signature."""
    c = rvoauth.claims(jti=uuid.uuid4().hex, **extra)
    if SCOPES[scope][0] == "plain":
        t = rvoauth.hs256(K["shared"], c)
    else:
        t = K["rsa"].rs256(c)
    return t if valid else rvoauth.tamper(t)


def user_field(line):
    return line.split(" ")[2]


def assert_no_secret_logged(srv, rid, *secrets):
    lines = srv.access_lines(rid) + srv.error_lines(rid, timeout=0)
    for line in lines:
        for s in secrets:
            assert s not in line, line


def assert_passed(srv, r, access_token, checked):
    """Reached the backend once, with the access token as it was sent and
    mod_oauth2's claims (when it checked it), never the verification token."""
    assert r.status == 200, r
    assert r.header_values("WWW-Authenticate") == []
    rec = rvhttpd.assert_forwarded(r.backend_requests, secrets=[K["vt"]],
                                   authorization=["Bearer " + access_token])
    line = srv.access_line(r.rid)
    assert line.endswith(" rvsrc=prod rvver=ok"), line
    if checked:
        assert rec.values("OAUTH2_CLAIM_sub") == [rvoauth.SUBJECT], rec
        assert rec.values("OAUTH2_CLAIM_aud") == [rvoauth.AUDIENCE], rec
        assert rec.values("OAUTH2_CLAIM_access_token") == [access_token], rec
        assert user_field(line) == rvoauth.SUBJECT, line
    else:
        assert not rec.has("OAUTH2_CLAIM_sub"), rec
        assert user_field(line) == "-", line


def assert_refused_by_us(srv, r, reason="wrong-token", then_oauth2=False):
    """Denied by this module.  then_oauth2: under Satisfy Any httpd goes on
    to authentication after the denial, and mod_oauth2 refuses a bad
    access token too, adding its own challenge."""
    assert r.status == 401, r
    assert r.backend_requests == []
    challenges = r.header_values("WWW-Authenticate")
    assert rvoauth.OURS.match(challenges[0]), challenges
    assert challenges[1:] == ([rvoauth.OAUTH2_INVALID] if then_oauth2 else []), challenges
    line = srv.access_line(r.rid)
    assert line.endswith(" rvsrc=- rvver=%s" % reason), line
    assert [l for l in srv.error_lines(r.rid) if "redox_verify: denied %s:" % reason in l]


def assert_refused_by_oauth2(srv, r, challenge=rvoauth.OAUTH2_INVALID):
    assert r.status == 401, r
    assert r.backend_requests == []
    assert r.header_values("WWW-Authenticate") == [challenge]
    line = srv.access_line(r.rid)
    assert line.endswith(" rvsrc=prod rvver=ok"), line
    assert user_field(line) == "-", line
    assert not [l for l in srv.error_lines(r.rid, timeout=0) if "redox_verify: denied" in l]


def send(srv, scope, access_token=None, vt=None):
    headers = []
    if access_token is not None:
        headers.append(("Authorization", "Bearer " + access_token))
    if vt is not None:
        headers.append(vtok(vt))
    return srv.request("/%s/{rid}" % scope, headers=headers)


# ---------------------------------------------------------------------------
# The four combinations in every scope
# ---------------------------------------------------------------------------
COMBOS = [(j, v) for j in ("jwt-ok", "jwt-bad") for v in ("vt-ok", "vt-wrong")]


@pytest.mark.parametrize("jwt_case,vt_case", COMBOS)
@pytest.mark.parametrize("scope", list(SCOPES))
def test_rv_oauth_mod_oauth2_combination(srv, scope, jwt_case, vt_case):
    token = jwt(scope, valid=jwt_case == "jwt-ok")
    wrong = new_token()
    r = send(srv, scope, token, K["vt"] if vt_case == "vt-ok" else wrong)
    needs_jwt = SCOPES[scope][2]
    if vt_case == "vt-wrong":
        # always this module's refusal, whatever the access control says
        assert_refused_by_us(srv, r, then_oauth2=jwt_case == "jwt-bad"
                             and scope.startswith("satisfy-any"))
    elif jwt_case == "jwt-bad" and needs_jwt:
        assert_refused_by_oauth2(srv, r)
    else:
        assert_passed(srv, r, token, checked=needs_jwt)
    assert_no_secret_logged(srv, r.rid, token, K["vt"], wrong, K["shared"])


# ---------------------------------------------------------------------------
# More refusals: who answers what
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["hs256", "rs256"])
def test_rv_oauth_mod_oauth2_no_vtoken_refused_by_us(srv, scope):
    r = send(srv, scope, jwt(scope))
    assert_refused_by_us(srv, r, "missing")


@pytest.mark.parametrize("scope", ["hs256", "rs256"])
def test_rv_oauth_mod_oauth2_no_access_token_refused_by_oauth2(srv, scope):
    r = send(srv, scope, None, K["vt"])
    assert_refused_by_oauth2(srv, r, rvoauth.OAUTH2_NO_TOKEN)


@pytest.mark.parametrize("scope", ["hs256", "rs256"])
def test_rv_oauth_mod_oauth2_expired_token_refused_by_oauth2(srv, scope):
    r = send(srv, scope, jwt(scope, exp=1), K["vt"])
    assert_refused_by_oauth2(srv, r)


def test_rv_oauth_mod_oauth2_token_of_other_key_refused(srv):
    # an HS256 token where the RS256 key is configured, and the reverse
    r = send(srv, "rs256", jwt("hs256"), K["vt"])
    assert_refused_by_oauth2(srv, r)
    r = send(srv, "hs256", jwt("rs256"), K["vt"])
    assert_refused_by_oauth2(srv, r)


def test_rv_oauth_mod_oauth2_claim_requirement(srv):
    # <RequireAll> with Require oauth2_claim: a valid token for another
    # audience is refused by authorization, after both checks passed
    r = send(srv, "require-all", jwt("require-all", aud="https://other.example.org/"),
             K["vt"])
    assert r.status == 401, r
    assert r.header_values("WWW-Authenticate") == []
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=prod rvver=ok")


def test_rv_oauth_mod_oauth2_our_token_as_bearer_is_stripped(srv):
    """Redox's own form, the verification token in both headers: the Bearer
    is ours, so it is removed before mod_oauth2 looks, which then finds no
    access token; the secret reaches neither mod_oauth2's pass-through nor
    the backend."""
    r = send(srv, "hs256", K["vt"], K["vt"])
    assert_refused_by_oauth2(srv, r, rvoauth.OAUTH2_NO_TOKEN)


# ---------------------------------------------------------------------------
# The handshake is answered by this module in every such Location
# ---------------------------------------------------------------------------
def handshake(srv, scope, token, access_token=None):
    extra = [("Authorization", "Bearer " + access_token)] if access_token else []
    return srv.request("/%s/{rid}" % scope, method="POST",
                       headers=[("Content-Type", "application/json")] + extra,
                       body=json.dumps({"verification-token": token,
                                        "challenge": HANDSHAKE_UUID}))


# With Satisfy Any an access checker's answer that is not OK does not end
# the request: httpd goes on to authentication, where mod_oauth2 would
# refuse the handshake (it carries no access token).  The module answers the
# handshake in the header parser, before any of that.
@pytest.mark.parametrize("scope", list(SCOPES))
def test_rv_oauth_mod_oauth2_handshake_answered(srv, scope):
    r = handshake(srv, scope, K["vt"])
    assert r.status == 200, r
    assert r.body == HANDSHAKE_UUID.encode()
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=prod rvver=handshake")


@pytest.mark.parametrize("scope", list(SCOPES))
def test_rv_oauth_mod_oauth2_handshake_wrong_token(srv, scope):
    wrong = new_token()
    r = handshake(srv, scope, wrong)
    assert r.status == 401, r
    assert HANDSHAKE_UUID.encode() not in r.body
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=- rvver=wrong-token")


@pytest.mark.parametrize("scope", ["hs256", "rs256"])
def test_rv_oauth_mod_oauth2_handshake_with_access_token_answered(srv, scope):
    """Redox may send its access token with the handshake too: this scope
    does not read Authorization (RedoxTokenHeaders verification-token), so
    the request is still a handshake, answered here."""
    token = jwt(scope)
    r = handshake(srv, scope, K["vt"], token)
    assert r.status == 200, r
    assert r.body == HANDSHAKE_UUID.encode()
    assert r.backend_requests == []
    assert srv.access_line(r.rid).endswith(" rvsrc=prod rvver=handshake")
    assert_no_secret_logged(srv, r.rid, token, K["vt"])
