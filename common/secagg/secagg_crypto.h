/* The cryptographic core of secure aggregation (docs/SECAGG.md): key
 * agreement, key derivation, mask expansion and statement signing, all on
 * libsodium. Transport-free and stateless.
 *
 * Key agreement: X25519 (crypto_scalarmult) of one side's secret key with
 * the other side's public key, then BLAKE2b-256 keyed with that shared point
 * over a statement that binds a purpose label, the round, the attempt's
 * nonce, the pair's two indices and both public keys, each in a fixed
 * (ascending) order, so both ends derive the same 256-bit key and no key is
 * ever used for two purposes, rounds, attempts or pairs.
 *
 * Masks: a 256-bit key expanded by ChaCha20 (IETF, crypto_stream_chacha20_
 * ietf) under a 96-bit nonce that is itself BLAKE2b of (label, round, attempt
 * nonce, pair), read as little-endian words of the attempt's width (64 bits,
 * or 32: docs/SECAGG.md "Word width") and added (or subtracted) modulo
 * 2^64 or 2^32. A vector may be at most MFL_SECAGG_MAX_WORDS words
 * (ChaCha20-IETF's 32-bit block counter: 2^32 blocks of 8 64-bit words).
 *
 * Thread-safe (no state) once libsodium is initialised (sodium_init; every
 * entry point here calls it, which is idempotent). */
#ifndef MFL_SECAGG_CRYPTO_H
#define MFL_SECAGG_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define MFL_SECAGG_KEY_BYTES   32        /* X25519 keys, derived keys, seeds */
#define MFL_SECAGG_NONCE_BYTES 16        /* the round attempt's nonce */
#define MFL_SECAGG_SIG_BYTES   64        /* Ed25519 signature */
#define MFL_SECAGG_MAX_WORDS   (1ull << 35) /* ChaCha20-IETF: 2^32 blocks x 8 words */

/* What a derived key is for: one label each, so no key serves two uses. */
typedef enum {
    MFL_SECAGG_KDF_MASK = 1,  /* pairwise mask key (s keys) */
    MFL_SECAGG_KDF_SHARE = 2, /* share encryption key (c keys) */
    MFL_SECAGG_KDF_SELF = 3,  /* self-mask key from a site's seed */
} mfl_secagg_kdf_t;

/* Where a key or mask belongs: the round, the attempt's nonce. */
typedef struct {
    uint64_t round;
    uint8_t nonce[MFL_SECAGG_NONCE_BYTES];
} mfl_secagg_scope_t;

/* Initialises libsodium; 0, or -1 if it cannot (then nothing here works). */
int mfl_secagg_crypto_init(void);

/* A fresh X25519 key pair from libsodium's CSPRNG: sk (32 bytes, caller's,
 * ideally sodium_malloc'd) and pk = X25519(sk, base). 0 or -1. */
int mfl_secagg_keypair(uint8_t pk[MFL_SECAGG_KEY_BYTES], uint8_t sk[MFL_SECAGG_KEY_BYTES]);

/* pk = X25519(sk, base): checks a reconstructed secret against its
 * advertised public key. 0 or -1. */
int mfl_secagg_public_key(uint8_t pk[MFL_SECAGG_KEY_BYTES], const uint8_t sk[MFL_SECAGG_KEY_BYTES]);

/* The pairwise key of sites `me` and `peer` (indices, distinct) for `kdf`:
 * BLAKE2b-256 keyed with X25519(my_sk, peer_pk) over (label, scope, lower
 * index, higher index, the lower index's public key, the higher's). Both
 * sides get the same key. `my_pk` must be X25519(my_sk, base) (the caller
 * has it; recomputing it would double the cost). -1 if the shared point is
 * all zero (peer_pk of low order: a key chosen to force a known secret) or
 * me == peer. */
int mfl_secagg_agree(uint8_t key[MFL_SECAGG_KEY_BYTES], mfl_secagg_kdf_t kdf,
                     const mfl_secagg_scope_t *scope, uint32_t me,
                     const uint8_t my_sk[MFL_SECAGG_KEY_BYTES],
                     const uint8_t my_pk[MFL_SECAGG_KEY_BYTES], uint32_t peer,
                     const uint8_t peer_pk[MFL_SECAGG_KEY_BYTES]);

/* A key derived from a secret `seed` for site `index` (self mask):
 * BLAKE2b-256 keyed with the seed over (label, scope, index). */
void mfl_secagg_derive(uint8_t key[MFL_SECAGG_KEY_BYTES], mfl_secagg_kdf_t kdf,
                       const mfl_secagg_scope_t *scope, uint32_t index,
                       const uint8_t seed[MFL_SECAGG_KEY_BYTES]);

