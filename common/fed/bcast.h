/* The compressed broadcast (issue 17): the coordinator keeps θ̂, the model
 * every site trains from, and sends a site that already holds θ̂_{t−1} only
 * the encoded difference
 *
 *   q_t = Q(θ_t − θ̂_{t−1}),   θ̂_t = θ̂_{t−1} + deQ(q_t)
 *
 * (fp16, or int8 with one scale per tensor; stochastic rounding from a
 * generator seeded by the round, fed/quant.h). What rounding loses stays in
 * θ − θ̂ and is in the next round's difference: error feedback at the
 * server, so θ̂ follows θ and nothing is lost for good. The sites'
 * updates are computed at θ̂_t and the server step is applied to θ_t.
 *
 * θ̂_t is built the same way on both ends, bit for bit: the coordinator by
 * mfl_bcast_encode, a site by decoding the tensor it received
 * (mfl_quant_decode, as the wire does) and mfl_bcast_apply: decode into a
 * float buffer, then one float addition per element, in separate loops on
 * both ends (no fused multiply-add can make them differ).
 *
 *   mfl_rng_t r;
 *   mfl_rng_seed(&r, round_seed, MFL_BCAST_STREAM + tensor_index);
 *   float scale;
 *   mfl_bcast_encode(MFL_QUANT_INT8, theta, theta_hat, n, &r, bytes, &scale);
 *   ... bytes (mfl_quant_bytes(kind, n)) and scale travel; at the site:
 *   mfl_quant_decode(MFL_QUANT_INT8, bytes, n, scale, decoded);
 *   mfl_bcast_apply(held, decoded, n);   // held is now theta_hat
 *
 * Pure functions of their arguments; thread-safe for distinct buffers. */
#ifndef MFL_FED_BCAST_H
#define MFL_FED_BCAST_H

#include <stddef.h>

#include "core/rng.h"
#include "fed/quant.h"

/* Stream ids for mfl_rng_seed with the round's seed: tensor i of the
 * broadcast draws from MFL_BCAST_STREAM + i (apart from the sites' update
 * streams and training's). */
#define MFL_BCAST_STREAM ((uint64_t)0x6263617374000000ULL) /* "bcast" */

/* One tensor of the broadcast: encodes d = theta − theta_hat (n floats)
 * as `kind` (fp16 or int8) into out (mfl_quant_bytes(kind, n) bytes) and
 * *scale, exactly as mfl_quant_encode of the whole d would, then sets
 * theta_hat += decode(out). Works in pieces on the stack (no θ-sized
 * scratch; theta and theta_hat are read twice). theta_hat stays finite
 * when theta and theta_hat are (the decoded difference is bounded by |d|'s
 * range; fp16 clamps |d| to 65504, and the rest is sent later). 0, or -1
 * if a d[i] is not finite or kind is not fp16 / int8 (theta_hat then
 * unchanged). No buffer may overlap another. */
int mfl_bcast_encode(mfl_quant_kind_t kind, const float *theta, float *theta_hat, size_t n,
                     mfl_rng_t *rng, void *out, float *scale);

/* held[i] += decoded[i] for i < n: a site's θ̂_{t−1} becomes θ̂_t. */
void mfl_bcast_apply(float *held, const float *decoded, size_t n);

#endif
