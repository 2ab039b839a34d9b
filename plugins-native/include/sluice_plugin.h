/* sluice_plugin.h: the native plugin ABI of sluice. The only header a C
 * plugin includes; it needs nothing but <stddef.h> and <stdint.h>, and no
 * type of sluice's own (nor libevent's, llhttp's or libyaml's) crosses it.
 *
 * A plugin is a shared object exporting exactly one function,
 * sluice_plugin_init. sluice hands it the host's function table (struct
 * sluice_host) and receives the plugin's descriptor (struct sluice_plugin):
 * name, version, default priority, the hooks of the phases it implements
 * and its lifecycle functions. The plugin links against no symbol of
 * sluice (build it with -Wl,-z,defs); everything it does to a request goes
 * through the table.
 *
 * Memory. What the host hands out (request strings, header values, config
 * strings) is borrowed: {pointer, length}, not NUL-terminated, valid until
 * the hook that got it returns (config strings: until config_destroy
 * returns). What a plugin hands in (header names and values, bodies, ctx
 * values) is copied by the host into the request's memory, so the plugin's
 * buffer may be reused at once. sluice_host.alloc gives request-scoped
 * memory that needs no free.
 *
 * Threads. config_create and config_destroy run on the thread that loads
 * or retires a configuration; worker_init, the hooks and request_free of a
 * worker run on that worker's thread, one call at a time. A plugin's
 * instance state is shared by every worker: treat it as read-only in hooks,
 * and keep what changes in the worker state (worker_init) or in the
 * per-request state.
 *
 * Compatibility promise.
 *   - The ABI has a major and a minor version (SLUICE_ABI_MAJOR/MINOR). A
 *     minor release only adds: new functions at the end of struct
 *     sluice_host, new fields at the end of struct sluice_plugin, new enum
 *     values. Nothing is removed, reordered or changes meaning.
 *   - A plugin built against an older minor loads on a newer host with the
 *     same major: the host reads only the descriptor fields the plugin's
 *     `size` covers and treats the rest as zero (absent).
 *   - A plugin built against a newer minor loads on an older host with the
 *     same major: before calling a host function newer than the host's
 *     minor, it checks SLUICE_HOST_HAS(host, member), which compares the
 *     table's `size` with the member's offset.
 *   - A different major is refused at load with a message naming the
 *     plugin and both versions; rebuild the plugin against the host's
 *     header.
 *   - The first three members of both structs (size, abi_major, abi_minor)
 *     and the signature of sluice_plugin_init never change, in any major.
 */
#ifndef SLUICE_PLUGIN_H
#define SLUICE_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_ABI_MAJOR 1
#define SLUICE_ABI_MINOR 3

/* A borrowed string: len bytes at p, not NUL-terminated. */
struct sluice_str {
    const char *p;
    size_t len;
};

/* The request a hook runs for. Opaque; valid only during the hook call
 * that received it (never keep it). */
struct sluice_req;

/* A node of the plugin instance's `config` tree from sluice.yaml. Opaque;
 * read it with the conf_* functions. Valid until config_destroy returns. */
struct sluice_conf;

/* Where config_create and worker_init report problems (conf_error).
 * Opaque; valid during that call only. */
struct sluice_errors;

/* A shared dictionary (`shared_dicts` in sluice.yaml): a named key/value
 * store shared by every worker and by Lua plugins (sluice.shared), bounded
 * in bytes (least recently used entries are evicted), entries with an
 * optional time to live. Opaque; from dict_open until dict_close. */
struct sluice_dict;

/* The type of a shared dictionary value. */
enum sluice_dict_type {
    SLUICE_DICT_NIL = 0,            /* no value; storing it deletes the key */
    SLUICE_DICT_BOOL = 1,           /* num is 0 or 1 */
    SLUICE_DICT_NUMBER = 2,         /* num */
    SLUICE_DICT_STRING = 3,         /* str */
};

/* A shared dictionary value going in (str borrowed from the caller) or
 * coming out (str pointing into the caller's buffer). */
struct sluice_dict_value {
    int type;                       /* enum sluice_dict_type */
    double num;
    struct sluice_str str;
};

