/* A site applies a compressed broadcast's difference (site/site_broadcast.h):
 * the held model plus the difference is the coordinator's θ̂ and is taken;
 * a task naming no base, a base the site does not hold, another base, a
 * difference of the wrong length are refused with the held model
 * untouched; a sum that does not hash to the task's model is refused as
 * such (-2: the held model is gone); and the digest of a full model's
 * verified tensor hashes is its model hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "fed/bcast.h"
#include "site/site_broadcast.h"

#define N1 40
#define N2 24
#define N (N1 + N2)

typedef struct {
    float theta[N], coord_hat[N], held[N];
    float decoded[N];
    uint8_t held_hash[32];
    mfl_round_task_t task;
    mfl_tensor_t t[2];
    uint8_t th[2][32];
} fx_t;

static void s_digest(const float *v, uint8_t out[32])
{
    uint8_t h[64];
    crypto_generichash(h, 32, (const unsigned char *)v, N1 * 4, NULL, 0);
    crypto_generichash(h + 32, 32, (const unsigned char *)(v + N1), N2 * 4, NULL, 0);
    mfl_audit_update_digest(h, 2, out);
}

/* The coordinator's round: θ̂_{t−1} = held, θ_t = θ, int8 difference
 * decoded as the wire would. */
static void s_setup_fx(fx_t *f)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < N; i++) {
        f->held[i] = (float)(i % 9) * 0.125f - 0.5f;
        f->theta[i] = f->held[i] + (float)((i * 7) % 5) * 0.01f;
    }
    memcpy(f->coord_hat, f->held, sizeof f->held);
    s_digest(f->held, f->held_hash);
    const size_t off[2] = {0, N1}, cnt[2] = {N1, N2};
    for (int k = 0; k < 2; k++) {
        uint8_t q[N];
        float scale;
        mfl_rng_t r;
        mfl_rng_seed(&r, 77, MFL_BCAST_STREAM + (uint64_t)k);
        assert_int_equal(mfl_bcast_encode(MFL_QUANT_INT8, f->theta + off[k],
                                          f->coord_hat + off[k], cnt[k], &r, q, &scale),
                         0);
        assert_int_equal(mfl_quant_decode(MFL_QUANT_INT8, q, cnt[k], scale, f->decoded + off[k]),
                         0);
        f->t[k] = mfl_tensor_vec(k ? "b" : "w", f->decoded + off[k], cnt[k]);
        f->t[k].encoding = MFL_QUANT_INT8;
    }
    f->task.has_broadcast_base = true;
    memcpy(f->task.broadcast_base, f->held_hash, 32);
    s_digest(f->coord_hat, f->task.model_hash);
    f->task.model_hash_len = 32;
}

static void test_difference_applies_to_the_held_model(void **state)
{
    (void)state;
    fx_t *f = malloc(sizeof *f);
    s_setup_fx(f);
    char err[200] = "";
    assert_int_equal(mfl_site_broadcast_apply(f->held, N, f->held_hash, true, &f->task, f->t, 2,
                                              err, sizeof err), 0);
    assert_memory_equal(f->held, f->coord_hat, sizeof f->held);
    free(f);
}

/* The difference as the site's wire leaves it (encoded_runs): int8 codes
 * in two runs per tensor, decoded here block by block: the same held model
 * as from the decoded floats, bit for bit. */
static void test_codes_left_in_their_frames_apply_the_same(void **state)
{
    (void)state;
    fx_t *f = malloc(sizeof *f);
    s_setup_fx(f);
    memcpy(f->coord_hat, f->held, sizeof f->held);
    const size_t off[2] = {0, N1}, cnt[2] = {N1, N2};
    int8_t codes[N];
    mfl_tensor_piece_t runs[2][2];
    mfl_tensor_t t[2];
    for (int k = 0; k < 2; k++) {
        float scale;
        mfl_rng_t r;
        mfl_rng_seed(&r, 77, MFL_BCAST_STREAM + (uint64_t)k);
        assert_int_equal(mfl_bcast_encode(MFL_QUANT_INT8, f->theta + off[k],
                                          f->coord_hat + off[k], cnt[k], &r, codes + off[k],
                                          &scale),
                         0);
        size_t first = cnt[k] / 2 + 1;
        runs[k][0] = (mfl_tensor_piece_t){(const float *)(const void *)(codes + off[k]), first};
        runs[k][1] = (mfl_tensor_piece_t){(const float *)(const void *)(codes + off[k] + first),
                                          cnt[k] - first};
        t[k] = mfl_tensor_vec(k ? "b" : "w", NULL, cnt[k]);
        t[k].pieces = runs[k];
        t[k].n_pieces = 2;
        t[k].encoding = MFL_QUANT_INT8;
        t[k].scale = scale;
    }
    s_digest(f->coord_hat, f->task.model_hash);
    char err[200] = "";
    assert_int_equal(mfl_site_broadcast_apply(f->held, N, f->held_hash, true, &f->task, t, 2,
                                              err, sizeof err), 0);
    assert_memory_equal(f->held, f->coord_hat, sizeof f->held);
    free(f);
}

