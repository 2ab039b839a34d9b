#include "proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "conn.h"
#include "gen.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proxy_head.h"
#include "request.h"
#include "response.h"
#include "upstream.h"
#include "worker.h"

#define UP_READ_CHUNK 65536
/* Request bytes kept after sending so that a stale pooled connection can be
 * retried; a larger request body is streamed without that safety net. */
#define REPLAY_MAX (64 * 1024)
#define UP_OUT_HIGH (256 * 1024)
#define UP_OUT_LOW (64 * 1024)

enum fail_kind {
    FAIL_CONNECT,           /* refused, unreachable: nothing was sent */
    FAIL_CONNECT_TIMEOUT,
    FAIL_IO,                /* write error, reset or EOF before any response byte */
    FAIL_TIMEOUT,           /* no (more) response within response_timeout */
    FAIL_PROTOCOL,          /* malformed response */
    FAIL_TRUNCATED,         /* the origin closed mid-response */
};

static void up_on_read(evutil_socket_t fd, short what, void *arg);
static void up_on_write(evutil_socket_t fd, short what, void *arg);
static void up_on_timer(evutil_socket_t fd, short what, void *arg);
static void up_fail(struct sl_upconn *u, enum fail_kind kind, int err);
static int attempt(struct sl_conn *c, struct sl_buf *carry);

static const struct sl_upstream_conf *upconf(const struct sl_conn *c)
{
    return c->req.upstream->conf;
}

static void up_arm_timer(struct sl_upconn *u, int ms)
{
    sl_deadline_set(&u->timer, sl_worker_now_ms(u->w), ms);
}

static struct sl_upconn *up_new(struct sl_worker *w, struct sl_pool *pool, int fd)
{
    struct sl_upconn *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->w = w;
    u->pool = pool;
    u->backend_name = pool->name;
    pool->nopen++;
    sl_metrics_upstream_conns_add(w->id, 1);
    u->fd = fd;
    const struct sl_limits_conf *lim = &w->gen->cfg->limits;
    /* Origins get roomier head limits than clients: the limits protect the
     * proxy from clients, not from the services behind it. */
    struct sl_reader_limits rl = {
        .max_line = lim->max_request_line * 2,
        .max_header_size = lim->max_header_size * 2,
        .max_headers = lim->max_headers * 2,
    };
    sl_reader_init(&u->reader, false, &sl_response_reader_ops, u, &rl);
    event_assign(&u->rev, w->base, fd, EV_READ | EV_PERSIST, up_on_read, u);
    event_assign(&u->wev, w->base, fd, EV_WRITE | EV_PERSIST, up_on_write, u);
    sl_deadline_init(&u->timer, w->base, up_on_timer, u);
    return u;
}

void sl_upconn_free(struct sl_upconn *u)
{
    sl_reader_fini(&u->reader);
    sl_buf_fini(&u->in);
    sl_buf_fini(&u->out);
    free(u);
}

void sl_upconn_close(struct sl_upconn *u)
{
    if (u->state == SL_UP_CLOSED)
        return;
    if (u->state == SL_UP_IDLE)
        sl_pool_remove(u->pool, u);
    u->state = SL_UP_CLOSED;
    u->pool->nopen--;
    sl_metrics_upstream_conns_add(u->w->id, -1);
    event_del(&u->rev);
    event_del(&u->wev);
    sl_deadline_cancel(&u->timer);
    close(u->fd);
    u->fd = -1;
    if (u->client != NULL && u->client->up == u)
        u->client->up = NULL;
    u->client = NULL;
    TAILQ_INSERT_TAIL(&u->w->dead_upconns, u, link);
    sl_worker_schedule_reap(u->w);
}

/* Opens a non-blocking connection. Returns the new upstream connection in
 * state CONNECTING or ACTIVE, or NULL with errno set. */
static struct sl_upconn *up_connect(struct sl_worker *w, struct sl_pool *pool)
{
    int fd = socket(pool->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (const struct sockaddr *)&pool->addr, pool->addrlen);
    if (rc < 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        errno = err;
        return NULL;
    }
    struct sl_upconn *u = up_new(w, pool, fd);
    if (u == NULL) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    u->connect_start_us = sl_worker_now_us(w);
    if (rc == 0) {
        u->state = SL_UP_ACTIVE;
        event_add(&u->rev, NULL);
        u->reading = true;
    } else {
        u->state = SL_UP_CONNECTING;
        event_add(&u->wev, NULL);
        u->wev_pending = true;
    }
    return u;
}

