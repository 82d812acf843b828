"""Seams: httpd's own pages about the server and its configuration, and
what the configuration says about requests that can never arrive.

- mod_info's /server-info shows every directive with its arguments: a
  literal RedoxVerificationToken VALUE is the token.  The module warns at
  startup when mod_info is loaded and a literal token is configured; the
  other VALUE forms show no secret.
- mod_status's /server-status gets a "Redox token verification" section
  only where a verified scope applies.
- TRACE is answered by httpd's core before any handler, the metrics'
  included, as TraceEnable says (Debian's security.conf: Off).
- A token whose header line is longer than LimitRequestFieldSize allows
  can be configured but never presented: the module warns at startup,
  naming the token and the limit.
"""

import secrets

import pytest

import rvhttpd
import rvraw
import rvseams
from rvhttpd import both, new_token

INFO = rvseams.load_modules(("info_module", "mod_info.so"))
STATUS = rvseams.load_modules(("status_module", "mod_status.so"))
# a token that /server-info shows by design in the test of that; not one
# of the suite's secrets, which the final leak scan greps for
LITERAL = "literal-value-shown-by-mod-info-0123456789"
WARN_INFO = r"\[redox_verify:warn\].*mod_info is loaded and RedoxVerificationToken"
WARN_LONG = r"\[redox_verify:warn\].*is longer than the LimitRequestFieldSize"


def test_rv_seams_pages_mod_info_literal_warned(backend):
    res = rvhttpd.config_test("info-literal", INFO + """
<Location /redox/>
    RedoxVerify On
    RedoxVerificationToken lit %s
</Location>
""" % LITERAL)
    assert res.rc == 0, res
    assert "mod_info is loaded and RedoxVerificationToken lit (" in res.output, res.output
    assert "file:, env:, exec: or sha256:" in res.output
    assert LITERAL not in res.output


def test_rv_seams_pages_mod_info_file_form_shows_no_secret(backend, tmp_path):
    tok = new_token()
    h = rvhttpd.Httpd("seams-info", allowed=[WARN_INFO])
    h.write("secrets/tok", tok + "\n", 0o600)
    h.write_conf(INFO + """
<Location /server-info>
    SetHandler server-info
</Location>
<Location /redox/>
    RedoxVerify On
    RedoxVerificationToken filed file:{root}/secrets/tok
    RedoxVerificationToken hashed sha256:{hexd}
    RedoxVerificationToken lit {lit}
</Location>
""".format(root=h.root, hexd=secrets.token_hex(32), lit=LITERAL))
    with h:
        assert h.error_lines("mod_info is loaded and RedoxVerificationToken lit")
        status, _, body = rvhttpd.http_request(h.port, "/server-info?config")
        text = body.decode()
        assert status == 200
        assert "RedoxVerificationToken" in text and "file:" in text, text
        assert LITERAL in text          # as the warning and the manual say
        rvseams.assert_nowhere(h, [tok], text)


def test_rv_seams_pages_no_mod_info_no_warning():
    res = rvhttpd.config_test("no-info-literal", """
<Location /redox/>
    RedoxVerify On
    RedoxVerificationToken lit %s
</Location>
""" % LITERAL)
    assert res.rc == 0 and "mod_info" not in res.output, res


def test_rv_seams_pages_status_section_only_where_configured():
    status = rvhttpd.location("/server-status", "SetHandler server-status")
    h = rvhttpd.Httpd("seams-status-section")
    h.write_conf(STATUS + status + rvhttpd.vhost(h.port, "plain.test"))
    with h:
        for q in ("", "?auto"):
            r = h.request("/server-status" + q, host="plain.test")
            assert r.status == 200 and "Total" in r.text
            assert "redox" not in r.text.lower(), r.text[-2000:]
    tok = new_token()
    h = rvhttpd.Httpd("seams-status-section2")
    h.write_conf(STATUS + status + rvhttpd.vhost(h.port, "plain.test")
                 + rvhttpd.vhost(h.port, "hooks.test", rvhttpd.verified("/redox/", {"hook": tok})))
    with h:
        r = h.request("/server-status?auto", host="plain.test")
        lines = [l for l in r.text.splitlines() if l.startswith("RedoxVerify") and "[" in l]
        assert lines and all("[hooks.test:" in l for l in lines), lines


@pytest.mark.parametrize("trace,status", [("On", 200), ("Off", 405)])
def test_rv_seams_pages_trace_follows_traceenable(trace, status):
    tok = new_token()
    h = rvhttpd.Httpd("seams-trace-" + trace.lower())
    h.write_conf("""
TraceEnable {trace}
<Location /redox-metrics>
    SetHandler redox-verify-metrics
</Location>
<Location /redox/>
    RedoxVerify On
    RedoxVerificationToken hook {tok}
</Location>
""".format(trace=trace, tok=tok))
    with h:
        ex = rvraw.exchange(h.port, rvraw.request(method="TRACE", target="/redox-metrics",
                                                  host="localhost"))
        resp = ex.final[0]
        assert resp.status == status, resp
        assert b"redox_verify_requests" not in resp.body     # never the metrics
        r = h.request("/redox-metrics")
        assert r.status == 200 and "redox_verify_requests_denied_total" in r.text


def test_rv_seams_pages_token_too_long_for_the_header_warned():
    tok = new_token(60)           # 80 characters: a line of 102
    body = """
LimitRequestFieldSize 100
<Location /redox/>
    RedoxVerify On
    RedoxVerificationToken long %s
</Location>
""" % tok
    res = rvhttpd.config_test("long-token", body)
    assert res.rc == 0, res
    assert "RedoxVerificationToken long (" in res.output, res.output
    assert "is 80 characters" in res.output and "LimitRequestFieldSize 100" in res.output
    # true: such a request never reaches the module
    h = rvhttpd.Httpd("seams-long-token", allowed=[WARN_LONG])
    h.write_conf(body)
    with h:
        assert h.error_lines("RedoxVerificationToken long (")
        r = h.request("/redox/", headers=both(tok))
        assert r.status == 400
        rvseams.assert_nowhere(h, [tok], r.text)
    # and one that fits draws no warning
    res = rvhttpd.config_test("long-token-fits", body.replace("100", "101"))
    assert res.rc == 0 and "LimitRequestFieldSize" not in res.output, res
