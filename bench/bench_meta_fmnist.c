/* bench_meta_fmnist: 5-way 5-shot Fashion-MNIST on held-out classes, every
 * meta-learner against training from scratch on the support set, with the
 * data and class split of configs/train-fmnist.yaml (meta-train classes
 * from the 60k training file, meta-test classes from the t10k file, so no
 * image is on both sides). One table: mean query accuracy over the same
 * held-out episodes for every method, its 95% interval, the difference to
 * the from-scratch reference measured in the same run, and training time.
 *
 * Protocol (docs/ENGINE-META.md):
 *   - every method uses the same 4-block CNN, 16 filters per block, no
 *     pool after the 4th block ("cnn4:1x28x28:16:K:p3": a 3x3x16 = 144-wide
 *     embedding; --no-p3 pools to 16); the gradient methods add a 5-way
 *     dense head, the metric methods use the body as the embedding;
 *   - meta-training sees the 5 meta-train classes and their 90/180/270°
 *     rotations as 15 further classes (--no-rot: upright only), the
 *     Omniglot recipe for widening a small class pool;
 *   - "scratch" is the same head model from a fresh init, fine-tuned by SGD
 *     on each support set; its rate and step count are the best of a small
 *     grid scored on episodes of the META-TRAIN classes (never the test
 *     classes);
 *   - gradient methods adapt with the rate and step count scratch chose
 *     (the same adaptation budget; also reported: 10 steps of their inner
 *     rate, twice their training horizon); metric methods classify from
 *     the support set directly;
 *   - evaluation: EVAL_TASKS held-out episodes, 30 query images per class.
 *
 *   bench_meta_fmnist [--quick] [--no-rot] [--no-p3] [--filters F] [--steps-x N]
 *                     [--seed N] [--only NAME,...] [--out FILE] [--config FILE]
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
#define EVAL_STEPS 10
#define TRAIN_WAY 5 /* ways per meta-training episode for the metric methods */
#define EVAL_QUERY 30
#define ROT_PER_CLASS 1500 /* upright rows kept per meta-train class before rotating */

typedef struct {
    const char *name;
    mfl_algo_kind_t algo;
    int head; /* HEAD or EMBED */
    int train_way; /* ways per meta-training episode (metric methods may use more) */
    int inner_steps, meta_batch;
    float inner_lr, outer_lr;
    mfl_optim_kind_t optim;
    int steps, quick_steps; /* outer steps; 0: not trained (scratch) */
    int gradient;           /* adapts with SGD at test time */
} s_method_t;

static const s_method_t s_methods[] = {
    {"scratch", MFL_ALGO_MAML, HEAD, 5, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 0, 0, 1},
    {"MAML", MFL_ALGO_MAML, HEAD, 5, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 300, 20, 1},
    {"FOMAML", MFL_ALGO_FOMAML, HEAD, 5, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 500, 30, 1},
    {"Reptile", MFL_ALGO_REPTILE, HEAD, 5, 5, 4, 0.1f, 0.5f, MFL_OPTIM_SGD, 500, 30, 1},
    {"Meta-SGD", MFL_ALGO_META_SGD, HEAD, 5, 5, 4, 0.1f, 0.001f, MFL_OPTIM_ADAM, 200, 15, 1},
    {"ProtoNets", MFL_ALGO_PROTONET, EMBED, TRAIN_WAY, 0, 1, 0.0f, 0.001f, MFL_OPTIM_ADAM, 1500, 100, 0},
    {"Matching nets", MFL_ALGO_MATCHING, EMBED, TRAIN_WAY, 0, 1, 0.0f, 0.001f, MFL_OPTIM_ADAM, 1500, 100, 0},
    {"Relation nets", MFL_ALGO_RELATION, EMBED, TRAIN_WAY, 0, 1, 0.0f, 0.001f, MFL_OPTIM_ADAM, 1500, 100, 0},
};
#define N_METHODS (sizeof(s_methods) / sizeof(s_methods[0]))

/* The scratch grid, scored on meta-train-class episodes. */
static const float s_scratch_lr[] = {0.03f, 0.1f, 0.3f};
static const int s_scratch_steps[] = {10, 50};
#define N_SLR (sizeof(s_scratch_lr) / sizeof(s_scratch_lr[0]))
#define N_SST (sizeof(s_scratch_steps) / sizeof(s_scratch_steps[0]))

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Evaluates on meta-train-class episodes (upright classes only) by
 * swapping the experiment's test side for a moment. */
