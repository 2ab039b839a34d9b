/* Internals of the shared dictionaries, for shdict.c (the table and its
 * operations) and shdict_registry.c (names, generations' sets, lifetime).
 * Everything else uses shdict.h. */
#ifndef SL_SHDICT_T_H
#define SL_SHDICT_T_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config_values.h"

struct sl_shdict_entry;

struct sl_shdict {
    pthread_mutex_t lock;           /* everything down to 'expired' */
    struct sl_shdict_entry **buckets;   /* owned */
    size_t nbuckets;                /* a power of 2 */
    struct sl_shdict_entry *head, *tail;    /* LRU: head most recently used */
    size_t capacity, used, count;
    uint64_t evictions, expired;
    /* the registry's (shdict_registry.c), under its lock */
    struct sl_shdict *reg_next;
    long refs;
    long declared;                  /* sets (generations) declaring it */
    char name[SL_CONFIG_NAME_MAX + 1];
};

/* A new empty dictionary called name (copied, at most SL_CONFIG_NAME_MAX
 * bytes) with the byte budget capacity, outside any registry; NULL on OOM.
 * Free it with sl_shdict_free. */
struct sl_shdict *sl_shdict_new(const char *name, size_t capacity);

/* Frees d and every entry; no other thread may be using it. */
void sl_shdict_free(struct sl_shdict *d);

/* Sets d's budget to capacity, evicting least recently used entries until
 * the contents fit. Returns how many entries were evicted. */
size_t sl_shdict_resize(struct sl_shdict *d, size_t capacity);

#endif
