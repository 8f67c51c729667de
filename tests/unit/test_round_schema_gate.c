/* The consortium's schema at the coordinator's door (round/schema_gate.h):
 * it comes from the coordinator's config, is checked against the model at
 * start (FILE:LINE), and every Hello is compared with it, with a text that
 * says what differs; no Hello can set it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/csv_canon.h"
#include "round/run_config.h"
#include "round/schema_gate.h"

static char s_dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/test_schema_gate.XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void s_write(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *SCHEMA8 =
    "header: true\n"
    "columns: [x1, x2, x3, x4, x5, x6, x7, x8, {name: y, kind: label, rule: class, n_classes: 2}]\n";

/* A config with model `spec`, `loss` and (if schema) data.schema: schema.yaml. */
static void s_config_loss(mfl_coord_config_t *c, const char *spec, const char *loss,
                          const char *algo, bool schema)
{
    char text[1024], path[128], err[512] = "";
    snprintf(text, sizeof text,
             "coordinator:\n  listen: tcp://127.0.0.1:7777\n%s"
             "model:\n  spec: %s\n  loss: %s\nalgorithm:\n  name: %s\n  n_way: 2\n"
             "  k_shot: 3\n  n_query: 2\n",
             schema ? "data:\n  schema: schema.yaml\n" : "", spec, loss, algo);
    snprintf(path, sizeof path, "%s/coordinator.yaml", s_dir);
    if (mfl_coord_config_parse(text, strlen(text), path, c, err, sizeof err) < 0)
        fail_msg("%s", err);
}

static void s_config(mfl_coord_config_t *c, const char *spec, const char *algo, bool schema)
{
    s_config_loss(c, spec, "bce", algo, schema);
}

static mfl_schema_hello_t s_hello(const char *text, uint8_t *hash, uint64_t nf, uint64_t ncl)
{
    mfl_schema_hash(text, hash);
    mfl_schema_hello_t h = { .hash = hash, .hash_len = MFL_SCHEMA_HASH_BYTES, .text = text,
                             .text_len = strlen(text), .n_features = nf, .n_classes = ncl };
    return h;
}

static void test_schema_file_must_fit_the_model(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    char err[512] = "";
    s_write("schema.yaml", SCHEMA8);
    s_config(&c, "mlp:7-16-1", "reptile", true);
    assert_null(mfl_schema_gate_new(&c, err, sizeof err));
    /* Names the coordinator's config and line, the schema file, both sides. */
    if (!strstr(err, "coordinator.yaml:4: data.schema: ") ||
        !strstr(err, "schema.yaml describes 8 features, but the model mlp:7-16-1 takes 7 inputs"))
        fail_msg("%s", err);
    s_write("schema.yaml", "columns: [x1, {name: c, kind: categorical}, {name: y, kind: label}]\n");
    s_config(&c, "mlp:7-16-1", "reptile", true);
    assert_null(mfl_schema_gate_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "column 2 'c': a consortium schema lists the levels"));
    s_write("schema.yaml", "columns: [x1, x2\n");
    assert_null(mfl_schema_gate_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "coordinator.yaml:4: data.schema: "));
    s_write("schema.yaml", SCHEMA8);
    s_config(&c, "mlp:8-16-1", "reptile", true);
    mfl_schema_gate_t *g = mfl_schema_gate_new(&c, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    assert_true(mfl_schema_gate_has_schema(g));
    mfl_schema_gate_destroy(&g);
    assert_null(g);
}

static void test_hello_checked_against_the_consortium(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    char err[512] = "", text[512];
    s_write("schema.yaml", SCHEMA8);
    s_config(&c, "mlp:8-16-1", "reptile", true);
    mfl_schema_gate_t *g = mfl_schema_gate_new(&c, err, sizeof err);
    assert_non_null(g);
    const char *good = "metafl-schema v2\nfeatures 8\nclasses 2\nlabel y class\nnumeric x1\n"
                       "numeric x2\nnumeric x3\nnumeric x4\nnumeric x5\nnumeric x6\nnumeric x7\n"
                       "numeric x8\n";
    const char *seven = "metafl-schema v2\nfeatures 7\nclasses 2\nlabel y class\nnumeric x1\n"
                        "numeric x2\nnumeric x3\nnumeric x4\nnumeric x5\nnumeric x6\n"
                        "numeric x7\n";
    uint8_t hash[MFL_SCHEMA_HASH_BYTES];
    mfl_schema_hello_t h = s_hello(good, hash, 8, 2);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_OK);
    /* A 7-column site: refused with what differs, whoever came first. */
    h = s_hello(seven, hash, 7, 2);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
    assert_string_equal(text, "its data schema differs from the consortium's: the site has 7 "
                              "features, the consortium 8: column 8 'x8' (numeric) is missing "
                              "at the site");
    /* ... and the consortium's schema did not move: the honest site still fits. */
    h = s_hello(good, hash, 8, 2);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_OK);
    /* An empty hash is refused, not waved through. */
    h.hash_len = 0;
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
    assert_non_null(strstr(text, "no schema hash"));
    /* A right hash with a lying feature count is still checked against the model. */
    h = s_hello(good, hash, 9, 2);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
    assert_non_null(strstr(text, "9 features, but the model mlp:8-16-1 takes 8 inputs"));
    mfl_schema_gate_destroy(&g);
}

