#include "config_admin.h"
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MIN 16
#define TOKEN_MAX 256

bool sl_addr_is_loopback(const struct sl_addr *addr)
{
    if (addr->ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

static void admin_listen(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_admin_conf *admin = base;
    const char *s = sl_yaml_scalar(y, val, path, "an address");
    char reason[256], buf[80];
    struct sl_addr addr;

    if (s == NULL)
        return;
    if (sl_addr_parse(s, "127.0.0.1", &addr, reason, sizeof reason) < 0) {
        sl_yaml_error(y, val, "%s: invalid address %s: %s", path,
                      sl_yaml_describe(val, buf, sizeof buf), reason);
        return;
    }
    free(admin->addr.text);
    admin->addr = addr;
    admin->line = (int)val->start_mark.line + 1;
    admin->col = (int)val->start_mark.column + 1;
}

/* The token travels in an Authorization header (RFC 6750 §2.1), so it is
 * kept to visible ASCII; the lower bound keeps it out of guessing range. */
static void admin_token(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_admin_conf *admin = base;
    const char *s = sl_yaml_scalar(y, val, path, "a token");
    size_t n;

    if (s == NULL)
        return;
    n = strlen(s);
    if (n < TOKEN_MIN || n > TOKEN_MAX) {
        sl_yaml_error(y, val, "%s: expected %d to %d characters, got %zu", path, TOKEN_MIN,
                      TOKEN_MAX, n);
        return;
    }
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c <= ' ' || *c >= 0x7f) {
            sl_yaml_error(y, val, "%s: expected visible ASCII characters only (no spaces)", path);
            return;
        }
    }
    free(admin->token);
    admin->token = sl_config_xstrdup(s);
}

static const struct sl_yaml_field admin_fields[] = {
    SL_YAML_FUNC("listen", admin_listen),
    SL_YAML_FUNC("token", admin_token),
};

static bool is_empty_scalar(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;

    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE
        && (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
}

void sl_config_admin_load(struct sl_yaml *y, yaml_node_t *val, const char *path, void *base)
{
    struct sl_config *cfg = base;
    struct sl_admin_conf *admin = &cfg->admin;
    char reason[256];

    admin->enabled = true;
    admin->line = (int)val->start_mark.line + 1;
    admin->col = (int)val->start_mark.column + 1;
    if (!is_empty_scalar(val))
        sl_yaml_walk(y, val, path, admin_fields, SL_YAML_COUNTOF(admin_fields), admin);
    if (admin->addr.text == NULL &&
        sl_addr_parse(SL_ADMIN_DEFAULT_LISTEN, NULL, &admin->addr, reason, sizeof reason) < 0) {
        sl_yaml_error(y, val, "%s: default address %s: %s", path, SL_ADMIN_DEFAULT_LISTEN, reason);
        return;
    }
    if (admin->token == NULL && !sl_addr_is_loopback(&admin->addr)) {
        yaml_node_t *at = val->type == YAML_MAPPING_NODE ? sl_yaml_get(y, val, "listen") : NULL;
        sl_yaml_error(y, at ? at : val,
                      "%s: a token is required when the admin listener is not on a loopback "
                      "address (listen: %s)", path, admin->addr.text);
    }
}

void sl_config_admin_fini(struct sl_admin_conf *admin)
{
    free(admin->addr.text);
    free(admin->token);
    memset(admin, 0, sizeof *admin);
}