/* What a dict_update callback decides (ABI 1.2). */
enum sluice_dict_verdict {
    SLUICE_DICT_KEEP = 0,           /* leave the entry as it is */
    SLUICE_DICT_STORE = 1,          /* store *next with a time to live of *ttl_ms */
    SLUICE_DICT_REMOVE = 2,         /* delete the key */
};

/* A dict_update callback (ABI 1.2): runs under the dictionary's lock with
 * the live value of the key in *cur (type SLUICE_DICT_NIL when absent; a
 * string borrowed until the callback returns). *next starts as a copy of
 * *cur and *ttl_ms as the key's remaining time to live in milliseconds
 * (0: none). A string stored in *next is copied after the callback
 * returns, before dict_update does: keep it in memory that lives that long
 * (arg's, not the callback's stack). It must be short, must not block and
 * must not call any host function (a dictionary function would deadlock).
 * Returns an enum sluice_dict_verdict. */
typedef int (*sluice_dict_update_fn)(void *arg, const struct sluice_dict_value *cur,
                                     struct sluice_dict_value *next, int64_t *ttl_ms);

/* Results of host functions. SLUICE_NOT_FOUND is not an error (an absent
 * header, an absent ctx key). */
enum sluice_result {
    SLUICE_OK = 0,
    SLUICE_NOT_FOUND = 1,
    SLUICE_EINVAL = -1,             /* a bad argument: not a token, CR/LF in a value, ... */
    SLUICE_ENOMEM = -2,
    SLUICE_EPHASE = -3,             /* not in this phase (request headers once sent upstream, ...) */
    SLUICE_EXISTS = 2,              /* dict_add: the key has a live value */
    SLUICE_TRUNCATED = 4,           /* dict_get: the string is longer than the buffer */
    SLUICE_ENOTNUM = -4,            /* dict_incr: the value is not a number */
};

/* What a hook returns. */
enum sluice_action {
    SLUICE_CONTINUE = 0,            /* go on with the next plugin */
    SLUICE_RESPOND = 1,             /* a local reply was set with respond(): skip the rest of the phase */
    SLUICE_ERROR = -1,              /* the hook failed (message: error()); the entry's on_error decides */
};

/* The phases, in the order a request meets them. */
enum sluice_phase {
    SLUICE_PHASE_REQUEST_HEADERS = 0,
    SLUICE_PHASE_REQUEST_BODY = 1,
    SLUICE_PHASE_BALANCER = 2,
    SLUICE_PHASE_RESPONSE_HEADERS = 3,
    SLUICE_PHASE_RESPONSE_BODY = 4,
    SLUICE_PHASE_LOG = 5,
};

/* Which message a header or body function works on. */
enum sluice_side {
    SLUICE_REQUEST = 0,             /* the request as it goes upstream */
    SLUICE_RESPONSE = 1,            /* the response as it goes to the client (or a local reply's) */
};

/* Levels for log(). */
enum sluice_log_level {
    SLUICE_LOG_ERROR = 0,
    SLUICE_LOG_WARN = 1,
    SLUICE_LOG_INFO = 2,
    SLUICE_LOG_DEBUG = 3,
};

/* The type of a config node (YAML 1.2 core schema: `8080` is an integer,
 * `"8080"` a string, `null` and `~` null). */
enum sluice_conf_type {
    SLUICE_CONF_ABSENT = -1,        /* conf_type(NULL): no such node */
    SLUICE_CONF_NULL = 0,
    SLUICE_CONF_BOOL = 1,
    SLUICE_CONF_INT = 2,
    SLUICE_CONF_NUMBER = 3,
    SLUICE_CONF_STRING = 4,
    SLUICE_CONF_LIST = 5,
    SLUICE_CONF_MAP = 6,
};

/* Bits of sluice_plugin.body: the plugin needs a whole body buffered. */
enum sluice_body {
    SLUICE_BODY_REQUEST = 1,
    SLUICE_BODY_RESPONSE = 2,
};

