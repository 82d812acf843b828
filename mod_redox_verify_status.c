/* Licensed to the Apache Software Foundation (ASF) under the terms of the
 * Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License.  You may obtain a copy of the
 * License at http://www.apache.org/licenses/LICENSE-2.0 (see LICENSE).
 *
 * mod_redox_verify_status: the counters of mod_redox_verify as httpd sees
 * them.  Once the configuration is read it describes the servers and the
 * token sets to rv_metrics's plan and lays the counters out in the shared
 * store (again after a hard restart); it shows them to Prometheus
 * (SetHandler redox-verify-metrics) and in mod_status's server-status
 * page.  The request path counts with rv_counters and the indices the
 * layout leaves in the server and token-set configurations.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_request.h"
#include "ap_listen.h"
#include "mod_status.h"
#include "scoreboard.h"

#include "apr_optional_hooks.h"
#include "apr_strings.h"

#include "mod_redox_verify.h"

/* Log lines as redox_verify's (LogLevel redox_verify:debug), as the
 * module's own file does through AP_DECLARE_MODULE. */
APLOG_USE_MODULE(redox_verify);

/* The counters of this generation.  Module globals are set in the parent
 * before it forks, so every child inherits them; the store itself lives in
 * the process pool and outlives generations (see rv_status_post_config). */
static rv_store *counter_store;
rv_counter *rv_counters; /* the store's newest segment */
/* What is exported and where it is counted, and the servers it was
 * planned for (by ordinal), in pconf: pre_mpm lays the counters out afresh
 * from them after a hard restart. */
static rv_plan *counter_plan;
static server_rec *planned_servers;
/* Before the first plan (httpd's dry run), nothing is exported. */
static rv_plan no_plan;

static APR_INLINE const rv_plan *exported(void)
{
    return counter_plan ? counter_plan : &no_plan;
}

static rv_srv_conf *srv_conf_of(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &redox_verify_module);
}

/* The vhost label: ServerName and the port the server is on, as
 * "apache2 -S" shows it: a VirtualHost's address port, else the port of
 * the ServerName, else (the main server) the first Listen port.  Not the
 * request's port: that comes from the Host header. */
static const char *vhost_label(apr_pool_t *p, const server_rec *s)
{
    apr_port_t port = s->port;

    if (s->is_virtual && s->addrs != NULL && s->addrs->host_port != 0) {
        port = s->addrs->host_port;
    }
    if (port == 0 && ap_listeners != NULL) {
        const ap_listen_rec *l = ap_listeners;

        while (l->next != NULL) { /* kept newest first */
            l = l->next;
        }
        port = l->bind_addr ? l->bind_addr->port : 0;
    }
    return apr_psprintf(p, "%s:%u",
                        s->server_hostname ? s->server_hostname : "",
                        (unsigned)port);
}

/* The configuration as the plan reads it: every server by ordinal (its
 * label, and whether a verified scope applies there) and every token set
 * with the ordinal of the server it is configured in, 0 for the main
 * server.  The ordinals are kept in the server configurations, where the
 * request path finds its counters. */
static rv_plan *describe_configuration(apr_pool_t *pconf, server_rec *s,
                                       const apr_array_header_t *token_confs)
{
    rv_plan *plan = apr_pcalloc(pconf, sizeof(*plan));
    rv_plan_tokens **sets;
    server_rec *v;
    apr_uint32_t i;
    int t;

    for (v = s; v != NULL; v = v->next) {
        plan->nvhosts++;
    }
    plan->vhosts = apr_pcalloc(pconf, plan->nvhosts * sizeof(*plan->vhosts));
    for (v = s, i = 0; v != NULL; v = v->next, i++) {
        rv_srv_conf *sc = srv_conf_of(v);

        plan->vhosts[i].label = vhost_label(pconf, v);
        plan->vhosts[i].counted = sc->verified;
        sc->ordinal = i;
    }
    plan->ntokens = token_confs ? token_confs->nelts : 0;
    plan->tokens = sets =
        apr_palloc(pconf, (plan->ntokens + 1) * sizeof(*sets));
    for (t = 0; t < plan->ntokens; t++) {
        rv_token_conf *tc = APR_ARRAY_IDX(token_confs, t, rv_token_conf *);

        /* A VirtualHost with a token set has a configuration of its own:
         * its ordinal is its own. */
        tc->plan.vhost =
            tc->server == s ? 0 : srv_conf_of(tc->server)->ordinal;
        sets[t] = &tc->plan;
    }
    return plan;
}

/* Lays the planned counters out in the store (unless rv already says
 * planning failed) and says so; a start that cannot have its counters
 * fails.  The children inherit the indices and the store's newest
 * segment. */
