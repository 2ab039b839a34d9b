/* sluice-origin: arguments, listeners, signals.
 *
 *   sluice-origin --listen HOST:PORT [--listen ...] [--name NAME] [--log FILE]
 *
 * Silent on success; errors go to stderr. SIGTERM and SIGINT end it with
 * status 0. What it answers is documented in routes.c. */
#include "origin.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTEN 16
#define BACKLOG 4096
#define ACCEPT_BATCH 64
#define ACCEPT_PAUSE_MS 100

struct listener {
    struct sl_origin *origin;       /* borrowed */
    int fd;                         /* owned */
    struct event ev;
};

static struct listener listeners[MAX_LISTEN];
static size_t nlisteners;
static struct event resume_ev;      /* re-enables accepting after EMFILE */

static void usage(FILE *f)
{
    fputs("usage: sluice-origin --listen HOST:PORT [--listen HOST:PORT ...]"
          " [--name NAME] [--log FILE]\n", f);
}

/* "HOST:PORT", "[V6]:PORT", ":PORT" or "*:PORT" (any address). */
static int open_listener(const char *spec)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon[1] == '\0') {
        fprintf(stderr, "sluice-origin: listen %s: expected HOST:PORT\n", spec);
        return -1;
    }
    size_t hl = (size_t)(colon - spec);
    const char *h = spec;
    if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        fprintf(stderr, "sluice-origin: listen %s: host too long\n", spec);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    bool any = hl == 0 || strcmp(host, "*") == 0;

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res;
    int rc = getaddrinfo(any ? NULL : host, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "sluice-origin: listen %s: %s\n", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "sluice-origin: listen %s: socket: %s\n", spec, strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
        fprintf(stderr, "sluice-origin: listen %s: %s\n", spec, strerror(errno));
        freeaddrinfo(res);
        close(fd);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void set_accepting(bool on)
{
    for (size_t i = 0; i < nlisteners; i++) {
        if (on)
            event_add(&listeners[i].ev, NULL);
        else
            event_del(&listeners[i].ev);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    set_accepting(true);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct listener *l = arg;
    (void)what;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            fprintf(stderr, "sluice-origin: accept: %s\n", strerror(errno));
            /* Out of descriptors: the pending connection stays readable, so
             * keep polling it would spin; stop accepting for a moment. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct timeval tv = { .tv_sec = 0, .tv_usec = ACCEPT_PAUSE_MS * 1000 };
                set_accepting(false);
                evtimer_add(&resume_ev, &tv);
            }
            return;
        }
        /* Responses are written whole; Nagle would only hold back the second
         * write of a 1xx + final pair or a /slow step. */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (sl_origin_conn_new(l->origin, fd) < 0)
            fprintf(stderr, "sluice-origin: accept: out of memory\n");
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

/* Benchmarks open thousands of connections; the soft limit is often 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Accepts "--opt VALUE" and "--opt=VALUE". Returns the value or NULL. */
static const char *option(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "sluice-origin: %s needs a value\n", name);
        exit(2);
    }
    return argv[++*i];
}

struct args {
    const char *listen[MAX_LISTEN];
    size_t nlisten;
    const char *log_path;
};

/* Returns -1 to go on, or the exit status to leave with. */
static int parse_args(int argc, char **argv, struct sl_origin *o, struct args *a)
{
    const char *v;
    for (int i = 1; i < argc; i++) {
        if ((v = option(argc, argv, &i, "--listen"))) {
            if (a->nlisten == MAX_LISTEN) {
                fprintf(stderr, "sluice-origin: at most %d --listen\n", MAX_LISTEN);
                return 2;
            }
            a->listen[a->nlisten++] = v;
        } else if ((v = option(argc, argv, &i, "--name"))) {
            o->name = v;
        } else if ((v = option(argc, argv, &i, "--log"))) {
            a->log_path = v;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "sluice-origin: unknown argument %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (a->nlisten == 0) {
        usage(stderr);
        return 2;
    }
    o->name_len = strlen(o->name);
    return -1;
}

static int start_listeners(struct sl_origin *o, const struct args *a)
{
    for (size_t i = 0; i < a->nlisten; i++) {
        struct listener *l = &listeners[nlisteners];
        l->origin = o;
        l->fd = open_listener(a->listen[i]);
        if (l->fd < 0)
            return -1;
        event_assign(&l->ev, o->base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
        nlisteners++;
    }
    evtimer_assign(&resume_ev, o->base, on_resume, NULL);
    set_accepting(true);
    return 0;
}

int main(int argc, char **argv)
{
    static struct sl_origin o = { .name = "origin", .log_fd = -1 };
    struct args a = { .nlisten = 0 };
    int rc = parse_args(argc, argv, &o, &a);
    if (rc >= 0)
        return rc;

    /* A peer closing mid-response must be an EPIPE from write(), not death. */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    if (a.log_path && sl_origin_log_open(&o, a.log_path) < 0) {
        fprintf(stderr, "sluice-origin: log %s: %s\n", a.log_path, strerror(errno));
        return 1;
    }
    o.base = event_base_new();
    if (!o.base) {
        fprintf(stderr, "sluice-origin: event_base_new failed\n");
        return 1;
    }
    if (start_listeners(&o, &a) < 0)
        return 1;
    struct event *sigterm = evsignal_new(o.base, SIGTERM, on_signal, o.base);
    struct event *sigint = evsignal_new(o.base, SIGINT, on_signal, o.base);
    if (!sigterm || !sigint || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0) {
        fprintf(stderr, "sluice-origin: cannot install signal handlers\n");
        return 1;
    }

    if (event_base_dispatch(o.base) < 0) {
        fprintf(stderr, "sluice-origin: event loop failed\n");
        return 1;
    }

    /* Orderly teardown so leak checkers running the origin see nothing. */
    sl_origin_conn_free_all(&o);
    set_accepting(false);
    event_del(&resume_ev);
    for (size_t i = 0; i < nlisteners; i++)
        close(listeners[i].fd);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(o.base);
    if (o.log_fd >= 0)
        close(o.log_fd);
    return 0;
}
