/* The coordinator's secure-aggregation state machine (see secagg_server.h). */
#include "secagg/secagg_server.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "secagg/secagg_graph.h"

#define S_SLOTS (MFL_SECAGG_MAX_SITES + 1)

struct mfl_secagg_server {
    mfl_secagg_params_t p;
    mfl_secagg_phase_t phase;
    mfl_secagg_status_t abandon_reason;
    uint8_t (*roster)[32];
    mfl_secagg_graph_t *graph;
    size_t slots;                  /* n + 1 */
    mfl_secagg_advert_t *adv;      /* by index */
    mfl_secagg_advert_t *u1_list;  /* U1 in index order */
    size_t n_u1;
    uint8_t in_u1[S_SLOTS], in_u2[S_SLOTS], in_u3[S_SLOTS], in_u4[S_SLOTS], in_u5[S_SLOTS];
    mfl_secagg_share_ct_t *boxes;  /* boxes[from * slots + to] */
    void *sum;                     /* length words of the attempt's width */
    uint8_t (*masked_hash)[32];    /* by index */
    uint32_t u3[MFL_SECAGG_MAX_SITES];
    size_t n_u3;
    uint32_t dropped[MFL_SECAGG_MAX_SITES]; /* U2 \ U3 */
    size_t n_dropped;
    mfl_secagg_signoff_t signoffs[MFL_SECAGG_MAX_SITES]; /* in index order after end */
    mfl_secagg_signoff_t *sig_by;  /* by index */
    size_t n_signoffs;
    uint8_t (*shares)[MFL_SECAGG_SHARE_BYTES]; /* shares[peer * slots + holder] */
    uint8_t *has_share;                        /* has_share[peer * slots + holder] */
    uint8_t transcript[MFL_SECAGG_PHASE_UNMASK + 1][32];
    uint8_t has_transcript[MFL_SECAGG_PHASE_UNMASK + 1];
    size_t count;
    unsigned unmask_threads; /* mfl_secagg_server_set_threads; 1 by default */
};

const char *mfl_secagg_phase_name(mfl_secagg_phase_t phase)
{
    switch (phase) {
    case MFL_SECAGG_PHASE_ADVERTISE: return "advertise";
    case MFL_SECAGG_PHASE_SHARE: return "share";
    case MFL_SECAGG_PHASE_MASKED: return "masked";
    case MFL_SECAGG_PHASE_SIGNOFF: return "signoff";
    case MFL_SECAGG_PHASE_UNMASK: return "unmask";
    case MFL_SECAGG_PHASE_DONE: return "done";
    case MFL_SECAGG_PHASE_ABANDONED: return "abandoned";
    }
    return "?";
}

mfl_secagg_server_t *mfl_secagg_server_new(const mfl_secagg_params_t *p,
                                           const uint8_t (*roster)[32], char *err,
                                           size_t errlen)
{
    return mfl_secagg_server_new_reusing(p, roster, NULL, 0, err, errlen);
}

mfl_secagg_server_t *mfl_secagg_server_new_reusing(const mfl_secagg_params_t *p,
                                                   const uint8_t (*roster)[32], void *buf,
                                                   size_t buf_bytes, char *err, size_t errlen)
{
    if (mfl_secagg_params_check(p, err, errlen) < 0) {
        free(buf);
        return NULL;
    }
    if (sodium_init() < 0) {
        free(buf);
        mfl_errf(err, errlen, "libsodium failed to initialise");
        return NULL;
    }
    mfl_secagg_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        free(buf);
        goto out_oom;
    }
    self->p = *p;
    self->phase = MFL_SECAGG_PHASE_ADVERTISE;
    self->unmask_threads = 1;
    self->slots = (size_t)p->n_sites + 1;
    const size_t S = self->slots;
    self->roster = calloc(S, sizeof *self->roster);
    self->adv = calloc(S, sizeof *self->adv);
    self->u1_list = calloc(S, sizeof *self->u1_list);
    self->masked_hash = calloc(S, sizeof *self->masked_hash);
    self->sig_by = calloc(S, sizeof *self->sig_by);
    self->boxes = calloc(S * S, sizeof *self->boxes);
    self->shares = calloc(S * S, sizeof *self->shares);
    self->has_share = calloc(S * S, 1);
    const size_t sum_bytes = (size_t)p->length * mfl_secagg_word_bytes(p);
    if (buf && buf_bytes >= sum_bytes) { /* already faulted in: zeroed, not reallocated */
        memset(buf, 0, sum_bytes);
        self->sum = buf;
    } else {
        free(buf);
        self->sum = calloc((size_t)p->length, mfl_secagg_word_bytes(p));
    }
    uint8_t seed[32];
    mfl_secagg_graph_seed(seed, p);
    self->graph = mfl_secagg_graph_new(p->n_sites, p->neighbours, seed);
    if (!self->roster || !self->adv || !self->u1_list || !self->masked_hash || !self->sig_by ||
        !self->boxes || !self->shares || !self->has_share || !self->sum || !self->graph)
        goto out_oom;
    memcpy(self->roster[1], roster, (size_t)p->n_sites * 32);
    return self;
