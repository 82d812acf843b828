"""The metrics endpoint and the server-status section: the output passes
`promtool check metrics` and parses with python3-prometheus-client (plus
the checks neither makes, rvmetrics.check_exposition), carries no token or
digest, its series come from the configuration only, access is up to
Require, and each client request is counted once."""

import hashlib

import pytest

import rvhttpd
import rvmetrics
from rvhttpd import both, new_token, register_secret
from rvmetrics import handshake_get, handshake_post

T = {}
A = "a.test"


@pytest.fixture(scope="module")
def fmt(backend):
    for k in ("prod", "staging", "server", "wrong"):
        T[k] = new_token()
    h = rvhttpd.Httpd("metrics-format", allowed=rvmetrics.ALLOWED + [
        r"AH01630: client denied by server configuration: .*/metrics-closed"])
    h.backend = backend
    h.write("htdocs-a/static/index.html", "RV-METRICS-INDEX\n")
    h.write_conf("""
LoadModule status_module /usr/lib/apache2/modules/mod_status.so
LoadModule access_compat_module /usr/lib/apache2/modules/mod_access_compat.so
RedoxVerificationToken server {server}
<Location /metrics>
    SetHandler redox-verify-metrics
    Require ip 127.0.0.1
</Location>
<Location /metrics-closed>
    SetHandler redox-verify-metrics
    Require all denied
</Location>
<Location /server-status>
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    DocumentRoot "{root}/htdocs-a"
    <Directory "{root}/htdocs-a">
        Require all granted
    </Directory>
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken prod {prod}
        RedoxVerificationToken staging sha256:{staging_digest}
        ProxyPass http://127.0.0.1:{bp}/a/
    </Location>
    <Location /static/>
        RedoxVerify On
        RedoxVerificationToken prod {prod}
        DirectoryIndex index.html
    </Location>
    <Location /satisfy/>
        RedoxVerify On
        RedoxVerificationToken prod {prod}
        Satisfy Any
        Require ip 127.0.0.1
        ProxyPass http://127.0.0.1:{bp}/satisfy/
    </Location>
</VirtualHost>
<VirtualHost 127.0.0.1:{port}>
    ServerName b.test
    <Location /redox/>
        RedoxVerify On
        ProxyPass http://127.0.0.1:{bp}/b/
    </Location>
</VirtualHost>
""".format(port=h.port, bp=backend.port, root=h.root,
           staging_digest=rvhttpd.sha256_hex(T["staging"]), **T))
    yield from h.serve()


def test_rv_metrics_format_parses_strictly(fmt):
    before = rvmetrics.counts(fmt, host=A)
    fmt.request("/redox/x", host=A, headers=both(T["prod"]))
    fmt.request("/redox/x", host=A, headers=both(T["wrong"]))
    body = rvmetrics.scrape(fmt, host=A)
    assert rvmetrics.promtool_check(body.decode()) == []
    fams = rvmetrics.families(body)
    assert list(fams) == ([m for m, _ in rvmetrics.METRICS.values()]
                          + list(rvmetrics.GAUGES.values()))
    for metric in rvmetrics.GAUGES.values():
        assert fams[metric].type == "gauge" and fams[metric].documentation
        assert metric.endswith("_timestamp_seconds")
        for s in fams[metric].samples:
            assert set(s.labels) == {"vhost", "name"}, s
    for kind, (metric, label) in rvmetrics.METRICS.items():
        fam = fams[metric]
        assert metric.startswith("redox_verify_") and metric.endswith("_total")
        assert fam.type == "counter"
        assert fam.documentation
        assert fam.samples
        for s in fam.samples:
            assert s.name == metric
            assert set(s.labels) == {"vhost", label}
            assert s.value == int(s.value) and s.timestamp is None
            if kind == "denied":
                assert s.labels["reason"] in rvmetrics.DENIED_REASONS
            if kind == "refused":
                assert s.labels["reason"] in rvmetrics.REFUSED_REASONS
    text = body.decode()
    assert "\n\n" not in text and text.endswith("\n")
    c = rvmetrics.counts(fmt, host=A)
    a = "a.test:%d" % fmt.port
    assert c[("accepted", a, "prod")] == before[("accepted", a, "prod")] + 1
    assert c[("denied", a, "wrong-token")] == before[("denied", a, "wrong-token")] + 1
    # The server-level token is accepted in every VirtualHost; b.test has
    # only that one.
    b = "b.test:%d" % fmt.port
    assert {k[2] for k in c if k[0] == "accepted" and k[1] == b} == {"server"}
    assert {k[2] for k in c if k[0] == "accepted" and k[1] == a} == {"prod", "staging",
                                                                    "server"}


