/* Private to the site worker's files (site_worker*.c, site_data.c): the
 * struct and shared helpers. Not a contract for other modules. */
#ifndef MFL_SITE_WORKER_INTERNAL_H
#define MFL_SITE_WORKER_INTERNAL_H

#include <stdbool.h>

#include "privacy/accountant.h"
#include "privacy/policy.h"
#include "site/site_worker.h"

typedef struct {
    int local_only_min_steps; /* 0 = default (100) */
    size_t eval_support;      /* support rows for eval; 0 = the task's k_shot */
    size_t treatment_arms;    /* > 0: eval scores treatment recommendations */
} mfl_site_worker_opts_t;

struct mfl_site_worker {
    char site[MFL_SITE_ID_MAX];
    mfl_dataset_t *train;   /* owned */
    mfl_dataset_t *heldout; /* owned, may be NULL */
    uint8_t *sign_sk;       /* sodium_malloc, read-only; NULL = unsigned */
    uint8_t schema_hash[MFL_SITE_HASH_BYTES];
    char *schema_text;      /* canonical schema text (data/csv_canon.h), owned */
    char *data_report;      /* what loading did, for --check; owned, may be NULL */
    mfl_site_worker_opts_t opts;

    mfl_learner_t *learner;              /* rebuilt when the task's config changes */
    mfl_learner_config_t learner_config; /* the config `learner` was built from */
    size_t n_state;
    float *delta;   /* n_state: the last round's Δ (what the result points at) */
    float *scratch; /* n_state: eval's fresh θ / adapted copies */

    /* privacy: the hospital's policy and the budget spent so far */
    mfl_privacy_policy_t policy;
    mfl_privacy_accountant_t spent; /* RDP of every DP release so far */
    bool ledger_known;              /* false: spent is unknown, DP tasks are refused */
    char ledger_why[1024];           /* why it is unknown, for the refusal */

    uint8_t *header; /* last packed UpdateHeader */
    size_t header_len;
    uint8_t *hashes; /* n_tensors × 32 */
    uint8_t *chunk_hashes;      /* a chunked round's chunk hashes (n_chunks × 32) */
    size_t n_chunks, cap_chunks;
    uint64_t chunk_values;      /* the last round's chunk size (0: one message) */

    bool has_audit_head;     /* the site's audit log head, signed into the next header */
    uint64_t audit_seq;
    uint8_t audit_head[32];
    /* Compressed updates (RoundTask.update_encoding, fed/quant.h). */
    uint32_t encodings_offered; /* bit k: kind k accepted (bit 0, float32, always) */
    uint32_t encoding;          /* of the last round's Δ */
    float *residual;            /* n_state: error feedback up to the last round before
                                   residual_round; NULL until a lossy round */
    float *residual_next;       /* n_state: residual after the update of residual_round */
    uint32_t residual_round;    /* round whose encoding made residual_next; 0 none */
    uint8_t *encoded;           /* the last round's encoded Δ (2·n_state bytes) */
    float *scales;              /* per tensor */

    /* Model selection (site_validation.c): the training rows split into a
     * fit part and a validation part for (fraction, seed), built at the
     * first selection task that asks for them, rebuilt if a task asks for
     * another split. NULL until then. */
    mfl_dataset_t *fit, *val;
    double val_fraction;
    uint64_t val_seed;

    /* Federated standardisation (site_scaling.c): the rows unscaled (NULL:
     * the site does not take part), its own statistics, the pooled scaling
     * in force (scaled_pooled), and the last moments it computed. */
    mfl_dataset_t *raw_train, *raw_heldout;
    float *own_mean, *own_scale;
    bool scaled_pooled;
    mfl_task_scaling_t pooled;
    uint32_t n_moments;
    uint64_t moments_n;
    double moments_sum[MFL_TASK_SCALING_MAX], moments_sum_sq[MFL_TASK_SCALING_MAX];
};

/* site_scaling.c: scales train / heldout as the task says (sc->n 0: the
 * site's own statistics; else the consortium's), rebuilding them from the
 * unscaled rows when that changes. A pooled scaling at a site without
 * unscaled rows (data.standardize not federated) is an error naming the
 * site. 0, or -1 + err. */
int mfl_site_scaling_apply(mfl_site_worker_t *self, const mfl_task_scaling_t *sc, char *err,
                           size_t errlen);
/* Computes the fit rows' moments (training rows minus the validation part
 * of (fraction, seed); all of them for fraction 0) into n_moments,
 * moments_n, moments_sum, moments_sum_sq. 0, or -1 + err (the site does
 * not share moments, OOM). */
int mfl_site_worker_moments(mfl_site_worker_t *self, double fraction, uint64_t seed,
                            char *err, size_t errlen);

/* site_validation.c: while a selection task runs, the worker's `train`
 * and `heldout` are its fit and validation parts; the real ones wait here. */
typedef struct {
    mfl_dataset_t *train, *heldout;
    bool swapped;
} mfl_site_data_swap_t;

/* For a selection task (sel->candidate ≥ 1): builds (or reuses) the split
 * and swaps it in, saving the real data in *saved; an ordinary task leaves
 * the data alone. 0, or -1 + err (too few rows to split). */
