/* Layer kernels against naive reference loops written straight from the
 * definitions (double accumulation). Agreement is measured as normalised
 * MSE, Σ(a−b)² / Σb², which must stay below 1e-10 (float round-off of
 * sums of a few hundred terms is ~1e-13 relative in MSE terms). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nn/kernels.h"

#define NMSE_TOL 1e-10

static double s_nmse(const float *a, const double *ref, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - ref[i]) * (a[i] - ref[i]);
        s += ref[i] * ref[i];
    }
    return s > 0 ? d / s : d;
}

static float *s_randn(mfl_rng_t *r, size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = mfl_rng_normal(r);
    return p;
}

/* x at (c, y, x) with zero padding outside the image. */
static double s_px(const float *img, size_t h, size_t w, size_t ci, long yy, long xx)
{
    if (yy < 0 || xx < 0 || yy >= (long)h || xx >= (long)w)
        return 0.0;
    return img[(ci * h + (size_t)yy) * w + (size_t)xx];
}

static void s_conv_check(size_t H, size_t W)
{
    const size_t B = 2, C = 3, F = 4, HW = H * W;
    mfl_rng_t r;
    mfl_rng_seed(&r, 7, 0);
    float *x = s_randn(&r, B * C * HW), *k = s_randn(&r, F * C * 9), *bias = s_randn(&r, F);
    float *dy = s_randn(&r, B * F * HW);
    float *y = calloc(B * F * HW, 4), *dk = calloc(F * C * 9, 4), *db = calloc(F, 4);
    float *dx = calloc(B * C * HW, 4), *cols = calloc(C * 9 * HW, 4), *dcols = calloc(C * 9 * HW, 4);
    double *ry = calloc(B * F * HW, 8), *rdk = calloc(F * C * 9, 8), *rdb = calloc(F, 8);
    double *rdx = calloc(B * C * HW, 8);

    mfl_nn_conv3_forward(x, B, C, H, W, k, bias, F, y, cols, 0);
    mfl_nn_conv3_backward(x, B, C, H, W, k, F, dy, dk, db, dx, 0, cols, dcols);
    /* y[b,f,i,j] = bias[f] + Σ_c,u,v k[f,c,u,v]·x[b,c,i+u−1,j+v−1] and the
     * three gradients by the chain rule on that same sum. */
    for (size_t b = 0; b < B; b++)
        for (size_t f = 0; f < F; f++)
            for (size_t i = 0; i < H; i++)
                for (size_t j = 0; j < W; j++) {
                    size_t o = ((b * F + f) * H + i) * W + j;
                    double s = bias[f];
                    rdb[f] += dy[o];
                    for (size_t c = 0; c < C; c++)
                        for (long u = 0; u < 3; u++)
                            for (long v = 0; v < 3; v++) {
                                long yy = (long)i + u - 1, xx = (long)j + v - 1;
                                size_t ki = ((f * C + c) * 3 + (size_t)u) * 3 + (size_t)v;
                                double xv = s_px(x + b * C * HW, H, W, c, yy, xx);
                                s += k[ki] * xv;
                                rdk[ki] += dy[o] * xv;
                                if (yy >= 0 && xx >= 0 && yy < (long)H && xx < (long)W)
                                    rdx[((b * C + c) * H + (size_t)yy) * W + (size_t)xx] +=
                                        dy[o] * k[ki];
                            }
                    ry[o] = s;
                }
    assert_true(s_nmse(y, ry, B * F * HW) < NMSE_TOL);
    assert_true(s_nmse(dk, rdk, F * C * 9) < NMSE_TOL);
    assert_true(s_nmse(db, rdb, F) < NMSE_TOL);
    assert_true(s_nmse(dx, rdx, B * C * HW) < NMSE_TOL);

    /* accumulate flags add rather than overwrite */
    mfl_nn_conv3_forward(x, B, C, H, W, k, NULL, F, y, cols, 1);
    for (size_t i = 0; i < B * F * HW; i++) {
        size_t f = (i / HW) % F;
        ry[i] = 2 * ry[i] - bias[f];
    }
    assert_true(s_nmse(y, ry, B * F * HW) < NMSE_TOL);
    mfl_nn_conv3_backward(x, B, C, H, W, k, F, dy, NULL, NULL, dx, 1, cols, dcols);
    for (size_t i = 0; i < B * C * HW; i++)
        rdx[i] *= 2;
    assert_true(s_nmse(dx, rdx, B * C * HW) < NMSE_TOL);

    free(x); free(k); free(bias); free(dy); free(y); free(dk); free(db); free(dx);
    free(cols); free(dcols); free(ry); free(rdk); free(rdb); free(rdx);
}