/* The commitment to a site's self-mask seed that its signed advertisement
 * carries, so a reconstructed seed can be checked: BLAKE2b-256 keyed with
 * the seed over ("commit", scope, index). Reveals nothing about a uniform
 * 256-bit seed. */
void mfl_secagg_commit(uint8_t commit[MFL_SECAGG_KEY_BYTES], const mfl_secagg_scope_t *scope,
                       uint32_t index, const uint8_t seed[MFL_SECAGG_KEY_BYTES]);

/* The ChaCha20 nonce of the mask between `a` and `b` (a == b: a self mask)
 * in `scope`: the first 12 bytes of BLAKE2b(label, scope, min, max). */
void mfl_secagg_mask_nonce(uint8_t nonce[12], const mfl_secagg_scope_t *scope, uint32_t a,
                           uint32_t b);

/* v[j] += sign · word_j (mod 2^64) for j < n, word_j the j-th little-endian
 * 64-bit word of ChaCha20-IETF(key, nonce) from block 0; sign is +1 or -1.
 * -1 (v untouched) if n > MFL_SECAGG_MAX_WORDS or sign is neither. */
int mfl_secagg_mask_apply(uint64_t *v, size_t n, const uint8_t key[MFL_SECAGG_KEY_BYTES],
                          const uint8_t nonce[12], int sign);

/* One mask of a vector: ChaCha20-IETF(key, nonce) from block 0, added
 * (sign +1) or subtracted (-1). `key` is borrowed. */
typedef struct {
    const uint8_t *key; /* MFL_SECAGG_KEY_BYTES */
    uint8_t nonce[12];
    int sign;
} mfl_secagg_mask_t;

/* v[j] += Σₖ signₖ · word_j(maskₖ) mod 2^word_bits for j < n, v being n
 * words of `word_bits` (32 or 64: uint32_t or uint64_t), word_j(m) the
 * j-th little-endian word of that width of m's keystream. One pass over v
 * (each chunk of v takes every mask's stream while it is in cache), no
 * copy of v. -1 (v untouched) if n > MFL_SECAGG_MAX_WORDS, word_bits is
 * neither, or a sign is neither +1 nor -1. 64 bits, one mask: what
 * mfl_secagg_mask_apply does. */
int mfl_secagg_mask_many(void *v, size_t n, unsigned word_bits, const mfl_secagg_mask_t *masks,
                         size_t n_masks);

/* mfl_secagg_mask_many on `threads` threads (the calling one and
 * threads - 1 more, at most MFL_SECAGG_MASK_MAX_THREADS), each adding every
 * mask to its own part of v (whole 16 KiB chunks): the same words, bit for
 * bit, as one pass, in about 1/threads of the time when cores are free.
 * For the coordinator's unmasking, which runs while every site waits. Fewer
 * threads when v has fewer than 2 chunks per thread; a thread that cannot
 * be started leaves its part to the calling thread. 0 or -1 as
 * mfl_secagg_mask_many. */
#define MFL_SECAGG_MASK_MAX_THREADS 8
int mfl_secagg_mask_many_threads(void *v, size_t n, unsigned word_bits,
                                 const mfl_secagg_mask_t *masks, size_t n_masks,
                                 unsigned threads);

/* Fills *m with the pairwise mask between `me` and `peer` (the nonce of
 * the pair, and the sign mfl_secagg_mask_pair would apply). 0, or -1 if
 * me == peer or sign is neither +1 nor -1. */
int mfl_secagg_mask_pair_spec(mfl_secagg_mask_t *m, const uint8_t key[MFL_SECAGG_KEY_BYTES],
                              const mfl_secagg_scope_t *scope, uint32_t me, uint32_t peer,
                              int sign);

/* The pairwise mask between `me` and `peer` under their mask key: site `me`
 * adds +PRG(key) if it is the lower index and -PRG(key) if the higher, so
 * the two sites' masks cancel in the sum. `sign` +1 applies what `me`
 * adds; -1 takes it out again (the coordinator, for a peer that dropped).
 * The nonce is mfl_secagg_mask_nonce(scope, me, peer). 0 or -1 as
 * mfl_secagg_mask_apply, or -1 if me == peer. */
int mfl_secagg_mask_pair(uint64_t *v, size_t n, const uint8_t key[MFL_SECAGG_KEY_BYTES],
                         const mfl_secagg_scope_t *scope, uint32_t me, uint32_t peer, int sign);

#endif
