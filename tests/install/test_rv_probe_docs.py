"""redox-verify-probe(1) against the command: every option and every check
the probe has is documented, the man page that make builds with go-md2man
renders without a warning, the module's manual runs the probe in its setup
steps and points to it, and the README links to its page."""

import os
import re
import subprocess

import pytest

from conftest import TOP, run

PROBE = os.path.join(TOP, "probe", "redox-verify-probe")
DOC = os.path.join(TOP, "docs", "redox-verify-probe.md")
PAGE = os.path.join(TOP, "build", "man", "redox-verify-probe.1")


@pytest.fixture(scope="module")
def doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def probe_options():
    out = run(["/usr/bin/python3", PROBE, "--help"]).stdout
    return sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", out)))


def probe_checks():
    with open(PROBE, encoding="utf-8") as f:
        src = f.read()
    m = re.search(r'for name in \("tls1\.3", "tls1\.2", "certificate",'
                  r'(.*?)\):', src, re.S)
    assert m, "the probe's list of checks after connect is not found"
    return ["connect", "tls1.3", "tls1.2", "certificate"] + \
        re.findall(r'"([a-z0-9.-]+)"', m.group(1))


def test_rv_probe_docs_every_option(doc):
    options = probe_options()
    assert "--token-file" in options and "--delivery" in options
    section = doc.split("\n# OPTIONS\n", 1)[1].split("\n# ", 1)[0]
    # the heading lines of the option list: "**--x** *ARG*", "**--a**, **-b**"
    headings = [l for l in section.splitlines() if l.startswith("**-")]
    documented = set(re.findall(r"\*\*(--[a-z-]+)\*\*", "\n".join(headings)))
    assert documented == set(options)


def test_rv_probe_docs_every_check(doc):
    checks = probe_checks()
    assert len(checks) == 10, checks
    section = doc.split("\n# CHECKS\n", 1)[1].split("\n# ", 1)[0]
    # each a heading of its own (or two on one), in the order they run
    heads = re.findall(r"^\*\*([a-z0-9.-]+)\*\*(?:, \*\*([a-z0-9.-]+)\*\*)?$",
                       section, re.M)
    flat = [n for pair in heads for n in pair if n]
    assert flat == checks


def test_rv_probe_docs_why_python(doc):
    assert "standard library only" in doc


def test_rv_probe_docs_man_page_renders_cleanly():
    run(["make", "--no-print-directory", "build/man/redox-verify-probe.1"])
    with open(PAGE) as f:
        roff = f.read()
    version = run(["dpkg-parsechangelog", "-S", "Version"]).stdout.strip()
    # the title line as the man page rule writes it for every page
    assert re.search(r'^\.TH REDOX-VERIFY-PROBE 1 "\d{4}-\d\d-\d\d" '
                     r'"mod_redox_verify %s" "User Commands"$'
                     % re.escape(version), roff, re.M), roff[:200]
    # What lintian runs, at its width: groff must have nothing to say.
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH="80")
    proc = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l",
                           "-Tutf8", "-Z", PAGE], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = re.sub(r".\x08", "", run(["man", "-l", PAGE], env=env).stdout)
    assert "redox-verify-probe - check an HTTPS endpoint the way Redox " \
        "uses it" in text
    for heading in ("SYNOPSIS", "OPTIONS", "CHECKS", "EXIT STATUS",
                    "EXAMPLES", "SEE ALSO"):
        assert "\n%s\n" % heading in text, heading


def test_rv_probe_docs_manual_production_steps():
    with open(os.path.join(TOP, "docs", "mod_redox_verify.md"),
              encoding="utf-8") as f:
        manual = f.read()
    section = manual.split("\n## Setting up an endpoint\n", 1)[1] \
        .split("\n## ", 1)[0]
    assert "redox-verify-probe https://redox.example.org/redox/ " \
        "--token-file /etc/apache2/redox/prod.token" in section
    # before the endpoint is verified at Redox
    assert section.index("redox-verify-probe") < \
        section.index("Verify & Save")


def test_rv_probe_docs_readme_points_to_the_probe():
    with open(os.path.join(TOP, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("\n## Protect a VirtualHost\n", 1)[1] \
        .split("\n## ", 1)[0]
    assert "[docs/redox-verify-probe.md](docs/redox-verify-probe.md)" \
        in section
    # before the endpoint is verified at Redox
    assert section.index("redox-verify-probe") < \
        section.index("Verify & Save")


def test_rv_probe_docs_manual_points_to_the_probe():
    with open(os.path.join(TOP, "docs", "mod_redox_verify.md"),
              encoding="utf-8") as f:
        manual = f.read()
    see_also = manual.split("\n## See also\n", 1)[1]
    assert "redox-verify-probe(1)" in see_also
    assert "/usr/bin/redox-verify-probe" in manual
