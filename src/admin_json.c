#include "admin_json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

/* --- writer ----------------------------------------------------------------- */

void sl_json_init(struct sl_json *j, struct sl_buf *out)
{
    memset(j, 0, sizeof *j);
    j->out = out;
}

int sl_json_finish(const struct sl_json *j)
{
    return j->failed || j->depth != 0 ? -1 : 0;
}

static void put(struct sl_json *j, const char *p, size_t n)
{
    if (!j->failed && sl_buf_append(j->out, p, n) < 0)
        j->failed = true;
}

/* The separator before a value (or a key) at the current depth. */
static void before_item(struct sl_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    uint64_t bit = 1ull << j->depth;
    if (j->has_item & bit)
        put(j, ",", 1);
    j->has_item |= bit;
}

static void open_container(struct sl_json *j, char c)
{
    before_item(j);
    if (j->depth + 1 > SL_JSON_MAX_DEPTH) {
        j->failed = true;
        return;
    }
    put(j, &c, 1);
    j->depth++;
    j->has_item &= ~(1ull << j->depth);
}

static void close_container(struct sl_json *j, char c)
{
    if (j->depth == 0) {
        j->failed = true;
        return;
    }
    put(j, &c, 1);
    j->depth--;
}

void sl_json_object_begin(struct sl_json *j) { open_container(j, '{'); }
void sl_json_object_end(struct sl_json *j) { close_container(j, '}'); }
void sl_json_array_begin(struct sl_json *j) { open_container(j, '['); }
void sl_json_array_end(struct sl_json *j) { close_container(j, ']'); }

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when the
 * bytes there are not one (overlong forms and surrogates included, RFC
 * 3629 §4). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

static void put_escaped(struct sl_json *j, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, run = 0;

    put(j, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        size_t len = c >= 0x20 && c != '"' && c != '\\' ? utf8_len(p + i, n - i) : 0;
        if (len > 0) {
            i += len;
            run += len;
            continue;
        }
        put(j, (const char *)p + i - run, run);
        run = 0;
        char esc[8];
        switch (c) {
        case '"': put(j, "\\\"", 2); break;
        case '\\': put(j, "\\\\", 2); break;
        case '\n': put(j, "\\n", 2); break;
        case '\r': put(j, "\\r", 2); break;
        case '\t': put(j, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                put(j, esc, 6);
            } else {
                put(j, "\xef\xbf\xbd", 3);     /* U+FFFD for a byte that is not UTF-8 */
            }
        }
        i++;
    }
    put(j, (const char *)p + i - run, run);
    put(j, "\"", 1);
}

void sl_json_key(struct sl_json *j, const char *key)
{
    before_item(j);
    put_escaped(j, key, strlen(key));
    put(j, ":", 1);
    j->after_key = true;
}

void sl_json_string_n(struct sl_json *j, const char *s, size_t n)
{
    before_item(j);
    put_escaped(j, s, n);
}

void sl_json_string(struct sl_json *j, const char *s)
{
    if (s == NULL)
        sl_json_null(j);
    else
        sl_json_string_n(j, s, strlen(s));
}

static void put_fmt(struct sl_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_fmt(struct sl_json *j, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        j->failed = true;
    else
        put(j, buf, (size_t)n);
}

void sl_json_int(struct sl_json *j, int64_t v)
{
    before_item(j);
    put_fmt(j, "%lld", (long long)v);
}

void sl_json_uint(struct sl_json *j, uint64_t v)
{
    before_item(j);
    put_fmt(j, "%llu", (unsigned long long)v);
}

void sl_json_number(struct sl_json *j, double v)
{
    if (!isfinite(v)) {
        sl_json_null(j);
        return;
    }
    before_item(j);
    /* 17 significant digits read back as the same double. */
    put_fmt(j, "%.17g", v);
}

void sl_json_bool(struct sl_json *j, bool v)
{
    before_item(j);
    put(j, v ? "true" : "false", v ? 4 : 5);
}

void sl_json_null(struct sl_json *j)
{
    before_item(j);
    put(j, "null", 4);
}

void sl_json_time(struct sl_json *j, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];

    if (gmtime_r(&t, &tm) == NULL) {
        sl_json_null(j);
        return;
    }
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    sl_json_string(j, buf);
}

