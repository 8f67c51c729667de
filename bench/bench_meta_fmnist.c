/* bench_meta_fmnist: 5-way 5-shot Fashion-MNIST on held-out classes, every
 * meta-learner against training from scratch on the support set, with the
 * experiment of configs/train-fmnist.yaml (its data, class split and
 * episodes; this file only swaps the learner). One table: mean query
 * accuracy over the same held-out episodes for every method, its 95%
 * interval, the difference to the from-scratch reference measured in the
 * same run, and training time. Methods that adapt by SGD (scratch, MAML,
 * FOMAML, Reptile, Meta-SGD) are scored after k = 10 (their training
 * horizon is 5) and k = 50 steps; the reference is scratch at k = 50.
 *
 *   bench_meta_fmnist [--quick] [--out FILE] [--config FILE]
 * Writes ${BENCH_RESULTS:-bench/results}/meta_fmnist.json by default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta/experiment.h"
#include "nn/blas.h"

#define HEAD "mlp:784-128-64-5"
#define EMBED "mlp:784-128-64"

typedef struct {
    const char *name;
    mfl_algo_kind_t algo;
    const char *model;
    int inner_steps, meta_batch;
    float outer_lr;
    mfl_optim_kind_t optim;
    int train; /* 0: evaluate from a fresh init (training from scratch) */
    int gradient; /* adapts with SGD at test time: scored at k = 10 and k = 50 */
} s_method_t;

