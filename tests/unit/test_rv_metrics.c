/* Unit tests of rv_metrics.c: the shared-memory counter store (across
 * processes, across segments, reset), the renderings and the plan (the
 * series of a configuration and their layout in the store). */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <apr_general.h>
#include <apr_strings.h>

#include "rv_metrics.h"

static apr_pool_t *pool;

/* ------------------------------------------------------------------ */
/* The store                                                           */

static void test_store_reserve(void **state)
{
    rv_store *st = rv_store_make(pool);

    (void)state;
    assert_int_equal(rv_store_reserve(st, "va", RV_M_VHOST_SPAN), 0);
    assert_int_equal(rv_store_reserve(st, "vb", RV_M_VHOST_SPAN),
                     RV_M_VHOST_SPAN);
    assert_int_equal(rv_store_reserve(st, "n1:ax", RV_M_NAME_SPAN),
                     2 * RV_M_VHOST_SPAN);
    /* The same key, the same block, however often it is asked for. */
    assert_int_equal(rv_store_reserve(st, "va", RV_M_VHOST_SPAN), 0);
    assert_int_equal(rv_store_reserve(st, "n1:ax", RV_M_NAME_SPAN),
                     2 * RV_M_VHOST_SPAN);
    assert_int_equal(rv_store_used(st), 2 * RV_M_VHOST_SPAN + RV_M_NAME_SPAN);
    assert_null(rv_store_counters(st));
    assert_int_equal(rv_store_segments(st), 0);
}

static void test_store_count_and_read(void **state)
{
    rv_store *st = rv_store_make(pool);
    rv_counter *c;
    apr_uint32_t a, b;
    int i;

    (void)state;
    a = rv_store_reserve(st, "va", RV_M_VHOST_SPAN);
    b = rv_store_reserve(st, "n2:vaprod", RV_M_NAME_SPAN);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    assert_int_equal(rv_store_segments(st), 1);
    c = rv_store_counters(st);
    assert_non_null(c);
    for (i = 0; i < 5; i++) {
        rv_count(c, a + RV_M_DENIED(RV_WRONG_TOKEN));
    }
    rv_count(c, b + RV_M_ACCEPTED);
    assert_int_equal(rv_store_read(st, a + RV_M_DENIED(RV_WRONG_TOKEN)), 5);
    assert_int_equal(rv_store_read(st, a + RV_M_DENIED(RV_MISSING)), 0);
    assert_int_equal(rv_store_read(st, b + RV_M_ACCEPTED), 1);
    assert_int_equal(rv_store_read(st, b + RV_M_ANSWERED), 0);
    /* Nothing new: the segment stays. */
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    assert_int_equal(rv_store_segments(st), 1);
    assert_ptr_equal(rv_store_counters(st), c);
}

/* A configuration that outgrows the segment (a graceful restart adding
 * many tokens) gets a new one; counters of the old generation's children,
 * which still write to the old one, are still read. */
/* Keys within a scope: apart from plain keys and from other scopes' keys,
 * and kept through the table's growth. */
static void test_store_reserve_in(void **state)
{
    rv_store *st = rv_store_make(pool);
    apr_uint32_t plain, a, b, first[3000];
    char key[32];
    int i;

    (void)state;
    plain = rv_store_reserve(st, "prod", RV_M_NAME_SPAN);
    a = rv_store_reserve_in(st, "a:1", "prod", RV_M_NAME_SPAN);
    b = rv_store_reserve_in(st, "b:1", "prod", RV_M_NAME_SPAN);
    assert_int_not_equal(plain, a);
    assert_int_not_equal(a, b);
    assert_int_not_equal(plain, b);
    assert_int_equal(rv_store_reserve_in(st, "a:1", "prod", RV_M_NAME_SPAN),
                     a);
    for (i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "t%d", i);
        first[i] = rv_store_reserve_in(st, i % 2 ? "a:1" : "b:1", key,
                                       RV_M_NAME_SPAN);
    }
    assert_int_equal(rv_store_used(st), 3003 * RV_M_NAME_SPAN);
    for (i = 2999; i >= 0; i--) {
        snprintf(key, sizeof(key), "t%d", i);
        assert_int_equal(rv_store_reserve_in(st, i % 2 ? "a:1" : "b:1", key,
                                             RV_M_NAME_SPAN),
                         first[i]);
    }
    assert_int_equal(rv_store_reserve(st, "prod", RV_M_NAME_SPAN), plain);
    assert_int_equal(rv_store_reserve_in(st, "b:1", "prod", RV_M_NAME_SPAN),
                     b);
    assert_int_equal(rv_store_used(st), 3003 * RV_M_NAME_SPAN);
    rv_store_reset(st);
    assert_int_equal(rv_store_reserve_in(st, "b:1", "t0", RV_M_NAME_SPAN), 0);
}

