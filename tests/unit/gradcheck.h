/* The normalised error used by the gradient checks: ‖a − b‖ / (‖a‖ + ‖b‖),
 * a finite-difference vector `a` (double) against an analytic gradient `b`.
 * Header-only (a static function) because each unit test is one .c file. */
#ifndef MFL_TEST_GRADCHECK_H
#define MFL_TEST_GRADCHECK_H

#include <math.h>
#include <stddef.h>

static double s_norm_err(const double *a, const float *b, size_t n)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return sqrt(d) / (sqrt(na) + sqrt(nb) + 1e-30);
}

#endif
