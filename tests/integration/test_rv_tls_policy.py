"""Redox's TLS policy and limits in conf/redox-vhost.conf.example, served
with test certificates and checked with real clients (openssl s_client and
Python's ssl): a TLS 1.3 client and TLS 1.2 clients with ECDHE and AES-GCM
connect; CBC, non-ECDHE, ChaCha20 and pre-1.2 clients do not, while each of
them does connect to a control vhost that allows everything, so every
refusal is the example's doing.  A 40 MiB payload reaches the application,
a body above LimitRequestBody is refused with 413, and the example waits
longer than Redox's 120 s for the application."""

import re
import socket
import ssl
import subprocess

import pytest

import rvexample
import rvhttpd
import rvprobe
from rvexample import HOST
from rvhttpd import new_rid

MiB = 1024 * 1024
# A CGI program that counts the body it gets.
COUNT_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
printf 'read %s bytes\\n' "$(head -c "${CONTENT_LENGTH:-0}" | wc -c)"
"""


@pytest.fixture(scope="module")
def site(backend):
    """The example twice, with an RSA certificate (port 0) and an ECDSA one
    (port 1), a control vhost that offers every protocol and suite (port 2,
    RSA), and the example with a CGI program run by httpd in place of the
    ProxyPass backend (port 3)."""
    s = rvexample.Site("tls-policy", 4, backend)
    h, tls = s.h, s.tls
    rsa = rvexample.make_cert(tls, "rsa", s.ca, key_type="rsa")
    ec = rvexample.make_cert(tls, "ec", s.ca, key_type="ec")
    conf_rsa, s.tokens = rvexample.example_vhost(h, h.ports[0], backend, *rsa)
    conf_ec, _ = rvexample.example_vhost(h, h.ports[1], backend, *ec,
                                         tokens=s.tokens)
    control = """
<VirtualHost 127.0.0.1:{port}>
    ServerName {host}
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    SSLProtocol all
    SSLCipherSuite ALL:@SECLEVEL=0
</VirtualHost>
""".format(port=h.ports[2], host=HOST, cert=rsa[0], key=rsa[1])
    h.write("htdocs/redox/app", COUNT_CGI, 0o755)
    conf_cgi, _ = rvexample.example_vhost(
        h, h.ports[3], backend, *rsa, tokens=s.tokens,
        app="        Options +ExecCGI\n        SetHandler cgi-script\n")
    h.write_conf(rvexample.ssl_modules(h) + conf_rsa + conf_ec + control
                 + conf_cgi)
    # mod_cgid's line for the body refused with 413
    h.allowed.append(r"\[cgid:error\].* AH01270: Error reading request "
                     r"entity data")
    h.start()
    yield s
    h.stop()


def s_client(site, port, *args):
    """openssl s_client to the port; returns (connected, its output)."""
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
         "-servername", HOST, "-CAfile", str(site.ca[0]), "-brief"]
        + list(args), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=60)
    return proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("port", [0, 1], ids=["rsa", "ecdsa"])
def test_rv_tls_policy_tls13_connects(site, port):
    ok, out = s_client(site, site.h.ports[port], "-tls1_3")
    assert ok, out
    assert "Protocol version: TLSv1.3" in out
    assert "Verification: OK" in out


@pytest.mark.parametrize("port, suite", [
    (0, "ECDHE-RSA-AES128-GCM-SHA256"),
    (0, "ECDHE-RSA-AES256-GCM-SHA384"),
    (1, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    (1, "ECDHE-ECDSA-AES256-GCM-SHA384"),
])
def test_rv_tls_policy_tls12_redox_suites_connect(site, port, suite):
    ok, out = s_client(site, site.h.ports[port], "-tls1_2", "-cipher", suite)
    assert ok, out
    assert "Protocol version: TLSv1.2" in out
    assert "Ciphersuite: " + suite in out


REFUSED = {
    "cbc-only": ["-tls1_2", "-cipher",
                 "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:"
                 "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA256:"
                 "AES256-SHA256:AES128-SHA:AES256-SHA"],
    "rsa-kx-gcm": ["-tls1_2", "-cipher", "AES128-GCM-SHA256:AES256-GCM-SHA384"],
    "dhe-gcm": ["-tls1_2", "-cipher",
                "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"],
    "chacha20": ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"],
    "tls1.1": ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    "tls1.0": ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
}


@pytest.mark.parametrize("client", list(REFUSED))
def test_rv_tls_policy_other_clients_refused(site, client):
    args = REFUSED[client]
    ok, out = s_client(site, site.h.ports[2], *args)
    assert ok, "the control vhost should take this client:\n" + out
    ok, out = s_client(site, site.h.ports[0], *args)
    assert not ok, out
    assert "Protocol version:" not in out


def tls12_gcm_context(site):
    ctx = ssl.create_default_context(cafile=str(site.ca[0]))
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    return ctx


def request(site, method, path, headers=(), body=b"", content_length=None,
            port=0):
    """One HTTP/1.1 request over TLS 1.2 with ECDHE-RSA-AES128-GCM-SHA256
    (Python's ssl); returns (status, body, cipher)."""
    ctx = tls12_gcm_context(site)
    with socket.create_connection(("127.0.0.1", site.h.ports[port]),
                                  60) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as t:
            head = ["%s %s HTTP/1.1" % (method, path), "Host: " + HOST,
                    "Connection: close",
                    "Content-Length: %d" % (len(body) if content_length is None
                                            else content_length)]
            head += ["%s: %s" % kv for kv in headers]
            t.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            data = rvhttpd.read_until_close(t)
            cipher = t.cipher()[0]
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2], cipher


