/* sluice-origin connections: nonblocking read()/write() on libevent events,
 * llhttp for requests, one response at a time (pipelined requests wait in the
 * input buffer), timers for /delay and /slow, lingering close.
 *
 * The parser is paused twice per request: when the head is complete (so we
 * know where the body starts and can drop body bytes nobody needs) and when
 * the message is complete (so we know where it ends, and the next pipelined
 * request is not parsed before this one is answered). */
#include "origin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_INITIAL   8192
#define IN_MIN_FREE  4096
#define OUT_INITIAL  8192
#define OUT_HIGH     (64 * 1024)    /* generate body bytes while less than this is unsent */
#define TUNNEL_HIGH  (256 * 1024)   /* /ws: stop reading while this much echo is unsent */
#define SHRINK_ABOVE (1024 * 1024)  /* give back buffers a large request or response grew */
#define LINGER_MS    2000

static int on_message_begin(llhttp_t *p);
static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_url_complete(llhttp_t *p);
static int on_header_field(llhttp_t *p, const char *at, size_t len);
static int on_header_field_complete(llhttp_t *p);
static int on_header_value(llhttp_t *p, const char *at, size_t len);
static int on_header_value_complete(llhttp_t *p);
static int on_headers_complete(llhttp_t *p);
static int on_message_complete(llhttp_t *p);

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void drive(struct sl_origin_conn *c);

/* --- buffers ------------------------------------------------------------ */

int sl_origin_buf_reserve(struct sl_origin_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

/* Buffers only grow while a request or response needs it; once idle, a
 * buffer that grew past SHRINK_ABOVE goes back to its initial size so a
 * single large echo does not pin megabytes for the connection's lifetime. */
static void shrink(struct sl_origin_buf *b, size_t initial)
{
    if (b->cap <= SHRINK_ABOVE || b->len > initial)
        return;
    char *d = realloc(b->data, initial);
    if (d) {
        b->data = d;
        b->cap = initial;
    }
}

void sl_origin_out(struct sl_origin_conn *c, const void *p, size_t n)
{
    if (c->failed)
        return;
    if (sl_origin_buf_reserve(&c->out, n) < 0) {
        c->failed = true;
        return;
    }
    memcpy(c->out.data + c->out.len, p, n);
    c->out.len += n;
}

void sl_origin_out_str(struct sl_origin_conn *c, const char *s)
{
    sl_origin_out(c, s, strlen(s));
}

void sl_origin_out_u64(struct sl_origin_conn *c, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sl_origin_out(c, tmp + i, sizeof tmp - i);
}

static void out_hex(struct sl_origin_conn *c, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = digits[v & 15];
        v >>= 4;
    } while (v);
    sl_origin_out(c, tmp + i, sizeof tmp - i);
}

/* --- request view ------------------------------------------------------- */

const char *sl_origin_conn_raw(const struct sl_origin_conn *c, size_t *len)
{
    size_t end = c->msg_end > c->req_start ? c->msg_end : c->in.len;
    *len = end - c->req_start;
    return c->in.data + c->req_start;
}

const char *sl_origin_conn_header(const struct sl_origin_conn *c, const char *name, size_t *len)
{
    const char *base = c->in.data + c->req_start;
    size_t n = strlen(name);
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct sl_origin_hdr *h = &c->hdrs[i];
        if (h->name_len == n && strncasecmp(base + h->name_off, name, n) == 0) {
            *len = h->val_len;
            return base + h->val_off;
        }
    }
    return NULL;
}

const char *sl_origin_conn_path(const struct sl_origin_conn *c, size_t *len)
{
    const char *u = c->in.data + c->req_start + c->url_off;
    const char *end = u + c->url_len;
    /* absolute-form (RFC 9112 §3.2.2): what a client configured to use a
     * proxy sends; the path starts at the first '/' after "scheme://". */
    const char *scheme = memchr(u, ':', (size_t)(end - u));
    if (u < end && *u != '/' && scheme && end - scheme > 2 && scheme[1] == '/' && scheme[2] == '/') {
        const char *slash = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
        u = slash ? slash : end;
    }
    const char *q = memchr(u, '?', (size_t)(end - u));
    *len = (size_t)((q ? q : end) - u);
    return u;
}

