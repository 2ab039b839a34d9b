/* Client connections: accept, read and parse requests, write responses,
 * keep-alive and pipelining, local replies, timeouts and closing. */
#ifndef SL_CONN_H
#define SL_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/event_struct.h>

#include "arena.h"
#include "body.h"
#include "buf.h"
#include "deadline.h"
#include "http1.h"
#include "status.h"

struct sl_worker;
struct sl_worker_gen;
struct sl_upconn;
struct sl_upstream;
struct sl_backend;
struct sl_route_conf;

enum sl_conn_state {
    SL_CONN_IDLE,       /* waiting for (the rest of) a request head */
    SL_CONN_ACTIVE,     /* a request is being served */
    SL_CONN_TUNNEL,     /* after 101: raw bytes both ways */
    SL_CONN_CLOSING,    /* flushing the last bytes, then close */
    SL_CONN_CLOSED,     /* waiting to be freed */
};

/* How the response body is framed towards the client. */
enum sl_framing {
    SL_FRAMING_NONE,        /* no body (HEAD, 1xx, 204, 304) */
    SL_FRAMING_LENGTH,      /* Content-Length passed through */
    SL_FRAMING_CHUNKED,     /* re-encoded as chunked */
    SL_FRAMING_CLOSE,       /* body ends when we close (HTTP/1.0 clients) */
};

/* A header list that starts as a borrowed view of a parsed head and is
 * copied into the request's arena the first time a plugin changes it. */
struct sl_hlist {
    struct sl_header *v;
    size_t n, cap;
    bool owned;                         /* v lives in the arena */
};

/* One entry of the per-request space plugins share (sl_api_ctx_*). */
struct sl_kv {
    const char *key, *value;            /* arena */
    size_t klen, vlen;
};

struct sl_chain;
struct sl_plugin_state;

/* One request's state; embedded in its connection and reset between
 * requests. Strings are borrowed from the connection's reader or arena and
 * valid until the request ends. */
struct sl_req {
    struct sl_worker_gen *wg;           /* pinned from the request's start to its end
                                         * (sl_worker_pin/unpin): its generation
                                         * (wg->gen) supplies config, route, upstream,
                                         * chain, balancer state and pools; NULL
                                         * between requests */
    char id[24];
    int64_t start_us;
    struct sl_head *head;               /* the parsed head (borrowed from conn->reader) */
    const char *host;                   /* lowercase, without port; "" when absent */
    size_t host_len;
    const char *path;                   /* origin-form target (path and query) */
    size_t path_len;
    const char *authority;              /* Host value to forward */
    size_t authority_len;
    const struct sl_route_conf *route;
    struct sl_upstream *upstream;
    struct sl_backend *backend;         /* the backend of the current attempt */
    const char *backend_name;           /* its address text, for the log */
    struct sl_backend *chosen;          /* a balancer plugin's pick among upstream's
                                         * backends (sl_api_set_backend): the only one
                                         * tried; NULL: the upstream's balancer picks */
    bool in_balancer;                   /* the balancer phase is running (sl_api_*
                                         * balancer operations are allowed) */
    uint8_t *tried;                     /* bitmap of backends tried (arena) */
    int attempts;
    int fail_status;                    /* answer if no backend is left (502/504) */
    bool stale_retried;
    bool keep_alive;                    /* client allows another request after this one */
    bool is_head;
    bool idempotent;
    bool has_body;
    bool body_done;                     /* the whole request body was received */
    bool upgrade;
    bool expect_continue;
    bool local;                         /* answered by the proxy itself */
    uint64_t body_bytes;
    /* plugins */
    const struct sl_chain *chain;       /* borrowed from the generation; NULL = no plugins */
    struct sl_hlist req_headers;        /* what goes upstream */
    struct sl_hlist resp_headers;       /* what goes to the client (origin's or local reply's) */
    const char *method;                 /* NULL, or a plugin's rewrite (arena) */
    size_t method_len;
    bool head_sent;                     /* request head built for upstream: no more rewrites */
    bool logged;                        /* log phase and access log done */
    bool in_reply_phase;                /* response phase of a local reply running */
    int local_status;                   /* a plugin's local reply (sl_api_respond), 0 if none */
    const char *local_body;
    size_t local_body_len;
    struct sl_kv *kv;                   /* shared per-request space (arena) */
    size_t nkv, kvcap;
    struct sl_kv *log_fields;           /* plugin-set access-log fields, in order (arena) */
    size_t nlog_fields, log_fields_cap;
    int64_t up_start_us;                /* the current upstream attempt began (0: none) */
    int64_t up_first_byte_us;           /* its response's first byte came (0: not yet; -1:
                                         * in this loop turn, time not read yet) */
    bool up_reused;                     /* the current attempt's connection came from the pool */
    int64_t end_us;                     /* the loop time the response ended (0: read it) */
    struct sl_plugin_state *plugin_state; /* native plugins' per-request state: an arena
                                         * list (plugin_native.c); NULL when none */
    struct sl_body req_body;            /* buffered for request_body (body.h), freed at request end */
    struct sl_body resp_body;           /* buffered for response_body, likewise */
    /* response side */
    int status;
    bool resp_started;                  /* response head queued to the client */
    bool resp_done;
    enum sl_framing framing;
    uint64_t bytes_sent;                /* bytes queued to the client for this request */
    size_t resp_mark_len;               /* client output length before the response head ... */
    uint64_t resp_mark_written;         /* ... and conn->bytes_written at that moment */
};

