/* Header lists that plugins may change: a borrowed view of a parsed head
 * until the first change, then an arena copy (copy on write), so requests
 * that no plugin touches pay nothing. */
#ifndef SL_HEADERS_H
#define SL_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/* True when s is a valid field name (a token, RFC 9110 §5.1). */
bool sl_is_token(const char *s, size_t n);

/* True when s may be a field value: no CR, LF or NUL (other control bytes
 * but HTAB are refused too), so nothing can smuggle in a new line. */
bool sl_is_field_value(const char *s, size_t n);

/* --- checking and copying short fields inline ------------------------------
 * Plugins mostly set short fields ("X-Bench: 1"): a name and a value of at
 * most 16 bytes each go through registers and are tested a word or 16
 * bytes at a time, without a loop or a call. Anything the tests do not
 * clear goes to the byte-by-byte rule (token_table in headers.c,
 * sl_hdr_control), so the tests only ever give an answer the rule gives
 * too, sooner. */

/* Inline where it is used even when the compiler would rather not: the
 * callers pass constants (the rule, replace or add) that strip most of
 * it. */
#define SL_HDR_INLINE static inline __attribute__((always_inline))

/* 16 bytes as one value (GCC and Clang vector extensions: SSE2 on x86-64,
 * plain code where there is no vector unit). Signed, so that a byte of
 * 0x80 or more compares below every ASCII byte. */
typedef signed char sl_hdr_bytes __attribute__((vector_size(16)));
typedef uint64_t sl_hdr_words __attribute__((vector_size(16)));

/* What each of 16 bytes may be: a byte b passes when b | fold lies in
 * [lo1, hi1], b in [lo2, hi2] (bounds as signed bytes) or b is eq. Per
 * byte, so that 8 bytes of a name and 8 of a value are tested together. */
struct sl_hdr_rule {
    sl_hdr_bytes fold, lo1, hi1, lo2, hi2, eq;
};

/* The rules, in headers.c. Token bytes here are letters, digits and '-'
 * (letters through fold 0x20, which maps [A-Z] and only [A-Z] onto
 * [a-z]): nearly every field name, a subset of the tchar of RFC 9110
 * §5.6.2; a name with others (!#$%&'*+.^_`|~) goes the slow way. Value
 * bytes are 0x20..0x7e and 0x80..0xff: no control byte (HTAB goes the
 * slow way) and no DEL. */
enum sl_hdr_rule_id {
    SL_HDR_FIELD,       /* 8 token bytes, then 8 value bytes */
    SL_HDR_TOKEN,       /* 16 token bytes */
    SL_HDR_VALUE,       /* 16 value bytes */
};
extern const struct sl_hdr_rule sl_hdr_rules[3];

/* True when every byte of the words a, b (in memory order) passes r. */
SL_HDR_INLINE bool sl_hdr_pass(uint64_t a, uint64_t b, const struct sl_hdr_rule *r)
{
    sl_hdr_bytes x = (sl_hdr_bytes)(sl_hdr_words){a, b};
    sl_hdr_bytes f = x | r->fold;
    sl_hdr_bytes out = ((r->lo1 > f) | (f > r->hi1)) & ((r->lo2 > x) | (x > r->hi2)) &
                       ~(x == r->eq);
    sl_hdr_words o = (sl_hdr_words)out;
    return (o[0] | o[1]) == 0;
}

/* True when no byte of w is below 0x20 or is 0x7f: sl_hdr_pass for 8
 * value bytes, in fewer instructions when there is no name to test with
 * them. The lowest byte below 0x20 borrows from nothing below it and sets
 * its top bit in w - 0x20..., which ~w keeps; without one, no byte
 * borrows and none below 0x80 sets it. The same for a zero byte of
 * w ^ 0x7f... */
SL_HDR_INLINE bool sl_hdr_plain_value(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull;
    uint64_t d = w ^ ones * 0x7f;
    return ((((w - ones * 0x20) & ~w) | ((d - ones) & ~d)) & ones * 0x80) == 0;
}

/* Bytes sl_is_field_value refuses: controls but HTAB, and DEL (in
 * headers.c). */
extern const bool sl_hdr_control[256];

/* sl_hdr_move16 and sl_hdr_plain_value for a value of 1..3 bytes: looking
 * up its bytes costs less than putting them into a word to test. */
SL_HDR_INLINE bool sl_hdr_move3_plain(char *d, const char *p, size_t n)
{
    unsigned char b0 = (unsigned char)p[0], b1 = (unsigned char)p[n >> 1],
                  b2 = (unsigned char)p[n - 1];
    d[n - 1] = (char)b2;
    d[n >> 1] = (char)b1;
    d[0] = (char)b0;
    return !(sl_hdr_control[b0] | sl_hdr_control[b1] | sl_hdr_control[b2]);
}

/* "aaaaaaaa", which every rule passes: in place of an empty value, and
 * above the bytes of a string shorter than 4 (SL_HDR_PAD). */
