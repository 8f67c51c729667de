/* A model update as secure aggregation carries it: the fixed-point terms
 * of the aggregator (fed/aggregate.h) plus the quantised weight, as
 * n_params + 1 words mod 2^b, b the word width: 64 (uint64_t words, the
 * default aggregate, F = 30) or 32 (uint32_t words, an aggregate bounded to
 * 32-bit sums: mfl_secagg_update_aggregate). Masks are added to these
 * words; the unmasked sum of several updates, folded back, gives a mean
 * bit-identical to adding the same updates in clear to an aggregator with
 * the same quantisation (the terms are the same pure functions of (Δ, w),
 * and the bound of that aggregator keeps every sum, and so its b-bit
 * two's complement reading, exact: see "Narrower sums" in fed/aggregate.h).
 * The coordinator learns Σ w, not each site's sample count. */
#ifndef MFL_SECAGG_UPDATE_H
#define MFL_SECAGG_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "fed/aggregate.h"

/* The fractional bits F of a 32-bit-word aggregate for a bound B on every
 * |w·Δⱼ|: the most that keep 2^(32 − 2 − 6 − F) ≥ B (6 = log2 of
 * MFL_SECAGG_NARROW_MAX_SITES), at most MFL_SECAGG_MAX_FRAC_BITS (then the
 * bound in force is 1 ≥ B). Returns it, or 0 if fewer than
 * MFL_SECAGG_MIN_FRAC_BITS remain (B above 2^16) or B is not a positive
 * finite number. */
#define MFL_SECAGG_MIN_FRAC_BITS 8
#define MFL_SECAGG_MAX_FRAC_BITS 24 /* 32 − 2 − 6: the product bound stays ≥ 1 */
unsigned mfl_secagg_update_frac_bits(double bound);

/* The aggregate a round with `word_bits` words uses, at the coordinator and
 * at every site (they must agree bit for bit): 64 (or 0): mfl_aggregate_new
 * (F = 30, 4096 updates, |w·Δ| ≤ 2^20, w ≤ 2^32; frac_bits must be 0 or
 * 30); 32: mfl_aggregate_new_bounded(n_params, frac_bits, 64, 32) with F
 * in 8..24, whose product bound is 2^(24 − F) and weight bound 2^16. NULL on bad arguments
 * or out of memory. */
mfl_aggregate_t *mfl_secagg_update_aggregate(size_t n_params, unsigned word_bits,
                                             unsigned frac_bits);

/* Words of an encoded update for `agg`: n_params + 1. */
size_t mfl_secagg_update_words(const mfl_aggregate_t *agg);

/* The word width an update for `agg` travels in: 32 if its sums fit 32
 * bits (mfl_aggregate_sum_bits), else 64. */
unsigned mfl_secagg_update_word_bits(const mfl_aggregate_t *agg);

/* out[j] = round(w·Δⱼ·2^F) as two's complement mod 2^b for j < n_params,
 * and out[n_params] = round(w·2^8); `out` is n_params + 1 words of
 * mfl_secagg_update_word_bits(agg) (uint64_t or uint32_t). The same checks
 * as mfl_aggregate_add (a term beyond the product bound, a weight beyond
 * the weight bound, NaN/Inf: -1 with err). The site runs this on its own,
 * clipped, update. */
int mfl_secagg_update_encode(const mfl_aggregate_t *agg, const float *delta, double weight,
                             void *out, char *err, size_t errlen);

/* Folds the unmasked sum of `count` encoded updates (n_params + 1 words of
 * the same width, borrowed) into `agg`, as mfl_aggregate_add_sum. 0 or -1
 * with err. */
int mfl_secagg_update_fold(mfl_aggregate_t *agg, const void *sum, size_t count, char *err,
                           size_t errlen);

#endif
