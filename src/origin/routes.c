/* sluice-origin routes: what each path answers. Every function here only
 * queues bytes (c->out), body generation (c->gen_*), timers (slow, delay) and
 * the after-response action; conn.c does the I/O. */
#include "origin.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHUNK_MAX 4096              /* /chunked/N: chunks of at most this */
#define CLOSE_MID_CHUNK 1024        /* /close-mid-chunked/N: a few small chunks */
#define SLOW_STEP 1024              /* /slow/N/MS: bytes per tick */
#define DELAY_MAX_MS (3600u * 1000) /* keeps the timer arithmetic in range */
#define DELAY_PLAIN UINT64_MAX      /* /delay/MS without /size/N */

enum framing {
    FR_LENGTH,                      /* Content-Length */
    FR_CHUNKED,                     /* Transfer-Encoding: chunked */
    FR_EOF,                         /* neither: the body ends when the connection closes */
    FR_NONE,                        /* 1xx, 204, 304: no body and no body headers */
};

/* Queues a status line and headers. Returns the framing actually used:
 * HTTP/1.0 clients cannot decode chunked (RFC 9112 §7.1), they get a
 * close-delimited body instead. */
static enum framing head(struct sl_origin_conn *c, int status, enum framing fr, uint64_t len)
{
    if (fr == FR_CHUNKED && c->is_http10)
        fr = FR_EOF;
    if (fr == FR_EOF || !c->keep_alive)
        c->after = SL_ORIGIN_AFTER_CLOSE;
    sl_origin_out_str(c, "HTTP/1.1 ");
    sl_origin_out_u64(c, (uint64_t)status);
    sl_origin_out(c, " ", 1);
    sl_origin_out_str(c, sl_status_reason(status));
    sl_origin_out(c, "\r\n", 2);
    if (fr == FR_CHUNKED || fr == FR_EOF || (fr == FR_LENGTH && len > 0))
        sl_origin_out_str(c, "Content-Type: text/plain\r\n");
    if (fr == FR_LENGTH) {
        sl_origin_out_str(c, "Content-Length: ");
        sl_origin_out_u64(c, len);
        sl_origin_out(c, "\r\n", 2);
    } else if (fr == FR_CHUNKED) {
        sl_origin_out_str(c, "Transfer-Encoding: chunked\r\n");
    }
    sl_origin_out_str(c, "X-Origin-Name: ");
    sl_origin_out(c, c->origin->name, c->origin->name_len);
    sl_origin_out(c, "\r\n", 2);
    /* HTTP/1.0 keep-alive must be confirmed explicitly or the client
     * assumes close (RFC 9112 §9.3). */
    if (c->after == SL_ORIGIN_AFTER_CLOSE)
        sl_origin_out_str(c, "Connection: close\r\n");
    else if (c->is_http10)
        sl_origin_out_str(c, "Connection: keep-alive\r\n");
    sl_origin_out(c, "\r\n", 2);
    return fr;
}

/* A HEAD response carries the GET headers but no body (RFC 9110 §9.3.2). */
static void body(struct sl_origin_conn *c, const void *p, size_t n)
{
    if (!c->is_head)
        sl_origin_out(c, p, n);
}

static void body_x(struct sl_origin_conn *c, uint64_t n, enum framing fr)
{
    if (c->is_head)
        return;
    c->gen_left = n;
    c->gen_chunk = fr == FR_CHUNKED ? CHUNK_MAX : 0;
    c->gen_last_chunk = fr == FR_CHUNKED;
}

static void text(struct sl_origin_conn *c, int status, const char *s)
{
    size_t n = strlen(s);
    head(c, status, FR_LENGTH, n);
    body(c, s, n);
}

/* Parses decimal digits at *p (at least one), advancing *p. */
static bool number(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        if (n > (UINT64_MAX - 9) / 10)
            return false;
        n = n * 10 + (uint64_t)(*s - '0');
        s++;
    }
    if (s == *p)
        return false;
    *p = s;
    *v = n;
    return true;
}

/* The whole of [p, end) is one number. */
static bool only_number(const char *p, const char *end, uint64_t *v)
{
    return number(&p, end, v) && p == end;
}

/* --- routes ------------------------------------------------------------- */

typedef bool route_fn(struct sl_origin_conn *c, const char *rest, const char *end);

