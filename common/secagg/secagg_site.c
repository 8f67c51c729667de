/* A site's secure-aggregation state machine (see secagg_site.h). */
#include "secagg/secagg_site.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "secagg/secagg_graph.h"

#define S_SLOTS (MFL_SECAGG_MAX_SITES + 1) /* indexed by site index 1..255 */

enum { S_NEW, S_ADVERTISED, S_SHARED, S_MASKED, S_SIGNED, S_DONE };

/* Everything secret, in one guarded allocation. */
typedef struct {
    uint8_t sign_sk[64];
    uint8_t c_sk[MFL_SECAGG_KEY_BYTES]; /* share encryption */
    uint8_t s_sk[MFL_SECAGG_KEY_BYTES]; /* mask agreement */
    uint8_t seed[MFL_SECAGG_KEY_BYTES]; /* self mask */
    uint8_t key_share[S_SLOTS][MFL_SECAGG_SHARE_BYTES];  /* held share of site j's s_sk */
    uint8_t seed_share[S_SLOTS][MFL_SECAGG_SHARE_BYTES]; /* held share of site j's seed */
    uint8_t box_keys[S_SLOTS][MFL_SECAGG_KEY_BYTES];     /* share-box key with neighbour j */
    uint8_t mask_keys[S_SLOTS][MFL_SECAGG_KEY_BYTES];    /* pairwise mask key with j */
    uint8_t box_key[MFL_SECAGG_KEY_BYTES];               /* scratch */
    uint8_t plain[MFL_SECAGG_BOX_PLAIN];                 /* scratch */
} s_secrets_t;

struct mfl_secagg_site {
    mfl_secagg_params_t p;
    uint32_t me;
    int phase;
    uint8_t (*roster)[32]; /* roster[i]: Ed25519 key of index i (1..n) */
    mfl_secagg_graph_t *graph;
    mfl_secagg_advert_t mine;
    mfl_secagg_advert_t *u1; /* by index */
    uint8_t in_u1[S_SLOTS];
    uint8_t holds[S_SLOTS];    /* holds shares of site j (its view of U2, itself included) */
    uint8_t revealed[S_SLOTS]; /* 0, or the kind of share revealed for site j */
    uint8_t signed_digest[32]; /* the survivor list it signed */
    s_secrets_t *sec;
};

