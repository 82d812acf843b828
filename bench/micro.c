/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * micro: the cost of the module's verification path alone, rv_verify() in
 * rv_core.c, with 1, 100 and 10,000 configured tokens, and the memory a
 * configured token takes.  No server is involved: this is the part of a
 * request that depends on the number of tokens.
 *
 *   bench/micro [ITERATIONS]
 *
 * prints one JSON object per line; bench/run.py reads them.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <apr_allocator.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

#include "rv_core.h"

#define TOKEN_LEN 64   /* what `openssl rand -hex 32` makes */
#define REPEATS   101  /* short timed repetitions: median, minimum */
#define ROTATE    1024 /* distinct tokens cycled through per call */

static const int set_sizes[] = {1, 100, 10000};

/* A fixed-seed generator: the tokens need only be distinct, not secret,
 * and a fixed seed makes every run configure the same tables. */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ULL;

static unsigned long long rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void random_token(char out[TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    int i;

    for (i = 0; i < TOKEN_LEN; i++) {
        out[i] = hex[rng_next() & 15];
    }
    out[TOKEN_LEN] = '\0';
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Resident bytes of this process.  APR's allocator takes its blocks
 * straight from mmap on Debian, so malloc statistics would miss them;
 * apr_pcalloc touches every byte it hands out, so they are resident. */
static size_t resident_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f != NULL) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
            resident = 0;
        }
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

typedef struct {
    double median, min, max;
} timing;

static timing summarize(double *v, int n)
{
    timing t;

    qsort(v, n, sizeof(*v), cmp_double);
    t.median = v[n / 2];
    t.min = v[0];
    t.max = v[n - 1];
    return t;
}

/* Headers as the access checker would see them. */
typedef struct {
    const char *authorization;
    const char *vtoken;
} request_headers;

static volatile int sink; /* keeps the calls from being optimised away */

static timing time_verify(const rv_tokenset *set, const request_headers *h,
                          int nh, long iterations, rv_outcome expect)
{
    double per_call[REPEATS];
    unsigned char digest[RV_DIGEST_LEN];
    const char *name;
    int rep;

    for (rep = 0; rep < REPEATS; rep++) {
        double t0 = now_ns();
        long i;

        for (i = 0; i < iterations; i++) {
            const request_headers *r = &h[i % nh];
            rv_outcome o = rv_verify(set, RV_HDR_BOTH, r->authorization,
                                     r->vtoken, &name, digest);
            if (o != expect) {
                fprintf(stderr, "micro: rv_verify gave %s, expected %s\n",
                        rv_outcome_name(o), rv_outcome_name(expect));
                exit(1);
            }
            sink += digest[0];
        }
        per_call[rep] = (now_ns() - t0) / (double)iterations;
    }
    return summarize(per_call, REPEATS);
}

static void print_timing(const char *what, int n, timing t)
{
    printf("{\"kind\": \"verify\", \"case\": \"%s\", \"tokens\": %d, "
           "\"ns_median\": %.1f, \"ns_min\": %.1f, \"ns_max\": %.1f}\n",
           what, n, t.median, t.min, t.max);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 5000;
    apr_pool_t *top;
    size_t k;

    if (iterations < 1) {
        fprintf(stderr, "usage: micro [ITERATIONS]\n");
        return 2;
    }
    apr_initialize();
    apr_pool_create(&top, NULL);
    if (!rv_digest_init()) {
        fprintf(stderr, "micro: no SHA-256\n");
        return 1;
    }

    /* The digest alone, for reading the figures below. */
    {
        char tok[TOKEN_LEN + 1];
        unsigned char d[RV_DIGEST_LEN];
        double per_call[REPEATS];
        int rep;

        random_token(tok);
        for (rep = 0; rep < REPEATS; rep++) {
            double t0 = now_ns();
            long i;

            for (i = 0; i < iterations; i++) {
                rv_digest(tok, TOKEN_LEN, d);
                sink += d[0];
            }
            per_call[rep] = (now_ns() - t0) / (double)iterations;
        }
        {
            timing t = summarize(per_call, REPEATS);
            printf("{\"kind\": \"digest\", \"bytes\": %d, \"ns_median\": "
                   "%.1f, \"ns_min\": %.1f, \"ns_max\": %.1f}\n",
                   TOKEN_LEN, t.median, t.min, t.max);
        }
    }

    for (k = 0; k < sizeof(set_sizes) / sizeof(set_sizes[0]); k++) {
        int n = set_sizes[k], i, nrot = n < ROTATE ? n : ROTATE;
        apr_allocator_t *alloc;
        apr_pool_t *p;
        rv_tokenset *set;
        char(*toks)[TOKEN_LEN + 1] = malloc((size_t)n * (TOKEN_LEN + 1));
        request_headers *accept = malloc(ROTATE * sizeof(*accept));
        request_headers wrong;
        char wrong_tok[TOKEN_LEN + 1];
        size_t before, after;
        double build_t0, build_ns;

        for (i = 0; i < n; i++) {
            random_token(toks[i]);
        }
        random_token(wrong_tok);

        /* What configuring the tokens costs: resolving each literal
         * VALUE (one digest) and adding it, in a pool of its own. */
        before = resident_bytes();
        build_t0 = now_ns();
        /* An allocator of its own, so that no block freed by an earlier
         * pool is reused and the heap growth is this set's alone. */
        apr_allocator_create(&alloc);
        apr_pool_create_ex(&p, NULL, NULL, alloc);
        apr_allocator_owner_set(alloc, p);
        set = rv_tokenset_make(p);
        for (i = 0; i < n; i++) {
            char name[16], *argv1[1];
            unsigned char d[RV_DIGEST_LEN];
            const char *err;
            apr_size_t len;

            snprintf(name, sizeof(name), "t%05d", i);
            argv1[0] = toks[i];
            err = rv_resolve_value(p, 1, argv1, d, &len);
            if (err == NULL) {
                err = rv_tokenset_add(set, name, d);
            }
            if (err != NULL) {
                fprintf(stderr, "micro: %s\n", err);
                return 1;
            }
        }
        build_ns = now_ns() - build_t0;
        after = resident_bytes();
        printf("{\"kind\": \"build\", \"tokens\": %d, \"bytes\": %zu, "
               "\"bytes_per_token\": %.1f, \"ms\": %.3f}\n",
               n, after - before, (double)(after - before) / n,
               build_ns / 1e6);

        /* Accept: the same token every call (hot), and tokens spread over
         * the whole set in turn (their slots are not all in cache). */
        for (i = 0; i < nrot; i++) {
            const char *t = toks[(long)i * n / nrot];

            accept[i].authorization = apr_pstrcat(top, "Bearer ", t, NULL);
            accept[i].vtoken = t;
        }
        wrong.authorization = apr_pstrcat(top, "Bearer ", wrong_tok, NULL);
        wrong.vtoken = wrong_tok;

        print_timing(
            "accept", n,
            time_verify(set, &accept[nrot / 2], 1, iterations, RV_OK));
        print_timing("accept-rotating", n,
                     time_verify(set, accept, nrot, iterations, RV_OK));
        print_timing("reject", n,
                     time_verify(set, &wrong, 1, iterations, RV_WRONG_TOKEN));

        apr_pool_destroy(p);
        free(toks);
        free(accept);
    }
    apr_pool_destroy(top);
    apr_terminate();
    return 0;
}