static bool route_hello(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    const struct sl_origin *o = c->origin;
    head(c, 200, FR_LENGTH, 11 + o->name_len + 1);
    body(c, "hello from ", 11);
    body(c, o->name, o->name_len);
    body(c, "\n", 1);
    return true;
}

static bool route_echo(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    size_t n;
    const char *raw = sl_origin_conn_raw(c, &n);
    head(c, 200, FR_LENGTH, n);
    body(c, raw, n);
    return true;
}

static bool route_size(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t n;
    if (!only_number(rest, end, &n))
        return false;
    body_x(c, n, head(c, 200, FR_LENGTH, n));
    return true;
}

static bool route_chunked(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t n;
    if (!only_number(rest, end, &n))
        return false;
    body_x(c, n, head(c, 200, FR_CHUNKED, 0));
    return true;
}

static bool route_eof(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t n;
    if (!only_number(rest, end, &n))
        return false;
    body_x(c, n, head(c, 200, FR_EOF, 0));
    return true;
}

static bool route_status(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t code;
    if (!only_number(rest, end, &code) || code < 100 || code > 999)
        return false;
    /* RFC 9110 §6.4.1: 1xx, 204 and 304 never have content. */
    bool bodiless = code < 200 || code == 204 || code == 304;
    head(c, (int)code, bodiless ? FR_NONE : FR_LENGTH, 0);
    return true;
}

static bool route_delay(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t ms, size = DELAY_PLAIN;
    if (!number(&rest, end, &ms) || ms > DELAY_MAX_MS)
        return false;
    if (rest != end) {
        static const char sz[] = "/size/";
        if ((size_t)(end - rest) <= sizeof sz - 1 || memcmp(rest, sz, sizeof sz - 1) != 0
            || !only_number(rest + sizeof sz - 1, end, &size) || size == DELAY_PLAIN)
            return false;
    }
    c->delay_pending = true;
    c->delay_ms = (uint32_t)ms;
    c->delay_size = size;
    return true;
}

void sl_origin_route_delayed(struct sl_origin_conn *c)
{
    if (c->delay_size == DELAY_PLAIN)
        text(c, 200, "delayed\n");
    else
        body_x(c, c->delay_size, head(c, 200, FR_LENGTH, c->delay_size));
}

/* Announces N bytes, sends half, closes: a truncated Content-Length body. */
static bool route_close_mid(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t n;
    if (!only_number(rest, end, &n))
        return false;
    body_x(c, n / 2, head(c, 200, FR_LENGTH, n));
    c->after = SL_ORIGIN_AFTER_CLOSE;
    return true;
}

/* Sends the first N/2 bytes of a chunked body, then closes without the
 * last-chunk: a truncated chunked body. */
static bool route_close_mid_chunked(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t n;
    if (!only_number(rest, end, &n))
        return false;
    enum framing fr = head(c, 200, FR_CHUNKED, 0);
    body_x(c, n / 2, fr);
    c->gen_last_chunk = false;
    if (fr == FR_CHUNKED && c->gen_chunk)
        c->gen_chunk = CLOSE_MID_CHUNK;
    c->after = SL_ORIGIN_AFTER_CLOSE;
    return true;
}

static bool route_close_before_response(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    c->after = SL_ORIGIN_AFTER_CLOSE;
    return true;
}

/* Headers and the first SLOW_STEP bytes now, one more step every MS. */
static bool route_slow(struct sl_origin_conn *c, const char *rest, const char *end)
{
    uint64_t n, ms;
    if (!number(&rest, end, &n) || rest == end || *rest++ != '/'
        || !only_number(rest, end, &ms) || ms > DELAY_MAX_MS)
        return false;
    head(c, 200, FR_LENGTH, n);
    if (c->is_head)
        return true;
    c->gen_left = n < SLOW_STEP ? n : SLOW_STEP;
    c->slow_left = n - c->gen_left;
    c->slow_ms = (uint32_t)ms;
    return true;
}

static bool route_name(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    head(c, 200, FR_LENGTH, c->origin->name_len);
    body(c, c->origin->name, c->origin->name_len);
    return true;
}

static bool route_100(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    /* The 100 itself went out from sl_origin_route_head(), before the body. */
    text(c, 200, "after continue\n");
    return true;
}

static bool route_103(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    sl_origin_out_str(c, "HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n");
    text(c, 200, "after early hints\n");
    return true;
}

static bool has_token(const char *v, size_t n, const char *token)
{
    size_t t = strlen(token);
    for (size_t i = 0; i + t <= n; i++)
        if (strncasecmp(v + i, token, t) == 0)
            return true;
    return false;
}

