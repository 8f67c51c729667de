/* A site's part in one securely aggregated round (site_secagg.h). */
#include "site/site_secagg.h"

#include <malloc.h> /* malloc_usable_size: a kept buffer's size */
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "fed/aggregate.h"
#include "secagg/secagg_msg.h"
#include "secagg/secagg_site.h"
#include "secagg/secagg_update.h"

struct mfl_site_secagg_spare {
    mfl_aggregate_t *enc;   /* with the key below */
    size_t enc_params;
    unsigned enc_bits, enc_frac;
    _Atomic(void *) x;      /* a words' buffer (malloc'd), or NULL */
};

mfl_site_secagg_spare_t *mfl_site_secagg_spare_new(void)
{
    mfl_site_secagg_spare_t *spare = calloc(1, sizeof *spare);
    if (spare)
        atomic_init(&spare->x, NULL);
    return spare;
}

void mfl_site_secagg_spare_destroy(mfl_site_secagg_spare_t **spare_p)
{
    if (!spare_p || !*spare_p)
        return;
    mfl_site_secagg_spare_t *spare = *spare_p;
    mfl_aggregate_destroy(&spare->enc);
    free(atomic_exchange(&spare->x, NULL));
    free(spare);
    *spare_p = NULL;
}

void mfl_site_secagg_spare_return(mfl_site_secagg_spare_t *spare, void *words)
{
    if (!spare) {
        free(words);
        return;
    }
    free(atomic_exchange(&spare->x, words));
}

struct mfl_site_secagg {
    mfl_site_secagg_spare_t *spare; /* where enc and x go on destroy (NULL: freed) */
    size_t n_params;
    unsigned frac_bits;
    mfl_secagg_params_t params;
    uint32_t index;
    mfl_secagg_site_t *sm;
    mfl_aggregate_t *enc; /* the quantisation the coordinator's aggregate uses */
    void *x;              /* the encoded update, masked in place (words of the width) */
    bool have_input;
    bool masked;          /* x holds the masked words */
    bool masked_grant;    /* the setup asks for a grant before the masked input */
};

void mfl_site_secagg_destroy(mfl_site_secagg_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_site_secagg_t *self = *self_p;
    mfl_secagg_site_destroy(&self->sm);
    const size_t x_bytes = (size_t)self->params.length * mfl_secagg_word_bytes(&self->params);
    if (self->x)
        sodium_memzero(self->x, x_bytes);
    mfl_site_secagg_spare_t *spare = self->spare;
    if (spare && self->enc) {
        mfl_aggregate_destroy(&spare->enc);
        spare->enc = self->enc;
        spare->enc_params = self->n_params;
        spare->enc_bits = self->params.word_bits;
        spare->enc_frac = self->frac_bits;
        self->enc = NULL;
    }
    if (spare && self->x) {
        mfl_site_secagg_spare_return(spare, self->x);
        self->x = NULL;
    }
    mfl_aggregate_destroy(&self->enc);
    free(self->x);
    free(self);
    *self_p = NULL;
}

mfl_site_secagg_t *mfl_site_secagg_new(const mfl_round_task_t *task, const char *self_id,
                                       const uint8_t sign_sk[64], const mfl_allow_list_t *roster,
                                       size_t n_params, char *err, size_t errlen)
{
    return mfl_site_secagg_new_spare(task, self_id, sign_sk, roster, n_params, NULL, err,
                                     errlen);
}