static void test_refusals_leave_the_held_model(void **state)
{
    (void)state;
    fx_t *f = malloc(sizeof *f);
    s_setup_fx(f);
    float before[N];
    memcpy(before, f->held, sizeof before);
    char err[200] = "";
    /* no model held */
    assert_int_equal(mfl_site_broadcast_apply(f->held, N, f->held_hash, false, &f->task, f->t, 2,
                                              err, sizeof err), -1);
    assert_non_null(strstr(err, "holds no model"));
    /* another model held */
    uint8_t other[32];
    memcpy(other, f->held_hash, 32);
    other[3] ^= 1;
    assert_int_equal(mfl_site_broadcast_apply(f->held, N, other, true, &f->task, f->t, 2, err,
                                              sizeof err), -1);
    assert_non_null(strstr(err, "this site holds"));
    /* the difference is shorter or longer than the held model */
    assert_int_equal(mfl_site_broadcast_apply(f->held, N, f->held_hash, true, &f->task, f->t, 1,
                                              err, sizeof err), -1);
    assert_non_null(strstr(err, "values"));
    assert_int_equal(mfl_site_broadcast_apply(f->held, N - 1, f->held_hash, true, &f->task, f->t,
                                              2, err, sizeof err), -1);
    assert_non_null(strstr(err, "goes past"));
    /* a task that names no base */
    f->task.has_broadcast_base = false;
    assert_int_equal(mfl_site_broadcast_apply(f->held, N, f->held_hash, true, &f->task, f->t, 2,
                                              err, sizeof err), -1);
    assert_non_null(strstr(err, "no base"));
    assert_memory_equal(f->held, before, sizeof before);
    free(f);
}

static void test_a_sum_that_is_not_the_named_model_is_refused(void **state)
{
    (void)state;
    fx_t *f = malloc(sizeof *f);
    s_setup_fx(f);
    f->decoded[5] += 1e-3f; /* a difference the coordinator did not make */
    char err[200] = "";
    assert_int_equal(mfl_site_broadcast_apply(f->held, N, f->held_hash, true, &f->task, f->t, 2,
                                              err, sizeof err), -2);
    assert_non_null(strstr(err, "hashes to"));
    free(f);
}

static void test_digest_of_a_full_model(void **state)
{
    (void)state;
    fx_t *f = malloc(sizeof *f);
    s_setup_fx(f);
    mfl_tensor_t t[2] = {mfl_tensor_vec("w", f->held, N1), mfl_tensor_vec("b", f->held + N1, N2)};
    uint8_t out[32];
    assert_int_equal(mfl_site_broadcast_digest(t, 2, out), -1); /* no hashes */
    crypto_generichash(f->th[0], 32, (const unsigned char *)f->held, N1 * 4, NULL, 0);
    crypto_generichash(f->th[1], 32, (const unsigned char *)(f->held + N1), N2 * 4, NULL, 0);
    t[0].blake2b = f->th[0];
    t[1].blake2b = f->th[1];
    assert_int_equal(mfl_site_broadcast_digest(t, 2, out), 0);
    assert_memory_equal(out, f->held_hash, 32);
    free(f);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_difference_applies_to_the_held_model),
        cmocka_unit_test(test_codes_left_in_their_frames_apply_the_same),
        cmocka_unit_test(test_refusals_leave_the_held_model),
        cmocka_unit_test(test_a_sum_that_is_not_the_named_model_is_refused),
        cmocka_unit_test(test_digest_of_a_full_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
