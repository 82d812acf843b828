"""The Debian package, end to end, as an admin would use it: lintian, the
package's contents, apt-get install, a2enmod, a VirtualHost made from the
shipped example, apache2ctl -t, the system's Apache started with Debian's
envvars on a loopback port, accepted and denied requests with curl, then
apache2ctl stop, a2dismod and purge, and the machine as it was before.
The installed redox-verify-probe checks that site, and Debian's
fail2ban-regex runs the shipped example filter on the site's error log.

The `site` fixture does all that changes the machine, and its teardown
undoes it and then checks that the machine is as it was: pytest runs that
after the last test that uses the site, whichever were selected and in
whatever order, and a difference fails the run.  Each test of the site
sends the requests it checks, so none depends on another having run.

The Apache started here is the system's binary and its /etc/apache2
(mods-enabled/*.load and *.conf, where a2enmod put the module), through
apache2ctl with its envvars; only ports.conf and sites-enabled are left
out, by a private main file (APACHE_ARGUMENTS="-f ..."), so that it listens
on a free loopback port instead of *:80."""

import glob
import hashlib
import json
import os
import re
import shutil
import signal
import time

import pytest

from conftest import DOC, PACKAGE, free_port, run
import rvhttpd  # the integration harness (conftest puts it on the path)

MODULE_PATH = "/usr/lib/apache2/modules/mod_redox_verify.so"
ENABLED_LINK = "/etc/apache2/mods-enabled/redox_verify.load"
DOC_DIR = "/usr/share/doc/" + PACKAGE
EXAMPLE = DOC_DIR + "/examples/redox-vhost.conf.example"
RULES = DOC_DIR + "/examples/redox_verify.rules.yml"
PROBE_PATH = "/usr/bin/redox-verify-probe"
FAIL2BAN_EXAMPLES = [DOC_DIR + "/examples/fail2ban/filter.d/redox-verify.conf",
                     DOC_DIR + "/examples/fail2ban/jail.d/redox-verify.conf"]
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=300"]
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
CHALLENGE = rvhttpd.HANDSHAKE_UUID
# apache2ctl makes these (from Debian's envvars) when they are missing.
RUNTIME_DIRS = ["/var/run/apache2/socks", "/var/run/apache2",
                "/var/lock/apache2"]

# What the machine looked like before the package went on (set by the
# fixture, compared at its teardown).
BEFORE = {}


# ------------------------------------------------------------------ #
# The state of the machine

def package_status():
    proc = run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", PACKAGE],
               check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "absent"


def is_installed():
    """Installed, half-installed or removed with its conffiles left."""
    status = package_status()
    return status != "absent" and status[:2] not in ("un", "pn")


def tree(root):
    """path -> symlink target or content digest, for every file below."""
    found = {}
    for d, dirs, names in os.walk(root):
        for n in dirs + names:
            p = os.path.join(d, n)
            if os.path.islink(p):
                found[p] = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    found[p] = hashlib.sha256(f.read()).hexdigest()
            else:
                found[p] = "dir"
    return found


def apache_state():
    """Apache's own record of what an admin or a package enabled or
    disabled (/var/lib/apache2/{module,conf,site}/<how>/<name>, written
    by a2enmod and a2dismod): its entries, without the bookkeeping
    directories themselves.  a2enmod and a2dismod make a <how> directory
    the first time they need it and never remove it, so the test's own
    a2dismod may leave an empty disabled_by_admin behind on a machine that
    never had one: that is Apache's bookkeeping, not the package's.  What
    must hold is that no entry of the module is left and every other entry
    is as it was."""
    return {p: v for p, v in tree("/var/lib/apache2").items() if v != "dir"}


