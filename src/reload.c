#include "reload.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "config.h"
#include "gen.h"
#include "log.h"

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

/* Builds the candidate generation; NULL with the errors in err. */
static struct sl_gen *build(const struct sl_gen *old, size_t *nerrs, char *err, size_t errlen)
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
    struct sl_gen *next = sl_gen_new(cfg, why, sizeof why);
    if (next == NULL) {
        add_error(err, errlen, why);
        (*nerrs)++;
    }
    return next;
}

int sl_reload_run(const char *reason, uint64_t *generation, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    pthread_mutex_lock(&lock);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    status.attempted = true;
    status.last_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    snprintf(status.last_reason, sizeof status.last_reason, "%s", reason);
    struct sl_gen *old = sl_gen_acquire();
    if (config_path == NULL || old == NULL) {
        add_error(err, errlen, "sluice: reload: quick mode has no configuration file to reload");
        status.failed++;
        status.last_ok = false;
        snprintf(status.last_error, sizeof status.last_error, "%s", err);
        if (old != NULL)
            sl_gen_unref(old);
        pthread_mutex_unlock(&lock);
        return -1;
    }
    SL_INFO("sluice: %s: reloading %s", reason, config_path);
    size_t nerrs = 0;
    struct sl_gen *next = build(old, &nerrs, err, errlen);
    if (next == NULL) {
        status.failed++;
        status.last_ok = false;
        snprintf(status.last_error, sizeof status.last_error, "%s", err);
        SL_ERROR("sluice: reload failed: %zu error%s; keeping generation %llu",
                 nerrs, nerrs == 1 ? "" : "s", (unsigned long long)old->id);
        sl_gen_unref(old);
        pthread_mutex_unlock(&lock);
        return -1;
    }
    uint64_t id = next->id;
    sl_log_set_level(next->cfg->log.level);
    sl_gen_publish(next);
    sl_gen_unref(old);
    status.ok++;
    status.last_ok = true;
    status.last_error[0] = '\0';
    status.generation = id;
    pthread_mutex_unlock(&lock);
    SL_INFO("sluice: reloaded configuration %s as generation %llu", config_path,
            (unsigned long long)id);
    if (generation != NULL)
        *generation = id;
    return 0;
}
