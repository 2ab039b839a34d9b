/* Access log: one line per finished request, buffered per worker and
 * written in batches (every 32 KiB and every second) so that logging costs
 * no system call per request. */
#ifndef SL_ACCESSLOG_H
#define SL_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "config-t.h"

struct sl_accesslog {
    int fd;                 /* -1 when off; not owned when stderr/stdout */
    bool owns_fd;
    enum sl_access_log_format format;
    struct sl_buf buf;
};

/* What one finished request left behind for the log. Strings are borrowed
 * for the duration of the call. */
struct sl_access_entry {
    const char *request_id;
    const char *client;
    const char *method;
    const char *target;
    size_t target_len;
    int http_minor;
    int status;
    uint64_t bytes_sent;
    int64_t duration_us;
    const char *backend;    /* NULL when no backend was used */
    const char *host;
    size_t host_len;
};

/* Opens the access log configured in log (off, stderr, stdout or a path
 * opened for append). Returns 0, or -1 with errno when the file cannot be
 * opened. */
int sl_accesslog_open(struct sl_accesslog *al, const struct sl_log_conf *log);

/* Appends one record. Cheap: formats into the buffer; flushes at 32 KiB. */
void sl_accesslog_add(struct sl_accesslog *al, const struct sl_access_entry *e);

/* Writes out whatever is buffered. */
void sl_accesslog_flush(struct sl_accesslog *al);

/* Flushes, closes an owned fd and frees the buffer. */
void sl_accesslog_close(struct sl_accesslog *al);

#endif
