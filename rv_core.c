/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * rv_core: header parsing, token values, the token set and the decision.
 * Nothing here knows about request_rec; see rv_core.h.
 */

#include <pthread.h>
#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_hash.h>
#include <apr_env.h>
#include <apr_file_io.h>
#include <apr_thread_proc.h>
#include <apr_lib.h>
#include <apr_escape.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "rv_core.h"

static const char *const outcome_names[RV_OUTCOME_COUNT] = {
    "ok",        "missing",   "malformed",     "wrong-token", "mismatch",
    "no-tokens", "handshake", "bad-challenge", "expired"};

const char *rv_outcome_name(rv_outcome o)
{
    return (o >= 0 && o < RV_OUTCOME_COUNT) ? outcome_names[o] : "unknown";
}

/* ------------------------------------------------------------------ */
/* Header parsing                                                      */

#define IS_VISIBLE(c) ((unsigned char)(c) > 0x20 && (unsigned char)(c) < 0x7f)
#define IS_OWS(c)     ((c) == ' ' || (c) == '\t')

/* Every byte of p[0..n) that is not visible ASCII, as a byte of a word
 * with its high bit set: eight bytes at a time, since a token of 64 or
 * more bytes is read twice per request (both headers).  In x (the word
 * with each byte's high bit cleared) no sum below carries into the next
 * byte: a byte plus 0x5f has its high bit set when the byte is 0x21 or
 * more, a byte plus 0x01 when it is 0x7f.  The bytes read are the
 * client's, never a secret's. */
#define BYTES_01 0x0101010101010101ULL
#define BYTES_80 0x8080808080808080ULL

static apr_uint64_t invisible_bytes(apr_uint64_t w)
{
    apr_uint64_t x = w & ~BYTES_80;

    return (~(x + 0x5f * BYTES_01) | (x + BYTES_01) | w) & BYTES_80;
}

static int all_visible(const char *p, apr_size_t n)
{
    apr_uint64_t w, bad = 0;
    apr_size_t i;

    if (n < sizeof(w)) {
        for (i = 0; i < n; i++) {
            if (!IS_VISIBLE(p[i])) {
                return 0;
            }
        }
        return 1;
    }
    for (i = 0; i + sizeof(w) <= n; i += sizeof(w)) {
        memcpy(&w, p + i, sizeof(w));
        bad |= invisible_bytes(w);
    }
    /* The last eight bytes, overlapping what was read already. */
    memcpy(&w, p + n - sizeof(w), sizeof(w));
    return (bad | invisible_bytes(w)) == 0;
}

/* Reads a token at p: a run of visible ASCII, then optional trailing
 * whitespace, then the end of the value.  Said otherwise: the value
 * without its trailing whitespace is not empty and all visible (visible
 * bytes are never whitespace), which strlen and all_visible find without
 * a loop over single bytes. */
static rv_presence token_at(const char *p, const char **tok, apr_size_t *len)
{
    apr_size_t n = strlen(p);

    while (n > 0 && IS_OWS(p[n - 1])) {
        n--;
    }
    if (n == 0 || !all_visible(p, n)) {
        return RV_BAD;
    }
    *tok = p;
    *len = n;
    return RV_PRESENT;
}

/* Does p start with "bearer", in any case?  (c | 0x20) is the lower case
 * of a letter c, and no other byte maps to a lower-case letter; it stops
 * at the end of the string, since '\0' | 0x20 is a space. */
static int bearer_word(const char *p)
{
    static const char word[] = "bearer";
    int i;

    for (i = 0; i < (int)sizeof(word) - 1; i++) {
        if ((p[i] | 0x20) != word[i]) {
            return 0;
        }
    }
    return 1;
}

/* The scheme part of an Authorization value: RV_PRESENT when it is
 * "Bearer" and spaces (*rest: what follows them, the token if the value is
 * well-formed), else RV_ABSENT (another scheme) or RV_BAD. */
static rv_presence bearer_scheme(const char *value, const char **rest)
{
    const char *p;

    if (value == NULL) {
        return RV_ABSENT;
    }
    p = value;
    while (IS_OWS(*p)) {
        p++;
    }
    if (!bearer_word(p)) {
        return RV_ABSENT; /* Basic, Digest, ... */
    }
    p += 6;
    if (*p == '\0') {
        return RV_BAD; /* "Bearer" alone */
    }
    if (*p != ' ') {
        /* "Bearer\t..." is a Bearer header a Redox client could not have
         * sent; "Bearerish x" is some other scheme. */
        return *p == '\t' ? RV_BAD : RV_ABSENT;
    }
    while (*p == ' ') {
        p++;
    }
    *rest = p;
    return RV_PRESENT;
}

