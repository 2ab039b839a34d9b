#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool sl_clock_tsc;
uint64_t sl_clock_mult;

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#if defined(__x86_64__)
/* The counter is usable for durations when it ticks at one rate whatever
 * the frequency scaling (constant_tsc) and through idle states
 * (nonstop_tsc); the kernel reports both as CPU flags. */
static bool tsc_is_invariant(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return false;
    char line[8192];
    bool constant = false, nonstop = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break;
    }
    fclose(f);
    return constant && nonstop;
}

/* Nanoseconds per tick (32.32) over a ~5 ms sleep; 0 when the rate is
 * implausible (below 100 MHz or above 20 GHz) or the clock went back. */
static uint64_t measure_mult(void)
{
    uint64_t t0 = __rdtsc();
    int64_t n0 = monotonic_ns();
    uint64_t t0b = __rdtsc();
    struct timespec nap = { .tv_sec = 0, .tv_nsec = 5000000 };
    nanosleep(&nap, NULL);
    uint64_t t1 = __rdtsc();
    int64_t n1 = monotonic_ns();
    uint64_t t1b = __rdtsc();
    /* the clock read sits between its two counter reads: take their middle */
    uint64_t ticks = (t1 / 2 + t1b / 2) - (t0 / 2 + t0b / 2);
    int64_t ns = n1 - n0;
    if (ns <= 0 || ticks == 0)
        return 0;
    double ghz = (double)ticks / (double)ns;
    if (ghz < 0.1 || ghz > 20)
        return 0;
    return (uint64_t)(((unsigned __int128)ns << 32) / ticks);
}
#endif

void sl_clock_init(void)
{
    sl_clock_tsc = false;
#if defined(__x86_64__)
    const char *force = getenv("SLUICE_HOOK_CLOCK");
    if (force != NULL && strcmp(force, "monotonic") == 0)
        return;
    if (!tsc_is_invariant())
        return;
    uint64_t mult = measure_mult();
    if (mult == 0)
        return;
    sl_clock_mult = mult;
    sl_clock_tsc = true;
#endif
}
