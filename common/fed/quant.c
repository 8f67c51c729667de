/* fp16 / int8 encodings of an update with stochastic rounding and error
 * feedback (see quant.h). */
#include "fed/quant.h"

#include <math.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "writes fp32/fp16 codes in host order: needs a little-endian host"
#endif

#define S_F16_MAX 65504.0f
#define S_F16_MAX_CODE 0x7bffu

int mfl_quant_parse(const char *text, mfl_quant_kind_t *kind)
{
    if (!text)
        return -1;
    if (strcmp(text, "fp32") == 0)
        *kind = MFL_QUANT_FP32;
    else if (strcmp(text, "fp16") == 0)
        *kind = MFL_QUANT_FP16;
    else if (strcmp(text, "int8") == 0)
        *kind = MFL_QUANT_INT8;
    else
        return -1;
    return 0;
}

const char *mfl_quant_name(mfl_quant_kind_t kind)
{
    switch (kind) {
    case MFL_QUANT_FP32: return "fp32";
    case MFL_QUANT_FP16: return "fp16";
    case MFL_QUANT_INT8: return "int8";
    }
    return "?";
}

size_t mfl_quant_bytes(mfl_quant_kind_t kind, size_t n)
{
    switch (kind) {
    case MFL_QUANT_FP32: return 4 * n;
    case MFL_QUANT_FP16: return 2 * n;
    case MFL_QUANT_INT8: return n;
    }
    return 0;
}

static uint32_t s_bits(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

static float s_float(uint32_t b)
{
    float x;
    memcpy(&x, &b, 4);
    return x;
}

float mfl_quant_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) { /* zero or subnormal: m · 2^-24, exact in float */
        float v = (float)m * 5.9604644775390625e-8f;
        return s_float(s_bits(v) | sign);
    }
    if (e == 31) /* infinity or NaN (payload kept) */
        return s_float(sign | 0x7f800000u | (m << 13));
    return s_float(sign | ((e + 112u) << 23) | (m << 13));
}

/* The largest half code whose value is ≤ a (a finite, 0 ≤ a < 65504). */
static uint16_t s_f16_floor(float a)
{
    uint32_t b = s_bits(a);
    uint32_t e32 = b >> 23;
    if (e32 >= 113u) /* a ≥ 2^-14: normal half, drop 13 mantissa bits */
        return (uint16_t)(((e32 - 112u) << 10) | ((b >> 13) & 0x3ffu));
    return (uint16_t)(a * 16777216.0f); /* subnormal: a · 2^24 < 1024, exact, truncated */
}

uint16_t mfl_quant_f32_to_f16(float x, double u)
{
    uint16_t sign = signbit(x) ? 0x8000u : 0;
    float a = fabsf(x);
    if (!(a < S_F16_MAX)) /* also catches a NaN, which callers refuse first */
        return (uint16_t)(sign | S_F16_MAX_CODE);
    uint16_t lo = s_f16_floor(a);
    double vlo = mfl_quant_f16_to_f32(lo);
    if (vlo == (double)a)
        return (uint16_t)(sign | lo);
    double vhi = mfl_quant_f16_to_f32((uint16_t)(lo + 1));
    double p = ((double)a - vlo) / (vhi - vlo);
    return (uint16_t)(sign | (u < p ? lo + 1 : lo));
}

/* v = x + residual (or x), checked finite. */
static int s_value(const float *x, const float *residual, size_t i, float *v)
{
    *v = residual ? x[i] + residual[i] : x[i];
    return isfinite(*v) ? 0 : -1;
}

static int s_encode_fp32(const float *x, size_t n, float *residual, float *out)
{
    for (size_t i = 0; i < n; i++) {
        if (s_value(x, residual, i, &out[i]))
            return -1;
        if (residual)
            residual[i] = 0;
    }
    return 0;
}

static int s_encode_fp16(const float *x, size_t n, float *residual, mfl_rng_t *rng,
                         uint16_t *out)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        if (s_value(x, residual, i, &v))
            return -1;
        uint16_t h = mfl_quant_f32_to_f16(v, mfl_rng_uniform_double(rng));
        out[i] = h;
        if (residual)
            residual[i] = v - mfl_quant_f16_to_f32(h);
    }
    return 0;
}

static float s_int8_value(int8_t code, float scale) { return (float)code * scale; }

static int s_encode_int8(const float *x, size_t n, float *residual, mfl_rng_t *rng,
                         int8_t *out, float *scale)
{
    float maxabs = 0;
    for (size_t i = 0; i < n; i++) {
        float v;
        if (s_value(x, residual, i, &v))
            return -1;
        if (fabsf(v) > maxabs)
            maxabs = fabsf(v);
    }
    float s = maxabs / 127.0f;
    *scale = s;
    for (size_t i = 0; i < n; i++) {
        float v;
        (void)s_value(x, residual, i, &v);
        double u = mfl_rng_uniform_double(rng); /* drawn even when s is 0: one per element */
        int code = 0;
        if (s > 0) {
            double q = (double)v / (double)s;
            double fl = floor(q);
            code = (int)fl + (u < q - fl ? 1 : 0);
            code = code > 127 ? 127 : code < -127 ? -127 : code;
        }
        out[i] = (int8_t)code;
        if (residual)
            residual[i] = v - s_int8_value(out[i], s);
    }
    return 0;
}

int mfl_quant_encode(mfl_quant_kind_t kind, const float *x, size_t n, float *residual,
                     mfl_rng_t *rng, void *out, float *scale)
{
    *scale = 1.0f;
    switch (kind) {
    case MFL_QUANT_FP32: return s_encode_fp32(x, n, residual, out);
    case MFL_QUANT_FP16: return s_encode_fp16(x, n, residual, rng, out);
    case MFL_QUANT_INT8: return s_encode_int8(x, n, residual, rng, out, scale);
    }
    return -1;
}

int mfl_quant_decode(mfl_quant_kind_t kind, const void *in, size_t n, float scale, float *out)
{
    switch (kind) {
    case MFL_QUANT_FP32:
        memcpy(out, in, 4 * n);
        return 0;
    case MFL_QUANT_FP16: {
        const uint16_t *h = in;
        for (size_t i = 0; i < n; i++)
            out[i] = mfl_quant_f16_to_f32(h[i]);
        return 0;
    }
    case MFL_QUANT_INT8: {
        if (!isfinite(scale))
            return -1;
        const int8_t *c = in;
        for (size_t i = 0; i < n; i++)
            out[i] = s_int8_value(c[i], scale);
        return 0;
    }
    }
    return -1;
}
