/* Typed configuration: what sluice.yaml (or the quick-mode flags) turn into.
 * Every object here is owned by its struct sl_config and freed with
 * sl_config_free(); nothing in it changes after loading. Durations are in
 * milliseconds, sizes in bytes. */
#ifndef SL_CONFIG_T_H
#define SL_CONFIG_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum sl_log_level {
    SL_LOG_ERROR = 0,
    SL_LOG_WARN = 1,
    SL_LOG_INFO = 2,
    SL_LOG_DEBUG = 3,
};

enum sl_access_log_format {
    SL_ACCESS_LOG_TEXT = 0,
    SL_ACCESS_LOG_JSON = 1,
};

/* A resolved socket address with the text it was written as ("127.0.0.1:80"). */
struct sl_addr {
    char *text;                     /* owned: as written in the config */
    struct sockaddr_storage ss;
    socklen_t len;
};

struct sl_listen_conf {
    struct sl_addr addr;
    int backlog;                    /* default 511 */
    int line;                       /* config line, for messages */
};

struct sl_backend_conf {
    struct sl_addr addr;
    int weight;                     /* 1..1000, default 1 */
    int line;
};

struct sl_upstream_conf {
    char *name;                     /* owned */
    struct sl_backend_conf *backends;   /* owned array */
    size_t nbackends;
    char *balance;                  /* owned; "round_robin" (smooth weighted) */
    int keepalive_max_idle;         /* idle conns kept per backend per worker, default 32; 0 disables pooling */
    int keepalive_idle_timeout_ms;  /* default 60000 */
    int connect_timeout_ms;         /* default 5000 */
    int send_timeout_ms;            /* default 60000: writing the request stalls this long -> 504/close */
    int response_timeout_ms;        /* default 60000: waiting for (more of) the response -> 504 */
    int fail_cooldown_ms;           /* a backend refusing connections is skipped this long, default 10000 */
    int line;
};

/* A plugin's own configuration as written in YAML: a generic tree that the
 * plugin's schema validates (Lua and native plugins alike). Positions are
 * 1-based, for "file:line:col" messages. */
enum sl_value_kind {
    SL_VALUE_NULL,
    SL_VALUE_BOOL,
    SL_VALUE_INT,
    SL_VALUE_NUMBER,
    SL_VALUE_STRING,
    SL_VALUE_LIST,
    SL_VALUE_MAP,
};

struct sl_value {
    enum sl_value_kind kind;
    int line, col;
    bool b;                         /* SL_VALUE_BOOL */
    int64_t i;                      /* SL_VALUE_INT */
    double d;                       /* SL_VALUE_NUMBER */
    char *s;                        /* owned; SL_VALUE_STRING */
    size_t len;                     /* string length */
    struct sl_value *items;         /* owned array; SL_VALUE_LIST values, SL_VALUE_MAP values */
    char **keys;                    /* owned array; SL_VALUE_MAP keys, parallel to items */
    size_t n;
};

enum sl_on_error {
    SL_ON_ERROR_FAIL = 0,           /* the request gets 500 (default) */
    SL_ON_ERROR_CONTINUE = 1,       /* the plugin is skipped for this request */
};

/* Which kind of plugin an entry asks for (its `kind` key). */
enum sl_plugin_kind_pick {
    SL_PLUGIN_ANY = 0,              /* default: whatever the plugin paths hold (docs/CONFIG.md) */
    SL_PLUGIN_LUA = 1,
    SL_PLUGIN_NATIVE = 2,
};

/* One plugin instance as configured, globally or on a route. */
struct sl_plugin_conf {
    char *name;                     /* owned: module name, e.g. "key-auth" */
    enum sl_plugin_kind_pick kind;  /* default any */
    char *file;                     /* owned; NULL: found by name. A path relative to
                                       the plugin paths ("auth/jwt.so") */
    char *sha256;                   /* owned; NULL, or 64 lowercase hex digits the
                                       file's SHA-256 must equal */
    bool enabled;                   /* default true; false on a route disables a global plugin there */
    bool has_priority;              /* priority given in YAML (overrides the plugin's own) */
    int priority;
    enum sl_on_error on_error;      /* default fail */
    int timeout_ms;                 /* per hook call, default 50 (Lua only) */
    int memory_limit_mb;            /* per plugin per worker, default 64 (Lua only) */
    struct sl_value config;         /* owned; SL_VALUE_MAP, empty map when absent */
    int line, col;
};