void sl_json_value(struct sl_json *j, const struct sl_value *v)
{
    switch (v->kind) {
    case SL_VALUE_NULL: sl_json_null(j); break;
    case SL_VALUE_BOOL: sl_json_bool(j, v->b); break;
    case SL_VALUE_INT: sl_json_int(j, v->i); break;
    case SL_VALUE_NUMBER: sl_json_number(j, v->d); break;
    case SL_VALUE_STRING: sl_json_string_n(j, v->s ? v->s : "", v->len); break;
    case SL_VALUE_LIST:
        sl_json_array_begin(j);
        for (size_t i = 0; i < v->n; i++)
            sl_json_value(j, &v->items[i]);
        sl_json_array_end(j);
        break;
    case SL_VALUE_MAP:
        sl_json_object_begin(j);
        for (size_t i = 0; i < v->n; i++) {
            sl_json_key(j, v->keys[i]);
            sl_json_value(j, &v->items[i]);
        }
        sl_json_object_end(j);
        break;
    }
}

/* --- reader ----------------------------------------------------------------- */

struct reader {
    const char *p, *end, *line_start;
    int line;
    char *err;
    size_t errlen;
    bool failed;
};

static int col_of(const struct reader *r)
{
    return (int)(r->p - r->line_start) + 1;
}

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct reader *r, const char *fmt, ...)
{
    if (r->failed)
        return -1;
    r->failed = true;
    int n = snprintf(r->err, r->errlen, "line %d, column %d: ", r->line, col_of(r));
    if (n >= 0 && (size_t)n < r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err + n, r->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void skip_ws(struct reader *r)
{
    while (r->p < r->end) {
        char c = *r->p;
        if (c == '\n') {
            r->p++;
            r->line++;
            r->line_start = r->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            r->p++;
        } else {
            break;
        }
    }
}

static const char *describe(const struct reader *r)
{
    return r->p >= r->end ? "the end of the text" : "an unexpected character";
}

static int hex4(struct reader *r, unsigned *out)
{
    unsigned v = 0;
    if (r->end - r->p < 4)
        return fail(r, "incomplete \\u escape");
    for (int i = 0; i < 4; i++) {
        char c = r->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return fail(r, "invalid \\u escape");
    }
    r->p += 4;
    *out = v;
    return 0;
}

static int put_utf8(struct sl_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return sl_buf_append(b, u, n);
}

/* A \u escape, a surrogate pair included (RFC 8259 §7). */
static int escape_u(struct reader *r, struct sl_buf *b)
{
    unsigned cp, lo;
    if (hex4(r, &cp) < 0)
        return -1;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(r, "lone low surrogate in \\u escape");
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
            return fail(r, "high surrogate without its low half");
        r->p += 2;
        if (hex4(r, &lo) < 0)
            return -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return fail(r, "high surrogate without its low half");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    return put_utf8(b, cp) < 0 ? fail(r, "out of memory") : 0;
}

/* Reads a string (r->p at its opening quote) into a new NUL-terminated
 * copy. */
static int read_string(struct reader *r, char **out, size_t *len)
{
    struct sl_buf b = {0};
    r->p++;
    for (;;) {
        if (r->p >= r->end) {
            sl_buf_fini(&b);
            return fail(r, "unterminated string");
        }
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            r->p++;
            break;
        }
        if (c < 0x20) {
            sl_buf_fini(&b);
            return fail(r, "control character in a string");
        }
        if (c == '\\') {
            if (r->end - r->p < 2) {
                sl_buf_fini(&b);
                return fail(r, "unterminated string");
            }
            char e = r->p[1], ch = 0;
            r->p += 2;
            switch (e) {
            case '"': ch = '"'; break;
            case '\\': ch = '\\'; break;
            case '/': ch = '/'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'n': ch = '\n'; break;
            case 'r': ch = '\r'; break;
            case 't': ch = '\t'; break;
            case 'u':
                if (escape_u(r, &b) < 0) {
                    sl_buf_fini(&b);
                    return -1;
                }
                continue;
            default:
                r->p -= 2;
                sl_buf_fini(&b);
                return fail(r, "invalid escape");
            }
            if (sl_buf_append(&b, &ch, 1) < 0) {
                sl_buf_fini(&b);
                return fail(r, "out of memory");
            }
            continue;
        }
        size_t n = utf8_len((const unsigned char *)r->p, (size_t)(r->end - r->p));
        if (n == 0) {
            sl_buf_fini(&b);
            return fail(r, "invalid UTF-8");
        }
        if (sl_buf_append(&b, r->p, n) < 0) {
            sl_buf_fini(&b);
            return fail(r, "out of memory");
        }
        r->p += n;
    }
    *len = sl_buf_len(&b);
    if (sl_buf_append(&b, "", 1) < 0) {
        sl_buf_fini(&b);
        return fail(r, "out of memory");
    }
    if (b.start > 0)
        memmove(b.data, b.data + b.start, *len + 1);
    *out = b.data;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 §6: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int read_number(struct reader *r, struct sl_value *v)
{
    const char *s = r->p;
    bool integer = true;
    if (r->p < r->end && *r->p == '-')
        r->p++;
    if (r->p >= r->end || !is_digit(*r->p))
        return fail(r, "invalid number");
    if (*r->p == '0')
        r->p++;
    else
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    if (r->p < r->end && *r->p == '.') {
        integer = false;
        r->p++;
        if (r->p >= r->end || !is_digit(*r->p))
            return fail(r, "invalid number");
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        integer = false;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (r->p >= r->end || !is_digit(*r->p))
            return fail(r, "invalid number");
        while (r->p < r->end && is_digit(*r->p))
            r->p++;
    }
    char buf[400];
    size_t n = (size_t)(r->p - s);
    if (n >= sizeof buf)
        return fail(r, "number too long");
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (integer) {
        errno = 0;
        long long i = strtoll(buf, NULL, 10);
        if (errno == 0) {
            v->kind = SL_VALUE_INT;
            v->i = i;
            return 0;
        }
    }
    v->kind = SL_VALUE_NUMBER;
    v->d = strtod(buf, NULL);
    return 0;
}

static int read_literal(struct reader *r, const char *word, struct sl_value *v,
                        enum sl_value_kind kind, bool b)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return fail(r, "unexpected character");
    r->p += n;
    v->kind = kind;
    v->b = b;
    return 0;
}

static int read_value(struct reader *r, struct sl_value *v, int depth);

/* Makes room for one more item (and key) in a list or map under
 * construction; returns the new, zeroed slot. */
static struct sl_value *grow(struct reader *r, struct sl_value *v, size_t *cap)
{
    if (v->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct sl_value *items = realloc(v->items, ncap * sizeof *items);
        if (items == NULL) {
            fail(r, "out of memory");
            return NULL;
        }
        v->items = items;
        if (v->kind == SL_VALUE_MAP) {
            char **keys = realloc(v->keys, ncap * sizeof *keys);
            if (keys == NULL) {
                fail(r, "out of memory");
                return NULL;
            }
            v->keys = keys;
        }
        *cap = ncap;
    }
    struct sl_value *slot = &v->items[v->n];
    memset(slot, 0, sizeof *slot);
    if (v->kind == SL_VALUE_MAP)
        v->keys[v->n] = NULL;
    v->n++;
    return slot;
}

static int read_array(struct reader *r, struct sl_value *v, int depth)
{
    size_t cap = 0;
    v->kind = SL_VALUE_LIST;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return 0;
    }
    for (;;) {
        struct sl_value *item = grow(r, v, &cap);
        if (item == NULL || read_value(r, item, depth + 1) < 0)
            return -1;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return 0;
        }
        return fail(r, "expected ',' or ']', got %s", describe(r));
    }
}

