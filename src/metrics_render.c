/* The text exposition format 0.0.4 of the metrics registry (metrics.c):
 * HELP and TYPE once per family, before its samples; label values and
 * help text escaped; histograms as cumulative _bucket series ending at
 * +Inf, then _sum and _count. */
#include "metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "metrics-t.h"
#include "reload.h"
#include "shdict.h"

static const char *const latency_le[SL_METRICS_NBUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5", "10",
};
static const char *const plugin_le[SL_METRICS_NBUCKETS] = {
    "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005", "0.001",
    "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
};

static const char *const method_names[SL_METRICS_NMETHODS] = {
    "other", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
};
static const char *const status_names[SL_METRICS_NSTATUS] = {
    "none", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
};
static const char *const error_names[SL_METRICS_UP_ERROR_COUNT] = {
    "connect_refused", "connect_timeout", "response_timeout", "reset", "truncated",
    "bad_response",
};

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
/* A histogram's observations: the sum of its buckets (+Inf included). */
static uint64_t hist_count(uint32_t slot)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= SL_METRICS_NBUCKETS; i++)
        n += sl_metrics_registry_sum(slot + i);
    return n;
}

static int put_histogram(struct sl_buf *b, const char *name, const struct labels *l,
                         uint32_t slot, const char *const *le, int scale)
{
    int rc = 0;
    uint64_t cum = 0;
    char extra[32];
    for (unsigned i = 0; i <= SL_METRICS_NBUCKETS; i++) {
        cum += sl_metrics_registry_sum(slot + i);
        snprintf(extra, sizeof extra, "le=\"%s\"", i < SL_METRICS_NBUCKETS ? le[i] : "+Inf");
        rc |= put_u64_sample(b, name, "_bucket", l, extra, cum);
    }
    uint64_t sum = sl_metrics_registry_sum(slot + SL_METRICS_NBUCKETS + 1);
    uint64_t unit = scale == 6 ? 1000000u : 1000000000u;
    rc |= put_sample_head(b, name, "_sum", l, NULL);
    rc |= sl_buf_printf(b, "%llu.%0*llu\n", (unsigned long long)(sum / unit), scale,
                        (unsigned long long)(sum % unit));
    return rc | put_u64_sample(b, name, "_count", l, NULL, cum);
}

/* What one rendering works with: the output, a scratch label buffer and
 * the registry's records (borrowed under its lock). */
struct render {
    struct sl_buf *out;
    struct labels l;
    const struct sl_metrics_group *groups;
    size_t ngroups;
};

static int render_routes(struct render *r)
{
    struct sl_buf *b = r->out;
    int rc = put_family(b, "sluice_requests_total", "counter",
                        "Requests finished, by route, method class and status class.");
    for (size_t i = 0; i < r->ngroups; i++) {
        const struct sl_metrics_group *g = &r->groups[i];
        if (g->kind != SL_METRICS_G_ROUTE)
            continue;
        for (int m = 0; m < SL_METRICS_NMETHODS; m++) {
            for (int st = 0; st < SL_METRICS_NSTATUS; st++) {
                uint32_t cell = (uint32_t)(SL_METRICS_ROUTE_REQUESTS + m * SL_METRICS_NSTATUS + st);
                uint64_t v = sl_metrics_registry_sum(g->slot + cell);
                if (v == 0)
                    continue;
                rc |= labels_set(&r->l, "route", g->label1, "method", method_names[m],
                                 "status", status_names[st]);
                rc |= put_u64_sample(b, "sluice_requests_total", "", &r->l, NULL, v);
            }
        }
    }
    rc |= put_family(b, "sluice_request_duration_seconds", "histogram",
                     "Time from a request's head to its end, by route.");
    for (size_t i = 0; i < r->ngroups; i++) {
        const struct sl_metrics_group *g = &r->groups[i];
        if (g->kind != SL_METRICS_G_ROUTE)
            continue;
        rc |= labels_set(&r->l, "route", g->label1, NULL, NULL, NULL, NULL);
        rc |= put_histogram(b, "sluice_request_duration_seconds", &r->l,
                            g->slot + SL_METRICS_ROUTE_HIST, latency_le, 6);
    }
    return rc;
}

