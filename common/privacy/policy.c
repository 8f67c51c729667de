/* The hospital's privacy policy; see policy.h for the rules. */
#include "privacy/policy.h"

#include <math.h>
#include <string.h>

#include "core/log.h"

void mfl_privacy_policy_defaults(mfl_privacy_policy_t *p)
{
    memset(p, 0, sizeof *p);
    p->mode = MFL_PRIVACY_MODE_NONE;
    p->epsilon_budget = INFINITY;
    p->delta = 1e-5;
    p->noise_multiplier = 1.0;
    p->clip_min = 1e-12;
    p->clip_max = INFINITY;
    p->min_records = 1;
    p->min_batch = 1;
    p->sample_rate = 0.0;
    p->allow_unnoised_stats = true;
}

const char *mfl_privacy_mode_name(mfl_privacy_mode_t mode)
{
    switch (mode) {
    case MFL_PRIVACY_MODE_NONE: return "none";
    case MFL_PRIVACY_MODE_SITE: return "site";
    case MFL_PRIVACY_MODE_RECORD: return "record";
    }
    return "?";
}

int mfl_privacy_mode_parse(const char *text, mfl_privacy_mode_t *mode)
{
    for (int m = MFL_PRIVACY_MODE_NONE; m <= MFL_PRIVACY_MODE_RECORD; m++) {
        if (text && strcmp(text, mfl_privacy_mode_name((mfl_privacy_mode_t)m)) == 0) {
            *mode = (mfl_privacy_mode_t)m;
            return 0;
        }
    }
    return -1;
}

int mfl_privacy_policy_check(const mfl_privacy_policy_t *p, char *err, size_t errlen)
{
    if (!(p->epsilon_budget > 0.0))
        return mfl_errf(err, errlen, "privacy.epsilon_budget: must be > 0, got %g",
                        p->epsilon_budget), -1;
    if (!(p->delta > 0.0 && p->delta < 1.0))
        return mfl_errf(err, errlen, "privacy.delta: must be in (0, 1), got %g", p->delta), -1;
    if (!(p->noise_multiplier > 0.0 && isfinite(p->noise_multiplier)))
        return mfl_errf(err, errlen, "privacy.noise_multiplier: must be > 0 and finite, got %g",
                        p->noise_multiplier), -1;
    if (!(p->clip_min > 0.0))
        return mfl_errf(err, errlen, "privacy.clip_min: must be > 0, got %g", p->clip_min), -1;
    if (!(p->clip_max > 0.0) || !(p->clip_max >= p->clip_min))
        return mfl_errf(err, errlen, "privacy.clip_max: must be > 0 and >= clip_min (%g), got %g",
                        p->clip_min, p->clip_max), -1;
    if (p->min_records < 1)
        return mfl_errf(err, errlen, "privacy.min_records: must be >= 1"), -1;
    if (p->min_batch < 1)
        return mfl_errf(err, errlen, "privacy.min_batch: must be >= 1"), -1;
    if (p->mode == MFL_PRIVACY_MODE_RECORD && !(p->sample_rate > 0.0 && p->sample_rate <= 1.0))
        return mfl_errf(err, errlen, "privacy.sample_rate: mode record needs a rate in (0, 1], "
                        "got %g", p->sample_rate), -1;
    if (p->mode != MFL_PRIVACY_MODE_NONE && !isfinite(p->clip_max))
        return mfl_errf(err, errlen, "privacy.clip_max: mode %s needs a finite clip norm",
                        mfl_privacy_mode_name(p->mode)), -1;
    if (p->mode != MFL_PRIVACY_MODE_NONE && !isfinite(p->epsilon_budget))
        return mfl_errf(err, errlen, "privacy.epsilon_budget: mode %s needs a finite budget",
                        mfl_privacy_mode_name(p->mode)), -1;
    return 0;
}

