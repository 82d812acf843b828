"""The reference manual against the module: every directive the built
module registers (as Apache itself lists them with -L) is documented in
docs/mod_redox_verify.md with the facts httpd's module pages give, no
directive is documented that the module lacks, every outcome the module
can log is in the troubleshooting table, and the man page generated from
the manual renders without a warning.  Around it: the README's commands,
links and VirtualHost, the section names the documents refer to, the make
targets and the package file they name, and bench/README.md against
bench/run.py."""

import hashlib
import glob
import os
import re
import subprocess

import pytest

from conftest import (APACHE2, DOC, PACKAGE, TOP, deb_arch, deb_version,
                      run)

README = os.path.join(TOP, "README.md")
BENCH_README = os.path.join(TOP, "bench", "README.md")

# What "apache2 -L" prints after "Allowed in *.conf", and what httpd's
# module pages call that context.
CONTEXTS = {
    "anywhere": "server config, virtual host, directory",
    "only outside <Directory>, <Files>, <Location>, or <If>":
        "server config, virtual host",
    "only inside <Directory>, <Files>, <Location>, or <If>": "directory",
}
BOX_FIELDS = ["Description", "Syntax", "Default", "Context", "Override",
              "Module"]
SUCCESS_OUTCOMES = {"ok", "handshake"}


@pytest.fixture(scope="module")
def registered(built_module, tmp_path_factory):
    """{directive: {"help": ..., "allowed": ...}} from apache2 -L with the
    built module loaded."""
    d = tmp_path_factory.mktemp("dash-L")
    conf = d / "httpd.conf"
    conf.write_text(
        "ServerRoot /etc/apache2\n"
        "ServerName localhost\n"
        "PidFile %s/httpd.pid\n"
        "ErrorLog %s/error.log\n"
        "LoadModule mpm_event_module /usr/lib/apache2/modules/"
        "mod_mpm_event.so\n"
        "LoadModule redox_verify_module %s\n" % (d, d, built_module))
    out = run([APACHE2, "-f", str(conf), "-L"]).stdout
    found = {}
    current = None
    for line in out.splitlines():
        m = re.match(r"^(\S+) \((\S+)\)$", line)
        if m:
            current = None
            if m.group(2) == "mod_redox_verify.c":
                current = found.setdefault(m.group(1),
                                           {"help": [], "allowed": []})
        elif current is not None:
            text = line.strip()
            if text.startswith("Allowed in *.conf") or current["allowed"]:
                current["allowed"].append(text)
            else:
                current["help"].append(text)
    assert found, "apache2 -L listed no directive of mod_redox_verify.c:\n" \
        + out
    return found


@pytest.fixture(scope="module")
def doc_text():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def directive_boxes(text):
    """{directive: {field: value}} from the "### X Directive" sections,
    whose facts are the list that opens each ("- Field: value")."""
    boxes = {}
    for m in re.finditer(r"^### (\S+) Directive\n\n((?:- .*\n)+)", text,
                         re.M):
        fields = {}
        for row in m.group(2).splitlines():
            field, sep, value = row[2:].partition(": ")
            assert sep, "bad line in %s: %s" % (m.group(1), row)
            fields[field] = value.strip()
        boxes[m.group(1)] = fields
    return boxes


def expected_context(allowed):
    text = " ".join(allowed)
    m = re.match(r"Allowed in \*\.conf (.*?)( \[no per-dir config\])?"
                 r"( and in \.htaccess when AllowOverride (.*))?$", text)
    assert m and m.group(1) in CONTEXTS, \
        "unknown context in apache2 -L: " + text
    context = CONTEXTS[m.group(1)]
    if m.group(3):
        return context + ", .htaccess", m.group(4)
    return context, None


def test_rv_docs_every_registered_directive_documented(registered,
                                                       doc_text):
    boxes = directive_boxes(doc_text)
    missing = sorted(set(registered) - set(boxes))
    assert not missing, "directives the module registers but " \
        "docs/mod_redox_verify.md does not document: %s" % missing


