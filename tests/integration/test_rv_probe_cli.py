"""redox-verify-probe's command line and its pure parts: no token on the
command line, clear errors (exit status 2) for a token it cannot use, an
endpoint it cannot reach, the wrong token it makes, and the redaction of
the token from what it shows."""

import importlib.machinery
import importlib.util
import json
import re
import socket
import string
import urllib.parse

import pytest

import rvprobe
from rvhttpd import REPO, new_token, register_secret


@pytest.fixture(scope="module")
def mod():
    """The probe's code as a module, for its pure functions."""
    loader = importlib.machinery.SourceFileLoader("rv_probe_cmd",
                                                  str(rvprobe.PROBE))
    spec = importlib.util.spec_from_loader("rv_probe_cmd", loader)
    m = importlib.util.module_from_spec(spec)
    loader.exec_module(m)
    return m


@pytest.fixture
def token_file(tmp_path):
    tok = new_token()
    p = tmp_path / "t.token"
    p.write_text(tok + "\n")
    p.chmod(0o600)
    return p, tok


def test_rv_probe_cli_refuses_token_on_command_line(token_file):
    _, tok = token_file
    for args in (["--token", tok], ["--token=" + tok]):
        r = rvprobe.run("https://redox.example.test/", *args)
        assert r.rc == 2, r
        assert r.out == ""
        assert "there is no --token option: a token on the command line is " \
            "visible to every user (ps); use --token-file FILE or " \
            "--token-env VAR" in r.err


def test_rv_probe_cli_needs_one_token_source(token_file):
    p, _ = token_file
    r = rvprobe.run("https://redox.example.test/")
    assert r.rc == 2 and "one of the arguments --token-file --token-env " \
        "is required" in r.err, r
    r = rvprobe.run("https://redox.example.test/", "--token-file", p,
                    "--token-env", "X")
    assert r.rc == 2 and "not allowed with argument" in r.err, r
    # no abbreviations: "--token-f" is not taken for --token-file
    r = rvprobe.run("https://redox.example.test/", "--token-f", p)
    assert r.rc == 2, r


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("\n\n", "is empty"),
    ("two words\n", "is not a token: Redox sends the token in an HTTP "
                    "header, so it is 1 to 8192 visible ASCII characters "
                    "without spaces"),
    ("x" * 8193 + "\n", "is not a token"),
    ("t\u00e9st\n", "is not a token"),
], ids=["empty", "blank-lines", "space", "too-long", "not-ascii"])
def test_rv_probe_cli_token_file_errors(tmp_path, content, message):
    p = tmp_path / "bad.token"
    p.write_text(content, encoding="utf-8")
    r = rvprobe.run("https://redox.example.test/", "--token-file", p)
    assert r.rc == 2, r
    assert r.err.startswith("redox-verify-probe: the first line of %s %s"
                            % (p, message)), r
    # what the file holds is never repeated
    for word in content.split():
        assert word not in r.err


def test_rv_probe_cli_token_file_unreadable(tmp_path):
    p = tmp_path / "absent.token"
    r = rvprobe.run("https://redox.example.test/", "--token-file", p)
    assert r.rc == 2
    assert r.err == "redox-verify-probe: cannot read the token file %s: No " \
        "such file or directory\n" % p


def test_rv_probe_cli_token_env_errors():
    r = rvprobe.run("https://redox.example.test/", "--token-env",
                    "RV_PROBE_UNSET_VARIABLE")
    assert r.rc == 2
    assert r.err == "redox-verify-probe: the environment variable " \
        "RV_PROBE_UNSET_VARIABLE is not set\n"
    r = rvprobe.run("https://redox.example.test/", "--token-env", "RV_T",
                    env={"RV_T": ""})
    assert r.rc == 2
    assert "the environment variable RV_T is empty" in r.err


