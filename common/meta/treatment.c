/* Treatment recommendation and its policy value: see meta/treatment.h. */
#include <math.h>

#include "meta/treatment.h"

/* The arm and the outcome of a label, or -1 if it is not a class of
 * n_arms arms. */
static int s_split(float label, size_t n_arms, size_t *arm, int *good)
{
    if (!(label >= 0) || label >= (float)(2 * n_arms) || label != floorf(label))
        return -1;
    size_t c = (size_t)label;
    *arm = c / 2;
    *good = (int)(c % 2);
    return 0;
}

int mfl_treatment_propensity(const float *label, size_t n, size_t n_arms, double *p)
{
    if (!n || !n_arms || n_arms > MFL_TREATMENT_MAX_ARMS)
        return -1;
    size_t count[MFL_TREATMENT_MAX_ARMS] = {0};
    for (size_t i = 0; i < n; i++) {
        size_t arm;
        int good;
        if (s_split(label[i], n_arms, &arm, &good))
            return -1;
        count[arm]++;
    }
    for (size_t t = 0; t < n_arms; t++) {
        if (!count[t])
            return -1;
        p[t] = (double)count[t] / (double)n;
    }
    return 0;
}

int mfl_treatment_best_arm(const float *label, size_t n, size_t n_arms)
{
    if (!n_arms || n_arms > MFL_TREATMENT_MAX_ARMS)
        return -1;
    size_t count[MFL_TREATMENT_MAX_ARMS] = {0}, good_n[MFL_TREATMENT_MAX_ARMS] = {0};
    for (size_t i = 0; i < n; i++) {
        size_t arm;
        int good;
        if (s_split(label[i], n_arms, &arm, &good))
            return -1;
        count[arm]++;
        good_n[arm] += (size_t)good;
    }
    int best = -1;
    double best_rate = -1;
    for (size_t t = 0; t < n_arms; t++) {
        if (!count[t])
            continue;
        double r = (double)good_n[t] / (double)count[t];
        if (r > best_rate) {
            best_rate = r;
            best = (int)t;
        }
    }
    return best;
}

void mfl_treatment_recommend(const float *probs, size_t n, size_t n_arms, int *rec)
{
    for (size_t i = 0; i < n; i++) {
        const float *p = probs + i * 2 * n_arms;
        int best = 0;
        double best_rate = -1;
        for (size_t t = 0; t < n_arms; t++) {
            double bad = p[2 * t], good = p[2 * t + 1], z = bad + good;
            if (!(z > 0))
                continue;
            if (good / z > best_rate) {
                best_rate = good / z;
                best = (int)t;
            }
        }
        rec[i] = best;
    }
}

double mfl_treatment_value(const int *rec, const float *label, size_t n, size_t n_arms,
                           const double *p, double *agree)
{
    double num = 0, den = 0;
    size_t n_agree = 0;
    if (agree)
        *agree = NAN;
    for (size_t i = 0; i < n; i++) {
        size_t arm;
        int good;
        if (s_split(label[i], n_arms, &arm, &good))
            return NAN;
        if (rec[i] < 0 || (size_t)rec[i] != arm)
            continue;
        double w = 1.0 / p[arm];
        num += w * good;
        den += w;
        n_agree++;
    }
    if (agree && n)
        *agree = (double)n_agree / (double)n;
    return den > 0 ? num / den : NAN;
}
