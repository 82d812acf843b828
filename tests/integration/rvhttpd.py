"""Test harness for the mod_redox_verify integration suite.

Generates throw-away Apache httpd server roots, starts/stops Debian's
apache2 binary on them, talks HTTP to them with full control over the
request headers, and runs a recording backend that stands in for the
webhook consumer behind ProxyPass.

Environment overrides:
  RV_MODULE          path of the module to load (default: <repo>/.libs/mod_redox_verify.so)
  RV_APACHE          httpd binary (default: /usr/sbin/apache2)
  RV_HTTPD_PRELOAD   LD_PRELOAD given to httpd only (e.g. libasan for a sanitizer build)
  RV_GEN_DIR         where server roots are generated (default: tests/integration/gen)
  RV_LOGLEVEL        LogLevel of every generated server (default: info redox_verify:trace8,
                     the most a real site could log; the leak test greps all of it)
  RV_SANITIZER_LOG_DIR  where ASAN_OPTIONS/UBSAN_OPTIONS log_path write reports
                     (set by `make asan`); a test that leaves a file there fails
"""

import hashlib
import http.client
import http.server
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import rvports

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GEN_DIR = Path(os.environ.get("RV_GEN_DIR") or (HERE / "gen")).resolve()
MODULE = Path(os.environ.get("RV_MODULE") or (REPO / ".libs" / "mod_redox_verify.so")).resolve()
APACHE = os.environ.get("RV_APACHE") or "/usr/sbin/apache2"
MODDIR = Path("/usr/lib/apache2/modules")

