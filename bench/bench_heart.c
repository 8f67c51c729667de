/* The evaluation harness on UCI Heart Disease (four real hospitals, the
 * FLamby split): issue 6, goal 1.
 *
 *   bench_heart flamby   FLamby's rows: pooled, local, FedAvg, FedAdam,
 *                        FedAdagrad (logistic regression, BCE)
 *   bench_heart personal federated model, then k = 10 / 100 fine-tuning
 *                        steps per site (FedAvg, Reptile β=1 / 0.5,
 *                        FOMAML, MAML, Meta-SGD; linear and MLP)
 *   bench_heart newsite  meta-train on three sites, adapt to the fourth
 *   bench_heart privacy  FedAvg under record-level DP-SGD at several ε (heart_privacy.h)
 *                        from k = 5 / 10 / 20 labelled cases
 *   bench_heart privacy-global  the one global model under DP: scaling, recipe by CV
 *                        (heart_privacy_global.h)
 *   bench_heart select   federated model selection (issue 16, heart_select.h): the
 *                        coordinator's defaults + default grid, personalised, paired
 *                        with FedAvg + fine-tuning; --split N for an untuned split
 *   bench_heart explore  rules that choose each site's adaptation, and ORACLE bounds
 *                        (the test rows choose: not results), heart_explore.h
 *
 * Options: --data DIR (default ${METAFL_SHARED:-../shared}/data/uci-heart-disease),
 * --out FILE.json, --quick (fewer seeds / draws), --seeds N (from 42),
 * --loop engine|harness (personal / newsite: the coordinator's round engine,
 * default, or the harness loop; flamby always uses the harness loop).
 *
 * Every site runs the production site worker (common/site/site_worker.h:
 * the same code a hospital's agent runs, RoundTask in, Δ out) and the
 * server averages with common/fed/aggregate.h then steps θ. s_fed_train()
 * is the one function to swap for the coordinator's round engine. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "heart_data.h"
#include "heart_engine.h"
#include "heart_fed.h"
#include "heart_select.h"

#define S_MAX_SEEDS 16

typedef struct {
    const char *data_dir;
    const char *out;
    int quick;
    int n_seeds;
} s_opts_t;

/* The federated training path of this run: the coordinator's round engine
 * (default for personal / newsite) or the harness loop (FLamby's rows, which
 * need per-site update counts and torch's init; or --loop harness). */
typedef int (*s_train_fn)(const s_fed_spec_t *, mfl_site_worker_t **, size_t, uint64_t,
                          float **, size_t *, char *, size_t);
static s_train_fn s_train = s_engine_train;
static const char *s_engine_desc = S_ENGINE_NAME;

/* max |harness preprocessing − data/heart.h|, or -1 if unchecked/failed */
static double s_data_check = -1;

/* ---- small statistics ---------------------------------------------------- */

