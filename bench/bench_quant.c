/* The update encoders' CPU (issue 17 item 4): fp16 / int8 encode (with
 * error feedback and stochastic rounding from the round's seeded PRNG) and
 * decode of one 1M-value tensor, as a site does per round, median of the
 * repeats, thread CPU time. Also checks that encode + decode is
 * deterministic (the same codes from the same seed). The compressed
 * broadcast's rows (fed/bcast.h): the coordinator's step per 1M values
 * (θ − θ̂, encode, decode, θ̂ += ·) as "encode", a site's decode + apply as
 * "decode"; and BLAKE2b of 4·P bytes (the hash each end pays for θ̂).
 *
 *   build/bench/bench_quant [--quick] [--out FILE]   (default
 *   ${BENCH_RESULTS:-bench/results}/quant.json) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "core/rng.h"
#include "fed/bcast.h"
#include "fed/quant.h"
#include <sodium.h>

static double s_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int quick;
    const char *out_arg;
    char out_buf[512];
    if (s_bench_args(argc, argv, "bench_quant", &quick, &out_arg) < 0)
        return 2;
    const char *out = s_bench_out_path(out_arg, out_buf, sizeof out_buf, "quant.json");
    const size_t n = 999987;
    const int reps = quick ? 5 : 21;
    float *x = malloc(n * sizeof *x), *res = calloc(n, sizeof *res), *dec = malloc(n * sizeof *dec);
    void *code = malloc(4 * n), *code2 = malloc(4 * n);
    if (!x || !res || !dec || !code || !code2)
        return 1;
    mfl_rng_t g;
    mfl_rng_seed(&g, 1, 2);
    for (size_t i = 0; i < n; i++)
        x[i] = 1e-3f * mfl_rng_normal(&g);
    FILE *f = s_bench_open_results("bench_quant", out, "quant");
    if (!f)
        return 1;
    fprintf(f, "  \"command\": \"build/bench/bench_quant\",\n  \"values\": %zu,\n"
               "  \"repeats\": %d,\n  \"how\": \"thread CPU ms per call, median over the repeats; encode with error "
               "feedback (residual) and stochastic rounding\",\n  \"rows\": [\n", n, reps);
    const mfl_quant_kind_t kinds[] = {MFL_QUANT_FP16, MFL_QUANT_INT8};
    for (int k = 0; k < 2; k++) {
        double enc[64], decd[64];
        float scale = 1, scale2 = 1;
        for (int r = 0; r < reps; r++) {
            memset(res, 0, n * sizeof *res);
            mfl_rng_t q;
            mfl_rng_seed(&q, 7, 11);
            double t0 = s_cpu_ms();
            if (mfl_quant_encode(kinds[k], x, n, res, &q, code, &scale) < 0)
                return 1;
            double t1 = s_cpu_ms();
            if (mfl_quant_decode(kinds[k], code, n, scale, dec) < 0)
                return 1;
            enc[r] = t1 - t0;
            decd[r] = s_cpu_ms() - t1;
        }
        memset(res, 0, n * sizeof *res);
        mfl_rng_t q;
        mfl_rng_seed(&q, 7, 11);
        (void)mfl_quant_encode(kinds[k], x, n, res, &q, code2, &scale2);
        int same = memcmp(code, code2, mfl_quant_bytes(kinds[k], n)) == 0 && scale == scale2;
        double em = s_bench_median(enc, reps), dm = s_bench_median(decd, reps);
        fprintf(f, "    {\"encoding\": \"%s\", \"encode_ms\": %.3f, \"decode_ms\": %.3f, "
                   "\"deterministic\": %s},\n", mfl_quant_name(kinds[k]), em, dm,
                same ? "true" : "false");
        printf("bench_quant: %s, %zu values: encode %.3f ms, decode %.3f ms CPU%s\n",
               mfl_quant_name(kinds[k]), n, em, dm, same ? "" : " NOT DETERMINISTIC");
    }
    /* the broadcast: θ moved by a small step from θ̂ each repeat */
    float *theta = malloc(n * sizeof *theta), *hat = malloc(n * sizeof *hat);
    if (!theta || !hat)
        return 1;
    for (int k = 0; k < 2; k++) {
        double enc[64], app[64];
        for (int r = 0; r < reps; r++) {
            for (size_t i = 0; i < n; i++) {
                hat[i] = x[i] * 100.0f;
                theta[i] = hat[i] + x[(i * 7) % n];
            }
            memcpy(dec, hat, n * sizeof *dec); /* the site's held model */
            mfl_rng_t q;
            mfl_rng_seed(&q, 7, MFL_BCAST_STREAM);
            float scale = 1;
            double t0 = s_cpu_ms();
            if (mfl_bcast_encode(kinds[k], theta, hat, n, &q, code, &scale) < 0)
                return 1;
            double t1 = s_cpu_ms();
            if (mfl_quant_decode(kinds[k], code, n, scale, res) < 0)
                return 1;
            mfl_bcast_apply(dec, res, n);
            app[r] = s_cpu_ms() - t1;
            enc[r] = t1 - t0;
            if (memcmp(dec, hat, n * sizeof *dec) != 0)
                return fprintf(stderr, "bench_quant: the site's θ̂ differs\n"), 1;
        }
        double em = s_bench_median(enc, reps), am = s_bench_median(app, reps);
        fprintf(f, "    {\"encoding\": \"broadcast %s\", \"encode_ms\": %.3f, \"decode_ms\": %.3f, "
                   "\"deterministic\": true},\n", mfl_quant_name(kinds[k]), em, am);
        printf("bench_quant: broadcast %s, %zu values: coordinator's step %.3f ms, a site's "
               "decode + apply %.3f ms CPU\n", mfl_quant_name(kinds[k]), n, em, am);
    }
    double hs[64];
    uint8_t h[32];
    for (int r = 0; r < reps; r++) {
        double t0 = s_cpu_ms();
        crypto_generichash(h, 32, (const unsigned char *)theta, n * sizeof *theta, NULL, 0);
        hs[r] = s_cpu_ms() - t0;
    }
    double hm = s_bench_median(hs, reps);
    fprintf(f, "    {\"encoding\": \"blake2b of 4P bytes\", \"encode_ms\": %.3f, "
               "\"decode_ms\": null, \"deterministic\": true}\n", hm);
    printf("bench_quant: BLAKE2b of %zu floats: %.3f ms CPU\n", n, hm);
    free(theta);
    free(hat);
    fprintf(f, "  ]\n}\n");
    fclose(f);
    free(x);
    free(res);
    free(dec);
    free(code);
    free(code2);
    return 0;
}
