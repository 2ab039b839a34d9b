/* The plugin chain: one model for Lua and native plugins. A chain is the
 * list of plugin instances that apply to a route, ordered once per
 * generation, split by phase; the executor calls them through a small
 * per-kind vtable and applies the same actions and error policy to both
 * kinds.
 *
 * Order: higher priority runs first on the request path (request headers,
 * request body, balancer); the response path (response headers, response
 * body) and log run in the same order. Ties are broken by name. This is
 * Kong's convention, so a Kong user's priorities mean the same here. */
#ifndef SL_PLUGIN_H
#define SL_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"

struct sl_conn;

enum sl_phase {
    SL_PHASE_REQUEST_HEADERS = 0,
    SL_PHASE_REQUEST_BODY,
    SL_PHASE_BALANCER,
    SL_PHASE_RESPONSE_HEADERS,
    SL_PHASE_RESPONSE_BODY,
    SL_PHASE_LOG,
    SL_PHASE_COUNT,
};

/* What a phase call asks for. */
enum sl_action {
    SL_ACTION_CONTINUE = 0,     /* go on with the next plugin */
    SL_ACTION_RESPOND = 1,      /* a local reply was set (sl_api_respond): skip the rest of the phase */
    SL_ACTION_ERROR = -1,       /* the plugin failed; on_error decides */
};

struct sl_plugin;

/* What a plugin kind implements. call() runs one phase of one instance for
 * the request on c and returns an sl_action; on SL_ACTION_ERROR it fills
 * err (NUL-terminated, at most errlen) with the message and, for Lua, the
 * traceback, and sets *budget when a CPU or memory budget was exceeded. */
struct sl_plugin_kind {
    const char *name;           /* "lua" or "native" */
    int (*call)(struct sl_plugin *p, enum sl_phase phase, struct sl_conn *c,
                char *err, size_t errlen, bool *budget);
    void (*release)(struct sl_plugin *p);   /* frees impl */
    /* Optional: the request on c has ended (after its log phase); drop any
     * per-request state. Runs on the worker thread of c. */
    void (*request_done)(struct sl_plugin *p, struct sl_conn *c);
    /* Optional: worker is done with this instance's generation (it adopted
     * a newer one and no request pins the old one any more); free what
     * the instance keeps for that worker (its Lua VM). Runs on that
     * worker's thread (at shutdown: after it ended), before the worker
     * drops its reference to the generation; it must be idempotent.
     * release() still frees the rest. */
    void (*worker_release)(struct sl_plugin *p, int worker);
    /* Optional: for a reload of an identical configuration cfg (the one p
     * was loaded with): 0 when loading p's instance again would read the
     * same files with the same content, 1 when a file changed, went away
     * or another file would now be found first. Without it an instance
     * of the kind always counts as changed. Runs on the reloading thread;
     * must not touch per-worker state. */
    int (*has_changed)(const struct sl_plugin *p, const struct sl_config *cfg);
};

/* A loaded plugin instance. Owned by the generation that loaded it. */
struct sl_plugin {
    char *name;                 /* owned */
    char *version;              /* owned */
    char *source;               /* owned: path it was loaded from */
    int priority;
    uint32_t phases;            /* bit (1 << phase) for each phase implemented */
    uint32_t body;              /* bits: 1 request body needed whole, 2 response body needed whole */
    enum sl_on_error on_error;
    const struct sl_plugin_conf *conf;  /* borrowed from the generation's config */
    const struct sl_plugin_kind *kind;
    void *impl;                 /* kind-specific, owned through kind->release */
    size_t slot;                /* index of this instance's per-request context slot */
    int64_t loaded_ms;          /* wall clock of the load, ms since the epoch (admin API) */
    char sha256[65];            /* of the source file as loaded, lowercase hex; "" if unreadable */
    _Atomic uint64_t *metrics;  /* worker 0's metric cells of its plugin name (metrics.c),
                                 * set when its generation is built; NULL before. Its
                                 * calls, errors and time are counted there only. */
};

/* One ordered chain: the plugins active on a route, per phase. */
struct sl_chain {
    struct sl_plugin **by_phase[SL_PHASE_COUNT];    /* owned arrays of borrowed pointers */
    size_t n[SL_PHASE_COUNT];
    struct sl_plugin **all;     /* owned array: every instance of the chain, in order */
    size_t nall;
    bool needs_request_body;    /* some plugin reads the whole request body */
    bool needs_response_body;
    bool needs_request_done;    /* some plugin's kind has a request_done */
};

/* The name of a phase as plugins spell it: "request_headers", ... */
const char *sl_phase_name(enum sl_phase phase);

/* Parses a phase name; returns the phase or -1. */
int sl_phase_parse(const char *name);

/* Builds the chain of a route from the generation's loaded plugins: the
 * global instances, minus those the route disables, with the route's own
 * instances replacing a global one of the same name or added to it. Sorted
 * by priority (descending), then name. Returns 0, or -1 on OOM. */
int sl_chain_build(struct sl_chain *ch, struct sl_plugin **global, size_t nglobal,
                   struct sl_plugin **route, size_t nroute,
                   const struct sl_plugin_conf *route_confs, size_t nroute_confs);

/* Frees the chain's arrays (not the plugins). */
void sl_chain_fini(struct sl_chain *ch);

/* Tells every plugin of the chain that the request on c is over. */
void sl_chain_request_done(const struct sl_chain *ch, struct sl_conn *c);

/* Frees a plugin instance (its impl through its kind). */
void sl_plugin_free(struct sl_plugin *p);

/* Runs one phase of the chain for the request on c. Returns
 * SL_ACTION_CONTINUE when every plugin continued (or failed with
 * on_error: continue), SL_ACTION_RESPOND when one set a local reply or
 * failed with on_error: fail (the reply is then 500). An error is logged
 * once with plugin, phase, request id and message, and counted. The log
 * phase always runs every plugin and ignores replies. */
int sl_chain_run(const struct sl_chain *ch, enum sl_phase phase, struct sl_conn *c);

#endif
