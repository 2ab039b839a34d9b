/* Configuration schema: which keys sluice.yaml has, their ranges and
 * defaults, and the checks that span sections (listeners and upstreams
 * present, routes naming defined upstreams, no duplicate routes). The YAML
 * mechanics and message collection are in config_yaml.c, the value syntax
 * (durations, sizes, addresses) in config_values.c. */
#include "config.h"
#include "config_admin.h"
#include "config_plugins.h"
#include "config_shdict.h"
#include "config_values.h"
#include "config_yaml.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GIB             (1024LL * 1024 * 1024)
#define DURATION_MAX    (24LL * 3600 * 1000)
#define WORKERS_MAX     256
#define HOST_MAX_LEN    253
#define DEFAULT_BACKLOG 511

struct loader {
    struct sl_yaml y;
    struct sl_config *cfg;
    yaml_node_t *listen, *upstreams, *routes;   /* borrowed: as met in the file */
};

static struct loader *loader_of(struct sl_yaml *y)
{
    return y->user;
}

/* Section absent or written as an empty list or mapping: worth its own
 * message, unlike a section of the wrong type, which already got one. */
static bool is_absent_or_empty(const yaml_node_t *n)
{
    return n == NULL || (n->type != YAML_SCALAR_NODE && sl_yaml_count(n) == 0);
}

