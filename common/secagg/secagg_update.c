/* Encoding updates for secure aggregation (see secagg_update.h). */
#include "secagg/secagg_update.h"

#include <math.h>
#include <string.h>

#include "core/log.h"
#include "secagg/secagg_msg.h"

/* log2 of MFL_SECAGG_NARROW_MAX_SITES: the sites a 32-bit sum must hold. */
#define S_NARROW_LOG_SITES 6

unsigned mfl_secagg_update_frac_bits(double bound)
{
    if (!(bound > 0) || !isfinite(bound))
        return 0;
    int e; /* bound = m · 2^e, m in [0.5, 1): 2^k ≥ bound iff k ≥ ceil(log2 bound) */
    double m = frexp(bound, &e);
    int k = m == 0.5 ? e - 1 : e;
    int f = 32 - 2 - S_NARROW_LOG_SITES - k;
    if (f > MFL_SECAGG_MAX_FRAC_BITS)
        f = MFL_SECAGG_MAX_FRAC_BITS;
    return f < MFL_SECAGG_MIN_FRAC_BITS ? 0 : (unsigned)f;
}

mfl_aggregate_t *mfl_secagg_update_aggregate(size_t n_params, unsigned word_bits,
                                             unsigned frac_bits)
{
    if (word_bits == 0 || word_bits == 64)
        return frac_bits == 0 || frac_bits == MFL_AGGREGATE_FRAC_BITS ? mfl_aggregate_new(n_params)
                                                                      : NULL;
    if (word_bits != 32 || frac_bits < MFL_SECAGG_MIN_FRAC_BITS ||
        frac_bits > MFL_SECAGG_MAX_FRAC_BITS)
        return NULL;
    return mfl_aggregate_new_bounded(n_params, frac_bits, MFL_SECAGG_NARROW_MAX_SITES, 32);
}

size_t mfl_secagg_update_words(const mfl_aggregate_t *agg)
{
    return mfl_aggregate_n_params(agg) + 1;
}

unsigned mfl_secagg_update_word_bits(const mfl_aggregate_t *agg)
{
    return mfl_aggregate_sum_bits(agg) <= 32 ? 32 : 64;
}

int mfl_secagg_update_encode(const mfl_aggregate_t *agg, const float *delta, double weight,
                             void *out, char *err, size_t errlen)
{
    const size_t n = mfl_aggregate_n_params(agg);
    uint64_t wq;
    if (mfl_secagg_update_word_bits(agg) == 32) {
        uint32_t *w = out;
        if (mfl_aggregate_quantise32(agg, delta, weight, w, &wq, err, errlen) < 0)
            return -1;
        w[n] = (uint32_t)wq; /* ≤ 2^24 (the weight bound) */
        return 0;
    }
    uint64_t *w = out;
    /* int64 and uint64 have the same size and alignment, and the int64
     * terms read as uint64 are their values mod 2^64 (C11 6.2.6.2). */
    if (mfl_aggregate_quantise(agg, delta, weight, (int64_t *)w, &wq, err, errlen) < 0)
        return -1;
    w[n] = wq;
    return 0;
}

int mfl_secagg_update_fold(mfl_aggregate_t *agg, const void *sum, size_t count, char *err,
                           size_t errlen)
{
    const size_t n = mfl_aggregate_n_params(agg);
    if (mfl_secagg_update_word_bits(agg) == 32) {
        const uint32_t *w = sum;
        return mfl_aggregate_add_sum32(agg, w, w[n], count, err, errlen);
    }
    const uint64_t *w = sum;
    return mfl_aggregate_add_sum(agg, (const int64_t *)w, w[n], count, err, errlen);
}
