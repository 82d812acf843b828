"""Loopback ports for every test harness (the integration and install
suites, tests/load/run, bench/run.py), without the bind-close-reuse race.

Asking the kernel for a free port (bind port 0, read it, close) and handing
the number to httpd later races with the rest of the machine: until httpd
binds it, the kernel may give the same ephemeral port to any outgoing
connection, and any other suite doing the same trick may get it too.  Here
instead:

- ports come from below the kernel's ephemeral range
  (net.ipv4.ip_local_port_range, 32768-60999 by default), where the kernel
  never picks a port by itself, for a connect() or a bind to port 0;
- that span is cut into blocks of BLOCK ports; a process claims a block
  by binding the abstract Unix socket "@rv-ports-<first port>" and keeps
  it until it exits (the kernel lets go of it on any exit, a crash
  included), so two processes, two suites or two work trees never share a
  port.  Abstract sockets belong to the network namespace, as the ports
  do, not to a file system: a suite in a chroot (make fresh-test) and one
  outside it see the same claims;
- within its blocks, a process hands out ports round robin, skipping the
  ones it holds (until release()) and the ones something outside this
  scheme is bound to (a test bind), claiming one more block when its own
  are all taken;
- what remains, a process outside this scheme binding one of our ports in
  the moment between that test and httpd's own bind, is met by a retry of
  the start on new ports (rvhttpd.Httpd.start).
"""

import socket
import threading

BLOCK = 64
FIRST = 20000           # lowest port handed out

_lock = threading.Lock()
_blocks = []            # (first port, claim socket) of the blocks this process owns
_held = set()           # ports handed out and not released
_next = 0               # round-robin index into the ports of _blocks


def _span():
    """[FIRST, end): the ports below the ephemeral range, in whole blocks."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    end = FIRST + (low - FIRST) // BLOCK * BLOCK
    if end - FIRST < BLOCK:
        raise RuntimeError("rvports: no room for a block of %d ports between %d and the "
                           "ephemeral range (net.ipv4.ip_local_port_range starts at %d)"
                           % (BLOCK, FIRST, low))
    return FIRST, end


def _claim_block():
    """Claims the first block no other process holds; returns its first port."""
    start, end = _span()
    mine = {first for first, _ in _blocks}
    for first in range(start, end, BLOCK):
        if first in mine:
            continue
        claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            claim.bind("\0rv-ports-%d" % first)
        except OSError:             # EADDRINUSE: another process has it
            claim.close()
            continue
        _blocks.append((first, claim))  # kept open: the claim lives with the process
        return first
    raise RuntimeError("rvports: every block of %d ports in %d-%d is claimed by another "
                       "process (ss -xlp | grep rv-ports)" % (BLOCK, start, end - 1))


def _bindable(port):
    """Nothing else is bound to 127.0.0.1:port (SO_REUSEADDR, as httpd
    binds, so a connection in TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port():
    """One loopback port that this process alone may bind, held until
    release(port)."""
    global _next
    with _lock:
        while True:
            if not _blocks:
                _claim_block()
            ports = [first + i for first, _ in _blocks for i in range(BLOCK)]
            for _ in range(len(ports)):
                p = ports[_next % len(ports)]
                _next += 1
                if p not in _held and _bindable(p):
                    _held.add(p)
                    return p
            _claim_block()


def ports(n):
    return [port() for _ in range(n)]


def release(*released):
    """Hand ports back for reuse by this process (a stopped server's)."""
    with _lock:
        for p in released:
            _held.discard(p)
