/* libyaml side of the configuration loader: reading the file, YAML syntax
 * errors, and walking the document against key tables with type and range
 * checks. Every problem becomes a message tied to a node's position; they
 * are sorted into file order when the file is closed, so that the order in
 * which the schema visits sections does not show. */
#include "config_yaml.h"
#include "config_values.h"
#include "hash.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_yaml_pending {
    size_t line, col, seq;
    char *msg;
};

/* Loading runs at boot or on reload, before anything depends on its result;
 * there is nothing sensible to fall back to without memory. */
static void oom(void)
{
    fputs("sluice: out of memory while loading the configuration\n", stderr);
    abort();
}

static char *vformat(const char *fmt, va_list ap)
{
    char *msg;

    if (vasprintf(&msg, fmt, ap) < 0)
        oom();
    return msg;
}

void sl_config_errors_add(struct sl_config_errors *errs, const char *fmt, ...)
{
    va_list ap;
    char *msg, **msgs;

    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    if (errs == NULL) {
        free(msg);
        return;
    }
    if ((msgs = realloc(errs->msgs, (errs->n + 1) * sizeof *msgs)) == NULL)
        oom();
    msgs[errs->n++] = msg;
    errs->msgs = msgs;
}

void *sl_config_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (p == NULL)
        oom();
    return p;
}

char *sl_config_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(sl_config_xcalloc(1, n), s, n);
}

static void add_error(struct sl_yaml *y, yaml_mark_t mark, const char *fmt, va_list ap)
{
    struct sl_yaml_pending *p = realloc(y->pend, (y->npend + 1) * sizeof *p);

    if (p == NULL)
        oom();
    y->pend = p;
    p += y->npend;
    p->line = mark.line + 1;            /* libyaml marks are 0-based */
    p->col = mark.column + 1;
    p->seq = y->npend++;
    p->msg = vformat(fmt, ap);
}

void sl_yaml_error(struct sl_yaml *y, const yaml_node_t *n, const char *fmt, ...)
{
    yaml_mark_t top = { 0, 0, 0 };
    va_list ap;

    va_start(ap, fmt);
    add_error(y, n ? n->start_mark : top, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4)))
static void error_at_mark(struct sl_yaml *y, yaml_mark_t mark, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    add_error(y, mark, fmt, ap);
    va_end(ap);
}

static int by_position(const void *a, const void *b)
{
    const struct sl_yaml_pending *x = a, *z = b;

    if (x->line != z->line)
        return x->line < z->line ? -1 : 1;
    if (x->col != z->col)
        return x->col < z->col ? -1 : 1;
    return x->seq < z->seq ? -1 : x->seq > z->seq;
}

size_t sl_yaml_close(struct sl_yaml *y, struct sl_config_errors *errs)
{
    size_t n = y->npend;

    if (n > 0)
        qsort(y->pend, n, sizeof *y->pend, by_position);
    for (size_t i = 0; i < y->npend; i++) {
        sl_config_errors_add(errs, "%s:%zu:%zu: %s", y->file, y->pend[i].line,
                             y->pend[i].col, y->pend[i].msg);
        free(y->pend[i].msg);
    }
    free(y->pend);
    y->pend = NULL;
    y->npend = 0;
    if (y->loaded)
        yaml_document_delete(&y->doc);
    y->loaded = false;
    y->root = NULL;
    return n;
}

/* --- nodes ----------------------------------------------------------------- */

static const char *text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static yaml_node_t *node_at(struct sl_yaml *y, int index)
{
    return yaml_document_get_node(&y->doc, index);
}

size_t sl_yaml_count(const yaml_node_t *n)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (n->type == YAML_MAPPING_NODE)
        return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    return 0;
}

yaml_node_t *sl_yaml_item(struct sl_yaml *y, const yaml_node_t *seq, size_t i)
{
    return node_at(y, seq->data.sequence.items.start[i]);
}

yaml_node_t *sl_yaml_get(struct sl_yaml *y, const yaml_node_t *map, const char *key)
{
    const yaml_node_pair_t *p;

    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(y, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(text(k), key) == 0)
            return node_at(y, p->value);
    }
    return NULL;
}

const char *sl_yaml_describe(const yaml_node_t *n, char *buf, size_t len)
{
    size_t k;

    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->data.scalar.length == 0 && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        return "an empty value";
    k = strcspn(text(n), "\r\n");
    snprintf(buf, len, "'%.*s%s'", (int)(k > 60 ? 60 : k), text(n),
             k > 60 || k < n->data.scalar.length ? "..." : "");
    return buf;
}

static const char *where(const char *path)
{
    return path[0] ? path : "top level";
}

void sl_yaml_expected(struct sl_yaml *y, const yaml_node_t *n, const char *path,
                      const char *what)
{
    char buf[80];

    sl_yaml_error(y, n, "%s: expected %s, got %s", where(path), what,
                  sl_yaml_describe(n, buf, sizeof buf));
}

