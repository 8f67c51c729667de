/* A streaming, order-independent weighted mean of parameter deltas:
 *   mean = Σ wᵢ Δᵢ / Σ wᵢ
 *
 * Why fixed point: float or double sums depend on the order updates arrive
 * in, so two runs of the same rounds would drift apart. Here every update is
 * quantised on its own (a pure function of that update) and summed exactly
 * in 64-bit integers, so the mean is bit-identical whatever the arrival
 * order, and the representation is the one secure aggregation's modular
 * masks need. Memory is O(P) (one int64 per parameter) for any number of
 * sites.
 *
 * Quantisation (defaults; see mfl_aggregate_new_fixed):
 *   weight:  wq = round(w · 2^8), so Σ wq is exact; the effective weight is
 *            wq / 2^8 (e.g. sample counts are exact; 1/3 becomes 85/256).
 *   product: pᵢⱼ = round((wqᵢ / 2^8) · Δᵢⱼ · 2^F), F = frac_bits = 30.
 *   sum:     Sⱼ = Σᵢ pᵢⱼ, exact in int64.
 *   mean:    Sⱼ / 2^F / (Σ wq / 2^8), computed in double, rounded to float.
 * Error against the exact weighted mean: at most count · 2^-(F+1) / Σ w per
 * parameter (≤ 2^-31 ≈ 4.7e-10 when every weight ≥ 1), plus the final
 * rounding to float.
 *
 * Overflow bound (why it can never overflow): an update is rejected unless
 * every |w · Δⱼ| ≤ MFL_AGGREGATE_MAX_PRODUCT = 2^(62 − F − log2 max_updates)
 * (default 2^(62−30−12) = 2^20 ≈ 1.05e6, e.g. 60000 samples × |Δ| ≤ 17),
 * and at most max_updates (default 4096) updates may be added before a
 * reset; so |Sⱼ| ≤ 2^62 + 2^12 < 2^63 always (a factor 2 to spare). The
 * weight must be finite, ≥ 2^-8 after quantisation and ≤ 2^32.
 *
 * Narrower sums (mfl_aggregate_new_bounded, for secure aggregation's 32-bit
 * words, docs/SECAGG.md): the same argument with b bits instead of 64. With
 * L = ceil(log2 max_updates), terms are bounded by 2^(b − 2 − L) (the
 * product bound becomes 2^(b − 2 − F − L)) and quantised weights by the
 * same (the weight bound becomes 2^(b − 2 − 8 − L), at most 2^32), so
 * |Sⱼ| ≤ 2^(b − 2) < 2^(b − 1) and Σ wq < 2^(b − 2): every sum is exact
 * read from b bits as two's complement, e.g. after adding terms mod 2^b.
 * b = 64 is the default above.
 *
 * Not thread-safe: the caller serialises calls on one aggregator. */
#ifndef MFL_FED_AGGREGATE_H
#define MFL_FED_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#define MFL_AGGREGATE_FRAC_BITS     30       /* F: fractional bits of w·Δ */
#define MFL_AGGREGATE_WEIGHT_BITS   8        /* fractional bits of a weight */
#define MFL_AGGREGATE_MAX_UPDATES   4096     /* default updates per reset */
#define MFL_AGGREGATE_MAX_WEIGHT    4294967296.0 /* 2^32 */
#define MFL_AGGREGATE_MAX_PRODUCT   1048576.0    /* 2^20: default bound on |w·Δⱼ| */

typedef struct mfl_aggregate mfl_aggregate_t;

/* A new aggregator for vectors of `n_params` floats with the default
 * quantisation above; NULL if n_params == 0 or out of memory. */
mfl_aggregate_t *mfl_aggregate_new(size_t n_params);

/* As mfl_aggregate_new with explicit `frac_bits` (F, 8..52) and
 * `max_updates` (1..2^20); the product bound becomes
 * 2^(62 − F − ceil(log2 max_updates)). NULL if that leaves no room (< 1) or
 * on bad arguments. */
mfl_aggregate_t *mfl_aggregate_new_fixed(size_t n_params, unsigned frac_bits,
                                         uint32_t max_updates);

