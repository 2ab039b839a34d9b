/* Generations: an immutable bundle of configuration, routes and upstream
 * runtime. Workers pin the current generation; a reload (later) builds the
 * next one on the side and publishes it with one atomic pointer swap. */
#ifndef SL_GEN_H
#define SL_GEN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"
#include "plugin.h"
#include "router.h"
#include "upstream.h"

struct sl_shdict_set;

/* One worker's count of the requests pinning a generation, on its own
 * cache line: written by that worker alone, read by the admin API. */
struct sl_gen_pins {
    _Atomic size_t n;
    char pad[64 - sizeof(size_t)];
};

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
    struct sl_shdict_set *shdicts;  /* owned: the shared dicts cfg declares (shdict.h) */
    int64_t created_ms;             /* wall clock when built, ms since the epoch */
    struct sl_gen_pins *pins;       /* owned: per worker (cfg->workers), see sl_gen_set_inflight */
    size_t npins;
    struct sl_gen *live_prev;       /* registry of live generations (gen.c, under its lock) */
    struct sl_gen *live_next;
    bool registered;                /* in that registry: built successfully, not yet freed */
    struct sl_metrics_gen *metrics; /* owned: the metric slots of its routes and backends
                                     * (metrics.c, sl_metrics_gen_attach) */
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

/* The number of generations allocated and not yet freed: the current one,
 * retired ones some worker or request still holds, and one being built by
 * a reload. After reloads settle it is at most 1 + the number of workers
 * (a worker that has not seen a request since holds its last one until its
 * next housekeeping tick). For leak checks, the SIGUSR1 status line and
 * the admin API. Thread-safe. */
size_t sl_gen_live_count(void);

/* Whether rebuilding g now would read exactly what g was built from: its
 * configuration file has the same content (sl_config_file_hash against
 * cfg->source_hash) and every plugin instance's kind reports its files
 * unchanged (sl_plugin_kind.has_changed; a kind without it counts as
 * changed). Reads the files; false when one cannot be read, and always in
 * quick mode. Call it with a reference to g held; thread-safe otherwise. */
bool sl_gen_inputs_unchanged(const struct sl_gen *g);

/* Records that worker has n requests pinning g, for sl_gen_inflight. Called
 * by the worker itself whenever its count changes: one relaxed store to a
 * slot no other thread writes, so no locked instruction on the request
 * path. */
static inline void sl_gen_set_inflight(struct sl_gen *g, int worker, size_t n)
{
    if ((size_t)worker < g->npins)
        atomic_store_explicit(&g->pins[worker].n, n, memory_order_relaxed);
}

/* The requests in flight on g, summed over the workers. A snapshot: each
 * worker's slot is read once (relaxed), so the sum may mix moments a few
 * requests apart. Call with a reference held or from a sl_gen_foreach_live
 * callback. */
size_t sl_gen_inflight(const struct sl_gen *g);

/* Calls fn(g, arg) for every live generation (built successfully and not
 * yet freed: the current one and those retired ones that workers or
 * requests still hold), oldest first, under the registry's lock: fn must
 * be quick, must not block, and must neither take nor drop a reference
 * (the generation's last reference may be waiting on that lock to free
 * it). For the admin API. */
void sl_gen_foreach_live(void (*fn)(const struct sl_gen *g, void *arg), void *arg);

/* The plugin chain for a request on route (NULL: no route), or NULL when
 * the generation has no plugins at all, so the request path can skip every
 * plugin hook with one test. */
const struct sl_chain *sl_gen_chain(const struct sl_gen *g, const struct sl_route_conf *route);

/* The runtime upstream a route leads to. */
struct sl_upstream *sl_gen_route_upstream(struct sl_gen *g,
                                          const struct sl_route_conf *route);

#endif
