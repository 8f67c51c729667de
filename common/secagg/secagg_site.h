/* A site's side of one secure-aggregation attempt (docs/SECAGG.md), as a
 * transport-free state machine: each call takes what the coordinator sent
 * and writes what the site sends back. Phases advance in order; a call out
 * of order, or a request an honest site must not answer, returns a non-zero
 * mfl_secagg_status_t with err saying why, and leaves the state unchanged.
 *
 * The rule that keeps a site's update private: it reveals, for any one
 * peer, either its share of the peer's self-mask seed (the peer survived)
 * or its share of the peer's mask key (the peer dropped), never both, and
 * answers one unmask request per attempt, after signing one survivor list.
 *
 * Secrets (two X25519 secret keys, the seed, the shares it holds) live in
 * sodium_malloc memory, wiped by destroy. Not thread-safe. */
#ifndef MFL_SECAGG_SITE_H
#define MFL_SECAGG_SITE_H

#include <stddef.h>
#include <stdint.h>

#include "secagg/secagg_msg.h"

typedef struct mfl_secagg_site mfl_secagg_site_t;

/* A site `index` (1..n) for the attempt `p` (copied; must pass
 * mfl_secagg_params_check), signing with its Ed25519 secret key `sign_sk`
 * (64 bytes, copied into guarded memory), checking peers against `roster`
 * (n Ed25519 public keys, roster[i - 1] for index i, copied: the
 * consortium's allow-list, which the coordinator cannot change). NULL with
 * err on bad arguments or out of memory. */
mfl_secagg_site_t *mfl_secagg_site_new(const mfl_secagg_params_t *p, uint32_t index,
                                       const uint8_t sign_sk[64], const uint8_t (*roster)[32],
                                       char *err, size_t errlen);

/* Frees and wipes; accepts NULL and *self_p == NULL; nulls *self_p. */
void mfl_secagg_site_destroy(mfl_secagg_site_t **self_p);

/* Phase 1: draws fresh keys and seed, writes the signed advertisement. */
mfl_secagg_status_t mfl_secagg_site_advertise(mfl_secagg_site_t *self, mfl_secagg_advert_t *out,
                                              char *err, size_t errlen);

/* Phase 2: takes U1 (`adverts`, n of them, any order; borrowed) and writes
 * into `out` (room for n_sites entries) one encrypted share box per
 * neighbour in U1, *n_out of them. Refuses (E_SIGNATURE) an advert that
 * does not verify against the roster, (E_MALFORMED) a bad or repeated
 * index, a list without this site's own advert unchanged, repeated keys,
 * or fewer than t sites in its neighbourhood. */
mfl_secagg_status_t mfl_secagg_site_share(mfl_secagg_site_t *self, const mfl_secagg_advert_t *adverts,
                                          size_t n, mfl_secagg_share_ct_t *out, size_t *n_out,
                                          char *err, size_t errlen);

/* Phase 3: takes the boxes addressed to this site (`in`, n; borrowed), the
 * senders being its view of U2, and masks `x` (length words of the
 * attempt's width, uint64_t or uint32_t: the fixed-point update) into `y`
 * (the same; may equal x): y = x + PRG(seed) ± PRG(pairwise key) for each
 * neighbour in U2, mod 2^64 or 2^32, in one pass over y. Refuses
 * (E_MALFORMED) a box that does not open or is not from a U1 neighbour to
 * this site, a repeated sender, or fewer than t in its U2 neighbourhood. */
mfl_secagg_status_t mfl_secagg_site_mask(mfl_secagg_site_t *self, const mfl_secagg_share_ct_t *in,
                                         size_t n, const void *x, void *y, char *err,
                                         size_t errlen);

/* Phase 4: signs the survivor list U3 (strictly ascending, containing this
 * site, ≥ t sites, within U1); once per attempt. */
mfl_secagg_status_t mfl_secagg_site_signoff(mfl_secagg_site_t *self, const uint32_t *survivors,
                                            size_t n, mfl_secagg_signoff_t *out, char *err,
                                            size_t errlen);

/* Phase 5: answers one unmask request. Checks the survivors are the list
 * this site signed and carry ≥ t valid signoffs of distinct survivors;
 * refuses (E_REFUSED) a request whose dropped list names a survivor or this
 * site, or any share of a kind this site already revealed the other kind of
 * for that peer; then writes into `out` (room for n_sites) its seed share
 * of every survivor it holds one of and its key share of every dropped
 * site it holds one of, *n_out entries. Once per attempt. */
mfl_secagg_status_t mfl_secagg_site_unmask(mfl_secagg_site_t *self,
                                           const mfl_secagg_unmask_req_t *req,
                                           mfl_secagg_reveal_t *out, size_t *n_out, char *err,
                                           size_t errlen);

/* The site's phase: 0 new, 1 advertised, 2 shared, 3 masked, 4 signed,
 * 5 done. */
int mfl_secagg_site_phase(const mfl_secagg_site_t *self);

#endif
