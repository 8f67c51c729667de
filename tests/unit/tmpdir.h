/* A scratch directory per test binary: made under $TMPDIR (or /tmp) by
 * the group setup, removed with everything in it by the group teardown.
 * Header-only (static functions) because each unit test is one .c file. */
#ifndef MFL_TEST_TMPDIR_H
#define MFL_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

/* Makes "$TMPDIR/mfl-<tag>-XXXXXX" into dir[0..size). 0 or -1. */
static int s_tmpdir_make(char *dir, size_t size, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, size, "%s/mfl-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    if (n < 0 || (size_t)n >= size)
        return -1;
    return mkdtemp(dir) ? 0 : -1;
}

static int s_tmpdir_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it (without a shell, so odd characters
 * in $TMPDIR cannot run commands). 0 or -1. */
static int s_tmpdir_remove(const char *dir)
{
    return nftw(dir, s_tmpdir_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
