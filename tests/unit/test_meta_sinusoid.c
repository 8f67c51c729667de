/* The MAML sinusoid benchmark in miniature: after k adaptation steps on 10
 * points of a new sine wave, an initialisation meta-learned by MAML or
 * Reptile fits better than a random one and better than one pre-trained
 * jointly on all tasks (which learns the mean curve, y ≈ 0, and adapts no
 * faster). Loose assertions on a small budget; bench_meta_sinusoid has the
 * full numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meta/learner.h"

#define SPEC "mlp:1-40-40-1"
/* He-uniform initialisation (nn's default) is larger than the MAML paper's,
 * so the paper's α = 0.01 makes 5 steps from a random init diverge. */
#define EVAL_LR 0.005f
#define EVAL_STEPS 5
#define ROUNDS 15 /* × 100 outer steps */

static mfl_learner_t *s_new(mfl_algo_kind_t algo, int inner_steps, float inner_lr,
                            float outer_lr, int meta_batch)
{
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, algo);
    strcpy(c.model_spec, SPEC);
    c.loss = MFL_LOSS_MSE;
    c.inner_steps = inner_steps;
    c.inner_lr = inner_lr;
    c.outer_lr = outer_lr;
    c.meta_batch = meta_batch;
    c.outer_steps = 100;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof(err));
    if (!l)
        fail_msg("learner: %s", err);
    return l;
}

static void s_train(mfl_learner_t *l, float *theta, int rounds)
{
    mfl_sampler_t *s = mfl_sampler_new_sinusoid(10, 10);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 0);
    size_t ns = mfl_learner_n_state(l);
    float *delta = malloc(ns * sizeof(float));
    char err[256];
    for (int r = 0; r < rounds; r++) {
        if (mfl_learner_meta_train(l, theta, s, &rng, delta, NULL, err, sizeof(err)))
            fail_msg("meta_train: %s", err);
        for (size_t i = 0; i < ns; i++)
            theta[i] += delta[i];
    }
    free(delta);
    mfl_sampler_destroy(&s);
}

/* Mean query MSE after EVAL_STEPS SGD steps on held-out tasks. */
static double s_eval(mfl_learner_t *l, const float *theta)
{
    mfl_sampler_t *s = mfl_sampler_new_sinusoid(10, 50);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 999, 5);
    mfl_task_t t = {0};
    double sum = 0;
    char err[256];
    for (int i = 0; i < 100; i++) {
        assert_int_equal(mfl_sampler_next(s, &rng, &t), 0);
        mfl_eval_metrics_t m;
        if (mfl_learner_evaluate(l, theta, t.support, t.query, EVAL_STEPS, EVAL_LR, NULL, &m,
                                 err, sizeof(err)))
            fail_msg("evaluate: %s", err);
        assert_true(isnan(m.accuracy));
        sum += m.loss;
    }
    mfl_task_clear(&t);
    mfl_sampler_destroy(&s);
    return sum / 100;
}

static void test_meta_learned_init_adapts_faster(void **state)
{
    (void)state;
    mfl_learner_t *maml = s_new(MFL_ALGO_MAML, 1, EVAL_LR, 0.001f, 10);
    mfl_learner_t *rep = s_new(MFL_ALGO_REPTILE, 10, EVAL_LR, 0.5f, 5);
    /* Joint pre-training: FedAvg over one fresh task per epoch. */
    mfl_learner_t *pre = s_new(MFL_ALGO_FEDAVG, 1, 0.002f, 1.0f, 1);
    size_t ns = mfl_learner_n_state(maml);
    float *t_rand = malloc(ns * sizeof(float)), *t_maml = malloc(ns * sizeof(float));
    float *t_rep = malloc(ns * sizeof(float)), *t_pre = malloc(ns * sizeof(float));
    mfl_learner_init_state(maml, t_rand, 7);
    memcpy(t_maml, t_rand, ns * sizeof(float));
    memcpy(t_rep, t_rand, ns * sizeof(float));
    memcpy(t_pre, t_rand, ns * sizeof(float));
    s_train(maml, t_maml, ROUNDS);
    s_train(rep, t_rep, ROUNDS);
    ((mfl_learner_config_t *)mfl_learner_config(pre))->local_epochs = 100 * ROUNDS;
    s_train(pre, t_pre, 1);
    double e_rand = s_eval(maml, t_rand), e_pre = s_eval(maml, t_pre);
    double e_maml = s_eval(maml, t_maml), e_rep = s_eval(maml, t_rep);
    print_message("query MSE after %d steps: random %.3f, pretrained %.3f, MAML %.3f, "
                  "Reptile %.3f\n", EVAL_STEPS, e_rand, e_pre, e_maml, e_rep);
    assert_true(e_maml < e_rand && e_maml < e_pre);
    assert_true(e_rep < e_rand && e_rep < e_pre);
    free(t_rand);
    free(t_maml);
    free(t_rep);
    free(t_pre);
    mfl_learner_destroy(&maml);
    mfl_learner_destroy(&rep);
    mfl_learner_destroy(&pre);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_learned_init_adapts_faster),
    };
    return cmocka_run_group_tests_name("meta_sinusoid", tests, NULL, NULL);
}