/* --- llhttp callbacks --------------------------------------------------- */

static uint32_t offset_of(const struct sl_origin_conn *c, const char *at)
{
    return (uint32_t)(at - (c->in.data + c->req_start));
}

static int on_message_begin(llhttp_t *p)
{
    struct sl_origin_conn *c = p->data;
    c->url_off = c->url_len = 0;
    c->nhdrs = 0;
    c->in_url = c->in_field = c->in_value = false;
    c->headers_done = false;
    c->keep_raw = true;
    c->msg_end = 0;
    return 0;
}

/* llhttp hands out spans in pieces when they straddle reads; the bytes are
 * contiguous in c->in, so each value is its first offset plus summed length. */
static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct sl_origin_conn *c = p->data;
    if (!c->in_url) {
        c->url_off = offset_of(c, at);
        c->url_len = 0;
        c->in_url = true;
    }
    c->url_len += (uint32_t)len;
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct sl_origin_conn *c = p->data;
    c->in_url = false;
    return 0;
}

/* Trailer fields of a chunked body arrive through the same callbacks after
 * the head; they are not part of "the request headers", so they are skipped. */
static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct sl_origin_conn *c = p->data;
    if (c->headers_done)
        return 0;
    if (!c->in_field) {
        if (c->nhdrs == c->hdrs_cap) {
            size_t cap = c->hdrs_cap ? c->hdrs_cap * 2 : 32;
            struct sl_origin_hdr *h = realloc(c->hdrs, cap * sizeof *h);
            if (!h)
                return -1;
            c->hdrs = h;
            c->hdrs_cap = cap;
        }
        struct sl_origin_hdr *h = &c->hdrs[c->nhdrs];
        h->name_off = h->val_off = offset_of(c, at);
        h->name_len = h->val_len = 0;
        c->in_field = true;
    }
    c->hdrs[c->nhdrs].name_len += (uint32_t)len;
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct sl_origin_conn *c = p->data;
    c->in_field = false;
    return 0;
}

/* An empty value gets no on_header_value call at all, only the _complete. */
static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct sl_origin_conn *c = p->data;
    if (c->headers_done)
        return 0;
    struct sl_origin_hdr *h = &c->hdrs[c->nhdrs];
    if (!c->in_value) {
        h->val_off = offset_of(c, at);
        h->val_len = 0;
        c->in_value = true;
    }
    h->val_len += (uint32_t)len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct sl_origin_conn *c = p->data;
    if (c->headers_done)
        return 0;
    c->in_value = false;
    c->nhdrs++;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct sl_origin_conn *c = p->data;
    c->headers_done = true;
    c->is_head = p->method == HTTP_HEAD;
    c->is_http10 = p->http_major < 1 || (p->http_major == 1 && p->http_minor == 0);
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    struct sl_origin_conn *c = p->data;
    /* Must be read here: llhttp clears the flags it is computed from right
     * after this callback. */
    c->keep_alive = llhttp_should_keep_alive(p);
    c->msg_done = true;
    /* Upgrade/CONNECT requests make llhttp_execute() return
     * HPE_PAUSED_UPGRADE right after this callback; pausing here as well
     * would need a second execute to get there. */
    return p->upgrade ? 0 : HPE_PAUSED;
}

/* --- parsing ------------------------------------------------------------ */

/* The head stays (header offsets point into it); body bytes nobody will
 * read are dropped so a large upload to a plain path costs no memory. */
static void drop_body(struct sl_origin_conn *c)
{
    size_t drop = c->parsed - c->head_end;
    if (drop == 0)
        return;
    memmove(c->in.data + c->head_end, c->in.data + c->parsed, c->in.len - c->parsed);
    c->in.len -= drop;
    c->parsed = c->head_end;
}

