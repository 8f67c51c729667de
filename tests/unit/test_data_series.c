/* Per-patient series in long form → windows (data/series.h): rows grouped
 * by patient and ordered by time whatever the file order, windows and
 * strides, the three label rules, and FILE:LINE errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "data/csv_canon.h"
#include "data/series.h"

static const char *const s_ch[] = { "hr", "sbp" };

static mfl_series_spec_t s_spec(size_t window, size_t stride, mfl_series_label_t rule)
{
    mfl_series_spec_t sp = { .patient = "pid", .time = "t", .channels = s_ch, .n_channels = 2,
                             .label = "event", .label_rule = rule, .window = window,
                             .stride = stride };
    return sp;
}

/* Shuffled rows: patient b first in the file, times out of order. */
static const char *TEXT = "t,pid,hr,sbp,event,junk\n"
                          "2,b,61,121,0,x\n"
                          "1,a,70,110,0,x\n"
                          "3,a,72,112,1,x\n"
                          "2,a,71,111,0,x\n"
                          "1,b,60,120,0,x\n"
                          "4,a,73,113,0,x\n";

static void test_windows_grouped_by_patient_in_time_order(void **state)
{
    (void)state;
    mfl_series_spec_t sp = s_spec(2, 1, MFL_SERIES_LABEL_LAST);
    char err[256] = "";
    mfl_series_stats_t st;
    mfl_dataset_t *ds = mfl_series_parse(TEXT, strlen(TEXT), "s.csv", &sp, &st, err, sizeof err);
    if (!ds)
        fail_msg("%s", err);
    /* b: (1,2) → 1 window; a: (1,2) (2,3) (3,4) → 3 windows. b came first. */
    assert_int_equal(ds->n, 4);
    assert_int_equal(ds->n_features, 4);
    assert_int_equal(st.n_patients, 2);
    assert_int_equal(st.rows_read, 6);
    static const float b0[4] = { 60, 120, 61, 121 }, a1[4] = { 71, 111, 72, 112 };
    for (int k = 0; k < 4; k++) {
        assert_float_equal(ds->x[k], b0[k], 0);
        assert_float_equal(ds->x[2 * 4 + k], a1[k], 0);
    }
    assert_int_equal(st.patient_of_example[0], 0); /* b */
    assert_int_equal(st.patient_of_example[3], 1); /* a */
    assert_non_null(ds->group); /* the patient is each window's task unit */
    assert_int_equal(ds->group[0], 0);
    assert_int_equal(ds->group[3], 1);
    /* LAST: a's (2,3) window ends at the event. */
    assert_true(ds->y[2] == 1.0f && ds->y[3] == 0.0f && ds->n_classes == 2);
    mfl_series_stats_clear(&st);
    mfl_dataset_destroy(&ds);

    /* Stride 2, window 2, ANY: a → (1,2) (3,4); the second holds the event. */
    sp = s_spec(2, 2, MFL_SERIES_LABEL_ANY);
    ds = mfl_series_parse(TEXT, strlen(TEXT), "s.csv", &sp, &st, err, sizeof err);
    assert_int_equal(ds->n, 3);
    assert_true(ds->y[1] == 0.0f && ds->y[2] == 1.0f);
    mfl_series_stats_clear(&st);
    mfl_dataset_destroy(&ds);

    /* Window 3: b is too short; regression keeps the last value. */
    sp = s_spec(3, 1, MFL_SERIES_LABEL_REGRESSION);
    ds = mfl_series_parse(TEXT, strlen(TEXT), "s.csv", &sp, &st, err, sizeof err);
    assert_int_equal(ds->n, 2);
    assert_int_equal(st.patients_too_short, 1);
    assert_int_equal(ds->n_classes, 0);
    assert_true(ds->y[0] == 1.0f && ds->y[1] == 0.0f);
    char *canon = mfl_series_canonical(&sp, 0);
    assert_string_equal(canon, "metafl-schema v2\nfeatures 6\nclasses 0\nlabel event "
                               "window-regression\nseries window=3 channels=hr,sbp\n");
    free(canon);
    mfl_series_stats_clear(&st);
    mfl_dataset_destroy(&ds);
}

static void test_bad_series_name_file_line_column(void **state)
{
    (void)state;
    mfl_series_spec_t sp = s_spec(2, 1, MFL_SERIES_LABEL_LAST);
    char err[256] = "";
    static const struct {
        const char *text, *msg;
    } cases[] = {
        { "t,pid,hr,sbp,event\n1,a,70,x,0\n", "s.csv:2: column 4 'sbp': 'x' is not a number" },
        { "t,pid,hr,event\n1,a,70,0\n", "s.csv:1: the channel column 'sbp' is not in the header" },
        { "t,pid,hr,sbp,event\n1,a,70,1,0.5\n", "s.csv:2: column 5 'event': '0.5' is not a class index" },
        { "t,pid,hr,sbp,event\n1,a,70,1\n", "s.csv:2: expected 5 columns, found 4" },
        { "t,pid,hr,sbp,event\n1,a,70,1,\n", "s.csv:2: column 5 'event': '' is not a number" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mfl_dataset_t *ds = mfl_series_parse(cases[i].text, strlen(cases[i].text), "s.csv", &sp,
                                             NULL, err, sizeof err);
        if (ds || strcmp(err, cases[i].msg) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].msg);
    }
    sp.window = 0;
    assert_null(mfl_series_parse(TEXT, strlen(TEXT), "s.csv", &sp, NULL, err, sizeof err));
    assert_non_null(strstr(err, "window must be in 1..4096"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_grouped_by_patient_in_time_order),
        cmocka_unit_test(test_bad_series_name_file_line_column),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
