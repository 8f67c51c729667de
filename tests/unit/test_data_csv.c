/* CSV loader: schema features, missing-value policies, label rules, the
 * YAML-built schema, and FILE:LINE + column errors for malformed input. */
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

#include "config/csv_schema_yaml.h"
#include "data/csv.h"
#include "data/csv_canon.h"

static const char *const s_levels[] = { "1", "2", "3" };
static const mfl_csv_column_t s_cols[] = {
    { .name = "age" },
    { .name = "cp", .kind = MFL_CSV_CATEGORICAL, .levels = s_levels, .n_levels = 3, .drop_first = true },
    { .name = "chol" },
    { .name = "junk", .kind = MFL_CSV_IGNORE },
    { .name = "num", .kind = MFL_CSV_LABEL, .label_rule = MFL_CSV_LABEL_GREATER, .threshold = 0 },
};

static mfl_csv_schema_t s_schema(void)
{
    mfl_csv_schema_t s = { .columns = s_cols, .n_columns = 5 };
    return s;
}

static mfl_dataset_t *s_parse(const char *text, const mfl_csv_schema_t *schema,
                              mfl_csv_stats_t *stats, char *err)
{
    return mfl_csv_parse(text, strlen(text), "t.csv", schema, stats, err, 256);
}

static void test_one_hot_label_and_column_order(void **state)
{
    (void)state;
    mfl_csv_schema_t sc = s_schema();
    char err[256] = "";
    mfl_csv_stats_t st;
    mfl_dataset_t *ds = s_parse("50, 2, 200, x, 0\n\n60,3.0,250,y,3\r\n", &sc, &st, err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 2);
    assert_int_equal(ds->n_features, 4); /* age, cp_2, cp_3, chol */
    assert_int_equal(ds->n_classes, 2);
    static const float want[8] = { 50, 1, 0, 200, 60, 0, 1, 250 };
    for (size_t i = 0; i < 8; i++)
        assert_float_equal(ds->x[i], want[i], 0);
    assert_true(ds->y[0] == 0.0f && ds->y[1] == 1.0f);
    assert_int_equal(st.lines[1], 2); /* the empty line still counts */
    assert_string_equal(st.feature_names[1], "cp_2");
    assert_string_equal(st.feature_names[3], "chol");
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);

    sc.categorical_last = true; /* pandas get_dummies order */
    ds = s_parse("50,2,200,x,0\n", &sc, &st, err);
    static const float want2[4] = { 50, 200, 1, 0 };
    for (size_t i = 0; i < 4; i++)
        assert_float_equal(ds->x[i], want2[i], 0);
    assert_string_equal(st.feature_names[2], "cp_2");
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);
}

static void test_missing_values_drop_impute_error(void **state)
{
    (void)state;
    const char *text = "50,2,NaN,a,0\n60,?,300,b,1\n70,2,100,,1\n80,2,200,c,\n";
    mfl_csv_schema_t sc = s_schema();
    char err[256] = "";
    mfl_csv_stats_t st;
    mfl_dataset_t *ds = s_parse(text, &sc, &st, err);
    /* Only line 3 is complete over used columns (junk is ignored). */
    assert_int_equal(ds->n, 1);
    assert_int_equal(st.rows_read, 4);
    assert_int_equal(st.rows_dropped, 3);
    assert_int_equal(st.lines[0], 2);
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);

    sc.on_missing = MFL_CSV_MISSING_IMPUTE;
    ds = s_parse(text, &sc, &st, err);
    assert_int_equal(ds->n, 3); /* the missing label is still dropped */
    assert_int_equal(st.cells_imputed, 2);
    /* chol of line 1: mean of 300 and 100; cp of line 2: mode (2). */
    assert_float_equal(ds->x[3], 200.0f, 1e-4);
    assert_float_equal(ds->x[4 + 1], 1.0f, 0);
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);

    sc.on_missing = MFL_CSV_MISSING_ERROR;
    assert_null(s_parse(text, &sc, NULL, err));
    assert_string_equal(err, "t.csv:1: column 3 'chol': missing value");
}

