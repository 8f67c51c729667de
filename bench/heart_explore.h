/* `bench_heart explore [--split N]`: an exploration behind docs/BENCHMARKS.md
 * 1(d), issue 16 item 2, not a benchmark row. For each seed it trains the
 * selection's winner as `bench_heart select` does (X_NOSEL=1: the defaults
 * without selection; X_CAND=k: default-grid candidate k, no selection),
 * then, per site, adapts θ over a wide grid (steps 0-3000 × rates
 * 0.01-3) and compares rules that choose (steps, rate) per site on
 * training rows: accuracy or loss on a 20% validation part (current / wide
 * grid), 5-fold cross-validated accuracy or loss, and the ensemble of the
 * adapted and global predictions (probabilities averaged) chosen on the
 * validation part or by CV. Rows marked ORACLE let the TEST rows choose
 * the setting: an upper bound of the family for that θ, not a result.
 * X_NOCV=1 skips the cross-validation (faster); X_VERBOSE=1 prints each
 * choice. Mean ± std over seeds of the mean of four, then per site.
 * X_SEEDENS=K instead runs s_run_seedens (end of file): a deep ensemble of
 * the winner over K initial θ. */
#ifndef MFL_BENCH_HEART_EXPLORE_H
#define MFL_BENCH_HEART_EXPLORE_H

#define X_NS 7
#define X_NR 6
static const int x_steps[X_NS] = {0, 10, 30, 100, 300, 1000, 3000};
static const float x_rates[X_NR] = {0.01f, 0.03f, 0.1f, 0.3f, 1.0f, 3.0f};

typedef struct {
    double acc, loss;
    bool ok;
} x_m_t;

static double x_acc(const float *p, const float *y, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += (p[i] >= 0.5f) == (y[i] > 0.5f);
    return n ? (double)c / (double)n : NAN;
}

/* X_HEAD=1: adapt only the last layer (per-site head): one step at a
 * time, the body put back to θ's after each (projected SGD). */
static size_t x_head_from; /* offset of the head's first float; 0 = whole net */

/* adapt θ on sup (steps, lr), score q; probs of class 1 into p (n q). */
static int x_eval(mfl_learner_t *L, const float *theta, const mfl_dataset_t *sup,
                  const mfl_dataset_t *q, int steps, float lr, float *p, x_m_t *m)
{
    char err[256];
    mfl_eval_metrics_t em;
    m->ok = false;
    if (x_head_from && steps > 0) {
        size_t ns = mfl_learner_n_state(L);
        float *cur = malloc(ns * sizeof *cur), *nx = malloc(ns * sizeof *nx);
        memcpy(cur, theta, ns * sizeof *cur);
        int bad = 0;
        for (int i = 0; i < steps && !bad; i++) {
            bad = mfl_learner_evaluate(L, cur, sup, sup, 1, lr, nx, &em, err, sizeof err) != 0;
            memcpy(cur + x_head_from, nx + x_head_from, (ns - x_head_from) * sizeof *cur);
        }
        int rc = bad ? -1
                     : mfl_learner_evaluate(L, cur, sup, q, 0, lr, NULL, &em, err, sizeof err);
        free(cur);
        free(nx);
        if (rc != 0)
            return -1;
    } else if (mfl_learner_evaluate(L, theta, sup, q, steps, lr, NULL, &em, err, sizeof err) !=
               0)
        return -1;
    size_t n = 0, nw = 0;
    const float *pr = mfl_learner_query_probs(L, &n, &nw);
    if (!pr || n != q->n)
        return -1;
    for (size_t i = 0; i < n; i++)
        p[i] = pr[2 * i + 1];
    m->acc = em.accuracy;
    m->loss = em.loss;
    m->ok = isfinite(em.loss);
    return 0;
}

static double x_ll(const float *p, const float *y, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double q = y[i] > 0.5f ? p[i] : 1 - p[i];
        s -= log(q < 1e-7 ? 1e-7 : q);
    }
    return s / (double)n;
}

/* per site result of the experiment: test acc under several choosers */
enum { XC_CUR, XC_CUR_WIDE, XC_LOSS_WIDE, XC_CV_ACC, XC_CV_LOSS, XC_ENS_CUR, XC_ENS_CV,
       XC_ORACLE, XC_ORACLE_CUR, XC_GLOBAL, XC_ORACLE_ENS, XC_N };
static const char *x_names[XC_N] = {
    "val acc, current grid", "val acc, wide grid", "val loss, wide grid",
    "cv5 acc (tie loss), wide", "cv5 loss, wide", "ens(adapt,global), val acc wide",
    "ens, cv5 acc wide", "ORACLE test, wide grid", "ORACLE test, current grid",
    "global as-is", "ORACLE test, ensemble wide"};