# Debian modules every generated server loads (unixd, log_config are built in),
# after the MPM (see MPM_CONF).
STOCK_MODULES = [
    ("authn_core_module", "mod_authn_core.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("authz_host_module", "mod_authz_host.so"),
    ("mime_module", "mod_mime.so"),
    ("dir_module", "mod_dir.so"),
    ("alias_module", "mod_alias.so"),
    ("rewrite_module", "mod_rewrite.so"),
    ("env_module", "mod_env.so"),
    ("setenvif_module", "mod_setenvif.so"),
    ("headers_module", "mod_headers.so"),
    ("include_module", "mod_include.so"),
    ("cgid_module", "mod_cgid.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
]

# The MPM a generated server runs, with small limits suited to tests.
MPM_MODULE = {"event": ("mpm_event_module", "mod_mpm_event.so"),
              "prefork": ("mpm_prefork_module", "mod_mpm_prefork.so")}
MPM_CONF = {
    "event": [
        "StartServers 1",
        "ServerLimit 2",
        "ThreadsPerChild 16",
        "MinSpareThreads 1",
        "MaxSpareThreads 32",
        "MaxRequestWorkers 32",
    ],
    "prefork": [
        "StartServers 1",
        "MinSpareServers 1",
        "MaxSpareServers 8",
        "ServerLimit 8",
        "MaxRequestWorkers 8",
    ],
}

# Every generated server logs the way a real site would: httpd's `combined`
# format plus the module's variables, and the module at trace8 (LOG_LEVEL).
# Tests read the last two fields (rvsrc=, rvver=).
LOG_FORMAT = ('%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\" '
              'rvsrc=%{REDOX_SOURCE}e rvver=%{REDOX_VERIFY}e')
LOG_LEVEL = os.environ.get("RV_LOGLEVEL") or "info redox_verify:trace8"

# How long a wait for something that is due (a server up, a log line of a
# request that has been answered) may take before the test fails.  Each
# wait ends as soon as the thing is there: this only bounds a test that is
# failing, so it is generous for a slow or loaded machine.
WAIT = 60

# The names and values every harness sends and expects.
TOKEN_HEADER = "verification-token"
AUTH_HEADER = "Authorization"
DENIED = "redox_verify: denied "        # the module's denial log line
# The challenge of a 401 (WWW-Authenticate), by the reason of the denial.
REALM = 'Bearer realm="Redox"'
CH_MISSING = REALM
CH_INVALID_TOKEN = REALM + ', error="invalid_token"'
CH_INVALID_REQUEST = REALM + ', error="invalid_request"'
CHALLENGE = {
    "missing": CH_MISSING,
    "no-tokens": CH_MISSING,
    "malformed": CH_INVALID_REQUEST,
    "wrong-token": CH_INVALID_TOKEN,
    "mismatch": CH_INVALID_TOKEN,
    "expired": CH_INVALID_TOKEN,
}
# The challenge (a UUID) of the handshake tests.
HANDSHAKE_UUID = "2e73f864-a0e9-4764-a7d5-91fe5836db22"
# The refusal of a bad handshake challenge is logged at error, like a
# denial: an allowed error-log line where a test sends one.
REFUSED = "redox_verify: handshake refused "
BAD_CHALLENGE_LOGGED = r"\[redox_verify:error\].*" + REFUSED + "bad-challenge"
# Capacity notices of a server kept busy on purpose (all workers busy; the
# event MPM's earlier "idle workers within MinSpareThreads of the limit"):
# allowed in the error log of a load run, never a failure of the module.
CAPACITY_NOTICES = [r"AH00484: server reached MaxRequestWorkers",
                    r"AH10159: server is within MinSpareThreads"]


def wait_for(predicate, timeout=WAIT, what="the condition"):
    """predicate()'s first true value, polling; fails after timeout."""
    value = wait_until(predicate, timeout)
    assert value, "timed out waiting for " + what
    return value


def wait_until(predicate, timeout=WAIT, interval=0.05):
    """predicate()'s first true value, polling until timeout; its last
    (false) value if none came.  The timeout only bounds a failing wait."""
    deadline = time.time() + timeout
    while True:
        got = predicate()
        if got or time.time() >= deadline:
            return got
        time.sleep(interval)


def port_open(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port, timeout=WAIT, proc=None):
    """True once 127.0.0.1:port accepts a connection; False after timeout
    or once proc (a Popen) has exited."""
    def ready():
        if proc is not None and proc.poll() is not None:
            return "exited"
        return port_open(port) and "open"
    return wait_until(ready, timeout) == "open"


def children_of(ppid):
    """The live (not zombie) child processes of ppid, sorted."""
    if not ppid:
        return []
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] != "Z":
            out.append(int(d))
    return sorted(out)


def httpd_env(extra=None):
    """The environment httpd runs with: ours, extra, and RV_HTTPD_PRELOAD
    as LD_PRELOAD (httpd only, never the test process)."""
    env = dict(os.environ)
    env.update(extra or {})
    pre = os.environ.get("RV_HTTPD_PRELOAD")
    if pre:
        env["LD_PRELOAD"] = pre
    return env


# ---------------------------------------------------------------------------
# secrets bookkeeping: every token the suite configures or sends is
# registered here, and the final test greps every log for all of them.
# ---------------------------------------------------------------------------
SECRETS = set()


def register_secret(value):
    SECRETS.add(value)
    return value


# Every response body any client of the suite received; the final test greps
# them for the secrets too.
RESPONSE_BODIES = []


def record_response(body):
    RESPONSE_BODIES.append(bytes(body))
    return body


def new_token(nbytes=32):
    """A fresh URL-safe token (43 chars for 32 bytes), registered as secret."""
    return register_secret(secrets.token_urlsafe(nbytes))


def sha256_hex(token):
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def new_rid():
    """A request id that tests put into paths/queries to find their traces."""
    return "rid" + uuid.uuid4().hex[:20]


def free_port():
    """A loopback port for a server of this process (rvports: a block of
    its own, outside the kernel's ephemeral range)."""
    return rvports.port()


def write_file(path, text, mode=0o644):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def make_readable_tree(root):
    """Let www-data (the httpd children) traverse and read the server root."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        if "secrets" in Path(dirpath).relative_to(root).parts:
            # token files/programs stay root-only: httpd must read them
            # while still root, at configuration time
            os.chmod(dirpath, 0o700)
            continue
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = Path(dirpath) / f
            if p.is_symlink():
                continue
            m = p.stat().st_mode
            os.chmod(p, (m | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH) & 0o7777)
    p = root
    while p != p.parent:
        p = p.parent
        m = p.stat().st_mode
        if not m & stat.S_IXOTH:
            os.chmod(p, m | stat.S_IXOTH)


# ---------------------------------------------------------------------------
# error log policy
# ---------------------------------------------------------------------------
_BAD_LEVEL = re.compile(r"\[[A-Za-z0-9_.-]*:(warn|error|crit|alert|emerg)\]")
_CRASH = re.compile(
    r"AH00052|AH00051|AH00060|AH00045|Segmentation fault|exit signal|"
    r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
    r"double free|stack smashing|Aborted|core dumped"
)
# The module's own denial lines are expected (one per denied request).
DEFAULT_ALLOWED = [re.compile(r"\[redox_verify:error\].*redox_verify: denied ")]


SANITIZER_LOG_DIR = os.environ.get("RV_SANITIZER_LOG_DIR")
_SEEN_REPORTS = set()


def new_sanitizer_reports():
    """Sanitizer report files (log_path) that appeared since the last call,
    each as its path and first lines."""
    if not SANITIZER_LOG_DIR or not os.path.isdir(SANITIZER_LOG_DIR):
        return []
    out = []
    for name in sorted(os.listdir(SANITIZER_LOG_DIR)):
        path = os.path.join(SANITIZER_LOG_DIR, name)
        if path in _SEEN_REPORTS:
            continue
        _SEEN_REPORTS.add(path)
        with open(path, errors="replace") as f:
            head = "".join(f.readlines()[:40])
        out.append("%s:\n%s" % (path, head))
    return out


def unexpected_log_lines(text, allowed=()):
    bad = []
    pats = list(DEFAULT_ALLOWED) + [re.compile(a) if isinstance(a, str) else a for a in allowed]
    for line in text.splitlines():
        if _CRASH.search(line):
            bad.append(line)
            continue
        if _BAD_LEVEL.search(line):
            if any(p.search(line) for p in pats):
                continue
            bad.append(line)
    return bad


# ---------------------------------------------------------------------------
# HTTP client with exact control over the header lines sent
# ---------------------------------------------------------------------------
class HeaderAccess:
    """Header lookup on .headers (a list of (name, value)) and .body."""

    def header_values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        vals = self.header_values(name)
        return vals[0] if vals else None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")


class Response(HeaderAccess):
    def __init__(self, status, headers, body, rid, path, backend=None):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body
        self.rid = rid
        self.path = path
        self._backend = backend

    @property
    def backend_requests(self):
        """Requests the recording backend received for this request's rid."""
        if self._backend is None:
            return []
        return self._backend.find(self.rid)

    def __repr__(self):
        return "<Response %s %s %r>" % (self.status, self.path, self.headers)


def put_request(conn, method, path, host, headers, body):
    """Sends one request on an http.client connection with exactly these
    header lines: Host, headers in order (duplicates allowed, value may be
    bytes), Connection: close, and Content-Length with a body."""
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    conn.putheader("Host", host)
    for k, v in headers:
        conn.putheader(k, v)
    conn.putheader("Connection", "close")
    if body is not None:
        body = body.encode() if isinstance(body, str) else body
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)