def our_processes(marker):
    """Pids of processes whose command line mentions marker."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            pids.append(int(pid))
    return pids


def system_apache_running():
    try:
        with open("/var/run/apache2/apache2.pid") as f:
            os.kill(int(f.read().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


def snapshot():
    return {
        "package": package_status() if is_installed() else "not installed",
        "etc": tree("/etc/apache2"),
        "modules": sorted(os.listdir("/usr/lib/apache2/modules")),
        "state": apache_state(),
        "runtime dirs": {d: os.path.isdir(d) for d in RUNTIME_DIRS},
        "doc": os.path.exists(DOC_DIR),
        "man": glob.glob("/usr/share/man/man5/redox_verify.5*")
        + glob.glob("/usr/share/man/man1/redox-verify-probe.1*"),
        "probe": os.path.exists(PROBE_PATH),
        "system apache running": system_apache_running(),
    }


# ------------------------------------------------------------------ #
# The installed package and a running Apache

class Site:
    """What the fixture set up, for the tests to use."""

    def __init__(self, d):
        self.dir = d
        self.port = free_port()
        self.conf = os.path.join(d, "apache2-test.conf")
        self.env = dict(os.environ, APACHE_ARGUMENTS="-f " + self.conf,
                        # apache2ctl would hand "start" to systemctl on a
                        # systemd machine; this instance is not a service.
                        APACHE_STARTED_BY_SYSTEMD="1")
        self.tokens = {}
        self.backend = None
        self.install_log = ""
        self.a2enmod_log = ""

    def curl(self, path, *args):
        """Runs curl against the site; returns (status, headers, body)."""
        host = "redox.example.org"
        proc = run(["curl", "-sS", "-i", "--max-time", "10",
                    "--cacert", os.path.join(self.dir, "cert.pem"),
                    "--resolve", "%s:%d:127.0.0.1" % (host, self.port)]
                   + list(args) + ["https://%s:%d%s" % (host, self.port,
                                                        path)])
        head, _, body = proc.stdout.replace("\r\n", "\n").partition("\n\n")
        lines = head.split("\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return status, headers, body

    def log(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def wait_log(self, name, pattern, timeout=60):
        """Waits until a line of log name matches pattern (re, multiline);
        the timeout only bounds a failing test."""
        assert rvhttpd.wait_until(lambda: re.search(pattern, self.log(name), re.M),
                                  timeout, 0.1), (pattern, self.log(name))


def write_site(site):
    """The shipped example VirtualHost with a test certificate, test
    tokens, logs in the test folder and the recording backend: each of
    those lines must still be in the example, or this fails."""
    with open(EXAMPLE) as f:
        text = f.read()
    d = site.dir
    changes = [
        ("<VirtualHost *:443>", "<VirtualHost 127.0.0.1:%d>" % site.port),
        ("/etc/ssl/certs/redox.example.org.pem", d + "/cert.pem"),
        ("/etc/ssl/private/redox.example.org.key", d + "/key.pem"),
        ("${APACHE_LOG_DIR}", d),
        ("/etc/apache2/redox/", d + "/redox/"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:%d/"
         % site.backend.port),
    ]
    for old, new in changes:
        assert old in text, "the example no longer has %r" % old
        text = text.replace(old, new)

    # Tokens as the example's comment says to make them.
    os.makedirs(d + "/redox", mode=0o700)
    for name in ("prod", "staging"):
        path = "%s/redox/%s.token" % (d, name)
        run("umask 077; openssl rand -hex 32 > " + path)
        with open(path) as f:
            site.tokens[name] = f.read().strip()
    # staging by its digest only, made with the manual's command.
    with open(DOC) as f:
        cmd = [line.strip() for line in f
               if "< /etc/apache2/redox/prod.token | sha256sum" in line]
    assert len(cmd) == 1, cmd
    digest = run(cmd[0].replace("/etc/apache2/redox/prod.token",
                                d + "/redox/staging.token")).stdout.strip()
    text, n = re.subn(r"(RedoxVerificationToken staging +)file:\S+",
                      r"\g<1>sha256:" + digest, text)
    assert n == 1, "the example no longer has the staging token line"
    # The manual's metrics <Location>, in the same VirtualHost.
    with open(DOC) as f:
        m = re.search(r"\n((    .*\n)*    +SetHandler redox-verify-metrics\n"
                      r"(    .*\n)*)", f.read())
    assert m, "the manual has no SetHandler redox-verify-metrics block"
    block = "\n".join(line[4:] for line in m.group(1).splitlines())
    text, n = re.subn(r"</VirtualHost>", block + "\n</VirtualHost>", text)
    assert n == 1
    with open(os.path.join(d, "redox-vhost.conf"), "w") as f:
        f.write(text)
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
         "-subj", "/CN=redox.example.org",
         "-addext", "subjectAltName=DNS:redox.example.org",
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-keyout", d + "/key.pem", "-out", d + "/cert.pem"])

    # The example needs ssl and proxy_http; load what the machine has not
    # enabled here, rather than change its mods-enabled.
    extra = []
    for mod in ("socache_shmcb", "ssl", "proxy", "proxy_http"):
        if not os.path.exists("/etc/apache2/mods-enabled/%s.load" % mod):
            extra.append("LoadModule %s_module /usr/lib/apache2/modules/"
                         "mod_%s.so" % (mod, mod))
    if not os.path.exists("/etc/apache2/mods-enabled/ssl.load"):
        extra.append("SSLSessionCache shmcb:%s/ssl_scache(512000)" % d)
    with open(site.conf, "w") as f:
        f.write("""# The system's Apache configuration without ports.conf and
