/* bench_meta_fmnist: 5-way 5-shot Fashion-MNIST on held-out classes, every
 * meta-learner against training from scratch on the support set, with the
 * data and class split of configs/train-fmnist.yaml (meta-train classes
 * from the 60k training file, meta-test classes from the t10k file, so no
 * image is on both sides). One table: mean query accuracy over the same
 * held-out episodes for every method, its 95% interval, the difference to
 * the from-scratch reference measured in the same run, and training time.
 *
 * Protocol (docs/ENGINE-META.md), one validation set for every method:
 *   - VALIDATION episodes: 5-way 5-shot from the t10k images of the
 *     META-TRAIN classes (images no method trains on; never a test class).
 *     Every choice below is made on them, none on the test classes;
 *   - every method uses the same 4-block CNN, 16 filters per block, no
 *     pool after the 4th block ("cnn4:1x28x28:16:K:p3": a 3x3x16 = 144-wide
 *     embedding); the gradient methods add a 5-way dense head, the metric
 *     methods use the body as the embedding;
 *   - meta-training sees the 5 meta-train classes and their 90/180/270°
 *     rotations as 15 further classes (--no-rot: upright only), the
 *     Omniglot recipe for widening a small class pool; --mirror adds
 *     left-right mirror images (augmentation) before rotating;
 *   - early stopping: every block of outer steps the state is scored on
 *     the validation episodes (gradient methods adapt with their training
 *     inner loop, metric methods classify directly) and the best block's
 *     state, the untrained init included, is the one tested;
 *   - "scratch" is the same head model from a fresh init, fine-tuned by SGD
 *     on each support set; scratch and every gradient method pick their
 *     test-time rate and step count from the same grid on the validation
 *     episodes (Meta-SGD uses its learned rates, so only the count);
 *     metric methods classify from the support set directly;
 *   - evaluation: EVAL_TASKS held-out episodes, 30 query images per class.
 *
 *   bench_meta_fmnist [--quick] [--no-rot] [--mirror] [--filters F] [--steps-x N]
 *                     [--train-way N] [--train-query Q] [--relation SPEC]
 *                     [--relation-loss ce|mse] [--seed N] [--only NAME,...]
 *                     [--out FILE] [--config FILE]
 * Writes ${BENCH_RESULTS:-bench/results}/meta_fmnist.json by default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta/experiment.h"
#include "nn/blas.h"

#include "fmnist_rot.h"

#define HEAD 1  /* "cnn4:1x28x28:F:5" */
#define EMBED 0 /* "cnn4:1x28x28:F:0" */
#define EVAL_QUERY 30
#define ROT_PER_CLASS 1500 /* upright rows kept per meta-train class before rotating */

typedef struct {
    const char *name;
    mfl_algo_kind_t algo;
    int head; /* HEAD or EMBED */
    int inner_steps, meta_batch;
    float inner_lr, outer_lr;
    mfl_optim_kind_t optim;
    int steps, quick_steps; /* outer steps; 0: not trained (scratch) */
    int gradient;           /* adapts with SGD at test time */
} s_method_t;

static const s_method_t s_methods[] = {
    {"scratch", MFL_ALGO_MAML, HEAD, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 0, 0, 1},
    {"MAML", MFL_ALGO_MAML, HEAD, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 300, 20, 1},
    {"FOMAML", MFL_ALGO_FOMAML, HEAD, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 500, 30, 1},
    {"Reptile", MFL_ALGO_REPTILE, HEAD, 5, 4, 0.1f, 0.5f, MFL_OPTIM_SGD, 500, 30, 1},
    {"Meta-SGD", MFL_ALGO_META_SGD, HEAD, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 200, 20, 1},
    {"ProtoNets", MFL_ALGO_PROTONET, EMBED, 0, 1, 0.0f, 0.001f, MFL_OPTIM_ADAM, 1500, 100, 0},
    {"Matching nets", MFL_ALGO_MATCHING, EMBED, 0, 1, 0.0f, 0.001f, MFL_OPTIM_ADAM, 1500, 100, 0},
    {"Relation nets", MFL_ALGO_RELATION, EMBED, 0, 1, 0.0f, 0.001f, MFL_OPTIM_ADAM, 1500, 100, 0},
};
#define N_METHODS (sizeof(s_methods) / sizeof(s_methods[0]))