static void test_store_grows_and_sums(void **state)
{
    rv_store *st = rv_store_make(pool);
    rv_counter *old, *cur;
    apr_uint32_t a, last = 0;
    char key[32];
    int i;

    (void)state;
    a = rv_store_reserve(st, "va", RV_M_VHOST_SPAN);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    old = rv_store_counters(st);
    rv_count(old, a + 1);
    rv_count(old, a + 1);

    for (i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        last = rv_store_reserve(st, key, RV_M_NAME_SPAN);
    }
    assert_int_equal(rv_store_reserve(st, "va", RV_M_VHOST_SPAN), a);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    assert_int_equal(rv_store_segments(st), 2);
    cur = rv_store_counters(st);
    assert_ptr_not_equal(cur, old);

    rv_count(old, a + 1); /* an old child, after the restart */
    rv_count(cur, a + 1); /* a new child */
    rv_count(cur, last + 1);
    assert_int_equal(rv_store_read(st, a + 1), 4);
    assert_int_equal(rv_store_read(st, last + 1), 1);
    assert_int_equal(rv_store_read(st, last), 0);
}

/* Children forked after commit count into the same words, exactly. */
static void test_store_exact_across_processes(void **state)
{
    enum { KIDS = 4, EACH = 200000 };
    rv_store *st = rv_store_make(pool);
    rv_counter *c;
    apr_uint32_t shared, own;
    pid_t pids[KIDS];
    int i, status;

    (void)state;
    shared = rv_store_reserve(st, "va", RV_M_VHOST_SPAN);
    own = rv_store_reserve(st, "vb", RV_M_VHOST_SPAN);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    c = rv_store_counters(st);
    for (i = 0; i < KIDS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            int n;

            for (n = 0; n < EACH; n++) {
                rv_count(c, shared);
                if (n % 4 == 0) {
                    rv_count(c, own + (apr_uint32_t)i);
                }
            }
            _exit(0);
        }
    }
    for (i = 0; i < KIDS; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(rv_store_read(st, shared), (apr_uint64_t)KIDS * EACH);
    for (i = 0; i < KIDS; i++) {
        assert_int_equal(rv_store_read(st, own + (apr_uint32_t)i), EACH / 4);
    }
}

/* A timestamp only goes forward: a stamp older than the word is dropped
 * (two children racing), and a read takes the latest over the segments
 * (an old child after a graceful restart stamps the old one). */
static void test_store_stamp_latest(void **state)
{
    rv_store *st = rv_store_make(pool);
    rv_counter *old, *cur;
    apr_uint32_t a, b;
    char key[32];
    int i;

    (void)state;
    a = rv_store_reserve_in(st, "va", "prod", RV_M_NAME_SPAN);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    old = rv_store_counters(st);
    assert_int_equal(rv_store_read_latest(st, a + RV_M_LAST_ACCEPTED), 0);
    rv_stamp(old, a + RV_M_LAST_ACCEPTED, 1000);
    rv_stamp(old, a + RV_M_LAST_ACCEPTED, 999);
    assert_int_equal(rv_store_read_latest(st, a + RV_M_LAST_ACCEPTED), 1000);
    rv_stamp(old, a + RV_M_LAST_ACCEPTED, 1000);
    rv_stamp(old, a + RV_M_LAST_ACCEPTED, 1001);
    assert_int_equal(rv_store_read_latest(st, a + RV_M_LAST_ACCEPTED), 1001);

    for (i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        rv_store_reserve(st, key, RV_M_NAME_SPAN);
    }
    b = rv_store_reserve_in(st, "va", "prod", RV_M_NAME_SPAN);
    assert_int_equal(b, a);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    cur = rv_store_counters(st);
    assert_ptr_not_equal(cur, old);
    /* kept across the new segment, whichever generation stamps later */
    assert_int_equal(rv_store_read_latest(st, a + RV_M_LAST_ACCEPTED), 1001);
    rv_stamp(cur, a + RV_M_LAST_ACCEPTED, 1500);
    assert_int_equal(rv_store_read_latest(st, a + RV_M_LAST_ACCEPTED), 1500);
    rv_stamp(old, a + RV_M_LAST_ACCEPTED, 1600);
    assert_int_equal(rv_store_read_latest(st, a + RV_M_LAST_ACCEPTED), 1600);
    /* the counters beside it are untouched */
    assert_int_equal(rv_store_read(st, a + RV_M_ACCEPTED), 0);
    assert_int_equal(rv_store_read(st, a + RV_M_ANSWERED), 0);
}