static int put_gauge(struct sl_buf *b, const char *name, const char *help, int64_t v)
{
    int rc = put_family(b, name, "gauge", help);
    return rc | sl_buf_printf(b, "%s %lld\n", name, (long long)v);
}

/* Labels upstream and backend of g, and a third when n3 is set. */
static int backend_labels(struct render *r, const struct sl_metrics_group *g, const char *n3,
                          const char *v3)
{
    return labels_set(&r->l, "upstream", g->label1, "backend", g->label2, n3, v3);
}

static int render_upstreams(struct render *r)
{
    struct sl_buf *b = r->out;
    int rc = put_gauge(b, "sluice_connections_active", "Open client connections.",
                       (int64_t)sl_metrics_registry_sum(SL_METRICS_SLOT_CLIENT_CONNS));
    rc |= put_gauge(b, "sluice_upstream_connections_active",
                    "Open upstream connections, idle pooled ones included.",
                    (int64_t)sl_metrics_registry_sum(SL_METRICS_SLOT_UPSTREAM_CONNS));
    rc |= put_family(b, "sluice_upstream_requests_total", "counter",
                     "Requests sent to a backend (their last attempt), by connection: "
                     "new or reused from the pool.");
    for (size_t i = 0; i < r->ngroups; i++) {
        const struct sl_metrics_group *g = &r->groups[i];
        if (g->kind != SL_METRICS_G_BACKEND)
            continue;
        for (uint32_t reused = 0; reused < 2; reused++) {
            rc |= backend_labels(r, g, "connection", reused ? "reused" : "new");
            rc |= put_u64_sample(b, "sluice_upstream_requests_total", "", &r->l, NULL,
                                 sl_metrics_registry_sum(g->slot + SL_METRICS_BACKEND_USES + reused));
        }
    }
    static const struct { const char *name, *help; uint32_t off; } hists[] = {
        {"sluice_upstream_connect_duration_seconds", "Time to connect to a backend.",
         SL_METRICS_BACKEND_CONNECT},
        {"sluice_upstream_response_duration_seconds",
         "Time from sending a request to a backend to the first byte of its response.",
         SL_METRICS_BACKEND_FIRST_BYTE},
    };
    for (size_t h = 0; h < 2; h++) {
        rc |= put_family(b, hists[h].name, "histogram", hists[h].help);
        for (size_t i = 0; i < r->ngroups; i++) {
            const struct sl_metrics_group *g = &r->groups[i];
            if (g->kind != SL_METRICS_G_BACKEND)
                continue;
            rc |= backend_labels(r, g, NULL, NULL);
            rc |= put_histogram(b, hists[h].name, &r->l, g->slot + hists[h].off, latency_le, 6);
        }
    }
    rc |= put_family(b, "sluice_upstream_errors_total", "counter",
                     "Failed attempts at a backend, by kind.");
    for (size_t i = 0; i < r->ngroups; i++) {
        const struct sl_metrics_group *g = &r->groups[i];
        if (g->kind != SL_METRICS_G_BACKEND)
            continue;
        for (uint32_t k = 0; k < SL_METRICS_UP_ERROR_COUNT; k++) {
            uint64_t v = sl_metrics_registry_sum(g->slot + SL_METRICS_BACKEND_ERRORS + k);
            if (v == 0)
                continue;
            rc |= backend_labels(r, g, "kind", error_names[k]);
            rc |= put_u64_sample(b, "sluice_upstream_errors_total", "", &r->l, NULL, v);
        }
    }
    return rc;
}

