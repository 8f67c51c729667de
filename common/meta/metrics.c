/* Accuracy, AUROC with ties, sensitivity and specificity. */
#include "meta/metrics.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float score;
    float label;
} s_pair_t;

static int s_cmp_score(const void *a, const void *b)
{
    float x = ((const s_pair_t *)a)->score, y = ((const s_pair_t *)b)->score;
    return (x > y) - (x < y);
}

double mfl_metrics_auroc(const float *score, const float *label, size_t n)
{
    if (n == 0)
        return NAN;
    s_pair_t *p = malloc(n * sizeof(*p));
    if (!p)
        return NAN;
    size_t n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].score = score[i];
        p[i].label = label[i];
        n_pos += label[i] > 0.5f;
    }
    size_t n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(p);
        return NAN;
    }
    qsort(p, n, sizeof(*p), s_cmp_score);
    /* Sum of the positives' mid-ranks (1-based): a run of equal scores
     * shares the mean of the ranks it spans. */
    double rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && p[j].score == p[i].score)
            j++;
        double mid = (double)(i + 1 + j) / 2.0;
        for (size_t t = i; t < j; t++)
            if (p[t].label > 0.5f)
                rank_sum += mid;
        i = j;
    }
    free(p);
    double u = rank_sum - (double)n_pos * (double)(n_pos + 1) / 2.0;
    return u / ((double)n_pos * (double)n_neg);
}

void mfl_metrics_binary(const float *score, const float *label, size_t n, float threshold,
                        double *accuracy, double *sensitivity, double *specificity)
{
    size_t tp = 0, tn = 0, p = 0;
    for (size_t i = 0; i < n; i++) {
        int pos = label[i] > 0.5f, pred = score[i] >= threshold;
        p += pos;
        tp += pos && pred;
        tn += !pos && !pred;
    }
    size_t neg = n - p;
    if (accuracy)
        *accuracy = n ? (double)(tp + tn) / (double)n : NAN;
    if (sensitivity)
        *sensitivity = p ? (double)tp / (double)p : NAN;
    if (specificity)
        *specificity = neg ? (double)tn / (double)neg : NAN;
}

static int s_cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double mfl_metrics_sensitivity_at(const float *score, const float *label, size_t n,
                                  double specificity)
{
    if (n == 0 || !(specificity > 0 && specificity <= 1))
        return NAN;
    size_t n_neg = 0, n_pos = 0;
    for (size_t i = 0; i < n; i++)
        n_neg += label[i] <= 0.5f;
    n_pos = n - n_neg;
    if (n_neg == 0 || n_pos == 0)
        return NAN;
    float *neg = malloc(n_neg * sizeof *neg);
    if (!neg)
        return NAN;
    for (size_t i = 0, j = 0; i < n; i++)
        if (label[i] <= 0.5f)
            neg[j++] = score[i];
    qsort(neg, n_neg, sizeof *neg, s_cmp_float);
    size_t need = (size_t)ceil(specificity * (double)n_neg - 1e-9); /* negatives <= t */
    if (need < 1)
        need = 1;
    float t = neg[need - 1];
    free(neg);
    size_t tp = 0;
    for (size_t i = 0; i < n; i++)
        tp += label[i] > 0.5f && score[i] > t;
    return (double)tp / (double)n_pos;
}

double mfl_metrics_accuracy(const float *probs, const float *label, size_t n, size_t n_classes)
{
    if (n == 0 || n_classes == 0)
        return NAN;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        const float *row = probs + i * n_classes;
        size_t best = 0;
        for (size_t c = 1; c < n_classes; c++)
            if (row[c] > row[best])
                best = c;
        ok += (float)best == label[i];
    }
    return (double)ok / (double)n;
}

void mfl_metrics_regression(const float *pred, const float *y, size_t n, double *rmse,
                            double *mae, double *r2)
{
    double sse = 0, sae = 0, mean = 0, sst = 0;
    for (size_t i = 0; i < n; i++)
        mean += y[i];
    mean = n ? mean / (double)n : 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)pred[i] - (double)y[i], d = (double)y[i] - mean;
        sse += e * e;
        sae += fabs(e);
        sst += d * d;
    }
    if (rmse)
        *rmse = n ? sqrt(sse / (double)n) : NAN;
    if (mae)
        *mae = n ? sae / (double)n : NAN;
    if (r2)
        *r2 = n && sst > 0 ? 1.0 - sse / sst : NAN;
}
