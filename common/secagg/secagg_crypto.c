/* Key agreement, derivation, mask expansion (see secagg_crypto.h). */
#include "secagg/secagg_crypto.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

int mfl_secagg_crypto_init(void)
{
    return sodium_init() < 0 ? -1 : 0;
}

int mfl_secagg_keypair(uint8_t pk[MFL_SECAGG_KEY_BYTES], uint8_t sk[MFL_SECAGG_KEY_BYTES])
{
    if (mfl_secagg_crypto_init() < 0)
        return -1;
    randombytes_buf(sk, MFL_SECAGG_KEY_BYTES);
    return crypto_scalarmult_base(pk, sk) == 0 ? 0 : -1;
}

int mfl_secagg_public_key(uint8_t pk[MFL_SECAGG_KEY_BYTES], const uint8_t sk[MFL_SECAGG_KEY_BYTES])
{
    if (mfl_secagg_crypto_init() < 0)
        return -1;
    return crypto_scalarmult_base(pk, sk) == 0 ? 0 : -1;
}

static const char *s_label(mfl_secagg_kdf_t kdf)
{
    switch (kdf) {
    case MFL_SECAGG_KDF_MASK: return "metafl-secagg-v1 mask";
    case MFL_SECAGG_KDF_SHARE: return "metafl-secagg-v1 share";
    case MFL_SECAGG_KDF_SELF: return "metafl-secagg-v1 self";
    }
    return "metafl-secagg-v1 ?";
}

static void s_put_u64(crypto_generichash_state *h, uint64_t v)
{
    uint8_t b[8];
    for (int k = 0; k < 8; k++)
        b[k] = (uint8_t)(v >> (8 * k));
    crypto_generichash_update(h, b, sizeof b);
}

static void s_put_str(crypto_generichash_state *h, const char *s)
{
    size_t n = strlen(s);
    s_put_u64(h, n); /* length-prefixed: no two labels can run together */
    crypto_generichash_update(h, (const uint8_t *)s, n);
}

static void s_put_scope(crypto_generichash_state *h, const mfl_secagg_scope_t *scope)
{
    s_put_u64(h, scope->round);
    crypto_generichash_update(h, scope->nonce, sizeof scope->nonce);
}

int mfl_secagg_agree(uint8_t key[MFL_SECAGG_KEY_BYTES], mfl_secagg_kdf_t kdf,
                     const mfl_secagg_scope_t *scope, uint32_t me,
                     const uint8_t my_sk[MFL_SECAGG_KEY_BYTES],
                     const uint8_t my_pk[MFL_SECAGG_KEY_BYTES], uint32_t peer,
                     const uint8_t peer_pk[MFL_SECAGG_KEY_BYTES])
{
    if (me == peer || mfl_secagg_crypto_init() < 0)
        return -1;
    uint8_t q[crypto_scalarmult_BYTES];
    /* crypto_scalarmult fails on an all-zero result (a low-order peer key). */
    if (crypto_scalarmult(q, my_sk, peer_pk) != 0) {
        sodium_memzero(q, sizeof q);
        return -1;
    }
    const uint8_t *lo_pk = me < peer ? my_pk : peer_pk;
    const uint8_t *hi_pk = me < peer ? peer_pk : my_pk;
    crypto_generichash_state h;
    crypto_generichash_init(&h, q, sizeof q, MFL_SECAGG_KEY_BYTES);
    s_put_str(&h, s_label(kdf));
    s_put_scope(&h, scope);
    s_put_u64(&h, me < peer ? me : peer);
    s_put_u64(&h, me < peer ? peer : me);
    crypto_generichash_update(&h, lo_pk, MFL_SECAGG_KEY_BYTES);
    crypto_generichash_update(&h, hi_pk, MFL_SECAGG_KEY_BYTES);
    crypto_generichash_final(&h, key, MFL_SECAGG_KEY_BYTES);
    sodium_memzero(q, sizeof q);
    sodium_memzero(&h, sizeof h);
    return 0;
}

static void s_keyed(uint8_t out[MFL_SECAGG_KEY_BYTES], const char *label,
                    const mfl_secagg_scope_t *scope, uint32_t index,
                    const uint8_t seed[MFL_SECAGG_KEY_BYTES])
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, seed, MFL_SECAGG_KEY_BYTES, MFL_SECAGG_KEY_BYTES);
    s_put_str(&h, label);
    s_put_scope(&h, scope);
    s_put_u64(&h, index);
    crypto_generichash_final(&h, out, MFL_SECAGG_KEY_BYTES);
    sodium_memzero(&h, sizeof h);
}

