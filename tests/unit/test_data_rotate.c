/* Rotated copies of images as classes (common/data/rotate.c): the turn is
 * clockwise and exact, labels are c + q·C whatever orientations are asked
 * for, the keep list filters, and bad requests are refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "data/rotate.h"

/* Two 3×3 images (classes 0 and 1 of 3), pixel value = 10·row + col, +100
 * for the second image. */
static mfl_dataset_t *s_two_images(size_t channels)
{
    mfl_dataset_t *d = mfl_dataset_new(2, channels * 9);
    assert_non_null(d);
    d->channels = channels;
    d->height = d->width = 3;
    d->n_classes = 3;
    for (size_t r = 0; r < 2; r++) {
        for (size_t c = 0; c < channels; c++)
            for (size_t i = 0; i < 3; i++)
                for (size_t j = 0; j < 3; j++)
                    d->x[r * d->n_features + c * 9 + i * 3 + j] =
                        (float)(100 * r + 1000 * c + 10 * i + j);
        d->y[r] = (float)r;
    }
    return d;
}

static void test_turns_are_clockwise_and_labelled(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_two_images(1);
    unsigned q[] = {0, 1, 2, 3};
    char err[256] = "";
    mfl_dataset_t *r = mfl_dataset_rotate_classes(d, q, 4, NULL, 0, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_int_equal(r->n, 8);
    assert_int_equal(r->n_classes, 12); /* 4 orientations × 3 classes */
    assert_int_equal(r->height, 3);
    /* Order: every row at 0°, then every row at 90°, ... */
    const float want_y[] = {0, 1, 3, 4, 6, 7, 9, 10};
    for (size_t i = 0; i < 8; i++)
        assert_true(r->y[i] == want_y[i]);
    /* 0°: unchanged. */
    assert_memory_equal(r->x, d->x, 9 * sizeof(float));
    /* 90° clockwise: the left column, read bottom-up, becomes the top row. */
    const float *q1 = r->x + 2 * 9;
    const float want1[9] = {20, 10, 0, 21, 11, 1, 22, 12, 2};
    assert_memory_equal(q1, want1, sizeof want1);
    /* 180°: reversed. */
    const float *q2 = r->x + 4 * 9;
    const float want2[9] = {22, 21, 20, 12, 11, 10, 2, 1, 0};
    assert_memory_equal(q2, want2, sizeof want2);
    /* 270° clockwise: the top row, read right to left, becomes the left column. */
    const float *q3 = r->x + 6 * 9;
    const float want3[9] = {2, 12, 22, 1, 11, 21, 0, 10, 20};
    assert_memory_equal(q3, want3, sizeof want3);
    /* The second image turned 90° is the first's plus 100. */
    for (size_t i = 0; i < 9; i++)
        assert_true(r->x[3 * 9 + i] == want1[i] + 100);
    mfl_dataset_destroy(&r);
    mfl_dataset_destroy(&d);
}

/* Labels do not depend on which orientations are listed, the keep list
 * drops the others, and every channel turns alike. */
static void test_keep_and_channels(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_two_images(2);
    unsigned q[] = {2, 1};
    uint32_t keep[] = {7, 3}; /* class 1 at 180°, class 0 at 90° */
    char err[256] = "";
    mfl_dataset_t *r = mfl_dataset_rotate_classes(d, q, 2, keep, 2, err, sizeof err);
    if (!r)
        fail_msg("%s", err);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->n_classes, 12);
    assert_true(r->y[0] == 7.0f); /* listed order: 180° first */
    assert_true(r->y[1] == 3.0f);
    const float want2[9] = {122, 121, 120, 112, 111, 110, 102, 101, 100};
    assert_memory_equal(r->x, want2, sizeof want2);
    for (size_t i = 0; i < 9; i++) /* the second plane: the same turn, +1000 */
        assert_true(r->x[9 + i] == want2[i] + 1000);
    const float want1[9] = {20, 10, 0, 21, 11, 1, 22, 12, 2};
    assert_memory_equal(r->x + 18, want1, sizeof want1);
    mfl_dataset_destroy(&r);
    mfl_dataset_destroy(&d);
}

static void test_bad_requests_are_refused(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_two_images(1);
    char err[256] = "";
    unsigned twice[] = {1, 1}, four[] = {4}, none[] = {0};
    assert_null(mfl_dataset_rotate_classes(d, twice, 2, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "90 degrees is listed twice"));
    assert_null(mfl_dataset_rotate_classes(d, four, 1, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "4 quarter turns is not one of 0..3"));
    assert_null(mfl_dataset_rotate_classes(d, none, 0, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "expected 1..4 orientations"));
    /* 3 rows × 2 columns: 180° works, 90° does not. */
    d->height = 3;
    d->width = 2;
    d->n_features = 6;
    unsigned half[] = {2}, quarter[] = {1};
    mfl_dataset_t *r = mfl_dataset_rotate_classes(d, half, 1, NULL, 0, err, sizeof err);
    assert_non_null(r);
    mfl_dataset_destroy(&r);
    assert_null(mfl_dataset_rotate_classes(d, quarter, 1, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "a 90-degree rotation needs square images, these are 3x2"));
    /* A table is not an image. */
    d->channels = d->height = d->width = 0;
    assert_null(mfl_dataset_rotate_classes(d, half, 1, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "rotations need images"));
    mfl_dataset_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_turns_are_clockwise_and_labelled),
        cmocka_unit_test(test_keep_and_channels),
        cmocka_unit_test(test_bad_requests_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
