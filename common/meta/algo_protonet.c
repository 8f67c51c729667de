/* Prototypical networks (Snell et al. 2017): a class's prototype is the
 * mean of its support embeddings; a query's logit for class j is the
 * negative squared Euclidean distance to prototype j. A class without
 * support rows is never predicted (mfl_meta_mask_empty). */
#include <string.h>

#include "meta/learner_internal.h"

static int s_logits(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                    size_t ns, const float *eq, size_t nq, size_t nw, float *logits)
{
    (void)state;
    size_t d = self->n_out;
    if (mfl_meta_class_means(self, es, ys, ns, nw))
        return -1;
    const float *protos = self->protos.p, *counts = self->counts.p;
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < nw; j++) {
            if (counts[j] == 0)
                continue; /* masked below */
            float dist = 0;
            for (size_t t = 0; t < d; t++) {
                float diff = eq[i * d + t] - protos[j * d + t];
                dist += diff * diff;
            }
            logits[i * nw + j] = -dist;
        }
    }
    mfl_meta_mask_empty(counts, logits, nq, nw);
    return 0;
}

static int s_backward(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                      size_t ns, const float *eq, size_t nq, size_t nw, const float *dlogits,
                      float *des, float *deq, float *grad_state)
{
    (void)state;
    (void)es;
    (void)grad_state;
    size_t d = self->n_out;
    float *dprotos = mfl_meta_buf(&self->dprotos, nw * d);
    if (!dprotos)
        return -1;
    memset(dprotos, 0, nw * d * sizeof(float));
    const float *protos = self->protos.p, *counts = self->counts.p;
    /* logit = −Σ (e − c)²: ∂/∂e = −2 (e − c), ∂/∂c = +2 (e − c). */
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < nw; j++) {
            if (counts[j] == 0)
                continue;
            float dl = 2.0f * dlogits[i * nw + j];
            for (size_t t = 0; t < d; t++) {
                float diff = eq[i * d + t] - protos[j * d + t];
                deq[i * d + t] -= dl * diff;
                dprotos[j * d + t] += dl * diff;
            }
        }
    }
    mfl_meta_class_means_backward(self, ys, ns, dprotos, des);
    return 0;
}

static const mfl_metric_head_t s_head = {s_logits, s_backward, NULL};

/* The shared episodic step and evaluation (algo_metric.c) with this head,
 * as the algorithm table's entries. */
MFL_METRIC_ALGO_ENTRIES(s_head)

const mfl_algo_ops_t mfl_algo_protonet = {
    .name = "protonet",
    .metric = &s_head,
    .task_grad = s_task_grad,
    .evaluate = s_evaluate,
};
