/* YAML config documents: typed getters, FILE:LINE errors, unknown keys,
 * required keys and the safety limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/yaml_doc.h"

static const char *s_config =
    "coordinator:\n"                 /* 1 */
    "  rounds: 25\n"                 /* 2 */
    "  bind: \"tcp://*:5555\"\n"     /* 3 */
    "  lr: 0.5\n"                    /* 4 */
    "  secure: yes\n"                /* 5 */
    "  max_frame: 16M\n"             /* 6 */
    "  empty: ~\n"                   /* 7 */
    "model:\n"                       /* 8 */
    "  spec: mlp:13-32-1\n"          /* 9 */
    "sites: [a, b, c]\n"             /* 10 */
    "data:\n"                        /* 11 */
    "  columns:\n"                   /* 12 */
    "    - name: age\n"              /* 13 */
    "      kind: numeric\n"          /* 14 */
    "    - name: sex\n"              /* 15 */
    "      kind: categorical\n";     /* 16 */

static mfl_yaml_doc_t *s_doc(const char *text)
{
    char err[256] = "";
    mfl_yaml_doc_t *doc = mfl_yaml_parse(text, strlen(text), "site.yaml", err, sizeof err);
    if (!doc)
        fail_msg("parse failed: %s", err);
    return doc;
}

