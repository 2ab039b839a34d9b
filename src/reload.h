/* Reloads: building the next generation from the configuration file and
 * publishing it. SIGHUP, the file watcher and the admin API all go through
 * sl_reload_run, which serializes them, so two reloads never interleave and
 * each sees the result of the one before. A reload whose inputs (the
 * configuration file and every plugin file it loads) have the content the
 * running generation was built from does nothing. */
#ifndef SL_RELOAD_H
#define SL_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sl_config;

/* Outcome counters and the last attempt, for logs and the admin API. */
struct sl_reload_status {
    uint64_t ok;                    /* successful reloads since start */
    uint64_t failed;                /* failed reloads since start */
    uint64_t unchanged;             /* reloads skipped: no input had changed (not in ok) */
    bool attempted;                 /* at least one reload was tried */
    bool last_ok;                   /* the last attempt did not fail (published or unchanged) */
    bool last_unchanged;            /* the last attempt found nothing changed */
    int64_t last_ms;                /* wall clock of the last attempt (ms since the epoch) */
    uint64_t generation;            /* the current generation's id */
    char last_reason[32];           /* what asked for it: "SIGHUP", "watch", "admin" */
    char last_error[4096];          /* the last failure's messages, one per line; "" after success */
};

/* Records the configuration file reloads re-read (NULL in quick mode, where
 * a reload is refused) and the generation that is running. Called once by
 * main before any reload can be asked for; path is borrowed for the life of
 * the process. */
void sl_reload_init(const char *config_path, uint64_t generation);

/* Reloads the configuration: first compares the configuration file and the
 * plugin files of the running generation with what it was built from
 * (sl_gen_inputs_unchanged); when nothing changed it logs so, counts the
 * reload as unchanged and returns 1 with the running generation's id in
 * *generation. Otherwise it re-reads the configuration and every plugin it
 * names, builds a complete generation on the calling thread and publishes
 * it with one swap. Settings that need a restart (workers, listeners,
 * access log) keep their running values, with a warning. On any failure
 * nothing changes: every error is logged with file:line, the failure is
 * counted and -1 is returned with the messages (one per line) in err. On
 * success returns 0 and the new generation's id in *generation (may be
 * NULL). reason names the trigger for logs and status ("SIGHUP", "watch",
 * "admin"). Afterwards the file watcher re-reads what to watch
 * (sl_watch_sync). Thread-safe; concurrent calls run one after the other. */
int sl_reload_run(const char *reason, uint64_t *generation, char *err, size_t errlen);

/* sl_reload_run without the unchanged check: always builds and publishes
 * a new generation (fresh Lua VMs, names resolved again), or fails. Never
 * returns 1. For an explicit "reload anyway" (the admin API). */
int sl_reload_force(const char *reason, uint64_t *generation, char *err, size_t errlen);

/* What the admin API can ask of a plugin, by name, for every instance of
 * it (global and per route). */
enum sl_plugin_switch {
    SL_PLUGIN_SWITCH_RESET = 0,     /* drop the admin override: the file decides again */
    SL_PLUGIN_SWITCH_ON,            /* enabled everywhere the file lists it */
    SL_PLUGIN_SWITCH_OFF,           /* disabled everywhere */
};

/* sl_reload_switch_plugin's refusals (besides -1, a failed reload). */
#define SL_RELOAD_NO_PLUGIN (-2)    /* the running generation has no plugin of that name */
#define SL_RELOAD_NO_CHANGE (-3)    /* already so: every instance has that state, or no
                                     * override to reset */

/* Sets (ON, OFF) or clears (RESET) the admin override of plugin name and
 * publishes a generation built with it, through the same pipeline and lock
 * as sl_reload_force (the configuration file is read again too). An
 * override applies to every later reload until the configuration file's
 * own enabled settings for that plugin change (its `enabled` values, in
 * file order, differ from when the override was set), until it is reset,
 * or until the process restarts; setting the state the file already gives
 * clears it. Returns 0 with the new id in *generation; SL_RELOAD_NO_PLUGIN
 * or SL_RELOAD_NO_CHANGE with nothing done; or -1 when the reload failed
 * (messages in err, the override left as it was). Thread-safe. */
int sl_reload_switch_plugin(const char *name, enum sl_plugin_switch to, uint64_t *generation,
                            char *err, size_t errlen);

/* The admin override of plugin name: 1 forced on, 0 forced off, -1 none.
 * Thread-safe. */
int sl_reload_plugin_override(const char *name);

/* Copies the reload counters and the last attempt's outcome into out.
 * Thread-safe. */
void sl_reload_get_status(struct sl_reload_status *out);

#endif
