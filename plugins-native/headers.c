/* plugins-native/headers.c: the headers plugin in C. The same config, the
 * same behaviour and the same config error messages as
 * plugins-lua/headers.lua (spec/plugins/headers/both_kinds_spec.lua runs
 * one spec against both): adds, sets, removes and renames header fields on
 * the request sent to the origin and on the response sent to the client.
 *
 * On each side the operations run in this order: remove, rename, set, add.
 * Within one operation, fields go in name order (case-insensitive), so the
 * result does not depend on how the YAML mapping was written. rename
 * replaces fields of the new name; set replaces every field of its name;
 * add appends one.
 *
 * Priority 800: after authentication and after the plugins that add
 * response fields (request-id, cors), so its response changes have the
 * last word. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice_plugin.h"

static const struct sluice_host *host;

/* One operation on one field: remove (name), rename (name -> to), set and
 * add (name: value). Strings are borrowed from the config. */
struct op {
    struct sluice_str name, arg;
};

enum { REMOVE, RENAME, SET, ADD, NOPS };

static const char *const op_names[NOPS] = { "remove", "rename", "set", "add" };

/* One side's operations, each list in the order they run. */
struct plan {
    struct op *ops[NOPS];
    size_t n[NOPS];
    int empty;
};

struct instance {
    struct plan side[2];            /* SLUICE_REQUEST, SLUICE_RESPONSE */
};

/* --- checking the config, as headers.lua's schema does ------------------------------ */

/* headers.lua's TOKEN, as its messages print it. */
static const char token_pattern[] = "^[%w!#$%%&'*+%-.^_`|~]+$";