static bool route_ws(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    size_t n;
    const char *up = sl_origin_conn_header(c, "upgrade", &n);
    if (!up || !has_token(up, n, "websocket")) {
        text(c, 400, "expected Upgrade: websocket\n");
        return true;
    }
    sl_origin_out_str(c, "HTTP/1.1 101 Switching Protocols\r\n"
                         "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    c->after = SL_ORIGIN_AFTER_TUNNEL;
    return true;
}

static bool route_headers(struct sl_origin_conn *c, const char *rest, const char *end)
{
    (void)rest;
    (void)end;
    const char *base = c->in.data + c->req_start;
    uint64_t n = 0;
    for (size_t i = 0; i < c->nhdrs; i++)
        n += c->hdrs[i].name_len + 2 + c->hdrs[i].val_len + 1;
    head(c, 200, FR_LENGTH, n);
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct sl_origin_hdr *h = &c->hdrs[i];
        body(c, base + h->name_off, h->name_len);
        body(c, ": ", 2);
        body(c, base + h->val_off, h->val_len);
        body(c, "\n", 1);
    }
    return true;
}

/* Broken responses for the proxy's upstream-parsing specs: written as is,
 * then the connection is closed. */
static const struct {
    const char *path;
    const char *bytes;
} bad[] = {
    { "/bad/status-line", "HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok" },
    { "/bad/cl-te", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n" },
    { "/bad/two-cl", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" },
    { "/bad/garbage", "\x01\x02 nonsense\r\n\r\n" },
    { "/bad/header-space", "HTTP/1.1 200 OK\r\nFoo : bar\r\nContent-Length: 2\r\n\r\nok" },
    { "/bad/chunk-size", "HTTP/1.1 200 OK\r\nX-Origin-Field: leaked\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "zz\r\nhello\r\n0\r\n\r\n" },
};

static const struct {
    const char *prefix;
    bool exact;
    route_fn *fn;
} routes[] = {
    { "/echo", false, route_echo },
    { "/size/", false, route_size },
    { "/chunked/", false, route_chunked },
    { "/eof/", false, route_eof },
    { "/status/", false, route_status },
    { "/delay/", false, route_delay },
    { "/close-mid/", false, route_close_mid },
    { "/close-mid-chunked/", false, route_close_mid_chunked },
    { "/close-before-response", true, route_close_before_response },
    { "/slow/", false, route_slow },
    { "/name", true, route_name },
    { "/100", true, route_100 },
    { "/103", true, route_103 },
    { "/ws", true, route_ws },
    { "/headers", true, route_headers },
};

static bool is_path(const char *path, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(path, s, len) == 0;
}

static bool has_prefix(const char *path, size_t len, const char *s)
{
    size_t n = strlen(s);
    return n <= len && memcmp(path, s, n) == 0;
}

void sl_origin_route_head(struct sl_origin_conn *c)
{
    size_t len;
    const char *path = sl_origin_conn_path(c, &len);
    c->keep_raw = c->origin->log_fd >= 0 || has_prefix(path, len, "/echo");
    /* RFC 9110 §15.2: no 1xx to HTTP/1.0 clients. */
    if (is_path(path, len, "/100") && !c->is_http10)
        sl_origin_out_str(c, "HTTP/1.1 100 Continue\r\n\r\n");
}

void sl_origin_route_request(struct sl_origin_conn *c)
{
    size_t len;
    const char *path = sl_origin_conn_path(c, &len);
    const char *end = path + len;
    if (len == 1 && path[0] == '/') {
        route_hello(c, end, end);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        bool hit = routes[i].exact ? is_path(path, len, routes[i].prefix)
                                   : has_prefix(path, len, routes[i].prefix);
        if (hit) {
            /* A malformed number or the like in the path. */
            if (!routes[i].fn(c, path + strlen(routes[i].prefix), end))
                text(c, 400, "bad argument in path\n");
            return;
        }
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (is_path(path, len, bad[i].path)) {
            sl_origin_out_str(c, bad[i].bytes);
            c->after = SL_ORIGIN_AFTER_CLOSE;
            return;
        }
    }
    route_hello(c, end, end);
}

void sl_origin_route_bad_request(struct sl_origin_conn *c)
{
    c->keep_alive = false;
    c->is_head = false;
    c->is_http10 = false;
    text(c, 400, "bad request\n");
}
