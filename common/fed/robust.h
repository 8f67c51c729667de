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

#endif