@pytest.mark.parametrize("url, message", [
    ("http://redox.example.test/", "Redox sends only to https:// URLs; "
                                   "--insecure probes a plain-HTTP test "
                                   "server"),
    ("ftp://redox.example.test/", "expected an https:// URL"),
    ("redox.example.test/redox/", "expected an https:// URL"),
    ("https://user:pw@redox.example.test/", "must not carry a user name or "
                                            "password"),
    ("https://redox.example.test:99999/", "bad port"),
])
def test_rv_probe_cli_bad_urls(token_file, url, message):
    p, _ = token_file
    r = rvprobe.run(url, "--token-file", p)
    assert r.rc == 2, r
    assert message in r.err, r


def test_rv_probe_cli_bad_ca_and_options(token_file, tmp_path):
    p, _ = token_file
    r = rvprobe.run("https://redox.example.test/", "--token-file", p,
                    "--ca", tmp_path / "none.pem")
    assert r.rc == 2 and "cannot use --ca" in r.err, r
    r = rvprobe.run("https://redox.example.test/", "--token-file", p,
                    "--ca", p, "--insecure")
    assert r.rc == 2 and "--ca and --insecure exclude each other" in r.err
    r = rvprobe.run("https://redox.example.test/", "--token-file", p,
                    "--timeout", "0")
    assert r.rc == 2 and "--timeout must be positive" in r.err


def test_rv_probe_cli_cannot_connect(token_file):
    """A port that is bound but not listening refuses the connection: the
    first check fails and says so, the others are not run."""
    p, _ = token_file
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        r = rvprobe.run("https://redox.example.test:%d/redox/" % port,
                        "--token-file", p, "--connect-to", "127.0.0.1")
    assert r.rc == 1, r
    assert r.status("connect") == "FAIL"
    assert r.text("connect").startswith(
        "cannot connect to 127.0.0.1 port %d: Connection refused; fix: "
        % port)
    assert [r.status(c) for c in rvprobe.CHECKS[1:]] == ["SKIP"] * 9


def test_rv_probe_cli_version_is_the_package_version():
    r = rvprobe.run("--version")
    changelog = (REPO / "debian" / "changelog").read_text()
    version = re.match(r"\S+ \(([^)]+)\)", changelog).group(1)
    assert r.rc == 0 and r.out == "redox-verify-probe %s\n" % version


def test_rv_probe_cli_is_python3_standard_library_only():
    src = rvprobe.PROBE.read_text()
    assert src.startswith("#!/usr/bin/python3\n")
    imported = set(re.findall(r"^import (\S+)", src, re.M))
    imported |= set(re.findall(r"^from (\S+) import", src, re.M))
    assert imported <= {"argparse", "http.client", "json", "os", "secrets",
                        "socket", "ssl", "string", "sys", "time",
                        "urllib.parse", "uuid"}, imported


def test_rv_probe_cli_wrong_token_has_the_same_shape(mod):
    hexdigits = "0123456789abcdef"
    for tok in ("0123456789abcdef" * 4, new_token(), "aB3-_x.9~",
                "a", "-_-"):
        for _ in range(50):
            w = mod.same_shape(tok)
            assert w != tok and len(w) == len(tok)
            for a, b in zip(tok, w):
                if all(c in hexdigits for c in tok):
                    assert b in hexdigits
                elif a in string.digits:
                    assert b in string.digits
                elif a in string.ascii_lowercase:
                    assert b in string.ascii_lowercase
                elif a in string.ascii_uppercase:
                    assert b in string.ascii_uppercase
                elif tok != "-_-":
                    assert a == b


def test_rv_probe_cli_redactor(mod):
    tok = register_secret(new_token() + '+/"\\')
    red = mod.Redactor(tok)
    for form in (tok, json.dumps(tok)[1:-1], urllib.parse.quote(tok, safe=""),
                 urllib.parse.quote_plus(tok)):
        assert red("a %s b" % form) == "a REDACTED b"
