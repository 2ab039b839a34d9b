/* Workers: one thread each, with its own event loop, its own SO_REUSEPORT
 * listening sockets, its own upstream pools and balancer state. Nothing a
 * request touches is shared with another worker except the generation
 * (read-only) and the backends' cool-down stamps (relaxed atomics). */
#ifndef SL_WORKER_H
#define SL_WORKER_H

#include <pthread.h>
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

    struct sl_gen *gen;                 /* pinned: the generation new requests use */
    void **lb_states;                   /* per upstream of gen, owned */
    struct sl_pool **pools_by_backend;  /* per backend of gen (gidx), borrowed from pools */
    struct sl_pool *pools;              /* owned list, keyed by backend address, kept across generations */

    struct sl_conn_list conns;          /* live client connections */
    size_t nconns;
    struct sl_conn_list dead_conns;     /* closed, freed by reap_ev */
    struct sl_upconn_list dead_upconns;

    uint64_t next_request;
    uint64_t upstream_connects;         /* counters, read by the metrics later */
    uint64_t upstream_reuses;
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
 * and cool-downs; one clock read per loop iteration). */
int64_t sl_worker_now_ms(struct sl_worker *w);

/* Microseconds of the same cached clock. */
int64_t sl_worker_now_us(struct sl_worker *w);

/* The current time as an HTTP Date value (RFC 9110 §5.6.7); borrowed,
 * refreshed once a second. */
const char *sl_worker_http_date(struct sl_worker *w);

/* Makes sure w->gen is the current generation, rebuilding the per-worker
 * state that hangs off it. Cheap when nothing changed. Returns 0, or -1 on
 * OOM (the old generation stays). */
int sl_worker_sync_gen(struct sl_worker *w);

/* Queues an event to free closed connections once the current callback
 * chain has unwound. */
void sl_worker_schedule_reap(struct sl_worker *w);

#endif
