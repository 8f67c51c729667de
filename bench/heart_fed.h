/* The federated loop of the evaluation harness (bench_heart.c).
 *
 * Sites are production site workers (common/site/site_worker.h): each round
 * they receive a real Metafl__RoundTask and return Δ exactly as a
 * hospital's agent would, minus the socket. The server folds the Δs into
 * common/fed/aggregate.h (fixed-point weighted mean, weight = n_samples)
 * and steps θ with common/fed/server_step.h (the coordinator's own server
 * step): SGD with rate β (FedAvg β = 1, Reptile β), or FedAdam / FedAdagrad
 * with −mean(Δ) as the gradient.
 *
 * s_fed_train() is the swap point for the coordinator's round engine
 * (common/round/round_engine.h): same inputs, same θ out. S_FED_ENGINE
 * names the path that produced a result file.
 *
 * Header-only (static) because every bench/bench_*.c is its own binary. */
#ifndef MFL_BENCH_HEART_FED_H
#define MFL_BENCH_HEART_FED_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fed/aggregate.h"
#include "fed/quant.h"
#include "fed/server_step.h"
#include "heart_data.h"
#include "meta/learner.h"
#include "nn/blas.h"
#include "nn/optim.h"
#include "site/site_worker.h"

/* BENCH_UPLOAD_ENCODING=fp16|int8 asks every site for compressed updates
 * (RoundTask.update_encoding, fed/quant.h; bench/compression.sh); unset or
 * fp32: float32, as before. An unknown value stops the bench. */
static inline uint32_t s_fed_upload_encoding(void)
{
    const char *v = getenv("BENCH_UPLOAD_ENCODING");
    mfl_quant_kind_t k = MFL_QUANT_FP32;
    if (v && *v && mfl_quant_parse(v, &k) < 0) {
        fprintf(stderr, "BENCH_UPLOAD_ENCODING=%s: not fp32, fp16 or int8\n", v);
        exit(2);
    }
    return (uint32_t)k;
}

#define S_FED_ENGINE                                                                           \
    "in-process harness loop: common/site/site_worker (RoundTask -> delta, EvalTask -> "       \
    "metrics) + fed/aggregate.h weighted mean + fed/server_step.h"

#define S_MAX_BATCH 512

typedef struct {
    struct {
        const char *name;
        uint32_t inner_steps;
        float inner_lr;
        uint32_t meta_batch;
        uint32_t outer_steps;
        float outer_lr;
        uint32_t batch_size;
        uint32_t local_epochs;
        const char *outer_optim;
        const char *loss;
    } algo;
    const char *model;
    int rounds;
    /* FedAvg only: > 0 sends each site local_epochs = round(local_updates ·
     * batch_size / n_train) (at least 1), i.e. about this many mini-batch
     * updates per round at every site, as FLamby's num_updates. */
    uint32_t local_updates;
    /* 1: initial θ as torch.nn.Linear's default (every dense weight and bias
     * U(±1/√fan_in)), what FLamby's Baseline starts from; 0: the model's
     * own He-uniform init. */
    int torch_init;
    const char *server; /* "sgd" (θ += lr·mean Δ), "adam", "adagrad" */
    float server_lr;
} s_fed_spec_t;

static inline void s_fed_spec_defaults(s_fed_spec_t *sp, const char *algo, const char *model)
{
    memset(sp, 0, sizeof *sp);
    sp->algo.name = algo;
    sp->algo.loss = "bce";
    sp->algo.outer_optim = "";
    sp->model = model;
    sp->rounds = 1;
    sp->server = "sgd";
    sp->server_lr = 1.0f;
}