static void test_without_schema_file_the_model_decides(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    char err[512] = "", text[512];
    s_config(&c, "mlp:8-16-1", "reptile", false);
    mfl_schema_gate_t *g = mfl_schema_gate_new(&c, err, sizeof err);
    assert_non_null(g);
    assert_false(mfl_schema_gate_has_schema(g));
    uint8_t hash[MFL_SCHEMA_HASH_BYTES];
    mfl_schema_hello_t h = s_hello("anything", hash, 7, 2);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
    assert_non_null(strstr(text, "the site's data has 7 features, but the model mlp:8-16-1 "
                                 "takes 8 inputs"));
    h = s_hello("other", hash, 8, 3);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
    assert_non_null(strstr(text, "3 classes (model.loss bce needs a binary label"));
    h = s_hello("other", hash, 8, 2);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_OK);
    h.n_features = 0;
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
    mfl_schema_gate_destroy(&g);
}

/* Issue 13 item 4: a site that cannot form the task is told at Hello. */
static void test_site_that_cannot_form_episodes_is_refused_with_counts(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    char err[512] = "", text[512];
    s_config(&c, "mlp:8-16", "protonet", false);
    mfl_schema_gate_t *g = mfl_schema_gate_new(&c, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    uint8_t hash[MFL_SCHEMA_HASH_BYTES];
    mfl_schema_hello_t h = s_hello("x", hash, 8, 2);
    uint64_t counts[2] = { 30, 4 }; /* 2-way 3-shot with 2 queries needs 5 per class */
    h.class_counts = counts;
    h.n_class_counts = 2;
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_DATA);
    assert_string_equal(text, "its training rows cannot form 2-way 3-shot episodes with 2 "
                              "queries: 1 of its classes have the 5 rows each needs (rows per "
                              "class: 0=30 1=4); add rows, or lower algorithm.k_shot / n_query "
                              "/ n_way");
    counts[1] = 5;
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_OK);
    mfl_schema_gate_destroy(&g);
}

/* Nonsense combinations (issue 13 item 3) are refused with why: */
/* A gradient method's softmax head narrower than the label space (the
 * imaging app's 4-way CNN on ten-class IDX sites) is N-way episodes, N =
 * the head; FedAvg with such a head, or fewer classes than the head, is
 * refused with why; a site without N classes of k_shot + n_query rows is
 * told so at Hello. */
static void test_narrow_head_means_n_way_episodes(void **state)
{
    (void)state;
    mfl_coord_config_t c;
    char err[512] = "", text[512];
    uint8_t hash[MFL_SCHEMA_HASH_BYTES];
    const char *algos[] = {"maml", "fomaml", "reptile", "meta_sgd"};
    for (size_t a = 0; a < 4; a++) {
        s_config_loss(&c, "mlp:8-16-4", "softmax_ce", algos[a], false);
        mfl_schema_gate_t *g = mfl_schema_gate_new(&c, err, sizeof err);
        if (!g)
            fail_msg("%s: %s", algos[a], err);
        mfl_schema_hello_t h = s_hello("x", hash, 8, 10);
        uint64_t counts[10] = {30, 0, 30, 0, 0, 30, 0, 30, 0, 0};
        h.class_counts = counts;
        h.n_class_counts = 10;
        assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_OK);
        counts[7] = 4; /* 3 classes of 5 rows: no 4-way 3-shot episode with 2 queries */
        assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_DATA);
        if (!strstr(text, "cannot form 4-way 3-shot episodes with 2 queries: 3 of its classes"))
            fail_msg("%s: %s", algos[a], text);
        h = s_hello("x", hash, 8, 3); /* fewer classes than the head */
        assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
        assert_non_null(strstr(text, "3 classes, but the model mlp:8-16-4 has 4 outputs"));
        mfl_schema_gate_destroy(&g);
    }
    /* A metric method over a continuous label: no classes to compare with. */
    const char *metric[] = {"protonet", "matching", "relation"};
    for (size_t a = 0; a < 3; a++) {
        s_config_loss(&c, "mlp:8-16", "mse", metric[a], false);
        mfl_schema_gate_t *g = mfl_schema_gate_new(&c, err, sizeof err);
        if (!g)
            fail_msg("%s: %s", metric[a], err);
        mfl_schema_hello_t h = s_hello("x", hash, 8, 0);
        assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
        if (!strstr(text, "a continuous (regression) label, but ") ||
            !strstr(text, "needs a class label (for regression use maml, fomaml, reptile or "
                          "meta_sgd with model.loss mse)"))
            fail_msg("%s: %s", metric[a], text);
        mfl_schema_gate_destroy(&g);
    }
    s_config_loss(&c, "mlp:8-16-4", "softmax_ce", "fedavg", false);
    mfl_schema_gate_t *g = mfl_schema_gate_new(&c, err, sizeof err);
    assert_non_null(g);
    mfl_schema_hello_t h = s_hello("x", hash, 8, 10);
    assert_int_equal(mfl_schema_gate_check(g, &h, text, sizeof text), MFL_SCHEMA_GATE_SCHEMA);
    if (!strstr(text, "10 classes, but the model mlp:8-16-4 has 4 outputs (softmax_ce needs one "
                      "per class; fedavg trains one head over every class"))
        fail_msg("%s", text);
    mfl_schema_gate_destroy(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_file_must_fit_the_model),
        cmocka_unit_test(test_hello_checked_against_the_consortium),
        cmocka_unit_test(test_without_schema_file_the_model_decides),
        cmocka_unit_test(test_site_that_cannot_form_episodes_is_refused_with_counts),
        cmocka_unit_test(test_narrow_head_means_n_way_episodes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