static int line_of(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

/* --- top-level scalars and log -------------------------------------------- */

static int ncpu(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > WORKERS_MAX ? WORKERS_MAX : (int)n;
}

static void load_workers(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_config *cfg = base;
    const char *s = sl_yaml_scalar(y, val, path, "an integer or 'auto'");
    char buf[80];
    long long v;

    if (s == NULL)
        return;
    if (strcmp(s, "auto") == 0)
        cfg->workers = ncpu();
    else if (sl_config_parse_int(s, &v) < 0)
        sl_yaml_expected(y, val, path, "an integer or 'auto'");
    else if (v < 1 || v > WORKERS_MAX)
        sl_yaml_error(y, val, "%s: expected an integer in 1..%d or 'auto', got %s", path,
                      WORKERS_MAX, sl_yaml_describe(val, buf, sizeof buf));
    else
        cfg->workers = (int)v;
}

static void load_level(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char *const names[] = { "error", "warn", "info", "debug" };
    struct sl_log_conf *log = base;
    size_t i;

    if (sl_yaml_pick(y, val, path, names, SL_YAML_COUNTOF(names), &i))
        log->level = (enum sl_log_level)i;
}

static void load_log_format(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char *const names[] = { "text", "json" };
    struct sl_log_conf *log = base;
    size_t i;

    if (sl_yaml_pick(y, val, path, names, SL_YAML_COUNTOF(names), &i))
        log->access_log_format = (enum sl_access_log_format)i;
}

static void load_access_log(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char what[] = "off, stderr, stdout or a file path";
    struct sl_log_conf *log = base;
    const char *s = sl_yaml_scalar(y, val, path, what);

    if (s == NULL)
        return;
    if (s[0] == '\0') {
        sl_yaml_expected(y, val, path, what);
        return;
    }
    free(log->access_log);
    log->access_log = strcmp(s, "off") == 0 ? NULL : sl_config_xstrdup(s);
}

/* --- listeners and backends ------------------------------------------------- */

static bool load_addr(struct sl_yaml *y, yaml_node_t *val, const char *path,
                      const char *default_host, struct sl_addr *addr)
{
    const char *s = sl_yaml_scalar(y, val, path, "an address");
    char reason[256], buf[80];

    if (s == NULL)
        return false;
    if (sl_addr_parse(s, default_host, addr, reason, sizeof reason) < 0) {
        sl_yaml_error(y, val, "%s: invalid address %s: %s", path,
                      sl_yaml_describe(val, buf, sizeof buf), reason);
        return false;
    }
    return true;
}

static void listen_address(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    load_addr(y, val, path, "0.0.0.0", &((struct sl_listen_conf *)base)->addr);
}

static void backend_address(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    load_addr(y, val, path, NULL, &((struct sl_backend_conf *)base)->addr);
}

static const struct sl_yaml_field listen_fields[] = {
    SL_YAML_FUNC("address", listen_address),
    SL_YAML_NUM("backlog", SL_YAML_INT, struct sl_listen_conf, backlog, 1, 65535),
};

static const struct sl_yaml_field backend_fields[] = {
    SL_YAML_FUNC("address", backend_address),
    SL_YAML_NUM("weight", SL_YAML_INT, struct sl_backend_conf, weight, 1, 1000),
};

/* A listener or backend: "host:port", or a mapping with "address" and the
 * extra keys of fields. Returns whether addr was set. */
static bool load_endpoint(struct sl_yaml *y, yaml_node_t *item, const char *path,
                          const char *default_host, struct sl_addr *addr,
                          const struct sl_yaml_field *fields, size_t nfields, void *base)
{
    if (item->type == YAML_SCALAR_NODE)
        return load_addr(y, item, path, default_host, addr);
    if (item->type != YAML_MAPPING_NODE) {
        sl_yaml_expected(y, item, path, "an address or a mapping");
        return false;
    }
    sl_yaml_walk(y, item, path, fields, nfields, base);
    if (sl_yaml_get(y, item, "address") == NULL)
        sl_yaml_error(y, item, "%s: missing required key 'address'", path);
    return addr->text != NULL;
}

static bool same_addr(const struct sl_addr *a, const struct sl_addr *b)
{
    return a->text != NULL && b->text != NULL && a->len == b->len
        && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static void load_listen(struct sl_yaml *y, yaml_node_t *seq, const char *path, void *base)
{
    struct sl_config *cfg = base;
    char sub[SL_YAML_PATH_LEN];

    loader_of(y)->listen = seq;
    if (!sl_yaml_is_type(y, seq, YAML_SEQUENCE_NODE, path, "a list") || sl_yaml_count(seq) == 0)
        return;
    cfg->listeners = sl_config_xcalloc(sl_yaml_count(seq), sizeof *cfg->listeners);
    for (size_t i = 0; i < sl_yaml_count(seq); i++) {
        yaml_node_t *item = sl_yaml_item(y, seq, i);
        struct sl_listen_conf *l = &cfg->listeners[cfg->nlisteners++];

        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        l->backlog = DEFAULT_BACKLOG;
        l->line = line_of(item);
        if (!load_endpoint(y, item, sub, "0.0.0.0", &l->addr, listen_fields,
                           SL_YAML_COUNTOF(listen_fields), l))
            continue;
        for (size_t j = 0; j < i; j++) {
            if (same_addr(&cfg->listeners[j].addr, &l->addr)) {
                sl_yaml_error(y, item, "%s: duplicate of %s[%zu]", sub, path, j);
                break;
            }
        }
    }
}

static void load_backends(struct sl_yaml *y, yaml_node_t *seq, const char *path, void *base)
{
    struct sl_upstream_conf *u = base;
    char sub[SL_YAML_PATH_LEN];

    if (!sl_yaml_is_type(y, seq, YAML_SEQUENCE_NODE, path, "a list") || sl_yaml_count(seq) == 0)
        return;
    u->backends = sl_config_xcalloc(sl_yaml_count(seq), sizeof *u->backends);
    for (size_t i = 0; i < sl_yaml_count(seq); i++) {
        yaml_node_t *item = sl_yaml_item(y, seq, i);
        struct sl_backend_conf *b = &u->backends[u->nbackends++];

        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        b->weight = 1;
        b->line = line_of(item);
        if (!load_endpoint(y, item, sub, NULL, &b->addr, backend_fields,
                           SL_YAML_COUNTOF(backend_fields), b))
            continue;
        for (size_t j = 0; j < i; j++) {
            if (same_addr(&u->backends[j].addr, &b->addr)) {
                sl_yaml_error(y, item, "%s: duplicate of %s[%zu]", sub, path, j);
                break;
            }
        }
    }
}

/* --- upstreams ----------------------------------------------------------------- */

static void load_balance(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char *const names[] = { "round_robin" };
    struct sl_upstream_conf *u = base;
    size_t i;

    if (sl_yaml_pick(y, val, path, names, SL_YAML_COUNTOF(names), &i)) {
        free(u->balance);
        u->balance = sl_config_xstrdup(names[i]);
    }
}

static const struct sl_yaml_field keepalive_fields[] = {
    SL_YAML_NUM("max_idle", SL_YAML_INT, struct sl_upstream_conf, keepalive_max_idle, 0, 10000),
    SL_YAML_NUM("idle_timeout", SL_YAML_MS, struct sl_upstream_conf, keepalive_idle_timeout_ms,
                1, DURATION_MAX),
};

static const struct sl_yaml_field upstream_timeout_fields[] = {
    SL_YAML_NUM("connect", SL_YAML_MS, struct sl_upstream_conf, connect_timeout_ms, 1, DURATION_MAX),
    SL_YAML_NUM("send", SL_YAML_MS, struct sl_upstream_conf, send_timeout_ms, 1, DURATION_MAX),
    SL_YAML_NUM("response", SL_YAML_MS, struct sl_upstream_conf, response_timeout_ms, 1, DURATION_MAX),
};

/* keepalive and timeouts are nested in the file but flat in the struct,
 * hence their offset 0. */
static const struct sl_yaml_field upstream_fields[] = {
    SL_YAML_FUNC("backends", load_backends),
    SL_YAML_FUNC("balance", load_balance),
    SL_YAML_SUB("keepalive", 0, keepalive_fields),
    SL_YAML_SUB("timeouts", 0, upstream_timeout_fields),
    SL_YAML_NUM("fail_cooldown", SL_YAML_MS, struct sl_upstream_conf, fail_cooldown_ms,
                0, DURATION_MAX),
};

static void init_upstream(struct sl_upstream_conf *u, const char *name)
{
    u->name = sl_config_xstrdup(name);
    u->balance = sl_config_xstrdup("round_robin");
    u->keepalive_max_idle = 32;
    u->keepalive_idle_timeout_ms = 60000;
    u->connect_timeout_ms = 5000;
    u->send_timeout_ms = 60000;
    u->response_timeout_ms = 60000;
    u->fail_cooldown_ms = 10000;
}

static void load_upstream(struct sl_yaml *y, yaml_node_t *key, yaml_node_t *val,
                          struct sl_upstream_conf *u)
{
    char path[SL_YAML_PATH_LEN];

    init_upstream(u, (const char *)key->data.scalar.value);
    u->line = line_of(key);
    sl_yaml_join(path, "upstreams", u->name);
    sl_yaml_walk(y, val, path, upstream_fields, SL_YAML_COUNTOF(upstream_fields), u);
    if (val->type == YAML_MAPPING_NODE && is_absent_or_empty(sl_yaml_get(y, val, "backends")))
        sl_yaml_error(y, key, "%s: no backends defined", path);
}

static void load_upstreams(struct sl_yaml *y, yaml_node_t *map, const char *path, void *base)
{
    struct sl_config *cfg = base;
    const yaml_node_pair_t *p;
    char buf[80];

    loader_of(y)->upstreams = map;
    if (!sl_yaml_is_type(y, map, YAML_MAPPING_NODE, path, "a mapping") || sl_yaml_count(map) == 0)
        return;
    cfg->upstreams = sl_config_xcalloc(sl_yaml_count(map), sizeof *cfg->upstreams);
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *key = yaml_document_get_node(&y->doc, p->key);

        if (!sl_yaml_is_good_key(y, map, p, path))
            continue;
        if (!sl_config_is_valid_name((const char *)key->data.scalar.value)) {
            sl_yaml_error(y, key, "%s: invalid upstream name %s: use 1 to %d letters, digits, '-' or '_'",
                          path, sl_yaml_describe(key, buf, sizeof buf), SL_CONFIG_NAME_MAX);
            continue;
        }
        load_upstream(y, key, yaml_document_get_node(&y->doc, p->value),
                      &cfg->upstreams[cfg->nupstreams++]);
    }
}

/* --- routes ---------------------------------------------------------------------- */

/* An exact name or "*.suffix". The router compares against the Host header
 * lowercased and without its port, so neither belongs here. */
static bool is_valid_host(const char *s)
{
    const char *p = strncmp(s, "*.", 2) == 0 ? s + 2 : s;
    bool label_start = true;

    if (*p == '\0' || strlen(p) > HOST_MAX_LEN)
        return false;
    for (; *p; p++) {
        if (*p == '.') {
            if (label_start)
                return false;
            label_start = true;
        } else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
            label_start = false;
        } else {
            return false;
        }
    }
    return !label_start;
}

