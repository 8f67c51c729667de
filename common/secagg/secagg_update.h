/* A model update as secure aggregation carries it: the fixed-point terms
 * of the aggregator (fed/aggregate.h) plus the quantised weight, as
 * n_params + 1 words mod 2^64. Masks are added to these words; the
 * unmasked sum of several updates, folded back, gives a mean bit-identical
 * to adding the same updates to the aggregator in clear (the terms are the
 * same pure functions of (Δ, w), and their int64 sum is exact: see the
 * overflow bound in fed/aggregate.h). The coordinator learns Σ w, not each
 * site's sample count. */
#ifndef MFL_SECAGG_UPDATE_H
#define MFL_SECAGG_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "fed/aggregate.h"

/* Words of an encoded update for `agg`: n_params + 1. */
size_t mfl_secagg_update_words(const mfl_aggregate_t *agg);

/* out[j] = round(w·Δⱼ·2^F) as two's complement for j < n_params, and
 * out[n_params] = round(w·2^8); the same checks as mfl_aggregate_add (a
 * term beyond the product bound, NaN/Inf, a bad weight: -1 with err). The
 * site runs this on its own, clipped, update. */
int mfl_secagg_update_encode(const mfl_aggregate_t *agg, const float *delta, double weight,
                             uint64_t *out, char *err, size_t errlen);

/* Folds the unmasked sum of `count` encoded updates (n_params + 1 words,
 * borrowed) into `agg`, as mfl_aggregate_add_sum. 0 or -1 with err. */
int mfl_secagg_update_fold(mfl_aggregate_t *agg, const uint64_t *sum, size_t count, char *err,
                           size_t errlen);

#endif