static void test_label_rules(void **state)
{
    (void)state;
    mfl_csv_column_t cols[2] = { { .name = "x" }, { .name = "y", .kind = MFL_CSV_LABEL } };
    mfl_csv_schema_t sc = { .columns = cols, .n_columns = 2 };
    char err[256] = "";
    mfl_dataset_t *ds = s_parse("1,0\n2,4\n3,2\n", &sc, NULL, err);
    assert_int_equal(ds->n_classes, 5); /* inferred: max + 1 */
    assert_true(ds->y[1] == 4.0f);
    mfl_dataset_destroy(&ds);
    cols[1].n_classes = 3;
    assert_null(s_parse("1,0\n2,4\n", &sc, NULL, err));
    assert_string_equal(err, "t.csv:2: column 2 'y': '4' is not a class index in range");
    cols[1].label_rule = MFL_CSV_LABEL_EQUAL;
    cols[1].threshold = 0; /* sklearn's breast cancer: 0 = malignant */
    ds = s_parse("1,0\n2,1\n", &sc, NULL, err);
    assert_true(ds->y[0] == 1.0f && ds->y[1] == 0.0f && ds->n_classes == 2);
    mfl_dataset_destroy(&ds);
    static const char *const bm[] = { "B", "M" };
    cols[1].label_rule = MFL_CSV_LABEL_LEVELS;
    cols[1].levels = bm;
    cols[1].n_levels = 2;
    ds = s_parse("1,M\n2,B\n", &sc, NULL, err);
    assert_true(ds->y[0] == 1.0f && ds->y[1] == 0.0f);
    mfl_dataset_destroy(&ds);
    assert_null(s_parse("1,M\n2,X\n", &sc, NULL, err));
    assert_string_equal(err, "t.csv:2: column 2 'y': 'X' is not one of the levels B, M");
    cols[1].label_rule = MFL_CSV_LABEL_REGRESSION;
    ds = s_parse("1,2.5\n", &sc, NULL, err);
    assert_true(ds->y[0] == 2.5f && ds->n_classes == 0);
    mfl_dataset_destroy(&ds);
}

static void test_header_skip_quotes_and_inferred_levels(void **state)
{
    (void)state;
    mfl_csv_column_t cols[3] = { { .name = NULL },
                                 { .name = "colour", .kind = MFL_CSV_CATEGORICAL },
                                 { .name = "y", .kind = MFL_CSV_LABEL } };
    mfl_csv_schema_t sc = { .columns = cols, .n_columns = 3, .header = true, .skip_rows = 1,
                            .delimiter = ';' };
    char err[256] = "";
    mfl_csv_stats_t st;
    mfl_dataset_t *ds = s_parse("# comment line\nsize;colour;y\n\"1\";\"red; dark\";0\n2;blue;1\n3;\"red; dark\";1\n",
                                &sc, &st, err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->n_features, 3);
    assert_string_equal(st.feature_names[0], "size"); /* from the header */
    assert_string_equal(st.feature_names[1], "colour_red; dark"); /* order of appearance */
    assert_string_equal(st.feature_names[2], "colour_blue");
    assert_true(ds->x[3 + 2] == 1.0f);
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);
    /* "" inside quotes is one quote; blanks around a quoted cell go. */
    ds = s_parse("#\nsize;colour;y\n1; \"say \"\"hi\"\"\" ;0\n2;\"\";1\n", &sc, &st, err);
    if (!ds)
        fail_msg("%s", err);
    assert_string_equal(st.feature_names[1], "colour_say \"hi\"");
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);
    cols[1].name = "color";
    assert_null(s_parse("x\nsize;colour;y\n1;a;0\n", &sc, NULL, err));
    assert_string_equal(err, "t.csv:2: column 2: header 'colour' does not match schema name 'color'");
}

