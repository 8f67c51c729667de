/* Crash-safe writes (temp + fsync + rename + fsync dir) and bounded reads. */
#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

int mfl_fsync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL) { /* some filesystems cannot fsync dirs */
        mfl_errf(err, errlen, "%s: fsync of directory failed: %s", dir, strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

int mfl_fsync_parent(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return mfl_fsync_dir(".", err, errlen);
    if (slash == path)
        return mfl_fsync_dir("/", err, errlen);
    size_t n = (size_t)(slash - path);
    char dir[PATH_MAX];
    if (n >= sizeof dir) {
        mfl_errf(err, errlen, "%s: path too long", path);
        return -1;
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return mfl_fsync_dir(dir, err, errlen);
}

/* EINTR and short writes are normal, not errors. */
int mfl_file_write_full(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* temp + rename, with the fsyncs of file and directory only if `durable`. */
static int s_write_rename(const char *path, const void *data, size_t len, mode_t mode,
                          bool durable, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s" MFL_FILE_TMP_INFIX "XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        mfl_errf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: cannot create temp file: %s", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, mode) != 0) {
        mfl_errf(err, errlen, "%s: chmod failed: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    if (mfl_file_write_full(fd, data, len) != 0) {
        mfl_errf(err, errlen, "%s: write failed: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    if (durable && fsync(fd) != 0) {
        mfl_errf(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        mfl_errf(err, errlen, "%s: close failed: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        mfl_errf(err, errlen, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
        goto out_unlink;
    }
    return durable ? mfl_fsync_parent(path, err, errlen) : 0;

out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

int mfl_file_write_atomic_mode(const char *path, const void *data, size_t len, mode_t mode,
                               char *err, size_t errlen)
{
    return s_write_rename(path, data, len, mode, true, err, errlen);
}

int mfl_file_replace(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    return s_write_rename(path, data, len, 0644, false, err, errlen);
}

int mfl_file_write_atomic(const char *path, const void *data, size_t len, char *err,
                          size_t errlen)
{
    return mfl_file_write_atomic_mode(path, data, len, 0644, err, errlen);
}

int mfl_file_open_regular(const char *path, struct stat *st, char *err, size_t errlen)
{
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise block
     * forever before fstat could refuse it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        mfl_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat local;
    if (!st)
        st = &local;
    if (fstat(fd, st) != 0) {
        mfl_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        mfl_errf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    return fd;
}

int mfl_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len, char *err,
                      size_t errlen)
{
    *data = NULL;
    *len = 0;
    struct stat st;
    int fd = mfl_file_open_regular(path, &st, err, errlen);
    if (fd < 0)
        return -1;
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        mfl_errf(err, errlen, "%s: file is %lld bytes, more than the limit of %zu", path,
                 (long long)st.st_size, max_bytes);
        goto out_close;
    }
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap + 1);
    if (!buf) {
        mfl_errf(err, errlen, "%s: out of memory for %zu bytes", path, cap);
        goto out_close;
    }
    size_t got = 0;
    for (;;) {
        if (got == cap) {
            /* The file may have grown since fstat: probe one byte. */
            char probe;
            ssize_t r = read(fd, &probe, 1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0)
                break;
            if (r < 0) {
                mfl_errf(err, errlen, "%s: read failed: %s", path, strerror(errno));
                goto out_free;
            }
            mfl_errf(err, errlen, "%s: file grew while being read (limit %zu bytes)", path,
                     max_bytes);
            goto out_free;
        }
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            mfl_errf(err, errlen, "%s: read failed: %s", path, strerror(errno));
            goto out_free;
        }
        if (r == 0)
            break; /* shrank: take what is there */
        got += (size_t)r;
    }
    buf[got] = '\0';
    close(fd);
    *data = buf;
    *len = got;
    return 0;

out_free:
    free(buf);
out_close:
    close(fd);
    return -1;
}

int mfl_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        mfl_errf(err, errlen, "'%s': bad directory path", path);
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue; /* "a//b" */
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST) {
            mfl_errf(err, errlen, "%s: cannot create directory: %s", buf, strerror(errno));
            return -1;
        }
        struct stat st;
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
            mfl_errf(err, errlen, "%s: exists and is not a directory", buf);
            return -1;
        }
        buf[i] = saved;
    }
    return 0;
}