int mfl_privacy_decide(const mfl_privacy_policy_t *p, const mfl_privacy_accountant_t *spent,
                       const mfl_privacy_request_t *req, uint64_t n_records,
                       mfl_privacy_plan_t *plan, char *err, size_t errlen)
{
    memset(plan, 0, sizeof *plan);
    plan->delta = p->delta;
    plan->q = 1.0;
    plan->steps = 1;
    if (n_records < p->min_records)
        return mfl_errf(err, errlen, "privacy.min_records: this site has %llu training records, "
                        "the policy needs at least %llu behind one update",
                        (unsigned long long)n_records, (unsigned long long)p->min_records), -1;
    bool record = p->mode == MFL_PRIVACY_MODE_RECORD;
    if (record && req->dp_steps == 0)
        return mfl_errf(err, errlen, "privacy.mode: record-level DP-SGD cannot run this task: "
                        "%s", req->dp_unsupported ? req->dp_unsupported : "unsupported"), -1;
    if (record && p->sample_rate * (double)n_records < (double)p->min_batch)
        return mfl_errf(err, errlen, "privacy.min_batch: the expected DP-SGD batch is %.1f "
                        "records (q %g of %llu), the policy's minimum is %llu",
                        p->sample_rate * (double)n_records, p->sample_rate,
                        (unsigned long long)n_records, (unsigned long long)p->min_batch), -1;
    uint64_t batch = req->batch_size && req->batch_size < n_records ? req->batch_size : n_records;
    if (!record && batch < p->min_batch)
        return mfl_errf(err, errlen, "privacy.min_batch: the task asks for batches of %llu "
                        "records, the policy's minimum is %llu",
                        (unsigned long long)batch, (unsigned long long)p->min_batch), -1;
    if (!(req->clip_norm >= 0.0) || !(req->noise_multiplier >= 0.0) ||
        !isfinite(req->clip_norm) || !isfinite(req->noise_multiplier))
        return mfl_errf(err, errlen, "privacy.task: clip_norm and noise_multiplier must be "
                        "finite and >= 0 (got %g, %g)", req->clip_norm, req->noise_multiplier),
               -1;
    bool site = p->mode == MFL_PRIVACY_MODE_SITE || record;
    if (!site && !req->enabled) { /* no privacy asked, none required */
        plan->send_stats = true;
        plan->epsilon_after = 0.0;
        if (spent && mfl_privacy_accountant_epsilon(spent, p->delta, MFL_RDP_CONVERT_BALLE2020,
                                                    &plan->epsilon_after, NULL, err, errlen))
            return -1;
        return 0;
    }
    double clip = req->enabled && req->clip_norm > 0.0 ? req->clip_norm : p->clip_max;
    if (!site && req->clip_norm == 0.0)
        return mfl_errf(err, errlen, "privacy.task: the task enables privacy without a "
                        "clip_norm"), -1;
    if (clip > p->clip_max)
        return mfl_errf(err, errlen, "privacy.clip_max: the task asks to clip at %g, the "
                        "policy allows at most %g", clip, p->clip_max), -1;
    if (clip < p->clip_min)
        return mfl_errf(err, errlen, "privacy.clip_min: the task asks to clip at %g, the "
                        "policy needs at least %g", clip, p->clip_min), -1;
    plan->clip_norm = clip;
    double sigma = req->enabled ? req->noise_multiplier : 0.0;
    if (site && sigma < p->noise_multiplier)
        sigma = p->noise_multiplier; /* the task may add noise, never remove it */
    plan->noise_multiplier = sigma;
    if (record) {
        plan->record = true;
        plan->q = p->sample_rate;
        plan->steps = req->dp_steps;
    }
    if (sigma == 0.0) { /* mode none, the task clips without noise: not DP */
        plan->clip_only = true;
        plan->send_stats = p->allow_unnoised_stats;
        return 0;
    }
    if (!spent)
        return mfl_errf(err, errlen, "privacy.ledger: the budget already spent is unknown (no "
                        "verified audit log), so no DP round can be accounted"), -1;
    mfl_privacy_accountant_t after = *spent;
    if (mfl_privacy_accountant_add(&after, plan->q, sigma, (double)plan->steps, err, errlen) ||
        mfl_privacy_accountant_epsilon(&after, p->delta, MFL_RDP_CONVERT_BALLE2020,
                                       &plan->epsilon_after, NULL, err, errlen))
        return -1;
    if (plan->epsilon_after > p->epsilon_budget) {
        double before = 0.0;
        mfl_privacy_accountant_epsilon(spent, p->delta, MFL_RDP_CONVERT_BALLE2020, &before, NULL,
                                       NULL, 0);
        return mfl_errf(err, errlen, "privacy.epsilon_budget: this round (sigma %g) would take "
                        "epsilon from %.6g to %.6g at delta %g, past the budget %g",
                        sigma, before, plan->epsilon_after, p->delta, p->epsilon_budget), -1;
    }
    plan->dp = true;
    plan->send_stats = p->allow_unnoised_stats;
    return 0;
}

void mfl_privacy_plan_share(const mfl_privacy_policy_t *policy, bool secagg,
                            uint32_t secagg_threshold, mfl_privacy_plan_t *plan)
{
    plan->noise_shares = 0;
    /* Only with the site's weight 1 (sample count withheld): every other
     * weight is ≥ 1, so a sum of k ≥ t terms carries noise variance
     * Σ w_j² (σS)²/t ≥ (σS)², at least this site's sensitivity S times σ.
     * A site weighted by its sample count could outweigh the rest. */
    if (policy->distributed_noise && secagg && secagg_threshold >= 2 && plan->dp &&
        !plan->record && !plan->send_stats && plan->noise_multiplier > 0.0)
        plan->noise_shares = secagg_threshold;
}

double mfl_privacy_plan_applied_sigma(const mfl_privacy_plan_t *plan)
{
    return plan->noise_shares >= 2 ? plan->noise_multiplier / sqrt((double)plan->noise_shares)
                                   : plan->noise_multiplier;
}
