#include "plugin_native_host.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "api.h"
#include "arena.h"
#include "conn.h"
#include "log.h"
#include "lua_ffi.h"
#include "metrics.h"
#include "plugin.h"
#include "shdict.h"
#include "worker.h"

/* The ABI mirrors the core's codes and enums one to one, so the table's
 * functions pass them through untranslated. */
#define SAME(a, b) _Static_assert((int)(a) == (int)(b), #a " must equal " #b)
SAME(SLUICE_OK, SL_API_OK);
SAME(SLUICE_NOT_FOUND, SL_API_NOT_FOUND);
SAME(SLUICE_EINVAL, SL_API_EINVAL);
SAME(SLUICE_ENOMEM, SL_API_ENOMEM);
SAME(SLUICE_EPHASE, SL_API_EPHASE);
SAME(SLUICE_OK, SL_SHDICT_OK);
SAME(SLUICE_NOT_FOUND, SL_SHDICT_NOT_FOUND);
SAME(SLUICE_EXISTS, SL_SHDICT_EXISTS);
SAME(SLUICE_TRUNCATED, SL_SHDICT_TRUNCATED);
SAME(SLUICE_EINVAL, SL_SHDICT_EINVAL);
SAME(SLUICE_ENOMEM, SL_SHDICT_ENOMEM);
SAME(SLUICE_ENOTNUM, SL_SHDICT_ENOTNUM);
SAME(SLUICE_DICT_NIL, SL_SHDICT_NIL);
SAME(SLUICE_DICT_BOOL, SL_SHDICT_BOOL);
SAME(SLUICE_DICT_NUMBER, SL_SHDICT_NUMBER);
SAME(SLUICE_DICT_STRING, SL_SHDICT_STRING);
SAME(SLUICE_DICT_KEEP, SL_SHDICT_KEEP);
SAME(SLUICE_DICT_STORE, SL_SHDICT_STORE);
SAME(SLUICE_DICT_REMOVE, SL_SHDICT_REMOVE);
SAME(SLUICE_REQUEST, SL_API_REQUEST);
SAME(SLUICE_RESPONSE, SL_API_RESPONSE);
SAME(SLUICE_CONTINUE, SL_ACTION_CONTINUE);
SAME(SLUICE_RESPOND, SL_ACTION_RESPOND);
SAME(SLUICE_ERROR, SL_ACTION_ERROR);
SAME(SLUICE_PHASE_REQUEST_HEADERS, SL_PHASE_REQUEST_HEADERS);
SAME(SLUICE_PHASE_REQUEST_BODY, SL_PHASE_REQUEST_BODY);
SAME(SLUICE_PHASE_BALANCER, SL_PHASE_BALANCER);
SAME(SLUICE_PHASE_RESPONSE_HEADERS, SL_PHASE_RESPONSE_HEADERS);
SAME(SLUICE_PHASE_RESPONSE_BODY, SL_PHASE_RESPONSE_BODY);
SAME(SLUICE_PHASE_LOG, SL_PHASE_LOG);
SAME(SLUICE_LOG_ERROR, SL_LOG_ERROR);
SAME(SLUICE_LOG_WARN, SL_LOG_WARN);
SAME(SLUICE_LOG_INFO, SL_LOG_INFO);
SAME(SLUICE_LOG_DEBUG, SL_LOG_DEBUG);
SAME(SLUICE_CONF_NULL, SL_VALUE_NULL);
SAME(SLUICE_CONF_BOOL, SL_VALUE_BOOL);
SAME(SLUICE_CONF_INT, SL_VALUE_INT);
SAME(SLUICE_CONF_NUMBER, SL_VALUE_NUMBER);
SAME(SLUICE_CONF_STRING, SL_VALUE_STRING);
SAME(SLUICE_CONF_LIST, SL_VALUE_LIST);
SAME(SLUICE_CONF_MAP, SL_VALUE_MAP);
#undef SAME

/* --- the request --------------------------------------------------------------- */

/* Fills out after the call that produced p and n (never in the same
 * expression: argument order is unspecified). */
static int out_str(int rc, const char *p, size_t n, struct sluice_str *out)
{
    out->p = rc == SL_API_OK ? p : NULL;
    out->len = rc == SL_API_OK ? n : 0;
    return rc;
}

