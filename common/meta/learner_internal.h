/* Inside the learner: the shared struct, the per-algorithm vtable and the
 * helpers the algorithm modules (algo_*.c) share. Not a public contract:
 * only common/meta/ includes it. */
#ifndef MFL_META_LEARNER_INTERNAL_H
#define MFL_META_LEARNER_INTERNAL_H

#include <stddef.h>

#include "meta/learner.h"

/* A float buffer that only grows, so steady-state loops never malloc. */
typedef struct {
    float *p;
    size_t cap;
} mfl_meta_buf_t;

/* Room for n floats (contents not kept on growth); NULL on OOM. */
float *mfl_meta_buf(mfl_meta_buf_t *buf, size_t n);
void mfl_meta_buf_free(mfl_meta_buf_t *buf);

typedef struct mfl_algo_ops mfl_algo_ops_t;

struct mfl_learner {
    mfl_learner_config_t config;
    const mfl_algo_ops_t *ops;
    mfl_model_t *model;    /* the network (the embedding for metric methods) */
    mfl_model_t *relation; /* Relation nets only */
    mfl_loss_t loss;       /* gradient methods */
    size_t n_params;       /* model parameters: state[0 .. n_params) */
    size_t n_extra;        /* Meta-SGD rates or relation parameters after them */
    size_t n_state;
    size_t max_batch;
    size_t n_out;
    mfl_tensor_info_t *tensors;
    size_t n_tensors;
    mfl_optim_t *outer;    /* local outer optimiser over the state */
    int keep_outer;        /* mfl_learner_keep_outer_state */
    int outer_started;     /* the optimiser has state from an earlier call */
    /* Scratch sized at construction. */
    float *local;  /* [n_state] θ_local during meta-training */
    float *acc;    /* [n_state] meta-gradient accumulated over a meta-batch */
    float *tgrad;  /* [n_state] one task's meta-gradient */
    float *fast;   /* [n_params] adapted weights */
    float *g;      /* [n_params] */
    float *g2;     /* [n_params] */
    float *hv;     /* [n_params] */
    float *chunk;  /* [n_params] gradient of one chunk */
    float *tape;   /* [(inner_steps + 1) * n_params] θ_0 .. θ_K for second order */
    /* Grown on demand. */
    mfl_meta_buf_t out, dout, emb, demb, probs, logits, dlogits, pairs, dpairs, xb, yb;
    mfl_meta_buf_t rout, rdout, protos, dprotos, counts;
    /* The last evaluate's query class probabilities [kept_n][kept_nw]
     * (mfl_learner_query_probs); kept_n 0 = none (regression). */
    mfl_meta_buf_t kept;
    size_t kept_n, kept_nw;
    mfl_task_t task;
};

/* A metric head: class logits for query embeddings given support
 * embeddings (ProtoNets, Matching, Relation). Embeddings are [n][d] with
 * d = the model's output width; `state` is the whole state (the relation
 * module reads its parameters after the model's). backward is called right
 * after logits on the same inputs; it ADDS dL/dEs, dL/dEq and the head's
 * own parameter gradient (into grad_state, the whole state's gradient). */
typedef struct {
    int (*logits)(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                  size_t ns, const float *eq, size_t nq, size_t nw, float *logits);
    int (*backward)(mfl_learner_t *self, const float *state, const float *es, const float *ys,
                    size_t ns, const float *eq, size_t nq, size_t nw, const float *dlogits,
                    float *des, float *deq, float *grad_state);
    /* The episode loss of logits[nq][nw] against class indices y, with
     * dlogits (nullable) its gradient; NULL means softmax cross-entropy.
     * Training and evaluation both use it, so reported losses match. */
    double (*loss)(const mfl_learner_t *self, const float *logits, const float *y, size_t nq,
                   size_t nw, float *dlogits);
} mfl_metric_head_t;

