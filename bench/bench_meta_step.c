/* bench_meta_step: the cost of one meta-learning task on a small tabular
 * model, against the cost of one plain gradient (mfl_model_loss_grad) on
 * the same batch measured in the same run. A FOMAML task with 5 inner
 * steps is 6 gradients plus bookkeeping, so its ideal ratio is 6; MAML adds
 * one HVP per inner step. ANCHORS.md's PyTorch figure for the FOMAML task
 * (MLP 16-32-1, 5 inner steps, ~0.75 ms) is quoted, not re-measured.
 *
 *   bench_meta_step [--quick] [--out FILE]
 * Writes ${BENCH_RESULTS:-bench/results}/meta_step.json by default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta/learner.h"
#include "nn/blas.h"
#include "bench_common.h"

#define SPEC "mlp:16-32-1"
#define ROWS 32

int main(int argc, char **argv)
{
    int quick;
    const char *out;
    char path[1024];
    if (s_bench_args(argc, argv, "bench_meta_step", &quick, &out))
        return 2;
    out = s_bench_out_path(out, path, sizeof(path), "meta_step.json");
    mfl_blas_set_threads(1);
    const int reps = quick ? 5 : 21, per = quick ? 200 : 1000;
    /* A binary table of 2·ROWS rows; the site sampler draws support and
     * query batches of ROWS each. */
    mfl_dataset_t *d = mfl_dataset_new(2 * ROWS, 16);
    d->n_classes = 2;
    mfl_rng_t r;
    mfl_rng_seed(&r, 1, 0);
    for (size_t i = 0; i < d->n * 16; i++)
        d->x[i] = mfl_rng_normal(&r);
    for (size_t i = 0; i < d->n; i++)
        d->y[i] = d->x[i * 16] > 0 ? 1.0f : 0.0f;
    char err[256];
    mfl_sampler_t *s = mfl_sampler_new_site(d, ROWS, ROWS, err, sizeof(err));

    /* Reference: one gradient of the mean BCE over ROWS rows. */
    mfl_model_t *model = mfl_model_new(SPEC, ROWS, err, sizeof(err));
    mfl_loss_t loss = {MFL_LOSS_BCE, 1.0f};
    size_t np = mfl_model_n_params(model);
    float *theta = malloc(np * sizeof(float)), *grad = malloc(np * sizeof(float));
    mfl_model_init_params(model, theta, &r);
    double t_ref[64];
    for (int k = 0; k < reps; k++) {
        double t0 = s_bench_now();
        for (int i = 0; i < per; i++)
            mfl_model_loss_grad(model, theta, &loss, d->x, d->y, ROWS, grad);
        t_ref[k] = (s_bench_now() - t0) / per * 1e3;
    }
    double ref = s_bench_median(t_ref, reps);

    const mfl_algo_kind_t algos[] = {MFL_ALGO_FOMAML, MFL_ALGO_MAML, MFL_ALGO_REPTILE,
                                     MFL_ALGO_META_SGD};
    double ms[4];
    for (int a = 0; a < 4; a++) {
        mfl_learner_config_t c;
        mfl_learner_config_defaults(&c, algos[a]);
        strcpy(c.model_spec, SPEC);
        c.loss = MFL_LOSS_BCE;
        c.inner_steps = 5;
        c.meta_batch = 1;
        c.outer_steps = per; /* one task per outer step */
        mfl_learner_t *l = mfl_learner_new(&c, ROWS, err, sizeof(err));
        size_t ns = mfl_learner_n_state(l);
        float *st = malloc(ns * sizeof(float)), *delta = malloc(ns * sizeof(float));
        mfl_learner_init_state(l, st, 1);
        double t[64];
        for (int k = 0; k < reps; k++) {
            mfl_rng_t rng;
            mfl_rng_seed(&rng, 2, (uint64_t)k);
            double t0 = s_bench_now();
            if (mfl_learner_meta_train(l, st, s, &rng, delta, NULL, err, sizeof(err))) {
                fprintf(stderr, "bench_meta_step: %s\n", err);
                return 1;
            }
            t[k] = (s_bench_now() - t0) / per * 1e3;
        }
        ms[a] = s_bench_median(t, reps);
        free(st);
        free(delta);
        mfl_learner_destroy(&l);
    }
    printf("%s, %d support + %d query rows, 5 inner steps, 1 BLAS thread, median of %d\n",
           SPEC, ROWS, ROWS, reps);
    printf("%-28s %10s %14s\n", "", "ms", "× one gradient");
    printf("%-28s %10.4f %14.2f\n", "one gradient (reference)", ref, 1.0);
    const char *names[] = {"FOMAML task", "MAML task (5 HVPs)", "Reptile task",
                           "Meta-SGD task (5 HVPs)"};
    for (int a = 0; a < 4; a++)
        printf("%-28s %10.4f %14.2f\n", names[a], ms[a], ms[a] / ref);
    printf("PyTorch 1.13 FOMAML task (ANCHORS.md, not re-measured): 0.75 ms\n");
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "bench_meta_step: cannot write %s\n", out);
        return 1;
    }
    fprintf(f, "{\"benchmark\":\"meta_step\",\"quick\":%s,\"model\":\"%s\",\"rows\":%d,"
               "\"inner_steps\":5,\"reference_gradient_ms\":%.5f,\"tasks\":[",
            quick ? "true" : "false", SPEC, ROWS, ref);
    for (int a = 0; a < 4; a++)
        fprintf(f, "%s{\"algo\":\"%s\",\"ms\":%.5f,\"ratio_to_gradient\":%.3f}", a ? "," : "",
                mfl_algo_name(algos[a]), ms[a], ms[a] / ref);
    fprintf(f, "],\"torch_fomaml_task_ms_anchor\":0.75}\n");
    fclose(f);
    printf("wrote %s\n", out);
    free(theta);
    free(grad);
    mfl_model_destroy(&model);
    mfl_sampler_destroy(&s);
    mfl_dataset_destroy(&d);
    return 0;
}
