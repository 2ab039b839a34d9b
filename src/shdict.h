/* Shared dictionaries: named key/value stores shared by every worker thread
 * of the process, declared in the configuration (shared_dicts) and used by
 * plugins of both kinds (Lua through lua_ffi.c, native through the ABI).
 *
 * Values are strings, numbers (double) and booleans. A dictionary is bounded
 * by its declared byte budget: each entry counts sizeof(entry header) + key
 * + string value bytes (the hash index is extra, about 16 bytes per entry).
 * When an insert does not fit, least recently used entries are evicted
 * (get and every write count as a use); a value that could not fit even in
 * an empty dictionary is refused with SL_SHDICT_ENOMEM ("no memory").
 * Entries may carry a time to live in milliseconds, measured on the
 * monotonic clock; an expired entry is never returned and is removed
 * lazily (when met by a lookup, at the LRU tail during inserts, by
 * eviction).
 *
 * Every operation is atomic: one mutex per dictionary, held for a hash
 * lookup and a few pointer moves. Entries are allocated before the lock
 * is taken and freed after it is released; only sl_shdict_update with a
 * string that outgrows its entry allocates under the lock.
 *
 * Lifetime: dictionaries live in a process registry (shdict_registry.c),
 * not in a generation.
 * A generation declares its dictionaries through an sl_shdict_set (which
 * holds a reference on each); a reload that declares the same name again
 * gets the same dictionary, contents included. A dictionary no generation
 * declares any more is freed with the last reference: the set of the last
 * generation declaring it, or a handle (sl_shdict_open) still held by a
 * plugin VM of that generation.
 *
 * Thread-safety: everything here may be called from any thread, except
 * that a set is built and freed by its owner (gen.c). */
#ifndef SL_SHDICT_H
#define SL_SHDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"

struct sl_shdict;
struct sl_shdict_set;

/* Return codes. Positive codes are outcomes, not errors. */
enum {
    SL_SHDICT_OK = 0,
    SL_SHDICT_NOT_FOUND = 1,        /* absent or expired */
    SL_SHDICT_EXISTS = 2,           /* add: a live value is there */
    SL_SHDICT_CHANGED = 3,          /* cas: the current value is not the expected one */
    SL_SHDICT_TRUNCATED = 4,        /* get: the string is longer than the buffer */
    SL_SHDICT_EINVAL = -1,          /* bad key (empty, over SL_SHDICT_KEY_MAX), type or TTL */
    SL_SHDICT_ENOMEM = -2,          /* "no memory": bigger than the dictionary, or malloc failed */
    SL_SHDICT_ENOTNUM = -4,         /* incr: the value is not a number */
};

/* Value types. */
enum sl_shdict_type {
    SL_SHDICT_NIL = 0,              /* no value (absent); storing it deletes */
    SL_SHDICT_BOOL = 1,
    SL_SHDICT_NUMBER = 2,
    SL_SHDICT_STRING = 3,
};

#define SL_SHDICT_KEY_MAX 65535

/* A value going in or out. For SL_SHDICT_BOOL num is 0 or 1; for a string
 * str/len (not NUL-terminated): borrowed from the caller going in, pointing
 * into the caller's buffer coming out of sl_shdict_get. */
struct sl_shdict_value {
    int type;                       /* enum sl_shdict_type */
    double num;
    const char *str;
    size_t len;
};

/* Counters of one dictionary, for metrics. */
struct sl_shdict_stats {
    size_t capacity;                /* the byte budget */
    size_t used;                    /* bytes held by entries (expired ones until removed) */
    size_t count;                   /* entries */
    uint64_t evictions;             /* live entries evicted to make room (LRU) */
    uint64_t expired;               /* expired entries removed */
};

/* --- the registry and handles ---------------------------------------------- */

/* Finds the dictionary called name in the registry, or creates it empty
 * with the byte budget capacity, and declares it once more (a set does
 * this for each dictionary its generation declares). An existing
 * dictionary keeps its budget: sl_shdict_set_publish applies a new one.
 * Returns the dictionary with a new reference (give it back with
 * sl_shdict_release), or NULL when name is not a valid name
 * (sl_config_is_valid_name), capacity is 0, or out of memory. */
