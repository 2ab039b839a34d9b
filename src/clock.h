/* The clock that times plugin hooks: nanoseconds on a monotonic scale,
 * read twice per hook, so it has to be cheap.
 *
 * On x86-64 CPUs whose time-stamp counter runs at a constant rate and
 * does not stop in idle states (constant_tsc and nonstop_tsc in
 * /proc/cpuinfo) it reads the counter (RDTSC, a few cycles) and scales it
 * with a factor measured against CLOCK_MONOTONIC at start; elsewhere, or
 * before sl_clock_init, it is clock_gettime(CLOCK_MONOTONIC). Only
 * differences of two readings on one thread mean anything: the value is
 * not CLOCK_MONOTONIC's. */
#ifndef SL_CLOCK_H
#define SL_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* Set once by sl_clock_init, before any worker runs: whether the counter
 * is used, and nanoseconds per tick as a 32.32 fixed-point factor. */
extern bool sl_clock_tsc;
extern uint64_t sl_clock_mult;

/* Decides which source sl_clock_ns reads and measures the counter's rate
 * (sleeps about 5 ms). Call once at start, before the workers run. */
void sl_clock_init(void);

/* A reading in nanoseconds; see the top of this file. */
static inline int64_t sl_clock_ns(void)
{
#if defined(__x86_64__)
    if (sl_clock_tsc)
        return (int64_t)(((unsigned __int128)__rdtsc() * sl_clock_mult) >> 32);
#endif
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
