/* plugins-native/rate-limit.c: the rate-limit plugin in C, with the same
 * config, behaviour and config error messages as plugins-lua/rate-limit.lua
 * (spec/plugins/rate-limit/unit_spec.lua runs one spec against both): a
 * token bucket per client (its address, a header, or the route) kept in a
 * shared dict, so that every worker counts against the same bucket. Over
 * the limit the proxy answers 429 with a JSON body and Retry-After; every
 * response of a counted request carries RateLimit-Limit,
 * RateLimit-Remaining and RateLimit-Reset (draft-ietf-httpapi-ratelimit-
 * headers).
 *
 * The bucket is one number per key, the GCRA form of a token bucket: the
 * "theoretical arrival time" (TAT) at which it would be full again, on the
 * monotonic clock. A request at `now` is allowed when TAT' = max(TAT, now)
 * + interval lies at most burst * interval ahead of now, and TAT' is then
 * stored. The Lua twin reads and writes back with cas, retrying; here the
 * computation runs under the dict's lock (dict_update, ABI 1.2), so it
 * never retries. Keys, values and clock are the Lua plugin's: an instance
 * of each kind with the same settings and namespace share their buckets.
 *
 * Priority 910 (Kong's rate-limiting): after authentication, so a key
 * header can name the consumer, before transformations. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sluice_plugin.h"

static const struct sluice_host *host;

#define EPSILON 1e-6                /* ms: sums of intervals carry rounding errors */
#define KEY_MAX 65535               /* the dictionaries' longest key */

enum key_kind { KEY_IP, KEY_HEADER, KEY_ROUTE };

/* floor and ceil without libm (a plugin links against nothing it need
 * not): past 2^52 every double is an integer already. */
static double floor_of(double x)
{
    if (!(x > -4503599627370496.0 && x < 4503599627370496.0))
        return x;
    double t = (double)(int64_t)x;
    return t > x ? t - 1 : t;
}

static double ceil_of(double x)
{
    return -floor_of(-x);
}

struct instance {
    struct sluice_dict *dict;       /* owned: dict_close */
    struct sluice_str dict_name;    /* borrowed from the config */
    double interval;                /* ms between two tokens */
    double tolerance;               /* burst * interval: how far ahead of now the TAT may run */
    char limit[24];                 /* RateLimit-Limit */
    size_t limit_len;
    char *prefix;                   /* owned: of every key this instance uses */
    size_t prefix_len;
    int key;                        /* enum key_kind */
    struct sluice_str header_name;  /* borrowed from the config */
    char *body_head;                /* owned: the 429 body up to its retry_after number */
    size_t body_head_len;
    int hide_client_headers;
    int fault_tolerant;
};

/* --- config: the schema of rate-limit.lua ---------------------------------------- */

/* The fields, in the schema's order (the order problems are reported in). */
static const char *const fields[] = {
    "rate", "per", "burst", "key", "header_name", "dict", "namespace", "message",
    "hide_client_headers", "fault_tolerant",
};

static const char *const periods[] = { "second", "minute", "hour" };
static const double period_ms[] = { 1000, 60000, 3600000 };
static const char *const key_kinds[] = { "ip", "header", "route" };

/* The settings as read, before init derives the instance's values. */
struct settings {
    double rate;
    int per;                        /* index into periods */
    double burst;                   /* 0: rate, rounded up */
    int key;
    struct sluice_str header_name;  /* p NULL: absent */
    struct sluice_str dict;
    const struct sluice_conf *dict_node;
    struct sluice_str ns;
    struct sluice_str message;
    int hide_client_headers;
    int fault_tolerant;
};

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

