/* Random bytes for plugins (request ids, tokens, UUIDs): the kernel's
 * CSPRNG (getrandom(2)), read in blocks into a per-thread pool so that a
 * request asking for 16 bytes does not cost a system call. */
#ifndef SL_RANDOM_H
#define SL_RANDOM_H

#include <stddef.h>

/* Fills buf with n random bytes. Returns 0, or -1 when the kernel gives
 * none (getrandom failing other than by EINTR; buf is then unspecified).
 * Bytes handed out are removed from the pool: no two callers ever get the
 * same ones. Thread-safe (the pool is per thread). */
int sl_random_bytes(void *buf, size_t n);

/* Writes n random bytes as 2n lowercase hex digits to out (no NUL).
 * Returns 0 or -1 as sl_random_bytes. */
int sl_random_hex(char *out, size_t n);

/* Writes a random (version 4, RFC 9562 §5.4) UUID as 36 characters,
 * "xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx" with V one of 8, 9, a, b, to out
 * (no NUL). Returns 0 or -1 as sl_random_bytes. */
int sl_random_uuid(char *out);

#endif
