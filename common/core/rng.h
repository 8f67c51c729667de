/* Deterministic pseudo-random numbers for training (not for keys or privacy
 * noise: those use libsodium's CSPRNG).
 *
 * xoshiro256** seeded through splitmix64 from (seed, stream), so every task,
 * site and round can own an independent, reproducible stream:
 * mfl_rng_seed(&r, run_seed, round * 1000003 + site_index). A plain struct on
 * the stack; not shared between threads. */
#ifndef MFL_CORE_RNG_H
#define MFL_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} mfl_rng_t;

/* Seeds `self` from a seed and a stream id; equal inputs give equal streams. */
void mfl_rng_seed(mfl_rng_t *self, uint64_t seed, uint64_t stream);

/* The next 64 random bits. */
uint64_t mfl_rng_u64(mfl_rng_t *self);

/* Uniform in [0, 1) with 24 bits of precision (float) or 53 (double). */
float mfl_rng_uniform(mfl_rng_t *self);
double mfl_rng_uniform_double(mfl_rng_t *self);

/* Fills out[n] with the next n values of mfl_rng_uniform_double, exactly
 * (the same values, the same state afterwards), at a fraction of the cost
 * of n calls: for loops that need one draw per element. */
void mfl_rng_uniform_double_fill(mfl_rng_t *self, double *out, size_t n);

/* Uniform in [lo, hi). */
float mfl_rng_range(mfl_rng_t *self, float lo, float hi);

/* Standard normal (Box-Muller, double precision internally). */
float mfl_rng_normal(mfl_rng_t *self);

/* Uniform integer in [0, n); n must be > 0. Unbiased (rejection). */
uint64_t mfl_rng_below(mfl_rng_t *self, uint64_t n);

/* Fisher-Yates shuffle of `n` size_t values in place. */
void mfl_rng_shuffle(mfl_rng_t *self, size_t *values, size_t n);

#endif
