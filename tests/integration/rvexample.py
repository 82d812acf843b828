"""The shipped conf/redox-vhost.conf.example, served by a generated httpd:
test certificates made with openssl, test tokens in root-only files, the
recording backend in place of the application, logs in the server root.

Every line the tests replace must still be in the example, or this fails,
so the example cannot drift away from what is tested."""

import re
import subprocess

import rvhttpd
from rvhttpd import REPO, new_token

EXAMPLE = REPO / "conf" / "redox-vhost.conf.example"
HOST = "redox.example.test"
SSL_MODULES = """
LoadModule socache_shmcb_module "{moddir}/mod_socache_shmcb.so"
LoadModule ssl_module "{moddir}/mod_ssl.so"
SSLSessionCache "shmcb:{root}/run/ssl_scache(512000)"
"""


def make_ca(directory):
    """A test CA (certificate and key) in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, key = directory / "ca.pem", directory / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "60",
                    "-subj", "/CN=mod_redox_verify test CA",
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                    "-keyout", str(key), "-out", str(ca)],
                   check=True, capture_output=True, timeout=60)
    return ca, key


def make_cert(directory, name, ca, days=30, key_type="ec", host=HOST):
    """A server certificate for host signed by ca (a (cert, key) pair),
    valid for days; key_type ec (P-256) or rsa (2048 bits)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / (name + ".pem"), directory / (name + ".key")
    csr = directory / (name + ".csr")
    ext = directory / (name + ".ext")
    ext.write_text("basicConstraints = critical,CA:FALSE\n"
                   "keyUsage = critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage = serverAuth\n"
                   "subjectAltName = DNS:%s\n" % host)
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
              if key_type == "ec" else ["-newkey", "rsa:2048"])
    subprocess.run(["openssl", "req", "-new"] + newkey +
                   ["-nodes", "-subj", "/CN=" + host, "-keyout", str(key),
                    "-out", str(csr)], check=True, capture_output=True,
                   timeout=60)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA",
                    str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
                    "-days", str(days), "-extfile", str(ext), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


PROXY_LINES = ("        ProxyPass        http://127.0.0.1:8080/\n"
               "        ProxyPassReverse http://127.0.0.1:8080/\n")


def example_vhost(h, port, backend, cert, key, extra="", tokens=None,
                  app=None):
    """The example's text for h (an rvhttpd.Httpd), on 127.0.0.1:port, with
    extra lines added before </VirtualHost>, and app (lines) in place of
    its ProxyPass lines if given.  Returns (text, tokens) with tokens
    {"prod": ..., "staging": ...}, made and written to the token files
    unless given (by an earlier call for the same h)."""
    text = EXAMPLE.read_text()
    if app is not None:
        assert PROXY_LINES in text, "the example's ProxyPass lines changed"
        text = text.replace(PROXY_LINES, app)
    changes = [
        ("<VirtualHost *:443>", "<VirtualHost 127.0.0.1:%d>" % port),
        ("ServerName redox.example.org", "ServerName " + HOST),
        ("/etc/ssl/certs/redox.example.org.pem", str(cert)),
        ("/etc/ssl/private/redox.example.org.key", str(key)),
        ("${APACHE_LOG_DIR}/redox_access.log",
         str(h.root / "logs" / "redox_access.log")),
        ("${APACHE_LOG_DIR}/redox_error.log", str(h.error_log)),
        ("/etc/apache2/redox/", str(h.root / "secrets") + "/"),
    ]
    if app is None:
        changes.append(("http://127.0.0.1:8080/", "http://127.0.0.1:%d/"
                        "example/" % backend.port))
    for old, new in changes:
        assert old in text, "the example no longer has %r" % old
        text = text.replace(old, new)
    if tokens is None:
        tokens = {}
        for name in ("prod", "staging"):
            tokens[name] = new_token()
            h.write("secrets/%s.token" % name, tokens[name] + "\n", 0o600)
    text, n = re.subn(r"</VirtualHost>", extra.replace("\\", "\\\\")
                      + "</VirtualHost>", text)
    assert n == 1
    return text, tokens


def ssl_modules(h):
    return SSL_MODULES.format(moddir=rvhttpd.MODDIR, root=h.root)


class Site:
    """A TLS site of the example: its Httpd (h) with the recording backend
    and nports ports, and a test CA (ca) in the server root's tls/."""

    def __init__(self, name, nports, backend):
        self.h = rvhttpd.Httpd(name, nports=nports)
        self.h.backend = self.backend = backend
        self.tls = self.h.root / "tls"
        self.ca = make_ca(self.tls)
