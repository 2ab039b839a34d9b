#include "reload.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "buf.h"
#include "config.h"
#include "gen.h"
#include "log.h"
#include "watch.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *config_path;
static struct sl_reload_status status;

void sl_reload_init(const char *path, uint64_t generation)
{
    pthread_mutex_lock(&lock);
    config_path = path;
    status.generation = generation;
    pthread_mutex_unlock(&lock);
}

void sl_reload_get_status(struct sl_reload_status *out)
{
    pthread_mutex_lock(&lock);
    *out = status;
    pthread_mutex_unlock(&lock);
}

/* Appends msg (one or more lines) to err and logs each line at error level. */
static void add_error(char *err, size_t errlen, const char *msg)
{
    size_t used = strlen(err);
    while (*msg != '\0') {
        size_t n = strcspn(msg, "\n");
        if (n > 0) {
            SL_ERROR("%.*s", (int)n, msg);
            if (used + 1 < errlen) {
                int w = snprintf(err + used, errlen - used, "%s%.*s", used > 0 ? "\n" : "",
                                 (int)n, msg);
                used = w < 0 ? used : strlen(err);
            }
        }
        msg += n;
        if (*msg == '\n')
            msg++;
    }
}

static bool same_listeners(const struct sl_config *a, const struct sl_config *b)
{
    if (a->nlisteners != b->nlisteners)
        return false;
    for (size_t i = 0; i < a->nlisteners; i++)
        if (strcmp(a->listeners[i].addr.text, b->listeners[i].addr.text) != 0 ||
            a->listeners[i].backlog != b->listeners[i].backlog)
            return false;
    return true;
}

/* Settings the running process cannot change: the new config keeps the old
 * values (warned about), the rest of the reload goes on. Listening sockets
 * and workers are opened once at start; the access log is opened by each
 * worker at start. */
static void keep_restart_only(struct sl_config *next, const struct sl_config *old)
{
    if (next->workers != old->workers) {
        SL_WARN("sluice: reload: workers %d -> %d needs a restart; keeping %d",
                old->workers, next->workers, old->workers);
        next->workers = old->workers;
    }
    if (!same_listeners(next, old))
        SL_WARN("sluice: reload: listeners changed: that needs a restart; keeping the current ones");
    const char *a = old->log.access_log ? old->log.access_log : "";
    const char *b = next->log.access_log ? next->log.access_log : "";
    if (strcmp(a, b) != 0 || old->log.access_log_format != next->log.access_log_format)
        SL_WARN("sluice: reload: access log settings changed: that needs a restart; keeping the current ones");
}

/* The admin listener keeps its address until a restart (it is bound once,
 * like the proxy's listeners) and, when the new file drops admin:, its
 * token too. The token otherwise follows the file, but a listener on a
 * non-loopback address is never left without one. Returns 0, or -1 with
 * the message in err. */
static int keep_admin(struct sl_config *next, const struct sl_config *old, char *err,
                      size_t errlen)
{
    const struct sl_admin_conf *o = &old->admin;
    struct sl_admin_conf *n = &next->admin;
    if (!o->enabled) {
        if (n->enabled)
            SL_WARN("sluice: reload: admin listener added: that needs a restart");
        return 0;
    }
    if (!n->enabled) {
        SL_WARN("sluice: reload: admin listener removed: that needs a restart; keeping it");
        n->line = o->line;
        n->col = o->col;
        if (o->token != NULL && (n->token = strdup(o->token)) == NULL) {
            snprintf(err, errlen, "sluice: reload: out of memory");
            return -1;
        }
    } else if (strcmp(n->addr.text, o->addr.text) == 0) {
        return 0;
    } else {
        SL_WARN("sluice: reload: admin listen %s -> %s needs a restart; keeping %s",
                o->addr.text, n->addr.text, o->addr.text);
        free(n->addr.text);
    }
    n->enabled = true;
    n->addr = o->addr;
    if ((n->addr.text = strdup(o->addr.text)) == NULL) {
        snprintf(err, errlen, "sluice: reload: out of memory");
        return -1;
    }
    if (n->token == NULL && !sl_addr_is_loopback(&n->addr)) {
        snprintf(err, errlen, "%s:%d:%d: admin: a token is required: the admin listener "
                 "stays on %s, which is not a loopback address, until a restart",
                 next->path ? next->path : "-", n->line, n->col, n->addr.text);
        return -1;
    }
    return 0;
}

