/* The compressed broadcast's difference encoder (common/fed/bcast.h): a
 * site that decodes what was sent and applies it to θ̂_{t−1} holds exactly
 * the coordinator's θ̂_t, bit for bit; error feedback makes θ̂ follow θ
 * (the rounding loss is sent later); same seed, same bytes; bad input is
 * refused without touching θ̂; and the bytes of a fixed case are pinned
 * (a change is a resume and simulate = daemons compatibility break). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fed/bcast.h"

#define N 1000

static void s_fill(float *v, size_t n, uint64_t seed, float amp)
{
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++)
        v[i] = amp * (2.0f * mfl_rng_uniform(&r) - 1.0f);
}

/* One round at both ends: the coordinator's θ̂ and the site's reconstruction. */
static void s_round(mfl_quant_kind_t k, const float *theta, float *coord_hat, float *site_hat,
                    uint64_t seed, uint8_t *bytes, float *scale)
{
    float decoded[N];
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, MFL_BCAST_STREAM);
    assert_int_equal(mfl_bcast_encode(k, theta, coord_hat, N, &r, bytes, scale), 0);
    assert_int_equal(mfl_quant_decode(k, bytes, N, *scale, decoded), 0);
    mfl_bcast_apply(site_hat, decoded, N);
    assert_memory_equal(coord_hat, site_hat, sizeof(float) * N);
}

static void test_site_rebuilds_bit_for_bit_and_follows_theta(void **state)
{
    (void)state;
    const mfl_quant_kind_t kinds[2] = {MFL_QUANT_FP16, MFL_QUANT_INT8};
    for (int ki = 0; ki < 2; ki++) {
        float theta[N], coord_hat[N], site_hat[N], scale;
        uint8_t bytes[2 * N];
        s_fill(theta, N, 7, 1.0f);
        memcpy(coord_hat, theta, sizeof theta); /* round 1 went out in full */
        memcpy(site_hat, theta, sizeof theta);
        double err_prev = INFINITY;
        for (uint64_t t = 2; t < 8; t++) {
            /* θ moves by a step each round, as a server step would */
            float step[N];
            s_fill(step, N, 100 + t, 0.05f);
            for (size_t i = 0; i < N; i++)
                theta[i] += step[i];
            s_round(kinds[ki], theta, coord_hat, site_hat, 1000 + t, bytes, &scale);
            double err = 0;
            for (size_t i = 0; i < N; i++)
                err = fmax(err, fabs((double)theta[i] - coord_hat[i]));
            /* int8: within one code of the difference's range (≤ 2·0.05 +
             * the residual carried); fp16: within half precision */
            assert_true(err < (kinds[ki] == MFL_QUANT_INT8 ? 0.002 : 1e-4));
            err_prev = err;
        }
        /* θ stops moving: the residual is sent in the next rounds */
        for (uint64_t t = 8; t < 11; t++)
            s_round(kinds[ki], theta, coord_hat, site_hat, 1000 + t, bytes, &scale);
        double err = 0;
        for (size_t i = 0; i < N; i++)
            err = fmax(err, fabs((double)theta[i] - coord_hat[i]));
        assert_true(err < err_prev / 100 || err == 0);
    }
}

static void test_same_seed_same_bytes(void **state)
{
    (void)state;
    float theta[N], a[N], b[N], sa, sb;
    uint8_t ba[N], bb[N];
    s_fill(theta, N, 3, 1.0f);
    s_fill(a, N, 4, 1.0f);
    memcpy(b, a, sizeof a);
    mfl_rng_t r1, r2;
    mfl_rng_seed(&r1, 42, MFL_BCAST_STREAM);
    mfl_rng_seed(&r2, 42, MFL_BCAST_STREAM);
    assert_int_equal(mfl_bcast_encode(MFL_QUANT_INT8, theta, a, N, &r1, ba, &sa), 0);
    assert_int_equal(mfl_bcast_encode(MFL_QUANT_INT8, theta, b, N, &r2, bb, &sb), 0);
    assert_memory_equal(ba, bb, N);
    assert_memory_equal(&sa, &sb, 4);
    /* another round's seed rounds differently */
    s_fill(b, N, 4, 1.0f);
    mfl_rng_seed(&r2, 43, MFL_BCAST_STREAM);
    assert_int_equal(mfl_bcast_encode(MFL_QUANT_INT8, theta, b, N, &r2, bb, &sb), 0);
    assert_true(memcmp(ba, bb, N) != 0);
}