static void s_mean_std(const double *v, int n, double *mean, double *sd)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m += v[i];
    m /= n;
    double s = 0;
    for (int i = 0; i < n; i++)
        s += (v[i] - m) * (v[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(s / (n - 1)) : 0.0;
}

/* acc[seed][site] → one JSON row with per-site and mean-of-4 mean ± std. */
static void s_json_row(FILE *f, const char *name, double acc[][S_HEART_SITES], int n_seeds,
                       const char *extra, int last)
{
    double v[S_MAX_SEEDS], m, sd;
    fprintf(f, "    {\"name\": \"%s\", ", name);
    if (extra && *extra)
        fprintf(f, "%s, ", extra);
    fprintf(f, "\"site_mean\": [");
    for (int s = 0; s < S_HEART_SITES; s++) {
        for (int k = 0; k < n_seeds; k++)
            v[k] = acc[k][s];
        s_mean_std(v, n_seeds, &m, &sd);
        fprintf(f, "%s%.4f", s ? ", " : "", m);
    }
    fprintf(f, "], \"site_std\": [");
    for (int s = 0; s < S_HEART_SITES; s++) {
        for (int k = 0; k < n_seeds; k++)
            v[k] = acc[k][s];
        s_mean_std(v, n_seeds, &m, &sd);
        fprintf(f, "%s%.4f", s ? ", " : "", sd);
    }
    for (int k = 0; k < n_seeds; k++) {
        v[k] = 0;
        for (int s = 0; s < S_HEART_SITES; s++)
            v[k] += acc[k][s] / S_HEART_SITES;
    }
    s_mean_std(v, n_seeds, &m, &sd);
    fprintf(f, "], \"mean4\": %.4f, \"mean4_std\": %.4f}%s\n", m, sd, last ? "" : ",");
    printf("  %-34s %.4f ± %.4f  [", name, m, sd);
    for (int s = 0; s < S_HEART_SITES; s++) {
        double mm, ss;
        for (int k = 0; k < n_seeds; k++)
            v[k] = acc[k][s];
        s_mean_std(v, n_seeds, &mm, &ss);
        printf("%s%.3f", s ? " " : "", mm);
    }
    printf("]\n");
    fflush(stdout);
}

static FILE *s_open_out(const s_opts_t *o, const char *bench, const char *argv0)
{
    FILE *f = s_bench_open_results("bench_heart", o->out, bench);
    if (!f)
        return NULL;
    fprintf(f, "  \"command\": \"%s %s%s\",\n", argv0, bench, o->quick ? " --quick" : "");
    fprintf(f, "  \"engine\": \"%s\",\n  \"data_check_max_diff\": %.3g,\n", s_engine_desc,
            s_data_check);
    fprintf(f, "  \"seeds\": [");
    for (int k = 0; k < o->n_seeds; k++)
        fprintf(f, "%s%d", k ? ", " : "", 42 + k);
    fprintf(f, "],\n");
    return f;
}

static void s_json_majority(FILE *f, const s_heart_t *h)
{
    double acc[1][S_HEART_SITES];
    for (int s = 0; s < S_HEART_SITES; s++)
        acc[0][s] = s_heart_majority(h->train[s], h->test[s]);
    fprintf(f, "  \"majority\": [%.4f, %.4f, %.4f, %.4f],\n", acc[0][0], acc[0][1], acc[0][2],
            acc[0][3]);
}

/* ---- goal 1(a): FLamby's rows -------------------------------------------- */

#define S_CENTRAL_LR 1e-2f

/* FLamby fed_heart_disease (common.py, config_heart_disease.json): batch 4,
 * pooled / local: Adam lr 1e-3 for 50 epochs; federated (fed_benchmark.py
 * run_num_updates = [100]): 100 local SGD updates per round,
 * (486 // 4 // 4) * 50 // 100 = 15 rounds;
 * FedAvg local lr 1e-3; FedAdam local 1e-2, server 1e-2 (β 0.9/0.999,
 * τ 1e-8); FedAdagrad local 3.162e-3, server 0.316228. */
static int s_run_flamby(const s_opts_t *o, const s_heart_t *h, const char *argv0)
{
    char err[512];
    static double pooled[S_MAX_SEEDS][S_HEART_SITES], pooled_ps[S_MAX_SEEDS][S_HEART_SITES],
        local[S_MAX_SEEDS][S_HEART_SITES],
        cleve[S_MAX_SEEDS][S_HEART_SITES], fedavg[S_MAX_SEEDS][S_HEART_SITES],
        fedadam[S_MAX_SEEDS][S_HEART_SITES], fedadagrad[S_MAX_SEEDS][S_HEART_SITES],
        fedavg_eng[S_MAX_SEEDS][S_HEART_SITES];
    s_fed_spec_t central;
    s_fed_spec_defaults(&central, "fedavg", "linear:13-1");
    central.algo.local_epochs = 50;
    central.algo.batch_size = 4;
    central.algo.inner_lr = S_CENTRAL_LR; /* FedAvg's local SGD (no Adam there) */
    central.rounds = 1;
    central.torch_init = 1;

    s_fed_spec_t fed[3];
    const char *fed_name[3] = {"FedAvg", "FedAdam", "FedAdagrad"};
    double (*fed_acc[3])[S_HEART_SITES] = {fedavg, fedadam, fedadagrad};
    const float local_lr[3] = {1e-3f, 1e-2f, 3.162e-3f};
    const char *server[3] = {"sgd", "adam", "adagrad"};
    const float server_lr[3] = {1.0f, 1e-2f, 0.316228f};
    for (int a = 0; a < 3; a++) {
        s_fed_spec_defaults(&fed[a], "fedavg", "linear:13-1");
        /* FLamby: 100 local updates; the learner's FedAvg counts epochs, so
         * each site gets round(100 · 4 / n_train) epochs: 2, 2, 13, 5. */
        fed[a].local_updates = 100;
        fed[a].torch_init = 1;
        fed[a].algo.batch_size = 4;
        fed[a].algo.inner_lr = local_lr[a];
        fed[a].rounds = 15;
        fed[a].server = server[a];
        fed[a].server_lr = server_lr[a];
    }

    /* FLamby's own FedOpt server rule (no bias correction; harness only). */
    s_fed_spec_t fed_fl[2] = {fed[1], fed[2]};
    fed_fl[0].server = "flamby_adam";
    fed_fl[1].server = "flamby_adagrad";
    static double fl_acc[2][S_MAX_SEEDS][S_HEART_SITES];
    s_fed_spec_t fed_eng = fed[0];
    fed_eng.local_updates = 0;
    fed_eng.algo.local_epochs = 2;
    fed_eng.torch_init = 0;
    for (int k = 0; k < o->n_seeds; k++) {
        uint64_t seed = 42 + (uint64_t)k;
        s_fleet_t pool = {0}, own = {0};
        if (s_fleet_pooled(&pool, h, err, sizeof err) != 0 ||
            s_fleet_own(&own, h, 0, err, sizeof err) != 0)
            goto fail;
        /* Pooled: one "site" holding all 486 training rows. */
        float *theta = NULL;
        size_t n = 0;
        if (s_fed_train(&central, &pool.train_worker, 1, seed, &theta, &n, err, sizeof err) != 0)
            goto fail;
        /* FLamby scores the pooled model on the per-site test loaders, i.e.
         * with each site's own statistics (fed_benchmark.py: test_dls); the
         * consistent scoring (pooled statistics) is the extra row. */
        for (int s = 0; s < S_HEART_SITES; s++)
            if (s_score(own.workers[s], &central, theta, n, 0, 0, 0, 0, &pooled[k][s], NULL,
                        err, sizeof err) != 0 ||
                s_score(pool.eval[s], &central, theta, n, 0, 0, 0, 0, &pooled_ps[k][s], NULL,
                        err, sizeof err) != 0)
                goto fail;
        free(theta);
        /* Local: each site alone; Cleveland's model also scored everywhere. */
        for (int s = 0; s < S_HEART_SITES; s++) {
            if (s_fed_train(&central, &own.workers[s], 1, seed, &theta, &n, err, sizeof err) != 0)
                goto fail;
            if (s_score(own.workers[s], &central, theta, n, 0, 0, 0, 0, &local[k][s], NULL, err,
                        sizeof err) != 0)
                goto fail;
            if (s == 0)
                for (int t = 0; t < S_HEART_SITES; t++)
                    if (s_score(own.workers[t], &central, theta, n, 0, 0, 0, 0, &cleve[k][t], NULL,
                                err, sizeof err) != 0)
                        goto fail;
            free(theta);
        }
        for (int a = 0; a < 3; a++) {
            if (s_fed_train(&fed[a], own.workers, S_HEART_SITES, seed, &theta, &n, err,
                            sizeof err) != 0)
                goto fail;
            for (int s = 0; s < S_HEART_SITES; s++)
                if (s_score(own.workers[s], &fed[a], theta, n, 0, 0, 0, 0, &fed_acc[a][k][s], NULL,
                            err, sizeof err) != 0)
                    goto fail;
            free(theta);
        }
        for (int a = 0; a < 2; a++) {
            if (s_fed_train(&fed_fl[a], own.workers, S_HEART_SITES, seed, &theta, &n, err,
                            sizeof err) != 0)
                goto fail;
            for (int s = 0; s < S_HEART_SITES; s++)
                if (s_score(own.workers[s], &fed_fl[a], theta, n, 0, 0, 0, 0, &fl_acc[a][k][s],
                            NULL, err, sizeof err) != 0)
                    goto fail;
            free(theta);
        }
        /* Cross-check through the production round engine: FedAvg with one
         * task for all sites (2 local epochs) and the engine's own θ₀. */
        if (s_engine_train(&fed_eng, own.workers, S_HEART_SITES, seed, &theta, &n, err,
                           sizeof err) != 0)
            goto fail;
        for (int s = 0; s < S_HEART_SITES; s++)
            if (s_score(own.workers[s], &fed_eng, theta, n, 0, 0, 0, 0, &fedavg_eng[k][s], NULL,
                        err, sizeof err) != 0)
                goto fail;
        free(theta);
        s_fleet_free(&pool);
        s_fleet_free(&own);
        printf("seed %llu done\n", (unsigned long long)seed);
        fflush(stdout);
        continue;
fail:
        fprintf(stderr, "bench_heart flamby: seed %llu: %s\n", (unsigned long long)seed, err);
        s_fleet_free(&pool);
        s_fleet_free(&own);
        return -1;
    }
    FILE *f = s_open_out(o, "flamby", argv0);
    if (!f)
        return -1;
    s_json_majority(f, h);
    fprintf(f, "  \"settings\": {\"model\": \"linear:13-1\", \"loss\": \"bce\", \"batch\": 4, "
               "\"central\": \"sgd lr 1e-2, batch 4, 50 epochs (FLamby: adam 1e-3)\", "
               "\"rounds\": 15, \"local\": \"round(100*4/n_train) epochs of batch 4 = 2,2,13,5 (FLamby: 100 updates)\", "
               "\"fedavg\": \"local sgd 1e-3, server sgd 1\", "
               "\"fedadam\": \"local sgd 1e-2, server adam 1e-2\", "
               "\"fedadagrad\": \"local sgd 3.162e-3, server adagrad 0.316228\"},\n");
    fprintf(f, "  \"anchors\": {\"pooled\": [0.7827, 0.7640, 0.7500, 0.6444, 0.7353], "
               "\"FedAvg\": [0.7308, 0.7191, 0.6500, 0.6400, 0.6850], "
               "\"FedAdam\": [0.7519, 0.7461, 0.7375, 0.6667, 0.7255], "
               "\"FedAdagrad\": [0.7596, 0.7528, 0.7375, 0.6756, 0.7314], "
               "\"local Cleveland only\": [0.7462, 0.7596, 0.7250, 0.6578, 0.7221]},\n");
    fprintf(f, "  \"rows\": [\n");
    printf("flamby (mean of 4 ± std over seeds; per site)\n");
    s_json_row(f, "pooled", pooled, o->n_seeds, "", 0);
    s_json_row(f, "pooled, test scaled with pooled stats", pooled_ps, o->n_seeds, "", 0);
    s_json_row(f, "local Cleveland only", cleve, o->n_seeds, "", 0);
    s_json_row(f, "local (each site its own)", local, o->n_seeds, "", 0);
    for (int a = 0; a < 3; a++)
        s_json_row(f, fed_name[a], fed_acc[a], o->n_seeds, "", 0);
    s_json_row(f, "FedAdam with FLamby's server rule (no bias correction; harness only)",
               fl_acc[0], o->n_seeds, "", 0);
    s_json_row(f, "FedAdagrad with FLamby's server rule (harness only)", fl_acc[1], o->n_seeds,
               "", 0);
    s_json_row(f, "FedAvg via the round engine (2 epochs at every site, engine init)",
               fedavg_eng, o->n_seeds, "", 1);
    fprintf(f, "  ]\n}\n");
    fclose(f);
    return 0;
}

/* ---- goal 1(b): personalisation ------------------------------------------ */

typedef struct {
    const char *label;
    const char *algo;
    float server_lr; /* Reptile β; 1 elsewhere */
} s_variant_t;

static const s_variant_t s_variants[] = {
    {"FedAvg", "fedavg", 1.0f},   {"Reptile b=1", "reptile", 1.0f},
    {"Reptile b=0.5", "reptile", 0.5f}, {"FOMAML", "fomaml", 1.0f},
    {"MAML", "maml", 1.0f},       {"Meta-SGD", "meta_sgd", 1.0f},
};
#define S_N_VARIANTS (sizeof s_variants / sizeof s_variants[0])

static const char *const s_models[] = {"linear:13-1", "mlp:13-32-1"};
#define S_N_MODELS 2

/* The local recipe of each variant (documented in docs/BENCHMARKS.md). */
static void s_variant_spec(const s_variant_t *v, const char *model, s_fed_spec_t *sp)
{
    s_fed_spec_defaults(sp, v->algo, model);
    sp->rounds = 30;
    sp->server = "sgd";
    sp->server_lr = v->server_lr;
    if (strcmp(v->algo, "fedavg") == 0) {
        sp->algo.local_epochs = 1;
        sp->algo.batch_size = 16;
        sp->algo.inner_lr = 0.05f;
    } else {
        sp->algo.inner_steps = 5;
        sp->algo.inner_lr = 0.05f;
        sp->algo.meta_batch = 4;
        sp->algo.outer_steps = 10;
        sp->algo.outer_lr = strcmp(v->algo, "reptile") == 0 ? 0.5f : 0.01f;
        sp->algo.outer_optim = strcmp(v->algo, "reptile") == 0 ? "sgd" : "adam";
        sp->algo.batch_size = 16; /* support and query rows per task */
    }
}

#define S_FT_LR 0.05f

static int s_run_personal(const s_opts_t *o, const s_heart_t *h, const char *argv0)
{
    char err[512];
    static const int ks[2] = {10, 100};
    /* acc[model][variant][k-index 0 = before, 1 = k10, 2 = k100][seed][site] */
    static double acc[S_N_MODELS][S_N_VARIANTS][3][S_MAX_SEEDS][S_HEART_SITES];
    static int diverged[S_N_MODELS][S_N_VARIANTS][3];
    for (int k = 0; k < o->n_seeds; k++) {
        uint64_t seed = 42 + (uint64_t)k;
        s_fleet_t own = {0};
        if (s_fleet_own(&own, h, 0, err, sizeof err) != 0)
            goto fail;
        for (int m = 0; m < S_N_MODELS; m++) {
            for (size_t v = 0; v < S_N_VARIANTS; v++) {
                s_fed_spec_t sp;
                s_variant_spec(&s_variants[v], s_models[m], &sp);
                float *theta = NULL;
                size_t n = 0;
                if (s_train(&sp, own.workers, S_HEART_SITES, seed, &theta, &n, err, sizeof err) !=
                    0)
                    goto fail;
                for (int s = 0; s < S_HEART_SITES; s++)
                    for (int j = 0; j < 2; j++) {
                        double before = 0;
                        int rc = s_score(own.workers[s], &sp, theta, n, ks[j], S_FT_LR, 0, 0,
                                         &acc[m][v][j + 1][k][s], &before, err, sizeof err);
                        if (rc < 0) {
                            free(theta);
                            goto fail;
                        }
                        diverged[m][v][j + 1] += rc;
                        if (rc == 0)
                            acc[m][v][0][k][s] = before;
                    }
                free(theta);
            }
        }
        s_fleet_free(&own);
        printf("seed %llu done\n", (unsigned long long)seed);
        fflush(stdout);
        continue;
fail:
        fprintf(stderr, "bench_heart personal: seed %llu: %s\n", (unsigned long long)seed, err);
        s_fleet_free(&own);
        return -1;
    }
    FILE *f = s_open_out(o, "personal", argv0);
    if (!f)
        return -1;
    s_json_majority(f, h);
    fprintf(f, "  \"settings\": {\"rounds\": 30, \"fine_tune_lr\": %.3f, \"fine_tune_rows\": "
               "\"all of the site's training rows (learner batch)\", "
               "\"fedavg\": \"1 local epoch sgd lr 0.05 batch 16\", "
               "\"meta\": \"5 inner steps lr 0.05, meta-batch 4, 10 outer steps, support/query 16 "
               "rows; reptile outer sgd 0.5, others adam 0.01\"},\n",
            (double)S_FT_LR);
    fprintf(f, "  \"goal\": 0.81,\n  \"rows\": [\n");
    printf("personalisation\n");
    for (int m = 0; m < S_N_MODELS; m++)
        for (size_t v = 0; v < S_N_VARIANTS; v++)
            for (int j = 0; j < 3; j++) {
                char name[128], extra[160];
                static const int steps[3] = {0, 10, 100};
                snprintf(name, sizeof name, "%s %s k=%d", s_models[m], s_variants[v].label,
                         steps[j]);
                snprintf(extra, sizeof extra,
                         "\"model\": \"%s\", \"algo\": \"%s\", \"steps\": %d, "
                         "\"diverged\": %d",
                         s_models[m], s_variants[v].label, steps[j], diverged[m][v][j]);
                int last = m == S_N_MODELS - 1 && v == S_N_VARIANTS - 1 && j == 2;
                s_json_row(f, name, acc[m][v][j], o->n_seeds, extra, last);
            }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    return 0;
}

/* k rows of `train` drawn stratified by label with `rng` (both classes
 * kept in proportion, at least one of each when k >= 2), as a new set. */
static mfl_dataset_t *s_draw_support(const mfl_dataset_t *train, size_t k, mfl_rng_t *rng)
{
    size_t n = train->n, n_pos = 0;
    size_t *pos = malloc(n * sizeof *pos), *neg = malloc(n * sizeof *neg);
    size_t *idx = malloc((k ? k : 1) * sizeof *idx);
    mfl_dataset_t *d = NULL;
    if (!pos || !neg || !idx || k == 0 || k > n)
        goto out;
    size_t np = 0, nn = 0;
    for (size_t i = 0; i < n; i++) {
        if (train->y[i] > 0.5f)
            pos[np++] = i;
        else
            neg[nn++] = i;
    }
    n_pos = np;
    mfl_rng_shuffle(rng, pos, np);
    mfl_rng_shuffle(rng, neg, nn);
    size_t kp = (size_t)((double)k * (double)n_pos / (double)n + 0.5);
    if (k >= 2 && kp == 0 && np > 0)
        kp = 1;
    if (k >= 2 && kp == k && nn > 0)
        kp = k - 1;
    if (kp > np)
        kp = np;
    if (k - kp > nn)
        kp = k - nn;
    for (size_t i = 0; i < kp; i++)
        idx[i] = pos[i];
    for (size_t i = kp; i < k; i++)
        idx[i] = neg[i - kp];
    d = mfl_dataset_subset(train, idx, k);
    if (d)
        d->n_classes = train->n_classes;
out:
    free(pos);
    free(neg);
    free(idx);
    return d;
}

/* ---- goal 1(c): a new hospital ------------------------------------------- */

static void s_drawn_free(mfl_site_worker_t *drawn[S_HEART_SITES][3][20])
{
    for (int i = 0; i < S_HEART_SITES; i++)
        for (int a = 0; a < 3; a++)
            for (int d = 0; d < 20; d++)
                mfl_site_worker_destroy(&drawn[i][a][d]);
}

static int s_run_newsite(const s_opts_t *o, const s_heart_t *h, const char *argv0)
{
    char err[512];
    static const int shots[3] = {5, 10, 20};
    static const int steps[2] = {10, 100};
    const int draws = o->quick ? 5 : 20; /* ≤ S_MAX_DRAWS */
    /* methods: the variants, then "scratch" (fresh θ, same adaptation). */
    enum { N_METHODS = S_N_VARIANTS + 1 };
    /* sum[model][method][shot][steps][held-out site], over seeds × draws */
    static double sum[S_N_MODELS][N_METHODS][3][2][S_HEART_SITES];
    /* per seed, mean over held-out sites and draws: for the std over seeds */
    static double per_seed[S_N_MODELS][N_METHODS][3][2][S_MAX_SEEDS];
    static int diverged[S_N_MODELS][N_METHODS][3][2];
    memset(sum, 0, sizeof sum);
    memset(per_seed, 0, sizeof per_seed);
    /* The new hospital's labelled cases: for each (held-out site, k, draw)
     * a worker whose training split IS the k drawn rows (so the production
     * EvalTask path adapts on exactly them; k_shot 0 = all its rows) and
     * whose held-out split is the site's test rows. */
    enum { S_MAX_DRAWS = 20 };
    static mfl_site_worker_t *drawn[S_HEART_SITES][3][S_MAX_DRAWS];
    for (int k = 0; k < o->n_seeds; k++) {
        uint64_t seed = 42 + (uint64_t)k;
        s_fleet_t own = {0};
        memset(drawn, 0, sizeof drawn);
        if (s_fleet_own(&own, h, 0, err, sizeof err) != 0)
            goto fail;
        for (int held = 0; held < S_HEART_SITES; held++)
            for (int a = 0; a < 3; a++)
                for (int d = 0; d < draws; d++) {
                    mfl_rng_t r;
                    mfl_rng_seed(&r, seed, 0x6e6577ULL * 1000003u + (uint64_t)held * 10007u +
                                               (uint64_t)a * 101u + (uint64_t)d);
                    mfl_dataset_t *sup = s_draw_support(h->train[held], (size_t)shots[a], &r);
                    if (!sup) {
                        mfl_errf(err, sizeof err, "cannot draw %d rows", shots[a]);
                        goto fail;
                    }
                    drawn[held][a][d] = s_worker(s_heart_site_names[held], sup, h->test[held],
                                                 err, sizeof err);
                    mfl_dataset_destroy(&sup);
                    if (!drawn[held][a][d])
                        goto fail;
                }
        for (int m = 0; m < S_N_MODELS; m++) {
            for (int held = 0; held < S_HEART_SITES; held++) {
                mfl_site_worker_t *three[S_HEART_SITES - 1];
                for (int s = 0, j = 0; s < S_HEART_SITES; s++)
                    if (s != held)
                        three[j++] = own.workers[s];
                for (size_t v = 0; v < N_METHODS; v++) {
                    s_fed_spec_t sp;
                    s_variant_spec(&s_variants[v < S_N_VARIANTS ? v : 0], s_models[m], &sp);
                    float *theta = NULL;
                    size_t n = 0;
                    int rc = v < S_N_VARIANTS
                                 ? s_train(&sp, three, S_HEART_SITES - 1, seed, &theta, &n, err,
                                           sizeof err)
                                 : s_fed_init(&sp, seed, &theta, &n, err, sizeof err);
                    if (rc != 0)
                        goto fail;
                    for (int a = 0; a < 3; a++)
                        for (int b = 0; b < 2; b++) {
                            double mean = 0;
                            for (int d = 0; d < draws; d++) {
                                double acc = 0;
                                uint32_t draw_round = (uint32_t)(1000 + d);
                                int src = s_score(drawn[held][a][d], &sp, theta, n, steps[b],
                                                  S_FT_LR, 0, draw_round, &acc, NULL, err,
                                                  sizeof err);
                                if (src < 0) {
                                    free(theta);
                                    goto fail;
                                }
                                diverged[m][v][a][b] += src;
                                mean += acc / draws;
                            }
                            sum[m][v][a][b][held] += mean / o->n_seeds;
                            per_seed[m][v][a][b][k] += mean / S_HEART_SITES;
                        }
                    free(theta);
                }
            }
        }
        s_fleet_free(&own);
        s_drawn_free(drawn);
        printf("seed %llu done\n", (unsigned long long)seed);
        fflush(stdout);
        continue;
fail:
        fprintf(stderr, "bench_heart newsite: seed %llu: %s\n", (unsigned long long)seed, err);
        s_fleet_free(&own);
        s_drawn_free(drawn);
        return -1;
    }
    FILE *f = s_open_out(o, "newsite", argv0);
    if (!f)
        return -1;
    fprintf(f, "  \"draws_per_seed\": %d,\n  \"goal\": 0.78,\n", draws);
    fprintf(f, "  \"settings\": {\"rounds\": 30, \"adapt_lr\": %.3f, \"adaptation\": \"full-batch "
               "SGD on k rows drawn stratified from the new site's training rows (a fresh draw "
               "per seed, site, k and draw; the site worker's EvalTask adapts on exactly "
               "them); scored on its test rows; the "
               "new site's features scaled with its own training-row statistics (no labels "
               "needed)\", \"scratch\": \"fresh He-uniform init, same adaptation\", "
               "\"diverged\": \"adaptations with a non-finite loss, scored 0\"},\n",
            (double)S_FT_LR);
    fprintf(f, "  \"rows\": [\n");
    printf("new hospital (mean over held-out sites, seeds, draws)\n");
    for (int m = 0; m < S_N_MODELS; m++)
        for (size_t v = 0; v < N_METHODS; v++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 2; b++) {
                    const char *label = v < S_N_VARIANTS ? s_variants[v].label : "scratch";
                    double *p = sum[m][v][a][b];
                    double mean4 = 0, sd4 = 0;
                    s_mean_std(per_seed[m][v][a][b], o->n_seeds, &mean4, &sd4);
                    int last = m == S_N_MODELS - 1 && v == N_METHODS - 1 && a == 2 && b == 1;
                    fprintf(f,
                            "    {\"model\": \"%s\", \"algo\": \"%s\", \"k\": %d, \"steps\": %d, "
                            "\"site_mean\": [%.4f, %.4f, %.4f, %.4f], \"mean4\": %.4f, "
                            "\"mean4_std\": %.4f, \"diverged\": %d}%s\n",
                            s_models[m], label, shots[a], steps[b], p[0], p[1], p[2], p[3], mean4,
                            sd4, diverged[m][v][a][b], last ? "" : ",");
                    printf("  %-12s %-14s k=%-2d steps=%-3d %.4f ± %.4f\n", s_models[m], label,
                           shots[a], steps[b], mean4, sd4);
                }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    return 0;
}

#include "heart_privacy.h" /* bench_heart privacy (issue 11) */
#include "heart_privacy_global.h" /* bench_heart privacy-global (issue 11) */

/* ---- issue 16: federated model selection ---------------------------------- */

/* --split N (N > 0): instead of FLamby's split, each site's 740 rows
 * (train + test) are split again 66/34, stratified, with seed N and the
 * site: a split nobody tuned on. The rows keep FLamby's standardisation
 * (from FLamby's training rows: no labels involved). */
static int s_resplit(s_heart_t *h, uint64_t split)
{
    for (int s = 0; s < S_HEART_SITES; s++) {
        const mfl_dataset_t *both[2] = {h->train[s], h->test[s]};
        mfl_dataset_t *all = mfl_dataset_concat(both, 2), *tr = NULL, *te = NULL;
        if (!all)
            return -1;
        mfl_rng_t rng;
        mfl_rng_seed(&rng, split, 0x73706c6974ull + (uint64_t)s); /* "split" */
        int rc = mfl_dataset_split(all, 0.66, &rng, &tr, &te);
        mfl_dataset_destroy(&all);
        if (rc != 0)
            return -1;
        mfl_dataset_destroy(&h->train[s]);
        mfl_dataset_destroy(&h->test[s]);
        h->train[s] = tr;
        h->test[s] = te;
        /* The same rows unscaled (the split reads labels and the seed only). */
        const mfl_dataset_t *rboth[2] = {h->rtrain[s], h->rtest[s]};
        all = mfl_dataset_concat(rboth, 2);
        tr = te = NULL;
        if (!all)
            return -1;
        mfl_rng_seed(&rng, split, 0x73706c6974ull + (uint64_t)s);
        rc = mfl_dataset_split(all, 0.66, &rng, &tr, &te);
        mfl_dataset_destroy(&all);
        if (rc != 0)
            return -1;
        mfl_dataset_destroy(&h->rtrain[s]);
        mfl_dataset_destroy(&h->rtest[s]);
        h->rtrain[s] = tr;
        h->rtest[s] = te;
    }
    return 0;
}

/* s_fleet_own, plus the unscaled rows with --standardize federated. */
static int s_sel_fleet(s_fleet_t *f, const s_heart_t *h, char *err, size_t errlen)
{
    if (s_fleet_own(f, h, 0, err, errlen) != 0)
        return -1;
    for (int s = 0; s < S_HEART_SITES; s++)
        if (s_sel_enable_raw(f->workers[s], h->rtrain[s], h->rtest[s], err, errlen) != 0)
            return -1;
    return 0;
}

/* --sel-rounds N: selection.rounds (default 5). */
static uint32_t s_sel_rounds_opt;

static int s_run_select(const s_opts_t *o, s_heart_t *h, const char *argv0, uint64_t split)
{
    char err[512];
    if (split && s_resplit(h, split) != 0) {
        fprintf(stderr, "bench_heart select: re-split failed\n");
        return -1;
    }
    /* [seed][site]: selection personalised / its global model; the
     * defaults without selection (personalised); FedAvg + 100 steps. */
    static double sel_p[S_MAX_SEEDS][S_HEART_SITES], sel_g[S_MAX_SEEDS][S_HEART_SITES],
        def_p[S_MAX_SEEDS][S_HEART_SITES], fa_ft[S_MAX_SEEDS][S_HEART_SITES],
        diff[S_MAX_SEEDS][S_HEART_SITES], site_p[S_MAX_SEEDS][S_HEART_SITES],
        diff2[S_MAX_SEEDS][S_HEART_SITES], loho[S_MAX_SEEDS][S_HEART_SITES],
        loho_cv[S_MAX_SEEDS][S_HEART_SITES], def_site[S_MAX_SEEDS][S_HEART_SITES],
        loho_or[S_MAX_SEEDS][S_HEART_SITES],
        oracle[S_MAX_SEEDS][S_HEART_SITES];
    static char loho_win[S_MAX_SEEDS][S_HEART_SITES][MFL_SELECT_DESC_MAX];
    const int draws = o->quick ? 5 : 20;
    static char winners[S_MAX_SEEDS][MFL_SELECT_DESC_MAX];
    size_t win_idx[S_MAX_SEEDS];
    uint32_t sel_rounds = o->quick ? 2 : s_sel_rounds_opt ? s_sel_rounds_opt : 5;
    for (int k = 0; k < o->n_seeds; k++) {
        uint64_t seed = 42 + (uint64_t)k;
        s_fleet_t own = {0};
        const char *ids[S_HEART_SITES];
        for (int s = 0; s < S_HEART_SITES; s++)
            ids[s] = s_heart_site_names[s];
        static mfl_coord_config_t c;
        mfl_eval_report_t fin[S_HEART_SITES];
        char desc[MFL_SELECT_DESC_MAX];
        size_t w = 0;
        if (s_sel_fleet(&own, h, err, sizeof err) != 0)
            goto fail;
        s_sel_config(&c, S_HEART_FEATURES, seed, sel_rounds, true);
        if (o->quick)
            c.rounds = 10;
        float *sel_theta = NULL;
        size_t sel_n = 0;
        mfl_select_candidate_t trained;
        if (s_sel_run(own.workers, S_HEART_SITES, ids, &c, fin, &w, desc, &sel_theta, &sel_n,
                      &trained, err, sizeof err) != 0)
            goto fail;
        win_idx[k] = w;
        for (int s = 0; s < S_HEART_SITES; s++) {
            uint32_t st = 0;
            float lr = 0;
            if (s_sel_site_adapt(own.workers[s], &trained.learner, sel_theta, sel_n, seed,
                                 &site_p[k][s],
                                 &st, &lr, err, sizeof err) != 0 ||
                s_sel_oracle(own.workers[s], &trained.learner, sel_theta, sel_n, &oracle[k][s],
                             err, sizeof err) != 0) {
                free(sel_theta);
                goto fail;
            }
            if (getenv("X_VERBOSE"))
                printf("  seed %d site %d: %u steps rate %g -> %.3f (oracle %.3f)\n", k, s, st,
                       (double)lr, site_p[k][s], oracle[k][s]);
        }
        free(sel_theta);
        snprintf(winners[k], sizeof winners[k], "%s", desc);
        for (int s = 0; s < S_HEART_SITES; s++) {
            sel_p[k][s] = fin[s].accuracy;
            sel_g[k][s] = fin[s].accuracy_before;
        }
        s_fleet_free(&own);
        memset(&own, 0, sizeof own);
        /* The same defaults without selection. */
        if (s_sel_fleet(&own, h, err, sizeof err) != 0)
            goto fail;
        s_sel_config(&c, S_HEART_FEATURES, seed, sel_rounds, false);
        if (o->quick)
            c.rounds = 10;
        float *def_theta = NULL;
        size_t def_n = 0;
        mfl_select_candidate_t def_cand;
        if (s_sel_run(own.workers, S_HEART_SITES, ids, &c, fin, &w, desc, &def_theta, &def_n,
                      &def_cand, err, sizeof err) != 0)
            goto fail;
        for (int s = 0; s < S_HEART_SITES; s++) {
            def_p[k][s] = fin[s].accuracy;
            uint32_t st = 0;
            float lr = 0;
            if (s_sel_site_adapt(own.workers[s], &def_cand.learner, def_theta, def_n, seed,
                                 &def_site[k][s], &st, &lr, err, sizeof err) != 0) {
                free(def_theta);
                goto fail;
            }
        }
        free(def_theta);
        s_fleet_free(&own);
        memset(&own, 0, sizeof own);
        /* FedAvg + fine-tuning (the personal bench's linear FedAvg, 100 steps). */
        if (s_sel_fleet(&own, h, err, sizeof err) != 0)
            goto fail;
        s_fed_spec_t sp;
        s_variant_spec(&s_variants[0], "linear:13-1", &sp);
        float *theta = NULL;
        size_t n = 0;
        if (s_engine_train(&sp, own.workers, S_HEART_SITES, seed, &theta, &n, err, sizeof err))
            goto fail;
        for (int s = 0; s < S_HEART_SITES; s++) {
            double before = 0;
            if (s_score(own.workers[s], &sp, theta, n, 100, S_FT_LR, 0, 0, &fa_ft[k][s], &before,
                        err, sizeof err) < 0) {
                free(theta);
                goto fail;
            }
            diff[k][s] = sel_p[k][s] - fa_ft[k][s];
            diff2[k][s] = site_p[k][s] - fa_ft[k][s];
        }
        free(theta);
        /* Leave one hospital out: selection and training on the other
         * three (their selection scores adapt on 10 fit cases, as the new
         * hospital will), then the held-out hospital adapts the result on
         * k = 10 drawn cases with the chosen rate and steps. */
        for (int held = 0; held < S_HEART_SITES && !split; held++) {
            mfl_site_worker_t *three[S_HEART_SITES - 1];
            const char *ids3[S_HEART_SITES - 1];
            for (int s = 0, j = 0; s < S_HEART_SITES; s++)
                if (s != held) {
                    three[j] = own.workers[s];
                    ids3[j++] = s_heart_site_names[s];
                }
            s_sel_config(&c, S_HEART_FEATURES, seed, sel_rounds, true);
            c.k_shot = 10;
            if (o->quick)
                c.rounds = 10;
            float *lt = NULL;
            size_t ln = 0;
            mfl_select_candidate_t chosen;
            mfl_eval_report_t fin3[S_HEART_SITES - 1];
            size_t w3 = 0;
            if (s_sel_run(three, S_HEART_SITES - 1, ids3, &c, fin3, &w3, loho_win[k][held], &lt,
                          &ln, &chosen, err, sizeof err) != 0)
                goto fail;
            double mean = 0, mean_cv = 0;
            /* ORACLE: one (steps, rate) of the grid per held-out hospital
             * and seed, chosen by its mean test accuracy over the draws. */
            static const uint32_t g_steps[] = MFL_SITE_ADAPT_STEPS;
            static const float g_rates[] = MFL_SITE_ADAPT_RATES;
            enum { S_NG = (sizeof g_steps / sizeof *g_steps) * (sizeof g_rates / sizeof *g_rates) };
            double og[S_NG];
            memset(og, 0, sizeof og);
            for (int d = 0; d < draws; d++) {
                mfl_rng_t r;
                mfl_rng_seed(&r, seed, 0x6e6577ULL * 1000003u + (uint64_t)held * 10007u +
                                           (uint64_t)1 * 101u + (uint64_t)d);
                mfl_rng_t r_raw = r; /* the same draw, unscaled */
                mfl_dataset_t *sup = s_draw_support(h->train[held], 10, &r);
                mfl_dataset_t *rsup = s_draw_support(h->rtrain[held], 10, &r_raw);
                mfl_site_worker_t *dw =
                    sup && rsup ? s_worker(s_heart_site_names[held], sup, h->test[held], err,
                                           sizeof err)
                                : NULL;
                /* A pooled scaling needs the rows unscaled; with the site's own the
                 * hospital keeps its training rows' statistics, as before. */
                if (dw && s_fed_scaling.n &&
                    s_sel_enable_raw(dw, rsup, h->rtest[held], err, sizeof err) != 0)
                    mfl_site_worker_destroy(&dw);
                mfl_dataset_destroy(&sup);
                mfl_dataset_destroy(&rsup);
                double acc = 0, acc_cv = 0;
                int rc = dw ? s_sel_newsite(dw, &chosen, lt, ln, (uint32_t)(1000 + d), false,
                                            seed, &acc, err, sizeof err)
                            : -1;
                if (rc == 0)
                    rc = s_sel_newsite(dw, &chosen, lt, ln, (uint32_t)(1000 + d), true, seed,
                                       &acc_cv, err, sizeof err);
                for (size_t gi = 0; rc == 0 && gi < S_NG; gi++) {
                    mfl_select_candidate_t g = chosen;
                    g.adapt_steps = g_steps[gi / (sizeof g_rates / sizeof *g_rates)];
                    g.adapt_lr = g_rates[gi % (sizeof g_rates / sizeof *g_rates)];
                    double a = 0;
                    if (s_sel_newsite(dw, &g, lt, ln, (uint32_t)(1000 + d), false, seed, &a,
                                      err, sizeof err) != 0) {
                        if (!strstr(err, "diverged")) {
                            rc = -1;
                            break;
                        }
                        og[gi] = -INFINITY; /* diverges on some draw: not a choice */
                    }
                    og[gi] += a / draws;
                }
                mfl_site_worker_destroy(&dw);
                if (rc != 0) {
                    free(lt);
                    goto fail;
                }
                mean += acc / draws;
                mean_cv += acc_cv / draws;
            }
            free(lt);
            loho[k][held] = mean;
            loho_cv[k][held] = mean_cv;
            loho_or[k][held] = -1;
            for (size_t gi = 0; gi < S_NG; gi++)
                loho_or[k][held] = og[gi] > loho_or[k][held] ? og[gi] : loho_or[k][held];
        }
        s_fleet_free(&own);
        printf("seed %llu: winner %zu (%s); personalised %.3f %.3f %.3f %.3f\n",
               (unsigned long long)seed, win_idx[k], winners[k], sel_p[k][0], sel_p[k][1],
               sel_p[k][2], sel_p[k][3]);
        fflush(stdout);
        continue;
fail:
        fprintf(stderr, "bench_heart select: seed %llu: %s\n", (unsigned long long)seed, err);
        s_fleet_free(&own);
        return -1;
    }
    char bench[128];
    snprintf(bench, sizeof bench, "select%s%.0llu%s%s%s%s%s%.0u", split ? " --split " : "",
             (unsigned long long)split, s_fed_federated ? " --standardize federated" : "",
             s_sel_score_search ? " --score-search" : "",
             s_sel_rule != MFL_SELECT_RULE_AUTO ? " --rule " : "",
             s_sel_rule != MFL_SELECT_RULE_AUTO ? mfl_select_rule_name(s_sel_rule) : "",
             s_sel_rounds_opt ? " --sel-rounds " : "", s_sel_rounds_opt);
    if (s_sel_extra_fedavg && strlen(bench) + 16 < sizeof bench)
        strcat(bench, " --extra-fedavg");
    FILE *f = s_open_out(o, bench, argv0);
    if (!f)
        return -1;
    s_json_majority(f, h);
    fprintf(f, "  \"split\": \"%s\",\n", split ? "re-split 66/34 stratified (--split)"
                                               : "FLamby (flamby-split.json)");
    fprintf(f, "  \"settings\": {\"base\": \"the coordinator's defaults (configs/coordinator.yaml)"
               " with model mlp:13-32-1 and bce\", \"selection\": \"default grid, %u rounds per "
               "candidate, validation 0.2 of training rows, rule auto (auroc)\", \"rounds\": %u, "
               "\"personalised\": \"final EvalTask: the winner adapted on all of a site's "
               "training rows with its adaptation rate and steps\", \"fedavg_ft\": \"linear "
               "FedAvg (1 epoch, lr 0.05, batch 16, 30 rounds) + 100 steps lr 0.05\", "
               "\"scaling\": \"%s\", \"score_adaptation\": \"%s\"},\n",
            sel_rounds, o->quick ? 10u : 30u,
            s_fed_federated ? "federated (data.standardize: federated: pooled fit-row moments; "
                              "the grid also has each site's own; FedAvg + FT pooled too)"
                            : "site (each hospital its own training rows)",
            s_sel_score_search ? "search" : "fixed");
    fprintf(f, "  \"winners\": [");
    for (int k = 0; k < o->n_seeds; k++)
        fprintf(f, "%s{\"candidate\": %zu, \"setting\": \"%s\"}", k ? ", " : "", win_idx[k],
                winners[k]);
    fprintf(f, "],\n  \"goal\": 0.83,\n  \"rows\": [\n");
    printf("model selection (%s)\n", split ? "untuned re-split" : "FLamby split");
    s_json_row(f, "selection, personalised", sel_p, o->n_seeds, "", 0);
    s_json_row(f, "selection, global as-is", sel_g, o->n_seeds, "", 0);
    s_json_row(f, "selection + per-site adaptation", site_p, o->n_seeds,
               "\"note\": \"each site picks adaptation steps (0-1000) and rate (0.01-1) by "
               "5-fold cross-validation on its training rows\"", 0);
    s_json_row(f, "defaults, no selection, personalised", def_p, o->n_seeds, "", 0);
    s_json_row(f, "defaults, no selection + per-site adaptation", def_site, o->n_seeds, "", 0);
    s_json_row(f, "ORACLE (test rows choose; not a result): selection, best per-site (steps, "
               "rate) of the grid", oracle, o->n_seeds,
               "\"note\": \"upper bound of per-site adaptation from this grid for the "
               "selection's model: the test rows choose\"", 0);
    s_json_row(f, "FedAvg + 100 fine-tuning steps", fa_ft, o->n_seeds, "", 0);
    s_json_row(f, "paired: selection - FedAvg+FT", diff, o->n_seeds, "", 0);
    s_json_row(f, "paired: sel+per-site - FedAvg+FT", diff2, o->n_seeds, "", split != 0);
    if (!split) {
        char extra[256];
        snprintf(extra, sizeof extra, "\"note\": \"leave one hospital out: the column is the "
                 "held-out hospital, k = 10 drawn cases, %d draws per seed\"", draws);
        s_json_row(f, "LOHO k=10, selection on the other three", loho, o->n_seeds, extra, 0);
        s_json_row(f, "LOHO k=10, the new hospital chooses by CV on its 10 cases", loho_cv,
                   o->n_seeds, extra, 0);
        s_json_row(f, "ORACLE (test rows choose; not a result): LOHO, the best (steps, rate) of "
                   "the grid per held-out hospital and seed", loho_or, o->n_seeds, extra, 1);
        fprintf(f, "  ],\n  \"loho_winners\": [");
        for (int k = 0; k < o->n_seeds; k++)
            for (int held = 0; held < S_HEART_SITES; held++)
                fprintf(f, "%s\"%s\"", k || held ? ", " : "", loho_win[k][held]);
        fprintf(f, "]\n}\n");
        fclose(f);
        return 0;
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    return 0;
}

#include "heart_explore.h"

/* ---- main ----------------------------------------------------------------- */

static void s_usage(void)
{
    fprintf(stderr, "usage: bench_heart flamby|personal|newsite|privacy|privacy-global|select|explore\n"
                    "                   [--data DIR]\n"
                    "                   [--out FILE] [--quick] [--seeds N] [--loop engine|harness]\n"
                    "                   [--split N (select: re-split the sites 66/34 with seed N)]\n"
                    "                   [--standardize site|federated (select: data.standardize)]\n"
                    "                   [--score-search (select: selection.score_adaptation: search)]\n"
                    "                   [--rule auto|auroc|accuracy|loss (select: selection.rule)]\n"
                    "                   [--sel-rounds N (select: selection.rounds)]\n"
                    "                   [--extra-fedavg (select: two FedAvg candidates more)]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage();
        return 2;
    }
    mfl_log_set_program("bench_heart");
    mfl_log_set_level(MFL_LOG_WARN);
    mfl_blas_set_threads(1);
    const char *mode = argv[1];
    static char data_dir[1024], out[1024];
    const char *shared = getenv("METAFL_SHARED");
    snprintf(data_dir, sizeof data_dir, "%s/data/uci-heart-disease", shared ? shared : "../shared");
    snprintf(out, sizeof out, "bench/results/heart_%s.json", mode);
    s_opts_t o = {data_dir, out, 0, 5};
    unsigned long long split = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            o.data_dir = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            o.out = argv[++i];
        else if (strcmp(argv[i], "--loop") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "engine") == 0) {
                s_train = s_engine_train;
                s_engine_desc = S_ENGINE_NAME;
            } else if (strcmp(argv[i], "harness") == 0) {
                s_train = s_fed_train;
                s_engine_desc = S_FED_ENGINE;
            } else {
                s_usage();
                return 2;
            }
        } else if (strcmp(argv[i], "--quick") == 0)
            o.quick = 1;
        else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc)
            o.n_seeds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--split") == 0 && i + 1 < argc)
            split = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--score-search") == 0)
            s_sel_score_search = true;
        else if (strcmp(argv[i], "--extra-fedavg") == 0)
            s_sel_extra_fedavg = true;
        else if (strcmp(argv[i], "--sel-rounds") == 0 && i + 1 < argc)
            s_sel_rounds_opt = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rule") == 0 && i + 1 < argc &&
                 mfl_select_rule_parse(argv[i + 1], &s_sel_rule) == 0)
            i++;
        else if (strcmp(argv[i], "--standardize") == 0 && i + 1 < argc &&
                 (strcmp(argv[i + 1], "federated") == 0 || strcmp(argv[i + 1], "site") == 0))
            s_fed_federated = strcmp(argv[++i], "federated") == 0;
        else {
            s_usage();
            return 2;
        }
    }
    if (o.quick && o.n_seeds == 5)
        o.n_seeds = 2;
    if (o.n_seeds < 1 || o.n_seeds > S_MAX_SEEDS) {
        fprintf(stderr, "bench_heart: --seeds must be 1..%d\n", S_MAX_SEEDS);
        return 2;
    }
    char err[512];
    s_heart_t h;
    if (s_heart_load(o.data_dir, &h, err, sizeof err) != 0) {
        fprintf(stderr, "bench_heart: UCI heart data not available: %s\n", err);
        return 1;
    }
    /* The harness reads the raw files itself; the data module must agree. */
    char shared_dir[1024];
    snprintf(shared_dir, sizeof shared_dir, "%s", o.data_dir);
    char *cut = strstr(shared_dir, "/data/uci-heart-disease");
    if (cut)
        *cut = '\0';
    double diff = s_heart_check_against_lib(&h, shared_dir, err, sizeof err);
    s_data_check = diff;
    if (diff < 0)
        printf("data module check: FAILED (%s)\n", err);
    else
        printf("data module check: max |harness - data/heart.h| = %.3g\n", diff);
    int rc;
    if (strcmp(mode, "flamby") == 0) {
        s_engine_desc = S_FED_ENGINE; /* see s_train: FLamby's rows need the harness loop */
        rc = s_run_flamby(&o, &h, argv[0]);
    }
    else if (strcmp(mode, "personal") == 0)
        rc = s_run_personal(&o, &h, argv[0]);
    else if (strcmp(mode, "newsite") == 0)
        rc = s_run_newsite(&o, &h, argv[0]);
    else if (strcmp(mode, "privacy") == 0)
        rc = s_run_privacy(&o, &h, argv[0]);
    else if (strcmp(mode, "privacy-global") == 0)
        rc = s_run_privacy_global(&o, &h, argv[0]);
    else if (strcmp(mode, "select") == 0)
        rc = s_run_select(&o, &h, argv[0], (uint64_t)split);
    else if (strcmp(mode, "explore") == 0)
        rc = getenv("X_PROX")     ? s_run_prox(&o, &h)
             : getenv("X_SEEDENS") ? s_run_seedens(&o, &h, (uint64_t)split, atoi(getenv("X_SEEDENS")))
                                 : s_run_explore(&o, &h, (uint64_t)split);
    else {
        s_usage();
        rc = 2;
    }
    s_heart_free(&h);
    if (rc == 0 && strcmp(mode, "explore") != 0) /* explore prints, writes nothing */
        printf("wrote %s\n", o.out);
    return rc == 0 ? 0 : rc == 2 ? 2 : 1;
}
