/* Admin endpoints about the running process: liveness and readiness, the
 * status line, reloads, the live generations and the upstreams with their
 * pools. Per-worker numbers (in-flight pins, pool counts) are written by
 * each worker alone and read here without stopping it: each is one word,
 * so a reading is a snapshot at most a moment old, never torn. */
#include <string.h>
#include <unistd.h>

#include "admin_json.h"
#include "admin_routes.h"
#include "config.h"
#include "gen.h"
#include "lua_vm.h"
#include "metrics.h"
#include "plugin_native.h"
#include "pool.h"
#include "reload.h"
#include "upstream.h"
#include "worker.h"

static void put_status(struct sl_admin_resp *rs, int status, const char *text)
{
    struct sl_json j;
    rs->status = status;
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "status");
    sl_json_string(&j, text);
    sl_json_object_end(&j);
}

void sl_admin_get_healthz(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    (void)rq;
    put_status(rs, 200, "ok");
}

void sl_admin_get_readyz(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    (void)rq;
    if (sl_admin_is_draining())
        put_status(rs, 503, "draining");
    else if (sl_gen_peek() == NULL)
        put_status(rs, 503, "starting");
    else
        put_status(rs, 200, "ready");
}

/* The outcome fields every reload answer and the status share. */
static void put_reload_status(struct sl_json *j, const struct sl_reload_status *st)
{
    sl_json_key(j, "reloads");
    sl_json_object_begin(j);
    sl_json_kv_uint(j, "ok", st->ok);
    sl_json_kv_uint(j, "failed", st->failed);
    sl_json_kv_uint(j, "unchanged", st->unchanged);
    sl_json_key(j, "last");
    if (!st->attempted) {
        sl_json_null(j);
    } else {
        sl_json_object_begin(j);
        sl_json_kv_time(j, "at", st->last_ms);
        sl_json_kv_string(j, "reason", st->last_reason);
        sl_json_kv_bool(j, "ok", st->last_ok);
        sl_json_kv_bool(j, "unchanged", st->last_unchanged);
        sl_json_kv_string(j, "error", st->last_error[0] ? st->last_error : NULL);
        sl_json_object_end(j);
    }
    sl_json_object_end(j);
}

/* Lua VMs and native plugin copies: open now, and made/released since
 * start, so a leak across reloads shows as open growing. */
static void put_loaded_counts(struct sl_json *j)
{
    uint64_t created, closed, loaded, unloaded;
    sl_lua_vm_counts(&created, &closed);
    sl_native_counts(&loaded, &unloaded);
    sl_json_key(j, "lua_vms");
    sl_json_object_begin(j);
    sl_json_kv_uint(j, "open", created - closed);
    sl_json_kv_uint(j, "created", created);
    sl_json_kv_uint(j, "closed", closed);
    sl_json_object_end(j);
    sl_json_key(j, "native_copies");
    sl_json_object_begin(j);
    sl_json_kv_uint(j, "open", loaded - unloaded);
    sl_json_kv_uint(j, "loaded", loaded);
    sl_json_kv_uint(j, "unloaded", unloaded);
    sl_json_object_end(j);
}

void sl_admin_get_status(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    (void)rq;
    struct sl_reload_status st;
    sl_reload_get_status(&st);
    struct sl_gen *g = sl_gen_acquire();
    struct sl_json j;
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "version");
    sl_json_string(&j, sl_admin_version());
    sl_json_key(&j, "pid");
    sl_json_int(&j, getpid());
    sl_json_key(&j, "uptime_ms");
    sl_json_int(&j, sl_admin_uptime_ms());
    sl_json_key(&j, "workers");
    sl_json_int(&j, sl_admin_nworkers());
    sl_json_key(&j, "config");
    sl_json_string(&j, g ? g->cfg->path : NULL);
    sl_json_key(&j, "generation");
    if (g != NULL)
        sl_json_uint(&j, g->id);
    else
        sl_json_null(&j);
    sl_json_key(&j, "live_generations");
    sl_json_uint(&j, sl_gen_live_count());
    sl_json_key(&j, "draining");
    sl_json_bool(&j, sl_admin_is_draining());
    put_loaded_counts(&j);
    put_reload_status(&j, &st);
    sl_json_object_end(&j);
    sl_gen_unref(g);
}

