#include "shdict.h"
#include "shdict-t.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define INITIAL_BUCKETS 64
#define REAP_AT_INSERT  3           /* expired entries taken off the LRU tail per insert */

/* One key and its value, in one allocation: the key's bytes, then a
 * string value's. */
struct sl_shdict_entry {
    struct sl_shdict_entry *hnext;  /* hash chain; the free list once unlinked */
    struct sl_shdict_entry *prev, *next;    /* LRU list, most recent first */
    int64_t expires;                /* monotonic ms; 0: never */
    size_t size;                    /* bytes accounted: the allocation */
    size_t vlen;                    /* string length */
    size_t vcap;                    /* string bytes the allocation holds */
    uint64_t hash;
    double num;                     /* number; bool as 0 or 1 */
    uint32_t klen;
    uint8_t type;
    char data[];
};

/* --- hashing ------------------------------------------------------------------ */

/* Keys are often chosen by clients (addresses, header values): a keyed hash
 * (SipHash-1-3, as Python and Rust use for the same reason) keeps them from
 * aiming at one chain. */
static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_init(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15u ^ (uint64_t)(uintptr_t)&k;
        k[1] = (uint64_t)ts.tv_sec * 0xc2b2ae3d27d4eb4fu;
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                            \
    do {                                                                    \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);           \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                              \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                              \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);           \
    } while (0)