/* --- admin overrides of plugins' enabled settings (docs/ADMIN.md) -------------- */

struct override {
    char *name;                     /* owned */
    bool enabled;
    char *fingerprint;              /* owned: the file's own enabled values for name when
                                     * the override was set, one '1' or '0' per entry in
                                     * file order; NULL until the first load */
};

struct overrides {
    struct override *v;             /* owned */
    size_t n;
};

/* The committed table, applied by every reload; under lock. */
static struct overrides overrides;

static void overrides_fini(struct overrides *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->v[i].name);
        free(t->v[i].fingerprint);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

static int overrides_copy(struct overrides *dst, const struct overrides *src)
{
    dst->v = calloc(src->n + 1, sizeof *dst->v);
    dst->n = 0;
    if (dst->v == NULL)
        return -1;
    for (size_t i = 0; i < src->n; i++) {
        struct override *o = &dst->v[dst->n++];
        o->name = strdup(src->v[i].name);
        o->enabled = src->v[i].enabled;
        o->fingerprint = src->v[i].fingerprint ? strdup(src->v[i].fingerprint) : NULL;
        if (o->name == NULL || (src->v[i].fingerprint != NULL && o->fingerprint == NULL)) {
            overrides_fini(dst);
            return -1;
        }
    }
    return 0;
}

static void overrides_remove(struct overrides *t, size_t i)
{
    free(t->v[i].name);
    free(t->v[i].fingerprint);
    memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof *t->v);
    t->n--;
}

