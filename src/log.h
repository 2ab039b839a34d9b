/* Error log: leveled lines on stderr, one write(2) per line so lines from
 * different worker threads never interleave. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include "config-t.h"

/* The current level; lines above it are not formatted at all. Set once at
 * start (and on reload) with sl_log_set_level; read without a lock because a
 * stale value for one line is harmless. */
extern enum sl_log_level sl_log_level_current;

/* Sets the level below which messages are dropped. */
void sl_log_set_level(enum sl_log_level level);

/* Formats and writes one line "TIME [level] message\n" to stderr. Callers use
 * the SL_LOG macros, which skip the call (and the evaluation of the
 * arguments) when the level is off. */
void sl_log_write(enum sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define SL_LOG(lvl, ...)                                                      \
    do {                                                                      \
        if ((lvl) <= sl_log_level_current)                                    \
            sl_log_write((lvl), __VA_ARGS__);                                 \
    } while (0)
#define SL_ERROR(...) SL_LOG(SL_LOG_ERROR, __VA_ARGS__)
#define SL_WARN(...)  SL_LOG(SL_LOG_WARN, __VA_ARGS__)
#define SL_INFO(...)  SL_LOG(SL_LOG_INFO, __VA_ARGS__)
#define SL_DEBUG(...) SL_LOG(SL_LOG_DEBUG, __VA_ARGS__)

#endif
