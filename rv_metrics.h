/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * rv_metrics: the counters of mod_redox_verify, their plan (which series
 * a configuration exports, where each is counted) and their
 * presentations, free of request_rec so they can be unit-tested without a
 * server.
 *
 * The counters live in anonymous APR shared memory that the parent
 * process maps before it forks the children, so every child of every MPM
 * increments the same 64-bit words with an atomic add: no lock, no
 * allocation, no lookup.  Which counter a request increments is an index
 * fixed at configuration time.
 *
 * A store hands out counter ranges by key (a VirtualHost's block, a
 * VirtualHost and NAME pair's block).  It outlives configuration
 * generations: a key keeps its range across graceful restarts, so the
 * children of the old and the new generation count into the same words.
 * When a new configuration needs more room than the newest segment has,
 * the store maps a larger segment and keeps the old ones: old children
 * go on counting there, and a read sums a counter over all segments.
 */

#ifndef RV_METRICS_H
#define RV_METRICS_H

#include <apr_pools.h>
#include <apr_atomic.h>

#include "rv_core.h"

typedef apr_uint64_t rv_counter;

/* A VirtualHost's block: per outcome, the ordinary requests denied, then
 * the handshakes refused (unused outcomes are simply never exported). */
#define RV_M_VHOST_SPAN (2 * RV_OUTCOME_COUNT)
#define RV_M_DENIED(o)  ((apr_uint32_t)(o))
#define RV_M_REFUSED(o) ((apr_uint32_t)(RV_OUTCOME_COUNT + (o)))
/* A (VirtualHost, token NAME) pair's block: two counters, then the Unix
 * time (seconds) of the last accepted request or handshake, 0 for never. */
#define RV_M_NAME_SPAN     3
#define RV_M_ACCEPTED      0
#define RV_M_ANSWERED      1
#define RV_M_LAST_ACCEPTED 2

typedef struct rv_store rv_store;

/* The process pool userdata key of the store; bump the version whenever
 * struct rv_store changes, so that a new build loaded by a graceful
 * restart starts a fresh store instead of misreading the old one. */
#define RV_STORE_KEY "redox_verify_store_v3"

/* p must live as long as the counters should (the process pool). */
rv_store *rv_store_make(apr_pool_t *p);
/* The store holds counters (rv_count adds) and timestamps (rv_stamp
 * raises): a read sums a counter over the segments and takes the latest of
 * a timestamp's. */

/* The first counter of key's range of span counters, allocated on first
 * use.  Keys are copied. */
apr_uint32_t rv_store_reserve(rv_store *st, const char *key,
                              apr_uint32_t span);
/* The same for key within scope (a VirtualHost label and a token NAME):
 * its own namespace, apart from rv_store_reserve's keys and other
 * scopes' keys.  Each scope and each key is copied once, so a scope asked
 * for many times costs its bytes once. */
apr_uint32_t rv_store_reserve_in(rv_store *st, const char *scope,
                                 const char *key, apr_uint32_t span);
/* Makes the newest segment cover every reserved counter, mapping a new,
 * larger one when needed.  Call before forking the children. */
apr_status_t rv_store_commit(rv_store *st);
/* The newest segment: where this generation's children count. */
rv_counter *rv_store_counters(const rv_store *st);
/* A counter's value: the sum over all segments. */
apr_uint64_t rv_store_read(const rv_store *st, apr_uint32_t index);
/* A timestamp's value: the largest over all segments. */
apr_uint64_t rv_store_read_latest(const rv_store *st, apr_uint32_t index);
/* Forgets every key and unmaps every segment (no child may still use
 * them): the next reservations start from zero. */
void rv_store_reset(rv_store *st);
apr_uint32_t rv_store_used(const rv_store *st);
int rv_store_segments(const rv_store *st);

/* The hot path: one relaxed atomic add, nothing else. */
static APR_INLINE void rv_count(rv_counter *c, apr_uint32_t index)
{
#if defined(__GNUC__) || defined(__clang__)
    __atomic_fetch_add(&c[index], 1, __ATOMIC_RELAXED);
#else
    apr_atomic_inc64(&c[index]);
#endif
}

/* The hot path of a timestamp: raises the word at index to t (Unix
 * seconds) with relaxed atomics.  A plain store could go back in time
 * when two children race; this never does, and in the common case (the
 * word already holds this second) it is one load and no write. */
static APR_INLINE void rv_stamp(rv_counter *c, apr_uint32_t index,
                                apr_uint64_t t)
{
#if defined(__GNUC__) || defined(__clang__)
    apr_uint64_t cur = __atomic_load_n(&c[index], __ATOMIC_RELAXED);

    while (cur < t
           && !__atomic_compare_exchange_n(
               &c[index], &cur, t, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
#else
    apr_uint64_t cur = apr_atomic_read64(&c[index]);

    while (cur < t && apr_atomic_cas64(&c[index], t, cur) != cur) {
        cur = apr_atomic_read64(&c[index]);
    }
#endif
}

/* The exported series. */
typedef enum {
    RV_M_REQUESTS_ACCEPTED = 0, /* label: name */
    RV_M_REQUESTS_DENIED,       /* label: reason */
    RV_M_HANDSHAKES_ANSWERED,   /* label: name */
    RV_M_HANDSHAKES_REFUSED,    /* label: reason */
    RV_M_TOKEN_EXPIRY,          /* label: name; a gauge from the config */
    RV_M_TOKEN_LAST_ACCEPTED,   /* label: name; a gauge in the store */
    RV_M_METRIC_COUNT
} rv_metric;

/* Where a series' value comes from. */
typedef enum {
    RV_READ_SUM = 0, /* a counter in the store */
    RV_READ_LATEST,  /* a timestamp in the store */
    RV_READ_CONFIG   /* consts[index], fixed by the configuration */
} rv_read;

/* 24 bytes: a configuration with many tokens has many series. */
typedef struct {
    rv_metric metric;
    apr_uint32_t index; /* the counter, or the place in consts */
    const char *vhost;  /* ServerName:port */
    const char *label;  /* the token NAME or the reason */
} rv_series;

/* "name" or "reason" */
const char *rv_metric_label(rv_metric m);
rv_read rv_metric_read(rv_metric m);
/* A gauge (a timestamp), not a counter? */
int rv_metric_is_gauge(rv_metric m);
/* The value of series x: from the store, or consts[x->index]. */
apr_uint64_t rv_series_value(const rv_store *st, const rv_series *x,
                             const apr_uint64_t *consts);
/* Is this outcome a reason of this metric's series? */
int rv_metric_has_reason(rv_metric m, rv_outcome o);

/* Orders by metric, VirtualHost, label: the order of every rendering. */
int rv_series_cmp(const rv_series *a, const rv_series *b);
void rv_series_sort(rv_series *s, int n);

/* The plan of one configuration's counters: which series it exports and
 * where each counter is.  The glue describes the configuration in plain
 * data: its servers by ordinal (0 is the main server) and its token sets,
 * each with the server it is configured in.  The series come from the
 * configuration only (server labels, token NAMEs, the fixed reasons),
 * never from a request, so their number is bounded by the configuration. */

/* A token set.  One configured in the main server (vhost 0) is counted in
 * every VirtualHost it serves; one in a VirtualHost in that one only. */
typedef struct {
    const rv_tokenset *set;
    apr_uint32_t vhost; /* the ordinal of the server it is configured in */
    /* Filled in: the first counter of the (VirtualHost, NAME) block of
     * the token in slot i for the server with ordinal o is
     * first[o * stride + i] (stride 0 for a VirtualHost's set): see
     * rv_plan_token_counter. */
    apr_uint32_t *first;
    apr_uint32_t stride;
} rv_plan_tokens;

typedef struct {
    const char *label;  /* ServerName:port */
    int counted;        /* a verified scope applies there */
    apr_uint32_t block; /* filled in: the first counter of its block */
} rv_plan_vhost;

typedef struct {
    rv_plan_vhost *vhosts; /* by ordinal */
    apr_uint32_t nvhosts;
    rv_plan_tokens *const *tokens;
    int ntokens;
    /* Filled in by rv_plan_series: the series, sorted, each once (with a
     * zeroed one after the last), and the values that the configuration
     * fixes (the expiries; a series reads consts[index]). */
    rv_series *series;
    int nseries;
    apr_uint64_t *consts;
} rv_plan;

/* Lists the series of every counted VirtualHost and of every token each
 * can accept, and allocates the token sets' index tables, in p.  Scratch
 * memory is malloc'ed and freed (10,000 tokens are a supported
 * configuration); labels point at the token sets' own NAME strings.
 * APR_ENOMEM when that fails. */
apr_status_t rv_plan_series(apr_pool_t *p, rv_plan *plan);
/* Reserves the planned counters in st and fills in every index (the
 * VirtualHost blocks, the token sets' tables, the series), then commits
 * st (rv_store_commit's status).  Again after rv_store_reset, it lays the
 * same plan out afresh.  A (VirtualHost label, NAME) pair is keyed by the
 * label and the set's own NAME string: nothing is formatted per token. */
apr_status_t rv_plan_lay_out(rv_plan *plan, rv_store *st);

/* The first counter of the (VirtualHost, NAME) block of the token in slot
 * of t, for the server with ordinal vhost: one multiply-add. */
static APR_INLINE apr_uint32_t rv_plan_token_counter(const rv_plan_tokens *t,
                                                     apr_uint32_t vhost,
                                                     int slot)
{
    return t->first[vhost * t->stride + (apr_uint32_t)slot];
}

/* A label value escaped for the Prometheus text format: backslash,
 * double quote and newline. */
char *rv_prom_escape(apr_pool_t *p, const char *value);

/* The renderings of n sorted series whose values are values[0..n-1].
 * Prometheus text exposition format 0.0.4, mod_status ?auto lines and
 * mod_status HTML (with tables unless notable; timestamps as UTC dates,
 * 0 as "never"). */
char *rv_render_prometheus(apr_pool_t *p, const rv_series *s, int n,
                           const apr_uint64_t *values);
char *rv_render_status_auto(apr_pool_t *p, const rv_series *s, int n,
                            const apr_uint64_t *values);
char *rv_render_status_html(apr_pool_t *p, const rv_series *s, int n,
                            const apr_uint64_t *values, int notable);

#endif /* RV_METRICS_H */
