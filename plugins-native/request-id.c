/* plugins-native/request-id.c: the request-id plugin in C, with the same
 * config, behaviour and config error messages as
 * plugins-lua/request-id.lua: gives every request an id, or keeps the one
 * the client sent, and passes it to the origin and back to the client.
 *
 * Priority 100000: above every other bundled plugin, so the id is on the
 * request before anything else runs and on every answer, local replies of
 * other plugins included. The id is also stored for the request's other
 * plugins, Lua and native, in the shared per-request space as
 * "request_id".
 *
 * UUIDs come from a per-worker xorshift generator seeded from getrandom(2)
 * (worker_init): good for correlation ids, not for secrets. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "sluice_plugin.h"

static const struct sluice_host *host;

struct instance {
    struct sluice_str header;       /* borrowed from the config */
    int generator_uuid;             /* 1: uuid, 0: sluice */
    int trust_incoming;
    int64_t max_length;
    int echo_downstream;
};

/* --- config: the schema of request-id.lua ---------------------------------------- */

static const char token_pattern[] = "^[%w!#$%%&'*+%-.^_`|~]+$";

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

static int bad(struct sluice_errors *errs, const struct sluice_conf *node, const char *fmt,
               const char *what)
{
    char got[160], msg[400];
    snprintf(msg, sizeof msg, fmt, host->conf_describe(node, got, sizeof got), what);
    host->conf_error(errs, node, NULL, msg);
    return 0;
}

/* Absent or null takes the default: 1 when the field is fine. */
static int get_bool(const struct sluice_conf *node, struct sluice_errors *errs, int *out)
{
    int t = host->conf_type(node);
    if (t == SLUICE_CONF_ABSENT || t == SLUICE_CONF_NULL)
        return 1;
    return host->conf_bool(node, out) == SLUICE_OK || bad(errs, node, "expected a boolean, got %s", "");
}

/* Byte order, as Lua sorts strings. */
static int key_cmp(struct sluice_str a, struct sluice_str b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = memcmp(a.p, b.p, n);
    return c ? c : (a.len > b.len) - (a.len < b.len);
}

static int load(struct instance *in, const struct sluice_conf *config, struct sluice_errors *errs)
{
    static const char *const fields[] = {
        "header", "generator", "trust_incoming", "max_length", "echo_downstream",
    };
    const struct sluice_conf *v;
    int ok = 1, t;

    v = host->conf_get(config, "header");
    t = host->conf_type(v);
    if (t != SLUICE_CONF_ABSENT && t != SLUICE_CONF_NULL) {
        if (host->conf_string(v, &in->header) != SLUICE_OK)
            ok = bad(errs, v, "expected a string, got %s", "");
        else if (!is_token(in->header))
            ok = bad(errs, v, "invalid value %s: must match the pattern '%s'", token_pattern);
    }
    v = host->conf_get(config, "generator");
    t = host->conf_type(v);
    if (t != SLUICE_CONF_ABSENT && t != SLUICE_CONF_NULL) {
        struct sluice_str g;
        if (host->conf_string(v, &g) != SLUICE_OK)
            ok = bad(errs, v, "expected a string, got %s", "");
        else if (g.len == 4 && memcmp(g.p, "uuid", 4) == 0)
            in->generator_uuid = 1;
        else if (g.len == 6 && memcmp(g.p, "sluice", 6) == 0)
            in->generator_uuid = 0;
        else
            ok = bad(errs, v, "expected one of: uuid, sluice; got %s", "");
    }
    ok &= get_bool(host->conf_get(config, "trust_incoming"), errs, &in->trust_incoming);
    v = host->conf_get(config, "max_length");
    t = host->conf_type(v);
    if (t != SLUICE_CONF_ABSENT && t != SLUICE_CONF_NULL) {
        double d;
        if (host->conf_number(v, &d) != SLUICE_OK || d != d)
            ok = bad(errs, v, "expected an integer, got %s", "");
        else if (t != SLUICE_CONF_INT && (d != (double)(int64_t)d))
            ok = bad(errs, v, "expected an integer, got %s", "");
        else if (d < 1 || d > 1024)
            ok = bad(errs, v, "value should be between 1 and 1024, got %s", "");
        else
            in->max_length = (int64_t)d;
    }
    ok &= get_bool(host->conf_get(config, "echo_downstream"), errs, &in->echo_downstream);

    /* Unknown fields, in key order (as the Lua schema reports them). */
    size_t n = host->conf_len(config);
    const struct sluice_conf *unknown[64];
    struct sluice_str keys[64];
    size_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        struct sluice_str k;
        const struct sluice_conf *item = host->conf_at(config, i, &k);
        int known = 0;
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            known |= k.len == strlen(fields[f]) && memcmp(k.p, fields[f], k.len) == 0;
        if (known || nu == 64)
            continue;
        size_t j = nu++;
        while (j > 0 && key_cmp(keys[j - 1], k) > 0) {
            keys[j] = keys[j - 1];
            unknown[j] = unknown[j - 1];
            j--;
        }
        keys[j] = k;
        unknown[j] = item;
    }
    for (size_t i = 0; i < nu; i++)
        host->conf_error(errs, unknown[i], NULL, "unknown field");
    return ok && nu == 0;
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
    *in = (struct instance){
        .header = { "X-Request-Id", 12 },
        .generator_uuid = 1,
        .trust_incoming = 1,
        .max_length = 200,
        .echo_downstream = 1,
    };
    if (!load(in, config, errs)) {
        free(in);
        return SLUICE_ERROR;
    }
    *instance = in;
    return SLUICE_OK;
}

