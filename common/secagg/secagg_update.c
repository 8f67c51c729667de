/* Encoding updates for secure aggregation (see secagg_update.h). */
#include "secagg/secagg_update.h"

#include <string.h>

size_t mfl_secagg_update_words(const mfl_aggregate_t *agg)
{
    return mfl_aggregate_n_params(agg) + 1;
}

int mfl_secagg_update_encode(const mfl_aggregate_t *agg, const float *delta, double weight,
                             uint64_t *out, char *err, size_t errlen)
{
    const size_t n = mfl_aggregate_n_params(agg);
    uint64_t wq;
    /* int64 and uint64 have the same size and alignment, and the int64
     * terms read as uint64 are their values mod 2^64 (C11 6.2.6.2). */
    if (mfl_aggregate_quantise(agg, delta, weight, (int64_t *)out, &wq, err, errlen) < 0)
        return -1;
    out[n] = wq;
    return 0;
}

int mfl_secagg_update_fold(mfl_aggregate_t *agg, const uint64_t *sum, size_t count, char *err,
                           size_t errlen)
{
    const size_t n = mfl_aggregate_n_params(agg);
    return mfl_aggregate_add_sum(agg, (const int64_t *)sum, sum[n], count, err, errlen);
}
