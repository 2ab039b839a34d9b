/* Finding a plugin's file, whatever its kind: by name (or the entry's
 * `file`) in the configured plugin paths, with the precedence rules of
 * docs/CONFIG.md, confined to those directories. */
#ifndef SL_PLUGIN_FIND_H
#define SL_PLUGIN_FIND_H

#include <limits.h>
#include <stddef.h>

#include "config-t.h"

/* sl_plugin_find's "no such plugin" result (not a crash of the lookup:
 * err lists the places looked at). */
#define SL_PLUGIN_NOT_FOUND 1

/* A plugin file found. */
struct sl_plugin_file {
    char path[PATH_MAX];            /* the file as found: DIR/NAME.so, DIR/NAME/handler.lua */
    enum sl_plugin_kind_pick kind;  /* SL_PLUGIN_LUA or SL_PLUGIN_NATIVE */
};

/* Finds the file of the instance pc in paths (each relative to
 * config_file's directory, or to the working directory when config_file
 * is NULL), in order. By name, a directory holding NAME.lua or
 * NAME/handler.lua (Lua) or NAME.so (native) answers; pc->kind restricts
 * the candidates to one kind, and one directory holding both kinds
 * without pc->kind is refused as ambiguous. With pc->file, the first
 * directory holding that path answers; the kind is pc->kind, else the
 * extension's (.lua, .so). The file's real path (symlinks resolved) must
 * lie inside one of the paths' real paths.
 *
 * Returns 0 with *out filled; SL_PLUGIN_NOT_FOUND with the places looked
 * at in err; -1 with the problem in err (ambiguous, outside the plugin
 * paths, unknown kind). Messages do not carry the "plugin NAME: " prefix
 * or the configuration position: the caller adds them. */
int sl_plugin_find(const struct sl_plugin_conf *pc, const char *const *paths, size_t npaths,
                   const char *config_file, struct sl_plugin_file *out, char *err,
                   size_t errlen);

#endif
