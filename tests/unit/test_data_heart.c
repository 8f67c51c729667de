/* UCI Heart Disease prepared as FLamby: row counts, the exact split,
 * feature order and standardisation, checked against figures computed
 * independently (a few lines of Python over the same files). Needs the
 * shared data folder; skips with a message when it is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/heart.h"

static const char *s_shared(void)
{
    static char path[4096];
    const char *dir = mfl_heart_default_shared();
    snprintf(path, sizeof path, "%s/data/uci-heart-disease/flamby-split.json", dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("SKIP: %s not found (set METAFL_SHARED to the shared folder)\n", path);
        return NULL;
    }
    return dir;
}

static size_t s_positives(const mfl_dataset_t *ds)
{
    size_t n = 0;
    for (size_t i = 0; i < ds->n; i++)
        n += ds->y[i] == 1.0f;
    return n;
}

static void test_sites_have_flamby_counts(void **state)
{
    (void)state;
    const char *dir = s_shared();
    if (!dir)
        skip();
    static const size_t want[4][4] = {
        /* train, test, train positives, test positives */
        { 199, 104, 91, 48 },
        { 172, 89, 65, 33 },
        { 30, 16, 30, 15 },
        { 85, 45, 66, 35 },
    };
    size_t total = 0;
    for (size_t s = 0; s < MFL_HEART_N_SITES; s++) {
        mfl_dataset_t *tr, *te;
        char err[512] = "";
        if (mfl_heart_load_site(dir, mfl_heart_site_name(s), &tr, &te, err, sizeof err) < 0)
            fail_msg("%s", err);
        assert_int_equal(tr->n, want[s][0]);
        assert_int_equal(te->n, want[s][1]);
        assert_int_equal(s_positives(tr), want[s][2]);
        assert_int_equal(s_positives(te), want[s][3]);
        assert_int_equal(tr->n_features, MFL_HEART_N_FEATURES);
        assert_int_equal(tr->n_classes, 2);
        for (size_t i = 0; i < te->n; i++)
            assert_true(te->y[i] == 0.0f || te->y[i] == 1.0f);
        total += tr->n + te->n;
        mfl_dataset_destroy(&tr);
        mfl_dataset_destroy(&te);
    }
    assert_int_equal(total, 740);
}

static void test_site_standardisation_matches_reference(void **state)
{
    (void)state;
    const char *dir = s_shared();
    if (!dir)
        skip();
    /* First test row's first four features (age, sex, trestbps, chol),
     * standardised with the site's training statistics. */
    static const double want[4][4] = {
        { 0.199479, 0.678902, -0.702358, -0.258218 },
        { -2.044367, -1.557502, -1.829589, -0.411354 },
        { -1.171507, 0.327731, -1.022433, 0.0 },
        { -2.052018, 0.154314, -0.183968, 0.299161 },
    };
    for (size_t s = 0; s < MFL_HEART_N_SITES; s++) {
        mfl_dataset_t *tr, *te;
        char err[512] = "";
        if (mfl_heart_load_site(dir, mfl_heart_site_name(s), &tr, &te, err, sizeof err) < 0)
            fail_msg("%s", err);
        for (size_t j = 0; j < 4; j++)
            assert_float_equal(te->x[j], want[s][j], 2e-5);
        /* Training features: mean 0, unbiased std 1 (or all 0 if constant,
         * like Switzerland's cholesterol). */
        for (size_t j = 0; j < MFL_HEART_N_FEATURES; j++) {
            double m = 0, ss = 0;
            for (size_t i = 0; i < tr->n; i++)
                m += tr->x[i * tr->n_features + j];
            m /= (double)tr->n;
            for (size_t i = 0; i < tr->n; i++) {
                double d = tr->x[i * tr->n_features + j] - m;
                ss += d * d;
            }
            double sd = sqrt(ss / (double)(tr->n - 1));
            assert_true(fabs(m) < 1e-5);
            assert_true(fabs(sd - 1.0) < 1e-4 || sd < 1e-6);
        }
        mfl_dataset_destroy(&tr);
        mfl_dataset_destroy(&te);
    }
}

