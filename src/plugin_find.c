#include "plugin_find.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* dir as the config means it: relative to the config file's directory. */
static void resolve_dir(char *out, size_t outlen, const char *config_file, const char *dir)
{
    const char *slash = config_file ? strrchr(config_file, '/') : NULL;
    if (dir[0] == '/' || slash == NULL)
        snprintf(out, outlen, "%s", dir);
    else
        snprintf(out, outlen, "%.*s/%s", (int)(slash - config_file), config_file, dir);
}

/* Writes a, b and c one after the other into out; false when they do
 * not fit (such a path cannot name a file anyway). */
static bool join(char *out, size_t len, const char *a, const char *b, const char *c)
{
    int n = snprintf(out, len, "%s%s%s", a, b, c);
    return n >= 0 && (size_t)n < len;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Whether real (a resolved path) lies inside one of the plugin paths,
 * themselves resolved: a symlink or a "../" cannot lead out of them. */
static bool is_confined(const char *real, const char *const *paths, size_t npaths,
                        const char *config_file)
{
    char dir[PATH_MAX], rdir[PATH_MAX];
    for (size_t i = 0; i < npaths; i++) {
        resolve_dir(dir, sizeof dir, config_file, paths[i]);
        if (realpath(dir, rdir) == NULL)
            continue;
        size_t n = strlen(rdir);
        if (strncmp(real, rdir, n) == 0 && (real[n] == '/' || (n == 1 && rdir[0] == '/')))
            return true;
    }
    return false;
}

static int confine(const struct sl_plugin_file *f, const char *const *paths, size_t npaths,
                   const char *config_file, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (realpath(f->path, real) == NULL) {
        snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
        return -1;
    }
    if (!is_confined(real, paths, npaths, config_file)) {
        snprintf(err, errlen, "%s resolves to %s, outside the plugin paths "
                 "(plugin_paths; symlinks and '..' may not lead out of them)", f->path, real);
        return -1;
    }
    return 0;
}

static void list_dirs(char *err, size_t errlen, size_t used, const char *const *paths,
                      size_t npaths, const char *config_file)
{
    char dir[PATH_MAX];
    for (size_t i = 0; i < npaths && used < errlen; i++) {
        resolve_dir(dir, sizeof dir, config_file, paths[i]);
        used += (size_t)snprintf(err + used, errlen - used, "%s %s", i ? "," : "", dir);
    }
    if (npaths == 0 && used < errlen)
        snprintf(err + used, errlen - used, " any directory (plugin_paths is empty)");
}

/* By name: the first directory with a candidate of an allowed kind. */
static int find_by_name(const struct sl_plugin_conf *pc, const char *const *paths,
                        size_t npaths, const char *config_file, struct sl_plugin_file *out,
                        char *err, size_t errlen)
{
    const char *name = pc->name;
    bool lua_ok = pc->kind != SL_PLUGIN_NATIVE, native_ok = pc->kind != SL_PLUGIN_LUA;
    char dir[PATH_MAX], base[PATH_MAX], lua[PATH_MAX], so[PATH_MAX];
    for (size_t i = 0; i < npaths; i++) {
        resolve_dir(dir, sizeof dir, config_file, paths[i]);
        if (!join(base, sizeof base, dir, "/", name))
            continue;
        bool has_lua = lua_ok && ((join(lua, sizeof lua, base, ".lua", "") && is_file(lua)) ||
                                  (join(lua, sizeof lua, base, "/handler.lua", "") &&
                                   is_file(lua)));
        bool has_so = native_ok && join(so, sizeof so, base, ".so", "") && is_file(so);
        if (has_lua && has_so) {
            int n = snprintf(err, errlen, "ambiguous: %s and %s are both in %s: "
                             "say which with kind: lua or kind: native", lua, so, dir);
            (void)n;
            return -1;
        }
        if (has_lua || has_so) {
            memcpy(out->path, has_lua ? lua : so, sizeof out->path);
            out->kind = has_lua ? SL_PLUGIN_LUA : SL_PLUGIN_NATIVE;
            return 0;
        }
    }
    size_t used;
    if (lua_ok && native_ok)
        used = (size_t)snprintf(err, errlen, "not found: no %s.lua, %s/handler.lua or %s.so in",
                                name, name, name);
    else if (lua_ok)
        used = (size_t)snprintf(err, errlen, "not found: no %s.lua or %s/handler.lua in",
                                name, name);
    else
        used = (size_t)snprintf(err, errlen, "not found: no %s.so in", name);
    list_dirs(err, errlen, used, paths, npaths, config_file);
    return SL_PLUGIN_NOT_FOUND;
}

static int find_by_file(const struct sl_plugin_conf *pc, const char *const *paths,
                        size_t npaths, const char *config_file, struct sl_plugin_file *out,
                        char *err, size_t errlen)
{
    enum sl_plugin_kind_pick kind = pc->kind;
    if (kind == SL_PLUGIN_ANY)
        kind = has_suffix(pc->file, ".so") ? SL_PLUGIN_NATIVE
             : has_suffix(pc->file, ".lua") ? SL_PLUGIN_LUA : SL_PLUGIN_ANY;
    if (kind == SL_PLUGIN_ANY) {
        snprintf(err, errlen, "file %s: cannot tell its kind from its name "
                 "(.lua or .so): add kind: lua or kind: native", pc->file);
        return -1;
    }
    char dir[PATH_MAX];
    for (size_t i = 0; i < npaths; i++) {
        resolve_dir(dir, sizeof dir, config_file, paths[i]);
        if (join(out->path, sizeof out->path, dir, "/", pc->file) && is_file(out->path)) {
            out->kind = kind;
            return 0;
        }
    }
    size_t used = (size_t)snprintf(err, errlen, "not found: no %s in", pc->file);
    list_dirs(err, errlen, used, paths, npaths, config_file);
    return SL_PLUGIN_NOT_FOUND;
}

int sl_plugin_find(const struct sl_plugin_conf *pc, const char *const *paths, size_t npaths,
                   const char *config_file, struct sl_plugin_file *out, char *err,
                   size_t errlen)
{
    int rc = pc->file != NULL
        ? find_by_file(pc, paths, npaths, config_file, out, err, errlen)
        : find_by_name(pc, paths, npaths, config_file, out, err, errlen);
    if (rc != 0)
        return rc;
    return confine(out, paths, npaths, config_file, err, errlen);
}
