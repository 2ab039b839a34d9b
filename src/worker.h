/* Workers: one thread each, with its own event loop, its own SO_REUSEPORT
 * listening sockets, its own upstream pools and balancer state. Nothing a
 * request touches is shared with another worker except the generation
 * (read-only) and the backends' cool-down stamps (relaxed atomics). */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "accesslog.h"

struct sl_gen;
struct sl_conn;
struct sl_upconn;
struct sl_pool;

TAILQ_HEAD(sl_conn_list, sl_conn);
TAILQ_HEAD(sl_upconn_list, sl_upconn);

/* A worker's state for one generation: what a request pins when it starts
 * and lets go of when it ends, so a reload never frees what a request in
 * flight still uses. Only the worker's thread touches it. */
struct sl_worker_gen {
    struct sl_gen *gen;                 /* a reference */
    void **lb_states;                   /* owned: per upstream of gen */
    struct sl_pool **pools_by_backend;  /* owned array, per backend of gen (gidx);
                                         * the pools are borrowed from the worker */
    size_t inflight;                    /* requests pinning it (no atomics: one thread) */
    bool retired;                       /* no longer current: freed at inflight 0 */
    LIST_ENTRY(sl_worker_gen) link;     /* in the worker's retired list */
};
LIST_HEAD(sl_worker_gen_list, sl_worker_gen);

struct sl_listener {
    int fd;
    struct event ev;
};

struct sl_worker {
    int id;
    pthread_t thread;
    struct event_base *base;            /* owned */
    struct sl_listener *listeners;      /* owned array; fds opened by main */
    size_t nlisteners;
    int notify_fds[2];                  /* main -> worker: 's' stop */
    struct event notify_ev;
    struct event reap_ev;               /* frees closed connections after callbacks unwind */
    struct event tick_ev;               /* 1 s housekeeping: idle pool sweep, log flush */
    struct event drain_ev;              /* drain deadline after stop */

    struct sl_worker_gen *cur;          /* owned: the state new requests pin */
    struct sl_gen *gen;                 /* borrowed: cur->gen, for connection-level settings
                                         * (limits of new connections, timeouts, drain);
                                         * a request uses its pinned c->req.wg->gen */
    struct sl_worker_gen_list retired;  /* owned: older states requests still pin */
    size_t nretired;
    /* owned list, keyed by backend address, kept across generations; only
     * ever prepended to while the worker runs, so the admin thread can walk
     * it (the atomic head publishes each new pool whole) */
    _Atomic(struct sl_pool *) pools;

    struct sl_conn_list conns;          /* live client connections */
    size_t nconns;
    struct sl_conn_list dead_conns;     /* closed, freed by reap_ev */
    struct sl_upconn_list dead_upconns;

    uint64_t next_request;
    char http_date[40];                 /* Date field value, refreshed every second */
    bool draining;
    struct sl_accesslog alog;
};

/* Creates worker id's event loop and takes ownership of its listening fds.
 * Returns 0, or -1 with a message logged. */
int sl_worker_init(struct sl_worker *w, int id, const int *listen_fds, size_t n);

/* Starts the worker's thread. Returns 0 or -1. */
int sl_worker_start(struct sl_worker *w);

/* Asks the worker (from another thread) to stop accepting, finish in-flight
 * requests within the drain timeout and end its thread. */
void sl_worker_stop(struct sl_worker *w);

/* Waits for the thread and frees everything the worker owns. */
void sl_worker_join(struct sl_worker *w);

/* Milliseconds of the loop's cached clock (monotonic enough for timeouts
 * and cool-downs; one clock read per loop iteration). Inline: the request
 * path asks several times per request. */
static inline int64_t sl_worker_now_ms(struct sl_worker *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Microseconds of the same cached clock. */
static inline int64_t sl_worker_now_us(struct sl_worker *w)
{
    struct timeval tv;
    event_base_gettimeofday_cached(w->base, &tv);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* The current time as an HTTP Date value (RFC 9110 §5.6.7); borrowed,
 * refreshed once a second. */
const char *sl_worker_http_date(struct sl_worker *w);

/* Makes sure w->cur is the worker's state for the current generation,
 * building it (balancer states, pool map) when a new generation was
 * published. Called when a request starts and by the worker's once-a-second
 * tick, so an idle worker lets go of old generations too. The previous state is retired: it stays while requests pin it
 * and is freed by the reaper once the last one ends, after each plugin of
 * its generation got worker_release for this worker. Cheap when nothing
 * changed. Returns 0, or -1 on OOM (the old generation stays). */
int sl_worker_sync_gen(struct sl_worker *w);

/* Pins the worker's current state for a request starting now: everything
 * the request uses from its generation comes from the result until the
 * matching sl_worker_unpin. Never NULL once the worker is initialised. */
struct sl_worker_gen *sl_worker_pin(struct sl_worker *w);

/* Lets go of a pin taken with sl_worker_pin; exactly once per pin. A
 * retired state whose last pin goes is freed by the reaper, after the
 * current callback chain has unwound, never inside it. */
void sl_worker_unpin(struct sl_worker *w, struct sl_worker_gen *wg);

/* Queues an event to free closed connections once the current callback
 * chain has unwound. */
void sl_worker_schedule_reap(struct sl_worker *w);

#endif
