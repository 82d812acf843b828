"""RedoxVerificationToken NAME VALUE expires=WHEN: from that instant the
token is refused as `expired` (its own counter, a log line with the NAME,
REDOX_VERIFY=expired, error="invalid_token"), for requests and handshakes
alike; startup warns about tokens that expire within 14 days or have
expired; the metrics show each expiry and when each token was last
accepted.  The decision compares with the request time httpd already has
(r->request_time, which %{usec}t logs).

Metrics are read with python3-prometheus-client's parser."""

import calendar
import re
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import rvhttpd
import rvmetrics
from rvhttpd import both, new_token, sha256_hex

T = {}
A = "a.test"
DAY = 86400
FAR = "2099-01-01"
FAR_SECONDS = 4070908800

# The startup warnings these servers log on purpose.
EXPIRY_WARNINGS = [r"\[redox_verify:warn\].*RedoxVerificationToken (old|soon|edge|hsold) "
                   r"\(.*\) (expired at|expires at)"]


def utc(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# Access log: request time (the r->request_time the decision uses) in
# microseconds, then the module's variables.
TIME_LOG = ('LogFormat "%{usec}t %{REDOX_VERIFY}e %{REDOX_SOURCE}e %q" rvtime\n'
            'CustomLog "logs/time.log" rvtime\n')


@pytest.fixture(scope="module")
def ex(backend):
    for k in ("old", "soon", "new", "far", "wrong", "filetok"):
        T[k] = new_token()
    now = int(time.time())
    T["past"] = utc(now - DAY)
    T["soon_at"] = now + 3 * DAY
    h = rvhttpd.Httpd("expiry-main", allowed=EXPIRY_WARNINGS + rvmetrics.ALLOWED)
    h.backend = backend
    h.write("secrets/file.token", T["filetok"] + "\n", 0o600)
    h.write_conf(rvmetrics.PID_LOG + TIME_LOG + """
<Location /metrics>
    SetHandler redox-verify-metrics
    Require ip 127.0.0.1
</Location>
<Location /server-status>
    SetHandler server-status
    Require ip 127.0.0.1
</Location>
LoadModule status_module /usr/lib/apache2/modules/mod_status.so
<VirtualHost 127.0.0.1:{port}>
    ServerName a.test
    <Location /redox/>
        RedoxVerify On
        RedoxVerificationToken old {old} expires={past}
        RedoxVerificationToken soon {soon} expires={soon_utc}
        RedoxVerificationToken new {new}
        RedoxVerificationToken far sha256:{far_hex} expires={far}
        RedoxVerificationToken filetok file:{root}/secrets/file.token expires={past}
        ProxyPass http://127.0.0.1:{bp}/a/
    </Location>
</VirtualHost>
""".format(port=h.port, bp=backend.port, root=h.root, past=T["past"],
           soon_utc=utc(T["soon_at"]), far=FAR, far_hex=sha256_hex(T["far"]),
           old=T["old"], soon=T["soon"], new=T["new"]))
    yield from h.serve()


def families(h):
    text = rvmetrics.scrape(h, host=A).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(h, family):
    """{(vhost, label): value} of one family (prometheus_client drops the
    _total suffix from a counter family's name, not from its samples)."""
    fams = families(h)
    fam = fams[family[:-len("_total")] if family.endswith("_total") else family]
    return {(s.labels["vhost"], s.labels.get("name", s.labels.get("reason"))): s.value
            for s in fam.samples}


def time_line(h, rid):
    """(request time in microseconds, REDOX_VERIFY, REDOX_SOURCE) of rid."""
    lines = h.access_lines(rid, log="logs/time.log")
    assert len(lines) == 1, lines
    usec, outcome, source, _ = lines[0].split(" ", 3)
    return int(usec), outcome, source


def test_rv_expiry_main_expired_token_refused(ex):
    r = ex.request("/redox/x", host=A, headers=both(T["old"]))
    assert r.status == 401
    assert r.header("WWW-Authenticate") == rvhttpd.CH_INVALID_TOKEN
    assert r.backend_requests == []
    assert ex.access_fields(r.rid) == ("-", "expired")
    lines = ex.error_lines("denied expired")
    line = [l for l in lines if "token \"old\"" in l]
    assert line, lines
    assert re.search(r'redox_verify: denied expired: uri "/redox/x", vhost a\.test:\d+, '
                     r'scope /redox/ \(.*\); token "old" expired at %s$'
                     % re.escape(T["past"]), line[-1]), line[-1]
    # a token from a file, with expires= after it, the same
    r = ex.request("/redox/x", host=A, headers=both(T["filetok"]))
    assert r.status == 401 and ex.access_fields(r.rid) == ("-", "expired")


def test_rv_expiry_main_unexpired_tokens_accepted(ex):
    for name in ("soon", "new", "far"):
        r = ex.request("/redox/x", host=A, headers=both(T[name]))
        assert r.status == 200, (name, r)
        assert ex.access_fields(r.rid) == (name, "ok")
        assert len(r.backend_requests) == 1


def test_rv_expiry_main_wrong_token_still_wrong(ex):
    r = ex.request("/redox/x", host=A, headers=both(T["wrong"]))
    assert r.status == 401 and ex.access_fields(r.rid) == ("-", "wrong-token")


def test_rv_expiry_main_handshakes(ex):
    for send in (rvmetrics.handshake_post, rvmetrics.handshake_get):
        r = send(ex, T["old"], host=A, path="/redox/hs")
        assert r.status == 401, r
        assert r.header("WWW-Authenticate") == rvhttpd.CH_INVALID_TOKEN
        assert rvmetrics.UUID not in r.text
        assert ex.access_fields(r.rid) == ("-", "expired")
        r = send(ex, T["soon"], host=A, path="/redox/hs")
        assert r.status == 200 and r.text == rvmetrics.UUID
        assert ex.access_fields(r.rid) == ("soon", "handshake")
    lines = ex.error_lines("denied handshake expired", want=2)
    assert len(lines) == 2 and all('token "old" expired at ' + T["past"] in l for l in lines)


def test_rv_expiry_main_counted(ex):
    a = "a.test:%d" % ex.port
    before = rvmetrics.counts(ex, host=A)
    ex.request("/redox/x", host=A, headers=both(T["old"]))
    ex.request("/redox/x", host=A, headers=both(T["old"]))
    ex.request("/redox/x", host=A, headers=both(T["soon"]))
    rvmetrics.handshake_post(ex, T["old"], host=A, path="/redox/hs")
    after = rvmetrics.counts(ex, host=A)
    diff = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert diff == {("denied", a, "expired"): 2, ("accepted", a, "soon"): 1,
                    ("refused", a, "expired"): 1}
    auto = ex.request("/server-status?auto").text
    assert "RedoxVerifyDenied[%s,expired]: %d" % (a, after[("denied", a, "expired")]) in auto


def test_rv_expiry_main_expiry_gauge(ex):
    a = "a.test:%d" % ex.port
    fams = families(ex)
    fam = fams["redox_verify_token_expiry_timestamp_seconds"]
    assert fam.type == "gauge"
    got = {s.labels["name"]: s.value for s in fam.samples if s.labels["vhost"] == a}
    past = calendar.timegm(time.strptime(T["past"], "%Y-%m-%dT%H:%M:%SZ"))
    assert got == {"old": past, "filetok": past, "soon": T["soon_at"], "far": FAR_SECONDS}
    html = ex.request("/server-status").text
    assert "<td>%s</td><td>far</td><td>2099-01-01T00:00:00Z</td>" % a in html


def test_rv_expiry_main_last_accepted(ex):
    """0 until accepted; then exactly the request time of the latest
    accepted request or handshake (as %{usec}t logs it), whichever child
    served it; a refused token does not move it."""
    a = "a.test:%d" % ex.port
    last = "redox_verify_token_last_accepted_timestamp_seconds"
    got = samples(ex, last)
    assert set(n for v, n in got if v == a) == {"old", "soon", "new", "far", "filetok"}
    assert got[(a, "old")] == 0 and got[(a, "filetok")] == 0
    r = ex.request("/redox/x", host=A, headers=both(T["new"]))
    assert r.status == 200
    usec, outcome, source = time_line(ex, r.rid)
    assert (outcome, source) == ("ok", "new")
    assert samples(ex, last)[(a, "new")] == usec // 1000000
    r = rvmetrics.handshake_post(ex, T["far"], host=A, path="/redox/hs")
    assert r.status == 200
    usec, outcome, _ = time_line(ex, r.rid)
    assert outcome == "handshake"
    got = samples(ex, last)
    assert got[(a, "far")] == usec // 1000000
    assert got[(a, "old")] == 0  # refused above, never accepted
    html = ex.request("/server-status").text
    assert "<td>%s</td><td>old</td><td>never</td>" % a in html
    assert "<td>%s</td><td>far</td><td>%s</td>" % (a, utc(usec // 1000000)) in html


def test_rv_expiry_main_startup_warnings(ex):
    """Expired and within 14 days: a warning naming the token, its file and
    line and the date; none for far or no expiry.  The server started."""
    text = ex.start_output + ex.error_log_text()
    conf = str(ex.conf)
    assert re.search(r"RedoxVerificationToken old \(%s:\d+\) expired at %s: requests and "
                     r"handshakes with it are refused \(expired\)"
                     % (re.escape(conf), re.escape(T["past"])), text), text
    assert re.search(r"RedoxVerificationToken soon \(%s:\d+\) expires at %s, within 14 days"
                     % (re.escape(conf), re.escape(utc(T["soon_at"]))), text), text
    assert "RedoxVerificationToken filetok (" in text
    assert "RedoxVerificationToken far (" not in text
    assert "RedoxVerificationToken new (" not in text
    for name in ("old", "soon", "new", "far", "filetok"):
        assert T[name] not in text


def test_rv_expiry_main_refused_from_the_instant(backend):
    """A token expiring a few seconds after the start: every request before
    the instant (by its own request time) is accepted, every one from the
    instant on is refused.  Polls until a refusal, bounded."""
    edge = new_token()
    at = int(time.time()) + 4
    h = rvhttpd.Httpd("expiry-edge", allowed=EXPIRY_WARNINGS, lean=True)
    h.backend = backend
    h.write_conf(TIME_LOG + """
<Location /redox/>
    RedoxVerify On
    RedoxVerificationToken edge {edge} expires={at}
    ProxyPass http://127.0.0.1:{bp}/e/
</Location>
""".format(edge=edge, at=utc(at), bp=backend.port))
    with h:
        seen = []
        deadline = time.time() + 60
        while not seen or seen[-1][1] != "expired":
            assert time.time() < deadline, seen
            r = h.request("/redox/x", headers=both(edge))
            usec, outcome, _ = time_line(h, r.rid)
            seen.append((usec, outcome, r.status))
            time.sleep(0.2)
        for usec, outcome, status in seen:
            want = ("expired", 401) if usec >= at * 1000000 else ("ok", 200)
            assert (outcome, status) == want, (at, seen)


BAD_WHEN = {
    "no-such-day": ("expires=2026-02-30", "bad expires=2026-02-30: no such date or time"),
    "leap-century": ("expires=2100-02-29", "bad expires=2100-02-29: no such date or time"),
    "hour-24": ("expires=2026-01-01T24:00:00Z",
                "bad expires=2026-01-01T24:00:00Z: no such date or time"),
    "word": ("expires=tomorrow", "bad expires=tomorrow: expected YYYY-MM-DD or "
                                 "YYYY-MM-DDTHH:MM:SSZ (UTC)"),
    "offset": ("expires=2026-01-01T00:00:00+01:00",
               "bad expires=2026-01-01T00:00:00+01:00: expected YYYY-MM-DD or"),
    "no-z": ("expires=2026-01-01T00:00:00", "bad expires=2026-01-01T00:00:00: expected"),
    "empty": ("expires=", "bad expires=: expected"),
    "twice": ("expires=2026-01-01 expires=2026-02-01", "expires= must be the last argument"),
}


@pytest.mark.parametrize("case", sorted(BAD_WHEN))
def test_rv_expiry_main_bad_when_stops_config_test(case):
    opt, message = BAD_WHEN[case]
    tok = new_token()
    res = rvhttpd.config_test("expiry-bad-" + case,
                              "<Location /redox/>\n    RedoxVerify On\n"
                              "    RedoxVerificationToken prod %s %s\n</Location>\n" % (tok, opt))
    assert res.rc != 0, res
    assert "Syntax OK" not in res.output
    assert "RedoxVerificationToken prod: " + message in res.output, res
    line = [i for i, l in enumerate(res.conf.read_text().splitlines(), 1)
            if "RedoxVerificationToken prod" in l]
    assert "Syntax error on line %d of %s:" % (line[0], res.conf) in res.output, res
    assert tok not in res.output


def test_rv_expiry_main_value_missing_before_expires():
    res = rvhttpd.config_test("expiry-bad-novalue",
                              "RedoxVerificationToken prod expires=2026-01-01\n")
    assert res.rc != 0 and "RedoxVerificationToken prod: expects NAME VALUE " \
        "[expires=WHEN]; the VALUE is missing" in res.output, res


def test_rv_expiry_main_exec_arguments_then_expires():
    """exec: arguments stay the program's; a last expires= is the option."""
    tok = new_token()
    prog = "#!/bin/sh\n[ \"$1\" = a ] && [ \"$2\" = b ] && [ $# = 2 ] && echo '%s'\n" % tok
    res = rvhttpd.config_test("expiry-exec",
                              "RedoxVerificationToken prod exec:@ROOT@/prog a b "
                              "expires=%s\n" % FAR,
                              files={"prog": (prog, 0o700)})
    assert res.rc == 0 and "Syntax OK" in res.output, res
    assert tok not in res.output


def test_rv_expiry_main_config_test_warns_but_passes():
    """apache2 -t: an expired token and one within 14 days are warnings
    naming them; the configuration is still OK (a restart after the date
    must not take the site down); 15 days out says nothing."""
    now = int(time.time())
    toks = [new_token() for _ in range(3)]
    res = rvhttpd.config_test(
        "expiry-warn",
        "RedoxVerificationToken gone %s expires=2020-02-29\n"
        "RedoxVerificationToken near %s expires=%s\n"
        "RedoxVerificationToken later %s expires=%s\n"
        % (toks[0], toks[1], utc(now + 13 * DAY), toks[2], utc(now + 15 * DAY)))
    assert res.rc == 0 and "Syntax OK" in res.output, res
    assert re.search(r"\[redox_verify:warn\].*RedoxVerificationToken gone \(%s:\d+\) expired at "
                     r"2020-02-29T00:00:00Z" % re.escape(str(res.conf)), res.output), res
    assert re.search(r"\[redox_verify:warn\].*RedoxVerificationToken near \(.*\) expires at %s, "
                     r"within 14 days" % utc(now + 13 * DAY), res.output), res
    assert "later" not in res.output
    for t in toks:
        assert t not in res.output


def test_rv_expiry_main_gauge_per_vhost_earliest():
    """A server-level token's expiry shows in every VirtualHost where a
    verified scope applies (not in the main server here, which has none); one NAME
    configured in two scopes of a VirtualHost with two expiries shows the
    earlier; a token without expires= has no expiry series."""
    toks = [new_token() for _ in range(4)]
    h = rvhttpd.Httpd("expiry-gauge", lean=True)
    h.write_conf("""
RedoxVerificationToken everywhere {0} expires=2098-01-01
<Location /metrics>
    SetHandler redox-verify-metrics
</Location>
<VirtualHost 127.0.0.1:{port}>
    ServerName g.test
    <Location /a/>
        RedoxVerify On
        RedoxVerificationToken prod {1} expires=2099-01-01
        RedoxVerificationToken plain {3}
    </Location>
    <Location /b/>
        RedoxVerify On
        RedoxVerificationToken prod {2} expires=2098-06-01T12:00:00Z
    </Location>
</VirtualHost>
""".format(*toks, port=h.port))
    with h:
        g = rvmetrics.gauges(h, host="g.test")
        expiry = {k[1:]: v for k, v in g.items() if k[0] == "expiry"}
        at = lambda t: calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))  # noqa: E731
        g_test = "g.test:%d" % h.port
        assert expiry == {(g_test, "prod"): at("2098-06-01T12:00:00Z"),
                          (g_test, "everywhere"): at("2098-01-01T00:00:00Z")}
        assert g[("last_accepted", "g.test:%d" % h.port, "plain")] == 0
