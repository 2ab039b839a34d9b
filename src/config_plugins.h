/* The plugin sections of the configuration: plugin_paths, the global and
 * per-route plugins lists, and the value tree of each instance's config.
 * Internal to the configuration loader; the types are in config-t.h, and
 * sl_value_free / sl_value_get in config.h. */
#ifndef SL_CONFIG_PLUGINS_H
#define SL_CONFIG_PLUGINS_H

#include <stddef.h>
#include <yaml.h>

#include "config-t.h"
#include "config_yaml.h"

/* Sets the defaults of cfg's plugin settings: plugin_paths "plugins-lua"
 * and "plugins-native", no plugins. cfg's plugin fields must be empty. */
void sl_config_plugins_init(struct sl_config *cfg);

/* Field callback for the top-level plugin_paths (base: the struct
 * sl_config): a list of non-empty strings without repeats, which replaces
 * the default list. Paths are kept as written. */
void sl_config_plugin_paths_load(struct sl_yaml *y, yaml_node_t *val, const char *path,
                                 void *base);

/* Reads the plugins list seq found at path ("plugins", "routes[0].plugins")
 * into *list and *n, which must be empty: each item is a plugin name or a
 * mapping of name, kind, file, sha256, enabled, priority, on_error,
 * timeout_ms, memory_limit_mb and config. Problems are recorded in y,
 * duplicate names included; an item with problems is still stored,
 * possibly without a name. */
void sl_config_plugins_load(struct sl_yaml *y, yaml_node_t *seq, const char *path,
                            struct sl_plugin_conf **list, size_t *n);

/* Frees cfg's plugin_paths, its global plugins and the plugins of each of
 * its routes, and empties those fields. The routes array itself stays. */
void sl_config_plugins_fini(struct sl_config *cfg);

#endif
