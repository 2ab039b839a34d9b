#include "api.h"

#include <string.h>
#include <strings.h>

#include "conn.h"
#include "gen.h"
#include "headers.h"
#include "log.h"
#include "upstream.h"
#include "worker.h"

static struct sl_hlist *side_list(struct sl_conn *c, int side)
{
    return side == SL_API_RESPONSE ? &c->req.resp_headers : &c->req.req_headers;
}

/* Request fields can change until the upstream head is built; response
 * fields until the response head is queued to the client. */
static bool side_is_open(const struct sl_conn *c, int side)
{
    return side == SL_API_RESPONSE ? !c->req.resp_started : !c->req.head_sent;
}

int sl_api_method(struct sl_conn *c, const char **p, size_t *n)
{
    const struct sl_req *r = &c->req;
    if (r->method != NULL) {
        *p = r->method;
        *n = r->method_len;
    } else {
        *p = llhttp_method_name((llhttp_method_t)r->head->method);
        *n = strlen(*p);
    }
    return SL_API_OK;
}

int sl_api_path(struct sl_conn *c, const char **p, size_t *n)
{
    const struct sl_req *r = &c->req;
    const char *q = memchr(r->path, '?', r->path_len);
    *p = r->path;
    *n = q ? (size_t)(q - r->path) : r->path_len;
    return SL_API_OK;
}

int sl_api_query(struct sl_conn *c, const char **p, size_t *n)
{
    const struct sl_req *r = &c->req;
    const char *q = memchr(r->path, '?', r->path_len);
    *p = q ? q + 1 : "";
    *n = q ? r->path_len - (size_t)(q + 1 - r->path) : 0;
    return SL_API_OK;
}

int sl_api_client_addr(struct sl_conn *c, const char **p, size_t *n)
{
    *p = c->peer;
    *n = strlen(c->peer);
    return SL_API_OK;
}

int sl_api_request_id(struct sl_conn *c, const char **p, size_t *n)
{
    *p = c->req.id;
    *n = strlen(c->req.id);
    return SL_API_OK;
}

int sl_api_set_method(struct sl_conn *c, const char *p, size_t n)
{
    if (c->req.head_sent)
        return SL_API_EPHASE;
    if (!sl_is_token(p, n))
        return SL_API_EINVAL;
    char *m = sl_arena_strndup(&c->arena, p, n);
    if (m == NULL)
        return SL_API_ENOMEM;
    c->req.method = m;
    c->req.method_len = n;
    return SL_API_OK;
}

static bool is_target_byte(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && ch != '#';
}

/* Joins path and query into the request target the origin will see. */
static int set_target(struct sl_conn *c, const char *path, size_t plen, const char *query,
                      size_t qlen)
{
    size_t len = plen + (qlen ? qlen + 1 : 0);
    char *t = sl_arena_alloc(&c->arena, len + 1);
    if (t == NULL)
        return SL_API_ENOMEM;
    memcpy(t, path, plen);
    if (qlen) {
        t[plen] = '?';
        memcpy(t + plen + 1, query, qlen);
    }
    t[len] = '\0';
    c->req.path = t;
    c->req.path_len = len;
    return SL_API_OK;
}

int sl_api_set_path(struct sl_conn *c, const char *p, size_t n)
{
    if (c->req.head_sent)
        return SL_API_EPHASE;
    if (n == 0 || p[0] != '/')
        return SL_API_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!is_target_byte((unsigned char)p[i]) || p[i] == '?')
            return SL_API_EINVAL;
    const char *q;
    size_t qn;
    sl_api_query(c, &q, &qn);
    return set_target(c, p, n, q, qn);
}

int sl_api_set_query(struct sl_conn *c, const char *p, size_t n)
{
    if (c->req.head_sent)
        return SL_API_EPHASE;
    for (size_t i = 0; i < n; i++)
        if (!is_target_byte((unsigned char)p[i]))
            return SL_API_EINVAL;
    const char *path;
    size_t pn;
    sl_api_path(c, &path, &pn);
    return set_target(c, path, pn, p, n);
}

