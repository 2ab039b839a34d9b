/* The admin listener: accepting, reading requests with the proxy's own
 * llhttp reader (http1.c), authentication, routing to the endpoint
 * handlers, writing responses. One thread, one event loop, a few
 * connections: handlers run synchronously (a reload blocks the admin loop,
 * never a worker's). */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "admin_json.h"
#include "admin_routes.h"
#include "config.h"
#include "gen.h"
#include "http1.h"
#include "log.h"
#include "sha256.h"
#include "status.h"

#define MAX_CONNS       64
#define MAX_LINE        4096            /* request line: 414 beyond */
#define MAX_HEADER_SIZE 16384           /* all fields: 431 beyond */
#define MAX_HEADERS     64
#define MAX_BODY        65536           /* 413 beyond */
#define IDLE_MS         30000           /* no byte in or out for this long: close */
#define OUT_HIGH        (256 * 1024)    /* stop parsing pipelined requests above this */
#define READ_CHUNK      16384
#define NAME_MAX_LEN    64
#define LINGER_MS       2000            /* after the last answer: drain what the client still sends */
#define LINGER_MAX      (1024 * 1024)

struct admin_conn {
    int fd;
    struct event rev, wev, timer;
    struct sl_reader reader;
    struct sl_buf in, out, body;
    bool head_only;                     /* the current request is HEAD */
    bool close_after;                   /* close once out is written */
    bool lingering;                     /* answered and shut down for writing: draining input */
    size_t drained;                     /* bytes discarded while lingering */
    LIST_ENTRY(admin_conn) link;
};

static struct {
    bool running;
    pthread_t thread;
    struct event_base *base;
    int lfd;
    struct event lev;
    int notify[2];
    struct event nev;
    LIST_HEAD(, admin_conn) conns;
    size_t nconns;
    struct timespec started;
    const char *version;
    char *addr_text;                    /* owned: for logs */
    /* Worker state the endpoints read; NULL once the process stops. */
    pthread_mutex_t ws_lock;
    struct sl_worker *ws;
    int nworkers;
    atomic_bool draining;
} A = { .lfd = -1, .notify = { -1, -1 }, .ws_lock = PTHREAD_MUTEX_INITIALIZER };

/* --- what handlers may ask ---------------------------------------------------- */

struct sl_worker *sl_admin_workers_lock(int *n)
{
    pthread_mutex_lock(&A.ws_lock);
    if (A.ws == NULL) {
        pthread_mutex_unlock(&A.ws_lock);
        return NULL;
    }
    *n = A.nworkers;
    return A.ws;
}

void sl_admin_workers_unlock(void)
{
    pthread_mutex_unlock(&A.ws_lock);
}

bool sl_admin_is_draining(void)
{
    return atomic_load(&A.draining);
}

int64_t sl_admin_uptime_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - A.started.tv_sec) * 1000 +
           (now.tv_nsec - A.started.tv_nsec) / 1000000;
}

const char *sl_admin_version(void)
{
    return A.version;
}

int sl_admin_nworkers(void)
{
    return A.nworkers;
}

int64_t sl_admin_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void sl_admin_error(struct sl_admin_resp *rs, int status, const char *fmt, ...)
{
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_buf_clear(rs->body);
    rs->status = status;
    rs->content_type = NULL;
    struct sl_json j;
    sl_json_init(&j, rs->body);
    sl_json_object_begin(&j);
    sl_json_key(&j, "error");
    sl_json_string(&j, msg);
    sl_json_object_end(&j);
}

int sl_admin_body_object(const struct sl_admin_req *rq, struct sl_admin_resp *rs,
                         struct sl_value *out)
{
    char err[256];
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (i < rq->body_len && strchr(" \t\r\n", rq->body[i]) != NULL)
        i++;
    if (i == rq->body_len) {
        out->kind = SL_VALUE_MAP;
        return 0;
    }
    if (sl_json_parse(rq->body, rq->body_len, out, err, sizeof err) < 0) {
        sl_admin_error(rs, 400, "malformed JSON body: %s", err);
        return -1;
    }
    if (out->kind != SL_VALUE_MAP) {
        sl_value_free(out);
        sl_admin_error(rs, 400, "the body must be a JSON object");
        return -1;
    }
    return 0;
}

int sl_admin_body_only(const struct sl_value *obj, struct sl_admin_resp *rs,
                       const char *const *allowed)
{
    for (size_t i = 0; i < obj->n; i++) {
        bool ok = false;
        for (size_t k = 0; allowed[k] != NULL && !ok; k++)
            ok = strcmp(obj->keys[i], allowed[k]) == 0;
        if (!ok) {
            sl_admin_error(rs, 400, "unknown member '%.64s' in the body", obj->keys[i]);
            return -1;
        }
    }
    return 0;
}