def http_request(port, path, host="localhost", headers=(), method="GET", body=None,
                 timeout=WAIT, source=None):
    """Send one request; headers is a list of (name, value) pairs sent as-is
    and in order (duplicates allowed, value may be bytes).  Returns once the
    server has closed the connection (Connection: close): httpd does that
    only after the request is over and logged, so its log lines are all
    there (see wait_closed).  source: the local address to send from."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    watch = None
    try:
        conn.connect()
        # http.client lets go of its socket with the response; a second
        # descriptor of the connection sees the server's close
        watch = conn.sock.dup()
        put_request(conn, method, path, host, headers, body)
        resp = conn.getresponse()
        data = record_response(resp.read())
        wait_closed(watch)
        return resp.status, resp.getheaders(), data
    finally:
        conn.close()
        if watch is not None:
            watch.close()


class KeepAlive:
    """Requests one after another on one keep-alive connection, sent as
    http.client sends them (Host: 127.0.0.1:port, Accept-Encoding:
    identity, Content-Length with a body): what the bench's callgrind runs
    measure."""

    def __init__(self, port, timeout=WAIT):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, method, path, headers=None, body=None):
        self.conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = self.conn.getresponse()
        data = record_response(resp.read())
        return Response(resp.status, resp.getheaders(), data, None, path)

    def close(self):
        self.conn.close()


def recv_until(sock, data=b"", stop=None, closes=(), timeout_ends=False):
    """The raw HTTP reader of every harness: appends what sock receives to
    data until the peer closes it (recv() returns nothing, or one of the
    exceptions `closes` is raised) or stop(data) holds.  Returns (data,
    closed).  A socket timeout ends the read with closed False when
    timeout_ends, else it is raised."""
    try:
        while not (stop and stop(data)):
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
        return data, False
    except socket.timeout:
        if not timeout_ends:
            raise
        return data, False
    except closes:
        return data, True


def read_until_close(sock, data=b"", closes=()):
    """data and everything sock receives until the peer closes it."""
    return recv_until(sock, data, closes=closes)[0]


def wait_closed(sock):
    """Reads (and drops) what else comes until the server closes sock.

    httpd logs a request when the request's EOR bucket has been written out,
    and closes a Connection: close connection (ap_start_lingering_close:
    flush, then shutdown) only after that: so once this returns, the
    request's access-log line and every error-log line of it are in the
    logs.  Fails if the server does not close within the socket's timeout."""
    try:
        read_until_close(sock, closes=(ConnectionResetError,))
    except socket.timeout:
        raise AssertionError("the server kept the connection open after the answer to a "
                             "Connection: close request")


