/* The background file writer behind the coordinator's status.json: what
 * was posted last is what ends up in the file, flush waits for it, a
 * failed write is reported to the caller once, destroy writes what is
 * still pending. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file_writer.h"
#include "core/fileio.h"

#include "tmpdir.h"

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make(s_dir, sizeof s_dir, "fwriter");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

static void s_assert_file(const char *path, const char *want)
{
    char *data = NULL, err[512];
    size_t len = 0;
    assert_int_equal(mfl_file_read_all(path, 1 << 20, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    free(data);
}

static int s_entries(void)
{
    DIR *d = opendir(s_dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_last_post_wins_and_flush_waits_for_it(void **state)
{
    (void)state;
    char path[300], err[512], text[64];
    snprintf(path, sizeof path, "%s/status.json", s_dir);
    mfl_file_writer_t *w = mfl_file_writer_new(path, err, sizeof err);
    assert_non_null(w);
    for (int i = 0; i < 200; i++) {
        snprintf(text, sizeof text, "{\"step\":%d}", i);
        assert_int_equal(mfl_file_writer_post(w, text, strlen(text), err, sizeof err), 0);
    }
    assert_int_equal(mfl_file_writer_flush(w, err, sizeof err), 0);
    s_assert_file(path, "{\"step\":199}");
    assert_int_equal(s_entries(), 1); /* no temp file left behind */
    /* destroy writes what was posted last, without a flush */
    assert_int_equal(mfl_file_writer_post(w, "final", 5, err, sizeof err), 0);
    mfl_file_writer_destroy(&w);
    assert_null(w);
    s_assert_file(path, "final");
    mfl_file_writer_destroy(&w); /* NULL is fine */
    unlink(path);
}

static void test_failed_write_is_reported_once_with_the_path(void **state)
{
    (void)state;
    char path[300], err[512] = "";
    snprintf(path, sizeof path, "%s/no-such-dir/status.json", s_dir);
    mfl_file_writer_t *w = mfl_file_writer_new(path, err, sizeof err);
    assert_non_null(w);
    assert_int_equal(mfl_file_writer_post(w, "x", 1, err, sizeof err), 0);
    assert_int_equal(mfl_file_writer_flush(w, err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-dir/status.json"));
    err[0] = '\0';
    assert_int_equal(mfl_file_writer_flush(w, err, sizeof err), 0); /* reported once */
    /* each failed write once: a second text fails again */
    assert_int_equal(mfl_file_writer_post(w, "y", 1, err, sizeof err), 0);
    assert_int_equal(mfl_file_writer_flush(w, err, sizeof err), -1);
    assert_non_null(strstr(err, "no-such-dir/status.json"));
    mfl_file_writer_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_last_post_wins_and_flush_waits_for_it),
        cmocka_unit_test(test_failed_write_is_reported_once_with_the_path),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
