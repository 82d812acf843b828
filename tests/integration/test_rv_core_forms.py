"""Token VALUE forms (literal, file:, env:, exec:, sha256:), server-scope
inheritance, and the short-token startup warning."""

import re
import secrets

import pytest

import rvhttpd
from rvhttpd import both, new_token, register_secret, sha256_hex

F = {}  # name -> token


@pytest.fixture(scope="module")
def forms(backend):
    for k in ("lit", "file", "env", "exec", "execq", "hashed", "global", "other",
              "file2", "exec2"):
        F[k] = new_token()
    envvar = "RV_IT_TOKEN_" + secrets.token_hex(6).upper()
    h = rvhttpd.Httpd("forms", env={envvar: F["env"]})
    h.backend = backend
    bp = backend.port
    # first line (surrounded by blanks) is the token, the rest is ignored
    tokfile = h.write("secrets/hook.token", "  %s \t\n%s\n" % (F["file"], F["file2"]), 0o600)
    prog = h.write("secrets/print-token.sh",
                   "#!/bin/sh\n"
                   "if [ \"$1\" = \"--which\" ] && [ \"$2\" = \"hook\" ]; then\n"
                   "    printf '%%s\\n' '%s'\n"
                   "    printf '%%s\\n' '%s'\n"
                   "    exit 0\n"
                   "fi\n"
                   "if [ \"$1\" = \"--which\" ] && [ \"$2\" = \"quoted\" ]; then\n"
                   "    printf '%%s\\n' '%s'\n"
                   "    exit 0\n"
                   "fi\n"
                   "exit 3\n" % (F["exec"], F["exec2"], F["execq"]), 0o700)
    body = """
RedoxVerify On
RedoxVerificationToken global {global_}
RedoxSourceHeader X-Redox-Source

<VirtualHost 127.0.0.1:{port}>
    ServerName forms.test
    ProxyPass /proxy/ http://127.0.0.1:{bp}/forms/
    RedoxVerificationToken lit {lit}
    RedoxVerificationToken fromfile file:{tokfile}
    RedoxVerificationToken fromenv env:{envvar}
    RedoxVerificationToken fromexec exec:{prog} --which hook
    RedoxVerificationToken fromexecq "exec:{prog} --which quoted"
    RedoxVerificationToken hashed sha256:{digest}
</VirtualHost>

<VirtualHost 127.0.0.1:{port}>
    ServerName inherit.test
    ProxyPass /proxy/ http://127.0.0.1:{bp}/inherit/
</VirtualHost>
""".format(port=h.port, bp=bp, lit=F["lit"], tokfile=tokfile, envvar=envvar, prog=prog,
           digest=sha256_hex(F["hashed"]), global_=F["global"])
    h.write_conf(body)
    yield from h.serve()


FORMS = {"lit": "lit", "file": "fromfile", "env": "fromenv", "exec": "fromexec",
         "execq": "fromexecq", "hashed": "hashed"}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_rv_core_value_form_accepted(forms, form):
    name = FORMS[form]
    r = forms.request("/proxy/{rid}", host="forms.test", headers=both(F[form]))
    assert r.status == 200, (r, r.text, forms.error_log_tail())
    rvhttpd.assert_forwarded(r.backend_requests, name, "/forms/", secrets=[F[form]])
    lines = forms.access_lines(r.rid)
    assert lines and lines[0].endswith(" rvsrc=%s rvver=ok" % name), lines


@pytest.mark.parametrize("what", ["file-second-line", "exec-second-line", "sha256-digest-itself",
                                  "global-in-vhost-with-own-set"])
def test_rv_core_value_form_other_strings_refused(forms, what):
    tok = {"file-second-line": F["file2"], "exec-second-line": F["exec2"],
           "sha256-digest-itself": register_secret(sha256_hex(F["hashed"])),
           "global-in-vhost-with-own-set": F["global"]}[what]
    r = forms.request("/proxy/{rid}", host="forms.test", headers=both(tok))
    assert r.status == 401, r
    assert r.backend_requests == []
    lines = [l for l in forms.error_lines(r.rid) if "redox_verify: denied wrong-token" in l]
    assert lines, forms.error_log_tail()


def test_rv_core_server_scope_inherited_by_vhost(forms):
    r = forms.request("/proxy/{rid}", host="inherit.test", headers=both(F["global"]))
    assert r.status == 200, (r, forms.error_log_tail())
    assert r.backend_requests[0].values("X-Redox-Source") == ["global"]
    r = forms.request("/proxy/{rid}", host="inherit.test", headers=both(F["lit"]))
    assert r.status == 401
    assert r.backend_requests == []
    r = forms.request("/proxy/{rid}", host="inherit.test")
    assert r.status == 401
    assert r.header_values("WWW-Authenticate") == [rvhttpd.CH_MISSING]