static void route_host(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_route_conf *r = base;
    const char *s = sl_yaml_scalar(y, val, path, "a host name");
    char buf[80];

    if (s == NULL || strcmp(s, "*") == 0)     /* "*" is any host, as if left out */
        return;
    if (!is_valid_host(s)) {
        sl_yaml_error(y, val, "%s: invalid host %s: expected a name like example.com or *.example.com",
                      path, sl_yaml_describe(val, buf, sizeof buf));
        return;
    }
    r->host = sl_config_xstrdup(s);
    for (char *c = r->host; *c; c++)
        *c = (char)tolower((unsigned char)*c);
}

/* Paths are matched against the request target before its query, as
 * received (RFC 9112 §3.2), so a query, a fragment or a space could never
 * match. */
static void route_path(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_route_conf *r = base;
    const char *s = sl_yaml_scalar(y, val, path, "a path");
    char buf[80];

    if (s == NULL)
        return;
    if (s[0] != '/') {
        sl_yaml_error(y, val, "%s: must start with '/', got %s", path,
                      sl_yaml_describe(val, buf, sizeof buf));
        return;
    }
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c <= ' ' || *c == 0x7f || *c == '?' || *c == '#') {
            sl_yaml_error(y, val, "%s: must be a plain path without query, fragment or spaces, got %s",
                          path, sl_yaml_describe(val, buf, sizeof buf));
            return;
        }
    }
    r->path = sl_config_xstrdup(s);
}

