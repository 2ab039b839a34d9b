/* Loading the plugins a configuration names, whatever their kind. */
#ifndef SL_PLUGIN_LOAD_H
#define SL_PLUGIN_LOAD_H

#include <stddef.h>

struct sl_gen;

/* Loads every plugin instance of g's configuration: the global ones first,
 * then each route's, in file order, into g->plugins. A plugin is found by
 * name (or its entry's file) in the plugin_paths, relative to the
 * configuration file's directory (plugin_find.h): NAME.lua or
 * NAME/handler.lua is a Lua plugin (lua_plugin.h), NAME.so a native one
 * (plugin_native.h); an entry's sha256 pins the file's content. Each instance
 * gets its per-request context slot and per-worker statistics. Returns 0,
 * or -1 with a precise message in err (file:line where one is known);
 * what was loaded stays in g for gen's cleanup. */
int sl_plugins_load(struct sl_gen *g, char *err, size_t errlen);

#endif
