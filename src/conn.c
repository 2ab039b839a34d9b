#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "config-t.h"
#include "gen.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "proxy.h"
#include "request.h"
#include "worker.h"

#define READ_CHUNK 16384
#define LINGER_MS 2000
/* Output above this pauses the producer (upstream reads, pipelined
 * requests); below the low mark it resumes. A slow client therefore holds
 * at most about OUT_HIGH + one read of response bytes in the proxy. */
#define OUT_HIGH (256 * 1024)
#define OUT_LOW (64 * 1024)

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);
static void process_input(struct sl_conn *c);

static const struct sl_timeouts_conf *timeouts(const struct sl_conn *c)
{
    return &c->w->gen->cfg->timeouts;
}

static void arm_timer(struct sl_conn *c, int ms)
{
    sl_deadline_set(&c->timer, sl_worker_now_ms(c->w), ms);
}

struct sl_conn *sl_conn_new(struct sl_worker *w, int fd, const struct sockaddr *peer)
{
    struct sl_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    c->state = SL_CONN_IDLE;
    if (peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, c->peer, sizeof c->peer);
    else if (peer->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, c->peer, sizeof c->peer);
    else
        snprintf(c->peer, sizeof c->peer, "unknown");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const struct sl_limits_conf *lim = &w->gen->cfg->limits;
    struct sl_reader_limits rl = {
        .max_line = lim->max_request_line,
        .max_header_size = lim->max_header_size,
        .max_headers = lim->max_headers,
    };
    sl_reader_init(&c->reader, true, &sl_request_reader_ops, c, &rl);
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    sl_deadline_init(&c->timer, w->base, on_timer, c);
    event_add(&c->rev, NULL);
    c->reading = true;
    arm_timer(c, timeouts(c)->client_header_ms);
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->nconns++;
    sl_metrics_client_conns_add(w->id, 1);
    return c;
}

static void unpin(struct sl_conn *c);

void sl_conn_free(struct sl_conn *c)
{
    unpin(c);   /* only the plugin harness frees a connection with a request still on */
    sl_body_fini(&c->req.req_body);
    sl_body_fini(&c->req.resp_body);
    sl_reader_fini(&c->reader);
    sl_buf_fini(&c->in);
    sl_buf_fini(&c->out);
    sl_arena_fini(&c->arena);
    free(c);
}

static void log_request(struct sl_conn *c);

static void release(struct sl_conn *c)
{
    if (c->state == SL_CONN_CLOSED)
        return;
    if (c->up != NULL)
        sl_proxy_detach(c);
    /* Aborted, or closing after a tunnel or a failure: the log phase still
     * runs (log_request does nothing for a request already logged). */
    log_request(c);
    c->state = SL_CONN_CLOSED;
    event_del(&c->rev);
    event_del(&c->wev);
    sl_deadline_cancel(&c->timer);
    close(c->fd);
    c->fd = -1;
    struct sl_worker *w = c->w;
    TAILQ_REMOVE(&w->conns, c, link);
    w->nconns--;
    sl_metrics_client_conns_add(w->id, -1);
    TAILQ_INSERT_TAIL(&w->dead_conns, c, link);
    sl_worker_schedule_reap(w);
}

void sl_conn_abort(struct sl_conn *c)
{
    release(c);
}

/* Closing a socket with unread input makes the kernel send a reset, which
 * can destroy the response still in flight to the client (RFC 9112 §9.6).
 * So we half-close, read and drop whatever still comes for a moment, and
 * close when the client does. */
static void start_linger(struct sl_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->state = SL_CONN_CLOSING;
    c->lingering = true;
    if (!c->reading) {
        event_add(&c->rev, NULL);
        c->reading = true;
    }
    arm_timer(c, LINGER_MS);
}

void sl_conn_close_after_flush(struct sl_conn *c)
{
    if (c->state == SL_CONN_CLOSED)
        return;
    if (c->up != NULL)
        sl_proxy_detach(c);
    c->state = SL_CONN_CLOSING;
    if (sl_buf_len(&c->out) == 0)
        start_linger(c);
    else
        sl_conn_flush(c);
}

