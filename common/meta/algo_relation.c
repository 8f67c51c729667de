/* Relation networks (Sung et al. 2018). A learned relation module
 * (parameters "relation.*" after the embedding's in the state: an MLP, or
 * the paper's conv blocks over two feature maps stacked on channels,
 * "relconv:...") scores each pair of a query embedding e_q and a class's
 * mean support embedding c_j, presented as (e_q + c_j, |e_q - c_j|) (see
 * s_pairs); the scores are the logits. Objective:
 * the paper's sigmoid + squared error to the one-hot target when the
 * learner's loss is mse, else softmax cross-entropy over the episode's
 * classes. Gradients flow through the relation module into both the query
 * embedding and the class means (mfl_model_backward's dx). */
#include <math.h>
#include <string.h>

#include "meta/learner_internal.h"

/* Pairs (e_q + c_j, |e_q - c_j|) into self->pairs ([nq * nw][2d]). The
 * sum and the absolute difference carry the same information as the
 * unordered pair {e_q, c_j} (each coordinate's two values are
 * (s ± d) / 2), so the module is no less expressive than one over the
 * stacked pair [e_q, c_j], but the comparison is handed to it instead of
 * having to be learned from 12-20 meta-training classes: over the stacked
 * pair the module learnt to recognise the training classes rather than to
 * compare (docs/ENGINE-META.md, Relation nets). */
static int s_pairs(mfl_learner_t *self, const float *eq, size_t nq, size_t nw)
{
    size_t d = self->n_out;
    float *pairs = mfl_meta_buf(&self->pairs, nq * nw * 2 * d);
    if (!pairs)
        return -1;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nw; j++) {
            float *row = pairs + (i * nw + j) * 2 * d;
            const float *a = eq + i * d, *b = self->protos.p + j * d;
            for (size_t t = 0; t < d; t++) {
                row[t] = a[t] + b[t];
                row[d + t] = fabsf(a[t] - b[t]);
            }
        }
    return 0;
}

static int s_logits(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                    size_t ns, const float *eq, size_t nq, size_t nw, float *logits)
{
    size_t d = self->n_out, n = nq * nw, mb = mfl_model_max_batch(self->relation);
    if (mfl_meta_class_means(self, es, ys, ns, nw) || s_pairs(self, eq, nq, nw))
        return -1;
    const float *rel = state + self->n_params;
    for (size_t i = 0; i < n; i += mb) {
        size_t b = n - i < mb ? n - i : mb;
        if (mfl_model_forward(self->relation, rel, self->pairs.p + i * 2 * d, b, logits + i))
            return -1;
    }
    mfl_meta_mask_empty(self->counts.p, logits, nq, nw);
    return 0;
}

static int s_backward(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                      size_t ns, const float *eq, size_t nq, size_t nw, const float *dlogits,
                      float *des, float *deq, float *grad_state)
{
    (void)es;
    size_t d = self->n_out, n = nq * nw, mb = mfl_model_max_batch(self->relation);
    float *dpairs = mfl_meta_buf(&self->dpairs, n * 2 * d);
    float *dout = mfl_meta_buf(&self->rdout, n);
    float *tmp = mfl_meta_buf(&self->rout, mb);
    float *dprotos = mfl_meta_buf(&self->dprotos, nw * d);
    if (!dpairs || !dout || !tmp || !dprotos)
        return -1;
    const float *rel = state + self->n_params;
    float *grel = grad_state + self->n_params;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nw; j++)
            dout[i * nw + j] = self->counts.p[j] == 0 ? 0.0f : dlogits[i * nw + j];
    for (size_t i = 0; i < n; i += mb) {
        size_t b = n - i < mb ? n - i : mb;
        /* Recompute the chunk's activations unless the single forward in
         * s_logits already left them cached. */
        if (n > mb &&
            mfl_model_forward(self->relation, rel, self->pairs.p + i * 2 * d, b, tmp))
            return -1;
        mfl_model_backward(self->relation, rel, dout + i, grel, dpairs + i * 2 * d);
    }
    memset(dprotos, 0, nw * d * sizeof(float));
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nw; j++) {
            const float *row = dpairs + (i * nw + j) * 2 * d;
            const float *a = eq + i * d, *b = self->protos.p + j * d;
            for (size_t t = 0; t < d; t++) {
                /* d|a-b|/da = sign(a-b); at a = b (common: both ReLU
                 * outputs 0) 0, a valid subgradient */
                float diff = a[t] - b[t];
                float g = diff > 0 ? row[d + t] : diff < 0 ? -row[d + t] : 0.0f;
                deq[i * d + t] += row[t] + g;
                dprotos[j * d + t] += row[t] - g;
            }
        }
    mfl_meta_class_means_backward(self, ys, ns, dprotos, des);
    return 0;
}

/* Σ_j (σ(z_ij) − [y_i = j])² averaged over queries, classes with no
 * support rows left out (their logits are masked, not scores); or softmax
 * cross-entropy unless the configured loss is mse. */
static double s_loss(const mfl_learner_t *self, const float *logits, const float *y, size_t nq,
                     size_t nw, float *dlogits)
{
    if (self->config.loss != MFL_LOSS_MSE) {
        mfl_loss_t ce = {.kind = MFL_LOSS_SOFTMAX_CE, .pos_weight = 1.0f};
        return mfl_loss_eval(&ce, logits, y, nq, nw, dlogits);
    }
    double sum = 0;
    const float *counts = self->counts.p;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nw; j++) {
            size_t k = i * nw + j;
            if (counts[j] == 0) {
                if (dlogits)
                    dlogits[k] = 0.0f;
                continue;
            }
            float s = 1.0f / (1.0f + expf(-logits[k]));
            float e = s - ((size_t)y[i] == j ? 1.0f : 0.0f);
            sum += (double)e * e;
            if (dlogits)
                dlogits[k] = 2.0f * e * s * (1.0f - s) / (float)nq;
        }
    return sum / (double)nq;
}

static const mfl_metric_head_t s_head = {s_logits, s_backward, s_loss};

/* The shared episodic step and evaluation (algo_metric.c) with this head,
 * as the algorithm table's entries. */
MFL_METRIC_ALGO_ENTRIES(s_head)

const mfl_algo_ops_t mfl_algo_relation = {
    .name = "relation",
    .metric = &s_head,
    .task_grad = s_task_grad,
    .evaluate = s_evaluate,
};
