/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * libFuzzer harness: the two token headers as a pair (rv_verify) against a
 * small token set, in every RedoxTokenHeaders mode.
 *
 * Input: byte 0 says which headers are present (bit 0 Authorization, bit 1
 * verification-token) and when the request is (bits 2-3: before, at or
 * after the instant the token "rotated" expires); the rest is the
 * Authorization value, a newline, and the verification-token value.
 *
 * Invariants: the outcome is the one the manual's rules give, computed here
 * from the parsed headers and a plain comparison with the configured
 * tokens (no digest, no table); an accepted request names the token it
 * carried and returns that token's SHA-256; the expiry decision on the
 * accepted slot refuses "rotated" from its instant on and nothing else; an
 * empty set denies everything.  The strip decision (rv_bearer_is_ours)
 * holds exactly for a well-formed Bearer that carries a configured token,
 * digested or, after a check that read Authorization and accepted, not.
 */

#include "fuzz_common.h"
#include "rv_core.h"

static const struct {
    const char *name;
    const char *token;
} TOKENS[] = {
    {"alpha", "alpha-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"},
    {"beta", "beta!#$%&'*+-.^_`|~\"(),/:;<=>?@[\\]{}"},
    {"one", "1"},
    {"rotated", "Rotated-token-c0ffee-0000000000000000000000000000"},
};
#define NTOKENS  (sizeof(TOKENS) / sizeof(TOKENS[0]))
#define EXPIRING 3 /* "rotated" */
#define EXPIRES  ((apr_time_t)1767225600 * APR_USEC_PER_SEC)

static rv_tokenset *set, *empty;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t i;

    (void)argc;
    (void)argv;
    fz_init();
    FZ_CHECK(rv_digest_init());
    /* as an httpd child does: one digest context kept per thread */
    FZ_CHECK(rv_digest_cache_per_thread());
    set = rv_tokenset_make(fz_root);
    empty = rv_tokenset_make(fz_root);
    for (i = 0; i < NTOKENS; i++) {
        unsigned char d[RV_DIGEST_LEN];

        FZ_CHECK(rv_digest(TOKENS[i].token, strlen(TOKENS[i].token), d));
        FZ_CHECK(rv_tokenset_add_expiring(set, TOKENS[i].name, d,
                                          i == EXPIRING ? EXPIRES : RV_NEVER)
                 == NULL);
    }
    return 0;
}

static rv_outcome model(rv_hdr_mode mode, const char *auth, const char *vt,
                        size_t *which)
{
    const char *a = NULL, *v = NULL, *tok;
    apr_size_t alen = 0, vlen = 0, len;
    rv_presence pa = RV_ABSENT, pv = RV_ABSENT;
    size_t i;

    if (mode != RV_HDR_VTOKEN) {
        pa = rv_parse_bearer(auth, &a, &alen);
    }
    if (mode != RV_HDR_BEARER) {
        pv = rv_parse_vtoken(vt, &v, &vlen);
    }
    if (pa == RV_BAD || pv == RV_BAD) {
        return RV_MALFORMED;
    }
    if ((mode == RV_HDR_BOTH && (pa == RV_ABSENT || pv == RV_ABSENT))
        || (mode == RV_HDR_ANY && pa == RV_ABSENT && pv == RV_ABSENT)
        || (mode == RV_HDR_BEARER && pa == RV_ABSENT)
        || (mode == RV_HDR_VTOKEN && pv == RV_ABSENT)) {
        return RV_MISSING;
    }
    if (pa == RV_PRESENT && pv == RV_PRESENT
        && (alen != vlen || memcmp(a, v, alen) != 0)) {
        return RV_MISMATCH;
    }
    tok = pa == RV_PRESENT ? a : v;
    len = pa == RV_PRESENT ? alen : vlen;
    for (i = 0; i < NTOKENS; i++) {
        if (strlen(TOKENS[i].token) == len
            && memcmp(TOKENS[i].token, tok, len) == 0) {
            *which = i;
            return RV_OK;
        }
    }
    return RV_WRONG_TOKEN;
}

/* Is auth a well-formed Bearer that carries one of TOKENS? */
static int ours_model(const char *auth)
{
    const char *tok;
    apr_size_t len;
    size_t i;

    if (rv_parse_bearer(auth, &tok, &len) != RV_PRESENT) {
        return 0;
    }
    for (i = 0; i < NTOKENS; i++) {
        if (strlen(TOKENS[i].token) == len
            && memcmp(TOKENS[i].token, tok, len) == 0) {
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const apr_time_t when[4] = {EXPIRES - 1, EXPIRES, EXPIRES + 1,
                                       RV_NEVER - 1};
    char *buf, *auth = NULL, *vt = NULL, *nl;
    apr_time_t now;
    int mode, ours;

    if (size < 1) {
        return 0;
    }
    now = when[(data[0] >> 2) & 3];
    buf = fz_cstr(data + 1, size - 1);
    nl = strchr(buf, '\n');
    /* separate blocks, so ASan sees a read past either value */
    if (data[0] & 1) {
        auth = nl ? strndup(buf, (size_t)(nl - buf)) : strdup(buf);
        FZ_CHECK(auth != NULL);
    }
    if (data[0] & 2) {
        vt = strdup(nl ? nl + 1 : "");
        FZ_CHECK(vt != NULL);
    }

    ours = ours_model(auth);
    FZ_CHECK(rv_bearer_is_ours(set, auth, 0) == ours);
    FZ_CHECK(rv_bearer_is_ours(empty, auth, 0) == 0);
    for (mode = RV_HDR_BOTH; mode <= RV_HDR_VTOKEN; mode++) {
        unsigned char digest[RV_DIGEST_LEN], want[RV_DIGEST_LEN];
        const char *name = "unset";
        size_t which = NTOKENS;
        rv_outcome got, exp;

        got = rv_verify(set, (rv_hdr_mode)mode, auth, vt, &name, digest);
        exp = model((rv_hdr_mode)mode, auth, vt, &which);
        if (got != exp) {
            fprintf(stderr, "mode %d: rv_verify %s, expected %s\n", mode,
                    rv_outcome_name(got), rv_outcome_name(exp));
        }
        FZ_CHECK(got == exp);
        if (got == RV_OK) {
            int slot = -1;

            FZ_CHECK(
                rv_verify_slot(set, (rv_hdr_mode)mode, auth, vt, &slot, digest)
                == RV_OK);
            FZ_CHECK(
                rv_check_expiry(set, slot, now)
                == (which == EXPIRING && now >= EXPIRES ? RV_EXPIRED : RV_OK));
            FZ_CHECK(which < NTOKENS);
            FZ_CHECK(name != NULL && strcmp(name, TOKENS[which].name) == 0);
            FZ_CHECK(rv_digest(TOKENS[which].token,
                               strlen(TOKENS[which].token), want));
            FZ_CHECK(memcmp(digest, want, RV_DIGEST_LEN) == 0);
            if (mode != RV_HDR_VTOKEN) {
                FZ_CHECK(rv_bearer_is_ours(set, auth, 1) == ours);
            }
        }
        else {
            FZ_CHECK(name == NULL);
        }

        name = "unset";
        FZ_CHECK(rv_verify(empty, (rv_hdr_mode)mode, auth, vt, &name, digest)
                 == RV_NO_TOKENS);
        FZ_CHECK(name == NULL);
    }
    free(auth);
    free(vt);
    free(buf);
    return 0;
}