int sl_api_header_get(struct sl_conn *c, int side, const char *name, size_t nlen,
                      size_t index, const char **p, size_t *n)
{
    const struct sl_header *hd = sl_hlist_find(side_list(c, side), name, nlen, index);
    if (hd == NULL)
        return SL_API_NOT_FOUND;
    *p = hd->value;
    *n = hd->value_len;
    return SL_API_OK;
}

size_t sl_api_header_count(struct sl_conn *c, int side)
{
    return side_list(c, side)->n;
}

int sl_api_header_at(struct sl_conn *c, int side, size_t i, const char **name,
                     size_t *nlen, const char **value, size_t *vlen)
{
    const struct sl_hlist *l = side_list(c, side);
    if (i >= l->n)
        return SL_API_NOT_FOUND;
    *name = l->v[i].name;
    *nlen = l->v[i].name_len;
    *value = l->v[i].value;
    *vlen = l->v[i].value_len;
    return SL_API_OK;
}

/* Every case header_change does not finish inline: long fields, a field
 * to replace, a full chunk or list. */
__attribute__((cold)) static int header_change_slow(struct sl_conn *c, struct sl_hlist *l,
                                                    const char *name, size_t nlen,
                                                    const char *value, size_t vlen,
                                                    bool replace, bool name_known)
{
    struct sl_header f;
    int rc = name_known ? sl_header_copy_known(&c->arena, name, nlen, value, vlen, &f)
                        : sl_header_copy(&c->arena, name, nlen, value, vlen, &f);
    if (rc < 0)
        return rc == -2 ? SL_API_EINVAL : SL_API_ENOMEM;
    if ((replace && sl_hlist_remove(l, &c->arena, f.name, nlen) < 0) ||
        sl_hlist_append(l, &c->arena, &f) < 0)
        return SL_API_ENOMEM;
    return SL_API_OK;
}

/* header_change's copy in n that the tests did not clear: the rule
 * decides on the copied bytes, which are the field's. The list has a free
 * slot and nothing to replace (header_change saw to both). */
__attribute__((cold)) static int header_change_check(struct sl_conn *c, struct sl_hlist *l,
                                                     char *n, size_t nlen, size_t vlen,
                                                     bool name_known)
{
    if (!(name_known || sl_is_token(n, nlen)) || !sl_is_field_value(n + nlen + 1, vlen)) {
        sl_arena_give_back(&c->arena, n);
        return SL_API_EINVAL;
    }
    l->v[l->n++] = (struct sl_header){
        .name = n, .name_len = (uint32_t)nlen, .value = n + nlen + 1, .value_len = (uint32_t)vlen,
    };
    return SL_API_OK;
}

/* set (replace) or add one field; name_known: the name is a token
 * already. Inline in each of the four entry points, constants and all: a
 * short new field into a list with a free slot then takes no call. The
 * field is checked and copied before the list changes, so a refused one
 * changes nothing. */
SL_HDR_INLINE int header_change(struct sl_conn *c, int side, const char *name, size_t nlen,
                                const char *value, size_t vlen, bool replace,
                                bool name_known)
{
    struct sl_hlist *l;
    if (side == SL_API_RESPONSE) {
        if (c->req.resp_started)
            return SL_API_EPHASE;
        l = &c->req.resp_headers;
    } else {
        if (c->req.head_sent)
            return SL_API_EPHASE;
        l = &c->req.req_headers;
    }
    char *n;
    int rc;
    if (nlen - 1 >= 16 || l->n == l->cap || (replace && sl_hlist_may_have(l, name, nlen)) ||
        (rc = sl_header_copy_fast(&c->arena, name, nlen, value, vlen, name_known, &n)) < 0)
        return header_change_slow(c, l, name, nlen, value, vlen, replace, name_known);
    if (rc > 0)
        return header_change_check(c, l, n, nlen, vlen, name_known);
    l->v[l->n++] = (struct sl_header){
        .name = n, .name_len = (uint32_t)nlen, .value = n + nlen + 1, .value_len = (uint32_t)vlen,
    };
    return SL_API_OK;
}

