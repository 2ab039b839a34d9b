#include "lua_vm.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>

#include "lua_ffi.h"

static char lua_dir[PATH_MAX];
static bool lua_dir_found;
static int nworkers;
/* Every lua_State made and closed, throwaway validation VMs included: a
 * reload that leaks a VM shows as created - closed growing. */
static atomic_uint_fast64_t vms_created, vms_closed;

/* --- process setup ------------------------------------------------------------- */

static bool has_host(const char *dir)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/sluice/plugin_host.lua", dir);
    return access(path, R_OK) == 0;
}

static bool use_dir(const char *dir)
{
    char real[PATH_MAX];
    if (realpath(dir, real) == NULL || !has_host(real))
        return false;
    snprintf(lua_dir, sizeof lua_dir, "%s", real);
    lua_dir_found = true;
    return true;
}

static int find_lua_dir(char *err, size_t errlen)
{
    const char *env = getenv("SLUICE_LUA_PATH");
    if (env != NULL && env[0] != '\0') {
        if (use_dir(env))
            return 0;
        snprintf(err, errlen, "SLUICE_LUA_PATH=%s: no sluice/plugin_host.lua there", env);
        return -1;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL)
            *slash = '\0';
        static const char *const rel[] = { "../lua", "../../lua", "../share/sluice/lua" };
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            char dir[PATH_MAX + 32];
            snprintf(dir, sizeof dir, "%s/%s", exe, rel[i]);
            if (use_dir(dir))
                return 0;
        }
    }
#ifdef SL_LUA_DIR
    if (use_dir(SL_LUA_DIR))
        return 0;
#endif
    snprintf(err, errlen, "cannot find the Lua API directory (sluice/plugin_host.lua) next to "
             "the binary; set SLUICE_LUA_PATH to the lua/ directory of sluice");
    return -1;
}

int sl_lua_init(int workers, char *err, size_t errlen)
{
    if (workers <= 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        workers = ncpu > 0 ? (int)ncpu : 1;
    }
    nworkers = workers;
    if (lua_dir_found)
        return 0;
    return find_lua_dir(err, errlen);
}

const char *sl_lua_dir(void)
{
    return lua_dir_found ? lua_dir : NULL;
}

int sl_lua_nworkers(void)
{
    return nworkers;
}

/* --- the config tree ------------------------------------------------------------- */

static void push_position(lua_State *L, const struct sl_value *v)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, v->line);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, v->col);
    lua_setfield(L, -2, "col");
}

/* Pushes v as a Lua value and, above it, its positions: { line, col,
 * fields = { key = positions } } for a map, { line, col, items = { ... } }
 * for a list. A null is host.null (at null_idx); an integer becomes a
 * number (exact up to 2^53). Raises on OOM (run under lua_cpcall). */
static void push_value(lua_State *L, const struct sl_value *v, int null_idx)
{
    luaL_checkstack(L, 8, "config nested too deeply");
    switch (v->kind) {
    case SL_VALUE_NULL:
        lua_pushvalue(L, null_idx);
        break;
    case SL_VALUE_BOOL:
        lua_pushboolean(L, v->b);
        break;
    case SL_VALUE_INT:
        lua_pushnumber(L, (lua_Number)v->i);
        break;
    case SL_VALUE_NUMBER:
        lua_pushnumber(L, v->d);
        break;
    case SL_VALUE_STRING:
        lua_pushlstring(L, v->s ? v->s : "", v->len);
        break;
    case SL_VALUE_LIST:
    case SL_VALUE_MAP: {
        bool map = v->kind == SL_VALUE_MAP;
        int n = v->n > INT_MAX ? INT_MAX : (int)v->n;
        lua_createtable(L, map ? 0 : n, map ? n : 0);  /* value */
        push_position(L, v);                            /* positions */
        lua_createtable(L, map ? 0 : n, map ? n : 0);  /* children's positions */
        for (int i = 0; i < n; i++) {
            push_value(L, &v->items[i], null_idx);      /* value, position */
            if (map) {
                lua_setfield(L, -3, v->keys[i]);
                lua_setfield(L, -4, v->keys[i]);
            } else {
                lua_rawseti(L, -3, i + 1);
                lua_rawseti(L, -4, i + 1);
            }
        }
        lua_setfield(L, -2, map ? "fields" : "items");
        return;
    }
    }
    push_position(L, v);
}

/* --- the heap ------------------------------------------------------------------ */