static bool x_in_cur(int si, int ri)
{
    int s = x_steps[si];
    float r = x_rates[ri];
    bool cs = s == 0 || s == 10 || s == 30 || s == 100 || s == 300;
    bool cr = r == 0.01f || r == 0.2f; /* 0.05 not in the wide grid: approx */
    return cs && cr;
}

static int x_site(mfl_learner_t *L, const float *theta, const mfl_dataset_t *train,
                  const mfl_dataset_t *test, const mfl_dataset_t *fit, const mfl_dataset_t *val,
                  uint64_t seed, double out[XC_N])
{
    static x_m_t vm[X_NS][X_NR], tm[X_NS][X_NR], em[X_NS][X_NR];
    static double cvacc[X_NS][X_NR], cvloss[X_NS][X_NR];
    static float pv[4096], pt[4096], pt0[4096], pv0[4096], tmp[4096];
    /* folds */
    mfl_dataset_t *fa[5], *fb[5];
    {
        mfl_rng_t rng;
        mfl_rng_seed(&rng, seed, 0xcf5);
        size_t n = train->n;
        size_t *idx = malloc(n * sizeof *idx);
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        mfl_rng_shuffle(&rng, idx, n);
        /* stratify: order by class keeping shuffle */
        size_t *o = malloc(n * sizeof *o), k = 0;
        for (int c = 0; c < 2; c++)
            for (size_t i = 0; i < n; i++)
                if ((train->y[idx[i]] > 0.5f) == (c == 1))
                    o[k++] = idx[i];
        for (int f = 0; f < 5; f++) {
            size_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), na = 0, nb = 0;
            for (size_t i = 0; i < n; i++)
                if ((int)(i % 5) == f)
                    b[nb++] = o[i];
                else
                    a[na++] = o[i];
            fa[f] = mfl_dataset_subset(train, a, na);
            fb[f] = mfl_dataset_subset(train, b, nb);
            fa[f]->n_classes = fb[f]->n_classes = 2;
            free(a);
            free(b);
        }
        free(idx);
        free(o);
    }
    x_m_t g;
    x_eval(L, theta, train, test, 0, 0.01f, pt0, &g);
    x_eval(L, theta, fit, val, 0, 0.01f, pv0, &g);
    for (int si = 0; si < X_NS; si++)
        for (int ri = 0; ri < X_NR; ri++) {
            if (x_steps[si] == 0 && ri > 0) {
                vm[si][ri].ok = tm[si][ri].ok = em[si][ri].ok = false;
                cvacc[si][ri] = NAN;
                continue;
            }
            x_eval(L, theta, fit, val, x_steps[si], x_rates[ri], pv, &vm[si][ri]);
            x_eval(L, theta, train, test, x_steps[si], x_rates[ri], pt, &tm[si][ri]);
            /* ensemble on val */
            for (size_t i = 0; i < val->n; i++)
                tmp[i] = 0.5f * (pv[i] + pv0[i]);
            em[si][ri].acc = x_acc(tmp, val->y, val->n);
            em[si][ri].loss = x_ll(tmp, val->y, val->n);
            em[si][ri].ok = vm[si][ri].ok;
            for (size_t i = 0; i < test->n; i++)
                tmp[i] = 0.5f * (pt[i] + pt0[i]);
            /* stash ensemble test acc in em's loss slot? keep separate */
            double ens_test = x_acc(tmp, test->y, test->n);
            em[si][ri].acc += 0; /* val */
            tm[si][ri].loss = ens_test; /* reuse: tm.loss = ensemble test acc */
            double a = 0, l = 0;
            bool ok = true;
            for (int f = 0; f < (getenv("X_NOCV") ? 0 : 5); f++) {
                x_m_t m;
                x_eval(L, theta, fa[f], fb[f], x_steps[si], x_rates[ri], tmp, &m);
                if (!m.ok) {
                    ok = false;
                    break;
                }
                a += m.acc * (double)fb[f]->n;
                l += m.loss * (double)fb[f]->n;
            }
            if (getenv("X_NOCV"))
                ok = false;
            cvacc[si][ri] = ok ? a / (double)train->n : NAN;
            cvloss[si][ri] = ok ? l / (double)train->n : NAN;
        }
    for (int f = 0; f < 5; f++) {
        mfl_dataset_destroy(&fa[f]);
        mfl_dataset_destroy(&fb[f]);
    }
    /* choosers */
    int b[XC_N][2];
    double bv[XC_N], bl[XC_N];
    for (int c = 0; c < XC_N; c++)
        b[c][0] = b[c][1] = -1, bv[c] = -INFINITY, bl[c] = INFINITY;
    for (int si = 0; si < X_NS; si++)
        for (int ri = 0; ri < X_NR; ri++) {
            if (!vm[si][ri].ok || !tm[si][ri].ok)
                continue;
            struct {
                int c;
                double v, l;
                bool use;
            } cs[] = {
                {XC_CUR, vm[si][ri].acc, vm[si][ri].loss, x_in_cur(si, ri)},
                {XC_CUR_WIDE, vm[si][ri].acc, vm[si][ri].loss, true},
                {XC_LOSS_WIDE, -vm[si][ri].loss, 0, true},
                {XC_CV_ACC, cvacc[si][ri], cvloss[si][ri], isfinite(cvacc[si][ri])},
                {XC_CV_LOSS, -cvloss[si][ri], 0, isfinite(cvacc[si][ri])},
                {XC_ENS_CUR, em[si][ri].acc, em[si][ri].loss, true},
                {XC_ENS_CV, cvacc[si][ri], cvloss[si][ri], isfinite(cvacc[si][ri])},
                {XC_ORACLE, tm[si][ri].acc, 0, true},
                {XC_ORACLE_CUR, tm[si][ri].acc, 0, x_in_cur(si, ri)},
                {XC_GLOBAL, si == 0 ? 1 : -1, 0, si == 0},
                {XC_ORACLE_ENS, tm[si][ri].loss, 0, true},
            };
            for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
                if (!cs[k].use)
                    continue;
                int c = cs[k].c;
                if (cs[k].v > bv[c] || (cs[k].v == bv[c] && cs[k].l < bl[c])) {
                    bv[c] = cs[k].v;
                    bl[c] = cs[k].l;
                    b[c][0] = si;
                    b[c][1] = ri;
                }
            }
        }
    for (int c = 0; c < XC_N; c++) {
        int si = b[c][0], ri = b[c][1];
        if (si < 0) {
            out[c] = NAN;
            continue;
        }
        out[c] = (c == XC_ENS_CUR || c == XC_ENS_CV || c == XC_ORACLE_ENS) ? tm[si][ri].loss : tm[si][ri].acc;
        if (getenv("X_VERBOSE"))
            printf("   c%d steps %d rate %g -> %.3f\n", c, x_steps[si], (double)x_rates[ri],
                   out[c]);
    }
    return 0;
}