/* Odd, tiny and degenerate (1-pixel) images exercise the padding edges. */
static void test_conv3_forward_and_backward_match_naive(void **state)
{
    (void)state;
    s_conv_check(7, 5);
    s_conv_check(2, 3);
    s_conv_check(1, 1);
    s_conv_check(1, 4);
    s_conv_check(28, 28);
}

static void test_dense_matches_naive(void **state)
{
    (void)state;
    const size_t B = 5, I = 9, O = 6;
    mfl_rng_t r;
    mfl_rng_seed(&r, 8, 0);
    float *x = s_randn(&r, B * I), *w = s_randn(&r, O * I), *bias = s_randn(&r, O);
    float *dy = s_randn(&r, B * O), *y = calloc(B * O, 4), *dw = calloc(O * I, 4);
    float *db = calloc(O, 4), *dx = calloc(B * I, 4);
    double *ry = calloc(B * O, 8), *rdw = calloc(O * I, 8), *rdb = calloc(O, 8), *rdx = calloc(B * I, 8);
    mfl_nn_dense_forward(x, B, I, w, bias, O, y, 0);
    mfl_nn_dense_backward(x, B, I, w, O, dy, dw, db, dx, 0);
    for (size_t b = 0; b < B; b++)
        for (size_t o = 0; o < O; o++) {
            double s = bias[o];
            for (size_t i = 0; i < I; i++) {
                s += (double)w[o * I + i] * x[b * I + i];
                rdw[o * I + i] += (double)dy[b * O + o] * x[b * I + i];
                rdx[b * I + i] += (double)dy[b * O + o] * w[o * I + i];
            }
            ry[b * O + o] = s;
            rdb[o] += dy[b * O + o];
        }
    assert_true(s_nmse(y, ry, B * O) < NMSE_TOL);
    assert_true(s_nmse(dw, rdw, O * I) < NMSE_TOL);
    assert_true(s_nmse(db, rdb, O) < NMSE_TOL);
    assert_true(s_nmse(dx, rdx, B * I) < NMSE_TOL);
    free(x); free(w); free(bias); free(dy); free(y); free(dw); free(db); free(dx);
    free(ry); free(rdw); free(rdb); free(rdx);
}

static void test_maxpool_matches_naive(void **state)
{
    (void)state;
    const size_t B = 2, C = 3, H = 7, W = 6, OH = 3, OW = 3;
    mfl_rng_t r;
    mfl_rng_seed(&r, 9, 0);
    float *x = s_randn(&r, B * C * H * W), *dy = s_randn(&r, B * C * OH * OW);
    float *y = calloc(B * C * OH * OW, 4), *dx = calloc(B * C * H * W, 4);
    float *g = calloc(B * C * OH * OW, 4);
    uint32_t *idx = calloc(B * C * OH * OW, sizeof *idx);
    mfl_nn_maxpool2_forward(x, B, C, H, W, y, idx);
    mfl_nn_maxpool2_scatter(dy, idx, B, C * H * W, C * OH * OW, dx);
    mfl_nn_maxpool2_gather(x, idx, B, C * H * W, C * OH * OW, g);
    double *rdx = calloc(B * C * H * W, 8);
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++)
            for (size_t i = 0; i < OH; i++)
                for (size_t j = 0; j < OW; j++) {
                    size_t base = ((b * C + c) * H + 2 * i) * W + 2 * j, best = base;
                    size_t cand[4] = {base, base + 1, base + W, base + W + 1};
                    for (int q = 0; q < 4; q++)
                        if (x[cand[q]] > x[best])
                            best = cand[q];
                    size_t o = ((b * C + c) * OH + i) * OW + j;
                    assert_true(y[o] == x[best]);
                    assert_true(g[o] == x[best]);
                    rdx[best] += dy[o];
                }
    for (size_t i = 0; i < B * C * H * W; i++)
        assert_true(dx[i] == (float)rdx[i]); /* one term each: exact */
    free(x); free(dy); free(y); free(dx); free(g); free(idx); free(rdx);
}

