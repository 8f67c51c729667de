/* The compressed broadcast's difference encoder (see bcast.h). */
#include "fed/bcast.h"

int mfl_bcast_encode(mfl_quant_kind_t kind, const float *theta, float *theta_hat, size_t n,
                     mfl_rng_t *rng, void *out, float *scale, float *work)
{
    if (kind != MFL_QUANT_FP16 && kind != MFL_QUANT_INT8)
        return -1;
    for (size_t i = 0; i < n; i++)
        work[i] = theta[i] - theta_hat[i];
    if (mfl_quant_encode(kind, work, n, NULL, rng, out, scale) < 0 ||
        mfl_quant_decode(kind, out, n, *scale, work) < 0)
        return -1;
    mfl_bcast_apply(theta_hat, work, n);
    return 0;
}

void mfl_bcast_apply(float *held, const float *decoded, size_t n)
{
    for (size_t i = 0; i < n; i++)
        held[i] += decoded[i];
}