static void test_raw_features_are_in_flamby_order(void **state)
{
    (void)state;
    const char *dir = s_shared();
    if (!dir)
        skip();
    mfl_dataset_t *tr, *te;
    char err[512] = "";
    if (mfl_heart_load(dir, "cleveland", MFL_HEART_STD_NONE, &tr, &te, err, sizeof err) < 0)
        fail_msg("%s", err);
    /* Line 0 of processed.cleveland.data (a training row):
     * 63,1,1,145,233,1,2,150,0,2.3,3,0,6,0 → cp=1 (all cp dummies 0),
     * restecg=2. */
    static const float row0[13] = { 63, 1, 145, 233, 1, 150, 0, 2.3f, 0, 0, 0, 0, 1 };
    for (size_t j = 0; j < 13; j++)
        assert_float_equal(tr->x[j], row0[j], 1e-6);
    assert_true(tr->y[0] == 0.0f);
    /* Line 1: 67,1,4,160,286,0,2,108,1,1.5,2,3,3,2 → cp_4, label 1. */
    static const float row1[13] = { 67, 1, 160, 286, 0, 108, 1, 1.5f, 0, 0, 1, 0, 1 };
    for (size_t j = 0; j < 13; j++)
        assert_float_equal(tr->x[13 + j], row1[j], 1e-6);
    assert_true(tr->y[1] == 1.0f);
    mfl_dataset_destroy(&tr);
    mfl_dataset_destroy(&te);
}

static void test_pooled_uses_all_486_training_rows(void **state)
{
    (void)state;
    const char *dir = s_shared();
    if (!dir)
        skip();
    /* Pooled statistics (age mean 52.952675, std 9.625772; chol 219.837449,
     * 93.664373) applied to Switzerland's raw rows. */
    mfl_dataset_t *raw_tr, *raw_te, *tr, *te;
    char err[512] = "";
    if (mfl_heart_load(dir, "switzerland", MFL_HEART_STD_NONE, &raw_tr, &raw_te, err, sizeof err) < 0)
        fail_msg("%s", err);
    if (mfl_heart_load_pooled(dir, "switzerland", &tr, &te, err, sizeof err) < 0)
        fail_msg("%s", err);
    for (size_t i = 0; i < te->n; i++) {
        assert_float_equal(te->x[i * 13 + 0], (raw_te->x[i * 13 + 0] - 52.952675) / 9.625772, 1e-5);
        assert_float_equal(te->x[i * 13 + 3], (raw_te->x[i * 13 + 3] - 219.837449) / 93.664373, 1e-5);
    }
    mfl_dataset_destroy(&raw_tr);
    mfl_dataset_destroy(&raw_te);
    mfl_dataset_destroy(&tr);
    mfl_dataset_destroy(&te);
}

static void test_unknown_site_and_missing_dir_are_errors(void **state)
{
    (void)state;
    mfl_dataset_t *tr, *te;
    char err[512] = "";
    assert_int_equal(mfl_heart_load_site("/nonexistent", "cleveland", &tr, &te, err, sizeof err), -1);
    assert_null(tr);
    assert_non_null(strstr(err, "/nonexistent/data/uci-heart-disease/flamby-split.json: cannot open"));
    assert_int_equal(mfl_heart_load_site("/nonexistent", "zurich", &tr, &te, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown heart-disease site 'zurich'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sites_have_flamby_counts),
        cmocka_unit_test(test_site_standardisation_matches_reference),
        cmocka_unit_test(test_raw_features_are_in_flamby_order),
        cmocka_unit_test(test_pooled_uses_all_486_training_rows),
        cmocka_unit_test(test_unknown_site_and_missing_dir_are_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
