#include "arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE 8192

struct sl_arena_chunk {
    struct sl_arena_chunk *next;
    size_t size;
    alignas(max_align_t) char data[];
};

static size_t align_up(size_t n)
{
    return (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
}

void *sl_arena_alloc_chunk(struct sl_arena *a, size_t n)
{
    n = align_up(n ? n : 1);
    size_t size = n > CHUNK_SIZE / 2 ? n : CHUNK_SIZE;
    struct sl_arena_chunk *c = malloc(sizeof *c + size);
    if (c == NULL)
        return NULL;
    c->size = size;
    if (size != CHUNK_SIZE && a->chunks != NULL) {
        /* An oversized block goes behind the current chunk so the current
         * chunk's free space stays usable. */
        c->next = a->chunks->next;
        a->chunks->next = c;
        return c->data;
    }
    c->next = a->chunks;
    a->chunks = c;
    a->ptr = c->data + n;
    a->end = c->data + size;
    return c->data;
}

char *sl_arena_strndup(struct sl_arena *a, const char *s, size_t n)
{
    char *p = sl_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void sl_arena_reset(struct sl_arena *a)
{
    struct sl_arena_chunk *keep = NULL;
    struct sl_arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct sl_arena_chunk *next = c->next;
        if (keep == NULL && c->size == CHUNK_SIZE)
            keep = c;
        else
            free(c);
        c = next;
    }
    a->chunks = keep;
    if (keep != NULL) {
        keep->next = NULL;
        a->ptr = keep->data;
        a->end = keep->data + keep->size;
    } else {
        a->ptr = a->end = NULL;
    }
}

void sl_arena_fini(struct sl_arena *a)
{
    struct sl_arena_chunk *c = a->chunks;
    while (c != NULL) {
        struct sl_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->ptr = a->end = NULL;
}
