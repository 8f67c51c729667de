/* The episodic skeleton shared by the metric methods (ProtoNets, Matching
 * and Relation nets): embed support and query with the model, turn the
 * embeddings into class logits with a head, softmax cross-entropy over the
 * episode's classes, and back-propagate through the head into the
 * embedding with mfl_model_backward. Nothing is adapted at evaluation: the
 * support set only enters through the head. */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "meta/learner_internal.h"

int mfl_meta_class_means(mfl_learner_t *self, const float *es, const float *ys, size_t ns,
                         size_t nw)
{
    size_t d = self->n_out;
    float *protos = mfl_meta_buf(&self->protos, nw * d);
    float *counts = mfl_meta_buf(&self->counts, nw);
    if (!protos || !counts)
        return -1;
    memset(protos, 0, nw * d * sizeof(float));
    memset(counts, 0, nw * sizeof(float));
    for (size_t s = 0; s < ns; s++) {
        size_t j = (size_t)ys[s];
        counts[j] += 1.0f;
        for (size_t t = 0; t < d; t++)
            protos[j * d + t] += es[s * d + t];
    }
    for (size_t j = 0; j < nw; j++)
        if (counts[j] > 0)
            for (size_t t = 0; t < d; t++)
                protos[j * d + t] /= counts[j];
    return 0;
}

void mfl_meta_class_means_backward(mfl_learner_t *self, const float *ys, size_t ns,
                                   const float *dprotos, float *des)
{
    size_t d = self->n_out;
    const float *counts = self->counts.p;
    for (size_t s = 0; s < ns; s++) {
        size_t j = (size_t)ys[s];
        float inv = 1.0f / counts[j];
        for (size_t t = 0; t < d; t++)
            des[s * d + t] += dprotos[j * d + t] * inv;
    }
}

void mfl_meta_mask_empty(const float *counts, float *logits, size_t nq, size_t nw)
{
    for (size_t i = 0; i < nq; i++) {
        float *row = logits + i * nw, lo = INFINITY;
        for (size_t j = 0; j < nw; j++)
            if (counts[j] > 0 && row[j] < lo)
                lo = row[j];
        for (size_t j = 0; j < nw; j++)
            if (counts[j] == 0)
                row[j] = isfinite(lo) ? lo - 30.0f : 0.0f;
    }
}

/* Embeds n rows of x into emb ([n][d]), chunked by max_batch. */
static int s_embed(mfl_learner_t *self, const float *theta, const float *x, size_t n,
                   float *emb)
{
    size_t mb = self->max_batch, nf = mfl_model_n_inputs(self->model), d = self->n_out;
    for (size_t i = 0; i < n; i += mb) {
        size_t b = n - i < mb ? n - i : mb;
        if (mfl_model_forward(self->model, theta, x + i * nf, b, emb + i * d))
            return -1;
    }
    return 0;
}

/* Back-propagates demb ([n][d]) for rows x into grad. If all rows fitted
 * one forward call its activations are still cached; otherwise each chunk
 * is recomputed before its backward (memory stays O(max_batch)). */
static int s_embed_backward(mfl_learner_t *self, const float *theta, const float *x, size_t n,
                            const float *demb, float *grad)
{
    size_t mb = self->max_batch, nf = mfl_model_n_inputs(self->model), d = self->n_out;
    if (n <= mb) {
        mfl_model_backward(self->model, theta, demb, grad, NULL);
        return 0;
    }
    float *tmp = mfl_meta_buf(&self->out, mb * d);
    if (!tmp)
        return -1;
    for (size_t i = 0; i < n; i += mb) {
        size_t b = n - i < mb ? n - i : mb;
        if (mfl_model_forward(self->model, theta, x + i * nf, b, tmp))
            return -1;
        mfl_model_backward(self->model, theta, demb + i * d, grad, NULL);
    }
    return 0;
}

static size_t s_n_way(const mfl_dataset_t *a, const mfl_dataset_t *b)
{
    size_t x = mfl_meta_n_way(a), y = mfl_meta_n_way(b);
    return x > y ? x : y;
}

/* The head's own episode loss, or softmax cross-entropy. */
static double s_loss(const mfl_learner_t *self, const mfl_metric_head_t *head,
                     const float *logits, const float *y, size_t nq, size_t nw, float *dlogits)
{
    if (head->loss)
        return head->loss(self, logits, y, nq, nw, dlogits);
    mfl_loss_t ce = {.kind = MFL_LOSS_SOFTMAX_CE, .pos_weight = 1.0f};
    return mfl_loss_eval(&ce, logits, y, nq, nw, dlogits);
}

