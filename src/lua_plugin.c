#include "lua_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "conn.h"
#include "hash.h"
#include "log.h"
#include "lua_ffi.h"
#include "lua_vm.h"
#include "plugin_find.h"
#include "worker.h"

#define SOURCE_MAX  (16u << 20)     /* a bigger plugin file is refused */
#define RETRY_MS    1000            /* a worker VM that failed to open is retried after this */

/* Which live requests of a worker have a ctx slot in its VM of a plugin
 * (host.ctx_slots in lua/sluice/plugin_host.lua): request key -> slot, a
 * small integer. Only requests that ran a hook reading its ctx are here,
 * so request_done does nothing for the others, and the Lua side indexes
 * an array instead of a hash keyed by ever-growing request numbers.
 * Open addressing, linear probing, deletion by backward shift; a cell
 * holds key + 1, 0 when free. */
struct ctx_map {
    uint64_t *keys;
    int *slots;
    size_t mask;                    /* cells - 1; the arrays are NULL until first use */
    size_t n;                       /* requests in the map */
    int *spare;                     /* slots given back, reused first */
    size_t nspare, sparecap;
    int next;                       /* the highest slot given out so far (slots start at 1) */
};

/* One worker's VM of an instance; only that worker touches it. */
struct lua_slot {
    struct sl_lua_vm vm;
    const struct sl_plugin *plugin; /* borrowed: the instance (for messages) */
    int worker;                     /* this slot's worker */
    struct ctx_map ctx;
    int64_t retry_at_ms;            /* after a failed open: not before this */
    char *failure;                  /* owned: why the last open failed */
};

/* What sl_lua_plugin_load read, shared read-only by the slots. */
struct lua_impl {
    char *text;                     /* owned: the file's content, NUL-terminated */
    size_t len;
    char *config_file;              /* owned; NULL when none */
    uint64_t hash;                  /* FNV-1a of text: reloads compare it */
    struct lua_slot *slots;         /* owned: one per worker */
    size_t nslots;
    uint32_t ctx_phases;            /* as the validating VM found them (sl_lua_vm) */
};

/* sl_lua_kind without request_done, for instances whose hooks never read
 * their ctx argument (defined at the end). */
static const struct sl_plugin_kind lua_kind_no_ctx;

/* --- reading the file ------------------------------------------------------------ */

/* Reads path whole. Returns the text (owned, NUL-terminated) or NULL with
 * a message. */
static char *read_source(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    } else if ((uint64_t)st.st_size > SOURCE_MAX) {
        snprintf(err, errlen, "%s: larger than %u MiB", path, SOURCE_MAX >> 20);
    } else if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
    } else {
        size_t n = 0, want = (size_t)st.st_size;
        while (n < want) {
            ssize_t r = read(fd, text + n, want - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                snprintf(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "changed while read");
                free(text);
                text = NULL;
                break;
            }
            n += (size_t)r;
        }
        if (text != NULL) {
            text[n] = '\0';
            *len = n;
        }
    }
    close(fd);
    return text;
}

/* --- loading ----------------------------------------------------------------------- */

static void ctx_map_fini(struct ctx_map *m)
{
    free(m->keys);
    free(m->slots);
    free(m->spare);
    memset(m, 0, sizeof *m);
}

