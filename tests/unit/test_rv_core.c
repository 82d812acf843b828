/* Unit tests of rv_core.c: header parsing, token values, the token set and
 * the decision.  cmocka prints a summary that CI reads. */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "rv_core.h"

static apr_pool_t *pool;

#define TOK  "Tok-0123456789abcdefghijklmnopqrstuvwxyz"
#define TOK2 "Two-0123456789abcdefghijklmnopqrstuvwxyz"

/* ------------------------------------------------------------------ */

static void expect_bearer(const char *value, rv_presence want,
                          const char *want_tok)
{
    const char *tok = NULL;
    apr_size_t len = 0;

    assert_int_equal(rv_parse_bearer(value, &tok, &len), want);
    if (want == RV_PRESENT) {
        assert_int_equal(len, strlen(want_tok));
        assert_memory_equal(tok, want_tok, len);
    }
}

static void test_bearer_parsing(void **state)
{
    (void)state;
    expect_bearer(NULL, RV_ABSENT, NULL);
    expect_bearer("Bearer abc", RV_PRESENT, "abc");
    expect_bearer("bearer abc", RV_PRESENT, "abc");
    expect_bearer("BEARER abc", RV_PRESENT, "abc");
    expect_bearer("Bearer    abc", RV_PRESENT, "abc");
    expect_bearer("  Bearer abc  ", RV_PRESENT, "abc");
    expect_bearer("Bearer abc\t", RV_PRESENT, "abc");
    expect_bearer("Basic dXNlcjpwYXNz", RV_ABSENT, NULL);
    expect_bearer("", RV_ABSENT, NULL);
    expect_bearer("Bearerish abc", RV_ABSENT, NULL);
    expect_bearer("Bearer", RV_BAD, NULL);
    expect_bearer("Bearer ", RV_BAD, NULL);
    expect_bearer("Bearer\tabc", RV_BAD, NULL);
    expect_bearer("Bearer abc def", RV_BAD, NULL);
    expect_bearer("Bearer abc, Bearer abc", RV_BAD, NULL);
    expect_bearer("Bearer a\x01"
                  "bc",
                  RV_BAD, NULL);
    expect_bearer("Bearer ab\xc3\xa9", RV_BAD, NULL);
    expect_bearer("Bearer \tabc", RV_BAD, NULL);
}

static void test_vtoken_parsing(void **state)
{
    const char *tok;
    apr_size_t len;

    (void)state;
    assert_int_equal(rv_parse_vtoken(NULL, &tok, &len), RV_ABSENT);
    assert_int_equal(rv_parse_vtoken("abc", &tok, &len), RV_PRESENT);
    assert_int_equal(len, 3);
    assert_int_equal(rv_parse_vtoken(" abc ", &tok, &len), RV_PRESENT);
    assert_int_equal(len, 3);
    assert_memory_equal(tok, "abc", 3);
    assert_int_equal(rv_parse_vtoken("", &tok, &len), RV_BAD);
    assert_int_equal(rv_parse_vtoken("   ", &tok, &len), RV_BAD);
    assert_int_equal(rv_parse_vtoken("abc, abc", &tok, &len), RV_BAD);
    assert_int_equal(rv_parse_vtoken("a\x7f", &tok, &len), RV_BAD);
    assert_int_equal(rv_parse_vtoken("Bearer abc", &tok, &len), RV_BAD);
}

/* The value parser reads eight bytes at a time: every byte value in every
 * position of values of 1 to 40 bytes (around each word boundary) gives
 * what a reading byte by byte gives. */
static void test_token_bytes(void **state)
{
    char value[41];
    int n, pos, c;

    (void)state;
    for (n = 1; n <= 40; n++) {
        for (pos = 0; pos < n; pos++) {
            for (c = 1; c < 256; c++) {
                int visible = c > 0x20 && c < 0x7f;
                int ows = c == ' ' || c == '\t';
                const char *tok = NULL;
                apr_size_t len = 0;
                rv_presence got;

                memset(value, 'x', (size_t)n);
                value[pos] = (char)c;
                value[n] = '\0';
                got = rv_parse_vtoken(value, &tok, &len);
                if (visible) {
                    assert_int_equal(got, RV_PRESENT);
                    assert_ptr_equal(tok, value);
                    assert_int_equal(len, n);
                }
                else if (ows && n > 1 && (pos == 0 || pos == n - 1)) {
                    /* leading or trailing whitespace goes */
                    assert_int_equal(got, RV_PRESENT);
                    assert_ptr_equal(tok, value + (pos == 0));
                    assert_int_equal(len, n - 1);
                }
                else {
                    assert_int_equal(got, RV_BAD);
                }
            }
        }
    }
}

/* "Bearer" in any case, and no byte that only looks like a letter once
 * its case bit is set. */
static void test_bearer_word(void **state)
{
    static const char word[] = "bearer";
    char value[32];
    int i, c;

    (void)state;
    expect_bearer("bEaReR abc", RV_PRESENT, "abc");
    expect_bearer("Beare", RV_ABSENT, NULL);
    expect_bearer("B", RV_ABSENT, NULL);
    for (i = 0; i < 6; i++) {
        for (c = 1; c < 256; c++) {
            int same = c == word[i] || c == word[i] - 0x20;

            memcpy(value, "bearer abc", sizeof("bearer abc"));
            value[i] = (char)c;
            expect_bearer(value, same ? RV_PRESENT : RV_ABSENT, "abc");
        }
    }
}

/* ------------------------------------------------------------------ */

static void digest_of(const char *tok, unsigned char d[RV_DIGEST_LEN])
{
    assert_true(rv_digest(tok, strlen(tok), d));
}

static void test_digest_known_answer(void **state)
{
    unsigned char d[RV_DIGEST_LEN], want[RV_DIGEST_LEN];

    (void)state;
    digest_of("abc", d);
    assert_true(rv_hex_digest("ba7816bf8f01cfea414140de5dae2223"
                              "b00361a396177a9cb410ff61f20015ad",
                              want));
    assert_memory_equal(d, want, RV_DIGEST_LEN);
}

/* With the per-thread contexts, each digest starts from a fresh state:
 * known answers for values of other lengths in turn.  Returns NULL, or
 * the value whose digest was wrong. */
