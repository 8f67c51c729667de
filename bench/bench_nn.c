/* Numerics throughput: OpenBLAS sgemm as the in-run reference, then the
 * model's training steps (unfused: loss_grad + SGD; fused:
 * mfl_model_sgd_step), the fused step's own sgemm calls replayed alone on
 * the same operands (the ceiling a step can reach while it calls the BLAS
 * this way) and Hessian-vector products.
 *
 *   make bench-bins && build/bench/bench_nn [bench/results/nn.json]
 *
 * Step times are medians of repeated timings; GFLOP/s (and sgemm) use the
 * fastest repeat, which is what the hardware does when nobody else runs on
 * the shared cores.
 * GFLOP/s of a training step counts only the matrix products (forward
 * 2·B·in·out per dense layer, backward the same again for dW and for dx
 * except the first layer's); ratios compare against sgemm measured in
 * this same run and against the PyTorch 1.13 figures of ANCHORS.md. */
#include <cblas.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "nn/blas.h"
#include "nn/loss.h"
#include "nn/model.h"
#include "nn/optim.h"
#include "bench_common.h"

#define MAX_SAMPLES 400

/* Repeats fn until `budget` seconds or `max_n` samples; returns the median
 * seconds and, if `best` is not NULL, the fastest sample (on a shared
 * machine the minimum is the better estimate of uncontended speed). */
typedef void (*s_fn_t)(void *ctx);
static double s_time(s_fn_t fn, void *ctx, int max_n, double budget, double *best)
{
    double samples[MAX_SAMPLES] = {0};
    int n = 0;
    fn(ctx); /* warm-up: caches, BLAS thread start, lazy buffers */
    double start = s_bench_now();
    while (n < 5 || (n < max_n && n < MAX_SAMPLES && s_bench_now() - start < budget)) {
        double t0 = s_bench_now();
        fn(ctx);
        samples[n++] = s_bench_now() - t0;
    }
    double med = s_bench_median(samples, n); /* sorts: samples[0] is the minimum */
    if (best)
        *best = samples[0];
    return med;
}

typedef struct {
    int m, n, k;
    float *a, *b, *c;
} gemm_t;

static void s_gemm(void *p)
{
    gemm_t *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k,
                g->b, g->n, 0.0f, g->c, g->n);
}

static double s_sgemm_gflops(int m, int n, int k)
{
    gemm_t g = {m, n, k, calloc((size_t)m * k, 4), calloc((size_t)k * n, 4),
                calloc((size_t)m * n, 4)};
    for (size_t i = 0; i < (size_t)m * k; i++)
        g.a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        g.b[i] = (float)(i % 5) * 0.1f;
    double best, t = s_time(s_gemm, &g, 200, 0.5, &best);
    (void)t;
    free(g.a);
    free(g.b);
    free(g.c);
    return 2.0 * m * n * k / best / 1e9;
}

typedef struct {
    mfl_model_t *m;
    mfl_loss_t loss;
    mfl_optim_t *opt;
    float *theta, *grad, *x, *y, *v, *hv;
    size_t batch;
} step_t;

static void s_step(void *p)
{
    step_t *s = p;
    mfl_model_loss_grad(s->m, s->theta, &s->loss, s->x, s->y, s->batch, s->grad);
    mfl_optim_step(s->opt, s->theta, s->grad);
}

static void s_fused(void *p)
{
    step_t *s = p;
    mfl_model_sgd_step(s->m, s->theta, &s->loss, s->x, s->y, s->batch, 1e-4f);
}

static void s_hvp(void *p)
{
    step_t *s = p;
    mfl_model_hvp(s->m, s->theta, &s->loss, s->x, s->y, s->batch, s->v, s->hv);
}