#define GETTER(fn, api)                                                       \
    static int fn(struct sluice_req *r, struct sluice_str *out)              \
    {                                                                         \
        const char *p = NULL;                                                 \
        size_t n = 0;                                                         \
        int rc = api(r->c, &p, &n);                                           \
        return out_str(rc, p, n, out);                                        \
    }

GETTER(h_method, sl_api_method)
GETTER(h_path, sl_api_path)
GETTER(h_query, sl_api_query)
GETTER(h_client_addr, sl_api_client_addr)
GETTER(h_request_id, sl_api_request_id)

static int h_set_method(struct sluice_req *r, const char *p, size_t n)
{
    return sl_api_set_method(r->c, p, n);
}

static int h_set_path(struct sluice_req *r, const char *p, size_t n)
{
    return sl_api_set_path(r->c, p, n);
}

static int h_set_query(struct sluice_req *r, const char *p, size_t n)
{
    return sl_api_set_query(r->c, p, n);
}

static int h_route(struct sluice_req *r, struct sluice_str *host, struct sluice_str *path)
{
    const char *hp = NULL, *pp = NULL;
    size_t hn = 0, pn = 0;
    int rc = sl_api_route(r->c, &hp, &hn, &pp, &pn);
    out_str(rc, hp, hn, host);
    return out_str(rc, pp, pn, path);
}

static bool bad_side(int side)
{
    return side != SLUICE_REQUEST && side != SLUICE_RESPONSE;
}

static int h_header_get(struct sluice_req *r, int side, const char *name, size_t nlen,
                        size_t index, struct sluice_str *value)
{
    const char *p = NULL;
    size_t n = 0;
    if (bad_side(side))
        return out_str(SL_API_EINVAL, p, n, value);
    int rc = sl_api_header_get(r->c, side, name, nlen, index, &p, &n);
    return out_str(rc, p, n, value);
}

static size_t h_header_count(struct sluice_req *r, int side)
{
    return bad_side(side) ? 0 : sl_api_header_count(r->c, side);
}

static int h_header_at(struct sluice_req *r, int side, size_t i, struct sluice_str *name,
                       struct sluice_str *value)
{
    const char *np = NULL, *vp = NULL;
    size_t nn = 0, vn = 0;
    int rc = bad_side(side) ? SL_API_EINVAL
           : sl_api_header_at(r->c, side, i, &np, &nn, &vp, &vn);
    out_str(rc, np, nn, name);
    return out_str(rc, vp, vn, value);
}

static int h_header_set(struct sluice_req *r, int side, const char *name, size_t nlen,
                        const char *value, size_t vlen)
{
    return bad_side(side) ? SL_API_EINVAL
         : sl_api_header_set(r->c, side, name, nlen, value, vlen);
}

static int h_header_add(struct sluice_req *r, int side, const char *name, size_t nlen,
                        const char *value, size_t vlen)
{
    return bad_side(side) ? SL_API_EINVAL
         : sl_api_header_add(r->c, side, name, nlen, value, vlen);
}

static int h_header_remove(struct sluice_req *r, int side, const char *name, size_t nlen)
{
    return bad_side(side) ? SL_API_EINVAL : sl_api_header_remove(r->c, side, name, nlen);
}

static int h_status(struct sluice_req *r)
{
    return sl_api_status(r->c);
}

static int h_set_status(struct sluice_req *r, int status)
{
    return sl_api_set_status(r->c, status);
}

static int h_respond(struct sluice_req *r, int status, const char *body, size_t len)
{
    return sl_api_respond(r->c, status, body, len);
}

static int h_body_get(struct sluice_req *r, int side, struct sluice_str *out)
{
    const char *p = NULL;
    size_t n = 0;
    if (bad_side(side))
        return out_str(SL_API_EINVAL, p, n, out);
    int rc = sl_api_body_get(r->c, side, &p, &n);
    return out_str(rc, p, n, out);
}

static int h_body_set(struct sluice_req *r, int side, const char *p, size_t n)
{
    return bad_side(side) ? SL_API_EINVAL : sl_api_body_set(r->c, side, p, n);
}

static int h_ctx_get(struct sluice_req *r, const char *key, size_t klen, struct sluice_str *out)
{
    const char *p = NULL;
    size_t n = 0;
    int rc = sl_api_ctx_get(r->c, key, klen, &p, &n);
    return out_str(rc, p, n, out);
}

static int h_ctx_set(struct sluice_req *r, const char *key, size_t klen, const char *value,
                     size_t vlen)
{
    return sl_api_ctx_set(r->c, key, klen, value, vlen);
}