static inline void s_fed_pb_algo(const s_fed_spec_t *sp, uint32_t k_shot,
                                 mfl_task_algorithm_t *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", sp->algo.name);
    a->inner_steps = sp->algo.inner_steps;
    a->inner_lr = sp->algo.inner_lr;
    a->meta_batch = sp->algo.meta_batch;
    a->outer_steps = sp->algo.outer_steps;
    a->outer_lr = sp->algo.outer_lr;
    a->batch_size = sp->algo.batch_size;
    a->local_epochs = sp->algo.local_epochs;
    a->k_shot = k_shot;
    snprintf(a->loss, sizeof a->loss, "%s", sp->algo.loss);
    snprintf(a->outer_optim, sizeof a->outer_optim, "%s", sp->algo.outer_optim);
}

static inline void s_fed_nonce(uint8_t nonce[16], uint64_t seed, uint32_t round)
{
    mfl_rng_t r;
    mfl_rng_seed(&r, seed, 0x6e6f6e6365ULL + round);
    uint64_t a = mfl_rng_u64(&r), b = mfl_rng_u64(&r);
    memcpy(nonce, &a, 8);
    memcpy(nonce + 8, &b, 8);
}

/* A fresh θ for the spec's model/algorithm from `seed` (malloc'd). */
static inline int s_fed_init(const s_fed_spec_t *sp, uint64_t seed, float **theta_out,
                             size_t *n_out, char *err, size_t errlen)
{
    mfl_task_algorithm_t a;
    s_fed_pb_algo(sp, 0, &a);
    mfl_learner_config_t cfg;
    if (mfl_task_algorithm_to_learner(&a, sp->model, &cfg, err, errlen) != 0)
        return -1;
    mfl_learner_t *l = mfl_learner_new(&cfg, S_MAX_BATCH, err, errlen);
    if (!l)
        return -1;
    size_t n = mfl_learner_n_state(l);
    float *theta = malloc(n * sizeof *theta);
    if (!theta) {
        mfl_learner_destroy(&l);
        mfl_errf(err, errlen, "out of memory");
        return -1;
    }
    mfl_learner_init_state(l, theta, seed);
    if (sp->torch_init) {
        mfl_rng_t r;
        mfl_rng_seed(&r, seed, 0x746f726368ULL);
        double bound = 0;
        for (size_t t = 0; t < mfl_learner_n_tensors(l); t++) {
            const mfl_tensor_info_t *ti = mfl_learner_tensor(l, t);
            if (strncmp(ti->name, "meta_sgd", 8) == 0)
                continue;
            if (ti->ndim == 2)
                bound = 1.0 / sqrt((double)ti->shape[1]);
            if (bound > 0)
                for (size_t i = 0; i < ti->count; i++)
                    theta[ti->offset + i] = mfl_rng_range(&r, (float)-bound, (float)bound);
        }
    }
    mfl_learner_destroy(&l);
    *theta_out = theta;
    *n_out = n;
    return 0;
}

/* Trains θ from a fresh init (seed) over `rounds` rounds with every worker
 * in every round. θ is malloc'd into *theta_out. 0 or -1 + err. */
