"""Configuration checks through `apache2 -t`: valid configs pass, every
mistake fails with a message naming the directive and the problem."""

import os
import secrets

import pytest

import rvhttpd
from rvhttpd import new_token, register_secret, sha256_hex

TOK = new_token()
TOK2 = new_token()
HEX = sha256_hex(TOK)

EXEC_OK = "#!/bin/sh\necho '%s'\n" % TOK
EXEC_ARGS = ("#!/bin/sh\n[ \"$1\" = a ] && [ \"$2\" = b ] && { echo '%s'; exit 0; }\nexit 5\n"
             % TOK)


def _unset_var():
    while True:
        v = "RV_IT_UNSET_" + secrets.token_hex(6).upper()
        if v not in os.environ:
            return v


UNSET = _unset_var()
EMPTY = "RV_IT_EMPTY_" + secrets.token_hex(6).upper()


def _vhost(inner):
    return "<VirtualHost 127.0.0.1:*>\n    ServerName cfg.test\n%s\n</VirtualHost>\n" % inner


# ---------------------------------------------------------------------------
# valid configurations (positive controls for the failures below)
# ---------------------------------------------------------------------------
GOOD = {
    "minimal": ("RedoxVerify On\nRedoxVerificationToken hook %s\n" % TOK, {}, {}),
    "all-directives": (
        "RedoxVerify On\nRedoxVerificationToken hook %s\nRedoxTokenHeaders both\n"
        "RedoxStripTokens Off\nRedoxSourceHeader X-Redox-Source\nRedoxDenyStatus 401\n"
        "<Location /a>\n  RedoxTokenHeaders any\n  RedoxDenyStatus 403\n</Location>\n"
        "<Location /b>\n  RedoxTokenHeaders bearer\n  RedoxDenyStatus 404\n</Location>\n"
        "<Location /c>\n  RedoxTokenHeaders verification-token\n  RedoxVerify Off\n"
        "  RedoxStripTokens On\n</Location>\n" % TOK, {}, {}),
    "keywords-case-insensitive-flags": ("RedoxVerify on\nRedoxStripTokens off\n"
                                        "RedoxVerificationToken hook %s\n" % TOK, {}, {}),
    "name-charset-and-64-chars": (
        "RedoxVerificationToken %s %s\nRedoxVerificationToken A.b_c-9 %s\n"
        % ("N" * 64, TOK, TOK2), {}, {}),
    "same-name-in-different-scopes": (
        _vhost("    RedoxVerificationToken hook %s\n    <Location /x>\n"
               "        RedoxVerificationToken hook %s\n    </Location>" % (TOK, TOK2))
        + "RedoxVerificationToken hook %s\n" % TOK, {}, {}),
    "verify-on-without-tokens-starts": ("RedoxVerify On\n", {}, {}),
    "file-crlf-trimmed": ("RedoxVerificationToken hook file:@ROOT@/tok\n",
                          {"tok": ("%s\r\nsecond\r\n" % TOK, 0o600)}, {}),
    "file-no-newline": ("RedoxVerificationToken hook file:@ROOT@/tok\n",
                        {"tok": (TOK, 0o600)}, {}),
    "env-set": ("RedoxVerificationToken hook env:RV_IT_GOOD_TOKEN\n", {},
                {"RV_IT_GOOD_TOKEN": TOK}),
    "exec-with-args": ("RedoxVerificationToken hook exec:@ROOT@/prog a b\n",
                       {"prog": (EXEC_ARGS, 0o700)}, {}),
    "sha256-lowercase": ("RedoxVerificationToken hook sha256:%s\n" % HEX, {}, {}),
    "sha256-uppercase": ("RedoxVerificationToken hook sha256:%s\n" % HEX.upper(), {}, {}),
    "source-header-custom": ("RedoxSourceHeader X-Webhook-Source\n", {}, {}),
}


@pytest.mark.parametrize("case", sorted(GOOD))
def test_rv_core_config_valid(case):
    body, files, env = GOOD[case]
    res = rvhttpd.config_test("good-" + case, body, env=env, files=files)
    assert res.rc == 0, res
    assert "Syntax OK" in res.output, res


