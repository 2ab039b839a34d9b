/* The plugin test harness: what busted specs call, through LuaJIT FFI, to
 * run a plugin's hooks against a request without starting the proxy
 * (spec/plugin_harness.lua wraps it; docs/PLUGINS.md shows how).
 *
 * Nothing here is a second implementation. A plugin is loaded the way a
 * generation loads it (sl_config_load, sl_gen_new: the YAML, the plugin
 * lookup, lua_plugin.c and its own VM running lua/sluice/plugin_host.lua);
 * a hook is run through the plugin kind's call, as the chain runs it; a
 * request is parsed by the real reader and set up by sl_request_prepare;
 * the heads come from proxy_head.c. What is fake is the surroundings: a
 * worker without an event loop or listeners, a connection without a
 * socket, an origin that is a parsed response head.
 *
 * Built only into build/libsluice.so, never into the sluice binary. One
 * thread: the requests and plugins of the harness belong to the thread
 * that made them, which plays worker 0. */
#ifndef SL_TESTING_H
#define SL_TESTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_conn;
struct sl_test_plugin;

/* Sets the harness up, once per process before anything else: lua_dir is
 * the directory holding sluice/plugin_host.lua (the lua/ directory of the
 * source tree; NULL keeps $SLUICE_LUA_PATH or the search lua_vm.h
 * describes), and Lua plugins get one VM slot (one worker). Calling it
 * again is harmless. Returns 0, or -1 with a message in err. */
int sl_test_init(const char *lua_dir, char *err, size_t errlen);

/* Loads the configuration file config_file and builds a generation from
 * it, which loads its plugins exactly as the proxy does, then picks the
 * global plugin instance called name. Returns the plugin (free with
 * sl_test_plugin_free), or NULL with every problem in err, one per line:
 * configuration errors and plugin load errors as the proxy reports them
 * ("FILE:LINE:COL: plugin NAME: config.a: message", "FILE:LINE: ..."). */
struct sl_test_plugin *sl_test_plugin_load(const char *config_file, const char *name,
                                           char *err, size_t errlen);

/* Drops the plugin. Requests it ran on keep its generation alive until
 * they are freed. NULL is accepted. */
void sl_test_plugin_free(struct sl_test_plugin *tp);

/* The phases the plugin implements: bit (1 << phase) per enum sl_phase. */
unsigned sl_test_plugin_phases(const struct sl_test_plugin *tp);

/* Sentinel result of sl_test_plugin_call: the call was refused before
 * any plugin code ran (err says why). */
#define SL_TEST_MISUSE (-100)

/* Runs phase (enum sl_phase) of the plugin for the request c, as the
 * chain would (a phase the plugin does not implement just continues), and
 * returns the plugin's own action: SL_ACTION_CONTINUE, SL_ACTION_RESPOND
 * (a local reply is set: sl_test_reply), or SL_ACTION_ERROR with the
 * message (and traceback) in err and *budget set to 1 when a CPU or
 * memory budget killed the hook. The chain's on_error policy is not
 * applied. The order the proxy follows is enforced: request_headers only
 * before request_body ran, before the request head went upstream and while
 * no local reply is set; request_body likewise, once the whole body was
 * parsed (the first call buffers it, and refuses a body over
 * limits.max_body_buffer as the proxy answers 413); balancer before the
 * request head went upstream and while no local reply is set, with the
 * balancer operations of api.h open during the call (sl_test_balancer
 * shows their effect); response_headers only
 * once there is a response, from the origin (sl_test_response_begin) or
 * local (the first such call then enters the local reply's response phase,
 * as sl_conn_reply does), before response_body ran and before its head was
 * built; response_body likewise (its first call buffers the origin's body,
 * sl_test_origin_body, empty for HEAD, 204 and 304, or the local reply's).
 * The body phases are open to the hook during the call only, as in the
 * proxy. Refusals return SL_TEST_MISUSE with a message in err.
 * The request remembers the plugin so that freeing the request ends it
 * for the plugin too (its ctx table is dropped). */
int sl_test_plugin_call(struct sl_test_plugin *tp, int phase, struct sl_conn *c, char *err,
                        size_t errlen, int *budget);

/* Parses raw (one request head, optionally followed by body bytes; the
 * bytes are copied) from the client address peer (NULL: "127.0.0.1") on a
 * generation of default settings (sl_config_quick: one upstream "default"
 * with the backend 127.0.0.1:9001, one catch-all route), and sets it up
 * as the proxy does before its plugins run (sl_request_prepare). Refuses,
 * with the status and reason in err: bytes that are not a complete
 * request head, a head the reader rejects (400, 414, 431), and a request
 * the proxy would answer itself before any plugin (405, 413, 417...).
 * Returns the request (free with sl_test_request_free) or NULL. */
struct sl_conn *sl_test_request_new(const char *raw, size_t len, const char *peer,
                                    char *err, size_t errlen);