static long overrides_find(const struct overrides *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Every entry of name in cfg, global first, then each route's, in file
 * order; f is called with each. */
static void for_each_entry(struct sl_config *cfg, const char *name,
                           void (*f)(struct sl_plugin_conf *pc, void *arg), void *arg)
{
    for (size_t i = 0; i < cfg->nplugins; i++)
        if (cfg->plugins[i].name != NULL && strcmp(cfg->plugins[i].name, name) == 0)
            f(&cfg->plugins[i], arg);
    for (size_t r = 0; r < cfg->nroutes; r++)
        for (size_t i = 0; i < cfg->routes[r].nplugins; i++)
            if (cfg->routes[r].plugins[i].name != NULL &&
                strcmp(cfg->routes[r].plugins[i].name, name) == 0)
                f(&cfg->routes[r].plugins[i], arg);
}

static void add_flag(struct sl_plugin_conf *pc, void *arg)
{
    struct sl_buf *b = arg;
    sl_buf_append(b, pc->enabled ? "1" : "0", 1);
}

static void force_enabled(struct sl_plugin_conf *pc, void *arg)
{
    pc->enabled = *(const bool *)arg;
}

/* The file's own enabled values for name, as a string of '1' and '0'. */
static char *fingerprint(struct sl_config *cfg, const char *name)
{
    struct sl_buf b = {0};
    for_each_entry(cfg, name, add_flag, &b);
    if (sl_buf_append(&b, "", 1) < 0) {
        sl_buf_fini(&b);
        return NULL;
    }
    return b.data;
}

/* Applies t to a freshly loaded cfg. An override whose plugin's enabled
 * values in the file changed since it was set is dropped (the file has
 * the last word), and so is one that asks for what the file says anyway. */
static int apply_overrides(struct overrides *t, struct sl_config *cfg)
{
    for (size_t i = 0; i < t->n;) {
        struct override *o = &t->v[i];
        char *fp = fingerprint(cfg, o->name);
        if (fp == NULL)
            return -1;
        if (o->fingerprint == NULL) {
            o->fingerprint = fp;
            fp = NULL;
        } else if (strcmp(fp, o->fingerprint) != 0) {
            SL_INFO("sluice: reload: the admin override of plugin %s (%s) ends: the "
                    "configuration file changed its enabled setting", o->name,
                    o->enabled ? "enabled" : "disabled");
            free(fp);
            overrides_remove(t, i);
            continue;
        }
        free(fp);
        if (strspn(o->fingerprint, o->enabled ? "1" : "0") == strlen(o->fingerprint)) {
            overrides_remove(t, i);
            continue;
        }
        for_each_entry(cfg, o->name, force_enabled, &o->enabled);
        i++;
    }
    return 0;
}

struct plugin_switch {
    const char *name;
    enum sl_plugin_switch to;
};

/* Under lock: whether the switch would change anything in the running
 * generation; if so, the table to build with in *want. */
static int switch_check(const struct plugin_switch *sw, struct overrides *want, char *err,
                        size_t errlen)
{
    struct sl_gen *g = sl_gen_acquire();
    size_t found = 0, same = 0;
    for (size_t i = 0; g != NULL && i < g->nplugins; i++) {
        const struct sl_plugin *p = g->plugins[i];
        if (strcmp(p->name, sw->name) != 0)
            continue;
        found++;
        same += p->conf->enabled == (sw->to == SL_PLUGIN_SWITCH_ON);
    }
    sl_gen_unref(g);
    if (found == 0)
        return SL_RELOAD_NO_PLUGIN;
    long idx = overrides_find(&overrides, sw->name);
    if (sw->to == SL_PLUGIN_SWITCH_RESET ? idx < 0 : same == found)
        return SL_RELOAD_NO_CHANGE;
    if (overrides_copy(want, &overrides) < 0)
        goto oom;
    if (idx >= 0)
        overrides_remove(want, (size_t)idx);
    if (sw->to != SL_PLUGIN_SWITCH_RESET) {
        struct override *o = &want->v[want->n];
        o->name = strdup(sw->name);
        o->enabled = sw->to == SL_PLUGIN_SWITCH_ON;
        o->fingerprint = NULL;
        if (o->name == NULL)
            goto oom;
        want->n++;
    }
    return 0;
oom:
    overrides_fini(want);
    snprintf(err, errlen, "sluice: admin: out of memory");
    return -1;
}

int sl_reload_plugin_override(const char *name)
{
    pthread_mutex_lock(&lock);
    long i = overrides_find(&overrides, name);
    int rc = i < 0 ? -1 : overrides.v[i].enabled ? 1 : 0;
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Builds the candidate generation; NULL with the errors in err. ovr is
 * applied to the loaded configuration (and updated: see
 * apply_overrides). */
static struct sl_gen *build(const struct sl_gen *old, struct overrides *ovr, size_t *nerrs,
                            char *err, size_t errlen)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = sl_config_load(config_path, &errs);
    *nerrs = errs.n;
    for (size_t i = 0; i < errs.n; i++)
        add_error(err, errlen, errs.msgs[i]);
    sl_config_errors_fini(&errs);
    if (cfg == NULL) {
        if (*nerrs == 0) {
            add_error(err, errlen, "sluice: reload: cannot load the configuration");
            *nerrs = 1;
        }
        return NULL;
    }
    keep_restart_only(cfg, old->cfg);
    char why[4096];
    why[0] = '\0';
    if (keep_admin(cfg, old->cfg, why, sizeof why) < 0 || apply_overrides(ovr, cfg) < 0) {
        add_error(err, errlen, why[0] ? why : "sluice: reload: out of memory");
        (*nerrs)++;
        sl_config_free(cfg);
        return NULL;
    }
    struct sl_gen *next = sl_gen_new(cfg, why, sizeof why);
    if (next == NULL) {
        add_error(err, errlen, why);
        (*nerrs)++;
    }
    return next;
}

/* Records a failed attempt; err holds its messages. */
static void fail_locked(const char *err)
{
    status.failed++;
    status.last_ok = false;
    status.last_unchanged = false;
    snprintf(status.last_error, sizeof status.last_error, "%s", err);
}

/* Nothing to do: the running generation was built from these very files. */
static int skip_unchanged(const char *reason, const struct sl_gen *old)
{
    status.unchanged++;
    status.last_ok = true;
    status.last_unchanged = true;
    status.last_error[0] = '\0';
    SL_INFO("sluice: %s: %s and its plugins are unchanged; keeping generation %llu", reason,
            config_path, (unsigned long long)old->id);
    return 1;
}

/* Builds and publishes the next generation after old, with the override
 * table want (NULL: the committed one), which becomes the committed one
 * on success. Returns 0 with the new id in *id, or -1 (logged, counted,
 * messages in err). */
static int rebuild(const char *reason, struct sl_gen *old, const struct overrides *want,
                   uint64_t *id, char *err, size_t errlen)
{
    SL_INFO("sluice: %s: reloading %s", reason, config_path);
    size_t nerrs = 0;
    struct overrides cand;
    struct sl_gen *next = NULL;
    if (overrides_copy(&cand, want != NULL ? want : &overrides) < 0) {
        add_error(err, errlen, "sluice: reload: out of memory");
        nerrs = 1;
    } else {
        next = build(old, &cand, &nerrs, err, errlen);
    }
    if (next == NULL) {
        overrides_fini(&cand);
        fail_locked(err);
        SL_ERROR("sluice: reload failed: %zu error%s; keeping generation %llu",
                 nerrs, nerrs == 1 ? "" : "s", (unsigned long long)old->id);
        return -1;
    }
    *id = next->id;
    overrides_fini(&overrides);
    overrides = cand;
    sl_log_set_level(next->cfg->log.level);
    sl_gen_publish(next);
    status.ok++;
    status.last_ok = true;
    status.last_unchanged = false;
    status.last_error[0] = '\0';
    status.generation = *id;
    SL_INFO("sluice: reloaded configuration %s as generation %llu", config_path,
            (unsigned long long)*id);
    return 0;
}

static int run(const char *reason, bool force, const struct plugin_switch *sw,
               uint64_t *generation, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    pthread_mutex_lock(&lock);
    /* A switch that changes nothing is refused before it counts as an
     * attempt. */
    struct overrides want = {0};
    if (sw != NULL) {
        int refused = switch_check(sw, &want, err, errlen);
        if (refused != 0) {
            pthread_mutex_unlock(&lock);
            return refused;
        }
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    status.attempted = true;
    status.last_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    snprintf(status.last_reason, sizeof status.last_reason, "%s", reason);
    struct sl_gen *old = sl_gen_acquire();
    if (config_path == NULL || old == NULL) {
        add_error(err, errlen, "sluice: reload: quick mode has no configuration file to reload");
        fail_locked(err);
        pthread_mutex_unlock(&lock);
        overrides_fini(&want);
        if (old != NULL)
            sl_gen_unref(old);
        return -1;
    }
    uint64_t id = old->id;
    int rc = !force && sl_gen_inputs_unchanged(old)
        ? skip_unchanged(reason, old)
        : rebuild(reason, old, sw != NULL ? &want : NULL, &id, err, errlen);
    pthread_mutex_unlock(&lock);
    overrides_fini(&want);
    sl_gen_unref(old);
    /* After a failure too: the watcher then also watches what the broken
     * file names, so fixing a plugin in a new directory is seen. */
    if (rc != 1)
        sl_watch_sync();
    if (generation != NULL)
        *generation = id;
    return rc;
}

int sl_reload_run(const char *reason, uint64_t *generation, char *err, size_t errlen)
{
    return run(reason, false, NULL, generation, err, errlen);
}

int sl_reload_force(const char *reason, uint64_t *generation, char *err, size_t errlen)
{
    return run(reason, true, NULL, generation, err, errlen);
}

int sl_reload_switch_plugin(const char *name, enum sl_plugin_switch to, uint64_t *generation,
                            char *err, size_t errlen)
{
    struct plugin_switch sw = { .name = name, .to = to };
    return run("admin", true, &sw, generation, err, errlen);
}
