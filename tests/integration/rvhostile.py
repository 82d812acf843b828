"""The server the hostile-input tests (test_rv_hostile_*.py) attack, and the
checks every case makes: the exact status, nothing at the recording backend
when denied, and Apache still serving a valid request afterwards."""

import secrets
import subprocess

import rvhttpd
import rvraw
from rvhttpd import new_token, register_secret

HOST = "h.test"
FIELD_LIMIT = 8190           # LimitRequestFieldSize of the plain port (httpd's default)
# httpd 2.4 reads a field line of up to LimitRequestFieldSize + 1 bytes
# (name, colon, value; no CRLF) and answers 400 to a longer one.
LONGEST_FIELD_LINE = FIELD_LIMIT + 1
BIG_FIELD_LIMIT = 16384      # the "big" port, so that an 8 KiB token reaches the module
TOKEN_MAX = 8192             # RV_TOKEN_MAX: the longest token that can be configured

REALM = rvhttpd.REALM
CHALLENGE_HEADER = rvhttpd.CHALLENGE
# The startup warning about the expired token "gone" (h.test).
EXPIRED_WARNING = r"\[redox_verify:warn\].*RedoxVerificationToken gone \(.*\) expired at"


def token_of_length(n):
    return register_secret(secrets.token_urlsafe(n)[:n])


def make_cert(directory):
    """A self-signed end-entity certificate for localhost / 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    cnf = directory / "openssl.cnf"
    cnf.write_text("[req]\ndistinguished_name = dn\nx509_extensions = ext\nprompt = no\n"
                   "[dn]\nCN = localhost\n"
                   "[ext]\nbasicConstraints = critical,CA:FALSE\n"
                   "keyUsage = critical,digitalSignature\n"
                   "extendedKeyUsage = serverAuth\n"
                   "subjectAltName = DNS:localhost,IP:127.0.0.1\n")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-config", str(cnf), "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class Hostile:
    """One httpd with four ports, all protecting ProxyPass /proxy/:

    http  h.test (the default vhost), tokens alpha, beta, atlimit (as long
          as an Authorization line may be) and gone (expired in 2020);
          d403.test / d404.test deny with 403 / 404
    big   LimitRequestFieldSize 16384, tokens alpha and big8k (8 KiB)
    h2c   Protocols h2c http/1.1, tokens alpha and beta
    tls   mod_ssl, Protocols h2 http/1.1, tokens alpha and beta
    """

    def __init__(self, name, backend, allowed=()):
        self.backend = backend
        T = self.T = {k: new_token() for k in ("alpha", "beta", "other", "gone")}
        T["atlimit"] = token_of_length(LONGEST_FIELD_LINE - len("Authorization: Bearer "))
        T["big8k"] = token_of_length(TOKEN_MAX)
        T["other8k"] = token_of_length(TOKEN_MAX)
        h = self.h = rvhttpd.Httpd(name, nports=4, allowed=list(allowed) + [EXPIRED_WARNING])
        h.backend = backend
        self.prefix = "/%s/" % name
        # over-long tokens go through files: a configuration line is limited
        atlimit = h.write("secrets/atlimit.token", T["atlimit"] + "\n", 0o600)
        big8k = h.write("secrets/big8k.token", T["big8k"] + "\n", 0o600)
        self.ca, key = make_cert(h.root / "tls")
        proxy = "    ProxyPass /proxy/ http://127.0.0.1:%d%s\n" % (backend.port, self.prefix)
        common = ("    RedoxVerify On\n    RedoxSourceHeader X-Redox-Source\n"
                  "    RedoxVerificationToken alpha %s\n" % T["alpha"]) + proxy

        def vhost(port, name, body):
            return ("<VirtualHost 127.0.0.1:%d>\n    ServerName %s\n%s%s</VirtualHost>\n"
                    % (port, name, common, body))

        beta = "    RedoxVerificationToken beta %s\n" % T["beta"]
        conf = """
