/* DP-SGD's noisy clipped gradient; see dpsgd.h. */
#include "privacy/dpsgd.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nn/per_example.h"

/* Random bytes drawn per CSPRNG call when making noise or a sample. */
#define S_RANDOM_BLOCK 4096

struct mfl_dpsgd {
    size_t max_batch, n_out;
    float *out, *dout; /* [max_batch][n_out] */
    double *sq;        /* [max_batch] */
};

mfl_dpsgd_t *mfl_dpsgd_new(const mfl_model_t *model)
{
    mfl_dpsgd_t *self = calloc(1, sizeof *self);
    if (!self || sodium_init() < 0) {
        free(self);
        return NULL;
    }
    self->max_batch = mfl_model_max_batch(model);
    self->n_out = mfl_model_n_outputs(model);
    self->out = malloc(self->max_batch * self->n_out * sizeof(float));
    self->dout = malloc(self->max_batch * self->n_out * sizeof(float));
    self->sq = malloc(self->max_batch * sizeof(double));
    if (!self->out || !self->dout || !self->sq)
        mfl_dpsgd_destroy(&self);
    return self;
}

void mfl_dpsgd_destroy(mfl_dpsgd_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mfl_dpsgd_t *self = *self_p;
    free(self->out);
    free(self->dout);
    free(self->sq);
    free(self);
    *self_p = NULL;
}

size_t mfl_dpsgd_poisson_sample(size_t n, double q, size_t *idx)
{
    uint64_t r[S_RANDOM_BLOCK / 8];
    size_t k = 0, used = S_RANDOM_BLOCK / 8;
    /* Row i is in the sample when a uniform 53-bit draw is below q. */
    uint64_t limit = q >= 1.0 ? UINT64_MAX : (uint64_t)(q * 0x1.0p53);
    for (size_t i = 0; i < n; i++) {
        if (used == S_RANDOM_BLOCK / 8) {
            randombytes_buf(r, sizeof r);
            used = 0;
        }
        if (q >= 1.0 || (r[used] >> 11) < limit)
            idx[k++] = i;
        used++;
    }
    return k;
}

void mfl_dpsgd_add_noise(float *v, size_t n, double sd)
{
    if (!(sd > 0.0))
        return;
    /* Box-Muller on pairs of 32-bit uniforms in (0, 1]: both outputs used. */
    uint32_t r[S_RANDOM_BLOCK / 4];
    const double two_pi = 2.0 * M_PI, scale = 0x1.0p-32;
    size_t i = 0;
    while (i < n) {
        randombytes_buf(r, sizeof r);
        for (size_t k = 0; k + 1 < S_RANDOM_BLOCK / 4 && i < n; k += 2) {
            double u1 = ((double)r[k] + 1.0) * scale, u2 = (double)r[k + 1] * scale;
            double rad = sd * sqrt(-2.0 * log(u1)), a = two_pi * u2;
            v[i++] += (float)(rad * cos(a));
            if (i < n)
                v[i++] += (float)(rad * sin(a));
        }
    }
}

int mfl_dpsgd_grad(mfl_dpsgd_t *self, mfl_model_t *model, const float *theta,
                   const mfl_loss_t *loss, const float *x, const float *y, size_t batch,
                   size_t n_total, const mfl_dpsgd_params_t *p, float *grad, size_t *n_clipped)
{
    size_t np = mfl_model_n_params(model), nin = mfl_model_n_inputs(model);
    size_t nout = self->n_out, yw = loss->kind == MFL_LOSS_MSE ? nout : 1;
    if (!(p->clip > 0.0) || !(p->sigma >= 0.0) || !(p->sample_rate > 0.0 && p->sample_rate <= 1.0) ||
        n_total == 0 || batch > n_total)
        return -1;
    memset(grad, 0, np * sizeof *grad);
    size_t clipped = 0;
    for (size_t at = 0; at < batch; at += self->max_batch) {
        size_t b = batch - at < self->max_batch ? batch - at : self->max_batch;
        if (mfl_model_forward(model, theta, x + at * nin, b, self->out))
            return -1;
        /* dout of the mean loss is row i's own gradient divided by b. */
        if (isnan(mfl_loss_eval(loss, self->out, y + at * yw, b, nout, self->dout)))
            return -1;
        for (size_t k = 0; k < b * nout; k++)
            self->dout[k] *= (float)b;
        mfl_model_per_example_sqnorms(model, theta, self->dout, self->sq);
        for (size_t i = 0; i < b; i++) {
            double norm = sqrt(self->sq[i]);
            if (!isfinite(norm))
                return -1; /* a diverged row: no bound can be claimed */
            if (norm > p->clip) {
                float c = (float)(p->clip / norm);
                for (size_t k = 0; k < nout; k++)
                    self->dout[i * nout + k] *= c;
                clipped++;
            }
        }
        mfl_model_backward(model, theta, self->dout, grad, NULL); /* adds Σ clipped */
    }
    mfl_dpsgd_add_noise(grad, np, p->sigma * p->clip);
    float inv = (float)(1.0 / (p->sample_rate * (double)n_total));
    for (size_t k = 0; k < np; k++)
        grad[k] *= inv;
    if (n_clipped)
        *n_clipped = clipped;
    return 0;
}
