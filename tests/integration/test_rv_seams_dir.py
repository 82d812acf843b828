"""Seam: the file that serves a request is found by a sub-request and
the request is then moved onto it (ap_internal_fast_redirect): mod_dir's
DirectoryIndex, and mod_negotiation's MultiViews.  The check is on the
file (<Files index.cgi>), not on the URL the client sent: the module must
verify and strip on the request that actually runs the CGI, and answer the
handshake there."""

import json

import pytest

import rvhttpd
import rvseams
from rvhttpd import both, new_token

T = {}
CHALLENGE = "6f1c7a54-0b0e-4a52-9d55-0c3f2b1e9a01"


@pytest.fixture(scope="module")
def srv(backend):
    T["dir"] = new_token()
    T["other"] = new_token()
    # mod_include says so when an include is refused
    h = rvhttpd.Httpd("seams-dir", allowed=[r'\[include:error\].*unable to include '
                                            r'"/hooks/".*subrequest returned 401'])
    h.backend = backend
    for d in ("hooks", "mv"):
        h.write("%s/index.cgi" % d, rvseams.ENV_CGI, 0o755)
        h.write("%s/runs.log" % d, "", 0o666)   # the CGI runs as www-data
    h.write("page/page.shtml",
            'RV-SSI-BEGIN\n<!--#include virtual="/hooks/" -->\nRV-SSI-END\n')
    scope = """
        <Files index.cgi>
            RedoxVerify On
            RedoxVerificationToken dir {dir}
            RedoxSourceHeader X-Redox-Source
        </Files>""".format(**T)
    h.write_conf(rvseams.load_modules(("negotiation_module", "mod_negotiation.so")) + """
<VirtualHost 127.0.0.1:{port}>
    ServerName dir.test
    Alias /hooks "{root}/hooks"
    <Directory "{root}/hooks">
        Options +ExecCGI
        AddHandler cgi-script .cgi
        DirectoryIndex index.cgi
        Require all granted
{scope}
    </Directory>
    Alias /mv "{root}/mv"
    <Directory "{root}/mv">
        Options +ExecCGI +MultiViews
        MultiviewsMatch Handlers
        AddHandler cgi-script .cgi
        Require all granted
{scope}
    </Directory>
    Alias /page "{root}/page"
    <Directory "{root}/page">
        Options +Includes
        AddOutputFilter INCLUDES .shtml
        AddType text/html .shtml
        Require all granted
    </Directory>
</VirtualHost>
""".format(port=h.port, root=h.root, scope=scope))
    yield from h.serve()


D = "dir.test"
# The two ways to reach index.cgi without naming it.
PATHS = {"dirindex": ("/hooks/", "hooks"), "multiviews": ("/mv/index", "mv")}


def runs(srv, d):
    return rvseams.lines_of(srv.path("%s/runs.log" % d))


def assert_cgi_not_run(srv, d, rid):
    """The CGI did not run for rid: a later accepted request's run is
    logged, and rid's is not."""
    marker = srv.request(PATHS_BY_DIR[d] + "?marker=1", host=D, headers=both(T["dir"]))
    assert marker.status == 200, marker.text
    rvseams.wait_for(lambda: [l for l in runs(srv, d) if marker.rid in l], what="marker run")
    assert not [l for l in runs(srv, d) if rid in l], runs(srv, d)


PATHS_BY_DIR = {d: p for p, d in PATHS.values()}


@pytest.mark.parametrize("how", sorted(PATHS))
def test_rv_seams_dir_accepted_runs_stripped(srv, how):
    """Both token headers, a spoofed source header and the token in the
    query: the CGI runs without any of them."""
    path, d = PATHS[how]
    t = T["dir"]
    r = srv.request(path + "?verification-token=%s&a=1" % t, host=D,
                    headers=both(t) + [("X-Redox-Source", "spoofed"),
                                       ("X_Redox_Source", "spoofed")])
    assert r.status == 200, r.text
    env = rvseams.cgi_env(r.text)
    assert env["HTTP_X_REDOX_SOURCE"] == "dir", env
    assert "HTTP_VERIFICATION_TOKEN" not in env, env
    assert "HTTP_AUTHORIZATION" not in env, env
    assert r.rid in env["REQUEST_URI"]
    assert "verification-token=REDACTED" in env["REQUEST_URI"], env["REQUEST_URI"]
    assert "verification-token=REDACTED" in env["QUERY_STRING"], env["QUERY_STRING"]
    assert srv.access_fields(r.rid) == ("dir", "ok")
    rvseams.assert_nowhere(srv, [t], r.text, r.headers)


