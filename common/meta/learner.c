/* The learner: configuration, state layout, the generic outer loop and the
 * dispatch to one module per algorithm (algo_*.c).
 *
 * Defaults (mfl_learner_config_defaults), chosen for small tabular and
 * few-shot models; every one is overridable from YAML:
 *   all:        loss softmax_ce, pos_weight 1, batch_size 0 (full), local_epochs 1
 *   fedavg:     inner_lr 0.05 (local SGD rate), batch_size 32, local_epochs 1
 *   reptile:    inner_steps 5, inner_lr 0.02, meta_batch 4, outer_steps 10,
 *               outer_lr 0.5 (ε), plain SGD outer step
 *   fomaml, maml, meta_sgd: inner_steps 5, inner_lr 0.01 (Meta-SGD: initial
 *               α), meta_batch 4, outer_steps 10, outer_lr 0.001 (β), Adam
 *   protonet, matching, relation: meta_batch 1, outer_steps 10,
 *               outer_lr 0.001, Adam (inner_steps unused)
 */
#include "meta/learner_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static const char *const s_names[] = {"fedavg",   "reptile",  "fomaml",   "maml",
                                      "meta_sgd", "protonet", "matching", "relation"};

int mfl_algo_parse(const char *text, mfl_algo_kind_t *algo)
{
    for (size_t i = 0; text && i < sizeof(s_names) / sizeof(s_names[0]); i++) {
        if (strcmp(text, s_names[i]) == 0) {
            *algo = (mfl_algo_kind_t)i;
            return 0;
        }
    }
    return -1;
}

const char *mfl_algo_name(mfl_algo_kind_t algo)
{
    return (unsigned)algo < sizeof(s_names) / sizeof(s_names[0]) ? s_names[algo] : "unknown";
}

static int s_is_metric(mfl_algo_kind_t a)
{
    return a == MFL_ALGO_PROTONET || a == MFL_ALGO_MATCHING || a == MFL_ALGO_RELATION;
}

void mfl_learner_config_defaults(mfl_learner_config_t *config, mfl_algo_kind_t algo)
{
    memset(config, 0, sizeof(*config));
    config->algo = algo;
    config->loss = MFL_LOSS_SOFTMAX_CE;
    config->pos_weight = 1.0f;
    config->local_epochs = 1;
    config->meta_batch = 4;
    config->outer_steps = 10;
    config->inner_steps = 5;
    switch (algo) {
    case MFL_ALGO_FEDAVG:
        config->inner_lr = 0.05f;
        config->batch_size = 32;
        config->outer_lr = 1.0f;
        config->outer_steps = 1;
        config->meta_batch = 1;
        config->outer_optim = MFL_OPTIM_SGD;
        break;
    case MFL_ALGO_REPTILE:
        config->inner_lr = 0.02f;
        config->outer_lr = 0.5f;
        config->outer_optim = MFL_OPTIM_SGD;
        break;
    case MFL_ALGO_FOMAML:
    case MFL_ALGO_MAML:
    case MFL_ALGO_META_SGD:
        config->inner_lr = 0.01f;
        config->outer_lr = 0.001f;
        config->outer_optim = MFL_OPTIM_ADAM;
        break;
    case MFL_ALGO_PROTONET:
    case MFL_ALGO_MATCHING:
    case MFL_ALGO_RELATION:
        config->inner_steps = 0;
        config->inner_lr = 0.0f;
        config->meta_batch = 1;
        config->outer_lr = 0.001f;
        config->outer_optim = MFL_OPTIM_ADAM;
        break;
    }
}

float *mfl_meta_buf(mfl_meta_buf_t *buf, size_t n)
{
    if (n <= buf->cap && buf->p)
        return buf->p;
    float *p = realloc(buf->p, (n ? n : 1) * sizeof(float));
    if (!p)
        return NULL;
    buf->p = p;
    buf->cap = n;
    return p;
}

void mfl_meta_buf_free(mfl_meta_buf_t *buf)
{
    free(buf->p);
    buf->p = NULL;
    buf->cap = 0;
}