static int materialize_spans(struct sl_conn *c)
{
    for (size_t i = 0; i < c->nspans; i++)
        if (sl_buf_append(&c->out, c->spans[i].iov_base, c->spans[i].iov_len) < 0)
            return -1;
    c->nspans = 0;
    return 0;
}

int sl_conn_add_span(struct sl_conn *c, const char *p, size_t n)
{
    if (c->nspans == sizeof c->spans / sizeof c->spans[0] && materialize_spans(c) < 0) {
        release(c);
        return -1;
    }
    c->spans[c->nspans++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    return 0;
}

void sl_conn_drop_spans(struct sl_conn *c)
{
    c->nspans = 0;
}

/* One writev for the buffered bytes and the spans behind them; whatever
 * the socket does not take is copied into out, so no span outlives the
 * call. Returns 1 when the socket is full, 0 when all went, -1 on error. */
static int write_spans(struct sl_conn *c)
{
    struct iovec iov[1 + sizeof c->spans / sizeof c->spans[0]];
    int n = 0;
    size_t total = 0;
    if (sl_buf_len(&c->out) > 0)
        iov[n++] = (struct iovec){.iov_base = sl_buf_head(&c->out), .iov_len = sl_buf_len(&c->out)};
    for (size_t i = 0; i < c->nspans; i++)
        iov[n++] = c->spans[i];
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    ssize_t w;
    do
        w = writev(c->fd, iov, n);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EAGAIN)
        return -1;
    size_t done = w > 0 ? (size_t)w : 0;
    c->bytes_written += done;
    size_t from_out = done < sl_buf_len(&c->out) ? done : sl_buf_len(&c->out);
    sl_buf_consume(&c->out, from_out);
    done -= from_out;
    size_t i = 0;
    while (i < c->nspans && done >= c->spans[i].iov_len)
        done -= c->spans[i++].iov_len;
    for (; i < c->nspans; i++) {
        if (sl_buf_append(&c->out, (char *)c->spans[i].iov_base + done,
                          c->spans[i].iov_len - done) < 0)
            return -1;
        done = 0;
    }
    c->nspans = 0;
    return (size_t)(w > 0 ? w : 0) < total ? 1 : 0;
}

int sl_conn_flush(struct sl_conn *c)
{
    if (c->nspans > 0) {
        int rc = write_spans(c);
        if (rc < 0) {
            SL_DEBUG("conn %s: write failed: %s", c->peer, strerror(errno));
            release(c);
            return -1;
        }
        if (rc == 1) {
            if (!c->wev_pending) {
                event_add(&c->wev, NULL);
                c->wev_pending = true;
            }
            arm_timer(c, timeouts(c)->send_ms);
            return 0;
        }
    }
    while (sl_buf_len(&c->out) > 0) {
        ssize_t n = write(c->fd, sl_buf_head(&c->out), sl_buf_len(&c->out));
        if (n > 0) {
            sl_buf_consume(&c->out, (size_t)n);
            c->bytes_written += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!c->wev_pending) {
                event_add(&c->wev, NULL);
                c->wev_pending = true;
            }
            arm_timer(c, timeouts(c)->send_ms);
            return 0;
        }
        SL_DEBUG("conn %s: write failed: %s", c->peer, strerror(errno));
        release(c);
        return -1;
    }
    if (c->wev_pending) {
        event_del(&c->wev);
        c->wev_pending = false;
    }
    if (c->state == SL_CONN_CLOSING && !c->lingering)
        start_linger(c);
    else if (c->up != NULL)
        sl_proxy_client_drained(c);
    return 0;
}

int sl_conn_send(struct sl_conn *c, const void *p, size_t n)
{
    if (sl_buf_append(&c->out, p, n) < 0) {
        release(c);
        return -1;
    }
    return sl_conn_flush(c);
}

bool sl_conn_out_is_full(const struct sl_conn *c)
{
    return sl_buf_len(&c->out) > OUT_HIGH;
}

bool sl_conn_out_is_low(const struct sl_conn *c)
{
    return sl_buf_len(&c->out) < OUT_LOW;
}

void sl_conn_pause_reading(struct sl_conn *c)
{
    if (c->reading) {
        event_del(&c->rev);
        c->reading = false;
    }
}

