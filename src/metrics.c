#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "config-t.h"
#include "conn.h"
#include "gen.h"
#include "log.h"
#include "metrics-t.h"
#include "worker.h"

/* Slots come in chunks of CHUNK cells per worker: chunk k holds nworkers
 * rows of CHUNK cells, worker w's row at w * CHUNK (8 KiB apart, so two
 * workers never write the same cache line). A label set's range never
 * straddles two chunks. Chunks are allocated under the lock before any
 * generation or handle that names their slots exists, and never freed:
 * a worker reaches a chunk only through a generation (published after
 * the allocation) or a handle (returned under the lock), so it always
 * sees the pointer. */
#define CHUNK_BITS 10
#define CHUNK (1u << CHUNK_BITS)
#define MAX_CHUNKS 1024
#define MAX_CUSTOM 4096

typedef _Atomic uint64_t cell_t;

_Static_assert(SL_METRICS_PLUGIN_SLOTS <= SL_METRICS_SLOT_FIRST_FREE - SL_METRICS_SLOT_SINK,
               "the sink holds any range");
_Static_assert(SL_METRICS_MAX_BUCKETS + 2 <= SL_METRICS_PLUGIN_SLOTS, "the sink holds a histogram");

/* llhttp's method number -> method class (metrics-t.h: 0 other, 1 GET, ...). */
static const uint8_t method_class[64] = {
    [HTTP_GET] = 1, [HTTP_HEAD] = 2, [HTTP_POST] = 3, [HTTP_PUT] = 4,
    [HTTP_DELETE] = 5, [HTTP_PATCH] = 6, [HTTP_OPTIONS] = 7,
};

static const double default_buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

/* What a generation's requests index on the request path. */
struct sl_metrics_gen {
    cell_t **route;             /* owned: worker 0's cells of each route, nroutes + 1
                                 * (the last: no route); worker w's are CHUNK * w further */
    cell_t **backend;           /* owned: likewise, by backend gidx */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cell_t *chunks[MAX_CHUNKS];
static int nworkers;            /* set once, before any worker runs */
static uint32_t next_slot;
static struct sl_metrics_group *groups;    /* in order of first use */
static size_t ngroups, groupcap;
static size_t *index_cells;     /* group index + 1, 0 free; open addressing */
static size_t index_mask;
static struct sl_metrics_custom *customs[MAX_CUSTOM];
static int ncustom;
static bool warned_full;

static inline cell_t *cells(int worker, uint32_t slot)
{
    return &chunks[slot >> CHUNK_BITS][(size_t)worker * CHUNK + (slot & (CHUNK - 1))];
}

/* The owning worker's increment: relaxed load and store, no RMW. */
static inline void bump(cell_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void bump_double(cell_t *c, double n)
{
    uint64_t bits = atomic_load_explicit(c, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof d);
    d += n;
    memcpy(&bits, &d, sizeof bits);
    atomic_store_explicit(c, bits, memory_order_relaxed);
}

/* A bucket from a value in a few instructions, without a loop: each
 * bound is at least twice the one before, so [2^k, 2^(k+1)) holds at most
 * one bound, and v's bucket is first[k], the first bound >= 2^k (k =
 * floor(log2 v), one bsr), or the next one. */
struct bounds {
    int64_t le[SL_METRICS_NBUCKETS + 1];           /* the bounds, then INT64_MAX for +Inf */
    uint8_t first[64];                  /* filled by bounds_init */
};

static struct bounds latency = {
    .le = { 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
            1000000, 2500000, 5000000, 10000000, INT64_MAX },
};
static struct bounds plugin_time = {
    .le = { 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
            10000000, 25000000, 50000000, 100000000, INT64_MAX },
};

static void bounds_init(struct bounds *b)
{
    for (unsigned k = 0; k < 63; k++) {
        unsigned i = 0;
        while (i < SL_METRICS_NBUCKETS && b->le[i] < (int64_t)1 << k)
            i++;
        b->first[k] = (uint8_t)i;
    }
    b->first[63] = SL_METRICS_NBUCKETS;            /* 2^63 and up: no int64_t gets there */
}

static inline unsigned bucket_of(const struct bounds *b, int64_t v)
{
    unsigned i = b->first[__builtin_clzll((uint64_t)v | 1) ^ 63];
    return i + (v > b->le[i]);
}

static inline void observe(cell_t *hist, const struct bounds *b, int64_t v)
{
    if (v < 0)
        v = 0;
    bump(&hist[bucket_of(b, v)], 1);
    bump(&hist[SL_METRICS_NBUCKETS + 1], (uint64_t)v);
}

static inline bool is_worker(int worker)
{
    return (unsigned)worker < (unsigned)nworkers;
}

/* --- the registry --------------------------------------------------------------- */

static int init_locked(int n)
{
    if (nworkers > 0)
        return 0;
    if (n < 1)
        n = 1;
    chunks[0] = calloc((size_t)n * CHUNK, sizeof(cell_t));
    if (chunks[0] == NULL)
        return -1;
    bounds_init(&latency);
    bounds_init(&plugin_time);
    nworkers = n;
    next_slot = SL_METRICS_SLOT_FIRST_FREE;
    return 0;
}

int sl_metrics_init(int n)
{
    pthread_mutex_lock(&lock);
    int rc = init_locked(n);
    pthread_mutex_unlock(&lock);
    return rc;
}

/* A range of n cells in one chunk; UINT32_MAX when the registry is full
 * or memory is short. */
static uint32_t alloc_slots(uint32_t n)
{
    uint32_t s = next_slot;
    if ((s & (CHUNK - 1)) + n > CHUNK)
        s = (s | (CHUNK - 1)) + 1;
    uint32_t k = s >> CHUNK_BITS;
    if (k >= MAX_CHUNKS)
        return UINT32_MAX;
    if (chunks[k] == NULL) {
        chunks[k] = calloc((size_t)nworkers * CHUNK, sizeof(cell_t));
        if (chunks[k] == NULL)
            return UINT32_MAX;
    }
    next_slot = s + n;
    return s;
}

static size_t hash_key(const char *key)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3u;
    }
    return (size_t)(h ^ (h >> 29));
}

