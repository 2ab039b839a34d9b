/* The metrics registry's layout and records, shared by metrics.c (which
 * owns them) and metrics_render.c (which reads them under the registry's
 * lock). Internal: nothing outside these two files includes it; the rest
 * of sluice uses metrics.h. */
#ifndef SL_METRICS_T_H
#define SL_METRICS_T_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

/* Fixed slots at the start of chunk 0. SINK takes the writes of label
 * sets that found the registry full (metrics.c, alloc_slots). */
enum {
    SL_METRICS_SLOT_CLIENT_CONNS = 0,
    SL_METRICS_SLOT_UPSTREAM_CONNS = 1,
    SL_METRICS_SLOT_SINK = 8,
    SL_METRICS_SLOT_FIRST_FREE = SL_METRICS_SLOT_SINK + 128,
};

/* Built-in histograms: 13 finite buckets and +Inf, then the sum. */
#define SL_METRICS_NBUCKETS 13
#define SL_METRICS_HIST_CELLS (SL_METRICS_NBUCKETS + 2)

/* Request counters by method class (0 other, GET, HEAD, POST, PUT,
 * DELETE, PATCH, OPTIONS) and status class (0 none, 1xx .. 5xx, other). */
#define SL_METRICS_NMETHODS 8
#define SL_METRICS_NSTATUS 7

/* A route's range: the requests by method and status class, then the
 * latency histogram (sum in µs). */
#define SL_METRICS_ROUTE_REQUESTS 0
#define SL_METRICS_ROUTE_HIST (SL_METRICS_NMETHODS * SL_METRICS_NSTATUS)
#define SL_METRICS_ROUTE_SLOTS (SL_METRICS_ROUTE_HIST + SL_METRICS_HIST_CELLS)

/* A backend's range: connect and first-byte histograms (sums in µs),
 * failures by kind, requests on new and reused connections. */
#define SL_METRICS_BACKEND_CONNECT 0
#define SL_METRICS_BACKEND_FIRST_BYTE SL_METRICS_HIST_CELLS
#define SL_METRICS_BACKEND_ERRORS (2 * SL_METRICS_HIST_CELLS)
#define SL_METRICS_BACKEND_USES (SL_METRICS_BACKEND_ERRORS + SL_METRICS_UP_ERROR_COUNT)
#define SL_METRICS_BACKEND_SLOTS (SL_METRICS_BACKEND_USES + 2)

/* A plugin's range: per phase, failures, budget kills and the duration
 * histogram (sum in ns). Calls are the histogram's count: one observation
 * per call, so the hot path counts each call once. */
#define SL_METRICS_PHASE_ERRORS 0
#define SL_METRICS_PHASE_BUDGET 1
#define SL_METRICS_PHASE_HIST 2
#define SL_METRICS_PHASE_SLOTS (SL_METRICS_PHASE_HIST + SL_METRICS_HIST_CELLS)
#define SL_METRICS_PLUGIN_SLOTS (SL_METRICS_PHASE_SLOTS * SL_PHASE_COUNT)

enum sl_metrics_group_kind {
    SL_METRICS_G_ROUTE,
    SL_METRICS_G_BACKEND,
    SL_METRICS_G_PLUGIN,
};

/* A named label set and its range. */
struct sl_metrics_group {
    enum sl_metrics_group_kind kind;
    char *key;                  /* owned: kind, labels, '\1' between them */
    char *label1;               /* owned: route / upstream / plugin */
    char *label2;               /* owned: backend address; NULL otherwise */
    uint32_t slot;
    uint32_t phases;            /* G_PLUGIN: every phase its instances had */
};

/* A plugin's own metric. Never freed or moved once published: workers
 * read it through their handle without the lock. */
struct sl_metrics_custom {
    char *name;                 /* owned: the full name */
    char *owner;                /* owned: the plugin's name */
    char *help;                 /* owned; replaced under the lock */
    enum sl_metric_type type;
    size_t nbuckets;
    double bounds[SL_METRICS_MAX_BUCKETS];
    uint32_t slot;              /* counter: one cell; histogram: nbuckets + 1, then the sum */
};

/* Takes the registry's lock (setting the registry up for one worker if
 * nothing did yet) / lets it go. Returns 0, or -1 (lock not held) when
 * out of memory. Everything below needs it held. */
int sl_metrics_registry_lock(void);
void sl_metrics_registry_unlock(void);

/* A slot's value summed over the workers: each worker's cell read once,
 * whole (relaxed load); as an integer, or as a double for the cells of
 * plugins' own metrics that hold one. */
uint64_t sl_metrics_registry_sum(uint32_t slot);
double sl_metrics_registry_sum_double(uint32_t slot);

/* The label sets in the order they were first named (borrowed; *n set),
 * and the plugins' own metrics in the order they were defined. */
const struct sl_metrics_group *sl_metrics_registry_groups(size_t *n);
const struct sl_metrics_custom *const *sl_metrics_registry_customs(size_t *n);

#endif
