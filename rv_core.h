/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * rv_core: the pure logic of mod_redox_verify, free of request_rec so that
 * it can be unit-tested and fuzzed without a server.  It uses APR for pools
 * and processes and OpenSSL for the digest and constant-time comparison.
 */

#ifndef RV_CORE_H
#define RV_CORE_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <apr_time.h>

#define RV_DIGEST_LEN  32   /* SHA-256 */
#define RV_NAME_MAX    64   /* longest token NAME */
#define RV_TOKEN_MAX   8192 /* longest configured token */
#define RV_SHORT_TOKEN 32   /* shorter tokens draw a startup warning */

/* The second token header's name, which is also the handshake's JSON
 * member and query parameter, and a RedoxTokenHeaders keyword. */
#define RV_VTOKEN "verification-token"

/* The expiry of a token without expires=: later than any request time. */
#define RV_NEVER APR_INT64_MAX

typedef enum {
    RV_HDR_BOTH = 0,
    RV_HDR_ANY,
    RV_HDR_BEARER,
    RV_HDR_VTOKEN
} rv_hdr_mode;

/* The outcome of a check; also the value of the REDOX_VERIFY variable. */
typedef enum {
    RV_OK = 0,
    RV_MISSING,       /* a header the mode requires is absent */
    RV_MALFORMED,     /* a header is present but not a valid token */
    RV_WRONG_TOKEN,   /* well-formed token that is not accepted here */
    RV_MISMATCH,      /* the two headers carry different tokens */
    RV_NO_TOKENS,     /* verification on but no token configured */
    RV_HANDSHAKE,     /* a handshake with an accepted token, answered */
    RV_BAD_CHALLENGE, /* a handshake with an accepted token, bad challenge */
    RV_EXPIRED,       /* a configured token at or past its expires= instant */
    RV_OUTCOME_COUNT
} rv_outcome;

const char *rv_outcome_name(rv_outcome o);

/* What one header carries. */
typedef enum {
    RV_ABSENT = 0, /* no header, or Authorization with another scheme */
    RV_PRESENT,    /* a well-formed token at *tok, *len bytes */
    RV_BAD         /* present but malformed */
} rv_presence;

/* Authorization: "Bearer" (any case), one or more spaces, a token. */
rv_presence rv_parse_bearer(const char *value, const char **tok,
                            apr_size_t *len);
/* Is an Authorization value of the Bearer scheme, its token well-formed
 * or not (rv_parse_bearer would not say RV_ABSENT)?  The scheme only. */
int rv_is_bearer(const char *value);
/* verification-token: the whole value is the token. */
rv_presence rv_parse_vtoken(const char *value, const char **tok,
                            apr_size_t *len);

/* SHA-256 through OpenSSL.  rv_digest_init() fetches the algorithm once
 * (call it at startup, and rv_digest_term() when unloading); a process that
 * keeps its threads (an httpd child) calls rv_digest_cache_per_thread() once
 * so that rv_digest() keeps its contexts per thread (one initialised for
 * SHA-256, copied for each digest) instead of allocating one per call.
 * Each returns 1 on success, 0 on failure. */
int rv_digest_init(void);
void rv_digest_term(void);
int rv_digest_cache_per_thread(void);
int rv_digest(const void *data, apr_size_t len,
              unsigned char out[RV_DIGEST_LEN]);

/* A set of accepted tokens, kept only as digests and indexed by digest in
 * an open-addressing table, so a lookup costs the same for 1 or 10,000
 * tokens: a candidate whose 32-bit tag (4 other bytes of its digest)
 * agrees is compared with CRYPTO_memcmp, the others not at all. */
typedef struct rv_tokenset rv_tokenset;

rv_tokenset *rv_tokenset_make(apr_pool_t *p);
/* Returns NULL, or an error message (duplicate name or token). */
const char *rv_tokenset_add(rv_tokenset *s, const char *name,
                            const unsigned char digest[RV_DIGEST_LEN]);
/* The same for a token refused from the instant expires on (RV_NEVER:
 * never; rv_tokenset_add is this with RV_NEVER). */
