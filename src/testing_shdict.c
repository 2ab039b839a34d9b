/* The sl_test_* functions for shared dictionaries: threads hammering one
 * dict, for the specs that check totals and invariants under concurrency
 * (spec/unit/shdict_spec.lua). Split from testing.c, which drives plugins
 * and requests. */
#include "testing.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shdict.h"

#define MAX_THREADS 64

struct dict_job {
    struct sl_shdict *d;
    const char *key;
    int iters, nkeys, use_cas, index;
    size_t maxlen;
    atomic_int *go;
    bool failed;
};

static void wait_go(const struct dict_job *j)
{
    while (atomic_load(j->go) == 0)
        sched_yield();
}

static void *count_thread(void *arg)
{
    struct dict_job *j = arg;
    const double zero = 0;
    size_t klen = strlen(j->key);
    wait_go(j);
    for (int i = 0; i < j->iters && !j->failed; i++) {
        if (!j->use_cas) {
            j->failed = sl_shdict_incr(j->d, j->key, klen, 1, &zero, 0, NULL) != SL_SHDICT_OK;
            continue;
        }
        for (;;) {
            struct sl_shdict_value cur, next = { .type = SL_SHDICT_NUMBER };
            int rc = sl_shdict_get(j->d, j->key, klen, &cur, NULL, 0);
            if (rc == SL_SHDICT_NOT_FOUND)
                cur = (struct sl_shdict_value){ .type = SL_SHDICT_NIL };
            else if (rc != SL_SHDICT_OK || cur.type != SL_SHDICT_NUMBER) {
                j->failed = true;
                break;
            }
            next.num = (rc == SL_SHDICT_OK ? cur.num : 0) + 1;
            rc = sl_shdict_cas(j->d, j->key, klen, &cur, &next, 0);
            if (rc == SL_SHDICT_OK)
                break;
            if (rc != SL_SHDICT_CHANGED) {
                j->failed = true;
                break;
            }
        }
    }
    return NULL;
}

/* Runs fn on n jobs, released together once all started. Returns false
 * when a thread could not start or a job failed. */
static bool run_jobs(struct dict_job *jobs, int n, void *(*fn)(void *))
{
    pthread_t tids[MAX_THREADS];
    atomic_int go;
    atomic_init(&go, 0);
    int started = 0;
    for (; started < n; started++) {
        jobs[started].go = &go;
        jobs[started].index = started;
        if (pthread_create(&tids[started], NULL, fn, &jobs[started]) != 0)
            break;
    }
    atomic_store(&go, 1);
    bool ok = started == n;
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        ok = ok && !jobs[i].failed;
    }
    return ok;
}

double sl_test_shdict_count_threads(struct sl_shdict *d, const char *key, int nthreads,
                                    int iters, int use_cas)
{
    if (nthreads < 1 || nthreads > MAX_THREADS || iters < 0)
        return -1;
    struct dict_job jobs[MAX_THREADS];
    for (int i = 0; i < nthreads; i++)
        jobs[i] = (struct dict_job){ .d = d, .key = key, .iters = iters, .use_cas = use_cas };
    if (!run_jobs(jobs, nthreads, count_thread))
        return -1;
    struct sl_shdict_value v;
    if (sl_shdict_get(d, key, strlen(key), &v, NULL, 0) != SL_SHDICT_OK ||
        v.type != SL_SHDICT_NUMBER)
        return -1;
    return v.num;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* An update callback: appends a byte to a string, counts up a number. */
static int grow_value(void *arg, const struct sl_shdict_value *cur,
                      struct sl_shdict_value *next, int64_t *ttl_ms)
{
    char *scratch = arg;
    (void)ttl_ms;
    if (cur->type == SL_SHDICT_STRING && cur->len < 200) {
        memcpy(scratch, cur->str, cur->len);
        scratch[cur->len] = 'u';
        *next = (struct sl_shdict_value){ .type = SL_SHDICT_STRING, .str = scratch,
                                          .len = cur->len + 1 };
        return SL_SHDICT_STORE;
    }
    if (cur->type == SL_SHDICT_NUMBER) {
        next->num = cur->num + 1;
        return SL_SHDICT_STORE;
    }
    return cur->type == SL_SHDICT_NIL ? SL_SHDICT_KEEP : SL_SHDICT_REMOVE;
}

static void *stress_thread(void *arg)
{
    struct dict_job *j = arg;
    uint64_t seed = 0x9e3779b97f4a7c15u * (uint64_t)(j->index + 1);
    char *text = malloc(j->maxlen + 1), *buf = malloc(j->maxlen + 256);
    char scratch[256];
    if (text == NULL || buf == NULL) {
        j->failed = true;
        free(text);
        free(buf);
        wait_go(j);
        return NULL;
    }
    memset(text, 'a' + j->index % 26, j->maxlen + 1);
    wait_go(j);
    for (int i = 0; i < j->iters && !j->failed; i++) {
        char key[32];
        uint64_t r = xorshift(&seed);
        size_t klen = (size_t)snprintf(key, sizeof key, "k%d", (int)(r % (uint64_t)j->nkeys));
        int64_t ttl = (int64_t)((r >> 8) % 4);
        struct sl_shdict_value v = { .type = SL_SHDICT_STRING, .str = text,
                                     .len = (size_t)((r >> 16) % (j->maxlen + 1)) };
        struct sl_shdict_value num = { .type = SL_SHDICT_NUMBER, .num = 1 };
        const double zero = 0;
        int64_t left;
        int rc;
        switch ((r >> 32) % 9) {
        case 0: case 1:
            rc = sl_shdict_get(j->d, key, klen, &v, buf, j->maxlen + 256);
            break;
        case 2:
            rc = sl_shdict_set(j->d, key, klen, (r >> 40) % 2 ? &v : &num, ttl);
            break;
        case 3:
            rc = sl_shdict_add(j->d, key, klen, &v, ttl);
            break;
        case 4:
            rc = sl_shdict_incr(j->d, key, klen, 1, &zero, ttl, NULL);
            break;
        case 5:
            rc = sl_shdict_cas(j->d, key, klen, &num, &v, ttl);
            break;
        case 6:
            rc = sl_shdict_delete(j->d, key, klen);
            break;
        case 7:
            rc = sl_shdict_ttl(j->d, key, klen, &left);
            break;
        default:
            rc = sl_shdict_update(j->d, key, klen, grow_value, scratch);
            break;
        }
        /* Outcomes vary with the races; only a refused argument is a bug. */
        if (rc == SL_SHDICT_EINVAL)
            j->failed = true;
    }
    free(text);
    free(buf);
    return NULL;
}

int sl_test_shdict_stress(struct sl_shdict *d, int nthreads, int iters, int nkeys,
                          size_t maxlen, char *err, size_t errlen)
{
    if (nthreads < 1 || nthreads > MAX_THREADS || iters < 0 || nkeys < 1) {
        snprintf(err, errlen, "bad arguments");
        return -1;
    }
    struct dict_job jobs[MAX_THREADS];
    for (int i = 0; i < nthreads; i++)
        jobs[i] = (struct dict_job){ .d = d, .iters = iters, .nkeys = nkeys, .maxlen = maxlen };
    if (!run_jobs(jobs, nthreads, stress_thread)) {
        snprintf(err, errlen, "a thread failed (could not start, or an argument was refused)");
        return -1;
    }
    return sl_shdict_check(d, err, errlen);
}