static void up_pause_reading(struct sl_upconn *u)
{
    if (u->reading) {
        event_del(&u->rev);
        u->reading = false;
    }
}

static void up_resume_reading(struct sl_upconn *u)
{
    if (!u->reading && u->state != SL_UP_CLOSED && u->state != SL_UP_CONNECTING) {
        event_add(&u->rev, NULL);
        u->reading = true;
    }
}

/* Writes pending request bytes. Returns 0, or -1 when the connection failed
 * (up_fail has run). */
static int up_flush(struct sl_upconn *u)
{
    while (u->out_sent < sl_buf_len(&u->out)) {
        ssize_t n = write(u->fd, sl_buf_head(&u->out) + u->out_sent,
                          sl_buf_len(&u->out) - u->out_sent);
        if (n > 0) {
            u->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!u->wev_pending) {
                event_add(&u->wev, NULL);
                u->wev_pending = true;
            }
            return 0;
        }
        up_fail(u, FAIL_IO, errno);
        return -1;
    }
    if (!u->replayable || sl_buf_len(&u->out) > REPLAY_MAX) {
        u->replayable = false;
        sl_buf_consume(&u->out, u->out_sent);
        u->out_sent = 0;
    }
    if (u->wev_pending) {
        event_del(&u->wev);
        u->wev_pending = false;
    }
    if (u->client != NULL && u->client->state == SL_CONN_ACTIVE)
        sl_conn_resume_reading(u->client);
    return 0;
}

/* Binds u to the client's request and queues the request bytes: carry when
 * retrying (the bytes of the failed attempt), else a freshly built head. */
static int up_attach(struct sl_conn *c, struct sl_upconn *u, struct sl_buf *carry)
{
    u->client = c;
    c->up = u;
    u->resp_bytes = 0;
    u->replayable = true;
    u->out_sent = 0;
    struct sl_req *r = &c->req;
    /* The loop's cached clock does not move within one callback: an
     * attempt made in the turn the request's head came in starts when the
     * request did, without a clock read. Retries (carry) and requests that
     * waited for their whole body may come later: they read it. */
    r->up_start_us = r->start_us;
    r->up_first_byte_us = 0;
    r->up_reused = u->reused;
    sl_reader_reset(&u->reader);
    if (carry != NULL) {
        sl_buf_fini(&u->out);
        u->out = *carry;
        memset(carry, 0, sizeof *carry);
        r->up_start_us = sl_worker_now_us(c->w);
    } else if (sl_proxy_build_request_head(c, u, &u->out) < 0) {
        return -1;
    } else if (c->req.req_body.state == SL_BODY_DONE) {
        /* the body a plugin phase had whole goes right behind its head */
        if (sl_buf_append(&u->out, sl_body_data(&c->req.req_body),
                          sl_body_len(&c->req.req_body)) < 0)
            return -1;
        r->up_start_us = sl_worker_now_us(c->w);
    }
    if (u->state == SL_UP_CONNECTING)
        up_arm_timer(u, upconf(c)->connect_timeout_ms);
    else
        up_arm_timer(u, upconf(c)->response_timeout_ms);
    return 0;
}

static void report_down(struct sl_conn *c, struct sl_backend *b, int err)
{
    const struct sl_upstream_conf *uc = upconf(c);
    int64_t now = sl_worker_now_ms(c->w);
    if (sl_backend_mark_down(b, now, uc->fail_cooldown_ms))
        SL_WARN("upstream %s: backend %s failed: %s; skipped for %d ms",
                uc->name, b->conf->addr.text, strerror(err), uc->fail_cooldown_ms);
}

/* Picks a backend (the balancer plugin's choice, else the upstream's
 * balancer) and a connection for the request, moving on to the next
 * backend when connecting fails at once. Returns 0, or -1 when the client
 * was answered (502) instead. */