static void *heap_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
    struct sl_lua_heap *h = ud;
    if (nsize == 0) {
        free(p);
        h->used -= osize;
        return NULL;
    }
    /* LuaJIT passes osize 0 (not the block size) for a new block. Growing
     * past the cap fails: LuaJIT raises "not enough memory", which the
     * budget turns into the memory kill. Shrinking always succeeds. */
    if (nsize > osize && h->used - osize + nsize > h->cap)
        return NULL;
    void *q = p == NULL ? malloc(nsize) : realloc(p, nsize);
    if (q == NULL && nsize > osize)
        return NULL;
    /* A shrink that realloc could not do keeps the old block; LuaJIT now
     * believes it has nsize bytes, and will free it as such. */
    h->used = h->used - osize + nsize;
    return q != NULL ? q : p;
}

static lua_State *new_state(const struct sl_plugin_conf *conf, struct sl_lua_heap **heap)
{
    size_t mb = conf->memory_limit_mb > 0 ? (size_t)conf->memory_limit_mb : 4096;
    *heap = calloc(1, sizeof **heap);
    if (*heap == NULL)
        return NULL;
    (*heap)->cap = (mb * 2 + 16) << 20;
    lua_State *L = lua_newstate(heap_alloc, *heap);
    if (L != NULL)
        return L;
    free(*heap);
    *heap = NULL;
    return luaL_newstate();
}

size_t sl_lua_vm_heap_bytes(const struct sl_lua_vm *vm)
{
    if (vm->heap != NULL)
        return vm->heap->used;
    if (vm->L == NULL)
        return 0;
    return ((size_t)lua_gc(vm->L, LUA_GCCOUNT, 0) << 10) + (size_t)lua_gc(vm->L, LUA_GCCOUNTB, 0);
}

bool sl_lua_vm_gc_near_limit(const struct sl_lua_vm *vm)
{
    if (vm->mem_near == SIZE_MAX)
        return false;
    size_t bytes = (size_t)lua_gc(vm->L, LUA_GCCOUNT, 0) << 10;
    return bytes + (size_t)lua_gc(vm->L, LUA_GCCOUNTB, 0) >= vm->mem_near;
}

/* --- opening a VM ------------------------------------------------------------------ */

struct open_args {
    const struct sl_lua_source *src;
    const struct sl_plugin_conf *conf;
    const char *config_file;
    struct sl_lua_vm *vm;
    struct sl_lua_meta *meta;
    char *err;
    size_t errlen;
    bool rejected;              /* host.load said no: err holds its message */
    int dispatch_ref, check_mem_ref, ctx_slots_ref; /* the host's (registry) */
    int hooks_ref;              /* host.hooks(): phase -> hook caller (registry) */
};