# ---------------------------------------------------------------------------
# mistakes: (config body, files, env, directive named, any-of problem words)
# ---------------------------------------------------------------------------
BAD = {
    # keywords / values of the simple directives
    "headers-unknown-keyword": ("RedoxTokenHeaders sometimes\n", {}, {}, "RedoxTokenHeaders",
                                ["sometimes", "unknown", "expected", "invalid", "one of"]),
    "headers-empty": ('RedoxTokenHeaders ""\n', {}, {}, "RedoxTokenHeaders",
                      ["unknown", "expected", "invalid", "one of", "empty"]),
    "verify-not-flag": ("RedoxVerify Maybe\n", {}, {}, "RedoxVerify", ["on or off", "must be"]),
    "strip-not-flag": ("RedoxStripTokens Yes\n", {}, {}, "RedoxStripTokens",
                       ["on or off", "must be"]),
    "deny-status-500": ("RedoxDenyStatus 500\n", {}, {}, "RedoxDenyStatus",
                        ["500", "expected", "invalid", "401"]),
    "deny-status-word": ("RedoxDenyStatus forbidden\n", {}, {}, "RedoxDenyStatus",
                         ["forbidden", "expected", "invalid", "401"]),
    "source-header-bad-name": ('RedoxSourceHeader "X Bad:Header"\n', {}, {},
                               "RedoxSourceHeader", ["header", "invalid", "not a"]),
    # NAME
    "name-bad-char": ("RedoxVerificationToken bad/name %s\n" % TOK, {}, {},
                      "RedoxVerificationToken", ["name"]),
    "name-space": ('RedoxVerificationToken "bad name" %s\n' % TOK, {}, {},
                   "RedoxVerificationToken", ["name"]),
    "name-empty": ('RedoxVerificationToken "" %s\n' % TOK, {}, {},
                   "RedoxVerificationToken", ["name"]),
    "name-65-chars": ("RedoxVerificationToken %s %s\n" % ("N" * 65, TOK), {}, {},
                      "RedoxVerificationToken", ["name"]),
    "missing-value": ("RedoxVerificationToken onlyname\n", {}, {}, "RedoxVerificationToken",
                      ["argument", "expects", "value", "name"]),
    "duplicate-name-server": ("RedoxVerificationToken hook %s\nRedoxVerificationToken hook %s\n"
                              % (TOK, TOK2), {}, {}, "RedoxVerificationToken", ["duplicate"]),
    "duplicate-name-location": ("<Location /x>\n RedoxVerificationToken hook %s\n"
                                " RedoxVerificationToken hook sha256:%s\n</Location>\n"
                                % (TOK, sha256_hex(TOK2)), {}, {}, "RedoxVerificationToken",
                                ["duplicate"]),
    "duplicate-name-vhost": (_vhost("    RedoxVerificationToken hook %s\n"
                                    "    RedoxVerificationToken hook %s" % (TOK, TOK2)), {}, {},
                             "RedoxVerificationToken", ["duplicate"]),
    # literal token content
    "token-with-space": ('RedoxVerificationToken hook "%s %s"\n' % (TOK, TOK2), {}, {},
                         "RedoxVerificationToken",
                         ["space", "visible", "invalid", "character", "ascii", "printable"]),
    "token-non-ascii": ("RedoxVerificationToken hook %s\u00e9\n" % TOK, {}, {},
                        "RedoxVerificationToken",
                        ["visible", "invalid", "character", "ascii", "printable"]),
    "token-control-char": ("RedoxVerificationToken hook \"%s\x01\"\n" % TOK, {}, {},
                           "RedoxVerificationToken",
                           ["visible", "invalid", "character", "ascii", "printable", "control"]),
    # sha256:
    "sha256-63-hex": ("RedoxVerificationToken hook sha256:%s\n" % HEX[:63], {}, {},
                      "RedoxVerificationToken", ["hex"]),
    "sha256-65-hex": ("RedoxVerificationToken hook sha256:%s0\n" % HEX, {}, {},
                      "RedoxVerificationToken", ["hex"]),
    "sha256-not-hex": ("RedoxVerificationToken hook sha256:%s\n" % ("g" + HEX[1:]), {}, {},
                       "RedoxVerificationToken", ["hex"]),
    "sha256-empty": ("RedoxVerificationToken hook sha256:\n", {}, {},
                     "RedoxVerificationToken", ["hex"]),
    # file:
    "file-missing": ("RedoxVerificationToken hook file:@ROOT@/nonexistent\n", {}, {},
                     "RedoxVerificationToken", ["file", "no such", "exist", "open"]),
    "file-unreadable-directory": ("RedoxVerificationToken hook file:@ROOT@/secrets\n",
                                  {"secrets/x": ("x", 0o600)}, {}, "RedoxVerificationToken",
                                  ["file", "read", "directory"]),
    "file-empty": ("RedoxVerificationToken hook file:@ROOT@/tok\n", {"tok": ("", 0o600)}, {},
                   "RedoxVerificationToken", ["empty", "file"]),
    "file-blank-first-line": ("RedoxVerificationToken hook file:@ROOT@/tok\n",
                              {"tok": ("   \n%s\n" % TOK, 0o600)}, {},
                              "RedoxVerificationToken", ["empty", "file"]),
    "file-token-with-space": ("RedoxVerificationToken hook file:@ROOT@/tok\n",
                              {"tok": ("%s %s\n" % (TOK, TOK2), 0o600)}, {},
                              "RedoxVerificationToken",
                              ["space", "visible", "invalid", "character", "ascii", "printable"]),
    # env:
    "env-unset": ("RedoxVerificationToken hook env:%s\n" % UNSET, {}, {},
                  "RedoxVerificationToken", ["unset", "not set", "empty", "undefined"]),
    "env-empty": ("RedoxVerificationToken hook env:%s\n" % EMPTY, {}, {EMPTY: ""},
                  "RedoxVerificationToken", ["unset", "not set", "empty", "undefined"]),
    # exec:
    "exec-fails": ("RedoxVerificationToken hook exec:@ROOT@/prog\n",
                   {"prog": ("#!/bin/sh\necho '%s'\nexit 1\n" % TOK, 0o700)}, {},
                   "RedoxVerificationToken", ["exec"]),
    "exec-prints-nothing": ("RedoxVerificationToken hook exec:@ROOT@/prog\n",
                            {"prog": ("#!/bin/sh\nexit 0\n", 0o700)}, {},
                            "RedoxVerificationToken", ["exec"]),
    "exec-wrong-args": ("RedoxVerificationToken hook exec:@ROOT@/prog x y\n",
                        {"prog": (EXEC_ARGS, 0o700)}, {}, "RedoxVerificationToken", ["exec"]),
    "exec-missing-program": ("RedoxVerificationToken hook exec:@ROOT@/no-such-prog\n", {}, {},
                             "RedoxVerificationToken", ["exec"]),
    "exec-not-executable": ("RedoxVerificationToken hook exec:@ROOT@/prog\n",
                            {"prog": (EXEC_OK, 0o600)}, {}, "RedoxVerificationToken", ["exec"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_rv_core_config_error(case):
    body, files, env, directive, words = BAD[case]
    res = rvhttpd.config_test("bad-" + case, body, env=env, files=files)
    assert res.rc != 0, res
    assert "Syntax OK" not in res.output, res
    assert directive in res.output, res
    low = res.output.lower()
    assert any(w.lower() in low for w in words), (words, res)


def test_rv_core_config_error_does_not_echo_secret_content():
    """A bad token read from a file/exec must not be printed in the error."""
    secret = register_secret(new_token() + " " + new_token())
    res = rvhttpd.config_test("bad-no-echo", "RedoxVerificationToken hook file:@ROOT@/tok\n",
                              files={"tok": (secret + "\n", 0o600)})
    assert res.rc != 0, res
    for part in secret.split(" "):
        assert part not in res.output, res


def test_rv_core_config_start_refused_on_error():
    """A real start (not only -t) refuses a bad config and leaves no server."""
    h = rvhttpd.Httpd("bad-start")
    h.write_conf("RedoxVerificationToken hook sha256:%s\n" % HEX[:10])
    with pytest.raises(RuntimeError) as ei:
        h.start()
    assert "RedoxVerificationToken" in str(ei.value)
    assert h.pid() is None or not rvhttpd._alive(h.pid())
