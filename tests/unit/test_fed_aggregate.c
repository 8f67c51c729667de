/* The fixed-point aggregator: order independence, accuracy against a double
 * reference, and refusal of inputs that could overflow or poison it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "fed/aggregate.h"

#define P 1000
#define K 8

static float s_delta[K][P];
static double s_weight[K];

static void s_make_updates(void)
{
    mfl_rng_t r;
    mfl_rng_seed(&r, 2026, 1);
    for (int k = 0; k < K; k++) {
        /* Mixed magnitudes, so float summation order would matter. */
        float scale = (k % 3 == 0) ? 1e-4f : (k % 3 == 1) ? 0.5f : 30.0f;
        for (int j = 0; j < P; j++)
            s_delta[k][j] = scale * mfl_rng_normal(&r);
        s_weight[k] = (double)(1 + mfl_rng_below(&r, 300)); /* sample counts */
    }
    s_weight[3] = 0.3; /* a non-integer weight: quantised to 77/256 */
}

static void s_mean_in_order(const size_t *order, float *out)
{
    mfl_aggregate_t *a = mfl_aggregate_new(P);
    assert_non_null(a);
    char err[256];
    for (int i = 0; i < K; i++)
        assert_int_equal(mfl_aggregate_add(a, s_delta[order[i]], s_weight[order[i]], err,
                                           sizeof err), 0);
    assert_int_equal(mfl_aggregate_count(a), K);
    assert_int_equal(mfl_aggregate_mean(a, out), 0);
    mfl_aggregate_destroy(&a);
    assert_null(a);
}

static void test_any_order_gives_bit_identical_mean(void **state)
{
    (void)state;
    s_make_updates();
    size_t order[K];
    for (int i = 0; i < K; i++)
        order[i] = (size_t)i;
    static float first[P], other[P];
    s_mean_in_order(order, first);
    mfl_rng_t r;
    mfl_rng_seed(&r, 7, 0);
    int float_sums_differ = 0;
    for (int t = 0; t < 20; t++) {
        mfl_rng_shuffle(&r, order, K);
        s_mean_in_order(order, other);
        assert_memory_equal(first, other, sizeof first);
        /* Sanity: the same sums in float in this order would differ, so the
         * test would catch an order-dependent implementation. */
        for (int j = 0; j < P && !float_sums_differ; j++) {
            float a = 0, b = 0;
            for (int i = 0; i < K; i++) {
                a += (float)s_weight[i] * s_delta[i][j];
                b += (float)s_weight[order[i]] * s_delta[order[i]][j];
            }
            float_sums_differ = a != b;
        }
    }
    assert_true(float_sums_differ);
}

static void test_mean_matches_double_reference(void **state)
{
    (void)state;
    s_make_updates();
    mfl_aggregate_t *a = mfl_aggregate_new(P);
    char err[256];
    for (int k = 0; k < K; k++)
        assert_int_equal(mfl_aggregate_add(a, s_delta[k], s_weight[k], err, sizeof err), 0);
    static float mean[P];
    assert_int_equal(mfl_aggregate_mean(a, mean), 0);
    /* Reference with the same effective (quantised) weights. */
    double wsum = 0;
    double weff[K];
    for (int k = 0; k < K; k++) {
        weff[k] = round(s_weight[k] * 256.0) / 256.0;
        wsum += weff[k];
    }
    assert_true(mfl_aggregate_total_weight(a) == wsum);
    /* Bound from aggregate.h: K · 2^-(F+1) / Σw, plus float rounding. */
    double qstep = K * ldexp(1.0, -(MFL_AGGREGATE_FRAC_BITS + 1)) / wsum;
    for (int j = 0; j < P; j++) {
        double ref = 0;
        for (int k = 0; k < K; k++)
            ref += weff[k] * (double)s_delta[k][j];
        ref /= wsum;
        double tol = qstep + fabs(ref) * 6e-8;
        assert_true(fabs((double)mean[j] - ref) <= tol);
    }
    mfl_aggregate_destroy(&a);
}

