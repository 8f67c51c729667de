/* A hospital's privacy policy and the rule that a coordinator's task can
 * only tighten it.
 *
 * The policy lives in the site's own config (privacy: section,
 * configs/site.yaml) and is decided by the hospital. For each round the
 * site compares the task's privacy settings with the policy and with the
 * budget it has already spent (its ledger, ledger.h), and either refuses
 * the task, naming the rule, or runs it with the effective settings:
 *
 *   noise multiplier  max(policy σ, task σ)       (more noise is tighter)
 *   clip norm         task's S if within [clip_min, clip_max], else refused;
 *                     the policy's clip_max when the task gives none
 *   δ                 the policy's δ (the budget's δ)
 *   batch             the task's batch (0 = all rows) must be ≥ min_batch
 *   records           the site's training rows must be ≥ min_records
 *   budget            ε after this round (ledger + this round, at δ)
 *                     must be ≤ epsilon_budget
 *
 * Mode none applies no noise unless the task asks for it (then the task's
 * settings, still accounted and still subject to the record and batch
 * minimums); mode site clips Δ and adds Gaussian noise every round
 * (site-level DP, q = 1); mode record trains with DP-SGD (meta/learner_dp.h:
 * every step clips each record's gradient to C and adds N(0, σ²C²) on a
 * Poisson sample of rate sample_rate; the round is `steps` releases of the
 * subsampled Gaussian; the expected batch q·N must be ≥ min_batch).
 *
 * Plain data and pure functions; thread-safe. */
#ifndef MFL_PRIVACY_POLICY_H
#define MFL_PRIVACY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "privacy/accountant.h"

typedef enum {
    MFL_PRIVACY_MODE_NONE = 0,   /* no noise unless the task asks */
    MFL_PRIVACY_MODE_SITE = 1,   /* clip Δ, Gaussian noise, per round (q = 1) */
    MFL_PRIVACY_MODE_RECORD = 2, /* DP-SGD inside the site */
} mfl_privacy_mode_t;

typedef struct {
    mfl_privacy_mode_t mode;
    double epsilon_budget;    /* > 0; total ε this site ever spends (modes site, record) */
    double delta;             /* in (0, 1) */
    double noise_multiplier;  /* σ floor, > 0 (modes site, record) */
    double clip_min, clip_max;/* 0 < clip_min ≤ clip_max: bounds on the clip norm */
    double sample_rate;       /* mode record: Poisson rate q in (0, 1] */
    uint64_t min_records;     /* ≥ 1: training rows behind one update */
    uint64_t min_batch;       /* ≥ 1: rows per batch the task may ask for */
    bool allow_unnoised_stats;/* losses, pre-clip norm, sample count may leave with DP on */
    bool distributed_noise;   /* under SecAgg with threshold t, add a 1/t share of the
                               * site-level noise variance (docs/PRIVACY.md); not mode record */
} mfl_privacy_policy_t;

/* What the task asked for (from RoundTask.privacy and its algorithm). */
typedef struct {
    bool enabled;             /* task asks for site-level DP */
    double clip_norm;         /* 0 = none given */
    double noise_multiplier;  /* 0 = none given */
    uint64_t batch_size;      /* 0 = all rows */
    uint64_t dp_steps;        /* mode record: DP-SGD steps the task takes at the
                               * policy's q; 0 = the task cannot run with DP-SGD */
    const char *dp_unsupported; /* why dp_steps is 0 (borrowed) */
} mfl_privacy_request_t;

/* What the site will run, when the task is allowed. */
typedef struct {
    bool dp;                  /* clip + noise this round, accounted */
    bool record;              /* ... by DP-SGD (mode record), else on Δ (site) */
    bool clip_only;           /* mode none, task asked to clip with σ = 0: not DP */
    double clip_norm;
    double noise_multiplier;
    double q;                 /* 1: site-level; the policy's q: record-level */
    uint64_t steps;           /* 1: one release per round; DP-SGD steps: record */
    double delta;
    double epsilon_after;     /* ε spent once this round's update is out */
    bool send_stats;          /* unnoised losses / norms / counts may leave */
    uint32_t noise_shares;    /* t ≥ 2: distributed noise, the site adds N(0, (σS)²/t)
                               * and accounts σ; 0: full noise (mfl_privacy_plan_share) */
} mfl_privacy_plan_t;

/* The policy a site without a privacy section has: mode none, minimums 1,
 * δ 1e-5, no budget (+inf), stats allowed. Behaviour as before policies. */
void mfl_privacy_policy_defaults(mfl_privacy_policy_t *policy);

/* "none", "site", "record"; parse returns 0 or -1. */
const char *mfl_privacy_mode_name(mfl_privacy_mode_t mode);
int mfl_privacy_mode_parse(const char *text, mfl_privacy_mode_t *mode);

/* Checks a policy's values (the config loader reports the key and line).
 * Returns 0, or -1 with "privacy.KEY: why" in err. */
int mfl_privacy_policy_check(const mfl_privacy_policy_t *policy, char *err, size_t errlen);

/* Decides one round. `spent` is the site's ledger so far (borrowed; NULL
 * means no verified ledger: any DP round is refused, as the budget cannot
 * be known). `n_records` = the site's training rows. Returns 0 with *plan
 * filled, or -1 with "privacy.RULE: why" in err naming the policy rule that
 * refuses the task (privacy.min_records, privacy.min_batch,
 * privacy.clip_max, privacy.clip_min, privacy.epsilon_budget,
 * privacy.ledger, privacy.mode). */
int mfl_privacy_decide(const mfl_privacy_policy_t *policy, const mfl_privacy_accountant_t *spent,
                       const mfl_privacy_request_t *req, uint64_t n_records,
                       mfl_privacy_plan_t *plan, char *err, size_t errlen);

/* Distributed noise under secure aggregation. When the policy opts in
 * (distributed_noise), the plan is site-level DP (dp, not record) and the
 * round is securely summed with threshold `secagg_threshold` = t ≥ 2 (every
 * sum the coordinator can unmask holds at least t inputs) and the site's
 * statistics are withheld (send_stats false: its weight in the sum is 1,
 * every other weight is ≥ 1, so the sum's noise is ≥ σS), sets
 * plan->noise_shares = t; otherwise 0. The plan's noise_multiplier stays σ,
 * the value the round is accounted at (epsilon_after is unchanged). */
void mfl_privacy_plan_share(const mfl_privacy_policy_t *policy, bool secagg,
                            uint32_t secagg_threshold, mfl_privacy_plan_t *plan);

/* The noise multiplier the site adds to its own Δ: σ/√t with distributed
 * noise (noise_shares = t), else σ. */
double mfl_privacy_plan_applied_sigma(const mfl_privacy_plan_t *plan);

#endif
