/* fp16 / int8 update encodings (common/fed/quant.h): exact half
 * conversions, round-trip error bounds, stochastic rounding unbiased over
 * many draws of a fixed seed, error feedback that loses nothing over
 * rounds, and known bits for a fixed seed (the bytes every machine must
 * produce). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fed/quant.h"

static void test_names_parse_and_sizes(void **state)
{
    (void)state;
    mfl_quant_kind_t k;
    const char *names[3] = {"fp32", "fp16", "int8"};
    const size_t bytes[3] = {40, 20, 10};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mfl_quant_parse(names[i], &k), 0);
        assert_string_equal(mfl_quant_name(k), names[i]);
        assert_int_equal(mfl_quant_bytes(k, 10), bytes[i]);
    }
    assert_int_equal(mfl_quant_parse("int4", &k), -1);
    assert_int_equal(mfl_quant_parse("FP16", &k), -1);
    assert_int_equal(mfl_quant_parse(NULL, &k), -1);
    assert_string_equal(mfl_quant_name((mfl_quant_kind_t)7), "?");
    assert_int_equal(mfl_quant_bytes((mfl_quant_kind_t)7, 10), 0);
}

static void test_half_known_codes(void **state)
{
    (void)state;
    /* exactly representable values encode to their code whatever the draw */
    const struct {
        float x;
        uint16_t h;
    } k[] = {{1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.5f, 0x3800}, {65504.0f, 0x7bff},
             {5.9604644775390625e-8f, 0x0001}, {6.103515625e-05f, 0x0400}, {0.0f, 0x0000},
             {-0.0f, 0x8000}, {1.0009765625f, 0x3c01}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        assert_int_equal(mfl_quant_f32_to_f16(k[i].x, 0.0), k[i].h);
        assert_int_equal(mfl_quant_f32_to_f16(k[i].x, 0.999999), k[i].h);
        float back = mfl_quant_f16_to_f32(k[i].h);
        assert_memory_equal(&back, &k[i].x, 4);
    }
    /* clamps: beyond the largest finite half */
    assert_int_equal(mfl_quant_f32_to_f16(1e6f, 0.3), 0x7bff);
    assert_int_equal(mfl_quant_f32_to_f16(-70000.0f, 0.3), 0xfbff);
    assert_true(isinf(mfl_quant_f16_to_f32(0x7c00)));
    assert_true(isnan(mfl_quant_f16_to_f32(0x7e00)));
    /* between two codes: the draw picks the neighbour, never a third code */
    assert_int_equal(mfl_quant_f32_to_f16(1.00048828125f, 0.49), 0x3c01); /* halfway */
    assert_int_equal(mfl_quant_f32_to_f16(1.00048828125f, 0.51), 0x3c00);
}

static void test_every_finite_half_round_trips(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if (((h >> 10) & 0x1fu) == 0x1fu)
            continue; /* infinities and NaNs */
        float v = mfl_quant_f16_to_f32((uint16_t)h);
        assert_int_equal(mfl_quant_f32_to_f16(v, 0.5), h);
    }
}

/* A vector of n values spread over several magnitudes. */
static float *s_values(size_t n, uint64_t seed, float spread)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = mfl_rng_normal(&r) * spread * (float)(1 + i % 7);
    return x;
}

static void test_round_trip_error_bounds(void **state)
{
    (void)state;
    size_t n = 4096;
    float *x = s_values(n, 3, 0.01f), *y = malloc(n * sizeof(float));
    uint8_t *buf = malloc(4 * n);
    assert_true(y && buf);
    mfl_rng_t r;
    mfl_rng_seed(&r, 11, MFL_QUANT_STREAM);
    float scale;
    /* fp16: below one unit in the last place of the half, i.e. relative
     * 2^-10 for normal halves and 2^-24 absolute for subnormal ones */
    assert_int_equal(mfl_quant_encode(MFL_QUANT_FP16, x, n, NULL, &r, buf, &scale), 0);
    assert_int_equal(mfl_quant_decode(MFL_QUANT_FP16, buf, n, scale, y), 0);
    for (size_t i = 0; i < n; i++)
        assert_true(fabsf(y[i] - x[i]) <= fmaxf(fabsf(x[i]) * 0x1p-10f, 0x1p-24f));
    /* int8: below one step of the tensor's scale, max |x| / 127 */
    float maxabs = 0;
    for (size_t i = 0; i < n; i++)
        maxabs = fmaxf(maxabs, fabsf(x[i]));
    assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, x, n, NULL, &r, buf, &scale), 0);
    assert_float_equal(scale, maxabs / 127.0f, 0);
    assert_int_equal(mfl_quant_decode(MFL_QUANT_INT8, buf, n, scale, y), 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(fabsf(y[i] - x[i]) <= scale * 1.0001f);
        assert_true((int8_t)buf[i] >= -127);
    }
    /* fp32 is a copy */
    assert_int_equal(mfl_quant_encode(MFL_QUANT_FP32, x, n, NULL, &r, buf, &scale), 0);
    assert_int_equal(mfl_quant_decode(MFL_QUANT_FP32, buf, n, scale, y), 0);
    assert_memory_equal(x, y, n * sizeof(float));
    free(x);
    free(y);
    free(buf);
}

