"""Runs probe/redox-verify-probe, the command the package installs as
/usr/bin/redox-verify-probe, and reads its checklist."""

import json
import os
import re
import subprocess

import rvhttpd
from rvhttpd import REPO

PROBE = REPO / "probe" / "redox-verify-probe"
CHECKS = ["connect", "tls1.3", "tls1.2", "certificate", "cert-expiry",
          "handshake", "handshake-get", "refuse-no-token",
          "refuse-wrong-token", "delivery"]
LINE = re.compile(r"^(PASS|FAIL|INFO|SKIP)  (\S+) +(.*)$")


class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.checks = {}
        self.order = []
        for line in self.out.splitlines():
            m = LINE.match(line)
            if m:
                self.checks[m.group(2)] = (m.group(1), m.group(3))
                self.order.append(m.group(2))

    def status(self, name):
        return self.checks[name][0]

    def text(self, name):
        return self.checks[name][1]

    def statuses(self):
        return {k: v[0] for k, v in self.checks.items()}

    def __repr__(self):
        return "<probe rc=%s>\n%s%s" % (self.rc, self.out, self.err)


def run(*args, env=None, timeout=300):
    """The probe with args; every secret the suite knows must stay out of
    its output."""
    e = dict(os.environ)
    e.update(env or {})
    proc = subprocess.run([str(PROBE)] + [str(a) for a in args], env=e,
                          capture_output=True, text=True, timeout=timeout)
    r = Run(proc)
    for secret in rvhttpd.SECRETS:
        assert secret not in r.out and secret not in r.err, \
            "a token in the probe's output:\n%r" % r
    return r


def run_json(*args, **kw):
    r = run("--json", *args, **kw)
    return r, json.loads(r.out)