static void s_step_init(step_t *s, const char *spec, mfl_loss_kind_t kind, size_t batch)
{
    char err[256];
    memset(s, 0, sizeof *s);
    s->m = mfl_model_new(spec, batch, err, sizeof err);
    if (!s->m) {
        fprintf(stderr, "bench_nn: %s\n", err);
        exit(1);
    }
    s->batch = batch;
    s->loss = (mfl_loss_t){kind, 1.0f};
    size_t n = mfl_model_n_params(s->m), ni = mfl_model_n_inputs(s->m);
    size_t no = mfl_model_n_outputs(s->m);
    s->theta = calloc(n, 4);
    s->grad = calloc(n, 4);
    s->v = calloc(n, 4);
    s->hv = calloc(n, 4);
    s->x = calloc(batch * ni, 4);
    s->y = calloc(batch * no, 4);
    mfl_rng_t r;
    mfl_rng_seed(&r, 1, 2);
    mfl_model_init_params(s->m, s->theta, &r);
    for (size_t i = 0; i < batch * ni; i++)
        s->x[i] = mfl_rng_normal(&r);
    for (size_t i = 0; i < n; i++)
        s->v[i] = mfl_rng_normal(&r);
    for (size_t b = 0; b < batch; b++)
        s->y[b] = kind == MFL_LOSS_SOFTMAX_CE ? (float)mfl_rng_below(&r, no) : (float)(b % 2);
    mfl_optim_config_t c = mfl_optim_defaults(MFL_OPTIM_SGD, 1e-4f);
    s->opt = mfl_optim_new(&c, n);
}

static void s_step_free(step_t *s)
{
    mfl_model_destroy(&s->m);
    mfl_optim_destroy(&s->opt);
    free(s->theta);
    free(s->grad);
    free(s->v);
    free(s->hv);
    free(s->x);
    free(s->y);
}

/* The ceiling: the fused step's own sgemm calls, recorded during one step
 * (this file defines cblas_sgemm, which the library's kernels then call;
 * it forwards to OpenBLAS's) and replayed alone on the same operands. */
typedef struct {
    enum CBLAS_ORDER order;
    enum CBLAS_TRANSPOSE ta, tb;
    blasint m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} s_call_t;

#define S_MAX_CALLS 8192

typedef void (*s_sgemm_fn_t)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE,
                             blasint, blasint, blasint, float, const float *, blasint,
                             const float *, blasint, float, float *, blasint);
