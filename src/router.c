#include "router.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum tier { TIER_EXACT, TIER_WILDCARD, TIER_ANY };

struct entry {
    const struct sl_route_conf *route;
    const char *host;       /* exact host, or the suffix ".example.com" */
    size_t host_len;
    size_t path_len;
    enum tier tier;
};

struct sl_router {
    struct entry *entries;  /* sorted: tier, then longer host, then longer path */
    size_t n;
};

static int compare_entries(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->tier != y->tier)
        return (int)x->tier - (int)y->tier;
    if (x->host_len != y->host_len)
        return x->host_len > y->host_len ? -1 : 1;
    if (x->path_len != y->path_len)
        return x->path_len > y->path_len ? -1 : 1;
    return 0;
}

struct sl_router *sl_router_new(const struct sl_config *cfg)
{
    struct sl_router *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return NULL;
    rt->entries = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *rt->entries);
    if (rt->entries == NULL) {
        free(rt);
        return NULL;
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct sl_route_conf *r = &cfg->routes[i];
        struct entry *e = &rt->entries[rt->n++];
        e->route = r;
        e->path_len = strlen(r->path);
        if (r->host == NULL || strcmp(r->host, "*") == 0) {
            e->tier = TIER_ANY;
        } else if (r->host[0] == '*' && r->host[1] == '.') {
            e->tier = TIER_WILDCARD;
            e->host = r->host + 1;
            e->host_len = strlen(e->host);
        } else {
            e->tier = TIER_EXACT;
            e->host = r->host;
            e->host_len = strlen(r->host);
        }
    }
    qsort(rt->entries, rt->n, sizeof *rt->entries, compare_entries);
    return rt;
}

void sl_router_free(struct sl_router *rt)
{
    if (rt == NULL)
        return;
    free(rt->entries);
    free(rt);
}

static bool host_matches(const struct entry *e, const char *host, size_t len)
{
    switch (e->tier) {
    case TIER_EXACT:
        return len == e->host_len && memcmp(host, e->host, len) == 0;
    case TIER_WILDCARD:
        /* "*.example.com" covers "a.example.com", not "example.com". */
        return len > e->host_len &&
               memcmp(host + len - e->host_len, e->host, e->host_len) == 0;
    case TIER_ANY:
        return true;
    }
    return false;
}

static bool path_matches(const struct entry *e, const char *path, size_t len)
{
    size_t pl = e->path_len;
    const char *prefix = e->route->path;
    if (len < pl || memcmp(path, prefix, pl) != 0)
        return false;
    return len == pl || prefix[pl - 1] == '/' || path[pl] == '/' || path[pl] == '?';
}

const struct sl_route_conf *sl_router_match(const struct sl_router *rt,
                                            const char *host, size_t host_len,
                                            const char *path, size_t path_len)
{
    /* Sorted by tier, host length and path length, so the first match is
     * the most specific one. */
    for (size_t i = 0; i < rt->n; i++) {
        const struct entry *e = &rt->entries[i];
        if (host_matches(e, host, host_len) && path_matches(e, path, path_len))
            return e->route;
    }
    return NULL;
}