def test_rv_docs_no_documented_directive_missing_from_module(registered,
                                                             doc_text):
    boxes = directive_boxes(doc_text)
    extra = sorted(set(boxes) - set(registered))
    assert not extra, "documented but not registered by the module: %s" \
        % extra


def test_rv_docs_directive_boxes_match_module(registered, doc_text):
    boxes = directive_boxes(doc_text)
    for name, info in registered.items():
        box = boxes.get(name)
        assert box is not None, name
        assert list(box) == BOX_FIELDS, \
            "%s: the box must list %s in that order" % (name, BOX_FIELDS)
        for field in BOX_FIELDS:
            assert box[field], "%s: empty %s" % (name, field)
        assert re.match(r"`%s( |`)" % re.escape(name), box["Syntax"]), \
            "%s: Syntax must start with the directive" % name
        assert box["Default"] == "none" or \
            box["Default"].startswith("`%s " % name), \
            "%s: Default is 'none' or a directive line" % name
        context, override = expected_context(info["allowed"])
        assert box["Context"] == context, \
            "%s: apache2 -L says %r, the manual says %r" % (
                name, info["allowed"], box["Context"])
        if override is None:
            assert box["Override"].startswith("None"), \
                "%s: not allowed in .htaccess, Override must be None" % name
        else:
            assert override in box["Override"], name
        assert box["Module"] == "mod_redox_verify", name


def test_rv_docs_directive_index_lists_every_directive(registered,
                                                       doc_text):
    section = doc_text.split("## Directives\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^- `(\w+)`", section, re.M))
    assert listed == set(registered)


def outcome_names():
    with open(os.path.join(TOP, "rv_core.c"), encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"outcome_names\[[^\]]*\]\s*=\s*\{(.*?)\};", src, re.S)
    assert m, "rv_core.c: outcome_names table not found"
    names = re.findall(r'"([^"]+)"', m.group(1))
    assert "ok" in names and "missing" in names, names
    return names


def test_rv_docs_troubleshooting_covers_every_denial_reason(doc_text):
    section = doc_text.split("## Troubleshooting\n", 1)[1] \
        .split("\n## ", 1)[0]
    reasons = [m.group(1) for m in re.finditer(r"^- `([^`]+)`: ", section,
                                               re.M)]
    for name in outcome_names():
        if name in SUCCESS_OUTCOMES:
            continue
        assert any(r == name or r.endswith(" " + name) for r in reasons), \
            "denial reason %r is not in the troubleshooting table" % name


def test_rv_docs_logging_lists_every_redox_verify_value(doc_text):
    item = re.findall(r"^- `REDOX_VERIFY`: .*(?:\n  .*)*", doc_text, re.M)
    assert len(item) == 1
    for name in outcome_names():
        assert "`%s`" % name in item[0], \
            "REDOX_VERIFY value %r is not documented" % name


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def section(text, heading):
    """The body of the "## heading" section (up to the next "## ")."""
    marker = "\n## %s\n" % heading
    assert text.count(marker) == 1, "no single section %r" % heading
    return text.split(marker, 1)[1].split("\n## ", 1)[0]


def code_lines(text):
    """The lines of the indented code blocks, unindented."""
    return [line.strip() for line in text.splitlines()
            if line.startswith("    ") and line.strip()]


def make_targets():
    """The targets the Makefile defines (rules of the form "name: ...")."""
    return set(re.findall(r"^([a-z][a-z0-9-]*):(?!=)", read(
        os.path.join(TOP, "Makefile")), re.M))


def test_rv_docs_readme_links_to_the_manual():
    readme = read(README)
    assert "(docs/mod_redox_verify.md)" in readme
    assert "(bench/README.md)" in readme
    assert "(docs/redox-verify-probe.md)" in readme


def test_rv_docs_relative_links_resolve():
    """Every relative Markdown link of the README, bench/README.md and the
    documents in docs/ names a file or folder of the tree."""
    docs = [README, BENCH_README] + sorted(
        os.path.join(TOP, "docs", n) for n in os.listdir(
            os.path.join(TOP, "docs")) if n.endswith(".md"))
    seen = 0
    for path in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", read(path)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            seen += 1
            where = os.path.normpath(os.path.join(
                os.path.dirname(path), target.split("#", 1)[0]))
            assert os.path.exists(where), "%s links to %s, which is " \
                "not in the tree" % (os.path.relpath(path, TOP), target)
    assert seen >= 5, seen