static int lay_out_or_fail(apr_status_t rv, server_rec *s, const char *what)
{
    if (rv == APR_SUCCESS) {
        server_rec *v;
        apr_uint32_t i;

        rv = rv_plan_lay_out(counter_plan, counter_store);
        rv_counters = rv_store_counters(counter_store);
        for (v = planned_servers, i = 0; v != NULL; v = v->next, i++) {
            if (counter_plan->vhosts[i].counted) {
                srv_conf_of(v)->block = counter_plan->vhosts[i].block;
            }
        }
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "redox_verify: cannot create the shared memory for %u "
                     "counters",
                     (unsigned)rv_store_used(counter_store));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "redox_verify: %s%d series, %u counters in %d shared "
                 "memory segment(s)",
                 what, counter_plan->nseries,
                 (unsigned)rv_store_used(counter_store),
                 rv_store_segments(counter_store));
    return OK;
}

/* Once per generation with the whole configuration read (not for httpd's
 * dry run at startup), from the module's post_config.
 *
 * The store lives in the process pool: across a graceful restart a series
 * keeps its counters, and the old generation's children, still finishing
 * their requests, count into the same words as the new ones. */
int rv_status_post_config(apr_pool_t *pconf, server_rec *s,
                          const apr_array_header_t *token_confs)
{
    void *data = NULL;

    apr_pool_userdata_get(&data, RV_STORE_KEY, s->process->pool);
    counter_store = data;
    if (counter_store == NULL) {
        counter_store = rv_store_make(s->process->pool);
        apr_pool_userdata_set(counter_store, RV_STORE_KEY,
                              apr_pool_cleanup_null, s->process->pool);
    }
    counter_plan = describe_configuration(pconf, s, token_confs);
    planned_servers = s;
    return lay_out_or_fail(rv_plan_series(pconf, counter_plan), s, "");
}

/* A new generation: forget the last one's (freed) plan. */
static int rv_status_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                                apr_pool_t *ptemp)
{
    (void)pconf;
    (void)plog;
    (void)ptemp;
    counter_plan = NULL;
    planned_servers = NULL;
    return OK;
}

/* pre_mpm runs at startup and after a hard restart (SIGHUP, apachectl
 * restart), never after a graceful one, and only once every child of the
 * old generation is gone: the counters start again from zero, as
 * mod_status's do, in one segment that holds only this configuration's
 * series. */
static int rv_status_pre_mpm(apr_pool_t *p, ap_scoreboard_e sb_type)
{
    (void)p;
    (void)sb_type;
    if (counter_store == NULL || counter_plan == NULL) {
        return OK;
    }
    rv_store_reset(counter_store);
    return lay_out_or_fail(APR_SUCCESS, ap_server_conf,
                           "counters start from zero (startup or hard "
                           "restart): ");
}

static apr_uint64_t *read_values(apr_pool_t *p, const rv_plan *plan)
{
    apr_uint64_t *values =
        apr_palloc(p, (plan->nseries + 1) * sizeof(*values));
    int i;

    for (i = 0; i < plan->nseries; i++) {
        values[i] =
            rv_series_value(counter_store, &plan->series[i], plan->consts);
    }
    return values;
}

int rv_serve_metrics(request_rec *r)
{
    const rv_plan *plan;
    const char *text;
    apr_size_t len;
    int rv;

    ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if ((rv = ap_discard_request_body(r)) != OK) {
        return rv;
    }
    plan = exported();
    text = rv_render_prometheus(r->pool, plan->series, plan->nseries,
                                read_values(r->pool, plan));
    len = strlen(text);
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, len);
    if (!r->header_only) {
        ap_rwrite(text, (int)len, r);
    }
    return OK;
}

/* A section of mod_status's server-status page: key/value lines for
 * ?auto, HTML otherwise. */
static int rv_status_hook(request_rec *r, int flags)
{
    const rv_plan *plan = exported();
    apr_uint64_t *values;

    if (counter_store == NULL || plan->nseries == 0) {
        return OK; /* no verified scope: no section */
    }
    values = read_values(r->pool, plan);
    if (flags & AP_STATUS_SHORT) {
        ap_rputs(rv_render_status_auto(r->pool, plan->series, plan->nseries,
                                       values),
                 r);
    }
    else {
        ap_rputs(rv_render_status_html(r->pool, plan->series, plan->nseries,
                                       values, flags & AP_STATUS_NOTABLE),
                 r);
    }
    return OK;
}

void rv_status_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(rv_status_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_mpm(rv_status_pre_mpm, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, rv_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
}
