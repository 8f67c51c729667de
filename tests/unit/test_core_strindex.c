/* The key index behind JSON objects and YAML mappings: it must agree with
 * a plain scan on hits and misses, across the switch from scanning to
 * hashing and across every growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strindex.h"

enum { N = 2000 };

static void test_find_agrees_with_a_scan_while_growing(void **state)
{
    (void)state;
    char **keys = calloc(N, sizeof *keys);
    assert_non_null(keys);
    mfl_strindex_t ix = {0};
    for (size_t n = 0; n < N; n++) {
        char k[32];
        /* Prefixes of each other and an empty key: lengths must matter. */
        int len = n == 0 ? 0 : snprintf(k, sizeof k, "%zu", n * 7);
        if (n == 0)
            k[0] = '\0';
        assert_int_equal(mfl_strindex_find(&ix, keys, n, k, (size_t)len), SIZE_MAX);
        keys[n] = strdup(k);
        assert_non_null(keys[n]);
        assert_int_equal(mfl_strindex_added(&ix, keys, n + 1), 0);
        if (n + 1 < MFL_STRINDEX_MIN)
            assert_null(ix.slots);
        else
            assert_true(ix.cap >= 2 * (n + 1));
    }
    for (size_t i = 0; i < N; i++)
        assert_int_equal(mfl_strindex_find(&ix, keys, N, keys[i], strlen(keys[i])), i);
    /* A key that is a prefix of stored ones, and one not NUL-terminated. */
    assert_int_equal(mfl_strindex_find(&ix, keys, N, "1", 1), SIZE_MAX);
    assert_int_equal(mfl_strindex_find(&ix, keys, N, "14xyz", 2), 2);
    mfl_strindex_clear(&ix);
    assert_null(ix.slots);
    assert_int_equal(ix.cap, 0);
    for (size_t i = 0; i < N; i++)
        free(keys[i]);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_agrees_with_a_scan_while_growing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
