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

/* The index-th field called name (case-insensitive), or NULL. */
const struct sl_header *sl_hlist_find(const struct sl_hlist *l, const char *name,
                                      size_t nlen, size_t index);

/* Appends a field; name and value are copied into a. Returns 0 or -1 (OOM). */
int sl_hlist_add(struct sl_hlist *l, struct sl_arena *a, const char *name, size_t nlen,
                 const char *value, size_t vlen);

/* Removes every field called name. Returns how many were removed, or -1. */
int sl_hlist_remove(struct sl_hlist *l, struct sl_arena *a, const char *name, size_t nlen);

/* True when s is a valid field name (a token, RFC 9110 §5.1). */
bool sl_is_token(const char *s, size_t n);

/* True when s may be a field value: no CR, LF or NUL (other control bytes
 * but HTAB are refused too), so nothing can smuggle in a new line. */
bool sl_is_field_value(const char *s, size_t n);

#endif