static int attempt(struct sl_conn *c, struct sl_buf *carry)
{
    struct sl_req *r = &c->req;
    struct sl_worker *w = c->w;
    struct sl_upstream *up = r->upstream;
    for (;;) {
        int64_t now = sl_worker_now_ms(w);
        int i;
        if (r->chosen != NULL) {
            /* A balancer plugin's pick is the only backend tried (api.h,
             * sl_api_set_backend): the plugin decided where this request
             * may go, so failing over elsewhere would overrule it. */
            size_t ci = (size_t)(r->chosen - up->backends);
            i = r->tried[ci / 8] & (1u << (ci % 8)) ? -1 : (int)ci;
        } else {
            i = up->lb->pick(r->wg->lb_states[up->index], up, r->tried, now);
        }
        if (i < 0) {
            if (carry != NULL)
                sl_buf_fini(carry);
            /* Every backend failed: answer as the last failure deserves
             * (504 when it timed out). */
            sl_conn_reply(c, r->fail_status ? r->fail_status : 502, false);
            return -1;
        }
        r->tried[i / 8] |= (uint8_t)(1u << (i % 8));
        r->attempts++;
        struct sl_backend *b = &up->backends[i];
        r->backend = b;
        struct sl_pool *pool = r->wg->pools_by_backend[b->gidx];
        r->backend_name = pool->name;
        struct sl_upconn *u = sl_pool_take(pool, now);
        if (u != NULL) {
            u->reused = true;
        } else {
            u = up_connect(w, pool);
            if (u == NULL) {
                int err = errno;
                sl_metrics_upstream_error(r->wg->gen, w->id, b->gidx,
                                          SL_METRICS_UP_CONNECT_REFUSED);
                report_down(c, b, err);
                continue;
            }
            if (u->state == SL_UP_ACTIVE)
                sl_metrics_upstream_connected(r->wg->gen, w->id, b->gidx, 0);
        }
        if (up_attach(c, u, carry) < 0) {
            sl_upconn_close(u);
            sl_conn_reply(c, 503, true);
            return -1;
        }
        if (u->state == SL_UP_ACTIVE && !c->in_feed)
            return up_flush(u) < 0 && c->state != SL_CONN_ACTIVE ? -1 : 0;
        return 0;
    }
}

