/* One DP-SGD step's gradient (Abadi et al. 2016, as Opacus computes it):
 * a Poisson sample of the rows (each row independently with probability q,
 * drawn from libsodium's CSPRNG: the coordinator knows the training seed,
 * and amplification by subsampling holds only if the sample is secret),
 * each row's gradient clipped to norm C, the clipped gradients summed,
 * Gaussian noise N(0, σ²C²) added to every coordinate (CSPRNG), and the
 * result divided by the expected batch q·N:
 *
 *     g = (Σ_{i ∈ sample} min(1, C/‖∇L_i‖) ∇L_i + N(0, σ²C²I)) / (q·N)
 *
 * Per-example norms come from one batched pass (nn/per_example.h), the
 * clipped sum from one ordinary backward with rescaled rows: no per-row
 * backward. Each such step is one release of the subsampled Gaussian
 * mechanism with (q, σ) for the accountant (privacy/accountant.h).
 *
 * Not thread-safe (the model's buffers). */
#ifndef MFL_PRIVACY_DPSGD_H
#define MFL_PRIVACY_DPSGD_H

#include <stddef.h>

#include "nn/loss.h"
#include "nn/model.h"

typedef struct {
    double clip;        /* C > 0 */
    double sigma;       /* noise multiplier ≥ 0 (0: clipping only, for tests) */
    double sample_rate; /* q in (0, 1] */
} mfl_dpsgd_params_t;

/* Scratch for mfl_dpsgd_grad, sized for a model (its max_batch and
 * n_outputs), and a buffered CSPRNG: ChaCha20 keyed from libsodium's
 * randombytes_buf at creation, rekeyed from its own output at every
 * refill (fast key erasure). new returns NULL on allocation failure. */
typedef struct mfl_dpsgd mfl_dpsgd_t;
mfl_dpsgd_t *mfl_dpsgd_new(const mfl_model_t *model);
void mfl_dpsgd_destroy(mfl_dpsgd_t **self_p);

/* Draws a Poisson sample of {0..n−1} with rate q from the CSPRNG into
 * idx (n entries of room), in increasing order; returns its size. */
size_t mfl_dpsgd_poisson_sample(mfl_dpsgd_t *self, size_t n, double q, size_t *idx);

/* Adds N(0, sd²) from the CSPRNG to each of the n floats of v. */
void mfl_dpsgd_add_noise(mfl_dpsgd_t *self, float *v, size_t n, double sd);

/* The DP-SGD gradient for the rows x[batch][n_in], y (the sample already
 * drawn; batch may be 0: then g is noise only), for a data set of n_total
 * rows (expected batch = q·n_total): writes grad[n_params]. If n_clipped
 * is not NULL it receives how many rows were clipped. Rows are processed
 * in chunks of the model's max_batch. Returns 0, or -1 (bad parameters,
 * or a target invalid for the loss). */
int mfl_dpsgd_grad(mfl_dpsgd_t *self, mfl_model_t *model, const float *theta,
                   const mfl_loss_t *loss, const float *x, const float *y, size_t batch,
                   size_t n_total, const mfl_dpsgd_params_t *p, float *grad, size_t *n_clipped);

#endif