/* As mfl_aggregate_new_fixed for sums that must fit `sum_bits` (32..64)
 * bits (see "Narrower sums" above): product bound 2^(sum_bits − 2 − F −
 * ceil(log2 max_updates)), weight bound min(2^32, 2^(sum_bits − 10 −
 * ceil(log2 max_updates))). sum_bits 64 is mfl_aggregate_new_fixed. NULL
 * on bad arguments or if either bound would be below 1. */
mfl_aggregate_t *mfl_aggregate_new_bounded(size_t n_params, unsigned frac_bits,
                                           uint32_t max_updates, unsigned sum_bits);

/* Frees; accepts NULL and *self_p == NULL; nulls *self_p. */
void mfl_aggregate_destroy(mfl_aggregate_t **self_p);

/* Folds in one update: `delta` (n_params floats, borrowed, only read during
 * the call) with `weight` (e.g. the site's sample count). All or nothing:
 * returns 0, or -1 and leaves the aggregate unchanged if the weight is not
 * finite / out of range, any Δⱼ is NaN or ±Inf (err names the index), any
 * |w·Δⱼ| exceeds the product bound, or max_updates were already added. */
int mfl_aggregate_add(mfl_aggregate_t *self, const float *delta, double weight, char *err,
                      size_t errlen);

/* One piece of an update: `count` floats at `data` (borrowed, only read
 * during the call) that belong at parameters [offset, offset + count). */
typedef struct {
    size_t offset;
    const float *data;
    size_t count;
} mfl_aggregate_part_t;

/* As mfl_aggregate_add, for an update that arrives in pieces (the tensors
 * of a received message): folds each part in place, so the caller needs no
 * flat copy of Δ (4·P bytes less at the coordinator's peak). The parts must
 * be disjoint and cover [0, n_params) exactly once; -1 (err says which) if
 * one lies outside or their counts do not add up to n_params (overlaps are
 * the caller's to rule out: the engine's layout is a partition). Same
 * quantisation per element, so the sums are bit-identical to
 * mfl_aggregate_add of the flat Δ. All or nothing: on any failure every
 * part already folded is taken out again; err names the flat index. */
int mfl_aggregate_add_parts(mfl_aggregate_t *self, const mfl_aggregate_part_t *parts,
                            size_t n_parts, double weight, char *err, size_t errlen);

/* Reads n floats of an update at parameters [offset, offset + n) into
 * out: 0, or -1 (err says why, e.g. an I/O error). */
typedef int(mfl_aggregate_read_fn)(void *ctx, size_t offset, float *out, size_t n, char *err,
                                   size_t errlen);

/* As mfl_aggregate_add, for an update that is not in memory (a chunked
 * upload spooled to disk): reads it through `read` in blocks of buf_n
 * floats into `buf` (the caller's, buf_n ≥ 1) and folds each block, so
 * only buf is held. Same quantisation per element: bit-identical to
 * mfl_aggregate_add of the same values. All or nothing: on any failure
 * (a value refused, or a read failing) the blocks already folded are read
 * again and taken out exactly. 0, or -1 with err. */
int mfl_aggregate_add_read(mfl_aggregate_t *self, mfl_aggregate_read_fn *read, void *ctx,
                           float *buf, size_t buf_n, double weight, char *err, size_t errlen);

/* Takes back an update mfl_aggregate_add_read accepted with the same
 * reader and weight (as mfl_aggregate_remove_parts). 0, or -1 (the
 * aggregate holds no update, the weight is out of range, or a read failed:
 * then the sums are NOT restored and the aggregate must be discarded). */
int mfl_aggregate_remove_read(mfl_aggregate_t *self, mfl_aggregate_read_fn *read, void *ctx,
                              float *buf, size_t buf_n, double weight);

/* The fixed-point terms one update would add, without adding them: writes
 * out[j] = round(w·Δⱼ·2^F) for the n_params parameters and *weight_q =
 * round(w·2^8), with exactly the checks and quantisation of
 * mfl_aggregate_add (same err texts). Secure aggregation masks these terms
 * at the site; the unmasked sum, given to mfl_aggregate_add_sum, makes a
 * mean bit-identical to adding each update here. `self` is only read (its
 * F and product bound; its count is not checked). Returns 0, or -1 with
 * out's contents unspecified. */
int mfl_aggregate_quantise(const mfl_aggregate_t *self, const float *delta, double weight,
                           int64_t *out, uint64_t *weight_q, char *err, size_t errlen);

