#include "data/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/log.h"

int mfl_data_read_file(const char *path, size_t max_bytes, char **buf, size_t *len, char *err,
                       size_t errlen)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        mfl_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        mfl_errf(err, errlen, "%s: not a regular file", path);
        goto out_close;
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        mfl_errf(err, errlen, "%s: file of %lld bytes exceeds the limit of %zu", path,
                 (long long)st.st_size, max_bytes);
        goto out_close;
    }
    size_t n = (size_t)st.st_size;
    char *b = malloc(n + 1);
    if (!b) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto out_close;
    }
    if (n && fread(b, 1, n, f) != n) {
        mfl_errf(err, errlen, "%s: read error", path);
        free(b);
        goto out_close;
    }
    b[n] = '\0';
    fclose(f);
    *buf = b;
    *len = n;
    return 0;
out_close:
    fclose(f);
    return -1;
}

int mfl_data_read_file_gz(const char *path, size_t max_bytes, char **buf, size_t *len, char *err,
                          size_t errlen)
{
    *buf = NULL;
    *len = 0;
    /* gzopen reads plain files as-is too, so one path serves both. */
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        mfl_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = max_bytes < (1u << 16) ? max_bytes : (1u << 16), n = 0;
    char *b = malloc(cap + 1);
    if (!b) {
        mfl_errf(err, errlen, "%s: out of memory", path);
        goto out_close;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max_bytes) {
                /* Probe one more byte: exactly max_bytes is fine. */
                char probe;
                int r = gzread(gz, &probe, 1);
                if (r == 0)
                    break;
                mfl_errf(err, errlen, "%s: decompressed data exceeds the limit of %zu bytes",
                         path, max_bytes);
                goto out_free;
            }
            size_t ncap = cap > max_bytes / 2 ? max_bytes : cap * 2;
            char *nb = realloc(b, ncap + 1);
            if (!nb) {
                mfl_errf(err, errlen, "%s: out of memory", path);
                goto out_free;
            }
            b = nb;
            cap = ncap;
        }
        size_t want = cap - n;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(gz, b + n, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            mfl_errf(err, errlen, "%s: corrupt gzip data: %s", path, msg ? msg : "?");
            goto out_free;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    /* gzread returns 0 at EOF but also on a truncated stream: check. */
    int zerr = Z_OK;
    const char *msg = gzerror(gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        mfl_errf(err, errlen, "%s: corrupt gzip data: %s", path, msg ? msg : "?");
        goto out_free;
    }
    gzclose(gz);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
out_free:
    free(b);
out_close:
    gzclose(gz);
    return -1;
}
