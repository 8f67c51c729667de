/* Upload flow control in the round engine: who may send its update now
 * (see mfl_round_engine_flow_control in round_engine.h). The slots and the
 * queue are an mfl_upload_gate_t; this file ties them to the round. */
#include <sodium.h>
#include <string.h>

#include "core/log.h"
#include "round/round_engine_internal.h"
#include "fed/quant.h"

int mfl_round_engine_flow_control(mfl_round_engine_t *self, mfl_engine_grant_fn *fn, void *ctx,
                                  uint64_t small_bytes)
{
    mfl_upload_gate_destroy(&self->gate);
    self->grant = fn;
    self->grant_ctx = ctx;
    self->small_upload_bytes = small_bytes;
    if (!fn)
        return 0;
    self->gate = mfl_upload_gate_new(self->config.max_concurrent_uploads
                                         ? self->config.max_concurrent_uploads
                                         : 1);
    return self->gate ? 0 : -1;
}

/* Sends the grant; a site that cannot be reached gives its slot back. */
static bool s_send_grant(mfl_round_engine_t *self, const char *site, bool small)
{
    if (self->grant(self->grant_ctx, site, self->round, self->nonce, MFL_ENGINE_NONCE_BYTES) == 0) {
        mfl_debug("round %u: upload granted to site %s (%s%zu in flight, %zu waiting)",
                  self->round, site, small ? "small update, no slot; " : "",
                  mfl_upload_gate_in_flight(self->gate), mfl_upload_gate_waiting(self->gate));
        return true;
    }
    mfl_warn("round %u: upload grant not sent to site %s; its slot goes to the next site",
             self->round, site);
    mfl_upload_gate_release(self->gate, site);
    return false;
}

/* Fills free slots from the queue, oldest first. Only while a round is
 * open: a grant for a closed round would be refused anyway. */
static void s_grant_waiting(mfl_round_engine_t *self)
{
    if (self->phase != MFL_ENGINE_ROUND)
        return;
    char site[MFL_UPLOAD_GATE_SITE_MAX];
    for (const char *next; (next = mfl_upload_gate_next(self->gate)) != NULL;) {
        snprintf(site, sizeof site, "%s", next); /* next's storage is reused */
        s_send_grant(self, site, false);
    }
}

void mfl_engine_flow_release(mfl_round_engine_t *self, const char *site)
{
    if (!self->gate)
        return;
    if (mfl_upload_gate_release(self->gate, site))
        s_grant_waiting(self);
}

void mfl_engine_flow_expire(mfl_round_engine_t *self, uint64_t now_ms)
{
    if (!self->gate)
        return;
    for (size_t i = 0; i < self->n_sites; i++) {
        mfl_engine_site_t *s = &self->sites[i];
        if (self->phase != MFL_ENGINE_ROUND || !mfl_upload_gate_holds(self->gate, s->id)) {
            s->grant_seen = false;
            continue;
        }
        if (!s->grant_seen) {
            s->grant_seen = true;
            s->grant_ms = now_ms;
            continue;
        }
        /* Only while another site waits: a slot nobody needs costs
         * nothing, and a slow honest upload keeps it then. */
        if (!self->config.site_timeout_ms || !mfl_upload_gate_waiting(self->gate) ||
            now_ms <= s->grant_ms + self->config.site_timeout_ms)
            continue;
        s->grant_seen = false;
        if (mfl_upload_gate_release(self->gate, s->id)) {
            mfl_warn("round %u: site %s held an upload slot for %.1f s without sending its "
                     "update; the slot goes to the next site (the update would now be "
                     "refused, REJECT_NOT_GRANTED, until the site asks again)", self->round,
                     s->id, (double)(now_ms - s->grant_ms) / 1000.0);
            s_grant_waiting(self);
        }
    }
}

void mfl_round_engine_upload_progress(mfl_round_engine_t *self, const char *site,
                                      uint64_t now_ms)
{
    mfl_engine_site_t *s = mfl_engine_find_site(self, site);
    if (s && s->grant_seen)
        s->grant_ms = now_ms;
}

