/* A pooled feature scaling that a minority of sites cannot drag
 * (data.scaling_pool: median, docs/DATA.md "A hostile site's moments").
 *
 * The exact pool (the default) is the mean and sample variance of all fit
 * rows together: a site that declares many rows at Hello and sends
 * in-bounds but extreme sums moves it as far as it likes. Here each site
 * counts once, whatever its size: per feature, the centre is the median
 * of the sites' means, and the variance the median of the sites' own
 * sample variances (within) plus the median squared distance of a site's
 * mean to the centre (between), the robust counterparts of the exact
 * pool's two parts. With k ≥ 3 sites, fewer than half of them cannot
 * move the centre outside the range of the others' means, nor the
 * variance above the largest of the others' parts. Pure; thread-safe. */
#ifndef MFL_ROUND_SCALING_ROBUST_H
#define MFL_ROUND_SCALING_ROBUST_H

#include <stddef.h>

#define MFL_SCALING_ROBUST_MIN_SITES 3

/* One feature over k sites: n[i] ≥ 1 rows, sum[i] and sum_sq[i] their
 * sums and sums of squares (finite, as the engine admits them). work
 * holds 2k doubles. Writes *centre and *var (≥ 0). Returns 0, or -1 when
 * k < MFL_SCALING_ROBUST_MIN_SITES. */
int mfl_scaling_robust_feature(const double *n, const double *sum, const double *sum_sq,
                               size_t k, double *work, double *centre, double *var);

#endif
