#include "random.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#define POOL 256                    /* getrandom never returns short for <= 256 bytes */

static __thread unsigned char pool[POOL];
static __thread size_t avail;       /* unread bytes at the end of pool */

static int fill(unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = getrandom(buf, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

int sl_random_bytes(void *buf, size_t n)
{
    unsigned char *out = buf;
    if (n > POOL / 2)
        return fill(out, n);
    if (avail < n) {
        if (fill(pool, POOL) < 0)
            return -1;
        avail = POOL;
    }
    /* Bytes leave the pool once: copied out, then wiped. */
    unsigned char *src = pool + POOL - avail;
    memcpy(out, src, n);
    memset(src, 0, n);
    avail -= n;
    return 0;
}

static const char digits[] = "0123456789abcdef";

int sl_random_hex(char *out, size_t n)
{
    /* The bytes go at the end of out, then expand forwards in place:
     * byte i is read before digits 2i and 2i+1 overwrite anything. */
    unsigned char *b = (unsigned char *)out + n;
    if (sl_random_bytes(b, n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = b[i];
        out[2 * i] = digits[x >> 4];
        out[2 * i + 1] = digits[x & 15];
    }
    return 0;
}

int sl_random_uuid(char *out)
{
    unsigned char b[16];
    if (sl_random_bytes(b, sizeof b) < 0)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);   /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);   /* variant 10 */
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = digits[b[i] >> 4];
        *p++ = digits[b[i] & 15];
    }
    return 0;
}
