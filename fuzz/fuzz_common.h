/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * Shared helpers of the libFuzzer harnesses (fuzz/fuzz_*.c).  Each harness
 * feeds untrusted bytes to one parser of rv_core.c or rv_handshake.c and
 * checks invariants; a broken invariant aborts, which libFuzzer reports as
 * a crash and keeps the input.
 */

#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>
#include <apr_pools.h>

#define FZ_CHECK(cond)                                                        \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                         \
            abort();                                                          \
        }                                                                     \
    } while (0)

static apr_pool_t *fz_root;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fz_init(void)
{
    if (apr_initialize() != APR_SUCCESS
        || apr_pool_create(&fz_root, NULL) != APR_SUCCESS) {
        abort();
    }
}

/* The set-up of a harness that needs nothing but APR and fz_root. */
#define FZ_INITIALIZE_APR_ONLY                                                \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                         \
    {                                                                         \
        (void)argc;                                                           \
        (void)argv;                                                           \
        fz_init();                                                            \
        return 0;                                                             \
    }

/* The input as a C string in a malloc block of exactly its size, so that
 * ASan sees a read past its end (pool memory is not checked per
 * allocation).  Cut at an embedded NUL, as httpd cuts header values. */
static inline char *fz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);

    FZ_CHECK(s != NULL);
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Is why one of the n reasons a parser may give? */
static inline int fz_known(const char *why, const char *const *reasons,
                           size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(why, reasons[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

#define FZ_KNOWN(why, reasons)                                                \
    fz_known((why), (reasons), sizeof(reasons) / sizeof((reasons)[0]))

static inline int fz_visible(char c)
{
    return (unsigned char)c > 0x20 && (unsigned char)c < 0x7f;
}

static inline int fz_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The manual's challenge rule, stated independently of rv_handshake.c:
 * 1 to 128 characters of A-Z a-z 0-9 . _ ~ - */
static inline int fz_challenge_ok(const char *c)
{
    size_t n = strlen(c), i;

    if (n < 1 || n > 128) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char x = c[i];

        if (!((x >= 'A' && x <= 'Z') || (x >= 'a' && x <= 'z')
              || (x >= '0' && x <= '9') || x == '.' || x == '_' || x == '~'
              || x == '-')) {
            return 0;
        }
    }
    return 1;
}

#endif /* FUZZ_COMMON_H */