static void route_upstream(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_route_conf *r = base;
    struct sl_config *cfg = loader_of(y)->cfg;
    const char *s = sl_yaml_scalar(y, val, path, "an upstream name");
    char buf[80];

    if (s == NULL)
        return;
    r->upstream_name = sl_config_xstrdup(s);
    for (size_t i = 0; i < cfg->nupstreams && r->upstream == NULL; i++)
        if (strcmp(cfg->upstreams[i].name, s) == 0)
            r->upstream = &cfg->upstreams[i];
    if (r->upstream == NULL)
        sl_yaml_error(y, val, "%s: unknown upstream %s", path, sl_yaml_describe(val, buf, sizeof buf));
}

static void route_plugins(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_route_conf *r = base;

    sl_config_plugins_load(y, val, path, &r->plugins, &r->nplugins);
}

static const struct sl_yaml_field route_fields[] = {
    SL_YAML_FUNC("host", route_host),
    SL_YAML_FUNC("path", route_path),
    SL_YAML_FUNC("upstream", route_upstream),
    SL_YAML_FUNC("plugins", route_plugins),
};

static void add_catch_all(struct sl_config *cfg)
{
    cfg->routes = sl_config_xcalloc(1, sizeof *cfg->routes);
    cfg->nroutes = 1;
    cfg->routes[0].path = sl_config_xstrdup("/");
    cfg->routes[0].upstream_name = sl_config_xstrdup(cfg->upstreams[0].name);
    cfg->routes[0].upstream = &cfg->upstreams[0];
}

