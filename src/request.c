#include "request.h"

#include <string.h>
#include <strings.h>

#include "conn.h"
#include "gen.h"
#include "headers.h"
#include "log.h"
#include "plugin.h"
#include "proxy.h"
#include "proxy_head.h"
#include "router.h"
#include "worker.h"

bool sl_is_hop_by_hop(const struct sl_header *hd)
{
    return (sl_field_kind(hd) & (SL_FIELD_HOP | SL_FIELD_CONNECTION)) != 0;
}

/* "000102...ff": two digits a byte, so an id takes 8 steps, not 16. */
static const char hex_pairs[513] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static void format_id(struct sl_conn *c)
{
    uint64_t v = ((uint64_t)(unsigned)c->w->id << 48) ^ ++c->w->next_request;
    char *p = c->req.id;
    for (int i = 7; i >= 0; i--, v >>= 8)
        memcpy(p + 2 * i, hex_pairs + 2 * (v & 0xff), 2);
    p[16] = '\0';
}

/* Lowercase of each byte allowed in a Host value (reg-name, IP literal
 * and port characters), 0 for the rest. */
static const char host_chars[256] = {
    ['-'] = '-', ['.'] = '.', ['_'] = '_', [':'] = ':', ['['] = '[', [']'] = ']',
    ['0'] = '0', ['1'] = '1', ['2'] = '2', ['3'] = '3', ['4'] = '4',
    ['5'] = '5', ['6'] = '6', ['7'] = '7', ['8'] = '8', ['9'] = '9',
#define SL_LETTER(l, u) [l] = l, [u] = l
    SL_LETTER('a', 'A'), SL_LETTER('b', 'B'), SL_LETTER('c', 'C'), SL_LETTER('d', 'D'),
    SL_LETTER('e', 'E'), SL_LETTER('f', 'F'), SL_LETTER('g', 'G'), SL_LETTER('h', 'H'),
    SL_LETTER('i', 'I'), SL_LETTER('j', 'J'), SL_LETTER('k', 'K'), SL_LETTER('l', 'L'),
    SL_LETTER('m', 'M'), SL_LETTER('n', 'N'), SL_LETTER('o', 'O'), SL_LETTER('p', 'P'),
    SL_LETTER('q', 'Q'), SL_LETTER('r', 'R'), SL_LETTER('s', 'S'), SL_LETTER('t', 'T'),
    SL_LETTER('u', 'U'), SL_LETTER('v', 'V'), SL_LETTER('w', 'W'), SL_LETTER('x', 'X'),
    SL_LETTER('y', 'Y'), SL_LETTER('z', 'Z'),
#undef SL_LETTER
};

/* Host names are matched lowercase and without the port; anything but the
 * characters of a reg-name, an IP literal and a port is refused, so the
 * name we route on is the name the origin sees. */
static int parse_host(struct sl_conn *c, const char *v, size_t len)
{
    struct sl_req *r = &c->req;
    char *host = sl_arena_alloc(&c->arena, len + 1);
    if (host == NULL)
        return -1;
    /* The name up to the first ':' outside an IP literal, then the port:
     * digits (and further ':'s, as before). Two loops rather than one
     * with flags: this runs on every request. */
    size_t n = 0, i = 0;
    bool in_brackets = len > 0 && v[0] == '[';
    for (; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == ':' && !in_brackets)
            break;
        if (ch == ']')
            in_brackets = false;
        char lower = host_chars[ch];
        if (lower == 0)
            return -1;
        host[n++] = lower;
    }
    if (in_brackets)
        return -1;
    for (; i < len; i++)
        if (v[i] != ':' && !(v[i] >= '0' && v[i] <= '9'))
            return -1;
    host[n] = '\0';
    r->host = host;
    r->host_len = n;
    return 0;
}

/* RFC 9112 §3.2: origin-form, absolute-form (its authority replaces Host)
 * and asterisk-form for OPTIONS; authority-form only goes with CONNECT,
 * which a reverse proxy refuses. */
