/* An in-memory labelled data set: rows of float features and one float
 * label per row. Tables and images share it (images are c×h×w floats).
 * A transparent struct: loaders fill it, samplers and trainers read it. */
#ifndef MFL_DATA_DATASET_H
#define MFL_DATA_DATASET_H

#include <stddef.h>

#include "core/rng.h"

typedef struct {
    size_t n;          /* rows */
    size_t n_features; /* floats per row */
    size_t channels, height, width; /* images; all 0 for tables */
    size_t n_classes;  /* 0 = regression; 2 = binary; >2 multi-class */
    float *x;          /* [n][n_features], owned */
    float *y;          /* [n], owned: class index, 0/1, or target */
    size_t *group;     /* [n], owned, optional (NULL): the task unit of each row, e.g. the
                        * patient of a time-series window; kept by subset and split */
} mfl_dataset_t;

/* A zeroed data set with room for n rows of n_features; NULL on OOM or if
 * n * n_features overflows. */
mfl_dataset_t *mfl_dataset_new(size_t n, size_t n_features);

/* Gives every row a group (all 0); 0, or -1 on OOM. */
int mfl_dataset_add_groups(mfl_dataset_t *self);

/* Frees and nulls the caller's pointer; accepts NULL. */
void mfl_dataset_destroy(mfl_dataset_t **self_p);

/* A new data set holding copies of rows idx[0..k) of `self` (idx borrowed),
 * with their groups if `self` has them. */
mfl_dataset_t *mfl_dataset_subset(const mfl_dataset_t *self, const size_t *idx, size_t k);

/* A new data set with the rows of sets[0..k) in order (e.g. the pooled
 * training set of several sites). All sets must have the same n_features
 * and image shape; n_classes is the largest. NULL on mismatch or OOM. */
mfl_dataset_t *mfl_dataset_concat(const mfl_dataset_t *const *sets, size_t k);

/* Stratified split: each class's rows are shuffled with `rng` and the first
 * round(frac * count) go to *first, the rest to *second. Regression data is
 * split unstratified. Returns 0, or -1 on OOM. */
int mfl_dataset_split(const mfl_dataset_t *self, double frac, mfl_rng_t *rng,
                      mfl_dataset_t **first, mfl_dataset_t **second);

/* Per-feature mean and unbiased standard deviation (+1e-9) of `self`,
 * written to mean[n_features] and std[n_features]. */
void mfl_dataset_feature_stats(const mfl_dataset_t *self, float *mean, float *std);

/* x ← (x − mean) / std, feature by feature. */
void mfl_dataset_standardize(mfl_dataset_t *self, const float *mean, const float *std);

/* Counts rows per class into counts[n_classes]. */
void mfl_dataset_class_counts(const mfl_dataset_t *self, size_t *counts);

#endif
