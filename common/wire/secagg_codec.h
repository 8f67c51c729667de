/* Secure aggregation's codec: wire/secagg_wire.h's plain messages to the
 * protocol's Envelope bodies (SecAggKeys, ..., SecAggEnd) and back. The
 * only place that fills or reads those messages; the transports call it at
 * their edge.
 *
 * Decoding checks every size before it copies: lists at most
 * MFL_SECAGG_MAX_SITES entries, nonce exactly MFL_SECAGG_NONCE_BYTES, keys
 * and commitments 32 bytes, signatures 64, share boxes MFL_SECAGG_BOX_BYTES,
 * shares MFL_SECAGG_SHARE_BYTES, a reveal's kind 1 or 2, indices ≥ 1 and
 * ≤ MFL_SECAGG_MAX_SITES, the right list for the kind (a SIGNOFF carries
 * one signature), a SECAGG_MASKED with exactly one uint64 or uint32 tensor
 * (the engine checks the width is the attempt's). Anything
 * else is refused with REJECT_BAD_MESSAGE and err naming the field; the
 * state machines then check the content (membership, signatures, order).
 *
 * Encoding borrows: the envelope built points into the plain message and
 * into `out` (keep both alive while it is sent). Thread-safe (no shared
 * state). */
#ifndef MFL_WIRE_SECAGG_CODEC_H
#define MFL_WIRE_SECAGG_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "metafl.pb-c.h"
#include "wire/secagg_wire.h"

/* Storage for one encoded message's protobuf structs (about 90 KB:
 * allocate it, do not put it on a small stack). */
typedef struct {
    Metafl__Envelope env;
    Metafl__SecAggKeys keys;
    Metafl__SecAggShares shares;
    Metafl__SecAggMasked masked;
    Metafl__SecAggSurvivors survivors;
    Metafl__SecAggSignoff signoff;
    Metafl__SecAggUnmask unmask;
    Metafl__SecAggReveals reveals;
    Metafl__SecAggEnd end;
    Metafl__SecAggAdvert advert[MFL_SECAGG_MAX_SITES];
    Metafl__SecAggAdvert *advert_p[MFL_SECAGG_MAX_SITES];
    Metafl__SecAggBox box[MFL_SECAGG_MAX_SITES];
    Metafl__SecAggBox *box_p[MFL_SECAGG_MAX_SITES];
    Metafl__SecAggSignoff signoffs[MFL_SECAGG_MAX_SITES];
    Metafl__SecAggSignoff *signoff_p[MFL_SECAGG_MAX_SITES];
    Metafl__SecAggReveal reveal[MFL_SECAGG_MAX_SITES];
    Metafl__SecAggReveal *reveal_p[MFL_SECAGG_MAX_SITES];
    uint32_t survivors_copy[MFL_SECAGG_MAX_SITES];
    uint32_t dropped_copy[MFL_SECAGG_MAX_SITES];
} mfl_secagg_env_t;

/* Fills out->env (kind, body; protocol_version 0 = this build's; no
 * tensors: a SECAGG_MASKED's words are the caller's one tensor, sent with
 * mfl_msg_send) from `m`. 0, or -1 with err for a kind that is not
 * secure aggregation's or a list over its cap. */
int mfl_secagg_wire_to_envelope(const mfl_secagg_wire_t *m, mfl_secagg_env_t *out, char *err,
                                size_t errlen);

/* Reads a decoded envelope of one of secure aggregation's kinds into *out
 * (every field overwritten). 0, or -1 with *reason (REJECT_BAD_MESSAGE)
 * and err. */
int mfl_secagg_wire_from_envelope(const Metafl__Envelope *env, mfl_secagg_wire_t *out,
                                  mfl_reject_t *reason, char *err, size_t errlen);

#endif