static void destroy(void *instance)
{
    free(instance);
}

/* --- per worker: the UUID generator ------------------------------------------------- */

struct rng {
    uint64_t s;
};

static int worker_init(void *instance, int worker, struct sluice_errors *errs, void **state)
{
    (void)instance;
    (void)errs;
    struct rng *r = malloc(sizeof *r);
    if (r == NULL) {
        host->conf_error(errs, NULL, NULL, "out of memory");
        return SLUICE_ERROR;
    }
    if (getrandom(&r->s, sizeof r->s, GRND_NONBLOCK) != (ssize_t)sizeof r->s) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        r->s = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    r->s ^= (uint64_t)worker << 48;
    if (r->s == 0)
        r->s = 0x9e3779b97f4a7c15u;
    *state = r;
    return SLUICE_OK;
}

static void worker_fini(void *instance, int worker, void *state)
{
    (void)instance;
    (void)worker;
    free(state);
}

/* xorshift64*: fast, and enough for ids nobody needs to guess. */
static uint64_t next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545f4914f6cdd1du;
}

/* A random (version 4) UUID, RFC 9562 section 5.4, into 37 bytes. */
static void uuid(struct rng *r, char out[37])
{
    uint64_t a = next(r), b = next(r);
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%04x%08x", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffffu, (unsigned)a & 0xfffu,
             0x8000u | ((unsigned)(b >> 48) & 0x3fffu), (unsigned)(b >> 32) & 0xffffu,
             (unsigned)b);
}

/* --- hooks -------------------------------------------------------------------------- */

/* Incoming ids are kept only when they are visible ASCII. */
static int is_visible(struct sluice_str s)
{
    if (s.len == 0)
        return 0;
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.p[i] < '!' || (unsigned char)s.p[i] > '~')
            return 0;
    return 1;
}

/* The request's state: its id, in request memory. */
static int request_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    const struct instance *in = instance;
    struct sluice_str id = { NULL, 0 };
    char buf[37];
    if (in->trust_incoming &&
        host->header_get(req, SLUICE_REQUEST, in->header.p, in->header.len, 0, &id) == SLUICE_OK &&
        ((int64_t)id.len > in->max_length || !is_visible(id)))
        id.p = NULL;
    if (id.p == NULL) {
        if (in->generator_uuid) {
            uuid(worker, buf);
            id = (struct sluice_str){ buf, 36 };
        } else {
            host->request_id(req, &id);
        }
    }
    struct sluice_str *kept = host->alloc(req, sizeof *kept + id.len);
    if (kept == NULL) {
        host->error(req, "out of memory");
        return SLUICE_ERROR;
    }
    memcpy(kept + 1, id.p, id.len);
    *kept = (struct sluice_str){ (const char *)(kept + 1), id.len };
    /* set, not add: one field reaches the origin even if the client sent
     * several, or a bad one. */
    if (host->header_set(req, SLUICE_REQUEST, in->header.p, in->header.len, kept->p,
                         kept->len) != SLUICE_OK ||
        host->ctx_set(req, "request_id", 10, kept->p, kept->len) != SLUICE_OK) {
        host->error(req, "cannot set the request id");
        return SLUICE_ERROR;
    }
    *state = kept;
    return SLUICE_CONTINUE;
}

static int response_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)worker;
    const struct instance *in = instance;
    const struct sluice_str *id = *state;
    if (in->echo_downstream && id != NULL &&
        host->header_set(req, SLUICE_RESPONSE, in->header.p, in->header.len, id->p,
                         id->len) != SLUICE_OK) {
        host->error(req, "cannot set the response's id");
        return SLUICE_ERROR;
    }
    return SLUICE_CONTINUE;
}

static const struct sluice_plugin plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "request-id",
    .version = "1.0.0",
    .priority = 100000,
    .config_create = create,
    .config_destroy = destroy,
    .worker_init = worker_init,
    .worker_fini = worker_fini,
    .request_headers = request_headers,
    .response_headers = response_headers,
};

const struct sluice_plugin *sluice_plugin_init(const struct sluice_host *h)
{
    host = h;
    return &plugin;
}