void mfl_secagg_derive(uint8_t key[MFL_SECAGG_KEY_BYTES], mfl_secagg_kdf_t kdf,
                       const mfl_secagg_scope_t *scope, uint32_t index,
                       const uint8_t seed[MFL_SECAGG_KEY_BYTES])
{
    s_keyed(key, s_label(kdf), scope, index, seed);
}

void mfl_secagg_commit(uint8_t commit[MFL_SECAGG_KEY_BYTES], const mfl_secagg_scope_t *scope,
                       uint32_t index, const uint8_t seed[MFL_SECAGG_KEY_BYTES])
{
    s_keyed(commit, "metafl-secagg-v1 commit", scope, index, seed);
}

void mfl_secagg_mask_nonce(uint8_t nonce[12], const mfl_secagg_scope_t *scope, uint32_t a,
                           uint32_t b)
{
    uint8_t full[16];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, sizeof full);
    s_put_str(&h, a == b ? "metafl-secagg-v1 self nonce" : "metafl-secagg-v1 pair nonce");
    s_put_scope(&h, scope);
    s_put_u64(&h, a < b ? a : b);
    s_put_u64(&h, a < b ? b : a);
    crypto_generichash_final(&h, full, sizeof full);
    memcpy(nonce, full, 12);
}

/* Keystream bytes per ChaCha20 call: 256 blocks (16 KiB), so the stream
 * of every mask and the piece of v they are added to stay in L1/L2 while
 * all the masks are added in one pass over v. A multiple of 64 (whole
 * blocks keep the counter exact). */
#define S_CHUNK_BYTES 16384u

/* All zero: the plaintext the keystream is XORed onto (never written). */
static const uint8_t s_zero[S_CHUNK_BYTES];

/* v[j] += sign · the j-th little-endian word of ks, for j < w. The LE-host
 * loops read ks as words directly (it is a uint64_t array the stream was
 * written into) and vectorise; the others assemble each word from bytes. */
static void s_add64(uint64_t *restrict v, const uint64_t *restrict ks, size_t w, int sign)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (sign > 0)
        for (size_t j = 0; j < w; j++)
            v[j] += ks[j];
    else
        for (size_t j = 0; j < w; j++)
            v[j] -= ks[j];
#else
    const uint8_t *buf = (const uint8_t *)ks;
    for (size_t j = 0; j < w; j++) {
        const uint8_t *b = buf + 8 * j;
        uint64_t word = (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
                        (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 |
                        (uint64_t)b[6] << 48 | (uint64_t)b[7] << 56;
        v[j] = sign > 0 ? v[j] + word : v[j] - word;
    }
#endif
}

static void s_add32(uint32_t *restrict v, const uint32_t *restrict ks, size_t w, int sign)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (sign > 0)
        for (size_t j = 0; j < w; j++)
            v[j] += ks[j];
    else
        for (size_t j = 0; j < w; j++)
            v[j] -= ks[j];
#else
    const uint8_t *buf = (const uint8_t *)ks;
    for (size_t j = 0; j < w; j++) {
        const uint8_t *b = buf + 4 * j;
        uint32_t word = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                        (uint32_t)b[3] << 24;
        v[j] = sign > 0 ? v[j] + word : v[j] - word;
    }
#endif
}

/* The masks of words [off, off + n) of v: each chunk of v takes every
 * mask's keystream from the block that chunk starts at, so any split of
 * v at chunk boundaries gives the same words as one pass. Checked by the
 * callers. */
static void s_mask_range(void *v, size_t off, size_t n, unsigned word_bits,
                         const mfl_secagg_mask_t *masks, size_t n_masks)
{
    const size_t wb = word_bits / 8, per = S_CHUNK_BYTES / wb; /* words per chunk */
    uint64_t ks[S_CHUNK_BYTES / 8]; /* one chunk of one mask's keystream */
    for (size_t done = off; done < off + n; done += per) {
        size_t w = off + n - done < per ? off + n - done : per;
        size_t bytes = (w * wb + 63) & ~(size_t)63;
        uint32_t block = (uint32_t)((uint64_t)done * wb / 64); /* < 2^32: n ≤ MAX_WORDS */
        for (size_t k = 0; k < n_masks; k++) {
            crypto_stream_chacha20_ietf_xor_ic((uint8_t *)ks, s_zero, bytes, masks[k].nonce,
                                               block, masks[k].key);
            if (word_bits == 64)
                s_add64((uint64_t *)v + done, ks, w, masks[k].sign);
            else
                s_add32((uint32_t *)v + done, (const uint32_t *)(const void *)ks, w,
                        masks[k].sign);
        }
    }
    sodium_memzero(ks, sizeof ks);
}

