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
#include "reload.h"
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

/* Fixed slots at the start of chunk 0. SINK takes the writes of label
 * sets that found the registry full (see alloc_slots). */
enum {
    SLOT_CLIENT_CONNS = 0,
    SLOT_UPSTREAM_CONNS = 1,
    SLOT_SINK = 8,
    SLOT_FIRST_FREE = SLOT_SINK + 128,
};

/* Latency histograms: 13 finite buckets and +Inf; then the sum. */
#define NBUCKETS 13
#define HIST_CELLS (NBUCKETS + 2)

/* Request counters by method class and status class. */
#define NMETHODS 8
#define NSTATUS 7

/* A route's range: requests, then the latency histogram (sum in µs). */
#define ROUTE_REQUESTS 0
#define ROUTE_HIST (NMETHODS * NSTATUS)
#define ROUTE_SLOTS (ROUTE_HIST + HIST_CELLS)

/* A backend's range: connect and first-byte histograms (sums in µs),
 * errors by kind, attempts on new and reused connections. */
#define BACKEND_CONNECT 0
#define BACKEND_FIRST_BYTE HIST_CELLS
#define BACKEND_ERRORS (2 * HIST_CELLS)
#define BACKEND_USES (BACKEND_ERRORS + SL_METRICS_UP_ERROR_COUNT)
#define BACKEND_SLOTS (BACKEND_USES + 2)

/* A plugin's range: per phase calls, errors, budget kills and the
 * duration histogram (sum in ns). */
#define PHASE_CALLS 0
#define PHASE_ERRORS 1
#define PHASE_BUDGET 2
#define PHASE_HIST 3
#define PHASE_SLOTS (PHASE_HIST + HIST_CELLS)
#define PLUGIN_SLOTS (PHASE_SLOTS * SL_PHASE_COUNT)

_Static_assert(PLUGIN_SLOTS <= SLOT_FIRST_FREE - SLOT_SINK, "the sink holds any range");
_Static_assert(SL_METRICS_MAX_BUCKETS + 2 <= PLUGIN_SLOTS, "the sink holds a histogram");

static const int64_t latency_us[NBUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000,
};
static const char *const latency_le[NBUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10",
};
static const int64_t plugin_ns[NBUCKETS] = {
    10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000, 25000000, 50000000, 100000000,
};
static const char *const plugin_le[NBUCKETS] = {
    "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
};

static const char *const method_names[NMETHODS] = {
    "other", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
};
/* llhttp's method number -> index in method_names (0: other). */
static const uint8_t method_class[64] = {
    [HTTP_GET] = 1, [HTTP_HEAD] = 2, [HTTP_POST] = 3, [HTTP_PUT] = 4,
    [HTTP_DELETE] = 5, [HTTP_PATCH] = 6, [HTTP_OPTIONS] = 7,
};
static const char *const status_names[NSTATUS] = {
    "none", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
};
static const char *const error_names[SL_METRICS_UP_ERROR_COUNT] = {
    "connect_refused", "connect_timeout", "response_timeout", "reset", "truncated",
    "bad_response",
};

static const double default_buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

enum group_kind { G_ROUTE, G_BACKEND, G_PLUGIN };

/* A named label set and its range. */
struct group {
    enum group_kind kind;
    char *key;                  /* owned: kind, labels, '\1' between them */
    char *label1;               /* owned: route / upstream / plugin */
    char *label2;               /* owned: backend address; NULL otherwise */
    uint32_t slot;
    uint32_t phases;            /* G_PLUGIN: every phase its instances had */
};

/* A plugin's own metric. Never freed or moved once published: workers
 * read it through their handle without the lock. */
struct custom {
    char *name;                 /* owned: the full name */
    char *owner;                /* owned: the plugin's name */
    char *help;                 /* owned; replaced under the lock */
    enum sl_metric_type type;
    size_t nbuckets;
    double bounds[SL_METRICS_MAX_BUCKETS];
    uint32_t slot;              /* counter: one cell; histogram: nbuckets + 1, then the sum */
};