out_oom:
    mfl_errf(err, errlen, "out of memory for secure aggregation of %u sites, %llu words",
             p->n_sites, (unsigned long long)p->length);
    mfl_secagg_server_destroy(&self);
    return NULL;
}

void mfl_secagg_server_destroy(mfl_secagg_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_secagg_server_t *self = *self_p;
    if (self->shares)
        sodium_memzero(self->shares, self->slots * self->slots * sizeof *self->shares);
    free(self->shares);
    free(self->has_share);
    free(self->boxes);
    free(self->sum);
    free(self->sig_by);
    free(self->masked_hash);
    free(self->u1_list);
    free(self->adv);
    free(self->roster);
    mfl_secagg_graph_destroy(&self->graph);
    free(self);
    *self_p = NULL;
}

mfl_secagg_phase_t mfl_secagg_server_phase(const mfl_secagg_server_t *self)
{
    return self->phase;
}

mfl_secagg_status_t mfl_secagg_server_abandon_reason(const mfl_secagg_server_t *self)
{
    return self->abandon_reason;
}

/* The common checks: the phase, and `from` a site index. */
static mfl_secagg_status_t s_expect(const mfl_secagg_server_t *self, mfl_secagg_phase_t phase,
                                    uint32_t from, const char *what, char *err, size_t errlen)
{
    if (self->phase != phase)
        return mfl_secagg_fail(MFL_SECAGG_E_PHASE, err, errlen, "site %u: %s arrived in phase %s", from,
                      what, mfl_secagg_phase_name(self->phase));
    if (from < 1 || from > self->p.n_sites)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "%s from site index %u (1..%u)", what,
                      from, self->p.n_sites);
    return MFL_SECAGG_OK;
}

static int s_abandon(mfl_secagg_server_t *self, mfl_secagg_status_t why, char *err,
                     size_t errlen, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int s_abandon(mfl_secagg_server_t *self, mfl_secagg_status_t why, char *err,
                     size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    self->phase = MFL_SECAGG_PHASE_ABANDONED;
    self->abandon_reason = why;
    if (self->sum)
        memset(self->sum, 0, (size_t)self->p.length * mfl_secagg_word_bytes(&self->p));
    return -1;
}

static size_t s_count(const uint8_t *flags, uint32_t n)
{
    size_t c = 0;
    for (uint32_t i = 1; i <= n; i++)
        c += flags[i] != 0;
    return c;
}

/* A little-endian u32 into a transcript hash. */
static void s_put32(crypto_generichash_state *h, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    crypto_generichash_update(h, b, sizeof b);
}

static int s_near(const mfl_secagg_server_t *self, uint32_t i, uint32_t j)
{
    return i == j || mfl_secagg_graph_adjacent(self->graph, i, j);
}

mfl_secagg_status_t mfl_secagg_server_on_advert(mfl_secagg_server_t *self, uint32_t from,
                                                const mfl_secagg_advert_t *a, char *err,
                                                size_t errlen)
{
    mfl_secagg_status_t st = s_expect(self, MFL_SECAGG_PHASE_ADVERTISE, from, "keys", err, errlen);
    if (st != MFL_SECAGG_OK)
        return st;
    if (a->index != from)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u sent keys for index %u", from,
                      a->index);
    if (self->in_u1[from])
        return mfl_secagg_fail(MFL_SECAGG_E_DUPLICATE, err, errlen, "site %u: keys already advertised",
                      from);
    uint8_t digest[32];
    mfl_secagg_advert_digest(digest, &self->p, a);
    if (crypto_sign_verify_detached(a->sig, digest, sizeof digest, self->roster[from]) != 0)
        return mfl_secagg_fail(MFL_SECAGG_E_SIGNATURE, err, errlen,
                      "site %u: key signature does not verify against its identity", from);
    for (uint32_t j = 1; j <= self->p.n_sites; j++)
        if (self->in_u1[j] && (!memcmp(self->adv[j].c_pk, a->c_pk, 32) ||
                               !memcmp(self->adv[j].s_pk, a->s_pk, 32)))
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: advertises the keys of site %u", from, j);
    self->adv[from] = *a;
    self->in_u1[from] = 1;
    return MFL_SECAGG_OK;
}