static const mfl_algo_ops_t *s_ops(mfl_algo_kind_t a)
{
    switch (a) {
    case MFL_ALGO_FEDAVG: return &mfl_algo_fedavg;
    case MFL_ALGO_REPTILE: return &mfl_algo_reptile;
    case MFL_ALGO_FOMAML: return &mfl_algo_fomaml;
    case MFL_ALGO_MAML: return &mfl_algo_maml;
    case MFL_ALGO_META_SGD: return &mfl_algo_meta_sgd;
    case MFL_ALGO_PROTONET: return &mfl_algo_protonet;
    case MFL_ALGO_MATCHING: return &mfl_algo_matching;
    case MFL_ALGO_RELATION: return &mfl_algo_relation;
    }
    return NULL;
}

static int s_check_config(const mfl_learner_config_t *c, char *err, size_t errlen)
{
    if (!s_ops(c->algo))
        return mfl_errf(err, errlen, "algo: unknown algorithm %d", (int)c->algo), -1;
    if (c->model_spec[0] == '\0')
        return mfl_errf(err, errlen, "model: no model spec given"), -1;
    if (c->inner_steps < 0 || c->inner_steps > 1000)
        return mfl_errf(err, errlen, "inner_steps: %d is outside 0..1000", c->inner_steps), -1;
    if (c->meta_batch < 1 || c->meta_batch > 100000)
        return mfl_errf(err, errlen, "meta_batch: %d is outside 1..100000", c->meta_batch), -1;
    if (c->outer_steps < 1)
        return mfl_errf(err, errlen, "outer_steps: must be >= 1 (got %d)", c->outer_steps), -1;
    if (c->local_epochs < 1)
        return mfl_errf(err, errlen, "local_epochs: must be >= 1 (got %d)", c->local_epochs), -1;
    if (!isfinite(c->inner_lr) || !isfinite(c->outer_lr) || c->outer_lr <= 0)
        return mfl_errf(err, errlen, "inner_lr/outer_lr: must be finite, outer_lr > 0"), -1;
    if (!(c->pos_weight > 0) || !isfinite(c->pos_weight))
        return mfl_errf(err, errlen, "pos_weight: must be > 0"), -1;
    if (c->algo != MFL_ALGO_FEDAVG && !s_is_metric(c->algo) && c->inner_steps < 1)
        return mfl_errf(err, errlen, "inner_steps: %s needs at least one inner step",
                        mfl_algo_name(c->algo)), -1;
    return 0;
}

static int s_add_tensor(mfl_learner_t *self, const mfl_tensor_info_t *t, const char *prefix,
                        size_t offset)
{
    mfl_tensor_info_t *dst = &self->tensors[self->n_tensors++];
    *dst = *t;
    dst->offset = t->offset + offset;
    int n = snprintf(dst->name, sizeof(dst->name), "%s%s", prefix, t->name);
    return n < 0 || (size_t)n >= sizeof(dst->name) ? -1 : 0;
}

static int s_build_relation(mfl_learner_t *self, char *err, size_t errlen)
{
    char spec[128];
    size_t d = self->n_out;
    if (self->config.relation_spec[0])
        snprintf(spec, sizeof(spec), "%s", self->config.relation_spec);
    else
        snprintf(spec, sizeof(spec), "mlp:%zu-16-1", 2 * d);
    char sub[200];
    self->relation = mfl_model_new(spec, self->max_batch * 8, sub, sizeof(sub));
    if (!self->relation)
        return mfl_errf(err, errlen, "relation: %s", sub), -1;
    if (mfl_model_n_inputs(self->relation) != 2 * d || mfl_model_n_outputs(self->relation) != 1)
        return mfl_errf(err, errlen, "relation: '%s' must map %zu inputs (two %zu-wide "
                        "embeddings) to 1 score", spec, 2 * d, d), -1;
    self->n_extra = mfl_model_n_params(self->relation);
    return 0;
}