static int s_run_explore(const s_opts_t *o, s_heart_t *h, uint64_t split)
{
    char err[512];
    if (split && s_resplit(h, split) != 0)
        return -1;
    static double res[S_MAX_SEEDS][XC_N][S_HEART_SITES];
    bool nosel = getenv("X_NOSEL") != NULL;
    int xcand = getenv("X_CAND") ? atoi(getenv("X_CAND")) : -1; /* 1-based default grid */
    if (xcand > 0)
        nosel = true;
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
        if (s_fleet_own(&own, h, 0, err, sizeof err) != 0)
            return -1;
        s_sel_config(&c, S_HEART_FEATURES, seed, 5, !nosel);
        if (xcand > 0) {
            if ((size_t)xcand > c.selection.n_candidates)
                return -1;
            const mfl_select_candidate_t *cd = &c.selection.candidates[xcand - 1];
            c.learner = cd->learner;
            c.server = cd->server;
            c.eval_adapt_steps = cd->adapt_steps;
            c.eval_adapt_lr = cd->adapt_lr;
        }
        float *th = NULL;
        size_t n = 0;
        mfl_select_candidate_t trained;
        if (s_sel_run(own.workers, S_HEART_SITES, ids, &c, fin, &w, desc, &th, &n, &trained, err,
                      sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        printf("seed %llu winner %zu %s\n", (unsigned long long)seed, w, desc);
        mfl_learner_t *L = mfl_learner_new(&trained.learner, 512, err, sizeof err);
        x_head_from = 0;
        if (getenv("X_HEAD") && mfl_learner_n_tensors(L) >= 2)
            x_head_from = mfl_learner_tensor(L, mfl_learner_n_tensors(L) - 2)->offset;
        for (int s = 0; s < S_HEART_SITES; s++) {
            const mfl_dataset_t *fit, *val;
            if (mfl_site_worker_validation(own.workers[s], 0.2, seed, &fit, &val, err,
                                           sizeof err))
                return -1;
            double out[XC_N];
            x_site(L, th, h->train[s], h->test[s], fit, val, seed, out);
            for (int cc = 0; cc < XC_N; cc++)
                res[k][cc][s] = out[cc];
        }
        mfl_learner_destroy(&L);
        free(th);
        s_fleet_free(&own);
    }
    for (int cc = 0; cc < XC_N; cc++) {
        double m4[S_MAX_SEEDS];
        for (int k = 0; k < o->n_seeds; k++) {
            m4[k] = 0;
            for (int s = 0; s < 4; s++)
                m4[k] += res[k][cc][s] / 4;
        }
        double mean, sd;
        s_mean_std(m4, o->n_seeds, &mean, &sd);
        printf("%-36s %.4f ± %.4f [", x_names[cc], mean, sd);
        for (int s = 0; s < 4; s++) {
            double v[S_MAX_SEEDS];
            for (int k = 0; k < o->n_seeds; k++)
                v[k] = res[k][cc][s];
            double m, d;
            s_mean_std(v, o->n_seeds, &m, &d);
            printf(" %.3f", m);
        }
        printf(" ]\n");
    }
    return 0;
}

#endif

/* X_SEEDENS=K (`bench_heart explore --standardize federated`): a deep
 * ensemble of the selection's winner. Per seed: the selection as in
 * `select`; then the winner trained again from K-1 other initial θ (the
 * same rounds, init seeds seed + 1000·j; without selection in their run
 * the pooled scaling comes from all training rows, and each member is
 * adapted and scored with its own run's scaling); each site chooses (steps, rate)
 * per member by cross-validation on its training rows (the library's
 * eval.adapt_search), adapts each member on all of its training rows and
 * averages the members' probabilities on its test rows. Rows: members 1,
 * first 2, first 3, ..., K; plus the ensemble of the K global models (no
 * adaptation) and an ORACLE (test rows choose one (steps, rate) per site
 * for every member). Choices on training rows only. */
#define XE_MAX 8
static int xe_scaled(const mfl_dataset_t *raw, const mfl_dataset_t *raw_train, bool pooled,
                     mfl_dataset_t **out)
{
    const mfl_dataset_t *one[1] = {raw};
    *out = mfl_dataset_concat(one, 1);
    if (!*out)
        return -1;
    (*out)->n_classes = 2;
    float mean[64], sd[64];
    if (pooled) {
        mfl_dataset_standardize(*out, s_fed_scaling.mean, s_fed_scaling.scale);
    } else {
        mfl_dataset_feature_stats(raw_train, mean, sd);
        mfl_dataset_standardize(*out, mean, sd);
    }
    return 0;
}

static int s_run_seedens(const s_opts_t *o, s_heart_t *h, uint64_t split, int K)
{
    char err[512];
    if (split && s_resplit(h, split) != 0)
        return -1;
    if (K < 1 || K > XE_MAX)
        return -1;
    enum { XR = XE_MAX + 2 };
    static double res[S_MAX_SEEDS][XR][S_HEART_SITES];
    static double xe_fa[S_MAX_SEEDS][S_HEART_SITES];
    for (int k = 0; k < o->n_seeds; k++) {
        uint64_t seed = 42 + (uint64_t)k;
        const char *ids[S_HEART_SITES];
        for (int s = 0; s < S_HEART_SITES; s++)
            ids[s] = s_heart_site_names[s];
        static mfl_coord_config_t c;
        mfl_eval_report_t fin[S_HEART_SITES];
        char desc[MFL_SELECT_DESC_MAX];
        size_t w = 0;
        float *th[XE_MAX] = {0};
        size_t n = 0;
        mfl_select_candidate_t trained;
        s_fleet_t own = {0};
        if (s_sel_fleet(&own, h, err, sizeof err) != 0)
            return -1;
        s_sel_config(&c, S_HEART_FEATURES, seed, 5, true);
        if (s_sel_run(own.workers, S_HEART_SITES, ids, &c, fin, &w, desc, &th[0], &n, &trained,
                      err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        printf("seed %llu winner %zu %s\n", (unsigned long long)seed, w, desc);
        static mfl_task_scaling_t scal[XE_MAX];
        scal[0] = s_fed_scaling; /* each member is scored with its own run's scaling */
        for (int j = 1; j < K; j++) {
            s_sel_config(&c, S_HEART_FEATURES, seed, 5, false);
            c.learner = trained.learner;
            c.server = trained.server;
            c.eval_adapt_steps = trained.adapt_steps;
            c.eval_adapt_lr = trained.adapt_lr;
            c.federated_scaling = trained.federated_scaling;
            c.init_seed = seed + 1000u * (uint64_t)j;
            size_t nj = 0;
            mfl_select_candidate_t tj;
            if (s_sel_run(own.workers, S_HEART_SITES, ids, &c, fin, &w, desc, &th[j], &nj, &tj,
                          err, sizeof err) != 0 || nj != n) {
                fprintf(stderr, "member %d: %s\n", j, err);
                return -1;
            }
            scal[j] = s_fed_scaling;
        }
        mfl_learner_t *L = mfl_learner_new(&trained.learner, 512, err, sizeof err);
        if (!L)
            return -1;
        static const uint32_t g_steps[] = MFL_SITE_ADAPT_STEPS;
        static const float g_rates[] = MFL_SITE_ADAPT_RATES;
        enum { NS = sizeof g_steps / sizeof *g_steps, NR = sizeof g_rates / sizeof *g_rates };
        for (int s = 0; s < S_HEART_SITES; s++) {
            size_t nq = h->rtest[s]->n;
            double *sum = calloc(nq, sizeof *sum), *gsum = calloc(nq, sizeof *gsum);
            static double osum[NS][NR][4096];
            static bool obad[NS][NR];
            memset(osum, 0, sizeof osum);
            memset(obad, 0, sizeof obad);
            for (int j = 0; j < K; j++) {
                mfl_dataset_t *tr = NULL, *te = NULL;
                s_fed_scaling = scal[j];
                if (xe_scaled(h->rtrain[s], h->rtrain[s], trained.federated_scaling, &tr) ||
                    xe_scaled(h->rtest[s], h->rtrain[s], trained.federated_scaling, &te))
                    return -1;
                double acc = 0;
                uint32_t st = 0;
                float lr = 0;
                if (s_sel_site_adapt(own.workers[s], &trained.learner, th[j], n, seed, &acc, &st,
                                     &lr, err, sizeof err) != 0) {
                    fprintf(stderr, "%s\n", err);
                    return -1;
                }
                mfl_eval_metrics_t em;
                if (mfl_learner_evaluate(L, th[j], tr, te, (int)st, lr, NULL, &em, err,
                                         sizeof err) != 0)
                    return -1;
                size_t qn = 0, nw = 0;
                const float *p = mfl_learner_query_probs(L, &qn, &nw);
                for (size_t i = 0; i < nq; i++)
                    sum[i] += p[2 * i + 1];
                if (getenv("X_VERBOSE"))
                    printf("  seed %d site %d member %d: %u x %g lib %.3f mine %.3f\n", k, s, j,
                           st, (double)lr, acc, em.accuracy);
                mfl_learner_evaluate(L, th[j], tr, te, 0, lr, NULL, &em, err, sizeof err);
                p = mfl_learner_query_probs(L, &qn, &nw);
                for (size_t i = 0; i < nq; i++)
                    gsum[i] += p[2 * i + 1];
                for (int a = 0; a < NS; a++)
                    for (int b = 0; b < NR; b++) {
                        if ((g_steps[a] == 0 && b) || obad[a][b])
                            continue;
                        if (mfl_learner_evaluate(L, th[j], tr, te, (int)g_steps[a], g_rates[b],
                                                 NULL, &em, err, sizeof err) != 0 ||
                            !isfinite(em.loss)) {
                            obad[a][b] = true;
                            continue;
                        }
                        p = mfl_learner_query_probs(L, &qn, &nw);
                        for (size_t i = 0; i < nq; i++)
                            osum[a][b][i] += p[2 * i + 1];
                    }
                size_t c1 = 0;
                for (size_t i = 0; i < nq; i++)
                    c1 += (sum[i] / (j + 1) >= 0.5) == (te->y[i] > 0.5f);
                res[k][j][s] = (double)c1 / (double)nq;
                mfl_dataset_destroy(&tr);
                mfl_dataset_destroy(&te);
            }
            const mfl_dataset_t *te = h->rtest[s];
            size_t c1 = 0;
            for (size_t i = 0; i < nq; i++)
                c1 += (gsum[i] / K >= 0.5) == (te->y[i] > 0.5f);
            res[k][XE_MAX][s] = (double)c1 / (double)nq;
            double best = -1;
            for (int a = 0; a < NS; a++)
                for (int b = 0; b < NR; b++) {
                    if ((g_steps[a] == 0 && b) || obad[a][b])
                        continue;
                    c1 = 0;
                    for (size_t i = 0; i < nq; i++)
                        c1 += (osum[a][b][i] / K >= 0.5) == (te->y[i] > 0.5f);
                    double v = (double)c1 / (double)nq;
                    best = v > best ? v : best;
                }
            res[k][XE_MAX + 1][s] = best;
            free(sum);
            free(gsum);
        }
        mfl_learner_destroy(&L);
        for (int j = 0; j < K; j++)
            free(th[j]);
        s_fleet_free(&own);
        /* FedAvg + 100 fine-tuning steps, as `select` runs it: the paired rows */
        memset(&own, 0, sizeof own);
        if (s_sel_fleet(&own, h, err, sizeof err) != 0)
            return -1;
        s_fed_spec_t sp;
        s_variant_spec(&s_variants[0], "linear:13-1", &sp);
        float *ft = NULL;
        size_t nft = 0;
        if (s_engine_train(&sp, own.workers, S_HEART_SITES, seed, &ft, &nft, err, sizeof err))
            return -1;
        for (int s = 0; s < S_HEART_SITES; s++) {
            double before = 0;
            if (s_score(own.workers[s], &sp, ft, nft, 100, S_FT_LR, 0, 0, &xe_fa[k][s], &before,
                        err, sizeof err) < 0)
                return -1;
        }
        free(ft);
        s_fleet_free(&own);
        fflush(stdout);
    }
    for (int r = 0; r < XR; r++) {
        if (r >= K && r < XE_MAX)
            continue;
        char name[96];
        if (r < XE_MAX)
            snprintf(name, sizeof name, "ensemble of %d, each CV-adapted", r + 1);
        else if (r == XE_MAX)
            snprintf(name, sizeof name, "ensemble of %d global models", K);
        else
            snprintf(name, sizeof name, "ORACLE ensemble of %d, one (steps,rate)", K);
        double m4[S_MAX_SEEDS];
        for (int k = 0; k < o->n_seeds; k++) {
            m4[k] = 0;
            for (int s = 0; s < 4; s++)
                m4[k] += res[k][r][s] / 4;
        }
        double mean, sd;
        s_mean_std(m4, o->n_seeds, &mean, &sd);
        printf("%-40s %.4f ± %.4f [", name, mean, sd);
        for (int s = 0; s < 4; s++) {
            double v[S_MAX_SEEDS], m, d;
            for (int k = 0; k < o->n_seeds; k++)
                v[k] = res[k][r][s];
            s_mean_std(v, o->n_seeds, &m, &d);
            printf(" %.3f", m);
        }
        printf(" ]");
        if (r < XE_MAX) { /* paired: ensemble - FedAvg+FT, per seed and site */
            double d4[S_MAX_SEEDS], dm, dsd;
            for (int k = 0; k < o->n_seeds; k++) {
                d4[k] = 0;
                for (int s = 0; s < 4; s++)
                    d4[k] += (res[k][r][s] - xe_fa[k][s]) / 4;
            }
            s_mean_std(d4, o->n_seeds, &dm, &dsd);
            printf("  paired - FedAvg+FT %+.4f ± %.4f", dm, dsd);
        }
        printf("\n");
    }
    {
        double m4[S_MAX_SEEDS], mean, sd;
        for (int k = 0; k < o->n_seeds; k++) {
            m4[k] = 0;
            for (int s = 0; s < 4; s++)
                m4[k] += xe_fa[k][s] / 4;
        }
        s_mean_std(m4, o->n_seeds, &mean, &sd);
        printf("%-40s %.4f ± %.4f\n", "FedAvg + 100 fine-tuning steps", mean, sd);
    }
    return 0;
}

/* X_PROX=1 (`bench_heart explore --standardize federated`): proximal
 * adaptation of the selection's winner: each step θ ← θ − lr·(g + λ·(θ −
 * θ_fed)), (steps, rate, λ) chosen per site by 5-fold CV loss on its
 * training rows (the library's folds are not reused: a seeded stratified
 * split here), λ = 0 is the library's adaptation. Prints CV choice with
 * λ = 0 only, with λ from {0, 0.01, 0.1, 1}, and the ORACLE of each. */
#define XP_NL 4
static const float xp_lam[XP_NL] = {0.0f, 0.01f, 0.1f, 1.0f};

/* Advances cur by `steps` proximal steps; loss of the adapted θ on q into
 * *loss, acc into *acc. -1 on divergence. */
/* X_PROX=2: feature-wise adapters instead: a per-feature scale a and
 * shift b of the inputs (x' = a⊙x + b, 2·13 numbers) adapted by SGD, the
 * network frozen at θ_fed; cur holds θ with the first layer folded in
 * (W·diag(a), c + W·b), so scoring it is scoring the adapter. The
 * gradient of a and b follows from the first layer's: dL/da_j = Σ_i W_ij
 * dL/dW'_ij, dL/db_j = Σ_i W_ij dL/dc'_i. xp_a/xp_b: the trajectory's. */
static bool xp_film;
static float xp_a[64], xp_b[64];
static size_t xp_in, xp_out;

static void xp_fold(float *cur, const float *th0)
{
    /* layer 0: weight [out][in] at 0, bias [out] after it */
    for (size_t i = 0; i < xp_out; i++) {
        double c = th0[xp_out * xp_in + i];
        for (size_t j = 0; j < xp_in; j++) {
            cur[i * xp_in + j] = th0[i * xp_in + j] * xp_a[j];
            c += (double)th0[i * xp_in + j] * xp_b[j];
        }
        cur[xp_out * xp_in + i] = (float)c;
    }
}

static int xp_film_run(mfl_learner_t *L, float *cur, float *nx, const float *th0,
                       const mfl_dataset_t *sup, int steps, float lr)
{
    char err[128];
    mfl_eval_metrics_t em;
    for (int t = 0; t < steps; t++) {
        xp_fold(cur, th0);
        if (mfl_learner_evaluate(L, cur, sup, sup, 1, lr, nx, &em, err, sizeof err) != 0)
            return -1;
        for (size_t j = 0; j < xp_in; j++) {
            double da = 0, db = 0;
            for (size_t i = 0; i < xp_out; i++) {
                double w = th0[i * xp_in + j];
                da += w * (cur[i * xp_in + j] - nx[i * xp_in + j]) / lr;
                db += w * (cur[xp_out * xp_in + i] - nx[xp_out * xp_in + i]) / lr;
            }
            xp_a[j] -= lr * (float)da;
            xp_b[j] -= lr * (float)db;
        }
    }
    xp_fold(cur, th0);
    for (size_t j = 0; j < xp_in; j++)
        if (!isfinite(xp_a[j]) || !isfinite(xp_b[j]))
            return -1;
    return 0;
}

static int xp_run(mfl_learner_t *L, float *cur, float *nx, const float *th0, size_t ns,
                  const mfl_dataset_t *sup, int steps, float lr, float lam)
{
    char err[128];
    mfl_eval_metrics_t em;
    if (xp_film)
        return xp_film_run(L, cur, nx, th0, sup, steps, lr);
    for (int i = 0; i < steps; i++) {
        if (mfl_learner_evaluate(L, cur, sup, sup, 1, lr, nx, &em, err, sizeof err) != 0)
            return -1;
        for (size_t j = 0; j < ns; j++)
            cur[j] = nx[j] - lr * lam * (cur[j] - th0[j]);
    }
    for (size_t j = 0; j < ns; j++)
        if (!isfinite(cur[j]))
            return -1;
    return 0;
}

static int s_run_prox(const s_opts_t *o, s_heart_t *h)
{
    char err[512];
    static const int ps[] = {0, 10, 30, 100, 300, 1000};
    static const float pr[] = {0.01f, 0.03f, 0.1f, 0.3f, 1.0f};
    enum { PS = 6, PR = 5, XRW = 4 };
    static double res[S_MAX_SEEDS][XRW][S_HEART_SITES];
    for (int k = 0; k < o->n_seeds; k++) {
        uint64_t seed = 42 + (uint64_t)k;
        const char *ids[S_HEART_SITES];
        for (int s = 0; s < S_HEART_SITES; s++)
            ids[s] = s_heart_site_names[s];
        static mfl_coord_config_t c;
        mfl_eval_report_t fin[S_HEART_SITES];
        char desc[MFL_SELECT_DESC_MAX];
        size_t w = 0, n = 0;
        float *th = NULL;
        mfl_select_candidate_t trained;
        s_fleet_t own = {0};
        if (s_sel_fleet(&own, h, err, sizeof err) != 0)
            return -1;
        s_sel_config(&c, S_HEART_FEATURES, seed, 5, true);
        if (s_sel_run(own.workers, S_HEART_SITES, ids, &c, fin, &w, desc, &th, &n, &trained, err,
                      sizeof err) != 0)
            return -1;
        printf("seed %llu winner %zu %s\n", (unsigned long long)seed, w, desc);
        mfl_learner_t *L = mfl_learner_new(&trained.learner, 512, err, sizeof err);
        size_t ns = mfl_learner_n_state(L);
        xp_film = getenv("X_PROX") && atoi(getenv("X_PROX")) == 2;
        xp_in = mfl_learner_tensor(L, 0)->shape[1];
        xp_out = mfl_learner_tensor(L, 0)->shape[0];
        if (xp_in > 64 || mfl_learner_tensor(L, 0)->offset != 0)
            return -1;
        float *cur = malloc(ns * sizeof *cur), *nx = malloc(ns * sizeof *nx);
        for (int s = 0; s < S_HEART_SITES; s++) {
            mfl_dataset_t *tr = NULL, *te = NULL;
            if (xe_scaled(h->rtrain[s], h->rtrain[s], trained.federated_scaling, &tr) ||
                xe_scaled(h->rtest[s], h->rtrain[s], trained.federated_scaling, &te))
                return -1;
            /* folds */
            mfl_dataset_t *fa[5], *fb[5];
            {
                mfl_rng_t rng;
                mfl_rng_seed(&rng, seed, 0xcf5);
                size_t nn = tr->n, *idx = malloc(nn * sizeof *idx), *ord = malloc(nn * sizeof *ord),
                       q = 0;
                for (size_t i = 0; i < nn; i++)
                    idx[i] = i;
                mfl_rng_shuffle(&rng, idx, nn);
                for (int cl = 0; cl < 2; cl++)
                    for (size_t i = 0; i < nn; i++)
                        if ((tr->y[idx[i]] > 0.5f) == (cl == 1))
                            ord[q++] = idx[i];
                for (int f = 0; f < 5; f++) {
                    size_t *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), na = 0, nb = 0;
                    for (size_t i = 0; i < nn; i++)
                        if ((int)(i % 5) == f)
                            b[nb++] = ord[i];
                        else
                            a[na++] = ord[i];
                    fa[f] = mfl_dataset_subset(tr, a, na);
                    fb[f] = mfl_dataset_subset(tr, b, nb);
                    fa[f]->n_classes = fb[f]->n_classes = 2;
                    free(a);
                    free(b);
                }
                free(idx);
                free(ord);
            }
            static double cvl[XP_NL][PR][PS], tacc[XP_NL][PR][PS];
            for (int l = 0; l < XP_NL; l++)
                for (int r = 0; r < PR; r++)
                    for (int si = 0; si < PS; si++)
                        cvl[l][r][si] = tacc[l][r][si] = NAN;
            for (int l = 0; l < (xp_film ? 1 : XP_NL); l++)
                for (int r = 0; r < PR; r++) {
                    for (int si = 0; si < PS; si++)
                        cvl[l][r][si] = NAN, tacc[l][r][si] = NAN;
                    /* CV: each fold's trajectory */
                    for (int f = 0; f < 5; f++) {
                        memcpy(cur, th, ns * sizeof *cur);
                        for (size_t j = 0; j < 64; j++)
                            xp_a[j] = 1, xp_b[j] = 0;
                        int at = 0;
                        for (int si = 0; si < PS; si++) {
                            if (xp_run(L, cur, nx, th, ns, fa[f], ps[si] - at, pr[r], xp_lam[l]))
                                break;
                            at = ps[si];
                            mfl_eval_metrics_t em;
                            mfl_learner_evaluate(L, cur, fa[f], fb[f], 0, pr[r], NULL, &em, err,
                                                 sizeof err);
                            double v = em.loss * (double)fb[f]->n / (double)tr->n;
                            cvl[l][r][si] = (f == 0 ? 0 : cvl[l][r][si]) + v;
                        }
                    }
                    memcpy(cur, th, ns * sizeof *cur);
                    for (size_t j = 0; j < 64; j++)
                        xp_a[j] = 1, xp_b[j] = 0;
                    int at = 0;
                    for (int si = 0; si < PS; si++) {
                        if (xp_run(L, cur, nx, th, ns, tr, ps[si] - at, pr[r], xp_lam[l]))
                            break;
                        at = ps[si];
                        mfl_eval_metrics_t em;
                        mfl_learner_evaluate(L, cur, tr, te, 0, pr[r], NULL, &em, err, sizeof err);
                        tacc[l][r][si] = em.accuracy;
                    }
                }
            for (int f = 0; f < 5; f++) {
                mfl_dataset_destroy(&fa[f]);
                mfl_dataset_destroy(&fb[f]);
            }
            /* rows: 0 CV λ=0, 1 CV any λ, 2 ORACLE λ=0, 3 ORACLE any λ */
            for (int row = 0; row < XRW; row++) {
                int nl = (row == 0 || row == 2) ? 1 : XP_NL;
                bool oracle = row >= 2;
                double best = oracle ? -1 : INFINITY, acc = NAN;
                for (int l = 0; l < nl; l++)
                    for (int r = 0; r < PR; r++)
                        for (int si = 0; si < PS; si++) {
                            if ((ps[si] == 0 && (r || l)) || !isfinite(cvl[l][r][si]) ||
                                !isfinite(tacc[l][r][si]))
                                continue;
                            double v = oracle ? tacc[l][r][si] : cvl[l][r][si];
                            if (oracle ? v > best : v < best) {
                                best = v;
                                acc = tacc[l][r][si];
                                if (getenv("X_VERBOSE") && row == 1)
                                    printf("   site %d: λ %g rate %g steps %d cv %.4f acc %.3f\n", s,
                                           (double)xp_lam[l], (double)pr[r], ps[si], v, acc);
                            }
                        }
                res[k][row][s] = acc;
            }
            mfl_dataset_destroy(&tr);
            mfl_dataset_destroy(&te);
        }
        free(cur);
        free(nx);
        free(th);
        mfl_learner_destroy(&L);
        s_fleet_free(&own);
        fflush(stdout);
    }
    static const char *names[XRW] = {"CV loss, λ = 0 (library's rule)", "CV loss, λ chosen too",
                                     "ORACLE λ = 0", "ORACLE λ any"};
    static const char *fnames[XRW] = {"feature-wise adapter, CV loss", "(same)",
                                      "ORACLE feature-wise adapter", "(same)"};
    for (int r = 0; r < XRW; r++) {
        double m4[S_MAX_SEEDS], mean, sd;
        for (int k = 0; k < o->n_seeds; k++) {
            m4[k] = 0;
            for (int s = 0; s < 4; s++)
                m4[k] += res[k][r][s] / 4;
        }
        s_mean_std(m4, o->n_seeds, &mean, &sd);
        printf("%-36s %.4f ± %.4f [", xp_film ? fnames[r] : names[r], mean, sd);
        for (int s = 0; s < 4; s++) {
            double v[S_MAX_SEEDS], m, d;
            for (int k = 0; k < o->n_seeds; k++)
                v[k] = res[k][r][s];
            s_mean_std(v, o->n_seeds, &m, &d);
            printf(" %.3f", m);
        }
        printf(" ]\n");
    }
    return 0;
}