static void test_stochastic_rounding_is_unbiased(void **state)
{
    (void)state;
    /* One value between two codes, drawn 200000 times from a fixed seed:
     * the mean of the decoded values is the value (within 5 standard
     * errors), while round-to-nearest would miss it by a fixed amount. */
    const int draws = 200000;
    mfl_rng_t r;
    mfl_rng_seed(&r, 2024, MFL_QUANT_STREAM);
    float x = 0.1f; /* halves around it: 0.0999755859375 and 0.10003662109375 */
    double sum = 0;
    for (int i = 0; i < draws; i++)
        sum += mfl_quant_f16_to_f32(mfl_quant_f32_to_f16(x, mfl_rng_uniform_double(&r)));
    double gap = 0.10003662109375 - 0.0999755859375;
    double se = gap * 0.5 / sqrt((double)draws);
    assert_true(fabs(sum / draws - (double)x) < 5 * se);
    /* int8: a tensor whose scale puts 0.3 at code 0.3·127/1 = 38.1 */
    float v[2] = {1.0f, 0.3f};
    double s1 = 0;
    for (int i = 0; i < draws; i++) {
        int8_t c[2];
        float scale, y[2];
        assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, v, 2, NULL, &r, c, &scale), 0);
        assert_int_equal(mfl_quant_decode(MFL_QUANT_INT8, c, 2, scale, y), 0);
        assert_memory_equal(&y[0], &v[0], 4); /* the max is a code exactly */
        s1 += y[1];
    }
    double step = 1.0 / 127;
    assert_true(fabs(s1 / draws - 0.3) < 5 * step * 0.5 / sqrt((double)draws));
}

static void test_error_feedback_accumulates(void **state)
{
    (void)state;
    /* The same small Δ every round, far below one int8 step of the tensor
     * (one large element sets the scale): without feedback it is lost in
     * most rounds; with feedback the decoded sum over K rounds is the true
     * sum minus the last residual, which stays below one step. */
    enum { N = 64, K = 400 };
    float x[N], res[N], y[N], sum[N];
    int8_t c[N];
    for (int i = 0; i < N; i++)
        x[i] = i == 0 ? 1.0f : 0.0007f * (float)(i % 5 + 1);
    memset(res, 0, sizeof res);
    memset(sum, 0, sizeof sum);
    mfl_rng_t r;
    mfl_rng_seed(&r, 5, MFL_QUANT_STREAM);
    float scale = 0;
    for (int k = 0; k < K; k++) {
        assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, x, N, res, &r, c, &scale), 0);
        assert_int_equal(mfl_quant_decode(MFL_QUANT_INT8, c, N, scale, y), 0);
        for (int i = 0; i < N; i++) {
            sum[i] += y[i];
            /* residual is exactly what this round lost of x + old residual */
            assert_true(fabsf(res[i]) <= scale * 1.0001f);
        }
    }
    for (int i = 1; i < N; i++) {
        double want = (double)K * x[i];
        /* |Σ decoded − K·x| = |last residual| plus float rounding of the sums */
        assert_true(fabs(sum[i] - want) <= scale * 1.01 + 1e-4 * want);
    }
    /* fp16 with feedback: the residual is what rounding lost, and
     * x + old residual = decoded + new residual exactly */
    float r16[N], xf[N];
    uint16_t h[N];
    for (int i = 0; i < N; i++) {
        r16[i] = 1e-5f * (float)i;
        xf[i] = 0.123f + 1e-3f * (float)i;
    }
    float before[N];
    memcpy(before, r16, sizeof before);
    assert_int_equal(mfl_quant_encode(MFL_QUANT_FP16, xf, N, r16, &r, h, &scale), 0);
    assert_int_equal(mfl_quant_decode(MFL_QUANT_FP16, h, N, scale, y), 0);
    for (int i = 0; i < N; i++) {
        float v = xf[i] + before[i];
        float back = y[i] + r16[i];
        assert_memory_equal(&back, &v, 4);
    }
}