def test_rv_metrics_format_no_token_or_digest(fmt):
    fmt.request("/redox/x", host=A, headers=both(T["staging"]))
    fmt.request("/redox/x", host=A, headers=both(T["wrong"]))
    handshake_post(fmt, T["prod"], host=A)
    handshake_get(fmt, T["wrong"], host=A)
    outputs = [rvmetrics.scrape(fmt, host=A).decode(),
               fmt.request("/server-status?auto").text,
               fmt.request("/server-status").text]
    for out in outputs:
        assert "redox" in out.lower()
        for tok in T.values():
            for form in (tok, hashlib.sha256(tok.encode()).hexdigest(),
                         hashlib.sha256(tok.encode()).hexdigest().upper()):
                assert form not in out


def _series(fmt):
    return set(rvmetrics.counts(fmt, host=A))


def test_rv_metrics_format_series_bounded_by_configuration(fmt):
    before = _series(fmt)
    junk = register_secret("junk-" + "x" * 40)
    for host in (A, "b.test", "unknown.test", "evil\"host", "a.test:1"):
        fmt.request("/redox/x", host=host, headers=both(junk))
        fmt.request("/redox/x", host=host, headers=[("Authorization", "Bearer evil\"name")])
        fmt.request("/redox/prod", host=host, headers=[("X-Redox-Source", "forged")])
        handshake_post(fmt, junk, challenge="new-label", host=host)
        handshake_get(fmt, "name%3D%22x%22", host=host)
    assert _series(fmt) == before


def test_rv_metrics_format_access_by_require(fmt):
    assert fmt.request("/metrics", host=A).status == 200
    assert fmt.request("/metrics-closed", host=A).status == 403


def test_rv_metrics_format_methods(fmt):
    r = fmt.request("/metrics", host=A, method="POST", body="x")
    assert r.status == 405
    assert "GET" in (r.header("Allow") or "")
    r = fmt.request("/metrics", host=A, method="HEAD")
    assert r.status == 200 and r.body == b""
    assert r.header("Content-Type") == rvmetrics.CONTENT_TYPE
    assert r.header("Cache-Control") == "no-store"


def test_rv_metrics_format_counted_once_per_request(fmt):
    a = "a.test:%d" % fmt.port
    before = rvmetrics.counts(fmt, host=A)
    # DirectoryIndex: a sub-request, then an internal redirect, both checked
    r = fmt.request("/static/", host=A, headers=both(T["prod"]))
    assert r.status == 200 and "RV-METRICS-INDEX" in r.text
    # Satisfy Any: denied by the access checker, denied again by the fixup
    r = fmt.request("/satisfy/x", host=A)
    assert r.status == 401
    after = rvmetrics.counts(fmt, host=A)
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert diff == {("accepted", a, "prod"): 1, ("denied", a, "missing"): 1}


def test_rv_metrics_status_auto_has_section(fmt):
    fmt.request("/redox/x", host=A, headers=both(T["prod"]))
    c = rvmetrics.counts(fmt, host=A)
    text = fmt.request("/server-status?auto").text
    lines = dict(l.split(": ", 1) for l in text.splitlines() if ": " in l)
    assert "ServerMPM" in lines                     # mod_status's own part
    keys = {"accepted": "RedoxVerifyAccepted", "denied": "RedoxVerifyDenied",
            "answered": "RedoxVerifyHandshakesAnswered",
            "refused": "RedoxVerifyHandshakesRefused"}
    for kind, key in keys.items():
        assert int(lines[key]) == sum(v for k, v in c.items() if k[0] == kind)
    for (kind, vhost, label), v in c.items():
        assert int(lines["%s[%s,%s]" % (keys[kind], vhost, label)]) == v


def test_rv_metrics_status_html_has_section(fmt):
    text = fmt.request("/server-status").text
    assert "<h2>Redox token verification (mod_redox_verify)</h2>" in text
    assert "<td>a.test:%d</td><td>prod</td>" % fmt.port in text
    text = fmt.request("/server-status?notable").text
    assert "<h2>Redox token verification (mod_redox_verify)</h2>" in text