def redox_headers(tok):
    return [("Content-Type", "application/json"),
            ("application-name", "RedoxEngine"),
            ("Authorization", "Bearer " + tok), ("verification-token", tok)]


def test_rv_tls_policy_request_over_tls12_gcm(site):
    rid = new_rid()
    status, body, cipher = request(site, "POST", "/redox/" + rid,
                                   redox_headers(site.tokens["prod"]),
                                   b'{"Meta": {"DataModel": "Test"}}')
    assert cipher == "ECDHE-RSA-AES128-GCM-SHA256"
    assert status == 200, body
    seen = site.backend.find(rid)
    assert len(seen) == 1 and seen[0].values("X-Redox-Source") == ["prod"]


def payload(n):
    body = b'{"Data": "' + b"x" * (n - 12) + b'"}'
    assert len(body) == n
    return body


def test_rv_tls_policy_40mib_payload_reaches_the_application(site):
    rid = new_rid()
    body = payload(40 * MiB)
    status, answer, _ = request(site, "POST", "/redox/" + rid,
                                redox_headers(site.tokens["prod"]), body)
    assert status == 200, answer
    seen = site.backend.find(rid)
    assert len(seen) == 1 and seen[0].body == body


def test_rv_tls_policy_limit_where_httpd_runs_the_application(site):
    """With the application run by httpd (here a CGI program), 40 MiB gets
    through and a body above LimitRequestBody is refused with 413 before it
    is read; an unverified one is refused by the module first."""
    tok = site.tokens["prod"]
    status, answer, _ = request(site, "POST", "/redox/app",
                                redox_headers(tok), payload(40 * MiB),
                                port=3)
    assert status == 200 and b"\nread %d bytes\n" % (40 * MiB) in answer, \
        answer
    status, _, _ = request(site, "POST", "/redox/app", redox_headers(tok),
                           content_length=50 * MiB + 1, port=3)
    assert status == 413
    status, _, _ = request(site, "POST", "/redox/app",
                           [("Content-Type", "application/json")],
                           content_length=50 * MiB + 1, port=3)
    assert status == 401


def test_rv_tls_policy_limit_does_not_hold_for_proxypass(site):
    """What the example's comment says: httpd 2.4 passes a body above
    LimitRequestBody on to a ProxyPass backend."""
    rid = new_rid()
    body = payload(50 * MiB + 1)
    status, _, _ = request(site, "POST", "/redox/" + rid,
                           redox_headers(site.tokens["prod"]), body)
    assert status == 200
    seen = site.backend.find(rid)
    assert len(seen) == 1 and len(seen[0].body) == len(body)
    assert "httpd 2.4 does not apply it to a request it passes to a\n" \
        "        # ProxyPass backend" in rvexample.EXAMPLE.read_text()


def test_rv_tls_policy_waits_longer_than_redox(site):
    """Redox allows a synchronous request 120 s: the example gives the
    application longer than that (which the running server accepted),
    and no shorter Timeout cuts it."""
    text = rvexample.EXAMPLE.read_text()
    m = re.findall(r"^\s*ProxyTimeout\s+(\d+)\s*$", text, re.M)
    assert len(m) == 1 and int(m[0]) > 120, m
    for t in re.findall(r"^\s*Timeout\s+(\d+)\s*$", text, re.M):
        assert int(t) > 120
    m = re.findall(r"^\s*LimitRequestBody\s+(\d+)\s*$", text, re.M)
    assert len(m) == 1 and int(m[0]) > 40 * 1024 * 1024, m


def test_rv_tls_policy_probe_passes_with_rsa(site):
    tf = site.h.root / "secrets" / "prod.token"
    r = rvprobe.run("https://%s:%d/redox/%s" % (HOST, site.h.ports[0],
                                                new_rid()),
                    "--token-file", tf, "--ca", site.ca[0],
                    "--connect-to", "127.0.0.1")
    assert r.rc == 0, r
    assert "ECDHE-RSA-AES128-GCM-SHA256" in r.text("tls1.2")