mfl_learner_t *mfl_learner_new(const mfl_learner_config_t *config, size_t max_batch, char *err,
                               size_t errlen)
{
    if (!config || s_check_config(config, err, errlen))
        return NULL;
    if (max_batch == 0)
        return mfl_errf(err, errlen, "max_batch: must be > 0"), NULL;
    mfl_learner_t *self = calloc(1, sizeof(*self));
    if (!self)
        goto out_oom;
    self->config = *config;
    self->config.model_spec[sizeof(self->config.model_spec) - 1] = '\0';
    self->config.relation_spec[sizeof(self->config.relation_spec) - 1] = '\0';
    self->ops = s_ops(config->algo);
    self->max_batch = max_batch;
    self->loss.kind = s_is_metric(config->algo) ? MFL_LOSS_SOFTMAX_CE : config->loss;
    self->loss.pos_weight = config->pos_weight;
    char sub[200];
    self->model = mfl_model_new(self->config.model_spec, max_batch, sub, sizeof(sub));
    if (!self->model) {
        mfl_errf(err, errlen, "model: %s", sub);
        goto out_destroy;
    }
    self->n_params = mfl_model_n_params(self->model);
    self->n_out = mfl_model_n_outputs(self->model);
    if (!s_is_metric(config->algo)) {
        if (config->loss == MFL_LOSS_BCE && self->n_out != 1) {
            mfl_errf(err, errlen, "model: bce needs 1 output, '%s' has %zu",
                     self->config.model_spec, self->n_out);
            goto out_destroy;
        }
        if (config->loss == MFL_LOSS_SOFTMAX_CE && self->n_out < 2) {
            mfl_errf(err, errlen, "model: softmax_ce needs >= 2 outputs, '%s' has %zu",
                     self->config.model_spec, self->n_out);
            goto out_destroy;
        }
        if (config->loss == MFL_LOSS_MSE && self->n_out != 1) {
            mfl_errf(err, errlen, "model: mse targets are one float per row; '%s' has %zu "
                     "outputs", self->config.model_spec, self->n_out);
            goto out_destroy;
        }
    }
    if (config->algo == MFL_ALGO_META_SGD)
        self->n_extra = self->n_params;
    if (config->algo == MFL_ALGO_RELATION && s_build_relation(self, err, errlen))
        goto out_destroy;
    self->n_state = self->n_params + self->n_extra;

    size_t nt = mfl_model_n_tensors(self->model);
    size_t nt_total = nt * (config->algo == MFL_ALGO_META_SGD ? 2 : 1) +
                      (self->relation ? mfl_model_n_tensors(self->relation) : 0);
    self->tensors = calloc(nt_total, sizeof(mfl_tensor_info_t));
    if (!self->tensors)
        goto out_oom;
    int bad = 0;
    for (size_t i = 0; i < nt; i++)
        bad |= s_add_tensor(self, mfl_model_tensor(self->model, i), "", 0);
    if (config->algo == MFL_ALGO_META_SGD)
        for (size_t i = 0; i < nt; i++)
            bad |= s_add_tensor(self, mfl_model_tensor(self->model, i), "meta_sgd.lr.",
                                self->n_params);
    if (self->relation)
        for (size_t i = 0; i < mfl_model_n_tensors(self->relation); i++)
            bad |= s_add_tensor(self, mfl_model_tensor(self->relation, i), "relation.",
                                self->n_params);
    if (bad) {
        mfl_errf(err, errlen, "model: a tensor name is longer than %d characters",
                 MFL_TENSOR_NAME_MAX - 1);
        goto out_destroy;
    }

    mfl_optim_config_t oc = mfl_optim_defaults(config->outer_optim, config->outer_lr);
    self->outer = mfl_optim_new(&oc, self->n_state);
    size_t ns = self->n_state, np = self->n_params;
    size_t tape_steps = (size_t)config->inner_steps + 1;
    self->local = malloc(ns * sizeof(float));
    self->acc = malloc(ns * sizeof(float));
    self->tgrad = malloc(ns * sizeof(float));
    self->fast = malloc(np * sizeof(float));
    self->g = malloc(np * sizeof(float));
    self->g2 = malloc(np * sizeof(float));
    self->hv = malloc(np * sizeof(float));
    self->chunk = malloc(np * sizeof(float));
    if (config->algo == MFL_ALGO_MAML || config->algo == MFL_ALGO_META_SGD)
        self->tape = malloc(tape_steps * np * sizeof(float));
    if (!self->outer || !self->local || !self->acc || !self->tgrad || !self->fast ||
        !self->g || !self->g2 || !self->hv || !self->chunk ||
        ((config->algo == MFL_ALGO_MAML || config->algo == MFL_ALGO_META_SGD) && !self->tape))
        goto out_oom;
    return self;
out_oom:
    mfl_errf(err, errlen, "learner: out of memory");
out_destroy:
    mfl_learner_destroy(&self);
    return NULL;
}

