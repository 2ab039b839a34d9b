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

#include "config-t.h"

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

struct sl_lua_heap;

/* One open VM: the state, its heap accounting and the registry references
 * of the host's call and done functions. */
struct sl_lua_vm {
    struct lua_State *L;        /* owned; NULL when closed */
    struct sl_lua_heap *heap;   /* owned; NULL when LuaJIT refused our allocator */
    int call_ref;
    int done_ref;
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

/* Bytes the VM's heap holds now (0 without a counting allocator). */
size_t sl_lua_vm_heap_bytes(const struct sl_lua_vm *vm);

/* Frees what sl_lua_vm_open put in meta. */
void sl_lua_meta_fini(struct sl_lua_meta *meta);

#endif
