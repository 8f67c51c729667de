/* The strict JSON parser: values, escapes, limits and line:column errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static mfl_json_t *s_parse(const char *text, char *err)
{
    return mfl_json_parse(text, strlen(text), err, 256);
}

static void test_parses_nested_document(void **state)
{
    (void)state;
    char err[256] = "";
    mfl_json_t *j = s_parse("{\"a\": [1, 2.5, -3e2], \"b\": {\"c\": true, \"d\": null},\n"
                            " \"s\": \"x\\ty\"}", err);
    assert_non_null(j);
    assert_int_equal(mfl_json_type(j), MFL_JSON_OBJECT);
    assert_int_equal(mfl_json_array_len(j), 3);
    const mfl_json_t *a = mfl_json_get(j, "a");
    assert_int_equal(mfl_json_array_len(a), 3);
    double v;
    assert_int_equal(mfl_json_number(mfl_json_array_at(a, 1), &v), 0);
    assert_true(v == 2.5);
    assert_int_equal(mfl_json_number(mfl_json_array_at(a, 2), &v), 0);
    assert_true(v == -300.0);
    assert_null(mfl_json_array_at(a, 3));
    bool b = false;
    assert_int_equal(mfl_json_bool(mfl_json_get(mfl_json_get(j, "b"), "c"), &b), 0);
    assert_true(b);
    assert_int_equal(mfl_json_type(mfl_json_get(mfl_json_get(j, "b"), "d")), MFL_JSON_NULL);
    assert_string_equal(mfl_json_string(mfl_json_get(j, "s")), "x\ty");
    assert_int_equal(mfl_json_line(mfl_json_get(j, "s")), 2);
    assert_int_equal(mfl_json_column(mfl_json_get(j, "s")), 7);
    const char *key = NULL;
    assert_non_null(mfl_json_object_at(j, 2, &key));
    assert_string_equal(key, "s");
    /* Wrong-type accessors fail instead of crashing. */
    assert_int_equal(mfl_json_number(mfl_json_get(j, "s"), &v), -1);
    assert_null(mfl_json_string(mfl_json_get(j, "missing")));
    assert_null(mfl_json_get(a, "x"));
    mfl_json_destroy(&j);
    assert_null(j);
    mfl_json_destroy(&j);
}

static void test_unicode_escapes_become_utf8(void **state)
{
    (void)state;
    char err[256];
    mfl_json_t *j = s_parse("[\"\\u00e9\\u20ac\\ud83d\\ude00\", \"a\\u0000b\", \"caf\xc3\xa9\"]", err);
    assert_non_null(j);
    assert_string_equal(mfl_json_string(mfl_json_array_at(j, 0)), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_int_equal(mfl_json_string_len(mfl_json_array_at(j, 1)), 3);
    assert_string_equal(mfl_json_string(mfl_json_array_at(j, 2)), "caf\xc3\xa9");
    mfl_json_destroy(&j);
}

static void test_size_accessor_accepts_only_exact_indices(void **state)
{
    (void)state;
    char err[256];
    mfl_json_t *j = s_parse("[0, 7, 7.5, -1, 1e300]", err);
    assert_non_null(j);
    size_t s;
    assert_int_equal(mfl_json_size(mfl_json_array_at(j, 1), &s), 0);
    assert_int_equal(s, 7);
    assert_int_equal(mfl_json_size(mfl_json_array_at(j, 2), &s), -1);
    assert_int_equal(mfl_json_size(mfl_json_array_at(j, 3), &s), -1);
    assert_int_equal(mfl_json_size(mfl_json_array_at(j, 4), &s), -1);
    mfl_json_destroy(&j);
}

/* Each malformed input is rejected with the expected "LINE:COL: message". */
static void test_malformed_inputs_name_line_and_column(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        { "", "1:1: unexpected end of input" },
        { "[1,]", "1:4: trailing comma" },
        { "{\"a\":1,}", "1:8: trailing comma" },
        { "{\"a\":1, \"a\":2}", "1:9: duplicate key 'a'" },
        { "[01]", "1:2: malformed number" },
        { "[1.]", "1:2: malformed number" },
        { "[NaN]", "1:2: unexpected character" },
        { "[1e999]", "1:2: number out of range" },
        { "{\n  \"a\": tru\n}", "2:8: unexpected token" },
        { "[\"a\nb\"]", "1:4: control character in string" },
        { "[\"\\x\"]", "1:4: invalid escape in string" },
        { "[\"\\ud800\"]", "1:9: high surrogate not followed by \\u low surrogate" },
        { "[\"\\udc00\"]", "1:9: lone low surrogate in \\u escape" },
        { "[\"\xc3\x28\"]", "1:3: invalid UTF-8 in string" },
        { "[\"\xed\xa0\x80\"]", "1:3: invalid UTF-8 in string" },
        { "[1] 2", "1:5: trailing data after the value" },
        { "{1:2}", "1:2: expected a string key" },
        { "{\"a\" 1}", "1:6: expected ':' after key" },
        { "[1 2]", "1:4: expected ',' or ']'" },
        { "\"abc", "1:5: unterminated string" },
        { "[1, 2", "1:6: unterminated array" },
        { "// c\n1", "1:1: unexpected character" },
        { "{\"a\\u0000b\": 1}", "1:2: NUL character in object key" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256] = "";
        mfl_json_t *j = s_parse(cases[i].text, err);
        if (j || strcmp(err, cases[i].msg) != 0)
            fail_msg("case %zu '%s': got '%s', want '%s'", i, cases[i].text, err, cases[i].msg);
    }
}

