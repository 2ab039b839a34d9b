#include "gen.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"

static _Atomic(struct sl_gen *) current;
static atomic_uint_fast64_t next_id = 1;
/* Orders publish against acquire so a worker never refs a generation whose
 * last reference is being dropped. Taken only when the generation changes,
 * never per request. */
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;

static void gen_free(struct sl_gen *g)
{
    sl_router_free(g->router);
    free(g->upstreams);
    free(g->backends);
    sl_config_free(g->cfg);
    free(g);
}

struct sl_gen *sl_gen_new(struct sl_config *cfg, char *err, size_t errlen)
{
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