void mfl_engine_flow_reset(mfl_round_engine_t *self)
{
    if (self->gate)
        mfl_upload_gate_reset(self->gate);
}

int mfl_round_engine_upload_ready(mfl_round_engine_t *self, const char *peer, uint32_t round,
                                  const uint8_t *nonce, size_t nonce_len,
                                  uint64_t update_bytes, uint64_t now_ms)
{
    mfl_round_engine_site_seen(self, peer, now_ms);
    if (!self->gate)
        return 0;
    if (self->phase == MFL_ENGINE_ABORTED)
        return -1; /* the Bye told the site; see mfl_round_engine_update */
    if (self->phase != MFL_ENGINE_ROUND || round != self->round) {
        mfl_engine_reject(self, peer, MFL_REJECT_WRONG_ROUND, round,
                          "upload request for round %u, but %s", round,
                          self->phase == MFL_ENGINE_ROUND ? "another round is open"
                                                          : "no round is open");
        return -1;
    }
    if (nonce_len != MFL_ENGINE_NONCE_BYTES ||
        sodium_memcmp(nonce, self->nonce, MFL_ENGINE_NONCE_BYTES) != 0) {
        mfl_engine_reject(self, peer, MFL_REJECT_REPLAY, round,
                          "upload request: nonce does not match this attempt of round %u",
                          self->round);
        return -1;
    }
    mfl_engine_site_t *s = mfl_engine_find_site(self, peer);
    if (!s || !s->selected) {
        mfl_engine_reject(self, peer, MFL_REJECT_NOT_SELECTED, round,
                          "upload request: site was not selected for round %u", self->round);
        return -1;
    }
    if (s->reported) {
        mfl_engine_reject(self, peer, MFL_REJECT_DUPLICATE, round,
                          "upload request: site already reported for round %u", self->round);
        return -1;
    }
    /* The bytes Δ travels as: 4·P, or fewer in the encoding its task asked
     * for (fed/quant.h); under secure aggregation the masked words
     * (docs/SECAGG.md). */
    uint32_t enc = mfl_engine_site_encoding(self, s);
    uint64_t masked = mfl_engine_secagg_masked_bytes(self);
    uint64_t want = masked ? masked : mfl_quant_bytes((mfl_quant_kind_t)enc, self->n_state);
    if (update_bytes != want && masked) {
        mfl_engine_reject(self, peer, MFL_REJECT_SHAPE, round,
                          "upload request for %llu bytes; the masked input is %llu bytes",
                          (unsigned long long)update_bytes, (unsigned long long)want);
        return -1;
    }
    if (update_bytes != want) {
        mfl_engine_reject(self, peer, MFL_REJECT_SHAPE, round,
                          "upload request for %llu bytes; Δ is %llu bytes (%zu values as %s)",
                          (unsigned long long)update_bytes, (unsigned long long)want,
                          self->n_state, mfl_quant_name((mfl_quant_kind_t)enc));
        return -1;
    }
    bool small = update_bytes <= self->small_upload_bytes;
    switch (small ? mfl_upload_gate_request_small(self->gate, peer)
                  : mfl_upload_gate_request(self->gate, peer)) {
    case MFL_GATE_GRANTED:
        if (!s_send_grant(self, peer, small))
            s_grant_waiting(self);
        return 0;
    case MFL_GATE_QUEUED:
        mfl_debug("round %u: site %s waits for an upload slot (%zu in flight, %zu waiting)",
                  self->round, peer, mfl_upload_gate_in_flight(self->gate),
                  mfl_upload_gate_waiting(self->gate));
        return 0;
    case MFL_GATE_ERROR:
        break;
    }
    mfl_engine_reject(self, peer, MFL_REJECT_BAD_MESSAGE, round,
                      "upload request could not be queued (out of memory)");
    return -1;
}

size_t mfl_round_engine_uploads_in_flight(const mfl_round_engine_t *self)
{
    return self->gate ? mfl_upload_gate_in_flight(self->gate) : 0;
}

size_t mfl_round_engine_uploads_waiting(const mfl_round_engine_t *self)
{
    return self->gate ? mfl_upload_gate_waiting(self->gate) : 0;
}
