/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * rv_metrics: the shared-memory counter store and the renderings of the
 * counters (Prometheus text format, mod_status).  See rv_metrics.h.
 */

#include <stdlib.h>
#include <string.h>

#include <apr_escape.h>
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

/* One key of the store's open-addressing table: 12 bytes, the key itself
 * in the arena.  ns tells what the key is: RV_NS_EMPTY marks a free
 * entry; a scope's own entry (RV_NS_SCOPE) holds the namespace it gives
 * its keys as its value; every other key holds its first counter. */
typedef struct {
    apr_uint32_t ns;
    apr_uint32_t key; /* offset of the NUL-terminated key in the arena */
    apr_uint32_t value;
} rv_key;

#define RV_NS_EMPTY 0
#define RV_NS_SCOPE 1
#define RV_NS_PLAIN 2
#define RV_NS_FIRST 3 /* the first scope's keys */

struct rv_store {
    apr_pool_t *parent;
    apr_pool_t *pool; /* segments, and the cleanup below; reset */
    /* The keys and their bytes live in subpools of their own, replaced
     * when they grow: the old memory goes back to the allocator instead
     * of staying in the pool. */
    apr_pool_t *keys_pool, *arena_pool;
    rv_key *keys;
    apr_uint32_t mask; /* table size - 1, a power of 2 */
    apr_uint32_t nkeys;
    char *arena; /* the keys' bytes */
    apr_size_t arena_len, arena_cap;
    apr_uint32_t scopes;          /* scopes seen */
    apr_uint32_t last_ns;         /* the scope last asked for, or 0 */
    apr_uint32_t last_scope;      /* its offset in the arena */
    apr_array_header_t *segments; /* rv_segment, oldest first */
    apr_uint32_t used;            /* counters reserved */
};

/* Segments are whole pages; 512 counters are 4 KiB. */
#define RV_SEGMENT_QUANTUM 512
#define RV_KEYS_MIN        64

/* A block of size bytes (zeroed past the first keep bytes, which are
 * copied from old) in a new subpool of parent that replaces *sub. */
static void *regrow(apr_pool_t *parent, apr_pool_t **sub, const void *old,
                    apr_size_t keep, apr_size_t size)
{
    apr_pool_t *p;
    char *block;

    apr_pool_create(&p, parent);
    block = apr_palloc(p, size);
    if (keep > 0) {
        memcpy(block, old, keep);
    }
    memset(block + keep, 0, size - keep);
    if (*sub != NULL) {
        apr_pool_destroy(*sub);
    }
    *sub = p;
    return block;
}

static void store_init(rv_store *st)
{
    apr_pool_create(&st->pool, st->parent);
    apr_pool_tag(st->pool, "redox_verify_counters");
    st->mask = RV_KEYS_MIN - 1;
    st->keys_pool = st->arena_pool = NULL;
    st->keys = regrow(st->pool, &st->keys_pool, NULL, 0,
                      RV_KEYS_MIN * sizeof(rv_key));
    st->nkeys = 0;
    st->arena_cap = 1024;
    st->arena = regrow(st->pool, &st->arena_pool, NULL, 0, st->arena_cap);
    st->arena_len = 0;
    st->scopes = 0;
    st->last_ns = 0;
    st->last_scope = 0;
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
    /* The pool's cleanups unmap the segments; the keys go with it. */
    apr_pool_destroy(st->pool);
    store_init(st);
}

/* FNV-1a over the namespace and the key, then mixed so that the low bits
 * (the table index) depend on every byte. */
static apr_uint32_t key_hash(apr_uint32_t ns, const char *key)
{
    apr_uint32_t h = 2166136261u;

    h = (h ^ ns) * 16777619u;
    for (; *key != '\0'; key++) {
        h = (h ^ (unsigned char)*key) * 16777619u;
    }
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    return h;
}