int mfl_secagg_server_end_adverts(mfl_secagg_server_t *self, char *err, size_t errlen)
{
    if (self->phase != MFL_SECAGG_PHASE_ADVERTISE)
        return s_abandon(self, MFL_SECAGG_E_PHASE, err, errlen, "end_adverts in phase %s",
                         mfl_secagg_phase_name(self->phase));
    size_t n = s_count(self->in_u1, self->p.n_sites);
    if (n < self->p.threshold)
        return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen,
                         "%zu sites advertised keys, fewer than the threshold %u", n,
                         self->p.threshold);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    self->n_u1 = 0;
    for (uint32_t j = 1; j <= self->p.n_sites; j++)
        if (self->in_u1[j]) {
            self->u1_list[self->n_u1++] = self->adv[j];
            const mfl_secagg_advert_t *a = &self->adv[j];
            s_put32(&h, j);
            crypto_generichash_update(&h, a->c_pk, sizeof a->c_pk);
            crypto_generichash_update(&h, a->s_pk, sizeof a->s_pk);
            crypto_generichash_update(&h, a->seed_commit, sizeof a->seed_commit);
            crypto_generichash_update(&h, a->sig, sizeof a->sig);
        }
    crypto_generichash_final(&h, self->transcript[MFL_SECAGG_PHASE_ADVERTISE], 32);
    self->has_transcript[MFL_SECAGG_PHASE_ADVERTISE] = 1;
    self->phase = MFL_SECAGG_PHASE_SHARE;
    return 0;
}

const mfl_secagg_advert_t *mfl_secagg_server_adverts(const mfl_secagg_server_t *self, size_t *n)
{
    *n = self->n_u1;
    return self->u1_list;
}

mfl_secagg_status_t mfl_secagg_server_on_shares(mfl_secagg_server_t *self, uint32_t from,
                                                const mfl_secagg_share_ct_t *cts, size_t n,
                                                char *err, size_t errlen)
{
    mfl_secagg_status_t st = s_expect(self, MFL_SECAGG_PHASE_SHARE, from, "shares", err, errlen);
    if (st != MFL_SECAGG_OK)
        return st;
    if (!self->in_u1[from])
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen, "site %u: shares without keys", from);
    if (self->in_u2[from])
        return mfl_secagg_fail(MFL_SECAGG_E_DUPLICATE, err, errlen, "site %u: shares already sent", from);
    uint8_t seen[S_SLOTS] = {0};
    size_t expected = 0;
    for (uint32_t j = 1; j <= self->p.n_sites; j++)
        expected += j != from && self->in_u1[j] && s_near(self, from, j);
    if (n != expected)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: %zu share boxes, expected one per neighbour (%zu)", from, n,
                      expected);
    for (size_t k = 0; k < n; k++) {
        uint32_t to = cts[k].to;
        if (cts[k].from != from || to < 1 || to > self->p.n_sites || to == from ||
            !self->in_u1[to] || !s_near(self, from, to) || seen[to])
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: share box %zu (from %u to %u) is not to a distinct "
                          "neighbour",
                          from, k, cts[k].from, to);
        seen[to] = 1;
    }
    for (size_t k = 0; k < n; k++)
        self->boxes[from * self->slots + cts[k].to] = cts[k];
    self->in_u2[from] = 1;
    return MFL_SECAGG_OK;
}

