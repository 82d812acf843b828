/* Unit tests of rv_handshake.c: the JSON body, the query string, the
 * challenge check, the handshake's decision and the redaction of tokens
 * in URLs. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "rv_handshake.h"

static apr_pool_t *pool;

#define UUID "2e73f864-a0e9-4764-a7d5-91fe5836db22"

static const char *body(const char *json, const char **tok, const char **ch)
{
    *tok = *ch = NULL;
    return rv_hs_parse_body(pool, json, strlen(json), tok, ch);
}

static void test_body_ok(void **state)
{
    const char *tok, *ch;

    (void)state;
    assert_null(body("{\"verification-token\":\"abc\",\"challenge\":\"" UUID
                     "\"}",
                     &tok, &ch));
    assert_string_equal(tok, "abc");
    assert_string_equal(ch, UUID);
    /* Whitespace, other members and escapes are JSON's business. */
    assert_null(body(" {\"challenge\" : \"x\", \"extra\": [1, {}],\n"
                     " \"verification-token\": \"a\\u0062c\"} \n",
                     &tok, &ch));
    assert_string_equal(tok, "abc");
    assert_string_equal(ch, "x");
}

static void test_body_refused(void **state)
{
    static const char ok[] =
        "{\"verification-token\":\"a\",\"challenge\":\"b\"}";
    const char *tok, *ch;
    char big[RV_HS_BODY_MAX + 2];
    char deep[2 * 3000 + 1];

    (void)state;
    assert_non_null(body("", &tok, &ch));
    assert_non_null(body("not json", &tok, &ch));
    assert_non_null(
        body("[\"verification-token\", \"challenge\"]", &tok, &ch));
    assert_non_null(body("\"abc\"", &tok, &ch));
    assert_non_null(body("{\"verification-token\":\"a\"}", &tok, &ch));
    assert_non_null(body("{\"challenge\":\"a\"}", &tok, &ch));
    assert_non_null(
        body("{\"verification-token\":1,\"challenge\":\"a\"}", &tok, &ch));
    assert_non_null(
        body("{\"verification-token\":\"a\",\"challenge\":null}", &tok, &ch));
    assert_non_null(strstr(body("{\"verification-token\":\"a\","
                                "\"challenge\":\"b\",\"challenge\":\"c\"}",
                                &tok, &ch),
                           "JSON"));
    assert_non_null(body("{\"verification-token\":\"a\",\"challenge\":\"b\"}x",
                         &tok, &ch));
    assert_non_null(body(
        "{\"verification-token\":\"a\",\"challenge\":\"b\"}{}", &tok, &ch));
    assert_non_null(body("{\"verification-token\":\"a\\u0000b\","
                         "\"challenge\":\"b\"}",
                         &tok, &ch));
    assert_non_null(body("{\"verification-token\":\"\xff\","
                         "\"challenge\":\"b\"}",
                         &tok, &ch));
    assert_non_null(body("{\"verification-token\":\"a\",\"challenge\":\"b\","
                         "\"n\":123456789012345678901234567890}",
                         &tok, &ch));
    memset(deep, '[', 3000);
    memset(deep + 3000, ']', 3000);
    deep[6000] = '\0';
    assert_non_null(rv_hs_parse_body(pool, deep, 6000, &tok, &ch));
    memset(big, ' ', sizeof(big));
    memcpy(big, ok, strlen(ok));
    assert_non_null(strstr(
        rv_hs_parse_body(pool, big, RV_HS_BODY_MAX + 1, &tok, &ch), "4 KiB"));
    assert_null(rv_hs_parse_body(pool, big, RV_HS_BODY_MAX, &tok, &ch));
}

static void test_json_types(void **state)
{
    (void)state;
    assert_true(rv_hs_is_json("application/json"));
    assert_true(rv_hs_is_json("Application/JSON; charset=utf-8"));
    assert_true(rv_hs_is_json("application/vnd.redox+json"));
    assert_false(rv_hs_is_json(NULL));
    assert_false(rv_hs_is_json("text/plain"));
    assert_false(rv_hs_is_json("application/jsonx"));
    assert_false(rv_hs_is_json("+json"));
    assert_false(rv_hs_is_json("application/x-www-form-urlencoded"));
}

static void test_query(void **state)
{
    const char *tok, *ch;

    (void)state;
    assert_null(rv_hs_parse_query(
        pool, "challenge=" UUID "&verification-token=abc", &tok, &ch));
    assert_string_equal(ch, UUID);
    assert_string_equal(tok, "abc");
    assert_null(rv_hs_parse_query(pool,
                                  "a=1&verification-token=a%2Bb%2f"
                                  "&challenge=x&b",
                                  &tok, &ch));
    assert_string_equal(tok, "a+b/");
    assert_string_equal(ch, "x");
    assert_null(rv_hs_parse_query(pool, "challenge=x", &tok, &ch));
    assert_null(tok);
    assert_null(rv_hs_parse_query(pool, "challenge", &tok, &ch));
    assert_string_equal(ch, "");
    assert_non_null(rv_hs_parse_query(pool, NULL, &tok, &ch));
    assert_non_null(rv_hs_parse_query(pool, "", &tok, &ch));
    assert_non_null(
        rv_hs_parse_query(pool, "verification-token=abc", &tok, &ch));
    assert_non_null(rv_hs_parse_query(pool, "challengex=1", &tok, &ch));
    assert_non_null(
        rv_hs_parse_query(pool, "challenge=a&challenge=b", &tok, &ch));
    assert_non_null(rv_hs_parse_query(pool, "challenge=a%2", &tok, &ch));
    assert_non_null(rv_hs_parse_query(pool, "challenge=a%zz", &tok, &ch));
    assert_non_null(rv_hs_parse_query(pool, "challenge=a%00b", &tok, &ch));
}