mfl_site_secagg_t *mfl_site_secagg_new_spare(const mfl_round_task_t *task, const char *self_id,
                                             const uint8_t sign_sk[64],
                                             const mfl_allow_list_t *roster, size_t n_params,
                                             mfl_site_secagg_spare_t *spare, char *err,
                                             size_t errlen)
{
    if (!task->has_secagg)
        return mfl_errf(err, errlen, "the task asks for no secure aggregation"), NULL;
    if (task->nonce_len != MFL_SECAGG_NONCE_BYTES)
        return mfl_errf(err, errlen, "secure aggregation needs a %d-byte nonce, not %zu",
                        MFL_SECAGG_NONCE_BYTES, task->nonce_len), NULL;
    if (!roster)
        return mfl_errf(err, errlen, "no secure_aggregation.roster in the site's config: this "
                        "site cannot check its peers' keys"), NULL;
    if (task->secagg.length != (uint64_t)n_params + 1)
        return mfl_errf(err, errlen, "secure aggregation of %llu words, but the model has %zu "
                        "parameters (+1)", (unsigned long long)task->secagg.length, n_params),
               NULL;
    size_t n = task->secagg.n_sites;
    uint8_t(*keys)[32] = calloc(n ? n : 1, sizeof *keys);
    mfl_site_secagg_t *self = calloc(1, sizeof *self);
    if (!keys || !self) {
        free(keys);
        free(self);
        return mfl_errf(err, errlen, "out of memory"), NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const mfl_public_key_t *k = mfl_allow_list_find_name(roster, task->secagg.sites[i]);
        if (!k) {
            mfl_errf(err, errlen, "secure aggregation with site %s, which is not in this site's "
                     "roster", task->secagg.sites[i]);
            goto out_fail;
        }
        memcpy(keys[i], k->sign_pk, 32);
        if (strcmp(task->secagg.sites[i], self_id) == 0)
            self->index = (uint32_t)i + 1;
    }
    if (!self->index) {
        mfl_errf(err, errlen, "secure aggregation among %zu sites that do not include %s", n,
                 self_id);
        goto out_fail;
    }
    self->params.scope.round = task->round;
    memcpy(self->params.scope.nonce, task->nonce, MFL_SECAGG_NONCE_BYTES);
    self->params.n_sites = (uint32_t)n;
    self->params.threshold = task->secagg.threshold;
    self->params.neighbours = task->secagg.neighbours;
    self->params.length = task->secagg.length;
    self->params.word_bits = task->secagg.word_bits == 32 ? 32 : 64;
    self->masked_grant = task->secagg.masked_grant;
    self->sm = mfl_secagg_site_new(&self->params, self->index, sign_sk,
                                   (const uint8_t(*)[32])keys, err, errlen);
    if (!self->sm)
        goto out_fail;
    /* the coordinator's quantisation: F and bounds follow the word width */
    if (self->params.word_bits == 32 && (task->secagg.frac_bits < MFL_SECAGG_MIN_FRAC_BITS ||
                                         task->secagg.frac_bits > MFL_SECAGG_MAX_FRAC_BITS)) {
        mfl_errf(err, errlen, "secure aggregation with 32-bit words and %u fractional bits "
                 "(%d..%d)", task->secagg.frac_bits, MFL_SECAGG_MIN_FRAC_BITS,
                 MFL_SECAGG_MAX_FRAC_BITS);
        goto out_fail;
    }
    self->spare = spare;
    self->n_params = n_params;
    self->frac_bits = task->secagg.frac_bits;
    if (spare && spare->enc && spare->enc_params == n_params &&
        spare->enc_bits == self->params.word_bits && spare->enc_frac == self->frac_bits) {
        self->enc = spare->enc; /* only its quantisation is used: nothing to reset */
        spare->enc = NULL;
    } else {
        self->enc = mfl_secagg_update_aggregate(n_params, self->params.word_bits,
                                                task->secagg.frac_bits);
        if (self->enc) /* a site never adds to it: its int64 sums are not needed */
            mfl_aggregate_release(self->enc);
    }
    const size_t wb = mfl_secagg_word_bytes(&self->params);
    void *kept = spare ? atomic_exchange(&spare->x, NULL) : NULL;
    if (kept && malloc_usable_size(kept) >= (n_params + 1) * wb) {
        self->x = kept;
    } else {
        free(kept);
        self->x = malloc((n_params + 1) * wb);
    }
    if (!self->enc || !self->x) {
        mfl_errf(err, errlen, "out of memory for %zu words", n_params + 1);
        goto out_fail;
    }
    free(keys);
    return self;
out_fail:
    free(keys);
    mfl_site_secagg_destroy(&self);
    return NULL;
}

void *mfl_site_secagg_detach_words(mfl_site_secagg_t *self)
{
    if (!self->masked || !self->x)
        return NULL; /* not masked yet (or already detached): never the clear update */
    void *w = self->x;
    self->x = NULL;
    return w;
}

const void *mfl_site_secagg_masked_words(const mfl_site_secagg_t *self)
{
    return self->masked ? self->x : NULL; /* never the clear update */
}

bool mfl_site_secagg_is(const mfl_site_secagg_t *self, uint32_t round, const uint8_t *nonce)
{
    return round == self->params.scope.round &&
           sodium_memcmp(nonce, self->params.scope.nonce, MFL_SECAGG_NONCE_BYTES) == 0;
}

static void s_head(const mfl_site_secagg_t *self, mfl_secagg_wire_t *out, mfl_msg_kind_t kind)
{
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->round = (uint32_t)self->params.scope.round;
    memcpy(out->nonce, self->params.scope.nonce, MFL_SECAGG_NONCE_BYTES);
}