static void impl_free(struct lua_impl *im)
{
    if (im == NULL)
        return;
    for (size_t i = 0; i < im->nslots; i++) {
        sl_lua_vm_close(&im->slots[i].vm);
        ctx_map_fini(&im->slots[i].ctx);
        free(im->slots[i].failure);
    }
    free(im->slots);
    free(im->text);
    free(im->config_file);
    free(im);
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Reads path and loads it in a throwaway VM, which validates everything.
 * Returns the impl (without slots) and fills meta, or NULL with err. */
static struct lua_impl *impl_load(const char *path, const struct sl_plugin_conf *conf,
                                  const char *config_file, struct sl_lua_meta *meta,
                                  char *err, size_t errlen)
{
    struct lua_impl *im = calloc(1, sizeof *im);
    if (im == NULL) {
        snprintf(err, errlen, "plugin %s: out of memory", conf->name);
        return NULL;
    }
    im->text = read_source(path, &im->len, err, errlen);
    if (im->text == NULL) {
        impl_free(im);
        return NULL;
    }
    im->hash = sl_hash_fnv1a64(im->text, im->len);
    struct sl_lua_source src = { .path = path, .text = im->text, .len = im->len };
    struct sl_lua_vm vm;
    if (sl_lua_vm_open(&vm, &src, conf, config_file, meta, err, errlen) < 0) {
        impl_free(im);
        return NULL;
    }
    im->ctx_phases = vm.ctx_phases;
    sl_lua_vm_close(&vm);
    return im;
}

/* The plugin around im (taking it over, also on failure), or NULL on OOM. */
static struct sl_plugin *plugin_new(const struct sl_plugin_conf *conf, const char *path,
                                    const char *config_file, struct lua_impl *im,
                                    struct sl_lua_meta *meta)
{
    size_t nworkers = (size_t)sl_lua_nworkers();
    struct sl_plugin *p = calloc(1, sizeof *p);
    if (p == NULL) {
        impl_free(im);
        return NULL;
    }
    /* Only hooks that read their ctx leave per-request state behind: an
     * instance without any has nothing to do when a request ends, and its
     * kind says so (no request_done call per request). */
    p->kind = im->ctx_phases != 0 ? &sl_lua_kind : &lua_kind_no_ctx;
    p->impl = im;
    p->conf = conf;
    p->on_error = conf->on_error;
    p->priority = conf->has_priority ? conf->priority : meta->priority;
    p->phases = meta->phases;
    p->body = meta->body;
    p->name = xstrdup(conf->name);
    p->version = meta->version ? xstrdup(meta->version) : strdup("0");
    p->source = strdup(path);
    im->config_file = xstrdup(config_file);
    im->slots = calloc(nworkers, sizeof *im->slots);
    im->nslots = nworkers;
    if (p->name == NULL || p->version == NULL || p->source == NULL || im->slots == NULL ||
        (config_file != NULL && im->config_file == NULL)) {
        sl_plugin_free(p);          /* frees im through the kind */
        return NULL;
    }
    for (size_t i = 0; i < nworkers; i++) {
        im->slots[i].plugin = p;
        im->slots[i].worker = (int)i;
    }
    return p;
}

int sl_lua_plugin_load(const struct sl_plugin_conf *conf, const char *path,
                       const char *config_file, struct sl_plugin **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (sl_lua_dir() == NULL && sl_lua_init(sl_lua_nworkers(), err, errlen) < 0)
        return -1;
    struct sl_lua_meta meta;
    struct lua_impl *im = impl_load(path, conf, config_file, &meta, err, errlen);
    if (im == NULL)
        return -1;
    *out = plugin_new(conf, path, config_file, im, &meta);
    sl_lua_meta_fini(&meta);
    if (*out == NULL) {
        snprintf(err, errlen, "plugin %s: out of memory", conf->name);
        return -1;
    }
    return 0;
}

/* --- per-worker VMs ------------------------------------------------------------- */

static int open_slot(struct sl_plugin *p, struct lua_slot *s, char *err, size_t errlen)
{
    struct lua_impl *im = p->impl;
    struct sl_lua_source src = { .path = p->source, .text = im->text, .len = im->len };
    ctx_map_fini(&s->ctx);
    if (sl_lua_vm_open(&s->vm, &src, p->conf, im->config_file, NULL, err, errlen) < 0) {
        free(s->failure);
        s->failure = strdup(err);
        return -1;
    }
    if (s->vm.ctx_phases != im->ctx_phases) {
        /* The same text in the same LuaJIT reads the same: never seen.
         * Refused, since the instance's kind was chosen on the first. */
        sl_lua_vm_close(&s->vm);
        snprintf(err, errlen, "plugin %s: its hooks' use of ctx differs between VMs", p->name);
        free(s->failure);
        s->failure = strdup(err);
        return -1;
    }
    free(s->failure);
    s->failure = NULL;
    return 0;
}

/* This worker's slot, its VM open; NULL with a message in err. */
static struct lua_slot *worker_slot(struct sl_plugin *p, struct sl_conn *c, char *err,
                                    size_t errlen)
{
    struct lua_impl *im = p->impl;
    size_t id = (size_t)c->w->id;
    if (id >= im->nslots) {
        snprintf(err, errlen, "worker %zu has no Lua VM slot (sl_lua_init was told %zu workers)",
                 id, im->nslots);
        return NULL;
    }
    struct lua_slot *s = &im->slots[id];
    if (s->vm.L != NULL)
        return s;
    /* A VM that fails to open (init raising, out of memory) would fail
     * the same way on every request: try again at most once a second. */
    int64_t now = sl_worker_now_ms(c->w);
    if (s->failure != NULL && now < s->retry_at_ms) {
        snprintf(err, errlen, "VM unavailable: %s", s->failure);
        return NULL;
    }
    if (open_slot(p, s, err, errlen) < 0) {
        s->retry_at_ms = now + RETRY_MS;
        return NULL;
    }
    SL_DEBUG("plugin %s: Lua VM created on worker %zu", p->name, id);
    return s;
}

int sl_lua_plugin_prepare(struct sl_plugin *p, int worker, char *err, size_t errlen)
{
    struct lua_impl *im = p->impl;
    if (worker < 0 || (size_t)worker >= im->nslots) {
        snprintf(err, errlen, "plugin %s: no VM slot for worker %d", p->name, worker);
        return -1;
    }
    struct lua_slot *s = &im->slots[worker];
    return s->vm.L != NULL ? 0 : open_slot(p, s, err, errlen);
}

/* 8 hex digits, loaded little-endian (the first digit in the low byte),
 * as a number: per byte (b & 15) + 9 * (b >> 6) is a digit's value
 * ('0'-'9', 'a'-'f', 'A'-'F'); then pairs, quads and octets of nibbles
 * are packed, the first digit most significant. */
static uint32_t hex8(uint64_t x)
{
    uint64_t n = (x & 0x0f0f0f0f0f0f0f0fu) + 9 * ((x >> 6) & 0x0101010101010101u);
    n = __builtin_bswap64(n);
    n = (n | n >> 4) & 0x00ff00ff00ff00ffu;
    n = (n | n >> 8) & 0x0000ffff0000ffffu;
    return (uint32_t)(n | n >> 16);
}

/* The key of a request in the ctx map. A request id is (worker << 48) ^
 * serial in 16 lowercase hex digits (request.c): its low 48 bits are the
 * worker's request serial, unique among the worker's requests (a VM only
 * sees its own worker's). Only hooks that read their ctx argument need it
 * (sl_lua_vm.ctx_phases), and request_done when such a hook ran. */
static uint64_t request_key(const struct sl_conn *c)
{
    _Static_assert(sizeof c->req.id >= 16, "request ids have 16 hex digits");
    uint64_t hi, lo;
    memcpy(&hi, c->req.id, 8);
    memcpy(&lo, c->req.id + 8, 8);
    return ((uint64_t)(hex8(hi) & 0xffff) << 32) | hex8(lo);
}

static void copy_message(lua_State *L, int idx, const char *fallback, char *err, size_t errlen)
{
    const char *msg = lua_tostring(L, idx);
    snprintf(err, errlen, "%s", msg ? msg : fallback);
}

/* Host codes of a failed hook: see host.dispatch in lua/sluice/plugin_host.lua. */
enum { HOST_ERROR = -1, HOST_BUDGET = -2 };

/* --- ctx slots ------------------------------------------------------------------- */

static size_t ctx_cell(uint64_t key, size_t mask)
{
    return (size_t)((key * 0x9e3779b97f4a7c15u) >> 32) & mask;
}

/* Doubles the map (or makes its first 16 cells). Returns 0, or -1 on OOM
 * with the map unchanged. */
static int ctx_map_grow(struct ctx_map *m)
{
    size_t cells = m->keys ? (m->mask + 1) * 2 : 16;
    uint64_t *keys = calloc(cells, sizeof *keys);
    int *slots = malloc(cells * sizeof *slots);
    if (keys == NULL || slots == NULL) {
        free(keys);
        free(slots);
        return -1;
    }
    for (size_t i = 0; m->keys != NULL && i <= m->mask; i++) {
        if (m->keys[i] == 0)
            continue;
        size_t j = ctx_cell(m->keys[i], cells - 1);
        while (keys[j] != 0)
            j = (j + 1) & (cells - 1);
        keys[j] = m->keys[i];
        slots[j] = m->slots[i];
    }
    free(m->keys);
    free(m->slots);
    m->keys = keys;
    m->slots = slots;
    m->mask = cells - 1;
    return 0;
}

/* The slot of request key, given out now if it has none. 0 on OOM. */
static int ctx_slot_of(struct ctx_map *m, uint64_t key)
{
    uint64_t k = key + 1;
    if (m->keys != NULL) {
        for (size_t i = ctx_cell(k, m->mask); m->keys[i] != 0; i = (i + 1) & m->mask)
            if (m->keys[i] == k)
                return m->slots[i];
    }
    if (((m->n + 1) * 2 > m->mask + 1 || m->keys == NULL) && ctx_map_grow(m) < 0)
        return 0;
    int slot = m->nspare > 0 ? m->spare[--m->nspare] : ++m->next;
    size_t i = ctx_cell(k, m->mask);
    while (m->keys[i] != 0)
        i = (i + 1) & m->mask;
    m->keys[i] = k;
    m->slots[i] = slot;
    m->n++;
    return slot;
}

/* Removes request key; returns its slot, 0 when it had none. */
static int ctx_slot_take(struct ctx_map *m, uint64_t key)
{
    uint64_t k = key + 1;
    size_t i = ctx_cell(k, m->mask);
    while (m->keys[i] != k) {
        if (m->keys[i] == 0)
            return 0;
        i = (i + 1) & m->mask;
    }
    int slot = m->slots[i];
    /* Backward shift: pull later cells of the run into the hole when
     * their home cell does not lie (cyclically) after the hole. */
    for (size_t j = (i + 1) & m->mask; m->keys[j] != 0; j = (j + 1) & m->mask) {
        size_t home = ctx_cell(m->keys[j], m->mask);
        if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
            m->keys[i] = m->keys[j];
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->n--;
    /* Give the slot back; if that needs memory we lack, it is just not
     * reused (slots are numbers: nothing leaks but one array cell). */
    if (m->nspare == m->sparecap) {
        size_t cap = m->sparecap ? m->sparecap * 2 : 16;
        int *spare = realloc(m->spare, cap * sizeof *spare);
        if (spare == NULL)
            return slot;
        m->spare = spare;
        m->sparecap = cap;
    }
    m->spare[m->nspare++] = slot;
    return slot;
}

/* A hook that continued or responded may have left the VM over its
 * memory limit in straight-line code, which passes no budget check: the
 * host looks (after a full collection) when the heap is near the limit.
 * Returns true, with the message in err, when it is over. */
static bool over_memory_at_return(struct sl_lua_vm *vm, char *err, size_t errlen)
{
    if (!sl_lua_vm_heap_near_limit(vm))
        return false;
    lua_State *L = vm->L;
    lua_pushvalue(L, SL_LUA_VM_CHECK_MEM);
    int rc = lua_pcall(L, 0, 1, 0);
    bool over = rc != 0 || lua_isstring(L, -1);
    if (rc == LUA_ERRMEM)
        snprintf(err, errlen, "budget exceeded: memory: the VM's heap is full");
    else if (over)
        copy_message(L, -1, "budget exceeded: memory", err, errlen);
    lua_settop(L, SL_LUA_VM_TOP);
    return over;
}

/* A hook of s's VM was stopped at its memory limit. What the plugin keeps
 * (a module-level table that grows per request) would get every later
 * call killed too, and the kill unwound the hook mid-change: the VM is
 * closed here, and the worker's next call of the instance opens a fresh
 * one (worker_slot), as on first use. No Lua frame of the VM is live (the
 * hook's pcall returned). The ctx tables of the worker's requests in
 * flight went with it: their ctx slots are forgotten too, so their later
 * hooks start from an empty ctx in the new VM, and request_done finds
 * nothing of theirs to drop. */
static __attribute__((noinline, cold)) void recycle_after_memory_kill(struct lua_slot *s)
{
    size_t bytes = sl_lua_vm_heap_bytes(&s->vm);
    SL_WARN("plugin %s: worker %d: Lua VM closed after a memory kill (%.1f MiB in use); "
            "the next call opens a fresh one", s->plugin->name, s->worker,
            (double)bytes / (1 << 20));
    sl_lua_vm_close(&s->vm);
    ctx_map_fini(&s->ctx);
}

/* What a hook call answered when it was not a plain "continue" with the
 * heap well under its limit: rc from lua_pcall, and the hook caller's
 * results on the stack above SL_LUA_VM_TOP (one: a local reply; code,
 * message: failed; code, message, true: stopped at its memory limit).
 * Leaves the stack at SL_LUA_VM_TOP, or the VM closed after a memory
 * kill. */
static __attribute__((noinline)) int hook_answer(struct lua_slot *s, int rc, char *err,
                                                 size_t errlen, bool *budget)
{
    lua_State *L = s->vm.L;
    int nres = lua_gettop(L) - SL_LUA_VM_TOP;
    int action;
    bool memory;
    if (rc != 0) {
        /* Only the host itself can fail here (it catches plugin errors):
         * out of memory outside a budget check, mostly. */
        memory = rc == LUA_ERRMEM;
        if (memory)
            snprintf(err, errlen, "budget exceeded: memory: the VM's heap is full");
        else
            copy_message(L, -1, "error in the plugin host", err, errlen);
        *budget = memory;
        action = SL_ACTION_ERROR;
    } else if (nres >= 2) {
        /* code, message[, memory] above what the host gave C */
        int code = (int)lua_tointeger(L, SL_LUA_VM_TOP + 1);
        *budget = code == HOST_BUDGET;
        memory = *budget && nres >= 3 && lua_toboolean(L, SL_LUA_VM_TOP + 3);
        copy_message(L, SL_LUA_VM_TOP + 2, *budget ? "budget exceeded" : "error", err, errlen);
        action = SL_ACTION_ERROR;
    } else {
        action = nres == 1 ? SL_ACTION_RESPOND : SL_ACTION_CONTINUE;
        lua_settop(L, SL_LUA_VM_TOP);
        memory = over_memory_at_return(&s->vm, err, errlen);
        if (memory) {
            *budget = true;
            action = SL_ACTION_ERROR;
        }
    }
    lua_settop(L, SL_LUA_VM_TOP);
    if (memory)
        recycle_after_memory_kill(s);
    return action;
}

/* A hook call that needs more than the hot path gives: the worker's VM
 * still to open (or its slot missing), or a hook that reads its ctx
 * argument and so takes the request's ctx slot. */
static __attribute__((noinline)) int call_with_setup(struct sl_plugin *p, enum sl_phase phase,
                                                     struct sl_conn *c, char *err,
                                                     size_t errlen, bool *budget)
{
    struct lua_slot *s = worker_slot(p, c, err, errlen);
    if (s == NULL)
        return SL_ACTION_ERROR;
    lua_State *L = s->vm.L;
    int nargs = 0;
    lua_pushvalue(L, SL_LUA_VM_HOOK0 + (int)phase);
    if (s->vm.ctx_phases & (1u << phase)) {
        int slot = ctx_slot_of(&s->ctx, request_key(c));
        if (slot == 0) {
            lua_settop(L, SL_LUA_VM_TOP);
            snprintf(err, errlen, "out of memory (the request's ctx slot)");
            return SL_ACTION_ERROR;
        }
        lua_pushinteger(L, slot);
        nargs = 1;
    }
    struct sl_conn *prev = sl_ffi_enter(c);
    int rc = lua_pcall(L, nargs, LUA_MULTRET, 0);
    sl_ffi_leave(prev);
    if (rc == 0 && lua_gettop(L) == SL_LUA_VM_TOP && !sl_lua_vm_heap_near_limit(&s->vm))
        return SL_ACTION_CONTINUE;
    return hook_answer(s, rc, err, errlen, budget);
}

/* The hot path: one C->Lua call per hook. The phase's hook caller sits
 * at a fixed stack slot, bound to the hook (host.hooks() in
 * lua/sluice/plugin_host.lua). The answer is the number of results,
 * which costs no conversion to read: none in the common case (continue),
 * so that nothing is left to pop either. Everything else (opening the
 * VM, the ctx slot that only a hook reading its ctx gets, any other
 * answer, a heap near its limit) is out of line, in the two functions
 * above: a short hook costs the checks, the call and one compare here. */
static int lua_plugin_call(struct sl_plugin *p, enum sl_phase phase, struct sl_conn *c,
                           char *err, size_t errlen, bool *budget)
{
    struct lua_impl *im = p->impl;
    size_t id = (size_t)c->w->id;
    if (id >= im->nslots)
        return call_with_setup(p, phase, c, err, errlen, budget);
    struct lua_slot *s = &im->slots[id];
    lua_State *L = s->vm.L;
    if (L == NULL || (s->vm.ctx_phases & (1u << phase)) != 0)
        return call_with_setup(p, phase, c, err, errlen, budget);
    lua_pushvalue(L, SL_LUA_VM_HOOK0 + (int)phase);
    struct sl_conn *prev = sl_ffi_enter(c);
    int rc = lua_pcall(L, 0, LUA_MULTRET, 0);
    sl_ffi_leave(prev);
    if (rc == 0 && lua_gettop(L) == SL_LUA_VM_TOP && !sl_lua_vm_heap_near_limit(&s->vm))
        return SL_ACTION_CONTINUE;
    return hook_answer(s, rc, err, errlen, budget);
}

/* Runs for every plugin of the chain at the end of every request: free
 * unless a hook of the request read its ctx. Drops the request's ctx
 * table from host.ctx_slots directly: no call into Lua. */
static void lua_plugin_request_done(struct sl_plugin *p, struct sl_conn *c)
{
    struct lua_impl *im = p->impl;
    size_t id = (size_t)c->w->id;
    if (id >= im->nslots || im->slots[id].ctx.n == 0)
        return;
    struct lua_slot *s = &im->slots[id];
    int slot = ctx_slot_take(&s->ctx, request_key(c));
    lua_State *L = s->vm.L;
    if (slot == 0 || L == NULL)
        return;
    /* Assigning nil to a key that is there allocates nothing and cannot
     * raise; a slot the host never filled (it failed first) is left
     * alone, since creating the key could. */
    lua_rawgeti(L, SL_LUA_VM_CTX_SLOTS, slot);
    bool present = !lua_isnil(L, -1);
    lua_settop(L, SL_LUA_VM_TOP);
    if (present) {
        lua_pushnil(L);
        lua_rawseti(L, SL_LUA_VM_CTX_SLOTS, slot);
    }
}

int sl_lua_plugin_has_changed(const struct sl_plugin *p)
{
    const struct lua_impl *im = p->impl;
    char err[256];
    size_t len = 0;
    char *text = read_source(p->source, &len, err, sizeof err);
    if (text == NULL)
        return 1;
    int changed = len != im->len || sl_hash_fnv1a64(text, len) != im->hash || memcmp(text, im->text, len) != 0;
    free(text);
    return changed;
}

/* The kind's has_changed: the instance's name must still lead to the same
 * file through cfg's plugin_paths (a file added earlier in the search
 * order would shadow it), and that file must hold the same text. */
static int lua_plugin_has_changed(const struct sl_plugin *p, const struct sl_config *cfg)
{
    const struct lua_impl *im = p->impl;
    struct sl_plugin_file f;
    char why[512];
    if (sl_plugin_find(p->conf, (const char *const *)cfg->plugin_paths, cfg->nplugin_paths,
                       im->config_file, &f, why, sizeof why) != 0 ||
        strcmp(f.path, p->source) != 0)
        return 1;
    return sl_lua_plugin_has_changed(p);
}

int sl_lua_plugin_live_requests(struct sl_plugin *p, int worker)
{
    struct lua_impl *im = p->impl;
    if (worker < 0 || (size_t)worker >= im->nslots || im->slots[worker].vm.L == NULL)
        return 0;
    lua_State *L = im->slots[worker].vm.L;
    int n = 0;
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_getfield(L, -1, "sluice.plugin_host");
    lua_getfield(L, -1, "live");
    if (lua_isfunction(L, -1) && lua_pcall(L, 0, 1, 0) == 0)
        n = (int)lua_tointeger(L, -1);
    lua_settop(L, SL_LUA_VM_TOP);
    return n;
}

/* Runs when the generation goes: no worker uses the instance any more, so
 * whichever thread drops the last reference may close every VM. */
static void lua_plugin_release(struct sl_plugin *p)
{
    impl_free(p->impl);
    p->impl = NULL;
}

/* The worker retired this instance's generation: close its VM there, on
 * its own thread, rather than wherever the generation's last reference
 * goes. No request of that generation runs on the worker any more, so the
 * slot is not reopened. */
static void lua_plugin_worker_release(struct sl_plugin *p, int worker)
{
    struct lua_impl *im = p->impl;
    if (worker < 0 || (size_t)worker >= im->nslots)
        return;
    struct lua_slot *s = &im->slots[worker];
    sl_lua_vm_close(&s->vm);
    ctx_map_fini(&s->ctx);
    free(s->failure);
    s->failure = NULL;
}

const struct sl_plugin_kind sl_lua_kind = {
    .name = "lua",
    .call = lua_plugin_call,
    .release = lua_plugin_release,
    .request_done = lua_plugin_request_done,
    .worker_release = lua_plugin_worker_release,
    .has_changed = lua_plugin_has_changed,
};

static const struct sl_plugin_kind lua_kind_no_ctx = {
    .name = "lua",
    .call = lua_plugin_call,
    .release = lua_plugin_release,
    .worker_release = lua_plugin_worker_release,
    .has_changed = lua_plugin_has_changed,
};