def test_rv_docs_readme_commands():
    """The README's two commands, on a fresh Debian 12 as root with only
    git and make installed first, are make targets."""
    text = section(read(README), "Try it (fresh Debian 12, as root)")
    assert "apt-get install git make" in text
    commands = [l.split("#", 1)[0].strip() for l in code_lines(text)]
    assert commands == ["make run", "make test"], commands
    targets = make_targets()
    for command in commands:
        assert command.split()[1] in targets, command


SECTION_REF = re.compile(
    r"""(?:\b(?:[Ss]ee|of|in|as|manual's|described in) "([^"]+)")"""
    r"""|(?:"([^"]+)" (?:below|above|shows|explains|says|lists))""")


def section_refs(text):
    """The section names a document refers to in its prose ("see "X"",
    ""X" below", "the manual's "X"", ...), code blocks left out."""
    prose = " ".join(line for line in text.splitlines()
                     if not line.startswith("    "))
    prose = re.sub(r"\s+", " ", prose)
    return {a or b for a, b in SECTION_REF.findall(prose)}


def test_rv_docs_section_references_name_sections(doc_text):
    """Every section the manual or the README refers to by name is a
    heading of the manual: nothing points at a section that moved."""
    headings = set(re.findall(r"^#+ (.+)$", doc_text, re.M))
    refs = section_refs(doc_text)
    assert {"Files", "Troubleshooting", "Setting up an endpoint",
            "Building and testing"} <= refs, refs
    missing = sorted(refs - headings)
    assert not missing, "the manual refers to sections it lacks: %s" \
        % missing
    readme_refs = section_refs(read(README))
    assert {"Setting up an endpoint", "Building and testing"} <= \
        readme_refs, readme_refs
    missing = sorted(readme_refs - headings)
    assert not missing, "the README refers to sections the manual " \
        "lacks: %s" % missing


def test_rv_docs_readme_vhost_is_valid(built_module, tmp_path):
    """The README's protected VirtualHost, with its token files made and
    without the TLS lines it leaves out, passes apache2 -t with the built
    module."""
    text = section(read(README), "Protect a VirtualHost")
    m = re.search(r"^    <VirtualHost \*:443>\n(?:    .*\n|\n)*?"
                  r"    </VirtualHost>\n", text, re.M)
    assert m, "no <VirtualHost *:443> block in the README"
    vhost = "\n".join(line[4:] for line in m.group(0).splitlines())
    assert re.search(r"^\s+RedoxVerify On$", vhost, re.M), vhost
    assert re.search(r"^\s+RedoxVerify Off$", vhost, re.M), vhost
    names = re.findall(r"RedoxVerificationToken (\S+) +file:"
                       r"/etc/apache2/redox/(\S+)\.token$", vhost, re.M)
    assert names, vhost
    for name, stem in names:
        assert name == stem, (name, stem)
        (tmp_path / (stem + ".token")).write_text(
            run("openssl rand -hex 32").stdout)
    vhost = vhost.replace("/etc/apache2/redox/", str(tmp_path) + "/")
    vhost = re.sub(r"^\s*SSLEngine on\n", "", vhost, flags=re.M)
    mods = "/usr/lib/apache2/modules"
    conf = tmp_path / "httpd.conf"
    conf.write_text(
        "ServerRoot /etc/apache2\n"
        "ServerName localhost\n"
        "PidFile %s/httpd.pid\n"
        "ErrorLog %s/error.log\n"
        "LoadModule mpm_event_module %s/mod_mpm_event.so\n"
        "LoadModule authz_core_module %s/mod_authz_core.so\n"
        "LoadModule proxy_module %s/mod_proxy.so\n"
        "LoadModule proxy_http_module %s/mod_proxy_http.so\n"
        "LoadModule redox_verify_module %s\n%s\n"
        % (tmp_path, tmp_path, mods, mods, mods, mods, built_module, vhost))
    proc = run([APACHE2, "-f", str(conf), "-t"], check=False)
    assert proc.returncode == 0 and "Syntax OK" in proc.stderr, \
        proc.stdout + proc.stderr