/* --- routing ------------------------------------------------------------------- */

struct route {
    int method;
    const char *pattern;                /* "{}" matches one path segment: a plugin name */
    bool open;                          /* answered without the token */
    sl_admin_handler fn;
};

static const struct route routes[] = {
    { HTTP_GET, "/healthz", true, sl_admin_get_healthz },
    { HTTP_GET, "/readyz", true, sl_admin_get_readyz },
    { HTTP_GET, "/metrics", false, sl_admin_get_metrics },
    { HTTP_GET, "/admin/status", false, sl_admin_get_status },
    { HTTP_POST, "/admin/reload", false, sl_admin_post_reload },
    { HTTP_GET, "/admin/generations", false, sl_admin_get_generations },
    { HTTP_GET, "/admin/upstreams", false, sl_admin_get_upstreams },
    { HTTP_GET, "/admin/plugins", false, sl_admin_get_plugins },
    { HTTP_GET, "/admin/plugins/{}", false, sl_admin_get_plugin },
    { HTTP_PATCH, "/admin/plugins/{}", false, sl_admin_patch_plugin },
    { HTTP_POST, "/admin/plugins/{}/enable", false, sl_admin_post_plugin_enable },
    { HTTP_POST, "/admin/plugins/{}/disable", false, sl_admin_post_plugin_disable },
    { HTTP_POST, "/admin/plugins/{}/reset", false, sl_admin_post_plugin_reset },
    { HTTP_POST, "/admin/plugins/{}/reload", false, sl_admin_post_plugin_reload },
};

/* Matches path against pattern; the "{}" segment, if any, goes to name. */
static bool match(const char *pattern, const char *path, char *name, size_t namelen)
{
    while (*pattern != '\0') {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t n = strcspn(path, "/");
            if (n == 0 || n >= namelen)
                return false;
            memcpy(name, path, n);
            name[n] = '\0';
            path += n;
            pattern += 2;
        } else if (*pattern++ != *path++) {
            return false;
        }
    }
    return *path == '\0';
}

/* Paths whose very existence is for authenticated clients only. */
static bool is_protected(const char *path)
{
    return strcmp(path, "/admin") == 0 || strncmp(path, "/admin/", 7) == 0;
}

/* RFC 6750 §2.1: "Bearer" (any case, RFC 9110 §11.1) and the token. The
 * token is hashed before comparing, so neither its bytes nor its length
 * show in the time taken. Returns NULL when the request may go on, or the
 * reason to refuse it. */
static const char *check_token(const struct sl_head *h, const char *token)
{
    const struct sl_header *auth = NULL;
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!sl_name_is(&h->headers[i], "authorization", 13))
            continue;
        if (auth != NULL)
            return "more than one Authorization header";
        auth = &h->headers[i];
    }
    if (auth == NULL)
        return "missing bearer token";
    if (auth->value_len < 7 || strncasecmp(auth->value, "bearer ", 7) != 0)
        return "missing bearer token";
    const char *given = auth->value + 7;
    size_t n = auth->value_len - 7;
    while (n > 0 && *given == ' ') {
        given++;
        n--;
    }
    unsigned char a[32], b[32];
    if (sl_sha256(given, n, a) < 0 || sl_sha256(token, strlen(token), b) < 0)
        return "cannot check the token";
    return CRYPTO_memcmp(a, b, sizeof a) == 0 ? NULL : "invalid token";
}

/* --- responses ----------------------------------------------------------------- */

static void respond(struct admin_conn *c, int status, const char *ctype, const char *allow,
                    const char *www_auth, const struct sl_buf *body)
{
    struct sl_buf *o = &c->out;
    size_t n = body ? sl_buf_len(body) : 0;
    int ok = sl_buf_printf(o, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                              "Cache-Control: no-store\r\n",
                           status, sl_status_reason(status),
                           ctype ? ctype : "application/json", n);
    if (ok == 0 && allow != NULL)
        ok = sl_buf_printf(o, "Allow: %s\r\n", allow);
    if (ok == 0 && www_auth != NULL)
        ok = sl_buf_printf(o, "WWW-Authenticate: %s\r\n", www_auth);
    if (ok == 0 && c->close_after)
        ok = sl_buf_append_str(o, "Connection: close\r\n");
    if (ok == 0)
        ok = sl_buf_append(o, "\r\n", 2);
    if (ok == 0 && n > 0 && !c->head_only)
        ok = sl_buf_append(o, sl_buf_head(body), n);
    if (ok < 0) {
        /* Out of memory: nothing sensible can be sent; drop the connection. */
        sl_buf_clear(o);
        c->close_after = true;
    }
}

