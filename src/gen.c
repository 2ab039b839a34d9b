#include "gen.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#include "config.h"
#include "metrics.h"
#include "plugin_load.h"
#include "shdict.h"

static _Atomic(struct sl_gen *) current;
static atomic_uint_fast64_t next_id = 1;
/* Generations allocated and not yet freed: the current one, those workers
 * or requests still hold, and any being built. */
static atomic_size_t live;
/* Orders publish against acquire so a worker never refs a generation whose
 * last reference is being dropped. Taken only when the generation changes,
 * never per request. */
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;
/* The registry of live generations, oldest first, for the admin API. Taken
 * when a generation is built or freed and by the admin thread, never per
 * request. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_gen *live_head, *live_tail;

static void live_add(struct sl_gen *g)
{
    pthread_mutex_lock(&live_lock);
    g->live_prev = live_tail;
    g->live_next = NULL;
    if (live_tail != NULL)
        live_tail->live_next = g;
    else
        live_head = g;
    live_tail = g;
    g->registered = true;
    pthread_mutex_unlock(&live_lock);
}

static void live_remove(struct sl_gen *g)
{
    if (!g->registered)
        return;
    pthread_mutex_lock(&live_lock);
    if (g->live_prev != NULL)
        g->live_prev->live_next = g->live_next;
    else
        live_head = g->live_next;
    if (g->live_next != NULL)
        g->live_next->live_prev = g->live_prev;
    else
        live_tail = g->live_prev;
    g->registered = false;
    pthread_mutex_unlock(&live_lock);
}

void sl_gen_foreach_live(void (*fn)(const struct sl_gen *g, void *arg), void *arg)
{
    pthread_mutex_lock(&live_lock);
    for (const struct sl_gen *g = live_head; g != NULL; g = g->live_next)
        fn(g, arg);
    pthread_mutex_unlock(&live_lock);
}

size_t sl_gen_inflight(const struct sl_gen *g)
{
    size_t n = 0;
    for (size_t i = 0; i < g->npins; i++)
        n += atomic_load_explicit(&g->pins[i].n, memory_order_relaxed);
    return n;
}

static void gen_free(struct sl_gen *g)
{
    live_remove(g);
    sl_metrics_gen_detach(g);
    if (g->route_chains != NULL)
        for (size_t i = 0; i < g->cfg->nroutes; i++)
            sl_chain_fini(&g->route_chains[i]);
    free(g->route_chains);
    sl_chain_fini(&g->global_chain);
    for (size_t i = 0; i < g->nplugins; i++)
        sl_plugin_free(g->plugins[i]);
    free(g->plugins);
    /* After the plugins: their VMs hold references to the dictionaries. */
    sl_shdict_set_free(g->shdicts);
    sl_router_free(g->router);
    free(g->upstreams);
    free(g->backends);
    sl_config_free(g->cfg);
    free(g->pins);
    free(g);
    atomic_fetch_sub(&live, 1);
}

/* One chain per route, built once here so no request ever sorts. */
static int build_chains(struct sl_gen *g)
{
    if (g->nplugins == 0)
        return 0;
    const struct sl_config *cfg = g->cfg;
    if (sl_chain_build(&g->global_chain, g->plugins, g->nglobal_plugins, NULL, 0, NULL, 0) < 0)
        return -1;
    g->route_chains = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *g->route_chains);
    if (g->route_chains == NULL)
        return -1;
    size_t next = g->nglobal_plugins;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct sl_route_conf *r = &cfg->routes[i];
        if (sl_chain_build(&g->route_chains[i], g->plugins, g->nglobal_plugins,
                           g->plugins + next, r->nplugins, r->plugins, r->nplugins) < 0)
            return -1;
        next += r->nplugins;
    }
    return 0;
}

const struct sl_chain *sl_gen_chain(const struct sl_gen *g, const struct sl_route_conf *route)
{
    if (g->route_chains == NULL)
        return NULL;
    return route != NULL ? &g->route_chains[route - g->cfg->routes] : &g->global_chain;
}

