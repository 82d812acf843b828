"""Hostile token headers, sent byte for byte over a raw socket (a client
library would normalise most of them).  Every case asserts the exact status,
who decided (the module's denial reason, or httpd itself before the module
ran), that nothing reached the backend when denied (or exactly one stripped
request when accepted), and that the server still serves a valid request."""

import base64

import pytest

import rvhttpd
import rvraw
from rvhostile import (BIG_FIELD_LIMIT, LONGEST_FIELD_LINE, TOKEN_MAX, Hostile,
                       token_of_length)

H = {}


@pytest.fixture(scope="module")
def srv(backend):
    s = Hostile("hostile-headers", backend).start()
    H["srv"] = s
    yield s
    s.stop()


def changed(t, i):
    """t with the character at index i replaced by another visible one."""
    c = "A" if t[i] != "A" else "B"
    return t[:i] + c + t[i + 1:]


def last(t):
    return changed(t, len(t) - 1)


def utf8_swap(t, i):
    """t with the character at index i replaced by a 2-byte UTF-8 one."""
    return t[:i].encode() + "\u00e9".encode("utf-8") + t[i + 1:].encode()


def auth(v):
    return "Authorization: " + v if isinstance(v, str) else b"Authorization: " + v


def vt(v):
    return "verification-token: " + v if isinstance(v, str) else b"verification-token: " + v


def both(t):
    bearer = "Bearer " if isinstance(t, str) else b"Bearer "
    return [auth(bearer + t), vt(t)]


