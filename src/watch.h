/* The file watcher: with `watch: true` in the configuration, a thread of its
 * own reloads (sl_reload_run, reason "watch") when the configuration file
 * or a plugin file changes, without a signal.
 *
 * It watches directories, never files, with inotify: the configuration
 * file's directory (for that one name), each of plugin_paths (NAME.lua,
 * NAME.so, NAME/) and each NAME/ directory in them (*.lua, *.so). So an
 * editor that writes a temporary file and renames it over the original, or
 * deletes and recreates it, is seen like an in-place write. Events are
 * debounced: a reload starts once no relevant event came for 250 ms (at
 * most 2 s after the first), so a burst of writes makes one reload. A
 * directory that does not exist (yet) is looked for again every second.
 * See docs/RELOAD.md. */
#ifndef SL_WATCH_H
#define SL_WATCH_H

/* Makes the watcher follow the current generation: the first time a
 * generation with a configuration file and `watch: true` is current, starts
 * the watcher thread; once it runs, asks it to work out again which
 * directories to watch (none when watch is now false; after a failed
 * reload, also those the file on disk names). Called by main once the
 * first generation is published and by sl_reload_run after each reload.
 * Thread-safe and quick: it never waits for the watcher. Does nothing after
 * sl_watch_stop. Returns 0, or -1 when the thread or its inotify instance
 * cannot be created (logged; the process goes on without a watcher). */
int sl_watch_sync(void);

/* Stops the watcher thread, if one was started: waits for a reload it is
 * running to end, joins it and closes its descriptors. Called once by main
 * at shutdown, from a thread that is not the watcher. */
void sl_watch_stop(void);

#endif
