/* An offline (centralised) meta-learning experiment: the data, how tasks
 * are drawn, the learner, the training budget and the evaluation protocol,
 * given as a plain spec (mfl_experiment_spec_t). The YAML file that
 * describes one (configs/train-*.yaml, keys in docs/ENGINE-META.md) is read
 * by the config layer (config/experiment_config.h: mfl_experiment_load);
 * this module knows no YAML. `metafl train` / `metafl eval` and the meta
 * benchmarks run experiments.
 *
 * Kinds of experiment (data.source):
 *   sinusoid       regression tasks generated on the fly;
 *   fashion_mnist  N-way K-shot episodes; meta-train classes drawn from the
 *                  training file, meta-test classes from the t10k file (the
 *                  two class lists must be disjoint);
 *   heart          each UCI Heart Disease hospital is a task (site-as-task
 *                  on its FLamby training rows); evaluation adapts on each
 *                  site's training rows and scores its test rows. */
#ifndef MFL_META_EXPERIMENT_H
#define MFL_META_EXPERIMENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "data/heart.h"
#include "meta/learner.h"

#define MFL_EXP_MAX_SITES 8
#define MFL_EXP_MAX_CLASSES 64

typedef enum {
    MFL_EXP_SINUSOID = 0,
    MFL_EXP_EPISODES = 1,
    MFL_EXP_SITES = 2,
} mfl_exp_kind_t;

/* What an experiment is, as the config layer reads it. Plain data. */
typedef struct {
    char path[512];                  /* its source, named in errors */
    uint64_t seed;
    mfl_exp_kind_t kind;
    mfl_learner_config_t learner;
    size_t max_batch;
    size_t n_way, k_shot, q_query;
    size_t support_size, query_size; /* heart: site-as-task batch sizes */
    size_t train_classes[MFL_EXP_MAX_CLASSES], n_train_classes;
    size_t test_classes[MFL_EXP_MAX_CLASSES], n_test_classes;
    int train_steps, log_every;
    int eval_tasks, eval_steps;
    float eval_lr;
    /* fashion_mnist: the IDX directory ("" = the Debian package's) and the
     * training rows kept (0 = all) */
    char data_dir[512];
    size_t max_train_rows;
    /* heart: the FLamby shared directory ("" = the default), the
     * standardisation, the sites (n_sites 0 = all four) */
    char heart_shared[512];
    mfl_heart_std_t standardize;
    size_t n_sites;
    char site_name[MFL_EXP_MAX_SITES][32];
} mfl_experiment_spec_t;

typedef struct {
    char path[512];
    uint64_t seed;
    mfl_exp_kind_t kind;
    mfl_learner_config_t learner;
    size_t max_batch;
    /* tasks */
    size_t n_way, k_shot, q_query;
    size_t support_size, query_size; /* heart: site-as-task batch sizes */
    size_t train_classes[MFL_EXP_MAX_CLASSES], n_train_classes;
    size_t test_classes[MFL_EXP_MAX_CLASSES], n_test_classes;
    /* budget */
    int train_steps; /* outer steps in total (per site for heart) */
    int log_every;   /* outer steps per block (one progress line) */
    /* evaluation */
    int eval_tasks;
    int eval_steps;
    float eval_lr;
    /* data, owned */
    mfl_dataset_t *train_data, *test_data; /* episodes */
    size_t n_sites;
    char site_name[MFL_EXP_MAX_SITES][32];
    mfl_dataset_t *site_train[MFL_EXP_MAX_SITES], *site_test[MFL_EXP_MAX_SITES];
} mfl_experiment_t;

/* Builds the experiment `spec` describes (borrowed) and loads its data.
 * NULL + err naming the data file on bad data. */
mfl_experiment_t *mfl_experiment_new(const mfl_experiment_spec_t *spec, char *err,
                                     size_t errlen);
void mfl_experiment_destroy(mfl_experiment_t **self_p);

/* A learner for the experiment (caller destroys); NULL + err. */
mfl_learner_t *mfl_experiment_learner(const mfl_experiment_t *self, char *err, size_t errlen);

typedef struct {
    int step;          /* outer steps done */
    double meta_loss;  /* mean task loss over the block */
    double seconds;    /* since training started */
} mfl_exp_progress_t;

/* Meta-trains θ (n_state floats, in place) for train_steps outer steps in
 * blocks of log_every: each block is one mfl_learner_meta_train call per
 * sampler (heart: one per site, Δs averaged with weights n_i, as one
 * federated round with server rate 1), then θ += Δ. With one sampler the
 * outer optimiser's state carries across blocks (the blocks are one run;
 * log_every only sets the reporting interval); with sites it restarts
 * every block, like a federated round. After each block,
 * if `progress` is not NULL a line goes to it; if `log` is not NULL the
 * block's record is appended (it must hold ceil(steps / log_every)
 * entries) and *n_log counts them. Returns 0 or -1 with err. */
int mfl_experiment_train(const mfl_experiment_t *self, mfl_learner_t *learner, float *theta,
                         FILE *progress, mfl_exp_progress_t *log, size_t *n_log, char *err,
                         size_t errlen);

typedef struct {
    mfl_eval_metrics_t mean; /* mean over tasks (sinusoid, episodes) or sites */
    double accuracy_ci95;    /* episodes: half-width of the 95% interval */
    size_t n_tasks;
    size_t n_failed;         /* adaptations that diverged (scored as failures) */
    size_t n_sites;
    mfl_eval_metrics_t site[MFL_EXP_MAX_SITES];
} mfl_exp_eval_t;

/* Evaluates θ: eval_tasks held-out tasks (fixed stream from the seed, so
 * every method sees the same tasks) or every site; `steps` SGD steps of
 * `lr` on each support set (metric methods ignore both). A diverged
 * adaptation counts as accuracy 0 (loss NAN, skipped in the mean loss)
 * and in n_failed. Returns 0 or -1 with err. */
int mfl_experiment_evaluate(const mfl_experiment_t *self, mfl_learner_t *learner,
                            const float *theta, int steps, float lr, mfl_exp_eval_t *out,
                            char *err, size_t errlen);

/* Floor on a metric method's scratch training steps: the site agent's
 * default eval.local_only_steps, so `metafl eval --scratch` and a site's
 * local-only column train alike. */
#define MFL_EXP_SCRATCH_METRIC_STEPS 100

/* The from-scratch baseline on the same held-out tasks (or sites) as
 * mfl_experiment_evaluate, from `theta` (borrowed; a fresh init). Gradient
 * methods: the same as mfl_experiment_evaluate (`steps` SGD steps of `lr`
 * on each support set). Metric methods (ProtoNets, Matching, Relation),
 * whose evaluation takes no steps: a copy of θ is first trained on each
 * support set alone, like a site's local-only model
 * (mfl_learner_train_sgd on mfl_sampler_new_class_split episodes:
 * max(steps, MFL_EXP_SCRATCH_METRIC_STEPS) steps of `lr`, a seeded stream
 * of its own), then scored; a support with one row per class gives no
 * episode and is scored untrained. A diverged training counts as a
 * failure, as an adaptation does. 0 or -1 with err. */
int mfl_experiment_evaluate_scratch(const mfl_experiment_t *self, mfl_learner_t *learner,
                                    const float *theta, int steps, float lr,
                                    mfl_exp_eval_t *out, char *err, size_t errlen);

/* Writes the evaluation as a JSON object (no trailing newline). */
void mfl_experiment_eval_json(const mfl_experiment_t *self, const mfl_exp_eval_t *ev,
                              FILE *out);

#endif