static inline int s_fed_train(const s_fed_spec_t *sp, mfl_site_worker_t **workers,
                              size_t n_workers, uint64_t seed, float **theta_out, size_t *n_out,
                              char *err, size_t errlen)
{
    float *theta = NULL, *mean = NULL;
    double *fm = NULL, *fv = NULL; /* FLamby's server moments (flamby_* only) */
    size_t n = 0;
    mfl_aggregate_t *agg = NULL;
    mfl_server_step_t *step = NULL;
    if (s_fed_init(sp, seed, &theta, &n, err, errlen) != 0)
        return -1;
    mean = malloc(n * sizeof *mean);
    agg = mfl_aggregate_new(n);
    if (!mean || !agg) {
        mfl_errf(err, errlen, "out of memory");
        goto out_fail;
    }
    /* "flamby_adam" / "flamby_adagrad": FLamby's own FedOpt server rule
     * (flamby/strategies/fed_opt.py: m ← β1·m + (1−β1)·Δ; v ← β2·v + (1−β2)·Δ²
     * or v ← v + Δ²; θ ← θ + lr·m / (√v + τ), no bias correction), kept
     * here only to explain the gap to FLamby's FedAdam row; production
     * uses fed/server_step.h. */
    int flamby = strncmp(sp->server, "flamby_", 7) == 0;
    if (flamby) {
        fm = calloc(n, sizeof *fm);
        fv = calloc(n, sizeof *fv);
        if (!fm || !fv) {
            mfl_errf(err, errlen, "out of memory");
            goto out_fail;
        }
    } else {
        mfl_optim_kind_t kind;
        if (mfl_optim_parse(sp->server, &kind) != 0) {
            mfl_errf(err, errlen, "unknown server optimiser '%s'", sp->server);
            goto out_fail;
        }
        mfl_optim_config_t oc = mfl_optim_defaults(kind, sp->server_lr);
        oc.eps = 1e-8f; /* FLamby's τ */
        step = mfl_server_step_new(&oc, n);
        if (!step) {
            mfl_errf(err, errlen, "server step: bad config or out of memory");
            goto out_fail;
        }
    }
    mfl_round_task_t task;
    memset(&task, 0, sizeof task);
    s_fed_pb_algo(sp, 0, &task.algorithm);
    snprintf(task.model_spec, sizeof task.model_spec, "%s", sp->model);
    task.seed = seed;
    task.nonce_len = 16;
    for (int r = 1; r <= sp->rounds; r++) {
        task.round = (uint32_t)r;
        s_fed_nonce(task.nonce, seed, (uint32_t)r);
        task.update_encoding = s_fed_upload_encoding();
        mfl_aggregate_reset(agg);
        for (size_t w = 0; w < n_workers; w++) {
            mfl_site_round_result_t res;
            if (sp->local_updates > 0) {
                double nt = (double)mfl_site_worker_n_train(workers[w]);
                double e = nt > 0 ? (double)sp->local_updates * sp->algo.batch_size / nt : 1;
                task.algorithm.local_epochs = e < 1.5 ? 1u : (uint32_t)(e + 0.5);
            }
            if (mfl_site_worker_round(workers[w], &task, theta, n, &res, err, errlen) != 0)
                goto out_fail;
            if (mfl_aggregate_add(agg, res.delta, (double)res.metrics.n_samples, err, errlen) !=
                0)
                goto out_fail;
        }
        if (mfl_aggregate_mean(agg, mean) != 0) {
            mfl_errf(err, errlen, "round %d: no update", r);
            goto out_fail;
        }
        if (flamby) {
            int adam = strcmp(sp->server, "flamby_adam") == 0;
            for (size_t i = 0; i < n; i++) {
                double g = mean[i];
                fm[i] = 0.9 * fm[i] + 0.1 * g;
                fv[i] = adam ? 0.999 * fv[i] + 0.001 * g * g : fv[i] + g * g;
                theta[i] += (float)(sp->server_lr * fm[i] / (sqrt(fv[i]) + 1e-8));
            }
        } else if (mfl_server_step_apply(step, theta, mean, err, errlen) != 0) {
            goto out_fail;
        }
    }
    free(mean);
    free(fm);
    free(fv);
    mfl_aggregate_destroy(&agg);
    mfl_server_step_destroy(&step);
    *theta_out = theta;
    *n_out = n;
    return 0;
out_fail:
    free(theta);
    free(mean);
    free(fm);
    free(fv);
    mfl_aggregate_destroy(&agg);
    mfl_server_step_destroy(&step);
    return -1;
}

/* Scores θ at a worker through the production EvalTask path: adapt with
 * `steps` steps of `lr` on k_shot training rows (0 = all; the subset is a
 * seeded stratified shuffle that `draw` varies), score the held-out rows.
 * *adapted gets the adapted accuracy (θ as is when steps == 0); *before
 * (optional) the unadapted one. Returns 0, 1 if the adaptation diverged
 * (non-finite loss: *adapted = 0), -1 + err on any other failure. */
