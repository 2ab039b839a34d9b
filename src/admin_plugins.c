/* Admin endpoints about plugins: every instance of the current generation
 * with its counters, one plugin with its effective config, and switching a
 * plugin on or off through a new generation (reload.c keeps the override
 * table and its precedence rule). Counters are per worker, written by that
 * worker alone and summed here without stopping it: each is one word, so
 * a sum is a snapshot at most a moment old. */
#include <stdio.h>
#include <string.h>

#include "admin_json.h"
#include "admin_routes.h"
#include "config.h"
#include "gen.h"
#include "metrics.h"
#include "plugin.h"
#include "reload.h"

/* The route whose list holds the instance's entry, or -1 for a global one. */
static long route_of(const struct sl_gen *g, size_t idx)
{
    const struct sl_plugin_conf *pc = g->plugins[idx]->conf;
    if (idx < g->nglobal_plugins)
        return -1;
    for (size_t r = 0; r < g->cfg->nroutes; r++)
        for (size_t k = 0; k < g->cfg->routes[r].nplugins; k++)
            if (&g->cfg->routes[r].plugins[k] == pc)
                return (long)r;
    return -1;
}

static void put_scope(struct sl_json *j, const struct sl_gen *g, size_t idx)
{
    long r = route_of(g, idx);
    char scope[32];
    sl_json_key(j, "scope");
    if (r < 0) {
        sl_json_string(j, "global");
        return;
    }
    snprintf(scope, sizeof scope, "routes[%ld]", r);
    sl_json_string(j, scope);
    const struct sl_route_conf *rc = &g->cfg->routes[r];
    sl_json_key(j, "route");
    sl_json_object_begin(j);
    sl_json_kv_string(j, "host", rc->host);
    sl_json_kv_string(j, "path", rc->path);
    sl_json_kv_string(j, "upstream", rc->upstream_name);
    sl_json_object_end(j);
}

/* Counted by plugin name since the process started (the metrics
 * registry's cells, which reloads keep), so an instance shows what every
 * instance of its name did before it too. */
static void put_stats(struct sl_json *j, const struct sl_plugin *p)
{
    struct sl_metrics_plugin_totals ph[SL_PHASE_COUNT], sum = {0};
    for (int i = 0; i < SL_PHASE_COUNT; i++) {
        sl_metrics_plugin_totals(p, (enum sl_phase)i, &ph[i]);
        sum.calls += ph[i].calls;
        sum.errors += ph[i].errors;
        sum.budget_kills += ph[i].budget_kills;
        sum.ns += ph[i].ns;
    }
    sl_json_key(j, "stats");
    sl_json_object_begin(j);
    sl_json_kv_uint(j, "calls", sum.calls);
    sl_json_kv_uint(j, "errors", sum.errors);
    sl_json_kv_uint(j, "time_ns", sum.ns);
    sl_json_kv_uint(j, "budget_kills", sum.budget_kills);
    sl_json_key(j, "phases");
    sl_json_object_begin(j);
    for (int i = 0; i < SL_PHASE_COUNT; i++) {
        if (!(p->phases & (1u << i)))
            continue;
        sl_json_key(j, sl_phase_name((enum sl_phase)i));
        sl_json_object_begin(j);
        sl_json_kv_uint(j, "calls", ph[i].calls);
        sl_json_kv_uint(j, "errors", ph[i].errors);
        sl_json_kv_uint(j, "time_ns", ph[i].ns);
        sl_json_object_end(j);
    }
    sl_json_object_end(j);
    sl_json_object_end(j);
}

static void put_override(struct sl_json *j, const char *name)
{
    int o = sl_reload_plugin_override(name);
    sl_json_key(j, "override");
    if (o < 0)
        sl_json_null(j);
    else
        sl_json_string(j, o ? "enabled" : "disabled");
}

/* One instance; detail adds its settings and its effective config. */
static void put_instance(struct sl_json *j, const struct sl_gen *g, size_t idx, bool detail)
{
    const struct sl_plugin *p = g->plugins[idx];
    sl_json_object_begin(j);
    sl_json_kv_string(j, "name", p->name);
    sl_json_kv_string(j, "kind", p->kind->name);
    sl_json_kv_string(j, "version", p->version);
    sl_json_kv_int(j, "priority", p->priority);
    sl_json_key(j, "phases");
    sl_json_array_begin(j);
    for (int ph = 0; ph < SL_PHASE_COUNT; ph++)
        if (p->phases & (1u << ph))
            sl_json_string(j, sl_phase_name((enum sl_phase)ph));
    sl_json_array_end(j);
    put_scope(j, g, idx);
    sl_json_kv_bool(j, "enabled", p->conf->enabled);
    put_override(j, p->name);
    sl_json_kv_string(j, "source", p->source);
    sl_json_kv_string(j, "sha256", p->sha256[0] ? p->sha256 : NULL);
    sl_json_kv_time(j, "loaded_at", p->loaded_ms);
    if (detail) {
        char at[512];
        snprintf(at, sizeof at, "%s:%d:%d", g->cfg->path ? g->cfg->path : "-", p->conf->line,
                 p->conf->col);
        sl_json_kv_string(j, "defined_at", at);
        sl_json_kv_string(j, "on_error", p->on_error == SL_ON_ERROR_CONTINUE ? "continue" : "fail");
        sl_json_kv_int(j, "timeout_ms", p->conf->timeout_ms);
        sl_json_kv_int(j, "memory_limit_mb", p->conf->memory_limit_mb);
        sl_json_key(j, "config");
        sl_json_value(j, &p->conf->config);
    }
    put_stats(j, p);
    sl_json_object_end(j);
}

