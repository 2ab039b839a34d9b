#include "plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

static const char *const phase_names[SL_PHASE_COUNT] = {
    "request_headers", "request_body", "balancer",
    "response_headers", "response_body", "log",
};

const char *sl_phase_name(enum sl_phase phase)
{
    return phase < SL_PHASE_COUNT ? phase_names[phase] : "?";
}

int sl_phase_parse(const char *name)
{
    for (int i = 0; i < SL_PHASE_COUNT; i++)
        if (strcmp(name, phase_names[i]) == 0)
            return i;
    return -1;
}

void sl_plugin_free(struct sl_plugin *p)
{
    if (p == NULL)
        return;
    if (p->kind != NULL && p->kind->release != NULL)
        p->kind->release(p);
    free(p->name);
    free(p->version);
    free(p->source);
    free(p);
}

static int compare_plugins(const void *a, const void *b)
{
    const struct sl_plugin *x = *(struct sl_plugin *const *)a;
    const struct sl_plugin *y = *(struct sl_plugin *const *)b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return strcmp(x->name, y->name);
}

static const struct sl_plugin_conf *route_conf_for(const char *name,
                                                   const struct sl_plugin_conf *confs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(confs[i].name, name) == 0)
            return &confs[i];
    return NULL;
}

int sl_chain_build(struct sl_chain *ch, struct sl_plugin **global, size_t nglobal,
                   struct sl_plugin **route, size_t nroute,
                   const struct sl_plugin_conf *route_confs, size_t nroute_confs)
{
    memset(ch, 0, sizeof *ch);
    ch->all = calloc(nglobal + nroute + 1, sizeof *ch->all);
    if (ch->all == NULL)
        return -1;
    /* A route entry replaces the global instance of the same name (or,
     * with enabled: false, removes it). */
    for (size_t i = 0; i < nglobal; i++)
        if (route_conf_for(global[i]->name, route_confs, nroute_confs) == NULL &&
            global[i]->conf->enabled)
            ch->all[ch->nall++] = global[i];
    for (size_t i = 0; i < nroute; i++)
        if (route[i]->conf->enabled)
            ch->all[ch->nall++] = route[i];
    qsort(ch->all, ch->nall, sizeof *ch->all, compare_plugins);
    for (int ph = 0; ph < SL_PHASE_COUNT; ph++) {
        ch->by_phase[ph] = calloc(ch->nall + 1, sizeof *ch->by_phase[ph]);
        if (ch->by_phase[ph] == NULL) {
            sl_chain_fini(ch);
            return -1;
        }
        for (size_t i = 0; i < ch->nall; i++)
            if (ch->all[i]->phases & (1u << ph))
                ch->by_phase[ph][ch->n[ph]++] = ch->all[i];
    }
    for (size_t i = 0; i < ch->nall; i++) {
        ch->needs_request_body |= (ch->all[i]->body & 1u) != 0;
        ch->needs_response_body |= (ch->all[i]->body & 2u) != 0;
        ch->needs_request_done |= ch->all[i]->kind->request_done != NULL;
    }
    return 0;
}

void sl_chain_fini(struct sl_chain *ch)
{
    for (int ph = 0; ph < SL_PHASE_COUNT; ph++)
        free(ch->by_phase[ph]);
    free(ch->all);
    memset(ch, 0, sizeof *ch);
}

void sl_chain_request_done(const struct sl_chain *ch, struct sl_conn *c)
{
    if (!ch->needs_request_done)
        return;
    for (size_t i = 0; i < ch->nall; i++)
        if (ch->all[i]->kind->request_done != NULL)
            ch->all[i]->kind->request_done(ch->all[i], c);
}

/* A hook of p failed: logs and counts it, and applies p's on_error.
 * Returns SL_ACTION_CONTINUE to go on with the phase, or the phase's
 * answer. Out of the hot loop: it runs rarely, and logs. */
static __attribute__((noinline, cold)) int hook_failed(struct sl_plugin *p, enum sl_phase phase,
                                                     struct sl_conn *c, const char *err,
                                                     bool budget)
{
    sl_metrics_plugin_failed(p, c->w->id, phase, budget);
    SL_ERROR("plugin %s: %s phase failed (request %s): %s", p->name,
             sl_phase_name(phase), c->req.id, err[0] ? err : "error");
    if (phase == SL_PHASE_LOG || p->on_error == SL_ON_ERROR_CONTINUE)
        return SL_ACTION_CONTINUE;
    /* Fail closed. Set directly: sl_api_respond refuses once the request
     * went upstream, but a failing response phase must still turn the
     * answer into a 500. */
    static const char body[] = "500 Internal Server Error\n";
    c->req.local_status = 500;
    c->req.local_body = body;
    c->req.local_body_len = sizeof body - 1;
    return SL_ACTION_RESPOND;
}

int sl_chain_run(const struct sl_chain *ch, enum sl_phase phase, struct sl_conn *c)
{
    size_t n = ch->n[phase];
    if (n == 0)
        return SL_ACTION_CONTINUE;
    struct sl_plugin *const *by = ch->by_phase[phase];
    int worker = c->w->id;
    char err[1024];
    /* One clock read per hook plus one: each read ends a hook's time and
     * starts the next one's, so the next plugin is charged the counter
     * update in between. A failure, whose logging may take far longer,
     * reads the clock again. */
    int64_t t0 = sl_clock_ns();
    for (size_t i = 0; i < n; i++) {
        struct sl_plugin *p = by[i];
        bool budget = false;
        err[0] = '\0';
        int rc = p->kind->call(p, phase, c, err, sizeof err, &budget);
        int64_t t1 = sl_clock_ns();
        sl_metrics_plugin_call(p, worker, phase, t1 - t0);
        t0 = t1;
        if (rc == SL_ACTION_CONTINUE)
            continue;
        if (rc == SL_ACTION_ERROR) {
            rc = hook_failed(p, phase, c, err, budget);
            t0 = sl_clock_ns();
            if (rc == SL_ACTION_CONTINUE)
                continue;
            return rc;
        }
        if (phase != SL_PHASE_LOG)
            return SL_ACTION_RESPOND;
    }
    return SL_ACTION_CONTINUE;
}
