"""Seam: the ErrorDocument of a refused request.  httpd redirects the
refused request internally to the ErrorDocument, with the same headers,
and a CGI or a proxied application serving it answers with its own
status.  The refusal must reach the client as the refusal (a 200 there is
a patient message Redox counts as delivered), the token the client
presented and the body must not reach whatever serves the ErrorDocument,
and %{REDOX_VERIFY}e, which reads the final request, must show why."""

import pytest

import rvhttpd
import rvseams
from rvhttpd import both, new_token

T = {}


@pytest.fixture(scope="module")
def srv(backend):
    T["good"] = new_token()
    T["wrong"] = new_token()
    h = rvhttpd.Httpd("seams-errordoc", allowed=[
        rvhttpd.BAD_CHALLENGE_LOGGED])
    h.backend = backend
    bp = backend.port
    h.write("errors/401.html", "RV-STATIC-ERROR-PAGE\n")
    h.write("cgi-errors/err.cgi", rvseams.ERROR_CGI, 0o755)
    h.write("cgi-errors/runs.log", "", 0o666)
    h.write("cgi/redir.cgi",
            "#!/bin/sh\nprintf 'Location: /local/after-redirect\\r\\n\\r\\n'\n", 0o755)
    h.write("local/after-redirect", "RV-AFTER-REDIRECT\n")

    def scope(path, extra, target="app"):
        return """
    <Location {path}>
        RedoxVerify On
        RedoxVerificationToken good {good}
        RedoxSourceHeader X-Redox-Source
{extra}
        ProxyPass http://127.0.0.1:{bp}/{target}{path}
    </Location>""".format(path=path, extra=extra, bp=bp, target=target, **T)

    h.write_conf("""
<VirtualHost 127.0.0.1:{port}>
    ServerName err.test
    ProxyPass /errors-app/ http://127.0.0.1:{bp}/errors-app/
    Alias /static-errors "{root}/errors"
    ScriptAlias /cgi-errors/ "{root}/cgi-errors/"
    ScriptAlias /cgi/ "{root}/cgi/"
    Alias /local "{root}/local"
    <Directory "{root}/errors">
        Require all granted
    </Directory>
    <Directory "{root}/cgi-errors">
        Require all granted
    </Directory>
    <Directory "{root}/cgi">
        Require all granted
        RedoxVerify On
        RedoxVerificationToken good {good}
    </Directory>
    <Directory "{root}/local">
        Require all granted
    </Directory>
{proxied}
{static}
{cgi}
{inscope}
{url403}
{proxied403}
{text}
{badchallenge}
</VirtualHost>
""".format(port=h.port, root=h.root, bp=bp,
           proxied=scope("/proxied/", "        ErrorDocument 401 /errors-app/401"),
           static=scope("/static/", "        ErrorDocument 401 /static-errors/401.html"),
           cgi=scope("/cgi-err/", "        ErrorDocument 401 /cgi-errors/err.cgi"),
           inscope=scope("/inscope/", "        ErrorDocument 401 /inscope/error-page"),
           url403=scope("/url403/", "        RedoxDenyStatus 403\n"
                        "        ErrorDocument 403 http://elsewhere.test/denied"),
           proxied403=scope("/proxied403/", "        RedoxDenyStatus 403\n"
                            "        ErrorDocument 403 /errors-app/403"),
           text=scope("/text/", '        ErrorDocument 401 "RV-TEXT-ERROR"'),
           badchallenge=scope("/badchallenge/", "        ErrorDocument 400 /errors-app/400"),
           **T))
    yield from h.serve()


E = "err.test"
BODY = '{"Meta":{"DataModel":"Results","EventType":"New"},"Patient":"RV-BODY-MARK"}'


def refused(srv, path, token=None):
    """A POST as Redox sends it, with a well-formed wrong token (or
    none), a spoofed source header and a body."""
    hdrs = both(token) if token else []
    return srv.request(path + "{rid}", host=E, method="POST", body=BODY,
                       headers=hdrs + [("Content-Type", "application/json"),
                                       ("X-Redox-Source", "spoofed")])


def error_doc_requests(srv, path):
    """What the application received for the ErrorDocument: the
    redirected request keeps the original URL in REDIRECT_URL only, so
    find it by path."""
    with srv.backend.lock:
        return [r for r in srv.backend.records if r.path == path]


def assert_clean(rec):
    assert not rec.has("verification-token"), rec.headers
    assert not rec.has("Authorization"), rec.headers
    assert not rec.has("X-Redox-Source"), rec.headers
    assert not rec.has("Content-Length") or rec.values("Content-Length") == ["0"], rec.headers
    assert b"RV-BODY-MARK" not in rec.body
    assert rec.method == "GET"


