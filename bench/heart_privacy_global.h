/* bench_heart privacy-global: the ONE global model under record-level DP on
 * the four UCI heart hospitals (issue 11, item 9: FLamby's DP figure,
 * .685–.706 at ε = 1, is a global-model figure). Included by bench_heart.c
 * after heart_privacy.h (uses its policy and run helpers).
 *
 * What it varies, all of it scored on VALIDATION rows only (4-fold
 * stratified cross-validation inside each hospital's training rows; the
 * test rows are touched once, by the chosen recipe):
 *   feature scaling  site    each hospital standardises with its own
 *                            training rows' mean and std (the data module's
 *                            default; data-dependent and NOT covered by ε)
 *                    fixed   one public affine map for every hospital,
 *                            written down without looking at the rows
 *                            (round clinical reference values, see
 *                            s_pg_center / s_pg_spread): data-independent, so
 *                            the DP guarantee covers the whole pipeline
 *                    pooled  the pooled training rows' mean and std (a
 *                            reference only: no hospital could compute it
 *                            without sharing statistics; not private)
 *   model, local rate, expected batch B (q = B/N), clip C, rounds R (σ is
 *   recalibrated for every (q, steps) so each recipe spends exactly ε), and
 *   the server optimiser (FedAvg's sgd 1, or FedAdam on the noised Δs).
 * Rules compared for the pick: best mean CV accuracy, and best mean CV
 * loss (BCE, smoother than accuracy on 8 Swiss validation rows).
 * The ceiling: at ε = ∞ the best test accuracy over the whole grid (an
 * ORACLE pick on the test rows, shown as evidence of what any selection
 * could reach, never as a result). */
#ifndef MFL_BENCH_HEART_PRIVACY_GLOBAL_H
#define MFL_BENCH_HEART_PRIVACY_GLOBAL_H

enum { S_PG_SITE = 0, S_PG_FIXED = 1, S_PG_POOLED = 2, S_PG_N_SCALING = 3 };
static const char *const s_pg_scaling_names[S_PG_N_SCALING] = {"site", "fixed", "pooled"};

/* The public scaling, in the harness's feature order (heart_data.h): age
 * (years), sex, resting blood pressure (mmHg), cholesterol (mg/dl), fasting
 * sugar > 120, max heart rate (bpm), exercise angina, ST depression (mm),
 * chest-pain type 2/3/4 and rest ECG 1/2 one-hot. Continuous features:
 * (x − a typical adult value) / a round spread; 0/1 features unchanged.
 * No statistic of any hospital's rows went into these numbers. */
static const float s_pg_center[S_HEART_FEATURES] = {50, 0, 130, 200, 0, 140, 0, 1,
                                                    0,  0, 0,   0,   0};
static const float s_pg_spread[S_HEART_FEATURES] = {10, 1, 20, 100, 1, 25, 1, 1,
                                                   1,  1, 1,  1,   1};

/* PG_ALT_SCALE=1: a second, cruder public scaling for the robustness check
 * (no centring, each unit divided by a round upper bound). */
static const float s_pg_alt_center[S_HEART_FEATURES] = {0};
static const float s_pg_alt_spread[S_HEART_FEATURES] = {100, 1, 200, 500, 1, 200, 1, 5,
                                                        1,   1, 1,   1,   1};

#define S_PG_FOLDS 4
/* personalised column: the chosen global model fine-tuned locally with
 * this many full-batch steps (lr S_FT_LR), fixed in advance (the value the
 * privacy bench's validation picked at every ε) */
#define S_PG_FT_STEPS 100

/* One fold (or the final train/test pair) of the four hospitals, scaled. */
typedef struct {
    mfl_dataset_t *fit[S_HEART_SITES], *val[S_HEART_SITES];
} s_pg_data_t;

static void s_pg_data_free(s_pg_data_t *d)
{
    for (int s = 0; s < S_HEART_SITES; s++) {
        mfl_dataset_destroy(&d->fit[s]);
        mfl_dataset_destroy(&d->val[s]);
    }
}

