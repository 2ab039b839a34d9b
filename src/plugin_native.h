/* Native plugins: the "native" kind of the plugin chain (plugin.h). A
 * native plugin is a shared object built against the public ABI header
 * plugins-native/include/sluice_plugin.h (docs/PLUGINS.md), found as
 * NAME.so in a plugin path (plugin_find.h).
 *
 * Loading reads the file once, names it by its SHA-256, writes a private
 * copy of those bytes (one per distinct content, in a directory of this
 * process's own under $XDG_RUNTIME_DIR, $TMPDIR or /tmp, removed at exit)
 * and dlopens the copy with RTLD_NOW | RTLD_LOCAL: glibc returns the image
 * it has for a path and inode, so a plugin rebuilt in place would
 * otherwise keep running its old code after a reload. Instances whose
 * files have the same content share one loaded copy, counted; the last
 * instance released closes and removes it. */
#ifndef SL_PLUGIN_NATIVE_H
#define SL_PLUGIN_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "config-t.h"
#include "plugin.h"
#include "plugin_native_module.h"   /* sl_native_counts and friends */

/* The native kind in full: hooks get the worker's state (worker_init),
 * the request's state goes to request_free at the request's end. An
 * instance gets it, or a leaner twin of the same name when its module has
 * no worker_init or no request_free (so a module without request_free
 * costs the chain nothing at the request's end): tell native instances by
 * kind->name, not by this address. */
extern const struct sl_plugin_kind sl_native_kind;

/* Loads the native plugin file path (as found in the plugin paths) for
 * the instance conf: reads it, checks conf->sha256 when set against the
 * bytes read, loads their private copy (or takes another reference to the
 * copy already loaded for that content), checks the entry function
 * sluice_plugin_init, the descriptor it returns (ABI major equal to the
 * host's; any minor; name equal to conf->name; priority in range), then
 * runs the plugin's config_create with conf's config tree.
 *
 * Every failure leaves nothing loaded and returns -1 with err holding
 * complete lines: "CONFIG_FILE:LINE:COL: plugin NAME: PATH: message" for
 * the file (sha256 mismatch, dlopen error, no entry symbol, ABI mismatch,
 * a descriptor that does not fit), and the plugin's own config_create
 * reports ("CONFIG_FILE:LINE:COL: plugin NAME: config.a.b: message").
 * config_file may be NULL (then no position).
 *
 * On success *out is a new plugin (free with sl_plugin_free): name
 * conf->name, priority conf->priority when the config sets one, else the
 * descriptor's, phases from the hooks it sets, body from its body bits and
 * body hooks, on_error from conf, conf borrowed (it must outlive the
 * plugin), source path, sha256 the content's, and worker slots for
 * sl_lua_nworkers() workers. Returns 0. */
int sl_native_plugin_load(const struct sl_plugin_conf *conf, const char *path,
                          const char *config_file, struct sl_plugin **out, char *err,
                          size_t errlen);

#endif
