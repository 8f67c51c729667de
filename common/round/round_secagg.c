/* The round engine's hook for secure aggregation (docs/SECAGG.md): the
 * round's updates arrive as one unmasked sum instead of one by one. */
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "core/log.h"
#include "round/round_engine_internal.h"
#include "secagg/secagg_update.h"

int mfl_round_engine_secure_sum(mfl_round_engine_t *self, uint32_t round, const uint8_t *nonce,
                                const char *const *sites, size_t n_sites, const void *sum,
                                size_t n_words, double loss_before_sum, double loss_after_sum,
                                const uint8_t transcript[32], uint64_t now_ms, char *err,
                                size_t errlen)
{
    if (self->phase != MFL_ENGINE_ROUND || round != self->round ||
        sodium_memcmp(nonce, self->nonce, MFL_ENGINE_NONCE_BYTES) != 0) {
        mfl_errf(err, errlen, "secure sum for round %u: not this round's open attempt", round);
        return -1;
    }
    if (n_words != self->n_state + 1 || n_sites == 0) {
        mfl_errf(err, errlen, "secure sum of %zu words from %zu sites; expected %zu words",
                 n_words, n_sites, self->n_state + 1);
        return -1;
    }
    mfl_engine_site_t *found[MFL_COORD_MAX_SITES];
    if (n_sites > MFL_COORD_MAX_SITES) {
        mfl_errf(err, errlen, "secure sum from %zu sites; at most %d", n_sites,
                 MFL_COORD_MAX_SITES);
        return -1;
    }
    for (size_t i = 0; i < n_sites; i++) {
        found[i] = mfl_engine_find_site(self, sites[i]);
        if (!found[i] || !found[i]->selected || found[i]->reported) {
            mfl_errf(err, errlen, "secure sum names site %s: not selected, or reported", sites[i]);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (found[j] == found[i]) {
                mfl_errf(err, errlen, "secure sum names site %s twice", sites[i]);
                return -1;
            }
    }
    if (self->audit_down) {
        mfl_errf(err, errlen, "the coordinator cannot write its audit log (%s); sum not taken",
                 self->audit_err);
        return -1;
    }
    if (self->audit) {
        mfl_audit_record_t rec;
        mfl_audit_record_init(&rec, MFL_AUDIT_SECURE_SUM, self->round, NULL);
        memcpy(rec.nonce, self->nonce, MFL_ENGINE_NONCE_BYTES);
        rec.nonce_len = MFL_ENGINE_NONCE_BYTES;
        rec.n = n_sites;
        rec.has_delta_hash = true;
        memcpy(rec.delta_hash, transcript, 32);
        size_t at = (size_t)snprintf(rec.reason, sizeof rec.reason, "sites");
        for (size_t i = 0; i < n_sites && at < sizeof rec.reason; i++)
            at += (size_t)snprintf(rec.reason + at, sizeof rec.reason - at, " %s", sites[i]);
        if (mfl_engine_audit_append(self, &rec, false) < 0) {
            mfl_errf(err, errlen, "the coordinator cannot write its audit log (%s); sum not taken",
                     self->audit_err);
            return -1;
        }
    }
    /* the weight word: Σ round(w·2^8), in the aggregate's word width */
    const double weight_q = mfl_secagg_update_word_bits(self->agg) == 32
                                ? (double)((const uint32_t *)sum)[self->n_state]
                                : (double)((const uint64_t *)sum)[self->n_state];
    if (mfl_secagg_update_fold(self->agg, sum, n_sites, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < n_sites; i++)
        found[i]->reported = true;
    self->n_accepted += n_sites;
    self->weight_sum += ldexp(weight_q, -MFL_AGGREGATE_WEIGHT_BITS);
    if (isfinite(loss_before_sum) && isfinite(loss_after_sum)) { /* NaN: a site sent none */
        self->loss_before_sum += loss_before_sum;
        self->loss_after_sum += loss_after_sum;
        self->loss_weight_sum += ldexp(weight_q, -MFL_AGGREGATE_WEIGHT_BITS);
    }
    if (self->n_accepted == self->n_selected)
        mfl_engine_close_round(self, now_ms, false);
    return 0;
}
