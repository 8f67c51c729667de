/* Finite differences of one metric-learning episode's loss, for the
 * gradient checks of the metric heads (ProtoNets, Matching, Relation).
 *
 * The learner is configured so that one meta-training step on a batch of
 * one episode (outer SGD at rate 1) returns delta = −∇loss at θ; the same
 * episode is drawn again from a copy of the random stream, and
 * mfl_learner_evaluate (forward only, an independent code path) gives the
 * loss at θ ± eps. Header-only (static functions) because each unit test
 * is one .c file. */
#ifndef MFL_TEST_EPISODE_FD_H
#define MFL_TEST_EPISODE_FD_H

#include <stdlib.h>
#include <string.h>

#include "meta/learner.h"

typedef struct {
    mfl_learner_t *learner; /* owned */
    mfl_task_t task;        /* the episode the step trained on */
    float *theta, *delta, *scratch;
    size_t n_state;
} episode_fd_t;

/* A learner config for the check: `algo` over `embed` (and `relation`
 * when not NULL), one episode per outer step, outer SGD at rate 1. */
static void episode_fd_config(mfl_learner_config_t *c, mfl_algo_kind_t algo, const char *embed,
                              const char *relation, mfl_loss_kind_t loss)
{
    mfl_learner_config_defaults(c, algo);
    strcpy(c->model_spec, embed);
    if (relation)
        strcpy(c->relation_spec, relation);
    c->loss = loss;
    c->meta_batch = 1;
    c->outer_steps = 1;
    c->outer_lr = 1.0f;
    c->outer_optim = MFL_OPTIM_SGD; /* so delta = -gradient */
}

/* Builds the learner from `c` (max batch `max_batch`), initialises θ from
 * `init_seed`, lets `adjust` (may be NULL) move θ, then takes the step on
 * one episode of `s` drawn with stream `rng_seed` and checks that the
 * forward-only loss of that episode equals the step's loss_before. */
static void episode_fd_begin(episode_fd_t *fx, const mfl_learner_config_t *c, size_t max_batch,
                             mfl_sampler_t *s, uint64_t init_seed, uint64_t rng_seed,
                             void (*adjust)(const mfl_learner_t *, float *))
{
    char err[256] = "";
    memset(fx, 0, sizeof *fx);
    fx->learner = mfl_learner_new(c, max_batch, err, sizeof err);
    if (!fx->learner)
        fail_msg("learner: %s", err);
    fx->n_state = mfl_learner_n_state(fx->learner);
    fx->theta = malloc(fx->n_state * sizeof(float));
    fx->delta = malloc(fx->n_state * sizeof(float));
    fx->scratch = malloc(fx->n_state * sizeof(float));
    assert_non_null(fx->theta);
    assert_non_null(fx->delta);
    assert_non_null(fx->scratch);
    mfl_learner_init_state(fx->learner, fx->theta, init_seed);
    if (adjust)
        adjust(fx->learner, fx->theta);
    mfl_rng_t rng, copy;
    mfl_rng_seed(&rng, rng_seed, 0);
    copy = rng;
    mfl_train_metrics_t m;
    assert_int_equal(mfl_learner_meta_train(fx->learner, fx->theta, s, &rng, fx->delta, &m, err,
                                            sizeof err), 0);
    assert_int_equal(mfl_sampler_next(s, &copy, &fx->task), 0);
    mfl_eval_metrics_t e;
    assert_int_equal(mfl_learner_evaluate(fx->learner, fx->theta, fx->task.support,
                                          fx->task.query, 0, 0, NULL, &e, err, sizeof err), 0);
    assert_float_equal(e.loss, m.loss_before, 1e-5);
}

/* The central difference of the episode loss along coordinate i. */
static double episode_fd_at(episode_fd_t *fx, size_t i, float eps)
{
    char err[256] = "";
    mfl_eval_metrics_t e;
    memcpy(fx->scratch, fx->theta, fx->n_state * sizeof(float));
    fx->scratch[i] = fx->theta[i] + eps;
    assert_int_equal(mfl_learner_evaluate(fx->learner, fx->scratch, fx->task.support,
                                          fx->task.query, 0, 0, NULL, &e, err, sizeof err), 0);
    double up = e.loss;
    fx->scratch[i] = fx->theta[i] - eps;
    assert_int_equal(mfl_learner_evaluate(fx->learner, fx->scratch, fx->task.support,
                                          fx->task.query, 0, 0, NULL, &e, err, sizeof err), 0);
    return (up - e.loss) / (2.0 * eps);
}

/* The analytic gradient along coordinate i (from the step's delta). */
static double episode_fd_grad(const episode_fd_t *fx, size_t i)
{
    return -fx->delta[i];
}

/* Frees everything episode_fd_begin made. */
static void episode_fd_end(episode_fd_t *fx)
{
    mfl_task_clear(&fx->task);
    free(fx->theta);
    free(fx->delta);
    free(fx->scratch);
    mfl_learner_destroy(&fx->learner);
}

#endif
