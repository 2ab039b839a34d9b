#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

#define FLUSH_AT 32768

int sl_accesslog_open(struct sl_accesslog *al, const struct sl_log_conf *log)
{
    memset(al, 0, sizeof *al);
    al->fd = -1;
    al->format = log->access_log_format;
    if (log->access_log == NULL || strcmp(log->access_log, "off") == 0)
        return 0;
    if (strcmp(log->access_log, "stderr") == 0) {
        al->fd = STDERR_FILENO;
    } else if (strcmp(log->access_log, "stdout") == 0) {
        al->fd = STDOUT_FILENO;
    } else {
        al->fd = open(log->access_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (al->fd < 0)
            return -1;
        al->owns_fd = true;
    }
    return 0;
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0
 * (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t cp = c & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Escapes for a JSON string (RFC 8259 §7), and keeps control bytes out of
 * text lines too, so a request target can never forge a log line. In JSON,
 * a byte that does not start well-formed UTF-8 becomes U+FFFD: a record
 * stays valid JSON whatever bytes the request carried. */
static void append_escaped(struct sl_buf *b, const char *s, size_t n, bool json)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            sl_buf_append(b, esc, 2);
        } else if (ch < 0x20 || ch == 0x7f) {
            char esc[6] = {'\\', json ? 'u' : 'x', '0', '0', hex[ch >> 4], hex[ch & 15]};
            if (json)
                sl_buf_append(b, esc, 6);
            else {
                esc[2] = hex[ch >> 4];
                esc[3] = hex[ch & 15];
                sl_buf_append(b, esc, 4);
            }
        } else if (ch >= 0x80 && json) {
            size_t len = utf8_len((const unsigned char *)s + i, n - i);
            if (len == 0) {
                sl_buf_append(b, "\\ufffd", 6);
            } else {
                sl_buf_append(b, s + i, len);
                i += len - 1;
            }
        } else {
            sl_buf_append(b, s + i, 1);
        }
    }
}

static void append_escaped_str(struct sl_buf *b, const char *s, bool json)
{
    append_escaped(b, s, strlen(s), json);
}

static void format_time(char *out, size_t len, bool iso)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
}

/* The route as metrics label it: host pattern and path ("/v1",
 * "api.example.com/v1"). */
static void append_route(struct sl_buf *b, const struct sl_access_entry *e, bool json)
{
    if (e->route_host != NULL)
        append_escaped_str(b, e->route_host, json);
    append_escaped_str(b, e->route_path, json);
}

/* Seconds (text) or milliseconds (JSON) with three decimals, or the
 * absent marker. */
static void append_time(struct sl_buf *b, int64_t us, bool json)
{
    if (us < 0)
        sl_buf_append_str(b, json ? "null" : "-");
    else
        sl_buf_printf(b, "%.3f", (double)us / (json ? 1e3 : 1e6));
}

static void add_text(struct sl_accesslog *al, const struct sl_access_entry *e)
{
    char when[40];
    format_time(when, sizeof when, false);
    struct sl_buf *b = &al->buf;
    sl_buf_printf(b, "%s - - [%s] \"%s ", e->client, when, e->method);
    append_escaped(b, e->target, e->target_len, false);
    sl_buf_printf(b, " HTTP/1.%d\" %d %llu \"", e->http_minor, e->status,
                  (unsigned long long)e->bytes_sent);
    append_escaped(b, e->host, e->host_len, false);
    sl_buf_printf(b, "\" rid=%s upstream=%s rt=%.3f route=", e->request_id,
                  e->backend ? e->backend : "-", (double)e->duration_us / 1e6);
    if (e->route_path != NULL)
        append_route(b, e, false);
    else
        sl_buf_append(b, "-", 1);
    sl_buf_printf(b, " upstream_name=%s ut=", e->upstream ? e->upstream : "-");
    append_time(b, e->upstream_us, false);
    sl_buf_append_str(b, " uht=");
    append_time(b, e->upstream_header_us, false);
    for (size_t i = 0; i < e->nfields; i++) {
        sl_buf_append(b, " ", 1);
        sl_buf_append(b, e->fields[i].key, e->fields[i].klen);
        sl_buf_append(b, "=\"", 2);
        append_escaped(b, e->fields[i].value, e->fields[i].vlen, false);
        sl_buf_append(b, "\"", 1);
    }
    sl_buf_append(b, "\n", 1);
}

