/* What the admin listener (admin.c) hands to its endpoint handlers
 * (admin_plugins.c, admin_runtime.c), and what the handlers can ask of it.
 * Internal to the admin API; main uses admin.h. Every handler runs on the
 * admin thread, one request at a time. */
#ifndef SL_ADMIN_ROUTES_H
#define SL_ADMIN_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config-t.h"

struct sl_worker;

/* One request, as routed. Strings are borrowed for the handler's call. */
struct sl_admin_req {
    int method;                 /* llhttp_method_t */
    const char *path;           /* the target before any '?' */
    const char *query;          /* after the '?', "" when none */
    const char *name;           /* the {name} segment of the route, or NULL */
    const char *body;           /* body_len bytes, de-chunked */
    size_t body_len;
};

/* The answer a handler builds: status (200 unless set) and a body written
 * into body, JSON unless content_type says otherwise. */
struct sl_admin_resp {
    int status;
    struct sl_buf *body;        /* borrowed */
    const char *content_type;   /* static; NULL: application/json */
};

typedef void (*sl_admin_handler)(const struct sl_admin_req *rq, struct sl_admin_resp *rs);

/* Replaces whatever rs->body holds with {"error": MESSAGE} and sets the
 * status. */
void sl_admin_error(struct sl_admin_resp *rs, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses the request body as a JSON object into *out (free with
 * sl_value_free). An empty body counts as {}. Anything else that is not a
 * JSON object is answered 400 (the parser's line and column in the
 * message) and -1 returned. */
int sl_admin_body_object(const struct sl_admin_req *rq, struct sl_admin_resp *rs,
                         struct sl_value *out);

/* Checks that a parsed body object has no member other than the NULL-
 * terminated list allowed; answers 400 naming the first stranger and
 * returns -1 otherwise. */
int sl_admin_body_only(const struct sl_value *obj, struct sl_admin_resp *rs,
                       const char *const *allowed);

/* The workers, for reading their per-worker counters and pools: returns
 * the array (and *n) with the admin's worker lock held, or NULL (lock not
 * held) once the process is stopping. Pair with sl_admin_workers_unlock. */
struct sl_worker *sl_admin_workers_lock(int *n);

/* Releases the lock sl_admin_workers_lock took. */
void sl_admin_workers_unlock(void);

/* True once the process started stopping (SIGTERM or SIGINT). */
bool sl_admin_is_draining(void);

/* Milliseconds since the admin listener started (with the process), and
 * the version string main gave it. */
int64_t sl_admin_uptime_ms(void);
const char *sl_admin_version(void);

/* The number of workers main started. */
int sl_admin_nworkers(void);

/* Wall clock in ms since the epoch. */
int64_t sl_admin_now_ms(void);

/* Endpoints of admin_runtime.c: liveness, readiness, process status,
 * reloads, generations and upstreams (docs/ADMIN.md describes each). */
void sl_admin_get_healthz(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_get_readyz(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_get_status(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_post_reload(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_get_generations(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_get_upstreams(const struct sl_admin_req *rq, struct sl_admin_resp *rs);

/* GET /metrics: every metric in the Prometheus text format 0.0.4
 * (metrics.c renders it; docs/METRICS.md lists them). */
void sl_admin_get_metrics(const struct sl_admin_req *rq, struct sl_admin_resp *rs);

/* Endpoints of admin_plugins.c: the plugin list, one plugin with its
 * effective config, and switching a plugin on or off, clearing that
 * override, or reloading it (docs/ADMIN.md describes each). */
void sl_admin_get_plugins(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_get_plugin(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_patch_plugin(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_post_plugin_enable(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_post_plugin_disable(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_post_plugin_reset(const struct sl_admin_req *rq, struct sl_admin_resp *rs);
void sl_admin_post_plugin_reload(const struct sl_admin_req *rq, struct sl_admin_resp *rs);

/* Answers a reload's outcome the same way for every endpoint that runs
 * one: rc and id as sl_reload_run / sl_reload_force return them, err their
 * messages. 200 {"generation": N, "changed": bool} on success, else 500
 * {"error": ..., "errors": [...], "generation": running id}. */
void sl_admin_reload_answer(struct sl_admin_resp *rs, int rc, uint64_t id, const char *err);

#endif