rv_presence rv_parse_bearer(const char *value, const char **tok,
                            apr_size_t *len)
{
    const char *rest;
    rv_presence pa = bearer_scheme(value, &rest);

    return pa == RV_PRESENT ? token_at(rest, tok, len) : pa;
}

int rv_is_bearer(const char *value)
{
    const char *rest;

    return bearer_scheme(value, &rest) != RV_ABSENT;
}

static const char *skip_ows(const char *p)
{
    while (IS_OWS(*p)) {
        p++;
    }
    return p;
}

rv_presence rv_parse_vtoken(const char *value, const char **tok,
                            apr_size_t *len)
{
    if (value == NULL) {
        return RV_ABSENT;
    }
    return token_at(skip_ows(value), tok, len);
}

/* ------------------------------------------------------------------ */
/* Digest                                                              */

static EVP_MD *sha256_md;

/* The per-thread context cache is switched on in each child process only:
 * the parent reloads the module on every restart, and a thread key made
 * there would never be deleted (keys are a limited resource). */
static int ctx_cached;
static pthread_key_t ctx_key;

/* A thread's contexts: fresh, initialised once for SHA-256, is copied
 * into work for each digest.  Measured natively (OpenSSL 3.0, 64-byte
 * token), a copy costs less than initialising work again (1,236 against
 * 1,314 instructions per digest), and both far less than EVP_Digest with
 * the prefetched algorithm, which allocates a context each time (1,754),
 * or SHA256(), which fetches the algorithm each time (4,108). */
typedef struct {
    EVP_MD_CTX *fresh;
    EVP_MD_CTX *work;
} rv_digest_ctx;

static void ctx_free(void *data)
{
    rv_digest_ctx *c = data;

    EVP_MD_CTX_free(c->fresh);
    EVP_MD_CTX_free(c->work);
    free(c);
}