void sl_conn_resume_reading(struct sl_conn *c)
{
    if (!c->reading && c->state != SL_CONN_CLOSED && !c->peer_closed) {
        event_add(&c->rev, NULL);
        c->reading = true;
    }
}

bool sl_conn_close_if_idle(struct sl_conn *c)
{
    if (c->state != SL_CONN_IDLE || !sl_reader_is_idle(&c->reader) ||
        sl_buf_len(&c->in) > 0)
        return false;
    release(c);
    return true;
}

static void access_log(struct sl_conn *c, int64_t now_us)
{
    struct sl_req *r = &c->req;
    struct sl_head *h = r->head;
    if (c->w->alog.fd < 0)
        return;
    bool up = r->up_start_us != 0;
    /* < 0: the first byte came in this loop turn (proxy.c) */
    int64_t first = r->up_first_byte_us < 0 ? now_us : r->up_first_byte_us;
    struct sl_access_entry e = {
        .request_id = r->id,
        .client = c->peer,
        .method = llhttp_method_name((llhttp_method_t)h->method),
        .target = h->target,
        .target_len = h->target_len,
        .http_minor = h->http_minor,
        .status = r->status,
        .bytes_sent = r->bytes_sent,
        .duration_us = now_us - r->start_us,
        .backend = r->backend_name,
        .host = r->host ? r->host : "",
        .host_len = r->host_len,
        .route_host = r->route ? r->route->host : NULL,
        .route_path = r->route ? r->route->path : NULL,
        .upstream = r->backend_name != NULL && r->upstream ? r->upstream->conf->name : NULL,
        .upstream_us = up ? now_us - r->up_start_us : -1,
        .upstream_header_us = up && first ? first - r->up_start_us : -1,
        .fields = r->log_fields,
        .nfields = r->nlog_fields,
    };
    sl_accesslog_add(&c->w->alog, &e);
}

/* The end of a request's life, whichever way it ended (answered, failed,
 * aborted): the log phase runs exactly once, then the access log. */
static void log_request(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    if (r->head != NULL && !r->logged) {
        r->logged = true;
        if (r->chain != NULL) {
            if (r->chain->n[SL_PHASE_LOG] > 0)
                sl_chain_run(r->chain, SL_PHASE_LOG, c);
            sl_chain_request_done(r->chain, c);
        }
        int64_t now = r->end_us != 0 ? r->end_us : sl_worker_now_us(c->w);
        sl_metrics_request_done(c, now);
        access_log(c, now);
    } else if (r->head == NULL && r->status != 0 && !r->logged) {
        /* Refused before its head was whole (400, 408, 414, 431): no log
         * phase and no access-log record, but counted. */
        r->logged = true;
        sl_metrics_request_refused(c);
    }
    unpin(c);
    /* The log phase was the last reader of the buffered bodies (tested
     * first: most requests have none, and pay nothing). */
    if (r->req_body.buf.data != NULL)
        sl_body_fini(&r->req_body);
    if (r->resp_body.buf.data != NULL)
        sl_body_fini(&r->resp_body);
}

/* The request lets go of its generation: nothing of it (route, upstream,
 * chain, plugin config) may be used after this. Once per pin: wg is
 * cleared. */
static void unpin(struct sl_conn *c)
{
    if (c->req.wg != NULL) {
        sl_worker_unpin(c->w, c->req.wg);
        c->req.wg = NULL;
    }
}

void sl_conn_request_done(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    log_request(c);
    c->nrequests++;
    if (!r->keep_alive || !r->body_done || c->peer_closed || c->w->draining) {
        sl_conn_close_after_flush(c);
        return;
    }
    memset(r, 0, sizeof *r);
    sl_arena_reset(&c->arena);
    c->state = SL_CONN_IDLE;
    arm_timer(c, timeouts(c)->keepalive_ms);
    if (c->reader_paused) {
        c->reader_paused = false;
        sl_reader_resume(&c->reader);
    }
    if (!c->in_feed && sl_buf_len(&c->in) > 0)
        process_input(c);
}

/* The body of a local reply: a plugin's (sl_api_respond), or a short text
 * naming the status. */
