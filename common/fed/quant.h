/* Lossy encodings of an update Δ for the upload: fp16 (IEEE 754 binary16)
 * and int8 with one scale per tensor, both with stochastic rounding drawn
 * from a caller-seeded deterministic generator (core/rng.h), so equal
 * inputs and seeds give equal bytes on every machine, and error feedback:
 * the site keeps what rounding lost (the residual) and adds it to the next
 * round's Δ before encoding, so over rounds nothing is lost for good.
 *
 *   mfl_rng_t r;
 *   mfl_rng_seed(&r, round_seed, MFL_QUANT_STREAM + tensor_index);
 *   float scale;
 *   mfl_quant_encode(MFL_QUANT_INT8, delta, n, residual, &r, bytes, &scale);
 *   ... bytes (mfl_quant_bytes(kind, n)) and scale travel ...
 *   mfl_quant_decode(MFL_QUANT_INT8, bytes, n, scale, delta_hat);
 *
 * Stochastic rounding rounds v to one of its two neighbouring codes lo ≤ v
 * ≤ hi, to hi with probability (v − lo) / (hi − lo), so E[decode] = v (up
 * to the clamps below). Computed in double from one 53-bit uniform per
 * element; no platform-dependent arithmetic.
 *
 * fp16: |v| above 65504 (the largest finite half) is clamped to ±65504;
 * values below the smallest subnormal (2^-24) round stochastically between
 * 0 and 2^-24. Byte order little-endian, 2 bytes per element; `scale` is
 * set to 1 and ignored on decode.
 * int8: scale = max |v| / 127 (a float; 0 when v is all zeros), codes
 * round(v / scale) in [−127, 127] (−128 is never written; decode refuses
 * nothing: any byte decodes to code·scale), 1 byte per element.
 *
 * A non-finite input element is an error (-1): Δ is checked finite before
 * it is encoded, and an encoding must not hide a NaN. Pure functions of
 * their arguments; thread-safe for distinct buffers. */
#ifndef MFL_FED_QUANT_H
#define MFL_FED_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/tensor.h"

typedef enum {
    MFL_QUANT_FP32 = 0, /* no compression: 4 bytes per element, copied */
    MFL_QUANT_FP16 = 1,
    MFL_QUANT_INT8 = 2,
} mfl_quant_kind_t;

/* Stream ids for mfl_rng_seed: tensor i of an update draws from stream
 * MFL_QUANT_STREAM + i of the round's seed (apart from training's). */
#define MFL_QUANT_STREAM ((uint64_t)0x7175616e74000000ULL) /* "quant" */

/* "fp32", "fp16", "int8" → kind; 0, or -1 for anything else. */
int mfl_quant_parse(const char *text, mfl_quant_kind_t *kind);
/* The name mfl_quant_parse accepts; "?" for an unknown value. */
const char *mfl_quant_name(mfl_quant_kind_t kind);

/* Bytes of the encoded elements of an n-element tensor (4n, 2n or n);
 * 0 for an unknown kind. */
size_t mfl_quant_bytes(mfl_quant_kind_t kind, size_t n);

/* IEEE binary16 conversions. f16_to_f32 is exact for every code (NaN and
 * infinities included). f32_to_f16 rounds a finite x stochastically with
 * the uniform u in [0, 1) (u = 0.5 is not round-to-nearest: it is a draw)
 * and clamps to ±65504. */
float mfl_quant_f16_to_f32(uint16_t h);
uint16_t mfl_quant_f32_to_f16(float x, double u);

/* Encodes x[n] into out (mfl_quant_bytes(kind, n) bytes) and *scale.
 * With `residual` (n floats, may be NULL: no error feedback) encodes
 * v = x + residual and then sets residual = v − decode(out): what this
 * encoding lost, to be added next time. `rng` supplies one draw per element
 * (none for fp32). x and out must not overlap; x and residual may not
 * either. 0, or -1 if an element of v is not finite or kind is unknown
 * (out, residual then unspecified). */
int mfl_quant_encode(mfl_quant_kind_t kind, const float *x, size_t n, float *residual,
                     mfl_rng_t *rng, void *out, float *scale);

/* Draws per block of the encoders: a tensor encoded in pieces with
 * mfl_quant_encode_scaled, cut at multiples of this many elements, gets
 * the codes of one mfl_quant_encode of the whole (the draws come in the
 * same blocks, in the same order). */
#define MFL_QUANT_BLOCK 256

/* int8's scale for a tensor whose largest |value| is maxabs (what
 * mfl_quant_encode computes: maxabs / 127 in float). */
float mfl_quant_int8_scale(float maxabs);

/* mfl_quant_encode without error feedback, for a caller that encodes a
 * tensor in pieces (cut at multiples of MFL_QUANT_BLOCK, in order, one
 * rng) and so must give int8's scale itself (mfl_quant_int8_scale of the
 * whole tensor's max |x|; ignored for fp16). The pieces' codes are those
 * of mfl_quant_encode of the whole tensor. 0, or -1 if an element is not
 * finite or kind is not fp16 / int8. */
int mfl_quant_encode_scaled(mfl_quant_kind_t kind, const float *x, size_t n, float scale,
                            mfl_rng_t *rng, void *out);

/* Decodes n elements of `in` (mfl_quant_bytes(kind, n) bytes) with `scale`
 * into out. 0, or -1 for an unknown kind or (int8) a non-finite scale. */
int mfl_quant_decode(mfl_quant_kind_t kind, const void *in, size_t n, float scale, float *out);

/* Decodes values [at, at + n) of a tensor view whose values are runs of
 * codes (`pieces` with data cast: count codes of mfl_quant_bytes(encoding,
 * 1) bytes each, `encoding` fp16 or int8, int8's `scale`; what the wire
 * leaves for the coordinator, wire/message.h encoded_runs) into out, each
 * value exactly as mfl_quant_decode of the whole tensor gives it. 0, or -1
 * if the view has contiguous data or is float32, the range is outside it,
 * or (int8) the scale is not finite. */
int mfl_quant_decode_view(const mfl_tensor_t *t, uint64_t at, size_t n, float *out);

#endif
