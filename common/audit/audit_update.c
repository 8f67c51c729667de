/* Building an audit record from a site's signed UpdateHeader, so both sides
 * log exactly what was signed. */
#include <string.h>

#include "audit/audit.h"
#include "core/log.h"
#include "metafl.pb-c.h"

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
    if (h->n_tensor_hashes > 0 && h->tensor_hashes[0].len == 32) {
        rec->has_delta_hash = true;
        memcpy(rec->delta_hash, h->tensor_hashes[0].data, 32);
    }
    if (h->privacy && h->privacy->applied) {
        rec->has_privacy = true;
        rec->privacy.clip = h->privacy->clip_norm;
        rec->privacy.sigma = h->privacy->noise_multiplier;
        rec->privacy.q = 1.0;
        rec->privacy.steps = 1;
        rec->privacy.epsilon = h->privacy->epsilon_spent;
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
