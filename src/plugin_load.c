#include "plugin_load.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "gen.h"
#include "lua_plugin.h"
#include "plugin_find.h"
#include "plugin_native.h"
#include "sha256.h"

/* What the admin API shows about a loaded instance: when, and which bytes
 * (the file hashed right after the kind loaded it). */
static void stamp(struct sl_plugin *p)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    p->loaded_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (p->source != NULL && p->sha256[0] == '\0')
        sl_sha256_file(p->source, p->sha256);
}

/* A Lua file pinned by sha256 is hashed here, before it is read for
 * loading (a native object is checked on the very bytes it is loaded
 * from, in plugin_native.c). */
static int check_pin(const struct sl_plugin_conf *pc, const char *path, const char *where,
                     char *err, size_t errlen)
{
    char hex[SL_SHA256_HEX_LEN + 1];
    if (sl_sha256_file(path, hex) < 0) {
        snprintf(err, errlen, "%s: plugin %s: %s: %s", where, pc->name, path, strerror(errno));
        return -1;
    }
    if (strcmp(hex, pc->sha256) != 0) {
        snprintf(err, errlen, "%s: plugin %s: %s: sha256 mismatch: the file's SHA-256 is %s, "
                 "the configuration pins %s", where, pc->name, path, hex, pc->sha256);
        return -1;
    }
    return 0;
}

/* Finds the instance's file (plugin_find.c) and loads it with its kind.
 * Messages carry the configuration position of the instance, or (Lua
 * code) the file and line at fault. */
static int load_one(struct sl_gen *g, const struct sl_plugin_conf *pc, char *err, size_t errlen)
{
    const struct sl_config *cfg = g->cfg;
    struct sl_plugin *p = NULL;
    struct sl_plugin_file f;
    char where[PATH_MAX + 64], why[4096];
    snprintf(where, sizeof where, "%s:%d:%d", cfg->path ? cfg->path : "-", pc->line, pc->col);
    int rc = sl_plugin_find(pc, (const char *const *)cfg->plugin_paths, cfg->nplugin_paths,
                            cfg->path, &f, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "%s: plugin %s: %s", where, pc->name, why);
        return -1;
    }
    if (f.kind == SL_PLUGIN_NATIVE) {
        rc = sl_native_plugin_load(pc, f.path, cfg->path, &p, why, sizeof why);
    } else {
        if (pc->sha256 != NULL && check_pin(pc, f.path, where, err, errlen) < 0)
            return -1;
        rc = sl_lua_plugin_load(pc, f.path, cfg->path, &p, why, sizeof why);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    stamp(p);
    p->slot = g->nplugins;
    g->plugins[g->nplugins++] = p;
    return 0;
}

int sl_plugins_load(struct sl_gen *g, char *err, size_t errlen)
{
    const struct sl_config *cfg = g->cfg;
    size_t total = cfg->nplugins;
    for (size_t i = 0; i < cfg->nroutes; i++)
        total += cfg->routes[i].nplugins;
    if (total == 0)
        return 0;
    g->plugins = calloc(total, sizeof *g->plugins);
    if (g->plugins == NULL)
        return -1;
    for (size_t i = 0; i < cfg->nplugins; i++)
        if (load_one(g, &cfg->plugins[i], err, errlen) < 0)
            return -1;
    g->nglobal_plugins = g->nplugins;
    for (size_t r = 0; r < cfg->nroutes; r++)
        for (size_t i = 0; i < cfg->routes[r].nplugins; i++)
            if (load_one(g, &cfg->routes[r].plugins[i], err, errlen) < 0)
                return -1;
    return 0;
}
