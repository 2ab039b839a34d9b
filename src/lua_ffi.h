/* The C functions the Lua API (the modules in lua/sluice/) calls through LuaJIT FFI.
 *
 * Plugin code never holds a request: the host makes a request current on
 * the calling thread for the length of one hook (sl_ffi_enter/leave) and
 * every sl_ffi_* function acts on that one, through the same sl_api_*
 * operations native plugins use. Without a current request (at load, in
 * init) they return SL_FFI_ENOREQ and change nothing; logging and the
 * clock still work.
 *
 * The declarations below must match the ffi.cdef block of
 * lua/sluice/base.lua. The sluice binary exports them (link with
 * -Wl,--export-dynamic-symbol=sl_ffi_*) so that ffi.C finds them; a build
 * of the core as a shared library exports them anyway. Return codes are
 * api.h's SL_API_* plus SL_FFI_ENOREQ. Strings handed out are borrowed
 * (valid until the hook returns: the Lua side copies them at once);
 * strings taken in are copied by the sl_api_* call. */
#ifndef SL_LUA_FFI_H
#define SL_LUA_FFI_H

#include <stddef.h>
#include <stdint.h>

struct sl_conn;

enum {
    SL_FFI_ENOREQ = -100,       /* no current request on this thread */
};

/* This thread's current request, or NULL: use the functions below. */
extern __thread struct sl_conn *sl_ffi_current_conn;

/* Makes c (may be NULL) this thread's current request and returns the
 * previous one, which the caller hands back to sl_ffi_leave. */
static inline struct sl_conn *sl_ffi_enter(struct sl_conn *c)
{
    struct sl_conn *prev = sl_ffi_current_conn;
    sl_ffi_current_conn = c;
    return prev;
}

/* Restores the current request saved by sl_ffi_enter. */
static inline void sl_ffi_leave(struct sl_conn *prev)
{
    sl_ffi_current_conn = prev;
}

/* This thread's current request, or NULL. */
static inline struct sl_conn *sl_ffi_current(void)
{
    return sl_ffi_current_conn;
}

/* Request line and metadata of the current request (sl_api_method, ...). */
int sl_ffi_method(const char **p, size_t *n);
int sl_ffi_path(const char **p, size_t *n);
int sl_ffi_query(const char **p, size_t *n);
int sl_ffi_client_addr(const char **p, size_t *n);
int sl_ffi_request_id(const char **p, size_t *n);
int sl_ffi_set_method(const char *p, size_t n);
int sl_ffi_set_path(const char *p, size_t n);
int sl_ffi_set_query(const char *p, size_t n);

/* Headers of side (SL_API_REQUEST or SL_API_RESPONSE), as sl_api_header_*.
 * sl_ffi_header_count returns the count, or SL_FFI_ENOREQ; side values
 * other than the two sides are SL_API_EINVAL. */
int sl_ffi_header_get(int side, const char *name, size_t nlen, size_t index,
                      const char **p, size_t *n);
int sl_ffi_header_count(int side);
int sl_ffi_header_at(int side, size_t i, const char **name, size_t *nlen,
                     const char **value, size_t *vlen);
int sl_ffi_header_set(int side, const char *name, size_t nlen, const char *value,
                      size_t vlen);
int sl_ffi_header_add(int side, const char *name, size_t nlen, const char *value,
                      size_t vlen);
int sl_ffi_header_remove(int side, const char *name, size_t nlen);

/* set and add for a name one of them accepted before (sl_api_header_*_known):
 * the Lua API remembers the names the core accepted and skips their token
 * check; plugins never reach these with a name of their own making. */
int sl_ffi_header_set_known(int side, const char *name, size_t nlen, const char *value,
                            size_t vlen);
int sl_ffi_header_add_known(int side, const char *name, size_t nlen, const char *value,
                            size_t vlen);

/* The response status (sl_api_status), or SL_FFI_ENOREQ. */
int sl_ffi_status(void);
int sl_ffi_set_status(int status);

/* A local reply (sl_api_respond). */
int sl_ffi_respond(int status, const char *body, size_t len);

/* Whole bodies (sl_api_body_get/set). */
int sl_ffi_body_get(int side, const char **p, size_t *n);
int sl_ffi_body_set(int side, const char *p, size_t n);

/* The shared per-request space (sl_api_ctx_*); value NULL removes key. */
int sl_ffi_ctx_get(const char *key, size_t klen, const char **p, size_t *n);
int sl_ffi_ctx_set(const char *key, size_t klen, const char *value, size_t vlen);

/* Logs "plugin NAME: message" at level (0 error .. 3 debug), with the
 * request id when there is a current request. */
int sl_ffi_log(int level, const char *plugin, const char *msg, size_t len);

/* 1 when lines at level are written, else 0. */
int sl_ffi_log_enabled(int level);

/* Sets (value NULL: removes) a field of the current request's access-log
 * record (sl_api_log_set_field). */
int sl_ffi_log_set_field(const char *key, size_t klen, const char *value, size_t vlen);

/* Defines the calling plugin's own metric (sl_metrics_define: type 0
 * counter, 1 histogram; buckets NULL or nbuckets bounds). Only outside a
 * request (the plugin's load and init): SL_API_EPHASE during one. Returns
 * the handle (>= 0), or SL_API_EINVAL with the message in err. */