def test_rv_core_long_tokens_no_startup_warning(forms):
    text = forms.start_output + "\n" + forms.error_log_text()
    warn = [l for l in text.splitlines() if re.search(r"redox|Redox", l)
            and re.search(r"warn|short", l, re.I)]
    assert warn == [], warn


# ---------------------------------------------------------------------------
# short tokens: start fine, warn naming NAME, never the token
# ---------------------------------------------------------------------------
SHORT_NAMES = ["shortlit", "shortfile", "shortenv", "shortexec", "len31"]
LONG_NAMES = ["len32", "longlit"]


@pytest.fixture(scope="module")
def short(backend):
    S = {}
    for n in ("shortlit", "shortfile", "shortenv", "shortexec"):
        S[n] = register_secret(secrets.token_urlsafe(12))  # 16 chars
    S["len31"] = register_secret(secrets.token_urlsafe(24)[:31])
    S["len32"] = register_secret(secrets.token_urlsafe(24)[:32])
    S["longlit"] = new_token()
    envvar = "RV_IT_SHORT_" + secrets.token_hex(6).upper()
    allowed = [r"\b(%s)\b" % "|".join(SHORT_NAMES)]
    h = rvhttpd.Httpd("short", env={envvar: S["shortenv"]}, allowed=allowed)
    h.backend = backend
    f = h.write("secrets/short.token", S["shortfile"] + "\n", 0o600)
    prog = h.write("secrets/short.sh", "#!/bin/sh\necho '%s'\n" % S["shortexec"], 0o700)
    h.write_conf("""
<VirtualHost 127.0.0.1:{port}>
    ServerName short.test
    ProxyPass /proxy/ http://127.0.0.1:{bp}/short/
    RedoxVerify On
    RedoxSourceHeader X-Redox-Source
    RedoxVerificationToken shortlit {shortlit}
    RedoxVerificationToken shortfile file:{f}
    RedoxVerificationToken shortenv env:{envvar}
    RedoxVerificationToken shortexec exec:{prog}
    RedoxVerificationToken len31 {len31}
    RedoxVerificationToken len32 {len32}
    RedoxVerificationToken longlit {longlit}
</VirtualHost>
""".format(port=h.port, bp=backend.port, f=f, prog=prog, envvar=envvar, **S))
    h.start()
    h.tokens = S
    yield h
    h.stop()


def _warning_lines(h):
    text = h.start_output + "\n" + h.error_log_text()
    return [l for l in text.splitlines()
            if re.search(r"warn|short|length|weak|32", l, re.I) and "redox" in l.lower()]


def test_rv_core_short_token_warning_names_name(short):
    warns = _warning_lines(short)
    for n in SHORT_NAMES:
        assert [l for l in warns if re.search(r"\b%s\b" % n, l)], (n, warns)
    for n in LONG_NAMES:
        assert not [l for l in warns if re.search(r"\b%s\b" % n, l)], (n, warns)


def test_rv_core_short_token_warning_never_contains_token(short):
    text = short.start_output + "\n" + short.error_log_text()
    assert _warning_lines(short), "no warning at all"
    for n, tok in short.tokens.items():
        assert tok not in text, "token of %s appears in startup output/error log" % n


@pytest.mark.parametrize("name", ["shortlit", "shortfile", "shortenv", "shortexec"])
def test_rv_core_short_token_still_accepted(short, name):
    r = short.request("/proxy/{rid}", host="short.test", headers=both(short.tokens[name]))
    assert r.status == 200, (r, short.error_log_tail())
    assert r.backend_requests[0].values("X-Redox-Source") == [name]


@pytest.mark.parametrize("scope", ["server", "virtualhost", "location"])
def test_rv_core_short_token_warning_each_scope(scope):
    """`apache2 -t` shows the short-token warning wherever the directive is."""
    tok = register_secret(secrets.token_urlsafe(12))
    line = "RedoxVerificationToken shortname %s" % tok
    body = {"server": line + "\n",
            "virtualhost": "<VirtualHost 127.0.0.1:*>\n  ServerName s.test\n  %s\n"
                           "</VirtualHost>\n" % line,
            "location": "<Location /hook>\n  %s\n</Location>\n" % line}[scope]
    res = rvhttpd.config_test("short-" + scope, body)
    assert res.rc == 0, res
    warns = [l for l in res.output.splitlines()
             if re.search(r"\bshortname\b", l) and re.search(r"warn|short|32", l, re.I)]
    assert warns, res
    assert tok not in res.output