static int eq(struct sluice_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

/* Reports "fmt" with the node described in it ("got %s"). Returns 0. */
static int bad(struct sluice_errors *errs, const struct sluice_conf *node, const char *fmt)
{
    char got[160], msg[400];
    snprintf(msg, sizeof msg, fmt, host->conf_describe(node, got, sizeof got));
    host->conf_error(errs, node, NULL, msg);
    return 0;
}

/* The node of field name, NULL when absent or null (the default applies). */
static const struct sluice_conf *field(const struct sluice_conf *config, const char *name)
{
    const struct sluice_conf *v = host->conf_get(config, name);
    int t = host->conf_type(v);
    return t == SLUICE_CONF_ABSENT || t == SLUICE_CONF_NULL ? NULL : v;
}

static int get_string(const struct sluice_conf *v, struct sluice_errors *errs,
                      struct sluice_str *out)
{
    return v == NULL || host->conf_string(v, out) == SLUICE_OK ||
           bad(errs, v, "expected a string, got %s");
}

static int get_bool(const struct sluice_conf *v, struct sluice_errors *errs, int *out)
{
    return v == NULL || host->conf_bool(v, out) == SLUICE_OK ||
           bad(errs, v, "expected a boolean, got %s");
}

/* A string that must be one of n names: its index in *out. */
static int get_one_of(const struct sluice_conf *v, struct sluice_errors *errs,
                      const char *const *names, size_t n, const char *expected, int *out)
{
    struct sluice_str s;
    if (v == NULL)
        return 1;
    if (host->conf_string(v, &s) != SLUICE_OK)
        return bad(errs, v, "expected a string, got %s");
    for (size_t i = 0; i < n; i++) {
        if (eq(s, names[i])) {
            *out = (int)i;
            return 1;
        }
    }
    return bad(errs, v, expected);
}

static int load_rate(const struct sluice_conf *config, struct sluice_errors *errs, double *out)
{
    const struct sluice_conf *v = host->conf_get(config, "rate");
    if (field(config, "rate") == NULL) {
        if (v != NULL)
            host->conf_error(errs, v, NULL, "required field missing");
        else
            host->conf_error(errs, config, "rate", "required field missing");
        return 0;
    }
    if (host->conf_number(v, out) != SLUICE_OK || *out != *out)
        return bad(errs, v, "expected a number, got %s");
    if (!(*out > 0 && *out <= 1e9)) {
        host->conf_error(errs, v, NULL, "must be more than 0 and at most 1000000000");
        return 0;
    }
    return 1;
}

static int load_burst(const struct sluice_conf *v, struct sluice_errors *errs, double *out)
{
    double d;
    if (v == NULL)
        return 1;
    if (host->conf_number(v, &d) != SLUICE_OK || !(d > -1e300 && d < 1e300) || floor_of(d) != d)
        return bad(errs, v, "expected an integer, got %s");
    if (d < 1 || d > 1e9)
        return bad(errs, v, "value should be between 1 and 1000000000, got %s");
    *out = d;
    return 1;
}

/* Unknown fields, in byte order of their keys (as the Lua schema reports
 * them). Returns how many there were. */
static size_t unknown_fields(const struct sluice_conf *config, struct sluice_errors *errs)
{
    enum { MAX = 64 };
    const struct sluice_conf *nodes[MAX];
    struct sluice_str keys[MAX];
    size_t n = host->conf_len(config), nu = 0;
    for (size_t i = 0; i < n && nu < MAX; i++) {
        struct sluice_str k;
        const struct sluice_conf *item = host->conf_at(config, i, &k);
        int known = 0;
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            known |= eq(k, fields[f]);
        if (known)
            continue;
        size_t j = nu++;
        while (j > 0) {
            size_t m = keys[j - 1].len < k.len ? keys[j - 1].len : k.len;
            int c = memcmp(keys[j - 1].p, k.p, m);
            if (c < 0 || (c == 0 && keys[j - 1].len <= k.len))
                break;
            keys[j] = keys[j - 1];
            nodes[j] = nodes[j - 1];
            j--;
        }
        keys[j] = k;
        nodes[j] = item;
    }
    for (size_t i = 0; i < nu; i++)
        host->conf_error(errs, nodes[i], NULL, "unknown field");
    return nu;
}

static int load(struct settings *s, const struct sluice_conf *config, struct sluice_errors *errs)
{
    const struct sluice_conf *v;
    int ok = load_rate(config, errs, &s->rate);
    ok &= get_one_of(field(config, "per"), errs, periods, 3,
                     "expected one of: second, minute, hour; got %s", &s->per);
    ok &= load_burst(field(config, "burst"), errs, &s->burst);
    ok &= get_one_of(field(config, "key"), errs, key_kinds, 3,
                     "expected one of: ip, header, route; got %s", &s->key);
    v = field(config, "header_name");
    if (v != NULL && host->conf_string(v, &s->header_name) != SLUICE_OK)
        ok = bad(errs, v, "expected a string, got %s");
    else if (v != NULL && !is_token(s->header_name)) {
        host->conf_error(errs, v, NULL, "expected a header name");
        ok = 0;
    }
    v = field(config, "dict");
    if (v != NULL && host->conf_string(v, &s->dict) != SLUICE_OK)
        ok = bad(errs, v, "expected a string, got %s");
    else if (v != NULL && s->dict.len == 0) {
        host->conf_error(errs, v, NULL, "length must be at least 1");
        ok = 0;
    }
    s->dict_node = v;
    ok &= get_string(field(config, "namespace"), errs, &s->ns);
    ok &= get_string(field(config, "message"), errs, &s->message);
    ok &= get_bool(field(config, "hide_client_headers"), errs, &s->hide_client_headers);
    ok &= get_bool(field(config, "fault_tolerant"), errs, &s->fault_tolerant);
    if (unknown_fields(config, errs) > 0)
        ok = 0;
    /* The record's own check runs once its fields are fine, as in Lua. */
    if (ok && s->key == KEY_HEADER && s->header_name.p == NULL) {
        host->conf_error(errs, config, NULL, "key is 'header': set header_name");
        ok = 0;
    }
    return ok;
}

/* --- the instance ------------------------------------------------------------------ */

/* Appends s to a JSON string as sluice.json escapes it: ", \ and control
 * bytes (DEL included); every other byte as it is. Returns the new end. */
static char *json_escape(char *o, struct sluice_str s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        const char *e = NULL;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default: break;
        }
        if (e != NULL) {
            memcpy(o, e, 2);
            o += 2;
        } else if (c < 32 || c == 127) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    return o;
}

