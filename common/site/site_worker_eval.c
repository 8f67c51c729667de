/* Evaluation at one site: θ adapted on k local labelled cases, θ as
 * received, and a local-only model on the same cases, all scored on the
 * held-out split. See mfl_site_worker_eval() in site_worker.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "meta/treatment.h"
#include "site/site_worker_internal.h"

/* Picks the support rows: a seeded shuffle of the training split, then the
 * first k, with at least one row of every class present in the split when
 * k allows (a k-case support set with no positive cannot teach anything,
 * and a hospital collecting k cases would make sure it has both). */
mfl_dataset_t *mfl_site_support(const mfl_dataset_t *train, size_t k, mfl_rng_t *rng)
{
    size_t n = train->n;
    if (k == 0 || k >= n)
        k = n;
    size_t *idx = malloc(n * sizeof(size_t));
    if (!idx)
        return NULL;
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    mfl_rng_shuffle(rng, idx, n);
    /* Classes that have rows here: an image site keeping some of the label
     * file's classes has fewer than n_classes. */
    size_t nc = train->n_classes, present = 0;
    for (size_t c = 0; c < nc; c++) {
        size_t i = 0;
        while (i < n && train->y[i] != (float)c)
            i++;
        present += i < n;
    }
    if (present >= 2 && present <= k) {
        for (size_t c = 0; c < nc; c++) {
            int have = 0;
            for (size_t i = 0; i < k && !have; i++)
                have = train->y[idx[i]] == (float)c;
            if (have)
                continue;
            /* Swap the first row of class c into the prefix, replacing a
             * row of the currently most frequent class in the prefix. */
            size_t from = k;
            while (from < n && train->y[idx[from]] != (float)c)
                from++;
            if (from == n)
                continue;
            size_t best = 0, best_count = 0;
            for (size_t i = 0; i < k; i++) {
                size_t cnt = 0;
                for (size_t j = 0; j < k; j++)
                    cnt += train->y[idx[j]] == train->y[idx[i]];
                if (cnt > best_count) {
                    best_count = cnt;
                    best = i;
                }
            }
            size_t t = idx[best];
            idx[best] = idx[from];
            idx[from] = t;
        }
    }
    mfl_dataset_t *s = mfl_dataset_subset(train, idx, k);
    free(idx);
    if (s) {
        s->n_classes = train->n_classes;
        s->channels = train->channels;
        s->height = train->height;
        s->width = train->width;
    }
    return s;
}

/* The policy value on `query` of the arms recommended from the class
 * probabilities of the learner's last evaluation (meta/treatment.h), with
 * the training split's arm shares as propensities. NAN when the model gave
 * no class probabilities or they do not have 2 per arm; -1 out of memory. */
static int s_value(const mfl_site_worker_t *self, const mfl_dataset_t *query, double *value)
{
    size_t arms = self->opts.treatment_arms, n = 0, nw = 0;
    double p[MFL_TREATMENT_MAX_ARMS];
    *value = NAN;
    const float *probs = mfl_learner_query_probs(self->learner, &n, &nw);
    if (!probs || n != query->n || nw != 2 * arms ||
        mfl_treatment_propensity(self->train->y, self->train->n, arms, p))
        return 0;
    int *rec = malloc(n * sizeof(int));
    if (!rec)
        return -1;
    mfl_treatment_recommend(probs, n, arms, rec);
    *value = mfl_treatment_value(rec, query->y, n, arms, p, NULL);
    free(rec);
    return 0;
}

/* The two reference policies: everyone gets the arm that did best in the
 * training split, and the arms the trial actually gave (every row agrees
 * with itself, so its value is the good-outcome rate, reweighted). */
static int s_reference_values(const mfl_site_worker_t *self, const mfl_dataset_t *query,
                              mfl_site_eval_result_t *out)
{
    size_t arms = self->opts.treatment_arms, n = query->n;
    double p[MFL_TREATMENT_MAX_ARMS];
    int best = mfl_treatment_best_arm(self->train->y, self->train->n, arms);
    if (best < 0 || mfl_treatment_propensity(self->train->y, self->train->n, arms, p))
        return 0;
    int *rec = malloc((n ? n : 1) * sizeof(int));
    if (!rec)
        return -1;
    for (size_t i = 0; i < n; i++)
        rec[i] = best;
    out->value_best_arm = mfl_treatment_value(rec, query->y, n, arms, p, NULL);
    for (size_t i = 0; i < n; i++)
        rec[i] = (int)(query->y[i] >= 0 ? query->y[i] / 2 : -1);
    out->value_given = mfl_treatment_value(rec, query->y, n, arms, p, NULL);
    free(rec);
    return 0;
}

