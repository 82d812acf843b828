/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * rv_metrics: the shared-memory counter store and the renderings of the
 * counters (Prometheus text format, mod_status).  See rv_metrics.h.
 */

#include <stdlib.h>
#include <string.h>

#include <apr_escape.h>
#include <apr_hash.h>
#include <apr_shm.h>
#include <apr_strings.h>
#include <apr_tables.h>

#include "rv_metrics.h"

/* ------------------------------------------------------------------ */
/* The store                                                           */

typedef struct {
    apr_shm_t *shm;
    rv_counter *c;
    apr_uint32_t capacity; /* counters */
} rv_segment;

struct rv_store {
    apr_pool_t *parent;
    apr_pool_t *pool;             /* keys and segments; reset */
    apr_hash_t *keys;             /* key -> apr_uint32_t base */
    apr_array_header_t *segments; /* rv_segment, oldest first */
    apr_uint32_t used;            /* counters reserved */
};

/* Segments are whole pages; 512 counters are 4 KiB. */
#define RV_SEGMENT_QUANTUM 512

static void store_init(rv_store *st)
{
    apr_pool_create(&st->pool, st->parent);
    apr_pool_tag(st->pool, "redox_verify_counters");
    st->keys = apr_hash_make(st->pool);
    st->segments = apr_array_make(st->pool, 2, sizeof(rv_segment));
    st->used = 0;
}

rv_store *rv_store_make(apr_pool_t *p)
{
    rv_store *st = apr_pcalloc(p, sizeof(*st));

    st->parent = p;
    store_init(st);
    return st;
}

void rv_store_reset(rv_store *st)
{
    /* The pool's cleanups unmap the segments. */
    apr_pool_destroy(st->pool);
    store_init(st);
}

apr_uint32_t rv_store_reserve(rv_store *st, const char *key, apr_uint32_t span)
{
    apr_uint32_t *base = apr_hash_get(st->keys, key, APR_HASH_KEY_STRING);

    if (base == NULL) {
        base = apr_palloc(st->pool, sizeof(*base));
        *base = st->used;
        st->used += span;
        apr_hash_set(st->keys, apr_pstrdup(st->pool, key), APR_HASH_KEY_STRING,
                     base);
    }
    return *base;
}

static rv_segment *newest(const rv_store *st)
{
    if (st->segments->nelts == 0) {
        return NULL;
    }
    return &APR_ARRAY_IDX(st->segments, st->segments->nelts - 1, rv_segment);
}