static void respond_error(struct admin_conn *c, int status, const char *allow,
                          const char *www_auth, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void respond_error(struct admin_conn *c, int status, const char *allow,
                          const char *www_auth, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sl_buf body = {0};
    struct sl_admin_resp rs = { .body = &body };
    sl_admin_error(&rs, status, "%s", msg);
    sl_buf_append(&body, "\n", 1);
    respond(c, status, NULL, allow, www_auth, &body);
    sl_buf_fini(&body);
}

/* Checks the request against the token of the running configuration
 * (none: every request may go on). Returns NULL or the reason to refuse. */
static const char *authenticate(const struct sl_head *h)
{
    struct sl_gen *g = sl_gen_acquire();
    if (g == NULL)
        return "no configuration is running yet";
    const char *why = g->cfg->admin.token != NULL ? check_token(h, g->cfg->admin.token) : NULL;
    sl_gen_unref(g);
    return why;
}

static void dispatch(struct admin_conn *c)
{
    const struct sl_head *h = &c->reader.head;
    char path[MAX_LINE + 1], name[NAME_MAX_LEN + 1];
    size_t plen = strcspn(h->target, "?");
    if (plen > MAX_LINE)
        plen = MAX_LINE;
    memcpy(path, h->target, plen);
    path[plen] = '\0';
    const char *query = h->target[plen] == '?' ? h->target + plen + 1 : "";

    const struct route *found = NULL;
    bool any = false, open = false;
    char allow[128] = "";
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!match(routes[i].pattern, path, name, sizeof name))
            continue;
        any = true;
        open = routes[i].open;
        size_t used = strlen(allow);
        snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "",
                 llhttp_method_name((llhttp_method_t)routes[i].method));
        if (routes[i].method == h->method)
            found = &routes[i];
    }
    if (!open && (any || is_protected(path))) {
        const char *why = authenticate(h);
        if (why != NULL) {
            respond_error(c, 401, NULL,
                          strcmp(why, "invalid token") == 0
                              ? "Bearer realm=\"sluice-admin\", error=\"invalid_token\""
                              : "Bearer realm=\"sluice-admin\"",
                          "%s", why);
            return;
        }
    }
    if (!any) {
        respond_error(c, 404, NULL, NULL, "no such endpoint: %.200s", path);
        return;
    }
    if (found == NULL) {
        respond_error(c, 405, allow, NULL, "method %s not allowed on %.200s (allowed: %s)",
                      llhttp_method_name((llhttp_method_t)h->method), path, allow);
        return;
    }
    struct sl_buf body = {0};
    struct sl_admin_req rq = {
        .method = h->method, .path = path, .query = query,
        .name = strstr(found->pattern, "{}") ? name : NULL,
        .body = c->body.data != NULL ? sl_buf_head(&c->body) : "",
        .body_len = sl_buf_len(&c->body),
    };
    struct sl_admin_resp rs = { .status = 200, .body = &body };
    found->fn(&rq, &rs);
    bool json = rs.content_type == NULL;
    if (json && sl_buf_append(&body, "\n", 1) < 0)
        sl_admin_error(&rs, 500, "out of memory");
    respond(c, rs.status, rs.content_type, NULL, NULL, &body);
    sl_buf_fini(&body);
}

/* --- connections ------------------------------------------------------------------ */

static void conn_free(struct admin_conn *c)
{
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->timer);
    close(c->fd);
    sl_reader_fini(&c->reader);
    sl_buf_fini(&c->in);
    sl_buf_fini(&c->out);
    sl_buf_fini(&c->body);
    LIST_REMOVE(c, link);
    A.nconns--;
    free(c);
}

static void touch(struct admin_conn *c)
{
    struct timeval tv = { .tv_sec = IDLE_MS / 1000, .tv_usec = (IDLE_MS % 1000) * 1000 };
    evtimer_add(&c->timer, &tv);
}

static int on_head(void *owner)
{
    struct admin_conn *c = owner;
    const struct sl_head *h = &c->reader.head;
    sl_buf_clear(&c->body);
    c->head_only = h->method == HTTP_HEAD;
    if (!h->keep_alive)
        c->close_after = true;
    if (h->has_length && h->content_length > MAX_BODY) {
        c->reader.error_status = 413;
        return -1;
    }
    /* RFC 9110 §10.1.1: a client waiting for 100 before sending the body
     * gets it, since the body is within the limit as far as we know. */
    const struct sl_header *expect = sl_head_find(h, "expect", 6);
    if (expect != NULL && (h->has_length || h->chunked) &&
        sl_value_has_token(expect->value, expect->value_len, "100-continue"))
        sl_buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    return 0;
}