bool sl_yaml_is_type(struct sl_yaml *y, const yaml_node_t *n, yaml_node_type_t type,
                     const char *path, const char *what)
{
    if (n->type == type)
        return true;
    sl_yaml_expected(y, n, path, what);
    return false;
}

const char *sl_yaml_scalar(struct sl_yaml *y, const yaml_node_t *n, const char *path,
                           const char *what)
{
    return sl_yaml_is_type(y, n, YAML_SCALAR_NODE, path, what) ? text(n) : NULL;
}

/* libyaml keeps duplicate keys, and the later one would silently win. */
bool sl_yaml_is_good_key(struct sl_yaml *y, const yaml_node_t *map,
                         const yaml_node_pair_t *pair, const char *path)
{
    yaml_node_t *key = node_at(y, pair->key);
    const yaml_node_pair_t *p;
    char buf[80];

    if (key->type != YAML_SCALAR_NODE) {
        sl_yaml_expected(y, key, path, "a key name");
        return false;
    }
    for (p = map->data.mapping.pairs.start; p < pair; p++) {
        yaml_node_t *k = node_at(y, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(text(k), text(key)) == 0) {
            sl_yaml_error(y, key, "duplicate key %s %s %s", sl_yaml_describe(key, buf, sizeof buf),
                          path[0] ? "in" : "at", where(path));
            return false;
        }
    }
    return true;
}

void sl_yaml_join(char *out, const char *path, const char *key)
{
    snprintf(out, SL_YAML_PATH_LEN, "%s%s%s", path, path[0] ? "." : "", key);
}

/* --- values ------------------------------------------------------------------ */

static bool is_size(enum sl_yaml_kind kind)
{
    return kind == SL_YAML_SIZE || kind == SL_YAML_U64;
}

static void format_bound(enum sl_yaml_kind kind, long long v, char *buf, size_t len)
{
    if (kind == SL_YAML_MS)
        sl_config_format_duration(v, buf, len);
    else if (is_size(kind))
        sl_config_format_size(v, buf, len);
    else
        snprintf(buf, len, "%lld", v);
}

static bool number(struct sl_yaml *y, const struct sl_yaml_field *f, yaml_node_t *val,
                   const char *path, long long *v)
{
    const char *what = f->kind == SL_YAML_MS ? "a duration"
                     : is_size(f->kind) ? "a size" : "an integer";
    const char *s = sl_yaml_scalar(y, val, path, what);
    char lo[32], hi[32], buf[80];
    int rc;

    if (s == NULL)
        return false;
    if (f->kind == SL_YAML_MS)
        rc = sl_config_parse_duration(s, v);
    else if (is_size(f->kind))
        rc = sl_config_parse_size(s, v);
    else
        rc = sl_config_parse_int(s, v);
    if (rc < 0) {
        sl_yaml_expected(y, val, path, what);
        return false;
    }
    if (*v < f->min || *v > f->max) {
        format_bound(f->kind, f->min, lo, sizeof lo);
        format_bound(f->kind, f->max, hi, sizeof hi);
        sl_yaml_error(y, val, "%s: expected %s in %s..%s, got %s", path, what, lo, hi,
                      sl_yaml_describe(val, buf, sizeof buf));
        return false;
    }
    return true;
}

static void apply(struct sl_yaml *y, const struct sl_yaml_field *f, yaml_node_t *val,
                  const char *path, void *base)
{
    char *p = (char *)base + f->off;
    const char *s;
    long long v;

    if (f->kind == SL_YAML_MAP) {
        sl_yaml_walk(y, val, path, f->sub, f->nsub, p);
    } else if (f->kind == SL_YAML_FN) {
        f->fn(y, val, path, base);
    } else if (f->kind == SL_YAML_BOOL) {
        if ((s = sl_yaml_scalar(y, val, path, "a boolean")) != NULL
            && sl_config_parse_bool(s, (bool *)p) < 0)
            sl_yaml_expected(y, val, path, "a boolean");
    } else if (number(y, f, val, path, &v)) {
        if (f->kind == SL_YAML_INT || f->kind == SL_YAML_MS)
            *(int *)p = (int)v;
        else if (f->kind == SL_YAML_U64)
            *(uint64_t *)p = (uint64_t)v;
        else
            *(size_t *)p = (size_t)v;
    }
}

