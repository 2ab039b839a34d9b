/* Metrics: per-worker counters summed at scrape time, rendered in the
 * Prometheus text exposition format 0.0.4 (docs/METRICS.md lists them).
 *
 * Values live in slots: 64-bit cells, one row per worker, allocated in
 * chunks by the registry in this file and kept for the life of the
 * process. A label set (a route, a backend, a plugin, a plugin's own
 * metric) gets a contiguous range of slots the first time a generation or
 * a plugin names it, keyed by name, so a reload that keeps the name keeps
 * the counters ("metric counters continue", issue 5), and label sets stay
 * bounded by what configurations ever named.
 *
 * Concurrency: a worker only writes its own row, with a relaxed atomic
 * load and store (a plain load, add and store on x86-64 and arm64: no lock
 * prefix, no read-modify-write instruction). The scraper reads every
 * worker's row with relaxed loads, so it sees each cell whole but not the
 * cells of one histogram at one instant: a bucket may be a request ahead of
 * its sum. Nothing on the request path takes a lock; the registry's mutex
 * is taken when slots are handed out (building a generation, a plugin
 * defining a metric) and while rendering. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "plugin.h"

struct sl_conn;
struct sl_gen;

/* Why an upstream attempt failed (sluice_upstream_errors_total{kind}). */
enum sl_metrics_up_error {
    SL_METRICS_UP_CONNECT_REFUSED = 0,  /* connect failed: refused, unreachable, reset */
    SL_METRICS_UP_CONNECT_TIMEOUT,      /* connect timed out */
    SL_METRICS_UP_RESPONSE_TIMEOUT,     /* no (more) response within the response timeout */
    SL_METRICS_UP_RESET,                /* write error, reset or close before any response byte */
    SL_METRICS_UP_TRUNCATED,            /* the origin closed mid-response */
    SL_METRICS_UP_BAD_RESPONSE,         /* malformed response */
    SL_METRICS_UP_ERROR_COUNT,
};

/* What a plugin's own metric is. */
enum sl_metric_type {
    SL_METRIC_COUNTER = 0,
    SL_METRIC_HISTOGRAM = 1,
};

/* Most buckets a plugin's histogram may have (+Inf not counted), the
 * most metrics one plugin may define, and the longest metric name. */
#define SL_METRICS_MAX_BUCKETS 32
#define SL_METRICS_MAX_PER_PLUGIN 64
#define SL_METRICS_NAME_MAX 64

/* Sets the registry up for nworkers workers (rows), once, from the main
 * thread before the first generation is built. Without it the first use
 * sets it up for one worker (the test harness's worker 0). Returns 0, or
 * -1 when out of memory. A second call changes nothing (returns 0). */
int sl_metrics_init(int nworkers);

/* Gives the generation g its metric slots: one range per route (keyed by
 * the route's label, docs/METRICS.md), one for requests without a route,
 * one per backend (keyed by upstream and backend address) and one per
 * plugin instance (keyed by plugin name; stored in each plugin's metrics
 * field). Names seen before get their old slots back. Called by
 * sl_gen_new on the thread building the generation, before it is
 * published. Returns 0, or -1 when out of memory (g->metrics is then
 * NULL). */
int sl_metrics_gen_attach(struct sl_gen *g);

/* Frees what sl_metrics_gen_attach gave g (not the slots, which stay for
 * later generations). NULL-safe on g->metrics. */
void sl_metrics_gen_detach(struct sl_gen *g);

/* Counts the request on c that has just ended at now_us (the loop's
 * clock, microseconds): by route, method and status class, its duration
 * from its start, and, when it went upstream, the connection its last
 * attempt used (new or reused) and that attempt's time to first byte
 * (c->req.up_start_us to up_first_byte_us). Writes the worker's row, no
 * lock: with connects and failures, the only metrics call on a request's
 * path. The request must have a head (and so a pinned generation). */
void sl_metrics_request_done(const struct sl_conn *c, int64_t now_us);

/* Counts a request the proxy refused before its head was complete (400,
 * 408, 414, 431: c->req.status) under route "none" and method "other",
 * on the worker's current generation; no latency is observed. */