const char *rv_tokenset_add_expiring(rv_tokenset *s, const char *name,
                                     const unsigned char digest[RV_DIGEST_LEN],
                                     apr_time_t expires);
/* Returns the NAME of the token with this digest, or NULL. */
const char *rv_tokenset_lookup(const rv_tokenset *s,
                               const unsigned char digest[RV_DIGEST_LEN]);
/* The number of tokens.  Their slots are 0 .. count - 1, in the order
 * they were added.  The glue keys per-token data (the metrics counters) by
 * slot, so that an accepted request finds it by index, never by NAME. */
int rv_tokenset_count(const rv_tokenset *s);
/* The NAME in a slot, or NULL for a slot out of range. */
const char *rv_tokenset_name_at(const rv_tokenset *s, int slot);
/* The slot of the token with this digest, or -1. */
int rv_tokenset_find(const rv_tokenset *s,
                     const unsigned char digest[RV_DIGEST_LEN]);
/* The expiry of the token in a slot: RV_NEVER for none (or a bad slot). */
apr_time_t rv_tokenset_expiry_at(const rv_tokenset *s, int slot);

/* The expiry part of the decision, for a token already found (slot, from
 * rv_verify_slot, rv_check_token_slot or rv_tokenset_find): RV_EXPIRED
 * when now (the request time) is at or past the slot's expiry, else RV_OK.
 * The expiry sits in the entry the digest lookup found: one comparison,
 * whatever the number of tokens. */
rv_outcome rv_check_expiry(const rv_tokenset *s, int slot, apr_time_t now);

/* The whole check of a request's two header values (either may be NULL).
 * On RV_OK, *name is the accepted NAME.  When a token was digested,
 * digest receives it (so a later internal redirect can re-check it
 * without the stripped headers). */
rv_outcome rv_verify(const rv_tokenset *s, rv_hdr_mode mode,
                     const char *authorization, const char *vtoken,
                     const char **name, unsigned char digest[RV_DIGEST_LEN]);
/* The same, giving the accepted token's slot (-1 unless RV_OK). */
rv_outcome rv_verify_slot(const rv_tokenset *s, rv_hdr_mode mode,
                          const char *authorization, const char *vtoken,
                          int *slot, unsigned char digest[RV_DIGEST_LEN]);

/* Checks one token (e.g. from a handshake) against the set: digest, then
 * constant-time lookup.  RV_OK, RV_WRONG_TOKEN or RV_NO_TOKENS; *slot is
 * the accepted token's slot (-1 unless RV_OK). */
rv_outcome rv_check_token_slot(const rv_tokenset *s, const char *tok,
                               apr_size_t len, int *slot,
                               unsigned char digest[RV_DIGEST_LEN]);

/* Is authorization (a request's Authorization value, or NULL) a Bearer
 * header that carries one of the set's tokens, a secret of ours to strip
 * from a verified request?  checked: the request was just accepted by a
 * check that read this header (RedoxTokenHeaders both, bearer or any), so
 * a Bearer there is the accepted token: its scheme decides, its token is
 * neither read nor digested again.  Otherwise a well-formed Bearer's token
 * is digested, once, and looked up in constant time.  Anything else (no
 * header, another scheme, a malformed Bearer, a token not in the set such
 * as an OAuth 2.0 access token) is not ours: 0. */
int rv_bearer_is_ours(const rv_tokenset *s, const char *authorization,
                      int checked);

/* The WWW-Authenticate value of a 401 refusal for this outcome (RFC 6750):
 * Bearer with the realm (AuthName; NULL: RV_DEFAULT_REALM, with no
 * allocation), and the error code that the outcome maps to,
 * invalid_token (a wrong, mismatched or expired token) or invalid_request
 * (a malformed header); none for a missing token. */
#define RV_DEFAULT_REALM "Redox"
const char *rv_bearer_challenge(apr_pool_t *p, const char *realm,
                                rv_outcome why);

/* Request details the glue needs. */

