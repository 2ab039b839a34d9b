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

bool sl_is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || (ch != 0 && strchr(extra, ch) != NULL);
        if (!ok)
            return false;
    }
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