void mfl_learner_destroy(mfl_learner_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_learner_t *self = *self_p;
    mfl_model_destroy(&self->model);
    mfl_model_destroy(&self->relation);
    mfl_optim_destroy(&self->outer);
    free(self->tensors);
    free(self->local);
    free(self->acc);
    free(self->tgrad);
    free(self->fast);
    free(self->g);
    free(self->g2);
    free(self->hv);
    free(self->chunk);
    free(self->tape);
    mfl_meta_buf_t *bufs[] = {&self->out,    &self->dout,    &self->emb,   &self->demb,
                              &self->probs,  &self->logits,  &self->dlogits, &self->pairs,
                              &self->dpairs, &self->xb,      &self->yb,    &self->rout,
                              &self->rdout,  &self->protos,  &self->dprotos, &self->counts,
                              &self->kept};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        mfl_meta_buf_free(bufs[i]);
    mfl_task_clear(&self->task);
    free(self);
    *self_p = NULL;
}

const mfl_learner_config_t *mfl_learner_config(const mfl_learner_t *self)
{
    return &self->config;
}

size_t mfl_learner_n_state(const mfl_learner_t *self) { return self->n_state; }
size_t mfl_learner_n_tensors(const mfl_learner_t *self) { return self->n_tensors; }

const mfl_tensor_info_t *mfl_learner_tensor(const mfl_learner_t *self, size_t index)
{
    return index < self->n_tensors ? &self->tensors[index] : NULL;
}

size_t mfl_learner_n_params(const mfl_learner_t *self) { return self->n_params; }

size_t mfl_learner_n_outputs(const mfl_learner_t *self) { return self->n_out; }

bool mfl_algo_episodic_head(mfl_algo_kind_t algo, mfl_loss_kind_t loss, size_t n_outputs,
                            size_t n_classes)
{
    bool gradient = algo == MFL_ALGO_REPTILE || algo == MFL_ALGO_FOMAML ||
                    algo == MFL_ALGO_MAML || algo == MFL_ALGO_META_SGD;
    return gradient && loss == MFL_LOSS_SOFTMAX_CE && n_outputs >= 2 && n_classes > n_outputs;
}

void mfl_learner_keep_outer_state(mfl_learner_t *self, int keep)
{
    self->keep_outer = keep != 0;
    self->outer_started = 0; /* the next call starts from a fresh optimiser */
}

void mfl_learner_init_state(const mfl_learner_t *self, float *theta, uint64_t seed)
{
    mfl_rng_t rng;
    mfl_rng_seed(&rng, seed, 0x6d657461 /* "meta" */);
    mfl_model_init_params(self->model, theta, &rng);
    if (self->config.algo == MFL_ALGO_META_SGD)
        for (size_t i = 0; i < self->n_params; i++)
            theta[self->n_params + i] = self->config.inner_lr;
    if (self->relation)
        mfl_model_init_params(self->relation, theta + self->n_params, &rng);
}

