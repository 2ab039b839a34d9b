#include "proxy_head.h"

#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "gen.h"
#include "headers.h"
#include "http1.h"
#include "pool.h"
#include "proxy.h"
#include "request.h"
#include "worker.h"

#define MAX_CONN_TOKENS 16

/* The names a Connection field lists besides its own options: those
 * fields are hop-by-hop for this message (RFC 9110 §7.6.1). */
struct conn_tokens {
    const char *v[MAX_CONN_TOKENS];
    size_t len[MAX_CONN_TOKENS];
    size_t n;
};

static void collect_tokens(const struct sl_hlist *l, struct conn_tokens *t)
{
    t->n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct sl_header *hd = &l->v[i];
        if (!sl_name_is(hd, "connection", 10))
            continue;
        const char *v = hd->value;
        size_t len = hd->value_len, j = 0;
        while (j < len && t->n < MAX_CONN_TOKENS) {
            while (j < len && (v[j] == ' ' || v[j] == '\t' || v[j] == ','))
                j++;
            size_t s = j;
            while (j < len && v[j] != ',' && v[j] != ' ' && v[j] != '\t')
                j++;
            if (j > s) {
                t->v[t->n] = v + s;
                t->len[t->n++] = j - s;
            }
        }
    }
}

static bool listed(const struct conn_tokens *t, const struct sl_header *hd)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->len[i] == hd->name_len && strncasecmp(t->v[i], hd->name, hd->name_len) == 0)
            return !sl_name_is(hd, "host", 4);
    return false;
}

/* memcpy for the short strings of a head: up to 16 bytes in two
 * overlapping loads and stores of the fixed size that fits, which the
 * compiler inlines; reads stay within [src, src + n). Longer ones go to
 * memcpy. */
static inline void copy_short(char *dst, const char *src, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    } else {
        memcpy(dst, src, n);
    }
}

static int add_field(struct sl_buf *out, const struct sl_header *hd)
{
    size_t need = (size_t)hd->name_len + hd->value_len + 4;
    if (out->cap - out->end < need && sl_buf_reserve(out, need) < 0)
        return -1;
    char *p = out->data + out->end;
    copy_short(p, hd->name, hd->name_len);
    p += hd->name_len;
    *p++ = ':';
    *p++ = ' ';
    copy_short(p, hd->value, hd->value_len);
    p += hd->value_len;
    *p++ = '\r';
    *p++ = '\n';
    out->end = (size_t)(p - out->data);
    return 0;
}

static int add_length(struct sl_buf *out, uint64_t n)
{
    int rc = sl_buf_append(out, "Content-Length: ", 16);
    rc |= sl_buf_append_u64(out, n);
    rc |= sl_buf_append(out, "\r\n", 2);
    return rc;
}

/* Joins the client's X-Forwarded-For values with its own address, so the
 * origin sees the whole chain and the hop it can trust last. */
static int add_xff(struct sl_buf *out, const struct sl_hlist *l, const char *peer)
{
    int rc = sl_buf_append_str(out, "X-Forwarded-For: ");
    for (size_t i = 0; i < l->n; i++) {
        const struct sl_header *hd = &l->v[i];
        if (sl_name_is(hd, "x-forwarded-for", 15) && hd->value_len > 0) {
            rc |= sl_buf_append(out, hd->value, hd->value_len);
            rc |= sl_buf_append(out, ", ", 2);
        }
    }
    rc |= sl_buf_append_str(out, peer);
    rc |= sl_buf_append(out, "\r\n", 2);
    return rc;
}

static bool skip_request_field(const struct sl_header *hd, const struct sl_proxy_conf *pc)
{
    if (sl_is_hop_by_hop(hd))
        return true;
    switch (hd->name_len) {
    case 4:
        return sl_name_is(hd, "host", 4);
    case 6:
        return sl_name_is(hd, "expect", 6);
    case 14:
        return sl_name_is(hd, "content-length", 14);
    case 15:
        return pc->x_forwarded_for && sl_name_is(hd, "x-forwarded-for", 15);
    case 16:
        return pc->x_forwarded_host && sl_name_is(hd, "x-forwarded-host", 16);
    case 17:
        return pc->x_forwarded_proto && sl_name_is(hd, "x-forwarded-proto", 17);
    default:
        return false;
    }
}

