/* Layer kernels: dense and convolution through cblas_sgemm, the rest as
 * plain loops (they are memory-bound). See kernels.h for the contracts. */
#include "nn/kernels.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Sums with eight independent partial accumulators: without -ffast-math
 * the compiler may not reorder a single running float sum, so this is what
 * lets the loops vectorise (and it is slightly more accurate, too). */
static float s_sum(const float *v, size_t n)
{
    float acc[8] = {0}, t = 0.0f;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += v[i + k];
    for (; i < n; i++)
        t += v[i];
    for (int k = 0; k < 8; k++)
        t += acc[k];
    return t;
}

static float s_dot(const float *a, const float *b, size_t n)
{
    float acc[8] = {0}, t = 0.0f;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[i + k] * b[i + k];
    for (; i < n; i++)
        t += a[i] * b[i];
    for (int k = 0; k < 8; k++)
        t += acc[k];
    return t;
}

static float s_sqdev(const float *v, float mean, size_t n)
{
    float acc[8] = {0}, t = 0.0f;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += (v[i + k] - mean) * (v[i + k] - mean);
    for (; i < n; i++)
        t += (v[i] - mean) * (v[i] - mean);
    for (int k = 0; k < 8; k++)
        t += acc[k];
    return t;
}

void mfl_nn_dense_forward(const float *x, size_t batch, size_t in, const float *w,
                          const float *bias, size_t out, float *y, int accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)out, (int)in, 1.0f, x,
                (int)in, w, (int)in, accumulate ? 1.0f : 0.0f, y, (int)out);
    if (bias)
        for (size_t b = 0; b < batch; b++)
            for (size_t o = 0; o < out; o++)
                y[b * out + o] += bias[o];
}

/* Multiply-adds per sgemm call in a weight-gradient product (dw += α·dyᵀx).
 * A wide layer's product (28571×32×32) is cut into tiles of at most this
 * many, along its longer side. Why: OpenBLAS 0.3.21 hands products of up
 * to 1M multiply-adds to its small-matrix kernel, which skips packing the
 * whole 3.6 MB dy and keeps the tile's rows of dw in L2 (1M MLP: 1.27 →
 * 0.72 ms for this product, one thread). Every element is still the same
 * dot product over the batch, so with α = 1 the result is the same bit for
 * bit; with α = −lr it is the small kernel's store, which on this machine
 * rounds α·acc + w without an FMA (see ENGINE-NUMERICS.md). */
#define S_DW_TILE ((size_t)1 << 19)
/* Narrower tiles than this are not worth their calls: when the other two
 * sides alone nearly fill a tile (a large batch and input), the product is
 * left whole (and goes to OpenBLAS's large kernel). */
#define S_DW_MIN_SIDE 8

/* How many rows of a side of length `len` go into one tile when each row
 * costs `per` multiply-adds: len itself (no tiling) if a tile would be
 * narrower than S_DW_MIN_SIDE. */
static size_t s_tile(size_t len, size_t per)
{
    size_t n = per < S_DW_TILE ? S_DW_TILE / per : 1;
    return n < S_DW_MIN_SIDE || n > len ? len : n;
}

static void s_dense_dw(const float *x, size_t batch, size_t in, size_t out, const float *dy,
                       float alpha, float *dw)
{
    if (out >= in) {
        const size_t rows = s_tile(out, in * batch);
        for (size_t o = 0; o < out; o += rows) {
            size_t r = out - o < rows ? out - o : rows;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)in, (int)batch,
                        alpha, dy + o, (int)out, x, (int)in, 1.0f, dw + o * in, (int)in);
        }
        return;
    }
    const size_t cols = s_tile(in, out * batch);
    for (size_t j = 0; j < in; j += cols) {
        size_t c = in - j < cols ? in - j : cols;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)c, (int)batch, alpha,
                    dy, (int)out, x + j, (int)in, 1.0f, dw + j, (int)in);
    }
}