static void check_duplicate_route(struct loader *ld, yaml_node_t *item, const char *path,
                                  size_t i)
{
    const struct sl_route_conf *r = &ld->cfg->routes[i];

    for (size_t j = 0; j < i; j++) {
        const struct sl_route_conf *o = &ld->cfg->routes[j];
        bool same_host = (r->host == NULL && o->host == NULL)
                      || (r->host && o->host && strcmp(r->host, o->host) == 0);

        if (same_host && o->path && strcmp(r->path, o->path) == 0) {
            sl_yaml_error(&ld->y, item, "%s: duplicate route: same host and path as routes[%zu]",
                          path, j);
            return;
        }
    }
}

static void load_route(struct loader *ld, yaml_node_t *item, size_t i)
{
    struct sl_route_conf *r = &ld->cfg->routes[i];
    size_t before = ld->y.npend;
    char path[SL_YAML_PATH_LEN];

    snprintf(path, sizeof path, "routes[%zu]", i);
    r->line = line_of(item);
    sl_yaml_walk(&ld->y, item, path, route_fields, SL_YAML_COUNTOF(route_fields), r);
    if (item->type != YAML_MAPPING_NODE)
        return;
    if (sl_yaml_get(&ld->y, item, "upstream") == NULL)
        sl_yaml_error(&ld->y, item, "%s: missing required key 'upstream'", path);
    if (sl_yaml_get(&ld->y, item, "path") == NULL)
        r->path = sl_config_xstrdup("/");
    if (ld->y.npend == before)
        check_duplicate_route(ld, item, path, i);
}

/* Runs after the rest of the file, so that routes may come before the
 * upstreams they name. */
static void load_routes(struct loader *ld)
{
    struct sl_config *cfg = ld->cfg;
    yaml_node_t *seq = ld->routes;

    if (seq == NULL) {
        if (cfg->nupstreams == 1)
            add_catch_all(cfg);
        else if (cfg->nupstreams > 1)
            sl_yaml_error(&ld->y, ld->y.root,
                          "no routes defined and more than one upstream: add a 'routes' list");
        return;
    }
    if (!sl_yaml_is_type(&ld->y, seq, YAML_SEQUENCE_NODE, "routes", "a list"))
        return;
    if (sl_yaml_count(seq) == 0) {
        sl_yaml_error(&ld->y, seq, "routes: no routes defined");
        return;
    }
    cfg->routes = sl_config_xcalloc(sl_yaml_count(seq), sizeof *cfg->routes);
    for (; cfg->nroutes < sl_yaml_count(seq); cfg->nroutes++)
        load_route(ld, sl_yaml_item(&ld->y, seq, cfg->nroutes), cfg->nroutes);
}

/* --- top level --------------------------------------------------------------- */

static void stash_routes(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    (void)path;
    (void)base;
    loader_of(y)->routes = val;
}

static void load_plugins(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_config *cfg = base;

    sl_config_plugins_load(y, val, path, &cfg->plugins, &cfg->nplugins);
}

static const struct sl_yaml_field limits_fields[] = {
    SL_YAML_NUM("max_request_line", SL_YAML_SIZE, struct sl_limits_conf, max_request_line, 1, GIB),
    SL_YAML_NUM("max_header_size", SL_YAML_SIZE, struct sl_limits_conf, max_header_size, 1, GIB),
    SL_YAML_NUM("max_headers", SL_YAML_COUNT, struct sl_limits_conf, max_headers, 1, 10000),
    SL_YAML_NUM("max_body_size", SL_YAML_U64, struct sl_limits_conf, max_body_size, 0, 1024 * GIB),
    SL_YAML_NUM("max_body_buffer", SL_YAML_SIZE, struct sl_limits_conf, max_body_buffer, 1, GIB),
};

