/* sluice: command line, listening sockets, workers, signals. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "gen.h"
#include "log.h"
#include "lua_vm.h"
#include "worker.h"

#define SL_VERSION "0.1.0"
#define MAX_TOS 64

static const char usage[] =
    "usage: sluice -c FILE            run with a configuration file\n"
    "       sluice -t -c FILE         check a configuration file and exit\n"
    "       sluice --listen ADDR --to ADDR [--to ADDR ...] [--workers N]\n"
    "                                 quick mode: one listener, one upstream\n"
    "       sluice --version | --help\n"
    "\n"
    "ADDR is host:port, [v6]:port or :port. See docs/CONFIG.md.\n";

struct options {
    const char *config;
    bool test;
    const char *listen;
    const char *tos[MAX_TOS];
    size_t ntos;
    int workers;
};

static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"listen", required_argument, NULL, 'l'},
        {"to", required_argument, NULL, 'T'},
        {"workers", required_argument, NULL, 'w'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "c:thv", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 't': o->test = true; break;
        case 'l': o->listen = optarg; break;
        case 'T':
            if (o->ntos == MAX_TOS) {
                fprintf(stderr, "sluice: too many --to (at most %d)\n", MAX_TOS);
                return -1;
            }
            o->tos[o->ntos++] = optarg;
            break;
        case 'w': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (strcmp(optarg, "auto") == 0)
                n = 0;
            else if (*end != '\0' || n < 1 || n > 256) {
                fprintf(stderr, "sluice: --workers: expected 1..256 or auto, got '%s'\n", optarg);
                return -1;
            }
            o->workers = (int)n;
            break;
        }
        case 'v': printf("sluice %s\n", SL_VERSION); exit(0);
        case 'h': fputs(usage, stdout); exit(0);
        default: fputs(usage, stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument '%s'\n%s", argv[optind], usage);
        return -1;
    }
    if (o->config == NULL && (o->listen == NULL || o->ntos == 0)) {
        fprintf(stderr, "sluice: give -c FILE, or --listen and --to\n%s", usage);
        return -1;
    }
    if (o->config != NULL && (o->listen != NULL || o->ntos > 0)) {
        fprintf(stderr, "sluice: -c cannot be combined with --listen/--to\n");
        return -1;
    }
    return 0;
}

static struct sl_config *load(const struct options *o)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = o->config != NULL
        ? sl_config_load(o->config, &errs)
        : sl_config_quick(o->listen, o->tos, o->ntos, o->workers, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    sl_config_errors_fini(&errs);
    return cfg;
}

static int open_listener(const struct sl_listen_conf *l)
{
    int fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    /* Every worker binds its own socket to the same address; the kernel
     * spreads connections across them, so accept needs no lock. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) < 0 ||
        listen(fd, l->backlog) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

static int start_workers(struct sl_worker *ws, int n, const struct sl_config *cfg)
{
    int fds[64];
    if (cfg->nlisteners > 64) {
        fprintf(stderr, "sluice: at most 64 listeners\n");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        for (size_t j = 0; j < cfg->nlisteners; j++) {
            fds[j] = open_listener(&cfg->listeners[j]);
            if (fds[j] < 0) {
                fprintf(stderr, "sluice: listen %s: %s\n", cfg->listeners[j].addr.text,
                        strerror(errno));
                while (j-- > 0)
                    close(fds[j]);
                return -1;
            }
        }
        if (sl_worker_init(&ws[i], i, fds, cfg->nlisteners) < 0)
            return -1;
    }
    for (int i = 0; i < n; i++)
        if (sl_worker_start(&ws[i]) < 0) {
            fprintf(stderr, "sluice: cannot start worker %d\n", i);
            return -1;
        }
    return 0;
}

/* Reload outcomes since start, for the admin API. */
struct reload_stats {
    uint64_t ok;
    uint64_t failed;
};