static void test_known_bits_for_a_fixed_seed(void **state)
{
    (void)state;
    /* The bytes every build must write for this input and seed: a change in
     * the generator, the draw order or the rounding shows here. */
    const float x[8] = {0.1f, -0.25f, 0.0003f, 1.5f, -0.7777f, 0.0f, 3.14159f, -1e-6f};
    mfl_rng_t r;
    mfl_rng_seed(&r, 42, MFL_QUANT_STREAM);
    uint16_t h[8];
    int8_t c[8];
    float scale;
    assert_int_equal(mfl_quant_encode(MFL_QUANT_FP16, x, 8, NULL, &r, h, &scale), 0);
    assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, x, 8, NULL, &r, c, &scale), 0);
    const uint16_t want_h[8] = {0x2e66, 0xb400, 0x0cea, 0x3e00, 0xba38, 0x0000, 0x4249, 0x8011};
    const int8_t want_c[8] = {4, -10, 0, 60, -31, 0, 127, 0};
    assert_memory_equal(h, want_h, sizeof h);
    assert_memory_equal(c, want_c, sizeof c);
    float want_scale = 3.14159f / 127.0f;
    assert_memory_equal(&scale, &want_scale, 4);
}

/* The per-element definitions the encoders are held to: one draw of
 * mfl_rng_uniform_double per element in order, mfl_quant_f32_to_f16 for a
 * half, floor(v / s) + [u < frac] clamped to ±127 for int8 (the encoders
 * compute in blocks, vectorised; they must write the same bytes). */
static void s_ref_fp16(const float *x, size_t n, float *res, mfl_rng_t *r, uint16_t *out)
{
    for (size_t i = 0; i < n; i++) {
        float v = res ? x[i] + res[i] : x[i];
        out[i] = mfl_quant_f32_to_f16(v, mfl_rng_uniform_double(r));
        if (res)
            res[i] = v - mfl_quant_f16_to_f32(out[i]);
    }
}

static void s_ref_int8(const float *x, size_t n, float *res, mfl_rng_t *r, int8_t *out,
                       float *scale)
{
    float maxabs = 0;
    for (size_t i = 0; i < n; i++) {
        float v = res ? x[i] + res[i] : x[i];
        if (fabsf(v) > maxabs)
            maxabs = fabsf(v);
    }
    float s = maxabs / 127.0f;
    *scale = s;
    for (size_t i = 0; i < n; i++) {
        float v = res ? x[i] + res[i] : x[i];
        double u = mfl_rng_uniform_double(r);
        int code = 0;
        if (s > 0) {
            double q = (double)v / (double)s;
            double fl = floor(q);
            code = (int)fl + (u < q - fl ? 1 : 0);
            code = code > 127 ? 127 : code < -127 ? -127 : code;
        }
        out[i] = (int8_t)code;
        if (res)
            res[i] = v - (float)out[i] * s;
    }
}

/* Inputs over every path: half normals and subnormals, float subnormals,
 * zeros of both signs, half codes exactly, values past ±65504, a length
 * that is not a whole number of blocks. */
static float *s_edge_values(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof *x);
    mfl_rng_t g;
    mfl_rng_seed(&g, seed, 5);
    for (size_t i = 0; i < n; i++) {
        float r = mfl_rng_normal(&g);
        switch (i % 9) {
        case 0: x[i] = r; break;
        case 1: x[i] = 1e-6f * r; break;          /* half subnormals */
        case 2: x[i] = 1e-9f * r; break;          /* below the smallest half */
        case 3: x[i] = 1e-40f * r; break;         /* float subnormals */
        case 4: x[i] = (i & 16) ? -0.0f : 0.0f; break;
        case 5: x[i] = mfl_quant_f16_to_f32((uint16_t)(mfl_rng_u64(&g) & 0x7bff)); break;
        case 6: x[i] = 70000.0f * r; break;       /* often past ±65504 */
        case 7: x[i] = 65504.0f * (r > 0 ? 1 : -1); break;
        default: x[i] = 300.0f * r; break;
        }
    }
    return x;
}