int mfl_site_secagg_advertise(mfl_site_secagg_t *self, mfl_secagg_wire_t *out, char *err,
                              size_t errlen)
{
    s_head(self, out, MFL_MSG_SECAGG_KEYS);
    out->n_adverts = 1;
    return mfl_secagg_site_advertise(self->sm, &out->adverts[0], err, errlen) == MFL_SECAGG_OK
               ? 0
               : -1;
}

double mfl_site_secagg_max_weight(const mfl_site_secagg_t *self)
{
    return mfl_aggregate_max_weight(self->enc);
}

bool mfl_site_secagg_masked_grant(const mfl_site_secagg_t *self)
{
    return self->masked_grant;
}

unsigned mfl_site_secagg_word_bits(const mfl_site_secagg_t *self)
{
    return mfl_secagg_word_bits(&self->params);
}

int mfl_site_secagg_set_input(mfl_site_secagg_t *self, const float *delta, double weight,
                              char *err, size_t errlen)
{
    char why[256];
    if (mfl_secagg_update_encode(self->enc, delta, weight, self->x, why, sizeof why) < 0) {
        if (self->params.word_bits == 32)
            mfl_errf(err, errlen, "%s (32-bit secure aggregation: |w·Δ| ≤ %g, w ≤ %g; the "
                     "coordinator's secure_aggregation.update_bound and word_bits)", why,
                     mfl_aggregate_max_product(self->enc), mfl_aggregate_max_weight(self->enc));
        else
            mfl_errf(err, errlen, "%s", why);
        return -1;
    }
    self->have_input = true;
    return 0;
}

int mfl_site_secagg_on_msg(mfl_site_secagg_t *self, const mfl_secagg_wire_t *in,
                           mfl_secagg_wire_t *out, const void **words, size_t *n_words,
                           uint8_t hash[32], mfl_reject_t *reject, char *err, size_t errlen)
{
    mfl_secagg_status_t st;
    *words = NULL;
    *n_words = 0;
    switch (in->kind) {
    case MFL_MSG_SECAGG_KEYS:
        s_head(self, out, MFL_MSG_SECAGG_SHARES);
        st = mfl_secagg_site_share(self->sm, in->adverts, in->n_adverts, out->boxes,
                                   &out->n_boxes, err, errlen);
        break;
    case MFL_MSG_SECAGG_SHARES:
        if (!self->have_input) {
            *reject = MFL_REJECT_SECAGG_PHASE;
            return mfl_errf(err, errlen, "no update to mask (training did not finish)"), -1;
        }
        s_head(self, out, MFL_MSG_SECAGG_MASKED);
        /* masked in place: once masked, the update in clear is gone */
        st = mfl_secagg_site_mask(self->sm, in->boxes, in->n_boxes, self->x, self->x, err,
                                  errlen);
        if (st == MFL_SECAGG_OK) {
            const size_t bytes = (size_t)self->params.length * mfl_secagg_word_bytes(&self->params);
            self->have_input = false; /* masked once per attempt */
            self->masked = true;
            *words = self->x;
            *n_words = (size_t)self->params.length;
            /* the words' little-endian bytes (LE hosts: the memory as is);
             * the same hash travels in the tensor header, so it is
             * computed once */
            crypto_generichash(hash, 32, (const unsigned char *)self->x, bytes, NULL, 0);
        }
        break;
    case MFL_MSG_SECAGG_SURVIVORS:
        s_head(self, out, MFL_MSG_SECAGG_SIGNOFF);
        out->n_signoffs = 1;
        st = mfl_secagg_site_signoff(self->sm, in->survivors, in->n_survivors, &out->signoffs[0],
                                     err, errlen);
        break;
    case MFL_MSG_SECAGG_UNMASK: {
        mfl_secagg_unmask_req_t req = {in->survivors, in->n_survivors, in->signoffs,
                                       in->n_signoffs, in->dropped,   in->n_dropped};
        s_head(self, out, MFL_MSG_SECAGG_REVEALS);
        st = mfl_secagg_site_unmask(self->sm, &req, out->reveals, &out->n_reveals, err, errlen);
        break;
    }
    case MFL_MSG_SECAGG_END:
        return 0;
    default:
        *reject = MFL_REJECT_BAD_MESSAGE;
        return mfl_errf(err, errlen, "message kind %d is a site's to send", (int)in->kind), -1;
    }
    if (st != MFL_SECAGG_OK) {
        *reject = mfl_secagg_wire_reject(st);
        return -1;
    }
    return 1;
}
