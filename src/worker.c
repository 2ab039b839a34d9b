#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "gen.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"

#define ACCEPT_BATCH 64

static void update_http_date(struct sl_worker *w)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(w->http_date, sizeof w->http_date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

const char *sl_worker_http_date(struct sl_worker *w)
{
    return w->http_date;
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sl_worker *w = arg;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int cfd = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                SL_WARN("worker %d: accept failed: %s", w->id, strerror(errno));
            return;
        }
        sl_conn_new(w, cfd, (struct sockaddr *)&ss);
    }
}

/* Frees a worker's state for a generation. Its plugins first close what
 * they keep for this worker (Lua VMs), here on the worker's own thread. */
static void wg_free(struct sl_worker *w, struct sl_worker_gen *wg)
{
    struct sl_gen *g = wg->gen;
    for (size_t i = 0; i < g->nplugins; i++) {
        struct sl_plugin *p = g->plugins[i];
        if (p->kind->worker_release != NULL)
            p->kind->worker_release(p, w->id);
    }
    if (wg->lb_states != NULL)
        for (size_t i = 0; i < g->nupstreams; i++)
            if (wg->lb_states[i] != NULL)
                g->upstreams[i].lb->state_free(wg->lb_states[i]);
    free(wg->lb_states);
    free(wg->pools_by_backend);
    sl_gen_unref(g);
    free(wg);
}

/* Frees the retired states no request pins any more. */
static void reap_gens(struct sl_worker *w)
{
    struct sl_worker_gen *wg = LIST_FIRST(&w->retired);
    while (wg != NULL) {
        struct sl_worker_gen *next = LIST_NEXT(wg, link);
        if (wg->inflight == 0) {
            LIST_REMOVE(wg, link);
            w->nretired--;
            SL_DEBUG("worker %d: generation %llu released", w->id,
                     (unsigned long long)wg->gen->id);
            wg_free(w, wg);
        }
        wg = next;
    }
}

struct sl_worker_gen *sl_worker_pin(struct sl_worker *w)
{
    w->cur->inflight++;
    sl_gen_set_inflight(w->cur->gen, w->id, w->cur->inflight);
    return w->cur;
}

void sl_worker_unpin(struct sl_worker *w, struct sl_worker_gen *wg)
{
    --wg->inflight;
    sl_gen_set_inflight(wg->gen, w->id, wg->inflight);
    if (wg->inflight == 0 && wg->retired)
        sl_worker_schedule_reap(w);
}

int sl_worker_sync_gen(struct sl_worker *w)
{
    if (w->cur != NULL && sl_gen_peek() == w->cur->gen)
        return 0;
    struct sl_gen *g = sl_gen_acquire();
    if (g == NULL)
        return -1;
    struct sl_worker_gen *wg = calloc(1, sizeof *wg);
    if (wg == NULL) {
        sl_gen_unref(g);
        SL_ERROR("worker %d: out of memory adopting generation", w->id);
        return -1;
    }
    wg->gen = g;
    wg->lb_states = calloc(g->nupstreams ? g->nupstreams : 1, sizeof *wg->lb_states);
    wg->pools_by_backend = calloc(g->nbackends ? g->nbackends : 1, sizeof *wg->pools_by_backend);
    if (wg->lb_states == NULL || wg->pools_by_backend == NULL)
        goto fail;
    for (size_t i = 0; i < g->nupstreams; i++) {
        struct sl_upstream *u = &g->upstreams[i];
        wg->lb_states[i] = u->lb->state_new(u);
        if (wg->lb_states[i] == NULL)
            goto fail;
        for (size_t j = 0; j < u->nbackends; j++) {
            const struct sl_backend_conf *bc = u->backends[j].conf;
            struct sl_pool *p = sl_pool_get(w, (const struct sockaddr *)&bc->addr.ss,
                                            bc->addr.len, bc->addr.text);
            if (p == NULL)
                goto fail;
            p->max_idle = (size_t)u->conf->keepalive_max_idle;
            p->idle_timeout_ms = u->conf->keepalive_idle_timeout_ms;
            wg->pools_by_backend[u->backends[j].gidx] = p;
        }
    }
    /* Requests in flight keep the old state through their pin; it is freed
     * by the reaper when the last of them ends (at once when none). */
    struct sl_worker_gen *old = w->cur;
    w->cur = wg;
    w->gen = g;
    if (old != NULL) {
        old->retired = true;
        LIST_INSERT_HEAD(&w->retired, old, link);
        w->nretired++;
        if (old->inflight == 0)
            sl_worker_schedule_reap(w);
        SL_DEBUG("worker %d: adopted generation %llu (%zu retired still pinned or pending)",
                 w->id, (unsigned long long)g->id, w->nretired);
    }
    return 0;
fail:
    wg_free(w, wg);
    SL_ERROR("worker %d: out of memory adopting generation", w->id);
    return -1;
}

static void reap(struct sl_worker *w)
{
    struct sl_conn *c;
    while ((c = TAILQ_FIRST(&w->dead_conns)) != NULL) {
        TAILQ_REMOVE(&w->dead_conns, c, link);
        sl_conn_free(c);
    }
    struct sl_upconn *u;
    while ((u = TAILQ_FIRST(&w->dead_upconns)) != NULL) {
        TAILQ_REMOVE(&w->dead_upconns, u, link);
        sl_upconn_free(u);
    }
    reap_gens(w);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_worker *w = arg;
    reap(w);
    if (w->draining && w->nconns == 0)
        event_base_loopbreak(w->base);
}

