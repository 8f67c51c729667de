/* bench_heart privacy: quality under record-level differential privacy on
 * the four UCI heart hospitals (issue 11, item 9). Included by
 * bench_heart.c (uses its statistics and output helpers).
 *
 * For ε ∈ {0.5, 1, 2, 4, 8, ∞} (δ = 1e-5) and each seed: every hospital
 * trains FedAvg (the personalisation recipe: 30 rounds, 1 local epoch, lr
 * 0.05) on linear:13-1 (logistic regression, as FLamby's DP example) with
 * DP-SGD through the production site worker in mode `record`: Poisson rate
 * q = 16/N (expected batch 16), clip 1, and the noise multiplier that keeps
 * ITS OWN 30 rounds within ε (metafl privacy sigma, as Opacus's
 * get_noise_multiplier; each hospital has its own N, so its own q, steps
 * and σ). The hospital's budget is ε: the worker refuses a round that would
 * pass it, so no result can exceed it. ε = ∞ is mode none (no DP, the same
 * recipe). Scored on each hospital's held-out rows: the global model as is,
 * and personalised with k = 10 local fine-tuning steps (local, never sent:
 * no privacy cost). Leave-one-hospital-out: the same DP training on the
 * other three, then the held-out hospital adapts on k = 10 labelled cases
 * of its own (100 steps; S_PRIV_DRAWS drawn sets per seed), scored on its
 * held-out rows. Rounds go through the coordinator's round engine. */
#ifndef MFL_BENCH_HEART_PRIVACY_H
#define MFL_BENCH_HEART_PRIVACY_H

#include "meta/learner_dp.h"
#include "privacy/accountant.h"
#include "privacy/policy.h"

#define S_PRIV_N_EPS 6
static const double s_priv_eps[S_PRIV_N_EPS] = {0.5, 1, 2, 4, 8, INFINITY};

/* Sets worker w's policy for budget eps over `rounds` rounds of sp. */
static int s_priv_policy(mfl_site_worker_t *w, const s_fed_spec_t *sp, int rounds, double eps,
                         double *sigma_out, double *q_out, char *err, size_t errlen)
{
    mfl_privacy_policy_t p;
    mfl_privacy_policy_defaults(&p);
    *sigma_out = 0;
    *q_out = 0;
    if (isinf(eps))
        return mfl_site_worker_set_privacy(w, &p, err, errlen);
    size_t n = mfl_site_worker_n_train(w);
    double q = 16.0 / (double)n;
    if (q > 1)
        q = 1;
    mfl_learner_config_t lc;
    memset(&lc, 0, sizeof lc);
    mfl_learner_config_defaults(&lc, MFL_ALGO_FEDAVG);
    lc.local_epochs = (int)sp->algo.local_epochs;
    uint64_t per_round = mfl_learner_dp_steps(&lc, q, err, errlen);
    if (!per_round)
        return -1;
    double sigma;
    if (mfl_privacy_noise_for_epsilon(eps, 1e-5, q, (double)(per_round * (uint64_t)rounds), 0.01,
                                      &sigma, err, errlen))
        return -1;
    p.mode = MFL_PRIVACY_MODE_RECORD;
    p.epsilon_budget = eps * (1 + 1e-9);
    p.delta = 1e-5;
    p.noise_multiplier = sigma;
    p.sample_rate = q;
    p.clip_max = 1.0;
    p.allow_unnoised_stats = true; /* the bench reads the held-out scores */
    *sigma_out = sigma;
    *q_out = q;
    mfl_privacy_accountant_t zero;
    mfl_privacy_accountant_init(&zero, NULL, 0, NULL, 0);
    mfl_site_worker_set_ledger(w, &zero, NULL);
    return mfl_site_worker_set_privacy(w, &p, err, errlen);
}

#define S_PRIV_DRAWS 10
#define S_PRIV_SHOTS 10
#define S_PRIV_LOHO_STEPS 100

/* Leave-one-hospital-out under DP for one ε and seed: loho[held] gets the
 * held-out hospital's mean accuracy over the drawn support sets. */