static void *digests_in_order(void *arg)
{
    static const char *const values[] = {"abc", "", "abc", NULL};
    static const char *const hex[] = {
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"};
    unsigned char d[RV_DIGEST_LEN], want[RV_DIGEST_LEN];
    int i;

    (void)arg;
    for (i = 0; values[i] != NULL; i++) {
        if (!rv_hex_digest(hex[i], want)
            || !rv_digest(values[i], strlen(values[i]), d)
            || memcmp(d, want, RV_DIGEST_LEN) != 0) {
            return (void *)values[i];
        }
    }
    return NULL;
}

/* httpd reloads the module with every configuration: the fetched digest is
 * released by a pconf cleanup (`make asan` reports a leak otherwise), and
 * digests still work after the release, after a new init and with the
 * per-thread context of a child. */
static void test_digest_cleanup(void **state)
{
    unsigned char d[RV_DIGEST_LEN], want[RV_DIGEST_LEN];

    (void)state;
    assert_true(rv_hex_digest("ba7816bf8f01cfea414140de5dae2223"
                              "b00361a396177a9cb410ff61f20015ad",
                              want));
    rv_digest_term();
    rv_digest_term();
    digest_of("abc", d);
    assert_memory_equal(d, want, RV_DIGEST_LEN);
    assert_true(rv_digest_init());
    digest_of("abc", d);
    assert_memory_equal(d, want, RV_DIGEST_LEN);
    assert_true(rv_digest_cache_per_thread());
    digest_of("abc", d);
    digest_of("abc", d);
    assert_memory_equal(d, want, RV_DIGEST_LEN);
    assert_null(digests_in_order(NULL));
    /* a thread of its own gets contexts of its own, freed when it ends */
    {
        pthread_t t;
        void *res = (void *)"not run";

        assert_int_equal(pthread_create(&t, NULL, digests_in_order, NULL), 0);
        assert_int_equal(pthread_join(t, &res), 0);
        assert_null(res);
    }
}

static void test_tokenset(void **state)
{
    rv_tokenset *s = rv_tokenset_make(pool);
    unsigned char d1[RV_DIGEST_LEN], d2[RV_DIGEST_LEN], d3[RV_DIGEST_LEN];

    (void)state;
    digest_of(TOK, d1);
    digest_of(TOK2, d2);
    digest_of("not configured", d3);
    assert_null(rv_tokenset_lookup(s, d1));
    assert_null(rv_tokenset_add(s, "one", d1));
    assert_null(rv_tokenset_add(s, "two", d2));
    assert_int_equal(rv_tokenset_count(s), 2);
    assert_string_equal(rv_tokenset_lookup(s, d1), "one");
    assert_string_equal(rv_tokenset_lookup(s, d2), "two");
    assert_null(rv_tokenset_lookup(s, d3));
    assert_non_null(strstr(rv_tokenset_add(s, "one", d3), "duplicate NAME"));
    assert_non_null(strstr(rv_tokenset_add(s, "three", d1), "same as"));
    assert_int_equal(rv_tokenset_count(s), 2);
    assert_null(rv_tokenset_lookup(NULL, d1));
}

static void test_tokenset_many(void **state)
{
    rv_tokenset *s = rv_tokenset_make(pool);
    unsigned char d[RV_DIGEST_LEN];
    char tok[64], name[16];
    int i;

    (void)state;
    for (i = 0; i < 10000; i++) {
        snprintf(tok, sizeof(tok), "token-%08d-abcdefghijklmnopqrstuvwxyz", i);
        snprintf(name, sizeof(name), "n%d", i);
        digest_of(tok, d);
        assert_null(rv_tokenset_add(s, name, d));
    }
    assert_int_equal(rv_tokenset_count(s), 10000);
    for (i = 0; i < 10000; i += 997) {
        snprintf(tok, sizeof(tok), "token-%08d-abcdefghijklmnopqrstuvwxyz", i);
        snprintf(name, sizeof(name), "n%d", i);
        digest_of(tok, d);
        assert_string_equal(rv_tokenset_lookup(s, d), name);
    }
    digest_of("token-00010000-abcdefghijklmnopqrstuvwxyz", d);
    assert_null(rv_tokenset_lookup(s, d));
}

/* Tokens whose digests share the table position and the 32-bit tag
 * (bytes 0-7) are told apart by the whole digest, whichever was added
 * first; a digest that shares them with a configured one but differs
 * further on, even in the last byte only, is not accepted. */
static void test_tokenset_tag_collisions(void **state)
{
    rv_tokenset *s = rv_tokenset_make(pool);
    unsigned char d[4][RV_DIGEST_LEN], probe[RV_DIGEST_LEN];
    int i;

    (void)state;
    for (i = 0; i < 4; i++) {
        memset(d[i], 0xa5, RV_DIGEST_LEN);
    }
    d[1][31] = 0x01; /* same first 8 bytes as d[0]: position and tag */
    d[2][8] = 0x02;
    d[3][4] = 0x03; /* same position, another tag */
    assert_null(rv_tokenset_add(s, "zero", d[0]));
    assert_null(rv_tokenset_add(s, "one", d[1]));
    assert_null(rv_tokenset_add(s, "two", d[2]));
    assert_null(rv_tokenset_add(s, "three", d[3]));
    assert_string_equal(rv_tokenset_lookup(s, d[0]), "zero");
    assert_string_equal(rv_tokenset_lookup(s, d[1]), "one");
    assert_string_equal(rv_tokenset_lookup(s, d[2]), "two");
    assert_string_equal(rv_tokenset_lookup(s, d[3]), "three");
    assert_int_equal(rv_tokenset_find(s, d[2]), 2);
    memcpy(probe, d[0], RV_DIGEST_LEN);
    probe[31] = 0x7f;
    assert_null(rv_tokenset_lookup(s, probe));
    assert_int_equal(rv_tokenset_find(s, probe), -1);
    probe[31] = d[0][31];
    probe[5] = 0x00; /* same position, a tag no entry has */
    assert_null(rv_tokenset_lookup(s, probe));
    /* the same digest again is still found as a duplicate */
    assert_non_null(strstr(rv_tokenset_add(s, "four", d[1]), "same as"));
    /* and after growing (the tables are rebuilt, tags included) */
    for (i = 0; i < 40; i++) {
        unsigned char e[RV_DIGEST_LEN];
        char name[16];

        memcpy(e, d[0], RV_DIGEST_LEN);
        e[20] = (unsigned char)i;
        e[21] = 0xee;
        snprintf(name, sizeof(name), "g%d", i);
        assert_null(rv_tokenset_add(s, name, e));
    }
    assert_string_equal(rv_tokenset_lookup(s, d[0]), "zero");
    assert_string_equal(rv_tokenset_lookup(s, d[1]), "one");
    assert_string_equal(rv_tokenset_lookup(s, d[3]), "three");
    assert_int_equal(rv_tokenset_count(s), 44);
}

/* ------------------------------------------------------------------ */

static rv_tokenset *two_tokens(void)
{
    rv_tokenset *s = rv_tokenset_make(pool);
    unsigned char d[RV_DIGEST_LEN];

    digest_of(TOK, d);
    assert_null(rv_tokenset_add(s, "one", d));
    digest_of(TOK2, d);
    assert_null(rv_tokenset_add(s, "two", d));
    return s;
}

static rv_outcome verify(const rv_tokenset *s, rv_hdr_mode mode,
                         const char *auth, const char *vtok, const char **name)
{
    unsigned char d[RV_DIGEST_LEN];

    return rv_verify(s, mode, auth, vtok, name, d);
}

static void test_verify_both(void **state)
{
    rv_tokenset *s = two_tokens();
    const char *name;

    (void)state;
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK, TOK, &name), RV_OK);
    assert_string_equal(name, "one");
    assert_int_equal(verify(s, RV_HDR_BOTH, "bearer " TOK2, TOK2, &name),
                     RV_OK);
    assert_string_equal(name, "two");
    assert_int_equal(verify(s, RV_HDR_BOTH, NULL, TOK, &name), RV_MISSING);
    assert_null(name);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK, NULL, &name),
                     RV_MISSING);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Basic Zm9vOmJhcg==", TOK, &name),
                     RV_MISSING);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK, TOK2, &name),
                     RV_MISMATCH);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer x" TOK, "x" TOK, &name),
                     RV_WRONG_TOKEN);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer", TOK, &name),
                     RV_MALFORMED);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK, "", &name),
                     RV_MALFORMED);
    assert_int_equal(verify(s, RV_HDR_BOTH, NULL, NULL, &name), RV_MISSING);
    /* The two values the same string after the scheme and the leading
     * whitespace (read once): the answer of reading both. */
    assert_int_equal(
        verify(s, RV_HDR_BOTH, "Bearer  " TOK " \t", "\t " TOK " \t", &name),
        RV_OK);
    assert_string_equal(name, "one");
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer a b", "a b", &name),
                     RV_MALFORMED);
    assert_int_equal(verify(s, RV_HDR_ANY, "Bearer a b", "a b", &name),
                     RV_MALFORMED);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer \t", "\t", &name),
                     RV_MALFORMED);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer x" TOK, "x" TOK, &name),
                     RV_WRONG_TOKEN);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK " ", TOK, &name),
                     RV_OK);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK, TOK "x", &name),
                     RV_MISMATCH);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK "x", TOK, &name),
                     RV_MISMATCH);
    assert_int_equal(verify(s, RV_HDR_BOTH, "Bearer " TOK " x", TOK, &name),
                     RV_MALFORMED);
    assert_int_equal(verify(s, RV_HDR_BEARER, "Bearer " TOK, "a b", &name),
                     RV_OK);
    assert_int_equal(verify(s, RV_HDR_VTOKEN, "Bearer a b", TOK, &name),
                     RV_OK);
}

