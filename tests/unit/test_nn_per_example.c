/* Per-example gradient norms and DP-SGD's clipped sum, batched, against a
 * naive loop of one 1-row backward per example, for every model kind
 * (linear, MLP, CNN with norm and pool, relation conv) and loss; the
 * clipping bound; the noise's scale; the Poisson sample's rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "nn/model.h"
#include "nn/per_example.h"
#include "privacy/dpsgd.h"

#define B 13 /* rows: not a power of two */

typedef struct {
    const char *spec;
    mfl_loss_kind_t loss;
} s_case_t;

static const s_case_t s_cases[] = {
    {"linear:5-1", MFL_LOSS_BCE},
    {"mlp:5-16-8-3", MFL_LOSS_SOFTMAX_CE},
    {"mlp:5-6-2", MFL_LOSS_MSE},
    {"cnn4:1x16x16:4:3", MFL_LOSS_SOFTMAX_CE},
    {"cnn4:2x16x16:3:0:p3", MFL_LOSS_MSE},
    {"relconv:4x3x3:3:5", MFL_LOSS_MSE},
};

typedef struct {
    mfl_model_t *m;
    float *theta, *x, *y;
    size_t np, nin, nout, yw;
    mfl_loss_t loss;
} s_fix_t;

static void s_fix(s_fix_t *f, const s_case_t *c, uint64_t seed)
{
    char err[256];
    f->m = mfl_model_new(c->spec, 64, err, sizeof err);
    if (!f->m)
        fail_msg("%s: %s", c->spec, err);
    f->np = mfl_model_n_params(f->m);
    f->nin = mfl_model_n_inputs(f->m);
    f->nout = mfl_model_n_outputs(f->m);
    f->loss = (mfl_loss_t){c->loss, 1.0f};
    f->yw = c->loss == MFL_LOSS_MSE ? f->nout : 1;
    f->theta = malloc(f->np * sizeof(float));
    f->x = malloc(B * f->nin * sizeof(float));
    f->y = malloc(B * f->yw * sizeof(float));
    assert_true(f->theta && f->x && f->y);
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 3);
    mfl_model_init_params(f->m, f->theta, &r);
    for (size_t k = 0; k < f->np; k++) /* norm scales away from 1, biases non-zero */
        f->theta[k] += 0.1f * mfl_rng_normal(&r);
    for (size_t k = 0; k < B * f->nin; k++)
        f->x[k] = mfl_rng_normal(&r) * (k % 5 == 0 ? 3.0f : 1.0f);
    for (size_t i = 0; i < B; i++)
        for (size_t k = 0; k < f->yw; k++)
            f->y[i * f->yw + k] = c->loss == MFL_LOSS_MSE       ? mfl_rng_normal(&r)
                                  : c->loss == MFL_LOSS_BCE      ? (float)(i % 2)
                                                                 : (float)(i % f->nout);
}

static void s_unfix(s_fix_t *f)
{
    mfl_model_destroy(&f->m);
    free(f->theta);
    free(f->x);
    free(f->y);
}

/* The naive reference: row i's gradient from a 1-row backward. */
static void s_row_grad(s_fix_t *f, size_t i, float *g)
{
    float l = mfl_model_loss_grad(f->m, f->theta, &f->loss, f->x + i * f->nin, f->y + i * f->yw,
                                  1, g);
    assert_true(isfinite(l));
}

static void test_per_example_norms_match_a_per_row_loop(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof s_cases / sizeof s_cases[0]; c++) {
        s_fix_t f;
        s_fix(&f, &s_cases[c], 10 + c);
        float *g = malloc(f.np * sizeof(float));
        float *out = malloc(B * f.nout * sizeof(float)), *dout = malloc(B * f.nout * sizeof(float));
        double sq[B];
        assert_int_equal(mfl_model_forward(f.m, f.theta, f.x, B, out), 0);
        mfl_loss_eval(&f.loss, out, f.y, B, f.nout, dout);
        for (size_t k = 0; k < B * f.nout; k++)
            dout[k] *= (float)B; /* each row's own loss gradient */
        assert_int_equal(mfl_model_per_example_sqnorms(f.m, f.theta, dout, sq), 0);
        for (size_t i = 0; i < B; i++) {
            s_row_grad(&f, i, g);
            double ref = 0;
            for (size_t k = 0; k < f.np; k++)
                ref += (double)g[k] * g[k];
            if (!(fabs(sq[i] - ref) <= 1e-4 * ref + 1e-12))
                fail_msg("%s row %zu: batched %.9g, per-row %.9g", s_cases[c].spec, i, sq[i], ref);
        }
        free(g);
        free(out);
        free(dout);
        s_unfix(&f);
    }
}