static int render_plugins(struct render *r)
{
    /* calls are the duration histogram's count (UINT32_MAX: sum its buckets) */
    static const struct { const char *name, *help; uint32_t off; } counters[] = {
        {"sluice_plugin_calls_total", "Plugin hook calls, by plugin and phase.", UINT32_MAX},
        {"sluice_plugin_errors_total", "Plugin hook calls that failed, by plugin and phase.",
         SL_METRICS_PHASE_ERRORS},
        {"sluice_plugin_budget_kills_total",
         "Plugin hook calls stopped by their CPU or memory budget.", SL_METRICS_PHASE_BUDGET},
    };
    struct sl_buf *b = r->out;
    int rc = 0;
    /* c == 3: the duration histograms */
    for (size_t c = 0; c <= 3; c++) {
        if (c < 3)
            rc |= put_family(b, counters[c].name, "counter", counters[c].help);
        else
            rc |= put_family(b, "sluice_plugin_duration_seconds", "histogram",
                             "Time spent in plugin hook calls, by plugin and phase.");
        for (size_t i = 0; i < r->ngroups; i++) {
            const struct sl_metrics_group *g = &r->groups[i];
            if (g->kind != SL_METRICS_G_PLUGIN)
                continue;
            for (uint32_t ph = 0; ph < SL_PHASE_COUNT; ph++) {
                if (!(g->phases & (1u << ph)))
                    continue;
                uint32_t base = g->slot + ph * SL_METRICS_PHASE_SLOTS;
                rc |= labels_set(&r->l, "plugin", g->label1, "phase",
                                 sl_phase_name((enum sl_phase)ph), NULL, NULL);
                if (c < 3)
                    rc |= put_u64_sample(b, counters[c].name, "", &r->l, NULL,
                                         counters[c].off == UINT32_MAX
                                             ? hist_count(base + SL_METRICS_PHASE_HIST)
                                             : sl_metrics_registry_sum(base + counters[c].off));
                else
                    rc |= put_histogram(b, "sluice_plugin_duration_seconds", &r->l,
                                        base + SL_METRICS_PHASE_HIST, plugin_le, 9);
            }
        }
    }
    return rc;
}

static int render_custom(struct render *r)
{
    struct sl_buf *b = r->out;
    size_t n;
    const struct sl_metrics_custom *const *customs = sl_metrics_registry_customs(&n);
    int rc = labels_set(&r->l, NULL, NULL, NULL, NULL, NULL, NULL);
    struct sl_buf le = {0};
    for (size_t h = 0; h < n; h++) {
        const struct sl_metrics_custom *m = customs[h];
        if (m->type == SL_METRIC_COUNTER) {
            rc |= put_family(b, m->name, "counter", m->help);
            rc |= put_sample_head(b, m->name, "", &r->l, NULL);
            rc |= put_double(b, sl_metrics_registry_sum_double(m->slot));
            rc |= sl_buf_append(b, "\n", 1);
            continue;
        }
        rc |= put_family(b, m->name, "histogram", m->help);
        uint64_t cum = 0;
        for (size_t i = 0; i <= m->nbuckets; i++) {
            cum += sl_metrics_registry_sum(m->slot + (uint32_t)i);
            sl_buf_clear(&le);
            rc |= sl_buf_append_str(&le, "le=\"");
            rc |= i < m->nbuckets ? put_double(&le, m->bounds[i]) : sl_buf_append_str(&le, "+Inf");
            rc |= sl_buf_append(&le, "\"", 2);   /* with its NUL */
            rc |= put_u64_sample(b, m->name, "_bucket", &r->l, sl_buf_head(&le), cum);
        }
        rc |= put_sample_head(b, m->name, "_sum", &r->l, NULL);
        rc |= put_double(b, sl_metrics_registry_sum_double(m->slot + (uint32_t)m->nbuckets + 1));
        rc |= sl_buf_append(b, "\n", 1);
        rc |= put_u64_sample(b, m->name, "_count", &r->l, NULL, cum);
    }
    sl_buf_fini(&le);
    return rc;
}

/* What the renderer needs from outside the registry, read before taking
 * its lock: a reload holds its own lock while it builds a generation,
 * which takes the registry's. */
struct outside {
    struct sl_reload_status reload;
    size_t live;                        /* generations alive */
    size_t ndicts;
    struct dict {
        char name[SL_METRICS_NAME_MAX + 1];
        struct sl_shdict_stats st;
    } *dicts;                           /* owned */
};

