/* The compressed broadcast's difference encoder (see bcast.h). */
#include "fed/bcast.h"

#include <string.h>

/* Elements per piece: the difference is made, encoded, decoded and added
 * piece by piece on the stack, so no θ-sized scratch is needed (a multiple
 * of MFL_QUANT_BLOCK: the codes are those of the whole tensor's encoding). */
#define S_PIECE (16 * MFL_QUANT_BLOCK)

static uint32_t s_abs_bits(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b & 0x7fffffffu;
}

int mfl_bcast_encode(mfl_quant_kind_t kind, const float *theta, float *theta_hat, size_t n,
                     mfl_rng_t *rng, void *out, float *scale)
{
    if (kind != MFL_QUANT_FP16 && kind != MFL_QUANT_INT8)
        return -1;
    float d[S_PIECE];
    /* First pass: every d finite (else θ̂ stays as it is) and max |d|
     * (finite non-negative floats order as their bits). */
    uint32_t maxbits = 0, bad = 0;
    for (size_t i = 0; i < n; i += S_PIECE) {
        size_t m = n - i < S_PIECE ? n - i : S_PIECE;
        for (size_t j = 0; j < m; j++) {
            uint32_t a = s_abs_bits(theta[i + j] - theta_hat[i + j]);
            bad |= a >= 0x7f800000u;
            maxbits = a > maxbits ? a : maxbits;
        }
    }
    if (bad)
        return -1;
    float maxabs;
    memcpy(&maxabs, &maxbits, 4);
    float s = kind == MFL_QUANT_INT8 ? mfl_quant_int8_scale(maxabs) : 1.0f;
    *scale = s;
    for (size_t i = 0; i < n; i += S_PIECE) {
        size_t m = n - i < S_PIECE ? n - i : S_PIECE;
        void *q = (unsigned char *)out + mfl_quant_bytes(kind, i);
        for (size_t j = 0; j < m; j++)
            d[j] = theta[i + j] - theta_hat[i + j];
        if (mfl_quant_encode_scaled(kind, d, m, s, rng, q) < 0 ||
            mfl_quant_decode(kind, q, m, s, d) < 0)
            return -1; /* cannot happen: every d is finite, and so is s */
        mfl_bcast_apply(theta_hat + i, d, m);
    }
    return 0;
}

void mfl_bcast_apply(float *held, const float *decoded, size_t n)
{
    for (size_t i = 0; i < n; i++)
        held[i] += decoded[i];
}