LoadModule http2_module "{moddir}/mod_http2.so"
LoadModule socache_shmcb_module "{moddir}/mod_socache_shmcb.so"
LoadModule ssl_module "{moddir}/mod_ssl.so"
SSLSessionCache "shmcb:{root}/run/ssl_scache(512000)"
LimitRequestFieldSize {limit}
""".format(moddir=rvhttpd.MODDIR, root=h.root, limit=FIELD_LIMIT)
        conf += vhost(self.http, HOST, beta + "    RedoxVerificationToken atlimit file:%s\n"
                      "    RedoxVerificationToken gone %s expires=2020-01-01\n"
                      % (atlimit, T["gone"]))
        conf += vhost(self.http, "d403.test", "    RedoxDenyStatus 403\n")
        conf += vhost(self.http, "d404.test", "    RedoxDenyStatus 404\n")
        conf += vhost(self.big, HOST, "    LimitRequestFieldSize %d\n"
                      "    RedoxVerificationToken big8k file:%s\n" % (BIG_FIELD_LIMIT, big8k))
        conf += vhost(self.h2c, HOST, beta + "    Protocols h2c http/1.1\n")
        conf += vhost(self.tls, "localhost", beta + "    Protocols h2 http/1.1\n"
                      "    SSLEngine on\n    SSLCertificateFile %s\n"
                      "    SSLCertificateKeyFile %s\n" % (self.ca, key))
        h.write_conf(conf)

    # read from the server each time: a start may move it to other ports
    http = property(lambda self: self.h.ports[0])
    big = property(lambda self: self.h.ports[1])
    h2c = property(lambda self: self.h.ports[2])
    tls = property(lambda self: self.h.ports[3])

    def start(self):
        self.h.start()
        return self

    def stop(self):
        self.h.stop()

    @classmethod
    def serving(cls, name, backend, allowed=()):
        """The module's fixture: started, yielded, stopped."""
        s = cls(name, backend, allowed).start()
        yield s
        s.stop()

    # -- requests ----------------------------------------------------------------
    def target(self, rid, rest=""):
        return "/proxy/%s%s" % (rid, rest)

    def good_lines(self, name="alpha"):
        t = self.T[name]
        return ["Authorization: Bearer " + t, "verification-token: " + t]

    # -- checks ------------------------------------------------------------------
    def backend_saw(self, rid):
        return self.backend.find(rid)

    @staticmethod
    def _denials(lines):
        return rvhttpd.denial_lines(lines, extra=(rvhttpd.REFUSED.strip(),))

    def denial_lines(self, rid, want=1):
        return self._denials(self.h.error_lines(rid, want=want))

    def access_fields(self, rid):
        """(rvsrc, rvver, status) of the access-log line of rid."""
        lines = self.h.access_lines(rid)
        assert len(lines) == 1, lines
        head, _, tail = lines[0].partition('" ')
        status = tail.split(" ", 1)[0]
        fields = dict(f.split("=", 1) for f in lines[0].rsplit(" ", 2)[1:])
        return fields["rvsrc"], fields["rvver"], int(status)

    def assert_denied(self, rid, resp, status, reason=None):
        """Denied with status: by the module when reason is given (its
        error-log line says so), else by httpd before the module ran.  In
        both cases the backend saw nothing."""
        rvhttpd.assert_refused(resp, status, self.backend_saw(rid),
                               context=self.h.error_log_tail(5))
        if reason is not None:
            lines = self.denial_lines(rid)
            assert lines, "no denial line for %s:\n%s" % (rid, self.h.error_log_tail(5))
            assert ("redox_verify: denied %s:" % reason) in lines[-1], lines
            if status == 401:
                # "handshake wrong-token" is challenged like "wrong-token"
                assert resp.header_values("WWW-Authenticate") == [
                    CHALLENGE_HEADER[reason.split()[-1]]], resp.headers
        else:
            lines = self._denials(self.h.settled_error_lines(rid))
            assert lines == [], lines
            assert not resp.header_values("WWW-Authenticate"), resp.headers

    def assert_passed(self, rid, resp, name="alpha", status=200):
        """Accepted and proxied once, without the token headers, with the
        accepted NAME in X-Redox-Source."""
        assert resp.status == status, (resp, self.h.error_log_tail(5))
        rec = rvhttpd.assert_forwarded(self.backend_saw(rid), name, self.prefix, self.T.values(),
                                       authorization=None)
        assert not [v for v in rec.values("Authorization") if "earer" in v], rec.headers
        return rec

    def assert_still_serving(self, port=None):
        """A valid request on a new connection still gets through."""
        rid = rvhttpd.new_rid()
        port = port or self.http
        ex = rvraw.exchange(port, rvraw.request(target=self.target(rid), lines=self.good_lines()),
                            tls=self.ca if port == self.tls else None)
        assert len(ex.final) == 1, ex
        return self.assert_passed(rid, ex.final[0])

