/* Rényi DP of the subsampled Gaussian; see rdp.h for the formulas. */
#include "privacy/rdp.h"

#include <math.h>

/* The fractional series stops once both sides' terms fall below e^-30 of
 * the unit scale (as Opacus), or after this many terms (non-convergence:
 * NaN rather than a silent partial sum). */
#define S_FRAC_LOG_CUTOFF (-30.0)
#define S_FRAC_MAX_TERMS 100000

void mfl_rdp_default_orders(double orders[MFL_RDP_DEFAULT_ORDERS])
{
    size_t k = 0;
    for (int x = 1; x < 100; x++)
        orders[k++] = 1.0 + x / 10.0;
    for (int a = 12; a < 64; a++)
        orders[k++] = a;
}

/* ln(e^a + e^b), exact when either is -inf. */
static double s_log_add(double a, double b)
{
    double lo = a < b ? a : b, hi = a < b ? b : a;
    if (lo == -INFINITY)
        return hi;
    return log1p(exp(lo - hi)) + hi;
}

/* ln(e^a − e^b) for a ≥ b; NaN when a < b (the series went negative). */
static double s_log_sub(double a, double b)
{
    if (a < b)
        return NAN;
    if (b == -INFINITY)
        return a;
    if (a == b)
        return -INFINITY;
    double d = a - b;
    if (d > 700.0) /* expm1 would overflow; e^b is negligible next to e^a */
        return a;
    return log(expm1(d)) + b;
}

/* ln erfc(x), also where erfc underflows (x ≳ 26): the asymptotic series
 * erfc(x) = e^{-x²}/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶) + ...). */
static double s_log_erfc(double x)
{
    if (x < 20.0)
        return log(erfc(x));
    double x2 = x * x, inv = 1.0 / (2.0 * x2);
    double series = 1.0 - inv + 3.0 * inv * inv - 15.0 * inv * inv * inv + 105.0 * inv * inv * inv * inv;
    return -x2 - log(x) - 0.5 * log(M_PI) + log(series);
}

/* ln A_α for integer α ≥ 2: every term is positive. */
static double s_log_a_int(double q, double sigma, long alpha)
{
    double log_a = -INFINITY, log_binom = 0.0, lq = log(q), l1q = log1p(-q);
    double inv2s2 = 1.0 / (2.0 * sigma * sigma);
    for (long i = 0; i <= alpha; i++) {
        if (i > 0)
            log_binom += log((double)(alpha - i + 1)) - log((double)i);
        double di = (double)i;
        double s = log_binom + di * lq + (double)(alpha - i) * l1q + (di * di - di) * inv2s2;
        log_a = s_log_add(log_a, s);
    }
    return log_a;
}

/* ln A_α for fractional α: the two-sided series with signed coefficients. */
static double s_log_a_frac(double q, double sigma, double alpha)
{
    double log_a0 = -INFINITY, log_a1 = -INFINITY;
    double lq = log(q), l1q = log1p(-q), s2 = sigma * sigma, rt2s = sqrt(2.0) * sigma;
    double z0 = s2 * log(1.0 / q - 1.0) + 0.5;
    double log_coef = 0.0; /* ln |C(α, i)| */
    int sign = 1;          /* sign of C(α, i) */
    for (long i = 0; i < S_FRAC_MAX_TERMS; i++) {
        if (i > 0) {
            double f = alpha - (double)(i - 1); /* C(α,i) = C(α,i−1)·(α−i+1)/i */
            log_coef += log(fabs(f)) - log((double)i);
            if (f < 0)
                sign = -sign;
        }
        double di = (double)i, j = alpha - di;
        double log_t0 = log_coef + di * lq + j * l1q;
        double log_t1 = log_coef + j * lq + di * l1q;
        double log_e0 = log(0.5) + s_log_erfc((di - z0) / rt2s);
        double log_e1 = log(0.5) + s_log_erfc((z0 - j) / rt2s);
        double log_s0 = log_t0 + (di * di - di) / (2.0 * s2) + log_e0;
        double log_s1 = log_t1 + (j * j - j) / (2.0 * s2) + log_e1;
        if (sign > 0) {
            log_a0 = s_log_add(log_a0, log_s0);
            log_a1 = s_log_add(log_a1, log_s1);
        } else {
            log_a0 = s_log_sub(log_a0, log_s0);
            log_a1 = s_log_sub(log_a1, log_s1);
        }
        if (isnan(log_a0) || isnan(log_a1))
            return NAN;
        if (fmax(log_s0, log_s1) < S_FRAC_LOG_CUTOFF)
            return s_log_add(log_a0, log_a1);
    }
    return NAN;
}

double mfl_rdp_subsampled_gaussian(double q, double sigma, double alpha)
{
    if (!(q >= 0.0 && q <= 1.0) || !(sigma >= 0.0) || !(alpha > 1.0) || isinf(sigma))
        return NAN;
    if (q == 0.0)
        return 0.0;
    if (sigma == 0.0 || isinf(alpha))
        return INFINITY;
    if (q == 1.0)
        return alpha / (2.0 * sigma * sigma);
    double log_a;
    if (alpha == floor(alpha) && alpha < 1e9)
        log_a = s_log_a_int(q, sigma, (long)alpha);
    else
        log_a = s_log_a_frac(q, sigma, alpha);
    return log_a / (alpha - 1.0);
}

int mfl_rdp_compose(double *rdp, const double *orders, size_t n, double q, double sigma,
                    double steps)
{
    if (!(steps >= 0.0) || isinf(steps))
        return -1;
    double one[MFL_RDP_MAX_ORDERS];
    if (n > MFL_RDP_MAX_ORDERS)
        return -1;
    for (size_t k = 0; k < n; k++) {
        one[k] = mfl_rdp_subsampled_gaussian(q, sigma, orders[k]);
        if (isnan(one[k]))
            return -1;
    }
    for (size_t k = 0; k < n; k++)
        if (steps > 0.0)
            rdp[k] += steps * one[k];
    return 0;
}

int mfl_rdp_epsilon(const double *orders, const double *rdp, size_t n, double delta,
                    mfl_rdp_conversion_t conv, double *epsilon, double *best_order)
{
    if (n == 0 || !(delta > 0.0 && delta < 1.0))
        return -1;
    double best = NAN, best_a = NAN;
    for (size_t k = 0; k < n; k++) {
        double a = orders[k], e;
        if (!(a > 1.0) || isnan(rdp[k]))
            continue;
        if (isinf(a))
            e = INFINITY;
        else if (conv == MFL_RDP_CONVERT_CLASSIC)
            e = rdp[k] + log(1.0 / delta) / (a - 1.0);
        else
            e = rdp[k] - (log(delta) + log(a)) / (a - 1.0) + log((a - 1.0) / a);
        if (isnan(e))
            continue;
        if (isnan(best) || e < best) {
            best = e;
            best_a = a;
        }
    }
    if (isnan(best))
        return -1;
    *epsilon = best < 0.0 ? 0.0 : best;
    if (best_order)
        *best_order = best_a;
    return 0;
}