apr_status_t rv_store_commit(rv_store *st)
{
    rv_segment *last = newest(st), seg;
    apr_size_t want;
    apr_status_t rv;

    if (last != NULL && last->capacity >= st->used) {
        return APR_SUCCESS;
    }
    /* Room for the configuration to double before the next segment. */
    want = (apr_size_t)st->used * 2;
    want = (want / RV_SEGMENT_QUANTUM + 1) * RV_SEGMENT_QUANTUM;
    rv = apr_shm_create(&seg.shm, want * sizeof(rv_counter), NULL, st->pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    seg.c = apr_shm_baseaddr_get(seg.shm);
    seg.capacity = (apr_uint32_t)want;
    memset(seg.c, 0, want * sizeof(rv_counter));
    APR_ARRAY_PUSH(st->segments, rv_segment) = seg;
    return APR_SUCCESS;
}

rv_counter *rv_store_counters(const rv_store *st)
{
    rv_segment *last = newest(st);

    return last ? last->c : NULL;
}

apr_uint64_t rv_store_read(const rv_store *st, apr_uint32_t index)
{
    apr_uint64_t sum = 0;
    int i;

    for (i = 0; i < st->segments->nelts; i++) {
        const rv_segment *seg = &APR_ARRAY_IDX(st->segments, i, rv_segment);

        if (index < seg->capacity) {
#if defined(__GNUC__) || defined(__clang__)
            sum += __atomic_load_n(&seg->c[index], __ATOMIC_RELAXED);
#else
            sum += apr_atomic_read64(&seg->c[index]);
#endif
        }
    }
    return sum;
}

apr_uint32_t rv_store_used(const rv_store *st)
{
    return st->used;
}

int rv_store_segments(const rv_store *st)
{
    return st->segments->nelts;
}

/* ------------------------------------------------------------------ */
/* Series                                                              */

static const struct {
    const char *name, *label, *help, *auto_key, *title;
} metrics[RV_M_METRIC_COUNT] = {
    {"redox_verify_requests_accepted_total", "name",
     "Requests whose Redox token was accepted, by VirtualHost and token "
     "NAME.",
     "RedoxVerifyAccepted", "Requests accepted"},
    {"redox_verify_requests_denied_total", "reason",
     "Requests denied for want of a valid Redox token, by VirtualHost and "
     "reason.",
     "RedoxVerifyDenied", "Requests denied"},
    {"redox_verify_handshakes_answered_total", "name",
     "Redox endpoint-verification handshakes answered, by VirtualHost and "
     "token NAME.",
     "RedoxVerifyHandshakesAnswered", "Handshakes answered"},
    {"redox_verify_handshakes_refused_total", "reason",
     "Redox endpoint-verification handshakes refused, by VirtualHost and "
     "reason.",
     "RedoxVerifyHandshakesRefused", "Handshakes refused"},
};

const char *rv_metric_name(rv_metric m)
{
    return metrics[m].name;
}

const char *rv_metric_label(rv_metric m)
{
    return metrics[m].label;
}

int rv_metric_has_reason(rv_metric m, rv_outcome o)
{
    switch (m) {
    case RV_M_REQUESTS_DENIED:
        return o == RV_MISSING || o == RV_MALFORMED || o == RV_WRONG_TOKEN
               || o == RV_MISMATCH || o == RV_NO_TOKENS;
    case RV_M_HANDSHAKES_REFUSED:
        return o == RV_MISSING || o == RV_WRONG_TOKEN || o == RV_NO_TOKENS
               || o == RV_BAD_CHALLENGE;
    default:
        return 0;
    }
}

int rv_series_cmp(const rv_series *x, const rv_series *y)
{
    int c;

    if (x->metric != y->metric) {
        return x->metric < y->metric ? -1 : 1;
    }
    c = strcmp(x->vhost, y->vhost);
    return c ? c : strcmp(x->label, y->label);
}

static int series_cmp(const void *a, const void *b)
{
    return rv_series_cmp(a, b);
}

void rv_series_sort(rv_series *s, int n)
{
    if (n > 1) {
        qsort(s, (size_t)n, sizeof(*s), series_cmp);
    }
}

/* ------------------------------------------------------------------ */
/* Renderings                                                          */

char *rv_prom_escape(apr_pool_t *p, const char *value)
{
    apr_size_t n = 0;
    const char *v;
    char *out, *o;

    for (v = value; *v; v++) {
        n += (*v == '\\' || *v == '"' || *v == '\n') ? 2 : 1;
    }
    out = o = apr_palloc(p, n + 1);
    for (v = value; *v; v++) {
        if (*v == '\\' || *v == '"') {
            *o++ = '\\';
            *o++ = *v;
        }
        else if (*v == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *v;
        }
    }
    *o = '\0';
    return out;
}

#define ADD(arr, str) (APR_ARRAY_PUSH((arr), const char *) = (str))

char *rv_render_prometheus(apr_pool_t *p, const rv_series *s, int n,
                           const apr_uint64_t *values)
{
    apr_array_header_t *out = apr_array_make(p, 8 + 2 * n, sizeof(char *));
    int m, i;

    /* Every family has its HELP and TYPE, with or without samples, so a
     * scraper sees the same families whatever the configuration. */
    for (m = 0; m < RV_M_METRIC_COUNT; m++) {
        ADD(out,
            apr_psprintf(p, "# HELP %s %s\n# TYPE %s counter\n",
                         metrics[m].name, metrics[m].help, metrics[m].name));
        for (i = 0; i < n; i++) {
            if (s[i].metric != (rv_metric)m) {
                continue;
            }
            ADD(out,
                apr_psprintf(
                    p, "%s{vhost=\"%s\",%s=\"%s\"} %" APR_UINT64_T_FMT "\n",
                    metrics[m].name, rv_prom_escape(p, s[i].vhost),
                    metrics[m].label, rv_prom_escape(p, s[i].label),
                    values[i]));
        }
    }
    return apr_array_pstrcat(p, out, '\0');
}

char *rv_render_status_auto(apr_pool_t *p, const rv_series *s, int n,
                            const apr_uint64_t *values)
{
    apr_array_header_t *out = apr_array_make(p, 8 + n, sizeof(char *));
    apr_uint64_t total[RV_M_METRIC_COUNT] = {0};
    int m, i;

    /* "Key: value" lines as mod_status prints them; a ServerName has no
     * space, so ": " ends every key. */
    for (i = 0; i < n; i++) {
        total[s[i].metric] += values[i];
    }
    for (m = 0; m < RV_M_METRIC_COUNT; m++) {
        ADD(out, apr_psprintf(p, "%s: %" APR_UINT64_T_FMT "\n",
                              metrics[m].auto_key, total[m]));
    }
    for (i = 0; i < n; i++) {
        ADD(out, apr_psprintf(p, "%s[%s,%s]: %" APR_UINT64_T_FMT "\n",
                              metrics[s[i].metric].auto_key, s[i].vhost,
                              s[i].label, values[i]));
    }
    return apr_array_pstrcat(p, out, '\0');
}

char *rv_render_status_html(apr_pool_t *p, const rv_series *s, int n,
                            const apr_uint64_t *values, int notable)
{
    apr_array_header_t *out = apr_array_make(p, 16 + n, sizeof(char *));
    int m, i;

    ADD(out, "<hr />\n<h2>Redox token verification (mod_redox_verify)</h2>"
             "\n");
    for (m = 0; m < RV_M_METRIC_COUNT; m++) {
        int rows = 0;

        ADD(out, apr_psprintf(p, "<h3>%s</h3>\n", metrics[m].title));
        for (i = 0; i < n; i++) {
            const char *vhost, *label;

            if (s[i].metric != (rv_metric)m) {
                continue;
            }
            if (rows++ == 0 && !notable) {
                ADD(out, apr_psprintf(p,
                                      "<table border=\"0\"><tr>"
                                      "<th>VirtualHost</th><th>%s</th>"
                                      "<th>count</th></tr>\n",
                                      metrics[m].label));
            }
            vhost = apr_pescape_entity(p, s[i].vhost, 0);
            label = apr_pescape_entity(p, s[i].label, 0);
            if (notable) {
                ADD(out,
                    apr_psprintf(p, "%s %s: %" APR_UINT64_T_FMT "<br />\n",
                                 vhost, label, values[i]));
            }
            else {
                ADD(out, apr_psprintf(p,
                                      "<tr><td>%s</td><td>%s</td>"
                                      "<td>%" APR_UINT64_T_FMT "</td></tr>\n",
                                      vhost, label, values[i]));
            }
        }
        if (rows == 0) {
            ADD(out, "<p>none configured</p>\n");
        }
        else if (!notable) {
            ADD(out, "</table>\n");
        }
    }
    return apr_array_pstrcat(p, out, '\0');
}