static int index_grow(void)
{
    size_t cellsn = index_cells ? (index_mask + 1) * 2 : 64;
    size_t *fresh = calloc(cellsn, sizeof *fresh);
    if (fresh == NULL)
        return -1;
    for (size_t i = 0; i < ngroups; i++) {
        size_t j = hash_key(groups[i].key) & (cellsn - 1);
        while (fresh[j] != 0)
            j = (j + 1) & (cellsn - 1);
        fresh[j] = i + 1;
    }
    free(index_cells);
    index_cells = fresh;
    index_mask = cellsn - 1;
    return 0;
}

static struct sl_metrics_group *find_group(const char *key)
{
    if (index_cells == NULL)
        return NULL;
    for (size_t j = hash_key(key) & index_mask; index_cells[j] != 0; j = (j + 1) & index_mask)
        if (strcmp(groups[index_cells[j] - 1].key, key) == 0)
            return &groups[index_cells[j] - 1];
    return NULL;
}

/* The slot of the label set (kind, l1, l2), made now with n cells if it
 * is new. When the registry is full the set shares the sink (its values
 * are then lost) and is not rendered. Returns UINT32_MAX on OOM. */
static uint32_t group_slot(enum sl_metrics_group_kind kind, const char *l1, const char *l2, uint32_t n,
                           uint32_t phases)
{
    size_t klen = strlen(l1) + (l2 ? strlen(l2) : 0) + 3;
    char *key = malloc(klen);
    if (key == NULL)
        return UINT32_MAX;
    snprintf(key, klen, "%c%s\1%s", '0' + (int)kind, l1, l2 ? l2 : "");
    struct sl_metrics_group *g = find_group(key);
    if (g != NULL) {
        free(key);
        g->phases |= phases;
        return g->slot;
    }
    uint32_t slot = alloc_slots(n);
    if (slot == UINT32_MAX) {
        free(key);
        if (!warned_full)
            SL_WARN("metrics: no room for more label sets (%s): their values are dropped", l1);
        warned_full = true;
        return SL_METRICS_SLOT_SINK;
    }
    if (ngroups == groupcap) {
        size_t cap = groupcap ? groupcap * 2 : 32;
        struct sl_metrics_group *more = realloc(groups, cap * sizeof *more);
        if (more == NULL) {
            free(key);
            return UINT32_MAX;
        }
        groups = more;
        groupcap = cap;
    }
    if ((ngroups + 1) * 2 > (index_cells ? index_mask + 1 : 0) && index_grow() < 0) {
        free(key);
        return UINT32_MAX;
    }
    g = &groups[ngroups];
    *g = (struct sl_metrics_group){ .kind = kind, .key = key, .label1 = strdup(l1),
                         .label2 = l2 ? strdup(l2) : NULL, .slot = slot, .phases = phases };
    if (g->label1 == NULL || (l2 != NULL && g->label2 == NULL)) {
        free(g->label1);
        free(g->label2);
        free(key);
        return UINT32_MAX;
    }
    size_t j = hash_key(key) & index_mask;
    while (index_cells[j] != 0)
        j = (j + 1) & index_mask;
    index_cells[j] = ++ngroups;
    return slot;
}

