/* Robust aggregation of K site deltas, coordinate by coordinate: the median
 * and the trimmed mean (Yin et al. 2018). They bound what a few poisoned or
 * broken updates can do to the mean, at the price of keeping all K updates
 * (O(K·P) memory, unlike the streaming aggregate.h) and ignoring weights.
 *
 * Both sort each coordinate's K values, so the result does not depend on
 * the order of the updates: bit-identical for any permutation. Not
 * thread-safe per call (uses a caller-sized scratch it allocates). */
#ifndef MFL_FED_ROBUST_H
#define MFL_FED_ROBUST_H

#include <stddef.h>

/* out[j] = median over i of deltas[i][j] (the mean of the two middle values
 * for even K). `deltas` holds K pointers to n floats each (borrowed).
 * Returns 0, or -1 with err if K == 0, n == 0, a value is NaN/Inf (err names
 * update and index) or out of memory. */
int mfl_robust_median(const float *const *deltas, size_t k, size_t n, float *out, char *err,
                      size_t errlen);

/* out[j] = mean of deltas[·][j] after dropping the `trim` smallest and the
 * `trim` largest values. Needs 2·trim < K. trim = 0 is the plain unweighted
 * mean (summed in sorted order, in double). Returns 0, or -1 with err as for
 * mfl_robust_median or if 2·trim ≥ K. */
int mfl_robust_trimmed_mean(const float *const *deltas, size_t k, size_t n, size_t trim,
                            float *out, char *err, size_t errlen);

/* Multi-Krum (Blanchard et al. 2017): each update's score is the sum of
 * its squared L2 distances to its k − f − 2 nearest other updates; the m
 * updates with the lowest scores (ties: lower index) are averaged,
 * unweighted, in index order (double sums). Tolerates f Byzantine updates
 * among k; needs k ≥ 2f + 3 and 1 ≤ m ≤ k. chosen[0..m), if non-NULL,
 * gets the indices of the averaged updates in increasing order. The result
 * depends on the order of `deltas` only through ties: pass them in a fixed
 * order (the engine uses site-id order). O(k²·n) time. 0, or -1 with err
 * (bad k, f, m; non-finite value; out of memory). */
int mfl_robust_multi_krum(const float *const *deltas, size_t k, size_t n, size_t f, size_t m,
                          float *out, size_t *chosen, char *err, size_t errlen);

/* The coordinator's aggregation rule (server.aggregator). */
typedef enum {
    MFL_AGG_MEAN = 0,       /* weighted mean, streaming fixed point (aggregate.h) */
    MFL_AGG_MEDIAN,         /* coordinate-wise median */
    MFL_AGG_TRIMMED_MEAN,   /* coordinate-wise trimmed mean */
    MFL_AGG_MULTI_KRUM,     /* Multi-Krum */
} mfl_agg_kind_t;

/* "mean", "median", "trimmed_mean", "multi_krum"; parse: 0 or -1. */
const char *mfl_agg_kind_name(mfl_agg_kind_t kind);
int mfl_agg_kind_parse(const char *text, mfl_agg_kind_t *kind);

#endif
