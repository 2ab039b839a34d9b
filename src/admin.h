/* The admin listener: a small HTTP/1.1 server of JSON endpoints on its own
 * thread and event loop, never inside a worker's (docs/ADMIN.md). It reads
 * the running process (generations, plugins, upstream pools) and drives
 * reloads through the same pipeline as SIGHUP (reload.c). Configured by
 * the admin: key; absent key, no listener. */
#ifndef SL_ADMIN_H
#define SL_ADMIN_H

#include "config-t.h"

struct sl_worker;

/* Binds the admin listener at admin->addr and starts its thread. workers
 * (nworkers of them, already running) are borrowed until
 * sl_admin_detach_workers; version is a static string for /admin/status.
 * The token is not copied: each request reads it from the current
 * generation, so a reload can change it. Returns 0, or -1 with a message
 * logged (address in use, ...). Called once, from the main thread, after
 * the first generation was published and signals were blocked. */
int sl_admin_start(const struct sl_admin_conf *admin, struct sl_worker *workers,
                   int nworkers, const char *version);

/* The process is stopping: /readyz answers 503 from now on, and the admin
 * thread stops reading worker state (the endpoints that need it answer
 * 503), so the workers may be joined and freed. Waits for a request
 * reading that state to finish. Safe to call when the admin listener is
 * not running. */
void sl_admin_detach_workers(void);

/* Stops the admin thread, closes its connections and its listening socket
 * and frees what it owns. Waits for a request being handled (a reload
 * included) to finish. Safe to call when it is not running. */
void sl_admin_stop(void);

#endif
