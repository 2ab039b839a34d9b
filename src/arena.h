/* Request-scoped bump allocator: allocations are never freed one by one;
 * sl_arena_reset() drops them all at request end and keeps the first chunk,
 * so a steady stream of small requests allocates nothing. */
#ifndef SL_ARENA_H
#define SL_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct sl_arena_chunk;

struct sl_arena {
    struct sl_arena_chunk *chunks;  /* owned; newest first */
    char *ptr;                      /* next free byte in the newest chunk */
    char *end;
};

/* Returns n bytes aligned for any type, valid until the next reset or fini,
 * or NULL when out of memory. Requests larger than a chunk get a chunk of
 * their own. The common case (room in the current chunk) is inline. */
static inline void *sl_arena_alloc(struct sl_arena *a, size_t n);

/* sl_arena_alloc when the current chunk is short of n (aligned) bytes. */
void *sl_arena_alloc_chunk(struct sl_arena *a, size_t n);

/* True when the current chunk has room for n bytes (n > 0), which
 * sl_arena_take then hands out: for a caller whose fast path must not
 * call out, and goes on with sl_arena_alloc otherwise. */
static inline bool sl_arena_has_room(const struct sl_arena *a, size_t n)
{
    n = (n + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    return (size_t)(a->end - a->ptr) >= n;
}

/* n bytes (n > 0) where sl_arena_has_room(a, n) said there is room. */
static inline void *sl_arena_take(struct sl_arena *a, size_t n)
{
    n = (n + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
    void *p = a->ptr;
    a->ptr += n;
    return p;
}

/* Frees p again, the block sl_arena_take returned last: nothing may have
 * been allocated from a since. */
static inline void sl_arena_give_back(struct sl_arena *a, void *p)
{
    a->ptr = p;
}

static inline void *sl_arena_alloc(struct sl_arena *a, size_t n)
{
    n = (n + _Alignof(max_align_t) - 1 + (n == 0)) & ~(_Alignof(max_align_t) - 1);
    if ((size_t)(a->end - a->ptr) >= n) {
        void *p = a->ptr;
        a->ptr += n;
        return p;
    }
    return sl_arena_alloc_chunk(a, n);
}

/* Copies n bytes into the arena and NUL-terminates them. NULL on OOM. */
char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n);

/* Frees every chunk but the first and rewinds it. */
void sl_arena_reset(struct sl_arena *a);

/* Frees every chunk. The arena may be reused afterwards. */
void sl_arena_fini(struct sl_arena *a);

#endif