static const char *reply_body(struct sl_req *r, int status, char *buf, size_t len,
                              size_t *blen)
{
    if (r->local_status == status) {
        *blen = r->local_body_len;
        return r->local_body ? r->local_body : "";
    }
    int n = snprintf(buf, len, "%d %s\n", status, sl_status_reason(status));
    *blen = (size_t)n;
    return buf;
}

static int append_reply_head(struct sl_conn *c, int status, size_t blen, bool close_after)
{
    struct sl_req *r = &c->req;
    struct sl_buf *out = &c->out;
    int minor = r->head != NULL ? r->head->http_minor : 1;
    int rc = sl_buf_printf(out, "HTTP/1.%d %d %s\r\nServer: sluice\r\nDate: %s\r\n",
                           minor == 0 ? 0 : 1, status, sl_status_reason(status),
                           sl_worker_http_date(c->w));
    bool has_type = false;
    for (size_t i = 0; i < r->resp_headers.n; i++) {
        const struct sl_header *hd = &r->resp_headers.v[i];
        if (sl_is_hop_by_hop(hd) || sl_name_is(hd, "content-length", 14))
            continue;
        has_type |= sl_name_is(hd, "content-type", 12);
        rc |= sl_buf_printf(out, "%.*s: %.*s\r\n", (int)hd->name_len, hd->name,
                            (int)hd->value_len, hd->value);
    }
    if (!has_type && blen > 0)
        rc |= sl_buf_append_str(out, "Content-Type: text/plain\r\n");
    /* 204 and 304 carry no body and 204 no Content-Length (RFC 9110 §8.6). */
    if (status != 204 && status != 304)
        rc |= sl_buf_printf(out, "Content-Length: %zu\r\n", blen);
    rc |= sl_buf_printf(out, "%s\r\n", close_after ? "Connection: close\r\n"
                        : (minor == 0 ? "Connection: keep-alive\r\n" : ""));
    return rc;
}

void sl_conn_reply(struct sl_conn *c, int status, bool close_after)
{
    struct sl_req *r = &c->req;
    if (r->resp_started) {
        release(c);
        return;
    }
    r->status = status;
    /* Local replies pass through the response phase too, so a plugin that
     * adds headers to every answer (CORS, request ids) sees them all. */
    if (r->chain != NULL && r->chain->n[SL_PHASE_RESPONSE_HEADERS] > 0 && !r->in_reply_phase) {
        r->in_reply_phase = true;
        if (sl_chain_run(r->chain, SL_PHASE_RESPONSE_HEADERS, c) == SL_ACTION_RESPOND) {
            memset(&r->resp_headers, 0, sizeof r->resp_headers);
            status = r->status = r->local_status;
        } else if (r->status != status) {
            status = r->status;     /* a plugin changed it */
        }
    }
    char text[96];
    size_t blen;
    const char *body = reply_body(r, status, text, sizeof text, &blen);
    /* And through the response body phase, as Kong runs body_filter on
     * its own exits: a plugin rewriting bodies sees every answer. */
    if (r->chain != NULL && r->chain->needs_response_body)
        sl_body_run_reply(c, &status, &body, &blen);
    if (status == 204 || status == 304)
        blen = 0;
    /* Unread body bytes would be taken for the next request: close. */
    if (!r->keep_alive || (r->has_body && !r->body_done) || c->w->draining)
        close_after = true;
    r->resp_started = true;
    r->resp_done = true;
    r->local = true;
    size_t before = sl_buf_len(&c->out);
    if (append_reply_head(c, status, blen, close_after) < 0 ||
        (!r->is_head && sl_buf_append(&c->out, body, blen) < 0)) {
        release(c);
        return;
    }
    r->bytes_sent = sl_buf_len(&c->out) - before;
    if (close_after) {
        r->keep_alive = false;
        log_request(c);
        sl_conn_close_after_flush(c);
        return;
    }
    if (sl_conn_flush(c) < 0)
        return;
    if (r->body_done)
        sl_conn_request_done(c);
}

/* --- input ---------------------------------------------------------------- */