void mfl_nn_dense_backward(const float *x, size_t batch, size_t in, const float *w, size_t out,
                           const float *dy, float *dw, float *db, float *dx, int accumulate_dx)
{
    if (dw)
        s_dense_dw(x, batch, in, out, dy, 1.0f, dw);
    if (db)
        for (size_t b = 0; b < batch; b++)
            for (size_t o = 0; o < out; o++)
                db[o] += dy[b * out + o];
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)batch, (int)in, (int)out, 1.0f,
                    dy, (int)out, w, (int)in, accumulate_dx ? 1.0f : 0.0f, dx, (int)in);
}

void mfl_nn_dense_sgd(const float *x, size_t batch, size_t in, const float *dy, size_t out,
                      float lr, float *w)
{
    s_dense_dw(x, batch, in, out, dy, -lr, w);
}

void mfl_nn_mlp_bottom_sgd(const float *x, size_t batch, size_t in, const float *h, size_t hid,
                           const float *dy, size_t out, float lr, float *w1, float *b1, float *w2,
                           float *scratch, float *db1)
{
    /* The tile keeps both weight products within S_DW_TILE where it can,
     * like s_dense_dw's tiles (so the same BLAS kernel does the same sums),
     * and is never narrower than S_DW_MIN_SIDE units unless hid is. */
    const size_t n1 = s_tile(hid, in * batch), n2 = s_tile(hid, out * batch);
    const size_t n = n1 < n2 ? n1 : n2;
    memset(db1, 0, hid * sizeof *db1);
    for (size_t j = 0; j < hid; j += n) {
        const size_t t = hid - j < n ? hid - j : n;
        float *dh = scratch; /* [batch][t] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)batch, (int)t, (int)out, 1.0f,
                    dy, (int)out, w2 + j, (int)hid, 0.0f, dh, (int)t);
        for (size_t b = 0; b < batch; b++)
            mfl_nn_relu_mask_bias_grad(h + b * hid + j, dh + b * t, 1, t, dh + b * t, db1 + j);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)t, (int)batch, -lr, dy,
                    (int)out, h + j, (int)hid, 1.0f, w2 + j, (int)hid);
        s_dense_dw(x, batch, in, t, dh, -lr, w1 + j * in);
    }
    for (size_t j = 0; j < hid; j++)
        b1[j] -= lr * db1[j];
}

/* For kernel column kx (0..2), output columns [lo, hi) read input column
 * ox + kx − 1 inside the image; the rest read the zero padding. */
static void s_valid_cols(size_t kx, size_t w, size_t *lo, size_t *hi)
{
    *lo = kx == 0 ? 1 : 0;
    *hi = kx == 2 ? w - 1 : w;
    if (*hi < *lo) /* w = 1: nothing valid for the side columns */
        *hi = *lo;
}

void mfl_nn_im2col3(const float *x, size_t c, size_t h, size_t w, float *cols)
{
    const size_t hw = h * w;
    for (size_t ci = 0; ci < c; ci++)
        for (size_t ky = 0; ky < 3; ky++)
            for (size_t kx = 0; kx < 3; kx++) {
                float *row = cols + ((ci * 3 + ky) * 3 + kx) * hw;
                size_t lo, hi;
                s_valid_cols(kx, w, &lo, &hi);
                for (size_t oy = 0; oy < h; oy++) {
                    float *dst = row + oy * w;
                    size_t iy = oy + ky; /* input row + 1 (padding offset) */
                    if (iy < 1 || iy > h) {
                        memset(dst, 0, w * sizeof *dst);
                        continue;
                    }
                    const float *src = x + (ci * h + iy - 1) * w + kx; /* src[ox] = col ox+kx */
                    dst[0] = 0.0f;
                    dst[w - 1] = 0.0f;
                    memcpy(dst + lo, src + lo - 1, (hi - lo) * sizeof *dst);
                }
            }
}

/* The adjoint of im2col: adds cols[C·9][H·W] back into x[C][H][W]. */
static void s_col2im3_add(const float *cols, size_t c, size_t h, size_t w, float *x)
{
    const size_t hw = h * w;
    for (size_t ci = 0; ci < c; ci++)
        for (size_t ky = 0; ky < 3; ky++)
            for (size_t kx = 0; kx < 3; kx++) {
                const float *row = cols + ((ci * 3 + ky) * 3 + kx) * hw;
                size_t lo, hi;
                s_valid_cols(kx, w, &lo, &hi);
                for (size_t oy = 0; oy < h; oy++) {
                    size_t iy = oy + ky;
                    if (iy < 1 || iy > h)
                        continue;
                    float *dst = x + (ci * h + iy - 1) * w + kx - 1 + lo; /* input col ox+kx−1 */
                    const float *src = row + oy * w + lo;
                    for (size_t j = 0; j < hi - lo; j++)
                        dst[j] += src[j];
                }
            }
}

void mfl_nn_conv3_forward(const float *x, size_t batch, size_t c, size_t h, size_t w,
                          const float *k, const float *bias, size_t f, float *y, float *cols,
                          int accumulate)
{
    const size_t hw = h * w, ck = c * 9;
    for (size_t b = 0; b < batch; b++) {
        float *yb = y + b * f * hw;
        mfl_nn_im2col3(x + b * c * hw, c, h, w, cols);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)f, (int)hw, (int)ck, 1.0f, k,
                    (int)ck, cols, (int)hw, accumulate ? 1.0f : 0.0f, yb, (int)hw);
        if (bias)
            for (size_t fi = 0; fi < f; fi++)
                for (size_t p = 0; p < hw; p++)
                    yb[fi * hw + p] += bias[fi];
    }
}