static void request_complete(struct sl_origin_conn *c)
{
    struct sl_origin *o = c->origin;
    /* Logged before the response is queued, so a spec that has the response
     * in hand always finds the record. */
    if (o->log_fd >= 0)
        sl_origin_log_record(o, "request", c->in.data + c->req_start, c->msg_end - c->req_start);
    c->busy = true;
    c->after = SL_ORIGIN_AFTER_NEXT;
    c->gen_left = c->slow_left = 0;
    c->gen_chunk = 0;
    c->gen_last_chunk = c->delay_pending = false;
    sl_origin_route_request(c);
    c->req_start = c->msg_end;
}

/* Feeds unparsed input to llhttp until a request completes (1, c->busy is
 * set), the input runs out (0) or llhttp refuses the request (-1). */
static int parse(struct sl_origin_conn *c)
{
    bool resumed = false;
    for (;;) {
        size_t n = c->in.len - c->parsed;
        if (n == 0 && !resumed)
            return 0;
        enum llhttp_errno err = llhttp_execute(&c->parser, c->in.data + c->parsed, n);
        if (err == HPE_OK) {
            c->parsed = c->in.len;
            if (c->headers_done && !c->keep_raw)
                drop_body(c);
            return 0;
        }
        if (err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE)
            return -1;
        c->parsed = (size_t)(llhttp_get_error_pos(&c->parser) - c->in.data);
        if (err == HPE_PAUSED_UPGRADE)
            llhttp_resume_after_upgrade(&c->parser);
        else
            llhttp_resume(&c->parser);
        resumed = true;
        if (c->msg_done) {
            c->msg_done = false;
            c->msg_end = c->parsed;
            request_complete(c);
            return 1;
        }
        c->head_end = c->parsed;
        sl_origin_route_head(c);
        /* Whatever the head produced (100 Continue) must reach the client
         * before it will send the body. */
        if (c->out_off < c->out.len && !c->failed) {
            ssize_t w = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
            if (w > 0)
                c->out_off += (size_t)w;
        }
    }
}

/* --- writing ------------------------------------------------------------ */

/* Tops up c->out with generated body bytes ('x'), chunk-framed or not. */
static void generate(struct sl_origin_conn *c)
{
    if (c->out_off > 0) {
        memmove(c->out.data, c->out.data + c->out_off, c->out.len - c->out_off);
        c->out.len -= c->out_off;
        c->out_off = 0;
    }
    while (c->out.len < OUT_HIGH && !c->failed) {
        uint64_t n;
        if (c->gen_chunk) {
            if (c->gen_left == 0) {
                if (c->gen_last_chunk)
                    sl_origin_out_str(c, "0\r\n\r\n");
                c->gen_last_chunk = false;
                return;
            }
            n = c->gen_left < c->gen_chunk ? c->gen_left : c->gen_chunk;
            out_hex(c, n);
            sl_origin_out(c, "\r\n", 2);
        } else {
            if (c->gen_left == 0)
                return;
            n = c->gen_left < OUT_HIGH ? c->gen_left : OUT_HIGH;
        }
        if (sl_origin_buf_reserve(&c->out, (size_t)n + 2) < 0) {
            c->failed = true;
            return;
        }
        memset(c->out.data + c->out.len, 'x', (size_t)n);
        c->out.len += (size_t)n;
        c->gen_left -= n;
        if (c->gen_chunk)
            sl_origin_out(c, "\r\n", 2);
    }
}

/* Writes queued and generated output: 1 all done, 0 the socket is full,
 * -1 the connection is broken. */
static int flush(struct sl_origin_conn *c)
{
    for (;;) {
        if (c->out_off == c->out.len)
            c->out_off = c->out.len = 0;
        if (c->gen_left || c->gen_last_chunk)
            generate(c);
        if (c->failed)
            return -1;
        if (c->out_off == c->out.len) {
            shrink(&c->out, OUT_INITIAL);
            return 1;
        }
        ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->out_off += (size_t)n;
    }
}

