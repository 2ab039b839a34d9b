#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

int sl_sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

static void to_hex(const unsigned char *d, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = '\0';
}

int sl_sha256_hex(const void *p, size_t n, char hex[SL_SHA256_HEX_LEN + 1])
{
    unsigned char d[32];
    hex[0] = '\0';
    if (sl_sha256(p, n, d) < 0)
        return -1;
    to_hex(d, sizeof d, hex);
    return 0;
}

int sl_sha256_file(const char *path, char hex[SL_SHA256_HEX_LEN + 1])
{
    hex[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    char buf[16384];
    ssize_t n;
    int rc = 0;
    for (;;) {
        n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
    }
    if (n < 0)
        rc = -1;
    int err = errno;
    unsigned char d[32];
    unsigned int len = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(ctx, d, &len) != 1 || len != sizeof d)) {
        err = ENOMEM;
        rc = -1;
    }
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (rc == 0)
        to_hex(d, sizeof d, hex);
    errno = err;
    return rc;
}
