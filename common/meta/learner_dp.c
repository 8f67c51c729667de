/* Record-level DP local training; see learner_dp.h. */
#include "meta/learner_dp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"

uint64_t mfl_learner_dp_steps(const mfl_learner_config_t *c, double q, char *err, size_t errlen)
{
    if (!(q > 0.0 && q <= 1.0))
        return mfl_errf(err, errlen, "sample rate q must be in (0, 1], got %g", q), 0;
    uint64_t per_epoch = (uint64_t)ceil(1.0 / q - 1e-9);
    uint64_t tasks = (uint64_t)c->outer_steps * (uint64_t)c->meta_batch;
    switch (c->algo) {
    case MFL_ALGO_FEDAVG:
        return (uint64_t)c->local_epochs * per_epoch;
    case MFL_ALGO_REPTILE:
        return tasks * (uint64_t)c->inner_steps;
    case MFL_ALGO_FOMAML:
        return tasks * ((uint64_t)c->inner_steps + 1);
    case MFL_ALGO_MAML:
        return mfl_errf(err, errlen, "maml back-propagates through its inner steps (Hessian-"
                        "vector products): per-example clipping does not bound a record's "
                        "influence through that chain; use fomaml or reptile"), 0;
    case MFL_ALGO_META_SGD:
        return mfl_errf(err, errlen, "meta_sgd learns its inner rates through the inner loop "
                        "(second order): not covered by DP-SGD; use fomaml or reptile"), 0;
    case MFL_ALGO_PROTONET:
    case MFL_ALGO_MATCHING:
    case MFL_ALGO_RELATION:
        return mfl_errf(err, errlen, "%s: a query row's loss depends on every support row of "
                        "its episode, so gradients are not per-record terms and per-example "
                        "clipping does not bound a record; use fedavg, reptile or fomaml",
                        mfl_algo_name(c->algo)), 0;
    }
    return mfl_errf(err, errlen, "unknown algorithm"), 0;
}

typedef struct {
    mfl_dpsgd_t *dp;
    const mfl_dataset_t *data;
    const mfl_dpsgd_params_t *p;
    size_t *idx;
    float *xs, *ys, *g;
    size_t yw;
    uint64_t steps;
} s_dp_t;

/* One DP-SGD gradient at θ into s->g (a fresh Poisson sample). */
static int s_grad(mfl_learner_t *self, s_dp_t *s, const float *theta)
{
    const mfl_dataset_t *d = s->data;
    size_t nf = d->n_features;
    size_t k = mfl_dpsgd_poisson_sample(s->dp, d->n, s->p->sample_rate, s->idx);
    for (size_t j = 0; j < k; j++) {
        memcpy(s->xs + j * nf, d->x + s->idx[j] * nf, nf * sizeof(float));
        memcpy(s->ys + j * s->yw, d->y + s->idx[j] * s->yw, s->yw * sizeof(float));
    }
    s->steps++;
    return mfl_dpsgd_grad(s->dp, self->model, theta, &self->loss, s->xs, s->ys, k, d->n, s->p,
                          s->g, NULL);
}

/* `steps` DP-SGD steps of rate lr on θ in place. */
static int s_sgd(mfl_learner_t *self, s_dp_t *s, float *theta, uint64_t steps, float lr)
{
    for (uint64_t t = 0; t < steps; t++) {
        if (s_grad(self, s, theta))
            return -1;
        for (size_t p = 0; p < self->n_params; p++)
            theta[p] -= lr * s->g[p];
    }
    return 0;
}

int mfl_learner_meta_train_dp(mfl_learner_t *self, const float *theta, const mfl_dataset_t *data,
                              const mfl_dpsgd_params_t *p, float *delta,
                              mfl_train_metrics_t *metrics, uint64_t *steps, char *err,
                              size_t errlen)
{
    const mfl_learner_config_t *c = &self->config;
    char sub[300];
    uint64_t want = mfl_learner_dp_steps(c, p->sample_rate, sub, sizeof sub);
    if (!want)
        return mfl_errf(err, errlen, "record-level DP: %s", sub), -1;
    if (mfl_meta_check_data(self, data, "site data", err, errlen))
        return -1;
    size_t np = self->n_params, ns = self->n_state;
    s_dp_t s = {0};
    s.data = data;
    s.p = p;
    s.yw = self->loss.kind == MFL_LOSS_MSE ? mfl_model_n_outputs(self->model) : 1;
    s.dp = mfl_dpsgd_new(self->model);
    s.idx = malloc(data->n * sizeof(size_t));
    s.xs = malloc(data->n * data->n_features * sizeof(float));
    s.ys = malloc(data->n * s.yw * sizeof(float));
    s.g = malloc(np * sizeof(float));
    float *fast = self->fast;
    int rc = -1;
    if (!s.dp || !s.idx || !s.xs || !s.ys || !s.g) {
        mfl_errf(err, errlen, "record-level DP: out of memory");
        goto out_free;
    }
    memcpy(self->local, theta, ns * sizeof(float));
    mfl_train_metrics_t m = {0};
    if (c->algo == MFL_ALGO_FEDAVG) {
        if (s_sgd(self, &s, self->local, want, c->inner_lr))
            goto out_diverged;
        m.n_tasks = 1;
    } else {
        mfl_optim_reset(self->outer);
        int mb = c->meta_batch;
        for (int step = 0; step < c->outer_steps; step++) {
            memset(self->acc, 0, ns * sizeof(float));
            for (int b = 0; b < mb; b++) {
                memcpy(fast, self->local, np * sizeof(float));
                if (s_sgd(self, &s, fast, (uint64_t)c->inner_steps, c->inner_lr))
                    goto out_diverged;
                if (c->algo == MFL_ALGO_REPTILE) {
                    for (size_t q = 0; q < np; q++)
                        self->acc[q] += self->local[q] - fast[q];
                } else { /* fomaml: the meta-gradient is a DP-SGD gradient at θ_K */
                    if (s_grad(self, &s, fast))
                        goto out_diverged;
                    for (size_t q = 0; q < np; q++)
                        self->acc[q] += s.g[q];
                }
                m.n_tasks++;
            }
            float inv = 1.0f / (float)mb;
            for (size_t q = 0; q < ns; q++)
                self->acc[q] *= inv;
            mfl_optim_step(self->outer, self->local, self->acc);
        }
    }
    for (size_t q = 0; q < ns; q++) {
        delta[q] = self->local[q] - theta[q];
        if (!isfinite(delta[q])) {
            mfl_errf(err, errlen, "record-level DP: %s produced a non-finite update; lower the "
                     "learning rates", self->ops->name);
            goto out_free;
        }
    }
    MFL_ASSERT(s.steps == want);
    m.n_samples = data->n;
    m.loss_before = m.loss_after = NAN; /* not computed: they would be unnoised */
    if (metrics)
        *metrics = m;
    *steps = s.steps;
    rc = 0;
    goto out_free;
out_diverged:
    mfl_errf(err, errlen, "record-level DP: a DP-SGD step failed (non-finite gradient or an "
             "invalid target); lower inner_lr");
out_free:
    mfl_dpsgd_destroy(&s.dp);
    free(s.idx);
    free(s.xs);
    free(s.ys);
    free(s.g);
    return rc;
}
