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
 * It counts every decision in shared memory, per VirtualHost and token
 * NAME or reason, and shows the counters to Prometheus (SetHandler
 * redox-verify-metrics) and in mod_status's server-status page.
 *
 * The parsing and checking live in rv_core.c and rv_handshake.c, the
 * counters' plan, store and renderings in rv_metrics.c.  This file is the
 * httpd glue of the configuration and the request path (the access check,
 * the handshake answer, logging, the refusal); mod_redox_verify_status.c
 * lays the counters out and shows them.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_core.h"

#include "apr_strings.h"

#include "mod_redox_verify.h"
#include "rv_handshake.h"

#define RV_UNSET       (-1)
#define RV_ENV_SOURCE  "REDOX_SOURCE"
#define RV_ENV_OUTCOME "REDOX_VERIFY"

typedef struct {
    int verify;                /* RedoxVerify: RV_UNSET, 0 or 1 */
    int strip;                 /* RedoxStripTokens */
    int mode;                  /* RedoxTokenHeaders: an rv_hdr_mode */
    int deny_status;           /* RedoxDenyStatus */
    int challenge;             /* RedoxChallenge */
    const char *source_header; /* RedoxSourceHeader, NULL when unset */
    rv_tokenset *tokens;       /* shared, never copied, by merges */
    rv_token_conf *token_conf; /* tokens' registration and counters */
    const char *scope;         /* where the RedoxVerify in force is */
    /* RedoxVerify Off inside a verified scope: the scope it exempts from,
     * which still applies to an ambiguous path (rv_path_ambiguous). */
    const char *exempted_from;
} rv_dir_conf;

/* Every scope's token set (rv_token_conf *, in pconf), registered by the
 * setter for the startup checks and the counters. */
static apr_array_header_t *token_confs;
/* Does a RedoxVerify On apply anywhere in this generation's configuration?
 * And where is the first literal token (mod_info shows it)? */
static int any_verified;
static const char *literal_token_at;

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static void *create_rv_dir_config(apr_pool_t *p, char *dir)
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

static void *merge_rv_dir_config(apr_pool_t *p, void *basev, void *addv)
{
    rv_dir_conf *base = basev, *add = addv;
    rv_dir_conf *conf = apr_palloc(p, sizeof(*conf));

    /* Runs per request: plain field picks, the token set is shared. */
    conf->verify = add->verify != RV_UNSET ? add->verify : base->verify;
    conf->scope = add->verify != RV_UNSET ? add->scope : base->scope;
    /* httpd merges a request's <Location> sections with each other first
     * and the result onto the <Directory> ones: an exemption found in the
     * first merge is kept through the second. */
    if (add->verify == 0) {
        conf->exempted_from = add->exempted_from  ? add->exempted_from
                              : base->verify == 1 ? base->scope
                                                  : base->exempted_from;
    }
    else {
        conf->exempted_from = add->verify == 1 ? NULL : base->exempted_from;
    }
    conf->strip = add->strip != RV_UNSET ? add->strip : base->strip;
    conf->mode = add->mode != RV_UNSET ? add->mode : base->mode;
    conf->deny_status =
        add->deny_status != RV_UNSET ? add->deny_status : base->deny_status;
    conf->challenge =
        add->challenge != RV_UNSET ? add->challenge : base->challenge;
    conf->source_header =
        add->source_header ? add->source_header : base->source_header;
    conf->tokens = add->tokens ? add->tokens : base->tokens;
    conf->token_conf = add->tokens ? add->token_conf : base->token_conf;
    return conf;
}

/* Per server: whether a verified scope applies there, and the counters'
 * place, filled in by post_config.  A VirtualHost inherits the main
 * server's sections, so a RedoxVerify On there applies to every one. */
static void *create_rv_srv_config(apr_pool_t *p, server_rec *s)
{
    (void)s;
    return apr_pcalloc(p, sizeof(rv_srv_conf));
}

/* Not a NULL merger: a VirtualHost's record alone would not see a
 * RedoxVerify On in the main server's sections (its requests would not be
 * masked for the log, its counters not laid out).  The module is flagged
 * AP_MODULE_FLAG_ALWAYS_MERGE, so every VirtualHost gets a record of its
 * own, also one with no directive of this module: the record holds the
 * server's counters, which must not be shared with the main server. */
static void *merge_rv_srv_config(apr_pool_t *p, void *basev, void *addv)
{
    const rv_srv_conf *base = basev, *add = addv;
    rv_srv_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->verified = base->verified || add->verified;
    return conf;
}

static const char *set_verify(cmd_parms *cmd, void *dconf, int on)
{
    rv_dir_conf *conf = dconf;

    conf->verify = on;
    if (on) {
        rv_srv_conf *sc = ap_get_module_config(cmd->server->module_config,
                                               &redox_verify_module);

        sc->verified = 1;
        any_verified = 1;
    }
    conf->scope =
        apr_psprintf(cmd->pool, "%s (%s:%d)",
                     cmd->path                 ? cmd->path
                     : cmd->server->is_virtual ? "VirtualHost"
                                               : "server config",
                     cmd->directive->filename, cmd->directive->line_num);
    return NULL;
}

#define RV_EXPIRY_NOTICE (14 * 24 * 3600) /* seconds: warn this early */

/* At startup and every reload: a token that has expired, or expires within
 * RV_EXPIRY_NOTICE, is worth a warning (not an error: a restart after the
 * date must not take the site down). */
static void warn_expiry(cmd_parms *cmd, const char *name, apr_time_t expires)
{
    apr_time_t now = apr_time_now();
    char when[RV_TIME_TEXT];

    rv_format_time(expires, when);
    if (expires <= now) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, NULL,
                     "redox_verify: RedoxVerificationToken %s (%s:%d) "
                     "expired at %s: requests and handshakes with it are "
                     "refused (expired)",
                     name, cmd->directive->filename, cmd->directive->line_num,
                     when);
    }
    else if (expires - now <= apr_time_from_sec(RV_EXPIRY_NOTICE)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, NULL,
                     "redox_verify: RedoxVerificationToken %s (%s:%d) "
                     "expires at %s, within %d days: rotate it before then",
                     name, cmd->directive->filename, cmd->directive->line_num,
                     when, RV_EXPIRY_NOTICE / 86400);
    }
}

