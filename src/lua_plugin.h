/* Lua plugins: the "lua" kind of the plugin chain (plugin.h).
 *
 * A Lua plugin is <dir>/<name>.lua or <dir>/<name>/handler.lua in one of
 * the configured plugin paths (plugin_find.c finds it), returning a table (name, version, priority,
 * schema, body, phase functions; docs/PLUGINS.md). Loading reads the file
 * once and checks everything in a throwaway VM on the calling thread, so a
 * bad plugin or config fails the generation with a precise message. Each
 * worker later gets its own VM of the instance, created by that worker on
 * its first call (or ahead of time with sl_lua_plugin_prepare); a worker
 * only ever touches its own slot, so calls take no lock. A hook stopped
 * at its memory limit gets its worker's VM closed there and then: that
 * worker's next call of the instance opens a fresh one, which loads the
 * file and runs init again (a timeout keeps the VM). */
#ifndef SL_LUA_PLUGIN_H
#define SL_LUA_PLUGIN_H

#include <stddef.h>

#include "config-t.h"
#include "plugin.h"

extern const struct sl_plugin_kind sl_lua_kind;

/* Loads the Lua plugin file path (found by sl_plugin_find: NAME.lua or
 * NAME/handler.lua in a plugin path) for the instance conf: reads it and
 * loads it in a throwaway VM: the code compiles, returns a valid plugin
 * table, conf's config passes the plugin's schema, init(conf) succeeds.
 * Error messages read "FILE:LINE: message" (code), "FILE: plugin ...:
 * message" (the plugin table, the schema) or "CONFIG_FILE:LINE:COL: plugin
 * NAME: config.a.b: message" (config values; one line per problem;
 * config_file may be NULL).
 *
 * On success *out is a new plugin (free with sl_plugin_free): name
 * conf->name, priority conf->priority when the config sets one, else the
 * file's, phases and body from the file, on_error from conf, conf
 * borrowed (it must outlive the plugin), per-worker VM slots for
 * sl_lua_nworkers() workers. sl_lua_init must have been called (it is
 * called with one worker per CPU if not).
 *
 * Returns 0, or -1 with err set. */
int sl_lua_plugin_load(const struct sl_plugin_conf *conf, const char *path,
                       const char *config_file, struct sl_plugin **out, char *err,
                       size_t errlen);

/* Creates worker's VM of the Lua plugin p now rather than at its first
 * call (e.g. while building a generation, before it is published; the
 * worker must not be running p yet). Returns 0 (also when it exists), or
 * -1 with a message in err. */
int sl_lua_plugin_prepare(struct sl_plugin *p, int worker, char *err, size_t errlen);

/* Re-reads the file p was loaded from: 1 when its content differs from
 * what was loaded (or it cannot be read any more), 0 when it is the same.
 * For reloads: an unchanged plugin need not be loaded again. */
int sl_lua_plugin_has_changed(const struct sl_plugin *p);

/* The number of requests that hold a per-request ctx table in worker's
 * VM of p (0 when it has none); for leak checks. */
int sl_lua_plugin_live_requests(struct sl_plugin *p, int worker);

#endif
