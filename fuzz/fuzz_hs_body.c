/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * libFuzzer harness: the handshake's POST body (rv_hs_parse_body), the
 * challenge check (rv_hs_challenge_valid) and, on the same bytes as a
 * Content-Type value, rv_hs_is_json.
 *
 * Invariants: a body over 4 KiB is never a handshake; an accepted body is
 * a JSON object (by jansson, with the same flags) whose two members are
 * the strings returned, copied whole; a refused one gets one of the fixed
 * reasons, which never carry a value from the body; the challenge check
 * agrees with the manual's rule; rv_hs_is_json agrees with its media-type
 * rule.
 */

#include <strings.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "rv_handshake.h"

static const char *const REASONS[] = {
    "body larger than 4 KiB",
    "body is not well-formed JSON",
    "JSON body is not an object",
    "JSON body has no verification-token string",
    "JSON body has no challenge string",
};

FZ_INITIALIZE_APR_ONLY

/* Equal to a jansson string member, whole (no NUL inside: jansson refuses
 * \u0000 without JSON_ALLOW_NUL). */
static int same_string(const char *got, json_t *member)
{
    return json_is_string(member) && strlen(got) == json_string_length(member)
           && memcmp(got, json_string_value(member), strlen(got)) == 0;
}

/* application/json or a type/subtype+json media type, parameters aside. */
static int json_type_model(const char *ct)
{
    size_t n;

    while (fz_ows(*ct)) {
        ct++;
    }
    n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) {
        return 1;
    }
    return n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0
           && memchr(ct, '/', n) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p;
    const char *token = NULL, *challenge = NULL, *why;
    char *s;

    FZ_CHECK(apr_pool_create(&p, fz_root) == APR_SUCCESS);
    /* libFuzzer's buffer is exactly size bytes: a read past it is seen */
    why = rv_hs_parse_body(p, (const char *)data, size, &token, &challenge);
    if (size > RV_HS_BODY_MAX) {
        FZ_CHECK(why != NULL);
    }
    if (why == NULL) {
        json_error_t err;
        json_t *root =
            json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);

        FZ_CHECK(root != NULL && json_is_object(root));
        FZ_CHECK(token != NULL && challenge != NULL);
        FZ_CHECK(
            same_string(token, json_object_get(root, "verification-token")));
        FZ_CHECK(same_string(challenge, json_object_get(root, "challenge")));
        json_decref(root);
        FZ_CHECK(rv_hs_challenge_valid(challenge)
                 == fz_challenge_ok(challenge));
    }
    else {
        FZ_CHECK(FZ_KNOWN(why, REASONS));
    }

    s = fz_cstr(data, size);
    FZ_CHECK(rv_hs_challenge_valid(s) == fz_challenge_ok(s));
    FZ_CHECK(rv_hs_is_json(s) == json_type_model(s));
    free(s);
    apr_pool_destroy(p);
    return 0;
}
