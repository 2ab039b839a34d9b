/* Route matching: host, then path prefix. */
#ifndef SL_ROUTER_H
#define SL_ROUTER_H

#include <stddef.h>

#include "config-t.h"

struct sl_router;

/* Builds the lookup structure for cfg's routes (borrowed; must outlive the
 * router). Returns the router (owned; free with sl_router_free) or NULL on
 * OOM. */
struct sl_router *sl_router_new(const struct sl_config *cfg);

/* Frees the router. NULL is accepted. */
void sl_router_free(struct sl_router *rt);

/* Finds the route for a request: routes whose host equals host exactly come
 * first, then wildcard hosts ("*.example.com", the longest suffix first),
 * then routes without a host; in the first of these tiers that has a match,
 * the longest path prefix wins. A prefix matches at a segment boundary:
 * "/api" matches "/api", "/api/x" and "/api?q" but not "/apix". host is
 * lowercase without a port (may be empty). Returns the route (borrowed from
 * the config) or NULL. */
const struct sl_route_conf *sl_router_match(const struct sl_router *rt,
                                            const char *host, size_t host_len,
                                            const char *path, size_t path_len);

#endif
