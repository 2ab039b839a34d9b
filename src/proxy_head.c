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

/* Collects the tokens of the Connection fields at from and after (the
 * caller knows there is none before). */
static void collect_tokens(const struct sl_hlist *l, size_t from, struct conn_tokens *t)
{
    t->n = 0;
    for (size_t i = from; i < l->n; i++) {
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

/* A literal's length (sizeof counts its NUL, which is left out), and the
 * literal written at p. The heads' fixed parts are named literals below so
 * that the room asked for and the bytes written come from one text. */
#define LIT_LEN(lit) (sizeof(lit) - 1)
#define PUT_LIT(p, lit) (memcpy((p), (lit), LIT_LEN(lit)), (p) + LIT_LEN(lit))

#define CRLF "\r\n"
#define FIELD_SEP ": "
#define REQUEST_VERSION_HOST " HTTP/1.1\r\nHost: "
#define STATUS_VERSION "HTTP/1.1 "
#define XFF_NAME "X-Forwarded-For: "
#define XFF_SEP ", "
#define XFP_FIELD "X-Forwarded-Proto: http\r\n"
#define XFH_NAME "X-Forwarded-Host: "
#define VIA_FIELD "Via: 1.1 sluice\r\n"
#define LENGTH_NAME "Content-Length: "
#define CHUNKED_FIELD "Transfer-Encoding: chunked\r\n"
#define UPGRADE_FIELDS "Connection: upgrade\r\nUpgrade: "
#define UPGRADE_CONNECTION "Connection: upgrade\r\n"
#define CLOSE_FIELD "Connection: close\r\n"
#define KEEP_ALIVE_FIELD "Connection: keep-alive\r\n"

/* Room for the framing field (Content-Length with the longest number, or
 * Transfer-Encoding: chunked) and for the response's Connection field. */
#define FRAMING_ROOM (LIT_LEN(LENGTH_NAME) + SL_U64_DIGITS + LIT_LEN(CRLF))
_Static_assert(LIT_LEN(CHUNKED_FIELD) <= FRAMING_ROOM, "FRAMING_ROOM holds either framing");
#define CONNECTION_ROOM LIT_LEN(KEEP_ALIVE_FIELD)
_Static_assert(LIT_LEN(CLOSE_FIELD) <= CONNECTION_ROOM, "CONNECTION_ROOM holds either");
_Static_assert(LIT_LEN(UPGRADE_CONNECTION) <= FRAMING_ROOM + CONNECTION_ROOM,
               "a 101's Connection field fits where framing and Connection would go");

/* The bytes put_field writes for hd. */
#define FIELD_ROOM(hd) \
    ((size_t)(hd)->name_len + LIT_LEN(FIELD_SEP) + (hd)->value_len + LIT_LEN(CRLF))

/* "name: value\r\n" at p, which has room for FIELD_ROOM.
 * The field is read once up front: stores through p may alias it as far as
 * the compiler knows, and would have it load every member again. */
static inline char *put_field(char *p, const struct sl_header *hd)
{
    const char *name = hd->name, *value = hd->value;
    size_t name_len = hd->name_len, value_len = hd->value_len;
    p = sl_copy_short(p, name, name_len);
    p = PUT_LIT(p, FIELD_SEP);
    p = sl_copy_short(p, value, value_len);
    return PUT_LIT(p, CRLF);
}

static int add_field(struct sl_buf *out, const struct sl_header *hd)
{
    char *p = sl_buf_room(out, FIELD_ROOM(hd));
    if (p == NULL)
        return -1;
    sl_buf_commit(out, put_field(p, hd));
    return 0;
}

/* add_fields once a Connection field turned up at index at: fields it
 * lists are dropped too. Those already written before it are checked, and
 * if one is listed the fields are written again from mark. */
static int add_fields_listed(struct sl_buf *out, const struct sl_hlist *l, unsigned skip,
                             size_t mark, size_t at)
{
    struct conn_tokens tokens;
    collect_tokens(l, at, &tokens);
    size_t from = at + 1;
    for (size_t i = 0; i < at; i++) {
        if (!(sl_field_kind(&l->v[i]) & skip) && listed(&tokens, &l->v[i])) {
            out->end = out->start + mark;
            from = 0;
            break;
        }
    }
    int rc = 0;
    for (size_t i = from; i < l->n; i++) {
        const struct sl_header *hd = &l->v[i];
        if ((sl_field_kind(hd) & skip) || listed(&tokens, hd))
            continue;
        rc |= add_field(out, hd);
    }
    return rc;
}

/* Appends l's fields but those of a kind in skip (which holds
 * SL_FIELD_CONNECTION) and those a Connection field names. *seen gets the
 * kinds met, skipped or not. Most heads have no Connection field, so the
 * loop writes as if there were none and leaves for add_fields_listed when
 * it meets one; and it checks room once per field, against a limit kept
 * in a register, growing the buffer only when a field does not fit.
 * Inlined in both builders: as a call, the registers it saves and restores
 * cost about what a short head's fields do. */
static inline __attribute__((always_inline)) int add_fields(struct sl_buf *out,
                                                           const struct sl_hlist *l,
                                                           unsigned skip, unsigned *seen)
{
    *seen = 0;
    if (l->n == 0)
        return 0;
    size_t mark = sl_buf_len(out);
    char *p = out->data + out->end, *lim = out->data + out->cap;
    const struct sl_header *end = l->v + l->n;
    unsigned kinds = 0;
    for (const struct sl_header *hd = l->v; hd != end; hd++) {
        unsigned kind = sl_field_kind(hd);
        if (kind != 0) {
            kinds |= kind;
            if (kind == SL_FIELD_CONNECTION) {
                sl_buf_commit(out, p);
                for (const struct sl_header *rest = hd + 1; rest != end; rest++)
                    kinds |= sl_field_kind(rest);
                *seen = kinds;
                return add_fields_listed(out, l, skip, mark, (size_t)(hd - l->v));
            }
            if (kind & skip)
                continue;
        }
        size_t need = FIELD_ROOM(hd);
        if ((size_t)(lim - p) < need) {
            sl_buf_commit(out, p);
            if (sl_buf_reserve(out, need) < 0)
                return -1;
            p = out->data + out->end;
            lim = out->data + out->cap;
        }
        p = put_field(p, hd);
    }
    sl_buf_commit(out, p);
    *seen = kinds;
    return 0;
}

/* "Content-Length: n\r\n" at p, which has room for FRAMING_ROOM. */
static char *put_length(char *p, uint64_t n)
{
    p = PUT_LIT(p, LENGTH_NAME);
    p = sl_buf_put_u64(p, n);
    return PUT_LIT(p, CRLF);
}

/* VIA_FIELD at p, naming the version the message came in with (RFC 9110
 * §7.6.3). */
static char *put_via(char *p, int http_minor)
{
    char *end = PUT_LIT(p, VIA_FIELD);
    if (http_minor == 0)
        p[LIT_LEN("Via: 1.")] = '0';
    return end;
}

/* Names for the methods llhttp parses, with their lengths, so the request
 * line needs no strlen. */
static const struct {
    const char *s;
    size_t len;
} method_names[] = {
#define METHOD_NAME(num, name, string) [num] = { #string, sizeof #string - 1 },
    HTTP_METHOD_MAP(METHOD_NAME)
#undef METHOD_NAME
};

static void method_name(const struct sl_req *r, const char **m, size_t *len)
{
    int method = r->head->method;
    if (r->method != NULL) {
        *m = r->method;
        *len = r->method_len;
    } else if (method >= 0 && (size_t)method < sizeof method_names / sizeof method_names[0] &&
               method_names[method].s != NULL) {
        *m = method_names[method].s;
        *len = method_names[method].len;
    } else {
        *m = llhttp_method_name((llhttp_method_t)method);
        *len = strlen(*m);
    }
}

/* Joins the client's X-Forwarded-For values with its own address, so the
 * origin sees the whole chain and the hop it can trust last. p has room
 * for xff_room's answer. */
static char *put_xff(char *p, const struct sl_hlist *l, bool has_xff, const char *peer,
                     size_t peer_len)
{
    p = PUT_LIT(p, XFF_NAME);
    for (size_t i = 0; has_xff && i < l->n; i++) {
        const struct sl_header *hd = &l->v[i];
        if (sl_name_is(hd, "x-forwarded-for", 15) && hd->value_len > 0) {
            p = sl_copy_short(p, hd->value, hd->value_len);
            p = PUT_LIT(p, XFF_SEP);
        }
    }
    p = sl_copy_short(p, peer, peer_len);
    return PUT_LIT(p, CRLF);
}

static size_t xff_room(const struct sl_hlist *l, bool has_xff, size_t peer_len)
{
    size_t n = LIT_LEN(XFF_NAME) + peer_len + LIT_LEN(CRLF);
    for (size_t i = 0; has_xff && i < l->n; i++) {
        const struct sl_header *hd = &l->v[i];
        if (sl_name_is(hd, "x-forwarded-for", 15) && hd->value_len > 0)
            n += hd->value_len + LIT_LEN(XFF_SEP);
    }
    return n;
}

/* What follows the client's fields in the request head: forwarding
 * fields, framing, the upgrade and the blank line; seen is add_fields'. */
static int add_request_tail(struct sl_conn *c, struct sl_buf *out, unsigned seen)
{
    struct sl_req *r = &c->req;
    const struct sl_head *h = r->head;
    const struct sl_hlist *l = &r->req_headers;
    const struct sl_proxy_conf *pc = &r->wg->gen->cfg->proxy;
    bool has_xff = (seen & SL_FIELD_XFF) != 0;
    size_t peer_len = 0, need = LIT_LEN(VIA_FIELD) + FRAMING_ROOM + LIT_LEN(CRLF);
    if (pc->x_forwarded_for) {
        peer_len = strlen(c->peer);
        need += xff_room(l, has_xff, peer_len);
    }
    if (pc->x_forwarded_proto)
        need += LIT_LEN(XFP_FIELD);
    if (pc->x_forwarded_host && r->authority != NULL)
        need += LIT_LEN(XFH_NAME) + r->authority_len + LIT_LEN(CRLF);
    const struct sl_header *up = NULL;
    if (r->upgrade) {
        up = sl_head_find(h, "upgrade", 7);
        if (up == NULL)
            return -1;
        need += LIT_LEN(UPGRADE_FIELDS) + up->value_len + LIT_LEN(CRLF);
    }
    char *p = sl_buf_room(out, need);
    if (p == NULL)
        return -1;
    if (pc->x_forwarded_for)
        p = put_xff(p, l, has_xff, c->peer, peer_len);
    if (pc->x_forwarded_proto)
        p = PUT_LIT(p, XFP_FIELD);
    if (pc->x_forwarded_host && r->authority != NULL) {
        p = PUT_LIT(p, XFH_NAME);
        p = sl_copy_short(p, r->authority, r->authority_len);
        p = PUT_LIT(p, CRLF);
    }
    if (pc->via)
        p = put_via(p, h->http_minor);
    if (r->req_body.state != SL_BODY_NONE) {
        /* Buffered for a body phase: sent whole, whatever framing came in. */
        if (h->chunked || h->has_length || sl_body_len(&r->req_body) > 0)
            p = put_length(p, sl_body_len(&r->req_body));
    } else if (h->chunked) {
        p = PUT_LIT(p, CHUNKED_FIELD);
    } else if (h->has_length) {
        p = put_length(p, h->content_length);
    }
    if (up != NULL) {
        p = PUT_LIT(p, UPGRADE_FIELDS);
        p = sl_copy_short(p, up->value, up->value_len);
        p = PUT_LIT(p, CRLF);
    }
    sl_buf_commit(out, PUT_LIT(p, CRLF));
    return 0;
}

int sl_proxy_build_request_head(struct sl_conn *c, struct sl_upconn *u, struct sl_buf *out)
{
    struct sl_req *r = &c->req;
    r->head_sent = true;
    const struct sl_proxy_conf *pc = &r->wg->gen->cfg->proxy;
    const char *m, *host;
    size_t m_len, host_len;
    method_name(r, &m, &m_len);
    if (pc->preserve_host && r->authority != NULL) {
        host = r->authority;
        host_len = r->authority_len;
    } else {
        host = u->backend_name;
        host_len = strlen(host);
    }
    char *p = sl_buf_room(out, m_len + 1 + r->path_len + LIT_LEN(REQUEST_VERSION_HOST) +
                          host_len + LIT_LEN(CRLF));
    if (p == NULL)
        return -1;
    p = sl_copy_short(p, m, m_len);
    *p++ = ' ';
    p = sl_copy_short(p, r->path, r->path_len);
    p = PUT_LIT(p, REQUEST_VERSION_HOST);
    p = sl_copy_short(p, host, host_len);
    sl_buf_commit(out, PUT_LIT(p, CRLF));
    unsigned skip = SL_FIELD_HOP | SL_FIELD_CONNECTION | SL_FIELD_CONTENT_LENGTH |
                    SL_FIELD_HOST | SL_FIELD_EXPECT |
                    (pc->x_forwarded_for ? SL_FIELD_XFF : 0) |
                    (pc->x_forwarded_host ? SL_FIELD_XFH : 0) |
                    (pc->x_forwarded_proto ? SL_FIELD_XFP : 0);
    unsigned seen;
    if (add_fields(out, &r->req_headers, skip, &seen) < 0)
        return -1;
    return add_request_tail(c, out, seen);
}

/* "HTTP/1.1 status reason\r\n". */
static int add_status_line(struct sl_buf *out, int status, const char *reason)
{
    /* strlen rather than the origin's target_len: llhttp lets a NUL into a
     * reason phrase, and the phrase is cut there rather than sent on. */
    size_t reason_len = strlen(reason);
    char *p = sl_buf_room(out, LIT_LEN(STATUS_VERSION) + SL_U64_DIGITS + 1 + reason_len +
                          LIT_LEN(CRLF));
    if (p == NULL)
        return -1;
    p = PUT_LIT(p, STATUS_VERSION);
    if (status >= 100 && status <= 999) {
        unsigned s = (unsigned)status, rest = s % 100;
        p[0] = (char)('0' + s / 100);
        p[1] = (char)('0' + rest / 10);
        p[2] = (char)('0' + rest % 10);
        p += 3;
    } else {
        p = sl_buf_put_u64(p, (uint64_t)status);
    }
    *p++ = ' ';
    p = sl_copy_short(p, reason, reason_len);
    sl_buf_commit(out, PUT_LIT(p, CRLF));
    return 0;
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
    /* A plugin that changed the status also changed what the reason
     * phrase must say. */
    int status = interim ? h->status : r->status;
    const char *reason = h->target_len && status == h->status ? h->target : sl_status_reason(status);
    unsigned seen;
    if (add_status_line(out, status, reason) < 0 ||
        add_fields(out, l, SL_FIELD_HOP | SL_FIELD_CONNECTION | SL_FIELD_CONTENT_LENGTH, &seen) < 0)
        return -1;
    const struct sl_header *up = h->status == 101 ? sl_head_find(h, "upgrade", 7) : NULL;
    char *p = sl_buf_room(out, LIT_LEN(VIA_FIELD) + FRAMING_ROOM + CONNECTION_ROOM +
                          (up != NULL ? FIELD_ROOM(up) : 0) + LIT_LEN(CRLF));
    if (p == NULL)
        return -1;
    if (c->req.wg->gen->cfg->proxy.via)
        p = put_via(p, h->http_minor);
    if (h->status == 101) {
        p = PUT_LIT(p, UPGRADE_CONNECTION);
        if (up != NULL)
            p = put_field(p, up);
    } else if (!interim) {
        switch (r->framing) {
        case SL_FRAMING_NONE:
            if (h->has_length)
                p = put_length(p, h->content_length);
            break;
        case SL_FRAMING_LENGTH:
            p = put_length(p, r->resp_body.state != SL_BODY_NONE
                           ? sl_body_len(&r->resp_body) : h->content_length);
            break;
        case SL_FRAMING_CHUNKED:
            p = PUT_LIT(p, CHUNKED_FIELD);
            break;
        case SL_FRAMING_CLOSE:
            break;
        }
        if (!r->keep_alive)
            p = PUT_LIT(p, CLOSE_FIELD);
        else if (r->head->http_minor == 0)
            p = PUT_LIT(p, KEEP_ALIVE_FIELD);
    }
    sl_buf_commit(out, PUT_LIT(p, CRLF));
    r->bytes_sent += sl_buf_len(out) - before;
    return 0;
}