static void test_malformed_input_names_file_line_column(void **state)
{
    (void)state;
    mfl_csv_schema_t sc = s_schema();
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        { "50,1,200,x,0\n50,1,abc,x,0\n", "t.csv:2: column 3 'chol': 'abc' is not a number" },
        { "50,1,200,x\n", "t.csv:1: expected 5 columns, found 4" },
        { "50,1,200,x,0,9\n", "t.csv:1: expected 5 columns, found 6" },
        { "50,7,200,x,0\n", "t.csv:1: column 2 'cp': '7' is not one of the levels 1, 2, 3" },
        { "\n\n50,1,\"200,x,0\n", "t.csv:3: column 3: unterminated quoted field" },
        { "50,1,\"200\"z,x,0\n", "t.csv:1: column 3: text after a closing quote" },
        { "50,1,inf,x,0\n", "t.csv:1: column 3 'chol': 'inf' is not a number" },
        { "50,1,1e999,x,0\n", "t.csv:1: column 3 'chol': '1e999' is not a number" },
        { "50,1,0x10,x,0\n", "t.csv:1: column 3 'chol': '0x10' is not a number" },
        { "5 0,1,1,x,0\n", "t.csv:1: column 1 'age': '5 0' is not a number" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        mfl_dataset_t *ds = s_parse(cases[i].text, &sc, NULL, err);
        if (ds || strcmp(err, cases[i].msg) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].msg);
    }
    char err[256];
    const char nul[] = "1,1,1,x,0\n2,1\0,1,x,0\n";
    assert_null(mfl_csv_parse(nul, sizeof nul - 1, "t.csv", &sc, NULL, err, sizeof err));
    assert_string_equal(err, "t.csv:2: NUL byte in text");
    /* An over-long line. */
    size_t n = MFL_CSV_MAX_LINE + 10;
    char *big = malloc(n + 1);
    memset(big, '1', n);
    big[n] = '\0';
    assert_null(s_parse(big, &sc, NULL, err));
    assert_string_equal(err, "t.csv:1: line longer than 65536 bytes");
    free(big);
    /* Two label columns. */
    mfl_csv_column_t two[2] = { { .kind = MFL_CSV_LABEL }, { .kind = MFL_CSV_LABEL } };
    mfl_csv_schema_t bad = { .columns = two, .n_columns = 2 };
    assert_null(s_parse("1,1\n", &bad, NULL, err));
    assert_non_null(strstr(err, "at most one"));
}

static void test_load_file_and_yaml_schema(void **state)
{
    (void)state;
    char path[] = "/tmp/mfl-csv-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "age\tcp\tnum\n40\t1\t0\n41\t?\t2\n42\t3\t1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    const char *yaml =
        "data:\n"
        "  header: true\n"
        "  delimiter: tab\n"
        "  missing: [\"?\"]\n"
        "  on_missing: impute\n"
        "  columns:\n"
        "    - age\n"
        "    - {name: cp, kind: categorical, levels: [1, 2, 3], drop_first: true}\n"
        "    - {name: num, kind: label, rule: greater, threshold: 0}\n";
    char err[512] = "";
    mfl_yaml_doc_t *doc = mfl_yaml_parse(yaml, strlen(yaml), "site.yaml", err, sizeof err);
    assert_non_null(doc);
    mfl_csv_schema_t sc;
    if (mfl_csv_schema_from_yaml(doc, "data", &sc, err, sizeof err) < 0)
        fail_msg("%s", err);
    mfl_dataset_t *ds = mfl_csv_load(path, &sc, NULL, err, sizeof err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->n_features, 3);
    assert_true(ds->y[1] == 1.0f && ds->y[0] == 0.0f);
    mfl_dataset_destroy(&ds);
    mfl_csv_schema_clear(&sc);
    assert_null(sc.columns);
    mfl_yaml_destroy(&doc);
    unlink(path);
    assert_null(mfl_csv_load(path, &sc, NULL, err, sizeof err));

    /* Config mistakes are named by file and line. */
    static const struct {
        const char *yaml;
        const char *msg;
    } bad[] = {
        { "data:\n  header: true\n  colums: [a]\n", "site.yaml:3: unknown key 'colums' in 'data'; known keys: header, delimiter, skip_rows, missing, on_missing, categorical_last, max_rows, columns" },
        { "data:\n  columns:\n    - {name: a, kind: numerik}\n", "site.yaml:3: key 'data.columns[0].kind': 'numerik' is not one of numeric, categorical, label, ignore" },
        { "data:\n  on_missing: skip\n  columns: [a]\n", "site.yaml:2: key 'data.on_missing': 'skip' is not one of drop, impute, error" },
        { "data:\n  header: true\n", "site.yaml:1: key 'data': missing required key 'columns' (a list of the table's columns)" },
        { "data:\n  columns:\n    - {name: y, kind: label, rule: levels}\n", "site.yaml:3: key 'data.columns[0]': a label with rule 'levels' needs 'levels' (at least 2)" },
        { "data:\n  delimiter: ',;'\n  columns: [a]\n", "site.yaml:2: key 'data.delimiter': expected a single character (or \"tab\")" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = mfl_yaml_parse(bad[i].yaml, strlen(bad[i].yaml), "site.yaml", err, sizeof err);
        assert_non_null(doc);
        err[0] = '\0';
        assert_int_equal(mfl_csv_schema_from_yaml(doc, "data", &sc, err, sizeof err), -1);
        if (strcmp(err, bad[i].msg) != 0)
            fail_msg("case %zu: got '%s', want '%s'", i, err, bad[i].msg);
        mfl_yaml_destroy(&doc);
    }
}

/* Pima-style coding: "0" means missing in some columns only; a global
 * token would also hit real zeros (pregnancies = 0). */
static void test_per_column_missing_tokens(void **state)
{
    (void)state;
    static const char *const zero[] = { "0" };
    mfl_csv_column_t cols[3] = { { .name = "pregnancies" },
                                 { .name = "glucose", .has_missing = true, .missing = zero,
                                   .n_missing = 1 },
                                 { .name = "y", .kind = MFL_CSV_LABEL } };
    static const char *const none[] = { "" };
    mfl_csv_schema_t sc = { .columns = cols, .n_columns = 3, .missing = none, .n_missing = 0 };
    char err[256] = "";
    mfl_csv_stats_t st;
    mfl_dataset_t *ds = s_parse("0,100,1\n2,0,0\n0,120,1\n", &sc, &st, err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 2); /* row 2 dropped: its glucose is 0 = missing */
    assert_float_equal(ds->x[0], 0.0f, 0); /* a real zero of pregnancies kept */
    assert_int_equal(st.dropped_by_column[1], 1);
    assert_int_equal(st.dropped_by_column[0], 0);
    assert_string_equal(st.column_names[1], "glucose");
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);
    sc.on_missing = MFL_CSV_MISSING_IMPUTE;
    ds = s_parse("0,100,1\n2,0,0\n0,120,1\n", &sc, &st, err);
    assert_int_equal(ds->n, 3);
    assert_float_equal(ds->x[1 * 2 + 1], 110.0f, 1e-4);
    assert_int_equal(st.imputed_by_column[1], 1);
    assert_int_equal(st.imputed_by_column[0], 0);
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);
}