# sites-enabled, and with the example site on a loopback port.
ServerRoot /etc/apache2
ServerName localhost
DefaultRuntimeDir {d}
PidFile {d}/apache2.pid
Mutex file:{d} default
User ${{APACHE_RUN_USER}}
Group ${{APACHE_RUN_GROUP}}
Timeout 30
ErrorLog {d}/error.log
LogLevel warn
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
{extra}
Listen 127.0.0.1:{port} https
Include {d}/redox-vhost.conf
""".format(d=d, port=site.port, extra="\n".join(extra)))


def remove_runtime_dirs_made_here():
    """rmdir what apache2ctl made for the test; a directory something else
    has put files in stays, and the last test reports it."""
    for d in RUNTIME_DIRS:                   # innermost first
        if not BEFORE["runtime dirs"][d] and os.path.isdir(d):
            try:
                os.rmdir(d)
            except OSError as e:
                print("cannot remove %s: %s" % (d, e))


def stop_apache(site):
    """apache2ctl stop, then make sure: no process of this instance may
    outlive the test."""
    if os.path.exists(os.path.join(site.dir, "apache2.pid")):
        run(["apache2ctl", "stop"], env=site.env, check=False)
    wait_gone(site)
    for pid in our_processes(site.conf):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def wait_gone(site, timeout=15):
    """True once no process of the site's Apache is left."""
    return rvhttpd.wait_until(lambda: not our_processes(site.conf), timeout, 0.2)


@pytest.fixture(scope="class")
def site(as_root, deb, tmp_path_factory):
    # Only this package's own leftovers are cleared; a module someone put
    # there by hand (make install) is not ours to overwrite and remove.
    if is_installed():
        run(APT + ["purge", PACKAGE], env=APT_ENV)
    assert not os.path.exists(MODULE_PATH), \
        MODULE_PATH + " exists but no package owns it (make install?): " \
        "remove it before running the install tests"
    assert not os.path.lexists(ENABLED_LINK), ENABLED_LINK + " exists"
    BEFORE.clear()
    BEFORE.update(snapshot())

    d = str(tmp_path_factory.mktemp("deb-site"))
    os.chmod(d, 0o711)           # children (www-data) reach the mutex
    s = Site(d)
    # the integration suite's recording backend
    s.backend = rvhttpd.Backend().start()
    stopped = []
    try:
        s.install_log = run(APT + ["install", "--no-install-recommends",
                                   os.path.abspath(deb)],
                            env=APT_ENV).stdout
        s.a2enmod_log = run(["a2enmod", "redox_verify"]).stdout
        write_site(s)
        run(["apache2ctl", "start"], env=s.env)
        assert rvhttpd.wait_port(s.port, 15), s.log("error.log")
        yield s
        # apache2ctl stop, as an admin would, must stop it all by itself
        run(["apache2ctl", "stop"], env=s.env)
        stopped.append(bool(wait_gone(s)))
    finally:
        # Each step runs whatever happened before it.
        for step in (lambda: stop_apache(s),
                     lambda: run(["a2dismod", "-q", "-f", "redox_verify"],
                                 check=False),
                     lambda: run(APT + ["purge", PACKAGE], env=APT_ENV,
                                 check=False),
                     lambda: s.backend.stop(),
                     remove_runtime_dirs_made_here,
                     # test keys and tokens; failures quote the logs
                     lambda: shutil.rmtree(d)):
            try:
                step()
            except Exception as e:          # noqa: BLE001 - keep cleaning
                print("cleanup step failed:", e)
    assert stopped == [True], "apache2ctl stop left processes of the site"
    assert_machine_left_as_it_was()


