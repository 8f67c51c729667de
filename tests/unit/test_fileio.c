/* Atomic writes and bounded reads: what checkpoints and logs rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

#include "tmpdir.h"

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make(s_dir, sizeof s_dir, "fileio");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

static int s_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_write_then_read_back_replaces_contents(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/a.bin", s_dir);
    assert_int_equal(mfl_file_write_atomic(path, "first version", 13, err, sizeof err), 0);
    assert_int_equal(mfl_file_write_atomic(path, "v2", 2, err, sizeof err), 0);
    char *data;
    size_t len;
    assert_int_equal(mfl_file_read_all(path, 100, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 2);
    assert_string_equal(data, "v2"); /* NUL-terminated */
    free(data);
    assert_int_equal(s_count_entries(s_dir), 1); /* no temp file left behind */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(mfl_file_write_atomic_mode(path, "s", 1, 0600, err, sizeof err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_read_refuses_over_limit_and_names_the_file(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/big.bin", s_dir);
    char buf[1000];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(mfl_file_write_atomic(path, buf, sizeof buf, err, sizeof err), 0);
    char *data = (char *)1;
    size_t len = 5;
    assert_int_equal(mfl_file_read_all(path, 999, &data, &len, err, sizeof err), -1);
    assert_null(data);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "limit"));
    assert_int_equal(mfl_file_read_all(path, 1000, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 1000);
    free(data);
    snprintf(path, sizeof path, "%s/missing", s_dir);
    assert_int_equal(mfl_file_read_all(path, 10, &data, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(mfl_file_read_all(s_dir, 10, &data, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
    /* A FIFO with no writer: refused at once (a blocking open would hang
     * whoever was pointed at it, e.g. a config path). */
    snprintf(path, sizeof path, "%s/fifo", s_dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_int_equal(mfl_file_read_all(path, 10, &data, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a regular file"));
}

static void test_failed_write_leaves_old_file(void **state)
{
    (void)state;
    char err[512];
    /* Parent does not exist: the temp file cannot be made; nothing changes. */
    char path[300];
    snprintf(path, sizeof path, "%s/nodir/x", s_dir);
    assert_int_equal(mfl_file_write_atomic(path, "x", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "nodir/x"));
}

static void test_mkdir_p_creates_parents_and_rejects_files(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/p/q//r/", s_dir);
    assert_int_equal(mfl_mkdir_p(path, 0755, err, sizeof err), 0);
    assert_int_equal(mfl_mkdir_p(path, 0755, err, sizeof err), 0); /* idempotent */
    struct stat st;
    snprintf(path, sizeof path, "%s/p/q/r", s_dir);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    snprintf(path, sizeof path, "%s/file", s_dir);
    assert_int_equal(mfl_file_write_atomic(path, "x", 1, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/file/sub", s_dir);
    assert_int_equal(mfl_mkdir_p(path, 0755, err, sizeof err), -1);
    assert_int_equal(mfl_fsync_dir(s_dir, err, sizeof err), 0);
    assert_int_equal(mfl_fsync_parent("relative-name", err, sizeof err), 0);
}

/* mfl_file_replace (status.json): the same atomic rename for readers, mode
 * 0644, no temp file left, and a failure leaves the old file alone. */
static void test_replace_swaps_contents_without_leftovers(void **state)
{
    (void)state;
    char dir[300], path[400], err[512];
    snprintf(dir, sizeof dir, "%s/replace", s_dir);
    assert_int_equal(mfl_mkdir_p(dir, 0755, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/status.json", dir);
    assert_int_equal(mfl_file_replace(path, "{\"round\":1}", 11, err, sizeof err), 0);
    assert_int_equal(mfl_file_replace(path, "{\"round\":2}", 11, err, sizeof err), 0);
    char *data;
    size_t len;
    assert_int_equal(mfl_file_read_all(path, 100, &data, &len, err, sizeof err), 0);
    assert_int_equal(len, 11);
    assert_string_equal(data, "{\"round\":2}");
    free(data);
    assert_int_equal(s_count_entries(dir), 1);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char bad[400];
    snprintf(bad, sizeof bad, "%s/nodir/status.json", dir);
    assert_int_equal(mfl_file_replace(bad, "x", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "nodir/status.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_then_read_back_replaces_contents),
        cmocka_unit_test(test_read_refuses_over_limit_and_names_the_file),
        cmocka_unit_test(test_failed_write_leaves_old_file),
        cmocka_unit_test(test_mkdir_p_creates_parents_and_rejects_files),
        cmocka_unit_test(test_replace_swaps_contents_without_leftovers),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
