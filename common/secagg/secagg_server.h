/* The coordinator's side of one secure-aggregation attempt (docs/SECAGG.md)
 * as a transport-free state machine: it checks and collects each phase's
 * messages, says what to send next, and at the end removes the masks, so it
 * learns the sum of the survivors' vectors and nothing else.
 *
 * Phases advance only through the end_* calls (the engine calls them when
 * all expected messages are in or the phase's deadline passed). Any end_*
 * with fewer than t participants, or a finish whose shares do not
 * reconstruct, abandons the attempt: no sum, never a wrong one. A message
 * that fails a check is rejected with a status and err (file nothing of
 * it in); the attempt goes on.
 *
 * Memory: one running sum of `length` words (O(P), not O(N·P): each masked
 * vector is folded on arrival), the share boxes to route (≤ n·k boxes of
 * 104 bytes) and the revealed shares (≤ n² of 32 bytes). Not thread-safe. */
#ifndef MFL_SECAGG_SERVER_H
#define MFL_SECAGG_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "secagg/secagg_msg.h"

typedef struct mfl_secagg_server mfl_secagg_server_t;

typedef enum {
    MFL_SECAGG_PHASE_ADVERTISE = 1,
    MFL_SECAGG_PHASE_SHARE,
    MFL_SECAGG_PHASE_MASKED,
    MFL_SECAGG_PHASE_SIGNOFF,
    MFL_SECAGG_PHASE_UNMASK,
    MFL_SECAGG_PHASE_DONE,      /* the sum is ready */
    MFL_SECAGG_PHASE_ABANDONED, /* no sum this attempt */
} mfl_secagg_phase_t;

/* "advertise", "share", "masked", "signoff", "unmask", "done", "abandoned". */
const char *mfl_secagg_phase_name(mfl_secagg_phase_t phase);

/* An attempt with parameters `p` (copied; checked) and the sites' Ed25519
 * keys `roster` (n of them, roster[i - 1] for index i; copied). NULL with
 * err on bad parameters or out of memory. */
mfl_secagg_server_t *mfl_secagg_server_new(const mfl_secagg_params_t *p,
                                           const uint8_t (*roster)[32], char *err,
                                           size_t errlen);

/* As mfl_secagg_server_new, with the running sum in `buf` (buf_bytes
 * long) when it is big enough (length words of the attempt's width; then
 * zeroed, not reallocated: a buffer from the previous attempt's
 * mfl_secagg_server_take_sum has its pages in memory already), else in a
 * fresh one. Takes ownership of `buf` in every case (NULL: none). */
mfl_secagg_server_t *mfl_secagg_server_new_reusing(const mfl_secagg_params_t *p,
                                                   const uint8_t (*roster)[32], void *buf,
                                                   size_t buf_bytes, char *err, size_t errlen);

/* How many threads finish may use to expand the masks it removes
 * (mfl_secagg_mask_many_threads; 1 by default, at most
 * MFL_SECAGG_MASK_MAX_THREADS): the coordinator's unmasking runs while
 * every site waits for the round to close, so its cores are free. The sum
 * is the same, bit for bit, with any number. */
void mfl_secagg_server_set_threads(mfl_secagg_server_t *self, unsigned threads);

/* Frees; accepts NULL and *self_p == NULL; nulls *self_p. */
void mfl_secagg_server_destroy(mfl_secagg_server_t **self_p);

mfl_secagg_phase_t mfl_secagg_server_phase(const mfl_secagg_server_t *self);

/* Phase 1. `from` is the authenticated sender (the transport's site). */
mfl_secagg_status_t mfl_secagg_server_on_advert(mfl_secagg_server_t *self, uint32_t from,
                                                const mfl_secagg_advert_t *a, char *err,
                                                size_t errlen);
/* Closes phase 1: U1 = the accepted adverts; 0, or -1 (abandoned) if < t. */
int mfl_secagg_server_end_adverts(mfl_secagg_server_t *self, char *err, size_t errlen);
/* U1's adverts in index order (valid until destroy); *n gets how many. */
const mfl_secagg_advert_t *mfl_secagg_server_adverts(const mfl_secagg_server_t *self, size_t *n);

/* Phase 2: all of `from`'s boxes at once (one per neighbour in U1, each
 * from `from`, to a distinct neighbour). All or nothing. */
mfl_secagg_status_t mfl_secagg_server_on_shares(mfl_secagg_server_t *self, uint32_t from,
                                                const mfl_secagg_share_ct_t *cts, size_t n,
                                                char *err, size_t errlen);
/* Closes phase 2: U2 = the sites whose boxes arrived; 0 or -1 as above. */
int mfl_secagg_server_end_shares(mfl_secagg_server_t *self, char *err, size_t errlen);
/* The boxes for site `to` from members of U2, written to `out` (room for
 * n_sites); returns how many (0 if `to` is not in U2). */
size_t mfl_secagg_server_boxes_for(const mfl_secagg_server_t *self, uint32_t to,
                                   mfl_secagg_share_ct_t *out);

/* Phase 3: `from`'s masked vector (n words of the attempt's width,
 * uint64_t or uint32_t; borrowed), folded into the sum mod 2^64 or 2^32 on
 * arrival. E_LENGTH if n != length, E_DUPLICATE for a second one (the
 * first stays), E_MALFORMED if from is not in U2. hash (32 bytes, may be
 * NULL) gets BLAKE2b-256 of the vector's little-endian bytes, for the
 * audit log. */
mfl_secagg_status_t mfl_secagg_server_on_masked(mfl_secagg_server_t *self, uint32_t from,
                                                const void *y, size_t n, uint8_t hash[32],
                                                char *err, size_t errlen);

