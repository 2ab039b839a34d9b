#include "plugin_native.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "conn.h"
#include "log.h"
#include "lua_vm.h"
#include "plugin_find.h"
#include "plugin_native_host.h"
#include "plugin_native_module.h"
#include "sha256.h"
#include "worker.h"

#define PRIORITY_MAX    1000000
#define RETRY_MS        1000            /* a failed worker_init is retried after this */
/* A worker's state of an instance; only that worker touches it. */
struct worker_slot {
    void *state;                    /* worker_init's */
    bool ready;
    int64_t retry_at_ms;            /* after a failed worker_init: not before this */
};

struct native_impl {
    struct sl_native_module *mod;             /* a reference */
    void *instance;                 /* config_create's */
    sluice_hook_fn hooks[SL_PHASE_COUNT];
    struct worker_slot *workers;    /* owned: one per worker */
    size_t nworkers;
};

/* A plugin's value for one request (the hooks' state argument), in the
 * request's arena, listed from sl_req.plugin_state. */
struct sl_plugin_state {
    const struct sl_plugin *owner;
    void *value;
    struct sl_plugin_state *next;
};

/* The kind of an instance, after what its module's descriptor sets: a
 * module without worker_init has no worker state to look up at each call,
 * and one without request_free nothing to do at the request's end, so the
 * chain skips that walk (defined at the end). */
static const struct sl_plugin_kind *kind_for(const struct sluice_plugin *d);


/* The descriptor's own checks, past the ABI's. */
static int check_desc(const struct sl_plugin_conf *conf, const struct sluice_plugin *d,
                      char *err, size_t errlen)
{
    if (d->name == NULL || strcmp(d->name, conf->name) != 0) {
        snprintf(err, errlen, "the plugin calls itself %s%s%s, not '%s' (the name it is "
                 "configured and found under)", d->name ? "'" : "", d->name ? d->name : "nothing",
                 d->name ? "'" : "", conf->name);
        return -1;
    }
    if (d->priority < -PRIORITY_MAX || d->priority > PRIORITY_MAX) {
        snprintf(err, errlen, "priority %d is outside -%d..%d", d->priority, PRIORITY_MAX,
                 PRIORITY_MAX);
        return -1;
    }
    return 0;
}

/* Runs config_create. Returns 0, or -1 with the plugin's reports in err. */
static int create_instance(struct native_impl *im, const struct sl_plugin_conf *conf,
                           const char *config_file, char *err, size_t errlen)
{
    const struct sluice_plugin *d = &im->mod->desc;
    struct sluice_errors *errs = malloc(sizeof *errs);
    if (errs == NULL) {
        snprintf(err, errlen, "%s:%d:%d: plugin %s: out of memory", config_file ? config_file : "-",
                 conf->line, conf->col, conf->name);
        return -1;
    }
    sl_native_errors_init(errs, conf, config_file, true);
    int rc = SLUICE_OK;
    if (d->config_create != NULL) {
        rc = d->config_create(&sl_native_host, (const struct sluice_conf *)&conf->config, errs,
                              &im->instance);
        if (rc == SLUICE_OK && errs->n > 0 && d->config_destroy != NULL)
            d->config_destroy(im->instance);
        if (rc != SLUICE_OK && errs->n == 0)
            sl_native_host.conf_error(errs, NULL, NULL, "config_create failed and said nothing");
    } else if (conf->config.n > 0) {
        sl_native_host.conf_error(errs, (const struct sluice_conf *)&conf->config, NULL,
                                  "this plugin takes no configuration");
    }
    int ret = errs->n > 0 ? -1 : 0;
    if (ret < 0) {
        im->instance = NULL;
        snprintf(err, errlen, "%s", errs->buf);
    }
    free(errs);
    return ret;
}

