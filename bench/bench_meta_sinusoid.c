/* bench_meta_sinusoid: the MAML sinusoid benchmark. Query MSE on 100
 * held-out sine tasks after k = 1, 5, 10 SGD steps on 10 support points,
 * from a random init, a jointly pre-trained init (FedAvg over one task per
 * epoch: it learns the mean curve), and inits meta-learned by MAML, FOMAML
 * and Reptile with the same number of outer steps. The jointly pre-trained
 * init is the reference: ratios are MSE / MSE(pretrained) at k = 10. The
 * random init (nn's He-uniform) diverges on some tasks at the shared test
 * rate, so it is also shown at a 10× smaller rate.
 *
 *   bench_meta_sinusoid [--quick] [--out FILE]
 * Writes ${BENCH_RESULTS:-bench/results}/meta_sinusoid.json by default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta/learner.h"
#include "nn/blas.h"
#include "bench_common.h"

#define SPEC "mlp:1-40-40-1"
#define LR 0.005f
#define N_EVAL 100

static const int s_ks[] = {1, 5, 10};

static mfl_learner_t *s_new(mfl_algo_kind_t algo, int inner_steps, float outer_lr,
                            int meta_batch, int outer_steps, int epochs)
{
    mfl_learner_config_t c;
    mfl_learner_config_defaults(&c, algo);
    strcpy(c.model_spec, SPEC);
    c.loss = MFL_LOSS_MSE;
    c.inner_steps = inner_steps;
    c.inner_lr = LR;
    c.outer_lr = outer_lr;
    c.meta_batch = meta_batch;
    c.outer_steps = outer_steps;
    c.local_epochs = epochs;
    char err[256];
    mfl_learner_t *l = mfl_learner_new(&c, 128, err, sizeof(err));
    if (!l) {
        fprintf(stderr, "bench_meta_sinusoid: %s\n", err);
        exit(1);
    }
    return l;
}

/* Trains θ in blocks of 1000 outer steps (one meta_train call each). */
static double s_train(mfl_learner_t *l, float *theta, int blocks)
{
    mfl_sampler_t *s = mfl_sampler_new_sinusoid(10, 10);
    size_t ns = mfl_learner_n_state(l);
    float *delta = malloc(ns * sizeof(float));
    char err[256];
    mfl_learner_keep_outer_state(l, 1); /* the blocks are one run */
    double t0 = s_bench_now();
    for (int b = 0; b < blocks; b++) {
        mfl_rng_t rng;
        mfl_rng_seed(&rng, 1, (uint64_t)b);
        if (mfl_learner_meta_train(l, theta, s, &rng, delta, NULL, err, sizeof(err))) {
            fprintf(stderr, "bench_meta_sinusoid: %s\n", err);
            exit(1);
        }
        for (size_t i = 0; i < ns; i++)
            theta[i] += delta[i];
    }
    double dt = s_bench_now() - t0;
    free(delta);
    mfl_sampler_destroy(&s);
    return dt;
}

static void s_eval(mfl_learner_t *l, const float *theta, float lr, double *mse)
{
    mfl_sampler_t *s = mfl_sampler_new_sinusoid(10, 100);
    for (size_t k = 0; k < 3; k++) {
        mfl_rng_t rng;
        mfl_rng_seed(&rng, 999, 5); /* the same tasks for every method and k */
        mfl_task_t t = {0};
        double sum = 0;
        char err[256];
        for (int i = 0; i < N_EVAL; i++) {
            mfl_eval_metrics_t m;
            mfl_sampler_next(s, &rng, &t);
            if (mfl_learner_evaluate(l, theta, t.support, t.query, s_ks[k], lr, NULL, &m, err,
                                     sizeof(err)))
                m.loss = NAN;
            sum += m.loss;
        }
        mse[k] = sum / N_EVAL;
        mfl_task_clear(&t);
    }
    mfl_sampler_destroy(&s);
}

