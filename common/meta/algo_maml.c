/* MAML (Finn et al. 2017) and its first-order approximation FOMAML.
 *
 * Inner loop: θ_{k+1} = θ_k − α ∇L_s(θ_k), k = 0..K−1, on the support set.
 * The meta-gradient of the query loss L_q(θ_K) with respect to θ_0:
 *   FOMAML: ∇L_q(θ_K) (treats dθ_K/dθ_0 as the identity);
 *   MAML:   g ← ∇L_q(θ_K); for k = K−1 down to 0: g ← g − α H_s(θ_k) g,
 * exact back-propagation through the inner steps, with one Hessian-vector
 * product per step at the stored θ_k (the tape). */
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"

static int s_adapt_and_query(mfl_learner_t *self, const float *state, const mfl_task_t *task,
                             float *tape, double *loss, char *err, size_t errlen)
{
    const mfl_learner_config_t *c = &self->config;
    if (mfl_meta_inner_sgd(self, state, task->support, c->inner_steps, c->inner_lr, NULL,
                           self->fast, tape))
        return mfl_errf(err, errlen, "%s: inner loop diverged; lower inner_lr",
                        self->ops->name), -1;
    *loss = mfl_meta_loss_grad(self, self->fast, task->query->x, task->query->y,
                               task->query->n, self->g);
    return 0;
}

static int s_fomaml_task_grad(mfl_learner_t *self, const float *state, const mfl_task_t *task,
                              float *grad, double *loss, char *err, size_t errlen)
{
    if (s_adapt_and_query(self, state, task, NULL, loss, err, errlen))
        return -1;
    for (size_t p = 0; p < self->n_params; p++)
        grad[p] += self->g[p];
    return 0;
}

static int s_maml_task_grad(mfl_learner_t *self, const float *state, const mfl_task_t *task,
                            float *grad, double *loss, char *err, size_t errlen)
{
    size_t np = self->n_params;
    if (s_adapt_and_query(self, state, task, self->tape, loss, err, errlen))
        return -1;
    /* self->g is overwritten by inner_sgd only; from here it is ours. Copy
     * the query gradient out before the HVP calls reuse the model. */
    float *g = self->g2;
    memcpy(g, self->g, np * sizeof(float));
    float alpha = self->config.inner_lr;
    const mfl_dataset_t *s = task->support;
    for (int k = self->config.inner_steps - 1; k >= 0; k--) {
        if (mfl_meta_hvp(self, self->tape + (size_t)k * np, s->x, s->y, s->n, g, self->hv))
            return mfl_errf(err, errlen, "maml: Hessian-vector product refused"), -1;
        for (size_t p = 0; p < np; p++)
            g[p] -= alpha * self->hv[p];
    }
    for (size_t p = 0; p < np; p++)
        grad[p] += g[p];
    return 0;
}

const mfl_algo_ops_t mfl_algo_fomaml = {
    .name = "fomaml",
    .task_grad = s_fomaml_task_grad,
    .evaluate = mfl_meta_evaluate_gradient,
};

const mfl_algo_ops_t mfl_algo_maml = {
    .name = "maml",
    .task_grad = s_maml_task_grad,
    .evaluate = mfl_meta_evaluate_gradient,
};