/* One algorithm. task_grad ADDS one task's meta-gradient (a descent
 * direction's negative: the outer optimiser steps against it) into
 * grad[n_state] and returns the task's query loss after adaptation in
 * *loss (NAN-free on success). meta_train, if set, replaces the generic
 * outer loop (FedAvg). evaluate adapts and scores. Every algorithm sets
 * task_grad and evaluate; the learner calls only these (never an algo_*.c
 * directly). A metric method's entries call the shared episodic step and
 * evaluation of algo_metric.c with its head, which `metric` also names. */
struct mfl_algo_ops {
    const char *name;
    const mfl_metric_head_t *metric;
    int (*task_grad)(mfl_learner_t *self, const float *state, const mfl_task_t *task,
                     float *grad, double *loss, char *err, size_t errlen);
    int (*meta_train)(mfl_learner_t *self, const float *theta, mfl_sampler_t *sampler,
                      mfl_rng_t *rng, float *delta, mfl_train_metrics_t *metrics, char *err,
                      size_t errlen);
    int (*evaluate)(mfl_learner_t *self, const float *theta, const mfl_dataset_t *support,
                    const mfl_dataset_t *query, int steps, float lr, float *theta_adapted,
                    mfl_eval_metrics_t *metrics, char *err, size_t errlen);
};

extern const mfl_algo_ops_t mfl_algo_reptile;
extern const mfl_algo_ops_t mfl_algo_fomaml;
extern const mfl_algo_ops_t mfl_algo_maml;
extern const mfl_algo_ops_t mfl_algo_meta_sgd;
extern const mfl_algo_ops_t mfl_algo_fedavg;
extern const mfl_algo_ops_t mfl_algo_protonet;
extern const mfl_algo_ops_t mfl_algo_matching;
extern const mfl_algo_ops_t mfl_algo_relation;


/* The shared episodic training step and evaluation of metric methods. */
int mfl_meta_metric_task_grad(mfl_learner_t *self, const mfl_metric_head_t *head,
                              const float *state, const mfl_task_t *task, float *grad,
                              double *loss, char *err, size_t errlen);
int mfl_meta_metric_evaluate(mfl_learner_t *self, const mfl_metric_head_t *head,
                             const float *state, const mfl_dataset_t *support,
                             const mfl_dataset_t *query, float *theta_adapted,
                             mfl_eval_metrics_t *metrics, char *err, size_t errlen);

/* Defines a metric method's two algorithm-table entries, s_task_grad and
 * s_evaluate, as the shared step and evaluation above with `head` (a
 * file-local mfl_metric_head_t), so the learner calls every algorithm
 * through the table alike and each method states only its head. Metric
 * methods adapt by their support embeddings, so evaluate ignores steps and
 * lr. */
#define MFL_METRIC_ALGO_ENTRIES(head)                                                         \
    static int s_task_grad(mfl_learner_t *self, const float *state, const mfl_task_t *task,   \
                           float *grad, double *loss, char *err, size_t errlen)               \
    {                                                                                         \
        return mfl_meta_metric_task_grad(self, &(head), state, task, grad, loss, err, errlen); \
    }                                                                                         \
    static int s_evaluate(mfl_learner_t *self, const float *theta,                            \
                          const mfl_dataset_t *support, const mfl_dataset_t *query,           \
                          int steps, float lr, float *theta_adapted,                          \
                          mfl_eval_metrics_t *metrics, char *err, size_t errlen)              \
    {                                                                                         \
        (void)steps;                                                                          \
        (void)lr;                                                                             \
        return mfl_meta_metric_evaluate(self, &(head), theta, support, query, theta_adapted,  \
                                        metrics, err, errlen);                                \
    }

/* Class means of support embeddings into self->protos ([nw][d]) and class
 * counts into self->counts ([nw]); 0 or -1 on OOM. Shared by ProtoNets
 * and Relation nets. */
