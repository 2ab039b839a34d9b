/* Upstream keep-alive pools: per worker, per backend address, a list of
 * idle connections that finished a clean exchange. Pools outlive
 * generations, so a reload keeps the connections of unchanged backends. */
#ifndef SL_POOL_H
#define SL_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy.h"
#include "worker.h"

/* The counts are written by the worker alone; the admin API reads them
 * from its own thread without synchronisation (word-sized, so a reading
 * is at worst a moment stale). */
struct sl_pool {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *name;                         /* owned: "host:port" as configured */
    struct sl_upconn_list idle;         /* newest first */
    size_t nidle;
    size_t nopen;                       /* open connections, idle or busy */
    size_t max_idle;                    /* from the latest generation using it */
    int idle_timeout_ms;
    struct sl_pool *next;
};

/* Finds the worker's pool for addr or creates it. Returns the pool
 * (owned by the worker) or NULL on OOM. */
struct sl_pool *sl_pool_get(struct sl_worker *w, const struct sockaddr *addr,
                            socklen_t len, const char *name);

/* Takes the newest live idle connection, or NULL. Connections idle longer
 * than the timeout are closed on the way. */
struct sl_upconn *sl_pool_take(struct sl_pool *p, int64_t now_ms);

/* Parks a connection after a clean exchange; closes it instead when the
 * pool is full or pooling is off. */
void sl_pool_put(struct sl_pool *p, struct sl_upconn *u, int64_t now_ms);

/* Removes an idle connection from its pool (it closed or misbehaved). */
void sl_pool_remove(struct sl_pool *p, struct sl_upconn *u);

/* Closes idle connections past their timeout. */
void sl_pool_sweep(struct sl_pool *p, int64_t now_ms);

/* Closes every idle connection and frees the pool list of a worker. */
void sl_pool_free_all(struct sl_worker *w);

#endif
