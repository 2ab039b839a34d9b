/* Plugin sections of sluice.yaml: where plugins load from (plugin_paths),
 * which instances run (plugins, globally and per route), and each
 * instance's own config turned into a struct sl_value tree. Plugins are not
 * loaded here: names are only checked for their syntax, and config only for
 * being a mapping; each plugin's schema validates its config later. */
#include "config.h"
#include "config_plugins.h"
#include "config_values.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS      50
#define DEFAULT_MEMORY_LIMIT_MB 64
#define PRIORITY_MAX            1000000

/* Anchors and aliases let a small file describe a huge tree (each alias
 * copies its anchor's node here) or a cyclic one (an alias inside its own
 * anchor); both are refused rather than followed. The count is per file. */
#define VALUE_DEPTH_MAX 64
#define VALUE_NODES_MAX 1000000

static const char *const default_paths[] = { "plugins-lua", "plugins-native" };

static const char *text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A "\0" escape in a quoted scalar would silently cut a name or a path:
 * refused, with its own message since the value cannot be shown past it. */
static bool has_nul(struct sl_yaml *y, const yaml_node_t *n, const char *path)
{
    if (strlen(text(n)) == n->data.scalar.length)
        return false;
    sl_yaml_error(y, n, "%s: must not contain a NUL character", path);
    return true;
}

static bool is_plain_empty(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0
        && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static void set_position(struct sl_value *v, const yaml_node_t *n)
{
    v->line = (int)n->start_mark.line + 1;
    v->col = (int)n->start_mark.column + 1;
}

/* --- sl_value -------------------------------------------------------------- */

void sl_value_free(struct sl_value *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++) {
        sl_value_free(&v->items[i]);
        if (v->keys != NULL)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->s);
    memset(v, 0, sizeof *v);
}

const struct sl_value *sl_value_get(const struct sl_value *map, const char *key)
{
    if (map == NULL || map->kind != SL_VALUE_MAP || key == NULL)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return &map->items[i];
    return NULL;
}

/* --- scalars: the YAML 1.2 core schema (spec 1.2.2, §10.3.2) ---------------- */

static bool is_one_of(const char *s, const char *a, const char *b, const char *c)
{
    return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

static bool all_digits(const char *s, int base)
{
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        if (base == 16 ? !isxdigit((unsigned char)*s)
            : base == 8 ? (*s < '0' || *s > '7') : !isdigit((unsigned char)*s))
            return false;
    }
    return true;
}

/* An integer beyond int64 is still a number, not text: it becomes a
 * double (rounded), as JSON parsers commonly do. */
static bool int_value(const char *s, struct sl_value *v)
{
    const char *p = s;
    int base = 10;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        p = s + 2;
    } else if (*p == '+' || *p == '-') {
        p++;
    }
    if (!all_digits(p, base))
        return false;
    errno = 0;
    v->kind = SL_VALUE_INT;
    if (base == 10) {
        v->i = (int64_t)strtoll(s, NULL, 10);
        if (errno == ERANGE) {
            v->kind = SL_VALUE_NUMBER;
            v->d = strtod(s, NULL);
        }
        return true;
    }
    unsigned long long u = strtoull(p, NULL, base);
    if (errno == ERANGE || u > INT64_MAX) {
        v->kind = SL_VALUE_NUMBER;
        for (v->d = 0; *p; p++)
            v->d = v->d * base + (isdigit((unsigned char)*p) ? *p - '0'
                                  : tolower((unsigned char)*p) - 'a' + 10);
    } else {
        v->i = (int64_t)u;
    }
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?.inf, .nan */
static bool float_value(const char *s, double *d)
{
    const char *p = s + (*s == '+' || *s == '-');
    size_t whole, frac = 0;

    if (is_one_of(p, ".inf", ".Inf", ".INF")) {
        *d = *s == '-' ? -INFINITY : INFINITY;
        return true;
    }
    if (p == s && is_one_of(p, ".nan", ".NaN", ".NAN")) {
        *d = NAN;
        return true;
    }
    p += whole = strspn(p, "0123456789");
    if (*p == '.') {
        p++;
        p += frac = strspn(p, "0123456789");
    }
    if (whole == 0 && frac == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p += 1 + (p[1] == '+' || p[1] == '-');
        if (strspn(p, "0123456789") == 0)
            return false;
        p += strspn(p, "0123456789");
    }
    if (*p != '\0')
        return false;
    *d = strtod(s, NULL);
    return true;
}

