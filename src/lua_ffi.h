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

struct sl_conn;

enum {
    SL_FFI_ENOREQ = -100,       /* no current request on this thread */
};

/* Makes c (may be NULL) this thread's current request and returns the
 * previous one, which the caller hands back to sl_ffi_leave. */
struct sl_conn *sl_ffi_enter(struct sl_conn *c);

/* Restores the current request saved by sl_ffi_enter. */
void sl_ffi_leave(struct sl_conn *prev);

/* This thread's current request, or NULL. */
struct sl_conn *sl_ffi_current(void);

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

/* Wall-clock milliseconds: the worker's cached loop time during a
 * request, the real time otherwise. A double, so Lua gets a number and
 * not a boxed 64-bit integer. */
double sl_ffi_now_ms(void);

#endif