/* Copies raw fit/val rows and scales them as `scaling` says. */
static int s_pg_scale(mfl_dataset_t *const *raw_fit, mfl_dataset_t *const *raw_val, int scaling,
                      s_pg_data_t *out)
{
    memset(out, 0, sizeof *out);
    float mean[S_HEART_FEATURES], sd[S_HEART_FEATURES];
    if (scaling == S_PG_POOLED) {
        const mfl_dataset_t *parts[S_HEART_SITES];
        for (int s = 0; s < S_HEART_SITES; s++)
            parts[s] = raw_fit[s];
        mfl_dataset_t *all = mfl_dataset_concat(parts, S_HEART_SITES);
        if (!all)
            return -1;
        mfl_dataset_feature_stats(all, mean, sd);
        mfl_dataset_destroy(&all);
    }
    for (int s = 0; s < S_HEART_SITES; s++) {
        out->fit[s] = s_heart_copy(raw_fit[s]);
        out->val[s] = s_heart_copy(raw_val[s]);
        if (!out->fit[s] || !out->val[s])
            return s_pg_data_free(out), -1;
        if (scaling == S_PG_SITE)
            mfl_dataset_feature_stats(raw_fit[s], mean, sd);
        int alt = getenv("PG_ALT_SCALE") != NULL;
        const float *m = scaling == S_PG_FIXED ? (alt ? s_pg_alt_center : s_pg_center)
                                               : (const float *)mean;
        const float *v = scaling == S_PG_FIXED ? (alt ? s_pg_alt_spread : s_pg_spread)
                                               : (const float *)sd;
        mfl_dataset_standardize(out->fit[s], m, v);
        mfl_dataset_standardize(out->val[s], m, v);
    }
    return 0;
}

/* Fold k of S_PG_FOLDS of each hospital's raw training rows (stratified:
 * each class shuffled with a fixed seed, dealt round-robin). */
static uint64_t s_pg_rep; /* PG_STABILITY: repeat r re-draws folds and seeds */

static int s_pg_to_val(size_t i, size_t n, size_t np, const void *arg)
{
    (void)n;
    (void)np;
    return (int)(i % S_PG_FOLDS) == *(const int *)arg;
}

static int s_pg_fold(const s_heart_t *h, int k, mfl_dataset_t *fit[S_HEART_SITES],
                     mfl_dataset_t *val[S_HEART_SITES])
{
    for (int s = 0; s < S_HEART_SITES; s++) {
        mfl_rng_t r;
        mfl_rng_seed(&r, S_PRIV_SPLIT_SEED + 7919 * s_pg_rep,
                     0x666f6c64ULL + (uint64_t)s); /* "fold" */
        if (s_heart_split_stratified(h->rtrain[s], &r, s_pg_to_val, &k, &fit[s], &val[s]))
            return -1;
    }
    return 0;
}

/* The S_PG_FOLDS folds and the final train/test rows, each scaled every
 * way c in [c0, c1): folds[c][k], final[c]. 0, or -1 out of memory. */
static int s_pg_make_data(const s_heart_t *h, int c0, int c1,
                          s_pg_data_t folds[S_PG_N_SCALING][S_PG_FOLDS],
                          s_pg_data_t final[S_PG_N_SCALING])
{
    for (int k = 0; k < S_PG_FOLDS; k++) {
        mfl_dataset_t *rf[S_HEART_SITES] = {0}, *rv[S_HEART_SITES] = {0};
        int bad = s_pg_fold(h, k, rf, rv);
        for (int c = c0; !bad && c < c1; c++)
            bad = s_pg_scale(rf, rv, c, &folds[c][k]);
        for (int s = 0; s < S_HEART_SITES; s++)
            mfl_dataset_destroy(&rf[s]), mfl_dataset_destroy(&rv[s]);
        if (bad)
            return -1;
    }
    for (int c = c0; c < c1; c++)
        if (s_pg_scale(h->rtrain, h->rtest, c, &final[c]))
            return -1;
    return 0;
}

static void s_pg_free_data(s_pg_data_t folds[S_PG_N_SCALING][S_PG_FOLDS],
                           s_pg_data_t final[S_PG_N_SCALING])
{
    for (int c = 0; c < S_PG_N_SCALING; c++) {
        s_pg_data_free(&final[c]);
        for (int k = 0; k < S_PG_FOLDS; k++)
            s_pg_data_free(&folds[c][k]);
    }
}

