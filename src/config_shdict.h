/* The shared_dicts: section of the configuration: the shared dictionaries
 * (shdict.h) a generation declares. Internal to the configuration loader;
 * the type is struct sl_shdict_conf in config-t.h. */
#ifndef SL_CONFIG_SHDICT_H
#define SL_CONFIG_SHDICT_H

#include <yaml.h>

#include "config-t.h"
#include "config_yaml.h"

/* Field callback for the top-level shared_dicts key (base: the struct
 * sl_config): a mapping of names (sl_config_is_valid_name) to mappings
 * with a required size, 8k..64g. Appends one sl_shdict_conf per valid
 * entry to cfg->shared_dicts; problems are recorded at their position
 * ("shared_dicts.NAME: missing required key 'size'", "duplicate key",
 * "invalid shared dict name", an out-of-range size). */
void sl_config_shdicts_load(struct sl_yaml *y, yaml_node_t *map, const char *path, void *base);

/* Frees cfg's shared dict entries and leaves none. */
void sl_config_shdicts_fini(struct sl_config *cfg);

#endif
