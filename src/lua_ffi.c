#include "lua_ffi.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "api.h"
#include "conn.h"
#include "gen.h"
#include "log.h"
#include "metrics.h"
#include "random.h"
#include "shdict.h"
#include "worker.h"

/* One hook runs at a time on a thread, and workers are threads: a
 * thread-local pointer is all the "which request" state the API needs,
 * and plugin code never sees it. Set inline by sl_ffi_enter/leave
 * (lua_ffi.h), twice per hook call. */
__thread struct sl_conn *sl_ffi_current_conn;
#define current sl_ffi_current_conn

static bool is_side(int side)
{
    return side == SL_API_REQUEST || side == SL_API_RESPONSE;
}

/* --- request line and metadata ------------------------------------------- */

#define GETTER(fn, api)                                                     \
    int fn(const char **p, size_t *n)                                       \
    {                                                                       \
        return current ? api(current, p, n) : SL_FFI_ENOREQ;                \
    }

GETTER(sl_ffi_method, sl_api_method)
GETTER(sl_ffi_path, sl_api_path)
GETTER(sl_ffi_query, sl_api_query)
GETTER(sl_ffi_client_addr, sl_api_client_addr)
GETTER(sl_ffi_request_id, sl_api_request_id)

#define SETTER(fn, api)                                                     \
    int fn(const char *p, size_t n)                                         \
    {                                                                       \
        return current ? api(current, p, n) : SL_FFI_ENOREQ;                \
    }

SETTER(sl_ffi_set_method, sl_api_set_method)
SETTER(sl_ffi_set_path, sl_api_set_path)
SETTER(sl_ffi_set_query, sl_api_set_query)

/* --- headers ------------------------------------------------------------------ */

int sl_ffi_header_get(int side, const char *name, size_t nlen, size_t index,
                      const char **p, size_t *n)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_header_get(current, side, name, nlen, index, p, n);
}

int sl_ffi_header_count(int side)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    size_t n = sl_api_header_count(current, side);
    return n > (size_t)1 << 30 ? 1 << 30 : (int)n;
}

int sl_ffi_header_at(int side, size_t i, const char **name, size_t *nlen,
                     const char **value, size_t *vlen)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_header_at(current, side, i, name, nlen, value, vlen);
}

int sl_ffi_header_set(int side, const char *name, size_t nlen, const char *value,
                      size_t vlen)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_header_set(current, side, name, nlen, value, vlen);
}

int sl_ffi_header_add(int side, const char *name, size_t nlen, const char *value,
                      size_t vlen)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_header_add(current, side, name, nlen, value, vlen);
}

int sl_ffi_header_set_known(int side, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_header_set_known(current, side, name, nlen, value, vlen);
}

int sl_ffi_header_add_known(int side, const char *name, size_t nlen, const char *value,
                            size_t vlen)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_header_add_known(current, side, name, nlen, value, vlen);
}

int sl_ffi_header_remove(int side, const char *name, size_t nlen)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_header_remove(current, side, name, nlen);
}

/* --- response -------------------------------------------------------------------- */

int sl_ffi_status(void)
{
    return current ? sl_api_status(current) : SL_FFI_ENOREQ;
}

int sl_ffi_set_status(int status)
{
    return current ? sl_api_set_status(current, status) : SL_FFI_ENOREQ;
}

int sl_ffi_respond(int status, const char *body, size_t len)
{
    return current ? sl_api_respond(current, status, body, len) : SL_FFI_ENOREQ;
}

/* --- bodies ------------------------------------------------------------------------ */

int sl_ffi_body_get(int side, const char **p, size_t *n)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_body_get(current, side, p, n);
}

int sl_ffi_body_set(int side, const char *p, size_t n)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    if (!is_side(side))
        return SL_API_EINVAL;
    return sl_api_body_set(current, side, p, n);
}

/* --- shared per-request space ------------------------------------------------------- */

int sl_ffi_ctx_get(const char *key, size_t klen, const char **p, size_t *n)
{
    return current ? sl_api_ctx_get(current, key, klen, p, n) : SL_FFI_ENOREQ;
}

int sl_ffi_ctx_set(const char *key, size_t klen, const char *value, size_t vlen)
{
    return current ? sl_api_ctx_set(current, key, klen, value, vlen) : SL_FFI_ENOREQ;
}

/* --- logging and time ---------------------------------------------------------- */

int sl_ffi_log(int level, const char *plugin, const char *msg, size_t len)
{
    if (level < SL_LOG_ERROR || level > SL_LOG_DEBUG)
        return SL_API_EINVAL;
    if (plugin == NULL)
        plugin = "?";
    if (current != NULL)
        return sl_api_log(current, level, plugin, msg, len);
    int n = len > 65536 ? 65536 : (int)len;
    SL_LOG((enum sl_log_level)level, "plugin %s: %.*s", plugin, n, msg);
    return SL_API_OK;
}

int sl_ffi_log_enabled(int level)
{
    return level <= (int)sl_log_level_current;
}

int sl_ffi_log_set_field(const char *key, size_t klen, const char *value, size_t vlen)
{
    return current ? sl_api_log_set_field(current, key, klen, value, vlen) : SL_FFI_ENOREQ;
}

/* --- metrics --------------------------------------------------------------------- */

int sl_ffi_metric_define(const char *plugin, int type, const char *name, const char *help,
                         const double *buckets, int nbuckets, char *err, size_t errlen)
{
    if (current != NULL)
        return SL_API_EPHASE;
    if (nbuckets < 0 || (type != SL_METRIC_COUNTER && type != SL_METRIC_HISTOGRAM)) {
        snprintf(err, errlen, "invalid metric definition");
        return SL_API_EINVAL;
    }
    int h = sl_metrics_define(plugin, name, help, (enum sl_metric_type)type,
                              buckets, (size_t)nbuckets, err, errlen);
    return h >= 0 ? h : SL_API_EINVAL;
}