/* The test-time adaptation grid, scored on the validation episodes. */
static const float s_grid_lr[] = {0.03f, 0.1f, 0.3f};
static const int s_grid_steps[] = {10, 25, 50};
#define N_GLR (sizeof(s_grid_lr) / sizeof(s_grid_lr[0]))
#define N_GST (sizeof(s_grid_steps) / sizeof(s_grid_steps[0]))

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The validation episodes: the experiment's test side pointed for a moment
 * at the t10k images of the upright meta-train classes (test_data is the
 * whole t10k file; the class filter picks the rows). */
typedef struct {
    mfl_experiment_t *exp;
    size_t classes[MFL_EXP_MAX_CLASSES], n_classes;
    int tasks;
    size_t n_way, q_query;
} s_val_t;

static int s_validate(const s_val_t *v, mfl_learner_t *l, const float *theta, int steps, float lr,
                      mfl_exp_eval_t *ev, char *err, size_t errlen)
{
    mfl_experiment_t *exp = v->exp;
    size_t tc[MFL_EXP_MAX_CLASSES], ntc = exp->n_test_classes, q = exp->q_query, w = exp->n_way;
    int tt = exp->eval_tasks;
    memcpy(tc, exp->test_classes, sizeof tc);
    memcpy(exp->test_classes, v->classes, sizeof tc);
    exp->n_test_classes = v->n_classes;
    exp->eval_tasks = v->tasks;
    exp->q_query = v->q_query;
    exp->n_way = v->n_way;
    int rc = mfl_experiment_evaluate(exp, l, theta, steps, lr, ev, err, errlen);
    memcpy(exp->test_classes, tc, sizeof tc);
    exp->n_test_classes = ntc;
    exp->eval_tasks = tt;
    exp->q_query = q;
    exp->n_way = w;
    return rc;
}

/* Meta-trains θ for `steps` outer steps in blocks of the learner's
 * outer_steps (exp->log_every), the same trajectory mfl_experiment_train
 * runs with one sampler (block b's rng from (seed, b), the outer optimiser
 * carried across blocks), scoring θ on the validation episodes before
 * training and after every block. θ ends as the best-scoring state (ties:
 * the earlier); *best_step and *best_acc say which and how good. */
static int s_train_early_stop(mfl_experiment_t *exp, mfl_learner_t *l, float *theta, int steps,
                              const s_val_t *val, int vsteps, float vlr, int *best_step,
                              double *best_acc, char *err, size_t errlen)
{
    size_t ns = mfl_learner_n_state(l);
    char sub[300] = "out of memory";
    mfl_sampler_t *s = mfl_sampler_new_episodes(exp->train_data, exp->train_classes,
                                                exp->n_train_classes, exp->n_way, exp->k_shot,
                                                exp->q_query, sub, sizeof(sub));
    float *delta = malloc(ns * sizeof(float)), *best = malloc(ns * sizeof(float));
    int rc = -1, blocks = (steps + exp->log_every - 1) / exp->log_every;
    if (!s || !delta || !best) {
        snprintf(err, errlen, "train: %s", sub);
        goto out;
    }
    mfl_exp_eval_t ev;
    if (s_validate(val, l, theta, vsteps, vlr, &ev, err, errlen))
        goto out;
    *best_acc = ev.mean.accuracy;
    *best_step = 0;
    memcpy(best, theta, ns * sizeof(float));
    mfl_learner_keep_outer_state(l, 1);
    double t0 = s_now();
    for (int b = 0; b < blocks; b++) {
        mfl_rng_t rng;
        mfl_rng_seed(&rng, exp->seed, (uint64_t)b * 1000003u);
        mfl_train_metrics_t m;
        if (mfl_learner_meta_train(l, theta, s, &rng, delta, &m, err, errlen))
            goto out;
        for (size_t p = 0; p < ns; p++)
            theta[p] += delta[p];
        if (s_validate(val, l, theta, vsteps, vlr, &ev, err, errlen))
            goto out;
        int step = (b + 1) * exp->log_every;
        fprintf(stderr, "    step %5d  meta-loss %.4f  validation %.4f  %.0f s\n", step,
                m.loss_after, ev.mean.accuracy, s_now() - t0);
        if (ev.mean.accuracy > *best_acc) {
            *best_acc = ev.mean.accuracy;
            *best_step = step;
            memcpy(best, theta, ns * sizeof(float));
        }
    }
    memcpy(theta, best, ns * sizeof(float));
    rc = 0;
out:
    mfl_learner_keep_outer_state(l, 0);
    mfl_sampler_destroy(&s);
    free(delta);
    free(best);
    return rc;
}

