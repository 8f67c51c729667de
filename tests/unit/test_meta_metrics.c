/* Metrics against hand-computed values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "meta/metrics.h"

static void test_auroc_without_ties(void **state)
{
    (void)state;
    /* Pairs (pos, neg): (.35,.1) (.35,.4)x (.8,.1) (.8,.4): 3 of 4. */
    float s[] = {0.1f, 0.4f, 0.35f, 0.8f}, y[] = {0, 0, 1, 1};
    assert_float_equal(mfl_metrics_auroc(s, y, 4), 0.75, 1e-12);
    float perfect[] = {0.9f, 0.1f, 0.8f}, yp[] = {1, 0, 1};
    assert_float_equal(mfl_metrics_auroc(perfect, yp, 3), 1.0, 1e-12);
    float inverted[] = {0.1f, 0.9f}, yi[] = {1, 0};
    assert_float_equal(mfl_metrics_auroc(inverted, yi, 2), 0.0, 1e-12);
}

static void test_auroc_counts_ties_as_half(void **state)
{
    (void)state;
    /* pos .5 ties both negatives (2 × ½), pos .9 beats both (2): 3 / 4. */
    float s[] = {0.5f, 0.5f, 0.5f, 0.9f}, y[] = {0, 1, 0, 1};
    assert_float_equal(mfl_metrics_auroc(s, y, 4), 0.75, 1e-12);
    float flat[] = {0.3f, 0.3f, 0.3f, 0.3f, 0.3f}, yf[] = {1, 0, 1, 0, 0};
    assert_float_equal(mfl_metrics_auroc(flat, yf, 5), 0.5, 1e-12);
    /* 3 pos, 2 neg: pos .7 > both (2), pos .4 ties .4 (½) beats .2 (1),
     * pos .2 ties .2 (½): 4 / 6. */
    float m[] = {0.7f, 0.4f, 0.4f, 0.2f, 0.2f}, ym[] = {1, 1, 0, 0, 1};
    assert_float_equal(mfl_metrics_auroc(m, ym, 5), 4.0 / 6.0, 1e-12);
}

static void test_auroc_is_nan_for_one_class(void **state)
{
    (void)state;
    float s[] = {0.1f, 0.2f}, y[] = {1, 1};
    assert_true(isnan(mfl_metrics_auroc(s, y, 2)));
    assert_true(isnan(mfl_metrics_auroc(s, y, 0)));
}

static void test_binary_rates(void **state)
{
    (void)state;
    /* threshold .5: preds 1 1 0 0 1 0 ; labels 1 0 0 1 1 0
     * TP 2, FP 1, TN 2, FN 1: acc 4/6, sens 2/3, spec 2/3. */
    float s[] = {0.9f, 0.6f, 0.2f, 0.4f, 0.5f, 0.1f}, y[] = {1, 0, 0, 1, 1, 0};
    double acc, sens, spec;
    mfl_metrics_binary(s, y, 6, 0.5f, &acc, &sens, &spec);
    assert_float_equal(acc, 4.0 / 6.0, 1e-12);
    assert_float_equal(sens, 2.0 / 3.0, 1e-12);
    assert_float_equal(spec, 2.0 / 3.0, 1e-12);
    float ally[] = {1, 1};
    mfl_metrics_binary(s, ally, 2, 0.5f, &acc, &sens, &spec);
    assert_float_equal(sens, 1.0, 1e-12);
    assert_true(isnan(spec));
}

/* Sensitivity at specificity >= target: ten negatives at 0.1 .. 1.0, so
 * 90 % specificity puts the threshold at 0.9 (nine negatives at or below);
 * a positive tied with it is not flagged; one class alone is NAN. */
static void test_sensitivity_at_fixed_specificity(void **state)
{
    (void)state;
    float score[15], label[15];
    for (int i = 0; i < 10; i++) {
        score[i] = 0.1f * (float)(i + 1);
        label[i] = 0;
    }
    const float pos[5] = {0.95f, 0.85f, 0.5f, 0.05f, 0.9f};
    for (int i = 0; i < 5; i++) {
        score[10 + i] = pos[i];
        label[10 + i] = 1;
    }
    assert_float_equal(mfl_metrics_sensitivity_at(score, label, 15, 0.9), 1.0 / 5, 1e-12);
    assert_float_equal(mfl_metrics_sensitivity_at(score, label, 15, 0.8), 3.0 / 5, 1e-12);
    assert_float_equal(mfl_metrics_sensitivity_at(score, label, 15, 0.05), 4.0 / 5, 1e-12);
    assert_true(isnan(mfl_metrics_sensitivity_at(score, label, 10, 0.9))); /* no positive */
    assert_true(isnan(mfl_metrics_sensitivity_at(score, label, 15, 0.0)));
    assert_true(isnan(mfl_metrics_sensitivity_at(score, label, 15, 1.5)));
}

static void test_multiclass_accuracy(void **state)
{
    (void)state;
    float p[] = {0.1f, 0.7f, 0.2f, /* → 1 */ 0.5f, 0.2f, 0.3f, /* → 0 */
                 0.3f, 0.3f, 0.4f /* → 2 */};
    float y[] = {1, 2, 2};
    assert_float_equal(mfl_metrics_accuracy(p, y, 3, 3), 2.0 / 3.0, 1e-12);
    assert_true(isnan(mfl_metrics_accuracy(p, y, 0, 3)));
}

/* RMSE, MAE, R² against values worked by hand. */
static void test_regression_metrics(void **state)
{
    (void)state;
    const float y[4] = { 1, 2, 3, 4 }, pred[4] = { 1, 2, 3, 6 };
    double rmse, mae, r2;
    mfl_metrics_regression(pred, y, 4, &rmse, &mae, &r2);
    assert_float_equal(rmse, 1.0, 1e-12);      /* sqrt(4 / 4) */
    assert_float_equal(mae, 0.5, 1e-12);       /* 2 / 4 */
    assert_float_equal(r2, 1.0 - 4.0 / 5.0, 1e-12); /* SST = 2.25 + .25 + .25 + 2.25 */
    const float flat[2] = { 3, 3 };
    mfl_metrics_regression(flat, flat, 2, &rmse, NULL, &r2);
    assert_float_equal(rmse, 0.0, 0);
    assert_true(isnan(r2));
    mfl_metrics_regression(pred, y, 0, &rmse, &mae, NULL);
    assert_true(isnan(rmse) && isnan(mae));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auroc_without_ties),
        cmocka_unit_test(test_auroc_counts_ties_as_half),
        cmocka_unit_test(test_auroc_is_nan_for_one_class),
        cmocka_unit_test(test_binary_rates),
        cmocka_unit_test(test_sensitivity_at_fixed_specificity),
        cmocka_unit_test(test_multiclass_accuracy),
        cmocka_unit_test(test_regression_metrics),
    };
    return cmocka_run_group_tests_name("meta_metrics", tests, NULL, NULL);
}