void sl_yaml_walk(struct sl_yaml *y, yaml_node_t *map, const char *path,
                  const struct sl_yaml_field *fields, size_t nfields, void *base)
{
    const yaml_node_pair_t *p;
    char sub[SL_YAML_PATH_LEN], buf[80];

    if (!sl_yaml_is_type(y, map, YAML_MAPPING_NODE, path, "a mapping"))
        return;
    for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *key = node_at(y, p->key);
        const struct sl_yaml_field *f = NULL;

        if (!sl_yaml_is_good_key(y, map, p, path))
            continue;
        for (size_t i = 0; i < nfields && f == NULL; i++)
            if (strcmp(fields[i].key, text(key)) == 0)
                f = &fields[i];
        if (f == NULL) {
            sl_yaml_error(y, key, "unknown key %s %s %s", sl_yaml_describe(key, buf, sizeof buf),
                          path[0] ? "in" : "at", where(path));
            continue;
        }
        sl_yaml_join(sub, path, f->key);
        apply(y, f, node_at(y, p->value), sub, base);
    }
}

bool sl_yaml_pick(struct sl_yaml *y, const yaml_node_t *val, const char *path,
                  const char *const *names, size_t n, size_t *idx)
{
    char list[128] = "", buf[80];
    size_t used = 0;

    if (val->type == YAML_SCALAR_NODE)
        for (*idx = 0; *idx < n; (*idx)++)
            if (strcmp(text(val), names[*idx]) == 0)
                return true;
    for (size_t i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    sl_yaml_error(y, val, "%s: expected one of %s, got %s", path, list,
                  sl_yaml_describe(val, buf, sizeof buf));
    return false;
}

/* --- reading and parsing ------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, n;
    char *buf;
    int saved;

    if (f == NULL)
        return NULL;
    if ((buf = malloc(cap)) == NULL)
        oom();
    *len = 0;
    while ((n = fread(buf + *len, 1, cap - *len, f)) > 0) {
        *len += n;
        if (*len == cap && (buf = realloc(buf, cap *= 2)) == NULL)
            oom();
    }
    if (ferror(f)) {
        saved = errno;
        free(buf);
        fclose(f);
        errno = saved;
        return NULL;
    }
    fclose(f);
    return buf;
}

/* libyaml reports reader errors (bad UTF-8, control characters) by byte
 * offset only; turn it into a line and column like the others. */
static yaml_mark_t mark_of_offset(const char *buf, size_t len, size_t offset)
{
    yaml_mark_t m = { offset, 0, 0 };

    for (size_t i = 0; i < offset && i < len; i++) {
        if (buf[i] == '\n') {
            m.line++;
            m.column = 0;
        } else if (((unsigned char)buf[i] & 0xC0) != 0x80) {
            m.column++;             /* libyaml counts characters, not bytes */
        }
    }
    return m;
}

static void syntax_error(struct sl_yaml *y, const yaml_parser_t *p, const char *buf, size_t len)
{
    const char *problem = p->problem ? p->problem : "syntax error";

    if (p->error == YAML_MEMORY_ERROR)
        oom();
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t m = mark_of_offset(buf, len, p->problem_offset);
        if (p->problem_value != -1)
            error_at_mark(y, m, "%s (#%X)", problem, (unsigned)p->problem_value);
        else
            error_at_mark(y, m, "%s", problem);
    } else if (p->context != NULL) {
        error_at_mark(y, p->problem_mark, "%s (%s at line %zu, column %zu)", problem,
                      p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    } else {
        error_at_mark(y, p->problem_mark, "%s", problem);
    }
}

/* A second document is refused rather than ignored: it is most likely a
 * stray "---" cutting the configuration in two. */
static int parse(struct sl_yaml *y, const char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    yaml_node_t *root;
    int rc = -1;

    if (!yaml_parser_initialize(&parser))
        oom();
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &y->doc)) {
        syntax_error(y, &parser, buf, len);
        yaml_parser_delete(&parser);
        return -1;
    }
    y->loaded = true;
    if (!yaml_parser_load(&parser, &extra)) {
        syntax_error(y, &parser, buf, len);
    } else {
        if ((root = yaml_document_get_root_node(&extra)) != NULL)
            error_at_mark(y, root->start_mark, "only one YAML document is allowed");
        else
            rc = 0;
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&parser);
    y->root = yaml_document_get_root_node(&y->doc);
    return rc;
}

int sl_yaml_open(struct sl_yaml *y, const char *file, struct sl_config_errors *errs)
{
    size_t len;
    char *buf;
    int rc;

    y->file = file;
    if ((buf = read_file(file, &len)) == NULL) {
        sl_config_errors_add(errs, "%s: cannot read: %s", file, strerror(errno));
        return -1;
    }
    y->hash = sl_hash_fnv1a64(buf, len);
    rc = parse(y, buf, len);
    free(buf);
    return rc;
}

int sl_yaml_hash_file(const char *file, uint64_t *hash)
{
    size_t len;
    char *buf = read_file(file, &len);

    if (buf == NULL)
        return -1;
    *hash = sl_hash_fnv1a64(buf, len);
    free(buf);
    return 0;
}