/* Whether `name` is one of the comma-separated names in `list`. */
static int s_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    int quick = getenv("BENCH_QUICK") && strcmp(getenv("BENCH_QUICK"), "1") == 0, rot = 1;
    const char *out = NULL, *config = "configs/train-fmnist.yaml", *only = NULL;
    const char *relation = NULL, *rel_loss = "mse";
    int filters = 16, steps_x = 1, mirror = 0, train_way = 5, train_query = 15;
    long seed = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--no-rot") == 0)
            rot = 0;
        else if (strcmp(argv[i], "--mirror") == 0)
            mirror = 1;
        else if (strcmp(argv[i], "--filters") == 0 && i + 1 < argc)
            filters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = atol(argv[++i]);
        else if (strcmp(argv[i], "--steps-x") == 0 && i + 1 < argc)
            steps_x = atoi(argv[++i]);
        else if (strcmp(argv[i], "--train-way") == 0 && i + 1 < argc)
            train_way = atoi(argv[++i]);
        else if (strcmp(argv[i], "--train-query") == 0 && i + 1 < argc)
            train_query = atoi(argv[++i]);
        else if (strcmp(argv[i], "--relation") == 0 && i + 1 < argc)
            relation = argv[++i];
        else if (strcmp(argv[i], "--relation-loss") == 0 && i + 1 < argc)
            rel_loss = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else {
            fprintf(stderr, "usage: bench_meta_fmnist [--quick] [--no-rot] [--mirror] "
                            "[--filters F] [--steps-x N] [--train-way N] [--train-query Q] "
                            "[--relation SPEC] [--relation-loss ce|mse] [--seed N] "
                            "[--only NAME,...] [--out FILE] [--config FILE]\n");
            return 2;
        }
    }
    if (filters < 1 || steps_x < 1 || train_way < 2 || train_query < 1 ||
        (strcmp(rel_loss, "mse") != 0 && strcmp(rel_loss, "ce") != 0)) {
        fprintf(stderr, "bench_meta_fmnist: bad --filters, --steps-x, --train-way, "
                        "--train-query or --relation-loss\n");
        return 2;
    }
    char path[1024], rel_spec[128];
    if (!out) {
        const char *dir = getenv("BENCH_RESULTS") ? getenv("BENCH_RESULTS") : "bench/results";
        snprintf(path, sizeof(path), "%s/meta_fmnist.json", dir);
        out = path;
    }
    /* The paper's relation module: conv blocks over the query's and the
     * class's 16x3x3 maps stacked on channels, then 8 hidden units. */
    if (relation)
        snprintf(rel_spec, sizeof rel_spec, "%s", relation);
    else
        snprintf(rel_spec, sizeof rel_spec, "relconv:%dx3x3:%d:8", 2 * filters, filters);
    mfl_blas_set_threads(1);
    char err[1024];
    double t_start = s_now();
    mfl_experiment_t *exp = mfl_experiment_load(config, err, sizeof(err));
    if (!exp) {
        fprintf(stderr, "bench_meta_fmnist: %s\n", err);
        return 1;
    }
    if (seed >= 0)
        exp->seed = (uint64_t)seed; /* init, training and held-out episode streams */
    s_val_t val = {.exp = exp, .n_classes = exp->n_train_classes, .tasks = quick ? 40 : 100,
                   .n_way = exp->n_way, .q_query = 15};
    memcpy(val.classes, exp->train_classes, sizeof val.classes);
    if (mirror && mfl_bench_fmnist_add_mirrors(exp)) {
        fprintf(stderr, "bench_meta_fmnist: cannot mirror the meta-train images\n");
        return 1;
    }
    if (rot && mfl_bench_fmnist_add_rotations(exp, (mirror ? 2 : 1) * ROT_PER_CLASS)) {
        fprintf(stderr, "bench_meta_fmnist: cannot build the rotated meta-train classes\n");
        return 1;
    }
    if ((size_t)train_way > exp->n_train_classes) {
        fprintf(stderr, "bench_meta_fmnist: --train-way %d > %zu meta-train classes\n",
                train_way, exp->n_train_classes);
        return 2;
    }
    exp->log_every = quick ? 10 : 100;
    exp->eval_tasks = quick ? 100 : 300;
    size_t eval_way = exp->n_way, gq = exp->q_query;
    struct {
        double acc, ci, loss, seconds, val_acc, tune_seconds;
        size_t failed, n_state;
        int steps, best_step, eval_steps, way, query;
        float eval_lr;
        int ran;
        char model[160];
    } r[N_METHODS];
    memset(r, 0, sizeof r);
    printf("Fashion-MNIST %zu-way %zu-shot, held-out classes, %d episodes x %d query/class; "
           "meta-train classes %zu (%s%s); validation: %d episodes of the meta-train classes' "
           "t10k images; metric methods train %d-way, %d query/class\n",
           exp->n_way, exp->k_shot, exp->eval_tasks, EVAL_QUERY, exp->n_train_classes,
           rot ? "with rotations" : "upright", mirror ? ", mirrored" : "", val.tasks, train_way,
           train_query);
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        if (only && !s_listed(only, m->name))
            continue;
        mfl_learner_config_defaults(&exp->learner, m->algo);
        snprintf(exp->learner.model_spec, sizeof(exp->learner.model_spec),
                 "cnn4:1x28x28:%d:%d:p3", filters, m->head ? (int)eval_way : 0);
        exp->learner.loss = m->algo == MFL_ALGO_RELATION && strcmp(rel_loss, "mse") == 0
                                ? MFL_LOSS_MSE
                                : MFL_LOSS_SOFTMAX_CE;
        exp->learner.inner_steps = m->inner_steps;
        if (m->gradient)
            exp->learner.inner_lr = m->inner_lr;
        exp->learner.meta_batch = m->meta_batch;
        exp->learner.outer_lr = m->outer_lr;
        exp->learner.outer_optim = m->optim;
        exp->max_batch = 256;
        snprintf(exp->learner.relation_spec, sizeof(exp->learner.relation_spec), "%s",
                 rel_spec);
        mfl_learner_t *l = mfl_experiment_learner(exp, err, sizeof(err));
        if (!l) {
            fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
            return 1;
        }
        size_t ns = mfl_learner_n_state(l);
        snprintf(r[i].model, sizeof r[i].model, "%s", exp->learner.model_spec);
        float *theta = malloc(ns * sizeof(float));
        mfl_learner_init_state(l, theta, exp->seed);
        mfl_exp_eval_t ev;
        double t0 = s_now();
        r[i].steps = quick ? m->quick_steps : m->steps * steps_x;
        /* whole blocks: validation runs after each */
        r[i].steps = (r[i].steps + exp->log_every - 1) / exp->log_every * exp->log_every;
        r[i].way = m->gradient ? (int)eval_way : train_way;
        r[i].query = m->gradient ? (int)gq : train_query;
        r[i].val_acc = NAN;
        if (r[i].steps > 0) {
            exp->n_way = (size_t)r[i].way;
            exp->q_query = (size_t)r[i].query;
            fprintf(stderr, "  %s: %d outer steps, %d-way %d-query episodes\n", m->name,
                    r[i].steps, r[i].way, r[i].query);
            int rc = s_train_early_stop(exp, l, theta, r[i].steps, &val, m->inner_steps,
                                        m->inner_lr, &r[i].best_step, &r[i].val_acc, err,
                                        sizeof(err));
            exp->n_way = eval_way;
            exp->q_query = gq;
            if (rc) {
                fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
                return 1;
            }
        }
        r[i].seconds = s_now() - t0;
        t0 = s_now();
        if (m->gradient) {
            /* the test-time (rate, steps) from the grid, on validation */
            double best = -1;
            size_t n_lr = m->algo == MFL_ALGO_META_SGD ? 1 : N_GLR;
            for (size_t a = 0; a < n_lr; a++)
                for (size_t b = 0; b < N_GST; b++) {
                    float lr = m->algo == MFL_ALGO_META_SGD ? m->inner_lr : s_grid_lr[a];
                    if (s_validate(&val, l, theta, s_grid_steps[b], lr, &ev, err, sizeof(err))) {
                        fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
                        return 1;
                    }
                    fprintf(stderr, "    validation: lr %.2f steps %d: %.4f\n", (double)lr,
                            s_grid_steps[b], ev.mean.accuracy);
                    if (ev.mean.accuracy > best) {
                        best = ev.mean.accuracy;
                        r[i].eval_lr = lr;
                        r[i].eval_steps = s_grid_steps[b];
                    }
                }
            r[i].val_acc = best;
        } else if (r[i].steps == 0) {
            if (s_validate(&val, l, theta, 0, 0, &ev, err, sizeof(err)))
                return 1;
            r[i].val_acc = ev.mean.accuracy;
        }
        r[i].tune_seconds = s_now() - t0;
        exp->q_query = EVAL_QUERY;
        if (mfl_experiment_evaluate(exp, l, theta, r[i].eval_steps, r[i].eval_lr, &ev, err,
                                    sizeof(err))) {
            fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
            return 1;
        }
        exp->q_query = gq;
        r[i].acc = ev.mean.accuracy;
        r[i].ci = ev.accuracy_ci95;
        r[i].loss = ev.mean.loss;
        r[i].failed = ev.n_failed;
        r[i].n_state = ns;
        r[i].ran = 1;
        fprintf(stderr, "  %s: accuracy %.4f ±%.4f (validation %.4f at step %d; train %.1f s, "
                        "total %.0f s)\n",
                m->name, r[i].acc, r[i].ci, r[i].val_acc, r[i].best_step, r[i].seconds,
                s_now() - t_start);
        free(theta);
        mfl_learner_destroy(&l);
    }
    double total = s_now() - t_start;
    printf("%-14s %-22s %6s %5s %6s %6s %7s %4s %5s %16s %10s %6s %8s\n", "method", "model",
           "params", "way", "steps", "best", "val", "k", "lr", "acc ±95%", "vs scratch", "above",
           "train s");
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        if (!r[i].ran)
            continue;
        /* "above" only when the two 95% intervals do not overlap */
        int above = i > 0 && r[0].ran && r[i].acc - r[i].ci > r[0].acc + r[0].ci;
        printf("%-14s %-22s %6zu %5d %6d %6d %7.4f %4d %5.2f %8.4f ±%.4f %+10.4f %6s %8.1f\n",
               m->name, r[i].model, r[i].n_state, r[i].way, r[i].steps, r[i].best_step,
               r[i].val_acc, r[i].eval_steps, (double)r[i].eval_lr, r[i].acc, r[i].ci,
               r[i].acc - r[0].acc, i == 0 ? "-" : above ? "yes" : "no", r[i].seconds);
    }
    printf("total %.0f s\n", total);
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "bench_meta_fmnist: cannot write %s\n", out);
        return 1;
    }
    fprintf(f, "{\"benchmark\":\"meta_fmnist\",\"quick\":%s,\"config\":\"%s\",\"seed\":%llu,"
               "\"n_way\":%zu,\"k_shot\":%zu,\"train_q_query\":%zu,\"eval_q_query\":%d,"
               "\"eval_tasks\":%d,\"val_tasks\":%d,\"rotations\":%s,\"mirror\":%s,"
               "\"metric_train_way\":%d,\"metric_train_query\":%d,\"relation\":\"%s\","
               "\"relation_loss\":\"%s\",\"seconds\":%.0f,\"train_classes\":[",
            quick ? "true" : "false", config, (unsigned long long)exp->seed, eval_way,
            exp->k_shot, gq, EVAL_QUERY, exp->eval_tasks, val.tasks, rot ? "true" : "false",
            mirror ? "true" : "false", train_way, train_query, rel_spec, rel_loss, total);
    for (size_t i = 0; i < val.n_classes; i++)
        fprintf(f, "%s%zu", i ? "," : "", val.classes[i]);
    fprintf(f, "],\"test_classes\":[");
    for (size_t i = 0; i < exp->n_test_classes; i++)
        fprintf(f, "%s%zu", i ? "," : "", exp->test_classes[i]);
    fprintf(f, "],\"rows\":[");
    int first = 1;
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        if (!r[i].ran)
            continue;
        fprintf(f, "%s{\"method\":\"%s\",\"model\":\"%s\",\"n_state\":%zu,\"train_way\":%d,"
                   "\"outer_steps\":%d,\"best_step\":%d,\"val_accuracy\":%.5f,"
                   "\"eval_steps\":%d,\"eval_lr\":%g,\"accuracy\":%.5f,\"ci95\":%.5f,"
                   "\"loss\":%.5f,\"vs_scratch\":%.5f,\"above_scratch_ci\":%s,\"failed\":%zu,"
                   "\"train_seconds\":%.2f,\"tune_seconds\":%.2f}",
                first ? "" : ",", m->name, r[i].model, r[i].n_state, r[i].way, r[i].steps,
                r[i].best_step, r[i].val_acc, r[i].eval_steps, (double)r[i].eval_lr, r[i].acc,
                r[i].ci, isfinite(r[i].loss) ? r[i].loss : -1.0, r[i].acc - r[0].acc,
                i > 0 && r[0].ran && r[i].acc - r[i].ci > r[0].acc + r[0].ci ? "true" : "false",
                r[i].failed, r[i].seconds, r[i].tune_seconds);
        first = 0;
    }
    fprintf(f, "]}\n");
    fclose(f);
    printf("wrote %s\n", out);
    mfl_experiment_destroy(&exp);
    return 0;
}