static void test_typed_getters_read_values(void **state)
{
    (void)state;
    mfl_yaml_doc_t *doc = s_doc(s_config);
    assert_int_equal(mfl_yaml_get_int(doc, "coordinator.rounds", 1), 25);
    assert_string_equal(mfl_yaml_get_string(doc, "coordinator.bind", NULL), "tcp://*:5555");
    assert_true(mfl_yaml_get_double(doc, "coordinator.lr", 0) == 0.5);
    assert_true(mfl_yaml_get_bool(doc, "coordinator.secure", false));
    assert_int_equal(mfl_yaml_get_size(doc, "coordinator.max_frame", 0), 16u << 20);
    assert_string_equal(mfl_yaml_get_string(doc, "model.spec", "x"), "mlp:13-32-1");
    /* Absent and null give the default. */
    assert_int_equal(mfl_yaml_get_int(doc, "coordinator.missing", 7), 7);
    assert_string_equal(mfl_yaml_get_string(doc, "coordinator.empty", "dflt"), "dflt");
    assert_false(mfl_yaml_has(doc, "coordinator.empty"));
    assert_int_equal(mfl_yaml_kind(doc, "coordinator.empty"), MFL_YAML_NULL);
    /* Sequences of mappings by index. */
    assert_int_equal(mfl_yaml_len(doc, "data.columns"), 2);
    assert_string_equal(mfl_yaml_get_string(doc, "data.columns[1].name", ""), "sex");
    assert_int_equal(mfl_yaml_line(doc, "data.columns[1].kind"), 16);
    assert_int_equal(mfl_yaml_kind(doc, "data.columns[2]"), MFL_YAML_NONE);
    assert_string_equal(mfl_yaml_key_at(doc, "", 1), "model");
    const char **items;
    size_t n;
    assert_int_equal(mfl_yaml_get_string_list(doc, "sites", &items, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(items[2], "c");
    free(items);
    assert_int_equal(mfl_yaml_error(doc, NULL, 0), 0);
    mfl_yaml_destroy(&doc);
    assert_null(doc);
}

static void s_expect_error(mfl_yaml_doc_t *doc, const char *want)
{
    char err[512] = "";
    assert_int_equal(mfl_yaml_error(doc, err, sizeof err), -1);
    if (strcmp(err, want) != 0)
        fail_msg("got '%s', want '%s'", err, want);
}

static void test_bad_values_name_file_line_and_key(void **state)
{
    (void)state;
    mfl_yaml_doc_t *doc = s_doc("a:\n  n: ten\n  d: 1.5x\n  b: maybe\n  s: -3\n  m: {x: 1}\n");
    assert_int_equal(mfl_yaml_get_int(doc, "a.n", 4), 4);
    s_expect_error(doc, "site.yaml:2: key 'a.n': expected an integer, got 'ten'");
    /* Sticky: the first error is kept. */
    (void)mfl_yaml_get_double(doc, "a.d", 0);
    s_expect_error(doc, "site.yaml:2: key 'a.n': expected an integer, got 'ten'");
    mfl_yaml_destroy(&doc);

    doc = s_doc("a:\n  n: ten\n  d: 1.5x\n  b: maybe\n  s: -3\n  m: {x: 1}\n  i: .inf\n");
    (void)mfl_yaml_get_double(doc, "a.d", 0);
    s_expect_error(doc, "site.yaml:3: key 'a.d': expected a finite number, got '1.5x'");
    mfl_yaml_destroy(&doc);
    doc = s_doc("a:\n  n: ten\n  d: 1.5x\n  b: maybe\n  s: -3\n  m: {x: 1}\n  i: .inf\n");
    (void)mfl_yaml_get_bool(doc, "a.b", false);
    s_expect_error(doc, "site.yaml:4: key 'a.b': expected true or false, got 'maybe'");
    mfl_yaml_destroy(&doc);
    doc = s_doc("a:\n  n: ten\n  d: 1.5x\n  b: maybe\n  s: -3\n  m: {x: 1}\n  i: .inf\n");
    (void)mfl_yaml_get_size(doc, "a.s", 0);
    s_expect_error(doc, "site.yaml:5: key 'a.s': expected a non-negative size (e.g. 100, 64K, 16M), got '-3'");
    mfl_yaml_destroy(&doc);
    doc = s_doc("a:\n  n: ten\n  d: 1.5x\n  b: maybe\n  s: -3\n  m: {x: 1}\n  i: .inf\n");
    (void)mfl_yaml_get_string(doc, "a.m", NULL);
    s_expect_error(doc, "site.yaml:6: key 'a.m': expected a scalar value, got a mapping");
    mfl_yaml_destroy(&doc);
    doc = s_doc("a:\n  n: ten\n  d: 1.5x\n  b: maybe\n  s: -3\n  m: {x: 1}\n  i: .inf\n");
    (void)mfl_yaml_get_double(doc, "a.i", 0);
    s_expect_error(doc, "site.yaml:7: key 'a.i': expected a finite number, got '.inf'");
    mfl_yaml_destroy(&doc);
}

static void test_unknown_and_missing_keys(void **state)
{
    (void)state;
    mfl_yaml_doc_t *doc = s_doc(s_config);
    static const char *const known[] = { "rounds", "bind", "lr", "secure", "max_frame", "empty", NULL };
    assert_int_equal(mfl_yaml_check_keys(doc, "coordinator", known), 0);
    assert_int_equal(mfl_yaml_error(doc, NULL, 0), 0);
    static const char *const fewer[] = { "rounds", "bind", NULL };
    assert_int_equal(mfl_yaml_check_keys(doc, "coordinator", fewer), -1);
    s_expect_error(doc, "site.yaml:4: unknown key 'lr' in 'coordinator'; known keys: rounds, bind");
    mfl_yaml_destroy(&doc);

    doc = s_doc("coordinator:\n  rounds_: 3\n");
    assert_int_equal(mfl_yaml_check_keys(doc, "", (const char *[]){ "coordinator", NULL }), 0);
    assert_int_equal(mfl_yaml_check_keys(doc, "coordinator", fewer), -1);
    s_expect_error(doc, "site.yaml:2: unknown key 'rounds_' in 'coordinator'; known keys: rounds, bind");
    mfl_yaml_destroy(&doc);

    doc = s_doc("coordinator:\n  bind: x\nmodel: ~\n");
    assert_int_equal(mfl_yaml_require_int(doc, "coordinator.rounds"), 0);
    s_expect_error(doc, "site.yaml:1: missing required key 'coordinator.rounds'");
    mfl_yaml_destroy(&doc);
    doc = s_doc("coordinator:\n  bind: x\nmodel: ~\n");
    assert_string_equal(mfl_yaml_require_string(doc, "model.spec"), "");
    s_expect_error(doc, "site.yaml:3: missing required key 'model.spec'");
    mfl_yaml_destroy(&doc);
    doc = s_doc("coordinator:\n  bind: x\nmodel: ~\n");
    assert_string_equal(mfl_yaml_require_string(doc, "coordinator.bind"), "x");
    mfl_yaml_fail(doc, "coordinator.bind", "must start with tcp://");
    assert_int_equal(mfl_yaml_check_range(doc, "coordinator.bind", 5, 1, 3), -1);
    s_expect_error(doc, "site.yaml:2: key 'coordinator.bind': must start with tcp://");
    mfl_yaml_destroy(&doc);
}

static void s_expect_parse_error(const char *text, const char *want)
{
    char err[512] = "";
    mfl_yaml_doc_t *doc = mfl_yaml_parse(text, strlen(text), "c.yaml", err, sizeof err);
    assert_null(doc);
    if (!strstr(err, want))
        fail_msg("for '%s' got '%s', want '%s'", text, err, want);
}

static void test_unsafe_or_ambiguous_documents_are_refused(void **state)
{
    (void)state;
    s_expect_parse_error("a: &x [1, 2]\nb: *x\n", "c.yaml:1: YAML anchors (&x) are not supported");
    s_expect_parse_error("a: 1\na: 2\n", "c.yaml:2: duplicate key 'a'");
    s_expect_parse_error("a: 1\n---\nb: 2\n", "c.yaml:2: only one YAML document per file");
    s_expect_parse_error("? [a, b]\n: 1\n", "c.yaml:1: mapping keys must be scalars");
    s_expect_parse_error("a: [1, 2\nb: 3\n", "c.yaml:");
    s_expect_parse_error("a: 1\npath: \"data\\0.csv\"\n", "c.yaml:2: NUL byte in value");
    s_expect_parse_error("\"k\\0x\": 1\n", "c.yaml:1: NUL byte in key");
    char deep[200];
    size_t n = 0;
    for (int i = 0; i < MFL_YAML_MAX_DEPTH + 1; i++)
        deep[n++] = '[';
    for (int i = 0; i < MFL_YAML_MAX_DEPTH + 1; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    s_expect_parse_error(deep, "nesting deeper than 32");
    /* A billion-laughs style document dies at the first anchor. */
    s_expect_parse_error("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", "anchors");
}

static void test_load_from_file_and_missing_file(void **state)
{
    (void)state;
    char path[] = "/tmp/mfl-yaml-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "x:\n  y: 3\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[512];
    mfl_yaml_doc_t *doc = mfl_yaml_load(path, err, sizeof err);
    assert_non_null(doc);
    assert_string_equal(mfl_yaml_file(doc), path);
    (void)mfl_yaml_get_bool(doc, "x.y", false);
    assert_int_equal(mfl_yaml_error(doc, err, sizeof err), -1);
    char want[128];
    snprintf(want, sizeof want, "%s:2: key 'x.y': expected true or false, got '3'", path);
    assert_string_equal(err, want);
    mfl_yaml_destroy(&doc);
    unlink(path);
    assert_null(mfl_yaml_load(path, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    /* An empty document is an empty mapping. */
    doc = mfl_yaml_parse("", 0, "e.yaml", err, sizeof err);
    assert_non_null(doc);
    assert_int_equal(mfl_yaml_get_int(doc, "a.b", 9), 9);
    assert_int_equal(mfl_yaml_error(doc, NULL, 0), 0);
    mfl_yaml_destroy(&doc);
}

/* Mappings are hash-indexed: with thousands of keys every key (also one
 * level down) must resolve and a late duplicate must still be caught. */
static void test_big_mapping_lookup_and_duplicates(void **state)
{
    (void)state;
    enum { N = 3000 };
    char *text = malloc((size_t)N * 24 + 64);
    assert_non_null(text);
    char *p = text;
    p += sprintf(p, "sub:\n");
    for (int i = 0; i < N; i++)
        p += sprintf(p, "  k%d: %d\n", i, i);
    char *end = p;
    char err[512] = "";
    mfl_yaml_doc_t *doc = mfl_yaml_parse(text, (size_t)(p - text), "big.yaml", err, sizeof err);
    if (!doc)
        fail_msg("%s", err);
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "sub.k%d", i);
        assert_int_equal(mfl_yaml_get_int(doc, key, -1), i);
    }
    assert_int_equal(mfl_yaml_get_int(doc, "sub.k3000", -1), -1);
    assert_int_equal(mfl_yaml_get_int(doc, "sub.k", -1), -1);
    assert_int_equal(mfl_yaml_error(doc, err, sizeof err), 0);
    mfl_yaml_destroy(&doc);
    p = end + sprintf(end, "  k42: 0\n");
    assert_null(mfl_yaml_parse(text, (size_t)(p - text), "big.yaml", err, sizeof err));
    assert_string_equal(err, "big.yaml:3002: duplicate key 'k42'");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_getters_read_values),
        cmocka_unit_test(test_bad_values_name_file_line_and_key),
        cmocka_unit_test(test_unknown_and_missing_keys),
        cmocka_unit_test(test_unsafe_or_ambiguous_documents_are_refused),
        cmocka_unit_test(test_load_from_file_and_missing_file),
        cmocka_unit_test(test_big_mapping_lookup_and_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
