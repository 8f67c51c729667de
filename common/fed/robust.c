/* Coordinate-wise median and trimmed mean over K updates. */
#include "fed/robust.h"

#include <math.h>
#include <stdlib.h>

#include "core/log.h"

static int s_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Checks inputs; returns a K-float scratch buffer or NULL with err. */
static float *s_prepare(const float *const *deltas, size_t k, size_t n, char *err,
                        size_t errlen)
{
    if (k == 0 || n == 0) {
        mfl_errf(err, errlen, "robust aggregation needs at least one update and one parameter");
        return NULL;
    }
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < n; j++)
            if (!isfinite(deltas[i][j])) {
                mfl_errf(err, errlen, "update %zu: delta[%zu] is not finite", i, j);
                return NULL;
            }
    float *col = malloc(k * sizeof *col);
    if (!col)
        mfl_errf(err, errlen, "out of memory for %zu updates", k);
    return col;
}

static void s_column(const float *const *deltas, size_t k, size_t j, float *col)
{
    for (size_t i = 0; i < k; i++)
        col[i] = deltas[i][j];
    qsort(col, k, sizeof *col, s_cmp_float);
}

int mfl_robust_median(const float *const *deltas, size_t k, size_t n, float *out, char *err,
                      size_t errlen)
{
    float *col = s_prepare(deltas, k, n, err, errlen);
    if (!col)
        return -1;
    for (size_t j = 0; j < n; j++) {
        s_column(deltas, k, j, col);
        out[j] = k % 2 ? col[k / 2]
                       : (float)(((double)col[k / 2 - 1] + (double)col[k / 2]) / 2.0);
    }
    free(col);
    return 0;
}

int mfl_robust_trimmed_mean(const float *const *deltas, size_t k, size_t n, size_t trim,
                            float *out, char *err, size_t errlen)
{
    /* 2·trim ≥ k, written so a huge trim cannot wrap 2·trim to a small
     * number (it would then index past the column). */
    if (k > 0 && trim > (k - 1) / 2) {
        mfl_errf(err, errlen, "cannot trim %zu from each end of %zu updates", trim, k);
        return -1;
    }
    float *col = s_prepare(deltas, k, n, err, errlen);
    if (!col)
        return -1;
    for (size_t j = 0; j < n; j++) {
        s_column(deltas, k, j, col);
        double s = 0;
        for (size_t i = trim; i < k - trim; i++)
            s += col[i];
        out[j] = (float)(s / (double)(k - 2 * trim));
    }
    free(col);
    return 0;
}
