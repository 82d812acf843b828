/* Licensed to the Apache Software Foundation (ASF) under the terms of the
 * Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License.  You may obtain a copy of the
 * License at http://www.apache.org/licenses/LICENSE-2.0 (see LICENSE).
 *
 * What the two glue files of mod_redox_verify share: mod_redox_verify.c
 * (the configuration and the request path) and mod_redox_verify_status.c
 * (the counters' layout, the metrics handler and the server-status
 * section).
 */

#ifndef MOD_REDOX_VERIFY_H
#define MOD_REDOX_VERIFY_H

#include "httpd.h"
#include "http_config.h"

#include "rv_core.h"
#include "rv_metrics.h"

extern module AP_MODULE_DECLARE_DATA redox_verify_module;

/* The per-request hooks run for every request: each keeps its test of
 * whether it has work inline and its work in a function of its own, so
 * that a request it has nothing to do for costs a few instructions. */
#if defined(__GNUC__)
#define RV_NOINLINE __attribute__((noinline))
#else
#define RV_NOINLINE
#endif

/* A scope's token set as configured.  The setter registers each set with
 * the server it is configured in; post_config plans and lays out the
 * counters once the whole configuration is read. */
typedef struct {
    rv_plan_tokens plan; /* the set, and where its tokens' counters are */
    server_rec *server;  /* where the set is configured */
    /* The set's longest token, checked against LimitRequestFieldSize. */
    apr_size_t longest;
    const char *longest_name;
    const char *longest_where; /* file:line */
} rv_token_conf;

typedef struct {
    apr_uint32_t ordinal; /* position in the server list */
    apr_uint32_t block;   /* first counter of the VirtualHost block */
    int verified;         /* a RedoxVerify On applies in this server */
} rv_srv_conf;

/* mod_redox_verify_status.c */

/* The counters of this generation (the store's newest segment), where the
 * request path counts. */
extern rv_counter *rv_counters;
/* Plans the counters of the configuration (token_confs: rv_token_conf *,
 * every scope's set) and lays them out; OK, or the failure's status. */
int rv_status_post_config(apr_pool_t *pconf, server_rec *s,
                          const apr_array_header_t *token_confs);
/* SetHandler redox-verify-metrics: the Prometheus text format.  Who may
 * read it is up to the scope's Require lines.  Called from the module's
 * one handler hook (rv_handler), after the check of a verified scope. */
#define RV_METRICS_HANDLER "redox-verify-metrics"
int rv_serve_metrics(request_rec *r);
/* The server-status section and the counters' own
 * pre_config and pre_mpm work. */
void rv_status_register_hooks(apr_pool_t *p);

#endif /* MOD_REDOX_VERIFY_H */