/* The same on a generation of its own, built from config_file (its
 * upstreams, routes and limits; plugins it declares are loaded but run
 * only through sl_test_plugin_call), for balancer hooks that need several
 * upstreams or backends; NULL: the default generation. Configuration
 * errors come back in err. The generation lives as long as the request. */
struct sl_conn *sl_test_request_new_on(const char *config_file, const char *raw, size_t len,
                                       const char *peer, char *err, size_t errlen);

/* Ends the request: every plugin it ran on is told (request_done), then
 * everything is freed. NULL is accepted. */
void sl_test_request_free(struct sl_conn *c);

/* Where the request goes after its balancer hooks: the upstream's name in
 * *upstream and, when a plugin pinned one (sl_api_set_backend), the
 * backend's configured address in *backend, else NULL there. Both
 * borrowed from the request's generation. Returns 0. */
int sl_test_balancer(struct sl_conn *c, const char **upstream, const char **backend);

/* The request head as the origin would receive it
 * (sl_proxy_build_request_head), built at the first call: the request
 * side is then closed to plugins, as it is once the proxy sent it.
 * Returns the head (borrowed: valid until the request is freed) with its
 * length in *len, or NULL when the request was answered locally or on
 * OOM. */
const char *sl_test_upstream_head(struct sl_conn *c, size_t *len);

/* Simulates the origin's response head: status 200..999 and raw_headers
 * (field lines, each ending in CRLF, without the empty line; len bytes)
 * are parsed by the real response reader; the request head is sent first
 * if it was not (sl_test_upstream_head). Response phases then see it as
 * they would in the proxy. Returns 0, or -1 with a message in err (a
 * local reply is set, a response began already, the reader refused the
 * head). */
int sl_test_response_begin(struct sl_conn *c, int status, const char *raw_headers,
                           size_t len, char *err, size_t errlen);

/* The response head the client would receive for the origin's response
 * (sl_proxy_build_response_head: status line, fields, Via, framing,
 * Connection), built at the first call: the response side is then closed
 * to plugins. Returns the head (borrowed: valid until the request is
 * freed) with its length in *len, or NULL when there is no origin
 * response or on OOM. */
const char *sl_test_response_head(struct sl_conn *c, size_t *len);

/* Sets the body of the origin's response (n bytes, copied), after
 * sl_test_response_begin and before response_body ran or the head was
 * built. Returns 0, or -1 with a message in err. */
int sl_test_origin_body(struct sl_conn *c, const char *p, size_t n, char *err, size_t errlen);

/* The body as it leaves the proxy on side (0: the request to the origin,
 * 1: the response to the client): the one the body phase left when it ran,
 * else the client's (de-chunked) or the origin's. Borrowed: valid until the
 * next call on c. *len receives its length. */
const char *sl_test_body(struct sl_conn *c, int side, size_t *len);

/* The local reply: returns its status (that of the response phase once
 * it ran, which a plugin may change) and sets *body and *len to its body
 * (borrowed; as the response_body phase left it, once that ran on the
 * reply); 0 when no plugin set one. Its fields are the response
 * fields (sl_api_header_* on SL_API_RESPONSE); the proxy's own fields
 * (Server, Date, Content-Length, ...) are not rendered here. */
int sl_test_reply(struct sl_conn *c, const char **body, size_t *len);

/* --- shared dictionaries (src/shdict.h) -------------------------------------------- */

struct sl_shdict;

/* Starts nthreads threads (1..64) together; each adds 1 to the number
 * under key iters times: with sl_shdict_incr (init 0) when use_cas is 0,
 * else with a sl_shdict_get + sl_shdict_cas loop retried on
 * SL_SHDICT_CHANGED. Returns the number under key once all have ended
 * (exactly nthreads * iters plus what was there when the dictionary is
 * atomic), or -1 when a thread could not start or an operation failed. */
double sl_test_shdict_count_threads(struct sl_shdict *d, const char *key, int nthreads,
                                    int iters, int use_cas);

/* Starts nthreads threads (1..64) together; each runs iters random
 * operations (get, set, add, incr, cas, delete, ttl, update) on keys
 * "k0".."k<nkeys-1>" with strings up to maxlen bytes and TTLs of 0 to 3
 * ms, so that eviction and expiry race with everything else. Then checks
 * the dictionary (sl_shdict_check). Returns 0, or -1 with a message in
 * err. */
int sl_test_shdict_stress(struct sl_shdict *d, int nthreads, int iters, int nkeys,
                          size_t maxlen, char *err, size_t errlen);

/* Runs sl_clock_init as sluice does at start and returns whether the
 * plugin hook clock now reads the CPU's time-stamp counter. */
bool sl_test_clock_init(void);

/* One reading of the plugin hook clock (sl_clock_ns), in nanoseconds. */
int64_t sl_test_clock_ns(void);

#endif
