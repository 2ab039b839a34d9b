/* Reloads: building the next generation from the configuration file and
 * publishing it. SIGHUP, the file watcher and the admin API all go through
 * sl_reload_run, which serializes them, so two reloads never interleave and
 * each sees the result of the one before. */
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
    bool attempted;                 /* at least one reload was tried */
    bool last_ok;                   /* the last attempt succeeded */
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

/* Re-reads the configuration and every plugin it names, builds a complete
 * generation on the calling thread and publishes it with one swap. Settings
 * that need a restart (workers, listeners, access log) keep their running
 * values, with a warning. On any failure nothing changes: every error is
 * logged with file:line, the failure is counted and -1 is returned with the
 * messages (one per line) in err. On success returns 0 and the new
 * generation's id in *generation (may be NULL). reason names the trigger for
 * logs and status ("SIGHUP", "watch", "admin"). Thread-safe; concurrent
 * calls run one after the other. */
int sl_reload_run(const char *reason, uint64_t *generation, char *err, size_t errlen);

/* Copies the reload counters and the last attempt's outcome into out.
 * Thread-safe. */
void sl_reload_get_status(struct sl_reload_status *out);

#endif
