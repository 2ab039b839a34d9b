#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sl_buf_reserve(struct sl_buf *b, size_t n)
{
    if (b->cap - b->end >= n)
        return 0;
    size_t len = b->end - b->start;
    /* Moving is cheaper than growing when half the space is already read. */
    if (b->start > 0 && b->cap - len >= n && b->start >= len) {
        memmove(b->data, b->data + b->start, len);
        b->start = 0;
        b->end = len;
        return 0;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - len < n)
        cap *= 2;
    char *d = malloc(cap);
    if (d == NULL)
        return -1;
    if (len)
        memcpy(d, b->data + b->start, len);
    free(b->data);
    b->data = d;
    b->start = 0;
    b->end = len;
    b->cap = cap;
    return 0;
}

/* "00".."99": two digits a step. */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Every head carries a status code and mostly a Content-Length: written
 * in place, two digits a step, after counting them. */
int sl_buf_append_u64(struct sl_buf *b, uint64_t v)
{
    size_t n = 1;
    for (uint64_t t = v; t >= 10; t /= 10)
        n++;
    if (b->cap - b->end < n && sl_buf_reserve(b, n) < 0)
        return -1;
    char *p = b->data + b->end + n;
    while (v >= 100) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    b->end += n;
    return 0;
}

int sl_buf_append_hex(struct sl_buf *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    return sl_buf_append(b, tmp + i, sizeof tmp - i);
}

int sl_buf_printf(struct sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data ? b->data + b->end : NULL,
                      b->data ? b->cap - b->end : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if (b->data && (size_t)n < b->cap - b->end) {
        b->end += (size_t)n;
        return 0;
    }
    if (sl_buf_reserve(b, (size_t)n + 1) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->end, b->cap - b->end, fmt, ap);
    va_end(ap);
    b->end += (size_t)n;
    return 0;
}

void sl_buf_consume(struct sl_buf *b, size_t n)
{
    b->start += n;
    if (b->start >= b->end)
        b->start = b->end = 0;
}

void sl_buf_clear(struct sl_buf *b)
{
    b->start = b->end = 0;
}

ssize_t sl_buf_read(struct sl_buf *b, int fd, size_t max)
{
    if (sl_buf_reserve(b, max) < 0) {
        errno = ENOMEM;
        return -1;
    }
    ssize_t n;
    do
        n = read(fd, b->data + b->end, b->cap - b->end < max ? b->cap - b->end : max);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        b->end += (size_t)n;
    return n;
}

void sl_buf_fini(struct sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->start = b->end = b->cap = 0;
}
