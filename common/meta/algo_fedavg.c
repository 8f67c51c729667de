/* FedAvg's local update (McMahan et al. 2017), the non-meta baseline:
 * `local_epochs` passes of mini-batch SGD (rate inner_lr, batch_size rows,
 * 0 = full batch) over the site's rows, Δ = θ_local − θ. The rows are the
 * sampler's data set (site-as-task); for a sampler without one (sinusoid)
 * each epoch trains on one drawn task's support set.
 *
 * The reported losses come from the training pass itself, with no extra
 * forward pass (docs/ENGINE-META.md, "FedAvg"): an epoch's loss is the
 * row-weighted mean of its mini-batch losses, each taken at the parameters
 * before that batch's step (the running training loss other frameworks
 * report). loss_before is the first epoch's, loss_after the last epoch's;
 * with one local epoch they are the same number. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"

/* One local epoch over d from theta (updated in place). Stores the epoch's
 * loss (row-weighted mean of the pre-step batch losses) in *loss. A
 * full-batch epoch is one step, so its loss is the mean loss over all of d
 * at the θ it starts from. 0, or -1 when a step's loss is not finite. */
static int s_epoch(mfl_learner_t *self, float *theta, const mfl_dataset_t *d, mfl_rng_t *rng,
                   size_t *perm, double *loss)
{
    size_t n = d->n, nf = d->n_features, np = self->n_params;
    size_t bs = self->config.batch_size;
    float lr = self->config.inner_lr;
    if (bs == 0 || bs >= n) {
        if (n <= self->max_batch) { /* one chunk: the fused step */
            float l = mfl_model_sgd_step(self->model, theta, &self->loss, d->x, d->y, n, lr);
            *loss = l;
            return isfinite(l) ? 0 : -1;
        }
        double l = mfl_meta_loss_grad(self, theta, d->x, d->y, n, self->g);
        *loss = l;
        if (!isfinite(l))
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
    double sum = 0;
    for (size_t i = 0; i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        for (size_t j = 0; j < b; j++) {
            memcpy(xb + j * nf, d->x + perm[i + j] * nf, nf * sizeof(float));
            yb[j] = d->y[perm[i + j]];
        }
        float l = mfl_model_sgd_step(self->model, theta, &self->loss, xb, yb, b, lr);
        if (!isfinite(l))
            return -1;
        sum += (double)l * (double)b;
    }
    *loss = sum / (double)n;
    return 0;
}

static int s_meta_train(mfl_learner_t *self, const float *theta, mfl_sampler_t *sampler,
                        mfl_rng_t *rng, float *delta, mfl_train_metrics_t *m, char *err,
                        size_t errlen)
{
    const mfl_dataset_t *data = mfl_sampler_data(sampler);
    size_t np = self->n_params;
    /* The local model is trained in the caller's Δ buffer and turned into
     * Δ in place at the end (the same float subtraction): one θ-sized
     * buffer less at the site (issue 17). The learner's own `local` is the
     * fallback when Δ is θ itself. */
    float *local = delta != theta ? delta : self->local;
    memcpy(local, theta, np * sizeof(float));
    size_t *perm = NULL;
    int rc = -1;
    if (data) {
        if (mfl_meta_check_data(self, data, "site data", err, errlen))
            return -1;
        perm = malloc(data->n * sizeof(size_t));
        if (!perm)
            return mfl_errf(err, errlen, "fedavg: out of memory"), -1;
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
            m->n_tasks++;
        }
        double loss = NAN;
        if (s_epoch(self, local, d, rng, perm, &loss)) {
            mfl_errf(err, errlen, "fedavg: local SGD diverged in epoch %d; lower inner_lr", e);
            goto out_free_perm;
        }
        if (e == 0)
            m->loss_before = loss;
        m->loss_after = loss;
        rows += d->n;
    }
    for (size_t p = 0; p < np; p++)
        delta[p] = local[p] - theta[p];
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