int mfl_secagg_server_end_shares(mfl_secagg_server_t *self, char *err, size_t errlen)
{
    if (self->phase != MFL_SECAGG_PHASE_SHARE)
        return s_abandon(self, MFL_SECAGG_E_PHASE, err, errlen, "end_shares in phase %s",
                         mfl_secagg_phase_name(self->phase));
    size_t n = s_count(self->in_u2, self->p.n_sites);
    if (n < self->p.threshold)
        return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen,
                         "%zu sites shared keys, fewer than the threshold %u", n,
                         self->p.threshold);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (uint32_t f = 1; f <= self->p.n_sites; f++)
        for (uint32_t t = 1; t <= self->p.n_sites; t++)
            if (self->in_u2[f] && self->in_u1[t] && t != f && s_near(self, f, t)) {
                const mfl_secagg_share_ct_t *c = &self->boxes[f * self->slots + t];
                s_put32(&h, c->from);
                s_put32(&h, c->to);
                crypto_generichash_update(&h, c->box, sizeof c->box);
            }
    crypto_generichash_final(&h, self->transcript[MFL_SECAGG_PHASE_SHARE], 32);
    self->has_transcript[MFL_SECAGG_PHASE_SHARE] = 1;
    self->phase = MFL_SECAGG_PHASE_MASKED;
    return 0;
}

size_t mfl_secagg_server_boxes_for(const mfl_secagg_server_t *self, uint32_t to,
                                   mfl_secagg_share_ct_t *out)
{
    if (to < 1 || to > self->p.n_sites || !self->in_u2[to])
        return 0;
    size_t m = 0;
    for (uint32_t f = 1; f <= self->p.n_sites; f++)
        if (f != to && self->in_u2[f] && s_near(self, f, to))
            out[m++] = self->boxes[f * self->slots + to];
    return m;
}

/* n words of `wb` bytes into h as little-endian bytes. */
static void s_hash_update_words(crypto_generichash_state *h, const void *y, size_t n, size_t wb)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    crypto_generichash_update(h, (const uint8_t *)y, n * wb); /* already LE bytes */
#else
    uint8_t buf[4096];
    size_t fill = 0;
    for (size_t j = 0; j < n; j++) {
        uint64_t w = wb == 8 ? ((const uint64_t *)y)[j] : ((const uint32_t *)y)[j];
        for (size_t b = 0; b < wb; b++)
            buf[fill + b] = (uint8_t)(w >> (8 * b));
        fill += wb;
        if (fill == sizeof buf) {
            crypto_generichash_update(h, buf, fill);
            fill = 0;
        }
    }
    crypto_generichash_update(h, buf, fill);
#endif
}

/* BLAKE2b-256 of n words of `wb` bytes as little-endian bytes. */
static void s_hash_words(const void *y, size_t n, size_t wb, uint8_t out[32])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    s_hash_update_words(&h, y, n, wb);
    crypto_generichash_final(&h, out, 32);
}

/* Folds y into words [at, at + n) of the running sum, mod 2^64 or 2^32
 * (vectorised loops). */
static void s_fold_words(mfl_secagg_server_t *self, size_t at, const void *y, size_t n)
{
    if (mfl_secagg_word_bits(&self->p) == 64) {
        uint64_t *restrict sum = (uint64_t *)self->sum + at;
        const uint64_t *restrict v = y;
        for (size_t j = 0; j < n; j++)
            sum[j] += v[j];
    } else {
        uint32_t *restrict sum = (uint32_t *)self->sum + at;
        const uint32_t *restrict v = y;
        for (size_t j = 0; j < n; j++)
            sum[j] += v[j];
    }
}

void mfl_secagg_words_hash(const void *y, size_t n, unsigned word_bits, uint8_t out[32])
{
    s_hash_words(y, n, word_bits / 8, out);
}

void mfl_secagg_runs_hash(const mfl_secagg_run_t *runs, size_t n_runs, unsigned word_bits,
                          uint8_t out[32])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (size_t r = 0; r < n_runs; r++)
        s_hash_update_words(&h, runs[r].words, runs[r].n, word_bits / 8);
    crypto_generichash_final(&h, out, 32);
}

mfl_secagg_status_t mfl_secagg_server_check_masked(const mfl_secagg_server_t *self, uint32_t from,
                                                   size_t n, char *err, size_t errlen)
{
    mfl_secagg_status_t st =
        s_expect(self, MFL_SECAGG_PHASE_MASKED, from, "masked input", err, errlen);
    if (st != MFL_SECAGG_OK)
        return st;
    if (!self->in_u2[from])
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: masked input without having shared keys", from);
    if (self->in_u3[from])
        return mfl_secagg_fail(MFL_SECAGG_E_DUPLICATE, err, errlen,
                      "site %u: a second masked input (the first is kept)", from);
    if ((uint64_t)n != self->p.length)
        return mfl_secagg_fail(MFL_SECAGG_E_LENGTH, err, errlen,
                      "site %u: masked input of %zu words, expected %llu", from, n,
                      (unsigned long long)self->p.length);
    return MFL_SECAGG_OK;
}