struct sl_shdict *sl_shdict_acquire(const char *name, size_t capacity);

/* Undoes one sl_shdict_acquire: the declaration and its reference. NULL is
 * accepted. */
void sl_shdict_release(struct sl_shdict *d);

/* Finds the dictionary called name (len bytes) and returns it with a new
 * reference (drop it with sl_shdict_unref), or NULL. With a scope, only
 * the dictionaries of that set are found; without one (NULL), any
 * dictionary a live generation declares. */
struct sl_shdict *sl_shdict_open(const struct sl_shdict_set *scope, const char *name,
                                 size_t len);

/* Takes and drops a reference. The last reference frees the dictionary and
 * everything in it. sl_shdict_unref accepts NULL. */
void sl_shdict_ref(struct sl_shdict *d);
void sl_shdict_unref(struct sl_shdict *d);

/* The dictionary's name (borrowed: valid as long as a reference is held). */
const char *sl_shdict_name(const struct sl_shdict *d);

/* --- a generation's dictionaries ------------------------------------------- */

/* Acquires the n dictionaries of confs (sl_shdict_acquire each). Returns
 * the set (owned; free with sl_shdict_set_free; never NULL on success,
 * also for n == 0), or NULL with a message in err on out of memory. */
struct sl_shdict_set *sl_shdict_set_new(const struct sl_shdict_conf *confs, size_t n,
                                        char *err, size_t errlen);

/* Releases every dictionary of the set and frees it. NULL is accepted. */
void sl_shdict_set_free(struct sl_shdict_set *s);

/* The set's generation becomes the running one: each dictionary takes the
 * budget the set declared for it. Growing keeps every entry; shrinking
 * evicts least recently used entries until the contents fit. A change is
 * logged as a warning. NULL is accepted. */
void sl_shdict_set_publish(const struct sl_shdict_set *s);

/* The number of dictionaries of the set, and the i-th (borrowed: valid as
 * long as the set), in declaration order. For metrics and the native ABI. */
size_t sl_shdict_set_count(const struct sl_shdict_set *s);
struct sl_shdict *sl_shdict_set_at(const struct sl_shdict_set *s, size_t i);

/* The set whose dictionaries plugin code running on this thread may use,
 * when no request says it: gen.c makes the generation being built the
 * scope while its plugins load (their init runs then). enter returns the
 * previous scope, which the caller hands back to leave. */
const struct sl_shdict_set *sl_shdict_scope_enter(const struct sl_shdict_set *s);
void sl_shdict_scope_leave(const struct sl_shdict_set *prev);

/* This thread's scope, or NULL. */
const struct sl_shdict_set *sl_shdict_scope(void);

/* --- operations -------------------------------------------------------------- */

/* Reads key. On SL_SHDICT_OK out holds the value; a string is copied into
 * buf (buflen bytes) and out->str points there. When the string is longer
 * than buflen, returns SL_SHDICT_TRUNCATED with out->len set to its length
 * and copies nothing: call again with a bigger buffer. SL_SHDICT_NOT_FOUND
 * when absent or expired; SL_SHDICT_EINVAL for a bad key. */
int sl_shdict_get(struct sl_shdict *d, const char *key, size_t klen,
                  struct sl_shdict_value *out, char *buf, size_t buflen);

/* Stores v under key with a time to live of ttl_ms milliseconds (0: no
 * expiry), replacing any value; a v of type SL_SHDICT_NIL deletes the key.
 * Evicts LRU entries when needed. Returns SL_SHDICT_OK, SL_SHDICT_ENOMEM
 * (the previous value is then left as it was) or SL_SHDICT_EINVAL (bad
 * key, type or negative ttl_ms). */
int sl_shdict_set(struct sl_shdict *d, const char *key, size_t klen,
                  const struct sl_shdict_value *v, int64_t ttl_ms);

