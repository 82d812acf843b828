"""The check is mandatory: `Satisfy Any` (mod_access_compat) lets a request
through when any access check passes, so the module's fixup denies a request
that came past a failed token check."""

import pytest

import rvhttpd
from rvhttpd import both, new_token

TOK = {}


@pytest.fixture(scope="module")
def sat(backend):
    TOK["ok"] = new_token()
    yield from rvhttpd.serving("satisfy", (
        'LoadModule access_compat_module "/usr/lib/apache2/modules/mod_access_compat.so"\n'
        + rvhttpd.verified("/proxy/", {"ok": TOK["ok"]}, "Satisfy Any", "Require ip 127.0.0.1",
                           proxy=(backend.port, "/satisfy/"))), backend)


def test_rv_core_satisfy_any_cannot_bypass(sat):
    r = sat.request("/proxy/{rid}")
    assert r.status == 401, r
    assert r.backend_requests == []
    # one denial line, not one from the access checker and one from the fixup
    # (the fixup's own note is at debug)
    denied = [l for l in sat.settled_error_lines(r.rid)
              if ":error]" in l and "redox_verify: denied" in l]
    assert len(denied) == 1 and "denied missing" in denied[0], denied


def test_rv_core_satisfy_any_accepts_token(sat):
    r = sat.request("/proxy/{rid}", headers=both(TOK["ok"]))
    assert r.status == 200, r
    assert len(r.backend_requests) == 1