/* The hospital's k labelled cases are one fixed set (a hospital does not
 * relabel new patients for every evaluation), and so is its local-only
 * model's initialisation: both depend on the site id only, so evaluations
 * of different θ compare like with like, live or offline. */
#define S_EVAL_SEED 0x6d666c2d6576616cULL /* "mfl-eval" */

/* A metric method's evaluation ignores steps (the support set only
 * enters as prototypes / matching set), so its local-only θ (in
 * self->scratch) is trained here first: `steps` SGD steps of `lr`, each on
 * an episode that splits every class of the support in two (pseudo-support
 * / pseudo-query, a fresh split per step from `rng`). A support with no
 * class of 2 rows (k = 1) or one class gives no episode: θ stays untrained. */
static int s_train_metric_local(mfl_site_worker_t *self, const mfl_dataset_t *support,
                                int steps, float lr, mfl_rng_t *rng, char *err, size_t errlen)
{
    char why[128];
    mfl_sampler_t *split = mfl_sampler_new_class_split(support, why, sizeof(why));
    if (!split) {
        mfl_debug("site '%s': local-only model left untrained: %s", self->site, why);
        return 0;
    }
    int rc = mfl_learner_train_sgd(self->learner, self->scratch, split, rng, steps, lr, err,
                                   errlen);
    mfl_sampler_destroy(&split);
    return rc;
}

static int s_eval(mfl_site_worker_t *self, const mfl_eval_task_t *task, const float *theta,
                  size_t n_theta, mfl_site_eval_result_t *out, char *err, size_t errlen)
{
    /* An evaluation report is unnoised statistics of held-out patients. */
    if (self->policy.mode != MFL_PRIVACY_MODE_NONE && !self->policy.allow_unnoised_stats)
        return mfl_errf(err, errlen, "privacy.allow_unnoised_stats: the policy (mode %s) lets "
                        "no unnoised statistics leave, and an evaluation report is one",
                        mfl_privacy_mode_name(self->policy.mode)), MFL_SITE_ROUND_DECLINED;
    if (mfl_site_worker_prepare(self, &task->algorithm, task->model_spec, n_theta, err, errlen))
        return -1;
    if (mfl_site_check_finite(theta, n_theta))
        return mfl_errf(err, errlen, "eval round %u: θ contains NaN or Inf", task->round), -1;
    if (task->adapt_steps > 100000 || !isfinite(task->adapt_lr) || task->adapt_lr < 0)
        return mfl_errf(err, errlen, "eval round %u: adapt_steps must be <= 100000 and "
                        "adapt_lr finite and >= 0", task->round), -1;
    int steps = (int)task->adapt_steps;
    float lr = task->adapt_lr > 0 ? task->adapt_lr : self->learner_config.inner_lr;

    mfl_rng_t rng;
    mfl_rng_seed(&rng, S_EVAL_SEED, mfl_site_worker_stream(self->site, 0));
    int local_steps = steps > self->opts.local_only_min_steps ? steps
                                                               : self->opts.local_only_min_steps;
    if (mfl_algo_episodic_head(self->learner_config.algo, self->learner_config.loss,
                               mfl_learner_n_outputs(self->learner), self->train->n_classes))
        return mfl_site_worker_eval_ways(self, self->opts.eval_support,
                                         task->algorithm.k_shot ? task->algorithm.k_shot : 5,
                                         steps, local_steps, lr, &rng, theta, out, err, errlen);
    /* The hospital's own setting wins: it knows how many labelled cases it has. */
    size_t k = self->opts.eval_support ? self->opts.eval_support
                                       : task->algorithm.k_shot;
    mfl_dataset_t *support = mfl_site_support(self->train, k, &rng);
    if (!support)
        return mfl_errf(err, errlen, "out of memory choosing the support set"), -1;
    const mfl_dataset_t *query = self->heldout && self->heldout->n ? self->heldout : self->train;
    char sub[256];
    int rc = -1;
    bool treat = self->opts.treatment_arms > 0; /* also score recommendations */
    /* Memory (issue 17): θ is adapted in self->scratch, which the
     * local-only model reuses below, and θ as received is scored where it
     * lies, so the evaluation holds θ and one θ-sized buffer (the learner's
     * own adapted copy stays untouched); the same numbers as adapting a
     * copy inside the learner. */
    memcpy(self->scratch, theta, self->n_state * sizeof(float));
    if (mfl_learner_evaluate_in_place(self->learner, self->scratch, support, query, steps, lr,
                                      &out->adapted, sub, sizeof(sub)))
        goto out_error;
    if (treat && s_value(self, query, &out->value_adapted))
        goto out_oom;
    if (mfl_learner_evaluate(self->learner, theta, support, query, 0, lr, NULL, &out->before,
                             sub, sizeof(sub)))
        goto out_error;
    if (treat && s_value(self, query, &out->value_before))
        goto out_oom;
    /* The hospital on its own: a fresh model from a seed only it knows
     * (site and round), trained on the same support rows. */
    mfl_learner_init_state(self->learner, self->scratch, mfl_rng_u64(&rng));
    if (self->learner_config.algo >= MFL_ALGO_PROTONET &&
        s_train_metric_local(self, support, local_steps, lr, &rng, sub, sizeof(sub)))
        goto out_error;
    if (mfl_learner_evaluate_in_place(self->learner, self->scratch, support, query,
                                      local_steps, lr, &out->local_only, sub, sizeof(sub)))
        goto out_error;
    if (treat && (s_value(self, query, &out->value_local) || s_reference_values(self, query, out)))
        goto out_oom;
    out->n_support = support->n;
    rc = 0;
    goto out_free_support;
out_oom:
    snprintf(sub, sizeof(sub), "out of memory scoring treatment recommendations");
out_error:
    mfl_errf(err, errlen, "site '%s' eval round %u: %s", self->site, task->round, sub);
out_free_support:
    mfl_dataset_destroy(&support);
    return rc;
}