static int s_priv_loho(const s_heart_t *h, double eps, uint64_t seed, int draws, double *loho,
                       char *err, size_t errlen)
{
    for (int held = 0; held < S_HEART_SITES; held++) {
        s_fleet_t own = {0};
        if (s_fleet_own(&own, h, 0, err, errlen) != 0)
            return -1;
        s_fed_spec_t sp;
        s_variant_spec(&s_variants[0], "linear:13-1", &sp);
        mfl_site_worker_t *three[S_HEART_SITES - 1];
        for (int s = 0, j = 0; s < S_HEART_SITES; s++) {
            if (s == held)
                continue;
            double sg, q;
            if (s_priv_policy(own.workers[s], &sp, sp.rounds, eps, &sg, &q, err, errlen)) {
                s_fleet_free(&own);
                return -1;
            }
            three[j++] = own.workers[s];
        }
        float *theta = NULL;
        size_t n = 0;
        if (s_train(&sp, three, S_HEART_SITES - 1, seed, &theta, &n, err, errlen) != 0) {
            s_fleet_free(&own);
            return -1;
        }
        double mean = 0;
        for (int d = 0; d < draws; d++) {
            mfl_rng_t r;
            mfl_rng_seed(&r, seed, 0x707269ULL * 1000003u + (uint64_t)held * 10007u + (uint64_t)d);
            mfl_dataset_t *sup = s_draw_support(h->train[held], S_PRIV_SHOTS, &r);
            mfl_site_worker_t *w = sup ? s_worker(s_heart_site_names[held], sup, h->test[held],
                                                  err, errlen)
                                       : NULL;
            mfl_dataset_destroy(&sup);
            double acc = 0;
            int rc = w ? s_score(w, &sp, theta, n, S_PRIV_LOHO_STEPS, S_FT_LR, 0,
                                 (uint32_t)(1000 + d), &acc, NULL, err, errlen)
                       : -1;
            mfl_site_worker_destroy(&w);
            if (rc < 0) {
                free(theta);
                s_fleet_free(&own);
                return -1;
            }
            mean += acc / draws;
        }
        loho[held] = mean;
        free(theta);
        s_fleet_free(&own);
    }
    return 0;
}

