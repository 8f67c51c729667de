/* Building an audit record from a site's signed UpdateHeader, so both sides
 * log exactly what was signed. */
#include <string.h>

#include "audit/audit_internal.h"
#include "core/log.h"
#include "metafl.pb-c.h"

int mfl_audit_digest_of_header(const Metafl__UpdateHeader *h, uint8_t out[32], char *err,
                               size_t errlen)
{
    if (h->n_tensor_hashes > MFL_AUDIT_MAX_TENSORS) {
        mfl_errf(err, errlen, "update has %zu tensors, over the audit limit of %d",
                 h->n_tensor_hashes, MFL_AUDIT_MAX_TENSORS);
        return -1;
    }
    uint8_t hashes[32 * MFL_AUDIT_MAX_TENSORS];
    for (size_t i = 0; i < h->n_tensor_hashes; i++) {
        if (h->tensor_hashes[i].len != 32) {
            mfl_errf(err, errlen, "tensor hash %zu is %zu bytes, not 32", i,
                     h->tensor_hashes[i].len);
            return -1;
        }
        memcpy(hashes + 32 * i, h->tensor_hashes[i].data, 32);
    }
    mfl_audit_update_digest(hashes, h->n_tensor_hashes, out);
    return 0;
}

int mfl_audit_record_from_update(mfl_audit_record_t *rec, mfl_audit_kind_t kind,
                                 const uint8_t *header, size_t header_len,
                                 const uint8_t signature[64], char *err, size_t errlen)
{
    memset(rec, 0, sizeof *rec);
    if (header_len > MFL_AUDIT_SIGNED_MAX) {
        mfl_errf(err, errlen, "signed update header is %zu bytes, over the audit limit of %d",
                 header_len, MFL_AUDIT_SIGNED_MAX);
        return -1;
    }
    Metafl__UpdateHeader *h = metafl__update_header__unpack(NULL, header_len, header);
    if (!h) {
        mfl_errf(err, errlen, "signed update header does not decode");
        return -1;
    }
    int rc = -1;
    size_t site_len = h->site ? strlen(h->site) : 0;
    if (site_len == 0 || site_len > MFL_AUDIT_NAME_MAX) {
        mfl_errf(err, errlen, "signed update header has no usable site name");
        goto out;
    }
    if (h->nonce.len > MFL_AUDIT_NONCE_MAX) {
        mfl_errf(err, errlen, "nonce of %zu bytes is over the audit limit of %d",
                 h->nonce.len, MFL_AUDIT_NONCE_MAX);
        goto out;
    }
    mfl_audit_record_init(rec, kind, h->round, h->site);
    if (h->nonce.len)
        memcpy(rec->nonce, h->nonce.data, h->nonce.len);
    rec->nonce_len = h->nonce.len;
    rec->n = h->n_samples;
    rec->norm = h->delta_norm;
    if (h->n_tensor_hashes > 0 &&
        mfl_audit_digest_of_header(h, rec->delta_hash, err, errlen) != 0)
        goto out;
    rec->has_delta_hash = h->n_tensor_hashes > 0;
    if (h->privacy && h->privacy->applied) {
        rec->has_privacy = true;
        rec->privacy.clip = h->privacy->clip_norm;
        rec->privacy.sigma = h->privacy->noise_multiplier;
        /* q, steps, δ as the site signed them (privacy record fields 41-43);
         * 0 = an older site: one site-level release (q = 1, one step). */
        rec->privacy.q = h->privacy->sample_rate > 0 ? h->privacy->sample_rate : 1.0;
        rec->privacy.steps = h->privacy->steps > 0 ? h->privacy->steps : 1;
        rec->privacy.epsilon = h->privacy->epsilon_spent;
        rec->privacy.delta = h->privacy->delta;
    }
    memcpy(rec->signed_header, header, header_len);
    rec->signed_header_len = header_len;
    memcpy(rec->update_sig, signature, 64);
    rec->has_update_sig = true;
    rc = 0;
out:
    metafl__update_header__free_unpacked(h, NULL);
    if (rc != 0)
        memset(rec, 0, sizeof *rec);
    return rc;
}
