/* Signed updates: the site signs the serialized UpdateHeader (round, nonce,
 * site, n_samples, tensor hashes, metrics, privacy record, delta norm) with
 * Ed25519; the coordinator verifies it against the site's allow-listed key.
 * The signature binds the Δ bytes through their BLAKE2b-256 hashes, so it
 * also makes the audit records self-verifying. */
#ifndef MFL_WIRE_UPDATE_SIGN_H
#define MFL_WIRE_UPDATE_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "metafl.pb-c.h"
#include "wire/keys.h"
#include "wire/message.h"

#define MFL_SIGNATURE_BYTES 64

/* A signed update ready to send: header bytes + signature, and the tensor
 * hashes (n × 32 bytes) to pass as mfl_tensor_t.blake2b so they are not
 * hashed twice. Owned; free with mfl_signed_update_clear. */
typedef struct {
    uint8_t *header;          /* serialized UpdateHeader */
    size_t header_len;
    uint8_t signature[MFL_SIGNATURE_BYTES];
    uint8_t *hashes;          /* n_tensors × MFL_HASH_BYTES */
    size_t n_tensors;
    Metafl__Update update;    /* points into header/signature: set env.update = &u.update */
} mfl_signed_update_t;

/* Hashes `tensors`, writes the hashes into hdr->tensor_hashes (temporarily:
 * hdr is restored before return, so the caller keeps ownership), requires
 * hdr->site == the identity's name, serializes and signs. 0, or -1 + err.
 * After success set tensors[i].blake2b = out->hashes + 32*i before sending. */
int mfl_update_sign(const mfl_identity_t *identity, const Metafl__UpdateHeader *hdr,
                    const mfl_tensor_t *tensors, size_t n_tensors, mfl_signed_update_t *out,
                    char *err, size_t errlen);
void mfl_signed_update_clear(mfl_signed_update_t *u);

/* Verifies `update` against `site_key`: the signature (REJECT_SIGNATURE),
 * then header decode (REJECT_BAD_MESSAGE), header.site == site_key->name
 * (REJECT_WRONG_SITE), and, if `tensors` is non-NULL, the signed hashes
 * equal the received tensors' hashes, same count (REJECT_HASH). Returns the
 * unpacked header (free with metafl__update_header__free_unpacked(h, NULL)),
 * or NULL with *reason and err. Thread-safe. */
Metafl__UpdateHeader *mfl_update_verify(const Metafl__Update *update,
                                        const mfl_public_key_t *site_key,
                                        const mfl_tensor_t *tensors, size_t n_tensors,
                                        int *reason, char *err, size_t errlen);

/* The coordinator's freshness check: hdr->round == round and hdr->nonce ==
 * nonce (constant time). REJECT_WRONG_ROUND for another round, REJECT_REPLAY
 * for the right round with a different nonce (a replay from an earlier run).
 * 0 or -1 with *reason and err. Duplicates within a round (same site twice)
 * are the coordinator's to track: it knows who already reported. */
int mfl_update_check_fresh(const Metafl__UpdateHeader *hdr, uint32_t round,
                           const uint8_t *nonce, size_t nonce_len, int *reason,
                           char *err, size_t errlen);

#endif