static void destroy(void *instance)
{
    struct instance *in = instance;
    if (in == NULL)
        return;
    host->dict_close(in->dict);
    free(in->prefix);
    free(in->body_head);
    free(in);
}

/* What rate-limit.lua's init derives from the settings. 0 on OOM. */
static int derive(struct instance *in, const struct settings *s)
{
    double burst = s->burst > 0 ? s->burst : ceil_of(s->rate);
    in->interval = period_ms[s->per] / s->rate;
    in->tolerance = burst * in->interval;
    in->limit_len = (size_t)snprintf(in->limit, sizeof in->limit, "%.14g", burst);
    in->key = s->key;
    in->header_name = s->header_name;
    in->dict_name = s->dict;
    in->hide_client_headers = s->hide_client_headers;
    in->fault_tolerant = s->fault_tolerant;

    /* "rate-limit:NS:RATE/PER/BURST:": buckets of instances with other
     * limits never mix. Numbers as Lua's tostring writes them. */
    char rate[32];
    snprintf(rate, sizeof rate, "%.14g", s->rate);
    size_t n = 11 + s->ns.len + 1 + strlen(rate) + 1 + strlen(periods[s->per]) + 1 +
               in->limit_len + 2;
    in->prefix = malloc(n);
    if (in->prefix == NULL)
        return 0;
    in->prefix_len = (size_t)snprintf(in->prefix, n, "rate-limit:%.*s:%s/%s/%s:", (int)s->ns.len,
                                      s->ns.p, rate, periods[s->per], in->limit);

    /* {"message":"...","retry_after":N}, N written per request. */
    in->body_head = malloc(12 + 6 * s->message.len + 16 + 1);
    if (in->body_head == NULL)
        return 0;
    char *o = in->body_head;
    o += sprintf(o, "{\"message\":\"");
    o = json_escape(o, s->message);
    o += sprintf(o, "\",\"retry_after\":");
    in->body_head_len = (size_t)(o - in->body_head);
    return 1;
}

static int create(const struct sluice_host *h, const struct sluice_conf *config,
                  struct sluice_errors *errs, void **instance)
{
    (void)h;
    struct settings s = {
        .per = 0,
        .key = KEY_IP,
        .dict = { "ratelimit", 9 },
        .ns = { "", 0 },
        .message = { "API rate limit exceeded", 23 },
        .fault_tolerant = 1,
    };
    if (!load(&s, config, errs))
        return SLUICE_ERROR;
    struct instance *in = calloc(1, sizeof *in);
    if (in == NULL || !derive(in, &s)) {
        destroy(in);
        host->conf_error(errs, NULL, NULL, "out of memory");
        return SLUICE_ERROR;
    }
    /* Refused at load, not at the first request, when the configuration
     * declares no such dict. */
    in->dict = host->dict_open(s.dict.p, s.dict.len);
    if (in->dict == NULL) {
        char msg[512];
        snprintf(msg, sizeof msg, "no shared dict named '%.*s' (declare it under shared_dicts "
                 "in the configuration)", (int)(s.dict.len > 400 ? 400 : s.dict.len), s.dict.p);
        host->conf_error(errs, s.dict_node, NULL, msg);
        destroy(in);
        return SLUICE_ERROR;
    }
    *instance = in;
    return SLUICE_OK;
}

