/* The upstream side of a request: pick a backend, take a pooled connection
 * or open one, forward the request head and body, parse the response and
 * stream it to the client with back-pressure, retry when it is safe. */
#ifndef SL_PROXY_H
#define SL_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event_struct.h>

#include "buf.h"
#include "deadline.h"
#include "http1.h"

struct sl_conn;
struct sl_pool;
struct sl_backend;
struct sl_worker;

enum sl_upconn_state {
    SL_UP_CONNECTING,
    SL_UP_ACTIVE,       /* serving a request */
    SL_UP_IDLE,         /* parked in its pool */
    SL_UP_TUNNEL,
    SL_UP_CLOSED,
};

/* One connection to a backend. Owned by its pool while idle, by the client
 * connection it serves otherwise. */
struct sl_upconn {
    struct sl_worker *w;                /* borrowed */
    struct sl_pool *pool;               /* borrowed: the backend's pool on this worker */
    const char *backend_name;           /* borrowed from the pool */
    int fd;
    enum sl_upconn_state state;
    struct event rev, wev;
    struct sl_deadline timer;           /* connect, response, idle in the pool */
    bool wev_pending;
    bool reading;
    bool reused;                        /* came from the pool */
    bool replayable;                    /* out still holds every byte sent */
    struct sl_buf in, out;
    size_t out_sent;                    /* bytes of out already written (kept for replay) */
    struct sl_reader reader;
    struct sl_conn *client;             /* borrowed; NULL while idle */
    uint64_t resp_bytes;                /* response bytes received */
    uint64_t body_left;                 /* Content-Length bytes still to relay */
    int64_t idle_since_ms;
    int64_t connect_start_us;           /* when connect() was called (metrics) */
    TAILQ_ENTRY(sl_upconn) link;
};

/* Starts forwarding the client's current request (its head is parsed and
 * routed, its balancer phase ran: c->req.upstream, and c->req.chosen when
 * a plugin pinned a backend). Answers the client itself (502/503) when no backend can be
 * reached. Returns 0, or -1 when the request was answered locally. */
int sl_proxy_start(struct sl_conn *c);

/* Forwards n request body bytes (already de-framed). Returns 0 or -1. */
int sl_proxy_body(struct sl_conn *c, const char *p, size_t n);

/* Writes the request bytes queued while the client's input was being
 * parsed. Nothing is written from inside the parser: bytes that turn out
 * to be malformed later in the same read never reach the origin. */
void sl_proxy_flush(struct sl_conn *c);

/* The request body is complete. */
void sl_proxy_body_done(struct sl_conn *c);

/* Client bytes for an established tunnel. */
void sl_proxy_tunnel_data(struct sl_conn *c);

/* The client closed its side of a tunnel: pass what is queued on, half-close
 * towards the origin and close the client once its output is flushed. */
void sl_proxy_tunnel_eof(struct sl_conn *c);

/* The client went away or failed: drop the upstream side of its request. */
void sl_proxy_detach(struct sl_conn *c);

/* The client drained its output below the low watermark: resume reading
 * the response. */
void sl_proxy_client_drained(struct sl_conn *c);

/* Frees a closed upstream connection; only the worker's reaper calls it. */
void sl_upconn_free(struct sl_upconn *u);

/* Closes an upstream connection (fd and events) and queues it for freeing. */
void sl_upconn_close(struct sl_upconn *u);

#endif