mfl_secagg_status_t mfl_secagg_server_on_masked_runs(mfl_secagg_server_t *self, uint32_t from,
                                                     const mfl_secagg_run_t *runs,
                                                     size_t n_runs,
                                                     const uint8_t known_hash[32],
                                                     uint8_t hash[32], char *err,
                                                     size_t errlen)
{
    size_t n = 0;
    for (size_t r = 0; r < n_runs; r++) {
        if (runs[r].n && !runs[r].words)
            return mfl_secagg_fail(MFL_SECAGG_E_LENGTH, err, errlen,
                                   "site %u: masked input run %zu has no words", from, r);
        if (runs[r].n > SIZE_MAX - n)
            return mfl_secagg_fail(MFL_SECAGG_E_LENGTH, err, errlen,
                                   "site %u: masked input too long", from);
        n += runs[r].n;
    }
    mfl_secagg_status_t st = mfl_secagg_server_check_masked(self, from, n, err, errlen);
    if (st != MFL_SECAGG_OK)
        return st;
    const size_t wb = mfl_secagg_word_bytes(&self->p);
    crypto_generichash_state h;
    if (!known_hash)
        crypto_generichash_init(&h, NULL, 0, 32);
    size_t at = 0;
    for (size_t r = 0; r < n_runs; r++) {
        s_fold_words(self, at, runs[r].words, runs[r].n);
        if (!known_hash)
            s_hash_update_words(&h, runs[r].words, runs[r].n, wb);
        at += runs[r].n;
    }
    if (known_hash)
        memcpy(self->masked_hash[from], known_hash, 32);
    else
        crypto_generichash_final(&h, self->masked_hash[from], 32);
    if (hash)
        memcpy(hash, self->masked_hash[from], 32);
    self->in_u3[from] = 1;
    return MFL_SECAGG_OK;
}

mfl_secagg_status_t mfl_secagg_server_on_masked_hashed(mfl_secagg_server_t *self, uint32_t from,
                                                       const void *y, size_t n,
                                                       const uint8_t known_hash[32],
                                                       uint8_t hash[32], char *err,
                                                       size_t errlen)
{
    const mfl_secagg_run_t run = {y, n};
    return mfl_secagg_server_on_masked_runs(self, from, &run, 1, known_hash, hash, err, errlen);
}

mfl_secagg_status_t mfl_secagg_server_on_masked(mfl_secagg_server_t *self, uint32_t from,
                                                const void *y, size_t n, uint8_t hash[32],
                                                char *err, size_t errlen)
{
    return mfl_secagg_server_on_masked_hashed(self, from, y, n, NULL, hash, err, errlen);
}

int mfl_secagg_server_end_masked(mfl_secagg_server_t *self, char *err, size_t errlen)
{
    if (self->phase != MFL_SECAGG_PHASE_MASKED)
        return s_abandon(self, MFL_SECAGG_E_PHASE, err, errlen, "end_masked in phase %s",
                         mfl_secagg_phase_name(self->phase));
    size_t n = s_count(self->in_u3, self->p.n_sites);
    if (n < self->p.threshold)
        return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen,
                         "%zu masked inputs, fewer than the threshold %u", n, self->p.threshold);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    self->n_u3 = self->n_dropped = 0;
    for (uint32_t j = 1; j <= self->p.n_sites; j++) {
        if (self->in_u3[j]) {
            self->u3[self->n_u3++] = j;
            s_put32(&h, j);
            crypto_generichash_update(&h, self->masked_hash[j], 32);
        } else if (self->in_u2[j]) {
            self->dropped[self->n_dropped++] = j;
        }
    }
    crypto_generichash_final(&h, self->transcript[MFL_SECAGG_PHASE_MASKED], 32);
    self->has_transcript[MFL_SECAGG_PHASE_MASKED] = 1;
    self->phase = MFL_SECAGG_PHASE_SIGNOFF;
    return 0;
}

const uint32_t *mfl_secagg_server_survivors(const mfl_secagg_server_t *self, size_t *n)
{
    *n = self->n_u3;
    return self->u3;
}

