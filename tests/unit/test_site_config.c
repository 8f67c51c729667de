/* Site configuration: the documented example loads, and every mistake a
 * hospital's IT could make stops the agent with FILE:LINE and the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "site/site_config.h"
#include "site/site_worker.h"

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
    "site:\n"                                                                        \
    "  id: hospital-a\n"                                                             \
    "  key_file: keys/hospital-a.key\n"                                              \
    "coordinator:\n"                                                                 \
    "  endpoint: tcp://127.0.0.1:7000\n"                                             \
    "  public_key: keys/coordinator.pub\n"

#define S_CSV_DATA                                                                   \
    "data:\n"                                                                        \
    "  source: csv\n"                                                                \
    "  path: rows.csv\n"                                                             \
    "  train_fraction: 0.5\n"                                                        \
    "  schema:\n"                                                                    \
    "    header: true\n"                                                             \
    "    columns:\n"                                                                 \
    "      - a\n"                                                                    \
    "      - b\n"                                                                    \
    "      - {name: y, kind: label, rule: class, n_classes: 2}\n"

static int s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make(s_dir, sizeof s_dir, "site-config");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

static void test_documented_example_loads(void **state)
{
    (void)state;
    mfl_site_config_t c;
    char err[512] = "";
    /* The shipped example, from the repository root (where tests run). */
    if (mfl_site_config_load("configs/site.yaml", &c, err, sizeof(err)))
        fail_msg("configs/site.yaml: %s", err);
    assert_string_equal(c.site_id, "hospital-a");
    assert_string_equal(c.endpoint, "tcp://coordinator.consortium.example:7000");
    assert_string_equal(c.key_file, "configs/keys/hospital-a.key"); /* resolved */
    assert_int_equal(c.data_kind, MFL_SITE_DATA_CSV);
    assert_non_null(c.doc);
    /* limits left to their defaults: the message limit follows max_params */
    assert_int_equal(c.max_params, 256u << 20);
    assert_int_equal(c.max_message_bytes, 4 * (256u << 20) + (1u << 20));
    assert_int_equal(c.heartbeat_ms, 2000);
    assert_int_equal(c.upload_encodings, 0x7); /* float32 + fp16 + int8 */
    mfl_site_config_clear(&c);
    assert_null(c.doc);
}

static void test_unknown_key_is_refused_with_file_and_line(void **state)
{
    (void)state;
    const char *p = s_write("typo.yaml", S_BASE S_CSV_DATA "runtime:\n  thraeds: 2\n");
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "typo.yaml:18"));
    assert_non_null(strstr(err, "thraeds"));
    assert_non_null(strstr(err, "threads")); /* the known keys are listed */
}

static void test_bad_values_name_the_key(void **state)
{
    (void)state;
    struct {
        const char *yaml, *want;
    } cases[] = {
        {S_BASE S_CSV_DATA "runtime:\n  threads: 0\n", "runtime.threads"},
        {S_BASE S_CSV_DATA "runtime:\n  log_level: loud\n", "loud"},
        {S_BASE "data:\n  source: parquet\n  path: x\n", "parquet"},
        {S_BASE "data:\n  source: csv\n  path: x.csv\n", "data.schema"},
        {S_BASE "data:\n  source: wdbc\n  path: x.csv\n  train_fraction: 1.5\n",
         "data.train_fraction"},
        {"site:\n  id: bad/name\n  key_file: k\ncoordinator:\n  endpoint: tcp://h:1\n"
         "  public_key: p\ndata:\n  source: wdbc\n  path: x\n", "site.id"},
        {"site:\n  id: a\n  key_file: k\ncoordinator:\n  endpoint: http://h:1\n"
         "  public_key: p\ndata:\n  source: wdbc\n  path: x\n", "tcp://"},
        {"site:\n  id: a\ncoordinator:\n  endpoint: tcp://h:1\n  public_key: p\n"
         "data:\n  source: wdbc\n  path: x\n", "site.key_file"},
        {S_BASE "data:\n  source: wdbc\n  path: x\nlimits:\n  max_message_bytes: 12Q\n",
         "limits.max_message_bytes"},
        {S_BASE "data:\n  source: wdbc\n  path: x\nupload:\n  encodings: [fp16, bf16]\n",
         "bf16"},
        {S_BASE "data:\n  source: wdbc\n  path: x\nupload:\n  encodings: int8\n",
         "upload.encodings"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = s_write("bad.yaml", cases[i].yaml);
        mfl_site_config_t c;
        char err[512] = "";
        if (mfl_site_config_load(p, &c, err, sizeof(err)) != -1)
            fail_msg("case %zu loaded but should fail (want '%s')", i, cases[i].want);
        if (!strstr(err, "bad.yaml:") || !strstr(err, cases[i].want))
            fail_msg("case %zu: error '%s' should name bad.yaml:LINE and '%s'", i, err,
                     cases[i].want);
    }
}

static void test_missing_data_file_names_the_path(void **state)
{
    (void)state;
    const char *p = s_write("nofile.yaml", S_BASE S_CSV_DATA);
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    mfl_site_worker_t *w = mfl_site_worker_new(&c, err, sizeof(err));
    assert_null(w);
    assert_non_null(strstr(err, "rows.csv"));
    mfl_site_config_clear(&c);
}

static void test_bad_cell_names_file_line_and_column(void **state)
{
    (void)state;
    s_write("rows.csv", "a,b,y\n1,2,0\n3,4,1\n5,oops,0\n7,8,1\n");
    const char *p = s_write("cells.yaml", S_BASE S_CSV_DATA);
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    mfl_site_worker_t *w = mfl_site_worker_new(&c, err, sizeof(err));
    assert_null(w);
    assert_non_null(strstr(err, "rows.csv:4"));
    assert_non_null(strstr(err, "oops"));
    mfl_site_config_clear(&c);
}

static void test_good_csv_builds_a_worker_with_both_splits(void **state)
{
    (void)state;
    char rows[4096] = "a,b,y\n";
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof(line), "%d,%d,%d\n", i, (i * 7) % 13, i % 2);
        strcat(rows, line);
    }
    s_write("rows.csv", rows);
    const char *p = s_write("good.yaml", S_BASE S_CSV_DATA);
    mfl_site_config_t c;
    char err[512] = "";
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    mfl_site_worker_t *w = mfl_site_worker_new(&c, err, sizeof(err));
    if (!w)
        fail_msg("%s", err);
    assert_int_equal(mfl_site_worker_n_train(w), 20);
    assert_int_equal(mfl_site_worker_n_heldout(w), 20);
    assert_int_equal(mfl_site_worker_n_features(w), 2);
    assert_string_equal(mfl_site_worker_site(w), "hospital-a");
    mfl_site_worker_destroy(&w);
    mfl_site_config_clear(&c);
}

