/* Data set container: allocation limits, subsets, stratified splits,
 * statistics and standardisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "data/dataset.h"

static void test_new_rejects_overflow_and_zeroes(void **state)
{
    (void)state;
    assert_null(mfl_dataset_new(SIZE_MAX / 2, 3));
    assert_null(mfl_dataset_new(SIZE_MAX, 0));
    mfl_dataset_t *ds = mfl_dataset_new(4, 3);
    assert_non_null(ds);
    for (size_t i = 0; i < 12; i++)
        assert_true(ds->x[i] == 0.0f);
    assert_int_equal(ds->channels + ds->height + ds->width + ds->n_classes, 0);
    mfl_dataset_destroy(&ds);
    assert_null(ds);
    mfl_dataset_destroy(&ds);
    ds = mfl_dataset_new(0, 0);
    assert_non_null(ds);
    mfl_dataset_destroy(&ds);
}

static mfl_dataset_t *s_make(size_t n, size_t pos)
{
    mfl_dataset_t *ds = mfl_dataset_new(n, 2);
    ds->n_classes = 2;
    for (size_t i = 0; i < n; i++) {
        ds->x[2 * i] = (float)i;
        ds->x[2 * i + 1] = 1.0f;
        ds->y[i] = i < pos ? 1.0f : 0.0f;
    }
    return ds;
}

static void test_subset_copies_rows_and_rejects_bad_index(void **state)
{
    (void)state;
    mfl_dataset_t *ds = s_make(10, 3);
    size_t idx[] = { 9, 0, 9 };
    mfl_dataset_t *sub = mfl_dataset_subset(ds, idx, 3);
    assert_int_equal(sub->n, 3);
    assert_int_equal(sub->n_classes, 2);
    assert_true(sub->x[0] == 9.0f && sub->x[2] == 0.0f && sub->y[1] == 1.0f);
    mfl_dataset_destroy(&sub);
    size_t bad[] = { 10 };
    assert_null(mfl_dataset_subset(ds, bad, 1));
    mfl_dataset_destroy(&ds);
}

static void test_split_is_stratified_and_partitions(void **state)
{
    (void)state;
    mfl_dataset_t *ds = s_make(100, 30);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 7, 0);
    mfl_dataset_t *a, *b;
    assert_int_equal(mfl_dataset_split(ds, 0.7, &rng, &a, &b), 0);
    assert_int_equal(a->n, 70);
    assert_int_equal(b->n, 30);
    size_t ca[2], cb[2];
    mfl_dataset_class_counts(a, ca);
    mfl_dataset_class_counts(b, cb);
    assert_int_equal(ca[1], 21); /* round(0.7 * 30) */
    assert_int_equal(cb[1], 9);
    /* Every row appears exactly once across the two halves. */
    int seen[100] = { 0 };
    for (size_t i = 0; i < a->n; i++)
        seen[(int)a->x[2 * i]]++;
    for (size_t i = 0; i < b->n; i++)
        seen[(int)b->x[2 * i]]++;
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    /* Same seed, same split. */
    mfl_dataset_t *a2, *b2;
    mfl_rng_seed(&rng, 7, 0);
    assert_int_equal(mfl_dataset_split(ds, 0.7, &rng, &a2, &b2), 0);
    for (size_t i = 0; i < a->n; i++)
        assert_true(a->x[2 * i] == a2->x[2 * i]);
    mfl_dataset_destroy(&a);
    mfl_dataset_destroy(&b);
    mfl_dataset_destroy(&a2);
    mfl_dataset_destroy(&b2);
    assert_int_equal(mfl_dataset_split(ds, 1.5, &rng, &a, &b), -1);
    mfl_dataset_destroy(&ds);
}

static void test_stats_and_standardize(void **state)
{
    (void)state;
    mfl_dataset_t *ds = s_make(5, 2); /* column 0: 0..4, column 1: constant */
    float mean[2], sd[2];
    mfl_dataset_feature_stats(ds, mean, sd);
    assert_float_equal(mean[0], 2.0f, 1e-6);
    assert_float_equal(sd[0], sqrtf(2.5f), 1e-6); /* unbiased */
    assert_float_equal(mean[1], 1.0f, 1e-6);
    assert_true(sd[1] > 0.0f && sd[1] < 1e-6f); /* +1e-9 keeps it finite */
    mfl_dataset_standardize(ds, mean, sd);
    assert_float_equal(ds->x[0], -2.0f / sqrtf(2.5f), 1e-5);
    assert_true(ds->x[1] == 0.0f && isfinite(ds->x[3]));
    mfl_dataset_destroy(&ds);
}

static void test_concat_stacks_rows_and_checks_shapes(void **state)
{
    (void)state;
    mfl_dataset_t *a = s_make(3, 1), *b = s_make(2, 2);
    const mfl_dataset_t *sets[2] = { a, b };
    mfl_dataset_t *c = mfl_dataset_concat(sets, 2);
    assert_non_null(c);
    assert_int_equal(c->n, 5);
    assert_int_equal(c->n_classes, 2);
    assert_true(c->x[2 * 3] == 0.0f && c->x[2 * 4] == 1.0f && c->y[3] == 1.0f && c->y[2] == 0.0f);
    mfl_dataset_destroy(&c);
    mfl_dataset_t *w = mfl_dataset_new(1, 3);
    const mfl_dataset_t *bad[2] = { a, w };
    assert_null(mfl_dataset_concat(bad, 2));
    assert_null(mfl_dataset_concat(bad, 0));
    mfl_dataset_destroy(&w);
    mfl_dataset_destroy(&a);
    mfl_dataset_destroy(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_rejects_overflow_and_zeroes),
        cmocka_unit_test(test_subset_copies_rows_and_rejects_bad_index),
        cmocka_unit_test(test_split_is_stratified_and_partitions),
        cmocka_unit_test(test_stats_and_standardize),
        cmocka_unit_test(test_concat_stacks_rows_and_checks_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