int main(int argc, char **argv)
{
    int quick;
    const char *out;
    char path[1024];
    if (s_bench_args(argc, argv, "bench_meta_sinusoid", &quick, &out))
        return 2;
    out = s_bench_out_path(out, path, sizeof(path), "meta_sinusoid.json");
    mfl_blas_set_threads(1);
    int blocks = quick ? 2 : 20; /* × 1000 outer steps */
    struct {
        const char *name;
        mfl_learner_t *l;
        float *theta;
        double seconds, mse[3];
        float lr;
    } m[6] = {{"random init", NULL, NULL, 0, {0}, LR},
              {"random init", NULL, NULL, 0, {0}, LR / 10},
              {"pretrained (joint)", NULL, NULL, 0, {0}, LR},
              {"MAML", NULL, NULL, 0, {0}, LR},
              {"FOMAML", NULL, NULL, 0, {0}, LR},
              {"Reptile", NULL, NULL, 0, {0}, LR}};
    m[0].l = s_new(MFL_ALGO_MAML, 1, 0.001f, 10, 1000, 1);
    /* Joint pre-training sees as many tasks as MAML: 10 per outer step. */
    m[1].l = s_new(MFL_ALGO_MAML, 1, 0.001f, 10, 1000, 1);
    m[2].l = s_new(MFL_ALGO_FEDAVG, 1, 1.0f, 1, 1, 10000);
    m[3].l = s_new(MFL_ALGO_MAML, 1, 0.001f, 10, 1000, 1);
    m[4].l = s_new(MFL_ALGO_FOMAML, 1, 0.001f, 10, 1000, 1);
    m[5].l = s_new(MFL_ALGO_REPTILE, 10, 0.5f, 5, 1000, 1);
    size_t ns = mfl_learner_n_state(m[0].l);
    for (int i = 0; i < 6; i++) {
        m[i].theta = malloc(ns * sizeof(float));
        mfl_learner_init_state(m[0].l, m[i].theta, 7);
        if (i > 1)
            m[i].seconds = s_train(m[i].l, m[i].theta, blocks);
        s_eval(m[0].l, m[i].theta, m[i].lr, m[i].mse);
    }
    const double ref = m[2].mse[2];
    printf("sinusoid, 10-shot, %d held-out tasks, %d outer steps, SGD lr %g at test\n", N_EVAL,
           blocks * 1000, (double)LR);
    printf("%-20s %8s %11s %11s %11s %16s %8s\n", "init", "test lr", "k=1", "k=5", "k=10",
           "k=10 / pretrained", "train s");
    for (int i = 0; i < 6; i++)
        printf("%-20s %8g %11.4g %11.4g %11.4g %16.3f %8.1f\n", m[i].name, (double)m[i].lr,
               m[i].mse[0], m[i].mse[1], m[i].mse[2], m[i].mse[2] / ref, m[i].seconds);
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "bench_meta_sinusoid: cannot write %s\n", out);
        return 1;
    }
    fprintf(f, "{\"benchmark\":\"meta_sinusoid\",\"quick\":%s,\"model\":\"%s\",\"k_shot\":10,"
               "\"eval_tasks\":%d,\"outer_steps\":%d,\"test_lr\":%g,\"ks\":[1,5,10],\"rows\":[",
            quick ? "true" : "false", SPEC, N_EVAL, blocks * 1000, (double)LR);
    for (int i = 0; i < 6; i++)
        fprintf(f, "%s{\"init\":\"%s\",\"test_lr\":%g,\"mse\":[%.5g,%.5g,%.5g],"
                   "\"ratio_k10_vs_pretrained\":%.4g,\"train_seconds\":%.2f}",
                i ? "," : "", m[i].name, (double)m[i].lr, m[i].mse[0], m[i].mse[1], m[i].mse[2],
                m[i].mse[2] / ref, m[i].seconds);
    fprintf(f, "]}\n");
    fclose(f);
    printf("wrote %s\n", out);
    for (int i = 0; i < 6; i++) {
        free(m[i].theta);
        mfl_learner_destroy(&m[i].l);
    }
    return 0;
}
