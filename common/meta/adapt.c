/* Adaptation and scoring shared by the gradient methods (FedAvg, Reptile,
 * FOMAML, MAML, Meta-SGD): k full-batch SGD steps on the support set, then
 * loss and classification metrics on the query set. */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"
#include "meta/metrics.h"

void mfl_meta_metrics_from_probs(float *probs, const float *label, size_t n,
                                 size_t n_way, double loss, mfl_eval_metrics_t *m)
{
    m->loss = loss;
    m->n = n;
    m->accuracy = mfl_metrics_accuracy(probs, label, n, n_way);
    m->auroc = m->sensitivity = m->specificity = m->sens_at_spec90 = NAN;
    m->rmse = m->mae = m->r2 = NAN;
    if (n_way != 2)
        return;
    /* Binary: score = P(class 1); column 1 is compacted to the front of the
     * caller's scratch (reading index 2i+1 >= i before writing i). */
    float *score = probs;
    for (size_t i = 0; i < n; i++)
        score[i] = probs[2 * i + 1];
    mfl_metrics_binary(score, label, n, 0.5f, NULL, &m->sensitivity, &m->specificity);
    m->auroc = mfl_metrics_auroc(score, label, n);
    m->sens_at_spec90 = mfl_metrics_sensitivity_at(score, label, n, 0.9);
}

int mfl_meta_keep_probs(mfl_learner_t *self, const float *probs, size_t n, size_t n_way)
{
    self->kept_n = 0;
    if (!n)
        return 0;
    float *k = mfl_meta_buf(&self->kept, n * n_way);
    if (!k)
        return -1;
    memcpy(k, probs, n * n_way * sizeof(float));
    self->kept_n = n;
    self->kept_nw = n_way;
    return 0;
}

int mfl_meta_score(mfl_learner_t *self, const float *theta, const mfl_dataset_t *query,
                   mfl_eval_metrics_t *m, char *err, size_t errlen)
{
    size_t n = query->n, no = self->n_out, mb = self->max_batch, nf = query->n_features;
    float *out = mfl_meta_buf(&self->out, n * no);
    float *probs = mfl_meta_buf(&self->probs, n * (no < 2 ? 2 : no));
    if (!out || !probs)
        return mfl_errf(err, errlen, "evaluate: out of memory"), -1;
    for (size_t i = 0; i < n; i += mb) {
        size_t b = n - i < mb ? n - i : mb;
        if (mfl_model_forward(self->model, theta, query->x + i * nf, b, out + i * no))
            return mfl_errf(err, errlen, "evaluate: forward pass refused a batch of %zu", b),
                   -1;
    }
    double loss = mfl_loss_eval(&self->loss, out, query->y, n, no, NULL);
    if (self->loss.kind == MFL_LOSS_MSE) {
        memset(m, 0, sizeof(*m));
        m->loss = loss;
        m->n = n;
        m->accuracy = m->auroc = m->sensitivity = m->specificity = m->sens_at_spec90 = NAN;
        m->rmse = m->mae = m->r2 = NAN;
        if (no == 1)
            mfl_metrics_regression(out, query->y, n, &m->rmse, &m->mae, &m->r2);
        return 0;
    }
    if (self->loss.kind == MFL_LOSS_BCE) {
        for (size_t i = 0; i < n; i++) {
            float p1 = 1.0f / (1.0f + expf(-out[i]));
            probs[2 * i] = 1.0f - p1;
            probs[2 * i + 1] = p1;
        }
        if (mfl_meta_keep_probs(self, probs, n, 2))
            return mfl_errf(err, errlen, "evaluate: out of memory"), -1;
        mfl_meta_metrics_from_probs(probs, query->y, n, 2, loss, m);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const float *o = out + i * no;
        float *p = probs + i * no, mx = o[0], z = 0;
        for (size_t c = 1; c < no; c++)
            mx = o[c] > mx ? o[c] : mx;
        for (size_t c = 0; c < no; c++)
            z += p[c] = expf(o[c] - mx);
        for (size_t c = 0; c < no; c++)
            p[c] /= z;
    }
    if (mfl_meta_keep_probs(self, probs, n, no))
        return mfl_errf(err, errlen, "evaluate: out of memory"), -1;
    mfl_meta_metrics_from_probs(probs, query->y, n, no, loss, m);
    return 0;
}

int mfl_meta_evaluate_gradient(mfl_learner_t *self, const float *theta,
                               const mfl_dataset_t *support, const mfl_dataset_t *query,
                               int steps, float lr, float *theta_adapted,
                               mfl_eval_metrics_t *m, char *err, size_t errlen)
{
    if (steps == 0 && !theta_adapted) /* θ as is: scored where it lies, no copy */
        return mfl_meta_score(self, theta, query, m, err, errlen);
    const float *lr_vec = self->config.algo == MFL_ALGO_META_SGD ? theta + self->n_params : NULL;
    if (mfl_meta_inner_sgd(self, theta, support, steps, lr, lr_vec, self->fast, NULL))
        return mfl_errf(err, errlen, "evaluate: adaptation diverged (non-finite support "
                        "loss); lower lr"), -1;
    if (mfl_meta_score(self, self->fast, query, m, err, errlen))
        return -1;
    if (theta_adapted) {
        memcpy(theta_adapted, theta, self->n_state * sizeof(float));
        memcpy(theta_adapted, self->fast, self->n_params * sizeof(float));
    }
    return 0;
}

int mfl_meta_evaluate_gradient_in_place(mfl_learner_t *self, float *state,
                                        const mfl_dataset_t *support,
                                        const mfl_dataset_t *query, int steps, float lr,
                                        mfl_eval_metrics_t *m, char *err, size_t errlen)
{
    /* the same steps as mfl_meta_evaluate_gradient, on `state` instead of
     * a copy in `fast` (Meta-SGD's rates, after the parameters, are read
     * and never written) */
    const float *lr_vec = self->config.algo == MFL_ALGO_META_SGD ? state + self->n_params : NULL;
    if (mfl_meta_inner_sgd(self, state, support, steps, lr, lr_vec, state, NULL))
        return mfl_errf(err, errlen, "evaluate: adaptation diverged (non-finite support "
                        "loss); lower lr"), -1;
    return mfl_meta_score(self, state, query, m, err, errlen);
}
