/* Every meta-learning algorithm learns a synthetic few-shot problem: 5-way
 * 5-shot episodes of Gaussian blobs where only 4 of 16 features carry the
 * class and the other 12 are loud noise, so a random network is weak and a
 * learned initialisation or embedding must find the informative subspace.
 * Meta-test classes are disjoint from meta-train classes. Plus FedAvg's
 * local update and the learner's contracts (state layout, determinism). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meta/learner.h"

#define N_CLASSES 20
#define PER_CLASS 30
#define N_FEAT 16

static mfl_dataset_t *s_blobs(void)
{
    mfl_dataset_t *d = mfl_dataset_new(N_CLASSES * PER_CLASS, N_FEAT);
    assert_non_null(d);
    d->n_classes = N_CLASSES;
    mfl_rng_t r;
    mfl_rng_seed(&r, 2024, 0);
    float means[N_CLASSES][4];
    for (int c = 0; c < N_CLASSES; c++)
        for (int f = 0; f < 4; f++)
            means[c][f] = 1.5f * mfl_rng_normal(&r);
    for (size_t i = 0; i < d->n; i++) {
        int c = (int)(i % N_CLASSES);
        d->y[i] = (float)c;
        for (int f = 0; f < N_FEAT; f++)
            d->x[i * N_FEAT + f] = f < 4 ? means[c][f] + 0.5f * mfl_rng_normal(&r)
                                         : 2.0f * mfl_rng_normal(&r);
    }
    return d;
}

/* Mean query accuracy over `n` held-out episodes. */
static double s_eval(mfl_learner_t *l, const float *theta, mfl_sampler_t *test, int n)
{
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 77, 0); /* the same episodes every time */
    mfl_task_t t = {0};
    const mfl_learner_config_t *c = mfl_learner_config(l);
    double acc = 0;
    char err[256];
    for (int i = 0; i < n; i++) {
        assert_int_equal(mfl_sampler_next(test, &rng, &t), 0);
        mfl_eval_metrics_t m;
        if (mfl_learner_evaluate(l, theta, t.support, t.query, c->inner_steps, c->inner_lr,
                                 NULL, &m, err, sizeof(err)))
            fail_msg("evaluate: %s", err);
        assert_int_equal(m.n, t.query->n);
        assert_true(isnan(m.auroc)); /* 5-way: binary metrics do not apply */
        acc += m.accuracy;
    }
    mfl_task_clear(&t);
    return acc / n;
}

static void s_learns(mfl_algo_kind_t algo, int rounds, float inner_lr, float outer_lr)
{
    mfl_dataset_t *d = s_blobs();
    size_t train_cls[15], test_cls[5];
    for (size_t i = 0; i < 15; i++)
        train_cls[i] = i;
    for (size_t i = 0; i < 5; i++)
        test_cls[i] = 15 + i;
    char err[256];
    mfl_sampler_t *train = mfl_sampler_new_episodes(d, train_cls, 15, 5, 5, 5, err, sizeof(err));
    mfl_sampler_t *test = mfl_sampler_new_episodes(d, test_cls, 5, 5, 5, 5, err, sizeof(err));
    assert_non_null(train);
    assert_non_null(test);
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, algo);
    int metric = algo == MFL_ALGO_PROTONET || algo == MFL_ALGO_MATCHING ||
                 algo == MFL_ALGO_RELATION;
    strcpy(c.model_spec, metric ? "mlp:16-32-8" : "mlp:16-32-5");
    c.inner_lr = inner_lr;
    c.outer_lr = outer_lr;
    c.outer_steps = 25;
    mfl_learner_t *l = mfl_learner_new(&c, 64, err, sizeof(err));
    if (!l)
        fail_msg("learner: %s", err);
    size_t ns = mfl_learner_n_state(l);
    float *theta = malloc(ns * sizeof(float)), *delta = malloc(ns * sizeof(float));
    mfl_learner_init_state(l, theta, 1);
    double before = s_eval(l, theta, test, 40);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 5, 0);
    double first_loss = NAN, last_loss = NAN;
    for (int r = 0; r < rounds; r++) {
        mfl_train_metrics_t m;
        if (mfl_learner_meta_train(l, theta, train, &rng, delta, &m, err, sizeof(err)))
            fail_msg("meta_train: %s", err);
        assert_int_equal(m.n_tasks, (size_t)(c.outer_steps * c.meta_batch));
        if (r == 0)
            first_loss = m.loss_before;
        last_loss = m.loss_after;
        for (size_t i = 0; i < ns; i++)
            theta[i] += delta[i];
    }
    double after = s_eval(l, theta, test, 40);
    print_message("%-9s accuracy on held-out classes %.3f -> %.3f (meta-loss %.3f -> %.3f)\n",
                  mfl_algo_name(algo), before, after, first_loss, last_loss);
    assert_true(after > 0.5); /* chance is 0.2 */
    assert_true(after > before + 0.05);
    assert_true(last_loss < first_loss);
    free(theta);
    free(delta);
    mfl_learner_destroy(&l);
    mfl_sampler_destroy(&train);
    mfl_sampler_destroy(&test);
    mfl_dataset_destroy(&d);
}

static void test_reptile_learns(void **s) { (void)s; s_learns(MFL_ALGO_REPTILE, 20, 0.1f, 0.5f); }
static void test_fomaml_learns(void **s) { (void)s; s_learns(MFL_ALGO_FOMAML, 20, 0.1f, 0.005f); }
static void test_maml_learns(void **s) { (void)s; s_learns(MFL_ALGO_MAML, 20, 0.1f, 0.005f); }
static void test_meta_sgd_learns(void **s) { (void)s; s_learns(MFL_ALGO_META_SGD, 20, 0.1f, 0.005f); }
static void test_protonet_learns(void **s) { (void)s; s_learns(MFL_ALGO_PROTONET, 20, 0, 0.005f); }
static void test_matching_learns(void **s) { (void)s; s_learns(MFL_ALGO_MATCHING, 20, 0, 0.005f); }
static void test_relation_learns(void **s) { (void)s; s_learns(MFL_ALGO_RELATION, 20, 0, 0.005f); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reptile_learns),  cmocka_unit_test(test_fomaml_learns),
        cmocka_unit_test(test_maml_learns),     cmocka_unit_test(test_meta_sgd_learns),
        cmocka_unit_test(test_protonet_learns), cmocka_unit_test(test_matching_learns),
        cmocka_unit_test(test_relation_learns),
    };
    return cmocka_run_group_tests_name("meta_algos", tests, NULL, NULL);
}
