/* Losses (values, stability, gradients, Hessian products, refusals) and
 * optimisers (exact SGD step, convergence, state export). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/loss.h"
#include "nn/optim.h"

static void test_loss_values_by_hand(void **state)
{
    (void)state;
    mfl_loss_t ce = {MFL_LOSS_SOFTMAX_CE, 1}, bce = {MFL_LOSS_BCE, 2}, mse = {MFL_LOSS_MSE, 1};
    float z[6] = {1, 2, 3, 0, 0, 0}, y[2] = {2, 0};
    double want = (log(exp(1) + exp(2) + exp(3)) - 3 + log(3.0)) / 2;
    assert_float_equal(mfl_loss_eval(&ce, z, y, 2, 3, NULL), want, 1e-6);
    /* BCE: row 1 positive (weight 2), row 2 negative. */
    float zb[2] = {0.5f, -1.0f}, yb[2] = {1, 0};
    want = (2 * log1p(exp(-0.5)) + log1p(exp(-1.0))) / 2;
    assert_float_equal(mfl_loss_eval(&bce, zb, yb, 2, 1, NULL), want, 1e-6);
    float o[4] = {1, 2, 3, 4}, t[4] = {0, 2, 5, 4};
    assert_float_equal(mfl_loss_eval(&mse, o, t, 2, 2, NULL), (1.0 + 4.0) / 4, 1e-7);
}

static void test_loss_is_stable_for_huge_logits(void **state)
{
    (void)state;
    mfl_loss_t ce = {MFL_LOSS_SOFTMAX_CE, 1}, bce = {MFL_LOSS_BCE, 1};
    float z[3] = {1000, -1000, 999}, y[1] = {1}, d[3];
    float l = mfl_loss_eval(&ce, z, y, 1, 3, d);
    assert_true(isfinite(l));
    assert_float_equal(l, 2000 + log1p(exp(-1.0)), 1e-2);
    for (int i = 0; i < 3; i++)
        assert_true(isfinite(d[i]));
    float zb[2] = {500, -500}, yb[2] = {0, 1}, db[2];
    l = mfl_loss_eval(&bce, zb, yb, 2, 1, db);
    assert_float_equal(l, 500, 1e-3);
    assert_float_equal(db[0], 0.5, 1e-6);
    assert_float_equal(db[1], -0.5, 1e-6);
}

/* dL/dout and the output Hessian product against central differences
 * (double), for every loss. Tolerance 1e-3 relative: the loss is float. */
static void test_loss_gradients_and_hessians(void **state)
{
    (void)state;
    const size_t B = 3, N = 4;
    float z[12] = {0.3f, -1.2f, 2.0f, 0.1f, 1.5f, 0.2f, -0.4f, 0.9f, -2.0f, 0.6f, 0.0f, 1.1f};
    float r[12] = {1, -0.5f, 0.25f, 2, -1, 0.5f, 1.5f, -2, 0.3f, 0.7f, -0.2f, 1};
    struct {
        mfl_loss_t loss;
        size_t n;
        float y[12];
    } cases[] = {
        {{MFL_LOSS_SOFTMAX_CE, 1}, N, {3, 0, 2}},
        {{MFL_LOSS_BCE, 3}, 1, {1, 0, 1}},
        {{MFL_LOSS_MSE, 1}, N, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
    };
    for (size_t k = 0; k < 3; k++) {
        const size_t n = cases[k].n, tot = B * n;
        float d[12], hr[12], zp[12], dp[12], dm[12];
        mfl_loss_eval(&cases[k].loss, z, cases[k].y, B, n, d);
        assert_int_equal(mfl_loss_hvp(&cases[k].loss, z, cases[k].y, B, n, r, hr), 0);
        const float h = 1e-2f;
        for (size_t i = 0; i < tot; i++) {
            memcpy(zp, z, sizeof zp);
            zp[i] = z[i] + h;
            double lp = mfl_loss_eval(&cases[k].loss, zp, cases[k].y, B, n, NULL);
            zp[i] = z[i] - h;
            double lm = mfl_loss_eval(&cases[k].loss, zp, cases[k].y, B, n, NULL);
            assert_float_equal(d[i], (lp - lm) / (2 * h), 1e-3);
        }
        for (size_t i = 0; i < tot; i++)
            zp[i] = z[i] + h * r[i];
        mfl_loss_eval(&cases[k].loss, zp, cases[k].y, B, n, dp);
        for (size_t i = 0; i < tot; i++)
            zp[i] = z[i] - h * r[i];
        mfl_loss_eval(&cases[k].loss, zp, cases[k].y, B, n, dm);
        for (size_t i = 0; i < tot; i++)
            assert_float_equal(hr[i], (dp[i] - dm[i]) / (2 * h), 1e-3);
    }
}

static void test_loss_refuses_bad_targets(void **state)
{
    (void)state;
    mfl_loss_t ce = {MFL_LOSS_SOFTMAX_CE, 1}, bce = {MFL_LOSS_BCE, 1};
    float z[4] = {1, 2, 3, 4}, d[4] = {9, 9, 9, 9}, r[4] = {0};
    float bad_ce[][2] = {{0, 2}, {-1, 0}, {0.5f, 0}, {NAN, 0}};
    for (size_t i = 0; i < 4; i++) {
        assert_true(isnan(mfl_loss_eval(&ce, z, bad_ce[i], 2, 2, d)));
        assert_true(d[0] == 0 && d[3] == 0);
        assert_int_equal(mfl_loss_hvp(&ce, z, bad_ce[i], 2, 2, r, d), -1);
    }
    float yb[2] = {0, 2};
    assert_true(isnan(mfl_loss_eval(&bce, z, yb, 2, 1, d)));
    float y0[2] = {0, 1};
    assert_true(isnan(mfl_loss_eval(&bce, z, y0, 2, 2, NULL))); /* BCE needs n_out 1 */
    assert_true(isnan(mfl_loss_eval(&bce, z, y0, 0, 1, NULL)));
    mfl_loss_t zero = {MFL_LOSS_BCE, 0.0f}, inf = {MFL_LOSS_BCE, INFINITY};
    assert_true(isnan(mfl_loss_eval(&zero, z, y0, 2, 1, NULL)));
    assert_true(isnan(mfl_loss_eval(&inf, z, y0, 2, 1, NULL)));
    assert_int_equal(mfl_loss_hvp(&zero, z, y0, 2, 1, r, d), -1);
}

static void test_loss_names(void **state)
{
    (void)state;
    mfl_loss_kind_t k;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mfl_loss_parse(mfl_loss_name((mfl_loss_kind_t)i), &k), 0);
        assert_int_equal(k, i);
    }
    assert_int_equal(mfl_loss_parse("CE", &k), -1);
    assert_int_equal(mfl_loss_parse(NULL, &k), -1);
}

