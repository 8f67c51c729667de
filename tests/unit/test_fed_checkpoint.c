/* Checkpoints and the server step: a resumed run continues bit-identically;
 * corruption is detected; torn temp files are ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "fed/checkpoint.h"
#include "fed/server_step.h"

#include "tmpdir.h"

#define P 257

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    return s_tmpdir_make(s_dir, sizeof s_dir, "ckpt");
}

static int s_teardown(void **state)
{
    (void)state;
    return s_tmpdir_remove(s_dir);
}

/* Writes a test file without fsync (durability is not under test here,
 * and fsync is slow on a busy shared disk). */
static void s_put(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void s_fill(mfl_checkpoint_t *ck, float *theta, float *st, uint64_t round)
{
    memset(ck, 0, sizeof *ck);
    strcpy(ck->run_id, "run-2026.a_b");
    ck->round = round;
    ck->seed = 0xfeedfacecafebeefull;
    mfl_rng_seed(&ck->rng, 42, round);
    ck->optim_kind = 2;
    ck->optim_steps = round;
    for (int i = 0; i < 32; i++)
        ck->model_hash[i] = (uint8_t)(i * 7);
    for (int i = 0; i < P; i++) {
        theta[i] = (float)i * 0.25f - 3.0f + (float)round;
        st[i] = (float)i * 1e-3f;
        st[P + i] = (float)i * 1e-6f;
    }
    ck->n_params = P;
    ck->theta = theta;
    ck->n_optim_state = 2 * P;
    ck->optim_state = st;
}

static void test_round_trip_is_exact(void **state)
{
    (void)state;
    static float theta[P], st[2 * P];
    mfl_checkpoint_t ck, back;
    s_fill(&ck, theta, st, 3);
    char path[512], err[512];
    assert_int_equal(mfl_checkpoint_save_dir(s_dir, &ck, path, sizeof path, err, sizeof err), 0);
    assert_non_null(strstr(path, "round-00000003.ckpt"));
    assert_int_equal(mfl_checkpoint_load(path, &back, err, sizeof err), 0);
    assert_string_equal(back.run_id, ck.run_id);
    assert_true(back.round == 3 && back.seed == ck.seed && back.optim_kind == 2 &&
                back.optim_steps == 3);
    assert_memory_equal(&back.rng, &ck.rng, sizeof ck.rng);
    assert_memory_equal(back.model_hash, ck.model_hash, 32);
    assert_int_equal(back.n_params, P);
    assert_int_equal(back.n_optim_state, 2 * P);
    assert_memory_equal(back.theta, theta, sizeof theta);
    assert_memory_equal(back.optim_state, st, sizeof st);
    mfl_checkpoint_clear(&back);
    assert_null(back.theta);
}

/* A run with a compressed broadcast keeps θ̂ (version 2): it comes back
 * exactly; without it the file is version 1 and its old size; a version 2
 * file with a flipped θ̂ byte or without its θ̂ is refused. */
static void test_broadcast_model_round_trip(void **state)
{
    (void)state;
    static float theta[P], st[2 * P], hat[P];
    mfl_checkpoint_t ck, back;
    s_fill(&ck, theta, st, 9);
    char p1[512], p2[512], bad[600], err[512];
    assert_int_equal(mfl_checkpoint_save_dir(s_dir, &ck, p1, sizeof p1, err, sizeof err), 0);
    char *v1;
    size_t len1;
    assert_int_equal(mfl_file_read_all(p1, 1 << 20, &v1, &len1, err, sizeof err), 0);
    assert_int_equal(len1, 192 + 4 * 3 * P + 32);
    assert_int_equal(v1[8], 1);
    assert_int_equal(mfl_checkpoint_load(p1, &back, err, sizeof err), 0);
    assert_null(back.broadcast);
    mfl_checkpoint_clear(&back);
    for (int i = 0; i < P; i++)
        hat[i] = theta[i] + (float)i * 1e-4f;
    ck.broadcast = hat;
    ck.round = 10;
    assert_int_equal(mfl_checkpoint_save_dir(s_dir, &ck, p2, sizeof p2, err, sizeof err), 0);
    assert_int_equal(mfl_checkpoint_load(p2, &back, err, sizeof err), 0);
    assert_non_null(back.broadcast);
    assert_memory_equal(back.broadcast, hat, sizeof hat);
    assert_memory_equal(back.theta, theta, sizeof theta);
    mfl_checkpoint_clear(&back);
    char *v2;
    size_t len2;
    assert_int_equal(mfl_file_read_all(p2, 1 << 20, &v2, &len2, err, sizeof err), 0);
    assert_int_equal(len2, len1 + 4 * P);
    assert_int_equal(v2[8], 2);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", s_dir);
    v2[len2 - 32 - 7] ^= 0x04; /* inside θ̂ */
    s_put(bad, v2, len2);
    assert_int_equal(mfl_checkpoint_load(bad, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "checksum"));
    v2[len2 - 32 - 7] ^= 0x04;
    v2[8] = 1; /* a version 1 header over a version 2 body */
    s_put(bad, v2, len2);
    assert_int_equal(mfl_checkpoint_load(bad, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "size"));
    v2[8] = 3;
    s_put(bad, v2, len2);
    assert_int_equal(mfl_checkpoint_load(bad, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "version"));
    hat[5] = NAN;
    assert_int_equal(mfl_checkpoint_save_dir(s_dir, &ck, p2, sizeof p2, err, sizeof err), -1);
    assert_non_null(strstr(err, "broadcast"));
    free(v1);
    free(v2);
    unlink(bad);
    unlink(p1);
    unlink(p2);
}

/* The coordinator's split write: visible at once without fsync, durable
 * after mfl_checkpoint_sync; a file a power loss left empty before its sync
 * is skipped and the previous (synced) one loads. */
static void test_nosync_is_visible_at_once_and_a_torn_one_falls_back(void **state)
{
    (void)state;
    static float theta[P], st[2 * P];
    mfl_checkpoint_t ck, back;
    char path5[512], path6[512], err[512];
    s_fill(&ck, theta, st, 5);
    assert_int_equal(mfl_checkpoint_save_dir(s_dir, &ck, path5, sizeof path5, err, sizeof err),
                     0);
    s_fill(&ck, theta, st, 6);
    assert_int_equal(
        mfl_checkpoint_save_dir_nosync(s_dir, &ck, path6, sizeof path6, err, sizeof err), 0);
    assert_int_equal(mfl_checkpoint_latest(s_dir, &back, NULL, 0, err, sizeof err), 1);
    assert_int_equal(back.round, 6);
    assert_memory_equal(back.theta, theta, sizeof theta);
    mfl_checkpoint_clear(&back);
    assert_int_equal(mfl_checkpoint_sync(path6, err, sizeof err), 0);
    s_put(path6, "", 0); /* what a power loss before the sync may leave */
    assert_int_equal(mfl_checkpoint_latest(s_dir, &back, NULL, 0, err, sizeof err), 1);
    assert_int_equal(back.round, 5);
    mfl_checkpoint_clear(&back);
    char gone[600];
    snprintf(gone, sizeof gone, "%s/round-00000099.ckpt", s_dir);
    assert_int_equal(mfl_checkpoint_sync(gone, err, sizeof err), -1);
    assert_non_null(strstr(err, "round-00000099.ckpt"));
}

/* Staged = written but invisible; published = in place; discarded = gone. */
static void test_stage_publish_discard(void **state)
{
    (void)state;
    static float theta[P], st[2 * P];
    mfl_checkpoint_t ck, back;
    char dir[300], path[512], err[512];
    snprintf(dir, sizeof dir, "%s/staged", s_dir);
    assert_int_equal(mfl_mkdir_p(dir, 0755, err, sizeof err), 0);
    s_fill(&ck, theta, st, 7);
    assert_int_equal(mfl_checkpoint_path(dir, 7, path, sizeof path), 0);
    mfl_checkpoint_staged_t stg;
    assert_int_equal(mfl_checkpoint_stage(path, &ck, &stg, err, sizeof err), 0);
    assert_true(stg.tmp[0] != '\0' && access(stg.tmp, F_OK) == 0);
    assert_int_equal(mfl_checkpoint_latest(dir, &back, NULL, 0, err, sizeof err), 0);
    assert_int_equal(mfl_checkpoint_publish(&stg, err, sizeof err), 0);
    assert_int_equal(mfl_checkpoint_latest(dir, &back, NULL, 0, err, sizeof err), 1);
    assert_int_equal(back.round, 7);
    assert_memory_equal(back.theta, theta, sizeof theta);
    assert_memory_equal(back.optim_state, st, sizeof st);
    mfl_checkpoint_clear(&back);
    assert_int_equal(mfl_checkpoint_publish(&stg, err, sizeof err), -1); /* nothing staged */
    s_fill(&ck, theta, st, 8);
    assert_int_equal(mfl_checkpoint_path(dir, 8, path, sizeof path), 0);
    assert_int_equal(mfl_checkpoint_stage(path, &ck, &stg, err, sizeof err), 0);
    char tmp[sizeof stg.tmp];
    memcpy(tmp, stg.tmp, sizeof tmp);
    mfl_checkpoint_discard(&stg);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(mfl_checkpoint_latest(dir, &back, NULL, 0, err, sizeof err), 1);
    assert_int_equal(back.round, 7);
    mfl_checkpoint_clear(&back);
    theta[3] = NAN; /* refused before anything is written */
    assert_int_equal(mfl_checkpoint_stage(path, &ck, &stg, err, sizeof err), -1);
    assert_non_null(strstr(err, "theta[3]"));
}

static void test_any_flipped_byte_or_truncation_is_detected(void **state)
{
    (void)state;
    static float theta[P], st[2 * P];
    mfl_checkpoint_t ck, back;
    s_fill(&ck, theta, st, 4);
    char path[512], bad[600], err[512];
    assert_int_equal(mfl_checkpoint_save_dir(s_dir, &ck, path, sizeof path, err, sizeof err), 0);
    char *data;
    size_t len;
    assert_int_equal(mfl_file_read_all(path, 1 << 20, &data, &len, err, sizeof err), 0);
    snprintf(bad, sizeof bad, "%s/bad.ckpt", s_dir);
    /* Every byte position, one bit each: header, floats, checksum. */
    for (size_t i = 0; i < len; i += (i < 200 ? 1 : 61)) {
        data[i] ^= 0x10;
        s_put(bad, data, len);
        assert_int_equal(mfl_checkpoint_load(bad, &back, err, sizeof err), -1);
        assert_non_null(strstr(err, "bad.ckpt"));
        assert_null(back.theta);
        data[i] ^= 0x10;
    }
    s_put(bad, data, len - 5);
    assert_int_equal(mfl_checkpoint_load(bad, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "size"));
    data[200] ^= 1;
    s_put(bad, data, len);
    assert_int_equal(mfl_checkpoint_load(bad, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "checksum"));
    free(data);
    unlink(bad);
}

static void test_latest_skips_temp_and_corrupt_files(void **state)
{
    (void)state;
    char sub[300], path[512], err[512];
    snprintf(sub, sizeof sub, "%s/latest", s_dir);
    mfl_checkpoint_t ck, back;
    assert_int_equal(mfl_checkpoint_latest(sub, &back, path, sizeof path, err, sizeof err), 0);
    static float theta[P], st[2 * P];
    for (uint64_t r = 1; r <= 3; r++) {
        s_fill(&ck, theta, st, r);
        assert_int_equal(mfl_checkpoint_save_dir(sub, &ck, NULL, 0, err, sizeof err), 0);
    }
    /* A crash mid-write of round 5 leaves a torn temp file ... */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/round-00000005.ckpt" MFL_FILE_TMP_INFIX "Ab12Cd", sub);
    FILE *f = fopen(tmp, "wb");
    fputs("MFLCKPT1 torn", f);
    fclose(f);
    /* ... and round 4 is corrupt on disk. */
    snprintf(tmp, sizeof tmp, "%s/round-00000004.ckpt", sub);
    f = fopen(tmp, "wb");
    fputs("MFLCKPT1 garbage that is long enough to be a header? no.", f);
    fclose(f);
    assert_int_equal(mfl_checkpoint_latest(sub, &back, path, sizeof path, err, sizeof err), 1);
    assert_int_equal(back.round, 3);
    assert_non_null(strstr(path, "round-00000003.ckpt"));
    mfl_checkpoint_clear(&back);

    assert_int_equal(mfl_checkpoint_prune(sub, 2, err, sizeof err), 0);
    snprintf(tmp, sizeof tmp, "%s/round-00000001.ckpt", sub);
    assert_int_not_equal(access(tmp, F_OK), 0);
    snprintf(tmp, sizeof tmp, "%s/round-00000003.ckpt", sub);
    assert_int_equal(access(tmp, F_OK), 0);
    assert_int_equal(mfl_checkpoint_prune(sub, 0, err, sizeof err), -1);
}

static void test_save_rejects_bad_fields(void **state)
{
    (void)state;
    static float theta[P], st[2 * P];
    mfl_checkpoint_t ck;
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/x.ckpt", s_dir);
    s_fill(&ck, theta, st, 1);
    strcpy(ck.run_id, "has space");
    assert_int_equal(mfl_checkpoint_save(path, &ck, err, sizeof err), -1);
    assert_non_null(strstr(err, "run_id"));
    s_fill(&ck, theta, st, 1);
    theta[9] = NAN;
    assert_int_equal(mfl_checkpoint_save(path, &ck, err, sizeof err), -1);
    assert_non_null(strstr(err, "theta[9]"));
    assert_int_not_equal(access(path, F_OK), 0);
}

/* Runs `rounds` server steps of kind `kind` from θ0 with synthetic means. */
static void s_run(mfl_server_step_t *s, float *theta, uint64_t from, uint64_t to)
{
    char err[256];
    float mean[P];
    for (uint64_t r = from; r < to; r++) {
        mfl_rng_t rng;
        mfl_rng_seed(&rng, 9, r);
        for (int i = 0; i < P; i++)
            mean[i] = 0.01f * mfl_rng_normal(&rng);
        assert_int_equal(mfl_server_step_apply(s, theta, mean, err, sizeof err), 0);
    }
}

static void test_server_step_resume_is_bit_identical(void **state)
{
    (void)state;
    for (int kind = MFL_OPTIM_SGD; kind <= MFL_OPTIM_LAST; kind++) {
        mfl_optim_config_t cfg = mfl_optim_defaults((mfl_optim_kind_t)kind, 0.5f);
        static float a[P], b[P];
        for (int i = 0; i < P; i++)
            a[i] = b[i] = (float)i / P;
        /* Straight run of 6 rounds. */
        mfl_server_step_t *s = mfl_server_step_new(&cfg, P);
        assert_non_null(s);
        s_run(s, a, 0, 6);
        assert_int_equal(mfl_server_step_count(s), 6);
        mfl_server_step_destroy(&s);
        /* 3 rounds, checkpoint, "crash", load, 3 more. */
        s = mfl_server_step_new(&cfg, P);
        s_run(s, b, 0, 3);
        static float st[2 * P];
        mfl_checkpoint_t ck;
        memset(&ck, 0, sizeof ck);
        strcpy(ck.run_id, "resume");
        ck.round = 3;
        ck.optim_kind = (uint32_t)kind;
        ck.n_params = P;
        ck.theta = b;
        ck.n_optim_state = mfl_server_step_state_size(s);
        ck.optim_state = st;
        mfl_server_step_state_export(s, st, &ck.optim_steps);
        char path[512], err[512];
        assert_int_equal(mfl_checkpoint_save_dir(s_dir, &ck, path, sizeof path, err, sizeof err),
                         0);
        mfl_server_step_destroy(&s);
        memset(b, 0, sizeof b);

        mfl_checkpoint_t back;
        assert_int_equal(mfl_checkpoint_load(path, &back, err, sizeof err), 0);
        s = mfl_server_step_new(&cfg, P);
        assert_int_equal(mfl_server_step_state_import(s, back.optim_state, back.n_optim_state,
                                                      back.optim_steps, err, sizeof err), 0);
        memcpy(b, back.theta, sizeof b);
        mfl_checkpoint_clear(&back);
        s_run(s, b, 3, 6);
        assert_memory_equal(a, b, sizeof a);
        assert_int_equal(mfl_server_step_count(s), 6);
        mfl_server_step_destroy(&s);
    }
}

static void test_server_step_sgd_is_theta_plus_beta_mean(void **state)
{
    (void)state;
    mfl_optim_config_t cfg = mfl_optim_defaults(MFL_OPTIM_SGD, 0.5f);
    mfl_server_step_t *s = mfl_server_step_new(&cfg, 3);
    float theta[3] = {1, 2, 3}, mean[3] = {2, -4, 0.5f};
    char err[256];
    assert_int_equal(mfl_server_step_apply(s, theta, mean, err, sizeof err), 0);
    assert_true(theta[0] == 2.0f && theta[1] == 0.0f && theta[2] == 3.25f);
    float bad[3] = {0, NAN, 0};
    assert_int_equal(mfl_server_step_apply(s, theta, bad, err, sizeof err), -1);
    assert_true(theta[0] == 2.0f && theta[1] == 0.0f); /* unchanged */
    float huge[3] = {3e38f, 3e38f, 0};
    theta[0] = 3e38f;
    assert_int_equal(mfl_server_step_apply(s, theta, huge, err, sizeof err), -1);
    assert_true(theta[0] == 3e38f);
    assert_int_equal(mfl_server_step_count(s), 1);
    float one = 1;
    assert_int_equal(mfl_server_step_state_import(s, &one, 1, 0, err, sizeof err), -1);
    mfl_server_step_destroy(&s);
    cfg.lr = -1;
    assert_null(mfl_server_step_new(&cfg, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_exact),
        cmocka_unit_test(test_broadcast_model_round_trip),
        cmocka_unit_test(test_nosync_is_visible_at_once_and_a_torn_one_falls_back),
        cmocka_unit_test(test_stage_publish_discard),
        cmocka_unit_test(test_any_flipped_byte_or_truncation_is_detected),
        cmocka_unit_test(test_latest_skips_temp_and_corrupt_files),
        cmocka_unit_test(test_save_rejects_bad_fields),
        cmocka_unit_test(test_server_step_resume_is_bit_identical),
        cmocka_unit_test(test_server_step_sgd_is_theta_plus_beta_mean),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
