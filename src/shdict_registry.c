#include "shdict.h"
#include "shdict-t.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_values.h"
#include "log.h"

struct sl_shdict_set {
    size_t n;
    struct sl_shdict **dicts;       /* owned array; a declaration of each */
    size_t *sizes;                  /* owned: the budgets this set declares */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_shdict *registry;  /* under reg_lock */

static __thread const struct sl_shdict_set *scope_cur;

/* --- the registry -------------------------------------------------------------- */

static struct sl_shdict *registry_find(const char *name, size_t len)
{
    for (struct sl_shdict *d = registry; d != NULL; d = d->reg_next)
        if (strlen(d->name) == len && memcmp(d->name, name, len) == 0)
            return d;
    return NULL;
}

struct sl_shdict *sl_shdict_acquire(const char *name, size_t capacity)
{
    if (name == NULL || !sl_config_is_valid_name(name) || capacity == 0)
        return NULL;
    pthread_mutex_lock(&reg_lock);
    struct sl_shdict *d = registry_find(name, strlen(name));
    if (d == NULL && (d = sl_shdict_new(name, capacity)) != NULL) {
        d->reg_next = registry;
        registry = d;
        SL_DEBUG("shared dict %s: created (%zu bytes)", name, capacity);
    }
    if (d != NULL) {
        d->refs++;
        d->declared++;
    }
    pthread_mutex_unlock(&reg_lock);
    return d;
}

void sl_shdict_release(struct sl_shdict *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&reg_lock);
    d->declared--;
    pthread_mutex_unlock(&reg_lock);
    sl_shdict_unref(d);
}

void sl_shdict_ref(struct sl_shdict *d)
{
    pthread_mutex_lock(&reg_lock);
    d->refs++;
    pthread_mutex_unlock(&reg_lock);
}

/* References change under the registry's lock so that a lookup never
 * revives a dictionary whose last reference is going. */
void sl_shdict_unref(struct sl_shdict *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&reg_lock);
    bool last = --d->refs == 0;
    if (last) {
        struct sl_shdict **pp = &registry;
        while (*pp != d)
            pp = &(*pp)->reg_next;
        *pp = d->reg_next;
    }
    pthread_mutex_unlock(&reg_lock);
    if (last) {
        SL_DEBUG("shared dict %s: freed (no generation declares it)", d->name);
        sl_shdict_free(d);
    }
}

struct sl_shdict *sl_shdict_open(const struct sl_shdict_set *scope, const char *name,
                                 size_t len)
{
    struct sl_shdict *found = NULL;
    if (scope != NULL) {
        for (size_t i = 0; i < scope->n && found == NULL; i++) {
            struct sl_shdict *d = scope->dicts[i];
            if (strlen(d->name) == len && memcmp(d->name, name, len) == 0)
                found = d;
        }
        if (found != NULL)
            sl_shdict_ref(found);
        return found;
    }
    pthread_mutex_lock(&reg_lock);
    found = registry_find(name, len);
    if (found != NULL && found->declared > 0)
        found->refs++;
    else
        found = NULL;
    pthread_mutex_unlock(&reg_lock);
    return found;
}

const char *sl_shdict_name(const struct sl_shdict *d)
{
    return d->name;
}

/* --- sets ------------------------------------------------------------------------ */

struct sl_shdict_set *sl_shdict_set_new(const struct sl_shdict_conf *confs, size_t n,
                                        char *err, size_t errlen)
{
    struct sl_shdict_set *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "shared dicts: out of memory");
        return NULL;
    }
    s->dicts = calloc(n ? n : 1, sizeof *s->dicts);
    s->sizes = calloc(n ? n : 1, sizeof *s->sizes);
    if (s->dicts == NULL || s->sizes == NULL) {
        snprintf(err, errlen, "shared dicts: out of memory");
        sl_shdict_set_free(s);
        return NULL;
    }
    for (; s->n < n; s->n++) {
        s->dicts[s->n] = sl_shdict_acquire(confs[s->n].name, confs[s->n].size);
        if (s->dicts[s->n] == NULL) {
            snprintf(err, errlen, "shared dict %s: cannot create it: out of memory",
                     confs[s->n].name);
            sl_shdict_set_free(s);
            return NULL;
        }
        s->sizes[s->n] = confs[s->n].size;
    }
    return s;
}

void sl_shdict_set_free(struct sl_shdict_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        sl_shdict_release(s->dicts[i]);
    free(s->dicts);
    free(s->sizes);
    free(s);
}

void sl_shdict_set_publish(const struct sl_shdict_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        struct sl_shdict *d = s->dicts[i];
        struct sl_shdict_stats st;
        sl_shdict_stats(d, &st);
        if (st.capacity == s->sizes[i])
            continue;
        /* Publishing is serialized (reload.c): nothing changes the budget
         * between the read and the resize. */
        size_t evicted = sl_shdict_resize(d, s->sizes[i]);
        char a[32], b[32];
        sl_config_format_size((long long)st.capacity, a, sizeof a);
        sl_config_format_size((long long)s->sizes[i], b, sizeof b);
        if (evicted > 0)
            SL_WARN("shared dict %s: size %s -> %s: resized; %zu least recently used "
                    "entr%s evicted to fit", d->name, a, b, evicted, evicted == 1 ? "y" : "ies");
        else
            SL_WARN("shared dict %s: size %s -> %s: resized, contents kept", d->name, a, b);
    }
}

size_t sl_shdict_set_count(const struct sl_shdict_set *s)
{
    return s != NULL ? s->n : 0;
}

struct sl_shdict *sl_shdict_set_at(const struct sl_shdict_set *s, size_t i)
{
    return s != NULL && i < s->n ? s->dicts[i] : NULL;
}

const struct sl_shdict_set *sl_shdict_scope_enter(const struct sl_shdict_set *s)
{
    const struct sl_shdict_set *prev = scope_cur;
    scope_cur = s;
    return prev;
}

void sl_shdict_scope_leave(const struct sl_shdict_set *prev)
{
    scope_cur = prev;
}

const struct sl_shdict_set *sl_shdict_scope(void)
{
    return scope_cur;
}