/* Per-site adaptation for a metric method or an episodic head (whose
 * evaluation is not one support set to cross-validate): the (steps, rate)
 * with the best accuracy on the validation rows, then the evaluation with
 * it (see mfl_site_worker_eval's header). */
static int s_eval_search_holdout(mfl_site_worker_t *self, const mfl_eval_task_t *task,
                                 const float *theta, size_t n_theta,
                                 mfl_site_eval_result_t *out, char *err, size_t errlen)
{
    static const uint32_t steps[] = MFL_SITE_ADAPT_STEPS;
    static const float rates[] = MFL_SITE_ADAPT_RATES;
    mfl_eval_task_t t = *task;
    t.selection.adapt_search = false;
    t.selection.candidate = 1; /* the validation rows */
    double best_acc = -1, best_loss = INFINITY;
    uint32_t bs = 0;
    float br = rates[0];
    bool any = false;
    char sub[512] = "";
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++)
        for (size_t j = 0; j < sizeof rates / sizeof *rates; j++) {
            if (steps[i] == 0 && j > 0)
                continue; /* no adaptation: the rate does not matter */
            t.adapt_steps = steps[i];
            t.adapt_lr = rates[j];
            mfl_site_eval_result_t r;
            int rc = mfl_site_worker_eval(self, &t, theta, n_theta, &r, sub, sizeof sub);
            if (rc == MFL_SITE_ROUND_DECLINED)
                return mfl_errf(err, errlen, "%s", sub), rc;
            if (rc != 0)
                continue; /* e.g. a rate that diverges: not a choice */
            const mfl_eval_metrics_t *m = steps[i] ? &r.adapted : &r.before;
            double acc = isfinite(m->accuracy) ? m->accuracy : -m->loss; /* regression: loss */
            if (!any || acc > best_acc ||
                (acc == best_acc && isfinite(m->loss) && m->loss < best_loss)) {
                best_acc = acc;
                best_loss = isfinite(m->loss) ? m->loss : INFINITY;
                bs = steps[i];
                br = rates[j];
                any = true;
            }
        }
    if (!any)
        return mfl_errf(err, errlen, "site '%s' eval round %u: no adaptation setting could be "
                        "scored on the validation rows: %s", self->site, task->round, sub), -1;
    t = *task;
    t.selection.adapt_search = false;
    t.adapt_steps = bs;
    t.adapt_lr = br;
    int rc = mfl_site_worker_eval(self, &t, theta, n_theta, out, err, errlen);
    if (rc == 0) {
        out->adapt_steps_used = bs;
        out->adapt_lr_used = br;
        mfl_info("site %s: adaptation chosen on %zu validation rows: %u steps at rate %g",
                 self->site, self->val ? self->val->n : (size_t)0, bs, (double)br);
    }
    return rc;
}