/* Only plain scalars are resolved: a quoted one is always a string. The
 * YAML 1.1 booleans yes/no/on/off stay strings, so a plugin sees "no" (a
 * country code, say) as written. */
static void scalar_value(const yaml_node_t *n, struct sl_value *v)
{
    const char *s = text(n);
    size_t len = n->data.scalar.length;

    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (len == 0 || strcmp(s, "~") == 0 || is_one_of(s, "null", "Null", "NULL")) {
            v->kind = SL_VALUE_NULL;
            return;
        }
        if (is_one_of(s, "true", "True", "TRUE") || is_one_of(s, "false", "False", "FALSE")) {
            v->kind = SL_VALUE_BOOL;
            v->b = tolower((unsigned char)s[0]) == 't';
            return;
        }
        if (int_value(s, v))
            return;
        if (float_value(s, &v->d)) {
            v->kind = SL_VALUE_NUMBER;
            return;
        }
    }
    v->kind = SL_VALUE_STRING;
    v->s = memcpy(sl_config_xcalloc(1, len + 1), s, len);
    v->len = len;
}

/* --- trees --------------------------------------------------------------------- */

struct tree {
    struct sl_yaml *y;
    const char *path;           /* borrowed: the config's own, for limit messages */
    bool stopped;               /* a limit was hit: build no more */
};

static void convert(struct tree *t, const yaml_node_t *n, const char *path, int depth,
                    struct sl_value *v);

static void convert_list(struct tree *t, const yaml_node_t *n, const char *path, int depth,
                         struct sl_value *v)
{
    char sub[SL_YAML_PATH_LEN];

    v->kind = SL_VALUE_LIST;
    v->items = sl_config_xcalloc(sl_yaml_count(n), sizeof *v->items);
    for (; v->n < sl_yaml_count(n) && !t->stopped; v->n++) {
        snprintf(sub, sizeof sub, "%s[%zu]", path, v->n);
        convert(t, sl_yaml_item(t->y, n, v->n), sub, depth + 1, &v->items[v->n]);
    }
}

/* Keys are kept in file order; a repeated key is an error, as everywhere
 * else in the file. */
static void convert_map(struct tree *t, const yaml_node_t *n, const char *path, int depth,
                        struct sl_value *v)
{
    const yaml_node_pair_t *p;
    char sub[SL_YAML_PATH_LEN];

    v->kind = SL_VALUE_MAP;
    v->items = sl_config_xcalloc(sl_yaml_count(n), sizeof *v->items);
    v->keys = sl_config_xcalloc(sl_yaml_count(n), sizeof *v->keys);
    for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top && !t->stopped; p++) {
        yaml_node_t *key = yaml_document_get_node(&t->y->doc, p->key);

        if (!sl_yaml_is_good_key(t->y, n, p, path))
            continue;
        v->keys[v->n] = sl_config_xstrdup(text(key));
        sl_yaml_join(sub, path, text(key));
        convert(t, yaml_document_get_node(&t->y->doc, p->value), sub, depth + 1,
                &v->items[v->n++]);
    }
}

static void convert(struct tree *t, const yaml_node_t *n, const char *path, int depth,
                    struct sl_value *v)
{
    set_position(v, n);
    if (depth > VALUE_DEPTH_MAX) {
        sl_yaml_error(t->y, n, "%s: nested deeper than %d levels", t->path, VALUE_DEPTH_MAX);
        t->stopped = true;
        return;
    }
    if (t->y->nvalues >= VALUE_NODES_MAX) {
        if (t->y->nvalues++ == VALUE_NODES_MAX)     /* reported once per file */
            sl_yaml_error(t->y, n, "%s: plugin configs hold more than %d values in all",
                          t->path, VALUE_NODES_MAX);
        t->stopped = true;
        return;
    }
    t->y->nvalues++;
    if (n->type == YAML_SCALAR_NODE) {
        scalar_value(n, v);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        convert_list(t, n, path, depth, v);
    } else {
        convert_map(t, n, path, depth, v);
    }
}

/* --- one plugin instance ------------------------------------------------------- */

static bool set_name(struct sl_yaml *y, yaml_node_t *val, const char *path,
                     struct sl_plugin_conf *pc)
{
    char buf[80];

    if (has_nul(y, val, path))
        return false;
    if (!sl_config_is_valid_name(text(val))) {
        sl_yaml_error(y, val, "%s: invalid plugin name %s: use 1 to %d letters, digits, '-' or '_'",
                      path, sl_yaml_describe(val, buf, sizeof buf), SL_CONFIG_NAME_MAX);
        return false;
    }
    pc->name = sl_config_xstrdup(text(val));
    return true;
}

