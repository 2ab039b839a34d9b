/* Content hashes for change detection: a reload compares the configuration
 * file and each plugin file with what the running generation was built
 * from. Not cryptographic: it tells an edit from no edit, nothing more
 * (whoever can write these files controls the proxy anyway). */
#ifndef SL_HASH_H
#define SL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SL_HASH_FNV1A64_INIT 0xcbf29ce484222325u

/* Continues an FNV-1a 64 hash h (start with SL_HASH_FNV1A64_INIT) over len
 * bytes at data and returns the new value, so inputs can be hashed in
 * pieces. data may be NULL when len is 0. */
static inline uint64_t sl_hash_fnv1a64_add(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

/* The FNV-1a 64 hash of len bytes at data. */
static inline uint64_t sl_hash_fnv1a64(const void *data, size_t len)
{
    return sl_hash_fnv1a64_add(SL_HASH_FNV1A64_INIT, data, len);
}

#endif