int rv_digest_init(void)
{
    if (sha256_md == NULL) {
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    return sha256_md != NULL;
}

void rv_digest_term(void)
{
    EVP_MD_free(sha256_md);
    sha256_md = NULL;
}

int rv_digest_cache_per_thread(void)
{
    if (!ctx_cached && pthread_key_create(&ctx_key, ctx_free) == 0) {
        ctx_cached = 1;
    }
    return ctx_cached;
}

int rv_digest(const void *data, apr_size_t len,
              unsigned char out[RV_DIGEST_LEN])
{
    const EVP_MD *md = sha256_md ? sha256_md : EVP_sha256();
    rv_digest_ctx *c;
    unsigned int outlen = 0;

    if (!ctx_cached) {
        return EVP_Digest(data, len, out, &outlen, md, NULL)
               && outlen == RV_DIGEST_LEN;
    }
    /* Contexts per thread, kept between requests: no context is
     * allocated, and the algorithm is not looked up, for each digest. */
    c = pthread_getspecific(ctx_key);
    if (c == NULL) {
        if ((c = calloc(1, sizeof(*c))) == NULL) {
            return 0;
        }
        if ((c->fresh = EVP_MD_CTX_new()) == NULL
            || (c->work = EVP_MD_CTX_new()) == NULL
            || !EVP_DigestInit_ex2(c->fresh, md, NULL)
            || pthread_setspecific(ctx_key, c) != 0) {
            ctx_free(c);
            return 0;
        }
    }
    if (!EVP_MD_CTX_copy_ex(c->work, c->fresh)
        || !EVP_DigestUpdate(c->work, data, len)
        || !EVP_DigestFinal_ex(c->work, out, &outlen)) {
        return 0;
    }
    return outlen == RV_DIGEST_LEN;
}

/* ------------------------------------------------------------------ */
/* Token set                                                           */

/* The tokens sit in a dense array, in the order they were added (their
 * "slots"); two open-addressing tables of entry numbers (entry + 1, 0 for
 * empty) index them by digest and by NAME.  Beside each entry number, the
 * digest table keeps a 32-bit tag of that entry's digest, so that a probe
 * reads the entry itself only when the tags agree (see find_slot).  The
 * arrays live in a subpool of their own that is replaced when they grow,
 * so outgrown arrays go back to the allocator instead of staying in the
 * config pool: 10,000 tokens take about 1 MiB. */
typedef struct {
    unsigned char digest[RV_DIGEST_LEN];
    const char *name;
    apr_time_t expires; /* RV_NEVER without expires= */
} rv_entry;

typedef struct {
    apr_uint32_t entry; /* entry number + 1; 0: an empty place */
    apr_uint32_t tag;   /* digest_tag() of the entry's digest */
} rv_probe;

struct rv_tokenset {
    apr_pool_t *pool;
    apr_pool_t *arrays; /* holds the three arrays */
    rv_entry *entries;
    rv_probe *by_digest;
    apr_uint32_t *by_name;
    apr_uint32_t mask; /* table size - 1 (a power of 2) */
    int count;
    int cap; /* entries allocated */
};

static apr_uint32_t digest_hash(const unsigned char *d)
{
    /* The digest is uniformly distributed: its first bytes are the hash. */
    return (apr_uint32_t)d[0] << 24 | (apr_uint32_t)d[1] << 16
           | (apr_uint32_t)d[2] << 8 | (apr_uint32_t)d[3];
}

/* Four other bytes of the digest, as the tag kept beside the entry. */
static apr_uint32_t digest_tag(const unsigned char *d)
{
    return (apr_uint32_t)d[4] << 24 | (apr_uint32_t)d[5] << 16
           | (apr_uint32_t)d[6] << 8 | (apr_uint32_t)d[7];
}

static apr_uint32_t name_hash(const char *name)
{
    apr_ssize_t len = APR_HASH_KEY_STRING;

    return apr_hashfunc_default(name, &len);
}

rv_tokenset *rv_tokenset_make(apr_pool_t *p)
{
    rv_tokenset *s = apr_pcalloc(p, sizeof(*s));

    s->pool = p;
    return s;
}

static void table_put(apr_uint32_t *table, apr_uint32_t mask,
                      apr_uint32_t hash, apr_uint32_t entry)
{
    apr_uint32_t i = hash & mask;

    while (table[i] != 0) {
        i = (i + 1) & mask;
    }
    table[i] = entry + 1;
}

static void probe_put(rv_probe *table, apr_uint32_t mask,
                      const unsigned char *digest, apr_uint32_t entry)
{
    apr_uint32_t i = digest_hash(digest) & mask;

    while (table[i].entry != 0) {
        i = (i + 1) & mask;
    }
    table[i].entry = entry + 1;
    table[i].tag = digest_tag(digest);
}

/* Makes room for one more token: entries grow by doubling, the tables stay
 * at most half full so probe chains stay short.  Returns 0 when out of
 * memory (the set is then unchanged). */
static int tokenset_grow(rv_tokenset *s)
{
    apr_uint32_t mask = s->mask;
    int cap = s->cap, i;
    apr_pool_t *arrays;
    rv_entry *entries;
    rv_probe *by_digest;
    apr_uint32_t *by_name;

    if (s->count < s->cap && (apr_uint32_t)(s->count + 1) * 2 <= mask + 1) {
        return 1;
    }
    if (s->count == s->cap) {
        cap = cap ? cap * 2 : 4;
    }
    if (s->arrays == NULL) {
        mask = 7;
    }
    else if ((apr_uint32_t)(s->count + 1) * 2 > mask + 1) {
        mask = mask * 2 + 1;
    }
    if (apr_pool_create(&arrays, s->pool) != APR_SUCCESS) {
        return 0;
    }
    entries = apr_palloc(arrays, cap * sizeof(*entries));
    by_digest = apr_pcalloc(arrays, (mask + 1) * sizeof(*by_digest));
    by_name = apr_pcalloc(arrays, (mask + 1) * sizeof(apr_uint32_t));
    for (i = 0; i < s->count; i++) {
        entries[i] = s->entries[i];
        probe_put(by_digest, mask, entries[i].digest, i);
        table_put(by_name, mask, name_hash(entries[i].name), i);
    }
    if (s->arrays != NULL) {
        apr_pool_destroy(s->arrays);
    }
    s->arrays = arrays;
    s->entries = entries;
    s->by_digest = by_digest;
    s->by_name = by_name;
    s->mask = mask;
    s->cap = cap;
    return 1;
}

static int find_name(const rv_tokenset *s, const char *name)
{
    apr_uint32_t i;

    if (s->count == 0) {
        return -1;
    }
    for (i = name_hash(name) & s->mask; s->by_name[i] != 0;
         i = (i + 1) & s->mask) {
        if (strcmp(s->entries[s->by_name[i] - 1].name, name) == 0) {
            return (int)s->by_name[i] - 1;
        }
    }
    return -1;
}

const char *rv_tokenset_add(rv_tokenset *s, const char *name,
                            const unsigned char digest[RV_DIGEST_LEN])
{
    return rv_tokenset_add_expiring(s, name, digest, RV_NEVER);
}

const char *rv_tokenset_add_expiring(rv_tokenset *s, const char *name,
                                     const unsigned char digest[RV_DIGEST_LEN],
                                     apr_time_t expires)
{
    const char *other;
    rv_entry *e;

    if (find_name(s, name) >= 0) {
        return apr_psprintf(s->pool, "duplicate NAME '%s' in this scope",
                            name);
    }
    other = rv_tokenset_lookup(s, digest);
    if (other != NULL) {
        return apr_psprintf(s->pool,
                            "the token of '%s' is the same as the "
                            "token of '%s' in this scope",
                            name, other);
    }
    if (!tokenset_grow(s)) {
        return "out of memory";
    }
    e = &s->entries[s->count];
    memcpy(e->digest, digest, RV_DIGEST_LEN);
    e->name = apr_pstrdup(s->pool, name);
    e->expires = expires;
    probe_put(s->by_digest, s->mask, digest, (apr_uint32_t)s->count);
    table_put(s->by_name, s->mask, name_hash(e->name), (apr_uint32_t)s->count);
    s->count++;
    return NULL;
}

/* Static, so that the lookups below inline it instead of calling through
 * the module's PLT (a -fPIC build may not bind exported calls locally). */
static int find_slot(const rv_tokenset *s,
                     const unsigned char digest[RV_DIGEST_LEN])
{
    apr_uint32_t i, e, tag;

    if (s == NULL || s->count == 0) {
        return -1;
    }
    /* Where the probe starts, how long it runs and which tags agree all
     * come from the digest of the presented token.  What their timing can
     * tell (that 32 bits of that digest equal 32 bits of a configured
     * token's digest) is about SHA-256 of the secret, not the secret: it
     * helps no more than trying tokens does.  The token is accepted only
     * when CRYPTO_memcmp finds all 32 bytes equal, in a time that does
     * not depend on where they differ.  The tags spare that comparison
     * (and a read of the entry) for the other tokens of a probe chain, so
     * a set of 10,000 tokens costs what a set of one does. */
    tag = digest_tag(digest);
    for (i = digest_hash(digest) & s->mask; (e = s->by_digest[i].entry) != 0;
         i = (i + 1) & s->mask) {
        if (s->by_digest[i].tag == tag
            && CRYPTO_memcmp(s->entries[e - 1].digest, digest, RV_DIGEST_LEN)
                   == 0) {
            return (int)e - 1;
        }
    }
    return -1;
}

int rv_tokenset_find(const rv_tokenset *s,
                     const unsigned char digest[RV_DIGEST_LEN])
{
    return find_slot(s, digest);
}

const char *rv_tokenset_lookup(const rv_tokenset *s,
                               const unsigned char digest[RV_DIGEST_LEN])
{
    int i = find_slot(s, digest);

    return i >= 0 ? s->entries[i].name : NULL;
}

const char *rv_tokenset_name_at(const rv_tokenset *s, int slot)
{
    if (s == NULL || slot < 0 || slot >= s->count) {
        return NULL;
    }
    return s->entries[slot].name;
}

int rv_tokenset_count(const rv_tokenset *s)
{
    return s ? s->count : 0;
}

apr_time_t rv_tokenset_expiry_at(const rv_tokenset *s, int slot)
{
    if (s == NULL || slot < 0 || slot >= s->count) {
        return RV_NEVER;
    }
    return s->entries[slot].expires;
}

/* ------------------------------------------------------------------ */
/* The decision                                                        */

rv_outcome rv_verify(const rv_tokenset *s, rv_hdr_mode mode,
                     const char *authorization, const char *vtoken,
                     const char **name, unsigned char digest[RV_DIGEST_LEN])
{
    int slot;
    rv_outcome o =
        rv_verify_slot(s, mode, authorization, vtoken, &slot, digest);

    *name = rv_tokenset_name_at(s, slot);
    return o;
}

rv_outcome rv_verify_slot(const rv_tokenset *s, rv_hdr_mode mode,
                          const char *authorization, const char *vtoken,
                          int *slot, unsigned char digest[RV_DIGEST_LEN])
{
    const char *a = NULL, *v = NULL, *tok, *arest = NULL;
    apr_size_t alen = 0, vlen = 0, len;
    rv_presence pa = RV_ABSENT, pv = RV_ABSENT;

    *slot = -1;
    if (rv_tokenset_count(s) == 0) {
        return RV_NO_TOKENS; /* fail closed */
    }
    if (mode != RV_HDR_VTOKEN
        && (pa = bearer_scheme(authorization, &arest)) == RV_PRESENT) {
        pa = token_at(arest, &a, &alen);
    }
    if (mode != RV_HDR_BEARER && vtoken != NULL) {
        const char *vrest = skip_ows(vtoken);

        /* The same string as the Bearer's token (as Redox sends them):
         * the same answer, without reading it twice. */
        if (arest != NULL && strcmp(arest, vrest) == 0) {
            pv = pa;
            v = a;
            vlen = alen;
        }
        else {
            pv = token_at(vrest, &v, &vlen);
        }
    }
    if (pa == RV_BAD || pv == RV_BAD) {
        return RV_MALFORMED;
    }
    switch (mode) {
    case RV_HDR_BOTH:
        if (pa == RV_ABSENT || pv == RV_ABSENT) {
            return RV_MISSING;
        }
        break;
    case RV_HDR_ANY:
        if (pa == RV_ABSENT && pv == RV_ABSENT) {
            return RV_MISSING;
        }
        break;
    case RV_HDR_BEARER:
        if (pa == RV_ABSENT) {
            return RV_MISSING;
        }
        break;
    case RV_HDR_VTOKEN:
        if (pv == RV_ABSENT) {
            return RV_MISSING;
        }
        break;
    }
    /* Both headers are the client's own strings: comparing them with each
     * other reveals nothing about a secret, and when they agree a single
     * digest serves both. */
    if (pa == RV_PRESENT && pv == RV_PRESENT
        && (alen != vlen || memcmp(a, v, alen) != 0)) {
        return RV_MISMATCH;
    }
    tok = pa == RV_PRESENT ? a : v;
    len = pa == RV_PRESENT ? alen : vlen;
    return rv_check_token_slot(s, tok, len, slot, digest);
}

rv_outcome rv_check_token_slot(const rv_tokenset *s, const char *tok,
                               apr_size_t len, int *slot,
                               unsigned char digest[RV_DIGEST_LEN])
{
    *slot = -1;
    if (rv_tokenset_count(s) == 0) {
        return RV_NO_TOKENS;
    }
    if (!rv_digest(tok, len, digest)) {
        return RV_WRONG_TOKEN; /* fail closed */
    }
    *slot = find_slot(s, digest);
    return *slot >= 0 ? RV_OK : RV_WRONG_TOKEN;
}

int rv_bearer_is_ours(const rv_tokenset *s, const char *authorization,
                      int checked)
{
    unsigned char digest[RV_DIGEST_LEN];
    const char *tok;
    apr_size_t len;

    if (checked) {
        /* The check accepted this value in a mode that reads it, so a
         * Bearer here carries a well-formed token: the scheme decides. */
        return bearer_scheme(authorization, &tok) == RV_PRESENT;
    }
    if (rv_parse_bearer(authorization, &tok, &len) != RV_PRESENT) {
        return 0;
    }
    return rv_tokenset_count(s) > 0 && rv_digest(tok, len, digest)
           && find_slot(s, digest) >= 0;
}

/* ------------------------------------------------------------------ */
/* Request details                                                     */

int rv_same_header(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        if (apr_tolower(*a) != apr_tolower(*b)
            && !((*a == '-' || *a == '_') && (*b == '-' || *b == '_'))) {
            return 0;
        }
    }
    return *a == *b;
}

