/* The messages of secure aggregation (docs/SECAGG.md), as plain structs:
 * the site and coordinator state machines (secagg_site.h, secagg_server.h)
 * exchange these, and a transport carries them however it likes.
 *
 * One attempt of one round, n sites with indices 1..n (the selection sorted
 * by site id), in five phases:
 *   1. advertise  site → coord: mfl_secagg_advert_t (two X25519 public keys
 *                 and a commitment to the self-mask seed, signed with the
 *                 site's Ed25519 identity); coord → sites: all of them (U1).
 *   2. share      site → coord: one mfl_secagg_share_ct_t per neighbour in
 *                 U1 (its shares of the site's mask key and seed, encrypted
 *                 to that neighbour); coord → each site: those addressed to
 *                 it from the sites that shared (U2).
 *   3. masked     site → coord: the masked vector (length words of
 *                 word_bits: uint64_t, or uint32_t).
 *                 The senders are the survivors U3.
 *   4. signoff    coord → sites: U3; site → coord: its Ed25519 signature
 *                 over U3 (mfl_secagg_signoff_t), once per attempt.
 *   5. unmask     coord → sites: mfl_secagg_unmask_req_t (U3, ≥ t signoffs,
 *                 the dropped sites whose mask keys it needs); site → coord:
 *                 mfl_secagg_reveal_t shares — of each survivor's seed, of
 *                 each dropped site's mask key, never both for one site.
 * Fewer than t sites at any phase, or shares that do not reconstruct: the
 * attempt is abandoned, never a wrong sum. */
#ifndef MFL_SECAGG_MSG_H
#define MFL_SECAGG_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "secagg/secagg_crypto.h"
#include "secagg/secagg_share.h"

#define MFL_SECAGG_MAX_SITES 255 /* share x-coordinates are bytes (libgfshare) */
#define MFL_SECAGG_MIN_SITES 3   /* fewer: the sum of the others gives one away */
/* With 32-bit words at most this many sites per attempt: the bound that
 * keeps a sum of 32-bit terms exact counts on it (secagg_update.h). */
#define MFL_SECAGG_NARROW_MAX_SITES 64
#define MFL_SECAGG_BOX_PLAIN (4 + 4 + 8 + 2 * MFL_SECAGG_SHARE_BYTES) /* from, to, round, shares */
#define MFL_SECAGG_BOX_BYTES (MFL_SECAGG_BOX_PLAIN + 16)              /* + secretbox MAC */

/* An attempt's public parameters: every party must hold the same, and the
 * signed statements bind all of them. */
typedef struct {
    mfl_secagg_scope_t scope; /* round, attempt nonce */
    uint32_t n_sites;         /* selected sites, indices 1..n_sites */
    uint32_t threshold;       /* t: shares to recover a secret; fewest sites per phase */
    uint32_t neighbours;      /* 0: complete graph; else k (even): SecAgg+ */
    uint64_t length;          /* masked vector length in words */
    uint32_t word_bits;       /* 64 (0 means 64: every earlier attempt) or 32 */
} mfl_secagg_params_t;

/* The attempt's word width in bits (64 or 32) and bytes. */
unsigned mfl_secagg_word_bits(const mfl_secagg_params_t *p);
size_t mfl_secagg_word_bytes(const mfl_secagg_params_t *p);

/* Outcome of handling one message or request; the non-zero ones are the
 * reasons a message is rejected (mapped to wire RejectReasons). */
typedef enum {
    MFL_SECAGG_OK = 0,
    MFL_SECAGG_E_PHASE,     /* not expected now: early, late, or the attempt ended */
    MFL_SECAGG_E_SIGNATURE, /* a key advertisement or survivor signoff that does not verify */
    MFL_SECAGG_E_LENGTH,    /* a masked vector of the wrong length */
    MFL_SECAGG_E_DUPLICATE, /* a second message of one kind from one site */
    MFL_SECAGG_E_MALFORMED, /* index out of range, not a member, bad list, share box that does not open */
    MFL_SECAGG_E_SHARES,    /* too few shares, or shares that do not reconstruct */
    MFL_SECAGG_E_REFUSED,   /* (site) a request an honest site refuses: both shares of one peer */
} mfl_secagg_status_t;

