/* WDBC loader: the real file (if deploy/get-wdbc.sh has fetched it) and
 * hand-made files for the header and target checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/wdbc.h"

static void test_real_file_has_569_rows_and_malignant_is_one(void **state)
{
    (void)state;
    const char *path = getenv("METAFL_WDBC");
    if (!path)
        path = MFL_WDBC_DEFAULT_PATH;
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("SKIP: %s not found (run deploy/get-wdbc.sh)\n", path);
        skip();
    }
    char err[256] = "";
    mfl_dataset_t *ds = mfl_wdbc_load(path, err, sizeof err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, MFL_WDBC_N_ROWS);
    assert_int_equal(ds->n_features, MFL_WDBC_N_FEATURES);
    assert_int_equal(ds->n_classes, 2);
    size_t counts[2];
    mfl_dataset_class_counts(ds, counts);
    assert_int_equal(counts[1], 212); /* malignant */
    assert_int_equal(counts[0], 357);
    /* Row 1 is the classic malignant case: mean radius 17.99. */
    assert_float_equal(ds->x[0], 17.99f, 1e-5);
    assert_true(ds->y[0] == 1.0f);
    assert_string_equal(mfl_wdbc_feature_name(29), "worst fractal dimension");
    assert_null(mfl_wdbc_feature_name(30));
    mfl_dataset_destroy(&ds);
}

static char *s_row(int target)
{
    static char buf[512];
    size_t n = 0;
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%d.5,", i);
    snprintf(buf + n, sizeof buf - n, "%d\n", target);
    return buf;
}

static const char *s_write(const char *text)
{
    static char path[] = "/tmp/mfl-wdbc-XXXXXX";
    strcpy(path, "/tmp/mfl-wdbc-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_small_files_and_errors(void **state)
{
    (void)state;
    char text[2048], err[256], want[256];
    snprintf(text, sizeof text, "2,30,malignant,benign\n%s", s_row(0));
    strcat(text, s_row(1));
    const char *p = s_write(text);
    mfl_dataset_t *ds = mfl_wdbc_load(p, err, sizeof err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 2);
    assert_true(ds->y[0] == 1.0f && ds->y[1] == 0.0f);
    assert_float_equal(ds->x[29], 29.5f, 0);
    mfl_dataset_destroy(&ds);
    unlink(p);

    snprintf(text, sizeof text, "3,30,malignant,benign\n%s", s_row(0));
    p = s_write(text);
    assert_null(mfl_wdbc_load(p, err, sizeof err));
    snprintf(want, sizeof want, "%s:1: header announces 3 rows but the file has 1", p);
    assert_string_equal(err, want);
    unlink(p);

    snprintf(text, sizeof text, "1,30,benign,malignant\n%s", s_row(0));
    p = s_write(text);
    assert_null(mfl_wdbc_load(p, err, sizeof err));
    assert_non_null(strstr(err, ":1: expected the header"));
    unlink(p);

    snprintf(text, sizeof text, "1,30,malignant,benign\n%s", s_row(2));
    p = s_write(text);
    assert_null(mfl_wdbc_load(p, err, sizeof err));
    snprintf(want, sizeof want, "%s:2: column 31 'target': '2' is not one of the levels 1, 0", p);
    assert_string_equal(err, want);
    unlink(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_file_has_569_rows_and_malignant_is_one),
        cmocka_unit_test(test_small_files_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