mfl_secagg_site_t *mfl_secagg_site_new(const mfl_secagg_params_t *p, uint32_t index,
                                       const uint8_t sign_sk[64], const uint8_t (*roster)[32],
                                       char *err, size_t errlen)
{
    if (mfl_secagg_params_check(p, err, errlen) < 0)
        return NULL;
    if (index < 1 || index > p->n_sites) {
        mfl_errf(err, errlen, "site index %u outside 1..%u", index, p->n_sites);
        return NULL;
    }
    if (sodium_init() < 0) {
        mfl_errf(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    mfl_secagg_site_t *self = calloc(1, sizeof *self);
    if (!self)
        goto out_oom;
    self->p = *p;
    self->me = index;
    self->roster = calloc((size_t)p->n_sites + 1, sizeof *self->roster);
    self->u1 = calloc((size_t)p->n_sites + 1, sizeof *self->u1);
    self->sec = sodium_malloc(sizeof *self->sec);
    uint8_t seed[32];
    mfl_secagg_graph_seed(seed, p);
    self->graph = mfl_secagg_graph_new(p->n_sites, p->neighbours, seed);
    if (!self->roster || !self->u1 || !self->sec || !self->graph)
        goto out_oom;
    sodium_memzero(self->sec, sizeof *self->sec);
    memcpy(self->sec->sign_sk, sign_sk, 64);
    memcpy(self->roster[1], roster, (size_t)p->n_sites * 32);
    /* The signing key must be this site's own roster entry. */
    uint8_t pk[32];
    if (crypto_sign_ed25519_sk_to_pk(pk, self->sec->sign_sk) != 0 ||
        sodium_memcmp(pk, self->roster[index], 32) != 0) {
        mfl_errf(err, errlen, "site %u: signing key does not match its roster entry", index);
        mfl_secagg_site_destroy(&self);
        return NULL;
    }
    return self;
out_oom:
    mfl_errf(err, errlen, "out of memory");
    mfl_secagg_site_destroy(&self);
    return NULL;
}

void mfl_secagg_site_destroy(mfl_secagg_site_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_secagg_site_t *self = *self_p;
    if (self->sec)
        sodium_free(self->sec); /* wipes */
    mfl_secagg_graph_destroy(&self->graph);
    free(self->u1);
    free(self->roster);
    free(self);
    *self_p = NULL;
}

int mfl_secagg_site_phase(const mfl_secagg_site_t *self)
{
    return self->phase;
}

mfl_secagg_status_t mfl_secagg_site_advertise(mfl_secagg_site_t *self, mfl_secagg_advert_t *out,
                                              char *err, size_t errlen)
{
    if (self->phase != S_NEW)
        return mfl_secagg_fail(MFL_SECAGG_E_PHASE, err, errlen, "site %u: already advertised", self->me);
    s_secrets_t *sec = self->sec;
    mfl_secagg_advert_t a;
    memset(&a, 0, sizeof a);
    a.index = self->me;
    if (mfl_secagg_keypair(a.c_pk, sec->c_sk) < 0 || mfl_secagg_keypair(a.s_pk, sec->s_sk) < 0)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: key generation failed",
                      self->me);
    randombytes_buf(sec->seed, sizeof sec->seed);
    mfl_secagg_commit(a.seed_commit, &self->p.scope, self->me, sec->seed);
    uint8_t digest[32];
    mfl_secagg_advert_digest(digest, &self->p, &a);
    crypto_sign_detached(a.sig, NULL, digest, sizeof digest, sec->sign_sk);
    self->mine = a;
    *out = a;
    self->phase = S_ADVERTISED;
    return MFL_SECAGG_OK;
}

/* 1 if site j would hold shares of site i's secrets (a neighbour or i). */
static int s_near(const mfl_secagg_site_t *self, uint32_t i, uint32_t j)
{
    return i == j || mfl_secagg_graph_adjacent(self->graph, i, j);
}

/* The 24-byte secretbox nonce of the box from → to. */
static void s_box_nonce(uint8_t nonce[crypto_secretbox_NONCEBYTES], const mfl_secagg_params_t *p,
                        uint32_t from, uint32_t to)
{
    uint8_t m[8 + 8 + MFL_SECAGG_NONCE_BYTES + 8] = "sa-box-1";
    for (int k = 0; k < 8; k++)
        m[8 + k] = (uint8_t)(p->scope.round >> (8 * k));
    memcpy(m + 16, p->scope.nonce, MFL_SECAGG_NONCE_BYTES);
    for (int k = 0; k < 4; k++) {
        m[32 + k] = (uint8_t)(from >> (8 * k));
        m[36 + k] = (uint8_t)(to >> (8 * k));
    }
    crypto_generichash(nonce, crypto_secretbox_NONCEBYTES, m, sizeof m, NULL, 0);
}

static void s_put32(uint8_t *b, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        b[k] = (uint8_t)(v >> (8 * k));
}

static uint32_t s_get32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

mfl_secagg_status_t mfl_secagg_site_share(mfl_secagg_site_t *self, const mfl_secagg_advert_t *adverts,
                                          size_t n, mfl_secagg_share_ct_t *out, size_t *n_out,
                                          char *err, size_t errlen)
{
    const uint32_t me = self->me, N = self->p.n_sites;
    *n_out = 0;
    if (self->phase != S_ADVERTISED)
        return mfl_secagg_fail(MFL_SECAGG_E_PHASE, err, errlen, "site %u: key list not expected now", me);
    if (n > N)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: %zu adverts for %u sites", me,
                      n, N);
    uint8_t seen[S_SLOTS] = {0};
    for (size_t k = 0; k < n; k++) {
        const mfl_secagg_advert_t *a = &adverts[k];
        if (a->index < 1 || a->index > N || seen[a->index])
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: advert %zu has a bad or repeated index %u", me, k, a->index);
        seen[a->index] = 1;
        uint8_t digest[32];
        mfl_secagg_advert_digest(digest, &self->p, a);
        if (crypto_sign_verify_detached(a->sig, digest, sizeof digest, self->roster[a->index]) != 0)
            return mfl_secagg_fail(MFL_SECAGG_E_SIGNATURE, err, errlen,
                          "site %u: keys of site %u are not signed by its identity", me, a->index);
        if (a->index == me && memcmp(a, &self->mine, sizeof *a) != 0)
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: the list carries other keys for this site", me);
        for (size_t l = 0; l < k; l++) {
            const mfl_secagg_advert_t *b = &adverts[l];
            if (!memcmp(a->c_pk, b->c_pk, 32) || !memcmp(a->s_pk, b->s_pk, 32) ||
                !memcmp(a->c_pk, b->s_pk, 32) || !memcmp(a->s_pk, b->c_pk, 32))
                return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                              "site %u: sites %u and %u advertise the same key", me, b->index,
                              a->index);
        }
    }
    if (!seen[me])
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: its own keys are missing", me);
    /* The holders of this site's shares: itself and its neighbours in U1. */
    uint8_t xs[MFL_SECAGG_MAX_SITES];
    size_t m = 0;
    for (uint32_t j = 1; j <= N; j++)
        if (seen[j] && s_near(self, me, j))
            xs[m++] = (uint8_t)j;
    if (m < self->p.threshold)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: %zu sites to share with, fewer than the threshold %u", me, m,
                      self->p.threshold);
    s_secrets_t *sec = self->sec;
    /* Every pairwise key a later phase uses is agreed now, once (a
     * low-order key fails here), so masking cannot fail half-way. Keys of
     * a list that is then refused are simply never used. */
    for (size_t k = 0; k < n; k++) {
        const mfl_secagg_advert_t *a = &adverts[k];
        if (a->index == me || !s_near(self, me, a->index))
            continue;
        if (mfl_secagg_agree(sec->mask_keys[a->index], MFL_SECAGG_KDF_MASK, &self->p.scope, me,
                             sec->s_sk, self->mine.s_pk, a->index, a->s_pk) < 0 ||
            mfl_secagg_agree(sec->box_keys[a->index], MFL_SECAGG_KDF_SHARE, &self->p.scope, me,
                             sec->c_sk, self->mine.c_pk, a->index, a->c_pk) < 0)
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: site %u advertises a weak key", me, a->index);
    }
    for (size_t k = 0; k < n; k++) {
        self->u1[adverts[k].index] = adverts[k];
        self->in_u1[adverts[k].index] = 1;
    }
    /* Split both secrets over the holders; keep this site's own shares. */
    uint8_t (*kshares)[MFL_SECAGG_SHARE_BYTES] = sodium_malloc(2 * m * MFL_SECAGG_SHARE_BYTES);
    if (!kshares)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: out of memory", me);
    uint8_t (*bshares)[MFL_SECAGG_SHARE_BYTES] = kshares + m;
    uint8_t coef[32];
    randombytes_buf(coef, sizeof coef);
    int rc = mfl_secagg_share_split(sec->s_sk, xs, m, self->p.threshold, coef, kshares);
    randombytes_buf(coef, sizeof coef);
    rc |= mfl_secagg_share_split(sec->seed, xs, m, self->p.threshold, coef, bshares);
    sodium_memzero(coef, sizeof coef);
    if (rc != 0) {
        sodium_free(kshares);
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: secret sharing failed", me);
    }
    size_t nb = 0;
    for (size_t h = 0; h < m; h++) {
        uint32_t to = xs[h];
        if (to == me) {
            memcpy(sec->key_share[me], kshares[h], MFL_SECAGG_SHARE_BYTES);
            memcpy(sec->seed_share[me], bshares[h], MFL_SECAGG_SHARE_BYTES);
            continue;
        }
        s_put32(sec->plain, me);
        s_put32(sec->plain + 4, to);
        for (int b = 0; b < 8; b++)
            sec->plain[8 + b] = (uint8_t)(self->p.scope.round >> (8 * b));
        memcpy(sec->plain + 16, kshares[h], MFL_SECAGG_SHARE_BYTES);
        memcpy(sec->plain + 16 + MFL_SECAGG_SHARE_BYTES, bshares[h], MFL_SECAGG_SHARE_BYTES);
        uint8_t nonce[crypto_secretbox_NONCEBYTES];
        s_box_nonce(nonce, &self->p, me, to);
        out[nb].from = me;
        out[nb].to = to;
        crypto_secretbox_easy(out[nb].box, sec->plain, sizeof sec->plain, nonce, sec->box_keys[to]);
        nb++;
    }
    sodium_memzero(sec->plain, sizeof sec->plain);
    sodium_free(kshares); /* wipes */
    *n_out = nb;
    self->phase = S_SHARED;
    return MFL_SECAGG_OK;
}