@pytest.mark.parametrize("token", [None, "wrong"], ids=["no-token", "wrong-token"])
def test_rv_seams_errordoc_proxied_keeps_refusal(srv, token):
    before = len(error_doc_requests(srv, "/errors-app/401"))
    r = refused(srv, "/proxied/", T[token] if token else None)
    assert r.status == 401, (r.status, r.text)
    assert r.header_values("WWW-Authenticate")[0].startswith(rvhttpd.REALM)
    # the application's error page is the body, its 200 is not the status
    assert r.text.startswith("backend-ok GET /errors-app/401"), r.text
    recs = error_doc_requests(srv, "/errors-app/401")
    assert len(recs) == before + 1, recs
    assert_clean(recs[-1])
    assert r.backend_requests == []          # the application proper saw nothing
    reason = "wrong-token" if token else "missing"
    assert srv.access_fields(r.rid) == ("-", reason)
    rvseams.assert_nowhere(srv, [T["wrong"], T["good"]], r.text, r.headers)


def test_rv_seams_errordoc_proxied_403_keeps_refusal(srv):
    r = refused(srv, "/proxied403/", T["wrong"])
    assert r.status == 403, (r.status, r.text)
    assert r.text.startswith("backend-ok GET /errors-app/403"), r.text
    assert_clean(error_doc_requests(srv, "/errors-app/403")[-1])
    assert srv.access_fields(r.rid) == ("-", "wrong-token")


def test_rv_seams_errordoc_cgi_keeps_refusal(srv):
    r = refused(srv, "/cgi-err/", T["wrong"])
    assert r.status == 401, (r.status, r.text)
    assert "RV-CGI-ERROR-PAGE" in r.text
    env = rvseams.cgi_env(r.text)
    assert env["REDIRECT_STATUS"] == "401"
    assert env["REDIRECT_REDOX_VERIFY"] == "wrong-token"
    for k in ("HTTP_VERIFICATION_TOKEN", "HTTP_AUTHORIZATION", "HTTP_X_REDOX_SOURCE",
              "CONTENT_LENGTH"):
        assert k not in env, (k, env)
    assert srv.access_fields(r.rid) == ("-", "wrong-token")
    rvseams.assert_nowhere(srv, [T["wrong"]], r.text)


def test_rv_seams_errordoc_static_keeps_refusal(srv):
    r = refused(srv, "/static/", T["wrong"])
    assert r.status == 401
    assert r.text == "RV-STATIC-ERROR-PAGE\n"
    assert srv.access_fields(r.rid) == ("-", "wrong-token")


def test_rv_seams_errordoc_in_scope_refused_again_quietly(srv):
    """An ErrorDocument inside the verified scope is itself unverified:
    refused, with the first refusal's status and httpd's own page; one
    denial line, not two."""
    def denials():
        return [l for l in srv.error_log_text().splitlines()
                if "[redox_verify:error]" in l and "redox_verify: denied" in l]
    before = len(denials())
    r = refused(srv, "/inscope/", T["wrong"])
    assert r.status == 401
    assert "error-page" not in [rec.path.rsplit("/", 1)[-1] for rec in srv.backend.records]
    assert srv.access_fields(r.rid) == ("-", "wrong-token")
    assert len(denials()) == before + 1, denials()[before:]
    assert srv.error_lines('denied missing: uri "/inscope/error-page"')   # at debug


def test_rv_seams_errordoc_full_url_not_a_redirect(srv):
    """A full-URL ErrorDocument would turn the 403 into a redirect that a
    client may follow to a 200."""
    r = refused(srv, "/url403/", T["wrong"])
    assert r.status == 403, (r.status, r.headers)
    assert r.header("Location") is None
    assert "elsewhere.test" not in r.text


def test_rv_seams_errordoc_text_kept(srv):
    r = refused(srv, "/text/", T["wrong"])
    assert r.status == 401
    assert "RV-TEXT-ERROR" in r.text


def test_rv_seams_errordoc_bad_challenge_keeps_400(srv):
    r = srv.request("/badchallenge/?challenge=%s&verification-token=%s"
                    % ("not%20valid", T["good"]), host=E)
    assert r.status == 400, (r.status, r.text)
    assert r.text.startswith("backend-ok GET /errors-app/400"), r.text
    assert srv.access_fields(r.rid) == ("good", "bad-challenge")
    rvseams.assert_nowhere(srv, [T["good"]], r.text)


def test_rv_seams_errordoc_accepted_then_redirected_logs_verdict(srv):
    """An accepted request that a CGI redirects internally (a local
    Location) is logged with its verdict, not with '-'."""
    r = srv.request("/cgi/redir.cgi", host=E, headers=both(T["good"]))
    assert r.status == 200, r.text
    assert r.text == "RV-AFTER-REDIRECT\n"
    assert srv.access_fields(r.rid) == ("good", "ok")