#define SL_HDR_PASSES 0x6161616161616161ull
#define SL_HDR_PAD (SL_HDR_PASSES & ~0xffffffull)

/* Copies the n bytes at p (1..16) to d, reading and writing nothing
 * outside either, and returns them in *w0 and *w1: for n > 8 the first 8
 * and the last 8, else both the same, the first 4 and the last 4 for
 * n >= 4 (overlapping), or the bytes 0, n / 2 and n - 1 under
 * SL_HDR_PAD. Every byte of both words is one of the string's or passes
 * every rule, so a test all their bytes pass is a test the string
 * passes. */
SL_HDR_INLINE void sl_hdr_move16(char *d, const char *p, size_t n, uint64_t *w0, uint64_t *w1)
{
    if (n > 8) {
        uint64_t x, y;
        memcpy(&x, p, 8);
        memcpy(&y, p + n - 8, 8);
        memcpy(d, &x, 8);
        memcpy(d + n - 8, &y, 8);
        *w0 = x;
        *w1 = y;
        return;
    }
    uint64_t w;
    if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + n - 4, 4);
        memcpy(d, &x, 4);
        memcpy(d + n - 4, &y, 4);
        w = x | (uint64_t)y << 32;
    } else {
        unsigned char b0 = (unsigned char)p[0], b1 = (unsigned char)p[n >> 1],
                      b2 = (unsigned char)p[n - 1];
        d[n - 1] = (char)b2;
        d[n >> 1] = (char)b1;
        d[0] = (char)b0;
        w = b0 | (uint64_t)b1 << 8 | (uint64_t)b2 << 16 | SL_HDR_PAD;
    }
    *w0 = w;
    *w1 = w;
}

/* The inline part of a field's copy, for header_change in api.c: for a
 * name of 1..16 bytes and a value of 0..16, when the arena's current
 * chunk has room, copies them into one block as name NUL value NUL, sets
 * *out to it and returns 0 when the tests cleared every byte (the name's
 * too unless name_known), 1 when they did not: the block then holds the
 * field's bytes all the same, for the rule (sl_is_token,
 * sl_is_field_value) to decide on, and the caller gives it back
 * (sl_arena_give_back) when the rule refuses them. -1, and nothing
 * allocated, for anything else (sl_header_copy takes every case).
 * Testing after the copy lets the caller's pointers die early, which
 * frees registers. */
SL_HDR_INLINE int sl_header_copy_fast(struct sl_arena *a, const char *name, size_t nlen,
                                      const char *value, size_t vlen, bool name_known,
                                      char **out)
{
    if (nlen - 1 >= 16 || vlen > 16 || !sl_arena_has_room(a, nlen + vlen + 2))
        return -1;
    char *n = sl_arena_take(a, nlen + vlen + 2);
    char *v = n + nlen + 1;
    uint64_t n0, n1, v0, v1;
    sl_hdr_move16(n, name, nlen, &n0, &n1);
    n[nlen] = '\0';
    v[vlen] = '\0';
    *out = n;
    if (name_known && vlen < 4)
        return vlen == 0 || sl_hdr_move3_plain(v, value, vlen) ? 0 : 1;
    if (vlen > 0)
        sl_hdr_move16(v, value, vlen, &v0, &v1);
    else
        v0 = v1 = SL_HDR_PASSES;
    if (name_known)
        return sl_hdr_plain_value(v0) && sl_hdr_plain_value(v1) ? 0 : 1;
    const struct sl_hdr_rule *r = &sl_hdr_rules[SL_HDR_FIELD];
    return sl_hdr_pass(n0, v0, r) && ((nlen <= 8 && vlen <= 8) || sl_hdr_pass(n1, v1, r)) ? 0 : 1;
}

/* Checks a field and copies it into a, for sl_hlist_append: the name must
 * be a token (sl_is_token) and the value a field value
 * (sl_is_field_value). Name and value are copied NUL-terminated into one
 * block. Returns 0 with *out set, -1 on OOM, or -2 when the name or the
 * value is refused (no list changes, nothing kept in the arena). */
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

/* False when no field of l can be called name: none has nlen bytes and
 * the same last byte but for case, the common case of set_header for a
 * new field, answered without a call. True says nothing for sure. */
SL_HDR_INLINE bool sl_hlist_may_have(const struct sl_hlist *l, const char *name, size_t nlen)
{
    if (nlen == 0)
        return false;
    char last = (char)(name[nlen - 1] | 0x20);
    for (const struct sl_header *h = l->v, *end = l->v + l->n; h < end; h++)
        if (h->name_len == nlen && (char)(h->name[nlen - 1] | 0x20) == last)
            return true;
    return false;
}

/* Removes every field called name. Returns how many were removed, or -1. */
int sl_hlist_remove(struct sl_hlist *l, struct sl_arena *a, const char *name, size_t nlen);

#endif