def test_rv_docs_package_file_name(doc_text):
    """The package file the manual installs and make deb makes is the one
    make deb produces for this version."""
    want = "%s_%s_%s.deb" % (PACKAGE, deb_version(), deb_arch())
    named = re.findall(r"%s_\S+\.deb" % re.escape(PACKAGE), doc_text)
    assert len(named) >= 2, named
    assert set(named) == {want}, (named, want)


def test_rv_docs_building_targets(doc_text):
    """Every make target "Building and testing" names is the Makefile's,
    and the development targets the README used to list are all there."""
    text = section(doc_text, "Building and testing")
    named = set(re.findall(r"\bmake(?: -j\d+)? ([a-z][a-z0-9-]*)", text))
    assert {"install", "uninstall", "deb", "test", "run", "asan", "lint",
            "fuzz", "load", "load-asan", "fresh-test", "bench",
            "man"} <= named, named
    missing = sorted(named - make_targets())
    assert not missing, "the manual names make targets the Makefile " \
        "lacks: %s" % missing
    assert "bench/README.md" in text


def test_rv_docs_setup_steps(doc_text):
    """"Setting up an endpoint": the package installed, the shipped example
    copied into sites-available, the configuration checked before Apache
    restarts, and the probe run before "Verify & Save" at Redox."""
    text = section(doc_text, "Setting up an endpoint")
    lines = code_lines(text)
    assert any(l.startswith("apt-get install apache2 ./%s_" % PACKAGE)
               for l in lines), lines
    assert any("examples/redox-vhost.conf.example" in l for l in lines)
    assert lines.index("apache2ctl -t") < \
        lines.index("systemctl restart apache2")
    assert "apt-get purge %s" % PACKAGE in text


def bench_phases():
    src = read(os.path.join(TOP, "bench", "run.py"))
    m = re.search(r"'--phases', default='([^']+)'", src)
    assert m, "bench/run.py: the --phases default is not found"
    return m.group(1).split(",")


def test_rv_docs_bench_readme():
    """bench/README.md: how to run it (make targets that exist), each phase
    bench/run.py runs by default, the figures with their A/A row and how to
    read them, and the section the native phase's figures go into."""
    text = read(BENCH_README)
    lines = [l.split("#", 1)[0].strip() for l in code_lines(text)[:2]]
    assert lines == ["make bench", "make bench-quick"], lines
    targets = make_targets()
    assert {"bench", "bench-quick"} <= targets
    phases = section(text, "The phases")
    listed = re.findall(r"^- `([a-z]+)`: ", phases, re.M)
    assert set(bench_phases()) <= set(listed), (bench_phases(), listed)
    figures = section(text, "Figures from one run")
    assert re.search(r"^\| 1 A/A: ", figures, re.M)
    assert re.search(r"^\| 1 baseline: ", figures, re.M)
    assert "A/A" in section(text, "Reading the figures against the A/A row")
    assert "\n## Native instruction counts\n" in text