/* A route's label: its host pattern and path as configured, "/v1" for
 * any host, "api.example.com/v1", "*.example.com/". Unique per config. */
static char *route_label(const struct sl_route_conf *r)
{
    size_t n = (r->host ? strlen(r->host) : 0) + strlen(r->path) + 1;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s%s", r->host ? r->host : "", r->path);
    return s;
}

int sl_metrics_gen_attach(struct sl_gen *g)
{
    const struct sl_config *cfg = g->cfg;
    struct sl_metrics_gen *mg = calloc(1, sizeof *mg);
    if (mg == NULL)
        return -1;
    mg->route = calloc(cfg->nroutes + 1, sizeof *mg->route);
    mg->backend = calloc(g->nbackends ? g->nbackends : 1, sizeof *mg->backend);
    int rc = mg->route != NULL && mg->backend != NULL ? 0 : -1;
    pthread_mutex_lock(&lock);
    if (rc == 0)
        rc = init_locked(1);
    for (size_t i = 0; rc == 0 && i <= cfg->nroutes; i++) {
        char *label = i < cfg->nroutes ? route_label(&cfg->routes[i]) : strdup("none");
        uint32_t s = label ? group_slot(SL_METRICS_G_ROUTE, label, NULL, SL_METRICS_ROUTE_SLOTS, 0) : UINT32_MAX;
        free(label);
        rc = s == UINT32_MAX ? -1 : 0;
        mg->route[i] = rc == 0 ? cells(0, s) : NULL;
    }
    for (size_t u = 0; rc == 0 && u < g->nupstreams; u++) {
        const struct sl_upstream *up = &g->upstreams[u];
        for (size_t j = 0; rc == 0 && j < up->nbackends; j++) {
            uint32_t s = group_slot(SL_METRICS_G_BACKEND, up->conf->name, up->backends[j].conf->addr.text,
                                    SL_METRICS_BACKEND_SLOTS, 0);
            rc = s == UINT32_MAX ? -1 : 0;
            mg->backend[up->backends[j].gidx] = rc == 0 ? cells(0, s) : NULL;
        }
    }
    for (size_t i = 0; rc == 0 && i < g->nplugins; i++) {
        struct sl_plugin *p = g->plugins[i];
        uint32_t s = group_slot(SL_METRICS_G_PLUGIN, p->name, NULL, SL_METRICS_PLUGIN_SLOTS,
                                p->phases);
        rc = s == UINT32_MAX ? -1 : 0;
        p->metrics = rc == 0 ? cells(0, s) : NULL;
    }
    pthread_mutex_unlock(&lock);
    if (rc < 0) {
        free(mg->route);
        free(mg->backend);
        free(mg);
        return -1;
    }
    g->metrics = mg;
    return 0;
}

