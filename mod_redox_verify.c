/* Licensed to the Apache Software Foundation (ASF) under the terms of the
 * Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License.  You may obtain a copy of the
 * License at http://www.apache.org/licenses/LICENSE-2.0 (see LICENSE).
 *
 * mod_redox_verify: verify the secret token that Redox sends with every
 * webhook request (Authorization: Bearer <token> and verification-token:
 * <token>) in the access-checker phase, and deny or hand the request on,
 * unchanged but for the stripped secret, to whatever would have served it.
 *
 * It also answers Redox's endpoint-verification handshake itself, so the
 * backend never has to.
 *
 * The parsing and checking live in rv_core.c and rv_handshake.c; this file
 * is the httpd glue: configuration, the access check, the handshake answer,
 * logging and the denial response.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"

#include "apr_lib.h"
#include "apr_strings.h"

#include "rv_core.h"
#include "rv_handshake.h"

module AP_MODULE_DECLARE_DATA redox_verify_module;

#define RV_UNSET        (-1)
#define RV_ENV_SOURCE   "REDOX_SOURCE"
#define RV_ENV_OUTCOME  "REDOX_VERIFY"
#define RV_HDR_VTOKEN_NAME "verification-token"
#define RV_DEFAULT_REALM   "Redox"

typedef struct {
    int verify;                  /* RedoxVerify: RV_UNSET, 0 or 1 */
    int strip;                   /* RedoxStripTokens */
    int mode;                    /* RedoxTokenHeaders: an rv_hdr_mode */
    int deny_status;             /* RedoxDenyStatus */
    int challenge;               /* RedoxChallenge */
    const char *source_header;   /* RedoxSourceHeader, NULL when unset */
    rv_tokenset *tokens;         /* shared, never copied, by merges */
    const char *scope;           /* where the RedoxVerify in force is */
} rv_dir_conf;

/* Remembered on a request whose token was accepted, so that an internal
 * redirect or sub-request, which no longer has the stripped headers, can
 * be checked against its own scope with the same token. */
typedef struct {
    unsigned char digest[RV_DIGEST_LEN];
    const char *name;
} rv_req_state;

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *create_dir_conf(apr_pool_t *p, char *dir)
{
    rv_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    (void)dir;
    conf->verify = RV_UNSET;
    conf->strip = RV_UNSET;
    conf->mode = RV_UNSET;
    conf->deny_status = RV_UNSET;
    conf->challenge = RV_UNSET;
    return conf;
}

static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    rv_dir_conf *base = basev, *add = addv;
    rv_dir_conf *conf = apr_palloc(p, sizeof(*conf));

    /* Runs per request: plain field picks, the token set is shared. */
    conf->verify = add->verify != RV_UNSET ? add->verify : base->verify;
    conf->scope = add->verify != RV_UNSET ? add->scope : base->scope;
    conf->strip = add->strip != RV_UNSET ? add->strip : base->strip;
    conf->mode = add->mode != RV_UNSET ? add->mode : base->mode;
    conf->deny_status = add->deny_status != RV_UNSET ? add->deny_status
                                                     : base->deny_status;
    conf->challenge = add->challenge != RV_UNSET ? add->challenge
                                                 : base->challenge;
    conf->source_header = add->source_header ? add->source_header
                                             : base->source_header;
    conf->tokens = add->tokens ? add->tokens : base->tokens;
    return conf;
}

static const char *set_verify(cmd_parms *cmd, void *dconf, int on)
{
    rv_dir_conf *conf = dconf;

    conf->verify = on;
    conf->scope = apr_psprintf(cmd->pool, "%s (%s:%d)",
                               cmd->path ? cmd->path
                               : cmd->server->is_virtual ? "VirtualHost"
                               : "server config",
                               cmd->directive->filename,
                               cmd->directive->line_num);
    return NULL;
}