/* Trains recipe r at ε on d->fit (all four hospitals) and scores the
 * global model on each d->val: accuracy and BCE. */
static int s_pg_run(const s_priv_recipe_t *r, double eps, const s_pg_data_t *d, uint64_t seed,
                    double acc[S_HEART_SITES], double loss[S_HEART_SITES],
                    double *pers /* NULL, or [S_HEART_SITES]: after S_PG_FT_STEPS */, char *err,
                    size_t errlen)
{
    mfl_site_worker_t *w[S_HEART_SITES] = {0};
    s_fed_spec_t sp;
    s_priv_spec(r, &sp);
    float *theta = NULL;
    size_t n = 0;
    int rc = -1;
    for (int s = 0; s < S_HEART_SITES; s++) {
        double sg, q;
        w[s] = s_worker(s_heart_site_names[s], d->fit[s], d->val[s], err, errlen);
        if (!w[s] || s_priv_policy(w[s], r, eps, &sg, &q, err, errlen))
            goto out;
    }
    if (s_train(&sp, w, S_HEART_SITES, seed, &theta, &n, err, errlen) != 0)
        goto out;
    for (int s = 0; s < S_HEART_SITES; s++) {
        mfl_eval_task_t task;
        memset(&task, 0, sizeof task);
        s_fed_pb_algo(&sp, 0, &task.algorithm);
        s_fed_nonce(task.nonce, 0xe7a1u, 0);
        task.nonce_len = 16;
        snprintf(task.model_spec, sizeof task.model_spec, "%s", sp.model);
        mfl_site_eval_result_t res;
        if (mfl_site_worker_eval(w[s], &task, theta, n, &res, err, errlen) != 0)
            goto out;
        acc[s] = res.before.accuracy;
        loss[s] = isfinite(res.before.loss) ? res.before.loss : 10.0;
        if (pers && s_score(w[s], &sp, theta, n, S_PG_FT_STEPS, S_FT_LR, 0, 0, &pers[s], NULL,
                            err, errlen) < 0)
            goto out;
    }
    rc = 0;
out:
    free(theta);
    for (int s = 0; s < S_HEART_SITES; s++)
        mfl_site_worker_destroy(&w[s]);
    return rc;
}

/* The grid. Clip is irrelevant at ε = ∞ (those recipes are skipped). */
static const char *const s_pg_models[] = {"linear:13-1", "mlp:13-32-1"};
static const float s_pg_lrs[] = {0.1f, 0.3f, 1.0f};
static const int s_pg_batches[] = {16, 32, 64};
static const double s_pg_clips[] = {0.5, 1.0};
static const int s_pg_rounds[] = {5, 15, 30};
static const char *const s_pg_servers[] = {"sgd", "adam"};
static const float s_pg_server_lrs[] = {1.0f, 0.05f};
#define S_PG_GRID (2 * 3 * 3 * 2 * 3 * 2)

static const s_priv_axes_t s_pg_axes = S_PRIV_AXES(s_pg);

static s_priv_recipe_t s_pg_grid(int i)
{
    return s_priv_recipe_at(&s_pg_axes, i);
}

static void s_pg_recipe_str(char *buf, size_t len, const s_priv_recipe_t *r)
{
    snprintf(buf, len, "%s lr %g B %d C %g R %d server %s %g", r->model, (double)r->lr, r->batch,
             r->clip, r->rounds, r->server, (double)r->server_lr);
}