static void test_rejects_nan_inf_and_overflow_without_changing_state(void **state)
{
    (void)state;
    mfl_aggregate_t *a = mfl_aggregate_new(4);
    char err[256];
    float good[4] = {1, 2, 3, 4};
    assert_int_equal(mfl_aggregate_add(a, good, 1.0, err, sizeof err), 0);

    float nan_d[4] = {1, 2, NAN, 4};
    assert_int_equal(mfl_aggregate_add(a, nan_d, 1.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "delta[2] is NaN"));
    float inf_d[4] = {INFINITY, 2, 3, 4};
    assert_int_equal(mfl_aggregate_add(a, inf_d, 1.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "delta[0] is infinite"));
    /* |w·Δ| over 2^20: the bound that keeps int64 sums from overflowing. */
    float big[4] = {1, 2, 3, 2e4f};
    assert_int_equal(mfl_aggregate_add(a, big, 100.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "delta[3]"));
    assert_non_null(strstr(err, "bound"));
    assert_true(mfl_aggregate_max_product(a) == MFL_AGGREGATE_MAX_PRODUCT);
    assert_int_equal(mfl_aggregate_add(a, good, NAN, err, sizeof err), -1);
    assert_int_equal(mfl_aggregate_add(a, good, 0.0, err, sizeof err), -1);
    assert_int_equal(mfl_aggregate_add(a, good, -1.0, err, sizeof err), -1);
    assert_int_equal(mfl_aggregate_add(a, good, 1e-4, err, sizeof err), -1); /* rounds to 0 */

    /* None of the rejected updates left a trace. */
    assert_int_equal(mfl_aggregate_count(a), 1);
    assert_true(mfl_aggregate_total_weight(a) == 1.0);
    float mean[4];
    assert_int_equal(mfl_aggregate_mean(a, mean), 0);
    assert_memory_equal(mean, good, sizeof good);
    mfl_aggregate_destroy(&a);
}

static void test_extreme_values_at_the_bound_do_not_overflow(void **state)
{
    (void)state;
    /* max_updates updates, each at +bound: the sum must still be exact. */
    mfl_aggregate_t *a = mfl_aggregate_new_fixed(2, 30, 16);
    assert_non_null(a);
    double bound = mfl_aggregate_max_product(a); /* 2^(62-30-4) = 2^28 */
    assert_true(bound == ldexp(1.0, 28));
    float d[2] = {(float)(bound / 4), (float)(-bound / 4)};
    char err[256];
    for (int i = 0; i < 16; i++)
        assert_int_equal(mfl_aggregate_add(a, d, 4.0, err, sizeof err), 0);
    assert_int_equal(mfl_aggregate_add(a, d, 4.0, err, sizeof err), -1); /* 17th */
    assert_non_null(strstr(err, "16 updates"));
    float mean[2];
    assert_int_equal(mfl_aggregate_mean(a, mean), 0);
    assert_true(mean[0] == d[0] && mean[1] == d[1]);
    mfl_aggregate_destroy(&a);
    assert_null(mfl_aggregate_new_fixed(2, 52, 1u << 20)); /* no room left */
    assert_null(mfl_aggregate_new(0));
}

/* Sums bounded to 32 bits (secure aggregation's narrow words): the bounds
 * follow the formula; 64 updates at ± the product bound, their terms
 * summed mod 2^32, fold back to the same mean as adding them in clear;
 * a term or weight beyond its bound is refused; sum_bits 64 is
 * new_fixed's aggregate. */
