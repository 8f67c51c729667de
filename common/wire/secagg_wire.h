/* Secure aggregation's messages as they travel (proto/metafl.proto,
 * SecAgg*; docs/SECAGG.md, docs/WIRE.md), in plain C: one struct for the
 * eight kinds, holding the state machines' own structs (secagg/secagg_msg.h)
 * so a transport hands them over without another copy. No protobuf type
 * appears here; wire/secagg_codec.h converts.
 *
 * Which fields a kind uses (the others are empty):
 *   SECAGG_KEYS       adverts (site → coord: exactly its own; coord → site: U1)
 *   SECAGG_SHARES     boxes (site → coord: its own; coord → site: those for it)
 *   SECAGG_MASKED     nothing here: the words travel as one tensor of uint64
 *                     or uint32 words (MFL_WIRE_ENCODING_U64 / _U32,
 *                     wire/message.h), the attempt's word width
 *   SECAGG_SURVIVORS  survivors (U3)
 *   SECAGG_SIGNOFF    signoffs (exactly one)
 *   SECAGG_UNMASK     survivors, signoffs, dropped
 *   SECAGG_REVEALS    reveals
 *   SECAGG_END        abandoned, reason
 * Every list holds at most MFL_SECAGG_MAX_SITES entries (one per site of
 * the attempt; a site reveals at most one share per peer). */
#ifndef MFL_WIRE_SECAGG_WIRE_H
#define MFL_WIRE_SECAGG_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "secagg/secagg_msg.h"
#include "wire/task.h"

#define MFL_SECAGG_WIRE_REASON_MAX 256 /* bytes of SecAggEnd.reason kept, NUL included */

typedef struct {
    mfl_msg_kind_t kind; /* MFL_MSG_SECAGG_KEYS .. MFL_MSG_SECAGG_END */
    uint32_t round;
    uint8_t nonce[MFL_SECAGG_NONCE_BYTES]; /* the attempt's (RoundTask) nonce */
    size_t n_adverts;
    mfl_secagg_advert_t adverts[MFL_SECAGG_MAX_SITES];
    size_t n_boxes;
    mfl_secagg_share_ct_t boxes[MFL_SECAGG_MAX_SITES];
    size_t n_survivors;
    uint32_t survivors[MFL_SECAGG_MAX_SITES];
    size_t n_signoffs;
    mfl_secagg_signoff_t signoffs[MFL_SECAGG_MAX_SITES];
    size_t n_dropped;
    uint32_t dropped[MFL_SECAGG_MAX_SITES];
    size_t n_reveals;
    mfl_secagg_reveal_t reveals[MFL_SECAGG_MAX_SITES];
    bool abandoned;
    char reason[MFL_SECAGG_WIRE_REASON_MAX];
} mfl_secagg_wire_t;

/* 1 if `kind` is one of secure aggregation's message kinds. */
bool mfl_secagg_wire_kind(int kind);

/* The reject reason for a state machine's refusal (secagg_msg.h): PHASE
 * → SECAGG_PHASE, SIGNATURE → SIGNATURE, LENGTH → SECAGG_LENGTH,
 * DUPLICATE → DUPLICATE, MALFORMED → SECAGG_MALFORMED, SHARES →
 * SECAGG_SHARES, REFUSED → SECAGG_REFUSED; OK → UNSPECIFIED. */
mfl_reject_t mfl_secagg_wire_reject(mfl_secagg_status_t st);

#endif
