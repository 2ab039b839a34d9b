/* Lua plugin VMs: creating and closing the LuaJIT states that run Lua
 * plugins. One VM holds one plugin instance (so memory limits are per
 * plugin); each worker gets its own VM of each instance (see
 * lua_plugin.c), and loading uses a throwaway one to validate.
 *
 * A VM runs the trusted Lua API from the Lua directory (lua/ in the
 * source tree): lua/sluice/plugin_host.lua loads the plugin's text into a
 * sandbox, checks it and its config, and dispatches hook calls. The
 * directory is, in this order: $SLUICE_LUA_PATH (a directory holding
 * sluice/plugin_host.lua); next to the binary, ../lua and ../../lua
 * (build/sluice and build/asan/sluice in the source tree), then
 * ../share/sluice/lua (an installed sluice); then SL_LUA_DIR when it was
 * defined at compile time. */
#ifndef SL_LUA_VM_H
#define SL_LUA_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config-t.h"
#include "plugin.h"

struct lua_State;

/* Process-wide setup, once from the main thread before any plugin loads:
 * finds the Lua directory and records the number of workers (each Lua
 * plugin gets that many VM slots). nworkers <= 0 means one per CPU.
 * Returns 0, or -1 with a message in err (no Lua directory found). */
int sl_lua_init(int nworkers, char *err, size_t errlen);

/* The Lua directory found by sl_lua_init (borrowed), or NULL before. */
const char *sl_lua_dir(void);

/* The number of workers given to sl_lua_init. */
int sl_lua_nworkers(void);

/* A plugin's code, read once at load and shared (read-only) by every VM
 * of the instance. */
struct sl_lua_source {
    const char *path;           /* the file, as found (for messages) */
    const char *text;
    size_t len;
};

/* What a plugin file declares; filled by sl_lua_vm_open. */
struct sl_lua_meta {
    char *name;                 /* owned */
    char *version;              /* owned; NULL when the plugin gives none */
    bool has_priority;
    int priority;
    uint32_t phases;            /* bit (1 << phase) per hook */
    uint32_t body;              /* 1 request body, 2 response body */
};

/* Where an open VM keeps the host's functions: at the bottom of its main
 * thread's stack, for good (a call pushes above them and pops back to
 * SL_LUA_VM_TOP). See lua/sluice/plugin_host.lua. */
#define SL_LUA_VM_DISPATCH  1   /* host.dispatch(phase[, slot]) -> code[, message] */
#define SL_LUA_VM_CHECK_MEM 2   /* host.check_memory() -> nil, or the kill message */
#define SL_LUA_VM_CTX_SLOTS 3   /* host.ctx_slots: slot -> a request's ctx table */
#define SL_LUA_VM_HOOK0     4   /* + phase: host.hooks()[phase]([slot]); nil when
                                   the plugin has no such hook. Nothing returned:
                                   continue; 1: local reply; code, message: failed */
#define SL_LUA_VM_TOP       (SL_LUA_VM_HOOK0 + SL_PHASE_COUNT - 1)

/* The counting allocator's state. Only the thread running the VM
 * allocates in it: plain counters. */
struct sl_lua_heap {
    size_t used;                /* bytes LuaJIT holds */
    size_t cap;                 /* the hard stop: allocations past it fail */
};

/* One open VM: the state, its heap accounting and what the host said
 * about the plugin's hooks. */
struct sl_lua_vm {
    struct lua_State *L;        /* owned; NULL when closed */
    struct sl_lua_heap *heap;   /* owned; NULL when LuaJIT refused our allocator */
    size_t mem_near;            /* heap bytes past which a hook's return is
                                   checked against memory_limit_mb; SIZE_MAX: none */
    uint32_t ctx_phases;        /* bit (1 << phase): that hook reads its ctx argument */
};

/* Creates a VM and loads the plugin into it. The VM allocates through a
 * counting allocator capped at twice conf->memory_limit_mb plus 16 MiB: a
 * hard stop behind the budget's sampled memory check (which kills a hook
 * at memory_limit_mb of live data), leaving room for the garbage a
 * collection cycle lets pile up. LuaJIT builds that refuse a custom
 * allocator (non-GC64) get luaL_newstate and no hard cap. It compiles src in the sandbox,
 * checks the returned table, validates conf->config against its schema
 * (messages carry config_file:line:col; config_file may be NULL) and runs
 * its init. Fills meta when not NULL (free it with sl_lua_meta_fini).
 * Returns 0, or -1 with every problem found in err, one per line. */
int sl_lua_vm_open(struct sl_lua_vm *vm, const struct sl_lua_source *src,
                   const struct sl_plugin_conf *conf, const char *config_file,
                   struct sl_lua_meta *meta, char *err, size_t errlen);

/* Closes the VM (no-op when closed). Any thread may close a VM that no
 * thread is using. */
void sl_lua_vm_close(struct sl_lua_vm *vm);

/* Bytes the VM's heap holds now: the counting allocator's count, or
 * LuaJIT's own without one; 0 when the VM is closed. */
size_t sl_lua_vm_heap_bytes(const struct sl_lua_vm *vm);

/* Without a counting allocator: LuaJIT's own count against mem_near. */
bool sl_lua_vm_gc_near_limit(const struct sl_lua_vm *vm);

/* Whether the heap may be over the plugin's memory_limit_mb, garbage
 * included: when it is, a hook that returned must be checked (host
 * check_memory, which collects first). The hot path asks after every
 * hook: inline, a compare. */
static inline bool sl_lua_vm_heap_near_limit(const struct sl_lua_vm *vm)
{
    if (vm->heap != NULL)
        return vm->heap->used >= vm->mem_near;
    return sl_lua_vm_gc_near_limit(vm);
}

/* Counts of Lua VMs since the process started: *created every state
 * sl_lua_vm_open made (including the throwaway ones that validate a plugin
 * while a generation is built, and those whose loading failed), *closed
 * every one closed again. created - closed is the number open now, for
 * leak checks, the SIGUSR1 status line and the admin API. A worker's VM
 * closed after a memory kill and opened again (lua_plugin.c) counts once
 * in each. Thread-safe; the two numbers are read one after the other, so
 * a VM closing meanwhile may show as still open. */
void sl_lua_vm_counts(uint64_t *created, uint64_t *closed);

/* Frees what sl_lua_vm_open put in meta. */
void sl_lua_meta_fini(struct sl_lua_meta *meta);

#endif
