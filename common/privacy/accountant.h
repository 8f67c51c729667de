/* A Rényi-DP accountant: the running RDP total, at a fixed set of orders,
 * of every Gaussian mechanism a party has run (record-level DP-SGD steps,
 * site-level rounds, in any mix), and its (ε, δ) at any moment.
 *
 * A plain value type (no allocation): copy it to ask "what if", e.g. to
 * check that a task would stay within budget before running it. Not shared
 * between threads. */
#ifndef MFL_PRIVACY_ACCOUNTANT_H
#define MFL_PRIVACY_ACCOUNTANT_H

#include <stddef.h>

#include "privacy/rdp.h"

typedef struct {
    size_t n;                           /* orders in use */
    double orders[MFL_RDP_MAX_ORDERS];  /* each > 1 */
    double rdp[MFL_RDP_MAX_ORDERS];     /* total RDP at orders[k] */
} mfl_privacy_accountant_t;

/* Starts an empty account over `orders` (n ≤ MFL_RDP_MAX_ORDERS, each > 1
 * and finite), or over Opacus's default orders when orders is NULL.
 * Returns 0, or -1 with a message naming the bad order. */
int mfl_privacy_accountant_init(mfl_privacy_accountant_t *self, const double *orders, size_t n,
                                char *err, size_t errlen);

/* Adds `steps` (≥ 1) steps of the subsampled Gaussian (sample rate q in
 * (0, 1], noise multiplier σ > 0). Returns 0, or -1 (nothing added) with a
 * message naming the bad value. */
int mfl_privacy_accountant_add(mfl_privacy_accountant_t *self, double q, double sigma,
                               double steps, char *err, size_t errlen);

/* ε of everything added so far at `delta` in (0, 1), and the order that
 * gave it. Returns 0, or -1 with a message. An empty account gives ε = 0. */
int mfl_privacy_accountant_epsilon(const mfl_privacy_accountant_t *self, double delta,
                                   mfl_rdp_conversion_t conv, double *epsilon,
                                   double *best_order, char *err, size_t errlen);

/* Checks the arguments the CLI and the policy accept: q in (0, 1], σ > 0
 * and finite, steps ≥ 1, δ in (0, 1) (pass NAN for an argument not given).
 * Returns 0, or -1 with a message naming the first bad one. */
int mfl_privacy_check_args(double q, double sigma, double steps, double delta, char *err,
                           size_t errlen);

/* The noise multiplier σ that keeps `steps` steps at sample rate q within
 * (ε, δ), found like Opacus's get_noise_multiplier: σ_high doubles from 20
 * until ε(σ_high) ≤ target, then bisection on [0, σ_high] until
 * target − ε(σ_high) ≤ `tolerance` (Opacus: 0.01); returns σ_high, so the
 * ε it gives is never above the target. Uses the default orders and the
 * Balle et al. conversion. Returns 0, or -1 with a message (bad argument,
 * or no σ ≤ 1e6 reaches the target). */
int mfl_privacy_noise_for_epsilon(double target_epsilon, double delta, double q, double steps,
                                  double tolerance, double *sigma, char *err, size_t errlen);

#endif