static int s_mask_args_ok(size_t n, unsigned word_bits, const mfl_secagg_mask_t *masks,
                          size_t n_masks)
{
    if ((uint64_t)n > MFL_SECAGG_MAX_WORDS || (word_bits != 32 && word_bits != 64) ||
        mfl_secagg_crypto_init() < 0)
        return 0;
    for (size_t k = 0; k < n_masks; k++)
        if (masks[k].sign != 1 && masks[k].sign != -1)
            return 0;
    return 1;
}

int mfl_secagg_mask_many(void *v, size_t n, unsigned word_bits, const mfl_secagg_mask_t *masks,
                         size_t n_masks)
{
    if (!s_mask_args_ok(n, word_bits, masks, n_masks))
        return -1;
    s_mask_range(v, 0, n, word_bits, masks, n_masks);
    return 0;
}

typedef struct {
    void *v;
    size_t off, n;
    unsigned word_bits;
    const mfl_secagg_mask_t *masks;
    size_t n_masks;
} s_range_job_t;

static void *s_range_thread(void *arg)
{
    const s_range_job_t *j = arg;
    s_mask_range(j->v, j->off, j->n, j->word_bits, j->masks, j->n_masks);
    return NULL;
}

int mfl_secagg_mask_many_threads(void *v, size_t n, unsigned word_bits,
                                 const mfl_secagg_mask_t *masks, size_t n_masks,
                                 unsigned threads)
{
    if (!s_mask_args_ok(n, word_bits, masks, n_masks))
        return -1;
    if (threads > MFL_SECAGG_MASK_MAX_THREADS)
        threads = MFL_SECAGG_MASK_MAX_THREADS;
    const size_t per = S_CHUNK_BYTES / (word_bits / 8);
    const size_t chunks = (n + per - 1) / per;
    if (threads < 2 || n_masks == 0 || chunks < 2 * (size_t)threads) {
        s_mask_range(v, 0, n, word_bits, masks, n_masks);
        return 0;
    }
    /* Parts of whole chunks; part 0 runs on the calling thread. A thread
     * that cannot start leaves its part to the calling thread. */
    s_range_job_t job[MFL_SECAGG_MASK_MAX_THREADS];
    pthread_t tid[MFL_SECAGG_MASK_MAX_THREADS];
    int started[MFL_SECAGG_MASK_MAX_THREADS] = {0};
    for (unsigned t = 0; t < threads; t++) {
        size_t c0 = chunks * t / threads, c1 = chunks * (t + 1) / threads;
        size_t off = c0 * per, end = c1 * per < n ? c1 * per : n;
        job[t] = (s_range_job_t){v, off, end - off, word_bits, masks, n_masks};
        if (t > 0)
            started[t] = pthread_create(&tid[t], NULL, s_range_thread, &job[t]) == 0;
    }
    s_range_thread(&job[0]);
    for (unsigned t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            s_range_thread(&job[t]);
    }
    return 0;
}

int mfl_secagg_mask_apply(uint64_t *v, size_t n, const uint8_t key[MFL_SECAGG_KEY_BYTES],
                          const uint8_t nonce[12], int sign)
{
    mfl_secagg_mask_t m = {.key = key, .sign = sign};
    memcpy(m.nonce, nonce, sizeof m.nonce);
    return mfl_secagg_mask_many(v, n, 64, &m, 1);
}

int mfl_secagg_mask_pair_spec(mfl_secagg_mask_t *m, const uint8_t key[MFL_SECAGG_KEY_BYTES],
                              const mfl_secagg_scope_t *scope, uint32_t me, uint32_t peer,
                              int sign)
{
    if (me == peer || (sign != 1 && sign != -1))
        return -1;
    m->key = key;
    mfl_secagg_mask_nonce(m->nonce, scope, me, peer);
    m->sign = me < peer ? sign : -sign;
    return 0;
}

int mfl_secagg_mask_pair(uint64_t *v, size_t n, const uint8_t key[MFL_SECAGG_KEY_BYTES],
                         const mfl_secagg_scope_t *scope, uint32_t me, uint32_t peer, int sign)
{
    mfl_secagg_mask_t m;
    if (mfl_secagg_mask_pair_spec(&m, key, scope, me, peer, sign) < 0)
        return -1;
    return mfl_secagg_mask_many(v, n, 64, &m, 1);
}
