/* Value syntax of sluice.yaml: integers, durations, sizes, booleans and
 * socket addresses. Nothing here knows about YAML or key paths; callers turn
 * a refusal into a "file:line:col: key: ..." message. */
#include "config.h"
#include "config_values.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <strings.h>

/* Writes a refusal reason into err; returns -1 so callers can return it. */
__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Leading digits with an optional sign; *end is left on the first byte after
 * them. strtoll alone would also skip spaces, which a config value must not
 * carry. */
static int parse_number(const char *s, long long *out, const char **end)
{
    const char *p = s;
    char *stop;

    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    *out = strtoll(s, &stop, 10);
    *end = stop;
    return 0;
}

/* Multiplies without overflow: a huge value saturates so that the range
 * check, not an overflow, decides. */
static long long scale(long long v, long long unit)
{
    if (v > LLONG_MAX / unit)
        return LLONG_MAX;
    if (v < LLONG_MIN / unit)
        return LLONG_MIN;
    return v * unit;
}

/* Names end up in key paths, logs and metric labels, hence the short
 * alphabet; no '.', so that "upstreams.NAME.key" stays unambiguous. */
bool sl_config_is_valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SL_CONFIG_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    return true;
}

int sl_config_parse_int(const char *s, long long *out)
{
    const char *end;

    if (parse_number(s, out, &end) < 0 || *end != '\0')
        return -1;
    return 0;
}

int sl_config_parse_duration(const char *s, long long *ms)
{
    static const struct { const char *suffix; long long ms; } units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
    };
    const char *end;
    long long v;

    if (parse_number(s, &v, &end) < 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            *ms = scale(v, units[i].ms);
            return 0;
        }
    }
    return -1;
}

int sl_config_parse_size(const char *s, long long *bytes)
{
    const char *end;
    long long v, unit;

    if (parse_number(s, &v, &end) < 0)
        return -1;
    switch (tolower((unsigned char)end[0])) {
    case '\0': unit = 1; break;
    case 'k': unit = 1024LL; break;
    case 'm': unit = 1024LL * 1024; break;
    case 'g': unit = 1024LL * 1024 * 1024; break;
    default: return -1;
    }
    if (unit != 1 && end[1] != '\0')
        return -1;
    *bytes = scale(v, unit);
    return 0;
}

int sl_config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on" };
    static const char *const no[] = { "false", "no", "off" };

    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

void sl_config_format_duration(long long ms, char *buf, size_t len)
{
    if (ms == 0)
        snprintf(buf, len, "0s");
    else if (ms % 3600000 == 0)
        snprintf(buf, len, "%lldh", ms / 3600000);
    else if (ms % 60000 == 0)
        snprintf(buf, len, "%lldm", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llds", ms / 1000);
    else
        snprintf(buf, len, "%lldms", ms);
}

void sl_config_format_size(long long bytes, char *buf, size_t len)
{
    static const char suffix[] = "gmk";
    long long unit = 1024LL * 1024 * 1024;

    for (size_t i = 0; bytes != 0 && i < 3; i++, unit /= 1024) {
        if (bytes % unit == 0) {
            snprintf(buf, len, "%lld%c", bytes / unit, suffix[i]);
            return;
        }
    }
    snprintf(buf, len, "%lld", bytes);
}

/* Splits text into host and port. Brackets are required around an IPv6
 * literal because its colons would otherwise be taken for the port
 * separator; *numeric6 tells the caller to resolve it as such. */
static int split_hostport(const char *text, char *host, size_t hostlen,
                          const char **port, bool *numeric6, char *err, size_t errlen)
{
    const char *colon, *hstart = text;
    size_t n;

    *numeric6 = false;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL)
            return fail(err, errlen, "missing ']'");
        if (close[1] != ':')
            return fail(err, errlen, close[1] ? "expected ':' after ']'" : "missing port");
        hstart = text + 1;
        colon = close + 1;
        n = (size_t)(close - hstart);
        if (n == 0)
            return fail(err, errlen, "missing host");
        *numeric6 = true;
    } else if ((colon = strrchr(text, ':')) != NULL) {
        if (strchr(text, ':') != colon)
            return fail(err, errlen, "IPv6 address must be in brackets, as in [::1]:8080");
        n = (size_t)(colon - text);
    } else {
        colon = text - 1;           /* a bare port: no host at all */
        n = 0;
        for (const char *p = text; *p; p++)
            if (!isdigit((unsigned char)*p))
                return fail(err, errlen, "missing port");
    }
    if (n >= hostlen)
        return fail(err, errlen, "host name too long");
    memcpy(host, hstart, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

static int check_port(const char *port, char *err, size_t errlen)
{
    long long v;

    if (*port == '\0')
        return fail(err, errlen, "missing port");
    if (sl_config_parse_int(port, &v) < 0 || port[0] == '+' || port[0] == '-')
        return fail(err, errlen, "invalid port '%.16s'", port);
    if (v < 1 || v > 65535)
        return fail(err, errlen, "port out of range 1..65535");
    return 0;
}

int sl_addr_parse(const char *text, const char *default_host,
                  struct sl_addr *addr, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
    char host[256];
    const char *port = NULL;
    bool numeric6;
    int rc;

    memset(addr, 0, sizeof *addr);
    if (*text == '\0')
        return fail(err, errlen, "empty address");
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return fail(err, errlen, "unexpected space or control character");
    if (split_hostport(text, host, sizeof host, &port, &numeric6, err, errlen) < 0
        || check_port(port, err, errlen) < 0)
        return -1;
    if (host[0] == '\0' && !numeric6) {
        if (default_host == NULL)
            return fail(err, errlen, "missing host");
        snprintf(host, sizeof host, "%s", default_host);
    }
    hints.ai_family = numeric6 ? AF_INET6 : AF_UNSPEC;
    hints.ai_flags = AI_NUMERICSERV | (numeric6 ? AI_NUMERICHOST : 0);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0)
        return fail(err, errlen, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    memcpy(&addr->ss, res->ai_addr, res->ai_addrlen);
    addr->len = res->ai_addrlen;
    freeaddrinfo(res);
    if ((addr->text = strdup(text)) == NULL)
        return fail(err, errlen, "out of memory");
    return 0;
}