/* standardize: fixed takes the consortium's constants; every mistake in
 * them stops the load at FILE:LINE with the key. */
static void test_fixed_standardize_keys(void **state)
{
    (void)state;
    mfl_site_config_t c;
    char err[512] = "";
    const char *p = s_write("fx.yaml", S_BASE S_CSV_DATA "  standardize: fixed\n"
                                       "  center: [1, -2.5]\n  scale: [2, 0.5]\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    assert_int_equal(c.standardize, MFL_SITE_STD_FIXED);
    assert_int_equal(c.n_fixed, 2);
    assert_float_equal(c.fixed_center[1], -2.5f, 0);
    assert_float_equal(c.fixed_scale[0], 2.0f, 0);
    mfl_site_config_clear(&c);
    p = s_write("fx0.yaml", S_BASE S_CSV_DATA "  standardize: fixed\n"
                            "  center: [1, 2]\n  scale: [2, 0]\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "fx0.yaml:19: key 'data.scale[1]': must be a finite number > 0"));
    p = s_write("fxn.yaml", S_BASE S_CSV_DATA "  standardize: fixed\n"
                            "  center: [1, 2]\n  scale: [2]\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key 'data.scale': has 1 values, data.center has 2"));
    p = s_write("fxm.yaml", S_BASE S_CSV_DATA "  standardize: fixed\n  scale: [2, 1]\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'standardize: fixed' needs data.center"));
    p = s_write("fxs.yaml", S_BASE S_CSV_DATA "  center: [1, 2]\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key 'data.center': only 'standardize: fixed' takes this key"));
    p = s_write("fxw.yaml", S_BASE S_CSV_DATA "  standardize: pooled\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "'pooled' is not one of site, none, fixed"));
}

/* The idx and series sources' keys are checked like the others. */
static void test_idx_and_series_keys(void **state)
{
    (void)state;
    mfl_site_config_t c;
    char err[512] = "";
    const char *p = s_write("idx.yaml", S_BASE "data:\n  source: idx\n  path: img.gz\n"
                                             "  labels: lab.gz\n  classes: [1, 3]\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    assert_int_equal(c.data_kind, MFL_SITE_DATA_IDX);
    assert_int_equal(c.n_keep_classes, 2);
    assert_int_equal(c.keep_classes[1], 3);
    assert_int_equal(c.standardize, MFL_SITE_STD_NONE); /* pixels stay in [0, 1] */
    mfl_site_config_clear(&c);
    p = s_write("idx2.yaml", S_BASE "data:\n  source: idx\n  path: img.gz\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "missing required key 'data.labels'"));
    p = s_write("csvlab.yaml", S_BASE S_CSV_DATA "  labels: x.gz\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key 'data.labels': only an idx source takes this key"));
    p = s_write("ser.yaml", S_BASE "data:\n  source: series\n  path: s.csv\n  series:\n"
                            "    patient: pid\n    time: t\n    channels: [hr]\n"
                            "    label: ev\n    rule: soon\n    window: 4\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ser.yaml:15: key 'data.series.rule': 'soon' is not one of last, "
                                "any, regression"));
    p = s_write("ser2.yaml", S_BASE "data:\n  source: series\n  path: s.csv\n  series:\n"
                             "    patient: pid\n    time: t\n    channels: [hr, sbp]\n"
                             "    label: ev\n    window: 4\n");
    assert_int_equal(mfl_site_config_load(p, &c, err, sizeof(err)), 0);
    assert_int_equal(c.series.n_channels, 2);
    assert_string_equal(c.series.channels[1], "sbp");
    assert_int_equal(c.series.stride, 4); /* default: windows do not overlap */
    mfl_site_config_clear(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_example_loads),
        cmocka_unit_test(test_unknown_key_is_refused_with_file_and_line),
        cmocka_unit_test(test_bad_values_name_the_key),
        cmocka_unit_test(test_missing_data_file_names_the_path),
        cmocka_unit_test(test_bad_cell_names_file_line_and_column),
        cmocka_unit_test(test_good_csv_builds_a_worker_with_both_splits),
        cmocka_unit_test(test_idx_and_series_keys),
        cmocka_unit_test(test_fixed_standardize_keys),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
