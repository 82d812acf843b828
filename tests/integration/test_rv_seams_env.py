"""Seam: the environment an internal redirect carries.  A CGI outside
the verified scope runs with the token headers in CGI form
(HTTP_VERIFICATION_TOKEN, HTTP_AUTHORIZATION, HTTP_X_REDOX_SOURCE); when
it answers with a local Location, httpd redirects internally and the next
request starts with REDIRECT_ copies of that environment, one more
REDIRECT_ for each further hop.  The verified request at the end of the
chain must see none of them, however many hops it took."""

import pytest

import rvhttpd
import rvseams
from rvhttpd import both, new_token

T = {}
V = "env.test"


def _hop(to):
    return "#!/bin/sh\nprintf 'Location: %s\\r\\n\\r\\n'\n" % to


@pytest.fixture(scope="module")
def srv():
    T["good"] = new_token()
    h = rvhttpd.Httpd("seams-env")
    h.write("hop/one.cgi", _hop("/hop/two.cgi"), 0o755)
    h.write("hop/two.cgi", _hop("/hop/three.cgi"), 0o755)
    h.write("hop/three.cgi", _hop("/v/env.cgi"), 0o755)
    h.write("v/env.cgi", rvseams.ENV_CGI, 0o755)
    h.write("v/runs.log", "", 0o666)
    h.write_conf("""
<VirtualHost 127.0.0.1:{port}>
    ServerName env.test
    ScriptAlias /hop/ "{root}/hop/"
    ScriptAlias /v/ "{root}/v/"
    <Directory "{root}/hop">
        Require all granted
    </Directory>
    <Directory "{root}/v">
        Require all granted
        RedoxVerify On
        RedoxVerificationToken good {good}
        RedoxSourceHeader X-Redox-Source
    </Directory>
</VirtualHost>
""".format(port=h.port, root=h.root, **T))
    yield from h.serve()


@pytest.mark.parametrize("start,hops", [("/v/env.cgi", 0), ("/hop/three.cgi", 1),
                                        ("/hop/two.cgi", 2), ("/hop/one.cgi", 3)])
def test_rv_seams_env_redirect_chain_carries_no_token(srv, start, hops):
    r = srv.request(start, host=V,
                    headers=both(T["good"]) + [("X-Redox-Source", "RV-SPOOFED")])
    assert r.status == 200, (r.status, r.text)
    env = rvseams.cgi_env(r.text)
    assert env["REDOX_SOURCE"] == "good" and env["REDOX_VERIFY"] == "ok", env
    # the chain really went through the hops: httpd's REDIRECT_URL of
    # the last one, and one REDIRECT_ more per hop on what it carried
    if hops:
        assert env["REDIRECT_URL"].startswith("/hop/three.cgi"), env
        assert ("REDIRECT_" * hops + "SCRIPT_NAME") in env, env
    assert env["HTTP_X_REDOX_SOURCE"] == "good", env
    for k, v in env.items():
        assert not k.endswith(("HTTP_VERIFICATION_TOKEN", "HTTP_AUTHORIZATION")), (k, env)
        assert "RV-SPOOFED" not in v, (k, env)
    rvseams.assert_nowhere(srv, [T["good"]], r.text)