static void test_bounded_32_bit_sums_are_exact(void **state)
{
    (void)state;
    enum { NP = 5, NU = 64 };
    mfl_aggregate_t *plain = mfl_aggregate_new_bounded(NP, 16, NU, 32);
    mfl_aggregate_t *viasum = mfl_aggregate_new_bounded(NP, 16, NU, 32);
    assert_non_null(plain);
    assert_true(mfl_aggregate_max_product(plain) == ldexp(1.0, 32 - 2 - 16 - 6));
    assert_true(mfl_aggregate_max_weight(plain) == ldexp(1.0, 32 - 2 - 8 - 6));
    assert_int_equal(mfl_aggregate_sum_bits(plain), 32);
    const double bound = mfl_aggregate_max_product(plain), wmax = mfl_aggregate_max_weight(plain);
    uint32_t sum[NP] = {0}, terms[NP];
    uint64_t wq = 0, wq1;
    char err[256];
    for (int i = 0; i < NU; i++) {
        /* terms at the bound, both signs, and a small one */
        float d[NP] = {(float)(bound / wmax), (float)(-bound / wmax), 1e-3f,
                       (float)(-0.37 * bound / wmax), 0.0f};
        assert_int_equal(mfl_aggregate_quantise32(plain, d, wmax, terms, &wq1, err, sizeof err), 0);
        for (int j = 0; j < NP; j++)
            sum[j] += terms[j];
        wq += wq1;
        assert_int_equal(mfl_aggregate_add(plain, d, wmax, err, sizeof err), 0);
    }
    assert_int_equal(mfl_aggregate_add_sum32(viasum, sum, wq, NU, err, sizeof err), 0);
    float m1[NP], m2[NP];
    assert_int_equal(mfl_aggregate_mean(plain, m1), 0);
    assert_int_equal(mfl_aggregate_mean(viasum, m2), 0);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_true(m1[0] == (float)(bound / wmax) && m1[1] == -(float)(bound / wmax));
    /* beyond the product bound, and beyond the weight bound: refused */
    float over[NP] = {(float)(2 * bound), 0, 0, 0, 0};
    assert_int_equal(mfl_aggregate_quantise32(plain, over, 1.0, terms, &wq1, err, sizeof err), -1);
    assert_non_null(strstr(err, "exceeds the aggregation bound"));
    float ok[NP] = {0};
    assert_int_equal(mfl_aggregate_quantise32(plain, ok, 2 * wmax, terms, &wq1, err, sizeof err), -1);
    assert_non_null(strstr(err, "out of range"));
    /* 32-bit calls on a 64-bit aggregate are refused */
    mfl_aggregate_t *wide = mfl_aggregate_new_bounded(NP, 30, 4096, 64);
    mfl_aggregate_t *fixed = mfl_aggregate_new_fixed(NP, 30, 4096);
    assert_true(mfl_aggregate_max_product(wide) == mfl_aggregate_max_product(fixed));
    assert_true(mfl_aggregate_max_weight(wide) == MFL_AGGREGATE_MAX_WEIGHT);
    assert_int_equal(mfl_aggregate_quantise32(wide, ok, 1.0, terms, &wq1, err, sizeof err), -1);
    assert_int_equal(mfl_aggregate_add_sum32(wide, sum, wq, NU, err, sizeof err), -1);
    assert_null(mfl_aggregate_new_bounded(NP, 30, NU, 32)); /* no room: 30 + 6 + 2 > 32 */
    mfl_aggregate_destroy(&plain);
    mfl_aggregate_destroy(&viasum);
    mfl_aggregate_destroy(&wide);
    mfl_aggregate_destroy(&fixed);
}

/* Each term is rounded to nearest, ties to even, exactly as rint(): terms
 * with a fraction of one half (both signs), near the bound and between. */
static void test_terms_round_half_to_even_like_rint(void **state)
{
    (void)state;
    enum { N = 64 };
    float d[N], out[N];
    const double unit = ldexp(1.0, -MFL_AGGREGATE_FRAC_BITS); /* one fixed-point step */
    for (int j = 0; j < N; j++) {
        double k = (double)(j - N / 2) + 0.5; /* ..., -1.5, -0.5, 0.5, 1.5, ... */
        if (j % 4 == 3)
            k += 0.25;
        d[j] = (float)(k * unit * (double)(1 << (j % 5)));
    }
    d[0] = (float)(MFL_AGGREGATE_MAX_PRODUCT - 0.5); /* near the bound: big terms */
    d[1] = -d[0];
    mfl_aggregate_t *a = mfl_aggregate_new(N);
    assert_non_null(a);
    char err[256];
    assert_int_equal(mfl_aggregate_add(a, d, 1.0, err, sizeof err), 0);
    assert_int_equal(mfl_aggregate_mean(a, out), 0);
    for (int j = 0; j < N; j++) {
        double q = rint((double)d[j] * ldexp(1.0, MFL_AGGREGATE_FRAC_BITS));
        assert_true(out[j] == (float)(q * unit));
    }
    mfl_aggregate_destroy(&a);
}

/* An update folded as parts (the coordinator's received tensors, in any
 * order) gives the same bits as the flat update; a bad element in a later
 * part takes the earlier parts out again; parts that do not tile the vector
 * are refused. */