static void test_challenge(void **state)
{
    char c[RV_HS_CHALLENGE_MAX + 2];

    (void)state;
    assert_true(rv_hs_challenge_valid(UUID));
    assert_true(rv_hs_challenge_valid("A.z_0~-"));
    assert_false(rv_hs_challenge_valid(""));
    assert_false(rv_hs_challenge_valid("<script>"));
    assert_false(rv_hs_challenge_valid("a\"b"));
    assert_false(rv_hs_challenge_valid("a\r\nb"));
    assert_false(rv_hs_challenge_valid("a b"));
    memset(c, 'a', sizeof(c));
    c[RV_HS_CHALLENGE_MAX] = '\0';
    assert_true(rv_hs_challenge_valid(c));
    c[RV_HS_CHALLENGE_MAX] = 'a';
    c[RV_HS_CHALLENGE_MAX + 1] = '\0';
    assert_false(rv_hs_challenge_valid(c));
}

static void test_redact(void **state)
{
    (void)state;
    assert_null(rv_hs_redact_query(pool, NULL));
    assert_null(rv_hs_redact_query(pool, "challenge=x&a=b"));
    assert_null(rv_hs_redact_query(pool, "x=verification-token"));
    assert_string_equal(rv_hs_redact_query(pool,
                                           "challenge=x&"
                                           "verification-token=secret&a=b"),
                        "challenge=x&verification-token=REDACTED&a=b");
    assert_string_equal(rv_hs_redact_query(pool, "verification-token"),
                        "verification-token=REDACTED");
    assert_string_equal(rv_hs_redact_query(pool, "verification-token=&"
                                                 "verification-token=s2"),
                        "verification-token=REDACTED&"
                        "verification-token=REDACTED");
}

/* The request line and the URI: only the query is masked, and nothing is
 * copied when there is no token in it. */
static void test_redact_in(void **state)
{
    char line[] = "GET /hook?challenge=c&verification-token=s3cret HTTP/1.1";
    char plain[] = "GET /hook?challenge=c HTTP/1.1";
    char path[] = "/verification-token/x?a=b";
    char frag[] = "/h?verification-token=s#verification-token=f";
    char uri[] = "/h?verification-token=s";

    (void)state;
    assert_null(rv_hs_redact_in(pool, NULL));
    assert_ptr_equal(rv_hs_redact_in(pool, plain), plain);
    assert_ptr_equal(rv_hs_redact_in(pool, path), path);
    assert_string_equal(
        rv_hs_redact_in(pool, line),
        "GET /hook?challenge=c&verification-token=REDACTED HTTP/1.1");
    assert_string_equal(rv_hs_redact_in(pool, frag),
                        "/h?verification-token=REDACTED"
                        "#verification-token=f");
    assert_string_equal(rv_hs_redact_in(pool, uri),
                        "/h?verification-token=REDACTED");
    assert_string_equal(uri, "/h?verification-token=s");
}

/* The handshake's decision: the token first, then its expiry, then the
 * challenge; the slot of a token found is kept for the refusal's line. */
static void test_decide(void **state)
{
    rv_tokenset *set = rv_tokenset_make(pool), *none = rv_tokenset_make(pool);
    unsigned char d[RV_DIGEST_LEN];
    apr_time_t now = apr_time_from_sec(1800000000);
    int slot = 7;

    (void)state;
    assert_true(rv_digest("live-token", 10, d));
    assert_null(rv_tokenset_add_expiring(set, "live", d, RV_NEVER));
    assert_true(rv_digest("old-token", 9, d));
    assert_null(rv_tokenset_add_expiring(set, "old", d, now));

    assert_int_equal(rv_hs_decide(set, "live-token", UUID, now, &slot), RV_OK);
    assert_string_equal(rv_tokenset_name_at(set, slot), "live");
    assert_int_equal(rv_hs_decide(set, NULL, UUID, now, &slot), RV_MISSING);
    assert_int_equal(slot, -1);
    assert_int_equal(rv_hs_decide(set, "", UUID, now, &slot), RV_MISSING);
    assert_int_equal(rv_hs_decide(none, "live-token", UUID, now, &slot),
                     RV_NO_TOKENS);
    assert_int_equal(rv_hs_decide(NULL, NULL, UUID, now, &slot), RV_NO_TOKENS);
    assert_int_equal(rv_hs_decide(set, "live-tokem", UUID, now, &slot),
                     RV_WRONG_TOKEN);
    assert_int_equal(slot, -1);
    assert_int_equal(rv_hs_decide(set, "live-token", "a b", now, &slot),
                     RV_BAD_CHALLENGE);
    assert_string_equal(rv_tokenset_name_at(set, slot), "live");
    /* expired at its instant, and before the challenge is looked at */
    assert_int_equal(rv_hs_decide(set, "old-token", "a b", now, &slot),
                     RV_EXPIRED);
    assert_string_equal(rv_tokenset_name_at(set, slot), "old");
    assert_int_equal(rv_hs_decide(set, "old-token", UUID, now - 1, &slot),
                     RV_OK);
    assert_int_equal(rv_hs_decide(set, "wrong", "a b", now, &slot),
                     RV_WRONG_TOKEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_ok),    cmocka_unit_test(test_body_refused),
        cmocka_unit_test(test_json_types), cmocka_unit_test(test_query),
        cmocka_unit_test(test_challenge),  cmocka_unit_test(test_redact),
        cmocka_unit_test(test_redact_in),  cmocka_unit_test(test_decide),
    };
    int failed;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    failed = cmocka_run_group_tests_name("rv_handshake", tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return failed;
}
