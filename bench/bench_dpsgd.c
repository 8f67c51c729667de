/* DP-SGD step vs plain SGD step of the same model and batch (issue 11):
 * the heart MLP (goal ≤ 3×) and the 1M-parameter MLP (goal ≤ 5×), plus
 * the CNN for the record. A DP step = per-example norms (one batched pass),
 * the clipped sum (one backward with rescaled rows), Gaussian noise for
 * every parameter from libsodium's CSPRNG, the update; the Poisson sample
 * is drawn too (from a data set of 25× the batch, q = 0.04). Plain steps
 * are the engine's fused mfl_model_sgd_step and the unfused loss_grad +
 * update. Medians of alternating runs; prints a table and writes JSON.
 *
 *   build/bench/bench_dpsgd [--quick] [--out FILE]   (default bench/results/dpsgd.json) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "core/rng.h"
#include "nn/model.h"
#include "privacy/dpsgd.h"

typedef struct {
    const char *spec, *label;
    mfl_loss_kind_t loss;
    size_t batch;
    double goal;
} s_case_t;

typedef struct {
    mfl_model_t *m;
    mfl_dpsgd_t *dp;
    mfl_loss_t loss;
    float *theta, *x, *y, *grad;
    size_t *idx, batch, np;
} s_state_t;

static void s_fused(s_state_t *s)
{
    mfl_model_sgd_step(s->m, s->theta, &s->loss, s->x, s->y, s->batch, 1e-6f);
}

static void s_unfused(s_state_t *s)
{
    mfl_model_loss_grad(s->m, s->theta, &s->loss, s->x, s->y, s->batch, s->grad);
    for (size_t k = 0; k < s->np; k++)
        s->theta[k] -= 1e-6f * s->grad[k];
}

static void s_dp(s_state_t *s)
{
    /* the sample is drawn (its cost counted) but the same rows are used, so
     * both steps see exactly `batch` rows */
    mfl_dpsgd_poisson_sample(s->dp, 25 * s->batch, 0.04, s->idx);
    mfl_dpsgd_params_t p = {1.0, 1.1, 0.04};
    mfl_dpsgd_grad(s->dp, s->m, s->theta, &s->loss, s->x, s->y, s->batch, 25 * s->batch, &p,
                   s->grad, NULL);
    for (size_t k = 0; k < s->np; k++)
        s->theta[k] -= 1e-6f * s->grad[k];
}

static double s_time(void (*fn)(s_state_t *), s_state_t *s, int reps)
{
    double t[64];
    if (reps > 64)
        reps = 64;
    fn(s); /* warm */
    for (int r = 0; r < reps; r++) {
        double t0 = s_bench_now();
        fn(s);
        t[r] = 1e3 * (s_bench_now() - t0);
    }
    return s_bench_median(t, reps);
}

int main(int argc, char **argv)
{
    int quick;
    const char *out;
    if (s_bench_args(argc, argv, "bench_dpsgd", &quick, &out))
        return 2;
    const s_case_t cases[] = {
        {"mlp:13-32-1", "heart MLP 13-32-1, batch 32", MFL_LOSS_BCE, 32, 3.0},
        {"mlp:32-28571-2", "1M MLP 32-28571-2, batch 32", MFL_LOSS_SOFTMAX_CE, 32, 5.0},
        {"cnn4:1x28x28:32:5", "cnn4 1x28x28:32:5, batch 32", MFL_LOSS_SOFTMAX_CE, 32, 0},
    };
    const size_t nc = sizeof cases / sizeof cases[0];
    double fused[8], unfused[8], dp[8];
    for (size_t c = 0; c < nc; c++) {
        char err[256];
        s_state_t s;
        memset(&s, 0, sizeof s);
        s.m = mfl_model_new(cases[c].spec, cases[c].batch, err, sizeof err);
        if (!s.m) {
            fprintf(stderr, "bench_dpsgd: %s\n", err);
            return 1;
        }
        s.dp = mfl_dpsgd_new(s.m);
        s.loss = (mfl_loss_t){cases[c].loss, 1.0f};
        s.batch = cases[c].batch;
        s.np = mfl_model_n_params(s.m);
        size_t ni = mfl_model_n_inputs(s.m), no = mfl_model_n_outputs(s.m);
        s.theta = malloc(s.np * sizeof(float));
        s.grad = malloc(s.np * sizeof(float));
        s.x = malloc(s.batch * ni * sizeof(float));
        s.y = malloc(s.batch * sizeof(float));
        s.idx = malloc(25 * s.batch * sizeof(size_t));
        if (!s.dp || !s.theta || !s.grad || !s.x || !s.y || !s.idx) {
            fprintf(stderr, "bench_dpsgd: out of memory\n");
            return 1;
        }
        mfl_rng_t r;
        mfl_rng_seed(&r, 1, 2);
        mfl_model_init_params(s.m, s.theta, &r);
        for (size_t k = 0; k < s.batch * ni; k++)
            s.x[k] = mfl_rng_normal(&r);
        for (size_t b = 0; b < s.batch; b++)
            s.y[b] = (float)(b % (no > 1 ? no : 2));
        int reps = quick ? 5 : (s.np > 100000 ? 21 : 64);
        fused[c] = unfused[c] = dp[c] = INFINITY;
        for (int round = 0; round < 3; round++) { /* alternate: shared machine */
            fused[c] = fmin(fused[c], s_time(s_fused, &s, reps));
            unfused[c] = fmin(unfused[c], s_time(s_unfused, &s, reps));
            dp[c] = fmin(dp[c], s_time(s_dp, &s, reps));
        }
        printf("%-32s params %8zu  plain fused %8.3f ms  unfused %8.3f ms  DP-SGD %8.3f ms  "
               "ratio %.2fx (vs unfused %.2fx)%s\n",
               cases[c].label, s.np, fused[c], unfused[c], dp[c], dp[c] / fused[c],
               dp[c] / unfused[c],
               cases[c].goal > 0 ? (dp[c] / fused[c] <= cases[c].goal ? "  goal met" : "  GOAL MISSED")
                                 : "");
        mfl_dpsgd_destroy(&s.dp);
        mfl_model_destroy(&s.m);
        free(s.theta);
        free(s.grad);
        free(s.x);
        free(s.y);
        free(s.idx);
    }
    char buf[512];
    const char *path = s_bench_out_path(out, buf, sizeof buf, "dpsgd.json");
    FILE *f = s_bench_open_results("bench_dpsgd", path, "dpsgd");
    if (!f)
        return 1;
    fprintf(f, "  \"machine\": \"shared 2-core host, other work running\",\n  \"runs\": [");
    for (size_t c = 0; c < nc; c++)
        fprintf(f, "%s\n    {\"spec\": \"%s\", \"batch\": %zu, \"plain_fused_ms\": %.4f, "
                   "\"plain_unfused_ms\": %.4f, \"dpsgd_ms\": %.4f, \"ratio\": %.3f, \"goal\": %.1f}",
                c ? "," : "", cases[c].spec, cases[c].batch, fused[c], unfused[c], dp[c],
                dp[c] / fused[c], cases[c].goal);
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", path);
    return 0;
}