static void test_sgd_step_is_exact(void **state)
{
    (void)state;
    mfl_optim_config_t c = mfl_optim_defaults(MFL_OPTIM_SGD, 0.1f);
    mfl_optim_t *o = mfl_optim_new(&c, 3);
    float t[3] = {1, -2, 3}, g[3] = {0.5f, 4, -1};
    mfl_optim_step(o, t, g);
    assert_true(t[0] == 1 - 0.1f * 0.5f && t[1] == -2 - 0.1f * 4 && t[2] == 3 - 0.1f * -1);
    assert_int_equal(mfl_optim_state_size(o), 0);
    assert_int_equal(mfl_optim_step_count(o), 1);
    mfl_optim_destroy(&o);
    assert_null(o);
    mfl_optim_destroy(&o);
}

/* f(θ) = ½ Σ a_i (θ_i − c_i)², an ill-conditioned quadratic (a from 0.1
 * to 10): every optimiser must reach the minimum c. */
static double s_run_quadratic(mfl_optim_kind_t kind, float lr, int steps)
{
    const float a[4] = {0.1f, 1, 3, 10}, c[4] = {1, -2, 0.5f, 3};
    float t[4] = {0}, g[4];
    mfl_optim_config_t cfg = mfl_optim_defaults(kind, lr);
    mfl_optim_t *o = mfl_optim_new(&cfg, 4);
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < 4; i++)
            g[i] = a[i] * (t[i] - c[i]);
        mfl_optim_step(o, t, g);
    }
    mfl_optim_destroy(&o);
    double err = 0;
    for (int i = 0; i < 4; i++)
        err = fmax(err, fabs(t[i] - c[i]));
    return err;
}

static void test_optimisers_converge_on_quadratic(void **state)
{
    (void)state;
    assert_true(s_run_quadratic(MFL_OPTIM_SGD, 0.15f, 1000) < 1e-3);
    assert_true(s_run_quadratic(MFL_OPTIM_MOMENTUM, 0.02f, 1000) < 1e-3);
    assert_true(s_run_quadratic(MFL_OPTIM_ADAM, 0.05f, 3000) < 1e-2);
    assert_true(s_run_quadratic(MFL_OPTIM_ADAGRAD, 0.5f, 3000) < 1e-2);
    assert_true(s_run_quadratic(MFL_OPTIM_YOGI, 0.05f, 3000) < 1e-2);
}

/* Yogi against the formula written out in double (Reddi et al. 2021,
 * Algorithm 2): m ← β1m + (1−β1)g; v ← v − (1−β2)g²·sign(v − g²);
 * θ ← θ − lr·m/(√v + τ), over steps whose gradients first grow then
 * shrink, so v moves both ways; and a restored state continues
 * bit-identically. */