/* --- the bucket ------------------------------------------------------------------- */

/* One take: its inputs, and what it found. */
struct take {
    double now, interval, tolerance;
    int allowed;
    double remaining, reset_ms, retry_ms;
};

/* Under the dict's lock: one token out of the bucket, if there is one. A
 * refused request takes none and leaves the entry as it is. */
static int take_token(void *arg, const struct sluice_dict_value *cur,
                      struct sluice_dict_value *next, int64_t *ttl_ms)
{
    struct take *t = arg;
    double tat = cur->type == SLUICE_DICT_NUMBER ? cur->num : t->now;
    if (tat < t->now)
        tat = t->now;
    double new_tat = tat + t->interval, ahead = new_tat - t->now;
    if (ahead > t->tolerance + EPSILON) {
        t->allowed = 0;
        t->remaining = 0;
        t->reset_ms = tat - t->now;
        t->retry_ms = ahead - t->tolerance;
        return SLUICE_DICT_KEEP;
    }
    *next = (struct sluice_dict_value){ .type = SLUICE_DICT_NUMBER, .num = new_tat };
    /* The key expires when its bucket is full again; beyond what the
     * clock can express (absurdly slow rates), never. */
    *ttl_ms = ahead < 1e15 ? (int64_t)ceil_of(ahead) : 0;
    t->allowed = 1;
    t->remaining = floor_of((t->tolerance - ahead) / t->interval + EPSILON);
    t->reset_ms = ahead;
    t->retry_ms = 0;
    return SLUICE_DICT_STORE;
}

/* The request's bucket key, in request memory: PREFIX then "ip:ADDR",
 * "h:VALUE" or "r:HOST|*PATH". NULL on OOM. */
static char *identify(struct sluice_req *req, const struct instance *in, size_t *len)
{
    const char *tag = "ip:";
    struct sluice_str a = { NULL, 0 }, b = { NULL, 0 };
    if (in->key == KEY_HEADER &&
        host->header_get(req, SLUICE_REQUEST, in->header_name.p, in->header_name.len, 0, &a) ==
            SLUICE_OK &&
        a.len > 0) {
        tag = "h:";
    } else if (in->key == KEY_ROUTE) {
        tag = "r:";
        if (host->route(req, &a, &b) != SLUICE_OK)
            a = b = (struct sluice_str){ "", 0 };
        else if (a.p == NULL)
            a = (struct sluice_str){ "*", 1 };
    }
    if (tag[0] == 'i')
        host->client_addr(req, &a);
    size_t tlen = strlen(tag);
    char *key = host->alloc(req, in->prefix_len + tlen + a.len + b.len);
    if (key == NULL)
        return NULL;
    char *o = key;
    memcpy(o, in->prefix, in->prefix_len);
    o += in->prefix_len;
    memcpy(o, tag, tlen);
    o += tlen;
    if (a.len)
        memcpy(o, a.p, a.len);
    o += a.len;
    if (b.len)
        memcpy(o, b.p, b.len);
    o += b.len;
    *len = (size_t)(o - key);
    return key;
}

/* --- hooks -------------------------------------------------------------------------- */

/* What response_headers sends: the counters of the request's take. */
struct counters {
    char remaining[32], reset[32];
};

static int set(struct sluice_req *req, const char *name, const char *value, size_t vlen)
{
    return host->header_set(req, SLUICE_RESPONSE, name, strlen(name), value, vlen);
}

static int set_counters(struct sluice_req *req, const struct instance *in,
                        const struct counters *c)
{
    return set(req, "RateLimit-Limit", in->limit, in->limit_len) == SLUICE_OK &&
           set(req, "RateLimit-Remaining", c->remaining, strlen(c->remaining)) == SLUICE_OK &&
           set(req, "RateLimit-Reset", c->reset, strlen(c->reset)) == SLUICE_OK;
}