int sl_ffi_metric_define(const char *plugin, int type, const char *name, const char *help,
                         const double *buckets, int nbuckets, char *err, size_t errlen);

/* Adds n to a counter / records v in a histogram, on the current
 * request's worker (sl_metrics_add, sl_metrics_observe). SL_FFI_ENOREQ
 * outside a request, SL_API_EINVAL for a bad handle or value. */
int sl_ffi_metric_add(int handle, double n);
int sl_ffi_metric_observe(int handle, double v);

/* Wall-clock milliseconds: the worker's cached loop time during a
 * request, the real time otherwise. A double, so Lua gets a number and
 * not a boxed 64-bit integer. */
double sl_ffi_now_ms(void);

/* Monotonic milliseconds (with a fraction: microsecond resolution), the
 * same clock in every thread; for measuring intervals and rate limits. */
double sl_ffi_monotonic_ms(void);

/* The route of the current request (sl_api_route): SL_API_OK with host
 * (NULL for any host) and path, SL_API_NOT_FOUND without one, or
 * SL_FFI_ENOREQ. */
int sl_ffi_route(const char **host, size_t *hlen, const char **path, size_t *plen);

/* The balancer operations on the current request (api.h; the balancer
 * phase only, SL_API_EPHASE elsewhere), for lua/sluice/balancer.lua:
 * sl_api_upstream_name, sl_api_set_upstream, sl_api_set_backend.
 * sl_ffi_backend_count returns the count (>= 0) or a negative code.
 * sl_ffi_backend_at is sl_api_backend_at with the cool-down as a double
 * (Lua gets a number, not a boxed 64-bit integer). */
int sl_ffi_upstream_name(const char **p, size_t *n);
int sl_ffi_set_upstream(const char *p, size_t n);
int sl_ffi_backend_count(void);
int sl_ffi_backend_at(size_t i, const char **addr, size_t *alen, int *weight,
                      double *cooldown_ms);
int sl_ffi_set_backend(const char *p, size_t n);

/* Random bytes (random.h): n bytes into buf, n bytes as 2n hex digits into
 * out, a version 4 UUID as 36 characters into out. 0, or -1 when the
 * kernel's generator fails. Work without a request. */
int sl_ffi_random_bytes(char *buf, size_t n);
int sl_ffi_random_hex(char *out, size_t n);
int sl_ffi_random_uuid(char *out);

/* Shared dictionaries (shdict.h), for lua/sluice/shared.lua. They work
 * without a request (at load and in init) too.
 *
 * sl_ffi_shdict_open finds the dictionary called name among those of the
 * calling plugin's generation (the thread's scope while a generation
 * loads or the harness runs a plugin, else the current request's
 * generation, else any a live generation declares) and returns a new
 * reference, or NULL when there is none: the handle keeps the dictionary
 * alive until sl_ffi_shdict_close (a finalizer). The operations below
 * return the SL_SHDICT_* codes; values travel as a type (enum
 * sl_shdict_type), a number (bools as 0/1) and a string. TTLs are in
 * milliseconds, 0 meaning none. */
struct sl_shdict;
struct sl_shdict *sl_ffi_shdict_open(const char *name, size_t len);
void sl_ffi_shdict_close(struct sl_shdict *d);

/* Reads key: *type, *num and, for a string, its bytes copied into buf
 * (*len bytes of room going in, the string's length coming out). When the
 * string is longer than the room, SL_SHDICT_TRUNCATED: call again with
 * *len bytes. */
int sl_ffi_shdict_get(struct sl_shdict *d, const char *key, size_t klen, int *type,
                      double *num, char *buf, size_t *len);

/* sl_shdict_set and sl_shdict_add of the value (type, num, s/slen). */
int sl_ffi_shdict_set(struct sl_shdict *d, const char *key, size_t klen, int type, double num,
                      const char *s, size_t slen, int64_t ttl_ms);
int sl_ffi_shdict_add(struct sl_shdict *d, const char *key, size_t klen, int type, double num,
                      const char *s, size_t slen, int64_t ttl_ms);

/* sl_shdict_incr; has_init 0 means no init value. */
int sl_ffi_shdict_incr(struct sl_shdict *d, const char *key, size_t klen, double by,
                       int has_init, double init, int64_t init_ttl_ms, double *result);

/* sl_shdict_cas of the expected value (otype, onum, os/olen) and the
 * desired one (ntype, nnum, ns/nlen). */
int sl_ffi_shdict_cas(struct sl_shdict *d, const char *key, size_t klen, int otype,
                      double onum, const char *os, size_t olen, int ntype, double nnum,
                      const char *ns, size_t nlen, int64_t ttl_ms);

/* sl_shdict_delete, sl_shdict_ttl (as a double), sl_shdict_flush_all. */
int sl_ffi_shdict_delete(struct sl_shdict *d, const char *key, size_t klen);
int sl_ffi_shdict_ttl(struct sl_shdict *d, const char *key, size_t klen, double *ttl_ms);
int sl_ffi_shdict_flush_all(struct sl_shdict *d);

/* The dictionary's budget and the bytes its entries use (sl_shdict_stats). */
int sl_ffi_shdict_space(struct sl_shdict *d, double *capacity, double *used);

#endif
