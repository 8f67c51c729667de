/* IDX decoding. Files are streamed through zlib's gz* functions (which read
 * plain files unchanged), reading only the header and the rows asked for. */
#include "data/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/fileio.h"
#include "core/log.h"

typedef struct {
    size_t ndims;
    uint32_t dims[3];
} s_header_t;

static uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Validates a header in buf[0..len): returns its length, or 0 with err. */
static size_t s_header(const char *name, const uint8_t *buf, size_t len, size_t want_dims,
                       s_header_t *h, char *err, size_t errlen)
{
    if (len < 4) {
        mfl_errf(err, errlen, "%s: truncated IDX header", name);
        return 0;
    }
    if (buf[0] != 0 || buf[1] != 0) {
        mfl_errf(err, errlen, "%s: not an IDX file (bad magic %02x%02x%02x%02x)", name, buf[0],
                 buf[1], buf[2], buf[3]);
        return 0;
    }
    if (buf[2] != 0x08) {
        mfl_errf(err, errlen, "%s: IDX data type 0x%02x is not unsigned byte (0x08)", name, buf[2]);
        return 0;
    }
    if (buf[3] != want_dims) {
        mfl_errf(err, errlen, "%s: IDX file has %u dimensions, expected %zu", name, buf[3],
                 want_dims);
        return 0;
    }
    size_t hlen = 4 + 4 * want_dims;
    if (len < hlen) {
        mfl_errf(err, errlen, "%s: truncated IDX header", name);
        return 0;
    }
    h->ndims = want_dims;
    for (size_t i = 0; i < want_dims; i++) {
        h->dims[i] = s_be32(buf + 4 + 4 * i);
        if (h->dims[i] == 0) {
            mfl_errf(err, errlen, "%s: IDX dimension %zu is zero", name, i);
            return 0;
        }
    }
    if (h->dims[0] > MFL_IDX_MAX_ITEMS) {
        mfl_errf(err, errlen, "%s: %u items exceeds the limit of %u", name, h->dims[0],
                 (unsigned)MFL_IDX_MAX_ITEMS);
        return 0;
    }
    if (want_dims == 3 && (uint64_t)h->dims[1] * h->dims[2] > MFL_IDX_MAX_PIXELS) {
        mfl_errf(err, errlen, "%s: %ux%u images exceed the limit of %u pixels", name, h->dims[1],
                 h->dims[2], (unsigned)MFL_IDX_MAX_PIXELS);
        return 0;
    }
    return hlen;
}

/* Image shape, labels and class count of a data set whose pixels are in. */
static void s_finish(mfl_dataset_t *ds, const s_header_t *ih, const uint8_t *lab, size_t k)
{
    ds->channels = 1;
    ds->height = ih->dims[1];
    ds->width = ih->dims[2];
    size_t max_label = 0;
    for (size_t i = 0; i < k; i++) {
        ds->y[i] = (float)lab[i];
        if (lab[i] > max_label)
            max_label = lab[i];
    }
    ds->n_classes = k ? max_label + 1 : 0;
}

/* Builds the data set from validated headers and payloads of k rows. */
static mfl_dataset_t *s_build(const char *iname, const char *lname, const s_header_t *ih,
                              const uint8_t *pix, const uint8_t *lab, size_t k, char *err,
                              size_t errlen)
{
    size_t d = (size_t)ih->dims[1] * ih->dims[2];
    mfl_dataset_t *ds = mfl_dataset_new(k, d);
    if (!ds) {
        mfl_errf(err, errlen, "%s: out of memory for %zu images", iname, k);
        return NULL;
    }
    (void)lname;
    for (size_t i = 0; i < k * d; i++)
        ds->x[i] = (float)pix[i] / 255.0f;
    s_finish(ds, ih, lab, k);
    return ds;
}

static int s_rows(const char *iname, const char *lname, const s_header_t *ih,
                  const s_header_t *lh, size_t max_rows, size_t *k, char *err, size_t errlen)
{
    if (ih->dims[0] != lh->dims[0]) {
        mfl_errf(err, errlen, "%s has %u images but %s has %u labels", iname, ih->dims[0], lname,
                 lh->dims[0]);
        return -1;
    }
    *k = ih->dims[0];
    if (max_rows && max_rows < *k)
        *k = max_rows;
    if (*k > MFL_IDX_MAX_BYTES / ((size_t)ih->dims[1] * ih->dims[2])) {
        mfl_errf(err, errlen, "%s: %zu images exceed the load limit of %u bytes", iname, *k,
                 (unsigned)MFL_IDX_MAX_BYTES);
        return -1;
    }
    return 0;
}