static const char *set_token(cmd_parms *cmd, void *dconf, int argc,
                             char *const argv[])
{
    rv_dir_conf *conf = dconf;
    unsigned char digest[RV_DIGEST_LEN];
    char **args;
    const char *err, *where;
    apr_time_t expires;
    apr_size_t len;

    if (argc < 2) {
        return "RedoxVerificationToken: expects NAME VALUE [expires=WHEN]";
    }
    if (!rv_name_valid(argv[0])) {
        return apr_psprintf(cmd->pool,
                            "RedoxVerificationToken: bad NAME "
                            "'%s': use 1 to %d letters, digits, '.', '_' "
                            "or '-'",
                            ap_escape_logitem(cmd->pool, argv[0]),
                            RV_NAME_MAX);
    }
    argc--; /* from here on, the VALUE and the words after it */
    err = rv_take_expiry(cmd->temp_pool, &argc, argv + 1, &expires);
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "RedoxVerificationToken %s: %s",
                            argv[0], err);
    }
    argc++;
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
        const char *path =
            ap_server_root_relative(cmd->temp_pool, args[0] + 5);

        if (path == NULL) {
            return apr_psprintf(cmd->pool,
                                "RedoxVerificationToken %s: "
                                "invalid file: path",
                                argv[0]);
        }
        args[0] = apr_pstrcat(cmd->temp_pool, "file:", path, NULL);
    }
    err = rv_resolve_value(cmd->temp_pool, argc - 1, args, digest, &len);
    if (err == NULL) {
        if (conf->tokens == NULL) {
            rv_token_conf *tc = apr_pcalloc(cmd->pool, sizeof(*tc));

            conf->tokens = rv_tokenset_make(cmd->pool);
            tc->plan.set = conf->tokens;
            tc->server = cmd->server;
            conf->token_conf = tc;
            if (token_confs == NULL) {
                token_confs = apr_array_make(cmd->pool, 8, sizeof(tc));
            }
            APR_ARRAY_PUSH(token_confs, rv_token_conf *) = tc;
        }
        err = rv_tokenset_add_expiring(conf->tokens, argv[0], digest, expires);
    }
    if (err != NULL) {
        return apr_psprintf(cmd->pool, "RedoxVerificationToken %s: %s",
                            argv[0], err);
    }
    where = apr_psprintf(cmd->pool, "%s:%d", cmd->directive->filename,
                         cmd->directive->line_num);
    if (len > conf->token_conf->longest) {
        conf->token_conf->longest = len;
        conf->token_conf->longest_name = apr_pstrdup(cmd->pool, argv[0]);
        conf->token_conf->longest_where = where;
    }
    if (literal_token_at == NULL && rv_value_is_literal(args[0])) {
        literal_token_at = apr_psprintf(cmd->pool, "%s (%s)", argv[0], where);
    }
    if (len > 0 && len < RV_SHORT_TOKEN) {
        /* NULL server: a VirtualHost has no error log while the
         * configuration is read, so this goes to the startup stderr. */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, NULL,
                     "redox_verify: RedoxVerificationToken %s (%s) is "
                     "shorter than %d characters; Redox asks for long, "
                     "hard-to-guess tokens",
                     argv[0], where, RV_SHORT_TOKEN);
    }
    if (expires != RV_NEVER) {
        warn_expiry(cmd, argv[0], expires);
    }
    return NULL;
}

static const char *set_headers(cmd_parms *cmd, void *dconf, const char *arg)
{
    rv_dir_conf *conf = dconf;

    if ((conf->mode = rv_parse_hdr_mode(arg)) < 0) {
        return apr_psprintf(cmd->pool,
                            "RedoxTokenHeaders: expected both, "
                            "any, bearer or verification-token, got '%s'",
                            ap_escape_logitem(cmd->pool, arg));
    }
    return NULL;
}

static const char *set_source_header(cmd_parms *cmd, void *dconf,
                                     const char *arg)
{
    rv_dir_conf *conf = dconf;

    if (!rv_header_name_valid(arg)) {
        return apr_psprintf(cmd->pool,
                            "RedoxSourceHeader: '%s' is not a "
                            "valid header name",
                            ap_escape_logitem(cmd->pool, arg));
    }
    if (!strcasecmp(arg, "Authorization") || !strcasecmp(arg, RV_VTOKEN)) {
        return apr_psprintf(cmd->pool,
                            "RedoxSourceHeader: '%s' is one of "
                            "the token headers",
                            arg);
    }
    conf->source_header = arg;
    return NULL;
}

static const char *set_deny_status(cmd_parms *cmd, void *dconf,
                                   const char *arg)
{
    rv_dir_conf *conf = dconf;

    if ((conf->deny_status = rv_parse_deny_status(arg)) < 0) {
        return apr_psprintf(cmd->pool,
                            "RedoxDenyStatus: expected 401, 403 "
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
                      "NAME VALUE [expires=WHEN]: a token accepted here; "
                      "VALUE is the token, file:PATH, env:VAR, exec:PROGRAM "
                      "[ARGS] or sha256:HEX; WHEN is YYYY-MM-DD or "
                      "YYYY-MM-DDTHH:MM:SSZ (UTC)"),
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
    {NULL}};

/* ------------------------------------------------------------------ */
/* Startup                                                             */

/* The module is unloaded with pconf at a restart: release the algorithm. */
static apr_status_t digest_term(void *data)
{
    (void)data;
    rv_digest_term();
    return APR_SUCCESS;
}

static int rv_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                         apr_pool_t *ptemp)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    /* A new generation: forget the last one's (freed) configuration. */
    token_confs = NULL;
    any_verified = 0;
    literal_token_at = NULL;
    if (!rv_digest_init()) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, NULL,
                     "redox_verify: OpenSSL has no SHA-256");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, NULL, digest_term, apr_pool_cleanup_null);
    return OK;
}

/* The server whose limits apply to the request header lines of requests
 * for v: the first VirtualHost listed for v's address and port (httpd
 * reads the headers before it knows the name-based VirtualHost). */