/* KEEP leaves the holes; statistics come from the rows the caller picks. */
static void test_deferred_imputation_uses_chosen_rows(void **state)
{
    (void)state;
    mfl_csv_schema_t sc = s_schema();
    sc.on_missing = MFL_CSV_MISSING_KEEP;
    const char *text = "10,2,?,a,0\n20,?,100,b,1\n30,3,200,c,1\n1000,3,9000,d,0\n";
    char err[256] = "";
    mfl_csv_stats_t st;
    mfl_dataset_t *ds = s_parse(text, &sc, &st, err);
    if (!ds)
        fail_msg("%s", err);
    assert_int_equal(ds->n, 4);
    assert_int_equal(st.cells_imputed, 2);
    assert_true(isnan(ds->x[0 * 4 + 3]));                       /* chol of row 1 */
    assert_true(isnan(ds->x[1 * 4 + 1]) && isnan(ds->x[1 * 4 + 2])); /* cp of row 2 */
    /* "Training rows" 0..2 only: row 4's 9000 and its cp must not count. */
    size_t idx[3] = { 0, 1, 2 };
    mfl_dataset_t *train = mfl_dataset_subset(ds, idx, 3);
    float fill[4];
    assert_int_equal(mfl_csv_impute_fit(&sc, &st, train, fill), 0);
    assert_float_equal(fill[3], 150.0f, 1e-4); /* mean of 100 and 200 */
    assert_float_equal(fill[1], 1.0f, 0);      /* cp: levels 2 and 3 tie: the earlier (2) */
    assert_float_equal(fill[2], 0.0f, 0);
    mfl_csv_impute_apply(ds, fill);
    assert_float_equal(ds->x[0 * 4 + 3], 150.0f, 1e-4);
    assert_float_equal(ds->x[1 * 4 + 1], 1.0f, 0);
    for (size_t i = 0; i < ds->n * ds->n_features; i++)
        assert_false(isnan(ds->x[i]));
    mfl_dataset_destroy(&train);
    mfl_csv_stats_clear(&st);
    mfl_dataset_destroy(&ds);
}

