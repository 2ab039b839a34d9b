#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "gen.h"
#include "log.h"
#include "reload.h"

#define QUIET_MS     250    /* reload once no relevant event came for this long */
#define MAX_WAIT_MS  2000   /* but at the latest this long after the first one */
#define RETRY_MS     1000   /* a missing directory is looked for again this often */
#define MAX_DIRS     1024   /* watched directories at most (inotify watches are a
                               per-user resource) */
#define NAME_MAX_LEN 64     /* plugin names: 1 to 64 of [A-Za-z0-9_-] (CONFIG.md) */

/* What a directory is watched for; one directory may be watched for
 * several (plugin_paths: [.] next to the configuration file). */
enum {
    ROLE_CONFIG = 1,        /* holds the configuration file: that name only */
    ROLE_PLUGINS = 2,       /* one of plugin_paths: NAME.lua, NAME.so, NAME/ */
    ROLE_PLUGIN_DIR = 4,    /* a NAME/ in one of plugin_paths: *.lua, *.so */
};

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM | \
                    IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct dir {
    char *path;             /* owned: as resolved from the configuration */
    int wd;                 /* inotify watch; -1 while the directory is missing */
    unsigned roles;
};

struct dirset {
    struct dir *v;          /* owned array */
    size_t n, cap;
};

/* The watcher thread's state: only that thread touches it between
 * sl_watch_sync starting it and sl_watch_stop joining it. */
