"""conf/fail2ban: Debian's fail2ban-regex, with the shipped filter, on the
error log a real httpd with the module wrote while it answered a mix of
requests, each kind sent from its own loopback address (127.0.0.2-7):
every denial for missing or malformed token headers is matched once, with
the address it came from; no other line is (accepted requests, answered
and refused handshakes, wrong-token, mismatch and expired denials, the module's
info and debug lines, httpd's own errors, and a URI that imitates a
denial).  The same for each error log format the manual names, and the
example jail as fail2ban-client reads it."""

import json
import re
import shutil
import subprocess

import pytest

import rvhttpd
from rvhttpd import REPO, new_rid, new_token

FILTER = REPO / "conf" / "fail2ban" / "filter.d" / "redox-verify.conf"
JAIL = REPO / "conf" / "fail2ban" / "jail.d" / "redox-verify.conf"
MANUAL = REPO / "docs" / "mod_redox_verify.md"
UUID = "0b5a9d43-6c0e-4f5f-9c3e-2d3f3a1b7c55"


def manual_error_log_format():
    """The ErrorLogFormat line the manual suggests (its fail2ban section)."""
    lines = [l.strip() for l in MANUAL.read_text().splitlines()
             if l.startswith("    ErrorLogFormat ")]
    assert len(lines) == 1, lines
    return lines[0]


# httpd's default (no ErrorLogFormat), the same spelled out as httpd's
# documentation gives it, and the manual's suggestion.
FORMATS = {
    "default": None,
    "httpd-doc-default": 'ErrorLogFormat "[%{u}t] [%-m:%l] [pid %P:tid %T] '
                         '%7F: %E: [client\\ %a] %M% ,\\ referer\\ '
                         '%{Referer}i"',
    "manual": manual_error_log_format,
}


def fail2ban_config(tmp_path):
    """A copy of the system's fail2ban configuration, as the package
    installed it (no local overrides, no jails of its own), with the
    shipped filter in filter.d."""
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf,
                    ignore=shutil.ignore_patterns("*.local"))
    for p in (conf / "jail.d").iterdir():
        p.unlink()
    shutil.copy(FILTER, conf / "filter.d" / "redox-verify.conf")
    return conf