# Each a valid exposition but for one fault, and what says so: promtool
# (parse errors and lint), the library parser, or rvmetrics's own checks
# for what neither rejects.
HEAD = "# HELP a_total Some help.\n# TYPE a_total counter\n"
GAUGE = "# HELP g Some help.\n# TYPE g gauge\n"
BAD = [
    ("no final newline", HEAD + "a_total 1", "unexpected end of input stream"),
    ("bad metric name", HEAD + "a_total 1\n1a 1\n", "invalid metric name"),
    ("bad value", HEAD + "a_total x\n", 'expected float as value, got "x"'),
    ("unquoted label", HEAD + "a_total{b=c} 1\n", "expected '\"' at start of label value"),
    ("bad escape", HEAD + 'a_total{b="\\t"} 1\n', "invalid escape sequence"),
    ("raw newline in label", HEAD + 'a_total{b="x\ny"} 1\n', "unescaped new-line"),
    ("unterminated labels", HEAD + 'a_total{b="c" 1\n', "unexpected end of label value"),
    ("duplicate label", HEAD + 'a_total{b="1",b="2"} 1\n', "duplicate label names"),
    ("duplicate series", HEAD + 'a_total{b="1"} 1\na_total{b="1"} 2\n', "duplicate series"),
    ("second TYPE", HEAD + "# TYPE a_total counter\na_total 1\n", "second TYPE line"),
    ("TYPE after sample", "# HELP a_total h\na_total 1\n# TYPE a_total counter\n",
     "second TYPE line"),
    ("unknown type", "# HELP a h\n# TYPE a countr\na 1\n", 'unknown metric type "countr"'),
    ("split group", GAUGE + "g 1\n" + HEAD + "a_total 1\ng{x=\"1\"} 1\n",
     "the lines of g are not one group"),
    ("negative counter", HEAD + "a_total -1\n", "counter a_total{} is -1.0"),
    ("NaN counter", HEAD + "a_total NaN\n", "counter a_total{} is nan"),
    ("no value", HEAD + 'a_total{b="1"}\n', 'expected float as value, got ""'),
    ("reserved label", HEAD + 'a_total{__b="1"} 1\n', "reserved label name __b"),
    ("CR", HEAD + "a_total 1\r\n", "carriage return"),
    ("CR in HELP", "# HELP a_total So\rme\n# TYPE a_total counter\na_total 1\n",
     "carriage return"),
    ("trailing junk", HEAD + "a_total 1 2 3\n", "spurious string after timestamp"),
    ("no HELP", "# TYPE a_total counter\na_total 1\n", "no help text"),
    ("counter without _total", "# HELP a h\n# TYPE a counter\na 1\n",
     'counter metrics should have "_total" suffix'),
]


@pytest.mark.parametrize("why,text,says", BAD, ids=[b[0] for b in BAD])
def test_rv_metrics_format_check_is_strict(why, text, says):
    """What test_rv_metrics_format_parses_strictly relies on: the check
    rejects each fault, for that fault."""
    problems, _ = rvmetrics.check_exposition(text)
    assert [p for p in problems if says in p], problems


def test_rv_metrics_format_check_accepts_valid():
    text = ('# HELP a_total Some \\\\ help\\n.\n# TYPE a_total counter\n'
            'a_total{x="q\\"\\\\\\n",y="z",} 1.5e3 1700000000\n# other\n\n'
            + GAUGE + 'g +Inf\n')
    problems, fams = rvmetrics.check_exposition(text)
    assert problems == []
    assert fams["a_total"].documentation == "Some \\ help\n."
    assert fams["a_total"].samples[0].labels == {"x": 'q"\\\n', "y": "z"}
    assert fams["a_total"].samples[0].value == 1500.0
    assert fams["g"].samples[0].value == float("inf")


@pytest.fixture(scope="module")
def inherited(backend):
    """RedoxVerify On in the main server only, and two VirtualHosts with no
    directive of this module: each inherits the verified scope and must
    count under its own label, not share one record with the main server."""
    T["inherited"] = new_token()

    def conf(h):
        return "".join([
            rvhttpd.METRICS_LOCATION,
            rvhttpd.verified("/redox/", {"prod": T["inherited"]},
                             proxy=(backend.port, "/m/")),
            rvhttpd.vhost(h.ports[1], "c.test"),
            rvhttpd.vhost(h.ports[2], "d.test")])

    yield from rvhttpd.serving("metrics-inherited", conf, backend, nports=3,
                               allowed=rvmetrics.ALLOWED)


def test_rv_metrics_format_inherited_scope_counted_per_vhost(inherited):
    h = inherited
    labels = {h.ports[0]: "localhost:%d" % h.ports[0],
              h.ports[1]: "c.test:%d" % h.ports[1],
              h.ports[2]: "d.test:%d" % h.ports[2]}
    before = rvmetrics.counts(h)
    for port, n in zip(h.ports, (1, 2, 3)):
        for _ in range(n):
            assert h.request("/redox/x", port=port).status == 401
    r = h.request("/redox/x", port=h.ports[1], headers=both(T["inherited"]))
    assert r.status == 200 and len(r.backend_requests) == 1
    after = rvmetrics.counts(h)
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert diff == {("denied", labels[h.ports[0]], "missing"): 1,
                    ("denied", labels[h.ports[1]], "missing"): 2,
                    ("denied", labels[h.ports[2]], "missing"): 3,
                    ("accepted", labels[h.ports[1]], "prod"): 1}