void sl_admin_get_plugins(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    (void)rq;
    struct sl_gen *g = sl_gen_acquire();
    if (g == NULL) {
        sl_admin_error(rs, 503, "no configuration is running yet");
        return;
    }
    struct sl_json j;
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "generation");
    sl_json_uint(&j, g->id);
    sl_json_key(&j, "plugins");
    sl_json_array_begin(&j);
    for (size_t i = 0; i < g->nplugins; i++)
        put_instance(&j, g, i, false);
    sl_json_array_end(&j);
    sl_json_object_end(&j);
    sl_gen_unref(g);
}

static size_t count_named(const struct sl_gen *g, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < g->nplugins; i++)
        n += strcmp(g->plugins[i]->name, name) == 0;
    return n;
}

/* Every instance of name in the current generation; detail as for
 * put_instance. Answers 404 when there is none. */
static void put_named(struct sl_admin_resp *rs, const char *name, bool detail)
{
    struct sl_gen *g = sl_gen_acquire();
    if (g == NULL || count_named(g, name) == 0) {
        sl_admin_error(rs, 404, "no plugin named '%s' in the running configuration", name);
        sl_gen_unref(g);
        return;
    }
    struct sl_json j;
    sl_buf_clear(rs->body);
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "name");
    sl_json_string(&j, name);
    sl_json_key(&j, "generation");
    sl_json_uint(&j, g->id);
    put_override(&j, name);
    sl_json_key(&j, "instances");
    sl_json_array_begin(&j);
    for (size_t i = 0; i < g->nplugins; i++)
        if (strcmp(g->plugins[i]->name, name) == 0)
            put_instance(&j, g, i, detail);
    sl_json_array_end(&j);
    sl_json_object_end(&j);
    sl_gen_unref(g);
}

void sl_admin_get_plugin(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    put_named(rs, rq->name, true);
}

static void do_switch(const struct sl_admin_req *rq, struct sl_admin_resp *rs,
                      enum sl_plugin_switch to)
{
    char err[4096];
    uint64_t id = 0;
    int rc = sl_reload_switch_plugin(rq->name, to, &id, err, sizeof err);
    if (rc == SL_RELOAD_NO_PLUGIN) {
        sl_admin_error(rs, 404, "no plugin named '%s' in the running configuration", rq->name);
    } else if (rc == SL_RELOAD_NO_CHANGE) {
        if (to == SL_PLUGIN_SWITCH_RESET)
            sl_admin_error(rs, 409, "plugin '%s' has no admin override", rq->name);
        else
            sl_admin_error(rs, 409, "plugin '%s' is already %s", rq->name,
                           to == SL_PLUGIN_SWITCH_ON ? "enabled" : "disabled");
    } else if (rc < 0) {
        sl_admin_reload_answer(rs, rc, id, err);
    } else {
        put_named(rs, rq->name, false);
    }
}

/* The action endpoints take no parameters: an empty body or {}. */
static int no_params(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    static const char *const none[] = { NULL };
    struct sl_value body;
    if (sl_admin_body_object(rq, rs, &body) < 0)
        return -1;
    int rc = sl_admin_body_only(&body, rs, none);
    sl_value_free(&body);
    return rc;
}

void sl_admin_post_plugin_enable(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    if (no_params(rq, rs) == 0)
        do_switch(rq, rs, SL_PLUGIN_SWITCH_ON);
}

void sl_admin_post_plugin_disable(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    if (no_params(rq, rs) == 0)
        do_switch(rq, rs, SL_PLUGIN_SWITCH_OFF);
}

void sl_admin_post_plugin_reset(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    if (no_params(rq, rs) == 0)
        do_switch(rq, rs, SL_PLUGIN_SWITCH_RESET);
}

void sl_admin_patch_plugin(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    static const char *const allowed[] = { "enabled", NULL };
    struct sl_value body;
    if (sl_admin_body_object(rq, rs, &body) < 0)
        return;
    if (sl_admin_body_only(&body, rs, allowed) < 0) {
        sl_value_free(&body);
        return;
    }
    const struct sl_value *en = sl_value_get(&body, "enabled");
    if (en == NULL || en->kind != SL_VALUE_BOOL) {
        sl_value_free(&body);
        sl_admin_error(rs, 400, "the body must be {\"enabled\": true} or {\"enabled\": false}");
        return;
    }
    bool on = en->b;
    sl_value_free(&body);
    do_switch(rq, rs, on ? SL_PLUGIN_SWITCH_ON : SL_PLUGIN_SWITCH_OFF);
}

void sl_admin_post_plugin_reload(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    if (no_params(rq, rs) < 0)
        return;
    struct sl_gen *g = sl_gen_acquire();
    size_t n = g != NULL ? count_named(g, rq->name) : 0;
    sl_gen_unref(g);
    if (n == 0) {
        sl_admin_error(rs, 404, "no plugin named '%s' in the running configuration", rq->name);
        return;
    }
    /* A generation is built whole: reloading one plugin is a forced
     * reload, which loads every plugin afresh, this one included. */
    char err[4096];
    uint64_t id = 0;
    int rc = sl_reload_force("admin", &id, err, sizeof err);
    sl_admin_reload_answer(rs, rc, id, err);
}
