/* A learner: a model plus a meta-learning algorithm, seen from outside as
 * one flat float32 state vector θ (what the coordinator aggregates and the
 * wire carries) with named tensors.
 *
 * For most algorithms θ is the model's parameters. Meta-SGD appends a
 * per-parameter inner learning-rate vector ("meta_sgd.lr.<tensor>");
 * Relation networks append the relation module's parameters ("relation.*").
 *
 * Each site, each round: mfl_learner_meta_train() runs the algorithm's
 * local meta-training from θ on tasks from a sampler and returns
 * Δ = θ_local − θ. A new hospital: mfl_learner_evaluate() adapts θ on a
 * support set (k gradient steps, or prototypes / attention for metric
 * methods) and scores the query set. A learner is not thread-safe. */
#ifndef MFL_META_LEARNER_H
#define MFL_META_LEARNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "meta/task.h"
#include "nn/loss.h"
#include "nn/model.h"
#include "nn/optim.h"

typedef enum {
    MFL_ALGO_FEDAVG = 0,   /* plain local SGD on the site's rows (baseline) */
    MFL_ALGO_REPTILE = 1,
    MFL_ALGO_FOMAML = 2,
    MFL_ALGO_MAML = 3,     /* second order: Hessian-vector products */
    MFL_ALGO_META_SGD = 4,
    MFL_ALGO_PROTONET = 5,
    MFL_ALGO_MATCHING = 6,
    MFL_ALGO_RELATION = 7,
} mfl_algo_kind_t;

typedef struct {
    mfl_algo_kind_t algo;
    char model_spec[128];     /* see mfl_model_new(); for metric methods the embedding */
    mfl_loss_kind_t loss;     /* gradient methods; ProtoNets/Matching use softmax CE;
                               * Relation: mse = the paper's sigmoid + squared error
                               * to one-hot, anything else softmax CE */
    float pos_weight;         /* BCE positive weight */
    int inner_steps;          /* k: inner-loop SGD steps per task */
    float inner_lr;           /* α (Meta-SGD: initial α) */
    int meta_batch;           /* tasks per outer step */
    int outer_steps;          /* local outer steps per round */
    float outer_lr;           /* local outer learning rate (Reptile ε, MAML β) */
    mfl_optim_kind_t outer_optim;
    size_t batch_size;        /* FedAvg / fine-tuning mini-batch (0 = full) */
    int local_epochs;         /* FedAvg */
    char relation_spec[128];  /* Relation nets: relation module, e.g. "mlp:128-8-1" or
                               * the paper's conv module "relconv:32x3x3:16:8" */
} mfl_learner_config_t;

/* Fills `config` with sensible defaults for `algo` (documented in the .c). */
void mfl_learner_config_defaults(mfl_learner_config_t *config, mfl_algo_kind_t algo);

/* Parses "fedavg", "reptile", "fomaml", "maml", "meta_sgd", "protonet",
 * "matching", "relation"; -1 otherwise. */
int mfl_algo_parse(const char *text, mfl_algo_kind_t *algo);
const char *mfl_algo_name(mfl_algo_kind_t algo);

typedef struct {
    /* FedAvg: the first and the last local epoch's running loss (the
     * row-weighted mean of the mini-batch losses, each at the parameters
     * before its step; equal with one epoch; docs/ENGINE-META.md). Meta
     * methods: mean post-adaptation query loss of the meta-batch at the
     * first and at the last local outer step (so with outer_steps 1 the two
     * are equal: the outer step's effect shows in the next round's value). */
    double loss_before;
    double loss_after;
    size_t n_samples;   /* rows used (the aggregation weight) */
    size_t n_tasks;
} mfl_train_metrics_t;

typedef struct {
    double loss;
    double accuracy;
    double auroc;       /* binary only; NAN otherwise */
    double sensitivity; /* binary only */
    double specificity; /* binary only */
    double sens_at_spec90; /* binary only: sensitivity at specificity >= 0.9 (the
                            * threshold read off these rows' scores) */
    double rmse, mae, r2; /* regression (mse on one output) only; NAN otherwise */
    size_t n;
} mfl_eval_metrics_t;

typedef struct mfl_learner mfl_learner_t;

/* Builds a learner; NULL + err on a bad config (names the field). */
mfl_learner_t *mfl_learner_new(const mfl_learner_config_t *config, size_t max_batch, char *err,
                               size_t errlen);
void mfl_learner_destroy(mfl_learner_t **self_p);