struct watcher {
    int ifd;                /* the inotify instance */
    int wake;               /* read end of the wake pipe */
    bool enabled;           /* the current generation says watch: true */
    char *config_path;      /* owned: the configuration file followed */
    const char *config_base;    /* its last path component, inside config_path */
    struct dirset dirs;     /* watched, and missing ones (wd -1) */
    char *summary;          /* owned: the directory list last logged */
    bool pending;           /* a relevant event waits for the quiet period */
    int64_t first_ms, last_ms;  /* its first and latest relevant event */
    size_t nevents;         /* relevant events since the last reload */
    char changed[PATH_MAX]; /* the first file they named, for the log */
    int64_t retry_ms;       /* when missing directories are tried next */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool started, stopped;   /* under lock */
static atomic_bool quit;
static pthread_t thread;
static int wake_fds[2] = {-1, -1};
static struct watcher W;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- which directories -------------------------------------------------------- */

static bool is_plugin_name(const char *s, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* NAME.lua or NAME.so with a valid plugin name: editors' temporary and
 * backup files (.x.lua.swp, x.lua~, #x.lua#, .#x.lua) are not. */
static bool is_plugin_file(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot != NULL && (strcmp(dot, ".lua") == 0 || strcmp(dot, ".so") == 0) &&
           is_plugin_name(name, (size_t)(dot - name));
}

static void dirset_free(struct dirset *ds)
{
    for (size_t i = 0; i < ds->n; i++)
        free(ds->v[i].path);
    free(ds->v);
    memset(ds, 0, sizeof *ds);
}

/* Adds path with roles (merged into an entry of the same path). Out of
 * memory or too many directories: left out, with a warning. */
static void dirset_add(struct dirset *ds, const char *path, unsigned roles)
{
    for (size_t i = 0; i < ds->n; i++)
        if (strcmp(ds->v[i].path, path) == 0) {
            ds->v[i].roles |= roles;
            return;
        }
    if (ds->n == MAX_DIRS) {
        SL_WARN("sluice: watch: more than %d directories; not watching %s", MAX_DIRS, path);
        return;
    }
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 8;
        struct dir *v = realloc(ds->v, cap * sizeof *v);
        if (v == NULL)
            return;
        ds->v = v;
        ds->cap = cap;
    }
    char *copy = strdup(path);
    if (copy == NULL)
        return;
    ds->v[ds->n++] = (struct dir){ .path = copy, .wd = -1, .roles = roles };
}

/* a/b into out; false (nothing to watch there) when it does not fit. */
static bool path_join(char *out, size_t outlen, const char *a, const char *b)
{
    int n = snprintf(out, outlen, "%s/%s", a, b);
    return n >= 0 && (size_t)n < outlen;
}

/* The directory of the configuration file, and dir as plugin_paths means
 * it: relative to that directory (CONFIG.md, plugin_paths). */
static void config_dir(char *out, size_t outlen, const char *config_path)
{
    const char *slash = strrchr(config_path, '/');
    if (slash == NULL)
        snprintf(out, outlen, ".");
    else if (slash == config_path)
        snprintf(out, outlen, "/");
    else
        snprintf(out, outlen, "%.*s", (int)(slash - config_path), config_path);
}

static bool plugin_dir(char *out, size_t outlen, const char *config_path, const char *dir)
{
    if (dir[0] == '/' || strchr(config_path, '/') == NULL) {
        int n = snprintf(out, outlen, "%s", dir);
        return n >= 0 && (size_t)n < outlen;
    }
    char base[PATH_MAX];
    config_dir(base, sizeof base, config_path);
    return path_join(out, outlen, base, dir);
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The NAME/ directories of a plugin path: NAME/handler.lua is a plugin. */
static void add_plugin_subdirs(struct dirset *ds, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (!is_plugin_name(e->d_name, strlen(e->d_name)) ||
            (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN && e->d_type != DT_LNK))
            continue;
        if (path_join(path, sizeof path, dir, e->d_name) && is_dir(path))
            dirset_add(ds, path, ROLE_PLUGIN_DIR);
    }
    closedir(d);
}

/* Every directory cfg's files are found in. */
static void want_config(struct dirset *ds, const struct sl_config *cfg)
{
    char dir[PATH_MAX];
    config_dir(dir, sizeof dir, cfg->path);
    dirset_add(ds, dir, ROLE_CONFIG);
    for (size_t i = 0; i < cfg->nplugin_paths; i++) {
        if (!plugin_dir(dir, sizeof dir, cfg->path, cfg->plugin_paths[i]))
            continue;
        dirset_add(ds, dir, ROLE_PLUGINS);
        add_plugin_subdirs(ds, dir);
    }
}

/* --- inotify watches ----------------------------------------------------------- */

static struct dir *find_wd(struct watcher *w, int wd)
{
    if (wd < 0)         /* IN_Q_OVERFLOW; missing directories have wd -1 */
        return NULL;
    for (size_t i = 0; i < w->dirs.n; i++)
        if (w->dirs.v[i].wd == wd)
            return &w->dirs.v[i];
    return NULL;
}

/* Watches d->path; a directory that is not there stays in the set with
 * wd -1 and is looked for again later. */
static void add_watch(struct watcher *w, struct dir *d)
{
    d->wd = inotify_add_watch(w->ifd, d->path, WATCH_MASK);
    if (d->wd < 0 && errno != ENOENT && errno != ENOTDIR)
        SL_WARN("sluice: watch: %s: cannot watch: %s", d->path, strerror(errno));
}

/* Logs the watched directories when they differ from the last time. */
static void log_dirs(struct watcher *w)
{
    size_t len = 1, nwatched = 0;
    for (size_t i = 0; i < w->dirs.n; i++)
        len += strlen(w->dirs.v[i].path) + 3;
    char *s = malloc(len);
    if (s == NULL)
        return;
    s[0] = '\0';
    for (size_t i = 0; i < w->dirs.n; i++) {
        const struct dir *d = &w->dirs.v[i];
        if (d->roles == 0)
            continue;
        strcat(s, s[0] != '\0' ? ", " : "");
        strcat(s, d->path);
        strcat(s, d->wd < 0 ? "?" : "");
        nwatched += d->wd >= 0;
    }
    if (w->summary == NULL || strcmp(s, w->summary) != 0) {
        if (s[0] == '\0')
            SL_INFO("sluice: watch: off");
        else
            SL_INFO("sluice: watch: watching %zu director%s for %s and its plugins "
                    "(? = missing, looked for every second): %s", nwatched,
                    nwatched == 1 ? "y" : "ies", w->config_path, s);
    }
    free(w->summary);
    w->summary = s;
}

/* Makes the watched set want: new directories are watched before old ones
 * are let go, so no event falls between. Directories reached by two paths
 * get one watch (inotify gives the same descriptor) with both roles. */
static void apply(struct watcher *w, struct dirset *want)
{
    for (size_t i = 0; i < want->n; i++) {
        struct dir *d = &want->v[i];
        add_watch(w, d);
        for (size_t j = 0; d->wd >= 0 && j < i; j++)
            if (want->v[j].wd == d->wd) {
                want->v[j].roles |= d->roles;
                d->roles = 0;       /* the earlier entry has it */
            }
    }
    for (size_t i = 0; i < w->dirs.n; i++) {
        int wd = w->dirs.v[i].wd;
        bool kept = wd < 0;
        for (size_t j = 0; !kept && j < want->n; j++)
            kept = want->v[j].wd == wd;
        if (!kept)
            inotify_rm_watch(w->ifd, wd);
    }
    size_t n = 0;
    for (size_t i = 0; i < want->n; i++) {
        if (want->v[i].roles == 0)
            free(want->v[i].path);
        else
            want->v[n++] = want->v[i];
    }
    want->n = n;
    dirset_free(&w->dirs);
    w->dirs = *want;
    memset(want, 0, sizeof *want);
    log_dirs(w);
}

/* Works out the directories from the current generation and, after a
 * failed reload, from the file on disk as well (if it parses), so that
 * fixing a plugin in a directory only the new file names is seen. */
static void sync_dirs(struct watcher *w)
{
    struct dirset want = {0};
    struct sl_gen *g = sl_gen_acquire();
    w->enabled = g != NULL && g->cfg->path != NULL && g->cfg->watch;
    if (w->enabled) {
        if (w->config_path == NULL || strcmp(w->config_path, g->cfg->path) != 0) {
            char *copy = strdup(g->cfg->path);
            if (copy != NULL) {
                free(w->config_path);
                w->config_path = copy;
                const char *slash = strrchr(copy, '/');
                w->config_base = slash ? slash + 1 : copy;
            }
        }
        want_config(&want, g->cfg);
        struct sl_reload_status st;
        sl_reload_get_status(&st);
        if (st.attempted && !st.last_ok) {
            struct sl_config_errors errs = {0};
            struct sl_config *disk = sl_config_load(g->cfg->path, &errs);
            sl_config_errors_fini(&errs);
            if (disk != NULL)
                want_config(&want, disk);
            sl_config_free(disk);
        }
    }
    if (g != NULL)
        sl_gen_unref(g);
    if (!w->enabled)
        w->pending = false;
    apply(w, &want);
}

/* Watches the missing directories that have appeared; one that did counts
 * as a change (it may hold new versions of the files). */
static void retry_missing(struct watcher *w)
{
    for (size_t i = 0; i < w->dirs.n; i++) {
        struct dir *d = &w->dirs.v[i];
        if (d->wd >= 0 || d->roles == 0)
            continue;
        add_watch(w, d);
        if (d->wd < 0)
            continue;
        struct dir *other = NULL;
        for (size_t j = 0; j < w->dirs.n && other == NULL; j++)
            if (j != i && w->dirs.v[j].wd == d->wd)
                other = &w->dirs.v[j];
        if (other != NULL) {    /* reached by another path too */
            other->roles |= d->roles;
            d->wd = -1;
            d->roles = 0;
            continue;
        }
        SL_INFO("sluice: watch: %s appeared", d->path);
        if (!w->pending) {
            w->pending = true;
            w->first_ms = now_ms();
            snprintf(w->changed, sizeof w->changed, "%s", d->path);
        }
        w->last_ms = now_ms();
        w->nevents++;
    }
    log_dirs(w);
}

static bool has_missing(const struct watcher *w)
{
    for (size_t i = 0; i < w->dirs.n; i++)
        if (w->dirs.v[i].wd < 0 && w->dirs.v[i].roles != 0)
            return true;
    return false;
}

/* --- events --------------------------------------------------------------------- */

/* A directory of the set went away (deleted, moved, unmounted): from now on
 * it is looked for by path. */
static void lose_dir(struct watcher *w, struct dir *d, bool moved)
{
    int wd = d->wd;
    d->wd = -1;
    if (moved)      /* the watch follows the moved inode: not what we want */
        inotify_rm_watch(w->ifd, wd);
    SL_INFO("sluice: watch: %s went away", d->path);
}

/* Whether ev changes what a reload would read. A NAME/ directory appearing
 * in a plugin path is watched at once. */
static bool is_relevant(struct watcher *w, const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW) {
        SL_WARN("sluice: watch: events were lost (queue overflow): reloading to be safe");
        return true;
    }
    struct dir *d = find_wd(w, ev->wd);
    if (d == NULL)
        return false;       /* a watch let go of by apply */
    if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
        lose_dir(w, d, (ev->mask & IN_MOVE_SELF) != 0);
        return true;
    }
    const char *name = ev->len > 0 ? ev->name : "";
    bool isdir = (ev->mask & IN_ISDIR) != 0;
    if ((d->roles & ROLE_CONFIG) && !isdir && strcmp(name, w->config_base) == 0)
        return true;
    if ((d->roles & ROLE_PLUGINS) && isdir && is_plugin_name(name, strlen(name))) {
        if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
            char path[PATH_MAX];
            size_t n = w->dirs.n;
            if (path_join(path, sizeof path, d->path, name))
                dirset_add(&w->dirs, path, ROLE_PLUGIN_DIR);    /* may move d */
            if (w->dirs.n > n)
                add_watch(w, &w->dirs.v[n]);
        }
        return true;
    }
    if ((d->roles & ROLE_PLUGINS) && !isdir && is_plugin_file(name))
        return true;
    return (d->roles & ROLE_PLUGIN_DIR) && !isdir && name[0] != '.' &&
           (has_suffix(name, ".lua") || has_suffix(name, ".so"));
}