int mfl_meta_class_means(mfl_learner_t *self, const float *es, const float *ys, size_t ns,
                         size_t nw);
/* A class without support rows cannot be predicted: its logit becomes the
 * row's lowest real logit − 30 (P ≈ 1e-13; a query of that class then
 * costs ~30 nats, finite, instead of an absurd or infinite loss). Its
 * gradient is ignored by the heads' backward passes. */
void mfl_meta_mask_empty(const float *counts, float *logits, size_t nq, size_t nw);
/* des[s] += dprotos[ys] / count[ys]: the class mean's backward. */
void mfl_meta_class_means_backward(mfl_learner_t *self, const float *ys, size_t ns,
                                   const float *dprotos, float *des);

/* Checks a data set against the model (features, label range); -1 + err. */
int mfl_meta_check_data(const mfl_learner_t *self, const mfl_dataset_t *ds, const char *what,
                        char *err, size_t errlen);

/* Mean loss over all n rows (chunked by max_batch); if grad is not NULL it
 * is OVERWRITTEN with the mean gradient. NAN on failure. */
double mfl_meta_loss_grad(mfl_learner_t *self, const float *theta, const float *x,
                          const float *y, size_t n, float *grad);

/* hv ← ∇²L(θ)·v of the mean loss over all n rows. 0 or -1. */
int mfl_meta_hvp(mfl_learner_t *self, const float *theta, const float *x, const float *y,
                 size_t n, const float *v, float *hv);

/* `steps` full-batch SGD steps on `ds` from θ into out (may alias
 * nothing); per-parameter rates if lr_vec, else lr. If tape is not NULL,
 * θ_0 .. θ_{steps-1} are stored in it (steps × n_params). 0 or -1.
 * self->g holds the last step's gradient only with a tape, lr_vec or more
 * than max_batch rows; otherwise the fused mfl_model_sgd_step runs and
 * leaves self->g alone. */
int mfl_meta_inner_sgd(mfl_learner_t *self, const float *theta, const mfl_dataset_t *ds,
                       int steps, float lr, const float *lr_vec, float *out, float *tape);

/* The generic evaluation of gradient methods: adapt on support, score query. */
int mfl_meta_evaluate_gradient(mfl_learner_t *self, const float *theta,
                               const mfl_dataset_t *support, const mfl_dataset_t *query,
                               int steps, float lr, float *theta_adapted,
                               mfl_eval_metrics_t *metrics, char *err, size_t errlen);

/* mfl_meta_evaluate_gradient adapting `state` itself (no copy in `fast`):
 * the same metrics; state holds the adapted parameters afterwards. */
int mfl_meta_evaluate_gradient_in_place(mfl_learner_t *self, float *state,
                                        const mfl_dataset_t *support,
                                        const mfl_dataset_t *query, int steps, float lr,
                                        mfl_eval_metrics_t *metrics, char *err, size_t errlen);

/* Scores θ (model params) on `query` into metrics (loss, accuracy, AUROC,
 * sensitivity, specificity as the loss kind allows). 0 or -1. */
int mfl_meta_score(mfl_learner_t *self, const float *theta, const mfl_dataset_t *query,
                   mfl_eval_metrics_t *metrics, char *err, size_t errlen);

/* Fills metrics from class probabilities probs[n][n_way] (scratch: it is
 * overwritten). */
void mfl_meta_metrics_from_probs(float *probs, const float *label, size_t n,
                                 size_t n_way, double loss, mfl_eval_metrics_t *metrics);

/* Keeps a copy of probs[n][n_way] for mfl_learner_query_probs (n 0 forgets
 * the last one). 0, or -1 out of memory (nothing kept). */
int mfl_meta_keep_probs(mfl_learner_t *self, const float *probs, size_t n, size_t n_way);

/* Number of classes a labelled set uses: its n_classes, or max label + 1. */
size_t mfl_meta_n_way(const mfl_dataset_t *ds);

#endif