void sl_metrics_request_refused(const struct sl_conn *c);

/* The counting of sl_metrics_request_done by indices, for specs and
 * native hosts: route is the index in g->cfg->routes (>= nroutes: no
 * route), method llhttp's method number, status the answer's (0: none),
 * us the duration in microseconds; gidx a backend's index among all of
 * g's, first_byte_us its time to first byte or -1 for none. */
void sl_metrics_count_request(const struct sl_gen *g, int worker, size_t route, int method,
                              int status, int64_t us);
void sl_metrics_count_upstream(const struct sl_gen *g, int worker, size_t gidx, bool reused,
                               int64_t first_byte_us);

/* Observes how long connecting to backend gidx (its index among all of
 * g's backends) took, in microseconds. */
void sl_metrics_upstream_connected(const struct sl_gen *g, int worker, size_t gidx, int64_t us);

/* Counts a failed attempt at backend gidx. */
void sl_metrics_upstream_error(const struct sl_gen *g, int worker, size_t gidx,
                               enum sl_metrics_up_error kind);

/* Gauges: client connections and upstream connections (pooled ones
 * included) opened (+1) and closed (-1) by worker. */
void sl_metrics_client_conns_add(int worker, int delta);
void sl_metrics_upstream_conns_add(int worker, int delta);

/* Counts one call of plugin p's phase on worker that took ns nanoseconds
 * (an observation of its duration histogram, whose count is the calls).
 * Nothing when p's generation did not go through sl_metrics_gen_attach
 * (the plugin test harness). */
void sl_metrics_plugin_call(const struct sl_plugin *p, int worker, enum sl_phase phase,
                            int64_t ns);

/* Counts a failed call (already counted by sl_metrics_plugin_call), and
 * whether a CPU or memory budget stopped it. */
void sl_metrics_plugin_failed(const struct sl_plugin *p, int worker, enum sl_phase phase,
                              bool budget);

/* What the registry holds for plugin p's name in phase, summed over the
 * workers, since the process started (reloads keep the counters): calls,
 * failed calls, calls a budget stopped and their total time. Zeros when
 * p's generation was not attached. Called off the request path (admin). */
struct sl_metrics_plugin_totals {
    uint64_t calls, errors, budget_kills, ns;
};
void sl_metrics_plugin_totals(const struct sl_plugin *p, enum sl_phase phase,
                              struct sl_metrics_plugin_totals *out);

/* Defines a metric of plugin: sluice_plugin_<plugin>_<name> (a '-' in the
 * plugin's name becomes '_'; a counter's name gets _total appended unless
 * it ends with it). name is 1..SL_METRICS_NAME_MAX letters, digits and
 * '_', not starting with a digit or ending in _bucket, _sum or _count;
 * help is at most 1024 bytes of UTF-8 text without control characters.
 * A histogram has nbuckets (1..SL_METRICS_MAX_BUCKETS) strictly increasing
 * finite upper bounds, or buckets NULL for the defaults (0.005 .. 10).
 * Defining the same metric again (every VM of a plugin runs its
 * definitions) returns the same handle and takes the new help; a
 * different type or other buckets are refused, and so is a name another
 * plugin's metric or a built-in metric already has. Thread-safe; meant
 * for load and init time. Returns the handle (>= 0), or -1 with a
 * message in err. */
int sl_metrics_define(const char *plugin, const char *name, const char *help,
                      enum sl_metric_type type, const double *buckets, size_t nbuckets,
                      char *err, size_t errlen);

/* Adds n (finite, >= 0) to a plugin counter on worker. Returns 0, or -1
 * for a bad handle, a histogram's handle or a bad n. */
int sl_metrics_add(int worker, int handle, double n);

/* Records v (finite) in a plugin histogram on worker. Returns 0, or -1
 * for a bad handle, a counter's handle or a bad v. */
int sl_metrics_observe(int worker, int handle, double v);

/* Appends every metric, summed over the workers, to out in the text
 * exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4;
 * charset=utf-8). Thread-safe: meant for the admin thread. Returns 0, or
 * -1 when out of memory (out then holds a partial text). */
int sl_metrics_render(struct sl_buf *out);

#endif