const char *rv_list_without(apr_pool_t *p, const char *list, const char *name)
{
    char *copy, *elt, *last, *out = NULL;
    int dropped = 0;

    if (list == NULL) {
        return NULL;
    }
    copy = apr_pstrdup(p, list);
    for (elt = apr_strtok(copy, ",", &last); elt != NULL;
         elt = apr_strtok(NULL, ",", &last)) {
        char *end;

        while (IS_OWS(*elt)) {
            elt++;
        }
        end = elt + strlen(elt);
        while (end > elt && IS_OWS(end[-1])) {
            *--end = '\0';
        }
        if (*elt == '\0') {
            continue;
        }
        if (rv_same_header(elt, name)) {
            dropped = 1;
            continue;
        }
        out = out ? apr_pstrcat(p, out, ", ", elt, NULL) : elt;
    }
    return dropped ? out : list;
}

int rv_path_ambiguous(const char *target)
{
    const char *p = target, *seg;

    if (p == NULL) {
        return 0;
    }
    if (*p != '/') {
        /* absolute form: scheme://authority/path */
        const char *s = strstr(p, "://");

        if (s == NULL) {
            return 0; /* "*" or garbage: no path to resolve */
        }
        p = s + 3;
        p += strcspn(p, "/?#");
    }
    for (seg = p; *p && *p != '?' && *p != '#'; p++) {
        if (*p == ';' || *p == '\\') {
            return 1;
        }
        if (*p == '%' && p[1] != '\0') {
            char a = p[1], b = p[2];

            if ((a == '2' && (b == 'f' || b == 'F' || b == 'e' || b == 'E'))
                || (a == '5' && (b == 'c' || b == 'C'))) {
                return 1;
            }
        }
        if (*p == '/') {
            seg = p + 1;
            continue;
        }
        if (*p == '.' && p == seg) {
            /* "." or ".." as a whole segment */
            const char *e = p + (p[1] == '.' ? 2 : 1);

            if (*e == '/' || *e == '\0' || *e == '?' || *e == '#') {
                return 1;
            }
        }
    }
    return 0;
}

