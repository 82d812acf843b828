/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * libFuzzer harness: what the glue reads from a request besides the token
 * headers.  The input is "NAME\nLIST": the whole input is a request target
 * for rv_path_ambiguous (does an exemption apply to it?); LIST is a
 * Connection header value from which rv_list_without removes NAME (the
 * RedoxSourceHeader, which must reach the backend).
 *
 * Invariants, each stated again here independently: a target is ambiguous
 * exactly when its path has ';', a backslash, %2f, %2e or %5c (any case),
 * or a segment that is "." or ".."; the list keeps, in order, every
 * non-empty element but those naming NAME ('-' and '_' alike, any case).
 */

#include <ctype.h>

#include "fuzz_common.h"
#include "rv_core.h"

FZ_INITIALIZE_APR_ONLY

static int ambiguous_model(const char *t)
{
    const char *p = t, *end, *s;

    if (*p != '/') {
        const char *sep = strstr(p, "://");

        if (sep == NULL) {
            return 0;
        }
        p = sep + 3;
        while (*p && *p != '/' && *p != '?' && *p != '#') {
            p++;
        }
    }
    end = p;
    while (*end && *end != '?' && *end != '#') {
        end++;
    }
    for (s = p; s < end; s++) {
        if (*s == ';' || *s == '\\') {
            return 1;
        }
        if (*s == '%' && s + 2 <= end && s[1] != '\0') {
            char a = s[1], b = (char)tolower((unsigned char)s[2]);

            if ((a == '2' && (b == 'f' || b == 'e'))
                || (a == '5' && b == 'c')) {
                return 1;
            }
        }
    }
    /* segments between slashes */
    for (s = p; s < end;) {
        const char *e = s;
        size_t n;

        while (e < end && *e != '/') {
            e++;
        }
        n = (size_t)(e - s);
        if ((n == 1 && s[0] == '.')
            || (n == 2 && s[0] == '.' && s[1] == '.')) {
            return 1;
        }
        s = e + 1;
    }
    return 0;
}

static int same_model(const char *a, size_t alen, const char *b)
{
    size_t i;

    if (alen != strlen(b)) {
        return 0;
    }
    for (i = 0; i < alen; i++) {
        int x = tolower((unsigned char)a[i]), y = tolower((unsigned char)b[i]);

        x = x == '_' ? '-' : x;
        y = y == '_' ? '-' : y;
        if (x != y) {
            return 0;
        }
    }
    return 1;
}

/* The expected list, or NULL when nothing is left; *dropped when an
 * element was removed. */
static char *list_model(const char *list, const char *name, int *dropped)
{
    char *out = malloc(strlen(list) * 2 + 1);
    size_t o = 0;
    const char *s = list;

    FZ_CHECK(out != NULL);
    *dropped = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        const char *a = s, *b;

        if (e == NULL) {
            e = s + strlen(s);
        }
        b = e;
        while (a < b && fz_ows(*a)) {
            a++;
        }
        while (b > a && fz_ows(b[-1])) {
            b--;
        }
        if (b > a) {
            if (same_model(a, (size_t)(b - a), name)) {
                *dropped = 1;
            }
            else {
                if (o > 0) {
                    out[o++] = ',';
                    out[o++] = ' ';
                }
                memcpy(out + o, a, (size_t)(b - a));
                o += (size_t)(b - a);
            }
        }
        s = *e ? e + 1 : e;
    }
    out[o] = '\0';
    if (o == 0) {
        free(out);
        return NULL;
    }
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fz_cstr(data, size), *nl, *name, *list, *want;
    const char *got;
    apr_pool_t *p;
    int dropped;

    FZ_CHECK(rv_path_ambiguous(in) == ambiguous_model(in));
    nl = strchr(in, '\n');
    if (nl != NULL) {
        name = in;
        *nl = '\0';
        list = nl + 1;
        FZ_CHECK(apr_pool_create(&p, fz_root) == APR_SUCCESS);
        got = rv_list_without(p, list, name);
        want = list_model(list, name, &dropped);
        if (!dropped) {
            FZ_CHECK(got == list);
        }
        else if (want == NULL) {
            FZ_CHECK(got == NULL);
        }
        else {
            FZ_CHECK(got != NULL && strcmp(got, want) == 0);
        }
        free(want);
        apr_pool_destroy(p);
    }
    free(in);
    return 0;
}