int sl_ffi_metric_add(int handle, double n)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    return sl_metrics_add(current->w->id, handle, n) < 0 ? SL_API_EINVAL : SL_API_OK;
}

int sl_ffi_metric_observe(int handle, double v)
{
    if (current == NULL)
        return SL_FFI_ENOREQ;
    return sl_metrics_observe(current->w->id, handle, v) < 0 ? SL_API_EINVAL : SL_API_OK;
}

double sl_ffi_now_ms(void)
{
    if (current != NULL)
        return (double)sl_api_now_ms(current);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}

double sl_ffi_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000) / 1000.0;
}

int sl_ffi_route(const char **host, size_t *hlen, const char **path, size_t *plen)
{
    return current ? sl_api_route(current, host, hlen, path, plen) : SL_FFI_ENOREQ;
}

/* --- balancer ------------------------------------------------------------------ */

GETTER(sl_ffi_upstream_name, sl_api_upstream_name)
SETTER(sl_ffi_set_upstream, sl_api_set_upstream)
SETTER(sl_ffi_set_backend, sl_api_set_backend)

int sl_ffi_backend_count(void)
{
    size_t n = 0;
    if (current == NULL)
        return SL_FFI_ENOREQ;
    int rc = sl_api_backend_count(current, &n);
    return rc != SL_API_OK ? rc : (int)n;
}

int sl_ffi_backend_at(size_t i, const char **addr, size_t *alen, int *weight,
                      double *cooldown_ms)
{
    int64_t ms = 0;
    if (current == NULL)
        return SL_FFI_ENOREQ;
    int rc = sl_api_backend_at(current, i, addr, alen, weight, &ms);
    *cooldown_ms = (double)ms;
    return rc;
}

/* --- random ---------------------------------------------------------------------- */

int sl_ffi_random_bytes(char *buf, size_t n)
{
    return sl_random_bytes(buf, n);
}

int sl_ffi_random_hex(char *out, size_t n)
{
    return sl_random_hex(out, n);
}

int sl_ffi_random_uuid(char *out)
{
    return sl_random_uuid(out);
}

/* --- shared dictionaries ------------------------------------------------------- */

struct sl_shdict *sl_ffi_shdict_open(const char *name, size_t len)
{
    const struct sl_shdict_set *scope = sl_shdict_scope();
    if (scope == NULL && current != NULL && current->req.wg != NULL)
        scope = current->req.wg->gen->shdicts;
    return sl_shdict_open(scope, name, len);
}

void sl_ffi_shdict_close(struct sl_shdict *d)
{
    sl_shdict_unref(d);
}

static struct sl_shdict_value make_value(int type, double num, const char *s, size_t len)
{
    return (struct sl_shdict_value){ .type = type, .num = num, .str = s, .len = len };
}

int sl_ffi_shdict_get(struct sl_shdict *d, const char *key, size_t klen, int *type,
                      double *num, char *buf, size_t *len)
{
    struct sl_shdict_value v;
    int rc = sl_shdict_get(d, key, klen, &v, buf, *len);
    if (rc == SL_SHDICT_OK || rc == SL_SHDICT_TRUNCATED) {
        *type = v.type;
        *num = v.num;
        *len = v.len;
    }
    return rc;
}

int sl_ffi_shdict_set(struct sl_shdict *d, const char *key, size_t klen, int type, double num,
                      const char *s, size_t slen, int64_t ttl_ms)
{
    struct sl_shdict_value v = make_value(type, num, s, slen);
    return sl_shdict_set(d, key, klen, &v, ttl_ms);
}

int sl_ffi_shdict_add(struct sl_shdict *d, const char *key, size_t klen, int type, double num,
                      const char *s, size_t slen, int64_t ttl_ms)
{
    struct sl_shdict_value v = make_value(type, num, s, slen);
    return sl_shdict_add(d, key, klen, &v, ttl_ms);
}

int sl_ffi_shdict_incr(struct sl_shdict *d, const char *key, size_t klen, double by,
                       int has_init, double init, int64_t init_ttl_ms, double *result)
{
    return sl_shdict_incr(d, key, klen, by, has_init ? &init : NULL, init_ttl_ms, result);
}

int sl_ffi_shdict_cas(struct sl_shdict *d, const char *key, size_t klen, int otype,
                      double onum, const char *os, size_t olen, int ntype, double nnum,
                      const char *ns, size_t nlen, int64_t ttl_ms)
{
    struct sl_shdict_value expected = make_value(otype, onum, os, olen);
    struct sl_shdict_value desired = make_value(ntype, nnum, ns, nlen);
    return sl_shdict_cas(d, key, klen, &expected, &desired, ttl_ms);
}

int sl_ffi_shdict_delete(struct sl_shdict *d, const char *key, size_t klen)
{
    return sl_shdict_delete(d, key, klen);
}

int sl_ffi_shdict_ttl(struct sl_shdict *d, const char *key, size_t klen, double *ttl_ms)
{
    int64_t ms = 0;
    int rc = sl_shdict_ttl(d, key, klen, &ms);
    *ttl_ms = (double)ms;
    return rc;
}

int sl_ffi_shdict_flush_all(struct sl_shdict *d)
{
    sl_shdict_flush_all(d);
    return SL_SHDICT_OK;
}

int sl_ffi_shdict_space(struct sl_shdict *d, double *capacity, double *used)
{
    struct sl_shdict_stats st;
    sl_shdict_stats(d, &st);
    *capacity = (double)st.capacity;
    *used = (double)st.used;
    return SL_SHDICT_OK;
}