static int s_run_privacy(const s_opts_t *o, const s_heart_t *h, const char *argv0)
{
    char err[512];
    const int draws = o->quick ? 3 : S_PRIV_DRAWS;
    /* loho[eps][seed][held-out site] */
    static double loho[S_PRIV_N_EPS][S_MAX_SEEDS][S_HEART_SITES];
    /* acc[eps][0 = global, 1 = personalised k=10][seed][site] */
    static double acc[S_PRIV_N_EPS][2][S_MAX_SEEDS][S_HEART_SITES];
    static double sig[S_PRIV_N_EPS][S_HEART_SITES], qs[S_HEART_SITES], spent[S_PRIV_N_EPS][S_HEART_SITES];
    for (int k = 0; k < o->n_seeds; k++) {
        uint64_t seed = 42 + (uint64_t)k;
        for (int e = 0; e < S_PRIV_N_EPS; e++) {
            s_fleet_t own = {0};
            if (s_fleet_own(&own, h, 0, err, sizeof err) != 0)
                goto fail;
            s_fed_spec_t sp;
            s_variant_spec(&s_variants[0], "linear:13-1", &sp); /* FedAvg */
            for (int s = 0; s < S_HEART_SITES; s++) {
                double q;
                if (s_priv_policy(own.workers[s], &sp, sp.rounds, s_priv_eps[e], &sig[e][s], &q,
                                  err, sizeof err))
                    goto fail_fleet;
                if (!isinf(s_priv_eps[e]))
                    qs[s] = q;
            }
            float *theta = NULL;
            size_t n = 0;
            if (s_train(&sp, own.workers, S_HEART_SITES, seed, &theta, &n, err, sizeof err) != 0)
                goto fail_fleet;
            for (int s = 0; s < S_HEART_SITES; s++) {
                double before = 0;
                int rc = s_score(own.workers[s], &sp, theta, n, 10, S_FT_LR, 0, 0, &acc[e][1][k][s],
                                 &before, err, sizeof err);
                if (rc < 0) {
                    free(theta);
                    goto fail_fleet;
                }
                acc[e][0][k][s] = rc == 0 ? before : 0.0;
                double eps = mfl_site_worker_epsilon_spent(own.workers[s]);
                if (isfinite(eps) && eps > spent[e][s])
                    spent[e][s] = eps;
            }
            free(theta);
            s_fleet_free(&own);
            if (s_priv_loho(h, s_priv_eps[e], seed, draws, loho[e][k], err, sizeof err))
                goto fail;
            continue;
fail_fleet:
            s_fleet_free(&own);
            goto fail;
        }
        printf("seed %llu done\n", (unsigned long long)seed);
        fflush(stdout);
        continue;
fail:
        fprintf(stderr, "bench_heart privacy: seed %llu: %s\n", (unsigned long long)seed, err);
        return -1;
    }
    FILE *f = s_open_out(o, "privacy", argv0);
    if (!f)
        return -1;
    s_json_majority(f, h);
    fprintf(f, "  \"settings\": {\"model\": \"linear:13-1\", \"algo\": \"fedavg\", \"rounds\": 30, "
               "\"local_epochs\": 1, \"lr\": 0.05, \"dp\": \"record-level DP-SGD, clip 1, "
               "q = 16/N per site, sigma calibrated per site for its 30 rounds\", "
               "\"delta\": 1e-5, \"fine_tune\": \"k = 10 steps lr %.3f on the site's training "
               "rows (local)\",\n    \"q\": [",
            (double)S_FT_LR);
    for (int s = 0; s < S_HEART_SITES; s++)
        fprintf(f, "%s%.5f", s ? ", " : "", qs[s]);
    fprintf(f, "]},\n  \"rows\": [\n");
    printf("quality under privacy (linear:13-1 FedAvg, record-level DP-SGD)\n");
    for (int e = 0; e < S_PRIV_N_EPS; e++)
        for (int j = 0; j < 2; j++) {
            char name[96], extra[400];
            int m = 0;
            snprintf(name, sizeof name, "eps=%g %s", s_priv_eps[e],
                     j ? "personalised k=10" : "global");
            m += snprintf(extra + m, sizeof extra - (size_t)m,
                          "\"epsilon\": %s, \"kind\": \"%s\", \"sigma\": [",
                          isinf(s_priv_eps[e]) ? "null" : "0", j ? "personalised" : "global");
            if (!isinf(s_priv_eps[e]))
                snprintf(extra, sizeof extra, "\"epsilon\": %g, \"kind\": \"%s\", \"sigma\": [",
                         s_priv_eps[e], j ? "personalised" : "global"),
                    m = (int)strlen(extra);
            for (int s = 0; s < S_HEART_SITES; s++)
                m += snprintf(extra + m, sizeof extra - (size_t)m, "%s%.4f", s ? ", " : "",
                              sig[e][s]);
            m += snprintf(extra + m, sizeof extra - (size_t)m, "], \"epsilon_spent\": [");
            for (int s = 0; s < S_HEART_SITES; s++)
                m += snprintf(extra + m, sizeof extra - (size_t)m, "%s%.4f", s ? ", " : "",
                              spent[e][s]);
            snprintf(extra + m, sizeof extra - (size_t)m, "]");
            s_json_row(f, name, acc[e][j], o->n_seeds, extra, 0);
        }
    for (int e = 0; e < S_PRIV_N_EPS; e++) {
        char name[96], extra[160];
        snprintf(name, sizeof name, "eps=%g leave-one-out k=%d", s_priv_eps[e], S_PRIV_SHOTS);
        if (isinf(s_priv_eps[e]))
            snprintf(extra, sizeof extra, "\"epsilon\": null, \"kind\": \"loho\", \"draws\": %d",
                     draws);
        else
            snprintf(extra, sizeof extra, "\"epsilon\": %g, \"kind\": \"loho\", \"draws\": %d",
                     s_priv_eps[e], draws);
        s_json_row(f, name, loho[e], o->n_seeds, extra, e == S_PRIV_N_EPS - 1);
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    return 0;
}

#endif