# ------------------------------------------------------------------ #
# The package as built

def test_rv_deb_lintian_reports_no_errors(as_root, deb_dir):
    changes = glob.glob(os.path.join(deb_dir, "*.changes"))
    assert len(changes) == 1, changes
    proc = run(["lintian", "--pedantic", "--info", changes[0]],
               check=False)
    tags = [line for line in proc.stdout.splitlines()
            if re.match(r"[EWIPX]: ", line)]
    print("\n".join(tags) or "lintian: no tags")
    errors = [t for t in tags if t.startswith(("E: ", "W: "))]
    assert not errors, "\n".join(errors)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rv_deb_contents(deb):
    listing = run(["dpkg-deb", "-c", deb]).stdout
    paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
    wanted = [MODULE_PATH,
              "/etc/apache2/mods-available/redox_verify.load",
              "/etc/apache2/mods-available/redox_verify.conf",
              DOC_DIR + "/README.md.gz",
              DOC_DIR + "/mod_redox_verify.md.gz",
              DOC_DIR + "/copyright",
              DOC_DIR + "/changelog.gz",
              EXAMPLE,
              RULES,
              "/usr/share/man/man5/redox_verify.5.gz",
              PROBE_PATH,
              "/usr/share/man/man1/redox-verify-probe.1.gz"]
    for path in wanted + FAIL2BAN_EXAMPLES:
        assert path in paths, "%s is not in the package:\n%s" % (path,
                                                                 listing)
    files = [p for p in paths if not p.endswith("/")]
    assert not [p for p in files if p.startswith("/usr/local")], files
    modes = {line.split()[-1].lstrip("."): line.split()[0]
             for line in listing.splitlines()}
    assert modes[PROBE_PATH] == "-rwxr-xr-x"


def test_rv_deb_control(deb):
    depends = run(["dpkg-deb", "-f", deb, "Depends"]).stdout
    deps = {re.sub(r"\s*\(.*\)", "", d.strip())
            for d in depends.split(",")}
    # The Apache module ABI, and the libraries the module links.
    for needed in ("apache2-api-20120211", "apache2-bin", "libc6",
                   "libssl3", "libjansson4"):
        assert needed in deps, "Depends lacks %s: %s" % (needed, depends)
    # the probe's interpreter
    assert "python3" in deps, depends
    # a2enmod and /etc/apache2 come with apache2, not apache2-bin
    assert run(["dpkg-deb", "-f", deb, "Recommends"]).stdout.strip() == \
        "apache2"
    assert run(["dpkg-deb", "-f", deb, "Suggests"]).stdout.strip() == \
        "fail2ban"
    assert run(["dpkg-deb", "-f", deb, "Section"]).stdout.strip() == "httpd"
    conffiles = run(["dpkg-deb", "-I", deb, "conffiles"]).stdout.split()
    assert sorted(conffiles) == ["/etc/apache2/mods-available/redox_verify.conf",
                           "/etc/apache2/mods-available/redox_verify.load"]


# ------------------------------------------------------------------ #
# Installed, enabled, serving