int sl_proxy_start(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    size_t n = r->upstream->nbackends;
    r->tried = sl_arena_alloc(&c->arena, (n + 7) / 8);
    if (r->tried == NULL) {
        sl_conn_reply(c, 503, true);
        return -1;
    }
    memset(r->tried, 0, (n + 7) / 8);
    if (attempt(c, NULL) < 0)
        return -1;
    /* We answer Expect ourselves (and do not forward it): the client may
     * send its body as soon as a backend has been chosen. */
    if (r->expect_continue && c->state == SL_CONN_ACTIVE)
        sl_conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

int sl_proxy_body(struct sl_conn *c, const char *p, size_t n)
{
    struct sl_upconn *u = c->up;
    if (u == NULL)
        return 0;   /* already answered; the rest of the body is dropped */
    int rc;
    if (c->req.head->chunked) {
        rc = sl_buf_append_hex(&u->out, n);
        rc |= sl_buf_append(&u->out, "\r\n", 2);
        rc |= sl_buf_append(&u->out, p, n);
        rc |= sl_buf_append(&u->out, "\r\n", 2);
    } else {
        rc = sl_buf_append(&u->out, p, n);
    }
    if (rc < 0) {
        sl_conn_abort(c);
        return -1;
    }
    if (sl_buf_len(&u->out) - u->out_sent > UP_OUT_HIGH)
        sl_conn_pause_reading(c);
    if (u->state == SL_UP_ACTIVE && !c->in_feed)
        return up_flush(u);
    return 0;
}

static void finish_exchange(struct sl_upconn *u);

void sl_proxy_body_done(struct sl_conn *c)
{
    struct sl_upconn *u = c->up;
    if (u == NULL) {
        /* The response finished (or failed) before the body did. */
        return;
    }
    if (c->req.head->chunked && sl_buf_append(&u->out, "0\r\n\r\n", 5) < 0) {
        sl_conn_abort(c);
        return;
    }
    if (u->state == SL_UP_ACTIVE && !c->in_feed)
        up_flush(u);
}

void sl_proxy_flush(struct sl_conn *c)
{
    struct sl_upconn *u = c->up;
    if (u != NULL && u->state == SL_UP_ACTIVE && u->out_sent < sl_buf_len(&u->out))
        up_flush(u);
}

void sl_proxy_detach(struct sl_conn *c)
{
    struct sl_upconn *u = c->up;
    if (u == NULL)
        return;
    c->up = NULL;
    u->client = NULL;
    sl_upconn_close(u);
}

void sl_proxy_client_drained(struct sl_conn *c)
{
    struct sl_upconn *u = c->up;
    if (u != NULL && !u->reading && sl_conn_out_is_low(c))
        up_resume_reading(u);
}

/* --- failures and retries ------------------------------------------------- */

static int status_for(enum fail_kind kind)
{
    return kind == FAIL_TIMEOUT || kind == FAIL_CONNECT_TIMEOUT ? 504 : 502;
}

/* What each failure counts as in sluice_upstream_errors_total. */
static const enum sl_metrics_up_error metric_error[] = {
    [FAIL_CONNECT] = SL_METRICS_UP_CONNECT_REFUSED,
    [FAIL_CONNECT_TIMEOUT] = SL_METRICS_UP_CONNECT_TIMEOUT,
    [FAIL_IO] = SL_METRICS_UP_RESET,
    [FAIL_TIMEOUT] = SL_METRICS_UP_RESPONSE_TIMEOUT,
    [FAIL_PROTOCOL] = SL_METRICS_UP_BAD_RESPONSE,
    [FAIL_TRUNCATED] = SL_METRICS_UP_TRUNCATED,
};

static void up_fail(struct sl_upconn *u, enum fail_kind kind, int err)
{
    struct sl_conn *c = u->client;
    if (c == NULL) {
        sl_upconn_close(u);
        return;
    }
    struct sl_req *r = &c->req;
    sl_metrics_upstream_error(r->wg->gen, c->w->id, r->backend->gidx, metric_error[kind]);
    bool nothing_back = u->resp_bytes == 0 && !r->resp_started;
    struct sl_buf carry = {0};
    bool can_carry = u->replayable && nothing_back;
    if (can_carry) {
        carry = u->out;
        memset(&u->out, 0, sizeof u->out);
    }
    bool stale = u->reused && kind == FAIL_IO && nothing_back;
    sl_upconn_close(u);
    if (kind == FAIL_CONNECT || kind == FAIL_CONNECT_TIMEOUT)
        report_down(c, r->backend, kind == FAIL_CONNECT_TIMEOUT ? ETIMEDOUT : err);
    if (can_carry && stale && !r->stale_retried) {
        /* An idle keep-alive connection the origin closed under us: the
         * request never reached it, so one fresh connection is safe. */
        r->stale_retried = true;
        struct sl_upconn *fresh = up_connect(c->w, u->pool);
        if (fresh == NULL)
            sl_metrics_upstream_error(r->wg->gen, c->w->id, r->backend->gidx,
                                      SL_METRICS_UP_CONNECT_REFUSED);
        if (fresh != NULL && up_attach(c, fresh, &carry) == 0) {
            if (fresh->state == SL_UP_ACTIVE)
                up_flush(fresh);
            return;
        }
        if (fresh != NULL)
            sl_upconn_close(fresh);
        kind = FAIL_CONNECT;
    }
    r->fail_status = status_for(kind);
    if (can_carry && (kind == FAIL_CONNECT || kind == FAIL_CONNECT_TIMEOUT)) {
        /* Nothing reached the origin: the next backend may take it. */
        attempt(c, &carry);
        return;
    }
    sl_buf_fini(&carry);
    if (r->resp_body.state == SL_BODY_BUFFERING || r->resp_body.over) {
        /* The origin's head was held for the response body phase: none of
         * its fields may leak into the 502 that replaces it. */
        memset(&r->resp_headers, 0, sizeof r->resp_headers);
    }
    if (r->local_status == 0 && !r->resp_body.over)
        SL_INFO("request %s: upstream %s: %s", r->id, r->backend_name ? r->backend_name : "-",
            kind == FAIL_TIMEOUT ? "response timed out"
            : kind == FAIL_PROTOCOL ? "malformed response"
            : kind == FAIL_TRUNCATED ? "closed mid-response"
            : strerror(err ? err : ECONNRESET));
    if (r->resp_started && r->status != 101 && c->bytes_written == r->resp_mark_written) {
        /* Nothing of this response reached the socket yet (the head and
         * the bad bytes came in one read): take it back and say 502. */
        c->out.end = c->out.start + r->resp_mark_len;
        sl_conn_drop_spans(c);
        r->resp_started = false;
        r->bytes_sent = 0;
        /* ... and none of its fields go into the 502. */
        memset(&r->resp_headers, 0, sizeof r->resp_headers);
    }
    if (r->resp_started) {
        /* Part of the response is out: closing is the only honest way to
         * tell the client it is incomplete. */
        sl_conn_flush(c);
        if (c->state != SL_CONN_CLOSED)
            sl_conn_abort(c);
        return;
    }
    if (r->local_status != 0) {
        /* A plugin's response phase failed: its 500 replaces the origin's
         * answer, none of whose fields may leak into it. */
        memset(&r->resp_headers, 0, sizeof r->resp_headers);
        sl_conn_reply(c, r->local_status, false);
        return;
    }
    sl_conn_reply(c, status_for(kind), false);
}

/* --- response ------------------------------------------------------------- */

static void finish_exchange(struct sl_upconn *u)
{
    struct sl_conn *c = u->client;
    struct sl_req *r = &c->req;
    bool reusable = u->reader.head.keep_alive && r->body_done &&
                    u->out_sent == sl_buf_len(&u->out) && sl_buf_len(&u->in) == 0 &&
                    !r->upgrade;
    c->up = NULL;
    u->client = NULL;
    /* One clock read for the pool's idle stamp and the request's end
     * (metrics, access log), which comes in this same loop turn. */
    int64_t now_us = sl_worker_now_us(u->w);
    r->end_us = now_us;
    if (reusable && u->pool->max_idle > 0) {
        sl_buf_clear(&u->out);
        u->out_sent = 0;
        sl_pool_put(u->pool, u, now_us / 1000);
    } else {
        sl_upconn_close(u);
    }
    if (!r->body_done)
        r->keep_alive = false;  /* unread body bytes: the client must reconnect */
    if (sl_conn_flush(c) < 0)
        return;
    sl_conn_request_done(c);
}

static void start_tunnel(struct sl_upconn *u, size_t used)
{
    struct sl_conn *c = u->client;
    u->state = SL_UP_TUNNEL;
    c->state = SL_CONN_TUNNEL;
    c->upgrade_paused = false;
    sl_buf_consume(&u->in, used);
    if (sl_buf_len(&u->in) > 0) {
        sl_buf_append(&c->out, sl_buf_head(&u->in), sl_buf_len(&u->in));
        sl_buf_clear(&u->in);
    }
    u->replayable = false;
    up_arm_timer(u, upconf(c)->response_timeout_ms);
    if (sl_conn_flush(c) < 0)
        return;
    if (sl_buf_len(&c->in) > 0)
        sl_proxy_tunnel_data(c);
}

static void tunnel_read(struct sl_upconn *u, ssize_t n)
{
    struct sl_conn *c = u->client;
    if (n == 0 || c == NULL) {
        if (c != NULL)
            sl_conn_close_after_flush(c);
        else
            sl_upconn_close(u);
        return;
    }
    sl_buf_append(&c->out, sl_buf_head(&u->in), sl_buf_len(&u->in));
    sl_buf_clear(&u->in);
    up_arm_timer(u, upconf(c)->response_timeout_ms);
    if (sl_conn_flush(c) == 0 && sl_conn_out_is_full(c))
        up_pause_reading(u);
}

void sl_proxy_tunnel_data(struct sl_conn *c)
{
    struct sl_upconn *u = c->up;
    if (u == NULL) {
        sl_buf_clear(&c->in);
        return;
    }
    sl_buf_append(&u->out, sl_buf_head(&c->in), sl_buf_len(&c->in));
    sl_buf_clear(&c->in);
    if (up_flush(u) == 0 && sl_buf_len(&u->out) - u->out_sent > UP_OUT_HIGH)
        sl_conn_pause_reading(c);
}

void sl_proxy_tunnel_eof(struct sl_conn *c)
{
    struct sl_upconn *u = c->up;
    if (u != NULL) {
        up_flush(u);
        if (c->up != NULL)
            shutdown(u->fd, SHUT_WR);
    }
    sl_conn_close_after_flush(c);
}

static void handle_response_bytes(struct sl_upconn *u)
{
    struct sl_conn *c = u->client;
    size_t used = 0;
    int rc = sl_reader_feed(&u->reader, sl_buf_head(&u->in), sl_buf_len(&u->in), &used);
    if (u->client == NULL || c->state == SL_CONN_CLOSED)
        return;
    if (rc < 0) {
        up_fail(u, FAIL_PROTOCOL, 0);
        return;
    }
    if (rc == 2) {
        start_tunnel(u, used);
        return;
    }
    sl_buf_consume(&u->in, used);
    if (c->req.resp_done) {
        finish_exchange(u);
        return;
    }
    up_arm_timer(u, upconf(c)->response_timeout_ms);
    if (sl_conn_flush(c) == 0 && sl_conn_out_is_full(c))
        up_pause_reading(u);
}

static void up_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_upconn *u = arg;
    ssize_t n = sl_buf_read(&u->in, u->fd, UP_READ_CHUNK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (u->state == SL_UP_IDLE || u->client == NULL) {
        /* An idle pooled connection has nothing to say: a close, or bytes
         * we could never match to a request. */
        sl_upconn_close(u);
        return;
    }
    if (u->state == SL_UP_TUNNEL) {
        if (n < 0)
            n = 0;
        tunnel_read(u, n);
        return;
    }
    if (n < 0) {
        up_fail(u, u->resp_bytes ? FAIL_TRUNCATED : FAIL_IO, errno);
        return;
    }
    if (n == 0) {
        if (u->resp_bytes == 0) {
            up_fail(u, FAIL_IO, ECONNRESET);
            return;
        }
        if (sl_reader_finish(&u->reader) < 0 || !u->client->req.resp_done) {
            up_fail(u, FAIL_TRUNCATED, 0);
            return;
        }
        u->reader.head.keep_alive = false;
        finish_exchange(u);
        return;
    }
    bool first = u->resp_bytes == 0;
    if (first) {
        u->client->req.up_first_byte_us = -1;   /* now: read below or at the request's end */
        if (u->replayable) {
            /* The origin has started answering: replay is no longer possible. */
            u->replayable = false;
            sl_buf_consume(&u->out, u->out_sent);
            u->out_sent = 0;
        }
    }
    u->resp_bytes += (uint64_t)n;
    handle_response_bytes(u);
    /* The first byte's time is this loop turn's: the request's end takes
     * it if the request ended in this turn (it reads the clock anyway);
     * otherwise it is read once here. */
    if (first && u->client != NULL && u->client->req.up_first_byte_us < 0)
        u->client->req.up_first_byte_us = sl_worker_now_us(u->w);
}

static void up_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_upconn *u = arg;
    if (u->state == SL_UP_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            up_fail(u, FAIL_CONNECT, err);
            return;
        }
        u->state = SL_UP_ACTIVE;
        event_add(&u->rev, NULL);
        u->reading = true;
        if (u->client != NULL) {
            struct sl_req *r = &u->client->req;
            sl_metrics_upstream_connected(r->wg->gen, u->w->id, r->backend->gidx,
                                          sl_worker_now_us(u->w) - u->connect_start_us);
            up_arm_timer(u, upconf(u->client)->response_timeout_ms);
        }
    }
    up_flush(u);
}

static void up_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_upconn *u = arg;
    if (!sl_deadline_expired(&u->timer, sl_worker_now_ms(u->w)))
        return;
    switch (u->state) {
    case SL_UP_IDLE:
        sl_upconn_close(u);     /* idle past the pool's idle_timeout */
        return;
    case SL_UP_CONNECTING:
        up_fail(u, FAIL_CONNECT_TIMEOUT, ETIMEDOUT);
        return;
    case SL_UP_TUNNEL:
        if (u->client != NULL)
            sl_conn_abort(u->client);
        else
            sl_upconn_close(u);
        return;
    default:
        up_fail(u, FAIL_TIMEOUT, ETIMEDOUT);
        return;
    }
}
