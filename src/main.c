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

#include "admin.h"
#include "clock.h"
#include "config.h"
#include "gen.h"
#include "log.h"
#include "lua_vm.h"
#include "metrics.h"
#include "plugin_native.h"
#include "reload.h"
#include "watch.h"
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

/* One line with the generations, Lua VMs and native plugin copies alive
 * and the reload counters (SIGUSR1, and at debug level on exit), so leaks
 * show without a debugger: after reloads settle, at most 1 + workers
 * generations live, and the native copies open are those of the live
 * generations. */
static void log_status(enum sl_log_level level)
{
    struct sl_reload_status st;
    uint64_t created, closed, loaded, unloaded;
    sl_reload_get_status(&st);
    sl_lua_vm_counts(&created, &closed);
    sl_native_counts(&loaded, &unloaded);
    SL_LOG(level, "sluice: status: generation %llu; generations live %zu; Lua VMs open %llu, "
           "created %llu, closed %llu; native copies open %llu, loaded %llu, unloaded %llu; "
           "reloads ok %llu, failed %llu, unchanged %llu",
           (unsigned long long)st.generation, sl_gen_live_count(),
           (unsigned long long)(created - closed), (unsigned long long)created,
           (unsigned long long)closed, (unsigned long long)(loaded - unloaded),
           (unsigned long long)loaded, (unsigned long long)unloaded,
           (unsigned long long)st.ok, (unsigned long long)st.failed,
           (unsigned long long)st.unchanged);
}

static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

/* Signals are taken synchronously by the main thread with sigwait, so no
 * handler ever runs inside a worker's event loop. The file watcher has a
 * thread of its own (watch.c); it reloads through the same pipeline. */
static int wait_for_stop(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            return -1;
        if (sig == SIGHUP) {
            char err[256];
            sl_reload_run("SIGHUP", NULL, err, sizeof err);
            continue;
        }
        if (sig == SIGUSR1) {
            log_status(SL_LOG_INFO);
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
    sl_clock_init();
    /* One row of metric cells per worker, before any generation takes
     * its slots. */
    if (sl_metrics_init(nworkers) < 0) {
        fprintf(stderr, "sluice: out of memory\n");
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
    sl_reload_init(o.config, gen->id);
    sl_gen_publish(gen);

    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    block_signals(&set);

    struct sl_worker *ws = calloc((size_t)nworkers, sizeof *ws);
    if (ws == NULL)
        return 1;
    int rc = start_workers(ws, nworkers, gen->cfg);
    if (rc == 0) {
        for (size_t i = 0; i < gen->cfg->nlisteners; i++)
            SL_INFO("sluice %s: listening on %s with %d worker%s", SL_VERSION,
                    gen->cfg->listeners[i].addr.text, nworkers, nworkers == 1 ? "" : "s");
        /* Started last: from here on a reload (admin, watcher, SIGHUP) may
         * free gen. */
        if (gen->cfg->admin.enabled &&
            sl_admin_start(&gen->cfg->admin, ws, nworkers, SL_VERSION) < 0) {
            rc = -1;
        } else {
            sl_watch_sync();
            wait_for_stop(&set);
        }
    }
    /* /readyz answers 503 while the workers drain; the admin thread stops
     * reading their state before they are freed. */
    sl_admin_detach_workers();
    sl_watch_stop();
    for (int i = 0; i < nworkers; i++)
        if (ws[i].base != NULL)
            sl_worker_stop(&ws[i]);
    for (int i = 0; i < nworkers; i++)
        if (ws[i].base != NULL)
            sl_worker_join(&ws[i]);
    sl_admin_stop();
    free(ws);
    sl_gen_publish(NULL);
    if (rc == 0) {
        log_status(SL_LOG_DEBUG);
        SL_INFO("sluice: stopped");
    }
    return rc == 0 ? 0 : 1;
}
