/* fp16 / int8 encodings of an update with stochastic rounding and error
 * feedback (see quant.h). */
#include "fed/quant.h"

/* Built with -fno-trapping-math (Makefile): the block loops below select
 * between float results instead of branching, and GCC if-converts (and so
 * vectorises) a float operation only without trapping math. No result
 * changes: tests/unit/test_fed_quant.c holds codes and residuals to the
 * per-element definitions bit for bit. */

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

/* The encoders work in blocks: the block's draws come from
 * mfl_rng_uniform_double_fill (the same stream, one draw per element, in
 * element order), then a loop without calls or early exits does the
 * arithmetic, which the compiler vectorises. Every value is computed
 * exactly as the per-element definitions above (mfl_quant_f32_to_f16, the
 * int8 rule below) do: tests/unit/test_fed_quant.c checks the codes and
 * residuals bit for bit against them. */
#define S_BLOCK MFL_QUANT_BLOCK

/* |x| ≤ FLT_MAX, on the bits (vectorises; NaN and ±inf fail). */
static inline int s_finite(float v)
{
    return (s_bits(v) & 0x7f800000u) != 0x7f800000u;
}

/* v[0..m) = x + residual (or x) for one block; 0, or -1 if one is not
 * finite. */
static int s_block_values(const float *x, const float *residual, size_t m, float *v)
{
    int ok = 1;
    if (residual)
        for (size_t j = 0; j < m; j++) {
            v[j] = x[j] + residual[j];
            ok &= s_finite(v[j]);
        }
    else
        for (size_t j = 0; j < m; j++) {
            v[j] = x[j];
            ok &= s_finite(v[j]);
        }
    return ok ? 0 : -1;
}

static int s_encode_fp32(const float *x, size_t n, float *residual, float *out)
{
    for (size_t i = 0; i < n; i += S_BLOCK) {
        size_t m = n - i < S_BLOCK ? n - i : S_BLOCK;
        if (s_block_values(x + i, residual ? residual + i : NULL, m, out + i))
            return -1;
        if (residual)
            memset(residual + i, 0, m * sizeof *residual);
    }
    return 0;
}

/* mfl_quant_f16_to_f32 for a code of a finite value (exponent field < 31),
 * without branches. */