struct sl_route_conf {
    char *host;                     /* owned; NULL = any host; "*.example.com" = wildcard suffix */
    char *path;                     /* owned; path prefix, default "/" */
    char *upstream_name;            /* owned */
    struct sl_upstream_conf *upstream;  /* borrowed: points into cfg->upstreams */
    struct sl_plugin_conf *plugins; /* owned: per-route plugins and overrides of global ones */
    size_t nplugins;
    int line;
};

struct sl_limits_conf {
    size_t max_request_line;        /* request line longer -> 414; default 8192 */
    size_t max_header_size;         /* all header bytes -> 431; default 32768 */
    size_t max_headers;             /* header count -> 431; default 100 */
    uint64_t max_body_size;         /* request body -> 413; default 1 GiB (1073741824); 0 = unlimited */
    size_t max_body_buffer;         /* body buffered for a plugin's body phase; over it 413 (requests)
                                       or 502 (responses); default 1m */
};

struct sl_timeouts_conf {
    int client_header_ms;           /* whole request head must arrive within; 408; default 10000 */
    int client_body_ms;             /* gap between body reads; default 60000 */
    int keepalive_ms;               /* idle keep-alive client connection closed after; default 60000 */
    int send_ms;                    /* writing to a client stalls this long -> close; default 60000 */
    int drain_ms;                   /* SIGTERM: in-flight requests get this long; default 10000 */
};

struct sl_proxy_conf {
    bool x_forwarded_for;           /* default true: append client address */
    bool x_forwarded_proto;         /* default true: set to "http" */
    bool x_forwarded_host;          /* default true: set to the client's Host */
    bool via;                       /* default true: append "1.1 sluice" both directions */
    bool preserve_host;             /* default true: forward the client's Host; false: backend address */
};

struct sl_log_conf {
    enum sl_log_level level;        /* default info */
    char *access_log;               /* owned; NULL = off, "stderr", "stdout" or a file path; default NULL */
    enum sl_access_log_format access_log_format;  /* default text */
};

/* The admin listener (docs/ADMIN.md). Present only when the file has an
 * admin: key; quick mode never has one. */
struct sl_admin_conf {
    bool enabled;                   /* the admin: key is present */
    struct sl_addr addr;            /* default 127.0.0.1:9901; ":port" means 127.0.0.1 */
    char *token;                    /* owned; bearer token, NULL = none (loopback only) */
    int line, col;                  /* of the admin: key, for messages */
};

/* A shared dictionary (shared_dicts.NAME): the byte budget of a store all
 * workers share (shdict.h). */
struct sl_shdict_conf {
    char *name;                     /* owned */
    size_t size;                    /* bytes, 8k..64g */
    int line, col;                  /* of the name, for messages */
};

struct sl_config {
    char *path;                     /* owned; NULL in quick mode */
    uint64_t source_hash;           /* FNV-1a 64 of the file's bytes as parsed (reloads
                                       compare it); 0 in quick mode */
    bool watch;                     /* default false: reload when the file or a plugin
                                       file changes (watch.c) */
    int workers;                    /* >= 1; "auto" resolves to the number of cores */
    struct sl_listen_conf *listeners;   /* owned array, at least one */
    size_t nlisteners;
    struct sl_upstream_conf *upstreams; /* owned array */
    size_t nupstreams;
    struct sl_route_conf *routes;   /* owned array, in file order */
    size_t nroutes;
    struct sl_limits_conf limits;
    struct sl_timeouts_conf timeouts;
    struct sl_proxy_conf proxy;
    struct sl_log_conf log;
    char **plugin_paths;            /* owned: directories plugins load from, relative to the
                                       config file's directory; default plugins-lua, plugins-native */
    size_t nplugin_paths;
    struct sl_plugin_conf *plugins; /* owned: global plugin instances, in file order */
    size_t nplugins;
    struct sl_shdict_conf *shared_dicts;    /* owned array, in file order; names unique */
    size_t nshared_dicts;
    struct sl_admin_conf admin;     /* admin listener; admin.enabled false when absent */
};

/* Error list filled by the loader: each entry is one complete message,
 * "file:line:col: message". */
struct sl_config_errors {
    char **msgs;                    /* owned */
    size_t n;
};

#endif