def _tcp_hex(addr):
    """'0100007F:1F90' as /proc/net/tcp writes 127.0.0.1:8080."""
    host, port = addr
    return "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)


def wait_accepted(sock, timeout=WAIT):
    """Waits until the server has accept()ed the connection of client
    socket sock: a connection still in the listen queue has no socket of
    its own yet, and /proc/net/tcp shows inode 0 for it.  From then on it
    belongs to the process (the httpd child) that accepted it.  Send some
    of the request first: httpd listens with TCP_DEFER_ACCEPT, so the
    kernel hands it a connection only once data has arrived."""
    server, client = _tcp_hex(sock.getpeername()), _tcp_hex(sock.getsockname())
    deadline = time.time() + timeout
    while True:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[1] == server and fields[2] == client and fields[9] != "0":
                    return
        assert time.time() < deadline, "connection %s not accepted" % (sock.getsockname(),)
        time.sleep(0.01)


# ---------------------------------------------------------------------------
# the checks every suite makes of a denial and of a forwarded request
# ---------------------------------------------------------------------------
def assert_refused(resp, status, backend, challenge=None, context=""):
    """A denial as the client and the backend see it: the status, the
    WWW-Authenticate values (challenge: a list, or None for no check) and
    nothing of it at the backend (backend: its records of this request)."""
    assert resp.status == status, (resp, resp.text, context)
    if challenge is not None:
        assert resp.header_values("WWW-Authenticate") == list(challenge), resp.headers
    assert backend == [], backend


def denial_lines(lines, extra=()):
    """The module's denial lines among error-log lines (and those with
    any of the markers extra)."""
    return [l for l in lines if DENIED.strip() in l or any(x in l for x in extra)]


def assert_forwarded(recs, name=None, prefix=None, secrets=(), authorization=()):
    """Exactly one request at the backend, as the module hands it on: its
    path under prefix, no verification-token header, Authorization as
    authorization lists (None: not checked), NAME in X-Redox-Source, none
    of secrets in any header.  The record."""
    assert len(recs) == 1, recs
    rec = recs[0]
    if prefix:
        assert rec.path.startswith(prefix), rec.path
    assert not rec.has(TOKEN_HEADER), rec.headers
    if authorization is not None:
        assert rec.values(AUTH_HEADER) == list(authorization), rec.headers
    if name is not None:
        assert rec.values("X-Redox-Source") == [name], rec.headers
    for k, v in rec.headers:
        for t in secrets:
            assert t not in v, k
    return rec


def bearer(token):
    return (AUTH_HEADER, "Bearer " + token)


def vtok(token):
    return (TOKEN_HEADER, token)


def both(token):
    return [bearer(token), vtok(token)]