static int read_object(struct reader *r, struct sl_value *v, int depth)
{
    size_t cap = 0;
    v->kind = SL_VALUE_MAP;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return 0;
    }
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            return fail(r, "expected a member name in quotes, got %s", describe(r));
        int line = r->line, col = col_of(r);
        char *key;
        size_t klen;
        if (read_string(r, &key, &klen) < 0)
            return -1;
        if (strlen(key) != klen) {
            free(key);
            return fail(r, "member name contains a NUL character");
        }
        for (size_t i = 0; i < v->n; i++) {
            if (strcmp(v->keys[i], key) == 0) {
                char shown[64];
                snprintf(shown, sizeof shown, "%s", key);
                free(key);
                r->failed = true;
                snprintf(r->err, r->errlen, "line %d, column %d: duplicate member '%s'", line,
                         col, shown);
                return -1;
            }
        }
        struct sl_value *item = grow(r, v, &cap);
        if (item == NULL) {
            free(key);
            return -1;
        }
        v->keys[v->n - 1] = key;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':')
            return fail(r, "expected ':' after a member name, got %s", describe(r));
        r->p++;
        if (read_value(r, item, depth + 1) < 0)
            return -1;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return 0;
        }
        return fail(r, "expected ',' or '}', got %s", describe(r));
    }
}

