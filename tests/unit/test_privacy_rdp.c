/* The RDP accountant against the known answers in ANCHORS.md (Opacus's
 * values), plus the properties its users rely on: composition adds up,
 * the conversion never reports less than the truth, calibration lands
 * within Opacus's tolerance below the target, bad arguments are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>

#include "privacy/accountant.h"
#include "privacy/rdp.h"

/* |got − want| ≤ rel·|want|, printed on failure. */
static void s_close(double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fabs(want))) {
        fprintf(stderr, "got %.12g want %.12g (rel %.3g)\n", got, want, rel);
        fail();
    }
}

/* Equal to the digits given: within one unit of the last digit given
 * (the references are truncated, e.g. 0.00218075 for 0.0021807566). */
static void s_digits(double got, double want, double ulp)
{
    if (!(fabs(got - want) <= ulp)) {
        fprintf(stderr, "got %.12g want %.12g (± %.3g)\n", got, want, ulp);
        fail();
    }
}

static void test_integer_order_matches_opacus(void **state)
{
    (void)state;
    /* rdp(q=0.1, σ=2, steps=10, α=5) = 0.07737 (5 digits given) */
    s_digits(10 * mfl_rdp_subsampled_gaussian(0.1, 2.0, 5.0), 0.07737, 1e-5);
    /* rdp(q=1, σ=10, steps=1, α=20) = 0.1 exactly: α/(2σ²) */
    s_close(mfl_rdp_subsampled_gaussian(1.0, 10.0, 20.0), 0.1, 1e-12);
}

static void test_fractional_orders_use_the_signed_series(void **state)
{
    (void)state;
    /* rdp(q=0.01, σ=2.5, steps=50, α=[1.5, 2.5, 5, 50, 100]) */
    const double orders[5] = {1.5, 2.5, 5, 50, 100};
    const double want[5] = {0.00065, 0.001085, 0.00218075, 0.023846, 167.416307};
    const double ulp[5] = {1e-5, 1e-6, 1e-8, 1e-6, 1e-6};
    double rdp[5] = {0};
    assert_int_equal(mfl_rdp_compose(rdp, orders, 5, 0.01, 2.5, 50), 0);
    for (int k = 0; k < 5; k++)
        s_digits(rdp[k], want[k], ulp[k]);
    /* A fractional order lies between its integer neighbours (RDP grows
     * with α), which the absolute-value series would not guarantee tightly. */
    double r2 = mfl_rdp_subsampled_gaussian(0.01, 2.5, 2.0);
    double r3 = mfl_rdp_subsampled_gaussian(0.01, 2.5, 3.0);
    double r25 = mfl_rdp_subsampled_gaussian(0.01, 2.5, 2.5);
    assert_true(r2 < r25 && r25 < r3);
}

static void test_opacus_epsilon_known_answer(void **state)
{
    (void)state;
    /* q=0.04, σ=1.5, 2250 steps, δ=1e-5, default orders, Balle et al. */
    mfl_privacy_accountant_t a;
    char err[256];
    assert_int_equal(mfl_privacy_accountant_init(&a, NULL, 0, err, sizeof err), 0);
    assert_int_equal(a.n, MFL_RDP_DEFAULT_ORDERS);
    assert_true(a.orders[0] == 1.1 && a.orders[98] == 10.9 && a.orders[99] == 12.0 &&
                a.orders[150] == 63.0);
    assert_int_equal(mfl_privacy_accountant_add(&a, 0.04, 1.5, 2250, err, sizeof err), 0);
    double eps, order;
    assert_int_equal(mfl_privacy_accountant_epsilon(&a, 1e-5, MFL_RDP_CONVERT_BALLE2020, &eps,
                                                    &order, err, sizeof err), 0);
    s_close(eps, 7.32911117143, 1e-6);
    /* Composition: 2250 steps added as 9 rounds of 250 give the same ε. */
    mfl_privacy_accountant_t b;
    assert_int_equal(mfl_privacy_accountant_init(&b, NULL, 0, err, sizeof err), 0);
    for (int r = 0; r < 9; r++)
        assert_int_equal(mfl_privacy_accountant_add(&b, 0.04, 1.5, 250, err, sizeof err), 0);
    double eps_b;
    assert_int_equal(mfl_privacy_accountant_epsilon(&b, 1e-5, MFL_RDP_CONVERT_BALLE2020, &eps_b,
                                                    NULL, err, sizeof err), 0);
    s_close(eps_b, eps, 1e-12);
}