static void test_parts_fold_like_the_flat_update(void **state)
{
    (void)state;
    s_make_updates();
    size_t order[K];
    for (int i = 0; i < K; i++)
        order[i] = (size_t)i;
    static float flat[P], parted[P];
    s_mean_in_order(order, flat);

    mfl_aggregate_t *a = mfl_aggregate_new(P);
    assert_non_null(a);
    char err[256];
    for (int k = 0; k < K; k++) {
        /* three uneven pieces, given last first */
        mfl_aggregate_part_t parts[3] = {{700, s_delta[k] + 700, P - 700},
                                         {0, s_delta[k], 333},
                                         {333, s_delta[k] + 333, 367}};
        assert_int_equal(mfl_aggregate_add_parts(a, parts, 3, s_weight[k], err, sizeof err),
                         0);
    }
    assert_int_equal(mfl_aggregate_mean(a, parted), 0);
    assert_memory_equal(parted, flat, sizeof flat);

    /* NaN in the part folded last: nothing of this update may remain. */
    static float bad[P];
    memcpy(bad, s_delta[0], sizeof bad);
    bad[950] = NAN;
    mfl_aggregate_part_t bparts[2] = {{0, bad, 900}, {900, bad + 900, P - 900}};
    assert_int_equal(mfl_aggregate_add_parts(a, bparts, 2, 5.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "delta[950] is NaN"));
    assert_int_equal(mfl_aggregate_count(a), K);
    assert_int_equal(mfl_aggregate_mean(a, parted), 0);
    assert_memory_equal(parted, flat, sizeof flat);

    /* Not a tiling: a gap, and a part past the end. */
    mfl_aggregate_part_t gap[2] = {{0, s_delta[0], 400}, {500, s_delta[0] + 500, P - 500}};
    assert_int_equal(mfl_aggregate_add_parts(a, gap, 2, 1.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "expected 1000"));
    mfl_aggregate_part_t past[1] = {{1, s_delta[0], P}};
    assert_int_equal(mfl_aggregate_add_parts(a, past, 1, 1.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside"));
    assert_int_equal(mfl_aggregate_count(a), K);
    mfl_aggregate_destroy(&a);
}

static void test_reset_and_empty_mean(void **state)
{
    (void)state;
    mfl_aggregate_t *a = mfl_aggregate_new(3);
    float out[3] = {7, 7, 7}, d[3] = {1, -1, 0.5f};
    assert_int_equal(mfl_aggregate_mean(a, out), -1);
    assert_true(out[0] == 7);
    assert_int_equal(mfl_aggregate_add(a, d, 2.0, NULL, 0), 0);
    mfl_aggregate_reset(a);
    assert_int_equal(mfl_aggregate_count(a), 0);
    assert_int_equal(mfl_aggregate_mean(a, out), -1);
    float e[3] = {2, 4, 6};
    assert_int_equal(mfl_aggregate_add(a, e, 3.0, NULL, 0), 0);
    assert_int_equal(mfl_aggregate_mean(a, out), 0);
    assert_memory_equal(out, e, sizeof e);
    mfl_aggregate_destroy(&a);
    mfl_aggregate_destroy(&a); /* NULL-safe */
}

/* The mean written over the sums' storage equals the mean into a buffer
 * bit for bit (across the block size, for lengths that are not a multiple
 * of it); the sums are then spent until reset. */
static void test_mean_in_place_matches_and_spends_the_sums(void **state)
{
    (void)state;
    s_make_updates();
    char err[256];
    static float big[2600], ref[2600];
    for (size_t n = 1; n <= 2600; n += (n < 9 ? 1 : 1297)) {
        mfl_aggregate_t *a = mfl_aggregate_new(n);
        assert_non_null(a);
        for (size_t j = 0; j < n; j++)
            big[j] = s_delta[j % K][j % P] * (float)(1 + j % 5);
        assert_int_equal(mfl_aggregate_add(a, big, 3.0, err, sizeof err), 0);
        for (size_t j = 0; j < n; j++)
            big[j] = s_delta[(j + 3) % K][(j * 7) % P];
        assert_int_equal(mfl_aggregate_add(a, big, 0.3, err, sizeof err), 0);
        assert_int_equal(mfl_aggregate_mean(a, ref), 0);
        float *m = mfl_aggregate_mean_in_place(a);
        assert_non_null(m);
        assert_memory_equal(m, ref, n * sizeof(float));
        /* spent: no second mean, no add, no remove, until reset */
        assert_null(mfl_aggregate_mean_in_place(a));
        assert_int_equal(mfl_aggregate_mean(a, ref), -1);
        assert_int_equal(mfl_aggregate_add(a, big, 1.0, err, sizeof err), -1);
        mfl_aggregate_part_t whole = {0, big, n};
        assert_int_equal(mfl_aggregate_remove_parts(a, &whole, 1, 0.3), -1);
        assert_int_equal(mfl_aggregate_count(a), 2);
        mfl_aggregate_reset(a);
        assert_int_equal(mfl_aggregate_add(a, big, 1.0, err, sizeof err), 0);
        assert_int_equal(mfl_aggregate_mean(a, ref), 0);
        mfl_aggregate_destroy(&a);
    }
}

/* A reader over one flat update (fed/aggregate.h mfl_aggregate_read_fn);
 * fail_at: a read touching this offset or beyond fails (SIZE_MAX: never). */
typedef struct {
    const float *v;
    size_t fail_at;
    int reads;
} s_reader_t;

static int s_read(void *ctx, size_t offset, float *out, size_t n, char *err, size_t errlen)
{
    s_reader_t *r = ctx;
    r->reads++;
    if (offset + n > r->fail_at) {
        snprintf(err, errlen, "disk gone");
        return -1;
    }
    memcpy(out, r->v + offset, n * sizeof(float));
    return 0;
}

static void test_read_folds_like_the_flat_update(void **state)
{
    (void)state;
    s_make_updates();
    size_t order[K];
    for (int i = 0; i < K; i++)
        order[i] = (size_t)i;
    static float flat[P], got[P];
    s_mean_in_order(order, flat);
    mfl_aggregate_t *a = mfl_aggregate_new(P);
    assert_non_null(a);
    char err[256];
    float buf[77]; /* blocks that do not divide P */
    for (int k = 0; k < K; k++) {
        s_reader_t r = {s_delta[k], SIZE_MAX, 0};
        assert_int_equal(mfl_aggregate_add_read(a, s_read, &r, buf, 77, s_weight[k], err,
                                                sizeof err), 0);
        assert_int_equal(r.reads, (P + 76) / 77);
    }
    assert_int_equal(mfl_aggregate_mean(a, got), 0);
    assert_memory_equal(got, flat, sizeof flat);

    /* NaN late in the update: refused, and nothing of it remains. */
    static float bad[P];
    memcpy(bad, s_delta[0], sizeof bad);
    bad[950] = NAN;
    s_reader_t rb = {bad, SIZE_MAX, 0};
    assert_int_equal(mfl_aggregate_add_read(a, s_read, &rb, buf, 77, 5.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "delta[950] is NaN"));
    assert_int_equal(mfl_aggregate_count(a), K);
    assert_int_equal(mfl_aggregate_mean(a, got), 0);
    assert_memory_equal(got, flat, sizeof flat);

    /* A read failing half way: refused, the blocks folded before are out. */
    s_reader_t rf = {s_delta[1], 500, 0};
    assert_int_equal(mfl_aggregate_add_read(a, s_read, &rf, buf, 77, 2.0, err, sizeof err), -1);
    assert_non_null(strstr(err, "disk gone"));
    assert_int_equal(mfl_aggregate_count(a), K);
    assert_int_equal(mfl_aggregate_mean(a, got), 0);
    assert_memory_equal(got, flat, sizeof flat);

    /* Added, then taken back (an audit record that could not be written). */
    s_reader_t r2 = {s_delta[2], SIZE_MAX, 0};
    assert_int_equal(mfl_aggregate_add_read(a, s_read, &r2, buf, 77, 3.0, err, sizeof err), 0);
    assert_int_equal(mfl_aggregate_count(a), K + 1);
    assert_int_equal(mfl_aggregate_remove_read(a, s_read, &r2, buf, 77, 3.0), 0);
    assert_int_equal(mfl_aggregate_count(a), K);
    assert_int_equal(mfl_aggregate_mean(a, got), 0);
    assert_memory_equal(got, flat, sizeof flat);
    mfl_aggregate_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_order_gives_bit_identical_mean),
        cmocka_unit_test(test_mean_matches_double_reference),
        cmocka_unit_test(test_rejects_nan_inf_and_overflow_without_changing_state),
        cmocka_unit_test(test_extreme_values_at_the_bound_do_not_overflow),
        cmocka_unit_test(test_bounded_32_bit_sums_are_exact),
        cmocka_unit_test(test_terms_round_half_to_even_like_rint),
        cmocka_unit_test(test_reset_and_empty_mean),
        cmocka_unit_test(test_parts_fold_like_the_flat_update),
        cmocka_unit_test(test_mean_in_place_matches_and_spends_the_sums),
        cmocka_unit_test(test_read_folds_like_the_flat_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