/* A dict failure: let the request through (logged), or fail it. */
static int dict_failed(struct sluice_req *req, const struct instance *in, int rc)
{
    char msg[600];
    int dn = (int)(in->dict_name.len > 400 ? 400 : in->dict_name.len);
    if (rc == SLUICE_EINVAL) {
        /* Lua's dict:get raises on such a key, whatever fault_tolerant says. */
        snprintf(msg, sizeof msg, "rate-limit: dict %.*s: a key of 1 to %d bytes expected", dn,
                 in->dict_name.p, KEY_MAX);
        host->error(req, msg);
        return SLUICE_ERROR;
    }
    const char *why = rc == SLUICE_ENOMEM ? "no memory" : "error";
    if (!in->fault_tolerant) {
        snprintf(msg, sizeof msg, "rate-limit: dict %.*s: %s", dn, in->dict_name.p, why);
        host->error(req, msg);
        return SLUICE_ERROR;
    }
    int n = snprintf(msg, sizeof msg, "dict %.*s: %s; letting the request through", dn,
                     in->dict_name.p, why);
    host->log(req, SLUICE_LOG_ERROR, msg, (size_t)n);
    return SLUICE_CONTINUE;
}

static int request_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)worker;
    const struct instance *in = instance;
    size_t klen = 0;
    char *key = identify(req, in, &klen);
    if (key == NULL) {
        host->error(req, "out of memory");
        return SLUICE_ERROR;
    }
    struct take t = { .now = host->monotonic_ms(), .interval = in->interval,
                      .tolerance = in->tolerance };
    int rc = host->dict_update(in->dict, key, klen, take_token, &t);
    if (rc != SLUICE_OK)
        return dict_failed(req, in, rc);
    struct counters *c = NULL;
    if (!in->hide_client_headers) {
        c = host->alloc(req, sizeof *c);
        if (c == NULL) {
            host->error(req, "out of memory");
            return SLUICE_ERROR;
        }
        snprintf(c->remaining, sizeof c->remaining, "%.14g", t.remaining);
        snprintf(c->reset, sizeof c->reset, "%.14g", ceil_of(t.reset_ms / 1000 - EPSILON / 1000));
        *state = c;
    }
    if (t.allowed)
        return SLUICE_CONTINUE;

    double retry = ceil_of(t.retry_ms / 1000);
    if (retry < 1)
        retry = 1;
    char retry_text[32], *body;
    int rn = snprintf(retry_text, sizeof retry_text, retry <= 9007199254740992.0 ? "%.0f" : "%.17g",
                      retry);
    body = host->alloc(req, in->body_head_len + (size_t)rn + 1);
    if (body == NULL) {
        host->error(req, "out of memory");
        return SLUICE_ERROR;
    }
    memcpy(body, in->body_head, in->body_head_len);
    memcpy(body + in->body_head_len, retry_text, (size_t)rn);
    body[in->body_head_len + (size_t)rn] = '}';
    /* Retry-After as an integer, as Lua's tostring writes ceil's result. */
    snprintf(retry_text, sizeof retry_text, "%.14g", retry);
    if (set(req, "Retry-After", retry_text, strlen(retry_text)) != SLUICE_OK ||
        set(req, "Content-Type", "application/json", 16) != SLUICE_OK ||
        (c != NULL && !set_counters(req, in, c)) ||
        host->respond(req, 429, body, in->body_head_len + (size_t)rn + 1) != SLUICE_OK) {
        host->error(req, "cannot answer 429");
        return SLUICE_ERROR;
    }
    return SLUICE_RESPOND;
}

/* Every response of a counted request, the 429 included (response phases
 * run on local replies too), carries the counters. */
static int response_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)worker;
    const struct counters *c = *state;
    if (c != NULL && !set_counters(req, instance, c)) {
        host->error(req, "cannot set the RateLimit headers");
        return SLUICE_ERROR;
    }
    return SLUICE_CONTINUE;
}

static const struct sluice_plugin plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "rate-limit",
    .version = "1.0.0",
    .priority = 910,
    .config_create = create,
    .config_destroy = destroy,
    .request_headers = request_headers,
    .response_headers = response_headers,
};

/* Refuses a host without dict_update (older than ABI 1.2). */
const struct sluice_plugin *sluice_plugin_init(const struct sluice_host *h)
{
    if (!SLUICE_HOST_HAS(h, dict_update))
        return NULL;
    host = h;
    return &plugin;
}