/* A phase hook. req: the request (valid during this call only);
 * instance: what config_create made; worker: what worker_init made for
 * the calling worker (NULL without worker_init); state: the plugin's slot
 * for this request, NULL at the request's first hook, kept between the
 * hooks of the request; store anything in it (request_free gets it at the
 * request's end). Returns an enum sluice_action. */
typedef int (*sluice_hook_fn)(struct sluice_req *req, void *instance, void *worker,
                              void **state);

/* The host's function table. The host owns it; it is valid for the life of
 * the process. Every function taking a struct sluice_req works during a
 * hook only. Functions returning int return an enum sluice_result unless
 * said otherwise. */
struct sluice_host {
    size_t size;                    /* sizeof the host's table: see SLUICE_HOST_HAS */
    uint32_t abi_major;             /* the host's SLUICE_ABI_MAJOR */
    uint32_t abi_minor;             /* the host's SLUICE_ABI_MINOR */

    /* --- the request line and metadata --------------------------------- */

    /* The method ("GET"), as a plugin may have rewritten it. */
    int (*method)(struct sluice_req *req, struct sluice_str *out);
    /* The path without the query ("/a/b"). */
    int (*path)(struct sluice_req *req, struct sluice_str *out);
    /* The query without '?' (empty when none). */
    int (*query)(struct sluice_req *req, struct sluice_str *out);
    /* The client's IP address as text. */
    int (*client_addr)(struct sluice_req *req, struct sluice_str *out);
    /* The request id of sluice's logs (16 hex digits). */
    int (*request_id)(struct sluice_req *req, struct sluice_str *out);
    /* Rewrite the method (a token), the path (starts with '/', no query,
     * whitespace or control bytes) or the query (no whitespace, control
     * bytes or '#'; empty removes it). Until the request goes upstream;
     * SLUICE_EPHASE after. */
    int (*set_method)(struct sluice_req *req, const char *p, size_t n);
    int (*set_path)(struct sluice_req *req, const char *p, size_t n);
    int (*set_query)(struct sluice_req *req, const char *p, size_t n);

    /* --- headers of either side (enum sluice_side) ------------------------ */

    /* The index-th (0-based) value of the field called name (any case);
     * SLUICE_NOT_FOUND when there is none. */
    int (*header_get)(struct sluice_req *req, int side, const char *name, size_t nlen,
                      size_t index, struct sluice_str *value);
    /* The number of fields. */
    size_t (*header_count)(struct sluice_req *req, int side);
    /* The i-th field, in order; SLUICE_NOT_FOUND past the end. */
    int (*header_at)(struct sluice_req *req, int side, size_t i, struct sluice_str *name,
                     struct sluice_str *value);
    /* Replaces every field called name by one (adds it when absent). The
     * name must be a token and the value free of CR, LF and NUL, otherwise
     * SLUICE_EINVAL and nothing changes. Request fields change until the
     * request goes upstream, response fields until the response head is
     * sent (SLUICE_EPHASE after). */
    int (*header_set)(struct sluice_req *req, int side, const char *name, size_t nlen,
                      const char *value, size_t vlen);
    /* Appends a field; as header_set otherwise. */
    int (*header_add)(struct sluice_req *req, int side, const char *name, size_t nlen,
                      const char *value, size_t vlen);
    /* Removes every field called name; SLUICE_NOT_FOUND when there was none. */
    int (*header_remove)(struct sluice_req *req, int side, const char *name, size_t nlen);

    /* --- the response -------------------------------------------------------- */

    /* The status the client gets (0 before there is a response). Returns
     * the status, not an enum sluice_result. */
    int (*status)(struct sluice_req *req);
    /* Changes the status (100..999), in response_headers. */
    int (*set_status)(struct sluice_req *req, int status);
    /* Sets a local reply: status (200..999) and body; its fields are the
     * SLUICE_RESPONSE fields set so far (header_set before or after this
     * call, in the same hook). The hook then returns SLUICE_RESPOND. In
     * request phases only. */
    int (*respond)(struct sluice_req *req, int status, const char *body, size_t len);

    /* --- bodies (for plugins that declared them in sluice_plugin.body) ------ */