/* What a generation's requests index on the request path. */
struct sl_metrics_gen {
    uint32_t *route;            /* owned: nroutes + 1 (the last: no route) */
    uint32_t *backend;          /* owned: by backend gidx */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static cell_t *chunks[MAX_CHUNKS];
static int nworkers;            /* set once, before any worker runs */
static uint32_t next_slot;
static struct group *groups;    /* in order of first use */
static size_t ngroups, groupcap;
static size_t *index_cells;     /* group index + 1, 0 free; open addressing */
static size_t index_mask;
static struct custom *customs[MAX_CUSTOM];
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

static inline unsigned bucket_of(const int64_t *bounds, int64_t v)
{
    unsigned i = 0;
    while (i < NBUCKETS && v > bounds[i])
        i++;
    return i;
}

static inline void observe(cell_t *hist, const int64_t *bounds, int64_t v)
{
    if (v < 0)
        v = 0;
    bump(&hist[bucket_of(bounds, v)], 1);
    bump(&hist[NBUCKETS + 1], (uint64_t)v);
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
    nworkers = n;
    next_slot = SLOT_FIRST_FREE;
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

static struct group *find_group(const char *key)
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
static uint32_t group_slot(enum group_kind kind, const char *l1, const char *l2, uint32_t n,
                           uint32_t phases)
{
    size_t klen = strlen(l1) + (l2 ? strlen(l2) : 0) + 3;
    char *key = malloc(klen);
    if (key == NULL)
        return UINT32_MAX;
    snprintf(key, klen, "%c%s\1%s", '0' + (int)kind, l1, l2 ? l2 : "");
    struct group *g = find_group(key);
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
        return SLOT_SINK;
    }
    if (ngroups == groupcap) {
        size_t cap = groupcap ? groupcap * 2 : 32;
        struct group *more = realloc(groups, cap * sizeof *more);
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
    *g = (struct group){ .kind = kind, .key = key, .label1 = strdup(l1),
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
        mg->route[i] = label ? group_slot(G_ROUTE, label, NULL, ROUTE_SLOTS, 0) : UINT32_MAX;
        free(label);
        rc = mg->route[i] == UINT32_MAX ? -1 : 0;
    }
    for (size_t u = 0; rc == 0 && u < g->nupstreams; u++) {
        const struct sl_upstream *up = &g->upstreams[u];
        for (size_t j = 0; rc == 0 && j < up->nbackends; j++) {
            uint32_t s = group_slot(G_BACKEND, up->conf->name, up->backends[j].conf->addr.text,
                                    BACKEND_SLOTS, 0);
            mg->backend[up->backends[j].gidx] = s;
            rc = s == UINT32_MAX ? -1 : 0;
        }
    }
    for (size_t i = 0; rc == 0 && i < g->nplugins; i++) {
        struct sl_plugin *p = g->plugins[i];
        p->metrics = group_slot(G_PLUGIN, p->name, NULL, PLUGIN_SLOTS, p->phases);
        rc = p->metrics == UINT32_MAX ? -1 : 0;
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

static inline void count_request(const struct sl_metrics_gen *mg, int worker, size_t route,
                                 int method, int status, int64_t us)
{
    cell_t *base = cells(worker, mg->route[route]);
    unsigned mc = (unsigned)method < 64 ? method_class[method] : 0;
    unsigned sc = status >= 100 && status < 600 ? (unsigned)status / 100 : status == 0 ? 0 : 6;
    bump(&base[ROUTE_REQUESTS + mc * NSTATUS + sc], 1);
    observe(base + ROUTE_HIST, latency_us, us);
}

static inline void count_upstream(const struct sl_metrics_gen *mg, int worker, size_t gidx,
                                  bool reused, int64_t first_byte_us)
{
    cell_t *base = cells(worker, mg->backend[gidx]);
    bump(&base[BACKEND_USES + reused], 1);
    if (first_byte_us >= 0)
        observe(base + BACKEND_FIRST_BYTE, latency_us, first_byte_us);
}

void sl_metrics_request_done(const struct sl_conn *c, int64_t now_us)
{
    const struct sl_req *r = &c->req;
    int worker = c->w->id;
    if (r->wg == NULL || !is_worker(worker))
        return;
    const struct sl_gen *g = r->wg->gen;
    const struct sl_metrics_gen *mg = g->metrics;
    if (mg == NULL)
        return;
    size_t route = r->route != NULL ? (size_t)(r->route - g->cfg->routes) : g->cfg->nroutes;
    count_request(mg, worker, route, r->head->method, r->status, now_us - r->start_us);
    if (r->backend != NULL && r->up_start_us != 0)
        count_upstream(mg, worker, r->backend->gidx, r->up_reused,
                       r->up_first_byte_us > 0 ? r->up_first_byte_us - r->up_start_us : -1);
}

void sl_metrics_count_request(const struct sl_gen *g, int worker, size_t route, int method,
                              int status, int64_t us)
{
    if (g->metrics != NULL && is_worker(worker))
        count_request(g->metrics, worker, route < g->cfg->nroutes ? route : g->cfg->nroutes,
                      method, status, us);
}

void sl_metrics_count_upstream(const struct sl_gen *g, int worker, size_t gidx, bool reused,
                               int64_t first_byte_us)
{
    if (g->metrics != NULL && is_worker(worker) && gidx < g->nbackends)
        count_upstream(g->metrics, worker, gidx, reused, first_byte_us);
}

static inline cell_t *backend_cells(const struct sl_gen *g, int worker, size_t gidx)
{
    const struct sl_metrics_gen *mg = g->metrics;
    if (mg == NULL || !is_worker(worker) || gidx >= g->nbackends)
        return NULL;
    return cells(worker, mg->backend[gidx]);
}

void sl_metrics_upstream_connected(const struct sl_gen *g, int worker, size_t gidx, int64_t us)
{
    cell_t *base = backend_cells(g, worker, gidx);
    if (base != NULL)
        observe(base + BACKEND_CONNECT, latency_us, us);
}

void sl_metrics_upstream_error(const struct sl_gen *g, int worker, size_t gidx,
                               enum sl_metrics_up_error kind)
{
    cell_t *base = backend_cells(g, worker, gidx);
    if (base != NULL && (unsigned)kind < SL_METRICS_UP_ERROR_COUNT)
        bump(&base[BACKEND_ERRORS + kind], 1);
}

void sl_metrics_client_conns_add(int worker, int delta)
{
    if (is_worker(worker))
        bump(cells(worker, SLOT_CLIENT_CONNS), (uint64_t)(int64_t)delta);
}

void sl_metrics_upstream_conns_add(int worker, int delta)
{
    if (is_worker(worker))
        bump(cells(worker, SLOT_UPSTREAM_CONNS), (uint64_t)(int64_t)delta);
}

void sl_metrics_plugin_call(const struct sl_plugin *p, int worker, enum sl_phase phase,
                            int64_t ns, bool failed, bool budget)
{
    if (p->metrics == 0 || !is_worker(worker) || (unsigned)phase >= SL_PHASE_COUNT)
        return;
    cell_t *base = cells(worker, p->metrics) + (size_t)phase * PHASE_SLOTS;
    bump(&base[PHASE_CALLS], 1);
    bump(&base[PHASE_ERRORS], failed);
    bump(&base[PHASE_BUDGET], budget);
    observe(base + PHASE_HIST, plugin_ns, ns);
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
        struct custom *m = customs[h];
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
    struct custom *m = calloc(1, sizeof *m);
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

static const struct custom *custom_of(int handle, enum sl_metric_type type)
{
    if (handle < 0 || handle >= MAX_CUSTOM)
        return NULL;
    const struct custom *m = customs[handle];
    return m != NULL && m->type == type ? m : NULL;
}

int sl_metrics_add(int worker, int handle, double n)
{
    const struct custom *m = custom_of(handle, SL_METRIC_COUNTER);
    if (m == NULL || !is_worker(worker) || !(n >= 0) || !(n - n == 0))
        return -1;
    bump_double(cells(worker, m->slot), n);
    return 0;
}

int sl_metrics_observe(int worker, int handle, double v)
{
    const struct custom *m = custom_of(handle, SL_METRIC_HISTOGRAM);
    if (m == NULL || !is_worker(worker) || !(v - v == 0))
        return -1;
    size_t i = 0;
    while (i < m->nbuckets && v > m->bounds[i])
        i++;
    bump(cells(worker, m->slot + (uint32_t)i), 1);
    bump_double(cells(worker, m->slot + (uint32_t)m->nbuckets + 1), v);
    return 0;
}

/* --- rendering ------------------------------------------------------------------- */

static uint64_t total(uint32_t slot)
{
    uint64_t sum = 0;
    for (int w = 0; w < nworkers; w++)
        sum += atomic_load_explicit(cells(w, slot), memory_order_relaxed);
    return sum;
}

static double total_double(uint32_t slot)
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

/* The shortest text that reads back as v. */
static int put_double(struct sl_buf *b, double v)
{
    char s[40];
    if (v - v != 0)
        return sl_buf_append_str(b, v != v ? "NaN" : v > 0 ? "+Inf" : "-Inf");
    /* Plain notation between 1e-4 and 1e15 ("10", not "1e+01"). */
    double a = v < 0 ? -v : v;
    bool plain = a == 0 || (a >= 1e-4 && a < 1e15);
    snprintf(s, sizeof s, "%.17g", v);
    for (int prec = 1; prec <= 17; prec++) {
        char t[40];
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v && (!plain || strchr(t, 'e') == NULL)) {
            memcpy(s, t, sizeof s);
            break;
        }
    }
    return sl_buf_append_str(b, s);
}

/* A label value: backslash, double quote and line feed escaped (0.0.4). */
static int put_label_value(struct sl_buf *b, const char *s)
{
    int rc = 0;
    for (; *s; s++) {
        if (*s == '\\')
            rc |= sl_buf_append(b, "\\\\", 2);
        else if (*s == '"')
            rc |= sl_buf_append(b, "\\\"", 2);
        else if (*s == '\n')
            rc |= sl_buf_append(b, "\\n", 2);
        else
            rc |= sl_buf_append(b, s, 1);
    }
    return rc;
}

static int put_family(struct sl_buf *b, const char *name, const char *type, const char *help)
{
    int rc = sl_buf_printf(b, "# HELP %s ", name);
    for (const char *s = help; *s; s++) {
        if (*s == '\\')
            rc |= sl_buf_append(b, "\\\\", 2);
        else if (*s == '\n')
            rc |= sl_buf_append(b, "\\n", 2);
        else
            rc |= sl_buf_append(b, s, 1);
    }
    return rc | sl_buf_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* Labels of a series, escaped, without braces: name1="v1",name2="v2". */
struct labels {
    struct sl_buf text;
};

static int labels_set(struct labels *l, const char *n1, const char *v1, const char *n2,
                      const char *v2, const char *n3, const char *v3)
{
    sl_buf_clear(&l->text);
    int rc = 0;
    const char *names[3] = {n1, n2, n3}, *values[3] = {v1, v2, v3};
    for (int i = 0; i < 3 && names[i] != NULL; i++) {
        rc |= sl_buf_printf(&l->text, "%s%s=\"", i ? "," : "", names[i]);
        rc |= put_label_value(&l->text, values[i]);
        rc |= sl_buf_append(&l->text, "\"", 1);
    }
    return rc;
}

static int put_sample_head(struct sl_buf *b, const char *name, const char *suffix,
                           const struct labels *l, const char *extra)
{
    int rc = sl_buf_append_str(b, name);
    rc |= sl_buf_append_str(b, suffix);
    bool any = sl_buf_len(&l->text) > 0 || extra != NULL;
    if (any) {
        rc |= sl_buf_append(b, "{", 1);
        if (sl_buf_len(&l->text) > 0)
            rc |= sl_buf_append(b, sl_buf_head(&l->text), sl_buf_len(&l->text));
        if (extra != NULL)
            rc |= sl_buf_printf(b, "%s%s", sl_buf_len(&l->text) ? "," : "", extra);
        rc |= sl_buf_append(b, "}", 1);
    }
    return rc | sl_buf_append(b, " ", 1);
}

static int put_u64_sample(struct sl_buf *b, const char *name, const char *suffix,
                          const struct labels *l, const char *extra, uint64_t v)
{
    int rc = put_sample_head(b, name, suffix, l, extra);
    rc |= sl_buf_append_u64(b, v);
    return rc | sl_buf_append(b, "\n", 1);
}

/* A built-in histogram at slot: cumulative buckets, +Inf, the sum (kept
 * in units of 10^-scale seconds) and the count. */
static int put_histogram(struct sl_buf *b, const char *name, const struct labels *l,
                         uint32_t slot, const char *const *le, int scale)
{
    int rc = 0;
    uint64_t cum = 0;
    char extra[32];
    for (unsigned i = 0; i <= NBUCKETS; i++) {
        cum += total(slot + i);
        snprintf(extra, sizeof extra, "le=\"%s\"", i < NBUCKETS ? le[i] : "+Inf");
        rc |= put_u64_sample(b, name, "_bucket", l, extra, cum);
    }
    uint64_t sum = total(slot + NBUCKETS + 1);
    uint64_t unit = scale == 6 ? 1000000u : 1000000000u;
    rc |= put_sample_head(b, name, "_sum", l, NULL);
    rc |= sl_buf_printf(b, "%llu.%0*llu\n", (unsigned long long)(sum / unit), scale,
                        (unsigned long long)(sum % unit));
    return rc | put_u64_sample(b, name, "_count", l, NULL, cum);
}

static int render_routes(struct sl_buf *b, struct labels *l)
{
    int rc = put_family(b, "sluice_requests_total", "counter",
                        "Requests finished, by route, method class and status class.");
    for (size_t g = 0; g < ngroups; g++) {
        if (groups[g].kind != G_ROUTE)
            continue;
        for (int m = 0; m < NMETHODS; m++) {
            for (int s = 0; s < NSTATUS; s++) {
                uint64_t v = total(groups[g].slot + ROUTE_REQUESTS + (uint32_t)(m * NSTATUS + s));
                if (v == 0)
                    continue;
                rc |= labels_set(l, "route", groups[g].label1, "method", method_names[m],
                                 "status", status_names[s]);
                rc |= put_u64_sample(b, "sluice_requests_total", "", l, NULL, v);
            }
        }
    }
    rc |= put_family(b, "sluice_request_duration_seconds", "histogram",
                     "Time from a request's head to its end, by route.");
    for (size_t g = 0; g < ngroups; g++) {
        if (groups[g].kind != G_ROUTE)
            continue;
        rc |= labels_set(l, "route", groups[g].label1, NULL, NULL, NULL, NULL);
        rc |= put_histogram(b, "sluice_request_duration_seconds", l,
                            groups[g].slot + ROUTE_HIST, latency_le, 6);
    }
    return rc;
}

static int put_gauge(struct sl_buf *b, const char *name, const char *help, int64_t v)
{
    int rc = put_family(b, name, "gauge", help);
    return rc | sl_buf_printf(b, "%s %lld\n", name, (long long)v);
}

static int render_upstreams(struct sl_buf *b, struct labels *l)
{
    int rc = put_gauge(b, "sluice_connections_active", "Open client connections.",
                       (int64_t)total(SLOT_CLIENT_CONNS));
    rc |= put_gauge(b, "sluice_upstream_connections_active",
                    "Open upstream connections, idle pooled ones included.",
                    (int64_t)total(SLOT_UPSTREAM_CONNS));
    rc |= put_family(b, "sluice_upstream_requests_total", "counter",
                     "Requests sent to a backend (their last attempt), by connection: new or reused from the pool.");
    for (size_t g = 0; g < ngroups; g++) {
        if (groups[g].kind != G_BACKEND)
            continue;
        for (int reused = 0; reused < 2; reused++) {
            rc |= labels_set(l, "upstream", groups[g].label1, "backend", groups[g].label2,
                             "connection", reused ? "reused" : "new");
            rc |= put_u64_sample(b, "sluice_upstream_requests_total", "", l, NULL,
                                 total(groups[g].slot + BACKEND_USES + (uint32_t)reused));
        }
    }
    static const struct { const char *name, *help; uint32_t off; } hists[] = {
        {"sluice_upstream_connect_duration_seconds", "Time to connect to a backend.",
         BACKEND_CONNECT},
        {"sluice_upstream_response_duration_seconds",
         "Time from sending a request to a backend to the first byte of its response.",
         BACKEND_FIRST_BYTE},
    };
    for (size_t h = 0; h < 2; h++) {
        rc |= put_family(b, hists[h].name, "histogram", hists[h].help);
        for (size_t g = 0; g < ngroups; g++) {
            if (groups[g].kind != G_BACKEND)
                continue;
            rc |= labels_set(l, "upstream", groups[g].label1, "backend", groups[g].label2,
                             NULL, NULL);
            rc |= put_histogram(b, hists[h].name, l, groups[g].slot + hists[h].off,
                                latency_le, 6);
        }
    }
    rc |= put_family(b, "sluice_upstream_errors_total", "counter",
                     "Failed attempts at a backend, by kind.");
    for (size_t g = 0; g < ngroups; g++) {
        if (groups[g].kind != G_BACKEND)
            continue;
        for (int k = 0; k < SL_METRICS_UP_ERROR_COUNT; k++) {
            uint64_t v = total(groups[g].slot + BACKEND_ERRORS + (uint32_t)k);
            if (v == 0)
                continue;
            rc |= labels_set(l, "upstream", groups[g].label1, "backend", groups[g].label2,
                             "kind", error_names[k]);
            rc |= put_u64_sample(b, "sluice_upstream_errors_total", "", l, NULL, v);
        }
    }
    return rc;
}

static int render_plugins(struct sl_buf *b, struct labels *l)
{
    static const struct { const char *name, *help; uint32_t off; } counters[] = {
        {"sluice_plugin_calls_total", "Plugin hook calls, by plugin and phase.", PHASE_CALLS},
        {"sluice_plugin_errors_total", "Plugin hook calls that failed, by plugin and phase.",
         PHASE_ERRORS},
        {"sluice_plugin_budget_kills_total",
         "Plugin hook calls stopped by their CPU or memory budget.", PHASE_BUDGET},
    };
    int rc = 0;
    for (size_t c = 0; c < 3; c++) {
        rc |= put_family(b, counters[c].name, "counter", counters[c].help);
        for (size_t g = 0; g < ngroups; g++) {
            if (groups[g].kind != G_PLUGIN)
                continue;
            for (int ph = 0; ph < SL_PHASE_COUNT; ph++) {
                if (!(groups[g].phases & (1u << ph)))
                    continue;
                rc |= labels_set(l, "plugin", groups[g].label1, "phase",
                                 sl_phase_name((enum sl_phase)ph), NULL, NULL);
                rc |= put_u64_sample(b, counters[c].name, "", l, NULL,
                                     total(groups[g].slot + (uint32_t)(ph * PHASE_SLOTS) +
                                           counters[c].off));
            }
        }
    }
    rc |= put_family(b, "sluice_plugin_duration_seconds", "histogram",
                     "Time spent in plugin hook calls, by plugin and phase.");
    for (size_t g = 0; g < ngroups; g++) {
        if (groups[g].kind != G_PLUGIN)
            continue;
        for (int ph = 0; ph < SL_PHASE_COUNT; ph++) {
            if (!(groups[g].phases & (1u << ph)))
                continue;
            rc |= labels_set(l, "plugin", groups[g].label1, "phase",
                             sl_phase_name((enum sl_phase)ph), NULL, NULL);
            rc |= put_histogram(b, "sluice_plugin_duration_seconds", l,
                                groups[g].slot + (uint32_t)(ph * PHASE_SLOTS) + PHASE_HIST,
                                plugin_le, 9);
        }
    }
    return rc;
}

static int render_reloads(struct sl_buf *b, struct labels *l, const struct sl_reload_status *st,
                          size_t live)
{
    int rc = put_family(b, "sluice_reloads_total", "counter",
                        "Configuration reloads, by result.");
    rc |= labels_set(l, "result", "success", NULL, NULL, NULL, NULL);
    rc |= put_u64_sample(b, "sluice_reloads_total", "", l, NULL, st->ok);
    rc |= labels_set(l, "result", "failure", NULL, NULL, NULL, NULL);
    rc |= put_u64_sample(b, "sluice_reloads_total", "", l, NULL, st->failed);
    rc |= put_gauge(b, "sluice_config_last_reload_successful",
                    "1 when the last reload succeeded (or none was tried), else 0.",
                    !st->attempted || st->last_ok);
    rc |= put_gauge(b, "sluice_config_generation",
                    "Id of the generation new requests run on.", (int64_t)st->generation);
    rc |= put_gauge(b, "sluice_generations_live",
                    "Generations alive: the current one and older ones requests still use.",
                    (int64_t)live);
    return rc;
}

static int render_custom(struct sl_buf *b, struct labels *l)
{
    int rc = 0;
    labels_set(l, NULL, NULL, NULL, NULL, NULL, NULL);
    for (int h = 0; h < ncustom; h++) {
        const struct custom *m = customs[h];
        if (m->type == SL_METRIC_COUNTER) {
            rc |= put_family(b, m->name, "counter", m->help);
            rc |= put_sample_head(b, m->name, "", l, NULL);
            rc |= put_double(b, total_double(m->slot));
            rc |= sl_buf_append(b, "\n", 1);
            continue;
        }
        rc |= put_family(b, m->name, "histogram", m->help);
        uint64_t cum = 0;
        struct sl_buf le = {0};
        for (size_t i = 0; i <= m->nbuckets; i++) {
            cum += total(m->slot + (uint32_t)i);
            sl_buf_clear(&le);
            rc |= sl_buf_append_str(&le, "le=\"");
            rc |= i < m->nbuckets ? put_double(&le, m->bounds[i]) : sl_buf_append_str(&le, "+Inf");
            rc |= sl_buf_append(&le, "\"", 2);   /* with its NUL */
            rc |= put_u64_sample(b, m->name, "_bucket", l, sl_buf_head(&le), cum);
        }
        sl_buf_fini(&le);
        rc |= put_sample_head(b, m->name, "_sum", l, NULL);
        rc |= put_double(b, total_double(m->slot + (uint32_t)m->nbuckets + 1));
        rc |= sl_buf_append(b, "\n", 1);
        rc |= put_u64_sample(b, m->name, "_count", l, NULL, cum);
    }
    return rc;
}

int sl_metrics_render(struct sl_buf *out)
{
    struct labels l = {{0}};
    /* Read before taking the lock: a reload holds its own lock while it
     * builds a generation, which takes ours. */
    struct sl_reload_status *st = malloc(sizeof *st);
    if (st == NULL)
        return -1;
    sl_reload_get_status(st);
    size_t live = sl_gen_live_count();
    pthread_mutex_lock(&lock);
    int rc = init_locked(1);
    if (rc == 0) {
        rc |= render_routes(out, &l);
        rc |= render_upstreams(out, &l);
        rc |= render_plugins(out, &l);
        rc |= render_reloads(out, &l, st, live);
        rc |= render_custom(out, &l);
    }
    pthread_mutex_unlock(&lock);
    sl_buf_fini(&l.text);
    free(st);
    return rc < 0 ? -1 : 0;
}
