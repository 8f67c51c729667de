/* bench_heart privacy: quality under record-level differential privacy on
 * the four UCI heart hospitals (issue 11, item 9). Included by
 * bench_heart.c (uses its statistics and output helpers).
 *
 * For ε ∈ {0.5, 1, 2, 4, 8, ∞} (δ = 1e-5; FLamby's other point, ε = 0.1,
 * cannot be certified at δ = 1e-5 with Opacus's default orders for any σ:
 * their floor is ≈ 0.103) every hospital trains FedAvg
 * through the production site worker in mode `record` (DP-SGD: Poisson
 * rate q = B/N, per-example clip C, and the noise multiplier that keeps
 * ITS OWN rounds within ε: `metafl privacy sigma`, as Opacus's
 * get_noise_multiplier; each hospital has its own N, so its own q, steps
 * and σ). The hospital's budget is ε: the worker refuses a round that would
 * pass it, so no result can exceed it. ε = ∞ is mode none (plain SGD, batch
 * B). Rounds go through the coordinator's round engine.
 *
 * The recipe is chosen on VALIDATION rows, never the test rows: each
 * hospital's training rows are split once (stratified, 75 % fit / 25 %
 * validation, a fixed seed; features re-standardised with the fit rows'
 * statistics), every recipe of the grid (model × lr × B × C × rounds) is
 * trained on the fit rows under the same ε with S_PRIV_SEL_SEEDS seeds
 * (σ calibrated for the fit rows' N) and scored on the validation rows:
 *   global rows       the recipe with the best mean validation accuracy of
 *                     the federated model as is;
 *   personalised rows the (recipe, k) with the best mean validation
 *                     accuracy after k local fine-tuning steps (lr 0.05;
 *                     k ∈ s_priv_ft; local, never sent: no privacy cost);
 *   leave-one-out     per held-out hospital, the recipe with the best
 *                     global validation accuracy over the OTHER three
 *                     hospitals (the held-out one takes no part in it).
 * The chosen recipe is then trained on all training rows (σ recalibrated
 * for them) with seeds 42.. and scored on the test rows. The selection runs
 * are not counted in the reported ε (as in FLamby and most DP benchmarks);
 * docs/PRIVACY.md says what that means for a hospital. */
#ifndef MFL_BENCH_HEART_PRIVACY_H
#define MFL_BENCH_HEART_PRIVACY_H

#include "heart_split.h"
#include "meta/learner_dp.h"
#include "privacy/accountant.h"
#include "privacy/policy.h"

#define S_PRIV_N_EPS 6
static const double s_priv_eps[S_PRIV_N_EPS] = {0.5, 1, 2, 4, 8, INFINITY};

/* One training recipe: FedAvg, 1 local epoch per round, server sgd 1. */
typedef struct {
    const char *model;
    float lr;     /* local (DP-)SGD rate */
    int batch;    /* B: expected rows per step (DP: q = B/N), SGD batch at ε = ∞ */
    double clip;  /* C: per-example clip norm (DP only) */
    int rounds;
    int epochs;         /* local epochs per round (1 unless set) */
    const char *server; /* server optimiser: "sgd" (FedAvg, rate 1), "adam" (FedAdam) */
    float server_lr;
} s_priv_recipe_t;

static const char *const s_priv_models[] = {"linear:13-1", "mlp:13-32-1"};
static const float s_priv_lrs[] = {0.1f, 0.3f};
static const int s_priv_batches[] = {16, 32};
static const double s_priv_clips[] = {0.5, 1.0};
static const int s_priv_rounds[] = {15, 30};
#define S_PRIV_GRID 32 /* 2 · 2 · 2 · 2 · 2 */
#define S_PRIV_N_FT 3
static const int s_priv_ft[S_PRIV_N_FT] = {10, 30, 100};
#define S_PRIV_SEL_SEEDS 2
/* --quick (make bench's quick subset): 4 recipes (lr 0.1, C 1, 15 rounds),
 * one selection seed, ε 0.5 and 1 */