/* Children forked after commit stamp one word: it ends at the latest
 * stamp any of them made, whatever the order of their stores. */
static void test_store_stamp_across_processes(void **state)
{
    enum { KIDS = 4, EACH = 50000 };
    rv_store *st = rv_store_make(pool);
    rv_counter *c;
    apr_uint32_t w;
    pid_t pids[KIDS];
    int i, status;

    (void)state;
    w = rv_store_reserve_in(st, "va", "prod", RV_M_NAME_SPAN);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    c = rv_store_counters(st);
    for (i = 0; i < KIDS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            apr_uint64_t n;

            /* kid i stamps i+1, i+1+KIDS, ...: the largest of all is the
             * last stamp of kid KIDS-1 */
            for (n = 0; n < EACH; n++) {
                rv_count(c, w + RV_M_ACCEPTED);
                rv_stamp(c, w + RV_M_LAST_ACCEPTED,
                         n * KIDS + (apr_uint64_t)i + 1);
            }
            _exit(0);
        }
    }
    for (i = 0; i < KIDS; i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(rv_store_read(st, w + RV_M_ACCEPTED),
                     (apr_uint64_t)KIDS * EACH);
    assert_int_equal(rv_store_read_latest(st, w + RV_M_LAST_ACCEPTED),
                     (apr_uint64_t)KIDS * EACH);
}

/* Each series reads its value where its metric keeps it. */
static void test_series_value(void **state)
{
    rv_store *st = rv_store_make(pool);
    apr_uint64_t consts[2] = {1767225600, 42};
    rv_series x;
    apr_uint32_t a;

    (void)state;
    a = rv_store_reserve_in(st, "va", "prod", RV_M_NAME_SPAN);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    rv_count(rv_store_counters(st), a + RV_M_ACCEPTED);
    rv_count(rv_store_counters(st), a + RV_M_ACCEPTED);
    rv_stamp(rv_store_counters(st), a + RV_M_LAST_ACCEPTED, 1700000000);
    x.vhost = "va";
    x.label = "prod";
    x.metric = RV_M_REQUESTS_ACCEPTED;
    x.index = a + RV_M_ACCEPTED;
    assert_int_equal(rv_series_value(st, &x, consts), 2);
    x.metric = RV_M_TOKEN_LAST_ACCEPTED;
    x.index = a + RV_M_LAST_ACCEPTED;
    assert_int_equal(rv_series_value(st, &x, consts), 1700000000);
    x.metric = RV_M_TOKEN_EXPIRY;
    x.index = 0;
    assert_int_equal(rv_series_value(st, &x, consts), 1767225600);
}

static void test_store_reset(void **state)
{
    rv_store *st = rv_store_make(pool);
    apr_uint32_t a;
    int i;

    (void)state;
    rv_store_reserve(st, "vgone", RV_M_VHOST_SPAN);
    a = rv_store_reserve(st, "va", RV_M_VHOST_SPAN);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    for (i = 0; i < 3000; i++) {
        rv_store_reserve(st, apr_psprintf(pool, "n%d", i), 2);
    }
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    rv_count(rv_store_counters(st), a);
    assert_int_equal(rv_store_read(st, a), 1);

    /* A hard restart: keys forgotten, one fresh segment, zeros. */
    rv_store_reset(st);
    assert_int_equal(rv_store_used(st), 0);
    assert_int_equal(rv_store_segments(st), 0);
    assert_int_equal(rv_store_reserve(st, "va", RV_M_VHOST_SPAN), 0);
    assert_int_equal(rv_store_commit(st), APR_SUCCESS);
    assert_int_equal(rv_store_segments(st), 1);
    assert_int_equal(rv_store_read(st, 0), 0);
}

/* ------------------------------------------------------------------ */
/* Renderings                                                          */

