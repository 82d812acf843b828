/* Licensed under the Apache License, Version 2.0 (see LICENSE).
 *
 * rv_handshake: the pure logic of Redox's endpoint-verification handshake
 * (a POST with a small JSON body, or a GET with a query string).  Parsing
 * only; the token check is rv_core's and the answer is the glue's.
 */

#ifndef RV_HANDSHAKE_H
#define RV_HANDSHAKE_H

#include <apr_pools.h>

#include "rv_core.h"

#define RV_HS_BODY_MAX      4096 /* larger bodies are not a handshake */
#define RV_HS_CHALLENGE_MAX 128

/* Is this Content-Type JSON (application/json or a +json type)? */
int rv_hs_is_json(const char *content_type);

/* Parses a POST body.  Returns NULL and sets *token and *challenge (copies
 * in p) when the body is a JSON object whose "verification-token" and
 * "challenge" members are strings; otherwise returns why it is not a
 * handshake (a short text naming no value from the body). */
const char *rv_hs_parse_body(apr_pool_t *p, const char *body, apr_size_t len,
                             const char **token, const char **challenge);

/* Parses a GET query string.  Returns NULL when a single "challenge"
 * parameter is present (percent-decoded into *challenge); *token is the
 * decoded "verification-token" parameter, or NULL when absent.  Otherwise
 * returns why it is not a handshake. */
const char *rv_hs_parse_query(apr_pool_t *p, const char *args,
                              const char **token, const char **challenge);

/* 1 to 128 characters of A-Z a-z 0-9 . _ ~ - (a UUID fits). */
int rv_hs_challenge_valid(const char *challenge);

/* The decision on a parsed handshake (token NULL when absent): RV_OK to
 * answer it, else why it is refused, in this order: RV_MISSING or
 * RV_NO_TOKENS (no token; s has tokens, or none), RV_WRONG_TOKEN, RV_EXPIRED
 * (at now), RV_BAD_CHALLENGE (an accepted token with a challenge that is
 * not rv_hs_challenge_valid).  *slot is the slot of the token found (for
 * an expired token or a bad challenge too), else -1. */
rv_outcome rv_hs_decide(const rv_tokenset *s, const char *token,
                        const char *challenge, apr_time_t now, int *slot);

/* A copy of the query with every verification-token value replaced by
 * "REDACTED", or NULL when there is none. */
char *rv_hs_redact_query(apr_pool_t *p, const char *args);

/* s (a request line or a URI) with every verification-token value in its
 * query, from the first '?' to the first space or '#', replaced by
 * "REDACTED"; s itself (no copy) when there is none. */
char *rv_hs_redact_in(apr_pool_t *p, char *s);

#endif /* RV_HANDSHAKE_H */
