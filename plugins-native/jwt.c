/* plugins-native/jwt.c: verifies HS256 JSON Web Tokens (RFC 7519) with
 * OpenSSL's libcrypto and answers 401 with a JSON body when a request has
 * no valid token.
 *
 *   plugins:
 *     - name: jwt
 *       config:
 *         secret: "s3cr3t"          # required: the HMAC-SHA256 key
 *         header: Authorization     # read "Bearer <token>" from it
 *         query: jwt                # or ?jwt=<token> ("" turns it off)
 *         clock_skew_s: 0           # allowed clock difference for exp/nbf, 0..3600
 *         require_exp: true         # a token without exp is refused
 *         hide_credentials: false   # true: the header is not sent upstream
 *
 * Only alg HS256 is accepted (never "none", never a key-type confusion).
 * A valid token's "sub" claim, when a string, is stored for the other
 * plugins in the shared per-request space as "jwt.sub".
 *
 * Priority 1450: with the other authentication plugins, before
 * everything that trusts an authenticated request. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sluice_plugin.h"

#define TOKEN_MAX 8192

static const struct sluice_host *host;

struct instance {
    struct sluice_str secret, header, query;    /* borrowed from the config */
    int64_t clock_skew_s;
    int require_exp;
    int hide_credentials;
};

/* --- config ------------------------------------------------------------------------- */

static int bad(struct sluice_errors *errs, const struct sluice_conf *node, const char *key,
               const char *fmt)
{
    char got[160], msg[300];
    snprintf(msg, sizeof msg, fmt, host->conf_describe(node, got, sizeof got));
    host->conf_error(errs, node, key, msg);
    return 0;
}

static int absent(const struct sluice_conf *node)
{
    int t = host->conf_type(node);
    return t == SLUICE_CONF_ABSENT || t == SLUICE_CONF_NULL;
}

static int get_string(const struct sluice_conf *config, const char *key,
                      struct sluice_errors *errs, struct sluice_str *out, int min_len)
{
    const struct sluice_conf *v = host->conf_get(config, key);
    if (absent(v))
        return 1;
    if (host->conf_string(v, out) != SLUICE_OK)
        return bad(errs, v, NULL, "expected a string, got %s");
    if ((int)out->len < min_len)
        return bad(errs, v, NULL, "length must be at least 1");
    return 1;
}

static int get_bool(const struct sluice_conf *config, const char *key,
                    struct sluice_errors *errs, int *out)
{
    const struct sluice_conf *v = host->conf_get(config, key);
    if (absent(v))
        return 1;
    return host->conf_bool(v, out) == SLUICE_OK || bad(errs, v, NULL, "expected a boolean, got %s");
}

static int load(struct instance *in, const struct sluice_conf *config, struct sluice_errors *errs)
{
    static const char *const fields[] = {
        "secret", "header", "query", "clock_skew_s", "require_exp", "hide_credentials",
    };
    int ok = 1;
    if (absent(host->conf_get(config, "secret"))) {
        host->conf_error(errs, config, "secret", "required field missing");
        ok = 0;
    }
    ok &= get_string(config, "secret", errs, &in->secret, 1);
    ok &= get_string(config, "header", errs, &in->header, 1);
    ok &= get_string(config, "query", errs, &in->query, 0);
    const struct sluice_conf *v = host->conf_get(config, "clock_skew_s");
    if (!absent(v)) {
        if (host->conf_int(v, &in->clock_skew_s) != SLUICE_OK)
            ok = bad(errs, v, NULL, "expected an integer, got %s");
        else if (in->clock_skew_s < 0 || in->clock_skew_s > 3600)
            ok = bad(errs, v, NULL, "value should be between 0 and 3600, got %s");
    }
    ok &= get_bool(config, "require_exp", errs, &in->require_exp);
    ok &= get_bool(config, "hide_credentials", errs, &in->hide_credentials);
    for (size_t i = 0; i < host->conf_len(config); i++) {
        struct sluice_str k;
        const struct sluice_conf *item = host->conf_at(config, i, &k);
        int known = 0;
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            known |= k.len == strlen(fields[f]) && memcmp(k.p, fields[f], k.len) == 0;
        if (!known) {
            host->conf_error(errs, item, NULL, "unknown field");
            ok = 0;
        }
    }
    return ok;
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
        .header = { "Authorization", 13 },
        .query = { "jwt", 3 },
        .require_exp = 1,
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

/* --- base64url (RFC 4648 section 5, no padding) ---------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes n characters into out (at least n * 3 / 4 + 1 bytes). Returns
 * the decoded length, or -1 for a character outside the alphabet or an
 * impossible length. */
static long b64url_decode(const char *s, size_t n, unsigned char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    long len = 0;
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (unsigned char)(acc >> bits);
        }
    }
    return len;
}