static uint64_t hash_key(const char *key, size_t n)
{
    const unsigned char *in = (const unsigned char *)key;
    uint64_t v0 = 0x736f6d6570736575u ^ sip_k0, v1 = 0x646f72616e646f6du ^ sip_k1;
    uint64_t v2 = 0x6c7967656e657261u ^ sip_k0, v3 = 0x7465646279746573u ^ sip_k1;
    uint64_t b = (uint64_t)n << 56;
    size_t whole = n - n % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m;
        memcpy(&m, in + i, 8);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < n % 8; i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* --- entries ------------------------------------------------------------------- */

int64_t sl_shdict_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool is_expired(const struct sl_shdict_entry *e, int64_t now)
{
    return e->expires != 0 && now >= e->expires;
}

static bool is_valid_key(const char *key, size_t klen)
{
    return key != NULL && klen > 0 && klen <= SL_SHDICT_KEY_MAX;
}

static bool is_valid_value(const struct sl_shdict_value *v, bool nil_ok)
{
    if (v == NULL)
        return false;
    switch (v->type) {
    case SL_SHDICT_NIL:
        return nil_ok;
    case SL_SHDICT_BOOL:
    case SL_SHDICT_NUMBER:
        return true;
    case SL_SHDICT_STRING:
        return v->str != NULL || v->len == 0;
    default:
        return false;
    }
}

static size_t entry_size(size_t klen, const struct sl_shdict_value *v)
{
    return sizeof(struct sl_shdict_entry) + klen + (v->type == SL_SHDICT_STRING ? v->len : 0);
}

static void set_value(struct sl_shdict_entry *e, const struct sl_shdict_value *v)
{
    e->type = (uint8_t)v->type;
    e->num = v->type == SL_SHDICT_BOOL ? (v->num != 0) : v->type == SL_SHDICT_NUMBER ? v->num : 0;
    e->vlen = v->type == SL_SHDICT_STRING ? v->len : 0;
    if (e->vlen > 0)
        memmove(e->data + e->klen, v->str, e->vlen);
}

/* When an entry stored at now with ttl_ms expires (0: never); saturates. */
static int64_t expiry_at(int64_t now, int64_t ttl_ms)
{
    if (ttl_ms <= 0)
        return 0;
    return ttl_ms > INT64_MAX - now ? INT64_MAX : now + ttl_ms;
}

static int64_t expiry(int64_t ttl_ms)
{
    return expiry_at(sl_shdict_now_ms(), ttl_ms);
}

/* A new entry for key and v (not nil), or NULL on OOM. */
static struct sl_shdict_entry *entry_new(const char *key, size_t klen, uint64_t hash,
                                         const struct sl_shdict_value *v, int64_t expires)
{
    size_t size = entry_size(klen, v);
    struct sl_shdict_entry *e = malloc(size);
    if (e == NULL)
        return NULL;
    e->hnext = e->prev = e->next = NULL;
    e->expires = expires;
    e->size = size;
    e->hash = hash;
    e->klen = (uint32_t)klen;
    e->vcap = v->type == SL_SHDICT_STRING ? v->len : 0;
    memcpy(e->data, key, klen);
    set_value(e, v);
    return e;
}

static void free_list(struct sl_shdict_entry *e)
{
    while (e != NULL) {
        struct sl_shdict_entry *next = e->hnext;
        free(e);
        e = next;
    }
}

static struct sl_shdict_value value_of(const struct sl_shdict_entry *e)
{
    return (struct sl_shdict_value){
        .type = e->type, .num = e->num,
        .str = e->type == SL_SHDICT_STRING ? e->data + e->klen : NULL, .len = e->vlen,
    };
}

static bool value_equals(const struct sl_shdict_entry *e, const struct sl_shdict_value *v)
{
    if (v->type == SL_SHDICT_NIL)
        return e == NULL;
    if (e == NULL || e->type != v->type)
        return false;
    switch (v->type) {
    case SL_SHDICT_BOOL:
        return e->num == (v->num != 0);
    case SL_SHDICT_NUMBER:
        return e->num == v->num;
    default:
        return e->vlen == v->len && (v->len == 0 || memcmp(e->data + e->klen, v->str, v->len) == 0);
    }
}

/* --- the table, under the dictionary's lock ------------------------------------ */

static void lru_unlink(struct sl_shdict *d, struct sl_shdict_entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        d->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        d->tail = e->prev;
}

static void lru_push(struct sl_shdict *d, struct sl_shdict_entry *e)
{
    e->prev = NULL;
    e->next = d->head;
    if (d->head != NULL)
        d->head->prev = e;
    else
        d->tail = e;
    d->head = e;
}

static void lru_touch(struct sl_shdict *d, struct sl_shdict_entry *e)
{
    if (d->head != e) {
        lru_unlink(d, e);
        lru_push(d, e);
    }
}

/* The link that points at key's entry, or at NULL after its chain. */
static struct sl_shdict_entry **find_link(struct sl_shdict *d, const char *key, size_t klen,
                                          uint64_t hash)
{
    struct sl_shdict_entry **pp = &d->buckets[hash & (d->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->hnext) {
        const struct sl_shdict_entry *e = *pp;
        if (e->hash == hash && e->klen == klen && memcmp(e->data, key, klen) == 0)
            break;
    }
    return pp;
}

static struct sl_shdict_entry **link_of(struct sl_shdict *d, const struct sl_shdict_entry *e)
{
    struct sl_shdict_entry **pp = &d->buckets[e->hash & (d->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    return pp;
}

/* Takes the entry *pp out of the table onto *dead (freed after unlock). */
static void unlink_at(struct sl_shdict *d, struct sl_shdict_entry **pp,
                      struct sl_shdict_entry **dead)
{
    struct sl_shdict_entry *e = *pp;
    *pp = e->hnext;
    lru_unlink(d, e);
    d->used -= e->size;
    d->count--;
    e->hnext = *dead;
    *dead = e;
}

/* key's live entry, or NULL (an expired one is taken out on the way). *link
 * (may be NULL) gets the link pointing at the entry. */
static struct sl_shdict_entry *lookup(struct sl_shdict *d, const char *key, size_t klen,
                                      uint64_t hash, int64_t now, struct sl_shdict_entry ***link,
                                      struct sl_shdict_entry **dead)
{
    struct sl_shdict_entry **pp = find_link(d, key, klen, hash);
    struct sl_shdict_entry *e = *pp;
    if (e != NULL && is_expired(e, now)) {
        unlink_at(d, pp, dead);
        d->expired++;
        e = NULL;
    }
    if (link != NULL)
        *link = pp;
    return e;
}

/* Evicts from the LRU tail until need more bytes fit (need <= capacity). */
static void make_room(struct sl_shdict *d, size_t need, int64_t now, struct sl_shdict_entry **dead)
{
    for (int i = 0; i < REAP_AT_INSERT && d->tail != NULL && is_expired(d->tail, now); i++) {
        d->expired++;
        unlink_at(d, link_of(d, d->tail), dead);
    }
    while (d->used + need > d->capacity && d->tail != NULL) {
        if (is_expired(d->tail, now))
            d->expired++;
        else
            d->evictions++;
        unlink_at(d, link_of(d, d->tail), dead);
    }
}

/* Inserts e (its size fits); returns whether the index should grow. */
static bool insert(struct sl_shdict *d, struct sl_shdict_entry *e)
{
    struct sl_shdict_entry **b = &d->buckets[e->hash & (d->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(d, e);
    d->used += e->size;
    d->count++;
    return d->count > d->nbuckets;
}

/* Doubles the index, allocating outside the lock; the rehash itself moves
 * pointers only. A failed allocation leaves longer chains, nothing worse. */
static void grow(struct sl_shdict *d)
{
    pthread_mutex_lock(&d->lock);
    size_t n = d->nbuckets;
    bool needed = d->count > n;
    pthread_mutex_unlock(&d->lock);
    if (!needed || n > SIZE_MAX / 2 / sizeof(struct sl_shdict_entry *))
        return;
    struct sl_shdict_entry **nb = calloc(n * 2, sizeof *nb);
    if (nb == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    if (d->nbuckets == n && d->count > n) {
        size_t mask = n * 2 - 1;
        for (size_t i = 0; i < n; i++) {
            struct sl_shdict_entry *e = d->buckets[i];
            while (e != NULL) {
                struct sl_shdict_entry *next = e->hnext;
                e->hnext = nb[e->hash & mask];
                nb[e->hash & mask] = e;
                e = next;
            }
        }
        struct sl_shdict_entry **old = d->buckets;
        d->buckets = nb;
        d->nbuckets = n * 2;
        nb = old;
    }
    pthread_mutex_unlock(&d->lock);
    free(nb);
}

/* --- operations ---------------------------------------------------------------- */

int sl_shdict_get(struct sl_shdict *d, const char *key, size_t klen,
                  struct sl_shdict_value *out, char *buf, size_t buflen)
{
    if (!is_valid_key(key, klen))
        return SL_SHDICT_EINVAL;
    uint64_t hash = hash_key(key, klen);
    int64_t now = sl_shdict_now_ms();
    struct sl_shdict_entry *dead = NULL;
    int rc = SL_SHDICT_NOT_FOUND;
    pthread_mutex_lock(&d->lock);
    struct sl_shdict_entry *e = lookup(d, key, klen, hash, now, NULL, &dead);
    if (e != NULL) {
        *out = value_of(e);
        rc = SL_SHDICT_OK;
        if (e->type == SL_SHDICT_STRING) {
            if (e->vlen > buflen) {
                out->str = NULL;
                rc = SL_SHDICT_TRUNCATED;
            } else {
                if (e->vlen > 0)
                    memcpy(buf, e->data + e->klen, e->vlen);
                out->str = buf;
            }
        }
        lru_touch(d, e);
    }
    pthread_mutex_unlock(&d->lock);
    free_list(dead);
    return rc;
}

enum store_mode { STORE_SET, STORE_ADD, STORE_CAS };

/* set, add and cas: the new entry is made before the lock is taken. */
static int store(struct sl_shdict *d, const char *key, size_t klen,
                 const struct sl_shdict_value *v, int64_t ttl_ms, enum store_mode mode,
                 const struct sl_shdict_value *expected)
{
    if (!is_valid_key(key, klen) || !is_valid_value(v, mode != STORE_ADD) || ttl_ms < 0 ||
        (mode == STORE_CAS && !is_valid_value(expected, true)))
        return SL_SHDICT_EINVAL;
    uint64_t hash = hash_key(key, klen);
    struct sl_shdict_entry *fresh = NULL;
    if (v->type != SL_SHDICT_NIL) {
        fresh = entry_new(key, klen, hash, v, expiry(ttl_ms));
        if (fresh == NULL)
            return SL_SHDICT_ENOMEM;
    }
    int64_t now = sl_shdict_now_ms();
    struct sl_shdict_entry *dead = NULL;
    struct sl_shdict_entry **link;
    bool grow_it = false;
    int rc = SL_SHDICT_OK;
    pthread_mutex_lock(&d->lock);
    struct sl_shdict_entry *e = lookup(d, key, klen, hash, now, &link, &dead);
    if (mode == STORE_ADD && e != NULL) {
        rc = SL_SHDICT_EXISTS;
    } else if (mode == STORE_CAS && !value_equals(e, expected)) {
        rc = SL_SHDICT_CHANGED;
    } else if (fresh != NULL && fresh->size > d->capacity) {
        rc = SL_SHDICT_ENOMEM;
    } else {
        if (e != NULL)
            unlink_at(d, link, &dead);
        if (fresh != NULL) {
            make_room(d, fresh->size, now, &dead);
            grow_it = insert(d, fresh);
            fresh = NULL;
        }
    }
    pthread_mutex_unlock(&d->lock);
    free(fresh);
    free_list(dead);
    if (grow_it)
        grow(d);
    return rc;
}

int sl_shdict_set(struct sl_shdict *d, const char *key, size_t klen,
                  const struct sl_shdict_value *v, int64_t ttl_ms)
{
    return store(d, key, klen, v, ttl_ms, STORE_SET, NULL);
}

int sl_shdict_add(struct sl_shdict *d, const char *key, size_t klen,
                  const struct sl_shdict_value *v, int64_t ttl_ms)
{
    return store(d, key, klen, v, ttl_ms, STORE_ADD, NULL);
}

int sl_shdict_cas(struct sl_shdict *d, const char *key, size_t klen,
                  const struct sl_shdict_value *expected,
                  const struct sl_shdict_value *desired, int64_t ttl_ms)
{
    return store(d, key, klen, desired, ttl_ms, STORE_CAS, expected);
}

/* The common case (the key holds a number) takes the lock once and
 * allocates nothing; creating the key allocates outside the lock and
 * looks again, since another thread may have created it meanwhile. */
int sl_shdict_incr(struct sl_shdict *d, const char *key, size_t klen, double by,
                   const double *init, int64_t init_ttl_ms, double *result)
{
    if (!is_valid_key(key, klen) || init_ttl_ms < 0)
        return SL_SHDICT_EINVAL;
    uint64_t hash = hash_key(key, klen);
    struct sl_shdict_entry *fresh = NULL, *dead = NULL;
    bool grow_it = false;
    int rc;
    for (;;) {
        int64_t now = sl_shdict_now_ms();
        pthread_mutex_lock(&d->lock);
        struct sl_shdict_entry *e = lookup(d, key, klen, hash, now, NULL, &dead);
        if (e != NULL) {
            if (e->type != SL_SHDICT_NUMBER) {
                rc = SL_SHDICT_ENOTNUM;
            } else {
                e->num += by;
                if (result != NULL)
                    *result = e->num;
                lru_touch(d, e);
                rc = SL_SHDICT_OK;
            }
        } else if (init == NULL) {
            rc = SL_SHDICT_NOT_FOUND;
        } else if (fresh == NULL) {
            pthread_mutex_unlock(&d->lock);
            struct sl_shdict_value v = { .type = SL_SHDICT_NUMBER, .num = *init + by };
            fresh = entry_new(key, klen, hash, &v, expiry(init_ttl_ms));
            if (fresh == NULL) {
                free_list(dead);
                return SL_SHDICT_ENOMEM;
            }
            continue;
        } else if (fresh->size > d->capacity) {
            rc = SL_SHDICT_ENOMEM;
        } else {
            make_room(d, fresh->size, now, &dead);
            grow_it = insert(d, fresh);
            if (result != NULL)
                *result = fresh->num;
            fresh = NULL;
            rc = SL_SHDICT_OK;
        }
        pthread_mutex_unlock(&d->lock);
        break;
    }
    free(fresh);
    free_list(dead);
    if (grow_it)
        grow(d);
    return rc;
}

/* Applies an update callback's STORE; under the lock. */
static int apply_store(struct sl_shdict *d, struct sl_shdict_entry *e,
                       struct sl_shdict_entry **link, const char *key, size_t klen, uint64_t hash,
                       const struct sl_shdict_value *next, int64_t ttl_ms, int64_t now,
                       struct sl_shdict_entry **dead, bool *grow_it)
{
    if (!is_valid_value(next, true) || ttl_ms < 0)
        return SL_SHDICT_EINVAL;
    if (next->type == SL_SHDICT_NIL) {
        if (e != NULL)
            unlink_at(d, link, dead);
        return SL_SHDICT_OK;
    }
    int64_t expires = expiry_at(now, ttl_ms);
    if (e != NULL && (next->type != SL_SHDICT_STRING || next->len <= e->vcap)) {
        set_value(e, next);
        e->expires = expires;
        lru_touch(d, e);
        return SL_SHDICT_OK;
    }
    if (entry_size(klen, next) > d->capacity)
        return SL_SHDICT_ENOMEM;
    struct sl_shdict_entry *fresh = entry_new(key, klen, hash, next, expires);
    if (fresh == NULL)
        return SL_SHDICT_ENOMEM;
    if (e != NULL)
        unlink_at(d, link, dead);
    make_room(d, fresh->size, now, dead);
    *grow_it = insert(d, fresh);
    return SL_SHDICT_OK;
}

int sl_shdict_update(struct sl_shdict *d, const char *key, size_t klen,
                     sl_shdict_update_fn fn, void *arg)
{
    if (!is_valid_key(key, klen) || fn == NULL)
        return SL_SHDICT_EINVAL;
    uint64_t hash = hash_key(key, klen);
    int64_t now = sl_shdict_now_ms();
    struct sl_shdict_entry *dead = NULL, **link;
    bool grow_it = false;
    int rc = SL_SHDICT_OK;
    pthread_mutex_lock(&d->lock);
    struct sl_shdict_entry *e = lookup(d, key, klen, hash, now, &link, &dead);
    struct sl_shdict_value cur = { .type = SL_SHDICT_NIL };
    int64_t ttl_ms = 0;
    if (e != NULL) {
        cur = value_of(e);
        ttl_ms = e->expires != 0 ? e->expires - now : 0;
    }
    struct sl_shdict_value next = cur;
    switch (fn(arg, &cur, &next, &ttl_ms)) {
    case SL_SHDICT_KEEP:
        if (e != NULL)
            lru_touch(d, e);
        break;
    case SL_SHDICT_REMOVE:
        if (e != NULL)
            unlink_at(d, link, &dead);
        break;
    case SL_SHDICT_STORE:
        rc = apply_store(d, e, link, key, klen, hash, &next, ttl_ms, now, &dead, &grow_it);
        break;
    default:
        rc = SL_SHDICT_EINVAL;
        break;
    }
    pthread_mutex_unlock(&d->lock);
    free_list(dead);
    if (grow_it)
        grow(d);
    return rc;
}

int sl_shdict_delete(struct sl_shdict *d, const char *key, size_t klen)
{
    if (!is_valid_key(key, klen))
        return SL_SHDICT_EINVAL;
    uint64_t hash = hash_key(key, klen);
    int64_t now = sl_shdict_now_ms();
    struct sl_shdict_entry *dead = NULL, **link;
    pthread_mutex_lock(&d->lock);
    struct sl_shdict_entry *e = lookup(d, key, klen, hash, now, &link, &dead);
    if (e != NULL)
        unlink_at(d, link, &dead);
    pthread_mutex_unlock(&d->lock);
    free_list(dead);
    return e != NULL ? SL_SHDICT_OK : SL_SHDICT_NOT_FOUND;
}

int sl_shdict_ttl(struct sl_shdict *d, const char *key, size_t klen, int64_t *ttl_ms)
{
    if (!is_valid_key(key, klen))
        return SL_SHDICT_EINVAL;
    uint64_t hash = hash_key(key, klen);
    int64_t now = sl_shdict_now_ms();
    struct sl_shdict_entry *dead = NULL;
    pthread_mutex_lock(&d->lock);
    struct sl_shdict_entry *e = lookup(d, key, klen, hash, now, NULL, &dead);
    if (e != NULL)
        *ttl_ms = e->expires != 0 ? e->expires - now : 0;
    pthread_mutex_unlock(&d->lock);
    free_list(dead);
    return e != NULL ? SL_SHDICT_OK : SL_SHDICT_NOT_FOUND;
}

void sl_shdict_flush_all(struct sl_shdict *d)
{
    struct sl_shdict_entry *dead = NULL;
    pthread_mutex_lock(&d->lock);
    for (struct sl_shdict_entry *e = d->head; e != NULL; e = e->next) {
        e->hnext = dead;
        dead = e;
    }
    memset(d->buckets, 0, d->nbuckets * sizeof *d->buckets);
    d->head = d->tail = NULL;
    d->used = 0;
    d->count = 0;
    pthread_mutex_unlock(&d->lock);
    free_list(dead);
}

void sl_shdict_stats(struct sl_shdict *d, struct sl_shdict_stats *out)
{
    pthread_mutex_lock(&d->lock);
    *out = (struct sl_shdict_stats){
        .capacity = d->capacity, .used = d->used, .count = d->count,
        .evictions = d->evictions, .expired = d->expired,
    };
    pthread_mutex_unlock(&d->lock);
}

static int check_locked(struct sl_shdict *d, char *err, size_t errlen)
{
    size_t n = 0, bytes = 0, chained = 0;
    const struct sl_shdict_entry *prev = NULL;
    for (const struct sl_shdict_entry *e = d->head; e != NULL; prev = e, e = e->next) {
        if (e->prev != prev || ++n > d->count) {
            snprintf(err, errlen, "LRU list broken at entry %zu", n);
            return -1;
        }
        bytes += e->size;
        const struct sl_shdict_entry *c = d->buckets[e->hash & (d->nbuckets - 1)];
        while (c != NULL && c != e)
            c = c->hnext;
        if (c == NULL) {
            snprintf(err, errlen, "entry %zu is not in its hash chain", n);
            return -1;
        }
    }
    for (size_t i = 0; i < d->nbuckets; i++)
        for (const struct sl_shdict_entry *e = d->buckets[i]; e != NULL && chained <= d->count;
             e = e->hnext)
            chained++;
    if (prev != d->tail || n != d->count || chained != d->count || bytes != d->used ||
        d->used > d->capacity) {
        snprintf(err, errlen, "counters: %zu in LRU, %zu chained, count %zu; %zu bytes, used %zu, "
                 "capacity %zu", n, chained, d->count, bytes, d->used, d->capacity);
        return -1;
    }
    return 0;
}

int sl_shdict_check(struct sl_shdict *d, char *err, size_t errlen)
{
    pthread_mutex_lock(&d->lock);
    int rc = check_locked(d, err, errlen);
    pthread_mutex_unlock(&d->lock);
    return rc;
}

/* --- creating and freeing ---------------------------------------------------------- */

struct sl_shdict *sl_shdict_new(const char *name, size_t capacity)
{
    pthread_once(&sip_once, sip_init);
    struct sl_shdict *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->buckets = calloc(INITIAL_BUCKETS, sizeof *d->buckets);
    if (d->buckets == NULL) {
        free(d);
        return NULL;
    }
    /* Critical sections are a few dozen instructions: spinning briefly
     * beats sleeping in the kernel. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&d->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    d->nbuckets = INITIAL_BUCKETS;
    d->capacity = capacity;
    snprintf(d->name, sizeof d->name, "%s", name);
    return d;
}

void sl_shdict_free(struct sl_shdict *d)
{
    struct sl_shdict_entry *e = d->head;
    while (e != NULL) {
        struct sl_shdict_entry *next = e->next;
        free(e);
        e = next;
    }
    free(d->buckets);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

size_t sl_shdict_resize(struct sl_shdict *d, size_t capacity)
{
    struct sl_shdict_entry *dead = NULL;
    pthread_mutex_lock(&d->lock);
    size_t before = d->count;
    d->capacity = capacity;
    make_room(d, 0, sl_shdict_now_ms(), &dead);
    size_t evicted = before - d->count;
    pthread_mutex_unlock(&d->lock);
    free_list(dead);
    return evicted;
}
