/* Parameter checks and the signed statements (see secagg_msg.h). */
#include "secagg/secagg_msg.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

const char *mfl_secagg_status_name(mfl_secagg_status_t s)
{
    switch (s) {
    case MFL_SECAGG_OK: return "ok";
    case MFL_SECAGG_E_PHASE: return "phase";
    case MFL_SECAGG_E_SIGNATURE: return "signature";
    case MFL_SECAGG_E_LENGTH: return "length";
    case MFL_SECAGG_E_DUPLICATE: return "duplicate";
    case MFL_SECAGG_E_MALFORMED: return "malformed";
    case MFL_SECAGG_E_SHARES: return "shares";
    case MFL_SECAGG_E_REFUSED: return "refused";
    }
    return "?";
}

unsigned mfl_secagg_word_bits(const mfl_secagg_params_t *p)
{
    return p->word_bits == 32 ? 32 : 64;
}

size_t mfl_secagg_word_bytes(const mfl_secagg_params_t *p)
{
    return mfl_secagg_word_bits(p) / 8;
}

int mfl_secagg_params_check(const mfl_secagg_params_t *p, char *err, size_t errlen)
{
    if (p->n_sites < MFL_SECAGG_MIN_SITES || p->n_sites > MFL_SECAGG_MAX_SITES) {
        mfl_errf(err, errlen, "secure aggregation needs %d to %d sites, got %u",
                 MFL_SECAGG_MIN_SITES, MFL_SECAGG_MAX_SITES, p->n_sites);
        return -1;
    }
    uint32_t d = p->n_sites - 1;
    if (p->neighbours != 0 && p->neighbours < p->n_sites - 1) {
        if (p->neighbours < 2 || p->neighbours % 2 != 0) {
            mfl_errf(err, errlen, "neighbours must be an even number >= 2 (or 0: all), got %u",
                     p->neighbours);
            return -1;
        }
        d = p->neighbours;
    }
    if (2 * (uint64_t)p->threshold <= (uint64_t)d + 1 || p->threshold > d + 1) {
        mfl_errf(err, errlen,
                 "threshold %u must be more than half of a neighbourhood of %u sites and at "
                 "most all of it (%u..%u)",
                 p->threshold, d + 1, (d + 1) / 2 + 1, d + 1);
        return -1;
    }
    if (p->word_bits != 0 && p->word_bits != 64 && p->word_bits != 32) {
        mfl_errf(err, errlen, "word width %u bits: 64 or 32", p->word_bits);
        return -1;
    }
    if (p->word_bits == 32 && p->n_sites > MFL_SECAGG_NARROW_MAX_SITES) {
        mfl_errf(err, errlen, "32-bit words carry sums of at most %d sites, not %u",
                 MFL_SECAGG_NARROW_MAX_SITES, p->n_sites);
        return -1;
    }
    if (p->length == 0 || p->length > MFL_SECAGG_MAX_WORDS) {
        mfl_errf(err, errlen, "masked vector length %llu outside 1..2^35",
                 (unsigned long long)p->length);
        return -1;
    }
    return 0;
}

static void s_put_u64(crypto_generichash_state *h, uint64_t v)
{
    uint8_t b[8];
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)(v >> (8 * k));
    crypto_generichash_update(h, b, sizeof b);
}

static void s_put_params(crypto_generichash_state *h, const char *label,
                         const mfl_secagg_params_t *p)
{
    crypto_generichash_update(h, (const uint8_t *)label, strlen(label) + 1);
    s_put_u64(h, p->scope.round);
    crypto_generichash_update(h, p->scope.nonce, sizeof p->scope.nonce);
    s_put_u64(h, p->n_sites);
    s_put_u64(h, p->threshold);
    s_put_u64(h, p->neighbours);
    s_put_u64(h, p->length);
    if (p->word_bits == 32) /* 64-bit attempts hash what they always did */
        s_put_u64(h, p->word_bits);
}

void mfl_secagg_advert_digest(uint8_t out[32], const mfl_secagg_params_t *p,
                              const mfl_secagg_advert_t *a)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    s_put_params(&h, "metafl-secagg-v1 advert", p);
    s_put_u64(&h, a->index);
    crypto_generichash_update(&h, a->c_pk, sizeof a->c_pk);
    crypto_generichash_update(&h, a->s_pk, sizeof a->s_pk);
    crypto_generichash_update(&h, a->seed_commit, sizeof a->seed_commit);
    crypto_generichash_final(&h, out, 32);
}

void mfl_secagg_survivors_digest(uint8_t out[32], const mfl_secagg_params_t *p,
                                 const uint32_t *survivors, size_t n)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    s_put_params(&h, "metafl-secagg-v1 survivors", p);
    s_put_u64(&h, n);
    for (size_t k = 0; k < n; k++)
        s_put_u64(&h, survivors[k]);
    crypto_generichash_final(&h, out, 32);
}

void mfl_secagg_graph_seed(uint8_t out[32], const mfl_secagg_params_t *p)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    s_put_params(&h, "metafl-secagg-v1 graph", p);
    crypto_generichash_final(&h, out, 32);
}

int mfl_secagg_list_ok(const uint32_t *list, size_t n, uint32_t max)
{
    for (size_t k = 0; k < n; k++)
        if (list[k] < 1 || list[k] > max || (k > 0 && list[k] <= list[k - 1]))
            return 0;
    return 1;
}

mfl_secagg_status_t mfl_secagg_fail(mfl_secagg_status_t st, char *err, size_t errlen,
                                    const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}