int sl_api_header_add(struct sl_conn *c, int side, const char *name, size_t nlen,
                      const char *value, size_t vlen)
{
    return header_change(c, side, name, nlen, value, vlen, false, false);
}

int sl_api_header_set(struct sl_conn *c, int side, const char *name, size_t nlen,
                      const char *value, size_t vlen)
{
    return header_change(c, side, name, nlen, value, vlen, true, false);
}

int sl_api_header_add_known(struct sl_conn *c, int side, const char *name, size_t nlen,
                            const char *value, size_t vlen)
{
    return header_change(c, side, name, nlen, value, vlen, false, true);
}

int sl_api_header_set_known(struct sl_conn *c, int side, const char *name, size_t nlen,
                            const char *value, size_t vlen)
{
    return header_change(c, side, name, nlen, value, vlen, true, true);
}

int sl_api_header_remove(struct sl_conn *c, int side, const char *name, size_t nlen)
{
    if (!side_is_open(c, side))
        return SL_API_EPHASE;
    if (!sl_is_token(name, nlen))
        return SL_API_EINVAL;
    int n = sl_hlist_remove(side_list(c, side), &c->arena, name, nlen);
    if (n < 0)
        return SL_API_ENOMEM;
    return n == 0 ? SL_API_NOT_FOUND : SL_API_OK;
}

int sl_api_status(struct sl_conn *c)
{
    return c->req.local_status ? c->req.local_status : c->req.status;
}

int sl_api_set_status(struct sl_conn *c, int status)
{
    if (status < 100 || status > 999)
        return SL_API_EINVAL;
    if (c->req.resp_started || c->req.status == 0)
        return SL_API_EPHASE;
    c->req.status = status;
    return SL_API_OK;
}

int sl_api_respond(struct sl_conn *c, int status, const char *body, size_t len)
{
    struct sl_req *r = &c->req;
    if (status < 200 || status > 999)
        return SL_API_EINVAL;
    if (r->head_sent || r->resp_started)
        return SL_API_EPHASE;
    char *b = len ? sl_arena_strndup(&c->arena, body, len) : NULL;
    if (len && b == NULL)
        return SL_API_ENOMEM;
    r->local_status = status;
    r->local_body = b;
    r->local_body_len = len;
    return SL_API_OK;
}

static struct sl_body *side_body(struct sl_conn *c, int side)
{
    return side == SL_API_RESPONSE ? &c->req.resp_body : &c->req.req_body;
}

/* A body is readable from its body phase on (the other side's phases and
 * log included): before it, it is not all there, or not buffered at all. */
int sl_api_body_get(struct sl_conn *c, int side, const char **p, size_t *n)
{
    const struct sl_body *b = side_body(c, side);
    if (b->state != SL_BODY_OPEN && b->state != SL_BODY_DONE)
        return SL_API_EPHASE;
    *p = sl_body_data(b);
    *n = sl_body_len(b);
    return SL_API_OK;
}

int sl_api_body_set(struct sl_conn *c, int side, const char *p, size_t n)
{
    struct sl_body *b = side_body(c, side);
    if (b->state != SL_BODY_OPEN)
        return SL_API_EPHASE;
    return sl_body_replace(b, p, n) < 0 ? SL_API_ENOMEM : SL_API_OK;
}