static int read_outside(struct outside *o)
{
    memset(o, 0, sizeof *o);
    sl_reload_get_status(&o->reload);
    o->live = sl_gen_live_count();
    struct sl_gen *g = sl_gen_acquire();
    if (g == NULL || g->shdicts == NULL) {
        sl_gen_unref(g);
        return 0;
    }
    size_t n = sl_shdict_set_count(g->shdicts);
    o->dicts = calloc(n ? n : 1, sizeof *o->dicts);
    if (o->dicts == NULL) {
        sl_gen_unref(g);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct sl_shdict *d = sl_shdict_set_at(g->shdicts, i);
        snprintf(o->dicts[i].name, sizeof o->dicts[i].name, "%s", sl_shdict_name(d));
        sl_shdict_stats(d, &o->dicts[i].st);
    }
    o->ndicts = n;
    sl_gen_unref(g);
    return 0;
}

static int render_outside(struct render *r, const struct outside *o)
{
    struct sl_buf *b = r->out;
    const struct sl_reload_status *st = &o->reload;
    int rc = put_family(b, "sluice_reloads_total", "counter",
                        "Configuration reloads, by result.");
    rc |= labels_set(&r->l, "result", "success", NULL, NULL, NULL, NULL);
    rc |= put_u64_sample(b, "sluice_reloads_total", "", &r->l, NULL, st->ok);
    rc |= labels_set(&r->l, "result", "failure", NULL, NULL, NULL, NULL);
    rc |= put_u64_sample(b, "sluice_reloads_total", "", &r->l, NULL, st->failed);
    rc |= put_gauge(b, "sluice_config_last_reload_successful",
                    "1 when the last reload succeeded (or none was tried), else 0.",
                    !st->attempted || st->last_ok);
    rc |= put_gauge(b, "sluice_config_generation",
                    "Id of the generation new requests run on.", (int64_t)st->generation);
    rc |= put_gauge(b, "sluice_generations_live",
                    "Generations alive: the current one and older ones requests still use.",
                    (int64_t)o->live);
    static const struct { const char *name, *type, *help; } dict_families[] = {
        {"sluice_shared_dict_capacity_bytes", "gauge", "A shared dict's byte budget."},
        {"sluice_shared_dict_used_bytes", "gauge", "Bytes a shared dict's entries hold."},
        {"sluice_shared_dict_entries", "gauge", "Entries in a shared dict."},
        {"sluice_shared_dict_evictions_total", "counter",
         "Live entries evicted from a shared dict to make room."},
        {"sluice_shared_dict_expired_total", "counter",
         "Expired entries removed from a shared dict."},
    };
    for (size_t f = 0; f < sizeof dict_families / sizeof dict_families[0]; f++) {
        rc |= put_family(b, dict_families[f].name, dict_families[f].type, dict_families[f].help);
        for (size_t i = 0; i < o->ndicts; i++) {
            const struct sl_shdict_stats *ds = &o->dicts[i].st;
            uint64_t v = f == 0 ? ds->capacity : f == 1 ? ds->used : f == 2 ? ds->count
                       : f == 3 ? ds->evictions : ds->expired;
            rc |= labels_set(&r->l, "dict", o->dicts[i].name, NULL, NULL, NULL, NULL);
            rc |= put_u64_sample(b, dict_families[f].name, "", &r->l, NULL, v);
        }
    }
    return rc;
}

int sl_metrics_render(struct sl_buf *out)
{
    struct outside o;
    if (read_outside(&o) < 0)
        return -1;
    struct render r = { .out = out };
    int rc = sl_metrics_registry_lock();
    if (rc == 0) {
        r.groups = sl_metrics_registry_groups(&r.ngroups);
        rc |= render_routes(&r);
        rc |= render_upstreams(&r);
        rc |= render_plugins(&r);
        rc |= render_custom(&r);
        sl_metrics_registry_unlock();
        rc |= render_outside(&r, &o);
    }
    free(o.dicts);
    sl_buf_fini(&r.l.text);
    return rc < 0 ? -1 : 0;
}