static void test_depth_limit_is_enforced(void **state)
{
    (void)state;
    char text[2 * (MFL_JSON_MAX_DEPTH + 1) + 1];
    size_t n = MFL_JSON_MAX_DEPTH;
    for (size_t i = 0; i < n; i++) {
        text[i] = '[';
        text[2 * n - 1 - i] = ']';
    }
    char err[256];
    mfl_json_t *j = mfl_json_parse(text, 2 * n, err, sizeof err);
    assert_non_null(j); /* exactly the limit is fine */
    mfl_json_destroy(&j);
    n = MFL_JSON_MAX_DEPTH + 1;
    for (size_t i = 0; i < n; i++) {
        text[i] = '[';
        text[2 * n - 1 - i] = ']';
    }
    j = mfl_json_parse(text, 2 * n, err, sizeof err);
    assert_null(j);
    assert_non_null(strstr(err, "nesting too deep"));
}

static void test_not_nul_terminated_input(void **state)
{
    (void)state;
    char err[256];
    const char text[] = { '[', '1', ',', '2', ']', 'x' };
    mfl_json_t *j = mfl_json_parse(text, 5, err, sizeof err);
    assert_non_null(j);
    assert_int_equal(mfl_json_array_len(j), 2);
    mfl_json_destroy(&j);
    const char num[] = { '1', '2' };
    j = mfl_json_parse(num, 1, err, sizeof err);
    double v;
    assert_int_equal(mfl_json_number(j, &v), 0);
    assert_true(v == 1.0);
    mfl_json_destroy(&j);
}

/* Big objects are hash-indexed: every key must stay reachable and a
 * duplicate far from its twin must still be caught (a 1 MiB object of
 * short keys used to take half a minute: n² key compares). */
static void test_big_object_lookup_and_duplicates(void **state)
{
    (void)state;
    enum { N = 5000 };
    char *text = malloc((size_t)N * 24 + 64);
    assert_non_null(text);
    char *p = text;
    *p++ = '{';
    for (int i = 0; i < N; i++)
        p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
    char *close = p;
    strcpy(p, "}");
    char err[256] = "";
    mfl_json_t *root = mfl_json_parse(text, strlen(text), err, sizeof err);
    if (!root)
        fail_msg("%s", err);
    assert_int_equal(mfl_json_array_len(root), N);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        double v = -1;
        assert_int_equal(mfl_json_number(mfl_json_get(root, key), &v), 0);
        assert_true(v == i);
    }
    assert_null(mfl_json_get(root, "k5000"));
    assert_null(mfl_json_get(root, "k"));
    mfl_json_destroy(&root);
    /* The same object with "k7" again as its last member. */
    strcpy(close, ",\"k7\":0}");
    assert_null(mfl_json_parse(text, strlen(text), err, sizeof err));
    assert_non_null(strstr(err, "duplicate key 'k7'"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_nested_document),
        cmocka_unit_test(test_unicode_escapes_become_utf8),
        cmocka_unit_test(test_size_accessor_accepts_only_exact_indices),
        cmocka_unit_test(test_malformed_inputs_name_line_and_column),
        cmocka_unit_test(test_depth_limit_is_enforced),
        cmocka_unit_test(test_not_nul_terminated_input),
        cmocka_unit_test(test_big_object_lookup_and_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