mfl_secagg_status_t mfl_secagg_site_mask(mfl_secagg_site_t *self, const mfl_secagg_share_ct_t *in,
                                         size_t n, const void *x, void *y, char *err,
                                         size_t errlen)
{
    const uint32_t me = self->me, N = self->p.n_sites;
    if (self->phase != S_SHARED)
        return mfl_secagg_fail(MFL_SECAGG_E_PHASE, err, errlen, "site %u: shares not expected now", me);
    s_secrets_t *sec = self->sec;
    uint8_t got[S_SLOTS] = {0};
    mfl_secagg_status_t st = MFL_SECAGG_OK;
    for (size_t k = 0; k < n && st == MFL_SECAGG_OK; k++) {
        const mfl_secagg_share_ct_t *c = &in[k];
        uint32_t from = c->from;
        if (c->to != me || from < 1 || from > N || from == me || !self->in_u1[from] ||
            !s_near(self, me, from) || got[from]) {
            st = mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                        "site %u: share box %zu (from %u to %u) is not for it, from a "
                        "neighbour, once",
                        me, k, from, c->to);
            break;
        }
        uint8_t nonce[crypto_secretbox_NONCEBYTES];
        s_box_nonce(nonce, &self->p, from, me);
        if (crypto_secretbox_open_easy(sec->plain, c->box, sizeof c->box, nonce,
                                       sec->box_keys[from]) != 0 ||
            s_get32(sec->plain) != from || s_get32(sec->plain + 4) != me) {
            st = mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                        "site %u: the share box from site %u does not open", me, from);
            break;
        }
        uint64_t round = 0;
        for (int b = 0; b < 8; b++)
            round |= (uint64_t)sec->plain[8 + b] << (8 * b);
        if (round != self->p.scope.round) {
            st = mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                        "site %u: the share box from site %u is for round %llu", me, from,
                        (unsigned long long)round);
            break;
        }
        memcpy(sec->key_share[from], sec->plain + 16, MFL_SECAGG_SHARE_BYTES);
        memcpy(sec->seed_share[from], sec->plain + 16 + MFL_SECAGG_SHARE_BYTES,
               MFL_SECAGG_SHARE_BYTES);
        got[from] = 1;
    }
    sodium_memzero(sec->plain, sizeof sec->plain);
    if (st != MFL_SECAGG_OK)
        return st;
    got[me] = 1;
    size_t view = 0;
    for (uint32_t j = 1; j <= N; j++)
        view += got[j];
    if (view < self->p.threshold)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: %zu sites in its neighbourhood shared, fewer than the threshold "
                      "%u",
                      me, view, self->p.threshold);
    const size_t len = (size_t)self->p.length;
    if (y != x)
        memmove(y, x, len * mfl_secagg_word_bytes(&self->p));
    /* The self mask and every pairwise mask, added in one pass over y. */
    mfl_secagg_mask_t masks[S_SLOTS];
    size_t nm = 0;
    mfl_secagg_derive(sec->box_key, MFL_SECAGG_KDF_SELF, &self->p.scope, me, sec->seed);
    masks[nm].key = sec->box_key;
    masks[nm].sign = 1;
    mfl_secagg_mask_nonce(masks[nm++].nonce, &self->p.scope, me, me);
    for (uint32_t j = 1; j <= N; j++)
        if (got[j] && j != me)
            (void)mfl_secagg_mask_pair_spec(&masks[nm++], sec->mask_keys[j], &self->p.scope, me,
                                            j, 1); /* j != me */
    /* the length and width were checked at new */
    (void)mfl_secagg_mask_many(y, len, mfl_secagg_word_bits(&self->p), masks, nm);
    sodium_memzero(masks, sizeof masks);
    sodium_memzero(sec->box_key, sizeof sec->box_key);
    memcpy(self->holds, got, sizeof self->holds);
    self->phase = S_MASKED;
    return MFL_SECAGG_OK;
}