static void test_bad_input_leaves_theta_hat(void **state)
{
    (void)state;
    float theta[N], hat[N], before[N], s;
    uint8_t bytes[4 * N];
    s_fill(theta, N, 5, 1.0f);
    s_fill(hat, N, 6, 1.0f);
    memcpy(before, hat, sizeof hat);
    mfl_rng_t r;
    mfl_rng_seed(&r, 1, MFL_BCAST_STREAM);
    theta[17] = NAN;
    assert_int_equal(mfl_bcast_encode(MFL_QUANT_FP16, theta, hat, N, &r, bytes, &s), -1);
    assert_memory_equal(hat, before, sizeof hat);
    theta[17] = 0.5f;
    assert_int_equal(mfl_bcast_encode(MFL_QUANT_FP32, theta, hat, N, &r, bytes, &s), -1);
    assert_int_equal(mfl_bcast_encode((mfl_quant_kind_t)9, theta, hat, N, &r, bytes, &s),
                     -1);
    assert_memory_equal(hat, before, sizeof hat);
}

/* Known answer: BLAKE2b-256 of (bytes ‖ scale ‖ θ̂) after one int8 and one
 * fp16 round of a fixed case, computed once from this code. */
static void test_known_bytes(void **state)
{
    (void)state;
    float theta[N], hat[N], s;
    uint8_t bytes[2 * N];
    s_fill(theta, N, 11, 1.0f);
    s_fill(hat, N, 12, 1.0f);
    const mfl_quant_kind_t kinds[2] = {MFL_QUANT_INT8, MFL_QUANT_FP16};
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, 32);
    for (int k = 0; k < 2; k++) {
        mfl_rng_t r;
        mfl_rng_seed(&r, 0x5eed, MFL_BCAST_STREAM + (uint64_t)k);
        assert_int_equal(mfl_bcast_encode(kinds[k], theta, hat, N, &r, bytes, &s), 0);
        crypto_generichash_update(&h, bytes, mfl_quant_bytes(kinds[k], N));
        crypto_generichash_update(&h, (const unsigned char *)&s, 4);
        crypto_generichash_update(&h, (const unsigned char *)hat, sizeof hat);
    }
    uint8_t out[32];
    crypto_generichash_final(&h, out, 32);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, out, 32);
    assert_string_equal(hex, "da63a26f19a7f9748baad4704036a73b43c23ef9b3cf839f5f7e760031283553");
}

/* A tensor longer than the encoder's stack pieces (and not a multiple of
 * them): the bytes, scale and θ̂ are those of the definition, one
 * mfl_quant_encode of the whole d = θ − θ̂, its decode, and one float add
 * per element; a non-finite d in the last piece leaves θ̂ untouched (the
 * pieces before it included). */
static void test_long_tensor_equals_whole_encoding(void **state)
{
    (void)state;
    enum { L = 3 * 4096 + 4096 / 2 + 37 };
    float *theta = malloc(L * sizeof(float)), *hat = malloc(L * sizeof(float));
    float *ref = malloc(L * sizeof(float)), *d = malloc(L * sizeof(float));
    uint8_t *bytes = malloc(2 * L), *want = malloc(2 * L);
    assert_true(theta && hat && ref && d && bytes && want);
    const mfl_quant_kind_t kinds[2] = {MFL_QUANT_INT8, MFL_QUANT_FP16};
    for (int k = 0; k < 2; k++) {
        s_fill(theta, L, 21, 1.0f);
        s_fill(hat, L, 22, 1.0f);
        theta[L - 5] = 40.0f; /* the max |d| sits in the last piece */
        memcpy(ref, hat, L * sizeof(float));
        mfl_rng_t r1, r2;
        mfl_rng_seed(&r1, 3, MFL_BCAST_STREAM);
        mfl_rng_seed(&r2, 3, MFL_BCAST_STREAM);
        float s, ws;
        for (size_t i = 0; i < L; i++)
            d[i] = theta[i] - ref[i];
        assert_int_equal(mfl_quant_encode(kinds[k], d, L, NULL, &r1, want, &ws), 0);
        assert_int_equal(mfl_quant_decode(kinds[k], want, L, ws, d), 0);
        for (size_t i = 0; i < L; i++)
            ref[i] += d[i];
        assert_int_equal(mfl_bcast_encode(kinds[k], theta, hat, L, &r2, bytes, &s), 0);
        assert_memory_equal(bytes, want, mfl_quant_bytes(kinds[k], L));
        assert_memory_equal(&s, &ws, sizeof s);
        assert_memory_equal(hat, ref, L * sizeof(float));
        /* refused whole: nothing of θ̂ changes */
        theta[L - 3] = INFINITY;
        assert_int_equal(mfl_bcast_encode(kinds[k], theta, hat, L, &r2, bytes, &s), -1);
        assert_memory_equal(hat, ref, L * sizeof(float));
    }
    free(theta);
    free(hat);
    free(ref);
    free(d);
    free(bytes);
    free(want);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_rebuilds_bit_for_bit_and_follows_theta),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_bad_input_leaves_theta_hat),
        cmocka_unit_test(test_known_bytes),
        cmocka_unit_test(test_long_tensor_equals_whole_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