rv_outcome rv_check_expiry(const rv_tokenset *s, int slot, apr_time_t now)
{
    if (s == NULL || slot < 0 || slot >= s->count) {
        return RV_WRONG_TOKEN; /* no token was found: fail closed */
    }
    /* The secret decided the slot; this compares two times only. */
    return now >= s->entries[slot].expires ? RV_EXPIRED : RV_OK;
}

/* ------------------------------------------------------------------ */
/* Expiry instants                                                     */

/* n digits at p as a number, or -1. */
static int digits(const char *p, int n)
{
    int v = 0;

    for (; n > 0; n--, p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    return v;
}

const char *rv_parse_expiry(const char *when, apr_time_t *at)
{
    static const char *const shape =
        "expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)";
    apr_time_exp_t tm, back;
    apr_size_t len = strlen(when);
    apr_time_t t;
    int year;

    memset(&tm, 0, sizeof(tm));
    if ((len != 10 && len != 20) || when[4] != '-' || when[7] != '-'
        || (len == 20
            && (when[10] != 'T' || when[13] != ':' || when[16] != ':'
                || when[19] != 'Z'))) {
        return shape;
    }
    year = digits(when, 4);
    tm.tm_mon = digits(when + 5, 2) - 1;
    tm.tm_mday = digits(when + 8, 2);
    if (len == 20) {
        tm.tm_hour = digits(when + 11, 2);
        tm.tm_min = digits(when + 14, 2);
        tm.tm_sec = digits(when + 17, 2);
    }
    if (year < 0 || tm.tm_mon < -1 || tm.tm_mday < 0 || tm.tm_hour < 0
        || tm.tm_min < 0 || tm.tm_sec < 0) {
        return shape;
    }
    tm.tm_year = year - 1900;
    if (year < 1970 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1
        || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59
        || tm.tm_sec > 59) {
        return "no such date or time (years 1970 to 9999, UTC)";
    }
    /* APR's conversion, checked by the way back: 2026-02-30 would come
     * back as March 2nd. */
    if (apr_time_exp_gmt_get(&t, &tm) != APR_SUCCESS
        || apr_time_exp_gmt(&back, t) != APR_SUCCESS
        || back.tm_year != tm.tm_year || back.tm_mon != tm.tm_mon
        || back.tm_mday != tm.tm_mday) {
        return "no such date or time (years 1970 to 9999, UTC)";
    }
    *at = t;
    return NULL;
}

char *rv_format_time(apr_time_t at, char buf[RV_TIME_TEXT])
{
    apr_time_exp_t tm;

    if (apr_time_exp_gmt(&tm, at) != APR_SUCCESS) {
        memset(&tm, 0, sizeof(tm));
    }
    apr_snprintf(buf, RV_TIME_TEXT, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec);
    return buf;
}

#define EXPIRES_OPT     "expires="
#define EXPIRES_OPT_LEN (sizeof(EXPIRES_OPT) - 1)

const char *rv_take_expiry(apr_pool_t *p, int *argc, char *const argv[],
                           apr_time_t *expires)
{
    const char *when, *err;
    int i;

    *expires = RV_NEVER;
    /* argv[0] may be the token itself: no message quotes it. */
    if (*argc < 1 || strncmp(argv[0], EXPIRES_OPT, EXPIRES_OPT_LEN) == 0) {
        return "expects NAME VALUE [expires=WHEN]; the VALUE is missing";
    }
    for (i = 1; i < *argc - 1; i++) {
        if (strncmp(argv[i], EXPIRES_OPT, EXPIRES_OPT_LEN) == 0) {
            return "expires= must be the last argument, and given once";
        }
    }
    if (*argc < 2
        || strncmp(argv[*argc - 1], EXPIRES_OPT, EXPIRES_OPT_LEN) != 0) {
        return NULL;
    }
    when = argv[*argc - 1] + EXPIRES_OPT_LEN;
    if ((err = rv_parse_expiry(when, expires)) != NULL) {
        return apr_psprintf(p, "bad expires=%s: %s",
                            apr_pescape_echo(p, when, 0), err);
    }
    (*argc)--;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Configuration values                                                */

int rv_chars_valid(const char *s, const char *also, apr_size_t max)
{
    apr_size_t n = 0;

    for (; *s; s++, n++) {
        if (!apr_isalnum(*s) && strchr(also, *s) == NULL) {
            return 0;
        }
    }
    return n >= 1 && n <= max;
}

int rv_name_valid(const char *name)
{
    return rv_chars_valid(name, "._-", RV_NAME_MAX);
}

int rv_token_valid(const char *tok, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len > RV_TOKEN_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!IS_VISIBLE(tok[i])) {
            return 0;
        }
    }
    return 1;
}

