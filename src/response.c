/* The origin's response as the upstream reader reports it: interim
 * responses, the framing towards the client, the body and the end. */

#include "conn.h"
#include "headers.h"
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
    sl_hlist_view(&r->resp_headers, h->headers, h->nheaders);
    /* A failing response phase (on_error: fail) makes the whole answer a
     * 500: refusing the head lets the proxy drop this response. */
    if (r->chain != NULL && r->chain->n[SL_PHASE_RESPONSE_HEADERS] > 0 &&
        sl_chain_run(r->chain, SL_PHASE_RESPONSE_HEADERS, c) == SL_ACTION_RESPOND)
        return -1;
    if (c->w->draining)
        r->keep_alive = false;
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
