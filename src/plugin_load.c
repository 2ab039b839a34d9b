#include "plugin_load.h"

#include <stdio.h>
#include <stdlib.h>

#include "gen.h"
#include "lua_plugin.h"

/* Finds the plugin by kind: a Lua file first; native objects join here.
 * Messages carry the configuration position of the instance. */
static int load_one(struct sl_gen *g, const struct sl_plugin_conf *pc, char *err, size_t errlen)
{
    const struct sl_config *cfg = g->cfg;
    struct sl_plugin *p = NULL;
    char why[768];
    int rc = sl_lua_plugin_load(pc, (const char *const *)cfg->plugin_paths, cfg->nplugin_paths,
                                cfg->path, &p, why, sizeof why);
    if (rc == SL_LUA_NOT_FOUND) {
        snprintf(err, errlen, "%s:%d:%d: plugin %s: not found: %s", cfg->path ? cfg->path : "-",
                 pc->line, pc->col, pc->name, why);
        return -1;
    }
    if (rc != 0) {
        /* Lua's own messages already name the file and line at fault. */
        snprintf(err, errlen, "%s", why);
        return -1;
    }
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