/* Per-site adaptation of a gradient method: (steps, rate) chosen by
 * cross-validation on the very support cases the evaluation adapts on
 * (site_adapt_search.c), then the evaluation with it. */
static int s_eval_search(mfl_site_worker_t *self, const mfl_eval_task_t *task,
                         const float *theta, size_t n_theta, mfl_site_eval_result_t *out,
                         char *err, size_t errlen)
{
    if (self->policy.mode != MFL_PRIVACY_MODE_NONE && !self->policy.allow_unnoised_stats)
        return s_eval(self, task, theta, n_theta, out, err, errlen); /* declines, says why */
    if (mfl_site_worker_prepare(self, &task->algorithm, task->model_spec, n_theta, err, errlen))
        return -1;
    if (self->learner_config.algo >= MFL_ALGO_PROTONET ||
        mfl_algo_episodic_head(self->learner_config.algo, self->learner_config.loss,
                               mfl_learner_n_outputs(self->learner), self->train->n_classes))
        return s_eval_search_holdout(self, task, theta, n_theta, out, err, errlen);
    if (mfl_site_check_finite(theta, n_theta))
        return mfl_errf(err, errlen, "eval round %u: θ contains NaN or Inf", task->round), -1;
    /* The same k cases s_eval will adapt on. */
    mfl_rng_t rng;
    mfl_rng_seed(&rng, S_EVAL_SEED, mfl_site_worker_stream(self->site, 0));
    size_t k = self->opts.eval_support ? self->opts.eval_support : task->algorithm.k_shot;
    mfl_dataset_t *support = mfl_site_support(self->train, k, &rng);
    if (!support)
        return mfl_errf(err, errlen, "out of memory choosing the support set"), -1;
    mfl_site_adapt_choice_t ch;
    int rc = mfl_site_adapt_search(self, theta, support, task->selection.validation_seed,
                                   task->selection.validation_fraction, &ch, err, errlen);
    mfl_dataset_destroy(&support);
    if (rc != 0)
        return -1;
    mfl_eval_task_t t = *task;
    t.selection.adapt_search = false;
    t.adapt_steps = ch.steps;
    t.adapt_lr = ch.lr;
    rc = s_eval(self, &t, theta, n_theta, out, err, errlen);
    if (rc == 0) {
        out->adapt_steps_used = ch.steps;
        out->adapt_lr_used = ch.lr;
        mfl_info("site %s: adaptation chosen by %zu-fold cross-validation on its %zu support "
                 "cases (%zu settings scored): %u steps at rate %g, held-out loss %.4g",
                 self->site, ch.folds, out->n_support, ch.tried, ch.steps, (double)ch.lr,
                 ch.loss);
    }
    return rc;
}

