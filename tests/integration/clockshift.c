/* An LD_PRELOAD shim for test_coord_wall_clock_step.sh: CLOCK_REALTIME
 * (and only it) reads as the real time plus the number of seconds in the
 * file $MFL_CLOCKSHIFT_FILE (re-read on every call; missing = 0), so a test
 * can step the wall clock of one process without touching the system's.
 * CLOCK_MONOTONIC is untouched, as a real clock step leaves it. Built by the
 * test itself; not part of metafl. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    const char *path = getenv("MFL_CLOCKSHIFT_FILE");
    if (rc != 0 || id != CLOCK_REALTIME || !path)
        return rc;
    FILE *f = fopen(path, "r");
    long shift = 0;
    if (f) {
        if (fscanf(f, "%ld", &shift) != 1)
            shift = 0;
        fclose(f);
    }
    ts->tv_sec += shift;
    return rc;
}