int mfl_meta_metric_task_grad(mfl_learner_t *self, const mfl_metric_head_t *head,
                              const float *state, const mfl_task_t *task, float *grad,
                              double *loss, char *err, size_t errlen)
{
    const mfl_dataset_t *s = task->support, *q = task->query;
    size_t ns = s->n, nq = q->n, n = ns + nq, nf = s->n_features, d = self->n_out;
    size_t nw = s_n_way(s, q);
    /* Support and query in one contiguous batch: one forward, one backward
     * when the episode fits max_batch. */
    float *x = mfl_meta_buf(&self->xb, n * nf), *y = mfl_meta_buf(&self->yb, n);
    float *emb = mfl_meta_buf(&self->emb, n * d), *demb = mfl_meta_buf(&self->demb, n * d);
    float *logits = mfl_meta_buf(&self->logits, nq * nw);
    float *dlogits = mfl_meta_buf(&self->dlogits, nq * nw);
    if (!x || !y || !emb || !demb || !logits || !dlogits)
        return mfl_errf(err, errlen, "%s: out of memory", self->ops->name), -1;
    memcpy(x, s->x, ns * nf * sizeof(float));
    memcpy(x + ns * nf, q->x, nq * nf * sizeof(float));
    memcpy(y, s->y, ns * sizeof(float));
    memcpy(y + ns, q->y, nq * sizeof(float));
    if (s_embed(self, state, x, n, emb))
        return mfl_errf(err, errlen, "%s: forward pass refused", self->ops->name), -1;
    const float *es = emb, *eq = emb + ns * d;
    if (head->logits(self, state, es, y, ns, eq, nq, nw, logits))
        return mfl_errf(err, errlen, "%s: out of memory", self->ops->name), -1;
    *loss = s_loss(self, head, logits, q->y, nq, nw, dlogits);
    memset(demb, 0, n * d * sizeof(float));
    if (head->backward(self, state, es, y, ns, eq, nq, nw, dlogits, demb, demb + ns * d, grad))
        return mfl_errf(err, errlen, "%s: head backward failed", self->ops->name), -1;
    if (s_embed_backward(self, state, x, n, demb, grad))
        return mfl_errf(err, errlen, "%s: backward failed", self->ops->name), -1;
    return 0;
}

int mfl_meta_metric_evaluate(mfl_learner_t *self, const mfl_metric_head_t *head,
                             const float *state, const mfl_dataset_t *support,
                             const mfl_dataset_t *query, float *theta_adapted,
                             mfl_eval_metrics_t *m, char *err, size_t errlen)
{
    size_t ns = support->n, nq = query->n, d = self->n_out;
    size_t nw = s_n_way(support, query);
    float *emb = mfl_meta_buf(&self->emb, (ns + nq) * d);
    float *logits = mfl_meta_buf(&self->logits, nq * nw);
    float *probs = mfl_meta_buf(&self->probs, nq * nw);
    if (!emb || !logits || !probs)
        return mfl_errf(err, errlen, "%s: out of memory", self->ops->name), -1;
    if (s_embed(self, state, support->x, ns, emb) ||
        s_embed(self, state, query->x, nq, emb + ns * d))
        return mfl_errf(err, errlen, "%s: forward pass refused", self->ops->name), -1;
    if (head->logits(self, state, emb, support->y, ns, emb + ns * d, nq, nw, logits))
        return mfl_errf(err, errlen, "%s: out of memory", self->ops->name), -1;
    double loss = s_loss(self, head, logits, query->y, nq, nw, NULL);
    for (size_t i = 0; i < nq; i++) {
        const float *o = logits + i * nw;
        float *p = probs + i * nw, mx = o[0], z = 0;
        for (size_t c = 1; c < nw; c++)
            mx = o[c] > mx ? o[c] : mx;
        for (size_t c = 0; c < nw; c++)
            z += p[c] = expf(o[c] - mx);
        for (size_t c = 0; c < nw; c++)
            p[c] /= z;
    }
    if (mfl_meta_keep_probs(self, probs, nq, nw))
        return mfl_errf(err, errlen, "%s: out of memory", self->ops->name), -1;
    mfl_meta_metrics_from_probs(probs, query->y, nq, nw, loss, m);
    if (theta_adapted)
        memcpy(theta_adapted, state, self->n_state * sizeof(float));
    return 0;
}
