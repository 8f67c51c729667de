/* A site's part in one securely aggregated round (docs/SECAGG.md), between
 * the transport (the site agent) and the protocol's state machine
 * (secagg/secagg_site.h): it builds the attempt from the RoundTask's setup
 * and the site's OWN roster of the consortium's keys (provisioned with the
 * site, never taken from the coordinator), encodes the site's update with
 * the aggregator's quantisation (secagg/secagg_update.h), and answers each
 * of the coordinator's messages with the site's next one.
 *
 * What leaves the site: its key advertisement, encrypted share boxes, the
 * masked words, a signature over the survivor list, and the shares an
 * honest site may reveal; never Δ in clear. Not thread-safe. */
#ifndef MFL_SITE_SECAGG_H
#define MFL_SITE_SECAGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/keys.h"
#include "wire/secagg_wire.h"
#include "wire/task.h"

typedef struct mfl_site_secagg mfl_site_secagg_t;

/* What one attempt leaves for the next, kept by the agent between rounds
 * so a round does not fault in fresh pages (at P = 1M: a 4 MB word buffer
 * and the encoder's 8 MB of int64 sums, which a site never uses): the
 * encoder (reused while n_params, word width and F stay) and the words'
 * buffer, which comes back from ZeroMQ after a zero-copy send
 * (mfl_site_secagg_spare_return, from any thread). */
typedef struct mfl_site_secagg_spare mfl_site_secagg_spare_t;
mfl_site_secagg_spare_t *mfl_site_secagg_spare_new(void);
/* Frees what it holds; accepts NULL; nulls *spare_p. No send may still
 * hold a buffer that returns to it. */
void mfl_site_secagg_spare_destroy(mfl_site_secagg_spare_t **spare_p);
/* A words' buffer (from mfl_site_secagg_detach_words) back for the next
 * attempt: kept (a buffer kept before is freed) or freed. Thread-safe. */
void mfl_site_secagg_spare_return(mfl_site_secagg_spare_t *spare, void *words);

/* The attempt of `task` (task->has_secagg) for site `self_id` signing with
 * its Ed25519 secret key `sign_sk` (64 bytes, copied into guarded memory),
 * each site of the task's list looked up by id in `roster` (borrowed for
 * the call). NULL + err if the task has no setup, this site is not in it,
 * a listed site is not in the roster, the length is not `n_params` + 1,
 * 32-bit words come with F outside 8..24, or the parameters fail
 * mfl_secagg_params_check (e.g. 32-bit words among more than 64 sites). */
mfl_site_secagg_t *mfl_site_secagg_new(const mfl_round_task_t *task, const char *self_id,
                                       const uint8_t sign_sk[64], const mfl_allow_list_t *roster,
                                       size_t n_params, char *err, size_t errlen);
/* As mfl_site_secagg_new, taking the encoder and words' buffer from
 * `spare` when they fit (NULL: none), and giving them back to it on
 * destroy (the words' buffer wiped first, if still held). `spare` must
 * outlive the attempt. */
mfl_site_secagg_t *mfl_site_secagg_new_spare(const mfl_round_task_t *task, const char *self_id,
                                             const uint8_t sign_sk[64],
                                             const mfl_allow_list_t *roster, size_t n_params,
                                             mfl_site_secagg_spare_t *spare, char *err,
                                             size_t errlen);
void mfl_site_secagg_destroy(mfl_site_secagg_t **self_p);

/* Whether `round` and `nonce` (16 bytes) are this attempt's. */
bool mfl_site_secagg_is(const mfl_site_secagg_t *self, uint32_t round, const uint8_t *nonce);

/* Phase 1: the site's advertisement as a SECAGG_KEYS message into *out. 0 or -1. */
int mfl_site_secagg_advertise(mfl_site_secagg_t *self, mfl_secagg_wire_t *out, char *err,
                              size_t errlen);

/* The masked words' width (64 or 32) and the largest weight this
 * attempt's quantisation takes (2^32 with 64-bit words, 2^16 with 32:
 * docs/SECAGG.md "Word width"). */
unsigned mfl_site_secagg_word_bits(const mfl_site_secagg_t *self);

/* Whether the coordinator grants masked inputs (the setup's masked_grant):
 * announce the masked words with UploadReady (length × word bytes) and
 * send them on the UploadGrant; false: send them at once. */
bool mfl_site_secagg_masked_grant(const mfl_site_secagg_t *self);
double mfl_site_secagg_max_weight(const mfl_site_secagg_t *self);

/* The site's update: Δ (n_params floats, already clipped and noised as its
 * privacy policy says) and its weight, encoded and checked as the
 * coordinator's aggregate would (NaN/Inf, the product bound, the weight
 * bound; with 32-bit words err names the coordinator's settings). 0 or
 * -1. */
int mfl_site_secagg_set_input(mfl_site_secagg_t *self, const float *delta, double weight,
                              char *err, size_t errlen);

/* After SECAGG_MASKED was answered: hands the masked words' buffer (the
 * one *words pointed to) to the caller, who frees it with free(); the
 * attempt no longer holds it (a zero-copy send releases it when sent).
 * NULL before masking or when already handed over. */
void *mfl_site_secagg_detach_words(mfl_site_secagg_t *self);

/* The masked words SECAGG_MASKED answered with (still held: not yet
 * detached), for a site that sends them later (on its UploadGrant); NULL
 * before masking or once detached. */
const void *mfl_site_secagg_masked_words(const mfl_site_secagg_t *self);

/* A coordinator's message `in` of this attempt. Returns 1 with the reply
 * in *out (for SECAGG_MASKED *words / *n_words are the masked vector, in
 * words of mfl_site_secagg_word_bits, masked in place of the encoded
 * update: valid until destroy or mfl_site_secagg_detach_words, and *hash its BLAKE2b-256, the value the site's
 * audit log records), 0 when there is nothing to send (SECAGG_END), or -1
 * with *reject and err when the site refuses (a bad list or box, a request
 * an honest site must not answer, no input yet for the masked phase). */
int mfl_site_secagg_on_msg(mfl_site_secagg_t *self, const mfl_secagg_wire_t *in,
                           mfl_secagg_wire_t *out, const void **words, size_t *n_words,
                           uint8_t hash[32], mfl_reject_t *reject, char *err, size_t errlen);

#endif
