/* A learnable binary table for the site and selection unit tests: n rows
 * of 3 features drawn uniformly from [-2, 2) with the PRNG seeded
 * (seed, 1), label = [x1 + 0.5 x2 - x3 > 0]. Header-only (static inline)
 * because each unit test is one .c file; include it after cmocka.h. */
#ifndef MFL_TEST_LINEAR_ROWS_H
#define MFL_TEST_LINEAR_ROWS_H

#include <stdint.h>

#include "core/rng.h"
#include "data/dataset.h"

static inline mfl_dataset_t *s_linear_rows(uint64_t seed, size_t n)
{
    mfl_dataset_t *d = mfl_dataset_new(n, 3);
    assert_non_null(d);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 3; k++)
            d->x[3 * i + k] = (float)(mfl_rng_uniform(&r) * 4.0 - 2.0);
        d->y[i] = d->x[3 * i] + 0.5f * d->x[3 * i + 1] - d->x[3 * i + 2] > 0 ? 1.0f : 0.0f;
    }
    return d;
}

#endif