static void test_verify_any(void **state)
{
    rv_tokenset *s = two_tokens();
    const char *name;

    (void)state;
    assert_int_equal(verify(s, RV_HDR_ANY, NULL, TOK, &name), RV_OK);
    assert_int_equal(verify(s, RV_HDR_ANY, "Bearer " TOK2, NULL, &name),
                     RV_OK);
    assert_string_equal(name, "two");
    assert_int_equal(verify(s, RV_HDR_ANY, "Bearer " TOK, TOK, &name), RV_OK);
    assert_int_equal(verify(s, RV_HDR_ANY, "Bearer " TOK, TOK2, &name),
                     RV_MISMATCH);
    assert_int_equal(verify(s, RV_HDR_ANY, NULL, NULL, &name), RV_MISSING);
    assert_int_equal(verify(s, RV_HDR_ANY, "Bearer " TOK, "x y", &name),
                     RV_MALFORMED);
    assert_int_equal(verify(s, RV_HDR_ANY, NULL, "nope", &name),
                     RV_WRONG_TOKEN);
}

static void test_verify_single_header(void **state)
{
    rv_tokenset *s = two_tokens();
    const char *name;

    (void)state;
    /* Only the named header is read: the other may be anything. */
    assert_int_equal(
        verify(s, RV_HDR_BEARER, "Bearer " TOK, "junk junk", &name), RV_OK);
    assert_int_equal(verify(s, RV_HDR_BEARER, NULL, TOK, &name), RV_MISSING);
    assert_int_equal(verify(s, RV_HDR_VTOKEN, "Bearer", TOK, &name), RV_OK);
    assert_int_equal(verify(s, RV_HDR_VTOKEN, "Bearer " TOK, NULL, &name),
                     RV_MISSING);
    assert_int_equal(verify(s, RV_HDR_VTOKEN, NULL, TOK "x", &name),
                     RV_WRONG_TOKEN);
}

static void test_verify_no_tokens(void **state)
{
    const char *name;

    (void)state;
    assert_int_equal(verify(NULL, RV_HDR_BOTH, "Bearer " TOK, TOK, &name),
                     RV_NO_TOKENS);
    assert_int_equal(
        verify(rv_tokenset_make(pool), RV_HDR_ANY, NULL, TOK, &name),
        RV_NO_TOKENS);
}

static void test_verify_digest_out(void **state)
{
    rv_tokenset *s = two_tokens();
    unsigned char d[RV_DIGEST_LEN], want[RV_DIGEST_LEN];
    const char *name;

    (void)state;
    assert_int_equal(rv_verify(s, RV_HDR_BOTH, "Bearer " TOK2, TOK2, &name, d),
                     RV_OK);
    digest_of(TOK2, want);
    assert_memory_equal(d, want, RV_DIGEST_LEN);
}

/* Slots: every token has exactly one, the slot gives its NAME back, and
 * the slot-returning checks agree with the NAME-returning ones. */
