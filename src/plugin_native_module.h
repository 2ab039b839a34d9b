/* The loaded copies of native plugin files (plugin_native.h says why
 * they are private copies): one per distinct content, named by its
 * SHA-256 in a directory of this process's own, shared by every instance
 * whose file has those bytes and counted; the last reference closes and
 * removes it. A process-wide registry under one lock, used when
 * generations are built and released, never on the request path. */
#ifndef SL_PLUGIN_NATIVE_MODULE_H
#define SL_PLUGIN_NATIVE_MODULE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "sha256.h"
#include "sluice_plugin.h"

/* One loaded copy. Instances read desc and hash; the rest is the
 * registry's. */
struct sl_native_module {
    struct sl_native_module *next;
    char hash[SL_SHA256_HEX_LEN + 1];
    char copy[PATH_MAX];            /* the private copy dlopen'd */
    void *handle;
    struct sluice_plugin desc;      /* the plugin's descriptor; zero past its size */
    size_t refs;                    /* instances using it */
};

/* Reads the file at path, refuses it when pin (64 lowercase hex digits,
 * or NULL for none) differs from its SHA-256, and returns its loaded copy
 * with a reference taken: the one loaded already for those bytes, or a
 * new copy, dlopen'd (RTLD_NOW | RTLD_LOCAL) after its entry function
 * sluice_plugin_init returned a descriptor of this host's ABI major.
 * NULL with err (one line, no prefix) on any failure, nothing left
 * loaded. */
struct sl_native_module *sl_native_module_load(const char *path, const char *pin, char *err,
                                              size_t errlen);

/* Drops a reference; the last closes the copy and removes its file.
 * Callers guarantee no thread runs the plugin's code any more. */
void sl_native_module_put(struct sl_native_module *m);

/* The number of distinct plugin copies loaded now (for leak checks). */
size_t sl_native_loaded_count(void);

/* Since start: *loaded, the private copies dlopen'd (one per distinct
 * content at a time, also those refused after opening: ABI mismatch, bad
 * descriptor); *unloaded, those closed again whose image dlclose really
 * unmapped (checked with RTLD_NOLOAD; a NODELETE object is logged and not
 * counted). loaded - unloaded is the number mapped now, for the SIGUSR1
 * status line and leak checks. Thread-safe. */
void sl_native_counts(uint64_t *loaded, uint64_t *unloaded);

/* The directory holding this process's private copies (borrowed), or ""
 * before the first native plugin loaded. */
const char *sl_native_copy_dir(void);

#endif
