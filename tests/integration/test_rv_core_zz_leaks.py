"""Runs last (conftest moves it to the end): no token configured or sent by
this suite, nor the hex SHA-256 digest of one, may appear in any log or
httpd output the suite produced, nor in any response body a client of the
suite received.  Every server logs with LogLevel info redox_verify:trace8
and the combined format (rvhttpd.LOG_LEVEL, rvhttpd.LOG_FORMAT)."""

import os
import re

import rvhttpd


def _log_files():
    gen = rvhttpd.GEN_DIR
    files = []
    for p in sorted(gen.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(gen).parts
        # logs/ holds error/access logs and captured apache2 stdout/stderr
        if "logs" in rel:
            files.append(p)
    return files


def _needles():
    """(label, bytes) for every secret, its hex digest in both cases."""
    out = []
    for s in sorted(x for x in rvhttpd.SECRETS if len(x) >= 8):
        hexd = rvhttpd.sha256_hex(s)
        label = "token len=%d" % len(s)
        out.append((label, s.encode()))
        out.append(("sha256 of " + label, hexd.encode()))
        out.append(("SHA256 of " + label, hexd.upper().encode()))
    return out


def test_rv_core_zz_no_token_in_logs():
    rvhttpd.stop_all()  # make sure every log is complete
    files = _log_files()
    assert files, "no logs found under %s: run the whole suite" % rvhttpd.GEN_DIR
    assert any(p.name == "error.log" for p in files)
    assert any(p.name == "access.log" for p in files)
    needles = _needles()
    assert needles
    hits = []
    for p in files:
        data = p.read_bytes()
        for label, s in needles:
            if s in data:
                for line in data.splitlines():
                    if s in line:
                        hits.append("%s: %s" % (p, line.replace(s, b"<%s>" % label.encode())
                                                .decode("utf-8", "replace")))
                        break
    assert not hits, "tokens leaked into logs:\n" + "\n".join(hits)


def test_rv_core_zz_no_token_in_response_bodies():
    bodies = rvhttpd.RESPONSE_BODIES
    assert bodies, "no responses recorded: run the whole suite"
    needles = _needles()
    hits = []
    for i, body in enumerate(bodies):
        for label, s in needles:
            if s in body:
                hits.append("response #%d contains the %s: %r" % (
                    i, label, body.replace(s, b"<" + label.encode() + b">")[:300]))
    assert not hits, "tokens in response bodies:\n" + "\n".join(hits)


def test_rv_core_zz_every_server_logged_like_a_site():
    """The greps above mean something only if every server of the session
    logged as much as a real site would: the module at trace8 and an access
    log in the combined format with REDOX_SOURCE."""
    confs = [h.conf for h in rvhttpd.INSTANCES if h.conf.is_file()]
    assert confs, "no server was generated: run the whole suite"
    if not os.environ.get("RV_LOGLEVEL"):
        assert "redox_verify:trace8" in rvhttpd.LOG_LEVEL
    combined = '%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"'
    for conf in confs:
        text = conf.read_text()
        assert "\nLogLevel %s\n" % rvhttpd.LOG_LEVEL in text, conf
        formats = dict(re_formats(text))
        logs = [l.split()[-1] for l in text.splitlines() if l.strip().startswith("CustomLog")]
        # extra access logs (tests may add one) are grepped all the same
        assert any(formats.get(nick, "").startswith(combined)
                   and "%{REDOX_SOURCE}e" in formats[nick] for nick in logs), (conf, logs)


def re_formats(text):
    """(nickname, format) of every LogFormat line."""
    for m in re.finditer(r'^\s*LogFormat\s+"((?:[^"\\]|\\.)*)"\s+(\S+)\s*$', text, re.M):
        yield m.group(2), m.group(1)