static void test_tokenset_slots(void **state)
{
    rv_tokenset *s = two_tokens();
    unsigned char d[RV_DIGEST_LEN], d1[RV_DIGEST_LEN];
    int i, filled = 0, slot;

    (void)state;
    assert_int_equal(rv_tokenset_count(NULL), 0);
    assert_null(rv_tokenset_name_at(NULL, 0));
    assert_int_equal(rv_tokenset_find(NULL, d), -1);
    assert_int_equal(rv_tokenset_count(s), 2);
    for (i = 0; i < rv_tokenset_count(s); i++) {
        filled += rv_tokenset_name_at(s, i) != NULL;
    }
    assert_int_equal(filled, 2);
    assert_null(rv_tokenset_name_at(s, -1));
    assert_null(rv_tokenset_name_at(s, rv_tokenset_count(s)));

    digest_of(TOK, d1);
    slot = rv_tokenset_find(s, d1);
    assert_true(slot >= 0);
    assert_string_equal(rv_tokenset_name_at(s, slot), "one");
    digest_of("not configured", d);
    assert_int_equal(rv_tokenset_find(s, d), -1);

    assert_int_equal(
        rv_verify_slot(s, RV_HDR_BOTH, "Bearer " TOK, TOK, &slot, d), RV_OK);
    assert_string_equal(rv_tokenset_name_at(s, slot), "one");
    assert_int_equal(rv_verify_slot(s, RV_HDR_BOTH, "Bearer x", "x", &slot, d),
                     RV_WRONG_TOKEN);
    assert_int_equal(slot, -1);
    assert_int_equal(rv_verify_slot(s, RV_HDR_BOTH, NULL, TOK, &slot, d),
                     RV_MISSING);
    assert_int_equal(slot, -1);
    assert_int_equal(rv_check_token_slot(s, TOK2, strlen(TOK2), &slot, d),
                     RV_OK);
    assert_string_equal(rv_tokenset_name_at(s, slot), "two");
    assert_int_equal(rv_check_token_slot(NULL, TOK2, strlen(TOK2), &slot, d),
                     RV_NO_TOKENS);
    assert_int_equal(slot, -1);
}

/* Only a Bearer carrying one of the set's tokens is ours to strip. */
static void test_bearer_is_ours(void **state)
{
    rv_tokenset *s = two_tokens();

    (void)state;
    /* Not checked (RedoxTokenHeaders verification-token, a redirect):
     * the Bearer's token is looked up. */
    assert_true(rv_bearer_is_ours(s, "Bearer " TOK, 0));
    assert_true(rv_bearer_is_ours(s, "bearer   " TOK2 " ", 0));
    assert_false(rv_bearer_is_ours(s, "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", 0));
    assert_false(rv_bearer_is_ours(s, "Bearer x" TOK, 0));
    assert_false(rv_bearer_is_ours(s, "Basic " TOK, 0));
    assert_false(rv_bearer_is_ours(s, "Bearer", 0));
    assert_false(rv_bearer_is_ours(s, "Bearer " TOK " " TOK, 0));
    assert_false(rv_bearer_is_ours(s, "", 0));
    assert_false(rv_bearer_is_ours(s, NULL, 0));
    assert_false(rv_bearer_is_ours(NULL, "Bearer " TOK, 0));
    assert_false(rv_bearer_is_ours(rv_tokenset_make(pool), "Bearer " TOK, 0));
    /* Checked: a well-formed Bearer is the token just accepted. */
    assert_true(rv_bearer_is_ours(s, "Bearer " TOK, 1));
    assert_true(rv_bearer_is_ours(s, "  bearer   " TOK " ", 1));
    assert_false(rv_bearer_is_ours(s, "Basic " TOK, 1));
    assert_false(rv_bearer_is_ours(s, "Bearerish " TOK, 1));
    assert_false(rv_bearer_is_ours(s, "", 1));
    assert_false(rv_bearer_is_ours(s, NULL, 1));
}

static void test_outcome_names(void **state)
{
    (void)state;
    assert_string_equal(rv_outcome_name(RV_OK), "ok");
    assert_string_equal(rv_outcome_name(RV_MISSING), "missing");
    assert_string_equal(rv_outcome_name(RV_MALFORMED), "malformed");
    assert_string_equal(rv_outcome_name(RV_WRONG_TOKEN), "wrong-token");
    assert_string_equal(rv_outcome_name(RV_MISMATCH), "mismatch");
    assert_string_equal(rv_outcome_name(RV_NO_TOKENS), "no-tokens");
    assert_string_equal(rv_outcome_name(RV_EXPIRED), "expired");
    assert_string_equal(rv_outcome_name(RV_OUTCOME_COUNT), "unknown");
}

/* ------------------------------------------------------------------ */
/* Expiry                                                              */

static apr_time_t expiry_of(const char *when)
{
    apr_time_t at = -1;

    assert_null(rv_parse_expiry(when, &at));
    return at;
}

static void expect_bad_expiry(const char *when)
{
    apr_time_t at = 12345;

    if (rv_parse_expiry(when, &at) == NULL) {
        fail_msg("expires=%s was accepted", when);
    }
    assert_int_equal(at, 12345); /* untouched */
}

static void test_expiry_parser(void **state)
{
    (void)state;
    /* a date is midnight UTC at its start */
    assert_int_equal(expiry_of("1970-01-01"), 0);
    assert_int_equal(expiry_of("2026-01-01"), apr_time_from_sec(1767225600));
    assert_int_equal(expiry_of("2026-01-01T00:00:00Z"),
                     apr_time_from_sec(1767225600));
    assert_int_equal(expiry_of("2026-01-01T00:00:01Z"),
                     apr_time_from_sec(1767225601));
    assert_int_equal(expiry_of("2025-12-31T23:59:59Z"),
                     apr_time_from_sec(1767225599));
    assert_int_equal(expiry_of("2024-02-29"), apr_time_from_sec(1709164800));
    assert_int_equal(expiry_of("2000-02-29T12:30:45Z"),
                     apr_time_from_sec(951827445));
    assert_int_equal(expiry_of("2038-01-19T03:14:08Z"),
                     apr_time_from_sec(2147483648LL));
    assert_int_equal(expiry_of("9999-12-31T23:59:59Z"),
                     apr_time_from_sec(253402300799LL));

    /* no such date or time */
    expect_bad_expiry("2026-02-29");
    expect_bad_expiry("2100-02-29");
    expect_bad_expiry("2026-04-31");
    expect_bad_expiry("2026-13-01");
    expect_bad_expiry("2026-00-10");
    expect_bad_expiry("2026-01-00");
    expect_bad_expiry("2026-01-32");
    expect_bad_expiry("2026-01-01T24:00:00Z");
    expect_bad_expiry("2026-01-01T23:60:00Z");
    expect_bad_expiry("2026-12-31T23:59:60Z");
    expect_bad_expiry("1969-12-31T23:59:59Z");
    expect_bad_expiry("0000-01-01");
    /* not the two forms */
    expect_bad_expiry("");
    expect_bad_expiry("2026");
    expect_bad_expiry("2026-1-1");
    expect_bad_expiry("26-01-01");
    expect_bad_expiry("2026/01/01");
    expect_bad_expiry("20260101");
    expect_bad_expiry(" 2026-01-01");
    expect_bad_expiry("2026-01-01 ");
    expect_bad_expiry("2026-01-01T");
    expect_bad_expiry("2026-01-01T00:00Z");
    expect_bad_expiry("2026-01-01T00:00:00");
    expect_bad_expiry("2026-01-01t00:00:00z");
    expect_bad_expiry("2026-01-01 00:00:00Z");
    expect_bad_expiry("2026-01-01T00:00:00+00:00");
    expect_bad_expiry("2026-01-01T00:00:00.5Z");
    expect_bad_expiry("+026-01-01");
    expect_bad_expiry("-026-01-01");
    expect_bad_expiry("2026-0x-01");
    expect_bad_expiry("2026-01-01T0a:00:00Z");
    expect_bad_expiry("2026-01-01Z");
    expect_bad_expiry("\xef\xbc\x92\x30\x32\x36-01-01");
}

