#include "core/clock.h"

#include <time.h>

static uint64_t s_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t mfl_clock_wall_ms(void) { return s_ms(CLOCK_REALTIME); }

uint64_t mfl_clock_mono_ms(void) { return s_ms(CLOCK_MONOTONIC); }

double mfl_clock_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
