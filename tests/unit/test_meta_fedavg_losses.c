/* FedAvg's reported losses come from the training pass itself
 * (docs/ENGINE-META.md, "FedAvg"): an epoch's loss is the row-weighted mean
 * of its mini-batch losses, each at the parameters before that batch's
 * step; loss_before is the first epoch's, loss_after the last epoch's.
 * These tests replay the local update independently (same permutation
 * draws, same fused steps on a second model) and hold both numbers and Δ
 * to the replay, bit for bit, for one-step, several-step, mini-batch and
 * chunked full-batch epochs. */
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

#define SPEC "mlp:5-16-1"

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

/* The mean BCE loss at theta over all of d, one forward pass. */
static double s_full_loss(const float *theta, const mfl_dataset_t *d)
{
    char err[256];
    mfl_model_t *m = mfl_model_new(SPEC, d->n, err, sizeof err);
    assert_non_null(m);
    mfl_loss_t loss = {MFL_LOSS_BCE, 1.0f};
    double l = mfl_model_loss_grad(m, theta, &loss, d->x, d->y, d->n, NULL);
    mfl_model_destroy(&m);
    return l;
}

/* Replays `epochs` epochs of mini-batch SGD (bs rows, 0 = full batch, only
 * for rows ≤ the replay model's batch) from theta into local, drawing the
 * permutations from a generator seeded like the learner's. Stores each
 * epoch's row-weighted mean of pre-step batch losses in ep_loss[e]. */
static void s_replay(const float *theta, size_t np, const mfl_dataset_t *d, size_t bs,
                     int epochs, float *local, double *ep_loss)
{
    char err[256];
    size_t n = d->n, nf = d->n_features;
    if (bs == 0 || bs > n)
        bs = n;
    mfl_model_t *m = mfl_model_new(SPEC, bs, err, sizeof err);
    assert_non_null(m);
    mfl_loss_t loss = {MFL_LOSS_BCE, 1.0f};
    memcpy(local, theta, np * sizeof(float));
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 0);
    size_t *perm = malloc(n * sizeof(size_t));
    float *xb = malloc(bs * nf * sizeof(float)), *yb = malloc(bs * sizeof(float));
    assert_true(perm && xb && yb);
    for (int e = 0; e < epochs; e++) {
        if (bs == n) { /* full batch: one step, no permutation drawn */
            ep_loss[e] = mfl_model_sgd_step(m, local, &loss, d->x, d->y, n, 0.1f);
            continue;
        }
        for (size_t i = 0; i < n; i++)
            perm[i] = i;
        mfl_rng_shuffle(&rng, perm, n);
        double sum = 0;
        for (size_t i = 0; i < n; i += bs) {
            size_t b = n - i < bs ? n - i : bs;
            for (size_t j = 0; j < b; j++) {
                memcpy(xb + j * nf, d->x + perm[i + j] * nf, nf * sizeof(float));
                yb[j] = d->y[perm[i + j]];
            }
            sum += (double)mfl_model_sgd_step(m, local, &loss, xb, yb, b, 0.1f) * (double)b;
        }
        ep_loss[e] = sum / (double)n;
    }
    free(perm);
    free(xb);
    free(yb);
    mfl_model_destroy(&m);
}

typedef struct {
    mfl_train_metrics_t m;
    float *theta, *delta;
    size_t ns;
} s_run_t;

/* Runs one FedAvg local update (rate 0.1, generator seeded 1) into r. */
static void s_run(const mfl_dataset_t *d, size_t max_batch, size_t batch_size, int epochs,
                  s_run_t *r)
{
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, MFL_ALGO_FEDAVG);
    strcpy(c.model_spec, SPEC);
    c.loss = MFL_LOSS_BCE;
    c.pos_weight = 1.0f;
    c.local_epochs = epochs;
    c.batch_size = batch_size;
    c.inner_lr = 0.1f;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, max_batch, err, sizeof(err));
    assert_non_null(l);
    r->ns = mfl_learner_n_state(l);
    r->theta = malloc(r->ns * sizeof(float));
    r->delta = malloc(r->ns * sizeof(float));
    assert_true(r->theta && r->delta);
    mfl_learner_init_state(l, r->theta, 3);
    mfl_sampler_t *s = mfl_sampler_new_site(d, 0, 0, NULL, 0);
    mfl_rng_t rng;
    mfl_rng_seed(&rng, 1, 0);
    assert_int_equal(mfl_learner_meta_train(l, r->theta, s, &rng, r->delta, &r->m, err,
                                            sizeof(err)),
                     0);
    assert_int_equal(r->m.n_samples, d->n);
    mfl_sampler_destroy(&s);
    mfl_learner_destroy(&l);
}

