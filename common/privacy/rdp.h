/* Rényi differential privacy of the subsampled Gaussian mechanism.
 *
 * One step samples each record independently with probability q (Poisson
 * subsampling), sums the records' contributions clipped to norm C and adds
 * N(0, σ²C²) noise. Its RDP at order α > 1 (Mironov 2017; Mironov, Talwar,
 * Zhang 2019) is ln(A_α)/(α−1) with
 *
 *   integer α:    A_α = Σ_{i=0..α} C(α,i) (1−q)^{α−i} q^i exp((i²−i)/(2σ²))
 *   fractional α: the two-sided series of MTZ19 §3.3 summed WITH the signs of
 *                 the generalised binomial C(α,i) (as Opacus does; summing
 *                 absolute values, as another library does, moves the 4th
 *                 digit), each term weighted by ½erfc(·) of the split point
 *                 z0 = σ² ln(1/q − 1) + ½.
 *
 * Every sum is kept in log space (log-add / log-sub), so σ down to ~0.3 and
 * orders up to a few hundred neither overflow nor lose the small terms.
 * q = 1 is the plain Gaussian: α/(2σ²). q = 0 spends nothing.
 *
 * Pure functions of their arguments: no state, thread-safe. */
#ifndef MFL_PRIVACY_RDP_H
#define MFL_PRIVACY_RDP_H

#include <stddef.h>

/* Opacus's default orders: 1.1, 1.2, ..., 10.9 then 12, 13, ..., 63. */
#define MFL_RDP_DEFAULT_ORDERS 151
/* Most orders any caller may pass (the CLI's --orders, a policy). */
#define MFL_RDP_MAX_ORDERS 256

/* Fills `orders` (MFL_RDP_DEFAULT_ORDERS values) with the default orders. */
void mfl_rdp_default_orders(double orders[MFL_RDP_DEFAULT_ORDERS]);

/* RDP at order `alpha` (> 1) of ONE step of the Gaussian mechanism with
 * noise multiplier `sigma` (≥ 0) on a Poisson sample of rate `q` in [0, 1].
 * Returns the value (+inf when σ = 0 or α = +inf), or NaN when the arguments
 * are outside those ranges or the series failed to converge. */
double mfl_rdp_subsampled_gaussian(double q, double sigma, double alpha);

/* Adds `steps` steps of that mechanism at each of `n` orders into `rdp`
 * (composition: RDP adds up across steps, rounds and mechanisms).
 * Returns 0, or -1 (rdp untouched) when an order gives NaN. */
int mfl_rdp_compose(double *rdp, const double *orders, size_t n, double q, double sigma,
                    double steps);

/* How RDP becomes (ε, δ). */
typedef enum {
    /* Balle, Barthe, Gaboardi, Hsu, Sato 2020 (Opacus's get_privacy_spent):
     * ε = rdp − (ln δ + ln α)/(α − 1) + ln((α − 1)/α). The default. */
    MFL_RDP_CONVERT_BALLE2020 = 0,
    /* Mironov 2017, Prop. 3: ε = rdp + ln(1/δ)/(α − 1). Looser; for comparison. */
    MFL_RDP_CONVERT_CLASSIC = 1,
} mfl_rdp_conversion_t;

/* The smallest ε over the `n` orders for `delta` in (0, 1); writes it and
 * the order that gave it (ties: the first). ε is never negative (a negative
 * bound is reported as 0). Returns 0, or -1 when n = 0, δ is outside (0, 1)
 * or every order gives NaN. An order with rdp = +inf gives ε = +inf; when
 * every order does, ε = +inf and the order is the first. */
int mfl_rdp_epsilon(const double *orders, const double *rdp, size_t n, double delta,
                    mfl_rdp_conversion_t conv, double *epsilon, double *best_order);

#endif
