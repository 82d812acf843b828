"""Graceful restarts reload the module in the parent each time: nothing it
takes per load may run out.  (A thread key made per load did, and the parent
crashed after about 1,020 graceful restarts.)"""

import os
import signal
import time

import pytest

import rvhttpd
from rvhttpd import both, new_token

RESTARTS = 1100
TOK = {}


@pytest.fixture(scope="module")
def srv(backend):
    TOK["ok"] = new_token()
    # lean: only the modules this config needs, so each restart is quick
    yield from rvhttpd.serving("restarts", rvhttpd.verified(
        "/proxy/", TOK, proxy=(backend.port, "/restarts/")), backend, lean=True)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_rv_core_survives_many_graceful_restarts(srv):
    pid = srv.pid()
    log = srv.error_log
    offset = log.stat().st_size
    done = 0
    deadline = time.time() + 240
    while done < RESTARTS:
        os.kill(pid, signal.SIGUSR1)
        # wait for this generation to come up before asking for the next
        while True:
            with open(log, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            if b"resuming normal operations" in chunk:
                offset += chunk.index(b"resuming normal operations") + 1
                break
            assert alive(pid), "parent died after %d restarts" % done
            assert time.time() < deadline, "stuck after %d restarts" % done
            time.sleep(0.002)
        done += 1
    assert srv.pid() == pid and alive(pid)
    r = srv.request("/proxy/{rid}", headers=both(TOK["ok"]))
    assert r.status == 200, (r, srv.error_log_tail())
    r = srv.request("/proxy/{rid}")
    assert r.status == 401