const mfl_learner_config_t *mfl_learner_config(const mfl_learner_t *self);
size_t mfl_learner_n_state(const mfl_learner_t *self);
size_t mfl_learner_n_tensors(const mfl_learner_t *self);
const mfl_tensor_info_t *mfl_learner_tensor(const mfl_learner_t *self, size_t index);

/* The network's parameter count: state[0 .. n_params) are the model's
 * parameters (the embedding for metric methods); Meta-SGD's rates or the
 * relation module follow. */
size_t mfl_learner_n_params(const mfl_learner_t *self);

/* The model's outputs (gradient methods: classes of the head; metric
 * methods: the embedding's width). */
size_t mfl_learner_n_outputs(const mfl_learner_t *self);

/* True when a gradient method (Reptile, FOMAML, MAML, Meta-SGD) with
 * softmax_ce meets data with more classes (n_classes) than the model's
 * outputs: it then learns from N-way episodes, N = n_outputs, classes
 * relabelled 0..N-1 per episode (as in MAML's few-shot image benchmarks),
 * and a site evaluates on N-way tasks of its own classes. Any other
 * mismatch of classes and outputs is an error for the caller to refuse. */
bool mfl_algo_episodic_head(mfl_algo_kind_t algo, mfl_loss_kind_t loss, size_t n_outputs,
                            size_t n_classes);

/* A fresh θ from `seed`. */
void mfl_learner_init_state(const mfl_learner_t *self, float *theta, uint64_t seed);

/* One round of local meta-training from θ (borrowed) on tasks from
 * `sampler`; writes Δ (n_state floats). Returns 0, -1 on failure (err). */
int mfl_learner_meta_train(mfl_learner_t *self, const float *theta, mfl_sampler_t *sampler,
                           mfl_rng_t *rng, float *delta, mfl_train_metrics_t *metrics,
                           char *err, size_t errlen);

/* Plain SGD on θ (n_state floats, in place): `steps` steps, each
 * θ ← θ − lr · g with g the algorithm's own task gradient (the one
 * meta-training averages over a meta-batch) on the next task of `sampler`
 * drawn with `rng`. For a metric method this is episodic training on the
 * sampler's rows alone: a site's local-only model (with
 * mfl_sampler_new_class_split on its support set). steps 0 leaves θ as it
 * is. Deterministic given (θ, sampler, rng state). 0, or -1 + err (steps
 * < 0, lr not finite, data the model does not fit, out of memory, or a
 * non-finite loss or θ: the rate is too high). */
int mfl_learner_train_sgd(mfl_learner_t *self, float *theta, mfl_sampler_t *sampler,
                          mfl_rng_t *rng, int steps, float lr, char *err, size_t errlen);

/* Off (the default): every mfl_learner_meta_train call restarts the outer
 * optimiser (momentum, Adam moments, step count), as a federated round
 * should. On: its state carries over from call to call, for an offline
 * trainer that calls meta_train in blocks along one θ trajectory (θ of the
 * next call = θ + Δ of the last), so the blocks add up to one run. */
void mfl_learner_keep_outer_state(mfl_learner_t *self, int keep);

/* Adapts θ on `support` with `steps` gradient steps of learning rate `lr`
 * (metric methods ignore both) and scores `query`. If `theta_adapted` is
 * not NULL it receives the adapted state. Returns 0 or -1 (err). */
int mfl_learner_evaluate(mfl_learner_t *self, const float *theta, const mfl_dataset_t *support,
                         const mfl_dataset_t *query, int steps, float lr,
                         float *theta_adapted, mfl_eval_metrics_t *metrics, char *err,
                         size_t errlen);

/* mfl_learner_evaluate without the learner's own θ-sized copy: a gradient
 * method adapts `state` itself (it holds the adapted state afterwards), a
 * metric method leaves it as it is. The same metrics, bit for bit; one
 * n_params buffer less touched (issue 17, a site's evaluation memory). */
int mfl_learner_evaluate_in_place(mfl_learner_t *self, float *state,
                                  const mfl_dataset_t *support, const mfl_dataset_t *query,
                                  int steps, float lr, mfl_eval_metrics_t *metrics, char *err,
                                  size_t errlen);

/* The class probabilities the last successful mfl_learner_evaluate gave
 * its query rows: [n][n_way], row i for query row i, owned by the learner
 * and valid until its next call. NULL for a regression model (mse loss)
 * or when evaluate failed. Lets a caller score decisions made from the
 * probabilities (meta/treatment.h) without a second forward pass. */
const float *mfl_learner_query_probs(const mfl_learner_t *self, size_t *n, size_t *n_way);

#endif