int rv_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int rv_hex_digest(const char *hex, unsigned char out[RV_DIGEST_LEN])
{
    int i;

    if (strlen(hex) != 2 * RV_DIGEST_LEN) {
        return 0;
    }
    for (i = 0; i < RV_DIGEST_LEN; i++) {
        int hi = rv_hexval(hex[2 * i]), lo = rv_hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return 0;
        }
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 1;
}

char *rv_first_line(char *buf)
{
    char *end;

    buf[strcspn(buf, "\r\n")] = '\0';
    while (apr_isspace(*buf)) {
        buf++;
    }
    end = buf + strlen(buf);
    while (end > buf && apr_isspace(end[-1])) {
        *--end = '\0';
    }
    return buf;
}

/* Reads up to the buffer's size from f; the rest is not wanted. */
static apr_status_t read_head(apr_file_t *f, char *buf, apr_size_t size,
                              apr_size_t *got)
{
    apr_status_t rv = apr_file_read_full(f, buf, size - 1, got);

    buf[*got] = '\0';
    return APR_STATUS_IS_EOF(rv) ? APR_SUCCESS : rv;
}

#define HEAD_SIZE (RV_TOKEN_MAX + 2)

static const char *value_from_file(apr_pool_t *p, const char *path,
                                   const char **tok)
{
    apr_file_t *f;
    apr_size_t got;
    char *buf = apr_palloc(p, HEAD_SIZE);
    char err[128];
    apr_status_t rv;

    rv = apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, p);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "file:%s cannot be read (%s)", path,
                            apr_strerror(rv, err, sizeof(err)));
    }
    rv = read_head(f, buf, HEAD_SIZE, &got);
    apr_file_close(f);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "file:%s cannot be read (%s)", path,
                            apr_strerror(rv, err, sizeof(err)));
    }
    *tok = rv_first_line(buf);
    if (**tok == '\0') {
        return apr_psprintf(p,
                            "file:%s is empty (its first line holds "
                            "no token)",
                            path);
    }
    return NULL;
}