int sl_api_ctx_set(struct sl_conn *c, const char *key, size_t klen, const char *value,
                   size_t vlen)
{
    struct sl_req *r = &c->req;
    for (size_t i = 0; i < r->nkv; i++) {
        if (r->kv[i].klen == klen && memcmp(r->kv[i].key, key, klen) == 0) {
            if (value == NULL) {
                r->kv[i] = r->kv[--r->nkv];
                return SL_API_OK;
            }
            char *v = sl_arena_strndup(&c->arena, value, vlen);
            if (v == NULL)
                return SL_API_ENOMEM;
            r->kv[i].value = v;
            r->kv[i].vlen = vlen;
            return SL_API_OK;
        }
    }
    if (value == NULL)
        return SL_API_NOT_FOUND;
    if (r->nkv == r->kvcap) {
        size_t cap = r->kvcap ? r->kvcap * 2 : 8;
        struct sl_kv *kv = sl_arena_alloc(&c->arena, cap * sizeof *kv);
        if (kv == NULL)
            return SL_API_ENOMEM;
        if (r->nkv)
            memcpy(kv, r->kv, r->nkv * sizeof *kv);
        r->kv = kv;
        r->kvcap = cap;
    }
    char *k = sl_arena_strndup(&c->arena, key, klen);
    char *v = sl_arena_strndup(&c->arena, value, vlen);
    if (k == NULL || v == NULL)
        return SL_API_ENOMEM;
    r->kv[r->nkv++] = (struct sl_kv){.key = k, .klen = klen, .value = v, .vlen = vlen};
    return SL_API_OK;
}

int sl_api_ctx_get(struct sl_conn *c, const char *key, size_t klen, const char **p,
                   size_t *n)
{
    const struct sl_req *r = &c->req;
    for (size_t i = 0; i < r->nkv; i++) {
        if (r->kv[i].klen == klen && memcmp(r->kv[i].key, key, klen) == 0) {
            *p = r->kv[i].value;
            *n = r->kv[i].vlen;
            return SL_API_OK;
        }
    }
    return SL_API_NOT_FOUND;
}

int sl_api_log(struct sl_conn *c, int level, const char *plugin, const char *msg, size_t len)
{
    if (level < SL_LOG_ERROR || level > SL_LOG_DEBUG)
        return SL_API_EINVAL;
    SL_LOG((enum sl_log_level)level, "plugin %s: %.*s (request %s)", plugin, (int)len, msg,
           c->req.id);
    return SL_API_OK;
}