static void test_clipped_sum_matches_a_per_row_loop_and_respects_the_bound(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof s_cases / sizeof s_cases[0]; c++) {
        s_fix_t f;
        s_fix(&f, &s_cases[c], 20 + c);
        float *g = malloc(f.np * sizeof(float)), *ref = calloc(f.np, sizeof(float));
        float *dp = malloc(f.np * sizeof(float));
        mfl_dpsgd_t *d = mfl_dpsgd_new(f.m);
        assert_non_null(d);
        /* A clip norm at the median row norm: about half the rows are clipped. */
        double norms[B];
        for (size_t i = 0; i < B; i++) {
            s_row_grad(&f, i, g);
            double s = 0;
            for (size_t k = 0; k < f.np; k++)
                s += (double)g[k] * g[k];
            norms[i] = sqrt(s);
        }
        double sorted[B];
        memcpy(sorted, norms, sizeof sorted);
        for (size_t i = 0; i < B; i++)
            for (size_t j = i + 1; j < B; j++)
                if (sorted[j] < sorted[i]) {
                    double t = sorted[i];
                    sorted[i] = sorted[j];
                    sorted[j] = t;
                }
        double clip = 0.5 * (sorted[B / 2] + sorted[B / 2 + 1]); /* no row exactly at C */
        size_t want_clipped = 0;
        for (size_t i = 0; i < B; i++) {
            s_row_grad(&f, i, g);
            double scale = norms[i] > clip ? clip / norms[i] : 1.0;
            want_clipped += norms[i] > clip;
            for (size_t k = 0; k < f.np; k++)
                ref[k] += (float)(scale * g[k]);
        }
        size_t n_total = 40; /* q·N = 0.5·40 = 20 */
        mfl_dpsgd_params_t p = {clip, 0.0, 0.5};
        size_t clipped = 0;
        assert_int_equal(mfl_dpsgd_grad(d, f.m, f.theta, &f.loss, f.x, f.y, B, n_total, &p, dp,
                                        &clipped), 0);
        assert_int_equal(clipped, want_clipped);
        double num = 0, den = 0;
        for (size_t k = 0; k < f.np; k++) {
            double r = ref[k] / 20.0;
            num += (dp[k] - r) * (dp[k] - r);
            den += r * r;
        }
        if (!(num <= 1e-9 * den))
            fail_msg("%s: normalised squared error %.3g", s_cases[c].spec, num / den);
        /* The bound: one row alone, whatever its gradient, moves the sum by
         * at most C (checked with a tiny clip, so every row is clipped). */
        p.clip = 1e-3;
        for (size_t i = 0; i < B; i++) {
            assert_int_equal(mfl_dpsgd_grad(d, f.m, f.theta, &f.loss, f.x + i * f.nin,
                                            f.y + i * f.yw, 1, n_total, &p, dp, &clipped), 0);
            double s = 0;
            for (size_t k = 0; k < f.np; k++)
                s += (double)dp[k] * dp[k];
            assert_true(sqrt(s) * 20.0 <= 1e-3 * (1 + 1e-5));
            assert_true(sqrt(s) * 20.0 >= 1e-3 * (1 - 1e-4)); /* clipped, not zeroed */
        }
        mfl_dpsgd_destroy(&d);
        free(g);
        free(ref);
        free(dp);
        s_unfix(&f);
    }
}

static void test_noise_scale_and_poisson_rate(void **state)
{
    (void)state;
    size_t n = 200000;
    float *v = calloc(n, sizeof(float));
    assert_non_null(v);
    char err[128];
    mfl_model_t *m = mfl_model_new("linear:2-1", 4, err, sizeof err);
    mfl_dpsgd_t *d = mfl_dpsgd_new(m);
    assert_non_null(d);
    mfl_dpsgd_add_noise(d, v, n, 3.0);
    double s = 0, s2 = 0;
    for (size_t k = 0; k < n; k++) {
        s += v[k];
        s2 += (double)v[k] * v[k];
    }
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    assert_true(fabs(mean) < 0.05);          /* 5 standard errors (3/sqrt(n) = 0.0067) */
    assert_true(fabs(sd - 3.0) < 0.05);
    size_t *idx = malloc(n * sizeof(size_t));
    assert_non_null(idx);
    size_t k = mfl_dpsgd_poisson_sample(d, n, 0.01, idx);
    assert_true(fabs((double)k - 2000.0) < 5 * sqrt(2000.0 * 0.99));
    size_t first_half = 0;
    for (size_t i = 1; i < k; i++)
        assert_true(idx[i] > idx[i - 1]);
    for (size_t i = 0; i < k; i++)
        first_half += idx[i] < n / 2;
    assert_true(fabs((double)first_half - k / 2.0) < 5 * sqrt(k / 4.0)); /* no drift */
    assert_true(k == 0 || idx[k - 1] < n);
    assert_int_equal(mfl_dpsgd_poisson_sample(d, n, 1.0, idx), n);
    /* two draws differ (fresh randomness, not a fixed stream) */
    float w[8] = {0}, z[8] = {0};
    mfl_dpsgd_add_noise(d, w, 8, 1.0);
    mfl_dpsgd_add_noise(d, z, 8, 1.0);
    assert_true(memcmp(w, z, sizeof w) != 0);
    mfl_dpsgd_destroy(&d);
    mfl_model_destroy(&m);
    free(idx);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_example_norms_match_a_per_row_loop),
        cmocka_unit_test(test_clipped_sum_matches_a_per_row_loop_and_respects_the_bound),
        cmocka_unit_test(test_noise_scale_and_poisson_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
