/* Shamir sharing through libgfshare (see secagg_share.h). */
#include "secagg/secagg_share.h"

#include <libgfshare.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

/* libgfshare draws a split's coefficients through the global hook
 * gfshare_fill_rand (NULL by default). It is set once to s_fill, which reads
 * the calling thread's ChaCha20 key: each split draws from its own key. */
static _Thread_local const uint8_t *s_coef_key;
static _Thread_local uint64_t s_coef_calls;
static pthread_once_t s_hook_once = PTHREAD_ONCE_INIT;

static void s_fill(unsigned char *buf, unsigned int count)
{
    /* Outside a split, libgfshare calls the hook to overwrite freed
     * contexts (gfshare_ctx_free): fresh random bytes do that. */
    if (!s_coef_key) {
        randombytes_buf(buf, count);
        return;
    }
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
    uint64_t c = s_coef_calls++;
    for (int k = 0; k < 8; k++)
        nonce[k] = (uint8_t)(c >> (8 * k));
    crypto_stream_chacha20_ietf(buf, count, nonce, s_coef_key);
}

static void s_install_hook(void)
{
    gfshare_fill_rand = s_fill;
}

static int s_xs_ok(const uint8_t *xs, size_t n)
{
    for (size_t a = 0; a < n; a++) {
        if (xs[a] == 0)
            return 0;
        for (size_t b = a + 1; b < n; b++)
            if (xs[a] == xs[b])
                return 0;
    }
    return 1;
}

int mfl_secagg_share_split(const uint8_t secret[MFL_SECAGG_SHARE_BYTES], const uint8_t *xs,
                           size_t n, unsigned t, const uint8_t coef_key[32],
                           uint8_t (*shares)[MFL_SECAGG_SHARE_BYTES])
{
    if (n == 0 || n > MFL_SECAGG_SHARE_MAX_X || t == 0 || t > n || !s_xs_ok(xs, n) ||
        sodium_init() < 0)
        return -1;
    pthread_once(&s_hook_once, s_install_hook);
    uint8_t xcopy[MFL_SECAGG_SHARE_MAX_X], scopy[MFL_SECAGG_SHARE_BYTES];
    memcpy(xcopy, xs, n);
    memcpy(scopy, secret, sizeof scopy);
    gfshare_ctx *g = gfshare_ctx_init_enc(xcopy, (unsigned)n, (unsigned char)t,
                                          MFL_SECAGG_SHARE_BYTES);
    if (!g) {
        sodium_memzero(scopy, sizeof scopy);
        return -1;
    }
    s_coef_key = coef_key;
    s_coef_calls = 0;
    gfshare_ctx_enc_setsecret(g, scopy); /* draws the coefficients */
    s_coef_key = NULL;
    for (size_t k = 0; k < n; k++)
        gfshare_ctx_enc_getshare(g, (unsigned char)k, shares[k]);
    gfshare_ctx_free(g); /* overwrites its buffers through s_fill, then frees */
    sodium_memzero(scopy, sizeof scopy);
    return 0;
}

int mfl_secagg_share_combine(const uint8_t *xs, const uint8_t (*shares)[MFL_SECAGG_SHARE_BYTES],
                             size_t n, uint8_t secret[MFL_SECAGG_SHARE_BYTES])
{
    if (n == 0 || n > MFL_SECAGG_SHARE_MAX_X || !s_xs_ok(xs, n) || sodium_init() < 0)
        return -1;
    pthread_once(&s_hook_once, s_install_hook); /* gfshare_ctx_free calls the hook */
    uint8_t xcopy[MFL_SECAGG_SHARE_MAX_X], scopy[MFL_SECAGG_SHARE_BYTES];
    memcpy(xcopy, xs, n);
    gfshare_ctx *g = gfshare_ctx_init_dec(xcopy, (unsigned)n, MFL_SECAGG_SHARE_BYTES);
    if (!g)
        return -1;
    for (size_t k = 0; k < n; k++) {
        memcpy(scopy, shares[k], sizeof scopy);
        gfshare_ctx_dec_giveshare(g, (unsigned char)k, scopy);
    }
    gfshare_ctx_dec_extract(g, secret);
    gfshare_ctx_free(g);
    sodium_memzero(scopy, sizeof scopy);
    return 0;
}