static bool is_field_key(const char *k, size_t n)
{
    if (n == 0 || n > SL_API_LOG_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = k[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

int sl_api_log_set_field(struct sl_conn *c, const char *key, size_t klen, const char *value,
                         size_t vlen)
{
    struct sl_req *r = &c->req;
    if (!is_field_key(key, klen) || (value != NULL && vlen > SL_API_LOG_VALUE_MAX))
        return SL_API_EINVAL;
    for (size_t i = 0; i < r->nlog_fields; i++) {
        struct sl_kv *f = &r->log_fields[i];
        if (f->klen != klen || memcmp(f->key, key, klen) != 0)
            continue;
        if (value == NULL) {
            memmove(f, f + 1, (r->nlog_fields - i - 1) * sizeof *f);
            r->nlog_fields--;
            return SL_API_OK;
        }
        char *v = sl_arena_strndup(&c->arena, value, vlen);
        if (v == NULL)
            return SL_API_ENOMEM;
        f->value = v;
        f->vlen = vlen;
        return SL_API_OK;
    }
    if (value == NULL)
        return SL_API_NOT_FOUND;
    if (r->nlog_fields == SL_API_LOG_FIELDS_MAX)
        return SL_API_EINVAL;
    if (r->nlog_fields == r->log_fields_cap) {
        size_t cap = r->log_fields_cap ? r->log_fields_cap * 2 : 4;
        struct sl_kv *f = sl_arena_alloc(&c->arena, cap * sizeof *f);
        if (f == NULL)
            return SL_API_ENOMEM;
        if (r->nlog_fields)
            memcpy(f, r->log_fields, r->nlog_fields * sizeof *f);
        r->log_fields = f;
        r->log_fields_cap = cap;
    }
    char *k = sl_arena_strndup(&c->arena, key, klen);
    char *v = sl_arena_strndup(&c->arena, value, vlen);
    if (k == NULL || v == NULL)
        return SL_API_ENOMEM;
    r->log_fields[r->nlog_fields++] = (struct sl_kv){.key = k, .klen = klen, .value = v, .vlen = vlen};
    return SL_API_OK;
}

int sl_api_route(struct sl_conn *c, const char **host, size_t *hlen, const char **path,
                 size_t *plen)
{
    const struct sl_route_conf *r = c->req.route;
    if (r == NULL)
        return SL_API_NOT_FOUND;
    *host = r->host;
    *hlen = r->host != NULL ? strlen(r->host) : 0;
    *path = r->path;
    *plen = strlen(r->path);
    return SL_API_OK;
}

int64_t sl_api_now_ms(struct sl_conn *c)
{
    return sl_worker_now_ms(c->w);
}

/* --- balancer ------------------------------------------------------------------ */

int sl_api_upstream_name(struct sl_conn *c, const char **p, size_t *n)
{
    const struct sl_req *r = &c->req;
    if (!r->in_balancer)
        return SL_API_EPHASE;
    *p = r->upstream->conf->name;
    *n = strlen(*p);
    return SL_API_OK;
}

int sl_api_set_upstream(struct sl_conn *c, const char *name, size_t len)
{
    struct sl_req *r = &c->req;
    if (!r->in_balancer)
        return SL_API_EPHASE;
    if (name == NULL && len != 0)
        return SL_API_EINVAL;
    struct sl_gen *g = r->wg->gen;
    for (size_t i = 0; i < g->nupstreams && len != 0; i++) {
        const char *un = g->upstreams[i].conf->name;
        if (strlen(un) != len || memcmp(un, name, len) != 0)
            continue;
        if (r->upstream != &g->upstreams[i])
            r->chosen = NULL;
        r->upstream = &g->upstreams[i];
        return SL_API_OK;
    }
    return SL_API_NOT_FOUND;
}

int sl_api_backend_count(struct sl_conn *c, size_t *n)
{
    if (!c->req.in_balancer)
        return SL_API_EPHASE;
    *n = c->req.upstream->nbackends;
    return SL_API_OK;
}

int sl_api_backend_at(struct sl_conn *c, size_t i, const char **addr, size_t *alen,
                      int *weight, int64_t *cooldown_ms)
{
    const struct sl_upstream *up = c->req.upstream;
    if (!c->req.in_balancer)
        return SL_API_EPHASE;
    if (i >= up->nbackends)
        return SL_API_NOT_FOUND;
    const struct sl_backend *b = &up->backends[i];
    if (addr != NULL)
        *addr = b->conf->addr.text;
    if (alen != NULL)
        *alen = strlen(b->conf->addr.text);
    if (weight != NULL)
        *weight = b->conf->weight;
    if (cooldown_ms != NULL) {
        int64_t left = atomic_load_explicit(&b->down_until_ms, memory_order_relaxed) -
                       sl_worker_now_ms(c->w);
        *cooldown_ms = left > 0 ? left : 0;
    }
    return SL_API_OK;
}

/* Only a backend the configuration lists: the address is matched against
 * the configured text, never parsed or resolved, so a plugin cannot reach
 * a host of its (or a client's) choosing. */
int sl_api_set_backend(struct sl_conn *c, const char *addr, size_t len)
{
    struct sl_req *r = &c->req;
    if (!r->in_balancer)
        return SL_API_EPHASE;
    if (addr == NULL && len != 0)
        return SL_API_EINVAL;
    struct sl_upstream *up = r->upstream;
    for (size_t i = 0; i < up->nbackends && len != 0; i++) {
        const char *text = up->backends[i].conf->addr.text;
        if (strlen(text) == len && strncasecmp(text, addr, len) == 0) {
            r->chosen = &up->backends[i];
            return SL_API_OK;
        }
    }
    return SL_API_NOT_FOUND;
}