static void keys_grow(rv_store *st)
{
    apr_uint32_t mask = st->mask * 2 + 1, i, j;
    apr_pool_t *old = st->keys_pool, *sub = NULL;
    rv_key *keys = regrow(st->pool, &sub, NULL, 0,
                          ((apr_size_t)mask + 1) * sizeof(rv_key));

    for (i = 0; i <= st->mask; i++) {
        if (st->keys[i].ns == RV_NS_EMPTY) {
            continue;
        }
        j = key_hash(st->keys[i].ns, st->arena + st->keys[i].key) & mask;
        while (keys[j].ns != RV_NS_EMPTY) {
            j = (j + 1) & mask;
        }
        keys[j] = st->keys[i];
    }
    apr_pool_destroy(old);
    st->keys_pool = sub;
    st->keys = keys;
    st->mask = mask;
}

/* The entry of key in namespace ns; a new one (with *added set) holds
 * value.  The pointer is good until the next call. */
static rv_key *intern(rv_store *st, apr_uint32_t ns, const char *key,
                      apr_uint32_t value, int *added)
{
    apr_size_t len = strlen(key) + 1;
    apr_uint32_t i;
    rv_key *k;

    /* At most three quarters full. */
    if ((st->nkeys + 1) * 4 > (st->mask + 1) * 3) {
        keys_grow(st);
    }
    i = key_hash(ns, key) & st->mask;
    for (k = &st->keys[i]; k->ns != RV_NS_EMPTY; k = &st->keys[i]) {
        if (k->ns == ns && strcmp(st->arena + k->key, key) == 0) {
            *added = 0;
            return k;
        }
        i = (i + 1) & st->mask;
    }
    if (st->arena_len + len > st->arena_cap) {
        while (st->arena_len + len > st->arena_cap) {
            st->arena_cap *= 2;
        }
        st->arena = regrow(st->pool, &st->arena_pool, st->arena, st->arena_len,
                           st->arena_cap);
    }
    memcpy(st->arena + st->arena_len, key, len);
    k->ns = ns;
    k->key = (apr_uint32_t)st->arena_len;
    k->value = value;
    st->arena_len += len;
    st->nkeys++;
    *added = 1;
    return k;
}

static apr_uint32_t reserve(rv_store *st, apr_uint32_t ns, const char *key,
                            apr_uint32_t span)
{
    int added;
    rv_key *k = intern(st, ns, key, st->used, &added);

    if (added) {
        st->used += span;
    }
    return k->value;
}

apr_uint32_t rv_store_reserve(rv_store *st, const char *key, apr_uint32_t span)
{
    return reserve(st, RV_NS_PLAIN, key, span);
}

