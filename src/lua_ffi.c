#include "lua_ffi.h"

#include <stdbool.h>
#include <time.h>

#include "api.h"
#include "log.h"

/* One hook runs at a time on a thread, and workers are threads: a
 * thread-local pointer is all the "which request" state the API needs,
 * and plugin code never sees it. */
static __thread struct sl_conn *current;

struct sl_conn *sl_ffi_enter(struct sl_conn *c)
{
    struct sl_conn *prev = current;
    current = c;
    return prev;
}

void sl_ffi_leave(struct sl_conn *prev)
{
    current = prev;
}

struct sl_conn *sl_ffi_current(void)
{
    return current;
}

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

double sl_ffi_now_ms(void)
{
    if (current != NULL)
        return (double)sl_api_now_ms(current);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)(ts.tv_nsec / 1000000);
}
