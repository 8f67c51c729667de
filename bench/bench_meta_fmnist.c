/* bench_meta_fmnist: 5-way 5-shot Fashion-MNIST on held-out classes, every
 * meta-learner against training from scratch on the support set, with the
 * data and class split of configs/train-fmnist.yaml (meta-train classes
 * from the 60k training file, meta-test classes from the t10k file, so no
 * image is on both sides). One table: mean query accuracy over the same
 * held-out episodes for every method, its 95% interval, the difference to
 * the from-scratch reference measured in the same run, and training time.
 *
 * Protocol (docs/ENGINE-META.md), one validation protocol for every
 * method, on classes that are neither trained on nor tested:
 *   - every method uses the same 4-block CNN, 16 filters per block, no
 *     pool after the 4th block ("cnn4:1x28x28:16:K:p3": a 3x3x16 = 144-wide
 *     embedding); the gradient methods add a 5-way dense head, the metric
 *     methods use the body as the embedding;
 *   - meta-training sees the 5 meta-train classes and their 90/180/270°
 *     rotations as 15 further classes (--no-rot: upright only), the
 *     Omniglot recipe for widening a small class pool, and every image's
 *     left-right mirror image (augmentation, before rotating; --no-mirror:
 *     none);
 *   - VALIDATION (a selection run): meta-train classes 0 T-shirt/top and 2
 *     Pullover (--val-classes) with their rotations (8 classes, their t10k
 *     images) are held out; each method trains on the other 3 (12 with
 *     rotations) and is
 *     scored on 5-way validation episodes after every block of outer steps
 *     (gradient methods adapt with their training inner loop, metric
 *     methods classify directly); the best block, 0 included, sets the
 *     method's number of outer steps. Scratch and the gradient methods then
 *     pick the test-time rate and step count from one grid on the same
 *     validation episodes (Meta-SGD uses its learned rates: only the count);
 *   - the tested model is retrained from the same init on all 20 classes
 *     for the chosen number of steps; the test classes are touched once;
 *   - "scratch" is the same head model from a fresh init, fine-tuned by SGD
 *     on each support set;
 *   - evaluation: EVAL_TASKS held-out episodes, 30 query images per class,
 *     of the 5 upright held-out classes (always the same 5-way task);
 *   - --test-rot adds the Omniglot protocol (Vinyals et al. 2016, Snell et
 *     al. 2017): the held-out classes' 90/180/270° rotations are held-out
 *     classes too, so each test episode draws 5 of 20 classes (t10k
 *     images). The same trained models are scored on both protocols, the
 *     same number of episodes each; validation already draws from 8
 *     classes with rotations, so it follows the same rule. No class is on
 *     two sides in any orientation (checked below).
 *
 *   bench_meta_fmnist [--quick] [--no-rot] [--test-rot] [--no-mirror] [--filters F] [--steps-x N]
 *                     [--shot K] [--val-classes A,B] [--train-way N] [--train-query Q] [--relation SPEC]
 *                     [--relation-loss ce|mse] [--seed N] [--only NAME,...]
 *                     [--out FILE] [--config FILE]
 * Writes ${BENCH_RESULTS:-bench/results}/meta_fmnist.json by default. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/experiment_config.h"
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
 * at the held-out validation classes (t10k images, with rotations). */
