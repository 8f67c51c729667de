/* Per-example gradient norms in one batched pass; see per_example.h. */
#include "nn/per_example.h"

#include <string.h>

#include "core/log.h"
#include "nn/kernels.h"
#include "nn/model_internal.h"

static double s_sumsq(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t k = 0; k < n; k++)
        s += (double)v[k] * (double)v[k];
    return s;
}

/* Adds each row's conv kernel + bias gradient norm² into sq. */
static void s_conv_rows(mfl_model_t *self, const s_layer_t *l, const float *in, const float *gy,
                        const float *theta, size_t batch, double *sq)
{
    size_t nk = l->oc * l->c * 9, n = nk + l->oc;
    float *dk = self->gsmall, *db = self->gsmall + nk;
    MFL_ASSERT(n <= self->max_small);
    for (size_t b = 0; b < batch; b++) {
        memset(dk, 0, n * sizeof *dk);
        mfl_nn_conv3_backward(in + b * l->in_size, 1, l->c, l->h, l->w, theta + l->w_off, l->oc,
                              gy + b * l->out_size, dk, db, NULL, 0, self->cols, self->dcols);
        sq[b] += s_sumsq(dk, n);
    }
}

/* Adds each row's norm-layer γ, β gradient norm² into sq. */
static void s_norm_rows(const s_layer_t *l, const float *gy, size_t batch, double *sq)
{
    size_t s = l->h * l->w;
    for (size_t b = 0; b < batch; b++) {
        double acc = 0.0;
        for (size_t c = 0; c < l->c; c++) {
            const float *g = gy + b * l->in_size + c * s, *xh = l->xh + b * l->in_size + c * s;
            double dg = 0.0, dbeta = 0.0;
            for (size_t k = 0; k < s; k++) {
                dg += (double)g[k] * xh[k];
                dbeta += g[k];
            }
            acc += dg * dg + dbeta * dbeta;
        }
        sq[b] += acc;
    }
}

int mfl_model_per_example_sqnorms(mfl_model_t *self, const float *theta, const float *dout,
                                  double *sq)
{
    const size_t batch = self->batch;
    if (batch == 0)
        return -1;
    memset(sq, 0, batch * sizeof *sq);
    float *gy = self->g0, *gx = self->g1;
    memcpy(gy, dout, batch * self->n_out * sizeof *gy);
    for (size_t i = self->n_layers; i-- > 0;) {
        const s_layer_t *l = &self->layers[i];
        const float *in = i == 0 ? self->x : self->layers[i - 1].out;
        float *dst = i == 0 ? NULL : gx; /* nothing below the first layer */
        switch (l->kind) {
        case S_DENSE:
            for (size_t b = 0; b < batch; b++)
                sq[b] += s_sumsq(gy + b * l->oc, l->oc) *
                         (s_sumsq(in + b * l->in_size, l->in_size) + 1.0);
            if (dst)
                mfl_nn_dense_backward(in, batch, l->in_size, theta + l->w_off, l->oc, gy, NULL,
                                      NULL, dst, 0);
            break;
        case S_CONV:
            s_conv_rows(self, l, in, gy, theta, batch, sq);
            if (dst)
                mfl_nn_conv3_backward(in, batch, l->c, l->h, l->w, theta + l->w_off, l->oc, gy,
                                      NULL, NULL, dst, 0, self->cols, self->dcols);
            break;
        case S_NORM:
            s_norm_rows(l, gy, batch, sq);
            if (dst)
                mfl_nn_norm_backward(l->xh, l->r, batch, l->c, l->h * l->w, theta + l->w_off, gy,
                                     NULL, NULL, dst);
            break;
        case S_RELU:
            if (dst)
                mfl_nn_relu_mask(l->out, gy, batch * l->in_size, dst);
            break;
        case S_POOL:
            if (dst)
                mfl_nn_maxpool2_scatter(gy, l->idx, batch, l->in_size, l->out_size, dst);
            break;
        }
        if (!dst)
            break;
        float *t = gy;
        gy = gx;
        gx = t;
    }
    return 0;
}