void sl_admin_reload_answer(struct sl_admin_resp *rs, int rc, uint64_t id, const char *err)
{
    struct sl_json j;
    if (rc < 0) {
        sl_buf_clear(rs->body);
        rs->status = 500;
        sl_json_init(&j, rs->body);
        sl_json_object_begin(&j);
        sl_json_key(&j, "error");
        sl_json_string(&j, err[0] ? err : "reload failed");
        sl_json_key(&j, "errors");
        sl_json_array_begin(&j);
        for (const char *p = err; *p != '\0';) {
            size_t n = strcspn(p, "\n");
            if (n > 0)
                sl_json_string_n(&j, p, n);
            p += n;
            if (*p == '\n')
                p++;
        }
        sl_json_array_end(&j);
        /* The generation that keeps serving. */
        sl_json_key(&j, "generation");
        struct sl_gen *cur = sl_gen_acquire();
        if (cur != NULL)
            sl_json_uint(&j, cur->id);
        else
            sl_json_null(&j);
        sl_gen_unref(cur);
        sl_json_object_end(&j);
        return;
    }
    rs->status = 200;
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "generation");
    sl_json_uint(&j, id);
    sl_json_key(&j, "changed");
    sl_json_bool(&j, rc == 0);
    sl_json_object_end(&j);
}

void sl_admin_post_reload(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    static const char *const allowed[] = { "force", NULL };
    struct sl_value body;
    if (sl_admin_body_object(rq, rs, &body) < 0)
        return;
    const struct sl_value *force = sl_value_get(&body, "force");
    if (sl_admin_body_only(&body, rs, allowed) < 0) {
        sl_value_free(&body);
        return;
    }
    if (force != NULL && force->kind != SL_VALUE_BOOL) {
        sl_value_free(&body);
        sl_admin_error(rs, 400, "'force' must be true or false");
        return;
    }
    bool forced = force != NULL && force->b;
    sl_value_free(&body);
    char err[4096];
    uint64_t id = 0;
    int rc = forced ? sl_reload_force("admin", &id, err, sizeof err)
                    : sl_reload_run("admin", &id, err, sizeof err);
    sl_admin_reload_answer(rs, rc, id, err);
}

void sl_admin_get_metrics(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    (void)rq;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (sl_metrics_render(rs->body) < 0)
        sl_admin_error(rs, 500, "out of memory");
}

/* --- generations ----------------------------------------------------------------- */

struct gen_walk {
    struct sl_json *j;
    const struct sl_gen *current;       /* compared only */
    int64_t now_ms;
};

/* The distinct plugin modules a generation loaded (instances of one file
 * share it). */
static void put_modules(struct sl_json *j, const struct sl_gen *g)
{
    sl_json_array_begin(j);
    for (size_t i = 0; i < g->nplugins; i++) {
        const struct sl_plugin *p = g->plugins[i];
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = g->plugins[k]->source != NULL && p->source != NULL &&
                   strcmp(g->plugins[k]->source, p->source) == 0;
        if (seen)
            continue;
        sl_json_object_begin(j);
        sl_json_kv_string(j, "name", p->name);
        sl_json_kv_string(j, "kind", p->kind->name);
        sl_json_kv_string(j, "version", p->version);
        sl_json_kv_string(j, "source", p->source);
        sl_json_kv_string(j, "sha256", p->sha256[0] ? p->sha256 : NULL);
        sl_json_object_end(j);
    }
    sl_json_array_end(j);
}

static void put_generation(const struct sl_gen *g, void *arg)
{
    struct gen_walk *w = arg;
    struct sl_json *j = w->j;
    sl_json_object_begin(j);
    sl_json_kv_uint(j, "id", g->id);
    sl_json_kv_bool(j, "current", g == w->current);
    sl_json_kv_time(j, "created_at", g->created_ms);
    sl_json_kv_int(j, "age_ms", w->now_ms - g->created_ms);
    sl_json_kv_uint(j, "in_flight", sl_gen_inflight(g));
    sl_json_kv_uint(j, "plugin_instances", g->nplugins);
    sl_json_key(j, "modules");
    put_modules(j, g);
    sl_json_object_end(j);
}

