#include "headers.h"

#include <stdint.h>
#include <string.h>

void sl_hlist_view(struct sl_hlist *l, struct sl_header *v, size_t n)
{
    sl_hlist_view_spare(l, v, n, n);
}

void sl_hlist_view_spare(struct sl_hlist *l, struct sl_header *v, size_t n, size_t cap)
{
    l->v = v;
    l->n = n;
    l->cap = cap;
    l->owned = false;
}

static inline bool name_eq(const struct sl_header *hd, const char *name, size_t nlen)
{
    if (hd->name_len != nlen)
        return false;
    /* Most fields of one length differ in their last byte ("X-Bench-1",
     * "X-Bench-2"): reject them before the loop. Bytes equal ignoring case
     * are equal after | 0x20, so a difference there is a real one. */
    if (nlen > 0 && ((hd->name[nlen - 1] | 0x20) != (name[nlen - 1] | 0x20)))
        return false;
    for (size_t i = 0; i < nlen; i++) {
        char a = hd->name[i], b = name[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a | 0x20);
        if (b >= 'A' && b <= 'Z')
            b = (char)(b | 0x20);
        if (a != b)
            return false;
    }
    return true;
}

const struct sl_header *sl_hlist_find(const struct sl_hlist *l, const char *name,
                                      size_t nlen, size_t index)
{
    for (size_t i = 0; i < l->n; i++)
        if (name_eq(&l->v[i], name, nlen) && index-- == 0)
            return &l->v[i];
    return NULL;
}

/* Makes the list writable with room for one more field. */
static int own(struct sl_hlist *l, struct sl_arena *a)
{
    if (l->owned && l->n < l->cap)
        return 0;
    size_t cap = l->n * 2 + 8;
    struct sl_header *v = sl_arena_alloc(a, cap * sizeof *v);
    if (v == NULL)
        return -1;
    if (l->n)
        memcpy(v, l->v, l->n * sizeof *v);
    l->v = v;
    l->cap = cap;
    l->owned = true;
    return 0;
}

/* A view's free slots take appends as they are (sl_hlist_append, inline):
 * the fields it borrows stay untouched, so only a change to one of them
 * (remove) needs the copy. Here the list is full. */
int sl_hlist_append_grow(struct sl_hlist *l, struct sl_arena *a, const struct sl_header *f)
{
    if (own(l, a) < 0)
        return -1;
    l->v[l->n++] = *f;
    return 0;
}

int sl_hlist_remove(struct sl_hlist *l, struct sl_arena *a, const char *name, size_t nlen)
{
    /* Mostly there is nothing to remove (set_header of a new field): the
     * scan stays cheap, no copy is made. */
    size_t first = 0;
    while (first < l->n && !name_eq(&l->v[first], name, nlen))
        first++;
    if (first == l->n)
        return 0;
    if (own(l, a) < 0)
        return -1;
    size_t kept = first;
    int removed = 0;
    for (size_t i = first; i < l->n; i++) {
        if (name_eq(&l->v[i], name, nlen))
            removed++;
        else
            l->v[kept++] = l->v[i];
    }
    l->n = kept;
    return removed;
}