static int parse_target(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    const struct sl_head *h = r->head;
    const char *t = h->target;
    size_t len = h->target_len;
    if (len > 0 && t[0] == '/') {
        r->path = t;
        r->path_len = len;
    } else if (len == 1 && t[0] == '*' && h->method == HTTP_OPTIONS) {
        r->path = t;
        r->path_len = 1;
    } else if (len > 7 && strncasecmp(t, "http://", 7) == 0) {
        const char *a = t + 7;
        size_t alen = strcspn(a, "/?#");
        if (alen == 0 || memchr(a, '@', alen) != NULL)
            return -1;
        r->authority = a;
        r->authority_len = alen;
        r->path = a[alen] == '\0' ? "/" : a + alen;
        r->path_len = a[alen] == '\0' ? 1 : len - 7 - alen;
        if (r->path[0] != '/')
            return -1;
        return parse_host(c, a, alen);
    } else {
        return -1;
    }
    const struct sl_header *host = sl_head_find(h, "host", 4);
    if (host == NULL) {
        r->host = "";
        return 0;
    }
    r->authority = host->value;
    r->authority_len = host->value_len;
    return parse_host(c, host->value, host->value_len);
}

static bool is_idempotent(int method)
{
    switch (method) {
    case HTTP_GET: case HTTP_HEAD: case HTTP_OPTIONS: case HTTP_TRACE:
    case HTTP_PUT: case HTTP_DELETE:
        return true;
    default:
        return false;
    }
}

/* Returns an HTTP status to answer locally, or 0 to proxy. */
static int check_request(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    const struct sl_head *h = r->head;
    struct sl_gen *g = r->wg->gen;
    const struct sl_config *cfg = g->cfg;
    if (h->method == HTTP_CONNECT)
        return 405;
    if (parse_target(c) < 0)
        return 400;
    const struct sl_header *expect = sl_head_find(h, "expect", 6);
    if (expect != NULL) {
        if (expect->value_len != 12 || strncasecmp(expect->value, "100-continue", 12) != 0)
            return 417;
        r->expect_continue = r->has_body && h->http_minor >= 1;
    }
    if (cfg->limits.max_body_size && h->has_length &&
        h->content_length > cfg->limits.max_body_size)
        return 413;
    r->route = sl_router_match(g->router, r->host, r->host_len, r->path, r->path_len);
    if (r->route == NULL)
        return 404;
    r->upstream = sl_gen_route_upstream(g, r->route);
    return 0;
}

int sl_request_prepare(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    struct sl_head *h = &c->reader.head;
    r->head = h;
    sl_hlist_view_spare(&r->req_headers, h->headers, h->nheaders, h->headers_cap);
    r->start_us = sl_worker_now_us(c->w);
    format_id(c);
    r->is_head = h->method == HTTP_HEAD;
    r->keep_alive = h->keep_alive;
    r->has_body = h->chunked || (h->has_length && h->content_length > 0);
    r->idempotent = is_idempotent(h->method);
    r->upgrade = h->upgrade && h->method != HTTP_CONNECT && !r->has_body;
    int status = check_request(c);
    r->chain = sl_gen_chain(r->wg->gen, r->route);
    return status;
}

/* The balancer phase, then the proxy. The phase runs once, after every
 * request phase and before the first connection attempt: a plugin may
 * move the request to another upstream or pin one of its backends
 * (sl_api_set_upstream, sl_api_set_backend); the proxy's retries do not
 * run it again. Returns what on_head and on_done return after a local
 * reply or a start: 0 to go on, -1 when the connection is done. */
static int go_upstream(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    if (r->chain != NULL && r->chain->n[SL_PHASE_BALANCER] > 0) {
        r->in_balancer = true;
        int rc = sl_chain_run(r->chain, SL_PHASE_BALANCER, c);
        r->in_balancer = false;
        if (rc == SL_ACTION_RESPOND) {
            sl_conn_reply(c, r->local_status, false);
            return c->state == SL_CONN_ACTIVE || c->state == SL_CONN_IDLE ? 0 : -1;
        }
    }
    sl_proxy_start(c);
    return c->state == SL_CONN_ACTIVE ? 0 : -1;
}

/* The request_body phase on the whole buffered body, then the balancer
 * and the proxy: the request goes upstream with the body plugins left
 * (proxy_head.c gives it its Content-Length). Returns as go_upstream. */
static int run_request_body(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    if (sl_body_run_phase(c, &r->req_body, SL_PHASE_REQUEST_BODY) == SL_ACTION_RESPOND) {
        sl_conn_reply(c, r->local_status, false);
        return c->state == SL_CONN_ACTIVE || c->state == SL_CONN_IDLE ? 0 : -1;
    }
    return go_upstream(c);
}

/* A plugin of the chain needs the whole request body: nothing goes
 * upstream until it is buffered and its phase ran. A body declared larger
 * than max_body_buffer is refused before a byte of it is read (and before
 * any 100 Continue); a request without a body runs the phase at once, on
 * an empty body. */