/* Logs each line of a multi-line message at error level. */
static void log_error_lines(const char *msg)
{
    while (*msg != '\0') {
        size_t n = strcspn(msg, "\n");
        if (n > 0)
            SL_ERROR("%.*s", (int)n, msg);
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

/* SIGHUP: builds the next generation completely on this thread (parse,
 * validate, load plugins) and publishes it with one swap; workers adopt it
 * at their next request. Any failure discards the candidate and leaves the
 * running generation untouched. */
static void reload(const struct options *o, struct reload_stats *st)
{
    struct sl_gen *old = sl_gen_acquire();
    if (o->config == NULL) {
        SL_WARN("sluice: SIGHUP: quick mode has no configuration file to reload");
        sl_gen_unref(old);
        return;
    }
    SL_INFO("sluice: SIGHUP: reloading %s", o->config);
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = sl_config_load(o->config, &errs);
    size_t nerrs = errs.n;
    for (size_t i = 0; i < errs.n; i++)
        log_error_lines(errs.msgs[i]);
    sl_config_errors_fini(&errs);
    struct sl_gen *next = NULL;
    if (cfg != NULL) {
        keep_restart_only(cfg, old->cfg);
        char err[4096];
        next = sl_gen_new(cfg, err, sizeof err);
        if (next == NULL) {
            log_error_lines(err);
            nerrs++;
        }
    } else if (nerrs == 0) {
        nerrs = 1;
    }
    if (next == NULL) {
        st->failed++;
        SL_ERROR("sluice: reload failed: %zu error%s; keeping generation %llu",
                 nerrs, nerrs == 1 ? "" : "s", (unsigned long long)old->id);
        sl_gen_unref(old);
        return;
    }
    st->ok++;
    sl_log_set_level(next->cfg->log.level);
    uint64_t id = next->id;
    sl_gen_publish(next);
    sl_gen_unref(old);
    SL_INFO("sluice: reloaded configuration %s as generation %llu", o->config,
            (unsigned long long)id);
}

/* Signals are taken synchronously by the main thread with sigwait, so no
 * handler ever runs inside a worker's event loop. */
static int wait_for_stop(const struct options *o, struct reload_stats *st)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            return -1;
        if (sig == SIGHUP) {
            reload(o, st);
            continue;
        }
        SL_INFO("sluice: %s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return 0;
    }
}

int main(int argc, char **argv)
{
    struct options o = {0};
    if (parse_options(argc, argv, &o) < 0)
        return 2;
    struct sl_config *cfg = load(&o);
    if (cfg == NULL)
        return 1;
    int nworkers = cfg->workers;
    char err[1024];
    if (sl_lua_init(nworkers, err, sizeof err) < 0) {
        fprintf(stderr, "sluice: %s\n", err);
        sl_config_free(cfg);
        return 1;
    }
    /* -t builds the whole generation, plugins included, exactly as a start
     * would, and throws it away. */
    struct sl_gen *gen = sl_gen_new(cfg, err, sizeof err);
    if (gen == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (o.test) {
        fprintf(stderr, "sluice: configuration %s is valid\n", o.config ? o.config : "(quick mode)");
        sl_gen_unref(gen);
        return 0;
    }
    sl_log_set_level(gen->cfg->log.level);
    sl_gen_publish(gen);

    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct sl_worker *ws = calloc((size_t)nworkers, sizeof *ws);
    if (ws == NULL)
        return 1;
    int rc = start_workers(ws, nworkers, gen->cfg);
    if (rc == 0) {
        for (size_t i = 0; i < gen->cfg->nlisteners; i++)
            SL_INFO("sluice %s: listening on %s with %d worker%s", SL_VERSION,
                    gen->cfg->listeners[i].addr.text, nworkers, nworkers == 1 ? "" : "s");
        struct reload_stats reloads = {0};
        wait_for_stop(&o, &reloads);
    }
    for (int i = 0; i < nworkers; i++)
        if (ws[i].base != NULL)
            sl_worker_stop(&ws[i]);
    for (int i = 0; i < nworkers; i++)
        if (ws[i].base != NULL)
            sl_worker_join(&ws[i]);
    free(ws);
    sl_gen_publish(NULL);
    if (rc == 0)
        SL_INFO("sluice: stopped");
    return rc == 0 ? 0 : 1;
}
