"""Request-time behaviour of mod_redox_verify against one server with many
VirtualHosts/Locations (started once for this module)."""


import pytest

import rvhttpd
from rvhttpd import CH_INVALID_REQUEST, CH_INVALID_TOKEN, CH_MISSING, bearer, both, new_token, vtok

T = {}  # name -> token, filled by the fixture


def _vhost(port, name, body, bp, prefix=None):
    prefix = prefix or name.split(".")[0]
    return """
<VirtualHost 127.0.0.1:{port}>
    ServerName {name}
    ProxyPass /proxy/ http://127.0.0.1:{bp}/{prefix}/
{body}
</VirtualHost>
""".format(port=port, name=name, body=body, bp=bp, prefix=prefix)


@pytest.fixture(scope="module")
def srv(backend):
    for k in ("alpha", "beta", "inner", "old", "new", "any", "bearer", "vt", "d403", "d404",
              "realm", "other"):
        T[k] = new_token()
    h = rvhttpd.Httpd("main")
    h.backend = backend
    bp = backend.port
    root = h.root
    port = h.port

    # static content, CGI scripts, rewrite dirs
    h.write("htdocs/index.html", "default vhost\n")
    h.write("htdocs-a/index.html", "RV-STATIC-INDEX\n")
    h.write("htdocs-a/static/index.html", "RV-STATIC-DIRINDEX\n")
    h.write("htdocs-a/errdoc/404.html", "RV-ERRDOC-404\n")
    h.write("htdocs-a/rw/.keep", "")
    h.write("htdocs-a/rw-inner/.keep", "")
    h.write("htdocs-a/page.shtml",
            'RV-SSI-BEGIN\n<!--#include virtual="/proxy/ssi-sub" -->\nRV-SSI-END\n')
    h.write("cgi-a/env.cgi",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv | sort\n", 0o755)
    h.write("cgi-a/redir.cgi",
            "#!/bin/sh\nprintf 'Location: /proxy/cgiredir?%s\\r\\n\\r\\n' \"$QUERY_STRING\"\n",
            0o755)

    body = """
<VirtualHost 127.0.0.1:{port}>
    ServerName default.test
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    DocumentRoot "{root}/htdocs-a"
    RedoxVerify On
    RedoxVerificationToken alpha {alpha}
    RedoxSourceHeader X-Redox-Source
    DirectoryIndex index.html
    ErrorDocument 404 /errdoc/404.html
    RewriteEngine On
    RewriteRule ^/pt/(.*)$ /cgi-bin/env.cgi [PT]
    ScriptAlias /cgi-bin/ "{root}/cgi-a/"
    ProxyPass /proxy/ http://127.0.0.1:{bp}/a/
    <Directory "{root}/htdocs-a">
        Options +Includes +FollowSymLinks
        Require all granted
    </Directory>
    <Files "*.shtml">
        SetOutputFilter INCLUDES
    </Files>
    <Directory "{root}/htdocs-a/rw">
        RewriteEngine On
        RewriteRule ^(.*)$ /proxy/rw/$1 [L]
    </Directory>
    <Directory "{root}/htdocs-a/rw-inner">
        RewriteEngine On
        RewriteRule ^(.*)$ /inner/rw/$1 [L]
    </Directory>
    <Directory "{root}/cgi-a">
        Require all granted
    </Directory>
    <Location /health>
        RedoxVerify Off
        ProxyPass http://127.0.0.1:{bp}/a/health
    </Location>
    <Location /inner>
        RedoxVerificationToken inner {inner}
        ProxyPass http://127.0.0.1:{bp}/a/inner
    </Location>
    <Location /rotate>
        RedoxVerificationToken hook-2024 {old}
        RedoxVerificationToken hook-2025 {new}
        ProxyPass http://127.0.0.1:{bp}/a/rotate
    </Location>
    <Location /granted>
        Require all granted
        ProxyPass http://127.0.0.1:{bp}/a/granted
    </Location>
    <Location /nostrip>
        RedoxStripTokens Off
        ProxyPass http://127.0.0.1:{bp}/a/nostrip
    </Location>
</VirtualHost>
""".format(port=port, root=root, bp=bp, **T)

    common = "    RedoxVerify On\n    RedoxSourceHeader X-Redox-Source\n"
    body += _vhost(port, "b.test", common + "    RedoxVerificationToken beta %s" % T["beta"], bp)
    body += _vhost(port, "any.test", common + "    RedoxTokenHeaders any\n"
                   "    RedoxVerificationToken anyname %s" % T["any"], bp)
    body += _vhost(port, "bearer.test", common + "    RedoxTokenHeaders bearer\n"
                   "    RedoxVerificationToken bearername %s" % T["bearer"], bp)
    body += _vhost(port, "vt.test", common + "    RedoxTokenHeaders verification-token\n"
                   "    RedoxVerificationToken vtname %s" % T["vt"], bp)
    body += _vhost(port, "d403.test", common + "    RedoxDenyStatus 403\n"
                   "    RedoxVerificationToken d403 %s" % T["d403"], bp)
    body += _vhost(port, "d404.test", common + "    RedoxDenyStatus 404\n"
                   "    RedoxVerificationToken d404 %s" % T["d404"], bp)
    body += _vhost(port, "realm.test", common + '    <Location />\n        AuthName "Hook Realm"\n    </Location>\n'
                   "    RedoxVerificationToken realm %s" % T["realm"], bp)
    body += _vhost(port, "notokens.test", common, bp)
    h.write_conf(body)
    yield from h.serve()


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def assert_denied(srv, r, reason, challenge=None, status=401):
    """Denied: status, challenge, nothing reached the backend, one error-log
    line with the reason and the URI."""
    rvhttpd.assert_refused(r, status, r.backend_requests,
                           None if challenge is None else [challenge])
    uri = r.path.split("?")[0]
    lines = srv.error_lines(r.rid) if r.rid in uri else srv.error_lines(uri)
    denied = rvhttpd.denial_lines(lines)
    assert denied, "no denial line for %s in error log:\n%s" % (uri, srv.error_log_tail())
    if isinstance(reason, str):
        reason = (reason,)
    assert any(("redox_verify: denied %s" % x) in denied[-1] for x in reason), denied
    assert uri in denied[-1], denied


def assert_passed(r, name=None, prefix=None):
    """Accepted and proxied: exactly one backend request, token headers
    stripped, source header set to the NAME."""
    assert r.status == 200, (r, r.text)
    return rvhttpd.assert_forwarded(r.backend_requests, name, prefix, secrets=T.values())


def access_fields(srv, rid):
    return srv.access_fields(rid)


A = "a.test"


# ---------------------------------------------------------------------------
# accept path, stripping and source header
# ---------------------------------------------------------------------------
def test_rv_core_accept_literal_both_headers(srv):
    r = srv.request("/proxy/{rid}", host=A, headers=both(T["alpha"]))
    rec = assert_passed(r, "alpha", "/a/")
    assert r.text.startswith("backend-ok GET /a/")
    assert r.rid in rec.path


def test_rv_core_accept_post_body_passes_unchanged(srv):
    payload = '{"meta":{"DataModel":"Scheduling","EventType":"New"}}'
    r = srv.request("/proxy/{rid}", host=A, method="POST", body=payload,
                    headers=both(T["alpha"]) + [("Content-Type", "application/json")])
    rec = assert_passed(r, "alpha")
    assert rec.method == "POST"
    assert rec.body == payload.encode()
    assert rec.values("Content-Type") == ["application/json"]


def test_rv_core_deny_post_body_not_forwarded(srv):
    r = srv.request("/proxy/{rid}", host=A, method="POST", body='{"x":1}',
                    headers=both(T["other"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)


@pytest.mark.parametrize("auth", ["bearer {t}", "BEARER {t}", "BeArEr {t}", "Bearer    {t}"],
                         ids=["lower", "upper", "mixed", "many-spaces"])
def test_rv_core_accept_bearer_scheme_variants(srv, auth):
    t = T["alpha"]
    r = srv.request("/proxy/{rid}", host=A,
                    headers=[("Authorization", auth.format(t=t)), vtok(t)])
    assert_passed(r, "alpha")


def test_rv_core_accept_header_name_case_insensitive(srv):
    t = T["alpha"]
    r = srv.request("/proxy/{rid}", host=A,
                    headers=[("AUTHORIZATION", "Bearer " + t), ("Verification-Token", t)])
    assert_passed(r, "alpha")


def test_rv_core_strip_on_removes_token_headers(srv):
    t = T["alpha"]
    r = srv.request("/proxy/{rid}", host=A, headers=both(t) + [("X-Other", "kept")])
    rec = assert_passed(r, "alpha")
    assert rec.values("X-Other") == ["kept"]
    for k, v in rec.headers:
        assert t not in v, (k, v)


def test_rv_core_strip_off_keeps_token_headers(srv):
    t = T["alpha"]
    r = srv.request("/nostrip/{rid}", host=A, headers=both(t))
    assert r.status == 200, r
    recs = r.backend_requests
    assert len(recs) == 1
    rec = recs[0]
    assert rec.values("Authorization") == ["Bearer " + t]
    assert rec.values("verification-token") == [t]
    assert rec.values("X-Redox-Source") == ["alpha"]


def test_rv_core_source_header_spoof_replaced(srv):
    r = srv.request("/proxy/{rid}", host=A,
                    headers=both(T["alpha"]) + [("X-Redox-Source", "spoofed-by-client"),
                                                ("x-redox-source", "spoofed-again"),
                                                ("X_Redox_Source", "spoofed-lookalike"),
                                                ("x-redox_SOURCE", "spoofed-mixed")])
    rec = assert_passed(r, "alpha")
    for k, v in rec.headers:
        assert "spoofed" not in v, (k, v)
    assert [k for k, _ in rec.headers if k.lower().replace("_", "-") == "x-redox-source"] \
        == ["X-Redox-Source"]


def test_rv_core_source_header_spoof_removed_where_verify_off(srv):
    """/health has RedoxVerify Off: passes without tokens, but a client
    X-Redox-Source still never reaches the backend."""
    r = srv.request("/health/{rid}", host=A, headers=[("X-Redox-Source", "alpha"),
                                                    ("X_Redox_Source", "alpha")])
    assert r.status == 200, r
    recs = r.backend_requests
    assert len(recs) == 1
    assert recs[0].path.startswith("/a/health/")
    assert not [k for k, _ in recs[0].headers
                if k.lower().replace("_", "-") == "x-redox-source"], recs[0].headers


def test_rv_core_location_verify_off_exempt(srv):
    r = srv.request("/health/{rid}", host=A)
    assert r.status == 200, r
    assert len(r.backend_requests) == 1
    assert not [l for l in srv.settled_error_lines(r.rid) if "denied" in l]
    # the rest of the vhost stays protected
    r2 = srv.request("/proxy/{rid}", host=A)
    assert_denied(srv, r2, "missing", CH_MISSING)


# ---------------------------------------------------------------------------
# denials in the default (both) mode
# ---------------------------------------------------------------------------
def test_rv_core_deny_missing_no_headers(srv):
    r = srv.request("/proxy/{rid}", host=A)
    assert_denied(srv, r, "missing", CH_MISSING)


@pytest.mark.parametrize("which", ["bearer-only", "verification-token-only"])
def test_rv_core_deny_missing_one_header(srv, which):
    t = T["alpha"]
    hdrs = [bearer(t)] if which == "bearer-only" else [vtok(t)]
    r = srv.request("/proxy/{rid}", host=A, headers=hdrs)
    assert_denied(srv, r, "missing", CH_MISSING)


def test_rv_core_deny_basic_scheme_counts_as_absent(srv):
    t = T["alpha"]
    r = srv.request("/proxy/{rid}", host=A,
                    headers=[("Authorization", "Basic dXNlcjpwYXNz"), vtok(t)])
    assert_denied(srv, r, "missing", CH_MISSING)


def test_rv_core_deny_wrong_token(srv):
    r = srv.request("/proxy/{rid}", host=A, headers=both(T["other"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)


def test_rv_core_deny_mismatch_two_accepted_tokens(srv):
    """Both strings are accepted tokens of the scope, but differ."""
    r = srv.request("/rotate/{rid}", host=A, headers=[bearer(T["old"]), vtok(T["new"])])
    assert_denied(srv, r, "mismatch", CH_INVALID_TOKEN)


def test_rv_core_deny_mismatch_valid_and_unknown(srv):
    r = srv.request("/proxy/{rid}", host=A, headers=[bearer(T["alpha"]), vtok(T["other"])])
    assert_denied(srv, r, ("mismatch", "wrong-token"), CH_INVALID_TOKEN)


def _malformed_cases():
    # built lazily: tokens exist only once the fixture ran
    return {
        "bearer-no-token": lambda t: [("Authorization", "Bearer"), vtok(t)],
        "bearer-tab-separator": lambda t: [("Authorization", "Bearer\t" + t), vtok(t)],
        "bearer-trailing-garbage": lambda t: [("Authorization", "Bearer " + t + " extra"),
                                              vtok(t)],
        "two-authorization-headers": lambda t: [bearer(t), bearer(t), vtok(t)],
        "vt-empty": lambda t: [bearer(t), ("verification-token", "")],
        "vt-inner-space": lambda t: [bearer(t), ("verification-token", t[:8] + " " + t[8:])],
        "vt-tab": lambda t: [bearer(t), ("verification-token", t[:8] + "\t" + t[8:])],
        "vt-non-ascii": lambda t: [bearer(t), ("verification-token",
                                               (t + "\u00e9").encode("latin-1"))],
        "vt-utf8": lambda t: [bearer(t), ("verification-token",
                                          (t + "\u00e9").encode("utf-8"))],
        "two-vt-headers": lambda t: [bearer(t), vtok(t), vtok(t)],
    }


@pytest.mark.parametrize("case", sorted(_malformed_cases()))
def test_rv_core_deny_malformed(srv, case):
    hdrs = _malformed_cases()[case](T["alpha"])
    r = srv.request("/proxy/{rid}", host=A, headers=hdrs)
    assert_denied(srv, r, "malformed", CH_INVALID_REQUEST)


def test_rv_core_deny_logs_one_line_per_denial(srv):
    r = srv.request("/proxy/{rid}", host=A, headers=both(T["other"]))
    assert r.status == 401
    lines = [l for l in srv.error_lines(r.rid) if "redox_verify: denied" in l]
    assert len(lines) == 1, lines
    assert "[redox_verify:error]" in lines[0], lines


def test_rv_core_require_all_granted_does_not_bypass(srv):
    r = srv.request("/granted/{rid}", host=A)
    assert_denied(srv, r, "missing", CH_MISSING)
    r = srv.request("/granted/{rid}", host=A, headers=both(T["other"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)
    r = srv.request("/granted/{rid}", host=A, headers=both(T["alpha"]))
    assert_passed(r, "alpha", "/a/granted/")


# ---------------------------------------------------------------------------
# scopes: virtual hosts, inner locations, rotation, no tokens
# ---------------------------------------------------------------------------
def test_rv_core_vhosts_tokens_not_shared(srv):
    r = srv.request("/proxy/{rid}", host="b.test", headers=both(T["alpha"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)
    r = srv.request("/proxy/{rid}", host=A, headers=both(T["beta"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)
    r = srv.request("/proxy/{rid}", host="b.test", headers=both(T["beta"]))
    assert_passed(r, "beta", "/b/")
    r = srv.request("/proxy/{rid}", host=A, headers=both(T["alpha"]))
    assert_passed(r, "alpha", "/a/")


def test_rv_core_inner_location_overrides_tokens(srv):
    r = srv.request("/inner/{rid}", host=A, headers=both(T["alpha"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)
    r = srv.request("/inner/{rid}", host=A, headers=both(T["inner"]))
    assert_passed(r, "inner", "/a/inner/")
    # the inner token is not valid outside its Location
    r = srv.request("/proxy/{rid}", host=A, headers=both(T["inner"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)


def test_rv_core_rotation_both_tokens_accepted(srv):
    r_old = srv.request("/rotate/{rid}", host=A, headers=both(T["old"]))
    assert_passed(r_old, "hook-2024", "/a/rotate/")
    r_new = srv.request("/rotate/{rid}", host=A, headers=both(T["new"]))
    assert_passed(r_new, "hook-2025", "/a/rotate/")
    assert access_fields(srv, r_old.rid) == ("hook-2024", "ok")
    assert access_fields(srv, r_new.rid) == ("hook-2025", "ok")
    # no union with the vhost's token set
    r = srv.request("/rotate/{rid}", host=A, headers=both(T["alpha"]))
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)


def test_rv_core_accepted_logged_at_debug_with_name(srv):
    r = srv.request("/rotate/{rid}", host=A, headers=both(T["new"]))
    assert r.status == 200
    lines = srv.error_lines('redox_verify: accepted "hook-2025"')
    assert lines, srv.error_log_tail()
    assert all(":debug]" in l for l in lines), lines


def test_rv_core_no_tokens_fails_closed(srv):
    r = srv.request("/proxy/{rid}", host="notokens.test")
    assert_denied(srv, r, "no-tokens")
    r = srv.request("/proxy/{rid}", host="notokens.test", headers=both(T["alpha"]))
    assert_denied(srv, r, "no-tokens")
    assert access_fields(srv, r.rid) == ("-", "no-tokens")


# ---------------------------------------------------------------------------
# RedoxTokenHeaders modes
# ---------------------------------------------------------------------------
ANY_ACCEPT = {
    "bearer-only": lambda t, o: [bearer(t)],
    "vt-only": lambda t, o: [vtok(t)],
    "both-equal": lambda t, o: both(t),
    "basic-plus-vt": lambda t, o: [("Authorization", "Basic dXNlcjpwYXNz"), vtok(t)],
}
ANY_DENY = {
    "none": (lambda t, o: [], "missing", CH_MISSING),
    "basic-only": (lambda t, o: [("Authorization", "Basic dXNlcjpwYXNz")], "missing", CH_MISSING),
    "bearer-wrong": (lambda t, o: [bearer(o)], "wrong-token", CH_INVALID_TOKEN),
    "vt-wrong": (lambda t, o: [vtok(o)], "wrong-token", CH_INVALID_TOKEN),
    "bearer-ok-vt-wrong": (lambda t, o: [bearer(t), vtok(o)], ("mismatch", "wrong-token"),
                           CH_INVALID_TOKEN),
    "bearer-malformed-vt-ok": (lambda t, o: [("Authorization", "Bearer"), vtok(t)],
                               "malformed", CH_INVALID_REQUEST),
    "bearer-ok-vt-malformed": (lambda t, o: [bearer(t), ("verification-token",
                                                         t[:5] + " " + t[5:])],
                               "malformed", CH_INVALID_REQUEST),
}


@pytest.mark.parametrize("case", sorted(ANY_ACCEPT))
def test_rv_core_mode_any_accept(srv, case):
    r = srv.request("/proxy/{rid}", host="any.test", headers=ANY_ACCEPT[case](T["any"], T["other"]))
    assert r.status == 200, r
    rec = r.backend_requests[0]
    assert rec.values("X-Redox-Source") == ["anyname"]
    assert not rec.has("verification-token")
    if case == "basic-plus-vt":
        # a non-Bearer Authorization is not ours to strip
        assert rec.values("Authorization") == ["Basic dXNlcjpwYXNz"]
    else:
        assert not rec.has("Authorization")


@pytest.mark.parametrize("case", sorted(ANY_DENY))
def test_rv_core_mode_any_deny(srv, case):
    fn, reason, ch = ANY_DENY[case]
    r = srv.request("/proxy/{rid}", host="any.test", headers=fn(T["any"], T["other"]))
    assert_denied(srv, r, reason, ch)


def test_rv_core_mode_bearer_accept_ignores_vt(srv):
    t = T["bearer"]
    r = srv.request("/proxy/{rid}", host="bearer.test", headers=[bearer(t)])
    assert_passed(r, "bearername", "/bearer/")
    # verification-token is not read in bearer mode, even if wrong/malformed
    r = srv.request("/proxy/{rid}", host="bearer.test",
                    headers=[bearer(t), ("verification-token", "not a token")])
    assert r.status == 200, r
    r = srv.request("/proxy/{rid}", host="bearer.test", headers=[bearer(t), vtok(T["other"])])
    assert r.status == 200, r


def test_rv_core_mode_bearer_deny(srv):
    t = T["bearer"]
    r = srv.request("/proxy/{rid}", host="bearer.test", headers=[vtok(t)])
    assert_denied(srv, r, "missing", CH_MISSING)
    r = srv.request("/proxy/{rid}", host="bearer.test", headers=[bearer(T["other"]), vtok(t)])
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)
    r = srv.request("/proxy/{rid}", host="bearer.test",
                    headers=[("Authorization", "Bearer " + t + " x")])
    assert_denied(srv, r, "malformed", CH_INVALID_REQUEST)


def test_rv_core_mode_vt_accept_ignores_authorization(srv):
    t = T["vt"]
    r = srv.request("/proxy/{rid}", host="vt.test", headers=[vtok(t)])
    assert_passed(r, "vtname", "/vt/")
    r = srv.request("/proxy/{rid}", host="vt.test",
                    headers=[("Authorization", "Bearer"), vtok(t)])
    assert r.status == 200, r
    assert r.backend_requests[0].values("Authorization") == ["Bearer"]
    # A Bearer that is not one of the scope's tokens (an OAuth 2.0 access
    # token for mod_oauth2, say) is not ours to strip: it goes on as it came.
    r = srv.request("/proxy/{rid}", host="vt.test",
                    headers=[("Authorization", "bearer  eyJhbGciOiJub25lIn0.e30."), vtok(t)])
    assert r.status == 200, r
    rec = r.backend_requests[0]
    assert rec.values("Authorization") == ["bearer  eyJhbGciOiJub25lIn0.e30."]
    assert not rec.has("verification-token")
    # ... but a Bearer that carries the scope's token is a secret of ours
    r = srv.request("/proxy/{rid}", host="vt.test", headers=both(t))
    assert r.status == 200, r
    rec = r.backend_requests[0]
    assert not rec.has("Authorization") and not rec.has("verification-token"), rec
    # Basic credentials for someone else pass through untouched
    r = srv.request("/proxy/{rid}", host="vt.test",
                    headers=[("Authorization", "Basic dXNlcjpwYXNz"), vtok(t)])
    assert r.status == 200, r
    rec = r.backend_requests[0]
    assert rec.values("Authorization") == ["Basic dXNlcjpwYXNz"]
    assert not rec.has("verification-token")


def test_rv_core_mode_vt_deny(srv):
    t = T["vt"]
    r = srv.request("/proxy/{rid}", host="vt.test", headers=[bearer(t)])
    assert_denied(srv, r, "missing", CH_MISSING)
    r = srv.request("/proxy/{rid}", host="vt.test", headers=[bearer(t), vtok(T["other"])])
    assert_denied(srv, r, "wrong-token", CH_INVALID_TOKEN)
    r = srv.request("/proxy/{rid}", host="vt.test", headers=[("verification-token", "")])
    assert_denied(srv, r, "malformed", CH_INVALID_REQUEST)


# ---------------------------------------------------------------------------
# deny status and realm
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [403, 404])
def test_rv_core_deny_status(srv, status):
    host = "d%d.test" % status
    r = srv.request("/proxy/{rid}", host=host)
    assert_denied(srv, r, "missing", status=status)
    r = srv.request("/proxy/{rid}", host=host, headers=both(T["other"]))
    assert_denied(srv, r, "wrong-token", status=status)
    r = srv.request("/proxy/{rid}", host=host, headers=both(T["d%d" % status]))
    assert_passed(r, "d%d" % status)


def test_rv_core_realm_from_authname(srv):
    r = srv.request("/proxy/{rid}", host="realm.test")
    assert_denied(srv, r, "missing", 'Bearer realm="Hook Realm"')
    r = srv.request("/proxy/{rid}", host="realm.test", headers=both(T["other"]))
    assert_denied(srv, r, "wrong-token", 'Bearer realm="Hook Realm", error="invalid_token"')


# ---------------------------------------------------------------------------
# environment variables
# ---------------------------------------------------------------------------
def test_rv_core_env_in_access_log(srv):
    ok = srv.request("/proxy/{rid}", host=A, headers=both(T["alpha"]))
    assert ok.status == 200
    assert access_fields(srv, ok.rid) == ("alpha", "ok")
    cases = [
        ([], "missing"),
        (both(T["other"]), "wrong-token"),
        ([("Authorization", "Bearer"), vtok(T["alpha"])], "malformed"),
        ([bearer(T["old"]), vtok(T["new"])], "mismatch"),
    ]
    for hdrs, reason in cases:
        path = "/rotate/{rid}" if reason == "mismatch" else "/proxy/{rid}"
        r = srv.request(path, host=A, headers=hdrs)
        assert r.status == 401
        assert access_fields(srv, r.rid) == ("-", reason), reason


def test_rv_core_env_visible_to_cgi(srv):
    r = srv.request("/cgi-bin/env.cgi", host=A, headers=both(T["alpha"]))
    assert r.status == 200, r
    env = dict(l.split("=", 1) for l in r.text.splitlines() if "=" in l)
    assert env.get("REDOX_SOURCE") == "alpha", r.text
    assert env.get("REDOX_VERIFY") == "ok", r.text
    assert env.get("HTTP_X_REDOX_SOURCE") == "alpha", r.text
    assert "HTTP_VERIFICATION_TOKEN" not in env, r.text
    assert T["alpha"] not in r.text


def test_rv_core_cgi_denied_without_token(srv):
    r = srv.request("/cgi-bin/env.cgi", host=A)
    assert r.status == 401
    assert "REDOX_SOURCE" not in r.text and "GATEWAY_INTERFACE" not in r.text


# ---------------------------------------------------------------------------
# handlers other than the proxy, internal redirects and sub-requests
# ---------------------------------------------------------------------------
def test_rv_core_static_file(srv):
    r = srv.request("/index.html", host=A, headers=both(T["alpha"]))
    assert r.status == 200 and "RV-STATIC-INDEX" in r.text, r
    r = srv.request("/index.html", host=A)
    assert r.status == 401 and "RV-STATIC-INDEX" not in r.text


def test_rv_core_directory_index_after_success(srv):
    r = srv.request("/static/", host=A, headers=both(T["alpha"]))
    assert r.status == 200, (r, r.text)
    assert "RV-STATIC-DIRINDEX" in r.text
    r = srv.request("/", host=A, headers=both(T["alpha"]))
    assert r.status == 200 and "RV-STATIC-INDEX" in r.text, r
    r = srv.request("/static/", host=A)
    assert r.status == 401 and "RV-STATIC-DIRINDEX" not in r.text


def test_rv_core_rewrite_internal_redirect_same_scope(srv):
    r = srv.request("/rw/x-{rid}", host=A, headers=both(T["alpha"]))
    assert r.status == 200, (r, r.text, srv.error_log_tail())
    assert_passed(r, "alpha", "/a/rw/x-")
    assert not [l for l in srv.settled_error_lines(r.rid) if "denied" in l]


def test_rv_core_rewrite_into_other_scope_rechecked(srv):
    """alpha is accepted at /rw-inner/ but the redirect target /inner only
    accepts its own token: the remembered token is re-checked and refused."""
    r = srv.request("/rw-inner/x-{rid}", host=A, headers=both(T["alpha"]))
    assert r.status == 401, (r, r.text)
    assert r.backend_requests == []


def test_rv_core_rewrite_passthrough_to_cgi(srv):
    r = srv.request("/pt/x", host=A, headers=both(T["alpha"]))
    assert r.status == 200, (r, r.text)
    assert "REDOX_SOURCE=alpha" in r.text, r.text
    r = srv.request("/pt/x", host=A)
    assert r.status == 401


def test_rv_core_cgi_local_redirect(srv):
    r = srv.request("/cgi-bin/redir.cgi", host=A, headers=both(T["alpha"]))
    assert r.status == 200, (r, r.text, srv.error_log_tail())
    assert_passed(r, prefix="/a/cgiredir?")


def test_rv_core_error_document_after_success(srv):
    r = srv.request("/nope-{rid}", host=A, headers=both(T["alpha"]))
    assert r.status == 404, (r, r.text)
    assert "RV-ERRDOC-404" in r.text, r.text
    assert "Additionally" not in r.text
    r = srv.request("/nope-{rid}", host=A)
    assert r.status == 401
    assert "RV-ERRDOC-404" not in r.text


def test_rv_core_ssi_subrequest_after_success(srv):
    before = len(srv.backend.find("/a/ssi-sub"))
    r = srv.request("/page.shtml", host=A, headers=both(T["alpha"]))
    assert r.status == 200, (r, r.text)
    assert "RV-SSI-BEGIN" in r.text and "RV-SSI-END" in r.text
    assert "backend-ok GET /a/ssi-sub" in r.text, r.text
    assert "error occurred" not in r.text
    recs = srv.backend.find("/a/ssi-sub")
    assert len(recs) == before + 1
    assert not recs[-1].has("verification-token") and not recs[-1].has("Authorization")
    assert recs[-1].values("X-Redox-Source") == ["alpha"]
    r = srv.request("/page.shtml", host=A)
    assert r.status == 401 and "RV-SSI-BEGIN" not in r.text
    assert len(srv.backend.find("/a/ssi-sub")) == before + 1
