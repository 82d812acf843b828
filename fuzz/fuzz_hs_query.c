/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * libFuzzer harness: the handshake's GET query string (rv_hs_parse_query)
 * and its redaction for the logs (rv_hs_redact_query, and rv_hs_redact_in
 * on a request line).
 *
 * Invariants, against a model of the manual's rules written here:
 *  - parse: a handshake iff "challenge" appears once, neither parameter
 *    appears twice and both decode (percent escapes, no %00); the values
 *    are the decoded ones; a refusal gives one of the fixed reasons.
 *  - redaction: NULL iff no verification-token parameter; otherwise every
 *    such pair reads verification-token=REDACTED and everything else is
 *    unchanged, within the length the function allocates for.
 *  - a token value planted into the query (anywhere, between pairs) never
 *    survives redaction.
 *  - a request line: its query, up to the first space or '#', redacted as
 *    above and the rest unchanged; the line itself when nothing changes.
 */

#include "fuzz_common.h"
#include "rv_handshake.h"

#define TOKEN_KEY "verification-token"
#define MASKED    TOKEN_KEY "=REDACTED"
#define PLANTED   "Pl4nted-Secret-9c1e0b7f3a5d" /* not in a dictionary */

static const char *const REASONS[] = {
    "no query string",
    "a handshake parameter appears twice",
    "bad percent-encoding in a handshake parameter",
    "no challenge parameter",
};

FZ_INITIALIZE_APR_ONLY

static int hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes n bytes into a malloc'd string; NULL on a bad escape or
 * %00.  '+' stays '+'. */
static char *decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    size_t i;

    FZ_CHECK(out != NULL);
    for (i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (n - i < 3 || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0
            || (s[i + 1] == '0' && s[i + 2] == '0')) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hex(s[i + 1]) << 4 | hex(s[i + 2]));
        i += 2;
    }
    *o = '\0';
    return out;
}

struct parsed {
    int ok;
    char *challenge, *token;
};

static void parse_model(const char *q, struct parsed *m)
{
    int n_ch = 0, n_tok = 0, bad = 0;
    const char *s = q;

    m->challenge = m->token = NULL;
    for (;;) {
        size_t n = strcspn(s, "&"), k = strcspn(s, "=&");
        const char *v = k < n ? s + k + 1 : s + n;
        size_t vlen = (size_t)(s + n - v);
        char **slot = NULL;

        if (k == 9 && strncmp(s, "challenge", 9) == 0) {
            slot = &m->challenge;
            n_ch++;
        }
        else if (k == 18 && strncmp(s, TOKEN_KEY, 18) == 0) {
            slot = &m->token;
            n_tok++;
        }
        if (slot != NULL && *slot == NULL) {
            *slot = decode(v, vlen);
            bad |= *slot == NULL;
        }
        else if (slot != NULL) {
            char *d = decode(v, vlen);

            bad |= d == NULL;
            free(d);
        }
        if (s[n] == '\0') {
            break;
        }
        s += n + 1;
    }
    m->ok = n_ch == 1 && n_tok <= 1 && !bad;
}

/* The redacted query, or NULL when there is no token parameter. */
static char *redact_model(const char *q)
{
    size_t len = strlen(q);
    char *out = malloc(len + (len / 18 + 1) * sizeof(MASKED) + 1), *o = out;
    const char *s = q;
    int found = 0;

    FZ_CHECK(out != NULL);
    while (*s) {
        size_t n = strcspn(s, "&"), k = strcspn(s, "=&");

        if (k == 18 && strncmp(s, TOKEN_KEY, 18) == 0) {
            memcpy(o, MASKED, sizeof(MASKED) - 1);
            o += sizeof(MASKED) - 1;
            found = 1;
        }
        else {
            memcpy(o, s, n);
            o += n;
        }
        s += n;
        if (*s == '&') {
            *o++ = *s++;
        }
    }
    *o = '\0';
    if (!found) {
        free(out);
        return NULL;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    char *q = fz_cstr(data, size), *want, *planted, *red;
    const char *token = (const char *)1, *challenge = (const char *)1, *why;
    struct parsed m;
    size_t len = strlen(q), cut;
    int had_token;

    FZ_CHECK(apr_pool_create(&p, fz_root) == APR_SUCCESS);

    why = rv_hs_parse_query(p, q, &token, &challenge);
    parse_model(q, &m);
    FZ_CHECK((why == NULL) == m.ok);
    if (why == NULL) {
        FZ_CHECK(challenge != NULL && strcmp(challenge, m.challenge) == 0);
        FZ_CHECK(m.token ? token != NULL && strcmp(token, m.token) == 0
                         : token == NULL);
        FZ_CHECK(rv_hs_challenge_valid(challenge)
                 == fz_challenge_ok(challenge));
    }
    else {
        FZ_CHECK(FZ_KNOWN(why, REASONS));
    }
    free(m.challenge);
    free(m.token);

    red = rv_hs_redact_query(p, q);
    want = redact_model(q);
    had_token = want != NULL;
    FZ_CHECK((red == NULL) == (want == NULL));
    if (red != NULL) {
        FZ_CHECK(strcmp(red, want) == 0);
        /* what rv_hs_redact_query allocates, less its NUL */
        FZ_CHECK(strlen(red) <= len + (len / 18 + 1) * sizeof("REDACTED"));
    }
    free(want);

    /* Plant a token between two pairs, at a place the input chooses. */
    if (strstr(q, "Pl4nted") == NULL) {
        cut = len ? (unsigned char)q[0] % (len + 1) : 0;
        cut += strcspn(q + cut, "&");
        planted = malloc(len + sizeof(TOKEN_KEY "=" PLANTED "&&"));
        FZ_CHECK(planted != NULL);
        sprintf(planted, "%.*s&" TOKEN_KEY "=" PLANTED "%s", (int)cut, q,
                q + cut);
        red = rv_hs_redact_query(p, planted);
        FZ_CHECK(red != NULL && strstr(red, PLANTED) == NULL);
        if (!had_token
            && rv_hs_parse_query(p, planted, &token, &challenge) == NULL) {
            FZ_CHECK(token != NULL && strcmp(token, PLANTED) == 0);
        }
        free(planted);
    }

    /* The input as the query of a request line. */
    {
        size_t n = strcspn(q, " #");
        char *line = malloc(len + sizeof("GET /p? HTTP/1.1")), *query;
        char *got;

        FZ_CHECK(line != NULL);
        sprintf(line, "GET /p?%s HTTP/1.1", q);
        query = strndup(q, n);
        FZ_CHECK(query != NULL);
        want = redact_model(query);
        got = rv_hs_redact_in(p, line);
        if (want == NULL) {
            FZ_CHECK(got == line);
        }
        else {
            FZ_CHECK(strncmp(got, "GET /p?", 7) == 0);
            FZ_CHECK(strncmp(got + 7, want, strlen(want)) == 0);
            FZ_CHECK(strcmp(got + 7 + strlen(want), line + 7 + n) == 0);
        }
        free(want);
        free(query);
        free(line);
    }

    FZ_CHECK(rv_hs_parse_query(p, NULL, &token, &challenge) != NULL);
    FZ_CHECK(rv_hs_redact_query(p, NULL) == NULL);
    free(q);
    apr_pool_destroy(p);
    return 0;
}