static void note_event(struct watcher *w, const struct inotify_event *ev)
{
    const struct dir *d = find_wd(w, ev->wd);
    char what[PATH_MAX];
    const char *dir = d ? d->path : "(lost events)";
    if (ev->len == 0)
        snprintf(what, sizeof what, "%s", dir);
    else if (strcmp(dir, ".") == 0)
        snprintf(what, sizeof what, "%s", ev->name);
    else
        snprintf(what, sizeof what, "%s/%s", dir, ev->name);
    SL_DEBUG("sluice: watch: %s: event 0x%x", what, (unsigned)ev->mask);
    int64_t now = now_ms();
    if (!w->pending) {
        w->pending = true;
        w->first_ms = now;
        snprintf(w->changed, sizeof w->changed, "%s", what);
    }
    w->last_ms = now;
    w->nevents++;
}

/* Reads every queued event. */
static void read_events(struct watcher *w)
{
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            bool relevant = w->enabled && is_relevant(w, ev);
            /* is_relevant may have reset the directory's wd: note first */
            if (relevant)
                note_event(w, ev);
            p += sizeof *ev + ev->len;
        }
    }
}

/* --- the thread --------------------------------------------------------------- */

static void reload(struct watcher *w)
{
    SL_INFO("sluice: watch: %s changed%s", w->changed,
            w->nevents > 1 ? " (and more)" : "");
    w->pending = false;
    w->nevents = 0;
    char err[4096];
    /* Logs its outcome; after a rebuild (published or failed) it asks for
     * a sync_dirs through the wake pipe. Nothing changed: directories may
     * still have come or gone (an unused NAME/), so sync here. */
    if (sl_reload_run("watch", NULL, err, sizeof err) == 1)
        sync_dirs(w);
}