static int s_eval_on_train(mfl_experiment_t *exp, size_t n_upright, mfl_learner_t *l,
                           const float *theta, int steps, float lr, int tasks,
                           mfl_exp_eval_t *ev, char *err, size_t errlen)
{
    mfl_dataset_t *td = exp->test_data;
    size_t tc[MFL_EXP_MAX_CLASSES], ntc = exp->n_test_classes;
    int tt = exp->eval_tasks;
    memcpy(tc, exp->test_classes, sizeof tc);
    exp->test_data = exp->train_data;
    memcpy(exp->test_classes, exp->train_classes, sizeof tc);
    exp->n_test_classes = n_upright;
    exp->eval_tasks = tasks;
    int rc = mfl_experiment_evaluate(exp, l, theta, steps, lr, ev, err, errlen);
    exp->test_data = td;
    memcpy(exp->test_classes, tc, sizeof tc);
    exp->n_test_classes = ntc;
    exp->eval_tasks = tt;
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
    int filters = 16, steps_x = 1, p3 = 1;
    long seed = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--no-rot") == 0)
            rot = 0;
        else if (strcmp(argv[i], "--filters") == 0 && i + 1 < argc)
            filters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = atol(argv[++i]);
        else if (strcmp(argv[i], "--no-p3") == 0)
            p3 = 0;
        else if (strcmp(argv[i], "--steps-x") == 0 && i + 1 < argc)
            steps_x = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else {
            fprintf(stderr, "usage: bench_meta_fmnist [--quick] [--no-rot] [--no-p3] [--filters F] "
                            "[--steps-x N] [--seed N] [--only NAME,...] [--out FILE] "
                            "[--config FILE]\n");
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
    double t_start = s_now();
    mfl_experiment_t *exp = mfl_experiment_load(config, err, sizeof(err));
    if (!exp) {
        fprintf(stderr, "bench_meta_fmnist: %s\n", err);
        return 1;
    }
    if (seed >= 0)
        exp->seed = (uint64_t)seed; /* init, training and held-out episode streams */
    size_t n_upright = exp->n_train_classes;
    if (rot && mfl_bench_fmnist_add_rotations(exp, ROT_PER_CLASS)) {
        fprintf(stderr, "bench_meta_fmnist: cannot build the rotated meta-train classes\n");
        return 1;
    }
    exp->log_every = quick ? 10 : 100;
    exp->eval_tasks = quick ? 100 : 300;
    int tune_tasks = quick ? 20 : 60;
    size_t train_q = exp->q_query;
    struct {
        double acc, ci, loss, seconds, acc10, ci10;
        size_t failed, n_state;
        int steps, eval_steps;
        float eval_lr;
        int ran;
        char model[160];
    } r[N_METHODS];
    memset(r, 0, sizeof r);
    printf("Fashion-MNIST %zu-way %zu-shot, held-out classes, %d episodes x %d query/class; "
           "meta-train classes %zu (%s)\n",
           exp->n_way, exp->k_shot, exp->eval_tasks, EVAL_QUERY, exp->n_train_classes,
           rot ? "with rotations" : "upright");
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        if (only && !s_listed(only, m->name))
            continue;
        mfl_learner_config_defaults(&exp->learner, m->algo);
        snprintf(exp->learner.model_spec, sizeof(exp->learner.model_spec),
                 "cnn4:1x28x28:%d:%d%s", filters, m->head ? (int)exp->n_way : 0, p3 ? ":p3" : "");
        exp->learner.loss = MFL_LOSS_SOFTMAX_CE;
        exp->learner.inner_steps = m->inner_steps;
        if (m->gradient)
            exp->learner.inner_lr = m->inner_lr;
        exp->learner.meta_batch = m->meta_batch;
        exp->learner.outer_lr = m->outer_lr;
        exp->learner.outer_optim = m->optim;
        exp->max_batch = 256;
        /* a 64-wide hidden layer: the default 16 cannot learn a comparison
         * of two embeddings (|a - b| needs two ReLUs per coordinate) */
        snprintf(exp->learner.relation_spec, sizeof(exp->learner.relation_spec),
                 "mlp:%d-64-1", 2 * filters * (p3 ? 9 : 1));
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
        /* scratch's choice when it ran (it runs first), else 50 x 0.1 */
        r[i].eval_steps = m->gradient ? (r[0].ran ? r[0].eval_steps : 50) : 0;
        r[i].eval_lr = r[0].ran ? r[0].eval_lr : 0.1f;
        r[i].acc10 = r[i].ci10 = NAN;
        double t0 = s_now();
        exp->q_query = train_q;
        r[i].steps = quick ? m->quick_steps : m->steps * steps_x;
        size_t eval_way = exp->n_way;
        exp->n_way = (size_t)m->train_way;
        if (r[i].steps > 0) {
            exp->train_steps = r[i].steps;
            if (mfl_experiment_train(exp, l, theta, NULL, NULL, NULL, err, sizeof(err))) {
                fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
                return 1;
            }
        } else {
            /* scratch: choose (lr, steps) on meta-train-class episodes */
            double best = -1;
            for (size_t a = 0; a < N_SLR; a++)
                for (size_t b = 0; b < N_SST; b++) {
                    if (s_eval_on_train(exp, n_upright, l, theta, s_scratch_steps[b],
                                        s_scratch_lr[a], tune_tasks, &ev, err, sizeof(err))) {
                        fprintf(stderr, "bench_meta_fmnist: scratch: %s\n", err);
                        return 1;
                    }
                    fprintf(stderr, "  scratch on meta-train classes: lr %.2f steps %d: %.4f\n",
                            (double)s_scratch_lr[a], s_scratch_steps[b], ev.mean.accuracy);
                    if (ev.mean.accuracy > best) {
                        best = ev.mean.accuracy;
                        r[i].eval_lr = s_scratch_lr[a];
                        r[i].eval_steps = s_scratch_steps[b];
                    }
                }
        }
        r[i].seconds = s_now() - t0;
        exp->n_way = eval_way;
        exp->q_query = EVAL_QUERY;
        if (m->gradient) {
            if (mfl_experiment_evaluate(exp, l, theta, EVAL_STEPS, m->inner_lr, &ev, err,
                                        sizeof(err))) {
                fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
                return 1;
            }
            r[i].acc10 = ev.mean.accuracy;
            r[i].ci10 = ev.accuracy_ci95;
        }
        if (mfl_experiment_evaluate(exp, l, theta, r[i].eval_steps, r[i].eval_lr, &ev, err,
                                    sizeof(err))) {
            fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
            return 1;
        }
        r[i].acc = ev.mean.accuracy;
        r[i].ci = ev.accuracy_ci95;
        r[i].loss = ev.mean.loss;
        r[i].failed = ev.n_failed;
        r[i].n_state = ns;
        r[i].ran = 1;
        fprintf(stderr, "  %s: accuracy %.4f ±%.4f (train %.1f s, total %.0f s)\n", m->name,
                r[i].acc, r[i].ci, r[i].seconds, s_now() - t_start);
        free(theta);
        mfl_learner_destroy(&l);
    }
    double total = s_now() - t_start;
    printf("%-14s %-20s %7s %6s %16s %5s %6s %16s %10s %6s %8s %8s\n", "method", "model",
           "params", "steps", "acc k=10 ±95%", "k", "lr", "acc ±95%", "vs scratch", "above",
           "train s", "ms/step");
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        if (!r[i].ran)
            continue;
        /* "above" only when the two 95% intervals do not overlap */
        int above = i > 0 && r[0].ran && r[i].acc - r[i].ci > r[0].acc + r[0].ci;
        char a10[32] = "-";
        if (isfinite(r[i].acc10))
            snprintf(a10, sizeof a10, "%.4f ±%.4f", r[i].acc10, r[i].ci10);
        printf("%-14s %-20s %7zu %6d %16s %5d %6.2f %8.4f ±%.4f %+10.4f %6s %8.1f %8.1f\n",
               m->name, r[i].model, r[i].n_state, r[i].steps, a10, r[i].eval_steps, (double)r[i].eval_lr,
               r[i].acc, r[i].ci, r[i].acc - r[0].acc, i == 0 ? "-" : above ? "yes" : "no",
               r[i].seconds, r[i].steps ? 1e3 * r[i].seconds / r[i].steps : 0.0);
    }
    printf("total %.0f s\n", total);
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(stderr, "bench_meta_fmnist: cannot write %s\n", out);
        return 1;
    }
    fprintf(f, "{\"benchmark\":\"meta_fmnist\",\"quick\":%s,\"config\":\"%s\",\"n_way\":%zu,"
               "\"k_shot\":%zu,\"train_q_query\":%zu,\"eval_q_query\":%d,\"eval_tasks\":%d,"
               "\"rotations\":%s,\"seconds\":%.0f,\"train_classes\":[",
            quick ? "true" : "false", config, exp->n_way, exp->k_shot, train_q, EVAL_QUERY,
            exp->eval_tasks, rot ? "true" : "false", total);
    for (size_t i = 0; i < n_upright; i++)
        fprintf(f, "%s%zu", i ? "," : "", exp->train_classes[i]);
    fprintf(f, "],\"test_classes\":[");
    for (size_t i = 0; i < exp->n_test_classes; i++)
        fprintf(f, "%s%zu", i ? "," : "", exp->test_classes[i]);
    fprintf(f, "],\"rows\":[");
    int first = 1;
    for (size_t i = 0; i < N_METHODS; i++) {
        const s_method_t *m = &s_methods[i];
        if (!r[i].ran)
            continue;
        fprintf(f, "%s{\"method\":\"%s\",\"model\":\"%s\",\"n_state\":%zu,\"outer_steps\":%d,"
                   "\"eval_steps\":%d,\"eval_lr\":%g,\"accuracy\":%.5f,\"ci95\":%.5f,"
                   "\"loss\":%.5f,\"vs_scratch\":%.5f,\"above_scratch_ci\":%s,\"failed\":%zu,"
                   "\"train_seconds\":%.2f",
                first ? "" : ",", m->name, r[i].model, r[i].n_state, r[i].steps, r[i].eval_steps,
                (double)r[i].eval_lr, r[i].acc, r[i].ci, isfinite(r[i].loss) ? r[i].loss : -1.0,
                r[i].acc - r[0].acc,
                i > 0 && r[0].ran && r[i].acc - r[i].ci > r[0].acc + r[0].ci ? "true" : "false",
                r[i].failed, r[i].seconds);
        if (isfinite(r[i].acc10))
            fprintf(f, ",\"accuracy_k10\":%.5f,\"ci95_k10\":%.5f", r[i].acc10, r[i].ci10);
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "]}\n");
    fclose(f);
    printf("wrote %s\n", out);
    mfl_experiment_destroy(&exp);
    return 0;
}