static void test_relu(void **state)
{
    (void)state;
    float x[6] = {-2, -0.0f, 0, 1e-30f, 3, -1e-30f}, y[6], m[6], in[6] = {1, 2, 3, 4, 5, 6};
    mfl_nn_relu_forward(x, 6, y);
    mfl_nn_relu_mask(y, in, 6, m);
    const float want_y[6] = {0, 0, 0, 1e-30f, 3, 0}, want_m[6] = {0, 0, 0, 4, 5, 0};
    for (int i = 0; i < 6; i++) {
        assert_true(y[i] == want_y[i]);
        assert_true(m[i] == want_m[i]);
    }
    mfl_nn_relu_forward(x, 6, x); /* in place */
    assert_true(x[4] == 3 && x[0] == 0);
}

/* The fused dense epilogues equal their unfused compositions exactly. */
static void test_fused_bias_relu_kernels(void **state)
{
    (void)state;
    const size_t B = 3, N = 37;
    mfl_rng_t r;
    mfl_rng_seed(&r, 12, 0);
    float *y = s_randn(&r, B * N), *bias = s_randn(&r, N), *dy = s_randn(&r, B * N);
    float *fused = malloc(B * N * 4), *plain = malloc(B * N * 4), *m1 = malloc(B * N * 4);
    float *m2 = malloc(B * N * 4), *db = calloc(N, 4);
    memcpy(fused, y, B * N * 4);
    mfl_nn_bias_relu(fused, bias, B, N);
    for (size_t i = 0; i < B * N; i++)
        plain[i] = y[i] + bias[i % N];
    mfl_nn_relu_forward(plain, B * N, plain);
    assert_memory_equal(fused, plain, B * N * 4);
    mfl_nn_relu_mask_bias_grad(fused, dy, B, N, m1, db);
    mfl_nn_relu_mask(fused, dy, B * N, m2);
    assert_memory_equal(m1, m2, B * N * 4);
    for (size_t o = 0; o < N; o++) {
        float want = 0;
        for (size_t b = 0; b < B; b++)
            want += m2[b * N + o];
        assert_true(db[o] == want);
    }
    free(y); free(bias); free(dy); free(fused); free(plain); free(m1); free(m2); free(db);
}

/* Forward of the per-sample norm from its definition, in double. */
static void test_norm_forward_matches_naive(void **state)
{
    (void)state;
    const size_t B = 3, C = 4, S = 5, M = C * S;
    mfl_rng_t r;
    mfl_rng_seed(&r, 10, 0);
    float *x = s_randn(&r, B * M), *gm = s_randn(&r, C), *bt = s_randn(&r, C);
    for (size_t i = 0; i < B * M; i++)
        x[i] = 100.0f + 3.0f * x[i]; /* a large mean: the two-pass variance matters */
    float *y = calloc(B * M, 4), *xh = calloc(B * M, 4), *rs = calloc(B, 4);
    double *ry = calloc(B * M, 8);
    mfl_nn_norm_forward(x, B, C, S, gm, bt, y, xh, rs);
    for (size_t b = 0; b < B; b++) {
        double mean = 0, var = 0;
        for (size_t i = 0; i < M; i++)
            mean += x[b * M + i];
        mean /= M;
        for (size_t i = 0; i < M; i++)
            var += (x[b * M + i] - mean) * (x[b * M + i] - mean);
        var /= M;
        for (size_t c = 0; c < C; c++)
            for (size_t s = 0; s < S; s++) {
                size_t i = b * M + c * S + s;
                ry[i] = gm[c] * (x[i] - mean) / sqrt(var + MFL_NN_NORM_EPS) + bt[c];
            }
    }
    assert_true(s_nmse(y, ry, B * M) < NMSE_TOL);
    free(x); free(gm); free(bt); free(y); free(xh); free(rs); free(ry);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv3_forward_and_backward_match_naive),
        cmocka_unit_test(test_dense_matches_naive),
        cmocka_unit_test(test_maxpool_matches_naive),
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_fused_bias_relu_kernels),
        cmocka_unit_test(test_norm_forward_matches_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
