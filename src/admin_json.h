/* A small JSON writer and reader for the admin API (RFC 8259). The writer
 * streams into a struct sl_buf and places the commas itself; the reader is
 * strict (no comments, no trailing commas, no duplicate keys, valid UTF-8
 * only) and builds the same value tree the configuration uses for plugin
 * configs (struct sl_value), so a parsed body and a plugin's config are
 * walked the same way. */
#ifndef SL_ADMIN_JSON_H
#define SL_ADMIN_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config-t.h"

/* Nesting the writer and the reader accept. */
#define SL_JSON_MAX_DEPTH 48

/* Writer state. Every sl_json_* call appends to out; a failure (out of
 * memory, nesting deeper than SL_JSON_MAX_DEPTH) sticks in failed and
 * turns later calls into no-ops, so callers check once at the end. */
struct sl_json {
    struct sl_buf *out;         /* borrowed */
    int depth;
    uint64_t has_item;          /* bit d: the container at depth d has an item already */
    bool after_key;             /* a key was written: its value comes next, no comma */
    bool failed;
};

/* Starts writing one JSON text into out (appended after what it holds). */
void sl_json_init(struct sl_json *j, struct sl_buf *out);

/* Returns 0 when everything was written and every container closed,
 * -1 otherwise. */
int sl_json_finish(const struct sl_json *j);

/* Open and close an object or an array. */
void sl_json_object_begin(struct sl_json *j);
void sl_json_object_end(struct sl_json *j);
void sl_json_array_begin(struct sl_json *j);
void sl_json_array_end(struct sl_json *j);

/* Writes an object member's key; its value is the next value written. */
void sl_json_key(struct sl_json *j, const char *key);

/* Scalars. Strings are escaped; bytes that are not valid UTF-8 become
 * U+FFFD, so the output is always valid JSON. A NULL string writes null.
 * sl_json_number writes null for infinities and NaN, which JSON lacks. */
void sl_json_string(struct sl_json *j, const char *s);
void sl_json_string_n(struct sl_json *j, const char *s, size_t n);
void sl_json_int(struct sl_json *j, int64_t v);
void sl_json_uint(struct sl_json *j, uint64_t v);
void sl_json_number(struct sl_json *j, double v);
void sl_json_bool(struct sl_json *j, bool v);
void sl_json_null(struct sl_json *j);

/* An object member in one call: the key, then the value as the scalar
 * writer of the same name writes it. */
void sl_json_kv_string(struct sl_json *j, const char *key, const char *s);
void sl_json_kv_int(struct sl_json *j, const char *key, int64_t v);
void sl_json_kv_uint(struct sl_json *j, const char *key, uint64_t v);
void sl_json_kv_number(struct sl_json *j, const char *key, double v);
void sl_json_kv_bool(struct sl_json *j, const char *key, bool v);
void sl_json_kv_time(struct sl_json *j, const char *key, int64_t ms);

/* Writes an RFC 3339 UTC timestamp string ("2024-05-01T12:00:00.123Z")
 * for ms milliseconds since the epoch. */
void sl_json_time(struct sl_json *j, int64_t ms);

/* Writes a value tree (a plugin's config, a parsed body): maps as objects
 * in their key order, lists as arrays. */
void sl_json_value(struct sl_json *j, const struct sl_value *v);

/* Parses the JSON text p[0..n) into *out (zeroed first; free with
 * sl_value_free). Objects become SL_VALUE_MAP, arrays SL_VALUE_LIST,
 * integers that fit 64 bits SL_VALUE_INT, other numbers SL_VALUE_NUMBER;
 * line and col are 1-based positions in the text. Refuses (returns -1 with
 * "line L, column C: reason" in err, and *out empty) anything RFC 8259
 * does not allow, a key repeated in one object, nesting deeper than
 * SL_JSON_MAX_DEPTH, and text after the value. Returns 0 on success. */
int sl_json_parse(const char *p, size_t n, struct sl_value *out, char *err, size_t errlen);

#endif