    /* The whole buffered body of side. */
    int (*body_get)(struct sluice_req *req, int side, struct sluice_str *out);
    /* Replaces the body of side; Content-Length follows. */
    int (*body_set)(struct sluice_req *req, int side, const char *p, size_t n);

    /* --- the per-request space shared by every plugin, Lua and native -------- */

    /* The value of key (sluice.ctx.get in Lua); SLUICE_NOT_FOUND when unset. */
    int (*ctx_get)(struct sluice_req *req, const char *key, size_t klen, struct sluice_str *out);
    /* Sets key to value for every plugin of the request; value NULL removes
     * it (SLUICE_NOT_FOUND when it was not set). */
    int (*ctx_set)(struct sluice_req *req, const char *key, size_t klen, const char *value,
                   size_t vlen);

    /* --- memory, errors, logs, time ----------------------------------------------- */

    /* n bytes aligned for any type, freed when the request ends (never
     * free them); NULL when out of memory. */
    void *(*alloc)(struct sluice_req *req, size_t n);
    /* Sets the message of the SLUICE_ERROR the hook is about to return
     * (NUL-terminated; copied). The host logs it with the plugin, phase and
     * request id. */
    void (*error)(struct sluice_req *req, const char *msg);
    /* Logs "plugin NAME: msg (request ID)" at level (enum
     * sluice_log_level). req may be NULL outside a hook: the line then
     * carries neither the plugin's name nor a request id. */
    void (*log)(struct sluice_req *req, int level, const char *msg, size_t len);
    /* Whether lines of level are written: skip building costly messages. */
    int (*log_enabled)(int level);
    /* Wall-clock milliseconds since the epoch; during a request, the
     * worker's clock cached once per event-loop turn. req may be NULL. */
    int64_t (*now_ms)(struct sluice_req *req);

    /* --- the plugin's config (in config_create and afterwards) -------------------- */

    /* The node's type (enum sluice_conf_type); SLUICE_CONF_ABSENT for NULL. */
    int (*conf_type)(const struct sluice_conf *node);
    /* The node at path under node: keys separated by '.', list items as
     * "[i]" (0-based): "request.set", "keys[0]". NULL when absent. */
    const struct sluice_conf *(*conf_get)(const struct sluice_conf *node, const char *path);
    /* Items of a list, entries of a map; 0 for anything else. */
    size_t (*conf_len)(const struct sluice_conf *node);
    /* The i-th item of a list, or value of a map (in file order; key gets
     * its key when not NULL). NULL past the end or for a scalar. */
    const struct sluice_conf *(*conf_at)(const struct sluice_conf *node, size_t i,
                                         struct sluice_str *key);
    /* Typed reads: SLUICE_OK, or SLUICE_EINVAL when the node is not of
     * that type (conf_number also takes an integer; conf_bool sets 0 or
     * 1). Strings are borrowed until config_destroy returns. */
    int (*conf_string)(const struct sluice_conf *node, struct sluice_str *out);
    int (*conf_int)(const struct sluice_conf *node, int64_t *out);
    int (*conf_number)(const struct sluice_conf *node, double *out);
    int (*conf_bool)(const struct sluice_conf *node, int *out);
    /* Writes what the node is, for "got ..." in messages, as sluice's Lua
     * schemas say it: "\"text\"" (quoted, cut after 40 bytes), 42, true,
     * null, "a table". Returns buf. */
    const char *(*conf_describe)(const struct sluice_conf *node, char *buf, size_t len);
    /* Reports a problem: "FILE:LINE:COL: plugin NAME: config.PATH: msg",
     * with the position and key path of node, extended by ".key" when key
     * is not NULL (a missing field: the position is node's). node NULL:
     * "FILE:LINE:COL: plugin NAME: msg" at the plugin's entry. Report every
     * problem found, then return SLUICE_ERROR. */
    void (*conf_error)(struct sluice_errors *errs, const struct sluice_conf *node,
                       const char *key, const char *msg);

    /* --- shared dictionaries (thread-safe; any function, any thread) ------------- */