static const char *set_token(cmd_parms *cmd, void *dconf, int argc,
                             char *const argv[])
{
    rv_dir_conf *conf = dconf;
    unsigned char digest[RV_DIGEST_LEN];
    char **args;
    const char *err;
    int is_short;

    if (argc < 2) {
        return "RedoxVerificationToken: expects NAME VALUE";
    }
    if (!rv_name_valid(argv[0])) {
        return apr_psprintf(cmd->pool, "RedoxVerificationToken: bad NAME "
                            "'%s': use 1 to %d letters, digits, '.', '_' "
                            "or '-'", ap_escape_logitem(cmd->pool, argv[0]),
                            RV_NAME_MAX);
    }
    args = apr_pmemdup(cmd->temp_pool, argv + 1, (argc - 1) * sizeof(char *));
    if (argc == 2 && strncmp(args[0], "exec:", 5) == 0
        && strpbrk(args[0], " \t") != NULL) {
        /* "exec:/path/prog arg" quoted as one word: split it the same way */
        char **words;

        apr_tokenize_to_argv(args[0], &words, cmd->temp_pool);
        for (argc = 1; words[argc - 1] != NULL; argc++) {
        }
        args = words;
    }
    if (strncmp(args[0], "file:", 5) == 0 && args[0][5] != '\0') {
        const char *path = ap_server_root_relative(cmd->temp_pool,
                                                   args[0] + 5);

        if (path == NULL) {
            return apr_psprintf(cmd->pool, "RedoxVerificationToken %s: "
                                "invalid file: path", argv[0]);
        }
        args[0] = apr_pstrcat(cmd->temp_pool, "file:", path, NULL);
    }
    err = rv_resolve_value(cmd->temp_pool, argc - 1, args, digest,
                           &is_short);
    if (err == NULL) {
        if (conf->tokens == NULL) {
            conf->tokens = rv_tokenset_make(cmd->pool);
        }
        err = rv_tokenset_add(conf->tokens, argv[0], digest);
    }
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "RedoxVerificationToken %s: %s",
                            argv[0], err);
    }
    if (is_short) {
        /* NULL server: a VirtualHost has no error log while the
         * configuration is read, so this goes to the startup stderr. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, NULL,
                     "redox_verify: RedoxVerificationToken %s (%s:%d) is "
                     "shorter than %d characters; Redox asks for long, "
                     "hard-to-guess tokens", argv[0],
                     cmd->directive->filename, cmd->directive->line_num,
                     RV_SHORT_TOKEN);
    }
    return NULL;
}

static const char *set_headers(cmd_parms *cmd, void *dconf, const char *arg)
{
    rv_dir_conf *conf = dconf;

    if (!strcasecmp(arg, "both")) {
        conf->mode = RV_HDR_BOTH;
    }
    else if (!strcasecmp(arg, "any")) {
        conf->mode = RV_HDR_ANY;
    }
    else if (!strcasecmp(arg, "bearer")) {
        conf->mode = RV_HDR_BEARER;
    }
    else if (!strcasecmp(arg, "verification-token")) {
        conf->mode = RV_HDR_VTOKEN;
    }
    else {
        return apr_psprintf(cmd->pool, "RedoxTokenHeaders: expected both, "
                            "any, bearer or verification-token, got '%s'",
                            ap_escape_logitem(cmd->pool, arg));
    }
    return NULL;
}

static const char *set_source_header(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    rv_dir_conf *conf = dconf;
    const char *p;

    for (p = arg; *p; p++) {
        /* RFC 9110 token characters */
        if (!apr_isalnum(*p) && !strchr("!#$%&'*+-.^_`|~", *p)) {
            break;
        }
    }
    if (*arg == '\0' || *p != '\0') {
        return apr_psprintf(cmd->pool, "RedoxSourceHeader: '%s' is not a "
                            "valid header name",
                            ap_escape_logitem(cmd->pool, arg));
    }
    if (!strcasecmp(arg, "Authorization")
        || !strcasecmp(arg, RV_HDR_VTOKEN_NAME)) {
        return apr_psprintf(cmd->pool, "RedoxSourceHeader: '%s' is one of "
                            "the token headers", arg);
    }
    conf->source_header = arg;
    return NULL;
}

static const char *set_deny_status(cmd_parms *cmd, void *dconf,
                                   const char *arg)
{
    rv_dir_conf *conf = dconf;

    if (!strcmp(arg, "401")) {
        conf->deny_status = HTTP_UNAUTHORIZED;
    }
    else if (!strcmp(arg, "403")) {
        conf->deny_status = HTTP_FORBIDDEN;
    }
    else if (!strcmp(arg, "404")) {
        conf->deny_status = HTTP_NOT_FOUND;
    }
    else {
        return apr_psprintf(cmd->pool, "RedoxDenyStatus: expected 401, 403 "
                            "or 404, got '%s'",
                            ap_escape_logitem(cmd->pool, arg));
    }
    return NULL;
}

#define RV_CONTEXT (RSRC_CONF | ACCESS_CONF)

