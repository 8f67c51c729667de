/* Matching networks (Vinyals et al. 2016), without full-context
 * embeddings (no bidirectional LSTM over the support set, no attention
 * LSTM over the query: both embeddings are the plain model).
 *
 * A query attends over every support row: w_s = softmax_s(τ · cos(e_q, e_s)),
 * P(j | q) = Σ_{s in class j} w_s, loss −log P(y_q | q). The logits handed
 * to softmax cross-entropy are log P(j | q), whose softmax is P itself.
 * τ = 10 is a fixed inverse temperature: with raw cosines (τ = 1) the
 * attention can never be sharp (5-way 1-shot caps P at 0.65). */
#include <math.h>
#include <string.h>

#include "meta/learner_internal.h"

#define S_TAU 10.0f
#define S_NORM_EPS 1e-8f
#define S_P_MIN 1e-12f

static float s_norm(const float *v, size_t d)
{
    float s = 0;
    for (size_t t = 0; t < d; t++)
        s += v[t] * v[t];
    return sqrtf(s) + S_NORM_EPS;
}

static float s_dot(const float *a, const float *b, size_t d)
{
    float s = 0;
    for (size_t t = 0; t < d; t++)
        s += a[t] * b[t];
    return s;
}

/* Attention w ([nq][ns], in self->pairs), norms ([ns + nq], self->counts),
 * cosines ([nq][ns], self->dpairs) and class probabilities (self->protos). */
static int s_logits(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                    size_t ns, const float *eq, size_t nq, size_t nw, float *logits)
{
    (void)state;
    size_t d = self->n_out;
    float *w = mfl_meta_buf(&self->pairs, nq * ns), *cosv = mfl_meta_buf(&self->dpairs, nq * ns);
    float *norms = mfl_meta_buf(&self->counts, ns + nq), *p = mfl_meta_buf(&self->protos, nq * nw);
    if (!w || !cosv || !norms || !p)
        return -1;
    for (size_t s = 0; s < ns; s++)
        norms[s] = s_norm(es + s * d, d);
    for (size_t i = 0; i < nq; i++)
        norms[ns + i] = s_norm(eq + i * d, d);
    for (size_t i = 0; i < nq; i++) {
        float *wi = w + i * ns, *ci = cosv + i * ns, mx = -INFINITY, z = 0;
        for (size_t s = 0; s < ns; s++) {
            ci[s] = s_dot(eq + i * d, es + s * d, d) / (norms[ns + i] * norms[s]);
            wi[s] = S_TAU * ci[s];
            mx = wi[s] > mx ? wi[s] : mx;
        }
        for (size_t s = 0; s < ns; s++)
            z += wi[s] = expf(wi[s] - mx);
        float *pi = p + i * nw;
        memset(pi, 0, nw * sizeof(float));
        for (size_t s = 0; s < ns; s++) {
            wi[s] /= z;
            pi[(size_t)ys[s]] += wi[s];
        }
        for (size_t j = 0; j < nw; j++)
            logits[i * nw + j] = logf(pi[j] > S_P_MIN ? pi[j] : S_P_MIN);
    }
    return 0;
}

static int s_backward(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                      size_t ns, const float *eq, size_t nq, size_t nw, const float *dlogits,
                      float *des, float *deq, float *grad_state)
{
    (void)state;
    (void)grad_state;
    size_t d = self->n_out;
    const float *w = self->pairs.p, *cosv = self->dpairs.p, *norms = self->counts.p;
    const float *p = self->protos.p;
    for (size_t i = 0; i < nq; i++) {
        const float *dl = dlogits + i * nw, *pi = p + i * nw, *wi = w + i * ns;
        const float *qv = eq + i * d;
        float nq_i = norms[ns + i], sum_dl = 0;
        for (size_t j = 0; j < nw; j++)
            sum_dl += dl[j];
        for (size_t s = 0; s < ns; s++) {
            size_t j = (size_t)ys[s];
            /* ∂L/∂a_s = w_s (dl_j / p_j − Σ_k dl_k) for the attention logit
             * a_s of a support row of class j (the clamp's zero gradient
             * below S_P_MIN is ignored: p_j ≥ w_s > 0 there). */
            float pj = pi[j] > S_P_MIN ? pi[j] : S_P_MIN;
            float da = wi[s] * (dl[j] / pj - sum_dl);
            float dc = S_TAU * da, c = cosv[i * ns + s];
            const float *sv = es + s * d;
            float ns_s = norms[s], inv = 1.0f / (nq_i * ns_s);
            /* ∂cos/∂q = s/(|q||s|) − cos q/|q|², symmetric for s. */
            for (size_t t = 0; t < d; t++) {
                deq[i * d + t] += dc * (sv[t] * inv - c * qv[t] / (nq_i * nq_i));
                des[s * d + t] += dc * (qv[t] * inv - c * sv[t] / (ns_s * ns_s));
            }
        }
    }
    return 0;
}

static const mfl_metric_head_t s_head = {s_logits, s_backward, NULL};

/* The shared episodic step and evaluation (algo_metric.c) with this head,
 * as the algorithm table's entries. */
MFL_METRIC_ALGO_ENTRIES(s_head)

const mfl_algo_ops_t mfl_algo_matching = {
    .name = "matching",
    .metric = &s_head,
    .task_grad = s_task_grad,
    .evaluate = s_evaluate,
};
