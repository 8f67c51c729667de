/* The compressed broadcast at the coordinator (fed/bcast.h, docs/WIRE.md
 * "Compressed broadcast"): θ̂, the model every site trains from, made once
 * per round from θ and the previous θ̂; a site that holds the previous θ̂
 * gets the encoded difference, any other the whole θ̂ in float32.
 *
 * θ̂ depends only on θ, the previous θ̂ and the round's seed, never on
 * which site holds what: `metafl simulate`, the daemons and a resumed run
 * build the same sequence, bit for bit. θ̂ of round 0 is θ₀ (or a resumed
 * run's θ when its checkpoint has no θ̂), so round 1's difference is zero
 * and every site gets the model in full anyway. */
#include "round/round_engine_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/log.h"
#include "fed/bcast.h"

bool mfl_engine_bcast_on(const mfl_round_engine_t *self)
{
    return self->config.broadcast_encoding != MFL_QUANT_FP32 && !self->selecting &&
           !self->config.secagg_enabled;
}

void mfl_engine_bcast_free(mfl_round_engine_t *self)
{
    free(self->bcast);
    free(self->bcast_views);
    free(self->bcast_tensor_hash);
    free(self->bcast_q);
    free(self->bcast_q_views);
    free(self->bcast_q_hash);
    free(self->bcast_scale);
    self->bcast = NULL;
    self->bcast_views = self->bcast_q_views = NULL;
    self->bcast_tensor_hash = self->bcast_q_hash = NULL;
    self->bcast_q = NULL;
    self->bcast_scale = NULL;
    self->bcast_diff = false;
    self->bcast_round = 0;
}

/* θ̂'s buffers and views for the bound model; θ̂ = `hat` (NULL: θ). */
static int s_alloc(mfl_round_engine_t *self, const float *hat)
{
    size_t nt = self->n_tensors ? self->n_tensors : 1, P = self->n_state;
    self->bcast = malloc(P * sizeof(float));
    self->bcast_views = calloc(nt, sizeof *self->bcast_views);
    self->bcast_q_views = calloc(nt, sizeof *self->bcast_q_views);
    self->bcast_tensor_hash = malloc(nt * 32);
    self->bcast_q_hash = malloc(nt * 32);
    self->bcast_scale = calloc(nt, sizeof *self->bcast_scale);
    /* the codes: 2 (fp16) or 1 (int8) bytes a value */
    size_t qb = mfl_quant_bytes((mfl_quant_kind_t)self->config.broadcast_encoding, P);
    self->bcast_q = malloc(qb ? qb : 2 * P);
    if (!self->bcast || !self->bcast_views || !self->bcast_q_views || !self->bcast_tensor_hash ||
        !self->bcast_q_hash || !self->bcast_scale || !self->bcast_q) {
        mfl_engine_bcast_free(self);
        return -1;
    }
    memcpy(self->bcast, hat ? hat : self->theta, P * sizeof(float));
    for (size_t i = 0; i < self->n_tensors; i++) {
        self->bcast_views[i] = self->views[i];
        self->bcast_views[i].data = self->bcast + self->tensor_offset[i];
        self->bcast_views[i].blake2b = self->bcast_tensor_hash + 32 * i;
    }
    return 0;
}

static void s_hash_model(mfl_round_engine_t *self)
{
    for (size_t i = 0; i < self->n_tensors; i++)
        crypto_generichash(self->bcast_tensor_hash + 32 * i, 32,
                           (const unsigned char *)self->bcast_views[i].data,
                           (unsigned long long)self->bcast_views[i].count * sizeof(float), NULL,
                           0);
    mfl_audit_update_digest(self->bcast_tensor_hash, self->n_tensors, self->bcast_hash);
}

int mfl_engine_bcast_adopt(mfl_round_engine_t *self, const float *hat, uint32_t round)
{
    mfl_engine_bcast_free(self);
    if (s_alloc(self, hat) < 0)
        return -1;
    s_hash_model(self);
    self->bcast_round = round;
    return 0;
}

/* θ̂ of self->round from θ and the previous θ̂ (tensor i's rounding draws
 * from stream MFL_BCAST_STREAM + i of the round's seed). */
