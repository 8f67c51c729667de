/* Record-level differential privacy inside a site: a learner's local
 * training with every gradient step a DP-SGD step (privacy/dpsgd.h) over
 * the site's whole training set, Poisson-sampled with rate q.
 *
 * Supported, and what one round costs in DP-SGD steps (each a release of
 * the subsampled Gaussian mechanism for the accountant):
 *   fedavg   local_epochs · ⌈1/q⌉ steps of rate inner_lr (an epoch is ⌈1/q⌉
 *            steps, each on an expected q·N rows, as Opacus's data loader)
 *   reptile  outer_steps · meta_batch tasks, each inner_steps DP-SGD steps;
 *            the outer update (θ toward the adapted weights) is
 *            post-processing
 *   fomaml   as reptile, plus one DP-SGD gradient at the adapted weights
 *            per task (the first-order meta-gradient): inner_steps + 1
 * Refused (the reason is in mfl_learner_dp_steps's message):
 *   maml     its meta-gradient back-propagates through the inner steps
 *            (Hessian-vector products on the support rows): per-example
 *            clipping would have to bound each row's influence through the
 *            whole second-order chain, which DP-SGD's analysis does not cover
 *   meta_sgd it learns per-parameter inner rates from the query loss through
 *            the inner loop: the same second-order dependence
 *   protonet, matching, relation: a query row's loss depends on every
 *            support row of its episode (prototypes, attention, relation
 *            pairs), so one record's gradient is not a per-example term and
 *            per-example clipping does not bound a record's contribution
 * With "the site is the task", a task's support and query sets are the
 * site's rows: DP-SGD draws its own Poisson sample at every step (from the
 * CSPRNG), so the training seed picks nothing about which rows are used.
 * Losses are not computed (they would be unnoised statistics). */
#ifndef MFL_META_LEARNER_DP_H
#define MFL_META_LEARNER_DP_H

#include <stddef.h>
#include <stdint.h>

#include "meta/learner.h"
#include "privacy/dpsgd.h"

/* DP-SGD steps one round of `config` takes at sample rate q in (0, 1];
 * 0 with err naming why when the algorithm is not supported (see above). */
uint64_t mfl_learner_dp_steps(const mfl_learner_config_t *config, double q, char *err,
                              size_t errlen);

/* One round of local training from θ (borrowed) on all of `data` (the
 * site's training rows) with DP-SGD (`p`); writes Δ (n_state floats),
 * metrics (n_samples = data->n, n_tasks; losses NaN: not computed) and
 * the steps taken.
 * Returns 0, or -1 with err (unsupported algorithm, divergence, memory). */
int mfl_learner_meta_train_dp(mfl_learner_t *self, const float *theta, const mfl_dataset_t *data,
                              const mfl_dpsgd_params_t *p, float *delta,
                              mfl_train_metrics_t *metrics, uint64_t *steps, char *err,
                              size_t errlen);

#endif
