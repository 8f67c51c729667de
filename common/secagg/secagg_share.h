/* Shamir secret sharing of 32-byte secrets, t of n, on Debian's libgfshare
 * (byte-wise over GF(2^8); docs/SECAGG.md says why this library).
 *
 * A share is the polynomial's value at x = the holder's site index (1..255),
 * 32 bytes; any t shares with distinct x give the secret back, fewer say
 * nothing about it. A wrong share gives a wrong secret, silently: callers
 * check the result against a commitment (secagg_crypto.h) and try another
 * subset.
 *
 * The random coefficients come from ChaCha20 keyed by `coef_key` (32 bytes
 * the caller draws from the CSPRNG; fixed only in known-answer tests), so
 * libgfshare's global random hook is never its random()-based default.
 * Thread-safe: the key travels to the hook in thread-local storage. */
#ifndef MFL_SECAGG_SHARE_H
#define MFL_SECAGG_SHARE_H

#include <stddef.h>
#include <stdint.h>

#define MFL_SECAGG_SHARE_BYTES 32
#define MFL_SECAGG_SHARE_MAX_X 255

/* Splits `secret` into n shares for the distinct x-coordinates xs[0..n)
 * (each 1..255), any `t` of which (1 ≤ t ≤ n) recover it; share k (for
 * xs[k]) is written to shares[k]. 0, or -1 on bad arguments (nothing
 * written) or out of memory. */
int mfl_secagg_share_split(const uint8_t secret[MFL_SECAGG_SHARE_BYTES], const uint8_t *xs,
                           size_t n, unsigned t, const uint8_t coef_key[32],
                           uint8_t (*shares)[MFL_SECAGG_SHARE_BYTES]);

/* The secret interpolated from the n given shares (xs distinct, 1..255,
 * n ≥ 1). With at least t correct shares of one split, the secret. 0, or
 * -1 on bad arguments (repeated or zero x) or out of memory. */
int mfl_secagg_share_combine(const uint8_t *xs, const uint8_t (*shares)[MFL_SECAGG_SHARE_BYTES],
                             size_t n, uint8_t secret[MFL_SECAGG_SHARE_BYTES]);

#endif
