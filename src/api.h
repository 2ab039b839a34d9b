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

/* sl_api_header_set and _add for a name known to be a valid field name
 * (the caller saw it accepted before): its token check is skipped, the
 * value is checked as always. For trusted callers (the Lua API), never
 * for a name straight from a plugin. */
int sl_api_header_set_known(struct sl_conn *c, int side, const char *name, size_t nlen,
                            const char *value, size_t vlen);
int sl_api_header_add_known(struct sl_conn *c, int side, const char *name, size_t nlen,
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

/* The whole buffered body of side (borrowed: valid until it is replaced or
 * the hook returns; "" with *n 0 when empty). Only for a request whose
 * chain needs that body (a plugin declared it), from that side's body phase
 * on: request_body and every later phase for the request body,
 * response_body and log for the response body. Otherwise (an earlier
 * phase, a body never buffered because the request was answered first)
 * SL_API_EPHASE. */
int sl_api_body_get(struct sl_conn *c, int side, const char **p, size_t *n);

/* Replaces the body of side with n bytes (copied), during that side's body
 * phase only (SL_API_EPHASE otherwise). The proxy then sends it with a
 * Content-Length of its own (Transfer-Encoding dropped); a response that
 * has no body (HEAD, 204, 304) stays without one. Not bounded by
 * limits.max_body_buffer. SL_API_ENOMEM leaves the body as it was. */
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

/* Most fields a request's access-log record takes from plugins, and the
 * longest key and value. */
#define SL_API_LOG_FIELDS_MAX 32
#define SL_API_LOG_KEY_MAX 64
#define SL_API_LOG_VALUE_MAX 4096

/* Sets the field key to value (copied) in this request's access-log record
 * (docs/CONFIG.md: "fields" in JSON, key="value" in text); value NULL
 * removes it (SL_API_NOT_FOUND when absent). Any phase, log included.
 * Setting a key again replaces its value in place; fields keep the order
 * they were first set in. key is 1..SL_API_LOG_KEY_MAX letters, digits,
 * '_', '-' or '.'; value at most SL_API_LOG_VALUE_MAX bytes of anything
 * (escaped when written). A bad key or value, or a field past
 * SL_API_LOG_FIELDS_MAX, is SL_API_EINVAL. */
int sl_api_log_set_field(struct sl_conn *c, const char *key, size_t klen, const char *value,
                         size_t vlen);

/* Wall-clock time in milliseconds (cached per loop iteration). */
int64_t sl_api_now_ms(struct sl_conn *c);

/* The route the request matched, as configured: its path prefix in path
 * and plen, and its host ("example.com", "*.example.com") in host and
 * hlen, or host NULL (hlen 0) when the route takes any host. Borrowed from the
 * request's generation (valid until the request ends). SL_API_NOT_FOUND
 * when no route matched (the request is answered 404). Host and path
 * together name a route uniquely (the configuration refuses duplicates). */
int sl_api_route(struct sl_conn *c, const char **host, size_t *hlen, const char **path,
                 size_t *plen);

/* --- balancer (the balancer phase only; SL_API_EPHASE in any other) ------ */

/* The balancer phase runs once per request, after the request phases
 * (after request_body when the body is buffered) and before the first
 * connection attempt. A plugin may move the request to another configured
 * upstream and pick one of that upstream's configured backends; it can
 * never name an arbitrary address, so a plugin (or a client header it
 * reads) cannot make the proxy connect anywhere the configuration does not
 * list. Connections to a chosen backend come from the same pool and count
 * in the same metrics as the balancer's own picks. */

/* The name of the upstream the request goes to: the route's, or the one
 * set by sl_api_set_upstream. Borrowed from the request's generation
 * (valid until the request ends). */
int sl_api_upstream_name(struct sl_conn *c, const char **p, size_t *n);

/* Sends the request to the configured upstream called name (len bytes,
 * compared exactly). SL_API_NOT_FOUND when the configuration has no such
 * upstream: nothing changes, and the plugin may answer itself (5xx). When
 * the upstream changes, a backend chosen before with sl_api_set_backend
 * is dropped (it was one of the previous upstream's). The proxy then balances over the new
 * upstream's backends as usual, retries on connect failures included, with
 * its timeouts. */
int sl_api_set_upstream(struct sl_conn *c, const char *name, size_t len);

/* The number of backends of the current upstream in *n. */
int sl_api_backend_count(struct sl_conn *c, size_t *n);

/* The i-th (0-based, configuration order) backend of the current
 * upstream: its address as configured ("127.0.0.1:9001"; borrowed from the
 * generation), its weight, and in *cooldown_ms how long it stays in its
 * cool-down after a failed connect (0: healthy; the round robin skips a
 * backend while it cools down). Any output pointer may be NULL.
 * SL_API_NOT_FOUND past the end. */
int sl_api_backend_at(struct sl_conn *c, size_t i, const char **addr, size_t *alen,
                      int *weight, int64_t *cooldown_ms);

/* Sends the request to the backend of the current upstream whose
 * configured address is addr (len bytes, "host:port" exactly as
 * sl_api_backend_at gives it; letters compared without case).
 * SL_API_NOT_FOUND when the upstream has no such backend: nothing changes
 * (no address outside the configuration is ever connected to). The
 * chosen backend is the only one tried: when connecting to it fails the
 * client gets 502 (504 on a connect timeout) and the backend starts its
 * cool-down, which sl_api_backend_at reports to the next requests' plugins;
 * it is not retried on another backend. A stale pooled connection is
 * still retried once on a fresh connection to the same backend. Calling it
 * again replaces the choice. */
int sl_api_set_backend(struct sl_conn *c, const char *addr, size_t len);

#endif
