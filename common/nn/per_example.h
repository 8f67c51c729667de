/* Per-example gradient norms, batched: one backward-shaped pass over the
 * batch that yields ‖∇θ L_i‖² for every row i without materialising the
 * per-example gradients (what DP-SGD's clipping needs; privacy/dpsgd.h).
 *
 * Per layer, with gy_i the gradient at the layer's output for row i and
 * x_i its input (both already in the model's buffers):
 *   dense  ‖g_i ⊗ x_i‖² + ‖g_i‖² = ‖gy_i‖² (‖x_i‖² + 1)   (the "ghost norm":
 *          the per-example weight gradient is an outer product, so its
 *          Frobenius norm is the product of two vector norms)
 *   conv   the per-example kernel and bias gradients of row i, from one
 *          small product per row into a scratch of one kernel's size
 *   norm   Σ_c (Σ_s gy·xh)² + (Σ_s gy)², directly
 * and the gradient at the layer's input is propagated for the whole batch
 * at once (one sgemm per dense layer), as in mfl_model_backward.
 *
 * The clipped sum Σ_i c_i ∇θ L_i then costs one ordinary backward with
 * dout's rows scaled by c_i (the gradient is linear in dout).
 * Not thread-safe (the model's buffers), like every pass. */
#ifndef MFL_NN_PER_EXAMPLE_H
#define MFL_NN_PER_EXAMPLE_H

#include <stddef.h>

#include "nn/model.h"

/* After mfl_model_forward of `batch` rows: `dout` [batch][n_out] holds, per
 * row, the gradient of THAT row's loss with respect to the row's outputs.
 * Writes sq[i] = ‖∇θ L_i‖² (double) for each row. The forward's cached
 * activations stay valid, so mfl_model_backward may follow. Returns 0, or
 * -1 when no forward preceded. */
int mfl_model_per_example_sqnorms(mfl_model_t *self, const float *theta, const float *dout,
                                  double *sq);

#endif
