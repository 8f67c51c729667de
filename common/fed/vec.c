/* Vectorisable passes over float vectors (see vec.h). */
#include "fed/vec.h"

#include <stdint.h>
#include <string.h>

/* GCC's -O2 cost model leaves these loops scalar; the attribute asks for
 * vectorisation of just these (clang vectorises them at -O2 anyway). */
#if defined(__GNUC__) && !defined(__clang__)
#define S_VECTORISE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define S_VECTORISE
#endif

#define S_LANES 8
#define S_BLOCK 1024 /* floats checked branch-free before looking closer */

S_VECTORISE double mfl_vec_sumsq(const float *v, size_t n)
{
    double acc[S_LANES] = {0};
    size_t i = 0;
    for (; i + S_LANES <= n; i += S_LANES)
        for (size_t k = 0; k < S_LANES; k++)
            acc[k] += (double)v[i + k] * (double)v[i + k];
    for (size_t k = 0; i < n; i++, k++)
        acc[k] += (double)v[i] * (double)v[i];
    /* fixed pairwise order */
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

void mfl_vec_sumsq_init(mfl_vec_sumsq_t *s) { memset(s, 0, sizeof *s); }

S_VECTORISE void mfl_vec_sumsq_add(mfl_vec_sumsq_t *s, const float *v, size_t n)
{
    double acc[S_LANES];
    memcpy(acc, s->acc, sizeof acc);
    size_t i = 0;
    for (; i < n && (s->n + i) % S_LANES != 0; i++) /* up to the next lane 0 */
        acc[(s->n + i) % S_LANES] += (double)v[i] * (double)v[i];
    for (; i + S_LANES <= n; i += S_LANES)
        for (size_t k = 0; k < S_LANES; k++)
            acc[k] += (double)v[i + k] * (double)v[i + k];
    for (size_t k = 0; i < n; i++, k++)
        acc[k] += (double)v[i] * (double)v[i];
    memcpy(s->acc, acc, sizeof acc);
    s->n += n;
}

double mfl_vec_sumsq_end(const mfl_vec_sumsq_t *s)
{
    const double *acc = s->acc;
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

S_VECTORISE double mfl_vec_copy_sumsq(float *restrict dst, const float *restrict src, size_t n)
{
    double acc[S_LANES] = {0};
    size_t i = 0;
    for (; i + S_LANES <= n; i += S_LANES)
        for (size_t k = 0; k < S_LANES; k++) {
            float x = src[i + k];
            dst[i + k] = x;
            acc[k] += (double)x * (double)x;
        }
    for (size_t k = 0; i < n; i++, k++) {
        dst[i] = src[i];
        acc[k] += (double)src[i] * (double)src[i];
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* 1 if some float in v[0..n) has an all-ones exponent (NaN or ±Inf). */
S_VECTORISE static int s_block_has_nonfinite(const float *v, size_t n)
{
    uint32_t any = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], sizeof b);
        any |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
    }
    return any != 0;
}

size_t mfl_vec_first_nonfinite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i += S_BLOCK) {
        size_t m = n - i < S_BLOCK ? n - i : S_BLOCK;
        if (!s_block_has_nonfinite(v + i, m))
            continue;
        for (size_t j = i; j < i + m; j++) {
            uint32_t b;
            memcpy(&b, &v[j], sizeof b);
            if ((b & 0x7f800000u) == 0x7f800000u)
                return j;
        }
    }
    return n;
}
