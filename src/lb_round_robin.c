/* Smooth weighted round-robin: each pick adds every eligible backend's
 * weight to its current score, takes the highest score and subtracts the
 * total from it. Weights 5,1,1 give a b a c a a a ... rather than a a a a a
 * b c, so no backend gets a burst. */
#include <stdlib.h>

#include "upstream.h"

struct rr_state {
    size_t n;
    int64_t current[];
};

static void *rr_new(const struct sl_upstream *u)
{
    struct rr_state *s = calloc(1, sizeof *s + u->nbackends * sizeof s->current[0]);
    if (s != NULL)
        s->n = u->nbackends;
    return s;
}

static bool is_tried(const uint8_t *tried, size_t i)
{
    return tried != NULL && (tried[i / 8] & (1u << (i % 8))) != 0;
}

static int rr_pick_among(struct rr_state *s, const struct sl_upstream *u,
                         const uint8_t *tried, int64_t now_ms, bool skip_down)
{
    int best = -1;
    int64_t total = 0;
    for (size_t i = 0; i < u->nbackends; i++) {
        const struct sl_backend *b = &u->backends[i];
        if (is_tried(tried, i) || (skip_down && sl_backend_is_down(b, now_ms)))
            continue;
        s->current[i] += b->conf->weight;
        total += b->conf->weight;
        if (best < 0 || s->current[i] > s->current[best])
            best = (int)i;
    }
    if (best >= 0)
        s->current[best] -= total;
    return best;
}

static int rr_pick(void *state, const struct sl_upstream *u, const uint8_t *tried,
                   int64_t now_ms)
{
    int i = rr_pick_among(state, u, tried, now_ms, true);
    /* When every untried backend is cooling down, trying one beats failing
     * the request outright: the cool-down is a hint, not a verdict. */
    if (i < 0)
        i = rr_pick_among(state, u, tried, now_ms, false);
    return i;
}

static void rr_free(void *state)
{
    free(state);
}

const struct sl_balancer_ops sl_lb_round_robin = {
    .name = "round_robin",
    .state_new = rr_new,
    .pick = rr_pick,
    .state_free = rr_free,
};
