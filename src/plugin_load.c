#include "plugin_load.h"

#include <stdio.h>
#include <stdlib.h>

#include "gen.h"

/* Lua and native loaders join here as they land; until then a configured
 * plugin is a clear error rather than a silent no-op. */
int sl_plugins_load(struct sl_gen *g, char *err, size_t errlen)
{
    const struct sl_config *cfg = g->cfg;
    size_t total = cfg->nplugins;
    for (size_t i = 0; i < cfg->nroutes; i++)
        total += cfg->routes[i].nplugins;
    if (total == 0)
        return 0;
    const struct sl_plugin_conf *pc = cfg->nplugins ? &cfg->plugins[0] : NULL;
    for (size_t i = 0; pc == NULL && i < cfg->nroutes; i++)
        if (cfg->routes[i].nplugins)
            pc = &cfg->routes[i].plugins[0];
    snprintf(err, errlen, "%s:%d:%d: plugin %s: plugin loading is not available in this build",
             cfg->path ? cfg->path : "-", pc->line, pc->col, pc->name);
    return -1;
}
