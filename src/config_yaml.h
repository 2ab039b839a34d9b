/* Walking a libyaml document against tables of known keys, with problems
 * collected as "file:line:col: message". Internal to the configuration
 * loader: config.c holds the schema (which keys, which ranges), config_yaml.c
 * the mechanics (reading, syntax errors, type and range checks). */
#ifndef SL_CONFIG_YAML_H
#define SL_CONFIG_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "config-t.h"

#define SL_YAML_PATH_LEN 256

struct sl_yaml_pending;

/* One file being loaded. Nodes handed to callbacks are borrowed from doc and
 * valid until sl_yaml_close(). */
struct sl_yaml {
    const char *file;                   /* borrowed: the path as given */
    yaml_document_t doc;
    bool loaded;                        /* doc holds a document to delete */
    yaml_node_t *root;                  /* NULL for an empty file */
    struct sl_yaml_pending *pend;       /* owned: errors not yet sorted */
    size_t npend;
    size_t nvalues;                     /* plugin config values built so far (config_plugins.c) */
    void *user;                         /* borrowed: the caller's state */
    uint64_t hash;                      /* FNV-1a 64 of the bytes read (sl_yaml_open) */
};

enum sl_yaml_kind {
    SL_YAML_INT,                        /* int, plain integer */
    SL_YAML_MS,                         /* int, duration in ms */
    SL_YAML_SIZE,                       /* size_t, size syntax */
    SL_YAML_U64,                        /* uint64_t, size syntax */
    SL_YAML_COUNT,                      /* size_t, plain integer */
    SL_YAML_BOOL,                       /* bool */
    SL_YAML_MAP,                        /* nested mapping, see sub */
    SL_YAML_FN,                         /* anything else, see fn */
};

typedef void (*sl_yaml_fn)(struct sl_yaml *y, yaml_node_t *val, const char *path,
                           void *base);

/* One known key of a mapping. A number is range-checked against min..max and
 * stored at base + off; a nested mapping is walked with base + off as its
 * base; fn receives the value node and the unshifted base. */
struct sl_yaml_field {
    const char *key;
    enum sl_yaml_kind kind;
    size_t off;
    long long min, max;
    sl_yaml_fn fn;
    const struct sl_yaml_field *sub;
    size_t nsub;
};

#define SL_YAML_NUM(k, kd, type, member, lo, hi) \
    { .key = (k), .kind = (kd), .off = offsetof(type, member), .min = (lo), .max = (hi) }
#define SL_YAML_BOOLEAN(k, type, member) \
    { .key = (k), .kind = SL_YAML_BOOL, .off = offsetof(type, member) }
#define SL_YAML_FUNC(k, f) { .key = (k), .kind = SL_YAML_FN, .fn = (f) }
#define SL_YAML_SUB(k, offset, tbl) \
    { .key = (k), .kind = SL_YAML_MAP, .off = (offset), .sub = (tbl), \
      .nsub = sizeof(tbl) / sizeof((tbl)[0]) }
#define SL_YAML_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

/* Reads the file and parses its single document into y (zeroed by the
 * caller except for user). Returns 0, or -1 when the file cannot be read
 * (message already in errs: "file: cannot read: reason") or is not valid
 * YAML (message pending in y). Call sl_yaml_close() in every case. */
int sl_yaml_open(struct sl_yaml *y, const char *file, struct sl_config_errors *errs);

/* Reads the file at path whole and stores the hash sl_yaml_open records
 * for it (FNV-1a 64 of its bytes) in *hash. Returns 0, or -1 with errno
 * set when it cannot be read. */
int sl_yaml_hash_file(const char *file, uint64_t *hash);

/* Hands the pending messages to errs in file order, each prefixed with
 * "file:line:col: ", and frees the document. Returns how many there were. */
size_t sl_yaml_close(struct sl_yaml *y, struct sl_config_errors *errs);

/* Appends a formatted message to errs (NULL: discarded). Out of memory
 * aborts: loading runs before anything could fall back. */
__attribute__((format(printf, 2, 3)))
void sl_config_errors_add(struct sl_config_errors *errs, const char *fmt, ...);

/* calloc and strdup for the loader. Out of memory aborts, as above. n may
 * be 0 (one element is allocated, so the result is never NULL). */
void *sl_config_xcalloc(size_t n, size_t size);
char *sl_config_xstrdup(const char *s);

/* Records a message at n's position (NULL: line 1, column 1). */
__attribute__((format(printf, 3, 4)))
void sl_yaml_error(struct sl_yaml *y, const yaml_node_t *n, const char *fmt, ...);

/* Records "path: expected WHAT, got DESCRIPTION". */
void sl_yaml_expected(struct sl_yaml *y, const yaml_node_t *n, const char *path,
                      const char *what);

/* Writes what n is, for "got ..." in messages: a quoted scalar (first line,
 * at most 60 bytes), "a mapping", "a list" or "an empty value". Returns buf
 * or a constant string. */
const char *sl_yaml_describe(const yaml_node_t *n, char *buf, size_t len);

/* Returns whether n has the type; otherwise records "expected WHAT". */
bool sl_yaml_is_type(struct sl_yaml *y, const yaml_node_t *n, yaml_node_type_t type,
                     const char *path, const char *what);

/* Returns the text of a scalar node (borrowed), or NULL after recording
 * "expected WHAT". */
const char *sl_yaml_scalar(struct sl_yaml *y, const yaml_node_t *n, const char *path,
                           const char *what);

/* Number of items of a sequence or pairs of a mapping; 0 for a scalar. */
size_t sl_yaml_count(const yaml_node_t *n);

/* Item i of a sequence node. */
yaml_node_t *sl_yaml_item(struct sl_yaml *y, const yaml_node_t *seq, size_t i);

/* Value of key in a mapping node, or NULL. */
yaml_node_t *sl_yaml_get(struct sl_yaml *y, const yaml_node_t *map, const char *key);

/* Checks the key of a pair of map: a scalar not seen earlier in the same
 * mapping. Records "duplicate key 'k' in PATH" (or "at top level") and
 * returns false otherwise. */
bool sl_yaml_is_good_key(struct sl_yaml *y, const yaml_node_t *map,
                         const yaml_node_pair_t *pair, const char *path);

/* Checks that map is a mapping and applies fields to its keys, recording
 * "unknown key 'k' in PATH" for the others. Key paths given to callbacks
 * are PATH.key. */
void sl_yaml_walk(struct sl_yaml *y, yaml_node_t *map, const char *path,
                  const struct sl_yaml_field *fields, size_t nfields, void *base);

/* Accepts one of names; *idx gets its index. Otherwise records "expected
 * one of a, b, got 'x'" and returns false. */
bool sl_yaml_pick(struct sl_yaml *y, const yaml_node_t *val, const char *path,
                  const char *const *names, size_t n, size_t *idx);

/* Writes "PATH.key" (or "key" at top level) into out, SL_YAML_PATH_LEN
 * bytes. */
void sl_yaml_join(char *out, const char *path, const char *key);

#endif
