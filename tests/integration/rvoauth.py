"""JWT access tokens, keys and an HTTPS client for the tests of this module
beside Debian's OAuth 2.0 modules (test_rv_oauth_*.py): mod_oauth2
(libapache2-mod-oauth2) and mod_auth_openidc's AuthType oauth20
(libapache2-mod-auth-openidc).

Everything is made locally, no network: HS256 tokens are signed with the
standard library's hmac, RS256 tokens by `openssl dgst -sha256 -sign` with
an RSA key that `openssl genrsa` made for the test; the public half is
given to the OAuth module as a JWK (its modulus from `openssl rsa
-modulus`) or as a self-signed certificate file.  Every key and token made
here is registered with rvhttpd as a secret, so the suite's last test
finds it if any log holds it."""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import rvhttpd
from rvhttpd import register_secret

MODDIR = rvhttpd.MODDIR
# What AuthType oauth2 / oauth20 and Require valid-user need beyond the
# modules every generated server loads.
AUTHZ_USER = 'LoadModule authz_user_module "%s"' % (MODDIR / "mod_authz_user.so")
MOD_OAUTH2 = 'LoadModule oauth2_module "%s"' % (MODDIR / "mod_oauth2.so")
MOD_OPENIDC = 'LoadModule auth_openidc_module "%s"' % (MODDIR / "mod_auth_openidc.so")
ACCESS_COMPAT = 'LoadModule access_compat_module "%s"' % (MODDIR / "mod_access_compat.so")

SUBJECT = "redox-client"     # the access tokens' sub, which becomes REMOTE_USER
AUDIENCE = "https://redox.example.org/"


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(lifetime=600, **extra):
    """Claims of an access token issued now, valid for lifetime seconds (a
    negative lifetime: expired that long ago)."""
    now = int(time.time())
    c = {"sub": SUBJECT, "aud": AUDIENCE, "iat": now - 5, "exp": now + lifetime}
    c.update(extra)
    return c


def _signing_input(alg, payload, kid=None):
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    return (b64u(json.dumps(header, separators=(",", ":")).encode()) + "."
            + b64u(json.dumps(payload, separators=(",", ":")).encode()))


def hs256(key, payload, kid=None):
    """A compact HS256 JWT signed with the shared key."""
    si = _signing_input("HS256", payload, kid)
    sig = hmac.new(key.encode(), si.encode(), hashlib.sha256).digest()
    return register_secret(si + "." + b64u(sig))


def new_shared_key():
    """An HS256 shared key (a secret of the OAuth module's), registered."""
    return rvhttpd.new_token(32)


class RsaKey:
    """An RSA key pair made with openssl in directory (root only): the
    private key signs RS256 tokens, the public half is offered as a JWK
    (self.jwk, JSON) and as a self-signed certificate (self.cert)."""

    def __init__(self, directory, kid):
        directory.mkdir(parents=True, exist_ok=True)
        self.kid = kid
        self.key = directory / ("%s.key" % kid)
        self.cert = directory / ("%s.crt" % kid)
        subprocess.run(["openssl", "genrsa", "-out", str(self.key), "2048"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "req", "-new", "-x509", "-key", str(self.key),
                        "-subj", "/CN=%s" % kid, "-days", "2", "-out", str(self.cert)],
                       check=True, capture_output=True, timeout=60)
        out = subprocess.run(["openssl", "rsa", "-in", str(self.key), "-noout", "-modulus"],
                             check=True, capture_output=True, text=True, timeout=60).stdout
        self.n = b64u(bytes.fromhex(out.strip().split("=", 1)[1]))
        self.jwk = json.dumps({"kty": "RSA", "kid": kid, "use": "sig", "n": self.n,
                               "e": "AQAB"}, separators=(",", ":"))

    def jwk_arg(self):
        """The JWK as one double-quoted httpd configuration argument."""
        return '"%s"' % self.jwk.replace('"', '\\"')

    def rs256(self, payload, kid=True):
        si = _signing_input("RS256", payload, self.kid if kid else None)
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=si.encode(), check=True, capture_output=True,
                             timeout=60).stdout
        return register_secret(si + "." + b64u(sig))