typedef struct {
    mfl_experiment_t *exp;
    mfl_dataset_t *data;
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
    mfl_dataset_t *td = exp->test_data;
    memcpy(tc, exp->test_classes, sizeof tc);
    memcpy(exp->test_classes, v->classes, sizeof tc);
    exp->test_data = v->data;
    exp->n_test_classes = v->n_classes;
    exp->eval_tasks = v->tasks;
    exp->q_query = v->q_query;
    exp->n_way = v->n_way;
    int rc = mfl_experiment_evaluate(exp, l, theta, steps, lr, ev, err, errlen);
    exp->test_data = td;
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
 * carried across blocks). With `val`, θ is scored on the validation
 * episodes before training and after every block and ends as the
 * best-scoring state (ties: the earlier); *best_step and *best_acc say
 * which and how good. Without, θ is the last state. */
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
    *best_acc = -1;
    *best_step = 0;
    if (val && s_validate(val, l, theta, vsteps, vlr, &ev, err, errlen))
        goto out;
    if (val)
        *best_acc = ev.mean.accuracy;
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
        int step = (b + 1) * exp->log_every;
        if (val) {
            if (s_validate(val, l, theta, vsteps, vlr, &ev, err, errlen))
                goto out;
            fprintf(stderr, "    step %5d  meta-loss %.4f  validation %.4f  %.0f s\n", step,
                    m.loss_after, ev.mean.accuracy, s_now() - t0);
            if (ev.mean.accuracy > *best_acc) {
                *best_acc = ev.mean.accuracy;
                *best_step = step;
                memcpy(best, theta, ns * sizeof(float));
            }
        } else if (getenv("BENCH_PEEK")) {
            /* exploration only: the test curve, printed, never used to choose */
            mfl_exp_eval_t pk;
            size_t w = exp->n_way, q = exp->q_query;
            int tt = exp->eval_tasks;
            exp->n_way = 5;
            exp->q_query = 15;
            exp->eval_tasks = 100;
            int prc = mfl_experiment_evaluate(exp, l, theta, vsteps, vlr, &pk, err, errlen);
            exp->n_way = w;
            exp->q_query = q;
            exp->eval_tasks = tt;
            if (prc)
                goto out;
            fprintf(stderr, "    step %5d  meta-loss %.4f  PEEK test %.4f\n", step,
                    m.loss_after, pk.mean.accuracy);
        }
    }
    if (val)
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
    int test_rot = 0;
    const char *out = NULL, *config = "configs/train-fmnist.yaml", *only = NULL;
    const char *relation = NULL, *rel_loss = "mse";
    int filters = 16, steps_x = 1, mirror = 1, train_way = 5, train_query = 15, shot = 0;
    int val_a = 0, val_b = 2, n_val = 2; /* T-shirt/top, Pullover */
    long seed = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--no-rot") == 0)
            rot = 0;
        else if (strcmp(argv[i], "--test-rot") == 0)
            test_rot = 1;
        else if (strcmp(argv[i], "--no-mirror") == 0)
            mirror = 0;
        else if (strcmp(argv[i], "--filters") == 0 && i + 1 < argc)
            filters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = atol(argv[++i]);
        else if (strcmp(argv[i], "--steps-x") == 0 && i + 1 < argc)
            steps_x = atoi(argv[++i]);
        else if (strcmp(argv[i], "--val-classes") == 0 && i + 1 < argc)
            n_val = sscanf(argv[++i], "%d,%d", &val_a, &val_b);
        else if (strcmp(argv[i], "--shot") == 0 && i + 1 < argc)
            shot = atoi(argv[++i]);
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
            fprintf(stderr, "usage: bench_meta_fmnist [--quick] [--no-rot] [--test-rot] [--no-mirror] "
                            "[--filters F] [--steps-x N] [--shot K] [--val-classes A,B] "
                            "[--train-way N] "
                            "[--train-query Q] "
                            "[--relation SPEC] [--relation-loss ce|mse] [--seed N] "
                            "[--only NAME,...] [--out FILE] [--config FILE]\n");
            return 2;
        }
    }
    if (filters < 1 || steps_x < 1 || train_way < 2 || train_query < 1 || shot < 0 ||
        n_val != 2 || val_a < 0 || val_a > 9 || val_b < 0 || val_b > 9 || val_a == val_b ||
        (strcmp(rel_loss, "mse") != 0 && strcmp(rel_loss, "ce") != 0)) {
        fprintf(stderr, "bench_meta_fmnist: bad --filters, --steps-x, --shot, --val-classes, --train-way, "
                        "--train-query or --relation-loss\n");
        return 2;
    }
    char path[1024], rel_spec[128];
    if (!out) {
        const char *dir = getenv("BENCH_RESULTS") ? getenv("BENCH_RESULTS") : "bench/results";
        snprintf(path, sizeof(path), "%s/meta_fmnist.json", dir);
        out = path;
    }
    /* The paper's relation module: conv blocks over two 16x3x3 maps stacked
     * on channels (algo_relation.c passes e_q + c_j and |e_q - c_j|), then
     * 8 hidden units. */
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
    if (shot > 0)
        exp->k_shot = (size_t)shot; /* training, validation and test episodes */
    /* Validation classes (default 0 T-shirt/top, 2 Pullover) with rotations,
     * from the t10k images; held out of the selection run's training. */
    size_t val_base[] = {(size_t)val_a, (size_t)val_b};
    s_val_t val = {.exp = exp, .tasks = quick ? 40 : 60, .n_way = exp->n_way, .q_query = 15};
    val.data = mfl_bench_fmnist_rotated(exp->test_data, val_base, 2, 1000);
    int val_ok = 0;
    for (size_t c = 0; c < exp->n_train_classes; c++)
        val_ok += exp->train_classes[c] == val_base[0] || exp->train_classes[c] == val_base[1];
    if (val_ok != 2) {
        fprintf(stderr, "bench_meta_fmnist: --val-classes must be two meta-train classes\n");
        return 2;
    }
    if (!val.data) {
        fprintf(stderr, "bench_meta_fmnist: cannot build the validation classes\n");
        return 1;
    }
    for (size_t r = 0; r < 4; r++)
        for (size_t c = 0; c < 2; c++)
            val.classes[val.n_classes++] = val_base[c] + r * exp->test_data->n_classes;
    /* --test-rot: the held-out classes and their rotations (class c rotated
     * r quarter turns is c + 10 r), t10k images; test episodes draw 5 of
     * these 20. Disjoint from the meta-train side in every orientation:
     * upright classes differ (the config loader checks) and a rotation
     * keeps its upright class mod 10. */
    size_t n_test0 = exp->n_test_classes;
    s_val_t trot = {.exp = exp, .tasks = exp->eval_tasks, .n_way = exp->n_way,
                    .q_query = EVAL_QUERY};
    if (test_rot) {
        trot.data = mfl_bench_fmnist_rotated(exp->test_data, exp->test_classes, n_test0, 1000);
        if (!trot.data || 4 * n_test0 > MFL_EXP_MAX_CLASSES) {
            fprintf(stderr, "bench_meta_fmnist: cannot build the rotated test classes\n");
            return 1;
        }
        for (size_t rq = 0; rq < 4; rq++)
            for (size_t c = 0; c < n_test0; c++)
                trot.classes[trot.n_classes++] =
                    exp->test_classes[c] + rq * exp->test_data->n_classes;
        for (size_t c = 0; c < trot.n_classes; c++)
            for (size_t t = 0; t < exp->n_train_classes; t++)
                if (trot.classes[c] % 10 == exp->train_classes[t] % 10) {
                    fprintf(stderr, "bench_meta_fmnist: test class %zu is a meta-train class "
                                    "in another orientation\n", trot.classes[c]);
                    return 2;
                }
    }
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
    /* the selection run's training classes: the meta-train classes (and
     * rotations) whose upright class is not a validation class */
    size_t all_cls[MFL_EXP_MAX_CLASSES], n_all = exp->n_train_classes;
    size_t fold_cls[MFL_EXP_MAX_CLASSES], n_fold = 0;
    memcpy(all_cls, exp->train_classes, sizeof all_cls);
    for (size_t c = 0; c < n_all; c++) {
        size_t up = all_cls[c] % 10;
        if (up != val_base[0] && up != val_base[1])
            fold_cls[n_fold++] = all_cls[c];
    }
    if (n_fold < (size_t)train_way || n_fold < exp->n_way) {
        fprintf(stderr, "bench_meta_fmnist: %zu classes left for the selection run\n", n_fold);
        return 2;
    }
    exp->log_every = quick ? 10 : 100;
    exp->eval_tasks = quick ? 100 : 300;
    trot.tasks = exp->eval_tasks;
    size_t eval_way = exp->n_way, gq = exp->q_query;
    struct {
        double acc, ci, loss, seconds, val_acc, tune_seconds, acc_rot, ci_rot;
        size_t failed, n_state;
        int steps, best_step, eval_steps, way, query;
        float eval_lr;
        int ran;
        char model[160];
    } r[N_METHODS];
    memset(r, 0, sizeof r);
    printf("Fashion-MNIST %zu-way %zu-shot, held-out classes, %d episodes x %d query/class; "
           "meta-train classes %zu (%s%s); validation: %d episodes of classes %zu, %zu and "
           "rotations (t10k), selection run trained on the other %zu; metric methods train "
           "%d-way, %d query/class\n",
           exp->n_way, exp->k_shot, exp->eval_tasks, EVAL_QUERY, exp->n_train_classes,
           rot ? "with rotations" : "upright", mirror ? ", mirrored" : "", val.tasks,
           val_base[0], val_base[1], n_fold, train_way, train_query);
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
            /* selection run: train without the validation classes, stop early */
            exp->n_way = (size_t)r[i].way;
            exp->q_query = (size_t)r[i].query;
            memcpy(exp->train_classes, fold_cls, sizeof fold_cls);
            exp->n_train_classes = n_fold;
            fprintf(stderr, "  %s: selection run, up to %d outer steps on %zu classes, %d-way "
                            "%d-query episodes\n",
                    m->name, r[i].steps, n_fold, r[i].way, r[i].query);
            int rc = s_train_early_stop(exp, l, theta, r[i].steps, &val, m->inner_steps,
                                        m->inner_lr, &r[i].best_step, &r[i].val_acc, err,
                                        sizeof(err));
            memcpy(exp->train_classes, all_cls, sizeof all_cls);
            exp->n_train_classes = n_all;
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
            /* the test-time (rate, steps) from the grid, on validation, at
             * the selection run's best state (scratch: the init) */
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
        if (r[i].best_step > 0) {
            /* the tested model: the same init, all classes, the chosen steps */
            t0 = s_now();
            mfl_learner_init_state(l, theta, exp->seed);
            exp->n_way = (size_t)r[i].way;
            exp->q_query = (size_t)r[i].query;
            fprintf(stderr, "  %s: %d outer steps on all %zu classes\n", m->name,
                    r[i].best_step, n_all);
            int bs;
            double ba;
            int rc = s_train_early_stop(exp, l, theta, r[i].best_step, NULL, m->inner_steps,
                                        m->inner_lr, &bs, &ba, err, sizeof(err));
            exp->n_way = eval_way;
            exp->q_query = gq;
            if (rc) {
                fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
                return 1;
            }
            r[i].seconds += s_now() - t0;
        } else if (r[i].steps > 0) {
            mfl_learner_init_state(l, theta, exp->seed); /* 0 steps chosen: the init */
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
        if (test_rot) {
            /* the same model and test-time (rate, steps), rotated test classes */
            if (s_validate(&trot, l, theta, r[i].eval_steps, r[i].eval_lr, &ev, err,
                           sizeof(err))) {
                fprintf(stderr, "bench_meta_fmnist: %s: %s\n", m->name, err);
                return 1;
            }
            r[i].acc_rot = ev.mean.accuracy;
            r[i].ci_rot = ev.accuracy_ci95;
            r[i].failed += ev.n_failed;
            fprintf(stderr, "  %s: --test-rot accuracy %.4f ±%.4f\n", m->name, r[i].acc_rot,
                    r[i].ci_rot);
        }
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
           "params", "way", "max", "steps", "val", "k", "lr", "acc ±95%", "vs scratch", "above",
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
    if (test_rot) {
        printf("--test-rot: test episodes draw 5 of the %zu held-out classes with rotations\n",
               trot.n_classes);
        printf("%-14s %16s %10s %6s\n", "method", "acc ±95%", "vs scratch", "above");
        for (size_t i = 0; i < N_METHODS; i++) {
            if (!r[i].ran)
                continue;
            int above = i > 0 && r[0].ran && r[i].acc_rot - r[i].ci_rot > r[0].acc_rot + r[0].ci_rot;
            printf("%-14s %8.4f ±%.4f %+10.4f %6s\n", s_methods[i].name, r[i].acc_rot,
                   r[i].ci_rot, r[i].acc_rot - r[0].acc_rot, i == 0 ? "-" : above ? "yes" : "no");
        }
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
               "\"relation_loss\":\"%s\",\"test_rot\":%s,\"seconds\":%.0f,\"train_classes\":[",
            quick ? "true" : "false", config, (unsigned long long)exp->seed, eval_way,
            exp->k_shot, gq, EVAL_QUERY, exp->eval_tasks, val.tasks, rot ? "true" : "false",
            mirror ? "true" : "false", train_way, train_query, rel_spec, rel_loss,
            test_rot ? "true" : "false", total);
    for (size_t i = 0; i < (rot ? n_all / 4 : n_all); i++)
        fprintf(f, "%s%zu", i ? "," : "", all_cls[i]);
    fprintf(f, "],\"val_classes\":[%zu,%zu],\"val_pseudo_classes\":%zu,"
               "\"selection_train_classes\":%zu,\"test_classes\":[",
            val_base[0], val_base[1], val.n_classes, n_fold);
    for (size_t i = 0; i < exp->n_test_classes; i++)
        fprintf(f, "%s%zu", i ? "," : "", exp->test_classes[i]);
    fprintf(f, "],\"test_rot_classes\":[");
    for (size_t i = 0; i < trot.n_classes; i++)
        fprintf(f, "%s%zu", i ? "," : "", trot.classes[i]);
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
                   "\"train_seconds\":%.2f,\"tune_seconds\":%.2f",
                first ? "" : ",", m->name, r[i].model, r[i].n_state, r[i].way, r[i].steps,
                r[i].best_step, r[i].val_acc, r[i].eval_steps, (double)r[i].eval_lr, r[i].acc,
                r[i].ci, isfinite(r[i].loss) ? r[i].loss : -1.0, r[i].acc - r[0].acc,
                i > 0 && r[0].ran && r[i].acc - r[i].ci > r[0].acc + r[0].ci ? "true" : "false",
                r[i].failed, r[i].seconds, r[i].tune_seconds);
        if (test_rot)
            fprintf(f, ",\"accuracy_rot\":%.5f,\"ci95_rot\":%.5f,\"vs_scratch_rot\":%.5f,"
                       "\"above_scratch_ci_rot\":%s",
                    r[i].acc_rot, r[i].ci_rot, r[i].acc_rot - r[0].acc_rot,
                    i > 0 && r[0].ran && r[i].acc_rot - r[i].ci_rot > r[0].acc_rot + r[0].ci_rot
                        ? "true"
                        : "false");
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "]}\n");
    fclose(f);
    printf("wrote %s\n", out);
    mfl_dataset_destroy(&val.data);
    mfl_dataset_destroy(&trot.data);
    mfl_experiment_destroy(&exp);
    return 0;
}