    /* Opens the dictionary called name (len bytes) that the configuration
     * declares, and returns a handle to keep (close it with dict_close,
     * typically in config_destroy); NULL when the configuration declares
     * no such dictionary. Call it from config_create, which sees the
     * dictionaries of the configuration being loaded. */
    struct sluice_dict *(*dict_open)(const char *name, size_t len);
    /* Gives the handle back. NULL is accepted. */
    void (*dict_close)(struct sluice_dict *d);
    /* Reads key: SLUICE_OK with *out set (a string is copied into buf, of
     * buflen bytes, and out->str points there); SLUICE_NOT_FOUND when
     * absent or expired; SLUICE_TRUNCATED when the string is longer than
     * buflen (out->str.len is its length; nothing copied). */
    int (*dict_get)(struct sluice_dict *d, const char *key, size_t klen,
                    struct sluice_dict_value *out, char *buf, size_t buflen);
    /* Stores *v under key (a nil value deletes it) with a time to live of
     * ttl_ms milliseconds (0: none). SLUICE_ENOMEM when it cannot fit. */
    int (*dict_set)(struct sluice_dict *d, const char *key, size_t klen,
                    const struct sluice_dict_value *v, int64_t ttl_ms);
    /* As dict_set, only when key has no live value: SLUICE_EXISTS otherwise. */
    int (*dict_add)(struct sluice_dict *d, const char *key, size_t klen,
                    const struct sluice_dict_value *v, int64_t ttl_ms);
    /* Adds by to the number under key, atomically, and stores the sum in
     * *result (may be NULL); the key keeps its time to live. An absent key
     * is SLUICE_NOT_FOUND with init NULL, else starts at *init with a time
     * to live of init_ttl_ms. SLUICE_ENOTNUM when the value is not a number. */
    int (*dict_incr)(struct sluice_dict *d, const char *key, size_t klen, double by,
                     const double *init, int64_t init_ttl_ms, double *result);
    /* Deletes key; SLUICE_NOT_FOUND when it had no live value. */
    int (*dict_delete)(struct sluice_dict *d, const char *key, size_t klen);

    /* --- the balancer (ABI 1.1: check SLUICE_HOST_HAS(host, set_backend)) -------
     * In the balancer hook only (SLUICE_EPHASE in any other). That hook runs
     * once per request, after the request hooks (after request_body when
     * the body is buffered) and before the first connection attempt. A
     * plugin can pick only among what the configuration lists, never an
     * arbitrary address: a request cannot be steered to a host of a
     * plugin's or a client's choosing. A chosen backend's connections come
     * from the same pool and count in the same metrics as the proxy's own
     * picks. */

    /* The name of the upstream the request goes to: the route's, or the
     * one set_upstream chose. */
    int (*upstream_name)(struct sluice_req *req, struct sluice_str *out);
    /* Sends the request to the configured upstream called name (compared
     * exactly); SLUICE_NOT_FOUND when there is none (nothing changes: the
     * plugin may respond itself). When the upstream changes, a backend
     * chosen before with set_backend is dropped. The proxy then balances
     * over the new upstream's backends, retries on connect failures
     * included. */
    int (*set_upstream)(struct sluice_req *req, const char *name, size_t len);
    /* The number of backends of the current upstream in *n. */
    int (*backend_count)(struct sluice_req *req, size_t *n);
    /* The i-th (0-based, configuration order) backend of the current
     * upstream: its address as configured ("127.0.0.1:9001"), its weight,
     * and in *cooldown_ms how long it still cools down after a failed
     * connect (0: healthy; the round robin skips it meanwhile). Any output
     * may be NULL. SLUICE_NOT_FOUND past the end. */
    int (*backend_at)(struct sluice_req *req, size_t i, struct sluice_str *address,
                      int *weight, int64_t *cooldown_ms);
    /* Sends the request to the backend of the current upstream whose
     * configured address is address ("host:port" as backend_at gives it;
     * letters compared without case); SLUICE_NOT_FOUND when the upstream
     * has none (nothing changes). It is the only backend tried: if
     * connecting fails the client gets 502 (504 on a connect timeout) and
     * the backend starts its cool-down; no other backend is tried. Calling
     * it again replaces the choice. */
    int (*set_backend)(struct sluice_req *req, const char *address, size_t len);

