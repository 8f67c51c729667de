/* safetensors: round trips, a hand-made file read byte for byte, and
 * rejection of truncated, corrupt and mismatched files with messages that
 * name the file and the tensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rng.h"
#include "nn/model.h"
#include "nn/safetensors.h"

static char s_dir[] = "/tmp/mfl-test-st-XXXXXX";

static int s_setup(void **state)
{
    (void)state;
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd);
}

/* Builds a file image from a header string and `n` data bytes (the data
 * are the floats 0, 1, 2, ... so values can be checked). */
static uint8_t *s_image(const char *header, size_t data_bytes, size_t *len)
{
    size_t h = strlen(header);
    *len = 8 + h + data_bytes;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i + 4 <= data_bytes; i += 4) {
        float f = (float)(i / 4);
        memcpy(b + 8 + h + i, &f, 4); /* the test host is little-endian */
    }
    return b;
}

static void s_expect_reject(const char *header, size_t data_bytes, const char *needle)
{
    size_t len;
    uint8_t *img = s_image(header, data_bytes, &len);
    char err[256] = "";
    mfl_safetensors_t *st = mfl_safetensors_parse(img, len, "x.safetensors", err, sizeof err);
    if (st)
        fail_msg("accepted header %s", header);
    if (!strstr(err, needle) || !strstr(err, "x.safetensors"))
        fail_msg("header %s: error '%s' lacks '%s'", header, err, needle);
    free(img);
}

static void test_reads_hand_made_file(void **state)
{
    (void)state;
    const char *h = "{\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2,1],\"data_offsets\":[0,8]},"
                    "\"__metadata__\":{\"format\":\"pt\"}}   ";
    size_t len;
    uint8_t *img = s_image(h, 20, &len);
    char err[256];
    mfl_safetensors_t *st = mfl_safetensors_parse(img, len, "hand", err, sizeof err);
    if (!st)
        fail_msg("%s", err);
    assert_int_equal(mfl_safetensors_n_tensors(st), 2);
    const mfl_st_tensor_t *a = mfl_safetensors_find(st, "a"), *b = mfl_safetensors_find(st, "b");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->ndim, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(b->count, 3);
    float v[3];
    mfl_safetensors_copy(st, b, v);
    assert_true(v[0] == 2 && v[1] == 3 && v[2] == 4);
    mfl_safetensors_copy(st, a, v);
    assert_true(v[0] == 0 && v[1] == 1);
    assert_string_equal(mfl_safetensors_metadata(st, "format"), "pt");
    assert_null(mfl_safetensors_metadata(st, "spec"));
    assert_null(mfl_safetensors_find(st, "c"));
    mfl_safetensors_destroy(&st);
    assert_null(st);
    free(img);
}