static int buffer_request_body(struct sl_conn *c)
{
    struct sl_req *r = &c->req;
    const struct sl_head *h = r->head;
    size_t max = r->wg->gen->cfg->limits.max_body_buffer;
    if (h->has_length && h->content_length > max) {
        SL_INFO("request %s: body of %llu bytes over limits.max_body_buffer (%zu): 413", r->id,
                (unsigned long long)h->content_length, max);
        sl_conn_reply(c, 413, true);
        return -1;
    }
    /* Room grows as bytes arrive: a head alone must not make the proxy
     * reserve max_body_buffer for a body that may never come. */
    if (sl_body_start(&r->req_body, 0) < 0) {
        sl_conn_reply(c, 503, true);
        return -1;
    }
    if (!r->has_body)
        return run_request_body(c);
    /* The proxy answers Expect itself, once it wants the body (it does not
     * forward the field): now. */
    if (r->expect_continue) {
        r->expect_continue = false;
        sl_conn_send(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    return c->state == SL_CONN_ACTIVE ? 0 : -1;
}

static int on_head(void *owner)
{
    struct sl_conn *c = owner;
    struct sl_req *r = &c->req;
    /* The request runs all its phases on the generation current now, even
     * if a reload publishes another before it ends (log_request unpins). */
    sl_worker_sync_gen(c->w);
    r->wg = sl_worker_pin(c->w);
    c->state = SL_CONN_ACTIVE;
    int status = sl_request_prepare(c);
    if (status == 0 && r->chain != NULL && r->chain->n[SL_PHASE_REQUEST_HEADERS] > 0 &&
        sl_chain_run(r->chain, SL_PHASE_REQUEST_HEADERS, c) == SL_ACTION_RESPOND)
        status = r->local_status;
    if (status != 0) {
        sl_conn_reply(c, status, false);
        return c->state == SL_CONN_ACTIVE || c->state == SL_CONN_IDLE ? 0 : -1;
    }
    if (r->chain != NULL && r->chain->needs_request_body)
        return buffer_request_body(c);
    return go_upstream(c);
}

static int on_body(void *owner, const char *p, size_t n)
{
    struct sl_conn *c = owner;
    struct sl_req *r = &c->req;
    if (c->state != SL_CONN_ACTIVE)
        return -1;
    r->body_bytes += n;
    uint64_t max = r->wg->gen->cfg->limits.max_body_size;
    if (max != 0 && r->body_bytes > max) {
        c->reader.error_status = 413;
        c->reader.error_reason = "request body too large";
        return -1;
    }
    if (r->local)
        return 0;
    if (r->req_body.state == SL_BODY_BUFFERING) {
        int rc = sl_body_append(&r->req_body, p, n, r->wg->gen->cfg->limits.max_body_buffer);
        if (rc != 0) {
            /* Nothing was sent upstream: the origin never hears of it. */
            c->reader.error_status = rc > 0 ? 413 : 503;
            c->reader.error_reason = rc > 0 ? "request body over limits.max_body_buffer"
                                            : "out of memory";
            return -1;
        }
        return 0;
    }
    sl_proxy_body(c, p, n);
    return c->state == SL_CONN_ACTIVE ? 0 : -1;
}

static int on_done(void *owner)
{
    struct sl_conn *c = owner;
    struct sl_req *r = &c->req;
    if (c->state != SL_CONN_ACTIVE)
        return -1;
    r->body_done = true;
    if (r->local) {
        sl_conn_request_done(c);
        return c->state == SL_CONN_IDLE ? 0 : -1;
    }
    uint64_t before = c->nrequests;
    if (r->req_body.state == SL_BODY_BUFFERING)
        run_request_body(c);
    else if (r->req_body.state == SL_BODY_NONE)
        sl_proxy_body_done(c);
    /* (SL_BODY_DONE: a request without a body ran its phase at its head,
     * and went upstream whole.) */
    if (c->state == SL_CONN_CLOSED || c->state == SL_CONN_CLOSING)
        return -1;
    if (r->upgrade && c->nrequests == before)
        return 0;   /* llhttp pauses for the upgrade itself */
    return c->nrequests != before ? 0 : 1;
}

const struct sl_reader_ops sl_request_reader_ops = {
    .on_head = on_head,
    .on_body = on_body,
    .on_done = on_done,
};
