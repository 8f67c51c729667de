/* Loading a learner state from a coordinator checkpoint (what `metafl
 * eval --params round-N.ckpt` and `metafl export` do; eval used to read it
 * as safetensors and fail with "header length ... over the limit"): the
 * checkpoint's θ comes back bit for bit with its round; the same tensors
 * under another algorithm load; another model of the very same size is
 * refused by the model binding hash; a different size is refused by its
 * count; safetensors still load through the same call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "fed/checkpoint.h"
#include "meta/learner_io.h"
#include "round/run_model.h"

static mfl_learner_t *s_learner(const char *spec, mfl_algo_kind_t algo)
{
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, algo);
    snprintf(c.model_spec, sizeof c.model_spec, "%s", spec);
    c.loss = MFL_LOSS_BCE;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, 1, err, sizeof err);
    if (!l)
        fail_msg("learner %s: %s", spec, err);
    return l;
}

static void test_checkpoint_and_safetensors_load(void **state)
{
    (void)state;
    assert_true(sodium_init() >= 0);
    char dir[] = "/tmp/test_round_run_model.XXXXXX";
    assert_non_null(mkdtemp(dir));
    mfl_learner_t *l = s_learner("mlp:3-4-1", MFL_ALGO_REPTILE);
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof *theta), *got = calloc(n, sizeof *got);
    mfl_learner_init_state(l, theta, 11);
    mfl_checkpoint_t ck;
    memset(&ck, 0, sizeof ck);
    snprintf(ck.run_id, sizeof ck.run_id, "seed-1");
    ck.round = 7;
    ck.n_params = n;
    ck.theta = theta;
    mfl_run_model_hash(mfl_learner_config(l), n, ck.model_hash);
    char path[256], err[512] = "";
    snprintf(path, sizeof path, "%s/round-00000007.ckpt", dir);
    assert_int_equal(mfl_checkpoint_save(path, &ck, err, sizeof err), 0);
    assert_true(mfl_run_is_checkpoint(path));

    uint64_t round = 0;
    assert_int_equal(mfl_run_params_load(l, got, path, &round, err, sizeof err), 0);
    assert_int_equal(round, 7);
    assert_memory_equal(got, theta, n * sizeof *theta);

    /* Same tensors, another algorithm (a Reptile run evaluated as MAML). */
    mfl_learner_t *maml = s_learner("mlp:3-4-1", MFL_ALGO_MAML);
    memset(got, 0, n * sizeof *got);
    assert_int_equal(mfl_run_params_load(maml, got, path, NULL, err, sizeof err), 0);
    assert_memory_equal(got, theta, n * sizeof *theta);

    /* Another model with the same number of parameters (2*5+5+5+1 = 21 =
     * 3*4+4+4+1): only the binding hash tells them apart. */
    mfl_learner_t *same_size = s_learner("mlp:2-5-1", MFL_ALGO_REPTILE);
    assert_int_equal(mfl_learner_n_state(same_size), n);
    memset(got, 0, n * sizeof *got);
    assert_int_equal(mfl_run_params_load(same_size, got, path, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "written for another model than mlp:2-5-1"));
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] == 0.0f); /* untouched on refusal */

    mfl_learner_t *bigger = s_learner("mlp:3-8-1", MFL_ALGO_REPTILE);
    float *big = calloc(mfl_learner_n_state(bigger), sizeof *big);
    assert_int_equal(mfl_run_params_load(bigger, big, path, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "checkpoint holds 21 parameters"));

    /* safetensors through the same call. */
    char st[256];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    assert_int_equal(mfl_learner_save(l, theta, st, NULL, err, sizeof err), 0);
    assert_false(mfl_run_is_checkpoint(st));
    memset(got, 0, n * sizeof *got);
    round = 99;
    assert_int_equal(mfl_run_params_load(l, got, st, &round, err, sizeof err), 0);
    assert_int_equal(round, 0);
    assert_memory_equal(got, theta, n * sizeof *theta);

    free(big);
    free(got);
    free(theta);
    mfl_learner_destroy(&bigger);
    mfl_learner_destroy(&same_size);
    mfl_learner_destroy(&maml);
    mfl_learner_destroy(&l);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_and_safetensors_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