# id: (lines(T), status, reason, accepted NAME, port)
#   reason None with a status other than 200: httpd answers before the module
CASES = {
    # -- controls and what must still be accepted -------------------------------
    "valid-both-headers": (lambda T: both(T["alpha"]), 200, None, "alpha", "http"),
    "second-accepted-token": (lambda T: both(T["beta"]), 200, None, "beta", "http"),
    "scheme-lowercase-bearer": (lambda T: [auth("bearer " + T["alpha"]), vt(T["alpha"])],
                                200, None, "alpha", "http"),
    "scheme-uppercase-BEARER": (lambda T: [auth("BEARER " + T["alpha"]), vt(T["alpha"])],
                                200, None, "alpha", "http"),
    "scheme-mixed-case": (lambda T: [auth("bEaReR " + T["alpha"]), vt(T["alpha"])],
                          200, None, "alpha", "http"),
    "multiple-spaces-after-scheme": (lambda T: [auth("Bearer     " + T["alpha"]), vt(T["alpha"])],
                                     200, None, "alpha", "http"),
    "thousands-of-spaces-after-scheme": (lambda T: [auth("Bearer" + " " * 8000 + T["alpha"]),
                                                    vt(T["alpha"])], 200, None, "alpha", "http"),
    "leading-spaces-authorization": (lambda T: ["Authorization:     Bearer " + T["alpha"],
                                                vt(T["alpha"])], 200, None, "alpha", "http"),
    "trailing-spaces-authorization": (lambda T: [auth("Bearer " + T["alpha"] + "    "),
                                                 vt(T["alpha"])], 200, None, "alpha", "http"),
    "leading-tab-authorization": (lambda T: ["Authorization:\tBearer " + T["alpha"],
                                             vt(T["alpha"])], 200, None, "alpha", "http"),
    "leading-spaces-verification-token": (lambda T: [auth("Bearer " + T["alpha"]),
                                                     "verification-token:     " + T["alpha"]],
                                          200, None, "alpha", "http"),
    "trailing-tab-and-spaces-verification-token": (
        lambda T: [auth("Bearer " + T["alpha"]), vt(T["alpha"] + " \t \t")],
        200, None, "alpha", "http"),
    "no-space-after-colons": (lambda T: ["Authorization:Bearer " + T["alpha"],
                                         "verification-token:" + T["alpha"]],
                              200, None, "alpha", "http"),
    "header-names-uppercase": (lambda T: ["AUTHORIZATION: Bearer " + T["alpha"],
                                          "VERIFICATION-TOKEN: " + T["alpha"]],
                               200, None, "alpha", "http"),
    "header-names-odd-case": (lambda T: ["aUtHoRiZaTiOn: Bearer " + T["alpha"],
                                         "vErIfIcAtIoN-tOkEn: " + T["alpha"]],
                              200, None, "alpha", "http"),
    # RFC 9112 5.2: a server may replace obs-fold with a space; httpd does,
    # so the token arrives whole and is accepted
    "obs-fold-verification-token": (lambda T: [auth("Bearer " + T["alpha"]),
                                               "verification-token:\r\n " + T["alpha"]],
                                    200, None, "alpha", "http"),
    "token-at-header-limit-accepted": (lambda T: both(T["atlimit"]), 200, None, "atlimit",
                                       "http"),
    "token-8k-accepted-under-larger-limit": (lambda T: both(T["big8k"]), 200, None, "big8k",
                                             "big"),
    # -- an expired token (gone): refused as expired only when it is exactly
    # the configured one; every other variant is what it would be anyway --------
    "expired-token-both": (lambda T: both(T["gone"]), 401, "expired", None, "http"),
    "expired-token-scheme-uppercase": (lambda T: [auth("BEARER " + T["gone"]), vt(T["gone"])],
                                       401, "expired", None, "http"),
    "expired-token-trailing-spaces": (lambda T: [auth("Bearer " + T["gone"] + "  "),
                                                 vt(T["gone"] + "\t")], 401, "expired", None,
                                      "http"),
    "expired-token-last-char-changed": (lambda T: both(last(T["gone"])), 401, "wrong-token",
                                        None, "http"),
    "expired-token-prefix": (lambda T: both(T["gone"][:-1]), 401, "wrong-token", None, "http"),
    "expired-and-valid-token": (lambda T: [auth("Bearer " + T["gone"]), vt(T["alpha"])], 401,
                                "mismatch", None, "http"),
    "valid-and-expired-token": (lambda T: [auth("Bearer " + T["alpha"]), vt(T["gone"])], 401,
                                "mismatch", None, "http"),
    "expired-token-then-junk": (lambda T: [auth("Bearer " + T["gone"] + " x"), vt(T["gone"])],
                                401, "malformed", None, "http"),
    "expired-token-twice-in-authorization": (lambda T: [auth("Bearer " + T["gone"]),
                                                        auth("Bearer " + T["gone"]),
                                                        vt(T["gone"])], 401, "malformed", None,
                                             "http"),
    "expired-token-other-vhost": (lambda T: both(T["gone"]), 401, "wrong-token", None, "big"),
    # -- absent, empty, malformed --------------------------------------------------
    "no-token-headers": (lambda T: [], 401, "missing", None, "http"),
    "empty-authorization": (lambda T: ["Authorization:", vt(T["alpha"])], 401, "missing", None,
                            "http"),
    "blank-authorization": (lambda T: ["Authorization:    ", vt(T["alpha"])], 401, "missing",
                            None, "http"),
    "empty-verification-token": (lambda T: [auth("Bearer " + T["alpha"]), "verification-token:"],
                                 401, "malformed", None, "http"),
    "both-headers-empty": (lambda T: ["Authorization:", "verification-token:"], 401, "malformed",
                           None, "http"),
    "bearer-without-token": (lambda T: [auth("Bearer"), vt(T["alpha"])], 401, "malformed", None,
                             "http"),
    "bearer-space-without-token": (lambda T: [auth("Bearer   "), vt(T["alpha"])], 401,
                                   "malformed", None, "http"),
    "bearer-tab-separator": (lambda T: [auth("Bearer\t" + T["alpha"]), vt(T["alpha"])], 401,
                             "malformed", None, "http"),
    "bearer-space-then-tab": (lambda T: [auth("Bearer \t" + T["alpha"]), vt(T["alpha"])], 401,
                              "malformed", None, "http"),
    "bearer-glued-to-token": (lambda T: [auth("Bearer" + T["alpha"]), vt(T["alpha"])], 401,
                              "missing", None, "http"),
    "bearer-colon-token": (lambda T: [auth("Bearer:" + T["alpha"]), vt(T["alpha"])], 401,
                           "missing", None, "http"),
    "token-inner-space-bearer": (lambda T: [auth("Bearer " + T["alpha"][:9] + " "
                                                 + T["alpha"][9:]), vt(T["alpha"])],
                                 401, "malformed", None, "http"),
    "token-inner-tab-verification-token": (lambda T: [auth("Bearer " + T["alpha"]),
                                                      vt(T["alpha"][:9] + "\t" + T["alpha"][9:])],
                                           401, "malformed", None, "http"),
    "verification-token-with-scheme": (lambda T: [auth("Bearer " + T["alpha"]),
                                                  vt("Bearer " + T["alpha"])],
                                       401, "malformed", None, "http"),
    "token-trailing-comma": (lambda T: [auth("Bearer " + T["alpha"] + ","), vt(T["alpha"])],
                             401, "mismatch", None, "http"),
    "token-quoted-both": (lambda T: both('"%s"' % T["alpha"]), 401, "wrong-token", None, "http"),
    # -- other schemes and other header names ------------------------------------
    "authorization-basic-with-token-as-password": (
        lambda T: [auth("Basic " + base64.b64encode(("redox:" + T["alpha"]).encode()).decode()),
                   vt(T["alpha"])], 401, "missing", None, "http"),
    "authorization-basic-only": (lambda T: [auth("Basic " + base64.b64encode(
        ("redox:" + T["alpha"]).encode()).decode())], 401, "missing", None, "http"),
    "authorization-token-scheme": (lambda T: [auth("Token " + T["alpha"]), vt(T["alpha"])], 401,
                                   "missing", None, "http"),
    "bearer-only": (lambda T: [auth("Bearer " + T["alpha"])], 401, "missing", None, "http"),
    "verification-token-only": (lambda T: [vt(T["alpha"])], 401, "missing", None, "http"),
    "underscore-header-name": (lambda T: [auth("Bearer " + T["alpha"]),
                                          "verification_token: " + T["alpha"]],
                               401, "missing", None, "http"),
    "x-prefixed-header-name": (lambda T: [auth("Bearer " + T["alpha"]),
                                          "X-Verification-Token: " + T["alpha"]],
                               401, "missing", None, "http"),
    "proxy-authorization-instead": (lambda T: ["Proxy-Authorization: Bearer " + T["alpha"],
                                               vt(T["alpha"])], 401, "missing", None, "http"),
    # -- near misses of the token --------------------------------------------------
    "token-first-char-changed": (lambda T: both(changed(T["alpha"], 0)), 401, "wrong-token",
                                 None, "http"),
    "token-middle-char-changed": (lambda T: both(changed(T["alpha"], len(T["alpha"]) // 2)),
                                  401, "wrong-token", None, "http"),
    "token-last-char-changed": (lambda T: both(last(T["alpha"])),
                                401, "wrong-token", None, "http"),
    "token-prefix": (lambda T: both(T["alpha"][:-1]), 401, "wrong-token", None, "http"),
    "token-extension": (lambda T: both(T["alpha"] + "A"), 401, "wrong-token", None, "http"),
    "token-case-swapped": (lambda T: both(T["alpha"].swapcase()), 401, "wrong-token", None,
                           "http"),
    "token-doubled": (lambda T: both(T["alpha"] * 2), 401, "wrong-token", None, "http"),
    "unknown-token": (lambda T: both(T["other"]), 401, "wrong-token", None, "http"),
    "bearer-changed-only": (lambda T: [auth("Bearer " + changed(T["alpha"], 0)), vt(T["alpha"])],
                            401, "mismatch", None, "http"),
    "verification-token-changed-only": (lambda T: [auth("Bearer " + T["alpha"]),
                                                   vt(last(T["alpha"]))],
                                        401, "mismatch", None, "http"),
    "two-different-accepted-tokens": (lambda T: [auth("Bearer " + T["alpha"]), vt(T["beta"])],
                                      401, "mismatch", None, "http"),
    # -- duplicates ---------------------------------------------------------------
    "authorization-duplicated": (lambda T: both(T["alpha"]) + [auth("Bearer " + T["alpha"])],
                                 401, "malformed", None, "http"),
    "verification-token-duplicated": (lambda T: both(T["alpha"]) + [vt(T["alpha"])],
                                      401, "malformed", None, "http"),
    "verification-token-50-times": (lambda T: [auth("Bearer " + T["alpha"])]
                                    + [vt(T["alpha"])] * 50, 401, "malformed", None, "http"),
    "both-duplicated-odd-case": (lambda T: both(T["alpha"]) + ["AUTHORIZATION: Bearer "
                                                               + T["alpha"],
                                                               "Verification-Token: "
                                                               + T["alpha"]],
                                 401, "malformed", None, "http"),
    "authorization-basic-and-bearer": (lambda T: [auth("Basic dXNlcjpwYXNz")] + both(T["alpha"]),
                                       401, "missing", None, "http"),
    "authorization-bearer-and-basic": (lambda T: both(T["alpha"]) + [auth("Basic dXNlcjpwYXNz")],
                                       401, "malformed", None, "http"),
    # -- bytes outside visible ASCII ------------------------------------------------
    "latin1-byte-after-token": (lambda T: [auth("Bearer " + T["alpha"]),
                                           vt(T["alpha"].encode() + b"\xe9")],
                                401, "malformed", None, "http"),
    "utf8-char-after-bearer-token": (lambda T: [auth(("Bearer " + T["alpha"] + "\u00e9")
                                                     .encode("utf-8")), vt(T["alpha"])],
                                     401, "malformed", None, "http"),
    "utf8-char-replaces-token-char": (lambda T: both(utf8_swap(T["alpha"], 5)), 401,
                                      "malformed", None, "http"),
    # httpd refuses control characters in a field value itself (400)
    "control-byte-0x01-in-token": (lambda T: [auth("Bearer " + T["alpha"]),
                                              vt(T["alpha"][:9].encode() + b"\x01"
                                                 + T["alpha"][9:].encode())],
                                   400, None, None, "http"),
    "del-byte-after-token": (lambda T: [auth("Bearer " + T["alpha"]),
                                        vt(T["alpha"].encode() + b"\x7f")], 400, None, None,
                             "http"),
    "nul-byte-after-token": (lambda T: [auth(b"Bearer " + T["alpha"].encode() + b"\x00x"),
                                        vt(T["alpha"])], 400, None, None, "http"),
    "bare-cr-in-value": (lambda T: [auth("Bearer " + T["alpha"]),
                                    vt(T["alpha"].encode() + b"\rX: y")], 400, None, None,
                         "http"),
    "bare-lf-line-end": (lambda T: [vt(T["alpha"]) + "\n" + auth("Bearer " + T["alpha"])], 400,
                         None, None, "http"),
    "space-before-colon": (lambda T: [auth("Bearer " + T["alpha"]),
                                      "verification-token : " + T["alpha"]], 400, None, None,
                           "http"),
    "non-ascii-header-name": (lambda T: [auth("Bearer " + T["alpha"]),
                                         "verification-tok\u00e9n: ".encode("utf-8")
                                         + T["alpha"].encode()], 400, None, None, "http"),
    # -- sizes ---------------------------------------------------------------------
    "unknown-token-at-header-limit": (lambda T: both(last(T["atlimit"])), 401,
                                      "wrong-token", None, "http"),
    "token-one-byte-past-header-limit": (lambda T: both(T["atlimit"] + "A"), 400, None, None,
                                         "http"),
    "token-8k-past-default-limit": (lambda T: both(T["big8k"]), 400, None, None, "http"),
    "unknown-token-8k-under-larger-limit": (lambda T: both(T["other8k"]), 401, "wrong-token",
                                            None, "big"),
    "token-over-8k-under-larger-limit": (lambda T: both(T["big8k"] + "A"), 401, "wrong-token",
                                         None, "big"),
}


def _padded(rid, length):
    """A header line of exactly length bytes, named after rid."""
    name = "X-Pad-" + rid
    return name + ": " + "p" * (length - len(name) - 2)


@pytest.mark.parametrize("port,longest", [("http", LONGEST_FIELD_LINE),
                                          ("big", BIG_FIELD_LIMIT + 1)])
def test_rv_hostile_matrix_limits_as_documented(srv, port, longest):
    """The field-line sizes the matrix relies on, as the server enforces
    them: on each port a line of `longest` bytes is read and the request
    served, and one byte more is refused by httpd itself (400, its AH00561
    line naming the field) before the module runs."""
    port = getattr(srv, port)
    ok, over = rvhttpd.new_rid(), rvhttpd.new_rid()
    ex = rvraw.exchange(port, rvraw.request(target=srv.target(ok),
                                            lines=srv.good_lines() + [_padded(ok, longest)]))
    assert len(ex.final) == 1, ex
    srv.assert_passed(ok, ex.final[0])
    ex = rvraw.exchange(port, rvraw.request(target=srv.target(over), lines=srv.good_lines()
                                            + [_padded(over, longest + 1)]))
    assert len(ex.final) == 1, ex
    srv.assert_denied(over, ex.final[0], 400)
    lines = [l for l in srv.h.settled_error_lines("AH00561") if "X-Pad-" + over in l]
    assert len(lines) == 1 and "LimitRequestFieldSize" in lines[0], lines


def test_rv_hostile_matrix_token_max_as_documented():
    """The longest token the matrix sends as configured (TOKEN_MAX), as the
    module enforces it: a token of that many characters is taken, one more
    is refused at apache2 -t with the limit in the message."""
    for n, ok in ((TOKEN_MAX, True), (TOKEN_MAX + 1, False)):
        tok = token_of_length(n)
        res = rvhttpd.config_test("token-max-%d" % n, "RedoxVerificationToken t file:@ROOT@/"
                                  "secrets/t.token\n", files={"secrets/t.token": (tok + "\n",
                                                                                 0o600)})
        if ok:
            assert res.rc == 0, res
        else:
            assert res.rc != 0, res
            assert "RedoxVerificationToken" in res.output and "1 to %d" % TOKEN_MAX in res.output, \
                res


@pytest.mark.parametrize("case", list(CASES))
def test_rv_hostile_header(srv, case):
    build, status, reason, name, port = CASES[case]
    rid = rvhttpd.new_rid()
    port = getattr(srv, port)
    ex = rvraw.exchange(port, rvraw.request(target=srv.target(rid), lines=build(srv.T)))
    assert len(ex.final) == 1 and not ex.interim, ex
    resp = ex.final[0]
    if status == 200:
        srv.assert_passed(rid, resp, name)
    else:
        srv.assert_denied(rid, resp, status, reason)
    fields = srv.access_fields(rid)
    if status == 200:
        assert fields == (name, "ok", 200), fields
    elif reason is not None:
        assert fields == ("-", reason, status), fields
    else:
        assert fields == ("-", "-", status), fields   # the module never ran
    srv.assert_still_serving(port)