/* "key":"escaped" or "key":null. */
static void json_str(struct sl_buf *b, const char *key, const char *v)
{
    sl_buf_printf(b, ",\"%s\":", key);
    if (v == NULL) {
        sl_buf_append_str(b, "null");
        return;
    }
    sl_buf_append(b, "\"", 1);
    append_escaped_str(b, v, true);
    sl_buf_append(b, "\"", 1);
}

static void add_json(struct sl_accesslog *al, const struct sl_access_entry *e)
{
    char when[40];
    format_time(when, sizeof when, true);
    struct sl_buf *b = &al->buf;
    sl_buf_printf(b, "{\"time\":\"%s\"", when);
    json_str(b, "request_id", e->request_id);
    json_str(b, "client", e->client);
    json_str(b, "method", e->method);
    sl_buf_append_str(b, ",\"target\":\"");
    append_escaped(b, e->target, e->target_len, true);
    sl_buf_printf(b, "\",\"http\":\"1.%d\",\"host\":\"", e->http_minor);
    append_escaped(b, e->host, e->host_len, true);
    sl_buf_printf(b, "\",\"status\":%d,\"bytes_sent\":%llu,\"duration_ms\":%.3f",
                  e->status, (unsigned long long)e->bytes_sent, (double)e->duration_us / 1e3);
    json_str(b, "upstream", e->backend);
    sl_buf_append_str(b, ",\"route\":");
    if (e->route_path != NULL) {
        sl_buf_append(b, "\"", 1);
        append_route(b, e, true);
        sl_buf_append(b, "\"", 1);
    } else {
        sl_buf_append_str(b, "null");
    }
    json_str(b, "upstream_name", e->upstream);
    sl_buf_append_str(b, ",\"upstream_time_ms\":");
    append_time(b, e->upstream_us, true);
    sl_buf_append_str(b, ",\"upstream_header_time_ms\":");
    append_time(b, e->upstream_header_us, true);
    if (e->nfields > 0) {
        sl_buf_append_str(b, ",\"fields\":{");
        for (size_t i = 0; i < e->nfields; i++) {
            sl_buf_append_str(b, i ? ",\"" : "\"");
            append_escaped(b, e->fields[i].key, e->fields[i].klen, true);
            sl_buf_append(b, "\":\"", 3);
            append_escaped(b, e->fields[i].value, e->fields[i].vlen, true);
            sl_buf_append(b, "\"", 1);
        }
        sl_buf_append(b, "}", 1);
    }
    sl_buf_append(b, "}\n", 2);
}

void sl_accesslog_add(struct sl_accesslog *al, const struct sl_access_entry *e)
{
    if (al->fd < 0)
        return;
    if (al->format == SL_ACCESS_LOG_JSON)
        add_json(al, e);
    else
        add_text(al, e);
    if (sl_buf_len(&al->buf) >= FLUSH_AT)
        sl_accesslog_flush(al);
}

void sl_accesslog_flush(struct sl_accesslog *al)
{
    while (al->fd >= 0 && sl_buf_len(&al->buf) > 0) {
        ssize_t n = write(al->fd, sl_buf_head(&al->buf), sl_buf_len(&al->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;  /* a full disk must not stall the proxy; drop the batch */
        sl_buf_consume(&al->buf, (size_t)n);
    }
    sl_buf_clear(&al->buf);
}

void sl_accesslog_close(struct sl_accesslog *al)
{
    sl_accesslog_flush(al);
    if (al->owns_fd)
        close(al->fd);
    al->fd = -1;
    sl_buf_fini(&al->buf);
}