mfl_secagg_status_t mfl_secagg_site_signoff(mfl_secagg_site_t *self, const uint32_t *survivors,
                                            size_t n, mfl_secagg_signoff_t *out, char *err,
                                            size_t errlen)
{
    const uint32_t me = self->me;
    if (self->phase != S_MASKED)
        return mfl_secagg_fail(MFL_SECAGG_E_PHASE, err, errlen,
                      "site %u: survivor list not expected now (signs one per attempt)", me);
    if (!mfl_secagg_list_ok(survivors, n, self->p.n_sites))
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: survivor list is not ascending within 1..%u", me,
                      self->p.n_sites);
    int has_me = 0;
    for (size_t k = 0; k < n; k++) {
        if (!self->in_u1[survivors[k]])
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: survivor %u never advertised keys", me, survivors[k]);
        has_me |= survivors[k] == me;
    }
    if (!has_me || n < self->p.threshold)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: survivor list of %zu %s", me, n,
                      has_me ? "is below the threshold" : "leaves out this site");
    mfl_secagg_survivors_digest(self->signed_digest, &self->p, survivors, n);
    out->index = me;
    crypto_sign_detached(out->sig, NULL, self->signed_digest, 32, self->sec->sign_sk);
    self->phase = S_SIGNED;
    return MFL_SECAGG_OK;
}

