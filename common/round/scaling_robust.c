/* The median pool of the sites' moments. See scaling_robust.h. */
#include "round/scaling_robust.h"

#include <stdlib.h>

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..k) (sorted in place; the mean of the middle two for
 * an even k). */
static double s_median(double *v, size_t k)
{
    qsort(v, k, sizeof *v, s_cmp);
    return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

int mfl_scaling_robust_feature(const double *n, const double *sum, const double *sum_sq,
                               size_t k, double *work, double *centre, double *var)
{
    if (k < MFL_SCALING_ROBUST_MIN_SITES)
        return -1;
    double *m = work, *v = work + k;
    for (size_t i = 0; i < k; i++) {
        m[i] = sum[i] / n[i];
        double w = n[i] > 1 ? (sum_sq[i] - sum[i] * m[i]) / (n[i] - 1) : 0;
        v[i] = w > 0 ? w : 0;
    }
    double within = s_median(v, k);
    double c = s_median(m, k); /* m is sorted now; the distances need no order */
    for (size_t i = 0; i < k; i++)
        v[i] = (m[i] - c) * (m[i] - c);
    *centre = c;
    *var = within + s_median(v, k);
    return 0;
}