/* The scaling the last engine run's setting trained with (n 0: each
 * site's own), carried by the scoring EvalTasks (s_score, heart_select.h's
 * helpers) so a worker scores with the scaling the model was trained on;
 * and whether engine runs ask for federated standardisation (bench_heart
 * select --standardize federated; off for every other bench). */
static mfl_task_scaling_t s_fed_scaling;
static bool s_fed_federated;

static inline int s_score(mfl_site_worker_t *w, const s_fed_spec_t *sp, const float *theta,
                          size_t n, int steps, float lr, uint32_t k_shot, uint32_t draw,
                          double *adapted, double *before, char *err, size_t errlen)
{
    mfl_eval_task_t task;
    memset(&task, 0, sizeof task);
    s_fed_pb_algo(sp, k_shot, &task.algorithm);
    s_fed_nonce(task.nonce, 0xe7a1u, draw);
    task.nonce_len = 16;
    task.round = draw;
    snprintf(task.model_spec, sizeof task.model_spec, "%s", sp->model);
    task.adapt_steps = (uint32_t)steps;
    task.adapt_lr = lr;
    task.scaling = s_fed_scaling;
    mfl_site_eval_result_t res;
    if (mfl_site_worker_eval(w, &task, theta, n, &res, err, errlen) != 0) {
        /* A diverged adaptation is a result, not a harness failure: the
         * model is unusable, so it scores 0 and the caller counts it. */
        if (strstr(err, "diverged")) {
            *adapted = 0.0;
            if (before)
                *before = NAN;
            return 1;
        }
        return -1;
    }
    *adapted = steps > 0 ? res.adapted.accuracy : res.before.accuracy;
    if (before)
        *before = res.before.accuracy;
    return 0;
}

/* The sites as workers. */
typedef struct {
    mfl_site_worker_t *workers[S_HEART_SITES]; /* own-site standardisation */
    mfl_site_worker_t *train_worker;           /* pooled: all training rows */
    mfl_site_worker_t *eval[S_HEART_SITES];    /* pooled stats, each site's test rows */
} s_fleet_t;

static inline void s_fleet_free(s_fleet_t *f)
{
    for (int s = 0; s < S_HEART_SITES; s++) {
        mfl_site_worker_destroy(&f->workers[s]);
        mfl_site_worker_destroy(&f->eval[s]);
    }
    mfl_site_worker_destroy(&f->train_worker);
}

static inline mfl_site_worker_t *s_worker(const char *id, const mfl_dataset_t *train,
                                          const mfl_dataset_t *test, char *err, size_t errlen)
{
    mfl_dataset_t *tr = s_heart_copy(train);
    mfl_dataset_t *te = test ? s_heart_copy(test) : NULL;
    if (!tr || (test && !te)) {
        mfl_dataset_destroy(&tr);
        mfl_dataset_destroy(&te);
        mfl_errf(err, errlen, "out of memory");
        return NULL;
    }
    return mfl_site_worker_new_from_data(id, tr, te, NULL, err, errlen);
}

/* Workers for the four sites, each standardised with its own statistics. */
static inline int s_fleet_own(s_fleet_t *f, const s_heart_t *h, int unused, char *err,
                              size_t errlen)
{
    (void)unused;
    for (int s = 0; s < S_HEART_SITES; s++) {
        f->workers[s] = s_worker(s_heart_site_names[s], h->train[s], h->test[s], err, errlen);
        if (!f->workers[s])
            return -1;
    }
    return 0;
}

/* The pooled training worker and the four pooled-statistics test workers. */
static inline int s_fleet_pooled(s_fleet_t *f, const s_heart_t *h, char *err, size_t errlen)
{
    f->train_worker = s_worker("pooled", h->ptrain, NULL, err, errlen);
    if (!f->train_worker)
        return -1;
    for (int s = 0; s < S_HEART_SITES; s++) {
        f->eval[s] = s_worker(s_heart_site_names[s], h->ptrain, h->ptest[s], err, errlen);
        if (!f->eval[s])
            return -1;
    }
    return 0;
}

#endif