/* As sl_shdict_set, but only when key has no live value: otherwise
 * returns SL_SHDICT_EXISTS and changes nothing. v may not be nil. */
int sl_shdict_add(struct sl_shdict *d, const char *key, size_t klen,
                  const struct sl_shdict_value *v, int64_t ttl_ms);

/* Adds by to the number under key and stores the sum in *result (may be
 * NULL). The key keeps its time to live. When key has no live value: with
 * init NULL returns SL_SHDICT_NOT_FOUND; otherwise stores *init + by with
 * a time to live of init_ttl_ms (0: none). SL_SHDICT_ENOTNUM when the
 * value is not a number; SL_SHDICT_ENOMEM or SL_SHDICT_EINVAL as for set.
 * Atomic: concurrent increments are never lost. */
int sl_shdict_incr(struct sl_shdict *d, const char *key, size_t klen, double by,
                   const double *init, int64_t init_ttl_ms, double *result);

/* Compare and set: stores desired (nil: deletes) with ttl_ms only when the
 * live value of key equals expected (same type and value; nil: absent).
 * Returns SL_SHDICT_OK when stored, SL_SHDICT_CHANGED when the value was
 * something else (nothing changes), or an error as for set. Lets a caller
 * read, compute and write back without losing a concurrent update: retry
 * on SL_SHDICT_CHANGED. */
int sl_shdict_cas(struct sl_shdict *d, const char *key, size_t klen,
                  const struct sl_shdict_value *expected,
                  const struct sl_shdict_value *desired, int64_t ttl_ms);

/* What an sl_shdict_update callback decides. */
enum sl_shdict_verdict {
    SL_SHDICT_KEEP = 0,             /* leave the entry as it is */
    SL_SHDICT_STORE = 1,            /* store *next with *ttl_ms */
    SL_SHDICT_REMOVE = 2,           /* delete the key */
};

/* Called under the dictionary's lock with the live value of the key (nil
 * when absent; a string is borrowed until the callback returns). *next
 * starts as a copy of cur and *ttl_ms as the remaining time to live (0:
 * none); a string stored in *next must stay valid until the callback
 * returns. It must be short, must not block and must not use any
 * dictionary. Returns an enum sl_shdict_verdict. */
typedef int (*sl_shdict_update_fn)(void *arg, const struct sl_shdict_value *cur,
                                   struct sl_shdict_value *next, int64_t *ttl_ms);

/* Atomic read-modify-write of key in C (a token bucket, a capped counter):
 * runs fn under the lock and applies its verdict. Returns SL_SHDICT_OK (also
 * for KEEP, and REMOVE of an absent key), or SL_SHDICT_ENOMEM / EINVAL as
 * for set (the entry is then unchanged). A string that does not fit in
 * the entry's allocation is allocated under the lock. */
int sl_shdict_update(struct sl_shdict *d, const char *key, size_t klen,
                     sl_shdict_update_fn fn, void *arg);

/* Deletes key. Returns SL_SHDICT_OK, or SL_SHDICT_NOT_FOUND when it had
 * no live value. */
int sl_shdict_delete(struct sl_shdict *d, const char *key, size_t klen);

/* The remaining time to live of key in *ttl_ms (0: no expiry). Returns
 * SL_SHDICT_OK or SL_SHDICT_NOT_FOUND. */
int sl_shdict_ttl(struct sl_shdict *d, const char *key, size_t klen, int64_t *ttl_ms);

/* Removes every entry. */
void sl_shdict_flush_all(struct sl_shdict *d);

/* Copies the dictionary's counters into out. */
void sl_shdict_stats(struct sl_shdict *d, struct sl_shdict_stats *out);

/* The monotonic clock the dictionaries use, in milliseconds. */
int64_t sl_shdict_now_ms(void);

/* Checks the dictionary's internal consistency under its lock: every
 * entry is in the LRU list once and in its hash chain, the counters match
 * the entries, used <= capacity. Returns 0, or -1 with what is wrong in
 * err. For tests (src/testing.c). */
int sl_shdict_check(struct sl_shdict *d, char *err, size_t errlen);

#endif
