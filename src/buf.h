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

/* memcpy for the short strings of heads (names, values, targets),
 * returning the end of the copy: up to 32 bytes in two overlapping loads
 * and stores of the fixed size that fits, which the compiler inlines;
 * reads stay within [src, src + n). Longer ones go to memcpy. */
static inline char *sl_copy_short(char *dst, const char *src, size_t n)
{
    if (n >= 8) {
        if (n <= 16) {
            uint64_t a, b;
            memcpy(&a, src, 8);
            memcpy(&b, src + n - 8, 8);
            memcpy(dst, &a, 8);
            memcpy(dst + n - 8, &b, 8);
        } else if (n <= 32) {
            struct { char b[16]; } a, b;
            memcpy(&a, src, 16);
            memcpy(&b, src + n - 16, 16);
            memcpy(dst, &a, 16);
            memcpy(dst + n - 16, &b, 16);
        } else {
            memcpy(dst, src, n);
        }
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + n - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + n - 4, &b, 4);
    } else if (n > 0) {
        dst[0] = src[0];
        if (n > 1) {
            uint16_t a;
            memcpy(&a, src + n - 2, 2);
            memcpy(dst + n - 2, &a, 2);
        }
    }
    return dst + n;
}

/* Appends n bytes. Returns 0, or -1 when out of memory. The common case
 * (room enough) is inline: appends sit on every request's path, and most
 * are a head's short strings, copied by sl_copy_short without a call. */
static inline int sl_buf_append(struct sl_buf *b, const void *p, size_t n)
{
    if (b->cap - b->end < n && sl_buf_reserve(b, n) < 0)
        return -1;
    sl_copy_short(b->data + b->end, p, n);
    b->end += n;
    return 0;
}

/* Room for n more bytes after end, made as sl_buf_reserve does: the
 * address to write them at (borrowed; valid until the next call that may
 * grow or compact the buffer), or NULL when out of memory. For a writer
 * that knows its size up front: one check, then plain stores, then
 * sl_buf_commit. */
static inline char *sl_buf_room(struct sl_buf *b, size_t n)
{
    if (b->cap - b->end < n && sl_buf_reserve(b, n) < 0)
        return NULL;
    return b->data + b->end;
}

/* Takes the bytes written since sl_buf_room up to p (which must lie within
 * the room asked for) into the buffer. */
static inline void sl_buf_commit(struct sl_buf *b, const char *p)
{
    b->end = (size_t)(p - b->data);
}

/* Longest decimal sl_buf_put_u64 writes. */
#define SL_U64_DIGITS 20

/* Writes v in decimal at p, which has room for SL_U64_DIGITS bytes, and
 * returns the end of the digits. For sl_buf_room writers. */
char *sl_buf_put_u64(char *p, uint64_t v);

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

/* Marks n unread bytes as consumed; an emptied buffer rewinds to offset 0.
 * Inline, as the appends: every request consumes its input and output. */
static inline void sl_buf_consume(struct sl_buf *b, size_t n)
{
    b->start += n;
    if (b->start >= b->end)
        b->start = b->end = 0;
}

/* Drops every byte; keeps the memory. */
static inline void sl_buf_clear(struct sl_buf *b)
{
    b->start = b->end = 0;
}

/* Reads once from fd into the buffer, at most max bytes (growing it if
 * needed). Returns what read(2) returned: >0 bytes, 0 at EOF, -1 with errno
 * (EAGAIN when nothing is there). */
ssize_t sl_buf_read(struct sl_buf *b, int fd, size_t max);

/* Frees the memory; the buffer may be reused afterwards. */
void sl_buf_fini(struct sl_buf *b);

#endif