static int on_body(void *owner, const char *p, size_t n)
{
    struct admin_conn *c = owner;
    if (sl_buf_len(&c->body) + n > MAX_BODY) {
        c->reader.error_status = 413;
        return -1;
    }
    if (sl_buf_append(&c->body, p, n) < 0) {
        c->reader.error_status = 503;
        return -1;
    }
    return 0;
}

static int on_done(void *owner)
{
    dispatch(owner);
    return 1;       /* one request at a time: pause until its answer is queued */
}

static const struct sl_reader_ops reader_ops = {
    .on_head = on_head, .on_body = on_body, .on_done = on_done,
};

/* Writes what is queued; closes the connection once a final answer is out
 * and close_after is set. Returns -1 when the connection was freed. */
static int flush(struct admin_conn *c)
{
    while (sl_buf_len(&c->out) > 0) {
        ssize_t n = write(c->fd, sl_buf_head(&c->out), sl_buf_len(&c->out));
        if (n > 0) {
            sl_buf_consume(&c->out, (size_t)n);
            touch(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(&c->wev, NULL);
            return 0;
        }
        conn_free(c);
        return -1;
    }
    event_del(&c->wev);
    if (c->close_after) {
        /* Closing with unread input would reset the connection, and the
         * client could lose the answer (a 413 sent while the body still
         * arrives): shut the write side and drain for a while first. */
        if (!c->lingering) {
            c->lingering = true;
            shutdown(c->fd, SHUT_WR);
            sl_buf_clear(&c->in);
            event_add(&c->rev, NULL);
            struct timeval tv = { .tv_sec = LINGER_MS / 1000, .tv_usec = (LINGER_MS % 1000) * 1000 };
            evtimer_add(&c->timer, &tv);
        }
        return 0;
    }
    event_add(&c->rev, NULL);
    return 0;
}

/* Parses what arrived, answering each complete request in turn, until more
 * bytes are needed or enough answers wait to be written. */
static void parse(struct admin_conn *c)
{
    while (!c->close_after && sl_buf_len(&c->in) > 0 && sl_buf_len(&c->out) < OUT_HIGH) {
        size_t used = 0;
        int rc = sl_reader_feed(&c->reader, sl_buf_head(&c->in), sl_buf_len(&c->in), &used);
        sl_buf_consume(&c->in, used);
        if (rc == 1) {
            sl_reader_resume(&c->reader);
            continue;
        }
        if (rc == 0)
            break;
        /* A protocol error, a limit, or an upgrade we do not do. */
        int status = rc == 2 ? 400 : c->reader.error_status ? c->reader.error_status : 400;
        const char *why = rc == 2 ? "upgrades are not supported"
                        : status == 413 ? "request body too large (limit 64 KiB)"
                        : status == 414 ? "request line too long"
                        : status == 431 ? "request header fields too large"
                        : c->reader.error_reason ? c->reader.error_reason : "malformed request";
        c->close_after = true;
        c->head_only = false;
        respond_error(c, status, NULL, NULL, "%s", why);
        break;
    }
}

/* Answers what the input holds and writes the answers, for as long as
 * they leave the socket at once. Returns -1 when the connection was
 * freed. */
static int process(struct admin_conn *c)
{
    for (;;) {
        parse(c);
        /* Read no more: the request asked to close, or answers pile up
         * unread (flush resumes reading once they are out). */
        if (c->close_after || sl_buf_len(&c->out) >= OUT_HIGH)
            event_del(&c->rev);
        if (flush(c) < 0)
            return -1;
        if (sl_buf_len(&c->out) > 0 || sl_buf_len(&c->in) == 0)
            return 0;
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *c = arg;
    if (c->lingering) {
        char scratch[READ_CHUNK];
        ssize_t n = read(c->fd, scratch, sizeof scratch);
        if (n > 0)
            c->drained += (size_t)n;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || c->drained > LINGER_MAX)
            conn_free(c);
        return;
    }
    ssize_t n = sl_buf_read(&c->in, c->fd, READ_CHUNK);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_free(c);
        return;
    }
    if (n > 0) {
        touch(c);
        process(c);
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct admin_conn *c = arg;
    if (flush(c) < 0)
        return;
    if (sl_buf_len(&c->out) == 0 && sl_buf_len(&c->in) > 0)
        process(c);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_free(arg);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                SL_WARN("admin: accept failed: %s", strerror(errno));
            return;
        }
        struct admin_conn *c = A.nconns < MAX_CONNS ? calloc(1, sizeof *c) : NULL;
        if (c == NULL) {
            SL_WARN("admin: refusing a connection: %s",
                    A.nconns < MAX_CONNS ? "out of memory" : "too many connections");
            close(cfd);
            continue;
        }
        c->fd = cfd;
        struct sl_reader_limits rl = {
            .max_line = MAX_LINE, .max_header_size = MAX_HEADER_SIZE, .max_headers = MAX_HEADERS,
        };
        sl_reader_init(&c->reader, true, &reader_ops, c, &rl);
        event_assign(&c->rev, A.base, cfd, EV_READ | EV_PERSIST, on_read, c);
        event_assign(&c->wev, A.base, cfd, EV_WRITE | EV_PERSIST, on_write, c);
        evtimer_assign(&c->timer, A.base, on_timeout, c);
        LIST_INSERT_HEAD(&A.conns, c, link);
        A.nconns++;
        event_add(&c->rev, NULL);
        touch(c);
    }
}