mfl_secagg_status_t mfl_secagg_server_on_signoff(mfl_secagg_server_t *self, uint32_t from,
                                                 const mfl_secagg_signoff_t *s, char *err,
                                                 size_t errlen)
{
    mfl_secagg_status_t st = s_expect(self, MFL_SECAGG_PHASE_SIGNOFF, from, "signoff", err, errlen);
    if (st != MFL_SECAGG_OK)
        return st;
    if (!self->in_u3[from] || s->index != from)
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: signoff for index %u from a site that is not a survivor", from,
                      s->index);
    if (self->in_u4[from])
        return mfl_secagg_fail(MFL_SECAGG_E_DUPLICATE, err, errlen, "site %u: already signed off", from);
    uint8_t digest[32];
    mfl_secagg_survivors_digest(digest, &self->p, self->u3, self->n_u3);
    if (crypto_sign_verify_detached(s->sig, digest, sizeof digest, self->roster[from]) != 0)
        return mfl_secagg_fail(MFL_SECAGG_E_SIGNATURE, err, errlen,
                      "site %u: signoff does not verify over the survivor list", from);
    self->sig_by[from] = *s;
    self->in_u4[from] = 1;
    return MFL_SECAGG_OK;
}

int mfl_secagg_server_end_signoffs(mfl_secagg_server_t *self, char *err, size_t errlen)
{
    if (self->phase != MFL_SECAGG_PHASE_SIGNOFF)
        return s_abandon(self, MFL_SECAGG_E_PHASE, err, errlen, "end_signoffs in phase %s",
                         mfl_secagg_phase_name(self->phase));
    size_t n = s_count(self->in_u4, self->p.n_sites);
    if (n < self->p.threshold)
        return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen,
                         "%zu survivors signed off, fewer than the threshold %u", n,
                         self->p.threshold);
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    self->n_signoffs = 0;
    for (uint32_t j = 1; j <= self->p.n_sites; j++)
        if (self->in_u4[j]) {
            self->signoffs[self->n_signoffs++] = self->sig_by[j];
            s_put32(&h, j);
            crypto_generichash_update(&h, self->sig_by[j].sig, MFL_SECAGG_SIG_BYTES);
        }
    crypto_generichash_final(&h, self->transcript[MFL_SECAGG_PHASE_SIGNOFF], 32);
    self->has_transcript[MFL_SECAGG_PHASE_SIGNOFF] = 1;
    self->phase = MFL_SECAGG_PHASE_UNMASK;
    return 0;
}

void mfl_secagg_server_unmask_request(const mfl_secagg_server_t *self,
                                      mfl_secagg_unmask_req_t *req)
{
    req->survivors = self->u3;
    req->n_survivors = self->n_u3;
    req->signoffs = self->signoffs;
    req->n_signoffs = self->n_signoffs;
    req->dropped = self->dropped;
    req->n_dropped = self->n_dropped;
}

mfl_secagg_status_t mfl_secagg_server_on_reveals(mfl_secagg_server_t *self, uint32_t from,
                                                 const mfl_secagg_reveal_t *r, size_t n,
                                                 char *err, size_t errlen)
{
    mfl_secagg_status_t st = s_expect(self, MFL_SECAGG_PHASE_UNMASK, from, "shares", err, errlen);
    if (st != MFL_SECAGG_OK)
        return st;
    if (!self->in_u4[from])
        return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                      "site %u: revealed shares without having signed off", from);
    if (self->in_u5[from])
        return mfl_secagg_fail(MFL_SECAGG_E_DUPLICATE, err, errlen, "site %u: already revealed shares",
                      from);
    uint8_t seen[S_SLOTS] = {0};
    for (size_t k = 0; k < n; k++) {
        uint32_t j = r[k].peer;
        if (j < 1 || j > self->p.n_sites || !self->in_u2[j] || !s_near(self, from, j) || seen[j])
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: share %zu is of site %u, which it holds no share of (or "
                          "repeated)",
                          from, k, j);
        uint8_t want = self->in_u3[j] ? MFL_SECAGG_SHARE_SEED : MFL_SECAGG_SHARE_KEY;
        if (r[k].kind != want)
            return mfl_secagg_fail(MFL_SECAGG_E_MALFORMED, err, errlen,
                          "site %u: share of site %u is of the wrong kind (%u, expected %u)",
                          from, j, r[k].kind, want);
        seen[j] = 1;
    }
    for (size_t k = 0; k < n; k++) {
        size_t at = r[k].peer * self->slots + from;
        memcpy(self->shares[at], r[k].share, MFL_SECAGG_SHARE_BYTES);
        self->has_share[at] = 1;
    }
    self->in_u5[from] = 1;
    return MFL_SECAGG_OK;
}