size_t mfl_meta_n_way(const mfl_dataset_t *ds)
{
    if (ds->n_classes > 0)
        return ds->n_classes;
    float m = -1;
    for (size_t i = 0; i < ds->n; i++)
        if (ds->y[i] > m)
            m = ds->y[i];
    return m < 0 ? 0 : (size_t)m + 1;
}

int mfl_meta_check_data(const mfl_learner_t *self, const mfl_dataset_t *ds, const char *what,
                        char *err, size_t errlen)
{
    if (!ds || ds->n == 0)
        return mfl_errf(err, errlen, "%s: empty data set", what), -1;
    if (ds->n_features != mfl_model_n_inputs(self->model))
        return mfl_errf(err, errlen, "%s: %zu features per row, the model '%s' takes %zu", what,
                        ds->n_features, mfl_model_spec(self->model),
                        mfl_model_n_inputs(self->model)), -1;
    int metric = s_is_metric(self->config.algo);
    size_t limit = metric ? (size_t)-1
                   : self->loss.kind == MFL_LOSS_SOFTMAX_CE ? self->n_out
                   : self->loss.kind == MFL_LOSS_BCE        ? 2
                                                            : 0;
    for (size_t i = 0; i < ds->n; i++) {
        float y = ds->y[i];
        if (!isfinite(y))
            return mfl_errf(err, errlen, "%s: row %zu has a non-finite label", what, i), -1;
        if (metric && (y < 0 || y != floorf(y)))
            return mfl_errf(err, errlen, "%s: row %zu label %g is not a class index (%s "
                            "classifies)", what, i, (double)y, self->ops->name), -1;
        if (limit && !metric && (y < 0 || y != floorf(y) || y >= (float)limit))
            return mfl_errf(err, errlen, "%s: row %zu label %g is not a class in 0..%zu", what,
                            i, (double)y, limit - 1), -1;
        if (metric && y > 1e6f)
            return mfl_errf(err, errlen, "%s: row %zu label %g is too large", what, i,
                            (double)y), -1;
    }
    return 0;
}

double mfl_meta_loss_grad(mfl_learner_t *self, const float *theta, const float *x,
                          const float *y, size_t n, float *grad)
{
    size_t mb = self->max_batch, nf = mfl_model_n_inputs(self->model);
    if (n <= mb)
        return mfl_model_loss_grad(self->model, theta, &self->loss, x, y, n, grad);
    double total = 0;
    if (grad)
        memset(grad, 0, self->n_params * sizeof(float));
    for (size_t i = 0; i < n; i += mb) {
        size_t b = n - i < mb ? n - i : mb;
        float l = mfl_model_loss_grad(self->model, theta, &self->loss, x + i * nf, y + i, b,
                                      grad ? self->chunk : NULL);
        if (isnan(l))
            return NAN;
        total += (double)l * (double)b;
        if (grad) {
            float w = (float)b / (float)n;
            for (size_t p = 0; p < self->n_params; p++)
                grad[p] += w * self->chunk[p];
        }
    }
    return total / (double)n;
}

int mfl_meta_hvp(mfl_learner_t *self, const float *theta, const float *x, const float *y,
                 size_t n, const float *v, float *hv)
{
    size_t mb = self->max_batch, nf = mfl_model_n_inputs(self->model);
    if (n <= mb)
        return mfl_model_hvp(self->model, theta, &self->loss, x, y, n, v, hv);
    memset(hv, 0, self->n_params * sizeof(float));
    for (size_t i = 0; i < n; i += mb) {
        size_t b = n - i < mb ? n - i : mb;
        if (mfl_model_hvp(self->model, theta, &self->loss, x + i * nf, y + i, b, v,
                          self->chunk))
            return -1;
        float w = (float)b / (float)n;
        for (size_t p = 0; p < self->n_params; p++)
            hv[p] += w * self->chunk[p];
    }
    return 0;
}