void mfl_nn_conv3_backward(const float *x, size_t batch, size_t c, size_t h, size_t w,
                           const float *k, size_t f, const float *dy, float *dk, float *db,
                           float *dx, int accumulate_dx, float *cols, float *dcols)
{
    const size_t hw = h * w, ck = c * 9;
    for (size_t b = 0; b < batch; b++) {
        const float *dyb = dy + b * f * hw;
        if (dk) {
            mfl_nn_im2col3(x + b * c * hw, c, h, w, cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)f, (int)ck, (int)hw, 1.0f,
                        dyb, (int)hw, cols, (int)hw, 1.0f, dk, (int)ck);
        }
        if (db)
            for (size_t fi = 0; fi < f; fi++)
                db[fi] += s_sum(dyb + fi * hw, hw);
        if (dx) {
            float *dxb = dx + b * c * hw;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ck, (int)hw, (int)f, 1.0f, k,
                        (int)ck, dyb, (int)hw, 0.0f, dcols, (int)hw);
            if (!accumulate_dx)
                memset(dxb, 0, c * hw * sizeof *dxb);
            s_col2im3_add(dcols, c, h, w, dxb);
        }
    }
}

void mfl_nn_maxpool2_forward(const float *x, size_t batch, size_t c, size_t h, size_t w,
                             float *y, uint32_t *idx)
{
    const size_t oh = h / 2, ow = w / 2, in_size = c * h * w, out_size = c * oh * ow;
    for (size_t b = 0; b < batch; b++) {
        const float *xb = x + b * in_size;
        for (size_t ci = 0; ci < c; ci++)
            for (size_t oy = 0; oy < oh; oy++)
                for (size_t ox = 0; ox < ow; ox++) {
                    size_t best = (ci * h + 2 * oy) * w + 2 * ox;
                    const size_t cand[3] = {best + 1, best + w, best + w + 1};
                    for (int i = 0; i < 3; i++)
                        if (xb[cand[i]] > xb[best])
                            best = cand[i];
                    size_t o = b * out_size + (ci * oh + oy) * ow + ox;
                    y[o] = xb[best];
                    idx[o] = (uint32_t)best;
                }
    }
}

void mfl_nn_maxpool2_scatter(const float *dy, const uint32_t *idx, size_t batch,
                             size_t in_size, size_t out_size, float *dx)
{
    memset(dx, 0, batch * in_size * sizeof *dx);
    for (size_t b = 0; b < batch; b++)
        for (size_t o = 0; o < out_size; o++)
            dx[b * in_size + idx[b * out_size + o]] += dy[b * out_size + o];
}

void mfl_nn_maxpool2_gather(const float *x, const uint32_t *idx, size_t batch, size_t in_size,
                            size_t out_size, float *y)
{
    for (size_t b = 0; b < batch; b++)
        for (size_t o = 0; o < out_size; o++)
            y[b * out_size + o] = x[b * in_size + idx[b * out_size + o]];
}

