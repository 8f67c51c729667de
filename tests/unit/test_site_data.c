/* A site's data from its config (common/site/site_data.c): the consortium's
 * schema file referenced by the site, the inline schema still accepted when
 * it encodes the same, an optional test file, and imputation and
 * standardisation statistics from the training rows only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "site/site_config.h"
#include "site/site_worker.h"
#include "site/site_worker_internal.h"

#include "tmpdir.h"

static char s_dir[256];

static const char *s_write(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

#define S_BASE                                                                       \
    "site:\n  id: hospital-a\n  key_file: k.key\n"                                   \
    "coordinator:\n  endpoint: tcp://127.0.0.1:7000\n  public_key: c.pub\n"

static const char *SCHEMA =
    "header: true\n"
    "missing: []\n"
    "on_missing: impute\n"
    "columns:\n"
    "  - {name: x, missing: [\"0\"]}\n"
    "  - z\n"
    "  - {name: y, kind: label, rule: class, n_classes: 2}\n";

static int s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make(s_dir, sizeof s_dir, "site-data");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

static mfl_site_worker_t *s_worker(const char *name, const char *yaml)
{
    const char *p = s_write(name, yaml);
    mfl_site_config_t c;
    char err[512] = "";
    if (mfl_site_config_load(p, &c, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    mfl_site_worker_t *w = mfl_site_worker_new(&c, err, sizeof(err));
    if (!w)
        fail_msg("%s", err);
    mfl_site_config_clear(&c);
    return w;
}

/* The schema file and the same schema inline hash equal; a site config
 * names the file relative to itself. */
static void test_schema_file_and_inline_schema_agree(void **state)
{
    (void)state;
    s_write("schema.yaml", SCHEMA);
    s_write("rows.csv", "x,z,y\n1,0,0\n2,0,1\n3,0,0\n4,0,1\n5,0,0\n6,0,1\n");
    mfl_site_worker_t *a = s_worker("a.yaml", S_BASE "data:\n  path: rows.csv\n"
                                              "  schema: schema.yaml\n");
    mfl_site_worker_t *b = s_worker("b.yaml", S_BASE "data:\n  path: rows.csv\n  schema:\n"
                                              "    header: true\n    missing: []\n"
                                              "    on_missing: impute\n    columns:\n"
                                              "      - {name: x, missing: [\"0\"]}\n"
                                              "      - z\n"
                                              "      - {name: y, kind: label, n_classes: 2}\n");
    assert_memory_equal(mfl_site_worker_schema_hash(a), mfl_site_worker_schema_hash(b), 32);
    assert_string_equal(mfl_site_worker_schema_text(a),
                        "metafl-schema v2\nfeatures 2\nclasses 2\nlabel y class\nnumeric x\n"
                        "numeric z\n");
    mfl_site_worker_destroy(&a);
    mfl_site_worker_destroy(&b);
    /* A missing schema file is named by the site config and the path. */
    const char *p = s_write("c.yaml", S_BASE "data:\n  path: rows.csv\n  schema: nope.yaml\n");
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    assert_null(mfl_site_worker_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "c.yaml: data.schema: "));
    assert_non_null(strstr(err, "nope.yaml"));
    mfl_site_config_clear(&c);
}

/* With a separate test file, the held-out rows' huge values must not move
 * the imputed value (x's 0 means missing) nor the standardisation. */
static void test_test_file_statistics_from_training_rows_only(void **state)
{
    (void)state;
    s_write("schema.yaml", SCHEMA);
    s_write("train.csv", "x,z,y\n1,1,0\n2,0,1\n0,1,0\n3,0,1\n");
    s_write("test.csv", "x,z,y\n1000,1,0\n0,0,1\n");
    mfl_site_worker_t *w = s_worker("t.yaml", S_BASE "data:\n  path: train.csv\n"
                                              "  test_path: test.csv\n  schema: schema.yaml\n"
                                              "  standardize: none\n");
    assert_int_equal(mfl_site_worker_n_train(w), 4);
    assert_int_equal(mfl_site_worker_n_heldout(w), 2);
    /* Mean of the training rows' 1, 2, 3: 2 (with the test rows: 251.5). */
    assert_float_equal(w->train->x[2 * 2], 2.0f, 1e-6);
    assert_float_equal(w->heldout->x[1 * 2], 2.0f, 1e-6);
    assert_float_equal(w->heldout->x[0], 1000.0f, 0);
    const char *report = mfl_site_worker_data_report(w);
    assert_non_null(report);
    assert_non_null(strstr(report, "x: 0 rows dropped, 1 cells imputed"));
    mfl_site_worker_destroy(&w);
    /* Standardised: the training rows' own mean and std, whatever the test rows. */
    w = s_worker("s.yaml", S_BASE "data:\n  path: train.csv\n  test_path: test.csv\n"
                           "  schema: schema.yaml\n");
    double m = 0;
    for (size_t i = 0; i < w->train->n; i++)
        m += w->train->x[i * 2];
    assert_true(fabs(m / (double)w->train->n) < 1e-5);
    mfl_site_worker_destroy(&w);
    /* train_fraction has no meaning beside a test file: refused, not ignored. */
    const char *p = s_write("f.yaml", S_BASE "data:\n  path: train.csv\n  test_path: test.csv\n"
                                    "  train_fraction: 0.5\n  schema: schema.yaml\n");
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    if (!strstr(err, "f.yaml:10: key 'data.train_fraction': not used with"))
        fail_msg("%s", err);
}

