/* spec/bench/bench-native.c: the benchmark plugin of spec/bench/plugins.sh
 * (variant sluice-native) in C, the twin of the two-line Lua plugin its
 * write_chain_plugins writes: sets the request field X-Bench: 1 and adds
 * the response field X-Plugin: 1, nothing else. `make bench` builds it
 * into $(BUILD)/bench-native/bench.so; what it adds over plain sluice is
 * the cost of a native plugin's call path. */
#include "sluice_plugin.h"

static const struct sluice_host *host;

static int request_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)instance;
    (void)worker;
    (void)state;
    if (host->header_set(req, SLUICE_REQUEST, "X-Bench", 7, "1", 1) != SLUICE_OK) {
        host->error(req, "cannot set X-Bench");
        return SLUICE_ERROR;
    }
    return SLUICE_CONTINUE;
}

static int response_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)instance;
    (void)worker;
    (void)state;
    if (host->header_add(req, SLUICE_RESPONSE, "X-Plugin", 8, "1", 1) != SLUICE_OK) {
        host->error(req, "cannot add X-Plugin");
        return SLUICE_ERROR;
    }
    return SLUICE_CONTINUE;
}

static const struct sluice_plugin plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "bench",
    .version = "1.0.0",
    .priority = 1,
    .request_headers = request_headers,
    .response_headers = response_headers,
};

const struct sluice_plugin *sluice_plugin_init(const struct sluice_host *h)
{
    host = h;
    return &plugin;
}