/* Every day from 1970 to 2400 against a count of days done here: the
 * parser and the formatter agree with each other and with the calendar. */
static void test_expiry_calendar(void **state)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
    long long day = 0;
    int y, m, d;

    (void)state;
    for (y = 1970; y < 2400; y++) {
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

        for (m = 1; m <= 12; m++) {
            int n = mdays[m - 1] + (m == 2 && leap);

            for (d = 1; d <= 31; d++) {
                char when[40], back[RV_TIME_TEXT], end[64];
                apr_time_t at;

                snprintf(when, sizeof(when), "%04d-%02d-%02d", y, m, d);
                if (d > n) {
                    expect_bad_expiry(when);
                    continue;
                }
                assert_null(rv_parse_expiry(when, &at));
                assert_int_equal(at, apr_time_from_sec(day * 86400));
                snprintf(end, sizeof(end), "%sT23:59:59Z", when);
                assert_null(rv_parse_expiry(end, &at));
                assert_int_equal(at, apr_time_from_sec(day * 86400 + 86399));
                assert_string_equal(rv_format_time(at, back), end);
                day++;
            }
        }
    }
}

static void test_expiry_format(void **state)
{
    char buf[RV_TIME_TEXT];

    (void)state;
    assert_string_equal(rv_format_time(0, buf), "1970-01-01T00:00:00Z");
    assert_string_equal(
        rv_format_time(apr_time_from_sec(1767225600) + 999999, buf),
        "2026-01-01T00:00:00Z");
    assert_string_equal(rv_format_time(apr_time_from_sec(253402300799LL), buf),
                        "9999-12-31T23:59:59Z");
}

/* The words after VALUE: a last expires=WHEN is taken off; anything else
 * about expires= is an error that never quotes the VALUE. */
static void test_take_expiry(void **state)
{
    char *lit[] = {"secret-value", "expires=2026-01-01", NULL};
    char *none[] = {"secret-value", NULL};
    char *exec[] = {"exec:/bin/echo", "a", "b", "expires=2026-01-01T10:00:00Z",
                    NULL};
    char *twice[] = {"secret-value", "expires=2026-01-01",
                     "expires=2026-01-02", NULL};
    char *early[] = {"exec:/bin/echo", "expires=2026-01-01", "a", NULL};
    char *novalue[] = {"expires=2026-01-01", NULL};
    char *bad[] = {"secret-value", "expires=2026-02-30", NULL};
    char *empty[] = {"secret-value", "expires=", NULL};
    char *evil[] = {"secret-value", "expires=\x1b[31m", NULL};
    apr_time_t at;
    const char *err;
    int argc;

    (void)state;
    argc = 2;
    assert_null(rv_take_expiry(pool, &argc, lit, &at));
    assert_int_equal(argc, 1);
    assert_int_equal(at, apr_time_from_sec(1767225600));
    argc = 1;
    assert_null(rv_take_expiry(pool, &argc, none, &at));
    assert_int_equal(argc, 1);
    assert_int_equal(at, RV_NEVER);
    argc = 4;
    assert_null(rv_take_expiry(pool, &argc, exec, &at));
    assert_int_equal(argc, 3);
    assert_int_equal(at, apr_time_from_sec(1767225600 + 36000));

    argc = 3;
    err = rv_take_expiry(pool, &argc, twice, &at);
    assert_non_null(err);
    assert_non_null(strstr(err, "last argument, and given once"));
    argc = 3;
    assert_non_null(rv_take_expiry(pool, &argc, early, &at));
    argc = 1;
    err = rv_take_expiry(pool, &argc, novalue, &at);
    assert_non_null(strstr(err, "VALUE is missing"));
    argc = 2;
    err = rv_take_expiry(pool, &argc, bad, &at);
    assert_non_null(strstr(err, "bad expires=2026-02-30: no such date"));
    assert_null(strstr(err, "secret-value"));
    argc = 2;
    err = rv_take_expiry(pool, &argc, empty, &at);
    assert_non_null(strstr(err, "bad expires=: expected YYYY-MM-DD or "
                                "YYYY-MM-DDTHH:MM:SSZ (UTC)"));
    argc = 2;
    err = rv_take_expiry(pool, &argc, evil, &at);
    assert_non_null(err);
    assert_null(strchr(err, '\x1b')); /* escaped for the log */
}

/* The expiry is in the entry the digest found: refused from the instant
 * on, accepted just before it; other tokens and bad slots unaffected. */
static void test_expiry_decision(void **state)
{
    rv_tokenset *s = rv_tokenset_make(pool);
    unsigned char d1[RV_DIGEST_LEN], d2[RV_DIGEST_LEN], d[RV_DIGEST_LEN];
    apr_time_t at = apr_time_from_sec(1767225600);
    int slot;

    (void)state;
    digest_of(TOK, d1);
    digest_of(TOK2, d2);
    assert_null(rv_tokenset_add_expiring(s, "old", d1, at));
    assert_null(rv_tokenset_add(s, "new", d2));
    assert_int_equal(rv_tokenset_expiry_at(s, 0), at);
    assert_int_equal(rv_tokenset_expiry_at(s, 1), RV_NEVER);
    assert_int_equal(rv_tokenset_expiry_at(s, 2), RV_NEVER);
    assert_int_equal(rv_tokenset_expiry_at(NULL, 0), RV_NEVER);

    assert_int_equal(
        rv_verify_slot(s, RV_HDR_BOTH, "Bearer " TOK, TOK, &slot, d), RV_OK);
    assert_int_equal(slot, 0);
    assert_int_equal(rv_check_expiry(s, slot, at - 1), RV_OK);
    assert_int_equal(rv_check_expiry(s, slot, at), RV_EXPIRED);
    assert_int_equal(rv_check_expiry(s, slot, at + 1), RV_EXPIRED);
    assert_int_equal(rv_check_expiry(s, slot, APR_INT64_MAX), RV_EXPIRED);
    assert_int_equal(rv_check_token_slot(s, TOK2, strlen(TOK2), &slot, d),
                     RV_OK);
    assert_int_equal(rv_check_expiry(s, slot, at + 1), RV_OK);
    assert_int_equal(rv_check_expiry(s, slot, APR_INT64_MAX - 1), RV_OK);
    /* no token found: fail closed */
    assert_int_equal(rv_check_expiry(s, -1, 0), RV_WRONG_TOKEN);
    assert_int_equal(rv_check_expiry(s, 2, 0), RV_WRONG_TOKEN);
    assert_int_equal(rv_check_expiry(NULL, 0, 0), RV_WRONG_TOKEN);
    /* the expiry stays with its token when the set grows */
    {
        int i;

        for (i = 0; i < 100; i++) {
            unsigned char x[RV_DIGEST_LEN];

            memset(x, 0, sizeof(x));
            x[0] = (unsigned char)i;
            x[1] = 0xee;
            assert_null(rv_tokenset_add_expiring(
                s, apr_psprintf(pool, "bulk%d", i), x,
                i % 2 ? RV_NEVER : apr_time_from_sec(i)));
        }
    }
    assert_int_equal(rv_tokenset_find(s, d1), 0);
    assert_int_equal(rv_tokenset_expiry_at(s, 0), at);
    assert_int_equal(rv_tokenset_expiry_at(s, 2), apr_time_from_sec(0));
    assert_int_equal(rv_tokenset_expiry_at(s, 3), RV_NEVER);
    assert_int_equal(rv_check_expiry(s, rv_tokenset_find(s, d2), at), RV_OK);
    assert_string_equal(rv_outcome_name(RV_EXPIRED), "expired");
}