/* With a split, the imputed value is the mean of the training rows that
 * had a value (not of all rows). */
/* standardize: fixed applies the config's constants to both splits,
 * whatever the rows hold (no statistic of them), and a count that does not
 * match the features is refused at load. */
static void test_fixed_standardize_uses_the_config_constants(void **state)
{
    (void)state;
    s_write("schema.yaml", SCHEMA);
    s_write("train.csv", "x,z,y\n1,1,0\n2,0,1\n4,1,0\n3,0,1\n");
    s_write("test.csv", "x,z,y\n1000,1,0\n5,0,1\n");
    mfl_site_worker_t *w = s_worker("fx.yaml", S_BASE "data:\n  path: train.csv\n"
                                               "  test_path: test.csv\n  schema: schema.yaml\n"
                                               "  standardize: fixed\n  center: [1, 0.5]\n"
                                               "  scale: [2, 0.5]\n");
    static const float train_x[4][2] = {{0, 1}, {0.5f, -1}, {1.5f, 1}, {1, -1}};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 2; j++)
            assert_float_equal(w->train->x[i * 2 + j], train_x[i][j], 1e-6);
    assert_float_equal(w->heldout->x[0], 499.5f, 1e-3); /* (1000 - 1) / 2 */
    assert_float_equal(w->heldout->x[2 * 1 + 1], -1.0f, 1e-6);
    mfl_site_worker_destroy(&w);
    const char *p = s_write("fx3.yaml", S_BASE "data:\n  path: train.csv\n"
                                              "  test_path: test.csv\n  schema: schema.yaml\n"
                                              "  standardize: fixed\n  center: [1, 0.5, 0]\n"
                                              "  scale: [2, 0.5, 1]\n");
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    assert_null(mfl_site_worker_new(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "fx3.yaml: data.center and data.scale have 3 values; the data "
                                "has 2 features"));
    mfl_site_config_clear(&c);
}

static void test_split_imputes_from_training_rows(void **state)
{
    (void)state;
    s_write("schema.yaml", SCHEMA);
    char rows[4096] = "x,z,y\n";
    double all = 0;
    for (int i = 1; i <= 40; i++) {
        char line[64];
        snprintf(line, sizeof line, "%d,%d,%d\n", i == 7 ? 0 : i * i, i == 7 ? 999 : 0, i % 2);
        strcat(rows, line);
        all += i == 7 ? 0 : i * i;
    }
    all /= 39;
    s_write("rows.csv", rows);
    mfl_site_worker_t *w = s_worker("p.yaml", S_BASE "data:\n  path: rows.csv\n"
                                              "  train_fraction: 0.5\n  split_seed: 4\n"
                                              "  schema: schema.yaml\n  standardize: none\n");
    double sum = 0, fill = NAN;
    size_t n = 0;
    for (size_t r = 0; r < w->train->n; r++) {
        if (w->train->x[r * 2 + 1] == 999.0f) {
            fill = w->train->x[r * 2];
            continue;
        }
        sum += w->train->x[r * 2];
        n++;
    }
    for (size_t r = 0; w->heldout && r < w->heldout->n; r++)
        if (w->heldout->x[r * 2 + 1] == 999.0f)
            fill = w->heldout->x[r * 2];
    assert_false(isnan(fill));
    assert_float_equal(fill, (float)(sum / (double)n), 1e-3);
    assert_true(fabs(fill - all) > 1.0); /* the old all-rows mean would differ */
    mfl_site_worker_destroy(&w);
}

/* data.split patients: no patient's windows on both sides (the monitoring
 * app's held-out patients are new patients), both sides keep patients with
 * and without a warning; the default rows split mixes them. A non-series
 * source refuses the key. */