int mfl_meta_inner_sgd(mfl_learner_t *self, const float *theta, const mfl_dataset_t *ds,
                       int steps, float lr, const float *lr_vec, float *out, float *tape)
{
    size_t np = self->n_params;
    if (out != theta)
        memcpy(out, theta, np * sizeof(float));
    /* Plain SGD on one chunk (Reptile, FOMAML, evaluation's adaptation):
     * the fused step, no gradient vector (bit-identical to the loop below
     * with Debian's OpenBLAS here; docs/ENGINE-NUMERICS.md). MAML's tape
     * and Meta-SGD's per-parameter rates keep the gradient. */
    if (!tape && !lr_vec && ds->n <= self->max_batch) {
        for (int k = 0; k < steps; k++)
            if (!isfinite(mfl_model_sgd_step(self->model, out, &self->loss, ds->x, ds->y, ds->n,
                                             lr)))
                return -1;
        return 0;
    }
    for (int k = 0; k < steps; k++) {
        if (tape)
            memcpy(tape + (size_t)k * np, out, np * sizeof(float));
        double l = mfl_meta_loss_grad(self, out, ds->x, ds->y, ds->n, self->g);
        if (!isfinite(l))
            return -1;
        if (lr_vec)
            for (size_t p = 0; p < np; p++)
                out[p] -= lr_vec[p] * self->g[p];
        else
            for (size_t p = 0; p < np; p++)
                out[p] -= lr * self->g[p];
    }
    return 0;
}

/* One task's meta-gradient, through the algorithm table. */
static int s_task_grad(mfl_learner_t *self, const float *state, const mfl_task_t *task,
                       float *grad, double *loss, char *err, size_t errlen)
{
    return self->ops->task_grad(self, state, task, grad, loss, err, errlen);
}

int mfl_learner_meta_train(mfl_learner_t *self, const float *theta, mfl_sampler_t *sampler,
                           mfl_rng_t *rng, float *delta, mfl_train_metrics_t *metrics,
                           char *err, size_t errlen)
{
    mfl_train_metrics_t m = {0};
    if (self->ops->meta_train) {
        if (self->ops->meta_train(self, theta, sampler, rng, delta, &m, err, errlen))
            return -1;
        goto out_check;
    }
    size_t ns = self->n_state;
    memcpy(self->local, theta, ns * sizeof(float));
    if (!self->keep_outer || !self->outer_started)
        mfl_optim_reset(self->outer);
    self->outer_started = 1;
    size_t rows = 0;
    int mb = self->config.meta_batch;
    for (int step = 0; step < self->config.outer_steps; step++) {
        memset(self->acc, 0, ns * sizeof(float));
        double loss_sum = 0;
        for (int b = 0; b < mb; b++) {
            if (mfl_sampler_next(sampler, rng, &self->task))
                return mfl_errf(err, errlen, "meta-train: out of memory drawing a task"), -1;
            if (mfl_meta_check_data(self, self->task.support, "support", err, errlen) ||
                mfl_meta_check_data(self, self->task.query, "query", err, errlen))
                return -1;
            double l = NAN;
            if (s_task_grad(self, self->local, &self->task, self->acc, &l, err, errlen))
                return -1;
            if (!isfinite(l))
                return mfl_errf(err, errlen, "meta-train: %s diverged at outer step %d (query "
                                "loss %g); lower the learning rates", self->ops->name, step,
                                l), -1;
            loss_sum += l;
            rows += self->task.support->n + self->task.query->n;
            m.n_tasks++;
        }
        float inv = 1.0f / (float)mb;
        for (size_t i = 0; i < ns; i++)
            self->acc[i] *= inv;
        mfl_optim_step(self->outer, self->local, self->acc);
        if (step == 0)
            m.loss_before = loss_sum / mb;
        m.loss_after = loss_sum / mb;
    }
    for (size_t i = 0; i < ns; i++)
        delta[i] = self->local[i] - theta[i];
    const mfl_dataset_t *data = mfl_sampler_data(sampler);
    m.n_samples = data ? data->n : rows;
out_check:
    for (size_t i = 0; i < self->n_state; i++) {
        if (!isfinite(delta[i]))
            return mfl_errf(err, errlen, "meta-train: %s produced a non-finite update; lower "
                            "the learning rates", self->ops->name), -1;
    }
    if (metrics)
        *metrics = m;
    return 0;
}

