/* One attempt of secure aggregation with every party in this process:
 * `metafl simulate` runs it so the round's sum is computed exactly as the
 * protocol computes it (keys, shares, masks, signoffs, unmasking), without
 * a transport. Every site answers every phase (no dropouts: the unit tests
 * cover those on the state machines themselves). */
#ifndef MFL_SECAGG_LOCAL_H
#define MFL_SECAGG_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "secagg/secagg_msg.h"

/* The threshold an attempt of n sites with `neighbours` (0: all) uses for
 * a configured minimum `threshold`: max(threshold, ⌊(d + 1)/2⌋ + 1) with d
 * the degree, so it always passes mfl_secagg_params_check when it is ≤ d + 1
 * (0 is returned when it is not). */
uint32_t mfl_secagg_attempt_threshold(uint32_t n, uint32_t neighbours, uint32_t threshold);

/* Runs the attempt `p` among sites 1..n (n = p->n_sites): site i signs with
 * sign_sks[i - 1] (64 bytes), roster[i - 1] is its Ed25519 public key, and
 * its input is inputs[i - 1] (p->length words of the attempt's width,
 * uint64_t or uint32_t; borrowed). On success writes the unmasked sum
 * (p->length words of that width) to sum_out, and to `transcript` the
 * BLAKE2b-256 of the coordinator's five phase transcripts in order
 * (mfl_secagg_server_transcript), for the audit log; returns 0. -1 with err
 * if any party refused or the attempt was abandoned. */
int mfl_secagg_local_sum(const mfl_secagg_params_t *p, const uint8_t (*sign_sks)[64],
                         const uint8_t (*roster)[32], const void *const *inputs,
                         void *sum_out, uint8_t transcript[32], char *err, size_t errlen);

#endif
