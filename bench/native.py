#!/usr/bin/python3
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""The native phase of make bench: exact user-space instructions per
request on the real CPU (SHA extensions included), counted by
bench/stepcount single-stepping every thread of the one httpd child.

    python3 bench/run.py --native [--quick]     (or python3 bench/native.py)

Three servers from the integration harness (rvhttpd.Httpd, event MPM, one
child, LogLevel warn): one without the module (its LoadModule line taken
out of the harness's configuration) and with `Require expr` on both
headers in <Location /redox/>; one with the module and 1 token there; one
with 10,000 tokens.  Each scenario sends the same request over one
keep-alive connection: a warm-up, then 5 batches of 1 request, each
batch between two counts taken while every thread of the child waits in
the kernel.  Single-stepped, a request takes a second or two, so most pay
httpd's once-a-second time caches (~1,400 instructions) and a quick one
now and then does not: each batch starts just after a whole second, and
the figure is the median over the batches.  The module's own instructions
are those of every call into its r-xp mapping, what it calls included.
--quick: one batch per scenario (a smoke run of every path, ~25 s).
Prints the table beside the targets (a missed target is reported, never
an error) and writes bench/out/native.json and native.md.
"""

import argparse
import json
import os
import queue
import re
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'tests', 'integration'))
# server roots under build/, not in the integration suite's gen/
os.environ.setdefault('RV_GEN_DIR', os.path.join(TOP, 'build', 'native'))
import rvhttpd  # noqa: E402  (the integration harness's launcher)

STEPCOUNT = os.path.join(TOP, 'bench', 'stepcount')
OUT = os.path.join(TOP, 'bench', 'out')
TOKENS_MANY = 10000
STATIC = ('{"status":"ok","source":"mod_redox_verify native bench"}'
          .ljust(199, '.') + '\n').encode()

FULL = dict(warmup=1, batches=5, n=1)
QUICK = dict(warmup=1, batches=1, n=1)

# (key, server, path, token, status, what it is)
SCENARIOS = [
    ('base', 'plain', '/open/static.txt', 'tok1', 200,
     'no access control (module not loaded)'),
    ('expr', 'plain', '/redox/static.txt', 'tok1', 200,
     'Require expr on both headers, accepted'),
    ('exprrej', 'plain', '/redox/static.txt', 'wrong', 403,
     'Require expr refused (logs AH01630)'),
    ('mod1', 'mod1', '/redox/static.txt', 'tok1', 200,
     'RedoxVerify, 1 token, accepted'),
    ('mod10k', 'mod10k', '/redox/static.txt', 'many', 200,
     'RedoxVerify, 10,000 tokens, accepted'),
    ('rej', 'mod1', '/redox/static.txt', 'wrong', 401,
     'RedoxVerify refused (denial logged)'),
    ('out', 'mod1', '/open/static.txt', 'tok1', 200,
     'module configured elsewhere, request outside'),
]

# Where every thread waits in the kernel ('S'): no instruction runs.
QUIET_READS = 3
QUIET_GAP = 0.02


class Unavailable(Exception):
    """The machine does not let this run (no ptrace, no tracer)."""


def log(msg):
    print(msg, flush=True)


def token_headers(tok):
    return {'Authorization': 'Bearer ' + tok, 'verification-token': tok}


# ---------------------------------------------------------------------
# servers

def server_body(kind, tokens, tok1):
    lines = [
        # the harness's server logs at trace8; a site logs at warn
        'LogLevel warn',
        'KeepAlive On',
        'MaxKeepAliveRequests 0',
        'KeepAliveTimeout 120',
        'Timeout 120',
        'EnableMMAP Off',
        'EnableSendfile Off',
        # one child with few threads: the one process the tracer follows
        'StartServers 1',
        'ServerLimit 1',
        'ThreadsPerChild 4',
        'MaxRequestWorkers 4',
        'MinSpareThreads 1',
        'MaxSpareThreads 8',
        '<Location /redox/>',
    ]
    if kind == 'plain':
        lines.append("    Require expr \"%%{HTTP:Authorization} == 'Bearer %s'"
                     " && %%{HTTP:verification-token} == '%s'\"" % (tok1, tok1))
    else:
        lines.append('    RedoxVerify On')
        lines += ['    RedoxVerificationToken sender%05d %s' % (i, t)
                  for i, t in enumerate(tokens)]
    lines.append('</Location>')
    return '\n'.join(lines) + '\n'


def make_server(kind, tokens, tok1):
    h = rvhttpd.Httpd('native-' + kind, allowed=[r'AH01630'], lean=True)
    for d in ('redox', 'open'):
        h.write('htdocs/%s/static.txt' % d, STATIC)
    h.write_conf(server_body(kind, tokens, tok1))
    if kind == 'plain':
        # The baseline has no module: the harness loads it everywhere (and
        # names it in its LogLevel, which the body sets again).
        text = h.conf.read_text()
        lean, n = re.subn(r'(?m)^(LoadModule redox_verify_module |'
                          r'LogLevel .*redox_verify).*\n', '', text)
        if n != 2:
            raise RuntimeError('native: no LoadModule line of the module in '
                               'the harness configuration %s' % h.conf)
        h.write(os.path.relpath(h.conf, h.root), lean)
    return h


def child_of(srv):
    """The one child of the httpd parent, once it has started its threads
    (the listener last)."""
    def started():
        kids = srv.children()
        try:
            return len(kids) == 1 and len(
                os.listdir('/proc/%d/task' % kids[0])) >= 6 and kids[0]
        except OSError:
            return None

    child = rvhttpd.wait_until(started)
    if not child:
        raise RuntimeError('native: httpd %d has no single child with its '
                           'threads' % srv.pid())
    return child


def text_mapping(pid, path):
    """(start, end, file offset) of path's r-xp mapping in pid."""
    with open('/proc/%d/maps' % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[1] == 'r-xp' and \
                    os.path.realpath(parts[5]) == os.path.realpath(path):
                lo, hi = (int(x, 16) for x in parts[0].split('-'))
                return lo, hi, int(parts[2], 16)
    raise RuntimeError('native: %s is not mapped in process %d' % (path, pid))


def text_mappings(pid):
    out = []
    with open('/proc/%d/maps' % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[1] == 'r-xp':
                lo, hi = (int(x, 16) for x in parts[0].split('-'))
                out.append((lo, hi, int(parts[2], 16), parts[5]))
    return out


def quiet(pid, timeout=60):
    """Waits until every thread of pid is asleep in the kernel QUIET_READS
    times in a row: the request before is over, logging and clean-up
    included."""
    end = time.time() + timeout
    seen = 0
    while time.time() < end:
        states = []
        for t in os.listdir('/proc/%d/task' % pid):
            try:
                with open('/proc/%d/task/%s/stat' % (pid, t)) as f:
                    s = f.read()
                states.append(s[s.rindex(')') + 2])
            except OSError:
                pass
        seen = seen + 1 if states and all(s == 'S' for s in states) else 0
        if seen >= QUIET_READS:
            return
        time.sleep(QUIET_GAP)
    raise RuntimeError('native: httpd child %d never went idle' % pid)


# ---------------------------------------------------------------------
# the tracer

class Tracer:
    def __init__(self, pid, lo, hi):
        if not os.access(STEPCOUNT, os.X_OK):
            raise Unavailable('%s is missing (make bench builds it)'
                              % STEPCOUNT)
        self.pid = pid
        self.proc = subprocess.Popen(
            [STEPCOUNT, '-h', str(pid), '%x' % lo, '%x' % hi],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._line(30)
        if first is None or not first.startswith('ATTACHED '):
            self.proc.wait(10)
            raise Unavailable('stepcount could not attach to %d: %s'
                              % (pid, self.proc.stderr.read().strip()))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def _line(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def count(self):
        """(instructions, own instructions, {address: own instructions})
        since the last count; call it with the child quiet."""
        self.proc.send_signal(signal.SIGUSR1)
        total = own = None
        hist = {}
        while True:
            line = self._line(120)
            if line is None:
                raise RuntimeError('native: stepcount stopped answering')
            if line == 'END':
                return total, own, hist
            kind, _, rest = line.partition(' ')
            if kind == 'COUNT':
                total, own = (int(x) for x in rest.split())
            elif kind == 'H':
                a, c = rest.split()
                hist[int(a, 16)] = int(c)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------
# symbols: where the module's own instructions went

def breakdown(hist, maps, requests):
    """Per module function and per other object, own instructions per
    request, largest first."""
    mod_addrs = {}
    objs = {}
    for ip, c in hist.items():
        for lo, hi, off, path in maps:
            if lo <= ip < hi:
                if os.path.realpath(path) == os.path.realpath(
                        str(rvhttpd.module_path())):
                    mod_addrs[ip - lo + off] = mod_addrs.get(
                        ip - lo + off, 0) + c
                else:
                    name = os.path.basename(path)
                    objs[name] = objs.get(name, 0) + c
                break
        else:
            objs['?'] = objs.get('?', 0) + c
    funcs = {}
    if mod_addrs:
        addrs = sorted(mod_addrs)
        r = subprocess.run(['addr2line', '-f', '-e',
                            str(rvhttpd.module_path())]
                           + ['%x' % a for a in addrs],
                           capture_output=True, text=True)
        names = r.stdout.splitlines()[0::2]
        if len(names) != len(addrs):
            names = ['?'] * len(addrs)
        for a, name in zip(addrs, names):
            key = 'module: ' + name
            funcs[key] = funcs.get(key, 0) + mod_addrs[a]
    rows = [(k, v / requests) for k, v in funcs.items()]
    rows += [(k, v / requests) for k, v in objs.items()]
    return sorted(rows, key=lambda kv: -kv[1])


# ---------------------------------------------------------------------
# a scenario

def send(conn, sc, headers):
    resp = conn.send('GET', sc['path'], headers=headers)
    data = resp.body
    if resp.status != sc['status']:
        raise RuntimeError('native: %s: GET %s gave %d, expected %d: %r'
                           % (sc['key'], sc['path'], resp.status,
                              sc['status'], data[:200]))
    if sc['status'] == 200 and data != STATIC:
        raise RuntimeError('native: %s: unexpected body %r'
                           % (sc['key'], data[:200]))


def measure(sc, srv, child, tracer, p):
    conn = rvhttpd.KeepAlive(srv.port, timeout=300)
    try:
        for _ in range(p['warmup']):
            send(conn, sc, sc['headers'])
        quiet(child)
        tracer.count()                      # from here on, this scenario
        batches = []
        hist = {}
        for _ in range(p['batches']):
            # the same point of a second each time, for the time caches
            time.sleep(1 - time.time() % 1)
            for _ in range(p['n']):
                send(conn, sc, sc['headers'])
            quiet(child)
            total, own, h = tracer.count()
            batches.append({'total': total / p['n'], 'own': own / p['n']})
            for a, c in h.items():
                hist[a] = hist.get(a, 0) + c
    finally:
        conn.close()
    return {'key': sc['key'], 'what': sc['what'], 'batches': batches,
            'total': statistics.median(b['total'] for b in batches),
            'own': statistics.median(b['own'] for b in batches),
            'min_total': min(b['total'] for b in batches),
            'max_total': max(b['total'] for b in batches),
            'breakdown': breakdown(hist, text_mappings(child),
                                   p['batches'] * p['n'])}


# ---------------------------------------------------------------------
# targets

def targets(res):
    """The targets of the scenarios that ran: which row each sits beside,
    what it asks (with the limit in instructions), the figure, PASS."""
    rows = []

    def total(k):
        return res[k]['total']

    def fmt(n):
        return '{:,.0f}'.format(n)

    if 'mod1' in res and 'expr' in res:
        r = total('mod1') / total('expr')
        rows.append(('mod1', '<= %s (0.95x expr)' % fmt(0.95 * total('expr')),
                     '%.3fx' % r, r <= 0.95))
    if 'mod1' in res:
        own = res['mod1']['own']
        rows.append(('mod1', 'own <= 1,500', fmt(own), own <= 1500))
    if 'mod10k' in res and 'mod1' in res:
        d = total('mod10k') / total('mod1') - 1
        rows.append(('mod10k', '%s-%s (mod1 +-1%%)'
                     % (fmt(0.99 * total('mod1')), fmt(1.01 * total('mod1'))),
                     '%+.2f%%' % (100 * d), abs(d) <= 0.01))
    if 'rej' in res and 'exprrej' in res:
        r = total('rej') / total('exprrej')
        rows.append(('rej', '<= %s (1.00x exprrej)' % fmt(total('exprrej')),
                     '%.3fx' % r, r <= 1.00))
    if 'out' in res:
        # the module's work outside a verified scope: its own calls (the
        # total beside base also holds httpd's calls of the hooks and its
        # walk of the other server's configuration)
        own = res['out']['own']
        extra = (' (total %+d vs base)' % (total('out') - total('base'))
                 if 'base' in res else '')
        rows.append(('out', 'own < 100' + extra, fmt(own), own < 100))
    return [{'scenario': k, 'target': t, 'figure': f, 'pass': ok}
            for k, t, f, ok in rows]


def table(res, trows, p, quick, seconds):
    row = '%-8s %8s %15s %7s  %-26s %8s  %s'
    lines = ['Native instructions per request (ptrace single-step, user '
             'space, all threads of the httpd child)%s: median over %d '
             'batch(es) of %d keep-alive request(s) after %d warm-up.'
             % (' (QUICK: smoke test only)' if quick else '',
                p['batches'], p['n'], p['warmup']),
             '',
             (row % ('scenario', 'total', 'min-max', 'own', 'target',
                     'measured', '')).rstrip(),
             row % ('-' * 8, '-' * 8, '-' * 15, '-' * 7, '-' * 26, '-' * 8,
                    '----')]
    for k, v in res.items():
        mine = [t for t in trows if t['scenario'] == k] or [None]
        for i, t in enumerate(mine):
            cells = [k, '{:,.0f}'.format(v['total']),
                     '{:,.0f}-{:,.0f}'.format(v['min_total'], v['max_total']),
                     '{:,.0f}'.format(v['own'])] if i == 0 else [''] * 4
            cells += [t['target'], t['figure'],
                      'PASS' if t['pass'] else 'MISS'] if t else [''] * 3
            lines.append((row % tuple(cells)).rstrip())
    lines += ['', 'own: the module\'s own instructions (calls into its code, '
              'what they call included).']
    lines += ['%-8s %s' % (k, v['what']) for k, v in res.items()]
    for k in ('mod1', 'rej'):
        if k in res and res[k]['breakdown']:
            lines += ['', "%s: the module's own instructions per request by "
                      'function (module) or object (what it calls):' % k]
            for name, n in res[k]['breakdown'][:10]:
                lines.append('  %8s  %s' % ('{:,.0f}'.format(n), name))
    lines += ['', 'Native phase took %.0f s.' % seconds]
    return '\n'.join(lines)


# ---------------------------------------------------------------------

def run(quick=False):
    """Runs the native phase; returns its results (also written to
    bench/out/native.json), or raises Unavailable."""
    t0 = time.time()
    p = dict(QUICK if quick else FULL)
    # Tracer and httpd on one core (they inherit it): each step hands the
    # CPU back and forth, which is quicker there than across cores, and
    # the other core stays free.
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(cpus)})
    tok1 = secrets.token_hex(32)
    many = [secrets.token_hex(32) for _ in range(TOKENS_MANY)]
    tokens = {'tok1': tok1, 'many': many[TOKENS_MANY // 2],
              'wrong': secrets.token_hex(32)}
    scen = [dict(key=k, server=s, path=path, status=st, what=what,
                 headers=token_headers(tokens[tk]))
            for k, s, path, tk, st, what in SCENARIOS]
    kinds = sorted({sc['server'] for sc in scen})
    servers = {}
    res = {}
    try:
        for kind in kinds:
            servers[kind] = make_server(
                kind, many if kind == 'mod10k' else [tok1], tok1)
            servers[kind].start()
        for kind in kinds:
            srv = servers[kind]
            child = child_of(srv)
            # first requests outside the tracer: every thread started,
            # the caches filled
            conn = rvhttpd.KeepAlive(srv.port, timeout=60)
            for sc in scen:
                if sc['server'] == kind:
                    send(conn, sc, sc['headers'])
            conn.close()
            quiet(child)
            lo, hi, _ = text_mapping(child, rvhttpd.module_path()) \
                if kind != 'plain' else (1, 2, 0)
            tracer = Tracer(child, lo, hi)
            try:
                for sc in scen:
                    if sc['server'] == kind:
                        r = measure(sc, srv, child, tracer, p)
                        res[sc['key']] = r
                        log('  native %-8s %10s instructions per request '
                            '(module own %s)'
                            % (sc['key'], '{:,.0f}'.format(r['total']),
                               '{:,.0f}'.format(r['own'])))
            finally:
                tracer.stop()
    finally:
        for srv in servers.values():
            srv.stop(check=False)
        os.sched_setaffinity(0, cpus)
    bad = []
    for srv in servers.values():
        bad += srv.new_unexpected_lines()
    if bad:
        raise RuntimeError('native: unexpected error-log lines:\n'
                           + '\n'.join(bad[:10]))
    res = {sc['key']: res[sc['key']] for sc in scen}
    trows = targets(res)
    seconds = time.time() - t0
    text = table(res, trows, p, quick, seconds)
    os.makedirs(OUT, exist_ok=True)
    out = {'quick': quick, 'params': p, 'method':
           'median over batches of instructions per request',
           'scenarios': res, 'targets': trows, 'seconds': seconds,
           'table': text}
    with open(os.path.join(OUT, 'native.json'), 'w') as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(OUT, 'native.md'), 'w') as f:
        f.write(text + '\n')
    return out


def main(quick=False, required=True):
    """Runs the phase and prints the table; returns 0, or 1 when it could
    not run and required (targets missed are reported, not failed)."""
    try:
        out = run(quick)
    except Unavailable as e:
        log('native: not available: %s' % e)
        return 1 if required else 0
    print('\n' + out['table'], flush=True)
    return 0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true', help='a smoke run')
    sys.exit(main(ap.parse_args().quick))