static const command_rec redox_verify_cmds[] = {
    AP_INIT_FLAG("RedoxVerify", set_verify, NULL, RV_CONTEXT,
                 "On to require a valid Redox token in this scope"),
    AP_INIT_TAKE_ARGV("RedoxVerificationToken", set_token, NULL, RV_CONTEXT,
                      "NAME VALUE: a token accepted here; VALUE is the "
                      "token, file:PATH, env:VAR, exec:PROGRAM [ARGS] or "
                      "sha256:HEX"),
    AP_INIT_TAKE1("RedoxTokenHeaders", set_headers, NULL, RV_CONTEXT,
                  "Which headers carry the token: both, any, bearer or "
                  "verification-token"),
    AP_INIT_FLAG("RedoxStripTokens", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(rv_dir_conf, strip), RV_CONTEXT,
                 "On to remove the token headers from a verified request"),
    AP_INIT_TAKE1("RedoxSourceHeader", set_source_header, NULL, RV_CONTEXT,
                  "Request header set to the accepted token's NAME"),
    AP_INIT_TAKE1("RedoxDenyStatus", set_deny_status, NULL, RV_CONTEXT,
                  "Status of a denied request: 401, 403 or 404"),
    AP_INIT_FLAG("RedoxChallenge", ap_set_flag_slot,
                 (void *)APR_OFFSETOF(rv_dir_conf, challenge), RV_CONTEXT,
                 "On to answer Redox's endpoint-verification handshake"),
    {NULL}
};

/* ------------------------------------------------------------------ */
/* The access check                                                    */

/* The token accepted for this request or for the request it came from
 * (internal redirect: r->prev; sub-request: r->main). */
static const rv_req_state *prior_state(const request_rec *r)
{
    for (; r != NULL; r = r->main ? r->main : r->prev) {
        const rv_req_state *st = ap_get_module_config(r->request_config,
                                                      &redox_verify_module);
        if (st != NULL) {
            return st;
        }
    }
    return NULL;
}

/* One place builds every denial: status, WWW-Authenticate, log line. */
static int deny(request_rec *r, const rv_dir_conf *conf, rv_outcome why,
                const char *what)
{
    int status = conf->deny_status != RV_UNSET ? conf->deny_status
                                               : HTTP_UNAUTHORIZED;

    apr_table_setn(r->subprocess_env, RV_ENV_OUTCOME, rv_outcome_name(why));
    ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                  "redox_verify: denied %s%s: uri \"%s\", vhost %s:%u, "
                  "scope %s%s", what, rv_outcome_name(why), r->uri,
                  ap_get_server_name(r), (unsigned)ap_get_server_port(r),
                  conf->scope,
                  why == RV_NO_TOKENS ? "; RedoxVerify is On but no "
                  "RedoxVerificationToken is in effect here" : "");
    if (status == HTTP_UNAUTHORIZED) {
        const char *realm = ap_auth_name(r);
        const char *error = "";

        if (why == RV_WRONG_TOKEN || why == RV_MISMATCH) {
            error = ", error=\"invalid_token\"";
        }
        else if (why == RV_MALFORMED) {
            error = ", error=\"invalid_request\"";
        }
        apr_table_setn(r->err_headers_out,
                       (PROXYREQ_PROXY == r->proxyreq)
                       ? "Proxy-Authenticate" : "WWW-Authenticate",
                       apr_pstrcat(r->pool, "Bearer realm=\"",
                                   realm ? realm : RV_DEFAULT_REALM, "\"",
                                   error, NULL));
    }
    return status;
}

static void accept_request(request_rec *r, const rv_dir_conf *conf,
                           const unsigned char *digest, const char *name)
{
    rv_req_state *st = apr_palloc(r->pool, sizeof(*st));

    memcpy(st->digest, digest, RV_DIGEST_LEN);
    st->name = name;
    ap_set_module_config(r->request_config, &redox_verify_module, st);

    apr_table_setn(r->subprocess_env, RV_ENV_SOURCE, name);
    apr_table_setn(r->subprocess_env, RV_ENV_OUTCOME, rv_outcome_name(RV_OK));
    if (conf->strip != 0) {
        const char *tok;
        apr_size_t len;

        apr_table_unset(r->headers_in, RV_HDR_VTOKEN_NAME);
        if (rv_parse_bearer(apr_table_get(r->headers_in, "Authorization"),
                            &tok, &len) != RV_ABSENT) {
            apr_table_unset(r->headers_in, "Authorization");
        }
    }
    if (conf->source_header) {
        apr_table_setn(r->headers_in, conf->source_header, name);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "redox_verify: accepted \"%s\": uri \"%s\", scope %s",
                  name, r->uri, conf->scope);
}

/* ------------------------------------------------------------------ */
/* The handshake                                                       */