struct sl_conn {
    struct sl_worker *w;                /* borrowed */
    int fd;
    enum sl_conn_state state;
    struct event rev, wev;
    struct sl_deadline timer;           /* header, body, send, keep-alive, linger */
    bool wev_pending;
    bool reading;                       /* rev added */
    bool in_feed;                       /* inside sl_reader_feed: do not re-enter */
    bool reader_paused;                 /* a finished request waits for its response */
    bool upgrade_paused;                /* an upgrade request waits for 101 */
    bool peer_closed;                   /* the client half-closed */
    bool lingering;                     /* output done, draining input before close */
    struct sl_buf in, out;
    struct sl_reader reader;
    struct sl_arena arena;              /* request scope */
    struct sl_req req;
    struct sl_upconn *up;               /* serving the current request, or NULL */
    char peer[64];                      /* client address text */
    uint64_t nrequests;
    uint64_t bytes_written;             /* to the socket, over the connection's life */
    struct iovec spans[8];              /* borrowed body bytes queued after out (see sl_conn_add_span) */
    size_t nspans;
    TAILQ_ENTRY(sl_conn) link;
};

/* Accepts ownership of a freshly accepted socket and starts reading from it.
 * Returns the connection, or NULL (the fd is closed) on OOM. */
struct sl_conn *sl_conn_new(struct sl_worker *w, int fd, const struct sockaddr *peer);

/* Queues bytes for the client and writes what the socket takes now. */
int sl_conn_send(struct sl_conn *c, const void *p, size_t n);

/* Queues n borrowed bytes after the output buffer without copying them:
 * relayed response bodies go from the upstream's input buffer straight to
 * the client socket. The bytes must stay valid until the next
 * sl_conn_flush, which writes them or copies what the socket did not take.
 * Returns 0, or -1 when the connection failed. */
int sl_conn_add_span(struct sl_conn *c, const char *p, size_t n);

/* Forgets queued spans (their response is being taken back). */
void sl_conn_drop_spans(struct sl_conn *c);

/* Writes queued bytes; arms the write event when the socket is full.
 * Returns 0, or -1 when the connection failed (it is then closed). */
int sl_conn_flush(struct sl_conn *c);

/* Answers the current request from the proxy itself with status and a short
 * text body. The connection closes afterwards when close_after is set, or
 * when the request does not allow another one (no keep-alive, unread body,
 * draining); otherwise it carries on with the next request. */
void sl_conn_reply(struct sl_conn *c, int status, bool close_after);

/* True when the client's output is above the high watermark: producers
 * (upstream reads) pause. */
bool sl_conn_out_is_full(const struct sl_conn *c);

/* True when the client's output fell below the low watermark. */
bool sl_conn_out_is_low(const struct sl_conn *c);

/* Called by the proxy when the response is complete and the request fully
 * forwarded: logs the request and moves on to the next one (or closes). */
void sl_conn_request_done(struct sl_conn *c);

/* Closes at once, dropping unsent output (errors, truncation). */
void sl_conn_abort(struct sl_conn *c);

/* Closes after the queued output is written. */
void sl_conn_close_after_flush(struct sl_conn *c);

/* Stops / restarts reading from the client (request body back-pressure). */
void sl_conn_pause_reading(struct sl_conn *c);
void sl_conn_resume_reading(struct sl_conn *c);

/* Closes an idle connection (worker draining). Returns true if it was idle. */
bool sl_conn_close_if_idle(struct sl_conn *c);

/* Frees a closed connection; only the worker's reaper calls it. */
void sl_conn_free(struct sl_conn *c);


#endif