/* ------------------------------------------------------------------ */

static void test_names(void **state)
{
    char long_name[RV_NAME_MAX + 2];

    (void)state;
    assert_true(rv_name_valid("prod"));
    assert_true(rv_name_valid("Prod_2.old-1"));
    assert_false(rv_name_valid(""));
    assert_false(rv_name_valid("a b"));
    assert_false(rv_name_valid("a/b"));
    assert_false(rv_name_valid("caf\xc3\xa9"));
    memset(long_name, 'a', sizeof(long_name));
    long_name[RV_NAME_MAX] = '\0';
    assert_true(rv_name_valid(long_name));
    long_name[RV_NAME_MAX] = 'a';
    long_name[RV_NAME_MAX + 1] = '\0';
    assert_false(rv_name_valid(long_name));
}

static void test_hex_and_lines(void **state)
{
    unsigned char d[RV_DIGEST_LEN];
    char buf[64];

    (void)state;
    assert_true(rv_hex_digest("00112233445566778899AABBCCDDEEFF"
                              "00112233445566778899aabbccddeeff",
                              d));
    assert_int_equal(d[0], 0x00);
    assert_int_equal(d[10], 0xaa);
    assert_int_equal(d[31], 0xff);
    assert_false(rv_hex_digest("0011", d));
    assert_false(rv_hex_digest("g0112233445566778899aabbccddeeff"
                               "00112233445566778899aabbccddeeff",
                               d));
    assert_false(rv_hex_digest("00112233445566778899aabbccddeeff"
                               "00112233445566778899aabbccddeeff00",
                               d));
    strcpy(buf, "  tok \r\nsecond line\n");
    assert_string_equal(rv_first_line(buf), "tok");
    strcpy(buf, "\nsecond");
    assert_string_equal(rv_first_line(buf), "");
    assert_true(rv_token_valid("a", 1));
    assert_false(rv_token_valid("", 0));
    assert_false(rv_token_valid("a b", 3));
}

static void test_same_header(void **state)
{
    (void)state;
    assert_true(rv_same_header("X-Redox-Source", "x-redox-source"));
    assert_true(rv_same_header("X_Redox_Source", "X-Redox-Source"));
    assert_true(rv_same_header("x-redox_source", "X_REDOX-SOURCE"));
    assert_false(rv_same_header("X-Redox-Sourc", "X-Redox-Source"));
    assert_false(rv_same_header("X-Redox-Source2", "X-Redox-Source"));
    assert_false(rv_same_header("X.Redox.Source", "X-Redox-Source"));
    assert_false(rv_same_header("", "X"));
}

static void test_list_without(void **state)
{
    const char *list = "close, X-Redox-Source";

    (void)state;
    assert_string_equal(rv_list_without(pool, list, "X-Redox-Source"),
                        "close");
    assert_ptr_equal(rv_list_without(pool, list, "X-Other"), list);
    assert_string_equal(
        rv_list_without(pool, "x_redox_source ,keep-alive,,X-REDOX-SOURCE",
                        "X-Redox-Source"),
        "keep-alive");
    assert_null(rv_list_without(pool, " X-Redox-Source ", "X-Redox-Source"));
    assert_null(rv_list_without(pool, NULL, "X-Redox-Source"));
    assert_string_equal(rv_list_without(pool, "close,\tx-redox-source\t, te",
                                        "X-Redox-Source"),
                        "close, te");
}

static void test_path_ambiguous(void **state)
{
    static const char *const ambiguous[] = {
        "/app/health/..;/data",
        "/app/health;/../data",
        "/app/health;jsessionid=1",
        "/app/health/..%5cdata",
        "/app/health/..%5Cdata",
        "/app/health/..\\data",
        "/app/health/..%2fdata",
        "/app/health/..%2Fdata",
        "/app/health/%2e%2e%2fdata",
        "/app/health/%2E%2E/data",
        "/app/health/../data",
        "/app/health/./x",
        "/app/health/..",
        "/app/health/.",
        "/app/health/..?x=1",
        "http://example.test/app/health/..;/data",
        "https://example.test:8443/app/%2e%2e/data?q",
    };
    static const char *const plain[] = {
        "/app/health",
        "/app/health/",
        "/app/health/status.json",
        "/app/health/.well-known/x",
        "/app/health/..x",
        "/app/health/x..",
        "/app/health?path=..;/%2e%2e%2f\\",
        "/app/health#..;",
        "/app/health/%41%20ok",
        "http://example.test/app/health",
        "*",
        "",
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
        if (!rv_path_ambiguous(ambiguous[i])) {
            fail_msg("not ambiguous: %s", ambiguous[i]);
        }
    }
    for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        if (rv_path_ambiguous(plain[i])) {
            fail_msg("ambiguous: %s", plain[i]);
        }
    }
    assert_false(rv_path_ambiguous(NULL));
}

/* ------------------------------------------------------------------ */

static const char *resolve(int argc, const char *const *argv,
                           unsigned char d[RV_DIGEST_LEN], apr_size_t *len)
{
    return rv_resolve_value(pool, argc, (char *const *)argv, d, len);
}