def test_rv_docs_man_page_renders_cleanly(registered):
    """make man (go-md2man; the rule fails on any go-md2man warning), then
    what lintian runs on it, and the page as man shows it."""
    run(["make", "--no-print-directory", "man"])
    page = os.path.join(TOP, "build", "man", "redox_verify.5")
    with open(page, encoding="utf-8") as f:
        roff = f.read()
    assert re.search(r'^\.TH REDOX_VERIFY 5 "\d{4}-\d\d-\d\d" '
                     r'"mod_redox_verify [^"]+" "Apache HTTP Server modules"$',
                     roff, re.M), roff[:300]
    # What lintian runs, at its width: groff must have nothing to say.
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    proc = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l",
                           "-Tutf8", "-Z", page], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    # The NAME line as whatis and apropos read it.
    whatis = run(["lexgrog", page]).stdout
    assert '"redox_verify - verify the tokens Redox sends with its ' \
        'webhooks"' in whatis, whatis
    text = run(["man", "-l", page], env=dict(env, MAN_KEEP_FORMATTING=
                                              "0")).stdout
    text = re.sub(r".\x08", "", text)
    assert "redox_verify, mod_redox_verify - verify the tokens" in text
    for name in registered:
        assert "%s Directive" % name in text, name
    # hyphenation is off: no directive name is split at a line end
    split = {re.sub(r"\W", "", a + b) for a, b in
             re.findall(r"(\S+)\u2010\n\s*(\S+)", text)}
    assert not split & set(registered), split & set(registered)
    for heading in ("Setting up an endpoint", "Building and testing",
                    "Metrics", "Redox's TLS policy and limits", "Files",
                    "The endpoint-verification handshake",
                    "Rotating a token",
                    "Keeping tokens out of configuration files", "Logging",
                    "Combining with Require ip",
                    "With Redox's OAuth 2.0 authentication",
                    "Where httpd copies a request", "Monitoring with Prometheus",
                    "Banning scanners with fail2ban", "Troubleshooting"):
        assert re.search(r"^%s$" % re.escape(heading), text, re.M), heading


def documented_command(doc_text, needle):
    """The one code line of the manual that contains needle."""
    lines = [line.strip() for line in doc_text.splitlines()
             if line.startswith("    ") and needle in line]
    assert len(lines) == 1, (needle, lines)
    return lines[0]


def test_rv_docs_token_one_liners_give_the_digest(doc_text, tmp_path):
    """The manual's commands that make a token and its sha256: digest give
    the SHA-256 of the token itself (no newline), which is what sha256:
    takes; test_rv_deb configures a token by the digest they print."""
    path = tmp_path / "prod.token"
    make = documented_command(doc_text, "openssl rand -hex 32 > "
                              "/etc/apache2/redox/prod.token")
    run(make.replace("/etc/apache2/redox/prod.token", str(path)))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    token = path.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    want = hashlib.sha256(token.encode()).hexdigest()

    digest = documented_command(doc_text, "< /etc/apache2/redox/prod.token")
    out = run(digest.replace("/etc/apache2/redox/prod.token", str(path)))
    assert out.stdout.strip() == want

    seen = tmp_path / "seen"
    one_liner = documented_command(doc_text, "tee /dev/tty")
    out = run(one_liner.replace("/dev/tty", str(seen)))
    shown = seen.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", shown)
    assert out.stdout.strip() == hashlib.sha256(shown.encode()).hexdigest()


def handler_names():
    """The handler names the module's glue files (mod_redox_verify*.c)
    answer (r->handler compared with a literal or a macro of one defined
    in a glue file or the glue's header, mod_redox_verify.h)."""
    sources = sorted(glob.glob(os.path.join(TOP, "mod_redox_verify*.c")))
    assert sources, "no mod_redox_verify*.c in " + TOP
    macros = {}
    for path in sources + [os.path.join(TOP, "mod_redox_verify.h")]:
        with open(path, encoding="utf-8") as f:
            macros.update(re.findall(r'^#define\s+(\w+)\s+"([^"]*)"',
                                     f.read(), re.M))
    names = set()
    for path in sources:
        with open(path, encoding="utf-8") as f:
            src = f.read()
        found = set()
        for ref in re.findall(r"\bstr(?:case)?cmp\(\s*r->handler\s*,\s*"
                              r"(\w+|\"[^\"]*\")\s*\)", src):
            assert ref.startswith('"') or ref in macros, \
                "%s: cannot resolve handler name %s" % (path, ref)
            found.add(ref.strip('"') if ref.startswith('"')
                      else macros[ref])
        assert "r->handler" not in src or found, \
            "%s looks at r->handler in a way this test does not " \
            "understand; teach handler_names()" % os.path.basename(path)
        names |= found
    return names


def test_rv_docs_every_handler_documented(doc_text):
    for name in handler_names():
        assert "SetHandler %s" % name in doc_text, \
            "handler %r is not documented with a SetHandler example" % name