/* tchar of RFC 9110 §5.6.2, one table lookup per byte. */
static const bool token_table[256] = {
    ['a'] = 1, ['A'] = 1, ['b'] = 1, ['B'] = 1, ['c'] = 1, ['C'] = 1, ['d'] = 1, ['D'] = 1,
    ['e'] = 1, ['E'] = 1, ['f'] = 1, ['F'] = 1, ['g'] = 1, ['G'] = 1, ['h'] = 1, ['H'] = 1,
    ['i'] = 1, ['I'] = 1, ['j'] = 1, ['J'] = 1, ['k'] = 1, ['K'] = 1, ['l'] = 1, ['L'] = 1,
    ['m'] = 1, ['M'] = 1, ['n'] = 1, ['N'] = 1, ['o'] = 1, ['O'] = 1, ['p'] = 1, ['P'] = 1,
    ['q'] = 1, ['Q'] = 1, ['r'] = 1, ['R'] = 1, ['s'] = 1, ['S'] = 1, ['t'] = 1, ['T'] = 1,
    ['u'] = 1, ['U'] = 1, ['v'] = 1, ['V'] = 1, ['w'] = 1, ['W'] = 1, ['x'] = 1, ['X'] = 1,
    ['y'] = 1, ['Y'] = 1, ['z'] = 1, ['Z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1,
    ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['!'] = 1, ['#'] = 1,
    ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,
    ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

const bool sl_hdr_control[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1, [0x0e] = 1,
    [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1,
    [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1,
    [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, [0x7f] = 1,
};

#define BYTES8(b) b, b, b, b, b, b, b, b
#define HALVES(a, b) {BYTES8(a), BYTES8(b)}

/* Per half of struct sl_hdr_rule: token bytes (letters through the fold,
 * digits, '-'), or value bytes (0x20..0x7e, then 0x80..0xff as -128..-1;
 * eq is one of them). */
const struct sl_hdr_rule sl_hdr_rules[3] = {
    [SL_HDR_FIELD] = {
        .fold = HALVES(0x20, 0), .lo1 = HALVES('a', 0x20), .hi1 = HALVES('z', 0x7e),
        .lo2 = HALVES('0', -128), .hi2 = HALVES('9', -1), .eq = HALVES('-', 0x20),
    },
    [SL_HDR_TOKEN] = {
        .fold = HALVES(0x20, 0x20), .lo1 = HALVES('a', 'a'), .hi1 = HALVES('z', 'z'),
        .lo2 = HALVES('0', '0'), .hi2 = HALVES('9', '9'), .eq = HALVES('-', '-'),
    },
    [SL_HDR_VALUE] = {
        .fold = HALVES(0, 0), .lo1 = HALVES(0x20, 0x20), .hi1 = HALVES(0x7e, 0x7e),
        .lo2 = HALVES(-128, -128), .hi2 = HALVES(-1, -1), .eq = HALVES(0x20, 0x20),
    },
};

/* 16 bytes at a time while they pass, then per byte by the table from
 * the first 16 that did not: bytes that pass are bytes the table takes, so
 * what the words skip the table would have passed too. id is SL_HDR_TOKEN
 * or SL_HDR_VALUE. */
static bool all_pass(const char *s, size_t n, enum sl_hdr_rule_id id)
{
    const struct sl_hdr_rule *r = &sl_hdr_rules[id];
    uint64_t w0, w1;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        memcpy(&w0, s + i, 8);
        memcpy(&w1, s + i + 8, 8);
        if (!sl_hdr_pass(w0, w1, r))
            break;
    }
    if (i < n && i + 16 > n) {
        if (n >= 16) {
            memcpy(&w0, s + n - 16, 8);
            memcpy(&w1, s + n - 8, 8);
        } else {
            char copy[16];
            sl_hdr_move16(copy, s, n, &w0, &w1);
        }
        if (sl_hdr_pass(w0, w1, r))
            return true;
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (id == SL_HDR_TOKEN ? !token_table[ch] : sl_hdr_control[ch])
            return false;
    }
    return true;
}

bool sl_is_token(const char *s, size_t n)
{
    return n > 0 && all_pass(s, n, SL_HDR_TOKEN);
}

bool sl_is_field_value(const char *s, size_t n)
{
    return all_pass(s, n, SL_HDR_VALUE);
}

/* The general case, and the one sl_header_copy_fast leaves: checking
 * first, so a refused field costs no arena space; long fields are rare
 * enough for memcpy to be the copy. */
static int header_copy(struct sl_arena *a, const char *name, size_t nlen, const char *value,
                       size_t vlen, bool name_known, struct sl_header *out)
{
    if (nlen == 0 || nlen > UINT32_MAX || vlen > UINT32_MAX)
        return -2;
    if ((!name_known && !all_pass(name, nlen, SL_HDR_TOKEN)) ||
        !all_pass(value, vlen, SL_HDR_VALUE))
        return -2;
    char *n = sl_arena_alloc(a, nlen + vlen + 2);
    if (n == NULL)
        return -1;
    memcpy(n, name, nlen);
    n[nlen] = '\0';
    char *v = n + nlen + 1;
    if (vlen > 0)
        memcpy(v, value, vlen);
    v[vlen] = '\0';
    *out = (struct sl_header){
        .name = n, .name_len = (uint32_t)nlen, .value = v, .value_len = (uint32_t)vlen,
    };
    return 0;
}

int sl_header_copy(struct sl_arena *a, const char *name, size_t nlen, const char *value,
                   size_t vlen, struct sl_header *out)
{
    return header_copy(a, name, nlen, value, vlen, false, out);
}

int sl_header_copy_known(struct sl_arena *a, const char *name, size_t nlen, const char *value,
                         size_t vlen, struct sl_header *out)
{
    return header_copy(a, name, nlen, value, vlen, true, out);
}
