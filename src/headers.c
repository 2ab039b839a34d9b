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

bool sl_is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!token_table[(unsigned char)s[i]])
            return false;
    return true;
}

bool sl_is_field_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

/* Bytes sl_is_field_value refuses: controls but HTAB, and DEL. */
static const bool control_table[256] = {
    [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
    [0x07] = 1, [0x08] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1, [0x0e] = 1,
    [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1,
    [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1,
    [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, [0x7f] = 1,
};

/* Checking while copying: plugins set short fields, for which one pass
 * costs less than a check followed by a call to memcpy. */
static inline int header_copy(struct sl_arena *a, const char *name, size_t nlen,
                              const char *value, size_t vlen, bool name_known,
                              struct sl_header *out)
{
    if (nlen == 0 || nlen > UINT32_MAX || vlen > UINT32_MAX)
        return -2;
    char *n = sl_arena_alloc(a, nlen + vlen + 2);
    if (n == NULL)
        return -1;
    if (name_known && nlen <= 16) {
        /* two overlapping fixed-size copies, inline, within the name */
        if (nlen >= 8) {
            uint64_t x, y;
            memcpy(&x, name, 8);
            memcpy(&y, name + nlen - 8, 8);
            memcpy(n, &x, 8);
            memcpy(n + nlen - 8, &y, 8);
        } else if (nlen >= 4) {
            uint32_t x, y;
            memcpy(&x, name, 4);
            memcpy(&y, name + nlen - 4, 4);
            memcpy(n, &x, 4);
            memcpy(n + nlen - 4, &y, 4);
        } else {
            for (size_t i = 0; i < nlen; i++)
                n[i] = name[i];
        }
    } else if (name_known) {
        memcpy(n, name, nlen);
    } else {
        for (size_t i = 0; i < nlen; i++) {
            unsigned char ch = (unsigned char)name[i];
            if (!token_table[ch])
                return -2;
            n[i] = (char)ch;
        }
    }
    n[nlen] = '\0';
    char *v = n + nlen + 1;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char ch = (unsigned char)value[i];
        if (control_table[ch])
            return -2;
        v[i] = (char)ch;
    }
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
