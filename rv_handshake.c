/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * rv_handshake: parsing of Redox's endpoint-verification handshake.  The
 * JSON body is parsed by jansson, never by hand.
 */

#include <string.h>

#include <apr_strings.h>

#include <jansson.h>

#include "rv_core.h"
#include "rv_handshake.h"

#define TOKEN_KEY     RV_VTOKEN
#define CHALLENGE_KEY "challenge"

int rv_hs_is_json(const char *ct)
{
    apr_size_t n;

    if (ct == NULL) {
        return 0;
    }
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    n = strcspn(ct, "; \t"); /* the media type, no parameters */
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        return 1;
    }
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0
           && memchr(ct, '/', n) != NULL;
}

const char *rv_hs_parse_body(apr_pool_t *p, const char *body, apr_size_t len,
                             const char **token, const char **challenge)
{
    json_error_t jerr;
    json_t *root, *tok, *chal;
    const char *why = NULL;

    if (len > RV_HS_BODY_MAX) {
        return "body larger than 4 KiB";
    }
    /* Duplicate keys are refused; trailing data after the value is refused
     * (the EOF check is on by default); so are NUL escapes and bad UTF-8. */
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return "body is not well-formed JSON";
    }
    if (!json_is_object(root)) {
        why = "JSON body is not an object";
    }
    else if (!json_is_string(tok = json_object_get(root, TOKEN_KEY))) {
        why = "JSON body has no verification-token string";
    }
    else if (!json_is_string(chal = json_object_get(root, CHALLENGE_KEY))) {
        why = "JSON body has no challenge string";
    }
    else {
        *token =
            apr_pstrmemdup(p, json_string_value(tok), json_string_length(tok));
        *challenge = apr_pstrmemdup(p, json_string_value(chal),
                                    json_string_length(chal));
    }
    json_decref(root);
    return why;
}

/* Percent-decodes [s, s + n) into a new string; NULL on a bad escape or a
 * decoded NUL. */
static char *pct_decode(apr_pool_t *p, const char *s, apr_size_t n)
{
    char *out = apr_palloc(p, n + 1), *o = out;
    apr_size_t i;

    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n) {
                return NULL;
            }
            hi = rv_hexval(s[i + 1]);
            lo = rv_hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return NULL;
            }
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        }
        else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

const char *rv_hs_parse_query(apr_pool_t *p, const char *args,
                              const char **token, const char **challenge)
{
    const char *s = args;

    *token = NULL;
    *challenge = NULL;
    if (args == NULL) {
        return "no query string";
    }
    while (*s) {
        apr_size_t n = strcspn(s, "&"), klen = strcspn(s, "=&");
        const char **slot = NULL;

        if (klen == sizeof(CHALLENGE_KEY) - 1
            && !strncmp(s, CHALLENGE_KEY, klen)) {
            slot = challenge;
        }
        else if (klen == sizeof(TOKEN_KEY) - 1
                 && !strncmp(s, TOKEN_KEY, klen)) {
            slot = token;
        }
        if (slot != NULL) {
            const char *v = s + klen + (klen < n ? 1 : 0);

            if (*slot != NULL) {
                return "a handshake parameter appears twice";
            }
            *slot = pct_decode(p, v, (apr_size_t)(s + n - v));
            if (*slot == NULL) {
                return "bad percent-encoding in a handshake parameter";
            }
        }
        s += n;
        if (*s == '&') {
            s++;
        }
    }
    return *challenge ? NULL : "no challenge parameter";
}

int rv_hs_challenge_valid(const char *c)
{
    return rv_chars_valid(c, "._~-", RV_HS_CHALLENGE_MAX);
}

char *rv_hs_redact_query(apr_pool_t *p, const char *args)
{
    static const char mask[] = "REDACTED";
    const char *s = args;
    char *out, *o;
    apr_size_t len;
    int found = 0;

    if (args == NULL || strstr(args, TOKEN_KEY) == NULL) {
        return NULL;
    }
    /* Each redacted pair has an 18-character key and grows by at most
     * "=" and the mask. */
    len = strlen(args);
    o = out = apr_palloc(
        p, len + (len / (sizeof(TOKEN_KEY) - 1) + 1) * sizeof(mask) + 1);
    while (*s) {
        apr_size_t n = strcspn(s, "&"), klen = strcspn(s, "=&");

        memcpy(o, s, klen);
        o += klen;
        if (klen == sizeof(TOKEN_KEY) - 1 && !strncmp(s, TOKEN_KEY, klen)) {
            found = 1;
            *o++ = '=';
            memcpy(o, mask, sizeof(mask) - 1);
            o += sizeof(mask) - 1;
        }
        else {
            memcpy(o, s + klen, n - klen);
            o += n - klen;
        }
        s += n;
        if (*s == '&') {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return found ? out : NULL;
}

char *rv_hs_redact_in(apr_pool_t *p, char *s)
{
    char *q = s ? strchr(s, '?') : NULL, *masked;
    apr_size_t n;

    /* Runs for every logged request: no copy unless there is a token. */
    if (q == NULL || strstr(q, TOKEN_KEY) == NULL) {
        return s;
    }
    q++;
    n = strcspn(q, " #");
    masked = rv_hs_redact_query(p, apr_pstrmemdup(p, q, n));
    if (masked == NULL) {
        return s;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, s, q - s), masked, q + n, NULL);
}

rv_outcome rv_hs_decide(const rv_tokenset *s, const char *token,
                        const char *challenge, apr_time_t now, int *slot)
{
    unsigned char digest[RV_DIGEST_LEN];
    rv_outcome outcome;

    *slot = -1;
    if (token == NULL || *token == '\0') {
        return rv_tokenset_count(s) ? RV_MISSING : RV_NO_TOKENS;
    }
    outcome = rv_check_token_slot(s, token, strlen(token), slot, digest);
    if (outcome == RV_OK) {
        outcome = rv_check_expiry(s, *slot, now);
    }
    if (outcome == RV_OK && !rv_hs_challenge_valid(challenge)) {
        outcome = RV_BAD_CHALLENGE;
    }
    return outcome;
}
