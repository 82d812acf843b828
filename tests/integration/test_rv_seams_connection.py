"""Seam: hop-by-hop headers.  mod_proxy drops every header that the
client's Connection header names, after the module has set its own:
a client naming RedoxSourceHeader there would make the accepted token's
NAME disappear before the backend.  The module's header always arrives;
the rest of Connection is left as the client sent it."""

import pytest

import rvhttpd
from rvhttpd import both, new_token

T = {}


@pytest.fixture(scope="module")
def srv(backend):
    T["tok"] = new_token()
    yield from rvhttpd.serving("seams-connection", lambda h: rvhttpd.vhost(
        h.port, "conn.test",
        rvhttpd.verified("/redox/", T, "RedoxSourceHeader X-Redox-Source",
                         proxy=(backend.port, "/redox/"))), backend)


@pytest.mark.parametrize("conn", [
    "X-Redox-Source",
    "x-redox-source",
    "X_Redox_Source",
    "keep-alive, X-Redox-Source, X-Other",
    "X-Other,x-redox-source",
])
def test_rv_seams_connection_source_header_arrives(srv, conn):
    r = srv.request("/redox/{rid}", host="conn.test",
                    headers=both(T["tok"]) + [("X-Redox-Source", "spoofed"),
                                              ("X-Other", "hop"), ("Connection", conn)])
    assert r.status == 200, r.text
    rec = r.backend_requests[0]
    assert rec.values("X-Redox-Source") == ["tok"], rec.headers
    # what else Connection named is still the client's hop-by-hop header
    if "X-Other" in conn:
        assert not rec.has("X-Other"), rec.headers
    else:
        assert rec.values("X-Other") == ["hop"], rec.headers
