/* Timing, median and command-line plumbing every bench/bench_*.c shares.
 *
 * Header-only (static inline) because every bench/bench_*.c is its own
 * binary linked only against libmetafl. */
#ifndef MFL_BENCH_COMMON_H
#define MFL_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Monotonic seconds, for differences only. */
static inline double s_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Wall-clock milliseconds since the epoch: the clock the round engine's
 * deadlines and liveness use, as the coordinator feeds it. */
static inline uint64_t s_bench_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline int s_bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..n) in place (so v[0] is then the minimum) and returns its
 * median, the mean of the two middle values when n is even. */
static inline double s_bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, s_bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* BENCH_QUICK=1 asks for fewer repeats (bench/run.sh, CI smoke runs). */
static inline int s_bench_quick_env(void)
{
    return getenv("BENCH_QUICK") && strcmp(getenv("BENCH_QUICK"), "1") == 0;
}

/* Parses `[--quick] [--out FILE]` into *quick (starting from BENCH_QUICK)
 * and *out (left NULL when absent). Returns 0, or -1 after printing the
 * usage line naming prog. */
static inline int s_bench_args(int argc, char **argv, const char *prog, int *quick,
                               const char **out)
{
    *quick = s_bench_quick_env();
    *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            *quick = 1;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            *out = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--quick] [--out FILE]\n", prog);
            return -1;
        }
    }
    return 0;
}

/* out if set, else ${BENCH_RESULTS:-bench/results}/file written into buf. */
static inline const char *s_bench_out_path(const char *out, char *buf, size_t len,
                                           const char *file)
{
    if (out)
        return out;
    const char *dir = getenv("BENCH_RESULTS") ? getenv("BENCH_RESULTS") : "bench/results";
    snprintf(buf, len, "%s/%s", dir, file);
    return buf;
}

/* Opens a results file for writing and starts its JSON object with
 * "bench": name and "date": now (UTC, ISO 8601), leaving the object open
 * for the caller's fields. NULL, after an error naming prog and path, if
 * the file cannot be created. */
static inline FILE *s_bench_open_results(const char *prog, const char *path, const char *name)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s\n", prog, path);
        return NULL;
    }
    time_t now = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "{\n  \"bench\": \"%s\",\n  \"date\": \"%s\",\n", name, when);
    return f;
}

#endif