static char *replace_once(apr_pool_t *p, char *s, const char *old,
                          const char *new)
{
    const char *at = s ? strstr(s, old) : NULL;

    if (at == NULL) {
        return s;
    }
    return apr_pstrcat(p, apr_pstrmemdup(p, s, at - s), new,
                       at + strlen(old), NULL);
}

/* A token in the URL (the GET handshake) must not reach the access log's
 * %r, %U%q or %{...}q, nor a backend: mask it in every copy of the query. */
static void redact_query(request_rec *r)
{
    char *args = rv_hs_redact_query(r->pool, r->args);

    if (args != NULL) {
        r->the_request = replace_once(r->pool, r->the_request, r->args, args);
        r->unparsed_uri = replace_once(r->pool, r->unparsed_uri, r->args,
                                       args);
        r->parsed_uri.query = args;
        r->args = args;
    }
}

/* Reads a request body of at most RV_HS_BODY_MAX bytes into buf, chunked
 * or not.  Returns NULL, or why the body is not a handshake's. */
static const char *read_small_body(request_rec *r, char *buf,
                                   apr_size_t *got)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    const char *why = NULL;
    apr_bucket_brigade *bb;
    apr_off_t n;
    int eos = 0;

    *got = 0;
    if (cl != NULL && (!ap_parse_strict_length(&n, cl)
                       || n > RV_HS_BODY_MAX)) {
        return "Content-Length over 4 KiB or invalid";
    }
    bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    while (!eos && why == NULL) {
        apr_bucket *e;

        if (ap_get_brigade(r->input_filters, bb, AP_MODE_READBYTES,
                           APR_BLOCK_READ, RV_HS_BODY_MAX + 1 - *got)
            != APR_SUCCESS) {
            why = "reading the body failed";
            break;
        }
        for (e = APR_BRIGADE_FIRST(bb);
             e != APR_BRIGADE_SENTINEL(bb) && why == NULL;
             e = APR_BUCKET_NEXT(e)) {
            const char *data;
            apr_size_t len;

            if (APR_BUCKET_IS_EOS(e)) {
                eos = 1;
                break;
            }
            if (apr_bucket_read(e, &data, &len, APR_BLOCK_READ)
                != APR_SUCCESS) {
                why = "reading the body failed";
            }
            else if (len > RV_HS_BODY_MAX - *got) {
                why = "body over 4 KiB";
            }
            else {
                memcpy(buf + *got, data, len);
                *got += len;
            }
        }
        apr_brigade_cleanup(bb);
    }
    apr_brigade_destroy(bb);
    return why;
}

/* One place builds the answer: the bare challenge, as Redox asks. */
static int answer_challenge(request_rec *r, const char *challenge)
{
    apr_size_t len = strlen(challenge);

    ap_set_content_type(r, "text/plain");
    ap_set_content_length(r, len);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rwrite(challenge, (int)len, r);
    return DONE;
}

/* Answers Redox's endpoint-verification handshake.  args is the query as
 * the client sent it (before redaction).  Returns DECLINED when the request
 * is not a handshake, else the final status (DONE once answered). */
static int handshake(request_rec *r, const rv_dir_conf *conf,
                     const char *args)
{
    const char *token = NULL, *challenge = NULL, *why, *name = NULL;
    unsigned char digest[RV_DIGEST_LEN];
    rv_outcome outcome;

    if (r->method_number == M_GET) {
        if (args == NULL) {
            return DECLINED;
        }
        why = rv_hs_parse_query(r->pool, args, &token, &challenge);
    }
    else if (r->method_number == M_POST
             && rv_hs_is_json(apr_table_get(r->headers_in,
                                            "Content-Type"))) {
        char *buf = apr_palloc(r->pool, RV_HS_BODY_MAX);
        apr_size_t got;

        why = read_small_body(r, buf, &got);
        if (why == NULL) {
            why = rv_hs_parse_body(r->pool, buf, got, &token, &challenge);
        }
    }
    else {
        return DECLINED;
    }
    if (why != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "redox_verify: not a handshake: %s", why);
        return DECLINED;
    }

    if (token == NULL || *token == '\0') {
        outcome = rv_tokenset_count(conf->tokens) ? RV_MISSING
                                                  : RV_NO_TOKENS;
    }
    else {
        outcome = rv_check_token(conf->tokens, token, strlen(token), &name,
                                 digest);
    }
    if (outcome != RV_OK) {
        return deny(r, conf, outcome, "handshake ");
    }
    apr_table_setn(r->subprocess_env, RV_ENV_SOURCE, name);
    if (!rv_hs_challenge_valid(challenge)) {
        apr_table_setn(r->subprocess_env, RV_ENV_OUTCOME,
                       rv_outcome_name(RV_BAD_CHALLENGE));
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r,
                      "redox_verify: handshake refused %s: token \"%s\" "
                      "accepted but the challenge is not 1 to %d of "
                      "A-Z a-z 0-9 . _ ~ -: uri \"%s\", scope %s",
                      rv_outcome_name(RV_BAD_CHALLENGE), name,
                      RV_HS_CHALLENGE_MAX, r->uri, conf->scope);
        return HTTP_BAD_REQUEST;
    }
    apr_table_setn(r->subprocess_env, RV_ENV_OUTCOME,
                   rv_outcome_name(RV_HANDSHAKE));
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "redox_verify: handshake answered for \"%s\": uri \"%s\", "
                  "scope %s", name, r->uri, conf->scope);
    return answer_challenge(r, challenge);
}

