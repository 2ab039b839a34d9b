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

struct sl_kv;

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
    const char *route_host; /* the route's host pattern; NULL: any host */
    const char *route_path; /* the route's path; NULL when no route matched */
    const char *upstream;   /* the upstream's name; NULL when no backend was tried */
    int64_t upstream_us;    /* from the last attempt's start to the end; -1: none */
    int64_t upstream_header_us; /* from the last attempt's start to its first byte; -1: none */
    const struct sl_kv *fields; /* plugin-set fields (sl_api_log_set_field), in order */
    size_t nfields;
};

/* Opens the access log configured in log (off, stderr, stdout or a path
 * opened for append). Returns 0, or -1 with errno when the file cannot be
 * opened. */
int sl_accesslog_open(struct sl_accesslog *al, const struct sl_log_conf *log);

/* Appends one record. Cheap: formats into the buffer; flushes at 32 KiB.
 * Text: the common log format, then key=value pairs (docs/CONFIG.md).
 * JSON: one object per line; every string is escaped, control characters
 * as \u00XX and bytes that are not UTF-8 as \ufffd, so each line is valid
 * JSON whatever the request carried; plugin fields go in a "fields"
 * object, left out when there are none. */
void sl_accesslog_add(struct sl_accesslog *al, const struct sl_access_entry *e);

/* Writes out whatever is buffered. */
void sl_accesslog_flush(struct sl_accesslog *al);

/* Flushes, closes an owned fd and frees the buffer. */
void sl_accesslog_close(struct sl_accesslog *al);

#endif
