/* Ed25519 signing and verification of update headers. */
#include "wire/update_sign.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int mfl_update_sign(const mfl_identity_t *identity, const Metafl__UpdateHeader *hdr,
                    const mfl_tensor_t *tensors, size_t n_tensors, mfl_signed_update_t *out,
                    char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (sodium_init() < 0) {
        mfl_errf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    const char *name = mfl_identity_name(identity);
    if (!hdr->site || strcmp(hdr->site, name) != 0) {
        mfl_errf(err, errlen, "update header names site '%s' but the key is '%s'",
                 hdr->site ? hdr->site : "", name);
        return -1;
    }
    ProtobufCBinaryData *bins = calloc(n_tensors ? n_tensors : 1, sizeof *bins);
    out->hashes = malloc((n_tensors ? n_tensors : 1) * MFL_HASH_BYTES);
    if (!bins || !out->hashes) {
        free(bins);
        mfl_signed_update_clear(out);
        mfl_errf(err, errlen, "out of memory");
        return -1;
    }
    out->n_tensors = n_tensors;
    for (size_t i = 0; i < n_tensors; i++) {
        uint8_t *h = out->hashes + i * MFL_HASH_BYTES;
        if (tensors[i].blake2b)
            memcpy(h, tensors[i].blake2b, MFL_HASH_BYTES);
        else
            mfl_tensor_hash(tensors[i].data, tensors[i].count, h);
        bins[i].data = h;
        bins[i].len = MFL_HASH_BYTES;
    }
    Metafl__UpdateHeader h = *hdr;
    h.n_tensor_hashes = n_tensors;
    h.tensor_hashes = bins;
    out->header_len = metafl__update_header__get_packed_size(&h);
    out->header = malloc(out->header_len ? out->header_len : 1);
    if (!out->header) {
        free(bins);
        mfl_signed_update_clear(out);
        mfl_errf(err, errlen, "out of memory");
        return -1;
    }
    metafl__update_header__pack(&h, out->header);
    free(bins);
    crypto_sign_detached(out->signature, NULL, out->header, out->header_len,
                         mfl_identity_sign_sk(identity));
    metafl__update__init(&out->update);
    out->update.header.data = out->header;
    out->update.header.len = out->header_len;
    out->update.signature.data = out->signature;
    out->update.signature.len = MFL_SIGNATURE_BYTES;
    return 0;
}

void mfl_signed_update_clear(mfl_signed_update_t *u)
{
    if (!u)
        return;
    free(u->header);
    free(u->hashes);
    memset(u, 0, sizeof *u);
}

static void s_set(int *reason, int why)
{
    if (reason)
        *reason = why;
}

Metafl__UpdateHeader *mfl_update_verify(const Metafl__Update *update,
                                        const mfl_public_key_t *site_key,
                                        const mfl_tensor_t *tensors, size_t n_tensors,
                                        int *reason, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        s_set(reason, METAFL__REJECT_REASON__REJECT_SIGNATURE);
        mfl_errf(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    if (!update || update->signature.len != MFL_SIGNATURE_BYTES ||
        crypto_sign_verify_detached(update->signature.data, update->header.data,
                                    update->header.len, site_key->sign_pk) != 0) {
        s_set(reason, METAFL__REJECT_REASON__REJECT_SIGNATURE);
        mfl_errf(err, errlen, "update signature does not verify against %s's key",
                 site_key->name);
        return NULL;
    }
    Metafl__UpdateHeader *h =
        metafl__update_header__unpack(NULL, update->header.len, update->header.data);
    if (!h) {
        s_set(reason, METAFL__REJECT_REASON__REJECT_BAD_MESSAGE);
        mfl_errf(err, errlen, "signed update header from %s does not decode", site_key->name);
        return NULL;
    }
    if (!h->site || strcmp(h->site, site_key->name) != 0) {
        s_set(reason, METAFL__REJECT_REASON__REJECT_WRONG_SITE);
        mfl_errf(err, errlen, "update header claims site '%.64s' but is signed by %s",
                 h->site ? h->site : "", site_key->name);
        goto out_fail;
    }
    if (tensors) {
        if (h->n_tensor_hashes != n_tensors) {
            s_set(reason, METAFL__REJECT_REASON__REJECT_HASH);
            mfl_errf(err, errlen, "update from %s signs %zu tensor hashes but carries %zu tensors",
                     site_key->name, h->n_tensor_hashes, n_tensors);
            goto out_fail;
        }
        for (size_t i = 0; i < n_tensors; i++) {
            uint8_t mine[MFL_HASH_BYTES];
            const uint8_t *got = tensors[i].blake2b;
            if (!got) {
                mfl_tensor_hash(tensors[i].data, tensors[i].count, mine);
                got = mine;
            }
            if (h->tensor_hashes[i].len != MFL_HASH_BYTES ||
                sodium_memcmp(h->tensor_hashes[i].data, got, MFL_HASH_BYTES) != 0) {
                s_set(reason, METAFL__REJECT_REASON__REJECT_HASH);
                mfl_errf(err, errlen, "update from %s: tensor %zu ('%s') differs from the signed hash",
                         site_key->name, i, tensors[i].name ? tensors[i].name : "");
                goto out_fail;
            }
        }
    }
    return h;
out_fail:
    metafl__update_header__free_unpacked(h, NULL);
    return NULL;
}

int mfl_update_check_fresh(const Metafl__UpdateHeader *hdr, uint32_t round,
                           const uint8_t *nonce, size_t nonce_len, int *reason,
                           char *err, size_t errlen)
{
    if (hdr->round != round) {
        s_set(reason, METAFL__REJECT_REASON__REJECT_WRONG_ROUND);
        mfl_errf(err, errlen, "update from %s is for round %u, current round is %u",
                 hdr->site ? hdr->site : "?", hdr->round, round);
        return -1;
    }
    if (hdr->nonce.len != nonce_len || nonce_len == 0 ||
        sodium_memcmp(hdr->nonce.data, nonce, nonce_len) != 0) {
        s_set(reason, METAFL__REJECT_REASON__REJECT_REPLAY);
        mfl_errf(err, errlen, "update from %s carries another nonce for round %u (a replay?)",
                 hdr->site ? hdr->site : "?", round);
        return -1;
    }
    return 0;
}