/* Fields the proxy writes itself: a change would be lost or dangerous. */
static const char *const owned[] = {
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te",
    "trailer", "upgrade", "proxy-connection", "expect",
};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int eq_nocase(struct sluice_str a, const char *b, size_t blen)
{
    if (a.len != blen)
        return 0;
    for (size_t i = 0; i < blen; i++)
        if (lower((unsigned char)a.p[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int is_token(struct sluice_str s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (c == '\0' || strchr(extra, c) == NULL))
            return 0;
    }
    return 1;
}

static const char *owned_name(struct sluice_str s)
{
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        if (eq_nocase(s, owned[i], strlen(owned[i])))
            return owned[i];
    return NULL;
}

/* Reports one problem at node. Returns 0 so callers can `return report(...)`. */
static int report(struct sluice_errors *errs, const struct sluice_conf *node, const char *msg)
{
    host->conf_error(errs, node, NULL, msg);
    return 0;
}

/* A string as the schema's describe() quotes it: cut after 40 bytes. */
static const char *quote(struct sluice_str s, char *buf, size_t len)
{
    int cut = s.len > 40;
    snprintf(buf, len, "\"%.*s%s\"", (int)(cut ? 37 : s.len), s.p, cut ? "..." : "");
    return buf;
}

/* A string that must match the token pattern and not be a field the
 * proxy manages. Returns 1 when valid. */
static int check_name(const struct sluice_conf *node, struct sluice_errors *errs,
                      struct sluice_str *out)
{
    char what[160], msg[400];
    if (host->conf_string(node, out) != SLUICE_OK) {
        snprintf(msg, sizeof msg, "expected a string, got %s",
                 host->conf_describe(node, what, sizeof what));
        return report(errs, node, msg);
    }
    if (!is_token(*out)) {
        snprintf(msg, sizeof msg, "invalid value %s: must match the pattern '%s'",
                 host->conf_describe(node, what, sizeof what), token_pattern);
        return report(errs, node, msg);
    }
    if (owned_name(*out) != NULL) {
        snprintf(msg, sizeof msg, "'%.*s' is managed by the proxy and cannot be changed by a "
                 "plugin", (int)out->len, out->p);
        return report(errs, node, msg);
    }
    return 1;
}

static int check_value(const struct sluice_conf *node, struct sluice_errors *errs,
                       struct sluice_str *out)
{
    char what[160], msg[200];
    if (host->conf_string(node, out) != SLUICE_OK) {
        snprintf(msg, sizeof msg, "expected a string, got %s",
                 host->conf_describe(node, what, sizeof what));
        return report(errs, node, msg);
    }
    for (size_t i = 0; i < out->len; i++)
        if (out->p[i] == '\r' || out->p[i] == '\n' || out->p[i] == '\0')
            return report(errs, node, "a header value cannot contain CR, LF or NUL");
    return 1;
}

/* "expected WHAT, got ..." for a node of the wrong type. */
static int wrong_type(const struct sluice_conf *node, struct sluice_errors *errs,
                      const char *what)
{
    char got[160], msg[240];
    int t = host->conf_type(node);
    snprintf(msg, sizeof msg, "expected %s, got %s", what,
             t == SLUICE_CONF_LIST ? "an array" : t == SLUICE_CONF_MAP ? "a map"
             : host->conf_describe(node, got, sizeof got));
    return report(errs, node, msg);
}

/* Byte order of keys, as Lua sorts strings. */
static int cmp_keys(struct sluice_str a, struct sluice_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.p, b.p, n);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

/* Lower-case order of names, the order operations run in. */
static int cmp_nocase(const void *x, const void *y)
{
    const struct op *a = x, *b = y;
    size_t n = a->name.len < b->name.len ? a->name.len : b->name.len;
    for (size_t i = 0; i < n; i++) {
        int d = lower((unsigned char)a->name.p[i]) - lower((unsigned char)b->name.p[i]);
        if (d)
            return d;
    }
    return (a->name.len > b->name.len) - (a->name.len < b->name.len);
}

/* The indices of a map's entries sorted by key (caller frees). */
static size_t *sorted_entries(const struct sluice_conf *map, size_t n)
{
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    if (idx == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        struct sluice_str ki, kj;
        size_t j = i;
        host->conf_at(map, i, &ki);
        while (j > 0 && (host->conf_at(map, idx[j - 1], &kj), cmp_keys(kj, ki) > 0)) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return idx;
}

static int is_empty_list_or_map(const struct sluice_conf *node)
{
    int t = host->conf_type(node);
    return (t == SLUICE_CONF_LIST || t == SLUICE_CONF_MAP) && host->conf_len(node) == 0;
}

/* remove: an array of names. */
static int load_remove(const struct sluice_conf *node, struct sluice_errors *errs,
                       struct plan *p)
{
    int t = host->conf_type(node);
    if (t == SLUICE_CONF_ABSENT || t == SLUICE_CONF_NULL || is_empty_list_or_map(node))
        return 1;
    if (t != SLUICE_CONF_LIST)
        return wrong_type(node, errs, "an array");
    size_t n = host->conf_len(node);
    int ok = 1;
    p->ops[REMOVE] = calloc(n, sizeof *p->ops[REMOVE]);
    if (p->ops[REMOVE] == NULL)
        return report(errs, node, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct op *o = &p->ops[REMOVE][p->n[REMOVE]];
        if (check_name(host->conf_at(node, i, NULL), errs, &o->name))
            p->n[REMOVE]++;
        else
            ok = 0;
    }
    return ok;
}

/* rename, set, add: a map from names to names (rename) or values. */
static int load_map(const struct sluice_conf *node, struct sluice_errors *errs, int which,
                    struct plan *p)
{
    char msg[400];
    int t = host->conf_type(node);
    if (t == SLUICE_CONF_ABSENT || t == SLUICE_CONF_NULL || is_empty_list_or_map(node))
        return 1;
    if (t != SLUICE_CONF_MAP)
        return wrong_type(node, errs, "a map");
    size_t n = host->conf_len(node);
    size_t *idx = sorted_entries(node, n);
    p->ops[which] = calloc(n, sizeof *p->ops[which]);
    if (idx == NULL || p->ops[which] == NULL) {
        free(idx);
        return report(errs, node, "out of memory");
    }
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        struct op *o = &p->ops[which][p->n[which]];
        const struct sluice_conf *v = host->conf_at(node, idx[i], &o->name);
        if (!is_token(o->name)) {
            char key[160];
            snprintf(msg, sizeof msg, "invalid key: invalid value %s: must match the pattern '%s'",
                     quote(o->name, key, sizeof key), token_pattern);
            report(errs, v, msg);
            ok = 0;
            continue;
        }
        int good = which == RENAME ? check_name(v, errs, &o->arg)
                                   : check_value(v, errs, &o->arg);
        if (good)
            p->n[which]++;
        else
            ok = 0;
    }
    free(idx);
    if (ok) {
        for (size_t i = 0; i < p->n[which]; i++) {
            const struct sluice_str *k = &p->ops[which][i].name;
            if (owned_name(*k) != NULL) {
                snprintf(msg, sizeof msg, "'%.*s' is managed by the proxy and cannot be changed "
                         "by a plugin", (int)k->len, k->p);
                return report(errs, node, msg);
            }
        }
    }
    return ok;
}

static int load_side(const struct sluice_conf *node, struct sluice_errors *errs, struct plan *p)
{
    int t = host->conf_type(node);
    int ok = 1;
    if (t == SLUICE_CONF_ABSENT || t == SLUICE_CONF_NULL || is_empty_list_or_map(node)) {
        p->empty = 1;
        return 1;
    }
    if (t != SLUICE_CONF_MAP)
        return wrong_type(node, errs, "a record (a map)");
    ok &= load_remove(host->conf_get(node, "remove"), errs, p);
    for (int which = RENAME; which < NOPS; which++)
        ok &= load_map(host->conf_get(node, op_names[which]), errs, which, p);
    size_t n = host->conf_len(node);
    size_t *idx = sorted_entries(node, n);
    for (size_t i = 0; idx != NULL && i < n; i++) {
        struct sluice_str k;
        const struct sluice_conf *v = host->conf_at(node, idx[i], &k);
        int known = 0;
        for (int which = 0; which < NOPS; which++)
            known |= k.len == strlen(op_names[which]) && memcmp(k.p, op_names[which], k.len) == 0;
        if (!known) {
            report(errs, v, "unknown field");
            ok = 0;
        }
    }
    free(idx);
    for (int which = RENAME; which < NOPS; which++)
        qsort(p->ops[which], p->n[which], sizeof *p->ops[which], cmp_nocase);
    p->empty = p->n[REMOVE] + p->n[RENAME] + p->n[SET] + p->n[ADD] == 0;
    return ok;
}

static void destroy(void *instance)
{
    struct instance *in = instance;
    for (int s = 0; s < 2; s++)
        for (int which = 0; which < NOPS; which++)
            free(in->side[s].ops[which]);
    free(in);
}

static int create(const struct sluice_host *h, const struct sluice_conf *config,
                  struct sluice_errors *errs, void **instance)
{
    (void)h;
    struct instance *in = calloc(1, sizeof *in);
    if (in == NULL) {
        host->conf_error(errs, NULL, NULL, "out of memory");
        return SLUICE_ERROR;
    }
    int ok = load_side(host->conf_get(config, "request"), errs, &in->side[SLUICE_REQUEST]);
    ok &= load_side(host->conf_get(config, "response"), errs, &in->side[SLUICE_RESPONSE]);
    size_t n = host->conf_len(config);
    size_t *idx = sorted_entries(config, n);
    for (size_t i = 0; idx != NULL && i < n; i++) {
        struct sluice_str k;
        const struct sluice_conf *v = host->conf_at(config, idx[i], &k);
        if (!(k.len == 7 && memcmp(k.p, "request", 7) == 0) &&
            !(k.len == 8 && memcmp(k.p, "response", 8) == 0)) {
            report(errs, v, "unknown field");
            ok = 0;
        }
    }
    free(idx);
    if (!ok) {
        destroy(in);
        return SLUICE_ERROR;
    }
    *instance = in;
    return SLUICE_OK;
}

/* --- applying a plan ---------------------------------------------------------------- */

static int fail(struct sluice_req *req, const char *what, struct sluice_str name, int rc)
{
    char msg[300];
    size_t n = name.len < 200 ? name.len : 200;
    size_t w = strlen(what);
    memcpy(msg, what, w);
    memcpy(msg + w, name.p, n);
    strcpy(msg + w + n, rc == SLUICE_EPHASE ? ": not in this phase"
                        : rc == SLUICE_ENOMEM ? ": out of memory" : ": invalid name or value");
    host->error(req, msg);
    return SLUICE_ERROR;
}

/* Renames happen at once, from one snapshot: {a: b, b: a} swaps. Every
 * field of a name moves, in order. */
static int rename_all(struct sluice_req *req, int side, const struct plan *p)
{
    size_t nf = host->header_count(req, side);
    struct sluice_str *names = host->alloc(req, (nf + 1) * sizeof *names);
    struct sluice_str *values = host->alloc(req, (nf + 1) * sizeof *values);
    const struct op **moved_to = host->alloc(req, (nf + 1) * sizeof *moved_to);
    if (names == NULL || values == NULL || moved_to == NULL) {
        host->error(req, "out of memory");
        return SLUICE_ERROR;
    }
    for (size_t i = 0; i < nf; i++) {
        host->header_at(req, side, i, &names[i], &values[i]);
        moved_to[i] = NULL;
    }
    for (size_t r = 0; r < p->n[RENAME]; r++) {
        const struct op *o = &p->ops[RENAME][r];
        int found = 0;
        for (size_t i = 0; i < nf; i++) {
            if (eq_nocase(names[i], o->name.p, o->name.len)) {
                moved_to[i] = o;
                found = 1;
            }
        }
        int rc = found ? host->header_remove(req, side, o->name.p, o->name.len) : SLUICE_OK;
        if (rc < 0)
            return fail(req, "rename: ", o->name, rc);
    }
    /* In rename order: the first rename onto a name sets it (replacing
     * what is there), later ones add to it. */
    for (size_t r = 0; r < p->n[RENAME]; r++) {
        const struct op *o = &p->ops[RENAME][r];
        int filled = 0;
        for (size_t q = 0; q < r; q++) {
            const struct op *e = &p->ops[RENAME][q];
            int moved = 0;
            for (size_t i = 0; i < nf && !moved; i++)
                moved = moved_to[i] == e;
            filled |= moved && eq_nocase(e->arg, o->arg.p, o->arg.len);
        }
        for (size_t i = 0; i < nf; i++) {
            if (moved_to[i] != o)
                continue;
            int rc = filled ? host->header_add(req, side, o->arg.p, o->arg.len, values[i].p,
                                               values[i].len)
                            : host->header_set(req, side, o->arg.p, o->arg.len, values[i].p,
                                               values[i].len);
            if (rc < 0)
                return fail(req, "rename: ", o->arg, rc);
            filled = 1;
        }
    }
    return SLUICE_CONTINUE;
}

static int apply(struct sluice_req *req, int side, const struct plan *p)
{
    for (size_t i = 0; i < p->n[REMOVE]; i++) {
        const struct op *o = &p->ops[REMOVE][i];
        int rc = host->header_remove(req, side, o->name.p, o->name.len);
        if (rc < 0)
            return fail(req, "remove: ", o->name, rc);
    }
    if (p->n[RENAME] > 0 && rename_all(req, side, p) != SLUICE_CONTINUE)
        return SLUICE_ERROR;
    for (size_t i = 0; i < p->n[SET]; i++) {
        const struct op *o = &p->ops[SET][i];
        int rc = host->header_set(req, side, o->name.p, o->name.len, o->arg.p, o->arg.len);
        if (rc < 0)
            return fail(req, "set: ", o->name, rc);
    }
    for (size_t i = 0; i < p->n[ADD]; i++) {
        const struct op *o = &p->ops[ADD][i];
        int rc = host->header_add(req, side, o->name.p, o->name.len, o->arg.p, o->arg.len);
        if (rc < 0)
            return fail(req, "add: ", o->name, rc);
    }
    return SLUICE_CONTINUE;
}

static int request_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)worker;
    (void)state;
    const struct plan *p = &((struct instance *)instance)->side[SLUICE_REQUEST];
    return p->empty ? SLUICE_CONTINUE : apply(req, SLUICE_REQUEST, p);
}

static int response_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)worker;
    (void)state;
    const struct plan *p = &((struct instance *)instance)->side[SLUICE_RESPONSE];
    return p->empty ? SLUICE_CONTINUE : apply(req, SLUICE_RESPONSE, p);
}

static const struct sluice_plugin plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "headers",
    .version = "1.0.0",
    .priority = 800,
    .config_create = create,
    .config_destroy = destroy,
    .request_headers = request_headers,
    .response_headers = response_headers,
};

const struct sluice_plugin *sluice_plugin_init(const struct sluice_host *h)
{
    host = h;
    return &plugin;
}
