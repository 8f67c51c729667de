/* The coordinator's per-update costs outside the wire: folding one update
 * into the fixed-point aggregate, against a plain float axpy (acc += w·Δ)
 * over the same bytes in the same run; and appending / verifying one audit
 * record (fsync-bound, so absolute times are reported too).
 *
 *   bench_fed [OUT.json]   (default $BENCH_RESULTS/fed.json or bench/results/fed.json)
 *
 * Medians of repeats; the aggregate and the reference are interleaved rep
 * by rep so machine load hits both alike. BENCH_QUICK=1: fewer repeats. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/rng.h"
#include "fed/aggregate.h"
#include "bench_common.h"

/* The one writer key of the bench log. */
static int s_key(void *arg, const char *name, uint8_t pk[32], char *err, size_t errlen)
{
    (void)name;
    (void)err;
    (void)errlen;
    memcpy(pk, arg, 32);
    return 0;
}

/* Keeps the reference loop from being optimised away. */
static volatile float s_sink;

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    const int quick = s_bench_quick_env();
    char out_path[1024];
    const char *res = getenv("BENCH_RESULTS");
    snprintf(out_path, sizeof out_path, "%s/fed.json",
             argc > 1 ? "" : (res && *res ? res : "bench/results"));
    if (argc > 1)
        snprintf(out_path, sizeof out_path, "%s", argv[1]);

    const size_t P = 1000000;
    const int reps = quick ? 9 : 31;
    float *delta = malloc(P * sizeof *delta), *acc = calloc(P, sizeof *acc);
    float *mean = malloc(P * sizeof *mean);
    mfl_aggregate_t *agg = mfl_aggregate_new(P);
    if (!delta || !acc || !mean || !agg)
        return 1;
    mfl_rng_t r;
    mfl_rng_seed(&r, 1, 1);
    for (size_t j = 0; j < P; j++)
        delta[j] = 0.01f * mfl_rng_normal(&r);
    double *t_agg = malloc((size_t)reps * sizeof(double));
    double *t_ref = malloc((size_t)reps * sizeof(double));
    char err[256];
    for (int i = 0; i < reps; i++) {
        if (mfl_aggregate_count(agg) == MFL_AGGREGATE_MAX_UPDATES)
            mfl_aggregate_reset(agg);
        double t0 = s_bench_now();
        if (mfl_aggregate_add(agg, delta, 199.0, err, sizeof err) != 0) {
            fprintf(stderr, "bench_fed: %s\n", err);
            return 1;
        }
        double t1 = s_bench_now();
        const float w = 199.0f;
        for (size_t j = 0; j < P; j++)
            acc[j] += w * delta[j];
        s_sink = acc[P / 2];
        double t2 = s_bench_now();
        t_agg[i] = t1 - t0;
        t_ref[i] = t2 - t1;
    }
    double agg_s = s_bench_median(t_agg, reps), ref_s = s_bench_median(t_ref, reps);
    memset(mean, 0, P * sizeof *mean); /* page faults out of the timing */
    double t0 = s_bench_now();
    mfl_aggregate_mean(agg, mean);
    double mean_s = s_bench_now() - t0;

    /* Audit: append (write + fsync) and verify, per record. */
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    char dir[] = "/tmp/mfl-bench-fed-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[128];
    snprintf(path, sizeof path, "%s/bench.audit", dir);
    mfl_audit_t *log = mfl_audit_open(path, "coord", sk, err, sizeof err);
    if (!log) {
        fprintf(stderr, "bench_fed: %s\n", err);
        return 1;
    }
    const int n_rec = quick ? 50 : 200;
    static mfl_audit_record_t rec;
    mfl_audit_record_init(&rec, MFL_AUDIT_UPDATE_ACCEPTED, 1, "hospital-a");
    rec.has_delta_hash = true;
    rec.n = 199;
    rec.norm = 1.5;
    double *t_app = malloc((size_t)n_rec * sizeof(double));
    for (int i = 0; i < n_rec; i++) {
        double a = s_bench_now();
        if (mfl_audit_append(log, &rec, NULL, err, sizeof err) != 0)
            return 1;
        t_app[i] = s_bench_now() - a;
    }
    mfl_audit_destroy(&log);
    double app_s = s_bench_median(t_app, n_rec);
    /* Verify: every record's hash and Ed25519 signature. */
    mfl_audit_report_t rep;
    t0 = s_bench_now();
    int vrc = mfl_audit_verify_with(path, s_key, pk, &rep);
    double verify_s = (s_bench_now() - t0) / (double)(n_rec + 1);
    if (vrc != 0) {
        fprintf(stderr, "bench_fed: %s\n", rep.message);
        return 1;
    }
    unlink(path);
    rmdir(dir);

    printf("aggregate add, P=%zu: %.3f ms (float axpy reference %.3f ms): ratio %.2f\n", P,
           agg_s * 1e3, ref_s * 1e3, agg_s / ref_s);
    printf("aggregate mean, P=%zu: %.3f ms\n", P, mean_s * 1e3);
    printf("audit append (write+fsync): median %.3f ms per record\n", app_s * 1e3);
    printf("audit verify: %.3f ms per record (hash + Ed25519)\n", verify_s * 1e3);
    FILE *f = fopen(out_path, "w");
    if (f) {
        fprintf(f,
                "{\n  \"bench\": \"fed\",\n  \"params\": %zu,\n  \"reps\": %d,\n"
                "  \"aggregate_add_ms\": %.4f,\n  \"axpy_reference_ms\": %.4f,\n"
                "  \"aggregate_over_axpy\": %.3f,\n  \"aggregate_mean_ms\": %.4f,\n"
                "  \"audit_append_ms\": %.4f,\n  \"audit_verify_ms_per_record\": %.4f\n}\n",
                P, reps, agg_s * 1e3, ref_s * 1e3, agg_s / ref_s, mean_s * 1e3, app_s * 1e3,
                verify_s * 1e3);
        fclose(f);
        printf("wrote %s\n", out_path);
    }
    free(delta);
    free(acc);
    free(mean);
    free(t_agg);
    free(t_ref);
    free(t_app);
    mfl_aggregate_destroy(&agg);
    return 0;
}
