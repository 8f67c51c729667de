/* Passes over a float vector that run on every parameter of every update
 * (site: Δ's norm, θ's finiteness; coordinator: each update's norm and
 * finiteness), written so the compiler vectorises them: a plain running
 * double sum is latency-bound (one dependent add per element, ≈ 1 ms per
 * 1M floats here) and an early-exit finiteness loop stays scalar. */
#ifndef MFL_FED_VEC_H
#define MFL_FED_VEC_H

#include <stddef.h>

/* Σ v[i]² in double, accumulated in 8 interleaved partial sums combined in
 * a fixed order: deterministic for a given n (the same on every run and
 * build of this code), but not bit-equal to a sequential sum. NaN/Inf
 * propagate. */
double mfl_vec_sumsq(const float *v, size_t n);

/* Copies src[0..n) to dst (which must not overlap it) and returns Σ src[i]²
 * as mfl_vec_sumsq, in the same pass. The sum is finite exactly when every
 * element is (float squares cannot overflow a double sum of < 2^900
 * terms), so a non-finite result is the finiteness check. */
double mfl_vec_copy_sumsq(float *restrict dst, const float *restrict src, size_t n);

/* Index of the first NaN or ±Inf in v[0..n), or n if all are finite. */
size_t mfl_vec_first_nonfinite(const float *v, size_t n);

#endif
