#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Escapes for a JSON string, and keeps control bytes out of text lines
 * too, so a request target can never forge a log line. */
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
        } else {
            sl_buf_append(b, s + i, 1);
        }
    }
}

static void format_time(char *out, size_t len, bool iso)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(out, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
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
    sl_buf_printf(b, "\" rid=%s upstream=%s rt=%.3f\n", e->request_id,
                  e->backend ? e->backend : "-", (double)e->duration_us / 1e6);
}

static void add_json(struct sl_accesslog *al, const struct sl_access_entry *e)
{
    char when[40];
    format_time(when, sizeof when, true);
    struct sl_buf *b = &al->buf;
    sl_buf_printf(b, "{\"time\":\"%s\",\"request_id\":\"%s\",\"client\":\"%s\","
                     "\"method\":\"%s\",\"target\":\"",
                  when, e->request_id, e->client, e->method);
    append_escaped(b, e->target, e->target_len, true);
    sl_buf_printf(b, "\",\"http\":\"1.%d\",\"host\":\"", e->http_minor);
    append_escaped(b, e->host, e->host_len, true);
    sl_buf_printf(b, "\",\"status\":%d,\"bytes_sent\":%llu,\"duration_ms\":%.3f,"
                     "\"upstream\":%s%s%s}\n",
                  e->status, (unsigned long long)e->bytes_sent,
                  (double)e->duration_us / 1e3, e->backend ? "\"" : "",
                  e->backend ? e->backend : "null", e->backend ? "\"" : "");
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