static void plugin_name(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    if (val->type != YAML_SCALAR_NODE || is_plain_empty(val))
        sl_yaml_expected(y, val, path, "a plugin name");
    else
        set_name(y, val, path, base);
}

static void plugin_on_error(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char *const names[] = { "fail", "continue" };
    struct sl_plugin_conf *pc = base;
    size_t i;

    if (sl_yaml_pick(y, val, path, names, SL_YAML_COUNTOF(names), &i))
        pc->on_error = (enum sl_on_error)i;
}

static void plugin_config(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_plugin_conf *pc = base;
    struct tree t = { .y = y, .path = path };

    if (!sl_yaml_is_type(y, val, YAML_MAPPING_NODE, path, "a mapping"))
        return;
    sl_value_free(&pc->config);
    convert(&t, val, path, 0, &pc->config);
}

static void plugin_kind(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char *const names[] = { "lua", "native" };
    struct sl_plugin_conf *pc = base;
    size_t i;

    if (sl_yaml_pick(y, val, path, names, SL_YAML_COUNTOF(names), &i))
        pc->kind = i == 0 ? SL_PLUGIN_LUA : SL_PLUGIN_NATIVE;
}

/* A path below one of the plugin paths; whether it stays inside them is
 * checked when the plugin is looked up (plugin_find.c), where symlinks can
 * be resolved. */
static void plugin_file(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char what[] = "a file path relative to the plugin paths";
    struct sl_plugin_conf *pc = base;
    const char *s = sl_yaml_scalar(y, val, path, what);

    if (s == NULL || has_nul(y, val, path))
        return;
    if (s[0] == '\0' || s[0] == '/') {
        sl_yaml_expected(y, val, path, what);
        return;
    }
    free(pc->file);
    pc->file = sl_config_xstrdup(s);
}

static void plugin_sha256(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    static const char what[] = "a SHA-256 digest (64 hex digits)";
    struct sl_plugin_conf *pc = base;
    const char *s = sl_yaml_scalar(y, val, path, what);

    if (s == NULL)
        return;
    if (val->data.scalar.length != 64 || strspn(s, "0123456789abcdefABCDEF") != 64) {
        sl_yaml_expected(y, val, path, what);
        return;
    }
    free(pc->sha256);
    pc->sha256 = sl_config_xstrdup(s);
    for (char *c = pc->sha256; *c; c++)
        *c = (char)tolower((unsigned char)*c);
}

static const struct sl_yaml_field plugin_fields[] = {
    SL_YAML_FUNC("name", plugin_name),
    SL_YAML_FUNC("kind", plugin_kind),
    SL_YAML_FUNC("file", plugin_file),
    SL_YAML_FUNC("sha256", plugin_sha256),
    SL_YAML_BOOLEAN("enabled", struct sl_plugin_conf, enabled),
    SL_YAML_NUM("priority", SL_YAML_INT, struct sl_plugin_conf, priority,
                -PRIORITY_MAX, PRIORITY_MAX),
    SL_YAML_FUNC("on_error", plugin_on_error),
    SL_YAML_NUM("timeout_ms", SL_YAML_INT, struct sl_plugin_conf, timeout_ms, 1, 60000),
    SL_YAML_NUM("memory_limit_mb", SL_YAML_INT, struct sl_plugin_conf, memory_limit_mb, 1, 4096),
    SL_YAML_FUNC("config", plugin_config),
};

static void init_plugin(struct sl_plugin_conf *pc, const yaml_node_t *item)
{
    pc->enabled = true;
    pc->on_error = SL_ON_ERROR_FAIL;
    pc->timeout_ms = DEFAULT_TIMEOUT_MS;
    pc->memory_limit_mb = DEFAULT_MEMORY_LIMIT_MB;
    pc->config.kind = SL_VALUE_MAP;
    set_position(&pc->config, item);
    pc->line = pc->config.line;
    pc->col = pc->config.col;
}

/* A bare name is shorthand for a mapping with only that name. */
static void load_plugin(struct sl_yaml *y, yaml_node_t *item, const char *path,
                        struct sl_plugin_conf *pc)
{
    init_plugin(pc, item);
    if (item->type == YAML_SCALAR_NODE && !is_plain_empty(item)) {
        set_name(y, item, path, pc);
        return;
    }
    if (item->type != YAML_MAPPING_NODE) {
        sl_yaml_expected(y, item, path, "a plugin name or a mapping");
        return;
    }
    sl_yaml_walk(y, item, path, plugin_fields, SL_YAML_COUNTOF(plugin_fields), pc);
    if (sl_yaml_get(y, item, "name") == NULL)
        sl_yaml_error(y, item, "%s: missing required key 'name'", path);
    pc->has_priority = sl_yaml_get(y, item, "priority") != NULL;
}

