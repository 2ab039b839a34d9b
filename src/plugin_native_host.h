/* The host side of the native plugin ABI: the function table sluice hands
 * every native plugin (struct sluice_host, plugins-native/include/
 * sluice_plugin.h), over the request operations of api.h and the plugin's
 * config tree (struct sl_value), and the error lists config_create and
 * worker_init report into. Internal to the native kind (plugin_native.c). */
#ifndef SL_PLUGIN_NATIVE_HOST_H
#define SL_PLUGIN_NATIVE_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include "config-t.h"
#include "sluice_plugin.h"

struct sl_conn;
struct sl_plugin;

/* One hook call: what the plugin sees as its struct sluice_req. Lives on
 * the calling stack frame of the kind's call, so a plugin cannot use it
 * after the hook returns. */
struct sluice_req {
    struct sl_conn *c;
    const struct sl_plugin *p;
    char *err;                      /* the chain's message buffer (error()) */
    size_t errlen;
};

/* Where config_create and worker_init report problems: complete lines,
 * "FILE:LINE:COL: plugin NAME: config.PATH: message", joined by '\n'. */
struct sluice_errors {
    const struct sl_plugin_conf *pc;    /* borrowed: the instance, its config tree and position */
    const char *config_file;            /* borrowed; NULL: messages carry no position */
    bool positions;                     /* config_create: prefix positions; worker_init: not */
    size_t n;                           /* problems reported */
    size_t len;                         /* bytes used in buf */
    char buf[4096];
};

/* The table handed to every native plugin: static, valid for the life of
 * the process, size and version of this build's sluice_plugin.h. */
extern const struct sluice_host sl_native_host;

/* Starts an empty error list for the instance pc (borrowed; config_file
 * may be NULL). positions: whether lines carry the configuration file's
 * positions (config_create) or only "plugin NAME: " (worker_init). */
void sl_native_errors_init(struct sluice_errors *e, const struct sl_plugin_conf *pc,
                           const char *config_file, bool positions);

#endif
