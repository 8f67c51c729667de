/* Meta-SGD (Li et al. 2017): MAML with a learned per-parameter inner
 * learning rate α, stored after θ in the state ("meta_sgd.lr.<tensor>").
 *
 * Inner loop: θ_{k+1} = θ_k − α ⊙ ∇L_s(θ_k). Second order, exactly as the
 * paper: with g_{k+1} = ∂L_q/∂θ_{k+1} (g_K = ∇L_q(θ_K)),
 *   ∂L_q/∂α += −∇L_s(θ_k) ⊙ g_{k+1}
 *   g_k      = g_{k+1} − H_s(θ_k) (α ⊙ g_{k+1})
 * for k = K−1 down to 0; ∂L_q/∂θ_0 = g_0. One gradient and one
 * Hessian-vector product per inner step on the way back. */
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"

static int s_task_grad(mfl_learner_t *self, const float *state, const mfl_task_t *task,
                       float *grad, double *loss, char *err, size_t errlen)
{
    size_t np = self->n_params;
    const float *alpha = state + np;
    const mfl_dataset_t *s = task->support, *q = task->query;
    int steps = self->config.inner_steps;
    if (mfl_meta_inner_sgd(self, state, s, steps, 0.0f, alpha, self->fast, self->tape))
        return mfl_errf(err, errlen, "meta_sgd: inner loop diverged; lower inner_lr"), -1;
    *loss = mfl_meta_loss_grad(self, self->fast, q->x, q->y, q->n, self->g);
    float *g = self->g2, *v = self->fast;
    memcpy(g, self->g, np * sizeof(float));
    float *dalpha = grad + np;
    for (int k = steps - 1; k >= 0; k--) {
        const float *theta_k = self->tape + (size_t)k * np;
        if (!(mfl_meta_loss_grad(self, theta_k, s->x, s->y, s->n, self->g) >= 0))
            return mfl_errf(err, errlen, "meta_sgd: support gradient failed"), -1;
        for (size_t p = 0; p < np; p++) {
            dalpha[p] -= self->g[p] * g[p];
            v[p] = alpha[p] * g[p];
        }
        if (mfl_meta_hvp(self, theta_k, s->x, s->y, s->n, v, self->hv))
            return mfl_errf(err, errlen, "meta_sgd: Hessian-vector product refused"), -1;
        for (size_t p = 0; p < np; p++)
            g[p] -= self->hv[p];
    }
    for (size_t p = 0; p < np; p++)
        grad[p] += g[p];
    return 0;
}

const mfl_algo_ops_t mfl_algo_meta_sgd = {
    .name = "meta_sgd",
    .task_grad = s_task_grad,
    .evaluate = mfl_meta_evaluate_gradient,
};