/* --- just enough JSON: the members of one object ----------------------------------------- */

struct json {
    const char *p, *end;
};

static void skip_ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* At '"': moves past the closing quote. Returns 0, or -1 when malformed. */
static int skip_string(struct json *j)
{
    for (j->p++; j->p < j->end; j->p++) {
        if (*j->p == '\\') {
            j->p++;
            continue;
        }
        if (*j->p == '"') {
            j->p++;
            return 0;
        }
        if ((unsigned char)*j->p < 0x20)
            return -1;
    }
    return -1;
}

static int skip_value(struct json *j, int depth)
{
    skip_ws(j);
    if (j->p >= j->end || depth > 32)
        return -1;
    char open = *j->p;
    if (open == '"')
        return skip_string(j);
    if (open != '{' && open != '[') {
        const char *start = j->p;
        while (j->p < j->end && strchr("+-.0123456789eEtrufalsn", *j->p) != NULL)
            j->p++;
        return j->p > start ? 0 : -1;
    }
    char close = open == '{' ? '}' : ']';
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            skip_ws(j);
            if (j->p >= j->end || *j->p != '"' || skip_string(j) < 0)
                return -1;
            skip_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return -1;
        }
        if (skip_value(j, depth + 1) < 0)
            return -1;
        skip_ws(j);
        if (j->p >= j->end)
            return -1;
        if (*j->p == close) {
            j->p++;
            return 0;
        }
        if (*j->p++ != ',')
            return -1;
    }
}

/* Finds member key of the object text (keys compared as written, without
 * unescaping). Returns 1 with the raw value in *val, 0 when absent, -1
 * when the text is not one JSON object. */
static int json_member(const char *text, size_t n, const char *key, struct sluice_str *val)
{
    struct json j = { text, text + n };
    size_t klen = strlen(key);
    int found = 0;
    skip_ws(&j);
    if (j.p >= j.end || *j.p != '{')
        return -1;
    j.p++;
    skip_ws(&j);
    if (j.p < j.end && *j.p == '}')
        return 0;
    for (;;) {
        skip_ws(&j);
        const char *k = j.p + 1;
        if (j.p >= j.end || *j.p != '"' || skip_string(&j) < 0)
            return -1;
        int match = (size_t)(j.p - 1 - k) == klen && memcmp(k, key, klen) == 0;
        skip_ws(&j);
        if (j.p >= j.end || *j.p++ != ':')
            return -1;
        skip_ws(&j);
        const char *v = j.p;
        if (skip_value(&j, 0) < 0)
            return -1;
        if (match && !found) {
            *val = (struct sluice_str){ v, (size_t)(j.p - v) };
            found = 1;
        }
        skip_ws(&j);
        if (j.p >= j.end)
            return -1;
        if (*j.p == '}') {
            j.p++;
            skip_ws(&j);
            return j.p == j.end ? found : -1;
        }
        if (*j.p++ != ',')
            return -1;
    }
}

/* A raw JSON number as a double; 0 when it is not one. */
static int json_number(struct sluice_str v, double *out)
{
    char buf[64];
    char *end;
    if (v.len == 0 || v.len >= sizeof buf || v.p[0] == '"')
        return 0;
    memcpy(buf, v.p, v.len);
    buf[v.len] = '\0';
    *out = strtod(buf, &end);
    return *end == '\0';
}

/* A raw JSON string without escapes, as its content; 0 otherwise (claims
 * with escapes are not used). */
static int json_plain_string(struct sluice_str v, struct sluice_str *out)
{
    if (v.len < 2 || v.p[0] != '"' || v.p[v.len - 1] != '"' || memchr(v.p, '\\', v.len))
        return 0;
    *out = (struct sluice_str){ v.p + 1, v.len - 2 };
    return 1;
}

/* --- the hook ------------------------------------------------------------------------ */

static int deny(struct sluice_req *req, const char *why, int had_token)
{
    char body[160];
    int n = snprintf(body, sizeof body, "{\"message\":\"%s\"}", why);
    const char *challenge = had_token ? "Bearer error=\"invalid_token\"" : "Bearer";
    host->header_set(req, SLUICE_RESPONSE, "Content-Type", 12, "application/json", 16);
    host->header_set(req, SLUICE_RESPONSE, "WWW-Authenticate", 16, challenge, strlen(challenge));
    if (host->respond(req, 401, body, (size_t)n) != SLUICE_OK) {
        host->error(req, "cannot answer 401");
        return SLUICE_ERROR;
    }
    return SLUICE_RESPOND;
}

static int starts_nocase(struct sluice_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    if (s.len < n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s.p[i];
        if ((c >= 'A' && c <= 'Z' ? c + 32 : c) != prefix[i])
            return 0;
    }
    return 1;
}