struct sl_gen *sl_gen_new(struct sl_config *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    struct sl_gen *g = calloc(1, sizeof *g);
    if (g == NULL) {
        sl_config_free(cfg);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_fetch_add(&live, 1);
    g->cfg = cfg;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    g->created_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    g->npins = cfg->workers > 0 ? (size_t)cfg->workers : 1;
    g->pins = aligned_alloc(sizeof *g->pins, g->npins * sizeof *g->pins);
    if (g->pins != NULL)
        for (size_t i = 0; i < g->npins; i++)
            atomic_init(&g->pins[i].n, 0);
    atomic_init(&g->refs, 1);
    g->id = atomic_fetch_add(&next_id, 1);
    for (size_t i = 0; i < cfg->nupstreams; i++)
        g->nbackends += cfg->upstreams[i].nbackends;
    g->upstreams = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *g->upstreams);
    g->backends = calloc(g->nbackends ? g->nbackends : 1, sizeof *g->backends);
    g->router = sl_router_new(cfg);
    if (g->upstreams == NULL || g->backends == NULL || g->router == NULL || g->pins == NULL) {
        snprintf(err, errlen, "out of memory");
        gen_free(g);
        return NULL;
    }
    size_t gidx = 0;
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct sl_upstream_conf *uc = &cfg->upstreams[i];
        struct sl_upstream *u = &g->upstreams[i];
        u->conf = uc;
        u->index = i;
        u->lb = sl_balancer_find(uc->balance);
        if (u->lb == NULL) {
            snprintf(err, errlen, "upstream %s: unknown balance algorithm '%s'",
                     uc->name, uc->balance);
            gen_free(g);
            return NULL;
        }
        u->backends = &g->backends[gidx];
        u->nbackends = uc->nbackends;
        for (size_t j = 0; j < uc->nbackends; j++, gidx++) {
            g->backends[gidx].conf = &uc->backends[j];
            g->backends[gidx].gidx = gidx;
            atomic_init(&g->backends[gidx].down_until_ms, 0);
        }
    }
    g->nupstreams = cfg->nupstreams;
    g->shdicts = sl_shdict_set_new(cfg->shared_dicts, cfg->nshared_dicts, err, errlen);
    if (g->shdicts == NULL) {
        gen_free(g);
        return NULL;
    }
    /* Plugin code run while loading (a Lua plugin's init) sees this
     * generation's shared dicts. */
    const struct sl_shdict_set *scope = sl_shdict_scope_enter(g->shdicts);
    int loaded = sl_plugins_load(g, err, errlen);
    sl_shdict_scope_leave(scope);
    if (loaded < 0 || build_chains(g) < 0 ||
        sl_metrics_gen_attach(g) < 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "out of memory");
        gen_free(g);
        return NULL;
    }
    live_add(g);
    return g;
}

void sl_gen_ref(struct sl_gen *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void sl_gen_unref(struct sl_gen *g)
{
    if (g != NULL && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        gen_free(g);
}

void sl_gen_publish(struct sl_gen *g)
{
    if (g != NULL)
        sl_shdict_set_publish(g->shdicts);
    pthread_mutex_lock(&swap_lock);
    struct sl_gen *old = atomic_exchange_explicit(&current, g, memory_order_acq_rel);
    pthread_mutex_unlock(&swap_lock);
    if (old != NULL)
        sl_gen_unref(old);
}

struct sl_gen *sl_gen_acquire(void)
{
    pthread_mutex_lock(&swap_lock);
    struct sl_gen *g = atomic_load_explicit(&current, memory_order_acquire);
    if (g != NULL)
        sl_gen_ref(g);
    pthread_mutex_unlock(&swap_lock);
    return g;
}

const struct sl_gen *sl_gen_peek(void)
{
    return atomic_load_explicit(&current, memory_order_relaxed);
}

size_t sl_gen_live_count(void)
{
    return atomic_load(&live);
}

/* Same config text means the same plugin instances and plugin_paths, so
 * checking the instances g loaded covers every plugin file the text can
 * name. */
bool sl_gen_inputs_unchanged(const struct sl_gen *g)
{
    const struct sl_config *cfg = g->cfg;
    uint64_t hash;
    if (cfg->path == NULL || sl_config_file_hash(cfg->path, &hash) < 0 ||
        hash != cfg->source_hash)
        return false;
    for (size_t i = 0; i < g->nplugins; i++) {
        const struct sl_plugin *p = g->plugins[i];
        if (p->kind->has_changed == NULL || p->kind->has_changed(p, cfg) != 0)
            return false;
    }
    return true;
}

struct sl_upstream *sl_gen_route_upstream(struct sl_gen *g,
                                          const struct sl_route_conf *route)
{
    return &g->upstreams[route->upstream - g->cfg->upstreams];
}
