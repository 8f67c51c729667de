/* The metric heads' hand-written backward passes (ProtoNets' distances,
 * Matching nets' cosine attention, Relation nets' relation module and
 * class means) against central finite differences of the episode loss,
 * which mfl_learner_evaluate computes independently (forward only). Linear
 * embeddings keep the loss smooth, so no coordinate is skipped. The conv
 * relation module's ReLUs are lifted away from 0 (s_lift_relus) and at
 * most 2 of its 414 coordinates may still sit on a kink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "episode_fd.h"
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

/* Moves the relation module's ReLU inputs away from 0 (norm shifts 3,
 * first dense bias 5), so the ReLUs after its per-sample norms rarely
 * switch inside ±eps: with ~1500 of them per episode, a random init puts
 * one near almost every coordinate's difference quotient. */
static void s_lift_relus(const mfl_learner_t *l, float *theta)
{
    for (size_t i = 0; i < mfl_learner_n_tensors(l); i++) {
        const mfl_tensor_info_t *t = mfl_learner_tensor(l, i);
        float v = strstr(t->name, "relation.") != t->name ? 0.0f
                  : strstr(t->name, ".norm.shift")        ? 3.0f
                  : strcmp(t->name, "relation.fc1.bias") == 0 ? 5.0f
                                                           : 0.0f;
        if (v != 0.0f)
            for (size_t j = 0; j < t->count; j++)
                theta[t->offset + j] = v;
    }
}

/* kinks: how many coordinates may disagree (a ReLU switching inside ±eps
 * makes the central difference average two slopes); the rest must agree
 * to 1% together. */
static void s_check(mfl_algo_kind_t algo, const char *embed, const char *relation,
                    mfl_loss_kind_t loss, float eps, size_t kinks)
{
    mfl_dataset_t *d = s_data();
    size_t cls[] = {0, 1, 2, 3, 4, 5};
    char err[256];
    mfl_sampler_t *s = mfl_sampler_new_episodes(d, cls, 6, 3, 2, 3, err, sizeof(err));
    assert_non_null(s);
    mfl_learner_config_t c;
    episode_fd_config(&c, algo, embed, relation, loss);
    int lift = relation && strncmp(relation, "relconv:", 8) == 0;
    episode_fd_t fx;
    episode_fd_begin(&fx, &c, 32, s, 2, 4, lift ? s_lift_relus : NULL);
    double num = 0, den = 0;
    size_t n_kink = 0;
    for (size_t i = 0; i < fx.n_state; i++) {
        double fd = episode_fd_at(&fx, i, eps), g = episode_fd_grad(&fx, i);
        if (kinks > 0 && fabs(fd - g) > 0.1 * fmax(fabs(fd), fabs(g)) + 1e-3) {
            n_kink++;
            continue;
        }
        num += (fd - g) * (fd - g);
        den += fd * fd;
    }
    double rel = sqrt(num / den);
    print_message("%s: |fd| %.4g, relative error %.3g over %zu parameters (%zu at kinks)\n",
                  mfl_algo_name(algo), sqrt(den), rel, fx.n_state, n_kink);
    assert_true(n_kink <= kinks);
    assert_true(sqrt(den) > 1e-3);
    assert_true(rel < 0.01);
    episode_fd_end(&fx);
    mfl_sampler_destroy(&s);
    mfl_dataset_destroy(&d);
}

static void test_protonet_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_PROTONET, "linear:4-3", NULL, MFL_LOSS_SOFTMAX_CE, 1e-2f, 0);
}

static void test_matching_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_MATCHING, "linear:4-3", NULL, MFL_LOSS_SOFTMAX_CE, 1e-2f, 0);
}

static void test_relation_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_RELATION, "linear:4-3", "linear:6-1", MFL_LOSS_SOFTMAX_CE, 1e-3f, 0);
}

/* The paper's conv module: conv blocks over the sum and the absolute
 * difference of the query's and the class's 2x3x3 maps stacked on channels
 * (4x3x3), then dense to 1; its sigmoid + squared
 * error objective, and the same module under softmax cross-entropy. */
static void test_relation_conv_mse_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_RELATION, "linear:4-18", "relconv:4x3x3:3:4", MFL_LOSS_MSE, 1e-3f, 2);
}

static void test_relation_conv_ce_gradient(void **state)
{
    (void)state;
    s_check(MFL_ALGO_RELATION, "linear:4-18", "relconv:4x3x3:3:4", MFL_LOSS_SOFTMAX_CE, 1e-3f, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protonet_gradient),
        cmocka_unit_test(test_matching_gradient),
        cmocka_unit_test(test_relation_gradient),
        cmocka_unit_test(test_relation_conv_mse_gradient),
        cmocka_unit_test(test_relation_conv_ce_gradient),
    };
    return cmocka_run_group_tests_name("meta_metric_grad", tests, NULL, NULL);
}