int mfl_learner_train_sgd(mfl_learner_t *self, float *theta, mfl_sampler_t *sampler,
                          mfl_rng_t *rng, int steps, float lr, char *err, size_t errlen)
{
    if (steps < 0 || !isfinite(lr))
        return mfl_errf(err, errlen, "train: steps must be >= 0 and lr finite (got %d, %g)",
                        steps, (double)lr), -1;
    size_t ns = self->n_state;
    for (int step = 0; step < steps; step++) {
        if (mfl_sampler_next(sampler, rng, &self->task))
            return mfl_errf(err, errlen, "train: out of memory drawing a task"), -1;
        if (mfl_meta_check_data(self, self->task.support, "support", err, errlen) ||
            mfl_meta_check_data(self, self->task.query, "query", err, errlen))
            return -1;
        memset(self->acc, 0, ns * sizeof(float));
        double l = NAN;
        if (s_task_grad(self, theta, &self->task, self->acc, &l, err, errlen))
            return -1;
        int finite = isfinite(l);
        for (size_t i = 0; i < ns && finite; i++) {
            theta[i] -= lr * self->acc[i];
            finite = isfinite(theta[i]);
        }
        if (!finite)
            return mfl_errf(err, errlen, "train: %s diverged at step %d (loss %g); lower the "
                            "rate (%g)", self->ops->name, step, l, (double)lr), -1;
    }
    return 0;
}

/* The checks both evaluations make before adapting: steps >= 0, a finite
 * rate, support and query shaped for this model. 0, or -1 with err. */
static int s_eval_args(mfl_learner_t *self, const mfl_dataset_t *support,
                       const mfl_dataset_t *query, int steps, float lr, char *err,
                       size_t errlen)
{
    if (steps < 0)
        return mfl_errf(err, errlen, "evaluate: steps must be >= 0 (got %d)", steps), -1;
    if (!isfinite(lr))
        return mfl_errf(err, errlen, "evaluate: lr must be finite"), -1;
    if (mfl_meta_check_data(self, support, "support", err, errlen) ||
        mfl_meta_check_data(self, query, "query", err, errlen))
        return -1;
    self->kept_n = 0;
    return 0;
}

int mfl_learner_evaluate(mfl_learner_t *self, const float *theta, const mfl_dataset_t *support,
                         const mfl_dataset_t *query, int steps, float lr, float *theta_adapted,
                         mfl_eval_metrics_t *metrics, char *err, size_t errlen)
{
    if (s_eval_args(self, support, query, steps, lr, err, errlen))
        return -1;
    mfl_eval_metrics_t m;
    int rc = self->ops->evaluate(self, theta, support, query, steps, lr, theta_adapted, &m,
                                 err, errlen);
    if (rc)
        return -1;
    if (metrics)
        *metrics = m;
    return 0;
}

int mfl_learner_evaluate_in_place(mfl_learner_t *self, float *state,
                                  const mfl_dataset_t *support, const mfl_dataset_t *query,
                                  int steps, float lr, mfl_eval_metrics_t *metrics, char *err,
                                  size_t errlen)
{
    if (self->ops->evaluate != mfl_meta_evaluate_gradient)
        return mfl_learner_evaluate(self, state, support, query, steps, lr, NULL, metrics, err,
                                    errlen);
    if (s_eval_args(self, support, query, steps, lr, err, errlen))
        return -1;
    mfl_eval_metrics_t m;
    if (mfl_meta_evaluate_gradient_in_place(self, state, support, query, steps, lr, &m, err,
                                            errlen))
        return -1;
    if (metrics)
        *metrics = m;
    return 0;
}

const float *mfl_learner_query_probs(const mfl_learner_t *self, size_t *n, size_t *n_way)
{
    if (!self->kept_n)
        return NULL;
    if (n)
        *n = self->kept_n;
    if (n_way)
        *n_way = self->kept_nw;
    return self->kept.p;
}
