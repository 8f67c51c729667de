/* Classification metrics over scores and labels (float arrays, one per
 * row). Binary: `score` is P(y = 1), `label` is 0 or 1. Pure functions;
 * thread-safe. */
#ifndef MFL_META_METRICS_H
#define MFL_META_METRICS_H

#include <stddef.h>

/* Area under the ROC curve: the probability that a random positive scores
 * above a random negative, ties counting one half (Mann-Whitney with
 * mid-ranks). NAN if either class is absent or n is 0. Allocates n
 * indices; NAN on OOM. */
double mfl_metrics_auroc(const float *score, const float *label, size_t n);

/* Sensitivity at a fixed specificity (an early-warning operating point):
 * the rule score > t with t the smallest score of a negative row such that
 * at least `specificity` of the negatives score <= t (so specificity >=
 * the target; positives tied with t count as not flagged). NAN if either
 * class is absent, n is 0, specificity is outside (0, 1], or on OOM. */
double mfl_metrics_sensitivity_at(const float *score, const float *label, size_t n,
                                  double specificity);

/* Accuracy, sensitivity (TP / P) and specificity (TN / N) of the rule
 * score >= threshold. Any output pointer may be NULL; a rate whose
 * denominator is 0 is NAN. */
void mfl_metrics_binary(const float *score, const float *label, size_t n, float threshold,
                        double *accuracy, double *sensitivity, double *specificity);

/* Multi-class accuracy of argmax over probs[n][n_classes] (first maximum
 * wins ties). NAN if n is 0. */
double mfl_metrics_accuracy(const float *probs, const float *label, size_t n, size_t n_classes);

/* Regression: root mean squared error, mean absolute error and R² = 1 −
 * SSE / SST of pred against y (computed in double). Any output may be
 * NULL; all NAN if n is 0; R² is NAN when y is constant (SST = 0). */
void mfl_metrics_regression(const float *pred, const float *y, size_t n, double *rmse,
                            double *mae, double *r2);

#endif
