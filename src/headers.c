#include "headers.h"

#include <string.h>

void sl_hlist_view(struct sl_hlist *l, struct sl_header *v, size_t n)
{
    l->v = v;
    l->n = n;
    l->cap = n;
    l->owned = false;
}

static bool name_eq(const struct sl_header *hd, const char *name, size_t nlen)
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

int sl_hlist_add(struct sl_hlist *l, struct sl_arena *a, const char *name, size_t nlen,
                 const char *value, size_t vlen)
{
    if (own(l, a) < 0)
        return -1;
    char *n = sl_arena_strndup(a, name, nlen);
    char *v = sl_arena_strndup(a, value, vlen);
    if (n == NULL || v == NULL)
        return -1;
    l->v[l->n++] = (struct sl_header){
        .name = n, .name_len = (uint32_t)nlen, .value = v, .value_len = (uint32_t)vlen,
    };
    return 0;
}

int sl_hlist_remove(struct sl_hlist *l, struct sl_arena *a, const char *name, size_t nlen)
{
    if (sl_hlist_find(l, name, nlen, 0) == NULL)
        return 0;
    if (own(l, a) < 0)
        return -1;
    size_t kept = 0;
    int removed = 0;
    for (size_t i = 0; i < l->n; i++) {
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