static const server_rec *header_limits_of(const server_rec *s,
                                          const server_rec *v)
{
    const server_rec *w;

    if (!v->is_virtual || v->addrs == NULL) {
        return s;
    }
    for (w = s->next; w != NULL; w = w->next) {
        const server_addr_rec *a;

        for (a = w->addrs; a != NULL; a = a->next) {
            if (a->host_port == v->addrs->host_port
                && apr_sockaddr_equal(a->host_addr, v->addrs->host_addr)) {
                return w;
            }
        }
    }
    return v;
}

/* A token too long for its header line can be configured but never
 * presented: httpd answers 400 before any module sees the request. */
static void warn_long_tokens(server_rec *s, server_rec *log_to)
{
    static const apr_size_t line = sizeof("Authorization: Bearer ") - 1;
    int t;

    for (t = 0; token_confs != NULL && t < token_confs->nelts; t++) {
        const rv_token_conf *tc =
            APR_ARRAY_IDX(token_confs, t, rv_token_conf *);
        const server_rec *v;

        for (v = s; v != NULL && tc->longest > 0; v = v->next) {
            const server_rec *lim = header_limits_of(s, v);

            /* httpd takes a line of up to the limit plus one character */
            if ((tc->server != s && tc->server != v)
                || tc->longest + line
                       <= (apr_size_t)lim->limit_req_fieldsize + 1) {
                continue;
            }
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, log_to,
                         "redox_verify: RedoxVerificationToken %s (%s) is %lu "
                         "characters: its header line \"Authorization: "
                         "Bearer <token>\" is longer than the "
                         "LimitRequestFieldSize %d that applies to %s:%u, so "
                         "httpd refuses such requests with 400",
                         tc->longest_name, tc->longest_where,
                         (unsigned long)tc->longest, lim->limit_req_fieldsize,
                         v->server_hostname ? v->server_hostname : "",
                         (unsigned)(v->addrs ? v->addrs->host_port : v->port));
            break; /* once per token set */
        }
    }
}

/* What no directive alone shows.  log_to: NULL for the startup output
 * (apachectl -t, the first read of the configuration), else the error
 * log's server. */
static void warn_config(server_rec *s, server_rec *log_to)
{
    warn_long_tokens(s, log_to);
    if (literal_token_at != NULL && ap_find_linked_module("mod_info.c")) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, log_to,
                     "redox_verify: mod_info is loaded and "
                     "RedoxVerificationToken %s has its token in the "
                     "configuration: /server-info shows it; give it as "
                     "file:, env:, exec: or sha256: instead",
                     literal_token_at);
    }
}

/* apachectl -t and the first read at startup say it on the terminal (the
 * error log is not open yet); post_config says it in the error log. */
static int rv_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        warn_config(s, NULL);
    }
    return OK;
}

/* A child keeps its threads: let each keep its digest context. */
static void rv_child_init(apr_pool_t *p, server_rec *s)
{
    (void)p;
    if (!rv_digest_cache_per_thread()) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "redox_verify: no "
                     "thread key for the digest context; allocating one "
                     "per request");
    }
}

/* Once per generation with the whole configuration read (and once more,
 * first, for httpd's dry run at startup, which is skipped): what no
 * directive alone shows goes to the error log, then the counters are laid
 * out. */
static int rv_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    warn_config(s, s);
    return rv_status_post_config(pconf, s, token_confs);
}

/* ------------------------------------------------------------------ */
/* Counting: one relaxed atomic add at an index fixed at startup         */

static APR_INLINE const rv_srv_conf *srv_conf(const request_rec *r)
{
    return ap_get_module_config(r->server->module_config,
                                &redox_verify_module);
}

/* A denial or refusal: the VirtualHost block, at the outcome. */
static APR_INLINE void count_outcome(const request_rec *r, apr_uint32_t offset)
{
    rv_count(rv_counters, srv_conf(r)->block + offset);
}

/* An accepted token: its (VirtualHost, NAME) block, and the time it was
 * last accepted. */
static APR_INLINE void count_token(const request_rec *r,
                                   const rv_dir_conf *conf, int slot,
                                   apr_uint32_t offset)
{
    apr_uint32_t first = rv_plan_token_counter(&conf->token_conf->plan,
                                               srv_conf(r)->ordinal, slot);

    rv_count(rv_counters, first + offset);
    rv_stamp(rv_counters, first + RV_M_LAST_ACCEPTED,
             (apr_uint64_t)apr_time_sec(r->request_time));
}

/* ------------------------------------------------------------------ */
/* What the module knows of a request                                  */

/* What the module knows of a request.  The request the client sent (the
 * original: neither a sub-request nor an internal redirect) carries its
 * query as sent, before masking, and whether its verdict is counted yet.
 * Each request a verdict is made for records it and the scope
 * (per-directory configuration) it was made in: a request whose scope
 * changes afterwards, as a fast internal redirect by mod_dir or
 * mod_negotiation changes it, is checked again where it lands; an
 * internal redirect or sub-request of an accepted request is checked
 * against its own scope with the digest, since its headers are gone; the
 * ErrorDocument of a refused request keeps the refusal's status. */
typedef enum {
    RV_V_NONE = 0, /* no verdict yet */
    RV_V_ACCEPTED, /* a token was accepted: name, digest */
    RV_V_REFUSED,  /* denied, or a handshake refused: status */
    RV_V_ANSWERED, /* a handshake answered: DONE */
    RV_V_DEFERRED  /* a sub-request of a handshake-shaped request, which
                    * the request that runs answers or refuses */
} rv_verdict;

typedef struct {
    const rv_dir_conf *scope; /* where the verdict was made */
    rv_verdict verdict;
    int status;
    const char *outcome; /* REDOX_VERIFY */
    const char *name;    /* the accepted token's NAME, or NULL */
    unsigned char digest[RV_DIGEST_LEN];
    /* The original request: its query as sent, before masking (masked),
     * and whether its verdict is counted yet. */
    const char *args_as_sent;
    int masked;
    int counted;
    /* This request was looked at as a handshake in this scope: its body,
     * if any, is read. */
    const rv_dir_conf *handshake_tried;
    /* The token headers as the header parser found them in this scope,
     * for the access checker that follows (headers_of: the scope). */
    const rv_dir_conf *headers_of;
    const char *auth, *vtoken;
} rv_req_state;