void sl_metrics_gen_detach(struct sl_gen *g)
{
    if (g->metrics == NULL)
        return;
    free(g->metrics->route);
    free(g->metrics->backend);
    free(g->metrics);
    g->metrics = NULL;
}

/* --- the request path ------------------------------------------------------------ */

/* The class of a status: none (0: no answer), 1xx .. 5xx, other. */
static inline unsigned status_class(int status)
{
    unsigned st = (unsigned)status;
    return st < 600 ? st / 100 : 6;
}

static inline void count_request(cell_t *base, int method, int status, int64_t us)
{
    unsigned mc = method_class[(unsigned)method & 63];
    bump(&base[SL_METRICS_ROUTE_REQUESTS + mc * SL_METRICS_NSTATUS + status_class(status)], 1);
    observe(base + SL_METRICS_ROUTE_HIST, &latency, us);
}

static inline void count_upstream(cell_t *base, bool reused, int64_t first_byte_us)
{
    bump(&base[SL_METRICS_BACKEND_USES + reused], 1);
    if (first_byte_us >= 0)
        observe(base + SL_METRICS_BACKEND_FIRST_BYTE, &latency, first_byte_us);
}

/* The hot path: a request with a head has pinned its generation, every
 * generation has its metrics (sl_gen_new fails without them) and worker
 * ids are below nworkers (main gives each worker its row; the test
 * harness's fake worker is 0), so none of it is tested here. */
void sl_metrics_request_done(const struct sl_conn *c, int64_t now_us)
{
    const struct sl_req *r = &c->req;
    const struct sl_gen *g = r->wg->gen;
    const struct sl_metrics_gen *mg = g->metrics;
    size_t row = (size_t)c->w->id * CHUNK;
    size_t route = r->route != NULL ? (size_t)(r->route - g->cfg->routes) : g->cfg->nroutes;
    count_request(mg->route[route] + row, r->head->method, r->status, now_us - r->start_us);
    if (r->up_start_us != 0) {
        /* up_first_byte_us < 0: the first byte came in this loop turn */
        int64_t first = r->up_first_byte_us;
        count_upstream(mg->backend[r->backend->gidx] + row, r->up_reused,
                       first == 0 ? -1 : (first < 0 ? now_us : first) - r->up_start_us);
    }
}

void sl_metrics_request_refused(const struct sl_conn *c)
{
    const struct sl_gen *g = c->w->gen;
    if (g == NULL || g->metrics == NULL || !is_worker(c->w->id))
        return;
    cell_t *base = g->metrics->route[g->cfg->nroutes] + (size_t)c->w->id * CHUNK;
    bump(&base[SL_METRICS_ROUTE_REQUESTS + status_class(c->req.status)], 1);
}

void sl_metrics_count_request(const struct sl_gen *g, int worker, size_t route, int method,
                              int status, int64_t us)
{
    if (g->metrics != NULL && is_worker(worker))
        count_request(g->metrics->route[route < g->cfg->nroutes ? route : g->cfg->nroutes] +
                          (size_t)worker * CHUNK, method, status, us);
}

void sl_metrics_count_upstream(const struct sl_gen *g, int worker, size_t gidx, bool reused,
                               int64_t first_byte_us)
{
    if (g->metrics != NULL && is_worker(worker) && gidx < g->nbackends)
        count_upstream(g->metrics->backend[gidx] + (size_t)worker * CHUNK, reused, first_byte_us);
}

static inline cell_t *backend_cells(const struct sl_gen *g, int worker, size_t gidx)
{
    const struct sl_metrics_gen *mg = g->metrics;
    if (mg == NULL || !is_worker(worker) || gidx >= g->nbackends)
        return NULL;
    return mg->backend[gidx] + (size_t)worker * CHUNK;
}