/* The token: "Bearer <token>" in the header, else the query argument. */
static int find_token(struct sluice_req *req, const struct instance *in, struct sluice_str *tok)
{
    struct sluice_str v;
    if (host->header_get(req, SLUICE_REQUEST, in->header.p, in->header.len, 0, &v) == SLUICE_OK &&
        starts_nocase(v, "bearer ")) {
        size_t i = 7;
        while (i < v.len && v.p[i] == ' ')
            i++;
        *tok = (struct sluice_str){ v.p + i, v.len - i };
        return tok->len > 0;
    }
    if (in->query.len == 0 || host->query(req, &v) != SLUICE_OK)
        return 0;
    for (size_t i = 0; i < v.len;) {
        size_t end = i;
        while (end < v.len && v.p[end] != '&')
            end++;
        if (end - i > in->query.len && v.p[i + in->query.len] == '=' &&
            memcmp(v.p + i, in->query.p, in->query.len) == 0) {
            *tok = (struct sluice_str){ v.p + i + in->query.len + 1, end - i - in->query.len - 1 };
            return tok->len > 0;
        }
        i = end + 1;
    }
    return 0;
}

/* Checks the token; NULL when valid, else why not. */
static const char *verify(struct sluice_req *req, const struct instance *in,
                          struct sluice_str tok, struct sluice_str *sub)
{
    const char *dot1 = memchr(tok.p, '.', tok.len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', tok.len - (size_t)(dot1 + 1 - tok.p)) : NULL;
    if (tok.len > TOKEN_MAX || dot2 == NULL ||
        memchr(dot2 + 1, '.', tok.len - (size_t)(dot2 + 1 - tok.p)) != NULL)
        return "malformed token";
    size_t hlen = (size_t)(dot1 - tok.p), plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = tok.len - (size_t)(dot2 + 1 - tok.p);
    unsigned char *buf = host->alloc(req, tok.len);
    if (buf == NULL)
        return "out of memory";
    long hn = b64url_decode(tok.p, hlen, buf);
    long pn = hn < 0 ? -1 : b64url_decode(dot1 + 1, plen, buf + hn);
    long sn = pn < 0 ? -1 : b64url_decode(dot2 + 1, slen, buf + hn + pn);
    if (sn < 0)
        return "malformed token";
    const char *head = (const char *)buf, *payload = head + hn;
    struct sluice_str alg, v;
    if (json_member(head, (size_t)hn, "alg", &alg) != 1 || !json_plain_string(alg, &alg) ||
        alg.len != 5 || memcmp(alg.p, "HS256", 5) != 0)
        return "unsupported algorithm (only HS256)";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(EVP_sha256(), in->secret.p, (int)in->secret.len, (const unsigned char *)tok.p,
             (size_t)(dot2 - tok.p), mac, &maclen) == NULL)
        return "cannot compute the signature";
    if ((long)maclen != sn || CRYPTO_memcmp(mac, buf + hn + pn, maclen) != 0)
        return "invalid signature";
    double now = (double)host->now_ms(req) / 1000.0, t;
    int rc = json_member(payload, (size_t)pn, "exp", &v);
    if (rc < 0)
        return "malformed token";
    if (rc == 1 && (!json_number(v, &t) || now >= t + (double)in->clock_skew_s))
        return "token expired";
    if (rc == 0 && in->require_exp)
        return "token has no exp claim";
    if (json_member(payload, (size_t)pn, "nbf", &v) == 1 &&
        (!json_number(v, &t) || now + (double)in->clock_skew_s < t))
        return "token not valid yet";
    if (json_member(payload, (size_t)pn, "sub", &v) != 1 || !json_plain_string(v, sub))
        *sub = (struct sluice_str){ NULL, 0 };
    return NULL;
}

static int request_headers(struct sluice_req *req, void *instance, void *worker, void **state)
{
    (void)worker;
    (void)state;
    const struct instance *in = instance;
    struct sluice_str tok, sub;
    if (!find_token(req, in, &tok))
        return deny(req, "missing token", 0);
    const char *why = verify(req, in, tok, &sub);
    if (why != NULL)
        return deny(req, why, 1);
    if (sub.p != NULL && host->ctx_set(req, "jwt.sub", 7, sub.p, sub.len) < 0) {
        host->error(req, "out of memory");
        return SLUICE_ERROR;
    }
    if (in->hide_credentials)
        host->header_remove(req, SLUICE_REQUEST, in->header.p, in->header.len);
    return SLUICE_CONTINUE;
}

static const struct sluice_plugin plugin = {
    SLUICE_PLUGIN_HEADER,
    .name = "jwt",
    .version = "1.0.0",
    .priority = 1450,
    .config_create = create,
    .config_destroy = destroy,
    .request_headers = request_headers,
};

const struct sluice_plugin *sluice_plugin_init(const struct sluice_host *h)
{
    host = h;
    return &plugin;
}
