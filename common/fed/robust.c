/* Coordinate-wise median and trimmed mean over K updates. */
#include "fed/robust.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int mfl_robust_multi_krum(const float *const *deltas, size_t k, size_t n, size_t f, size_t m,
                          float *out, size_t *chosen, char *err, size_t errlen)
{
    if (k < 2 * f + 3 || m < 1 || m > k) {
        mfl_errf(err, errlen, "Multi-Krum needs at least 2f+3 = %zu updates and 1 ≤ m ≤ %zu; "
                 "got %zu updates, m = %zu", 2 * f + 3, k, k, m);
        return -1;
    }
    float *col = s_prepare(deltas, k, n, err, errlen); /* checks finiteness */
    if (!col)
        return -1;
    free(col);
    double *dist = malloc(k * k * sizeof *dist);
    double *row = malloc(k * sizeof *row);
    double *score = malloc(k * sizeof *score);
    char *taken = calloc(k, 1);
    if (!dist || !row || !score || !taken) {
        free(dist);
        free(row);
        free(score);
        free(taken);
        mfl_errf(err, errlen, "out of memory for %zu updates", k);
        return -1;
    }
    for (size_t a = 0; a < k; a++) {
        dist[a * k + a] = 0;
        for (size_t b = a + 1; b < k; b++) {
            double d = 0;
            for (size_t j = 0; j < n; j++) {
                double t = (double)deltas[a][j] - (double)deltas[b][j];
                d += t * t;
            }
            dist[a * k + b] = dist[b * k + a] = d;
        }
    }
    size_t near = k - f - 2;
    for (size_t a = 0; a < k; a++) {
        size_t r = 0;
        for (size_t b = 0; b < k; b++)
            if (b != a)
                row[r++] = dist[a * k + b];
        qsort(row, r, sizeof *row, s_cmp_double);
        double sc = 0;
        for (size_t i = 0; i < near; i++)
            sc += row[i];
        score[a] = sc;
    }
    for (size_t c = 0; c < m; c++) {
        size_t best = k;
        for (size_t a = 0; a < k; a++)
            if (!taken[a] && (best == k || score[a] < score[best]))
                best = a;
        taken[best] = 1;
    }
    size_t c = 0;
    for (size_t a = 0; a < k; a++)
        if (taken[a] && chosen)
            chosen[c++] = a;
    for (size_t j = 0; j < n; j++) {
        double sum = 0;
        for (size_t a = 0; a < k; a++)
            if (taken[a])
                sum += deltas[a][j];
        out[j] = (float)(sum / (double)m);
    }
    free(dist);
    free(row);
    free(score);
    free(taken);
    return 0;
}

static const char *const s_agg_names[] = {"mean", "median", "trimmed_mean", "multi_krum"};

const char *mfl_agg_kind_name(mfl_agg_kind_t kind)
{
    return (unsigned)kind < sizeof s_agg_names / sizeof *s_agg_names ? s_agg_names[kind] : "?";
}

int mfl_agg_kind_parse(const char *text, mfl_agg_kind_t *kind)
{
    for (size_t i = 0; text && i < sizeof s_agg_names / sizeof *s_agg_names; i++) {
        if (strcmp(text, s_agg_names[i]) == 0) {
            *kind = (mfl_agg_kind_t)i;
            return 0;
        }
    }
    return -1;
}
