"""redox-verify-probe against the real module behind real TLS: the shipped
example VirtualHost passes every check; a wrong token, RedoxChallenge Off,
an ErrorDocument served by the application that turns refusals into 200,
a vhost that offers only CBC suites, a certificate about to expire and one
for another name each fail the right check with a clear line.  The token
never appears in the probe's output, even when an endpoint echoes it."""

import json
import socket
import ssl
import urllib.parse

import pytest

import rvexample
import rvprobe
from rvexample import HOST
from rvhttpd import new_rid, new_token, register_secret

CBC_ONLY = ("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
ECHO_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
printf 'query: %s\\nbody: ' "$QUERY_STRING"
head -c "${CONTENT_LENGTH:-0}"
"""


@pytest.fixture(scope="module")
def site(backend):
    """One httpd: the example on port 0 (with extra Locations), a CBC-only
    vhost on port 1, a certificate that expires in 7 days on port 2."""
    s = rvexample.Site("probe", 3, backend)
    h, tls = s.h, s.tls
    cert, key = rvexample.make_cert(tls, "server", s.ca, days=30)
    soon = rvexample.make_cert(tls, "soon", s.ca, days=7)
    s.errdoc_token = new_token()
    h.write("cgi-bin/echo", ECHO_CGI, 0o755)
    extra = """
    <Location /nochallenge/>
        RedoxVerify On
        RedoxChallenge Off
        RedoxVerificationToken prod file:{root}/secrets/prod.token
        ProxyPass http://127.0.0.1:{bp}/nochallenge/
    </Location>

    # No mod_redox_verify here: httpd's own Require refuses, and the
    # ErrorDocument is the application's page, which it answers with 200.
    ProxyPass /app-errors/ http://127.0.0.1:{bp}/app-errors/
    <Location /errdoc/>
        Require expr "%{{HTTP:verification-token}} == '{et}' && %{{HTTP:Authorization}} == 'Bearer {et}'"
        ErrorDocument 403 /app-errors/403
        ProxyPass http://127.0.0.1:{bp}/errdoc/
    </Location>

    # Not verified at all, and echoes the query and the body.
    ScriptAlias /echo/ {root}/cgi-bin/echo/
    <Directory {root}/cgi-bin>
        Require all granted
    </Directory>
""".format(root=h.root, bp=backend.port, et=s.errdoc_token)
    example, s.tokens = rvexample.example_vhost(h, h.ports[0], backend,
                                                cert, key, extra)

    def plain(port, cert, key, ssl_lines):
        return """
<VirtualHost 127.0.0.1:{port}>
    ServerName {host}
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
{ssl_lines}
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken prod file:{root}/secrets/prod.token
        ProxyPass http://127.0.0.1:{bp}/plain/
    </Location>
</VirtualHost>
""".format(port=port, host=HOST, cert=cert, key=key, ssl_lines=ssl_lines,
           root=h.root, bp=backend.port)

    h.write_conf(rvexample.ssl_modules(h) + example
                 + plain(h.ports[1], cert, key,
                         "    SSLProtocol -all +TLSv1.2\n"
                         "    SSLCipherSuite " + CBC_ONLY)
                 + plain(h.ports[2], soon[0], soon[1], ""))
    h.allowed += [r"\[authz_core:error\].* AH01630: client denied by server "
                  r"configuration: proxy:http://127.0.0.1:\d+/errdoc/"]
    s.token_file = h.root / "secrets" / "prod.token"
    s.wrong_file = h.write("secrets/wrong.token", new_token() + "\n", 0o600)
    h.start()
    yield s
    h.stop()


def url(site, path, port=0, host=HOST):
    return "https://%s:%d%s" % (host, site.h.ports[port], path)


def probe(site, target, *args, token_file=None, **kw):
    return rvprobe.run(target, "--token-file", token_file or site.token_file,
                       "--ca", site.ca[0], "--connect-to", "127.0.0.1",
                       *args, **kw)


def denials(site, rid):
    """The module's error-log lines for rid: each is written before the
    answer is sent, so all are there once the probe has its answers."""
    return [l for l in site.h.error_log_text().splitlines()
            if rid in l and "redox_verify:" in l]


def test_rv_probe_main_correct_site_passes(site):
    rid = new_rid()
    r = probe(site, url(site, "/redox/" + rid), "--delivery")
    assert r.rc == 0, r
    assert r.order == rvprobe.CHECKS, r
    assert set(r.statuses().values()) == {"PASS"}, r
    assert r.text("handshake") == "answered 200 with the challenge"
    assert "TLSv1.3" in r.text("tls1.3")
    assert "ECDHE-ECDSA-AES128-GCM-SHA256" in r.text("tls1.2")
    assert r.text("refuse-no-token") == \
        "without token headers: refused with 401"
    assert r.out.splitlines()[-1] == \
        "result: PASS (failed 0, passed 10, informational 0, not run 0)"
    # The application saw the test message only, labelled, without the
    # token, from the token's NAME: not the handshakes, not the refusals.
    seen = site.backend.find(rid)
    assert len(seen) == 1, seen
    got = seen[0]
    assert got.method == "POST" and got.path == "/example/" + rid
    assert not got.has("Authorization") and not got.has("verification-token")
    assert got.values("X-Redox-Source") == ["prod"]
    assert got.values("application-name") == ["RedoxEngine"]
    msg = json.loads(got.body)
    assert msg["Meta"]["Test"] is True
    assert msg["Meta"]["DataModel"] == "redox-verify-probe"
    assert "discard it" in msg["Note"]
    # What the module logged: two handshakes answered, two refusals.
    lines = denials(site, rid)
    assert sum("handshake answered for \"prod\"" in l for l in lines) == 2
    assert sum("denied missing:" in l for l in lines) == 1
    assert sum("denied wrong-token:" in l for l in lines) == 1


def test_rv_probe_main_without_delivery_sends_no_message(site):
    rid = new_rid()
    r = probe(site, url(site, "/redox/" + rid))
    assert r.rc == 0, r
    assert r.status("delivery") == "SKIP"
    assert "--delivery" in r.text("delivery")
    assert site.backend.find(rid) == []


def test_rv_probe_main_token_env(site):
    """--token-env, with the example's second token."""
    rid = new_rid()
    r = rvprobe.run(url(site, "/redox/" + rid), "--token-env",
                    "RV_PROBE_TOKEN", "--ca", site.ca[0], "--connect-to",
                    "127.0.0.1", "--delivery",
                    env={"RV_PROBE_TOKEN": site.tokens["staging"]})
    assert r.rc == 0, r
    assert site.backend.find(rid)[0].values("X-Redox-Source") == ["staging"]


def test_rv_probe_main_json(site):
    rid = new_rid()
    r, doc = rvprobe.run_json(url(site, "/redox/" + rid), "--token-file",
                              site.token_file, "--ca", site.ca[0],
                              "--connect-to", "127.0.0.1")
    assert r.rc == 0, r
    assert doc["result"] == "pass"
    assert doc["url"] == url(site, "/redox/" + rid)
    assert [c["check"] for c in doc["checks"]] == rvprobe.CHECKS
    assert [c["status"] for c in doc["checks"]] == ["pass"] * 9 + ["skip"]
    for c in doc["checks"]:
        assert set(c) == {"check", "status", "detail", "fix"}


def test_rv_probe_main_wrong_token(site):
    rid = new_rid()
    r = probe(site, url(site, "/redox/" + rid), "--delivery",
              token_file=site.wrong_file)
    assert r.rc == 1, r
    assert r.status("handshake") == "FAIL"
    assert r.text("handshake").startswith(
        "refused with 401: the endpoint does not accept this token; fix: "
        "configure this token for the URL's scope (RedoxVerificationToken)")
    # the legacy form is informational
    assert r.status("handshake-get") == "INFO"
    assert "(informational: Redox uses the POST form)" in \
        r.text("handshake-get")
    assert r.status("delivery") == "FAIL"
    assert "refused with 401: the endpoint does not accept this token" in \
        r.text("delivery")
    for name in ("connect", "tls1.3", "tls1.2", "certificate",
                 "cert-expiry", "refuse-no-token", "refuse-wrong-token"):
        assert r.status(name) == "PASS", r
    lines = denials(site, rid)
    assert sum("denied handshake wrong-token:" in l for l in lines) == 2
    assert site.backend.find(rid) == []


def test_rv_probe_main_challenge_off(site):
    rid = new_rid()
    r = probe(site, url(site, "/nochallenge/" + rid))
    assert r.rc == 1, r
    assert r.status("handshake") == "FAIL"
    assert r.text("handshake").startswith(
        "refused with 401: the endpoint took it for a request without token "
        "headers (with mod_redox_verify: RedoxChallenge Off?); fix: let the "
        "module answer the handshake (RedoxChallenge On")
    assert r.status("refuse-no-token") == "PASS"
    assert r.status("refuse-wrong-token") == "PASS"
    # the module denied the handshakes as requests without token headers
    assert sum("denied missing:" in l for l in denials(site, rid)) == 3


def error_pages(site):
    return [rec for rec in site.backend.records
            if rec.path == "/app-errors/403"]


def test_rv_probe_main_errordocument_turns_refusals_into_200(site):
    rid = new_rid()
    before = len(error_pages(site))
    r = probe(site, url(site, "/errdoc/" + rid),
              token_file=site.h.write("secrets/errdoc.token",
                                      site.errdoc_token + "\n", 0o600))
    assert r.rc == 1, r
    for name, what in (("refuse-no-token", "without token headers"),
                       ("refuse-wrong-token",
                        "with a wrong token of the same shape")):
        assert r.status(name) == "FAIL", r
        assert r.text(name).startswith(
            what + ": answered 200, so an unverified request was processed "
            "or a refusal was turned into a success; Redox takes a 2xx as "
            "delivered and would lose messages; fix: ")
    # The 200s were refusals: the application never got the requests, it
    # served its error page for each (and for the handshakes) instead.
    assert site.backend.find(rid) == []
    assert len(error_pages(site)) - before == 4
    assert r.status("handshake") == "FAIL"
    assert r.text("handshake").startswith(
        "answered 200 without the challenge: 'backend-ok GET "
        "/app-errors/403'")


def test_rv_probe_main_cbc_only_vhost(site):
    # The vhost does serve a CBC client (so the probe's failure is about
    # its suites, not a dead port) ...
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(CBC_ONLY)
    with socket.create_connection(("127.0.0.1", site.h.ports[1]), 15) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as t:
            assert t.cipher()[0] in CBC_ONLY.split(":")
    # ... and the probe fails both TLS checks, saying what to offer.
    rid = new_rid()
    r = probe(site, url(site, "/redox/" + rid, port=1))
    assert r.rc == 1, r
    assert r.status("tls1.3") == "FAIL"
    assert r.text("tls1.3").startswith("a TLS 1.3 handshake failed (TLS: ")
    assert "Redox cannot connect; fix: offer TLS 1.3" in r.text("tls1.3")
    assert r.status("tls1.2") == "FAIL"
    assert r.text("tls1.2").startswith(
        "a TLS 1.2 handshake offering only ECDHE-ECDSA/ECDHE-RSA with "
        "AES-GCM failed (TLS: ")
    assert "Redox cannot connect; fix: offer TLS 1.2 with ECDHE and " \
        "AES-GCM (SSLCipherSuite ECDHE-ECDSA-AES128-GCM-SHA256:" in \
        r.text("tls1.2")
    # the rest is as at a correct site
    for name in ("certificate", "cert-expiry", "handshake",
                 "refuse-no-token", "refuse-wrong-token"):
        assert r.status(name) == "PASS", r


def test_rv_probe_main_certificate_expiring(site):
    r = probe(site, url(site, "/redox/" + new_rid(), port=2))
    assert r.rc == 1, r
    assert r.status("certificate") == "PASS"
    assert r.status("cert-expiry") == "FAIL"
    assert " days; fix: renew the certificate: it must be valid for at " \
        "least 14 more days" in r.text("cert-expiry")
    assert r.status("handshake") == "PASS"


def test_rv_probe_main_certificate_for_another_name(site):
    """The token is not sent where the certificate does not verify."""
    rid = new_rid()
    r = probe(site, url(site, "/redox/" + rid, host="other.example.test"),
              "--delivery")
    assert r.rc == 1, r
    assert r.status("certificate") == "FAIL"
    assert r.text("certificate").startswith(
        "other.example.test: Hostname mismatch, certificate is not valid for "
        "'other.example.test' (the token is not sent to an endpoint whose "
        "certificate does not verify); fix: use a certificate whose "
        "subjectAltName includes other.example.test")
    for name in ("handshake", "handshake-get", "delivery"):
        assert r.status(name) == "SKIP", r
        assert "the token is sent only to an endpoint whose certificate " \
            "verifies" in r.text(name)
    assert r.status("refuse-no-token") == "PASS"
    assert r.status("refuse-wrong-token") == "PASS"
    lines = denials(site, rid)
    assert len(lines) == 2 and not [l for l in lines if "handshake" in l]


def test_rv_probe_main_insecure(site):
    r = rvprobe.run(url(site, "/redox/" + new_rid()), "--token-file",
                    site.token_file, "--insecure", "--connect-to",
                    "127.0.0.1")
    assert r.rc == 1, r
    assert r.status("certificate") == "FAIL"
    assert r.text("certificate").startswith("not verified (--insecure)")
    assert r.status("handshake") == "PASS"


def test_rv_probe_main_redacts_an_echoed_token(site):
    """An endpoint that echoes what it gets (here a CGI where RedoxVerify
    is Off) puts the token into the answers the probe quotes: they are
    shown with REDACTED, in text and in JSON, for tokens whose JSON and URL
    spellings differ from the token."""
    for tok in (new_token(), register_secret(new_token() + '+/="\\%&')):
        path = "secrets/echo-%s.token" % new_rid()
        tf = site.h.write(path, tok + "\n", 0o600)
        r = probe(site, url(site, "/echo/" + new_rid()), token_file=tf)
        assert r.rc == 1, r
        assert r.status("handshake") == "FAIL"
        assert r.text("handshake").startswith(
            "answered 200 with more than the challenge: 'query: body: "
            "{\"verification-token\": \"REDACTED\", \"challenge\": \"")
        assert r.status("handshake-get") == "INFO"
        assert "&verification-token=REDACTED" in r.text("handshake-get")
        assert r.status("refuse-no-token") == "FAIL"
        for form in (json.dumps(tok)[1:-1], urllib.parse.quote(tok, safe="")):
            assert form not in r.out, r
        j, doc = rvprobe.run_json(url(site, "/echo/" + new_rid()),
                                  "--token-file", tf, "--ca", site.ca[0],
                                  "--connect-to", "127.0.0.1")
        assert "REDACTED" in doc["checks"][5]["detail"]


def test_rv_probe_main_connect_to_with_port(site):
    """--connect-to ADDRESS:PORT reaches the server while the URL, its
    Host header and its certificate name stay those of the URL."""
    rid = new_rid()
    r = rvprobe.run("https://%s/redox/%s" % (HOST, rid), "--token-file",
                    site.token_file, "--ca", site.ca[0], "--connect-to",
                    "127.0.0.1:%d" % site.h.ports[0])
    assert r.rc == 0, r
    assert r.text("connect").startswith("TCP connection to 127.0.0.1 port "
                                        "%d" % site.h.ports[0])
    assert r.out.splitlines()[0].endswith("https://%s/redox/%s"
                                          % (HOST, rid))
    # the module saw the URL's host name (no port: 443 is https's)
    assert [l for l in denials(site, rid) if "vhost %s:443," % HOST in l]
