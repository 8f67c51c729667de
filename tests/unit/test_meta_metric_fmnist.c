/* Relation nets' gradient on a real Fashion-MNIST episode, with the
 * benchmark's own networks (the 4-block CNN embedding and the conv relation
 * module, sigmoid + squared error), against central finite differences of
 * the episode loss that mfl_learner_evaluate computes forward only.
 * test_meta_metric_grad checks the same code on tiny linear embeddings with
 * the ReLUs lifted away from their kinks; this one checks it where the
 * benchmark runs it: real images, a random init, per-sample norms over
 * real feature maps, the (e_q + c_j, |e_q - c_j|) pairing. A few
 * coordinates per tensor, so every layer of both networks is covered in a
 * second or two. Skipped, with a message, without dataset-fashion-mnist. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/idx.h"
#include "meta/learner.h"

#define PER_TENSOR 4 /* coordinates checked per parameter tensor */

static void test_relation_conv_gradient_on_fmnist_episode(void **state)
{
    (void)state;
    const char *ip = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *lp = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    struct stat st;
    if (stat(ip, &st) != 0) {
        printf("SKIP: %s not found (apt-get install dataset-fashion-mnist)\n", ip);
        skip();
    }
    char err[256] = "";
    mfl_dataset_t *d = mfl_idx_load(ip, lp, 2000, err, sizeof err);
    if (!d)
        fail_msg("%s", err);
    size_t cls[] = {1, 3, 4, 6, 9}; /* the benchmark's held-out classes */
    mfl_sampler_t *s = mfl_sampler_new_episodes(d, cls, 5, 5, 5, 5, err, sizeof(err));
    if (!s)
        fail_msg("sampler: %s", err);
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_RELATION);
    strcpy(c.model_spec, "cnn4:1x28x28:16:0:p3");
    strcpy(c.relation_spec, "relconv:32x3x3:16:8");
    c.loss = MFL_LOSS_MSE;
    c.meta_batch = 1;
    c.outer_steps = 1;
    c.outer_lr = 1.0f;
    c.outer_optim = MFL_OPTIM_SGD; /* so delta = -gradient */
    mfl_learner_t *l = mfl_learner_new(&c, 256, err, sizeof(err));
    if (!l)
        fail_msg("learner: %s", err);
    size_t ns = mfl_learner_n_state(l);
    float *theta = malloc(ns * sizeof(float)), *delta = malloc(ns * sizeof(float));
    float *t = malloc(ns * sizeof(float));
    assert_non_null(theta);
    assert_non_null(delta);
    assert_non_null(t);
    mfl_learner_init_state(l, theta, 3);
    mfl_rng_t rng, copy;
    mfl_rng_seed(&rng, 5, 0);
    copy = rng;
    mfl_train_metrics_t m;
    assert_int_equal(mfl_learner_meta_train(l, theta, s, &rng, delta, &m, err, sizeof(err)), 0);
    mfl_task_t task = {0};
    assert_int_equal(mfl_sampler_next(s, &copy, &task), 0);
    mfl_eval_metrics_t e;
    assert_int_equal(mfl_learner_evaluate(l, theta, task.support, task.query, 0, 0, NULL, &e,
                                          err, sizeof(err)), 0);
    assert_float_equal(e.loss, m.loss_before, 1e-5);
    /* A ReLU or |.| switching inside ±eps makes the central difference
     * average two slopes; such coordinates (clear disagreement) are
     * counted and may be a few; the rest must agree to 2% together. */
    const float eps = 1e-3f;
    double num = 0, den = 0;
    size_t n_checked = 0, n_kink = 0, n_rel = 0;
    for (size_t ti = 0; ti < mfl_learner_n_tensors(l); ti++) {
        const mfl_tensor_info_t *ten = mfl_learner_tensor(l, ti);
        int is_rel = strncmp(ten->name, "relation.", 9) == 0;
        for (size_t k = 0; k < PER_TENSOR && k < ten->count; k++) {
            size_t i = ten->offset + (k * 7919u + ti) % ten->count;
            memcpy(t, theta, ns * sizeof(float));
            t[i] = theta[i] + eps;
            assert_int_equal(mfl_learner_evaluate(l, t, task.support, task.query, 0, 0, NULL,
                                                  &e, err, sizeof(err)), 0);
            double up = e.loss;
            t[i] = theta[i] - eps;
            assert_int_equal(mfl_learner_evaluate(l, t, task.support, task.query, 0, 0, NULL,
                                                  &e, err, sizeof(err)), 0);
            double fd = (up - e.loss) / (2.0 * eps), g = -delta[i];
            n_checked++;
            n_rel += (size_t)is_rel;
            if (fabs(fd - g) > 0.2 * fmax(fabs(fd), fabs(g)) + 2e-3) {
                print_message("  %s[%zu]: fd %.5g, backward %.5g\n", ten->name,
                              i - ten->offset, fd, g);
                n_kink++;
                continue;
            }
            num += (fd - g) * (fd - g);
            den += fd * fd;
        }
    }
    double rel = sqrt(num / den);
    print_message("relation on a real episode: |fd| %.4g, relative error %.3g over %zu "
                  "coordinates (%zu in the relation module, %zu at kinks)\n",
                  sqrt(den), rel, n_checked, n_rel, n_kink);
    assert_true(n_rel > 0 && n_rel < n_checked); /* both networks covered */
    assert_true(n_kink * 20 <= n_checked);       /* at most 5% */
    assert_true(sqrt(den) > 1e-3);
    assert_true(rel < 0.02);
    mfl_task_clear(&task);
    free(theta);
    free(delta);
    free(t);
    mfl_learner_destroy(&l);
    mfl_sampler_destroy(&s);
    mfl_dataset_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relation_conv_gradient_on_fmnist_episode),
    };
    return cmocka_run_group_tests_name("meta_metric_fmnist", tests, NULL, NULL);
}