/* Set, with no allocation, on a request of a server where no verified
 * scope applies (the log hook tells it from a request that httpd refused
 * before post_read_request ran), and on one of a server where one applies
 * that came without a query (nothing to mask, no query as sent).  Neither
 * is a state: own_state() says NULL, make_state() makes one. */
static const char rv_unverified_server, rv_no_query;

static APR_INLINE const rv_dir_conf *dir_conf(const request_rec *r)
{
    return ap_get_module_config(r->per_dir_config, &redox_verify_module);
}

static APR_INLINE int is_sentinel(const void *st)
{
    return st == &rv_unverified_server || st == &rv_no_query;
}

static rv_req_state *own_state(const request_rec *r)
{
    void *st = ap_get_module_config(r->request_config, &redox_verify_module);

    return is_sentinel(st) ? NULL : st;
}

static RV_NOINLINE rv_req_state *new_state(request_rec *r, const void *was)
{
    rv_req_state *st = apr_pcalloc(r->pool, sizeof(*st));

    st->masked = was == &rv_no_query;
    ap_set_module_config(r->request_config, &redox_verify_module, st);
    return st;
}

/* r's state, made on first use (in place of a sentinel). */
static APR_INLINE rv_req_state *make_state(request_rec *r)
{
    void *was = ap_get_module_config(r->request_config, &redox_verify_module);

    if (was != NULL && !is_sentinel(was)) {
        return was;
    }
    return new_state(r, was);
}

/* The request the client sent, that r is a sub-request or an internal
 * redirect of. */
static request_rec *original_request(request_rec *r)
{
    while (r->main != NULL || r->prev != NULL) {
        r = r->main != NULL ? r->main : r->prev;
    }
    return r;
}

/* The latest verdict made on r or on a request it came from (internal
 * redirect: r->prev; sub-request: r->main); deferrals are no verdict. */
static const rv_req_state *verdict_before(const request_rec *r)
{
    for (; r != NULL; r = r->main != NULL ? r->main : r->prev) {
        const rv_req_state *st = own_state(r);

        if (st != NULL && st->verdict != RV_V_NONE
            && st->verdict != RV_V_DEFERRED) {
            return st;
        }
    }
    return NULL;
}

/* An exemption from a verified scope (RedoxVerify Off inside it) does
 * not apply when the path, as sent, is one a backend may resolve
 * elsewhere (rv_path_ambiguous). */
static RV_NOINLINE int exemption_void(const request_rec *r,
                                      const rv_dir_conf *conf)
{
    if (!rv_path_ambiguous(r->unparsed_uri)) {
        return 0;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "redox_verify: the exemption %s does not apply to an "
                  "ambiguous path: verified as %s says",
                  conf->scope, conf->exempted_from);
    return 1;
}

/* Is r in a verified scope: RedoxVerify On, or an exemption from one
 * that does not apply (exemption_void). */
static APR_INLINE int in_verified_scope(const request_rec *r,
                                        const rv_dir_conf *conf)
{
    return conf->verify == 1
           || (conf->verify == 0 && conf->exempted_from != NULL
               && exemption_void(r, conf));
}

/* Counts a verdict once per request the client sent, whichever of its
 * requests makes the first one. */
static int first_verdict(request_rec *r)
{
    rv_req_state *orig = make_state(original_request(r));

    if (orig->counted) {
        return 0;
    }
    orig->counted = 1;
    return 1;
}

static void show_verdict(apr_table_t *env, const char *outcome,
                         const char *name)
{
    if (name != NULL) {
        apr_table_setn(env, RV_ENV_SOURCE, name);
    }
    apr_table_setn(env, RV_ENV_OUTCOME, outcome);
}

/* Records a verdict on r and, but for a deferral, shows it in
 * REDOX_VERIFY and REDOX_SOURCE (name, when not NULL): on r, and on the
 * request the client sent when r is a sub-request whose answer becomes
 * the client's (mod_dir passes a 401 on) and nothing is shown there yet. */
static rv_req_state *record_verdict(request_rec *r, const rv_dir_conf *conf,
                                    rv_verdict verdict, int status,
                                    rv_outcome outcome, const char *name)
{
    rv_req_state *st = make_state(r);

    st->scope = conf;
    st->verdict = verdict;
    st->status = status;
    st->outcome = rv_outcome_name(outcome);
    st->name = name;
    if (verdict != RV_V_DEFERRED) {
        show_verdict(r->subprocess_env, st->outcome, name);
        if (r->main != NULL) {
            request_rec *orig = original_request(r);

            if (apr_table_get(orig->subprocess_env, RV_ENV_OUTCOME) == NULL) {
                show_verdict(orig->subprocess_env, st->outcome, name);
            }
        }
    }
    return st;
}

/* ------------------------------------------------------------------ */
/* Masking the query token                                             */

/* A token in the URL (the GET handshake) must not reach the access log's
 * %r, %U%q or %{...}q, mod_status, httpd's own error-log lines, nor a
 * backend: mask it in every copy of the query.  The request line and the
 * URI are masked on their own, since a rewrite may have changed r->args. */
static void redact_query(request_rec *r)
{
    char *args = rv_hs_redact_query(r->pool, r->args);

    r->the_request = rv_hs_redact_in(r->pool, r->the_request);
    r->unparsed_uri = rv_hs_redact_in(r->pool, r->unparsed_uri);
    if (args != NULL) {
        r->parsed_uri.query = args;
        r->args = args;
    }
}

/* post_read_request, first: in a server where a verified scope applies,
 * the query token is masked before anything copies the request line or
 * the URI (mod_status's scoreboard, httpd's own error-log lines, the URL
 * that mod_proxy's nocanon or mod_rewrite's [P,NE] build, CGI's
 * REQUEST_URI).  The handshake reads the query as sent, kept here.  In
 * other servers the query is left alone: other applications may use a
 * parameter of that name. */
