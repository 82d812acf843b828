#!/usr/bin/python3
# Licensed under the Apache License, Version 2.0 (see LICENSE).
"""make bench: what mod_redox_verify costs a request, next to no check and
next to a hand-written `Require expr`, measured four ways in one run:

  load        wrk against real Apache instances on loopback, the variants
              alternated in pairs (A B, then B A, ...) so that drift of the
              machine cancels; requests/s, p50/p99 latency and the httpd
              processes' own CPU time per request
  callgrind   instructions per request under valgrind, (I2 - I1)/(N2 - N1)
              over N1 and N2 requests on one keep-alive connection
  micro       rv_verify() alone, 1, 100 and 10,000 tokens (bench/micro)
  startup     `apache2 -t` time and a child's resident memory, 10,000
              tokens against 1

Every request is checked before it is timed (status, body), and a run whose
responses are not the expected ones fails the bench: that is what the quick
mode (--quick, `make bench-quick`) is for in CI.  Missed targets never fail
it; they are reported.  Results go to bench/out/ (not in git).
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'tests', 'integration'))
# The integration suite's harness: its launcher (Httpd), config builder,
# client, port allocator (rvports) and process helpers.
import rvhttpd  # noqa: E402
import native  # noqa: E402  (bench/native.py: the native phase)

OUT = os.path.join(TOP, 'bench', 'out')
MODULE = str(rvhttpd.MODULE)
MICRO = os.path.join(TOP, 'bench', 'micro')
MODS = str(rvhttpd.MODDIR)
MODULE_OBJ = os.path.basename(MODULE)

# The server (and its proxy backend) gets one core, wrk and this script
# the other.  On a 2-core machine that is all there is.
SERVER_CPU = '0'
CLIENT_CPU = '1'

STATIC_BYTES = 200
POST_BYTES = 64 * 1024
TOKENS_MANY = 10000

# retry_budget: seconds of repeated pair runs allowed in all; a new round
# starts only while the bench has run less than round_deadline seconds, so
# a noisy machine gives fewer rounds rather than a bench over 10 minutes.
FULL = dict(rounds=5, duration=2, warmup=1, connections=16, threads=64,
            cg_n1=100, cg_n2=600, micro_iterations=5000,
            startup_repeats=5, retries=1, spread_limit=0.25,
            retry_budget=60, round_deadline=330)
QUICK = dict(rounds=1, duration=1, warmup=0, connections=8, threads=32,
             cg_n1=8, cg_n2=28, micro_iterations=500,
             startup_repeats=1, retries=0, spread_limit=1.0,
             retry_budget=0, round_deadline=60)
# Variants run under callgrind; quick mode keeps the harness honest with a
# few of them.
CG_FULL = ['base', 'mod1', 'mod10k', 'rej', 'rejq', 'expr', 'exprrej', 'hs',
           'pbase', 'pmod', 'pbase_post', 'pmod_post']
CG_QUICK = ['base', 'mod1']
CG_THREADS = 4


def log(msg):
    print(msg, flush=True)


def cpu_ns(pids):
    """CPU time of every thread of these processes, in ns (schedstat)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir('/proc/%d/task' % pid)
        except OSError:
            continue
        for t in tasks:
            try:
                with open('/proc/%d/task/%s/schedstat' % (pid, t)) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def rss_kib(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------------
# Apache instances

class Apache(rvhttpd.Httpd):
    """One generated Apache (the test harness's Httpd, started through
    taskset on the server's core): event MPM, a single child with more
    threads than wrk has connections, keep-alive without a request limit,
    access log on, EnableMMAP Off (else munmap's TLB flushes dominate)."""

    def __init__(self, bench, name, body, modules=(), docroot=None,
                 backend=None, threads=None):
        super().__init__(name, root=os.path.join(bench.root, name),
                         launcher=['taskset', '-c', SERVER_CPU])
        self.bench = bench
        self.body = body
        self.modules = list(modules)
        self.docroot = docroot or bench.docroot
        self.backend = backend
        self.threads = threads or bench.p['threads']
        self.write(self.conf, self.port, self.root)

    def text(self, port, rundir, threads=None):
        loads = [('mpm_event_module', 'mod_mpm_event.so'),
                 ('authz_core_module', 'mod_authz_core.so'),
                 ('mime_module', 'mod_mime.so')] + self.modules
        lines = rvhttpd.server_conf(rundir, [port], loads, loglevel='warn',
                                    log_format='%h %l %u %t \\"%r\\" %>s %b',
                                    admin=None)
        t = threads or self.threads
        lines += [
            'DocumentRoot "%s"' % self.docroot,
            '<Directory />',
            '    AllowOverride None',
            '</Directory>',
            'EnableMMAP Off',
            'EnableSendfile Off',
            'KeepAlive On',
            'MaxKeepAliveRequests 0',
            'KeepAliveTimeout 30',
            'StartServers 1',
            'ServerLimit 1',
            'ThreadLimit %d' % t,
            'ThreadsPerChild %d' % t,
            'MaxRequestWorkers %d' % t,
            'MinSpareThreads 1',
            'MaxSpareThreads %d' % (2 * t),
            'MaxConnectionsPerChild 0',
            self.body,
        ]
        return '\n'.join(lines) + '\n'

    def write(self, path, port, rundir, threads=None):
        for d in ('logs', 'run'):
            os.makedirs(os.path.join(rundir, d), exist_ok=True)
        rvhttpd.write_file(path, self.text(port, rundir, threads))

    def start(self):
        try:
            super().start()
        except RuntimeError as e:
            raise SystemExit('bench: %s did not start:\n%s' % (self.name, e))
        self.bench.started.append(self.pid())
        # The parent listens before it forks the child: a connection can
        # succeed while there is no child yet to count CPU time for.
        if not rvhttpd.wait_until(self.children, 20):
            raise SystemExit('bench: %s has no child process' % self.name)

    def pids(self):
        """The parent and its children now (and the backend's)."""
        pids = [self.pid()] + self.children()
        if self.backend is not None:
            pids += self.backend.pids()
        return pids

    def child_rss_kib(self):
        kids = self.children()
        return max(rss_kib(k) for k in kids) if kids else 0


# ---------------------------------------------------------------------
# Requests

def token_headers(tok):
    return dict(rvhttpd.both(tok))


class Request:
    """One kind of request.  rotate: other header sets that the requests
    sent from here (validation, callgrind) take in turn, so that a figure
    for 10,000 tokens is an average over where tokens sit in the table,
    not the luck of one token; wrk sends `headers` only."""

    def __init__(self, method, path, headers, body=None, status=200,
                 body_is=None, rotate=None):
        self.method = method
        self.path = path
        self.headers = dict(headers)
        self.body = body
        self.status = status
        self.body_is = body_is
        self.rotate = rotate or [self.headers]
        self.sent = 0

    def send(self, conn, i=None):
        """One request on conn (an rvhttpd.KeepAlive); the Response."""
        if i is None:
            i, self.sent = self.sent, self.sent + 1
        return conn.send(self.method, self.path, self.rotate[i % len(self.rotate)],
                         self.body)

    def check(self, resp, what):
        data = resp.body
        if resp.status != self.status:
            raise SystemExit('bench: %s: %s %s gave %d, expected %d: %r'
                             % (what, self.method, self.path, resp.status,
                                self.status, data[:200]))
        if self.body_is is not None and data.strip() != self.body_is:
            raise SystemExit('bench: %s: unexpected body %r (expected %r)'
                             % (what, data[:200], self.body_is))

    def lua(self, path, bodyfile):
        lines = ['wrk.method = "%s"' % self.method]
        for k, v in self.headers.items():
            lines.append('wrk.headers["%s"] = "%s"' % (k, v))
        if self.body is not None:
            with open(bodyfile, 'wb') as f:
                f.write(self.body)
            lines += ['local f = assert(io.open("%s", "rb"))' % bodyfile,
                      'wrk.body = f:read("*a")',
                      'f:close()']
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')


class Variant:
    def __init__(self, key, label, server, request, baseline=None,
                 available=True, note=''):
        self.key = key
        self.label = label
        self.server = server
        self.request = request
        self.baseline = baseline
        self.available = available
        self.note = note
        self.runs = []       # load runs of this variant
        self.pairs = []      # (this run, its baseline's run) per round
        self.cg = None       # callgrind result per request


# ---------------------------------------------------------------------
# wrk

def parse_duration(s):
    m = re.match(r'([\d.]+)(us|ms|s|m)$', s)
    if not m:
        return None
    return float(m.group(1)) * {'us': 1e-3, 'ms': 1.0, 's': 1e3,
                                'm': 60e3}[m.group(2)]


def parse_wrk(out):
    r = {'p50_ms': None, 'p99_ms': None, 'socket_errors': 0, 'non2xx': 0}
    m = re.search(r'^\s*(\d+) requests in ([\d.]+)(\w+)', out, re.M)
    if m:
        r['requests'] = int(m.group(1))
    m = re.search(r'^Requests/sec:\s+([\d.]+)', out, re.M)
    r['wrk_rps'] = float(m.group(1)) if m else 0.0
    for pct, key in (('50', 'p50_ms'), ('99', 'p99_ms')):
        m = re.search(r'^\s+%s%%\s+(\S+)' % pct, out, re.M)
        if m:
            r[key] = parse_duration(m.group(1))
    m = re.search(r'Socket errors: connect (\d+), read (\d+), write (\d+), '
                  r'timeout (\d+)', out)
    if m:
        r['socket_errors'] = sum(int(x) for x in m.groups())
    m = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    if m:
        r['non2xx'] = int(m.group(1))
    return r


def count_lines(path):
    n = 0
    with open(path, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return n
            n += b.count(b'\n')


# ---------------------------------------------------------------------
# callgrind

def parse_callgrind(path):
    """Totals; per function (object, name) its self and inclusive Ir; per
    (caller object, caller, callee) the calls and their inclusive Ir."""
    names = {'fn': {}, 'ob': {}}
    kind = {'fn': 'fn', 'cfn': 'fn', 'ob': 'ob', 'cob': 'ob'}
    funcs = {}
    calls_to = {}
    ob = fn = None
    pending_call = None
    total = 0

    def name(k, v):
        m = re.match(r'\((\d+)\)(?: (.*))?$', v)
        if not m:
            return v
        table = names[kind[k]]
        if m.group(2) is not None:
            # pthread_once@@GLIBC_2.34 and the like: the symbol version
            # only gets in the way.
            table[m.group(1)] = m.group(2).split('@@')[0]
        return table.get(m.group(1), m.group(1))

    def entry(o, f):
        return funcs.setdefault((os.path.basename(o or '?'), f),
                                {'self': 0, 'incl': 0})

    cfn = None
    with open(path) as fh:
        for line in fh:
            line = line.rstrip('\n')
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in '+-*':
                parts = line.split()
                ir = int(parts[1]) if len(parts) > 1 else 0
                e = entry(ob, fn)
                if pending_call is not None:
                    e['incl'] += ir
                    # Calls are kept per caller, so that what the module's
                    # own functions call can be told from the rest.
                    c = calls_to.setdefault(
                        (os.path.basename(ob or '?'), fn, pending_call[0]),
                        [0, 0])
                    c[0] += pending_call[1]
                    c[1] += ir
                    pending_call = None
                else:
                    e['self'] += ir
                    e['incl'] += ir
                continue
            key, _, val = line.partition('=')
            if key in ('ob', 'cob'):
                v = name(key, val)
                if key == 'ob':
                    ob = v
            elif key in ('fn', 'cfn'):
                v = name(key, val)
                if key == 'fn':
                    fn = v
                else:
                    cfn = v
            elif key == 'calls':
                pending_call = (cfn, int(val.split()[0]))
            elif line.startswith('totals:') or line.startswith('summary:'):
                total = int(line.split()[1])
    return {'total': total, 'funcs': funcs, 'calls': calls_to}


# ---------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.p = dict(QUICK if args.quick else FULL)
        for k in ('rounds', 'duration'):
            if getattr(args, k) is not None:
                self.p[k] = getattr(args, k)
        self.started = []
        self.servers = []
        self.root = tempfile.mkdtemp(prefix='redox-bench.')
        os.chmod(self.root, 0o755)
        rvhttpd.GEN_DIR = Path(self.root)     # where config_test writes
        self.docroot = os.path.join(self.root, 'htdocs')
        self.t0 = time.time()
        self.notes = []
        self.timings = []
        self.repeats = self.rounds_done = 0
        self.micro_rows = []
        self.startup_res = None

    # -- setup ---------------------------------------------------------

    def prepare(self):
        os.makedirs(os.path.join(self.docroot, 'redox'))
        static = ('{"status":"ok","source":"mod_redox_verify bench"}'
                  .ljust(STATIC_BYTES - 1, '.') + '\n')
        self.static_body = static.encode()
        with open(os.path.join(self.docroot, 'redox', 'static.txt'),
                  'w') as f:
            f.write(static)
        with open(os.path.join(self.root, 'hook.lua'), 'w') as f:
            f.write('function handle(r)\n'
                    '    r.content_type = "text/plain"\n'
                    '    r:puts("ok\\n")\n'
                    '    return apache2.OK\n'
                    'end\n')
        for d, _, files in os.walk(self.root):
            os.chmod(d, 0o755)
            for fn in files:
                os.chmod(os.path.join(d, fn), 0o644)
        self.tok1 = secrets.token_hex(32)
        self.tokens = [secrets.token_hex(32) for _ in range(TOKENS_MANY)]
        self.tok_many = self.tokens[TOKENS_MANY // 2]
        self.tok_wrong = secrets.token_hex(32)
        self.challenge = str(uuid.uuid4())
        self.challenge_ok = self.detect_challenge()

    def detect_challenge(self):
        """Is the handshake (RedoxChallenge) in this build of the module?"""
        r = rvhttpd.config_test('probe', 'RedoxChallenge On\n')
        if r.rc == 0:
            return True
        if "Invalid command 'RedoxChallenge'" in r.output:
            return False
        raise SystemExit('bench: probing RedoxChallenge failed:\n' + r.output)

    def server(self, *a, **kw):
        s = Apache(self, *a, **kw)
        self.servers.append(s)
        return s

    def build_servers(self):
        mod = [('redox_verify_module', MODULE)]
        proxy = [('proxy_module', 'mod_proxy.so'),
                 ('proxy_http_module', 'mod_proxy_http.so')]

        def location(lines):
            return '<Location /redox/>\n%s</Location>' % ''.join(
                '    %s\n' % l for l in lines if l)

        def module_location(tokens, extra=()):
            lines = ['RedoxVerify On']
            if self.challenge_ok:
                lines.append('RedoxChallenge On')
            lines += ['RedoxVerificationToken sender%05d %s' % (i, t)
                      for i, t in enumerate(tokens)]
            return location(lines + list(extra))

        s = {}
        s['base'] = self.server('base', '')
        s['copy'] = self.server('copy', '')
        s['mod1'] = self.server('mod1', module_location([self.tok1]), mod)
        s['mod1q'] = self.server('mod1q', 'LogLevel warn redox_verify:crit\n'
                                 + module_location([self.tok1]), mod)
        s['mod10k'] = self.server('mod10k', module_location(self.tokens),
                                  mod)
        # httpd's own cost of 10,000 configuration lines: the 1-token server
        # plus 10,000 lines as long as the token lines of a directive that
        # keeps nothing but a pointer (each replaces the one before).
        s['def10k'] = self.server('def10k', module_location(
            [self.tok1], ['RedoxSourceHeader X-%05d-%s' % (i, t.replace('_', '-'))
                          for i, t in enumerate(self.tokens)]), mod)
        expr = ("Require expr \"%%{HTTP:Authorization} == 'Bearer %s' && "
                "%%{HTTP:verification-token} == '%s'\"" % (self.tok1,
                                                          self.tok1))
        s['expr'] = self.server('expr', location([expr]))

        backend_body = ('LoadModule lua_module %s/mod_lua.so\n'
                        'LuaScope thread\nLuaCodeCache forever\n'
                        'LuaMapHandler ^/hook$ "%s/hook.lua" handle'
                        % (MODS, self.root))
        backend_threads = 2 * self.p['threads']
        for key in ('pbase', 'pmod'):
            back = self.server(key + '-backend', backend_body,
                               docroot=os.path.join(self.docroot, 'redox'),
                               threads=backend_threads)
            pp = 'ProxyPass http://127.0.0.1:%d/' % back.port
            if key == 'pbase':
                body = location([pp])
            else:
                body = module_location([self.tok1], [pp])
            s[key] = self.server(key, body, proxy
                                 + (mod if key == 'pmod' else []),
                                 backend=back)
        self.s = s

        static_get = '/redox/static.txt'
        get1 = Request('GET', static_get, token_headers(self.tok1),
                       body_is=self.static_body.strip())
        post_hdr = dict(token_headers(self.tok1))
        post_hdr['Content-Type'] = 'application/octet-stream'
        post = Request('POST', '/redox/hook', post_hdr, b'x' * POST_BYTES,
                       body_is=b'ok')
        hs_body = json.dumps({'verification-token': self.tok1,
                              'challenge': self.challenge},
                             separators=(',', ':')).encode()
        V = {}

        def add(*a, **kw):
            v = Variant(*a, **kw)
            V[v.key] = v
            return v

        add('base', '1 baseline: static file, no check', s['base'], get1)
        add('aa', '1 A/A: identical copy of the baseline', s['copy'], get1,
            'base')
        add('mod1', '2 module, 1 token, accept', s['mod1'], get1, 'base')
        add('mod10k', '3 module, 10,000 tokens, accept', s['mod10k'],
            Request('GET', static_get, token_headers(self.tok_many),
                    body_is=self.static_body.strip(),
                    rotate=[token_headers(t) for t in
                            self.tokens[::TOKENS_MANY // 500]]), 'base')
        add('rej', '4 module, reject (denial logged)', s['mod1'],
            Request('GET', static_get, token_headers(self.tok_wrong),
                    status=401), 'base')
        add('rejq', '4 module, reject, denial log off', s['mod1q'],
            Request('GET', static_get, token_headers(self.tok_wrong),
                    status=401), 'base',
            note='LogLevel redox_verify:crit: shows what the error-log '
                 'line costs')
        add('expr', '5 Require expr, accept', s['expr'], get1, 'base')
        add('exprrej', '5 Require expr, reject', s['expr'],
            Request('GET', static_get, token_headers(self.tok_wrong),
                    status=403), 'base')
        add('hs', '7 handshake answered by the module', s['mod1'],
            Request('POST', '/redox/hook',
                    {'Content-Type': 'application/json'}, hs_body,
                    body_is=self.challenge.encode()), 'base',
            available=self.challenge_ok,
            note='' if self.challenge_ok else
            'not available: this build has no RedoxChallenge directive')
        add('pbase', '6 proxied baseline, GET', s['pbase'],
            Request('GET', static_get, token_headers(self.tok1),
                    body_is=self.static_body.strip()))
        add('pmod', '6 proxied module, GET', s['pmod'],
            Request('GET', static_get, token_headers(self.tok1),
                    body_is=self.static_body.strip()), 'pbase')
        add('pbase_post', '6 proxied baseline, 64 KiB POST', s['pbase'],
            post)
        add('pmod_post', '6 proxied module, 64 KiB POST', s['pmod'], post,
            'pbase_post')
        self.V = V
        self.order = ['base', 'aa', 'mod1', 'mod10k', 'rej', 'rejq', 'expr',
                      'exprrej', 'hs', 'pbase', 'pmod', 'pbase_post',
                      'pmod_post']
        self.pairs = [(V[k].baseline, k) for k in self.order
                      if V[k].baseline and V[k].available]

    def start_servers(self):
        # Backends first: each proxy front has its own.
        for srv in sorted(self.servers, key=lambda x: x.backend is not None):
            srv.start()

    def validate(self):
        for key in self.order:
            v = self.V[key]
            if not v.available:
                continue
            conn = rvhttpd.KeepAlive(v.server.port)
            for _ in range(2):    # twice: the connection must stay open
                v.request.check(v.request.send(conn), v.label)
            conn.close()

    # -- load ------------------------------------------------------------

    def warm(self):
        if not self.p['warmup']:
            return
        for key in self.order:
            v = self.V[key]
            if v.available:
                self.wrk(v, self.p['warmup'])

    def wrk(self, v, duration):
        """One wrk run of variant v: wrk's figures, the requests the server
        logged, its CPU time per request and the spread of per-interval
        rates."""
        srv = v.server
        script = os.path.join(self.root, 'wrk-%s.lua' % v.key)
        if not os.path.exists(script):
            v.request.lua(script, os.path.join(self.root, 'body-%s' % v.key))
        for log_path in (srv.access_log, srv.error_log):
            os.truncate(log_path, 0)
        pids = srv.pids()
        cpu0 = cpu_ns(pids)
        cmd = ['taskset', '-c', CLIENT_CPU, 'wrk', '-t1',
               '-c%d' % self.p['connections'], '-d%ds' % duration,
               '--latency', '-s', script,
               'http://127.0.0.1:%d%s' % (srv.port, v.request.path)]
        t_start = time.time()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        samples = [(t_start, 0)]
        while proc.poll() is None:
            time.sleep(0.25)
            samples.append((time.time(), os.path.getsize(srv.access_log)))
        out = proc.stdout.read()
        time.sleep(0.05)
        if sorted(srv.pids()) != sorted(pids):
            self.note('%s: a server process came or went during a run; its '
                      'CPU figure is off' % v.label)
        cpu1 = cpu_ns(pids)
        served = count_lines(srv.access_log)
        size = os.path.getsize(srv.access_log)
        if proc.returncode != 0:
            raise SystemExit('bench: wrk failed for %s:\n%s' % (v.label, out))
        r = parse_wrk(out)
        r['served'] = served
        r['seconds'] = duration
        r['rps'] = r['wrk_rps']
        r['cpu_us'] = (cpu1 - cpu0) / 1e3 / served if served else None
        # Per-interval rates from the growth of the access log: a slow
        # patch of the host shows up as a spread between intervals.
        line = size / served if served else 1
        rates = []
        for (ta, sa), (tb, sb) in zip(samples[1:-2], samples[2:-1]):
            if tb > ta:
                rates.append((sb - sa) / line / (tb - ta))
        if len(rates) >= 3 and statistics.median(rates) > 0:
            r['spread'] = (max(rates) - min(rates)) / statistics.median(rates)
        else:
            r['spread'] = 0.0
        self.check_run(v, r, out)
        return r

    def check_run(self, v, r, out):
        want_2xx = 200 <= v.request.status < 400
        if r.get('requests', 0) == 0 or r['served'] == 0:
            raise SystemExit('bench: %s: no request served:\n%s'
                             % (v.label, out))
        if want_2xx and r['non2xx']:
            raise SystemExit('bench: %s: %d responses were not 2xx'
                             % (v.label, r['non2xx']))
        if not want_2xx and r['non2xx'] < r['requests']:
            raise SystemExit('bench: %s: %d of %d responses were 2xx, '
                             'expected a denial' % (v.label, r['requests']
                                                    - r['non2xx'],
                                                    r['requests']))
        if r['socket_errors']:
            self.note('%s: wrk counted %d socket errors in one run'
                      % (v.label, r['socket_errors']))
        self.check_error_log(v)

    def check_error_log(self, v):
        """Only the expected denial lines may appear."""
        expected = {'rej': b'redox_verify: denied wrong-token',
                    'exprrej': b'AH01630'}.get(v.key)
        with open(v.server.error_log, 'rb') as f:
            data = f.read()
        bad = [l for l in data.splitlines()
               if l and not (expected and expected in l)]
        if bad:
            self.note('%s: unexpected error-log line: %s'
                      % (v.label, bad[0][:300].decode(errors='replace')))
        if expected and v.key == 'rej' and b' [redox_verify:error] ' not in \
                data:
            self.note('%s: denials were not logged at level error' % v.label)

    def note(self, msg):
        if msg not in self.notes:
            self.notes.append(msg)
            log('  note: ' + msg)

    def load(self):
        p = self.p
        retry_left = p['retry_budget']
        self.repeats = 0
        self.rounds_done = 0
        for rnd in range(p['rounds']):
            if rnd and time.time() - self.t0 > p['round_deadline']:
                self.note('load: stopped after %d of %d rounds to stay '
                          'within the time budget' % (rnd, p['rounds']))
                break
            log('load round %d/%d' % (rnd + 1, p['rounds']))
            self.rounds_done += 1
            shared = {}
            for a_key, b_key in self.pairs:
                a, b = self.V[a_key], self.V[b_key]
                best = None
                for attempt in range(1 + p['retries']):
                    order = [a, b] if (rnd + attempt) % 2 == 0 else [b, a]
                    got = {}
                    t = time.time()
                    for v in order:
                        if self.quick and v.key in shared:
                            # Quick mode runs each baseline once.
                            got[v.key] = shared[v.key]
                        else:
                            got[v.key] = self.wrk(v, p['duration'])
                        if v.baseline is None:
                            shared[v.key] = got[v.key]
                    spread = max(got[a_key]['spread'], got[b_key]['spread'])
                    if best is None or spread < best[0]:
                        best = (spread, got)
                    if attempt:
                        retry_left -= time.time() - t
                    if spread <= p['spread_limit'] or \
                            attempt == p['retries'] or retry_left <= 0:
                        break
                    self.repeats += 1
                    log('  %s/%s: interval spread %.0f%%, repeating'
                        % (a_key, b_key, 100 * spread))
                got = best[1]
                a.runs.append(got[a_key])
                b.runs.append(got[b_key])
                b.pairs.append((got[b_key], got[a_key]))

    # -- callgrind ---------------------------------------------------------

    def callgrind(self):
        keys = CG_QUICK if self.quick else CG_FULL
        n1, n2 = self.p['cg_n1'], self.p['cg_n2']
        cgdir = os.path.join(self.root, 'callgrind')
        os.makedirs(cgdir)
        os.chmod(cgdir, 0o1777)
        keep = os.path.join(OUT, 'callgrind')
        shutil.rmtree(keep, ignore_errors=True)
        os.makedirs(keep)
        for key in keys:
            v = self.V[key]
            if not v.available:
                continue
            log('callgrind %s' % key)
            runs = [self.cg_start(v, n, cgdir) for n in (n1, n2)]
            threads = [threading.Thread(target=self.cg_drive, args=(v, r))
                       for r in runs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            parsed = []
            for r in runs:
                self.cg_stop(r)
                if r.get('error'):
                    raise SystemExit('bench: callgrind %s: %s'
                                     % (key, r['error']))
                shutil.copy(r['out'], keep)
                parsed.append(parse_callgrind(r['out']))
            v.cg = self.cg_per_request(parsed[0], parsed[1], n2 - n1)

    def cg_start(self, v, n, cgdir):
        srv = v.server
        tag = '%s-%d' % (v.key, n)
        rundir = os.path.join(cgdir, tag)
        os.makedirs(rundir)
        port = rvhttpd.free_port()
        conf = os.path.join(rundir, 'httpd.conf')
        # Few worker threads, all of them busy before the N1 requests end:
        # per-thread state made on a thread's first request (OpenSSL
        # contexts, say) then costs the same in both runs and cancels.
        srv.write(conf, port, rundir, threads=CG_THREADS)
        out = os.path.join(cgdir, 'callgrind.out.%s' % tag)
        vlog = open(os.path.join(rundir, 'valgrind.log'), 'w')
        proc = subprocess.Popen(
            ['valgrind', '--tool=callgrind',
             '--toggle-collect=ap_process_async_request',
             '--callgrind-out-file=' + out, rvhttpd.APACHE, '-X', '-f', conf],
            stdout=vlog, stderr=subprocess.STDOUT)
        self.started.append(proc.pid)
        return {'proc': proc, 'port': port, 'out': out, 'n': n,
                'rundir': rundir, 'vlog': vlog}

    def cg_drive(self, v, r):
        try:
            if not rvhttpd.wait_port(r['port'], 120, r['proc']):
                r['error'] = 'apache2 -X under valgrind did not start (%s)' \
                    % r['rundir']
                return
            # valgrind made the file as root; the child writes it as
            # www-data when it exits.
            os.chmod(r['out'], 0o666)
            conn = rvhttpd.KeepAlive(r['port'])
            for i in range(r['n']):
                v.request.check(v.request.send(conn, i),
                                v.label + ' (callgrind)')
            conn.close()
        except (SystemExit, OSError, http.client.HTTPException) as e:
            r['error'] = str(e)

    def cg_stop(self, r):
        proc = r['proc']
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            r['error'] = r.get('error') or 'valgrind did not stop'
        r['vlog'].close()
        if not r.get('error') and not os.path.getsize(r['out']):
            r['error'] = 'no callgrind output'

    @staticmethod
    def cg_per_request(p1, p2, dn):
        res = {'ir': (p2['total'] - p1['total']) / dn, 'funcs': {},
               'calls': {}}
        for k, f2 in p2['funcs'].items():
            f1 = p1['funcs'].get(k, {'self': 0, 'incl': 0})
            res['funcs']['%s:%s' % k] = {
                'self': (f2['self'] - f1['self']) / dn,
                'incl': (f2['incl'] - f1['incl']) / dn}
        # What the module costs in all: its functions' inclusive Ir where
        # code outside the module calls them (the hooks, merge_dir_conf).
        mine = {k[1] for k in p2['funcs'] if k[0] == MODULE_OBJ}
        entry = 0.0
        for p, sign in ((p2, 1), (p1, -1)):
            for (ob, caller, callee), c in p['calls'].items():
                if ob != MODULE_OBJ and callee in mine:
                    entry += sign * c[1] / dn
        res['module_entry'] = entry
        # Calls per callee: from anywhere, and from the module's own code.
        for scope in ('all', 'module'):
            tot = {}
            for p, sign in ((p2, 1), (p1, -1)):
                for (ob, caller, callee), c in p['calls'].items():
                    if scope == 'module' and ob != MODULE_OBJ:
                        continue
                    t = tot.setdefault(callee, [0.0, 0.0])
                    t[0] += sign * c[0] / dn
                    t[1] += sign * c[1] / dn
            res['calls' if scope == 'all' else 'module_calls'] = {
                k: {'calls': v[0], 'incl': v[1]} for k, v in tot.items()}
        return res

    # -- micro and startup -------------------------------------------------

    def micro(self):
        r = subprocess.run(['taskset', '-c', SERVER_CPU, MICRO,
                            str(self.p['micro_iterations'])],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit('bench: bench/micro failed:\n' + r.stderr)
        self.micro_rows = [json.loads(l) for l in r.stdout.splitlines()
                           if l.startswith('{')]

    def sample_memory(self):
        """Resident memory of the startup servers as started and checked,
        before any of them serves load (which grows a child's RSS)."""
        self.fresh_rss = {key: (self.s[key].child_rss_kib(),
                                rss_kib(self.s[key].pid()))
                          for key in ('mod1', 'mod10k', 'def10k')}

    def startup(self):
        res = {}
        for key in ('mod1', 'mod10k', 'def10k'):
            srv = self.s[key]
            times = []
            for _ in range(self.p['startup_repeats']):
                t = time.time()
                r = subprocess.run(['taskset', '-c', SERVER_CPU, rvhttpd.APACHE,
                                    '-t', '-f', srv.conf],
                                   capture_output=True, text=True)
                times.append(time.time() - t)
                if r.returncode != 0:
                    raise SystemExit('bench: apache2 -t %s failed:\n%s'
                                     % (key, r.stdout + r.stderr))
            res[key] = {'t_median': statistics.median(times),
                        't_min': min(times),
                        'child_rss_kib': self.fresh_rss[key][0],
                        'parent_rss_kib': self.fresh_rss[key][1]}
        self.startup_res = res

    # -- report --------------------------------------------------------------

    def summarize(self):
        S = {}
        for key in self.order:
            v = self.V[key]
            if not v.available:
                S[key] = None
                continue
            runs = v.runs
            if v.baseline is None:
                # A baseline ran once beside each of its variants.
                runs = [pa for k in self.order if self.V[k].baseline == key
                        for _, pa in self.V[k].pairs]
            row = {}
            if runs:
                rps = [r['rps'] for r in runs]
                row.update(
                    rps=statistics.median(rps), rps_min=min(rps),
                    rps_max=max(rps),
                    p50=statistics.median(r['p50_ms'] for r in runs),
                    p99=statistics.median(r['p99_ms'] for r in runs),
                    cpu=statistics.median(r['cpu_us'] for r in runs),
                    n_runs=len(runs))
            if v.pairs:
                ratios = [b['rps'] / a['rps'] for b, a in v.pairs]
                dcpu = [b['cpu_us'] - a['cpu_us'] for b, a in v.pairs]
                row.update(ratio=statistics.median(ratios),
                           ratio_min=min(ratios), ratio_max=max(ratios),
                           dcpu=statistics.median(dcpu),
                           dcpu_min=min(dcpu), dcpu_max=max(dcpu))
            if v.cg:
                row['ir'] = v.cg['ir']
                base = self.V[v.baseline].cg if v.baseline else None
                if base:
                    row['dir'] = v.cg['ir'] - base['ir']
                    row['ir_ratio'] = v.cg['ir'] / base['ir']
                row['digests'] = digests_per_request(v.cg)
            S[key] = row
        self.summary = S

    def fmt_table(self):
        S = self.summary
        hdr = ['variant', 'req/s median (min-max)', 'x baseline (min-max)',
               'p50 ms', 'p99 ms', 'CPU us/req', 'dCPU us/req',
               'Ir/req', 'dIr/req', 'Ir x base']
        rows = []
        for key in self.order:
            v, s = self.V[key], S[key]
            if s is None:
                rows.append([v.label, v.note] + [''] * (len(hdr) - 2))
                continue

            def f(k, fmt, default=''):
                return fmt % s[k] if s.get(k) is not None else default
            rows.append([
                v.label,
                ('%s (%s-%s)' % (f('rps', '%.0f'), f('rps_min', '%.0f'),
                                 f('rps_max', '%.0f')))
                if 'rps' in s else '',
                ('%s (%s-%s)' % (f('ratio', '%.3f'), f('ratio_min', '%.3f'),
                                 f('ratio_max', '%.3f')))
                if 'ratio' in s else ('1' if v.baseline is None
                                      and 'rps' in s else ''),
                f('p50', '%.3f'), f('p99', '%.3f'), f('cpu', '%.2f'),
                f('dcpu', '%+.2f'), f('ir', '%.0f'), f('dir', '%+.0f'),
                f('ir_ratio', '%.3f')])
        widths = [max(len(str(r[i])) for r in rows + [hdr])
                  for i in range(len(hdr))]
        lines = ['| ' + ' | '.join(h.ljust(w) for h, w in zip(hdr, widths))
                 + ' |',
                 '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
        for r in rows:
            lines.append('| ' + ' | '.join(str(c).ljust(w)
                                           for c, w in zip(r, widths))
                         + ' |')
        return '\n'.join(lines)

    def fmt_micro(self):
        lines = ['| rv_verify (micro) | 1 token | 100 tokens | 10,000 tokens '
                 '|', '|---|---|---|---|']
        by = {}
        for r in self.micro_rows:
            if r['kind'] == 'verify':
                by.setdefault(r['case'], {})[r['tokens']] = r
            elif r['kind'] == 'build':
                by.setdefault('build', {})[r['tokens']] = r
            elif r['kind'] == 'digest':
                self.digest_ns = r
        for case in ('accept', 'accept-rotating', 'reject'):
            c = by.get(case, {})
            lines.append('| %s, ns/call min (median) | %s |' % (
                case, ' | '.join('%.0f (%.0f)' % (
                    c[n]['ns_min'], c[n]['ns_median'])
                    if n in c else '' for n in (1, 100, TOKENS_MANY))))
        b = by.get('build', {})
        lines.append('| configuring the set: ms / resident KiB | %s |' % (
            ' | '.join('%.2f / %.0f' % (b[n]['ms'], b[n]['bytes'] / 1024)
                       if n in b else '' for n in (1, 100, TOKENS_MANY))))
        self.micro_by = by
        if 100 in b and TOKENS_MANY in b:
            self.bytes_per_token = ((b[TOKENS_MANY]['bytes']
                                     - b[100]['bytes'])
                                    / (TOKENS_MANY - 100))
        else:
            self.bytes_per_token = None
        d = getattr(self, 'digest_ns', None)
        if d:
            lines.append('\nSHA-256 of a 64-byte token through rv_digest '
                         'alone: %.0f ns (median %.0f).' % (d['ns_min'],
                                                           d['ns_median']))
        if self.bytes_per_token is not None:
            lines.append('Memory per configured token: %.0f bytes '
                         '(resident growth from 100 to 10,000 tokens).'
                         % self.bytes_per_token)
        return '\n'.join(lines)

    def fmt_startup(self):
        r = self.startup_res
        a, b, d = r['mod1'], r['mod10k'], r['def10k']
        rows = [('`apache2 -t`, s (median of %d)' % self.p['startup_repeats'],
                 't_median', '%.3f', '%+.3f'),
                ('child VmRSS, KiB', 'child_rss_kib', '%d', '%+d'),
                ('parent VmRSS, KiB', 'parent_rss_kib', '%d', '%+d')]
        out = ['| startup | 1 token | 10,000 tokens | added | 1 token + '
               '10,000 lines that keep nothing (httpd alone) | added by the module |',
               '|---|---|---|---|---|---|']
        for label, k, f, df in rows:
            out.append(('| %s | ' + f + ' | ' + f + ' | ' + df + ' | ' + f
                        + ' (' + df + ') | ' + df + ' |')
                       % (label, a[k], b[k], b[k] - a[k], d[k], d[k] - a[k],
                          b[k] - d[k]))
        return '\n'.join(out)

    def module_functions(self):
        """Per-request Ir of the module's own functions, per variant."""
        out = []
        for key in ('mod1', 'mod10k', 'rej', 'rejq', 'hs', 'pmod',
                    'pmod_post'):
            v = self.V[key]
            if not v.cg:
                continue
            fs = [(k.split(':', 1)[1], f) for k, f in v.cg['funcs'].items()
                  if k.startswith(MODULE_OBJ + ':')
                  and (f['incl'] >= 0.5 or f['self'] >= 0.5)]
            fs.sort(key=lambda x: -x[1]['incl'])
            calls = v.cg['calls']
            mcalls = v.cg['module_calls']
            dig = calls.get('rv_digest', {}).get('incl', 0.0)
            base = self.V[v.baseline].cg if v.baseline else None
            total = v.cg.get('module_entry', 0.0)
            out.append('%s: the module\'s functions %.0f Ir/req in all (SHA-256'
                       ' %.0f, the rest %.0f)%s.' % (
                           v.label, total, dig, total - dig,
                           '; outside them the variant differs from its '
                           'baseline by %+.0f' % (v.cg['ir'] - base['ir']
                                                  - total) if base else ''))
            out.append('  Ir per request: self / inclusive / calls')
            for name, f in fs:
                c = calls.get(name, {}).get('calls', 0)
                out.append('    %-24s %8.0f %8.0f %6.2f' % (name, f['self'],
                                                             f['incl'], c))
            out.append('  called by the module (inclusive Ir, calls, Ir per '
                       'call):')
            libs = [(k, c) for k, c in mcalls.items()
                    if c['calls'] > 0.005 and k not in dict(fs)]
            libs.sort(key=lambda x: -x[1]['incl'])
            for lib, c in libs:
                out.append('    %-24s %8s %8.0f %6.2f  (%.0f per call)'
                           % (lib, '', c['incl'], c['calls'],
                              c['incl'] / c['calls']))
        return '\n'.join(out)

    def targets(self):
        S, T = self.summary, []

        def g(key, field):
            s = S.get(key)
            return None if s is None else s.get(field)

        def add(name, ok, figures):
            state = 'n/a' if ok is None else ('met' if ok else 'MISSED')
            T.append((state, name, figures))

        de = g('expr', 'dcpu')
        for key in ('mod1', 'mod10k'):
            d = g(key, 'dcpu')
            add('accept CPU (%s) <= Require expr' % key,
                None if d is None or de is None else d <= de,
                'dCPU %s us/req vs Require expr %s us/req'
                % (_f(d, '%+.2f'), _f(de, '%+.2f')))
        for key, lim in (('mod1', 0.98), ('mod10k', 0.98), ('pmod', 0.99),
                         ('pmod_post', 0.99)):
            r = g(key, 'ratio')
            add('throughput %s >= %.2f x baseline' % (key, lim),
                None if r is None else r >= lim,
                'median pair ratio %s (A/A: %s)'
                % (_f(r, '%.3f'), _f(g('aa', 'ratio'), '%.3f')))
        for key in ('mod1', 'mod10k', 'rej', 'pmod', 'pmod_post'):
            d = g(key, 'digests')
            add('at most one digest per request (%s)' % key,
                None if d is None else d <= 1.0 + 1e-6,
                '%s SHA-256 digests per request' % _f(d, '%.2f'))
        r = g('mod1', 'ir_ratio')
        add('accept Ir <= 1.15 x baseline', None if r is None else r <= 1.15,
            '%s x (%s vs %s Ir/req)' % (_f(r, '%.3f'), _f(g('mod1', 'ir'),
                                                          '%.0f'),
                                        _f(g('base', 'ir'), '%.0f')))
        a, b = g('mod1', 'ir'), g('mod10k', 'ir')
        q = None if a is None or b is None else b / a
        add('10,000 tokens within 1% of 1 token (Ir)',
            None if q is None else abs(q - 1) <= 0.01,
            '%s x (%s vs %s Ir/req)' % (_f(q, '%.4f'), _f(b, '%.0f'),
                                         _f(a, '%.0f')))
        a, b = g('rej', 'ir'), g('exprrej', 'ir')
        add('reject Ir <= Require expr reject', None if a is None or
            b is None else a <= b, '%s vs %s Ir/req' % (_f(a, '%.0f'),
                                                          _f(b, '%.0f')))
        r = g('rej', 'ratio')
        add('reject throughput >= baseline', None if r is None else r >= 1.0,
            'median pair ratio %s (denial log off: %s)'
            % (_f(r, '%.3f'), _f(g('rejq', 'ratio'), '%.3f')))
        a, b = g('pmod', 'dir'), g('pmod_post', 'dir')
        ok = None if a is None or b is None else \
            abs(b - a) <= 0.02 * max(abs(a), 1.0)
        add('module Ir on 64 KiB POST = on GET (proxied, 2%)', ok,
            'adds %s Ir/req to POST, %s to GET' % (_f(b, '%+.0f'),
                                                    _f(a, '%+.0f')))
        by = getattr(self, 'micro_by', {})
        acc = by.get('accept', {})
        if acc:
            # Judged on the fastest of the repetitions, the figure other
            # load on the machine disturbs least; the median is shown too.
            vals = [acc[n]['ns_min'] for n in sorted(acc)]
            add('rv_verify <= 0.5 us per call', max(vals) <= 500,
                ', '.join('%d: %.0f ns (median %.0f)'
                          % (n, acc[n]['ns_min'], acc[n]['ns_median'])
                          for n in sorted(acc)))
            add('rv_verify flat from 1 to 10,000 tokens (within 15%)',
                max(vals) <= 1.15 * min(vals),
                'slowest/fastest of the three minima %.2f'
                % (max(vals) / min(vals)))
        st = self.startup_res
        if st:
            dt = st['mod10k']['t_median'] - st['mod1']['t_median']
            add('10,000 tokens add <= 0.5 s to apache2 -t', dt <= 0.5,
                '%+.3f s' % dt)
            dm = st['mod10k']['child_rss_kib'] - st['mod1']['child_rss_kib']
            dd = st['mod10k']['child_rss_kib'] - st['def10k']['child_rss_kib']
            add('10,000 tokens add <= 4 MiB to a child', dm <= 4096,
                '%+d KiB, of which httpd itself takes %+d KiB for 10,000 '
                'configuration lines and the module %+d KiB'
                % (dm, dm - dd, dd))
        self.target_rows = T
        return '\n'.join('- [%s] %s: %s' % t for t in T)

    def machine(self):
        model = ''
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
        ver = subprocess.run([rvhttpd.APACHE, '-v'], capture_output=True,
                             text=True).stdout.splitlines()[0]
        ossl = subprocess.run(['openssl', 'version'], capture_output=True,
                              text=True).stdout.strip()
        with open('/proc/loadavg') as f:
            load = f.read().split()[:3]
        return ('%s, %s (%d cores), %s, %s, %s, load average %s'
                % (datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
                   model, os.cpu_count(), platform.release(),
                   ver.split(':', 1)[1].strip(), ossl.split('(')[0].strip(),
                   ' '.join(load)))

    def report(self):
        self.summarize()
        p = self.p
        parts = []
        parts.append('mod_redox_verify bench%s: %s'
                     % (' (QUICK: figures are a smoke test only)'
                        if self.quick else '', self.machine_info))
        parts.append('wrk -t1 -c%d, %d rounds of alternating pairs of %d s '
                     'runs (%d pair runs repeated for an interval spread > '
                     '%.0f%%); server on CPU %s, wrk on CPU %s; callgrind '
                     'N1=%d, N2=%d requests on one keep-alive connection; '
                     'challenge handshake %s.'
                     % (p['connections'], self.rounds_done, p['duration'],
                        self.repeats, 100 * p['spread_limit'], SERVER_CPU,
                        CLIENT_CPU, p['cg_n1'], p['cg_n2'],
                        'available' if self.challenge_ok else
                        'NOT AVAILABLE in this build'))
        parts.append(self.fmt_table())
        parts.append('x baseline: median over rounds of (variant req/s / '
                     'its baseline req/s in the same round); dCPU: median '
                     'of the per-round differences of server CPU per '
                     'request (front and backend for proxied); Ir: '
                     'instructions per request under callgrind, collected '
                     'inside ap_process_async_request.')
        if self.micro_rows:
            parts.append(self.fmt_micro())
        if self.startup_res:
            parts.append(self.fmt_startup())
        parts.append('Targets:\n' + self.targets())
        mf = self.module_functions()
        if mf:
            parts.append('Module functions under callgrind:\n' + mf)
        if self.notes:
            parts.append('Notes:\n' + '\n'.join('- ' + n
                                                 for n in self.notes))
        parts.append('Took %.0f s (%s).' % (
            time.time() - self.t0,
            ', '.join('%s %.0f s' % t for t in self.timings)))
        text = '\n\n'.join(parts) + '\n'
        os.makedirs(OUT, exist_ok=True)
        with open(os.path.join(OUT, 'results.md'), 'w') as f:
            f.write(text)
        with open(os.path.join(OUT, 'results.json'), 'w') as f:
            json.dump({'machine': self.machine_info, 'params': p,
                       'quick': self.quick, 'summary': self.summary,
                       'runs': {k: v.runs for k, v in self.V.items()},
                       'callgrind': {k: v.cg for k, v in self.V.items()
                                     if v.cg},
                       'micro': self.micro_rows,
                       'startup': self.startup_res,
                       'targets': self.target_rows,
                       'notes': self.notes}, f, indent=1)
        print('\n' + text, flush=True)

    # -- driver ------------------------------------------------------------

    def run(self):
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
        self.machine_info = self.machine()
        self.prepare()
        if not self.challenge_ok:
            log('note: RedoxChallenge is not in this build; variant 7 is '
                'reported as not available')
        self.build_servers()
        self.phase('start and check %d servers' % len(self.servers),
                   self.start_servers, self.validate, self.sample_memory)
        todo = self.args.phases.split(',')
        if 'load' in todo:
            self.phase('load (wrk)', self.warm, self.load)
        if 'callgrind' in todo:
            self.phase('callgrind', self.callgrind)
        if 'micro' in todo:
            self.phase('micro-benchmark', self.micro)
        if 'startup' in todo:
            self.phase('startup', self.startup)
        self.report()

    def phase(self, name, *steps):
        t = time.time()
        for step in steps:
            step()
        self.timings.append((name, time.time() - t))
        log('%s: %.0f s' % (name, time.time() - t))

    def cleanup(self):
        for srv in self.servers:
            if srv.pid():
                srv.stop(check=False)
        for pid in self.started:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            log('kept ' + self.root)


DIGEST_CALLS = ('EVP_Digest', 'EVP_DigestFinal_ex', 'EVP_DigestFinal',
                'EVP_DigestFinalXOF', 'EVP_Q_digest', 'SHA256',
                'SHA256_Final')


def digests_per_request(cg):
    """SHA-256 computations per request: calls of rv_digest, the module's
    one digest function, or digests the module's code finishes itself."""
    own = cg['calls'].get('rv_digest', {}).get('calls', 0.0)
    direct = sum(cg['module_calls'].get(k, {}).get('calls', 0.0)
                 for k in DIGEST_CALLS)
    return max(own, direct)


def _f(x, fmt):
    return 'n/a' if x is None else fmt % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='a smoke run for CI: every path, short runs')
    ap.add_argument('--rounds', type=int, help='alternating rounds')
    ap.add_argument('--duration', type=int, help='seconds per wrk run')
    ap.add_argument('--phases', default='load,callgrind,micro,startup,native',
                    help='which measurements to take (comma-separated)')
    ap.add_argument('--keep', action='store_true',
                    help='keep the generated server roots')
    ap.add_argument('--native', action='store_true',
                    help='only the native phase (bench/native.py)')
    args = ap.parse_args()
    if args.native:
        sys.exit(native.main(args.quick))
    for tool in ('apache2', 'wrk', 'valgrind', 'taskset'):
        if shutil.which(tool) is None:
            raise SystemExit('bench: %s is missing (make bench installs it)'
                             % tool)
    for f in (MODULE, MICRO):
        if not os.path.exists(f):
            raise SystemExit('bench: %s is missing (run make bench)' % f)
    if os.cpu_count() < 2:
        raise SystemExit('bench: needs 2 cores (server and load generator '
                         'are pinned apart)')
    b = Bench(args)

    def on_signal(signum, frame):
        raise SystemExit('bench: interrupted')
    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.run()
    finally:
        b.cleanup()
    if 'native' in args.phases.split(','):
        native.main(args.quick, required=False)


if __name__ == '__main__':
    main()
