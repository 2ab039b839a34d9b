/* Loading and validating the YAML configuration. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include "config-t.h"

/* Reads and validates the YAML file at path. Every problem found is appended
 * to errs as "file:line:col: message" (unknown keys, wrong types, bad
 * addresses, out-of-range values, routes naming unknown upstreams, ...);
 * loading goes on after an error so one run reports them all. Returns the
 * config (owned; free with sl_config_free) or NULL when errs holds at least
 * one message. */
struct sl_config *sl_config_load(const char *path, struct sl_config_errors *errs);

/* Reads the file at path and computes the hash sl_config_load records in
 * source_hash, so a reload can tell whether the file changed without
 * parsing it. Returns 0, or -1 with errno set when it cannot be read. */
int sl_config_file_hash(const char *path, uint64_t *hash);

/* Builds the config of quick mode: one listener, one upstream "default" with
 * the given backends (weight 1) and one catch-all route, every other setting
 * at its default (plugin_paths as well; no plugins). workers <= 0 means one
 * per core. Errors (bad addresses) go to errs as "--listen: message" /
 * "--to: message". Returns the config (owned; free with sl_config_free) or
 * NULL. */
struct sl_config *sl_config_quick(const char *listen, const char *const *tos,
                                  size_t ntos, int workers,
                                  struct sl_config_errors *errs);

/* Frees a config and everything it owns. NULL is accepted. */
void sl_config_free(struct sl_config *cfg);

/* Frees everything v owns, recursively: its string, its items and, for a
 * map, its keys. v itself is not freed (values live in arrays and inside
 * struct sl_plugin_conf); it is left as an empty SL_VALUE_NULL at line 0,
 * so freeing it twice is harmless. NULL is accepted. Configs own their
 * values and sl_config_free() frees them: call this only on a tree you
 * built yourself. */
void sl_value_free(struct sl_value *v);

/* Looks key up in a SL_VALUE_MAP, comparing bytes exactly (no case
 * folding). Returns the value (borrowed from map, valid as long as map is),
 * or NULL when key is absent, or when map is NULL or not a map. Keys in a
 * loaded config are unique, so there is at most one match. Linear in the
 * number of keys: meant for loading a plugin's config, not per request. */
const struct sl_value *sl_value_get(const struct sl_value *map, const char *key);

/* Frees the messages of errs and resets it to empty. */
void sl_config_errors_fini(struct sl_config_errors *errs);

/* Parses "host:port" / "[v6]:port" / ":port" / "port" (host defaults to
 * 0.0.0.0 for listeners) into addr, resolving names with getaddrinfo.
 * Returns 0, or -1 with a message in err (size errlen). */
int sl_addr_parse(const char *text, const char *default_host,
                  struct sl_addr *addr, char *err, size_t errlen);

/* True when addr is a loopback address: 127.0.0.0/8, ::1, or an
 * IPv4-mapped 127.x address (config_admin.c). */
bool sl_addr_is_loopback(const struct sl_addr *addr);

#endif
