/* The numeric kernels behind mfl_model: one function per layer and pass.
 *
 * Exposed (rather than static in model.c) so tests can hold each kernel
 * against a naive reference. All tensors are row-major float32; images are
 * [batch][channels][height][width]. "Accumulate" arguments ADD into the
 * destination; everything else overwrites. Pointers marked nullable may be
 * NULL to skip that output. The R-operator ("rforward"/"rbackward") kernels
 * are the forward-mode directional derivatives used for exact Hessian-vector
 * products (Pearlmutter 1994): for a direction V in parameter space, Rx is
 * the derivative of x along V. None of these allocate. */
#ifndef MFL_NN_KERNELS_H
#define MFL_NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* y[B][out] (+)= x[B][in] · W[out][in]ᵀ (+ bias[out], nullable).
 * With accumulate != 0, y is added to (and bias must be NULL or is added). */
void mfl_nn_dense_forward(const float *x, size_t batch, size_t in, const float *w,
                          const float *bias, size_t out, float *y, int accumulate);

/* Gradients of a dense layer given dy[B][out]: dw[out][in] += dyᵀ·x,
 * db[out] += Σ_b dy (both nullable), dx[B][in] (+)= dy·W (nullable;
 * accumulate_dx selects += over =). */
void mfl_nn_dense_backward(const float *x, size_t batch, size_t in, const float *w, size_t out,
                           const float *dy, float *dw, float *db, float *dx, int accumulate_dx);

/* Plain-SGD update of a dense layer's weights straight from the batch:
 * w[out][in] −= lr · dyᵀ·x, sgemm with α = −lr and β = 1 into w, so the
 * weight gradient is never stored (a wide layer's step is memory-bound and
 * the stored gradient cost a zeroing pass and an update pass over it).
 * Equals dense_backward's dw followed by `w −= lr·dw` bit for bit unless
 * the BLAS stores α·acc + w with an FMA (see ENGINE-NUMERICS.md). */
void mfl_nn_dense_sgd(const float *x, size_t batch, size_t in, const float *dy, size_t out,
                      float lr, float *w);

/* Plain SGD through the bottom of an MLP, dense₁ (the first layer: no dx
 * wanted) → ReLU → dense₂, swept in tiles of hidden units so the hidden
 * gradient never exists whole (for the 1M MLP it was a 3.6 MB buffer
 * written by one pass, masked by another and read by the W₁ update). Per
 * tile T: dh_T = dy·W₂[:,T] masked where h ≤ 0, db1[T] += Σ_b dh_T,
 * W₂[:,T] −= lr·dyᵀ·h_T (after dh_T read the old W₂[:,T]) and
 * W₁[T,:] −= lr·dh_Tᵀ·x. Then b₁ −= lr·db1. h[B][hid] is the ReLU'd
 * hidden activation, dy[B][out] the gradient at dense₂'s output; scratch
 * holds B·hid floats, db1 hid floats (both overwritten). Every sum is the
 * same as in the layer-by-layer backward pass. */
void mfl_nn_mlp_bottom_sgd(const float *x, size_t batch, size_t in, const float *h, size_t hid,
                           const float *dy, size_t out, float lr, float *w1, float *b1, float *w2,
                           float *scratch, float *db1);

/* 3×3 convolution, padding 1, stride 1: x[B][C][H][W] with kernels
 * k[F][C][3][3] and bias[F] (nullable) into y[B][F][H][W]. `cols` is scratch
 * of C·9·H·W floats (im2col of one image). */
void mfl_nn_conv3_forward(const float *x, size_t batch, size_t c, size_t h, size_t w,
                          const float *k, const float *bias, size_t f, float *y, float *cols,
                          int accumulate);

/* Gradients of the convolution given dy[B][F][H][W]: dk += (nullable),
 * db += (nullable), dx (+)= (nullable). `cols` and `dcols` are scratch of
 * C·9·H·W floats each. */