static int check_access(request_rec *r)
{
    const rv_dir_conf *conf = ap_get_module_config(r->per_dir_config,
                                                   &redox_verify_module);
    const rv_req_state *prior;
    unsigned char digest[RV_DIGEST_LEN];
    const char *name = NULL, *auth, *vtoken, *args = r->args;
    rv_outcome outcome;

    if (conf->verify != 1) {
        if (conf->source_header) {
            apr_table_unset(r->headers_in, conf->source_header);
        }
        return DECLINED;
    }
    if (args != NULL) {
        redact_query(r);
    }
    auth = apr_table_get(r->headers_in, "Authorization");
    vtoken = apr_table_get(r->headers_in, RV_HDR_VTOKEN_NAME);

    /* A handshake is a request of its own that carries no token header. */
    if (conf->challenge != 0 && vtoken == NULL && r->main == NULL
        && r->prev == NULL) {
        const char *tok;
        apr_size_t len;

        if (rv_parse_bearer(auth, &tok, &len) == RV_ABSENT) {
            int status = handshake(r, conf, args);

            if (status != DECLINED) {
                return status;
            }
        }
    }

    prior = prior_state(r);
    if (prior != NULL) {
        /* Redirected or sub-requested after an accepted check: the
         * headers may be gone, the digest is not. */
        memcpy(digest, prior->digest, RV_DIGEST_LEN);
        if (rv_tokenset_count(conf->tokens) == 0) {
            outcome = RV_NO_TOKENS;
        }
        else {
            name = rv_tokenset_lookup(conf->tokens, digest);
            outcome = name ? RV_OK : RV_WRONG_TOKEN;
        }
    }
    else {
        outcome = rv_verify(conf->tokens, (rv_hdr_mode)(conf->mode != RV_UNSET
                                                        ? conf->mode
                                                        : RV_HDR_BOTH),
                            auth, vtoken, &name, digest);
    }

    if (outcome != RV_OK) {
        if (conf->source_header) {
            apr_table_unset(r->headers_in, conf->source_header);
        }
        return deny(r, conf, outcome, "");
    }
    accept_request(r, conf, digest, name);
    return OK;
}

/* A safety net: the access checker can be bypassed (Satisfy Any with a
 * successful Require), the fixup cannot.  Fail closed. */
static int check_fixups(request_rec *r)
{
    const rv_dir_conf *conf = ap_get_module_config(r->per_dir_config,
                                                   &redox_verify_module);
    const rv_req_state *st;
    int status;

    if (conf->verify != 1) {
        return DECLINED;
    }
    st = prior_state(r);
    if (st != NULL && rv_tokenset_lookup(conf->tokens, st->digest)) {
        return DECLINED;
    }
    status = check_access(r);
    return status == OK ? DECLINED : status;
}

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    if (!rv_digest_init()) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, NULL,
                     "redox_verify: OpenSSL has no SHA-256");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* httpd unloads and reloads the module with every configuration
     * (restart, graceful): release the fetched digest with it. */
    apr_pool_cleanup_register(pconf, NULL, rv_digest_cleanup,
                              apr_pool_cleanup_null);
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_access_checker(check_access, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_fixups(check_fixups, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

AP_DECLARE_MODULE(redox_verify) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,             /* per-directory config creator */
    merge_dir_conf,              /* per-directory config merger */
    NULL,                        /* server config creator */
    NULL,                        /* server config merger */
    redox_verify_cmds,           /* command table */
    register_hooks,              /* set up the hooks */
    AP_MODULE_FLAG_NONE          /* flags */
};
