/* Robust aggregation: median / trimmed mean against a naive reference,
 * order independence, and resistance to one wild update. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "core/rng.h"
#include "fed/robust.h"

static void test_median_and_trimmed_mean_on_a_known_column(void **state)
{
    (void)state;
    float a[2] = {1, 10}, b[2] = {5, 20}, c[2] = {3, 30}, d[2] = {1000, 40}, e[2] = {2, -50};
    const float *odd[5] = {a, b, c, d, e};
    float out[2];
    char err[256];
    assert_int_equal(mfl_robust_median(odd, 5, 2, out, err, sizeof err), 0);
    assert_true(out[0] == 3 && out[1] == 20);
    assert_int_equal(mfl_robust_median(odd, 4, 2, out, err, sizeof err), 0);
    assert_true(out[0] == 4 && out[1] == 25); /* (3+5)/2, (20+30)/2 */
    /* Trim 1 of 5 from each end: {2,3,5}, {10,20,30}. The outlier 1000 is gone. */
    assert_int_equal(mfl_robust_trimmed_mean(odd, 5, 2, 1, out, err, sizeof err), 0);
    assert_true(fabsf(out[0] - 10.0f / 3.0f) < 1e-6f && out[1] == 20);
    assert_int_equal(mfl_robust_trimmed_mean(odd, 5, 2, 0, out, err, sizeof err), 0);
    assert_true(fabsf(out[0] - 202.2f) < 1e-3f); /* plain mean */
    assert_int_equal(mfl_robust_trimmed_mean(odd, 5, 2, 3, out, err, sizeof err), -1);
    assert_int_equal(mfl_robust_trimmed_mean(odd, 4, 2, 2, out, err, sizeof err), -1);
    /* 2·trim wraps to 0 here: must still be refused, not read past the column. */
    assert_int_equal(mfl_robust_trimmed_mean(odd, 5, 2, SIZE_MAX / 2 + 1, out, err, sizeof err), -1);
    b[1] = NAN;
    assert_int_equal(mfl_robust_median(odd, 5, 2, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "update 1: delta[1]"));
    assert_int_equal(mfl_robust_median(odd, 0, 2, out, err, sizeof err), -1);
}

/* Multi-Krum: five updates, one far away; f = 1 drops it and averages
 * the other four (m = k − f); m = 1 picks the most central one. */
static void test_multi_krum_drops_the_outlier(void **state)
{
    (void)state;
    float a[2] = {1, 1}, b[2] = {1.25f, 1}, c[2] = {0.75f, 1}, d[2] = {1, 1.25f},
          e[2] = {-30, 50};
    const float *v[5] = {a, b, c, e, d};
    float out[2];
    size_t chosen[5];
    char err[256];
    assert_int_equal(mfl_robust_multi_krum(v, 5, 2, 1, 4, out, chosen, err, sizeof err), 0);
    assert_true(chosen[0] == 0 && chosen[1] == 1 && chosen[2] == 2 && chosen[3] == 4);
    assert_true(fabsf(out[0] - 1.0f) < 1e-6f && fabsf(out[1] - 1.0625f) < 1e-6f);
    assert_int_equal(mfl_robust_multi_krum(v, 5, 2, 1, 1, out, chosen, err, sizeof err), 0);
    assert_true(chosen[0] == 0); /* a is the centre of the honest four */
    assert_true(out[0] == 1 && out[1] == 1);
    /* k < 2f + 3, m out of range, non-finite values: refused. */
    assert_int_equal(mfl_robust_multi_krum(v, 4, 2, 1, 3, out, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "2f+3"));
    assert_int_equal(mfl_robust_multi_krum(v, 5, 2, 1, 0, out, NULL, err, sizeof err), -1);
    assert_int_equal(mfl_robust_multi_krum(v, 5, 2, 1, 6, out, NULL, err, sizeof err), -1);
    e[0] = INFINITY;
    assert_int_equal(mfl_robust_multi_krum(v, 5, 2, 1, 4, out, NULL, err, sizeof err), -1);
}

static void test_order_does_not_matter(void **state)
{
    (void)state;
    enum { K = 7, P = 300 };
    static float d[K][P];
    mfl_rng_t r;
    mfl_rng_seed(&r, 5, 5);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < P; j++)
            d[i][j] = mfl_rng_normal(&r) * (float)(i + 1);
    const float *p[K];
    size_t order[K];
    for (int i = 0; i < K; i++)
        order[i] = (size_t)i;
    static float m0[P], t0[P], m1[P], t1[P];
    for (int i = 0; i < K; i++)
        p[i] = d[i];
    assert_int_equal(mfl_robust_median(p, K, P, m0, NULL, 0), 0);
    assert_int_equal(mfl_robust_trimmed_mean(p, K, P, 2, t0, NULL, 0), 0);
    for (int t = 0; t < 5; t++) {
        mfl_rng_shuffle(&r, order, K);
        for (int i = 0; i < K; i++)
            p[i] = d[order[i]];
        assert_int_equal(mfl_robust_median(p, K, P, m1, NULL, 0), 0);
        assert_int_equal(mfl_robust_trimmed_mean(p, K, P, 2, t1, NULL, 0), 0);
        assert_memory_equal(m0, m1, sizeof m0);
        assert_memory_equal(t0, t1, sizeof t0);
    }
    /* Naive reference for the median: count values below and above. */
    for (int j = 0; j < P; j++) {
        int below = 0, above = 0;
        for (int i = 0; i < K; i++) {
            below += d[i][j] < m0[j];
            above += d[i][j] > m0[j];
        }
        assert_true(below <= K / 2 && above <= K / 2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_median_and_trimmed_mean_on_a_known_column),
        cmocka_unit_test(test_order_does_not_matter),
        cmocka_unit_test(test_multi_krum_drops_the_outlier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
