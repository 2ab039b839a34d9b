#include "pool.h"

#include <stdlib.h>
#include <string.h>


struct sl_pool *sl_pool_get(struct sl_worker *w, const struct sockaddr *addr,
                            socklen_t len, const char *name)
{
    for (struct sl_pool *p = w->pools; p != NULL; p = p->next)
        if (p->addrlen == len && memcmp(&p->addr, addr, len) == 0)
            return p;
    struct sl_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->name = strdup(name);
    if (p->name == NULL) {
        free(p);
        return NULL;
    }
    memcpy(&p->addr, addr, len);
    p->addrlen = len;
    TAILQ_INIT(&p->idle);
    p->next = w->pools;
    w->pools = p;
    return p;
}

struct sl_upconn *sl_pool_take(struct sl_pool *p, int64_t now_ms)
{
    struct sl_upconn *u;
    while ((u = TAILQ_FIRST(&p->idle)) != NULL) {
        TAILQ_REMOVE(&p->idle, u, link);
        p->nidle--;
        if (now_ms - u->idle_since_ms >= p->idle_timeout_ms) {
            u->state = SL_UP_ACTIVE;    /* not in the list any more */
            sl_upconn_close(u);
            continue;
        }
        u->state = SL_UP_ACTIVE;
        return u;
    }
    return NULL;
}

void sl_pool_put(struct sl_pool *p, struct sl_upconn *u, int64_t now_ms)
{
    if (p->nidle >= p->max_idle) {
        /* Full: the oldest connection makes room (newest stay warm). */
        struct sl_upconn *old = TAILQ_LAST(&p->idle, sl_upconn_list);
        if (old == NULL) {
            sl_upconn_close(u);
            return;
        }
        sl_upconn_close(old);
    }
    sl_reader_reset(&u->reader);
    u->state = SL_UP_IDLE;
    u->reused = false;
    u->idle_since_ms = now_ms;
    TAILQ_INSERT_HEAD(&p->idle, u, link);
    p->nidle++;
    sl_deadline_set(&u->timer, now_ms, p->idle_timeout_ms);
}

void sl_pool_remove(struct sl_pool *p, struct sl_upconn *u)
{
    TAILQ_REMOVE(&p->idle, u, link);
    p->nidle--;
}

void sl_pool_sweep(struct sl_pool *p, int64_t now_ms)
{
    struct sl_upconn *u = TAILQ_LAST(&p->idle, sl_upconn_list);
    while (u != NULL && now_ms - u->idle_since_ms >= p->idle_timeout_ms) {
        struct sl_upconn *prev = TAILQ_PREV(u, sl_upconn_list, link);
        sl_upconn_close(u);
        u = prev;
    }
}

void sl_pool_free_all(struct sl_worker *w)
{
    struct sl_pool *p = w->pools;
    while (p != NULL) {
        struct sl_pool *next = p->next;
        while (!TAILQ_EMPTY(&p->idle))
            sl_upconn_close(TAILQ_FIRST(&p->idle));
        free(p->name);
        free(p);
        p = next;
    }
    w->pools = NULL;
}