/* Folds in `count` updates already quantised (mfl_aggregate_quantise) and
 * summed exactly: `sum` (n_params int64, borrowed) is Σ out and `weight_q`
 * Σ weight_q over those updates. -1 (aggregate unchanged) if count is 0,
 * would pass max_updates, or weight_q is outside [count, count·2^40]. The
 * caller vouches that the sum is of accepted terms (the overflow bound
 * holds then). */
int mfl_aggregate_add_sum(mfl_aggregate_t *self, const int64_t *sum, uint64_t weight_q,
                          size_t count, char *err, size_t errlen);

/* As mfl_aggregate_quantise, for an aggregate whose sums fit 32 bits
 * (mfl_aggregate_new_bounded with sum_bits 32; -1 for any other): writes
 * each term mod 2^32 (the same term, which the bound keeps below 2^30 in
 * magnitude) into out[n_params]. Same checks and err texts. */
int mfl_aggregate_quantise32(const mfl_aggregate_t *self, const float *delta, double weight,
                             uint32_t *out, uint64_t *weight_q, char *err, size_t errlen);

/* As mfl_aggregate_add_sum for a sum of such terms taken mod 2^32 (`sum`,
 * n_params words, borrowed): each word read as two's complement is the
 * exact sum when the terms are accepted ones of at most max_updates
 * updates (the bound). -1 if the aggregate's sums do not fit 32 bits, or
 * as add_sum. */
int mfl_aggregate_add_sum32(mfl_aggregate_t *self, const uint32_t *sum, uint64_t weight_q,
                            size_t count, char *err, size_t errlen);

/* Takes back an update that mfl_aggregate_add_parts accepted with these
 * same parts and weight (the caller could not record it): subtracts
 * exactly what was added, so the sums are as if it never came. Only for
 * the last such update or any earlier one still held (fixed point: order
 * does not matter). 0, or -1 if the aggregate holds no update or the
 * weight is out of range. */
int mfl_aggregate_remove_parts(mfl_aggregate_t *self, const mfl_aggregate_part_t *parts,
                               size_t n_parts, double weight);

/* Number of updates folded in since new/reset. */
size_t mfl_aggregate_count(const mfl_aggregate_t *self);

/* Σ of effective (quantised) weights since new/reset. Exact. */
double mfl_aggregate_total_weight(const mfl_aggregate_t *self);

/* Vector length given at creation. */
size_t mfl_aggregate_n_params(const mfl_aggregate_t *self);

/* The product bound |w·Δⱼ| in force (see above). */
double mfl_aggregate_max_product(const mfl_aggregate_t *self);

/* The weight bound in force (2^32 unless the sums are narrower). */
double mfl_aggregate_max_weight(const mfl_aggregate_t *self);

/* The bits every sum fits (64 unless mfl_aggregate_new_bounded said
 * less), and F. */
unsigned mfl_aggregate_sum_bits(const mfl_aggregate_t *self);
unsigned mfl_aggregate_frac_bits(const mfl_aggregate_t *self);

/* Writes the weighted mean (n_params floats) into `out` (caller's buffer).
 * Returns 0, or -1 if nothing was added (count 0): out is then untouched.
 * Bit-identical for the same multiset of (Δ, w), in any order. */
int mfl_aggregate_mean(const mfl_aggregate_t *self, float *out);

/* The same mean, bit for bit, written over the sums' own storage (the
 * first 4·n_params of its 8·n_params bytes) and returned there: no second
 * P-float buffer at the round's close (the coordinator's peak at large
 * P). The sums are gone afterwards: until mfl_aggregate_reset, adding,
 * removing, mean and mean_in_place refuse (-1 / NULL); count and total
 * weight still answer. NULL if nothing was added. The pointer is valid
 * until reset or destroy. */
float *mfl_aggregate_mean_in_place(mfl_aggregate_t *self);

/* Forgets all updates (sums, count, weight); keeps the allocation. */
void mfl_aggregate_reset(mfl_aggregate_t *self);

/* Forgets all updates and frees the sums' storage (8 bytes a parameter);
 * the next add allocates it again, zeroed. For a large model between
 * rounds: the sums then take no memory while θ is copied and broadcast.
 * A mean_in_place pointer is invalid afterwards. */
void mfl_aggregate_release(mfl_aggregate_t *self);

#endif