apr_uint32_t rv_store_reserve_in(rv_store *st, const char *scope,
                                 const char *key, apr_uint32_t span)
{
    /* A layout asks for one scope many times in a row. */
    if (st->last_ns == 0 || strcmp(st->arena + st->last_scope, scope) != 0) {
        int added;
        rv_key *k =
            intern(st, RV_NS_SCOPE, scope, RV_NS_FIRST + st->scopes, &added);

        st->scopes += added;
        st->last_ns = k->value;
        st->last_scope = k->key;
    }
    return reserve(st, st->last_ns, key, span);
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

apr_uint64_t rv_store_read_latest(const rv_store *st, apr_uint32_t index)
{
    apr_uint64_t latest = 0, v;
    int i;

    /* Old children stamp the segment of their generation, new ones the
     * newest: the latest stamp is in one of them. */
    for (i = 0; i < st->segments->nelts; i++) {
        const rv_segment *seg = &APR_ARRAY_IDX(st->segments, i, rv_segment);

        if (index < seg->capacity) {
#if defined(__GNUC__) || defined(__clang__)
            v = __atomic_load_n(&seg->c[index], __ATOMIC_RELAXED);
#else
            v = apr_atomic_read64(&seg->c[index]);
#endif
            latest = v > latest ? v : latest;
        }
    }
    return latest;
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
    rv_read read;
} metrics[RV_M_METRIC_COUNT] = {
    {"redox_verify_requests_accepted_total", "name",
     "Requests whose Redox token was accepted, by VirtualHost and token "
     "NAME.",
     "RedoxVerifyAccepted", "Requests accepted", RV_READ_SUM},
    {"redox_verify_requests_denied_total", "reason",
     "Requests denied for want of a valid Redox token, by VirtualHost and "
     "reason.",
     "RedoxVerifyDenied", "Requests denied", RV_READ_SUM},
    {"redox_verify_handshakes_answered_total", "name",
     "Redox endpoint-verification handshakes answered, by VirtualHost and "
     "token NAME.",
     "RedoxVerifyHandshakesAnswered", "Handshakes answered", RV_READ_SUM},
    {"redox_verify_handshakes_refused_total", "reason",
     "Redox endpoint-verification handshakes refused, by VirtualHost and "
     "reason.",
     "RedoxVerifyHandshakesRefused", "Handshakes refused", RV_READ_SUM},
    {"redox_verify_token_expiry_timestamp_seconds", "name",
     "When the token stops being accepted (its expires=), in Unix time, by "
     "VirtualHost and token NAME; only tokens with an expiry.",
     "RedoxVerifyTokenExpiry", "Token expiry", RV_READ_CONFIG},
    {"redox_verify_token_last_accepted_timestamp_seconds", "name",
     "When a request or handshake with the token was last accepted, in Unix "
     "time, by VirtualHost and token NAME; 0 if never since the last hard "
     "restart.",
     "RedoxVerifyTokenLastAccepted", "Token last accepted", RV_READ_LATEST},
};

const char *rv_metric_label(rv_metric m)
{
    return metrics[m].label;
}

rv_read rv_metric_read(rv_metric m)
{
    return metrics[m].read;
}

int rv_metric_is_gauge(rv_metric m)
{
    return metrics[m].read != RV_READ_SUM;
}

apr_uint64_t rv_series_value(const rv_store *st, const rv_series *x,
                             const apr_uint64_t *consts)
{
    switch (metrics[x->metric].read) {
    case RV_READ_LATEST:
        return rv_store_read_latest(st, x->index);
    case RV_READ_CONFIG:
        return consts[x->index];
    default:
        return rv_store_read(st, x->index);
    }
}

int rv_metric_has_reason(rv_metric m, rv_outcome o)
{
    switch (m) {
    case RV_M_REQUESTS_DENIED:
        return o == RV_MISSING || o == RV_MALFORMED || o == RV_WRONG_TOKEN
               || o == RV_MISMATCH || o == RV_NO_TOKENS || o == RV_EXPIRED;
    case RV_M_HANDSHAKES_REFUSED:
        return o == RV_MISSING || o == RV_WRONG_TOKEN || o == RV_NO_TOKENS
               || o == RV_BAD_CHALLENGE || o == RV_EXPIRED;
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
            apr_psprintf(p, "# HELP %s %s\n# TYPE %s %s\n", metrics[m].name,
                         metrics[m].help, metrics[m].name,
                         rv_metric_is_gauge(m) ? "gauge" : "counter"));
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
        if (!rv_metric_is_gauge(m)) { /* a sum of timestamps means nothing */
            ADD(out, apr_psprintf(p, "%s: %" APR_UINT64_T_FMT "\n",
                                  metrics[m].auto_key, total[m]));
        }
    }
    for (i = 0; i < n; i++) {
        ADD(out, apr_psprintf(p, "%s[%s,%s]: %" APR_UINT64_T_FMT "\n",
                              metrics[s[i].metric].auto_key, s[i].vhost,
                              s[i].label, values[i]));
    }
    return apr_array_pstrcat(p, out, '\0');
}

