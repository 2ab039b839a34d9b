#include "gen.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "plugin_load.h"

static _Atomic(struct sl_gen *) current;
static atomic_uint_fast64_t next_id = 1;
/* Orders publish against acquire so a worker never refs a generation whose
 * last reference is being dropped. Taken only when the generation changes,
 * never per request. */
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;

static void gen_free(struct sl_gen *g)
{
    if (g->route_chains != NULL)
        for (size_t i = 0; i < g->cfg->nroutes; i++)
            sl_chain_fini(&g->route_chains[i]);
    free(g->route_chains);
    sl_chain_fini(&g->global_chain);
    for (size_t i = 0; i < g->nplugins; i++)
        sl_plugin_free(g->plugins[i]);
    free(g->plugins);
    sl_router_free(g->router);
    free(g->upstreams);
    free(g->backends);
    sl_config_free(g->cfg);
    free(g);
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
    g->cfg = cfg;
    atomic_init(&g->refs, 1);
    g->id = atomic_fetch_add(&next_id, 1);
    for (size_t i = 0; i < cfg->nupstreams; i++)
        g->nbackends += cfg->upstreams[i].nbackends;
    g->upstreams = calloc(cfg->nupstreams ? cfg->nupstreams : 1, sizeof *g->upstreams);
    g->backends = calloc(g->nbackends ? g->nbackends : 1, sizeof *g->backends);
    g->router = sl_router_new(cfg);
    if (g->upstreams == NULL || g->backends == NULL || g->router == NULL) {
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
    if (sl_plugins_load(g, err, errlen) < 0 || build_chains(g) < 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "out of memory");
        gen_free(g);
        return NULL;
    }
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

struct sl_upstream *sl_gen_route_upstream(struct sl_gen *g,
                                          const struct sl_route_conf *route)
{
    return &g->upstreams[route->upstream - g->cfg->upstreams];
}