static inline float s_f16_finite(uint32_t h)
{
    uint32_t sign = (h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t sub = s_bits((float)m * 5.9604644775390625e-8f) | sign;
    uint32_t normal = sign | ((e + 112u) << 23) | (m << 13);
    return s_float(e ? normal : sub);
}

static int s_encode_fp16(const float *x, size_t n, float *residual, mfl_rng_t *rng,
                         uint16_t *out)
{
    float v[S_BLOCK], left[S_BLOCK];
    double u[S_BLOCK];
    for (size_t i = 0; i < n; i += S_BLOCK) {
        size_t m = n - i < S_BLOCK ? n - i : S_BLOCK;
        if (s_block_values(x + i, residual ? residual + i : NULL, m, v))
            return -1;
        mfl_rng_uniform_double_fill(rng, u, m);
        for (size_t j = 0; j < m; j++) {
            /* mfl_quant_f32_to_f16(v, u): p = 0 when v is a code (u < 0 is
             * false, so lo), hence no separate exact case */
            uint32_t b = s_bits(v[j]);
            uint32_t sign = (b >> 16) & 0x8000u;
            float a = s_float(b & 0x7fffffffu);
            uint32_t e32 = (b >> 23) & 0xffu;
            /* s_f16_floor(a) (a subnormal half: a · 2^24 < 1024 fits an int) */
            float small = e32 >= 113u ? 0.0f : a; /* selected first: no conversion overflows */
            uint32_t sub = (uint32_t)(int32_t)(small * 16777216.0f);
            uint32_t lo = e32 >= 113u ? ((e32 - 112u) << 10) | ((b >> 13) & 0x3ffu) : sub;
            double vlo = s_f16_finite(lo), vhi = s_f16_finite(lo + 1u);
            double p = ((double)a - vlo) / (vhi - vlo);
            uint32_t up = (uint32_t)(u[j] < p);
            uint32_t big = (uint32_t)!(a < S_F16_MAX); /* clamped to ±65504 */
            uint32_t h = sign | (big ? S_F16_MAX_CODE : lo + up);
            out[i + j] = (uint16_t)h;
            left[j] = v[j] - s_f16_finite(h);
        }
        if (residual)
            memcpy(residual + i, left, m * sizeof *left);
    }
    return 0;
}

static float s_int8_value(int8_t code, float scale) { return (float)code * scale; }

/* int8's second pass: the codes of v = x + residual (or x) with scale s. */
static void s_encode_int8_pass(const float *x, size_t n, float *residual, mfl_rng_t *rng,
                               int8_t *out, float s)
{
    float v[S_BLOCK], left[S_BLOCK];
    double u[S_BLOCK];
    int8_t codes[S_BLOCK];
    for (size_t i = 0; i < n; i += S_BLOCK) {
        size_t m = n - i < S_BLOCK ? n - i : S_BLOCK;
        (void)s_block_values(x + i, residual ? residual + i : NULL, m, v);
        mfl_rng_uniform_double_fill(rng, u, m); /* drawn even when s is 0: one per element */
        if (!(s > 0)) {
            memset(out + i, 0, m);
            if (residual)
                memcpy(residual + i, v, m * sizeof *v);
            continue;
        }
        for (size_t j = 0; j < m; j++) {
            /* code = floor(q) + [u < q − floor(q)], q = v / s, in ±127 */
            double q = (double)v[j] / (double)s;
            double fl = floor(q);
            double c = fl + (u[j] < q - fl ? 1.0 : 0.0);
            c = c > 127.0 ? 127.0 : c < -127.0 ? -127.0 : c;
            float cf = (float)c; /* an integer in ±127: exact */
            codes[j] = (int8_t)(int)cf;
            left[j] = v[j] - cf * s; /* = v − s_int8_value(code, s) */
        }
        memcpy(out + i, codes, m);
        if (residual)
            memcpy(residual + i, left, m * sizeof *left);
    }
}

static int s_encode_int8(const float *x, size_t n, float *residual, mfl_rng_t *rng,
                         int8_t *out, float *scale)
{
    float v[S_BLOCK];
    uint32_t maxbits = 0; /* of |v|: finite non-negative floats order as their bits */
    for (size_t i = 0; i < n; i += S_BLOCK) {
        size_t m = n - i < S_BLOCK ? n - i : S_BLOCK;
        if (s_block_values(x + i, residual ? residual + i : NULL, m, v))
            return -1;
        for (size_t j = 0; j < m; j++) {
            uint32_t a = s_bits(v[j]) & 0x7fffffffu;
            maxbits = a > maxbits ? a : maxbits;
        }
    }
    float maxabs = s_float(maxbits);
    float s = maxabs / 127.0f;
    *scale = s;
    s_encode_int8_pass(x, n, residual, rng, out, s);
    return 0;
}

float mfl_quant_int8_scale(float maxabs) { return maxabs / 127.0f; }

int mfl_quant_encode_scaled(mfl_quant_kind_t kind, const float *x, size_t n, float scale,
                            mfl_rng_t *rng, void *out)
{
    if (kind == MFL_QUANT_FP16)
        return s_encode_fp16(x, n, NULL, rng, out);
    if (kind != MFL_QUANT_INT8)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!s_finite(x[i]))
            return -1;
    s_encode_int8_pass(x, n, NULL, rng, out, scale);
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
        /* branch-free for codes of finite values; a block holding an
         * infinity or NaN code (the encoder never writes one) goes the
         * exact per-element way */
        const uint16_t *h = in;
        for (size_t i = 0; i < n; i += S_BLOCK) {
            size_t m = n - i < S_BLOCK ? n - i : S_BLOCK;
            uint32_t special = 0;
            for (size_t j = 0; j < m; j++) {
                special |= (h[i + j] & 0x7c00u) == 0x7c00u;
                out[i + j] = s_f16_finite(h[i + j]);
            }
            if (special)
                for (size_t j = 0; j < m; j++)
                    out[i + j] = mfl_quant_f16_to_f32(h[i + j]);
        }
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

int mfl_quant_decode_view(const mfl_tensor_t *t, uint64_t at, size_t n, float *out)
{
    size_t cb = mfl_quant_bytes((mfl_quant_kind_t)t->encoding, 1);
    if (t->data || !t->pieces || t->encoding == MFL_QUANT_FP32 || !cb || at > t->count ||
        n > t->count - at)
        return -1;
    uint64_t start = 0;
    for (size_t k = 0; k < t->n_pieces && n > 0; k++) {
        uint64_t cnt = t->pieces[k].count;
        if (at < start + cnt) {
            uint64_t skip = at - start;
            size_t m = cnt - skip < n ? (size_t)(cnt - skip) : n;
            const unsigned char *codes = (const unsigned char *)t->pieces[k].data + skip * cb;
            if (mfl_quant_decode((mfl_quant_kind_t)t->encoding, codes, m, t->scale, out) < 0)
                return -1;
            out += m;
            at += m;
            n -= m;
        }
        start += cnt;
    }
    return n == 0 ? 0 : -1;
}
