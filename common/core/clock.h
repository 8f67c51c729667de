/* Clocks, in one place.
 *
 * Wall time (CLOCK_REALTIME) is for what is written down or compared across
 * processes: audit and metrics timestamps, deadlines carried in messages,
 * status files. Monotonic time (CLOCK_MONOTONIC) is for intervals inside
 * one process (timeouts, backoff, progress), which must not jump when the
 * system clock is set. Thread-safe. */
#ifndef MFL_CORE_CLOCK_H
#define MFL_CORE_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch. */
uint64_t mfl_clock_wall_ms(void);

/* Milliseconds on the monotonic clock (arbitrary origin). */
uint64_t mfl_clock_mono_ms(void);

/* Seconds on the monotonic clock, with nanosecond resolution. */
double mfl_clock_mono_s(void);

#endif
