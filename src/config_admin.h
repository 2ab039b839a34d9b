/* The admin: section of the configuration: where the admin listener binds
 * and its bearer token. Internal to the configuration loader; the type is
 * struct sl_admin_conf in config-t.h. */
#ifndef SL_CONFIG_ADMIN_H
#define SL_CONFIG_ADMIN_H

#include <stdbool.h>
#include <yaml.h>

#include "config-t.h"
#include "config_yaml.h"

/* The address the admin listener binds when admin: gives none. */
#define SL_ADMIN_DEFAULT_LISTEN "127.0.0.1:9901"

/* Field callback for the top-level admin key (base: the struct sl_config).
 * An empty value or a mapping of listen and token; either way the admin
 * listener is enabled, on 127.0.0.1:9901 unless listen says otherwise
 * (":port" and "port" mean 127.0.0.1). A token is 16 to 256 visible ASCII
 * characters. A listen address that is not loopback without a token is
 * refused: "FILE:LINE:COL: admin: a token is required ...". */
void sl_config_admin_load(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base);

/* Frees what admin owns and leaves it disabled. */
void sl_config_admin_fini(struct sl_admin_conf *admin);

#endif
