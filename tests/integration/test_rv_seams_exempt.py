"""Seam: an exempt scope (RedoxVerify Off) inside a verified one, and a
path that httpd maps into the exemption while the backend (Tomcat, Spring,
many frameworks) resolves it to the verified part: '..;', ';', an encoded
'/', '\\' or '.', a dot-segment.  The exemption does not apply to a request
whose path, as sent, has any of them: it is checked as the enclosing
verified scope says (fail closed)."""

import pytest

import rvhttpd
import rvraw
from rvhttpd import both, new_token

T = {}


@pytest.fixture(scope="module")
def srv(backend):
    T["tok"] = new_token()
    h = rvhttpd.Httpd("seams-exempt", allowed=[r"AH00026: found %2f"])
    h.backend = backend
    app = """
    ProxyPass /app/ http://127.0.0.1:{bp}/app/
    <Location /app/>
        RedoxVerify On
        RedoxVerificationToken tok {tok}
    </Location>
    <Location /app/health>
        RedoxVerify Off
    </Location>""".format(bp=backend.port, **T)
    h.write_conf("""
<VirtualHost 127.0.0.1:{port}>
    ServerName exempt.test
{app}
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName nodecode.test
    AllowEncodedSlashes NoDecode
{app}
</VirtualHost>
""".format(port=h.port, app=app))
    yield from h.serve()


AMBIGUOUS = [
    ("exempt.test", "/app/health/..;/data"),
    ("exempt.test", "/app/health;/../data"),
    ("exempt.test", "/app/health;jsessionid=1"),
    ("exempt.test", "/app/health/..%5cdata"),
    ("exempt.test", "/app/health/..\\data"),
    ("exempt.test", "/app/health/%2e%2e/data"),
    ("exempt.test", "/app/health/./status"),
    ("nodecode.test", "/app/health/..%2fdata"),
    ("nodecode.test", "/app/health/%2e%2e%2fdata"),
    ("nodecode.test", "/app/health/..%2Fdata"),
]


def send(srv, host, path, headers=()):
    rid = rvhttpd.new_rid()
    raw = rvraw.request(target="%s?rid=%s" % (path, rid), host=host,
                        lines=["%s: %s" % kv for kv in headers])
    ex = rvraw.exchange(srv.port, raw)
    assert ex.final, ex
    return rid, ex.final[0]


@pytest.mark.parametrize("host,path", AMBIGUOUS, ids=[p for _, p in AMBIGUOUS])
def test_rv_seams_exempt_ambiguous_path_checked(srv, host, path):
    rid, resp = send(srv, host, path)
    assert resp.status in (401, 404), resp        # refused: httpd's 404 or ours
    assert srv.backend.find(rid) == [], srv.backend.find(rid)
    if resp.status == 401:
        assert srv.access_fields(rid)[1] == "missing"


@pytest.mark.parametrize("host,path", AMBIGUOUS, ids=[p for _, p in AMBIGUOUS])
def test_rv_seams_exempt_ambiguous_path_with_token_passes(srv, host, path):
    rid, resp = send(srv, host, path, both(T["tok"]))
    if resp.status == 404:
        # httpd's own refusal of that form (an encoded slash without
        # NoDecode): never ours, never the backend's
        assert srv.backend.find(rid) == []
        return
    assert resp.status == 200, resp
    recs = srv.backend.find(rid)
    assert len(recs) == 1
    assert not recs[0].has("verification-token") and not recs[0].has("Authorization")


@pytest.mark.parametrize("path", ["/app/health", "/app/health/", "/app/health/status.json",
                                  "/app/health/.well-known"])
def test_rv_seams_exempt_plain_paths_still_exempt(srv, path):
    rid, resp = send(srv, "exempt.test", path)
    assert resp.status == 200, resp
    assert len(srv.backend.find(rid)) == 1


def test_rv_seams_exempt_outside_exemption_verified(srv):
    rid, resp = send(srv, "exempt.test", "/app/data")
    assert resp.status == 401
    assert srv.backend.find(rid) == []