int mfl_site_worker_eval(mfl_site_worker_t *self, const mfl_eval_task_t *task,
                         const float *theta, size_t n_theta, mfl_site_eval_result_t *out,
                         char *err, size_t errlen)
{
    if (!task || !theta || !out)
        return mfl_errf(err, errlen, "eval: missing task, θ or result"), -1;
    mfl_site_worker_drop_update_pages(self);
    memset(out, 0, sizeof(*out));
    out->value_adapted = out->value_before = out->value_local = NAN;
    out->value_best_arm = out->value_given = NAN;
    self->n_moments = 0;
    if (task->moments) { /* federated standardisation's setup: moments, no scores */
        if (self->policy.mode != MFL_PRIVACY_MODE_NONE && !self->policy.allow_unnoised_stats)
            return mfl_errf(err, errlen, "privacy.allow_unnoised_stats: the policy (mode %s) "
                            "lets no unnoised statistics leave; the fit rows' moments would "
                            "be such statistics", mfl_privacy_mode_name(self->policy.mode)),
                   MFL_SITE_ROUND_DECLINED;
        return mfl_site_worker_moments(self, task->selection.validation_fraction,
                                       task->selection.validation_seed, err, errlen);
    }
    if (mfl_site_scaling_apply(self, &task->scaling, err, errlen) < 0)
        return -1;
    if (task->selection.adapt_search && !task->selection.candidate)
        return s_eval_search(self, task, theta, n_theta, out, err, errlen);
    if (task->selection.adapt_search) {
        /* A candidate scored as it would be deployed (selection.
         * score_adaptation: search): the adaptation chosen by
         * cross-validation on the fit rows, then scored on the validation
         * rows. Metric methods and episodic heads, whose search needs the
         * validation split itself, keep the candidate's adaptation. */
        if (mfl_site_worker_prepare(self, &task->algorithm, task->model_spec, n_theta, err,
                                    errlen))
            return -1;
        bool cv = self->learner_config.algo < MFL_ALGO_PROTONET &&
                  !mfl_algo_episodic_head(self->learner_config.algo, self->learner_config.loss,
                                          mfl_learner_n_outputs(self->learner),
                                          self->train->n_classes);
        mfl_site_data_swap_t sw;
        if (mfl_site_validation_enter(self, &task->selection, &sw, err, errlen) < 0)
            return -1;
        int rc = cv ? s_eval_search(self, task, theta, n_theta, out, err, errlen)
                    : s_eval(self, task, theta, n_theta, out, err, errlen);
        mfl_site_validation_leave(self, &sw);
        return rc;
    }
    /* A selection evaluation: support from the fit rows, scored on the
     * validation rows; the test rows stay out of it. */
    mfl_site_data_swap_t saved;
    if (mfl_site_validation_enter(self, &task->selection, &saved, err, errlen) < 0)
        return -1;
    int rc = s_eval(self, task, theta, n_theta, out, err, errlen);
    mfl_site_validation_leave(self, &saved);
    return rc;
}

void mfl_site_worker_fill_report(const mfl_site_worker_t *self, const mfl_eval_task_t *task,
                                 const mfl_site_eval_result_t *result,
                                 mfl_eval_report_t *report)
{
    memset(report, 0, sizeof *report);
    report->round = task->round;
    memcpy(report->nonce, task->nonce, task->nonce_len);
    report->nonce_len = task->nonce_len;
    snprintf(report->site, sizeof report->site, "%s", self->site);
    report->loss = result->adapted.loss;
    report->accuracy = result->adapted.accuracy;
    report->auroc = result->adapted.auroc;
    report->sensitivity = result->adapted.sensitivity;
    report->specificity = result->adapted.specificity;
    report->n = result->adapted.n;
    report->loss_before = result->before.loss;
    report->accuracy_before = result->before.accuracy;
    report->auroc_before = result->before.auroc;
    report->accuracy_local = result->local_only.accuracy;
    report->auroc_local = result->local_only.auroc;
    report->n_support = result->n_support;
    report->rmse = result->adapted.rmse;
    report->mae = result->adapted.mae;
    report->r2 = result->adapted.r2;
    report->rmse_before = result->before.rmse;
    report->rmse_local = result->local_only.rmse;
    report->adapt_steps_used = result->adapt_steps_used;
    report->adapt_lr_used = result->adapt_lr_used;
    report->sens_at_spec90 = result->adapted.sens_at_spec90;
    report->sens_at_spec90_local = result->local_only.sens_at_spec90;
    report->value = result->value_adapted;
    report->value_before = result->value_before;
    report->value_local = result->value_local;
    report->value_best_arm = result->value_best_arm;
    report->value_given = result->value_given;
    if (task->moments && self->n_moments) {
        report->n_moments = self->n_moments;
        report->moments_n = self->moments_n;
        memcpy(report->moments_sum, self->moments_sum, self->n_moments * sizeof(double));
        memcpy(report->moments_sum_sq, self->moments_sum_sq, self->n_moments * sizeof(double));
    }
}
