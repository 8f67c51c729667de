/* FedAvg's reported losses keep their meaning whichever way they are
 * computed: loss_before is the mean loss over all of the site's rows at θ,
 * loss_after the same at θ + Δ. With a one-step first epoch (full batch,
 * rows ≤ max_batch) loss_before is taken from the training step's own
 * forward pass instead of a separate one; these tests hold both numbers to
 * an independent forward pass, bit for bit, for one-step, several-step and
 * mini-batch epochs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "meta/learner.h"
#include "nn/model.h"

/* A binary table of n rows, 5 features. */
static mfl_dataset_t *s_table(size_t n, uint64_t seed)
{
    mfl_dataset_t *d = mfl_dataset_new(n, 5);
    assert_non_null(d);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (size_t f = 0; f < 5; f++) {
            float v = mfl_rng_normal(&r);
            d->x[i * 5 + f] = v;
            s += (f == 0 ? 1.5f : -0.5f) * v;
        }
        d->y[i] = s > 0 ? 1.0f : 0.0f;
    }
    return d;
}

/* The mean BCE loss of `spec` at theta over all of d, one forward pass. */
static double s_reference_loss(const char *spec, const float *theta, const mfl_dataset_t *d)
{
    char err[256];
    mfl_model_t *m = mfl_model_new(spec, d->n, err, sizeof err);
    assert_non_null(m);
    mfl_loss_t loss = {MFL_LOSS_BCE, 1.0f};
    double l = mfl_model_loss_grad(m, theta, &loss, d->x, d->y, d->n, NULL);
    mfl_model_destroy(&m);
    return l;
}

/* Runs one FedAvg local update and checks both losses against the
 * reference passes. */
static void s_check(size_t rows, size_t max_batch, size_t batch_size, int epochs)
{
    const char *spec = "mlp:5-16-1";
    mfl_dataset_t *d = s_table(rows, 7);
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_FEDAVG);
    strcpy(c.model_spec, spec);
    c.loss = MFL_LOSS_BCE;
    c.local_epochs = epochs;
    c.batch_size = batch_size;
    c.inner_lr = 0.1f;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, max_batch, err, sizeof(err));
    assert_non_null(l);
    size_t ns = mfl_learner_n_state(l);
    float *theta = malloc(ns * sizeof(float)), *delta = malloc(ns * sizeof(float));
    float *after = malloc(ns * sizeof(float));
    assert_true(theta && delta && after);
    mfl_learner_init_state(l, theta, 3);
    mfl_sampler_t *s = mfl_sampler_new_site(d, 0, 0, NULL, 0);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 0);
    mfl_train_metrics_t m;
    assert_int_equal(mfl_learner_meta_train(l, theta, s, &rng, delta, &m, err, sizeof(err)), 0);
    for (size_t i = 0; i < ns; i++)
        after[i] = theta[i] + delta[i];
    double before_ref = s_reference_loss(spec, theta, d);
    if (rows <= max_batch) /* one pass either way: the same bits */
        assert_memory_equal(&m.loss_before, &before_ref, sizeof before_ref);
    else /* the learner averages chunk means in double */
        assert_float_equal(m.loss_before, before_ref, 1e-6);
    /* θ + Δ rounds θ_local again, so loss_after is checked to float
     * precision; loss_before above is exact. */
    assert_float_equal(m.loss_after, s_reference_loss(spec, after, d), 1e-5);
    assert_int_equal(m.n_samples, rows);
    assert_true(m.loss_after < m.loss_before);
    mfl_sampler_destroy(&s);
    mfl_learner_destroy(&l);
    mfl_dataset_destroy(&d);
    free(theta);
    free(delta);
    free(after);
}

static void test_one_step_epoch_loss_before_is_the_full_pass(void **state)
{
    (void)state;
    s_check(60, 64, 0, 1);  /* full batch, one epoch: loss_before from the step */
    s_check(60, 64, 60, 3); /* batch = rows, three epochs */
}

static void test_other_epochs_keep_their_own_pass(void **state)
{
    (void)state;
    s_check(60, 64, 16, 2);  /* mini-batches */
    s_check(100, 32, 0, 1);  /* full batch over more rows than max_batch: chunked */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_step_epoch_loss_before_is_the_full_pass),
        cmocka_unit_test(test_other_epochs_keep_their_own_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