    /* --- ABI 1.2: check SLUICE_HOST_HAS(host, dict_update) ------------------------ */

    /* The route the request matched, as configured: its path prefix in
     * *path and its host ("example.com", "*.example.com") in *host, or
     * host {NULL, 0} when the route takes any host (sluice.request.
     * get_route in Lua). Together they name the route. SLUICE_NOT_FOUND
     * when no route matched (the request is answered 404). Borrowed until
     * the request ends. */
    int (*route)(struct sluice_req *req, struct sluice_str *host, struct sluice_str *path);
    /* Milliseconds on the monotonic clock, with a fraction (microseconds):
     * it never jumps when the wall clock is set, and it is the clock of
     * Lua's sluice.time.monotonic_ms and of the dictionaries' times to
     * live. Its zero is arbitrary: for intervals and deadlines. Any
     * thread, no request needed. */
    double (*monotonic_ms)(void);
    /* Atomic read-modify-write of key: runs fn(arg, ...) under the
     * dictionary's lock (see sluice_dict_update_fn) and applies its
     * verdict, so no other worker or plugin, Lua or native, changes the
     * key in between (a token bucket, a capped counter). SLUICE_OK (also
     * for KEEP, and REMOVE of an absent key); SLUICE_ENOMEM when the value
     * stored cannot fit (the entry is then unchanged); SLUICE_EINVAL for a
     * bad key, verdict, value or negative time to live. */
    int (*dict_update)(struct sluice_dict *d, const char *key, size_t klen,
                       sluice_dict_update_fn fn, void *arg);

    /* --- ABI 1.3: check SLUICE_HOST_HAS(host, metric_observe) --------------------
     * The plugin's own Prometheus metrics, served with sluice's on GET
     * /metrics (docs/METRICS.md), the same as Lua's sluice.metrics: defined
     * in config_create, updated from hooks. A metric is keyed by its full
     * name, so every instance of the plugin and every reload that defines
     * it again gets the same metric back, and its value goes on. No labels:
     * define one metric per outcome. */

    /* Defines a counter of the plugin, exposed as
     * sluice_plugin_<plugin>_<name>_total: the plugin's configured name
     * with '-' as '_', and _total appended unless name ends with it. In
     * config_create only, with the errs it was given. name (NUL-terminated)
     * is 1 to 64 letters, digits or '_', not starting with a digit nor
     * ending in _bucket, _sum or _count; help (NULL: none) at most 1024
     * bytes of UTF-8 without control characters. A plugin defines at most
     * 64 metrics. Defining it again returns the same handle and takes the
     * new help; a name defined before as a histogram, another plugin's or
     * a built-in metric's is refused. Returns the handle (>= 0): keep it in
     * the instance for metric_add. On a refusal it reports "metric_counter:
     * why" with conf_error at the plugin's entry and returns SLUICE_EINVAL
     * (config_create then returns SLUICE_ERROR: the load, reload or
     * `sluice -t` fails with that message); SLUICE_EPHASE, reporting
     * nothing, outside config_create. */
    int (*metric_counter)(struct sluice_errors *errs, const char *name, const char *help);
    /* Defines a histogram of the plugin, exposed as
     * sluice_plugin_<plugin>_<name> (_bucket, _sum, _count); as
     * metric_counter otherwise ("metric_histogram: why"). buckets: nbuckets
     * (1 to 32) finite, strictly increasing upper bounds (+Inf is implied),
     * copied; NULL for the defaults, 0.005 to 10 (seconds). Defining it
     * again with other buckets, or a name defined before as a counter, is
     * refused (that change needs a restart). Returns the handle (>= 0) for
     * metric_observe. */
    int (*metric_histogram)(struct sluice_errors *errs, const char *name, const char *help,
                            const double *buckets, size_t nbuckets);
    /* Adds n (finite, >= 0; fractions too) to the counter metric, in the
     * request's worker's own cells: a load and a store, no lock, no
     * allocation. In any hook. SLUICE_EINVAL for a handle that is not a
     * counter's or a bad n (nothing counted). */
    int (*metric_add)(struct sluice_req *req, int metric, double n);
    /* Records v (finite) in the histogram metric, as metric_add does
     * (SLUICE_EINVAL for a handle that is not a histogram's or a bad v). */
    int (*metric_observe)(struct sluice_req *req, int metric, double v);
};