static void set_string(lua_State *L, const char *key, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

static void set_number(lua_State *L, const char *key, lua_Number value)
{
    lua_pushnumber(L, value);
    lua_setfield(L, -2, key);
}

/* The spec table host.load takes (see lua/sluice/plugin_host.lua). The
 * host module is at index 1. */
static void push_spec(lua_State *L, const struct open_args *a)
{
    const struct sl_plugin_conf *conf = a->conf;
    lua_createtable(L, 0, 10);
    lua_pushlstring(L, a->src->text, a->src->len);
    lua_setfield(L, -2, "source");
    set_string(L, "file", a->src->path);
    set_string(L, "name", conf->name);
    set_string(L, "config_file", a->config_file);
    lua_pushboolean(L, conf->has_priority);
    lua_setfield(L, -2, "has_priority");
    if (conf->timeout_ms > 0)
        set_number(L, "timeout_ms", conf->timeout_ms);
    if (conf->memory_limit_mb > 0)
        set_number(L, "memory_limit_mb", conf->memory_limit_mb);

    lua_getfield(L, 1, "null");
    int null_idx = lua_gettop(L);
    struct sl_value empty = { .kind = SL_VALUE_MAP, .line = conf->line, .col = conf->col };
    const struct sl_value *cfg = conf->config.kind == SL_VALUE_MAP ? &conf->config : &empty;
    push_value(L, cfg, null_idx);
    if (cfg->line == 0) {       /* config absent: point at the plugin entry */
        lua_pushinteger(L, conf->line);
        lua_setfield(L, -2, "line");
        lua_pushinteger(L, conf->col);
        lua_setfield(L, -2, "col");
    }
    lua_setfield(L, null_idx - 1, "positions");
    lua_setfield(L, null_idx - 1, "config");
    lua_pop(L, 1);              /* null */
}

static char *dup_field(lua_State *L, int idx, const char *key)
{
    lua_getfield(L, idx, key);
    size_t n;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    char *copy = NULL;
    if (s != NULL && (copy = malloc(n + 1)) != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    lua_pop(L, 1);
    return copy;
}

static lua_Number number_field(lua_State *L, int idx, const char *key, bool *present)
{
    lua_getfield(L, idx, key);
    *present = lua_type(L, -1) == LUA_TNUMBER;
    lua_Number v = *present ? lua_tonumber(L, -1) : 0;
    lua_pop(L, 1);
    return v;
}

static void read_meta(lua_State *L, int idx, struct sl_lua_meta *m)
{
    bool present;
    memset(m, 0, sizeof *m);
    m->name = dup_field(L, idx, "name");
    m->version = dup_field(L, idx, "version");
    m->priority = (int)number_field(L, idx, "priority", &m->has_priority);
    m->phases = (uint32_t)number_field(L, idx, "phases", &present);
    m->body = (uint32_t)number_field(L, idx, "body", &present);
}

/* A diagnostic for performance work: with SLUICE_LUA_JIT_LOG=PREFIX,
 * each VM logs what the JIT does (LuaJIT's jit.v: traces compiled,
 * aborts and why, e.g. NYI) to PREFIX.<pid>.<n>, one file per VM (jit.v
 * truncates its file), or to stdout for "-" (jit.dump buffers: run under
 * stdbuf -oL); SLUICE_LUA_JIT_DUMP=OPTS logs with jit.dump and
 * those options instead ("tbirsm": IR, machine code...). Hooks that fall
 * back to the interpreter cost several times more. Host code only: the
 * sandbox keeps jit.* from plugins. Runs with package at -1 and LuaJIT's
 * own package.path, where jit/v.lua lives; a failure raises. */
static void jit_log(lua_State *L)
{
    static int seq;             /* VMs opened (any thread): file names */
    const char *prefix = getenv("SLUICE_LUA_JIT_LOG");
    if (prefix == NULL || prefix[0] == '\0')
        return;
    const char *dump = getenv("SLUICE_LUA_JIT_DUMP");
    int n = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    lua_getglobal(L, "require");
    lua_pushstring(L, dump != NULL ? "jit.dump" : "jit.v");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "start");
    int nargs = 1;
    if (dump != NULL) {
        /* jit.dump loads the disassembler (register names, machine code)
         * later, when package.path no longer leads to it: now. */
        if (luaL_loadstring(L, "pcall(require, 'jit.dis_' .. jit.arch)") == 0)
            lua_call(L, 0, 0);
        else
            lua_pop(L, 1);
        lua_pushstring(L, dump);
        nargs = 2;
    }
    if (strcmp(prefix, "-") == 0)
        lua_pushliteral(L, "-");            /* stdout, every VM */
    else
        lua_pushfstring(L, "%s.%d.%d", prefix, (int)getpid(), n);
    lua_call(L, nargs, 0);
    lua_pop(L, 1);
}

/* Everything that may raise (OOM, a broken Lua directory) runs here,
 * under lua_cpcall. */
static int open_protected(lua_State *L)
{
    struct open_args *a = lua_touserdata(L, 1);
    lua_settop(L, 0);
    luaL_openlibs(L);
    /* Setting the VM up runs in the interpreter; the host turns the JIT
     * on for the plugin's own code, and it is on from here on once the
     * VM is ready (see with_jit in lua/sluice/plugin_host.lua). */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);

    lua_getglobal(L, "package");
    jit_log(L);                 /* before package.path loses LuaJIT's own directory */
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua", lua_dir, lua_dir);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "sluice.plugin_host");
    lua_call(L, 1, 1);          /* host at 1 */
    if (!lua_istable(L, 1))
        return luaL_error(L, "sluice.plugin_host did not return a table");

    lua_getfield(L, 1, "load");
    push_spec(L, a);
    lua_call(L, 1, 2);          /* meta, err at 2, 3 */
    if (lua_isnil(L, 2)) {
        const char *msg = lua_tostring(L, 3);
        snprintf(a->err, a->errlen, "%s", msg ? msg : "plugin rejected");
        a->rejected = true;
        return 0;
    }
    if (a->meta != NULL)
        read_meta(L, 2, a->meta);

    lua_getfield(L, 1, "ctx_phases");
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "sluice.plugin_host lacks ctx_phases");
    lua_call(L, 0, 1);
    a->vm->ctx_phases = (uint32_t)lua_tonumber(L, -1);
    lua_getfield(L, 1, "hooks");
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "sluice.plugin_host lacks hooks");
    lua_call(L, 0, 1);
    if (!lua_istable(L, -1))
        return luaL_error(L, "sluice.plugin_host: hooks() did not return a table");
    a->hooks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, 1, "dispatch");
    lua_getfield(L, 1, "check_memory");
    lua_getfield(L, 1, "ctx_slots");
    if (!lua_isfunction(L, -3) || !lua_isfunction(L, -2) || !lua_istable(L, -1))
        return luaL_error(L, "sluice.plugin_host lacks dispatch, check_memory or ctx_slots");
    /* sl_lua_vm_open moves them to the bottom of the stack from here. */
    a->ctx_slots_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    a->check_mem_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    a->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_ON);
    /* Loading (the sandbox, the instrumenting lexer, the schema) leaves
     * garbage: collect it now, once, rather than in steps paid by the
     * first requests (a full cycle over a fresh VM's heap, about a
     * million instructions, at an unpredictable request). */
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}