static int rv_post_read_request(request_rec *r)
{
    const rv_srv_conf *sc =
        ap_get_module_config(r->server->module_config, &redox_verify_module);
    rv_req_state *st;

    if (!sc->verified) {
        ap_set_module_config(r->request_config, &redox_verify_module,
                             (void *)&rv_unverified_server);
        return DECLINED;
    }
    /* No query: httpd sets r->args whenever the URI has a '?' ("" for a
     * bare one), and the request line holds no other (a method or a
     * protocol with one is refused with a 400 first, which the log hook
     * masks).  Nothing to mask, and no state needed yet. */
    if (r->args == NULL) {
        ap_set_module_config(r->request_config, &redox_verify_module,
                             (void *)&rv_no_query);
        return DECLINED;
    }
    st = make_state(r);
    st->args_as_sent = r->args;
    st->masked = 1;
    redact_query(r);
    return DECLINED;
}

/* httpd logs a request it refused before post_read_request ran (a 400 for
 * a bad header line, a 414 for a long request line) with the request line
 * as received, before its server is known for sure: mask a query token
 * there when a verified scope applies anywhere. */
static int rv_log_transaction(request_rec *r)
{
    const rv_req_state *st =
        ap_get_module_config(r->request_config, &redox_verify_module);

    if (is_sentinel(st) || !any_verified) {
        return DECLINED;
    }
    if (st == NULL || !st->masked) {
        redact_query(r);
    }
    return DECLINED;
}

/* ------------------------------------------------------------------ */
/* Refusing and accepting                                              */

/* No client-sent RedoxSourceHeader, nor a look-alike, reaches a backend. */
static void unset_source_header(request_rec *r, const rv_dir_conf *conf)
{
    const apr_array_header_t *arr = apr_table_elts(r->headers_in);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i = 0;

    while (i < arr->nelts) {
        if (e[i].key != NULL
            && rv_same_header(e[i].key, conf->source_header)) {
            apr_table_unset(r->headers_in, e[i].key);
            i = 0; /* unset moved the entries: start over */
            continue;
        }
        i++;
    }
}

/* A refused request goes on to an ErrorDocument, which may be a CGI or a
 * proxied application: the token it presented and its body go nowhere.
 * The body is not read either: the connection closes after the answer
 * (Redox retries a refused delivery), so httpd does not read and discard
 * it, up to LimitRequestBody, to keep the connection alive. */
static void drop_presented(request_rec *r, const rv_dir_conf *conf)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    apr_table_unset(r->headers_in, RV_VTOKEN);
    if (conf->mode != RV_HDR_VTOKEN
        && rv_is_bearer(apr_table_get(r->headers_in, "Authorization"))) {
        apr_table_unset(r->headers_in, "Authorization");
    }
    if (conf->source_header) {
        unset_source_header(r, conf);
    }
    if (apr_table_get(r->headers_in, "Transfer-Encoding") != NULL
        || (cl != NULL && strcmp(cl, "0") != 0)) {
        r->connection->keepalive = AP_CONN_CLOSE;
        apr_table_unset(r->headers_in, "Transfer-Encoding");
        apr_table_unset(r->headers_in, "Content-Length");
    }
}

/* The end of an expired token's refusal line: its NAME and expiry. */
static const char *expired_hint(request_rec *r, const rv_dir_conf *conf,
                                int slot)
{
    char when[RV_TIME_TEXT];

    return apr_psprintf(
        r->pool, "; token \"%s\" expired at %s",
        rv_tokenset_name_at(conf->tokens, slot),
        rv_format_time(rv_tokenset_expiry_at(conf->tokens, slot), when));
}

/* One place builds every refusal: the status (RedoxDenyStatus, or 400 for
 * a bad challenge), WWW-Authenticate, REDOX_VERIFY, the log line and the
 * verdict.  slot: the token found, for a bad challenge or an expired token
 * (-1 otherwise).  again: the refusal of the request that r is the
 * ErrorDocument of, r itself in a verified scope: r is refused too,
 * quietly (logged at debug), and shown as that refusal; httpd answers with
 * its status. */
static int refuse(request_rec *r, const rv_dir_conf *conf, rv_outcome why,
                  const char *what, int slot, const rv_req_state *again)
{
    int status = why == RV_BAD_CHALLENGE         ? HTTP_BAD_REQUEST
                 : conf->deny_status != RV_UNSET ? conf->deny_status
                                                 : HTTP_UNAUTHORIZED;
    const char *name = rv_tokenset_name_at(conf->tokens, slot);
    const rv_req_state *st =
        record_verdict(r, conf, RV_V_REFUSED, status, why,
                       why == RV_BAD_CHALLENGE ? name : NULL);
    int quiet = again != NULL;
    const char *doc;

    if (again != NULL) {
        show_verdict(r->subprocess_env, again->outcome, again->name);
    }
    drop_presented(r, conf);
    if (why == RV_BAD_CHALLENGE) {
        ap_log_rerror(APLOG_MARK, quiet ? APLOG_DEBUG : APLOG_ERR, 0, r,
                      "redox_verify: handshake refused %s: token \"%s\" "
                      "accepted but the challenge is not 1 to %d of "
                      "A-Z a-z 0-9 . _ ~ -: uri \"%s\", scope %s",
                      st->outcome, name, RV_HS_CHALLENGE_MAX, r->uri,
                      conf->scope);
    }
    else {
        /* As short as httpd's own AH01630: the line is written for every
         * refused request, and its cost is in its length. */
        ap_log_rerror(APLOG_MARK, quiet ? APLOG_DEBUG : APLOG_ERR, 0, r,
                      "redox_verify: denied %s%s: uri \"%s\"%s", what,
                      st->outcome, r->uri,
                      why == RV_NO_TOKENS ? "; RedoxVerify is On but no "
                                            "RedoxVerificationToken is in "
                                            "effect here"
                      : why == RV_EXPIRED ? expired_hint(r, conf, slot)
                                          : "");
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "redox_verify: refused uri \"%s\" in vhost %s:%u, "
                      "scope %s",
                      r->uri, ap_get_server_name(r),
                      (unsigned)ap_get_server_port(r), conf->scope);
    }
    if (status == HTTP_UNAUTHORIZED) {
        apr_table_setn(r->err_headers_out,
                       (PROXYREQ_PROXY == r->proxyreq) ? "Proxy-Authenticate"
                                                       : "WWW-Authenticate",
                       rv_bearer_challenge(r->pool, ap_auth_name(r), why));
    }
    /* An ErrorDocument given as a full URL makes httpd answer a 403 or 404
     * with a redirect, which a client may follow to a 200: the refusal
     * answers with httpd's own text instead.  (A local one keeps the
     * status: see rv_keep_refusal_status.) */
    doc = ap_response_code_string(r, ap_index_of_response(status));
    if (doc != NULL && ap_is_url(doc)) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                      "redox_verify: not redirecting a refusal to the "
                      "ErrorDocument %s",
                      doc);
        ap_custom_response(r, status, ap_get_status_line(status));
    }
    return status;
}