void sl_worker_schedule_reap(struct sl_worker *w)
{
    event_active(&w->reap_ev, 0, 0);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_worker *w = arg;
    update_http_date(w);
    sl_accesslog_flush(&w->alog);
    /* A worker no request reaches would hold its last generation (and its
     * Lua VMs) until one did: adopt a newer one here, so retired ones go
     * within a second of the last request that pins them. */
    if (!w->draining)
        sl_worker_sync_gen(w);
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sl_worker *w = arg;
    SL_WARN("worker %d: drain timeout: closing %zu connections", w->id, w->nconns);
    struct sl_conn *c;
    while ((c = TAILQ_FIRST(&w->conns)) != NULL)
        sl_conn_abort(c);
    event_base_loopbreak(w->base);
}

static void begin_drain(struct sl_worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    for (size_t i = 0; i < w->nlisteners; i++) {
        event_del(&w->listeners[i].ev);
        close(w->listeners[i].fd);
        w->listeners[i].fd = -1;
    }
    struct sl_conn *c = TAILQ_FIRST(&w->conns);
    while (c != NULL) {
        struct sl_conn *next = TAILQ_NEXT(c, link);
        sl_conn_close_if_idle(c);
        c = next;
    }
    if (w->nconns == 0) {
        event_base_loopbreak(w->base);
        return;
    }
    int ms = w->gen->cfg->timeouts.drain_ms;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(&w->drain_ev, &tv);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct sl_worker *w = arg;
    char cmd[16];
    ssize_t n = read(fd, cmd, sizeof cmd);
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == 's')
            begin_drain(w);
}

int sl_worker_init(struct sl_worker *w, int id, const int *listen_fds, size_t n)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->notify_fds[0] = w->notify_fds[1] = -1;
    TAILQ_INIT(&w->conns);
    TAILQ_INIT(&w->dead_conns);
    TAILQ_INIT(&w->dead_upconns);
    LIST_INIT(&w->retired);
    struct event_config *ec = event_config_new();
    if (ec == NULL)
        return -1;
    /* One thread per loop: libevent's internal locks would be pure cost. */
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (w->base == NULL || pipe2(w->notify_fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        SL_ERROR("worker %d: cannot create its event loop", id);
        return -1;
    }
    w->listeners = calloc(n, sizeof *w->listeners);
    if (w->listeners == NULL)
        return -1;
    w->nlisteners = n;
    for (size_t i = 0; i < n; i++) {
        w->listeners[i].fd = listen_fds[i];
        event_assign(&w->listeners[i].ev, w->base, listen_fds[i], EV_READ | EV_PERSIST,
                     on_accept, w);
        event_add(&w->listeners[i].ev, NULL);
    }
    event_assign(&w->notify_ev, w->base, w->notify_fds[0], EV_READ | EV_PERSIST, on_notify, w);
    event_add(&w->notify_ev, NULL);
    event_assign(&w->reap_ev, w->base, -1, 0, on_reap, w);
    event_assign(&w->tick_ev, w->base, -1, EV_PERSIST, on_tick, w);
    evtimer_assign(&w->drain_ev, w->base, on_drain_deadline, w);
    struct timeval second = {.tv_sec = 1, .tv_usec = 0};
    event_add(&w->tick_ev, &second);
    update_http_date(w);
    if (sl_worker_sync_gen(w) < 0)
        return -1;
    if (sl_accesslog_open(&w->alog, &w->gen->cfg->log) < 0) {
        SL_ERROR("access log %s: cannot open: %s", w->gen->cfg->log.access_log, strerror(errno));
        return -1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct sl_worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

int sl_worker_start(struct sl_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) == 0 ? 0 : -1;
}

void sl_worker_stop(struct sl_worker *w)
{
    ssize_t n = write(w->notify_fds[1], "s", 1);
    (void)n;
}

void sl_worker_join(struct sl_worker *w)
{
    if (w->thread)
        pthread_join(w->thread, NULL);
    struct sl_conn *c;
    while ((c = TAILQ_FIRST(&w->conns)) != NULL)
        sl_conn_abort(c);
    sl_pool_free_all(w);
    reap(w);
    for (size_t i = 0; i < w->nlisteners; i++)
        if (w->listeners[i].fd >= 0)
            close(w->listeners[i].fd);
    free(w->listeners);
    sl_accesslog_close(&w->alog);
    /* Every connection is gone, so nothing pins a retired state now. */
    struct sl_worker_gen *wg;
    while ((wg = LIST_FIRST(&w->retired)) != NULL) {
        LIST_REMOVE(wg, link);
        wg_free(w, wg);
    }
    w->nretired = 0;
    if (w->cur != NULL)
        wg_free(w, w->cur);
    w->cur = NULL;
    w->gen = NULL;
    if (w->notify_fds[0] >= 0) {
        close(w->notify_fds[0]);
        close(w->notify_fds[1]);
    }
    if (w->base != NULL)
        event_base_free(w->base);
}
