/* Secure aggregation's crypto core: known answers for key agreement, mask
 * expansion and Shamir sharing; masks cancel and wrap mod 2^64; a masked
 * update looks uniform; encoded updates sum to the plain aggregate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "core/rng.h"
#include "fed/aggregate.h"
#include "secagg/secagg_crypto.h"
#include "secagg/secagg_graph.h"
#include "secagg/secagg_share.h"
#include "secagg/secagg_update.h"

/* Pinned answers of this implementation for fixed inputs (below): any
 * change to the key derivation, nonces, word order or share layout breaks
 * them, and with them every mask already agreed between versions. The
 * X25519 and ChaCha20 steps underneath are checked against RFC vectors. */
#define KAT_MASK_KEY "3cf916320445c6686fabc4d0b1fcdb01b32a83f37cf6f251bdd26087a424f87f"
#define KAT_MASK_WORD0 0xdcae3b46a4145d8full
#define KAT_SELF_WORD0 0xa5cc42e74ee2f6f9ull
/* 32-bit words (docs/SECAGG.md "Word width"): the same keystream read as
 * little-endian 32-bit words, so word 0 is the low half of the 64-bit
 * word 0 and word 1 its high half. A change here is a format change. */
#define KAT_MASK_WORD0_32 0xa4145d8fu
#define KAT_MASK_WORD1_32 0xdcae3b46u
#define KAT_SELF_WORD0_32 0x4ee2f6f9u
#define KAT_SHARE_X2 "e85363159404b46f855fec4e4149998b24ee702817b76c99c7042048c9152e18"

static void s_hex(uint8_t *out, const char *hex, size_t n)
{
    size_t got = 0;
    assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), " ", &got, NULL), 0);
    assert_int_equal(got, n);
}

static uint64_t s_le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = v << 8 | b[k];
    return v;
}

/* RFC 8439 §2.6.2: ChaCha20 block 0 under key 80..9f, nonce
 * 000000000001020304050607 starts with these 32 bytes (there: the Poly1305
 * key). Our mask of a zero vector is that keystream as LE words. */
static void test_mask_expansion_matches_rfc8439_keystream(void **state)
{
    (void)state;
    uint8_t key[32], nonce[12], expect[32];
    for (int k = 0; k < 32; k++)
        key[k] = (uint8_t)(0x80 + k);
    s_hex(nonce, "000000000001020304050607", 12);
    s_hex(expect,
          "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646", 32);
    uint64_t v[4] = {0, 0, 0, 0};
    assert_int_equal(mfl_secagg_mask_apply(v, 4, key, nonce, 1), 0);
    for (int w = 0; w < 4; w++)
        assert_true(v[w] == s_le64(expect + 8 * w));
    /* Subtracting the same mask restores the vector, mod 2^64. */
    assert_int_equal(mfl_secagg_mask_apply(v, 4, key, nonce, -1), 0);
    for (int w = 0; w < 4; w++)
        assert_true(v[w] == 0);
    /* A long vector crosses ChaCha20's chunking: word 5000 equals the
     * keystream byte 40000.. computed in one call. */
    static uint64_t big[5001];
    static uint8_t ks[5001 * 8];
    memset(big, 0, sizeof big);
    memset(ks, 0, sizeof ks);
    assert_int_equal(mfl_secagg_mask_apply(big, 5001, key, nonce, 1), 0);
    crypto_stream_chacha20_ietf(ks, sizeof ks, nonce, key);
    for (size_t w = 0; w < 5001; w++)
        assert_true(big[w] == s_le64(ks + 8 * w));
    assert_int_equal(mfl_secagg_mask_apply(v, 4, key, nonce, 2), -1);
}

static uint32_t s_le32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* 32-bit words: the RFC 8439 keystream as LE 32-bit words, across chunks;
 * several masks in one pass give what they give one at a time; the pinned
 * pair and self-mask words of the 64-bit test, read in 32-bit halves. */
