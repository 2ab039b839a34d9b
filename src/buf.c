#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The slow half of sl_buf_reserve, apart so that the check every append
 * makes costs no register saves. */
static int __attribute__((noinline)) make_room(struct sl_buf *b, size_t n)
{
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

int sl_buf_reserve(struct sl_buf *b, size_t n)
{
    if (b->cap - b->end >= n)
        return 0;
    return make_room(b, n);
}

/* "00".."99": two digits a step. */
static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static size_t count_digits(uint64_t v)
{
    size_t n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

/* Writes v's digits backwards, ending at end. */
static void put_digits(char *end, uint64_t v)
{
    char *p = end;
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
}

/* Every head carries a status code and mostly a Content-Length: those
 * below 10000 take a short path in 32-bit arithmetic, two digits a step;
 * longer ones are counted four digits at a time and written in place. */
char *sl_buf_put_u64(char *p, uint64_t v)
{
    if (v < 100) {
        if (v < 10) {
            *p = (char)('0' + v);
            return p + 1;
        }
        memcpy(p, digit_pairs + 2 * v, 2);
        return p + 2;
    }
    if (v < 10000) {
        uint32_t hi = (uint32_t)v / 100, lo = (uint32_t)v % 100;
        if (hi < 10) {
            *p = (char)('0' + hi);
            memcpy(p + 1, digit_pairs + 2 * lo, 2);
            return p + 3;
        }
        memcpy(p, digit_pairs + 2 * hi, 2);
        memcpy(p + 2, digit_pairs + 2 * lo, 2);
        return p + 4;
    }
    char *end = p + count_digits(v);
    put_digits(end, v);
    return end;
}

int sl_buf_append_u64(struct sl_buf *b, uint64_t v)
{
    size_t n = count_digits(v);
    if (b->cap - b->end < n && sl_buf_reserve(b, n) < 0)
        return -1;
    put_digits(b->data + b->end + n, v);
    b->end += n;
    return 0;
}

/* Every chunk of a re-chunked body starts with one: written in place,
 * after counting the digits from the highest bit set. */
int sl_buf_append_hex(struct sl_buf *b, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = (size_t)(64 - __builtin_clzll(v | 1) + 3) / 4;
    if (b->cap - b->end < n && sl_buf_reserve(b, n) < 0)
        return -1;
    char *p = b->data + b->end + n;
    do {
        *--p = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    b->end += n;
    return 0;
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

ssize_t sl_buf_read(struct sl_buf *b, int fd, size_t max)
{
    if (b->cap - b->end < max && sl_buf_reserve(b, max) < 0) {
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
