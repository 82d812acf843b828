"""Shared fixtures for the mod_redox_verify integration suite.

Run with Debian's python:  /usr/bin/python3 -m pytest tests/integration -q
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import rvhttpd  # noqa: E402
import rvleaks  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def rv_gen_dir():
    """Fresh gen/ for every session; left in place afterwards for inspection.

    Its teardown is the session's closing check (rvleaks): it stops every
    server, then greps every log and response body for the tokens and
    checks that every server logged like a site.  A session fixture is
    finalized after the last test of the session, whichever tests were
    selected and in whatever order they ran, so the check needs no test
    order; a finding is reported as an error and fails the run."""
    rvhttpd.cleanup_stale()
    rvhttpd.GEN_DIR.mkdir(parents=True, exist_ok=True)
    yield rvhttpd.GEN_DIR
    rvhttpd.stop_all()   # every log complete
    problems = rvleaks.scan()
    assert not problems, "the session's closing check (rvleaks) failed:\n" + "\n".join(problems)


@pytest.fixture(scope="session")
def backend():
    b = rvhttpd.Backend().start()
    yield b
    b.stop()


@pytest.fixture(autouse=True)
def rv_error_log_check():
    """After every test, new lines in the error log of every running server
    must be free of unexpected warnings/errors and crash reports; the
    module's own `redox_verify: denied` lines are expected.  Under `make
    asan`, no new sanitizer report file may appear."""
    yield
    problems = ["sanitizer report " + r for r in rvhttpd.new_sanitizer_reports()]
    for h in list(rvhttpd.RUNNING):
        bad = h.new_unexpected_lines()
        if bad:
            problems.append("%s:\n  %s" % (h.error_log, "\n  ".join(bad)))
    assert not problems, "unexpected error-log lines:\n" + "\n".join(problems)