/* The checks of mfl_secagg_server_on_masked alone (phase, membership, a
 * second input, length), nothing folded: a caller that must record the
 * input before it is folded (the audit log) checks, records, then folds.
 * MFL_SECAGG_OK or the status on_masked would return. */
mfl_secagg_status_t mfl_secagg_server_check_masked(const mfl_secagg_server_t *self, uint32_t from,
                                                   size_t n, char *err, size_t errlen);

/* BLAKE2b-256 of n words of `word_bits` (64 or 32) as little-endian bytes:
 * the hash on_masked records. */
void mfl_secagg_words_hash(const void *y, size_t n, unsigned word_bits, uint8_t out[32]);

/* As mfl_secagg_server_on_masked when the caller already has that hash
 * (`known_hash`, e.g. the transport's verified BLAKE2b-256 of the same
 * little-endian bytes): it is taken as is instead of hashing the vector
 * again (NULL: computed). The caller vouches for it: it goes into the
 * masked phase's transcript and the audit log. */
mfl_secagg_status_t mfl_secagg_server_on_masked_hashed(mfl_secagg_server_t *self, uint32_t from,
                                                       const void *y, size_t n,
                                                       const uint8_t known_hash[32],
                                                       uint8_t hash[32], char *err,
                                                       size_t errlen);
/* A masked vector as it arrived: runs of words, in order (e.g. the frames
 * the transport received it in, each a whole number of words at an
 * aligned address), so it is folded where it lies without being gathered
 * into one buffer first. */
typedef struct {
    const void *words; /* n words of the attempt's width */
    size_t n;
} mfl_secagg_run_t;

/* mfl_secagg_words_hash of the words of runs[0..n_runs) in order. */
void mfl_secagg_runs_hash(const mfl_secagg_run_t *runs, size_t n_runs, unsigned word_bits,
                          uint8_t out[32]);

/* As mfl_secagg_server_on_masked_hashed for a vector in `n_runs` runs
 * whose lengths add up to its length (the checks see the total). */
mfl_secagg_status_t mfl_secagg_server_on_masked_runs(mfl_secagg_server_t *self, uint32_t from,
                                                     const mfl_secagg_run_t *runs,
                                                     size_t n_runs,
                                                     const uint8_t known_hash[32],
                                                     uint8_t hash[32], char *err,
                                                     size_t errlen);
/* Closes phase 3: U3 = the sites whose vectors are in the sum. */
int mfl_secagg_server_end_masked(mfl_secagg_server_t *self, char *err, size_t errlen);
/* U3, ascending (valid until destroy). */
const uint32_t *mfl_secagg_server_survivors(const mfl_secagg_server_t *self, size_t *n);

/* Phase 4: `from`'s signature over U3 (checked against the roster). */
mfl_secagg_status_t mfl_secagg_server_on_signoff(mfl_secagg_server_t *self, uint32_t from,
                                                 const mfl_secagg_signoff_t *s, char *err,
                                                 size_t errlen);
/* Closes phase 4: needs ≥ t signoffs. */
int mfl_secagg_server_end_signoffs(mfl_secagg_server_t *self, char *err, size_t errlen);
/* The unmask request for every signer (borrowing the server's lists). */
void mfl_secagg_server_unmask_request(const mfl_secagg_server_t *self,
                                      mfl_secagg_unmask_req_t *req);

/* Phase 5: `from`'s revealed shares (from must have signed off). Each must
 * be of a site `from` holds shares of, of the kind that site's fate asks
 * for (seed for survivors, key for dropped), once. All or nothing. */
mfl_secagg_status_t mfl_secagg_server_on_reveals(mfl_secagg_server_t *self, uint32_t from,
                                                 const mfl_secagg_reveal_t *r, size_t n,
                                                 char *err, size_t errlen);
/* Closes phase 5: reconstructs each survivor's seed and each dropped
 * site's mask key from ≥ t revealed shares (checked against the seed's
 * commitment and the advertised public key; other subsets of the shares
 * are tried when one does not check, up to MFL_SECAGG_MAX_SUBSETS), and
 * removes all masks. 0: phase DONE, the sum is ready; -1: abandoned
 * (err: whose secret could not be recovered). */
int mfl_secagg_server_finish(mfl_secagg_server_t *self, char *err, size_t errlen);
#define MFL_SECAGG_MAX_SUBSETS 256

/* After finish: the unmasked sum (length words of the attempt's width,
 * uint64_t or uint32_t; read as two's complement it is the exact Σ of the
 * survivors' inputs when that fits the width) and *count = |U3|. NULL
 * before. Valid until destroy. */
const void *mfl_secagg_server_sum(const mfl_secagg_server_t *self, size_t *count);

/* After finish: hands the unmasked sum's buffer (what mfl_secagg_server_sum
 * points to) to the caller, who frees it with free() or gives it to the
 * next attempt (mfl_secagg_server_new_reusing); *count = |U3|, *bytes its
 * size. The server no longer has a sum (mfl_secagg_server_sum: NULL). NULL
 * before finish or when already taken. */
void *mfl_secagg_server_take_sum(mfl_secagg_server_t *self, size_t *count, size_t *bytes);

/* BLAKE2b-256 of what phase `phase` (ADVERTISE..UNMASK) accepted, in index
 * order (adverts; boxes; masked-vector hashes; signoffs; reveals), once
 * that phase ended; -1 before. The audit log records it. */
int mfl_secagg_server_transcript(const mfl_secagg_server_t *self, mfl_secagg_phase_t phase,
                                 uint8_t out[32]);

/* Why the attempt was abandoned (a status, e.g. E_SHARES; OK if not). */
mfl_secagg_status_t mfl_secagg_server_abandon_reason(const mfl_secagg_server_t *self);

#endif
