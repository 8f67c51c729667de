/* IDX (MNIST format) loader: a hand-made file round-trips, gzip and plain
 * files both load, malformed headers are refused with the file named, and
 * Debian's Fashion-MNIST loads when installed. */
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
#include <zlib.h>

#include "data/idx.h"

#include "fmnist_debian.h"

/* 3 images of 2x2 and 3 labels. */
static const uint8_t s_images[] = { 0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
                                    0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 255, 255 };
static const uint8_t s_labels[] = { 0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 2 };

static void test_parse_scales_pixels_and_sets_shape(void **state)
{
    (void)state;
    char err[256] = "";
    mfl_dataset_t *ds = mfl_idx_parse(s_images, sizeof s_images, s_labels, sizeof s_labels, 0, err, sizeof err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->n_features, 4);
    assert_int_equal(ds->channels, 1);
    assert_int_equal(ds->height, 2);
    assert_int_equal(ds->width, 2);
    assert_int_equal(ds->n_classes, 8);
    assert_float_equal(ds->x[1], 1.0f, 0);
    assert_float_equal(ds->x[2], 0.2f, 1e-6);
    assert_true(ds->y[0] == 7.0f && ds->y[2] == 2.0f);
    mfl_dataset_destroy(&ds);
    ds = mfl_idx_parse(s_images, sizeof s_images, s_labels, sizeof s_labels, 2, err, sizeof err);
    assert_int_equal(ds->n, 2);
    mfl_dataset_destroy(&ds);
}

static void s_expect(const uint8_t *img, size_t ilen, const uint8_t *lab, size_t llen, const char *want)
{
    char err[256] = "";
    mfl_dataset_t *ds = mfl_idx_parse(img, ilen, lab, llen, 0, err, sizeof err);
    if (ds || strcmp(err, want) != 0)
        fail_msg("got '%s', want '%s'", err, want);
}

static void test_malformed_headers_are_refused(void **state)
{
    (void)state;
    /* One byte of the image header changed, and what must be said. */
    static const struct {
        size_t at;
        uint8_t value;
        const char *msg;
    } cases[] = {
        { 0, 1, "images: not an IDX file (bad magic 01000803)" },
        { 2, 0x0D, "images: IDX data type 0x0d is not unsigned byte (0x08)" },
        { 3, 1, "images: IDX file has 1 dimensions, expected 3" },
        { 11, 0, "images: IDX dimension 1 is zero" },
        { 4, 0x7f, "images: 2130706435 items exceeds the limit of 16777216" }, /* 2G images */
        { 9, 0x10, "images: 1048578x2 images exceed the limit of 1048576 pixels" }, /* 1M x 2 */
    };
    uint8_t b[sizeof s_images];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, s_images, sizeof b);
        b[cases[i].at] = cases[i].value;
        s_expect(b, sizeof b, s_labels, sizeof s_labels, cases[i].msg);
    }
    s_expect(s_images, sizeof s_images - 1, s_labels, sizeof s_labels, "images: 27 bytes, but the header implies 28");
    s_expect(s_images, 10, s_labels, sizeof s_labels, "images: truncated IDX header");
    uint8_t l[sizeof s_labels];
    memcpy(l, s_labels, sizeof l);
    l[7] = 4;
    s_expect(s_images, sizeof s_images, l, sizeof l, "images has 3 images but labels has 4 labels");
}

static int s_write(const char *path, const uint8_t *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f)
            return -1;
        int ok = gzwrite(f, data, (unsigned)n) == (int)n;
        gzclose(f);
        return ok ? 0 : -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, n, f) == n;
    fclose(f);
    return ok ? 0 : -1;
}

static void test_files_plain_and_gzipped(void **state)
{
    (void)state;
    char dir[] = "/tmp/mfl-idx-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ip[64], lp[64];
    snprintf(ip, sizeof ip, "%s/i.gz", dir);
    snprintf(lp, sizeof lp, "%s/l", dir);
    assert_int_equal(s_write(ip, s_images, sizeof s_images, 1), 0);
    assert_int_equal(s_write(lp, s_labels, sizeof s_labels, 0), 0);
    char err[256] = "";
    mfl_dataset_t *ds = mfl_idx_load(ip, lp, 0, err, sizeof err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 3);
    assert_float_equal(ds->x[4 + 3], 4.0f / 255.0f, 1e-7);
    mfl_dataset_destroy(&ds);
    /* Truncated and over-long files. */
    assert_int_equal(s_write(lp, s_labels, sizeof s_labels - 1, 0), 0);
    assert_null(mfl_idx_load(ip, lp, 0, err, sizeof err));
    char want[128];
    snprintf(want, sizeof want, "%s: truncated label data (2 of 3 bytes)", lp);
    assert_string_equal(err, want);
    uint8_t longer[sizeof s_labels + 1];
    memcpy(longer, s_labels, sizeof s_labels);
    longer[sizeof s_labels] = 9;
    assert_int_equal(s_write(lp, longer, sizeof longer, 0), 0);
    assert_null(mfl_idx_load(ip, lp, 0, err, sizeof err));
    snprintf(want, sizeof want, "%s: trailing bytes after the data the header describes", lp);
    assert_string_equal(err, want);
    /* A truncated gzipped image file. */
    assert_int_equal(s_write(lp, s_labels, sizeof s_labels, 0), 0);
    assert_int_equal(s_write(ip, s_images, sizeof s_images - 3, 1), 0);
    assert_null(mfl_idx_load(ip, lp, 0, err, sizeof err));
    snprintf(want, sizeof want, "%s: truncated or corrupt pixel data (image 1 of 3)", ip);
    assert_string_equal(err, want);
    assert_int_equal(s_write(ip, s_images, sizeof s_images, 1), 0);
    assert_int_equal(s_write(lp, longer, sizeof longer, 0), 0);
    /* ...but reading only the first rows does not need the rest. */
    ds = mfl_idx_load(ip, lp, 2, err, sizeof err);
    assert_non_null(ds);
    mfl_dataset_destroy(&ds);
    /* A FIFO for the labels: refused, not waited on. */
    char fifo[80];
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_null(mfl_idx_load(ip, fifo, 0, err, sizeof err));
    snprintf(want, sizeof want, "%s: not a regular file", fifo);
    assert_string_equal(err, want);
    unlink(fifo);
    unlink(ip);
    unlink(lp);
    rmdir(dir);
    assert_null(mfl_idx_load(ip, lp, 0, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

static void test_fashion_mnist_from_debian(void **state)
{
    (void)state;
    mfl_dataset_t *ds = fmnist_debian_load(0);
    assert_int_equal(ds->n, 10000);
    assert_int_equal(ds->height, 28);
    assert_int_equal(ds->width, 28);
    assert_int_equal(ds->n_classes, 10);
    size_t counts[10];
    mfl_dataset_class_counts(ds, counts);
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], 1000); /* the test set is balanced */
    assert_true(ds->y[0] == 9.0f);         /* first test item: ankle boot */
    float lo = 1, hi = 0;
    for (size_t i = 0; i < ds->n * ds->n_features; i++) {
        lo = ds->x[i] < lo ? ds->x[i] : lo;
        hi = ds->x[i] > hi ? ds->x[i] : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);
    mfl_dataset_destroy(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_scales_pixels_and_sets_shape),
        cmocka_unit_test(test_malformed_headers_are_refused),
        cmocka_unit_test(test_files_plain_and_gzipped),
        cmocka_unit_test(test_fashion_mnist_from_debian),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