/* Recovers site j's secret into `secret` from the revealed shares: tries
 * t-subsets in lexicographic order until `check` accepts one. 0 or -1. */
static int s_recover(mfl_secagg_server_t *self, uint32_t j, int seed, uint8_t secret[32])
{
    const uint32_t t = self->p.threshold;
    uint8_t holders[MFL_SECAGG_MAX_SITES];
    size_t m = 0;
    for (uint32_t h = 1; h <= self->p.n_sites; h++)
        if (self->has_share[j * self->slots + h])
            holders[m++] = (uint8_t)h;
    if (m < t)
        return -1;
    size_t pick[MFL_SECAGG_MAX_SITES];
    for (size_t k = 0; k < t; k++)
        pick[k] = k;
    uint8_t xs[MFL_SECAGG_MAX_SITES];
    uint8_t (*sh)[MFL_SECAGG_SHARE_BYTES] = sodium_malloc((size_t)t * MFL_SECAGG_SHARE_BYTES);
    if (!sh)
        return -1;
    int ok = 0;
    for (int tries = 0; tries < MFL_SECAGG_MAX_SUBSETS && !ok; tries++) {
        for (size_t k = 0; k < t; k++) {
            xs[k] = holders[pick[k]];
            memcpy(sh[k], self->shares[j * self->slots + xs[k]], MFL_SECAGG_SHARE_BYTES);
        }
        if (mfl_secagg_share_combine(xs, (const uint8_t (*)[MFL_SECAGG_SHARE_BYTES])sh, t,
                                     secret) == 0) {
            uint8_t check[32];
            if (seed)
                mfl_secagg_commit(check, &self->p.scope, j, secret);
            else if (mfl_secagg_public_key(check, secret) < 0)
                memset(check, 0, sizeof check);
            ok = sodium_memcmp(check, seed ? self->adv[j].seed_commit : self->adv[j].s_pk,
                               32) == 0;
        }
        /* next t-subset of 0..m-1 */
        size_t i = t;
        while (i > 0 && pick[i - 1] == m - t + i - 1)
            i--;
        if (i == 0)
            break;
        pick[i - 1]++;
        for (size_t k = i; k < t; k++)
            pick[k] = pick[k - 1] + 1;
    }
    sodium_free(sh);
    if (!ok)
        sodium_memzero(secret, 32);
    return ok ? 0 : -1;
}