void sl_admin_get_generations(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    (void)rq;
    struct sl_json j;
    struct gen_walk w = { .j = &j, .current = sl_gen_peek(), .now_ms = sl_admin_now_ms() };
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "generations");
    sl_json_array_begin(&j);
    sl_gen_foreach_live(put_generation, &w);
    sl_json_array_end(&j);
    sl_json_object_end(&j);
}

/* --- upstreams --------------------------------------------------------------------- */

struct conn_counts {
    size_t active, idle;
};

/* Sums a backend's pooled connections over the workers: pools are keyed
 * by address and outlive generations, and a worker only ever prepends to
 * its list, whose atomic head publishes each pool whole. */
static struct conn_counts count_conns(struct sl_worker *ws, int n, const struct sl_addr *addr)
{
    struct conn_counts cc = {0};
    for (int i = 0; i < n; i++) {
        for (const struct sl_pool *p = atomic_load(&ws[i].pools); p != NULL; p = p->next) {
            if (p->addrlen != addr->len || memcmp(&p->addr, &addr->ss, addr->len) != 0)
                continue;
            size_t open = p->nopen, idle = p->nidle;
            cc.idle += idle;
            cc.active += open > idle ? open - idle : 0;
            break;
        }
    }
    return cc;
}

static void put_backend(struct sl_json *j, const struct sl_backend *b, struct sl_worker *ws,
                        int nws, int64_t now_ms)
{
    int64_t until = atomic_load_explicit(&b->down_until_ms, memory_order_relaxed);
    sl_json_object_begin(j);
    sl_json_kv_string(j, "address", b->conf->addr.text);
    sl_json_kv_int(j, "weight", b->conf->weight);
    sl_json_kv_string(j, "health", until > now_ms ? "cooling_down" : "up");
    sl_json_kv_int(j, "cooldown_left_ms", until > now_ms ? until - now_ms : 0);
    if (ws != NULL) {
        struct conn_counts cc = count_conns(ws, nws, &b->conf->addr);
        sl_json_kv_uint(j, "active", cc.active);
        sl_json_kv_uint(j, "idle", cc.idle);
    }
    sl_json_object_end(j);
}

void sl_admin_get_upstreams(const struct sl_admin_req *rq, struct sl_admin_resp *rs)
{
    (void)rq;
    struct sl_gen *g = sl_gen_acquire();
    if (g == NULL) {
        sl_admin_error(rs, 503, "no configuration is running yet");
        return;
    }
    int nws = 0;
    struct sl_worker *ws = sl_admin_workers_lock(&nws);
    if (ws == NULL) {
        sl_gen_unref(g);
        sl_admin_error(rs, 503, "shutting down");
        return;
    }
    int64_t now_ms = sl_admin_now_ms();
    struct sl_json j;
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "generation");
    sl_json_uint(&j, g->id);
    sl_json_key(&j, "upstreams");
    sl_json_array_begin(&j);
    for (size_t i = 0; i < g->nupstreams; i++) {
        const struct sl_upstream *u = &g->upstreams[i];
        sl_json_object_begin(&j);
        sl_json_key(&j, "name");
        sl_json_string(&j, u->conf->name);
        sl_json_key(&j, "balance");
        sl_json_string(&j, u->lb->name);
        sl_json_key(&j, "keepalive_max_idle");
        sl_json_int(&j, u->conf->keepalive_max_idle);
        sl_json_key(&j, "backends");
        sl_json_array_begin(&j);
        for (size_t k = 0; k < u->nbackends; k++)
            put_backend(&j, &u->backends[k], ws, nws, now_ms);
        sl_json_array_end(&j);
        sl_json_object_end(&j);
    }
    sl_json_array_end(&j);
    sl_json_object_end(&j);
    sl_admin_workers_unlock();
    sl_gen_unref(g);
}