static void impl_free(struct native_impl *im)
{
    if (im == NULL)
        return;
    const struct sluice_plugin *d = &im->mod->desc;
    for (size_t i = 0; i < im->nworkers; i++) {
        struct worker_slot *s = &im->workers[i];
        if (s->ready && d->worker_fini != NULL)
            d->worker_fini(im->instance, (int)i, s->state);
        s->ready = false;
    }
    if (im->instance != NULL && d->config_destroy != NULL)
        d->config_destroy(im->instance);
    sl_native_module_put(im->mod);
    free(im->workers);
    free(im);
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* The plugin around im (taking it over, also on failure), or NULL on OOM. */
static struct sl_plugin *plugin_new(const struct sl_plugin_conf *conf, const char *path,
                                    struct native_impl *im)
{
    const struct sluice_plugin *d = &im->mod->desc;
    size_t nworkers = (size_t)sl_lua_nworkers();
    struct sl_plugin *p = calloc(1, sizeof *p);
    if (p == NULL) {
        impl_free(im);
        return NULL;
    }
    p->kind = kind_for(d);
    p->impl = im;
    p->conf = conf;
    p->on_error = conf->on_error;
    p->priority = conf->has_priority ? conf->priority : d->priority;
    const sluice_hook_fn hooks[SL_PHASE_COUNT] = {
        d->request_headers, d->request_body, d->balancer,
        d->response_headers, d->response_body, d->log,
    };
    for (int ph = 0; ph < SL_PHASE_COUNT; ph++) {
        im->hooks[ph] = hooks[ph];
        if (hooks[ph] != NULL)
            p->phases |= 1u << ph;
    }
    p->body = (d->body & (SLUICE_BODY_REQUEST | SLUICE_BODY_RESPONSE)) |
              (d->request_body ? 1u : 0u) | (d->response_body ? 2u : 0u);
    memcpy(p->sha256, im->mod->hash, sizeof p->sha256);
    p->name = xstrdup(conf->name);
    p->version = strdup(d->version ? d->version : "0");
    p->source = strdup(path);
    im->workers = calloc(nworkers ? nworkers : 1, sizeof *im->workers);
    im->nworkers = nworkers;
    if (p->name == NULL || p->version == NULL || p->source == NULL ||
        im->workers == NULL) {
        sl_plugin_free(p);          /* frees im through the kind */
        return NULL;
    }
    return p;
}

int sl_native_plugin_load(const struct sl_plugin_conf *conf, const char *path,
                          const char *config_file, struct sl_plugin **out, char *err,
                          size_t errlen)
{
    char where[PATH_MAX + 64], why[2048];
    *out = NULL;
    snprintf(where, sizeof where, "%s:%d:%d", config_file ? config_file : "-", conf->line,
             conf->col);
    struct sl_native_module *m = sl_native_module_load(path, conf->sha256, why, sizeof why);
    if (m != NULL && check_desc(conf, &m->desc, why, sizeof why) < 0) {
        sl_native_module_put(m);
        m = NULL;
    }
    if (m == NULL) {
        snprintf(err, errlen, "%s: plugin %s: %s: %s", where, conf->name, path, why);
        return -1;
    }
    struct native_impl *im = calloc(1, sizeof *im);
    if (im == NULL) {
        sl_native_module_put(m);
        snprintf(err, errlen, "%s: plugin %s: out of memory", where, conf->name);
        return -1;
    }
    im->mod = m;
    if (create_instance(im, conf, config_file, err, errlen) < 0) {
        impl_free(im);
        return -1;
    }
    *out = plugin_new(conf, path, im);
    if (*out == NULL) {
        snprintf(err, errlen, "%s: plugin %s: out of memory", where, conf->name);
        return -1;
    }
    return 0;
}

/* --- per worker, per request ------------------------------------------------------- */

/* This worker's state of the instance, made by worker_init at the first
 * call there (or after a failed one, at most once a second); NULL without
 * worker_init. Apart from the hot path, which finds a ready slot itself.
 * Returns 0, or -1 with a message in err. */
static __attribute__((noinline)) int worker_start(struct sl_plugin *p, struct sl_conn *c,
                                                  void **out, char *err, size_t errlen)
{
    struct native_impl *im = p->impl;
    const struct sluice_plugin *d = &im->mod->desc;
    size_t id = (size_t)c->w->id;
    *out = NULL;
    if (d->worker_init == NULL)
        return 0;
    if (id >= im->nworkers) {
        snprintf(err, errlen, "worker %zu has no slot (sl_lua_init was told %zu workers)", id,
                 im->nworkers);
        return -1;
    }
    struct worker_slot *s = &im->workers[id];
    if (s->ready) {
        *out = s->state;
        return 0;
    }
    /* A worker_init that fails would fail the same way on every request:
     * try again at most once a second. */
    int64_t now = sl_worker_now_ms(c->w);
    if (s->retry_at_ms != 0 && now < s->retry_at_ms) {
        snprintf(err, errlen, "worker_init failed on worker %zu; retried at most once a second", id);
        return -1;
    }
    struct sluice_errors *errs = malloc(sizeof *errs);
    if (errs == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sl_native_errors_init(errs, p->conf, NULL, false);
    s->state = NULL;
    int rc = d->worker_init(im->instance, (int)id, errs, &s->state);
    if (rc != SLUICE_OK) {
        s->retry_at_ms = now + RETRY_MS;
        snprintf(err, errlen, "worker_init failed on worker %zu: %s", id,
                 errs->n ? errs->buf : "it said nothing");
        free(errs);
        return -1;
    }
    free(errs);
    s->ready = true;
    s->retry_at_ms = 0;
    SL_DEBUG("plugin %s: worker_init done on worker %zu", p->name, id);
    *out = s->state;
    return 0;
}

/* The worker state request_free gets: worker_init's on c's worker, NULL
 * when there is none (no worker_init, or it never succeeded there). */
static void *worker_state_of(const struct native_impl *im, const struct sl_conn *c)
{
    size_t id = (size_t)c->w->id;
    return id < im->nworkers && im->workers[id].ready ? im->workers[id].state : NULL;
}

/* One hook call as the stack holds it. Whatever is needed after the hook
 * is read back from here rather than kept in registers: then no register
 * has to survive the call and the hot path saves and restores none. (req
 * is not first: with the two addresses apart the compiler computes each
 * from the stack pointer instead of keeping one in a saved register.) */
struct call {
    void *state;                    /* the hook's slot while the request keeps none for p */
    enum sl_phase phase;
    struct sluice_req req;          /* all the plugin sees */
};

/* Keeps the state a hook set on its request's first call with one (k's
 * own slot) in a node of the request's arena. Returns 0, or -1 on OOM:
 * the state then goes to request_free at once. */
static int keep_state(struct call *k)
{
    struct sl_conn *c = k->req.c;
    struct sl_plugin_state *s = sl_arena_alloc(&c->arena, sizeof *s);
    if (s == NULL) {
        const struct native_impl *im = k->req.p->impl;
        if (im->mod->desc.request_free != NULL)
            im->mod->desc.request_free(im->instance, worker_state_of(im, c), k->state);
        return -1;
    }
    s->owner = k->req.p;
    s->value = k->state;
    s->next = c->req.plugin_state;
    c->req.plugin_state = s;
    return 0;
}

/* What follows a hook that did more than go on: kept a first state, or
 * returned something other than SLUICE_CONTINUE. Apart from the hot path. */
static __attribute__((noinline)) int after_hook(struct call *k, int rc)
{
    struct sl_conn *c = k->req.c;
    char *err = k->req.err;
    size_t errlen = k->req.errlen;
    if (k->state != NULL && keep_state(k) < 0) {
        snprintf(err, errlen, "out of memory (keeping the request's state)");
        return SL_ACTION_ERROR;
    }
    switch (rc) {
    case SLUICE_CONTINUE:
        return SL_ACTION_CONTINUE;
    case SLUICE_RESPOND:
        if (k->phase != SL_PHASE_LOG && c->req.local_status == 0) {
            snprintf(err, errlen, "the hook returned SLUICE_RESPOND without a local reply "
                     "(call respond first)");
            return SL_ACTION_ERROR;
        }
        return SL_ACTION_RESPOND;
    case SLUICE_ERROR:
        if (err[0] == '\0')
            snprintf(err, errlen, "the hook returned SLUICE_ERROR");
        return SL_ACTION_ERROR;
    default:
        snprintf(err, errlen, "the hook returned %d, not a sluice_action", rc);
        return SL_ACTION_ERROR;
    }
}

/* The hot path of every native hook (spec/bench/steady.sh measures it).
 * The request's states are a list, empty for most requests: a plugin
 * that kept one gets its node's slot to change in place, the others a
 * slot of the call's own, which after_hook keeps when the hook filled it.
 * Only the phases in p->phases are called (the chain and the test harness
 * call no others), so the hook is there; *budget stays as the caller set
 * it, as no budget applies to native code; err is cleared here for
 * after_hook to tell whether the plugin reported anything. */
static inline __attribute__((always_inline)) int call_hook(struct sl_plugin *p,
                                                           enum sl_phase phase,
                                                           struct sl_conn *c, char *err,
                                                           size_t errlen, void *wstate)
{
    const struct native_impl *im = p->impl;
    struct call k = {
        .state = NULL,
        .phase = phase,
        .req = { .c = c, .p = p, .err = err, .errlen = errlen },
    };
    void **slot = &k.state;
    for (struct sl_plugin_state *s = c->req.plugin_state; __builtin_expect(s != NULL, 0);
         s = s->next) {
        if (s->owner == p) {
            slot = &s->value;
            break;
        }
    }
    err[0] = '\0';
    int rc = im->hooks[phase](&k.req, im->instance, wstate, slot);
    if (__builtin_expect(rc != SLUICE_CONTINUE || k.state != NULL, 0))
        return after_hook(&k, rc);
    return SL_ACTION_CONTINUE;
}

/* The call of a module without worker_init: its hooks get NULL. */
static int native_call(struct sl_plugin *p, enum sl_phase phase, struct sl_conn *c, char *err,
                       size_t errlen, bool *budget)
{
    (void)budget;
    return call_hook(p, phase, c, err, errlen, NULL);
}

/* A call of a module with worker_init on a worker whose state is not
 * made yet. Apart, so that the usual call, whose state is ready, makes
 * no call but the hook's. */
static __attribute__((noinline)) int call_first(struct sl_plugin *p, enum sl_phase phase,
                                                struct sl_conn *c, char *err, size_t errlen)
{
    void *wstate;
    if (worker_start(p, c, &wstate, err, errlen) < 0)
        return SL_ACTION_ERROR;
    return call_hook(p, phase, c, err, errlen, wstate);
}

/* The call of a module with worker_init: its hooks get this worker's
 * state, made at the worker's first call. */
static int native_call_worker(struct sl_plugin *p, enum sl_phase phase, struct sl_conn *c,
                              char *err, size_t errlen, bool *budget)
{
    (void)budget;
    const struct native_impl *im = p->impl;
    size_t id = (size_t)c->w->id;
    if (__builtin_expect(id < im->nworkers && im->workers[id].ready, 1))
        return call_hook(p, phase, c, err, errlen, im->workers[id].state);
    return call_first(p, phase, c, err, errlen);
}

/* The request's state goes to request_free. Only modules with a
 * request_free have it: for the others the request's reset drops the
 * list (arena memory) and there is nothing else to do. The slot is
 * cleared so that a second call frees nothing twice. */
static void native_request_done(struct sl_plugin *p, struct sl_conn *c)
{
    struct sl_plugin_state *s = c->req.plugin_state;
    while (s != NULL && s->owner != p)
        s = s->next;
    if (s == NULL || s->value == NULL)
        return;
    const struct native_impl *im = p->impl;
    void *value = s->value;
    s->value = NULL;
    if (im->mod->desc.request_free != NULL)
        im->mod->desc.request_free(im->instance, worker_state_of(im, c), value);
}

/* The worker retired the instance's generation: worker_fini on its own
 * thread. Not made again: no request of that generation runs there any
 * more. */
static void native_worker_release(struct sl_plugin *p, int worker)
{
    struct native_impl *im = p->impl;
    if (worker < 0 || (size_t)worker >= im->nworkers)
        return;
    struct worker_slot *s = &im->workers[worker];
    if (s->ready && im->mod->desc.worker_fini != NULL)
        im->mod->desc.worker_fini(im->instance, worker, s->state);
    s->ready = false;
    s->state = NULL;
}

static void native_release(struct sl_plugin *p)
{
    impl_free(p->impl);
    p->impl = NULL;
}

/* The same file would be found again and holds the same bytes. */
static int native_has_changed(const struct sl_plugin *p, const struct sl_config *cfg)
{
    const struct native_impl *im = p->impl;
    struct sl_plugin_file f;
    char why[512], hex[SL_SHA256_HEX_LEN + 1];
    if (sl_plugin_find(p->conf, (const char *const *)cfg->plugin_paths, cfg->nplugin_paths,
                       cfg->path, &f, why, sizeof why) != 0 ||
        strcmp(f.path, p->source) != 0 || sl_sha256_file(f.path, hex) < 0)
        return 1;
    return strcmp(hex, im->mod->hash) != 0;
}

const struct sl_plugin_kind sl_native_kind = {
    .name = "native",
    .call = native_call_worker,
    .release = native_release,
    .request_done = native_request_done,
    .worker_release = native_worker_release,
    .has_changed = native_has_changed,
};

static const struct sl_plugin_kind native_kind_worker = {
    .name = "native",
    .call = native_call_worker,
    .release = native_release,
    .worker_release = native_worker_release,
    .has_changed = native_has_changed,
};

static const struct sl_plugin_kind native_kind_free = {
    .name = "native",
    .call = native_call,
    .release = native_release,
    .request_done = native_request_done,
    .worker_release = native_worker_release,
    .has_changed = native_has_changed,
};

static const struct sl_plugin_kind native_kind_plain = {
    .name = "native",
    .call = native_call,
    .release = native_release,
    .worker_release = native_worker_release,
    .has_changed = native_has_changed,
};

static const struct sl_plugin_kind *kind_for(const struct sluice_plugin *d)
{
    if (d->worker_init != NULL)
        return d->request_free != NULL ? &sl_native_kind : &native_kind_worker;
    return d->request_free != NULL ? &native_kind_free : &native_kind_plain;
}
