/* Growable byte buffer with a read cursor: bytes live in data[start, end).
 * Used for socket input and output; compacts instead of growing when it can. */
#ifndef SL_BUF_H
#define SL_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

struct sl_buf {
    char *data;     /* owned; free with sl_buf_fini */
    size_t start;   /* first unread byte */
    size_t end;     /* one past the last byte */
    size_t cap;
};

/* Number of unread bytes. */
static inline size_t sl_buf_len(const struct sl_buf *b)
{
    return b->end - b->start;
}

/* Pointer to the first unread byte (borrowed; valid until the next call
 * that may grow or compact the buffer). */
static inline char *sl_buf_head(const struct sl_buf *b)
{
    return b->data + b->start;
}

/* Makes room for n more bytes after end, first by moving unread bytes to
 * the front, then by growing. Returns 0, or -1 when out of memory. */
int sl_buf_reserve(struct sl_buf *b, size_t n);

/* Appends n bytes. Returns 0, or -1 when out of memory. The common case
 * (room enough) is inline: appends sit on every request's path. */
static inline int sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (b->cap - b->end < n && sl_buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->end, p, n);
    b->end += n;
    return 0;
}

/* Appends v in decimal. Returns 0 or -1. */
int sl_buf_append_u64(struct sl_buf *b, uint64_t v);

/* Appends v in lowercase hexadecimal (a chunk size). Returns 0 or -1. */
int sl_buf_append_hex(struct sl_buf *b, uint64_t v);

/* Appends a NUL-terminated string. Returns 0 or -1. */
static inline int sl_buf_append_str(struct sl_buf *b, const char *s)
{
    return sl_buf_append(b, s, strlen(s));
}

/* Appends formatted text. Returns 0 or -1. */
int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Marks n unread bytes as consumed; an emptied buffer rewinds to offset 0. */
void sl_buf_consume(struct sl_buf *b, size_t n);

/* Drops every byte; keeps the memory. */
void sl_buf_clear(struct sl_buf *b);

/* Reads once from fd into the buffer, at most max bytes (growing it if
 * needed). Returns what read(2) returned: >0 bytes, 0 at EOF, -1 with errno
 * (EAGAIN when nothing is there). */
ssize_t sl_buf_read(struct sl_buf *b, int fd, size_t max);

/* Frees the memory; the buffer may be reused afterwards. */
void sl_buf_fini(struct sl_buf *b);

#endif