/* --- events and lifetime ------------------------------------------------ */

static void set_event(struct event *ev, bool *on, bool want)
{
    if (want == *on)
        return;
    if (want)
        event_add(ev, NULL);
    else
        event_del(ev);
    *on = want;
}

static void arm_timer(struct sl_origin_conn *c, uint32_t ms)
{
    if (c->tev_on)
        return;
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    evtimer_add(&c->tev, &tv);
    c->tev_on = true;
}

static void update_events(struct sl_origin_conn *c)
{
    size_t unsent = c->out.len - c->out_off;
    bool want_read, want_write = unsent > 0;
    switch (c->state) {
    case SL_ORIGIN_HTTP:
        /* Not reading while a response is in progress is the back-pressure
         * for pipelined requests. */
        want_read = !c->busy && !c->eof;
        break;
    case SL_ORIGIN_TUNNEL:
        want_read = !c->eof && unsent < TUNNEL_HIGH;
        break;
    default:
        want_read = true;
        want_write = false;
        break;
    }
    set_event(&c->rev, &c->rev_on, want_read);
    set_event(&c->wev, &c->wev_on, want_write);
}

/* Bytes that never became a complete request are logged once, before the
 * peer can observe the close. A tunnel's bytes are not requests. */
static void log_partial(struct sl_origin_conn *c)
{
    if (c->state == SL_ORIGIN_TUNNEL || c->in.len <= c->req_start)
        return;
    sl_origin_log_record(c->origin, "partial", c->in.data + c->req_start, c->in.len - c->req_start);
    c->req_start = c->in.len;
}

static void conn_free(struct sl_origin_conn *c)
{
    if (c->state == SL_ORIGIN_HTTP)
        log_partial(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->origin->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rev_on)
        event_del(&c->rev);
    if (c->wev_on)
        event_del(&c->wev);
    if (c->tev_on)
        event_del(&c->tev);
    close(c->fd);
    free(c->in.data);
    free(c->out.data);
    free(c->hdrs);
    free(c);
}

/* Closing a socket with unread input makes the kernel send RST, which can
 * destroy the response still in flight to the peer (RFC 9112 §9.6). So: shut
 * the write side, read and discard until the peer closes or LINGER_MS pass. */
static void start_linger(struct sl_origin_conn *c)
{
    log_partial(c);
    shutdown(c->fd, SHUT_WR);
    c->state = SL_ORIGIN_LINGER;
    if (c->tev_on) {
        event_del(&c->tev);
        c->tev_on = false;
    }
    arm_timer(c, LINGER_MS);
}

static void drain(struct sl_origin_conn *c)
{
    static char sink[16384];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->fd, sink, sizeof sink);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        conn_free(c);
        return;
    }
}

static void start_tunnel(struct sl_origin_conn *c)
{
    c->state = SL_ORIGIN_TUNNEL;
    c->busy = false;
    /* Bytes pipelined behind the upgrade request already belong to the
     * tunnel. */
    sl_origin_out(c, c->in.data + c->req_start, c->in.len - c->req_start);
    c->in.len = c->req_start = c->parsed = 0;
}

static void end_request(struct sl_origin_conn *c)
{
    c->busy = false;
    c->after = SL_ORIGIN_AFTER_NEXT;
}

/* Makes all the progress possible without blocking, then sets the events to
 * wait for. May free the connection: callers return right after. */
