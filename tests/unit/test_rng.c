/* The training PRNG: reproducible streams, sane distributions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "core/rng.h"

static void test_same_seed_and_stream_give_same_numbers(void **state)
{
    (void)state;
    mfl_rng_t a, b, c;
    mfl_rng_seed(&a, 42, 7);
    mfl_rng_seed(&b, 42, 7);
    mfl_rng_seed(&c, 42, 8);
    int differs = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = mfl_rng_u64(&a);
        assert_int_equal(x, mfl_rng_u64(&b));
        differs |= x != mfl_rng_u64(&c);
    }
    assert_true(differs);
}

static void test_normal_has_unit_moments(void **state)
{
    (void)state;
    mfl_rng_t r;
    mfl_rng_seed(&r, 1, 0);
    double sum = 0, sq = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = mfl_rng_normal(&r);
        sum += v;
        sq += v * v;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - 1.0) < 0.02);
}

static void test_below_stays_in_range_and_covers_it(void **state)
{
    (void)state;
    mfl_rng_t r;
    mfl_rng_seed(&r, 3, 0);
    int seen[7] = {0};
    for (int i = 0; i < 7000; i++) {
        uint64_t v = mfl_rng_below(&r, 7);
        assert_true(v < 7);
        seen[v]++;
    }
    for (int i = 0; i < 7; i++)
        assert_true(seen[i] > 800 && seen[i] < 1200);
}

static void test_shuffle_is_a_permutation(void **state)
{
    (void)state;
    mfl_rng_t r;
    mfl_rng_seed(&r, 5, 0);
    size_t v[50];
    for (size_t i = 0; i < 50; i++)
        v[i] = i;
    mfl_rng_shuffle(&r, v, 50);
    int seen[50] = {0}, moved = 0;
    for (size_t i = 0; i < 50; i++) {
        seen[v[i]]++;
        moved += v[i] != i;
    }
    for (size_t i = 0; i < 50; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > 25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_and_stream_give_same_numbers),
        cmocka_unit_test(test_normal_has_unit_moments),
        cmocka_unit_test(test_below_stays_in_range_and_covers_it),
        cmocka_unit_test(test_shuffle_is_a_permutation),
    };
    return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
