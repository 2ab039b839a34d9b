/* Header lists that plugins may change: a borrowed view of a parsed head
 * until the first change, then an arena copy (copy on write), so requests
 * that no plugin touches pay nothing. */
#ifndef SL_HEADERS_H
#define SL_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "conn.h"
#include "http1.h"

/* Points l at n borrowed fields (no copy). */
void sl_hlist_view(struct sl_hlist *l, struct sl_header *v, size_t n);

/* The same, where v has room for cap fields and the slots past n are
 * free for as long as the n fields are borrowed (a reader's array, see
 * struct sl_head): fields appended go there, without copying the list. */
void sl_hlist_view_spare(struct sl_hlist *l, struct sl_header *v, size_t n, size_t cap);

/* The index-th field called name (case-insensitive), or NULL. */
const struct sl_header *sl_hlist_find(const struct sl_hlist *l, const char *name,
                                      size_t nlen, size_t index);

/* Checks a field and copies it into a, for sl_hlist_append: the name must
 * be a token (sl_is_token) and the value a field value
 * (sl_is_field_value). Name and value are copied NUL-terminated into one
 * block, checked on the way. Returns 0 with *out set, -1 on OOM, or -2
 * when the name or the value is refused (no list changes; the arena keeps
 * the bytes until the request ends). */
int sl_header_copy(struct sl_arena *a, const char *name, size_t nlen, const char *value,
                   size_t vlen, struct sl_header *out);

/* sl_header_copy for a name known to be a token already (it passed
 * sl_header_copy before): only the value is checked. */
int sl_header_copy_known(struct sl_arena *a, const char *name, size_t nlen, const char *value,
                         size_t vlen, struct sl_header *out);

/* sl_hlist_append when l has no free slot: copies or grows it first. */
int sl_hlist_append_grow(struct sl_hlist *l, struct sl_arena *a, const struct sl_header *f);

/* Appends f (its strings are not copied again: they must live as long as
 * the list, as sl_header_copy's do). Returns 0 or -1 (OOM). A free slot
 * (an owned list's, or a view's spare one) takes it inline. */
static inline int sl_hlist_append(struct sl_hlist *l, struct sl_arena *a,
                                  const struct sl_header *f)
{
    if (l->n < l->cap) {
        l->v[l->n++] = *f;
        return 0;
    }
    return sl_hlist_append_grow(l, a, f);
}

/* Removes every field called name. Returns how many were removed, or -1. */
int sl_hlist_remove(struct sl_hlist *l, struct sl_arena *a, const char *name, size_t nlen);

/* True when s is a valid field name (a token, RFC 9110 §5.1). */
bool sl_is_token(const char *s, size_t n);

/* True when s may be a field value: no CR, LF or NUL (other control bytes
 * but HTAB are refused too), so nothing can smuggle in a new line. */
bool sl_is_field_value(const char *s, size_t n);

#endif