void sl_metrics_upstream_connected(const struct sl_gen *g, int worker, size_t gidx, int64_t us)
{
    cell_t *base = backend_cells(g, worker, gidx);
    if (base != NULL)
        observe(base + SL_METRICS_BACKEND_CONNECT, &latency, us);
}

void sl_metrics_upstream_error(const struct sl_gen *g, int worker, size_t gidx,
                               enum sl_metrics_up_error kind)
{
    cell_t *base = backend_cells(g, worker, gidx);
    if (base != NULL && (unsigned)kind < SL_METRICS_UP_ERROR_COUNT)
        bump(&base[SL_METRICS_BACKEND_ERRORS + kind], 1);
}

void sl_metrics_client_conns_add(int worker, int delta)
{
    if (is_worker(worker))
        bump(cells(worker, SL_METRICS_SLOT_CLIENT_CONNS), (uint64_t)(int64_t)delta);
}

void sl_metrics_upstream_conns_add(int worker, int delta)
{
    if (is_worker(worker))
        bump(cells(worker, SL_METRICS_SLOT_UPSTREAM_CONNS), (uint64_t)(int64_t)delta);
}

void sl_metrics_plugin_call(const struct sl_plugin *p, int worker, enum sl_phase phase,
                            int64_t ns)
{
    if (p->metrics == NULL)
        return;
    observe(p->metrics + (size_t)worker * CHUNK + (size_t)phase * SL_METRICS_PHASE_SLOTS +
                SL_METRICS_PHASE_HIST,
            &plugin_time, ns);
}

void sl_metrics_plugin_failed(const struct sl_plugin *p, int worker, enum sl_phase phase,
                              bool budget)
{
    if (p->metrics == NULL)
        return;
    cell_t *base = p->metrics + (size_t)worker * CHUNK + (size_t)phase * SL_METRICS_PHASE_SLOTS;
    bump(&base[SL_METRICS_PHASE_ERRORS], 1);
    bump(&base[SL_METRICS_PHASE_BUDGET], budget);
}

void sl_metrics_plugin_totals(const struct sl_plugin *p, enum sl_phase phase,
                              struct sl_metrics_plugin_totals *out)
{
    memset(out, 0, sizeof *out);
    if (p->metrics == NULL)
        return;
    for (int w = 0; w < nworkers; w++) {
        const cell_t *base = p->metrics + (size_t)w * CHUNK + (size_t)phase * SL_METRICS_PHASE_SLOTS;
        out->errors += atomic_load_explicit(&base[SL_METRICS_PHASE_ERRORS], memory_order_relaxed);
        out->budget_kills +=
            atomic_load_explicit(&base[SL_METRICS_PHASE_BUDGET], memory_order_relaxed);
        for (unsigned i = 0; i <= SL_METRICS_NBUCKETS; i++)
            out->calls += atomic_load_explicit(&base[SL_METRICS_PHASE_HIST + i],
                                               memory_order_relaxed);
        out->ns += atomic_load_explicit(&base[SL_METRICS_PHASE_HIST + SL_METRICS_NBUCKETS + 1],
                                        memory_order_relaxed);
    }
}

/* --- plugins' own metrics -------------------------------------------------------- */

