"""Seam: mod_proxy and mod_rewrite build the backend's URL from copies
of the request: ProxyPass ... nocanon and RewriteRule ... [P,NE] from the
URI as the client sent it, in the translate phase, before any access
check; RewriteRule [PT] moves the request into another scope.  A verified
request with the token in its query must reach the backend without it,
whichever way the URL is built."""

import urllib.parse

import pytest

import rvhttpd
import rvseams
from rvhttpd import both, new_token

T = {}


@pytest.fixture(scope="module")
def srv(backend):
    T["tok"] = new_token()
    h = rvhttpd.Httpd("seams-proxy")
    h.backend = backend
    h.write_conf("""
<VirtualHost 127.0.0.1:{port}>
    ServerName proxy.test
    RedoxVerificationToken tok {tok}
    RedoxSourceHeader X-Redox-Source
    RewriteEngine On
    RewriteRule ^/rw-p/(.*)$ http://127.0.0.1:{bp}/rw-p/$1 [P]
    RewriteRule ^/rw-pne/(.*)$ http://127.0.0.1:{bp}/rw-pne/$1 [P,NE]
    RewriteCond %{{THE_REQUEST}} "^\\S+ (\\S+)"
    RewriteRule ^/rw-the/(.*)$ http://127.0.0.1:{bp}/rw-the/$1?line=%1 [P,B]
    RewriteRule ^/rw-pt/(.*)$ /canon/$1 [PT]
    ProxyPass /canon/ http://127.0.0.1:{bp}/canon/
    ProxyPass /nocanon/ http://127.0.0.1:{bp}/nocanon/ nocanon
    ProxyPassMatch ^/match/(.*)$ http://127.0.0.1:{bp}/match/$1
    <LocationMatch "^/(canon|nocanon|match|rw-p|rw-pne|rw-the)/">
        RedoxVerify On
    </LocationMatch>
</VirtualHost>
""".format(port=h.port, bp=backend.port, **T))
    yield from h.serve()


P = "proxy.test"
WAYS = ["canon", "nocanon", "match", "rw-p", "rw-pne", "rw-the", "rw-pt"]


@pytest.mark.parametrize("way", WAYS)
def test_rv_seams_proxy_query_token_never_forwarded(srv, way):
    t = T["tok"]
    r = srv.request("/%s/a-b/{rid}?verification-token=%s&keep=1" % (way, t),
                    host=P, headers=both(t))
    assert r.status == 200, (r.status, r.text)
    target = "canon" if way == "rw-pt" else way
    rec = rvhttpd.assert_forwarded(r.backend_requests, "tok", "/%s/" % target)
    # (rw-the has the request line's URI, escaped, as its query)
    seen = urllib.parse.unquote(rec.path)
    assert "verification-token=REDACTED" in seen, rec.path
    assert "keep=1" in seen
    rvseams.assert_nowhere(srv, [t], r.text)


@pytest.mark.parametrize("way", WAYS)
def test_rv_seams_proxy_unverified_refused(srv, way):
    r = srv.request("/%s/x/{rid}" % way, host=P)
    assert r.status == 401, (r.status, r.text)
    assert r.backend_requests == []
    assert srv.access_fields(r.rid)[1] == "missing"


def test_rv_seams_proxy_handshake_not_forwarded(srv):
    """A GET handshake on a nocanon ProxyPass: answered here, and the
    backend sees nothing."""
    t = T["tok"]
    challenge = "5b1f6c2e-1111-4c3a-9a0e-6e1d2c3b4a5f"
    r = srv.request("/nocanon/{rid}?challenge=%s&verification-token=%s" % (challenge, t),
                    host=P)
    assert r.status == 200 and r.text == challenge
    assert r.backend_requests == []
    assert srv.access_fields(r.rid) == ("tok", "handshake")
    rvseams.assert_nowhere(srv, [t])
