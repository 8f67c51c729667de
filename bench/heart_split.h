/* Stratified splits of one hospital's training rows for the privacy
 * harnesses (heart_privacy.h's fit/validation split, heart_privacy_global.h's
 * cross-validation folds): the rows of each class shuffled with a seeded
 * PRNG, then dealt to the fit or the validation part by a rule of the
 * caller's. Header-only, included by heart_privacy.h. */
#ifndef MFL_BENCH_HEART_SPLIT_H
#define MFL_BENCH_HEART_SPLIT_H

#include <stdlib.h>

#include "core/rng.h"
#include "data/dataset.h"

/* Whether row `i` of the class order (n rows, the n_pos positives first)
 * goes to the validation part; `arg` is the caller's. */
typedef int (*s_heart_to_val_fn)(size_t i, size_t n, size_t n_pos, const void *arg);

/* Splits t's rows into *fit and *val (both keep t's class count): the
 * positive rows (y > 0.5) in an order shuffled with r, then the others
 * shuffled with r; row i of that order goes to *val when to_val says so,
 * else to *fit, each part in that order. 0, or -1 out of memory (a part
 * that was made is the caller's to destroy). */
static inline int s_heart_split_stratified(const mfl_dataset_t *t, mfl_rng_t *r,
                                           s_heart_to_val_fn to_val, const void *arg,
                                           mfl_dataset_t **fit, mfl_dataset_t **val)
{
    size_t n = t->n, np = 0;
    size_t *idx = malloc(n * sizeof *idx), *fi = malloc(n * sizeof *fi),
           *vi = malloc(n * sizeof *vi);
    if (!idx || !fi || !vi) {
        free(idx), free(fi), free(vi);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (t->y[i] > 0.5f)
            idx[np++] = i;
    for (size_t i = 0, j = np; i < n; i++)
        if (!(t->y[i] > 0.5f))
            idx[j++] = i;
    mfl_rng_shuffle(r, idx, np);
    mfl_rng_shuffle(r, idx + np, n - np);
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (to_val(i, n, np, arg))
            vi[a++] = idx[i];
        else
            fi[b++] = idx[i];
    }
    *fit = mfl_dataset_subset(t, fi, b);
    *val = mfl_dataset_subset(t, vi, a);
    free(idx), free(fi), free(vi);
    if (!*fit || !*val)
        return -1;
    (*fit)->n_classes = (*val)->n_classes = t->n_classes;
    return 0;
}

#endif