static const char *value_from_exec(apr_pool_t *p, int argc, char *const argv[],
                                   const char **tok)
{
    const char *prog = argv[0] + 5;
    const char **args = apr_pcalloc(p, (argc + 1) * sizeof(char *));
    apr_procattr_t *attr;
    apr_proc_t proc;
    apr_exit_why_e why;
    apr_size_t got = 0;
    char *buf = apr_palloc(p, HEAD_SIZE);
    char err[128];
    int i, code;
    apr_status_t rv;

    if (*prog == '\0') {
        return "exec: needs a program";
    }
    args[0] = prog;
    for (i = 1; i < argc; i++) {
        args[i] = argv[i];
    }
    if ((rv = apr_procattr_create(&attr, p)) != APR_SUCCESS
        || (rv = apr_procattr_io_set(attr, APR_NO_PIPE, APR_FULL_BLOCK,
                                     APR_NO_PIPE))
               != APR_SUCCESS
        || (rv = apr_procattr_cmdtype_set(attr, APR_PROGRAM_ENV))
               != APR_SUCCESS
        || (rv = apr_procattr_error_check_set(attr, 1)) != APR_SUCCESS
        || (rv = apr_proc_create(&proc, prog, args, NULL, attr, p))
               != APR_SUCCESS) {
        return apr_psprintf(p, "exec:%s cannot be run (%s)", prog,
                            apr_strerror(rv, err, sizeof(err)));
    }
    rv = read_head(proc.out, buf, HEAD_SIZE, &got);
    apr_file_close(proc.out);
    apr_proc_wait(&proc, &code, &why, APR_WAIT);
    if (rv != APR_SUCCESS) {
        return apr_psprintf(p, "exec:%s: reading its output failed (%s)", prog,
                            apr_strerror(rv, err, sizeof(err)));
    }
    if (why != APR_PROC_EXIT || code != 0) {
        return apr_psprintf(p, "exec:%s failed (%s %d)", prog,
                            why == APR_PROC_EXIT ? "exit status" : "signal",
                            code);
    }
    *tok = rv_first_line(buf);
    if (**tok == '\0') {
        return apr_psprintf(p, "exec:%s printed nothing", prog);
    }
    return NULL;
}

