/* Shared by the Fashion-MNIST benchmarks: the meta-train classes plus their
 * 90/180/270 degree rotations as further classes (the Omniglot recipe for
 * widening a small class pool). Header-only: each bench is one program. */
#ifndef MFL_BENCH_FMNIST_ROT_H
#define MFL_BENCH_FMNIST_ROT_H

#include <stdlib.h>

#include "data/dataset.h"
#include "meta/experiment.h"

/* A new data set of up to `per_class` rows of each listed class of `src`
 * plus their rotations by 90, 180 and 270 degrees: rotation r of class c
 * becomes class c + r * src->n_classes. NULL on a non-square or
 * multi-channel set or OOM. */
static inline mfl_dataset_t *mfl_bench_fmnist_rotated(const mfl_dataset_t *src,
                                                      const size_t *classes, size_t n,
                                                      size_t per_class)
{
    size_t h = src->height, w = src->width, nf = src->n_features, base = src->n_classes;
    if (h != w || src->channels != 1 || nf != h * w || n > MFL_EXP_MAX_CLASSES)
        return NULL;
    size_t keep = 0, taken[MFL_EXP_MAX_CLASSES] = {0};
    size_t *idx = malloc(src->n * sizeof(size_t));
    if (!idx)
        return NULL;
    for (size_t i = 0; i < src->n; i++) {
        size_t y = (size_t)src->y[i];
        for (size_t c = 0; c < n; c++)
            if (classes[c] == y && taken[c] < per_class) {
                taken[c]++;
                idx[keep++] = i;
            }
    }
    mfl_dataset_t *d = keep ? mfl_dataset_new(4 * keep, nf) : NULL;
    if (!d) {
        free(idx);
        return NULL;
    }
    d->channels = 1;
    d->height = h;
    d->width = w;
    d->n_classes = 4 * base;
    for (size_t r = 0; r < 4; r++)
        for (size_t k = 0; k < keep; k++) {
            const float *x = src->x + idx[k] * nf;
            float *o = d->x + (r * keep + k) * nf;
            for (size_t i = 0; i < h; i++)
                for (size_t j = 0; j < w; j++) {
                    size_t si = i, sj = j; /* out(i, j) = in(rotated coordinates) */
                    if (r == 1)
                        si = w - 1 - j, sj = i;
                    else if (r == 2)
                        si = h - 1 - i, sj = w - 1 - j;
                    else if (r == 3)
                        si = j, sj = h - 1 - i;
                    o[i * w + j] = x[si * w + sj];
                }
            d->y[r * keep + k] = src->y[idx[k]] + (float)(r * base);
        }
    free(idx);
    return d;
}

/* Replaces exp's training data by up to `per_class` rows of each meta-train
 * class plus their rotations by 90, 180 and 270 degrees; rotation r of
 * class c becomes class c + 10 r (exp->train_classes lists upright classes
 * first, then rotation 1, 2, 3). The test side is untouched. 0 or -1. */
static inline int mfl_bench_fmnist_add_rotations(mfl_experiment_t *exp, size_t per_class)
{
    size_t n0 = exp->n_train_classes, base = exp->train_data->n_classes;
    if (4 * n0 > MFL_EXP_MAX_CLASSES)
        return -1;
    mfl_dataset_t *d = mfl_bench_fmnist_rotated(exp->train_data, exp->train_classes, n0,
                                                per_class);
    if (!d)
        return -1;
    for (size_t r = 1; r < 4; r++)
        for (size_t c = 0; c < n0; c++)
            exp->train_classes[r * n0 + c] = exp->train_classes[c] + r * base;
    exp->n_train_classes = 4 * n0;
    mfl_dataset_destroy(&exp->train_data);
    exp->train_data = d;
    return 0;
}

/* Data augmentation: replaces exp's training data by each row followed by
 * its left-right mirror image (same class), so rows 2i and 2i+1 are an
 * image and its mirror. Run it before mfl_bench_fmnist_add_rotations (with
 * twice the per-class count): a mirrored upright garment is the same
 * garment, but a mirrored 90° rotation looks like a 270° one, another
 * pseudo-class. 0 or -1. */
static inline int mfl_bench_fmnist_add_mirrors(mfl_experiment_t *exp)
{
    mfl_dataset_t *src = exp->train_data;
    size_t h = src->height, w = src->width, nf = src->n_features;
    if (src->channels != 1 || nf != h * w)
        return -1;
    mfl_dataset_t *d = mfl_dataset_new(2 * src->n, nf);
    if (!d)
        return -1;
    d->channels = 1;
    d->height = h;
    d->width = w;
    d->n_classes = src->n_classes;
    for (size_t k = 0; k < src->n; k++) {
        const float *x = src->x + k * nf;
        float *o = d->x + 2 * k * nf, *m = o + nf;
        for (size_t i = 0; i < h; i++)
            for (size_t j = 0; j < w; j++) {
                o[i * w + j] = x[i * w + j];
                m[i * w + j] = x[i * w + (w - 1 - j)];
            }
        d->y[2 * k] = d->y[2 * k + 1] = src->y[k];
    }
    mfl_dataset_destroy(&exp->train_data);
    exp->train_data = d;
    return 0;
}

#endif