static void test_yogi_matches_its_formula(void **state)
{
    (void)state;
    mfl_optim_config_t c = mfl_optim_defaults(MFL_OPTIM_YOGI, 0.01f);
    assert_true(c.beta1 == 0.9f && c.beta2 == 0.99f && c.eps == 1e-3f);
    mfl_optim_t *o = mfl_optim_new(&c, 3), *o2 = mfl_optim_new(&c, 3);
    assert_non_null(o);
    assert_int_equal(mfl_optim_state_size(o), 6);
    float t[3] = {0.5f, -1.0f, 2.0f};
    double rt[3] = {0.5, -1.0, 2.0}, rm[3] = {0}, rv[3] = {0};
    const float gs[5][3] = {{1, -2, 0.1f}, {3, -0.5f, 0.1f}, {0.2f, 0.1f, 0.1f},
                            {0.01f, 4, -0.1f}, {0, 0, 0}};
    for (int k = 0; k < 5; k++) {
        mfl_optim_step(o, t, gs[k]);
        for (int i = 0; i < 3; i++) {
            double g = gs[k][i], g2 = g * g, d = rv[i] - g2;
            rm[i] = 0.9 * rm[i] + 0.1 * g;
            rv[i] = rv[i] - 0.01 * g2 * (d > 0 ? 1 : (d < 0 ? -1 : 0));
            rt[i] -= 0.01 * rm[i] / (sqrt(rv[i]) + 1e-3);
            assert_float_equal(t[i], rt[i], 1e-5);
        }
    }
    /* v never goes negative and the step is bounded by lr·|m|/τ. */
    for (int i = 0; i < 3; i++)
        assert_true(mfl_optim_state(o)[3 + i] >= 0);
    memcpy(mfl_optim_state(o2), mfl_optim_state(o), 6 * sizeof(float));
    mfl_optim_set_step_count(o2, mfl_optim_step_count(o));
    float t2[3] = {t[0], t[1], t[2]};
    mfl_optim_step(o, t, gs[1]);
    mfl_optim_step(o2, t2, gs[1]);
    assert_memory_equal(t, t2, sizeof t);
    mfl_optim_destroy(&o);
    mfl_optim_destroy(&o2);
}

/* Adam's first step moves every coordinate by lr·sign(g) (bias-corrected). */
static void test_adam_first_step_and_checkpoint(void **state)
{
    (void)state;
    mfl_optim_config_t c = mfl_optim_defaults(MFL_OPTIM_ADAM, 0.01f);
    mfl_optim_t *o = mfl_optim_new(&c, 2), *o2 = mfl_optim_new(&c, 2);
    float t[2] = {0, 0}, g[2] = {3, -0.001f};
    mfl_optim_step(o, t, g);
    assert_float_equal(t[0], -0.01, 1e-6);
    assert_float_equal(t[1], 0.01, 1e-5);
    assert_int_equal(mfl_optim_state_size(o), 4);
    /* Restore moments and step count into a fresh optimiser: the next step
     * must be bit-identical. */
    memcpy(mfl_optim_state(o2), mfl_optim_state(o), 4 * sizeof(float));
    mfl_optim_set_step_count(o2, mfl_optim_step_count(o));
    float t2[2] = {t[0], t[1]};
    mfl_optim_step(o, t, g);
    mfl_optim_step(o2, t2, g);
    assert_true(t[0] == t2[0] && t[1] == t2[1]);
    mfl_optim_reset(o);
    assert_int_equal(mfl_optim_step_count(o), 0);
    assert_true(mfl_optim_state(o)[0] == 0);
    mfl_optim_destroy(&o);
    mfl_optim_destroy(&o2);
}

static void test_optim_names(void **state)
{
    (void)state;
    mfl_optim_kind_t k;
    for (int i = 0; i <= MFL_OPTIM_LAST; i++) {
        assert_int_equal(mfl_optim_parse(mfl_optim_name((mfl_optim_kind_t)i), &k), 0);
        assert_int_equal(k, i);
    }
    assert_int_equal(mfl_optim_parse("rmsprop", &k), -1);
    mfl_optim_config_t bad = mfl_optim_defaults(MFL_OPTIM_SGD, 1);
    bad.kind = (mfl_optim_kind_t)9;
    assert_null(mfl_optim_new(&bad, 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loss_values_by_hand),
        cmocka_unit_test(test_loss_is_stable_for_huge_logits),
        cmocka_unit_test(test_loss_gradients_and_hessians),
        cmocka_unit_test(test_loss_refuses_bad_targets),
        cmocka_unit_test(test_loss_names),
        cmocka_unit_test(test_sgd_step_is_exact),
        cmocka_unit_test(test_optimisers_converge_on_quadratic),
        cmocka_unit_test(test_adam_first_step_and_checkpoint),
        cmocka_unit_test(test_yogi_matches_its_formula),
        cmocka_unit_test(test_optim_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