static void test_analytic_gaussian_calibration(void **state)
{
    (void)state;
    /* q=1, σ=4.530877117, one step, δ=1e-6: exact ε=1 (analytic Gaussian).
     * Balle et al. gives 1.0000003, never below 1; classic gives 1.1845. */
    mfl_privacy_accountant_t a;
    char err[256];
    double eps, eps_classic;
    assert_int_equal(mfl_privacy_accountant_init(&a, NULL, 0, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_add(&a, 1.0, 4.530877117, 1, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_epsilon(&a, 1e-6, MFL_RDP_CONVERT_BALLE2020, &eps,
                                                    NULL, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_epsilon(&a, 1e-6, MFL_RDP_CONVERT_CLASSIC,
                                                    &eps_classic, NULL, err, sizeof err), 0);
    s_digits(eps, 1.0000003, 1e-7);
    assert_true(eps >= 1.0);
    s_digits(eps_classic, 1.1845, 1e-4);
}

static void test_mixed_mechanisms_compose(void **state)
{
    (void)state;
    /* Site-level rounds (q = 1) and DP-SGD steps in one account: the RDP
     * at every order is the sum of the two accounts'. */
    mfl_privacy_accountant_t mix, sgd, site;
    char err[256];
    assert_int_equal(mfl_privacy_accountant_init(&mix, NULL, 0, err, sizeof err), 0);
    sgd = site = mix;
    assert_int_equal(mfl_privacy_accountant_add(&mix, 0.02, 1.1, 300, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_add(&mix, 1.0, 8.0, 5, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_add(&sgd, 0.02, 1.1, 300, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_add(&site, 1.0, 8.0, 5, err, sizeof err), 0);
    for (size_t k = 0; k < mix.n; k++)
        s_close(mix.rdp[k], sgd.rdp[k] + site.rdp[k], 1e-12);
    double e_mix, e_sgd, e_site;
    assert_int_equal(mfl_privacy_accountant_epsilon(&mix, 1e-5, 0, &e_mix, NULL, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_epsilon(&sgd, 1e-5, 0, &e_sgd, NULL, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_epsilon(&site, 1e-5, 0, &e_site, NULL, err, sizeof err), 0);
    assert_true(e_mix > e_sgd && e_mix > e_site && e_mix < e_sgd + e_site + 1e-9);
}

static void test_noise_calibration_like_get_noise_multiplier(void **state)
{
    (void)state;
    char err[256];
    double sigma, eps;
    /* ε=8, δ=1e-5, q=0.04, 2000 steps: Opacus gives 1.3562 (4 places). */
    assert_int_equal(mfl_privacy_noise_for_epsilon(8.0, 1e-5, 0.04, 2000, 0.01, &sigma, err,
                                                   sizeof err), 0);
    s_digits(sigma, 1.3562, 1e-4);
    /* and the σ it returns keeps ε within 0.01 below the target */
    mfl_privacy_accountant_t a;
    assert_int_equal(mfl_privacy_accountant_init(&a, NULL, 0, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_add(&a, 0.04, sigma, 2000, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_epsilon(&a, 1e-5, 0, &eps, NULL, err, sizeof err), 0);
    assert_true(eps <= 8.0 && eps >= 8.0 - 0.01);
    /* an impossible budget is refused, not looped on */
    assert_int_equal(mfl_privacy_noise_for_epsilon(1e-9, 1e-5, 1.0, 1e6, 0.01, &sigma, err,
                                                   sizeof err), -1);
}

static void test_bad_arguments_refused(void **state)
{
    (void)state;
    char err[256];
    mfl_privacy_accountant_t a;
    assert_int_equal(mfl_privacy_accountant_init(&a, NULL, 0, err, sizeof err), 0);
    assert_int_equal(mfl_privacy_accountant_add(&a, 0.0, 1.0, 1, err, sizeof err), -1);
    assert_int_equal(mfl_privacy_accountant_add(&a, 1.5, 1.0, 1, err, sizeof err), -1);
    assert_int_equal(mfl_privacy_accountant_add(&a, 0.1, 0.0, 1, err, sizeof err), -1);
    assert_int_equal(mfl_privacy_accountant_add(&a, 0.1, -1.0, 1, err, sizeof err), -1);
    assert_int_equal(mfl_privacy_accountant_add(&a, 0.1, 1.0, 0, err, sizeof err), -1);
    assert_int_equal(mfl_privacy_accountant_add(&a, 0.1, NAN, 1, err, sizeof err), -1);
    for (size_t k = 0; k < a.n; k++)
        assert_true(a.rdp[k] == 0.0); /* nothing was added */
    double eps;
    assert_int_equal(mfl_privacy_accountant_epsilon(&a, 1.0, 0, &eps, NULL, err, sizeof err), -1);
    assert_int_equal(mfl_privacy_accountant_epsilon(&a, 0.0, 0, &eps, NULL, err, sizeof err), -1);
    assert_int_equal(mfl_privacy_accountant_epsilon(&a, 1e-5, 0, &eps, NULL, err, sizeof err), 0);
    assert_true(eps == 0.0); /* nothing spent */
    const double bad_orders[2] = {2.0, 1.0};
    assert_int_equal(mfl_privacy_accountant_init(&a, bad_orders, 2, err, sizeof err), -1);
    assert_true(isnan(mfl_rdp_subsampled_gaussian(0.1, 1.0, 1.0)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer_order_matches_opacus),
        cmocka_unit_test(test_fractional_orders_use_the_signed_series),
        cmocka_unit_test(test_opacus_epsilon_known_answer),
        cmocka_unit_test(test_analytic_gaussian_calibration),
        cmocka_unit_test(test_mixed_mechanisms_compose),
        cmocka_unit_test(test_noise_calibration_like_get_noise_multiplier),
        cmocka_unit_test(test_bad_arguments_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