static s_sgemm_fn_t s_real_sgemm;
static s_call_t s_calls[S_MAX_CALLS];
static int s_n_calls, s_recording, s_overflow;

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                 const enum CBLAS_TRANSPOSE tb, const blasint m, const blasint n,
                 const blasint k, const float alpha, const float *a, const blasint lda,
                 const float *b, const blasint ldb, const float beta, float *c,
                 const blasint ldc)
{
    if (!s_real_sgemm) {
        void *sym = dlsym(RTLD_NEXT, "cblas_sgemm");
        if (!sym) {
            fprintf(stderr, "bench_nn: OpenBLAS's cblas_sgemm not found\n");
            exit(1);
        }
        memcpy(&s_real_sgemm, &sym, sizeof sym); /* object → function pointer */
    }
    if (s_recording) {
        if (s_n_calls < S_MAX_CALLS)
            s_calls[s_n_calls++] = (s_call_t){order, ta, tb, m, n, k, lda, ldb, ldc,
                                              alpha, beta, a, b, c};
        else
            s_overflow = 1;
    }
    s_real_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void s_replay(void *p)
{
    (void)p;
    for (int i = 0; i < s_n_calls; i++) {
        const s_call_t *c = &s_calls[i];
        s_real_sgemm(c->order, c->ta, c->tb, c->m, c->n, c->k, c->alpha, c->a, c->lda, c->b,
                     c->ldb, c->beta, c->c, c->ldc);
    }
}

/* Records the sgemm calls of one fused step of `s`. */
static void s_record(step_t *s)
{
    s_n_calls = 0;
    s_overflow = 0;
    s_recording = 1;
    s_fused(s);
    s_recording = 0;
    if (s_overflow) {
        fprintf(stderr, "bench_nn: more than %d sgemm calls in one step\n", S_MAX_CALLS);
        exit(1);
    }
}

/* Matrix-product FLOPs of forward + backward for an MLP spec's widths. */
static double s_mlp_flops(const size_t *w, int layers, size_t batch)
{
    double f = 0;
    for (int i = 0; i < layers; i++) {
        double mm = 2.0 * (double)batch * (double)w[i] * (double)w[i + 1];
        f += mm * (i == 0 ? 2 : 3); /* forward, dW, and dx past the first layer */
    }
    return f;
}

/* cnn4 conv FLOPs (forward + dK + dx past the first block) + head. */
static double s_cnn4_flops(size_t c, size_t hw, size_t f, size_t k, size_t batch)
{
    double total = 0;
    size_t side = hw, ch = c;
    for (int b = 0; b < 4; b++) {
        double mm = 2.0 * (double)batch * (double)f * (double)ch * 9 * (double)(side * side);
        total += mm * (b == 0 ? 2 : 3);
        ch = f;
        side /= 2;
    }
    return total + 2.0 * 2 * (double)batch * (double)(f * side * side) * (double)k;
}

typedef struct {
    const char *spec, *label;
    mfl_loss_kind_t loss;
    size_t batch;
    double flops, torch_lo, torch_hi; /* PyTorch ms/step from ANCHORS.md; 0 = none */
    double ms, hvp_ms;  /* medians */
    double best_ms;     /* fastest step */
    double fused_ms, fused_best_ms; /* mfl_model_sgd_step: median, fastest */
    double gemm_best_ms;            /* the step's sgemm calls alone, fastest */
} s_run_t;



#define S_NRUNS 4

/* Measures every run at the current BLAS thread count, re-measures the
 * 1024³ sgemm reference (*peak becomes the faster of the two: on a shared
 * machine one measurement of it may land in someone else's burst), then
 * prints the table against it. */
static void s_run_steps(s_run_t *runs, double *peak)
{
    const s_run_t defs[S_NRUNS] = {
        {"mlp:16-64-64-1", "mlp 16-64-64-1, batch 32", MFL_LOSS_BCE, 32,
         s_mlp_flops((size_t[]){16, 64, 64, 1}, 3, 32), 0.19, 0.19, 0, 0, 0, 0, 0, 0},
        {"mlp:32-28571-2", "mlp 32-28571-2 (1M), batch 32", MFL_LOSS_SOFTMAX_CE, 32,
         s_mlp_flops((size_t[]){32, 28571, 2}, 2, 32), 5.7, 13.6, 0, 0, 0, 0, 0, 0},
        {"linear:13-1", "linear 13-1, batch 32", MFL_LOSS_BCE, 32,
         s_mlp_flops((size_t[]){13, 1}, 1, 32), 0.1, 0.1, 0, 0, 0, 0, 0, 0},
        {"cnn4:1x28x28:64:5", "cnn4 1x28x28:64:5, 80 images", MFL_LOSS_SOFTMAX_CE, 80,
         s_cnn4_flops(1, 28, 64, 5, 80), 0, 0, 0, 0, 0, 0, 0, 0},
    };
    const int nr = S_NRUNS;
    memcpy(runs, defs, sizeof defs);
    for (int i = 0; i < nr; i++) {
        step_t s;
        s_step_init(&s, runs[i].spec, runs[i].loss, runs[i].batch);
        int reps = runs[i].flops > 1e9 ? 15 : 200;
        /* Unfused, fused and sgemm-only alternate three times and keep
         * their best median and fastest sample, so a burst of load from
         * another process does not land on one of them only. */
        runs[i].ms = runs[i].fused_ms = runs[i].best_ms = runs[i].fused_best_ms = INFINITY;
        runs[i].gemm_best_ms = INFINITY;
        s_record(&s);
        for (int round = 0; round < 3; round++) {
            double best, med = 1e3 * s_time(s_step, &s, reps, 0.4, &best);
            runs[i].ms = fmin(runs[i].ms, med);
            runs[i].best_ms = fmin(runs[i].best_ms, 1e3 * best);
            med = 1e3 * s_time(s_fused, &s, reps, 0.4, &best);
            runs[i].fused_ms = fmin(runs[i].fused_ms, med);
            runs[i].fused_best_ms = fmin(runs[i].fused_best_ms, 1e3 * best);
            s_time(s_replay, NULL, reps, 0.4, &best);
            runs[i].gemm_best_ms = fmin(runs[i].gemm_best_ms, 1e3 * best);
        }
        runs[i].hvp_ms = 1e3 * s_time(s_hvp, &s, reps, 1.0, NULL);
        s_step_free(&s);
    }
    double again = s_sgemm_gflops(1024, 1024, 1024);
    printf("sgemm 1024x1024x1024 again after the steps: %.1f GF/s (before: %.1f); ratios use"
           " the faster\n", again, *peak);
    *peak = fmax(*peak, again);
    printf("%-32s %11s %9s %9s %8s %8s %9s %10s %9s\n", "training step", "", "ms/step",
           "best ms", "GFLOP/s", "/sgemm", "vs torch", "hvp ms", "hvp/step");
    for (int i = 0; i < nr; i++) {
        double gf = runs[i].flops / (runs[i].best_ms * 1e-3) / 1e9;
        double gf_fused = runs[i].flops / (runs[i].fused_best_ms * 1e-3) / 1e9;
        double gf_gemm = runs[i].flops / (runs[i].gemm_best_ms * 1e-3) / 1e9;
        char torch[32] = "-";
        if (runs[i].torch_lo > 0) {
            if (runs[i].torch_hi > runs[i].torch_lo)
                snprintf(torch, sizeof torch, "%.1f-%.1fx", runs[i].torch_lo / runs[i].ms,
                         runs[i].torch_hi / runs[i].ms);
            else
                snprintf(torch, sizeof torch, "%.1fx", runs[i].torch_lo / runs[i].ms);
        }
        printf("%-32s %11s %9.3f %9.3f %8.1f %8.2f %9s %10.3f %9.2f\n", runs[i].label, "step",
               runs[i].ms, runs[i].best_ms, gf, gf / *peak, torch, runs[i].hvp_ms,
               runs[i].hvp_ms / runs[i].ms);
        if (runs[i].torch_lo > 0) {
            if (runs[i].torch_hi > runs[i].torch_lo)
                snprintf(torch, sizeof torch, "%.1f-%.1fx", runs[i].torch_lo / runs[i].fused_ms,
                         runs[i].torch_hi / runs[i].fused_ms);
            else
                snprintf(torch, sizeof torch, "%.1fx", runs[i].torch_lo / runs[i].fused_ms);
        }
        printf("%-32s %11s %9.3f %9.3f %8.1f %8.2f %9s\n", "", "fused step", runs[i].fused_ms,
               runs[i].fused_best_ms, gf_fused, gf_fused / *peak, torch);
        printf("%-32s %11s %9s %9.3f %8.1f %8.2f   (fused step reaches %.2f of it)\n", "",
               "sgemm only", "-", runs[i].gemm_best_ms, gf_gemm, gf_gemm / *peak,
               runs[i].gemm_best_ms / runs[i].fused_best_ms);
    }
}

int main(int argc, char **argv)
{
    const char *out_path = argc > 1 ? argv[1] : "bench/results/nn.json";
    int threads = openblas_get_num_threads();
    printf("bench_nn: OpenBLAS %d thread(s)\n\n", threads);

    /* 1. The reference: sgemm at a large square size and at layer shapes. */
    struct {
        const char *what;
        int m, n, k;
        double gf;
    } g[] = {
        {"1024x1024x1024", 1024, 1024, 1024, 0},
        {"mlp16 fc2 fwd 32x64x64", 32, 64, 64, 0},
        {"mlp1M fc1 fwd 32x28571x32", 32, 28571, 32, 0},
        {"mlp1M fc1 dW 28571x32x32", 28571, 32, 32, 0},
        {"cnn4 block2 64x196x576", 64, 196, 576, 0},
        {"cnn4 block1 64x784x9", 64, 784, 9, 0},
    };
    const int ng = (int)(sizeof g / sizeof g[0]);
    printf("%-30s %10s\n", "sgemm (M x N x K)", "best GF/s");
    for (int i = 0; i < ng; i++) {
        g[i].gf = s_sgemm_gflops(g[i].m, g[i].n, g[i].k);
        printf("%-30s %10.1f\n", g[i].what, g[i].gf);
    }
    /* A step at T BLAS threads is compared with sgemm at T threads: a
     * one-thread step against a two-thread peak would halve its ratio. */
    double peak[2] = {g[0].gf, 0};
    mfl_blas_set_threads(1);
    peak[1] = s_sgemm_gflops(1024, 1024, 1024);
    mfl_blas_set_threads(threads);
    printf("%-30s %10.1f\n", "1024x1024x1024, 1 thread", peak[1]);

    /* 2. Training steps (loss + gradient + SGD update), with the BLAS on
     * both cores and then on one (a daemon running one worker per core
     * calls mfl_blas_set_threads(1)). */
    s_run_t runs[2][S_NRUNS];
    int thread_counts[2] = {threads, 1};
    for (int k = 0; k < 2; k++) {
        mfl_blas_set_threads(thread_counts[k]);
        printf("\nBLAS threads: %d\n", thread_counts[k]);
        s_run_steps(runs[k], &peak[k]);
    }
    mfl_blas_set_threads(threads);
    const int nr = S_NRUNS;
    printf("\n(ms/step and hvp ms are medians; GFLOP/s and sgemm use the fastest sample, the"
           " better estimate on a shared machine; vs torch = PyTorch 1.13 ms/step from"
           " ANCHORS.md / our median, >1 = faster; a step is loss + gradient + SGD update;"
           " fused = mfl_model_sgd_step; sgemm only = the fused step's sgemm calls alone at the"
           " same shapes, its ceiling; step, fused and sgemm-only alternate three times, best"
           " of each kept)\n");

    FILE *f = fopen(out_path, "w");
    if (!f) {
        fprintf(stderr, "bench_nn: cannot write %s\n", out_path);
        return 1;
    }
    fprintf(f, "{\n  \"blas_threads\": %d,\n  \"sgemm_gflops\": {", threads);
    for (int i = 0; i < ng; i++)
        fprintf(f, "%s\n    \"%s\": %.2f", i ? "," : "", g[i].what, g[i].gf);
    fprintf(f, ",\n    \"1024x1024x1024 1 thread\": %.2f", peak[1]);
    fprintf(f, "\n  },\n  \"reference_gflops_used\": {\"%d threads\": %.2f, \"1 thread\": %.2f",
            threads, peak[0], peak[1]);
    fprintf(f, "\n  },\n  \"steps\": [");
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < nr; i++) {
            const s_run_t *r = &runs[k][i];
            double gf = r->flops / (r->best_ms * 1e-3) / 1e9;
            fprintf(f,
                    "%s\n    {\"spec\": \"%s\", \"batch\": %zu, \"blas_threads\": %d, "
                    "\"ms_per_step_median\": %.4f, \"ms_per_step_best\": %.4f, "
                    "\"gflops_best\": %.2f, \"ratio_to_sgemm_1024_same_threads\": %.3f, "
                    "\"torch_ms\": [%.2f, %.2f], \"hvp_ms_median\": %.4f, "
                    "\"fused_ms_per_step_median\": %.4f, \"fused_ms_per_step_best\": %.4f, "
                    "\"fused_ratio_to_sgemm_1024_same_threads\": %.3f, "
                    "\"sgemm_only_ms_best\": %.4f, \"fused_fraction_of_sgemm_only\": %.3f}",
                    k + i ? "," : "", r->spec, r->batch, thread_counts[k], r->ms, r->best_ms, gf,
                    gf / peak[k], r->torch_lo, r->torch_hi, r->hvp_ms, r->fused_ms,
                    r->fused_best_ms, r->flops / (r->fused_best_ms * 1e-3) / 1e9 / peak[k],
                    r->gemm_best_ms, r->gemm_best_ms / r->fused_best_ms);
        }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", out_path);
    return 0;
}
