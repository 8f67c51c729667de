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

/* mfl_vec_sumsq of a vector that comes as consecutive runs (a received
 * update left in its frames): init, add each run in order, end. Element i
 * of the whole goes to partial sum i mod 8 in index order, exactly as in
 * mfl_vec_sumsq, so the result is bit-identical to mfl_vec_sumsq of the
 * runs' concatenation however they are cut. */
typedef struct {
    double acc[8];
    size_t n; /* elements added so far */
} mfl_vec_sumsq_t;
void mfl_vec_sumsq_init(mfl_vec_sumsq_t *s);
void mfl_vec_sumsq_add(mfl_vec_sumsq_t *s, const float *v, size_t n);
double mfl_vec_sumsq_end(const mfl_vec_sumsq_t *s);

/* Copies src[0..n) to dst (which must not overlap it) and returns Σ src[i]²
 * as mfl_vec_sumsq, in the same pass. The sum is finite exactly when every
 * element is (float squares cannot overflow a double sum of < 2^900
 * terms), so a non-finite result is the finiteness check. */
double mfl_vec_copy_sumsq(float *restrict dst, const float *restrict src, size_t n);

/* Index of the first NaN or ±Inf in v[0..n), or n if all are finite. */
size_t mfl_vec_first_nonfinite(const float *v, size_t n);

#endif