static void s_free(s_run_t *r)
{
    free(r->theta);
    free(r->delta);
}

/* Holds a run to the replay: both losses and Δ bit for bit. */
static void s_check_replay(size_t rows, size_t batch_size, int epochs)
{
    mfl_dataset_t *d = s_table(rows, 7);
    s_run_t r;
    s_run(d, 64, batch_size, epochs, &r);
    double ep[8];
    assert_true(epochs <= 8);
    float *local = malloc(r.ns * sizeof(float));
    assert_non_null(local);
    s_replay(r.theta, r.ns, d, batch_size, epochs, local, ep);
    assert_memory_equal(&r.m.loss_before, &ep[0], sizeof(double));
    assert_memory_equal(&r.m.loss_after, &ep[epochs - 1], sizeof(double));
    for (size_t i = 0; i < r.ns; i++) {
        float want = local[i] - r.theta[i];
        assert_memory_equal(&r.delta[i], &want, sizeof(float));
    }
    free(local);
    s_free(&r);
    mfl_dataset_destroy(&d);
}

static void test_full_batch_one_epoch_reports_the_loss_at_theta_twice(void **state)
{
    (void)state;
    mfl_dataset_t *d = s_table(60, 7);
    s_run_t r;
    s_run(d, 64, 0, 1, &r);
    /* One step over all rows: its loss is the full-data loss at θ, and the
     * only epoch is both the first and the last. */
    double at_theta = s_full_loss(r.theta, d);
    assert_memory_equal(&r.m.loss_before, &at_theta, sizeof(double));
    assert_memory_equal(&r.m.loss_after, &r.m.loss_before, sizeof(double));
    s_free(&r);
    mfl_dataset_destroy(&d);
    s_check_replay(60, 0, 1);
}

static void test_full_batch_epochs_report_first_and_last_step(void **state)
{
    (void)state;
    /* Three full-batch epochs: loss_before at θ, loss_after at the θ of the
     * third step (after two steps), not at θ_local. */
    s_check_replay(60, 60, 3);
    mfl_dataset_t *d = s_table(60, 7);
    s_run_t r;
    s_run(d, 64, 0, 3, &r);
    assert_true(r.m.loss_after < r.m.loss_before);
    s_free(&r);
    mfl_dataset_destroy(&d);
}

static void test_mini_batch_losses_are_running_means_of_the_epoch(void **state)
{
    (void)state;
    s_check_replay(60, 16, 1); /* 16+16+16+12 rows: the last batch weighs 12/60 */
    s_check_replay(60, 16, 4);
    mfl_dataset_t *d = s_table(60, 7);
    s_run_t r;
    s_run(d, 64, 16, 4, &r);
    /* Not the full-data loss at θ any more: the running mean includes
     * batches seen after some steps. */
    double at_theta = s_full_loss(r.theta, d);
    assert_true(r.m.loss_before != at_theta);
    assert_true(r.m.loss_after < r.m.loss_before);
    s_free(&r);
    mfl_dataset_destroy(&d);
}

static void test_chunked_full_batch_reports_the_full_data_loss(void **state)
{
    (void)state;
    /* 100 rows over a 32-row max_batch: one full-batch step from chunked
     * gradients, whose loss is the chunk means averaged in double. */
    mfl_dataset_t *d = s_table(100, 7);
    s_run_t r;
    s_run(d, 32, 0, 1, &r);
    assert_float_equal(r.m.loss_before, s_full_loss(r.theta, d), 1e-6);
    assert_memory_equal(&r.m.loss_after, &r.m.loss_before, sizeof(double));
    s_free(&r);
    mfl_dataset_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_batch_one_epoch_reports_the_loss_at_theta_twice),
        cmocka_unit_test(test_full_batch_epochs_report_first_and_last_step),
        cmocka_unit_test(test_mini_batch_losses_are_running_means_of_the_epoch),
        cmocka_unit_test(test_chunked_full_batch_reports_the_full_data_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