void mfl_nn_conv3_backward(const float *x, size_t batch, size_t c, size_t h, size_t w,
                           const float *k, size_t f, const float *dy, float *dk, float *db,
                           float *dx, int accumulate_dx, float *cols, float *dcols);

/* im2col for one image x[C][H][W] → cols[C·9][H·W] (zero padding). */
void mfl_nn_im2col3(const float *x, size_t c, size_t h, size_t w, float *cols);

/* 2×2 max-pool, stride 2 (odd trailing rows/columns are dropped, like
 * floor mode): y[B][C][H/2][W/2], idx records each maximum's position
 * inside its image (first maximum wins on ties). */
void mfl_nn_maxpool2_forward(const float *x, size_t batch, size_t c, size_t h, size_t w,
                             float *y, uint32_t *idx);

/* Routes dy (or, for the R-pass, Ry ← Rx) through the recorded maxima:
 * dx is zeroed then scattered; gather picks y[o] = x[idx[o]]. `in_size` and
 * `out_size` are per image. */
void mfl_nn_maxpool2_scatter(const float *dy, const uint32_t *idx, size_t batch,
                             size_t in_size, size_t out_size, float *dx);
void mfl_nn_maxpool2_gather(const float *x, const uint32_t *idx, size_t batch, size_t in_size,
                            size_t out_size, float *y);

/* Fused dense epilogue: y[B][out] = max(y + bias, 0) in one pass, for a
 * dense layer followed by ReLU (saves a pass over the activations, which
 * is what a wide layer's step time is made of). */
void mfl_nn_bias_relu(float *y, const float *bias, size_t batch, size_t out);

/* Fused ReLU backward and the preceding dense layer's bias gradient:
 * out = in where y > 0 else 0 (in place allowed), db[o] += Σ_b out[b][o]. */
void mfl_nn_relu_mask_bias_grad(const float *y, const float *in, size_t batch, size_t n,
                                float *out, float *db);

/* ReLU: y = max(x, 0) (in place allowed). mask: out = in where y > 0, else
 * 0 (in place allowed); that is both the backward pass and the R-pass. */
void mfl_nn_relu_forward(const float *x, size_t n, float *y);
void mfl_nn_relu_mask(const float *y, const float *in, size_t n, float *out);

/* Per-sample normalisation over all C·S values of each sample (S = H·W),
 * with a per-channel scale γ[C] and shift β[C]:
 *   xh = (x − mean) · r,  r = 1/sqrt(var + eps),  y = γ_c·xh + β_c.
 * Saves xh[B][C·S] and r[B] for the backward and R passes. */
#define MFL_NN_NORM_EPS 1e-5f
void mfl_nn_norm_forward(const float *x, size_t batch, size_t c, size_t s, const float *gamma,
                         const float *beta, float *y, float *xh, float *r);

/* Backward: dγ += Σ dy·xh, dβ += Σ dy (nullable), dx = r·(g − mean g −
 * xh·mean(g·xh)) with g = γ_c·dy (nullable; overwrites). */
void mfl_nn_norm_backward(const float *xh, const float *r, size_t batch, size_t c, size_t s,
                          const float *gamma, const float *dy, float *dgamma, float *dbeta,
                          float *dx);

/* R-forward: given Rx (nullable = 0) and the direction (vγ, vβ), writes
 * Ry, Rxh[B][C·S] and Rr[B]. */
void mfl_nn_norm_rforward(const float *xh, const float *r, size_t batch, size_t c, size_t s,
                          const float *gamma, const float *vgamma, const float *vbeta,
                          const float *rx, float *ry, float *rxh, float *rr);

/* R-backward: given dy and Rdy, adds R{dγ}, R{dβ} into hg, hb and writes
 * R{dx} into rdx (nullable). */
void mfl_nn_norm_rbackward(const float *xh, const float *r, const float *rxh, const float *rr,
                           size_t batch, size_t c, size_t s, const float *gamma,
                           const float *vgamma, const float *dy, const float *rdy, float *hg,
                           float *hb, float *rdx);

#endif