mfl_dataset_t *mfl_idx_parse(const uint8_t *images, size_t images_len, const uint8_t *labels,
                             size_t labels_len, size_t max_rows, char *err, size_t errlen)
{
    const char *iname = "images", *lname = "labels";
    s_header_t ih, lh;
    size_t ihl = s_header(iname, images, images_len, 3, &ih, err, errlen);
    if (!ihl)
        return NULL;
    size_t lhl = s_header(lname, labels, labels_len, 1, &lh, err, errlen);
    if (!lhl)
        return NULL;
    size_t k;
    if (s_rows(iname, lname, &ih, &lh, max_rows, &k, err, errlen) < 0)
        return NULL;
    size_t d = (size_t)ih.dims[1] * ih.dims[2];
    /* Whole-file sizes must match the header exactly. */
    uint64_t want_i = (uint64_t)ihl + (uint64_t)ih.dims[0] * d, want_l = lhl + (uint64_t)lh.dims[0];
    if (images_len != want_i) {
        mfl_errf(err, errlen, "%s: %zu bytes, but the header implies %llu", iname, images_len,
                 (unsigned long long)want_i);
        return NULL;
    }
    if (labels_len != want_l) {
        mfl_errf(err, errlen, "%s: %zu bytes, but the header implies %llu", lname, labels_len,
                 (unsigned long long)want_l);
        return NULL;
    }
    return s_build(iname, lname, &ih, images + ihl, labels + lhl, k, err, errlen);
}

/* Reads exactly n bytes; -1 with a message on error or short read. */
static int s_gz_exact(gzFile gz, const char *path, uint8_t *buf, size_t n, const char *what,
                      char *err, size_t errlen)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0) {
            int zerr;
            const char *msg = gzerror(gz, &zerr);
            mfl_errf(err, errlen, "%s: corrupt data: %s", path, msg ? msg : "?");
            return -1;
        }
        if (r == 0) {
            mfl_errf(err, errlen, "%s: truncated %s (%zu of %zu bytes)", path, what, got, n);
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Opens an IDX file and reads and validates its header. */
static gzFile s_open(const char *path, size_t ndims, s_header_t *h, char *err, size_t errlen)
{
    int fd = mfl_file_open_regular(path, NULL, err, errlen);
    if (fd < 0)
        return NULL;
    gzFile gz = gzdopen(fd, "rb"); /* owns fd from here */
    if (!gz) {
        mfl_errf(err, errlen, "%s: cannot open: out of memory", path);
        close(fd);
        return NULL;
    }
    uint8_t hb[16];
    if (s_gz_exact(gz, path, hb, 4, "header", err, errlen) < 0)
        goto out_close;
    size_t extra = 4 * (size_t)hb[3];
    if (hb[3] != ndims) {
        s_header(path, hb, 4, ndims, h, err, errlen); /* formats the right message */
        goto out_close;
    }
    if (s_gz_exact(gz, path, hb + 4, extra, "header", err, errlen) < 0)
        goto out_close;
    if (!s_header(path, hb, 4 + extra, ndims, h, err, errlen))
        goto out_close;
    return gz;
out_close:
    gzclose(gz);
    return NULL;
}

/* After reading everything the header promised: nothing may follow. */
static int s_at_end(gzFile gz, const char *path, char *err, size_t errlen)
{
    uint8_t b;
    int r = gzread(gz, &b, 1);
    if (r == 0)
        return 0;
    mfl_errf(err, errlen, "%s: %s after the data the header describes", path,
             r > 0 ? "trailing bytes" : "corrupt data");
    return -1;
}

mfl_dataset_t *mfl_idx_load(const char *images_path, const char *labels_path, size_t max_rows,
                            char *err, size_t errlen)
{
    s_header_t ih, lh;
    mfl_dataset_t *ds = NULL;
    uint8_t *chunk = NULL, *lab = NULL;
    gzFile gi = NULL, gl = NULL;
    gi = s_open(images_path, 3, &ih, err, errlen);
    if (!gi)
        return NULL;
    gl = s_open(labels_path, 1, &lh, err, errlen);
    if (!gl)
        goto out_close;
    size_t k;
    if (s_rows(images_path, labels_path, &ih, &lh, max_rows, &k, err, errlen) < 0)
        goto out_close;
    size_t d = (size_t)ih.dims[1] * ih.dims[2];
    /* Pixels are converted chunk by chunk straight into the data set, so
     * loading never holds a second copy of the images. */
    size_t chunk_rows = d >= (1u << 20) ? 1 : (1u << 20) / d;
    chunk = malloc(chunk_rows * d);
    lab = malloc(k ? k : 1);
    ds = mfl_dataset_new(k, d);
    if (!chunk || !lab || !ds) {
        mfl_errf(err, errlen, "%s: out of memory for %zu images", images_path, k);
        goto out_fail;
    }
    for (size_t row = 0; row < k; row += chunk_rows) {
        size_t rows = k - row < chunk_rows ? k - row : chunk_rows;
        if (s_gz_exact(gi, images_path, chunk, rows * d, "pixel data", err, errlen) < 0) {
            /* Name the whole payload, not just this chunk. */
            mfl_errf(err, errlen, "%s: truncated or corrupt pixel data (image %zu of %zu)",
                     images_path, row + 1, k);
            goto out_fail;
        }
        float *x = ds->x + row * d;
        for (size_t i = 0; i < rows * d; i++)
            x[i] = (float)chunk[i] / 255.0f;
    }
    if (s_gz_exact(gl, labels_path, lab, k, "label data", err, errlen) < 0)
        goto out_fail;
    if (k == ih.dims[0] && (s_at_end(gi, images_path, err, errlen) < 0 ||
                            s_at_end(gl, labels_path, err, errlen) < 0))
        goto out_fail;
    s_finish(ds, &ih, lab, k);
    goto out_close;
out_fail:
    mfl_dataset_destroy(&ds);
out_close:
    free(chunk);
    free(lab);
    if (gi)
        gzclose(gi);
    if (gl)
        gzclose(gl);
    return ds;
}
