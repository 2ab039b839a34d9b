/* The origin's response as the upstream reader reports it: interim
 * responses, the framing towards the client, the body and the end. */

#include "conn.h"
#include "gen.h"
#include "headers.h"
#include "log.h"
#include "plugin.h"
#include "proxy.h"
#include "proxy_head.h"
#include "response.h"
#include "worker.h"

static enum sl_framing choose_framing(const struct sl_req *r, const struct sl_head *h,
                                      bool eof_delimited)
{
    if (r->is_head || h->status == 204 || h->status == 304)
        return SL_FRAMING_NONE;
    if (h->has_length && !h->chunked)
        return SL_FRAMING_LENGTH;
    (void)eof_delimited;
    /* Chunked or close-delimited from the origin: an HTTP/1.1 client gets
     * chunks (so the connection can stay), an HTTP/1.0 client gets the
     * bytes and a close. */
    return r->head->http_minor >= 1 ? SL_FRAMING_CHUNKED : SL_FRAMING_CLOSE;
}

static bool is_bodiless(const struct sl_req *r, int status)
{
    return r->is_head || status == 204 || status == 304;
}

/* A plugin of the chain needs the whole response body: the head waits (its
 * response_headers phase ran) until the body is in and its phase ran. A
 * body declared larger than max_body_buffer is refused at once: 502. */
static int hold_response(struct sl_conn *c, const struct sl_head *h)
{
    struct sl_req *r = &c->req;
    size_t max = r->wg->gen->cfg->limits.max_body_buffer;
    bool bodiless = is_bodiless(r, h->status);
    if (!bodiless && h->has_length && !h->chunked && h->content_length > max) {
        r->resp_body.over = true;
        SL_WARN("request %s: upstream %s: response body of %llu bytes over "
                "limits.max_body_buffer (%zu): 502", r->id, r->backend_name,
                (unsigned long long)h->content_length, max);
        return -1;
    }
    if (sl_body_start(&r->resp_body, bodiless || h->chunked ? 0 : h->content_length) < 0)
        return -1;
    return r->is_head ? 1 : 0;
}

/* The whole body is in: run response_body, then queue the head with the
 * body's own Content-Length (HEAD, 204 and 304 keep their framing fields
 * and send no body) and the body. The body is queued as a span: it stays
 * in the request's buffer until the exchange ends, which flushes first. */
static int release_response(struct sl_conn *c, struct sl_upconn *u)
{
    struct sl_req *r = &c->req;
    if (is_bodiless(r, u->reader.head.status))
        sl_buf_clear(&r->resp_body.buf);
    /* A failing phase (on_error: fail) turns the answer into its 500:
     * refusing the message lets the proxy drop this response. */
    if (sl_body_run_phase(c, &r->resp_body, SL_PHASE_RESPONSE_BODY) == SL_ACTION_RESPOND)
        return -1;
    r->framing = is_bodiless(r, r->status) ? SL_FRAMING_NONE : SL_FRAMING_LENGTH;
    r->resp_started = true;
    r->resp_mark_len = sl_buf_len(&c->out);
    r->resp_mark_written = c->bytes_written;
    if (sl_proxy_build_response_head(c, u, false) < 0)
        return -1;
    size_t n = sl_body_len(&r->resp_body);
    if (r->framing == SL_FRAMING_LENGTH && n > 0) {
        if (sl_conn_add_span(c, sl_body_data(&r->resp_body), n) < 0)
            return -1;
        r->bytes_sent += n;
    }
    r->resp_done = true;
    return 1;
}

static int on_head(void *owner)
{
    struct sl_upconn *u = owner;
    struct sl_conn *c = u->client;
    struct sl_req *r = &c->req;
    const struct sl_head *h = &u->reader.head;
    if (h->status < 100 || h->status > 999)
        return -1;
    if (h->status == 101) {
        if (!r->upgrade)
            return -1;
        r->status = 101;
        r->resp_started = true;
        return sl_proxy_build_response_head(c, u, true);
    }
    if (h->status < 200) {
        /* HTTP/1.0 clients do not understand interim responses (RFC 9110
         * §15.2); 100 Continue was already sent by the proxy itself. */
        if (r->head->http_minor >= 1 && h->status != 100)
            return sl_proxy_build_response_head(c, u, true);
        return 0;
    }
    r->status = h->status;
    sl_hlist_view_spare(&r->resp_headers, h->headers, h->nheaders, h->headers_cap);
    /* A failing response phase (on_error: fail) makes the whole answer a
     * 500: refusing the head lets the proxy drop this response. */
    if (r->chain != NULL && r->chain->n[SL_PHASE_RESPONSE_HEADERS] > 0 &&
        sl_chain_run(r->chain, SL_PHASE_RESPONSE_HEADERS, c) == SL_ACTION_RESPOND)
        return -1;
    if (c->w->draining)
        r->keep_alive = false;
    if (r->chain != NULL && r->chain->needs_response_body)
        return hold_response(c, h);
    r->framing = choose_framing(r, h, false);
    if (r->framing == SL_FRAMING_CLOSE)
        r->keep_alive = false;
    r->resp_started = true;
    r->resp_mark_len = sl_buf_len(&c->out);
    r->resp_mark_written = c->bytes_written;
    if (sl_proxy_build_response_head(c, u, false) < 0)
        return -1;
    return r->is_head ? 1 : 0;
}

static int on_body(void *owner, const char *p, size_t n)
{
    struct sl_upconn *u = owner;
    struct sl_conn *c = u->client;
    struct sl_req *r = &c->req;
    int rc = 0;
    if (r->resp_body.state == SL_BODY_BUFFERING) {
        rc = sl_body_append(&r->resp_body, p, n, r->wg->gen->cfg->limits.max_body_buffer);
        if (rc > 0)
            SL_WARN("request %s: upstream %s: response body over limits.max_body_buffer "
                    "(%zu): 502", r->id, r->backend_name, r->wg->gen->cfg->limits.max_body_buffer);
        return rc != 0 ? -1 : 0;
    }
    if (r->framing == SL_FRAMING_CHUNKED) {
        size_t before = sl_buf_len(&c->out);
        rc |= sl_buf_append_hex(&c->out, n);
        rc |= sl_buf_append(&c->out, "\r\n", 2);
        rc |= sl_buf_append(&c->out, p, n);
        rc |= sl_buf_append(&c->out, "\r\n", 2);
        r->bytes_sent += sl_buf_len(&c->out) - before - n;
    } else {
        /* p points into the upstream's input, which stays put until the
         * client is flushed after this read: no copy. */
        rc = sl_conn_add_span(c, p, n);
    }
    r->bytes_sent += n;
    return rc < 0 ? -1 : 0;
}

static int on_done(void *owner)
{
    struct sl_upconn *u = owner;
    struct sl_conn *c = u->client;
    struct sl_req *r = &c->req;
    int status = u->reader.head.status;
    if (status < 200)
        return 0;
    if (r->resp_body.state == SL_BODY_BUFFERING)
        return release_response(c, u);
    if (r->framing == SL_FRAMING_CHUNKED) {
        if (sl_buf_append(&c->out, "0\r\n\r\n", 5) < 0)
            return -1;
        r->bytes_sent += 5;
    }
    r->resp_done = true;
    return 1;
}

const struct sl_reader_ops sl_response_reader_ops = {
    .on_head = on_head,
    .on_body = on_body,
    .on_done = on_done,
};