int rv_value_is_literal(const char *value)
{
    return strncmp(value, "exec:", 5) != 0 && strncmp(value, "sha256:", 7) != 0
           && strncmp(value, "file:", 5) != 0
           && strncmp(value, "env:", 4) != 0;
}

const char *rv_resolve_value(apr_pool_t *p, int argc, char *const argv[],
                             unsigned char digest[RV_DIGEST_LEN],
                             apr_size_t *len)
{
    const char *value = argv[0], *tok = NULL, *err = NULL;

    *len = 0;
    if (strncmp(value, "exec:", 5) == 0) {
        err = value_from_exec(p, argc, argv, &tok);
    }
    else if (argc != 1) {
        return "expects NAME VALUE; only an exec: VALUE takes arguments";
    }
    else if (strncmp(value, "sha256:", 7) == 0) {
        if (!rv_hex_digest(value + 7, digest)) {
            return "sha256: must be followed by exactly 64 hex digits";
        }
        return NULL;
    }
    else if (strncmp(value, "file:", 5) == 0) {
        err = value_from_file(p, value + 5, &tok);
    }
    else if (strncmp(value, "env:", 4) == 0) {
        char *env = NULL;

        if (value[4] == '\0') {
            return "env: needs a variable name";
        }
        if (apr_env_get(&env, value + 4, p) != APR_SUCCESS) {
            return apr_psprintf(p, "env:%s is not set", value + 4);
        }
        if (*env == '\0') {
            return apr_psprintf(p, "env:%s is empty", value + 4);
        }
        tok = env;
    }
    else {
        tok = value;
    }
    if (err != NULL) {
        return err;
    }
    if (!rv_token_valid(tok, strlen(tok))) {
        return apr_psprintf(p,
                            "the token must be 1 to %d visible ASCII "
                            "characters without spaces",
                            RV_TOKEN_MAX);
    }
    *len = strlen(tok);
    if (!rv_digest(tok, *len, digest)) {
        return "computing the SHA-256 digest failed";
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Directive values and refusals                                       */

int rv_header_name_valid(const char *name)
{
    return rv_chars_valid(name, "!#$%&'*+-.^_`|~", (apr_size_t)-1);
}

int rv_parse_hdr_mode(const char *word)
{
    static const struct {
        const char *word;
        rv_hdr_mode mode;
    } modes[] = {{"both", RV_HDR_BOTH},
                 {"any", RV_HDR_ANY},
                 {"bearer", RV_HDR_BEARER},
                 {RV_VTOKEN, RV_HDR_VTOKEN}};
    apr_size_t i;

    for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcasecmp(word, modes[i].word) == 0) {
            return (int)modes[i].mode;
        }
    }
    return -1;
}

int rv_parse_deny_status(const char *word)
{
    if (strcmp(word, "401") == 0 || strcmp(word, "403") == 0
        || strcmp(word, "404") == 0) {
        return atoi(word);
    }
    return -1;
}

const char *rv_bearer_challenge(apr_pool_t *p, const char *realm,
                                rv_outcome why)
{
#define RV_ERRORS(prefix)                                                     \
    {                                                                         \
        prefix, prefix ", error=\"invalid_token\"",                           \
            prefix ", error=\"invalid_request\""                              \
    }
    /* the default realm's, built once */
    static const char *const as_default[] =
        RV_ERRORS("Bearer realm=\"" RV_DEFAULT_REALM "\"");
    static const char *const errors[] = RV_ERRORS("");
#undef RV_ERRORS
    int e = 0;

    if (why == RV_WRONG_TOKEN || why == RV_MISMATCH || why == RV_EXPIRED) {
        e = 1;
    }
    else if (why == RV_MALFORMED) {
        e = 2;
    }
    if (realm == NULL) {
        return as_default[e];
    }
    return apr_pstrcat(p, "Bearer realm=\"", realm, "\"", errors[e], NULL);
}

int rv_env_names_header(const char *key, const char *name)
{
    while (strncmp(key, "REDIRECT_", 9) == 0) {
        key += 9;
    }
    return strncmp(key, "HTTP_", 5) == 0 && rv_same_header(key + 5, name);
}