void sl_config_plugins_load(struct sl_yaml *y, yaml_node_t *seq, const char *path,
                            struct sl_plugin_conf **list, size_t *n)
{
    char sub[SL_YAML_PATH_LEN];

    if (!sl_yaml_is_type(y, seq, YAML_SEQUENCE_NODE, path, "a list"))
        return;
    *list = sl_config_xcalloc(sl_yaml_count(seq), sizeof **list);
    for (size_t i = 0; i < sl_yaml_count(seq); i++) {
        yaml_node_t *item = sl_yaml_item(y, seq, i);
        struct sl_plugin_conf *pc = &(*list)[(*n)++];

        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        load_plugin(y, item, sub, pc);
        for (size_t j = 0; j < i && pc->name != NULL; j++) {
            if ((*list)[j].name != NULL && strcmp((*list)[j].name, pc->name) == 0) {
                sl_yaml_error(y, item, "%s: duplicate plugin '%s' (also %s[%zu])", sub,
                              pc->name, path, j);
                break;
            }
        }
    }
}

/* --- plugin_paths and the whole section ----------------------------------------- */

static void free_paths(struct sl_config *cfg)
{
    for (size_t i = 0; i < cfg->nplugin_paths; i++)
        free(cfg->plugin_paths[i]);
    free(cfg->plugin_paths);
    cfg->plugin_paths = NULL;
    cfg->nplugin_paths = 0;
}

void sl_config_plugins_init(struct sl_config *cfg)
{
    size_t n = SL_YAML_COUNTOF(default_paths);

    cfg->plugin_paths = sl_config_xcalloc(n, sizeof *cfg->plugin_paths);
    for (size_t i = 0; i < n; i++)
        cfg->plugin_paths[i] = sl_config_xstrdup(default_paths[i]);
    cfg->nplugin_paths = n;
}

/* A repeat is refused like a repeated listener: harmless, but a sign of a
 * mistake (a path meant to be different). */
static bool is_repeat(struct sl_yaml *y, const yaml_node_t *seq, size_t i, const char *path,
                      const char *sub)
{
    yaml_node_t *item = sl_yaml_item(y, seq, i);

    for (size_t j = 0; j < i; j++) {
        yaml_node_t *o = sl_yaml_item(y, seq, j);
        if (o->type == YAML_SCALAR_NODE && strcmp(text(o), text(item)) == 0) {
            sl_yaml_error(y, item, "%s: duplicate of %s[%zu]", sub, path, j);
            return true;
        }
    }
    return false;
}

void sl_config_plugin_paths_load(struct sl_yaml *y, yaml_node_t *val, const char *path,
                                 void *base)
{
    static const char what[] = "a directory path";
    struct sl_config *cfg = base;
    char sub[SL_YAML_PATH_LEN];

    if (!sl_yaml_is_type(y, val, YAML_SEQUENCE_NODE, path, "a list"))
        return;
    free_paths(cfg);
    cfg->plugin_paths = sl_config_xcalloc(sl_yaml_count(val), sizeof *cfg->plugin_paths);
    for (size_t i = 0; i < sl_yaml_count(val); i++) {
        yaml_node_t *item = sl_yaml_item(y, val, i);
        const char *s;

        snprintf(sub, sizeof sub, "%s[%zu]", path, i);
        if ((s = sl_yaml_scalar(y, item, sub, what)) == NULL)
            continue;
        if (s[0] == '\0')
            sl_yaml_expected(y, item, sub, what);
        else if (!has_nul(y, item, sub) && !is_repeat(y, val, i, path, sub))
            cfg->plugin_paths[cfg->nplugin_paths++] = sl_config_xstrdup(s);
    }
}

static void free_plugins(struct sl_plugin_conf *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
        free(list[i].file);
        free(list[i].sha256);
        sl_value_free(&list[i].config);
    }
    free(list);
}

void sl_config_plugins_fini(struct sl_config *cfg)
{
    free_paths(cfg);
    free_plugins(cfg->plugins, cfg->nplugins);
    cfg->plugins = NULL;
    cfg->nplugins = 0;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        free_plugins(cfg->routes[i].plugins, cfg->routes[i].nplugins);
        cfg->routes[i].plugins = NULL;
        cfg->routes[i].nplugins = 0;
    }
}
