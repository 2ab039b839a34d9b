/* The request and response operations plugins use. Lua reaches them
 * through LuaJIT FFI (the modules in lua/sluice/), native plugins through the ABI's
 * function table; both kinds therefore behave the same. Every function
 * takes the request's connection (opaque outside the core).
 *
 * Strings handed out are borrowed: valid until the current hook returns.
 * Strings taken in are copied into the request's arena. Names must be
 * tokens and values may not contain CR, LF or NUL (no header injection):
 * such input returns SL_API_EINVAL and changes nothing.
 *
 * Return codes: SL_API_OK, SL_API_NOT_FOUND (absent, not an error),
 * SL_API_EINVAL (bad argument), SL_API_ENOMEM, SL_API_EPHASE (not
 * available in this phase, e.g. changing request headers after they were
 * sent). */
#ifndef SL_API_H
#define SL_API_H

#include <stddef.h>
#include <stdint.h>

struct sl_conn;

enum {
    SL_API_OK = 0,
    SL_API_NOT_FOUND = 1,
    SL_API_EINVAL = -1,
    SL_API_ENOMEM = -2,
    SL_API_EPHASE = -3,
};

/* Which header list an operation works on. */
enum sl_api_side {
    SL_API_REQUEST = 0,
    SL_API_RESPONSE = 1,
};

/* --- request line and metadata -------------------------------------------- */

/* Method name ("GET"). */
int sl_api_method(struct sl_conn *c, const char **p, size_t *n);

/* Path without the query ("/a/b"). */
int sl_api_path(struct sl_conn *c, const char **p, size_t *n);

/* Query string without '?' ("" when none). */
int sl_api_query(struct sl_conn *c, const char **p, size_t *n);

/* The client's IP address as text. */
int sl_api_client_addr(struct sl_conn *c, const char **p, size_t *n);

/* The request id (16 hex digits). */
int sl_api_request_id(struct sl_conn *c, const char **p, size_t *n);

/* Rewrites the method (a token), the path (must start with '/', no
 * whitespace or control bytes) or the query (no whitespace, control bytes
 * or '#'; "" removes it). Request-headers phase only. */
int sl_api_set_method(struct sl_conn *c, const char *p, size_t n);
int sl_api_set_path(struct sl_conn *c, const char *p, size_t n);
int sl_api_set_query(struct sl_conn *c, const char *p, size_t n);

/* --- headers (request or response) ----------------------------------------- */

/* The index-th (0-based) value of the header called name (case-insensitive). */
int sl_api_header_get(struct sl_conn *c, int side, const char *name, size_t nlen,
                      size_t index, const char **p, size_t *n);

/* Number of header fields. */
size_t sl_api_header_count(struct sl_conn *c, int side);

/* The i-th field in order. */
int sl_api_header_at(struct sl_conn *c, int side, size_t i, const char **name,
                     size_t *nlen, const char **value, size_t *vlen);

/* Replaces every field called name with one field (adds it when absent). */
int sl_api_header_set(struct sl_conn *c, int side, const char *name, size_t nlen,
                      const char *value, size_t vlen);

/* Appends a field. */
int sl_api_header_add(struct sl_conn *c, int side, const char *name, size_t nlen,
                      const char *value, size_t vlen);

/* Removes every field called name; SL_API_NOT_FOUND when there was none. */
int sl_api_header_remove(struct sl_conn *c, int side, const char *name, size_t nlen);

/* --- response ---------------------------------------------------------------- */

/* The response status (0 before a response exists). */
int sl_api_status(struct sl_conn *c);

/* Changes the status of the response (response-headers phase). 100..999. */
int sl_api_set_status(struct sl_conn *c, int status);

/* Sets a local reply: the request is answered by the proxy with status,
 * body and the response headers set so far through sl_api_header_* on
 * SL_API_RESPONSE. The calling plugin then returns SL_ACTION_RESPOND.
 * Request phases only. */
int sl_api_respond(struct sl_conn *c, int status, const char *body, size_t len);

/* --- bodies (phases that declared they need them) ------------------------- */

/* The whole buffered body of side. */
int sl_api_body_get(struct sl_conn *c, int side, const char **p, size_t *n);

/* Replaces the body of side (Content-Length is fixed up). */
int sl_api_body_set(struct sl_conn *c, int side, const char *p, size_t n);

/* --- shared per-request space ------------------------------------------------ */

/* Sets key to value for every plugin of this request (Lua and native);
 * value NULL removes it. */
int sl_api_ctx_set(struct sl_conn *c, const char *key, size_t klen, const char *value,
                   size_t vlen);

/* Reads a key of the shared per-request space. */
int sl_api_ctx_get(struct sl_conn *c, const char *key, size_t klen, const char **p,
                   size_t *n);

/* --- misc ---------------------------------------------------------------------- */

/* Logs a line "plugin NAME: message" with the request id at level
 * (0 error .. 3 debug). */
int sl_api_log(struct sl_conn *c, int level, const char *plugin, const char *msg, size_t len);

/* Wall-clock time in milliseconds (cached per loop iteration). */
int64_t sl_api_now_ms(struct sl_conn *c);

#endif
