/* The metric heads' hand-written backward passes (ProtoNets' distances,
 * Matching nets' cosine attention, Relation nets' relation module and
 * class means) against central finite differences of the episode loss,
 * which mfl_learner_evaluate computes independently (forward only). Linear
 * embeddings keep the loss smooth, so no coordinate is skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meta/learner.h"

static mfl_dataset_t *s_data(void)
{
    mfl_dataset_t *d = mfl_dataset_new(60, 4);
    assert_non_null(d);
    d->n_classes = 6;
    mfl_rng_t r;
    mfl_rng_seed(&r, 8, 0);
    for (size_t i = 0; i < 60; i++) {
        d->y[i] = (float)(i % 6);
        for (size_t f = 0; f < 4; f++)
            d->x[i * 4 + f] = mfl_rng_normal(&r) + (f == i % 4 ? 1.0f : 0.0f);
    }
    return d;
}

static void s_check(mfl_algo_kind_t algo, const char *relation)
{
    mfl_dataset_t *d = s_data();
    size_t cls[] = {0, 1, 2, 3, 4, 5};
    char err[256];
    mfl_sampler_t *s = mfl_sampler_new_episodes(d, cls, 6, 3, 2, 3, err, sizeof(err));
    assert_non_null(s);
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, algo);
    strcpy(c.model_spec, "linear:4-3");
    if (relation)
        strcpy(c.relation_spec, relation);
    c.meta_batch = 1;
    c.outer_steps = 1;
    c.outer_lr = 1.0f;
    c.outer_optim = MFL_OPTIM_SGD;
    mfl_learner_t *l = mfl_learner_new(&c, 32, err, sizeof(err));
    if (!l)
        fail_msg("learner: %s", err);
    size_t ns = mfl_learner_n_state(l);
    float *theta = malloc(ns * sizeof(float)), *delta = malloc(ns * sizeof(float));
    float *t = malloc(ns * sizeof(float));
    mfl_learner_init_state(l, theta, 2);
    mfl_rng_t rng, copy;
    mfl_rng_seed(&rng, 4, 0);
    copy = rng;
    mfl_train_metrics_t m;
    assert_int_equal(mfl_learner_meta_train(l, theta, s, &rng, delta, &m, err, sizeof(err)), 0);
    mfl_task_t task = {0};
    assert_int_equal(mfl_sampler_next(s, &copy, &task), 0);
    mfl_eval_metrics_t e;
    assert_int_equal(mfl_learner_evaluate(l, theta, task.support, task.query, 0, 0, NULL, &e,
                                          err, sizeof(err)), 0);
    assert_float_equal(e.loss, m.loss_before, 1e-5);
    double num = 0, den = 0;
    const float eps = 1e-2f;
    for (size_t i = 0; i < ns; i++) {
        memcpy(t, theta, ns * sizeof(float));
        t[i] = theta[i] + eps;
        mfl_learner_evaluate(l, t, task.support, task.query, 0, 0, NULL, &e, err, sizeof(err));
        double up = e.loss;
        t[i] = theta[i] - eps;
        mfl_learner_evaluate(l, t, task.support, task.query, 0, 0, NULL, &e, err, sizeof(err));
        double fd = (up - e.loss) / (2.0 * eps);
        double g = -delta[i];
        num += (fd - g) * (fd - g);
        den += fd * fd;
    }
    double rel = sqrt(num / den);
    print_message("%s: |fd| %.4g, relative error %.3g over %zu parameters\n",
                  mfl_algo_name(algo), sqrt(den), rel, ns);
    assert_true(sqrt(den) > 1e-3);
    assert_true(rel < 0.01);
    mfl_task_clear(&task);
    free(theta);
    free(delta);
    free(t);
    mfl_learner_destroy(&l);
    mfl_sampler_destroy(&s);
    mfl_dataset_destroy(&d);
}

static void test_protonet_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_PROTONET, NULL);
}

static void test_matching_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_MATCHING, NULL);
}

static void test_relation_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_RELATION, "linear:6-1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protonet_gradient),
        cmocka_unit_test(test_matching_gradient),
        cmocka_unit_test(test_relation_gradient),
    };
    return cmocka_run_group_tests_name("meta_metric_grad", tests, NULL, NULL);
}