void mfl_nn_bias_relu(float *y, const float *bias, size_t batch, size_t out)
{
    for (size_t b = 0; b < batch; b++) {
        float *row = y + b * out;
        for (size_t o = 0; o < out; o++) {
            float v = row[o] + bias[o];
            row[o] = v > 0.0f ? v : 0.0f;
        }
    }
}

void mfl_nn_relu_mask_bias_grad(const float *y, const float *in, size_t batch, size_t n,
                                float *out, float *db)
{
    for (size_t b = 0; b < batch; b++) {
        const float *yr = y + b * n, *ir = in + b * n;
        float *or = out + b * n;
        for (size_t o = 0; o < n; o++) {
            uint32_t bits, keep = (uint32_t)0 - (uint32_t)(yr[o] > 0.0f);
            memcpy(&bits, &ir[o], sizeof bits);
            bits &= keep;
            memcpy(&or[o], &bits, sizeof bits);
            db[o] += or[o];
        }
    }
}

void mfl_nn_relu_forward(const float *x, size_t n, float *y)
{
    for (size_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void mfl_nn_relu_mask(const float *y, const float *in, size_t n, float *out)
{
    /* Branch-free select on the bits: a data-dependent branch here
     * mispredicts half the time on real activations (it was 30% of a 1M
     * MLP step), and masking bits rather than multiplying by 0/1 keeps an
     * inf or NaN in a dead unit from leaking through as NaN. */
    for (size_t i = 0; i < n; i++) {
        uint32_t bits, keep = (uint32_t)0 - (uint32_t)(y[i] > 0.0f);
        memcpy(&bits, &in[i], sizeof bits);
        bits &= keep;
        memcpy(&out[i], &bits, sizeof bits);
    }
}

void mfl_nn_norm_forward(const float *x, size_t batch, size_t c, size_t s, const float *gamma,
                         const float *beta, float *y, float *xh, float *r)
{
    const size_t m = c * s;
    for (size_t b = 0; b < batch; b++) {
        const float *xb = x + b * m;
        /* Two passes, the mean first, so the variance does not lose digits
         * to cancellation when activations have a large mean. Float sums
         * over one channel's S values (vectorisable), double across
         * channels. */
        double sum = 0.0;
        for (size_t ci = 0; ci < c; ci++)
            sum += s_sum(xb + ci * s, s);
        const float mean = (float)(sum / (double)m);
        double sq = 0.0;
        for (size_t ci = 0; ci < c; ci++)
            sq += s_sqdev(xb + ci * s, mean, s);
        const float rb = (float)(1.0 / sqrt(sq / (double)m + MFL_NN_NORM_EPS));
        r[b] = rb;
        for (size_t ci = 0; ci < c; ci++) {
            const float g = gamma[ci], bt = beta[ci];
            float *xhc = xh + b * m + ci * s, *yc = y + b * m + ci * s;
            const float *xc = xb + ci * s;
            for (size_t p = 0; p < s; p++) {
                float v = (xc[p] - mean) * rb;
                xhc[p] = v;
                yc[p] = g * v + bt;
            }
        }
    }
}

void mfl_nn_norm_backward(const float *xh, const float *r, size_t batch, size_t c, size_t s,
                          const float *gamma, const float *dy, float *dgamma, float *dbeta,
                          float *dx)
{
    const size_t m = c * s;
    for (size_t b = 0; b < batch; b++) {
        const float *xb = xh + b * m, *dyb = dy + b * m;
        /* g = γ_c·dy, so Σg and Σg·xh follow from the per-channel sums. */
        double sg = 0.0, sgx = 0.0;
        for (size_t ci = 0; ci < c; ci++) {
            const float dg = s_dot(dyb + ci * s, xb + ci * s, s), dbt = s_sum(dyb + ci * s, s);
            sg += (double)gamma[ci] * dbt;
            sgx += (double)gamma[ci] * dg;
            if (dgamma)
                dgamma[ci] += dg;
            if (dbeta)
                dbeta[ci] += dbt;
        }
        if (!dx)
            continue;
        const float a = (float)(sg / (double)m), bm = (float)(sgx / (double)m), rb = r[b];
        for (size_t ci = 0; ci < c; ci++) {
            const float g = gamma[ci];
            float *dxc = dx + b * m + ci * s;
            const float *xc = xb + ci * s, *dyc = dyb + ci * s;
            for (size_t p = 0; p < s; p++)
                dxc[p] = rb * (g * dyc[p] - a - xc[p] * bm);
        }
    }
}

void mfl_nn_norm_rforward(const float *xh, const float *r, size_t batch, size_t c, size_t s,
                          const float *gamma, const float *vgamma, const float *vbeta,
                          const float *rx, float *ry, float *rxh, float *rr)
{
    const size_t m = c * s;
    for (size_t b = 0; b < batch; b++) {
        const float *xb = xh + b * m;
        double srx = 0.0, sxrx = 0.0;
        if (rx)
            for (size_t ci = 0; ci < c; ci++) {
                srx += s_sum(rx + b * m + ci * s, s);
                sxrx += s_dot(xb + ci * s, rx + b * m + ci * s, s);
            }
        const float mrx = (float)(srx / (double)m), mxrx = (float)(sxrx / (double)m);
        const float rb = r[b];
        /* R{r} = −r²·mean(xh·Rx); R{xh} = r·(Rx − mean Rx − xh·mean(xh·Rx)). */
        rr[b] = -rb * rb * mxrx;
        for (size_t ci = 0; ci < c; ci++) {
            const size_t o = b * m + ci * s;
            const float g = gamma[ci], vg = vgamma[ci], vb = vbeta[ci];
            for (size_t p = 0; p < s; p++) {
                const float rxi = rx ? rx[o + p] : 0.0f;
                const float rh = rb * (rxi - mrx - xh[o + p] * mxrx);
                rxh[o + p] = rh;
                ry[o + p] = vg * xh[o + p] + g * rh + vb;
            }
        }
    }
}

void mfl_nn_norm_rbackward(const float *xh, const float *r, const float *rxh, const float *rr,
                           size_t batch, size_t c, size_t s, const float *gamma,
                           const float *vgamma, const float *dy, const float *rdy, float *hg,
                           float *hb, float *rdx)
{
    const size_t m = c * s;
    for (size_t b = 0; b < batch; b++) {
        /* With g = γ·dy and Rg = γ·Rdy + vγ·dy, every sum the formulas need
         * follows from five per-channel reductions. */
        double sg = 0.0, sgx = 0.0, srg = 0.0, srgx = 0.0;
        for (size_t ci = 0; ci < c; ci++) {
            const size_t o = b * m + ci * s;
            const double gm = gamma[ci], vg = vgamma[ci];
            const float sdy = s_sum(dy + o, s), srdy = s_sum(rdy + o, s);
            const float dyxh = s_dot(dy + o, xh + o, s), rdyxh = s_dot(rdy + o, xh + o, s);
            const float dyrxh = s_dot(dy + o, rxh + o, s);
            hg[ci] += rdyxh + dyrxh;
            hb[ci] += srdy;
            sg += gm * sdy;
            sgx += gm * dyxh;
            srg += gm * srdy + vg * sdy;
            srgx += gm * rdyxh + vg * dyxh + gm * dyrxh;
        }
        if (!rdx)
            continue;
        const float a = (float)(sg / (double)m), bm = (float)(sgx / (double)m);
        const float ra = (float)(srg / (double)m), rbm = (float)(srgx / (double)m);
        const float rb = r[b], rrb = rr[b];
        for (size_t ci = 0; ci < c; ci++) {
            const size_t o = b * m + ci * s;
            const float gm = gamma[ci], vg = vgamma[ci];
            for (size_t p = 0; p < s; p++) {
                const float g = gm * dy[o + p];
                const float rg = gm * rdy[o + p] + vg * dy[o + p];
                rdx[o + p] = rrb * (g - a - xh[o + p] * bm) +
                             rb * (rg - ra - rxh[o + p] * bm - xh[o + p] * rbm);
            }
        }
    }
}
