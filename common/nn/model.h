/* A small layer graph over one flat float32 parameter vector.
 *
 * The model object holds the architecture, the parameter layout (named,
 * shaped tensors at offsets into the flat vector) and scratch buffers for
 * activations; it never owns the parameters. Callers pass θ (and fast
 * weights, for MAML) as plain float arrays of mfl_model_n_params() floats,
 * so the same model serves the meta-initialisation, adapted copies and the
 * wire. A model is not thread-safe: one per thread.
 *
 * Layouts: inputs are row-major [batch][n_inputs]; images are
 * [batch][channels][height][width] flattened the same way. Outputs are
 * [batch][n_outputs]. */
#ifndef MFL_NN_MODEL_H
#define MFL_NN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "core/tensor.h"
#include "nn/loss.h"

/* Dimensions a layer's parameter tensor has at most (≤ MFL_TENSOR_MAX_DIMS):
 * what a model file (safetensors) may hold. */
#define MFL_MODEL_MAX_DIMS 4

/* Where one named parameter tensor lives inside the flat vector (a layout
 * record; mfl_tensor_info_view gives the core view of it over a θ). */
typedef struct {
    char name[MFL_TENSOR_NAME_MAX]; /* e.g. "block1.conv.weight", "fc2.bias" */
    size_t ndim;
    size_t shape[MFL_MODEL_MAX_DIMS];
    size_t offset; /* in floats from the start of the flat vector */
    size_t count;  /* product of shape */
} mfl_tensor_info_t;

typedef struct mfl_model mfl_model_t;

/* Builds a model from a spec string; returns NULL and fills `err` on a bad
 * spec. Specs (canonical form is what mfl_model_spec() returns):
 *   "mlp:13-64-64-1"        dense layers with ReLU between (none after last)
 *   "linear:13-1"           one dense layer (logistic/linear regression)
 *   "cnn4:1x28x28:64:5"     the 4-block CNN: c×h×w input, 64 filters per
 *                           block (conv3x3, norm, ReLU, maxpool2), then a
 *                           dense head to 5 outputs; head 0 = embedding only
 *   "cnn4:1x28x28:16:0:p3"  the same without the 4th pool: the last block's
 *                           3x3 map (9F numbers) is the embedding / head input
 *   "relconv:32x3x3:16:8"   a Relation-network module: 2 blocks of conv3x3 (16
 *                           filters), norm, ReLU, no pool; dense to 8, ReLU,
 *                           dense to 1 output
 * `max_batch` sizes the activation buffers; larger batches are refused. */
mfl_model_t *mfl_model_new(const char *spec, size_t max_batch, char *err, size_t errlen);

/* Frees the model and nulls the caller's pointer; accepts NULL. */
void mfl_model_destroy(mfl_model_t **self_p);

/* The canonical spec string (borrowed from the model). */
const char *mfl_model_spec(const mfl_model_t *self);

size_t mfl_model_n_params(const mfl_model_t *self);
size_t mfl_model_n_inputs(const mfl_model_t *self);
size_t mfl_model_n_outputs(const mfl_model_t *self);
size_t mfl_model_max_batch(const mfl_model_t *self);

/* Parameter tensors, in layout order. `index` < mfl_model_n_tensors(). */
size_t mfl_model_n_tensors(const mfl_model_t *self);
const mfl_tensor_info_t *mfl_model_tensor(const mfl_model_t *self, size_t index);

/* The view of layout record `ti` over `flat` (a θ, Δ or gradient of the
 * layout it belongs to: the model's, or the learner's): name borrowed from
 * the record, data = flat + offset. */
mfl_tensor_t mfl_tensor_info_view(const mfl_tensor_info_t *ti, const float *flat);

/* Fills θ with a fresh initialisation (He-uniform weights, zero biases,
 * unit norm scales) drawn from `rng`. */
void mfl_model_init_params(const mfl_model_t *self, float *theta, mfl_rng_t *rng);

/* Forward pass of `batch` rows of `x` with parameters `theta`; writes
 * [batch][n_outputs] to `out` and caches activations for the next
 * backward call. Returns 0, or -1 if batch is 0 or over max_batch. */
int mfl_model_forward(mfl_model_t *self, const float *theta, const float *x, size_t batch,
                      float *out);

/* Backward pass for the most recent forward: given dL/dout, ADDS dL/dθ into
 * `grad` (so callers zero it, or accumulate across batches; NULL when only
 * dx is wanted) and, if `dx` is not NULL, writes dL/dx. */
void mfl_model_backward(mfl_model_t *self, const float *theta, const float *dout, float *grad,
                        float *dx);

/* Forward + loss + backward on one batch: returns the mean loss and, if
 * `grad` is not NULL, OVERWRITES grad[n_params] with dL/dθ. Returns NAN if
 * the batch is refused (0 or over max_batch), or NAN with grad zeroed if a
 * target is invalid for the loss (see mfl_loss_eval). Because the norm
 * layer is per-sample, the loss of a batch is the mean of per-row terms, so
 * a large set may be split into chunks and the chunk results averaged with
 * weights chunk/total. */
float mfl_model_loss_grad(mfl_model_t *self, const float *theta, const mfl_loss_t *loss,
                          const float *x, const float *y, size_t batch, float *grad);

/* One plain-SGD training step on one batch, fused: θ ← θ − lr·∇L(θ) in
 * place, without a gradient vector. Forward, then backward from the top
 * layer down; each layer computes dL/dx with its OLD parameters first and
 * then updates them: a dense layer's weights with one sgemm (α = −lr,
 * β = 1 straight into θ), biases, conv kernels and norm parameters from a
 * small per-layer scratch. Returns the mean loss at θ before the update.
 * θ is left unchanged when the loss is not finite (NAN for a refused batch
 * or an invalid target, ±inf for a diverged one), so callers check the
 * return with isfinite() exactly as after mfl_model_loss_grad.
 * Batches over 256 rows take exactly that unfused path (an internal
 * gradient buffer, allocated by mfl_model_new when max_batch > 256).
 * Same result as mfl_model_loss_grad into a gradient followed by
 * `θ −= lr·g`: bit-identical for biases, conv and norm parameters, and for
 * dense weights wherever the BLAS stores α·AB + C without an FMA, which
 * Debian 12's OpenBLAS does for the ≤ 2^19 multiply-add tiles the update
 * is cut into; a product too large to tile (batch·in ≥ 2^16 with out ≥ in,
 * e.g. 256 rows of 512 inputs) goes to its large kernel, which does, and
 * may differ by one rounding per weight (tests/unit/test_nn_sgd_step.c
 * probes the BLAS and asserts which).
 * Not thread-safe (the model's buffers), like every pass. */
float mfl_model_sgd_step(mfl_model_t *self, float *theta, const mfl_loss_t *loss,
                         const float *x, const float *y, size_t batch, float lr);

/* Hessian-vector product of the mean batch loss at θ: hv ← ∇²L(θ)·v
 * (n_params floats each; hv must not overlap θ or v). Exact for every
 * layer (Pearlmutter's R-operator, see docs/ENGINE-NUMERICS.md); costs
 * about 1.3-3 training steps. The first call allocates the tangent
 * buffers once. Returns 0, or -1 if the batch is refused, a target is
 * invalid or that allocation fails. */
int mfl_model_hvp(mfl_model_t *self, const float *theta, const mfl_loss_t *loss,
                  const float *x, const float *y, size_t batch, const float *v, float *hv);

#endif
