/* Building an audit record from a site's signed UpdateHeader, so both sides
 * log exactly what was signed. */
#include <string.h>

#include "audit/audit_internal.h"
#include "core/log.h"
#include "wire/task.h"

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
    mfl_update_header_t h;
    if (mfl_update_header_decode(header, header_len, &h, err, errlen) != 0)
        return -1;
    if (h.site[0] == '\0') {
        mfl_errf(err, errlen, "signed update header has no usable site name");
        return -1;
    }
    mfl_audit_record_init(rec, kind, h.round, h.site);
    if (h.nonce_len)
        memcpy(rec->nonce, h.nonce, h.nonce_len);
    rec->nonce_len = h.nonce_len;
    rec->n = h.n_samples;
    rec->norm = h.delta_norm;
    if (h.n_tensor_hashes > 0) {
        if (h.digest_error[0]) {
            mfl_errf(err, errlen, "%s", h.digest_error);
            return -1;
        }
        memcpy(rec->delta_hash, h.digest, sizeof rec->delta_hash);
    }
    rec->has_delta_hash = h.n_tensor_hashes > 0;
    if (h.has_privacy && h.privacy.applied) {
        rec->has_privacy = true;
        rec->privacy.clip = h.privacy.clip_norm;
        /* The σ the round is accounted at: with distributed noise (a
         * 1/t share added under SecAgg) the sum's σ, not the share
         * (docs/PRIVACY.md); the signed header keeps both. */
        rec->privacy.sigma = h.privacy.noise_shares > 0 ? h.privacy.sum_noise_multiplier
                                                        : h.privacy.noise_multiplier;
        /* q, steps, δ as the site signed them (privacy record fields 41-43);
         * 0 = an older site: one site-level release (q = 1, one step). */
        rec->privacy.q = h.privacy.sample_rate > 0 ? h.privacy.sample_rate : 1.0;
        rec->privacy.steps = h.privacy.steps > 0 ? h.privacy.steps : 1;
        rec->privacy.epsilon = h.privacy.epsilon_spent;
        rec->privacy.delta = h.privacy.delta;
    }
    memcpy(rec->signed_header, header, header_len);
    rec->signed_header_len = header_len;
    memcpy(rec->update_sig, signature, 64);
    rec->has_update_sig = true;
    return 0;
}