/* How long poll may sleep: until the quiet period ends or missing
 * directories are due; -1 when nothing is. */
static int poll_timeout(const struct watcher *w, int64_t now)
{
    int64_t until = INT64_MAX;
    if (w->pending) {
        until = w->last_ms + QUIET_MS;
        if (w->first_ms + MAX_WAIT_MS < until)
            until = w->first_ms + MAX_WAIT_MS;
    }
    if (w->enabled && has_missing(w) && w->retry_ms < until)
        until = w->retry_ms;
    if (until == INT64_MAX)
        return -1;
    return until <= now ? 0 : (int)(until - now);
}

static void *watch_main(void *arg)
{
    struct watcher *w = arg;
    sync_dirs(w);
    w->retry_ms = now_ms() + RETRY_MS;
    while (!atomic_load(&quit)) {
        struct pollfd pf[2] = { { .fd = w->wake, .events = POLLIN },
                                { .fd = w->ifd, .events = POLLIN } };
        if (poll(pf, 2, poll_timeout(w, now_ms())) < 0 && errno != EINTR) {
            SL_ERROR("sluice: watch: poll: %s; the watcher stops", strerror(errno));
            break;
        }
        if (pf[0].revents != 0) {
            char drain[64];
            while (read(w->wake, drain, sizeof drain) > 0)
                ;
            if (atomic_load(&quit))
                break;
            sync_dirs(w);
        }
        if (pf[1].revents != 0)
            read_events(w);
        int64_t now = now_ms();
        if (w->enabled && now >= w->retry_ms) {
            if (has_missing(w))
                retry_missing(w);
            w->retry_ms = now + RETRY_MS;
        }
        if (w->pending && (now >= w->last_ms + QUIET_MS || now >= w->first_ms + MAX_WAIT_MS))
            reload(w);
    }
    return NULL;
}

