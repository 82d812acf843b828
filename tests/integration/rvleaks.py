"""The session's closing check (conftest's rv_session fixture runs it once
every test of the session, whatever was selected and in whatever order,
has finished and every server is stopped): no token configured or sent by
the suite, nor the hex SHA-256 digest of one, may appear in any log or
httpd output the suite produced, nor in any response body a client of the
suite received; and every server that ran logged as much as a real site
would, read from what it really wrote, so that the greps mean something."""

import os
import re

import rvhttpd

# One line of rvhttpd.LOG_FORMAT: httpd's combined format, then the
# module's two variables.
_QUOTED = r'"(?:[^"\\]|\\.)*"'
COMBINED_RV = re.compile(r"\S+ \S+ \S+ \[[^\]]+\] %s \d{3} \d+ %s %s rvsrc=\S* rvver=\S*\Z"
                         % (_QUOTED, _QUOTED, _QUOTED))
# The module's startup line at debug, the highest level it logs at: in a
# server's error log it shows that LogLevel let the module log everything.
MODULE_DEBUG = re.compile(r"\[redox_verify:debug\] .*redox_verify: .*series, \d+ counters")


def _log_files():
    gen = rvhttpd.GEN_DIR
    if not gen.is_dir():
        return []
    # logs/ holds error/access logs and captured apache2 stdout/stderr
    return [p for p in sorted(gen.rglob("*"))
            if p.is_file() and "logs" in p.relative_to(gen).parts]


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


def tokens_in_logs():
    hits = []
    needles = _needles()
    for p in _log_files():
        data = p.read_bytes()
        for label, s in needles:
            if s in data:
                line = next(l for l in data.splitlines() if s in l)
                hits.append("%s: %s" % (p, line.replace(s, b"<%s>" % label.encode())
                                        .decode("utf-8", "replace")))
    return ["a token in a log: " + h for h in hits]


def tokens_in_bodies():
    hits = []
    needles = _needles()
    for i, body in enumerate(rvhttpd.RESPONSE_BODIES):
        for label, s in needles:
            if s in body:
                hits.append("response #%d contains the %s: %r" % (
                    i, label, body.replace(s, b"<" + label.encode() + b">")[:300]))
    return hits


def servers_not_logging_like_a_site():
    """Every server that started: its error log has the module's debug
    line (unless RV_LOGLEVEL chose another level), and every line of its
    access log is in the combined format with REDOX_SOURCE and
    REDOX_VERIFY, as the server wrote it."""
    out = []
    started = [h for h in rvhttpd.INSTANCES if h.started]
    if started and not _log_files():
        out.append("servers ran but no log is under %s" % rvhttpd.GEN_DIR)
    for h in started:
        if not os.environ.get("RV_LOGLEVEL") and not MODULE_DEBUG.search(h.error_log_text()):
            out.append("%s: no [redox_verify:debug] line: the module did not log at the "
                       "level a site may set (LogLevel %s)" % (h.error_log, rvhttpd.LOG_LEVEL))
        try:
            lines = h.access_log.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        bad = [l for l in lines if not COMBINED_RV.match(l)]
        if bad:
            out.append("%s: %d line(s) not in the combined format with rvsrc=/rvver=, "
                       "first: %s" % (h.access_log, len(bad), bad[0]))
    return out


def scan():
    """Every problem found, as text (empty when all is well)."""
    return tokens_in_logs() + tokens_in_bodies() + servers_not_logging_like_a_site()