int sl_proxy_build_request_head(struct sl_conn *c, struct sl_upconn *u, struct sl_buf *out)
{
    struct sl_req *r = &c->req;
    r->head_sent = true;
    const struct sl_head *h = r->head;
    const struct sl_hlist *l = &r->req_headers;
    const struct sl_proxy_conf *pc = &c->req.wg->gen->cfg->proxy;
    struct conn_tokens tokens;
    collect_tokens(l, &tokens);
    int rc = r->method != NULL
        ? sl_buf_append(out, r->method, r->method_len)
        : sl_buf_append_str(out, llhttp_method_name((llhttp_method_t)h->method));
    rc |= sl_buf_append(out, " ", 1);
    rc |= sl_buf_append(out, r->path, r->path_len);
    rc |= sl_buf_append_str(out, " HTTP/1.1\r\nHost: ");
    if (pc->preserve_host && r->authority != NULL)
        rc |= sl_buf_append(out, r->authority, r->authority_len);
    else
        rc |= sl_buf_append_str(out, u->backend_name);
    rc |= sl_buf_append(out, "\r\n", 2);
    for (size_t i = 0; i < l->n; i++) {
        const struct sl_header *hd = &l->v[i];
        if (skip_request_field(hd, pc) || (tokens.n > 0 && listed(&tokens, hd)))
            continue;
        rc |= add_field(out, hd);
    }
    if (pc->x_forwarded_for)
        rc |= add_xff(out, l, c->peer);
    if (pc->x_forwarded_proto)
        rc |= sl_buf_append_str(out, "X-Forwarded-Proto: http\r\n");
    if (pc->x_forwarded_host && r->authority != NULL) {
        rc |= sl_buf_append_str(out, "X-Forwarded-Host: ");
        rc |= sl_buf_append(out, r->authority, r->authority_len);
        rc |= sl_buf_append(out, "\r\n", 2);
    }
    if (pc->via)
        rc |= sl_buf_append_str(out, h->http_minor == 0 ? "Via: 1.0 sluice\r\n" : "Via: 1.1 sluice\r\n");
    if (r->req_body.state != SL_BODY_NONE) {
        /* Buffered for a body phase: sent whole, whatever framing came in. */
        if (h->chunked || h->has_length || sl_body_len(&r->req_body) > 0)
            rc |= add_length(out, sl_body_len(&r->req_body));
    } else if (h->chunked) {
        rc |= sl_buf_append_str(out, "Transfer-Encoding: chunked\r\n");
    } else if (h->has_length) {
        rc |= add_length(out, h->content_length);
    }
    if (r->upgrade) {
        const struct sl_header *up = sl_head_find(h, "upgrade", 7);
        if (up == NULL)
            return -1;
        rc |= sl_buf_append_str(out, "Connection: upgrade\r\nUpgrade: ");
        rc |= sl_buf_append(out, up->value, up->value_len);
        rc |= sl_buf_append(out, "\r\n", 2);
    }
    rc |= sl_buf_append(out, "\r\n", 2);
    return rc < 0 ? -1 : 0;
}

int sl_proxy_build_response_head(struct sl_conn *c, struct sl_upconn *u, bool interim)
{
    struct sl_req *r = &c->req;
    const struct sl_head *h = &u->reader.head;
    struct sl_hlist interim_list;
    const struct sl_hlist *l = &r->resp_headers;
    if (interim) {
        sl_hlist_view(&interim_list, h->headers, h->nheaders);
        l = &interim_list;
    }
    struct sl_buf *out = &c->out;
    size_t before = sl_buf_len(out);
    struct conn_tokens tokens;
    collect_tokens(l, &tokens);
    /* A plugin that changed the status also changed what the reason
     * phrase must say. */
    int status = interim ? h->status : r->status;
    const char *reason = h->target_len && status == h->status ? h->target : sl_status_reason(status);
    int rc = sl_buf_append(out, "HTTP/1.1 ", 9);
    rc |= sl_buf_append_u64(out, (uint64_t)status);
    rc |= sl_buf_append(out, " ", 1);
    rc |= sl_buf_append_str(out, reason);
    rc |= sl_buf_append(out, "\r\n", 2);
    for (size_t i = 0; i < l->n; i++) {
        const struct sl_header *hd = &l->v[i];
        if (sl_is_hop_by_hop(hd) || sl_name_is(hd, "content-length", 14) ||
            (tokens.n > 0 && listed(&tokens, hd)))
            continue;
        rc |= add_field(out, hd);
    }
    if (c->req.wg->gen->cfg->proxy.via)
        rc |= sl_buf_append_str(out, h->http_minor == 0 ? "Via: 1.0 sluice\r\n" : "Via: 1.1 sluice\r\n");
    if (h->status == 101) {
        const struct sl_header *up = sl_head_find(h, "upgrade", 7);
        rc |= sl_buf_append_str(out, "Connection: upgrade\r\n");
        if (up != NULL)
            rc |= add_field(out, up);
    } else if (!interim) {
        switch (r->framing) {
        case SL_FRAMING_NONE:
            if (h->has_length)
                rc |= add_length(out, h->content_length);
            break;
        case SL_FRAMING_LENGTH:
            rc |= add_length(out, r->resp_body.state != SL_BODY_NONE
                             ? sl_body_len(&r->resp_body) : h->content_length);
            break;
        case SL_FRAMING_CHUNKED:
            rc |= sl_buf_append_str(out, "Transfer-Encoding: chunked\r\n");
            break;
        case SL_FRAMING_CLOSE:
            break;
        }
        if (!r->keep_alive)
            rc |= sl_buf_append_str(out, "Connection: close\r\n");
        else if (r->head->http_minor == 0)
            rc |= sl_buf_append_str(out, "Connection: keep-alive\r\n");
    }
    rc |= sl_buf_append(out, "\r\n", 2);
    r->bytes_sent += sl_buf_len(out) - before;
    return rc < 0 ? -1 : 0;
}