static void test_canonical_text_and_diff(void **state)
{
    (void)state;
    mfl_csv_schema_t sc = s_schema();
    sc.categorical_last = true;
    size_t nf = 0, ncl = 0;
    char err[256] = "";
    char *want = mfl_csv_canonical(&sc, &nf, &ncl, err, sizeof err);
    if (!want)
        fail_msg("%s", err);
    assert_int_equal(nf, 4);
    assert_int_equal(ncl, 2);
    assert_string_equal(want, "metafl-schema v2\nfeatures 4\nclasses 2\nlabel num greater 0\n"
                              "numeric age\nnumeric chol\ncategorical cp levels=1,2,3 drop_first\n");
    /* A load of the same schema describes itself the same way, "3.0" and all. */
    mfl_csv_stats_t st;
    mfl_dataset_t *ds = s_parse("50,2,200,x,0\n60,3.0,250,y,3\n", &sc, &st, err);
    assert_string_equal(st.canonical, want);
    mfl_dataset_destroy(&ds);
    mfl_csv_stats_clear(&st);
    char out[512];
    const char *seven = "metafl-schema v2\nfeatures 3\nclasses 2\nlabel num greater 0\n"
                        "numeric age\nnumeric chol\n";
    mfl_schema_diff(want, seven, strlen(seven), out, sizeof out);
    assert_string_equal(out, "the site has 3 features, the consortium 4: column 3 'cp' "
                             "(categorical) is missing at the site");
    const char *levels = "metafl-schema v2\nfeatures 4\nclasses 2\nlabel num greater 0\n"
                         "numeric age\nnumeric chol\ncategorical cp levels=1,2,4 drop_first\n";
    mfl_schema_diff(want, levels, strlen(levels), out, sizeof out);
    assert_string_equal(out, "column 3 'cp': the consortium has 'categorical cp levels=1,2,3 "
                             "drop_first', the site 'categorical cp levels=1,2,4 drop_first'");
    const char *kind = "metafl-schema v2\nfeatures 4\nclasses 2\nlabel num greater 0\n"
                       "numeric age\ncategorical chol levels=1,2\ncategorical cp levels=1,2,3 drop_first\n";
    mfl_schema_diff(want, kind, strlen(kind), out, sizeof out);
    assert_non_null(strstr(out, "column 2 'chol': the consortium has 'numeric chol'"));
    const char *label = "metafl-schema v2\nfeatures 4\nclasses 2\nlabel y class\n";
    mfl_schema_diff(want, label, strlen(label), out, sizeof out);
    assert_string_equal(out, "label: the consortium has 'label num greater 0', the site 'label y class'");
    mfl_schema_diff(want, "", 0, out, sizeof out);
    assert_non_null(strstr(out, "sent no schema text"));
    const char hostile[] = "label \x01\x02\nnumeric \xff";
    mfl_schema_diff(want, hostile, sizeof hostile - 1, out, sizeof out);
    for (const char *q = out; *q; q++)
        assert_true(*q >= 32 && *q < 127);
    uint8_t h1[MFL_SCHEMA_HASH_BYTES], h2[MFL_SCHEMA_HASH_BYTES];
    mfl_schema_hash(want, h1);
    mfl_schema_hash(seven, h2);
    assert_memory_not_equal(h1, h2, sizeof h1);
    /* A consortium schema must fix every width and the classes. */
    mfl_csv_column_t cols[2] = { { .name = "c", .kind = MFL_CSV_CATEGORICAL },
                                 { .name = "y", .kind = MFL_CSV_LABEL } };
    mfl_csv_schema_t bad = { .columns = cols, .n_columns = 2 };
    assert_null(mfl_csv_canonical(&bad, &nf, &ncl, err, sizeof err));
    assert_non_null(strstr(err, "column 1 'c': a consortium schema lists the levels"));
    free(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_hot_label_and_column_order),
        cmocka_unit_test(test_missing_values_drop_impute_error),
        cmocka_unit_test(test_label_rules),
        cmocka_unit_test(test_header_skip_quotes_and_inferred_levels),
        cmocka_unit_test(test_malformed_input_names_file_line_column),
        cmocka_unit_test(test_load_file_and_yaml_schema),
        cmocka_unit_test(test_per_column_missing_tokens),
        cmocka_unit_test(test_deferred_imputation_uses_chosen_rows),
        cmocka_unit_test(test_canonical_text_and_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
