#include "plugin_native_module.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "plugin_native_host.h"
#include "sha256.h"

#define FILE_MAX        (256u << 20)    /* a bigger plugin file is refused */
#define ENTRY           "sluice_plugin_init"

typedef const struct sluice_plugin *(*entry_fn)(const struct sluice_host *host);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_native_module *modules;
static char copy_dir[PATH_MAX];
/* Copies dlopen'd, and those whose dlclose really unmapped them (checked
 * with RTLD_NOLOAD), since start; under lock. */
static uint64_t copies_loaded, copies_unloaded;

/* --- private copies -------------------------------------------------------------- */

/* At exit the process's copies go, loaded or not (a crash leaves them in a
 * directory named after the pid). Nothing is unloaded here: threads of a
 * shutting-down process may still be on their way out. */
static void remove_copies(void)
{
    pthread_mutex_lock(&lock);
    for (struct sl_native_module *m = modules; m != NULL; m = m->next)
        unlink(m->copy);
    if (copy_dir[0] != '\0')
        rmdir(copy_dir);
    pthread_mutex_unlock(&lock);
}

static bool is_usable_dir(const char *dir)
{
    return dir != NULL && dir[0] == '/' && strlen(dir) < PATH_MAX - 128 &&
           access(dir, W_OK | X_OK) == 0;
}