/* A count as a number, a timestamp as a UTC date (0: never). */
static const char *html_value(apr_pool_t *p, rv_metric m, apr_uint64_t v)
{
    char buf[RV_TIME_TEXT];

    if (!rv_metric_is_gauge(m)) {
        return apr_psprintf(p, "%" APR_UINT64_T_FMT, v);
    }
    if (v == 0) {
        return "never";
    }
    return apr_pstrdup(p,
                       rv_format_time(apr_time_from_sec((apr_time_t)v), buf));
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
            const char *vhost, *label, *value;

            if (s[i].metric != (rv_metric)m) {
                continue;
            }
            if (rows++ == 0 && !notable) {
                ADD(out,
                    apr_psprintf(p,
                                 "<table border=\"0\"><tr>"
                                 "<th>VirtualHost</th><th>%s</th>"
                                 "<th>%s</th></tr>\n",
                                 metrics[m].label,
                                 rv_metric_is_gauge(m) ? "UTC" : "count"));
            }
            vhost = apr_pescape_entity(p, s[i].vhost, 0);
            label = apr_pescape_entity(p, s[i].label, 0);
            value = html_value(p, (rv_metric)m, values[i]);
            if (notable) {
                ADD(out,
                    apr_psprintf(p, "%s %s: %s<br />\n", vhost, label, value));
            }
            else {
                ADD(out, apr_psprintf(p,
                                      "<tr><td>%s</td><td>%s</td>"
                                      "<td>%s</td></tr>\n",
                                      vhost, label, value));
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

/* ------------------------------------------------------------------ */
/* The plan                                                            */

/* The counter offset of a series within its block: per (VirtualHost,
 * NAME) by metric, per VirtualHost by metric and reason. */
static apr_uint32_t series_offset(const rv_series *x)
{
    int o;

    switch (x->metric) {
    case RV_M_REQUESTS_ACCEPTED:
        return RV_M_ACCEPTED;
    case RV_M_HANDSHAKES_ANSWERED:
        return RV_M_ANSWERED;
    case RV_M_TOKEN_LAST_ACCEPTED:
        return RV_M_LAST_ACCEPTED;
    default:
        break;
    }
    for (o = 0; o < RV_OUTCOME_COUNT; o++) {
        if (x->label == rv_outcome_name(o)) {
            break;
        }
    }
    return x->metric == RV_M_REQUESTS_DENIED ? RV_M_DENIED(o)
                                             : RV_M_REFUSED(o);
}

/* The row of t->first that serves the server with this ordinal, or -1 (a
 * set in a VirtualHost serves only that VirtualHost). */
static int first_row(const rv_plan *plan, const rv_plan_tokens *t,
                     apr_uint32_t ordinal)
{
    if (!plan->vhosts[ordinal].counted) {
        return -1; /* nothing is ever counted there */
    }
    if (t->vhost == 0) {
        return (int)ordinal;
    }
    return ordinal == t->vhost ? 0 : -1;
}

/* One series at x, for the VirtualHost with this label. */
static rv_series *add_series(rv_series *x, rv_metric m, const char *vhost,
                             const char *label)
{
    x->metric = m;
    x->vhost = vhost;
    x->label = label;
    return x + 1;
}

apr_status_t rv_plan_series(apr_pool_t *p, rv_plan *plan)
{
    apr_size_t n = plan->nvhosts, cap = 0, expiring = 0, k = 0, m;
    rv_series *draft, *x;
    apr_uint32_t i, nconsts = 0;
    apr_time_t expires;
    int o, t, slot;

    for (o = 0; o < RV_OUTCOME_COUNT; o++) {
        cap += n
               * (rv_metric_has_reason(RV_M_REQUESTS_DENIED, o)
                  + rv_metric_has_reason(RV_M_HANDSHAKES_REFUSED, o));
    }
    for (t = 0; t < plan->ntokens; t++) {
        rv_plan_tokens *tc = plan->tokens[t];
        apr_size_t slots = (apr_size_t)rv_tokenset_count(tc->set);
        int all = tc->vhost == 0; /* the main server's: everyone's */

        tc->stride = all ? (apr_uint32_t)slots : 0;
        tc->first =
            apr_pcalloc(p, (all ? n : 1) * slots * sizeof(apr_uint32_t));
        /* accepted, answered and last accepted; the expiries below */
        cap += (all ? n : 1) * 3 * slots;
        for (slot = 0; slot < (int)slots; slot++) {
            if (rv_tokenset_expiry_at(tc->set, slot) != RV_NEVER) {
                expiring += all ? n : 1;
            }
        }
    }
    cap += expiring;
    plan->consts = apr_palloc(p, (expiring + 1) * sizeof(*plan->consts));

    /* malloc, not a pool: freed, it goes back instead of staying mapped in
     * the pool allocator of every child. */
    draft = x = malloc((cap + 1) * sizeof(*draft));
    if (draft == NULL) {
        return APR_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        const char *vhost = plan->vhosts[i].label;

        if (!plan->vhosts[i].counted) {
            continue; /* only what is configured is shown */
        }
        for (o = 0; o < RV_OUTCOME_COUNT; o++) {
            if (rv_metric_has_reason(RV_M_REQUESTS_DENIED, o)) {
                x = add_series(x, RV_M_REQUESTS_DENIED, vhost,
                               rv_outcome_name(o));
            }
            if (rv_metric_has_reason(RV_M_HANDSHAKES_REFUSED, o)) {
                x = add_series(x, RV_M_HANDSHAKES_REFUSED, vhost,
                               rv_outcome_name(o));
            }
        }
    }
    for (t = 0; t < plan->ntokens; t++) {
        const rv_plan_tokens *tc = plan->tokens[t];
        int slots = rv_tokenset_count(tc->set);

        for (i = 0; i < n; i++) {
            const char *vhost = plan->vhosts[i].label;

            if (first_row(plan, tc, i) < 0) {
                continue;
            }
            for (slot = 0; slot < slots; slot++) {
                const char *name = rv_tokenset_name_at(tc->set, slot);

                if (name == NULL) {
                    continue;
                }
                x = add_series(x, RV_M_REQUESTS_ACCEPTED, vhost, name);
                x = add_series(x, RV_M_HANDSHAKES_ANSWERED, vhost, name);
                x = add_series(x, RV_M_TOKEN_LAST_ACCEPTED, vhost, name);
                expires = rv_tokenset_expiry_at(tc->set, slot);
                if (expires != RV_NEVER) {
                    x->index = nconsts;
                    plan->consts[nconsts++] =
                        (apr_uint64_t)apr_time_sec(expires);
                    x = add_series(x, RV_M_TOKEN_EXPIRY, vhost, name);
                }
            }
        }
    }

    /* Every series once, however many servers or token sets lead to it:
     * equal series are neighbours once sorted. */
    m = (apr_size_t)(x - draft);
    rv_series_sort(draft, (int)m);
    for (i = 0; i < m; i++) {
        if (k == 0 || rv_series_cmp(&draft[k - 1], &draft[i]) != 0) {
            draft[k++] = draft[i];
        }
        else if (draft[i].metric == RV_M_TOKEN_EXPIRY
                 && plan->consts[draft[i].index]
                        < plan->consts[draft[k - 1].index]) {
            /* One NAME, several scopes of a VirtualHost: the earliest. */
            draft[k - 1].index = draft[i].index;
        }
    }
    plan->nseries = (int)k;
    plan->series = apr_palloc(p, (k + 1) * sizeof(*plan->series));
    memcpy(plan->series, draft, k * sizeof(*plan->series));
    memset(&plan->series[k], 0, sizeof(*plan->series));
    free(draft);
    return APR_SUCCESS;
}

apr_status_t rv_plan_lay_out(rv_plan *plan, rv_store *st)
{
    apr_uint32_t i;
    int t;

    for (i = 0; i < plan->nvhosts; i++) {
        if (plan->vhosts[i].counted) {
            plan->vhosts[i].block =
                rv_store_reserve(st, plan->vhosts[i].label, RV_M_VHOST_SPAN);
        }
    }
    for (t = 0; t < plan->ntokens; t++) {
        rv_plan_tokens *tc = plan->tokens[t];
        int slots = rv_tokenset_count(tc->set), slot, row;

        for (i = 0; i < plan->nvhosts; i++) {
            if ((row = first_row(plan, tc, i)) < 0) {
                continue;
            }
            for (slot = 0; slot < slots; slot++) {
                const char *name = rv_tokenset_name_at(tc->set, slot);

                if (name != NULL) {
                    tc->first[(apr_size_t)row * slots + slot] =
                        rv_store_reserve_in(st, plan->vhosts[i].label, name,
                                            RV_M_NAME_SPAN);
                }
            }
        }
    }
    for (t = 0; t < plan->nseries; t++) {
        rv_series *x = &plan->series[t];
        int named = x->metric == RV_M_REQUESTS_ACCEPTED
                    || x->metric == RV_M_HANDSHAKES_ANSWERED
                    || x->metric == RV_M_TOKEN_LAST_ACCEPTED;

        if (rv_metric_read(x->metric) == RV_READ_CONFIG) {
            continue; /* x->index is its place in consts */
        }
        x->index = (named ? rv_store_reserve_in(st, x->vhost, x->label,
                                                RV_M_NAME_SPAN)
                          : rv_store_reserve(st, x->vhost, RV_M_VHOST_SPAN))
                   + series_offset(x);
    }
    return rv_store_commit(st);
}