# ---------------------------------------------------------------------------
# recording backend
# ---------------------------------------------------------------------------
class BackendRecord:
    def __init__(self, method, path, headers, body):
        self.method = method
        self.path = path
        self.headers = headers  # list of (name, value) as received
        self.body = body

    def values(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def has(self, name):
        return bool(self.values(name))

    def __repr__(self):
        return "<BackendRecord %s %s %r>" % (self.method, self.path, self.headers)


class Backend:
    """Threaded HTTP server that records every request and answers 200."""

    def __init__(self):
        self.records = []
        self.lock = threading.Lock()
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                rec = BackendRecord(self.command, self.path, list(self.headers.items()), body)
                with backend.lock:
                    backend.records.append(rec)
                out = ("backend-ok %s %s\n" % (self.command, self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    # a body after a HEAD answer would be read by mod_proxy
                    # as the answer to its next request on this connection
                    self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def find(self, needle):
        with self.lock:
            return [r for r in self.records if needle in r.path]


# ---------------------------------------------------------------------------
# generated httpd instance
# ---------------------------------------------------------------------------
RUNNING = []     # Httpd instances started and not yet stopped
INSTANCES = []   # every Httpd instance created in this session


def module_path():
    return MODULE


def require_module():
    assert MODULE.is_file(), (
        "module %s not built: run `make` in %s (or set RV_MODULE)" % (MODULE, REPO))


# The modules a lean server (Httpd(..., lean=True)) loads: enough for the
# global config and ProxyPass, so a restart is quick.
LEAN_MODULES = ("authz_core_module", "mime_module", "proxy_module", "proxy_http_module")


def server_conf(root, ports, modules, loglevel=None, log_format=LOG_FORMAT,
                admin="root@localhost"):
    """The lines every generated httpd.conf starts with (the config
    builder's head): the server root with its run/ and logs/, Listen on
    each loopback port, LoadModule for each (name, file) in modules (a
    file name without a directory is in MODDIR), User/Group www-data as
    root, the error log and an access log in log_format."""
    root = Path(root)
    lines = [
        'ServerRoot "%s"' % root,
        'DefaultRuntimeDir "%s/run"' % root,
        'PidFile "%s/run/httpd.pid"' % root,
        'Mutex file:%s/run default' % root,
        'ServerName localhost',
    ]
    if admin:
        lines.append("ServerAdmin " + admin)
    lines += ["Listen 127.0.0.1:%d" % p for p in ports]
    lines += ['LoadModule %s "%s"' % (name, MODDIR / so) for name, so in modules]
    if os.geteuid() == 0:
        lines += ["User www-data", "Group www-data"]
    lines += [
        'ErrorLog "%s/logs/error.log"' % root,
        "LogLevel %s" % (loglevel or LOG_LEVEL),
        'LogFormat "%s" rvfmt' % log_format,
        'CustomLog "%s/logs/access.log" rvfmt' % root,
        "TypesConfig /etc/mime.types",
    ]
    return lines


def global_conf(root, ports, loglevel=None, mpm="event", lean=False):
    root = Path(root)
    modules = [MPM_MODULE[mpm]] + [m for m in STOCK_MODULES
                                   if not lean or m[0] in LEAN_MODULES]
    lines = server_conf(root, ports, modules + [("redox_verify_module", MODULE)], loglevel)
    if not lean:
        lines.append('ScriptSock "%s/run/cgid.sock"' % root)
    lines += MPM_CONF[mpm]
    lines += ["Timeout 15", "ProxyTimeout 10"] + site_conf(root) + [""]
    return "\n".join(lines) + "\n"


def site_conf(root):
    """Keep-alive, no lookups, and the server root's htdocs/ the only
    place granted."""
    return [
        "KeepAlive On",
        "HostnameLookups Off",
        'DocumentRoot "%s/htdocs"' % root,
        "<Directory />",
        "    AllowOverride None",
        "    Require all denied",
        "</Directory>",
        '<Directory "%s/htdocs">' % root,
        "    Require all granted",
        "</Directory>",
    ]


# ---------------------------------------------------------------------------
# config builder: the blocks fixtures write again and again
# ---------------------------------------------------------------------------
def block(tag, arg, *lines):
    """<tag arg>, each of lines indented by four (a line may be a nested
    block of several lines; None and "" are left out), </tag>."""
    body = "".join("    %s\n" % l for item in lines if item for l in item.splitlines())
    return "<%s %s>\n%s</%s>\n" % (tag, arg, body, tag)


def location(path, *lines):
    return block("Location", path, *lines)


def vhost(port, name, *lines):
    """A name-based VirtualHost on the loopback port."""
    return block("VirtualHost", "127.0.0.1:%d" % port, "ServerName " + name, *lines)


def verified(path, tokens, *lines, proxy=None):
    """<Location path> that the module guards: RedoxVerify On, one
    RedoxVerificationToken line per (name, token) of tokens (a dict or
    pairs; a token may be followed by its options), lines, and ProxyPass
    to proxy (a URL, or (backend port, path) for the recording backend)."""
    pairs = tokens.items() if isinstance(tokens, dict) else tokens
    out = ["RedoxVerify On"] + ["RedoxVerificationToken %s %s" % nt for nt in pairs]
    out += list(lines)
    if proxy is not None:
        if not isinstance(proxy, str):
            proxy = "http://127.0.0.1:%d%s" % proxy
        out.append("ProxyPass " + proxy)
    return location(path, *out)


# The module's metrics endpoint as the manual shows it, for loopback scrapes.
METRICS_LOCATION = location("/metrics", "SetHandler redox-verify-metrics",
                            "Require ip 127.0.0.1")


def serving(name, conf, backend=None, **kw):
    """A fixture's server: an Httpd name (kw as for Httpd) with the
    recording backend, configured with conf (or conf(h), for one that
    names the server's ports), started; yielded, then stopped (with the
    error-log check).  In a fixture: `yield from rvhttpd.serving(...)`."""
    h = Httpd(name, **kw)
    h.backend = backend
    h.write_conf(conf(h) if callable(conf) else conf)
    h.start()
    yield h
    h.stop()


# apache2 -k start output when a Listen port is taken.
_BIND_FAILED = re.compile(r"Address already in use: AH00072: make_sock: could not bind to "
                          r"address 127\.0\.0\.1:(\d+)")
START_ATTEMPTS = 3


class Httpd:
    """One generated server root with its own config, ports and logs.

    Tests read the ports from .port/.ports after start(): a start that met
    a port taken by a process outside rvports retries on new ones."""

    def __init__(self, name, nports=1, env=None, allowed=(), mpm="event", lean=False,
                 root=None, launcher=()):
        """root: the server root (default GEN_DIR/name); launcher: a
        command the apache2 runs go through (taskset -c 0, say)."""
        require_module()
        self.name = name
        self.root = Path(root) if root else GEN_DIR / name
        self.launcher = list(launcher)
        if self.root.exists():
            shutil.rmtree(self.root)
        for d in ("conf", "logs", "run", "htdocs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.ports = rvports.ports(nports)
        self.port = self.ports[0]
        self.conf = self.root / "conf" / "httpd.conf"
        self.env = dict(env or {})
        self.allowed = list(allowed)
        self.mpm = mpm
        self.lean = lean
        self.checked_offset = 0
        self.start_output = ""
        self.backend = None
        self.started = False        # started at least once
        INSTANCES.append(self)

    # -- files -------------------------------------------------------------
    @property
    def error_log(self):
        return self.root / "logs" / "error.log"

    @property
    def access_log(self):
        return self.root / "logs" / "access.log"

    def path(self, rel):
        return self.root / rel

    def write(self, rel, text, mode=0o644):
        return write_file(self.root / rel, text, mode)

    def global_conf(self):
        """The configuration before write_conf's body (a subclass with
        another global part overrides this)."""
        return global_conf(self.root, self.ports, mpm=self.mpm, lean=self.lean)

    def write_conf(self, body):
        write_file(self.conf, self.global_conf() + body)

    # -- process control -------------------------------------------------------
    def serve(self):
        """For a fixture: `yield from h.serve()` starts the server, yields
        it, and stops it (with the error-log check) at the teardown."""
        self.start()
        yield self
        self.stop()

    def __enter__(self):
        """`with h:` runs the block with the server started, and stops it
        after (checking its error log unless the block failed)."""
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop(check=exc_type is None)

    def _env(self):
        return httpd_env(self.env)

    def apachectl(self, action, check=False):
        """apache2 -k action on this root's configuration (its output
        saved to logs/<action>.out); the CompletedProcess."""
        proc = subprocess.run(self.launcher + [APACHE, "-f", str(self.conf), "-k", action],
                              env=self._env(), capture_output=True, text=True, timeout=60)
        self._save_output(action, proc)
        assert not check or proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def restart(self, how="graceful", timeout=WAIT):
        """apache2 -k graceful|restart, then waits for the new generation."""
        before = self.generations()
        self.apachectl(how, check=True)
        wait_for(lambda: self.generations() > before, timeout,
                 "a new generation:\n" + self.error_log_tail())

    def children(self):
        return children_of(self.pid())

    def _save_output(self, tag, proc):
        out = "$ %s\nrc=%s\n--- stdout\n%s\n--- stderr\n%s\n" % (
            " ".join(proc.args), proc.returncode, proc.stdout, proc.stderr)
        with open(self.root / "logs" / ("%s.out" % tag), "a") as f:
            f.write(out)
        return out

    def pid(self):
        try:
            return int((self.root / "run" / "httpd.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def generations(self):
        """How many times the parent has said it is up: httpd logs
        "resuming normal operations" (at notice, which any LogLevel logs)
        after it has installed its signal handlers and started its
        children, at startup and after each restart."""
        return self.error_log_text().count("resuming normal operations")

    def start(self, timeout=WAIT):
        """apache2 -k start; returns once this generation is up: its ports
        answer and the parent logged "resuming normal operations".  The pid
        file and the listening sockets are there earlier, before the parent
        handles signals: a SIGUSR1 (graceful) or SIGTERM sent then would
        simply kill it."""
        up_before = self.generations()
        for attempt in range(START_ATTEMPTS):
            make_readable_tree(self.root)
            proc = self.apachectl("start")
            self.start_output = proc.stdout + proc.stderr
            if proc.returncode == 0:
                break
            if attempt + 1 == START_ATTEMPTS or not self._move_off_taken_ports():
                raise RuntimeError("apache2 -k start failed (rc=%d):\n%s\n--- error.log tail:\n%s"
                                   % (proc.returncode, self.start_output,
                                      self.error_log_tail()))
        RUNNING.append(self)
        self.started = True
        if wait_until(lambda: (self.pid() and self.generations() > up_before
                               and all(port_open(p) for p in self.ports)), timeout):
            return self
        self.stop(check=False)
        raise RuntimeError("httpd %s did not come up:\n%s" % (self.name, self.error_log_tail()))

    def _move_off_taken_ports(self):
        """After a start that failed because something outside rvports was
        bound to one of our ports (AH00072): new ports in place of those,
        in self.ports and wherever the configuration names them.  False if
        the start failed for another reason."""
        taken = {int(p) for p in _BIND_FAILED.findall(self.start_output)} & set(self.ports)
        if not taken:
            return False
        text = self.conf.read_text()
        for old in taken:
            new = rvports.port()
            text = re.sub(r"(?<=:)%d(?!\d)" % old, str(new), text)
            self.ports[self.ports.index(old)] = new
        self.port = self.ports[0]
        self.conf.write_text(text)
        return True

    def stop(self, check=True, timeout=WAIT):
        pid = self.pid()
        self.apachectl("stop")
        if pid:
            if not wait_until(lambda: not _alive(pid), timeout):
                os.kill(pid, signal.SIGKILL)
        if self in RUNNING:
            RUNNING.remove(self)
        if check:
            bad = self.new_unexpected_lines()
            assert not bad, "unexpected error-log lines in %s:\n%s" % (self.name, "\n".join(bad))

    # -- logs ----------------------------------------------------------------------
    def error_log_text(self):
        try:
            return self.error_log.read_text(errors="replace")
        except OSError:
            return ""

    def error_log_tail(self, n=40):
        return "\n".join(self.error_log_text().splitlines()[-n:])

    def new_unexpected_lines(self):
        try:
            with open(self.error_log, "rb") as f:
                f.seek(self.checked_offset)
                data = f.read()
        except OSError:
            return []
        # only look at complete lines; a partial last line is re-read later
        cut = data.rfind(b"\n") + 1
        self.checked_offset += cut
        return unexpected_log_lines(data[:cut].decode("utf-8", "replace"), self.allowed)

    def error_lines(self, needle, timeout=WAIT, want=1):
        """Error-log lines containing needle, polling until want of them
        are there (or timeout: then fewer)."""
        def lines():
            return [l for l in self.error_log_text().splitlines() if needle in l]
        wait_until(lambda: len(lines()) >= want, timeout)
        return lines()

    def access_lines(self, needle, timeout=WAIT, log=None):
        """Lines of the access log (or of the server root's file log)
        containing needle, polling until one shows up or timeout."""
        return wait_until(lambda: self._log_lines(log, needle), timeout)

    def _log_lines(self, log, needle):
        path = self.path(log) if log else self.access_log
        try:
            text = path.read_text(errors="replace")
        except OSError:
            text = ""
        return [l for l in text.splitlines() if needle in l]

    # -- absence checks ------------------------------------------------------------
    # "It did not happen" is read from the logs only after a marker request,
    # sent once the request under test was answered, has its own lines
    # there: never after a fixed wait, which a slow machine can outlast.
    # The clients here read each answer until the server closes the
    # connection, and httpd closes it only after the request is logged (the
    # access-log line is written when its EOR bucket is, before the
    # lingering close), so the request under test is complete; the marker's
    # lines prove that the log in question is written and read as the check
    # expects, so that an absence cannot pass because nothing was looked at.
    def marker(self, host="localhost", port=None, path="/rv-marker-{rid}", log=None):
        """Sends a marker request and waits until its rid is in the error log
        and in the access log (or the server root's file log `log`).  The
        default target is a missing file of the default vhost's
        DocumentRoot: a 404 and httpd's AH00128 line (core, info; LogLevel
        info is LOG_LEVEL's), or a denial where that vhost is protected."""
        r = self.request(path, host=host, port=port)
        assert self.error_lines(r.rid), "no error-log line of marker %s:\n%s" % (
            r.path, self.error_log_tail())
        assert self.access_lines(r.rid, log=log), "no %s line of marker %s" % (
            log or "access-log", r.path)
        return r

    def settled_error_lines(self, needle, **marker):
        """Every error-log line containing needle, read after marker()."""
        self.marker(**marker)
        return [l for l in self.error_log_text().splitlines() if needle in l]

    def settled_access_lines(self, needle, log=None, **marker):
        """Every access-log (or `log`) line containing needle, read after
        marker()."""
        self.marker(log=log, **marker)
        return self._log_lines(log, needle)

    def access_line(self, rid):
        """The one access-log line of rid."""
        lines = self.access_lines(rid)
        assert len(lines) == 1, lines
        return lines[0]

    def access_fields(self, rid):
        """(REDOX_SOURCE, REDOX_VERIFY) of the one access-log line of rid."""
        line = self.access_line(rid)
        m = re.search(r" rvsrc=(\S*) rvver=(\S*)$", line)
        assert m, line
        return m.group(1), m.group(2)

    # -- requests ------------------------------------------------------------------
    def request(self, path, host="localhost", headers=(), method="GET", body=None, port=None,
                rid=None):
        """Request path; '{rid}' in path is replaced by a fresh request id,
        otherwise the id is appended as query argument."""
        rid = rid or new_rid()
        if "{rid}" in path:
            path = path.replace("{rid}", rid)
        else:
            path = path + ("&" if "?" in path else "?") + "rid=" + rid
        status, hdrs, data = http_request(port or self.port, path, host=host,
                                          headers=list(headers), method=method, body=body)
        return Response(status, hdrs, data, rid, path, self.backend)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie counts as gone
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return True


def stop_all():
    for h in list(RUNNING):
        try:
            h.stop(check=False)
        except Exception:
            pass


def cleanup_stale(gen_dir=GEN_DIR):
    """Stop httpds left running by an interrupted earlier run, then wipe gen/."""
    if not gen_dir.exists():
        return
    for pidfile in gen_dir.glob("*/run/httpd.pid"):
        stop_stale(pidfile.parent.parent)
    shutil.rmtree(gen_dir, ignore_errors=True)


def stop_stale(root):
    """Stops an httpd that an interrupted earlier run left on server root
    root (its run/httpd.pid, its command line naming root)."""
    try:
        pid = int((Path(root) / "run" / "httpd.pid").read_text().strip())
        cmd = Path("/proc/%d/cmdline" % pid).read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return
    if str(root) in cmd and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: not _alive(pid), 10):
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------
# `apache2 -t` runs for configuration checks
# ---------------------------------------------------------------------------
class ConfigResult:
    def __init__(self, rc, output, conf):
        self.rc = rc
        self.output = output
        self.conf = conf

    def __repr__(self):
        return "<ConfigResult rc=%s conf=%s\n%s>" % (self.rc, self.conf, self.output)


def config_test(name, body, env=None, files=None):
    """Write a config with body inside one VirtualHost-less server and run
    `apache2 -t` on it. files: {relpath: (text, mode)} written into the
    root first; '@ROOT@' in body is replaced with the root path."""
    require_module()
    root = GEN_DIR / "configtest" / name
    if root.exists():
        shutil.rmtree(root)
    for d in ("conf", "logs", "run", "htdocs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for rel, (text, mode) in (files or {}).items():
        write_file(root / rel, text, mode)
    conf = root / "conf" / "httpd.conf"
    port = rvports.port()           # apache2 -t names it but never binds it
    rvports.release(port)
    write_file(conf, global_conf(root, [port]) + body.replace("@ROOT@", str(root)))
    make_readable_tree(root)
    proc = subprocess.run([APACHE, "-t", "-f", str(conf)], env=httpd_env(env),
                          capture_output=True,
                          text=True, timeout=60)
    out = proc.stdout + proc.stderr
    write_file(root / "logs" / "configtest.out", "rc=%d\n%s" % (proc.returncode, out))
    return ConfigResult(proc.returncode, out, conf)