static void assert_digest_of(const unsigned char d[RV_DIGEST_LEN],
                             const char *tok)
{
    unsigned char want[RV_DIGEST_LEN];

    digest_of(tok, want);
    assert_memory_equal(d, want, RV_DIGEST_LEN);
}

static char tmpdir[] = "/tmp/rv_unit.XXXXXX";

static const char *write_file(const char *name, const char *content, int mode)
{
    const char *path = apr_pstrcat(pool, tmpdir, "/", name, NULL);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

static void test_resolve_literal_and_sha256(void **state)
{
    unsigned char d[RV_DIGEST_LEN];
    apr_size_t len;
    const char *lit[] = {TOK};
    const char *shrt[] = {"short"};
    const char *sha[] = {"sha256:ba7816bf8f01cfea414140de5dae2223"
                         "b00361a396177a9cb410ff61f20015ad"};
    const char *badsha[] = {"sha256:abc"};
    const char *extra[] = {TOK, "more"};
    const char *space[] = {"has space in it but is long enough......"};

    (void)state;
    assert_null(resolve(1, lit, d, &len));
    assert_int_equal(len, strlen(lit[0]));
    assert_digest_of(d, TOK);
    assert_null(resolve(1, shrt, d, &len));
    assert_int_equal(len, 5);
    assert_null(resolve(1, sha, d, &len));
    assert_int_equal(len, 0); /* the token behind a digest is not known */
    assert_digest_of(d, "abc");
    assert_non_null(strstr(resolve(1, badsha, d, &len), "64 hex"));
    assert_non_null(strstr(resolve(2, extra, d, &len), "NAME VALUE"));
    assert_non_null(strstr(resolve(1, space, d, &len), "visible"));
    assert_true(rv_value_is_literal(TOK));
    assert_true(rv_value_is_literal("a:b:c"));
    assert_true(rv_value_is_literal("files:x"));
    assert_false(rv_value_is_literal("file:/etc/x"));
    assert_false(rv_value_is_literal("env:X"));
    assert_false(rv_value_is_literal("exec:/bin/true"));
    assert_false(rv_value_is_literal(sha[0]));
}

static void test_resolve_file(void **state)
{
    unsigned char d[RV_DIGEST_LEN];
    apr_size_t len;
    const char *ok[] = {apr_pstrcat(
        pool, "file:", write_file("ok", "  " TOK "  \nx\n", 0600), NULL)};
    const char *empty[] = {
        apr_pstrcat(pool, "file:", write_file("empty", "\n", 0600), NULL)};
    const char *missing[] = {
        apr_pstrcat(pool, "file:", tmpdir, "/nope", NULL)};
    char *err;

    (void)state;
    assert_null(resolve(1, ok, d, &len));
    assert_digest_of(d, TOK);
    assert_non_null(strstr(resolve(1, empty, d, &len), "empty"));
    err = (char *)resolve(1, missing, d, &len);
    assert_non_null(strstr(err, "cannot be read"));
}

static void test_resolve_env(void **state)
{
    unsigned char d[RV_DIGEST_LEN];
    apr_size_t len;
    const char *set[] = {"env:RV_UNIT_TOKEN"};
    const char *unset[] = {"env:RV_UNIT_UNSET"};
    const char *empty[] = {"env:RV_UNIT_EMPTY"};

    (void)state;
    setenv("RV_UNIT_TOKEN", TOK2, 1);
    setenv("RV_UNIT_EMPTY", "", 1);
    unsetenv("RV_UNIT_UNSET");
    assert_null(resolve(1, set, d, &len));
    assert_digest_of(d, TOK2);
    assert_non_null(strstr(resolve(1, unset, d, &len), "not set"));
    assert_non_null(strstr(resolve(1, empty, d, &len), "empty"));
}

static void test_resolve_exec(void **state)
{
    unsigned char d[RV_DIGEST_LEN];
    apr_size_t len;
    const char *prog = write_file("prog", "#!/bin/sh\necho \"$1\"\n", 0700);
    const char *fail =
        write_file("fail", "#!/bin/sh\necho " TOK "\nexit 3\n", 0700);
    const char *silent = write_file("silent", "#!/bin/sh\nexit 0\n", 0700);
    const char *ok[] = {apr_pstrcat(pool, "exec:", prog, NULL), TOK};
    const char *failing[] = {apr_pstrcat(pool, "exec:", fail, NULL)};
    const char *nothing[] = {apr_pstrcat(pool, "exec:", silent, NULL)};
    const char *absent[] = {"exec:/nonexistent/program"};

    (void)state;
    assert_null(resolve(2, ok, d, &len));
    assert_digest_of(d, TOK);
    assert_non_null(strstr(resolve(1, failing, d, &len), "failed"));
    assert_non_null(strstr(resolve(1, nothing, d, &len), "printed nothing"));
    assert_non_null(resolve(1, absent, d, &len));
}

/* No error message may carry the token it failed on. */
static void test_errors_never_show_token(void **state)
{
    unsigned char d[RV_DIGEST_LEN];
    apr_size_t len;
    const char *bad[] = {"secret-value-with space-0123456789abcdef"};
    const char *err;

    (void)state;
    err = resolve(1, bad, d, &len);
    assert_non_null(err);
    assert_null(strstr(err, "secret-value"));
}

/* The one character-set check and the validators built on it. */
static void test_chars_valid(void **state)
{
    (void)state;
    assert_true(rv_chars_valid("a", "", 1));
    assert_false(rv_chars_valid("ab", "", 1));
    assert_false(rv_chars_valid("", "-", 10));
    assert_true(rv_chars_valid("A-9", "-", 3));
    assert_false(rv_chars_valid("A_9", "-", 3));
    assert_false(rv_chars_valid("a\xc3\xa9", "", 10));

    assert_true(rv_header_name_valid("X-Redox-Source"));
    assert_true(rv_header_name_valid("x!#$%&'*+-.^_`|~0"));
    assert_false(rv_header_name_valid(""));
    assert_false(rv_header_name_valid("X Redox"));
    assert_false(rv_header_name_valid("X:Redox"));
    assert_false(rv_header_name_valid("X\r\nY"));
    assert_false(rv_header_name_valid("X(1)"));
    assert_false(rv_header_name_valid("caf\xc3\xa9"));
}

static void test_directive_keywords(void **state)
{
    (void)state;
    assert_int_equal(rv_parse_hdr_mode("both"), RV_HDR_BOTH);
    assert_int_equal(rv_parse_hdr_mode("ANY"), RV_HDR_ANY);
    assert_int_equal(rv_parse_hdr_mode("Bearer"), RV_HDR_BEARER);
    assert_int_equal(rv_parse_hdr_mode("Verification-Token"), RV_HDR_VTOKEN);
    assert_int_equal(rv_parse_hdr_mode(""), -1);
    assert_int_equal(rv_parse_hdr_mode("bothx"), -1);
    assert_int_equal(rv_parse_hdr_mode("authorization"), -1);

    assert_int_equal(rv_parse_deny_status("401"), 401);
    assert_int_equal(rv_parse_deny_status("403"), 403);
    assert_int_equal(rv_parse_deny_status("404"), 404);
    assert_int_equal(rv_parse_deny_status("400"), -1);
    assert_int_equal(rv_parse_deny_status("401 "), -1);
    assert_int_equal(rv_parse_deny_status("0401"), -1);
    assert_int_equal(rv_parse_deny_status(""), -1);
}

/* RFC 6750's error codes: a token that is wrong, or cannot be taken,
 * against a request that is malformed; none when no token came. */
static void test_bearer_challenge(void **state)
{
    static const struct {
        rv_outcome why;
        const char *error;
    } cases[] = {
        {RV_MISSING, ""},
        {RV_NO_TOKENS, ""},
        {RV_MALFORMED, ", error=\"invalid_request\""},
        {RV_WRONG_TOKEN, ", error=\"invalid_token\""},
        {RV_MISMATCH, ", error=\"invalid_token\""},
        {RV_EXPIRED, ", error=\"invalid_token\""},
    };
    apr_size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(
            rv_bearer_challenge(pool, "Redox", cases[i].why),
            apr_pstrcat(pool, "Bearer realm=\"Redox\"", cases[i].error, NULL));
    }
    assert_string_equal(rv_bearer_challenge(pool, "Hooks", RV_MISSING),
                        "Bearer realm=\"Hooks\"");
    /* no AuthName: the default realm's, the same text */
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(
            rv_bearer_challenge(pool, NULL, cases[i].why),
            rv_bearer_challenge(pool, RV_DEFAULT_REALM, cases[i].why));
    }
}