class JwksServer:
    """An authorization server's JSON Web Key Set on loopback (plain HTTP),
    for OAuth2TokenVerify jwks_uri / OIDCOAuthVerifyJwksUri; counts the
    fetches."""

    def __init__(self, *keys):
        body = json.dumps({"keys": [json.loads(k.jwk) for k in keys]}).encode()
        jwks = self
        self.fetches = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                jwks.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/.well-known/jwks.json" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def server_cert(directory, name):
    """A self-signed end-entity certificate and key for the DNS name."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / ("%s.pem" % name), directory / ("%s.key" % name)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:" + name,
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-addext", "extendedKeyUsage=serverAuth",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def tamper(jwt):
    """The same token with one signature character changed: a bad signature."""
    head, sig = jwt.rsplit(".", 1)
    c = "A" if sig[5] != "A" else "B"
    return register_secret(head + "." + sig[:5] + c + sig[6:])


# What each module answers (WWW-Authenticate), to tell who refused.
OURS = re.compile(r'^Bearer realm="Redox"(, error="(invalid_token|invalid_request)")?$')
OAUTH2_INVALID = 'Bearer error="invalid_token", error_description="Token could not be verified."'
OAUTH2_NO_TOKEN = ('Bearer error="invalid_request", '
                   'error_description="No bearer token found in the request."')
OPENIDC_INVALID = 'Bearer error="invalid_token", error_description="JWT token could not be validated"'
OPENIDC_NO_TOKEN = ('Bearer error="invalid_request", '
                    'error_description="No bearer token found in the request"')

# mod_auth_openidc's own lines: the deprecation notice of its oauth20 mode
# at every start, and one error pair per token it refuses.
OPENIDC_ALLOWED = [
    r"\[auth_openidc:warn\].*oidc_check_config_oauth: The OAuth 2\.0 Resource "
    r"Server functionality is deprecated",
    r"\[auth_openidc:error\].*(oidc_proto_jwt_verify: JWT signature verification "
    r"failed|oidc_oauth_validate_jwt_access_token: JWT access token signature could "
    r"not be validated|oidc_proto_validate_exp: \"exp\" validation failure)",
]


def httpd_env():
    """The environment of a server that loads these modules.  Under `make
    asan` (ASAN_OPTIONS set) LeakSanitizer is off there: liboauth2, curl
    handles it makes and mod_auth_openidc keep memory allocated while the
    configuration is read that nothing frees at exit, and once httpd has
    unloaded them LeakSanitizer cannot name them for a suppression.
    AddressSanitizer and UBSan still watch every request, and every other
    server of the suite keeps the leak check for this module."""
    opts = os.environ.get("ASAN_OPTIONS")
    if opts is None:
        return {}
    opts = ":".join(o for o in opts.split(":") if not o.startswith("detect_leaks="))
    return {"ASAN_OPTIONS": opts + ":detect_leaks=0"}


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI and certificate check for server_name."""

    def __init__(self, port, server_name, context, timeout=15):
        super().__init__("127.0.0.1", port, timeout=timeout, context=context)
        self.server_name = server_name

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.server_name)


def https_request(h, port, server_name, cafile, path, headers=(), method="GET", body=None):
    """One HTTPS request (TLS 1.2+, the server's certificate checked against
    cafile for server_name); path as for Httpd.request ('{rid}')."""
    rid = rvhttpd.new_rid()
    path = path.replace("{rid}", rid) if "{rid}" in path else path + "?rid=" + rid
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    conn = _SNIConnection(port, server_name, ctx)
    try:
        rvhttpd.put_request(conn, method, path, server_name, headers, body)
        resp = conn.getresponse()
        data = rvhttpd.record_response(resp.read())
        return rvhttpd.Response(resp.status, resp.getheaders(), data, rid, path, h.backend)
    finally:
        conn.close()


def assert_combination(srv, r, jwt_case, vt_case, token, vt, jwt_invalid, passed_on,
                       secrets, vt_challenge=None, prefix=None):
    """One combination of an access token (jwt-ok, jwt-bad) and the
    verification token (vt-ok, vt-wrong) beside an OAuth module: a wrong
    verification token is the module's 401 (vt_challenge, or any of OURS)
    with its denial line; a bad access token the OAuth module's (challenge
    jwt_invalid) after the module accepted; both good, forwarded with the
    access token and what the OAuth module passes on (passed_on: header ->
    value), never the verification token.  No secret in any log line."""
    challenges = r.header_values("WWW-Authenticate")
    line = srv.access_line(r.rid)
    rec = None
    if vt_case == "vt-wrong":
        rvhttpd.assert_refused(r, 401, r.backend_requests)
        if vt_challenge is None:
            assert len(challenges) == 1 and OURS.match(challenges[0]), challenges
        else:
            assert challenges == [vt_challenge], challenges
        assert line.endswith(" rvsrc=- rvver=wrong-token"), line
        assert [l for l in srv.error_lines(r.rid) if rvhttpd.DENIED + "wrong-token:" in l]
    elif jwt_case == "jwt-bad":
        rvhttpd.assert_refused(r, 401, r.backend_requests, [jwt_invalid])
        assert line.endswith(" rvsrc=prod rvver=ok"), line
    else:
        assert r.status == 200, r
        assert challenges == []
        assert line.split(" ")[2] == SUBJECT, line
        assert line.endswith(" rvsrc=prod rvver=ok"), line
        rec = rvhttpd.assert_forwarded(r.backend_requests, prefix=prefix, secrets=[vt],
                                       authorization=["Bearer " + token])
        for k, v in passed_on.items():
            assert rec.values(k) == [v], rec
    for l in srv.access_lines(r.rid) + srv.error_lines(r.rid, timeout=0):
        for s in secrets:
            assert s not in l, l
    return rec