/* Header names that a backend may take for the same: case aside, CGI-style
 * environments (HTTP_X_REDOX_SOURCE) read '_' and '-' alike. */
int rv_same_header(const char *a, const char *b);
/* Is key a CGI-style environment name of header name: HTTP_ and the name
 * (rv_same_header), perhaps behind REDIRECT_ prefixes?  httpd puts one
 * before the copies an internal redirect makes, one more for each hop. */
int rv_env_names_header(const char *key, const char *name);
/* A comma-separated header value (Connection) without the elements that
 * name the header name (rv_same_header): list itself when none does, NULL
 * when nothing is left. */
const char *rv_list_without(apr_pool_t *p, const char *list, const char *name);
/* Is the path of this request target (origin or absolute form, query
 * aside) one that a backend may resolve to another path than httpd did:
 * does it contain ';', a backslash, an encoded '/', '\' or '.', or a '.'
 * or '..' segment?  An exemption from verification does not apply to such
 * a request. */
int rv_path_ambiguous(const char *target);

/* Configuration values. */

/* Is s 1 to max characters, each an ASCII letter or digit or one of
 * also?  The one character-set check behind every validator below. */
int rv_chars_valid(const char *s, const char *also, apr_size_t max);
/* A token NAME: 1 to RV_NAME_MAX of A-Z a-z 0-9 . _ - */
int rv_name_valid(const char *name);
/* A header field name (RFC 9110 token characters, at least one). */
int rv_header_name_valid(const char *name);
/* The RedoxTokenHeaders keywords (any case): the rv_hdr_mode, or -1. */
int rv_parse_hdr_mode(const char *word);
/* The RedoxDenyStatus values "401", "403" and "404": the status, or -1. */
int rv_parse_deny_status(const char *word);
/* Is this a token Redox could send in a header (visible ASCII, no space,
 * 1..RV_TOKEN_MAX bytes)? */
int rv_token_valid(const char *tok, apr_size_t len);
/* The value of one hex digit, or -1. */
int rv_hexval(char c);
/* 64 hex digits to 32 bytes; returns 1 on success. */
int rv_hex_digest(const char *hex, unsigned char out[RV_DIGEST_LEN]);
/* Trims surrounding whitespace and cuts at the first line end, in place. */
char *rv_first_line(char *buf);

/* Expiry instants: WHEN is YYYY-MM-DD (midnight UTC at its start) or
 * YYYY-MM-DDTHH:MM:SSZ, years 1970 to 9999.  Returns NULL and sets *at,
 * or says what is wrong. */
const char *rv_parse_expiry(const char *when, apr_time_t *at);
/* at (seconds resolution) as YYYY-MM-DDTHH:MM:SSZ, in buf. */
#define RV_TIME_TEXT 21
char *rv_format_time(apr_time_t at, char buf[RV_TIME_TEXT]);
/* The options after a RedoxVerificationToken VALUE: argv[0] is the VALUE,
 * argv[1..*argc-1] the words after it.  A last word expires=WHEN is taken
 * off (*argc is decremented) and parsed into *expires (RV_NEVER without
 * one).  Returns NULL, or an error message: a bad WHEN, expires= twice or
 * not last, a VALUE that is itself expires=... (the VALUE was left out). */
const char *rv_take_expiry(apr_pool_t *p, int *argc, char *const argv[],
                           apr_time_t *expires);

/* Resolves a RedoxVerificationToken VALUE (argv[0], with argv[1..] the
 * arguments of an exec: program) to a digest.  On error returns a message
 * that names the problem but never the token.  *len is the token's length
 * (0 for a sha256: digest, whose token is not known): the glue warns about
 * tokens shorter than RV_SHORT_TOKEN and about tokens too long for a
 * request header line. */
/* Is a VALUE the token itself, not file:, env:, exec: or sha256:? */
int rv_value_is_literal(const char *value);
const char *rv_resolve_value(apr_pool_t *p, int argc, char *const argv[],
                             unsigned char digest[RV_DIGEST_LEN],
                             apr_size_t *len);

#endif /* RV_CORE_H */
