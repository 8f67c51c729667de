/* FedAvg's local update (McMahan et al. 2017), the non-meta baseline:
 * `local_epochs` passes of mini-batch SGD (rate inner_lr, batch_size rows,
 * 0 = full batch) over the site's rows, Δ = θ_local − θ. The rows are the
 * sampler's data set (site-as-task); for a sampler without one (sinusoid)
 * each epoch trains on one drawn task's support set. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"

/* 1 when an epoch over d is one fused full-batch step: its loss is then
 * the mean loss over all of d at the θ it starts from. */
static int s_one_step_epoch(const mfl_learner_t *self, const mfl_dataset_t *d)
{
    size_t bs = self->config.batch_size;
    return (bs == 0 || bs >= d->n) && d->n <= self->max_batch;
}

/* One local epoch. If first_loss is not NULL (only for a one-step epoch,
 * s_one_step_epoch), the step's loss at the starting θ is stored there. */
static int s_epoch(mfl_learner_t *self, float *theta, const mfl_dataset_t *d, mfl_rng_t *rng,
                   size_t *perm, double *first_loss)
{
    size_t n = d->n, nf = d->n_features, np = self->n_params;
    size_t bs = self->config.batch_size;
    float lr = self->config.inner_lr;
    if (bs == 0 || bs >= n) {
        if (n <= self->max_batch) { /* one chunk: the fused step, same numbers */
            float l = mfl_model_sgd_step(self->model, theta, &self->loss, d->x, d->y, n, lr);
            if (first_loss)
                *first_loss = l;
            return isfinite(l) ? 0 : -1;
        }
        if (!isfinite(mfl_meta_loss_grad(self, theta, d->x, d->y, n, self->g)))
            return -1;
        for (size_t p = 0; p < np; p++)
            theta[p] -= lr * self->g[p];
        return 0;
    }
    if (bs > self->max_batch)
        bs = self->max_batch;
    float *xb = mfl_meta_buf(&self->xb, bs * nf), *yb = mfl_meta_buf(&self->yb, bs);
    if (!xb || !yb)
        return -1;
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    mfl_rng_shuffle(rng, perm, n);
    for (size_t i = 0; i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        for (size_t j = 0; j < b; j++) {
            memcpy(xb + j * nf, d->x + perm[i + j] * nf, nf * sizeof(float));
            yb[j] = d->y[perm[i + j]];
        }
        if (!isfinite(mfl_model_sgd_step(self->model, theta, &self->loss, xb, yb, b, lr)))
            return -1;
    }
    return 0;
}

static int s_meta_train(mfl_learner_t *self, const float *theta, mfl_sampler_t *sampler,
                        mfl_rng_t *rng, float *delta, mfl_train_metrics_t *m, char *err,
                        size_t errlen)
{
    const mfl_dataset_t *data = mfl_sampler_data(sampler);
    size_t np = self->n_params;
    memcpy(self->local, theta, np * sizeof(float));
    size_t *perm = NULL;
    int rc = -1;
    if (data) {
        if (mfl_meta_check_data(self, data, "site data", err, errlen))
            return -1;
        perm = malloc(data->n * sizeof(size_t));
        if (!perm)
            return mfl_errf(err, errlen, "fedavg: out of memory"), -1;
        /* A one-step first epoch computes this very loss (the same forward
         * of the same rows at θ, bit for bit): take it from there. */
        if (!s_one_step_epoch(self, data))
            m->loss_before = mfl_meta_loss_grad(self, theta, data->x, data->y, data->n, NULL);
    }
    size_t rows = 0;
    for (int e = 0; e < self->config.local_epochs; e++) {
        const mfl_dataset_t *d;
        if (data) {
            d = data;
        } else {
            if (mfl_sampler_next(sampler, rng, &self->task)) {
                mfl_errf(err, errlen, "fedavg: out of memory drawing a task");
                goto out_free_perm;
            }
            d = self->task.support;
            if (mfl_meta_check_data(self, d, "support", err, errlen))
                goto out_free_perm;
            free(perm);
            perm = malloc(d->n * sizeof(size_t));
            if (!perm) {
                mfl_errf(err, errlen, "fedavg: out of memory");
                goto out_free_perm;
            }
            if (e == 0)
                m->loss_before = mfl_meta_loss_grad(self, theta, d->x, d->y, d->n, NULL);
            m->n_tasks++;
        }
        double *first = data && e == 0 && s_one_step_epoch(self, data) ? &m->loss_before : NULL;
        if (s_epoch(self, self->local, d, rng, perm, first)) {
            mfl_errf(err, errlen, "fedavg: local SGD diverged in epoch %d; lower inner_lr", e);
            goto out_free_perm;
        }
        rows += d->n;
        if (e == self->config.local_epochs - 1)
            m->loss_after = mfl_meta_loss_grad(self, self->local, d->x, d->y, d->n, NULL);
    }
    for (size_t p = 0; p < np; p++)
        delta[p] = self->local[p] - theta[p];
    m->n_samples = data ? data->n : rows;
    if (data)
        m->n_tasks = 1;
    rc = 0;
out_free_perm:
    free(perm);
    return rc;
}

const mfl_algo_ops_t mfl_algo_fedavg = {
    .name = "fedavg",
    .meta_train = s_meta_train,
    .evaluate = mfl_meta_evaluate_gradient,
};