static void test_block_encoders_equal_the_per_element_definitions(void **state)
{
    (void)state;
    const size_t ns[4] = {1, 255, 256, 3 * 256 + 77};
    for (int k = 0; k < 4; k++) {
        size_t n = ns[k];
        float *x = s_edge_values(n, 100 + (uint64_t)k);
        float *r1 = malloc(n * sizeof *r1), *r2 = malloc(n * sizeof *r2);
        uint16_t *h1 = malloc(2 * n), *h2 = malloc(2 * n);
        int8_t *c1 = malloc(n), *c2 = malloc(n);
        for (int with_res = 0; with_res < 2; with_res++) {
            for (size_t i = 0; i < n; i++) /* a residual that pushes some values over */
                r1[i] = r2[i] = with_res ? 1e-3f * x[(i * 7) % n] : 0.0f;
            mfl_rng_t g1, g2;
            mfl_rng_seed(&g1, 9, MFL_QUANT_STREAM + (uint64_t)k);
            g2 = g1;
            assert_int_equal(mfl_quant_encode(MFL_QUANT_FP16, x, n, with_res ? r1 : NULL, &g1,
                                              h1, &(float){0}), 0);
            s_ref_fp16(x, n, with_res ? r2 : NULL, &g2, h2);
            assert_memory_equal(h1, h2, 2 * n);
            assert_memory_equal(r1, r2, n * sizeof *r1);
            assert_true(mfl_rng_u64(&g1) == mfl_rng_u64(&g2)); /* one draw per element */
            float s1, s2;
            assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, x, n, with_res ? r1 : NULL, &g1,
                                              c1, &s1), 0);
            s_ref_int8(x, n, with_res ? r2 : NULL, &g2, c2, &s2);
            assert_memory_equal(&s1, &s2, sizeof s1);
            assert_memory_equal(c1, c2, n);
            assert_memory_equal(r1, r2, n * sizeof *r1);
            assert_true(mfl_rng_u64(&g1) == mfl_rng_u64(&g2));
        }
        /* all zeros: scale 0, codes 0, a draw per element all the same */
        memset(x, 0, n * sizeof *x);
        mfl_rng_t g1, g2;
        mfl_rng_seed(&g1, 3, 4);
        g2 = g1;
        float s1 = 1, s2 = 1;
        assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, x, n, NULL, &g1, c1, &s1), 0);
        s_ref_int8(x, n, NULL, &g2, c2, &s2);
        assert_true(s1 == 0 && s2 == 0);
        assert_memory_equal(c1, c2, n);
        assert_true(mfl_rng_u64(&g1) == mfl_rng_u64(&g2));
        free(x);
        free(r1);
        free(r2);
        free(h1);
        free(h2);
        free(c1);
        free(c2);
    }
}

/* The block decoder of halves equals mfl_quant_f16_to_f32 for every code,
 * infinities and NaNs included (which only a hostile sender writes). */
static void test_half_decode_equals_the_definition_for_every_code(void **state)
{
    (void)state;
    uint16_t *h = malloc(65536 * sizeof *h);
    float *y = malloc(65536 * sizeof *y);
    for (uint32_t i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    assert_int_equal(mfl_quant_decode(MFL_QUANT_FP16, h, 65536, 1.0f, y), 0);
    for (uint32_t i = 0; i < 65536; i++) {
        float want = mfl_quant_f16_to_f32((uint16_t)i);
        assert_memory_equal(&y[i], &want, 4);
    }
    free(h);
    free(y);
}

static void test_refuses_non_finite_input(void **state)
{
    (void)state;
    float x[3] = {1.0f, NAN, 2.0f}, res[3] = {0, 0, 0}, big[2] = {3e38f, 0};
    float res_big[2] = {3e38f, 0};
    uint8_t buf[12];
    float scale;
    mfl_rng_t r;
    mfl_rng_seed(&r, 1, MFL_QUANT_STREAM);
    for (int k = 0; k < 3; k++)
        assert_int_equal(mfl_quant_encode((mfl_quant_kind_t)k, x, 3, res, &r, buf, &scale), -1);
    /* x + residual overflows to infinity: refused too */
    assert_int_equal(mfl_quant_encode(MFL_QUANT_INT8, big, 2, res_big, &r, buf, &scale), -1);
    assert_int_equal(mfl_quant_encode((mfl_quant_kind_t)9, big, 2, NULL, &r, buf, &scale), -1);
    float y[2];
    assert_int_equal(mfl_quant_decode(MFL_QUANT_INT8, buf, 2, INFINITY, y), -1);
    assert_int_equal(mfl_quant_decode((mfl_quant_kind_t)9, buf, 2, 1.0f, y), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_parse_and_sizes),
        cmocka_unit_test(test_half_known_codes),
        cmocka_unit_test(test_every_finite_half_round_trips),
        cmocka_unit_test(test_round_trip_error_bounds),
        cmocka_unit_test(test_stochastic_rounding_is_unbiased),
        cmocka_unit_test(test_error_feedback_accumulates),
        cmocka_unit_test(test_known_bits_for_a_fixed_seed),
        cmocka_unit_test(test_refuses_non_finite_input),
        cmocka_unit_test(test_block_encoders_equal_the_per_element_definitions),
        cmocka_unit_test(test_half_decode_equals_the_definition_for_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