static const struct sl_yaml_field timeouts_fields[] = {
    SL_YAML_NUM("client_header", SL_YAML_MS, struct sl_timeouts_conf, client_header_ms, 1, DURATION_MAX),
    SL_YAML_NUM("client_body", SL_YAML_MS, struct sl_timeouts_conf, client_body_ms, 1, DURATION_MAX),
    SL_YAML_NUM("keepalive", SL_YAML_MS, struct sl_timeouts_conf, keepalive_ms, 1, DURATION_MAX),
    SL_YAML_NUM("send", SL_YAML_MS, struct sl_timeouts_conf, send_ms, 1, DURATION_MAX),
    SL_YAML_NUM("drain", SL_YAML_MS, struct sl_timeouts_conf, drain_ms, 0, DURATION_MAX),
};

static const struct sl_yaml_field proxy_fields[] = {
    SL_YAML_BOOLEAN("x_forwarded_for", struct sl_proxy_conf, x_forwarded_for),
    SL_YAML_BOOLEAN("x_forwarded_proto", struct sl_proxy_conf, x_forwarded_proto),
    SL_YAML_BOOLEAN("x_forwarded_host", struct sl_proxy_conf, x_forwarded_host),
    SL_YAML_BOOLEAN("via", struct sl_proxy_conf, via),
    SL_YAML_BOOLEAN("preserve_host", struct sl_proxy_conf, preserve_host),
};

static const struct sl_yaml_field log_fields[] = {
    SL_YAML_FUNC("level", load_level),
    SL_YAML_FUNC("access_log", load_access_log),
    SL_YAML_FUNC("access_log_format", load_log_format),
};

static const struct sl_yaml_field top_fields[] = {
    SL_YAML_FUNC("workers", load_workers),
    SL_YAML_FUNC("listen", load_listen),
    SL_YAML_FUNC("upstreams", load_upstreams),
    SL_YAML_FUNC("routes", stash_routes),
    SL_YAML_SUB("limits", offsetof(struct sl_config, limits), limits_fields),
    SL_YAML_SUB("timeouts", offsetof(struct sl_config, timeouts), timeouts_fields),
    SL_YAML_SUB("proxy", offsetof(struct sl_config, proxy), proxy_fields),
    SL_YAML_SUB("log", offsetof(struct sl_config, log), log_fields),
    SL_YAML_FUNC("plugin_paths", sl_config_plugin_paths_load),
    SL_YAML_FUNC("plugins", load_plugins),
    SL_YAML_FUNC("shared_dicts", sl_config_shdicts_load),
    SL_YAML_FUNC("admin", sl_config_admin_load),
    SL_YAML_BOOLEAN("watch", struct sl_config, watch),
};

static struct sl_config *new_config(void)
{
    struct sl_config *cfg = sl_config_xcalloc(1, sizeof *cfg);

    cfg->workers = ncpu();
    cfg->limits = (struct sl_limits_conf){
        .max_request_line = 8192, .max_header_size = 32768,
        .max_headers = 100, .max_body_size = 1073741824, .max_body_buffer = 1024 * 1024,
    };
    cfg->timeouts = (struct sl_timeouts_conf){
        .client_header_ms = 10000, .client_body_ms = 60000, .keepalive_ms = 60000,
        .send_ms = 60000, .drain_ms = 10000,
    };
    cfg->proxy = (struct sl_proxy_conf){
        .x_forwarded_for = true, .x_forwarded_proto = true, .x_forwarded_host = true,
        .via = true, .preserve_host = true,
    };
    cfg->log = (struct sl_log_conf){
        .level = SL_LOG_INFO, .access_log = NULL, .access_log_format = SL_ACCESS_LOG_TEXT,
    };
    sl_config_plugins_init(cfg);
    return cfg;
}

static void load_document(struct loader *ld)
{
    yaml_node_t *root = ld->y.root;

    if (root != NULL) {
        sl_yaml_walk(&ld->y, root, "", top_fields, SL_YAML_COUNTOF(top_fields), ld->cfg);
        if (root->type != YAML_MAPPING_NODE)
            return;
    }
    if (is_absent_or_empty(ld->listen))
        sl_yaml_error(&ld->y, ld->listen ? ld->listen : root, "no listeners defined");
    if (is_absent_or_empty(ld->upstreams))
        sl_yaml_error(&ld->y, ld->upstreams ? ld->upstreams : root, "no upstreams defined");
    load_routes(ld);
}

