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
#include "episode_fd.h"
#include "fmnist_debian.h"
#include "meta/learner.h"

#define PER_TENSOR 4 /* coordinates checked per parameter tensor */

static void test_relation_conv_gradient_on_fmnist_episode(void **state)
{
    (void)state;
    mfl_dataset_t *d = fmnist_debian_load(2000);
    char err[256] = "";
    size_t cls[] = {1, 3, 4, 6, 9}; /* the benchmark's held-out classes */
    mfl_sampler_t *s = mfl_sampler_new_episodes(d, cls, 5, 5, 5, 5, err, sizeof(err));
    if (!s)
        fail_msg("sampler: %s", err);
    mfl_learner_config_t c;
    episode_fd_config(&c, MFL_ALGO_RELATION, "cnn4:1x28x28:16:0:p3", "relconv:32x3x3:16:8",
                      MFL_LOSS_MSE);
    episode_fd_t fx;
    episode_fd_begin(&fx, &c, 256, s, 3, 5, NULL);
    mfl_learner_t *l = fx.learner;
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
            double fd = episode_fd_at(&fx, i, eps), g = episode_fd_grad(&fx, i);
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
    episode_fd_end(&fx);
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
