/* Deferred imputation (MFL_CSV_MISSING_KEEP): statistics from the rows the
 * caller chooses (a site's training rows), applied to any rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/csv.h"

/* Mean of feature f over the rows of `from` where it is present. */
static float s_mean(const mfl_dataset_t *from, size_t f)
{
    double s = 0;
    size_t m = 0;
    for (size_t r = 0; r < from->n; r++) {
        float v = from->x[r * from->n_features + f];
        if (!isnan(v)) {
            s += v;
            m++;
        }
    }
    return m ? (float)(s / (double)m) : 0.0f;
}

/* The one-hot block [first, first + w) of a categorical column: fill gets
 * the encoding of its most frequent level among present rows (with
 * drop_first, "all zeros" is the first level and is counted as one). */
static void s_mode(const mfl_dataset_t *from, size_t first, size_t w, bool drop_first,
                   float *fill)
{
    size_t levels = w + (drop_first ? 1 : 0);
    size_t *count = calloc(levels ? levels : 1, sizeof *count);
    if (!count) {
        memset(fill + first, 0, w * sizeof *fill);
        return;
    }
    for (size_t r = 0; r < from->n; r++) {
        const float *x = from->x + r * from->n_features + first;
        if (w && isnan(x[0]))
            continue;
        size_t level = 0;
        bool hot = false;
        for (size_t k = 0; k < w && !hot; k++)
            if (x[k] == 1.0f) {
                level = k + (drop_first ? 1 : 0);
                hot = true;
            }
        if (hot || drop_first)
            count[level]++;
    }
    size_t best = 0;
    for (size_t k = 1; k < levels; k++)
        if (count[k] > count[best])
            best = k;
    for (size_t k = 0; k < w; k++)
        fill[first + k] = (k + (drop_first ? 1 : 0)) == best ? 1.0f : 0.0f;
    free(count);
}

int mfl_csv_impute_fit(const mfl_csv_schema_t *schema, const mfl_csv_stats_t *stats,
                       const mfl_dataset_t *from, float *fill)
{
    size_t nf = stats->n_features;
    if (!from || from->n_features != nf || !stats->feature_column)
        return -1;
    for (size_t f = 0; f < nf;) {
        size_t c = stats->feature_column[f];
        if (c >= schema->n_columns)
            return -1;
        const mfl_csv_column_t *col = &schema->columns[c];
        if (col->kind != MFL_CSV_CATEGORICAL) {
            fill[f] = s_mean(from, f);
            f++;
            continue;
        }
        size_t w = 0;
        while (f + w < nf && stats->feature_column[f + w] == c)
            w++;
        s_mode(from, f, w, col->drop_first, fill);
        f += w;
    }
    return 0;
}

void mfl_csv_impute_apply(mfl_dataset_t *ds, const float *fill)
{
    for (size_t r = 0; r < ds->n; r++)
        for (size_t f = 0; f < ds->n_features; f++)
            if (isnan(ds->x[r * ds->n_features + f]))
                ds->x[r * ds->n_features + f] = fill[f];
}
