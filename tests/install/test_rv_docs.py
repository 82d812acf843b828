"""The reference manual against the module: every directive the built
module registers (as Apache itself lists them with -L) is documented in
docs/mod_redox_verify.md with the facts httpd's module pages give, no
directive is documented that the module lacks, every outcome the module
can log is in the troubleshooting table, and the man page generated from
the manual renders without a warning."""

import hashlib
import glob
import os
import re
import subprocess

import pytest

from conftest import APACHE2, DOC, TOP, run

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


def test_rv_docs_readme_links_to_the_manual():
    with open(os.path.join(TOP, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "(docs/mod_redox_verify.md)" in readme


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
    for heading in ("The endpoint-verification handshake",
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
    in the same file)."""
    sources = sorted(glob.glob(os.path.join(TOP, "mod_redox_verify*.c")))
    assert sources, "no mod_redox_verify*.c in " + TOP
    names = set()
    for path in sources:
        with open(path, encoding="utf-8") as f:
            src = f.read()
        macros = dict(re.findall(r'^#define\s+(\w+)\s+"([^"]*)"', src,
                                 re.M))
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