def fail2ban_regex(conf, log, *opts):
    proc = subprocess.run(["fail2ban-regex", "-c", str(conf)] + list(opts)
                          + [str(log), "redox-verify"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def send(port, src, path, headers=(), method="GET", body=None):
    """One request from the loopback address src; returns the status."""
    return rvhttpd.http_request(port, path, host="f2b.test", headers=headers, method=method,
                                body=body, timeout=15, source=src)[0]


class Mix:
    """What was sent: rid -> (address, status, expected to match)."""

    def __init__(self, port):
        self.port = port
        self.sent = {}

    def go(self, src, want_status, matched, path, **kw):
        rid = new_rid()
        status = send(self.port, src, path.replace("{rid}", rid), **kw)
        assert status == want_status, (path, kw, status)
        self.sent[rid] = (src, matched)
        return rid


def send_mix(port, tok, old):
    m = Mix(port)
    good = [("Authorization", "Bearer " + tok), ("verification-token", tok)]
    json_type = [("Content-Type", "application/json")]
    # 127.0.0.2: no token headers, or one of the two missing: scanners
    m.go("127.0.0.2", 401, True, "/redox/{rid}")
    m.go("127.0.0.2", 401, True, "/redox/{rid}", method="POST",
         headers=json_type, body=b'{"Meta": {"DataModel": "Scan"}}')
    m.go("127.0.0.2", 401, True, "/redox/{rid}",
         headers=[("Authorization", "Bearer " + tok)])
    # ... with a URI that imitates a denial from another address
    m.go("127.0.0.2", 401, True, "/redox/{rid}/%5Bclient%2010.9.9.9:1%5D"
         "%20redox_verify:%20denied%20missing:%20uri%20%22")
    # 127.0.0.3: malformed headers
    m.go("127.0.0.3", 401, True, "/redox/{rid}",
         headers=[("Authorization", "Bearer"), ("verification-token", tok)])
    m.go("127.0.0.3", 401, True, "/redox/{rid}",
         headers=[("Authorization", "Bearer\t" + tok),
                  ("verification-token", tok)])
    m.go("127.0.0.3", 401, True, "/redox/{rid}",
         headers=good + [("Authorization", "Bearer " + tok)])
    # 127.0.0.4: what Redox may send during a rotation: never matched
    wrong = new_token()
    m.go("127.0.0.4", 401, False, "/redox/{rid}",
         headers=[("Authorization", "Bearer " + wrong),
                  ("verification-token", wrong)])
    m.go("127.0.0.4", 401, False, "/redox/{rid}", method="POST",
         headers=json_type + [("Authorization", "Bearer " + wrong),
                              ("verification-token", wrong)], body=b"{}")
    m.go("127.0.0.4", 401, False, "/redox/{rid}",
         headers=[("Authorization", "Bearer " + tok),
                  ("verification-token", wrong)])
    # ... and the old token after its expires= date, as a request and as
    # a handshake
    m.go("127.0.0.4", 401, False, "/redox/{rid}",
         headers=[("Authorization", "Bearer " + old), ("verification-token", old)])
    m.go("127.0.0.4", 401, False, "/redox/{rid}", method="POST",
         headers=json_type, body=json.dumps(
             {"verification-token": old, "challenge": UUID}).encode())
    # ... with a URI that imitates a matching denial
    m.go("127.0.0.4", 401, False, "/redox/{rid}/%5Bx%5D%20redox_verify:"
         "%20denied%20malformed:%20uri%20%22",
         headers=[("Authorization", "Bearer " + wrong),
                  ("verification-token", wrong)])
    # 127.0.0.5: accepted, handshakes answered and refused
    m.go("127.0.0.5", 200, False, "/redox/{rid}", headers=good)
    m.go("127.0.0.5", 200, False, "/redox/{rid}", method="POST",
         headers=json_type + good, body=b'{"Meta": {}}')
    for token, challenge, status in ((tok, UUID, 200), (wrong, UUID, 401),
                                     ("", UUID, 401), (tok, "a b", 400)):
        m.go("127.0.0.5", status, False, "/redox/{rid}", method="POST",
             headers=json_type, body=json.dumps(
                 {"verification-token": token,
                  "challenge": challenge}).encode())
    m.go("127.0.0.5", 200, False,
         "/redox/{rid}?challenge=%s&verification-token=%s" % (UUID, tok))
    m.go("127.0.0.5", 401, False,
         "/redox/{rid}?challenge=%s&verification-token=%s" % (UUID, wrong))
    # 127.0.0.6: no tokens configured, httpd's own refusals
    m.go("127.0.0.6", 401, False, "/notokens/{rid}", headers=good)
    m.go("127.0.0.6", 403, False, "/forbidden/{rid}")
    m.go("127.0.0.6", 404, False, "/{rid}%20redox_verify:%20denied%20"
         "missing:%20uri%20%22")
    # 127.0.0.7: Satisfy Any lets it past the access checker, the fixup
    # denies it (one denial line, and a debug line that is not one)
    m.go("127.0.0.7", 401, True, "/satisfy/{rid}")
    return m


@pytest.fixture(scope="module")
def logs(backend):
    """{format name: (error log, Mix)}: one server per format, stopped
    before its log is read, so that every line is written."""
    out = {}
    for name, fmt in FORMATS.items():
        if callable(fmt):
            fmt = fmt()
        tok, old = new_token(), new_token()
        h = rvhttpd.Httpd("fail2ban-" + name)
        h.write_conf("""
LoadModule access_compat_module "{moddir}/mod_access_compat.so"
{fmt}
<Location /redox/>
    RedoxVerify On
    RedoxVerificationToken prod {tok}
    RedoxVerificationToken old {old} expires=2020-01-01
    ProxyPass http://127.0.0.1:{bp}/fail2ban/
</Location>
<Location /notokens/>
    RedoxVerify On
    ProxyPass http://127.0.0.1:{bp}/fail2ban/
</Location>
<Location /satisfy/>
    RedoxVerify On
    RedoxVerificationToken prod {tok}
    Satisfy Any
    Require all granted
    ProxyPass http://127.0.0.1:{bp}/fail2ban/
</Location>
<Location /forbidden/>
    Require all denied
</Location>
""".format(moddir=rvhttpd.MODDIR, fmt=fmt or "", tok=tok, old=old, bp=backend.port))
        h.allowed += [r"\[authz_core:error\].* AH01630: client denied by "
                      r"server configuration",
                      r"\[redox_verify:error\].* redox_verify: handshake "
                      r"refused bad-challenge:",
                      r"\[redox_verify:warn\].*RedoxVerificationToken old .*expired at"]
        with h:
            mix = send_mix(h.port, tok, old)
        out[name] = (h.error_log, mix)
    return out


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_rv_fail2ban_matches_only_missing_and_malformed(logs, fmt, tmp_path):
    log, mix = logs[fmt]
    text = log.read_text()
    conf = fail2ban_config(tmp_path)
    # The log holds each kind of line the filter must tell apart.
    for needle in ("redox_verify: denied missing:",
                   "redox_verify: denied malformed:",
                   "redox_verify: denied wrong-token:",
                   "redox_verify: denied mismatch:",
                   "redox_verify: denied no-tokens:",
                   "redox_verify: denied handshake wrong-token:",
                   "redox_verify: denied handshake missing:",
                   "redox_verify: denied expired:",
                   "redox_verify: denied handshake expired:",
                   "redox_verify: handshake refused bad-challenge:",
                   "redox_verify: handshake answered",
                   "redox_verify: accepted",
                   "redox_verify: denied request came past the access "
                   "checker",
                   "AH01630: client denied by server configuration",
                   "AH00128: File does not exist"):
        assert needle in text, needle

    matched = []
    for line in fail2ban_regex(conf, log, "-o", "<ip> <msg>").splitlines():
        ip, _, msg = line.partition(" ")
        matched.append((ip, msg))
    want = {rid: src for rid, (src, m) in mix.sent.items() if m}
    got = {}
    for ip, msg in matched:
        rids = [rid for rid in mix.sent if rid in msg]
        assert len(rids) == 1, "matched a line of no request sent: " + msg
        assert rids[0] not in got, "matched twice: " + msg
        got[rids[0]] = ip
        assert re.search(r"redox_verify: denied (missing|malformed): ", msg)
    assert got == want
    assert len(matched) == 8

    # fail2ban-regex's own count over the whole log agrees.
    summary = fail2ban_regex(conf, log)
    m = re.search(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, "
                  r"(\d+) missed", summary, re.M)
    assert m, summary
    assert int(m.group(1)) == len(text.splitlines())
    assert int(m.group(3)) == 8


def test_rv_fail2ban_never_matches_expired(logs, tmp_path):
    """The module's own denials of an expired token (a request and a
    handshake, from 127.0.0.4) match nothing; the same line with
    "missing" for its reason does, so the check could fail."""
    log, mix = logs["default"]
    lines = [l for l in log.read_text().splitlines()
             if "redox_verify: denied expired:" in l
             or "redox_verify: denied handshake expired:" in l]
    assert len(lines) == 2, lines
    conf = fail2ban_config(tmp_path)
    for line in lines:
        assert fail2ban_regex(conf, line, "-o", "<ip>").split() == []
        missing = re.sub(r"denied (handshake )?expired:", "denied missing:", line)
        assert fail2ban_regex(conf, missing, "-o", "<ip>").split() == ["127.0.0.4"]


def test_rv_fail2ban_jail_example(tmp_path):
    """The example jail, as fail2ban-client reads it with the filter: its
    configuration test passes, and the jail watches the log with the
    filter's regular expressions."""
    conf = fail2ban_config(tmp_path)
    log = tmp_path / "redox_error.log"
    log.write_text("")
    text = JAIL.read_text()
    assert "logpath  = /var/log/apache2/redox_error.log" in text
    (conf / "jail.d" / "redox-verify.conf").write_text(
        text.replace("/var/log/apache2/redox_error.log", str(log)))
    proc = subprocess.run(["fail2ban-client", "-c", str(conf), "-t"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: configuration test is successful" in proc.stdout + \
        proc.stderr
    proc = subprocess.run(["fail2ban-client", "-c", str(conf), "-d"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    dump = proc.stdout
    assert "['add', 'redox-verify', 'auto']" in dump
    assert "['set', 'redox-verify', 'addlogpath', '%s', 'head']" % log \
        in dump
    assert "['set', 'redox-verify', 'maxretry', 5]" in dump
    assert "denied (?:missing|malformed)" in dump
    # No jail but this one (the copy has no sshd jail of Debian's).
    assert re.findall(r"\['add', '([^']+)'", dump) == ["redox-verify"]


def test_rv_fail2ban_filter_is_what_the_manual_names():
    text = MANUAL.read_text()
    assert "filter.d/redox-verify.conf" in text
    assert "jail.d/redox-verify.conf" in text
    for reason in ("wrong-token", "mismatch", "expired"):
        assert reason in FILTER.read_text()