/* A short name for a status ("ok", "phase", "signature", ...). */
const char *mfl_secagg_status_name(mfl_secagg_status_t s);

/* Writes the printf-style reason into err (if err and errlen) and returns
 * `st`: how the site and coordinator state machines refuse a message. */
mfl_secagg_status_t mfl_secagg_fail(mfl_secagg_status_t st, char *err, size_t errlen,
                                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Phase 1: a site's signed key advertisement. */
typedef struct {
    uint32_t index;
    uint8_t c_pk[MFL_SECAGG_KEY_BYTES];        /* X25519, encrypts shares to this site */
    uint8_t s_pk[MFL_SECAGG_KEY_BYTES];        /* X25519, pairwise mask agreement */
    uint8_t seed_commit[MFL_SECAGG_KEY_BYTES]; /* mfl_secagg_commit of the self-mask seed */
    uint8_t sig[MFL_SECAGG_SIG_BYTES];         /* Ed25519 over mfl_secagg_advert_digest */
} mfl_secagg_advert_t;

/* Phase 2: one site's shares for one neighbour, in a secretbox under their
 * pairwise share key; the coordinator only routes it. */
typedef struct {
    uint32_t from, to;
    uint8_t box[MFL_SECAGG_BOX_BYTES];
} mfl_secagg_share_ct_t;

/* Phase 4: a site's signature over the survivor list. */
typedef struct {
    uint32_t index;
    uint8_t sig[MFL_SECAGG_SIG_BYTES];
} mfl_secagg_signoff_t;

/* Phase 5, coordinator → site. Lists strictly ascending; all borrowed. */
typedef struct {
    const uint32_t *survivors; /* U3 */
    size_t n_survivors;
    const mfl_secagg_signoff_t *signoffs; /* over U3, from members of U3 */
    size_t n_signoffs;
    const uint32_t *dropped; /* sites whose mask-key shares are asked for */
    size_t n_dropped;
} mfl_secagg_unmask_req_t;

typedef enum { MFL_SECAGG_SHARE_SEED = 1, MFL_SECAGG_SHARE_KEY = 2 } mfl_secagg_share_kind_t;

/* Phase 5, site → coordinator: one share the site holds of `peer`'s secret. */
typedef struct {
    uint32_t peer;
    uint8_t kind; /* mfl_secagg_share_kind_t */
    uint8_t share[MFL_SECAGG_SHARE_BYTES];
} mfl_secagg_reveal_t;

/* 0 if the parameters are usable: MFL_SECAGG_MIN_SITES ≤ n ≤ 255; k 0 or
 * even ≥ 2 (k ≥ n − 1 means complete); with d the degree (n − 1, or k) the
 * threshold is more than half of a neighbourhood and at most all of it,
 * (d + 1)/2 < t ≤ d + 1; 1 ≤ length ≤ MFL_SECAGG_MAX_WORDS; word_bits 0,
 * 64 or 32, and with 32 n ≤ MFL_SECAGG_NARROW_MAX_SITES. Else -1, err
 * says which. */
int mfl_secagg_params_check(const mfl_secagg_params_t *p, char *err, size_t errlen);

/* The BLAKE2b-256 digest an advertisement's signature covers: a label, all
 * of `p` (word_bits only when 32, so 64-bit attempts sign what they always
 * did), and the advert's index, keys and commitment. */
void mfl_secagg_advert_digest(uint8_t out[32], const mfl_secagg_params_t *p,
                              const mfl_secagg_advert_t *a);

/* The digest a signoff's signature covers: a label, all of `p`, the list. */
void mfl_secagg_survivors_digest(uint8_t out[32], const mfl_secagg_params_t *p,
                                 const uint32_t *survivors, size_t n);

/* The graph seed of an attempt: BLAKE2b(label, round, nonce). */
void mfl_secagg_graph_seed(uint8_t out[32], const mfl_secagg_params_t *p);

/* 1 if list[0..n) is strictly ascending within 1..max, else 0. */
int mfl_secagg_list_ok(const uint32_t *list, size_t n, uint32_t max);

#endif
