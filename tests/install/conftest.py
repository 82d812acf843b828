"""Shared helpers of the install tests (make install-test).

These tests install things on the machine itself: the Debian package, the
module in /etc/apache2, a running Apache.  They need root, as CI has, and
fail (never skip) without it.
"""

import os
import shutil
import subprocess
import sys

import pytest

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# appended, not prepended: "conftest" and the tests' other imports must
# still come from this folder
sys.path.append(os.path.join(TOP, "tests", "integration"))
import rvports  # noqa: E402  (the port allocator every harness shares)
PACKAGE = "libapache2-mod-redox-verify"
MODULE_SO = os.path.join(TOP, ".libs", "mod_redox_verify.so")
DOC = os.path.join(TOP, "docs", "mod_redox_verify.md")
APACHE2 = "/usr/sbin/apache2"


def run(cmd, check=True, env=None, cwd=TOP, timeout=300, **kw):
    """Runs a command (a list, or a string for the shell) and returns the
    CompletedProcess, with its output in the assertion message on error."""
    proc = subprocess.run(cmd, shell=isinstance(cmd, str), cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr\n%s"
                             % (cmd, proc.returncode, proc.stdout,
                                proc.stderr))
    return proc


def free_port():
    """A loopback port from the harnesses' one allocator (rvports)."""
    return rvports.port()


def apxs():
    return shutil.which("apxs2") or shutil.which("apxs") or "apxs"


def deb_version():
    return run(["dpkg-parsechangelog", "-S", "Version"]).stdout.strip()


def deb_arch():
    return run(["dpkg-architecture", "-qDEB_HOST_ARCH"]).stdout.strip()


@pytest.fixture(scope="session")
def as_root():
    assert os.geteuid() == 0, \
        "the install tests install a package and start Apache: run as root"


@pytest.fixture(scope="session")
def built_module():
    """The module as make builds it."""
    run(["make", "--no-print-directory", "all"])
    assert os.path.isfile(MODULE_SO)
    return MODULE_SO


@pytest.fixture(scope="session")
def deb_dir():
    """build/deb as make deb leaves it.  make install-test has just built
    it (and says so with RV_DEB_BUILT=1); otherwise it is built here, so
    that a stale package is never tested."""
    d = os.path.join(TOP, "build", "deb")
    deb = os.path.join(d, "%s_%s_%s.deb" % (PACKAGE, deb_version(),
                                            deb_arch()))
    if os.environ.get("RV_DEB_BUILT") != "1" or not os.path.isfile(deb):
        run(["make", "--no-print-directory", "deb"], timeout=600)
    assert os.path.isfile(deb), "make deb did not produce " + deb
    return d


@pytest.fixture(scope="session")
def deb(deb_dir):
    return os.path.join(deb_dir, "%s_%s_%s.deb" % (PACKAGE, deb_version(),
                                                   deb_arch()))