static void test_mask_expansion_32_bit_words(void **state)
{
    (void)state;
    uint8_t key[32], nonce[12], expect[32];
    for (int k = 0; k < 32; k++)
        key[k] = (uint8_t)(0x80 + k);
    s_hex(nonce, "000000000001020304050607", 12);
    s_hex(expect,
          "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646", 32);
    mfl_secagg_mask_t m = {.key = key, .sign = 1};
    memcpy(m.nonce, nonce, 12);
    uint32_t v[8] = {0};
    assert_int_equal(mfl_secagg_mask_many(v, 8, 32, &m, 1), 0);
    for (int w = 0; w < 8; w++)
        assert_true(v[w] == s_le32(expect + 4 * w));
    m.sign = -1;
    assert_int_equal(mfl_secagg_mask_many(v, 8, 32, &m, 1), 0);
    for (int w = 0; w < 8; w++)
        assert_true(v[w] == 0);
    /* 10001 words cross several chunks: the one-call keystream */
    static uint32_t big[10001];
    static uint8_t ks[10001 * 4];
    memset(big, 0, sizeof big);
    m.sign = 1;
    assert_int_equal(mfl_secagg_mask_many(big, 10001, 32, &m, 1), 0);
    crypto_stream_chacha20_ietf(ks, sizeof ks, nonce, key);
    for (size_t w = 0; w < 10001; w++)
        assert_true(big[w] == s_le32(ks + 4 * w));
    /* three masks at once (signs +, -, +) = one at a time, both widths */
    uint8_t k2[32], k3[32];
    memset(k2, 7, sizeof k2);
    memset(k3, 9, sizeof k3);
    mfl_secagg_mask_t three[3] = {{.key = key, .sign = 1}, {.key = k2, .sign = -1},
                                  {.key = k3, .sign = 1}};
    for (int i = 0; i < 3; i++)
        memcpy(three[i].nonce, nonce, 12);
    three[2].nonce[0] ^= 1;
    static uint32_t a32[7001], b32[7001];
    static uint64_t a64[5001], b64[5001];
    for (size_t j = 0; j < 7001; j++)
        a32[j] = b32[j] = (uint32_t)(j * 2654435761u);
    for (size_t j = 0; j < 5001; j++)
        a64[j] = b64[j] = j * 0x9e3779b97f4a7c15ull;
    assert_int_equal(mfl_secagg_mask_many(a32, 7001, 32, three, 3), 0);
    assert_int_equal(mfl_secagg_mask_many(a64, 5001, 64, three, 3), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mfl_secagg_mask_many(b32, 7001, 32, &three[i], 1), 0);
        assert_int_equal(mfl_secagg_mask_many(b64, 5001, 64, &three[i], 1), 0);
    }
    assert_memory_equal(a32, b32, sizeof a32);
    assert_memory_equal(a64, b64, sizeof a64);
    /* pinned words (the key agreement test's inputs) */
    uint8_t a_sk[32], a_pk[32], b_pk[32], kab[32];
    s_hex(a_sk, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", 32);
    s_hex(a_pk, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", 32);
    s_hex(b_pk, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", 32);
    mfl_secagg_scope_t scope = {.round = 7};
    for (int k = 0; k < 16; k++)
        scope.nonce[k] = (uint8_t)k;
    assert_int_equal(mfl_secagg_agree(kab, MFL_SECAGG_KDF_MASK, &scope, 2, a_sk, a_pk, 5, b_pk), 0);
    mfl_secagg_mask_t pair;
    assert_int_equal(mfl_secagg_mask_pair_spec(&pair, kab, &scope, 2, 5, 1), 0);
    uint32_t p2[2] = {0, 0};
    assert_int_equal(mfl_secagg_mask_many(p2, 2, 32, &pair, 1), 0);
    assert_true(p2[0] == KAT_MASK_WORD0_32 && p2[1] == KAT_MASK_WORD1_32);
    uint8_t seed[32], skey[32];
    memset(seed, 0x5a, sizeof seed);
    mfl_secagg_derive(skey, MFL_SECAGG_KDF_SELF, &scope, 3, seed);
    mfl_secagg_mask_t self = {.key = skey, .sign = 1};
    mfl_secagg_mask_nonce(self.nonce, &scope, 3, 3);
    uint32_t s1[1] = {0};
    assert_int_equal(mfl_secagg_mask_many(s1, 1, 32, &self, 1), 0);
    assert_true(s1[0] == KAT_SELF_WORD0_32);
    /* refused: another width, a bad sign, a pair of one site */
    assert_int_equal(mfl_secagg_mask_many(v, 8, 16, &m, 1), -1);
    m.sign = 0;
    assert_int_equal(mfl_secagg_mask_many(v, 8, 32, &m, 1), -1);
    assert_int_equal(mfl_secagg_mask_pair_spec(&pair, kab, &scope, 2, 2, 1), -1);
}

/* The coordinator's unmasking on several threads (each a part of whole
 * 16 KiB chunks) adds the same words as one pass, for every thread count,
 * both widths, lengths that end mid-chunk and vectors too short to split;
 * bad arguments are refused as by mfl_secagg_mask_many. */
static void test_mask_many_threads_equals_one_pass(void **state)
{
    (void)state;
    uint8_t k1[32], k2[32], k3[32];
    memset(k1, 3, sizeof k1);
    memset(k2, 7, sizeof k2);
    memset(k3, 9, sizeof k3);
    mfl_secagg_mask_t m[3] = {{.key = k1, .sign = 1}, {.key = k2, .sign = -1},
                              {.key = k3, .sign = -1}};
    for (int i = 0; i < 3; i++)
        memset(m[i].nonce, 0x10 + i, 12);
    const size_t lens[] = {1, 4095, 4096 * 2 + 17, 4096 * 9 + 1000, 40000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const size_t n = lens[li];
        for (unsigned bits = 32; bits <= 64; bits += 32) {
            const size_t wb = bits / 8;
            uint8_t *ref = malloc(n * wb), *got = malloc(n * wb);
            assert_non_null(ref);
            assert_non_null(got);
            for (size_t j = 0; j < n * wb; j++)
                ref[j] = (uint8_t)(j * 131 + 7);
            uint8_t *init = malloc(n * wb);
            assert_non_null(init);
            memcpy(init, ref, n * wb);
            assert_int_equal(mfl_secagg_mask_many(ref, n, bits, m, 3), 0);
            for (unsigned threads = 1; threads <= 5; threads++) {
                memcpy(got, init, n * wb);
                assert_int_equal(mfl_secagg_mask_many_threads(got, n, bits, m, 3, threads), 0);
                assert_memory_equal(got, ref, n * wb);
            }
            memcpy(got, init, n * wb);
            assert_int_equal(mfl_secagg_mask_many_threads(got, n, bits, m, 3, 100), 0);
            assert_memory_equal(got, ref, n * wb);
            free(init);
            free(ref);
            free(got);
        }
    }
    uint32_t v[8] = {0};
    assert_int_equal(mfl_secagg_mask_many_threads(v, 8, 16, m, 1, 2), -1);
    mfl_secagg_mask_t bad = m[0];
    bad.sign = 2;
    assert_int_equal(mfl_secagg_mask_many_threads(v, 8, 32, &bad, 1, 2), -1);
}

/* RFC 7748 §6.1 X25519 keys; both sides derive the same pairwise key, which
 * differs per purpose, round, nonce and pair, and is pinned (fixed keys →
 * fixed bytes). */
static void test_key_agreement_known_answers(void **state)
{
    (void)state;
    uint8_t a_sk[32], a_pk[32], b_sk[32], b_pk[32], pk[32];
    s_hex(a_sk, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", 32);
    s_hex(a_pk, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", 32);
    s_hex(b_sk, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", 32);
    s_hex(b_pk, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f", 32);
    assert_int_equal(mfl_secagg_public_key(pk, a_sk), 0);
    assert_memory_equal(pk, a_pk, 32);
    mfl_secagg_scope_t scope = {.round = 7};
    for (int k = 0; k < 16; k++)
        scope.nonce[k] = (uint8_t)k;
    uint8_t kab[32], kba[32], other[32];
    assert_int_equal(mfl_secagg_agree(kab, MFL_SECAGG_KDF_MASK, &scope, 2, a_sk, a_pk, 5, b_pk), 0);
    assert_int_equal(mfl_secagg_agree(kba, MFL_SECAGG_KDF_MASK, &scope, 5, b_sk, b_pk, 2, a_pk), 0);
    assert_memory_equal(kab, kba, 32);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, kab, 32);
    assert_string_equal(hex, KAT_MASK_KEY);
    assert_int_equal(mfl_secagg_agree(other, MFL_SECAGG_KDF_SHARE, &scope, 2, a_sk, a_pk, 5, b_pk), 0);
    assert_memory_not_equal(other, kab, 32);
    scope.round = 8;
    assert_int_equal(mfl_secagg_agree(other, MFL_SECAGG_KDF_MASK, &scope, 2, a_sk, a_pk, 5, b_pk), 0);
    assert_memory_not_equal(other, kab, 32);
    scope.round = 7;
    assert_int_equal(mfl_secagg_agree(other, MFL_SECAGG_KDF_MASK, &scope, 2, a_sk, a_pk, 6, b_pk), 0);
    assert_memory_not_equal(other, kab, 32);
    /* A low-order public key (all zero) is refused, not agreed with. */
    uint8_t zero[32] = {0};
    assert_int_equal(mfl_secagg_agree(other, MFL_SECAGG_KDF_MASK, &scope, 2, a_sk, a_pk, 5, zero), -1);
    assert_int_equal(mfl_secagg_agree(other, MFL_SECAGG_KDF_MASK, &scope, 2, a_sk, a_pk, 2, b_pk), -1);
    /* The pair's mask: site 2 adds it, site 5 subtracts it; pinned words. */
    uint64_t v2[3] = {0, 0, 0}, v5[3] = {0, 0, 0};
    assert_int_equal(mfl_secagg_mask_pair(v2, 3, kab, &scope, 2, 5, 1), 0);
    assert_int_equal(mfl_secagg_mask_pair(v5, 3, kba, &scope, 5, 2, 1), 0);
    for (int w = 0; w < 3; w++)
        assert_true(v2[w] + v5[w] == 0);
    assert_true(v2[0] == KAT_MASK_WORD0);
    /* Self mask from a fixed seed: pinned. */
    uint8_t seed[32], key[32], nonce[12];
    memset(seed, 0x5a, sizeof seed);
    mfl_secagg_derive(key, MFL_SECAGG_KDF_SELF, &scope, 3, seed);
    mfl_secagg_mask_nonce(nonce, &scope, 3, 3);
    uint64_t s[1] = {0};
    assert_int_equal(mfl_secagg_mask_apply(s, 1, key, nonce, 1), 0);
    assert_true(s[0] == KAT_SELF_WORD0);
}

/* t = 2 over GF(2^8): the share at x = 1 is secret ⊕ a₁, a₁ the first 32
 * bytes of ChaCha20(coef_key, nonce 0); any t shares recover the secret,
 * t − 1 do not; shares are pinned for fixed keys. */
static void test_sharing_known_answers_and_threshold(void **state)
{
    (void)state;
    uint8_t secret[32], coef_key[32], stream[32], sh[5][32], out[32];
    for (int k = 0; k < 32; k++) {
        secret[k] = (uint8_t)(3 * k + 1);
        coef_key[k] = (uint8_t)(0xa0 ^ k);
    }
    uint8_t zero_nonce[12] = {0};
    crypto_stream_chacha20_ietf(stream, sizeof stream, zero_nonce, coef_key);
    uint8_t xs2[2] = {1, 9};
    assert_int_equal(mfl_secagg_share_split(secret, xs2, 2, 2, coef_key, sh), 0);
    for (int k = 0; k < 32; k++)
        assert_int_equal(sh[0][k], secret[k] ^ stream[k]);
    assert_int_equal(mfl_secagg_share_combine(xs2, (const uint8_t (*)[32])sh, 2, out), 0);
    assert_memory_equal(out, secret, 32);

    uint8_t xs[5] = {1, 2, 3, 4, 5};
    assert_int_equal(mfl_secagg_share_split(secret, xs, 5, 3, coef_key, sh), 0);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, sh[1], 32);
    assert_string_equal(hex, KAT_SHARE_X2);
    /* Every 3-subset recovers the secret; 2 shares give something else. */
    for (int a = 0; a < 5; a++)
        for (int b = a + 1; b < 5; b++) {
            uint8_t x2[2] = {xs[a], xs[b]}, s2[2][32];
            memcpy(s2[0], sh[a], 32);
            memcpy(s2[1], sh[b], 32);
            assert_int_equal(mfl_secagg_share_combine(x2, (const uint8_t (*)[32])s2, 2, out), 0);
            assert_memory_not_equal(out, secret, 32);
            for (int c = b + 1; c < 5; c++) {
                uint8_t x3[3] = {xs[a], xs[b], xs[c]}, s3[3][32];
                memcpy(s3[0], sh[a], 32);
                memcpy(s3[1], sh[b], 32);
                memcpy(s3[2], sh[c], 32);
                assert_int_equal(
                    mfl_secagg_share_combine(x3, (const uint8_t (*)[32])s3, 3, out), 0);
                assert_memory_equal(out, secret, 32);
            }
        }
    /* A corrupted share gives a wrong secret (callers check a commitment). */
    sh[0][0] ^= 1;
    assert_int_equal(mfl_secagg_share_combine(xs, (const uint8_t (*)[32])sh, 3, out), 0);
    assert_memory_not_equal(out, secret, 32);
    /* Bad arguments: x = 0, repeated x, t > n. */
    uint8_t bad0[2] = {0, 1}, rep[2] = {4, 4};
    assert_int_equal(mfl_secagg_share_split(secret, bad0, 2, 2, coef_key, sh), -1);
    assert_int_equal(mfl_secagg_share_split(secret, rep, 2, 2, coef_key, sh), -1);
    assert_int_equal(mfl_secagg_share_split(secret, xs, 2, 3, coef_key, sh), -1);
    assert_int_equal(mfl_secagg_share_combine(rep, (const uint8_t (*)[32])sh, 2, out), -1);
}

/* Chi-square of the byte histogram against uniform (255 degrees of freedom:
 * mean 255, sd 22.6). */
static double s_chi2(const uint64_t *v, size_t n)
{
    double count[256] = {0};
    for (size_t j = 0; j < n; j++)
        for (int b = 0; b < 8; b++)
            count[(v[j] >> (8 * b)) & 0xff] += 1;
    double e = (double)n * 8 / 256, chi = 0;
    for (int k = 0; k < 256; k++)
        chi += (count[k] - e) * (count[k] - e) / e;
    return chi;
}

/* A masked update's bytes pass a uniformity test that the same update in
 * clear fails by far (fixed seeds, so the test is deterministic). */
static void test_masked_update_looks_uniform(void **state)
{
    (void)state;
    enum { P = 8191 };
    static float delta[P];
    static uint64_t x[P + 1];
    mfl_rng_t r;
    mfl_rng_seed(&r, 12, 0);
    for (int j = 0; j < P; j++)
        delta[j] = 0.01f * mfl_rng_normal(&r);
    mfl_aggregate_t *agg = mfl_aggregate_new(P);
    char err[256];
    assert_int_equal(mfl_secagg_update_encode(agg, delta, 120.0, x, err, sizeof err), 0);
    double clear = s_chi2(x, P + 1);
    uint8_t seed[32], key[32], nonce[12];
    mfl_secagg_scope_t scope = {.round = 1};
    memset(seed, 0x11, sizeof seed);
    mfl_secagg_derive(key, MFL_SECAGG_KDF_SELF, &scope, 1, seed);
    mfl_secagg_mask_nonce(nonce, &scope, 1, 1);
    assert_int_equal(mfl_secagg_mask_apply(x, P + 1, key, nonce, 1), 0);
    double masked = s_chi2(x, P + 1);
    print_message("chi2 over bytes: clear %.0f, masked %.1f (bound 400)\n", clear, masked);
    assert_true(clear > 400);
    assert_true(masked < 400);
    mfl_aggregate_destroy(&agg);
}

/* Encoded updates summed mod 2^64 and folded back give the aggregator's
 * mean bit for bit, including negative terms; bad updates are refused. */
static void test_encoded_sum_matches_plain_aggregate(void **state)
{
    (void)state;
    enum { P = 777, K = 5 };
    static float delta[K][P];
    static uint64_t x[P + 1], sum[P + 1];
    double w[K];
    mfl_rng_t r;
    mfl_rng_seed(&r, 2027, 3);
    mfl_aggregate_t *plain = mfl_aggregate_new(P), *viasum = mfl_aggregate_new(P);
    char err[256];
    memset(sum, 0, sizeof sum);
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < P; j++)
            delta[k][j] = (k % 2 ? 3.0f : 1e-3f) * mfl_rng_normal(&r);
        w[k] = k == 2 ? 0.3 : 1 + (double)mfl_rng_below(&r, 500);
        assert_int_equal(mfl_aggregate_add(plain, delta[k], w[k], err, sizeof err), 0);
        assert_int_equal(mfl_secagg_update_encode(viasum, delta[k], w[k], x, err, sizeof err), 0);
        for (int j = 0; j <= P; j++)
            sum[j] += x[j];
    }
    assert_int_equal(mfl_aggregate_count(viasum), 0); /* encode adds nothing */
    assert_int_equal(mfl_secagg_update_fold(viasum, sum, K, err, sizeof err), 0);
    assert_int_equal(mfl_aggregate_count(viasum), K);
    assert_true(mfl_aggregate_total_weight(viasum) == mfl_aggregate_total_weight(plain));
    static float m1[P], m2[P];
    assert_int_equal(mfl_aggregate_mean(plain, m1), 0);
    assert_int_equal(mfl_aggregate_mean(viasum, m2), 0);
    assert_memory_equal(m1, m2, sizeof m1);
    /* Refusals: NaN, a term past the bound, zero count, impossible weight. */
    delta[0][5] = NAN;
    assert_int_equal(mfl_secagg_update_encode(viasum, delta[0], 1.0, x, err, sizeof err), -1);
    assert_non_null(strstr(err, "delta[5]"));
    delta[0][5] = 1e9f;
    assert_int_equal(mfl_secagg_update_encode(viasum, delta[0], 1.0, x, err, sizeof err), -1);
    assert_int_equal(mfl_secagg_update_fold(viasum, sum, 0, err, sizeof err), -1);
    sum[P] = 0;
    assert_int_equal(mfl_secagg_update_fold(viasum, sum, 2, err, sizeof err), -1);
    assert_int_equal(mfl_aggregate_count(viasum), K);
    mfl_aggregate_destroy(&plain);
    mfl_aggregate_destroy(&viasum);
}

/* SecAgg+'s graph: every site has exactly k neighbours, symmetric, the
 * same for the same seed; complete when k ≥ n − 1; bad k refused. */
static void test_neighbour_graph(void **state)
{
    (void)state;
    uint8_t seed[32] = {1, 2, 3};
    mfl_secagg_graph_t *g = mfl_secagg_graph_new(20, 6, seed), *h = mfl_secagg_graph_new(20, 6, seed);
    assert_non_null(g);
    int differs_from_ring = 0;
    for (uint32_t a = 1; a <= 20; a++) {
        uint32_t deg = 0;
        for (uint32_t b = 1; b <= 20; b++) {
            int adj = mfl_secagg_graph_adjacent(g, a, b);
            assert_int_equal(adj, mfl_secagg_graph_adjacent(g, b, a));
            assert_int_equal(adj, mfl_secagg_graph_adjacent(h, a, b));
            deg += (uint32_t)adj;
            uint32_t d = a > b ? a - b : b - a;
            if (adj != (a != b && (d <= 3 || 20 - d <= 3)))
                differs_from_ring = 1;
        }
        assert_int_equal(deg, 6);
    }
    assert_true(differs_from_ring); /* the seed shuffled the ring */
    mfl_secagg_graph_destroy(&g);
    mfl_secagg_graph_destroy(&h);
    g = mfl_secagg_graph_new(5, 0, seed);
    assert_int_equal(mfl_secagg_graph_degree(g), 4);
    assert_true(mfl_secagg_graph_adjacent(g, 1, 5));
    mfl_secagg_graph_destroy(&g);
    assert_null(mfl_secagg_graph_new(20, 5, seed));
    assert_null(mfl_secagg_graph_new(1, 0, seed));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_expansion_matches_rfc8439_keystream),
        cmocka_unit_test(test_mask_expansion_32_bit_words),
        cmocka_unit_test(test_mask_many_threads_equals_one_pass),
        cmocka_unit_test(test_key_agreement_known_answers),
        cmocka_unit_test(test_sharing_known_answers_and_threshold),
        cmocka_unit_test(test_masked_update_looks_uniform),
        cmocka_unit_test(test_encoded_sum_matches_plain_aggregate),
        cmocka_unit_test(test_neighbour_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
