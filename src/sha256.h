/* SHA-256 of files, as lowercase hex: what the admin API shows for each
 * plugin's source, so an operator can tell which code is running. */
#ifndef SL_SHA256_H
#define SL_SHA256_H

#include <stddef.h>

#define SL_SHA256_HEX_LEN 64

/* Hashes the whole file at path and writes its digest as 64 lowercase hex
 * digits and a NUL into hex (SL_SHA256_HEX_LEN + 1 bytes). Returns 0, or
 * -1 with errno set when the file cannot be read (hex is then ""). */
int sl_sha256_file(const char *path, char hex[SL_SHA256_HEX_LEN + 1]);

/* Hashes n bytes at p into out (32 bytes). Returns 0, or -1 when
 * libcrypto fails (out of memory). */
int sl_sha256(const void *p, size_t n, unsigned char out[32]);

/* sl_sha256 written as 64 lowercase hex digits and a NUL into hex.
 * Returns 0, or -1 when libcrypto fails (hex is then ""). */
int sl_sha256_hex(const void *p, size_t n, char hex[SL_SHA256_HEX_LEN + 1]);

#endif