@pytest.mark.parametrize("how", sorted(PATHS))
def test_rv_seams_dir_post_accepted_gets_body(srv, how):
    path, d = PATHS[how]
    t = T["dir"]
    body = json.dumps({"Meta": {"DataModel": "Scheduling"}})
    r = srv.request(path, host=D, method="POST", body=body,
                    headers=both(t) + [("Content-Type", "application/json")])
    assert r.status == 200, r.text
    env = rvseams.cgi_env(r.text)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["BODY_BYTES"] == str(len(body))
    assert "HTTP_VERIFICATION_TOKEN" not in env
    rvseams.assert_nowhere(srv, [t], r.text)


@pytest.mark.parametrize("headers,reason", [
    ((), "missing"),
    ("other", "wrong-token"),
], ids=["no-token", "wrong-token"])
@pytest.mark.parametrize("how", sorted(PATHS))
def test_rv_seams_dir_refused_cgi_not_run(srv, how, headers, reason):
    path, d = PATHS[how]
    hdrs = both(T[headers]) if headers else []
    def denials():
        return [l for l in srv.error_log_text().splitlines()
                if "[redox_verify:error]" in l and "/%s/index.cgi" % d in l
                and "redox_verify: denied " in l]
    before = len(denials())
    r = srv.request(path, host=D, headers=hdrs + [("X-Redox-Source", "spoofed")])
    assert r.status == 401, r.text
    assert (r.header("WWW-Authenticate") or "").startswith(rvhttpd.REALM), r.headers
    assert "RV-" not in r.text and "HTTP_" not in r.text
    # once, by the request that runs, not by the lookup before it (the
    # client read the answer to its end: the request is logged)
    new = denials()[before:]
    assert len(new) == 1 and "redox_verify: denied %s:" % reason in new[0], new
    assert srv.access_fields(r.rid)[1] == reason
    assert_cgi_not_run(srv, d, r.rid)
    rvseams.assert_nowhere(srv, [T["other"]], r.text)


@pytest.mark.parametrize("how", sorted(PATHS))
def test_rv_seams_dir_get_handshake_answered(srv, how):
    path, d = PATHS[how]
    t = T["dir"]
    r = srv.request(path + "?challenge=%s&verification-token=%s" % (CHALLENGE, t), host=D)
    assert r.status == 200, (r.status, r.text)
    assert r.text == CHALLENGE
    assert srv.access_fields(r.rid) == ("dir", "handshake")
    assert_cgi_not_run(srv, d, r.rid)
    rvseams.assert_nowhere(srv, [t], r.headers)


@pytest.mark.parametrize("how", sorted(PATHS))
def test_rv_seams_dir_post_handshake_answered(srv, how):
    path, d = PATHS[how]
    t = T["dir"]
    body = json.dumps({"verification-token": t, "challenge": CHALLENGE})
    r = srv.request(path, host=D, method="POST", body=body,
                    headers=[("Content-Type", "application/json"),
                             ("application-name", "RedoxEngine")])
    assert r.status == 200, (r.status, r.text)
    assert r.text == CHALLENGE
    assert srv.access_fields(r.rid) == ("dir", "handshake")
    assert_cgi_not_run(srv, d, r.rid)


@pytest.mark.parametrize("how", sorted(PATHS))
def test_rv_seams_dir_handshake_wrong_token_refused(srv, how):
    path, d = PATHS[how]
    r = srv.request(path + "?challenge=%s&verification-token=%s" % (CHALLENGE, T["other"]),
                    host=D)
    assert r.status == 401, r.text
    assert CHALLENGE not in r.text
    assert srv.access_fields(r.rid)[1] == "wrong-token"
    assert_cgi_not_run(srv, d, r.rid)
    rvseams.assert_nowhere(srv, [T["other"]], r.text)


def test_rv_seams_dir_ssi_include_virtual_checked(srv):
    """A page outside the scope includes the verified directory: the
    sub-request runs the CGI only with the token, and never a handshake."""
    t = T["dir"]
    r = srv.request("/page/page.shtml", host=D)
    assert r.status == 200
    assert "RV-SSI-BEGIN" in r.text and "RV-SSI-END" in r.text
    assert "HTTP_HOST" not in r.text, r.text          # the CGI's page is not included
    assert_cgi_not_run(srv, "hooks", r.rid)
    r = srv.request("/page/page.shtml?challenge=%s&verification-token=%s" % (CHALLENGE, t),
                    host=D)
    assert CHALLENGE not in r.text.replace("challenge=" + CHALLENGE, "")
    assert "HTTP_HOST" not in r.text
    assert_cgi_not_run(srv, "hooks", r.rid)
    r = srv.request("/page/page.shtml", host=D, headers=both(t))
    assert "HTTP_X_REDOX_SOURCE=dir" in r.text, r.text
    assert "HTTP_VERIFICATION_TOKEN" not in r.text
    rvseams.assert_nowhere(srv, [t], r.text)