/* Whether the current generation asks for a watcher. */
static bool is_wanted(void)
{
    struct sl_gen *g = sl_gen_acquire();
    bool want = g != NULL && g->cfg->path != NULL && g->cfg->watch;
    if (g != NULL)
        sl_gen_unref(g);
    return want;
}

/* Starts the thread (lock held). Its signal mask blocks every signal but
 * the synchronous ones, so process signals reach main's sigwait. */
static int start_locked(void)
{
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ifd < 0) {
        SL_ERROR("sluice: watch: inotify: %s; not watching", strerror(errno));
        return -1;
    }
    if (pipe2(wake_fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        SL_ERROR("sluice: watch: pipe: %s; not watching", strerror(errno));
        close(ifd);
        return -1;
    }
    memset(&W, 0, sizeof W);
    W.ifd = ifd;
    W.wake = wake_fds[0];
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGABRT);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&thread, NULL, watch_main, &W);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        SL_ERROR("sluice: watch: cannot start its thread: %s; not watching", strerror(rc));
        close(ifd);
        close(wake_fds[0]);
        close(wake_fds[1]);
        wake_fds[0] = wake_fds[1] = -1;
        return -1;
    }
    started = true;
    return 0;
}

int sl_watch_sync(void)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (stopped) {
        /* shutting down: nothing to follow any more */
    } else if (started) {
        ssize_t n = write(wake_fds[1], "s", 1);
        (void)n;                /* full: a wake-up is pending anyway */
    } else if (is_wanted()) {
        rc = start_locked();
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

void sl_watch_stop(void)
{
    pthread_mutex_lock(&lock);
    stopped = true;
    bool join = started;
    if (join) {
        atomic_store(&quit, true);
        ssize_t n = write(wake_fds[1], "q", 1);
        (void)n;
    }
    pthread_mutex_unlock(&lock);
    /* Not under the lock: a reload the thread runs ends in sl_watch_sync. */
    if (!join)
        return;
    pthread_join(thread, NULL);
    close(W.ifd);
    close(wake_fds[0]);
    close(wake_fds[1]);
    wake_fds[0] = wake_fds[1] = -1;
    dirset_free(&W.dirs);
    free(W.config_path);
    free(W.summary);
    memset(&W, 0, sizeof W);
}