static int s_priv_quick;
#define S_PRIV_SPLIT_SEED 0x76616cULL /* "val": the fit/validation split */

/* A recipe grid, one list per axis (the server's rate goes with it).
 * Index i counts the recipes with rounds varying fastest, then clip,
 * batch, lr and server, model slowest. */
typedef struct {
    const char *const *models;
    int n_models;
    const char *const *servers;
    const float *server_lrs;
    int n_servers;
    const float *lrs;
    int n_lrs;
    const int *batches;
    int n_batches;
    const double *clips;
    int n_clips;
    const int *rounds;
    int n_rounds;
} s_priv_axes_t;

#define S_PRIV_AXIS(a) (a), (int)(sizeof(a) / sizeof((a)[0]))
/* The grid of the lists named P_models, P_servers, P_server_lrs, P_lrs,
 * P_batches, P_clips and P_rounds. */
#define S_PRIV_AXES(P)                                                                     \
    {S_PRIV_AXIS(P##_models), P##_servers,          S_PRIV_AXIS(P##_server_lrs),         \
     S_PRIV_AXIS(P##_lrs),    S_PRIV_AXIS(P##_batches), S_PRIV_AXIS(P##_clips),          \
     S_PRIV_AXIS(P##_rounds)}

/* Recipe i of grid `ax` (1 local epoch per round). */
static s_priv_recipe_t s_priv_recipe_at(const s_priv_axes_t *ax, int i)
{
    s_priv_recipe_t r;
    memset(&r, 0, sizeof r);
    r.rounds = ax->rounds[i % ax->n_rounds];
    i /= ax->n_rounds;
    r.clip = ax->clips[i % ax->n_clips];
    i /= ax->n_clips;
    r.batch = ax->batches[i % ax->n_batches];
    i /= ax->n_batches;
    r.lr = ax->lrs[i % ax->n_lrs];
    i /= ax->n_lrs;
    r.server = ax->servers[i % ax->n_servers];
    r.server_lr = ax->server_lrs[i % ax->n_servers];
    i /= ax->n_servers;
    r.model = ax->models[i % ax->n_models];
    r.epochs = 1;
    return r;
}

/* FedAvg (server sgd 1) only. */
static const char *const s_priv_servers[] = {"sgd"};
static const float s_priv_server_lrs[] = {1.0f};
static const s_priv_axes_t s_priv_axes = S_PRIV_AXES(s_priv);

static s_priv_recipe_t s_priv_grid(int i)
{
    return s_priv_recipe_at(&s_priv_axes, i);
}

static void s_priv_spec(const s_priv_recipe_t *r, s_fed_spec_t *sp)
{
    s_fed_spec_defaults(sp, "fedavg", r->model);
    sp->rounds = r->rounds;
    sp->algo.local_epochs = (uint32_t)(r->epochs > 0 ? r->epochs : 1);
    sp->algo.batch_size = (uint32_t)r->batch;
    sp->algo.inner_lr = r->lr;
    if (r->server) {
        sp->server = r->server;
        sp->server_lr = r->server_lr;
    }
}

/* Sets worker w's policy for budget eps under recipe r (σ for its own N,
 * q and r->rounds rounds); a fresh ledger (zero spent). */
static int s_priv_policy(mfl_site_worker_t *w, const s_priv_recipe_t *r, double eps,
                         double *sigma_out, double *q_out, char *err, size_t errlen)
{
    mfl_privacy_policy_t p;
    mfl_privacy_policy_defaults(&p);
    *sigma_out = 0;
    *q_out = 0;
    if (isinf(eps))
        return mfl_site_worker_set_privacy(w, &p, err, errlen);
    size_t n = mfl_site_worker_n_train(w);
    double q = (double)r->batch / (double)n;
    if (q > 1)
        q = 1;
    mfl_learner_config_t lc;
    memset(&lc, 0, sizeof lc);
    mfl_learner_config_defaults(&lc, MFL_ALGO_FEDAVG);
    lc.local_epochs = (uint32_t)(r->epochs > 0 ? r->epochs : 1);
    uint64_t per_round = mfl_learner_dp_steps(&lc, q, err, errlen);
    if (!per_round)
        return -1;
    double sigma;
    if (mfl_privacy_noise_for_epsilon(eps, 1e-5, q, (double)(per_round * (uint64_t)r->rounds),
                                      0.01, &sigma, err, errlen))
        return -1;
    p.mode = MFL_PRIVACY_MODE_RECORD;
    p.epsilon_budget = eps * (1 + 1e-9);
    p.delta = 1e-5;
    p.noise_multiplier = sigma;
    p.sample_rate = q;
    p.clip_max = r->clip;
    p.allow_unnoised_stats = true; /* the bench reads the held-out scores (EvalTask) */
    *sigma_out = sigma;
    *q_out = q;
    mfl_privacy_accountant_t zero;
    mfl_privacy_accountant_init(&zero, NULL, 0, NULL, 0);
    mfl_site_worker_set_ledger(w, &zero, NULL);
    return mfl_site_worker_set_privacy(w, &p, err, errlen);
}

/* What one run of a recipe gives, per site of the run. */
typedef struct {
    double global[S_HEART_SITES];
    double pers[S_PRIV_N_FT][S_HEART_SITES];
    double sigma[S_HEART_SITES], q[S_HEART_SITES], spent[S_HEART_SITES];
} s_priv_out_t;

/* Trains recipe r at ε on the sites listed in `sites` (train[s] rows; the
 * worker's test rows are test[s]: validation or test rows) and scores each
 * on its test rows: as is, and after each k of s_priv_ft (if pers). */
static int s_priv_run(const s_priv_recipe_t *r, double eps, mfl_dataset_t *const *train,
                      mfl_dataset_t *const *test, const int *sites, int n_sites, uint64_t seed,
                      int pers, s_priv_out_t *out, char *err, size_t errlen)
{
    mfl_site_worker_t *w[S_HEART_SITES] = {0};
    s_fed_spec_t sp;
    s_priv_spec(r, &sp);
    float *theta = NULL;
    size_t n = 0;
    int rc = -1;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n_sites; i++) {
        int s = sites[i];
        w[i] = s_worker(s_heart_site_names[s], train[s], test[s], err, errlen);
        if (!w[i] || s_priv_policy(w[i], r, eps, &out->sigma[s], &out->q[s], err, errlen))
            goto out;
    }
    if (s_train(&sp, w, (size_t)n_sites, seed, &theta, &n, err, errlen) != 0)
        goto out;
    for (int i = 0; i < n_sites; i++) {
        int s = sites[i];
        double before = 0, a = 0;
        int src = s_score(w[i], &sp, theta, n, 0, S_FT_LR, 0, 0, &a, &before, err, errlen);
        if (src < 0)
            goto out;
        out->global[s] = src == 0 ? a : 0.0;
        for (int k = 0; pers && k < S_PRIV_N_FT; k++) {
            src = s_score(w[i], &sp, theta, n, s_priv_ft[k], S_FT_LR, 0, 0, &out->pers[k][s],
                          NULL, err, errlen);
            if (src < 0)
                goto out;
        }
        double e = mfl_site_worker_epsilon_spent(w[i]);
        out->spent[s] = isfinite(e) ? e : 0;
    }
    rc = 0;
out:
    free(theta);
    for (int i = 0; i < n_sites; i++)
        mfl_site_worker_destroy(&w[i]);
    return rc;
}

/* A quarter of the rows ((n + 2) / 4) to validation, as many of each
 * class as its share (rounded). */
static int s_priv_to_val(size_t i, size_t n, size_t np, const void *arg)
{
    (void)arg;
    size_t nv = (n + 2) / 4;
    size_t vp = (size_t)((double)nv * (double)np / (double)n + 0.5);
    return i < np ? i < vp : i - np < nv - vp;
}

/* The fit/validation split of each hospital's training rows (stratified,
 * 75/25, seed S_PRIV_SPLIT_SEED), both re-standardised with the fit rows'
 * mean and unbiased std (+1e-9), as the data module standardises. */
static int s_priv_split(const s_heart_t *h, mfl_dataset_t *fit[S_HEART_SITES],
                        mfl_dataset_t *val[S_HEART_SITES])
{
    for (int s = 0; s < S_HEART_SITES; s++) {
        const mfl_dataset_t *t = h->train[s];
        mfl_rng_t r;
        mfl_rng_seed(&r, S_PRIV_SPLIT_SEED, (uint64_t)s);
        if (s_heart_split_stratified(t, &r, s_priv_to_val, NULL, &fit[s], &val[s]))
            return -1;
        size_t a = val[s]->n, b = fit[s]->n;
        size_t d = t->n_features;
        for (size_t j = 0; j < d; j++) {
            double m = 0, v = 0;
            for (size_t i = 0; i < b; i++)
                m += fit[s]->x[i * d + j];
            m /= (double)b;
            for (size_t i = 0; i < b; i++)
                v += (fit[s]->x[i * d + j] - m) * (fit[s]->x[i * d + j] - m);
            double sd = sqrt(v / (double)(b > 1 ? b - 1 : 1)) + 1e-9;
            for (size_t i = 0; i < b; i++)
                fit[s]->x[i * d + j] = (float)((fit[s]->x[i * d + j] - m) / sd);
            for (size_t i = 0; i < a; i++)
                val[s]->x[i * d + j] = (float)((val[s]->x[i * d + j] - m) / sd);
        }
    }
    return 0;
}

/* The choice for one ε (and, for leave-one-out, one held-out hospital). */
typedef struct {
    int global;     /* grid index for the global rows */
    int pers, ft;   /* grid index and s_priv_ft index for the personalised rows */
    double val_global, val_pers; /* their mean validation accuracy */
} s_priv_choice_t;

/* Runs the grid at ε on the fit rows of `sites`, scores the validation
 * rows, and picks (see the top of this file). Ties keep the earlier
 * recipe (linear before MLP, smaller lr, batch, clip, rounds). */
static int s_priv_select(mfl_dataset_t *const *fit, mfl_dataset_t *const *val, const int *sites,
                         int n_sites, double eps, int pers, s_priv_choice_t *c, char *err,
                         size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->val_global = c->val_pers = -1;
    for (int g = 0; g < S_PRIV_GRID; g++) {
        s_priv_recipe_t r = s_priv_grid(g);
        if (isinf(eps) && r.clip != s_priv_clips[0])
            continue; /* no clipping without DP: the same recipe */
        if (s_priv_quick && (r.lr != s_priv_lrs[0] || r.clip != s_priv_clips[1] ||
                             r.rounds != s_priv_rounds[0]))
            continue;
        const int n_sel = s_priv_quick ? 1 : S_PRIV_SEL_SEEDS;
        double vg = 0, vp[S_PRIV_N_FT] = {0};
        for (int k = 0; k < n_sel; k++) {
            s_priv_out_t o;
            if (s_priv_run(&r, eps, fit, val, sites, n_sites, 1000 + (uint64_t)k, pers, &o, err,
                           errlen))
                return -1;
            for (int i = 0; i < n_sites; i++) {
                vg += o.global[sites[i]] / (n_sites * n_sel);
                for (int f = 0; f < S_PRIV_N_FT; f++)
                    vp[f] += o.pers[f][sites[i]] / (n_sites * n_sel);
            }
        }
        if (vg > c->val_global + 1e-12)
            c->global = g, c->val_global = vg;
        for (int f = 0; pers && f < S_PRIV_N_FT; f++)
            if (vp[f] > c->val_pers + 1e-12)
                c->pers = g, c->ft = f, c->val_pers = vp[f];
    }
    return 0;
}

#define S_PRIV_DRAWS 10
#define S_PRIV_SHOTS 10
#define S_PRIV_LOHO_STEPS 100

/* Leave-one-hospital-out under DP for one ε and seed with recipe r for
 * held-out hospital `held`: the held-out hospital's mean accuracy over the
 * drawn support sets. */
static int s_priv_loho(const s_heart_t *h, const s_priv_recipe_t *r, int held, double eps,
                       uint64_t seed, int draws, double *acc, char *err, size_t errlen)
{
    s_fed_spec_t sp;
    s_priv_spec(r, &sp);
    mfl_site_worker_t *three[S_HEART_SITES - 1] = {0};
    float *theta = NULL;
    size_t n = 0;
    int rc = -1;
    for (int s = 0, j = 0; s < S_HEART_SITES; s++) {
        if (s == held)
            continue;
        double sg, q;
        three[j] = s_worker(s_heart_site_names[s], h->train[s], h->test[s], err, errlen);
        if (!three[j] || s_priv_policy(three[j], r, eps, &sg, &q, err, errlen))
            goto out;
        j++;
    }
    if (s_train(&sp, three, S_HEART_SITES - 1, seed, &theta, &n, err, errlen) != 0)
        goto out;
    double mean = 0;
    for (int d = 0; d < draws; d++) {
        mfl_rng_t rr;
        mfl_rng_seed(&rr, seed, 0x707269ULL * 1000003u + (uint64_t)held * 10007u + (uint64_t)d);
        mfl_dataset_t *sup = s_draw_support(h->train[held], S_PRIV_SHOTS, &rr);
        mfl_site_worker_t *w =
            sup ? s_worker(s_heart_site_names[held], sup, h->test[held], err, errlen) : NULL;
        mfl_dataset_destroy(&sup);
        double a = 0;
        int src = w ? s_score(w, &sp, theta, n, S_PRIV_LOHO_STEPS, S_FT_LR, 0,
                              (uint32_t)(1000 + d), &a, NULL, err, errlen)
                    : -1;
        mfl_site_worker_destroy(&w);
        if (src < 0)
            goto out;
        mean += a / draws;
    }
    *acc = mean;
    rc = 0;
out:
    free(theta);
    for (int j = 0; j < S_HEART_SITES - 1; j++)
        mfl_site_worker_destroy(&three[j]);
    return rc;
}

/* `"epsilon": null` (ε = ∞) or `"epsilon": ε` into buf; what snprintf
 * returns. */
static int s_priv_eps_json(char *buf, size_t len, double eps)
{
    if (isinf(eps))
        return snprintf(buf, len, "\"epsilon\": null");
    return snprintf(buf, len, "\"epsilon\": %g", eps);
}

/* Appends `, "key": [v per site]` (%.4f) to buf, which holds m chars;
 * the new length. */
static int s_priv_json_sites(char *buf, size_t len, int m, const char *key,
                             const double v[S_HEART_SITES])
{
    m += snprintf(buf + m, len - (size_t)m, ", \"%s\": [", key);
    for (int s = 0; s < S_HEART_SITES; s++)
        m += snprintf(buf + m, len - (size_t)m, "%s%.4f", s ? ", " : "", v[s]);
    return m + snprintf(buf + m, len - (size_t)m, "]");
}

/* Both privacy benches' JSON head: the majority rows, then the settings
 * object opened with what they share (FedAvg, δ, the DP mechanism); the
 * caller writes its own settings and closes it. */
static void s_priv_json_head(FILE *f, const s_heart_t *h)
{
    s_json_majority(f, h);
    fprintf(f, "  \"settings\": {\"algo\": \"fedavg\", \"local_epochs\": 1, \"server\": \"sgd 1\", "
               "\"delta\": 1e-5, \"dp\": \"record-level DP-SGD, q = B/N per site, sigma "
               "calibrated per site for its rounds\"");
}

static int s_priv_recipe_json(char *buf, size_t len, const s_priv_recipe_t *r)
{
    return snprintf(buf, len,
                    "{\"model\": \"%s\", \"lr\": %g, \"batch\": %d, \"clip\": %g, \"rounds\": %d}",
                    r->model, (double)r->lr, r->batch, r->clip, r->rounds);
}

static int s_run_privacy(const s_opts_t *o, const s_heart_t *h, const char *argv0)
{
    char err[512];
    const int draws = o->quick ? 3 : S_PRIV_DRAWS;
    const int n_eps = o->quick ? 2 : S_PRIV_N_EPS; /* quick: 0.5, 1 */
    s_priv_quick = o->quick;
    static const int all4[S_HEART_SITES] = {0, 1, 2, 3};
    /* loho[eps][seed][held-out site] */
    static double loho[S_PRIV_N_EPS][S_MAX_SEEDS][S_HEART_SITES];
    /* acc[eps][0 = global, 1 = personalised][seed][site] */
    static double acc[S_PRIV_N_EPS][2][S_MAX_SEEDS][S_HEART_SITES];
    static double sig[S_PRIV_N_EPS][2][S_HEART_SITES], qs[S_PRIV_N_EPS][2][S_HEART_SITES],
        spent[S_PRIV_N_EPS][2][S_HEART_SITES];
    static s_priv_choice_t ch[S_PRIV_N_EPS], lch[S_PRIV_N_EPS][S_HEART_SITES];
    mfl_dataset_t *fit[S_HEART_SITES] = {0}, *val[S_HEART_SITES] = {0};
    int rc = -1;
    if (s_priv_split(h, fit, val)) {
        snprintf(err, sizeof err, "out of memory splitting validation rows");
        goto done;
    }
    for (int e = 0; e < n_eps; e++) {
        double eps = s_priv_eps[e];
        if (s_priv_select(fit, val, all4, S_HEART_SITES, eps, 1, &ch[e], err, sizeof err))
            goto done;
        for (int held = 0; held < S_HEART_SITES; held++) {
            int three[S_HEART_SITES - 1];
            for (int s = 0, j = 0; s < S_HEART_SITES; s++)
                if (s != held)
                    three[j++] = s;
            if (s_priv_select(fit, val, three, S_HEART_SITES - 1, eps, 0, &lch[e][held], err,
                              sizeof err))
                goto done;
        }
        s_priv_recipe_t rg = s_priv_grid(ch[e].global), rp = s_priv_grid(ch[e].pers);
        printf("eps=%g chosen: global %s lr %g B %d C %g R %d (val %.3f); personalised %s lr %g "
               "B %d C %g R %d k %d (val %.3f)\n",
               eps, rg.model, (double)rg.lr, rg.batch, rg.clip, rg.rounds, ch[e].val_global,
               rp.model, (double)rp.lr, rp.batch, rp.clip, rp.rounds, s_priv_ft[ch[e].ft],
               ch[e].val_pers);
        fflush(stdout);
        for (int k = 0; k < o->n_seeds; k++) {
            uint64_t seed = 42 + (uint64_t)k;
            for (int j = 0; j < 2; j++) {
                s_priv_recipe_t r = j ? rp : rg;
                s_priv_out_t out;
                if (s_priv_run(&r, eps, h->train, h->test, all4, S_HEART_SITES, seed, j, &out,
                               err, sizeof err))
                    goto done;
                for (int s = 0; s < S_HEART_SITES; s++) {
                    acc[e][j][k][s] = j ? out.pers[ch[e].ft][s] : out.global[s];
                    sig[e][j][s] = out.sigma[s];
                    qs[e][j][s] = out.q[s];
                    if (out.spent[s] > spent[e][j][s])
                        spent[e][j][s] = out.spent[s];
                }
            }
            for (int held = 0; held < S_HEART_SITES; held++) {
                s_priv_recipe_t r = s_priv_grid(lch[e][held].global);
                if (s_priv_loho(h, &r, held, eps, seed, draws, &loho[e][k][held], err,
                                sizeof err))
                    goto done;
            }
        }
        printf("eps=%g done\n", eps);
        fflush(stdout);
    }
    FILE *f = s_open_out(o, "privacy", argv0);
    if (!f)
        goto done;
    s_priv_json_head(f, h);
    fprintf(f, ", \"fine_tune_lr\": %g, \"selection\": "
               "{\"validation\": \"25%% of each site's training rows, stratified, features "
               "re-standardised with the other 75%%\", \"seeds\": %d, \"models\": [\"%s\", \"%s\"], "
               "\"lr\": [%g, %g], \"batch\": [%d, %d], \"clip\": [%g, %g], \"rounds\": [%d, %d], "
               "\"fine_tune_steps\": [%d, %d, %d]}},\n  \"rows\": [\n",
            (double)S_FT_LR, o->quick ? 1 : S_PRIV_SEL_SEEDS, s_priv_models[0], s_priv_models[1],
            (double)s_priv_lrs[0], (double)s_priv_lrs[1], s_priv_batches[0], s_priv_batches[1],
            s_priv_clips[0], s_priv_clips[1], s_priv_rounds[0], s_priv_rounds[1], s_priv_ft[0],
            s_priv_ft[1], s_priv_ft[2]);
    printf("quality under privacy (FedAvg, record-level DP-SGD, recipe chosen on validation rows)\n");
    for (int e = 0; e < n_eps; e++)
        for (int j = 0; j < 2; j++) {
            char name[96], extra[900], rj[200];
            s_priv_recipe_t r = s_priv_grid(j ? ch[e].pers : ch[e].global);
            s_priv_recipe_json(rj, sizeof rj, &r);
            snprintf(name, sizeof name, "eps=%g %s", s_priv_eps[e], j ? "personalised" : "global");
            int m = s_priv_eps_json(extra, sizeof extra, s_priv_eps[e]);
            m += snprintf(extra + m, sizeof extra - (size_t)m,
                          ", \"kind\": \"%s\", \"recipe\": %s, \"fine_tune_steps\": %d, "
                          "\"validation_acc\": %.4f",
                          j ? "personalised" : "global", rj, j ? s_priv_ft[ch[e].ft] : 0,
                          j ? ch[e].val_pers : ch[e].val_global);
            m = s_priv_json_sites(extra, sizeof extra, m, "sigma", sig[e][j]);
            m = s_priv_json_sites(extra, sizeof extra, m, "q", qs[e][j]);
            s_priv_json_sites(extra, sizeof extra, m, "epsilon_spent", spent[e][j]);
            s_json_row(f, name, acc[e][j], o->n_seeds, extra, 0);
        }
    for (int e = 0; e < n_eps; e++) {
        char name[96], extra[1400];
        snprintf(name, sizeof name, "eps=%g leave-one-out k=%d", s_priv_eps[e], S_PRIV_SHOTS);
        int m = s_priv_eps_json(extra, sizeof extra, s_priv_eps[e]);
        m += snprintf(extra + m, sizeof extra - (size_t)m,
                      ", \"kind\": \"loho\", \"draws\": %d, \"recipes\": [", draws);
        for (int s = 0; s < S_HEART_SITES; s++) {
            char rj[200];
            s_priv_recipe_t r = s_priv_grid(lch[e][s].global);
            s_priv_recipe_json(rj, sizeof rj, &r);
            m += snprintf(extra + m, sizeof extra - (size_t)m, "%s%s", s ? ", " : "", rj);
        }
        snprintf(extra + m, sizeof extra - (size_t)m, "]");
        s_json_row(f, name, loho[e], o->n_seeds, extra, e == n_eps - 1);
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "bench_heart privacy: %s\n", err);
    for (int s = 0; s < S_HEART_SITES; s++) {
        mfl_dataset_destroy(&fit[s]);
        mfl_dataset_destroy(&val[s]);
    }
    return rc;
}

#endif