@pytest.mark.usefixtures("site")
class TestInstalled:

    def test_rv_deb_installed_files(self, site):
        assert package_status() == "ii", site.install_log
        assert os.path.isfile(MODULE_PATH)
        with open("/etc/apache2/mods-available/redox_verify.load") as f:
            assert f.read().split() == ["LoadModule", "redox_verify_module",
                                        MODULE_PATH]
        assert os.path.isfile(EXAMPLE)
        # the shipped alert rules, as Prometheus's own tool reads them
        out = run(["promtool", "check", "rules", RULES]).stdout
        assert "SUCCESS: 4 rules found" in out, out
        assert run(["man", "-w", "redox_verify"]).stdout.strip() == \
            "/usr/share/man/man5/redox_verify.5.gz"
        page = run(["man", "5", "redox_verify"],
                   env=dict(os.environ, MANWIDTH="80")).stdout
        assert "RedoxVerificationToken" in page
        assert os.access(PROBE_PATH, os.X_OK)
        assert run(["man", "-w", "redox-verify-probe"]).stdout.strip() == \
            "/usr/share/man/man1/redox-verify-probe.1.gz"
        page = run(["man", "1", "redox-verify-probe"],
                   env=dict(os.environ, MANWIDTH="80")).stdout
        assert "redox-verify-probe - check an HTTPS endpoint" in page
        for path in FAIL2BAN_EXAMPLES:
            assert os.path.isfile(path), path

    def test_rv_deb_module_enabled(self, site):
        assert os.path.islink(ENABLED_LINK)
        assert os.readlink(ENABLED_LINK) == \
            "../mods-available/redox_verify.load"
        assert run(["a2query", "-m", "redox_verify"]).returncode == 0

    def test_rv_deb_configtest(self, site):
        # The system's own configuration with the module enabled ...
        proc = run(["apache2ctl", "-t"], check=False)
        assert proc.returncode == 0, proc.stderr
        assert "Syntax OK" in proc.stderr
        # ... and the one with the example site on a loopback port.
        proc = run(["apache2ctl", "-t"], env=site.env, check=False)
        assert proc.returncode == 0, proc.stderr
        assert "Syntax OK" in proc.stderr

    def test_rv_deb_started(self, site):
        """apache2ctl start (in the fixture) brought it up."""
        assert rvhttpd.wait_port(site.port, 15), site.log("error.log")
        assert our_processes(site.conf), "no apache2 process for the site"
        # It runs the packaged module, loaded through mods-enabled.
        maps = ""
        for pid in our_processes(site.conf):
            try:
                with open("/proc/%d/maps" % pid) as f:
                    maps += f.read()
            except OSError:
                pass
        assert MODULE_PATH in maps

    def test_rv_deb_accepted(self, site):
        tok = site.tokens["prod"]
        before = len(site.backend.records)
        status, _, body = site.curl(
            "/redox/webhook", "-X", "POST",
            "-H", "Authorization: Bearer " + tok,
            "-H", "verification-token: " + tok,
            "-H", "Content-Type: application/json",
            "-d", json.dumps({"Meta": {"DataModel": "PatientAdmin"}}))
        assert status == 200 and body == "backend-ok POST /webhook\n"
        assert len(site.backend.records) == before + 1
        got = site.backend.records[-1]
        assert got.method == "POST" and got.path == "/webhook"
        headers = {k.lower(): v for k, v in got.headers}
        assert "authorization" not in headers
        assert "verification-token" not in headers
        assert headers.get("x-redox-source") == "prod"
        assert b"PatientAdmin" in got.body

    def test_rv_deb_accepted_second_token(self, site):
        tok = site.tokens["staging"]
        status, _, _ = site.curl("/redox/", "-H", "Authorization: Bearer "
                                 + tok, "-H", "verification-token: " + tok)
        assert status == 200
        headers = {k.lower(): v for k, v in site.backend.records[-1].headers}
        assert headers.get("x-redox-source") == "staging"

    def test_rv_deb_denied_wrong_token(self, site):
        before = len(site.backend.records)
        wrong = "0" * 64
        status, headers, _ = site.curl(
            "/redox/webhook", "-X", "POST",
            "-H", "Authorization: Bearer " + wrong,
            "-H", "verification-token: " + wrong, "-d", "{}")
        assert status == 401
        assert headers.get("www-authenticate") == \
            rvhttpd.CH_INVALID_TOKEN
        assert len(site.backend.records) == before, "the backend saw a denied one"

    def test_rv_deb_denied_without_token(self, site):
        before = len(site.backend.records)
        status, headers, _ = site.curl("/redox/webhook")
        assert status == 401
        assert headers.get("www-authenticate") == rvhttpd.CH_MISSING
        assert len(site.backend.records) == before

    def test_rv_deb_exempt_health_and_source_header_stripped(self, site):
        status, _, _ = site.curl("/redox/health",
                                 "-H", "X-Redox-Source: prod")
        assert status == 200
        got = site.backend.records[-1]
        assert got.path == "/health"
        assert "x-redox-source" not in {k.lower() for k, _ in got.headers}

    def test_rv_deb_handshake(self, site):
        before = len(site.backend.records)
        status, headers, body = site.curl(
            "/redox/", "-X", "POST",
            "-H", "Content-Type: application/json",
            "-d", json.dumps({"verification-token": site.tokens["prod"],
                              "challenge": CHALLENGE}))
        assert status == 200 and body == CHALLENGE
        assert headers.get("content-type", "").startswith("text/plain")
        assert len(site.backend.records) == before

    def test_rv_deb_metrics(self, site):
        def scrape():
            status, headers, body = site.curl("/redox-metrics")
            assert status == 200, body
            assert headers.get("content-type", "").startswith(
                "text/plain; version=0.0.4")
            for tok in site.tokens.values():
                assert tok not in body
            return body

        def value(body, series, **labels):
            labels["vhost"] = "redox.example.org:%d" % site.port
            values = dict(re.findall(r"^(redox_verify_\w+\{[^}]*\}) (\d+)$",
                                     body, re.M))
            for key, v in values.items():
                if key.startswith(series + "{") and all(
                        '%s="%s"' % kv in key for kv in labels.items()):
                    return int(v)
            raise AssertionError("no %s %s in:\n%s" % (series, labels, body))

        counted = [("redox_verify_requests_accepted_total", {"name": "prod"}),
                   ("redox_verify_requests_accepted_total",
                    {"name": "staging"}),
                   ("redox_verify_requests_denied_total",
                    {"reason": "wrong-token"}),
                   ("redox_verify_requests_denied_total",
                    {"reason": "missing"}),
                   ("redox_verify_handshakes_answered_total",
                    {"name": "prod"})]
        body = scrape()
        before = [value(body, series, **labels) for series, labels in counted]
        send_one_of_each(site)
        body = scrape()
        after = [value(body, series, **labels) for series, labels in counted]
        # one each; /redox/health (Off) is not counted
        assert [a - b for a, b in zip(after, before)] == [1] * len(counted), \
            list(zip(counted, before, after))

    def test_rv_deb_logs(self, site):
        tag = send_one_of_each(site)
        # httpd writes a request's access-log line after the answer, so
        # each is waited for (the denials are logged before the answer)
        for line in (r'"POST /redox/%s-prod HTTP/1.1" 200 .* prod ok$',
                     r'"GET /redox/%s-staging HTTP/1.1" 200 .* staging ok$',
                     r'"POST /redox/%s-wrong HTTP/1.1" 401 .* - wrong-token$',
                     r'"GET /redox/%s-missing HTTP/1.1" 401 .* - missing$',
                     r'"POST /redox/%s-hs HTTP/1.1" 200 .* prod handshake$'):
            site.wait_log("redox_access.log", line % tag)
        errors = site.log("redox_error.log")
        assert 'redox_verify: denied wrong-token: uri "/redox/%s-wrong"' \
            % tag in errors, errors
        assert 'redox_verify: denied missing: uri "/redox/%s-missing"' \
            % tag in errors, errors
        # Every error or warning is one of the expected denials.
        for line in (errors + site.log("error.log")).splitlines():
            if re.search(r"\[[a-z_0-9]+:(error|warn|crit|alert|emerg)\]",
                         line):
                assert "redox_verify: denied" in line, line
        for tok in site.tokens.values():
            for name in ("redox_access.log", "redox_error.log",
                         "error.log"):
                assert tok not in site.log(name), "a token in " + name

    def test_rv_deb_probe(self, site):
        """The installed command passes the site, its test message
        included, which reaches the application once."""
        before = len(site.backend.records)
        proc = run([PROBE_PATH, "https://redox.example.org:%d/redox/probe"
                    % site.port, "--token-file", site.dir
                    + "/redox/prod.token", "--ca", site.dir + "/cert.pem",
                    "--connect-to", "127.0.0.1", "--delivery"], check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lines = [l for l in proc.stdout.splitlines()
                 if re.match(r"(PASS|FAIL|INFO|SKIP)  ", l)]
        assert len(lines) == 10 and all(l.startswith("PASS") for l in lines), \
            proc.stdout
        for tok in site.tokens.values():
            assert tok not in proc.stdout + proc.stderr
        seen = site.backend.records[before:]
        assert [r.path for r in seen] == ["/probe"], seen
        assert b'"Test": true' in seen[0].body

    def test_rv_deb_fail2ban_example_filter(self, site, tmp_path):
        """The example filter, copied into (a copy of) the system's
        fail2ban configuration as the manual says, finds this test's
        request without token headers, with its address, and not its
        request with a wrong token."""
        tag = "f2b%d" % time.monotonic_ns()
        assert site.curl("/redox/%s-missing" % tag)[0] == 401
        assert site.curl("/redox/%s-wrong" % tag,
                         "-H", "Authorization: Bearer " + "0" * 64,
                         "-H", "verification-token: " + "0" * 64)[0] == 401
        site.wait_log("redox_error.log", tag + "-wrong")
        conf = tmp_path / "fail2ban"
        shutil.copytree("/etc/fail2ban", conf,
                        ignore=shutil.ignore_patterns("*.local", "jail.d"))
        shutil.copy(FAIL2BAN_EXAMPLES[0], conf / "filter.d")
        proc = run(["fail2ban-regex", "-c", str(conf), "-o", "<ip> <msg>",
                    os.path.join(site.dir, "redox_error.log"),
                    "redox-verify"])
        matched = [l for l in proc.stdout.splitlines() if tag in l]
        assert len(matched) == 1, proc.stdout
        assert matched[0].startswith("127.0.0.1 ") and \
            "redox_verify: denied missing:" in matched[0], matched
        assert tag + "-missing" in matched[0]

def send_one_of_each(site):
    """An accepted request with each token, a wrong token, none, and a
    handshake, each on a path of its own (/redox/<tag>-<what>); returns
    the tag."""
    tag = "t%d" % time.monotonic_ns()
    prod, staging = site.tokens["prod"], site.tokens["staging"]
    answers = [
        site.curl("/redox/%s-prod" % tag, "-X", "POST",
                  "-H", "Authorization: Bearer " + prod,
                  "-H", "verification-token: " + prod, "-d", "{}"),
        site.curl("/redox/%s-staging" % tag,
                  "-H", "Authorization: Bearer " + staging,
                  "-H", "verification-token: " + staging),
        site.curl("/redox/%s-wrong" % tag, "-X", "POST",
                  "-H", "Authorization: Bearer " + "0" * 64,
                  "-H", "verification-token: " + "0" * 64, "-d", "{}"),
        site.curl("/redox/%s-missing" % tag),
        site.curl("/redox/%s-hs" % tag, "-X", "POST",
                  "-H", "Content-Type: application/json",
                  "-d", json.dumps({"verification-token": prod,
                                    "challenge": CHALLENGE})),
        site.curl("/redox/health", "-H", "X-Redox-Source: prod"),
    ]
    assert [a[0] for a in answers] == [200, 200, 401, 401, 200, 200], answers
    return tag


def assert_machine_left_as_it_was():
    """After the site's teardown: stopped, disabled, purged, all gone."""
    assert BEFORE, "the site fixture did not take the snapshot"
    assert not is_installed(), package_status()
    assert not os.path.exists(MODULE_PATH)
    assert not os.path.exists(PROBE_PATH)
    assert not os.path.lexists(ENABLED_LINK)
    assert not os.path.exists("/etc/apache2/mods-available/"
                              "redox_verify.load")
    assert not our_processes("apache2-test.conf")
    assert not [p for p in tree("/var/lib/apache2")
                if os.path.basename(p) == "redox_verify"]
    after = snapshot()
    for key in BEFORE:
        assert after[key] == BEFORE[key], key