static void drive(struct sl_origin_conn *c)
{
    for (;;) {
        if (c->failed)
            goto close;
        if (c->state == SL_ORIGIN_LINGER)
            break;
        if (c->state == SL_ORIGIN_TUNNEL) {
            int r = flush(c);
            if (r < 0 || (r > 0 && c->eof))
                goto close;
            break;
        }
        if (c->busy) {
            int r = flush(c);
            if (r < 0)
                goto close;
            if (r == 0)
                break;
            if (c->delay_pending) {
                arm_timer(c, c->delay_ms);
                break;
            }
            if (c->slow_left > 0) {
                arm_timer(c, c->slow_ms);
                break;
            }
            if (c->after == SL_ORIGIN_AFTER_CLOSE) {
                start_linger(c);
                break;
            }
            if (c->after == SL_ORIGIN_AFTER_TUNNEL) {
                start_tunnel(c);
                continue;
            }
            end_request(c);
            continue;
        }
        if (c->out_off < c->out.len && flush(c) < 0)
            goto close;
        int r = parse(c);
        if (r < 0) {
            c->busy = true;
            c->gen_left = c->slow_left = 0;
            c->gen_last_chunk = c->delay_pending = false;
            sl_origin_route_bad_request(c);
            c->after = SL_ORIGIN_AFTER_CLOSE;
            continue;
        }
        if (r > 0)
            continue;
        if (c->eof)
            goto close;
        break;
    }
    update_events(c);
    return;
close:
    conn_free(c);
}

/* Keeps at least IN_MIN_FREE bytes free at the end of c->in, first by moving
 * the current request to the front (offsets are relative to it). */
static int make_room(struct sl_origin_conn *c)
{
    if (c->req_start > 0 && (c->req_start == c->in.len || c->in.cap - c->in.len < IN_MIN_FREE)) {
        size_t rs = c->req_start;
        memmove(c->in.data, c->in.data + rs, c->in.len - rs);
        c->in.len -= rs;
        c->parsed -= rs;
        if (c->headers_done && c->head_end >= rs)
            c->head_end -= rs;
        c->req_start = 0;
    }
    if (c->in.len == 0)
        shrink(&c->in, IN_INITIAL);
    return sl_origin_buf_reserve(&c->in, IN_MIN_FREE);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct sl_origin_conn *c = arg;
    (void)what;
    if (c->state == SL_ORIGIN_LINGER) {
        drain(c);
        return;
    }
    if (make_room(c) < 0) {
        conn_free(c);
        return;
    }
    ssize_t n = read(fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    if (n > 0) {
        c->in.len += (size_t)n;
    } else if (n == 0) {
        c->eof = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
    } else {
        conn_free(c);
        return;
    }
    if (c->state == SL_ORIGIN_TUNNEL) {
        sl_origin_out(c, c->in.data, c->in.len);
        c->in.len = 0;
    }
    drive(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    drive(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sl_origin_conn *c = arg;
    (void)fd;
    (void)what;
    c->tev_on = false;
    if (c->state == SL_ORIGIN_LINGER) {
        conn_free(c);
        return;
    }
    if (c->delay_pending) {
        c->delay_pending = false;
        sl_origin_route_delayed(c);
    } else if (c->slow_left > 0) {
        uint64_t n = c->slow_left < 1024 ? c->slow_left : 1024;
        c->gen_left += n;
        c->slow_left -= n;
    }
    drive(c);
}

int sl_origin_conn_new(struct sl_origin *o, int fd)
{
    struct sl_origin_conn *c = calloc(1, sizeof *c);
    if (!c || sl_origin_buf_reserve(&c->in, IN_INITIAL) < 0
        || sl_origin_buf_reserve(&c->out, OUT_INITIAL) < 0) {
        if (c) {
            free(c->in.data);
            free(c);
        }
        close(fd);
        return -1;
    }
    c->origin = o;
    c->fd = fd;
    c->state = SL_ORIGIN_HTTP;
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    event_assign(&c->rev, o->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, o->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->tev, o->base, on_timer, c);
    c->next = o->conns;
    if (o->conns)
        o->conns->prev = c;
    o->conns = c;
    sl_origin_log_connection(o);
    update_events(c);
    return 0;
}

void sl_origin_conn_free_all(struct sl_origin *o)
{
    while (o->conns)
        conn_free(o->conns);
}