/* Names the registry renders itself, which a plugin's may not take. */
static const char *const builtin_plugin_names[] = {
    "sluice_plugin_calls_total", "sluice_plugin_errors_total",
    "sluice_plugin_budget_kills_total", "sluice_plugin_duration_seconds",
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SL_METRICS_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* UTF-8 text without control characters (HELP lines are one line). */
static bool is_help(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n > 1024)
        return false;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static int define_locked(const char *plugin, const char *name, const char *help,
                         enum sl_metric_type type, const double *buckets, size_t nbuckets,
                         char *err, size_t errlen)
{
    if (type != SL_METRIC_COUNTER && type != SL_METRIC_HISTOGRAM) {
        snprintf(err, errlen, "unknown metric type %d", (int)type);
        return -1;
    }
    if (name == NULL || !is_name(name) || ends_with(name, "_bucket") || ends_with(name, "_sum") ||
        ends_with(name, "_count")) {
        snprintf(err, errlen, "invalid metric name '%s': use 1 to %d letters, digits or '_', "
                 "not starting with a digit nor ending in _bucket, _sum or _count",
                 name ? name : "", SL_METRICS_NAME_MAX);
        return -1;
    }
    if (help == NULL)
        help = "";
    if (!is_help(help)) {
        snprintf(err, errlen, "metric %s: help must be at most 1024 bytes of UTF-8 text "
                 "without control characters", name);
        return -1;
    }
    if (buckets == NULL && type == SL_METRIC_HISTOGRAM) {
        buckets = default_buckets;
        nbuckets = sizeof default_buckets / sizeof default_buckets[0];
    }
    if (type == SL_METRIC_HISTOGRAM) {
        if (nbuckets < 1 || nbuckets > SL_METRICS_MAX_BUCKETS) {
            snprintf(err, errlen, "metric %s: a histogram has 1 to %d buckets", name,
                     SL_METRICS_MAX_BUCKETS);
            return -1;
        }
        for (size_t i = 0; i < nbuckets; i++) {
            if (!(buckets[i] - buckets[i] == 0) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
                snprintf(err, errlen, "metric %s: bucket bounds must be finite and strictly "
                         "increasing", name);
                return -1;
            }
        }
    } else {
        nbuckets = 0;
    }
    char full[2 * SL_METRICS_NAME_MAX + 32];
    int n = snprintf(full, sizeof full, "sluice_plugin_%s_%s%s", plugin, name,
                     type == SL_METRIC_COUNTER && !ends_with(name, "_total") ? "_total" : "");
    if (n < 0 || (size_t)n >= sizeof full) {
        snprintf(err, errlen, "metric %s: name too long", name);
        return -1;
    }
    for (char *c = full; *c; c++)
        if (*c == '-')
            *c = '_';
    for (size_t i = 0; i < sizeof builtin_plugin_names / sizeof builtin_plugin_names[0]; i++) {
        const char *b = builtin_plugin_names[i];
        size_t bl = strlen(b);
        if (strncmp(full, b, bl) == 0 &&
            (full[bl] == '\0' || strcmp(full + bl, "_bucket") == 0 ||
             strcmp(full + bl, "_sum") == 0 || strcmp(full + bl, "_count") == 0)) {
            snprintf(err, errlen, "metric %s: %s is a built-in metric", name, full);
            return -1;
        }
    }
    for (int h = 0; h < ncustom; h++) {
        struct sl_metrics_custom *m = customs[h];
        if (strcmp(m->name, full) != 0)
            continue;
        if (strcmp(m->owner, plugin) != 0) {
            snprintf(err, errlen, "metric %s: %s is already plugin %s's", name, full, m->owner);
            return -1;
        }
        if (m->type != type || m->nbuckets != nbuckets ||
            (nbuckets && memcmp(m->bounds, buckets, nbuckets * sizeof *buckets) != 0)) {
            snprintf(err, errlen, "metric %s: already defined as a %s%s (changing its type or "
                     "buckets needs a restart)", name,
                     m->type == SL_METRIC_COUNTER ? "counter" : "histogram",
                     m->type == SL_METRIC_HISTOGRAM ? " with other buckets" : "");
            return -1;
        }
        if (strcmp(m->help, help) != 0) {
            char *fresh = strdup(help);
            if (fresh != NULL) {
                free(m->help);
                m->help = fresh;
            }
        }
        return h;
    }
    int mine = 0;
    for (int h = 0; h < ncustom; h++)
        mine += strcmp(customs[h]->owner, plugin) == 0;
    if (mine >= SL_METRICS_MAX_PER_PLUGIN || ncustom >= MAX_CUSTOM) {
        snprintf(err, errlen, "metric %s: plugin %s has too many metrics (at most %d)", name,
                 plugin, SL_METRICS_MAX_PER_PLUGIN);
        return -1;
    }
    struct sl_metrics_custom *m = calloc(1, sizeof *m);
    if (m == NULL || (m->name = strdup(full)) == NULL || (m->owner = strdup(plugin)) == NULL ||
        (m->help = strdup(help)) == NULL ||
        (m->slot = alloc_slots(type == SL_METRIC_COUNTER ? 1 : (uint32_t)nbuckets + 2)) ==
            UINT32_MAX) {
        if (m != NULL) {
            free(m->name);
            free(m->owner);
            free(m->help);
        }
        free(m);
        snprintf(err, errlen, "metric %s: out of memory", name);
        return -1;
    }
    m->type = type;
    m->nbuckets = nbuckets;
    if (nbuckets)
        memcpy(m->bounds, buckets, nbuckets * sizeof *buckets);
    customs[ncustom] = m;
    return ncustom++;
}

int sl_metrics_define(const char *plugin, const char *name, const char *help,
                      enum sl_metric_type type, const double *buckets, size_t nbuckets,
                      char *err, size_t errlen)
{
    if (plugin == NULL || plugin[0] == '\0' || strlen(plugin) > SL_METRICS_NAME_MAX ||
        strspn(plugin, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            strlen(plugin)) {
        snprintf(err, errlen, "invalid plugin name for a metric");
        return -1;
    }
    pthread_mutex_lock(&lock);
    int rc = init_locked(1);
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    else
        rc = define_locked(plugin, name, help, type, buckets, nbuckets, err, errlen);
    pthread_mutex_unlock(&lock);
    return rc;
}

static const struct sl_metrics_custom *custom_of(int handle, enum sl_metric_type type)
{
    if (handle < 0 || handle >= MAX_CUSTOM)
        return NULL;
    const struct sl_metrics_custom *m = customs[handle];
    return m != NULL && m->type == type ? m : NULL;
}

int sl_metrics_add(int worker, int handle, double n)
{
    const struct sl_metrics_custom *m = custom_of(handle, SL_METRIC_COUNTER);
    if (m == NULL || !is_worker(worker) || !(n >= 0) || !(n - n == 0))
        return -1;
    bump_double(cells(worker, m->slot), n);
    return 0;
}

int sl_metrics_observe(int worker, int handle, double v)
{
    const struct sl_metrics_custom *m = custom_of(handle, SL_METRIC_HISTOGRAM);
    if (m == NULL || !is_worker(worker) || !(v - v == 0))
        return -1;
    size_t i = 0;
    while (i < m->nbuckets && v > m->bounds[i])
        i++;
    bump(cells(worker, m->slot + (uint32_t)i), 1);
    bump_double(cells(worker, m->slot + (uint32_t)m->nbuckets + 1), v);
    return 0;
}

/* --- what metrics_render.c reads --------------------------------------------------- */

int sl_metrics_registry_lock(void)
{
    pthread_mutex_lock(&lock);
    if (init_locked(1) < 0) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
    return 0;
}

void sl_metrics_registry_unlock(void)
{
    pthread_mutex_unlock(&lock);
}

uint64_t sl_metrics_registry_sum(uint32_t slot)
{
    uint64_t sum = 0;
    for (int w = 0; w < nworkers; w++)
        sum += atomic_load_explicit(cells(w, slot), memory_order_relaxed);
    return sum;
}

double sl_metrics_registry_sum_double(uint32_t slot)
{
    double sum = 0;
    for (int w = 0; w < nworkers; w++) {
        uint64_t bits = atomic_load_explicit(cells(w, slot), memory_order_relaxed);
        double d;
        memcpy(&d, &bits, sizeof d);
        sum += d;
    }
    return sum;
}

const struct sl_metrics_group *sl_metrics_registry_groups(size_t *n)
{
    *n = ngroups;
    return groups;
}

const struct sl_metrics_custom *const *sl_metrics_registry_customs(size_t *n)
{
    *n = (size_t)ncustom;
    return (const struct sl_metrics_custom *const *)customs;
}