/* The environment names a request header reaches a CGI or SSI page by. */
static void test_env_names_header(void **state)
{
    (void)state;
    assert_true(rv_env_names_header("HTTP_X_REDOX_SOURCE", "X-Redox-Source"));
    assert_true(
        rv_env_names_header("REDIRECT_HTTP_X_REDOX_SOURCE", "x-redox-source"));
    assert_true(rv_env_names_header("HTTP_X-REDOX_SOURCE", "X-Redox-Source"));
    assert_false(rv_env_names_header("X_REDOX_SOURCE", "X-Redox-Source"));
    assert_true(rv_env_names_header("REDIRECT_REDIRECT_HTTP_X_REDOX_SOURCE",
                                    "X-Redox-Source"));
    assert_true(rv_env_names_header(
        "REDIRECT_REDIRECT_REDIRECT_HTTP_VERIFICATION_TOKEN", RV_VTOKEN));
    assert_false(rv_env_names_header("REDIRECT_REDIRECT_X_REDOX_SOURCE",
                                     "X-Redox-Source"));
    assert_false(rv_env_names_header(
        "REDIRECT_HTTP_REDIRECT_HTTP_AUTHORIZATION", "Authorization"));
    assert_false(
        rv_env_names_header("HTTP_X_REDOX_SOURCES", "X-Redox-Source"));
    assert_false(rv_env_names_header("HTTP_", "X-Redox-Source"));
    assert_false(rv_env_names_header("REDIRECT_", "X-Redox-Source"));
    assert_false(rv_env_names_header("", "X-Redox-Source"));
}

static void test_is_bearer(void **state)
{
    static const struct {
        const char *value;
        int bearer;
    } cases[] = {
        {"Bearer abc", 1},     {"bearer abc", 1},  {"  BEARER   abc", 1},
        {"Bearer", 1},         {"Bearer ", 1},     {"Bearer a b", 1},
        {"Basic dXNlcg==", 0}, {"Bearerish x", 0}, {"", 0},
        {"Digest x", 0},
    };
    size_t i;

    (void)state;
    assert_false(rv_is_bearer(NULL));
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *tok;
        apr_size_t len;

        assert_int_equal(rv_is_bearer(cases[i].value), cases[i].bearer);
        /* the scheme alone: what rv_parse_bearer says, absent or not */
        assert_int_equal(rv_parse_bearer(cases[i].value, &tok, &len)
                             != RV_ABSENT,
                         cases[i].bearer);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bearer_parsing),
        cmocka_unit_test(test_is_bearer),
        cmocka_unit_test(test_vtoken_parsing),
        cmocka_unit_test(test_token_bytes),
        cmocka_unit_test(test_bearer_word),
        cmocka_unit_test(test_digest_known_answer),
        cmocka_unit_test(test_digest_cleanup),
        cmocka_unit_test(test_tokenset),
        cmocka_unit_test(test_tokenset_many),
        cmocka_unit_test(test_tokenset_tag_collisions),
        cmocka_unit_test(test_verify_both),
        cmocka_unit_test(test_verify_any),
        cmocka_unit_test(test_verify_single_header),
        cmocka_unit_test(test_verify_no_tokens),
        cmocka_unit_test(test_verify_digest_out),
        cmocka_unit_test(test_tokenset_slots),
        cmocka_unit_test(test_bearer_is_ours),
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_expiry_parser),
        cmocka_unit_test(test_expiry_calendar),
        cmocka_unit_test(test_expiry_format),
        cmocka_unit_test(test_take_expiry),
        cmocka_unit_test(test_expiry_decision),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_hex_and_lines),
        cmocka_unit_test(test_same_header),
        cmocka_unit_test(test_list_without),
        cmocka_unit_test(test_path_ambiguous),
        cmocka_unit_test(test_resolve_literal_and_sha256),
        cmocka_unit_test(test_resolve_file),
        cmocka_unit_test(test_resolve_env),
        cmocka_unit_test(test_resolve_exec),
        cmocka_unit_test(test_errors_never_show_token),
        cmocka_unit_test(test_chars_valid),
        cmocka_unit_test(test_directive_keywords),
        cmocka_unit_test(test_bearer_challenge),
        cmocka_unit_test(test_env_names_header),
    };
    char rm[64];
    int failed;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    assert_true(rv_digest_init());
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    failed = cmocka_run_group_tests_name("rv_core", tests, NULL, NULL);
    rv_digest_term();
    apr_pool_destroy(pool);
    apr_terminate();
    snprintf(rm, sizeof(rm), "rm -rf '%s'", tmpdir);
    if (system(rm) != 0) {
        return 1;
    }
    return failed;
}