static int s_step(mfl_round_engine_t *self)
{
    mfl_quant_kind_t kind = (mfl_quant_kind_t)self->config.broadcast_encoding;
    memcpy(self->bcast_prev_hash, self->bcast_hash, 32);
    int rc = 0;
    for (size_t i = 0; i < self->n_tensors && rc == 0; i++) {
        size_t off = self->tensor_offset[i], n = (size_t)self->views[i].count;
        uint8_t *q = self->bcast_q + mfl_quant_bytes(kind, off);
        mfl_rng_t r;
        mfl_rng_seed(&r, self->round_seed, MFL_BCAST_STREAM + (uint64_t)i);
        rc = mfl_bcast_encode(kind, self->theta + off, self->bcast + off, n, &r, q,
                              &self->bcast_scale[i]);
        crypto_generichash(self->bcast_q_hash + 32 * i, 32, q, mfl_quant_bytes(kind, n), NULL,
                           0);
        mfl_tensor_t *v = &self->bcast_q_views[i];
        *v = self->views[i];
        v->data = (const float *)(const void *)q; /* encoded bytes (core/tensor.h) */
        v->encoding = (uint32_t)kind;
        v->scale = self->bcast_scale[i];
        v->blake2b = self->bcast_q_hash + 32 * i;
    }
    if (rc < 0) {
        /* a difference beyond float range: θ̂ = θ, sent in full to all
         * (the same on every run: it depends on θ and θ̂ only) */
        mfl_warn("round %u: the model's difference does not encode as %s; the model goes out "
                 "in full this round", self->round, mfl_quant_name(kind));
        memcpy(self->bcast, self->theta, self->n_state * sizeof(float));
        self->bcast_diff = false;
    } else {
        self->bcast_diff = true;
    }
    s_hash_model(self);
    return 0;
}

int mfl_engine_bcast_open(mfl_round_engine_t *self)
{
    if (!mfl_engine_bcast_on(self)) {
        /* off (or selecting): the sites are sent θ; a later θ̂ starts anew */
        if (self->bcast)
            mfl_engine_bcast_free(self);
        return 0;
    }
    if (self->bcast && self->bcast_round == self->round)
        return 0; /* another attempt of the round: the same θ̂ and difference */
    if (!self->bcast && mfl_engine_bcast_adopt(self, NULL, self->round - 1) < 0)
        goto out_oom;
    if (s_step(self) < 0)
        goto out_oom;
    self->bcast_round = self->round;
    return 0;
out_oom:
    mfl_engine_bcast_free(self);
    mfl_error("round %u: out of memory for the compressed broadcast; θ goes out in full",
              self->round);
    return -1;
}

bool mfl_engine_bcast_active(const mfl_round_engine_t *self)
{
    return self->bcast && self->bcast_round == self->round && mfl_engine_bcast_on(self);
}

const mfl_tensor_t *mfl_engine_bcast_task(mfl_round_engine_t *self, mfl_engine_site_t *s,
                                          mfl_round_task_t *task)
{
    s->sent_diff = false;
    if (!mfl_engine_bcast_active(self))
        return self->views;
    memcpy(task->model_hash, self->bcast_hash, 32);
    task->model_hash_len = 32;
    uint32_t kind = self->config.broadcast_encoding;
    if (self->bcast_diff && s->has_base && (s->broadcasts & (1u << kind)) &&
        memcmp(s->base, self->bcast_prev_hash, 32) == 0) {
        task->has_broadcast_base = true;
        memcpy(task->broadcast_base, self->bcast_prev_hash, 32);
        s->sent_diff = true;
        return self->bcast_q_views;
    }
    return self->bcast_views;
}

void mfl_engine_bcast_reported(mfl_round_engine_t *self, mfl_engine_site_t *s)
{
    if (!mfl_engine_bcast_active(self))
        return;
    s->has_base = true;
    memcpy(s->base, self->bcast_hash, 32);
}

size_t mfl_engine_bcast_reason(const mfl_round_engine_t *self, char *out, size_t len)
{
    if (!mfl_engine_bcast_active(self))
        return 0;
    char model[17], prev[17];
    for (int i = 0; i < 8; i++) {
        snprintf(model + 2 * i, 3, "%02x", self->bcast_hash[i]);
        snprintf(prev + 2 * i, 3, "%02x", self->bcast_prev_hash[i]);
    }
    int n = self->bcast_diff
                ? snprintf(out, len, "broadcast %s: model %s…, difference to %s…",
                           mfl_quant_name((mfl_quant_kind_t)self->config.broadcast_encoding),
                           model, prev)
                : snprintf(out, len, "broadcast float32: model %s…", model);
    return n > 0 ? (size_t)n : 0;
}

/* ---- public ---------------------------------------------------------- */

int mfl_round_engine_site_need_model(mfl_round_engine_t *self, const char *site, uint32_t round,
                                     const uint8_t *nonce, size_t nonce_len, const char *reason)
{
    mfl_engine_site_t *s = mfl_engine_find_site(self, site);
    if (!s)
        return -1;
    s->has_base = false;
    if (self->phase != MFL_ENGINE_ROUND || round != self->round || !s->selected || s->reported ||
        s->withdrawn || nonce_len != MFL_ENGINE_NONCE_BYTES ||
        memcmp(nonce, self->nonce, MFL_ENGINE_NONCE_BYTES) != 0 || !s->sent_diff)
        return -1; /* stale, or it was sent the model in full: a failure */
    mfl_warn("round %u: site %s could not apply the broadcast difference (%s); sending the "
             "model in full", round, site, reason && *reason ? reason : "no reason given");
    mfl_engine_send_round_task(self, s);
    return 0;
}

const float *mfl_round_engine_broadcast_theta(const mfl_round_engine_t *self)
{
    return mfl_engine_bcast_active(self) ? self->bcast : self->theta;
}
