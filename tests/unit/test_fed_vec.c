/* The vectorised passes the site and the coordinator run over every
 * update: the same answers as the plain loops they replace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "fed/vec.h"

#define N 5003 /* not a multiple of the lanes or the block */

static float s_v[N], s_dst[N];

static void s_fill(void)
{
    mfl_rng_t r;
    mfl_rng_seed(&r, 7, 1);
    for (size_t i = 0; i < N; i++)
        s_v[i] = (float)mfl_rng_normal(&r) * (i % 7 == 0 ? 1e3f : 1e-2f);
}

static void test_sumsq_and_copy_match_the_sequential_sum(void **state)
{
    (void)state;
    s_fill();
    for (size_t n = 0; n <= N; n += (n < 20 ? 1 : 997)) {
        double ref = 0;
        for (size_t i = 0; i < n; i++)
            ref += (double)s_v[i] * (double)s_v[i];
        double a = mfl_vec_sumsq(s_v, n);
        memset(s_dst, 0, sizeof s_dst);
        double b = mfl_vec_copy_sumsq(s_dst, s_v, n);
        assert_true(a == b); /* same order, same bits */
        assert_true(fabs(a - ref) <= 1e-12 * ref);
        assert_memory_equal(s_dst, s_v, n * sizeof(float));
        if (n < N)
            assert_true(s_dst[n] == 0.0f); /* nothing past n written */
    }
    assert_true(mfl_vec_sumsq(s_v, N) == mfl_vec_sumsq(s_v, N)); /* deterministic */
}

/* The run-by-run sum (an update left in its frames) equals the one-pass
 * sum bit for bit, whatever the cuts: lane i mod 8 in index order. */
static void test_sumsq_in_runs_is_bit_identical(void **state)
{
    (void)state;
    s_fill();
    const size_t cuts[][4] = {{N, 0, 0, 0},     {1, N - 1, 0, 0}, {8, 8, N - 16, 0},
                              {3, 5, 1000, N - 1008}, {4096, 1, 7, N - 4104},
                              {0, 2501, 0, N - 2501}};
    double one = mfl_vec_sumsq(s_v, N);
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        mfl_vec_sumsq_t acc;
        mfl_vec_sumsq_init(&acc);
        size_t at = 0;
        for (size_t k = 0; k < 4; at += cuts[c][k], k++)
            mfl_vec_sumsq_add(&acc, s_v + at, cuts[c][k]);
        assert_int_equal(at, N);
        double runs = mfl_vec_sumsq_end(&acc);
        assert_memory_equal(&runs, &one, sizeof one);
    }
    /* every length up to a few lanes, cut everywhere */
    for (size_t n = 0; n < 40; n++)
        for (size_t cut = 0; cut <= n; cut++) {
            mfl_vec_sumsq_t acc;
            mfl_vec_sumsq_init(&acc);
            mfl_vec_sumsq_add(&acc, s_v, cut);
            mfl_vec_sumsq_add(&acc, s_v + cut, n - cut);
            double a = mfl_vec_sumsq_end(&acc), b = mfl_vec_sumsq(s_v, n);
            assert_memory_equal(&a, &b, sizeof a);
        }
}

static void test_nonfinite_found_at_any_position(void **state)
{
    (void)state;
    s_fill();
    assert_int_equal(mfl_vec_first_nonfinite(s_v, N), N);
    assert_int_equal(mfl_vec_first_nonfinite(s_v, 0), 0);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const size_t at[] = {0, 1, 1023, 1024, 1025, 4096, N - 1};
    for (size_t b = 0; b < 3; b++) {
        for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
            s_v[at[k]] = bad[b];
            assert_int_equal(mfl_vec_first_nonfinite(s_v, N), at[k]);
            assert_false(isfinite(mfl_vec_sumsq(s_v, N)));
            assert_false(isfinite(mfl_vec_copy_sumsq(s_dst, s_v, N)));
            s_v[at[k] + (at[k] + 1 < N)] = bad[b]; /* a second one after it */
            assert_int_equal(mfl_vec_first_nonfinite(s_v, N), at[k]);
            s_fill();
        }
    }
    s_v[10] = 3.4e38f; /* big but finite: the squares' sum stays finite */
    s_v[11] = -3.4e38f;
    assert_int_equal(mfl_vec_first_nonfinite(s_v, N), N);
    assert_true(isfinite(mfl_vec_sumsq(s_v, N)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sumsq_and_copy_match_the_sequential_sum),
        cmocka_unit_test(test_sumsq_in_runs_is_bit_identical),
        cmocka_unit_test(test_nonfinite_found_at_any_position),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
