/* DP-SGD's noisy clipped gradient; see dpsgd.h. */
#include "privacy/dpsgd.h"

#include <math.h>
#include <stddef.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nn/per_example.h"

/* 32-bit words of randomness made per CSPRNG call (noise, samples). */
#define S_RANDOM_BLOCK 4096

/* A buffered CSPRNG with fast key erasure: ChaCha20 keyed from the OS
 * CSPRNG (randombytes_buf) at creation; each refill makes 32 bytes of next
 * key plus a block of output and forgets the old key, so earlier output
 * cannot be recomputed from the state. */
typedef struct {
    uint8_t key[crypto_stream_chacha20_ietf_KEYBYTES];
    uint32_t buf[S_RANDOM_BLOCK];
    size_t pos; /* next unused word of buf */
} s_csprng_t;

struct mfl_dpsgd {
    s_csprng_t rng;
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
    randombytes_buf(self->rng.key, sizeof self->rng.key);
    self->rng.pos = S_RANDOM_BLOCK;
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
    sodium_memzero(&self->rng, sizeof self->rng);
    free(self->out);
    free(self->dout);
    free(self->sq);
    free(self);
    *self_p = NULL;
}

static void s_refill(s_csprng_t *g)
{
    static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
    /* The new key is the stream's first 32 bytes, the output the rest:
     * one call, the old key overwritten in place. */
    crypto_stream_chacha20_ietf((unsigned char *)g, sizeof g->key + sizeof g->buf, nonce,
                                g->key);
    g->pos = 0;
}
_Static_assert(offsetof(s_csprng_t, buf) == sizeof(((s_csprng_t *)0)->key),
               "key and buf must be contiguous for the one-call refill");

size_t mfl_dpsgd_poisson_sample(mfl_dpsgd_t *self, size_t n, double q, size_t *idx)
{
    size_t k = 0;
    if (q >= 1.0) {
        for (size_t i = 0; i < n; i++)
            idx[k++] = i;
        return k;
    }
    /* Each row independently with probability q, drawn as the gaps
     * between chosen rows: a gap is geometric, ⌊ln U / ln(1 − q)⌋ for U
     * uniform in (0, 1], which is the same distribution as one Bernoulli(q)
     * draw per row but costs one draw per chosen row instead of one per row. */
    s_csprng_t *g = &self->rng;
    const double l1q = log1p(-q);
    size_t i = 0;
    for (;;) {
        if (g->pos + 2 > S_RANDOM_BLOCK)
            s_refill(g);
        uint64_t w = ((uint64_t)g->buf[g->pos] << 21) ^ (g->buf[g->pos + 1] >> 11);
        g->pos += 2;
        double u = ((double)(w & ((1ull << 53) - 1)) + 1.0) * 0x1.0p-53; /* (0, 1] */
        double gap = floor(log(u) / l1q);
        if (!(gap < (double)(n - i)))
            break;
        i += (size_t)gap;
        idx[k++] = i++;
        if (i >= n)
            break;
    }
    return k;
}

void mfl_dpsgd_add_noise(mfl_dpsgd_t *self, float *v, size_t n, double sd)
{
    if (!(sd > 0.0))
        return;
    /* Marsaglia's polar method on pairs of 24-bit uniforms in (−1, 1): one
     * logf and one sqrtf per pair, no trigonometry; about 21% of pairs are
     * rejected. */
    const float sdf = (float)sd, scale = 0x1.0p-23f;
    s_csprng_t *g = &self->rng;
    size_t i = 0;
    while (i < n) {
        if (g->pos + 2 > S_RANDOM_BLOCK)
            s_refill(g);
        const uint32_t *r = g->buf;
        size_t k = g->pos;
        for (; k + 1 < S_RANDOM_BLOCK && i < n; k += 2) {
            float a = (float)(r[k] >> 8) * scale - 1.0f, b = (float)(r[k + 1] >> 8) * scale - 1.0f;
            float q = a * a + b * b;
            if (q >= 1.0f || q == 0.0f)
                continue;
            float f = sdf * sqrtf(-2.0f * logf(q) / q);
            v[i++] += a * f;
            if (i < n)
                v[i++] += b * f;
        }
        g->pos = k;
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
    mfl_dpsgd_add_noise(self, grad, np, p->sigma * p->clip);
    float inv = (float)(1.0 / (p->sample_rate * (double)n_total));
    for (size_t k = 0; k < np; k++)
        grad[k] *= inv;
    if (n_clipped)
        *n_clipped = clipped;
    return 0;
}