static void test_split_patients_keeps_each_patient_on_one_side(void **state)
{
    (void)state;
    char rows[16384] = "pid,t,hr,ev\n";
    for (int p = 0; p < 20; p++)
        for (int t = 0; t < 8; t++) {
            char line[64];
            /* patient p's windows carry p in hr, so a window names its patient */
            snprintf(line, sizeof line, "P%d,%d,%d,%d\n", p, t, p * 100 + t,
                     p % 4 == 0 && t == 7);
            strcat(rows, line);
        }
    s_write("ser.csv", rows);
    static const char *const ser_cfg =
        S_BASE "data:\n  source: series\n  path: ser.csv\n  series:\n"
                      "    patient: pid\n    time: t\n    channels: [hr]\n    label: ev\n"
                      "    rule: last\n    window: 2\n    stride: 1\n  train_fraction: 0.75\n"
                      "  split_seed: 3\n  standardize: none\n";
    char yaml[1024];
    for (int mode = 0; mode < 2; mode++) {
        snprintf(yaml, sizeof yaml, "%s%s", ser_cfg, mode ? "  split: patients\n" : "");
        mfl_site_worker_t *w = s_worker(mode ? "sp.yaml" : "sr.yaml", yaml);
        int side[20] = {0}; /* bit 1: training windows, bit 2: held-out */
        size_t pos[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            const mfl_dataset_t *d = k ? w->heldout : w->train;
            assert_non_null(d);
            for (size_t r = 0; r < d->n; r++) {
                int p = (int)(d->x[r * d->n_features] / 100.0f);
                side[p] |= 1 << k;
                pos[k] += d->y[r] > 0.5f;
            }
        }
        int both = 0;
        for (int p = 0; p < 20; p++)
            both += side[p] == 3;
        if (mode) {
            assert_int_equal(both, 0);
            assert_true(pos[0] > 0 && pos[1] > 0); /* warnings on both sides */
        } else {
            assert_true(both > 0); /* what the patients split prevents */
        }
        mfl_site_worker_destroy(&w);
    }
    const char *p = s_write("bad.yaml", S_BASE "data:\n  path: rows.csv\n  schema: schema.yaml\n"
                                        "  split: patients\n");
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof err), -1);
    if (!strstr(err, "key 'data.split': 'patients' needs a series source"))
        fail_msg("%s", err);
}

/* IDX fixture: 60 images of 4×4, image i of class i % 3, every pixel i
 * except a 255 marker at the top-left corner, so a turned copy names its
 * source image (any other pixel) and its turn (where the marker went). */
static void s_write_idx(void)
{
    uint8_t img[16 + 60 * 16], lab[8 + 60];
    const uint8_t ih[16] = {0, 0, 8, 3, 0, 0, 0, 60, 0, 0, 0, 4, 0, 0, 0, 4};
    const uint8_t lh[8] = {0, 0, 8, 1, 0, 0, 0, 60};
    memcpy(img, ih, sizeof ih);
    memcpy(lab, lh, sizeof lh);
    for (int i = 0; i < 60; i++) {
        memset(img + 16 + i * 16, i, 16);
        img[16 + i * 16] = 255;
        lab[8 + i] = (uint8_t)(i % 3);
    }
    char path[512];
    snprintf(path, sizeof path, "%s/img.idx", s_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(img, 1, sizeof img, f), sizeof img);
    fclose(f);
    snprintf(path, sizeof path, "%s/lab.idx", s_dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(lab, 1, sizeof lab, f), sizeof lab);
    fclose(f);
}

#define S_IDX S_BASE "data:\n  source: idx\n  path: img.idx\n  labels: lab.idx\n" \
                     "  train_fraction: 0.75\n  split_seed: 5\n"

/* data.rotations: turned copies are classes c + 3q of their own, exactly
 * the ones data.classes keeps; the split is by image before turning (an
 * image and its turns on one side, the upright side the same as a site
 * without rotations), the same at every load, and the schema counts the
 * 4 × 3 classes. */
