/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * libFuzzer harness: the Authorization header value (rv_parse_bearer) and,
 * on the same bytes, the verification-token value (rv_parse_vtoken).
 *
 * Invariants: the outcome is the one the manual's grammar gives (stated
 * again here, independently); a PRESENT token lies within the value, is a
 * maximal run of visible ASCII, and only spaces or tabs follow it.
 */

#include <strings.h>

#include "fuzz_common.h"
#include "rv_core.h"

FZ_INITIALIZE_APR_ONLY

/* OWS, a run of visible ASCII, OWS, end.  Returns the run's offset or -1. */
static long token_model(const char *v, size_t i)
{
    size_t start;

    start = i;
    while (fz_visible(v[i])) {
        i++;
    }
    if (i == start) {
        return -1;
    }
    while (fz_ows(v[i])) {
        i++;
    }
    return v[i] == '\0' ? (long)start : -1;
}

/* "Bearer" (any case), one or more spaces, a token.  Another scheme is
 * ABSENT; "Bearer" alone, "Bearer<TAB>..." or a bad token is BAD. */
static rv_presence bearer_model(const char *v, long *at)
{
    size_t i = 0;

    *at = -1;
    while (fz_ows(v[i])) {
        i++;
    }
    if (strncasecmp(v + i, "bearer", 6) != 0) {
        return RV_ABSENT;
    }
    i += 6;
    if (v[i] == '\0' || v[i] == '\t') {
        return RV_BAD;
    }
    if (v[i] != ' ') {
        return RV_ABSENT;
    }
    while (v[i] == ' ') {
        i++;
    }
    *at = token_model(v, i);
    return *at < 0 ? RV_BAD : RV_PRESENT;
}

static void check_present(const char *v, const char *tok, apr_size_t len,
                          long at)
{
    size_t n = strlen(v), i;

    FZ_CHECK(tok != NULL && tok >= v && (size_t)(tok - v) <= n);
    FZ_CHECK(len >= 1 && len <= n - (size_t)(tok - v));
    FZ_CHECK(tok - v == at);
    for (i = 0; i < len; i++) {
        FZ_CHECK(fz_visible(tok[i]));
    }
    FZ_CHECK(tok == v || !fz_visible(tok[-1]));
    for (i = (size_t)(tok - v) + len; i < n; i++) {
        FZ_CHECK(fz_ows(v[i]));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *v = fz_cstr(data, size);
    const char *tok = NULL;
    apr_size_t len = 0;
    rv_presence pr, want;
    long at;
    size_t i = 0;

    pr = rv_parse_bearer(v, &tok, &len);
    want = bearer_model(v, &at);
    FZ_CHECK(pr == want);
    if (pr == RV_PRESENT) {
        check_present(v, tok, len, at);
        FZ_CHECK(tok > v && tok[-1] == ' ');
    }

    tok = NULL;
    len = 0;
    pr = rv_parse_vtoken(v, &tok, &len);
    while (fz_ows(v[i])) {
        i++;
    }
    at = token_model(v, i);
    FZ_CHECK(pr == (at < 0 ? RV_BAD : RV_PRESENT));
    if (pr == RV_PRESENT) {
        check_present(v, tok, len, at);
    }

    FZ_CHECK(rv_parse_bearer(NULL, &tok, &len) == RV_ABSENT);
    FZ_CHECK(rv_parse_vtoken(NULL, &tok, &len) == RV_ABSENT);
    free(v);
    return 0;
}