static void test_prom_escape(void **state)
{
    (void)state;
    assert_string_equal(rv_prom_escape(pool, "plain.name-1_x:80"),
                        "plain.name-1_x:80");
    assert_string_equal(rv_prom_escape(pool, "a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    assert_string_equal(rv_prom_escape(pool, ""), "");
    assert_string_equal(rv_prom_escape(pool, "\n\n"), "\\n\\n");
}

static void test_metric_reasons(void **state)
{
    (void)state;
    assert_true(rv_metric_has_reason(RV_M_REQUESTS_DENIED, RV_MISSING));
    assert_true(rv_metric_has_reason(RV_M_REQUESTS_DENIED, RV_MISMATCH));
    assert_false(rv_metric_has_reason(RV_M_REQUESTS_DENIED, RV_OK));
    assert_false(rv_metric_has_reason(RV_M_REQUESTS_DENIED, RV_BAD_CHALLENGE));
    assert_true(
        rv_metric_has_reason(RV_M_HANDSHAKES_REFUSED, RV_BAD_CHALLENGE));
    assert_false(rv_metric_has_reason(RV_M_HANDSHAKES_REFUSED, RV_MALFORMED));
    assert_false(rv_metric_has_reason(RV_M_REQUESTS_ACCEPTED, RV_OK));
    assert_true(rv_metric_has_reason(RV_M_REQUESTS_DENIED, RV_EXPIRED));
    assert_true(rv_metric_has_reason(RV_M_HANDSHAKES_REFUSED, RV_EXPIRED));
    assert_false(rv_metric_has_reason(RV_M_TOKEN_EXPIRY, RV_EXPIRED));
    assert_string_equal(rv_metric_label(RV_M_TOKEN_EXPIRY), "name");
    assert_string_equal(rv_metric_label(RV_M_TOKEN_LAST_ACCEPTED), "name");
    assert_false(rv_metric_is_gauge(RV_M_REQUESTS_DENIED));
    assert_true(rv_metric_is_gauge(RV_M_TOKEN_EXPIRY));
    assert_true(rv_metric_is_gauge(RV_M_TOKEN_LAST_ACCEPTED));
    assert_int_equal(rv_metric_read(RV_M_HANDSHAKES_ANSWERED), RV_READ_SUM);
    assert_int_equal(rv_metric_read(RV_M_TOKEN_EXPIRY), RV_READ_CONFIG);
    assert_int_equal(rv_metric_read(RV_M_TOKEN_LAST_ACCEPTED), RV_READ_LATEST);
    assert_string_equal(rv_metric_label(RV_M_REQUESTS_ACCEPTED), "name");
    assert_string_equal(rv_metric_label(RV_M_HANDSHAKES_REFUSED), "reason");
}

static rv_series sample[] = {
    {.metric = RV_M_REQUESTS_DENIED,
     .vhost = "b.test:443",
     .label = "wrong-token"},
    {.metric = RV_M_REQUESTS_ACCEPTED, .vhost = "b.test:443", .label = "prod"},
    {.metric = RV_M_REQUESTS_ACCEPTED,
     .vhost = "a.test:443",
     .label = "staging"},
    {.metric = RV_M_REQUESTS_ACCEPTED, .vhost = "a.test:443", .label = "prod"},
    {.metric = RV_M_HANDSHAKES_REFUSED,
     .vhost = "odd\"host\\\n:1",
     .label = "missing"},
};

static void test_series_sort(void **state)
{
    rv_series s[5];

    (void)state;
    memcpy(s, sample, sizeof(s));
    rv_series_sort(s, 5);
    assert_int_equal(s[0].metric, RV_M_REQUESTS_ACCEPTED);
    assert_string_equal(s[0].vhost, "a.test:443");
    assert_string_equal(s[0].label, "prod");
    assert_string_equal(s[1].label, "staging");
    assert_string_equal(s[2].vhost, "b.test:443");
    assert_int_equal(s[3].metric, RV_M_REQUESTS_DENIED);
    assert_int_equal(s[4].metric, RV_M_HANDSHAKES_REFUSED);
}

static void test_render_prometheus(void **state)
{
    rv_series s[5];
    apr_uint64_t v[5] = {7, 0, 18446744073709551615ULL, 3, 1};
    char *out;

    (void)state;
    memcpy(s, sample, sizeof(s));
    rv_series_sort(s, 5);
    out = rv_render_prometheus(pool, s, 5, v);
    assert_string_equal(
        out,
        "# HELP redox_verify_requests_accepted_total Requests whose Redox "
        "token was accepted, by VirtualHost and token NAME.\n"
        "# TYPE redox_verify_requests_accepted_total counter\n"
        "redox_verify_requests_accepted_total{vhost=\"a.test:443\","
        "name=\"prod\"} 7\n"
        "redox_verify_requests_accepted_total{vhost=\"a.test:443\","
        "name=\"staging\"} 0\n"
        "redox_verify_requests_accepted_total{vhost=\"b.test:443\","
        "name=\"prod\"} 18446744073709551615\n"
        "# HELP redox_verify_requests_denied_total Requests denied for want "
        "of a valid Redox token, by VirtualHost and reason.\n"
        "# TYPE redox_verify_requests_denied_total counter\n"
        "redox_verify_requests_denied_total{vhost=\"b.test:443\","
        "reason=\"wrong-token\"} 3\n"
        "# HELP redox_verify_handshakes_answered_total Redox "
        "endpoint-verification handshakes answered, by VirtualHost and "
        "token NAME.\n"
        "# TYPE redox_verify_handshakes_answered_total counter\n"
        "# HELP redox_verify_handshakes_refused_total Redox "
        "endpoint-verification handshakes refused, by VirtualHost and "
        "reason.\n"
        "# TYPE redox_verify_handshakes_refused_total counter\n"
        "redox_verify_handshakes_refused_total{vhost=\"odd\\\"host\\\\\\n"
        ":1\",reason=\"missing\"} 1\n"
        "# HELP redox_verify_token_expiry_timestamp_seconds When the token "
        "stops being accepted (its expires=), in Unix time, by VirtualHost "
        "and token NAME; only tokens with an expiry.\n"
        "# TYPE redox_verify_token_expiry_timestamp_seconds gauge\n"
        "# HELP redox_verify_token_last_accepted_timestamp_seconds When a "
        "request or handshake with the token was last accepted, in Unix "
        "time, by VirtualHost and token NAME; 0 if never since the last "
        "hard restart.\n"
        "# TYPE redox_verify_token_last_accepted_timestamp_seconds gauge\n");
    /* No series at all: the families are still announced. */
    out = rv_render_prometheus(pool, NULL, 0, NULL);
    assert_non_null(strstr(out, "# TYPE redox_verify_handshakes_refused_total"
                                " counter\n"));
    assert_null(strstr(out, "{"));
}

static void test_render_status_auto(void **state)
{
    rv_series s[4];
    apr_uint64_t v[4] = {7, 5, 2, 3};

    (void)state;
    memcpy(s, sample, sizeof(s));
    rv_series_sort(s, 4);
    assert_string_equal(rv_render_status_auto(pool, s, 4, v),
                        "RedoxVerifyAccepted: 14\n"
                        "RedoxVerifyDenied: 3\n"
                        "RedoxVerifyHandshakesAnswered: 0\n"
                        "RedoxVerifyHandshakesRefused: 0\n"
                        "RedoxVerifyAccepted[a.test:443,prod]: 7\n"
                        "RedoxVerifyAccepted[a.test:443,staging]: 5\n"
                        "RedoxVerifyAccepted[b.test:443,prod]: 2\n"
                        "RedoxVerifyDenied[b.test:443,wrong-token]: 3\n");
}

/* The timestamps are gauges: TYPE gauge in Prometheus, no total in ?auto
 * (a sum of times means nothing), UTC dates and "never" in HTML. */
static void test_render_gauges(void **state)
{
    rv_series s[3] = {
        {.metric = RV_M_REQUESTS_ACCEPTED, .vhost = "a:1", .label = "prod"},
        {.metric = RV_M_TOKEN_EXPIRY, .vhost = "a:1", .label = "prod"},
        {.metric = RV_M_TOKEN_LAST_ACCEPTED, .vhost = "a:1", .label = "prod"},
    };
    apr_uint64_t v[3] = {3, 1767225600, 0};
    char *out;

    (void)state;
    out = rv_render_prometheus(pool, s, 3, v);
    assert_non_null(strstr(
        out, "# TYPE redox_verify_token_expiry_timestamp_seconds gauge\n"
             "redox_verify_token_expiry_timestamp_seconds{vhost=\"a:1\","
             "name=\"prod\"} 1767225600\n"));
    assert_non_null(
        strstr(out, "# TYPE redox_verify_token_last_accepted_timestamp_seconds"
                    " gauge\n"
                    "redox_verify_token_last_accepted_timestamp_seconds{"
                    "vhost=\"a:1\",name=\"prod\"} 0\n"));
    out = rv_render_status_auto(pool, s, 3, v);
    assert_string_equal(out, "RedoxVerifyAccepted: 3\n"
                             "RedoxVerifyDenied: 0\n"
                             "RedoxVerifyHandshakesAnswered: 0\n"
                             "RedoxVerifyHandshakesRefused: 0\n"
                             "RedoxVerifyAccepted[a:1,prod]: 3\n"
                             "RedoxVerifyTokenExpiry[a:1,prod]: 1767225600\n"
                             "RedoxVerifyTokenLastAccepted[a:1,prod]: 0\n");
    out = rv_render_status_html(pool, s, 3, v, 0);
    assert_non_null(strstr(out, "<h3>Token expiry</h3>\n<table border=\"0\">"
                                "<tr><th>VirtualHost</th><th>name</th>"
                                "<th>UTC</th></tr>\n<tr><td>a:1</td>"
                                "<td>prod</td><td>2026-01-01T00:00:00Z</td>"));
    assert_non_null(strstr(out, "<td>a:1</td><td>prod</td><td>never</td>"));
    v[2] = 1767225601;
    out = rv_render_status_html(pool, s, 3, v, 1);
    assert_non_null(strstr(out, "a:1 prod: 2026-01-01T00:00:01Z<br />"));
}

static void test_render_status_html(void **state)
{
    rv_series s[2] = {
        {.metric = RV_M_REQUESTS_ACCEPTED, .vhost = "<b>&:1", .label = "prod"},
        {.metric = RV_M_REQUESTS_DENIED, .vhost = "a:1", .label = "missing"},
    };
    apr_uint64_t v[2] = {4, 9};
    char *out;

    (void)state;
    out = rv_render_status_html(pool, s, 2, v, 0);
    assert_non_null(strstr(out, "<h2>Redox token verification"));
    assert_non_null(strstr(out, "<td>&lt;b&gt;&amp;:1</td><td>prod</td>"
                                "<td>4</td>"));
    assert_non_null(strstr(out, "<td>a:1</td><td>missing</td><td>9</td>"));
    assert_null(strstr(out, "<b>"));
    assert_non_null(strstr(out, "<h3>Handshakes answered</h3>\n"
                                "<p>none configured</p>"));
    out = rv_render_status_html(pool, s, 2, v, 1);
    assert_null(strstr(out, "<table"));
    assert_non_null(strstr(out, "a:1 missing: 9<br />"));
}

/* ------------------------------------------------------------------ */
/* The plan                                                            */

static rv_tokenset *set_of(const char *const *names, const apr_time_t *exp,
                           int n)
{
    rv_tokenset *set = rv_tokenset_make(pool);
    unsigned char d[RV_DIGEST_LEN];
    int i;

    for (i = 0; i < n; i++) {
        assert_true(rv_digest(names[i], strlen(names[i]), d));
        assert_null(rv_tokenset_add_expiring(set, names[i], d, exp[i]));
    }
    return set;
}

static const rv_series *find_series(const rv_plan *plan, rv_metric m,
                                    const char *vhost, const char *label)
{
    int i;

    for (i = 0; i < plan->nseries; i++) {
        const rv_series *x = &plan->series[i];

        if (x->metric == m && !strcmp(x->vhost, vhost)
            && !strcmp(x->label, label)) {
            return x;
        }
    }
    return NULL;
}

#define T2029 apr_time_from_sec(1874966400) /* 2029-06-01 */
#define T2030 apr_time_from_sec(1893456000) /* 2030-01-01 */

/* Four servers: the main one and two VirtualHosts counted, one not; a
 * token set in the main server (every counted server counts its tokens)
 * and one in a VirtualHost, sharing the NAME "old" with a sooner expiry. */
static rv_plan *four_servers(rv_plan_tokens **main_set,
                             rv_plan_tokens **vhost_set)
{
    static const char *const main_names[] = {"prod", "old"};
    static const char *const vhost_names[] = {"old", "ci"};
    const apr_time_t main_exp[] = {RV_NEVER, T2030};
    const apr_time_t vhost_exp[] = {T2029, RV_NEVER};
    rv_plan *plan = apr_pcalloc(pool, sizeof(*plan));
    rv_plan_tokens **sets = apr_pcalloc(pool, 2 * sizeof(*sets));

    plan->nvhosts = 4;
    plan->vhosts = apr_pcalloc(pool, 4 * sizeof(*plan->vhosts));
    plan->vhosts[0].label = "main:80";
    plan->vhosts[1].label = "a.example:80";
    plan->vhosts[2].label = "b.example:80";
    plan->vhosts[3].label = "c.example:8443";
    plan->vhosts[0].counted = plan->vhosts[1].counted = 1;
    plan->vhosts[3].counted = 1;
    sets[0] = *main_set = apr_pcalloc(pool, sizeof(**sets));
    sets[0]->set = set_of(main_names, main_exp, 2);
    sets[0]->vhost = 0;
    sets[1] = *vhost_set = apr_pcalloc(pool, sizeof(**sets));
    sets[1]->set = set_of(vhost_names, vhost_exp, 2);
    sets[1]->vhost = 1;
    plan->tokens = sets;
    plan->ntokens = 2;
    return plan;
}

static void test_plan_series(void **state)
{
    rv_plan_tokens *m, *v;
    rv_plan *plan = four_servers(&m, &v);
    const rv_series *x;
    int i;

    (void)state;
    assert_int_equal(rv_plan_series(pool, plan), APR_SUCCESS);
    /* 11 reasons in each of 3 counted servers; prod and old in each of
     * them (3 and 4 series); ci in a.example only; a.example's old is
     * the main server's, once. */
    assert_int_equal(plan->nseries, 3 * 11 + 3 * 7 + 3);
    for (i = 1; i < plan->nseries; i++) {
        assert_true(rv_series_cmp(&plan->series[i - 1], &plan->series[i]) < 0);
    }
    assert_int_equal(plan->series[plan->nseries].metric, 0);
    assert_null(plan->series[plan->nseries].vhost);
    for (i = 0; i < plan->nseries; i++) {
        assert_string_not_equal(plan->series[i].vhost, "b.example:80");
    }
    assert_non_null(
        find_series(plan, RV_M_REQUESTS_DENIED, "c.example:8443", "mismatch"));
    assert_null(find_series(plan, RV_M_HANDSHAKES_REFUSED, "c.example:8443",
                            "mismatch"));
    assert_non_null(
        find_series(plan, RV_M_HANDSHAKES_ANSWERED, "c.example:8443", "prod"));
    assert_non_null(
        find_series(plan, RV_M_REQUESTS_ACCEPTED, "a.example:80", "ci"));
    assert_null(find_series(plan, RV_M_REQUESTS_ACCEPTED, "main:80", "ci"));
    assert_null(find_series(plan, RV_M_TOKEN_EXPIRY, "main:80", "prod"));
    /* The expiry of one NAME in two scopes of a server: the earliest. */
    x = find_series(plan, RV_M_TOKEN_EXPIRY, "a.example:80", "old");
    assert_non_null(x);
    assert_int_equal(plan->consts[x->index], apr_time_sec(T2029));
    x = find_series(plan, RV_M_TOKEN_EXPIRY, "main:80", "old");
    assert_non_null(x);
    assert_int_equal(plan->consts[x->index], apr_time_sec(T2030));
    /* The main server's set has a row per server; a VirtualHost's one. */
    assert_int_equal(m->stride, 2);
    assert_int_equal(v->stride, 0);
}

static void test_plan_lay_out(void **state)
{
    rv_plan_tokens *m, *v;
    rv_plan *plan = four_servers(&m, &v);
    rv_store *st = rv_store_make(pool);
    apr_uint32_t prod_c, ci_a, block_c, block_main;
    const rv_series *x;
    int round, i;

    (void)state;
    assert_int_equal(rv_plan_series(pool, plan), APR_SUCCESS);
    /* Laid out, and again after a reset (a hard restart): the same. */
    for (round = 0; round < 2; round++) {
        assert_int_equal(rv_plan_lay_out(plan, st), APR_SUCCESS);
        assert_non_null(rv_store_counters(st));
        block_main = rv_store_reserve(st, "main:80", RV_M_VHOST_SPAN);
        block_c = rv_store_reserve(st, "c.example:8443", RV_M_VHOST_SPAN);
        assert_int_equal(plan->vhosts[0].block, block_main);
        assert_int_equal(plan->vhosts[3].block, block_c);
        assert_int_equal(plan->vhosts[2].block, 0);
        prod_c =
            rv_store_reserve_in(st, "c.example:8443", "prod", RV_M_NAME_SPAN);
        ci_a = rv_store_reserve_in(st, "a.example:80", "ci", RV_M_NAME_SPAN);
        assert_int_equal(rv_plan_token_counter(m, 3, 0), prod_c);
        assert_int_equal(rv_plan_token_counter(v, 1, 1), ci_a);
        assert_int_equal(
            rv_plan_token_counter(m, 1, 1),
            rv_store_reserve_in(st, "a.example:80", "old", RV_M_NAME_SPAN));
        assert_int_equal(rv_plan_token_counter(v, 1, 0),
                         rv_plan_token_counter(m, 1, 1));
        assert_int_not_equal(rv_plan_token_counter(m, 0, 0), prod_c);

        x = find_series(plan, RV_M_REQUESTS_ACCEPTED, "c.example:8443",
                        "prod");
        assert_int_equal(x->index, prod_c + RV_M_ACCEPTED);
        x = find_series(plan, RV_M_TOKEN_LAST_ACCEPTED, "a.example:80", "ci");
        assert_int_equal(x->index, ci_a + RV_M_LAST_ACCEPTED);
        x = find_series(plan, RV_M_REQUESTS_DENIED, "c.example:8443",
                        "wrong-token");
        assert_int_equal(x->index, block_c + RV_M_DENIED(RV_WRONG_TOKEN));
        x = find_series(plan, RV_M_HANDSHAKES_REFUSED, "main:80",
                        "bad-challenge");
        assert_int_equal(x->index,
                         block_main + RV_M_REFUSED(RV_BAD_CHALLENGE));

        /* What a request counts is what the series shows. */
        for (i = 0; i < 2; i++) {
            rv_count(rv_store_counters(st),
                     rv_plan_token_counter(m, 3, 0) + RV_M_ACCEPTED);
        }
        rv_count(rv_store_counters(st),
                 plan->vhosts[3].block + RV_M_DENIED(RV_WRONG_TOKEN));
        x = find_series(plan, RV_M_REQUESTS_ACCEPTED, "c.example:8443",
                        "prod");
        assert_int_equal(rv_series_value(st, x, plan->consts), 2);
        x = find_series(plan, RV_M_REQUESTS_ACCEPTED, "main:80", "prod");
        assert_int_equal(rv_series_value(st, x, plan->consts), 0);
        x = find_series(plan, RV_M_REQUESTS_DENIED, "c.example:8443",
                        "wrong-token");
        assert_int_equal(rv_series_value(st, x, plan->consts), 1);
        x = find_series(plan, RV_M_TOKEN_EXPIRY, "a.example:80", "old");
        assert_int_equal(rv_series_value(st, x, plan->consts),
                         apr_time_sec(T2029));
        rv_store_reset(st);
    }
}

/* Nothing counted anywhere: no series, and an empty layout commits. */
static void test_plan_empty(void **state)
{
    rv_plan_vhost vhosts[2] = {{"main:80", 0, 0}, {"a:80", 0, 0}};
    rv_plan plan = {vhosts, 2, NULL, 0, NULL, 0, NULL};
    rv_store *st = rv_store_make(pool);

    (void)state;
    assert_int_equal(rv_plan_series(pool, &plan), APR_SUCCESS);
    assert_int_equal(plan.nseries, 0);
    assert_non_null(plan.series);
    assert_null(plan.series[0].vhost);
    assert_int_equal(rv_plan_lay_out(&plan, st), APR_SUCCESS);
    assert_int_equal(rv_store_used(st), 0);
    assert_int_equal(rv_store_segments(st), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_reserve),
        cmocka_unit_test(test_store_reserve_in),
        cmocka_unit_test(test_store_count_and_read),
        cmocka_unit_test(test_store_grows_and_sums),
        cmocka_unit_test(test_store_exact_across_processes),
        cmocka_unit_test(test_store_stamp_latest),
        cmocka_unit_test(test_store_stamp_across_processes),
        cmocka_unit_test(test_series_value),
        cmocka_unit_test(test_store_reset),
        cmocka_unit_test(test_prom_escape),
        cmocka_unit_test(test_metric_reasons),
        cmocka_unit_test(test_series_sort),
        cmocka_unit_test(test_render_prometheus),
        cmocka_unit_test(test_render_status_auto),
        cmocka_unit_test(test_render_gauges),
        cmocka_unit_test(test_render_status_html),
        cmocka_unit_test(test_plan_series),
        cmocka_unit_test(test_plan_lay_out),
        cmocka_unit_test(test_plan_empty),
    };
    int failed;

    apr_initialize();
    apr_pool_create(&pool, NULL);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    apr_pool_destroy(pool);
    apr_terminate();
    return failed;
}