int mfl_secagg_server_finish(mfl_secagg_server_t *self, char *err, size_t errlen)
{
    if (self->phase != MFL_SECAGG_PHASE_UNMASK)
        return s_abandon(self, MFL_SECAGG_E_PHASE, err, errlen, "finish in phase %s",
                         mfl_secagg_phase_name(self->phase));
    const size_t len = (size_t)self->p.length;
    const mfl_secagg_scope_t *scope = &self->p.scope;
    /* Recover every secret before touching the sum (all or nothing); the
     * masks come off in a second pass. */
    uint8_t (*secrets)[32] = sodium_malloc(self->slots * 32);
    if (!secrets)
        return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen, "out of memory");
    for (uint32_t j = 1; j <= self->p.n_sites; j++) {
        if (!self->in_u2[j])
            continue;
        int seed = self->in_u3[j];
        if (s_recover(self, j, seed, secrets[j]) < 0) {
            sodium_free(secrets);
            return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen,
                             "the %s of site %u cannot be recovered: fewer than %u revealed "
                             "shares, or shares that do not reconstruct",
                             seed ? "self-mask seed" : "mask key", j, self->p.threshold);
        }
    }
    /* Every mask to take off, then one pass over the sum: each survivor's
     * self mask, and for each site that dropped after sharing the mask
     * every surviving neighbour added for the pair. Their keys live in
     * `keys` (guarded, wiped). */
    size_t n_masks = 0;
    for (uint32_t j = 1; j <= self->p.n_sites; j++) {
        if (!self->in_u2[j])
            continue;
        if (self->in_u3[j]) {
            n_masks++;
            continue;
        }
        for (size_t k = 0; k < self->n_u3; k++)
            n_masks += mfl_secagg_graph_adjacent(self->graph, self->u3[k], j) != 0;
    }
    uint8_t (*keys)[32] = sodium_malloc((n_masks ? n_masks : 1) * 32);
    mfl_secagg_mask_t *masks = calloc(n_masks ? n_masks : 1, sizeof *masks);
    if (!keys || !masks) {
        if (keys)
            sodium_free(keys);
        free(masks);
        sodium_free(secrets);
        return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen, "out of memory");
    }
    size_t m = 0;
    int bad = 0;
    uint32_t bad_i = 0, bad_j = 0;
    for (uint32_t j = 1; j <= self->p.n_sites && !bad; j++) {
        if (!self->in_u2[j])
            continue;
        if (self->in_u3[j]) {
            mfl_secagg_derive(keys[m], MFL_SECAGG_KDF_SELF, scope, j, secrets[j]);
            masks[m].key = keys[m];
            masks[m].sign = -1;
            mfl_secagg_mask_nonce(masks[m].nonce, scope, j, j);
            m++;
            continue;
        }
        /* j dropped after sharing. A key that fails to agree would have
         * failed at every honest site's share check already. */
        for (size_t k = 0; k < self->n_u3; k++) {
            uint32_t i = self->u3[k];
            if (!mfl_secagg_graph_adjacent(self->graph, i, j))
                continue;
            if (mfl_secagg_agree(keys[m], MFL_SECAGG_KDF_MASK, scope, j, secrets[j],
                                 self->adv[j].s_pk, i, self->adv[i].s_pk) < 0) {
                bad = 1, bad_i = i, bad_j = j;
                break;
            }
            (void)mfl_secagg_mask_pair_spec(&masks[m], keys[m], scope, i, j, -1); /* i != j */
            m++;
        }
    }
    if (!bad)
        (void)mfl_secagg_mask_many_threads(self->sum, len, mfl_secagg_word_bits(&self->p), masks,
                                           m, self->unmask_threads);
    sodium_free(keys); /* wipes */
    free(masks);
    if (bad) {
        sodium_free(secrets);
        return s_abandon(self, MFL_SECAGG_E_SHARES, err, errlen,
                         "mask key of sites %u and %u cannot be derived", bad_i, bad_j);
    }
    sodium_free(secrets); /* wipes */
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (uint32_t j = 1; j <= self->p.n_sites; j++)
        for (uint32_t holder = 1; holder <= self->p.n_sites; holder++)
            if (self->has_share[j * self->slots + holder]) {
                s_put32(&h, j);
                s_put32(&h, holder);
                crypto_generichash_update(&h, self->shares[j * self->slots + holder],
                                          MFL_SECAGG_SHARE_BYTES);
            }
    crypto_generichash_final(&h, self->transcript[MFL_SECAGG_PHASE_UNMASK], 32);
    self->has_transcript[MFL_SECAGG_PHASE_UNMASK] = 1;
    self->count = self->n_u3;
    self->phase = MFL_SECAGG_PHASE_DONE;
    return 0;
}

const void *mfl_secagg_server_sum(const mfl_secagg_server_t *self, size_t *count)
{
    if (self->phase != MFL_SECAGG_PHASE_DONE)
        return NULL;
    *count = self->count;
    return self->sum;
}

int mfl_secagg_server_transcript(const mfl_secagg_server_t *self, mfl_secagg_phase_t phase,
                                 uint8_t out[32])
{
    if (phase < MFL_SECAGG_PHASE_ADVERTISE || phase > MFL_SECAGG_PHASE_UNMASK ||
        !self->has_transcript[phase])
        return -1;
    memcpy(out, self->transcript[phase], 32);
    return 0;
}

void mfl_secagg_server_set_threads(mfl_secagg_server_t *self, unsigned threads)
{
    self->unmask_threads = threads < 1 ? 1
                           : threads > MFL_SECAGG_MASK_MAX_THREADS ? MFL_SECAGG_MASK_MAX_THREADS
                                                                    : threads;
}

void *mfl_secagg_server_take_sum(mfl_secagg_server_t *self, size_t *count, size_t *bytes)
{
    if (self->phase != MFL_SECAGG_PHASE_DONE || !self->sum)
        return NULL;
    void *sum = self->sum;
    self->sum = NULL;
    *count = self->count;
    *bytes = (size_t)self->p.length * mfl_secagg_word_bytes(&self->p);
    return sum;
}
