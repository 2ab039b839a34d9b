#include "upstream.h"

#include <string.h>

const struct sl_balancer_ops *sl_balancer_find(const char *name)
{
    if (name == NULL || strcmp(name, sl_lb_round_robin.name) == 0)
        return &sl_lb_round_robin;
    return NULL;
}

bool sl_backend_is_down(const struct sl_backend *b, int64_t now_ms)
{
    return atomic_load_explicit(&b->down_until_ms, memory_order_relaxed) > now_ms;
}

bool sl_backend_mark_down(struct sl_backend *b, int64_t now_ms, int cooldown_ms)
{
    int64_t prev = atomic_exchange_explicit(&b->down_until_ms, now_ms + cooldown_ms,
                                            memory_order_relaxed);
    return prev <= now_ms;
}