static void *h_alloc(struct sluice_req *r, size_t n)
{
    return sl_arena_alloc(&r->c->arena, n ? n : 1);
}

static void h_error(struct sluice_req *r, const char *msg)
{
    snprintf(r->err, r->errlen, "%s", msg ? msg : "error");
}

static void h_log(struct sluice_req *r, int level, const char *msg, size_t len)
{
    if (level < SLUICE_LOG_ERROR || level > SLUICE_LOG_DEBUG)
        level = SLUICE_LOG_ERROR;
    if (r != NULL)
        sl_api_log(r->c, level, r->p->name, msg, len);
    else
        SL_LOG((enum sl_log_level)level, "%.*s", (int)len, msg);
}

static int h_log_enabled(int level)
{
    return level <= (int)sl_log_level_current;
}

static int64_t h_now_ms(struct sluice_req *r)
{
    if (r != NULL)
        return sl_api_now_ms(r->c);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* --- the config tree ----------------------------------------------------------- */

static const struct sl_value *val(const struct sluice_conf *node)
{
    return (const struct sl_value *)node;
}

static const struct sluice_conf *conf(const struct sl_value *v)
{
    return (const struct sluice_conf *)v;
}

static int h_conf_type(const struct sluice_conf *node)
{
    return node == NULL ? SLUICE_CONF_ABSENT : (int)val(node)->kind;
}

static const struct sl_value *map_get(const struct sl_value *v, const char *key, size_t n)
{
    if (v->kind != SL_VALUE_MAP)
        return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (strlen(v->keys[i]) == n && memcmp(v->keys[i], key, n) == 0)
            return &v->items[i];
    return NULL;
}

static const struct sluice_conf *h_conf_get(const struct sluice_conf *node, const char *path)
{
    const struct sl_value *v = val(node);
    while (v != NULL && path != NULL && *path != '\0') {
        if (*path == '[') {
            char *end;
            unsigned long long i = strtoull(path + 1, &end, 10);
            if (end == path + 1 || *end != ']' || v->kind != SL_VALUE_LIST || i >= v->n)
                return NULL;
            v = &v->items[i];
            path = end + 1;
        } else {
            size_t n = strcspn(path, ".[");
            v = map_get(v, path, n);
            path += n;
        }
        if (*path == '.')
            path++;
    }
    return conf(v);
}

static size_t h_conf_len(const struct sluice_conf *node)
{
    const struct sl_value *v = val(node);
    return v != NULL && (v->kind == SL_VALUE_LIST || v->kind == SL_VALUE_MAP) ? v->n : 0;
}

static const struct sluice_conf *h_conf_at(const struct sluice_conf *node, size_t i,
                                           struct sluice_str *key)
{
    const struct sl_value *v = val(node);
    if (key != NULL)
        *key = (struct sluice_str){ NULL, 0 };
    if (v == NULL || (v->kind != SL_VALUE_LIST && v->kind != SL_VALUE_MAP) || i >= v->n)
        return NULL;
    if (key != NULL && v->kind == SL_VALUE_MAP)
        *key = (struct sluice_str){ v->keys[i], strlen(v->keys[i]) };
    return conf(&v->items[i]);
}

static int h_conf_string(const struct sluice_conf *node, struct sluice_str *out)
{
    const struct sl_value *v = val(node);
    if (v == NULL || v->kind != SL_VALUE_STRING)
        return SLUICE_EINVAL;
    *out = (struct sluice_str){ v->s, v->len };
    return SLUICE_OK;
}

static int h_conf_int(const struct sluice_conf *node, int64_t *out)
{
    const struct sl_value *v = val(node);
    if (v == NULL || v->kind != SL_VALUE_INT)
        return SLUICE_EINVAL;
    *out = v->i;
    return SLUICE_OK;
}

static int h_conf_number(const struct sluice_conf *node, double *out)
{
    const struct sl_value *v = val(node);
    if (v == NULL || (v->kind != SL_VALUE_INT && v->kind != SL_VALUE_NUMBER))
        return SLUICE_EINVAL;
    *out = v->kind == SL_VALUE_INT ? (double)v->i : v->d;
    return SLUICE_OK;
}

static int h_conf_bool(const struct sluice_conf *node, int *out)
{
    const struct sl_value *v = val(node);
    if (v == NULL || v->kind != SL_VALUE_BOOL)
        return SLUICE_EINVAL;
    *out = v->b;
    return SLUICE_OK;
}

/* A number as Lua's tostring writes it ("%.14g", inf, nan). */
static void describe_number(double d, char *buf, size_t len)
{
    if (isnan(d))
        snprintf(buf, len, "nan");
    else if (isinf(d))
        snprintf(buf, len, "%sinf", d < 0 ? "-" : "");
    else
        snprintf(buf, len, "%.14g", d);
}

/* A string as Lua's %q writes it (LuaJIT: control bytes as decimal
 * escapes), cut to 37 bytes and "..." past 40 like sluice's schemas. */
static void describe_string(const char *s, size_t n, char *buf, size_t len)
{
    char cut[41];
    if (n > 40) {
        memcpy(cut, s, 37);
        memcpy(cut + 37, "...", 3);
        s = cut;
        n = 40;
    }
    size_t o = 0;
    if (len < 4) {
        snprintf(buf, len, "\"\"");
        return;
    }
    buf[o++] = '"';
    for (size_t i = 0; i < n && o + 6 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\' || ch == '\n') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else if (ch < 32 || ch == 127) {
            bool digit_next = i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9';
            o += (size_t)snprintf(buf + o, len - o, digit_next ? "\\%03u" : "\\%u", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

static const char *h_conf_describe(const struct sluice_conf *node, char *buf, size_t len)
{
    const struct sl_value *v = val(node);
    if (len == 0)
        return buf;
    if (v == NULL) {
        snprintf(buf, len, "nothing");
        return buf;
    }
    switch (v->kind) {
    case SL_VALUE_NULL: snprintf(buf, len, "null"); break;
    case SL_VALUE_BOOL: snprintf(buf, len, "%s", v->b ? "true" : "false"); break;
    case SL_VALUE_INT: describe_number((double)v->i, buf, len); break;
    case SL_VALUE_NUMBER: describe_number(v->d, buf, len); break;
    case SL_VALUE_STRING: describe_string(v->s, v->len, buf, len); break;
    default: snprintf(buf, len, "a table"); break;
    }
    return buf;
}

/* --- errors ----------------------------------------------------------------------- */

/* Writes the key path of target within v ("config.a[0].b") into path,
 * whose first used bytes hold v's own. Returns whether target was found. */
static bool path_of(const struct sl_value *v, const struct sl_value *target, char *path,
                    size_t len, size_t used)
{
    if (v == target)
        return true;
    if (v->kind != SL_VALUE_LIST && v->kind != SL_VALUE_MAP)
        return false;
    for (size_t i = 0; i < v->n; i++) {
        int w = v->kind == SL_VALUE_LIST ? snprintf(path + used, len - used, "[%zu]", i)
                                         : snprintf(path + used, len - used, ".%s", v->keys[i]);
        size_t next = used + (w > 0 ? (size_t)w : 0);
        if (next >= len)
            next = len - 1;
        if (path_of(&v->items[i], target, path, len, next))
            return true;
        path[used] = '\0';
    }
    return false;
}

void sl_native_errors_init(struct sluice_errors *e, const struct sl_plugin_conf *pc,
                           const char *config_file, bool positions)
{
    e->pc = pc;
    e->config_file = config_file;
    e->positions = positions;
    e->n = 0;
    e->len = 0;
    e->buf[0] = '\0';
}

/* Appends one complete line. */
static void add_line(struct sluice_errors *e, const char *msg)
{
    if (e->len + 1 < sizeof e->buf) {
        int w = snprintf(e->buf + e->len, sizeof e->buf - e->len, "%s%s", e->n ? "\n" : "", msg);
        if (w > 0)
            e->len = e->len + (size_t)w < sizeof e->buf ? e->len + (size_t)w : sizeof e->buf - 1;
    }
    e->n++;
}

static void h_conf_error(struct sluice_errors *e, const struct sluice_conf *node,
                         const char *key, const char *msg)
{
    char where[4096 + 64] = "", path[1024] = "config", line[4096 + 2048];
    const struct sl_value *v = val(node);
    if (e == NULL)
        return;
    int lnum = v ? v->line : e->pc->line, col = v ? v->col : e->pc->col;
    if (e->positions && e->config_file != NULL)
        snprintf(where, sizeof where, "%s:%d:%d: ", e->config_file, lnum, col);
    if (v == NULL) {
        snprintf(line, sizeof line, "%splugin %s: %s", where, e->pc->name, msg ? msg : "error");
    } else {
        if (!path_of(&e->pc->config, v, path, sizeof path, strlen(path)))
            snprintf(path, sizeof path, "config");
        snprintf(line, sizeof line, "%splugin %s: %s%s%s: %s", where, e->pc->name, path,
                 key ? "." : "", key ? key : "", msg ? msg : "error");
    }
    add_line(e, line);
}

/* --- shared dictionaries -------------------------------------------------------- */

static struct sl_shdict *dict(struct sluice_dict *d)
{
    return (struct sl_shdict *)d;
}

/* While a configuration loads, its own dictionaries (the thread's scope);
 * otherwise any dictionary a live configuration declares. */
static struct sluice_dict *h_dict_open(const char *name, size_t len)
{
    return (struct sluice_dict *)sl_shdict_open(sl_shdict_scope(), name, len);
}

static void h_dict_close(struct sluice_dict *d)
{
    sl_shdict_unref(dict(d));
}

static struct sl_shdict_value value_in(const struct sluice_dict_value *v)
{
    return (struct sl_shdict_value){ .type = v->type, .num = v->num, .str = v->str.p,
                                     .len = v->str.len };
}

static int h_dict_get(struct sluice_dict *d, const char *key, size_t klen,
                      struct sluice_dict_value *out, char *buf, size_t buflen)
{
    struct sl_shdict_value v = { 0 };
    int rc = sl_shdict_get(dict(d), key, klen, &v, buf, buflen);
    *out = (struct sluice_dict_value){ .type = v.type, .num = v.num,
                                       .str = { v.str, v.len } };
    return rc;
}

static int h_dict_set(struct sluice_dict *d, const char *key, size_t klen,
                      const struct sluice_dict_value *v, int64_t ttl_ms)
{
    struct sl_shdict_value in = value_in(v);
    return sl_shdict_set(dict(d), key, klen, &in, ttl_ms);
}

static int h_dict_add(struct sluice_dict *d, const char *key, size_t klen,
                      const struct sluice_dict_value *v, int64_t ttl_ms)
{
    struct sl_shdict_value in = value_in(v);
    return sl_shdict_add(dict(d), key, klen, &in, ttl_ms);
}

static int h_dict_incr(struct sluice_dict *d, const char *key, size_t klen, double by,
                       const double *init, int64_t init_ttl_ms, double *result)
{
    return sl_shdict_incr(dict(d), key, klen, by, init, init_ttl_ms, result);
}

static int h_dict_delete(struct sluice_dict *d, const char *key, size_t klen)
{
    return sl_shdict_delete(dict(d), key, klen);
}

/* dict_update: the plugin's callback behind sl_shdict_update's, with the
 * values translated both ways (the two value structs differ in layout). */
struct update_call {
    sluice_dict_update_fn fn;
    void *arg;
};

static int update_trampoline(void *arg, const struct sl_shdict_value *cur,
                             struct sl_shdict_value *next, int64_t *ttl_ms)
{
    const struct update_call *u = arg;
    const struct sluice_dict_value in = { .type = cur->type, .num = cur->num,
                                          .str = { cur->str, cur->len } };
    struct sluice_dict_value out = in;
    int verdict = u->fn(u->arg, &in, &out, ttl_ms);
    *next = value_in(&out);
    return verdict;
}

static int h_dict_update(struct sluice_dict *d, const char *key, size_t klen,
                         sluice_dict_update_fn fn, void *arg)
{
    if (fn == NULL)
        return SLUICE_EINVAL;
    struct update_call u = { fn, arg };
    return sl_shdict_update(dict(d), key, klen, update_trampoline, &u);
}

/* --- the balancer -------------------------------------------------------------- */

GETTER(h_upstream_name, sl_api_upstream_name)

static int h_set_upstream(struct sluice_req *r, const char *name, size_t len)
{
    return sl_api_set_upstream(r->c, name, len);
}

static int h_backend_count(struct sluice_req *r, size_t *n)
{
    size_t v = 0;
    int rc = sl_api_backend_count(r->c, &v);
    if (n != NULL)
        *n = v;
    return rc;
}

static int h_backend_at(struct sluice_req *r, size_t i, struct sluice_str *address,
                        int *weight, int64_t *cooldown_ms)
{
    const char *p = NULL;
    size_t n = 0;
    int rc = sl_api_backend_at(r->c, i, &p, &n, weight, cooldown_ms);
    if (address != NULL)
        out_str(rc, p, n, address);
    return rc;
}

static int h_set_backend(struct sluice_req *r, const char *address, size_t len)
{
    return sl_api_set_backend(r->c, address, len);
}

/* --- the plugin's own metrics ------------------------------------------------------ */

/* Defining is for config time, as Lua's is for load time: only
 * config_create's error list carries positions (worker_init's does not).
 * The registry keys a metric by plugin name and metric name, so a reload's
 * config_create gets the old handle back and the value goes on. */
static int define_metric(struct sluice_errors *e, const char *fn, enum sl_metric_type type,
                         const char *name, const char *help, const double *buckets,
                         size_t nbuckets)
{
    char err[256], msg[320];
    if (e == NULL || !e->positions)
        return SLUICE_EPHASE;
    int h = sl_metrics_define(e->pc->name, name, help, type, buckets, nbuckets, err, sizeof err);
    if (h >= 0)
        return h;
    snprintf(msg, sizeof msg, "%s: %s", fn, err);
    h_conf_error(e, NULL, NULL, msg);
    return SLUICE_EINVAL;
}

static int h_metric_counter(struct sluice_errors *e, const char *name, const char *help)
{
    return define_metric(e, "metric_counter", SL_METRIC_COUNTER, name, help, NULL, 0);
}

static int h_metric_histogram(struct sluice_errors *e, const char *name, const char *help,
                              const double *buckets, size_t nbuckets)
{
    return define_metric(e, "metric_histogram", SL_METRIC_HISTOGRAM, name, help, buckets,
                         buckets != NULL ? nbuckets : 0);
}

static int h_metric_add(struct sluice_req *r, int metric, double n)
{
    return sl_metrics_add(r->c->w->id, metric, n) < 0 ? SLUICE_EINVAL : SLUICE_OK;
}

static int h_metric_observe(struct sluice_req *r, int metric, double v)
{
    return sl_metrics_observe(r->c->w->id, metric, v) < 0 ? SLUICE_EINVAL : SLUICE_OK;
}

const struct sluice_host sl_native_host = {
    .size = sizeof(struct sluice_host),
    .abi_major = SLUICE_ABI_MAJOR,
    .abi_minor = SLUICE_ABI_MINOR,
    .method = h_method,
    .path = h_path,
    .query = h_query,
    .client_addr = h_client_addr,
    .request_id = h_request_id,
    .set_method = h_set_method,
    .set_path = h_set_path,
    .set_query = h_set_query,
    .header_get = h_header_get,
    .header_count = h_header_count,
    .header_at = h_header_at,
    .header_set = h_header_set,
    .header_add = h_header_add,
    .header_remove = h_header_remove,
    .status = h_status,
    .set_status = h_set_status,
    .respond = h_respond,
    .body_get = h_body_get,
    .body_set = h_body_set,
    .ctx_get = h_ctx_get,
    .ctx_set = h_ctx_set,
    .alloc = h_alloc,
    .error = h_error,
    .log = h_log,
    .log_enabled = h_log_enabled,
    .now_ms = h_now_ms,
    .conf_type = h_conf_type,
    .conf_get = h_conf_get,
    .conf_len = h_conf_len,
    .conf_at = h_conf_at,
    .conf_string = h_conf_string,
    .conf_int = h_conf_int,
    .conf_number = h_conf_number,
    .conf_bool = h_conf_bool,
    .conf_describe = h_conf_describe,
    .conf_error = h_conf_error,
    .dict_open = h_dict_open,
    .dict_close = h_dict_close,
    .dict_get = h_dict_get,
    .dict_set = h_dict_set,
    .dict_add = h_dict_add,
    .dict_incr = h_dict_incr,
    .dict_delete = h_dict_delete,
    .upstream_name = h_upstream_name,
    .set_upstream = h_set_upstream,
    .backend_count = h_backend_count,
    .backend_at = h_backend_at,
    .set_backend = h_set_backend,
    .route = h_route,
    .monotonic_ms = sl_ffi_monotonic_ms,
    .dict_update = h_dict_update,
    .metric_counter = h_metric_counter,
    .metric_histogram = h_metric_histogram,
    .metric_add = h_metric_add,
    .metric_observe = h_metric_observe,
};