static const s_method_t s_methods[] = {
    {"scratch", MFL_ALGO_MAML, HEAD, 5, 4, 0.001f, MFL_OPTIM_ADAM, 0, 1},
    {"MAML", MFL_ALGO_MAML, HEAD, 5, 4, 0.001f, MFL_OPTIM_ADAM, 1, 1},
    {"FOMAML", MFL_ALGO_FOMAML, HEAD, 5, 4, 0.001f, MFL_OPTIM_ADAM, 1, 1},
    {"Reptile", MFL_ALGO_REPTILE, HEAD, 5, 4, 0.1f, MFL_OPTIM_SGD, 1, 1},
    {"Meta-SGD", MFL_ALGO_META_SGD, HEAD, 5, 4, 0.001f, MFL_OPTIM_ADAM, 1, 1},
    {"ProtoNets", MFL_ALGO_PROTONET, EMBED, 0, 1, 0.001f, MFL_OPTIM_ADAM, 1, 0},
    {"Matching nets", MFL_ALGO_MATCHING, EMBED, 0, 1, 0.001f, MFL_OPTIM_ADAM, 1, 0},
    {"Relation nets", MFL_ALGO_RELATION, EMBED, 0, 1, 0.001f, MFL_OPTIM_ADAM, 1, 0},
};
#define N_METHODS (sizeof(s_methods) / sizeof(s_methods[0]))

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int quick = getenv("BENCH_QUICK") && strcmp(getenv("BENCH_QUICK"), "1") == 0;
    const char *out = NULL, *config = "configs/train-fmnist.yaml";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else {
            fprintf(stderr, "usage: bench_meta_fmnist [--quick] [--out FILE] [--config FILE]\n");
            return 2;
        }
    }
    char path[1024];
    if (!out) {
        const char *dir = getenv("BENCH_RESULTS") ? getenv("BENCH_RESULTS") : "bench/results";
        snprintf(path, sizeof(path), "%s/meta_fmnist.json", dir);
        out = path;
    }
    mfl_blas_set_threads(1);
    char err[1024];
    mfl_experiment_t *exp = mfl_experiment_load(config, err, sizeof(err));
    if (!exp) {
        fprintf(stderr, "bench_meta_fmnist: %s\n", err);
        return 1;
    }
    exp->train_steps = quick ? 150 : 2000;
    exp->log_every = quick ? 50 : 250;
    exp->eval_tasks = quick ? 100 : 300;
    const float lr = 0.05f;
    struct {
        double acc, ci, loss, seconds, acc10, ci10;
        size_t failed, n_state;
    } r[N_METHODS];
    printf("Fashion-MNIST %zu-way %zu-shot, %zu query/class, held-out classes, %d episodes, "
           "%d outer steps per method\n",
           exp->n_way, exp->k_shot, exp->q_query, exp->eval_tasks, exp->train_steps);
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        mfl_learner_config_defaults(&exp->learner, m->algo);
        snprintf(exp->learner.model_spec, sizeof(exp->learner.model_spec), "%s", m->model);
        exp->learner.loss = MFL_LOSS_SOFTMAX_CE;
        exp->learner.inner_steps = m->inner_steps;
        exp->learner.inner_lr = lr;
        exp->learner.meta_batch = m->meta_batch;
        exp->learner.outer_lr = m->outer_lr;
        exp->learner.outer_optim = m->optim;
        mfl_learner_t *l = mfl_experiment_learner(exp, err, sizeof(err));
        if (!l) {
            fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
            return 1;
        }
        size_t ns = mfl_learner_n_state(l);
        float *theta = malloc(ns * sizeof(float));
        mfl_learner_init_state(l, theta, exp->seed);
        double t0 = s_now();
        if (m->train && mfl_experiment_train(exp, l, theta, NULL, NULL, NULL, err, sizeof(err))) {
            fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
            return 1;
        }
        r[i].seconds = s_now() - t0;
        mfl_exp_eval_t ev;
        r[i].acc10 = r[i].ci10 = NAN;
        if (m->gradient) {
            if (mfl_experiment_evaluate(exp, l, theta, 10, lr, &ev, err, sizeof(err))) {
                fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
                return 1;
            }
            r[i].acc10 = ev.mean.accuracy;
            r[i].ci10 = ev.accuracy_ci95;
        }
        if (mfl_experiment_evaluate(exp, l, theta, m->gradient ? 50 : 0, lr, &ev, err,
                                    sizeof(err))) {
            fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
            return 1;
        }
        r[i].acc = ev.mean.accuracy;
        r[i].ci = ev.accuracy_ci95;
        r[i].loss = ev.mean.loss;
        r[i].failed = ev.n_failed;
        r[i].n_state = ns;
        fprintf(stderr, "  %s: accuracy %.4f (%.1f s)\n", m->name, r[i].acc, r[i].seconds);
        free(theta);
        mfl_learner_destroy(&l);
    }
    printf("%-14s %-18s %7s %14s %14s %10s %8s %8s\n", "method", "model", "params",
           "acc k=10 ±95%", "acc k=50/metric", "vs scratch", "train s", "ms/step");
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        char a10[32] = "-";
        if (m->gradient)
            snprintf(a10, sizeof(a10), "%.4f ±%.4f", r[i].acc10, r[i].ci10);
        printf("%-14s %-18s %7zu %14s %7.4f ±%.4f %+10.4f %8.1f %8.2f\n", m->name, m->model,
               r[i].n_state, a10, r[i].acc, r[i].ci, r[i].acc - r[0].acc, r[i].seconds,
               m->train ? 1e3 * r[i].seconds / exp->train_steps : 0.0);
    }
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "bench_meta_fmnist: cannot write %s\n", out);
        return 1;
    }
    fprintf(f, "{\"benchmark\":\"meta_fmnist\",\"quick\":%s,\"config\":\"%s\",\"n_way\":%zu,"
               "\"k_shot\":%zu,\"q_query\":%zu,\"eval_tasks\":%d,\"outer_steps\":%d,"
               "\"test_lr\":%g,\"train_classes\":[",
            quick ? "true" : "false", config, exp->n_way, exp->k_shot, exp->q_query,
            exp->eval_tasks, exp->train_steps, (double)lr);
    for (size_t i = 0; i < exp->n_train_classes; i++)
        fprintf(f, "%s%zu", i ? "," : "", exp->train_classes[i]);
    fprintf(f, "],\"test_classes\":[");
    for (size_t i = 0; i < exp->n_test_classes; i++)
        fprintf(f, "%s%zu", i ? "," : "", exp->test_classes[i]);
    fprintf(f, "],\"rows\":[");
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        fprintf(f, "%s{\"method\":\"%s\",\"model\":\"%s\",\"n_state\":%zu,\"trained\":%s,"
                   "\"eval_steps\":%d,\"accuracy\":%.5f,\"ci95\":%.5f,\"loss\":%.5f,"
                   "\"vs_scratch\":%.5f,\"failed\":%zu,\"train_seconds\":%.2f",
                i ? "," : "", m->name, m->model, r[i].n_state, m->train ? "true" : "false",
                m->gradient ? 50 : 0, r[i].acc, r[i].ci, isfinite(r[i].loss) ? r[i].loss : -1.0,
                r[i].acc - r[0].acc, r[i].failed, r[i].seconds);
        if (m->gradient)
            fprintf(f, ",\"accuracy_k10\":%.5f,\"ci95_k10\":%.5f", r[i].acc10, r[i].ci10);
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
    fclose(f);
    printf("wrote %s\n", out);
    mfl_experiment_destroy(&exp);
    return 0;
}