static void test_round_trip_through_a_file(void **state)
{
    (void)state;
    char err[256], path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", s_dir);
    mfl_model_t *m = mfl_model_new("cnn4:1x16x16:4:3", 1, err, sizeof err);
    assert_non_null(m);
    size_t n = mfl_model_n_params(m);
    float *t = calloc(n, 4), *u = calloc(n, 4);
    mfl_rng_t r;
    mfl_rng_seed(&r, 5, 5);
    mfl_model_init_params(m, t, &r);
    t[0] = -0.0f;
    t[1] = 1e-40f; /* subnormal survives */
    const char *meta[] = {"round", "7", "note", "quote\" and \\ and \n", NULL};
    if (mfl_safetensors_save(path, m, t, meta, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (mfl_safetensors_load(path, m, u, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_memory_equal(t, u, n * 4);
    mfl_safetensors_t *st = mfl_safetensors_read(path, err, sizeof err);
    assert_non_null(st);
    assert_string_equal(mfl_safetensors_metadata(st, "spec"), "cnn4:1x16x16:4:3");
    assert_string_equal(mfl_safetensors_metadata(st, "note"), "quote\" and \\ and \n");
    assert_int_equal(mfl_safetensors_n_tensors(st), mfl_model_n_tensors(m));
    mfl_safetensors_destroy(&st);
    /* No temp file is left behind. */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "test $(ls %s | wc -l) -eq 1", s_dir);
    assert_int_equal(system(cmd), 0);
    /* The header is padded so the data section is 8-byte aligned. */
    FILE *f = fopen(path, "rb");
    uint8_t hl[8];
    assert_int_equal(fread(hl, 1, 8, f), 8);
    fclose(f);
    assert_int_equal(hl[0] % 8, 0);

    const char *reserved[] = {"spec", "x", NULL};
    assert_int_equal(mfl_safetensors_save(path, m, t, reserved, err, sizeof err), -1);
    free(t);
    free(u);
    mfl_model_destroy(&m);
}

static void test_load_rejects_other_models(void **state)
{
    (void)state;
    char err[256], path[128];
    snprintf(path, sizeof path, "%s/mlp.safetensors", s_dir);
    mfl_model_t *a = mfl_model_new("mlp:4-8-2", 1, err, sizeof err);
    mfl_model_t *b = mfl_model_new("mlp:4-9-2", 1, err, sizeof err);
    mfl_model_t *c = mfl_model_new("mlp:4-8-8-2", 1, err, sizeof err);
    float t[256] = {0};
    assert_int_equal(mfl_safetensors_save(path, a, t, NULL, err, sizeof err), 0);
    assert_int_equal(mfl_safetensors_load(path, b, t, err, sizeof err), -1);
    assert_non_null(strstr(err, "mlp:4-9-2"));
    assert_non_null(strstr(err, path));
    /* Without the spec check, the shape check still names the tensor. */
    size_t len;
    uint8_t *img;
    assert_int_equal(mfl_safetensors_encode(a, t, NULL, &img, &len, err, sizeof err), 0);
    mfl_safetensors_t *st = mfl_safetensors_parse(img, len, "mem", err, sizeof err);
    assert_non_null(st);
    mfl_safetensors_destroy(&st);
    free(img);
    assert_int_equal(mfl_safetensors_load(path, c, t, err, sizeof err), -1);
    assert_int_equal(mfl_safetensors_load("/nonexistent/x.safetensors", a, t, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/x.safetensors"));
    mfl_model_destroy(&a);
    mfl_model_destroy(&b);
    mfl_model_destroy(&c);
}

static void test_rejects_shape_mismatch_naming_tensor(void **state)
{
    (void)state;
    char err[256], path[128];
    snprintf(path, sizeof path, "%s/hand.safetensors", s_dir);
    /* A file with fc1.weight [3,4] (no spec) loaded into mlp:4-3 works;
     * with [4,3] it must fail and name fc1.weight. */
    mfl_model_t *m = mfl_model_new("linear:4-3", 1, err, sizeof err);
    float t[15];
    const char *good = "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[3,4],\"data_offsets\":[0,48]},"
                       "\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}";
    const char *bad = "{\"fc1.weight\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]},"
                      "\"fc1.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[48,60]}}";
    const char *headers[2] = {good, bad};
    for (int k = 0; k < 2; k++) {
        size_t len;
        uint8_t *img = s_image(headers[k], 60, &len);
        FILE *f = fopen(path, "wb");
        assert_int_equal(fwrite(img, 1, len, f), len);
        fclose(f);
        free(img);
        int rc = mfl_safetensors_load(path, m, t, err, sizeof err);
        if (k == 0) {
            assert_int_equal(rc, 0);
            assert_true(t[0] == 0 && t[11] == 11 && t[12] == 12 && t[14] == 14);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, "fc1.weight"));
            assert_non_null(strstr(err, "[4,3]"));
        }
    }
    mfl_model_destroy(&m);
}

static void test_rejects_corrupt_headers(void **state)
{
    (void)state;
#define T(name, shape, offs) "{\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}}"
    s_expect_reject(T("a", "[2]", "[0,4]"), 4, "'a'");               /* bytes ≠ shape */
    s_expect_reject(T("a", "[2]", "[0,8]"), 4, "'a'");               /* past the end */
    s_expect_reject(T("a", "[1]", "[4,8]"), 8, "gap");               /* hole at start */
    s_expect_reject(T("a", "[1]", "[0,4]"), 8, "after the last");    /* trailing bytes */
    s_expect_reject(T("a", "[1099511627776,1099511627776]", "[0,4]"), 4, "overflow");
    s_expect_reject(T("a", "[1,1,1,1,1]", "[0,4]"), 4, "at most");
    s_expect_reject(T("a", "[-1]", "[0,4]"), 4, "shape[0]");
    s_expect_reject(T("a", "[1.5]", "[0,4]"), 4, "shape[0]");
    s_expect_reject(T("a", "[1]", "[8,4]"), 8, "outside");
    s_expect_reject(T("a", "[1]", "[0]"), 4, "data_offsets");
    s_expect_reject(T("", "[1]", "[0,4]"), 4, "empty");
    s_expect_reject("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "F16");
    s_expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
                    "unknown key 'x'");
    s_expect_reject("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    s_expect_reject("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap");
    s_expect_reject("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ 'k'");
    s_expect_reject("{\"__metadata__\":[]}", 0, "__metadata__");
    s_expect_reject("[1,2]", 0, "object");
    s_expect_reject("{\"a\":", 0, "header");
    s_expect_reject("{\"a\":1,\"a\":2}", 0, "header");                /* duplicate key */
    s_expect_reject("{\"a\":3}", 0, "'a'");
#undef T
}

static void test_rejects_truncated_and_oversized(void **state)
{
    (void)state;
    char err[256];
    uint8_t small[7] = {0};
    assert_null(mfl_safetensors_parse(small, sizeof small, "t.st", err, sizeof err));
    assert_non_null(strstr(err, "truncated"));
    /* Header length says more than the file has. */
    uint8_t b[16] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    assert_null(mfl_safetensors_parse(b, sizeof b, "t.st", err, sizeof err));
    assert_non_null(strstr(err, "truncated"));
    /* A header length over the limit is refused before anything else. */
    uint8_t huge[16] = {0, 0, 0, 0x40, 0, 0, 0, 0};
    assert_null(mfl_safetensors_parse(huge, sizeof huge, "t.st", err, sizeof err));
    assert_non_null(strstr(err, "limit"));
    uint8_t wrap[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_null(mfl_safetensors_parse(wrap, sizeof wrap, "t.st", err, sizeof err));
    /* Every prefix of a valid file is refused (and none crashes). */
    char e2[256];
    mfl_model_t *m = mfl_model_new("mlp:3-4-2", 1, e2, sizeof e2);
    float t[64] = {1};
    uint8_t *img;
    size_t len;
    assert_int_equal(mfl_safetensors_encode(m, t, NULL, &img, &len, e2, sizeof e2), 0);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, img, cut);
        mfl_safetensors_t *st = mfl_safetensors_parse(copy, cut, "cut", err, sizeof err);
        assert_null(st);
        free(copy);
    }
    /* Flipping any header byte never crashes; most are rejected. */
    size_t hl = img[0] | (size_t)img[1] << 8;
    for (size_t i = 8; i < 8 + hl; i++) {
        uint8_t save = img[i];
        img[i] ^= 0x55;
        mfl_safetensors_t *st = mfl_safetensors_parse(img, len, "flip", err, sizeof err);
        mfl_safetensors_destroy(&st);
        img[i] = save;
    }
    free(img);
    mfl_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_hand_made_file),
        cmocka_unit_test(test_round_trip_through_a_file),
        cmocka_unit_test(test_load_rejects_other_models),
        cmocka_unit_test(test_rejects_shape_mismatch_naming_tensor),
        cmocka_unit_test(test_rejects_corrupt_headers),
        cmocka_unit_test(test_rejects_truncated_and_oversized),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
