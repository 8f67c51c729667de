/* Reptile (Nichol et al. 2018): K inner SGD steps on the task's support
 * set, then move θ toward the adapted weights. As a "gradient" for the
 * outer optimiser: θ − θ_K, so an SGD outer step of rate ε gives
 * θ ← θ + ε · mean(θ_K − θ) over the meta-batch. */
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"

static int s_task_grad(mfl_learner_t *self, const float *state, const mfl_task_t *task,
                       float *grad, double *loss, char *err, size_t errlen)
{
    const mfl_learner_config_t *c = &self->config;
    if (mfl_meta_inner_sgd(self, state, task->support, c->inner_steps, c->inner_lr, NULL,
                           self->fast, NULL))
        return mfl_errf(err, errlen, "reptile: inner loop diverged; lower inner_lr"), -1;
    *loss = mfl_meta_loss_grad(self, self->fast, task->query->x, task->query->y,
                               task->query->n, NULL);
    for (size_t p = 0; p < self->n_params; p++)
        grad[p] += state[p] - self->fast[p];
    return 0;
}

const mfl_algo_ops_t mfl_algo_reptile = {
    .name = "reptile",
    .task_grad = s_task_grad,
    .evaluate = mfl_meta_evaluate_gradient,
};