static int s_in(const uint32_t *list, size_t n, uint32_t v)
{
    for (size_t k = 0; k < n; k++)
        if (list[k] == v)
            return 1;
    return 0;
}

mfl_secagg_status_t mfl_secagg_site_unmask(mfl_secagg_site_t *self,
                                           const mfl_secagg_unmask_req_t *req,
                                           mfl_secagg_reveal_t *out, size_t *n_out, char *err,
                                           size_t errlen)
{
    const uint32_t me = self->me, N = self->p.n_sites;
    *n_out = 0;
    if (self->phase != S_SIGNED)
        return mfl_secagg_fail(MFL_SECAGG_E_PHASE, err, errlen,
                      "site %u: unmask request not expected now (answers one per attempt)", me);
    uint8_t digest[32];
    if (!mfl_secagg_list_ok(req->survivors, req->n_survivors, N))
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: bad survivor list", me);
    mfl_secagg_survivors_digest(digest, &self->p, req->survivors, req->n_survivors);
    if (sodium_memcmp(digest, self->signed_digest, 32) != 0)
        return mfl_secagg_fail(MFL_SECAGG_E_REFUSED, err, errlen,
                      "site %u: the survivor list is not the one it signed", me);
    uint8_t signer[S_SLOTS] = {0};
    size_t valid = 0;
    for (size_t k = 0; k < req->n_signoffs; k++) {
        const mfl_secagg_signoff_t *s = &req->signoffs[k];
        if (s->index < 1 || s->index > N || signer[s->index] ||
            !s_in(req->survivors, req->n_survivors, s->index))
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: signoff %zu is from %u: not a survivor, or repeated", me, k,
                          s->index);
        if (crypto_sign_verify_detached(s->sig, digest, 32, self->roster[s->index]) != 0)
            return mfl_secagg_fail(MFL_SECAGG_E_SIGNATURE, err, errlen,
                          "site %u: signoff of site %u does not verify", me, s->index);
        signer[s->index] = 1;
        valid++;
    }
    if (valid < self->p.threshold)
        return mfl_secagg_fail(MFL_SECAGG_E_REFUSED, err, errlen,
                      "site %u: %zu survivors signed the list, fewer than the threshold %u", me,
                      valid, self->p.threshold);
    if (!mfl_secagg_list_ok(req->dropped, req->n_dropped, N))
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: bad dropped list", me);
    for (size_t k = 0; k < req->n_dropped; k++) {
        uint32_t d = req->dropped[k];
        if (d == me || s_in(req->survivors, req->n_survivors, d) ||
            self->revealed[d] == MFL_SECAGG_SHARE_SEED)
            return mfl_secagg_fail(MFL_SECAGG_E_REFUSED, err, errlen,
                          "site %u: refuses to reveal the mask key share of site %u, a survivor "
                          "(that would reveal both shares of one site)",
                          me, d);
    }
    for (size_t k = 0; k < req->n_survivors; k++)
        if (self->revealed[req->survivors[k]] == MFL_SECAGG_SHARE_KEY)
            return mfl_secagg_fail(MFL_SECAGG_E_REFUSED, err, errlen,
                          "site %u: already revealed the mask key share of site %u", me,
                          req->survivors[k]);
    size_t m = 0;
    for (size_t k = 0; k < req->n_survivors; k++) {
        uint32_t j = req->survivors[k];
        if (!self->holds[j])
            continue;
        out[m].peer = j;
        out[m].kind = MFL_SECAGG_SHARE_SEED;
        memcpy(out[m].share, self->sec->seed_share[j], MFL_SECAGG_SHARE_BYTES);
        self->revealed[j] = MFL_SECAGG_SHARE_SEED;
        m++;
    }
    for (size_t k = 0; k < req->n_dropped; k++) {
        uint32_t j = req->dropped[k];
        if (!self->holds[j])
            continue;
        out[m].peer = j;
        out[m].kind = MFL_SECAGG_SHARE_KEY;
        memcpy(out[m].share, self->sec->key_share[j], MFL_SECAGG_SHARE_BYTES);
        self->revealed[j] = MFL_SECAGG_SHARE_KEY;
        m++;
    }
    *n_out = m;
    self->phase = S_DONE;
    return MFL_SECAGG_OK;
}