static void handle_parse_error(struct sl_conn *c)
{
    int status = c->reader.error_status ? c->reader.error_status : 400;
    SL_DEBUG("conn %s: bad request: %s (%d)", c->peer,
             c->reader.error_reason ? c->reader.error_reason : "malformed", status);
    /* The origin must never see a message we could not frame: drop the
     * upstream side before anything more reaches it. */
    if (c->up != NULL)
        sl_proxy_detach(c);
    if (c->req.resp_started) {
        release(c);
        return;
    }
    c->req.keep_alive = false;
    sl_conn_reply(c, status, true);
}

static void process_input(struct sl_conn *c)
{
    while (sl_buf_len(&c->in) > 0) {
        if (c->state == SL_CONN_TUNNEL) {
            sl_proxy_tunnel_data(c);
            return;
        }
        if (c->state == SL_CONN_CLOSING || c->state == SL_CONN_CLOSED) {
            sl_buf_clear(&c->in);
            return;
        }
        /* A finished request waits for its response; pipelined bytes stay
         * queued, and so do they while the client is not reading ours. */
        if (c->reader_paused || c->upgrade_paused || sl_conn_out_is_full(c))
            return;
        if (c->state == SL_CONN_IDLE && sl_reader_is_idle(&c->reader) && c->nrequests > 0)
            arm_timer(c, timeouts(c)->client_header_ms);
        size_t used = 0;
        c->in_feed = true;
        int rc = sl_reader_feed(&c->reader, sl_buf_head(&c->in), sl_buf_len(&c->in), &used);
        c->in_feed = false;
        if (c->state == SL_CONN_CLOSED)
            return;
        if (c->state == SL_CONN_CLOSING) {
            sl_buf_clear(&c->in);
            return;
        }
        sl_buf_consume(&c->in, used);
        if (rc >= 0 && c->up != NULL)
            sl_proxy_flush(c);
        if (c->state == SL_CONN_CLOSED)
            return;
        if (rc == 1) {
            c->reader_paused = true;
        } else if (rc == 2) {
            c->upgrade_paused = true;
        } else if (rc < 0) {
            handle_parse_error(c);
            return;
        }
    }
}

static void on_eof(struct sl_conn *c)
{
    c->peer_closed = true;
    sl_conn_pause_reading(c);
    switch (c->state) {
    case SL_CONN_ACTIVE:
        /* A client that half-closes after its request still gets the
         * response; one that leaves mid-body aborted it. */
        if (!c->req.body_done)
            release(c);
        return;
    case SL_CONN_TUNNEL:
        sl_proxy_tunnel_eof(c);
        return;
    default:
        release(c);
        return;
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_conn *c = arg;
    ssize_t n = sl_buf_read(&c->in, c->fd, READ_CHUNK);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        release(c);
        return;
    }
    if (c->state == SL_CONN_CLOSING) {
        sl_buf_clear(&c->in);
        if (n == 0)
            release(c);
        return;
    }
    if (n == 0) {
        on_eof(c);
        return;
    }
    if (c->state == SL_CONN_ACTIVE && c->req.has_body && !c->req.body_done)
        arm_timer(c, timeouts(c)->client_body_ms);
    process_input(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sl_conn_flush(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_conn *c = arg;
    if (!sl_deadline_expired(&c->timer, sl_worker_now_ms(c->w)))
        return;
    switch (c->state) {
    case SL_CONN_IDLE:
        if (sl_reader_is_idle(&c->reader) && sl_buf_len(&c->in) == 0) {
            release(c);     /* idle keep-alive connection */
            return;
        }
        SL_DEBUG("conn %s: request head timed out", c->peer);
        c->req.keep_alive = false;
        sl_conn_reply(c, 408, true);
        return;
    case SL_CONN_ACTIVE:
        if (c->wev_pending) {
            SL_DEBUG("conn %s: send timed out", c->peer);
            release(c);
        } else if (c->req.has_body && !c->req.body_done) {
            SL_DEBUG("conn %s: request body timed out", c->peer);
            if (c->up != NULL)
                sl_proxy_detach(c);
            sl_conn_reply(c, 408, true);
        }
        /* Otherwise the upstream side's own timer governs. */
        return;
    case SL_CONN_TUNNEL:
        if (c->wev_pending)
            release(c);
        return;
    default:
        release(c);
        return;
    }
}