int mfl_site_validation_enter(mfl_site_worker_t *self, const mfl_task_selection_t *sel,
                              mfl_site_data_swap_t *saved, char *err, size_t errlen);
/* Puts the real data back (no-op if nothing was swapped). */
void mfl_site_validation_leave(mfl_site_worker_t *self, const mfl_site_data_swap_t *saved);

/* The constructor behind both public ones: takes ownership of train and
 * heldout (also on failure); schema_text (borrowed, copied; NULL: made from
 * the data's shape) is the canonical schema the Hello declares and hashes;
 * opts may be NULL. */
mfl_site_worker_t *mfl_site_worker_new_internal(const char *site_id, mfl_dataset_t *train,
                                                mfl_dataset_t *heldout, const uint8_t *sign_sk,
                                                const char *schema_text,
                                                const mfl_site_worker_opts_t *opts, char *err,
                                                size_t errlen);

/* Ensures the learner matches (spec, model_spec) and that n_theta fits it. */
int mfl_site_worker_prepare(mfl_site_worker_t *self, const mfl_task_algorithm_t *spec,
                            const char *model_spec, size_t n_theta, char *err, size_t errlen);

/* Evaluation for a gradient method whose softmax head is narrower than the
 * site's classes (mfl_algo_episodic_head): k labelled images per class of
 * the training split (k = support_cases / the site's classes, at least 1;
 * k_default when support_cases is 0), a seeded choice from `rng`; every
 * N-subset of the classes that have training and held-out images (16
 * random ones if there are more), relabelled 0..N-1, is one task: θ adapted
 * on its support (`steps` of `lr`), θ as is, and a fresh θ (seeded from
 * `rng`) trained `local_steps` on the same support, each scored on the
 * subset's held-out images; *out gets the means weighted by query rows
 * (n: query rows summed over tasks). The learner must be prepared. 0, or
 * -1 + err (fewer classes than N, OOM). */
int mfl_site_worker_eval_ways(mfl_site_worker_t *self, size_t support_cases, size_t k_default,
                              int steps, int local_steps, float lr, mfl_rng_t *rng,
                              const float *theta, mfl_site_eval_result_t *out, char *err,
                              size_t errlen);

/* The hospital's k labelled cases from `train` (site_worker_eval.c): a
 * seeded shuffle, the first k (all rows if k is 0 or too large), every
 * class present when k allows. NULL on OOM. */
mfl_dataset_t *mfl_site_support(const mfl_dataset_t *train, size_t k, mfl_rng_t *rng);

/* Per-site adaptation by cross-validation (site_adapt_search.c). */
#define MFL_SITE_ADAPT_MAX_FOLDS 10
typedef struct {
    uint32_t steps; /* chosen: 0 = θ as received */
    float lr;
    double loss;    /* its mean held-out-fold loss */
    size_t folds;   /* K */
    size_t tried;   /* (steps, rate) pairs scored (early stopping skips some) */
} mfl_site_adapt_choice_t;

/* Folds for a validation fraction f: round(1/f), at least 2, at most
 * MFL_SITE_ADAPT_MAX_FOLDS and n_support; 0 when n_support < 2. */
size_t mfl_site_adapt_folds(double validation_fraction, size_t n_support);

/* Chooses (steps, rate) from MFL_SITE_ADAPT_STEPS × MFL_SITE_ADAPT_RATES
 * by K-fold cross-validation on `support` (K = mfl_site_adapt_folds,
 * stratified folds seeded by (seed, site)): for each rate, every fold's θ
 * follows one SGD trajectory on the other folds and is scored (loss) on
 * its own fold at each step count; the lowest mean loss wins (ties: fewer
 * steps, then the lower rate); a rate stops early once its mean loss has
 * not improved at 2 checkpoints in a row, or when it diverges.
 * The learner must be prepared for θ. 0, or -1 + err (fewer than 2
 * support cases, OOM, every rate diverged). */
int mfl_site_adapt_search(mfl_site_worker_t *self, const float *theta,
                          const mfl_dataset_t *support, uint64_t seed, double fraction,
                          mfl_site_adapt_choice_t *out, char *err, size_t errlen);

/* The mean held-out-fold loss of one setting, adapted from θ afresh on
 * the same folds as mfl_site_adapt_search (NAN if it diverges): what the
 * search's trajectories must agree with. 0, or -1 + err. */
int mfl_site_adapt_cv_loss(mfl_site_worker_t *self, const float *theta,
                           const mfl_dataset_t *support, uint64_t seed, double fraction,
                           uint32_t steps, float lr, double *loss, char *err, size_t errlen);

/* 0 if all n values are finite, else -1. */
int mfl_site_check_finite(const float *v, size_t n);

/* L2 norm in double precision. */
double mfl_site_l2(const float *v, size_t n);

/* From this many parameters (Δ of 32 MiB) the worker gives Δ's pages (and
 * an encoded copy's) back to the kernel when an evaluation starts: the
 * last update is sent or moot by then, and the evaluation's own buffers
 * need the room (issue 17, site memory). */
#define MFL_SITE_DROP_PAGES_PARAMS ((size_t)1 << 23)
void mfl_site_worker_drop_update_pages(mfl_site_worker_t *self);

#endif
