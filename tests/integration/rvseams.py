"""Helpers of the seams suites (test_rv_seams_*.py): the places where
httpd copies a request or routes it past the module's scope.

Each suite asserts what a real backend, CGI or page received, the status
the client got, and that no token (nor its SHA-256 hex digest) appears
anywhere the request went: assert_nowhere() greps the server's logs, the
backend's records and whatever else the test collected.
"""

import threading

import rvhttpd

MODDIR = rvhttpd.MODDIR

# A CGI that shows what it was given: its environment, sorted, and the
# size of the body it could read; each run also appends its
# REQUEST_URI to runs.log beside it, so a test can tell that it did not run
# (by the line of a later request that did).
ENV_CGI = r"""#!/bin/sh
body=$(head -c "${CONTENT_LENGTH:-0}" | wc -c)
echo "$REQUEST_URI" >> "$(dirname "$SCRIPT_FILENAME")/runs.log"
printf 'Content-Type: text/plain\r\n\r\n'
env | sort
echo "BODY_BYTES=$body"
"""

# A CGI ErrorDocument that answers 200 with a page of its own, as an
# application's error page does.
ERROR_CGI = r"""#!/bin/sh
echo "$REQUEST_URI" >> "$(dirname "$SCRIPT_FILENAME")/runs.log"
printf 'Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n'
echo "RV-CGI-ERROR-PAGE"
env | sort
"""


def cgi_env(text):
    """The CGI's environment from its page, as a dict."""
    env = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k and k.replace("_", "").isalnum():
            env[k] = v
    return env


def lines_of(path):
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


wait_for = rvhttpd.wait_for


def needles(tokens):
    """Each token and its hex digest (both cases), as str."""
    out = []
    for t in tokens:
        d = rvhttpd.sha256_hex(t)
        out += [t, d, d.upper()]
    return out


def assert_nowhere(h, tokens, *texts):
    """No token nor its digest in h's error and access logs, in anything
    h's backend recorded (path, headers, body), nor in texts (str, bytes,
    or lists of them).  Polls nothing: call it once the request's own log
    lines are there."""
    hay = [("error.log", h.error_log_text())]
    try:
        hay.append(("access.log", h.access_log.read_text(errors="replace")))
    except OSError:
        pass
    backend = getattr(h, "backend", None)
    if backend is not None:
        with backend.lock:
            recs = list(backend.records)
        for rec in recs:
            hay.append(("backend %s %s" % (rec.method, rec.path),
                        "%s %s\n%r\n%s" % (rec.method, rec.path, rec.headers,
                                           rec.body.decode("latin-1"))))

    def add(label, t):
        if isinstance(t, (list, tuple)):
            for i, x in enumerate(t):
                add("%s[%d]" % (label, i), x)
        elif isinstance(t, bytes):
            hay.append((label, t.decode("latin-1")))
        elif t is not None:
            hay.append((label, str(t)))
    for i, t in enumerate(texts):
        add("text %d" % i, t)
    hits = []
    for label, text in hay:
        for n in needles(tokens):
            if n in text:
                line = next(l for l in text.splitlines() if n in l)
                hits.append("%s: %s" % (label, line.replace(n, "<SECRET>")[:300]))
    assert not hits, "a token or its digest leaked:\n" + "\n".join(hits)


class HoldBackend(rvhttpd.Backend):
    """The recording backend, except that a request whose path contains
    "hold" waits until release() (at most 30 s): a request in flight."""

    def __init__(self):
        super().__init__()
        self.released = threading.Event()
        self.arrived = threading.Event()
        inner = self.server.RequestHandlerClass
        backend = self

        class Handler(inner):
            def _any(self):
                if "hold" in self.path:
                    backend.arrived.set()
                    backend.released.wait(30)
                inner._any(self)

            do_GET = do_POST = do_HEAD = _any

        self.server.RequestHandlerClass = Handler

    def release(self):
        self.released.set()

    def stop(self):
        self.released.set()
        super().stop()


def load_modules(*names):
    """LoadModule lines for Debian's modules beyond the suite's stock set:
    ("status_module", "mod_status.so"), ..."""
    return "".join('LoadModule %s "%s"\n' % (n, MODDIR / so) for n, so in names)
