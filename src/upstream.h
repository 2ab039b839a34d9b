/* Upstream runtime: the backends of a generation with their shared health
 * state, and the balancer interface each upstream picks backends through. */
#ifndef SL_UPSTREAM_H
#define SL_UPSTREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"

struct sl_backend {
    const struct sl_backend_conf *conf;     /* borrowed from the generation's config */
    size_t gidx;                            /* index among all backends of the generation */
    _Atomic int64_t down_until_ms;          /* skipped until then after refusing a connect */
};

struct sl_balancer_ops;

struct sl_upstream {
    const struct sl_upstream_conf *conf;    /* borrowed */
    size_t index;                           /* position in the generation */
    struct sl_backend *backends;            /* owned by the generation */
    size_t nbackends;
    const struct sl_balancer_ops *lb;
};

/* A balancing algorithm. Its state is per worker, so pick() needs no lock.
 * pick() returns the index of a backend not marked in tried (a bitmap of
 * nbackends bits), preferring backends not cooling down, or -1 when every
 * backend was tried. */
struct sl_balancer_ops {
    const char *name;
    void *(*state_new)(const struct sl_upstream *u);
    int (*pick)(void *state, const struct sl_upstream *u, const uint8_t *tried,
                int64_t now_ms);
    void (*state_free)(void *state);
};

/* Smooth weighted round-robin (the nginx algorithm): every backend gets its
 * weight's share, interleaved rather than in bursts. */
extern const struct sl_balancer_ops sl_lb_round_robin;

/* Returns the algorithm called name, or NULL. */
const struct sl_balancer_ops *sl_balancer_find(const char *name);

/* True when the backend is in its cool-down at now_ms. */
bool sl_backend_is_down(const struct sl_backend *b, int64_t now_ms);

/* Starts (or extends) a backend's cool-down. Returns true when the backend
 * was up before, so the caller logs the transition once, not per request. */
bool sl_backend_mark_down(struct sl_backend *b, int64_t now_ms, int cooldown_ms);

#endif