/* Whether the host's table has member (a plugin built against a newer
 * minor checks before calling a function the host may lack). */
#define SLUICE_HOST_HAS(host, member)                                         \
    ((host)->size >= offsetof(struct sluice_host, member) + sizeof((host)->member))

/* The plugin's descriptor: a static object in the plugin, returned by
 * sluice_plugin_init and read by the host (it must stay valid while the
 * plugin is loaded). Start it with SLUICE_PLUGIN_HEADER; leave absent
 * hooks NULL. */
struct sluice_plugin {
    size_t size;                    /* sizeof(struct sluice_plugin) the plugin was built with */
    uint32_t abi_major;             /* SLUICE_ABI_MAJOR the plugin was built with */
    uint32_t abi_minor;             /* SLUICE_ABI_MINOR the plugin was built with */

    /* Must equal the name the plugin is configured and found under
     * (NAME.so). */
    const char *name;
    /* Shown in logs; NULL: "0". */
    const char *version;
    /* Higher runs first, in every phase; -1000000..1000000. An entry's
     * `priority` in sluice.yaml wins over it. */
    int priority;
    /* enum sluice_body bits: the whole request or response body is needed
     * (request_body / response_body hooks imply them). */
    uint32_t body;

    /* Checks the instance's config and builds its state in *instance.
     * Report each problem with host->conf_error and return SLUICE_ERROR
     * (after freeing what was built); SLUICE_OK otherwise. NULL: the
     * config must be empty. Runs once per configured instance, on every
     * (re)load and for `sluice -t`. */
    int (*config_create)(const struct sluice_host *host, const struct sluice_conf *config,
                         struct sluice_errors *errs, void **instance);
    /* Frees an instance, when its configuration generation is retired. */
    void (*config_destroy)(void *instance);
    /* Builds the instance's state for worker (0-based) in *worker_state,
     * on that worker's thread, before its first hook there. SLUICE_ERROR
     * (with conf_error(errs, NULL, NULL, msg)) fails that request; it is
     * tried again a second later. */
    int (*worker_init)(void *instance, int worker, struct sluice_errors *errs,
                       void **worker_state);
    /* Frees what worker_init made, when that worker retires the instance
     * (or at shutdown). */
    void (*worker_fini)(void *instance, int worker, void *worker_state);
    /* The request ended (after its log phase) with a non-NULL state:
     * free it. Runs on the request's worker. */
    void (*request_free)(void *instance, void *worker_state, void *state);

    /* The phase hooks; NULL for a phase the plugin does not implement. */
    sluice_hook_fn request_headers;
    sluice_hook_fn request_body;
    sluice_hook_fn balancer;
    sluice_hook_fn response_headers;
    sluice_hook_fn response_body;
    sluice_hook_fn log;
};

/* The first members of every descriptor. */
#define SLUICE_PLUGIN_HEADER                                                  \
    .size = sizeof(struct sluice_plugin),                                     \
    .abi_major = SLUICE_ABI_MAJOR,                                            \
    .abi_minor = SLUICE_ABI_MINOR

#if defined(__GNUC__)
#define SLUICE_EXPORT __attribute__((visibility("default")))
#else
#define SLUICE_EXPORT
#endif

/* The entry point every plugin exports. host: the host's table (valid for
 * the life of the process: keep the pointer). Returns the plugin's
 * descriptor, or NULL to refuse this host (for instance, a host minor
 * lacking a function the plugin needs). Called once per loaded copy of the
 * plugin, before any other function; it should do nothing else. */
SLUICE_EXPORT const struct sluice_plugin *sluice_plugin_init(const struct sluice_host *host);

#ifdef __cplusplus
}
#endif

#endif