/* --- public ------------------------------------------------------------------ */

struct sl_config *sl_config_load(const char *path, struct sl_config_errors *errs)
{
    struct loader ld = { .y.user = &ld };

    if (sl_yaml_open(&ld.y, path, errs) < 0) {
        sl_yaml_close(&ld.y, errs);
        return NULL;
    }
    ld.cfg = new_config();
    ld.cfg->path = sl_config_xstrdup(path);
    ld.cfg->source_hash = ld.y.hash;
    load_document(&ld);
    if (sl_yaml_close(&ld.y, errs) > 0) {
        sl_config_free(ld.cfg);
        return NULL;
    }
    return ld.cfg;
}

int sl_config_file_hash(const char *path, uint64_t *hash)
{
    return sl_yaml_hash_file(path, hash);
}

static bool quick_backends(struct sl_upstream_conf *u, const char *const *tos, size_t ntos,
                           struct sl_config_errors *errs)
{
    char reason[256];
    bool ok = true;

    if (ntos == 0) {
        sl_config_errors_add(errs, "--to: at least one backend is required");
        return false;
    }
    u->backends = sl_config_xcalloc(ntos, sizeof *u->backends);
    for (; u->nbackends < ntos; u->nbackends++) {
        struct sl_backend_conf *b = &u->backends[u->nbackends];

        b->weight = 1;
        if (sl_addr_parse(tos[u->nbackends], NULL, &b->addr, reason, sizeof reason) < 0) {
            sl_config_errors_add(errs, "--to: invalid address '%s': %s", tos[u->nbackends], reason);
            ok = false;
        }
    }
    return ok;
}

struct sl_config *sl_config_quick(const char *listen, const char *const *tos,
                                  size_t ntos, int workers,
                                  struct sl_config_errors *errs)
{
    struct sl_config *cfg = new_config();
    char reason[256];
    bool ok = true;

    if (workers > 0)
        cfg->workers = workers;
    cfg->listeners = sl_config_xcalloc(1, sizeof *cfg->listeners);
    cfg->nlisteners = 1;
    cfg->listeners[0].backlog = DEFAULT_BACKLOG;
    if (listen == NULL) {
        sl_config_errors_add(errs, "--listen: missing address");
        ok = false;
    } else if (sl_addr_parse(listen, "0.0.0.0", &cfg->listeners[0].addr, reason, sizeof reason) < 0) {
        sl_config_errors_add(errs, "--listen: invalid address '%s': %s", listen, reason);
        ok = false;
    }
    cfg->upstreams = sl_config_xcalloc(1, sizeof *cfg->upstreams);
    cfg->nupstreams = 1;
    init_upstream(&cfg->upstreams[0], "default");
    if (!quick_backends(&cfg->upstreams[0], tos, ntos, errs))
        ok = false;
    add_catch_all(cfg);
    if (!ok) {
        sl_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void sl_config_free(struct sl_config *cfg)
{
    if (cfg == NULL)
        return;
    sl_config_plugins_fini(cfg);
    sl_config_shdicts_fini(cfg);
    sl_config_admin_fini(&cfg->admin);
    for (size_t i = 0; i < cfg->nlisteners; i++)
        free(cfg->listeners[i].addr.text);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct sl_upstream_conf *u = &cfg->upstreams[i];
        for (size_t j = 0; j < u->nbackends; j++)
            free(u->backends[j].addr.text);
        free(u->backends);
        free(u->name);
        free(u->balance);
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].host);
        free(cfg->routes[i].path);
        free(cfg->routes[i].upstream_name);
    }
    free(cfg->listeners);
    free(cfg->upstreams);
    free(cfg->routes);
    free(cfg->log.access_log);
    free(cfg->path);
    free(cfg);
}

void sl_config_errors_fini(struct sl_config_errors *errs)
{
    for (size_t i = 0; i < errs->n; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    errs->msgs = NULL;
    errs->n = 0;
}
