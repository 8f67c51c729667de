/* Treatment recommendation from joint (arm, outcome) class probabilities,
 * and its policy value on a randomised trial's held-out patients.
 *
 * Label encoding (the data's class): class = arm * 2 + good, arm in
 * 0 .. n_arms - 1, good = 1 when the patient's outcome was good. A model
 * (Matching network, softmax classifier) that gives P(arm, good | x) gives
 * the outcome rate of arm t among the patients it matches x to,
 *   r_t(x) = P(t, 1 | x) / (P(t, 0 | x) + P(t, 1 | x)),
 * and the recommendation is argmax_t r_t(x). For a Matching network
 * P(c | x) is the attention mass on support patients of class c, so r_t is
 * the attention-weighted good-outcome rate of the matched patients who got
 * arm t: "the treatment whose matched patients did best".
 *
 * Policy value (self-normalised inverse propensity, an honest estimator on
 * a randomised trial): a held-out patient counts only when the arm they
 * were actually given equals the recommendation, weighted 1 / p(arm):
 *   V = Σ_i w_i good_i / Σ_i w_i,  w_i = [π(x_i) = a_i] / p(a_i).
 * With equal propensities this is the good-outcome rate among patients
 * whose given treatment agrees with the recommendation. Pure functions;
 * thread-safe. */
#ifndef MFL_META_TREATMENT_H
#define MFL_META_TREATMENT_H

#include <stddef.h>

#define MFL_TREATMENT_MAX_ARMS 16

/* Arm fractions of the labelled rows (the trial's randomisation, estimated
 * on training rows): p[t] for t < n_arms. -1 if n is 0, a label is not a
 * class of n_arms arms, or an arm has no row (its propensity would be 0). */
int mfl_treatment_propensity(const float *label, size_t n, size_t n_arms, double *p);

/* The arm with the highest good-outcome rate among the labelled rows
 * (first wins ties); -1 if no arm has a row or a label is out of range. */
int mfl_treatment_best_arm(const float *label, size_t n, size_t n_arms);

/* rec[i] = argmax_t r_t(x_i) from probs[n][2 * n_arms] (an arm whose two
 * probabilities sum to 0 is never chosen; all zero: arm 0). */
void mfl_treatment_recommend(const float *probs, size_t n, size_t n_arms, int *rec);

/* The policy value of recommendations rec[n] (any arm, or the same arm
 * for everyone) on rows with labels `label`, under propensities p. NAN if
 * no row's given arm agrees with its recommendation or a label is out of
 * range. *agree (may be NULL) gets the fraction of agreeing rows. */
double mfl_treatment_value(const int *rec, const float *label, size_t n, size_t n_arms,
                           const double *p, double *agree);

#endif
