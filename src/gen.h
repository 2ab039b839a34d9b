/* Generations: an immutable bundle of configuration, routes and upstream
 * runtime. Workers pin the current generation; a reload (later) builds the
 * next one on the side and publishes it with one atomic pointer swap. */
#ifndef SL_GEN_H
#define SL_GEN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"
#include "plugin.h"
#include "router.h"
#include "upstream.h"

struct sl_gen {
    atomic_long refs;
    uint64_t id;
    struct sl_config *cfg;          /* owned */
    struct sl_router *router;       /* owned */
    struct sl_upstream *upstreams;  /* owned array, parallel to cfg->upstreams */
    size_t nupstreams;
    struct sl_backend *backends;    /* owned: every backend of every upstream */
    size_t nbackends;
    struct sl_plugin **plugins;     /* owned: every loaded instance, global then per route */
    size_t nplugins;
    size_t nglobal_plugins;         /* the first nglobal_plugins of plugins */
    struct sl_chain global_chain;   /* requests without a route (404s) */
    struct sl_chain *route_chains;  /* owned array, parallel to cfg->routes; NULL without plugins */
};

/* Builds a generation around cfg, taking ownership of it (it is freed on
 * failure too). Returns the generation with one reference, or NULL with a
 * message in err. */
struct sl_gen *sl_gen_new(struct sl_config *cfg, char *err, size_t errlen);

/* Takes a reference. */
void sl_gen_ref(struct sl_gen *g);

/* Drops a reference; the last one frees the generation. */
void sl_gen_unref(struct sl_gen *g);

/* Makes g the current generation (taking over the caller's reference) and
 * drops the reference the previous one held as current. */
void sl_gen_publish(struct sl_gen *g);

/* Returns the current generation with a new reference, or NULL before the
 * first publish. */
struct sl_gen *sl_gen_acquire(void);

/* Borrowed peek at the current generation, for a cheap "has it changed?"
 * test on the request path. Never dereference the result without a ref. */
const struct sl_gen *sl_gen_peek(void);

/* The plugin chain for a request on route (NULL: no route), or NULL when
 * the generation has no plugins at all, so the request path can skip every
 * plugin hook with one test. */
const struct sl_chain *sl_gen_chain(const struct sl_gen *g, const struct sl_route_conf *route);

/* The runtime upstream a route leads to. */
struct sl_upstream *sl_gen_route_upstream(struct sl_gen *g,
                                          const struct sl_route_conf *route);

#endif