/* A sub-request starts with a copy of its parent's environment, and an
 * internal redirect with REDIRECT_ copies of it (REDIRECT_REDIRECT_ after
 * two hops, and so on): a parent outside any verified scope (an SSI page
 * including a verified URL, a CGI redirecting to one) has the token
 * headers there in CGI form (HTTP_VERIFICATION_TOKEN).  A request that
 * runs in a verified scope gets none of them. */
static void strip_inherited_env(request_rec *r, const rv_dir_conf *conf)
{
    const apr_array_header_t *arr = apr_table_elts(r->subprocess_env);
    const apr_table_entry_t *e = (const apr_table_entry_t *)arr->elts;
    int i;

    for (i = 0; i < arr->nelts; i++) {
        const char *key = e[i].key;

        if (key != NULL
            && (rv_env_names_header(key, RV_VTOKEN)
                || rv_env_names_header(key, "Authorization")
                || (conf->source_header
                    && rv_env_names_header(key, conf->source_header)))) {
            apr_table_unset(r->subprocess_env, key);
            i = -1; /* unset moved the entries: start over */
        }
    }
}

/* auth: the request's Authorization, as the check read it.
 * bearer_checked: the check has just accepted this request from its own
 * headers in a mode that reads Authorization, so a Bearer there is the
 * accepted token (see rv_bearer_is_ours). */
static void accept_request(request_rec *r, const rv_dir_conf *conf,
                           const unsigned char *digest, const char *name,
                           const char *auth, int bearer_checked)
{
    rv_req_state *st = record_verdict(r, conf, RV_V_ACCEPTED, OK, RV_OK, name);

    memcpy(st->digest, digest, RV_DIGEST_LEN);
    if (conf->strip != 0) {
        apr_table_unset(r->headers_in, RV_VTOKEN);
        /* Only our own secret goes: any other Authorization (an OAuth 2.0
         * access token that mod_oauth2 or mod_auth_openidc checks next,
         * Basic credentials) stays as it came. */
        if (rv_bearer_is_ours(conf->tokens, auth, bearer_checked)) {
            apr_table_unset(r->headers_in, "Authorization");
        }
        /* An h2c upgrade would run this request again, as stream 1 of the
         * new connection, from a copy of the headers just stripped, and so
         * deny it: serve it as HTTP/1.1 (a server may ignore Upgrade). */
        if (ap_find_token(r->pool, apr_table_get(r->headers_in, "Upgrade"),
                          "h2c")) {
            apr_table_unset(r->headers_in, "Upgrade");
        }
    }
    if (r->main != NULL || r->prev != NULL) {
        strip_inherited_env(r, conf);
    }
    if (conf->source_header) {
        const char *conn = apr_table_get(r->headers_in, "Connection");

        unset_source_header(r, conf);
        apr_table_setn(r->headers_in, conf->source_header, name);
        /* A proxy drops the headers that Connection names (hop-by-hop):
         * the module's header must arrive. */
        if (conn != NULL) {
            const char *rest =
                rv_list_without(r->pool, conn, conf->source_header);

            if (rest == NULL) {
                apr_table_unset(r->headers_in, "Connection");
            }
            else if (rest != conn) {
                apr_table_setn(r->headers_in, "Connection", rest);
            }
        }
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                  "redox_verify: accepted \"%s\": uri \"%s\", scope %s", name,
                  r->uri, conf->scope);
}

/* ------------------------------------------------------------------ */
/* The handshake                                                       */

/* Reads a request body of at most RV_HS_BODY_MAX bytes into buf, chunked
 * or not.  Returns NULL, or why the body is not a handshake's. */
