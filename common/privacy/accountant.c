/* The RDP accountant and Opacus-style noise calibration; see accountant.h. */
#include "privacy/accountant.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/log.h"

/* Opacus's get_noise_multiplier gives up beyond this σ. */
#define S_MAX_SIGMA 1e6

int mfl_privacy_accountant_init(mfl_privacy_accountant_t *self, const double *orders, size_t n,
                                char *err, size_t errlen)
{
    memset(self, 0, sizeof *self);
    if (!orders) {
        mfl_rdp_default_orders(self->orders);
        self->n = MFL_RDP_DEFAULT_ORDERS;
        return 0;
    }
    if (n == 0 || n > MFL_RDP_MAX_ORDERS) {
        mfl_errf(err, errlen, "orders: need 1 to %d orders, got %zu", MFL_RDP_MAX_ORDERS, n);
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        if (!(orders[k] > 1.0) || isinf(orders[k])) {
            mfl_errf(err, errlen, "orders: order %zu is %g; each order must be > 1 and finite",
                     k + 1, orders[k]);
            return -1;
        }
        self->orders[k] = orders[k];
    }
    self->n = n;
    return 0;
}

int mfl_privacy_check_args(double q, double sigma, double steps, double delta, char *err,
                           size_t errlen)
{
    if (!isnan(q) && !(q > 0.0 && q <= 1.0)) {
        mfl_errf(err, errlen, "q (sample rate) must be in (0, 1], got %g", q);
        return -1;
    }
    if (!isnan(sigma) && !(sigma > 0.0 && isfinite(sigma))) {
        mfl_errf(err, errlen, "sigma (noise multiplier) must be > 0 and finite, got %g", sigma);
        return -1;
    }
    if (!isnan(steps) && !(steps >= 1.0 && isfinite(steps) && steps == floor(steps))) {
        mfl_errf(err, errlen, "steps must be a whole number >= 1, got %g", steps);
        return -1;
    }
    if (!isnan(delta) && !(delta > 0.0 && delta < 1.0)) {
        mfl_errf(err, errlen, "delta must be in (0, 1), got %g", delta);
        return -1;
    }
    return 0;
}

int mfl_privacy_accountant_add(mfl_privacy_accountant_t *self, double q, double sigma,
                               double steps, char *err, size_t errlen)
{
    if (mfl_privacy_check_args(q, sigma, steps, NAN, err, errlen) != 0)
        return -1;
    if (mfl_rdp_compose(self->rdp, self->orders, self->n, q, sigma, steps) != 0) {
        mfl_errf(err, errlen, "RDP series did not converge for q=%g sigma=%g", q, sigma);
        return -1;
    }
    return 0;
}

int mfl_privacy_accountant_epsilon(const mfl_privacy_accountant_t *self, double delta,
                                   mfl_rdp_conversion_t conv, double *epsilon,
                                   double *best_order, char *err, size_t errlen)
{
    if (mfl_privacy_check_args(NAN, NAN, NAN, delta, err, errlen) != 0)
        return -1;
    bool spent = false;
    for (size_t k = 0; k < self->n; k++)
        spent = spent || self->rdp[k] != 0.0;
    if (!spent) { /* nothing ran: the conversion's slack is not a cost */
        *epsilon = 0.0;
        if (best_order)
            *best_order = self->n ? self->orders[0] : NAN;
        return 0;
    }
    if (mfl_rdp_epsilon(self->orders, self->rdp, self->n, delta, conv, epsilon, best_order) != 0) {
        mfl_errf(err, errlen, "no order gives a finite epsilon");
        return -1;
    }
    return 0;
}

/* ε of `steps` steps at (q, σ) on the default orders, Balle et al. */
static int s_eps(double q, double sigma, double steps, double delta, double *eps)
{
    mfl_privacy_accountant_t a;
    if (mfl_privacy_accountant_init(&a, NULL, 0, NULL, 0) != 0 ||
        mfl_privacy_accountant_add(&a, q, sigma, steps, NULL, 0) != 0)
        return -1;
    return mfl_rdp_epsilon(a.orders, a.rdp, a.n, delta, MFL_RDP_CONVERT_BALLE2020, eps, NULL);
}

int mfl_privacy_noise_for_epsilon(double target_epsilon, double delta, double q, double steps,
                                  double tolerance, double *sigma, char *err, size_t errlen)
{
    if (!(target_epsilon > 0.0 && isfinite(target_epsilon))) {
        mfl_errf(err, errlen, "epsilon must be > 0 and finite, got %g", target_epsilon);
        return -1;
    }
    if (!(tolerance > 0.0 && isfinite(tolerance))) {
        mfl_errf(err, errlen, "tolerance must be > 0, got %g", tolerance);
        return -1;
    }
    if (mfl_privacy_check_args(q, NAN, steps, delta, err, errlen) != 0)
        return -1;
    double lo = 0.0, hi = 10.0, eps_hi = INFINITY;
    while (eps_hi > target_epsilon) {
        hi *= 2.0;
        if (s_eps(q, hi, steps, delta, &eps_hi) != 0) {
            mfl_errf(err, errlen, "RDP series did not converge at sigma=%g", hi);
            return -1;
        }
        if (hi > S_MAX_SIGMA) {
            mfl_errf(err, errlen,
                     "the budget is too small: epsilon=%g at delta=%g needs sigma above %g",
                     target_epsilon, delta, S_MAX_SIGMA);
            return -1;
        }
    }
    while (target_epsilon - eps_hi > tolerance) {
        double mid = 0.5 * (lo + hi), eps;
        if (s_eps(q, mid, steps, delta, &eps) != 0) {
            mfl_errf(err, errlen, "RDP series did not converge at sigma=%g", mid);
            return -1;
        }
        if (eps < target_epsilon) {
            hi = mid;
            eps_hi = eps;
        } else {
            lo = mid;
        }
        if (hi - lo < 1e-12 * hi) /* cannot bisect further */
            break;
    }
    *sigma = hi;
    return 0;
}