/* --- the thread ---------------------------------------------------------------------- */

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char b[8];
    ssize_t n = read(fd, b, sizeof b);
    (void)n;
    event_base_loopbreak(A.base);
}

static void *admin_main(void *arg)
{
    (void)arg;
    event_base_dispatch(A.base);
    return NULL;
}

static int open_listener(const struct sl_addr *addr)
{
    int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0 || listen(fd, 64) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

static void cleanup(void)
{
    struct admin_conn *c;
    while ((c = LIST_FIRST(&A.conns)) != NULL)
        conn_free(c);
    if (A.base != NULL) {
        event_del(&A.lev);
        event_del(&A.nev);
        event_base_free(A.base);
    }
    A.base = NULL;
    if (A.lfd >= 0)
        close(A.lfd);
    for (int i = 0; i < 2; i++)
        if (A.notify[i] >= 0)
            close(A.notify[i]);
    A.lfd = A.notify[0] = A.notify[1] = -1;
    free(A.addr_text);
    A.addr_text = NULL;
}

int sl_admin_start(const struct sl_admin_conf *admin, struct sl_worker *workers,
                   int nworkers, const char *version)
{
    clock_gettime(CLOCK_MONOTONIC, &A.started);
    A.version = version;
    LIST_INIT(&A.conns);
    A.addr_text = strdup(admin->addr.text);
    A.lfd = open_listener(&admin->addr);
    if (A.lfd < 0) {
        SL_ERROR("sluice: admin: listen %s: %s", admin->addr.text, strerror(errno));
        cleanup();
        return -1;
    }
    struct event_config *ec = event_config_new();
    if (ec != NULL) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
        A.base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    if (A.addr_text == NULL || A.base == NULL || pipe2(A.notify, O_NONBLOCK | O_CLOEXEC) < 0) {
        SL_ERROR("sluice: admin: cannot create its event loop");
        cleanup();
        return -1;
    }
    event_assign(&A.lev, A.base, A.lfd, EV_READ | EV_PERSIST, on_accept, NULL);
    event_add(&A.lev, NULL);
    event_assign(&A.nev, A.base, A.notify[0], EV_READ | EV_PERSIST, on_notify, NULL);
    event_add(&A.nev, NULL);
    pthread_mutex_lock(&A.ws_lock);
    A.ws = workers;
    A.nworkers = nworkers;
    pthread_mutex_unlock(&A.ws_lock);
    atomic_store(&A.draining, false);
    if (pthread_create(&A.thread, NULL, admin_main, NULL) != 0) {
        SL_ERROR("sluice: admin: cannot start its thread");
        sl_admin_detach_workers();
        cleanup();
        return -1;
    }
    A.running = true;
    SL_INFO("sluice: admin API on %s%s", admin->addr.text,
            admin->token ? " (bearer token required)" : "");
    return 0;
}

void sl_admin_detach_workers(void)
{
    atomic_store(&A.draining, true);
    pthread_mutex_lock(&A.ws_lock);
    A.ws = NULL;
    pthread_mutex_unlock(&A.ws_lock);
}

void sl_admin_stop(void)
{
    if (!A.running)
        return;
    ssize_t n = write(A.notify[1], "s", 1);
    (void)n;
    pthread_join(A.thread, NULL);
    A.running = false;
    sl_admin_detach_workers();
    cleanup();
}
