/* In-memory labelled data sets. All size arithmetic is checked, since n and
 * n_features come from files. */
#include "data/dataset.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

mfl_dataset_t *mfl_dataset_new(size_t n, size_t n_features)
{
    if (n_features && n > SIZE_MAX / sizeof(float) / n_features)
        return NULL;
    if (n > SIZE_MAX / sizeof(float))
        return NULL;
    mfl_dataset_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->n = n;
    self->n_features = n_features;
    /* calloc(0) may return NULL; always allocate at least one element so a
     * NULL pointer means only "out of memory". */
    size_t cells = n * n_features;
    self->x = calloc(cells ? cells : 1, sizeof(float));
    self->y = calloc(n ? n : 1, sizeof(float));
    if (!self->x || !self->y) {
        mfl_dataset_destroy(&self);
        return NULL;
    }
    return self;
}

void mfl_dataset_destroy(mfl_dataset_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_dataset_t *self = *self_p;
    free(self->x);
    free(self->y);
    free(self->group);
    free(self);
    *self_p = NULL;
}

int mfl_dataset_add_groups(mfl_dataset_t *self)
{
    if (self->group)
        return 0;
    self->group = calloc(self->n ? self->n : 1, sizeof *self->group);
    return self->group ? 0 : -1;
}

mfl_dataset_t *mfl_dataset_subset(const mfl_dataset_t *self, const size_t *idx, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (idx[i] >= self->n)
            return NULL;
    mfl_dataset_t *out = mfl_dataset_new(k, self->n_features);
    if (!out)
        return NULL;
    out->channels = self->channels;
    out->height = self->height;
    out->width = self->width;
    out->n_classes = self->n_classes;
    if (self->group && mfl_dataset_add_groups(out) < 0) {
        mfl_dataset_destroy(&out);
        return NULL;
    }
    size_t d = self->n_features;
    for (size_t i = 0; i < k; i++) {
        if (d)
            memcpy(out->x + i * d, self->x + idx[i] * d, d * sizeof(float));
        out->y[i] = self->y[idx[i]];
        if (self->group)
            out->group[i] = self->group[idx[i]];
    }
    return out;
}

mfl_dataset_t *mfl_dataset_concat(const mfl_dataset_t *const *sets, size_t k)
{
    if (k == 0)
        return NULL;
    size_t n = 0, d = sets[0]->n_features, classes = 0;
    for (size_t s = 0; s < k; s++) {
        const mfl_dataset_t *ds = sets[s];
        if (ds->n_features != d || ds->channels != sets[0]->channels ||
            ds->height != sets[0]->height || ds->width != sets[0]->width)
            return NULL;
        if (ds->n > SIZE_MAX - n)
            return NULL;
        n += ds->n;
        if (ds->n_classes > classes)
            classes = ds->n_classes;
    }
    mfl_dataset_t *out = mfl_dataset_new(n, d);
    if (!out)
        return NULL;
    out->channels = sets[0]->channels;
    out->height = sets[0]->height;
    out->width = sets[0]->width;
    out->n_classes = classes;
    size_t row = 0;
    for (size_t s = 0; s < k; s++) {
        const mfl_dataset_t *ds = sets[s];
        if (ds->n && d)
            memcpy(out->x + row * d, ds->x, ds->n * d * sizeof(float));
        if (ds->n)
            memcpy(out->y + row, ds->y, ds->n * sizeof(float));
        row += ds->n;
    }
    return out;
}

int mfl_dataset_split(const mfl_dataset_t *self, double frac, mfl_rng_t *rng,
                      mfl_dataset_t **first, mfl_dataset_t **second)
{
    *first = *second = NULL;
    if (!(frac >= 0.0 && frac <= 1.0))
        return -1;
    size_t n = self->n;
    size_t *a = malloc((n ? n : 1) * sizeof *a);
    size_t *b = malloc((n ? n : 1) * sizeof *b);
    size_t *pool = malloc((n ? n : 1) * sizeof *pool);
    size_t na = 0, nb = 0;
    if (!a || !b || !pool)
        goto out_free;
    /* Regression: one group. Classification: one group per class, in class
     * order, so the result depends only on the data and the rng. Rows whose
     * label is not a valid class index form a last group of their own. */
    size_t groups = self->n_classes ? self->n_classes + 1 : 1;
    for (size_t g = 0; g < groups; g++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            size_t cls;
            if (!self->n_classes) {
                cls = 0;
            } else {
                float y = self->y[i];
                cls = (y >= 0.0f && y < (float)self->n_classes && y == floorf(y))
                          ? (size_t)y
                          : self->n_classes;
            }
            if (cls == g)
                pool[m++] = i;
        }
        if (!m)
            continue;
        mfl_rng_shuffle(rng, pool, m);
        size_t take = (size_t)llround(frac * (double)m);
        if (take > m)
            take = m;
        memcpy(a + na, pool, take * sizeof *pool);
        na += take;
        memcpy(b + nb, pool + take, (m - take) * sizeof *pool);
        nb += m - take;
    }
    *first = mfl_dataset_subset(self, a, na);
    *second = mfl_dataset_subset(self, b, nb);
    if (!*first || !*second) {
        mfl_dataset_destroy(first);
        mfl_dataset_destroy(second);
        goto out_free;
    }
    free(a);
    free(b);
    free(pool);
    return 0;
out_free:
    free(a);
    free(b);
    free(pool);
    return -1;
}

void mfl_dataset_feature_stats(const mfl_dataset_t *self, float *mean, float *std)
{
    size_t n = self->n, d = self->n_features;
    /* Two passes in double: exact enough for standardising, and stable. */
    for (size_t j = 0; j < d; j++) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += self->x[i * d + j];
        double m = n ? s / (double)n : 0.0;
        double ss = 0.0;
        for (size_t i = 0; i < n; i++) {
            double dv = self->x[i * d + j] - m;
            ss += dv * dv;
        }
        double var = n > 1 ? ss / (double)(n - 1) : 0.0;
        mean[j] = (float)m;
        std[j] = (float)(sqrt(var) + 1e-9);
    }
}

void mfl_dataset_standardize(mfl_dataset_t *self, const float *mean, const float *std)
{
    size_t n = self->n, d = self->n_features;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            self->x[i * d + j] = (float)(((double)self->x[i * d + j] - mean[j]) / std[j]);
}

void mfl_dataset_class_counts(const mfl_dataset_t *self, size_t *counts)
{
    size_t k = self->n_classes;
    for (size_t c = 0; c < k; c++)
        counts[c] = 0;
    for (size_t i = 0; i < self->n; i++) {
        float y = self->y[i];
        if (y >= 0.0f && y < (float)k && y == floorf(y))
            counts[(size_t)y]++;
    }
}