static const char *read_small_body(request_rec *r, char *buf, apr_size_t *got)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");
    const char *why = NULL;
    apr_bucket_brigade *bb;
    apr_off_t n;
    int eos = 0;

    *got = 0;
    if (cl != NULL
        && (!ap_parse_strict_length(&n, cl) || n > RV_HS_BODY_MAX)) {
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
 * the client sent it (before masking).  Returns DECLINED when the request
 * is not a handshake, else the final status (DONE once answered). */
static int answer_handshake(request_rec *r, const rv_dir_conf *conf,
                            const char *args)
{
    const char *token = NULL, *challenge = NULL, *why, *name;
    rv_outcome outcome;
    int slot, counting;

    /* httpd gives HEAD the method number of GET: header_only tells it. */
    if (r->method_number == M_GET && !r->header_only) {
        if (args == NULL) {
            return DECLINED;
        }
        why = rv_hs_parse_query(r->pool, args, &token, &challenge);
    }
    else if (r->method_number == M_POST
             && rv_hs_is_json(apr_table_get(r->headers_in, "Content-Type"))) {
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

    outcome =
        rv_hs_decide(conf->tokens, token, challenge, r->request_time, &slot);
    counting = first_verdict(r);
    if (counting && outcome == RV_OK) {
        count_token(r, conf, slot, RV_M_ANSWERED);
    }
    else if (counting) {
        count_outcome(r, RV_M_REFUSED(outcome));
    }
    name = rv_tokenset_name_at(conf->tokens, slot);
    if (outcome != RV_OK) {
        return refuse(r, conf, outcome, "handshake ", slot, NULL);
    }
    record_verdict(r, conf, RV_V_ANSWERED, DONE, RV_HANDSHAKE, name);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r,
                  "redox_verify: handshake answered for \"%s\": uri \"%s\", "
                  "scope %s",
                  name, r->uri, conf->scope);
    return answer_challenge(r, challenge);
}

/* A handshake is a request of its own that carries no token header (not
 * a sub-request: its answer would be part of another page); an
 * Authorization header that this scope does not read (RedoxTokenHeaders
 * verification-token: an OAuth 2.0 access token) does not count.  Looked
 * at once per request and scope.  Returns DECLINED when r is not one. */
static int handshake_if_one(request_rec *r, const rv_dir_conf *conf,
                            const char *args, const char *vtoken,
                            const char *auth)
{
    rv_req_state *st;

    if (conf->challenge == 0 || vtoken != NULL || r->main != NULL
        || (conf->mode != RV_HDR_VTOKEN && rv_is_bearer(auth))) {
        return DECLINED;
    }
    st = make_state(r);
    if (st->handshake_tried == conf) {
        return DECLINED;
    }
    st->handshake_tried = conf;
    return answer_handshake(r, conf, args);
}

/* The query as the client sent it, kept by rv_post_read_request before
 * it masked it; every copy of the query on r is masked on the way.  (Where
 * post_read_request did not run for the request, it is masked here.) */
static const char *mask_args(request_rec *r)
{
    request_rec *orig = original_request(r);
    rv_req_state *os = make_state(orig);

    if (!os->masked) {
        os->args_as_sent = orig->args;
        os->masked = 1;
        redact_query(orig);
    }
    if (r != orig) {
        redact_query(r);
    }
    return os->args_as_sent;
}

/* The header parser, first: a handshake in a verified scope is answered
 * before httpd's access control runs, so that Satisfy Any (which goes on
 * to authentication when an access checker's answer is not OK) cannot
 * replace the answer with another module's 401.  Runs for the request the
 * client sent and its internal redirects, not for sub-requests. */
static RV_NOINLINE int header_parser_in_scope(request_rec *r,
                                              const rv_dir_conf *conf)
{
    rv_req_state *st;

    if (!in_verified_scope(r, conf) || verdict_before(r) != NULL) {
        return DECLINED;
    }
    st = make_state(r);
    st->headers_of = conf;
    st->auth = apr_table_get(r->headers_in, "Authorization");
    st->vtoken = apr_table_get(r->headers_in, RV_VTOKEN);
    return handshake_if_one(r, conf, mask_args(r), st->vtoken, st->auth);
}

static int rv_header_parser(request_rec *r)
{
    const rv_dir_conf *conf = dir_conf(r);

    if (conf->verify == RV_UNSET || conf->challenge == 0) {
        return DECLINED;
    }
    return header_parser_in_scope(r, conf);
}

/* ------------------------------------------------------------------ */
/* The check                                                           */

/* Where in the request's life a check runs: a sub-request is deferred
 * only while it is a lookup, not once it runs. */
typedef enum { RV_AT_ACCESS, RV_AT_FIXUPS, RV_AT_HANDLER } rv_phase;

/* The check of a request in a verified scope.  Makes and records the
 * verdict and returns OK (accepted, or a sub-request deferred), DONE (a
 * handshake answered) or the refusal's status. */
static int verify_request(request_rec *r, const rv_dir_conf *conf,
                          rv_phase phase)
{
    const rv_req_state *prior = verdict_before(r);
    const rv_req_state *own = own_state(r);
    const char *auth, *vtoken;
    const char *args = mask_args(r);
    unsigned char digest[RV_DIGEST_LEN];
    rv_outcome outcome;
    int slot = -1;

    /* Read by the header parser in this scope, and nothing decided since:
     * the same headers. */
    if (own != NULL && own->headers_of == conf && own->verdict == RV_V_NONE) {
        auth = own->auth;
        vtoken = own->vtoken;
    }
    else {
        auth = apr_table_get(r->headers_in, "Authorization");
        vtoken = apr_table_get(r->headers_in, RV_VTOKEN);
    }
    if (prior == NULL) {
        int status = handshake_if_one(r, conf, args, vtoken, auth);

        if (status != DECLINED) {
            return status;
        }
    }

    if (prior != NULL && prior->verdict == RV_V_ACCEPTED) {
        /* Redirected or sub-requested after an accepted check: the
         * headers may be gone, the digest is not. */
        memcpy(digest, prior->digest, RV_DIGEST_LEN);
        if (rv_tokenset_count(conf->tokens) == 0) {
            outcome = RV_NO_TOKENS;
        }
        else {
            slot = rv_tokenset_find(conf->tokens, digest);
            outcome = slot >= 0 ? RV_OK : RV_WRONG_TOKEN;
        }
    }
    else {
        outcome = rv_verify_slot(
            conf->tokens,
            (rv_hdr_mode)(conf->mode != RV_UNSET ? conf->mode : RV_HDR_BOTH),
            auth, vtoken, &slot, digest);
    }
    if (outcome == RV_OK) {
        outcome = rv_check_expiry(conf->tokens, slot, r->request_time);
    }

    if (outcome != RV_OK && r->main != NULL && phase != RV_AT_HANDLER) {
        /* A sub-request is a lookup until it runs: mod_dir's and
         * mod_negotiation's of the file that will serve the request (and
         * then serves it, a handshake's included), mod_include's before it
         * runs the include.  The request that runs decides, once. */
        record_verdict(r, conf, RV_V_DEFERRED, OK, outcome, NULL);
        ap_log_rerror(APLOG_MARK, APLOG_TRACE1, 0, r,
                      "redox_verify: a lookup (sub-request) that would be "
                      "refused, %s: the request that runs decides",
                      rv_outcome_name(outcome));
        return OK;
    }
    if (outcome != RV_OK) {
        if (first_verdict(r)) {
            count_outcome(r, RV_M_DENIED(outcome));
        }
        return refuse(r, conf, outcome, "", slot,
                      prior != NULL && prior->verdict == RV_V_REFUSED ? prior
                                                                      : NULL);
    }
    if (first_verdict(r)) {
        count_token(r, conf, slot, RV_M_ACCEPTED);
    }
    accept_request(r, conf, digest, rv_tokenset_name_at(conf->tokens, slot),
                   auth,
                   (prior == NULL || prior->verdict != RV_V_ACCEPTED)
                       && conf->mode != RV_HDR_VTOKEN);
    return OK;
}

/* The access checker, first: every request in a verified scope is checked
 * before authentication, before any handler or backend sees it. */
static RV_NOINLINE int access_checker_for(request_rec *r,
                                          const rv_dir_conf *conf)
{
    if (in_verified_scope(r, conf)) {
        return verify_request(r, conf, RV_AT_ACCESS);
    }
    if (conf->source_header) {
        unset_source_header(r, conf);
    }
    return DECLINED;
}

static int rv_access_checker(request_rec *r)
{
    const rv_dir_conf *conf = dir_conf(r);

    if (conf->verify == RV_UNSET && conf->source_header == NULL) {
        return DECLINED;
    }
    return access_checker_for(r, conf);
}

/* The ErrorDocument of a refused request, when a CGI or a proxied
 * application serves it, would answer with that response's own status (a
 * 200): the refusal reaches the client as the refusal. */
static apr_status_t rv_keep_refusal_status(ap_filter_t *f,
                                           apr_bucket_brigade *bb)
{
    const rv_req_state *refused = f->ctx;

    if (f->r->status != refused->status) {
        f->r->status = refused->status;
        f->r->status_line = NULL;
    }
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

static ap_filter_rec_t *keep_refusal_status_filter;

/* An internal redirect (an ErrorDocument, a CGI's local Location) gets
 * httpd's REDIRECT_ copies of REDOX_VERIFY and REDOX_SOURCE: the access
 * log's %{REDOX_VERIFY}e, which reads the final request, must show the
 * verdict.  After a refusal, the response keeps the refusal's status. */
static RV_NOINLINE void carry_verdict(request_rec *r)
{
    const rv_req_state *v = verdict_before(r->prev);

    if (v == NULL) {
        return;
    }
    if (apr_table_get(r->subprocess_env, RV_ENV_OUTCOME) == NULL) {
        show_verdict(r->subprocess_env, v->outcome, v->name);
    }
    if (v->verdict == RV_V_REFUSED) {
        ap_add_output_filter_handle(keep_refusal_status_filter, (void *)v, r,
                                    r->connection);
    }
}

/* The fixups, first: the access checker can be bypassed (Satisfy Any with
 * a successful Require; skipped for a sub-request or redirect with the
 * same configuration) and a fast internal redirect by mod_negotiation
 * (MultiViews) changes the scope after it; the fixups run on every
 * request.  Fail closed. */
static RV_NOINLINE int fixups_in_scope(request_rec *r, const rv_dir_conf *conf)
{
    const rv_req_state *st;
    int status;

    if (r->prev != NULL) {
        carry_verdict(r);
    }
    if (!in_verified_scope(r, conf)) {
        return DECLINED;
    }
    st = own_state(r);
    if (st != NULL && st->scope == conf && st->verdict != RV_V_NONE) {
        if (st->verdict == RV_V_ACCEPTED || st->verdict == RV_V_DEFERRED) {
            return DECLINED;
        }
        /* Refused in the access checker, or a handshake answered or
         * refused there, then let through by Satisfy Any: the same
         * again, without a second run over a read body. */
        if (st->verdict == RV_V_REFUSED) {
            ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r,
                          "redox_verify: "
                          "denied request came past the access checker: "
                          "denied again");
        }
        return st->status;
    }
    status = verify_request(r, conf, RV_AT_FIXUPS);
    return status == OK ? DECLINED : status;
}

static int rv_fixups(request_rec *r)
{
    const rv_dir_conf *conf = dir_conf(r);

    if (r->prev == NULL && conf->verify == RV_UNSET) {
        return DECLINED;
    }
    return fixups_in_scope(r, conf);
}

static RV_NOINLINE int metrics_if_named(request_rec *r)
{
    if (strcmp(r->handler, RV_METRICS_HANDLER) != 0) {
        return DECLINED;
    }
    return rv_serve_metrics(r);
}

/* The metrics handler, after the check: the handler name's first
 * character turns nearly every request away without a strcmp call. */
static APR_INLINE int metrics_handler(request_rec *r)
{
    if (r->handler == NULL || r->handler[0] != RV_METRICS_HANDLER[0]) {
        return DECLINED;
    }
    return metrics_if_named(r);
}

/* The handler phase, first: the request that runs is checked where it
 * landed when its scope changed after the fixups (mod_dir's fast internal
 * redirect to its DirectoryIndex file), and a sub-request that was left
 * to it (a handshake's lookup) is decided now. */
static RV_NOINLINE int handler_in_scope(request_rec *r,
                                        const rv_dir_conf *conf)
{
    const rv_req_state *st;
    int status;

    if (!in_verified_scope(r, conf)) {
        return metrics_handler(r);
    }
    st = own_state(r);
    if (st == NULL || st->scope != conf || st->verdict == RV_V_NONE
        || st->verdict == RV_V_DEFERRED) {
        status = verify_request(r, conf, RV_AT_HANDLER);
        if (status != OK) {
            return status;
        }
    }
    return metrics_handler(r);
}

/* The module's one handler hook: the check, then the metrics handler. */
static int rv_handler(request_rec *r)
{
    const rv_dir_conf *conf = dir_conf(r);

    if (conf->verify != RV_UNSET) {
        return handler_in_scope(r, conf);
    }
    return metrics_handler(r);
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(rv_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(rv_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(rv_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(rv_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_read_request(rv_post_read_request, NULL, NULL,
                              APR_HOOK_REALLY_FIRST);
    ap_hook_header_parser(rv_header_parser, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_access_checker(rv_access_checker, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_fixups(rv_fixups, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_handler(rv_handler, NULL, NULL, APR_HOOK_REALLY_FIRST);
    /* before mod_log_config (APR_HOOK_MIDDLE) writes the access log */
    ap_hook_log_transaction(rv_log_transaction, NULL, NULL,
                            APR_HOOK_REALLY_FIRST);
    keep_refusal_status_filter = ap_register_output_filter(
        "REDOX_VERIFY_STATUS", rv_keep_refusal_status, NULL,
        AP_FTYPE_CONTENT_SET);
    rv_status_register_hooks(p);
}

AP_DECLARE_MODULE(redox_verify) = {
    STANDARD20_MODULE_STUFF,
    create_rv_dir_config,       /* per-directory config creator */
    merge_rv_dir_config,        /* per-directory config merger */
    create_rv_srv_config,       /* server config creator */
    merge_rv_srv_config,        /* server config merger */
    redox_verify_cmds,          /* command table */
    register_hooks,             /* set up the hooks */
    AP_MODULE_FLAG_ALWAYS_MERGE /* a record per server: see the merger */
};