static int ensure_copy_dir(char *err, size_t errlen)
{
    if (copy_dir[0] != '\0')
        return 0;
    const char *base = getenv("XDG_RUNTIME_DIR");
    if (!is_usable_dir(base))
        base = getenv("TMPDIR");
    if (!is_usable_dir(base))
        base = "/tmp";
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/sluice-%ld-XXXXXX", base, (long)getpid());
    if (mkdtemp(dir) == NULL) {
        snprintf(err, errlen, "cannot create a directory for plugin copies in %s: %s", base,
                 strerror(errno));
        return -1;
    }
    static bool registered;
    if (!registered && atexit(remove_copies) == 0)
        registered = true;
    memcpy(copy_dir, dir, sizeof copy_dir);
    SL_DEBUG("sluice: native plugin copies go to %s", copy_dir);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the bytes to DIR/HASH.so, replacing a leftover of an earlier
 * load (same name, hence same content). */
static int write_copy(struct sl_native_module *m, const char *bytes, size_t len, char *err, size_t errlen)
{
    if (ensure_copy_dir(err, errlen) < 0)
        return -1;
    int n = snprintf(m->copy, sizeof m->copy, "%s/%s.so", copy_dir, m->hash);
    if (n < 0 || (size_t)n >= sizeof m->copy) {
        snprintf(err, errlen, "the directory for plugin copies has too long a name");
        return -1;
    }
    unlink(m->copy);
    int fd = open(m->copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0700);
    if (fd < 0 || write_all(fd, bytes, len) < 0 || close(fd) < 0) {
        snprintf(err, errlen, "cannot write its private copy %.1024s: %s", m->copy,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(m->copy);
        return -1;
    }
    return 0;
}

/* --- the registry --------------------------------------------------------------- */

/* Closes the copy and checks that the image is gone: glibc keeps an
 * object mapped past its last dlclose when it is marked NODELETE (a
 * plugin with STB_GNU_UNIQUE symbols, typically C++ inline statics, or
 * one that dlopens itself with RTLD_NODELETE). Such a copy is reported
 * once and not counted as unloaded, so the status line shows it open.
 * The check needs the file (RTLD_NOLOAD matches by name, then by inode):
 * before unlink. */
static void module_unload(struct sl_native_module *m)
{
    if (dlclose(m->handle) != 0) {
        const char *why = dlerror();
        SL_WARN("plugin %s: dlclose failed: %s", m->copy, why ? why : "?");
        return;
    }
    void *still = dlopen(m->copy, RTLD_NOW | RTLD_NOLOAD);
    if (still != NULL) {
        dlclose(still);
        SL_WARN("plugin %s: still mapped after its last dlclose (a NODELETE object: "
                "unique symbols?); its code stays in memory until exit", m->copy);
        return;
    }
    copies_unloaded++;
    SL_DEBUG("plugin %s: unloaded", m->copy);
}

static void module_free(struct sl_native_module *m)
{
    if (m->handle != NULL)
        module_unload(m);
    unlink(m->copy);
    free(m);
}

/* Opens the copy and checks the entry function and its descriptor. */
static int module_open(struct sl_native_module *m, char *err, size_t errlen)
{
    m->handle = dlopen(m->copy, RTLD_NOW | RTLD_LOCAL);
    if (m->handle == NULL) {
        const char *why = dlerror();
        snprintf(err, errlen, "cannot load: %s", why ? why : "dlopen failed");
        return -1;
    }
    copies_loaded++;
    SL_DEBUG("plugin %s: loaded", m->copy);
    entry_fn entry;
    void *sym = dlsym(m->handle, ENTRY);
    if (sym == NULL) {
        snprintf(err, errlen, "no %s function: not a sluice native plugin (export it; see "
                 "plugins-native/include/sluice_plugin.h)", ENTRY);
        return -1;
    }
    /* POSIX guarantees that a function's address survives this copy. */
    memcpy(&entry, &sym, sizeof entry);
    const struct sluice_plugin *d = entry(&sl_native_host);
    if (d == NULL) {
        snprintf(err, errlen, "%s refused this sluice (plugin ABI %d.%d)", ENTRY,
                 SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
        return -1;
    }
    if (d->size < offsetof(struct sluice_plugin, name)) {
        snprintf(err, errlen, "%s returned a descriptor of %zu bytes: not a sluice_plugin",
                 ENTRY, d->size);
        return -1;
    }
    if (d->abi_major != SLUICE_ABI_MAJOR) {
        snprintf(err, errlen, "built for sluice plugin ABI %u.%u, this sluice has ABI %d.%d: "
                 "rebuild it against this sluice's sluice_plugin.h", d->abi_major, d->abi_minor,
                 SLUICE_ABI_MAJOR, SLUICE_ABI_MINOR);
        return -1;
    }
    /* An older minor's descriptor is shorter: what it lacks stays zero.
     * A newer one is longer: what this host does not know is not read. */
    memcpy(&m->desc, d, d->size < sizeof m->desc ? d->size : sizeof m->desc);
    return 0;
}

/* The loaded copy of these bytes, with a reference taken: the one loaded
 * already for the same content, or a new one. NULL with err. */
static struct sl_native_module *module_get(const char *hash, const char *bytes, size_t len, char *err,
                                 size_t errlen)
{
    pthread_mutex_lock(&lock);
    struct sl_native_module *m;
    for (m = modules; m != NULL; m = m->next)
        if (strcmp(m->hash, hash) == 0)
            break;
    if (m != NULL) {
        m->refs++;
        pthread_mutex_unlock(&lock);
        return m;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL) {
        pthread_mutex_unlock(&lock);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(m->hash, hash, sizeof m->hash);
    if (write_copy(m, bytes, len, err, errlen) < 0 || module_open(m, err, errlen) < 0) {
        module_free(m);
        pthread_mutex_unlock(&lock);
        return NULL;
    }
    m->refs = 1;
    m->next = modules;
    modules = m;
    pthread_mutex_unlock(&lock);
    return m;
}

/* Drops a reference; the last closes the copy and removes it. Callers
 * guarantee no thread runs the plugin's code any more (its generation is
 * gone). */
void sl_native_module_put(struct sl_native_module *m)
{
    pthread_mutex_lock(&lock);
    if (--m->refs == 0) {
        for (struct sl_native_module **pp = &modules; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == m) {
                *pp = m->next;
                break;
            }
        }
        module_free(m);
    }
    pthread_mutex_unlock(&lock);
}

size_t sl_native_loaded_count(void)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (struct sl_native_module *m = modules; m != NULL; m = m->next)
        n++;
    pthread_mutex_unlock(&lock);
    return n;
}

void sl_native_counts(uint64_t *loaded, uint64_t *unloaded)
{
    pthread_mutex_lock(&lock);
    *loaded = copies_loaded;
    *unloaded = copies_unloaded;
    pthread_mutex_unlock(&lock);
}

const char *sl_native_copy_dir(void)
{
    return copy_dir;
}

/* --- loading ---------------------------------------------------------------------- */

/* Reads path whole (owned; free it). NULL with err. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
    } else if ((uint64_t)st.st_size > FILE_MAX) {
        snprintf(err, errlen, "larger than %u MiB", FILE_MAX >> 20);
    } else if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
    } else {
        size_t n = 0, want = (size_t)st.st_size;
        while (n < want) {
            ssize_t r = read(fd, buf + n, want - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                snprintf(err, errlen, "%s", r < 0 ? strerror(errno) : "changed while read");
                free(buf);
                buf = NULL;
                break;
            }
            n += (size_t)r;
        }
        *len = n;
    }
    if (fd >= 0)
        close(fd);
    return buf;
}

struct sl_native_module *sl_native_module_load(const char *path, const char *pin, char *err,
                                              size_t errlen)
{
    size_t len = 0;
    char *bytes = read_file(path, &len, err, errlen);
    if (bytes == NULL)
        return NULL;
    char hash[SL_SHA256_HEX_LEN + 1];
    struct sl_native_module *m = NULL;
    if (sl_sha256_hex(bytes, len, hash) < 0) {
        snprintf(err, errlen, "cannot compute its SHA-256 (out of memory)");
    } else {
        if (pin != NULL && strcmp(hash, pin) != 0)
            snprintf(err, errlen, "sha256 mismatch: the file's SHA-256 is %s, the configuration "
                     "pins %s", hash, pin);
        else
            m = module_get(hash, bytes, len, err, errlen);
    }
    free(bytes);
    return m;
}