static void test_idx_rotations_are_classes_split_by_image(void **state)
{
    (void)state;
    s_write_idx();
    const char *rot = S_IDX "  rotations: [0, 90, 180]\n  classes: [0, 4, 8, 2]\n";
    mfl_site_worker_t *w = s_worker("rot.yaml", rot);
    mfl_site_worker_t *again = s_worker("rot2.yaml", rot);
    mfl_site_worker_t *plain = s_worker("plain.yaml", S_IDX "  classes: [0, 2]\n");
    assert_non_null(strstr(mfl_site_worker_schema_text(w), "classes 12\n"));
    assert_non_null(strstr(mfl_site_worker_schema_text(plain), "classes 3\n"));
    int side[60] = {0}, per_label[12] = {0};
    /* where the top-left marker lands after q clockwise quarter turns */
    const size_t marker[4] = {0, 3, 15, 12};
    for (int k = 0; k < 2; k++) {
        const mfl_dataset_t *d = k ? w->heldout : w->train;
        assert_int_equal(d->n_classes, 12);
        for (size_t r = 0; r < d->n; r++) {
            const float *x = d->x + r * d->n_features;
            int q = -1;
            for (int t = 0; t < 4; t++)
                if (x[marker[t]] == 1.0f)
                    q = t;
            assert_true(q >= 0);
            int src = (int)(x[5] * 255.0f + 0.5f);
            int label = (int)d->y[r];
            assert_int_equal(label, src % 3 + 3 * q);
            assert_true(label == 0 || label == 4 || label == 8 || label == 2);
            side[src] |= 1 << k;
            per_label[label]++;
        }
    }
    for (int i = 0; i < 60; i++)
        assert_true(side[i] != 3); /* never one turn trains and another is held out */
    /* 20 images per class: 15 train + 5 held out, each kept class complete */
    assert_int_equal(per_label[0], 20);
    assert_int_equal(per_label[4], 20);
    assert_int_equal(per_label[8], 20);
    assert_int_equal(per_label[2], 20);
    assert_int_equal(w->train->n, 60);
    /* The same split at every load, and the upright images on the same side
     * as at a site without rotations. */
    assert_int_equal(again->train->n, w->train->n);
    assert_memory_equal(again->train->x, w->train->x, w->train->n * 16 * sizeof(float));
    for (size_t r = 0; r < plain->train->n; r++) {
        int src = (int)(plain->train->x[r * 16 + 5] * 255.0f + 0.5f);
        assert_int_equal(side[src], 1);
    }
    for (size_t r = 0; r < plain->heldout->n; r++) {
        int src = (int)(plain->heldout->x[r * 16 + 5] * 255.0f + 0.5f);
        assert_int_equal(side[src], 2);
    }
    mfl_site_worker_destroy(&w);
    mfl_site_worker_destroy(&again);
    mfl_site_worker_destroy(&plain);
}

/* A class data.rotations cannot give, or a bad orientation, stops the
 * site with FILE:LINE and the key. */
static void test_idx_rotation_errors_name_file_and_line(void **state)
{
    (void)state;
    s_write_idx();
    struct {
        const char *yaml, *want;
        bool at_load; /* the config loads; the worker refuses the data */
    } cases[] = {
        {S_IDX "  rotations: [0, 90, 180]\n  classes: [0, 13]\n",
         "r0.yaml:14: key 'data.classes': class 13 is not one of the 3 classes of", true},
        {S_IDX "  rotations: [0, 90, 180]\n  classes: [0, 10]\n",
         "r1.yaml:14: key 'data.classes': class 10 is class 1 turned 270 degrees, an "
         "orientation data.rotations (line 13) does not list", true},
        {S_IDX "  rotations: [0, 45]\n", "r2.yaml:13: key 'data.rotations[1]': 45 is not one "
                                         "of 0, 90, 180, 270", false},
        {S_IDX "  rotations: [90, 90]\n", "r3.yaml:13: key 'data.rotations[1]': 90 degrees is "
                                          "listed twice", false},
        {S_IDX "  rotations: []\n", "r4.yaml:13: key 'data.rotations': expected a list of 1..4",
         false},
        {S_BASE "data:\n  path: rows.csv\n  schema: schema.yaml\n  rotations: [0]\n",
         "r5.yaml:10: key 'data.rotations': only an idx source takes this key", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%zu.yaml", i);
        const char *p = s_write(name, cases[i].yaml);
        mfl_site_config_t c;
        char err[512] = "";
        int rc = mfl_site_config_load(p, &c, err, sizeof err);
        if (cases[i].at_load) {
            if (rc)
                fail_msg("%s: %s", name, err);
            mfl_site_worker_t *w = mfl_site_worker_new(&c, err, sizeof err);
            assert_null(w);
            mfl_site_config_clear(&c);
        } else {
            assert_int_equal(rc, -1);
        }
        if (!strstr(err, cases[i].want))
            fail_msg("%s: got '%s', want '%s'", name, err, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_file_and_inline_schema_agree),
        cmocka_unit_test(test_test_file_statistics_from_training_rows_only),
        cmocka_unit_test(test_split_imputes_from_training_rows),
        cmocka_unit_test(test_fixed_standardize_uses_the_config_constants),
        cmocka_unit_test(test_split_patients_keeps_each_patient_on_one_side),
        cmocka_unit_test(test_idx_rotations_are_classes_split_by_image),
        cmocka_unit_test(test_idx_rotation_errors_name_file_and_line),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