int sl_lua_vm_open(struct sl_lua_vm *vm, const struct sl_lua_source *src,
                   const struct sl_plugin_conf *conf, const char *config_file,
                   struct sl_lua_meta *meta, char *err, size_t errlen)
{
    memset(vm, 0, sizeof *vm);
    if (meta != NULL)
        memset(meta, 0, sizeof *meta);
    if (!lua_dir_found) {
        snprintf(err, errlen, "%s: the Lua plugin support is not initialised (sl_lua_init)",
                 src->path);
        return -1;
    }
    struct sl_lua_heap *heap;
    lua_State *L = new_state(conf, &heap);
    if (L == NULL) {
        snprintf(err, errlen, "%s: cannot create a Lua VM: out of memory", src->path);
        return -1;
    }
    atomic_fetch_add(&vms_created, 1);
    struct open_args a = {
        .src = src, .conf = conf, .config_file = config_file, .vm = vm, .meta = meta,
        .err = err, .errlen = errlen,
    };
    /* Loading runs plugin code (the chunk, init): no request is current. */
    struct sl_conn *prev = sl_ffi_enter(NULL);
    int rc = lua_cpcall(L, open_protected, &a);
    sl_ffi_leave(prev);
    if (rc != 0) {
        const char *msg = lua_tostring(L, -1);
        snprintf(err, errlen, "%s: cannot load the plugin: %s", src->path,
                 rc == LUA_ERRMEM ? "out of memory" : msg ? msg : "error");
    }
    if (rc != 0 || a.rejected) {
        if (meta != NULL)
            sl_lua_meta_fini(meta);
        lua_close(L);
        atomic_fetch_add(&vms_closed, 1);
        free(heap);
        memset(vm, 0, sizeof *vm);
        return -1;
    }
    /* What the host gives C stays at the bottom of the stack, where every
     * call finds it (SL_LUA_VM_DISPATCH ...). A fresh state has
     * LUA_MINSTACK free slots: no allocation, nothing can raise. */
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a.dispatch_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a.check_mem_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a.ctx_slots_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a.hooks_ref);
    for (int ph = 0; ph < SL_PHASE_COUNT; ph++)
        lua_rawgeti(L, SL_LUA_VM_HOOK0, ph);    /* hooks[ph] at SL_LUA_VM_HOOK0 + 1 + ph */
    lua_remove(L, SL_LUA_VM_HOOK0);             /* the table: hooks[ph] now at HOOK0 + ph */
    vm->L = L;
    vm->heap = heap;
    /* The host's exact check (collectgarbage "count", after a full
     * collection) decides; this only needs to be low enough never to miss
     * it: 64 KiB under the limit. */
    vm->mem_near = SIZE_MAX;
    if (conf->memory_limit_mb > 0)
        vm->mem_near = ((size_t)conf->memory_limit_mb << 20) - ((size_t)64 << 10);
    return 0;
}

void sl_lua_vm_close(struct sl_lua_vm *vm)
{
    if (vm->L != NULL) {
        lua_close(vm->L);
        atomic_fetch_add(&vms_closed, 1);
    }
    free(vm->heap);
    memset(vm, 0, sizeof *vm);
}

void sl_lua_vm_counts(uint64_t *created, uint64_t *closed)
{
    /* closed first (sequentially consistent): a VM closed between the two
     * loads shows as open, never as closed without having been created. */
    uint64_t c = atomic_load(&vms_closed);
    *created = atomic_load(&vms_created);
    *closed = c;
}

void sl_lua_meta_fini(struct sl_lua_meta *meta)
{
    free(meta->name);
    free(meta->version);
    memset(meta, 0, sizeof *meta);
}