/* PG_GRID=a,b,... (env) limits the grid to those indices; PG_EPS=list. */
static int s_pg_in_grid(int g)
{
    const char *v = getenv("PG_GRID");
    if (!v || !*v)
        return 1;
    for (const char *p = v; *p;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p)
            break;
        if (x == g)
            return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static int s_pg_explore(const s_opts_t *o, const s_heart_t *h)
{
    char err[512];
    static double cv_acc[S_PG_N_SCALING][S_PG_GRID], cv_loss[S_PG_N_SCALING][S_PG_GRID];
    double eps_list[8];
    int n_eps = 0;
    const char *ev = getenv("PG_EPS");
    for (const char *p = ev && *ev ? ev : "1"; *p && n_eps < 8;) {
        char *end;
        double x = strcmp(p, "inf") == 0 || strncmp(p, "inf,", 4) == 0 ? INFINITY
                                                                       : strtod(p, &end);
        if (isinf(x))
            end = (char *)p + 3;
        eps_list[n_eps++] = x;
        p = *end ? end + 1 : end;
    }
    int scalings[S_PG_N_SCALING], n_sc = 0;
    const char *sv = getenv("PG_SCALING");
    for (int c = 0; c < S_PG_N_SCALING; c++)
        if (!sv || strstr(sv, s_pg_scaling_names[c]))
            scalings[n_sc++] = c;
    int oracle = getenv("PG_ORACLE") != NULL;
    /* folds, scaled each way */
    static s_pg_data_t folds[S_PG_N_SCALING][S_PG_FOLDS], final[S_PG_N_SCALING];
    if (s_pg_make_data(h, 0, S_PG_N_SCALING, folds, final))
        return fprintf(stderr, "fold: out of memory\n"), -1;
    for (int e = 0; e < n_eps; e++) {
        double eps = eps_list[e];
        for (int ci = 0; ci < n_sc; ci++) {
            int c = scalings[ci];
            int best_acc = -1, best_loss = -1;
            for (int g = 0; g < S_PG_GRID; g++) {
                s_priv_recipe_t r = s_pg_grid(g);
                cv_acc[c][g] = -1;
                if ((isinf(eps) && r.clip != s_pg_clips[0]) || !s_pg_in_grid(g))
                    continue;
                double a = 0, l = 0;
                for (int k = 0; k < S_PG_FOLDS; k++) {
                    double va[S_HEART_SITES], vl[S_HEART_SITES];
                    if (s_pg_run(&r, eps, &folds[c][k], 1000 + (uint64_t)k, va, vl, NULL, err,
                                 sizeof err))
                        return fprintf(stderr, "privacy-global: %s\n", err), -1;
                    for (int s = 0; s < S_HEART_SITES; s++)
                        a += va[s] / (S_HEART_SITES * S_PG_FOLDS),
                            l += vl[s] / (S_HEART_SITES * S_PG_FOLDS);
                }
                cv_acc[c][g] = a;
                cv_loss[c][g] = l;
                if (best_acc < 0 || a > cv_acc[c][best_acc] + 1e-12)
                    best_acc = g;
                if (best_loss < 0 || l < cv_loss[c][best_loss] - 1e-12)
                    best_loss = g;
                char rs[160];
                s_pg_recipe_str(rs, sizeof rs, &r);
                printf("cv eps=%g scaling=%s g=%d %s: acc %.4f loss %.4f\n", eps,
                       s_pg_scaling_names[c], g, rs, a, l);
                fflush(stdout);
            }
            int picks[2] = {best_acc, best_loss};
            for (int j = 0; j < 2; j++) {
                if (picks[j] < 0)
                    continue;
                s_priv_recipe_t r = s_pg_grid(picks[j]);
                double acc[S_MAX_SEEDS][S_HEART_SITES], l[S_HEART_SITES];
                for (int k = 0; k < o->n_seeds; k++)
                    if (s_pg_run(&r, eps, &final[c], 42 + (uint64_t)k, acc[k], l, NULL, err,
                                 sizeof err))
                        return fprintf(stderr, "privacy-global: %s\n", err), -1;
                char rs[160], name[200];
                s_pg_recipe_str(rs, sizeof rs, &r);
                snprintf(name, sizeof name, "eps=%g %s by-%s g=%d", eps, s_pg_scaling_names[c],
                         j ? "loss" : "acc", picks[j]);
                double m4[S_MAX_SEEDS], mm, sd;
                for (int k = 0; k < o->n_seeds; k++)
                    m4[k] = (acc[k][0] + acc[k][1] + acc[k][2] + acc[k][3]) / 4;
                s_mean_std(m4, o->n_seeds, &mm, &sd);
                double ps[S_HEART_SITES] = {0};
                for (int k = 0; k < o->n_seeds; k++)
                    for (int s = 0; s < S_HEART_SITES; s++)
                        ps[s] += acc[k][s] / o->n_seeds;
                printf("TEST %s [%s] cv %.4f/%.4f: %.4f ± %.4f [%.3f %.3f %.3f %.3f]\n", name, rs,
                       cv_acc[c][picks[j]], cv_loss[c][picks[j]], mm, sd, ps[0], ps[1], ps[2],
                       ps[3]);
                fflush(stdout);
            }
            if (oracle) {
                for (int g = 0; g < S_PG_GRID; g++) {
                    if (cv_acc[c][g] < 0)
                        continue;
                    s_priv_recipe_t r = s_pg_grid(g);
                    double acc[S_HEART_SITES], l[S_HEART_SITES], m = 0;
                    for (int k = 0; k < o->n_seeds; k++) {
                        if (s_pg_run(&r, eps, &final[c], 42 + (uint64_t)k, acc, l, NULL, err,
                                     sizeof err))
                            return fprintf(stderr, "privacy-global: %s\n", err), -1;
                        m += (acc[0] + acc[1] + acc[2] + acc[3]) / 4 / o->n_seeds;
                    }
                    printf("ORACLE eps=%g scaling=%s g=%d test %.4f cv %.4f\n", eps,
                           s_pg_scaling_names[c], g, m, cv_acc[c][g]);
                    fflush(stdout);
                }
            }
        }
    }
    s_pg_free_data(folds, final);
    return 0;
}

/* ---- the table: one recipe rule for every ε ----------------------------- */

/* The table's grid: what the ε = 1 exploration above (PG_EXPLORE=1) showed
 * to matter, see docs/BENCHMARKS.md §4b. */
static const char *const s_pt_models[] = {"linear:13-1", "mlp:13-32-1"};
static const char *const s_pt_servers[] = {"sgd", "adam"};
static const float s_pt_server_lrs[] = {1.0f, 0.05f};
static const float s_pt_lrs[] = {0.3f, 1.0f};
static const int s_pt_batches[] = {32, 64};
static const double s_pt_clips[] = {0.5, 1.0};
static const int s_pt_rounds[] = {15, 30};
#define S_PT_GRID (2 * 2 * 2 * 2 * 2 * 2)
#define S_PT_TOP 6       /* stage 2: the best few of stage 1 ... */
#define S_PT_EXTRA 2     /* ... get this many more seeds per fold */

static const s_priv_axes_t s_pt_axes = S_PRIV_AXES(s_pt);

static s_priv_recipe_t s_pt_grid(int i)
{
    return s_priv_recipe_at(&s_pt_axes, i);
}

static int s_pt_quick; /* --quick (make bench's quick subset) */

/* Mean validation accuracy (4 folds × seeds 1000 + 1000·j + fold). */
static int s_pt_cv(const s_priv_recipe_t *r, double eps, s_pg_data_t folds[S_PG_FOLDS],
                   int seed_from, int n_seeds, double *acc, char *err, size_t errlen)
{
    double a = 0;
    for (int j = seed_from; j < seed_from + n_seeds; j++)
        for (int k = 0; k < S_PG_FOLDS; k++) {
            double va[S_HEART_SITES], vl[S_HEART_SITES];
            if (s_pg_run(r, eps, &folds[k],
                         1000 + 1000 * (uint64_t)j + (uint64_t)k + 100000 * s_pg_rep, va, vl,
                         NULL, err, errlen))
                return -1;
            for (int s = 0; s < S_HEART_SITES; s++)
                a += va[s] / S_HEART_SITES;
        }
    *acc = a / (n_seeds * S_PG_FOLDS);
    return 0;
}

/* The pick at ε: stage 1 every recipe on the 4 folds (one seed each);
 * stage 2 the S_PT_TOP best again with S_PT_EXTRA more seeds per fold; the
 * best mean over all its runs wins (ties: the earlier recipe). */
static int s_pt_select(double eps, s_pg_data_t folds[S_PG_FOLDS], int *pick, double *cv,
                       int *runs, char *err, size_t errlen)
{
    double a1[S_PT_GRID];
    int order[S_PT_GRID], n = 0;
    *runs = 0;
    for (int g = 0; g < S_PT_GRID; g++) {
        s_priv_recipe_t r = s_pt_grid(g);
        a1[g] = -1;
        if ((isinf(eps) && r.clip != s_pt_clips[0]) || !s_pg_in_grid(g))
            continue;
        if (s_pt_quick && (r.model != s_pt_models[0] || r.server != s_pt_servers[0] ||
                           r.lr != s_pt_lrs[0]))
            continue; /* --quick: linear FedAvg lr 0.3 only (8 recipes) */
        if (s_pt_cv(&r, eps, folds, 0, 1, &a1[g], err, errlen))
            return -1;
        *runs += S_PG_FOLDS;
        order[n++] = g;
    }
    for (int i = 1; i < n; i++) /* stable insertion sort, best first */
        for (int j = i; j > 0 && a1[order[j]] > a1[order[j - 1]] + 1e-12; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    *pick = -1;
    for (int i = 0; i < n && i < S_PT_TOP; i++) {
        s_priv_recipe_t r = s_pt_grid(order[i]);
        double a2;
        if (s_pt_cv(&r, eps, folds, 1, S_PT_EXTRA, &a2, err, errlen))
            return -1;
        *runs += S_PG_FOLDS * S_PT_EXTRA;
        double m = (a1[order[i]] + S_PT_EXTRA * a2) / (1 + S_PT_EXTRA);
        if (*pick < 0 || m > *cv + 1e-12 || (fabs(m - *cv) <= 1e-12 && order[i] < *pick))
            *pick = order[i], *cv = m;
    }
    return 0;
}

typedef struct {
    double eps;
    int scaling;
    const char *note;
} s_pt_row_t;

static int s_pt_table(const s_opts_t *o, const s_heart_t *h, const char *argv0)
{
    char err[512];
    static const s_pt_row_t rows[] = {
        {0.5, S_PG_FIXED, "public fixed scaling: the whole pipeline under epsilon"},
        {1, S_PG_FIXED, "public fixed scaling: the whole pipeline under epsilon"},
        {2, S_PG_FIXED, "public fixed scaling: the whole pipeline under epsilon"},
        {4, S_PG_FIXED, "public fixed scaling: the whole pipeline under epsilon"},
        {8, S_PG_FIXED, "public fixed scaling: the whole pipeline under epsilon"},
        {INFINITY, S_PG_FIXED, "no DP, public fixed scaling"},
        {1, S_PG_SITE, "each site's own statistics (not covered by epsilon): the earlier setup"},
        {INFINITY, S_PG_SITE, "no DP, each site's own statistics"},
        {INFINITY, S_PG_POOLED, "no DP, pooled statistics (reference: needs shared stats)"},
    };
    const int n_rows = o->quick ? 2 : (int)(sizeof rows / sizeof rows[0]);
    s_pt_quick = o->quick;
    static s_pg_data_t folds[S_PG_N_SCALING][S_PG_FOLDS], final[S_PG_N_SCALING];
    static double acc[16][S_MAX_SEEDS][S_HEART_SITES], pacc[16][S_MAX_SEEDS][S_HEART_SITES];
    int picks[16];
    double cvs[16];
    int rc = -1;
    if (s_pg_make_data(h, 0, S_PG_N_SCALING, folds, final)) {
        snprintf(err, sizeof err, "out of memory making the folds");
        goto done;
    }
    for (int i = 0; i < n_rows; i++) {
        const s_pt_row_t *row = &rows[i];
        int runs = 0;
        if (s_pt_select(row->eps, folds[row->scaling], &picks[i], &cvs[i], &runs, err,
                        sizeof err))
            goto done;
        s_priv_recipe_t r = s_pt_grid(picks[i]);
        char rs[160];
        s_pg_recipe_str(rs, sizeof rs, &r);
        printf("eps=%g %s: chosen %s (validation %.4f, %d selection runs)\n", row->eps,
               s_pg_scaling_names[row->scaling], rs, cvs[i], runs);
        fflush(stdout);
        for (int k = 0; k < o->n_seeds; k++) {
            double l[S_HEART_SITES];
            if (s_pg_run(&r, row->eps, &final[row->scaling], 42 + (uint64_t)k, acc[i][k], l,
                         pacc[i][k], err, sizeof err))
                goto done;
        }
    }
    /* The ceiling: the best test mean over the whole grid without DP (an
     * oracle: it looks at the test rows; evidence, not a result). */
    double oracle[S_PG_N_SCALING] = {0};
    int oracle_g[S_PG_N_SCALING] = {-1, -1, -1};
    for (int c = 0; c < S_PG_POOLED && !o->quick; c++) /* site, fixed */
        for (int g = 0; g < S_PT_GRID; g++) {
            s_priv_recipe_t r = s_pt_grid(g);
            if (r.clip != s_pt_clips[0] || !s_pg_in_grid(g))
                continue;
            double m = 0, a[S_HEART_SITES], l[S_HEART_SITES];
            for (int k = 0; k < o->n_seeds; k++) {
                if (s_pg_run(&r, INFINITY, &final[c], 42 + (uint64_t)k, a, l, NULL, err,
                             sizeof err))
                    goto done;
                m += (a[0] + a[1] + a[2] + a[3]) / S_HEART_SITES / o->n_seeds;
            }
            if (m > oracle[c])
                oracle[c] = m, oracle_g[c] = g;
        }
    FILE *f = s_open_out(o, "privacy-global", argv0);
    if (!f)
        goto done;
    s_priv_json_head(f, h);
    fprintf(f, ", \"fixed_scaling\": {\"center\": [");
    for (int j = 0; j < S_HEART_FEATURES; j++)
        fprintf(f, "%s%g", j ? ", " : "", (double)s_pg_center[j]);
    fprintf(f, "], \"scale\": [");
    for (int j = 0; j < S_HEART_FEATURES; j++)
        fprintf(f, "%s%g", j ? ", " : "", (double)s_pg_spread[j]);
    fprintf(f, "]}, \"selection\": \"4-fold stratified CV inside each site's training rows; "
               "stage 1 every recipe once per fold, stage 2 the best %d again with %d more "
               "seeds per fold; best mean validation accuracy\", \"grid\": {\"models\": "
               "[\"%s\", \"%s\"], \"server\": [\"sgd 1\", \"adam 0.05\"], \"lr\": [%g, %g], "
               "\"batch\": [%d, %d], \"clip\": [%g, %g], \"rounds\": [%d, %d]}},\n",
            S_PT_TOP, S_PT_EXTRA, s_pt_models[0], s_pt_models[1], (double)s_pt_lrs[0],
            (double)s_pt_lrs[1], s_pt_batches[0], s_pt_batches[1], s_pt_clips[0], s_pt_clips[1],
            s_pt_rounds[0], s_pt_rounds[1]);
    fprintf(f, "  \"oracle_no_dp\": {");
    for (int c = 0; c < S_PG_POOLED; c++) {
        char rs[160] = "";
        if (oracle_g[c] >= 0) {
            s_priv_recipe_t r = s_pt_grid(oracle_g[c]);
            s_pg_recipe_str(rs, sizeof rs, &r);
        }
        if (c < S_PG_POOLED)
            fprintf(f, "%s\"%s\": {\"mean4\": %.4f, \"recipe\": \"%s\"}", c ? ", " : "",
                    s_pg_scaling_names[c], oracle[c], rs);
        if (oracle_g[c] >= 0)
            printf("oracle (test rows, no DP) %s: %.4f with %s\n", s_pg_scaling_names[c],
                   oracle[c], rs);
    }
    fprintf(f, "},\n  \"rows\": [\n");
    printf("the global model under record-level DP (FedAvg, recipe chosen by 4-fold CV)\n");
    for (int i = 0; i < n_rows; i++) {
        char name[96], extra[600], rs[160];
        s_priv_recipe_t r = s_pt_grid(picks[i]);
        s_pg_recipe_str(rs, sizeof rs, &r);
        snprintf(name, sizeof name, "eps=%g global %s", rows[i].eps,
                 s_pg_scaling_names[rows[i].scaling]);
        int m = s_priv_eps_json(extra, sizeof extra, rows[i].eps);
        snprintf(extra + m, sizeof extra - (size_t)m,
                 ", \"scaling\": \"%s\", \"note\": \"%s\", \"recipe\": \"%s\", "
                 "\"validation_acc\": %.4f",
                 s_pg_scaling_names[rows[i].scaling], rows[i].note, rs, cvs[i]);
        s_json_row(f, name, acc[i], o->n_seeds, extra, 0);
    }
    for (int i = 0; i < n_rows; i++) {
        char name[96], extra[300];
        snprintf(name, sizeof name, "eps=%g personalised %s", rows[i].eps,
                 s_pg_scaling_names[rows[i].scaling]);
        int m = s_priv_eps_json(extra, sizeof extra, rows[i].eps);
        snprintf(extra + m, sizeof extra - (size_t)m,
                 ", \"scaling\": \"%s\", \"fine_tune_steps\": %d, \"fine_tune_lr\": %g",
                 s_pg_scaling_names[rows[i].scaling], S_PG_FT_STEPS, (double)S_FT_LR);
        s_json_row(f, name, pacc[i], o->n_seeds, extra, i == n_rows - 1);
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "bench_heart privacy-global: %s\n", err);
    s_pg_free_data(folds, final);
    return rc;
}

/* PG_STABILITY=N: the ε = 1 fixed-scaling pick redone N times, each with
 * its own fold split and training seeds; each pick scored on the test rows
 * (seeds 42..): how much the rule's choice, and the result, move. */
static int s_pt_stability(const s_opts_t *o, const s_heart_t *h, int reps)
{
    char err[512];
    const char *from = getenv("PG_STABILITY_FROM"); /* rep 0 = the table's own pick */
    for (int rep = from ? atoi(from) : 0; rep < reps; rep++) {
        s_pg_rep = (uint64_t)rep;
        static s_pg_data_t folds[S_PG_N_SCALING][S_PG_FOLDS], final[S_PG_N_SCALING];
        if (s_pg_make_data(h, S_PG_FIXED, S_PG_FIXED + 1, folds, final))
            return fprintf(stderr, "out of memory\n"), -1;
        int pick = -1, runs = 0;
        double cv = 0, m4[S_MAX_SEEDS], mm, sd;
        if (s_pt_select(1.0, folds[S_PG_FIXED], &pick, &cv, &runs, err, sizeof err))
            return fprintf(stderr, "%s\n", err), -1;
        s_priv_recipe_t r = s_pt_grid(pick);
        for (int k = 0; k < o->n_seeds; k++) {
            double a[S_HEART_SITES], l[S_HEART_SITES];
            if (s_pg_run(&r, 1.0, &final[S_PG_FIXED], 42 + (uint64_t)k, a, l, NULL, err,
                         sizeof err))
                return fprintf(stderr, "%s\n", err), -1;
            m4[k] = (a[0] + a[1] + a[2] + a[3]) / S_HEART_SITES;
        }
        s_mean_std(m4, o->n_seeds, &mm, &sd);
        char rs[160];
        s_pg_recipe_str(rs, sizeof rs, &r);
        printf("stability rep %d: eps=1 fixed chose %s (validation %.4f): test %.4f ± %.4f "
               "per seed", rep, rs, cv, mm, sd);
        for (int k = 0; k < o->n_seeds; k++)
            printf(" %.3f", m4[k]);
        printf("\n");
        fflush(stdout);
        s_pg_free_data(folds, final);
    }
    return 0;
}

/* PG_EXPLORE=1: the exploration grid (env PG_EPS, PG_SCALING, PG_GRID,
 * PG_ORACLE); otherwise the table. */
static int s_run_privacy_global(const s_opts_t *o, const s_heart_t *h, const char *argv0)
{
    if (getenv("PG_EXPLORE"))
        return s_pg_explore(o, h);
    if (getenv("PG_STABILITY"))
        return s_pt_stability(o, h, atoi(getenv("PG_STABILITY")));
    return s_pt_table(o, h, argv0);
}

#endif