static int read_value(struct reader *r, struct sl_value *v, int depth)
{
    skip_ws(r);
    if (depth > SL_JSON_MAX_DEPTH)
        return fail(r, "nested deeper than %d levels", SL_JSON_MAX_DEPTH);
    v->line = r->line;
    v->col = col_of(r);
    if (r->p >= r->end)
        return fail(r, "expected a value, got the end of the text");
    switch (*r->p) {
    case '{': return read_object(r, v, depth);
    case '[': return read_array(r, v, depth);
    case '"':
        v->kind = SL_VALUE_STRING;
        return read_string(r, &v->s, &v->len);
    case 't': return read_literal(r, "true", v, SL_VALUE_BOOL, true);
    case 'f': return read_literal(r, "false", v, SL_VALUE_BOOL, false);
    case 'n': return read_literal(r, "null", v, SL_VALUE_NULL, false);
    default:
        if (*r->p == '-' || is_digit(*r->p))
            return read_number(r, v);
        return fail(r, "expected a value, got an unexpected character");
    }
}

int sl_json_parse(const char *p, size_t n, struct sl_value *out, char *err, size_t errlen)
{
    struct reader r = { .p = p, .end = p + n, .line_start = p, .line = 1,
                        .err = err, .errlen = errlen };
    memset(out, 0, sizeof *out);
    if (errlen > 0)
        err[0] = '\0';
    if (read_value(&r, out, 1) == 0) {
        skip_ws(&r);
        if (r.p == r.end)
            return 0;
        fail(&r, "unexpected text after the value");
    }
    sl_value_free(out);
    return -1;
}

void sl_json_kv_string(struct sl_json *j, const char *key, const char *s)
{
    sl_json_key(j, key);
    sl_json_string(j, s);
}

void sl_json_kv_int(struct sl_json *j, const char *key, int64_t v)
{
    sl_json_key(j, key);
    sl_json_int(j, v);
}

void sl_json_kv_uint(struct sl_json *j, const char *key, uint64_t v)
{
    sl_json_key(j, key);
    sl_json_uint(j, v);
}

void sl_json_kv_number(struct sl_json *j, const char *key, double v)
{
    sl_json_key(j, key);
    sl_json_number(j, v);
}

void sl_json_kv_bool(struct sl_json *j, const char *key, bool v)
{
    sl_json_key(j, key);
    sl_json_bool(j, v);
}

void sl_json_kv_time(struct sl_json *j, const char *key, int64_t ms)
{
    sl_json_key(j, key);
    sl_json_time(j, ms);
}
