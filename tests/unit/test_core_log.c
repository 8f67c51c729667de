/* The logger: one line per event whatever the message quotes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

/* Runs one mfl_warn with stderr sent to a temp file; returns what it wrote. */
static void s_capture(const char *quoted, char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) >= 0);
    mfl_warn("key 'rounds': expected an integer, got '%s'", quoted);
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

static void test_control_characters_cannot_forge_a_line(void **state)
{
    (void)state;
    char out[1024];
    s_capture("1\n2026-01-01T00:00:00Z coordinator info: round 9 closed\x1b[2J\x7f", out,
              sizeof out);
    /* Exactly one line, ending in the one newline the logger adds. */
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl, "\n");
    assert_null(strchr(out, '\x1b'));
    assert_null(strchr(out, '\x7f'));
    assert_non_null(strstr(out, "got '1?2026-01-01T00:00:00Z coordinator info: round 9 closed?[2J?'"));
    /* A tab is kept. */
    s_capture("a\tb", out, sizeof out);
    assert_non_null(strstr(out, "got 'a\tb'"));
}

static void test_error_messages_are_one_line_too(void **state)
{
    (void)state;
    char err[64];
    mfl_errf(err, sizeof err, "%s:%d: bad value '%s'", "c.yaml", 3, "x\r\n\x1b]0;t\x07");
    assert_string_equal(err, "c.yaml:3: bad value 'x???]0;t?'");
    mfl_errf(NULL, 0, "ignored");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_characters_cannot_forge_a_line),
        cmocka_unit_test(test_error_messages_are_one_line_too),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
